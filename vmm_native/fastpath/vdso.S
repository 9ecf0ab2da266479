/*
 * The vDSO a program finds at AT_SYSINFO_EHDR: clock_gettime, gettimeofday and time as
 * functions, as Linux's vDSO has them, so libcs and the Go runtime read the clock without
 * a `syscall` (which this host's PVM traps even when the fast path answers it). With a
 * budget on the data page they answer as the fast path does, recording the same ring
 * entry (the six argument registers as the caller left them); without one, or for
 * anything they do not take, they make the system call itself. Either way they return
 * with the same registers: rax the result, rcx and r11 zero, the arithmetic flags those
 * of `add r11d, 0`, everything else as the caller had it, so a run is the same with and
 * without a budget. A store into the caller's buffer that faults is resumed by the VMM
 * at the function's `_slow_restore` (exit_loop.c, by the table gen.py writes), which
 * makes the call the exit path answers (EFAULT).
 */
	.include "common.inc"
/* Each function whole between its symbol and its size (a debugger names every address by
 * it): take the budget, answer, record; or restore and make the call. One CFI entry over
 * all of them: nothing is pushed, so the return address is always at rsp. */
	.macro vdso_function name, nr, call
	.globl \name
	.type \name, @function
\name:
	mov eax, \nr
	take_budget \name\()_slow_restore
	\call \name\()_, \name\()_slow_restore, \name\()_record
\name\()_record:
	record_call \name\()_done
\name\()_slow_restore:
	mov rax, [D_RAX]
	mov rdx, [D_RDX]
	syscall
\name\()_done:
	xor ecx, ecx
	xor r11d, r11d
	add r11d, 0
	ret
	.size \name, . - \name
	.endm

	.text
	.cfi_startproc
	vdso_function __vdso_clock_gettime, 228, clock_gettime_call
	vdso_function __vdso_gettimeofday, 96, gettimeofday_call
	vdso_function __vdso_time, 201, time_call
	.cfi_endproc
