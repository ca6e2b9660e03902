/* test_template.c: unit tests for the Go text/template subset in
 * src/cli/template.c: parsing, evaluation, Go-style value printing, the
 * builtin and docker functions, type hints, header mode, and the exact
 * wording and positions of parse and execution errors. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "cli/template.h"

static const char *DATA =
    "{\"Id\":\"sha256:abc\",\"Os\":\"linux\",\"Size\":1982291,\"Ratio\":0.5,\"Ok\":true,"
    "\"No\":false,\"Empty\":\"\",\"Nil\":null,\"Tags\":[\"a:1\",\"b:2\"],\"None\":[],"
    "\"Labels\":{\"z\":\"last\",\"a\":\"first\"},\"Config\":{\"Cmd\":[\"sh\",\"-c\"],"
    "\"Env\":null,\"Labels\":null,\"User\":\"\"},\"Html\":\"<a&b>\",\"Nums\":[3,1,2],"
    "\"Nested\":[{\"Name\":\"x\",\"V\":1},{\"Name\":\"y\",\"V\":2}],\"Mixed\":[1,\"s\",null,true]}";

/* Renders src against DATA (or data_src) with opts; returns output or
 * "ERR:<message>" (malloc'd). */
static char *run_opts(const char *src, const char *data_src, const tmpl_opts *o)
{
    json_error_t je;
    json_t *data = json_loads(data_src ? data_src : DATA, JSON_DECODE_ANY, &je);
    assert_non_null(data);
    char *err = NULL;
    char *out = tmpl_render(src, data, o, &err);
    json_decref(data);
    if (out) {
        assert_null(err);
        return out;
    }
    assert_non_null(err);
    char *r = xasprintf("ERR:%s", err);
    free(err);
    return r;
}

static char *run(const char *src)
{
    return run_opts(src, NULL, NULL);
}

#define EXPECT(src, want)                                                                          \
    do {                                                                                           \
        char *got_ = run(src);                                                                     \
        assert_string_equal(got_, want);                                                           \
        free(got_);                                                                                \
    } while (0)

#define EXPECT_OPTS(src, data, opts, want)                                                         \
    do {                                                                                           \
        char *got_ = run_opts(src, data, opts);                                                    \
        assert_string_equal(got_, want);                                                           \
        free(got_);                                                                                \
    } while (0)

static void test_text_and_fields(void **st)
{
    EXPECT("", "");
    EXPECT("plain text", "plain text");
    EXPECT("{{.Os}}", "linux");
    EXPECT("id={{.Id}} os={{.Os}}", "id=sha256:abc os=linux");
    EXPECT("{{.Config.Cmd}}", "[sh -c]");
    EXPECT("{{.Size}}", "1982291");
    EXPECT("{{.Ratio}}", "0.5");
    EXPECT("{{.Ok}} {{.No}}", "true false");
    EXPECT("{{.Missing}}", "<no value>");
    EXPECT("{{.Nil}}", "<no value>");
    EXPECT("{{.Config.Env}}", "<no value>");
    EXPECT("{{.Labels}}", "map[a:first z:last]");
    EXPECT("{{.Mixed}}", "[1 s <nil> true]");
    EXPECT("{{.Nested}}", "[map[Name:x V:1] map[Name:y V:2]]");
    EXPECT("{{.None}}", "[]");
    EXPECT("{{.Html}}", "<a&b>");
    EXPECT("{{$.Os}}{{with .Config}}{{$.Size}}{{end}}", "linux1982291");
}

static void test_dot_and_root(void **st)
{
    EXPECT_OPTS("{{.}}", "\"str\"", NULL, "str");
    EXPECT_OPTS("{{.}}", "42", NULL, "42");
    EXPECT_OPTS("{{.}}", "[1,2]", NULL, "[1 2]");
    EXPECT_OPTS("{{.}}", "{\"b\":1,\"a\":[true]}", NULL, "map[a:[true] b:1]");
    EXPECT("{{with .Config}}{{$.Os}}/{{.User}}{{end}}", "linux/");
    char *err = NULL;
    char *out = tmpl_render("{{.}}", NULL, NULL, &err);
    assert_string_equal(out, "<no value>");
    free(out);
}

