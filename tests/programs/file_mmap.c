/* Private file mappings (mmap(2) MAP_PRIVATE of a file): contents, offsets, copy-on-write
 * that never reaches the file, the zero tail of the last page, executable code mapped from
 * a file, /proc/self/maps naming the file, and the errors. Prints one line per check; the
 * output is the same natively and under chaosreplay. Runs in the current directory. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define PAGE 4096

static const char *err(void *p)
{
    if (p != MAP_FAILED)
        return "ok";
    switch (errno) {
    case EBADF: return "EBADF";
    case EACCES: return "EACCES";
    case ENODEV: return "ENODEV";
    case EINVAL: return "EINVAL";
    default: return "E?";
    }
}

static int make_file(const char *path, size_t size)
{
    int fd = open(path, O_CREAT | O_TRUNC | O_RDWR, 0644);
    char *buf = malloc(size);
    for (size_t i = 0; i < size; i++)
        buf[i] = (char)('A' + i / PAGE + (i % 7));
    if (write(fd, buf, size) != (ssize_t)size)
        printf("short write\n");
    free(buf);
    return fd;
}

static void show_maps_line(const char *name)
{
    FILE *f = fopen("/proc/self/maps", "r");
    char line[512];
    int found = 0;
    while (f && fgets(line, sizeof line, f))
        if (strstr(line, name)) {
            /* permissions, then the offset: addresses and inode numbers are the host's */
            char perms[8];
            unsigned long off;
            sscanf(line, "%*s %7s %lx", perms, &off);
            printf("maps: %s %lx ...%s", perms, off, strrchr(line, '/'));
            found++;
        }
    printf("maps lines naming %s: %d\n", name, found);
    if (f)
        fclose(f);
}

int main(void)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    int fd = make_file("mapped.dat", 3 * PAGE + 100);

    char *all = mmap(NULL, 3 * PAGE + 100, PROT_READ, MAP_PRIVATE, fd, 0);
    printf("map whole: %s first %c%c last %c\n", err(all), all[0], all[1], all[3 * PAGE + 99]);
    printf("tail of the last page is zero: %d\n", all[3 * PAGE + 100] == 0 && all[4 * PAGE - 1] == 0);

    char *second = mmap(NULL, PAGE, PROT_READ, MAP_PRIVATE, fd, 2 * PAGE);
    printf("map at offset 2 pages: %s first %c same as whole: %d\n", err(second), second[0],
           memcmp(second, all + 2 * PAGE, PAGE) == 0);

    char *cow = mmap(NULL, 2 * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
    memcpy(cow, "changed", 7);
    char back[8] = {0};
    pread(fd, back, 7, 0);
    printf("private write: mapping %.7s, file %.7s, other mapping %.7s\n", cow, back, all);

    char *none = mmap(NULL, PAGE, PROT_NONE, MAP_PRIVATE, fd, PAGE);
    mprotect(none, PAGE, PROT_READ);
    printf("PROT_NONE then mprotect: %s first %c\n", err(none), none[0]);
    show_maps_line("mapped.dat");

    /* mov eax, 42; ret */
    static const unsigned char code[] = {0xb8, 0x2a, 0x00, 0x00, 0x00, 0xc3};
    int cfd = open("code.bin", O_CREAT | O_TRUNC | O_RDWR, 0755);
    if (write(cfd, code, sizeof code) != (ssize_t)sizeof code)
        printf("short write\n");
    void *text = mmap(NULL, PAGE, PROT_READ | PROT_EXEC, MAP_PRIVATE, cfd, 0);
    int (*fn)(void) = (int (*)(void))text;
    printf("code mapped from a file: %s returns %d\n", err(text), fn());

    int wronly = open("mapped.dat", O_WRONLY);
    printf("write-only fd: %s\n", err(mmap(NULL, PAGE, PROT_READ, MAP_PRIVATE, wronly, 0)));
    printf("closed fd: %s\n", err(mmap(NULL, PAGE, PROT_READ, MAP_PRIVATE, 999, 0)));
    int dir = open(".", O_RDONLY | O_DIRECTORY);
    printf("directory: %s\n", err(mmap(NULL, PAGE, PROT_READ, MAP_PRIVATE, dir, 0)));
    int pipefd[2];
    pipe(pipefd);
    printf("pipe: %s\n", err(mmap(NULL, PAGE, PROT_READ, MAP_PRIVATE, pipefd[0], 0)));
    printf("unaligned offset: %s\n", err(mmap(NULL, PAGE, PROT_READ, MAP_PRIVATE, fd, 100)));

    munmap(all, 3 * PAGE + 100);
    close(fd);
    unlink("mapped.dat");
    char *after = second;
    printf("mapping outlives close and unlink: %c\n", after[0]);
    return 0;
}
