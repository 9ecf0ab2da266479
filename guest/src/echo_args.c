/* echo_args.c - prints its arguments one per line and exits with the status named by
 * the environment variable EXIT (default 0): tests check what the CLI hands a program. */
#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv)
{
    for (int i = 1; i < argc; i++)
        printf("[%s]\n", argv[i]);
    const char *code = getenv("EXIT");
    return code ? atoi(code) : 0;
}
