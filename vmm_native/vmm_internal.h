/*
 * Internal layout and state of a vmm_vm, shared by the core's .c files only.
 *
 * Guest physical memory is one memslot. The first 1 MiB holds the VMM's "kernel": GDT,
 * IDT, TSS with its I/O bitmap, CPL0 stubs, the user-visible syscall entry page, the IST
 * stack, the page-table update list and the fixed page-table pages. Frames for user pages
 * and user page tables are allocated above it. The kernel half of the address space maps
 * all guest physical memory at KERNEL_BASE (supervisor only), and the entry page is mapped
 * user-accessible at ENTRY_VA, like Linux's vsyscall page, so the user half stays free.
 */
#ifndef VMM_INTERNAL_H
#define VMM_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>

#include "vmm.h"

#define PAGE_SHIFT 12
#define PAGE_MASK (~(uint64_t)(VMM_PAGE_SIZE - 1))

/* Guest physical layout of the system area. */
#define GPA_GDT 0x1000ull
#define GPA_IDT 0x2000ull
#define GPA_TSS 0x3000ull         /* 104-byte TSS, then the 8 KiB I/O bitmap */
#define GPA_STUBS 0x6000ull       /* CPL0 code */
#define GPA_ENTRY 0x7000ull       /* user-visible syscall entry page */
#define GPA_SCRATCH 0x8000ull     /* VMM scratch from here to the fix-up list's end: never
				   * guest state, left out of digests, zeroed in a file's image */
#define GPA_FAST_CODE 0x8000ull   /* the syscall fast path's code (fastpath/fastpath.S) */
#define GPA_FAST_DATA 0x9000ull   /* its data page and ring: struct vmm_fastpath */
#define GPA_VDSO 0xc000ull        /* the vDSO image (fastpath/vdso.S) */
#define GPA_IST_STACK 0xd000ull   /* 12 KiB kernel stack for every vector (IST1) */
#define IST_STACK_TOP 0x10000ull
#define GPA_FIXOPS 0x10000ull     /* page-table store list: count, then (kva, value) pairs */
#define FIXOPS_BYTES 0x10000ull
#define FIXOPS_MAX ((FIXOPS_BYTES - 8) / 16)
#define GPA_PML4 0x20000ull
#define GPA_DIRECT_PDPT 0x21000ull
#define GPA_DIRECT_PD 0x22000ull  /* one PD page per GiB of guest memory */
#define DIRECT_MAX_GIB 16u
#define GPA_ENTRY_PDPT 0x32000ull
#define GPA_ENTRY_PD 0x33000ull
#define GPA_ENTRY_PT 0x34000ull
#define FIRST_FRAME_PFN 0x100u    /* frames for user pages start at 1 MiB */
#define SYSTEM_AREA_BYTES ((uint64_t)FIRST_FRAME_PFN << 12)

#define KERNEL_BASE 0xffff800000000000ull
#define ENTRY_VA 0xffffffffff600000ull
#define FAST_CODE_VA (ENTRY_VA + 0x1000ull)  /* user read + exec, like the entry page */
#define FAST_DATA_VA (ENTRY_VA + 0x2000ull)  /* user read + write: the guest may forge it */
#define FAST_DATA_PAGES 3u
#define VDSO_VA (ENTRY_VA + 0x5000ull)       /* user read + exec: AT_SYSINFO_EHDR */
/* The entry page table's slots for those five pages: installed with the fast path or the
 * vDSO, and hashed as zero in digests (recordings from before them carry zeros there). */
#define FAST_PTE_GPA (GPA_ENTRY_PT + 8ull * ((FAST_CODE_VA >> 12) & 511))
#define FAST_PTE_BYTES (8ull * (2 + FAST_DATA_PAGES))
#define USER_VA_END 0x0000800000000000ull

/* Offsets inside the entry page (user code) and the stubs page (CPL0 code). */
#define ENTRY_OFF_SYSCALL 0x0   /* out 0xE0, al ; o64 sysret (the sysret runs on hardware KVM only) */
#define ENTRY_OFF_SYSRET 0x2
#define ENTRY_OFF_FIXUP 0x10    /* ud2: reach CPL0 to run the page-table update list (PVM
				 * turns `int n` from CPL3 into #UD, exceptions do arrive) */
