/*
 * spin_pause.c - spin-waits with the pause hint, in its own loop and in libc's spin lock.
 *
 * chaosreplay patches every decoded `pause` like rdtsc: each one is an exit that charges
 * virtual time and is a point where a scheduler may switch tasks. The libc spin lock here
 * is never contended (one thread), so only its patched bytes are exercised, not its spin.
 * argv[1] is the number of pauses (default 100). Prints the count, then the monotonic
 * nanoseconds the loop took (the virtual time it was charged under chaosreplay).
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static long long now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

int main(int argc, char **argv)
{
    long n = argc > 1 ? atol(argv[1]) : 100;
    pthread_spinlock_t lock;
    pthread_spin_init(&lock, PTHREAD_PROCESS_PRIVATE);
    pthread_spin_lock(&lock);
    pthread_spin_unlock(&lock);
    long long start = now_ns();
    for (long i = 0; i < n; i++)
        __builtin_ia32_pause();
    long long end = now_ns();
    printf("paused %ld\n", n);
    printf("elapsed %lld\n", end - start);
    return 0;
}
