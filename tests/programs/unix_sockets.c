/* AF_UNIX sockets within one process: socketpair (stream and datagram), named and
 * abstract listeners, readiness through poll and epoll, options, errors. Prints one line
 * per check; the output is the same natively and under chaosreplay. */
#define _GNU_SOURCE
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

/* errno names (musl has no strerrorname_np) */
static const char *errname(int e) {
    static const struct { int e; const char *name; } names[] = {
        {EAGAIN, "EAGAIN"}, {EPIPE, "EPIPE"}, {ECONNRESET, "ECONNRESET"},
        {ECONNREFUSED, "ECONNREFUSED"}, {ENOENT, "ENOENT"}, {EADDRINUSE, "EADDRINUSE"},
        {ENOTCONN, "ENOTCONN"}, {EINVAL, "EINVAL"}, {ENOTSOCK, "ENOTSOCK"},
        {EOPNOTSUPP, "EOPNOTSUPP"}, {ENOPROTOOPT, "ENOPROTOOPT"}, {EISCONN, "EISCONN"},
        {EDESTADDRREQ, "EDESTADDRREQ"}, {EMSGSIZE, "EMSGSIZE"}, {ENETUNREACH, "ENETUNREACH"},
        {EADDRNOTAVAIL, "EADDRNOTAVAIL"}, {EPERM, "EPERM"}, {EAFNOSUPPORT, "EAFNOSUPPORT"},
        {ESOCKTNOSUPPORT, "ESOCKTNOSUPPORT"}, {EPROTONOSUPPORT, "EPROTONOSUPPORT"},
        {ETIMEDOUT, "ETIMEDOUT"}, {EBADF, "EBADF"},
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

static int revents(int fd, short events) {
    struct pollfd pfd = {fd, events, 0};
    poll(&pfd, 1, 0);
    return pfd.revents;
}

static socklen_t unix_addr(struct sockaddr_un *sa, const char *path, int abstract) {
    memset(sa, 0, sizeof *sa);
    sa->sun_family = AF_UNIX;
    if (abstract) {
        memcpy(sa->sun_path + 1, path, strlen(path));
        return (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + strlen(path));
    }
    strcpy(sa->sun_path, path);
    return (socklen_t)sizeof *sa;
}

/* a name as text: @name for an abstract one (its length comes from the address length) */
static const char *name_of(const struct sockaddr_un *sa, socklen_t len) {
    static char text[120];
    size_t n = len > offsetof(struct sockaddr_un, sun_path) ? len - offsetof(struct sockaddr_un, sun_path) : 0;
    if (n && sa->sun_path[0] == 0) {
        snprintf(text, sizeof text, "@%.*s", (int)(n - 1), sa->sun_path + 1);
        return text;
    }
    snprintf(text, sizeof text, "%.*s", (int)n, sa->sun_path);
    return text;
}

static void stream_pair(void) {
    int sv[2];
    char buf[64];
    show("socketpair stream", socketpair(AF_UNIX, SOCK_STREAM, 0, sv));
    show("write hello", write(sv[0], "hello", 5));
    show("send world", send(sv[0], " world", 6, 0));
    int pending = -1;
    ioctl(sv[1], FIONREAD, &pending);
    printf("FIONREAD %d\n", pending);
    printf("poll in %#x\n", revents(sv[1], POLLIN | POLLOUT | POLLRDHUP));
    ssize_t n = recv(sv[1], buf, 3, MSG_PEEK);
    printf("peek %zd %.*s\n", n, (int)n, buf);
    n = recv(sv[1], buf, sizeof buf, MSG_WAITALL & 0);
    printf("recv %zd %.*s\n", n, (int)n, buf);
    show("recv empty dontwait", recv(sv[1], buf, sizeof buf, MSG_DONTWAIT));
    show("write two", write(sv[0], "ab", 2) + write(sv[0], "cd", 2));
    n = recv(sv[1], buf, 4, MSG_WAITALL);
    printf("waitall %zd %.*s\n", n, (int)n, buf);
    show("shutdown wr", shutdown(sv[0], SHUT_WR));
    printf("poll after shutdown %#x\n", revents(sv[1], POLLIN | POLLOUT | POLLRDHUP));
    show("read eof", read(sv[1], buf, sizeof buf));
    show("send after shutdown", send(sv[0], "x", 1, MSG_NOSIGNAL));
    show("reverse direction", write(sv[1], "back", 4));
    show("read reverse", read(sv[0], buf, sizeof buf));
    close(sv[1]);
    printf("poll after close %#x\n", revents(sv[0], POLLIN | POLLOUT | POLLRDHUP));
    show("send to closed", send(sv[0], "x", 1, MSG_NOSIGNAL));
    close(sv[0]);
}

static void reset_on_unread(void) {
    int sv[2];
    char buf[8];
    socketpair(AF_UNIX, SOCK_STREAM, 0, sv);
    write(sv[0], "unread", 6);
    close(sv[1]);
    show("read after peer closed unread", read(sv[0], buf, sizeof buf));
    show("read again", read(sv[0], buf, sizeof buf));
    close(sv[0]);
}

static void dgram_pair(void) {
    int sv[2];
    char buf[64];
    show("socketpair dgram", socketpair(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0, sv));
    send(sv[0], "one", 3, 0);
    send(sv[0], "second", 6, 0);
    int pending = -1;
    ioctl(sv[1], FIONREAD, &pending);
    printf("FIONREAD dgram %d\n", pending);
    show("recv one", recv(sv[1], buf, sizeof buf, 0));
    show("recv truncated", recv(sv[1], buf, 3, 0));
    send(sv[0], "longer", 6, 0);
    show("recv MSG_TRUNC", recv(sv[1], buf, 2, MSG_TRUNC));
    struct msghdr msg = {0};
    struct iovec iov = {buf, 2};
    send(sv[0], "abcdef", 6, 0);
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    show("recvmsg", recvmsg(sv[1], &msg, 0));
    printf("msg_flags truncated %d\n", (msg.msg_flags & MSG_TRUNC) != 0);
    show("dontwait empty", recv(sv[1], buf, sizeof buf, MSG_DONTWAIT));
    close(sv[0]);
    close(sv[1]);
}

static void named_stream(const char *name, int abstract) {
    struct sockaddr_un sa, got;
    socklen_t len = unix_addr(&sa, name, abstract), glen;
    char buf[64];
    if (!abstract)
        unlink(name);
    int server = socket(AF_UNIX, SOCK_STREAM, 0);
    show("bind", bind(server, (struct sockaddr *)&sa, len));
    int other = socket(AF_UNIX, SOCK_STREAM, 0);
    show("bind in use", bind(other, (struct sockaddr *)&sa, len));
    int client = socket(AF_UNIX, SOCK_STREAM, 0);
    show("connect before listen", connect(client, (struct sockaddr *)&sa, len));
    show("listen", listen(server, 4));
    int accepting = -1;
    socklen_t olen = sizeof accepting;
    getsockopt(server, SOL_SOCKET, SO_ACCEPTCONN, &accepting, &olen);
    printf("SO_ACCEPTCONN %d\n", accepting);
    printf("poll listener idle %#x\n", revents(server, POLLIN));
    show("connect", connect(client, (struct sockaddr *)&sa, len));
    printf("poll listener pending %#x\n", revents(server, POLLIN));
    glen = sizeof got;
    int conn = accept4(server, (struct sockaddr *)&got, &glen, SOCK_NONBLOCK);
    printf("accept %s addrlen %u\n", conn >= 0 ? "ok" : errname(errno), glen);
    glen = sizeof got;
    getpeername(client, (struct sockaddr *)&got, &glen);
    printf("client peer %s len %u\n", name_of(&got, glen), glen);
    glen = sizeof got;
    getsockname(conn, (struct sockaddr *)&got, &glen);
    printf("accepted name %s\n", name_of(&got, glen));
    show("getpeername accepted", getpeername(conn, (struct sockaddr *)&got, &glen) == 0 ? glen : -1);
    show("client send", send(client, "ping", 4, 0));
    show("server recv", recv(conn, buf, sizeof buf, 0));
    show("server recv nonblock", recv(conn, buf, sizeof buf, 0));
    struct ucred cred;
    olen = sizeof cred;
    getsockopt(conn, SOL_SOCKET, SO_PEERCRED, &cred, &olen);
    printf("peercred uid %u gid %u len %u\n", cred.uid, cred.gid, olen);
    int pending_client = socket(AF_UNIX, SOCK_STREAM, 0);
    connect(pending_client, (struct sockaddr *)&sa, len);
    close(server);
    show("read from never-accepted", read(pending_client, buf, sizeof buf));
    close(pending_client);
    close(conn);
    close(client);
    close(other);
    if (!abstract)
        unlink(name);
}

static void named_dgram(void) {
    struct sockaddr_un a, b, from;
    socklen_t alen = unix_addr(&a, "cr_dgram_a", 0), blen = unix_addr(&b, "cr_dgram_b", 0);
    char buf[32];
    unlink("cr_dgram_a");
    unlink("cr_dgram_b");
    int sa = socket(AF_UNIX, SOCK_DGRAM, 0), sb = socket(AF_UNIX, SOCK_DGRAM, 0);
    bind(sa, (struct sockaddr *)&a, alen);
    bind(sb, (struct sockaddr *)&b, blen);
    show("sendto b", sendto(sa, "to-b", 4, 0, (struct sockaddr *)&b, blen));
    socklen_t flen = sizeof from;
    ssize_t n = recvfrom(sb, buf, sizeof buf, 0, (struct sockaddr *)&from, &flen);
    printf("recvfrom %zd %.*s from %s\n", n, (int)n, buf, from.sun_path);
    show("send unconnected", send(sa, "x", 1, 0));
    show("sendto nowhere", sendto(sa, "x", 1, 0, (struct sockaddr *)&a, 0));
    struct sockaddr_un none;
    socklen_t nlen = unix_addr(&none, "cr_no_such_socket", 0);
    show("sendto missing", sendto(sa, "x", 1, 0, (struct sockaddr *)&none, nlen));
    show("connect b", connect(sa, (struct sockaddr *)&b, blen));
    int filled = 0;
    while (send(sa, "q", 1, MSG_DONTWAIT) == 1 && filled < 100)
        filled++;
    printf("queued before blocking %d (%s)\n", filled, errname(errno));
    show("recv one back", recv(sb, buf, sizeof buf, 0));
    show("send again", send(sa, "q", 1, MSG_DONTWAIT));
    int sc = socket(AF_UNIX, SOCK_DGRAM, 0);
    show("third party to connected b", sendto(sc, "x", 1, 0, (struct sockaddr *)&a, alen));
    close(sc);
    close(sa);
    close(sb);
    unlink("cr_dgram_a");
    unlink("cr_dgram_b");
}

static void autobind_and_options(void) {
    int s = socket(AF_UNIX, SOCK_DGRAM, 0);
    struct sockaddr_un sa = {.sun_family = AF_UNIX}, got;
    show("autobind", bind(s, (struct sockaddr *)&sa, sizeof(sa_family_t)));
    socklen_t glen = sizeof got;
    getsockname(s, (struct sockaddr *)&got, &glen);
    printf("autobind len %u abstract %d\n", glen, got.sun_path[0] == 0);
    int value = 4096, out = 0;
    socklen_t olen = sizeof out;
    setsockopt(s, SOL_SOCKET, SO_SNDBUF, &value, sizeof value);
    getsockopt(s, SOL_SOCKET, SO_SNDBUF, &out, &olen);
    printf("SO_SNDBUF set 4096 reads %d\n", out);
    getsockopt(s, SOL_SOCKET, SO_TYPE, &out, &olen);
    printf("SO_TYPE %d\n", out);
    getsockopt(s, SOL_SOCKET, SO_DOMAIN, &out, &olen);
    printf("SO_DOMAIN %d\n", out);
    getsockopt(s, SOL_SOCKET, SO_ERROR, &out, &olen);
    printf("SO_ERROR %d\n", out);
    value = 1;
    show("SO_REUSEADDR", setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &value, sizeof value));
    getsockopt(s, SOL_SOCKET, SO_REUSEADDR, &out, &olen);
    printf("SO_REUSEADDR reads %d\n", out);
    struct timeval tv = {2, 500000}, tv_out;
    olen = sizeof tv_out;
    setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    getsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv_out, &olen);
    printf("SO_RCVTIMEO %ld.%06ld\n", (long)tv_out.tv_sec, (long)tv_out.tv_usec);
    show("TCP_NODELAY on unix", setsockopt(s, IPPROTO_TCP, 1, &value, sizeof value));
    show("unknown option", setsockopt(s, SOL_SOCKET, 9999, &value, sizeof value));
    show("not a socket", send(1, "x", 0, 0));
    close(s);
}

