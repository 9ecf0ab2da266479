/* Processes: wait4 with WNOHANG, kill between processes, SIGCHLD, getppid, orphans, waitid,
 * process groups, stop and continue, execve's errors and a "#!" script. Prints the same
 * natively. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static volatile sig_atomic_t sigchld_seen;

static void on_sigchld(int signo)
{
	(void)signo;
	sigchld_seen++;
}

static void write_file(const char *path, const char *text, mode_t mode)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, mode);
	if (fd < 0 || write(fd, text, strlen(text)) != (ssize_t)strlen(text)) {
		perror(path);
		exit(1);
	}
	close(fd);
}

static const char *exec_error(const char *path)
{
	pid_t pid = fork();
	if (pid == 0) {
		char *argv[] = {(char *)path, NULL};
		execv(path, argv);
		_exit(errno == ENOENT ? 2 : errno == EACCES ? 3 : errno == ENOEXEC ? 4 : 5);
	}
	int status;
	waitpid(pid, &status, 0);
	switch (WEXITSTATUS(status)) {
	case 2: return "ENOENT";
	case 3: return "EACCES";
	case 4: return "ENOEXEC";
	default: return "other";
	}
}

int main(int argc, char **argv)
{
	if (argc > 1 && strcmp(argv[1], "wait") == 0) { /* a copy of this program, running */
		pause();
		return 0;
	}
	if (argc > 2 && strcmp(argv[1], "interp") == 0) {
		const char *name = strrchr(argv[2], '/');
		printf("interpreted %s\n", name ? name + 1 : argv[2]);
		return 0;
	}
	setvbuf(stdout, NULL, _IONBF, 0);
	pid_t self = getpid();
	struct sigaction sa = {.sa_handler = on_sigchld, .sa_flags = SA_RESTART};
	sigaction(SIGCHLD, &sa, NULL);

	int go[2];
	pipe(go);
	pid_t child = fork();
	if (child == 0) {
		char c;
		read(go[0], &c, 1); /* wait until the parent has looked */
		_exit(getppid() == self ? 42 : 1);
	}
	int status = 0;
	printf("WNOHANG before exit: %d\n", (int)waitpid(child, &status, WNOHANG));
	write(go[1], "x", 1);
	printf("waited the right child: %s\n", waitpid(child, &status, 0) == child ? "yes" : "no");
	printf("exit status %d, SIGCHLD seen %s\n", WEXITSTATUS(status), sigchld_seen ? "yes" : "no");

	child = fork();
	if (child == 0) {
		pause();
		_exit(0);
	}
	kill(child, SIGTERM);
	waitpid(child, &status, 0);
	printf("killed by signal %d\n", WIFSIGNALED(status) ? WTERMSIG(status) : -1);

	int report[2];
	pipe(report);
	child = fork();
	if (child == 0) { /* leaves an orphan that reports its new parent */
		pid_t parent = getpid();
		if (fork() == 0) { /* init adopts it (natively maybe a subreaper) */
			while (getppid() == parent)
				usleep(1000);
			write(report[1], "1", 1);
			_exit(0);
		}
		_exit(0);
	}
	waitpid(child, &status, 0);
	char c = 0;
	read(report[0], &c, 1);
	printf("orphan re-parented: %s\n", c == '1' ? "yes" : "no");

	child = fork();
	if (child == 0) {
		setpgid(0, 0);
		pause();
		_exit(0);
	}
	setpgid(child, child); /* as a shell does, racing the child */
	printf("child leads its group: %s\n", getpgid(child) == child ? "yes" : "no");
	kill(-child, SIGKILL);
	siginfo_t info = {0};
	waitid(P_PID, child, &info, WEXITED);
	printf("waitid: CLD_KILLED %s, signal %d, pid right %s\n",
	       info.si_code == CLD_KILLED ? "yes" : "no", info.si_status,
	       info.si_pid == child ? "yes" : "no");
	printf("no children left: %s\n", waitpid(-1, NULL, WNOHANG) < 0 && errno == ECHILD ?
	       "yes" : "no");

	child = fork();
	if (child == 0) {
		for (;;)
			pause();
	}
	kill(child, SIGSTOP);
	waitpid(child, &status, WUNTRACED);
	printf("stopped by %d\n", WIFSTOPPED(status) ? WSTOPSIG(status) : -1);
	kill(child, SIGCONT);
	waitpid(child, &status, WCONTINUED);
	printf("continued: %s\n", WIFCONTINUED(status) ? "yes" : "no");
	kill(child, SIGTERM);
	waitpid(child, &status, 0);
	printf("then killed by %d\n", WIFSIGNALED(status) ? WTERMSIG(status) : -1);

	char dir[] = "/tmp/processesXXXXXX";
	if (!mkdtemp(dir)) {
		perror("mkdtemp");
		return 1;
	}
	char path[64];
	snprintf(path, sizeof path, "%s/missing", dir);
	printf("exec missing: %s\n", exec_error(path));
	snprintf(path, sizeof path, "%s/data", dir);
	write_file(path, "just data\n", 0644);
	printf("exec non-executable: %s\n", exec_error(path));
	snprintf(path, sizeof path, "%s/text", dir);
	write_file(path, "just text\n", 0755);
	printf("exec text: %s\n", exec_error(path));
	printf("exec directory: %s\n", exec_error(dir));
	snprintf(path, sizeof path, "%s/copy", dir); /* a copy of this program, exec'd */
	int in = open("/proc/self/exe", O_RDONLY), out = open(path, O_WRONLY | O_CREAT, 0755);
	char block[4096];
	ssize_t got;
	while ((got = read(in, block, sizeof block)) > 0)
		write(out, block, (size_t)got);
	close(in);
	close(out);
	int ready[2];
	pipe(ready);
	child = fork();
	if (child == 0) {
		close(ready[0]);
		fcntl(ready[1], F_SETFD, FD_CLOEXEC); /* closed by the exec: the parent's cue */
		char *args[] = {path, "wait", NULL};
		execv(path, args);
		_exit(127);
	}
	close(ready[1]);
	read(ready[0], &c, 1);
	int busy = open(path, O_WRONLY);
	printf("write to a running program: %s\n", busy < 0 && errno == ETXTBSY ? "ETXTBSY" :
	       "allowed");
	kill(child, SIGKILL);
	waitpid(child, &status, 0);
	busy = open(path, O_WRONLY);
	printf("once it ended: %s\n", busy >= 0 ? "allowed" : strerror(errno));
	close(busy);
	snprintf(path, sizeof path, "%s/script", dir);
	write_file(path, "#!/proc/self/exe interp\n", 0755);
	child = fork();
	if (child == 0) {
		char *args[] = {path, NULL};
		execv(path, args);
		_exit(127);
	}
	waitpid(child, &status, 0);
	printf("script exit %d\n", WEXITSTATUS(status));
	return 0;
}
