/* fuzz_ref.c: libFuzzer target for image reference parsing (untrusted:
 * every API request names images): no crash, no overflow of the fixed
 * fields, and printing any parsed reference stays in bounds. (The familiar
 * form need not parse back: as in Docker, "docker.io/a__b.c/d" prints as
 * "a__b.c/d", whose first component then reads as an invalid registry.) */
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
        char fam[1024], name[1024];
        ref_familiar_string(&r, fam, sizeof fam);
        ref_familiar_name(&r, name, sizeof name);
        if (strlen(fam) >= sizeof fam - 1 || !strstr(fam, name)) abort();
        ref_parse(fam, &r2, &e);
    }
    ref_is_id_prefix(s);
    ref_valid_tag(s);
    free(s);
    return 0;
}
