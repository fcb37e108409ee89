/* echo: returns the params object unchanged (stdin copied to one stdout line; {} if empty). */
#include "minijson.h"

int main(void) {
    size_t len;
    char *params = read_stdin(&len);
    /* Raw CR/LF can only be insignificant whitespace in valid JSON (inside strings
     * they must be escaped), so flattening them keeps the document on one line. */
    for (size_t i = 0; i < len; i++)
        if (params[i] == '\n' || params[i] == '\r') params[i] = ' ';
    const char *start = mj_ws(params);
    while (len > 0 && (params[len - 1] == ' ' || params[len - 1] == '\t')) params[--len] = '\0';
    fputs(*start ? start : "{}", stdout);
    fputc('\n', stdout);
    return 0;
}
