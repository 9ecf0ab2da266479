/*
 * jit.c - writes code at run time and calls it, the way a JIT does:
 *   1. into an RWX mapping: rdtsc, then cpuid, then rdrand, each written over the last
 *      one at the same address after it ran (code that changes after it executed);
 *   2. into a writable mapping later made executable with mprotect (W then X);
 *   3. into an RWX mapping, an rdtsc hidden in an immediate and entered misaligned.
 * It sleeps between the steps so that checkpoints fall in the middle of them.
 */
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

typedef uint64_t (*fn)(uint32_t);

/* rdtsc; shl $32,%rdx; or %rdx,%rax; ret */
static const unsigned char RDTSC[] = {0x0f, 0x31, 0x48, 0xc1, 0xe2, 0x20, 0x48, 0x09, 0xd0, 0xc3};
/* push %rbx; mov %edi,%eax; xor %ecx,%ecx; cpuid; pop %rbx; ret */
static const unsigned char CPUID[] = {0x53, 0x89, 0xf8, 0x31, 0xc9, 0x0f, 0xa2, 0x5b, 0xc3};
/* rdrand %rax; ret */
static const unsigned char RDRAND[] = {0x48, 0x0f, 0xc7, 0xf0, 0xc3};
/* mov $0xc3d0..., hidden at +1: rdtsc; ret (returns the low half in eax) */
static const unsigned char HIDDEN[] = {0xb8, 0x0f, 0x31, 0xc3, 0x90, 0xc3};

static void *map(int prot)
{
    void *p = mmap(NULL, 4096, prot, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) {
        perror("mmap");
        return NULL;
    }
    return p;
}

int main(void)
{
    unsigned char *rwx = map(PROT_READ | PROT_WRITE | PROT_EXEC);
    unsigned char *wx = map(PROT_READ | PROT_WRITE);
    unsigned char *hidden = map(PROT_READ | PROT_WRITE | PROT_EXEC);
    if (!rwx || !wx || !hidden)
        return 1;
    /* Past the page's first bytes, where a decode that starts at the page is sure. */
    unsigned char *code = rwx + 64;

    memcpy(code, RDTSC, sizeof RDTSC);
    printf("rwx rdtsc %" PRIu64 "\n", ((fn)code)(0));
    usleep(1500);
    memcpy(code, CPUID, sizeof CPUID);
    printf("rwx cpuid 1 eax %08" PRIx64 "\n", ((fn)code)(1) & 0xffffffffu);
    usleep(1500);
    memcpy(code, RDRAND, sizeof RDRAND);
    printf("rwx rdrand %016" PRIx64 "\n", ((fn)code)(0));

    memcpy(wx + 64, RDTSC, sizeof RDTSC);
    if (mprotect(wx, 4096, PROT_READ | PROT_EXEC) != 0) {
        perror("mprotect");
        return 1;
    }
    printf("mprotect rdtsc %" PRIu64 "\n", ((fn)(wx + 64))(0));
    usleep(1500);

    memcpy(hidden + 64, HIDDEN, sizeof HIDDEN);
    printf("hidden rdtsc low %" PRIu64 "\n", ((fn)(hidden + 65))(0) & 0xffffffffu);
    return 0;
}
