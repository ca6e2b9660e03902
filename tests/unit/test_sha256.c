/* test_sha256.c: unit tests for src/common/sha256.c and the "sha256:<hex>"
 * digests of digest.c: FIPS 180-4 / NIST example vectors through every
 * compression function this CPU has, incremental updates split at odd
 * points, and the portable and SHA-NI paths agreeing on random buffers. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/sha256.h"
#include "common/util.h"

static const struct {
    const char *msg;
    const char *hex;
} vectors[] = {
    {"", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"},
    {"abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"},
    /* 448 bits */
    {"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
     "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"},
    /* 896 bits */
    {"abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmnoijklmnopjklmnopqklmnopqrlmno"
     "pqrsmnopqrstnopqrstu",
     "cf5b16a778af8380036ce59e7b0492370b249b11e8f07a51afac45037afee9d1"},
};
#define MILLION_A "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0"

/* The compression functions to test: always the portable one, SHA-NI
 * when this CPU has it. */
static int impls(sha256_blocks_fn *out[2])
{
    int n = 0;
    out[n++] = sha256_blocks_generic;
    if (sha256_blocks_shani()) out[n++] = sha256_blocks_shani();
    return n;
}

static void hex(const unsigned char md[SHA256_SIZE], char out[2 * SHA256_SIZE + 1])
{
    for (int i = 0; i < SHA256_SIZE; i++) sprintf(out + 2 * i, "%02x", md[i]);
}

/* Digest of p[0..n) with compression f, fed in chunks of `step` bytes
 * (0: all at once). */
static void digest_with(sha256_blocks_fn *f, const void *p, size_t n, size_t step,
                        char out[2 * SHA256_SIZE + 1])
{
    sha256_state s;
    unsigned char md[SHA256_SIZE];
    sha256_state_init(&s);
    s.blocks = f;
    if (!step) step = n ? n : 1;
    for (size_t off = 0; off < n; off += step)
        sha256_state_update(&s, (const char *)p + off, n - off < step ? n - off : step);
    sha256_state_final(&s, md);
    hex(md, out);
}

static void test_nist_vectors(void **st)
{
    sha256_blocks_fn *f[2];
    int nf = impls(f);
    char got[2 * SHA256_SIZE + 1], d[DIGEST_LEN + 1];
    for (size_t i = 0; i < sizeof vectors / sizeof vectors[0]; i++) {
        size_t n = strlen(vectors[i].msg);
        for (int k = 0; k < nf; k++) {
            digest_with(f[k], vectors[i].msg, n, 0, got);
            assert_string_equal(got, vectors[i].hex);
            digest_with(f[k], vectors[i].msg, n, 1, got); /* byte by byte */
            assert_string_equal(got, vectors[i].hex);
        }
        /* the util.h API, with whatever the CPU picks */
        sha256_buf(vectors[i].msg, n, d);
        assert_string_equal(d + 7, vectors[i].hex);
        assert_memory_equal(d, "sha256:", 7);
        assert_true(digest_valid(d));
    }
}

static void test_million_a(void **st)
{
    size_t n = 1000000;
    char *a = malloc(n);
    assert_non_null(a);
    memset(a, 'a', n);
    sha256_blocks_fn *f[2];
    int nf = impls(f);
    char got[2 * SHA256_SIZE + 1];
    static const size_t steps[] = {0, 1000, 4096, 65537};
    for (int k = 0; k < nf; k++)
        for (size_t i = 0; i < sizeof steps / sizeof steps[0]; i++) {
            digest_with(f[k], a, n, steps[i], got);
            assert_string_equal(got, MILLION_A);
        }
    char d[DIGEST_LEN + 1];
    sha256_buf(a, n, d);
    assert_string_equal(d + 7, MILLION_A);
    free(a);
}

static unsigned char *random_bytes(size_t n, unsigned seed)
{
    unsigned char *p = malloc(n ? n : 1);
    assert_non_null(p);
    uint64_t x = 0x9e3779b97f4a7c15ull ^ seed;
    for (size_t i = 0; i < n; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17; /* xorshift64 */
        p[i] = (unsigned char)(x >> 24);
    }
    return p;
}

