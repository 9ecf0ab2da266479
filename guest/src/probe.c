/*
 * probe.c - a small multi-node program whose output shows what the simulation did to it;
 * the simulation's tests use it to see each fault's effect from inside a guest.
 *
 *   probe ring ROUNDS     every 10 ms send "r<round> from <id>" to the next node and
 *                         print each datagram received ("got <text> src=<n>")
 *   probe clock ROUNDS    every 100 ms (by the node's own clock) print both clocks in ms
 *   probe alloc ROUNDS    every 100 ms map 1 MiB more and print "alloc ok" or "alloc ENOMEM"
 *   probe burst N         send N datagrams "b<i> from <id>" to the next node at once, then
 *                         print what arrives for 300 ms
 *   probe pingpong N      node 0 sends N datagrams to node 1 one at a time, each sent once
 *                         the previous came back (node 1 echoes them), then prints a line
 *   probe bug ROUND       like ring, but an always-assertion fails at ROUND on node 0
 *   probe disk ROUNDS     boot: print "boot <n> unsynced=<present|absent> torn=<size>" from
 *                         the disk, durably count the boot, leave unsynced data behind;
 *                         then every 100 ms append+fsync /data/log and read /data/boot,
 *                         printing "write <result> fsync <result> read <result>"
 *   probe random          print two random numbers (SDK and getrandom), then idle 100 ms
 *   probe spin            after setup, loop forever without a system call (a hang)
 *   probe wait            block in cr_recv without timeout, printing what arrives
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "chaosreplay.h"

static long long now_ms(clockid_t clock)
{
    struct timespec ts;
    clock_gettime(clock, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* Wait up to ms for datagrams, printing each one; returns how many came. */
static int drain(int64_t ms)
{
    int got = 0;
    char buf[256];
    int src = -1;
    long long until = now_ms(CLOCK_MONOTONIC) + ms;
    for (;;) {
        long long left = until - now_ms(CLOCK_MONOTONIC);
        if (left <= 0)
            return got;
        int n = cr_recv(buf, sizeof buf - 1, left * 1000000LL, &src);
        if (n < 0)
            return got;
        buf[n] = 0;
        got++;
        printf("got %s src=%d\n", buf, src);
    }
}

static int ring(int rounds, int bug_round)
{
    int id = cr_node_id(), count = cr_node_count();
    for (int r = 0; r < rounds; r++) {
        char msg[64];
        int len = snprintf(msg, sizeof msg, "r%d from %d", r, id);
        int rc = cr_send((id + 1) % count, msg, (size_t)len);
        CR_ALWAYS(rc == 0, "cr_send to a live node succeeds");
        CR_ALWAYS(!(id == 0 && r == bug_round), "probe planted bug");
        CR_SOMETIMES(drain(10) > 0, "probe: a datagram arrives");
    }
    return 0;
}

static int burst(int n)
{
    int id = cr_node_id(), count = cr_node_count();
    for (int i = 0; i < n; i++) {
        char msg[64];
        int len = snprintf(msg, sizeof msg, "b%d from %d", i, id);
        cr_send((id + 1) % count, msg, (size_t)len);
    }
    drain(300);
    return 0;
}

static int pingpong(int n)
{
    char buf[64];
    int src = -1, echoed = 0, id = cr_node_id();
    for (int i = 0; i < n; i++) {
        if (id == 0) {
            int len = snprintf(buf, sizeof buf, "p%d", i);
            cr_send(1, buf, (size_t)len);
        }
        long got = cr_recv(buf, sizeof buf, 1000000000LL, &src);
        if (got < 0)
            break;  /* lost (no faults are expected here): stop rather than hang */
        if (id == 1)
            cr_send(src, buf, (size_t)got);
        echoed++;
    }
    printf("pingpong %d of %d\n", echoed, n);
    return 0;
}

static const char *result(long rc)
{
    return rc < 0 ? strerror(errno) : "ok";
}

/* Replace path durably: write a temporary file, fsync it, rename it, fsync the directory. */
static void put_durably(const char *path, const char *text)
{
    char tmp[128];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    int fd = open(tmp, O_CREAT | O_TRUNC | O_WRONLY, 0644);
    if (fd < 0)
        return;
    if (write(fd, text, strlen(text)) < 0 || fsync(fd) < 0) {
        close(fd);
        return;
    }
    close(fd);
    rename(tmp, path);
    int dir = open("/data", O_RDONLY | O_DIRECTORY);
    fsync(dir);
    close(dir);
}

static int disk(int rounds)
{
    char buf[64] = {0};
    int boots = 0;
    int fd = open("/data/boot", O_RDONLY);
    if (fd >= 0) {
        if (read(fd, buf, sizeof buf - 1) > 0)
            boots = atoi(buf);
        close(fd);
    }
    struct stat st;
    long torn = stat("/data/torn", &st) == 0 ? (long)st.st_size : -1;
    printf("boot %d unsynced=%s torn=%ld\n", boots,
           access("/data/unsynced", F_OK) == 0 ? "present" : "absent", torn);
    snprintf(buf, sizeof buf, "%d", boots + 1);
    put_durably("/data/boot", buf);
    if (torn < 0) { /* an empty, durable file, then 8 KiB that are never synced */
        put_durably("/data/torn", "");
        static char block[8192];
        memset(block, 'T', sizeof block);
        fd = open("/data/torn", O_WRONLY);
        if (fd >= 0 && write(fd, block, sizeof block) < 0)
            printf("torn write %s\n", strerror(errno));
        close(fd);
    }
    fd = open("/data/unsynced", O_CREAT | O_WRONLY, 0644);
    if (fd >= 0 && write(fd, "x", 1) < 0)
        printf("unsynced write %s\n", strerror(errno));
    close(fd);
    for (int r = 0; r < rounds; r++) {
        fd = open("/data/log", O_CREAT | O_WRONLY | O_APPEND, 0644);
        const char *w = result(write(fd, "entry\n", 6));
        const char *f = result(fsync(fd));
        close(fd);
        memset(buf, 0, sizeof buf);
        fd = open("/data/boot", O_RDONLY);
        long n = read(fd, buf, sizeof buf - 1);
        close(fd);
        printf("write %s fsync %s read %s\n", w, f, n < 0 ? strerror(errno) : buf);
        sleep_ms(100);
    }
    return 0;
}

