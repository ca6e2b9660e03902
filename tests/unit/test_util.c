/* test_util.c: unit tests for src/common (human formats, time, sizes,
 * digests, base64, atomic files, filter parsing). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/jsonutil.h"
#include "common/util.h"

static void test_human_size(void **st)
{
    char b[32];
    human_size(0, b, sizeof b);
    assert_string_equal(b, "0B");
    human_size(999, b, sizeof b);
    assert_string_equal(b, "999B");
    human_size(1234567, b, sizeof b);
    assert_string_equal(b, "1.23MB");
    human_size(4860000, b, sizeof b);
    assert_string_equal(b, "4.86MB");
    human_size(12000, b, sizeof b);
    assert_string_equal(b, "12kB");
}

static void test_human_duration(void **st)
{
    char b[64];
    human_duration(0, b, sizeof b);
    assert_string_equal(b, "Less than a second");
    human_duration(1, b, sizeof b);
    assert_string_equal(b, "1 second");
    human_duration(45, b, sizeof b);
    assert_string_equal(b, "45 seconds");
    human_duration(90, b, sizeof b);
    assert_string_equal(b, "About a minute");
    human_duration(600, b, sizeof b);
    assert_string_equal(b, "10 minutes");
    human_duration(3600, b, sizeof b);
    assert_string_equal(b, "About an hour");
    human_duration(5 * 3600, b, sizeof b);
    assert_string_equal(b, "5 hours");
    human_duration(3 * 86400, b, sizeof b);
    assert_string_equal(b, "3 days");
    human_duration(21 * 86400, b, sizeof b);
    assert_string_equal(b, "3 weeks");
    human_duration(90 * 86400, b, sizeof b);
    assert_string_equal(b, "3 months");
    human_duration(3 * 365 * 86400, b, sizeof b);
    assert_string_equal(b, "3 years");
}

static void test_parse_size(void **st)
{
    assert_int_equal(parse_size("512m"), 512LL << 20);
    assert_int_equal(parse_size("1g"), 1LL << 30);
    assert_int_equal(parse_size("1GB"), 1LL << 30);
    assert_int_equal(parse_size("100k"), 100LL << 10);
    assert_int_equal(parse_size("1024"), 1024);
    assert_int_equal(parse_size("1.5k"), 1536);
    assert_int_equal(parse_size("abc"), -1);
    assert_int_equal(parse_size("12x"), -1);
    assert_int_equal(parse_size("-1"), -1);
    assert_int_equal(parse_size(""), -1);
}

static void test_time(void **st)
{
    char b[64];
    fmt_rfc3339nano(1700000000123456789LL, b, sizeof b);
    assert_string_equal(b, "2023-11-14T22:13:20.123456789Z");
    fmt_rfc3339nano(1700000000100000000LL, b, sizeof b);
    assert_string_equal(b, "2023-11-14T22:13:20.1Z");
    fmt_rfc3339nano(1700000000000000000LL, b, sizeof b);
    assert_string_equal(b, "2023-11-14T22:13:20Z");
    assert_int_equal(parse_rfc3339("2023-11-14T22:13:20.123456789Z"), 1700000000123456789LL);
    assert_int_equal(parse_rfc3339("2023-11-14T23:13:20+01:00"), 1700000000000000000LL);
    assert_int_equal(parse_rfc3339("garbage"), -1);
    int64_t now = 1700000000000000000LL;
    assert_int_equal(parse_time_arg("1700000000", now), now);
    assert_int_equal(parse_time_arg("1700000000.5", now), now + 500000000LL);
    assert_int_equal(parse_time_arg("10m", now), now - 600000000000LL);
    assert_int_equal(parse_time_arg("1h30m", now), now - 5400000000000LL);
    assert_int_equal(parse_time_arg("nonsense", now), -1);
}

static void test_digest(void **st)
{
    char d[DIGEST_LEN + 1];
    sha256_buf("", 0, d);
    assert_string_equal(d,
                        "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    assert_true(digest_valid(d));
    assert_false(digest_valid("sha256:abc"));
    assert_false(
        digest_valid("md5:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"));
    assert_false(
        digest_valid("sha256:E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855"));
}

static void test_base64(void **st)
{
    static const char *pairs[][2] = {
        {"", ""},
        {"f", "Zg=="},
        {"fo", "Zm8="},
        {"foo", "Zm9v"},
        {"foob", "Zm9vYg=="},
        {"fooba", "Zm9vYmE="},
        {"foobar", "Zm9vYmFy"},
    };
    for (size_t i = 0; i < sizeof pairs / sizeof pairs[0]; i++) {
        char *e = base64_encode(pairs[i][0], strlen(pairs[i][0]));
        assert_string_equal(e, pairs[i][1]);
        unsigned char dec[16] = {0};
        assert_int_equal(base64_decode(e, strlen(e), dec), (int)strlen(pairs[i][0]));
        assert_memory_equal(dec, pairs[i][0], strlen(pairs[i][0]));
        free(e);
    }
    /* all byte values and the two top alphabet characters */
    unsigned char all[256], dec[256];
    for (int i = 0; i < 256; i++) all[i] = (unsigned char)(255 - i);
    char *e = base64_encode(all, sizeof all);
    assert_int_equal(strlen(e), 344);
    assert_true(strchr(e, '+') && strchr(e, '/'));
    assert_int_equal(base64_decode(e, strlen(e), dec), 256);
    assert_memory_equal(dec, all, 256);
    free(e);
    assert_int_equal(base64_decode("Zm9v!", 5, dec), -1);
}

