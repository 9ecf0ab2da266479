/* Starts threads that sleep forever until pthread_create fails: the kernel's thread limit
 * (threads-max) must stop a guest from growing the host without bound. */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <unistd.h>

static void *sleeper(void *arg)
{
	(void)arg;
	for (;;)
		pause();
	return NULL;
}

int main(void)
{
	pthread_attr_t attr;
	pthread_attr_init(&attr);
	pthread_attr_setstacksize(&attr, 16384);
	int created = 0, rc;
	pthread_t thread;
	while ((rc = pthread_create(&thread, &attr, sleeper, NULL)) == 0 && created < 100000)
		created++;
	printf("created %d, then %s\n", created, rc == EAGAIN ? "EAGAIN" : "other");
	return 0;
}
