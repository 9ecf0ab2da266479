/* segv.c - writes through a bad pointer: the guest must end as a SIGSEGV crash (#PF). */
#include <stdint.h>
#include <stdio.h>

int main(int argc, char **argv)
{
    /* Derived from argc so the compiler cannot prove the store undefined and drop it. */
    volatile uintptr_t address = 0x10 + (uintptr_t)(argc - 1);
    (void)argv;
    printf("writing to %#lx\n", (unsigned long)address);
    fflush(stdout);
    *(volatile int *)address = 42;
    printf("unreachable: the store did not fault\n");
    return 0;
}
