/* ITIMER_VIRTUAL and ITIMER_PROF: periodic SIGVTALRM and SIGPROF while the process runs
 * (here: calls getppid in a loop), getitimer while armed, disarming. */
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <unistd.h>

static volatile sig_atomic_t fired[32];

static void on_signal(int signo)
{
	fired[signo]++;
}

static void run(int which, int signo, const char *name)
{
	struct sigaction sa = {.sa_handler = on_signal, .sa_flags = SA_RESTART};
	sigaction(signo, &sa, NULL);
	struct itimerval every = {{0, 2000}, {0, 2000}}; /* every 2 ms of CPU time */
	if (setitimer(which, &every, NULL) != 0) {
		perror("setitimer");
		return;
	}
	struct itimerval now;
	getitimer(which, &now);
	int armed = now.it_interval.tv_usec == 2000 && now.it_value.tv_usec > 0;
	while (fired[signo] < 3)
		getppid();
	struct itimerval off = {{0, 0}, {0, 0}};
	setitimer(which, &off, NULL);
	getitimer(which, &now);
	printf("%s: armed %s, %d signals, then %ld %ld\n", name, armed ? "yes" : "no",
	       (int)fired[signo], (long)now.it_value.tv_usec, (long)now.it_interval.tv_usec);
}

int main(void)
{
	run(ITIMER_VIRTUAL, SIGVTALRM, "ITIMER_VIRTUAL");
	run(ITIMER_PROF, SIGPROF, "ITIMER_PROF");
	return 0;
}
