/*
 * The VMM's "kernel": descriptor tables, TSS with the I/O bitmap, CPL0 stubs, the syscall
 * entry page, the kernel half of the page tables, and the vCPU's control state.
 *
 * CPL0 guest code is emulated instruction by instruction on PVM hosts (~0.7 us each), so
 * every CPL0 path here is a handful of instructions that hand control to the host with
 * an `out`.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>

#include "vmm_internal.h"

#define MSR_STAR 0xc0000081u
#define MSR_LSTAR 0xc0000082u
#define MSR_CSTAR 0xc0000083u
#define MSR_FMASK 0xc0000084u
#define MSR_KERNEL_GS_BASE 0xc0000102u

#define CR0_PE (1ull << 0)
#define CR0_MP (1ull << 1)
#define CR0_ET (1ull << 4)
#define CR0_NE (1ull << 5)
#define CR0_WP (1ull << 16)
#define CR0_PG (1ull << 31)
#define CR4_PAE (1ull << 5)
#define CR4_OSFXSR (1ull << 9)
#define CR4_OSXMMEXCPT (1ull << 10)
#define CR4_OSXSAVE (1ull << 18)
#define EFER_SCE (1ull << 0)
#define EFER_LME (1ull << 8)
#define EFER_LMA (1ull << 10)
#define EFER_NXE (1ull << 11)

static void put64(uint8_t *p, uint64_t v) { memcpy(p, &v, 8); }

static void write_gdt(uint8_t *mem)
{
	uint64_t *gdt = (uint64_t *)(mem + GPA_GDT);
	gdt[SEL_KERNEL_CS >> 3] = 0x00af9a000000ffffull;
	gdt[SEL_KERNEL_DS >> 3] = 0x00cf92000000ffffull;
	gdt[0x20 >> 3] = 0x00cffa000000ffffull; /* user CS32: sysret's STAR layout expects it */
	gdt[SEL_USER_DS >> 3] = 0x00cff2000000ffffull;
	gdt[SEL_USER_CS >> 3] = 0x00affa000000ffffull;

	uint64_t base = KERNEL_BASE + GPA_TSS;
	uint64_t limit = 0x68 + 0x2000; /* TSS + I/O bitmap + the terminating 0xff byte - 1 */
	uint64_t low = (limit & 0xffff) | ((base & 0xffffff) << 16) | (0x89ull << 40) |
		       (((limit >> 16) & 0xf) << 48) | (((base >> 24) & 0xff) << 56);
	gdt[SEL_TSS >> 3] = low;
	gdt[(SEL_TSS >> 3) + 1] = base >> 32;
}

static void write_tss(uint8_t *mem)
{
	uint8_t *tss = mem + GPA_TSS;
	uint64_t stack = KERNEL_BASE + IST_STACK_TOP;
	put64(tss + 4, stack);  /* rsp0 */
	put64(tss + 36, stack); /* ist1: every vector uses it, even from CPL0, so the user's
				 * red zone is never written when hardware KVM enters CPL0 */
	uint16_t iomap = 0x68;
	memcpy(tss + 102, &iomap, 2);
	uint8_t *bitmap = tss + 0x68;
	memset(bitmap, 0xff, 0x2000 + 1);
	for (unsigned port = PORT_SYSCALL; port < PORT_SYSCALL + 8; port++)
		bitmap[port / 8] &= (uint8_t)~(1u << (port % 8));
}

static void idt_gate(uint8_t *idt, unsigned vector, uint64_t handler, unsigned dpl)
{
	uint8_t *g = idt + vector * 16;
	uint16_t sel = SEL_KERNEL_CS;
	uint16_t lo = (uint16_t)handler, mid = (uint16_t)(handler >> 16);
	uint32_t hi = (uint32_t)(handler >> 32);
	memcpy(g, &lo, 2);
	memcpy(g + 2, &sel, 2);
	g[4] = 1; /* IST1 */
	g[5] = (uint8_t)(0x8e | (dpl << 5)); /* present 64-bit interrupt gate */
	memcpy(g + 6, &mid, 2);
	memcpy(g + 8, &hi, 4);
}

