/* The calls the syscall fast path answers, in every shape it must get right: each clock,
 * a buffer on a page not touched yet, EFAULT and EINVAL, gettimeofday with a timezone,
 * time with and without a pointer, an interval timer firing mid-loop, threads on the
 * round-robin or random schedule, and a forked child. Prints only what is the same
 * natively (counts, errors), never a time. */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static volatile sig_atomic_t alarms;

static void on_alarm(int sig)
{
	(void)sig;
	alarms++;
}

static void *reader(void *arg)
{
	long id = (long)arg, monotonic = 0;
	struct timespec ts, last = {0, 0}, nap = {0, 50000};
	for (int i = 0; i < 3000; i++) {
		clock_gettime(CLOCK_MONOTONIC, &ts);
		if (ts.tv_sec > last.tv_sec || (ts.tv_sec == last.tv_sec && ts.tv_nsec >= last.tv_nsec))
			monotonic++;
		last = ts;
		if (i % 500 == 0)
			nanosleep(&nap, NULL);
	}
	printf("thread %ld: %ld of 3000 readings in order\n", id, monotonic);
	return NULL;
}

int main(void)
{
	struct timespec ts;
	for (int clock = 0; clock <= 7; clock++)
		for (int i = 0; i < 100; i++)
			clock_gettime(clock, &ts);
	printf("unknown clock: %s\n", clock_gettime(99, &ts) ? strerror(errno) : "ok");
	long rc = syscall(SYS_clock_gettime, CLOCK_MONOTONIC, (void *)8);
	printf("bad buffer: %s\n", rc ? strerror(errno) : "ok");

	/* A fresh page: the first store faults, the VMM maps it, the call still counts once. */
	struct timespec *fresh = mmap(NULL, 4096 * 4, PROT_READ | PROT_WRITE,
				      MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	for (int page = 0; page < 4; page++)
		clock_gettime(CLOCK_REALTIME, (struct timespec *)((char *)fresh + 4096 * page));
	/* Straddling two pages the second of which is read-only: EFAULT from the slow path. */
	mprotect((char *)fresh + 4096 * 3, 4096, PROT_READ);
	rc = syscall(SYS_clock_gettime, CLOCK_REALTIME, (char *)fresh + 4096 * 3 - 8);
	printf("straddling a read-only page: %s\n", rc ? strerror(errno) : "ok");

	struct timeval tv;
	struct timezone tz;
	for (int i = 0; i < 200; i++)
		gettimeofday(&tv, i % 2 ? &tz : NULL);
	syscall(SYS_gettimeofday, NULL, NULL);
	time_t t;
	for (int i = 0; i < 200; i++)
		time(i % 2 ? &t : NULL);
	long ids = 0;
	for (int i = 0; i < 300; i++)
		ids += getpid() + syscall(SYS_gettid) + getppid();
	printf("ids: %ld\n", ids);

	signal(SIGALRM, on_alarm);
	struct itimerval every = {{0, 2000}, {0, 2000}};
	setitimer(ITIMER_REAL, &every, NULL);
	while (alarms < 20)
		clock_gettime(CLOCK_MONOTONIC, &ts);
	struct itimerval off = {{0, 0}, {0, 0}};
	setitimer(ITIMER_REAL, &off, NULL);
	printf("alarms: %d\n", (int)alarms);

	pthread_t threads[3];
	for (long i = 0; i < 3; i++)
		pthread_create(&threads[i], NULL, reader, (void *)i);
	for (int i = 0; i < 3; i++)
		pthread_join(threads[i], NULL);

	pid_t child = fork();
	if (child == 0) {
		long sum = 0;
		for (int i = 0; i < 500; i++) {
			clock_gettime(CLOCK_MONOTONIC, &ts);
			sum += getppid() == getppid();
		}
		printf("child: %ld\n", sum);
		return 0;
	}
	for (int i = 0; i < 500; i++)
		clock_gettime(CLOCK_BOOTTIME, &ts);
	int status;
	waitpid(child, &status, 0);
	printf("child exit %d\n", WEXITSTATUS(status));
	return 0;
}
