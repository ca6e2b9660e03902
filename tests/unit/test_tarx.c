/* test_tarx.c: unit tests for tar streams (src/image/tarx.c): decompression,
 * safe extraction (hostile archives must never write outside the
 * destination), whiteouts in both modes, and deterministic packing. Runs as
 * root: owners, devices and trusted.* xattrs are exercised for real. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <archive.h>
#include <archive_entry.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <grp.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "image/tarx.h"

/* ---- fixture: /tmp/tarx-test-XXXXXX/{root,outside} ---- */

typedef struct fx {
    char base[64];
    char dest[128];    /* extraction root */
    char outside[128]; /* must stay empty */
    char tar[128];     /* archive under test */
    char canary[128];  /* /etc/<unique>: must never appear */
} fx;

static int setup(void **state)
{
    fx *f = calloc(1, sizeof *f);
    snprintf(f->base, sizeof f->base, "/tmp/tarx-test-XXXXXX");
    if (!mkdtemp(f->base)) return -1;
    snprintf(f->dest, sizeof f->dest, "%s/root", f->base);
    snprintf(f->outside, sizeof f->outside, "%s/outside", f->base);
    snprintf(f->tar, sizeof f->tar, "%s/in.tar", f->base);
    snprintf(f->canary, sizeof f->canary, "/etc/berth-tarx-canary-%d", (int)getpid());
    mkdir(f->dest, 0755);
    mkdir(f->outside, 0755);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fx *f = *state;
    rm_rf(f->base);
    unlink(f->canary);
    free(f);
    return 0;
}

static size_t count_entries(const char *dir)
{
    DIR *d = opendir(dir);
    size_t n = 0;
    struct dirent *de;
    while (d && (de = readdir(d)))
        if (strcmp(de->d_name, ".") && strcmp(de->d_name, "..")) n++;
    if (d) closedir(d);
    return n;
}

/* Nothing may exist outside dest but our own files. */
static void assert_contained(fx *f)
{
    assert_int_equal(count_entries(f->outside), 0);
    size_t n = count_entries(f->base);
    assert_true(n == 2 || n == 3); /* root, outside, maybe in.tar */
    assert_int_equal(access(f->canary, F_OK), -1);
    assert_int_equal(access("/tmp/berth-tarx-evil", F_OK), -1);
}

static char *p_in(fx *f, const char *rel)
{
    static char buf[4][1200];
    static int i;
    i = (i + 1) % 4;
    snprintf(buf[i], sizeof buf[i], "%s/%s", f->dest, rel);
    return buf[i];
}

static char *slurp(const char *path, size_t *len)
{
    char *data;
    size_t n = 0;
    if (read_file(path, &data, &n) < 0) return NULL;
    if (len) *len = n;
    return data;
}

/* ---- archive builder ---- */

typedef struct spec {
    const char *name;
    mode_t type; /* AE_IFREG default */
    mode_t perm; /* 0644 default */
    const char *data;
    size_t size; /* of data; strlen when 0 */
    const char *link;
    bool hard;
    int uid, gid;
    time_t mtime;
    dev_t rdev;
    const char *xname, *xval;
    size_t xsize; /* of xval; strlen when 0 */
} spec;

static struct archive *tb_open(const char *path, const char *filter)
{
    struct archive *a = archive_write_new();
    archive_write_set_format_pax_restricted(a);
    if (filter && !strcmp(filter, "gzip")) archive_write_add_filter_gzip(a);
    if (filter && !strcmp(filter, "zstd")) archive_write_add_filter_zstd(a);
    assert_int_equal(archive_write_open_filename(a, path), ARCHIVE_OK);
    return a;
}

static void tb_add(struct archive *a, spec s)
{
    struct archive_entry *e = archive_entry_new();
    archive_entry_set_pathname(e, s.name);
    mode_t type = s.type ? s.type : AE_IFREG;
    archive_entry_set_mode(e, type | (s.perm ? s.perm : 0644));
    archive_entry_set_uid(e, s.uid);
    archive_entry_set_gid(e, s.gid);
    archive_entry_set_mtime(e, s.mtime ? s.mtime : 1000000000, 0);
    size_t size = s.data ? (s.size ? s.size : strlen(s.data)) : 0;
    if (s.link && s.hard) archive_entry_set_hardlink(e, s.link);
    if (s.link && !s.hard) archive_entry_set_symlink(e, s.link);
    if (type == AE_IFCHR || type == AE_IFBLK) archive_entry_set_rdev(e, s.rdev);
    if (s.xname)
        archive_entry_xattr_add_entry(e, s.xname, s.xval, s.xsize ? s.xsize : strlen(s.xval));
    archive_entry_set_size(e, s.hard ? 0 : size);
    assert_int_equal(archive_write_header(a, e), ARCHIVE_OK);
    if (size) assert_int_equal(archive_write_data(a, s.data, size), (la_ssize_t)size);
    archive_entry_free(e);
}

static void tb_close(struct archive *a)
{
    assert_int_equal(archive_write_close(a), ARCHIVE_OK);
    archive_write_free(a);
}

#define ADD(a, ...) tb_add(a, (spec){__VA_ARGS__})

static int extract(fx *f, unsigned flags, berr *e)
{
    int fd = open(f->tar, O_RDONLY | O_CLOEXEC);
    assert_true(fd >= 0);
    memset(e, 0, sizeof *e);
    int rc = tarx_extract(fd, f->dest, flags, e);
    close(fd);
    return rc;
}

static void write_bytes(const char *path, const void *p, size_t n)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    assert_true(fd >= 0);
    assert_int_equal(write_all(fd, p, n), (ssize_t)n);
    close(fd);
}