static void test_json(void **st)
{
    EXPECT("{{json .Tags}}", "[\"a:1\",\"b:2\"]");
    EXPECT("{{json .Config}}",
           "{\"Cmd\":[\"sh\",\"-c\"],\"Env\":null,\"Labels\":null,\"User\":\"\"}");
    EXPECT("{{json .Html}}", "\"<a&b>\"");
    EXPECT("{{json .Nil}}", "null");
    EXPECT("{{json .Missing}}", "null");
    EXPECT("{{json .Ratio}}", "0.5");
    EXPECT("{{.Config | json}}",
           "{\"Cmd\":[\"sh\",\"-c\"],\"Env\":null,\"Labels\":null,\"User\":\"\"}");
    EXPECT_OPTS("{{json .}}", "\"a\\nb\\t\\u0001\\\"\\\\\"", NULL, "\"a\\nb\\t\\u0001\\\"\\\\\"");
    EXPECT_OPTS("{{json .}}", "[1e21, 1e-7, 0.000001, 100.0, 2.5]", NULL,
                "[1e+21,1e-7,0.000001,100,2.5]");
    EXPECT_OPTS("{{json .}}", "\"\xc3\xa9\"", NULL, "\"\xc3\xa9\"");
}

static void test_json_self(void **st)
{
    json_error_t je;
    json_t *data = json_loads("{\"Status\":\"s\"}", 0, &je);
    json_t *self = json_loads("{\"status\":\"s\"}", 0, &je);
    tmpl_opts o = {.json_self = self};
    char *err = NULL;
    char *out = tmpl_render("{{.Status}} {{json .}}", data, &o, &err);
    assert_string_equal(out, "s {\"status\":\"s\"}");
    free(out);
    json_decref(data);
    json_decref(self);
}

static void test_range(void **st)
{
    EXPECT("{{range .Tags}}[{{.}}]{{end}}", "[a:1][b:2]");
    EXPECT("{{range $i, $t := .Tags}}{{$i}}={{$t}};{{end}}", "0=a:1;1=b:2;");
    EXPECT("{{range $t := .Tags}}{{$t}},{{end}}", "a:1,b:2,");
    EXPECT("{{range $k, $v := .Labels}}{{$k}}:{{$v}} {{end}}", "a:first z:last ");
    EXPECT("{{range .Labels}}{{.}} {{end}}", "first last ");
    EXPECT("{{range .None}}x{{else}}empty{{end}}", "empty");
    EXPECT("{{range .Nil}}x{{else}}nil{{end}}", "nil");
    EXPECT("{{range .Missing}}x{{end}}done", "done");
    EXPECT("{{range .Nested}}{{.Name}}{{.V}} {{end}}", "x1 y2 ");
    EXPECT("{{range .Nums}}{{if eq . 1}}{{break}}{{end}}{{.}}{{end}}", "3");
    EXPECT("{{range .Nums}}{{if eq . 1}}{{continue}}{{end}}{{.}}{{end}}", "32");
    EXPECT("{{range $i, $e := .Tags}}{{range $.Nums}}{{$i}}{{end}}{{end}}", "000111");
    EXPECT("{{range .Size}}x{{end}}",
           "ERR:template: :1:8: executing \"\" at <.Size>: range can't iterate over 1982291");
    EXPECT("{{range .Os}}x{{end}}",
           "ERR:template: :1:8: executing \"\" at <.Os>: range can't iterate over linux");
}

static void test_if_with(void **st)
{
    EXPECT("{{if .Ok}}yes{{end}}", "yes");
    EXPECT("{{if .No}}yes{{else}}no{{end}}", "no");
    EXPECT("{{if .Empty}}a{{else if .None}}b{{else if .Tags}}c{{else}}d{{end}}", "c");
    EXPECT("{{if .Nil}}a{{else}}b{{end}}", "b");
    EXPECT("{{if .Missing}}a{{else}}b{{end}}", "b");
    EXPECT("{{if .Labels}}a{{end}}{{if .Size}}b{{end}}{{if .Ratio}}c{{end}}", "abc");
    EXPECT("{{if 0}}a{{else}}b{{end}}", "b");
    EXPECT("{{with .Config}}{{.Cmd}}{{end}}", "[sh -c]");
    EXPECT("{{with .Config.Env}}x{{else}}none{{end}}", "none");
    EXPECT("{{with $x := .Os}}{{$x}}{{.}}{{end}}", "linuxlinux");
    EXPECT("{{with .Empty}}x{{else with .Os}}{{.}}{{end}}", "linux");
    EXPECT("{{if and .Ok .Os}}y{{end}}{{if or .No .Empty}}n{{else}}z{{end}}", "yz");
}

