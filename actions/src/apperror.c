/* apperror: returns an application error result. */
#include <stdio.h>

int main(void) {
    puts("{\"error\": \"something went wrong\"}");
    return 0;
}
