/* jsonfast.c: a JSON parser that builds jansson values (jsonutil.h).
 *
 * jansson reads its input through a stream, one character at a time, and
 * copies every string byte by byte into a growing buffer: ~28 us per kB
 * here. This parser walks the buffer and hands jansson whole strings, keys
 * and numbers. It accepts only what jansson's own parser accepts and gives
 * the same values (integers as json_int_t through strtoll, reals through
 * strtod, duplicate keys replaced in place, members in their order); on
 * anything else (an error, a NUL escape, a number too long for its buffer,
 * nesting deeper than FAST_MAX_DEPTH) it gives up, and json_fast_loadb
 * asks jansson, whose error text the callers report. The differential
 * fuzz target (tests/fuzz/fuzz_json.c) checks the equality. */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "jsonutil.h"

/* Deeper documents go to jansson, whose recursion the callers' stacks are
 * sized for (its limit is JSON_PARSER_MAX_DEPTH, 2048). */
#define FAST_MAX_DEPTH 128

typedef struct parser {
    const char *p, *end;
    char *tmp; /* a string with escapes, decoded */
    size_t tmpcap;
    int depth;
} parser;

static json_t *parse_value(parser *s);

static void skip_ws(parser *s)
{
    while (s->p < s->end && (*s->p == ' ' || *s->p == '\n' || *s->p == '\r' || *s->p == '\t'))
        s->p++;
}

static bool tmp_room(parser *s, size_t n)
{
    if (n <= s->tmpcap) return true;
    size_t cap = s->tmpcap ? s->tmpcap : 256;
    while (cap < n) cap *= 2;
    char *t = realloc(s->tmp, cap);
    if (!t) return false;
    s->tmp = t, s->tmpcap = cap;
    return true;
}

static int hex4(const char *p)
{
    int v = 0;
    for (int i = 0; i < 4; i++) {
        char c = p[i];
        int d = c >= '0' && c <= '9'   ? c - '0'
                : c >= 'a' && c <= 'f' ? c - 'a' + 10
                : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                       : -1;
        if (d < 0) return -1;
        v = v * 16 + d;
    }
    return v;
}