static void write_idt_and_stubs(uint8_t *mem)
{
	uint8_t *idt = mem + GPA_IDT;
	uint8_t *stubs = mem + GPA_STUBS;
	memset(stubs, 0xf4, VMM_PAGE_SIZE); /* hlt: a stray CPL0 jump ends the VM visibly */
	for (unsigned v = 0; v < 32; v++) {
		uint8_t *s = stubs + STUBS_OFF_VECTORS + v * STUB_SIZE;
		if (v == UD_VECTOR) {
			/* A #UD raised by the entry page's trampoline means "run the fix-up list":
			 * cmp qword [rsp], imm32 (sign-extended ENTRY_VA + ENTRY_OFF_FIXUP); je fixup */
			static const uint8_t check[] = {0x48, 0x81, 0x3c, 0x24};
			uint32_t target = (uint32_t)(ENTRY_VA + ENTRY_OFF_FIXUP);
			int32_t rel = (int32_t)(STUBS_OFF_FIXUP - (STUBS_OFF_VECTORS + v * STUB_SIZE + 14));
			memcpy(s, check, sizeof(check));
			memcpy(s + 4, &target, 4);
			s[8] = 0x0f; /* je rel32 */
			s[9] = 0x84;
			memcpy(s + 10, &rel, 4);
			s += 14;
		}
		s[0] = 0xe6; /* out imm8, al: the port names the vector */
		s[1] = (uint8_t)(PORT_VECTOR_BASE + v);
		unsigned dpl = (v == 3 || v == 4) ? 3 : 0; /* int3/into allowed from user mode */
		idt_gate(idt, v, KERNEL_BASE + GPA_STUBS + STUBS_OFF_VECTORS + v * STUB_SIZE, dpl);
	}
	stubs[STUBS_OFF_IRETQ] = 0x48;
	stubs[STUBS_OFF_IRETQ + 1] = 0xcf;

	/* Store each (kva, value) pair of the list, then reload CR3 (flushes a hardware TLB;
	 * on shadow paging the emulated stores are what update the shadow tables). */
	static const uint8_t fixup[] = {
		0x48, 0xbe, 0, 0, 0, 0, 0, 0, 0, 0, /* movabs rsi, FIXOPS */
		0x48, 0x8b, 0x0e,                   /* mov rcx, [rsi] */
		0x48, 0x85, 0xc9,                   /* test rcx, rcx */
		0x74, 0x1d,                         /* jz done */
		0x48, 0x83, 0xc6, 0x08,             /* add rsi, 8 */
		0x48, 0x8b, 0x3e,                   /* loop: mov rdi, [rsi] */
		0x48, 0x8b, 0x46, 0x08,             /* mov rax, [rsi+8] */
		0x48, 0x89, 0x07,                   /* mov [rdi], rax */
		0x48, 0x83, 0xc6, 0x10,             /* add rsi, 16 */
		0x48, 0xff, 0xc9,                   /* dec rcx */
		0x75, 0xed,                         /* jnz loop */
		0x0f, 0x20, 0xd8,                   /* mov rax, cr3 */
		0x0f, 0x22, 0xd8,                   /* mov cr3, rax */
		0xe6, PORT_FIXUP_DONE,              /* done: out 0xE2, al */
	};
	uint8_t *f = stubs + STUBS_OFF_FIXUP;
	memcpy(f, fixup, sizeof(fixup));
	put64(f + 2, KERNEL_BASE + GPA_FIXOPS);

	uint8_t *entry = mem + GPA_ENTRY;
	memset(entry, 0xcc, VMM_PAGE_SIZE);
	entry[ENTRY_OFF_SYSCALL] = 0xe6;
	entry[ENTRY_OFF_SYSCALL + 1] = PORT_SYSCALL;
	entry[ENTRY_OFF_SYSRET] = 0x48; /* o64 sysret */
	entry[ENTRY_OFF_SYSRET + 1] = 0x0f;
	entry[ENTRY_OFF_SYSRET + 2] = 0x07;
	entry[ENTRY_OFF_FIXUP] = 0x0f; /* ud2 */
	entry[ENTRY_OFF_FIXUP + 1] = 0x0b;
}

