/* fork, a pipe from child to parent, exec of this same program in "child" mode, wait4. */
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	if (argc > 1 && strcmp(argv[1], "child") == 0) {
		printf("child says %s\n", argc > 2 ? argv[2] : "nothing");
		return 7;
	}
	int fds[2];
	if (pipe(fds) != 0) {
		perror("pipe");
		return 1;
	}
	pid_t pid = fork();
	if (pid < 0) {
		perror("fork");
		return 1;
	}
	if (pid == 0) {
		dup2(fds[1], 1);
		close(fds[0]);
		close(fds[1]);
		execl("/proc/self/exe", argv[0], "child", "hello", (char *)NULL);
		perror("execl");
		_exit(127);
	}
	close(fds[1]);
	char buf[128];
	ssize_t n = read(fds[0], buf, sizeof buf - 1);
	buf[n > 0 ? n : 0] = 0;
	int status = 0;
	waitpid(pid, &status, 0);
	printf("parent read: %s", buf);
	printf("child exited %d\n", WIFEXITED(status) ? WEXITSTATUS(status) : -1);
	return 0;
}
