/* template_exec.c: evaluation of a parsed template against a jansson value.
 *
 * Walks the node tree built by template_parse.c: field and variable
 * lookups, pipelines, if/range/with, and the builtin functions (Go's and
 * docker's), printing results via template_print.c. Error messages follow
 * Go's wording. Owns tmpl_exec and tmpl_render. */
#include "template_internal.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* ------------------------------------------------------------------ */
/* evaluation                                                          */
/* ------------------------------------------------------------------ */

/* A value during evaluation: j is an owned reference or NULL for Go's
 * invalid value ("<no value>"); hint is the borrowed type hint; sname is
 * the struct type name when j stands for a Go struct with strict fields. */
typedef struct val {
    json_t *j;
    const json_t *hint;
    const char *sname;
} val;

typedef struct var {
    char *name;
    val v;
} var;

typedef struct state {
    const tmpl *t;
    const tmpl_opts *o;
    sbuf *out;
    var *vars;
    size_t nvars;
    char *err;
    int ctl; /* 1 break, 2 continue */
    int depth;
    const json_t *root;
} state;

static val mkval(json_t *owned)
{
    return (val){owned, NULL, NULL};
}
static val vcopy(val v)
{
    json_incref(v.j);
    return v;
}
static void vfree(val *v)
{
    json_decref(v->j);
    v->j = NULL;
}

static void node_string(sbuf *b, const node *n);
static void pipe_string(sbuf *b, const pipe_t *p)
{
    for (size_t i = 0; i < p->ndecl; i++) {
        if (i) sbuf_adds(b, ", ");
        sbuf_adds(b, p->decl[i]);
    }
    if (p->ndecl) sbuf_adds(b, p->assign ? " = " : " := ");
    for (size_t i = 0; i < p->ncmds; i++) {
        if (i) sbuf_adds(b, " | ");
        for (size_t j = 0; j < p->cmds[i]->nargs; j++) {
            if (j) sbuf_adds(b, " ");
            node_string(b, p->cmds[i]->args[j]);
        }
    }
}

/* Go's String() of a node, used in "executing ... at <...>". */
static void node_string(sbuf *b, const node *n)
{
    switch (n->type) {
    case N_FIELD:
        for (size_t i = 0; i < n->nfields; i++) sbuf_printf(b, ".%s", n->fields[i]);
        break;
    case N_VAR:
        sbuf_adds(b, n->text);
        for (size_t i = 0; i < n->nfields; i++) sbuf_printf(b, ".%s", n->fields[i]);
        break;
    case N_CHAIN:
        node_string(b, n->inner);
        for (size_t i = 0; i < n->nfields; i++) sbuf_printf(b, ".%s", n->fields[i]);
        break;
    case N_DOT:
        sbuf_adds(b, ".");
        break;
    case N_NIL:
        sbuf_adds(b, "nil");
        break;
    case N_BOOL:
        sbuf_adds(b, n->bval ? "true" : "false");
        break;
    case N_STRING:
        json_string_enc(b, n->text, n->textlen);
        break;
    case N_NUMBER:
    case N_IDENT:
        sbuf_adds(b, n->text);
        break;
    case N_PIPE:
        sbuf_adds(b, "(");
        pipe_string(b, n->pipe);
        sbuf_adds(b, ")");
        break;
    default:
        break;
    }
}

static int vxerr(state *s, int pos, const char *at, const char *fmt, va_list ap)
{
    if (s->err) return -1;
    char msg[1024];
    vsnprintf(msg, sizeof msg, fmt, ap);
    const char *src = s->t->src;
    int line = 1, col = pos;
    for (int i = 0; i < pos && src[i]; i++)
        if (src[i] == '\n') line++, col = pos - i - 1;
    s->err = xasprintf("template: %s:%d:%d: executing \"%s\" at <%s>: %s", s->t->name, line, col,
                       s->t->name, at, msg);
    return -1;
}

