/* test_http_parse.c: unit tests for berthd's HTTP request parser
 * (src/daemon/http_parse.c): heads, header lookup, body framing, targets,
 * percent-decoding, query strings and chunked bodies. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/http_parse.h"

static int parse(const char *text, hp_head *h, char **keep)
{
    *keep = strdup(text);
    size_t scan = 0, end = hp_head_end(*keep, strlen(*keep), &scan);
    if (!end) return -1;
    return hp_parse_head(*keep, end, h);
}

static void test_head_end(void **st)
{
    const char *r = "GET / HTTP/1.1\r\nHost: x\r\n\r\nBODY";
    size_t scan = 0;
    for (size_t n = 0; n < 27; n++) assert_int_equal(hp_head_end(r, n, &scan), 0);
    assert_int_equal(hp_head_end(r, strlen(r), &scan), 27);
    scan = 0;
    assert_int_equal(hp_head_end("GET / HTTP/1.0\n\nx", 17, &scan), 16);
    scan = 0;
    assert_int_equal(hp_head_end("GET / HTTP/1.1\r\nA: b\r\n", 23, &scan), 0);
}

static void test_parse_head(void **st)
{
    hp_head h;
    char *b;
    assert_int_equal(parse("POST /v1.41/containers/create?name=x HTTP/1.1\r\n"
                           "Host: docker\r\ncontent-TYPE:  application/json \r\n"
                           "Empty:\r\nX-Tab:\tv\t\r\n\r\n",
                           &h, &b),
                     0);
    assert_string_equal(h.method, "POST");
    assert_string_equal(h.target, "/v1.41/containers/create?name=x");
    assert_int_equal(h.minor, 1);
    assert_int_equal(h.nh, 4);
    assert_string_equal(hp_get(&h, "Content-Type"), "application/json");
    assert_string_equal(hp_get(&h, "host"), "docker");
    assert_string_equal(hp_get(&h, "empty"), "");
    assert_string_equal(hp_get(&h, "x-tab"), "v");
    assert_null(hp_get(&h, "Content-Length"));
    free(b);
    assert_int_equal(parse("GET / HTTP/1.0\n\n", &h, &b), 0);
    assert_int_equal(h.minor, 0);
    free(b);
    assert_int_equal(parse("GET / HTTP/1.7\r\n\r\n", &h, &b), 0);
    assert_int_equal(h.minor, 1);
    free(b);
    static const char *const bad[] = {
        "GET /\r\n\r\n",
        "GET  / HTTP/1.1\r\n\r\n",
        "GET / HTTP/1.1 \r\n\r\n",
        "GET / http/1.1\r\n\r\n",
        "G(T / HTTP/1.1\r\n\r\n",
        " GET / HTTP/1.1\r\n\r\n",
        "GET / HTTP/1.1\r\nHost : x\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: x\r\n folded\r\n\r\n",
        "GET / HTTP/1.1\r\nNoColon\r\n\r\n",
        "GET / HTTP/1.1\r\n: empty name\r\n\r\n",
        "GET / HTTP/1.1\r\nA: b\rc\r\n\r\n",
        "GET /\x7f HTTP/1.1\r\n\r\n",
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        assert_int_equal(parse(bad[i], &h, &b), 400);
        free(b);
    }
    assert_int_equal(parse("GET / HTTP/2.0\r\n\r\n", &h, &b), 505);
    free(b);
    char *many = malloc(200 * 8 + 64);
    strcpy(many, "GET / HTTP/1.1\r\n");
    for (int i = 0; i < HP_MAX_HEADERS + 1; i++) strcat(many, "A: b\r\n");
    strcat(many, "\r\n");
    assert_int_equal(parse(many, &h, &b), 431);
    free(b);
    free(many);
}

static void test_tokens(void **st)
{
    assert_true(hp_has_token("keep-alive, Upgrade", "upgrade"));
    assert_true(hp_has_token("close", "close"));
    assert_true(hp_has_token(" ,Close ,", "close"));
    assert_false(hp_has_token("closed", "close"));
    assert_false(hp_has_token(NULL, "close"));
    assert_false(hp_has_token("", "close"));
}

static int framing(const char *head, bool *chunked, uint64_t *len)
{
    hp_head h;
    char *b;
    int rc = parse(head, &h, &b);
    if (rc == 0) rc = hp_body_length(&h, chunked, len);
    free(b);
    return rc;
}

static void test_body_length(void **st)
{
    bool ch;
    uint64_t len;
    assert_int_equal(framing("GET / HTTP/1.1\r\n\r\n", &ch, &len), 0);
    assert_false(ch);
    assert_int_equal(len, 0);
    assert_int_equal(framing("PUT / HTTP/1.1\r\nContent-Length: 1234\r\n\r\n", &ch, &len), 0);
    assert_int_equal(len, 1234);
    assert_int_equal(
        framing("PUT / HTTP/1.1\r\nContent-Length: 5\r\ncontent-length: 5\r\n\r\n", &ch, &len), 0);
    assert_int_equal(len, 5);
    assert_int_equal(framing("PUT / HTTP/1.1\r\nTransfer-Encoding: Chunked\r\n\r\n", &ch, &len), 0);
    assert_true(ch);
    assert_int_equal(
        framing("PUT / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n", &ch, &len),
        400);
    assert_int_equal(framing("PUT / HTTP/1.1\r\nContent-Length: -1\r\n\r\n", &ch, &len), 400);
    assert_int_equal(framing("PUT / HTTP/1.1\r\nContent-Length: 1 2\r\n\r\n", &ch, &len), 400);
    assert_int_equal(framing("PUT / HTTP/1.1\r\nContent-Length:\r\n\r\n", &ch, &len), 400);
    assert_int_equal(
        framing("PUT / HTTP/1.1\r\nContent-Length: 99999999999999999999\r\n\r\n", &ch, &len), 400);
    assert_int_equal(
        framing("PUT / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n", &ch,
                &len),
        400);
    assert_int_equal(
        framing("PUT / HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", &ch, &len), 501);
}

static void test_target_and_query(void **st)
{
    char t1[] = "/v1.41/images/a%2Fb%20c+d/json?x=1&y";
    char *q, *p = hp_split_target(t1, &q);
    assert_string_equal(p, "/v1.41/images/a%2Fb%20c+d/json");
    assert_string_equal(q, "x=1&y");
    assert_int_equal(hp_unescape(p, false), strlen("/v1.41/images/a/b c+d/json"));
    assert_string_equal(p, "/v1.41/images/a/b c+d/json");
    char t2[] = "http://localhost:2375/_ping";
    assert_string_equal(hp_split_target(t2, &q), "/_ping");
    assert_null(q);
    char t3[] = "http://localhost";
    assert_string_equal(hp_split_target(t3, &q), "/");
    char bad[] = "100%%zz%4%41%00x";
    assert_int_equal(hp_unescape(bad, false), 12);
    assert_memory_equal(bad, "100%%zz%4A\0x", 12);
}

struct args {
    int n;
    char k[8][32], v[8][32];
};

static void add(void *arg, char *key, char *value)
{
    struct args *a = arg;
    assert_true(a->n < 8);
    strcpy(a->k[a->n], key);
    strcpy(a->v[a->n++], value);
}

static void test_query(void **st)
{
    char q[] = "names=a&names=b%3Ac&&force&filters=%7B%22a%22%3A1%7D&msg=hello+world&=x&e=";
    struct args a = {0};
    hp_parse_query(q, add, &a);
    assert_int_equal(a.n, 7);
    assert_string_equal(a.k[0], "names");
    assert_string_equal(a.v[0], "a");
    assert_string_equal(a.v[1], "b:c");
    assert_string_equal(a.k[2], "force");
    assert_string_equal(a.v[2], "");
    assert_string_equal(a.v[3], "{\"a\":1}");
    assert_string_equal(a.v[4], "hello world");
    assert_string_equal(a.k[5], "");
    assert_string_equal(a.v[5], "x");
    assert_string_equal(a.k[6], "e");
    assert_string_equal(a.v[6], "");
}

/* Decodes in pieces of step bytes; returns the status, the body in out. */
static int dechunk(const char *in, size_t step, char *out, size_t *consumed)
{
    hp_chunked c = {0};
    size_t n = strlen(in), off = 0, olen = 0;
    int rc = 0;
    while (off < n && rc == 0) {
        size_t piece = n - off < step ? n - off : step, used, dlen;
        const char *data;
        rc = hp_chunked_feed(&c, in + off, piece, &used, &data, &dlen);
        memcpy(out + olen, data ? data : "", dlen);
        olen += dlen;
        off += used;
    }
    out[olen] = 0;
    *consumed = off;
    return rc;
}

