/* test_ref.c: unit tests for image reference parsing (src/image/ref.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "image/ref.h"

#define HEX64 "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

typedef struct good_case {
    const char *in, *domain, *path, *tag, *digest, *familiar;
} good_case;

static const good_case good[] = {
    {"busybox", "docker.io", "library/busybox", "", "", "busybox:latest"},
    {"busybox:1.36", "docker.io", "library/busybox", "1.36", "", "busybox:1.36"},
    {"library/busybox", "docker.io", "library/busybox", "", "", "busybox:latest"},
    {"docker.io/library/busybox:latest", "docker.io", "library/busybox", "latest", "",
     "busybox:latest"},
    {"docker.io/busybox", "docker.io", "library/busybox", "", "", "busybox:latest"},
    {"index.docker.io/user/app", "docker.io", "user/app", "", "", "user/app:latest"},
    {"user/app:v_1.0-rc", "docker.io", "user/app", "v_1.0-rc", "", "user/app:v_1.0-rc"},
    {"localhost:5000/a/b:v1", "localhost:5000", "a/b", "v1", "", "localhost:5000/a/b:v1"},
    {"localhost/app", "localhost", "app", "", "", "localhost/app:latest"},
    {"127.0.0.1:5000/x", "127.0.0.1:5000", "x", "", "", "127.0.0.1:5000/x:latest"},
    {"[::1]:5000/x", "[::1]:5000", "x", "", "", "[::1]:5000/x:latest"},
    {"a/b@sha256:" HEX64, "docker.io", "a/b", "", "sha256:" HEX64, "a/b@sha256:" HEX64},
    {"a:b@sha256:" HEX64, "docker.io", "library/a", "b", "sha256:" HEX64, "a:b"},
    {"my-reg.example.com/team/a__b.c--d_e", "my-reg.example.com", "team/a__b.c--d_e", "", "",
     "my-reg.example.com/team/a__b.c--d_e:latest"},
    {"UPPER/case", "UPPER", "case", "", "", "UPPER/case:latest"},
    {"library/a/b", "docker.io", "library/a/b", "", "", "library/a/b:latest"},
};

static void test_parse_good(void **state)
{
    for (size_t i = 0; i < sizeof good / sizeof *good; i++) {
        ref r;
        berr e = {0};
        int rc = ref_parse(good[i].in, &r, &e);
        if (rc != 0) fail_msg("%s: %s", good[i].in, e.msg);
        assert_string_equal(r.domain, good[i].domain);
        assert_string_equal(r.path, good[i].path);
        assert_string_equal(r.tag, good[i].tag);
        assert_string_equal(r.digest, good[i].digest);
        char out[1024];
        ref_familiar_string(&r, out, sizeof out);
        assert_string_equal(out, good[i].familiar);
    }
}

static const char *bad[] = {
    "",
    ":tag",
    "a:",
    "-a",
    "a/",
    "a//b",
    "a@sha256:xyz",
    "a@sha256:" HEX64 "0",
    "a@md5:" HEX64,
    "a:b:c",
    "a/-b",
    "a_/b",
    "a..b",
    "a___b",
    "a:b/c",
    "host:port/x",
    "x.com:/a",
    "a b",
    "a:-tag",
    ".a",
    "a/b/",
    "a@",
    "@sha256:" HEX64,
};

static void test_parse_bad(void **state)
{
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        ref r;
        berr e = {0};
        if (ref_parse(bad[i], &r, &e) == 0) fail_msg("accepted: \"%s\"", bad[i]);
        assert_int_equal(e.status, 400);
        assert_true(str_starts(e.msg, "invalid reference format"));
    }
}

static void test_uppercase(void **state)
{
    const char *cases[] = {"UPPER/Case", "Busybox", "user/App:tag", "localhost:5000/A"};
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        ref r;
        berr e = {0};
        assert_int_equal(ref_parse(cases[i], &r, &e), -1);
        assert_int_equal(e.status, 400);
        assert_string_equal(e.msg, "invalid reference format: repository name must be lowercase");
    }
    ref r;
    berr e = {0};
    assert_int_equal(ref_parse("busybox:UPPER_tag", &r, &e), 0); /* tags may be uppercase */
    assert_string_equal(r.tag, "UPPER_tag");
}

static void test_hex_name_and_length(void **state)
{
    ref r;
    berr e = {0};
    assert_int_equal(ref_parse(HEX64, &r, &e), -1);
    assert_int_equal(e.status, 400);
    assert_non_null(strstr(e.msg, "64-byte hexadecimal"));

    char name[300];
    memset(name, 'a', sizeof name);
    name[sizeof name - 1] = 0;
    assert_int_equal(ref_parse(name, &r, &e), -1);
    assert_int_equal(e.status, 400);
    /* "docker.io/library/" (18) + 237 = 255: the limit counts the full name */
    name[237] = 0;
    assert_int_equal(ref_parse(name, &r, &e), 0);
    name[237] = 'a';
    name[238] = 0;
    assert_int_equal(ref_parse(name, &r, &e), -1);
}

static void test_familiar_name(void **state)
{
    struct {
        const char *in, *out;
    } cases[] = {
        {"busybox", "busybox"},
        {"docker.io/library/busybox", "busybox"},
        {"user/app", "user/app"},
        {"docker.io/library/a/b", "library/a/b"},
        {"localhost:5000/app", "localhost:5000/app"},
        {"quay.io/library/x", "quay.io/library/x"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        ref r;
        berr e = {0};
        assert_int_equal(ref_parse(cases[i].in, &r, &e), 0);
        char out[600];
        ref_familiar_name(&r, out, sizeof out);
        assert_string_equal(out, cases[i].out);
    }
}

static void test_valid_tag(void **state)
{
    char long_tag[200];
    memset(long_tag, 'x', sizeof long_tag);
    long_tag[128] = 0;
    assert_true(ref_valid_tag(long_tag));
    long_tag[128] = 'x';
    long_tag[129] = 0;
    assert_false(ref_valid_tag(long_tag));
    assert_true(ref_valid_tag("latest"));
    assert_true(ref_valid_tag("_x.Y-1"));
    assert_false(ref_valid_tag(""));
    assert_false(ref_valid_tag(".x"));
    assert_false(ref_valid_tag("-x"));
    assert_false(ref_valid_tag("a/b"));
    assert_false(ref_valid_tag("a:b"));
}

static void test_id_prefix(void **state)
{
    assert_true(ref_is_id_prefix("abc123"));
    assert_true(ref_is_id_prefix("0"));
    assert_true(ref_is_id_prefix("sha256:abc"));
    assert_true(ref_is_id_prefix("sha256:" HEX64));
    assert_true(ref_is_id_prefix(HEX64));
    assert_false(ref_is_id_prefix(HEX64 "0"));
    assert_false(ref_is_id_prefix("sha256:"));
    assert_false(ref_is_id_prefix(""));
    assert_false(ref_is_id_prefix("ABC"));
    assert_false(ref_is_id_prefix("busybox"));
    assert_false(ref_is_id_prefix("sha256:xyz"));
    assert_false(ref_is_id_prefix(NULL));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_good),    cmocka_unit_test(test_parse_bad),
        cmocka_unit_test(test_uppercase),     cmocka_unit_test(test_hex_name_and_length),
        cmocka_unit_test(test_familiar_name), cmocka_unit_test(test_valid_tag),
        cmocka_unit_test(test_id_prefix),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
