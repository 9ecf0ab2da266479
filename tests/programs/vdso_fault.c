/* clock_gettime through libc (so through the vDSO when there is one) into buffers the
 * vDSO's store faults on: a page not touched yet (mapped on the way) and a timespec
 * straddling a read-only page (EFAULT: chaosreplay's vDSO makes the call instead of
 * crashing as Linux's would). Prints whether the program was given a vDSO. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/auxv.h>
#include <sys/mman.h>
#include <time.h>

int main(void)
{
	printf("vdso: %s\n", getauxval(AT_SYSINFO_EHDR) ? "yes" : "no");
	char *pages = mmap(NULL, 4096 * 8, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
			   -1, 0);
	for (int i = 0; i < 6; i++) {
		struct timespec *fresh = (struct timespec *)(pages + 4096 * i + 64 * i);
		int rc = clock_gettime(i % 2 ? CLOCK_MONOTONIC : CLOCK_REALTIME, fresh);
		printf("fresh page %d: %s\n", i, rc ? strerror(errno) : "ok");
	}
	mprotect(pages + 4096 * 7, 4096, PROT_READ);
	int rc = clock_gettime(CLOCK_MONOTONIC, (struct timespec *)(pages + 4096 * 7 - 8));
	printf("straddling a read-only page: %s\n", rc ? strerror(errno) : "ok");
	return 0;
}
