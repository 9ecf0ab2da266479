/* Descriptors and readiness: pipes, dup2 onto stdio, fcntl, O_NONBLOCK, poll, select,
 * epoll (level, edge, one-shot), eventfd, timerfd. Prints one line per check; every line
 * is the same natively and under chaosreplay (tests/test_fds.py compares them).
 * argv[1] selects a mode that ends the program in a way worth checking on its own. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/select.h>
#include <sys/stat.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

static const char *errname(int e) {
    static const struct { int e; const char *name; } names[] = {
        {EPERM, "EPERM"}, {ENOENT, "ENOENT"}, {EBADF, "EBADF"}, {EAGAIN, "EAGAIN"},
        {EFAULT, "EFAULT"}, {EEXIST, "EEXIST"}, {ENOTDIR, "ENOTDIR"}, {EISDIR, "EISDIR"},
        {EINVAL, "EINVAL"}, {EMFILE, "EMFILE"}, {ENOTTY, "ENOTTY"}, {ESPIPE, "ESPIPE"},
        {EPIPE, "EPIPE"}, {ERANGE, "ERANGE"}, {ELOOP, "ELOOP"}, {ENOSYS, "ENOSYS"},
        {EACCES, "EACCES"}, {ENAMETOOLONG, "ENAMETOOLONG"}, {ENOTEMPTY, "ENOTEMPTY"},
    };
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (names[i].e == e)
            return names[i].name;
    return "E?";
}

static void say(const char *what, long value) {
    if (value < 0)
        printf("%s: -1 %s\n", what, errname(errno));
    else
        printf("%s: %ld\n", what, value);
}

static void pipes(void) {
    int p[2];
    char buf[64];
    say("pipe", pipe(p));
    say("write", write(p[1], "hello", 5));
    int pending = -1;
    ioctl(p[0], FIONREAD, &pending);
    say("fionread", pending);
    say("read", read(p[0], buf, sizeof buf));
    say("getpipe_sz", fcntl(p[1], F_GETPIPE_SZ));
    say("setfl nonblock", fcntl(p[0], F_SETFL, O_NONBLOCK));
    say("getfl has nonblock", (fcntl(p[0], F_GETFL) & O_NONBLOCK) != 0);
    say("read empty nonblock", read(p[0], buf, sizeof buf));
    /* fill the pipe: 64 KiB in 4 KiB atomic writes, then EAGAIN */
    fcntl(p[1], F_SETFL, O_NONBLOCK);
    static char block[4096];
    long total = 0, n;
    while ((n = write(p[1], block, sizeof block)) > 0)
        total += n;
    say("filled", total);
    say("write full", write(p[1], block, 1));
    struct pollfd pf = {p[1], POLLOUT, 0};
    say("poll full writable", poll(&pf, 1, 0));
    while (read(p[0], block, sizeof block) > 0) {}
    close(p[1]);
    say("read after writer closed", read(p[0], buf, sizeof buf));
    struct pollfd hup = {p[0], POLLIN, 0};
    say("poll hup", poll(&hup, 1, 0));
    say("revents hup", hup.revents & POLLHUP);
    close(p[0]);

    say("pipe2 cloexec", pipe2(p, O_CLOEXEC | O_NONBLOCK));
    say("getfd cloexec", fcntl(p[0], F_GETFD));
    say("getfl nonblock", (fcntl(p[1], F_GETFL) & O_NONBLOCK) != 0);
    signal(SIGPIPE, SIG_IGN);
    close(p[0]);
    say("write no reader", write(p[1], "x", 1));
    struct pollfd err = {p[1], POLLOUT, 0};
    poll(&err, 1, 0);
    say("revents err", err.revents & POLLERR);
    close(p[1]);
    say("pipe2 bad flags", pipe2(p, 0x1));
}

