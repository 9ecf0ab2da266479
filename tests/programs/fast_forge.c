/* A program that writes the fast path's data page (the VMM maps it user-writable) to
 * claim calls it never made: its own run ends, with a reason that says why. */
#include <stdint.h>
#include <stdio.h>
#include <time.h>

int main(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts); /* a real fast call: the page is armed */
	volatile uint64_t *page = (volatile uint64_t *)0xffffffffff602000ull;
	page[1] = 3;                          /* count: three records that are all zeros */
	page[32] = 0;
	printf("forged\n");                   /* the write's exit drains the ring */
	return 0;
}
