/* Runs argv[1] with the rest of the arguments in its place (an entrypoint's `exec "$@"`). */
#include <stdio.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: exec_into PROGRAM [ARG...]\n");
		return 2;
	}
	execv(argv[1], argv + 1);
	perror(argv[1]);
	return 127;
}
