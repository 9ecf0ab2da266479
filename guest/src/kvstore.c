/*
 * kvstore.c - the second demo: a primary-backup replicated key-value store over TCP, written
 * as an ordinary POSIX program (sockets, pthreads, one thread per connection), with a
 * client that checks what it reads through the SDK.
 *
 *   kvstore server PEER_HOST primary|backup [correct|early_ack]
 *   kvstore client SERVER_HOST SERVER_HOST
 *
 * The servers never call the SDK: they are what anyone would write without chaosreplay in
 * mind. Two servers, one primary and one backup, each the other's peer. The primary sends
 * every PUT to the backup and waits for its acknowledgement before it applies the write and
 * answers; a GET makes one round trip to the backup too, so a primary that has been
 * replaced can no longer answer. Every new replication connection starts with a snapshot of
 * the primary's whole store, which brings a backup that missed messages up to date.
 *
 * A client that gets no answer (a timeout, a refused connection, an error) turns to the
 * other server. A backup that holds the primary's store and receives a client's request
 * takes over: it becomes the primary of the next epoch, and its old primary, refused from
 * then on, becomes its backup. Until a snapshot has gone to the new backup the new primary
 * answers alone (its peer cannot take over before it has that snapshot). Each server keeps
 * its state in /data/kv.state (KV_DATA_DIR elsewhere), rewritten whole and fsynced before it
 * acknowledges anything, so a killed server restarts with what it acknowledged.
 *
 * The client issues random PUTs and GETs on sixteen keys and asserts, with CR_ALWAYS, that a
 * GET never returns a value older than one it wrote (and saw acknowledged) or read before.
 *
 * The planted bug `early_ack`: the primary answers a PUT before the backup has the write.
 * When the backup then takes over before the write reached it (a partition, a crash, lost
 * segments), an acknowledged write is gone. docs/demo.md describes the protocol, the
 * message format and how to find the bug.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "chaosreplay.h"

#define N_KEYS 16 /* few enough that a client often reads a key it wrote */
#define LINE_CAP 1024 /* a snapshot line: 16 keys of two numbers */
#define DEFAULT_PORT "7070"
#define REPL_TIMEOUT_MS 300    /* the primary gives up on its backup after this */
#define CLIENT_TIMEOUT_MS 1000 /* a client gives up on a server after this */
#define IDLE_TIMEOUT_MS 5000   /* a server drops a connection silent for this long */
#define STATE_MAGIC 0x4b565332u /* "KVS2" */

enum bug { BUG_NONE, BUG_EARLY_ACK };

struct entry {
    uint64_t version; /* 0: never written */
    uint64_t value;
};

/* Where a replication message stands: the sender's epoch, its start count (generation)
 * and the message's number within that start. Compared in this order. */
struct stamp {
    uint64_t epoch, generation, seq;
};

/* Everything a server keeps on disk, written as one fixed-size record. */
struct state {
    uint32_t magic;
    uint32_t is_primary;
    uint32_t synced;      /* backup: holds its primary's store of this epoch (may take over) */
    uint32_t peer_synced; /* primary: its backup may hold a snapshot, so every ack needs it */
    uint64_t epoch;       /* +1 at every takeover */
    uint64_t generation;  /* +1 at every start */
    struct stamp last;    /* backup: the newest replication message it applied */
    struct entry keys[N_KEYS];
};

struct line_reader {
    int fd;
    size_t len;
    char buf[LINE_CAP];
};

static enum bug bug = BUG_NONE;
static const char *peer_host;
static const char *port = DEFAULT_PORT;
static char state_path[256], tmp_path[256], data_dir[200];

/* One lock for the whole server: the primary holds it across the round trip to its backup,
 * which serializes its operations so replication messages leave in the order they apply. */
static pthread_mutex_t state_lock = PTHREAD_MUTEX_INITIALIZER;
static struct state st;
static uint64_t op_seq;                      /* primary: replication messages of this start */
static struct line_reader repl = {.fd = -1}; /* primary: its connection to the backup */

/* ------------------------------------------------------------------------------------ */
/* Lines over TCP                                                                         */