/* Builds the archive with a single entry and expects a 400 naming it. */
static void expect_rejected(fx *f, const char *needle)
{
    berr e;
    assert_int_equal(extract(f, 0, &e), -1);
    assert_int_equal(e.status, 400);
    if (!strstr(e.msg, needle)) fail_msg("message \"%s\" lacks \"%s\"", e.msg, needle);
    assert_contained(f);
}

/* ---- compression ---- */

static void test_compression_sniff(void **state)
{
    assert_string_equal(tarx_compression((const unsigned char *)"\x1f\x8b\x08\x00", 4), "gzip");
    assert_string_equal(tarx_compression((const unsigned char *)"\x28\xb5\x2f\xfd", 4), "zstd");
    assert_string_equal(tarx_compression((const unsigned char *)"\xfd"
                                                                "7zXZ\0",
                                         6),
                        "xz");
    assert_string_equal(tarx_compression((const unsigned char *)"BZh91AY&SY", 10), "bzip2");
    assert_null(tarx_compression((const unsigned char *)"BZhx", 4));
    assert_null(tarx_compression((const unsigned char *)"BZh9 plain", 10));
    assert_null(tarx_compression((const unsigned char *)"\x1f", 1));
    assert_null(tarx_compression((const unsigned char *)"hello world", 11));
    assert_null(tarx_compression(NULL, 0));
}

/* compressed copy of data via libarchive's raw writer */
static void write_compressed(const char *path, const char *filter, const void *data, size_t n)
{
    struct archive *a = archive_write_new();
    archive_write_set_format_raw(a);
    if (!strcmp(filter, "gzip")) archive_write_add_filter_gzip(a);
    if (!strcmp(filter, "zstd")) archive_write_add_filter_zstd(a);
    if (!strcmp(filter, "xz")) archive_write_add_filter_xz(a);
    if (!strcmp(filter, "bzip2")) archive_write_add_filter_bzip2(a);
    archive_write_set_bytes_in_last_block(a, 1);
    assert_int_equal(archive_write_open_filename(a, path), ARCHIVE_OK);
    struct archive_entry *e = archive_entry_new();
    archive_entry_set_pathname(e, "data");
    archive_entry_set_mode(e, AE_IFREG | 0644);
    archive_entry_set_size(e, (la_int64_t)n);
    assert_int_equal(archive_write_header(a, e), ARCHIVE_OK);
    if (n) assert_int_equal(archive_write_data(a, data, n), (la_ssize_t)n);
    archive_entry_free(e);
    tb_close(a);
}

static int decompress_file(const char *in, const char *out, char dg[DIGEST_LEN + 1], int64_t *size,
                           berr *e)
{
    int ifd = open(in, O_RDONLY | O_CLOEXEC);
    int ofd = open(out, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    assert_true(ifd >= 0 && ofd >= 0);
    memset(e, 0, sizeof *e);
    int rc = tarx_decompress(ifd, ofd, dg, size, e);
    close(ifd);
    close(ofd);
    return rc;
}

static char *test_data(size_t n)
{
    char *d = malloc(n + 1);
    unsigned x = 12345;
    for (size_t i = 0; i < n; i++) {
        x = x * 1103515245 + 12345;
        d[i] = (i % 7 == 0) ? (char)(x >> 16) : "berth tar "[i % 10];
    }
    return d;
}

static void check_decompress(fx *f, const char *in, const char *data, size_t n)
{
    char out[256], dg[DIGEST_LEN + 1], want[DIGEST_LEN + 1];
    int64_t size = -1;
    berr e;
    snprintf(out, sizeof out, "%s/out", f->base);
    if (decompress_file(in, out, dg, &size, &e) < 0) fail_msg("%s: %s", in, e.msg);
    assert_int_equal(size, (int64_t)n);
    sha256_buf(data, n, want);
    assert_string_equal(dg, want);
    size_t got_n = 0;
    char *got = slurp(out, &got_n);
    assert_int_equal(got_n, n);
    assert_memory_equal(got, data, n);
    free(got);
    unlink(out);
}

static void test_decompress_plain(void **state)
{
    fx *f = *state;
    size_t sizes[] = {0, 1, 511, 512, 513, 300000};
    for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++) {
        char *d = test_data(sizes[i]);
        write_bytes(f->tar, d, sizes[i]);
        check_decompress(f, f->tar, d, sizes[i]);
        free(d);
    }
}

/* a plain stream that happens to start like bzip2 passes through */
static void test_decompress_weak_magic(void **state)
{
    fx *f = *state;
    char d[2000];
    memset(d, 'b', sizeof d);
    memcpy(d, "BZh9 not really", 15);
    write_bytes(f->tar, d, sizeof d);
    check_decompress(f, f->tar, d, sizeof d);
}

static void test_decompress_filters(void **state)
{
    fx *f = *state;
    const char *filters[] = {"gzip", "zstd", "xz", "bzip2"};
    size_t sizes[] = {0, 100, 1000000};
    for (size_t i = 0; i < 4; i++)
        for (size_t k = 0; k < 3; k++) {
            char *d = test_data(sizes[k]);
            write_compressed(f->tar, filters[i], d, sizes[k]);
            check_decompress(f, f->tar, d, sizes[k]);
            free(d);
        }
}

static void test_decompress_gzip_multimember(void **state)
{
    fx *f = *state;
    char *d = test_data(200000);
    char part[256];
    snprintf(part, sizeof part, "%s/part.gz", f->base);
    sbuf all = {0};
    for (int i = 0; i < 2; i++) {
        write_compressed(part, "gzip", d + i * 100000, 100000);
        size_t n = 0;
        char *c = slurp(part, &n);
        sbuf_add(&all, c, n);
        free(c);
    }
    write_bytes(f->tar, all.data, all.len);
    check_decompress(f, f->tar, d, 200000);
    sbuf_free(&all);
    free(d);
}

