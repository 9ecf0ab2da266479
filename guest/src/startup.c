/* What a program touches at start-up: /proc/self, /proc, /dev, /etc, the working
 * directory, umask, symlinks, modes and owners, times, getrusage, sysinfo, prctl,
 * getgroups, membarrier. Prints only what is the same natively (as root, in a fresh
 * directory under /tmp) and under chaosreplay; tests/test_fds.py compares the two. */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/syscall.h>
#include <sys/sysinfo.h>
#include <time.h>
#include <unistd.h>

static char text[65536];

static const char *errname(int e) {
    switch (e) {
    case ENOENT: return "ENOENT";
    case ELOOP: return "ELOOP";
    case EINVAL: return "EINVAL";
    case ENOTDIR: return "ENOTDIR";
    case EEXIST: return "EEXIST";
    case ERANGE: return "ERANGE";
    case EBADF: return "EBADF";
    case EACCES: return "EACCES";
    case EPERM: return "EPERM";
    default: return "E?";
    }
}

static void say(const char *what, long value) {
    if (value < 0)
        printf("%s: -1 %s\n", what, errname(errno));
    else
        printf("%s: %ld\n", what, value);
}

/* The whole of a file, NUL-terminated, read the way cat does (until read returns 0). */
static long slurp(const char *path) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    long total = 0, n;
    while (total < (long)sizeof text - 1 && (n = read(fd, text + total, sizeof text - 1 - total)) > 0)
        total += n;
    text[total] = 0;
    close(fd);
    return total;
}

static void has(const char *path, const char *needle) {
    long n = slurp(path);
    printf("%s has \"%s\": %s\n", path, needle, n > 0 && strstr(text, needle) ? "yes" : "no");
}