static void write_kernel_page_tables(uint8_t *mem, uint64_t mem_size)
{
	uint64_t *pml4 = (uint64_t *)(mem + GPA_PML4);
	uint64_t *pdpt = (uint64_t *)(mem + GPA_DIRECT_PDPT);
	const uint64_t table = PTE_P | PTE_RW | PTE_A;
	pml4[(KERNEL_BASE >> 39) & 511] = GPA_DIRECT_PDPT | table;
	uint64_t two_mib_pages = mem_size >> 21;
	for (uint64_t i = 0; i < two_mib_pages; i++) {
		uint64_t gib = i / 512;
		uint64_t *pd = (uint64_t *)(mem + GPA_DIRECT_PD + gib * VMM_PAGE_SIZE);
		pdpt[gib] = (GPA_DIRECT_PD + gib * VMM_PAGE_SIZE) | table;
		pd[i % 512] = (i << 21) | table | PTE_D | PTE_PS;
	}

	const uint64_t user_table = table | PTE_US;
	uint64_t *epdpt = (uint64_t *)(mem + GPA_ENTRY_PDPT);
	uint64_t *epd = (uint64_t *)(mem + GPA_ENTRY_PD);
	uint64_t *ept = (uint64_t *)(mem + GPA_ENTRY_PT);
	pml4[(ENTRY_VA >> 39) & 511] = GPA_ENTRY_PDPT | user_table;
	epdpt[(ENTRY_VA >> 30) & 511] = GPA_ENTRY_PD | user_table;
	epd[(ENTRY_VA >> 21) & 511] = GPA_ENTRY_PT | user_table;
	ept[(ENTRY_VA >> 12) & 511] = GPA_ENTRY | PTE_P | PTE_US | PTE_A; /* read + exec only */
}

void vmm_build_system_area(uint8_t *mem, uint64_t mem_size)
{
	write_gdt(mem);
	write_tss(mem);
	write_idt_and_stubs(mem);
	write_kernel_page_tables(mem, mem_size);
}

int vmm_setup_system_area(struct vmm_vm *vm)
{
	vmm_build_system_area(vm->mem, vm->mem_size);
	mark_host_dirty(vm, 0, (uint64_t)FIRST_FRAME_PFN << PAGE_SHIFT);
	return 0;
}

static int set_cpuid(struct vmm_vm *vm)
{
	/* KVM checks CR4/XCR0 bits against the guest CPUID table, so give it the host's
	 * supported set. Guests never see it: cpuid instructions are patched and emulated. */
	int nent = 256;
	struct kvm_cpuid2 *cpuid = calloc(1, sizeof(*cpuid) + nent * sizeof(struct kvm_cpuid_entry2));
	if (!cpuid)
		return -ENOMEM;
	cpuid->nent = (uint32_t)nent;
	int rc = 0;
	if (ioctl(vm->kvm_fd, KVM_GET_SUPPORTED_CPUID, cpuid) < 0 ||
	    ioctl(vm->vcpu_fd, KVM_SET_CPUID2, cpuid) < 0)
		rc = -errno;
	free(cpuid);
	return rc;
}

static int set_msrs(struct vmm_vm *vm)
{
	struct {
		struct kvm_msrs hdr;
		struct kvm_msr_entry entries[5];
	} msrs = {0};
	const struct kvm_msr_entry values[5] = {
		{.index = MSR_STAR, .data = ((uint64_t)SEL_KERNEL_CS << 32) | (0x23ull << 48)},
		{.index = MSR_LSTAR, .data = ENTRY_VA + ENTRY_OFF_SYSCALL},
		{.index = MSR_CSTAR, .data = ENTRY_VA + ENTRY_OFF_SYSCALL},  /* as vmm_set_syscall_entry */
		{.index = MSR_FMASK, .data = 0x47700}, /* TF IF DF NT AC, as Linux masks */
		{.index = MSR_KERNEL_GS_BASE, .data = 0},
	};
	msrs.hdr.nmsrs = 5;
	memcpy(msrs.entries, values, sizeof(values));
	int n = ioctl(vm->vcpu_fd, KVM_SET_MSRS, &msrs);
	if (n < 0)
		return -errno;
	return n == 5 ? 0 : -EIO;
}

