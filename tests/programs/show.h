/* Printing a raw system call's result the same way natively and under chaosreplay. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

static const char *ename(int e)
{
    static const struct { int e; const char *n; } names[] = {
        {EPERM, "EPERM"}, {ENOENT, "ENOENT"}, {ESRCH, "ESRCH"}, {EBADF, "EBADF"},
        {EAGAIN, "EAGAIN"}, {ENOMEM, "ENOMEM"}, {EACCES, "EACCES"}, {EFAULT, "EFAULT"},
        {EEXIST, "EEXIST"}, {EXDEV, "EXDEV"}, {ENOTDIR, "ENOTDIR"}, {EISDIR, "EISDIR"},
        {EINVAL, "EINVAL"}, {ENOSPC, "ENOSPC"}, {ESPIPE, "ESPIPE"}, {ENOSYS, "ENOSYS"},
        {ENODATA, "ENODATA"}, {EOPNOTSUPP, "EOPNOTSUPP"}, {E2BIG, "E2BIG"},
        {ERANGE, "ERANGE"}, {ELOOP, "ELOOP"}, {ENAMETOOLONG, "ENAMETOOLONG"},
        {EMLINK, "EMLINK"}, {ENODEV, "ENODEV"}, {ENXIO, "ENXIO"}, {EFBIG, "EFBIG"},
        {ENOTEMPTY, "ENOTEMPTY"}, {EROFS, "EROFS"}, {ETXTBSY, "ETXTBSY"}, {EPIPE, "EPIPE"},
    };
    for (unsigned i = 0; i < sizeof names / sizeof names[0]; i++)
        if (names[i].e == e)
            return names[i].n;
    static char other[32];
    snprintf(other, sizeof other, "errno%d", e);
    return other;
}

/* SHOW("what", syscall(...)): "what = result" or "what = -1 ENAME". */
#define SHOW(label, expr)                                                              \
    do {                                                                               \
        errno = 0;                                                                     \
        long show_r = (long)(expr);                                                    \
        if (show_r == -1)                                                              \
            printf("%s = -1 %s\n", (label), ename(errno));                             \
        else                                                                           \
            printf("%s = %ld\n", (label), show_r);                                     \
    } while (0)