/* Sets the Go-style execution error located at node n. */
static int xerr(state *s, const node *n, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int xerr(state *s, const node *n, const char *fmt, ...)
{
    sbuf at = {0};
    node_string(&at, n);
    va_list ap;
    va_start(ap, fmt);
    int rc = vxerr(s, n->pos, at.data ? at.data : "", fmt, ap);
    va_end(ap);
    sbuf_free(&at);
    return rc;
}

/* The same, located at a whole command (as Go reports call errors). */
static int xerr_cmd(state *s, const cmd_t *c, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int xerr_cmd(state *s, const cmd_t *c, const char *fmt, ...)
{
    sbuf at = {0};
    for (size_t j = 0; j < c->nargs; j++) {
        if (j) sbuf_adds(&at, " ");
        node_string(&at, c->args[j]);
    }
    va_list ap;
    va_start(ap, fmt);
    int rc = vxerr(s, c->pos, at.data ? at.data : "", fmt, ap);
    va_end(ap);
    sbuf_free(&at);
    return rc;
}

static const char *type_name(const json_t *j)
{
    if (!j) return "<nil>";
    switch (json_typeof(j)) {
    case JSON_STRING:
        return "string";
    case JSON_INTEGER:
        return "int";
    case JSON_REAL:
        return "float64";
    case JSON_TRUE:
    case JSON_FALSE:
        return "bool";
    case JSON_ARRAY:
        return "[]interface {}";
    case JSON_OBJECT:
        return "map[string]interface {}";
    default:
        return "<nil>";
    }
}

/* Go's truth: false, 0, "", empty array/map, nil and no value are false. */
static bool truth(const json_t *j)
{
    if (!j) return false;
    switch (json_typeof(j)) {
    case JSON_STRING:
        return json_string_length(j) > 0;
    case JSON_INTEGER:
        return json_integer_value(j) != 0;
    case JSON_REAL:
        return json_real_value(j) != 0;
    case JSON_TRUE:
        return true;
    case JSON_ARRAY:
        return json_array_size(j) > 0;
    case JSON_OBJECT:
        return json_object_size(j) > 0;
    default:
        return false;
    }
}

/* Looks up one field on a value; the result replaces *v. */
static int field_step(state *s, const node *n, val *v, const char *name)
{
    if (v->j && json_is_object(v->j)) {
        json_t *x = json_object_get(v->j, name);
        if (!x) { /* Go field names differ from JSON keys in case only
                     (APIVersion / ApiVersion, ID / Id) */
            const char *k;
            json_t *y;
            json_object_foreach(v->j, k, y) if (!strcasecmp(k, name)) x = y;
        }
        if (!x && v->sname) return xerr(s, n, "can't evaluate field %s in type %s", name, v->sname);
        /* A member the type hints know is a typed struct field that the
         * daemon omitted (omitempty): its zero value, not an error. */
        if (!x && s->o->missingkey_error && !hint_field(v->hint, name))
            return xerr(s, n, "map has no entry for key \"%s\"", name);
        val r = {x                           ? json_incref(x)
                 : hint_field(v->hint, name) ? json_null()
                                             : NULL,
                 hint_field(v->hint, name), NULL};
        vfree(v);
        *v = r;
        return 0;
    }
    if (!v->j || json_is_null(v->j))
        return xerr(s, n, "nil pointer evaluating interface {}.%s", name);
    return xerr(s, n, "can't evaluate field %s in type %s", name,
                v->sname ? v->sname : "interface {}");
}

static int field_chain(state *s, const node *n, val *v, char **fields, size_t nfields)
{
    for (size_t i = 0; i < nfields; i++)
        if (field_step(s, n, v, fields[i]) < 0) return -1;
    return 0;
}

static val *var_lookup(state *s, const char *name)
{
    for (size_t i = s->nvars; i-- > 0;)
        if (!strcmp(s->vars[i].name, name)) return &s->vars[i].v;
    return NULL;
}
static void var_push_val(state *s, const char *name, val v)
{
    s->vars = xrealloc(s->vars, (s->nvars + 1) * sizeof *s->vars);
    s->vars[s->nvars].name = xstrdup(name);
    s->vars[s->nvars++].v = vcopy(v);
}
static void vars_pop_to(state *s, size_t to)
{
    while (s->nvars > to) {
        s->nvars--;
        free(s->vars[s->nvars].name);
        vfree(&s->vars[s->nvars].v);
    }
}

static int eval_pipeline(state *s, val dot, const pipe_t *p, val *out);
static int eval_command(state *s, val dot, const cmd_t *c, val *final, bool has_final, val *out);

static int eval_arg_inner(state *s, val dot, const node *n, val *out);

/* Evaluates an argument node to a value (functions called with no args);
 * on error *out holds nothing. */
static int eval_arg(state *s, val dot, const node *n, val *out)
{
    int rc = eval_arg_inner(s, dot, n, out);
    if (rc < 0) vfree(out);
    return rc;
}

static int eval_arg_inner(state *s, val dot, const node *n, val *out)
{
    *out = mkval(NULL);
    switch (n->type) {
    case N_DOT:
        *out = vcopy(dot);
        return 0;
    case N_NIL:
        *out = mkval(json_null());
        return 0;
    case N_BOOL:
        *out = mkval(json_boolean(n->bval));
        return 0;
    case N_NUMBER:
        *out = mkval(json_copy(n->num));
        return 0;
    case N_STRING:
        *out = mkval(json_stringn_nocheck(n->text, n->textlen));
        return 0;
    case N_FIELD:
        *out = vcopy(dot);
        return field_chain(s, n, out, n->fields, n->nfields);
    case N_VAR: {
        val *v = var_lookup(s, n->text);
        if (!v) return xerr(s, n, "undefined variable: %s", n->text);
        *out = vcopy(*v);
        return field_chain(s, n, out, n->fields, n->nfields);
    }
    case N_PIPE:
        return eval_pipeline(s, dot, n->pipe, out);
    case N_CHAIN:
        if (eval_arg(s, dot, n->inner, out) < 0) return -1;
        return field_chain(s, n, out, n->fields, n->nfields);
    case N_IDENT: {
        cmd_t c = {.pos = n->pos, .args = (node **)&n, .nargs = 1};
        return eval_command(s, dot, &c, NULL, false, out);
    }
    default:
        return xerr(s, n, "can't handle argument");
    }
}

/* ---- builtin functions ---- */

typedef struct fctx {
    state *s;
    const cmd_t *cmd;  /* the whole call, for error locations */
    const node *fn;    /* the identifier node */
    const node **argn; /* node of each arg (NULL for a piped final value) */
    val *args;
    size_t nargs;
} fctx;

static const node *arg_node(fctx *f, size_t i)
{
    return f->argn[i] ? f->argn[i] : f->fn;
}

static int want_string(fctx *f, size_t i, const char **out)
{
    json_t *j = f->args[i].j;
    if (j && json_is_string(j)) {
        *out = json_string_value(j);
        return 0;
    }
    return xerr(f->s, arg_node(f, i), "wrong type for value; expected string; got %s",
                type_name(j));
}

static int want_int(fctx *f, size_t i, long long *out)
{
    json_t *j = f->args[i].j;
    if (j && json_is_integer(j)) {
        *out = json_integer_value(j);
        return 0;
    }
    if (j && json_is_real(j) && json_real_value(j) == (double)(long long)json_real_value(j)) {
        *out = (long long)json_real_value(j);
        return 0;
    }
    return xerr(f->s, arg_node(f, i), "wrong type for value; expected int; got %s", type_name(j));
}

/* fmt.Sprint semantics: a space between operands when neither is a string. */
static void go_sprint(sbuf *b, val *args, size_t n, bool ln)
{
    for (size_t i = 0; i < n; i++) {
        bool is_str = args[i].j && json_is_string(args[i].j);
        bool prev_str = i > 0 && args[i - 1].j && json_is_string(args[i - 1].j);
        if (i > 0 && (ln || (!is_str && !prev_str))) sbuf_adds(b, " ");
        if (!args[i].j)
            sbuf_adds(b, "<nil>");
        else
            print_nested(b, args[i].j, args[i].hint);
    }
    if (ln) sbuf_adds(b, "\n");
}

static void pad_out(sbuf *b, const char *s, size_t len, int width, bool minus, bool zero)
{
    size_t w = 0;
    for (size_t i = 0; i < len; i++)
        if (((unsigned char)s[i] & 0xC0) != 0x80) w++;
    if (!minus)
        for (size_t i = w; (int)i < width; i++) sbuf_adds(b, zero ? "0" : " ");
    sbuf_add(b, s, len);
    if (minus)
        for (size_t i = w; (int)i < width; i++) sbuf_adds(b, " ");
}

static void quote_go(sbuf *b, const char *s, size_t n)
{
    json_string_enc(b, s, n);
}

/* One printf verb applied to one value. */
static void printf_one(sbuf *b, char verb, const char *flags, int width, int prec, val *a)
{
    sbuf t = {0};
    json_t *j = a->j;
    bool minus = strchr(flags, '-'), zero = strchr(flags, '0'), plus = strchr(flags, '+');
    bool isint = j && json_is_integer(j), isnum = j && json_is_number(j);
    bool isstr = j && json_is_string(j);
    switch (verb) {
    case 'v':
        go_sprint(&t, a, 1, false);
        break;
    case 's':
        if (isstr || (j && (json_is_array(j) || json_is_object(j))))
            go_sprint(&t, a, 1, false);
        else
            goto bad;
        if (prec >= 0 && t.len > (size_t)prec) t.len = (size_t)prec, t.data[prec] = 0;
        break;
    case 'q':
        if (!isstr) goto bad;
        quote_go(&t, json_string_value(j), json_string_length(j));
        break;
    case 'd':
        if (!isint) goto bad;
        sbuf_printf(&t, plus ? "%+lld" : "%lld", (long long)json_integer_value(j));
        break;
    case 'x':
    case 'X':
        if (isint) {
            long long v = json_integer_value(j);
            sbuf_printf(&t, verb == 'x' ? "%s%llx" : "%s%llX", v < 0 ? "-" : "",
                        (unsigned long long)(v < 0 ? -v : v));
        } else if (isstr) {
            const unsigned char *p = (const unsigned char *)json_string_value(j);
            for (size_t i = 0; i < json_string_length(j); i++)
                sbuf_printf(&t, verb == 'x' ? "%02x" : "%02X", p[i]);
        } else
            goto bad;
        break;
    case 'f':
    case 'F':
    case 'e':
    case 'g':
        if (!isnum || isint) goto bad;
        {
            char fmt[16];
            snprintf(fmt, sizeof fmt, "%%%s.*%c", plus ? "+" : "", verb == 'F' ? 'f' : verb);
            sbuf_printf(&t, fmt, prec >= 0 ? prec : 6, json_number_value(j));
        }
        break;
    case 't':
        if (!j || !json_is_boolean(j)) goto bad;
        sbuf_adds(&t, json_is_true(j) ? "true" : "false");
        break;
    default:
        goto bad;
    }
    pad_out(b, t.data ? t.data : "", t.len, width, minus, zero && verb != 's' && verb != 'v');
    sbuf_free(&t);
    return;
bad:
    sbuf_free(&t);
    sbuf_printf(b, "%%!%c(%s=", verb, j ? type_name(j) : "<nil>");
    go_sprint(b, a, 1, false);
    sbuf_adds(b, ")");
}

static void go_sprintf(sbuf *b, const char *fmt, val *args, size_t n)
{
    size_t ai = 0;
    for (const char *p = fmt; *p; p++) {
        if (*p != '%') {
            sbuf_add(b, p, 1);
            continue;
        }
        char flags[8] = {0};
        int nf = 0, width = -1, prec = -1;
        p++;
        while (*p && strchr("-+# 0", *p) && nf < 7) flags[nf++] = *p++;
        if (isdigit((unsigned char)*p)) width = (int)strtol(p, (char **)&p, 10);
        if (*p == '.') {
            p++;
            prec = isdigit((unsigned char)*p) ? (int)strtol(p, (char **)&p, 10) : 0;
        }
        if (!*p) {
            sbuf_adds(b, "%!(NOVERB)");
            break;
        }
        if (*p == '%') {
            sbuf_adds(b, "%");
            continue;
        }
        if (ai >= n) {
            sbuf_printf(b, "%%!%c(MISSING)", *p);
            continue;
        }
        printf_one(b, *p, flags, width, prec, &args[ai++]);
    }
    if (ai < n) {
        sbuf_adds(b, "%!(EXTRA ");
        for (size_t i = ai; i < n; i++) {
            if (i > ai) sbuf_adds(b, ", ");
            sbuf_printf(b, "%s=", type_name(args[i].j));
            go_sprint(b, &args[i], 1, false);
        }
        sbuf_adds(b, ")");
    }
}

static json_t *sbuf_json(sbuf *b)
{
    json_t *j = json_stringn_nocheck(b->data ? b->data : "", b->len);
    sbuf_free(b);
    return j;
}

/* Basic kind for comparisons: 1 bool, 2 int, 3 float, 4 string, 0 other. */
static int basic_kind(const json_t *j)
{
    if (!j) return 0;
    if (json_is_boolean(j)) return 1;
    if (json_is_integer(j)) return 2;
    if (json_is_real(j)) return 3;
    if (json_is_string(j)) return 4;
    return 0;
}

/* -2 error (message set), else <0, 0, >0. */
static int compare(fctx *f, const json_t *a, const json_t *b, bool ordered, size_t bi)
{
    int ka = basic_kind(a), kb = basic_kind(b);
    (void)bi;
    if (!ka || (ordered && ka == 1)) {
        xerr_cmd(f->s, f->cmd, "error calling %s: invalid type for comparison", f->fn->text);
        return -2;
    }
    if (ka != kb) {
        xerr_cmd(f->s, f->cmd, "error calling %s: incompatible types for comparison", f->fn->text);
        return -2;
    }
    switch (ka) {
    case 1:
        return json_is_true(a) == json_is_true(b) ? 0 : 1;
    case 2:
        return json_integer_value(a) < json_integer_value(b)   ? -1
               : json_integer_value(a) > json_integer_value(b) ? 1
                                                               : 0;
    case 3:
        return json_real_value(a) < json_real_value(b) ? -1
                                                       : json_real_value(a) > json_real_value(b);
    default:
        return strcmp(json_string_value(a), json_string_value(b));
    }
}

static bool is_zero(const json_t *j)
{
    return !j || json_is_null(j);
}

/* Go's eq: arg1 == any of the others; nil compares equal only to nil. */
static int fn_eq(fctx *f, val *out)
{
    bool any = false;
    const json_t *a = f->args[0].j;
    for (size_t i = 1; i < f->nargs && !any; i++) {
        const json_t *b = f->args[i].j;
        if (is_zero(a) || is_zero(b)) {
            any = is_zero(a) && is_zero(b);
            continue;
        }
        if (basic_kind(a) != basic_kind(b))
            return xerr_cmd(f->s, f->cmd, "error calling %s: incompatible types for comparison",
                            f->fn->text);
        if (!basic_kind(a))
            return xerr_cmd(f->s, f->cmd, "error calling %s: non-comparable type %s", f->fn->text,
                            type_name(a));
        any = compare(f, a, b, false, i) == 0;
    }
    if (f->nargs < 2)
        return xerr_cmd(f->s, f->cmd, "error calling eq: missing argument for comparison");
    bool ne = !strcmp(f->fn->text, "ne");
    *out = mkval(json_boolean(ne ? !any : any));
    return 0;
}

static int fn_cmp(fctx *f, val *out)
{
    int c = compare(f, f->args[0].j, f->args[1].j, true, 1);
    if (c == -2) return -1;
    const char *op = f->fn->text;
    bool r = !strcmp(op, "lt")   ? c < 0
             : !strcmp(op, "le") ? c <= 0
             : !strcmp(op, "gt") ? c > 0
                                 : c >= 0;
    *out = mkval(json_boolean(r));
    return 0;
}

static int fn_index(fctx *f, val *out)
{
    val cur = vcopy(f->args[0]);
    for (size_t i = 1; i < f->nargs; i++) {
        json_t *j = cur.j, *k = f->args[i].j;
        if ((!j || json_is_null(j)) && hint_nil(cur.hint) && k && json_is_string(k)) {
            val r = {hint_is(cur.hint, "mapstr") ? json_string("") : NULL, NULL, NULL};
            vfree(&cur);
            cur = r;
            continue;
        }
        if (!j || json_is_null(j)) {
            vfree(&cur);
            return xerr_cmd(f->s, f->cmd, "error calling index: index of untyped nil");
        }
        if (json_is_array(j) || json_is_string(j)) {
            long long idx;
            if (!k || !json_is_integer(k)) {
                vfree(&cur);
                return xerr_cmd(f->s, f->cmd,
                                "error calling index: cannot index slice/array with type %s",
                                type_name(k));
            }
            idx = json_integer_value(k);
            size_t len = json_is_array(j) ? json_array_size(j) : json_string_length(j);
            if (idx < 0 || (size_t)idx >= len) {
                vfree(&cur);
                return xerr_cmd(f->s, f->cmd, "error calling index: index out of range: %lld", idx);
            }
            val r = {json_is_array(j) ? json_incref(json_array_get(j, (size_t)idx))
                                      : json_integer((unsigned char)json_string_value(j)[idx]),
                     hint_elem(cur.hint), NULL};
            vfree(&cur);
            cur = r;
        } else if (json_is_object(j)) {
            if (!k || !json_is_string(k)) {
                vfree(&cur);
                return xerr_cmd(f->s, f->cmd,
                                "error calling index: value has type %s; should be string",
                                type_name(k));
            }
            json_t *x = json_object_get(j, json_string_value(k));
            if (!x && hint_is(cur.hint, "mapstr"))
                x = json_string("");
            else
                json_incref(x);
            val r = {x, NULL, NULL};
            vfree(&cur);
            cur = r;
        } else {
            const char *tn = type_name(j);
            vfree(&cur);
            return xerr_cmd(f->s, f->cmd, "error calling index: can't index item of type %s", tn);
        }
    }
    *out = cur;
    return 0;
}

static int fn_slice(fctx *f, val *out)
{
    json_t *j = f->args[0].j;
    size_t len = j && json_is_array(j)    ? json_array_size(j)
                 : j && json_is_string(j) ? json_string_length(j)
                                          : 0;
    if (!j || (!json_is_array(j) && !json_is_string(j)))
        return xerr_cmd(f->s, f->cmd, "error calling slice: can't slice item of type %s",
                        type_name(j));
    long long idx[2] = {0, (long long)len};
    for (size_t i = 1; i < f->nargs && i < 3; i++)
        if (want_int(f, i, &idx[i - 1]) < 0) return -1;
    if (f->nargs > 3)
        return xerr_cmd(f->s, f->cmd, "error calling slice: too many slice indexes: %zu",
                        f->nargs - 1);
    if (idx[0] < 0 || idx[1] > (long long)len || idx[0] > idx[1])
        return xerr_cmd(f->s, f->cmd, "error calling slice: index out of range: %lld",
                        idx[0] < 0 ? idx[0] : idx[1]);
    if (json_is_string(j)) {
        *out =
            mkval(json_stringn_nocheck(json_string_value(j) + idx[0], (size_t)(idx[1] - idx[0])));
    } else {
        json_t *a = json_array();
        for (long long i = idx[0]; i < idx[1]; i++)
            json_array_append(a, json_array_get(j, (size_t)i));
        *out = mkval(a);
    }
    return 0;
}

static int fn_len(fctx *f, val *out)
{
    json_t *j = f->args[0].j;
    if (j && json_is_string(j))
        *out = mkval(json_integer((json_int_t)json_string_length(j)));
    else if (j && json_is_array(j))
        *out = mkval(json_integer((json_int_t)json_array_size(j)));
    else if (j && json_is_object(j))
        *out = mkval(json_integer((json_int_t)json_object_size(j)));
    else if (j && json_is_null(j) && hint_nil(f->args[0].hint))
        *out = mkval(json_integer(0));
    else
        return xerr_cmd(f->s, f->cmd, "error calling len: len of %s",
                        j ? type_name(j) : "nil pointer");
    return 0;
}

static void escape_html(sbuf *b, const char *s)
{
    for (; *s; s++) {
        switch (*s) {
        case '"':
            sbuf_adds(b, "&#34;");
            break;
        case '\'':
            sbuf_adds(b, "&#39;");
            break;
        case '&':
            sbuf_adds(b, "&amp;");
            break;
        case '<':
            sbuf_adds(b, "&lt;");
            break;
        case '>':
            sbuf_adds(b, "&gt;");
            break;
        default:
            sbuf_add(b, s, 1);
        }
    }
}

static void escape_js(sbuf *b, const char *s)
{
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '\\' || c == '\'' || c == '"')
            sbuf_printf(b, "\\%c", c);
        else if (c == '<' || c == '>' || c == '&' || c == '=' || c < 0x20)
            sbuf_printf(b, "\\u%04X", c);
        else
            sbuf_add(b, s, 1);
    }
}

