/*
 * Cloning a VM: fork(2) without CLONE_VM makes the child a separate VM holding a copy of
 * the parent's memory and vCPU state.
 *
 * The child is a fresh VM (its own memslot, dirty log and snapshot base) filled the way a
 * snapshot restore fills a VM: guest memory is copied up to the allocator's high mark
 * (frames above it are zero in both), the canonical state carries registers, FS/GS bases
 * and the allocator, and the vCPU resumes through an iretq frame at the user rip, which
 * is where the parent resumes too, whether it stopped at a syscall or an exception.
 * Page tables hold guest-physical addresses, so the copies stay valid in the child. The
 * parent's queued page-table fix-ups are not carried over: they make the parent's cached
 * translations agree with its memory, and the child has no cached translation yet.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>

#include "vmm_internal.h"

/* The full XSAVE image, so the child's extended state (and which components are in use)
 * is bit-for-bit the parent's rather than the canonical x87/SSE subset alone. */
static int copy_xsave(struct vmm_vm *parent, struct vmm_vm *child)
{
	struct kvm_xsave *xsave = calloc(1, (size_t)parent->xsave_size);
	if (!xsave)
		return -ENOMEM;
	int rc = 0;
	if (ioctl(parent->vcpu_fd, KVM_GET_XSAVE, xsave) < 0 ||
	    ioctl(child->vcpu_fd, KVM_SET_XSAVE, xsave) < 0)
		rc = -errno;
	free(xsave);
	return rc;
}

int vmm_vm_clone(struct vmm_vm *parent, struct vmm_vm **out)
{
	if (!parent || !out)
		return -EINVAL;
	/* Not started, or stopped at an arbitrary instruction by a host signal: there is no
	 * boundary to resume the child from (as vmm_vcpu_run refuses to resume the parent). */
	if (parent->resume == RESUME_NONE)
		return -ENOEXEC;
	int64_t state_len = vmm_vm_state_size(parent);
	uint8_t *state = malloc((size_t)state_len);
	if (!state)
		return -ENOMEM;
	int rc = vmm_vm_export_state(parent, state, (uint64_t)state_len);
	if (rc < 0) {
		free(state);
		return rc;
	}

	struct vmm_config config = {.mem_size = parent->mem_size};
	struct vmm_vm *child = NULL;
	rc = vmm_vm_create(&config, &child);
	if (rc < 0)
		goto out;
	if (parent->syscall_mode_known) {
		rc = vmm_vm_set_syscall_mode(child, parent->syscall_at_cpl0 ? 1 : 0);
		if (rc < 0)
			goto out;
	}
	/* Host writes are not in KVM's dirty log, and the child has no snapshot base yet:
	 * its first snapshot is a full copy, so nothing needs marking here. */
	memcpy(child->mem, parent->mem, (size_t)parent->frames.high << PAGE_SHIFT);
	child->vdso = parent->vdso; /* the copied memory holds the pages already */
	if (parent->fastpath) {
		child->fastpath = true;
		rc = vmm_set_syscall_entry(child);
		if (rc < 0)
			goto out;
	}
	rc = vmm_load_state(child, state, (uint64_t)state_len);
	if (rc < 0)
		goto out;
	rc = copy_xsave(parent, child);
	if (rc < 0)
		goto out;
	*out = child;
	child = NULL;
out:
	vmm_vm_destroy(child);
	free(state);
	return rc;
}
