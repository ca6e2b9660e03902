/* tarx.c: tar streams in and out of the store.
 *
 * Owns compression sniffing, decompression with digest (tarx_decompress),
 * safe extraction of untrusted tars (tarx_extract) and deterministic packing
 * of a directory (tarx_pack_dir). Extraction never trusts a path: names are
 * cleaned lexically, every parent is resolved with openat2(RESOLVE_IN_ROOT)
 * so symlinks behave as if dest were "/", and entries are created with *at()
 * calls on a single name relative to that parent. OCI whiteouts are applied
 * (or turned into overlayfs ones) in both directions. See tarx.h. */
#include "tarx.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/openat2.h>
#include <pthread.h>
#include <search.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "common/libarchive.h"

#define BUFSZ (128 * 1024)
#define WH_PREFIX ".wh."
#define WH_META ".wh..wh."
#define WH_OPAQUE ".wh..wh..opq"
#define OPAQUE_XATTR "trusted.overlay.opaque"
#define OVERLAY_XATTRS "trusted.overlay."

/* ---- compression sniffing ---- */

const char *tarx_compression(const unsigned char *h, size_t n)
{
    if (n >= 3 && h[0] == 0x1f && h[1] == 0x8b && h[2] == 0x08) return "gzip";
    if (n >= 4 && !memcmp(h, "\x28\xb5\x2f\xfd", 4)) return "zstd";
    if (n >= 6 && !memcmp(h,
                          "\xfd"
                          "7zXZ\0",
                          6))
        return "xz";
    /* "BZh1".."BZh9" alone could start a plain stream: also want a block or end marker */
    if (n >= 10 && !memcmp(h, "BZh", 3) && h[3] >= '1' && h[3] <= '9' &&
        (!memcmp(h + 4, "1AY&SY", 6) || !memcmp(h + 4, "\x17\x72\x45\x38\x50\x90", 6)))
        return "bzip2";
    return NULL;
}

/* ---- CRC-32 (libarchive does not check gzip trailers) ---- */

static uint32_t crc_tab[8][256];
static pthread_once_t crc_once = PTHREAD_ONCE_INIT;

static void crc_init(void)
{
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++) c = (c & 1) ? 0xedb88320u ^ (c >> 1) : c >> 1;
        crc_tab[0][i] = c;
    }
    for (int t = 1; t < 8; t++)
        for (int i = 0; i < 256; i++)
            crc_tab[t][i] = (crc_tab[t - 1][i] >> 8) ^ crc_tab[0][crc_tab[t - 1][i] & 0xff];
}

static uint32_t crc32_update(uint32_t crc, const unsigned char *p, size_t n)
{
    pthread_once(&crc_once, crc_init);
    crc = ~crc;
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    for (; n >= 8; p += 8, n -= 8) {
        uint32_t lo, hi;
        memcpy(&lo, p, 4);
        memcpy(&hi, p + 4, 4);
        lo ^= crc;
        crc = crc_tab[7][lo & 0xff] ^ crc_tab[6][(lo >> 8) & 0xff] ^ crc_tab[5][(lo >> 16) & 0xff] ^
              crc_tab[4][lo >> 24] ^ crc_tab[3][hi & 0xff] ^ crc_tab[2][(hi >> 8) & 0xff] ^
              crc_tab[1][(hi >> 16) & 0xff] ^ crc_tab[0][hi >> 24];
    }
#endif
    while (n--) crc = crc_tab[0][(crc ^ *p++) & 0xff] ^ (crc >> 8);
    return ~crc;
}

static uint32_t le32(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* ---- input: an fd (plus already-read head bytes) fed to libarchive ---- */

typedef struct insrc {
    int fd;
    const unsigned char *head; /* served before reading fd */
    size_t head_len;
    unsigned char *buf;
    unsigned char tail[8]; /* last bytes handed to libarchive */
    size_t tail_len;
    int err; /* errno of a failed read(2): a local failure, not bad data */
} insrc;

static void track_tail(insrc *s, const unsigned char *p, size_t n)
{
    if (n >= 8) {
        memcpy(s->tail, p + n - 8, 8);
        s->tail_len = 8;
        return;
    }
    size_t keep = s->tail_len + n > 8 ? 8 - n : s->tail_len;
    memmove(s->tail, s->tail + s->tail_len - keep, keep);
    memcpy(s->tail + keep, p, n);
    s->tail_len = keep + n;
}

static la_ssize_t insrc_read(struct archive *a, void *data, const void **out)
{
    insrc *s = data;
    if (s->head_len) {
        size_t n = s->head_len;
        *out = s->head;
        s->head_len = 0;
        track_tail(s, s->head, n);
        return (la_ssize_t)n;
    }
    for (;;) {
        ssize_t n = read(s->fd, s->buf, BUFSZ);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) {
            s->err = errno;
            archive_set_error(a, errno, "read: %s", strerror(errno));
            return -1;
        }
        track_tail(s, s->buf, (size_t)n);
        *out = s->buf;
        return n;
    }
}

/* A reader for our input with the in-process decompressors only (no
 * external programs): raw format for decompression, tar for extraction. */
