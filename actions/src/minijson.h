/*
 * minijson.h - tiny helpers shared by the sample WASM actions.
 *
 * Header-only (everything is `static inline`), no dependencies beyond libc.
 * It is deliberately small: it understands a *flat* top-level JSON object
 * well enough to pull out string and number fields.  Nested objects/arrays
 * are skipped correctly (strings inside them are respected) but not parsed.
 *
 *   char  *read_stdin(size_t *len)             whole stdin, NUL-terminated
 *   int    json_get_string(json, key, &out)    1 if key holds a string (unescaped, malloc'd)
 *   int    json_get_number(json, key, &out)    1 if key holds a number (or a numeric string)
 *   void   json_put_string(FILE *, s)          write s as a quoted, escaped JSON string
 */
#ifndef MINIJSON_H
#define MINIJSON_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static inline char *read_stdin(size_t *len_out) {
    size_t cap = 4096, len = 0, n;
    char *buf = malloc(cap + 1);
    if (!buf) abort();
    while ((n = fread(buf + len, 1, cap - len, stdin)) > 0) {
        len += n;
        if (len == cap) {
            cap *= 2;
            buf = realloc(buf, cap + 1);
            if (!buf) abort();
        }
    }
    buf[len] = '\0';
    if (len_out) *len_out = len;
    return buf;
}

static inline const char *mj_ws(const char *p) {
    while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r') p++;
    return p;
}

static inline int mj_hex(const char *p, unsigned *out) {
    unsigned v = 0;
    for (int i = 0; i < 4; i++) {
        char c = p[i];
        v <<= 4;
        if (c >= '0' && c <= '9') v |= (unsigned)(c - '0');
        else if (c >= 'a' && c <= 'f') v |= (unsigned)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F') v |= (unsigned)(c - 'A' + 10);
        else return 0;
    }
    *out = v;
    return 1;
}

static inline char *mj_utf8(char *o, unsigned cp) {
    if (cp < 0x80) { *o++ = (char)cp; }
    else if (cp < 0x800) { *o++ = (char)(0xC0 | (cp >> 6)); *o++ = (char)(0x80 | (cp & 0x3F)); }
    else if (cp < 0x10000) {
        *o++ = (char)(0xE0 | (cp >> 12)); *o++ = (char)(0x80 | ((cp >> 6) & 0x3F));
        *o++ = (char)(0x80 | (cp & 0x3F));
    } else {
        *o++ = (char)(0xF0 | (cp >> 18)); *o++ = (char)(0x80 | ((cp >> 12) & 0x3F));
        *o++ = (char)(0x80 | ((cp >> 6) & 0x3F)); *o++ = (char)(0x80 | (cp & 0x3F));
    }
    return o;
}

/*
 * Parse a JSON string starting at the opening quote *p.  Returns a pointer
 * just past the closing quote, or NULL if malformed.  If out is non-NULL it
 * receives a malloc'd, NUL-terminated, unescaped copy (UTF-8).
 */
static inline const char *mj_string(const char *p, char **out) {
    if (*p != '"') return NULL;
    p++;
    const char *start = p;
    /* find the end first (escapes never grow the text, so len is an upper bound) */
    while (*p && *p != '"') {
        if (*p == '\\') { if (!p[1]) return NULL; p += 2; }
        else p++;
    }
    if (*p != '"') return NULL;
    const char *end = p;
    if (out) {
        char *o = malloc((size_t)(end - start) + 1), *w = o;
        if (!o) abort();
        for (const char *q = start; q < end; q++) {
            if (*q != '\\') { *w++ = *q; continue; }
            q++;
            switch (*q) {
            case 'b': *w++ = '\b'; break;
            case 'f': *w++ = '\f'; break;
            case 'n': *w++ = '\n'; break;
            case 'r': *w++ = '\r'; break;
            case 't': *w++ = '\t'; break;
            case 'u': {
                unsigned cp, lo;
                if (end - q < 5 || !mj_hex(q + 1, &cp)) { *w++ = 'u'; break; }
                q += 4;
                if (cp >= 0xD800 && cp < 0xDC00 && end - q >= 7 && q[1] == '\\' && q[2] == 'u' &&
                    mj_hex(q + 3, &lo) && lo >= 0xDC00 && lo < 0xE000) {
                    cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                    q += 6;
                } else if (cp >= 0xD800 && cp < 0xE000) {
                    cp = 0xFFFD; /* lone surrogate */
                }
                w = mj_utf8(w, cp);
                break;
            }
            default: *w++ = *q; break; /* \" \\ \/ and anything else: literal */
            }
        }
        *w = '\0';
        *out = o;
    }
    return end + 1;
}

/* Skip any JSON value; returns pointer just past it, or NULL if malformed. */
static inline const char *mj_skip(const char *p) {
    p = mj_ws(p);
    if (*p == '"') return mj_string(p, NULL);
    if (*p == '{' || *p == '[') {
        int depth = 0;
        while (*p) {
            if (*p == '"') { p = mj_string(p, NULL); if (!p) return NULL; continue; }
            if (*p == '{' || *p == '[') depth++;
            else if (*p == '}' || *p == ']') { if (--depth == 0) return p + 1; }
            p++;
        }
        return NULL;
    }
    /* number, true, false, null */
    const char *s = p;
    while (*p && !strchr(" \t\r\n,}]", *p)) p++;
    return p == s ? NULL : p;
}

/*
 * Find `key` in the top-level object.  On success returns a pointer to the
 * start of its value (whitespace skipped); NULL if absent or malformed.
 * If a key repeats, the last occurrence wins (like most JSON parsers).
 */
static inline const char *mj_find(const char *json, const char *key) {
    const char *found = NULL;
    const char *p = mj_ws(json);
    if (*p != '{') return NULL;
    p = mj_ws(p + 1);
    if (*p == '}') return NULL;
    for (;;) {
        char *k;
        p = mj_string(p, &k);
        if (!p) return found;
        p = mj_ws(p);
        if (*p != ':') { free(k); return found; }
        p = mj_ws(p + 1);
        if (strcmp(k, key) == 0) found = p;
        free(k);
        p = mj_skip(p);
        if (!p) return found;
        p = mj_ws(p);
        if (*p != ',') return found;
        p = mj_ws(p + 1);
    }
}

static inline int json_get_string(const char *json, const char *key, char **out) {
    const char *v = mj_find(json, key);
    if (!v || *v != '"') return 0;
    return mj_string(v, out) != NULL;
}

/* Number field; a string holding a number ("42") is accepted too. */
static inline int json_get_number(const char *json, const char *key, double *out) {
    const char *v = mj_find(json, key);
    char *s = NULL, *end;
    if (!v) return 0;
    if (*v == '"') {
        if (!mj_string(v, &s)) return 0;
        v = s;
    }
    double d = strtod(v, &end);
    int ok = end != v && (s == NULL || *mj_ws(end) == '\0');
    if (ok) *out = d;
    free(s);
    return ok;
}

static inline void json_put_string(FILE *f, const char *s) {
    fputc('"', f);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        switch (*p) {
        case '"': fputs("\\\"", f); break;
        case '\\': fputs("\\\\", f); break;
        case '\b': fputs("\\b", f); break;
        case '\f': fputs("\\f", f); break;
        case '\n': fputs("\\n", f); break;
        case '\r': fputs("\\r", f); break;
        case '\t': fputs("\\t", f); break;
        default:
            if (*p < 0x20 || *p == 0x7F) fprintf(f, "\\u%04x", *p);
            else fputc(*p, f);
        }
    }
    fputc('"', f);
}

#endif
