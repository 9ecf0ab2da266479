/* Process group and session calls of a session leader (as a node's program is; run it
 * natively under setsid(1) to compare). */
#include <errno.h>
#include <stdio.h>
#include <unistd.h>

static const char *err(int rc)
{
	return rc == 0 ? "0" : errno == EPERM ? "EPERM" : errno == ESRCH ? "ESRCH" :
	       errno == EINVAL ? "EINVAL" : "other";
}

int main(void)
{
	pid_t pid = getpid();
	printf("getpgrp is pid: %s\n", getpgrp() == pid ? "yes" : "no");
	printf("getpgid(0) is pid: %s\n", getpgid(0) == pid ? "yes" : "no");
	printf("getsid(0) is pid: %s\n", getsid(0) == pid ? "yes" : "no");
	printf("setsid: %s\n", err(setsid() < 0 ? -1 : 0));
	printf("setpgid(0, 0): %s\n", err(setpgid(0, 0)));
	printf("setpgid(0, -1): %s\n", err(setpgid(0, -1)));
	printf("getsid of no process: %s\n", err(getsid(999999) < 0 ? -1 : 0));
	return 0;
}
