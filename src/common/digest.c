/* digest.c: sha256 digests in "sha256:<hex>" form (util.h), over sha256.c. */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "sha256.h"
#include "util.h"

struct sha256_ctx {
    sha256_state s;
};

static void format_digest(const unsigned char md[SHA256_SIZE], char out[DIGEST_LEN + 1])
{
    static const char hex[] = "0123456789abcdef";
    memcpy(out, "sha256:", 7);
    for (int i = 0; i < SHA256_SIZE; i++) {
        out[7 + 2 * i] = hex[md[i] >> 4];
        out[8 + 2 * i] = hex[md[i] & 15];
    }
    out[DIGEST_LEN] = 0;
}

sha256_ctx *sha256_new(void)
{
    sha256_ctx *c = xmalloc(sizeof *c);
    sha256_state_init(&c->s);
    return c;
}

void sha256_update(sha256_ctx *c, const void *p, size_t n)
{
    sha256_state_update(&c->s, p, n);
}

void sha256_final(sha256_ctx *c, char out[DIGEST_LEN + 1])
{
    unsigned char md[SHA256_SIZE];
    sha256_state_final(&c->s, md);
    free(c);
    format_digest(md, out);
}

void sha256_buf(const void *p, size_t n, char out[DIGEST_LEN + 1])
{
    sha256_state s;
    unsigned char md[SHA256_SIZE];
    sha256_state_init(&s);
    sha256_state_update(&s, p, n);
    sha256_state_final(&s, md);
    format_digest(md, out);
}

bool digest_valid(const char *d)
{
    if (!d || strncmp(d, "sha256:", 7) || strlen(d) != DIGEST_LEN) return false;
    for (const char *p = d + 7; *p; p++)
        if (!isdigit((unsigned char)*p) && !(*p >= 'a' && *p <= 'f')) return false;
    return true;
}
