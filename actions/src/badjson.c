/* badjson: the last stdout line is not JSON (-> "action did not produce a valid JSON result"). */
#include <stdio.h>

int main(void) {
    puts("badjson: printing a non-JSON result");
    puts("this is not json");
    return 0;
}
