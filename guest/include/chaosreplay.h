/*
 * chaosreplay.h - the guest SDK of chaosreplay (one C99 header, libc only).
 *
 * A node program talks to the simulator through Linux `syscall` instructions with
 * reserved numbers (CR_SYS_*). Under chaosreplay the VMM is the kernel and answers them;
 * run natively on Linux every one of them fails with -ENOSYS, and the SDK falls back to a
 * local behaviour, so the same binary also runs outside the simulator.
 *
 * This header is the one source of truth of the SDK ABI: chaosreplay/kernel/sdk_abi.py
 * mirrors the numbers below and a test checks the mirror.
 *
 * Edge coverage (opt-in, for `chaosreplay explore`): compile with -DCR_COVERAGE and
 * -fsanitize-coverage=trace-pc-guard (clang) or -fsanitize-coverage=trace-pc (gcc, which
 * has no trace-pc-guard); see "Edge coverage" at the end of this file and docs/guests.md.
 *
 * Native fallbacks:
 *   - a failed CR_ALWAYS or a reached CR_UNREACHABLE prints one line to stderr:
 *     "chaosreplay: assertion failed: <msg> (<file>:<line>)"; the program continues;
 *   - cr_get_random() reads getrandom(2);
 *   - cr_node_id() / cr_node_count() read the environment variables CR_NODE_ID /
 *     CR_NODE_COUNT (defaults 0 and 1);
 *   - cr_send() / cr_recv() return -ENOSYS; cr_setup_complete() and cr_send_event()
 *     do nothing.
 */
#ifndef CHAOSREPLAY_H
#define CHAOSREPLAY_H

#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>

/* Well above any Linux syscall number, with bit 30 (the x32 ABI bit) clear. */
#define CR_SYS_BASE 0x0C0DE000

/* (rdi=kind, rsi=condition 0/1, rdx=id u64, r10=const char *message,
 *  r8=const char *file, r9=line) -> 0 */
#define CR_SYS_ASSERT (CR_SYS_BASE + 0)
/* () -> 0: setup is over, faults may start */
#define CR_SYS_SETUP_COMPLETE (CR_SYS_BASE + 1)
/* (rdi=const char *name, rsi=const void *data, rdx=len) -> 0 */
#define CR_SYS_SEND_EVENT (CR_SYS_BASE + 2)
/* () -> a 64-bit random value in rax */
#define CR_SYS_RANDOM (CR_SYS_BASE + 3)
/* () -> this node's index (0-based) */
#define CR_SYS_NODE_ID (CR_SYS_BASE + 4)
/* () -> the number of nodes */
#define CR_SYS_NODE_COUNT (CR_SYS_BASE + 5)
/* (rdi=dst node, rsi=const void *buf, rdx=len) -> 0 or -errno; one datagram */
#define CR_SYS_SEND (CR_SYS_BASE + 6)
/* (rdi=void *buf, rsi=cap, rdx=timeout_ns int64 (-1 = forever), r10=int *src_out)
 * -> length or -errno (-ETIMEDOUT on timeout) */
#define CR_SYS_RECV (CR_SYS_BASE + 7)
/* (rdi=unsigned char *map, rsi=size, a power of two up to CR_COVERAGE_MAP_MAX) -> 0 or
 * -errno: the edge-coverage bitmap the VMM reads at checkpoints (never per event) */
#define CR_SYS_COVERAGE (CR_SYS_BASE + 8)

/* Largest coverage bitmap the VMM accepts, and the size the SDK uses by default. */
#define CR_COVERAGE_MAP_MAX 1048576
#define CR_COVERAGE_MAP_DEFAULT 16384

/* Assertion kinds (rdi of CR_SYS_ASSERT). */
#define CR_ASSERT_ALWAYS 0
#define CR_ASSERT_SOMETIMES 1
#define CR_ASSERT_REACHABLE 2
#define CR_ASSERT_UNREACHABLE 3

/* FNV-1a 64-bit parameters: assertion ids hash the message, so an id survives code moving. */
#define CR_FNV1A64_OFFSET 0xcbf29ce484222325ULL
#define CR_FNV1A64_PRIME 0x100000001b3ULL

#define CR_ALWAYS(cond, msg) \
    cr_assert(CR_ASSERT_ALWAYS, (cond) ? 1 : 0, (msg), __FILE__, __LINE__)
#define CR_SOMETIMES(cond, msg) \
    cr_assert(CR_ASSERT_SOMETIMES, (cond) ? 1 : 0, (msg), __FILE__, __LINE__)
#define CR_REACHABLE(msg) cr_assert(CR_ASSERT_REACHABLE, 1, (msg), __FILE__, __LINE__)
#define CR_UNREACHABLE(msg) cr_assert(CR_ASSERT_UNREACHABLE, 1, (msg), __FILE__, __LINE__)