static struct archive *reader_new(bool raw)
{
    struct archive *a = archive_read_new();
    archive_read_support_filter_gzip(a);
    archive_read_support_filter_bzip2(a);
    archive_read_support_filter_xz(a);
    archive_read_support_filter_lzma(a);
    archive_read_support_filter_zstd(a);
    archive_read_support_filter_lz4(a);
    archive_read_support_filter_compress(a);
    if (raw) {
        archive_read_support_format_raw(a);
        archive_read_support_format_empty(a);
    } else {
        archive_read_support_format_tar(a);
    }
    return a;
}

/* Maps a libarchive failure: a failed read(2) is ours (500), anything else is bad input. */
static int archive_fail(struct archive *a, const insrc *s, berr *e, const char *what)
{
    if (s->err) {
        errno = s->err;
        return berr_errno(e, 500, "reading input");
    }
    const char *msg = archive_error_string(a);
    return berr_set(e, 400, "%s: %s", what, msg ? msg : "unexpected end of data");
}

/* ---- decompression ---- */

typedef struct sink {
    int fd;
    sha256_ctx *sha;
    int64_t size;
    bool want_crc;
    uint32_t crc;
} sink;

static int sink_write(sink *k, const void *p, size_t n, berr *e)
{
    if (write_all(k->fd, p, n) < 0) return berr_errno(e, 500, "write decompressed stream");
    sha256_update(k->sha, p, n);
    k->size += (int64_t)n;
    if (k->want_crc) k->crc = crc32_update(k->crc, p, n);
    return 0;
}

static int copy_plain(int in_fd, const unsigned char *head, size_t hn, sink *k, berr *e)
{
    if (sink_write(k, head, hn, e) < 0) return -1;
    _cleanup_free_ char *buf = xmalloc(BUFSZ);
    for (;;) {
        ssize_t n = read(in_fd, buf, BUFSZ);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) return berr_errno(e, 500, "read stream");
        if (n == 0) return 0;
        if (sink_write(k, buf, (size_t)n, e) < 0) return -1;
    }
}

static int inflate_run(struct archive *a, insrc *s, const char *what, sink *k, berr *e)
{
    struct archive_entry *ent;
    if (archive_read_open(a, s, NULL, insrc_read, NULL) != ARCHIVE_OK)
        return archive_fail(a, s, e, what);
    int r = archive_read_next_header(a, &ent);
    if (r != ARCHIVE_OK && r != ARCHIVE_EOF) return archive_fail(a, s, e, what);
    if (archive_filter_code(a, 0) == ARCHIVE_FILTER_NONE) /* the magic, then no valid header */
        return berr_set(e, 400, "%s: bad header", what);
    if (r == ARCHIVE_EOF) return 0;
    for (;;) {
        const void *p;
        size_t n;
        la_int64_t off;
        r = archive_read_data_block(a, &p, &n, &off);
        if (r == ARCHIVE_EOF) return 0;
        if (r != ARCHIVE_OK) return archive_fail(a, s, e, what);
        if (sink_write(k, p, n, e) < 0) return -1;
    }
}

/* The last gzip member's trailer holds CRC-32 and size (mod 2^32) of that
 * member. When the size equals everything we wrote, the stream is a single
 * member (or earlier members were empty) and the CRC must match. Otherwise
 * (multi-member streams) zlib's own checks are all we have. */
static int gzip_check(const insrc *s, const sink *k, berr *e)
{
    if (s->tail_len < 8 || le32(s->tail + 4) != (uint32_t)k->size) return 0;
    if (le32(s->tail) != k->crc)
        return berr_set(e, 400, "invalid gzip compressed data: checksum mismatch");
    return 0;
}

static int decompress_stream(int in_fd, const unsigned char *head, size_t hn, const char *kind,
                             sink *k, berr *e)
{
    char what[64];
    snprintf(what, sizeof what, "invalid %s compressed data", kind);
    _cleanup_free_ unsigned char *buf = xmalloc(BUFSZ);
    insrc s = {.fd = in_fd, .head = head, .head_len = hn, .buf = buf};
    struct archive *a = reader_new(true);
    int rc = inflate_run(a, &s, what, k, e);
    archive_read_free(a);
    if (rc == 0 && k->want_crc) rc = gzip_check(&s, k, e);
    return rc;
}

int tarx_decompress(int in_fd, int out_fd, char digest_out[DIGEST_LEN + 1], int64_t *size_out,
                    berr *e)
{
    unsigned char head[512];
    ssize_t hn = read_all(in_fd, head, sizeof head);
    if (hn < 0) return berr_errno(e, 500, "read stream");
    const char *kind = tarx_compression(head, (size_t)hn);
    if (kind && la_need(e) < 0) return -1; /* plain streams need no libarchive */
    sink k = {.fd = out_fd, .sha = sha256_new(), .want_crc = kind && !strcmp(kind, "gzip")};
    int rc = kind ? decompress_stream(in_fd, head, (size_t)hn, kind, &k, e)
                  : copy_plain(in_fd, head, (size_t)hn, &k, e);
    char d[DIGEST_LEN + 1];
    sha256_final(k.sha, d);
    if (rc < 0) return -1;
    if (digest_out) memcpy(digest_out, d, sizeof d);
    if (size_out) *size_out = k.size;
    return 0;
}

