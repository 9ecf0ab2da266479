/* Signal delivery as programs use it: handlers with siginfo, masks and pending signals,
 * alarm and setitimer, a SIGSEGV handler that recovers, sigaltstack, EINTR and SA_RESTART
 * on a blocked read, sigsuspend, sigtimedwait, a signal to one thread, SIGPIPE. Every line
 * is the same on any schedule, so Linux and chaosreplay must print the same. */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static volatile sig_atomic_t got, got_code, got_pid_ok, alarms, on_altstack;
static sigjmp_buf recover;
static char altstack[65536];
static int *volatile bad_address = (int *)16; /* volatile: the compiler cannot see it is bad */

static void on_usr1(int signo, siginfo_t *info, void *uc)
{
	(void)uc;
	got = signo;
	got_code = info->si_code;
	got_pid_ok = info->si_pid == getpid();
}

static void on_alarm(int signo)
{
	(void)signo;
	alarms++;
}

static void on_segv(int signo, siginfo_t *info, void *uc)
{
	(void)uc;
	char here;
	on_altstack = &here >= altstack && &here < altstack + sizeof altstack;
	got = signo;
	got_code = info->si_code;
	got_pid_ok = info->si_addr == (void *)16;
	siglongjmp(recover, 1);
}

static void install(int signo, void (*handler)(int), int flags)
{
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = handler;
	sa.sa_flags = flags;
	sigemptyset(&sa.sa_mask);
	sigaction(signo, &sa, NULL);
}

static volatile pid_t thread_tid;
static volatile sig_atomic_t thread_got;

static void on_usr2(int signo)
{
	(void)signo;
	thread_got = syscall(SYS_gettid) == thread_tid;
}

static int restart_pipe[2];

static void *late_writer(void *arg)
{
	(void)arg;
	struct timespec later = {1, 500000000};
	nanosleep(&later, NULL);
	write(restart_pipe[1], "r", 1);
	return NULL;
}

static void *waiter(void *arg)
{
	(void)arg;
	thread_tid = (pid_t)syscall(SYS_gettid);
	while (!thread_got)
		usleep(1000);
	return NULL;
}

