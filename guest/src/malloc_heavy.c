/*
 * malloc_heavy.c - exercises mmap/munmap through the allocator: many large blocks
 * (>= 256 KiB, above both libcs' mmap threshold), freed and allocated again so the
 * kernel reuses freed addresses, plus realloc growth (mremap or copy). Every block's
 * contents are checked; the program prints a checksum so runs can be compared.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BLOCKS 24
#define ROUNDS 6
#define BLOCK_MIN (256 * 1024)

/* Fill a block with a pattern derived from its tag so misplaced data is caught. */
static void fill(unsigned char *p, size_t len, uint32_t tag)
{
    uint32_t x = tag * 2654435761u + 1;
    for (size_t i = 0; i < len; i += 64) {
        x = x * 1664525u + 1013904223u;
        p[i] = (unsigned char)(x >> 24);
    }
    p[len - 1] = (unsigned char)tag;
}

/* Check the pattern fill() wrote over len bytes and fold it into the checksum. */
static int check(const unsigned char *p, size_t len, uint32_t tag, uint64_t *sum)
{
    uint32_t x = tag * 2654435761u + 1;
    for (size_t i = 0; i < len; i += 64) {
        x = x * 1664525u + 1013904223u;
        if (p[i] != (unsigned char)(x >> 24))
            return 0;
        *sum = (*sum * 31) + p[i];
    }
    return p[len - 1] == (unsigned char)tag;
}

int main(void)
{
    unsigned char *blocks[BLOCKS] = {0};
    size_t sizes[BLOCKS] = {0};
    uint32_t tags[BLOCKS] = {0};
    uint64_t sum = 0;
    int reused = 0;

    for (int round = 0; round < ROUNDS; round++) {
        /* Replace about a third of the blocks each round (all of them in round 0). */
        for (int i = 0; i < BLOCKS; i++) {
            if (blocks[i] != NULL && (i + round) % 3 != 0)
                continue;
            uintptr_t old = (uintptr_t)blocks[i]; /* compared as an integer: never read */
            free(blocks[i]);
            sizes[i] = BLOCK_MIN + (size_t)((i * 7 + round * 13) % 16) * 64 * 1024;
            blocks[i] = malloc(sizes[i]);
            if (blocks[i] == NULL) {
                printf("malloc of %zu bytes failed\n", sizes[i]);
                return 1;
            }
            if (old != 0 && (uintptr_t)blocks[i] == old)
                reused++;
            tags[i] = (uint32_t)(round * BLOCKS + i);
            fill(blocks[i], sizes[i], tags[i]);
        }
        for (int i = 0; i < BLOCKS; i++) {
            if (!check(blocks[i], sizes[i], tags[i], &sum)) {
                printf("block %d corrupted in round %d\n", i, round);
                return 1;
            }
        }
        /* Grow one block: realloc must carry its contents into the larger mapping. */
        int g = (round * 5) % BLOCKS;
        size_t grown = sizes[g] * 2;
        unsigned char *bigger = realloc(blocks[g], grown);
        if (bigger == NULL) {
            printf("realloc to %zu bytes failed\n", grown);
            return 1;
        }
        if (!check(bigger, sizes[g], tags[g], &sum)) {
            printf("realloc lost the contents of block %d\n", g);
            return 1;
        }
        memset(bigger + sizes[g], 0x5a, grown - sizes[g]);
        if (bigger[grown - 1] != 0x5a) {
            printf("grown tail of block %d is wrong\n", g);
            return 1;
        }
        blocks[g] = bigger;
        sizes[g] = grown;
        fill(bigger, grown, tags[g]);
    }
    for (int i = 0; i < BLOCKS; i++)
        free(blocks[i]);
    printf("malloc_heavy: %d blocks x %d rounds, %d addresses reused, checksum %016llx\n",
           BLOCKS, ROUNDS, reused, (unsigned long long)sum);
    return 0;
}
