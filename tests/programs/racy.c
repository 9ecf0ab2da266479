/* Four threads append their letter to a shared log with no lock and a system call between
 * steps: the log is the interleaving, so it depends on the schedule (a data race on
 * purpose, to see that a seeded random schedule explores interleavings). */
#include <pthread.h>
#include <stdio.h>
#include <unistd.h>

#define THREADS 4
#define STEPS 12

static char order[THREADS * STEPS + 1];
static volatile int length;

static void *appender(void *arg)
{
	char letter = (char)(long)arg;
	for (int i = 0; i < STEPS; i++) {
		int at = length; /* read, system call, write: the race */
		getppid();
		order[at] = letter;
		length = at + 1;
	}
	return NULL;
}

int main(void)
{
	pthread_t threads[THREADS];
	for (long i = 0; i < THREADS; i++)
		pthread_create(&threads[i], NULL, appender, (void *)('A' + i));
	for (int i = 0; i < THREADS; i++)
		pthread_join(threads[i], NULL);
	order[length] = 0;
	printf("%s\n", order);
	return 0;
}
