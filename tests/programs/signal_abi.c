/*
 * The x86-64 signal ABI as this machine's Linux and glibc have it, printed as "key value"
 * lines for tests/test_signals_abi.py to compare with chaosreplay.kernel.signals:
 * struct offsets and sizes, then what real handlers see (the frame around the handler's
 * rsp, uc_flags, the FPU state's magic words, the registers saved), the siginfo of faults,
 * children and queued signals, and what rt_sigreturn does with an edited frame.
 * Handlers are installed with the raw rt_sigaction and a restorer of our own, so the
 * kernel_sigaction layout is exercised too.
 */
#define _GNU_SOURCE
#include <setjmp.h>
#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <ucontext.h>
#include <unistd.h>

#define SA_RESTORER_FLAG 0x04000000ul
#define SA_UNSUPPORTED_FLAG 0x00000400ul
#define SS_AUTODISARM_FLAG (1u << 31)
#define KSIG(n) (1ull << ((n) - 1))

struct kernel_sigaction {
	void *handler;
	unsigned long flags;
	void *restorer;
	uint64_t mask;
};

/* Registers at the handler's first instruction, recorded before any C code runs. */
uint64_t entry_rsp, entry_rflags, entry_rdi, entry_rsi, entry_rdx, entry_rax;
uint32_t entry_mxcsr;
uint16_t entry_fcw;
void c_handler(int sig, siginfo_t *info, void *uc);
void entry_stub(int sig, siginfo_t *info, void *uc);
void my_restorer(void);
long kill_marked(long pid, long sig);
extern char kill_marked_after[];
long kill_xmm(long pid, long sig, uint64_t xmm_in, uint64_t *xmm_out);

__asm__(".text\n"
	".globl entry_stub\n"
	"entry_stub:\n"
	"	mov %rsp, entry_rsp(%rip)\n"
	"	mov %rdi, entry_rdi(%rip)\n"
	"	mov %rsi, entry_rsi(%rip)\n"
	"	mov %rdx, entry_rdx(%rip)\n"
	"	mov %rax, entry_rax(%rip)\n"
	"	pushfq\n"
	"	popq entry_rflags(%rip)\n"
	"	stmxcsr entry_mxcsr(%rip)\n"
	"	fnstcw entry_fcw(%rip)\n"
	"	jmp c_handler\n"
	".globl my_restorer\n"
	"my_restorer:\n"
	"	mov $15, %eax\n"
	"	syscall\n"
	"	hlt\n"
	/* kill(pid, sig) with every free register holding a marker, DF set, and MXCSR and the
	 * x87 control word changed, so the frame shows where each one is saved. */
	".globl kill_marked\n"
	".globl kill_marked_after\n"
	"kill_marked:\n"
	"	push %rbx\n	push %r12\n	push %r13\n	push %r14\n	push %r15\n	push %rbp\n"
	"	sub $16, %rsp\n"
	"	stmxcsr (%rsp)\n	fnstcw 4(%rsp)\n"
	"	movl $0x9f80, 8(%rsp)\n	ldmxcsr 8(%rsp)\n"
	"	movw $0x027f, 8(%rsp)\n	fldcw 8(%rsp)\n"
	"	mov $0x0808080808080808, %r8\n"
	"	mov $0x0909090909090909, %r9\n"
	"	mov $0x1010101010101010, %r10\n"
	"	mov $0x1212121212121212, %r12\n"
	"	mov $0x1313131313131313, %r13\n"
	"	mov $0x1414141414141414, %r14\n"
	"	mov $0x1515151515151515, %r15\n"
	"	mov $0x0b0b0b0b0b0b0b0b, %rbx\n"
	"	mov $0x0d0d0d0d0d0d0d0d, %rdx\n"
	"	mov $0x0e0e0e0e0e0e0e0e, %rbp\n"
	"	mov $62, %eax\n"
	"	std\n"
	"	syscall\n"
	"kill_marked_after:\n"
	"	cld\n"
	"	ldmxcsr (%rsp)\n	fldcw 4(%rsp)\n"
	"	add $16, %rsp\n"
	"	pop %rbp\n	pop %r15\n	pop %r14\n	pop %r13\n	pop %r12\n	pop %rbx\n"
	"	ret\n"
	/* kill(pid, sig) with xmm0 = xmm_in (both halves); xmm0 after it into *xmm_out. */
	".globl kill_xmm\n"
	"kill_xmm:\n"
	"	movq %rdx, %xmm0\n"
	"	punpcklqdq %xmm0, %xmm0\n"
	"	mov %rcx, %r8\n"
	"	mov $62, %eax\n"
	"	syscall\n"
	"	movdqu %xmm0, (%r8)\n"
	"	ret\n");

