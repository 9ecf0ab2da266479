/*
 * raft.c - the demo cluster: a Raft replicated key-value log (Ongaro & Ousterhout, "In Search
 * of an Understandable Consensus Algorithm", Figures 2 and 8) that checks Raft's safety
 * properties from inside the nodes, with six planted bugs chosen by argv[1].
 *
 *   raft [correct|double_vote|no_truncate|stale_term|no_step_down|figure8|early_commit]
 *
 * Every node runs this program; cr_node_id()/cr_node_count() say who it is and how many there
 * are. Messages are binary datagrams (a CRC32-checked header plus log entries) sent with
 * cr_send() and received with cr_recv(); anything that fails its checks is dropped, and every
 * handler tolerates duplicated, reordered and stale messages. currentTerm, votedFor, the log
 * and the applied index (with its chain hash) live in /data/raft.state, rewritten whole
 * (write to a temporary file, fsync, rename, fsync /data) before any message that depends on
 * them leaves the node. docs/demo.md describes the protocol, the assertions and the bugs.
 *
 * Run natively with CR_NODE_COUNT=1 (the default) it is a one-node cluster that elects itself,
 * commits its own proposals and persists them (RAFT_DATA_DIR overrides /data), which is
 * enough to exercise persistence and restarts without the simulator.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "chaosreplay.h"

#define MAX_NODES 16
#define LOG_CAP 2048         /* the leader stops proposing when the log holds this many */
#define MAX_BATCH 16         /* entries per AppendEntries */
#define N_KEYS 16            /* the key-value state machine: keys 0..15 */
#define LEADER_SLOTS 256     /* the term -> leader table of election safety */

#define MS 1000000ULL
#define HEARTBEAT_NS (50 * MS)
#define PROPOSE_NS (100 * MS)
#define ELECTION_MIN_NS (150 * MS)
#define ELECTION_SPAN_NS (150 * MS) /* election timeouts are uniform in [150, 300) ms */
#define PERSIST_RETRY_NS (20 * MS)
#define LOAD_RETRY_NS (100 * MS)

#define MSG_MAGIC 0x52414654u  /* "RAFT" */
#define DISK_MAGIC 0x52414644u /* "RAFD" */
#define DISK_VERSION 1u

/* ------------------------------------------------------------------------------------ */
/* Planted bugs                                                                          */

enum bug {
    BUG_NONE,
    BUG_DOUBLE_VOTE,  /* grants a vote although it already voted for another candidate */
    BUG_NO_TRUNCATE,  /* overwrites conflicting entries in place and keeps the stale tail */
    BUG_STALE_TERM,   /* accepts an AppendEntries whose term is below its current term */
    BUG_NO_STEP_DOWN, /* a leader that sees a higher term adopts it but stays leader */
    BUG_FIGURE8,      /* the leader commits earlier-term entries by counting replicas */
    BUG_EARLY_COMMIT, /* a follower advances commitIndex before the consistency check */
};

static const char *const BUG_NAMES[] = {
    "correct", "double_vote", "no_truncate", "stale_term", "no_step_down", "figure8",
    "early_commit",
};

static enum bug bug = BUG_NONE;

/* ------------------------------------------------------------------------------------ */
/* Checksums and the chain hash                                                          */

static uint32_t crc_table[256];

static void crc32_init(void)
{
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++)
            c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
        crc_table[i] = c;
    }
}

static uint32_t crc32(const void *data, size_t len)
{
    const unsigned char *p = data;
    uint32_t c = 0xFFFFFFFFu;
    for (size_t i = 0; i < len; i++)
        c = crc_table[(c ^ p[i]) & 0xFF] ^ (c >> 8);
    return c ^ 0xFFFFFFFFu;
}

static uint64_t fnv_u64(uint64_t hash, uint64_t value)
{
    for (int i = 0; i < 8; i++) {
        hash ^= (value >> (8 * i)) & 0xFF;
        hash *= CR_FNV1A64_PRIME;
    }
    return hash;
}

/* chain(i) = H(chain(i-1), term(i), key(i), value(i)); chain(0) = 0. Equal chain hashes at an
 * index mean equal logs up to that index. */
static uint64_t chain_hash(uint64_t prev_chain, uint64_t term, uint32_t key, uint32_t value)
{
    uint64_t h = CR_FNV1A64_OFFSET;
    h = fnv_u64(h, prev_chain);
    h = fnv_u64(h, term);
    h = fnv_u64(h, ((uint64_t)key << 32) | value);
    return h;
}

