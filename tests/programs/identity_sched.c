/* Identity, scheduling, memory-residency and machine-wide calls, printed result by result:
 * run natively under `unshare --map-root-user` it prints what chaosreplay prints. */
#include <stdint.h>
#include <sys/mman.h>
#include <sys/time.h>
#include <time.h>
#include "show.h"

struct cap_header { uint32_t version; int pid; };
struct cap_data { uint32_t effective, permitted, inheritable; };
struct sched_attr {
    uint32_t size, policy;
    uint64_t flags;
    int32_t nice;
    uint32_t priority;
    uint64_t runtime, deadline, period;
    uint32_t util_min, util_max;
};

static void identity(void)
{
    uint32_t r = 7, e = 7, s = 7;
    SHOW("setuid(0)", syscall(SYS_setuid, 0));
    SHOW("setuid(1000)", syscall(SYS_setuid, 1000));
    SHOW("setuid(-1)", syscall(SYS_setuid, -1));
    SHOW("setgid(0)", syscall(SYS_setgid, 0));
    SHOW("setgid(5)", syscall(SYS_setgid, 5));
    SHOW("setreuid(-1,-1)", syscall(SYS_setreuid, -1, -1));
    SHOW("setreuid(0,1000)", syscall(SYS_setreuid, 0, 1000));
    SHOW("setregid(0,-1)", syscall(SYS_setregid, 0, -1));
    SHOW("setresuid(0,0,0)", syscall(SYS_setresuid, 0, 0, 0));
    SHOW("setresuid(-1,-1,7)", syscall(SYS_setresuid, -1, -1, 7));
    SHOW("setresgid(0,-1,0)", syscall(SYS_setresgid, 0, -1, 0));
    SHOW("getresuid", syscall(SYS_getresuid, &r, &e, &s));
    printf("  ids %u %u %u\n", r, e, s);
    r = e = s = 7;
    SHOW("getresgid", syscall(SYS_getresgid, &r, &e, &s));
    printf("  ids %u %u %u\n", r, e, s);
    SHOW("getresuid(bad)", syscall(SYS_getresuid, &r, (void *)8, &s));
    SHOW("setfsuid(1000)", syscall(SYS_setfsuid, 1000));
    SHOW("setfsuid(0)", syscall(SYS_setfsuid, 0));
    SHOW("setfsgid(-1)", syscall(SYS_setfsgid, -1));
    uint32_t groups[1] = {0};
    SHOW("setgroups(1,[0])", syscall(SYS_setgroups, 1, groups));
    SHOW("setgroups(0)", syscall(SYS_setgroups, 0, NULL));
    SHOW("getgroups(0)", syscall(SYS_getgroups, 0, NULL));

    struct cap_header h = {0x20080522, 0};
    struct cap_data d[2];
    memset(d, 0xAA, sizeof d);
    SHOW("capget(v3)", syscall(SYS_capget, &h, d));
    printf("  caps e=%08x:%08x p=%08x:%08x i=%08x:%08x\n", d[1].effective, d[0].effective,
           d[1].permitted, d[0].permitted, d[1].inheritable, d[0].inheritable);
    h.version = 0x1234;
    SHOW("capget(bad version)", syscall(SYS_capget, &h, d));
    printf("  version now %#x\n", h.version);
    h.version = 0x1234;
    SHOW("capget(bad version, no data)", syscall(SYS_capget, &h, NULL));
    h = (struct cap_header){0x20080522, 424242};
    SHOW("capget(other pid)", syscall(SYS_capget, &h, d));
    h = (struct cap_header){0x20080522, -3};
    SHOW("capget(negative pid)", syscall(SYS_capget, &h, d));
    h = (struct cap_header){0x20080522, 0};
    syscall(SYS_capget, &h, d);
    d[0].effective &= ~(1u << 12);  /* drop CAP_NET_ADMIN from the effective set */
    d[0].inheritable = 1u << 0;
    SHOW("capset(drop effective, add inheritable)", syscall(SYS_capset, &h, d));
    d[0].effective |= 1u << 12;
    d[0].permitted &= ~(1u << 12);
    SHOW("capset(effective beyond permitted)", syscall(SYS_capset, &h, d));
    d[0].effective &= ~(1u << 12);
    SHOW("capset(drop permitted)", syscall(SYS_capset, &h, d));
    d[0].permitted |= 1u << 12;
    SHOW("capset(raise permitted)", syscall(SYS_capset, &h, d));
    memset(d, 0, sizeof d);
    SHOW("capget(after)", syscall(SYS_capget, &h, d));
    printf("  caps e=%08x:%08x p=%08x:%08x i=%08x:%08x\n", d[1].effective, d[0].effective,
           d[1].permitted, d[0].permitted, d[1].inheritable, d[0].inheritable);
    h = (struct cap_header){0x20080522, 424242};
    SHOW("capset(other pid)", syscall(SYS_capset, &h, d));
}