static void set_timeouts(int fd, int ms)
{
    struct timeval tv = {.tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000};
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    /* one small request, one small reply: Nagle would hold a reply for the peer's ACK */
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

/* Send the whole string; 0, or -1 on any error (a timeout included). */
static int send_line(int fd, const char *line)
{
    size_t len = strlen(line), done = 0;
    while (done < len) {
        ssize_t n = send(fd, line + done, len - done, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        done += (size_t)n;
    }
    return 0;
}

/* The next '\n'-terminated line, without the newline: 1, 0 at end of stream, -1 on an
 * error, a timeout or a line longer than the buffer. */
static int read_line(struct line_reader *r, char *out, size_t cap)
{
    for (;;) {
        char *nl = memchr(r->buf, '\n', r->len);
        if (nl != NULL) {
            size_t n = (size_t)(nl - r->buf);
            if (n >= cap)
                return -1;
            memcpy(out, r->buf, n);
            out[n] = 0;
            r->len -= n + 1;
            memmove(r->buf, nl + 1, r->len);
            return 1;
        }
        if (r->len == sizeof r->buf)
            return -1;
        ssize_t got = recv(r->fd, r->buf + r->len, sizeof r->buf - r->len, 0);
        if (got < 0 && errno == EINTR)
            continue;
        if (got <= 0)
            return got == 0 ? 0 : -1;
        r->len += (size_t)got;
    }
}

/* A connected socket to host:port with every wait bounded by timeout_ms, or -1. */
static int connect_to(const char *host, int timeout_ms)
{
    struct addrinfo hints = {.ai_family = AF_INET, .ai_socktype = SOCK_STREAM}, *res;
    if (getaddrinfo(host, port, &hints, &res) != 0)
        return -1;
    int fd = socket(res->ai_family, res->ai_socktype, 0);
    if (fd >= 0) {
        set_timeouts(fd, timeout_ms); /* SO_SNDTIMEO bounds connect() too */
        if (connect(fd, res->ai_addr, res->ai_addrlen) < 0) {
            close(fd);
            fd = -1;
        }
    }
    freeaddrinfo(res);
    return fd;
}

/* ------------------------------------------------------------------------------------ */
/* Durable state                                                                          */

static int write_all(int fd, const void *buf, size_t len)
{
    const char *p = buf;
    while (len > 0) {
        ssize_t n = write(fd, p, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

/* Replace the state file: temporary file, fsync, rename, fsync the directory, so a crash
 * leaves the old state or the new one. 0, or -1 (the caller acknowledges nothing). */
static int save_state(void)
{
    int fd = open(tmp_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0)
        return -1;
    if (write_all(fd, &st, sizeof st) < 0 || fsync(fd) < 0) {
        close(fd);
        return -1;
    }
    if (close(fd) < 0 || rename(tmp_path, state_path) < 0)
        return -1;
    int dfd = open(data_dir, O_RDONLY | O_DIRECTORY);
    if (dfd < 0)
        return -1;
    int rc = fsync(dfd);
    close(dfd);
    return rc;
}

/* Load the state file; a missing one is a fresh server. 0, or -1 for an unreadable one. */
static int load_state(void)
{
    int fd = open(state_path, O_RDONLY);
    if (fd < 0) {
        if (errno != ENOENT)
            return -1;
        memset(&st, 0, sizeof st);
        st.magic = STATE_MAGIC;
        return 0;
    }
    ssize_t n = read(fd, &st, sizeof st);
    close(fd);
    return (n == (ssize_t)sizeof st && st.magic == STATE_MAGIC) ? 0 : -1;
}

/* ------------------------------------------------------------------------------------ */
/* Roles                                                                                  */

/* The peer leads a newer epoch: follow it, and wait for its snapshot before taking over. */
static void become_backup(uint64_t epoch)
{
    st.is_primary = 0;
    st.synced = 0;
    st.peer_synced = 0;
    st.epoch = epoch;
    save_state(); /* a lost write is harmless: the peer refuses this server's old epoch */
    printf("stepping down: the peer leads epoch %" PRIu64 "\n", epoch);
    fflush(stdout);
}

/* A client's request reached this backup: the primary is gone for that client. Lead the
 * next epoch (durably, before answering anything as the primary); 0, or -1. */
static int take_over(void)
{
    struct state old = st;
    st.is_primary = 1;
    st.synced = 0;
    st.peer_synced = 0; /* the old primary has no snapshot of this epoch: answer alone */
    st.epoch++;
    if (save_state() < 0) {
        st = old;
        return -1;
    }
    op_seq = 0;
    printf("taking over as primary of epoch %" PRIu64 "\n", st.epoch);
    fflush(stdout);
    return 0;
}

/* ------------------------------------------------------------------------------------ */
/* The primary's side of replication                                                      */

enum { REPL_REFUSED = 0, REPL_ACKED = 1, REPL_FAILED = -1 };

/* Wait for the backup's answer to message seq: ACKED, REFUSED (it leads a newer epoch, or
 * this one) or FAILED (an error or a timeout). */
static int await_answer(uint64_t seq)
{
    char reply[LINE_CAP];
    unsigned long long epoch, generation, got;
    while (read_line(&repl, reply, sizeof reply) == 1) {
        if (sscanf(reply, "NO %llu", &epoch) == 1) {
            if (epoch > st.epoch)
                become_backup(epoch);
            return REPL_REFUSED;
        }
        if (sscanf(reply, "ACK %llu %llu %llu", &epoch, &generation, &got) == 3 &&
            epoch == st.epoch && generation == st.generation && got == seq)
            return REPL_ACKED;
    }
    return REPL_FAILED;
}

/* Connect to the backup and send it the whole store; REPL_ACKED when it has it. */
static int open_replication(void)
{
    char line[LINE_CAP];
    size_t len;
    repl.fd = connect_to(peer_host, REPL_TIMEOUT_MS);
    repl.len = 0;
    if (repl.fd < 0)
        return REPL_FAILED;
    /* From the first snapshot sent, the backup may hold the store and so may take over:
     * say so durably before it can, and answer nothing alone from then on. */
    if (!st.peer_synced) {
        st.peer_synced = 1;
        if (save_state() < 0)
            return REPL_FAILED;
    }
    uint64_t seq = ++op_seq;
    len = (size_t)snprintf(line, sizeof line, "SNAP %" PRIu64 " %" PRIu64 " %" PRIu64,
                           st.epoch, st.generation, seq);
    for (unsigned k = 0; k < N_KEYS; k++)
        len += (size_t)snprintf(line + len, sizeof line - len, " %" PRIu64 " %" PRIu64,
                                st.keys[k].version, st.keys[k].value);
    snprintf(line + len, sizeof line - len, "\n");
    if (send_line(repl.fd, line) < 0)
        return REPL_FAILED;
    return await_answer(seq);
}

/* Send one message to the backup ("REPL key version value" or "PING") and wait for its
 * answer. Called with state_lock held. A failed exchange drops the connection, so a late
 * answer is never taken for the next message's, and the next one starts with a snapshot. */
static int replicate(const char *kind, unsigned key, uint64_t version, uint64_t value)
{
    char line[LINE_CAP];
    int outcome = REPL_ACKED;
    if (repl.fd < 0)
        outcome = open_replication();
    if (outcome == REPL_ACKED) {
        uint64_t seq = ++op_seq;
        if (strcmp(kind, "REPL") == 0)
            snprintf(line, sizeof line, "REPL %" PRIu64 " %" PRIu64 " %" PRIu64 " %u %" PRIu64
                     " %" PRIu64 "\n", st.epoch, st.generation, seq, key, version, value);
        else
            snprintf(line, sizeof line, "PING %" PRIu64 " %" PRIu64 " %" PRIu64 "\n",
                     st.epoch, st.generation, seq);
        outcome = send_line(repl.fd, line) < 0 ? REPL_FAILED : await_answer(seq);
        if (outcome == REPL_ACKED)
            return REPL_ACKED;
    }
    if (repl.fd >= 0)
        close(repl.fd);
    repl.fd = -1;
    return outcome;
}

/* Whether the primary may answer after this outcome: the backup has the operation, or it
 * could not be reached and holds no snapshot of this epoch (so it cannot take over). */
static int may_answer(int outcome)
{
    return outcome == REPL_ACKED || (outcome == REPL_FAILED && !st.peer_synced);
}

static void refusal(int outcome, char *out, size_t cap)
{
    snprintf(out, cap, outcome == REPL_REFUSED ? "ERR not primary\n" : "ERR backup unreachable\n");
}

/* Store a write; 0, or -1 (memory unchanged) when the disk refuses it. */
static int apply_put(unsigned key, uint64_t version, uint64_t value)
{
    struct entry old = st.keys[key];
    st.keys[key] = (struct entry){version, value};
    if (save_state() < 0) {
        st.keys[key] = old;
        return -1;
    }
    return 0;
}

/* PUT on the primary; writes the reply into out, or sends it itself (early_ack) and leaves
 * out empty. Called with state_lock held. */
static void primary_put(int client, unsigned key, uint64_t value, char *out, size_t cap)
{
    uint64_t version = st.keys[key].version + 1;
    if (bug == BUG_EARLY_ACK && st.peer_synced) {
        /* BUG (early_ack): apply and answer first, replicate afterwards. A write the backup
         * does not get before it takes over has been acknowledged all the same. */
        if (apply_put(key, version, value) < 0) {
            snprintf(out, cap, "ERR disk\n");
            return;
        }
        snprintf(out, cap, "OK %" PRIu64 "\n", version);
        send_line(client, out);
        out[0] = 0;
        replicate("REPL", key, version, value);
        return;
    }
    int outcome = replicate("REPL", key, version, value);
    if (!may_answer(outcome))
        refusal(outcome, out, cap);
    else if (apply_put(key, version, value) < 0)
        snprintf(out, cap, "ERR disk\n"); /* the backup may have it: never acknowledged */
    else
        snprintf(out, cap, "OK %" PRIu64 "\n", version);
}

/* GET on the primary, after making sure its backup has not taken over (a replaced primary
 * would answer with values the new one has overwritten). Called with state_lock held. */
static void primary_get(unsigned key, char *out, size_t cap)
{
    int outcome = replicate("PING", 0, 0, 0);
    if (!may_answer(outcome))
        refusal(outcome, out, cap);
    else
        snprintf(out, cap, "VAL %" PRIu64 " %" PRIu64 "\n", st.keys[key].version,
                 st.keys[key].value);
}

/* ------------------------------------------------------------------------------------ */
/* The backup's side of replication                                                       */

static int stamp_newer(struct stamp a, struct stamp b)
{
    if (a.epoch != b.epoch)
        return a.epoch > b.epoch;
    if (a.generation != b.generation)
        return a.generation > b.generation;
    return a.seq > b.seq;
}

/* Parse a snapshot's keys (after its stamp); 0, or -1 when malformed. */
static int parse_snapshot(const char *text, struct entry *keys)
{
    char *end;
    for (unsigned k = 0; k < N_KEYS; k++) {
        keys[k].version = strtoull(text, &end, 10);
        if (end == text)
            return -1;
        keys[k].value = strtoull(end, (char **)&text, 10);
        if (text == end)
            return -1;
    }
    return *text == 0 ? 0 : -1;
}

/* SNAP, REPL or PING from the primary: the answer into out (empty: none, and the primary
 * times out). Messages of an older connection may arrive after newer ones: only the newest
 * counts. Called with state_lock held. */
static void peer_message(const char *request, char *out, size_t cap)
{
    char kind[8];
    unsigned long long epoch, generation, seq, version, value;
    unsigned key = 0;
    int used = 0;
    out[0] = 0;
    if (sscanf(request, "%7s %llu %llu %llu%n", kind, &epoch, &generation, &seq, &used) != 4)
        return;
    struct stamp stamp = {epoch, generation, seq};
    if (st.epoch > epoch || (st.epoch == epoch && st.is_primary)) {
        snprintf(out, cap, "NO %" PRIu64 "\n", st.epoch); /* the sender's epoch is over */
        return;
    }
    if (!stamp_newer(stamp, st.last))
        return;
    if (strcmp(kind, "SNAP") == 0) {
        struct state old = st;
        if (parse_snapshot(request + used, st.keys) < 0) {
            st = old;
            return;
        }
        if (st.is_primary || st.epoch != epoch)
            printf("following the primary of epoch %llu\n", epoch);
        st.is_primary = 0;
        st.peer_synced = 0;
        st.synced = 1;
        st.epoch = epoch;
        st.last = stamp;
        if (save_state() < 0) {
            st = old;
            return;
        }
        fflush(stdout);
    } else if (st.epoch != epoch || !st.synced) {
        return; /* no snapshot of this epoch yet: the connection it came on is a stale one */
    } else if (strcmp(kind, "REPL") == 0) {
        if (sscanf(request + used, "%u %llu %llu", &key, &version, &value) != 3 ||
            key >= N_KEYS)
            return;
        struct state old = st;
        st.keys[key] = (struct entry){version, value}; /* the primary's version, as it is */
        st.last = stamp;
        if (save_state() < 0) {
            st = old;
            return;
        }
    } else if (strcmp(kind, "PING") == 0) {
        st.last = stamp; /* in memory only: a stale PING changes nothing anyway */
    } else {
        return;
    }
    snprintf(out, cap, "ACK %llu %llu %llu\n", epoch, generation, seq);
}

/* ------------------------------------------------------------------------------------ */
/* Serving connections                                                                    */

/* A client's PUT or GET. Called with state_lock held. */
static void client_request(int fd, int is_put, unsigned key, uint64_t value, char *out,
                           size_t cap)
{
    if (!st.is_primary) {
        if (!st.synced) {
            snprintf(out, cap, "ERR not ready\n"); /* it lacks the store: it must not lead */
            return;
        }
        if (take_over() < 0) {
            snprintf(out, cap, "ERR disk\n");
            return;
        }
    }
    if (is_put)
        primary_put(fd, key, value, out, cap);
    else
        primary_get(key, out, cap);
}

/* Answer one request line into out (empty: no answer, or already sent). */
static void handle_request(int fd, const char *request, char *out, size_t cap)
{
    unsigned key;
    unsigned long long value;
    int is_put = sscanf(request, "PUT %u %llu", &key, &value) == 2;
    int is_get = !is_put && sscanf(request, "GET %u", &key) == 1;
    pthread_mutex_lock(&state_lock);
    if (!is_put && !is_get)
        peer_message(request, out, cap);
    else if (key >= N_KEYS)
        snprintf(out, cap, "ERR bad key\n");
    else
        client_request(fd, is_put, key, is_put ? value : 0, out, cap);
    pthread_mutex_unlock(&state_lock);
}

static void *serve_connection(void *arg)
{
    struct line_reader *conn = arg;
    char request[LINE_CAP], reply[LINE_CAP];
    set_timeouts(conn->fd, IDLE_TIMEOUT_MS);
    while (read_line(conn, request, sizeof request) == 1) {
        reply[0] = 0;
        handle_request(conn->fd, request, reply, sizeof reply);
        if (reply[0] != 0 && send_line(conn->fd, reply) < 0)
            break;
    }
    close(conn->fd);
    free(conn);
    return NULL;
}

static int serve(void)
{
    struct addrinfo hints = {.ai_family = AF_INET, .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE}, *res;
    int one = 1;
    if (getaddrinfo(NULL, port, &hints, &res) != 0) {
        fprintf(stderr, "kvstore: bad port %s\n", port);
        return 1;
    }
    int listener = socket(res->ai_family, res->ai_socktype, 0);
    if (listener < 0 ||
        setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0 ||
        bind(listener, res->ai_addr, res->ai_addrlen) < 0 || listen(listener, 16) < 0) {
        perror("kvstore: listen");
        return 1;
    }
    freeaddrinfo(res);
    for (;;) {
        int fd = accept(listener, NULL, NULL);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            perror("kvstore: accept");
            return 1;
        }
        struct line_reader *conn = calloc(1, sizeof *conn);
        pthread_t thread;
        pthread_attr_t attr;
        if (conn == NULL) {
            close(fd);
            continue;
        }
        conn->fd = fd;
        pthread_attr_init(&attr);
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        if (pthread_create(&thread, &attr, serve_connection, conn) != 0) {
            close(fd); /* out of threads: the client times out and tries again */
            free(conn);
        }
        pthread_attr_destroy(&attr);
    }
}

static int server_main(int primary)
{
    const char *dir = getenv("KV_DATA_DIR");
    snprintf(data_dir, sizeof data_dir, "%s", dir != NULL && *dir != 0 ? dir : "/data");
    snprintf(state_path, sizeof state_path, "%s/kv.state", data_dir);
    snprintf(tmp_path, sizeof tmp_path, "%s/kv.state.tmp", data_dir);
    if (load_state() < 0) {
        fprintf(stderr, "kvstore: %s is unreadable or damaged\n", state_path);
        return 1;
    }
    int fresh = st.generation == 0;
    if (fresh) {
        /* Both servers start empty, so the backup already holds the primary's store. */
        st.epoch = 1;
        st.is_primary = (uint32_t)primary;
        st.synced = !primary;
        st.peer_synced = (uint32_t)primary;
    }
    st.generation++; /* a new start: its message numbers must not repeat the old ones' */
    if (save_state() < 0) {
        fprintf(stderr, "kvstore: cannot write %s\n", state_path);
        return 1;
    }
    printf("serving on port %s (%s, %s of epoch %" PRIu64 ", %s)\n", port,
           fresh ? "fresh" : "restarted", st.is_primary ? "primary" : "backup", st.epoch,
           bug == BUG_EARLY_ACK ? "early_ack" : "correct");
    fflush(stdout);
    return serve();
}

/* ------------------------------------------------------------------------------------ */
/* The client                                                                             */

static void sleep_ms(uint64_t ms)
{
    struct timespec ts = {.tv_sec = (time_t)(ms / 1000), .tv_nsec = (long)(ms % 1000) * 1000000};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR) {
    }
}

/* Runs until the simulation ends (or forever natively). */
_Noreturn static void client_main(const char *first, const char *second)
{
    const char *servers[2] = {first, second}; /* the first one is the initial primary */
    struct entry newest[N_KEYS] = {{0, 0}}; /* per key: the newest this client wrote or read */
    struct line_reader conn = {.fd = -1};
    char request[LINE_CAP], reply[LINE_CAP];
    uint64_t counter = 0, ops = 0, failovers = 0;
    int current = 0, node = cr_node_id();
    cr_setup_complete();
    for (;;) {
        sleep_ms(5 + cr_random_choice(20));
        unsigned key = (unsigned)cr_random_choice(N_KEYS);
        int is_put = cr_random_choice(2) == 0;
        /* values are unique across clients: the node in the top bits, a counter below */
        uint64_t value = ((uint64_t)node << 40) | ++counter;
        if (is_put)
            snprintf(request, sizeof request, "PUT %u %" PRIu64 "\n", key, value);
        else
            snprintf(request, sizeof request, "GET %u\n", key);
        if (conn.fd < 0) {
            conn.fd = connect_to(servers[current], CLIENT_TIMEOUT_MS);
            conn.len = 0;
        }
        unsigned long long version, got;
        int answered = conn.fd >= 0 && send_line(conn.fd, request) == 0 &&
                       read_line(&conn, reply, sizeof reply) == 1;
        if (answered && is_put && sscanf(reply, "OK %llu", &version) == 1) {
            newest[key] = (struct entry){version, value};
            CR_REACHABLE("a PUT is acknowledged");
            if (failovers > 0)
                CR_REACHABLE("a PUT is acknowledged after a failover");
        } else if (answered && !is_put && sscanf(reply, "VAL %llu %llu", &version, &got) == 2) {
            struct entry want = newest[key];
            int fresh = version > want.version || (version == want.version && got == want.value);
            if (!fresh) {
                printf("node %d: stale read of key %u from %s: version %llu value %#llx, "
                       "but this client already had version %" PRIu64 " value %#" PRIx64 "\n",
                       node, key, servers[current], version, got, want.version, want.value);
                fflush(stdout);
            }
            CR_ALWAYS(fresh, "a GET never returns a value older than one this client wrote "
                             "or read");
            if (fresh)
                newest[key] = (struct entry){version, got};
        } else {
            /* no answer, or an error: this server is down, cut off or no longer primary */
            if (conn.fd >= 0)
                close(conn.fd);
            conn.fd = -1;
            current ^= 1;
            failovers++;
            CR_SOMETIMES(1, "a client fails over to the other server");
            continue;
        }
        if (++ops % 500 == 0) {
            printf("node %d: %" PRIu64 " operations, %" PRIu64 " failovers\n", node, ops,
                   failovers);
            fflush(stdout);
        }
    }
}

static int usage(void)
{
    fprintf(stderr, "usage: kvstore server PEER_HOST primary|backup [correct|early_ack] | "
                    "kvstore client SERVER_HOST SERVER_HOST\n");
    return 2;
}

int main(int argc, char **argv)
{
    const char *env_port = getenv("KV_PORT");
    if (env_port != NULL && *env_port != 0)
        port = env_port;
    if (argc == 4 && strcmp(argv[1], "client") == 0)
        client_main(argv[2], argv[3]);
    if ((argc == 4 || argc == 5) && strcmp(argv[1], "server") == 0) {
        int primary = strcmp(argv[3], "primary") == 0;
        if (!primary && strcmp(argv[3], "backup") != 0)
            return usage();
        if (argc == 5 && strcmp(argv[4], "early_ack") == 0)
            bug = BUG_EARLY_ACK;
        else if (argc == 5 && strcmp(argv[4], "correct") != 0)
            return usage();
        peer_host = argv[2];
        return server_main(primary);
    }
    return usage();
}
