/*
 * net: the I/O stand-in benchmark action -- blocks params.ms milliseconds (default 300)
 * without using the CPU, like waiting on a network call: nanosleep, which is WASI
 * poll_oneoff in a wasm32-wasip1 module and the nanosleep syscall natively.
 *
 *   params  {"ms": int (default 300)}   ms clamped to [0, 1e12] (truncated toward 0)
 *   result  {"blocked_ms": ms}
 */
#include <errno.h>
#include <time.h>
#include "minijson.h"

int main(void) {
    char *params = read_stdin(NULL);
    double d;
    long long ms = 300;
    if (json_get_number(params, "ms", &d)) ms = !(d > 0) ? 0 : d > 1e12 ? 1000000000000LL : (long long)d;
    printf("net: blocking %lld ms\n", ms);
    fflush(stdout);
    struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
    printf("{\"blocked_ms\": %lld}\n", ms);
    return 0;
}