static void test_variables(void **st)
{
    EXPECT("{{$x := .Os}}{{$x}}", "linux");
    EXPECT("{{$x := 1}}{{$x = 2}}{{$x}}", "2");
    EXPECT("{{$x := .Config}}{{$x.Cmd}}", "[sh -c]");
    EXPECT("{{if .Ok}}{{$y := 5}}{{$y}}{{end}}", "5");
    EXPECT("{{$x := 1}}{{if .Ok}}{{$x = 7}}{{end}}{{$x}}", "7");
    EXPECT("{{$.Os}}", "linux");
    EXPECT("{{$x}}", "ERR:template: :1: undefined variable \"$x\"");
    EXPECT("{{if .Ok}}{{$y := 5}}{{end}}{{$y}}", "ERR:template: :1: undefined variable \"$y\"");
}

static void test_pipelines(void **st)
{
    EXPECT("{{.Os | upper}}", "LINUX");
    EXPECT("{{.Os | printf \"%s-%s\" \"x\"}}", "x-linux");
    EXPECT("{{.Tags | len}}", "2");
    EXPECT("{{(index .Tags 1)}}", "b:2");
    EXPECT("{{(index .Nested 1).Name}}", "y");
    EXPECT("{{(.Config).Cmd}}", "[sh -c]");
    EXPECT("{{len (split .Id \":\")}}", "2");
    EXPECT("{{.Os | printf \"%q\" | upper}}", "\"LINUX\"");
}

static void test_literals(void **st)
{
    EXPECT("{{1.5}} {{1e3}} {{0x10}} {{-3}} {{+4}} {{true}} {{'a'}} {{1_000}}",
           "1.5 1000 16 -3 4 true 97 1000");
    EXPECT("{{\"a\\tb\\n\\u00e9\\x41\"}}", "a\tb\n\xc3\xa9"
                                           "A");
    EXPECT("{{`raw\\n`}}", "raw\\n");
    EXPECT("{{1e6}} {{1234567.0}} {{0.0001}} {{0.00001}}", "1e+06 1.234567e+06 0.0001 1e-05");
    EXPECT("{{nil}}", "ERR:template: :1:2: executing \"\" at <nil>: nil is not a command");
}

static void test_whitespace_and_comments(void **st)
{
    EXPECT("a  {{- .Os -}}  b", "alinuxb");
    EXPECT("a {{.Os -}}\n\n b", "a linuxb");
    EXPECT("a\n {{- .Os}}", "alinux");
    EXPECT("x{{/* a comment */}}y", "xy");
    EXPECT("x {{- /* c */ -}} y", "xy");
    EXPECT("{{-3}}", "-3");
    EXPECT("{{.Os}}\n{{.Size}}\n", "linux\n1982291\n");
    EXPECT("{{.Os\n}}", "linux");
}

static void test_builtin_functions(void **st)
{
    EXPECT("{{index .Tags 0}}", "a:1");
    EXPECT("{{index .Labels \"z\"}}", "last");
    EXPECT("{{index .Labels \"nope\"}}", "<no value>");
    EXPECT("{{index .Nested 0 \"Name\"}}", "x");
    EXPECT("{{len .Os}} {{len .Labels}} {{len .None}}", "5 2 0");
    EXPECT("{{slice .Os 1 3}} {{slice .Os 2}} {{slice .Tags 1}}", "in nux [b:2]");
    EXPECT("{{print 1 2 \"a\" \"b\" 3}}", "1 2ab3");
    EXPECT("{{println 1 \"a\"}}", "1 a\n");
    EXPECT("{{print .Nil .Tags}}", "<nil> [a:1 b:2]");
    EXPECT("{{not .Ok}} {{not .Empty}}", "false true");
    EXPECT("{{and 1 0 2}} {{and 1 2}} {{or 0 \"\" \"z\"}} {{or 0 \"\"}}", "0 2 z ");
    EXPECT("{{html .Html}} {{html \"'\\\"\"}}", "&lt;a&amp;b&gt; &#39;&#34;");
    EXPECT("{{js \"a'b<\"}}", "a\\'b\\u003C");
    EXPECT("{{urlquery \"a b&c/d\"}}", "a+b%26c%2Fd");
}

