/*
 * The exit loop: run the vCPU, turn raw KVM exits into syscalls and exceptions, and
 * resume the guest the way its entry path requires.
 *
 * Between runs the caller sees and edits the *user* registers, whatever the vCPU really
 * holds: after a syscall rip/rflags are the continuation (RCX/R11), after an exception
 * they come from the iretq frame on the IST stack. Resuming writes them back to where the
 * entry path needs them. This is the one seam between PVM (syscall stays at CPL3, the
 * `out` on the entry page exits, and resuming is just setting rip) and hardware KVM
 * (syscall enters CPL0, resuming goes through the entry page's sysret).
 */
#include <errno.h>
#include <string.h>
#include <sys/ioctl.h>

#include "vmm_internal.h"

/* Vectors for which the CPU pushes an error code. */
static bool vector_has_error_code(unsigned v)
{
	return v == 8 || (v >= 10 && v <= 14) || v == 17 || v == 21 || v == 29 || v == 30;
}

static uint64_t *frame_ptr(struct vmm_vm *vm, uint64_t kva)
{
	return gpa_ptr(vm, kva - KERNEL_BASE);
}

/* True when `bytes` at kernel VA kva lie inside the IST stack: the only place a frame the
 * host reads or writes may be (rsp at a CPL0 exit is checked before anything is read). */
static bool frame_addr_valid(uint64_t kva, uint64_t bytes)
{
	return kva >= KERNEL_BASE + GPA_IST_STACK && kva <= KERNEL_BASE + IST_STACK_TOP - bytes;
}

/* The flags a frame the VMM returns through carries: the user's own, the VMM's system bits. */
static uint64_t user_rflags(uint64_t rflags)
{
	return (rflags & RFLAGS_USER_MASK) | RFLAGS_RESERVED | RFLAGS_IF;
}

int vmm_vcpu_get_fs_base(struct vmm_vm *vm, uint64_t *out)
{
	struct kvm_sregs sregs;
	if (ioctl(vm->vcpu_fd, KVM_GET_SREGS, &sregs) < 0)
		return -errno;
	*out = sregs.fs.base;
	return 0;
}

static int set_segment_base(struct vmm_vm *vm, bool fs, uint64_t base)
{
	if (base >= USER_VA_END)
		return -EPERM; /* as arch_prctl: a user base lies in the user half */
	struct kvm_sregs sregs;
	if (ioctl(vm->vcpu_fd, KVM_GET_SREGS, &sregs) < 0)
		return -errno;
	if (fs)
		sregs.fs.base = base;
	else
		sregs.gs.base = base;
	if (ioctl(vm->vcpu_fd, KVM_SET_SREGS, &sregs) < 0)
		return -errno;
	return 0;
}

int vmm_vcpu_set_fs_base(struct vmm_vm *vm, uint64_t base)
{
	return set_segment_base(vm, true, base);
}

int vmm_vcpu_set_gs_base(struct vmm_vm *vm, uint64_t base)
{
	return set_segment_base(vm, false, base);
}

int vmm_vcpu_start_user(struct vmm_vm *vm, uint64_t rip, uint64_t rsp)
{
	struct kvm_regs *r = vmm_vcpu_regs(vm);
	memset(r, 0, sizeof(*r));
	r->rip = rip;
	r->rsp = rsp;
	r->rflags = RFLAGS_RESERVED;
	/* Enter user mode the way every exception returns: iretq through a frame. */
	vm->resume = RESUME_FRAME;
	vm->frame_addr = START_FRAME_ADDR;
	return 0;
}

/* Put the user registers where the current entry path resumes from. */
static void prepare_resume(struct vmm_vm *vm)
{
	struct kvm_regs *r = vmm_vcpu_regs(vm);
	r->rflags = user_rflags(r->rflags);
	if (vm->resume == RESUME_FRAME) {
		uint64_t *f = frame_ptr(vm, vm->frame_addr);
		f[0] = r->rip;
		f[1] = SEL_USER_CS;
		f[2] = r->rflags;
		f[3] = r->rsp;
		f[4] = SEL_USER_DS;
		mark_host_dirty(vm, vm->frame_addr - KERNEL_BASE, 40);
		r->rsp = vm->frame_addr;
		r->rip = KERNEL_BASE + GPA_STUBS + STUBS_OFF_IRETQ;
		r->rflags = RFLAGS_RESERVED;
	} else if (vm->syscall_at_cpl0) {
		r->rcx = r->rip;
		r->r11 = r->rflags;
		r->rip = ENTRY_VA + ENTRY_OFF_SYSRET;
		r->rflags = RFLAGS_RESERVED;
	}
	/* PVM syscall: still at CPL3 on the entry page, rip/rflags are already the user's. */
	vm->run->kvm_dirty_regs = KVM_SYNC_X86_REGS;
}

