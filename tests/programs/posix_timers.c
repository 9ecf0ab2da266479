/* POSIX timers: a periodic SIGEV_SIGNAL timer taken with sigwaitinfo, overruns while its
 * signal is blocked, SIGEV_NONE read with timer_gettime, SIGEV_THREAD callbacks, delete. */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static atomic_int callbacks;

static void on_expiry(union sigval value)
{
	if (value.sival_int == 77)
		atomic_fetch_add(&callbacks, 1);
}

int main(void)
{
	setvbuf(stdout, NULL, _IONBF, 0);
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGRTMIN);
	sigprocmask(SIG_BLOCK, &set, NULL);
	struct sigevent ev;
	memset(&ev, 0, sizeof ev);
	ev.sigev_notify = SIGEV_SIGNAL;
	ev.sigev_signo = SIGRTMIN;
	ev.sigev_value.sival_int = 99;
	timer_t timer;
	printf("create: %d\n", timer_create(CLOCK_MONOTONIC, &ev, &timer));
	struct itimerspec every = {{0, 10000000}, {0, 10000000}};
	timer_settime(timer, 0, &every, NULL);
	for (int i = 0; i < 3; i++) {
		siginfo_t info;
		int signo = sigwaitinfo(&set, &info);
		printf("expiry %d: %s, SI_TIMER %s, value %d\n", i, signo == SIGRTMIN ? "SIGRTMIN" : "?",
		       info.si_code == SI_TIMER ? "yes" : "no", info.si_value.sival_int);
	}
	struct timespec nap = {0, 55000000};
	nanosleep(&nap, NULL); /* five expiries while the first one's signal is pending */
	siginfo_t info;
	sigwaitinfo(&set, &info);
	printf("overrun at least 3: %s\n", timer_getoverrun(timer) >= 3 ? "yes" : "no");
	struct itimerspec off = {{0, 0}, {0, 0}}, now;
	timer_settime(timer, 0, &off, NULL);
	timer_gettime(timer, &now);
	printf("disarmed: %ld %ld\n", (long)now.it_value.tv_sec, now.it_value.tv_nsec);
	int first = timer_delete(timer);
	int again = timer_delete(timer);
	printf("delete: %d, again fails: %s\n", first, again != 0 ? "yes" : "no"); /* musl: -EINVAL */

	ev.sigev_notify = SIGEV_NONE;
	timer_create(CLOCK_REALTIME, &ev, &timer);
	struct itimerspec once = {{0, 0}, {5, 0}};
	timer_settime(timer, 0, &once, NULL);
	timer_gettime(timer, &now);
	printf("SIGEV_NONE: %s left\n", now.it_value.tv_sec == 4 || now.it_value.tv_sec == 5 ? "about 5 s" : "?");
	timer_delete(timer);

	ev.sigev_notify = SIGEV_THREAD;
	ev.sigev_notify_function = on_expiry;
	ev.sigev_value.sival_int = 77;
	printf("thread timer: %d\n", timer_create(CLOCK_MONOTONIC, &ev, &timer));
	struct itimerspec soon = {{0, 0}, {0, 1000000}};
	timer_settime(timer, 0, &soon, NULL);
	while (atomic_load(&callbacks) == 0)
		nanosleep(&(struct timespec){0, 1000000}, NULL);
	printf("callback ran: %d\n", atomic_load(&callbacks));
	timer_delete(timer);
	return 0;
}
