/*
 * Snapshots: the guest-observable vCPU state in a canonical byte layout, plus guest memory
 * copied into a reusable image, fully or only the pages written since.
 *
 * Snapshots are taken only between runs, when the guest sits at a syscall or exception
 * boundary. There the vCPU has no pending event and everything outside the canonical state
 * is the VMM's constant configuration (CR0/3/4, EFER, descriptor tables, syscall MSRs,
 * XCR0), so restore re-applies that configuration and returns to user mode through an
 * iretq frame. That path is the same on PVM and hardware KVM, so a snapshot taken on one
 * host restores on another.
 */

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>

#include "vmm_internal.h"

#define MSR_KERNEL_GS_BASE 0xc0000102u

/* Offsets in the FXSAVE legacy area (the first 512 bytes of an XSAVE image), and the
 * XSAVE header's XSTATE_BV (Intel SDM vol. 1, 10.5.1 and 13.4.2). */
#define FXSAVE_FCW 0
#define FXSAVE_FSW 2
#define FXSAVE_FTW 4
#define FXSAVE_FOP 6
#define FXSAVE_FIP 8
#define FXSAVE_FDP 16
#define FXSAVE_MXCSR 24
#define FXSAVE_ST 32
#define FXSAVE_XMM 160
#define XSAVE_XSTATE_BV 512
#define XFEATURES_X87_SSE 0x3u

struct vmm_snapshot {
	struct vmm_vm *vm;
	uint8_t *mem;          /* image of guest memory; pages >= high are zero */
	uint32_t high;
	uint8_t *state;
	uint64_t state_len;
	uint32_t *pages;       /* pfns copied by the last take */
	uint32_t page_count;
	bool valid;
	bool trusted;          /* taken by this VMM; an imported snapshot is checked first */
	char problem[192];     /* why the last import or restore was refused */
};