static void test_atomic_file(void **st)
{
    char dir[] = "/tmp/berth-test-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char *p = xasprintf("%s/a/b/state.json", dir);
    char *parent = xasprintf("%s/a/b", dir);
    assert_int_equal(mkdir_p(parent, 0755), 0);
    assert_int_equal(write_file_atomic(p, "one", 3, 0644), 0);
    assert_int_equal(write_file_atomic(p, "second", 6, 0644), 0);
    char *data;
    size_t len;
    assert_int_equal(read_file(p, &data, &len), 0);
    assert_int_equal(len, 6);
    assert_string_equal(data, "second");
    free(data);
    assert_int_equal(rm_rf(dir), 0);
    assert_int_equal(access(dir, F_OK), -1);
    assert_int_equal(rm_rf(dir), 0); /* absent is fine */
    free(p);
    free(parent);
}

static void test_dir_only(void **st)
{
    (void)st;
    char dir[] = "/tmp/berth-test-XXXXXX";
    assert_non_null(mkdtemp(dir));
    static const char *const mark[] = {"incompat", NULL};
    assert_int_equal(dir_only(dir, NULL), 1); /* empty */
    assert_int_equal(dir_only(dir, mark), 1);
    char *a = xasprintf("%s/incompat", dir), *b = xasprintf("%s/other", dir);
    assert_int_equal(mkdir(a, 0700), 0);
    assert_int_equal(dir_only(dir, NULL), 0);
    assert_int_equal(dir_only(dir, mark), 1);
    assert_int_equal(write_file_atomic(b, "x", 1, 0600), 0);
    assert_int_equal(dir_only(dir, mark), 0);
    assert_int_equal(rm_rf(dir), 0);
    assert_int_equal(dir_only(dir, NULL), -1);
    assert_int_equal(errno, ENOENT);
    free(a), free(b);
}

/* write_file_from writes through the spare's inode, or makes a file without one */
static void test_write_file_from(void **st)
{
    (void)st;
    char dir[] = "/tmp/berth-test-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char *spare = xasprintf("%s/spare", dir), *path = xasprintf("%s/file", dir), *data = NULL;
    assert_int_equal(write_file_atomic(spare, "old contents, longer", 20, 0644), 0);
    struct stat a, b;
    assert_int_equal(stat(spare, &a), 0);
    assert_int_equal(write_file_from(spare, path, "new", 3, 0600), 0);
    assert_int_equal(stat(path, &b), 0);
    assert_int_equal(a.st_ino, b.st_ino);      /* the spare's inode */
    assert_int_equal(b.st_mode & 07777, 0600); /* the mode asked for */
    assert_int_equal(access(spare, F_OK), -1); /* taken */
    size_t n = 0;
    assert_int_equal(read_file(path, &data, &n), 0);
    assert_int_equal(n, 3); /* truncated first */
    assert_memory_equal(data, "new", 3);
    free(data);
    assert_int_equal(write_file_from(spare, path, "again", 5, 0600), 0); /* no spare */
    assert_int_equal(read_file(path, &data, &n), 0);
    assert_int_equal(n, 5);
    free(data);
    assert_int_equal(rm_rf(dir), 0);
    free(spare), free(path);
}