static int kvm_run_once(struct vmm_vm *vm)
{
	vm->stats.exits++;
	if (ioctl(vm->vcpu_fd, KVM_RUN, 0) < 0)
		return -errno;
	vm->run->kvm_dirty_regs = 0;
	return 0;
}

static bool is_out(struct vmm_vm *vm, unsigned port)
{
	struct kvm_run *run = vm->run;
	return run->exit_reason == KVM_EXIT_IO && run->io.direction == KVM_EXIT_IO_OUT &&
	       run->io.port == port;
}

int vmm_vm_syscall_mode(const struct vmm_vm *vm)
{
	if (!vm->syscall_mode_known)
		return -EAGAIN;
	return vm->syscall_at_cpl0 ? 1 : 0;
}

int vmm_vm_set_syscall_mode(struct vmm_vm *vm, int enters_cpl0)
{
	if (enters_cpl0 != 0 && enters_cpl0 != 1)
		return -EINVAL;
	vm->syscall_at_cpl0 = enters_cpl0 == 1;
	vm->syscall_mode_known = true;
	return 0;
}

/* Only a VM whose mode was not set (the probe) learns it from its first syscall exit. */
static int syscall_mode(struct vmm_vm *vm)
{
	if (vm->syscall_mode_known)
		return 0;
	struct kvm_sregs sregs;
	if (ioctl(vm->vcpu_fd, KVM_GET_SREGS, &sregs) < 0)
		return -errno;
	vm->syscall_at_cpl0 = (sregs.cs.selector & 3) == 0;
	vm->syscall_mode_known = true;
	return 0;
}

static void fail(struct vmm_vm *vm, struct vmm_exit *exit)
{
	struct kvm_run *run = vm->run;
	exit->reason = VMM_EXIT_FAILED;
	exit->kvm_exit = run->exit_reason;
	exit->detail = 0;
	if (run->exit_reason == KVM_EXIT_INTERNAL_ERROR)
		exit->detail = run->internal.suberror;
	else if (run->exit_reason == KVM_EXIT_FAIL_ENTRY)
		exit->detail = (uint32_t)run->fail_entry.hardware_entry_failure_reason;
	else if (run->exit_reason == KVM_EXIT_IO)
		exit->detail = run->io.port;
}

/* Run the CPL0 routine that re-stores the queued page-table entries. */
static int run_fixups(struct vmm_vm *vm, struct vmm_exit *exit)
{
	struct kvm_regs saved = *vmm_vcpu_regs(vm);
	struct kvm_regs *r = vmm_vcpu_regs(vm);
	uint32_t done = 0;
	bool at_cpl0_frame = vm->resume == RESUME_FRAME;
	while (done < vm->fix_count) {
		uint32_t n = vm->fix_count - done;
		if (n > FIXOPS_MAX)
			n = (uint32_t)FIXOPS_MAX;
		uint64_t *ops = gpa_ptr(vm, GPA_FIXOPS);
		ops[0] = n;
		for (uint32_t i = 0; i < n; i++) {
			uint64_t gpa = vm->fix_gpa[done + i];
			ops[1 + 2 * i] = KERNEL_BASE + gpa;
			ops[2 + 2 * i] = *(uint64_t *)gpa_ptr(vm, gpa);
		}
		mark_host_dirty(vm, GPA_FIXOPS, 8 + 16ull * n);
		if (at_cpl0_frame) {
			/* Already in CPL0 with a frame on the IST stack: jump to the routine. */
			r->rip = KERNEL_BASE + GPA_STUBS + STUBS_OFF_FIXUP;
			r->rsp = vm->frame_addr;
		} else {
			/* At a syscall: reach CPL0 through the entry page's ud2 trampoline. */
			r->rip = ENTRY_VA + ENTRY_OFF_FIXUP;
		}
		r->rflags = RFLAGS_RESERVED;
		vm->run->kvm_dirty_regs = KVM_SYNC_X86_REGS;
		int rc = kvm_run_once(vm);
		if (rc < 0)
			return rc;
		if (!is_out(vm, PORT_FIXUP_DONE)) {
			exit->reason = VMM_EXIT_FAILED;
			exit->kvm_exit = vm->run->exit_reason;
			exit->detail = vm->run->exit_reason == KVM_EXIT_IO ? vm->run->io.port : 0;
			return 1;
		}
		if (!frame_addr_valid(r->rsp, 40)) {
			fail(vm, exit);
			return 1;
		}
		vm->frame_addr = r->rsp;
		at_cpl0_frame = true;
		vm->stats.pte_fixups++;
		vm->stats.pte_ops += n;
		done += n;
	}
	((uint64_t *)gpa_ptr(vm, GPA_FIXOPS))[0] = 0; /* a stray trampoline stores nothing */
	vm->fix_count = 0;
	/* Return to the user context saved above through the routine's iretq frame. */
	uint64_t frame = vm->frame_addr;
	*r = saved;
	vm->resume = RESUME_FRAME;
	vm->frame_addr = frame;
	return 0;
}

