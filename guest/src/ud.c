/* ud.c - executes ud2: the guest must end as a SIGILL crash (#UD) that is not a patched site. */
#include <stdio.h>

int main(void)
{
    printf("executing ud2\n");
    fflush(stdout);
    __asm__ volatile("ud2");
    printf("unreachable: ud2 did not fault\n");
    return 0;
}
