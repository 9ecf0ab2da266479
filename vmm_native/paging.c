/*
 * Guest frames and user page tables.
 *
 * The seam for page-table updates: entries that are not present may be filled from the
 * host at any time (the MMU has nothing cached for them). An entry that is present may be
 * cached in shadow page tables (PVM) or the TLB (hardware KVM), so changing it from the
 * host is not enough: the new value is also queued for the CPL0 fix-up routine, which
 * stores it again from inside the guest before the guest runs (see exit_loop.c).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "vmm_internal.h"

void *gpa_ptr(struct vmm_vm *vm, uint64_t gpa)
{
	return vm->mem + gpa;
}

bool user_gpa_ok(const struct vmm_vm *vm, uint64_t gpa)
{
	uint64_t pfn = gpa >> PAGE_SHIFT;
	return pfn >= FIRST_FRAME_PFN && pfn < vm->frames.high && vm->frames.high <= vm->npages;
}

void mark_host_dirty(struct vmm_vm *vm, uint64_t gpa, uint64_t len)
{
	if (len == 0)
		return;
	uint64_t first = gpa >> PAGE_SHIFT, last = (gpa + len - 1) >> PAGE_SHIFT;
	for (uint64_t p = first; p <= last && p < vm->npages; p++)
		vm->host_dirty[p / 64] |= 1ull << (p % 64);
}

int frames_init(struct frame_alloc *fa, uint32_t total)
{
	fa->total = total;
	fa->high = FIRST_FRAME_PFN;
	fa->free_count = 0;
	fa->used = 0;
	fa->free_stack = malloc((size_t)total * sizeof(uint32_t));
	return fa->free_stack ? 0 : -ENOMEM;
}

void frames_fini(struct frame_alloc *fa)
{
	free(fa->free_stack);
	fa->free_stack = NULL;
}

/* A zeroed frame in *pfn; -ENOMEM when guest memory is exhausted, -EFAULT when the free
 * list names a frame outside the user frames (it is checked on import; this is the
 * second line, so a bad entry can never make the memset below leave guest memory). */
static int frame_alloc(struct vmm_vm *vm, uint32_t *pfn)
{
	struct frame_alloc *fa = &vm->frames;
	if (fa->free_count) {
		uint32_t reused = fa->free_stack[fa->free_count - 1];
		if (!user_gpa_ok(vm, (uint64_t)reused << PAGE_SHIFT))
			return -EFAULT;
		fa->free_count--;
		memset(gpa_ptr(vm, (uint64_t)reused << PAGE_SHIFT), 0, VMM_PAGE_SIZE);
		*pfn = reused;
	} else if (fa->high < fa->total) {
		*pfn = fa->high++; /* never used since the last restore: already zero */
	} else {
		return -ENOMEM;
	}
	fa->used++;
	mark_host_dirty(vm, (uint64_t)*pfn << PAGE_SHIFT, VMM_PAGE_SIZE);
	return 0;
}

static int frame_free(struct vmm_vm *vm, uint32_t pfn)
{
	struct frame_alloc *fa = &vm->frames;
	if (!user_gpa_ok(vm, (uint64_t)pfn << PAGE_SHIFT) || fa->free_count >= fa->total ||
	    fa->used == 0)
		return -EFAULT;
	fa->free_stack[fa->free_count++] = pfn;
	fa->used--;
	return 0;
}

static int queue_fix(struct vmm_vm *vm, uint64_t pte_gpa)
{
	if (vm->fix_count == vm->fix_cap) {
		uint32_t cap = vm->fix_cap * 2;
		uint64_t *grown = realloc(vm->fix_gpa, cap * sizeof(uint64_t));
		if (!grown)
			return -ENOMEM;
		vm->fix_gpa = grown;
		vm->fix_cap = cap;
	}
	vm->fix_gpa[vm->fix_count++] = pte_gpa;
	return 0;
}

/* Guest-physical address of the leaf entry for va; intermediate tables are created when
 * `create` is set. Returns 0 when the walk cannot complete: *err stays 0 when the page
 * simply has no table, and is -EFAULT when an entry names a table outside the user frames
 * or a large page (the VMM never makes either), -ENOMEM when no frame is left. */
static uint64_t leaf_entry(struct vmm_vm *vm, uint64_t va, bool create, int *err)
{
	uint64_t table = GPA_PML4;
	for (int level = 3; level > 0; level--) {
		uint64_t index = (va >> (12 + 9 * level)) & 511;
		uint64_t *entry = (uint64_t *)gpa_ptr(vm, table) + index;
		if (!(*entry & PTE_P)) {
			if (!create)
				return 0;
			uint32_t pfn;
			int rc = frame_alloc(vm, &pfn);
			if (rc < 0) {
				*err = rc;
				return 0;
			}
			/* Filling a non-present entry: nothing is cached for it, no fix-up needed. */
			*entry = ((uint64_t)pfn << PAGE_SHIFT) | PTE_USER_TABLE;
			mark_host_dirty(vm, table + index * 8, 8);
		}
		if ((*entry & PTE_PS) || !user_gpa_ok(vm, *entry & PTE_ADDR)) {
			*err = -EFAULT;
			return 0;
		}
		table = *entry & PTE_ADDR;
	}
	return table + ((va >> 12) & 511) * 8;
}