/* ---- paths ---- */

/* Cleans `in` lexically relative to the root: "/a//b/./c/" -> "a/b/c", "/" -> "".
 * -1 when it climbs above the root, -2 when it does not fit in n. */
static int clean_path(const char *in, char *out, size_t n)
{
    size_t len = 0;
    out[0] = 0;
    for (const char *p = in; *p;) {
        while (*p == '/') p++;
        const char *end = strchrnul(p, '/');
        size_t cl = (size_t)(end - p);
        if (cl == 2 && p[0] == '.' && p[1] == '.') {
            if (len == 0) return -1;
            char *slash = memrchr(out, '/', len);
            len = slash ? (size_t)(slash - out) : 0;
            out[len] = 0;
        } else if (cl > 0 && !(cl == 1 && p[0] == '.')) {
            if (len + 1 + cl + 1 > n) return -2;
            if (len) out[len++] = '/';
            memcpy(out + len, p, cl);
            len += cl;
            out[len] = 0;
        }
        p = end;
    }
    return 0;
}

/* Splits a cleaned path into its directory ("" for the root) and base name. */
static const char *split_path(const char *path, char dir[PATH_MAX])
{
    const char *slash = strrchr(path, '/');
    size_t n = slash ? (size_t)(slash - path) : 0;
    memcpy(dir, path, n);
    dir[n] = 0;
    return slash ? slash + 1 : path;
}

/* O_PATH fd of the directory rel ("" = root), resolved as if rootfd were "/". */
static int open_in_root(int rootfd, const char *rel)
{
    struct open_how how = {.flags = O_PATH | O_DIRECTORY | O_CLOEXEC,
                           .resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS};
    for (int i = 0; i < 64; i++) {
        long fd = syscall(SYS_openat2, rootfd, *rel ? rel : ".", &how, sizeof how);
        if (fd >= 0 || errno != EAGAIN) return (int)fd;
    }
    return -1;
}

/* ---- a set of strings (paths unpacked from this archive) ---- */

typedef struct strset {
    char **slots;
    size_t cap, len;
} strset;

static size_t str_hash(const char *s)
{
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return (size_t)h;
}

static void strset_put(char **slots, size_t cap, char *k)
{
    size_t i = str_hash(k) & (cap - 1);
    while (slots[i]) i = (i + 1) & (cap - 1);
    slots[i] = k;
}

static bool strset_has(const strset *s, const char *k)
{
    if (!s->cap) return false;
    for (size_t i = str_hash(k) & (s->cap - 1); s->slots[i]; i = (i + 1) & (s->cap - 1))
        if (!strcmp(s->slots[i], k)) return true;
    return false;
}

static void strset_add(strset *s, const char *k)
{
    if (strset_has(s, k)) return;
    if ((s->len + 1) * 2 > s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 64;
        char **slots = xcalloc(cap, sizeof *slots);
        for (size_t i = 0; i < s->cap; i++)
            if (s->slots[i]) strset_put(slots, cap, s->slots[i]);
        free(s->slots);
        s->slots = slots;
        s->cap = cap;
    }
    strset_put(s->slots, s->cap, xstrdup(k));
    s->len++;
}

static void strset_free(strset *s)
{
    for (size_t i = 0; i < s->cap; i++) free(s->slots[i]);
    free(s->slots);
}

/* ---- extraction ---- */

typedef struct dirtime {
    char *path;
    mode_t perm;
    struct timespec ts[2];
} dirtime;

typedef struct xctx {
    struct archive *a;
    insrc *src;
    int rootfd;
    unsigned flags;
    berr *e;
    const char *name; /* current entry, as written in the archive */
    dirtime *dirs;    /* mtimes (and modes when not root) applied at the end */
    size_t ndirs, capdirs;
    strset seen; /* cleaned paths of entries unpacked so far */
} xctx;

static int bad_entry(xctx *x, const char *why)
{
    return berr_set(x->e, 400, "invalid tar entry \"%s\": %s", x->name, why);
}

static int breakout(xctx *x, const char *kind, const char *target)
{
    if (!target)
        return berr_set(x->e, 400,
                        "invalid tar entry path \"%s\": breakout: path is outside "
                        "of the destination",
                        x->name);
    return berr_set(x->e, 400,
                    "invalid %s \"%s\" -> \"%s\": breakout: target is outside of "
                    "the destination",
                    kind, x->name, target);
}

/* Creates the missing directories of dir (0755) one level at a time, each
 * relative to its already-resolved parent. Returns an O_PATH fd or -1. */
static int make_parents(int rootfd, const char *dir)
{
    char prefix[PATH_MAX];
    int cur = open_in_root(rootfd, "");
    for (const char *p = dir; cur >= 0;) {
        const char *end = strchrnul(p, '/');
        size_t plen = (size_t)(end - dir);
        memcpy(prefix, dir, plen);
        prefix[plen] = 0;
        int fd = open_in_root(rootfd, prefix);
        if (fd < 0 && errno == ENOENT) {
            _cleanup_free_ char *comp = xstrndup(p, (size_t)(end - p));
            if (mkdirat(cur, comp, 0755) < 0 && errno != EEXIST)
                fd = -1;
            else
                fd = open_in_root(rootfd, prefix);
        }
        int saved = errno;
        close(cur);
        errno = saved;
        cur = fd;
        if (!*end) break;
        p = end + 1;
    }
    return cur;
}