/* sha256_new/update/final with the message cut at odd places gives the
 * same digest as sha256_buf of the whole. */
static void test_incremental_splits(void **st)
{
    size_t n = 1500;
    unsigned char *p = random_bytes(n, 7);
    char whole[DIGEST_LEN + 1], d[DIGEST_LEN + 1];
    sha256_buf(p, n, whole);
    static const size_t cuts[][4] = {
        {1, 2, 3, 5},      {55, 1, 1, 1},     {56, 8, 63, 1},  {63, 1, 64, 65}, {64, 64, 64, 64},
        {65, 127, 129, 0}, {3, 61, 119, 200}, {0, 0, 1, 1499}, {1499, 0, 0, 0}, {7, 111, 333, 999},
    };
    for (size_t c = 0; c < sizeof cuts / sizeof cuts[0]; c++) {
        sha256_ctx *h = sha256_new();
        size_t off = 0;
        for (int i = 0; i < 4 && off < n; i++) {
            size_t take = cuts[c][i] < n - off ? cuts[c][i] : n - off;
            sha256_update(h, p + off, take);
            off += take;
        }
        sha256_update(h, p + off, n - off);
        sha256_final(h, d);
        assert_string_equal(d, whole);
    }
    /* every split point of a 200-byte message, and every chunk size */
    sha256_buf(p, 200, whole);
    for (size_t cut = 0; cut <= 200; cut++) {
        sha256_ctx *h = sha256_new();
        sha256_update(h, p, cut);
        sha256_update(h, p + cut, 200 - cut);
        sha256_final(h, d);
        assert_string_equal(d, whole);
    }
    sha256_blocks_fn *f[2];
    int nf = impls(f);
    char got[2 * SHA256_SIZE + 1];
    for (int k = 0; k < nf; k++)
        for (size_t step = 1; step <= 200; step++) {
            digest_with(f[k], p, 200, step, got);
            assert_string_equal(got, whole + 7);
        }
    free(p);
}

/* The SHA-NI path and the portable one agree on random buffers of many
 * lengths, from unaligned addresses, whole and in pieces. */
static void test_generic_matches_shani(void **st)
{
    sha256_blocks_fn *ni = sha256_blocks_shani();
    if (!ni) {
        print_message("no SHA-NI on this CPU: nothing to compare\n");
        skip();
    }
    assert_string_equal(sha256_impl_name(), "sha-ni");
    char a[2 * SHA256_SIZE + 1], b[2 * SHA256_SIZE + 1];
    for (size_t n = 0; n <= 1100; n++) {
        unsigned char *p = random_bytes(n + 3, (unsigned)n);
        digest_with(sha256_blocks_generic, p + n % 4, n, 0, a);
        digest_with(ni, p + n % 4, n, 0, b);
        assert_string_equal(a, b);
        free(p);
    }
    static const size_t big[] = {4095, 65536, 65599, 1 << 20, (1 << 20) + 13, 3000017};
    for (size_t i = 0; i < sizeof big / sizeof big[0]; i++) {
        unsigned char *p = random_bytes(big[i] + 1, (unsigned)i + 1000);
        digest_with(sha256_blocks_generic, p + 1, big[i], 0, a);
        digest_with(ni, p + 1, big[i], 0, b);
        assert_string_equal(a, b);
        digest_with(ni, p + 1, big[i], 4093, b);
        assert_string_equal(a, b);
        free(p);
    }
    /* the block functions themselves, on a state that is not the IV */
    unsigned char *p = random_bytes(64 * 37, 99);
    uint32_t h1[8], h2[8];
    for (int i = 0; i < 8; i++) h1[i] = h2[i] = 0x01234567u * (uint32_t)(i + 1);
    sha256_blocks_generic(h1, p, 37);
    ni(h2, p, 37);
    assert_memory_equal(h1, h2, sizeof h1);
    free(p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_nist_vectors),
        cmocka_unit_test(test_million_a),
        cmocka_unit_test(test_incremental_splits),
        cmocka_unit_test(test_generic_matches_shani),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