static void escape_url(sbuf *b, const char *s)
{
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~')
            sbuf_add(b, s, 1);
        else if (c == ' ')
            sbuf_adds(b, "+");
        else
            sbuf_printf(b, "%%%02X", c);
    }
}

static int fn_escape(fctx *f, val *out)
{
    sbuf in = {0}, b = {0};
    if (f->nargs == 1 && f->args[0].j && json_is_string(f->args[0].j))
        sbuf_adds(&in, json_string_value(f->args[0].j));
    else
        go_sprint(&in, f->args, f->nargs, false);
    const char *name = f->fn->text;
    const char *s = in.data ? in.data : "";
    if (!strcmp(name, "html"))
        escape_html(&b, s);
    else if (!strcmp(name, "js"))
        escape_js(&b, s);
    else
        escape_url(&b, s);
    sbuf_free(&in);
    *out = mkval(sbuf_json(&b));
    return 0;
}

static int fn_print(fctx *f, val *out)
{
    sbuf b = {0};
    const char *name = f->fn->text;
    if (!strcmp(name, "printf")) {
        const char *fmt;
        if (want_string(f, 0, &fmt) < 0) return -1;
        go_sprintf(&b, fmt, f->args + 1, f->nargs - 1);
    } else {
        go_sprint(&b, f->args, f->nargs, !strcmp(name, "println"));
    }
    *out = mkval(sbuf_json(&b));
    return 0;
}

