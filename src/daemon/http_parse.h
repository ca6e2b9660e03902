/* http_parse.h: the wire format half of berthd's HTTP/1.1 server (http.c),
 * without sockets, so that it can be fuzzed (tests/fuzz/fuzz_http.c) and
 * unit-tested on its own.
 *
 * A request head is parsed in place: the caller reads bytes into a buffer
 * until hp_head_end() finds the empty line, then hp_parse_head() splits the
 * request line and the header fields, NUL-terminating each piece inside the
 * buffer, so nothing is allocated. Bodies sent with
 * "Transfer-Encoding: chunked" go through hp_chunked, a byte-at-a-time state
 * machine that hands back the data bytes as slices of its input. */
#ifndef BERTH_HTTP_PARSE_H
#define BERTH_HTTP_PARSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define HP_HEAD_MAX (64u << 10) /* request line + headers; beyond: 431 */
#define HP_MAX_HEADERS 100      /* beyond: 431 */

typedef struct hp_header {
    const char *name, *value; /* value without surrounding blanks */
} hp_header;

typedef struct hp_head {
    const char *method;
    char *target; /* the request-target as sent: origin-form, or absolute-form */
    int minor;    /* HTTP/1.<minor>: 0 or 1 */
    hp_header h[HP_MAX_HEADERS];
    int nh;
} hp_head;

/* Length of the head at the start of buf, through the empty line that ends
 * it (CRLF CRLF, bare LFs accepted too), or 0 when it is not all there yet.
 * *scan remembers how far earlier calls looked (start it at 0), so that a
 * head arriving in pieces is scanned once. */
size_t hp_head_end(const char *buf, size_t len, size_t *scan);

/* Parses the head buf[0..len) (len from hp_head_end) in place. Returns 0,
 * or the status to answer: 400 malformed, 431 too many header fields, 505
 * not HTTP/1.x. */
int hp_parse_head(char *buf, size_t len, hp_head *h);

/* The value of the first header field called name (any case), or NULL. */
const char *hp_get(const hp_head *h, const char *name);
/* Whether the comma-separated list value holds token (any case). */
bool hp_has_token(const char *value, const char *token);

/* How the body is delimited. Returns 0 and sets *chunked or *len (0 when
 * there is no body), or the status to answer: 400 for a bad or conflicting
 * Content-Length (or both Content-Length and Transfer-Encoding), 501 for a
 * transfer coding other than chunked. */
int hp_body_length(const hp_head *h, bool *chunked, uint64_t *len);

/* Splits target at '?': returns the path (the authority of an absolute-form
 * target dropped) and sets *query to what follows '?' (or NULL). In place. */
char *hp_split_target(char *target, char **query);

/* Percent-decodes s in place ("%41" -> "A"; a '%' not followed by two hex
 * digits stays as it is), with '+' as a space when plus is set. Returns the
 * decoded length: a "%00" leaves a NUL inside, which the caller may refuse. */
size_t hp_unescape(char *s, bool plus);

/* Splits a query string in place into key/value pairs, decoding both ('+'
 * is a space). "a&b=" gives ("a", "") and ("b", ""); empty pieces ("a&&b")
 * are skipped. Calls add for each pair, in order. */
void hp_parse_query(char *q, void (*add)(void *arg, char *key, char *value), void *arg);

/* ---- chunked bodies ---- */

typedef struct hp_chunked {
    int state;
    uint64_t left;   /* data bytes left in the current chunk */
    unsigned digits; /* hex digits of the size seen so far */
    size_t line;     /* bytes of the chunk extension or trailer section so far */
} hp_chunked;

/* Feeds n bytes. Returns 1 when the last chunk and the trailer section are
 * complete, 0 when more input is wanted, -1 when the encoding is malformed.
 * *used is how much of in was consumed (on 1, the rest belongs to the next
 * request). When *dlen is nonzero, in[...] holds body bytes at *data: the
 * caller takes them and calls again with the rest (in + *used). */
int hp_chunked_feed(hp_chunked *c, const char *in, size_t n, size_t *used, const char **data,
                    size_t *dlen);

/* ---- responses ---- */

/* "OK", "Not Found", ... for a status code; a generic phrase for its class
 * when the code is not in the table. */
const char *hp_reason(unsigned status);

#endif
