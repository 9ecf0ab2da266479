/* spin: loops forever without a system call (the watchdog must report a hang). */
#include <stdio.h>

int main(void)
{
    puts("spinning");
    fflush(stdout);
    volatile unsigned long x = 0;
    for (;;)
        x++;
}