static void scheduling(void)
{
    int prio = 0;
    struct timespec ts = {9, 9};
    struct sched_attr a;
    SHOW("getpriority", syscall(SYS_getpriority, 0, 0));
    SHOW("getpriority(bad which)", syscall(SYS_getpriority, 9, 0));
    SHOW("getpriority(other pid)", syscall(SYS_getpriority, 0, 424242));
    SHOW("setpriority(5)", syscall(SYS_setpriority, 0, 0, 5));
    SHOW("getpriority", syscall(SYS_getpriority, 0, 0));
    SHOW("setpriority(3)", syscall(SYS_setpriority, 0, 0, 3));
    SHOW("setpriority(40)", syscall(SYS_setpriority, 0, 0, 40));
    SHOW("getpriority", syscall(SYS_getpriority, 0, 0));
    SHOW("get_priority_max(FIFO)", syscall(SYS_sched_get_priority_max, 1));
    SHOW("get_priority_min(RR)", syscall(SYS_sched_get_priority_min, 2));
    SHOW("get_priority_max(OTHER)", syscall(SYS_sched_get_priority_max, 0));
    SHOW("get_priority_min(IDLE)", syscall(SYS_sched_get_priority_min, 5));
    SHOW("get_priority_max(4)", syscall(SYS_sched_get_priority_max, 4));
    SHOW("getscheduler", syscall(SYS_sched_getscheduler, 0));
    SHOW("getscheduler(-1)", syscall(SYS_sched_getscheduler, -1));
    SHOW("getscheduler(other)", syscall(SYS_sched_getscheduler, 424242));
    prio = 1;
    SHOW("setscheduler(FIFO,1)", syscall(SYS_sched_setscheduler, 0, 1, &prio));
    prio = 0;
    SHOW("setscheduler(FIFO,0)", syscall(SYS_sched_setscheduler, 0, 1, &prio));
    prio = 1;
    SHOW("setscheduler(OTHER,1)", syscall(SYS_sched_setscheduler, 0, 0, &prio));
    prio = 0;
    SHOW("setscheduler(9,0)", syscall(SYS_sched_setscheduler, 0, 9, &prio));
    SHOW("setscheduler(OTHER,NULL)", syscall(SYS_sched_setscheduler, 0, 0, NULL));
    SHOW("setscheduler(BATCH,0)", syscall(SYS_sched_setscheduler, 0, 3, &prio));
    SHOW("getscheduler", syscall(SYS_sched_getscheduler, 0));
    SHOW("setscheduler(IDLE,0)", syscall(SYS_sched_setscheduler, 0, 5, &prio));
    SHOW("getscheduler", syscall(SYS_sched_getscheduler, 0));
    SHOW("setscheduler(OTHER,0) from IDLE", syscall(SYS_sched_setscheduler, 0, 0, &prio));
    SHOW("setscheduler(IDLE,0) again", syscall(SYS_sched_setscheduler, 0, 5, &prio));
    SHOW("setscheduler(BATCH,0) from IDLE", syscall(SYS_sched_setscheduler, 0, 3, &prio));
    SHOW("getscheduler", syscall(SYS_sched_getscheduler, 0));
    prio = 77;
    SHOW("getparam", syscall(SYS_sched_getparam, 0, &prio));
    printf("  priority %d\n", prio);
    SHOW("getparam(NULL)", syscall(SYS_sched_getparam, 0, NULL));
    prio = 0;
    SHOW("setparam(0)", syscall(SYS_sched_setparam, 0, &prio));
    prio = 5;
    SHOW("setparam(5)", syscall(SYS_sched_setparam, 0, &prio));
    SHOW("rr_get_interval(-1)", syscall(SYS_sched_rr_get_interval, -1, &ts));
    SHOW("rr_get_interval(other)", syscall(SYS_sched_rr_get_interval, 424242, &ts));
    memset(&a, 0x55, sizeof a);
    SHOW("getattr", syscall(SYS_sched_getattr, 0, &a, sizeof a, 0));
    printf("  size %u policy %u flags %lu nice %d priority %u util %u %u\n", a.size, a.policy,
           (unsigned long)a.flags, a.nice, a.priority, a.util_min, a.util_max);
    SHOW("getattr(small)", syscall(SYS_sched_getattr, 0, &a, 40, 0));
    SHOW("getattr(flags)", syscall(SYS_sched_getattr, 0, &a, sizeof a, 1));
    memset(&a, 0, sizeof a);
    a.size = sizeof a;
    a.policy = 0;
    a.nice = 10;
    SHOW("setattr(OTHER, nice 10)", syscall(SYS_sched_setattr, 0, &a, 0));
    SHOW("getpriority", syscall(SYS_getpriority, 0, 0));
    a.nice = 8;
    SHOW("setattr(OTHER, nice 8)", syscall(SYS_sched_setattr, 0, &a, 0));
    a.policy = 6;
    a.nice = 10;
    a.runtime = 1000000;
    a.deadline = a.period = 10000000;
    SHOW("setattr(DEADLINE)", syscall(SYS_sched_setattr, 0, &a, 0));
    memset(&a, 0, sizeof a);
    a.size = 8;
    SHOW("setattr(size 8)", syscall(SYS_sched_setattr, 0, &a, 0));
    printf("  size now %u\n", a.size);
    memset(&a, 0, sizeof a);
    a.size = sizeof a;
    a.policy = 3;
    a.nice = 12;
    a.flags = 0x10;  /* KEEP_PARAMS */
    SHOW("setattr(BATCH, keep params)", syscall(SYS_sched_setattr, 0, &a, 0));
    SHOW("getscheduler", syscall(SYS_sched_getscheduler, 0));
    SHOW("getpriority", syscall(SYS_getpriority, 0, 0));
    a.flags = 0x1000;
    SHOW("setattr(unknown flag)", syscall(SYS_sched_setattr, 0, &a, 0));
    prio = 0;
    SHOW("setscheduler(BATCH|RESET_ON_FORK,0)",
         syscall(SYS_sched_setscheduler, 0, 3 | 0x40000000, &prio));
    SHOW("getscheduler", syscall(SYS_sched_getscheduler, 0));
    SHOW("setscheduler(BATCH,0) clears RESET_ON_FORK", syscall(SYS_sched_setscheduler, 0, 3, &prio));
    memset(&a, 0x55, sizeof a);
    SHOW("getattr", syscall(SYS_sched_getattr, 0, &a, sizeof a, 0));
    printf("  size %u policy %u flags %lu nice %d priority %u util %u %u\n", a.size, a.policy,
           (unsigned long)a.flags, a.nice, a.priority, a.util_min, a.util_max);

    SHOW("ioprio_get", syscall(SYS_ioprio_get, 1, 0));
    SHOW("ioprio_set(BE 3)", syscall(SYS_ioprio_set, 1, 0, (2 << 13) | 3));
    SHOW("ioprio_get", syscall(SYS_ioprio_get, 1, 0));
    SHOW("ioprio_set(IDLE)", syscall(SYS_ioprio_set, 1, 0, 3 << 13));
    SHOW("ioprio_get", syscall(SYS_ioprio_get, 1, 0));
    SHOW("ioprio_set(RT 0)", syscall(SYS_ioprio_set, 1, 0, 1 << 13));
    SHOW("ioprio_set(class 5)", syscall(SYS_ioprio_set, 1, 0, 5 << 13));
    SHOW("ioprio_set(NONE 2)", syscall(SYS_ioprio_set, 1, 0, 2));
    SHOW("ioprio_set(bad which)", syscall(SYS_ioprio_set, 7, 0, 2 << 13));
    SHOW("ioprio_set(other pid)", syscall(SYS_ioprio_set, 1, 424242, 2 << 13));
    SHOW("ioprio_get(bad which)", syscall(SYS_ioprio_get, 0, 0));
}

