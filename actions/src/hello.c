/* hello: {"name": "Ada"} -> {"greeting": "Hello, Ada!"}  (name defaults to "stranger") */
#include "minijson.h"

int main(void) {
    char *params = read_stdin(NULL);
    char *name = "stranger";
    const char *v = mj_find(params, "name"), *end;
    if (v && *v == '"') {
        if (!mj_string(v, &name)) name = "stranger";
    } else if (v && (end = mj_skip(v)) != NULL) { /* {"name": 42} -> raw JSON text "42" */
        name = strndup(v, (size_t)(end - v));
        if (!name) abort();
    }
    printf("hello: greeting %s\n", name);          /* log line on stdout */
    fprintf(stderr, "hello: this line goes to stderr\n"); /* log line on stderr */
    fputs("{\"greeting\": ", stdout);
    {
        size_t n = strlen(name);
        char *g = malloc(n + 9);
        if (!g) abort();
        memcpy(g, "Hello, ", 7);
        memcpy(g + 7, name, n);
        memcpy(g + 7 + n, "!", 2);
        json_put_string(stdout, g);
    }
    fputs("}\n", stdout);
    return 0;
}
