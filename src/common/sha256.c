/* sha256.c: SHA-256 (FIPS 180-4), portable C plus an x86-64 SHA-NI path.
 *
 * Layer digests are computed over gigabytes, so the compression function
 * matters: with the SHA extensions (SHA-NI: sha256rnds2, sha256msg1,
 * sha256msg2) a block costs a few dozen instructions and runs at about
 * OpenSSL's speed; the portable code is the fallback for other CPUs. The
 * choice is made once, with cpuid, by sha256_blocks_best(). See sha256.h. */
#include "sha256.h"

#include <string.h>

static const uint32_t K[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2};

/* ---- portable compression ---- */

#define ROR(x, n) (((x) >> (n)) | ((x) << (32 - (n))))
#define BSIG0(x) (ROR(x, 2) ^ ROR(x, 13) ^ ROR(x, 22))
#define BSIG1(x) (ROR(x, 6) ^ ROR(x, 11) ^ ROR(x, 25))
#define SSIG0(x) (ROR(x, 7) ^ ROR(x, 18) ^ ((x) >> 3))
#define SSIG1(x) (ROR(x, 17) ^ ROR(x, 19) ^ ((x) >> 10))
#define CH(x, y, z) ((z) ^ ((x) & ((y) ^ (z))))
#define MAJ(x, y, z) (((x) & (y)) | ((z) & ((x) | (y))))

static inline uint32_t load_be32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* One round. Instead of shifting eight variables, the callers rotate the
 * names: the new e goes to d and the new a to h. */
#define RND(a, b, c, d, e, f, g, h, i, W)                                                          \
    do {                                                                                           \
        uint32_t t1_ = h + BSIG1(e) + CH(e, f, g) + K[j + (i)] + W(i);                             \
        d += t1_;                                                                                  \
        h = t1_ + BSIG0(a) + MAJ(a, b, c);                                                         \
    } while (0)
/* w[] holds the last 16 schedule words, word t at index t % 16. */
#define W_LOAD(i) w[i]
#define W_NEXT(i) (w[i] += SSIG1(w[((i) + 14) & 15]) + w[((i) + 9) & 15] + SSIG0(w[((i) + 1) & 15]))
#define RND16(W)                                                                                   \
    RND(a, b, c, d, e, f, g, h, 0, W);                                                             \
    RND(h, a, b, c, d, e, f, g, 1, W);                                                             \
    RND(g, h, a, b, c, d, e, f, 2, W);                                                             \
    RND(f, g, h, a, b, c, d, e, 3, W);                                                             \
    RND(e, f, g, h, a, b, c, d, 4, W);                                                             \
    RND(d, e, f, g, h, a, b, c, 5, W);                                                             \
    RND(c, d, e, f, g, h, a, b, 6, W);                                                             \
    RND(b, c, d, e, f, g, h, a, 7, W);                                                             \
    RND(a, b, c, d, e, f, g, h, 8, W);                                                             \
    RND(h, a, b, c, d, e, f, g, 9, W);                                                             \
    RND(g, h, a, b, c, d, e, f, 10, W);                                                            \
    RND(f, g, h, a, b, c, d, e, 11, W);                                                            \
    RND(e, f, g, h, a, b, c, d, 12, W);                                                            \
    RND(d, e, f, g, h, a, b, c, 13, W);                                                            \
    RND(c, d, e, f, g, h, a, b, 14, W);                                                            \
    RND(b, c, d, e, f, g, h, a, 15, W)

void sha256_blocks_generic(uint32_t st[8], const unsigned char *p, size_t n)
{
    for (; n; n--, p += SHA256_BLOCK_SIZE) {
        uint32_t w[16];
        uint32_t a = st[0], b = st[1], c = st[2], d = st[3], e = st[4], f = st[5], g = st[6],
                 h = st[7];
        for (int i = 0; i < 16; i++) w[i] = load_be32(p + 4 * i);
        int j = 0;
        RND16(W_LOAD);
        for (j = 16; j < 64; j += 16) {
            RND16(W_NEXT);
        }
        st[0] += a, st[1] += b, st[2] += c, st[3] += d;
        st[4] += e, st[5] += f, st[6] += g, st[7] += h;
    }
}

/* ---- SHA-NI compression (x86-64) ----
 *
 * sha256rnds2 does two rounds on the state split in two registers, ABEF
 * and CDGH (A in the highest 32-bit lane), taking W[t]+K[t] for the two
 * rounds from the low 64 bits of its third operand. After two calls the
 * roles of the registers are back where they started. sha256msg1 and
 * sha256msg2 compute four schedule words at a time:
 *   msg1(W[t-16..t-13], W[t-12..t-9])   = W[t-16+i] + sigma0(W[t-15+i])
 *   + W[t-7..t-4]                       (alignr of the last two groups)
 *   msg2(that, W[t-4..t-1])             adds sigma1(W[t-2+i]) -> W[t..t+3] */
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <cpuid.h>
#include <immintrin.h>

#define SHANI_TARGET __attribute__((target("sha,ssse3")))

/* Four rounds, 4g .. 4g+3, with m[g % 4] holding (or becoming) their W. */
#define QROUND(g)                                                                                  \
    do {                                                                                           \
        if ((g) < 4) {                                                                             \
            m[(g)&3] = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)(p + 16 * (g))), bswap);  \
        } else {                                                                                   \
            __m128i x_ = _mm_sha256msg1_epu32(m[(g)&3], m[((g) + 1) & 3]);                         \
            x_ = _mm_add_epi32(x_, _mm_alignr_epi8(m[((g) + 3) & 3], m[((g) + 2) & 3], 4));        \
            m[(g)&3] = _mm_sha256msg2_epu32(x_, m[((g) + 3) & 3]);                                 \
        }                                                                                          \
        __m128i wk_ = _mm_add_epi32(m[(g)&3], _mm_loadu_si128((const __m128i *)&K[4 * (g)]));      \
        cdgh = _mm_sha256rnds2_epu32(cdgh, abef, wk_);                                             \
        abef = _mm_sha256rnds2_epu32(abef, cdgh, _mm_shuffle_epi32(wk_, 0x0e));                    \
    } while (0)

