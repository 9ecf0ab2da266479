/*
 * vmm_native: a kernel-less KVM core that runs one static x86-64 Linux program at CPL3.
 *
 * The VMM is the program's kernel: `syscall` and CPU exceptions exit to the host, which
 * answers them and resumes the guest. Every function returns 0 (or a count) on success
 * and -errno on failure; nothing here exits the process or keeps global mutable state.
 */
#ifndef VMM_H
#define VMM_H

#include <stddef.h>
#include <stdint.h>
#include <linux/kvm.h>

#define VMM_PAGE_SIZE 4096u

/* Page protections for vmm_mem_map/protect (same bits as Linux PROT_*). */
#define VMM_PROT_READ 0x1
#define VMM_PROT_WRITE 0x2
#define VMM_PROT_EXEC 0x4

/* Why vmm_vcpu_run returned to its caller. */
enum vmm_exit_reason {
	VMM_EXIT_SYSCALL = 1,     /* regs hold the syscall; rip/rflags are the user's continuation */
	VMM_EXIT_EXCEPTION = 2,   /* a CPU exception at CPL3; regs are the faulting user context */
	VMM_EXIT_INTERRUPTED = 3, /* KVM_RUN was interrupted by a host signal (watchdog) */
	VMM_EXIT_FAILED = 4,      /* the VM cannot continue (triple fault, internal error...) */
};

struct vmm_exit {
	uint32_t reason;      /* enum vmm_exit_reason */
	uint32_t vector;      /* exception vector (VMM_EXIT_EXCEPTION) */
	uint64_t error_code;  /* exception error code, 0 where the CPU pushes none */
	uint64_t fault_addr;  /* CR2 for a page fault */
	uint32_t kvm_exit;    /* raw KVM exit reason (VMM_EXIT_FAILED) */
	uint32_t detail;      /* suberror / hardware reason (VMM_EXIT_FAILED) */
};

struct vmm_config {
	uint64_t mem_size;    /* guest physical memory in bytes (multiple of 2 MiB) */
};

/* Counters kept by the core; reset only when the VM is created. */
struct vmm_stats {
	uint64_t exits;          /* KVM_RUN returns, of any kind */
	uint64_t syscalls;
	uint64_t exceptions;
	uint64_t pte_fixups;     /* trips through the CPL0 page-table update routine */
	uint64_t pte_ops;        /* page-table entries stored by that routine */
	uint64_t frames_used;    /* guest frames currently allocated */
	uint64_t frames_high;    /* frames ever allocated (high-water mark) */
	uint64_t vdso_resumes;   /* vDSO stores that faulted and made their call (no exit seen) */
};

struct vmm_vm;
struct vmm_snapshot;

/* Lifecycle. vmm_vm_create fills *out; the error is -errno (-ENOENT: no /dev/kvm ...). */
int vmm_vm_create(const struct vmm_config *config, struct vmm_vm **out);
void vmm_vm_destroy(struct vmm_vm *vm);
int vmm_vm_stats(const struct vmm_vm *vm, struct vmm_stats *out);
/* A new VM that resumes exactly where `parent` would: the same memory size and syscall
 * mode, a copy of guest memory up to the allocator's high mark, the frame allocator, the
 * page tables (same guest-physical addresses) and the vCPU state. It has its own dirty
 * log and no snapshot base. -ENOEXEC when parent has no resume point (not started, or
 * interrupted); the error of vmm_vm_create otherwise. */
int vmm_vm_clone(struct vmm_vm *parent, struct vmm_vm **out);
/* Whether `syscall` from CPL3 enters CPL0 on this host (1, hardware KVM) or stays at CPL3
 * (0, PVM). It is a property of the host: learn it from a probe VM running a syscall of
 * the VMM's own, and set it on every other VM before it runs, so that no guest's first
 * exit (a jump to the entry page's `out`, say) decides how later syscalls are resumed.
 * vmm_vm_syscall_mode returns -EAGAIN until it is known. */
int vmm_vm_syscall_mode(const struct vmm_vm *vm);
int vmm_vm_set_syscall_mode(struct vmm_vm *vm, int enters_cpl0);