int vmm_set_syscall_entry(struct vmm_vm *vm)
{
	uint64_t target = vm->fastpath ? FAST_CODE_VA : ENTRY_VA + ENTRY_OFF_SYSCALL;
	struct {
		struct kvm_msrs hdr;
		struct kvm_msr_entry entries[2];
	} msrs = {.hdr.nmsrs = 2, .entries = {{.index = MSR_LSTAR, .data = target},
					      {.index = MSR_CSTAR, .data = target}}};
	int n = ioctl(vm->vcpu_fd, KVM_SET_MSRS, &msrs);
	if (n < 0)
		return -errno;
	return n == 2 ? 0 : -EIO;
}

static void segment(struct kvm_segment *s, uint16_t sel, uint8_t type, bool code)
{
	memset(s, 0, sizeof(*s));
	s->selector = sel;
	s->limit = 0xffffffff;
	s->type = type;
	s->present = 1;
	s->dpl = (uint8_t)(sel & 3);
	s->s = 1;
	s->l = code;
	s->db = !code;
	s->g = 1;
}

int vmm_setup_vcpu(struct vmm_vm *vm)
{
	int rc = set_cpuid(vm);
	if (rc < 0)
		return rc;

	struct kvm_sregs sregs;
	if (ioctl(vm->vcpu_fd, KVM_GET_SREGS, &sregs) < 0)
		return -errno;
	sregs.cr0 = CR0_PE | CR0_MP | CR0_ET | CR0_NE | CR0_WP | CR0_PG;
	sregs.cr3 = GPA_PML4;
	sregs.cr4 = CR4_PAE | CR4_OSFXSR | CR4_OSXMMEXCPT | CR4_OSXSAVE;
	sregs.efer = EFER_SCE | EFER_LME | EFER_LMA | EFER_NXE;
	sregs.gdt.base = KERNEL_BASE + GPA_GDT;
	sregs.gdt.limit = (SEL_TSS + 16) - 1;
	sregs.idt.base = KERNEL_BASE + GPA_IDT;
	sregs.idt.limit = 256 * 16 - 1;
	segment(&sregs.cs, SEL_KERNEL_CS, 11, true);
	segment(&sregs.ss, SEL_KERNEL_DS, 3, false);
	segment(&sregs.ds, 0, 3, false);
	segment(&sregs.es, 0, 3, false);
	segment(&sregs.fs, 0, 3, false);
	segment(&sregs.gs, 0, 3, false);
	memset(&sregs.tr, 0, sizeof(sregs.tr));
	sregs.tr.selector = SEL_TSS;
	sregs.tr.base = KERNEL_BASE + GPA_TSS;
	sregs.tr.limit = 0x68 + 0x2000;
	sregs.tr.type = 11; /* busy 64-bit TSS */
	sregs.tr.present = 1;
	sregs.ldt.unusable = 1;
	if (ioctl(vm->vcpu_fd, KVM_SET_SREGS, &sregs) < 0 ||
	    ioctl(vm->vcpu_fd, KVM_GET_SREGS, &vm->sregs_template) < 0)
		return -errno;

	struct kvm_xcrs xcrs = {.nr_xcrs = 1, .xcrs = {{.xcr = 0, .value = GUEST_XCR0}}};
	if (ioctl(vm->vcpu_fd, KVM_SET_XCRS, &xcrs) < 0)
		return -errno;

	struct kvm_fpu fpu = {.fcw = 0x37f, .mxcsr = 0x1f80}; /* Linux's initial FPU state */
	if (ioctl(vm->vcpu_fd, KVM_SET_FPU, &fpu) < 0)
		return -errno;

	return set_msrs(vm);
}
