/*
 * syscall_fuzz.c - issues many random system calls with adversarial arguments, from a seed.
 *
 *   syscall_fuzz SEED CALLS
 *
 * Each call draws a number (mostly 0-1000, some from the SDK range CR_SYS_BASE.., some
 * arbitrary 64-bit) and six arguments from classes a kernel must survive: NULL, small
 * integers, kernel-half and non-canonical pointers, the entry page (0xffffffffff600000),
 * pointers into this program's own read-only text, into a scratch arena (and straddling
 * its end), addresses at the top of the user range, lengths that wrap when page-aligned,
 * huge counts, negative and real descriptors. Results are folded into a checksum.
 *
 * At the end it prints "calls=N distinct=D checksum=X" and sends the same line as an SDK
 * event named "fuzz.report" (descriptors 1 and 2 may have been closed or replaced).
 *
 * Skipped, because they would end or freeze the fuzzer itself rather than test the VMM:
 *   exit, exit_group                         end the program
 *   execve, execveat                         replace the program
 *   clone, fork, vfork, clone3               a second fuzzer (vfork: the parent stops)
 *   kill, tkill, tgkill, rt_sigqueueinfo,    a signal to itself kills it (default action)
 *   rt_tgsigqueueinfo, pidfd_send_signal,
 *   alarm, setitimer, timer_settime
 *   pause, rt_sigsuspend, futex,             block until a signal or another thread
 *   semop, semtimedop, io_uring_enter
 *   rt_sigreturn                             resumes a garbage signal frame
 *   rseq, seccomp, setrlimit                 a bad rseq area, a filter or a low
 *                                            RLIMIT_FSIZE/CPU kill it on a later call
 *   process_vm_writev                        writes into its own live memory
 *   reboot, kexec_load, kexec_file_load      end the machine
 * Sanitised rather than skipped, so the call still runs:
 *   - calls that change mappings (mmap with MAP_FIXED, munmap, mprotect, mremap, madvise,
 *     brk, shmat, pkey_mprotect, remap_file_pages, mseal) only get addresses outside the
 *     program's own image, stack and heap (so they never unmap the fuzzer itself);
 *   - arch_prctl never sets FS/GS (the C library's thread pointer) and prctl never
 *     installs seccomp; prlimit64 only reads limits;
 *   - calls that wait get a zero or short timeout (poll, select, pselect6, ppoll,
 *     epoll_wait/pwait/pwait2, rt_sigtimedwait, recvmmsg, io_getevents, mq_timedreceive,
 *     msgrcv with IPC_NOWAIT, cr_recv), and descriptors it creates are non-blocking
 *     (pipe, pipe2, eventfd, socket, socketpair, accept4, timerfd, signalfd, inotify,
 *     fcntl F_SETFL, ioctl FIONBIO is dropped; mknod makes regular files, not FIFOs).
 */
#include <stdint.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chaosreplay.h"

#define ARENA ((uint64_t)0x500000000000ull)
#define ARENA_SIZE (1u << 20)
#define ENTRY_PAGE 0xffffffffff600000ull
#define KERNEL_BASE 0xffff800000000000ull
#define TASK_SIZE 0x7ffffffff000ull
#define NR_MAX 1000

int main(int argc, char **argv);

static uint64_t rng_state;
#define RECENT 4
static uint64_t recent_maps[RECENT], recent_lengths[RECENT];
static unsigned recent_count;

static uint64_t next(void)
{
    /* xorshift64*: tiny, seedable, and the same on every libc */
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 0x2545F4914F6CDD1Dull;
}

static uint64_t below(uint64_t n)
{
    return next() % n;
}

static long raw(long nr, const uint64_t a[6])
{
    return cr__syscall6(nr, (long)a[0], (long)a[1], (long)a[2], (long)a[3], (long)a[4],
                        (long)a[5]);
}

static void map_arena(void)
{
    uint64_t a[6] = {ARENA, ARENA_SIZE, 3 /* RW */, 0x32 /* PRIVATE|ANON|FIXED */,
                     (uint64_t)-1, 0};
    raw(SYS_mmap, a);
}

/* An address that is never part of the program itself: safe for calls that change maps. */
static uint64_t foreign_address(void)
{
    switch (below(10)) {
    case 0: return 0;
    case 1: return KERNEL_BASE + (below(1 << 20) << 12);
    case 2: return ENTRY_PAGE;
    case 3: return 0x0000800000000000ull + (below(16) << 12);
    case 4: return TASK_SIZE + (below(2) << 12); /* the last page below 2^47, and 2^47 */
    case 5: return ARENA + (below(ARENA_SIZE >> 12) << 12);
    case 6: return recent_count ? recent_maps[below(recent_count)] : ARENA;
    case 7: return 0x100000000ull + (below(0x7e0000000000ull >> 12) << 12);
    case 8: return below(0x10) << 12; /* below vm.mmap_min_addr */
    default: return next();
    }
}