/* The user-visible registers: valid between runs, changes are sent on the next run. */
struct kvm_regs *vmm_vcpu_regs(struct vmm_vm *vm);
int vmm_vcpu_get_fs_base(struct vmm_vm *vm, uint64_t *out);
int vmm_vcpu_set_fs_base(struct vmm_vm *vm, uint64_t base);
int vmm_vcpu_set_gs_base(struct vmm_vm *vm, uint64_t base);
/* The user-visible CPU state of one guest thread: registers, FS/GS bases and the x87/SSE
 * part of its XSAVE image (legacy area + header: XCR0 enables nothing more). */
#define VMM_FPU_STATE_BYTES 576
struct vmm_task_context {
	struct kvm_regs regs;
	uint64_t fs_base;
	uint64_t gs_base;
	uint8_t fpu[VMM_FPU_STATE_BYTES];
};
/* Save the vCPU's user state / load a saved one (a task switch). Loading checks what the
 * CPU would refuse (-EPERM: a base outside the user half; -EFAULT: rip or rsp not a user
 * address; -EINVAL: reserved MXCSR bits); every register comes back as saved (never
 * through a sysret, which would clobber rcx and r11). */
int vmm_vcpu_save_context(struct vmm_vm *vm, struct vmm_task_context *out);
int vmm_vcpu_load_context(struct vmm_vm *vm, const struct vmm_task_context *ctx);
/* Set user rip/rsp and clear the other registers: start the program at its entry point. */
int vmm_vcpu_start_user(struct vmm_vm *vm, uint64_t rip, uint64_t rsp);
/* Run until the guest needs policy (syscall, exception) or fails. After
 * VMM_EXIT_INTERRUPTED the VM runs again only after a snapshot restore (else -ENOEXEC). */
int vmm_vcpu_run(struct vmm_vm *vm, struct vmm_exit *exit);
/* Benchmark baseline: answer every syscall with 0 in C until `max` syscalls or exit_group. */
int vmm_vcpu_run_bench_loop(struct vmm_vm *vm, uint64_t max, uint64_t *syscalls);

/* User memory (guest-virtual addresses in the lower half). */
int vmm_mem_map(struct vmm_vm *vm, uint64_t va, uint64_t len, int prot);
int vmm_mem_unmap(struct vmm_vm *vm, uint64_t va, uint64_t len);
int vmm_mem_protect(struct vmm_vm *vm, uint64_t va, uint64_t len, int prot);
/* Number of mapped pages in [va, va+len) (a page is mapped once vmm_mem_map touched it). */
int64_t vmm_mem_count_mapped(struct vmm_vm *vm, uint64_t va, uint64_t len);
/* Kernel-side access: ignores the page protection, fails with -EFAULT on unmapped pages. */
int vmm_mem_read(struct vmm_vm *vm, uint64_t va, void *dst, uint64_t len);
int vmm_mem_write(struct vmm_vm *vm, uint64_t va, const void *src, uint64_t len);
/* Length of the NUL-terminated string at va, at most max; -EFAULT if it runs off the map. */
int64_t vmm_mem_strnlen(struct vmm_vm *vm, uint64_t va, uint64_t max);
/* Protection of the page holding va, or -EFAULT when it is not mapped. */
int vmm_mem_query(struct vmm_vm *vm, uint64_t va);
/* Host pointer to guest physical memory and the span in use (for digests). */
uint8_t *vmm_vm_memory(struct vmm_vm *vm, uint64_t *used_bytes);

/* Snapshots: complete vCPU state + memory into a reusable buffer. */
int vmm_snapshot_create(struct vmm_vm *vm, struct vmm_snapshot **out);
void vmm_snapshot_destroy(struct vmm_snapshot *snap);
/* Capture; incremental copies only pages written since this snapshot was last taken or
 * restored (falls back to a full copy when the snapshot is not the VM's base). Returns the
 * number of pages copied. */
int64_t vmm_snapshot_take(struct vmm_vm *vm, struct vmm_snapshot *snap, int incremental);
/* Restore; copies back only pages written since, when snap is the VM's base. Returns pages
 * copied. Shadow page tables are flushed so no stale mapping survives. */
