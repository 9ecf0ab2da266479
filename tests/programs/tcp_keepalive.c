/* TCP keepalive on a connection that never carries data, between two nodes:
 *   tcp_keepalive server PORT   accepts one connection, waits in read until it ends, says
 *                               how, then stays up (an exiting node would take the
 *                               connection down with it)
 *   tcp_keepalive client HOST PORT IDLE INTVL CNT
 *                               turns SO_KEEPALIVE on with TCP_KEEPIDLE/KEEPINTVL/KEEPCNT
 *                               (seconds, seconds, probes; 0 leaves that option unset, at
 *                               the system's default) before connecting, prints what
 *                               getsockopt reads back, connects, and waits in recv: only
 *                               keepalive can end that wait (ETIMEDOUT)
 * Output names no host-dependent value. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static const char *errname(int e) {
    switch (e) {
    case ECONNREFUSED: return "ECONNREFUSED";
    case ETIMEDOUT: return "ETIMEDOUT";
    case ECONNRESET: return "ECONNRESET";
    default: return "E?";
    }
}

static void stay_up(void) {
    for (;;)
        sleep(1000);
}

static int server(int port) {
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(port)};
    if (bind(s, (struct sockaddr *)&sa, sizeof sa) < 0 || listen(s, 4) < 0) {
        perror("bind/listen");
        return 1;
    }
    struct sockaddr_in from;
    socklen_t len = sizeof from;
    int c = accept(s, (struct sockaddr *)&from, &len);
    if (c < 0) {
        perror("accept");
        return 1;
    }
    char text[32], buf[256];
    inet_ntop(AF_INET, &from.sin_addr, text, sizeof text);
    printf("accepted %s:%d\n", text, ntohs(from.sin_port));
    ssize_t n = read(c, buf, sizeof buf);
    printf("read: %s\n", n == 0 ? "end of file" : n < 0 ? errname(errno) : "data");
    stay_up();
    return 0;
}

static int get(int s, int level, int name) {
    int value = -1;
    socklen_t len = sizeof value;
    getsockopt(s, level, name, &value, &len);
    return value;
}

static int client(const char *host, int port, int idle, int intvl, int cnt) {
    int s = socket(AF_INET, SOCK_STREAM, 0), one = 1;
    setsockopt(s, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof one);
    if (idle)
        setsockopt(s, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof idle);
    if (intvl)
        setsockopt(s, IPPROTO_TCP, TCP_KEEPINTVL, &intvl, sizeof intvl);
    if (cnt)
        setsockopt(s, IPPROTO_TCP, TCP_KEEPCNT, &cnt, sizeof cnt);
    printf("keepalive %d idle %d intvl %d cnt %d\n", get(s, SOL_SOCKET, SO_KEEPALIVE),
           get(s, IPPROTO_TCP, TCP_KEEPIDLE), get(s, IPPROTO_TCP, TCP_KEEPINTVL),
           get(s, IPPROTO_TCP, TCP_KEEPCNT));
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(port)};
    inet_pton(AF_INET, host, &sa.sin_addr);
    if (connect(s, (struct sockaddr *)&sa, sizeof sa) < 0) {
        printf("connect: %s\n", errname(errno));
        return 0;
    }
    printf("connected\n");
    char buf[256];
    ssize_t n = recv(s, buf, sizeof buf, 0);
    printf("recv: %s\n", n == 0 ? "end of file" : n < 0 ? errname(errno) : "data");
    return 0;
}

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (argc == 3 && strcmp(argv[1], "server") == 0)
        return server(atoi(argv[2]));
    if (argc == 7 && strcmp(argv[1], "client") == 0)
        return client(argv[2], atoi(argv[3]), atoi(argv[4]), atoi(argv[5]), atoi(argv[6]));
    fprintf(stderr, "usage: tcp_keepalive server PORT | client HOST PORT IDLE INTVL CNT\n");
    return 64;
}
