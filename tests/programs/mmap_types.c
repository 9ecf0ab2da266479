/* mmap's mapping type (flags & MAP_TYPE, 0x0f): only MAP_SHARED, MAP_PRIVATE and
 * MAP_SHARED_VALIDATE exist; every other value is EINVAL, as Linux answers, for any file
 * (an epoll descriptor here, which the fuzzer once mapped as "shared"). */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/mman.h>

int main(void)
{
	int ep = epoll_create1(0);
	for (int type = 0; type <= 0xf; type++) {
		void *at = mmap(NULL, 4096, PROT_READ, type, ep, 0);
		void *anon = mmap(NULL, 4096, PROT_READ, type | MAP_ANONYMOUS, -1, 0);
		printf("type %#x: epoll %s, anonymous %s\n", type,
		       at == MAP_FAILED ? strerror(errno) : "mapped",
		       anon == MAP_FAILED ? "refused" : "mapped");
	}
	return 0;
}