static int fn_logic(fctx *f, val *out)
{
    const char *name = f->fn->text;
    if (!strcmp(name, "not")) {
        *out = mkval(json_boolean(!truth(f->args[0].j)));
        return 0;
    }
    bool is_and = !strcmp(name, "and");
    size_t i;
    for (i = 0; i + 1 < f->nargs; i++)
        if (truth(f->args[i].j) != is_and) break;
    *out = vcopy(f->args[i]);
    return 0;
}

static int fn_json(fctx *f, val *out)
{
    sbuf b = {0};
    if (f->s->o->json_self && f->args[0].j == f->s->root)
        tmpl_json(&b, f->s->o->json_self);
    else if (!f->args[0].j)
        sbuf_adds(&b, "null");
    else if (json_is_null(f->args[0].j) && json_is_object(f->args[0].hint))
        sbuf_adds(&b, "null");
    else
        tmpl_json(&b, f->args[0].j);
    *out = mkval(sbuf_json(&b));
    return 0;
}

static int fn_split(fctx *f, val *out)
{
    const char *s, *sep;
    if (want_string(f, 0, &s) < 0 || want_string(f, 1, &sep) < 0) return -1;
    json_t *a = json_array();
    size_t seplen = strlen(sep);
    if (!seplen) {
        for (const char *p = s; *p;) {
            size_t n = 1;
            while (((unsigned char)p[n] & 0xC0) == 0x80) n++;
            json_array_append_new(a, json_stringn_nocheck(p, n));
            p += n;
        }
    } else {
        const char *p = s, *q;
        while ((q = strstr(p, sep))) {
            json_array_append_new(a, json_stringn_nocheck(p, (size_t)(q - p)));
            p = q + seplen;
        }
        json_array_append_new(a, json_string_nocheck(p));
    }
    *out = mkval(a);
    return 0;
}

