/* A UDP echo pair for two nodes (or two processes on one host):
 *   udp_echo server PORT             echoes each datagram upper-cased until "quit"
 *   udp_echo client HOST PORT COUNT  sends COUNT numbered messages, retrying on a 100 ms
 *                                    timeout, then "quit"
 * The client's output names no host-dependent value, so it is the same natively (both on
 * 127.0.0.1) and between two nodes of a scenario. */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

static int server(int port) {
    int s = socket(AF_INET, SOCK_DGRAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(port),
                             .sin_addr.s_addr = htonl(INADDR_ANY)};
    if (bind(s, (struct sockaddr *)&sa, sizeof sa) < 0) {
        perror("bind");
        return 1;
    }
    char buf[256], text[32];
    for (;;) {
        struct sockaddr_in from;
        socklen_t len = sizeof from;
        ssize_t n = recvfrom(s, buf, sizeof buf - 1, 0, (struct sockaddr *)&from, &len);
        if (n < 0) {
            perror("recvfrom");
            return 1;
        }
        buf[n] = 0;
        inet_ntop(AF_INET, &from.sin_addr, text, sizeof text);
        printf("got %s from %s:%d\n", buf, text, ntohs(from.sin_port));
        fflush(stdout);
        if (strcmp(buf, "quit") == 0)
            return 0;
        for (ssize_t i = 0; i < n; i++)
            buf[i] = (char)toupper((unsigned char)buf[i]);
        sendto(s, buf, (size_t)n, 0, (struct sockaddr *)&from, len);
    }
}

static int client(const char *host, int port, int count) {
    int s = socket(AF_INET, SOCK_DGRAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(port)};
    inet_pton(AF_INET, host, &sa.sin_addr);
    struct timeval tv = {0, 100000};
    setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    char msg[64], buf[256];
    int timeouts = 0;
    for (int i = 0; i < count; i++) {
        snprintf(msg, sizeof msg, "msg %d", i);
        sendto(s, msg, strlen(msg), 0, (struct sockaddr *)&sa, sizeof sa);
        ssize_t n = recv(s, buf, sizeof buf - 1, 0);
        if (n < 0 && errno == EAGAIN) {
            timeouts++;
            i--;  /* the server may not be up yet, or the datagram was lost: again */
            if (timeouts > 50)
                return 2;
            continue;
        }
        buf[n < 0 ? 0 : n] = 0;
        printf("reply %d: %s\n", i, buf);
    }
    sendto(s, "quit", 4, 0, (struct sockaddr *)&sa, sizeof sa);
    printf("done\n");
    return 0;
}

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (argc == 3 && strcmp(argv[1], "server") == 0)
        return server(atoi(argv[2]));
    if (argc == 5 && strcmp(argv[1], "client") == 0)
        return client(argv[2], atoi(argv[3]), atoi(argv[4]));
    fprintf(stderr, "usage: udp_echo server PORT | client HOST PORT COUNT\n");
    return 64;
}