static int open_parent(xctx *x, const char *dir, int *out)
{
    int fd = open_in_root(x->rootfd, dir);
    if (fd < 0 && errno == ENOENT) fd = make_parents(x->rootfd, dir);
    if (fd >= 0) {
        *out = fd;
        return 0;
    }
    int st = (errno == ENOENT || errno == ENOTDIR || errno == ELOOP || errno == EEXIST ||
              errno == ENAMETOOLONG)
                 ? 400
                 : 500;
    return berr_errno(x->e, st, "invalid tar entry \"%s\": cannot create parent directory \"%s\"",
                      x->name, dir);
}

/* Makes room for a new entry: removes what is there, except that an
 * existing directory is kept (returns 1) when a directory is wanted. */
static int clear_existing(xctx *x, int pfd, const char *base, bool want_dir)
{
    struct stat st;
    if (fstatat(pfd, base, &st, AT_SYMLINK_NOFOLLOW) < 0) {
        if (errno == ENOENT) return 0;
        return berr_errno(x->e, 500, "stat %s", x->name);
    }
    if (want_dir && S_ISDIR(st.st_mode)) return 1;
    if (rm_rf_at(pfd, base) < 0) return berr_errno(x->e, 500, "replace %s", x->name);
    return 0;
}

static int pwrite_all(int fd, const char *p, size_t n, off_t off)
{
    while (n) {
        ssize_t w = pwrite(fd, p, n, off);
        if (w < 0 && errno == EINTR) continue;
        if (w < 0) return -1;
        p += w;
        n -= (size_t)w;
        off += w;
    }
    return 0;
}

static int x_file(xctx *x, int pfd, const char *base, struct archive_entry *ent)
{
    if (clear_existing(x, pfd, base, false) < 0) return -1;
    _cleanup_close_ int fd =
        openat(pfd, base, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0) return berr_errno(x->e, 500, "create %s", x->name);
    for (;;) {
        const void *p;
        size_t n;
        la_int64_t off;
        int r = archive_read_data_block(x->a, &p, &n, &off);
        if (r == ARCHIVE_EOF) break;
        if (r != ARCHIVE_OK && r != ARCHIVE_WARN)
            return archive_fail(x->a, x->src, x->e, "invalid tar: truncated or damaged data");
        if (pwrite_all(fd, p, n, off) < 0) return berr_errno(x->e, 500, "write %s", x->name);
    }
    if (ftruncate(fd, archive_entry_size(ent)) < 0)
        return berr_errno(x->e, 500, "write %s", x->name);
    return 0;
}

static int x_dir(xctx *x, int pfd, const char *base)
{
    int r = clear_existing(x, pfd, base, true);
    if (r < 0) return -1;
    if (r == 0 && mkdirat(pfd, base, 0700) < 0) return berr_errno(x->e, 500, "mkdir %s", x->name);
    return 0;
}

static const char *entry_symlink(struct archive_entry *ent)
{
    const char *t = archive_entry_symlink(ent);
    return t ? t : archive_entry_symlink_utf8(ent);
}

static int x_symlink(xctx *x, const char *path, int pfd, const char *base,
                     struct archive_entry *ent)
{
    const char *target = entry_symlink(ent);
    if (!target || !*target) return bad_entry(x, "symlink without a target");
    /* A symlink's target is never followed on the host: every later entry
     * resolves it inside the root (RESOLVE_IN_ROOT), as dockerd's chrooted
     * extraction does, so targets that climb above the root are harmless. */
    if (clear_existing(x, pfd, base, false) < 0) return -1;
    if (symlinkat(target, pfd, base) < 0) return berr_errno(x->e, 500, "symlink %s", x->name);
    return 0;
}

static int x_hardlink(xctx *x, const char *path, int pfd, const char *base, const char *target)
{
    char tpath[PATH_MAX], tdir[PATH_MAX];
    int c = clean_path(target, tpath, sizeof tpath);
    if (c == -1) return breakout(x, "hardlink", target);
    if (c < 0 || !tpath[0] || !strcmp(tpath, path)) return bad_entry(x, "invalid hardlink target");
    const char *tbase = split_path(tpath, tdir);
    _cleanup_close_ int tfd = open_in_root(x->rootfd, tdir);
    struct stat st;
    if (tfd < 0 || fstatat(tfd, tbase, &st, AT_SYMLINK_NOFOLLOW) < 0)
        return berr_set(x->e, 400, "invalid hardlink \"%s\": target \"%s\" does not exist", x->name,
                        target);
    if (S_ISDIR(st.st_mode)) return bad_entry(x, "hardlink to a directory");
    if (clear_existing(x, pfd, base, false) < 0) return -1;
    if (linkat(tfd, tbase, pfd, base, 0) < 0) {
        int s = errno == ENOENT ? 400 : 500;
        return berr_errno(x->e, s, "invalid hardlink \"%s\" -> \"%s\"", x->name, target);
    }
    return 0;
}

/* fifos and devices; returns 1 when a device may not be created here (EPERM,
 * e.g. in a user namespace) and is skipped quietly, as Docker does. */
