#define _GNU_SOURCE
/* TCP over the loopback within one process: listen/accept, blocking and non-blocking
 * connect, a transfer larger than the socket buffers (non-blocking writes until EAGAIN,
 * then reads), MSG_PEEK/MSG_WAITALL/FIONREAD, half-close, reset by closing with unread
 * data, ECONNREFUSED. Prints only host-independent facts, so the output is the same
 * natively and under chaosreplay. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

static const char *errname(int e) {
    static const struct { int e; const char *name; } names[] = {
        {EAGAIN, "EAGAIN"}, {ECONNREFUSED, "ECONNREFUSED"}, {EADDRINUSE, "EADDRINUSE"},
        {ENOTCONN, "ENOTCONN"}, {EINVAL, "EINVAL"}, {EINPROGRESS, "EINPROGRESS"},
        {ECONNRESET, "ECONNRESET"}, {EPIPE, "EPIPE"}, {EISCONN, "EISCONN"},
    };
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (names[i].e == e)
            return names[i].name;
    return "E?";
}

static void show(const char *what, long result) {
    if (result < 0)
        printf("%s: -1 %s\n", what, errname(errno));
    else
        printf("%s: %ld\n", what, result);
}

static int port_of(int fd, int peer) {
    struct sockaddr_in sa;
    socklen_t len = sizeof sa;
    (peer ? getpeername : getsockname)(fd, (struct sockaddr *)&sa, &len);
    return ntohs(sa.sin_port);
}

static int revents(int fd, short events) {
    struct pollfd pfd = {fd, events, 0};
    poll(&pfd, 1, 0);
    return pfd.revents;
}

int main(void) {
    setvbuf(stdout, NULL, _IONBF, 0);
    char buf[4096];
    int server = socket(AF_INET, SOCK_STREAM, 0), one = 1;
    setsockopt(server, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    show("bind", bind(server, (struct sockaddr *)&sa, sizeof sa));
    show("listen", listen(server, 8));
    sa.sin_port = htons(port_of(server, 0));
    printf("poll idle listener %#x\n", revents(server, POLLIN | POLLOUT));

    int a = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    show("nonblocking connect", connect(a, (struct sockaddr *)&sa, sizeof sa));
    struct pollfd pfd = {a, POLLOUT, 0};
    show("poll connect", poll(&pfd, 1, 1000));
    int err = -1;
    socklen_t elen = sizeof err;
    getsockopt(a, SOL_SOCKET, SO_ERROR, &err, &elen);
    printf("SO_ERROR %d revents %#x\n", err, pfd.revents);
    show("connect again", connect(a, (struct sockaddr *)&sa, sizeof sa));
    show("and again", connect(a, (struct sockaddr *)&sa, sizeof sa));
    int b = socket(AF_INET, SOCK_STREAM, 0);
    show("blocking connect", connect(b, (struct sockaddr *)&sa, sizeof sa));
    printf("poll listener with two %#x\n", revents(server, POLLIN));
    struct sockaddr_in from;
    socklen_t flen = sizeof from;
    int sa_fd = accept(server, (struct sockaddr *)&from, &flen);
    printf("accepted a: peer port matches %d len %u\n", ntohs(from.sin_port) == port_of(a, 0), flen);
    int sb_fd = accept4(server, NULL, NULL, SOCK_NONBLOCK);
    printf("accepted b: peer port matches %d, local is the server port %d\n",
           port_of(sb_fd, 1) == port_of(b, 0), port_of(sb_fd, 0) == port_of(server, 0));
    printf("distinct ephemeral ports %d\n", port_of(a, 0) != port_of(b, 0));

    show("send", send(b, "hello tcp", 9, 0));
    int pending = -1;
    ioctl(sb_fd, FIONREAD, &pending);
    printf("FIONREAD %d\n", pending);
    show("peek", recv(sb_fd, buf, 5, MSG_PEEK));
    show("waitall", recv(sb_fd, buf, 9, MSG_WAITALL));
    printf("got %.9s\n", buf);
    show("recv nothing", recv(sb_fd, buf, sizeof buf, 0));
    getsockopt(b, IPPROTO_TCP, TCP_NODELAY, &err, &elen);
    setsockopt(b, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    getsockopt(b, IPPROTO_TCP, TCP_NODELAY, &err, &elen);
    printf("TCP_NODELAY %d\n", err);

    /* more than both buffers: write without blocking until EAGAIN, then drain */
    static char big[1 << 20];
    for (size_t i = 0; i < sizeof big; i++)
        big[i] = (char)(i * 31 + 7);
    size_t sent = 0, got = 0;
    unsigned long sum_sent = 0, sum_got = 0;
    int stalls = 0;
    while (got < sizeof big) {
        while (sent < sizeof big) {
            ssize_t n = send(a, big + sent, sizeof big - sent, MSG_DONTWAIT);
            if (n < 0) {
                stalls++;
                break;
            }
            for (ssize_t i = 0; i < n; i++)
                sum_sent += (unsigned char)big[sent + i] * (sent + i + 1);
            sent += (size_t)n;
        }
        ssize_t n;
        while ((n = recv(sa_fd, buf, sizeof buf, MSG_DONTWAIT)) > 0) {
            for (ssize_t i = 0; i < n; i++)
                sum_got += (unsigned char)buf[i] * (got + i + 1);
            got += (size_t)n;
        }
    }
    /* how often the writer stalled depends on the buffer sizes (Linux autotunes them) */
    printf("transfer %zu bytes, sums equal %d\n", got, sum_sent == sum_got);
    (void)stalls;

    show("shutdown wr", shutdown(a, SHUT_WR));
    printf("poll after peer shutdown %#x\n", revents(sa_fd, POLLIN | POLLOUT | POLLRDHUP));
    show("read eof", read(sa_fd, buf, sizeof buf));
    show("send after own shutdown", send(a, "x", 1, MSG_NOSIGNAL));
    show("other way still open", send(sa_fd, "back", 4, 0));
    show("read back", recv(a, buf, sizeof buf, 0));

    show("send unread", send(b, "unread", 6, 0));
    close(sb_fd);  /* unread data: a reset, not a FIN */
    show("recv after reset", recv(b, buf, sizeof buf, 0));
    show("send after reset", send(b, "x", 1, MSG_NOSIGNAL));
    close(b);
    close(a);
    close(sa_fd);

    close(server);
    int c = socket(AF_INET, SOCK_STREAM, 0);
    show("connect to closed port", connect(c, (struct sockaddr *)&sa, sizeof sa));
    close(c);
    int d = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    int r = connect(d, (struct sockaddr *)&sa, sizeof sa);
    printf("nonblocking connect to closed port: %s\n", r < 0 ? errname(errno) : "0");
    pfd = (struct pollfd){d, POLLOUT, 0};
    poll(&pfd, 1, 1000);
    getsockopt(d, SOL_SOCKET, SO_ERROR, &err, &elen);
    printf("then SO_ERROR %s, POLLERR %d\n", errname(err), (pfd.revents & POLLERR) != 0);
    close(d);
    return 0;
}