static void install(int sig, void *handler, unsigned long flags, uint64_t mask)
{
	struct kernel_sigaction act = {handler, flags | SA_RESTORER_FLAG, (void *)my_restorer,
				       mask};
	if (syscall(SYS_rt_sigaction, sig, &act, NULL, 8) != 0)
		perror("rt_sigaction");
}

#define P(key, value) printf("%s %lld\n", key, (long long)(value))
#define OFF(type, field) printf("offsetof.%s.%s %zu\n", #type, #field, offsetof(type, field))
#define SIZE(type) printf("sizeof.%s %zu\n", #type, sizeof(type))

static void layouts(void)
{
	SIZE(siginfo_t);
	OFF(siginfo_t, si_signo); OFF(siginfo_t, si_errno); OFF(siginfo_t, si_code);
	OFF(siginfo_t, si_pid); OFF(siginfo_t, si_uid); OFF(siginfo_t, si_status);
	OFF(siginfo_t, si_utime); OFF(siginfo_t, si_stime); OFF(siginfo_t, si_value);
	OFF(siginfo_t, si_timerid); OFF(siginfo_t, si_overrun); OFF(siginfo_t, si_addr);
	OFF(siginfo_t, si_addr_lsb); OFF(siginfo_t, si_lower); OFF(siginfo_t, si_upper);
	OFF(siginfo_t, si_pkey); OFF(siginfo_t, si_band); OFF(siginfo_t, si_fd);
	SIZE(stack_t);
	OFF(stack_t, ss_sp); OFF(stack_t, ss_flags); OFF(stack_t, ss_size);
	OFF(ucontext_t, uc_flags); OFF(ucontext_t, uc_link); OFF(ucontext_t, uc_stack);
	OFF(ucontext_t, uc_mcontext); OFF(ucontext_t, uc_sigmask);
	SIZE(mcontext_t);
	OFF(mcontext_t, gregs); OFF(mcontext_t, fpregs);
	SIZE(struct sigcontext);
	OFF(struct sigcontext, r8); OFF(struct sigcontext, r9); OFF(struct sigcontext, r10);
	OFF(struct sigcontext, r11); OFF(struct sigcontext, r12); OFF(struct sigcontext, r13);
	OFF(struct sigcontext, r14); OFF(struct sigcontext, r15); OFF(struct sigcontext, rdi);
	OFF(struct sigcontext, rsi); OFF(struct sigcontext, rbp); OFF(struct sigcontext, rbx);
	OFF(struct sigcontext, rdx); OFF(struct sigcontext, rax); OFF(struct sigcontext, rcx);
	OFF(struct sigcontext, rsp); OFF(struct sigcontext, rip); OFF(struct sigcontext, eflags);
	OFF(struct sigcontext, cs); OFF(struct sigcontext, gs); OFF(struct sigcontext, fs);
	OFF(struct sigcontext, __pad0); OFF(struct sigcontext, err);
	OFF(struct sigcontext, trapno); OFF(struct sigcontext, oldmask);
	OFF(struct sigcontext, cr2); OFF(struct sigcontext, fpstate);
	OFF(struct sigcontext, __reserved1);
	SIZE(struct _libc_fpstate);
	OFF(struct _libc_fpstate, cwd); OFF(struct _libc_fpstate, swd);
	OFF(struct _libc_fpstate, ftw); OFF(struct _libc_fpstate, fop);
	OFF(struct _libc_fpstate, rip); OFF(struct _libc_fpstate, rdp);
	OFF(struct _libc_fpstate, mxcsr); OFF(struct _libc_fpstate, mxcr_mask);
	OFF(struct _libc_fpstate, _st); OFF(struct _libc_fpstate, _xmm);
	SIZE(struct _fpx_sw_bytes);
	OFF(struct _fpx_sw_bytes, magic1); OFF(struct _fpx_sw_bytes, extended_size);
	OFF(struct _fpx_sw_bytes, xstate_bv); OFF(struct _fpx_sw_bytes, xstate_size);
	SIZE(struct _fpstate); OFF(struct _fpstate, __glibc_reserved1);
	OFF(struct _xstate, xstate_hdr);
	SIZE(struct _xsave_hdr);
	P("const.FP_XSTATE_MAGIC1", FP_XSTATE_MAGIC1);
	P("const.FP_XSTATE_MAGIC2", FP_XSTATE_MAGIC2);
	P("const.REG_R8", REG_R8); P("const.REG_RDI", REG_RDI); P("const.REG_RSP", REG_RSP);
	P("const.REG_RIP", REG_RIP); P("const.REG_EFL", REG_EFL); P("const.REG_CSGSFS", REG_CSGSFS);
	P("const.REG_ERR", REG_ERR); P("const.REG_TRAPNO", REG_TRAPNO);
	P("const.REG_OLDMASK", REG_OLDMASK); P("const.REG_CR2", REG_CR2);
	P("const.SA_SIGINFO", SA_SIGINFO); P("const.SA_ONSTACK", SA_ONSTACK);
	P("const.SA_RESTART", SA_RESTART); P("const.SA_NODEFER", SA_NODEFER);
	P("const.SA_RESETHAND", SA_RESETHAND); P("const.SA_NOCLDSTOP", SA_NOCLDSTOP);
	P("const.SA_NOCLDWAIT", SA_NOCLDWAIT);
	P("const.SS_ONSTACK", SS_ONSTACK); P("const.SS_DISABLE", SS_DISABLE);
	P("const.SI_USER", SI_USER); P("const.SI_KERNEL", SI_KERNEL); P("const.SI_QUEUE", SI_QUEUE);
	P("const.SI_TIMER", SI_TIMER); P("const.SI_TKILL", SI_TKILL);
	P("const.SEGV_MAPERR", SEGV_MAPERR); P("const.SEGV_ACCERR", SEGV_ACCERR);
	P("const.BUS_ADRERR", BUS_ADRERR); P("const.ILL_ILLOPN", ILL_ILLOPN);
	P("const.FPE_INTDIV", FPE_INTDIV); P("const.TRAP_BRKPT", TRAP_BRKPT);
	P("const.CLD_EXITED", CLD_EXITED); P("const.CLD_KILLED", CLD_KILLED);
	P("const.CLD_DUMPED", CLD_DUMPED);
}

