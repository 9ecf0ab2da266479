/* divzero.c - an integer divide by zero: the guest must end as a SIGFPE crash (#DE). */
#include <stdio.h>

int main(int argc, char **argv)
{
    /* volatile and argc-derived, so the division is done at run time by idiv. */
    volatile int divisor = argc - 1;
    volatile int dividend = 1000;
    (void)argv;
    printf("dividing %d by %d\n", dividend, divisor);
    fflush(stdout);
    int quotient = dividend / divisor;
    printf("unreachable: quotient %d\n", quotient);
    return 0;
}
