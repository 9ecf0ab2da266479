/*
 * The syscall fast path: its code and page-table entries in each VM, and switching
 * LSTAR to it. What it answers and why that keeps a run the same call for call is
 * described in fastpath/fastpath.S and chaosreplay/kernel/fastpath.py.
 */
#include <errno.h>
#include <stddef.h>
#include <string.h>

#include "vmm_internal.h"
#include "fastpath/fastpath_code.h"

_Static_assert(sizeof(struct vmm_fastpath) == FAST_DATA_PAGES * VMM_PAGE_SIZE,
	       "the data page layout is fastpath.S's");
_Static_assert(offsetof(struct vmm_fastpath, saved_rax) == 0x48, "fastpath.S: D_RAX");
_Static_assert(offsetof(struct vmm_fastpath, stack) + sizeof(((struct vmm_fastpath *)0)->stack)
	       == 0x80, "fastpath.S: D_STACK_TOP");
_Static_assert(offsetof(struct vmm_fastpath, ring) == 0x100, "fastpath.S: RING");
_Static_assert(sizeof(fastpath_code) <= VMM_PAGE_SIZE, "the code fits its page");

static const uint8_t sysretq[] = {0x48, 0x0f, 0x07};

_Static_assert(sizeof(vdso_image) <= VMM_PAGE_SIZE, "the vDSO fits its page");
_Static_assert(VDSO_VA == FAST_CODE_VA + (1 + FAST_DATA_PAGES) * VMM_PAGE_SIZE,
	       "the vDSO's slot follows the data pages'");

/* The value the fast path stores in the entry page table's slot at gpa. */
static uint64_t fast_pte(uint64_t gpa)
{
	uint64_t slot = (gpa - FAST_PTE_GPA) / 8;
	if (slot == 0)
		return GPA_FAST_CODE | PTE_P | PTE_US | PTE_A; /* read + exec only */
	if (slot == 1 + FAST_DATA_PAGES)
		return GPA_VDSO | PTE_P | PTE_US | PTE_A;
	return (GPA_FAST_DATA + (slot - 1) * VMM_PAGE_SIZE) | PTE_P | PTE_RW | PTE_US | PTE_A |
	       PTE_D | PTE_NX;
}

bool vmm_fastpath_pte_ok(uint64_t gpa, uint64_t value)
{
	return value == 0 || value == fast_pte(gpa);
}

void vmm_fastpath_install(struct vmm_vm *vm)
{
	uint8_t *code = vm->mem + GPA_FAST_CODE;
	memset(code, 0xcc, VMM_PAGE_SIZE); /* int3 around it: a stray jump traps visibly */
	memcpy(code, fastpath_code, sizeof(fastpath_code));
	if (vm->syscall_at_cpl0)
		memcpy(code + FASTPATH_OFF_USER_RETURN, sysretq, sizeof(sysretq));
	mark_host_dirty(vm, GPA_FAST_CODE, VMM_PAGE_SIZE);
	uint8_t *vdso = vm->mem + GPA_VDSO;
	memset(vdso, 0, VMM_PAGE_SIZE);
	memcpy(vdso, vdso_image, sizeof(vdso_image));
	mark_host_dirty(vm, GPA_VDSO, VMM_PAGE_SIZE);
	/* Non-present to present needs no flush on shadow paging; after a restore the slots
	 * may already hold these values, and storing the same value changes nothing. */
	for (uint64_t gpa = FAST_PTE_GPA; gpa < FAST_PTE_GPA + FAST_PTE_BYTES; gpa += 8)
		*(uint64_t *)(vm->mem + gpa) = fast_pte(gpa);
	mark_host_dirty(vm, FAST_PTE_GPA, FAST_PTE_BYTES);
}

/* The pages and their slots, with budget 0: neither code answers anything until armed. */
static void install_pages(struct vmm_vm *vm)
{
	vmm_fastpath_install(vm);
	memset(vmm_vm_fastpath(vm), 0, sizeof(struct vmm_fastpath));
	mark_host_dirty(vm, GPA_FAST_DATA, sizeof(struct vmm_fastpath));
}

int vmm_vm_set_fastpath(struct vmm_vm *vm, int on)
{
	if (on != 0 && on != 1)
		return -EINVAL;
	if (!vm->syscall_mode_known)
		return -EAGAIN; /* the code's return depends on it */
	if (on && !vm->vdso)
		install_pages(vm);
	vm->fastpath = on == 1;
	return vmm_set_syscall_entry(vm);
}

int vmm_vm_set_vdso(struct vmm_vm *vm, int on)
{
	if (on != 0 && on != 1)
		return -EINVAL;
	if (!vm->syscall_mode_known)
		return -EAGAIN;
	if (on && !vm->fastpath)
		install_pages(vm);
	vm->vdso = on == 1;
	return 0;
}

uint64_t vmm_vdso_resume_at(uint64_t rip)
{
	if (rip < VDSO_VA || rip >= VDSO_VA + VMM_PAGE_SIZE)
		return 0;
	uint64_t off = rip - VDSO_VA;
	for (size_t i = 0; i < sizeof(vdso_functions) / sizeof(vdso_functions[0]); i++)
		if (off >= vdso_functions[i].start && off < vdso_functions[i].end)
			return VDSO_VA + vdso_functions[i].slow_restore;
	return 0;
}

uint64_t vmm_vdso_address(void)
{
	return VDSO_VA;
}

struct vmm_fastpath *vmm_vm_fastpath(struct vmm_vm *vm)
{
	return (struct vmm_fastpath *)(vm->mem + GPA_FAST_DATA);
}

void vmm_vm_digest_mask(uint64_t *gpa, uint64_t *len)
{
	*gpa = FAST_PTE_GPA;
	*len = FAST_PTE_BYTES;
}
