/* Reads /srv/motd (a file of the node's root) twice, 300 ms apart, printing it each time;
 * in between, the node whose hostname ends in 0 rewrites it (a copy-up onto its own disk).
 * No fork: a checkpoint between the reads resumes without process-table state. */
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static void show(void) {
    char buf[256];
    int fd = open("/srv/motd", O_RDONLY);
    ssize_t n = fd < 0 ? -1 : read(fd, buf, sizeof buf);
    if (n > 0)
        fwrite(buf, 1, (size_t)n, stdout);
    fflush(stdout);
    if (fd >= 0)
        close(fd);
}

int main(void) {
    struct timespec pause = {0, 300000000};
    char host[64] = "";
    show();
    nanosleep(&pause, NULL);
    gethostname(host, sizeof host);
    if (host[0] && host[strlen(host) - 1] == '0') {
        int fd = open("/srv/motd", O_WRONLY | O_TRUNC);
        if (fd >= 0) {
            write(fd, "mine\n", 5);
            close(fd);
        }
    }
    nanosleep(&pause, NULL);
    show();
    return 0;
}
