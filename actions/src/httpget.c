/*
 * httpget: calls WoW's `http.get() -> i32` host import (reference/wow-and-thesis-benchmarks.md §4),
 * which the WASM executor links only for an action created with `--annotation net_access true` and
 * an operator who allows it (PYWHISK_WASM_GRANT_NET); without the grant the module fails at /init.
 * The host blocks 300 ms and returns 0. Natively there is no such import: it sleeps the same 300 ms.
 *
 *   params  ignored
 *   result  {"http_get": <the import's return value>}
 */
#include <time.h>
#include "minijson.h"

#ifdef __wasi__
__attribute__((import_module("http"), import_name("get"))) int http_get(void);
#else
static int http_get(void) {
    struct timespec ts = {0, 300000000L};
    nanosleep(&ts, NULL);
    return 0;
}
#endif

int main(void) {
    free(read_stdin(NULL));
    int status = http_get();
    printf("{\"http_get\": %d}\n", status);
    return 0;
}
