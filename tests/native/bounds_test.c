/*
 * C-level checks that the core bounds-checks every guest-physical address it reads from
 * guest memory itself (defence in depth behind the snapshot checks): corrupt page-table
 * entries, the free list and the IST pointer directly in guest memory, then call the
 * public API. Built and run by tests/test_vmm_bounds.py; prints one line per failed
 * check and exits 1 on any, 77 when there is no KVM.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "vmm_internal.h"

#define VA 0x400000ull
#define MEM (32ull << 20)

static int failures;
static int skipped;

static void expect(const char *what, long long got, long long want)
{
	if (got != want) {
		printf("FAIL %s: got %lld, want %lld\n", what, got, want);
		failures++;
	}
}

/* Guest-physical address of va's leaf entry, walking the tables the VMM built. */
static uint64_t *leaf_slot(struct vmm_vm *vm, uint64_t va)
{
	uint64_t table = GPA_PML4;
	for (int level = 3; level > 0; level--) {
		uint64_t e = ((uint64_t *)(vm->mem + table))[(va >> (12 + 9 * level)) & 511];
		table = e & PTE_ADDR;
	}
	return (uint64_t *)(vm->mem + table) + ((va >> 12) & 511);
}

static struct vmm_vm *fresh_vm(void)
{
	struct vmm_config config = {.mem_size = MEM};
	struct vmm_vm *vm = NULL;
	int rc = vmm_vm_create(&config, &vm);
	if (rc == -ENOENT || rc == -EACCES || rc == -EPERM) {
		skipped = 1;
		return NULL;
	}
	if (rc < 0) {
		printf("FAIL vmm_vm_create: %d\n", rc);
		failures++;
		return NULL;
	}
	int map = vmm_mem_map(vm, VA, 2 * VMM_PAGE_SIZE, VMM_PROT_READ | VMM_PROT_WRITE);
	expect("map", map, 0);
	return vm;
}

/* A leaf entry naming a frame outside the user frames is never followed by the host. */
static void bad_leaf(uint64_t frame_gpa, const char *name)
{
	struct vmm_vm *vm = fresh_vm();
	if (!vm)
		return;
	uint64_t *slot = leaf_slot(vm, VA);
	*slot = (*slot & ~PTE_ADDR) | (frame_gpa & PTE_ADDR);
	char buf[16];
	char what[96];
	snprintf(what, sizeof(what), "read through a leaf into %s", name);
	expect(what, vmm_mem_read(vm, VA, buf, sizeof(buf)), -EFAULT);
	snprintf(what, sizeof(what), "write through a leaf into %s", name);
	expect(what, vmm_mem_write(vm, VA, buf, sizeof(buf)), -EFAULT);
	snprintf(what, sizeof(what), "strnlen through a leaf into %s", name);
	expect(what, vmm_mem_strnlen(vm, VA, 64), -EFAULT);
	snprintf(what, sizeof(what), "query of a leaf into %s", name);
	expect(what, vmm_mem_query(vm, VA), -EFAULT);
	snprintf(what, sizeof(what), "unmap of a leaf into %s (never freed)", name);
	uint32_t free_before = vm->frames.free_count;
	expect(what, vmm_mem_unmap(vm, VA, VMM_PAGE_SIZE), -EFAULT);
	expect("free list unchanged", vm->frames.free_count, free_before);
	snprintf(what, sizeof(what), "protect of a leaf into %s", name);
	expect(what, vmm_mem_map(vm, VA, VMM_PAGE_SIZE, VMM_PROT_READ), -EFAULT);
	expect("the neighbour page still works", vmm_mem_read(vm, VA + VMM_PAGE_SIZE, buf, 8), 0);
	vmm_vm_destroy(vm);
}

/* An intermediate entry naming a table outside the user frames (or a large page). */
static void bad_table(uint64_t entry, const char *name)
{
	struct vmm_vm *vm = fresh_vm();
	if (!vm)
		return;
	uint64_t *pml4 = (uint64_t *)(vm->mem + GPA_PML4);
	pml4[(VA >> 39) & 511] = entry;
	char buf[8];
	char what[96];
	snprintf(what, sizeof(what), "read through a PML4 entry into %s", name);
	expect(what, vmm_mem_read(vm, VA, buf, sizeof(buf)), -EFAULT);
	snprintf(what, sizeof(what), "map through a PML4 entry into %s", name);
	expect(what, vmm_mem_map(vm, VA, VMM_PAGE_SIZE, VMM_PROT_READ), -EFAULT);
	snprintf(what, sizeof(what), "count through a PML4 entry into %s", name);
	expect(what, vmm_mem_count_mapped(vm, VA, VMM_PAGE_SIZE), -EFAULT);
	vmm_vm_destroy(vm);
}

/* A free list naming frames outside the user frames: allocation refuses, zeroes nothing. */
static void bad_free_list(uint32_t pfn, const char *name)
{
	struct vmm_vm *vm = fresh_vm();
	if (!vm)
		return;
	vm->frames.free_stack[vm->frames.free_count++] = pfn;
	vm->frames.used--;
	char what[96];
	snprintf(what, sizeof(what), "allocating a free-list frame %s", name);
	expect(what, vmm_mem_map(vm, 0x10000000ull, VMM_PAGE_SIZE, VMM_PROT_READ), -EFAULT);
	if (pfn < FIRST_FRAME_PFN)
		expect("the system area page was not zeroed",
		       ((uint64_t *)(vm->mem + ((uint64_t)pfn << PAGE_SHIFT)))[SEL_USER_CS >> 3] != 0,
		       1);
	vmm_vm_destroy(vm);
}

int main(void)
{
	bad_leaf(MEM + 0x1000, "memory past RAM");
	bad_leaf(0xfffffff0ull << PAGE_SHIFT, "frame 0xfffffff0");
	bad_leaf(GPA_GDT, "the GDT");
	bad_leaf(GPA_STUBS, "the CPL0 stubs");
	bad_table(GPA_PML4 | PTE_USER_TABLE, "the PML4 itself");
	bad_table((MEM << 4) | PTE_USER_TABLE, "memory past RAM");
	bad_table((2ull << 20) | PTE_USER_TABLE | PTE_PS, "a large page");
	bad_free_list(0xfffffff0u, "0xfffffff0");
	bad_free_list(1, "in the system area (the GDT)");
	bad_free_list((uint32_t)(MEM >> PAGE_SHIFT) + 5, "past RAM");
	if (failures)
		return 1;
	if (skipped) {
		printf("SKIP no usable /dev/kvm\n");
		return 77;
	}
	printf("ok\n");
	return 0;
}