static void duplication(void) {
    int p[2];
    pipe(p);
    int saved = dup(1);
    say("dup2 onto stdout", dup2(p[1], 1));
    printf("through the pipe\n");
    fflush(stdout);
    dup2(saved, 1);
    close(saved);
    char buf[64] = {0};
    long n = read(p[0], buf, sizeof buf - 1);
    printf("pipe carried %ld: %s", n, buf);
    say("dup3 same fd", dup3(p[0], p[0], 0));
    say("dup2 same fd", dup2(p[0], p[0]));
    int low = fcntl(p[0], F_DUPFD, 10);
    say("f_dupfd >= 10", low >= 10);
    int cl = fcntl(p[0], F_DUPFD_CLOEXEC, 0);
    say("f_dupfd_cloexec getfd", fcntl(cl, F_GETFD));
    say("setfd", fcntl(cl, F_SETFD, 0));
    say("getfd after setfd", fcntl(cl, F_GETFD));
    close(low);
    close(cl);
    /* stdin becomes the pipe's read end */
    write(p[1], "in", 2);
    say("dup2 onto stdin", dup2(p[0], 0));
    say("read stdin", read(0, buf, sizeof buf));
    say("close stdin", close(0));
    say("close stdin again", close(0));
    say("read closed stdin", read(0, buf, 1));
    say("lowest free is 0", dup(p[1]) == 0);
    close(p[0]);
    close(p[1]);
    /* /proc/self/fd/N reopens the file itself, whatever its link text says */
    int q[2];
    pipe(q);
    char path[64];
    snprintf(path, sizeof path, "/proc/self/fd/%d", q[1]);
    int again = open(path, O_WRONLY);
    say("reopen pipe write end", again >= 0);
    say("write reopened", write(again, "re", 2));
    close(again);
    close(q[1]);
    say("read what it wrote", read(q[0], buf, sizeof buf));
    say("then end of file", read(q[0], buf, sizeof buf));
    close(q[0]);
    int out = open("/dev/stdout", O_WRONLY);
    say("open /dev/stdout", out >= 0);
    dprintf(out, "through /dev/stdout\n");
    close(out);
    say("bad fd", write(999, "x", 1));
    say("dup2 bad target", dup2(1, -1));
}

static void limits(void) {
    struct rlimit old, lim = {8, 8};
    getrlimit(RLIMIT_NOFILE, &old);
    say("setrlimit nofile", setrlimit(RLIMIT_NOFILE, &lim));
    int fds[8], opened = 0, fd;
    while ((fd = dup(2)) >= 0 && opened < 8)
        fds[opened++] = fd;
    say("emfile after", opened);
    say("dup over limit", dup(2));
    say("f_dupfd over limit", fcntl(2, F_DUPFD, 8));
    for (int i = 0; i < opened; i++)
        close(fds[i]);
    setrlimit(RLIMIT_NOFILE, &old);
}

static void polling(void) {
    int p[2];
    pipe(p);
    struct pollfd fds[3] = {{p[0], POLLIN, 0}, {p[1], POLLOUT, 0}, {-1, POLLIN, 0}};
    say("poll writable only", poll(fds, 3, 0));
    printf("revents: %d %d %d\n", fds[0].revents, fds[1].revents, fds[2].revents);
    struct pollfd nv = {77, POLLIN, 0};
    say("poll nval", poll(&nv, 1, 0));
    say("nval revents", nv.revents);
    struct pollfd rd = {p[0], POLLIN, 0};
    say("poll timeout 20ms", poll(&rd, 1, 20));
    struct timespec ts = {0, 5000000};
    say("ppoll timeout", ppoll(&rd, 1, &ts, NULL));
    write(p[1], "x", 1);
    say("poll readable", poll(&rd, 1, -1));
    fd_set r, w;
    FD_ZERO(&r);
    FD_ZERO(&w);
    FD_SET(p[0], &r);
    FD_SET(p[1], &w);
    struct timeval tv = {1, 0};
    say("select", select(p[1] + 1, &r, &w, NULL, &tv));
    printf("select sets: %d %d\n", FD_ISSET(p[0], &r), FD_ISSET(p[1], &w));
    char c;
    read(p[0], &c, 1);
    FD_ZERO(&r);
    FD_SET(p[0], &r);
    struct timespec pts = {0, 10000000};
    say("pselect timeout", pselect(p[0] + 1, &r, NULL, NULL, &pts, NULL));
    FD_ZERO(&r);
    FD_SET(50, &r);
    say("select bad fd", select(51, &r, NULL, NULL, &tv));
    close(p[0]);
    close(p[1]);
}

