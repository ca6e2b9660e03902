/* template_print.c: Go-style printing of jansson values for templates.
 *
 * Renders values as Go's fmt %v does (arrays as [a b], objects as map[k:v]
 * with sorted keys, type hints for nil values and structs) and as Go's
 * encoding/json does. Owns tmpl_json and tmpl_print_value. */
#include "template_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------ */
/* value printing: Go's fmt %v and encoding/json                       */
/* ------------------------------------------------------------------ */

/* Shortest digits that round-trip, in the style given ('e' or 'f' rules). */
static void fmt_float(sbuf *out, double d, bool json_style)
{
    if (isnan(d) || isinf(d)) {
        sbuf_adds(out, isnan(d) ? "NaN" : d > 0 ? "+Inf" : "-Inf");
        return;
    }
    char buf[64];
    int prec;
    for (prec = 1; prec < 17; prec++) {
        snprintf(buf, sizeof buf, "%.*e", prec - 1, d);
        if (strtod(buf, NULL) == d) break;
    }
    snprintf(buf, sizeof buf, "%.*e", prec - 1, d);
    int exp = atoi(strchr(buf, 'e') + 1);
    double a = d < 0 ? -d : d;
    bool use_exp = json_style ? (a != 0 && (a < 1e-6 || a >= 1e21)) : (exp < -4 || exp >= 6);
    if (use_exp) {
        /* Go: mantissa without trailing zeros, exponent at least 2 digits
         * for %v, and no zero padding for JSON (1e-7). */
        char *e = strchr(buf, 'e');
        sbuf_add(out, buf, (size_t)(e - buf));
        int x = atoi(e + 1);
        if (json_style)
            sbuf_printf(out, "e%c%d", x < 0 ? '-' : '+', abs(x));
        else
            sbuf_printf(out, "e%c%02d", x < 0 ? '-' : '+', abs(x));
        return;
    }
    int decimals = prec - 1 - exp;
    snprintf(buf, sizeof buf, "%.*f", decimals > 0 ? decimals : 0, d);
    sbuf_adds(out, buf);
}

static void print_number(sbuf *out, const json_t *v)
{
    if (json_is_integer(v))
        sbuf_printf(out, "%lld", (long long)json_integer_value(v));
    else
        fmt_float(out, json_real_value(v), false);
}

void json_string_enc(sbuf *out, const char *s, size_t n)
{
    sbuf_adds(out, "\"");
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\')
            sbuf_printf(out, "\\%c", c);
        else if (c == '\n')
            sbuf_adds(out, "\\n");
        else if (c == '\r')
            sbuf_adds(out, "\\r");
        else if (c == '\t')
            sbuf_adds(out, "\\t");
        else if (c < 0x20)
            sbuf_printf(out, "\\u%04x", c);
        else if (c == 0xE2 && i + 2 < n && (unsigned char)s[i + 1] == 0x80 &&
                 ((unsigned char)s[i + 2] == 0xA8 || (unsigned char)s[i + 2] == 0xA9)) {
            sbuf_printf(out, "\\u202%c", (unsigned char)s[i + 2] == 0xA8 ? '8' : '9');
            i += 2;
        } else
            sbuf_add(out, &s[i], 1);
    }
    sbuf_adds(out, "\"");
}

void tmpl_json(sbuf *out, const json_t *v)
{
    size_t i;
    const char *k;
    json_t *x;
    switch (json_typeof(v)) {
    case JSON_OBJECT:
        sbuf_adds(out, "{");
        i = 0;
        json_object_foreach((json_t *)v, k, x)
        {
            if (i++) sbuf_adds(out, ",");
            json_string_enc(out, k, strlen(k));
            sbuf_adds(out, ":");
            tmpl_json(out, x);
        }
        sbuf_adds(out, "}");
        break;
    case JSON_ARRAY:
        sbuf_adds(out, "[");
        json_array_foreach(v, i, x)
        {
            if (i) sbuf_adds(out, ",");
            tmpl_json(out, x);
        }
        sbuf_adds(out, "]");
        break;
    case JSON_STRING:
        json_string_enc(out, json_string_value(v), json_string_length(v));
        break;
    case JSON_INTEGER:
        sbuf_printf(out, "%lld", (long long)json_integer_value(v));
        break;
    case JSON_REAL:
        fmt_float(out, json_real_value(v), true);
        break;
    case JSON_TRUE:
        sbuf_adds(out, "true");
        break;
    case JSON_FALSE:
        sbuf_adds(out, "false");
        break;
    default:
        sbuf_adds(out, "null");
        break;
    }
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Object keys, sorted as Go's fmt and range sort map keys. Caller frees. */
const char **sorted_keys(const json_t *o, size_t *n)
{
    *n = json_object_size(o);
    const char **keys = xcalloc(*n + 1, sizeof *keys);
    size_t i = 0;
    const char *k;
    json_t *x;
    json_object_foreach((json_t *)o, k, x) keys[i++] = k;
    qsort(keys, *n, sizeof *keys, cmp_str);
    return keys;
}

const json_t *hint_field(const json_t *hint, const char *key)
{
    return json_is_object(hint) ? json_object_get(hint, key) : NULL;
}
const json_t *hint_elem(const json_t *hint)
{
    return json_is_array(hint) ? json_array_get(hint, 0) : NULL;
}
bool hint_is(const json_t *hint, const char *kind)
{
    return json_is_string(hint) && !strcmp(json_string_value(hint), kind);
}

/* Go's printing of a nil value of the hinted type; NULL when unknown. */
const char *hint_nil(const json_t *hint)
{
    if (json_is_array(hint) || hint_is(hint, "slice")) return "[]";
    if (hint_is(hint, "map") || hint_is(hint, "mapstr")) return "map[]";
    if (hint_is(hint, "str")) return "";
    return NULL;
}

void print_nested(sbuf *out, const json_t *v, const json_t *hint)
{
    size_t i, n;
    json_t *x;
    const char *nil;
    switch (json_typeof(v)) {
    case JSON_ARRAY:
        sbuf_adds(out, "[");
        json_array_foreach(v, i, x)
        {
            if (i) sbuf_adds(out, " ");
            print_nested(out, x, hint_elem(hint));
        }
        sbuf_adds(out, "]");
        break;
    case JSON_OBJECT:
        if (json_is_object(hint)) {
            const char *k;
            sbuf_adds(out, "{");
            i = 0;
            json_object_foreach((json_t *)v, k, x)
            {
                if (i++) sbuf_adds(out, " ");
                print_nested(out, x, hint_field(hint, k));
            }
            sbuf_adds(out, "}");
            break;
        }
        const char **keys = sorted_keys(v, &n);
        sbuf_adds(out, "map[");
        for (i = 0; i < n; i++) {
            if (i) sbuf_adds(out, " ");
            sbuf_printf(out, "%s:", keys[i]);
            print_nested(out, json_object_get(v, keys[i]), NULL);
        }
        sbuf_adds(out, "]");
        free(keys);
        break;
    case JSON_STRING:
        sbuf_add(out, json_string_value(v), json_string_length(v));
        break;
    case JSON_INTEGER:
    case JSON_REAL:
        print_number(out, v);
        break;
    case JSON_TRUE:
        sbuf_adds(out, "true");
        break;
    case JSON_FALSE:
        sbuf_adds(out, "false");
        break;
    default:
        nil = hint_nil(hint);
        sbuf_adds(out, nil ? nil : "<nil>");
        break;
    }
}

void tmpl_print_value(sbuf *out, const json_t *v)
{
    print_nested(out, v, NULL);
}
