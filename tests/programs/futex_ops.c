/* The futex operations glibc, musl, Go and Rust build on, called directly, plus thread
 * ids, clear_child_tid and a robust mutex whose owner dies. Every line it prints is the
 * same on any schedule, so native Linux and chaosreplay must agree. */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

/* linux/futex.h's numbers (musl has no kernel headers). */
#define FUTEX_WAIT_PRIVATE 128
#define FUTEX_WAKE_PRIVATE 129
#define FUTEX_CMP_REQUEUE_PRIVATE 132
#define FUTEX_WAKE_OP_PRIVATE 133
#define FUTEX_WAIT_BITSET_PRIVATE 137
#define FUTEX_WAKE_BITSET_PRIVATE 138
#define FUTEX_BITSET_MATCH_ANY 0xffffffffu
#define FUTEX_OP_SET 0
#define FUTEX_OP_CMP_GT 4
#define FUTEX_OP(op, oparg, cmp, cmparg) \
	((((op)&0xf) << 28) | (((cmp)&0xf) << 24) | (((oparg)&0xfff) << 12) | ((cmparg)&0xfff))

static long futex(atomic_uint *word, int op, unsigned val, const void *timeout_or_val2,
		  atomic_uint *word2, unsigned val3)
{
	return syscall(SYS_futex, word, op, val, timeout_or_val2, word2, val3);
}

static const char *result(long rc)
{
	static char text[32];
	if (rc >= 0) {
		snprintf(text, sizeof text, "%ld", rc);
		return text;
	}
	return errno == EAGAIN ? "EAGAIN" : errno == ETIMEDOUT ? "ETIMEDOUT"
	     : errno == EINVAL ? "EINVAL" : errno == EFAULT ? "EFAULT" : "other";
}

static atomic_uint word_a, word_b, started, woken_total;

static void *sleeper(void *arg)
{
	atomic_uint *word = arg;
	atomic_fetch_add(&started, 1);
	while (atomic_load(word) == 0)
		futex(word, FUTEX_WAIT_PRIVATE, 0, NULL, NULL, 0);
	atomic_fetch_add(&woken_total, 1);
	return NULL;
}

static void *bitset_sleeper(void *arg)
{
	(void)arg;
	atomic_fetch_add(&started, 1);
	while (atomic_load(&word_a) == 0)
		futex(&word_a, FUTEX_WAIT_BITSET_PRIVATE, 0, NULL, NULL, 0x2);
	return NULL;
}

/* Wake until `count` sleepers have been woken (they may not all be asleep yet). */
static long wake_all(atomic_uint *word, int op, int count, unsigned bitset)
{
	long total = 0;
	while (total < count) {
		long n = futex(word, op, count - total, NULL, NULL, bitset);
		if (n < 0)
			return n;
		total += n;
		if (n == 0)
			sched_yield();
	}
	return total;
}

static pthread_mutex_t robust;
static pid_t owner_tid;

static void *die_holding(void *arg)
{
	(void)arg;
	pthread_mutex_lock(&robust);
	owner_tid = (pid_t)syscall(SYS_gettid);
	return NULL; /* exits still holding the robust mutex */
}

static void *report_tid(void *arg)
{
	*(pid_t *)arg = (pid_t)syscall(SYS_gettid);
	return NULL;
}

