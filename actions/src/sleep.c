/* sleep: sleeps params.ms milliseconds (default 5000) via WASI poll_oneoff, returns {"slept": ms}. */
#include <errno.h>
#include <time.h>
#include "minijson.h"

int main(void) {
    char *params = read_stdin(NULL);
    double d;
    long long ms = 5000;
    if (json_get_number(params, "ms", &d)) ms = !(d > 0) ? 0 : d > 1e12 ? 1000000000000LL : (long long)d;
    printf("sleep: sleeping %lld ms\n", ms);
    fflush(stdout);
    struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
    printf("{\"slept\": %lld}\n", ms);
    return 0;
}