static int fn_join(fctx *f, val *out)
{
    const char *sep;
    json_t *a = f->args[0].j;
    if (!a || (!json_is_array(a) && !json_is_null(a)))
        return xerr(f->s, arg_node(f, 0), "wrong type for value; expected []string; got %s",
                    type_name(a));
    if (want_string(f, 1, &sep) < 0) return -1;
    sbuf b = {0};
    size_t i;
    json_t *x;
    json_array_foreach(a, i, x)
    {
        if (i) sbuf_adds(&b, sep);
        print_nested(&b, x, NULL);
    }
    *out = mkval(sbuf_json(&b));
    return 0;
}

static int fn_case(fctx *f, val *out)
{
    const char *s;
    if (want_string(f, 0, &s) < 0) return -1;
    char *r = xstrdup(s);
    const char *name = f->fn->text;
    bool prev_sep = true;
    for (char *p = r; *p; p++) {
        unsigned char c = (unsigned char)*p;
        if (!strcmp(name, "lower"))
            *p = (char)tolower(c);
        else if (!strcmp(name, "upper"))
            *p = (char)toupper(c);
        else {
            if (prev_sep) *p = (char)toupper(c);
            prev_sep = !(isalnum(c) || c == '_' || c >= 0x80);
        }
    }
    *out = mkval(json_string_nocheck(r));
    free(r);
    return 0;
}