int main(void)
{
	setvbuf(stdout, NULL, _IONBF, 0);
	atomic_uint w = 5;
	struct timespec short_wait = {0, 2000000};
	printf("wait on a changed value: %s\n", result(futex(&w, FUTEX_WAIT_PRIVATE, 4, NULL, NULL, 0)));
	printf("wait with a timeout: %s\n",
	       result(futex(&w, FUTEX_WAIT_PRIVATE, 5, &short_wait, NULL, 0)));
	printf("wake with nobody waiting: %s\n", result(futex(&w, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0)));
	printf("misaligned wait: %s\n",
	       result(futex((atomic_uint *)((char *)&w + 1), FUTEX_WAIT_PRIVATE, 0, NULL, NULL, 0)));
	printf("bitset wait with bitset 0: %s\n",
	       result(futex(&w, FUTEX_WAIT_BITSET_PRIVATE, 5, NULL, NULL, 0)));
	struct timespec now;
	clock_gettime(CLOCK_MONOTONIC, &now);
	now.tv_nsec += 3000000;
	if (now.tv_nsec >= 1000000000) {
		now.tv_sec++;
		now.tv_nsec -= 1000000000;
	}
	printf("absolute bitset wait: %s\n",
	       result(futex(&w, FUTEX_WAIT_BITSET_PRIVATE, 5, &now, NULL, FUTEX_BITSET_MATCH_ANY)));

	/* Three sleepers on A: requeue two of them to B, wake one on A. */
	pthread_t t[4];
	for (int i = 0; i < 3; i++)
		pthread_create(&t[i], NULL, sleeper, &word_a);
	while (atomic_load(&started) < 3)
		sched_yield();
	for (int i = 0; i < 50; i++)
		sched_yield(); /* let them reach the futex */
	printf("cmp_requeue with a stale value: %s\n",
	       result(futex(&word_a, FUTEX_CMP_REQUEUE_PRIVATE, 1, (void *)2, &word_b, 7)));
	long moved = futex(&word_a, FUTEX_CMP_REQUEUE_PRIVATE, 0, (void *)2, &word_b, 0);
	printf("cmp_requeue moved: %s\n", result(moved));
	atomic_store(&word_a, 1);
	atomic_store(&word_b, 1);
	long on_a = wake_all(&word_a, FUTEX_WAKE_PRIVATE, 1, 0);
	long on_b = wake_all(&word_b, FUTEX_WAKE_PRIVATE, 2, 0);
	for (int i = 0; i < 3; i++)
		pthread_join(t[i], NULL);
	printf("woken on A %ld, on B %ld, sleepers done %u\n", on_a, on_b, atomic_load(&woken_total));

	/* WAKE_OP: set B to 5 (old value 1 > 0, so B's sleepers are woken too). */
	atomic_store(&word_a, 0);
	atomic_store(&word_b, 1);
	long op = futex(&word_a, FUTEX_WAKE_OP_PRIVATE, 1, (void *)1, &word_b,
			FUTEX_OP(FUTEX_OP_SET, 5, FUTEX_OP_CMP_GT, 0));
	printf("wake_op: %s, B is now %u\n", result(op), atomic_load(&word_b));

	/* A bitset sleeper ignores wakes for other bits. */
	atomic_store(&started, 0);
	atomic_store(&word_a, 0);
	pthread_create(&t[3], NULL, bitset_sleeper, NULL);
	while (atomic_load(&started) < 1)
		sched_yield();
	for (int i = 0; i < 50; i++)
		sched_yield();
	printf("wake of bit 0x1: %s\n", result(futex(&word_a, FUTEX_WAKE_BITSET_PRIVATE, 1, NULL, NULL, 0x1)));
	atomic_store(&word_a, 1);
	printf("wake of bit 0x2: %ld\n", wake_all(&word_a, FUTEX_WAKE_BITSET_PRIVATE, 1, 0x2));
	pthread_join(t[3], NULL);

	/* Thread ids: a thread's tid is not the process id; pthread_join returns after it. */
	pid_t child_tid = 0;
	pthread_create(&t[0], NULL, report_tid, &child_tid);
	pthread_join(t[0], NULL);
	printf("thread tid differs from pid: %s\n", child_tid != getpid() ? "yes" : "no");
	printf("main tid is the pid: %s\n", syscall(SYS_gettid) == getpid() ? "yes" : "no");

	/* A robust mutex whose owner exited: the next locker gets EOWNERDEAD. */
	pthread_mutexattr_t attr;
	pthread_mutexattr_init(&attr);
	pthread_mutexattr_setrobust(&attr, PTHREAD_MUTEX_ROBUST);
	pthread_mutex_init(&robust, &attr);
	pthread_create(&t[0], NULL, die_holding, NULL);
	pthread_join(t[0], NULL);
	int rc = pthread_mutex_lock(&robust);
	printf("lock after the owner died: %s\n", rc == EOWNERDEAD ? "EOWNERDEAD" : "other");
	pthread_mutex_consistent(&robust);
	pthread_mutex_unlock(&robust);
	(void)owner_tid;

	/* clone flag combinations Linux refuses before creating anything. */
	errno = 0;
	long bad = syscall(SYS_clone, CLONE_THREAD | CLONE_VM, NULL, NULL, NULL, 0);
	printf("clone thread without sighand: %s\n", result(bad));
	bad = syscall(SYS_clone, CLONE_SIGHAND, NULL, NULL, NULL, 0);
	printf("clone sighand without vm: %s\n", result(bad));

	cpu_set_t set;
	CPU_ZERO(&set);
	sched_getaffinity(0, sizeof set, &set);
	unsigned cpu = 99, node = 99;
	syscall(SYS_getcpu, &cpu, &node, NULL);
	printf("cpu 0 allowed: %s, getcpu in range: %s\n", CPU_ISSET(0, &set) ? "yes" : "no",
	       (int)cpu < CPU_COUNT(&set) && node == 0 ? "yes" : "no");
	return 0;
}
