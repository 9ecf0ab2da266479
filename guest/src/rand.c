/*
 * rand.c - prints the 16 bytes of AT_RANDOM from the auxiliary vector and 16 bytes from
 * getrandom(2): under chaosreplay both come from the run's seed.
 */
#include <stdio.h>
#include <sys/auxv.h>
#include <sys/random.h>

/* Print a labelled hex dump of n bytes on one line. */
static void dump(const char *label, const unsigned char *p, int n)
{
    printf("%s ", label);
    for (int i = 0; i < n; i++)
        printf("%02x", p[i]);
    printf("\n");
}

int main(void)
{
    const unsigned char *at_random = (const unsigned char *)getauxval(AT_RANDOM);
    unsigned char buf[16];

    if (at_random == NULL) {
        printf("no AT_RANDOM in the auxiliary vector\n");
        return 1;
    }
    dump("at_random", at_random, 16);
    if (getrandom(buf, sizeof buf, 0) != (ssize_t)sizeof buf) {
        perror("getrandom");
        return 1;
    }
    dump("getrandom", buf, 16);
    return 0;
}
