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
 * Assembled by gen.py into fastpath_code.h; run `python vmm_native/fastpath/gen.py`
 * after editing (tests/test_fastpath_code.py checks the header matches this file).
 */
	.intel_syntax noprefix
	.set D, 0xffffffffff602000      /* FAST_DATA_VA: struct vmm_fastpath */
	.set D_BUDGET, D + 0x00
	.set D_COUNT, D + 0x08
	.set D_NOW, D + 0x10
	.set D_COST, D + 0x18
	.set D_MONO, D + 0x20
	.set D_REAL, D + 0x28
	.set D_PID, D + 0x30
	.set D_TID, D + 0x38
	.set D_PPID, D + 0x40
	.set D_RAX, D + 0x48
	.set D_RDX, D + 0x50
	.set D_RSP, D + 0x58
	.set D_STACK_TOP, D + 0x80
	.set RING, D + 0x100
	.set RING_CAPACITY, 188         /* (3 pages - 0x100) / 64-byte records */
	.text
	.globl _start
_start:
	test r11d, 0x100                /* TF: the task is being stepped, one exit per call */
	jnz slow
	mov [D_RAX], rax
	mov [D_RDX], rdx
	mov rdx, [D_COUNT]              /* the page is guest-writable: bound it by a constant */
	cmp rdx, RING_CAPACITY
	jae slow_restore
	cmp rdx, [D_BUDGET]
	jae slow_restore
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

clock_gettime:                          /* rdi clock id, rsi struct timespec * */
	cmp rdi, 7
	ja slow_restore
	mov rax, rsi                    /* only a user address: never the VMM's half */
	shr rax, 47
	jnz slow_restore
	mov rax, [D_NOW]
	cmp edi, 2                      /* CLOCK_PROCESS_CPUTIME_ID, CLOCK_THREAD_CPUTIME_ID */
	je ts_store
	cmp edi, 3
	je ts_store
	test edi, edi                   /* CLOCK_REALTIME, CLOCK_REALTIME_COARSE */
	je ts_real
	cmp edi, 5
	je ts_real
	add rax, [D_MONO]
	jmp ts_store
ts_real:
	add rax, [D_REAL]
ts_store:
	xor edx, edx
	div qword ptr [billion]
	mov [rsi], rax
	mov [rsi + 8], rdx
	xor eax, eax
	jmp record

gettimeofday:                           /* rdi struct timeval * or 0, rsi must be 0 */
	test rsi, rsi
	jnz slow_restore
	xor eax, eax
	test rdi, rdi
	jz record
	mov rax, rdi
	shr rax, 47
	jnz slow_restore
	mov rax, [D_NOW]
	add rax, [D_REAL]
	xor edx, edx
	div qword ptr [billion]
	mov [rdi], rax
	mov rax, rdx
	xor edx, edx
	div qword ptr [thousand]
	mov [rdi + 8], rax
	xor eax, eax
	jmp record

time:                                   /* rdi time_t * or 0; returns the seconds */
	test rdi, rdi
	jz time_value
	mov rax, rdi
	shr rax, 47
	jnz slow_restore
time_value:
	mov rax, [D_NOW]
	add rax, [D_REAL]
	xor edx, edx
	div qword ptr [billion]
	test rdi, rdi
	jz record
	mov [rdi], rax
	jmp record

getpid:
	mov rax, [D_PID]
	jmp record
gettid:
	mov rax, [D_TID]
	jmp record
getppid:
	mov rax, [D_PPID]

record:                                 /* rax the result: {nr, 6 arguments, result} */
	mov rdx, [D_COUNT]
	shl rdx, 6
	mov [rdx + RING + 0x38], rax
	mov rax, [D_RAX]
	mov [rdx + RING + 0x00], rax
	mov [rdx + RING + 0x08], rdi
	mov [rdx + RING + 0x10], rsi
	mov rax, [D_RDX]
	mov [rdx + RING + 0x18], rax
	mov [rdx + RING + 0x20], r10
	mov [rdx + RING + 0x28], r8
	mov [rdx + RING + 0x30], r9
	inc qword ptr [D_COUNT]
	mov rax, [D_COST]
	add [D_NOW], rax
	mov rax, [rdx + RING + 0x38]
	mov rdx, [D_RDX]
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

	.balign 8
billion:
	.quad 1000000000
thousand:
	.quad 1000