static uint64_t leaf_bits(int prot)
{
	if (!(prot & (VMM_PROT_READ | VMM_PROT_WRITE | VMM_PROT_EXEC)))
		return PTE_SW_FRAME;
	uint64_t bits = PTE_P | PTE_US | PTE_A | PTE_D; /* A/D preset: the MMU never writes them */
	if (prot & VMM_PROT_WRITE)
		bits |= PTE_RW;
	if (!(prot & VMM_PROT_EXEC))
		bits |= PTE_NX;
	return bits;
}

static bool has_frame(uint64_t pte)
{
	return (pte & (PTE_P | PTE_SW_FRAME)) != 0;
}

/* Store a new value in a leaf entry, queuing the CPL0 re-store when it was present (the
 * MMU may have cached it). A later change to the same entry before the guest runs is
 * covered by that queued re-store, which stores whatever the entry holds by then. */
static int set_leaf(struct vmm_vm *vm, uint64_t pte_gpa, uint64_t value)
{
	uint64_t *slot = gpa_ptr(vm, pte_gpa);
	uint64_t old = *slot;
	if (old == value)
		return 0;
	*slot = value;
	mark_host_dirty(vm, pte_gpa, 8);
	return (old & PTE_P) ? queue_fix(vm, pte_gpa) : 0;
}

static int check_range(uint64_t va, uint64_t len)
{
	if ((va & ~PAGE_MASK) || (len & ~PAGE_MASK) || va + len < va || va + len > USER_VA_END)
		return -EINVAL;
	return 0;
}

int vmm_mem_map(struct vmm_vm *vm, uint64_t va, uint64_t len, int prot)
{
	int rc = check_range(va, len);
	if (rc < 0)
		return rc;
	uint64_t bits = leaf_bits(prot);
	for (uint64_t a = va; a < va + len; a += VMM_PAGE_SIZE) {
		int err = 0;
		uint64_t pte_gpa = leaf_entry(vm, a, true, &err);
		if (!pte_gpa)
			return err;
		uint64_t pte = *(uint64_t *)gpa_ptr(vm, pte_gpa);
		if (has_frame(pte)) {
			if (!user_gpa_ok(vm, pte & PTE_ADDR))
				return -EFAULT;
			rc = set_leaf(vm, pte_gpa, (pte & PTE_ADDR) | bits);
		} else if (bits & PTE_P) {
			uint32_t pfn;
			rc = frame_alloc(vm, &pfn);
			if (rc < 0)
				return rc;
			rc = set_leaf(vm, pte_gpa, ((uint64_t)pfn << PAGE_SHIFT) | bits);
		}
		if (rc < 0)
			return rc;
	}
	return 0;
}

/* Call fn for every page of [va, va+len) that has a frame (present or PROT_NONE); a frame
 * outside the user frames ends the walk with -EFAULT before fn sees it. */
typedef int (*leaf_fn)(struct vmm_vm *vm, uint64_t pte_gpa, uint64_t pte, void *arg);

static int for_each_framed_leaf(struct vmm_vm *vm, uint64_t va, uint64_t len, leaf_fn fn,
				void *arg)
{
	int rc = check_range(va, len);
	if (rc < 0)
		return rc;
	for (uint64_t a = va; a < va + len; a += VMM_PAGE_SIZE) {
		int err = 0;
		uint64_t pte_gpa = leaf_entry(vm, a, false, &err);
		if (!pte_gpa) {
			if (err < 0)
				return err;
			continue;
		}
		uint64_t pte = *(uint64_t *)gpa_ptr(vm, pte_gpa);
		if (!has_frame(pte))
			continue;
		if (!user_gpa_ok(vm, pte & PTE_ADDR))
			return -EFAULT;
		rc = fn(vm, pte_gpa, pte, arg);
		if (rc < 0)
			return rc;
	}
	return 0;
}

static int protect_leaf(struct vmm_vm *vm, uint64_t pte_gpa, uint64_t pte, void *arg)
{
	return set_leaf(vm, pte_gpa, (pte & PTE_ADDR) | *(const uint64_t *)arg);
}

int vmm_mem_protect(struct vmm_vm *vm, uint64_t va, uint64_t len, int prot)
{
	uint64_t bits = leaf_bits(prot);
	return for_each_framed_leaf(vm, va, len, protect_leaf, &bits);
}

