/* enosys: makes a system call the VMM does not implement and prints what came back. */
#include <errno.h>
#include <stdio.h>
#include <unistd.h>
#include <sys/syscall.h>

int main(void)
{
    long rc = syscall(444); /* landlock_create_ruleset: not emulated */
    printf("syscall 444 -> %ld errno %d\n", rc, rc < 0 ? errno : 0);
    return rc < 0 && errno == ENOSYS ? 0 : 1;
}