/* A raw six-argument Linux syscall; returns rax (-errno on failure). */
static inline long cr__syscall6(long nr, long a1, long a2, long a3, long a4, long a5, long a6)
{
    long ret;
    register long r10 __asm__("r10") = a4;
    register long r8 __asm__("r8") = a5;
    register long r9 __asm__("r9") = a6;
    __asm__ volatile("syscall"
                     : "=a"(ret)
                     : "a"(nr), "D"(a1), "S"(a2), "d"(a3), "r"(r10), "r"(r8), "r"(r9)
                     : "rcx", "r11", "memory");
    return ret;
}

/* 1 under the simulator, 0 natively. Probed once with CR_SYS_NODE_COUNT (which never
 * fails under the simulator) and cached, so native runs pay one failed syscall in all. */
static inline int cr__in_simulator(void)
{
    static int state = -1;
    if (state < 0)
        state = cr__syscall6(CR_SYS_NODE_COUNT, 0, 0, 0, 0, 0, 0) != -ENOSYS;
    return state;
}

/* FNV-1a 64-bit hash of a NUL-terminated string (the assertion id of a message). */
static inline uint64_t cr_fnv1a64(const char *text)
{
    uint64_t hash = CR_FNV1A64_OFFSET;
    const unsigned char *p = (const unsigned char *)text;
    for (; *p != 0; p++) {
        hash ^= *p;
        hash *= CR_FNV1A64_PRIME;
    }
    return hash;
}

/* Report one assertion; use the CR_ALWAYS/CR_SOMETIMES/CR_REACHABLE/CR_UNREACHABLE macros. */
static inline void cr_assert(int kind, int condition, const char *message, const char *file,
                             int line)
{
    if (cr__in_simulator()) {
        cr__syscall6(CR_SYS_ASSERT, kind, condition, (long)cr_fnv1a64(message), (long)message,
                     (long)file, line);
        return;
    }
    if ((kind == CR_ASSERT_ALWAYS && !condition) || kind == CR_ASSERT_UNREACHABLE)
        fprintf(stderr, "chaosreplay: assertion failed: %s (%s:%d)\n", message, file, line);
}

/* Tell the simulator that setup is over (fault injection is gated on it). */
static inline void cr_setup_complete(void)
{
    if (cr__in_simulator())
        cr__syscall6(CR_SYS_SETUP_COMPLETE, 0, 0, 0, 0, 0, 0);
}

/* Record a named event with an opaque payload in the run's log; returns 0 or -errno. */
static inline int cr_send_event(const char *name, const void *data, size_t len)
{
    if (!cr__in_simulator())
        return 0;
    return (int)cr__syscall6(CR_SYS_SEND_EVENT, (long)name, (long)data, (long)len, 0, 0, 0);
}

/* A 64-bit random value: seed-determined under the simulator, getrandom(2) natively. */
static inline uint64_t cr_get_random(void)
{
    uint64_t value = 0;
    size_t got = 0;
    if (cr__in_simulator())
        return (uint64_t)cr__syscall6(CR_SYS_RANDOM, 0, 0, 0, 0, 0, 0);
    while (got < sizeof value) {
        long n = cr__syscall6(SYS_getrandom, (long)((unsigned char *)&value + got),
                              (long)(sizeof value - got), 0, 0, 0, 0);
        if (n == -EINTR)
            continue;
        if (n <= 0) /* no entropy source at all: nothing sensible to return but zero bits */
            break;
        got += (size_t)n;
    }
    return value;
}

/* A uniform integer in [0, n) (0 when n == 0), by rejection so there is no modulo bias. */
static inline uint64_t cr_random_choice(uint64_t n)
{
    uint64_t threshold, value;
    if (n == 0)
        return 0;
    /* 2^64 mod n: values below it are the uneven remainder and are drawn again. */
    threshold = (0 - n) % n;
    do {
        value = cr_get_random();
    } while (value < threshold);
    return value % n;
}

/* Read a non-negative integer from the environment, or a default when unset or malformed. */
static inline long cr__env_long(const char *name, long fallback)
{
    const char *text = getenv(name);
    char *end = NULL;
    long value;
    if (text == NULL || *text == 0)
        return fallback;
    value = strtol(text, &end, 10);
    return (*end == 0 && value >= 0) ? value : fallback;
}

/* This node's index, 0-based. */
static inline int cr_node_id(void)
{
    if (cr__in_simulator())
        return (int)cr__syscall6(CR_SYS_NODE_ID, 0, 0, 0, 0, 0, 0);
    return (int)cr__env_long("CR_NODE_ID", 0);
}

/* The number of nodes in the simulation. */
static inline int cr_node_count(void)
{
    if (cr__in_simulator())
        return (int)cr__syscall6(CR_SYS_NODE_COUNT, 0, 0, 0, 0, 0, 0);
    return (int)cr__env_long("CR_NODE_COUNT", 1);
}

