/* loop: logs one line, then spins forever (for timeout tests). */
#include <stdio.h>

static volatile unsigned long long counter;

int main(void) {
    puts("loop: spinning forever");
    fflush(stdout);
    for (;;) counter++;
}
