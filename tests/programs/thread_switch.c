/* Benchmark guest (benchmarks/bench_threads.py): `getpid N` makes N getpid calls; `yield N`
 * has two threads call sched_yield N times each (every call switches threads); `pingpong N`
 * has two threads hand a token back and forth N times through a futex word. */
#define _GNU_SOURCE
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#define FUTEX_WAIT_PRIVATE 128
#define FUTEX_WAKE_PRIVATE 129

static long rounds;
static atomic_int token; /* whose turn: 0 main, 1 partner */

static void futex_wait(atomic_int *word, int value)
{
	syscall(SYS_futex, word, FUTEX_WAIT_PRIVATE, value, NULL, NULL, 0);
}

static void futex_wake(atomic_int *word)
{
	syscall(SYS_futex, word, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
}

static void play(int me)
{
	for (long i = 0; i < rounds; i++) {
		while (atomic_load(&token) != me)
			futex_wait(&token, !me);
		atomic_store(&token, !me);
		futex_wake(&token);
	}
}

static void *partner(void *arg)
{
	if (arg)
		play(1);
	else
		for (long i = 0; i < rounds; i++)
			sched_yield();
	return NULL;
}

int main(int argc, char **argv)
{
	if (argc != 3)
		return 2;
	rounds = atol(argv[2]);
	if (strcmp(argv[1], "getpid") == 0) {
		for (long i = 0; i < rounds; i++)
			syscall(SYS_getpid);
		return 0;
	}
	int pingpong = strcmp(argv[1], "pingpong") == 0;
	pthread_t thread;
	pthread_create(&thread, NULL, partner, pingpong ? (void *)1 : NULL);
	if (pingpong)
		play(0);
	else
		for (long i = 0; i < rounds; i++)
			sched_yield();
	pthread_join(thread, NULL);
	return 0;
}
