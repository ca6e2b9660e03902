/* fuzz_template.c: libFuzzer target for the --format template engine
 * (parse, then execute against a fixed document). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cli/template.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static json_t *doc;
    if (!doc)
        doc = json_pack("{s:s,s:[s,s],s:{s:s},s:i,s:b,s:n}", "ID", "abc", "Names", "/a", "/b",
                        "Labels", "k", "v", "Size", 42, "Running", 1, "Nothing");
    char *s = strndup((const char *)data, size);
    char *err = NULL;
    tmpl *t = tmpl_parse(s, &err);
    free(err);
    err = NULL;
    if (t) {
        sbuf out = {0};
        tmpl_opts o = {0};
        tmpl_exec(t, doc, &o, &out, &err);
        free(err);
        sbuf_free(&out);
        tmpl_free(t);
    }
    free(s);
    return 0;
}
