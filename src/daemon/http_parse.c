/* http_parse.c: request heads, targets, query strings and chunked bodies
 * for berthd's HTTP/1.1 server. See http_parse.h; RFC 9112 is the
 * reference. Strict where leniency could desynchronise the framing of a
 * kept-alive connection (Content-Length, Transfer-Encoding, line folding,
 * blanks before ':'), lenient where it cannot (bare LF line ends). */
#include "daemon/http_parse.h"

#include <string.h>
#include <strings.h>

#define CHUNK_LINE_MAX 4096     /* chunk extensions */
#define TRAILER_MAX (64u << 10) /* trailer section */
#define CHUNK_SIZE_MAX (1ull << 60)

size_t hp_head_end(const char *buf, size_t len, size_t *scan)
{
    for (size_t i = *scan; i < len; i++) {
        if (buf[i] != '\n') continue;
        if (i + 1 >= len || (buf[i + 1] == '\r' && i + 2 >= len)) {
            *scan = i; /* the empty line may still come: look here again */
            return 0;
        }
        if (buf[i + 1] == '\n') return i + 2;
        if (buf[i + 1] == '\r' && buf[i + 2] == '\n') return i + 3;
    }
    *scan = len;
    return 0;
}

/* RFC 9110 tchar: what methods and field names are made of */
static bool is_tchar(unsigned char c)
{
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) return true;
    return c && strchr("!#$%&'*+-.^_`|~", c);
}

/* The line at p (before end): returns its end (the '\n') and sets *le to
 * where its content ends (before a '\r'). */
static char *line_end(char *p, char *end, char **le)
{
    char *eol = memchr(p, '\n', (size_t)(end - p));
    if (!eol) return NULL;
    *le = eol > p && eol[-1] == '\r' ? eol - 1 : eol;
    return eol;
}

int hp_parse_head(char *buf, size_t len, hp_head *h)
{
    char *p = buf, *end = buf + len, *le;
    h->nh = 0;
    char *eol = line_end(p, end, &le);
    if (!eol) return 400;
    /* request line: method SP target SP HTTP/1.x */
    char *sp = p;
    while (sp < le && is_tchar((unsigned char)*sp)) sp++;
    if (sp == p || sp >= le || *sp != ' ') return 400;
    *sp = 0;
    h->method = p;
    char *t = sp + 1, *te = t;
    while (te < le && (unsigned char)*te > ' ' && *te != 0x7f) te++;
    if (te == t || te >= le || *te != ' ') return 400;
    *te = 0;
    h->target = t;
    char *v = te + 1;
    if (le - v != 8 || memcmp(v, "HTTP/", 5) || v[5] < '0' || v[5] > '9' || v[6] != '.' ||
        v[7] < '0' || v[7] > '9')
        return 400;
    if (v[5] != '1') return 505;
    h->minor = v[7] == '0' ? 0 : 1; /* 1.2 and up are answered as 1.1 */
    *le = 0;
    /* header fields, up to the empty line */
    for (p = eol + 1; p < end; p = eol + 1) {
        if (!(eol = line_end(p, end, &le))) return 400;
        if (le == p) return 0;
        if (*p == ' ' || *p == '\t') return 400; /* obsolete line folding */
        char *c = p;
        while (c < le && is_tchar((unsigned char)*c)) c++;
        if (c == p || c >= le || *c != ':') return 400; /* no blanks before ':' */
        *c = 0;
        char *val = c + 1, *ve = le;
        while (val < ve && (*val == ' ' || *val == '\t')) val++;
        while (ve > val && (ve[-1] == ' ' || ve[-1] == '\t')) ve--;
        for (char *q = val; q < ve; q++)
            if (((unsigned char)*q < 0x20 && *q != '\t') || *q == 0x7f) return 400;
        *ve = 0;
        if (h->nh >= HP_MAX_HEADERS) return 431;
        h->h[h->nh].name = p;
        h->h[h->nh++].value = val;
    }
    return 400; /* no empty line */
}

const char *hp_get(const hp_head *h, const char *name)
{
    for (int i = 0; i < h->nh; i++)
        if (!strcasecmp(h->h[i].name, name)) return h->h[i].value;
    return NULL;
}