int vmm_snapshot_create(struct vmm_vm *vm, struct vmm_snapshot **out)
{
	struct vmm_snapshot *s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->vm = vm;
	s->mem = mmap(NULL, vm->mem_size, PROT_READ | PROT_WRITE,
		      MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	s->pages = malloc((size_t)vm->npages * sizeof(uint32_t));
	s->state = malloc(STATE_FIXED_BYTES + (size_t)vm->npages * sizeof(uint32_t));
	if (s->mem == MAP_FAILED || !s->pages || !s->state) {
		if (s->mem != MAP_FAILED)
			munmap(s->mem, vm->mem_size);
		free(s->pages);
		free(s->state);
		free(s);
		return -ENOMEM;
	}
	*out = s;
	return 0;
}

void vmm_snapshot_destroy(struct vmm_snapshot *snap)
{
	if (!snap)
		return;
	if (snap->vm && snap->vm->base == snap)
		snap->vm->base = NULL;
	munmap(snap->mem, snap->vm->mem_size);
	free(snap->pages);
	free(snap->state);
	free(snap);
}

static void put(uint8_t **p, const void *v, size_t n)
{
	memcpy(*p, v, n);
	*p += n;
}

static void put64(uint8_t **p, uint64_t v) { put(p, &v, 8); }

static void get(const uint8_t **p, void *v, size_t n)
{
	memcpy(v, *p, n);
	*p += n;
}

static uint64_t get64(const uint8_t **p)
{
	uint64_t v;
	get(p, &v, 8);
	return v;
}

int64_t vmm_vm_state_size(const struct vmm_vm *vm)
{
	return STATE_FIXED_BYTES + (int64_t)vm->frames.free_count * 4;
}

/* The x87/SSE state, read through KVM's XSAVE image rather than KVM_GET_FPU: the image
 * shows a component the CPU holds in its init state (XSTATE_BV bit clear) with its init
 * values, while KVM_GET_FPU returns whatever the legacy area last held. */
static int read_fpu(struct vmm_vm *vm, struct kvm_fpu *fpu)
{
	struct kvm_xsave xsave;
	if (ioctl(vm->vcpu_fd, KVM_GET_XSAVE, &xsave) < 0)
		return -errno;
	const uint8_t *x = (const uint8_t *)xsave.region;
	memset(fpu, 0, sizeof(*fpu));
	memcpy(&fpu->fcw, x + FXSAVE_FCW, 2);
	memcpy(&fpu->fsw, x + FXSAVE_FSW, 2);
	fpu->ftwx = x[FXSAVE_FTW];
	memcpy(&fpu->last_opcode, x + FXSAVE_FOP, 2);
	memcpy(&fpu->last_ip, x + FXSAVE_FIP, 8);
	memcpy(&fpu->last_dp, x + FXSAVE_FDP, 8);
	memcpy(&fpu->mxcsr, x + FXSAVE_MXCSR, 4);
	memcpy(fpu->fpr, x + FXSAVE_ST, sizeof(fpu->fpr));
	memcpy(fpu->xmm, x + FXSAVE_XMM, sizeof(fpu->xmm));
	return 0;
}

/* Write the x87/SSE state and mark both components in use (XSTATE_BV): KVM_SET_FPU fills
 * the legacy area but leaves XSTATE_BV alone, so on a vCPU whose SSE state was still in
 * its init state the XMM registers written would be ignored and read back as zeros. */
static int write_fpu(struct vmm_vm *vm, const struct kvm_fpu *fpu)
{
	struct kvm_xsave xsave;
	if (ioctl(vm->vcpu_fd, KVM_GET_XSAVE, &xsave) < 0)
		return -errno;
	uint8_t *x = (uint8_t *)xsave.region;
	memcpy(x + FXSAVE_FCW, &fpu->fcw, 2);
	memcpy(x + FXSAVE_FSW, &fpu->fsw, 2);
	x[FXSAVE_FTW] = fpu->ftwx;
	memcpy(x + FXSAVE_FOP, &fpu->last_opcode, 2);
	memcpy(x + FXSAVE_FIP, &fpu->last_ip, 8);
	memcpy(x + FXSAVE_FDP, &fpu->last_dp, 8);
	memcpy(x + FXSAVE_MXCSR, &fpu->mxcsr, 4);
	memcpy(x + FXSAVE_ST, fpu->fpr, sizeof(fpu->fpr));
	memcpy(x + FXSAVE_XMM, fpu->xmm, sizeof(fpu->xmm));
	uint64_t in_use;
	memcpy(&in_use, x + XSAVE_XSTATE_BV, 8);
	in_use |= XFEATURES_X87_SSE;
	memcpy(x + XSAVE_XSTATE_BV, &in_use, 8);
	if (ioctl(vm->vcpu_fd, KVM_SET_XSAVE, &xsave) < 0)
		return -errno;
	return 0;
}

int vmm_vm_export_state(struct vmm_vm *vm, uint8_t *buf, uint64_t len)
{
	if (len < (uint64_t)vmm_vm_state_size(vm))
		return -ENOSPC;
	struct kvm_sregs sregs;
	struct kvm_fpu fpu;
	struct {
		struct kvm_msrs hdr;
		struct kvm_msr_entry e;
	} msr = {.hdr.nmsrs = 1, .e.index = MSR_KERNEL_GS_BASE};
	struct kvm_vcpu_events events;
	if (ioctl(vm->vcpu_fd, KVM_GET_SREGS, &sregs) < 0 ||
	    ioctl(vm->vcpu_fd, KVM_GET_VCPU_EVENTS, &events) < 0)
		return -errno;
	int rc = read_fpu(vm, &fpu);
	if (rc < 0)
		return rc;
	if (ioctl(vm->vcpu_fd, KVM_GET_MSRS, &msr) != 1)
		return -EIO;
	/* At a run boundary nothing may be in flight; a snapshot could not carry it. */
	if (events.exception.injected || events.exception.pending || events.interrupt.injected ||
	    events.nmi.injected || events.nmi.pending)
		return -EBUSY;

	const struct kvm_regs *r = vmm_vcpu_regs(vm);
	uint8_t *p = buf;
	put(&p, STATE_MAGIC, 8);
	const uint64_t gprs[18] = {r->rax, r->rbx, r->rcx, r->rdx, r->rsi, r->rdi,
				   r->rsp, r->rbp, r->r8,  r->r9,  r->r10, r->r11,
				   r->r12, r->r13, r->r14, r->r15, r->rip, r->rflags};
	put(&p, gprs, sizeof(gprs));
	put64(&p, sregs.fs.base);
	put64(&p, sregs.gs.base);
	put64(&p, msr.e.data);
	put64(&p, fpu.fcw);
	put64(&p, fpu.fsw);
	put64(&p, fpu.ftwx);
	put64(&p, fpu.last_opcode);
	put64(&p, fpu.last_ip);
	put64(&p, fpu.last_dp);
	put64(&p, fpu.mxcsr);
	put(&p, fpu.fpr, sizeof(fpu.fpr));
	put(&p, fpu.xmm, sizeof(fpu.xmm));
	uint32_t alloc[4] = {vm->frames.high, vm->frames.used, vm->frames.free_count, 0};
	put(&p, alloc, sizeof(alloc));
	memset(p, 0, STATE_FIXED_BYTES - (size_t)(p - buf));
	p = buf + STATE_FIXED_BYTES;
	put(&p, vm->frames.free_stack, (size_t)vm->frames.free_count * 4);
	return 0;
}

/* Load canonical state (already checked by snapshot_check_state) into the live vCPU and
 * allocator. */
int vmm_load_state(struct vmm_vm *vm, const uint8_t *buf, uint64_t len)
{
	if (len < STATE_FIXED_BYTES || memcmp(buf, STATE_MAGIC, 8) != 0)
		return -EINVAL;
	const uint8_t *p = buf + 8;
	uint64_t gprs[18];
	get(&p, gprs, sizeof(gprs));
	uint64_t fs_base = get64(&p), gs_base = get64(&p), kgs_base = get64(&p);
	struct kvm_fpu fpu = {0};
	fpu.fcw = (uint16_t)get64(&p);
	fpu.fsw = (uint16_t)get64(&p);
	fpu.ftwx = (uint8_t)get64(&p);
	fpu.last_opcode = (uint16_t)get64(&p);
	fpu.last_ip = get64(&p);
	fpu.last_dp = get64(&p);
	fpu.mxcsr = (uint32_t)get64(&p);
	get(&p, fpu.fpr, sizeof(fpu.fpr));
	get(&p, fpu.xmm, sizeof(fpu.xmm));
	uint32_t alloc[4];
	get(&p, alloc, sizeof(alloc));
	if (alloc[0] < FIRST_FRAME_PFN || alloc[0] > vm->npages || alloc[2] > vm->npages ||
	    len < STATE_FIXED_BYTES + (uint64_t)alloc[2] * 4)
		return -EINVAL;

	/* Not the current sregs: after a syscall exit on PVM the vCPU sits at CPL3, and the
	 * resume below needs CPL0 to run the iretq stub. */
	struct kvm_sregs sregs = vm->sregs_template;
	sregs.fs.base = fs_base;
	sregs.gs.base = gs_base;
	struct {
		struct kvm_msrs hdr;
		struct kvm_msr_entry e;
	} msr = {.hdr.nmsrs = 1, .e = {.index = MSR_KERNEL_GS_BASE, .data = kgs_base}};
	struct kvm_vcpu_events events = {0};
	struct kvm_xcrs xcrs = {.nr_xcrs = 1, .xcrs = {{.xcr = 0, .value = GUEST_XCR0}}};
	if (ioctl(vm->vcpu_fd, KVM_SET_SREGS, &sregs) < 0 ||
	    ioctl(vm->vcpu_fd, KVM_SET_XCRS, &xcrs) < 0 ||
	    ioctl(vm->vcpu_fd, KVM_SET_VCPU_EVENTS, &events) < 0)
		return -errno;
	int rc = write_fpu(vm, &fpu);
	if (rc < 0)
		return rc;
	if (ioctl(vm->vcpu_fd, KVM_SET_MSRS, &msr) != 1)
		return -EIO;

	vm->frames.high = alloc[0];
	vm->frames.used = alloc[1];
	vm->frames.free_count = alloc[2];
	memcpy(vm->frames.free_stack, buf + STATE_FIXED_BYTES, (size_t)alloc[2] * 4);

	/* Resume through an iretq frame at the top of the IST stack, as at program start. */
	rc = vmm_vcpu_start_user(vm, gprs[16], gprs[6]);
	if (rc < 0)
		return rc;
	struct kvm_regs *r = vmm_vcpu_regs(vm);
	r->rax = gprs[0], r->rbx = gprs[1], r->rcx = gprs[2], r->rdx = gprs[3];
	r->rsi = gprs[4], r->rdi = gprs[5], r->rsp = gprs[6], r->rbp = gprs[7];
	r->r8 = gprs[8], r->r9 = gprs[9], r->r10 = gprs[10], r->r11 = gprs[11];
	r->r12 = gprs[12], r->r13 = gprs[13], r->r14 = gprs[14], r->r15 = gprs[15];
	r->rip = gprs[16], r->rflags = gprs[17];
	return 0;
}

/* Pages written since the last take/restore: KVM's log (guest writes) + the host's own. */
static int collect_dirty(struct vmm_vm *vm)
{
	size_t words = (vm->npages + 63) / 64;
	struct kvm_dirty_log log = {.slot = 0, .dirty_bitmap = vm->kvm_dirty};
	memset(vm->kvm_dirty, 0, words * 8);
	if (ioctl(vm->vm_fd, KVM_GET_DIRTY_LOG, &log) < 0)
		return -errno;
	for (size_t i = 0; i < words; i++) {
		vm->kvm_dirty[i] |= vm->host_dirty[i];
		vm->host_dirty[i] = 0;
	}
	return 0;
}

/* Copy every page marked in the collected dirty bitmap below `limit` from src to dst,
 * recording the frame numbers in `pfns` when given; returns how many were copied. */
static uint32_t copy_dirty_pages(struct vmm_vm *vm, uint8_t *dst, const uint8_t *src,
				 uint32_t limit, uint32_t *pfns)
{
	uint32_t n = 0;
	for (uint32_t w = 0; w < (limit + 63) / 64; w++) {
		uint64_t bits = vm->kvm_dirty[w];
		while (bits) {
			uint32_t pfn = w * 64 + (uint32_t)__builtin_ctzll(bits);
			bits &= bits - 1;
			if (pfn >= limit)
				break;
			size_t off = (size_t)pfn << PAGE_SHIFT;
			memcpy(dst + off, src + off, VMM_PAGE_SIZE);
			if (pfns)
				pfns[n] = pfn;
			n++;
		}
	}
	return n;
}

int64_t vmm_snapshot_take(struct vmm_vm *vm, struct vmm_snapshot *snap, int incremental)
{
	if (!vm || !snap || snap->vm != vm)
		return -EINVAL;
	int rc = vmm_vm_export_state(vm, snap->state, STATE_FIXED_BYTES + (uint64_t)vm->npages * 4);
	if (rc < 0)
		return rc;
	snap->state_len = (uint64_t)vmm_vm_state_size(vm);
	rc = collect_dirty(vm);
	if (rc < 0)
		return rc;

	uint32_t high = vm->frames.high;
	uint32_t n = 0;
	if (incremental && vm->base == snap && snap->valid) {
		n = copy_dirty_pages(vm, snap->mem, vm->mem, high, snap->pages);
	} else {
		memcpy(snap->mem, vm->mem, (size_t)high << PAGE_SHIFT);
		if (snap->high > high)
			memset(snap->mem + ((size_t)high << PAGE_SHIFT), 0,
			       (size_t)(snap->high - high) << PAGE_SHIFT);
		for (uint32_t pfn = 0; pfn < high; pfn++)
			snap->pages[n++] = pfn;
	}
	snap->page_count = n;
	snap->high = high;
	snap->valid = true;
	snap->trusted = true;
	snap->problem[0] = 0;
	vm->base = snap;
	return n;
}

int64_t vmm_snapshot_restore(struct vmm_vm *vm, struct vmm_snapshot *snap)
{
	if (!vm || !snap || snap->vm != vm || !snap->valid)
		return -EINVAL;
	/* An imported snapshot is checked in full before the VM is touched, so a refused
	 * restore leaves the VM as it was. One this VMM took is not checked again: it holds
	 * what the VM held, and a guest can reach states a file may not carry (a program
	 * that sets rsp to a non-canonical value and then makes a system call). */
	int rc = 0;
	if (!snap->trusted) {
		rc = snapshot_check_state(vm, snap->state, snap->state_len, snap->problem,
					  sizeof(snap->problem));
		if (rc == 0)
			rc = snapshot_check_image(vm, snap->mem, snap->state, snap->problem,
						  sizeof(snap->problem));
	}
	if (rc < 0)
		return rc;
	snap->trusted = true;
	rc = collect_dirty(vm);
	if (rc < 0)
		return rc;
	uint32_t live_high = vm->frames.high;
	uint32_t n = 0;
	if (vm->base == snap) {
		uint32_t limit = live_high > snap->high ? live_high : snap->high;
		n = copy_dirty_pages(vm, vm->mem, snap->mem, limit, NULL);
	} else {
		memcpy(vm->mem, snap->mem, (size_t)snap->high << PAGE_SHIFT);
		if (live_high > snap->high)
			memset(vm->mem + ((size_t)snap->high << PAGE_SHIFT), 0,
			       (size_t)(live_high - snap->high) << PAGE_SHIFT);
		n = snap->high;
	}
	if (vm->fastpath || vm->vdso)
		vmm_fastpath_install(vm); /* a file's image has no scratch, an older one no slots */
	rc = vmm_load_state(vm, snap->state, snap->state_len);
	if (rc < 0)
		return rc;
	/* Host writes to page tables are invisible to shadow paging: drop every cached
	 * translation by re-creating the memslot (this also starts a clean dirty log). */
	rc = vmm_memslot_set(vm, false);
	if (rc == 0)
		rc = vmm_memslot_set(vm, true);
	if (rc < 0)
		return rc;
	memset(vm->host_dirty, 0, ((vm->npages + 63) / 64) * 8);
	vm->fix_count = 0;
	vm->base = snap;
	return n;
}

int64_t vmm_snapshot_last_pages(const struct vmm_snapshot *snap, const uint32_t **pfns)
{
	*pfns = snap->pages;
	return snap->page_count;
}

const uint8_t *vmm_snapshot_memory(const struct vmm_snapshot *snap, uint64_t *used_bytes)
{
	if (used_bytes)
		*used_bytes = (uint64_t)snap->high << PAGE_SHIFT;
	return snap->mem;
}

int64_t vmm_snapshot_state_size(const struct vmm_snapshot *snap)
{
	return snap->valid ? (int64_t)snap->state_len : -ENODATA;
}

int vmm_snapshot_export_state(const struct vmm_snapshot *snap, uint8_t *buf, uint64_t len)
{
	if (!snap->valid)
		return -ENODATA;
	if (len < snap->state_len)
		return -ENOSPC;
	memcpy(buf, snap->state, snap->state_len);
	return 0;
}

int vmm_snapshot_import_state(struct vmm_snapshot *snap, const uint8_t *buf, uint64_t len)
{
	struct vmm_vm *vm = snap->vm;
	int rc = snapshot_check_state(vm, buf, len, snap->problem, sizeof(snap->problem));
	if (rc < 0)
		return rc;
	uint32_t alloc[4];
	memcpy(alloc, buf + STATE_OFF_ALLOC, sizeof(alloc));
	/* The image is rebuilt page by page next, starting from zero. */
	memset(snap->mem, 0, (size_t)snap->high << PAGE_SHIFT);
	memcpy(snap->state, buf, len);
	snap->state_len = len;
	snap->high = alloc[0];
	snap->page_count = 0;
	snap->valid = true;
	snap->trusted = false;
	snap->problem[0] = 0;
	if (vm->base == snap)
		vm->base = NULL;
	return 0;
}

int vmm_snapshot_import_page(struct vmm_snapshot *snap, uint32_t pfn, const uint8_t *page)
{
	if (!snap->valid || pfn >= snap->high) {
		snprintf(snap->problem, sizeof(snap->problem), "page 0x%x is not below the "
			 "state's high 0x%x", pfn, snap->high);
		return -EINVAL;
	}
	memcpy(snap->mem + ((size_t)pfn << PAGE_SHIFT), page, VMM_PAGE_SIZE);
	snap->trusted = false;
	return 0;
}

const char *vmm_snapshot_problem(const struct vmm_snapshot *snap)
{
	return snap->problem;
}

void vmm_vm_scratch_range(uint64_t *gpa_start, uint64_t *gpa_end)
{
	*gpa_start = GPA_SCRATCH;
	*gpa_end = GPA_FIXOPS + FIXOPS_BYTES;
}
