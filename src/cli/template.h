/* template.h: a Go text/template subset evaluated against jansson values.
 *
 * Supports what docker users write in --format: raw text, {{.Field.Chain}},
 * {{.}}, $ and $variables (:= and =), pipelines with |, parenthesized
 * pipelines, {{if}}/{{else if}}/{{else}}/{{end}}, {{range}} (with $i, $e :=,
 * {{else}}, {{break}}, {{continue}}), {{with}}, comments, {{- and -}} trim
 * markers, string/raw/char/number/bool literals, Go's builtins (and, or, not,
 * len, index, slice, print, printf, println, eq, ne, lt, le, gt, ge, html,
 * js, urlquery) and docker's (json, split, join, title, lower, upper, pad,
 * truncate). Values print as Go's fmt does: arrays as [a b], objects as
 * map[k:v] (sorted keys), null as <no value> at top level and <nil> inside.
 * Errors read like Go's: "template: :1: unexpected EOF" or
 * "template: :1:2: executing \"\" at <.Foo>: ...". */
#ifndef BERTH_TEMPLATE_H
#define BERTH_TEMPLATE_H

#include <jansson.h>
#include <stdbool.h>

#include "common/util.h"

typedef struct tmpl tmpl;

/* Optional Go type hints for a value tree, so that printing and lookups
 * behave as on docker's typed structs. A hint is a JSON value:
 *   "slice"   null prints "[]"          "map"  null prints "map[]"
 *   "mapstr"  like map, but a missing {{index}} key gives ""
 *   "ptr"     null prints "<nil>"       "str"  null prints ""
 *   {...}     a struct: prints {v1 v2}; members give hints of its fields
 *   [h]       a slice whose elements have hint h */
typedef struct tmpl_opts {
    /* A missing map key is an error (map has no entry for key "X") instead
     * of <no value>; docker inspect runs templates this way. */
    bool missingkey_error;
    /* When set, the top-level value is a Go struct of this type name (e.g.
     * "*formatter.imageContext"): unknown fields are errors. */
    const char *struct_name;
    /* Header mode (docker's table headers): json, split, join, title, lower,
     * upper and truncate return their first argument unchanged. */
    bool header;
    const json_t *hints; /* may be NULL */
    /* When set, {{json .}} on the top-level value prints this instead (a
     * Go struct whose JSON names differ from its field names). */
    const json_t *json_self;
} tmpl_opts;

/* Parses src; NULL with *err (malloc'd, Go-style message) on error. */
tmpl *tmpl_parse(const char *src, char **err);
/* The same for a named template: errors read "template: NAME:1: ...". */
tmpl *tmpl_parse_named(const char *name, const char *src, char **err);
/* Executes t against data (opts may be NULL), appending to out. On error
 * returns -1 and sets *err; out keeps what was written before the error. */
int tmpl_exec(const tmpl *t, const json_t *data, const tmpl_opts *opts, sbuf *out, char **err);
void tmpl_free(tmpl *t);

/* Parses and executes in one go; returns malloc'd output or NULL + *err. */
char *tmpl_render(const char *src, const json_t *data, const tmpl_opts *opts, char **err);

/* Go's json.Marshal of v (HTML escaping off, as docker's json function):
 * compact, members in stored order, floats in shortest form. */
void tmpl_json(sbuf *out, const json_t *v);
/* Go's fmt %v rendering of v (nested form: null prints <nil>). */
void tmpl_print_value(sbuf *out, const json_t *v);

#endif
