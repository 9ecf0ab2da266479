/*
 * The syscall fast path: code the `syscall` instruction reaches (LSTAR) when a VM has it
 * on. It answers a few calls whose result needs nothing the VMM has not published on the
 * data page — the clocks, the ids — appends one record per call to the ring there, and
 * goes back to the program without a VM exit; anything else, or a call past the VMM's
 * budget, leaves through `out` exactly as the plain entry page does. The VMM turns each
 * record into the event the call would have made and moves virtual time on by the same
 * cost, so the run is the same call for call (vmm_native/fastpath.c, kernel/fastpath.py).
 *
 * Entry state is the syscall ABI's: rax the number, rcx the return rip, r11 the flags,
 * every other register the program's. The only instructions that may fault are the
 * stores to the program's buffer; they run while rax/rdx are saved on the data page and
 * nothing else has changed, so the VMM can turn such a fault into an ordinary syscall
 * exit (the slow path then answers it, EFAULT included).
 *
 * common.inc holds the clock calls it shares with the vDSO (vdso.S). Assembled by gen.py
 * into fastpath_code.h; run `python vmm_native/fastpath/gen.py`
 * after editing (tests/test_fastpath_code.py checks the header matches this file).
 */
	.include "common.inc"
	.text
	.globl _start
_start:
	test r11d, 0x100                /* TF: the task is being stepped, one exit per call */
	jnz slow
	take_budget slow_restore
	cmp rax, 228
	je clock_gettime
	cmp rax, 96
	je gettimeofday
	cmp rax, 201
	je time
	cmp rax, 39
	je getpid
	cmp rax, 186
	je gettid
	cmp rax, 110
	je getppid
slow_restore:
	mov rax, [D_RAX]
	mov rdx, [D_RDX]
slow:
	out 0xe0, al                    /* the VMM's syscall port, as on the entry page */
	ud2                             /* never resumed here */

getpid:
	mov rax, [D_PID]
	jmp record
gettid:
	mov rax, [D_TID]
	jmp record
getppid:
	mov rax, [D_PPID]
	jmp record
clock_gettime:
	clock_gettime_call e_cg, slow_restore, record
gettimeofday:
	gettimeofday_call e_tod, slow_restore, record
time:
	time_call e_t, slow_restore, record
record:
	record_call user_return

	.globl user_return
user_return:
	/* PVM (syscall stayed at CPL3): the flags come back through popfq on the page's own
	 * little stack (the program's red zone is never touched), then jump to the return
	 * rip. Hardware KVM (CPL0): fastpath.c overwrites this with `o64 sysret`. */
	mov [D_RSP], rsp
	mov rsp, D_STACK_TOP
	push r11
	popfq
	mov rsp, [D_RSP]
	jmp rcx