static void test_printf(void **st)
{
    EXPECT("{{printf \"%d|%s|%5.2f|%q|%v|%x|%X|%t\" .Size .Os 3.14159 .Os .Tags 255 255 true}}",
           "1982291|linux| 3.14|\"linux\"|[a:1 b:2]|ff|FF|true");
    EXPECT("{{printf \"%-6s|%6s|%05d|%+d|%%\" \"ab\" \"cd\" 42 7}}", "ab    |    cd|00042|+7|%");
    EXPECT("{{printf \"%.2s\" \"abcdef\"}}", "ab");
    EXPECT("{{printf \"%x\" \"hi\"}}", "6869");
    EXPECT("{{printf \"%d\"}}", "%!d(MISSING)");
    EXPECT("{{printf \"%d\" \"x\" 3}}", "%!d(string=x)%!(EXTRA int=3)");
    EXPECT("{{printf \"%v\" .Labels}}", "map[a:first z:last]");
    EXPECT("{{printf \"%s\" .Nil}}", "%!s(<nil>=<nil>)");
}

static void test_comparisons(void **st)
{
    EXPECT("{{eq .Os \"linux\"}} {{eq .Os \"mac\" \"linux\"}} {{eq 1 2}}", "true true false");
    EXPECT("{{ne .Os \"mac\"}} {{eq .Size 1982291}} {{eq .Ok true}}", "true true true");
    EXPECT("{{lt 1 2}} {{le 2 2}} {{gt \"b\" \"a\"}} {{ge 1.5 2.5}}", "true true true false");
    EXPECT("{{eq .Nil nil}} {{eq .Missing .Nil}}", "true true");
    EXPECT("{{lt 1 2.5}}", "ERR:template: :1:2: executing \"\" at <lt 1 2.5>: error calling lt: "
                           "incompatible types for comparison");
    EXPECT("{{eq 1 \"a\"}}",
           "ERR:template: :1:2: executing \"\" at <eq 1 \"a\">: error calling eq: "
           "incompatible types for comparison");
    EXPECT("{{lt .Ok .No}}", "ERR:template: :1:2: executing \"\" at <lt .Ok .No>: error calling "
                             "lt: invalid type for comparison");
}

static void test_docker_functions(void **st)
{
    EXPECT("{{split \"a,b,c\" \",\"}}", "[a b c]");
    EXPECT("{{join .Tags \", \"}}", "a:1, b:2");
    EXPECT("{{join .Config.Cmd \" \"}}", "sh -c");
    EXPECT("{{title \"hello wide-world\"}}", "Hello Wide-World");
    EXPECT("{{lower \"MiXeD\"}} {{upper .Os}}", "mixed LINUX");
    EXPECT("[{{pad .Os 2 1}}][{{pad .Empty 2 1}}]", "[  linux ][]");
    EXPECT("{{truncate .Id 6}} {{truncate .Os 10}}", "sha256 linux");
    EXPECT("{{upper .Size}}", "ERR:template: :1:8: executing \"\" at <.Size>: wrong type for "
                              "value; expected string; got int");
    EXPECT("{{join .Os \",\"}}",
           "ERR:template: :1:7: executing \"\" at <.Os>: wrong type for value; "
           "expected []string; got string");
}

static void test_header_mode(void **st)
{
    tmpl_opts o = {.header = true};
    EXPECT_OPTS("{{.ID}}\t{{json .Name}}|{{upper .Name}}|{{truncate .Name 2}}|{{join .Name \",\"}}",
                "{\"ID\":\"IMAGE ID\",\"Name\":\"NAME\"}", &o, "IMAGE ID\tNAME|NAME|NAME|NAME");
    EXPECT_OPTS("{{.Name | printf \"%-6s\"}}|", "{\"Name\":\"N\"}", &o, "N     |");
}

static void test_struct_and_missingkey(void **st)
{
    tmpl_opts strict = {.struct_name = "*formatter.imageContext"};
    EXPECT_OPTS("{{.ID}}", "{\"ID\":\"x\"}", &strict, "x");
    EXPECT_OPTS("{{.Foo}}", "{\"ID\":\"x\"}", &strict,
                "ERR:template: :1:2: executing \"\" at <.Foo>: can't evaluate field Foo in type "
                "*formatter.imageContext");
    tmpl_opts mk = {.missingkey_error = true};
    EXPECT_OPTS("{{.Os}}", DATA, &mk, "linux");
    EXPECT_OPTS("{{.Foo}}", DATA, &mk,
                "ERR:template: :1:2: executing \"\" at <.Foo>: map has no entry for key \"Foo\"");
    EXPECT_OPTS(
        "{{.Foo.Bar}}", DATA, &mk,
        "ERR:template: :1:6: executing \"\" at <.Foo.Bar>: map has no entry for key \"Foo\"");
    EXPECT("{{.Foo.Bar}}", "ERR:template: :1:6: executing \"\" at <.Foo.Bar>: nil pointer "
                           "evaluating interface {}.Bar");
    EXPECT("{{.Size.X}}", "ERR:template: :1:7: executing \"\" at <.Size.X>: can't evaluate field X "
                          "in type interface {}");
}

