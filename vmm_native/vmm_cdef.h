/* Declarations cffi binds (API mode checks them against vmm.h when it compiles). */
#define VMM_PROT_READ 1
#define VMM_PROT_WRITE 2
#define VMM_PROT_EXEC 4
#define VMM_EXIT_SYSCALL 1
#define VMM_EXIT_EXCEPTION 2
#define VMM_EXIT_INTERRUPTED 3
#define VMM_EXIT_FAILED 4

struct kvm_regs {
	uint64_t rax, rbx, rcx, rdx, rsi, rdi, rsp, rbp;
	uint64_t r8, r9, r10, r11, r12, r13, r14, r15;
	uint64_t rip, rflags;
};

struct vmm_exit {
	uint32_t reason;
	uint32_t vector;
	uint64_t error_code;
	uint64_t fault_addr;
	uint32_t kvm_exit;
	uint32_t detail;
};

struct vmm_config {
	uint64_t mem_size;
};

struct vmm_stats {
	uint64_t exits;
	uint64_t syscalls;
	uint64_t exceptions;
	uint64_t pte_fixups;
	uint64_t pte_ops;
	uint64_t frames_used;
	uint64_t frames_high;
	uint64_t vdso_resumes;
};

struct vmm_task_context {
	struct kvm_regs regs;
	uint64_t fs_base;
	uint64_t gs_base;
	uint8_t fpu[576];
};

struct vmm_vm;
struct vmm_snapshot;

int vmm_vm_create(const struct vmm_config *config, struct vmm_vm **out);
void vmm_vm_destroy(struct vmm_vm *vm);
int vmm_vm_stats(const struct vmm_vm *vm, struct vmm_stats *out);
int vmm_vm_clone(struct vmm_vm *parent, struct vmm_vm **out);
int vmm_vm_syscall_mode(const struct vmm_vm *vm);
int vmm_vm_set_syscall_mode(struct vmm_vm *vm, int enters_cpl0);
struct kvm_regs *vmm_vcpu_regs(struct vmm_vm *vm);
int vmm_vcpu_get_fs_base(struct vmm_vm *vm, uint64_t *out);
int vmm_vcpu_set_fs_base(struct vmm_vm *vm, uint64_t base);
int vmm_vcpu_set_gs_base(struct vmm_vm *vm, uint64_t base);
int vmm_vcpu_save_context(struct vmm_vm *vm, struct vmm_task_context *out);
int vmm_vcpu_load_context(struct vmm_vm *vm, const struct vmm_task_context *ctx);
int vmm_vcpu_start_user(struct vmm_vm *vm, uint64_t rip, uint64_t rsp);
int vmm_vcpu_run(struct vmm_vm *vm, struct vmm_exit *exit);
int vmm_vcpu_run_bench_loop(struct vmm_vm *vm, uint64_t max, uint64_t *syscalls);
int vmm_mem_map(struct vmm_vm *vm, uint64_t va, uint64_t len, int prot);
int vmm_mem_unmap(struct vmm_vm *vm, uint64_t va, uint64_t len);
int vmm_mem_protect(struct vmm_vm *vm, uint64_t va, uint64_t len, int prot);
int64_t vmm_mem_count_mapped(struct vmm_vm *vm, uint64_t va, uint64_t len);
int vmm_mem_read(struct vmm_vm *vm, uint64_t va, void *dst, uint64_t len);
int vmm_mem_write(struct vmm_vm *vm, uint64_t va, const void *src, uint64_t len);
int64_t vmm_mem_strnlen(struct vmm_vm *vm, uint64_t va, uint64_t max);
int vmm_mem_query(struct vmm_vm *vm, uint64_t va);
uint8_t *vmm_vm_memory(struct vmm_vm *vm, uint64_t *used_bytes);
int vmm_snapshot_create(struct vmm_vm *vm, struct vmm_snapshot **out);
void vmm_snapshot_destroy(struct vmm_snapshot *snap);
int64_t vmm_snapshot_take(struct vmm_vm *vm, struct vmm_snapshot *snap, int incremental);
int64_t vmm_snapshot_restore(struct vmm_vm *vm, struct vmm_snapshot *snap);
int64_t vmm_snapshot_last_pages(const struct vmm_snapshot *snap, const uint32_t **pfns);
const uint8_t *vmm_snapshot_memory(const struct vmm_snapshot *snap, uint64_t *used_bytes);
int64_t vmm_snapshot_state_size(const struct vmm_snapshot *snap);
int vmm_snapshot_export_state(const struct vmm_snapshot *snap, uint8_t *buf, uint64_t len);
int vmm_snapshot_import_state(struct vmm_snapshot *snap, const uint8_t *buf, uint64_t len);
int vmm_snapshot_import_page(struct vmm_snapshot *snap, uint32_t pfn, const uint8_t *page);
const char *vmm_snapshot_problem(const struct vmm_snapshot *snap);
int vmm_vm_export_state(struct vmm_vm *vm, uint8_t *buf, uint64_t len);
int64_t vmm_vm_state_size(const struct vmm_vm *vm);
void vmm_vm_scratch_range(uint64_t *gpa_start, uint64_t *gpa_end);
void vmm_vm_digest_mask(uint64_t *gpa, uint64_t *len);
#define VMM_FASTPATH_RING 188
struct vmm_fastpath_record {
	uint64_t nr;
	uint64_t args[6];
	uint64_t ret;
};
struct vmm_fastpath {
	uint64_t budget;
	uint64_t count;
	uint64_t now_ns;
	uint64_t cost_ns;
	uint64_t mono_base;
	uint64_t real_base;
	uint64_t pid, tid, ppid;
	uint64_t saved_rax, saved_rdx, saved_rsp;
	uint64_t stack[4];
	uint64_t reserved[16];
	struct vmm_fastpath_record ring[188];
};
int vmm_vm_set_fastpath(struct vmm_vm *vm, int on);
struct vmm_fastpath *vmm_vm_fastpath(struct vmm_vm *vm);
int vmm_vm_set_vdso(struct vmm_vm *vm, int on);
uint64_t vmm_vdso_address(void);