/* Shrink *len to one page when [addr, addr+len) would reach the program's own image and
 * heap (below 4 GiB, from 0x400000) or its stack (the top 64 GiB of the user range); a
 * range that wraps or passes 2^47 is left alone, the kernel must refuse it. */
static void keep_off_self(uint64_t addr, uint64_t *len)
{
    uint64_t end = addr + *len;
    if (end < addr || end > 0x800000000000ull)
        return;
    int low = addr < 0x100000000ull && end > 0x400000;
    int high = end > 0x7ff000000000ull && addr < TASK_SIZE;
    if (low || high)
        *len = 0x1000;
}

/* Any pointer: foreign ones, plus ones into the program's own read-only text. */
static uint64_t pointer(void)
{
    switch (below(8)) {
    case 0: return (uint64_t)(uintptr_t)&main + below(4096);
    case 1: return (uint64_t)(uintptr_t)&next;
    case 2: return ARENA + ARENA_SIZE - below(64); /* straddles the arena's end */
    case 3: return ARENA + below(ARENA_SIZE);
    case 4: return ENTRY_PAGE + below(4096);
    default: return foreign_address() + below(16);
    }
}

static uint64_t length(void)
{
    static const uint64_t edges[] = {
        0, 1, 8, 16, 4095, 4096, 65536, 1u << 20, 0x7fffffffull, 0x80000000ull,
        0xffffffffull, 0x100000000ull, 1ull << 40, 1ull << 47, 0x7fffffffffffffffull,
        0x8000000000000000ull, 0xfffffffffffff000ull, 0xffffffffffffffffull,
        0xfffffffffffff001ull,
    };
    if (below(3) == 0)
        return below(512);
    return edges[below(sizeof edges / sizeof edges[0])];
}

static uint64_t integer(void)
{
    switch (below(8)) {
    case 0: return below(32);                       /* small: real descriptors, flags */
    case 1: return (uint64_t)-(int64_t)below(200);  /* negative descriptors, AT_FDCWD */
    case 2: return 0x80000000ull;
    case 3: return 0xffffffff80000000ull;
    case 4: return 1ull << below(64);
    case 5: return next() & 0xffffffffull;
    default: return next();
    }
}

static uint64_t argument(void)
{
    switch (below(3)) {
    case 0: return pointer();
    case 1: return length();
    default: return integer();
    }
}

static int skipped(uint64_t nr)
{
    static const uint16_t list[] = {
        60, 231, 59, 322, 56, 57, 58, 435, 62, 200, 234, 129, 297, 424, 37, 38, 223,
        34, 130, 202, 65, 220, 426, 15, 334, 317, 160, 311, 169, 246, 320,
    };
    for (size_t i = 0; i < sizeof list / sizeof list[0]; i++)
        if (nr == list[i])
            return 1;
    return 0;
}

static uint64_t zero_timeout(void)
{
    /* a timespec (or timeval) of zero; select and friends may write the remaining time */
    static uint64_t zero[2];
    zero[0] = zero[1] = 0;
    return (uint64_t)(uintptr_t)zero;
}