static void expect_decompress_400(fx *f, const void *p, size_t n, const char *needle)
{
    char out[256];
    berr e;
    snprintf(out, sizeof out, "%s/out", f->base);
    write_bytes(f->tar, p, n);
    assert_int_equal(decompress_file(f->tar, out, NULL, NULL, &e), -1);
    assert_int_equal(e.status, 400);
    if (!strstr(e.msg, needle)) fail_msg("message \"%s\" lacks \"%s\"", e.msg, needle);
}

static void test_decompress_corrupt(void **state)
{
    fx *f = *state;
    char *d = test_data(500000);
    const char *filters[] = {"gzip", "zstd", "xz", "bzip2"};
    for (size_t i = 0; i < 4; i++) {
        write_compressed(f->tar, filters[i], d, 500000);
        size_t n = 0;
        char *c = slurp(f->tar, &n);
        expect_decompress_400(f, c, n / 2, "invalid"); /* truncated */
        expect_decompress_400(f, c, 12, "invalid");    /* just a header */
        expect_decompress_400(f, c, n - 3, "invalid"); /* trailer cut */
        free(c);
    }
    /* a flipped bit in gzip data: caught by zlib or by the CRC-32 check */
    write_compressed(f->tar, "gzip", d, 500000);
    size_t n = 0;
    char *c = slurp(f->tar, &n);
    c[n / 2] ^= 0x10;
    expect_decompress_400(f, c, n, "gzip");
    c[n / 2] ^= 0x10;
    c[n - 8] ^= 0x01; /* the trailer's CRC-32 field */
    expect_decompress_400(f, c, n, "checksum");
    free(c);
    /* gzip magic followed by garbage */
    char garbage[600];
    memset(garbage, 'x', sizeof garbage);
    memcpy(garbage, "\x1f\x8b\x08", 3);
    expect_decompress_400(f, garbage, sizeof garbage, "invalid gzip");
    free(d);
}

/* ---- extraction: the happy path ---- */

static void assert_mode(const char *path, mode_t type, mode_t perm)
{
    struct stat st;
    if (lstat(path, &st) < 0) fail_msg("%s: %s", path, strerror(errno));
    assert_int_equal(st.st_mode & S_IFMT, type);
    if (perm != (mode_t)-1) assert_int_equal(st.st_mode & 07777, perm);
}

static void assert_file(const char *path, const char *content)
{
    size_t n = 0;
    char *got = slurp(path, &n);
    if (!got) fail_msg("%s: %s", path, strerror(errno));
    assert_int_equal(n, strlen(content));
    assert_memory_equal(got, content, n);
    free(got);
}

static void test_extract_types(void **state)
{
    fx *f = *state;
    char *big = test_data(3000000);
    struct archive *a = tb_open(f->tar, NULL);
    ADD(a, .name = "dir/", .type = AE_IFDIR, .perm = 0750, .mtime = 1500000000);
    ADD(a, .name = "dir/file", .data = "hello", .perm = 0640, .uid = 1000, .gid = 2000,
        .mtime = 1234567890);
    ADD(a, .name = "dir/big", .data = big, .size = 3000000);
    ADD(a, .name = "suid", .data = "x", .perm = 04755, .uid = 1000, .gid = 1000);
    ADD(a, .name = "sgid-sticky/", .type = AE_IFDIR, .perm = 03777);
    ADD(a, .name = "link", .type = AE_IFLNK, .link = "dir/file", .perm = 0777);
    ADD(a, .name = "abslink", .type = AE_IFLNK, .link = "/dir/file", .perm = 0777);
    ADD(a, .name = "hard", .link = "dir/file", .hard = true);
    ADD(a, .name = "fifo", .type = AE_IFIFO, .perm = 0600);
    ADD(a, .name = "null", .type = AE_IFCHR, .perm = 0666, .rdev = makedev(1, 3));
    ADD(a, .name = "blk", .type = AE_IFBLK, .perm = 0660, .rdev = makedev(7, 0));
    ADD(a, .name = "implicit/parents/f", .data = "deep");
    ADD(a, .name = "/etc/abs", .data = "abs");
    ADD(a, .name = "./dot//slashes/./x", .data = "clean");
    ADD(a, .name = "xattr", .data = "x", .xname = "user.berth", .xval = "val");
    /* vfs_cap_data v2: effective, CAP_NET_BIND_SERVICE permitted */
    ADD(a, .name = "cap", .data = "x", .uid = 5, .xname = "security.capability",
        .xval = "\x01\x00\x00\x02\x00\x04\x00\x00\0\0\0\0\0\0\0\0\0\0\0\0", .xsize = 20);
    tb_close(a);
    berr e;
    if (extract(f, 0, &e) < 0) fail_msg("%s", e.msg);
    free(big);

    assert_mode(p_in(f, "dir"), S_IFDIR, 0750);
    assert_file(p_in(f, "dir/file"), "hello");
    assert_mode(p_in(f, "dir/file"), S_IFREG, 0640);
    struct stat st, st2;
    assert_int_equal(lstat(p_in(f, "dir/file"), &st), 0);
    assert_int_equal(st.st_uid, 1000);
    assert_int_equal(st.st_gid, 2000);
    assert_int_equal(st.st_mtime, 1234567890);
    assert_int_equal(lstat(p_in(f, "dir"), &st), 0);
    assert_int_equal(st.st_mtime, 1500000000); /* set after its children */
    assert_int_equal(lstat(p_in(f, "dir/big"), &st), 0);
    assert_int_equal(st.st_size, 3000000);
    assert_mode(p_in(f, "suid"), S_IFREG, 04755); /* chmod after chown */
    assert_mode(p_in(f, "sgid-sticky"), S_IFDIR, 03777);
    char target[256] = {0};
    assert_int_equal(readlink(p_in(f, "link"), target, sizeof target), 8);
    assert_string_equal(target, "dir/file");
    assert_mode(p_in(f, "abslink"), S_IFLNK, (mode_t)-1);
    assert_int_equal(lstat(p_in(f, "hard"), &st2), 0);
    assert_int_equal(lstat(p_in(f, "dir/file"), &st), 0);
    assert_int_equal(st.st_ino, st2.st_ino);
    assert_mode(p_in(f, "fifo"), S_IFIFO, 0600);
    assert_mode(p_in(f, "null"), S_IFCHR, 0666);
    assert_int_equal(lstat(p_in(f, "null"), &st), 0);
    assert_int_equal(st.st_rdev, makedev(1, 3));
    assert_mode(p_in(f, "blk"), S_IFBLK, 0660);
    assert_mode(p_in(f, "implicit/parents"), S_IFDIR, 0755);
    assert_file(p_in(f, "implicit/parents/f"), "deep");
    assert_file(p_in(f, "etc/abs"), "abs");
    assert_file(p_in(f, "dot/slashes/x"), "clean");
    char val[16] = {0};
    assert_int_equal(lgetxattr(p_in(f, "xattr"), "user.berth", val, sizeof val), 3);
    assert_string_equal(val, "val");
    char cap[32];
    assert_int_equal(lgetxattr(p_in(f, "cap"), "security.capability", cap, sizeof cap), 20);
    assert_contained(f);
}