/* What c_handler keeps of the last signal (printing from a handler is not safe). */
static struct {
	int sig, code, pid, errno_, status;
	uint64_t addr, value, uc_flags, uc_link, ss_sp, ss_size, fpstate, trapno, err, cr2;
	uint32_t ss_flags, magic1, extended_size, xstate_size, magic2, saved_mxcsr;
	uint64_t sw_xfeatures, header_bv, oldmask, ucmask, csgsfs, rsp, rip, eflags;
	uint64_t gregs[NGREG];
	uint16_t saved_fcw;
	int tail_zero, now_blocked_usr1, now_blocked_usr2;
	uint64_t pretcode, now_ss_flags;
	uint8_t frame[440]; /* the rt_sigframe as the kernel wrote it */
} seen;
static sigjmp_buf escape;
static int escape_armed;
static int order[16][2];
static int order_len;
/* What a handler does to its frame before returning (the sigreturn tests). */
static enum { EDIT_NONE, EDIT_FLAGS, EDIT_LEGACY_XMM, EDIT_DROP_SSE, EDIT_BAD_MXCSR } edit;

void c_handler(int sig, siginfo_t *info, void *ucv)
{
	ucontext_t *uc = ucv;
	mcontext_t *mc = &uc->uc_mcontext;
	uint8_t *fp = (uint8_t *)mc->fpregs;
	seen.sig = sig;
	seen.code = info->si_code;
	seen.pid = info->si_pid;
	seen.errno_ = info->si_errno;
	seen.status = info->si_status;
	seen.addr = (uint64_t)info->si_addr;
	seen.value = (uint64_t)info->si_value.sival_ptr;
	seen.tail_zero = 1;
	for (size_t i = 48; i < sizeof(siginfo_t); i++)
		if (((uint8_t *)info)[i])
			seen.tail_zero = 0;
	seen.uc_flags = uc->uc_flags;
	seen.uc_link = (uint64_t)uc->uc_link;
	seen.ss_sp = (uint64_t)uc->uc_stack.ss_sp;
	seen.ss_flags = (uint32_t)uc->uc_stack.ss_flags;
	seen.ss_size = uc->uc_stack.ss_size;
	seen.fpstate = (uint64_t)fp;
	memcpy(seen.gregs, mc->gregs, sizeof seen.gregs);
	seen.trapno = mc->gregs[REG_TRAPNO];
	seen.err = mc->gregs[REG_ERR];
	seen.cr2 = mc->gregs[REG_CR2];
	seen.oldmask = mc->gregs[REG_OLDMASK];
	seen.csgsfs = mc->gregs[REG_CSGSFS];
	seen.rsp = mc->gregs[REG_RSP];
	seen.rip = mc->gregs[REG_RIP];
	seen.eflags = mc->gregs[REG_EFL];
	memcpy(&seen.ucmask, &uc->uc_sigmask, 8);
	seen.pretcode = *(uint64_t *)entry_rsp;
	memcpy(seen.frame, (void *)entry_rsp, sizeof seen.frame);
	if (fp) {
		memcpy(&seen.magic1, fp + 464, 4);
		memcpy(&seen.extended_size, fp + 468, 4);
		memcpy(&seen.sw_xfeatures, fp + 472, 8);
		memcpy(&seen.xstate_size, fp + 480, 4);
		memcpy(&seen.magic2, fp + seen.xstate_size, 4);
		memcpy(&seen.header_bv, fp + 512, 8);
		memcpy(&seen.saved_mxcsr, fp + 24, 4);
		memcpy(&seen.saved_fcw, fp, 2);
	}
	sigset_t now;
	sigprocmask(SIG_BLOCK, NULL, &now);
	seen.now_blocked_usr1 = sigismember(&now, SIGUSR1);
	seen.now_blocked_usr2 = sigismember(&now, SIGUSR2);
	stack_t ss;
	sigaltstack(NULL, &ss);
	seen.now_ss_flags = (uint32_t)ss.ss_flags;
	if (order_len < 16) {
		order[order_len][0] = sig;
		order[order_len][1] = (int)(uint64_t)info->si_value.sival_ptr;
		order_len++;
	}
	if (sig != SIGUSR1)
		goto done;
	if (edit == EDIT_FLAGS) /* AC (restored), IOPL and NT (not), VM (not) */
		mc->gregs[REG_EFL] |= 0x40000 | 0x3000 | 0x4000 | 0x20000;
	if (edit == EDIT_LEGACY_XMM) { /* no magic: a legacy FXSAVE image, XMM0 edited */
		memset(fp + 464, 0, 4);
		memset(fp + 160, 0x5a, 16);
	}
	if (edit == EDIT_DROP_SSE) /* SSE absent from XSTATE_BV: XMM comes back zero */
		fp[512] &= ~2;
	if (edit == EDIT_BAD_MXCSR)
		fp[26] = 1;
	return;
done:
	if (escape_armed) {
		escape_armed = 0;
		siglongjmp(escape, 1);
	}
}