/* Adjust a call so that it cannot end or freeze the fuzzer (see the header comment). */
static void sanitise(uint64_t *nr, uint64_t a[6])
{
    switch (*nr) {
    case 9: /* mmap */
        if (a[3] & 0x100010) { /* MAP_FIXED | MAP_FIXED_NOREPLACE */
            a[0] = foreign_address();
            keep_off_self(a[0], &a[1]);
        }
        break;
    case 28: /* madvise: Linux applies it to every mapping in range, even one that ends
              * past 2^47 (MADV_DONTNEED from 0 would wipe the fuzzer's own data) */
        a[0] = foreign_address();
        if (a[0] + a[1] < a[0] || a[0] + a[1] > TASK_SIZE)
            a[1] = 0x1000;
        keep_off_self(a[0], &a[1]);
        break;
    case 10: case 11: case 26: case 216: case 329: case 462:
        a[0] = foreign_address();
        keep_off_self(a[0], &a[1]);
        break;
    case 12: /* brk */
        a[0] = foreign_address();
        break;
    case 25: /* mremap: the old and the new range */
        a[0] = foreign_address();
        keep_off_self(a[0], &a[1]);
        a[4] = foreign_address();
        keep_off_self(a[4], &a[2]);
        break;
    case 30: /* shmat */
        a[1] = foreign_address();
        break;
    case 158: /* arch_prctl: never ARCH_SET_GS/ARCH_SET_FS */
        if (a[0] == 0x1001 || a[0] == 0x1002)
            a[0] = 0x1003;
        break;
    case 157: /* prctl: never PR_SET_SECCOMP */
        if (a[0] == 22)
            a[0] = 0;
        break;
    case 302: a[2] = 0; break; /* prlimit64: no new limit */
    case 7: a[2] = below(3); break; /* poll timeout in ms */
    case 23: a[4] = zero_timeout(); break;
    case 270: a[4] = zero_timeout(); break;
    case 271: a[2] = zero_timeout(); break;
    case 232: case 281: a[3] = below(3); break;
    case 441: a[3] = zero_timeout(); break;
    case 128: a[2] = zero_timeout(); break;
    case 299: a[4] = zero_timeout(); break;
    case 208: a[4] = zero_timeout(); break;
    case 243: a[4] = zero_timeout(); break;
    case 70: a[4] |= 04000; break; /* msgrcv: IPC_NOWAIT */
    case 22: *nr = 293; a[1] = 04000; break; /* pipe -> pipe2(O_NONBLOCK) */
    case 293: a[1] |= 04000; break;
    case 284: *nr = 290; a[1] = 04000; break; /* eventfd -> eventfd2(EFD_NONBLOCK) */
    case 290: case 283: case 289: a[1] |= 04000; break;
    case 294: a[0] |= 04000; break; /* inotify_init1 */
    case 41: case 53: a[1] |= 04000; break; /* socket, socketpair: SOCK_NONBLOCK */
    case 288: a[3] |= 04000; break; /* accept4 */
    case 43: *nr = 288; a[3] = 04000; break; /* accept -> accept4(SOCK_NONBLOCK) */
    case 282: *nr = 289; a[3] = 04000; break; /* signalfd -> signalfd4 */
    case 240: a[1] |= 04000; break; /* mq_open */
    case 72: /* fcntl F_SETFL keeps O_NONBLOCK */
        if ((a[1] & 0xffffffff) == 4)
            a[2] |= 04000;
        break;
    case 16: /* ioctl: no FIONBIO (it could clear non-blocking mode) */
        if ((a[1] & 0xffffffff) == 0x5421)
            a[1] = 0x5401;
        break;
    case 133: a[1] = (a[1] & 07777) | 0100000; break; /* mknod: a regular file */
    case 259: a[2] = (a[2] & 07777) | 0100000; break; /* mknodat */
    default:
        if (*nr == CR_SYS_RECV)
            a[2] = below(1000000); /* at most 1 ms */
        break;
    }
}

static uint64_t pick_number(void)
{
    uint64_t roll = below(100);
    if (roll < 85)
        return below(NR_MAX + 1);
    if (roll < 97)
        return CR_SYS_BASE + below(16);
    return next();
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: syscall_fuzz SEED CALLS\n");
        return 2;
    }
    rng_state = strtoull(argv[1], NULL, 0) * 0x9E3779B97F4A7C15ull + 1;
    unsigned long calls = strtoul(argv[2], NULL, 0);
    static uint8_t seen[NR_MAX + 1 + 16];
    unsigned distinct = 0;
    uint64_t checksum = 0xcbf29ce484222325ull;

    map_arena();
    for (unsigned long i = 0; i < calls; i++) {
        if (i % 1000 == 0)
            map_arena(); /* undo what munmap/mprotect did to it */
        uint64_t nr = pick_number();
        if (skipped(nr))
            continue;
        uint64_t a[6];
        for (int k = 0; k < 6; k++)
            a[k] = argument();
        sanitise(&nr, a);
        long ret = raw((long)nr, a);
        if (nr == 9 && ret > 0 && (uint64_t)ret < TASK_SIZE) {
            if (recent_count == RECENT) { /* keep the guest's footprint bounded */
                uint64_t old[6] = {recent_maps[0], recent_lengths[0], 0, 0, 0, 0};
                raw(SYS_munmap, old);
                memmove(recent_maps, recent_maps + 1, (RECENT - 1) * sizeof recent_maps[0]);
                memmove(recent_lengths, recent_lengths + 1,
                        (RECENT - 1) * sizeof recent_lengths[0]);
                recent_count--;
            }
            recent_lengths[recent_count] = a[1];
            recent_maps[recent_count++] = (uint64_t)ret;
        }
        unsigned slot = nr <= NR_MAX ? (unsigned)nr
                        : nr - CR_SYS_BASE < 16 ? NR_MAX + 1 + (unsigned)(nr - CR_SYS_BASE)
                        : sizeof seen;
        if (slot < sizeof seen && !seen[slot]) {
            seen[slot] = 1;
            distinct++;
        }
        checksum = (checksum ^ (uint64_t)ret ^ nr) * 0x100000001b3ull;
    }
    char line[128];
    int n = snprintf(line, sizeof line, "calls=%lu distinct=%u checksum=%016llx", calls,
                     distinct, (unsigned long long)checksum);
    cr_send_event("fuzz.report", line, (size_t)n);
    /* stdout may be a pipe nobody reads by now (a fuzzed dup2): the report went above */
    signal(SIGPIPE, SIG_IGN);
    printf("%s\n", line);
    return 0;
}