static int fn_pad(fctx *f, val *out)
{
    const char *s;
    long long pre, suf;
    if (want_string(f, 0, &s) < 0 || want_int(f, 1, &pre) < 0 || want_int(f, 2, &suf) < 0)
        return -1;
    sbuf b = {0};
    if (*s) {
        for (long long i = 0; i < pre; i++) sbuf_adds(&b, " ");
        sbuf_adds(&b, s);
        for (long long i = 0; i < suf; i++) sbuf_adds(&b, " ");
    }
    *out = mkval(sbuf_json(&b));
    return 0;
}

static int fn_truncate(fctx *f, val *out)
{
    const char *s;
    long long n;
    if (want_string(f, 0, &s) < 0 || want_int(f, 1, &n) < 0) return -1;
    size_t len = strlen(s);
    *out = mkval(json_stringn_nocheck(s, n >= 0 && (size_t)n < len ? (size_t)n : len));
    return 0;
}

static int fn_call(fctx *f, val *out)
{
    (void)out;
    return xerr_cmd(f->s, f->cmd, "error calling call: non-function of type %s",
                    type_name(f->args[0].j));
}

typedef struct builtin {
    const char *name;
    int min, max; /* max -1: variadic */
    int (*fn)(fctx *, val *);
    bool header_identity; /* returns its first argument in header mode */
} builtin;

