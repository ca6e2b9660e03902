/* fuzz_http.c: libFuzzer target for berthd's HTTP request parser
 * (src/daemon/http_parse.c), which reads bytes from any client of the API
 * socket: request heads, targets, query strings and chunked bodies. Checks
 * bounds (ASan), that a head found in two pieces is the one found at once,
 * that a parsed head holds only what the grammar allows, and that chunked
 * decoding gives the same bytes and end whether the input comes at once or
 * in pieces. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/http_parse.h"

static void check_arg(void *arg, char *key, char *value)
{
    size_t *n = arg;
    if (!key || !value) abort();
    (*n)++;
}

static void check_head(char *buf, size_t end)
{
    static hp_head h;
    int st = hp_parse_head(buf, end, &h);
    if (st == 400 || st == 431 || st == 505) return;
    if (st != 0 || !h.method[0] || !h.target[0] || h.nh > HP_MAX_HEADERS ||
        (h.minor != 0 && h.minor != 1))
        abort();
    for (int i = 0; i < h.nh; i++) {
        if (!h.h[i].name[0] || strpbrk(h.h[i].name, " \t\r\n:")) abort();
        if (strpbrk(h.h[i].value, "\r\n")) abort();
    }
    bool chunked;
    uint64_t len;
    st = hp_body_length(&h, &chunked, &len);
    if (st != 0 && st != 400 && st != 501) abort();
    if (st == 0 && chunked && len) abort();
    hp_has_token(hp_get(&h, "Connection"), "close");
    hp_has_token(hp_get(&h, "connection"), "keep-alive");
    char *query, *path = hp_split_target(h.target, &query);
    size_t plen = strlen(path);
    if (hp_unescape(path, false) > plen) abort();
    size_t nargs = 0;
    if (query) hp_parse_query(query, check_arg, &nargs);
    hp_reason((unsigned)h.nh * 7);
}

/* Decodes in pieces of `step` bytes (0: all at once). Returns the status;
 * the decoded bytes go to out, *consumed is how much input was used. */
static int dechunk(const char *in, size_t n, size_t step, char *out, size_t *olen, size_t *consumed)
{
    hp_chunked c = {0};
    size_t off = 0;
    *olen = 0;
    int rc = 0;
    while (off < n) {
        size_t piece = step && n - off > step ? step : n - off;
        size_t used;
        const char *data;
        size_t dlen;
        rc = hp_chunked_feed(&c, in + off, piece, &used, &data, &dlen);
        if (used > piece || (dlen && (data < in + off || data + dlen > in + off + used))) abort();
        if (dlen) memcpy(out + *olen, data, dlen);
        *olen += dlen;
        off += used;
        if (rc != 0) break;
        if (!used && !dlen) abort(); /* no progress */
    }
    *consumed = off;
    return rc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *buf = malloc(size + 1);
    memcpy(buf, data, size);
    buf[size] = 0;
    size_t scan = 0, scan2 = 0, half = size / 2;
    size_t end = hp_head_end(buf, size, &scan);
    size_t e1 = hp_head_end(buf, half, &scan2);
    size_t e2 = e1 ? e1 : hp_head_end(buf, size, &scan2);
    if (e2 != end || end > size) abort();
    if (end) check_head(buf, end);

    /* what follows the head (or everything) as a chunked body */
    const char *body = (const char *)data + end;
    size_t blen = size - end;
    char *o1 = malloc(blen + 1), *o2 = malloc(blen + 1);
    size_t l1, l2, c1, c2;
    int r1 = dechunk(body, blen, 0, o1, &l1, &c1);
    int r2 = dechunk(body, blen, 1 + (size % 7), o2, &l2, &c2);
    if (r1 != r2 || l1 != l2 || memcmp(o1, o2, l1) || (r1 != 0 && c1 != c2)) abort();
    if (l1 > blen) abort();
    free(o1);
    free(o2);
    free(buf);
    return 0;
}