static int unmap_leaf(struct vmm_vm *vm, uint64_t pte_gpa, uint64_t pte, void *arg)
{
	(void)arg;
	int rc = set_leaf(vm, pte_gpa, 0);
	if (rc == 0)
		rc = frame_free(vm, (uint32_t)((pte & PTE_ADDR) >> PAGE_SHIFT));
	return rc;
}

int vmm_mem_unmap(struct vmm_vm *vm, uint64_t va, uint64_t len)
{
	return for_each_framed_leaf(vm, va, len, unmap_leaf, NULL);
}

static int count_leaf(struct vmm_vm *vm, uint64_t pte_gpa, uint64_t pte, void *arg)
{
	(void)vm, (void)pte_gpa, (void)pte;
	(*(int64_t *)arg)++;
	return 0;
}

int64_t vmm_mem_count_mapped(struct vmm_vm *vm, uint64_t va, uint64_t len)
{
	int64_t count = 0;
	int rc = for_each_framed_leaf(vm, va, len, count_leaf, &count);
	return rc < 0 ? rc : count;
}

/* Guest-physical address behind a user va, or 0 if it has no accessible page (or its
 * entries name memory outside the user frames: the host never follows those). */
static uint64_t translate(struct vmm_vm *vm, uint64_t va, uint64_t *pte_out)
{
	if (va >= USER_VA_END)
		return 0;
	int err = 0;
	uint64_t pte_gpa = leaf_entry(vm, va, false, &err);
	if (!pte_gpa)
		return 0;
	uint64_t pte = *(uint64_t *)gpa_ptr(vm, pte_gpa);
	if (!(pte & PTE_P) || !user_gpa_ok(vm, pte & PTE_ADDR))
		return 0;
	if (pte_out)
		*pte_out = pte;
	return (pte & PTE_ADDR) | (va & ~PAGE_MASK);
}

int vmm_mem_query(struct vmm_vm *vm, uint64_t va)
{
	uint64_t pte = 0;
	if (!translate(vm, va, &pte))
		return -EFAULT;
	int prot = VMM_PROT_READ;
	if (pte & PTE_RW)
		prot |= VMM_PROT_WRITE;
	if (!(pte & PTE_NX))
		prot |= VMM_PROT_EXEC;
	return prot;
}

/* Copy between a host buffer and user memory page by page, as the kernel does. */
static int copy_user(struct vmm_vm *vm, uint64_t va, uint8_t *host, uint64_t len, bool to_guest)
{
	while (len) {
		uint64_t gpa = translate(vm, va, NULL);
		if (!gpa)
			return -EFAULT;
		uint64_t chunk = VMM_PAGE_SIZE - (va & ~PAGE_MASK);
		if (chunk > len)
			chunk = len;
		if (to_guest) {
			memcpy(gpa_ptr(vm, gpa), host, chunk);
			mark_host_dirty(vm, gpa, chunk);
		} else {
			memcpy(host, gpa_ptr(vm, gpa), chunk);
		}
		host += chunk;
		va += chunk;
		len -= chunk;
	}
	return 0;
}

int vmm_mem_read(struct vmm_vm *vm, uint64_t va, void *dst, uint64_t len)
{
	/* The vDSO's page is the user's to read, as on Linux (a debugger disassembling it, a
	 * write(2) from it), though it lies outside the user page tables. */
	if (vm->vdso && va >= VDSO_VA && len <= VMM_PAGE_SIZE && va - VDSO_VA <= VMM_PAGE_SIZE - len) {
		memcpy(dst, gpa_ptr(vm, GPA_VDSO + (va - VDSO_VA)), len);
		return 0;
	}
	return copy_user(vm, va, dst, len, false);
}

int vmm_mem_write(struct vmm_vm *vm, uint64_t va, const void *src, uint64_t len)
{
	/* copy_user only reads from the host buffer in this direction. */
	return copy_user(vm, va, (uint8_t *)(uintptr_t)src, len, true);
}

int64_t vmm_mem_strnlen(struct vmm_vm *vm, uint64_t va, uint64_t max)
{
	uint64_t n = 0;
	while (n < max) {
		uint64_t gpa = translate(vm, va + n, NULL);
		if (!gpa)
			return -EFAULT;
		uint64_t chunk = VMM_PAGE_SIZE - ((va + n) & ~PAGE_MASK);
		if (chunk > max - n)
			chunk = max - n;
		const uint8_t *p = gpa_ptr(vm, gpa);
		const uint8_t *nul = memchr(p, 0, chunk);
		if (nul)
			return (int64_t)(n + (uint64_t)(nul - p));
		n += chunk;
	}
	return (int64_t)max;
}
