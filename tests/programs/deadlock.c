/* Two threads take two mutexes in opposite orders after a barrier: a deadlock on every
 * schedule, which the kernel must report (naming each task's wait) rather than hang. */
#include <pthread.h>
#include <stdio.h>

static pthread_mutex_t first = PTHREAD_MUTEX_INITIALIZER, second = PTHREAD_MUTEX_INITIALIZER;
static pthread_barrier_t both_hold_one;

static void *other_order(void *arg)
{
	(void)arg;
	pthread_mutex_lock(&second);
	pthread_barrier_wait(&both_hold_one);
	pthread_mutex_lock(&first);
	return NULL;
}

int main(void)
{
	pthread_t thread;
	pthread_barrier_init(&both_hold_one, NULL, 2);
	pthread_create(&thread, NULL, other_order, NULL);
	pthread_mutex_lock(&first);
	pthread_barrier_wait(&both_hold_one);
	pthread_mutex_lock(&second);
	puts("unreachable");
	return 0;
}
