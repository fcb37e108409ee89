/* exit1: logs one line, then exits with status 3 without printing a result. */
#include <stdio.h>
#include <stdlib.h>

int main(void) {
    puts("exit1: exiting with status 3");
    exit(3); /* flushes stdout */
}