#define STUBS_OFF_VECTORS 0x0   /* 16 bytes per exception vector 0..31: out (0x80+v), al */
#define STUB_SIZE 16
#define STUBS_OFF_IRETQ 0x200
#define STUBS_OFF_FIXUP 0x210

/* I/O ports the guest uses to reach the VMM. */
#define PORT_SYSCALL 0xE0
#define PORT_FIXUP_DONE 0xE2
#define PORT_VECTOR_BASE 0x80
#define UD_VECTOR 6

/* GDT selectors, Linux-compatible so sysret's STAR arithmetic works. */
#define SEL_KERNEL_CS 0x10
#define SEL_KERNEL_DS 0x18
#define SEL_USER_DS 0x2b
#define SEL_USER_CS 0x33
#define SEL_TSS 0x40

/* XCR0 = x87 | SSE: the virtual CPU model advertises no AVX, so nothing wider is enabled. */
#define GUEST_XCR0 0x3ull

/* Page-table entry bits. */
#define PTE_P (1ull << 0)
#define PTE_RW (1ull << 1)
#define PTE_US (1ull << 2)
#define PTE_A (1ull << 5)
#define PTE_D (1ull << 6)
#define PTE_PS (1ull << 7)
#define PTE_NX (1ull << 63)
#define PTE_ADDR 0x000ffffffffff000ull
#define PTE_SW_FRAME (1ull << 9) /* not present for the CPU, but the page keeps its frame */
/* What the VMM stores in an intermediate user table entry (A preset: the MMU never writes). */
#define PTE_USER_TABLE (PTE_P | PTE_RW | PTE_US | PTE_A)

/* RFLAGS: bit 1 always reads as 1; IF is set while user code runs, as on Linux. */
#define RFLAGS_RESERVED 0x2ull
#define RFLAGS_IF (1ull << 9)
/* The flags CPL3 code changes itself with popf (Intel SDM vol. 2, POPF: at CPL 3 with IOPL 0
 * it may change CF PF AF ZF SF TF DF OF NT AC ID, never IOPL, IF, VM, RF, VIF or VIP). A
 * frame the VMM returns through keeps only these from the user view; the rest is the
 * VMM's: sysret and an iretq from CPL0 would load IOPL, IF, VIF, VIP, RF as given. */
#define RFLAGS_USER_MASK 0x244dd5ull

/* The canonical state bytes (snapshot.c writes them, snapshot_check.c refuses bad ones):
 * magic, 18 u64 (16 GPRs in kvm_regs order, rip, rflags), fs/gs/kernel-gs base, 7 u64 of
 * x87/SSE control (fcw fsw ftw fop fip fdp mxcsr), 8 x 16-byte ST slots, 16 XMM, then the
 * allocator (high, used, free count, 0) and zero padding; the free list follows. */
#define STATE_MAGIC "CRVCPU01"
#define STATE_FIXED_BYTES 640u
#define STATE_OFF_GPRS 8u
#define STATE_OFF_RSP (STATE_OFF_GPRS + 6 * 8)
#define STATE_OFF_RIP (STATE_OFF_GPRS + 16 * 8)
#define STATE_OFF_RFLAGS (STATE_OFF_GPRS + 17 * 8)
#define STATE_OFF_BASES (STATE_OFF_GPRS + 18 * 8)   /* fs, gs, kernel gs */
#define STATE_OFF_FPU (STATE_OFF_BASES + 3 * 8)     /* fcw fsw ftw fop fip fdp mxcsr */
#define STATE_OFF_ALLOC (STATE_OFF_FPU + 7 * 8 + 128 + 256)
#define STATE_OFF_PADDING (STATE_OFF_ALLOC + 16)

/* The iretq frame a fresh start or a loaded task context resumes through (its RIP slot:
 * five quadwords below the top of the IST stack). */
#define START_FRAME_ADDR (KERNEL_BASE + IST_STACK_TOP - 40)

/* How the next vmm_vcpu_run resumes the guest. */
enum resume_kind {
	RESUME_NONE = 0,     /* not started */
	RESUME_SYSCALL = 1,  /* after a syscall exit */
	RESUME_FRAME = 2,    /* iretq through the frame at frame_addr (exceptions, start) */
};

struct frame_alloc {
	uint32_t total;      /* frames in guest memory */
	uint32_t high;       /* next never-used frame: all frames >= high are zero */
	uint32_t free_count; /* LIFO stack of freed frames, so reuse order is deterministic */
	uint32_t *free_stack;
	uint32_t used;
};

