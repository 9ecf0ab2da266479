/* hello.c - the smallest guest: stdio startup, one write, exit 0. */
#include <stdio.h>

int main(void)
{
    printf("hello, world\n");
    return 0;
}
