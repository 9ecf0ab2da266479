/*
 * Task contexts: the user-visible CPU state of one guest thread, saved from and loaded
 * into the one vCPU when the kernel switches tasks (and kept in checkpoints for the
 * tasks that are not running).
 */
#include <errno.h>
#include <string.h>
#include <sys/ioctl.h>

#include "vmm_internal.h"

/* The XSAVE image's header (Intel SDM vol. 1, 13.4.2), the MXCSR slot of
 * the legacy area, and the MXCSR bits XRSTOR accepts (the rest must be zero). */
#define XSAVE_HEADER 512
#define FXSAVE_MXCSR_OFF 24
#define MXCSR_VALID 0xffffu

int vmm_vcpu_save_context(struct vmm_vm *vm, struct vmm_task_context *out)
{
	struct kvm_sregs sregs;
	struct kvm_xsave xsave;
	if (!vm || !out)
		return -EINVAL;
	if (ioctl(vm->vcpu_fd, KVM_GET_SREGS, &sregs) < 0)
		return -errno;
	if (ioctl(vm->vcpu_fd, KVM_GET_XSAVE, &xsave) < 0)
		return -errno;
	out->regs = *vmm_vcpu_regs(vm);
	out->fs_base = sregs.fs.base;
	out->gs_base = sregs.gs.base;
	memcpy(out->fpu, xsave.region, VMM_FPU_STATE_BYTES);
	/* Whether the CPU reports x87 or SSE "in use" (XSTATE_BV) depends on its history, not
	 * on the registers: a snapshot restore marks both (snapshot.c, write_fpu), an
	 * uninterrupted run may not. KVM's image holds a clear component's init values, so
	 * marking both always changes no register and makes a context the same bytes however
	 * the vCPU got there (a run resumed from a checkpoint keeps the same digests). */
	uint64_t in_use;
	memcpy(&in_use, out->fpu + XSAVE_HEADER, 8);
	in_use |= GUEST_XCR0;
	memcpy(out->fpu + XSAVE_HEADER, &in_use, 8);
	return 0;
}

int vmm_vcpu_load_context(struct vmm_vm *vm, const struct vmm_task_context *ctx)
{
	struct kvm_sregs sregs;
	struct kvm_xsave xsave;
	if (!vm || !ctx)
		return -EINVAL;
	if (vm->resume == RESUME_NONE)
		return -ENOEXEC; /* a context is loaded into a started VM only */
	/* The state may come from a guest-written signal frame: refuse what the CPU would. */
	if (ctx->fs_base >= USER_VA_END || ctx->gs_base >= USER_VA_END)
		return -EPERM;
	/* (the vDSO's page is the user's too: a thread may be switched out in a call from it) */
	bool in_vdso = vm->vdso && ctx->regs.rip >= VDSO_VA && ctx->regs.rip < VDSO_VA + VMM_PAGE_SIZE;
	if ((ctx->regs.rip >= USER_VA_END && !in_vdso) || !canonical(ctx->regs.rsp))
		return -EFAULT;
	uint32_t mxcsr;
	memcpy(&mxcsr, ctx->fpu + FXSAVE_MXCSR_OFF, 4);
	if (mxcsr & ~MXCSR_VALID)
		return -EINVAL;
	if (ioctl(vm->vcpu_fd, KVM_GET_SREGS, &sregs) < 0)
		return -errno;
	memset(&xsave, 0, sizeof(xsave));
	memcpy(xsave.region, ctx->fpu, VMM_FPU_STATE_BYTES);
	/* Only the components XCR0 enables, in the standard (uncompacted) form. */
	uint64_t in_use;
	memcpy(&in_use, (uint8_t *)xsave.region + XSAVE_HEADER, 8);
	in_use &= GUEST_XCR0;
	memset((uint8_t *)xsave.region + XSAVE_HEADER, 0, 64);
	memcpy((uint8_t *)xsave.region + XSAVE_HEADER, &in_use, 8);
	if (ioctl(vm->vcpu_fd, KVM_SET_XSAVE, &xsave) < 0)
		return -errno;
	sregs.fs.base = ctx->fs_base;
	sregs.gs.base = ctx->gs_base;
	if (ioctl(vm->vcpu_fd, KVM_SET_SREGS, &sregs) < 0)
		return -errno;
	*vmm_vcpu_regs(vm) = ctx->regs;
	/* PVM leaves a syscall at CPL3, where the registers are loaded as they are. At CPL0
	 * resume through iretq, which restores every register (a sysret clobbers rcx, r11);
	 * after an exception the frame it came through is already in place. */
	if (vm->resume == RESUME_SYSCALL && vm->syscall_at_cpl0) {
		vm->resume = RESUME_FRAME;
		vm->frame_addr = START_FRAME_ADDR;
	}
	return 0;
}
