/*
 * hidden_threads.c - two threads run a hot loop around an instruction hiding an rdtsc
 * pattern that the VMM runs alone under the trap flag (an `add`, not a plain mov), so the
 * scheduler's time slices end some turns between the int3 trap and its single step.
 * Prints each thread's sum (the same natively). argv[1]: iterations (default 2000).
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

static long rounds = 2000;

static void *work(void *arg)
{
    unsigned acc = (unsigned)(unsigned long)arg;
    for (long i = 0; i < rounds; i++) {
        __asm__ volatile("addl $0x9090310f, %0" : "+r"(acc)); /* 0f 31 in the immediate */
        acc = acc * 31u + (unsigned)i;
    }
    return (void *)(unsigned long)acc;
}

int main(int argc, char **argv)
{
    if (argc > 1)
        rounds = atol(argv[1]);
    pthread_t other;
    void *mine, *theirs;
    if (pthread_create(&other, NULL, work, (void *)2UL) != 0) {
        perror("pthread_create");
        return 1;
    }
    mine = work((void *)1UL);
    pthread_join(other, &theirs);
    printf("sums %08lx %08lx\n", (unsigned long)mine, (unsigned long)theirs);
    return 0;
}
