/*
 * env: reports what the sandbox exposes:
 *   {"env": {<every environment variable>}, "file": "denied" | "readable"}
 */
#include "minijson.h"

extern char **environ;

int main(void) {
    free(read_stdin(NULL)); /* consume params */
    FILE *f = fopen("/etc/passwd", "r");
    const char *file = f ? "readable" : "denied";
    if (f) fclose(f);

    fputs("{\"env\": {", stdout);
    int first = 1;
    for (char **e = environ; e && *e; e++) {
        char *eq = strchr(*e, '=');
        char *key = eq ? strndup(*e, (size_t)(eq - *e)) : strdup(*e);
        if (!key) abort();
        if (!first) fputs(", ", stdout);
        first = 0;
        json_put_string(stdout, key);
        fputs(": ", stdout);
        json_put_string(stdout, eq ? eq + 1 : "");
        free(key);
    }
    fputs("}, \"file\": ", stdout);
    json_put_string(stdout, file);
    fputs("}\n", stdout);
    return 0;
}
