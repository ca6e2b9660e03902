/* fuzz_json.c: libFuzzer target, differential, for jsonfast.c (request
 * bodies, config.json and every record go through it): whatever its
 * parser takes, jansson takes too and gives the same value, types and
 * member order; json_fast_loadb always agrees with json_loadb; and
 * json_fast_dumps writes what json_dumps writes. The first byte picks the
 * flags. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/jsonutil.h"

static void same(json_t *a, json_t *b)
{
    if (!a != !b) abort();
    if (!a) return;
    if (!json_equal(a, b)) abort();
    char *x = json_dumps(a, JSON_ENCODE_ANY | JSON_COMPACT);
    char *y = json_dumps(b, JSON_ENCODE_ANY | JSON_COMPACT);
    if (!x || !y || strcmp(x, y)) abort();
    free(x), free(y);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!size) return 0;
    size_t flags = data[0] & 1 ? JSON_DECODE_ANY : 0;
    const char *doc = (const char *)data + 1;
    size_t n = size - 1;
    json_error_t je1, je2;
    json_t *j = json_loadb(doc, n, flags, &je1);
    json_t *f = json_fast_parse(doc, n, flags);
    json_t *l = json_fast_loadb(doc, n, flags, &je2);
    if (f) same(f, j);
    same(l, j);
    if (!j && strcmp(je1.text, je2.text)) abort();
    for (int any = 0; j && any < 2; any++) {
        size_t df = JSON_COMPACT | (any ? JSON_ENCODE_ANY : 0);
        char *x = json_dumps(j, df), *y = json_fast_dumps(j, df);
        if (!x != !y || (x && strcmp(x, y))) abort();
        free(x), free(y);
    }
    json_decref(j), json_decref(f), json_decref(l);
    return 0;
}
