/* A detached thread ends while the main thread sleeps: for a while no thread is on the
 * vCPU (the one that was has exited, the other is blocked), which a checkpoint must hold. */
#include <pthread.h>
#include <stdio.h>
#include <time.h>

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static void *worker(void *arg)
{
    (void)arg;
    sleep_ms(5);
    puts("worker done");
    return NULL; /* a detached thread: it exits with nobody to join it */
}

int main(void)
{
    pthread_t thread;
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    if (pthread_create(&thread, &attr, worker, NULL) != 0)
        return 1;
    sleep_ms(50);
    puts("main done");
    return 0;
}
