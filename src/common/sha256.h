/* sha256.h: SHA-256 (FIPS 180-4) on raw bytes, Berth's own.
 *
 * util.h's sha256_new/update/final/buf ("sha256:<hex>" digests) are built on
 * this. Two compression functions: portable C, and on x86-64 CPUs with the
 * SHA extensions (SHA-NI) one using them, chosen once at run time with
 * cpuid. Both are exposed so that tests and benchmarks can compare them. */
#ifndef BERTH_SHA256_H
#define BERTH_SHA256_H

#include <stddef.h>
#include <stdint.h>

#define SHA256_BLOCK_SIZE 64
#define SHA256_SIZE 32

/* Compresses n 64-byte blocks at p into the state h. */
typedef void sha256_blocks_fn(uint32_t h[8], const unsigned char *p, size_t n);

typedef struct sha256_state {
    uint32_t h[8];
    uint64_t bytes; /* message length so far */
    size_t fill;    /* bytes waiting in buf */
    unsigned char buf[SHA256_BLOCK_SIZE];
    sha256_blocks_fn *blocks; /* set by sha256_state_init; tests may replace it */
} sha256_state;

void sha256_state_init(sha256_state *s);
void sha256_state_update(sha256_state *s, const void *p, size_t n);
void sha256_state_final(sha256_state *s, unsigned char out[SHA256_SIZE]);

/* The compression functions. sha256_blocks_shani() is NULL when this CPU
 * (or this build) has no SHA-NI path; sha256_blocks_best() is the one
 * sha256_state_init picks; sha256_impl_name() says which ("sha-ni" or
 * "generic"). */
void sha256_blocks_generic(uint32_t h[8], const unsigned char *p, size_t n);
sha256_blocks_fn *sha256_blocks_shani(void);
sha256_blocks_fn *sha256_blocks_best(void);
const char *sha256_impl_name(void);

#endif
