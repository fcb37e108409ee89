/*
 * membomb: allocates 1 MiB blocks without bound, touching every page.
 * When malloc finally fails (memory.grow refused by the runtime's limit) it
 * calls abort(), which in wasi-libc is a trap -- just like a real program.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BLOCK (1024 * 1024)

/* Blocks are chained through their first word and the head is kept in a
 * volatile global so the compiler cannot elide the allocations. */
static void *volatile head;

int main(void) {
    unsigned long mib = 0;
    fputs("membomb: allocating without bound\n", stderr);
    for (;;) {
        void **block = malloc(BLOCK);
        if (block == NULL) {
            fprintf(stderr, "membomb: malloc failed after %lu MiB, aborting\n", mib);
            abort();
        }
        memset(block, 0xA5, BLOCK); /* touch every page */
        *block = head;
        head = block;
        mib++;
        if (mib % 64 == 0) fprintf(stderr, "membomb: %lu MiB allocated\n", mib);
    }
}