static void epolling(void) {
    int p[2];
    pipe2(p, O_NONBLOCK);
    int ep = epoll_create1(EPOLL_CLOEXEC);
    say("epoll_create1", ep >= 0);
    struct epoll_event ev = {.events = EPOLLIN, .data.u64 = 41}, out[4];
    say("ctl add", epoll_ctl(ep, EPOLL_CTL_ADD, p[0], &ev));
    say("ctl add again", epoll_ctl(ep, EPOLL_CTL_ADD, p[0], &ev));
    say("wait empty", epoll_wait(ep, out, 4, 0));
    say("wait timeout", epoll_wait(ep, out, 4, 15));
    write(p[1], "ab", 2);
    say("level 1", epoll_wait(ep, out, 4, 0));
    printf("event: %u data %llu\n", out[0].events, (unsigned long long)out[0].data.u64);
    say("level 2", epoll_wait(ep, out, 4, 0));
    ev.events = EPOLLIN | EPOLLET;
    ev.data.u64 = 42;
    say("ctl mod et", epoll_ctl(ep, EPOLL_CTL_MOD, p[0], &ev));
    say("edge 1", epoll_wait(ep, out, 4, 0));
    say("edge 2", epoll_wait(ep, out, 4, 0));
    write(p[1], "c", 1);
    say("edge after write", epoll_wait(ep, out, 4, 0));
    say("edge 3", epoll_wait(ep, out, 4, 0));
    ev.events = EPOLLIN | EPOLLONESHOT;
    say("ctl mod oneshot", epoll_ctl(ep, EPOLL_CTL_MOD, p[0], &ev));
    say("oneshot 1", epoll_wait(ep, out, 4, 0));
    say("oneshot 2", epoll_wait(ep, out, 4, 0));
    say("ctl rearm", epoll_ctl(ep, EPOLL_CTL_MOD, p[0], &ev));
    say("oneshot rearmed", epoll_wait(ep, out, 4, 0));
    ev.events = EPOLLOUT;
    ev.data.u64 = 7;
    say("ctl add writer", epoll_ctl(ep, EPOLL_CTL_ADD, p[1], &ev));
    say("writer ready", epoll_wait(ep, out, 4, 0));
    printf("event: %u data %llu\n", out[0].events, (unsigned long long)out[0].data.u64);
    struct pollfd pf = {ep, POLLIN, 0};
    say("poll epoll fd", poll(&pf, 1, 0));
    say("ctl del", epoll_ctl(ep, EPOLL_CTL_DEL, p[1], NULL));
    say("ctl del again", epoll_ctl(ep, EPOLL_CTL_DEL, p[1], NULL));
    say("ctl self", epoll_ctl(ep, EPOLL_CTL_ADD, ep, &ev));
    int f = open("/proc/self/exe", O_RDONLY);
    say("ctl regular file", epoll_ctl(ep, EPOLL_CTL_ADD, f, &ev));
    close(f);
    say("create size 0", epoll_create(0));
    close(p[0]);
    close(p[1]);
    close(ep);
}

static void eventfds(void) {
    int e = eventfd(3, EFD_NONBLOCK);
    uint64_t v = 0;
    say("eventfd read", read(e, &v, 8));
    printf("value %llu\n", (unsigned long long)v);
    say("eventfd read empty", read(e, &v, 8));
    v = 5;
    say("eventfd write", write(e, &v, 8));
    v = 2;
    write(e, &v, 8);
    read(e, &v, 8);
    printf("sum %llu\n", (unsigned long long)v);
    say("short read", read(e, &v, 4));
    v = UINT64_MAX;
    say("write max", write(e, &v, 8));
    close(e);
    int s = eventfd(2, EFD_SEMAPHORE | EFD_NONBLOCK);
    read(s, &v, 8);
    printf("semaphore %llu\n", (unsigned long long)v);
    read(s, &v, 8);
    printf("semaphore %llu\n", (unsigned long long)v);
    say("semaphore empty", read(s, &v, 8));
    struct pollfd pf = {s, POLLIN | POLLOUT, 0};
    poll(&pf, 1, 0);
    say("eventfd revents", pf.revents);
    close(s);
    say("eventfd bad flags", eventfd(0, 0x10));
}

