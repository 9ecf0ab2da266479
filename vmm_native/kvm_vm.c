/* VM and vCPU lifecycle: /dev/kvm, the memslot, the vCPU and its shared kvm_run page. */

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include "vmm_internal.h"

int vmm_memslot_set(struct vmm_vm *vm, bool present)
{
	struct kvm_userspace_memory_region region = {
		.slot = 0,
		.flags = present ? KVM_MEM_LOG_DIRTY_PAGES : 0,
		.guest_phys_addr = 0,
		.memory_size = present ? vm->mem_size : 0,
		.userspace_addr = (uint64_t)(uintptr_t)vm->mem,
	};
	if (ioctl(vm->vm_fd, KVM_SET_USER_MEMORY_REGION, &region) < 0)
		return -errno;
	return 0;
}

static int open_kvm(void)
{
	int fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	int version = ioctl(fd, KVM_GET_API_VERSION, 0);
	if (version != KVM_API_VERSION) {
		close(fd);
		return -EPROTO;
	}
	/* Sync regs save two ioctls per exit; the design depends on them. */
	int sync = ioctl(fd, KVM_CHECK_EXTENSION, KVM_CAP_SYNC_REGS);
	if (sync < 0 || !(sync & KVM_SYNC_X86_REGS)) {
		close(fd);
		return -EOPNOTSUPP;
	}
	return fd;
}

int vmm_vm_create(const struct vmm_config *config, struct vmm_vm **out)
{
	const uint64_t two_mib = 2ull << 20;
	if (!config || !out || config->mem_size < two_mib || config->mem_size % two_mib ||
	    config->mem_size > (uint64_t)DIRECT_MAX_GIB << 30)
		return -EINVAL;

	struct vmm_vm *vm = calloc(1, sizeof(*vm));
	if (!vm)
		return -ENOMEM;
	vm->kvm_fd = vm->vm_fd = vm->vcpu_fd = -1;
	vm->mem = MAP_FAILED;
	vm->run = MAP_FAILED;
	vm->mem_size = config->mem_size;
	vm->npages = (uint32_t)(config->mem_size >> PAGE_SHIFT);
	int rc;

	rc = open_kvm();
	if (rc < 0)
		goto fail;
	vm->kvm_fd = rc;

	rc = ioctl(vm->kvm_fd, KVM_CREATE_VM, 0);
	if (rc < 0) {
		rc = -errno;
		goto fail;
	}
	vm->vm_fd = rc;

	/* Untouched anonymous memory reads as zero; never memset it (first touch is costly). */
	vm->mem = mmap(NULL, vm->mem_size, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (vm->mem == MAP_FAILED) {
		rc = -errno;
		goto fail;
	}
	rc = vmm_memslot_set(vm, true);
	if (rc < 0)
		goto fail;

	size_t bitmap_words = (vm->npages + 63) / 64;
	vm->host_dirty = calloc(bitmap_words, sizeof(uint64_t));
	vm->kvm_dirty = calloc(bitmap_words, sizeof(uint64_t));
	vm->fix_cap = 1024;
	vm->fix_gpa = malloc(vm->fix_cap * sizeof(uint64_t));
	if (!vm->host_dirty || !vm->kvm_dirty || !vm->fix_gpa) {
		rc = -ENOMEM;
		goto fail;
	}
	rc = frames_init(&vm->frames, vm->npages);
	if (rc < 0)
		goto fail;

	rc = ioctl(vm->vm_fd, KVM_CREATE_VCPU, 0);
	if (rc < 0) {
		rc = -errno;
		goto fail;
	}
	vm->vcpu_fd = rc;
	int run_size = ioctl(vm->kvm_fd, KVM_GET_VCPU_MMAP_SIZE, 0);
	if (run_size < 0) {
		rc = -errno;
		goto fail;
	}
	vm->run_size = (size_t)run_size;
	vm->run = mmap(NULL, vm->run_size, PROT_READ | PROT_WRITE, MAP_SHARED, vm->vcpu_fd, 0);
	if (vm->run == MAP_FAILED) {
		rc = -errno;
		goto fail;
	}
	int xsave_size = ioctl(vm->kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_XSAVE2);
	vm->xsave_size = xsave_size > (int)sizeof(struct kvm_xsave) ? xsave_size
								    : (int)sizeof(struct kvm_xsave);

	rc = vmm_setup_system_area(vm);
	if (rc < 0)
		goto fail;
	rc = vmm_setup_vcpu(vm);
	if (rc < 0)
		goto fail;

	vm->run->kvm_valid_regs = KVM_SYNC_X86_REGS;
	*out = vm;
	return 0;
fail:
	vmm_vm_destroy(vm);
	return rc;
}

void vmm_vm_destroy(struct vmm_vm *vm)
{
	if (!vm)
		return;
	if (vm->run != MAP_FAILED)
		munmap(vm->run, vm->run_size);
	if (vm->vcpu_fd >= 0)
		close(vm->vcpu_fd);
	if (vm->vm_fd >= 0)
		close(vm->vm_fd);
	if (vm->kvm_fd >= 0)
		close(vm->kvm_fd);
	if (vm->mem != MAP_FAILED)
		munmap(vm->mem, vm->mem_size);
	frames_fini(&vm->frames);
	free(vm->host_dirty);
	free(vm->kvm_dirty);
	free(vm->fix_gpa);
	free(vm);
}

int vmm_vm_stats(const struct vmm_vm *vm, struct vmm_stats *out)
{
	if (!vm || !out)
		return -EINVAL;
	*out = vm->stats;
	out->frames_used = vm->frames.used;
	out->frames_high = vm->frames.high;
	return 0;
}

struct kvm_regs *vmm_vcpu_regs(struct vmm_vm *vm)
{
	return &vm->run->s.regs.regs;
}

uint8_t *vmm_vm_memory(struct vmm_vm *vm, uint64_t *used_bytes)
{
	if (used_bytes)
		*used_bytes = (uint64_t)vm->frames.high << PAGE_SHIFT;
	return vm->mem;
}
