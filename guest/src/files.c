/*
 * files.c - exercises the file system calls through libc and prints what it sees.
 *
 *   files                 open/openat/read/write/pread/pwrite/lseek/fsync/fdatasync/
 *                         ftruncate/rename/unlink/mkdir/rmdir/stat/fstat/readdir/dup and
 *                         stdio streams under /data; exits 0 when every result is the
 *                         expected one, else 1 with a message naming the first that is not
 *   files write-then-crash  leaves /data/kept (file and directory fsynced, then more
 *                         unsynced bytes), /data/nodir (file fsynced, directory not after
 *                         its creation) and /tmp/unsynced (nothing synced), for crash tests
 *   files show            prints every file under /data and /tmp with its content
 *   files try-write       writes and fsyncs /data/try, printing each result (exit 0)
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define CHECK(cond, ...)                                                              \
    do {                                                                              \
        if (!(cond)) {                                                                \
            printf("FAIL line %d: ", __LINE__);                                       \
            printf(__VA_ARGS__);                                                      \
            printf(" (errno %d %s)\n", errno, strerror(errno));                       \
            fflush(stdout);                                                           \
            exit(1);                                                                  \
        }                                                                             \
    } while (0)

#define EXPECT_ERRNO(call, err)                                                       \
    do {                                                                              \
        errno = 0;                                                                    \
        long rc_ = (long)(call);                                                      \
        CHECK(rc_ == -1 && errno == (err), "%s returned %ld, wanted errno %s", #call,  \
              rc_, #err);                                                             \
    } while (0)

static void write_all(int fd, const char *text)
{
    size_t len = strlen(text);
    ssize_t n = write(fd, text, len);
    CHECK(n == (ssize_t)len, "write of %zu bytes returned %zd", len, n);
}

static void sync_dir(const char *path)
{
    int fd = open(path, O_RDONLY | O_DIRECTORY);
    CHECK(fd >= 0, "open directory %s", path);
    CHECK(fsync(fd) == 0, "fsync directory %s", path);
    CHECK(close(fd) == 0, "close directory %s", path);
}

static void read_back(const char *path, const char *want)
{
    char buf[256];
    int fd = open(path, O_RDONLY);
    CHECK(fd >= 0, "open %s", path);
    ssize_t n = read(fd, buf, sizeof buf - 1);
    CHECK(n >= 0, "read %s", path);
    buf[n] = 0;
    CHECK(strcmp(buf, want) == 0, "%s holds \"%s\", wanted \"%s\"", path, buf, want);
    close(fd);
}

static void basic_io(void)
{
    char buf[64];
    struct stat st;

    CHECK(mkdir("/data/dir", 0755) == 0, "mkdir /data/dir");
    EXPECT_ERRNO(mkdir("/data/dir", 0755), EEXIST);
    int fd = open("/data/dir/a.txt", O_CREAT | O_RDWR | O_TRUNC, 0644);
    CHECK(fd == 3, "first file descriptor is %d, wanted 3", fd);
    write_all(fd, "hello world\n");
    CHECK(lseek(fd, 0, SEEK_CUR) == 12, "position after write");
    CHECK(pread(fd, buf, 5, 6) == 5 && memcmp(buf, "world", 5) == 0, "pread");
    CHECK(pwrite(fd, "HELLO", 5, 0) == 5, "pwrite");
    CHECK(lseek(fd, 0, SEEK_CUR) == 12, "pread/pwrite leave the position alone");
    CHECK(lseek(fd, 0, SEEK_SET) == 0, "lseek SEEK_SET");
    ssize_t n = read(fd, buf, sizeof buf);
    CHECK(n == 12 && memcmp(buf, "HELLO world\n", 12) == 0, "read back %zd bytes", n);
    CHECK(read(fd, buf, sizeof buf) == 0, "read at end of file");
    CHECK(lseek(fd, -3, SEEK_END) == 9, "lseek SEEK_END");
    CHECK(fstat(fd, &st) == 0, "fstat");
    CHECK(S_ISREG(st.st_mode) && (st.st_mode & 0777) == 0644, "mode %o", st.st_mode);
    CHECK(st.st_size == 12 && st.st_nlink == 1 && st.st_blocks == 1 && st.st_blksize == 4096,
          "fstat size %lld nlink %lld blocks %lld", (long long)st.st_size,
          (long long)st.st_nlink, (long long)st.st_blocks);
    printf("a.txt: ino %llu size %lld mtime %lld\n", (unsigned long long)st.st_ino,
           (long long)st.st_size, (long long)st.st_mtime);
    CHECK(fsync(fd) == 0, "fsync");
    CHECK(fdatasync(fd) == 0, "fdatasync");
    CHECK(ftruncate(fd, 5) == 0, "ftruncate");
    CHECK(fstat(fd, &st) == 0 && st.st_size == 5, "size after ftruncate");

    int copy = dup(fd);
    CHECK(copy == 4, "dup gave %d", copy);
    CHECK(lseek(copy, 1, SEEK_SET) == 1 && lseek(fd, 0, SEEK_CUR) == 1, "dup shares the offset");
    CHECK(close(copy) == 0 && close(fd) == 0, "close");
    EXPECT_ERRNO(close(fd), EBADF);

    int dirfd = open("/data/dir", O_RDONLY | O_DIRECTORY);
    CHECK(dirfd >= 0, "open /data/dir");
    fd = openat(dirfd, "b.txt", O_CREAT | O_WRONLY | O_APPEND, 0600);
    CHECK(fd >= 0, "openat b.txt");
    write_all(fd, "x");
    CHECK(lseek(fd, 0, SEEK_SET) == 0, "rewind");
    write_all(fd, "y");
    EXPECT_ERRNO(read(fd, buf, 1), EBADF);
    close(fd);
    read_back("/data/dir/b.txt", "xy");
    CHECK(fstatat(dirfd, "b.txt", &st, 0) == 0 && st.st_size == 2, "fstatat");
    CHECK(fsync(dirfd) == 0, "fsync directory");
    close(dirfd);
}

static void names(void)
{
    struct stat st;

    CHECK(stat("/data/dir/b.txt", &st) == 0 && st.st_size == 2, "stat b.txt");
    EXPECT_ERRNO(stat("/data/dir/none", &st), ENOENT);
    EXPECT_ERRNO(stat("/data/dir/b.txt/x", &st), ENOTDIR);
    CHECK(access("/data/dir/b.txt", F_OK | R_OK | W_OK) == 0, "access");
    EXPECT_ERRNO(access("/data/nothing", F_OK), ENOENT);
    CHECK(stat("/data", &st) == 0 && S_ISDIR(st.st_mode) && st.st_nlink == 3, "stat /data");

    CHECK(rename("/data/dir/a.txt", "/data/dir/c.txt") == 0, "rename");
    EXPECT_ERRNO(stat("/data/dir/a.txt", &st), ENOENT);
    CHECK(rename("/data/dir/c.txt", "/data/dir/b.txt") == 0, "rename over a file");
    read_back("/data/dir/b.txt", "HELLO");
    EXPECT_ERRNO(rename("/data/dir/b.txt", "/data"), EISDIR);
    EXPECT_ERRNO(open("/data", O_WRONLY), EISDIR);
    EXPECT_ERRNO(open("/data/dir/none", O_RDONLY), ENOENT);
    EXPECT_ERRNO(open("/data/dir/b.txt", O_CREAT | O_EXCL | O_WRONLY, 0644), EEXIST);

    char cwd[16];
    CHECK(getcwd(cwd, sizeof cwd) != NULL && strcmp(cwd, "/") == 0, "getcwd");
}

static void streams_and_listing(void)
{
    FILE *f = fopen("/data/dir/log", "w");
    CHECK(f != NULL, "fopen for writing");
    for (int i = 0; i < 3; i++)
        fprintf(f, "line %d\n", i);
    CHECK(fclose(f) == 0, "fclose");
    f = fopen("/data/dir/log", "r");
    CHECK(f != NULL, "fopen for reading");
    char line[32];
    int count = 0;
    while (fgets(line, sizeof line, f) != NULL)
        count++;
    fclose(f);
    CHECK(count == 3, "read %d lines", count);

    DIR *dir = opendir("/data/dir");
    CHECK(dir != NULL, "opendir");
    char listing[128] = "";
    struct dirent *entry;
    while ((entry = readdir(dir)) != NULL) {
        strcat(listing, entry->d_name);
        strcat(listing, entry->d_type == DT_DIR ? "/ " : " ");
    }
    closedir(dir);
    printf("listing: %s\n", listing);
    CHECK(strcmp(listing, "./ ../ b.txt log ") == 0, "listing \"%s\"", listing);

    EXPECT_ERRNO(rmdir("/data/dir"), ENOTEMPTY);
    CHECK(unlink("/data/dir/b.txt") == 0 && unlink("/data/dir/log") == 0, "unlink");
    EXPECT_ERRNO(unlink("/data/dir/log"), ENOENT);
    EXPECT_ERRNO(unlink("/data/dir"), EISDIR);
    CHECK(rmdir("/data/dir") == 0, "rmdir");
    sync_dir("/data");
}

static int write_then_crash(void)
{
    int fd = open("/data/kept", O_CREAT | O_WRONLY, 0644);
    CHECK(fd >= 0, "open /data/kept");
    write_all(fd, "durable");
    CHECK(fsync(fd) == 0, "fsync /data/kept");
    sync_dir("/data");
    write_all(fd, "+unsynced");
    close(fd);

    fd = open("/data/nodir", O_CREAT | O_WRONLY, 0644);
    CHECK(fd >= 0, "open /data/nodir");
    write_all(fd, "file synced, directory not");
    CHECK(fsync(fd) == 0, "fsync /data/nodir");
    close(fd);

    fd = open("/tmp/unsynced", O_CREAT | O_WRONLY, 0644);
    CHECK(fd >= 0, "open /tmp/unsynced");
    write_all(fd, "nothing synced");
    close(fd);
    printf("wrote\n");
    return 0;
}

static void show_dir(const char *path)
{
    DIR *dir = opendir(path);
    CHECK(dir != NULL, "opendir %s", path);
    struct dirent *entry;
    while ((entry = readdir(dir)) != NULL) {
        if (entry->d_type != DT_REG)
            continue;
        char full[300], buf[256];
        snprintf(full, sizeof full, "%s/%s", path, entry->d_name);
        int fd = open(full, O_RDONLY);
        CHECK(fd >= 0, "open %s", full);
        ssize_t n = read(fd, buf, sizeof buf - 1);
        CHECK(n >= 0, "read %s", full);
        buf[n] = 0;
        printf("%s: \"%s\"\n", full, buf);
        close(fd);
    }
    closedir(dir);
}

static int try_write(void)
{
    int fd = open("/data/try", O_CREAT | O_WRONLY, 0644);
    CHECK(fd >= 0, "open /data/try");
    errno = 0;
    ssize_t n = write(fd, "payload", 7);
    printf("write: %zd errno %d\n", n, n < 0 ? errno : 0);
    errno = 0;
    int rc = fsync(fd);
    printf("fsync: %d errno %d\n", rc, rc < 0 ? errno : 0);
    close(fd);
    return 0;
}

int main(int argc, char **argv)
{
    const char *mode = argc > 1 ? argv[1] : "all";
    if (strcmp(mode, "write-then-crash") == 0)
        return write_then_crash();
    if (strcmp(mode, "show") == 0) {
        show_dir("/data");
        show_dir("/tmp");
        return 0;
    }
    if (strcmp(mode, "try-write") == 0)
        return try_write();
    basic_io();
    names();
    streams_and_listing();
    printf("files: ok\n");
    return 0;
}
