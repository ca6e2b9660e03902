/* fuzz_filters.c: libFuzzer target for the `filters` query parameter and
 * request bodies (JSON from any client). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/jsonutil.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char *const keys[] = {"reference", "dangling", "label", "before", "since", NULL};
    char *s = strndup((const char *)data, size);
    berr e;
    json_t *f = filters_parse(s, keys, &e);
    if (f) {
        filters_match(f, "reference", "busybox");
        json_t *labels = json_pack("{s:s}", "a", "b");
        filters_match_labels(f, "label", labels);
        json_decref(labels);
        json_decref(f);
    } else if (e.status != 400) {
        abort();
    }
    json_t *j = json_parse_body((const char *)data, size, &e); /* s may be shorter than size */
    json_decref(j);
    free(s);
    return 0;
}