static int x_node(xctx *x, int pfd, const char *base, struct archive_entry *ent)
{
    mode_t type = archive_entry_filetype(ent);
    if (clear_existing(x, pfd, base, false) < 0) return -1;
    dev_t dev = type == AE_IFIFO ? 0 : archive_entry_rdev(ent);
    if (mknodat(pfd, base, type | 0600, dev) == 0) return 0;
    if (errno == EPERM && type != AE_IFIFO) {
        log_debug("tarx: skipping device %s: not permitted", x->name);
        return 1;
    }
    return berr_errno(x->e, 500, "mknod %s", x->name);
}

static void entry_times(struct archive_entry *ent, struct timespec ts[2])
{
    ts[1].tv_sec = archive_entry_mtime(ent);
    ts[1].tv_nsec = archive_entry_mtime_nsec(ent);
    ts[0] = ts[1];
    if (archive_entry_atime_is_set(ent) && archive_entry_atime(ent) > ts[1].tv_sec) {
        ts[0].tv_sec = archive_entry_atime(ent);
        ts[0].tv_nsec = archive_entry_atime_nsec(ent);
    }
}

static int set_xattrs(xctx *x, int pfd, const char *base, struct archive_entry *ent)
{
    if (archive_entry_xattr_reset(ent) == 0) return 0;
    _cleanup_free_ char *proc = xasprintf("/proc/self/fd/%d/%s", pfd, base);
    const char *name;
    const void *val;
    size_t sz;
    while (archive_entry_xattr_next(ent, &name, &val, &sz) == ARCHIVE_OK) {
        if (str_starts(name, OVERLAY_XATTRS)) continue; /* never forged by an archive */
        if (lsetxattr(proc, name, val, sz, 0) == 0) continue;
        if (errno == EINVAL || errno == ERANGE || errno == E2BIG)
            return berr_errno(x->e, 400, "invalid xattr %s on tar entry \"%s\"", name, x->name);
        if (errno != ENOTSUP && errno != EPERM)
            return berr_errno(x->e, 500, "set xattr %s on %s", name, x->name);
        log_debug("tarx: ignoring xattr %s on %s: %s", name, x->name, strerror(errno));
    }
    return 0;
}

static void defer_dir_times(xctx *x, const char *path, struct archive_entry *ent)
{
    if (x->ndirs == x->capdirs) {
        x->capdirs = x->capdirs ? x->capdirs * 2 : 64;
        x->dirs = xrealloc(x->dirs, x->capdirs * sizeof *x->dirs);
    }
    dirtime *d = &x->dirs[x->ndirs++];
    d->path = xstrdup(path);
    d->perm = archive_entry_perm(ent) & 07777;
    entry_times(ent, d->ts);
}

/* Owner, then mode (chown clears setuid), then xattrs (chown clears
 * security.capability), then times (directories' at the very end). */
static int apply_meta(xctx *x, const char *path, int pfd, const char *base,
                      struct archive_entry *ent)
{
    bool link = archive_entry_filetype(ent) == AE_IFLNK;
    bool dir = archive_entry_filetype(ent) == AE_IFDIR;
    mode_t perm = archive_entry_perm(ent) & 07777;
    if (x->flags & TARX_NO_OWNERS) {
        if (dir) perm |= 0700; /* not root: keep it writable until finish_dir */
    } else if (fchownat(pfd, base, archive_entry_uid(ent), archive_entry_gid(ent),
                        AT_SYMLINK_NOFOLLOW) < 0) {
        return berr_errno(x->e, 500, "chown %s", x->name);
    }
    if (!link && fchmodat(pfd, base, perm, 0) < 0)
        return berr_errno(x->e, 500, "chmod %s", x->name);
    if (set_xattrs(x, pfd, base, ent) < 0) return -1;
    if (dir) {
        defer_dir_times(x, path, ent);
        return 0;
    }
    struct timespec ts[2];
    entry_times(ent, ts);
    if (utimensat(pfd, base, ts, AT_SYMLINK_NOFOLLOW) < 0)
        return berr_errno(x->e, 500, "set times of %s", x->name);
    return 0;
}

/* Removes everything below the directory dfd (at path dir) that this
 * archive did not unpack: an opaque whiteout applied to a plain directory. */
static int opaque_plain(xctx *x, int dfd, const char *dir)
{
    int fd = openat(dfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
    if (!d) {
        if (fd >= 0) close(fd);
        return berr_errno(x->e, 500, "open %s", dir);
    }
    int rc = 0;
    struct dirent *de;
    while (rc == 0 && (de = readdir(d))) {
        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, "..")) continue;
        _cleanup_free_ char *child =
            *dir ? xasprintf("%s/%s", dir, de->d_name) : xstrdup(de->d_name);
        if (!strset_has(&x->seen, child)) {
            if (rm_rf_at(dirfd(d), de->d_name) < 0) rc = berr_errno(x->e, 500, "rm %s", child);
            continue;
        }
        int cfd = openat(dirfd(d), de->d_name, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (cfd < 0) continue; /* not a directory: kept as is */
        rc = opaque_plain(x, cfd, child);
        close(cfd);
    }
    closedir(d);
    return rc;
}