static void memory(void)
{
    long page = 4096;
    unsigned char vec[4] = {9, 9, 9, 9};
    unsigned long mask = 1, got = 99;
    int mode = 99;
    char *m = mmap(NULL, 4 * page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    for (int i = 0; i < 4; i++)
        m[i * page] = 1;
    SHOW("mincore", syscall(SYS_mincore, m, 4 * page, vec));
    printf("  resident %d %d %d %d\n", vec[0], vec[1], vec[2], vec[3]);
    SHOW("mincore(unaligned)", syscall(SYS_mincore, m + 1, page, vec));
    SHOW("mincore(bad vec)", syscall(SYS_mincore, m, page, (void *)8));
    munmap(m + 2 * page, page);
    SHOW("mincore(hole)", syscall(SYS_mincore, m, 4 * page, vec));
    SHOW("mlock", syscall(SYS_mlock, m + 10, 100));
    SHOW("mlock(hole)", syscall(SYS_mlock, m, 4 * page));
    SHOW("munlock", syscall(SYS_munlock, m, page));
    SHOW("mlock2(bad flags)", syscall(SYS_mlock2, m, page, 2));
    SHOW("mlock2(ONFAULT)", syscall(SYS_mlock2, m, page, 1));
    SHOW("mlockall(0)", syscall(SYS_mlockall, 0));
    SHOW("mlockall(ONFAULT)", syscall(SYS_mlockall, 4));
    SHOW("mlockall(FUTURE)", syscall(SYS_mlockall, 2));
    SHOW("munlockall", syscall(SYS_munlockall));
    SHOW("msync", syscall(SYS_msync, m, page, MS_SYNC));
    SHOW("msync(async|sync)", syscall(SYS_msync, m, page, MS_ASYNC | MS_SYNC));
    SHOW("msync(unaligned)", syscall(SYS_msync, m + 1, page, MS_ASYNC));
    SHOW("msync(hole)", syscall(SYS_msync, m, 4 * page, MS_ASYNC));
    SHOW("msync(bad flags)", syscall(SYS_msync, m, page, 8));
    SHOW("pkey_mprotect(key -1)", syscall(SYS_pkey_mprotect, m, page, PROT_READ, -1));
    SHOW("pkey_mprotect(key 1)", syscall(SYS_pkey_mprotect, m, page, PROT_READ, 1));
    SHOW("pkey_mprotect(unaligned)", syscall(SYS_pkey_mprotect, m + 1, page, PROT_READ, 1));
    SHOW("pkey_mprotect(len 0, key 1)", syscall(SYS_pkey_mprotect, m, 0, PROT_READ, 1));
    SHOW("pkey_alloc", syscall(SYS_pkey_alloc, 0, 0));
    SHOW("pkey_alloc(flags)", syscall(SYS_pkey_alloc, 1, 0));
    SHOW("pkey_free(1)", syscall(SYS_pkey_free, 1));

    SHOW("get_mempolicy", syscall(SYS_get_mempolicy, &mode, &got, 64, NULL, 0));
    printf("  mode %d nodes %lx\n", mode, got);
    SHOW("set_mempolicy(BIND, node 0)", syscall(SYS_set_mempolicy, 2, &mask, 64));
    SHOW("get_mempolicy", syscall(SYS_get_mempolicy, &mode, &got, 64, NULL, 0));
    printf("  mode %d nodes %lx\n", mode, got);
    mask = 2;
    SHOW("set_mempolicy(BIND, node 1)", syscall(SYS_set_mempolicy, 2, &mask, 64));
    SHOW("set_mempolicy(BIND, none)", syscall(SYS_set_mempolicy, 2, NULL, 0));
    SHOW("set_mempolicy(DEFAULT, node 1)", syscall(SYS_set_mempolicy, 0, &mask, 64));
    SHOW("set_mempolicy(mode 9)", syscall(SYS_set_mempolicy, 9, NULL, 0));
    mask = 1;
    SHOW("set_mempolicy(INTERLEAVE|STATIC)", syscall(SYS_set_mempolicy, 3 | (1 << 15), &mask, 64));
    SHOW("get_mempolicy(NODE)", syscall(SYS_get_mempolicy, &mode, NULL, 0, NULL, 1));
    printf("  node %d\n", mode);
    SHOW("get_mempolicy", syscall(SYS_get_mempolicy, &mode, &got, 64, NULL, 0));
    printf("  mode %#x nodes %lx\n", mode, got);
    SHOW("set_mempolicy(PREFERRED, none)", syscall(SYS_set_mempolicy, 1, NULL, 0));
    SHOW("get_mempolicy", syscall(SYS_get_mempolicy, &mode, &got, 64, NULL, 0));
    printf("  mode %d nodes %lx\n", mode, got);
    SHOW("get_mempolicy(NODE) not interleave", syscall(SYS_get_mempolicy, &mode, NULL, 0, NULL, 1));
    SHOW("get_mempolicy(MEMS_ALLOWED)", syscall(SYS_get_mempolicy, &mode, &got, 64, NULL, 4));
    printf("  mode %d nodes %lx\n", mode, got);
    SHOW("get_mempolicy(ADDR|NODE)", syscall(SYS_get_mempolicy, &mode, NULL, 0, m, 3));
    printf("  node %d\n", mode);
    SHOW("get_mempolicy(addr, no ADDR flag)", syscall(SYS_get_mempolicy, &mode, NULL, 0, m, 0));
    SHOW("get_mempolicy(bad flags)", syscall(SYS_get_mempolicy, &mode, NULL, 0, NULL, 64));
    SHOW("set_mempolicy(DEFAULT)", syscall(SYS_set_mempolicy, 0, NULL, 0));
    SHOW("mbind(BIND, node 0)", syscall(SYS_mbind, m, page, 2, &mask, 64, 0));
    SHOW("mbind(hole)", syscall(SYS_mbind, m, 4 * page, 2, &mask, 64, 0));
    SHOW("mbind(MOVE_ALL)", syscall(SYS_mbind, m, page, 2, &mask, 64, 4));
    SHOW("mbind(unaligned)", syscall(SYS_mbind, m + 1, page, 2, &mask, 64, 0));
}

static void machine(void)
{
    struct timespec t = {1, 0};
    struct timeval tv = {1, 0};
    char timex[208];
    SHOW("sethostname", syscall(SYS_sethostname, "x", 1));
    SHOW("setdomainname", syscall(SYS_setdomainname, "x", 1));
    SHOW("syslog(SIZE_BUFFER)", syscall(SYS_syslog, 10, NULL, 0));
    SHOW("clock_settime(REALTIME)", syscall(SYS_clock_settime, 0, &t));
    SHOW("clock_settime(MONOTONIC)", syscall(SYS_clock_settime, 1, &t));
    SHOW("clock_settime(REALTIME, bad)", syscall(SYS_clock_settime, 0, (void *)8));
    t.tv_nsec = 2000000000;
    SHOW("clock_settime(REALTIME, bad ns)", syscall(SYS_clock_settime, 0, &t));
    SHOW("clock_settime(99)", syscall(SYS_clock_settime, 99, &t));
    SHOW("settimeofday", syscall(SYS_settimeofday, &tv, NULL));
    tv.tv_usec = 1000000;
    SHOW("settimeofday(bad usec)", syscall(SYS_settimeofday, &tv, NULL));
    SHOW("settimeofday(NULL, NULL)", syscall(SYS_settimeofday, NULL, NULL));
    memset(timex, 0, sizeof timex);
    *(unsigned *)timex = 1;  /* ADJ_OFFSET */
    SHOW("adjtimex(set offset)", syscall(SYS_adjtimex, timex));
    *(unsigned *)timex = 0x8000;  /* ADJ_ADJTIME without SINGLESHOT */
    SHOW("adjtimex(ADJTIME alone)", syscall(SYS_adjtimex, timex));
    SHOW("adjtimex(bad)", syscall(SYS_adjtimex, (void *)8));
    *(unsigned *)timex = 1;
    SHOW("clock_adjtime(MONOTONIC)", syscall(SYS_clock_adjtime, 1, timex));
    SHOW("clock_adjtime(99)", syscall(SYS_clock_adjtime, 99, timex));
    SHOW("clock_adjtime(REALTIME, set)", syscall(SYS_clock_adjtime, 0, timex));
    SHOW("personality(query)", syscall(SYS_personality, 0xffffffff));
    SHOW("personality(ADDR_NO_RANDOMIZE)", syscall(SYS_personality, 0x0040000));
    SHOW("personality(query)", syscall(SYS_personality, 0xffffffff));
    SHOW("personality(LINUX)", syscall(SYS_personality, 0));
    SHOW("times(bad)", syscall(SYS_times, (void *)8));
}

/* Whether this process is in a user namespace that maps only a few ids (as the guest's
 * identity is): the privileged calls below are made only then, never as the real root. */
static int in_small_user_namespace(void)
{
    char map[128] = {0};
    FILE *f = fopen("/proc/self/uid_map", "r");
    if (f == NULL)
        return 1;  /* chaosreplay has no uid_map: its identity is this one by construction */
    size_t n = fread(map, 1, sizeof map - 1, f);
    fclose(f);
    return n > 0 && strstr(map, "4294967295") == NULL;
}

static void privileged(void)
{
    if (!in_small_user_namespace()) {
        printf("skipping the privileged calls: not in a user namespace\n");
        return;
    }
    char mnt[64];
    snprintf(mnt, sizeof mnt, "/tmp/chaosreplay-mnt-%d", (int)getpid());
    mkdir(mnt, 0755);
    SHOW("mount(tmpfs)", syscall(SYS_mount, "none", mnt, "tmpfs", 0, NULL));
    SHOW("mount(missing target)", syscall(SYS_mount, "none", "/nonexistent/x", "tmpfs", 0, NULL));
    SHOW("mount(bad type)", syscall(SYS_mount, "none", mnt, (void *)8, 0, NULL));
    SHOW("mount(MS_NOUSER)", syscall(SYS_mount, "none", mnt, "tmpfs", 1ul << 31, NULL));
    SHOW("mount(magic|MS_NOUSER)", syscall(SYS_mount, "none", mnt, "tmpfs", 0xC0ED0000ul, NULL));
    SHOW("umount2", syscall(SYS_umount2, mnt, 0));
    SHOW("umount2(bad flags)", syscall(SYS_umount2, mnt, 0x100));
    SHOW("umount2(missing)", syscall(SYS_umount2, "/nonexistent/x", 0));
    rmdir(mnt);
    SHOW("pivot_root", syscall(SYS_pivot_root, "/tmp", "/tmp"));
    SHOW("swapon(bad flags)", syscall(SYS_swapon, "/nonexistent", 0x100000));
    SHOW("swapon", syscall(SYS_swapon, "/nonexistent", 0));
    SHOW("swapoff", syscall(SYS_swapoff, "/nonexistent"));
    SHOW("acct(NULL)", syscall(SYS_acct, NULL));
    SHOW("vhangup", syscall(SYS_vhangup));
    SHOW("reboot(bad magic)", syscall(SYS_reboot, 1, 2, 3, NULL));
}

int main(void)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    identity();
    scheduling();
    memory();
    machine();
    privileged();
    printf("done\n");
    return 0;
}