int main(void)
{
	setvbuf(stdout, NULL, _IONBF, 0);
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_sigaction = on_usr1;
	sa.sa_flags = SA_SIGINFO;
	sigaction(SIGUSR1, &sa, NULL);
	kill(getpid(), SIGUSR1);
	printf("kill: signal %d, code SI_USER %s, pid ours %s\n", got, got_code == SI_USER ? "yes" : "no",
	       got_pid_ok ? "yes" : "no");
	got = 0;
	raise(SIGUSR1);
	printf("raise: signal %d, code SI_TKILL %s\n", got, got_code == SI_TKILL ? "yes" : "no");

	/* Blocked: pending until unblocked, then delivered at once. */
	sigset_t set, old;
	sigemptyset(&set);
	sigaddset(&set, SIGUSR1);
	sigprocmask(SIG_BLOCK, &set, &old);
	got = 0;
	kill(getpid(), SIGUSR1);
	sigset_t pending;
	sigpending(&pending);
	printf("blocked: delivered %d, pending %d\n", got, sigismember(&pending, SIGUSR1));
	sigprocmask(SIG_SETMASK, &old, NULL);
	printf("unblocked: delivered %d\n", got);

	/* sigtimedwait takes a blocked signal without a handler running. */
	sigprocmask(SIG_BLOCK, &set, NULL);
	union sigval value = {.sival_int = 42};
	sigqueue(getpid(), SIGUSR1, value);
	siginfo_t info;
	struct timespec no_wait = {0, 0};
	got = 0;
	int taken = sigtimedwait(&set, &info, &no_wait);
	printf("sigtimedwait: %d, value %d, code SI_QUEUE %s, handler ran %d\n", taken,
	       info.si_value.sival_int, info.si_code == SI_QUEUE ? "yes" : "no", got);
	struct timespec short_wait = {0, 5000000};
	taken = sigtimedwait(&set, &info, &short_wait);
	printf("sigtimedwait with nothing pending: %d %s\n", taken, errno == EAGAIN ? "EAGAIN" : "?");
	sigprocmask(SIG_UNBLOCK, &set, NULL);

	/* alarm interrupts a blocked read: EINTR without SA_RESTART, restarted with it. */
	int fds[2];
	pipe(fds);
	install(SIGALRM, on_alarm, 0);
	alarm(1);
	char byte;
	ssize_t n = read(fds[0], &byte, 1);
	printf("read interrupted: %zd %s, alarms %d\n", n, errno == EINTR ? "EINTR" : "?", alarms);
	install(SIGALRM, on_alarm, SA_RESTART);
	pipe(restart_pipe);
	pthread_t writer;
	pthread_create(&writer, NULL, late_writer, NULL);
	alarms = 0;
	alarm(1);
	n = read(restart_pipe[0], &byte, 1);
	pthread_join(writer, NULL);
	printf("read restarted: %zd '%c', alarms %d\n", n, byte, alarms);
	struct itimerval every = {{0, 20000}, {0, 20000}};
	setitimer(ITIMER_REAL, &every, NULL);
	struct timespec pause_for = {0, 110000000};
	while (nanosleep(&pause_for, &pause_for) < 0 && errno == EINTR)
		;
	struct itimerval stop = {{0, 0}, {0, 0}}, left;
	setitimer(ITIMER_REAL, &stop, &left);
	printf("itimer: at least 5 alarms %s, interval kept %ld us\n", alarms >= 5 ? "yes" : "no",
	       (long)left.it_interval.tv_usec);
	alarms = 0;
	alarm(0);

	/* sigsuspend waits with a mask and returns EINTR after the handler. */
	sigprocmask(SIG_BLOCK, &set, &old);
	alarm(1);
	install(SIGALRM, on_alarm, 0);
	sigset_t none;
	sigemptyset(&none);
	int rc = sigsuspend(&none);
	sigset_t now;
	sigprocmask(SIG_SETMASK, NULL, &now);
	printf("sigsuspend: %d %s, alarms %d, mask back %s\n", rc, errno == EINTR ? "EINTR" : "?",
	       alarms, sigismember(&now, SIGUSR1) ? "yes" : "no");
	sigprocmask(SIG_SETMASK, &old, NULL);

	/* ppoll waits with its own mask: SIGALRM, blocked around it, interrupts it. */
	sigset_t alrm;
	sigemptyset(&alrm);
	sigaddset(&alrm, SIGALRM);
	sigprocmask(SIG_BLOCK, &alrm, &old);
	alarms = 0;
	alarm(1);
	struct pollfd pfd = {.fd = restart_pipe[0], .events = POLLIN};
	rc = ppoll(&pfd, 1, NULL, &none);
	sigprocmask(SIG_SETMASK, NULL, &now);
	printf("ppoll: %d %s, alarms %d, SIGALRM blocked again %s\n", rc,
	       errno == EINTR ? "EINTR" : "?", alarms, sigismember(&now, SIGALRM) ? "yes" : "no");
	sigprocmask(SIG_SETMASK, &old, NULL);

	/* A SIGSEGV handler on an alternate stack recovers with siglongjmp. */
	stack_t ss = {.ss_sp = altstack, .ss_size = sizeof altstack, .ss_flags = 0};
	sigaltstack(&ss, NULL);
	memset(&sa, 0, sizeof sa);
	sa.sa_sigaction = on_segv;
	sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
	sigaction(SIGSEGV, &sa, NULL);
	got = 0;
	if (sigsetjmp(recover, 1) == 0) {
		*bad_address = 1;
		puts("not reached");
	}
	printf("segv: signal %d, SEGV_MAPERR %s, address right %s, on altstack %s\n", got,
	       got_code == SEGV_MAPERR ? "yes" : "no", got_pid_ok ? "yes" : "no",
	       on_altstack ? "yes" : "no");

	/* A signal to one thread runs its handler on that thread. */
	install(SIGUSR2, on_usr2, 0);
	pthread_t thread;
	pthread_create(&thread, NULL, waiter, NULL);
	while (!thread_tid)
		sched_yield();
	pthread_kill(thread, SIGUSR2);
	pthread_join(thread, NULL);
	printf("pthread_kill: handled on the thread %s\n", thread_got ? "yes" : "no");

	/* SIGPIPE caught: the write fails with EPIPE after the handler. */
	install(SIGPIPE, on_alarm, 0);
	alarms = 0;
	close(fds[0]);
	n = write(fds[1], "x", 1);
	printf("sigpipe: write %zd %s, handler ran %d\n", n, errno == EPIPE ? "EPIPE" : "?", alarms);
	return 0;
}
