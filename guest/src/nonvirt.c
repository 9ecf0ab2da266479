/*
 * nonvirt.c - executes each instruction the CPU here cannot trap (rdtsc, rdtscp, cpuid
 * leaves 0 and 1, 64-bit rdrand and rdseed, xgetbv(0), rdpid) once, through inline asm,
 * and prints what it got. Under chaosreplay each is patched to ud2 and emulated, so the
 * output is the virtual CPU's and is the same on every host.
 */
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>

int main(void)
{
    uint32_t lo, hi, aux, a, b, c, d;
    uint64_t value;
    unsigned char ok;

    __asm__ volatile("rdtsc" : "=a"(lo), "=d"(hi));
    printf("rdtsc %" PRIu64 "\n", ((uint64_t)hi << 32) | lo);

    __asm__ volatile("rdtscp" : "=a"(lo), "=d"(hi), "=c"(aux));
    printf("rdtscp %" PRIu64 " aux %" PRIu32 "\n", ((uint64_t)hi << 32) | lo, aux);

    __asm__ volatile("cpuid" : "=a"(a), "=b"(b), "=c"(c), "=d"(d) : "a"(0), "c"(0));
    char vendor[13];
    for (int i = 0; i < 4; i++) {
        vendor[i] = (char)(b >> (8 * i));
        vendor[4 + i] = (char)(d >> (8 * i));
        vendor[8 + i] = (char)(c >> (8 * i));
    }
    vendor[12] = 0;
    printf("cpuid 0: max leaf %" PRIu32 " vendor %s\n", a, vendor);

    __asm__ volatile("cpuid" : "=a"(a), "=b"(b), "=c"(c), "=d"(d) : "a"(1), "c"(0));
    printf("cpuid 1: eax %08" PRIx32 " ebx %08" PRIx32 " ecx %08" PRIx32 " edx %08" PRIx32 "\n",
           a, b, c, d);

    /* rdrand/rdseed report success in CF; retry a bounded number of times like callers do. */
    ok = 0;
    for (int tries = 0; tries < 10 && !ok; tries++)
        __asm__ volatile("rdrand %0; setc %1" : "=r"(value), "=qm"(ok) : : "cc");
    printf("rdrand %016" PRIx64 " ok %d\n", value, ok);

    ok = 0;
    for (int tries = 0; tries < 100 && !ok; tries++)
        __asm__ volatile("rdseed %0; setc %1" : "=r"(value), "=qm"(ok) : : "cc");
    printf("rdseed %016" PRIx64 " ok %d\n", value, ok);

    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    printf("xgetbv 0: %016" PRIx64 "\n", ((uint64_t)hi << 32) | lo);

    __asm__ volatile("rdpid %0" : "=r"(value));
    printf("rdpid %" PRIu64 "\n", value);
    return 0;
}