static void epoll_rdhup(void) {
    int sv[2];
    socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv);
    int ep = epoll_create1(0);
    struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP | EPOLLET, .data.fd = sv[1]}, out[4];
    epoll_ctl(ep, EPOLL_CTL_ADD, sv[1], &ev);
    show("epoll idle", epoll_wait(ep, out, 4, 0));
    write(sv[0], "z", 1);
    int n = epoll_wait(ep, out, 4, 0);
    printf("epoll data %d events %#x\n", n, n > 0 ? out[0].events : 0);
    show("epoll edge again", epoll_wait(ep, out, 4, 0));
    close(sv[0]);
    n = epoll_wait(ep, out, 4, 0);
    printf("epoll peer closed %d events %#x\n", n, n > 0 ? out[0].events : 0);
    close(sv[1]);
    close(ep);
}

/* SO_RCVTIMEO and SO_SNDTIMEO bound plain read and write too, not only recv and send. */
static void read_write_timeouts(void) {
    int sv[2];
    socketpair(AF_UNIX, SOCK_STREAM, 0, sv);
    struct timeval tv = {0, 50000};
    setsockopt(sv[1], SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    char buf[64];
    show("read past SO_RCVTIMEO", read(sv[1], buf, sizeof buf));
    show("recv past SO_RCVTIMEO", recv(sv[1], buf, sizeof buf, 0));
    setsockopt(sv[0], SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    static char big[1 << 22];
    long sent = write(sv[0], big, sizeof big);  /* fills the peer's buffer, then times out */
    printf("write past SO_SNDTIMEO: %s\n", sent > 0 && sent < (long)sizeof big ? "partial"
                                                                               : "other");
    show("write when full past SO_SNDTIMEO", write(sv[0], big, sizeof big));
    close(sv[0]);
    close(sv[1]);
}

int main(void) {
    setvbuf(stdout, NULL, _IONBF, 0);
    stream_pair();
    reset_on_unread();
    dgram_pair();
    named_stream("cr_stream.sock", 0);
    named_stream("cr-abstract", 1);
    named_dgram();
    autobind_and_options();
    epoll_rdhup();
    read_write_timeouts();
    return 0;
}