static void test_extract_no_owners(void **state)
{
    fx *f = *state;
    struct archive *a = tb_open(f->tar, "gzip");
    ADD(a, .name = "f", .data = "x", .uid = 1000, .gid = 1000, .perm = 0600);
    tb_close(a);
    berr e;
    if (extract(f, TARX_NO_OWNERS, &e) < 0) fail_msg("%s", e.msg);
    struct stat st;
    assert_int_equal(lstat(p_in(f, "f"), &st), 0);
    assert_int_equal(st.st_uid, getuid());
    assert_int_equal(st.st_mode & 07777, 0600);
}

/* As an unprivileged user: devices are skipped quietly, read-only dirs still fill. */
static void test_extract_unprivileged(void **state)
{
    fx *f = *state;
    struct archive *a = tb_open(f->tar, NULL);
    ADD(a, .name = "ro/", .type = AE_IFDIR, .perm = 0555);
    ADD(a, .name = "ro/f", .data = "x", .perm = 0444);
    ADD(a, .name = "ro/sub/g", .data = "y");
    ADD(a, .name = "null", .type = AE_IFCHR, .perm = 0666, .rdev = makedev(1, 3));
    ADD(a, .name = "fifo", .type = AE_IFIFO, .perm = 0600);
    tb_close(a);
    chmod(f->base, 0711);
    chown(f->dest, 65534, 65534);
    int fd = open(f->tar, O_RDONLY | O_CLOEXEC);
    pid_t pid = fork();
    if (pid == 0) {
        berr e = {0};
        if (setgroups(0, NULL) || setresgid(65534, 65534, 65534) || setresuid(65534, 65534, 65534))
            _exit(2);
        int rc = tarx_extract(fd, f->dest, TARX_NO_OWNERS, &e);
        if (rc) fprintf(stderr, "%s\n", e.msg);
        _exit(rc ? 1 : 0);
    }
    int status;
    close(fd);
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    assert_mode(p_in(f, "ro"), S_IFDIR, 0555);
    assert_file(p_in(f, "ro/f"), "x");
    assert_file(p_in(f, "ro/sub/g"), "y");
    assert_int_equal(access(p_in(f, "null"), F_OK), -1);
    assert_mode(p_in(f, "fifo"), S_IFIFO, 0600);
    struct stat st;
    assert_int_equal(lstat(p_in(f, "ro/f"), &st), 0);
    assert_int_equal(st.st_uid, 65534);
}

static void test_extract_replace(void **state)
{
    fx *f = *state;
    struct archive *a = tb_open(f->tar, NULL);
    ADD(a, .name = "a", .data = "file first");
    ADD(a, .name = "a/", .type = AE_IFDIR, .perm = 0711); /* dir replaces file */
    ADD(a, .name = "b/", .type = AE_IFDIR);
    ADD(a, .name = "b/child", .data = "c");
    ADD(a, .name = "b", .data = "file wins"); /* file replaces dir */
    ADD(a, .name = "c/", .type = AE_IFDIR, .perm = 0700);
    ADD(a, .name = "c/1", .data = "1");
    ADD(a, .name = "c/", .type = AE_IFDIR, .perm = 0755); /* merge, mode updated */
    ADD(a, .name = "c/2", .data = "2");
    ADD(a, .name = "s", .type = AE_IFLNK, .link = "target");
    ADD(a, .name = "s", .data = "not through the link"); /* replaces the symlink itself */
    ADD(a, .name = "t", .data = "old");
    ADD(a, .name = "t", .data = "new");
    tb_close(a);
    berr e;
    if (extract(f, 0, &e) < 0) fail_msg("%s", e.msg);
    assert_mode(p_in(f, "a"), S_IFDIR, 0711);
    assert_file(p_in(f, "b"), "file wins");
    assert_mode(p_in(f, "c"), S_IFDIR, 0755);
    assert_file(p_in(f, "c/1"), "1");
    assert_file(p_in(f, "c/2"), "2");
    assert_file(p_in(f, "s"), "not through the link");
    assert_int_equal(access(p_in(f, "target"), F_OK), -1);
    assert_file(p_in(f, "t"), "new");
}

