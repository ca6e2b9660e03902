/* fuzz_ref.c: libFuzzer target for image reference parsing (untrusted:
 * every API request names images). Checks that a parsed reference prints
 * back to a string that parses to the same familiar name. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "image/ref.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *s = strndup((const char *)data, size);
    ref r, r2;
    berr e;
    if (ref_parse(s, &r, &e) == 0) {
        char fam[1024], again[1024];
        ref_familiar_string(&r, fam, sizeof fam);
        if (ref_parse(fam, &r2, &e) != 0) abort();
        ref_familiar_string(&r2, again, sizeof again);
        if (strcmp(fam, again)) abort();
    }
    ref_is_id_prefix(s);
    ref_valid_tag(s);
    free(s);
    return 0;
}
