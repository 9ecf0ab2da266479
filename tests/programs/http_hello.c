/* A minimal HTTP/1.0 server for tests: answers every request on PORT with "hello from
 * <path>" and closes the connection; runs until killed. */
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

int main(int argc, char **argv) {
    int port = argc > 1 ? atoi(argv[1]) : 8080, one = 1;
    int s = socket(AF_INET6, SOCK_STREAM, 0);  /* dual stack, as servers listen today */
    setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in6 sa = {.sin6_family = AF_INET6, .sin6_port = htons(port),
                              .sin6_addr = in6addr_any};
    if (bind(s, (struct sockaddr *)&sa, sizeof sa) < 0 || listen(s, 16) < 0) {
        perror("bind/listen");
        return 1;
    }
    setvbuf(stdout, NULL, _IOLBF, 0);
    for (;;) {
        int c = accept(s, NULL, NULL);
        if (c < 0) {
            perror("accept");
            return 1;
        }
        char req[2048] = "";
        size_t len = 0;
        while (len < sizeof req - 1 && !strstr(req, "\r\n\r\n")) {
            ssize_t n = read(c, req + len, sizeof req - 1 - len);
            if (n <= 0)
                break;
            len += (size_t)n;
            req[len] = 0;
        }
        char path[256] = "?", body[512], head[256];
        sscanf(req, "GET %255s", path);
        int blen = snprintf(body, sizeof body, "hello from %s\n", path);
        int hlen = snprintf(head, sizeof head,
                            "HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n"
                            "Content-Length: %d\r\nConnection: close\r\n\r\n", blen);
        /* a client that is gone (a probe) must not kill the server with SIGPIPE */
        send(c, head, (size_t)hlen, MSG_NOSIGNAL);
        send(c, body, (size_t)blen, MSG_NOSIGNAL);
        printf("served %s\n", path);
        close(c);
    }
}
