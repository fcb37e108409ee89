/*
 * prime: the n-th prime (CPU-bound benchmark action).
 *
 *   params  {"n": int (default 10000)}   n clamped to [1, 1e8] (truncated toward 0); 1-indexed: n=1 -> 2
 *   result  {"prime": p, "n": n}
 *
 * Algorithm (identical in python/prime.py): 2 is the first prime; then every odd
 * candidate c = 3, 5, 7, ... is tested by trial division by the odd numbers
 * 3, 5, ..., while d*d <= c; c is prime if none divides it.
 */
#include <stdint.h>
#include "minijson.h"

static int is_odd_prime(uint64_t c) {
    for (uint64_t d = 3; d * d <= c; d += 2)
        if (c % d == 0) return 0;
    return 1;
}

int main(void) {
    char *params = read_stdin(NULL);
    double d;
    long long n = 10000;
    if (json_get_number(params, "n", &d)) n = !(d >= 1) ? 1 : d > 1e8 ? 100000000LL : (long long)d;
    printf("prime: searching for prime #%lld\n", n);

    uint64_t p = 2;
    long long count = 1;
    for (uint64_t c = 3; count < n; c += 2) {
        if (is_odd_prime(c)) {
            count++;
            p = c;
        }
    }
    printf("{\"prime\": %llu, \"n\": %lld}\n", (unsigned long long)p, n);
    return 0;
}
