/* read_files.c - `read_files PATH...`: what each path is, as lstat/stat, readlink and read
 * see it, one line per path (tests/test_disk_files.py checks the files a scenario put on a
 * node's disk). A regular file shows its size, mode and an FNV-1a hash of its bytes. */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static uint64_t fnv1a(const unsigned char *p, size_t n, uint64_t h)
{
    for (size_t i = 0; i < n; i++)
        h = (h ^ p[i]) * 0x100000001b3ull;
    return h;
}

static void show_file(const char *path, const struct stat *st)
{
    int fd = open(path, O_RDONLY);
    if (fd < 0) {
        printf("%s: open failed: %s\n", path, strerror(errno));
        return;
    }
    static unsigned char buf[65536];
    uint64_t h = 0xcbf29ce484222325ull;
    long total = 0;
    ssize_t n;
    while ((n = read(fd, buf, sizeof buf)) > 0) {
        h = fnv1a(buf, (size_t)n, h);
        total += n;
    }
    close(fd);
    printf("%s: file mode=%04o size=%ld read=%ld fnv=%016llx\n", path,
           (unsigned)(st->st_mode & 07777), (long)st->st_size, total, (unsigned long long)h);
}

int main(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        const char *path = argv[i];
        struct stat st;
        if (lstat(path, &st) != 0) {
            printf("%s: lstat failed: %s\n", path, strerror(errno));
            continue;
        }
        if (S_ISLNK(st.st_mode)) {
            char target[4096];
            ssize_t n = readlink(path, target, sizeof target - 1);
            target[n < 0 ? 0 : n] = 0;
            struct stat to;
            int followed = stat(path, &to);
            printf("%s: link -> %s (%s)\n", path, target,
                   followed != 0 ? strerror(errno) : S_ISREG(to.st_mode) ? "file" : "other");
        } else if (S_ISDIR(st.st_mode)) {
            printf("%s: dir mode=%04o\n", path, (unsigned)(st.st_mode & 07777));
        } else if (S_ISREG(st.st_mode)) {
            show_file(path, &st);
        } else {
            printf("%s: other\n", path);
        }
    }
    return 0;
}
