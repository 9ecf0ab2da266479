/*
 * redis_check.c - a redis client that checks, through the SDK, that writes the master
 * acknowledged are never lost: the property a replicated redis promises only when the
 * master persists its writes before answering.
 *
 *   redis_check MASTER REPLICA [REPLICA...] ROUNDS
 *
 * Every 100 ms: INCR the counter `c` on MASTER (port 6379) and remember the highest value
 * acknowledged; then GET `c` from MASTER and from each REPLICA. A master value below the highest
 * acknowledged one means an acknowledged write was lost (CR_ALWAYS fails); so does a replica
 * ahead of the master's answer just before (only this client writes); a replica that has
 * caught up with the master at least once is CR_SOMETIMES. (An INCR whose reply is lost may
 * still have been applied: values above `acked` are not errors.) Connections that fail or time out (500 ms) are
 * dropped and made again next round, so partitions, kills and restarts are survived.
 * Prints one line per round: "round <i> acked <a> master <m> replica <r>..." (one value per
 * replica; -1: no answer).
 */
#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "chaosreplay.h"

struct conn {
    const char *host;
    int fd;
};

static void drop(struct conn *c)
{
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
}

/* Connect (if not connected) with 500 ms timeouts on every read and write. */
static int connected(struct conn *c)
{
    if (c->fd >= 0)
        return 1;
    struct addrinfo hints = {.ai_family = AF_INET, .ai_socktype = SOCK_STREAM}, *res = NULL;
    if (getaddrinfo(c->host, "6379", &hints, &res) != 0 || res == NULL)
        return 0;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct timeval tv = {0, 500000};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    int rc = connect(fd, res->ai_addr, res->ai_addrlen);
    freeaddrinfo(res);
    if (rc < 0) {
        close(fd);
        return 0;
    }
    c->fd = fd;
    return 1;
}

/* Send one command (argv) and read an integer or bulk-string reply as a number:
 * INCR's ":n", GET's "$len\r\nn" (or $-1: 0). -1 on any failure (the connection drops). */
static long long command(struct conn *c, int argc, const char **argv)
{
    if (!connected(c))
        return -1;
    char out[256];
    int len = snprintf(out, sizeof out, "*%d\r\n", argc);
    for (int i = 0; i < argc; i++)
        len += snprintf(out + len, sizeof out - (size_t)len, "$%zu\r\n%s\r\n", strlen(argv[i]),
                        argv[i]);
    if (write(c->fd, out, (size_t)len) != len) {
        drop(c);
        return -1;
    }
    char in[256];
    size_t got = 0;
    for (;;) {  /* until a full reply: its first line, and the bulk line after "$n" */
        ssize_t n = read(c->fd, in + got, sizeof in - 1 - got);
        if (n <= 0) {
            drop(c);
            return -1;
        }
        got += (size_t)n;
        in[got] = 0;
        char *eol = strstr(in, "\r\n");
        if (eol == NULL)
            continue;
        if (in[0] == ':')
            return atoll(in + 1);
        if (in[0] == '$' && in[1] == '-')
            return 0;
        if (in[0] == '$') {
            char *value = eol + 2;
            if (strstr(value, "\r\n") == NULL)
                continue;
            return atoll(value);
        }
        drop(c);  /* an error reply (-LOADING, -READONLY...) or something unexpected */
        return -1;
    }
}

int main(int argc, char **argv)
{
    enum { MAX_REPLICAS = 8 };
    if (argc < 4 || argc - 3 > MAX_REPLICAS) {
        fprintf(stderr, "usage: redis_check MASTER REPLICA [REPLICA...] ROUNDS\n");
        return 2;
    }
    setvbuf(stdout, NULL, _IOLBF, 0);
    struct conn master = {argv[1], -1}, replicas[MAX_REPLICAS];
    int count = argc - 3, rounds = atoi(argv[argc - 1]);
    for (int r = 0; r < count; r++)
        replicas[r] = (struct conn){argv[2 + r], -1};
    long long acked = 0;
    const char *incr[] = {"INCR", "c"}, *get[] = {"GET", "c"};
    cr_setup_complete();
    for (int i = 0; i < rounds; i++) {
        long long value = command(&master, 2, incr);
        if (value > acked)
            acked = value;
        long long on_master = command(&master, 2, get);
        char line[256];
        int len = snprintf(line, sizeof line, "round %d acked %lld master %lld replica", i,
                           acked, on_master);
        CR_ALWAYS(on_master < 0 || on_master >= acked,
                  "redis: the master keeps every write it acknowledged");
        for (int r = 0; r < count; r++) {
            long long on_replica = command(&replicas[r], 2, get);
            len += snprintf(line + len, sizeof line - (size_t)len, " %lld", on_replica);
            /* Only this client writes, and nothing between the GETs: a replica holding
             * more than the master just answered means the master lost what it had. */
            CR_ALWAYS(on_master < 0 || on_replica <= on_master,
                      "redis: a replica is never ahead of the master");
            CR_SOMETIMES(on_replica == acked && acked > 0, "redis: a replica caught up");
        }
        puts(line);
        struct timespec pause = {0, 100 * 1000 * 1000};
        nanosleep(&pause, NULL);
    }
    return 0;
}