bool hp_has_token(const char *value, const char *token)
{
    size_t tl = strlen(token);
    for (const char *p = value; p && *p;) {
        while (*p == ' ' || *p == '\t' || *p == ',') p++;
        const char *e = p;
        while (*e && *e != ',') e++;
        const char *te = e;
        while (te > p && (te[-1] == ' ' || te[-1] == '\t')) te--;
        if ((size_t)(te - p) == tl && !strncasecmp(p, token, tl)) return true;
        p = e;
    }
    return false;
}

int hp_body_length(const hp_head *h, bool *chunked, uint64_t *len)
{
    const char *te = NULL, *cl = NULL;
    int nte = 0;
    *chunked = false;
    *len = 0;
    for (int i = 0; i < h->nh; i++) {
        if (!strcasecmp(h->h[i].name, "Transfer-Encoding")) {
            te = h->h[i].value;
            nte++;
        } else if (!strcasecmp(h->h[i].name, "Content-Length")) {
            if (cl && strcmp(cl, h->h[i].value)) return 400;
            cl = h->h[i].value;
        }
    }
    if (te) {
        if (cl) return 400; /* a message framed two ways: refused (RFC 9112 6.3) */
        if (nte > 1 || strcasecmp(te, "chunked")) return 501;
        *chunked = true;
        return 0;
    }
    if (!cl) return 0;
    uint64_t n = 0;
    size_t digits = strspn(cl, "0123456789");
    if (digits == 0 || cl[digits] || digits > 18) return 400;
    for (size_t i = 0; i < digits; i++) n = n * 10 + (uint64_t)(cl[i] - '0');
    *len = n;
    return 0;
}

