/* UDP over the loopback within one process: ephemeral ports, sendto/recvfrom, connect,
 * MSG_PEEK/MSG_TRUNC, FIONREAD, poll, SO_REUSEADDR, dual-stack AF_INET6, ICMP port
 * unreachable as ECONNREFUSED, SO_RCVTIMEO. Ports are printed only as relations (Linux
 * picks ephemeral ports at random), so the output is the same natively and under
 * chaosreplay. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

static const char *errname(int e) {
    static const struct { int e; const char *name; } names[] = {
        {EAGAIN, "EAGAIN"}, {ECONNREFUSED, "ECONNREFUSED"}, {EADDRINUSE, "EADDRINUSE"},
        {ENOTCONN, "ENOTCONN"}, {EINVAL, "EINVAL"}, {EDESTADDRREQ, "EDESTADDRREQ"},
        {EMSGSIZE, "EMSGSIZE"}, {EADDRNOTAVAIL, "EADDRNOTAVAIL"}, {EOPNOTSUPP, "EOPNOTSUPP"},
        {EAFNOSUPPORT, "EAFNOSUPPORT"}, {ENOPROTOOPT, "ENOPROTOOPT"},
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

static struct sockaddr_in v4(const char *ip, int port) {
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(port)};
    inet_pton(AF_INET, ip, &sa.sin_addr);
    return sa;
}

static int port_of(int fd) {
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    getsockname(fd, (struct sockaddr *)&ss, &len);
    return ss.ss_family == AF_INET ? ntohs(((struct sockaddr_in *)&ss)->sin_port)
                                   : ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
}

int main(void) {
    setvbuf(stdout, NULL, _IONBF, 0);
    char buf[128], text[64];
    int a = socket(AF_INET, SOCK_DGRAM, 0), b = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0);
    struct sockaddr_in any = v4("127.0.0.1", 0);
    show("bind a ephemeral", bind(a, (struct sockaddr *)&any, sizeof any));
    int pa = port_of(a);
    printf("a port ephemeral %d\n", pa >= 32768 && pa <= 60999);
    struct sockaddr_in to_a = v4("127.0.0.1", pa);
    show("b unbound port", port_of(b));
    show("sendto a", sendto(b, "hello", 5, 0, (struct sockaddr *)&to_a, sizeof to_a));
    int pb = port_of(b);
    printf("b autobound %d distinct %d\n", pb >= 32768 && pb <= 60999, pb != pa);
    int pending = -1;
    ioctl(a, FIONREAD, &pending);
    printf("FIONREAD %d\n", pending);
    struct pollfd pfd = {a, POLLIN | POLLOUT, 0};
    poll(&pfd, 1, 0);
    printf("poll %#x\n", pfd.revents);
    show("peek", recv(a, buf, sizeof buf, MSG_PEEK));
    struct sockaddr_in from;
    socklen_t flen = sizeof from;
    ssize_t n = recvfrom(a, buf, 2, MSG_TRUNC, (struct sockaddr *)&from, &flen);
    inet_ntop(AF_INET, &from.sin_addr, text, sizeof text);
    printf("recvfrom trunc %zd from %s port-is-b %d len %u\n", n, text, ntohs(from.sin_port) == pb, flen);
    show("b nothing", recv(b, buf, sizeof buf, 0));
    show("connect b->a", connect(b, (struct sockaddr *)&to_a, sizeof to_a));
    show("send connected", send(b, "again", 5, 0));
    show("recv", recv(a, buf, sizeof buf, 0));
    struct sockaddr_in peer;
    socklen_t plen = sizeof peer;
    getpeername(b, (struct sockaddr *)&peer, &plen);
    printf("peer is a %d\n", ntohs(peer.sin_port) == pa);
    struct sockaddr_in local;
    socklen_t llen = sizeof local;
    getsockname(b, (struct sockaddr *)&local, &llen);
    inet_ntop(AF_INET, &local.sin_addr, text, sizeof text);
    printf("b local after connect %s\n", text);
    struct sockaddr_in from_a = v4("127.0.0.1", pb);
    sendto(a, "reply", 5, 0, (struct sockaddr *)&from_a, sizeof from_a);
    show("b recv reply", recv(b, buf, sizeof buf, 0));
    int c = socket(AF_INET, SOCK_DGRAM, 0);
    show("c to connected b", sendto(c, "stranger", 8, 0, (struct sockaddr *)&from_a, sizeof from_a));
    show("b ignores stranger", recv(b, buf, sizeof buf, MSG_DONTWAIT));
    show("bind bound again", bind(c, (struct sockaddr *)&to_a, sizeof to_a));
    int d = socket(AF_INET, SOCK_DGRAM, 0);
    show("bind in use", bind(d, (struct sockaddr *)&to_a, sizeof to_a));
    close(d);
    show("unconnected send", send(c, "x", 1, 0));
    static char big[70000];
    show("too big", sendto(c, big, 65508, 0, (struct sockaddr *)&to_a, sizeof to_a));
    struct sockaddr_in far = v4("10.99.99.99", 9);
    show("bind foreign", bind(c, (struct sockaddr *)&far, sizeof far));
    close(c);

    int r1 = socket(AF_INET, SOCK_DGRAM, 0), r2 = socket(AF_INET, SOCK_DGRAM, 0), one = 1;
    setsockopt(r1, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    setsockopt(r2, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in shared = v4("127.0.0.1", 0);
    bind(r1, (struct sockaddr *)&shared, sizeof shared);
    shared.sin_port = htons(port_of(r1));
    show("reuseaddr shared bind", bind(r2, (struct sockaddr *)&shared, sizeof shared));
    close(r1);
    close(r2);

    /* ICMP port unreachable: a (closed) port answers a connected socket with ECONNREFUSED */
    close(a);
    show("send to closed port", send(b, "lost", 4, 0));
    show("recv refused", recv(b, buf, sizeof buf, 0));
    show("send after error", send(b, "lost", 4, 0) >= 0);
    struct sockaddr unspec = {.sa_family = AF_UNSPEC};
    show("disconnect", connect(b, &unspec, sizeof unspec));
    show("send after disconnect", send(b, "x", 1, 0));
    close(b);

    int six = socket(AF_INET6, SOCK_DGRAM, 0), v6only = -1;
    socklen_t olen = sizeof v6only;
    getsockopt(six, IPPROTO_IPV6, IPV6_V6ONLY, &v6only, &olen);
    printf("V6ONLY default %d\n", v6only);
    struct sockaddr_in6 any6 = {.sin6_family = AF_INET6, .sin6_addr = in6addr_any};
    show("bind ::", bind(six, (struct sockaddr *)&any6, sizeof any6));
    int four = socket(AF_INET, SOCK_DGRAM, 0);
    struct sockaddr_in to_six = v4("127.0.0.1", port_of(six));
    show("v4 to dual-stack", sendto(four, "mapped", 6, 0, (struct sockaddr *)&to_six, sizeof to_six));
    struct sockaddr_in6 from6;
    socklen_t f6 = sizeof from6;
    n = recvfrom(six, buf, sizeof buf, 0, (struct sockaddr *)&from6, &f6);
    inet_ntop(AF_INET6, &from6.sin6_addr, text, sizeof text);
    printf("v6 got %zd from %s len %u\n", n, text, f6);
    struct sockaddr_in6 lo6 = {.sin6_family = AF_INET6, .sin6_addr = in6addr_loopback,
                               .sin6_port = htons(port_of(six))};
    int other6 = socket(AF_INET6, SOCK_DGRAM, 0);
    show("::1 to ::", sendto(other6, "six", 3, 0, (struct sockaddr *)&lo6, sizeof lo6));
    f6 = sizeof from6;
    n = recvfrom(six, buf, sizeof buf, 0, (struct sockaddr *)&from6, &f6);
    inet_ntop(AF_INET6, &from6.sin6_addr, text, sizeof text);
    printf("v6 got %zd from %s\n", n, text);
    show("IPV6 option on v4", setsockopt(four, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one));

    struct timeval tv = {0, 50000};
    setsockopt(four, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    show("recv times out", recv(four, buf, sizeof buf, 0));
    close(four);
    close(six);
    close(other6);
    return 0;
}
