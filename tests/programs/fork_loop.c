/* Benchmark guest: `getpid N` (N round trips), `fork N` (fork, the child _exits, the
 * parent waits, N times) or `spawn N` (the same with the child exec'ing this program in
 * `exit` mode, which returns at once). */
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	if (argc < 3)
		return strcmp(argc > 1 ? argv[1] : "", "exit") == 0 ? 0 : 2;
	long rounds = atol(argv[2]);
	for (long i = 0; i < rounds; i++) {
		if (strcmp(argv[1], "getpid") == 0) {
			getpid();
			continue;
		}
		pid_t pid = fork();
		if (pid < 0)
			return 1;
		if (pid == 0) {
			if (strcmp(argv[1], "spawn") == 0)
				execl("/proc/self/exe", "fork_loop", "exit", (char *)NULL);
			_exit(0);
		}
		int status;
		if (waitpid(pid, &status, 0) != pid || status != 0)
			return 1;
	}
	return 0;
}
