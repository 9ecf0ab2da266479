/*
 * spin_threads.c - two threads take turns through a spin lock that is held across
 * sched_yield, so the other one spins on it with the pause hint.
 *
 * Under chaosreplay each pause is a switch point: the spinning thread yields at once and
 * the holder goes on, so the spins stay few (and the same on every run); without that the
 * spinner would burn its whole time slice. Prints the final count on stdout (the same
 * natively) and the number of spins on stderr (which natively depends on the host).
 * argv[1] is the number of increments per thread (default 50).
 */
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>

static atomic_int lock;
static atomic_long spins;
static long counter;
static long rounds = 50;

static void acquire(void)
{
    while (atomic_exchange(&lock, 1)) {
        while (atomic_load(&lock)) {
            atomic_fetch_add(&spins, 1);
            __builtin_ia32_pause();
        }
    }
}

static void *worker(void *arg)
{
    (void)arg;
    for (long i = 0; i < rounds; i++) {
        acquire();
        long seen = counter;
        sched_yield(); /* hand the vCPU over while holding the lock */
        counter = seen + 1;
        atomic_store(&lock, 0);
        sched_yield();
    }
    return NULL;
}

int main(int argc, char **argv)
{
    if (argc > 1)
        rounds = atol(argv[1]);
    pthread_t other;
    if (pthread_create(&other, NULL, worker, NULL) != 0) {
        perror("pthread_create");
        return 1;
    }
    worker(NULL);
    pthread_join(other, NULL);
    printf("counter %ld\n", counter);
    fprintf(stderr, "spins %ld\n", atomic_load(&spins));
    return 0;
}
