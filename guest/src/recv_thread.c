/*
 * recv_thread.c - an SDK datagram received by one thread while another keeps running.
 *
 * Node 0 starts a thread that waits in cr_recv (no timeout) while its main thread stays
 * busy with system calls for `busy_ms` virtual milliseconds (argv[1], default 50), then
 * joins it. Every other node sends "hello from N" to node 0 after 5 ms and exits. Node 0
 * prints what it got and when, which shows the delivery reached the waiting thread while
 * the node was running, not only once every thread slept.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "chaosreplay.h"

static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000LL + ts.tv_nsec / 1000000;
}

static long long start_ms;

static void *receiver(void *arg)
{
    (void)arg;
    char buf[64];
    int src = -1;
    long n = cr_recv(buf, sizeof buf - 1, -1, &src);
    if (n < 0) {
        printf("recv failed %ld\n", n);
        return NULL;
    }
    buf[n] = 0;
    printf("got '%s' from %d at %lld ms\n", buf, src, now_ms() - start_ms);
    return NULL;
}

int main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IONBF, 0);
    long busy_ms = argc > 1 ? atol(argv[1]) : 50;
    start_ms = now_ms();
    if (cr_node_id() != 0) {
        struct timespec wait = {0, 5000000};
        nanosleep(&wait, NULL);
        char msg[32];
        int len = snprintf(msg, sizeof msg, "hello from %d", cr_node_id());
        cr_send(0, msg, (size_t)len);
        return 0;
    }
    pthread_t thread;
    pthread_create(&thread, NULL, receiver, NULL);
    long calls = 0;
    while (now_ms() - start_ms < busy_ms) {
        getppid(); /* busy, but with switch points: the receiver can run when woken */
        calls++;
    }
    printf("main busy until %lld ms\n", now_ms() - start_ms);
    pthread_join(thread, NULL);
    return 0;
}
