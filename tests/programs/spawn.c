/* posix_spawn (clone with CLONE_VM|CLONE_VFORK in both libcs), system() and popen(). */
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

int main(int argc, char **argv)
{
	if (argc > 1) {
		printf("spawned with %s\n", argv[1]);
		fflush(stdout);
		return 4;
	}
	pid_t pid;
	char *args[] = {argv[0], "an argument", NULL};
	int rc = posix_spawn(&pid, "/proc/self/exe", NULL, NULL, args, environ);
	int status = 0;
	waitpid(pid, &status, 0);
	printf("posix_spawn %d, exit %d\n", rc, WEXITSTATUS(status));
	char *missing[] = {"/no/such/program", NULL};
	rc = posix_spawn(&pid, "/no/such/program", NULL, NULL, missing, environ);
	if (rc == 0)
		waitpid(pid, &status, 0);
	printf("missing program: %s\n", rc == 0 ? (WEXITSTATUS(status) == 127 ? "exit 127" : "?")
	       : strerror(rc));
	return 0;
}