static void test_hints(void **st)
{
    json_error_t je;
    json_t *hints =
        json_loads("{\"Config\":{\"Env\":\"slice\",\"Labels\":\"mapstr\",\"Cmd\":[\"str\"]},"
                   "\"Nil\":\"ptr\",\"Tags\":\"slice\",\"Labels\":\"map\"}",
                   0, &je);
    tmpl_opts o = {.hints = hints};
    EXPECT_OPTS("{{.Config.Env}}|{{.Config.Labels}}|{{.Nil}}", DATA, &o, "[]|map[]|<nil>");
    EXPECT_OPTS("[{{index .Config.Labels \"x\"}}]", DATA, &o, "[]");
    EXPECT_OPTS("{{len .Config.Env}}", DATA, &o, "0");
    EXPECT_OPTS("{{.Config}}", DATA, &o, "{[sh -c] [] map[] }");
    EXPECT_OPTS("{{json .Config.Env}}", DATA, &o, "null");
    json_decref(hints);
}

static void test_parse_errors(void **st)
{
    EXPECT("{{.Id", "ERR:template: :1: unclosed action");
    EXPECT("{{end}}", "ERR:template: :1: unexpected {{end}}");
    EXPECT("{{else}}", "ERR:template: :1: unexpected {{else}}");
    EXPECT("{{if .Id}}", "ERR:template: :1: unexpected EOF");
    EXPECT("{{range .Tags}}{{else}}", "ERR:template: :1: unexpected EOF");
    EXPECT("{{foo}}", "ERR:template: :1: function \"foo\" not defined");
    EXPECT("{{}}", "ERR:template: :1: missing value for command");
    EXPECT("{{range}}{{end}}", "ERR:template: :1: missing value for range");
    EXPECT("{{if}}{{end}}", "ERR:template: :1: missing value for if");
    EXPECT("{{\"abc}}", "ERR:template: :1: unterminated quoted string");
    EXPECT("{{`abc}}", "ERR:template: :1: unterminated raw quoted string");
    EXPECT("{{'a}}", "ERR:template: :1: unterminated character constant");
    EXPECT("{{.Id}", "ERR:template: :1: bad character U+007D '}'");
    EXPECT("{{.Id ; }}", "ERR:template: :1: bad character U+003B ';'");
    EXPECT("{{(.Id}}", "ERR:template: :1: unclosed left paren");
    EXPECT("{{.Id)}}", "ERR:template: :1: unexpected \")\" in command");
    EXPECT("{{.Os | 1}}", "ERR:template: :1: non executable command in pipeline stage 2");
    EXPECT("{{break}}", "ERR:template: :1: {{break}} outside {{range}}");
    EXPECT("{{if 1}}{{else}}{{else}}{{end}}", "ERR:template: :1: expected end; found {{else}}");
    EXPECT("{{/* open", "ERR:template: :1: unclosed comment");
    EXPECT("a\nb\n{{.Id", "ERR:template: :3: unclosed action");
    EXPECT("line1\n{{end}}", "ERR:template: :2: unexpected {{end}}");
    EXPECT("{{1x}}", "ERR:template: :1: illegal number syntax: \"1x\"");
    EXPECT("{{\"a\".X}}", "ERR:template: :1: unexpected . after term \"a\"");
    EXPECT("{{define \"x\"}}{{end}}", "ERR:template: :1: {{define}} is not supported");
    EXPECT("{{$x : 1}}", "ERR:template: :1: expected :=");
}

