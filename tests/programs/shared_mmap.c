/* Shared file mappings (mmap(2) MAP_SHARED of a file and a memfd) coherent with read,
 * write, pwrite and ftruncate; two mappings of one file; msync; a fork child's stores
 * through an inherited mapping; mremap (grow, shrink, MREMAP_MAYMOVE, MREMAP_FIXED) of
 * anonymous and file mappings; madvise(MADV_DONTNEED) of private file, anonymous and
 * shared mappings; mincore; MAP_SHARED|MAP_ANONYMOUS memory shared with a fork child. Prints one line per check; the output is the same natively
 * and under chaosreplay. Runs in the current directory.
 *
 * One difference is part of the program: under chaosreplay a store through one mapping
 * reaches another mapping of the same file at the next system call (Linux: at once), so
 * the checks of two mappings make one (getppid) between the store and the load. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define PAGE 4096

static const char *err(long rc)
{
    if (rc != -1)
        return "ok";
    switch (errno) {
    case EINVAL: return "EINVAL";
    case ENOMEM: return "ENOMEM";
    case EFAULT: return "EFAULT";
    case EACCES: return "EACCES";
    case ENODEV: return "ENODEV";
    case EPERM: return "EPERM";
    default: return "E?";
    }
}

static const char *merr(void *p)
{
    return err(p == MAP_FAILED ? -1 : 0);
}

static void fill_file(int fd, size_t size)
{
    char *buf = malloc(size);
    for (size_t i = 0; i < size; i++)
        buf[i] = (char)('a' + (i / PAGE + i % 11) % 26);
    if (pwrite(fd, buf, size, 0) != (ssize_t)size)
        printf("short write\n");
    free(buf);
}

static char at(int fd, off_t offset)
{
    char c = '?';
    if (pread(fd, &c, 1, offset) != 1)
        return '!';
    return c;
}

static void coherence(void)
{
    int fd = open("shared.dat", O_CREAT | O_TRUNC | O_RDWR, 0644);
    fill_file(fd, 2 * PAGE + 100);
    char *m = mmap(NULL, 3 * PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    printf("mmap shared: %s first %c%c%c\n", merr(m), m[0], m[1], m[2]);
    if (m == MAP_FAILED)
        exit(1);

    pwrite(fd, "HELLO", 5, 10);
    printf("pwrite seen by the mapping: %.5s\n", m + 10);
    memcpy(m + 20, "WORLD", 5);
    char buf[8] = {0};
    pread(fd, buf, 5, 20);
    printf("store seen by pread: %s\n", buf);
    lseek(fd, 30, SEEK_SET);
    write(fd, "write", 5);
    printf("write seen by the mapping: %.5s\n", m + 30);
    memcpy(m + PAGE + 1, "page2", 5);
    lseek(fd, PAGE + 1, SEEK_SET);
    memset(buf, 0, sizeof buf);
    read(fd, buf, 5);
    printf("store seen by read: %s\n", buf);
    struct stat st;
    fstat(fd, &st);
    printf("size unchanged by stores: %ld\n", (long)st.st_size);
    printf("tail past the end reads zero: %d %d\n", m[2 * PAGE + 99] != 0, m[2 * PAGE + 100]);

    /* ftruncate growing: the mapped tail shows what is written there */
    printf("ftruncate grow: %s\n", err(ftruncate(fd, 3 * PAGE)));
    pwrite(fd, "X", 1, 2 * PAGE + 500);
    printf("grown part seen by the mapping: %c, still zero after: %d\n", m[2 * PAGE + 500],
           m[2 * PAGE + 501]);
    m[2 * PAGE + 600] = 'Y';
    printf("store into the grown part: %c\n", at(fd, 2 * PAGE + 600));

    /* ftruncate shrinking: the cut bytes are gone when it grows again */
    printf("ftruncate shrink: %s\n", err(ftruncate(fd, PAGE + 10)));
    fstat(fd, &st);
    printf("size after shrink: %ld, kept byte %c\n", (long)st.st_size, m[PAGE + 1]);
    printf("ftruncate regrow: %s\n", err(ftruncate(fd, 3 * PAGE)));
    printf("after regrow: kept %c, cut %d %d %d\n", m[PAGE + 5], m[PAGE + 20],
           m[2 * PAGE + 500], m[2 * PAGE + 600]);

    /* two mappings of one file, one at an offset */
    char *m2 = mmap(NULL, 3 * PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    char *m3 = mmap(NULL, PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, PAGE);
    printf("second and offset mappings: %s %s\n", merr(m2), merr(m3));
    m[40] = 'Q';
    m3[100] = 'R';
    (void)getppid(); /* the system call another mapping's view waits for (see the top) */
    printf("two mappings see each other: %c %c %c\n", m2[40], m2[PAGE + 100], m[PAGE + 100]);
    m2[41] = 'S';
    m[42] = 'T'; /* other bytes of the same page, through two mappings */
    printf("both stores reach the file: %c%c\n", at(fd, 41), at(fd, 42));

    /* msync */
    printf("msync MS_SYNC: %s\n", err(msync(m, 3 * PAGE, MS_SYNC)));
    printf("msync MS_ASYNC: %s\n", err(msync(m, PAGE, MS_ASYNC)));
    printf("msync both flags: %s\n", err(msync(m, PAGE, MS_SYNC | MS_ASYNC)));
    printf("msync unaligned: %s\n", err(msync(m + 1, PAGE, MS_SYNC)));

    /* a store just before munmap reaches the file */
    m3[200] = 'U';
    munmap(m3, PAGE);
    printf("store before munmap kept: %c\n", at(fd, PAGE + 200));

    /* a fork child's stores through the inherited mapping */
    pid_t child = fork();
    if (child == 0) {
        m[50] = 'C';
        _exit(0);
    }
    int status;
    waitpid(child, &status, 0);
    printf("child's store seen by the parent: %c %c\n", m[50], at(fd, 50));

    /* MADV_DONTNEED keeps shared data */
    m[60] = 'D';
    printf("madvise shared: %s, kept %c\n", err(madvise(m, PAGE, MADV_DONTNEED)), m[60]);

    /* errors */
    int ro = open("shared.dat", O_RDONLY);
    printf("shared writable of a read-only fd: %s\n",
           merr(mmap(NULL, PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, ro, 0)));
    void *rom = mmap(NULL, PAGE, PROT_READ, MAP_SHARED, ro, 0);
    printf("shared read-only of a read-only fd: %s %c\n", merr(rom), ((char *)rom)[40]);
    int dir = open(".", O_RDONLY | O_DIRECTORY);
    printf("shared of a directory: %s\n", merr(mmap(NULL, PAGE, PROT_READ, MAP_SHARED, dir, 0)));
    int pipes[2];
    pipe(pipes);
    printf("shared of a pipe: %s\n", merr(mmap(NULL, PAGE, PROT_READ, MAP_SHARED, pipes[0], 0)));
    close(ro);
    close(dir);
    munmap(m, 3 * PAGE);
    munmap(m2, 3 * PAGE);
    close(fd);
}

