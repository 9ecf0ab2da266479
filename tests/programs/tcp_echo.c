/* A TCP echo pair for two nodes (or two processes on one host):
 *   tcp_echo server PORT        echoes each connection until end of file, one at a time,
 *                               and keeps running (an exiting node would take its
 *                               connections down with it)
 *   tcp_echo client HOST PORT N sends N bytes (polling, so neither side's buffer fills
 *                               for good), half-closes, checks the echo
 *   tcp_echo pingpong HOST PORT N
 *                               sends N 64-byte messages, each once the echo of the
 *                               previous one is back (one write and one read per message)
 *   tcp_echo idle               exits at once (a node that is down)
 * Output names no host-dependent value. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
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
    case EPIPE: return "EPIPE";
    case EHOSTUNREACH: return "EHOSTUNREACH";
    default: return "E?";
    }
}

static int server(int port) {
    int s = socket(AF_INET, SOCK_STREAM, 0), one = 1;
    setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(port)};
    if (bind(s, (struct sockaddr *)&sa, sizeof sa) < 0 || listen(s, 4) < 0) {
        perror("bind/listen");
        return 1;
    }
    for (;;) {
    struct sockaddr_in from;
    socklen_t len = sizeof from;
    int c = accept(s, (struct sockaddr *)&from, &len);
    if (c < 0) {
        perror("accept");
        return 1;
    }
    char text[32], buf[8192];
    inet_ntop(AF_INET, &from.sin_addr, text, sizeof text);
    printf("accepted %s:%d\n", text, ntohs(from.sin_port));
    size_t total = 0;
    ssize_t n;
    while ((n = read(c, buf, sizeof buf)) > 0) {
        for (ssize_t off = 0; off < n;) {
            ssize_t w = write(c, buf + off, (size_t)(n - off));
            if (w < 0) {
                printf("write: %s\n", errname(errno));
                break;
            }
            off += w;
        }
        total += (size_t)n;
    }
    printf("echoed %zu bytes, then %s\n", total, n == 0 ? "end of file" : errname(errno));
    close(c);
    }
}

static int client(const char *host, int port, size_t size) {
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(port)};
    inet_pton(AF_INET, host, &sa.sin_addr);
    if (connect(s, (struct sockaddr *)&sa, sizeof sa) < 0) {
        printf("connect: %s\n", errname(errno));
        return 0;
    }
    printf("connected\n");
    fcntl(s, F_SETFL, O_NONBLOCK);
    char *out = malloc(size + 1), buf[8192];
    for (size_t i = 0; i < size; i++)
        out[i] = (char)('a' + (i * 7 + i / 1000) % 26);
    size_t sent = 0, got = 0, mismatches = 0;
    int shut = 0;
    while (1) {
        if (sent == size && !shut) {
            shutdown(s, SHUT_WR);
            shut = 1;
        }
        struct pollfd pfd = {s, (short)(POLLIN | (sent < size ? POLLOUT : 0)), 0};
        poll(&pfd, 1, -1);
        if (pfd.revents & POLLOUT) {
            ssize_t w = send(s, out + sent, size - sent, 0);
            if (w > 0)
                sent += (size_t)w;
        }
        if (pfd.revents & (POLLIN | POLLHUP | POLLERR)) {
            ssize_t n = recv(s, buf, sizeof buf, 0);
            if (n == 0)
                break;
            if (n < 0) {
                if (errno == EAGAIN)
                    continue;
                printf("recv: %s\n", errname(errno));
                return 0;
            }
            for (ssize_t i = 0; i < n; i++)
                mismatches += got + (size_t)i >= size || buf[i] != out[got + (size_t)i];
            got += (size_t)n;
        }
    }
    printf("got back %zu of %zu bytes, %zu differ\n", got, size, mismatches);
    close(s);
    return 0;
}

static int pingpong(const char *host, int port, int rounds) {
    int s = socket(AF_INET, SOCK_STREAM, 0), one = 1, done = 0;
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(port)};
    inet_pton(AF_INET, host, &sa.sin_addr);
    setsockopt(s, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (connect(s, (struct sockaddr *)&sa, sizeof sa) < 0) {
        printf("connect: %s\n", errname(errno));
        return 0;
    }
    char msg[64];
    for (; done < rounds; done++) {
        memset(msg, 'a' + done % 26, sizeof msg);
        if (write(s, msg, sizeof msg) != (ssize_t)sizeof msg)
            break;
        size_t got = 0;
        while (got < sizeof msg) {
            ssize_t n = read(s, msg + got, sizeof msg - got);
            if (n <= 0)
                break;
            got += (size_t)n;
        }
        if (got < sizeof msg || msg[0] != 'a' + done % 26)
            break;
    }
    printf("pingpong %d of %d\n", done, rounds);
    close(s);
    return 0;
}

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (argc == 3 && strcmp(argv[1], "server") == 0)
        return server(atoi(argv[2]));
    if (argc == 5 && strcmp(argv[1], "client") == 0)
        return client(argv[2], atoi(argv[3]), (size_t)atol(argv[4]));
    if (argc == 5 && strcmp(argv[1], "pingpong") == 0)
        return pingpong(argv[2], atoi(argv[3]), atoi(argv[4]));
    if (argc == 2 && strcmp(argv[1], "idle") == 0)
        return 0;
    fprintf(stderr, "usage: tcp_echo server PORT | client HOST PORT BYTES | pingpong HOST PORT N | idle\n");
    return 64;
}