SHANI_TARGET static void blocks_shani(uint32_t st[8], const unsigned char *p, size_t n)
{
    /* byte swap of each 32-bit lane: message words are big-endian */
    const __m128i bswap = _mm_set_epi64x(0x0c0d0e0f08090a0bLL, 0x0405060700010203LL);
    /* lanes are listed low to high */
    __m128i abcd = _mm_loadu_si128((const __m128i *)&st[0]);                /* A B C D */
    __m128i efgh = _mm_loadu_si128((const __m128i *)&st[4]);                /* E F G H */
    __m128i abef = _mm_shuffle_epi32(_mm_unpacklo_epi64(abcd, efgh), 0x1b); /* F E B A */
    __m128i cdgh = _mm_shuffle_epi32(_mm_unpackhi_epi64(abcd, efgh), 0x1b); /* H G D C */
    for (; n; n--, p += SHA256_BLOCK_SIZE) {
        __m128i abef0 = abef, cdgh0 = cdgh, m[4];
        QROUND(0);
        QROUND(1);
        QROUND(2);
        QROUND(3);
        QROUND(4);
        QROUND(5);
        QROUND(6);
        QROUND(7);
        QROUND(8);
        QROUND(9);
        QROUND(10);
        QROUND(11);
        QROUND(12);
        QROUND(13);
        QROUND(14);
        QROUND(15);
        abef = _mm_add_epi32(abef, abef0);
        cdgh = _mm_add_epi32(cdgh, cdgh0);
    }
    /* back to A B C D, E F G H */
    abef = _mm_shuffle_epi32(abef, 0x1b);        /* A B E F */
    cdgh = _mm_shuffle_epi32(cdgh, 0x1b);        /* C D G H */
    __m128i lo = _mm_unpacklo_epi64(abef, cdgh); /* A B C D */
    __m128i hi = _mm_unpackhi_epi64(abef, cdgh); /* E F G H */
    _mm_storeu_si128((__m128i *)&st[0], lo);
    _mm_storeu_si128((__m128i *)&st[4], hi);
}

static int cpu_has_shani(void)
{
    unsigned a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d)) return 0;
    if (!(c & (1u << 9))) return 0; /* SSSE3: pshufb, palignr */
    if (__get_cpuid_max(0, NULL) < 7) return 0;
    __cpuid_count(7, 0, a, b, c, d);
    return (b >> 29) & 1; /* SHA */
}

sha256_blocks_fn *sha256_blocks_shani(void)
{
    static int have = -1; /* benign race: every thread computes the same value */
    int h = __atomic_load_n(&have, __ATOMIC_RELAXED);
    if (h < 0) {
        h = cpu_has_shani();
        __atomic_store_n(&have, h, __ATOMIC_RELAXED);
    }
    return h ? blocks_shani : NULL;
}
#else
sha256_blocks_fn *sha256_blocks_shani(void)
{
    return NULL;
}
#endif

sha256_blocks_fn *sha256_blocks_best(void)
{
    sha256_blocks_fn *f = sha256_blocks_shani();
    return f ? f : sha256_blocks_generic;
}

const char *sha256_impl_name(void)
{
    return sha256_blocks_shani() ? "sha-ni" : "generic";
}

/* ---- streaming ---- */

void sha256_state_init(sha256_state *s)
{
    static const uint32_t iv[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
                                   0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};
    memcpy(s->h, iv, sizeof iv);
    s->bytes = 0;
    s->fill = 0;
    s->blocks = sha256_blocks_best();
}

void sha256_state_update(sha256_state *s, const void *data, size_t n)
{
    const unsigned char *p = data;
    if (!n) return;
    s->bytes += n;
    if (s->fill) {
        size_t take = SHA256_BLOCK_SIZE - s->fill;
        if (take > n) take = n;
        memcpy(s->buf + s->fill, p, take);
        s->fill += take, p += take, n -= take;
        if (s->fill < SHA256_BLOCK_SIZE) return;
        s->blocks(s->h, s->buf, 1);
        s->fill = 0;
    }
    if (n >= SHA256_BLOCK_SIZE) {
        s->blocks(s->h, p, n / SHA256_BLOCK_SIZE);
        p += n & ~(size_t)(SHA256_BLOCK_SIZE - 1);
        n &= SHA256_BLOCK_SIZE - 1;
    }
    if (n) memcpy(s->buf, p, n), s->fill = n;
}

void sha256_state_final(sha256_state *s, unsigned char out[SHA256_SIZE])
{
    /* 0x80, zeros up to 56 mod 64, then the length in bits, big-endian */
    uint64_t bits = s->bytes * 8;
    unsigned char pad[SHA256_BLOCK_SIZE + 8] = {0x80};
    size_t padlen = (s->fill < 56 ? 56 : 56 + SHA256_BLOCK_SIZE) - s->fill;
    for (int i = 0; i < 8; i++) pad[padlen + i] = (unsigned char)(bits >> (56 - 8 * i));
    sha256_state_update(s, pad, padlen + 8);
    for (int i = 0; i < SHA256_SIZE; i++)
        out[i] = (unsigned char)(s->h[i / 4] >> (24 - 8 * (i % 4)));
}