static int x_whiteout(xctx *x, const char *dir, int pfd, const char *base,
                      struct archive_entry *ent)
{
    if (!strcmp(base, WH_OPAQUE)) {
        if (!(x->flags & TARX_OVERLAY)) return opaque_plain(x, pfd, dir);
        _cleanup_free_ char *proc = xasprintf("/proc/self/fd/%d", pfd);
        if (setxattr(proc, OPAQUE_XATTR, "y", 1, 0) < 0)
            return berr_errno(x->e, 500, "mark %s opaque", x->name);
        return 0;
    }
    if (str_starts(base, WH_META)) return 0; /* aufs metadata (.wh..wh.plnk ...): skipped */
    const char *victim = base + strlen(WH_PREFIX);
    if (!*victim || !strcmp(victim, ".") || !strcmp(victim, ".."))
        return bad_entry(x, "invalid whiteout");
    if (rm_rf_at(pfd, victim) < 0) return berr_errno(x->e, 500, "whiteout %s", x->name);
    if (!(x->flags & TARX_OVERLAY)) return 0;
    if (mknodat(pfd, victim, S_IFCHR, makedev(0, 0)) < 0)
        return berr_errno(x->e, 500, "whiteout %s", x->name);
    if (!(x->flags & TARX_NO_OWNERS) &&
        fchownat(pfd, victim, archive_entry_uid(ent), archive_entry_gid(ent), AT_SYMLINK_NOFOLLOW))
        return berr_errno(x->e, 500, "chown %s", x->name);
    return 0;
}

/* Creates the entry itself: 0 created, 1 skipped (device not permitted). */
static int x_create(xctx *x, const char *path, int pfd, const char *base, struct archive_entry *ent)
{
    switch (archive_entry_filetype(ent)) {
    case AE_IFREG:
        return x_file(x, pfd, base, ent);
    case AE_IFDIR:
        return x_dir(x, pfd, base);
    case AE_IFLNK:
        return x_symlink(x, path, pfd, base, ent);
    case AE_IFIFO:
    case AE_IFCHR:
    case AE_IFBLK:
        return x_node(x, pfd, base, ent);
    default:
        return bad_entry(x, "unhandled tar entry type");
    }
}

static const char *entry_name(struct archive_entry *ent)
{
    const char *n = archive_entry_pathname(ent);
    return n ? n : archive_entry_pathname_utf8(ent);
}

static int x_entry(xctx *x, struct archive_entry *ent)
{
    x->name = entry_name(ent);
    if (!x->name) return berr_set(x->e, 400, "invalid tar: entry without a name");
    char path[PATH_MAX], dir[PATH_MAX];
    int c = clean_path(x->name, path, sizeof path);
    if (c == -1) return breakout(x, NULL, NULL);
    if (c < 0) return bad_entry(x, "name too long");
    if (!path[0]) return 0; /* the root itself: dest keeps its own metadata */
    const char *base = split_path(path, dir);
    _cleanup_close_ int pfd = -1;
    if (open_parent(x, dir, &pfd) < 0) return -1;
    if (str_starts(base, WH_PREFIX)) return x_whiteout(x, dir, pfd, base, ent);
    const char *hl = archive_entry_hardlink(ent);
    if (!hl) hl = archive_entry_hardlink_utf8(ent);
    int r = hl ? x_hardlink(x, path, pfd, base, hl) : x_create(x, path, pfd, base, ent);
    if (r != 0) return r < 0 ? -1 : 0;
    strset_add(&x->seen, path);
    return hl ? 0 : apply_meta(x, path, pfd, base, ent); /* a hardlink shares its target's */
}