static void test_exec_errors(void **st)
{
    EXPECT("{{index .Tags 5}}", "ERR:template: :1:2: executing \"\" at <index .Tags 5>: error "
                                "calling index: index out of range: 5");
    EXPECT("{{index .Nil 1}}", "ERR:template: :1:2: executing \"\" at <index .Nil 1>: error "
                               "calling index: index of untyped nil");
    EXPECT("{{json}}", "ERR:template: :1:2: executing \"\" at <json>: wrong number of args for "
                       "json: want 1 got 0");
    EXPECT("{{pad .Os 1}}", "ERR:template: :1:2: executing \"\" at <pad .Os 1>: wrong number of "
                            "args for pad: want 3 got 2");
    EXPECT("{{printf}}", "ERR:template: :1:2: executing \"\" at <printf>: wrong number of args "
                         "for printf: want at least 1 got 0");
    EXPECT("{{len .Size}}", "ERR:template: :1:2: executing \"\" at <len .Size>: error calling "
                            "len: len of int");
    EXPECT("{{.Os 1}}", "ERR:template: :1:2: executing \"\" at <.Os>: can't give argument to "
                        "non-function .Os");
    EXPECT("{{slice .Os 3 9}}", "ERR:template: :1:2: executing \"\" at <slice .Os 3 9>: error "
                                "calling slice: index out of range: 9");
    EXPECT("ab\n  {{.Os.X}}", "ERR:template: :2:7: executing \"\" at <.Os.X>: can't evaluate "
                              "field X in type interface {}");
}

static void test_partial_output_and_reuse(void **st)
{
    char *err = NULL;
    tmpl *t = tmpl_parse("{{range .}}{{.A}}{{end}}", &err);
    assert_non_null(t);
    json_error_t je;
    json_t *d1 = json_loads("[{\"A\":1},{\"A\":2}]", 0, &je);
    json_t *d2 = json_loads("[{\"A\":\"x\"},5]", 0, &je);
    sbuf out = {0};
    assert_int_equal(tmpl_exec(t, d1, NULL, &out, &err), 0);
    assert_string_equal(out.data, "12");
    sbuf_free(&out);
    assert_int_equal(tmpl_exec(t, d2, NULL, &out, &err), -1);
    assert_string_equal(out.data, "x");
    assert_string_equal(err, "template: :1:13: executing \"\" at <.A>: can't evaluate field A "
                             "in type interface {}");
    free(err);
    sbuf_free(&out);
    json_decref(d1);
    json_decref(d2);
    tmpl_free(t);
}

static void test_named_template(void **st)
{
    char *err = NULL;
    assert_null(tmpl_parse_named("version", "{{.X", &err));
    assert_string_equal(err, "template: version:1: unclosed action");
    free(err);
    tmpl *t = tmpl_parse_named("version", "{{index .X 3}}", &err);
    json_t *d = json_pack("{s:[]}", "X");
    sbuf out = {0};
    assert_int_equal(tmpl_exec(t, d, NULL, &out, &err), -1);
    assert_string_equal(err, "template: version:1:2: executing \"version\" at <index .X 3>: "
                             "error calling index: index out of range: 3");
    free(err);
    sbuf_free(&out);
    json_decref(d);
    tmpl_free(t);
}

static void test_print_value_api(void **st)
{
    json_t *v = json_pack("{s:[i,s,n], s:{s:b}, s:f}", "a", 1, "x", "m", "k", 1, "f", 2.5);
    sbuf b = {0};
    tmpl_print_value(&b, v);
    assert_string_equal(b.data, "map[a:[1 x <nil>] f:2.5 m:map[k:true]]");
    sbuf_free(&b);
    tmpl_json(&b, v);
    assert_string_equal(b.data, "{\"a\":[1,\"x\",null],\"m\":{\"k\":true},\"f\":2.5}");
    sbuf_free(&b);
    json_decref(v);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_text_and_fields),
        cmocka_unit_test(test_dot_and_root),
        cmocka_unit_test(test_json),
        cmocka_unit_test(test_json_self),
        cmocka_unit_test(test_range),
        cmocka_unit_test(test_if_with),
        cmocka_unit_test(test_variables),
        cmocka_unit_test(test_pipelines),
        cmocka_unit_test(test_literals),
        cmocka_unit_test(test_whitespace_and_comments),
        cmocka_unit_test(test_builtin_functions),
        cmocka_unit_test(test_printf),
        cmocka_unit_test(test_comparisons),
        cmocka_unit_test(test_docker_functions),
        cmocka_unit_test(test_header_mode),
        cmocka_unit_test(test_struct_and_missingkey),
        cmocka_unit_test(test_hints),
        cmocka_unit_test(test_parse_errors),
        cmocka_unit_test(test_exec_errors),
        cmocka_unit_test(test_partial_output_and_reuse),
        cmocka_unit_test(test_named_template),
        cmocka_unit_test(test_print_value_api),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
