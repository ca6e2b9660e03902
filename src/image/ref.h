/* ref.h: image references as Docker parses them (distribution/reference).
 *
 * "busybox" -> domain docker.io, path library/busybox, tag latest;
 * "localhost:5000/a/b:1" -> domain localhost:5000, path a/b, tag 1;
 * "a/b@sha256:..." -> digest. Names must be lowercase; `UPPER/Case`,
 * `a//b`, empty components are invalid. The familiar form (what `docker
 * images` shows) drops "docker.io/" and "library/". */
#ifndef BERTH_REF_H
#define BERTH_REF_H

#include "common/util.h"

typedef struct ref {
    char domain[256];            /* "docker.io" when none given */
    char path[512];              /* "library/busybox" */
    char tag[129];               /* "" when none given */
    char digest[DIGEST_LEN + 1]; /* "" when none */
} ref;

/* Parses s. 400 "invalid reference format" (with Docker's wording for
 * uppercase: "invalid reference format: repository name must be lowercase"). */
int ref_parse(const char *s, ref *r, berr *e);
/* The familiar repository name: "busybox", "user/app", "localhost:5000/app". */
void ref_familiar_name(const ref *r, char *out, size_t n);
/* familiar name + ":tag" (tag defaults to latest) or "@digest" when digest set
 * and no tag. */
void ref_familiar_string(const ref *r, char *out, size_t n);
/* Is the string a valid tag ([\w][\w.-]{0,127})? */
bool ref_valid_tag(const char *tag);
/* Does s look like a full or partial hex ID ("sha256:abc", "abc123")? */
bool ref_is_id_prefix(const char *s);

#endif
