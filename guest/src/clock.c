/*
 * clock.c - reads every clock a program usually reads (clock_gettime realtime and
 * monotonic, gettimeofday, time) and sleeps 1.5 s with nanosleep; under chaosreplay
 * all of it is virtual time, so the sleep costs no wall time and the output is fixed.
 */
#include <stdio.h>
#include <sys/time.h>
#include <time.h>

int main(void)
{
    struct timespec real, mono_before, mono_after;
    struct timeval tv;
    struct timespec nap = {1, 500000000L};

    clock_gettime(CLOCK_REALTIME, &real);
    clock_gettime(CLOCK_MONOTONIC, &mono_before);
    gettimeofday(&tv, NULL);
    time_t now = time(NULL);
    printf("realtime %lld.%09ld\n", (long long)real.tv_sec, real.tv_nsec);
    printf("gettimeofday %lld.%06ld\n", (long long)tv.tv_sec, (long)tv.tv_usec);
    printf("time %lld\n", (long long)now);
    printf("monotonic %lld.%09ld\n", (long long)mono_before.tv_sec, mono_before.tv_nsec);

    if (nanosleep(&nap, NULL) != 0) {
        perror("nanosleep");
        return 1;
    }
    clock_gettime(CLOCK_MONOTONIC, &mono_after);
    long long slept = (mono_after.tv_sec - mono_before.tv_sec) * 1000000000LL +
                      (mono_after.tv_nsec - mono_before.tv_nsec);
    printf("monotonic %lld.%09ld after sleeping %lld ns\n", (long long)mono_after.tv_sec,
           mono_after.tv_nsec, slept);
    return slept >= 1500000000LL ? 0 : 1;
}
