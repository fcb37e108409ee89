/*
 * sandbox: tries one thing the sandbox may forbid and reports what happened (the escape tests).
 *
 *   params  {"op": "read" | "list" | "write" | "getenv" | "socket", "path": str, "name": str}
 *     read    the first 4 KiB of the file at path        -> {"content": str}
 *     list    the names in the directory at path         -> {"entries": [str]}
 *     write   create or truncate path and write "x"      -> {"written": true}
 *     getenv  the environment variable name              -> {"value": str | null}
 *     socket  open a network socket: wasm32-wasip1 has no socket(), so the module asks WASI for a
 *             connection on descriptor 3 (sock_accept), the only way preview 1 offers;
 *             natively a TCP socket()                     -> {"socket": int}
 *   errors  {"error": "<op> <path or name>: <strerror>"} (an application error), e.g.
 *           {"error": "read /etc/passwd: Capabilities insufficient"}
 */
#include <dirent.h>
#include <errno.h>
#include "minijson.h"
#ifdef __wasi__
#include <wasi/api.h>
#else
#include <sys/socket.h>
#include <netinet/in.h>
#endif

static int fail(const char *op, const char *what, int err) {
    printf("{\"error\": ");
    size_t n = strlen(op) + strlen(what) + strlen(strerror(err)) + 4;
    char *msg = malloc(n);
    if (!msg) abort();
    snprintf(msg, n, "%s %s: %s", op, what, strerror(err));
    json_put_string(stdout, msg);
    printf("}\n");
    free(msg);
    return 0;
}

static int do_read(const char *path) {
    FILE *f = fopen(path, "r");
    if (!f) return fail("read", path, errno);
    char buf[4097];
    size_t n = fread(buf, 1, 4096, f);
    int err = ferror(f) ? errno : 0;
    fclose(f);
    if (err) return fail("read", path, err);
    buf[n] = '\0';
    printf("{\"content\": ");
    json_put_string(stdout, buf);
    printf("}\n");
    return 0;
}

static int do_list(const char *path) {
    DIR *d = opendir(path);
    if (!d) return fail("list", path, errno);
    printf("{\"entries\": [");
    int first = 1;
    for (struct dirent *e; (e = readdir(d)) != NULL;) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        if (!first) printf(", ");
        first = 0;
        json_put_string(stdout, e->d_name);
    }
    closedir(d);
    printf("]}\n");
    return 0;
}

static int do_write(const char *path) {
    FILE *f = fopen(path, "w");
    if (!f) return fail("write", path, errno);
    int ok = fputs("x", f) >= 0;
    int err = errno;
    if (fclose(f) != 0 || !ok) return fail("write", path, ok ? errno : err);
    printf("{\"written\": true}\n");
    return 0;
}

static int do_socket(void) {
#ifdef __wasi__
    __wasi_fd_t fd;
    __wasi_errno_t err = __wasi_sock_accept(3, 0, &fd);
    if (err) return fail("socket", "fd 3", err);
    printf("{\"socket\": %d}\n", (int)fd);
#else
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) return fail("socket", "AF_INET", errno);
    printf("{\"socket\": %d}\n", fd);
#endif
    return 0;
}

int main(void) {
    char *params = read_stdin(NULL);
    char *op = NULL, *path = NULL, *name = NULL;
    json_get_string(params, "op", &op);
    json_get_string(params, "path", &path);
    json_get_string(params, "name", &name);
    const char *p = path ? path : "";
    if (!op) {
        printf("{\"error\": \"op is required\"}\n");
    } else if (!strcmp(op, "read")) {
        do_read(p);
    } else if (!strcmp(op, "list")) {
        do_list(p);
    } else if (!strcmp(op, "write")) {
        do_write(p);
    } else if (!strcmp(op, "getenv")) {
        const char *value = name ? getenv(name) : NULL;
        printf("{\"value\": ");
        if (value) json_put_string(stdout, value); else printf("null");
        printf("}\n");
    } else if (!strcmp(op, "socket")) {
        do_socket();
    } else {
        printf("{\"error\": \"unknown op\"}\n");
    }
    return 0;
}
