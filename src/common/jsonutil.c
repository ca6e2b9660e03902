/* jsonutil.c: jansson helpers and filter parsing; see jsonutil.h. */
#include "jsonutil.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

json_t *json_parse_body(const char *data, size_t len, berr *e)
{
    json_error_t je;
    if (!data || len == 0) {
        berr_set(e, 400, "empty request body");
        return NULL;
    }
    json_t *j = json_fast_loadb(data, len, JSON_DECODE_ANY, &je);
    if (!j) berr_set(e, 400, "malformed JSON in request body: %s (line %d)", je.text, je.line);
    return j;
}

const char *jstr(const json_t *obj, const char *key)
{
    json_t *v = json_object_get(obj, key);
    return json_is_string(v) ? json_string_value(v) : NULL;
}

char *json_dump_compact(const json_t *j)
{
    char *s = json_fast_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY | JSON_PRESERVE_ORDER);
    return s ? s : xstrdup("null");
}

json_t *filters_parse(const char *query, const char *const *allowed, berr *e)
{
    json_t *out = json_object();
    if (!query || !*query) return out;
    json_error_t je;
    json_t *in = json_fast_loadb(query, strlen(query), 0, &je);
    if (!in || !json_is_object(in)) {
        json_decref(in);
        json_decref(out);
        berr_set(e, 400, "invalid filter: %s", query);
        return NULL;
    }
    const char *key;
    json_t *val;
    json_object_foreach(in, key, val)
    {
        bool ok = allowed == NULL;
        for (const char *const *a = allowed; a && *a; a++)
            if (!strcmp(*a, key)) ok = true;
        if (!ok || (!json_is_array(val) && !json_is_object(val) && !json_is_string(val))) {
            berr_set(e, 400, ok ? "Invalid filter value for '%s'" : "Invalid filter '%s'", key);
            json_decref(in);
            json_decref(out);
            return NULL;
        }
        json_t *arr = json_array();
        if (json_is_array(val)) {
            size_t i;
            json_t *v;
            json_array_foreach(val, i, v) if (json_is_string(v)) json_array_append(arr, v);
        } else if (json_is_object(val)) {
            const char *k;
            json_t *v;
            json_object_foreach(val, k, v) if (json_is_true(v))
                json_array_append_new(arr, json_string(k));
        } else if (json_is_string(val)) {
            json_array_append(arr, val);
        }
        json_object_set_new(out, key, arr);
    }
    json_decref(in);
    return out;
}

json_t *filters_get(const json_t *f, const char *key)
{
    json_t *a = json_object_get(f, key);
    return json_is_array(a) && json_array_size(a) ? a : NULL;
}

bool filters_match(const json_t *f, const char *key, const char *v)
{
    json_t *a = filters_get(f, key);
    if (!a) return true;
    size_t i;
    json_t *x;
    json_array_foreach(a, i, x) if (v && !strcmp(json_string_value(x), v)) return true;
    return false;
}

bool filters_match_labels(const json_t *f, const char *key, const json_t *labels)
{
    json_t *a = filters_get(f, key);
    if (!a) return true;
    size_t i;
    json_t *x;
    json_array_foreach(a, i, x)
    {
        const char *s = json_string_value(x);
        const char *eq = strchr(s, '=');
        char *k = eq ? xstrndup(s, (size_t)(eq - s)) : xstrdup(s);
        json_t *lv = json_object_get(labels, k);
        free(k);
        if (!json_is_string(lv)) return false;
        if (eq && strcmp(json_string_value(lv), eq + 1)) return false;
    }
    return true;
}

json_t *json_load_path(const char *path, json_error_t *je)
{
    char *data = NULL;
    size_t len = 0;
    if (read_file(path, &data, &len) < 0) {
        if (je) {
            memset(je, 0, sizeof *je);
            snprintf(je->text, sizeof je->text, "unable to open %s: %s", path, strerror(errno));
            snprintf(je->source, sizeof je->source, "%s", path);
        }
        return NULL;
    }
    json_error_t local;
    json_t *j = json_fast_loadb(data, len, 0, je ? je : &local);
    free(data);
    return j;
}
