/*
 * nats_check.c - a NATS client (the text protocol over a plain socket) that checks core
 * NATS's promise through the SDK: messages from one publisher reach a subscriber in the
 * order they were published, never twice (they may be lost: delivery is at most once).
 *
 *   nats_check sub HOST SUBJECT N   subscribe; print "got <payload>" per message and assert
 *                                   each number is above the last (CR_ALWAYS); exit after
 *                                   m<N-1>, which must sometimes arrive (CR_SOMETIMES)
 *   nats_check pub HOST SUBJECT N   after 1 s, publish m0..m<N-1> 100 ms apart
 *
 * Connecting is retried every 200 ms until the server answers.
 */
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "chaosreplay.h"
static int dial(const char *host) {
    struct addrinfo hints = {.ai_family = AF_INET, .ai_socktype = SOCK_STREAM}, *res;
    for (;;) {
        if (getaddrinfo(host, "4222", &hints, &res) == 0) {
            int fd = socket(AF_INET, SOCK_STREAM, 0);
            if (connect(fd, res->ai_addr, res->ai_addrlen) == 0) { freeaddrinfo(res); return fd; }
            close(fd); freeaddrinfo(res);
        }
        struct timespec ts = {0, 200000000}; nanosleep(&ts, NULL);
    }
}
int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (argc != 5) {
        fprintf(stderr, "usage: nats_check sub|pub HOST SUBJECT N\n");
        return 2;
    }
    cr_setup_complete();
    int fd = dial(argv[2]), n = atoi(argv[4]);
    char buf[65536]; size_t got = 0;
    dprintf(fd, "CONNECT {\"verbose\":false}\r\n");
    if (strcmp(argv[1], "sub") == 0) {
        dprintf(fd, "SUB %s 1\r\nPING\r\n", argv[3]);
        int last = -1;
        for (;;) {
            ssize_t r = read(fd, buf + got, sizeof buf - 1 - got);
            if (r <= 0) { printf("read ended\n"); return 1; }
            got += (size_t)r; buf[got] = 0;
            char *line;
            while ((line = strstr(buf, "\r\n")) != NULL) {
                *line = 0;
                if (strncmp(buf, "PING", 4) == 0) dprintf(fd, "PONG\r\n");
                else if (strncmp(buf, "MSG ", 4) == 0) {
                    char *payload = line + 2, *end = strstr(payload, "\r\n");
                    if (!end) { *line = '\r'; break; }
                    *end = 0; printf("got %s\n", payload);
                    int number = atoi(payload + 1);
                    CR_ALWAYS(number > last, "nats: in publish order, never twice");
                    last = number;
                    if (number == n - 1) {
                        CR_SOMETIMES(1, "nats: the last message arrived");
                        return 0;
                    }
                    line = end;
                } else if (buf[0]) printf("server: %.60s\n", buf);
                size_t used = (size_t)(line + 2 - buf);
                memmove(buf, line + 2, got - used); got -= used; buf[got] = 0;
            }
        }
        return 0;
    }
    struct timespec wait = {1, 0}; nanosleep(&wait, NULL);
    for (int i = 0; i < n; i++) {
        char msg[32]; int len = snprintf(msg, sizeof msg, "m%d", i);
        dprintf(fd, "PUB %s %d\r\n%s\r\n", argv[3], len, msg);
        struct timespec ts = {0, 100000000}; nanosleep(&ts, NULL);
    }
    dprintf(fd, "PING\r\n"); sleep(1);
    printf("published %d\n", n);
    return 0;
}