/* Send one datagram to node dst over the simulated network; 0 or -errno. */
static inline int cr_send(int dst, const void *buf, size_t len)
{
    if (!cr__in_simulator())
        return -ENOSYS;
    return (int)cr__syscall6(CR_SYS_SEND, dst, (long)buf, (long)len, 0, 0, 0);
}

/* Receive one datagram into buf (at most cap bytes) and its sender into *src; waits up to
 * timeout_ns of virtual time (-1 = forever). Returns its length or -errno (-ETIMEDOUT). */
static inline long cr_recv(void *buf, size_t cap, int64_t timeout_ns, int *src)
{
    if (!cr__in_simulator())
        return -ENOSYS;
    return cr__syscall6(CR_SYS_RECV, (long)buf, (long)cap, (long)timeout_ns, (long)src, 0, 0);
}

/*
 * Edge coverage (opt-in): -DCR_COVERAGE plus the compiler's coverage instrumentation.
 *
 *   clang: -DCR_COVERAGE -fsanitize-coverage=trace-pc-guard
 *   gcc:   -DCR_COVERAGE -fsanitize-coverage=trace-pc
 *
 * Every instrumented edge bumps one saturating 8-bit counter of cr_coverage_map, a plain
 * array in the program's own memory: it is part of every checkpoint and digest, so it is
 * as deterministic as the rest of the guest, and nothing about it is recorded per event.
 * An edge is AFL's (previous location >> 1) ^ current location, where a location is the
 * guard's number (clang) or a hash of the instrumented call's return address (gcc; the
 * executable is static, so addresses are the same in every run). A constructor registers
 * the map with CR_SYS_COVERAGE; natively that call fails with -ENOSYS and the counters are
 * simply never read. In a program of several files, define CR_COVERAGE in exactly one of
 * them (the others only call the callbacks) and instrument all of them.
 */
#ifdef CR_COVERAGE

#ifndef CR_COVERAGE_MAP_SIZE
#define CR_COVERAGE_MAP_SIZE CR_COVERAGE_MAP_DEFAULT
#endif
#if (CR_COVERAGE_MAP_SIZE & (CR_COVERAGE_MAP_SIZE - 1)) != 0 || \
    CR_COVERAGE_MAP_SIZE > CR_COVERAGE_MAP_MAX
#error "CR_COVERAGE_MAP_SIZE must be a power of two no larger than CR_COVERAGE_MAP_MAX"
#endif

/* The callbacks themselves must not be instrumented (they would call themselves). */
#if defined(__clang__)
#define CR__NO_COVERAGE __attribute__((no_sanitize("coverage"), used))
#else
#define CR__NO_COVERAGE __attribute__((no_sanitize_coverage, used))
#endif

unsigned char cr_coverage_map[CR_COVERAGE_MAP_SIZE];
static uint32_t cr__coverage_previous;
static uint32_t cr__coverage_guards;

/* Count the edge from the previous location to `location` (saturating at 255). */
CR__NO_COVERAGE static inline void cr__coverage_hit(uint32_t location)
{
    uint32_t edge = (location ^ cr__coverage_previous) & (CR_COVERAGE_MAP_SIZE - 1);
    if (cr_coverage_map[edge] != 255)
        cr_coverage_map[edge]++;
    cr__coverage_previous = location >> 1;
}

/* clang's trace-pc-guard: number every guard once (0 means "not yet numbered"). */
CR__NO_COVERAGE void __sanitizer_cov_trace_pc_guard_init(uint32_t *start, uint32_t *stop)
{
    if (start == stop || *start != 0)
        return;
    for (uint32_t *guard = start; guard < stop; guard++)
        *guard = ++cr__coverage_guards;
}

CR__NO_COVERAGE void __sanitizer_cov_trace_pc_guard(uint32_t *guard)
{
    /* Knuth's multiplicative hash spreads consecutive guard numbers over the map. */
    cr__coverage_hit(*guard * 2654435761u);
}

/* gcc's trace-pc: the location is a hash of where the instrumented call returns to. */
CR__NO_COVERAGE void __sanitizer_cov_trace_pc(void)
{
    uint64_t pc = (uint64_t)(uintptr_t)__builtin_return_address(0);
    cr__coverage_hit((uint32_t)((pc ^ (pc >> 32)) * 2654435761u));
}

/* Register the map with the VMM before main runs (a no-op natively). */
CR__NO_COVERAGE __attribute__((constructor)) static void cr__coverage_register(void)
{
    if (cr__in_simulator())
        cr__syscall6(CR_SYS_COVERAGE, (long)cr_coverage_map, CR_COVERAGE_MAP_SIZE, 0, 0, 0, 0);
}

#endif /* CR_COVERAGE */

#endif /* CHAOSREPLAY_H */