static void print_seen(const char *what)
{
	char key[96];
	__asm__ volatile("" ::: "memory"); /* the handler wrote `seen` inside the last call */
#define S(name, value) (snprintf(key, sizeof key, "%s.%s", what, name), P(key, value))
	S("sig", seen.sig); S("code", seen.code); S("pid", seen.pid); S("errno", seen.errno_);
	S("status", seen.status); S("addr", seen.addr); S("value", seen.value);
	S("tail_zero", seen.tail_zero);
	S("uc_flags", seen.uc_flags); S("uc_link", seen.uc_link); S("ss_sp", seen.ss_sp);
	S("ss_flags", seen.ss_flags); S("ss_size", seen.ss_size);
	S("entry_rsp", entry_rsp); S("entry_rflags", entry_rflags); S("entry_rdi", entry_rdi);
	S("entry_rsi", entry_rsi); S("entry_rdx", entry_rdx); S("entry_rax", entry_rax);
	S("entry_mxcsr", entry_mxcsr); S("entry_fcw", entry_fcw);
	S("pretcode", seen.pretcode); S("fpstate", seen.fpstate);
	S("magic1", seen.magic1); S("extended_size", seen.extended_size);
	S("sw_xfeatures", seen.sw_xfeatures); S("xstate_size", seen.xstate_size);
	S("magic2", seen.magic2); S("header_bv", seen.header_bv);
	S("saved_mxcsr", seen.saved_mxcsr); S("saved_fcw", seen.saved_fcw);
	S("trapno", seen.trapno); S("err", seen.err); S("cr2", seen.cr2);
	S("oldmask", seen.oldmask); S("ucmask", seen.ucmask); S("csgsfs", seen.csgsfs);
	S("rsp", seen.rsp); S("rip", seen.rip); S("eflags", seen.eflags);
	S("blocked_usr1", seen.now_blocked_usr1); S("blocked_usr2", seen.now_blocked_usr2);
	S("now_ss_flags", seen.now_ss_flags);
	printf("%s.frame ", what);
	for (size_t i = 0; i < sizeof seen.frame; i++)
		printf("%02x", seen.frame[i]);
	printf("\n");
	static const char *names[] = {"r8", "r9", "r10", "r11", "r12", "r13", "r14", "r15",
				      "rdi", "rsi", "rbp", "rbx", "rdx", "rax", "rcx"};
	for (int i = 0; i < 15; i++) {
		snprintf(key, sizeof key, "%s.greg.%s", what, names[i]);
		P(key, seen.gregs[i]);
	}
#undef S
}

