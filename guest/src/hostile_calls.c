/*
 * hostile_calls.c - one guest for each way a program could once take the VMM down; each
 * mode prints "<case> <result>" lines (results as returned by the raw syscall: -errno).
 *
 *   hostile_calls maps       MAP_FIXED at and past the end of the user range, in the
 *                            kernel half, on the entry page, across 2^47, below
 *                            vm.mmap_min_addr; munmap/mprotect there; 1 TiB mappings
 *   hostile_calls sleep      nanosleep/clock_nanosleep of {INT64_MAX, 999999999}
 *   hostile_calls rocopy     the kernel's copies into read-only text (getrandom, read,
 *                            uname, clock_gettime, fstat) and whether the text survived
 *   hostile_calls touch MIB  map MIB MiB (in 32 MiB mappings) and touch every page
 *   hostile_calls fill MIB   map MIB MiB, touch all but the last mapping, then let
 *                            getrandom fill the last one (the kernel touches it)
 *   hostile_calls splits     split one mapping page by page until mprotect refuses
 *   hostile_calls stdout N M write N times M MiB to stdout
 *   hostile_calls insn NAME  run one instruction a CPL3 program may not (hlt, cli, wrmsr,
 *                            movcr3, out80, in3f8, oute2..oute7 - the VMM's own ports -,
 *                            write_entry, call_trampoline, int80)
 *   hostile_calls raise SIG  kill itself with signal SIG (a real-time one, say)
 *   hostile_calls file N M   write N times M MiB into the first 2*M MiB of /data/flood
 *                            (never fsynced)
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chaosreplay.h"

#define PROT_R 1
#define PROT_RW 3
#define PRIV_ANON 0x22
#define FIXED 0x10
#define NORESERVE 0x4000
#define MIB (1ull << 20)

int main(int argc, char **argv);

static long sys(long nr, uint64_t a, uint64_t b, uint64_t c, uint64_t d, uint64_t e,
                uint64_t f)
{
    return cr__syscall6(nr, (long)a, (long)b, (long)c, (long)d, (long)e, (long)f);
}

static long map(uint64_t addr, uint64_t len, int prot, int flags)
{
    return sys(SYS_mmap, addr, len, (uint64_t)prot, (uint64_t)flags, (uint64_t)-1, 0);
}

static void show(const char *name, long ret)
{
    /* addresses print as "addr", so the output does not depend on placement */
    if (ret > 4095 || ret < -4095)
        printf("%s addr\n", name);
    else
        printf("%s %ld\n", name, ret);
}

static void maps(void)
{
    show("fixed_last_page", map(0x7ffffffff000ull, 0x1000, PROT_RW, PRIV_ANON | FIXED));
    show("fixed_2_47", map(0x800000000000ull, 0x1000, PROT_RW, PRIV_ANON | FIXED));
    show("fixed_kernel", map(0xffff800000000000ull, 0x1000, PROT_RW, PRIV_ANON | FIXED));
    show("fixed_entry", map(0xffffffffff600000ull, 0x1000, PROT_RW, PRIV_ANON | FIXED));
    show("fixed_across", map(0x7ffff0000000ull, 0x20000000, PROT_RW, PRIV_ANON | FIXED));
    show("fixed_1tib_top", map(0x7ffffffff000ull, 1ull << 40, PROT_RW, PRIV_ANON | FIXED));
    show("fixed_zero", map(0, 0x1000, PROT_RW, PRIV_ANON | FIXED));
    show("fixed_below_min", map(0x8000, 0x1000, PROT_RW, PRIV_ANON | FIXED));
    show("fixed_at_min", map(0x10000, 0x1000, PROT_RW, PRIV_ANON | FIXED));
    show("noreplace_kernel", map(0xffff800000000000ull, 0x1000, PROT_RW, PRIV_ANON | 0x100000));
    show("munmap_kernel", sys(SYS_munmap, 0xffff800000000000ull, 0x1000, 0, 0, 0, 0));
    show("munmap_entry", sys(SYS_munmap, 0xffffffffff600000ull, 0x1000, 0, 0, 0, 0));
    show("munmap_across", sys(SYS_munmap, 0x7ffffffff000ull, 0x2000, 0, 0, 0, 0));
    show("munmap_wrap", sys(SYS_munmap, 0x100000000ull, (uint64_t)-1, 0, 0, 0, 0));
    show("mprotect_kernel", sys(SYS_mprotect, 0xffff800000000000ull, 0x1000, PROT_R, 0, 0, 0));
    show("mprotect_entry", sys(SYS_mprotect, 0xffffffffff600000ull, 0x1000, PROT_R, 0, 0, 0));
    show("mprotect_wrap", sys(SYS_mprotect, 0x100000000ull, (uint64_t)-4096, PROT_R, 0, 0, 0));
    show("anon_1tib", map(0, 1ull << 40, PROT_RW, PRIV_ANON));
    show("anon_1tib_none", map(0, 1ull << 40, 0, PRIV_ANON));
    show("anon_1tib_noreserve", map(0, 1ull << 40, PROT_RW, PRIV_ANON | NORESERVE));
    show("anon_wrapping_length", map(0, (uint64_t)-4095, PROT_RW, PRIV_ANON));
    show("brk_huge", sys(SYS_brk, 0xffff800000000000ull, 0, 0, 0, 0, 0) > 0 ? 0 : -1);
}

