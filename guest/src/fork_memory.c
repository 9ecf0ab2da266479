/* fork_memory.c - `fork_memory N`: N rounds of writing memory around a raw getpid.
 *
 * The guest for cloning a VM (tests/test_vm_clone.py): each getpid passes the address of
 * the program's state in rdi, so a test answering the calls itself finds what the rounds
 * wrote, and parent and child answered with different pids write different memory.
 */
#include <stdio.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <unistd.h>

#define SLOTS 1024 /* two pages of longs */

struct state {
    long rounds;
    long sum;
    long slots[SLOTS];
};

static struct state state;

int main(int argc, char **argv)
{
    long n = argc > 1 ? strtol(argv[1], NULL, 10) : 100;
    if (n < 1)
        n = 1;
    long *heap = calloc(SLOTS, sizeof(long)); /* a heap page too: brk memory is cloned */
    if (!heap)
        return 1;
    for (long i = 0; i < n; i++) {
        long pid = syscall(SYS_getpid, &state, heap);
        state.sum += pid;
        state.slots[i % SLOTS] = pid * (i + 1);
        heap[i % SLOTS] = state.sum;
        state.rounds = i + 1;
    }
    printf("fork_memory: %ld rounds, sum %ld, last %ld\n", state.rounds, state.sum,
           heap[(n - 1) % SLOTS]);
    return 0;
}