/* real_path agrees with realpath: through symlinks, "..", and not for what is missing */
static void test_real_path(void **st)
{
    (void)st;
    char dir[] = "/tmp/berth-test-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char *sub = xasprintf("%s/a/b", dir), *link = xasprintf("%s/l", dir);
    char *via = xasprintf("%s/l/b/../b", dir), *gone = xasprintf("%s/nope", dir);
    assert_int_equal(mkdir_p(sub, 0700), 0);
    char *target = xasprintf("%s/a", dir);
    assert_int_equal(symlink(target, link), 0);
    char *want = realpath(via, NULL), *got = real_path(via);
    assert_non_null(want);
    assert_non_null(got);
    assert_string_equal(got, want);
    free(got);
    got = real_path("/");
    assert_string_equal(got, "/");
    free(got);
    errno = 0;
    assert_null(real_path(gone));
    assert_int_equal(errno, ENOENT);
    assert_int_equal(rm_rf(dir), 0);
    free(want), free(sub), free(link), free(via), free(gone), free(target);
}

static void test_filters(void **st)
{
    static const char *const keys[] = {"reference", "dangling", "label", NULL};
    berr e;
    json_t *f =
        filters_parse("{\"reference\":{\"busybox\":true},\"dangling\":[\"true\"]}", keys, &e);
    assert_non_null(f);
    assert_true(filters_match(f, "reference", "busybox"));
    assert_false(filters_match(f, "reference", "alpine"));
    assert_true(filters_match(f, "dangling", "true"));
    assert_true(filters_match(f, "label", "anything")); /* absent key matches */
    json_decref(f);
    assert_null(filters_parse("{\"bogus\":{\"x\":true}}", keys, &e));
    assert_int_equal(e.status, 400);
    assert_non_null(strstr(e.msg, "bogus"));
    assert_null(filters_parse("{not json", keys, &e));
    assert_int_equal(e.status, 400);
    f = filters_parse("{\"label\":[\"a=1\",\"b\"]}", keys, &e);
    json_t *labels = json_pack("{s:s,s:s}", "a", "1", "b", "2");
    assert_true(filters_match_labels(f, "label", labels));
    json_object_set_new(labels, "a", json_string("2"));
    assert_false(filters_match_labels(f, "label", labels));
    json_decref(labels);
    json_decref(f);
    f = filters_parse("", keys, &e);
    assert_int_equal(json_object_size(f), 0);
    json_decref(f);
}

static void test_json_body(void **st)
{
    berr e;
    json_t *j = json_parse_body("{\"a\":1}", 7, &e);
    assert_non_null(j);
    json_decref(j);
    assert_null(json_parse_body("{\"a\":", 5, &e));
    assert_int_equal(e.status, 400);
    assert_null(json_parse_body(NULL, 0, &e));
}

/* jsonfast.c: what its parser takes, it gives as jansson does (values,
 * types, member order); what it leaves, jansson parses or refuses, with
 * jansson's error text. */
static void same_as_jansson(const char *doc, size_t flags, bool fast)
{
    json_error_t je1, je2;
    size_t n = strlen(doc);
    json_t *j = json_loadb(doc, n, flags, &je1), *f = json_fast_parse(doc, n, flags);
    json_t *l = json_fast_loadb(doc, n, flags, &je2);
    if (fast) assert_non_null(f);
    if (f) {
        assert_non_null(j);
        assert_true(json_equal(f, j));
        char *a = json_dumps(f, JSON_ENCODE_ANY | JSON_COMPACT);
        char *b = json_dumps(j, JSON_ENCODE_ANY | JSON_COMPACT);
        assert_string_equal(a, b);
        free(a), free(b);
    }
    assert_int_equal(!l, !j);
    if (j) assert_true(json_equal(l, j));
    if (!j) assert_string_equal(je1.text, je2.text);
    for (int i = 0; j && i < 3; i++) { /* and dumped back as jansson dumps */
        size_t df = i == 0   ? JSON_COMPACT
                    : i == 1 ? JSON_COMPACT | JSON_ENCODE_ANY
                             : JSON_INDENT(2);
        char *a = json_dumps(j, df), *b = json_fast_dumps(j, df);
        assert_int_equal(!a, !b);
        if (a) assert_string_equal(a, b);
        free(a), free(b);
    }
    json_decref(j), json_decref(f), json_decref(l);
}

