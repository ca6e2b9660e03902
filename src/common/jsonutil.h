/* jsonutil.h: jansson helpers and Docker's filter arguments.
 *
 * Filters arrive as the JSON query value `filters`, either the current form
 * {"key":{"value":true}} or the legacy {"key":["value"]}; filters_parse
 * normalizes both to {"key":["value",...]}. */
#ifndef BERTH_JSONUTIL_H
#define BERTH_JSONUTIL_H

#include <jansson.h>

#include "util.h"

/* json_loadb, faster (jsonfast.c): flags 0 or JSON_DECODE_ANY are parsed
 * by a parser of Berth's own, which leaves anything it does not take (and
 * every error, reported in jansson's words) to jansson. */
json_t *json_fast_loadb(const char *buf, size_t len, size_t flags, json_error_t *je);
/* That parser alone: NULL where it leaves the input to jansson. */
json_t *json_fast_parse(const char *buf, size_t len, size_t flags);
/* json_dumps, faster, byte for byte the same: JSON_COMPACT (with
 * JSON_ENCODE_ANY, JSON_PRESERVE_ORDER) documents of ASCII strings, integers
 * and constants are written by Berth; others by jansson. */
char *json_fast_dumps(const json_t *j, size_t flags);
/* The same appended to b; -1 (b as it was) where jansson has to write it. */
int json_fast_dump_sbuf(const json_t *j, size_t flags, sbuf *b);
/* Parses a request body; 400 with a clear message when malformed. */
json_t *json_parse_body(const char *data, size_t len, berr *e);
/* A JSON file read whole, then parsed from memory: json_load_file reads it
 * through stdio one character at a time (~10% of a config.json's parse).
 * NULL with je filled, as jansson fills it ("unable to open PATH: ..."). */
json_t *json_load_path(const char *path, json_error_t *je);
/* Object member as string, or NULL when absent or not a string. */
const char *jstr(const json_t *obj, const char *key);
/* Dumps compactly (as Go's encoding/json would) into a malloc'd string. */
char *json_dump_compact(const json_t *j);
/* Cleanup attribute for json_t * (jansson's own json_decrefp) */
#define _cleanup_json_ __attribute__((cleanup(json_decrefp)))

/* filters: NULL/empty string gives an empty object. `allowed` is a NULL-ended
 * list of accepted keys; another key is a 400 "invalid filter 'key'". */
json_t *filters_parse(const char *query, const char *const *allowed, berr *e);
/* The values given for key (a JSON array, borrowed), or NULL. */
json_t *filters_get(const json_t *f, const char *key);
/* True when the key is absent or one of its values equals v. */
bool filters_match(const json_t *f, const char *key, const char *v);
/* label filters: each "k" or "k=v" value must match labels (a JSON object). */
bool filters_match_labels(const json_t *f, const char *key, const json_t *labels);

#endif
