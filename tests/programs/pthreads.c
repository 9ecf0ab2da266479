/* Eight pthreads share a counter under a mutex, wait at a barrier, then hand a token
 * round a ring with a condition variable. The output does not depend on scheduling. */
#include <pthread.h>
#include <stdio.h>

#define THREADS 8
#define ROUNDS 1000

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t turn_changed = PTHREAD_COND_INITIALIZER;
static pthread_barrier_t barrier;
static long counter;
static int turn;
static int ring_order[THREADS * 3];
static int ring_len;

static void *worker(void *arg)
{
	int id = (int)(long)arg;
	for (int i = 0; i < ROUNDS; i++) {
		pthread_mutex_lock(&lock);
		counter++;
		pthread_mutex_unlock(&lock);
	}
	pthread_barrier_wait(&barrier);
	for (int lap = 0; lap < 3; lap++) {
		pthread_mutex_lock(&lock);
		while (turn != id)
			pthread_cond_wait(&turn_changed, &lock);
		ring_order[ring_len++] = id;
		turn = (turn + 1) % THREADS;
		pthread_cond_broadcast(&turn_changed);
		pthread_mutex_unlock(&lock);
	}
	return (void *)(long)(id * 10);
}

int main(void)
{
	pthread_t threads[THREADS];
	long joined = 0;
	pthread_barrier_init(&barrier, NULL, THREADS);
	for (long i = 0; i < THREADS; i++)
		pthread_create(&threads[i], NULL, worker, (void *)i);
	for (int i = 0; i < THREADS; i++) {
		void *result;
		pthread_join(threads[i], &result);
		joined += (long)result;
	}
	printf("counter %ld\n", counter);
	printf("ring");
	for (int i = 0; i < ring_len; i++)
		printf(" %d", ring_order[i]);
	printf("\njoined %ld\n", joined);
	return 0;
}