/* The user registers from an exception's iretq frame at kernel VA frame, and resuming
 * through it. */
static void resume_from_frame(struct vmm_vm *vm, uint64_t frame, const uint64_t *f)
{
	struct kvm_regs *r = vmm_vcpu_regs(vm);
	r->rip = f[0];
	r->rflags = f[2];
	r->rsp = f[3];
	vm->resume = RESUME_FRAME;
	vm->frame_addr = frame;
}

/* A store of the fast path into the program's buffer faulted (not mapped yet, read-only,
 * or not canonical): the call becomes the ordinary syscall exit it would have been, which
 * the VMM answers (mapping the page, or EFAULT). At those stores every register but
 * rax/rdx (saved on the data page) is still as the syscall instruction left it. */
static int fast_fault_to_syscall(struct vmm_vm *vm, struct vmm_exit *exit, uint64_t frame,
				 const uint64_t *f)
{
	struct kvm_regs *r = vmm_vcpu_regs(vm);
	const struct vmm_fastpath *page = vmm_vm_fastpath(vm);
	/* Resume through the frame the exception left (prepare_resume rewrites it), at the
	 * continuation the syscall instruction left in rcx/r11. */
	resume_from_frame(vm, frame, f);
	r->rax = page->saved_rax;
	r->rdx = page->saved_rdx;
	r->rip = r->rcx;
	r->rflags = user_rflags(r->r11);
	vm->stats.syscalls++;
	exit->reason = VMM_EXIT_SYSCALL;
	return 1;
}