static void frames(void)
{
	/* The raw kernel_sigaction: an unknown flag is dropped, SIGKILL leaves the mask. */
	install(SIGUSR1, entry_stub, SA_SIGINFO | SA_UNSUPPORTED_FLAG, KSIG(SIGUSR2) | KSIG(SIGKILL));
	struct kernel_sigaction old;
	syscall(SYS_rt_sigaction, SIGUSR1, NULL, &old, 8);
	P("ksigaction.flags", old.flags);
	P("ksigaction.mask", old.mask);
	P("ksigaction.handler_ok", old.handler == (void *)entry_stub);
	P("ksigaction.restorer_ok", old.restorer == (void *)my_restorer);
	P("ksigaction.bad_size", syscall(SYS_rt_sigaction, SIGUSR1, NULL, &old, 16));
	P("ksigaction.kill_read", syscall(SYS_rt_sigaction, SIGKILL, NULL, &old, 8));
	P("ksigaction.kill_set", syscall(SYS_rt_sigaction, SIGKILL, &old, NULL, 8));

	P("user.restorer", (uint64_t)my_restorer);
	P("user.kill_marked_after", (uint64_t)kill_marked_after);
	P("user.pid", getpid());
	P("user.uid", getuid());
	kill_marked(getpid(), SIGUSR1);
	print_seen("usr1");

	/* SA_ONSTACK with SS_AUTODISARM: the frame at the altstack's top, the stack disarmed
	 * in the handler and back after it. */
	static uint8_t alt[65536] __attribute__((aligned(64)));
	stack_t ss = {.ss_sp = alt + 100, .ss_size = 40000, .ss_flags = SS_AUTODISARM_FLAG};
	P("alt.set", sigaltstack(&ss, NULL));
	P("alt.sp", (uint64_t)(alt + 100));
	P("alt.size", 40000);
	install(SIGUSR2, entry_stub, SA_SIGINFO | SA_ONSTACK, 0);
	kill(getpid(), SIGUSR2);
	print_seen("onstack");
	stack_t after;
	sigaltstack(NULL, &after);
	P("alt.after_flags", (uint32_t)after.ss_flags);
	P("alt.after_sp", (uint64_t)after.ss_sp);
	P("alt.after_size", after.ss_size);
	ss.ss_flags = SS_DISABLE;
	sigaltstack(&ss, NULL);
}

static volatile int sink;

static void fault(const char *what, void (*action)(void))
{
	escape_armed = 1;
	if (sigsetjmp(escape, 1) == 0)
		action();
	escape_armed = 0;
	print_seen(what);
}

static volatile uintptr_t null_address = 16;
static void read_null(void) { sink = *(volatile int *)null_address; }
static uint8_t *ro_page;
static void write_ro(void) { *(volatile uint8_t *)(ro_page + 8) = 1; }
static void read_kernel(void) { sink = *(volatile int *)0xffffffff81000000ull; }
static void read_noncanonical(void) { sink = *(volatile int *)0x8000000000000000ull; }
static void do_ud2(void) { __asm__ volatile("ud2"); }
static void do_int3(void) { __asm__ volatile("int3"); }
static void do_hlt(void) { __asm__ volatile("hlt"); }
static void do_div0(void) { __asm__ volatile("xor %%ecx, %%ecx; div %%ecx" ::: "eax", "ecx", "edx"); }