static const builtin builtins[] = {
    {"and", 1, -1, fn_logic, false},
    {"or", 1, -1, fn_logic, false},
    {"not", 1, 1, fn_logic, false},
    {"len", 1, 1, fn_len, false},
    {"index", 1, -1, fn_index, false},
    {"slice", 1, -1, fn_slice, false},
    {"print", 0, -1, fn_print, false},
    {"printf", 1, -1, fn_print, false},
    {"println", 0, -1, fn_print, false},
    {"eq", 1, -1, fn_eq, false},
    {"ne", 2, 2, fn_eq, false},
    {"lt", 2, 2, fn_cmp, false},
    {"le", 2, 2, fn_cmp, false},
    {"gt", 2, 2, fn_cmp, false},
    {"ge", 2, 2, fn_cmp, false},
    {"html", 0, -1, fn_escape, false},
    {"js", 0, -1, fn_escape, false},
    {"urlquery", 0, -1, fn_escape, false},
    {"call", 1, -1, fn_call, false},
    {"json", 1, 1, fn_json, true},
    {"split", 2, 2, fn_split, true},
    {"join", 2, 2, fn_join, true},
    {"title", 1, 1, fn_case, true},
    {"lower", 1, 1, fn_case, true},
    {"upper", 1, 1, fn_case, true},
    {"pad", 3, 3, fn_pad, false},
    {"truncate", 2, 2, fn_truncate, true},
};

static const builtin *find_builtin(const char *name)
{
    for (size_t i = 0; i < sizeof builtins / sizeof *builtins; i++)
        if (!strcmp(builtins[i].name, name)) return &builtins[i];
    return NULL;
}

static void free_args(val *args, size_t n)
{
    for (size_t i = 0; i < n; i++) vfree(&args[i]);
    free(args);
}

/* Collects the arguments of a function call (cmd args after the name,
 * then the piped-in final value). and/or short-circuit in Go, but their
 * operands here have no side effects, so evaluating all is equivalent
 * except for errors in skipped operands; we stop at the deciding one. */
static int call_function(state *s, val dot, const cmd_t *c, val *final, bool has_final, val *out)
{
    const node *fn = c->args[0];
    const builtin *b = find_builtin(fn->text);
    size_t n = c->nargs - 1 + (has_final ? 1 : 0);
    if (b->max >= 0 ? ((int)n < b->min || (int)n > b->max) : (int)n < b->min) {
        if (b->max == b->min || b->max < 0)
            return xerr_cmd(s, c, "wrong number of args for %s: want %s%d got %zu", fn->text,
                            b->max < 0 ? "at least " : "", b->min, n);
        return xerr_cmd(s, c, "wrong number of args for %s: want %d got %zu", fn->text, b->min, n);
    }
    fctx f = {s, c, fn, xcalloc(n + 1, sizeof(node *)), xcalloc(n + 1, sizeof(val)), 0};
    bool logic = !strcmp(fn->text, "and") || !strcmp(fn->text, "or");
    int rc = 0;
    for (size_t i = 1; i < c->nargs && rc == 0; i++) {
        f.argn[f.nargs] = c->args[i];
        rc = eval_arg(s, dot, c->args[i], &f.args[f.nargs]);
        f.nargs++;
        if (logic && rc == 0 && truth(f.args[f.nargs - 1].j) != !strcmp(fn->text, "and")) break;
    }
    if (rc == 0 && has_final && !(logic && f.nargs < c->nargs - 1)) {
        f.argn[f.nargs] = NULL;
        f.args[f.nargs++] = vcopy(*final);
    }
    if (rc == 0) {
        if (s->o->header && b->header_identity)
            *out = vcopy(f.args[0]);
        else
            rc = b->fn(&f, out);
    }
    free_args(f.args, f.nargs);
    free(f.argn);
    return rc;
}

static int eval_command(state *s, val dot, const cmd_t *c, val *final, bool has_final, val *out)
{
    const node *first = c->args[0];
    *out = mkval(NULL);
    if (first->type == N_IDENT) return call_function(s, dot, c, final, has_final, out);
    if (first->type == N_NIL) return xerr(s, first, "nil is not a command");
    if (c->nargs > 1 || has_final) {
        sbuf b = {0};
        node_string(&b, first);
        int rc = xerr(s, first, "can't give argument to non-function %s", b.data ? b.data : "");
        sbuf_free(&b);
        return rc;
    }
    return eval_arg(s, dot, first, out);
}

static int eval_pipeline(state *s, val dot, const pipe_t *p, val *out)
{
    val cur = mkval(NULL);
    for (size_t i = 0; i < p->ncmds; i++) {
        val next;
        int rc = eval_command(s, dot, p->cmds[i], &cur, i > 0, &next);
        vfree(&cur);
        if (rc < 0) return -1;
        cur = next;
    }
    for (size_t i = 0; i < p->ndecl; i++) {
        if (p->assign) {
            val *v = var_lookup(s, p->decl[i]);
            if (v) {
                vfree(v);
                *v = vcopy(cur);
            }
        } else {
            var_push_val(s, p->decl[i], cur);
        }
    }
    *out = cur;
    return 0;
}

static void print_top(state *s, const val *v)
{
    if (!v->j) {
        sbuf_adds(s->out, "<no value>");
    } else if (json_is_null(v->j)) {
        const char *nil = hint_nil(v->hint);
        bool ptr = hint_is(v->hint, "ptr") || json_is_object(v->hint);
        sbuf_adds(s->out, nil ? nil : ptr ? "<nil>" : "<no value>");
    } else {
        print_nested(s->out, v->j, v->hint);
    }
}

