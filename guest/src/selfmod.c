/*
 * selfmod.c - makes its own text writable with mprotect, writes rdtsc over a function
 * that was loaded (and scanned) as something harmless, and calls it; then writes cpuid
 * and rdrand over it in turn.
 */
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>

uint64_t victim(uint32_t leaf);

/* 32 bytes of room: returns its argument until rewritten. */
__asm__(".text\n.p2align 6\n.globl victim\n.type victim,@function\nvictim:\n"
        "mov %edi, %eax\nret\n.fill 29, 1, 0x90\n.size victim, .-victim\n");

static const unsigned char RDTSC[] = {0x0f, 0x31, 0x48, 0xc1, 0xe2, 0x20, 0x48, 0x09, 0xd0, 0xc3};
static const unsigned char CPUID[] = {0x53, 0x89, 0xf8, 0x31, 0xc9, 0x0f, 0xa2, 0x5b, 0xc3};
static const unsigned char RDRAND[] = {0x48, 0x0f, 0xc7, 0xf0, 0xc3};

int main(void)
{
    /* Through a volatile pointer, so the compiler cannot inline or fold the calls. */
    uint64_t (*volatile call)(uint32_t) = victim;
    printf("before %" PRIu64 "\n", call(7));
    uintptr_t page = (uintptr_t)victim & ~(uintptr_t)4095;
    if (mprotect((void *)page, 4096, PROT_READ | PROT_WRITE | PROT_EXEC) != 0) {
        perror("mprotect");
        return 1;
    }
    memcpy((void *)victim, RDTSC, sizeof RDTSC);
    printf("rdtsc %" PRIu64 "\n", call(0));
    memcpy((void *)victim, CPUID, sizeof CPUID);
    printf("cpuid 1 eax %08" PRIx64 "\n", call(1) & 0xffffffffu);
    memcpy((void *)victim, RDRAND, sizeof RDRAND);
    printf("rdrand %016" PRIx64 "\n", call(0));
    return 0;
}