/* ------------------------------------------------------------------------------------ */
/* Messages                                                                              */

struct entry {
    uint64_t term;
    uint32_t key;
    uint32_t value;
    uint64_t chain; /* the chain hash of the log up to and including this entry */
};

enum msg_type {
    MSG_VOTE = 1,         /* RequestVote */
    MSG_VOTE_REPLY = 2,   /* RequestVote reply; flag = vote granted */
    MSG_APPEND = 3,       /* AppendEntries; `count` entries follow the header */
    MSG_APPEND_REPLY = 4, /* AppendEntries reply; flag = success */
};

/* Every message starts with this header; all integers little-endian (the host's order). */
struct msg {
    uint32_t magic;    /* MSG_MAGIC */
    uint32_t checksum; /* CRC32 of the whole message with this field zero */
    uint16_t length;   /* of the whole message: sizeof(struct msg) + count * sizeof(entry) */
    uint8_t type;      /* enum msg_type */
    uint8_t sender;    /* the sender's node id (must match the network's source) */
    uint8_t is_leader; /* the sender is the leader of `term` */
    uint8_t flag;      /* replies: vote granted / append succeeded */
    uint16_t count;    /* MSG_APPEND: number of entries */
    uint64_t term;     /* the sender's currentTerm */
    uint64_t commit_index;  /* the sender's commitIndex (AppendEntries: leaderCommit) */
    uint64_t commit_chain;  /* the sender's chain hash at commit_index */
    uint64_t applied_index; /* the sender's lastApplied */
    uint64_t applied_chain; /* the chain hash of the entry it applied at applied_index */
    uint64_t log_index; /* MSG_VOTE: lastLogIndex; MSG_APPEND: prevLogIndex;
                           MSG_APPEND_REPLY: matchIndex on success, next index to try on
                           failure */
    uint64_t log_term;  /* MSG_VOTE: lastLogTerm; MSG_APPEND: prevLogTerm */
    uint64_t log_chain; /* MSG_APPEND: the chain hash at prevLogIndex */
};

_Static_assert(sizeof(struct msg) == 80, "message header layout");
_Static_assert(sizeof(struct entry) == 24, "entry layout");

#define MSG_MAX (sizeof(struct msg) + MAX_BATCH * sizeof(struct entry))

/* ------------------------------------------------------------------------------------ */
/* Node state                                                                            */

enum role { FOLLOWER, CANDIDATE, LEADER };

static int me, nodes;

/* Persistent (Figure 2), plus the applied index and its chain hash. */
static uint64_t current_term;
static int voted_for = -1;
static struct entry log_[LOG_CAP + 1]; /* log_[0] is a sentinel: term 0, chain 0 */
static uint64_t last_index;

/* Volatile. */
static enum role role = FOLLOWER;
static uint64_t commit_index, last_applied;
static uint64_t applied_chain[LOG_CAP + 1]; /* the chain hash of every entry applied */
static uint32_t kv[N_KEYS];
static int leader_id = -1;
static uint32_t votes; /* bit per node, candidates only */
static uint64_t next_index[MAX_NODES], match_index[MAX_NODES];

/* Durability: `dirty` means memory holds persistent state the disk does not. No message
 * leaves the node while it is set. */
static bool dirty;
static bool volatile_disk; /* no file system at all (ENOSYS): run without persistence */
static uint64_t persisted_last; /* last_index at the last successful persist */
static bool persist_failing;

/* What this node learned of the cluster, for the safety assertions. */
static uint64_t known_commit_index, known_commit_chain; /* highest commit heard of */
static struct {
    uint64_t term;
    int leader;
} leaders[LEADER_SLOTS]; /* term -> leader, by term % LEADER_SLOTS */

/* Timers, in this node's local monotonic time. */
static uint64_t election_deadline, heartbeat_deadline, propose_deadline, persist_deadline;

static const char *data_dir = "/data";
static char state_path[256], tmp_path[256];

/* ------------------------------------------------------------------------------------ */
/* Time                                                                                  */

/* CLOCK_MONOTONIC made non-decreasing: a clock jump backwards (a fault) freezes nothing,
 * it is simply not counted. Forward jumps and skew are taken as they come. */