static int walk_list(state *s, val dot, const node *list);

static int walk_if_with(state *s, val dot, const node *n)
{
    size_t mark = s->nvars;
    val v;
    if (eval_pipeline(s, dot, n->pipe, &v) < 0) return -1;
    int rc = 0;
    if (truth(v.j))
        rc = walk_list(s, n->type == N_WITH ? v : dot, n->items[0]);
    else if (n->nitems > 1)
        rc = walk_list(s, dot, n->items[1]);
    vfree(&v);
    vars_pop_to(s, mark);
    return rc;
}

/* One iteration of range: sets the declared variables and walks the body. */
static int range_iter(state *s, const node *n, val key, val elem)
{
    size_t mark = s->nvars;
    const pipe_t *p = n->pipe;
    if (p->ndecl == 1) var_push_val(s, p->decl[0], elem);
    if (p->ndecl == 2) var_push_val(s, p->decl[0], key), var_push_val(s, p->decl[1], elem);
    int rc = walk_list(s, elem, n->items[0]);
    vars_pop_to(s, mark);
    return rc;
}

static int walk_range(state *s, val dot, const node *n)
{
    size_t mark = s->nvars;
    val v;
    if (eval_pipeline(s, dot, n->pipe, &v) < 0) return -1;
    vars_pop_to(s, mark);
    int rc = 0;
    size_t count = 0;
    if (v.j && json_is_array(v.j)) {
        count = json_array_size(v.j);
        for (size_t i = 0; i < count && rc == 0 && s->ctl != 1; i++) {
            s->ctl = 0;
            val k = mkval(json_integer((json_int_t)i));
            val e = {json_array_get(v.j, i), hint_elem(v.hint), NULL};
            rc = range_iter(s, n, k, e);
            vfree(&k);
        }
    } else if (v.j && json_is_object(v.j)) {
        const char **keys = sorted_keys(v.j, &count);
        for (size_t i = 0; i < count && rc == 0 && s->ctl != 1; i++) {
            s->ctl = 0;
            val k = mkval(json_string(keys[i]));
            val e = {json_object_get(v.j, keys[i]), NULL, NULL};
            rc = range_iter(s, n, k, e);
            vfree(&k);
        }
        free(keys);
    } else if (v.j && !json_is_null(v.j)) {
        sbuf b = {0};
        print_nested(&b, v.j, NULL);
        rc = xerr(s, n->pipe->cmds[n->pipe->ncmds - 1]->args[0], "range can't iterate over %s",
                  b.data ? b.data : "");
        sbuf_free(&b);
    }
    s->ctl = 0;
    if (rc == 0 && count == 0 && n->nitems > 1) rc = walk_list(s, dot, n->items[1]);
    vfree(&v);
    return rc;
}

static int walk_node(state *s, val dot, const node *n)
{
    switch (n->type) {
    case N_TEXT:
        sbuf_add(s->out, n->text, n->textlen);
        return 0;
    case N_ACTION: {
        val v;
        if (eval_pipeline(s, dot, n->pipe, &v) < 0) return -1;
        if (n->pipe->ndecl == 0) print_top(s, &v);
        vfree(&v);
        return 0;
    }
    case N_IF:
    case N_WITH:
        return walk_if_with(s, dot, n);
    case N_RANGE:
        return walk_range(s, dot, n);
    case N_BREAK:
        s->ctl = 1;
        return 0;
    case N_CONTINUE:
        s->ctl = 2;
        return 0;
    case N_LIST:
        return walk_list(s, dot, n);
    default:
        return 0;
    }
}

static int walk_list(state *s, val dot, const node *list)
{
    if (++s->depth > 10000) return xerr(s, list, "exceeded maximum template depth (100000)");
    for (size_t i = 0; i < list->nitems && !s->ctl; i++)
        if (walk_node(s, dot, list->items[i]) < 0) return -1;
    s->depth--;
    return 0;
}

int tmpl_exec(const tmpl *t, const json_t *data, const tmpl_opts *opts, sbuf *out, char **err)
{
    static const tmpl_opts defaults = {0};
    state s = {.t = t, .o = opts ? opts : &defaults, .out = out};
    val root = {(json_t *)data, s.o->hints, s.o->struct_name};
    if (!root.j) root.j = json_null();
    s.root = root.j;
    var_push_val(&s, "$", root);
    sbuf_add(out, "", 0);
    int rc = walk_list(&s, root, t->root);
    vars_pop_to(&s, 0);
    free(s.vars);
    if (rc < 0) {
        if (err)
            *err = s.err;
        else
            free(s.err);
        return -1;
    }
    return 0;
}

char *tmpl_render(const char *src, const json_t *data, const tmpl_opts *opts, char **err)
{
    tmpl *t = tmpl_parse(src, err);
    if (!t) return NULL;
    sbuf b = {0};
    int rc = tmpl_exec(t, data, opts, &b, err);
    tmpl_free(t);
    if (rc < 0) {
        sbuf_free(&b);
        return NULL;
    }
    return sbuf_steal(&b);
}
