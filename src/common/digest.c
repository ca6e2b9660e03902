/* digest.c: sha256 digests ("sha256:<hex>") over OpenSSL's libcrypto.
 *
 * Kept apart from util.c so that binaries which never hash (the berth CLI)
 * do not pull this object, and with it libcrypto, into their link. */
#include <ctype.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

static void oom(void)
{
    fputs("out of memory\n", stderr);
    abort();
}

struct sha256_ctx {
    EVP_MD_CTX *md;
};
sha256_ctx *sha256_new(void)
{
    sha256_ctx *c = xmalloc(sizeof *c);
    c->md = EVP_MD_CTX_new();
    if (!c->md || !EVP_DigestInit_ex(c->md, EVP_sha256(), NULL)) oom();
    return c;
}
void sha256_update(sha256_ctx *c, const void *p, size_t n)
{
    EVP_DigestUpdate(c->md, p, n);
}
void sha256_final(sha256_ctx *c, char out[DIGEST_LEN + 1])
{
    unsigned char md[32];
    unsigned int n = 0;
    EVP_DigestFinal_ex(c->md, md, &n);
    EVP_MD_CTX_free(c->md);
    free(c);
    memcpy(out, "sha256:", 7);
    for (int i = 0; i < 32; i++) sprintf(out + 7 + 2 * i, "%02x", md[i]);
    out[DIGEST_LEN] = 0;
}
void sha256_buf(const void *p, size_t n, char out[DIGEST_LEN + 1])
{
    sha256_ctx *c = sha256_new();
    sha256_update(c, p, n);
    sha256_final(c, out);
}
bool digest_valid(const char *d)
{
    if (!d || strncmp(d, "sha256:", 7) || strlen(d) != DIGEST_LEN) return false;
    for (const char *p = d + 7; *p; p++)
        if (!isdigit((unsigned char)*p) && !(*p >= 'a' && *p <= 'f')) return false;
    return true;
}