static uint64_t now_ns(void)
{
    static uint64_t last_raw, local;
    static bool started;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    uint64_t raw = (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
    if (!started) {
        started = true;
        local = raw;
    } else if (raw > last_raw) {
        local += raw - last_raw;
    }
    last_raw = raw;
    return local;
}

static void reset_election_timer(void)
{
    election_deadline = now_ns() + ELECTION_MIN_NS + cr_random_choice(ELECTION_SPAN_NS);
}

/* ------------------------------------------------------------------------------------ */
/* Persistence                                                                           */

struct disk_header {
    uint32_t magic;   /* DISK_MAGIC */
    uint32_t version; /* DISK_VERSION */
    uint32_t checksum; /* CRC32 of the whole file with this field zero */
    int32_t voted_for;
    uint64_t current_term;
    uint64_t count; /* entries 1..count follow */
    uint64_t applied_index;
    uint64_t applied_chain;
};

_Static_assert(sizeof(struct disk_header) == 48, "disk header layout");

static unsigned char disk_buf[sizeof(struct disk_header) + LOG_CAP * sizeof(struct entry)];

static int write_all(int fd, const unsigned char *p, size_t len)
{
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

/* Write the whole persistent state durably: temporary file, fsync, rename over the state
 * file, fsync the directory. 0 on success, -1 (errno set) on any failure, in which case
 * the old state file is what a restart will see. */
static int persist_now(void)
{
    struct disk_header h = {
        .magic = DISK_MAGIC,
        .version = DISK_VERSION,
        .voted_for = voted_for,
        .current_term = current_term,
        .count = last_index,
        .applied_index = last_applied,
        .applied_chain = applied_chain[last_applied],
    };
    size_t len = sizeof h + last_index * sizeof(struct entry);
    memcpy(disk_buf, &h, sizeof h);
    memcpy(disk_buf + sizeof h, &log_[1], last_index * sizeof(struct entry));
    h.checksum = crc32(disk_buf, len);
    memcpy(disk_buf + offsetof(struct disk_header, checksum), &h.checksum, sizeof h.checksum);

    int fd = open(tmp_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0)
        return -1;
    if (write_all(fd, disk_buf, len) < 0 || fsync(fd) < 0) {
        int saved = errno;
        close(fd);
        errno = saved;
        return -1;
    }
    if (close(fd) < 0)
        return -1;
    if (rename(tmp_path, state_path) < 0)
        return -1;
    int dfd = open(data_dir, O_RDONLY | O_DIRECTORY);
    if (dfd < 0)
        return -1;
    if (fsync(dfd) < 0) {
        int saved = errno;
        close(dfd);
        errno = saved;
        return -1;
    }
    close(dfd);
    return 0;
}

/* Persist if needed; true when the disk holds everything memory does. */
static bool durable(void)
{
    if (!dirty)
        return true;
    if (volatile_disk) {
        dirty = false;
        persisted_last = last_index;
        return true;
    }
    if (persist_now() < 0) {
        if (!persist_failing)
            fprintf(stderr, "node %d: persisting state failed: %s (messages wait until it "
                            "succeeds)\n", me, strerror(errno));
        persist_failing = true;
        persist_deadline = now_ns() + PERSIST_RETRY_NS;
        return false;
    }
    if (persist_failing)
        fprintf(stderr, "node %d: persisting state works again\n", me);
    persist_failing = false;
    dirty = false;
    persisted_last = last_index;
    return true;
}

/* Load the state file: 1 loaded, 0 no state (a fresh node), -1 failed (retry later). */
static int load_state(void)
{
    int fd = open(state_path, O_RDONLY);
    if (fd < 0) {
        if (errno == ENOENT)
            return 0;
        if (errno == ENOSYS) {
            volatile_disk = true;
            fprintf(stderr, "node %d: no file system (ENOSYS): running without persistence\n",
                    me);
            return 0;
        }
        fprintf(stderr, "node %d: open %s: %s\n", me, state_path, strerror(errno));
        return -1;
    }
    size_t len = 0;
    for (;;) {
        if (len == sizeof disk_buf) { /* longer than any state file we write */
            close(fd);
            fprintf(stderr, "node %d: %s is too long\n", me, state_path);
            return -1;
        }
        ssize_t n = read(fd, disk_buf + len, sizeof disk_buf - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            fprintf(stderr, "node %d: read %s: %s\n", me, state_path, strerror(errno));
            close(fd);
            return -1;
        }
        if (n == 0)
            break;
        len += (size_t)n;
    }
    close(fd);

    struct disk_header h;
    if (len < sizeof h) {
        fprintf(stderr, "node %d: %s is truncated (%zu bytes)\n", me, state_path, len);
        return -1;
    }
    memcpy(&h, disk_buf, sizeof h);
    uint32_t stored = h.checksum;
    uint32_t zero = 0;
    memcpy(disk_buf + offsetof(struct disk_header, checksum), &zero, sizeof zero);
    if (h.magic != DISK_MAGIC || h.version != DISK_VERSION || h.count > LOG_CAP ||
        len != sizeof h + h.count * sizeof(struct entry) || crc32(disk_buf, len) != stored ||
        h.applied_index > h.count || h.voted_for < -1 || h.voted_for >= nodes) {
        fprintf(stderr, "node %d: %s fails its checks\n", me, state_path);
        return -1;
    }
    current_term = h.current_term;
    voted_for = h.voted_for;
    last_index = h.count;
    memcpy(&log_[1], disk_buf + sizeof h, h.count * sizeof(struct entry));

    /* Re-apply what was applied before the crash; it must still be in the log. */
    CR_ALWAYS(log_[h.applied_index].chain == h.applied_chain,
              "state-machine safety: a restarted node's log still holds what it applied");
    for (uint64_t i = 1; i <= h.applied_index; i++) {
        kv[log_[i].key % N_KEYS] = log_[i].value;
        applied_chain[i] = log_[i].chain;
    }
    last_applied = commit_index = h.applied_index;
    known_commit_index = h.applied_index;
    known_commit_chain = log_[h.applied_index].chain;
    persisted_last = last_index;
    return 1;
}

/* ------------------------------------------------------------------------------------ */
/* Waiting and sending                                                                   */

static union {
    struct msg m;
    unsigned char bytes[MSG_MAX + 64];
} rx, tx;

/* Wait up to timeout_ns for one message; its length, or 0 when the time ran out. */
static long wait_message(uint64_t timeout_ns, int *src)
{
    long n = cr_recv(rx.bytes, sizeof rx.bytes, (int64_t)timeout_ns, src);
    if (n == -ENOSYS) { /* run natively: no network, only a one-node cluster can work */
        if (nodes > 1) {
            fprintf(stderr, "raft: no simulated network: run under chaosreplay, or natively "
                            "with CR_NODE_COUNT=1\n");
            exit(1);
        }
        struct timespec ts = {(time_t)(timeout_ns / 1000000000ULL),
                              (long)(timeout_ns % 1000000000ULL)};
        nanosleep(&ts, NULL);
        return 0;
    }
    return n > 0 ? n : 0;
}

/* Fill the common header fields of tx for a message of `type` with `count` entries. */
static void prepare(uint8_t type, uint16_t count)
{
    memset(&tx.m, 0, sizeof tx.m);
    tx.m.magic = MSG_MAGIC;
    tx.m.type = type;
    tx.m.sender = (uint8_t)me;
    tx.m.is_leader = role == LEADER;
    tx.m.count = count;
    tx.m.length = (uint16_t)(sizeof(struct msg) + count * sizeof(struct entry));
    tx.m.term = current_term;
    tx.m.commit_index = commit_index;
    tx.m.commit_chain = log_[commit_index].chain;
    tx.m.applied_index = last_applied;
    tx.m.applied_chain = applied_chain[last_applied];
}

/* Seal tx and send it, unless the persistent state it may depend on is not on disk yet. */
static void transmit(int dst)
{
    if (!durable())
        return;
    tx.m.checksum = 0;
    tx.m.checksum = crc32(tx.bytes, tx.m.length);
    cr_send(dst, tx.bytes, tx.m.length); /* a lost datagram is as good as a dropped one */
}

static void send_append(int peer)
{
    uint64_t prev = next_index[peer] - 1;
    uint64_t count = last_index - prev;
    if (count > MAX_BATCH)
        count = MAX_BATCH;
    prepare(MSG_APPEND, (uint16_t)count);
    tx.m.log_index = prev;
    tx.m.log_term = log_[prev].term;
    tx.m.log_chain = log_[prev].chain;
    memcpy(tx.bytes + sizeof(struct msg), &log_[prev + 1], count * sizeof(struct entry));
    transmit(peer);
}

static void send_vote_request(int peer)
{
    prepare(MSG_VOTE, 0);
    tx.m.log_index = last_index;
    tx.m.log_term = log_[last_index].term;
    transmit(peer);
}

/* ------------------------------------------------------------------------------------ */
/* Safety bookkeeping                                                                    */

/* Election safety: remember leader L of term T; a different leader for T is a violation. */
static void note_leader(uint64_t term, int leader)
{
    unsigned slot = (unsigned)(term % LEADER_SLOTS);
    if (leaders[slot].term == term) {
        CR_ALWAYS(leaders[slot].leader == leader,
                  "election safety: at most one leader per term");
        return;
    }
    leaders[slot].term = term;
    leaders[slot].leader = leader;
}

/* Leader completeness: a leader's log holds every entry it knows to be committed. */
static void check_leader_completeness(void)
{
    if (role != LEADER || known_commit_index == 0)
        return;
    CR_ALWAYS(known_commit_index <= last_index &&
                  log_[known_commit_index].chain == known_commit_chain,
              "leader completeness: a leader's log holds every committed entry");
}

static void learn_commit(uint64_t index, uint64_t chain)
{
    if (index > known_commit_index && index <= LOG_CAP) {
        known_commit_index = index;
        known_commit_chain = chain;
    }
}

/* ------------------------------------------------------------------------------------ */
/* The state machine                                                                     */

static void apply_committed(void)
{
    while (last_applied < commit_index) {
        uint64_t i = last_applied + 1;
        kv[log_[i].key % N_KEYS] = log_[i].value;
        applied_chain[i] = log_[i].chain;
        last_applied = i;
        dirty = true; /* the applied index is persisted too */
        CR_SOMETIMES(log_[i].term < current_term,
                     "a node applies a command from a previous term");
    }
}

static void set_commit(uint64_t index)
{
    if (index <= commit_index)
        return;
    commit_index = index;
    learn_commit(index, log_[index].chain);
    CR_SOMETIMES(true, "an entry is committed");
    if (role == LEADER)
        printf("node %d: committed index %" PRIu64 " (term %" PRIu64 ")\n", me, index,
               current_term);
    apply_committed();
}

/* ------------------------------------------------------------------------------------ */
/* Roles                                                                                 */

static void become_follower(uint64_t term)
{
    if (term > current_term) {
        current_term = term;
        voted_for = -1;
        dirty = true;
    }
    if (role == LEADER)
        printf("node %d: stepped down in term %" PRIu64 "\n", me, current_term);
    role = FOLLOWER;
    leader_id = -1;
}

static void become_leader(void)
{
    role = LEADER;
    leader_id = me;
    note_leader(current_term, me);
    for (int i = 0; i < nodes; i++) {
        next_index[i] = last_index + 1;
        match_index[i] = 0;
    }
    printf("node %d: became leader of term %" PRIu64 " (log %" PRIu64 ", commit %" PRIu64
           ")\n", me, current_term, last_index, commit_index);
    CR_SOMETIMES(true, "a leader is elected");
    check_leader_completeness();
    uint64_t now = now_ns();
    heartbeat_deadline = now; /* assert leadership at once */
    /* Proposals come just after a heartbeat and wait for the next one to carry them, as a
     * batching leader's would: a leader that stops is often ahead of its followers. */
    propose_deadline = now + PROPOSE_NS + MS;
}

static int count_votes(void)
{
    return __builtin_popcount(votes);
}

static void maybe_win(void)
{
    if (role == CANDIDATE && count_votes() * 2 > nodes && durable())
        become_leader();
}

static void start_election(void)
{
    current_term++;
    voted_for = me;
    role = CANDIDATE;
    leader_id = -1;
    votes = 1u << me;
    dirty = true;
    reset_election_timer();
    heartbeat_deadline = now_ns() + HEARTBEAT_NS; /* resend vote requests from then on */
    for (int i = 0; i < nodes; i++)
        if (i != me)
            send_vote_request(i);
    maybe_win();
}

/* The leader's commit rule (Figure 2, last bullet for leaders, with Figure 8's caveat). */
static void advance_commit(void)
{
    if (role != LEADER)
        return;
    uint64_t own = persisted_last < last_index ? persisted_last : last_index;
    for (uint64_t n = last_index; n > commit_index; n--) {
        if (log_[n].term != current_term) {
            if (bug == BUG_FIGURE8) {
                /* BUG (figure8): commit an entry of an earlier term once a majority stores
                 * it. A later leader that lacks it can still be elected and overwrite it. */
            } else {
                break; /* only current-term entries are committed by counting replicas */
            }
        }
        int count = own >= n ? 1 : 0;
        for (int i = 0; i < nodes; i++)
            if (i != me && match_index[i] >= n)
                count++;
        if (count * 2 > nodes) {
            set_commit(n);
            break;
        }
    }
}

static void propose(void)
{
    if (last_index >= LOG_CAP)
        return;
    uint64_t i = last_index + 1;
    log_[i].term = current_term;
    log_[i].key = (uint32_t)cr_random_choice(N_KEYS);
    log_[i].value = (uint32_t)cr_get_random();
    log_[i].chain = chain_hash(log_[i - 1].chain, log_[i].term, log_[i].key, log_[i].value);
    last_index = i;
    dirty = true;
    if (last_index == LOG_CAP)
        printf("node %d: the log is full (%d entries), no more proposals\n", me, LOG_CAP);
    if (durable())
        advance_commit(); /* a one-node cluster commits on its own */
}

/* ------------------------------------------------------------------------------------ */
/* Message handlers                                                                      */

static void on_vote(int src, const struct msg *m)
{
    uint64_t my_last_term = log_[last_index].term;
    bool up_to_date = m->log_term > my_last_term ||
                      (m->log_term == my_last_term && m->log_index >= last_index);
    bool grant = false;
    if (m->term == current_term && up_to_date) {
        if (bug == BUG_DOUBLE_VOTE) {
            /* BUG (double_vote): votedFor is not consulted, so two candidates of one term
             * can both collect a majority. */
            grant = true;
        } else {
            grant = voted_for < 0 || voted_for == src;
        }
    }
    if (grant) {
        if (voted_for != src) {
            voted_for = src;
            dirty = true;
        }
        reset_election_timer();
    }
    prepare(MSG_VOTE_REPLY, 0);
    tx.m.flag = grant;
    transmit(src); /* persists votedFor (and any new term) first, or sends nothing */
}

static void on_vote_reply(int src, const struct msg *m)
{
    if (role != CANDIDATE || m->term != current_term || !m->flag)
        return;
    votes |= 1u << src;
    maybe_win();
}

static void reply_append(int src, bool success, uint64_t index)
{
    prepare(MSG_APPEND_REPLY, 0);
    tx.m.flag = success;
    tx.m.log_index = index;
    transmit(src);
}

static void on_append(int src, const struct msg *m, const struct entry *entries)
{
    if (m->term < current_term) {
        if (bug == BUG_STALE_TERM && role != LEADER) {
            /* BUG (stale_term): a deposed leader's AppendEntries is accepted as if it came
             * from the current leader; it can overwrite entries the new leader committed. */
        } else {
            reply_append(src, false, 0); /* our higher term makes the sender step down */
            return;
        }
    }
    if (role == LEADER)
        return; /* another leader of our own term: election safety has reported it */
    if (role == CANDIDATE)
        become_follower(m->term); /* a leader of this term exists */
    leader_id = src;
    reset_election_timer();

    if (bug == BUG_EARLY_COMMIT) {
        /* BUG (early_commit): trust leaderCommit before the log is known to match the
         * leader's, so entries a deposed leader left behind get applied. */
        uint64_t early = m->commit_index < last_index ? m->commit_index : last_index;
        set_commit(early);
    }

    uint64_t prev = m->log_index;
    if (prev > last_index) { /* we lack entries before prev: try right after our last */
        CR_REACHABLE("a follower rejects an append that fails the log consistency check");
        reply_append(src, false, last_index + 1);
        return;
    }
    if (log_[prev].term != m->log_term) {
        /* Conflict at prev: skip back over the whole conflicting term. */
        CR_REACHABLE("a follower rejects an append that fails the log consistency check");
        uint64_t hint = prev, term = log_[prev].term;
        while (hint > 1 && log_[hint - 1].term == term)
            hint--;
        reply_append(src, false, hint);
        return;
    }
    CR_ALWAYS(log_[prev].chain == m->log_chain,
              "log matching: entries with equal index and term have equal chain hashes");

    uint64_t index = prev;
    for (uint16_t k = 0; k < m->count; k++) {
        const struct entry *e = &entries[k];
        index++;
        if (index <= last_index) {
            if (log_[index].term == e->term) { /* already have it (a duplicate or replay) */
                CR_ALWAYS(log_[index].chain == e->chain,
                          "log matching: entries with equal index and term have equal chain "
                          "hashes");
                continue;
            }
            CR_ALWAYS(index > commit_index,
                      "committed entries are never truncated or overwritten");
            CR_REACHABLE("a follower truncates a conflicting suffix");
            if (bug == BUG_NO_TRUNCATE) {
                /* BUG (no_truncate): overwrite this entry in place below, keeping the stale
                 * entries after it (and their chain hashes, now linked to nothing). */
            } else {
                last_index = index - 1; /* delete the conflicting entry and all after it */
            }
        }
        log_[index].term = e->term;
        log_[index].key = e->key;
        log_[index].value = e->value;
        log_[index].chain = chain_hash(log_[index - 1].chain, e->term, e->key, e->value);
        CR_ALWAYS(log_[index].chain == e->chain,
                  "log matching: entries with equal index and term have equal chain hashes");
        if (index > last_index)
            last_index = index;
        dirty = true;
    }
    if (index < last_index)
        CR_ALWAYS(log_[index + 1].term >= log_[index].term,
                  "log terms never decrease along the log");

    /* commitIndex = min(leaderCommit, index of last new entry): entries past `index` may
     * still be another leader's leftovers. */
    set_commit(m->commit_index < index ? m->commit_index : index);
    reply_append(src, true, index);
}

static void on_append_reply(int src, const struct msg *m)
{
    if (role != LEADER || m->term != current_term)
        return;
    if (m->flag) {
        uint64_t match = m->log_index <= last_index ? m->log_index : last_index;
        if (match <= match_index[src])
            return; /* a duplicate or an overtaken reply */
        match_index[src] = match;
        next_index[src] = match + 1;
        advance_commit();
        if (next_index[src] <= last_index)
            send_append(src); /* keep a lagging follower catching up */
    } else {
        uint64_t next = next_index[src];
        uint64_t hint = m->log_index;
        if (hint < next)
            next = hint;
        if (next < match_index[src] + 1)
            next = match_index[src] + 1;
        if (next < 1)
            next = 1;
        if (next == next_index[src])
            return;
        next_index[src] = next;
        send_append(src);
    }
}

static void on_message(int src, long len)
{
    const struct msg *m = &rx.m;
    if ((size_t)len < sizeof(struct msg) || m->magic != MSG_MAGIC || m->length != len ||
        m->count > MAX_BATCH ||
        (size_t)len != sizeof(struct msg) + m->count * sizeof(struct entry)) {
        CR_REACHABLE("a malformed message is dropped");
        return;
    }
    uint32_t stored = m->checksum;
    rx.m.checksum = 0;
    if (crc32(rx.bytes, (size_t)len) != stored) {
        CR_REACHABLE("a message failing its checksum is dropped");
        return;
    }
    if (m->sender != src || src == me || src < 0 || src >= nodes ||
        m->commit_index > LOG_CAP || m->applied_index > LOG_CAP ||
        m->log_index > LOG_CAP + 1 || m->type < MSG_VOTE || m->type > MSG_APPEND_REPLY)
        return;

    /* Election safety: the sender says it leads m->term. */
    if (m->is_leader)
        note_leader(m->term, src);
    /* State-machine safety: we applied index i too, so we must have applied the same. */
    if (m->applied_index > 0 && m->applied_index <= last_applied)
        CR_ALWAYS(applied_chain[m->applied_index] == m->applied_chain,
                  "state-machine safety: nodes apply the same command at each index");
    learn_commit(m->commit_index, m->commit_chain);

    if (m->term > current_term) {
        if (role == LEADER && bug == BUG_NO_STEP_DOWN) {
            /* BUG (no_step_down): adopt the higher term but keep acting as its leader. */
            current_term = m->term;
            voted_for = -1;
            dirty = true;
            note_leader(current_term, me);
        } else {
            if (role == LEADER)
                CR_REACHABLE("a leader steps down on seeing a higher term");
            become_follower(m->term);
        }
    }
    /* Leader completeness: checked after the term update, as a deposed leader need not
     * hold what later leaders committed. */
    check_leader_completeness();

    const struct entry *entries = (const struct entry *)(rx.bytes + sizeof(struct msg));
    switch (m->type) {
    case MSG_VOTE:
        on_vote(src, m);
        break;
    case MSG_VOTE_REPLY:
        on_vote_reply(src, m);
        break;
    case MSG_APPEND:
        if (m->log_index + m->count <= LOG_CAP && m->log_index <= LOG_CAP)
            on_append(src, m, entries);
        break;
    case MSG_APPEND_REPLY:
        on_append_reply(src, m);
        break;
    }
}

/* ------------------------------------------------------------------------------------ */
/* Timers and the main loop                                                              */

/* Move a periodic deadline on by one period, keeping its phase unless it fell behind. */
static void advance(uint64_t *deadline, uint64_t period, uint64_t now)
{
    *deadline += period;
    if (*deadline <= now)
        *deadline = now + period;
}

static void on_timers(void)
{
    uint64_t now = now_ns();
    if (dirty && now >= persist_deadline && durable()) {
        advance_commit();
        maybe_win();
    }
    if (role != LEADER && now >= election_deadline) {
        start_election();
        now = now_ns();
    }
    if (role == CANDIDATE && now >= heartbeat_deadline) {
        for (int i = 0; i < nodes; i++) /* resend to those that have not voted for us */
            if (i != me && !(votes & (1u << i)))
                send_vote_request(i);
        advance(&heartbeat_deadline, HEARTBEAT_NS, now);
    }
    if (role == LEADER && now >= propose_deadline) {
        propose();
        advance(&propose_deadline, PROPOSE_NS, now);
    }
    if (role == LEADER && now >= heartbeat_deadline) {
        for (int i = 0; i < nodes; i++)
            if (i != me)
                send_append(i);
        advance(&heartbeat_deadline, HEARTBEAT_NS, now);
    }
}

static uint64_t next_deadline(void)
{
    uint64_t d = role == LEADER ? heartbeat_deadline : election_deadline;
    if (role == LEADER && propose_deadline < d)
        d = propose_deadline;
    if (role == CANDIDATE && heartbeat_deadline < d)
        d = heartbeat_deadline;
    if (dirty && persist_deadline < d)
        d = persist_deadline;
    return d;
}

static void usage(void)
{
    fprintf(stderr, "usage: raft [correct|double_vote|no_truncate|stale_term|no_step_down|"
                    "figure8|early_commit]\n");
}

int main(int argc, char **argv)
{
    if (argc > 2) {
        usage();
        return 2;
    }
    if (argc == 2) {
        size_t i, n = sizeof BUG_NAMES / sizeof BUG_NAMES[0];
        for (i = 0; i < n && strcmp(argv[1], BUG_NAMES[i]) != 0; i++)
            ;
        if (i == n) {
            usage();
            return 2;
        }
        bug = (enum bug)i;
    }
    setvbuf(stdout, NULL, _IOLBF, 0);
    crc32_init();
    me = cr_node_id();
    nodes = cr_node_count();
    if (nodes < 1 || nodes > MAX_NODES || me < 0 || me >= nodes) {
        fprintf(stderr, "raft: node %d of %d: need 1..%d nodes\n", me, nodes, MAX_NODES);
        return 1;
    }
    const char *dir = getenv("RAFT_DATA_DIR");
    if (dir != NULL && *dir != 0 && strlen(dir) < 200)
        data_dir = dir;
    snprintf(state_path, sizeof state_path, "%s/raft.state", data_dir);
    snprintf(tmp_path, sizeof tmp_path, "%s/raft.state.tmp", data_dir);
    mkdir(data_dir, 0755); /* usually there already */

    int loaded;
    while ((loaded = load_state()) < 0) {
        /* A disk error: never start over empty (that would forget votes and entries). */
        int src;
        wait_message(LOAD_RETRY_NS, &src);
    }
    printf("node %d: %s, %s: term %" PRIu64 ", %" PRIu64 " entries, applied %" PRIu64 "\n",
           me, BUG_NAMES[bug], loaded ? "restarted" : "fresh", current_term, last_index,
           last_applied);
    if (loaded)
        CR_REACHABLE("a node restarts from its persisted state");
    cr_setup_complete();

    reset_election_timer();
    for (;;) {
        on_timers();
        uint64_t now = now_ns(), deadline = next_deadline();
        int src = -1;
        long n = wait_message(deadline > now ? deadline - now : 0, &src);
        if (n > 0)
            on_message(src, n);
    }
}