static size_t utf8_put(char *o, unsigned cp)
{
    if (cp < 0x80) return o[0] = (char)cp, 1;
    if (cp < 0x800) return o[0] = (char)(0xC0 | cp >> 6), o[1] = (char)(0x80 | (cp & 0x3F)), 2;
    if (cp < 0x10000) {
        o[0] = (char)(0xE0 | cp >> 12), o[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        o[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    o[0] = (char)(0xF0 | cp >> 18), o[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    o[2] = (char)(0x80 | ((cp >> 6) & 0x3F)), o[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

/* A string, s->p just after its opening quote: its bytes in *out (the
 * input itself, or s->tmp when it had escapes), whether any is not ASCII
 * (then jansson checks the UTF-8). False: give up. */
static bool lex_string(parser *s, const char **out, size_t *len, bool *high)
{
    const char *p = s->p, *start = p;
    unsigned char bits = 0;
    while (p < s->end && *p != '"' && *p != '\\' && (unsigned char)*p >= 0x20)
        bits |= (unsigned char)*p++;
    if (p >= s->end || (unsigned char)*p < 0x20) return false;
    if (*p == '"') {
        *out = start, *len = (size_t)(p - start), *high = bits & 0x80;
        s->p = p + 1;
        return true;
    }
    /* escapes: decoded into tmp (never longer than the input) */
    size_t n = (size_t)(p - start);
    if (!tmp_room(s, (size_t)(s->end - start) + 1)) return false;
    memcpy(s->tmp, start, n);
    while (p < s->end && *p != '"') {
        unsigned char c = (unsigned char)*p;
        if (c < 0x20) return false;
        if (c != '\\') {
            bits |= c;
            s->tmp[n++] = (char)c, p++;
            continue;
        }
        if (++p >= s->end) return false;
        char e = *p++;
        char simple = e == '"'    ? '"'
                      : e == '\\' ? '\\'
                      : e == '/'  ? '/'
                      : e == 'b'  ? '\b'
                      : e == 'f'  ? '\f'
                      : e == 'n'  ? '\n'
                      : e == 'r'  ? '\r'
                      : e == 't'  ? '\t'
                                  : 0;
        if (simple) {
            s->tmp[n++] = simple;
            continue;
        }
        if (e != 'u' || s->end - p < 4) return false;
        int cp = hex4(p);
        p += 4;
        if (cp <= 0 || (cp >= 0xDC00 && cp <= 0xDFFF)) return false; /* NUL, a lone low half */
        if (cp >= 0xD800 && cp <= 0xDBFF) {
            if (s->end - p < 6 || p[0] != '\\' || p[1] != 'u') return false;
            int lo = hex4(p + 2);
            if (lo < 0xDC00 || lo > 0xDFFF) return false;
            p += 6;
            cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
        }
        n += utf8_put(s->tmp + n, (unsigned)cp);
    }
    if (p >= s->end) return false;
    *out = s->tmp, *len = n, *high = bits & 0x80;
    s->p = p + 1;
    return true;
}

static json_t *parse_number(parser *s)
{
    const char *p = s->p, *b = p;
    bool real = false;
    if (p < s->end && *p == '-') p++;
    if (p >= s->end) return NULL;
    if (*p == '0') {
        p++;
        if (p < s->end && *p >= '0' && *p <= '9') return NULL;
    } else if (*p >= '1' && *p <= '9') {
        while (p < s->end && *p >= '0' && *p <= '9') p++;
    } else {
        return NULL;
    }
    if (p < s->end && *p == '.') {
        real = true, p++;
        if (p >= s->end || *p < '0' || *p > '9') return NULL;
        while (p < s->end && *p >= '0' && *p <= '9') p++;
    }
    if (p < s->end && (*p == 'e' || *p == 'E')) {
        real = true, p++;
        if (p < s->end && (*p == '+' || *p == '-')) p++;
        if (p >= s->end || *p < '0' || *p > '9') return NULL;
        while (p < s->end && *p >= '0' && *p <= '9') p++;
    }
    char buf[64];
    size_t n = (size_t)(p - b);
    if (n >= sizeof buf) return NULL;
    memcpy(buf, b, n);
    buf[n] = 0;
    s->p = p;
    errno = 0;
    if (!real) {
        long long v = strtoll(buf, NULL, 10);
        return errno == ERANGE ? NULL : json_integer((json_int_t)v);
    }
    double d = strtod(buf, NULL);
    if (errno == ERANGE && (d == HUGE_VAL || d == -HUGE_VAL)) return NULL;
    return json_real(d);
}

static bool literal(parser *s, const char *word, size_t n)
{
    if ((size_t)(s->end - s->p) < n || memcmp(s->p, word, n)) return false;
    s->p += n;
    return true;
}

/* Whitespace, then c: taken (true), or left. */
static bool take(parser *s, char c)
{
    skip_ws(s);
    if (s->p >= s->end || *s->p != c) return false;
    s->p++;
    return true;
}

/* After one of a container's values: true at its closing character (then
 * taken); false, with *more, at a comma. */
static bool container_end(parser *s, char close, bool *more)
{
    *more = false;
    if (take(s, close)) return true;
    if ((*more = take(s, ','))) skip_ws(s);
    return false;
}

static json_t *parse_object(parser *s)
{
    json_t *o = json_object();
    bool more;
    if (take(s, '}')) return o;
    skip_ws(s);
    for (;;) {
        const char *k;
        size_t kl;
        bool high;
        if (s->p >= s->end || *s->p != '"') break;
        s->p++;
        if (!lex_string(s, &k, &kl, &high)) break; /* (no NUL: \u0000 gives up) */
        char *key = NULL;
        if (k == s->tmp) { /* the value's strings reuse tmp */
            if (!(key = malloc(kl + 1))) break;
            memcpy(key, k, kl);
            k = key;
        }
        skip_ws(s);
        json_t *v = NULL;
        if (s->p < s->end && *s->p == ':') {
            s->p++;
            skip_ws(s);
            v = parse_value(s);
        }
        int r = !v     ? -1
                : high ? json_object_setn_new(o, k, kl, v)
                       : json_object_setn_new_nocheck(o, k, kl, v);
        free(key);
        if (r < 0) break;
        if (container_end(s, '}', &more)) return o;
        if (!more) break;
    }
    json_decref(o);
    return NULL;
}

static json_t *parse_array(parser *s)
{
    json_t *a = json_array();
    bool more;
    if (take(s, ']')) return a;
    for (;;) {
        json_t *v = parse_value(s);
        if (!v || json_array_append_new(a, v) < 0) break;
        if (container_end(s, ']', &more)) return a;
        if (!more) break;
    }
    json_decref(a);
    return NULL;
}

static json_t *parse_value(parser *s)
{
    if (s->p >= s->end) return NULL;
    switch (*s->p) {
    case '{':
    case '[': {
        if (++s->depth > FAST_MAX_DEPTH) return NULL;
        bool obj = *s->p++ == '{';
        json_t *v = obj ? parse_object(s) : parse_array(s);
        s->depth--;
        return v;
    }
    case '"': {
        const char *str;
        size_t n;
        bool high;
        s->p++;
        if (!lex_string(s, &str, &n, &high)) return NULL;
        return high ? json_stringn(str, n) : json_stringn_nocheck(str, n);
    }
    case 't':
        return literal(s, "true", 4) ? json_true() : NULL;
    case 'f':
        return literal(s, "false", 5) ? json_false() : NULL;
    case 'n':
        return literal(s, "null", 4) ? json_null() : NULL;
    default:
        return parse_number(s);
    }
}

json_t *json_fast_parse(const char *buf, size_t len, size_t flags)
{
    if (!buf || (flags & ~(size_t)JSON_DECODE_ANY)) return NULL;
    parser s = {buf, buf + len, NULL, 0, 0};
    skip_ws(&s);
    if (!(flags & JSON_DECODE_ANY) && (s.p >= s.end || (*s.p != '{' && *s.p != '['))) return NULL;
    json_t *v = parse_value(&s);
    free(s.tmp);
    skip_ws(&s);
    if (v && s.p != s.end) json_decref(v), v = NULL; /* more after the value */
    return v;
}

json_t *json_fast_loadb(const char *buf, size_t len, size_t flags, json_error_t *je)
{
    json_t *v = json_fast_parse(buf, len, flags);
    if (!v) return json_loadb(buf, len, flags, je);
    if (je) {
        memset(je, 0, sizeof *je);
        je->line = je->column = -1;
        snprintf(je->source, sizeof je->source, "<buffer>");
    }
    return v;
}

/* ---- dumping ----
 * json_dumps(JSON_COMPACT) writes every string through a callback in
 * pieces and a buffer that grows by copies. Objects, arrays, ASCII
 * strings, integers and the constants are written here as jansson writes
 * them (",", ":", escapes \" \\ \b \f \n \r \t and \u00XX upper case, no
 * escaped slash); a real, a non-ASCII byte (jansson checks the UTF-8) or a
 * deeper tree (a cycle, which jansson refuses) leaves the whole document
 * to jansson. */
#define FAST_DUMP_FLAGS (JSON_COMPACT | JSON_ENCODE_ANY | JSON_PRESERVE_ORDER)

static int dump_string(sbuf *b, const char *s, size_t n)
{
    static const char hex[] = "0123456789ABCDEF";
    sbuf_add(b, "\"", 1);
    size_t run = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x80) return -1;
        if (c >= 0x20 && c != '"' && c != '\\') continue;
        sbuf_add(b, s + run, i - run);
        run = i + 1;
        char esc[7] = {'\\', 0};
        size_t el = 2;
        esc[1] = c == '"'    ? '"'
                 : c == '\\' ? '\\'
                 : c == '\b' ? 'b'
                 : c == '\f' ? 'f'
                 : c == '\n' ? 'n'
                 : c == '\r' ? 'r'
                 : c == '\t' ? 't'
                             : 0;
        if (!esc[1]) {
            memcpy(esc + 1, "u00", 3), esc[4] = hex[c >> 4], esc[5] = hex[c & 15];
            el = 6;
        }
        sbuf_add(b, esc, el);
    }
    sbuf_add(b, s + run, n - run);
    sbuf_add(b, "\"", 1);
    return 0;
}

static int dump_value(const json_t *j, sbuf *b, int depth)
{
    char num[32];
    switch (json_typeof(j)) {
    case JSON_OBJECT: {
        if (depth > FAST_MAX_DEPTH) return -1;
        sbuf_add(b, "{", 1);
        bool first = true;
        for (void *it = json_object_iter((json_t *)j); it;
             it = json_object_iter_next((json_t *)j, it)) {
            if (!first) sbuf_add(b, ",", 1);
            first = false;
            if (dump_string(b, json_object_iter_key(it), json_object_iter_key_len(it)) < 0)
                return -1;
            sbuf_add(b, ":", 1);
            if (dump_value(json_object_iter_value(it), b, depth + 1) < 0) return -1;
        }
        sbuf_add(b, "}", 1);
        return 0;
    }
    case JSON_ARRAY: {
        if (depth > FAST_MAX_DEPTH) return -1;
        sbuf_add(b, "[", 1);
        for (size_t i = 0; i < json_array_size(j); i++) {
            if (i) sbuf_add(b, ",", 1);
            if (dump_value(json_array_get(j, i), b, depth + 1) < 0) return -1;
        }
        sbuf_add(b, "]", 1);
        return 0;
    }
    case JSON_STRING:
        return dump_string(b, json_string_value(j), json_string_length(j));
    case JSON_INTEGER: {
        int n = snprintf(num, sizeof num, "%" JSON_INTEGER_FORMAT, json_integer_value(j));
        sbuf_add(b, num, (size_t)n);
        return 0;
    }
    case JSON_TRUE:
        sbuf_add(b, "true", 4);
        return 0;
    case JSON_FALSE:
        sbuf_add(b, "false", 5);
        return 0;
    case JSON_NULL:
        sbuf_add(b, "null", 4);
        return 0;
    default: /* a real */
        return -1;
    }
}

int json_fast_dump_sbuf(const json_t *j, size_t flags, sbuf *b)
{
    size_t start = b->len;
    if (!j || !(flags & JSON_COMPACT) || (flags & ~(size_t)FAST_DUMP_FLAGS) ||
        (!(flags & JSON_ENCODE_ANY) && !json_is_object(j) && !json_is_array(j)) ||
        dump_value(j, b, 0) < 0) {
        b->len = start;
        if (b->data) b->data[start] = 0;
        return -1;
    }
    return 0;
}

char *json_fast_dumps(const json_t *j, size_t flags)
{
    sbuf b = {0};
    if (json_fast_dump_sbuf(j, flags, &b) < 0) {
        sbuf_free(&b);
        return json_dumps(j, flags);
    }
    return sbuf_steal(&b);
}