static void test_chunked(void **st)
{
    const char *body =
        "5\r\nhello\r\n1;name=v\r\n \r\nA\r\n0123456789\r\n0\r\nTrailer: x\r\n\r\nNEXT";
    char out[64];
    size_t used;
    for (size_t step = 1; step < 80; step++) {
        assert_int_equal(dechunk(body, step, out, &used), 1);
        assert_string_equal(out, "hello 0123456789");
        assert_int_equal(used, strlen(body) - 4);
    }
    assert_int_equal(dechunk("3\nabc\n0\n\n", 1, out, &used), 1);
    assert_string_equal(out, "abc");
    assert_int_equal(dechunk("3\r\nabc\r\n", 2, out, &used), 0);
    assert_int_equal(dechunk("3 ;x\r\nabc\r\n0\r\n\r\n", 3, out, &used), 1);
    static const char *const bad[] = {
        "x\r\n",  "3\r\nabcd\r\n",         "\r\n",           "3\rx",
        "-1\r\n", "11111111111111111\r\n", "3\r\nabc\r\r\n", "0\r\n\r\x01",
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        assert_int_equal(dechunk(bad[i], 3, out, &used), -1);
}

static void test_reason(void **st)
{
    assert_string_equal(hp_reason(200), "OK");
    assert_string_equal(hp_reason(101), "UPGRADED");
    assert_string_equal(hp_reason(431), "Request Header Fields Too Large");
    assert_string_equal(hp_reason(499), "Client Error");
    assert_string_equal(hp_reason(42), "Unknown");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_head_end),         cmocka_unit_test(test_parse_head),
        cmocka_unit_test(test_tokens),           cmocka_unit_test(test_body_length),
        cmocka_unit_test(test_target_and_query), cmocka_unit_test(test_query),
        cmocka_unit_test(test_chunked),          cmocka_unit_test(test_reason),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