static void sleeps(void)
{
    int64_t forever[2] = {INT64_MAX, 999999999};
    show("nanosleep_max", sys(SYS_nanosleep, (uint64_t)(uintptr_t)forever, 0, 0, 0, 0, 0));
    show("clock_nanosleep_max",
         sys(SYS_clock_nanosleep, 1, 0, (uint64_t)(uintptr_t)forever, 0, 0, 0));
    show("clock_nanosleep_abs_max",
         sys(SYS_clock_nanosleep, 1, 1, (uint64_t)(uintptr_t)forever, 0, 0, 0));
    int64_t now[2];
    show("clock_gettime", sys(SYS_clock_gettime, 1, (uint64_t)(uintptr_t)now, 0, 0, 0, 0));
    printf("monotonic_seconds_at_least_2^33 %d\n", now[0] >= (1ll << 33));
}

static uint64_t text_sum(const unsigned char *p, size_t n)
{
    uint64_t h = CR_FNV1A64_OFFSET;
    for (size_t i = 0; i < n; i++)
        h = (h ^ p[i]) * CR_FNV1A64_PRIME;
    return h;
}

static void rocopy(void)
{
    /* a whole page of our own text, read-only and executable */
    uint64_t page = ((uint64_t)(uintptr_t)&main + 4096) & ~4095ull;
    const unsigned char *text = (const unsigned char *)(uintptr_t)page;
    uint64_t before = text_sum(text, 4096);
    show("getrandom", sys(SYS_getrandom, page, 64, 0, 0, 0, 0));
    show("uname", sys(SYS_uname, page, 0, 0, 0, 0, 0));
    show("clock_gettime", sys(SYS_clock_gettime, 0, page, 0, 0, 0, 0));
    show("fstat", sys(SYS_fstat, 1, page, 0, 0, 0, 0));
    long fd = sys(SYS_openat, (uint64_t)-100, (uint64_t)(uintptr_t)"/data/ro", 0102 /* RDWR|CREAT */,
                  0644, 0, 0);
    sys(SYS_write, (uint64_t)fd, (uint64_t)(uintptr_t)"0123456789", 10, 0, 0, 0);
    show("pread", sys(SYS_pread64, (uint64_t)fd, page, 10, 0, 0, 0));
    show("write_from_text", sys(SYS_write, (uint64_t)fd, page, 16, 0, 0, 0));
    show("getrandom_entry_page", sys(SYS_getrandom, 0xffffffffff600000ull, 8, 0, 0, 0, 0));
    show("getrandom_kernel", sys(SYS_getrandom, 0xffff800000001000ull, 8, 0, 0, 0, 0));
    printf("text_intact %d\n", text_sum(text, 4096) == before);
}

static void touch(uint64_t mib, int kernel_fills_last)
{
    uint64_t chunks = (mib + 31) / 32;
    for (uint64_t i = 0; i < chunks; i++) {
        long at = map(0, 32 * MIB, PROT_RW, PRIV_ANON);
        if (at < 0 && at > -4096) {
            show("map", at);
            return;
        }
        if (kernel_fills_last && i == chunks - 1) {
            printf("kernel fills %llu MiB\n", (unsigned long long)(i * 32));
            fflush(stdout);
            for (uint64_t off = 0; off < 32 * MIB; off += 1 << 20)
                sys(SYS_getrandom, (uint64_t)at + off, 1 << 20, 0, 0, 0, 0);
        } else {
            for (uint64_t off = 0; off < 32 * MIB; off += 4096)
                ((volatile char *)(uintptr_t)at)[off] = 1;
        }
        printf("touched %llu MiB\n", (unsigned long long)((i + 1) * 32));
        fflush(stdout);
    }
}