/* a symlink used as a parent resolves inside the root */
static void test_extract_symlink_parent_in_root(void **state)
{
    fx *f = *state;
    struct archive *a = tb_open(f->tar, NULL);
    ADD(a, .name = "real/", .type = AE_IFDIR);
    ADD(a, .name = "abs", .type = AE_IFLNK, .link = "/real");
    ADD(a, .name = "abs/f1", .data = "1");
    ADD(a, .name = "sub/up", .type = AE_IFLNK, .link = "../real");
    ADD(a, .name = "sub/up/f2", .data = "2");
    ADD(a, .name = "deep", .type = AE_IFLNK, .link = "/../../../../real");
    ADD(a, .name = "deep/f3", .data = "3");
    tb_close(a);
    berr e;
    if (extract(f, 0, &e) < 0) fail_msg("%s", e.msg);
    assert_file(p_in(f, "real/f1"), "1");
    assert_file(p_in(f, "real/f2"), "2");
    assert_file(p_in(f, "real/f3"), "3");
    assert_contained(f);
}

/* ---- extraction: hostile archives ---- */

static void test_hostile_dotdot(void **state)
{
    fx *f = *state;
    const char *names[] = {"../berth-tarx-evil", "a/../../outside/evil", "/../outside/evil", "..",
                           "./../../../../tmp/berth-tarx-evil"};
    for (size_t i = 0; i < sizeof names / sizeof *names; i++) {
        struct archive *a = tb_open(f->tar, NULL);
        ADD(a, .name = "ok", .data = "fine");
        ADD(a, .name = names[i], .data = "pwned");
        tb_close(a);
        expect_rejected(f, "breakout");
        expect_rejected(f, names[i]);
    }
}

static void test_hostile_absolute_symlink(void **state)
{
    fx *f = *state;
    char through[256];
    snprintf(through, sizeof through, "evil/%s", f->canary + strlen("/etc/"));
    struct archive *a = tb_open(f->tar, NULL);
    ADD(a, .name = "evil", .type = AE_IFLNK, .link = "/etc");
    ADD(a, .name = through, .data = "pwned");
    tb_close(a);
    berr e;
    extract(f, 0, &e); /* may succeed (lands in dest/etc) or fail: never outside */
    assert_contained(f);

    /* the same through a symlink to the real outside directory */
    rm_rf(f->dest);
    mkdir(f->dest, 0755);
    a = tb_open(f->tar, NULL);
    ADD(a, .name = "out", .type = AE_IFLNK, .link = f->outside);
    ADD(a, .name = "out/pwned", .data = "pwned");
    ADD(a, .name = "out/sub/pwned", .data = "pwned");
    tb_close(a);
    extract(f, 0, &e);
    assert_contained(f);

    /* when the target exists inside the root, the write lands there */
    rm_rf(f->dest);
    mkdir(f->dest, 0755);
    a = tb_open(f->tar, NULL);
    ADD(a, .name = "etc/", .type = AE_IFDIR);
    ADD(a, .name = "evil", .type = AE_IFLNK, .link = "/etc");
    ADD(a, .name = through, .data = "inside");
    tb_close(a);
    if (extract(f, 0, &e) < 0) fail_msg("%s", e.msg);
    assert_file(p_in(f, f->canary + 1), "inside");
    assert_contained(f);
}

/* Relative symlinks that climb above the root are kept as they are (dockerd's
 * chrooted extraction keeps them too): every later entry resolves them
 * inside the root, so writing through one lands inside dest, never outside. */