char *hp_split_target(char *target, char **query)
{
    char *q = strchr(target, '?');
    *query = NULL;
    if (q) {
        *q = 0;
        *query = q + 1;
    }
    char *path = target;
    if (!strncasecmp(path, "http://", 7) || !strncasecmp(path, "https://", 8)) {
        path = strchr(path, ':') + 3;
        path += strcspn(path, "/");
        if (!*path) { /* "http://host": the path is "/"; write it over the scheme */
            target[0] = '/';
            target[1] = 0;
            path = target;
        }
    }
    return path;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

size_t hp_unescape(char *s, bool plus)
{
    char *w = s;
    for (const char *r = s; *r; r++) {
        int hi, lo;
        if (*r == '%' && (hi = hexval(r[1])) >= 0 && (lo = hexval(r[2])) >= 0) {
            *w++ = (char)(hi << 4 | lo);
            r += 2;
        } else {
            *w++ = plus && *r == '+' ? ' ' : *r;
        }
    }
    *w = 0;
    return (size_t)(w - s);
}

void hp_parse_query(char *q, void (*add)(void *arg, char *key, char *value), void *arg)
{
    while (q && *q) {
        char *amp = strchr(q, '&');
        if (amp) *amp = 0;
        if (*q) {
            char *eq = strchr(q, '=');
            char *val = eq ? eq + 1 : q + strlen(q); /* no '=': the empty string */
            if (eq) *eq = 0;
            hp_unescape(q, true);
            hp_unescape(val, true);
            add(arg, q, val);
        }
        q = amp ? amp + 1 : NULL;
    }
}

/* ---- chunked ---- */

enum {
    CH_SIZE0,   /* the first hex digit of a chunk size */
    CH_SIZE,    /* more hex digits */
    CH_EXT,     /* ";name=value" extensions, skipped to the line end */
    CH_SIZE_LF, /* after the CR of the size line */
    CH_DATA,
    CH_DATA_CR, /* the CRLF after a chunk's data */
    CH_DATA_LF,
    CH_TRAILER,      /* at the start of a trailer line (or the final empty line) */
    CH_TRAILER_LINE, /* inside a trailer field, skipped */
    CH_TRAILER_LF,   /* after the CR of the final empty line */
    CH_DONE,
};

static int size_line_done(hp_chunked *c)
{
    c->state = c->left ? CH_DATA : CH_TRAILER;
    c->line = 0;
    return 0;
}

int hp_chunked_feed(hp_chunked *c, const char *in, size_t n, size_t *used, const char **data,
                    size_t *dlen)
{
    size_t i = 0;
    *dlen = 0;
    *data = NULL;
    while (i < n && c->state != CH_DONE) {
        char ch = in[i];
        int v;
        switch (c->state) {
        case CH_SIZE0:
            if ((v = hexval(ch)) < 0) goto bad;
            c->left = (uint64_t)v;
            c->digits = 1;
            c->state = CH_SIZE;
            break;
        case CH_SIZE:
            if ((v = hexval(ch)) >= 0) {
                c->left = c->left << 4 | (uint64_t)v;
                if (++c->digits > 16 || c->left >= CHUNK_SIZE_MAX) goto bad;
            } else if (ch == ';' || ch == ' ' || ch == '\t') {
                c->state = CH_EXT;
                c->line = 0;
            } else if (ch == '\r') {
                c->state = CH_SIZE_LF;
            } else if (ch == '\n') {
                size_line_done(c);
            } else {
                goto bad;
            }
            break;
        case CH_EXT:
            if (ch == '\r')
                c->state = CH_SIZE_LF;
            else if (ch == '\n')
                size_line_done(c);
            else if (ch == 0 || ++c->line > CHUNK_LINE_MAX)
                goto bad;
            break;
        case CH_SIZE_LF:
            if (ch != '\n') goto bad;
            size_line_done(c);
            break;
        case CH_DATA: {
            size_t take = n - i;
            if (take > c->left) take = (size_t)c->left;
            c->left -= take;
            if (!c->left) c->state = CH_DATA_CR;
            *data = in + i;
            *dlen = take;
            *used = i + take;
            return 0;
        }
        case CH_DATA_CR:
            if (ch == '\r')
                c->state = CH_DATA_LF;
            else if (ch == '\n')
                c->state = CH_SIZE0;
            else
                goto bad;
            break;
        case CH_DATA_LF:
            if (ch != '\n') goto bad;
            c->state = CH_SIZE0;
            break;
        case CH_TRAILER:
            if (ch == '\r')
                c->state = CH_TRAILER_LF;
            else if (ch == '\n')
                c->state = CH_DONE;
            else
                c->state = CH_TRAILER_LINE;
            if (++c->line > TRAILER_MAX) goto bad;
            break;
        case CH_TRAILER_LINE:
            if (ch == '\n') c->state = CH_TRAILER;
            if (ch == 0 || ++c->line > TRAILER_MAX) goto bad;
            break;
        case CH_TRAILER_LF:
            if (ch != '\n') goto bad;
            c->state = CH_DONE;
            break;
        default:
            goto bad;
        }
        i++;
    }
    *used = i;
    return c->state == CH_DONE;
bad:
    *used = i;
    return -1;
}

/* ---- responses ---- */

const char *hp_reason(unsigned status)
{
    switch (status) {
    case 100:
        return "Continue";
    case 101:
        return "UPGRADED"; /* what dockerd sends for hijacked connections */
    case 200:
        return "OK";
    case 201:
        return "Created";
    case 202:
        return "Accepted";
    case 204:
        return "No Content";
    case 206:
        return "Partial Content";
    case 301:
        return "Moved Permanently";
    case 302:
        return "Found";
    case 304:
        return "Not Modified";
    case 400:
        return "Bad Request";
    case 401:
        return "Unauthorized";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 406:
        return "Not Acceptable";
    case 408:
        return "Request Timeout";
    case 409:
        return "Conflict";
    case 410:
        return "Gone";
    case 411:
        return "Length Required";
    case 412:
        return "Precondition Failed";
    case 413:
        return "Content Too Large";
    case 414:
        return "URI Too Long";
    case 415:
        return "Unsupported Media Type";
    case 416:
        return "Range Not Satisfiable";
    case 417:
        return "Expectation Failed";
    case 422:
        return "Unprocessable Content";
    case 429:
        return "Too Many Requests";
    case 431:
        return "Request Header Fields Too Large";
    case 500:
        return "Internal Server Error";
    case 501:
        return "Not Implemented";
    case 502:
        return "Bad Gateway";
    case 503:
        return "Service Unavailable";
    case 504:
        return "Gateway Timeout";
    case 505:
        return "HTTP Version Not Supported";
    }
    static const char *const cls[] = {"Unknown",     "Informational", "Success",
                                      "Redirection", "Client Error",  "Server Error"};
    return cls[status >= 100 && status < 600 ? status / 100 : 0];
}
