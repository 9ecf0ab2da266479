/* File-management calls printed result by result, in the directory argv[1] (on ext4
 * natively, on the node's disk under chaosreplay): both print the same. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/time.h>
#include <sys/uio.h>
#include <sys/epoll.h>
#include <signal.h>
#include <utime.h>
#include "show.h"

struct open_how_v0 { uint64_t flags, mode, resolve; };

static long size_of(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 ? (long)st.st_size : -1;
}

static void print_bytes(const char *label, int fd, long offset, int n)
{
    unsigned char buf[64];
    long got = pread(fd, buf, n, offset);
    printf("  %s:", label);
    for (long i = 0; i < got; i++)
        printf(" %02x", buf[i]);
    printf("\n");
}

static void links(void)
{
    struct stat a, b;
    int fd = open("orig", O_CREAT | O_WRONLY | O_TRUNC, 0644);
    write(fd, "hello", 5);
    close(fd);
    SHOW("link(orig, second)", syscall(SYS_link, "orig", "second"));
    stat("orig", &a);
    stat("second", &b);
    printf("  nlink %lu same inode %d size %ld\n", (unsigned long)a.st_nlink,
           a.st_ino == b.st_ino, (long)b.st_size);
    SHOW("link(orig, second) again", syscall(SYS_link, "orig", "second"));
    SHOW("link(missing, x)", syscall(SYS_link, "missing", "x"));
    mkdir("dir", 0755);
    SHOW("link(dir, dirlink)", syscall(SYS_link, "dir", "dirlink"));
    SHOW("link(orig, nodir/x)", syscall(SYS_link, "orig", "nodir/x"));
    SHOW("link(orig, /proc/x)", syscall(SYS_link, "orig", "/proc/x"));
    symlink("orig", "sym");
    SHOW("linkat(sym, hard-to-link)", syscall(SYS_linkat, AT_FDCWD, "sym", AT_FDCWD, "hsym", 0));
    lstat("hsym", &a);
    printf("  hsym is a link: %d\n", S_ISLNK(a.st_mode));
    SHOW("linkat(sym, FOLLOW)", syscall(SYS_linkat, AT_FDCWD, "sym", AT_FDCWD, "hfol", 0x400));
    lstat("hfol", &a);
    printf("  hfol is a link: %d nlink %lu\n", S_ISLNK(a.st_mode), (unsigned long)a.st_nlink);
    SHOW("linkat(bad flags)", syscall(SYS_linkat, AT_FDCWD, "orig", AT_FDCWD, "z", 0x1));
    unlink("orig");
    stat("second", &a);
    printf("  after unlink: nlink %lu\n", (unsigned long)a.st_nlink);
    unlink("hfol");
    stat("second", &a);
    printf("  after second unlink: nlink %lu\n", (unsigned long)a.st_nlink);
}

static void filesystems(void)
{
    struct statfs s;
    int pipefd[2];
    SHOW("statfs(.)", syscall(SYS_statfs, ".", &s));
    printf("  type %lx bsize %ld namelen %ld frsize %ld valid %d\n", (long)s.f_type,
           (long)s.f_bsize, (long)s.f_namelen, (long)s.f_frsize, !!(s.f_flags & 0x20));
    SHOW("statfs(/proc)", syscall(SYS_statfs, "/proc", &s));
    printf("  type %lx bsize %ld blocks %ld files %ld namelen %ld flags %lx\n",
           (long)s.f_type, (long)s.f_bsize, (long)s.f_blocks, (long)s.f_files,
           (long)s.f_namelen, (long)s.f_flags & 0x20);
    SHOW("statfs(missing)", syscall(SYS_statfs, "missing", &s));
    struct stat here;
    char ust[32];
    stat(".", &here);
    SHOW("ustat(this disk)", syscall(SYS_ustat, (unsigned)here.st_dev, ust));
    SHOW("ustat(no such device)", syscall(SYS_ustat, 0x7f7f, ust));
    SHOW("statfs(bad buffer)", syscall(SYS_statfs, ".", (void *)8));
    pipe(pipefd);
    SHOW("fstatfs(pipe)", syscall(SYS_fstatfs, pipefd[0], &s));
    printf("  type %lx\n", (long)s.f_type);
    int efd = eventfd(0, 0);
    SHOW("fstatfs(eventfd)", syscall(SYS_fstatfs, efd, &s));
    printf("  type %lx\n", (long)s.f_type);
    SHOW("fstatfs(99)", syscall(SYS_fstatfs, 99, &s));
    SHOW("sync", syscall(SYS_sync));
    SHOW("syncfs(pipe)", syscall(SYS_syncfs, pipefd[0]));
    SHOW("syncfs(99)", syscall(SYS_syncfs, 99));
    int fd = open("data", O_CREAT | O_RDWR | O_TRUNC, 0644);
    SHOW("syncfs(file)", syscall(SYS_syncfs, fd));
    SHOW("sync_file_range", syscall(SYS_sync_file_range, fd, 0, 0, 7));
    SHOW("sync_file_range(bad flags)", syscall(SYS_sync_file_range, fd, 0, 0, 8));
    SHOW("sync_file_range(negative)", syscall(SYS_sync_file_range, fd, (long)-1, 0, 2));
    SHOW("sync_file_range(pipe)", syscall(SYS_sync_file_range, pipefd[0], 0, 0, 2));
    SHOW("fadvise(SEQUENTIAL)", syscall(SYS_fadvise64, fd, 0, 0, 2));
    SHOW("fadvise(99)", syscall(SYS_fadvise64, fd, 0, 0, 99));
    SHOW("fadvise(negative len)", syscall(SYS_fadvise64, fd, 0, (long)-1, 0));
    SHOW("fadvise(pipe)", syscall(SYS_fadvise64, pipefd[0], 0, 0, 0));
    SHOW("readahead", syscall(SYS_readahead, fd, 0, 4096));
    SHOW("readahead(pipe)", syscall(SYS_readahead, pipefd[0], 0, 4096));
    int wo = open("data", O_WRONLY);
    SHOW("readahead(write-only)", syscall(SYS_readahead, wo, 0, 4096));
    close(wo);
    close(fd);
    close(efd);
    close(pipefd[0]);
    close(pipefd[1]);
}

static void allocation(void)
{
    int fd = open("alloc", O_CREAT | O_RDWR | O_TRUNC, 0644);
    char block[8192];
    memset(block, 'a', sizeof block);
    SHOW("fallocate(0, 0, 10000)", syscall(SYS_fallocate, fd, 0, 0, 10000));
    printf("  size %ld\n", size_of("alloc"));
    SHOW("fallocate(KEEP_SIZE, 0, 20000)", syscall(SYS_fallocate, fd, 1, 0, 20000));
    printf("  size %ld\n", size_of("alloc"));
    pwrite(fd, block, 100, 0);
    SHOW("fallocate(PUNCH_HOLE|KEEP_SIZE, 10, 20)", syscall(SYS_fallocate, fd, 3, 10, 20));
    print_bytes("bytes 5..35", fd, 5, 30);
    SHOW("fallocate(PUNCH_HOLE)", syscall(SYS_fallocate, fd, 2, 10, 20));
    SHOW("fallocate(ZERO_RANGE, 50, 20000)", syscall(SYS_fallocate, fd, 0x10, 50, 20000));
    printf("  size %ld\n", size_of("alloc"));
    print_bytes("bytes 45..55", fd, 45, 10);
    SHOW("fallocate(len 0)", syscall(SYS_fallocate, fd, 0, 0, 0));
    SHOW("fallocate(negative offset)", syscall(SYS_fallocate, fd, 0, (long)-1, 10));
    SHOW("fallocate(unknown mode)", syscall(SYS_fallocate, fd, 0x100, 0, 10));
    SHOW("fallocate(COLLAPSE|KEEP)", syscall(SYS_fallocate, fd, 0x9, 0, 4096));
    SHOW("fallocate(PUNCH|ZERO)", syscall(SYS_fallocate, fd, 0x13, 0, 4096));
    SHOW("fallocate(UNSHARE)", syscall(SYS_fallocate, fd, 0x40, 0, 4096));
    ftruncate(fd, 0);
    for (int i = 0; i < 4; i++) {
        memset(block, 'A' + i, 4096);
        pwrite(fd, block, 4096, i * 4096);
    }
    SHOW("fallocate(COLLAPSE, 4096, 4096)", syscall(SYS_fallocate, fd, 0x8, 4096, 4096));
    printf("  size %ld\n", size_of("alloc"));
    print_bytes("bytes at 4095", fd, 4095, 2);
    SHOW("fallocate(COLLAPSE, unaligned)", syscall(SYS_fallocate, fd, 0x8, 100, 4096));
    SHOW("fallocate(COLLAPSE, to EOF)", syscall(SYS_fallocate, fd, 0x8, 4096, 8192));
    SHOW("fallocate(INSERT, 4096, 4096)", syscall(SYS_fallocate, fd, 0x20, 4096, 4096));
    printf("  size %ld\n", size_of("alloc"));
    print_bytes("bytes at 4095", fd, 4095, 2);
    print_bytes("bytes at 8191", fd, 8191, 2);
    SHOW("fallocate(INSERT, past EOF)", syscall(SYS_fallocate, fd, 0x20, 65536, 4096));
    int ro = open("alloc", O_RDONLY);
    SHOW("fallocate(read-only)", syscall(SYS_fallocate, ro, 0, 0, 10));
    close(ro);
    int dir = open(".", O_RDONLY | O_DIRECTORY);
    SHOW("fallocate(directory)", syscall(SYS_fallocate, dir, 0, 0, 10));
    close(dir);
    int pipefd[2];
    pipe(pipefd);
    SHOW("fallocate(pipe)", syscall(SYS_fallocate, pipefd[1], 0, 0, 10));
    close(pipefd[0]);
    close(pipefd[1]);
    close(fd);
}

static void copying(void)
{
    int in = open("src", O_CREAT | O_RDWR | O_TRUNC, 0644);
    int out = open("dst", O_CREAT | O_RDWR | O_TRUNC, 0644);
    loff_t off_in = 2, off_out = 0;
    write(in, "0123456789", 10);
    SHOW("copy_file_range(4 from 2)", syscall(SYS_copy_file_range, in, &off_in, out, &off_out, 4, 0));
    printf("  offsets %ld %ld\n", (long)off_in, (long)off_out);
    print_bytes("dst", out, 0, 10);
    lseek(in, 8, SEEK_SET);
    SHOW("copy_file_range(file offsets, past EOF)",
         syscall(SYS_copy_file_range, in, NULL, out, NULL, 100, 0));
    printf("  file offsets %ld %ld size %ld\n", (long)lseek(in, 0, SEEK_CUR),
           (long)lseek(out, 0, SEEK_CUR), size_of("dst"));
    SHOW("copy_file_range(flags)", syscall(SYS_copy_file_range, in, NULL, out, NULL, 1, 1));
    off_in = 0;
    off_out = 2;
    SHOW("copy_file_range(overlap)", syscall(SYS_copy_file_range, in, &off_in, in, &off_out, 5, 0));
    off_out = 20;
    SHOW("copy_file_range(same file)", syscall(SYS_copy_file_range, in, &off_in, in, &off_out, 5, 0));
    int ro = open("dst", O_RDONLY);
    SHOW("copy_file_range(to read-only)", syscall(SYS_copy_file_range, in, NULL, ro, NULL, 1, 0));
    close(ro);
    int pipefd[2];
    pipe(pipefd);
    SHOW("copy_file_range(to pipe)", syscall(SYS_copy_file_range, in, NULL, pipefd[1], NULL, 1, 0));
    close(pipefd[0]);
    close(pipefd[1]);
    int dir = open(".", O_RDONLY | O_DIRECTORY);
    SHOW("copy_file_range(from dir)", syscall(SYS_copy_file_range, dir, NULL, out, NULL, 1, 0));
    close(dir);

    char a[4] = {0}, b[8] = {0};
    struct iovec iov[2] = {{a, 3}, {b, 4}};
    SHOW("preadv2(offset 1)", syscall(SYS_preadv2, in, iov, 2, 1, 0, 0));
    printf("  %.3s|%.4s\n", a, b);
    lseek(in, 5, SEEK_SET);
    SHOW("preadv2(offset -1)", syscall(SYS_preadv2, in, iov, 2, (long)-1, 0, 0));
    printf("  %.3s|%.4s offset %ld\n", a, b, (long)lseek(in, 0, SEEK_CUR));
    SHOW("preadv2(offset -2)", syscall(SYS_preadv2, in, iov, 2, (long)-2, 0, 0));
    SHOW("preadv2(unknown flag)", syscall(SYS_preadv2, in, iov, 2, 0, 0, 0x10000));
    SHOW("preadv2(NOWAIT)", syscall(SYS_preadv2, in, iov, 2, 0, 0, 8));
    SHOW("preadv2(HIPRI)", syscall(SYS_preadv2, in, iov, 2, 0, 0, 1));
    struct iovec w[1] = {{"XY", 2}};
    SHOW("pwritev2(offset 0, DSYNC)", syscall(SYS_pwritev2, in, w, 1, 0, 0, 2));
    SHOW("pwritev2(APPEND)", syscall(SYS_pwritev2, in, w, 1, 0, 0, 0x10));
    printf("  size %ld\n", size_of("src"));
    int ap = open("src", O_WRONLY | O_APPEND);
    SHOW("pwritev2(O_APPEND file, NOAPPEND, offset 1)", syscall(SYS_pwritev2, ap, w, 1, 1, 0, 0x20));
    SHOW("pwritev2(O_APPEND file, offset 1)", syscall(SYS_pwritev2, ap, w, 1, 1, 0, 0));
    close(ap);
    printf("  size %ld\n", size_of("src"));
    print_bytes("src", in, 0, 16);
    pipe(pipefd);
    SHOW("preadv2(pipe, NOWAIT, empty)", syscall(SYS_preadv2, pipefd[0], iov, 2, (long)-1, 0, 8));
    SHOW("pwritev2(pipe, offset 0)", syscall(SYS_pwritev2, pipefd[1], w, 1, 0, 0, 0));
    SHOW("pwritev2(pipe, offset -1)", syscall(SYS_pwritev2, pipefd[1], w, 1, (long)-1, 0, 0));
    SHOW("preadv2(pipe, NOWAIT)", syscall(SYS_preadv2, pipefd[0], iov, 2, (long)-1, 0, 8));
    close(pipefd[0]);
    close(pipefd[1]);
    close(in);
    close(out);
}

static void times_and_dirs(void)
{
    struct stat st;
    struct utimbuf ub = {1000000000, 1200000000};
    struct timeval tv[2] = {{1300000000, 5}, {1400000000, 7}};
    close(open("stamp", O_CREAT | O_WRONLY, 0644));
    SHOW("utime", syscall(SYS_utime, "stamp", &ub));
    stat("stamp", &st);
    printf("  atime %ld mtime %ld\n", (long)st.st_atime, (long)st.st_mtime);
    SHOW("utimes", syscall(SYS_utimes, "stamp", tv));
    stat("stamp", &st);
    printf("  atime %ld.%09ld mtime %ld.%09ld\n", (long)st.st_atim.tv_sec,
           st.st_atim.tv_nsec, (long)st.st_mtim.tv_sec, st.st_mtim.tv_nsec);
    tv[0].tv_usec = 1000000;
    SHOW("utimes(bad usec)", syscall(SYS_utimes, "stamp", tv));
    tv[0].tv_usec = 0;
    int dir = open(".", O_RDONLY | O_DIRECTORY);
    SHOW("futimesat", syscall(SYS_futimesat, dir, "stamp", tv));
    stat("stamp", &st);
    printf("  atime %ld mtime %ld\n", (long)st.st_atime, (long)st.st_mtime);
    SHOW("utime(missing)", syscall(SYS_utime, "missing", &ub));
    SHOW("utime(/proc/self/status)", syscall(SYS_utime, "/proc/self/status", &ub));

    int d = open("dir", O_RDONLY | O_DIRECTORY);
    char buf[4096];
    close(open("dir/alpha", O_CREAT | O_WRONLY, 0644));
    mkdir("dir/beta", 0755);
    long n = syscall(SYS_getdents, d, buf, sizeof buf);
    int files = 0, dirs = 0, dots = 0;
    for (long at = 0; at < n;) {
        unsigned short reclen = *(unsigned short *)(buf + at + 16);
        char *name = buf + at + 18;
        char type = buf[at + reclen - 1];
        if (name[0] == '.')
            dots += type == 4;
        else if (strcmp(name, "alpha") == 0)
            files += type == 8;
        else if (strcmp(name, "beta") == 0)
            dirs += type == 4;
        at += reclen;
    }
    printf("getdents: dots %d alpha %d beta %d\n", dots, files, dirs);
    SHOW("getdents(again, at end)", syscall(SYS_getdents, d, buf, sizeof buf));
    lseek(d, 0, SEEK_SET);
    SHOW("getdents(tiny buffer)", syscall(SYS_getdents, d, buf, 8));
    SHOW("getdents(file)", syscall(SYS_getdents, dir, buf, sizeof buf) > 0);
    int f = open("stamp", O_RDONLY);
    SHOW("getdents(regular file)", syscall(SYS_getdents, f, buf, sizeof buf));
    close(f);
    close(d);
    close(dir);
}

static void open2(void)
{
    struct open_how_v0 how = {O_RDONLY, 0, 0};
    char big[40] = {0};
    symlink("stamp", "link2");
    symlink("/proc/self/status", "abs");
    mkdir("sub", 0755);
    int dir = open("sub", O_RDONLY | O_DIRECTORY);
    long fd = syscall(SYS_openat2, AT_FDCWD, "stamp", &how, sizeof how);
    printf("openat2(stamp) ok %d\n", fd >= 0);
    close(fd);
    SHOW("openat2(size 16)", syscall(SYS_openat2, AT_FDCWD, "stamp", &how, 16));
    memcpy(big, &how, sizeof how);
    big[30] = 1;
    SHOW("openat2(size 40, tail set)", syscall(SYS_openat2, AT_FDCWD, "stamp", big, 40));
    big[30] = 0;
    fd = syscall(SYS_openat2, AT_FDCWD, "stamp", big, 40);
    printf("openat2(size 40, tail clear) ok %d\n", fd >= 0);
    close(fd);
    how.flags = 1ull << 40;
    SHOW("openat2(unknown flag)", syscall(SYS_openat2, AT_FDCWD, "stamp", &how, sizeof how));
    how = (struct open_how_v0){O_RDONLY, 0644, 0};
    SHOW("openat2(mode without O_CREAT)", syscall(SYS_openat2, AT_FDCWD, "stamp", &how, sizeof how));
    how = (struct open_how_v0){O_RDONLY, 0, 0x40};
    SHOW("openat2(unknown resolve)", syscall(SYS_openat2, AT_FDCWD, "stamp", &how, sizeof how));
    how.resolve = 0x8 | 0x10;
    SHOW("openat2(BENEATH|IN_ROOT)", syscall(SYS_openat2, AT_FDCWD, "stamp", &how, sizeof how));
    how.resolve = 0x4;
    SHOW("openat2(NO_SYMLINKS, link)", syscall(SYS_openat2, AT_FDCWD, "link2", &how, sizeof how));
    how = (struct open_how_v0){O_PATH | O_NOFOLLOW, 0, 0x4};
    fd = syscall(SYS_openat2, AT_FDCWD, "link2", &how, sizeof how);
    printf("openat2(NO_SYMLINKS, O_PATH|O_NOFOLLOW, link) ok %d\n", fd >= 0);
    close(fd);
    how = (struct open_how_v0){O_RDONLY, 0, 0x2};
    SHOW("openat2(NO_MAGICLINKS, /proc/self/fd/0)",
         syscall(SYS_openat2, AT_FDCWD, "/proc/self/fd/0", &how, sizeof how));
    how.resolve = 0x1;
    SHOW("openat2(NO_XDEV, /proc/self/status)",
         syscall(SYS_openat2, AT_FDCWD, "/proc/self/status", &how, sizeof how));
    SHOW("openat2(NO_XDEV, abs link)", syscall(SYS_openat2, AT_FDCWD, "abs", &how, sizeof how));
    how.resolve = 0x8;
    SHOW("openat2(BENEATH, ../stamp)", syscall(SYS_openat2, dir, "../stamp", &how, sizeof how));
    SHOW("openat2(BENEATH, /etc/hostname)",
         syscall(SYS_openat2, dir, "/etc/hostname", &how, sizeof how));
    close(open("sub/inner", O_CREAT | O_WRONLY, 0644));
    fd = syscall(SYS_openat2, dir, "inner", &how, sizeof how);
    printf("openat2(BENEATH, inner) ok %d\n", fd >= 0);
    close(fd);
    SHOW("openat2(BENEATH, ./x/../inner)", syscall(SYS_openat2, dir, "./x/../inner", &how, sizeof how));
    mkdir("sub/x", 0755);
    fd = syscall(SYS_openat2, dir, "./x/../inner", &how, sizeof how);
    printf("openat2(BENEATH, ./x/../inner, x exists) ok %d\n", fd >= 0);
    close(fd);
    how.resolve = 0x10;
    fd = syscall(SYS_openat2, dir, "/inner", &how, sizeof how);
    printf("openat2(IN_ROOT, /inner) ok %d\n", fd >= 0);
    close(fd);
    fd = syscall(SYS_openat2, dir, "../../inner", &how, sizeof how);
    printf("openat2(IN_ROOT, ../../inner) ok %d\n", fd >= 0);
    close(fd);
    how = (struct open_how_v0){O_CREAT | O_WRONLY, 0600, 0x20};
    SHOW("openat2(CACHED, O_CREAT)", syscall(SYS_openat2, AT_FDCWD, "new", &how, sizeof how));
    how = (struct open_how_v0){O_CREAT | O_WRONLY, 0600, 0};
    fd = syscall(SYS_openat2, AT_FDCWD, "new", &how, sizeof how);
    struct stat st;
    fstat(fd, &st);
    printf("openat2(O_CREAT 0600) mode %o\n", st.st_mode & 0777);
    close(fd);
    close(dir);
}

static void attributes(void)
{
    char value[64];
    char list[256];
    close(open("xa", O_CREAT | O_WRONLY, 0644));
    SHOW("setxattr(user.color)", syscall(SYS_setxattr, "xa", "user.color", "blue", 4, 0));
    SHOW("getxattr(size 0)", syscall(SYS_getxattr, "xa", "user.color", NULL, 0));
    memset(value, 0, sizeof value);
    SHOW("getxattr", syscall(SYS_getxattr, "xa", "user.color", value, sizeof value));
    printf("  value %s\n", value);
    SHOW("getxattr(small buffer)", syscall(SYS_getxattr, "xa", "user.color", value, 2));
    SHOW("getxattr(missing)", syscall(SYS_getxattr, "xa", "user.none", value, sizeof value));
    SHOW("setxattr(CREATE, exists)", syscall(SYS_setxattr, "xa", "user.color", "red", 3, 1));
    SHOW("setxattr(REPLACE, missing)", syscall(SYS_setxattr, "xa", "user.size", "1", 1, 2));
    SHOW("setxattr(REPLACE)", syscall(SYS_setxattr, "xa", "user.color", "red", 3, 2));
    SHOW("setxattr(bad flags)", syscall(SYS_setxattr, "xa", "user.color", "red", 3, 4));
    SHOW("setxattr(empty value)", syscall(SYS_setxattr, "xa", "user.empty", "", 0, 0));
    SHOW("setxattr(trusted)", syscall(SYS_setxattr, "xa", "trusted.t", "1", 1, 0));
    SHOW("getxattr(trusted)", syscall(SYS_getxattr, "xa", "trusted.t", value, sizeof value));
    SHOW("setxattr(other namespace)", syscall(SYS_setxattr, "xa", "other.x", "1", 1, 0));
    SHOW("setxattr(empty name)", syscall(SYS_setxattr, "xa", "", "1", 1, 0));
    SHOW("setxattr(too big)", syscall(SYS_setxattr, "xa", "user.big", value, 70000, 0));
    SHOW("listxattr(size 0)", syscall(SYS_listxattr, "xa", NULL, 0));
    memset(list, 0, sizeof list);
    long n = syscall(SYS_listxattr, "xa", list, sizeof list);
    int color = 0, empty = 0;
    for (long at = 0; at < n; at += strlen(list + at) + 1) {
        color += strcmp(list + at, "user.color") == 0;
        empty += strcmp(list + at, "user.empty") == 0;
    }
    printf("listxattr = %ld color %d empty %d\n", n, color, empty);
    SHOW("listxattr(small)", syscall(SYS_listxattr, "xa", list, 3));
    int fd = open("xa", O_RDONLY);
    memset(value, 0, sizeof value);
    SHOW("fgetxattr", syscall(SYS_fgetxattr, fd, "user.color", value, sizeof value));
    printf("  value %s\n", value);
    SHOW("fsetxattr(read-only fd)", syscall(SYS_fsetxattr, fd, "user.ro", "1", 1, 0));
    SHOW("fremovexattr(user.empty)", syscall(SYS_fremovexattr, fd, "user.empty"));
    SHOW("flistxattr(size 0)", syscall(SYS_flistxattr, fd, NULL, 0));
    SHOW("removexattr(missing)", syscall(SYS_removexattr, "xa", "user.empty"));
    close(fd);
    symlink("xa", "xalink");
    SHOW("lsetxattr(symlink, user.x)", syscall(SYS_lsetxattr, "xalink", "user.x", "1", 1, 0));
    SHOW("lgetxattr(symlink, user.color)", syscall(SYS_lgetxattr, "xalink", "user.color", value, 64));
    SHOW("getxattr(through symlink)", syscall(SYS_getxattr, "xalink", "user.color", value, 64));
    SHOW("llistxattr(symlink)", syscall(SYS_llistxattr, "xalink", list, sizeof list));
    SHOW("lremovexattr(symlink, user.color)", syscall(SYS_lremovexattr, "xalink", "user.color"));
    mkdir("xdir", 0755);
    SHOW("setxattr(directory)", syscall(SYS_setxattr, "xdir", "user.d", "1", 1, 0));
    SHOW("getxattr(missing file)", syscall(SYS_getxattr, "nofile", "user.d", value, 64));
    int pipefd[2];
    pipe(pipefd);
    SHOW("fsetxattr(pipe)", syscall(SYS_fsetxattr, pipefd[0], "user.p", "1", 1, 0));
    SHOW("fgetxattr(pipe)", syscall(SYS_fgetxattr, pipefd[0], "user.p", value, 64));
    SHOW("flistxattr(pipe)", syscall(SYS_flistxattr, pipefd[0], list, sizeof list));
    close(pipefd[0]);
    close(pipefd[1]);
    SHOW("getxattr(/proc/self/status)", syscall(SYS_getxattr, "/proc/self/status", "user.x", value, 64));
    SHOW("setxattr(/proc/self/status)", syscall(SYS_setxattr, "/proc/self/status", "user.x", "1", 1, 0));
    SHOW("listxattr(/proc/self/status)", syscall(SYS_listxattr, "/proc/self/status", list, sizeof list));
    int opath = open("xa", O_PATH);
    SHOW("fgetxattr(O_PATH)", syscall(SYS_fgetxattr, opath, "user.color", value, 64));
    close(opath);
}

static void memfd(void)
{
    char buf[16] = {0};
    struct stat st;
    long fd = syscall(SYS_memfd_create, "scratch", 1 | 2);
    printf("memfd_create ok %d cloexec %d\n", fd >= 0, (fcntl(fd, F_GETFD) & 1) == 1);
    SHOW("write", write(fd, "memory", 6));
    SHOW("pread", pread(fd, buf, sizeof buf, 2));
    printf("  %s\n", buf);
    SHOW("ftruncate(4)", ftruncate(fd, 4));
    fstat(fd, &st);
    printf("  size %ld regular %d mode %o\n", (long)st.st_size, S_ISREG(st.st_mode),
           st.st_mode & 0777);
    SHOW("ftruncate(100000)", ftruncate(fd, 100000));
    SHOW("pread(hole)", pread(fd, buf, 4, 50000));
    printf("  zero %d\n", buf[0] == 0 && buf[3] == 0);
    SHOW("lseek(END)", lseek(fd, 0, SEEK_END));
    SHOW("fallocate(memfd, 0, 200000)", syscall(SYS_fallocate, fd, 0, 0, 200000));
    fstat(fd, &st);
    printf("  size %ld\n", (long)st.st_size);
    SHOW("fallocate(memfd, KEEP_SIZE, 300000)", syscall(SYS_fallocate, fd, 1, 0, 300000));
    fstat(fd, &st);
    printf("  size %ld\n", (long)st.st_size);
    pwrite(fd, "abcdef", 6, 0);
    SHOW("fallocate(memfd, PUNCH_HOLE|KEEP_SIZE, 1, 2)", syscall(SYS_fallocate, fd, 3, 1, 2));
    memset(buf, 0, sizeof buf);
    pread(fd, buf, 6, 0);
    printf("  %c %d %d %c\n", buf[0], buf[1], buf[2], buf[3]);
    SHOW("fallocate(memfd, ZERO_RANGE)", syscall(SYS_fallocate, fd, 0x10, 0, 10));
    SHOW("ftruncate(100000)", ftruncate(fd, 100000));
    char link[64] = {0};
    char path[32];
    snprintf(path, sizeof path, "/proc/self/fd/%ld", fd);
    readlink(path, link, sizeof link - 1);
    printf("  link %s\n", link);
    SHOW("F_GET_SEALS", fcntl(fd, F_GET_SEALS));
    SHOW("F_ADD_SEALS(SHRINK|GROW)", fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW));
    SHOW("ftruncate(10) sealed", ftruncate(fd, 10));
    SHOW("pwrite past end sealed", pwrite(fd, "x", 1, 100000));
    SHOW("pwrite inside sealed", pwrite(fd, "x", 1, 10));
    SHOW("F_ADD_SEALS(WRITE)", fcntl(fd, F_ADD_SEALS, F_SEAL_WRITE));
    SHOW("pwrite sealed WRITE", pwrite(fd, "x", 1, 10));
    SHOW("fallocate(memfd, PUNCH_HOLE) sealed WRITE", syscall(SYS_fallocate, fd, 3, 0, 10));
    SHOW("fallocate(memfd, grow) sealed GROW", syscall(SYS_fallocate, fd, 0, 0, 200000));
    SHOW("fallocate(memfd, inside) sealed", syscall(SYS_fallocate, fd, 0, 0, 10));
    SHOW("F_ADD_SEALS(SEAL)", fcntl(fd, F_ADD_SEALS, F_SEAL_SEAL));
    SHOW("F_GET_SEALS", fcntl(fd, F_GET_SEALS));
    SHOW("F_ADD_SEALS after SEAL", fcntl(fd, F_ADD_SEALS, 0x20));
    close(fd);
    fd = syscall(SYS_memfd_create, "plain", 0);
    SHOW("F_GET_SEALS without ALLOW_SEALING", fcntl(fd, F_GET_SEALS));
    SHOW("F_ADD_SEALS without ALLOW_SEALING", fcntl(fd, F_ADD_SEALS, F_SEAL_WRITE));
    close(fd);
    SHOW("memfd_create(bad flags)", syscall(SYS_memfd_create, "x", 0x100));
    char longname[300];
    memset(longname, 'n', sizeof longname);
    longname[299] = 0;
    SHOW("memfd_create(long name)", syscall(SYS_memfd_create, longname, 0));
    SHOW("memfd_create(bad name)", syscall(SYS_memfd_create, (void *)8, 0));
    SHOW("F_GET_SEALS(regular file)", fcntl(1, F_GET_SEALS));
}

static void self_inspection(void)
{
    int a = open("stamp", O_RDONLY);
    int b = dup(a);
    int c = open("stamp", O_RDONLY);
    pid_t me = getpid();
    SHOW("kcmp(FILE, dup)", syscall(SYS_kcmp, me, me, 0, a, b));
    long less = syscall(SYS_kcmp, me, me, 0, a, c);
    long more = syscall(SYS_kcmp, me, me, 0, c, a);
    printf("kcmp(FILE, other) consistent %d\n", (less == 1 && more == 2) || (less == 2 && more == 1));
    SHOW("kcmp(FILE, closed fd)", syscall(SYS_kcmp, me, me, 0, a, 99));
    SHOW("kcmp(VM)", syscall(SYS_kcmp, me, me, 1, 0, 0));
    SHOW("kcmp(FILES)", syscall(SYS_kcmp, me, me, 2, 0, 0));
    SHOW("kcmp(SIGHAND)", syscall(SYS_kcmp, me, me, 4, 0, 0));
    SHOW("kcmp(type 99)", syscall(SYS_kcmp, me, me, 99, 0, 0));
    SHOW("kcmp(other pid)", syscall(SYS_kcmp, me, 424242, 1, 0, 0));
    int ep = epoll_create1(0);
    int pp[2];
    pipe(pp);
    struct epoll_event ev = {EPOLLIN, {0}};
    SHOW("epoll_ctl(pipe)", epoll_ctl(ep, EPOLL_CTL_ADD, pp[0], &ev));
    struct { uint32_t efd, tfd, toff; } slot = {ep, pp[0], 0};
    SHOW("kcmp(EPOLL_TFD, watched)", syscall(SYS_kcmp, me, me, 7, pp[0], &slot));
    long diff = syscall(SYS_kcmp, me, me, 7, pp[1], &slot);
    printf("kcmp(EPOLL_TFD, other file) differs %d\n", diff == 1 || diff == 2);
    slot.toff = 1;
    SHOW("kcmp(EPOLL_TFD, second registration)", syscall(SYS_kcmp, me, me, 7, pp[0], &slot));
    slot.toff = 0;
    slot.tfd = a;
    SHOW("kcmp(EPOLL_TFD, not watched)", syscall(SYS_kcmp, me, me, 7, c, &slot));
    slot.efd = a;
    SHOW("kcmp(EPOLL_TFD, not an epoll)", syscall(SYS_kcmp, me, me, 7, c, &slot));
    close(pp[0]);
    close(pp[1]);
    close(ep);
    close(a);
    close(b);
    close(c);

    char src[16] = "remote bytes!!", dst[16] = {0}, spare[4];
    struct iovec local[2] = {{dst, 7}, {dst + 7, 7}};
    struct iovec remote[1] = {{src, 14}};
    SHOW("process_vm_readv", syscall(SYS_process_vm_readv, me, local, 2, remote, 1, 0));
    printf("  %s\n", dst);
    struct iovec bad[2] = {{src, 4}, {(void *)8, 4}};
    struct iovec one[1] = {{spare, 4}};
    struct iovec two[1] = {{dst, 8}};
    SHOW("process_vm_readv(second remote bad)", syscall(SYS_process_vm_readv, me, two, 1, bad, 2, 0));
    SHOW("process_vm_readv(first remote bad)", syscall(SYS_process_vm_readv, me, one, 1, bad + 1, 1, 0));
    struct iovec wsrc[1] = {{"XYZ", 3}};
    struct iovec wdst[1] = {{src, 3}};
    SHOW("process_vm_writev", syscall(SYS_process_vm_writev, me, wsrc, 1, wdst, 1, 0));
    printf("  %s\n", src);
    SHOW("process_vm_readv(flags)", syscall(SYS_process_vm_readv, me, local, 2, remote, 1, 1));
    SHOW("process_vm_readv(other pid)", syscall(SYS_process_vm_readv, 424242, local, 2, remote, 1, 0));
}

static void splicing(void)
{
    int a[2], b[2];
    char buf[32] = {0};
    loff_t off = 3;
    pipe(a);
    pipe(b);
    int fd = open("spl", O_CREAT | O_RDWR | O_TRUNC, 0644);
    write(fd, "abcdefghij", 10);
    SHOW("splice(file@3 -> pipe, 4)", syscall(SYS_splice, fd, &off, a[1], NULL, 4, 0));
    printf("  offset %ld file offset %ld\n", (long)off, (long)lseek(fd, 0, SEEK_CUR));
    SHOW("tee(a -> b, 10)", syscall(SYS_tee, a[0], b[1], 10, 0));
    SHOW("splice(a -> b, 2)", syscall(SYS_splice, a[0], NULL, b[1], NULL, 2, 0));
    memset(buf, 0, sizeof buf);
    SHOW("read(b)", read(b[0], buf, sizeof buf));
    printf("  %s\n", buf);
    off = 0;
    SHOW("splice(a -> file@0)", syscall(SYS_splice, a[0], NULL, fd, &off, 10, 0));
    printf("  offset %ld\n", (long)off);
    print_bytes("spl", fd, 0, 10);
    SHOW("splice(empty pipe, NONBLOCK)", syscall(SYS_splice, a[0], NULL, fd, NULL, 10, 2));
    SHOW("splice(file -> file)", syscall(SYS_splice, fd, NULL, fd, NULL, 10, 0));
    SHOW("splice(offset on pipe)", syscall(SYS_splice, a[0], &off, fd, NULL, 10, 0));
    SHOW("splice(same pipe)", syscall(SYS_splice, a[0], NULL, a[1], NULL, 10, 0));
    SHOW("splice(bad flags)", syscall(SYS_splice, fd, NULL, a[1], NULL, 1, 0x100));
    SHOW("splice(len 0)", syscall(SYS_splice, fd, NULL, a[1], NULL, 0, 0));
    SHOW("splice(write end as input)", syscall(SYS_splice, a[1], NULL, fd, NULL, 1, 0));
    SHOW("tee(file)", syscall(SYS_tee, fd, b[1], 1, 0));
    SHOW("tee(empty, NONBLOCK)", syscall(SYS_tee, a[0], b[1], 1, 2));
    struct iovec iov[2] = {{"vm", 2}, {"splice", 6}};
    SHOW("vmsplice(write end)", syscall(SYS_vmsplice, a[1], iov, 2, 0));
    char x[3] = {0}, y[8] = {0};
    struct iovec out[2] = {{x, 2}, {y, 7}};
    SHOW("vmsplice(read end)", syscall(SYS_vmsplice, a[0], out, 2, 0));
    printf("  %s|%s\n", x, y);
    SHOW("vmsplice(empty, NONBLOCK)", syscall(SYS_vmsplice, a[0], out, 2, 2));
    SHOW("vmsplice(file)", syscall(SYS_vmsplice, fd, iov, 2, 0));
    close(a[1]);
    SHOW("splice(no writers) = end of file", syscall(SYS_splice, a[0], NULL, fd, NULL, 10, 0));
    close(b[0]);
    signal(SIGPIPE, SIG_IGN);
    SHOW("splice(into pipe without readers)", syscall(SYS_splice, fd, &off, b[1], NULL, 1, 0));
    close(a[0]);
    close(b[1]);
    close(fd);
}

static void nodes(void)
{
    struct stat st;
    char buf[16] = {0};
    SHOW("mknod(fifo)", syscall(SYS_mknod, "fifo", S_IFIFO | 0666, 0));
    stat("fifo", &st);
    printf("  fifo %d mode %o\n", S_ISFIFO(st.st_mode), st.st_mode & 0777);
    SHOW("mknod(fifo) again", syscall(SYS_mknod, "fifo", S_IFIFO | 0666, 0));
    SHOW("open(fifo, WRONLY|NONBLOCK) without reader", open("fifo", O_WRONLY | O_NONBLOCK));
    int r = open("fifo", O_RDONLY | O_NONBLOCK);
    printf("open(fifo, RDONLY|NONBLOCK) ok %d\n", r >= 0);
    SHOW("read(fifo, no writer)", read(r, buf, sizeof buf));
    int w = open("fifo", O_WRONLY | O_NONBLOCK);
    printf("open(fifo, WRONLY|NONBLOCK) with reader ok %d\n", w >= 0);
    SHOW("write(fifo)", write(w, "through", 7));
    SHOW("read(fifo)", read(r, buf, sizeof buf));
    printf("  %s\n", buf);
    SHOW("read(fifo, empty, writer open)", read(r, buf, sizeof buf));
    fstat(w, &st);
    printf("  fstat fifo %d\n", S_ISFIFO(st.st_mode));
    int rw = open("fifo", O_RDWR);
    printf("open(fifo, RDWR) ok %d\n", rw >= 0);
    SHOW("write(rw)", write(rw, "both", 4));
    memset(buf, 0, sizeof buf);
    SHOW("read(r) shares the pipe", read(r, buf, sizeof buf));
    printf("  %s\n", buf);
    SHOW("lseek(fifo)", lseek(r, 0, SEEK_SET));
    SHOW("truncate(fifo)", truncate("fifo", 0));
    SHOW("open(fifo, O_DIRECTORY)", open("fifo", O_RDONLY | O_NONBLOCK | O_DIRECTORY));
    SHOW("ftruncate(fifo end)", ftruncate(w, 0));
    close(r);
    close(w);
    close(rw);
    SHOW("mknod(regular)", syscall(SYS_mknod, "regular", S_IFREG | 0640, 0));
    stat("regular", &st);
    printf("  regular %d mode %o size %ld\n", S_ISREG(st.st_mode), st.st_mode & 0777,
           (long)st.st_size);
    SHOW("mknod(mode 0)", syscall(SYS_mknod, "zero", 0644, 0));
    stat("zero", &st);
    printf("  regular %d\n", S_ISREG(st.st_mode));
    SHOW("mknod(char device)", syscall(SYS_mknod, "null", S_IFCHR | 0666, 0x103));
    SHOW("mknod(block device)", syscall(SYS_mknod, "disk", S_IFBLK | 0666, 0x800));
    SHOW("mknod(directory)", syscall(SYS_mknod, "d", S_IFDIR | 0755, 0));
    SHOW("mknod(bad type)", syscall(SYS_mknod, "bad", 0170000 | 0644, 0));
    SHOW("mknodat(socket)", syscall(SYS_mknodat, AT_FDCWD, "sock", S_IFSOCK | 0644, 0));
    lstat("sock", &st);
    printf("  socket %d\n", S_ISSOCK(st.st_mode));
    SHOW("open(socket node)", open("sock", O_RDONLY));
    SHOW("mknod(missing dir)", syscall(SYS_mknod, "nodir/f", S_IFIFO | 0644, 0));
    int d = open(".", O_RDONLY | O_DIRECTORY);
    char dents[4096];
    long n = syscall(SYS_getdents64, d, dents, sizeof dents);
    int fifo_type = 0, sock_type = 0;
    for (long at = 0; at < n;) {
        unsigned short reclen = *(unsigned short *)(dents + at + 16);
        unsigned char type = dents[at + 18];
        char *name = dents + at + 19;
        fifo_type += strcmp(name, "fifo") == 0 && type == 1;
        sock_type += strcmp(name, "sock") == 0 && type == 12;
        at += reclen;
    }
    printf("getdents64: fifo DT_FIFO %d sock DT_SOCK %d\n", fifo_type, sock_type);
    close(d);
}

int main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (argc < 2 || chdir(argv[1]) != 0)
        return 2;
    links();
    filesystems();
    allocation();
    copying();
    times_and_dirs();
    open2();
    attributes();
    memfd();
    self_inspection();
    splicing();
    nodes();
    printf("done\n");
    return 0;
}