static void test_hostile_relative_symlink(void **state)
{
    fx *f = *state;
    struct {
        const char *name, *target;
    } cases[] = {
        {"evil", "../../.."},
        {"evil", ".."},
        {"a/b/c", "../../../x"},
        {"a/evil", "../../outside"},
        {"a/evil", "b/../../../outside"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        rm_rf(f->dest);
        mkdir(f->dest, 0755);
        struct archive *a = tb_open(f->tar, NULL);
        ADD(a, .name = cases[i].name, .type = AE_IFLNK, .link = cases[i].target);
        ADD(a, .name = "evil/pwned", .data = "pwned");
        tb_close(a);
        berr e;
        assert_int_equal(extract(f, 0, &e), 0);
        assert_contained(f);
        char link[PATH_MAX], got[PATH_MAX];
        snprintf(link, sizeof link, "%s/%s", f->dest, cases[i].name);
        ssize_t n = readlink(link, got, sizeof got - 1);
        assert_true(n > 0);
        got[n] = 0;
        assert_string_equal(got, cases[i].target);
    }
    /* "evil -> ../../.." then "evil/pwned": the file is dest/pwned */
    rm_rf(f->dest);
    mkdir(f->dest, 0755);
    struct archive *a = tb_open(f->tar, NULL);
    ADD(a, .name = "evil", .type = AE_IFLNK, .link = "../../..");
    ADD(a, .name = "evil/pwned", .data = "pwned");
    tb_close(a);
    berr e;
    assert_int_equal(extract(f, 0, &e), 0);
    char p[PATH_MAX];
    snprintf(p, sizeof p, "%s/pwned", f->dest);
    assert_int_equal(access(p, F_OK), 0);
    assert_contained(f);
}

static void test_hostile_hardlink(void **state)
{
    fx *f = *state;
    struct stat before, after;
    assert_int_equal(stat("/etc/passwd", &before), 0);
    struct archive *a = tb_open(f->tar, NULL);
    ADD(a, .name = "h", .link = "../../../../etc/passwd", .hard = true);
    tb_close(a);
    expect_rejected(f, "breakout");

    a = tb_open(f->tar, NULL);
    ADD(a, .name = "h", .link = "/etc/passwd", .hard = true);
    tb_close(a);
    expect_rejected(f, "does not exist");

    a = tb_open(f->tar, NULL);
    ADD(a, .name = "evil", .type = AE_IFLNK, .link = "/etc");
    ADD(a, .name = "h", .link = "evil/passwd", .hard = true);
    tb_close(a);
    expect_rejected(f, "does not exist");

    a = tb_open(f->tar, NULL);
    ADD(a, .name = "up", .type = AE_IFLNK, .link = "/");
    ADD(a, .name = "h", .link = "up", .hard = true); /* links the symlink itself: fine */
    ADD(a, .name = "missing", .link = "nothing", .hard = true);
    tb_close(a);
    expect_rejected(f, "missing");
    assert_mode(p_in(f, "h"), S_IFLNK, (mode_t)-1);

    assert_int_equal(stat("/etc/passwd", &after), 0);
    assert_int_equal(before.st_nlink, after.st_nlink);
}

static void test_hostile_whiteout_names(void **state)
{
    fx *f = *state;
    struct archive *a = tb_open(f->tar, NULL);
    ADD(a, .name = "sub/.wh..", .data = "");
    tb_close(a);
    expect_rejected(f, "whiteout");
    assert_int_equal(access(f->dest, F_OK), 0);
}

static void test_garbage(void **state)
{
    fx *f = *state;
    char *d = test_data(5000);
    write_bytes(f->tar, d, 5000);
    expect_rejected(f, "invalid tar");
    write_bytes(f->tar, "", 0);
    expect_rejected(f, "invalid tar");
    write_bytes(f->tar, d, 100);
    expect_rejected(f, "invalid tar");
    char zeros[1024] = {0};
    write_bytes(f->tar, zeros, sizeof zeros);
    berr e;
    assert_int_equal(extract(f, 0, &e), 0); /* a valid empty tar */
    write_compressed(f->tar, "gzip", d, 5000);
    expect_rejected(f, "invalid tar");
    free(d);
}

static void test_truncated(void **state)
{
    fx *f = *state;
    char *big = test_data(100000);
    const char *filters[] = {NULL, "gzip", "zstd"};
    for (size_t i = 0; i < 3; i++) {
        struct archive *a = tb_open(f->tar, filters[i]);
        ADD(a, .name = "big", .data = big, .size = 100000);
        ADD(a, .name = "after", .data = "x");
        tb_close(a);
        size_t n = 0;
        char *c = slurp(f->tar, &n);
        size_t cuts[] = {n / 2, 700, 100};
        for (size_t k = 0; k < 3; k++) {
            write_bytes(f->tar, c, cuts[k]);
            expect_rejected(f, "invalid");
        }
        free(c);
    }
    free(big);
}

/* ---- whiteouts ---- */

static void whiteout_archive(fx *f)
{
    mkdir(p_in(f, "d"), 0755);
    write_bytes(p_in(f, "d/old"), "o", 1);
    mkdir(p_in(f, "d/olddir"), 0755);
    write_bytes(p_in(f, "d/olddir/x"), "o", 1);
    write_bytes(p_in(f, "gone"), "g", 1);
    mkdir(p_in(f, "gonedir"), 0755);
    write_bytes(p_in(f, "gonedir/x"), "g", 1);
    struct archive *a = tb_open(f->tar, NULL);
    ADD(a, .name = "d/", .type = AE_IFDIR);
    ADD(a, .name = "d/.wh..wh..opq", .data = "");
    ADD(a, .name = "d/new", .data = "n");
    ADD(a, .name = ".wh.gone", .data = "");
    ADD(a, .name = ".wh.gonedir", .data = "");
    ADD(a, .name = "e/.wh.x", .data = "", .uid = 7, .gid = 8);
    ADD(a, .name = ".wh..wh.plnk/123", .data = "aufs");
    tb_close(a);
}

static void test_whiteouts_overlay(void **state)
{
    fx *f = *state;
    whiteout_archive(f);
    berr e;
    if (extract(f, TARX_OVERLAY, &e) < 0) fail_msg("%s", e.msg);
    char v[4] = {0};
    assert_int_equal(getxattr(p_in(f, "d"), "trusted.overlay.opaque", v, sizeof v), 1);
    assert_string_equal(v, "y");
    assert_file(p_in(f, "d/new"), "n");
    assert_file(p_in(f, "d/old"), "o"); /* hidden by overlayfs, not deleted */
    struct stat st;
    assert_int_equal(lstat(p_in(f, "gone"), &st), 0);
    assert_true(S_ISCHR(st.st_mode) && st.st_rdev == 0);
    assert_int_equal(lstat(p_in(f, "gonedir"), &st), 0);
    assert_true(S_ISCHR(st.st_mode) && st.st_rdev == 0);
    assert_int_equal(lstat(p_in(f, "e/x"), &st), 0);
    assert_true(S_ISCHR(st.st_mode) && st.st_rdev == 0);
    assert_int_equal(st.st_uid, 7);
    assert_int_equal(access(p_in(f, ".wh.gone"), F_OK), -1);
    assert_int_equal(access(p_in(f, "d/.wh..wh..opq"), F_OK), -1);
}

static void test_whiteouts_plain(void **state)
{
    fx *f = *state;
    whiteout_archive(f);
    berr e;
    if (extract(f, 0, &e) < 0) fail_msg("%s", e.msg);
    assert_file(p_in(f, "d/new"), "n");
    assert_int_equal(access(p_in(f, "d/old"), F_OK), -1);
    assert_int_equal(access(p_in(f, "d/olddir"), F_OK), -1);
    assert_int_equal(access(p_in(f, "gone"), F_OK), -1);
    assert_int_equal(access(p_in(f, "gonedir"), F_OK), -1);
    assert_int_equal(access(p_in(f, "e/x"), F_OK), -1);
    assert_mode(p_in(f, "e"), S_IFDIR, 0755);
    assert_int_equal(access(p_in(f, ".wh.gone"), F_OK), -1);
    assert_int_equal(count_entries(p_in(f, "d")), 1);
    assert_int_equal(getxattr(p_in(f, "d"), "trusted.overlay.opaque", NULL, 0), -1);
}

static void test_bad_xattr(void **state)
{
    fx *f = *state;
    struct archive *a = tb_open(f->tar, NULL);
    ADD(a, .name = "badcap", .data = "x", .xname = "security.capability", .xval = "bad");
    tb_close(a);
    expect_rejected(f, "badcap");
}

/* forged overlay xattrs in an archive are dropped */
static void test_forged_overlay_xattr(void **state)
{
    fx *f = *state;
    struct archive *a = tb_open(f->tar, NULL);
    ADD(a, .name = "d/", .type = AE_IFDIR, .xname = "trusted.overlay.redirect", .xval = "/x");
    tb_close(a);
    berr e;
    if (extract(f, TARX_OVERLAY, &e) < 0) fail_msg("%s", e.msg);
    assert_int_equal(getxattr(p_in(f, "d"), "trusted.overlay.redirect", NULL, 0), -1);
}

/* ---- packing ---- */

static void make_tree(const char *src)
{
    char p[512];
#define P(rel) (snprintf(p, sizeof p, "%s/%s", src, rel), p)
    mkdir(P("b"), 0750);
    write_bytes(P("b/z"), "zzz", 3);
    write_bytes(P("b/a"), "aaa", 3);
    mkdir(P("a"), 0755);
    mkdir(P("a/empty"), 0755);
    chmod(P("a/empty"), 01777);
    write_bytes(P("a.txt"), "dot", 3);
    write_bytes(P("suid"), "s", 1);
    chown(P("suid"), 1000, 1001);
    chmod(P("suid"), 04711);
    char other[512];
    snprintf(other, sizeof other, "%s/b/z", src);
    link(other, P("hardlink"));
    symlink("b/a", P("sym"));
    mkfifo(P("fifo"), 0640);
    mknod(P("zero"), S_IFCHR | 0666, makedev(1, 5));
    write_bytes(P("x"), "x", 1);
    lsetxattr(P("x"), "user.k", "v", 1, 0);
    struct timespec ts[2] = {{1600000000, 0}, {1600000000, 0}};
    utimensat(AT_FDCWD, P("b/z"), ts, 0);
    utimensat(AT_FDCWD, P("b"), ts, 0);
#undef P
}

static char *pack(const char *src, const char *out, unsigned flags, size_t *len)
{
    int fd = open(out, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    assert_true(fd >= 0);
    berr e = {0};
    if (tarx_pack_dir(src, fd, flags, &e) < 0) fail_msg("%s", e.msg);
    close(fd);
    return slurp(out, len);
}

/* "name type [link]" lines of an archive */
static char *listing(const char *tar)
{
    struct archive *a = archive_read_new();
    archive_read_support_format_tar(a);
    assert_int_equal(archive_read_open_filename(a, tar, 10240), ARCHIVE_OK);
    sbuf b = {0};
    struct archive_entry *e;
    while (archive_read_next_header(a, &e) == ARCHIVE_OK) {
        const char *hl = archive_entry_hardlink(e);
        sbuf_printf(&b, "%s %o%s%s\n", archive_entry_pathname(e),
                    (unsigned)archive_entry_filetype(e) >> 12, hl ? " => " : "", hl ? hl : "");
    }
    archive_read_free(a);
    return sbuf_steal(&b);
}

static void test_pack_roundtrip(void **state)
{
    fx *f = *state;
    char src[256], t2[256];
    snprintf(src, sizeof src, "%s/src", f->base);
    snprintf(t2, sizeof t2, "%s/again.tar", f->base);
    mkdir(src, 0755);
    make_tree(src);
    size_t n1 = 0, n2 = 0;
    char *one = pack(src, f->tar, 0, &n1);
    char *two = pack(src, t2, 0, &n2);
    assert_int_equal(n1, n2);
    assert_memory_equal(one, two, n1); /* deterministic */
    unlink(t2);
    char *ls = listing(f->tar);
    assert_string_equal(ls, "a/ 4\n"
                            "a/empty/ 4\n"
                            "a.txt 10\n"
                            "b/ 4\n"
                            "b/a 10\n"
                            "b/z 10\n"
                            "fifo 1\n"
                            "hardlink 0 => b/z\n"
                            "suid 10\n"
                            "sym 12\n"
                            "x 10\n"
                            "zero 2\n");
    free(ls);

    berr e;
    if (extract(f, 0, &e) < 0) fail_msg("%s", e.msg);
    assert_file(p_in(f, "b/z"), "zzz");
    assert_file(p_in(f, "hardlink"), "zzz");
    struct stat a, b;
    assert_int_equal(lstat(p_in(f, "b/z"), &a), 0);
    assert_int_equal(lstat(p_in(f, "hardlink"), &b), 0);
    assert_int_equal(a.st_ino, b.st_ino);
    assert_int_equal(a.st_mtime, 1600000000);
    assert_int_equal(lstat(p_in(f, "b"), &a), 0);
    assert_int_equal(a.st_mtime, 1600000000);
    assert_mode(p_in(f, "b"), S_IFDIR, 0750);
    assert_mode(p_in(f, "a/empty"), S_IFDIR, 01777);
    assert_mode(p_in(f, "suid"), S_IFREG, 04711);
    assert_int_equal(lstat(p_in(f, "suid"), &a), 0);
    assert_int_equal(a.st_uid, 1000);
    assert_int_equal(a.st_gid, 1001);
    assert_mode(p_in(f, "fifo"), S_IFIFO, 0640);
    assert_int_equal(lstat(p_in(f, "zero"), &a), 0);
    assert_int_equal(a.st_rdev, makedev(1, 5));
    char buf[64] = {0};
    assert_int_equal(readlink(p_in(f, "sym"), buf, sizeof buf), 3);
    assert_string_equal(buf, "b/a");
    assert_int_equal(lgetxattr(p_in(f, "x"), "user.k", buf, sizeof buf), 1);
    free(one);
    free(two);
    rm_rf(src);
}

static void test_pack_overlay(void **state)
{
    fx *f = *state;
    char src[256], p[512];
    snprintf(src, sizeof src, "%s/src", f->base);
    mkdir(src, 0755);
    snprintf(p, sizeof p, "%s/gone", src);
    mknod(p, S_IFCHR, makedev(0, 0));
    snprintf(p, sizeof p, "%s/o", src);
    mkdir(p, 0711);
    lsetxattr(p, "trusted.overlay.opaque", "y", 1, 0);
    lsetxattr(p, "trusted.overlay.origin", "zz", 2, 0);
    snprintf(p, sizeof p, "%s/o/-first", src);
    write_bytes(p, "f", 1);
    snprintf(p, sizeof p, "%s/o/sub", src);
    mkdir(p, 0755);
    snprintf(p, sizeof p, "%s/o/sub/gone2", src);
    mknod(p, S_IFCHR, makedev(0, 0));
    free(pack(src, f->tar, TARX_OVERLAY, NULL));
    char *ls = listing(f->tar);
    assert_string_equal(ls, ".wh.gone 10\n"
                            "o/ 4\n"
                            "o/.wh..wh..opq 10\n"
                            "o/-first 10\n"
                            "o/sub/ 4\n"
                            "o/sub/.wh.gone2 10\n");
    free(ls);
    /* no overlay xattrs leak into the archive */
    struct archive *a = archive_read_new();
    archive_read_support_format_tar(a);
    assert_int_equal(archive_read_open_filename(a, f->tar, 10240), ARCHIVE_OK);
    struct archive_entry *e;
    while (archive_read_next_header(a, &e) == ARCHIVE_OK)
        assert_int_equal(archive_entry_xattr_count(e), 0);
    archive_read_free(a);

    /* and back: the same overlay layout */
    berr err;
    if (extract(f, TARX_OVERLAY, &err) < 0) fail_msg("%s", err.msg);
    struct stat st;
    assert_int_equal(lstat(p_in(f, "gone"), &st), 0);
    assert_true(S_ISCHR(st.st_mode) && st.st_rdev == 0);
    assert_int_equal(lstat(p_in(f, "o/sub/gone2"), &st), 0);
    assert_true(S_ISCHR(st.st_mode) && st.st_rdev == 0);
    char v[2];
    assert_int_equal(getxattr(p_in(f, "o"), "trusted.overlay.opaque", v, sizeof v), 1);
    assert_mode(p_in(f, "o"), S_IFDIR, 0711);

    /* without TARX_OVERLAY the device is kept as a device */
    free(pack(src, f->tar, 0, NULL));
    ls = listing(f->tar);
    assert_non_null(strstr(ls, "gone 2\n"));
    assert_null(strstr(ls, ".wh."));
    free(ls);
    rm_rf(src);
}

static void test_pack_unicode_and_long_names(void **state)
{
    fx *f = *state;
    char src[256], p[1024], name[300];
    snprintf(src, sizeof src, "%s/src", f->base);
    mkdir(src, 0755);
    snprintf(p, sizeof p, "%s/caf\xc3\xa9 \xe2\x98\x83", src);
    write_bytes(p, "u", 1);
    memset(name, 'n', 200);
    name[200] = 0;
    snprintf(p, sizeof p, "%s/%s", src, name);
    mkdir(p, 0755);
    snprintf(p, sizeof p, "%s/%s/%s", src, name, name);
    write_bytes(p, "long", 4);
    free(pack(src, f->tar, 0, NULL));
    berr e;
    if (extract(f, 0, &e) < 0) fail_msg("%s", e.msg);
    assert_file(p_in(f, "caf\xc3\xa9 \xe2\x98\x83"), "u");
    snprintf(p, sizeof p, "%s/%s", name, name);
    assert_file(p_in(f, p), "long");
    rm_rf(src);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_compression_sniff),
        cmocka_unit_test_setup_teardown(test_decompress_plain, setup, teardown),
        cmocka_unit_test_setup_teardown(test_decompress_filters, setup, teardown),
        cmocka_unit_test_setup_teardown(test_decompress_weak_magic, setup, teardown),
        cmocka_unit_test_setup_teardown(test_decompress_gzip_multimember, setup, teardown),
        cmocka_unit_test_setup_teardown(test_decompress_corrupt, setup, teardown),
        cmocka_unit_test_setup_teardown(test_extract_types, setup, teardown),
        cmocka_unit_test_setup_teardown(test_extract_no_owners, setup, teardown),
        cmocka_unit_test_setup_teardown(test_extract_unprivileged, setup, teardown),
        cmocka_unit_test_setup_teardown(test_extract_replace, setup, teardown),
        cmocka_unit_test_setup_teardown(test_extract_symlink_parent_in_root, setup, teardown),
        cmocka_unit_test_setup_teardown(test_hostile_dotdot, setup, teardown),
        cmocka_unit_test_setup_teardown(test_hostile_absolute_symlink, setup, teardown),
        cmocka_unit_test_setup_teardown(test_hostile_relative_symlink, setup, teardown),
        cmocka_unit_test_setup_teardown(test_hostile_hardlink, setup, teardown),
        cmocka_unit_test_setup_teardown(test_hostile_whiteout_names, setup, teardown),
        cmocka_unit_test_setup_teardown(test_garbage, setup, teardown),
        cmocka_unit_test_setup_teardown(test_truncated, setup, teardown),
        cmocka_unit_test_setup_teardown(test_whiteouts_overlay, setup, teardown),
        cmocka_unit_test_setup_teardown(test_whiteouts_plain, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_xattr, setup, teardown),
        cmocka_unit_test_setup_teardown(test_forged_overlay_xattr, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pack_roundtrip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pack_overlay, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pack_unicode_and_long_names, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