static void test_json_fast(void **st)
{
    static const char *taken[] = {
        "{}",
        "[]",
        " {\"a\" : [1, -2, 0, -0, 3.5, -1e3, 2E+2, 1e-400, true, false, null]}\n",
        "{\"k\":\"plain\",\"e\":\"q\\\"b\\\\s\\/n\\nt\\tr\\rb\\bf\\f\"}",
        "[\"\\u00e9\\u20ac\\ud83d\\ude00\", \"caf\xc3\xa9\", \"\\u0041\"]",
        "{\"dup\":1,\"z\":2,\"dup\":3}",
        "{\"\\u00e9t\\u00e9\":{\"\xc3\xa9\":[[[]]]}}",
        "[9223372036854775807, -9223372036854775808, 1.7976931348623157e308]",
        "{\"Env\":[\"PATH=/usr/bin\"],\"HostConfig\":{\"Memory\":0,\"Binds\":null}}",
        "[\"ctl \\u0001\\u001f\\u007f \\\"q\\\" / \\\\ \\b\\f\\n\\r\\t\", {\"\\n\":[]}, 1.5]",
    };
    for (size_t i = 0; i < sizeof taken / sizeof *taken; i++) same_as_jansson(taken[i], 0, true);
    static const char *any[] = {"5", " \"s\" ", "null", "-0.0", "true"};
    for (size_t i = 0; i < sizeof any / sizeof *any; i++) {
        same_as_jansson(any[i], JSON_DECODE_ANY, true);
        same_as_jansson(any[i], 0, false); /* refused without DECODE_ANY */
    }
    static const char *left[] = {
        "",
        "{",
        "[1,]",
        "{\"a\":}",
        "{\"a\" 1}",
        "[01]",
        "[-]",
        "[1.]",
        "[.5]",
        "[1e]",
        "[+1]",
        "[\"\\u0000\"]",
        "[\"\\ud800\"]",
        "[\"\\udc00\"]",
        "[\"\\ud800\\u0041\"]",
        "[\"\\x\"]",
        "[\"a\nb\"]",
        "[\"\xc3\"]",
        "[\"\xed\xa0\x80\"]",
        "[\"\xc0\xaf\"]",
        "{\"\xff\":1}",
        "[tru]",
        "[truex]",
        "[nul]",
        "{} x",
        "[1] [2]",
        "[99999999999999999999]",
        "[-99999999999999999999]",
        "[1e999]",
        "{\"a\":1,}",
        "[1 2]",
        "{1:2}",
        "[0.000000000000000000000000000000000000000000000000000000000000000001]",
    };
    for (size_t i = 0; i < sizeof left / sizeof *left; i++) {
        same_as_jansson(left[i], 0, false);
        same_as_jansson(left[i], JSON_DECODE_ANY, false);
    }
    /* a NUL byte inside the buffer, and nesting beyond the parser's own depth */
    json_error_t je;
    assert_null(json_fast_parse("[1]\0", 4, 0));
    assert_null(json_fast_loadb("[1]\0", 4, 0, &je));
    char deep[2 * 300 + 1];
    memset(deep, '[', 300), memset(deep + 300, ']', 300), deep[600] = 0;
    assert_null(json_fast_parse(deep, 600, 0));
    same_as_jansson(deep, 0, false);
    json_t *j = json_fast_loadb(deep, 600, 0, &je); /* jansson's */
    assert_non_null(j);
    json_decref(j);
    (void)st;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_human_size),  cmocka_unit_test(test_human_duration),
        cmocka_unit_test(test_parse_size),  cmocka_unit_test(test_time),
        cmocka_unit_test(test_digest),      cmocka_unit_test(test_base64),
        cmocka_unit_test(test_atomic_file), cmocka_unit_test(test_dir_only),
        cmocka_unit_test(test_filters),     cmocka_unit_test(test_json_body),
        cmocka_unit_test(test_real_path),   cmocka_unit_test(test_write_file_from),
        cmocka_unit_test(test_json_fast),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
