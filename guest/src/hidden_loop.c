/*
 * hidden_loop.c - a hot loop whose body holds an instruction hiding an rdtsc pattern.
 *
 * `movl $0x9090310f, %reg` encodes as b8+r 0f 31 90 90: the immediate holds `0f 31`, so a
 * jump two bytes into it would run rdtsc. The program never jumps there, but chaosreplay
 * cannot know that, and no equivalent encoding removes the pattern. Its page once ran
 * single-stepped (every instruction of every iteration an exit); now only the mov traps.
 * argv[1] is the number of iterations (default 1000). The output is the same natively.
 */
#include <stdio.h>
#include <stdlib.h>

static unsigned mix(unsigned acc, unsigned i)
{
    unsigned hidden;
    __asm__ volatile("movl $0x9090310f, %0" : "=r"(hidden));
    return (acc * 31u + (hidden >> 8)) ^ i;
}

int main(int argc, char **argv)
{
    long n = argc > 1 ? atol(argv[1]) : 1000;
    unsigned acc = 1;
    for (long i = 0; i < n; i++)
        acc = mix(acc, (unsigned)i);
    printf("hidden_loop %ld %08x\n", n, acc);
    return 0;
}