int64_t vmm_snapshot_restore(struct vmm_vm *vm, struct vmm_snapshot *snap);
/* Page frame numbers copied by the last take (for writing deltas into a recording). */
int64_t vmm_snapshot_last_pages(const struct vmm_snapshot *snap, const uint32_t **pfns);
/* Host pointer to the snapshot's memory image. */
const uint8_t *vmm_snapshot_memory(const struct vmm_snapshot *snap, uint64_t *used_bytes);
/* Canonical, host-independent bytes of the captured vCPU + allocator state. */
int64_t vmm_snapshot_state_size(const struct vmm_snapshot *snap);
int vmm_snapshot_export_state(const struct vmm_snapshot *snap, uint8_t *buf, uint64_t len);
/* Load state bytes and memory pages into a snapshot (rebuilding one from a recording). */
int vmm_snapshot_import_state(struct vmm_snapshot *snap, const uint8_t *buf, uint64_t len);
int vmm_snapshot_import_page(struct vmm_snapshot *snap, uint32_t pfn, const uint8_t *page);
/* Why the last import or restore of snap was refused (one line; "" when none). An
 * imported snapshot is checked in full at its first restore (snapshot_check.c). */
const char *vmm_snapshot_problem(const struct vmm_snapshot *snap);

/* Canonical bytes of the live vCPU state, the same layout as a snapshot's (for digests). */
int vmm_vm_export_state(struct vmm_vm *vm, uint8_t *buf, uint64_t len);
int64_t vmm_vm_state_size(const struct vmm_vm *vm);
/* Guest-physical span the VMM's CPL0 paths use as scratch (IST stack, fix-up list): it is
 * not guest state, so digests skip it. */
void vmm_vm_scratch_range(uint64_t *gpa_start, uint64_t *gpa_end);
/* Bytes of the system area outside the scratch range that digests hash as zero: the fast
 * path's page-table entries, present or not depending on the VM's setting. */
void vmm_vm_digest_mask(uint64_t *gpa, uint64_t *len);

/* The syscall fast path (fastpath/fastpath.S): with it on, the guest's `syscall` first runs
 * code that answers clock_gettime, gettimeofday, time, getpid, gettid and getppid from this
 * page, up to `budget` calls, appending a record per call to `ring`, and exits only for
 * anything else. The VMM publishes the fields before each run and drains the ring after
 * (count records); the guest can write the page, so the VMM trusts nothing it reads back
 * except as a claim it checks. */
#define VMM_FASTPATH_RING 188
struct vmm_fastpath_record {
	uint64_t nr;
	uint64_t args[6];        /* rdi rsi rdx r10 r8 r9, as a syscall event lists them */
	uint64_t ret;
};
struct vmm_fastpath {
	uint64_t budget;         /* calls the guest may answer itself before it must exit */
	uint64_t count;          /* calls answered since the VMM last reset it */
	uint64_t now_ns;         /* virtual time of the next call (the guest adds cost_ns) */
	uint64_t cost_ns;        /* virtual time one system call costs */
	uint64_t mono_base;      /* CLOCK_MONOTONIC = now_ns + mono_base */
	uint64_t real_base;      /* CLOCK_REALTIME = now_ns + real_base */
	uint64_t pid, tid, ppid;
	uint64_t saved_rax, saved_rdx, saved_rsp;  /* the code's own scratch */
	uint64_t stack[4];
	uint64_t reserved[16];
	struct vmm_fastpath_record ring[VMM_FASTPATH_RING];
};
/* Turn the fast path on (1) or off (0); needs the syscall mode known. */
int vmm_vm_set_fastpath(struct vmm_vm *vm, int on);
struct vmm_fastpath *vmm_vm_fastpath(struct vmm_vm *vm);
/* Map the vDSO (fastpath/vdso.S) at vmm_vdso_address() and the data page it reads (1), or
 * leave it unmapped (0); it answers from the page only while the fast path arms it. */
int vmm_vm_set_vdso(struct vmm_vm *vm, int on);
uint64_t vmm_vdso_address(void);

#endif