static int finish_dir(xctx *x, const dirtime *d)
{
    char dir[PATH_MAX];
    const char *base = split_path(d->path, dir);
    _cleanup_close_ int pfd = open_in_root(x->rootfd, dir);
    struct stat st;
    if (pfd < 0 || fstatat(pfd, base, &st, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISDIR(st.st_mode))
        return 0; /* replaced or whited out later */
    if ((x->flags & TARX_NO_OWNERS) && fchmodat(pfd, base, d->perm, 0) < 0)
        return berr_errno(x->e, 500, "chmod %s", d->path);
    if (utimensat(pfd, base, d->ts, AT_SYMLINK_NOFOLLOW) < 0)
        return berr_errno(x->e, 500, "set times of %s", d->path);
    return 0;
}

/* Directory mtimes last: creating their children changed them. */
static int finish_dirs(xctx *x)
{
    for (size_t i = 0; i < x->ndirs; i++)
        if (finish_dir(x, &x->dirs[i]) < 0) return -1;
    return 0;
}

static int extract_all(xctx *x)
{
    if (archive_read_open(x->a, x->src, NULL, insrc_read, NULL) != ARCHIVE_OK)
        return archive_fail(x->a, x->src, x->e, "invalid tar");
    size_t n = 0;
    for (;; n++) {
        struct archive_entry *ent;
        int r = archive_read_next_header(x->a, &ent);
        if (r == ARCHIVE_EOF) break;
        if (r != ARCHIVE_OK && r != ARCHIVE_WARN)
            return archive_fail(x->a, x->src, x->e, "invalid tar header");
        if (x_entry(x, ent) < 0) return -1;
    }
    if (n == 0 && archive_filter_bytes(x->a, 0) < 512)
        return berr_set(x->e, 400, "invalid tar: empty stream");
    return finish_dirs(x);
}

int tarx_extract(int in_fd, const char *dest, unsigned flags, berr *e)
{
    if (la_need(e) < 0) return -1;
    _cleanup_close_ int rootfd = open(dest, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (rootfd < 0) return berr_errno(e, 500, "open %s", dest);
    _cleanup_free_ unsigned char *buf = xmalloc(BUFSZ);
    insrc s = {.fd = in_fd, .buf = buf};
    xctx x = {.a = reader_new(false), .src = &s, .rootfd = rootfd, .flags = flags, .e = e};
    int rc = extract_all(&x);
    archive_read_free(x.a);
    for (size_t i = 0; i < x.ndirs; i++) free(x.dirs[i].path);
    free(x.dirs);
    strset_free(&x.seen);
    return rc;
}

/* ---- packing ---- */

typedef struct inode_ref {
    dev_t dev;
    ino_t ino;
    char *path;
} inode_ref;

typedef struct pctx {
    struct archive *a;
    unsigned flags;
    void *inodes; /* tsearch tree of inode_ref: hardlink detection */
    berr *e;
    char *buf;
} pctx;

static int inode_cmp(const void *a, const void *b)
{
    const inode_ref *x = a, *y = b;
    if (x->dev != y->dev) return x->dev < y->dev ? -1 : 1;
    return x->ino < y->ino ? -1 : x->ino > y->ino;
}

static void inode_free(void *p)
{
    free(((inode_ref *)p)->path);
    free(p);
}

/* The first name seen for this inode when it has other links, else NULL. */
static const char *hardlink_of(pctx *p, const struct stat *st, const char *rel)
{
    if (!S_ISREG(st->st_mode) || st->st_nlink < 2) return NULL;
    inode_ref key = {st->st_dev, st->st_ino, NULL};
    inode_ref **found = tfind(&key, &p->inodes, inode_cmp);
    if (found) return (*found)->path;
    inode_ref *n = xmalloc(sizeof *n);
    *n = key;
    n->path = xstrdup(rel);
    tsearch(n, &p->inodes, inode_cmp);
    return NULL;
}

static bool skip_xattr(const pctx *p, const char *name)
{
    return str_starts(name, "system.") || !strcmp(name, "security.selinux") ||
           ((p->flags & TARX_OVERLAY) && str_starts(name, OVERLAY_XATTRS));
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void add_xattrs(pctx *p, struct archive_entry *ent, const char *abs)
{
    ssize_t n = llistxattr(abs, NULL, 0);
    if (n <= 0) return;
    _cleanup_free_ char *list = xmalloc((size_t)n);
    n = llistxattr(abs, list, (size_t)n);
    if (n <= 0) return;
    _cleanup_free_ char **names = xmalloc(sizeof(char *) * (size_t)n);
    size_t cnt = 0;
    for (char *s = list; s < list + n; s += strlen(s) + 1)
        if (!skip_xattr(p, s)) names[cnt++] = s;
    qsort(names, cnt, sizeof *names, cmp_str); /* deterministic order */
    for (size_t i = 0; i < cnt; i++) {
        ssize_t vn = lgetxattr(abs, names[i], NULL, 0);
        if (vn < 0) continue;
        _cleanup_free_ char *val = xmalloc((size_t)vn + 1);
        vn = lgetxattr(abs, names[i], val, (size_t)vn);
        if (vn >= 0) archive_entry_xattr_add_entry(ent, names[i], val, (size_t)vn);
    }
}

static bool is_opaque(const char *abs)
{
    char v[2];
    return lgetxattr(abs, OPAQUE_XATTR, v, sizeof v) == 1 && v[0] == 'y';
}

static void set_common(struct archive_entry *ent, const char *name, mode_t mode,
                       const struct stat *st)
{
    archive_entry_set_pathname(ent, name);
    archive_entry_set_mode(ent, mode);
    archive_entry_set_uid(ent, st->st_uid);
    archive_entry_set_gid(ent, st->st_gid);
    archive_entry_set_mtime(ent, st->st_mtim.tv_sec, 0); /* whole seconds, as Docker */
}

static int fill_entry(pctx *p, struct archive_entry *ent, const char *abs, const char *rel,
                      const struct stat *st)
{
    _cleanup_free_ char *name = S_ISDIR(st->st_mode) ? xasprintf("%s/", rel) : xstrdup(rel);
    set_common(ent, name, st->st_mode, st);
    const char *link = hardlink_of(p, st, rel);
    if (link) archive_entry_set_hardlink(ent, link);
    archive_entry_set_size(ent, S_ISREG(st->st_mode) && !link ? st->st_size : 0);
    if (S_ISCHR(st->st_mode) || S_ISBLK(st->st_mode)) archive_entry_set_rdev(ent, st->st_rdev);
    if (S_ISLNK(st->st_mode)) {
        char target[PATH_MAX];
        ssize_t n = readlink(abs, target, sizeof target - 1);
        if (n < 0) return berr_errno(p->e, 500, "readlink %s", abs);
        target[n] = 0;
        archive_entry_set_symlink(ent, target);
    }
    add_xattrs(p, ent, abs);
    return 0;
}

static int write_header(pctx *p, struct archive_entry *ent)
{
    int r = archive_write_header(p->a, ent);
    if (r == ARCHIVE_OK || r == ARCHIVE_WARN) return 0;
    return berr_set(p->e, 500, "write tar header for %s: %s", archive_entry_pathname(ent),
                    archive_error_string(p->a));
}

/* Writes exactly `size` bytes of abs (libarchive pads if the file shrank). */
static int write_data(pctx *p, const char *abs, int64_t size)
{
    _cleanup_close_ int fd = open(abs, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) return berr_errno(p->e, 500, "open %s", abs);
    while (size > 0) {
        ssize_t n = read(fd, p->buf, size < BUFSZ ? (size_t)size : BUFSZ);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) return berr_errno(p->e, 500, "read %s", abs);
        if (n == 0) break;
        if (archive_write_data(p->a, p->buf, (size_t)n) < 0)
            return berr_set(p->e, 500, "write tar: %s", archive_error_string(p->a));
        size -= n;
    }
    return 0;
}

/* An empty regular file standing for an overlayfs whiteout or opaque dir. */
static int write_marker(pctx *p, const char *name, mode_t perm, const struct stat *st)
{
    struct archive_entry *ent = archive_entry_new();
    set_common(ent, name, AE_IFREG | perm, st);
    archive_entry_set_size(ent, 0);
    int rc = write_header(p, ent);
    archive_entry_free(ent);
    return rc;
}

static int pack_tree(pctx *p, const char *abs, const char *rel);

static int pack_dir_markers(pctx *p, const char *abs, const char *rel, const struct stat *st)
{
    if (!(p->flags & TARX_OVERLAY) || !is_opaque(abs)) return 0;
    _cleanup_free_ char *name = xasprintf("%s/%s", rel, WH_OPAQUE);
    return write_marker(p, name, st->st_mode & 0777, st);
}

static int pack_node(pctx *p, const char *abs, const char *rel)
{
    struct stat st;
    if (lstat(abs, &st) < 0) return berr_errno(p->e, 500, "stat %s", abs);
    if (S_ISSOCK(st.st_mode)) return 0; /* sockets cannot be archived */
    if ((p->flags & TARX_OVERLAY) && S_ISCHR(st.st_mode) && st.st_rdev == 0) {
        char dir[PATH_MAX];
        const char *base = split_path(rel, dir);
        _cleanup_free_ char *name = xasprintf("%s%s" WH_PREFIX "%s", dir, *dir ? "/" : "", base);
        return write_marker(p, name, 0600, &st);
    }
    struct archive_entry *ent = archive_entry_new();
    int rc = fill_entry(p, ent, abs, rel, &st);
    if (rc == 0) rc = write_header(p, ent);
    if (rc == 0 && S_ISREG(st.st_mode) && !archive_entry_hardlink(ent))
        rc = write_data(p, abs, st.st_size);
    archive_entry_free(ent);
    if (rc == 0 && S_ISDIR(st.st_mode)) rc = pack_dir_markers(p, abs, rel, &st);
    if (rc == 0 && S_ISDIR(st.st_mode)) rc = pack_tree(p, abs, rel);
    return rc;
}

static int not_dots(const struct dirent *d)
{
    return strcmp(d->d_name, ".") && strcmp(d->d_name, "..");
}

static int by_name(const struct dirent **a, const struct dirent **b)
{
    return strcmp((*a)->d_name, (*b)->d_name);
}

static int pack_tree(pctx *p, const char *abs, const char *rel)
{
    struct dirent **list;
    int n = scandir(abs, &list, not_dots, by_name);
    if (n < 0) return berr_errno(p->e, 500, "read directory %s", abs);
    int rc = 0;
    for (int i = 0; i < n; i++) {
        if (rc == 0) {
            _cleanup_free_ char *cabs = xasprintf("%s/%s", abs, list[i]->d_name);
            _cleanup_free_ char *crel =
                *rel ? xasprintf("%s/%s", rel, list[i]->d_name) : xstrdup(list[i]->d_name);
            rc = pack_node(p, cabs, crel);
        }
        free(list[i]);
    }
    free(list);
    return rc;
}

int tarx_pack_dir(const char *src, int out_fd, unsigned flags, berr *e)
{
    if (la_need(e) < 0) return -1;
    pctx p = {.a = archive_write_new(), .flags = flags, .e = e, .buf = xmalloc(BUFSZ)};
    archive_write_set_format_pax_restricted(p.a);
    archive_write_set_bytes_in_last_block(p.a, 1);
    int rc = 0;
    if (archive_write_open_fd(p.a, out_fd) != ARCHIVE_OK)
        rc = berr_set(e, 500, "write tar: %s", archive_error_string(p.a));
    if (rc == 0) rc = pack_tree(&p, src, "");
    if (archive_write_close(p.a) != ARCHIVE_OK && rc == 0)
        rc = berr_set(e, 500, "write tar: %s", archive_error_string(p.a));
    archive_write_free(p.a);
    tdestroy(p.inodes, inode_free);
    free(p.buf);
    return rc;
}