static void splits(void)
{
    uint64_t pages = 70000;
    long at = map(0, pages * 4096, PROT_R, PRIV_ANON);
    long ok = 0, err = 0;
    for (uint64_t i = 0; i < pages; i += 2) {
        err = sys(SYS_mprotect, (uint64_t)at + i * 4096, 4096, PROT_RW, 0, 0, 0);
        if (err)
            break;
        ok++;
    }
    printf("splits ok %ld then %ld\n", ok, err);
    /* top up to the limit with single pages that cannot merge (alternating protections) */
    long extra = 0, last = 0;
    while (extra < 8) {
        last = map(0, 4096, extra % 2 ? PROT_R : 5 /* R|X */, PRIV_ANON);
        if (last < 0 && last > -4096)
            break;
        extra++;
    }
    printf("mmap_single %ld then %ld\n", extra, last);
    show("munmap_split", sys(SYS_munmap, (uint64_t)at + 4096 * (pages - 100), 4096, 0, 0, 0, 0));
}

static void flood(const char *where, uint64_t count, uint64_t mib)
{
    long fd = 1;
    if (strcmp(where, "file") == 0)
        fd = sys(SYS_openat, (uint64_t)-100, (uint64_t)(uintptr_t)"/data/flood",
                 01101 /* WRONLY|CREAT|TRUNC */, 0644, 0, 0);
    long buf = map(0, mib * MIB, PROT_RW, PRIV_ANON);
    memset((void *)(uintptr_t)buf, 'x', mib * MIB);
    uint64_t total = 0;
    long last = 0;
    for (uint64_t i = 0; i < count; i++) {
        /* a file is rewritten in place (two chunks' worth): only unsynced data grows */
        last = fd == 1 ? sys(SYS_write, 1, (uint64_t)buf, mib * MIB, 0, 0, 0)
                       : sys(SYS_pwrite64, (uint64_t)fd, (uint64_t)buf, mib * MIB,
                             (i % 2) * mib * MIB, 0, 0);
        if (last < 0)
            break;
        total += (uint64_t)last;
    }
    fprintf(stderr, "flood %s wrote %llu MiB, last %ld\n", where,
            (unsigned long long)(total >> 20), last);
}

static void insn(const char *name)
{
    printf("running %s\n", name);
    fflush(stdout);
    if (strcmp(name, "hlt") == 0)
        __asm__ volatile("hlt");
    else if (strcmp(name, "cli") == 0)
        __asm__ volatile("cli");
    else if (strcmp(name, "wrmsr") == 0)
        __asm__ volatile("wrmsr" ::"c"(0xc0000082u), "a"(0), "d"(0));
    else if (strcmp(name, "movcr3") == 0)
        __asm__ volatile("mov %0, %%cr3" ::"r"(0ul));
    else if (strcmp(name, "out80") == 0)
        __asm__ volatile("outb %%al, $0x80" ::"a"(0));
    else if (strcmp(name, "in3f8") == 0)
        __asm__ volatile("inb %%dx, %%al" ::"d"(0x3f8) : "eax");
    else if (strncmp(name, "oute", 4) == 0 && name[4] >= '0' && name[4] <= '7' && !name[5])
        __asm__ volatile("outb %%al, %%dx" ::"a"(0), "d"(0xe0 + (name[4] - '0')));
    else if (strcmp(name, "write_entry") == 0)
        *(volatile char *)(uintptr_t)0xffffffffff600000ull = 0;
    else if (strcmp(name, "call_trampoline") == 0)
        ((void (*)(void))(uintptr_t)0xffffffffff600010ull)();
    else if (strcmp(name, "int80") == 0)
        __asm__ volatile("int $0x80" ::"a"(39));
    else {
        printf("unknown instruction\n");
        return;
    }
    printf("survived %s\n", name);
}

int main(int argc, char **argv)
{
    const char *mode = argc > 1 ? argv[1] : "";
    if (strcmp(mode, "maps") == 0)
        maps();
    else if (strcmp(mode, "sleep") == 0)
        sleeps();
    else if (strcmp(mode, "rocopy") == 0)
        rocopy();
    else if (strcmp(mode, "touch") == 0 && argc == 3)
        touch(strtoull(argv[2], NULL, 0), 0);
    else if (strcmp(mode, "fill") == 0 && argc == 3)
        touch(strtoull(argv[2], NULL, 0), 1);
    else if (strcmp(mode, "insn") == 0 && argc == 3)
        insn(argv[2]);
    else if (strcmp(mode, "raise") == 0 && argc == 3)
        sys(SYS_kill, 0, strtoull(argv[2], NULL, 0), 0, 0, 0, 0);
    else if (strcmp(mode, "splits") == 0)
        splits();
    else if ((strcmp(mode, "stdout") == 0 || strcmp(mode, "file") == 0) && argc == 4)
        flood(mode, strtoull(argv[2], NULL, 0), strtoull(argv[3], NULL, 0));
    else {
        fprintf(stderr, "usage: hostile_calls maps|sleep|rocopy|touch MIB|fill MIB|splits|"
                        "raise SIG|stdout N MIB|file N MIB\n");
        return 2;
    }
    return 0;
}
