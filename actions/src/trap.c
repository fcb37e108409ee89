/* trap: logs one line, then executes `unreachable` (a WebAssembly trap). */
#include <stdio.h>

int main(void) {
    puts("trap: about to trap");
    fflush(stdout); /* buffered output would be lost when the instance traps */
    __builtin_trap();
}
