/* call_loop.c - `call_loop CALL N`: N calls of one cheap system call through libc's own
 * wrapper (clock_gettime, gettimeofday, time) or raw syscall(2) for the ids (libcs may
 * cache getpid). The fast-path benchmark: per-call cost natively and in a VM. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	const char *call = argc > 1 ? argv[1] : "clock_gettime";
	long n = argc > 2 ? strtol(argv[2], NULL, 10) : 1000;
	long sink = 0;
	struct timespec ts;
	struct timeval tv;
	/* Through a pointer: a direct call's displacement here happened to hold the bytes
	 * of rdtsc, which chaosreplay then traps at every call (docs/guests.md). */
	int (*volatile read_clock)(clockid_t, struct timespec *) = clock_gettime;
	if (strcmp(call, "clock_gettime") == 0) {
		for (long i = 0; i < n; i++) {
			read_clock(CLOCK_MONOTONIC, &ts);
			sink += ts.tv_nsec;
		}
	} else if (strcmp(call, "gettimeofday") == 0) {
		for (long i = 0; i < n; i++) {
			gettimeofday(&tv, NULL);
			sink += tv.tv_usec;
		}
	} else if (strcmp(call, "time") == 0) {
		for (long i = 0; i < n; i++)
			sink += time(NULL);
	} else {
		long nr = strcmp(call, "gettid") == 0 ? SYS_gettid
			  : strcmp(call, "getppid") == 0 ? SYS_getppid : SYS_getpid;
		for (long i = 0; i < n; i++)
			sink += syscall(nr);
	}
	printf("call_loop: %ld %s calls (%ld)\n", n, call, sink & 1);
	return 0;
}