static void memfd(void)
{
    int fd = memfd_create("shm", MFD_ALLOW_SEALING);
    ftruncate(fd, 2 * PAGE);
    char *m = mmap(NULL, 2 * PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    printf("memfd shared: %s\n", merr(m));
    memcpy(m + 5, "memfd", 5);
    char buf[8] = {0};
    pread(fd, buf, 5, 5);
    printf("memfd store seen by pread: %s\n", buf);
    pwrite(fd, "pw", 2, PAGE);
    printf("memfd pwrite seen: %.2s\n", m + PAGE);
    munmap(m, 2 * PAGE);
    fcntl(fd, F_ADD_SEALS, F_SEAL_WRITE);
    printf("sealed memfd writable shared: %s\n",
           merr(mmap(NULL, PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0)));
    close(fd);
}

static void remaps(void)
{
    const char *rc;
    char *a = mmap(NULL, 3 * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    memset(a, 'a', 2 * PAGE);
    /* a guard after the first two pages: growing them in place is impossible */
    char *guard = a + 2 * PAGE;
    printf("guard: %s\n", err(mprotect(guard, PAGE, PROT_NONE)));
    printf("grow in place blocked: %s\n", merr(mremap(a, 2 * PAGE, 4 * PAGE, 0)));
    char *b = mremap(a, 2 * PAGE, 4 * PAGE, MREMAP_MAYMOVE);
    printf("grow moving: %s moved %d kept %c%c new %d%d\n", merr(b), b != a, b[0],
           b[2 * PAGE - 1], b[2 * PAGE], b[4 * PAGE - 1]);
    unsigned char vec[4];
    printf("old place gone: %s\n", err(mincore(a, PAGE, vec)));
    char *c = mremap(b, 4 * PAGE, PAGE, 0);
    rc = err(mincore(b + PAGE, PAGE, vec));
    printf("shrink: %s same %d kept %c, cut gone: %s\n", merr(c), c == b, c[0], rc);
    char *spot = mmap(NULL, 8 * PAGE, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    char *d = mremap(c, PAGE, 2 * PAGE, MREMAP_MAYMOVE | MREMAP_FIXED, spot + 2 * PAGE);
    printf("fixed move: %s at %d kept %c new %d\n", merr(d), d == spot + 2 * PAGE, d[0],
           d[PAGE]);
    printf("fixed without maymove: %s\n",
           merr(mremap(d, PAGE, PAGE, MREMAP_FIXED, spot + 6 * PAGE)));
    printf("unaligned: %s\n", merr(mremap(d + 1, PAGE, 2 * PAGE, MREMAP_MAYMOVE)));
    printf("bad flags: %s\n", merr(mremap(d, PAGE, 2 * PAGE, 0x80)));
    printf("zero new size: %s\n", merr(mremap(d, PAGE, 0, MREMAP_MAYMOVE)));
    printf("unmapped: %s\n", merr(mremap(spot + 7 * PAGE + (8l << 20), PAGE, PAGE, 0)));
    munmap(spot, 8 * PAGE);
    munmap(guard, PAGE);

    /* a shared file mapping grown by moving: the new pages are the file's */
    int fd = open("remap.dat", O_CREAT | O_TRUNC | O_RDWR, 0644);
    fill_file(fd, 3 * PAGE);
    char *f = mmap(NULL, 2 * PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    char *block = f + PAGE;
    mprotect(block, PAGE, PROT_NONE); /* the first page cannot grow in place */
    f[3] = '3';
    char *g = mremap(f, PAGE, 3 * PAGE, MREMAP_MAYMOVE);
    printf("shared file grown: %s moved %d kept %c file's %c%c\n", merr(g), g != f, g[3],
           g[PAGE], g[2 * PAGE + 7]);
    g[2 * PAGE + 8] = '8';
    printf("store through the moved mapping: %c\n", at(fd, 2 * PAGE + 8));
    char *h = mremap(g, 3 * PAGE, 2 * PAGE, 0);
    printf("shared file shrunk: %s same %d\n", merr(h), h == g);
    munmap(block, PAGE);

    /* a private file mapping moved: its private changes go with it, new pages the file's */
    char *p = mmap(NULL, PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, PAGE);
    p[0] = 'P';
    char *room = mmap(NULL, 4 * PAGE, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    char *q = mremap(p, PAGE, 2 * PAGE, MREMAP_MAYMOVE | MREMAP_FIXED, room + PAGE);
    if (q == MAP_FAILED) {
        printf("private file move: %s\n", merr(q));
        exit(1);
    }
    printf("private file moved: %s kept %c file's %c, file has %c\n", merr(q), q[0], q[PAGE],
           at(fd, PAGE));

    /* MADV_DONTNEED: a private file page reads the file again, anonymous reads zeros */
    q[1] = 'p';
    rc = err(madvise(q, PAGE, MADV_DONTNEED));
    printf("madvise private file: %s now %c%c (file %c%c)\n", rc, q[0], q[1], at(fd, PAGE),
           at(fd, PAGE + 1));
    char *anon = mmap(NULL, PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    anon[7] = 'x';
    rc = err(madvise(anon, PAGE, MADV_DONTNEED));
    printf("madvise anonymous: %s now %d\n", rc, anon[7]);

    /* mincore of touched pages */
    anon[0] = 1;
    h[0] = h[0];
    h[PAGE] = h[PAGE];
    unsigned char v2[2] = {9, 9};
    rc = err(mincore(anon, PAGE, v2));
    printf("mincore anonymous touched: %s %d\n", rc, v2[0] & 1);
    rc = err(mincore(h, 2 * PAGE, v2));
    printf("mincore shared file: %s %d %d\n", rc, v2[0] & 1, v2[1] & 1);
    printf("mincore unaligned: %s\n", err(mincore(h + 1, PAGE, v2)));
    munmap(anon, PAGE);
    munmap(h, 2 * PAGE);
    munmap(room, 4 * PAGE);
    close(fd);
}

static void anonymous_across_fork(void)
{
    volatile char *s = mmap(NULL, PAGE, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS,
                            -1, 0);
    s[0] = 'p';
    pid_t child = fork();
    if (child == 0) {
        s[0] = 'c';
        _exit(0);
    }
    int status;
    waitpid(child, &status, 0);
    printf("shared anonymous across fork: %c\n", s[0]);

    /* a huge reservation costs only the pages stored into */
    size_t big = 64ul << 30;
    char *h = mmap(NULL, big, PROT_READ | PROT_WRITE,
                   MAP_SHARED | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    h[0] = 1;
    h[big - 1] = 3;
    child = fork();
    if (child == 0) {
        h[big / 2] = 9;
        _exit(0);
    }
    waitpid(child, &status, 0);
    printf("huge shared anonymous across fork: %d %d %d\n", h[0], h[big / 2], h[big - 1]);
    char *a = mmap(NULL, big, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
                   -1, 0);
    a[5] = 7;
    a[big - 1] = 8;
    char *b = mremap(a, big, big + PAGE, MREMAP_MAYMOVE);
    printf("huge private moved: %s %d %d\n", merr(b), b[5], b[big - 1]);
}

int main(void)
{
    setvbuf(stdout, NULL, _IONBF, 0);
    coherence();
    memfd();
    remaps();
    anonymous_across_fork();
    printf("done\n");
    return 0;
}