/* A canonical address: bits 63..47 all equal (4-level paging). */
static inline bool canonical(uint64_t va)
{
	return (uint64_t)((int64_t)(va << 16) >> 16) == va;
}

struct vmm_vm {
	int kvm_fd;
	int vm_fd;
	int vcpu_fd;
	struct kvm_run *run;
	size_t run_size;
	uint8_t *mem;
	uint64_t mem_size;
	uint32_t npages;
	int xsave_size;

	struct frame_alloc frames;
	uint64_t *host_dirty;   /* pages the VMM wrote from the host side (KVM does not log those) */
	uint64_t *kvm_dirty;    /* scratch for KVM_GET_DIRTY_LOG */

	/* Page-table entries (guest-physical addresses) to re-store from CPL0 before the guest
	 * runs again; the value stored is the entry's final one, read when the list runs. */
	uint64_t *fix_gpa;
	uint32_t fix_count;
	uint32_t fix_cap;

	enum resume_kind resume;
	uint64_t frame_addr;    /* kernel VA of the iretq frame's RIP slot (RESUME_FRAME) */
	bool syscall_at_cpl0;   /* hardware KVM: syscall enters CPL0; PVM: it stays at CPL3 */
	bool syscall_mode_known;
	bool fastpath;          /* LSTAR at the fast path's code (fastpath.c) */
	bool vdso;              /* the vDSO and the data page it reads are mapped */

	struct kvm_sregs sregs_template; /* CPL0 state after setup: every restore starts here */
	struct vmm_snapshot *base;  /* snapshot whose image matches memory minus dirty pages */
	struct vmm_stats stats;
};

/* cpu_setup.c */
/* Write the system area (the first SYSTEM_AREA_BYTES) for a VM of mem_size bytes into mem:
 * the one definition both VM setup and the check of a snapshot from a file use. */
void vmm_build_system_area(uint8_t *mem, uint64_t mem_size);
int vmm_setup_system_area(struct vmm_vm *vm);
int vmm_setup_vcpu(struct vmm_vm *vm);
/* Point LSTAR/CSTAR at the entry page, or at the fast path when vm->fastpath. */
int vmm_set_syscall_entry(struct vmm_vm *vm);

/* fastpath.c */
/* Write the fast path's code (for the VM's syscall mode) and page-table entries into guest
 * memory: at enable, and after every restore (a file's image holds no scratch). */
void vmm_fastpath_install(struct vmm_vm *vm);
/* Whether the 8-byte entry-page-table slot at gpa holds what the fast path installs there
 * or zero (both honest: a VM with the fast path off, or a recording made before it). */
bool vmm_fastpath_pte_ok(uint64_t gpa, uint64_t value);
/* Where a vDSO function whose store faulted at rip makes its call instead (0: rip is not
 * in one of them). */
uint64_t vmm_vdso_resume_at(uint64_t rip);

/* paging.c */
int frames_init(struct frame_alloc *fa, uint32_t total);
void frames_fini(struct frame_alloc *fa);
void mark_host_dirty(struct vmm_vm *vm, uint64_t gpa, uint64_t len);
void *gpa_ptr(struct vmm_vm *vm, uint64_t gpa);
/* True when gpa lies in a frame the allocator has handed out: at or above the system area
 * and below `high`. Every GPA read from guest memory (page-table entries, the free list)
 * passes this before the host dereferences it. */
bool user_gpa_ok(const struct vmm_vm *vm, uint64_t gpa);

/* snapshot_check.c: refusing state and memory from a file (messages go to `why`). */
struct vmm_snapshot;
int snapshot_check_state(const struct vmm_vm *vm, const uint8_t *buf, uint64_t len,
			 char *why, size_t why_len);
int snapshot_check_image(const struct vmm_vm *vm, uint8_t *image, const uint8_t *state,
			 char *why, size_t why_len);

/* snapshot.c: load canonical state bytes (trusted or checked) into the live vCPU and
 * allocator; the guest resumes through an iretq frame at the user rip. */
int vmm_load_state(struct vmm_vm *vm, const uint8_t *buf, uint64_t len);

/* kvm_vm.c */
int vmm_memslot_set(struct vmm_vm *vm, bool present);

#endif
