/* getpid_loop.c - `getpid_loop N`: N raw getpid syscalls, the syscall round-trip benchmark. */
#include <stdio.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <unistd.h>

int main(int argc, char **argv)
{
    long n = argc > 1 ? strtol(argv[1], NULL, 10) : 1000;
    long last = 0;
    /* syscall(2), not getpid(): some libcs cache the pid and would make no syscall at all. */
    for (long i = 0; i < n; i++)
        last = syscall(SYS_getpid);
    printf("getpid_loop: %ld calls, pid %ld\n", n, last);
    return 0;
}
