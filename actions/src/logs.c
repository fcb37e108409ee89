/*
 * logs: emits params.count (default 10) log lines "line 1".."line N";
 * odd-numbered lines go to stdout, even-numbered ones to stderr.
 * Then the result {"lines": N}.  Both streams are fully buffered so a
 * million lines take a handful of large writes instead of a million.
 */
#include "minijson.h"

static char outbuf[1 << 16], errbuf[1 << 16];

int main(void) {
    char *params = read_stdin(NULL);
    double d;
    long n = 10;
    if (json_get_number(params, "count", &d)) n = !(d > 0) ? 0 : d > 1e9 ? 1000000000L : (long)d;
    setvbuf(stdout, outbuf, _IOFBF, sizeof outbuf);
    setvbuf(stderr, errbuf, _IOFBF, sizeof errbuf);
    for (long i = 1; i <= n; i++)
        fprintf(i % 2 ? stdout : stderr, "line %ld\n", i);
    fflush(stderr);
    printf("{\"lines\": %ld}\n", n);
    return 0;
}