/* Decode the exit that just happened; returns 1 when the caller needs to see it. */
static int decode_exit(struct vmm_vm *vm, struct vmm_exit *exit)
{
	struct kvm_regs *r = vmm_vcpu_regs(vm);
	memset(exit, 0, sizeof(*exit));
	if (is_out(vm, PORT_SYSCALL)) {
		int rc = syscall_mode(vm);
		if (rc < 0)
			return rc;
		/* rcx/r11 hold the continuation, as the syscall instruction left them. R11 is
		 * only the CPU's flags when `syscall` wrote it (port 0xE0 is open to CPL3, so a
		 * program can reach here with its own R11): the user view keeps the user's
		 * flags only, so no snapshot ever records a system flag. */
		r->rip = r->rcx;
		r->rflags = user_rflags(r->r11);
		vm->resume = RESUME_SYSCALL;
		vm->stats.syscalls++;
		exit->reason = VMM_EXIT_SYSCALL;
		return 1;
	}
	struct kvm_run *run = vm->run;
	bool vector_port = run->exit_reason == KVM_EXIT_IO &&
			   run->io.direction == KVM_EXIT_IO_OUT &&
			   run->io.port >= PORT_VECTOR_BASE && run->io.port < PORT_VECTOR_BASE + 32;
	/* The user jumped to the trampoline itself: report the #UD it executed. */
	bool stray_fixup = is_out(vm, PORT_FIXUP_DONE);
	if (vector_port || stray_fixup) {
		unsigned vector = stray_fixup ? UD_VECTOR : run->io.port - PORT_VECTOR_BASE;
		uint64_t frame = r->rsp;
		bool has_error = vector_port && vector_has_error_code(vector);
		/* rsp is checked before the host reads anything at it: error code + 5 slots. */
		if (!frame_addr_valid(frame, has_error ? 48 : 40)) {
			fail(vm, exit);
			return 1;
		}
		if (has_error) {
			exit->error_code = *frame_ptr(vm, frame);
			frame += 8;
		}
		uint64_t *f = frame_ptr(vm, frame);
		if (vector_port && (vector == 14 || vector == 13) && f[0] >= FAST_CODE_VA &&
		    f[0] < FAST_CODE_VA + VMM_PAGE_SIZE && vm->fastpath)
			return fast_fault_to_syscall(vm, exit, frame, f);
		uint64_t resume_at = vector_port && (vector == 14 || vector == 13) && vm->vdso
				     ? vmm_vdso_resume_at(f[0]) : 0;
		if (resume_at) {
			/* A vDSO store into the caller's buffer: make the call instead, at the
			 * function's code that restores rax/rdx and runs `syscall` (vdso.S). No
			 * exit: the program sees exactly what it sees without a budget. */
			resume_from_frame(vm, frame, f);
			r->rip = resume_at;
			vm->stats.vdso_resumes++;
			return 0;
		}
		if ((f[1] & 3) != 3) {
			/* A fault in the VMM's own CPL0 code: the VM cannot continue. */
			fail(vm, exit);
			exit->detail = vector;
			return 1;
		}
		if (vector == 14) {
			struct kvm_sregs sregs;
			if (ioctl(vm->vcpu_fd, KVM_GET_SREGS, &sregs) < 0)
				return -errno;
			exit->fault_addr = sregs.cr2;
		}
		resume_from_frame(vm, frame, f);
		vm->stats.exceptions++;
		exit->reason = VMM_EXIT_EXCEPTION;
		exit->vector = vector;
		return 1;
	}
	fail(vm, exit);
	return 1;
}

int vmm_vcpu_run(struct vmm_vm *vm, struct vmm_exit *exit)
{
	if (!vm || !exit)
		return -EINVAL;
	if (vm->resume == RESUME_NONE)
		return -ENOEXEC;
	if (!canonical(vmm_vcpu_regs(vm)->rip)) {
		/* iretq would raise #GP at CPL0 and sysret (hardware KVM) would raise it at CPL0
		 * on the user's stack: report the #GP the user context asks for, before either. */
		memset(exit, 0, sizeof(*exit));
		exit->reason = VMM_EXIT_EXCEPTION;
		exit->vector = 13;
		vm->stats.exceptions++;
		return 0;
	}
	for (;;) {
		if (vm->fix_count) {
			int rc = run_fixups(vm, exit);
			if (rc != 0)
				return rc < 0 ? rc : 0;
		}
		prepare_resume(vm);
		int rc = kvm_run_once(vm);
		if (rc == -EINTR) {
			memset(exit, 0, sizeof(*exit));
			exit->reason = VMM_EXIT_INTERRUPTED;
			vm->run->immediate_exit = 0;
			/* The guest stopped at an arbitrary instruction, not at a boundary this
			 * loop knows how to resume from: only a restore may run it again. */
			vm->resume = RESUME_NONE;
			return 0;
		}
		if (rc < 0)
			return rc;
		rc = decode_exit(vm, exit);
		if (rc < 0)
			return rc;
		if (rc == 1)
			return 0;
	}
}

int vmm_vcpu_run_bench_loop(struct vmm_vm *vm, uint64_t max, uint64_t *syscalls)
{
	struct vmm_exit exit;
	uint64_t n = 0;
	while (n < max) {
		int rc = vmm_vcpu_run(vm, &exit);
		if (rc < 0)
			return rc;
		if (exit.reason != VMM_EXIT_SYSCALL)
			break;
		n++;
		struct kvm_regs *r = vmm_vcpu_regs(vm);
		if (r->rax == 231 || r->rax == 60) /* exit_group, exit */
			break;
		r->rax = 0;
	}
	if (syscalls)
		*syscalls = n;
	return 0;
}