static int clocks(int rounds)
{
    for (int r = 0; r < rounds; r++) {
        printf("clock mono=%lld real=%lld\n", now_ms(CLOCK_MONOTONIC), now_ms(CLOCK_REALTIME));
        sleep_ms(100);
    }
    return 0;
}

static int alloc(int rounds)
{
    for (int r = 0; r < rounds; r++) {
        void *p = mmap(NULL, 1 << 20, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (p == MAP_FAILED) {
            printf("alloc %s\n", errno == ENOMEM ? "ENOMEM" : strerror(errno));
        } else {
            memset(p, 1, 1 << 20);
            printf("alloc ok\n");
        }
        sleep_ms(100);
    }
    return 0;
}

/* A MAP_SHARED mapping of a durable two-page file: a store to page 0 is msync'ed, one to
 * page 1 only reaches the page cache, and each boot prints what survived; then a store a
 * round, read back through the file. */
static const char *shown(const char *p, int n)
{
    static char text[16];
    if (!p[0])
        return "-";
    snprintf(text, sizeof text, "%.*s", n, p);
    return text;
}

static int shmap(int rounds)
{
    int fd = open("/data/shmap", O_RDWR);
    int fresh = fd < 0;
    if (fresh) {
        put_durably("/data/shmap", "");
        fd = open("/data/shmap", O_RDWR);
        if (fd < 0 || ftruncate(fd, 8192) < 0 || fsync(fd) < 0)
            printf("shmap setup %s\n", strerror(errno));
    }
    char *m = mmap(NULL, 8192, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (m == MAP_FAILED) {
        printf("shmap mmap %s\n", strerror(errno));
        return 1;
    }
    printf("shmap boot synced=%s", shown(m, 6));
    printf(" unsynced=%s\n", shown(m + 4096, 4));
    if (fresh) {
        memcpy(m, "SYNCED", 6);
        printf("msync %s\n", result(msync(m, 4096, MS_SYNC)));
        memcpy(m + 4096, "LOST", 4);
        char buf[5] = {0};
        printf("pread %s", result(pread(fd, buf, 4, 4096)));
        printf(" page cache holds %s\n", buf);
    }
    /* stores between checkpoints; after a restart every other one synced (msync syncs
     * the whole file: on the first boot it would make page 1 durable too) */
    for (int r = 0; r < rounds; r++) {
        m[100 + r] = (char)('a' + r);
        char c = 0;
        long n = pread(fd, &c, 1, 100 + r);
        char before = 0; /* stored before the last sleep: in guest memory across it */
        if (r > 0 && pread(fd, &before, 1, 200 + r - 1) != 1)
            before = '?';
        printf("round %d page cache %c, %c msync %s\n", r, n == 1 ? c : '?',
               before ? before : '-', r % 2 && !fresh ? result(msync(m, 4096, MS_SYNC)) : "-");
        m[200 + r] = (char)('A' + r);
        sleep_ms(100);
    }
    return 0;
}

int main(int argc, char **argv)
{
    const char *mode = argc > 1 ? argv[1] : "ring";
    int arg = argc > 2 ? atoi(argv[2]) : 10;
    setvbuf(stdout, NULL, _IOLBF, 0);
    cr_setup_complete();
    if (strcmp(mode, "ring") == 0)
        return ring(arg, -1);
    if (strcmp(mode, "bug") == 0)
        return ring(arg + 10, arg);
    if (strcmp(mode, "disk") == 0)
        return disk(arg);
    if (strcmp(mode, "burst") == 0)
        return burst(arg);
    if (strcmp(mode, "clock") == 0)
        return clocks(arg);
    if (strcmp(mode, "pingpong") == 0)
        return pingpong(arg);
    if (strcmp(mode, "alloc") == 0)
        return alloc(arg);
    if (strcmp(mode, "shmap") == 0)
        return shmap(arg);
    if (strcmp(mode, "random") == 0) {
        uint64_t sdk = cr_get_random(), os = 0;
        getrandom(&os, sizeof os, 0);
        printf("random %016llx %016llx\n", (unsigned long long)sdk, (unsigned long long)os);
        sleep_ms(100);
        return 0;
    }
    if (strcmp(mode, "wait") == 0) {
        drain(1000000000);
        return 0;
    }
    if (strcmp(mode, "spin") == 0) {
        for (volatile unsigned long i = 0;; i++)
            ;
    }
    fprintf(stderr, "usage: probe ring|burst|pingpong|clock|alloc|disk|shmap|bug|random|spin|wait [N]\n");
    return 2;
}