static void proc_self(char **argv) {
    char buf[PATH_MAX];
    long n = readlink("/proc/self/exe", buf, sizeof buf - 1);
    buf[n > 0 ? n : 0] = 0;
    const char *base = strrchr(buf, '/');
    printf("exe basename: %s\n", base ? base + 1 : "?");
    int exe = open("/proc/self/exe", O_RDONLY);
    char magic[4] = {0};
    say("exe readable", exe >= 0 && read(exe, magic, 4) == 4 && memcmp(magic, "\177ELF", 4) == 0);
    close(exe);
    has("/proc/self/status", "Name:\tstartup\n");
    has("/proc/self/status", "Uid:\t0\t0\t0\t0\n");
    has("/proc/self/maps", "[stack]");
    n = slurp("/proc/self/cmdline");
    printf("cmdline: %ld bytes, first %s, second %s\n", n, text, text + strlen(text) + 1);
    (void)argv;
    n = slurp("/proc/self/environ");
    printf("environ has STARTUP_MARK: %s\n", memmem(text, n > 0 ? n : 0, "STARTUP_MARK=1", 14) ? "yes" : "no");
    n = slurp("/proc/self/stat");
    printf("stat starts with pid: %s\n", n > 0 && atoi(text) == getpid() ? "yes" : "no");
    printf("stat comm: %s\n", strstr(text, "(startup)") ? "yes" : "no");
    char self[64];
    snprintf(self, sizeof self, "/proc/%d/status", getpid());
    slurp(self);
    printf("/proc/<pid>/status names us: %s\n", strstr(text, "Name:\tstartup") ? "yes" : "no");
    DIR *d = opendir("/proc/self/fd");
    int count = 0, saw_dir = 0;
    struct dirent *e;
    while (d && (e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        count++;
        if (atoi(e->d_name) == dirfd(d))
            saw_dir = 1;
    }
    printf("fd entries: %d, own fd listed: %d\n", count, saw_dir);
    closedir(d);
    int fd = open("/dev/null", O_WRONLY);
    char link[64];
    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    n = readlink(link, buf, sizeof buf - 1);
    buf[n > 0 ? n : 0] = 0;
    printf("fd link: %s\n", buf);
    close(fd);
    struct stat st;
    say("lstat /proc/self is link", lstat("/proc/self", &st) == 0 && S_ISLNK(st.st_mode));
}

static void machine(void) {
    has("/proc/cpuinfo", "processor\t: 0");
    has("/proc/cpuinfo", "flags\t\t: ");
    has("/proc/meminfo", "MemTotal:");
    has("/proc/meminfo", "MemAvailable:");
    has("/proc/stat", "cpu ");
    has("/proc/stat", "btime ");
    double up = -1, idle = -1;
    if (slurp("/proc/uptime") > 0)
        sscanf(text, "%lf %lf", &up, &idle);
    printf("uptime parses: %s\n", up > 0 && idle >= 0 ? "yes" : "no");
    struct sysinfo si;
    say("sysinfo", sysinfo(&si));
    printf("sysinfo sane: %s\n", si.totalram > si.freeram && si.mem_unit >= 1 && si.procs >= 1 ? "yes" : "no");
    struct rusage ru;
    say("getrusage", getrusage(RUSAGE_SELF, &ru));
    say("getrusage bad who", getrusage(7, &ru));
    say("getgroups >= 0", getgroups(0, NULL) >= 0);
    say("membarrier query has global", syscall(SYS_membarrier, 0, 0, 0) >= 0);
    size_t size = 64 * 4096;
    unsigned char *m = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    memset(m, 0xAB, size);
    say("madvise dontneed", madvise(m + 4096, 8 * 4096, MADV_DONTNEED));
    int zeroed = 0, kept = 0;
    for (size_t i = 0; i < size; i += 4096) {
        zeroed += m[i] == 0 && m[i + 4095] == 0;
        kept += m[i] == 0xAB;
    }
    printf("madvise zeroed %d pages, kept %d\n", zeroed, kept);
    munmap(m, size);
}

static void devices(void) {
    int fd = open("/dev/null", O_RDWR);
    say("write /dev/null", write(fd, "gone", 4));
    say("read /dev/null", read(fd, text, 10));
    close(fd);
    fd = open("/dev/zero", O_RDONLY);
    memset(text, 1, 64);
    long n = read(fd, text, 64);
    int zeros = 0;
    for (int i = 0; i < 64; i++)
        zeros += text[i] == 0;
    printf("/dev/zero: %ld bytes, %d zeros\n", n, zeros);
    close(fd);
    fd = open("/dev/urandom", O_RDONLY);
    say("read /dev/urandom", read(fd, text, 32));
    close(fd);
    fd = open("/dev/random", O_RDONLY | O_NONBLOCK);
    say("read /dev/random", read(fd, text, 16));
    close(fd);
    struct stat st;
    stat("/dev/null", &st);
    printf("/dev/null: chr %d rdev %u:%u\n", S_ISCHR(st.st_mode), major(st.st_rdev), minor(st.st_rdev));
    stat("/dev/urandom", &st);
    printf("/dev/urandom: rdev %u:%u\n", major(st.st_rdev), minor(st.st_rdev));
    say("/dev/full write", (fd = open("/dev/full", O_WRONLY)) >= 0 ? write(fd, "x", 1) : -1);
    close(fd);
}

static void etc(void) {
    has("/etc/passwd", "root:x:0:0:");
    has("/etc/group", "root:x:0:");
    has("/etc/hosts", "localhost");
    struct stat st;
    say("stat /etc/nsswitch.conf", stat("/etc/nsswitch.conf", &st));
    say("stat /etc/resolv.conf", stat("/etc/resolv.conf", &st));
}

static void directories(void) {
    char tmpl[] = "/tmp/startup.XXXXXX";
    char *dir = mkdtemp(tmpl);
    say("mkdtemp", dir ? 0 : -1);
    say("chdir", chdir(dir));
    char cwd[PATH_MAX];
    printf("getcwd is the new dir: %s\n", getcwd(cwd, sizeof cwd) && strcmp(cwd, dir) == 0 ? "yes" : "no");
    say("getcwd too small", getcwd(cwd, 3) ? 0 : -1);
    say("mkdir sub", mkdir("sub", 0777));
    say("chdir sub", chdir("sub"));
    say("chdir ..", chdir(".."));
    int dfd = open("sub", O_RDONLY | O_DIRECTORY);
    say("fchdir", fchdir(dfd));
    printf("cwd ends in /sub: %s\n", getcwd(cwd, sizeof cwd) && strcmp(strrchr(cwd, '/'), "/sub") == 0 ? "yes" : "no");
    close(dfd);
    chdir(dir);
    say("chdir to a file", chdir("/proc/self/status"));
    umask(027);
    say("umask returns old", umask(022));
    umask(077);
    int fd = open("private", O_CREAT | O_WRONLY, 0666);
    struct stat st;
    fstat(fd, &st);
    printf("created with umask 077: %o\n", st.st_mode & 0777);
    write(fd, "content\n", 8);
    close(fd);
    umask(022);
    say("chmod", chmod("private", 0640));
    stat("private", &st);
    printf("mode after chmod: %o\n", st.st_mode & 0777);
    fd = open("private", O_RDONLY);
    say("fchmod", fchmod(fd, 0604));
    fstat(fd, &st);
    printf("mode after fchmod: %o\n", st.st_mode & 0777);
    say("fchmodat", fchmodat(AT_FDCWD, "private", 0600, 0));
    say("chown", chown("private", 12, 34));
    stat("private", &st);
    printf("owner: %u %u\n", st.st_uid, st.st_gid);
    say("fchown keep uid", fchown(fd, -1, 56));
    fstat(fd, &st);
    printf("owner: %u %u\n", st.st_uid, st.st_gid);
    close(fd);
    struct timespec times[2] = {{1000000000, 5}, {1200000000, 7}};
    say("utimensat", utimensat(AT_FDCWD, "private", times, 0));
    stat("private", &st);
    printf("times: %ld.%09ld %ld.%09ld\n", (long)st.st_atim.tv_sec, st.st_atim.tv_nsec,
           (long)st.st_mtim.tv_sec, st.st_mtim.tv_nsec);
    struct timespec omit[2] = {{0, UTIME_OMIT}, {1300000000, 0}};
    utimensat(AT_FDCWD, "private", omit, 0);
    stat("private", &st);
    printf("times after omit: %ld %ld\n", (long)st.st_atim.tv_sec, (long)st.st_mtim.tv_sec);

    /* symlinks */
    say("symlink", symlink("private", "link"));
    say("symlink exists", symlink("private", "link"));
    char buf[64] = {0};
    say("readlink", readlink("link", buf, sizeof buf));
    printf("target: %s\n", buf);
    say("readlink short", readlink("link", buf, 3));
    say("readlink not a link", readlink("private", buf, sizeof buf));
    say("lstat is link", lstat("link", &st) == 0 && S_ISLNK(st.st_mode));
    printf("lstat size: %ld\n", (long)st.st_size);
    say("stat follows", stat("link", &st) == 0 && S_ISREG(st.st_mode) && st.st_size == 8);
    say("newfstatat nofollow", fstatat(AT_FDCWD, "link", &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISLNK(st.st_mode));
    say("symlinkat", symlinkat("sub", AT_FDCWD, "dirlink"));
    say("through dir link", stat("dirlink/../private", &st));
    fd = open("link", O_RDONLY);
    long n = read(fd, buf, sizeof buf - 1);
    buf[n > 0 ? n : 0] = 0;
    printf("read through link: %s", buf);
    close(fd);
    say("open nofollow", open("link", O_RDONLY | O_NOFOLLOW));
    say("readlinkat", readlinkat(AT_FDCWD, "dirlink", buf, sizeof buf));
    symlink("loop1", "loop2");
    symlink("loop2", "loop1");
    say("loop", open("loop1", O_RDONLY));
    say("dangling", open("missing-link", O_RDONLY) >= 0 ? 0 : -1);
    symlink("nowhere", "dangle");
    say("stat dangling", stat("dangle", &st));
    say("lstat dangling", lstat("dangle", &st));
    say("creat through dangling", (fd = open("dangle", O_CREAT | O_WRONLY, 0644)) >= 0);
    close(fd);
    say("dangle target exists", access("nowhere", F_OK));
    say("unlink link", unlink("link"));
    say("target kept", access("private", F_OK));
    const char *names[] = {"dangle", "nowhere", "loop1", "loop2", "dirlink", "private"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        unlink(names[i]);
    rmdir("sub");
    chdir("/");
    say("rmdir tmp dir", rmdir(dir));
}

int main(int argc, char **argv) {
    (void)argc;
    setvbuf(stdout, NULL, _IONBF, 0);
    char name[16] = {0};
    say("prctl get name", prctl(PR_GET_NAME, name));
    printf("name: %s\n", name);
    proc_self(argv);
    say("prctl set name", prctl(PR_SET_NAME, "renamed-task-with-long-name"));
    prctl(PR_GET_NAME, name);
    printf("name: %s\n", name);
    has("/proc/self/comm", "renamed-task-wi\n");
    prctl(PR_SET_NAME, "startup");
    machine();
    devices();
    etc();
    directories();
    printf("startup: ok\n");
    return 0;
}