static void timerfds(void) {
    int t = timerfd_create(CLOCK_MONOTONIC, 0);
    say("timerfd_create", t >= 0);
    struct itimerspec its = {{0, 0}, {0, 20000000}}, cur;
    say("settime", timerfd_settime(t, 0, &its, NULL));
    timerfd_gettime(t, &cur);
    say("armed", cur.it_value.tv_sec == 0 && cur.it_value.tv_nsec > 0);
    struct pollfd pf = {t, POLLIN, 0};
    say("poll before expiry", poll(&pf, 1, 0));
    uint64_t n = 0;
    say("blocking read", read(t, &n, 8));
    printf("expirations %llu\n", (unsigned long long)n);
    timerfd_gettime(t, &cur);
    say("disarmed", cur.it_value.tv_sec == 0 && cur.it_value.tv_nsec == 0);
    /* periodic, waited for through epoll */
    struct itimerspec per = {{0, 10000000}, {0, 10000000}};
    timerfd_settime(t, 0, &per, NULL);
    int ep = epoll_create1(0);
    struct epoll_event ev = {.events = EPOLLIN, .data.u64 = 9}, out;
    epoll_ctl(ep, EPOLL_CTL_ADD, t, &ev);
    say("epoll on timer", epoll_wait(ep, &out, 1, 1000));
    read(t, &n, 8);
    say("periodic read >= 1", n >= 1);
    close(ep);
    /* absolute expiry in the past fires at once */
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    struct itimerspec abs = {{0, 0}, now};
    timerfd_settime(t, TFD_TIMER_ABSTIME, &abs, NULL);
    say("abstime past poll", poll(&pf, 1, 0));
    close(t);
    int nb = timerfd_create(CLOCK_REALTIME, TFD_NONBLOCK);
    say("nonblock read unarmed", read(nb, &n, 8));
    close(nb);
    say("timerfd bad clock", timerfd_create(CLOCK_PROCESS_CPUTIME_ID, 0));
}

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IONBF, 0);
    if (argc > 1 && strcmp(argv[1], "deadlock") == 0) {
        int p[2];
        pipe(p);
        char c;
        return (int)read(p[0], &c, 1); /* nobody else can write: blocks forever */
    }
    if (argc > 1 && strcmp(argv[1], "sigpipe") == 0) {
        int p[2];
        pipe(p);
        close(p[0]);
        write(p[1], "x", 1); /* SIGPIPE's default action ends the program */
        return 3;
    }
    if (argc > 1 && strcmp(argv[1], "checkpoint") == 0) {
        /* state that must survive a checkpoint: a pipe with data, an eventfd, an epoll set
         * and a timer, then sleeps so the test can checkpoint between them */
        int p[2];
        pipe(p);
        write(p[1], "kept", 4);
        int e = eventfd(7, 0), ep = epoll_create1(0);
        struct epoll_event ev = {.events = EPOLLIN | EPOLLET, .data.u64 = 5}, out[2];
        epoll_ctl(ep, EPOLL_CTL_ADD, p[0], &ev);
        int t = timerfd_create(CLOCK_MONOTONIC, 0);
        struct itimerspec its = {{0, 0}, {0, 30000000}};
        timerfd_settime(t, 0, &its, NULL);
        struct timespec pause = {0, 1000000};
        nanosleep(&pause, NULL);
        say("edge", epoll_wait(ep, out, 2, 0));
        uint64_t n;
        say("timer read", read(t, &n, 8)); /* blocks ~29 ms of virtual time */
        say("edge again", epoll_wait(ep, out, 2, 0));
        char buf[8] = {0};
        say("pipe read", read(p[0], buf, sizeof buf));
        printf("%s\n", buf);
        read(e, &n, 8);
        printf("eventfd %llu\n", (unsigned long long)n);
        return 0;
    }
    if (argc > 2 && strcmp(argv[1], "loop") == 0) {
        /* a node that spends its life blocked: a periodic timer through epoll, a poll that
         * times out, an eventfd handed through a pipe (for the simulation tests) */
        int rounds = atoi(argv[2]), p[2], ep = epoll_create1(0);
        int t = timerfd_create(CLOCK_MONOTONIC, 0), e = eventfd(0, EFD_NONBLOCK);
        pipe(p);
        struct itimerspec per = {{0, 2000000}, {0, 2000000}};
        timerfd_settime(t, 0, &per, NULL);
        struct epoll_event ev = {.events = EPOLLIN, .data.u64 = 1}, out[2];
        epoll_ctl(ep, EPOLL_CTL_ADD, t, &ev);
        ev.events = EPOLLIN | EPOLLET;
        ev.data.u64 = 2;
        epoll_ctl(ep, EPOLL_CTL_ADD, e, &ev);
        uint64_t ticks = 0, n, one = 1;
        for (int i = 0; i < rounds; i++) {
            int ready = epoll_wait(ep, out, 2, -1);
            for (int k = 0; k < ready; k++)
                if (out[k].data.u64 == 1 && read(t, &n, 8) == 8)
                    ticks += n;
            write(e, &one, 8);
            struct pollfd pf = {p[0], POLLIN, 0};
            int polled = poll(&pf, 1, 1);
            write(p[1], &i, sizeof i);
            int back = -1;
            read(p[0], &back, sizeof back);
            printf("round %d ready %d polled %d back %d ticks %llu\n", i, ready, polled, back,
                   (unsigned long long)ticks);
        }
        return 0;
    }
    pipes();
    duplication();
    limits();
    polling();
    epolling();
    eventfds();
    timerfds();
    printf("fds: ok\n");
    return 0;
}
