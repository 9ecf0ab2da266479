/*
 * hidden_insn.c - jumps into the middle of instructions that hide rdtsc, cpuid and rdrand.
 *
 * Each hide_* function is one `movabs $imm64, %rax; ret` whose immediate holds a complete
 * little function. Decoded from the function's start the immediate is data; entered a few
 * bytes in (the offset is computed at run time from argc) it runs the hidden instructions.
 * A load-time scan that only follows the decoded instructions never sees them.
 */
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>

uint64_t hide_rdtsc(void);
uint64_t hide_cpuid(uint32_t leaf);
uint64_t hide_rdrand(void);

/* Entered at +2: rdtsc; shl $32,%rdx; jmp over the next opcode; or %rdx,%rax; ret. */
__asm__(".text\n.p2align 4\n.globl hide_rdtsc\n.type hide_rdtsc,@function\nhide_rdtsc:\n"
        "movabs $0x02eb20e2c148310f, %rax\n" /* 0f 31 | 48 c1 e2 20 | eb 02 */
        "movabs $0x90909090c3d00948, %rax\n" /* 48 09 d0 | c3 */
        "ret\n.size hide_rdtsc, .-hide_rdtsc\n");

/* Entered at +2: push %rbx; mov %edi,%eax; xor %ecx,%ecx; jmp; cpuid; pop %rbx; ret. */
__asm__(".text\n.p2align 4\n.globl hide_cpuid\n.type hide_cpuid,@function\nhide_cpuid:\n"
        "movabs $0x9003ebc931f88953, %rax\n" /* 53 | 89 f8 | 31 c9 | eb 03 | 90 */
        "movabs $0x90909090c35ba20f, %rax\n" /* 0f a2 | 5b | c3 */
        "ret\n.size hide_cpuid, .-hide_cpuid\n");

/* Entered at +2: rdrand %rax; ret. */
__asm__(".text\n.p2align 4\n.globl hide_rdrand\n.type hide_rdrand,@function\nhide_rdrand:\n"
        "movabs $0x909090c3f0c70f48, %rax\n"  /* +2: 48 0f c7 f0 | c3 */
        "ret\n.size hide_rdrand, .-hide_rdrand\n");

typedef uint64_t (*fn0)(void);
typedef uint64_t (*fn1)(uint32_t);

int main(int argc, char **argv)
{
    (void)argv;
    /* +2 for argc == 1: the immediate starts after the REX.W prefix and the opcode. */
    uintptr_t skip = (uintptr_t)argc + 1;
    fn0 rdtsc = (fn0)((uintptr_t)hide_rdtsc + skip);
    fn1 cpuid = (fn1)((uintptr_t)hide_cpuid + skip);
    fn0 rdrand = (fn0)((uintptr_t)hide_rdrand + skip);
    printf("rdtsc %" PRIu64 "\n", rdtsc());
    printf("cpuid 1 eax %08" PRIx64 "\n", cpuid(1) & 0xffffffffu);
    printf("rdrand %016" PRIx64 "\n", rdrand());
    return 0;
}
