/* signalfd as event loops use it: signals blocked, read from a descriptor, polled with
 * epoll; sigqueue values and the sender's pid come through. Same output on any schedule. */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <unistd.h>

int main(void)
{
	setvbuf(stdout, NULL, _IONBF, 0);
	sigset_t mask;
	sigemptyset(&mask);
	sigaddset(&mask, SIGUSR1);
	sigaddset(&mask, SIGALRM);
	sigaddset(&mask, SIGRTMIN + 2);
	sigprocmask(SIG_BLOCK, &mask, NULL);
	int fd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
	struct signalfd_siginfo si;
	ssize_t n = read(fd, &si, sizeof si);
	printf("empty: %zd %s\n", n, errno == EAGAIN ? "EAGAIN" : "?");
	char small[64];
	n = read(fd, small, sizeof small);
	printf("short buffer: %zd %s\n", n, errno == EINVAL ? "EINVAL" : "?");

	kill(getpid(), SIGUSR1);
	union sigval value = {.sival_int = 1234};
	sigqueue(getpid(), SIGRTMIN + 2, value);
	sigqueue(getpid(), SIGRTMIN + 2, value);
	struct signalfd_siginfo many[4];
	n = read(fd, many, sizeof many);
	printf("read %zd bytes = %zd signals\n", n, n / (ssize_t)sizeof many[0]);
	for (int i = 0; i < n / (ssize_t)sizeof many[0]; i++)
		printf("  signo %s, code %s, pid ours %s, int %d\n",
		       many[i].ssi_signo == SIGUSR1 ? "USR1" : many[i].ssi_signo == (unsigned)SIGRTMIN + 2 ? "RTMIN+2" : "?",
		       many[i].ssi_code == SI_USER ? "SI_USER" : many[i].ssi_code == SI_QUEUE ? "SI_QUEUE" : "?",
		       many[i].ssi_pid == (unsigned)getpid() ? "yes" : "no", many[i].ssi_int);

	int ep = epoll_create1(0);
	struct epoll_event ev = {.events = EPOLLIN, .data.u32 = 7};
	epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
	alarm(1);
	struct epoll_event got;
	int ready = epoll_wait(ep, &got, 1, 5000);
	n = read(fd, &si, sizeof si);
	printf("epoll: %d ready (tag %u), then %s by the kernel\n", ready, got.data.u32,
	       si.ssi_signo == SIGALRM && si.ssi_code == SI_KERNEL ? "SIGALRM" : "?");

	sigset_t usr1;
	sigemptyset(&usr1);
	sigaddset(&usr1, SIGUSR1);
	printf("narrowed: %d\n", signalfd(fd, &usr1, 0) == fd);
	raise(SIGALRM);
	n = read(fd, &si, sizeof si);
	printf("SIGALRM outside the mask: %zd %s\n", n, errno == EAGAIN ? "EAGAIN" : "?");
	sigset_t pending;
	sigpending(&pending);
	printf("still pending: %d\n", sigismember(&pending, SIGALRM));
	return 0;
}