static void faults(void)
{
	install(SIGSEGV, entry_stub, SA_SIGINFO | SA_NODEFER, 0);
	install(SIGILL, entry_stub, SA_SIGINFO | SA_NODEFER, 0);
	install(SIGTRAP, entry_stub, SA_SIGINFO | SA_NODEFER, 0);
	install(SIGFPE, entry_stub, SA_SIGINFO | SA_NODEFER, 0);
	ro_page = mmap(NULL, 4096, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	P("user.ro_page", (uint64_t)ro_page);
	fault("segv_null", read_null);
	fault("segv_ro", write_ro);
	fault("segv_kernel", read_kernel);
	fault("segv_noncanonical", read_noncanonical);
	fault("ill", do_ud2);
	fault("trap", do_int3);
	fault("gp", do_hlt);
	fault("fpe", do_div0);
}

static void children(void)
{
	install(SIGCHLD, entry_stub, SA_SIGINFO, 0);
	pid_t child = fork();
	if (child == 0)
		_exit(3);
	P("child.exited_pid", child);
	while (waitpid(child, NULL, 0) < 0)
		;
	print_seen("chld_exit");
	child = fork();
	if (child == 0) {
		for (;;)
			pause();
	}
	P("child.killed_pid", child);
	kill(child, SIGKILL);
	while (waitpid(child, NULL, 0) < 0)
		;
	print_seen("chld_kill");
}

static void queued(void)
{
	/* Blocked while sent; each handler blocks everything, so one is delivered per return
	 * and the order seen is the kernel's dequeue order. */
	uint64_t all = ~0ull;
	sigset_t block, old;
	sigfillset(&block);
	sigprocmask(SIG_BLOCK, &block, &old);
	install(SIGUSR1, entry_stub, SA_SIGINFO, all);
	install(SIGUSR2, entry_stub, SA_SIGINFO, all);
	install(35, entry_stub, SA_SIGINFO, all);
	install(36, entry_stub, SA_SIGINFO, all);
	union sigval v;
	v.sival_ptr = (void *)1; sigqueue(getpid(), 36, v);
	v.sival_ptr = (void *)2; sigqueue(getpid(), 35, v);
	v.sival_ptr = (void *)3; sigqueue(getpid(), 35, v);
	v.sival_ptr = (void *)4; sigqueue(getpid(), SIGUSR2, v);
	v.sival_ptr = (void *)5; sigqueue(getpid(), SIGUSR1, v);
	v.sival_ptr = (void *)6; sigqueue(getpid(), SIGUSR1, v);
	order_len = 0;
	sigprocmask(SIG_SETMASK, &old, NULL);
	__asm__ volatile("" ::: "memory"); /* the handlers ran inside the call */
	P("queue.count", order_len);
	for (int i = 0; i < order_len; i++)
		printf("order %d %d\n", order[i][0], order[i][1]);
	print_seen("queue_last");
}

static void sigreturns(void)
{
	install(SIGUSR1, entry_stub, SA_SIGINFO, 0);
	install(SIGSEGV, entry_stub, SA_SIGINFO | SA_NODEFER, 0);
	edit = EDIT_FLAGS;
	kill(getpid(), SIGUSR1);
	uint64_t flags;
	__asm__ volatile("pushfq; popq %0" : "=r"(flags));
	__asm__ volatile("pushfq; andl $~0x40000, (%rsp); popfq");
	P("sigreturn.flags_after", flags);
	uint64_t xmm[2];
	edit = EDIT_NONE;
	kill_xmm(getpid(), SIGUSR1, 0x1122334455667788ull, xmm);
	P("sigreturn.xmm_kept", xmm[0]);
	edit = EDIT_LEGACY_XMM;
	kill_xmm(getpid(), SIGUSR1, 0x1122334455667788ull, xmm);
	P("sigreturn.xmm_legacy", xmm[0]);
	edit = EDIT_DROP_SSE;
	kill_xmm(getpid(), SIGUSR1, 0x1122334455667788ull, xmm);
	P("sigreturn.xmm_dropped", xmm[0]);
	edit = EDIT_BAD_MXCSR;
	escape_armed = 1;
	if (sigsetjmp(escape, 1) == 0) {
		kill(getpid(), SIGUSR1);
		P("sigreturn.bad_mxcsr_returned", 1);
	}
	/* the SIGSEGV of the refused frame: c_handler escaped through the armed jump */
	edit = EDIT_NONE;
	print_seen("bad_mxcsr");
}

int main(void)
{
	setvbuf(stdout, NULL, _IOFBF, 1 << 16);
	layouts();
	frames();
	faults();
	children();
	queued();
	sigreturns();
	fflush(stdout);
	return 0;
}
