/* template.c: the Go text/template subset behind every --format flag.
 *
 * Three stages: a lexer turns the source into tokens (text, delimiters and
 * the words inside actions), a recursive-descent parser builds a node tree
 * as Go's text/template/parse does, and an evaluator walks the tree against
 * a jansson value, printing values the way Go's fmt does. Error messages
 * follow Go's wording so that users see what docker would show them.
 * Depends only on jansson and common/util; see template.h for the API. */
#include "template.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* ------------------------------------------------------------------ */
/* lexer                                                               */
/* ------------------------------------------------------------------ */

enum tok_type {
    T_EOF,
    T_TEXT,
    T_LEFT,
    T_RIGHT,
    T_SPACE,
    T_PIPE,
    T_LPAREN,
    T_RPAREN,
    T_DECLARE,
    T_ASSIGN,
    T_COMMA,
    T_STRING,
    T_RAWSTRING,
    T_CHAR,
    T_NUMBER,
    T_BOOL,
    T_NIL,
    T_DOT,
    T_FIELD,
    T_VARIABLE,
    T_IDENT,
    T_IF,
    T_ELSE,
    T_END,
    T_RANGE,
    T_WITH,
    T_DEFINE,
    T_TEMPLATE,
    T_BLOCK,
    T_BREAK,
    T_CONTINUE
};

typedef struct token {
    int type;
    int pos;   /* byte offset in the source */
    char *val; /* NUL-terminated copy of the token text */
    size_t len;
} token;

typedef struct lexer {
    const char *name;
    const char *src;
    size_t len, pos;
    int parens;
    token *toks;
    size_t ntoks, cap;
    char *err;
} lexer;

static void lex_emit(lexer *l, int type, size_t start, size_t end)
{
    if (l->ntoks == l->cap) {
        l->cap = l->cap ? l->cap * 2 : 32;
        l->toks = xrealloc(l->toks, l->cap * sizeof *l->toks);
    }
    token *t = &l->toks[l->ntoks++];
    t->type = type;
    t->pos = (int)start;
    t->val = xstrndup(l->src + start, end - start);
    t->len = end - start;
}

/* Line number (1-based) of byte offset pos, as Go reports parse errors. */
static int line_of(const char *src, int pos)
{
    int line = 1;
    for (int i = 0; i < pos && src[i]; i++)
        if (src[i] == '\n') line++;
    return line;
}

static int lex_fail(lexer *l, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int lex_fail(lexer *l, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (!l->err)
        l->err = xasprintf("template: %s:%d: %s", l->name, line_of(l->src, (int)l->pos), msg);
    return -1;
}

static bool is_space_ch(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}
static bool is_alnum_ch(char c)
{
    return c == '_' || isalnum((unsigned char)c) || (unsigned char)c >= 0x80;
}

static bool at_right_trim(const lexer *l, size_t p)
{
    return p + 3 <= l->len && !strncmp(l->src + p, "-}}", 3);
}

static const struct {
    const char *word;
    int type;
} keywords[] = {
    {"if", T_IF},       {"else", T_ELSE},         {"end", T_END},           {"range", T_RANGE},
    {"with", T_WITH},   {"define", T_DEFINE},     {"template", T_TEMPLATE}, {"block", T_BLOCK},
    {"break", T_BREAK}, {"continue", T_CONTINUE}, {"true", T_BOOL},         {"false", T_BOOL},
    {"nil", T_NIL},
};

static int lex_char_fmt(char c, char *buf, size_t n)
{
    if (isprint((unsigned char)c)) return snprintf(buf, n, "U+%04X '%c'", (unsigned char)c, c);
    return snprintf(buf, n, "U+%04X", (unsigned char)c);
}

/* After a word, Go requires a terminator; anything else is a bad character. */
static int lex_check_term(lexer *l)
{
    char c = l->pos < l->len ? l->src[l->pos] : 0;
    if (!c || is_space_ch(c) || strchr(".,|:()", c) || !strncmp(l->src + l->pos, "}}", 2)) return 0;
    char b[32];
    lex_char_fmt(c, b, sizeof b);
    return lex_fail(l, "bad character %s", b);
}

static int lex_word(lexer *l)
{
    size_t s = l->pos;
    while (l->pos < l->len && is_alnum_ch(l->src[l->pos])) l->pos++;
    int type = T_IDENT;
    for (size_t i = 0; i < sizeof keywords / sizeof *keywords; i++)
        if (strlen(keywords[i].word) == l->pos - s &&
            !strncmp(l->src + s, keywords[i].word, l->pos - s))
            type = keywords[i].type;
    lex_emit(l, type, s, l->pos);
    return lex_check_term(l);
}

static int lex_quote(lexer *l, char q)
{
    size_t s = l->pos++;
    for (;;) {
        if (l->pos >= l->len || (q != '`' && l->src[l->pos] == '\n')) {
            if (q == '"') return lex_fail(l, "unterminated quoted string");
            if (q == '`') return lex_fail(l, "unterminated raw quoted string");
            return lex_fail(l, "unterminated character constant");
        }
        char c = l->src[l->pos++];
        if (c == '\\' && q != '`' && l->pos < l->len)
            l->pos++;
        else if (c == q)
            break;
    }
    lex_emit(l, q == '"' ? T_STRING : q == '`' ? T_RAWSTRING : T_CHAR, s, l->pos);
    return 0;
}

static int lex_number(lexer *l)
{
    size_t s = l->pos;
    if (l->src[l->pos] == '+' || l->src[l->pos] == '-') l->pos++;
    while (
        l->pos < l->len &&
        (isalnum((unsigned char)l->src[l->pos]) || l->src[l->pos] == '.' || l->src[l->pos] == '_' ||
         ((l->src[l->pos] == '+' || l->src[l->pos] == '-') && strchr("eEpP", l->src[l->pos - 1]))))
        l->pos++;
    lex_emit(l, T_NUMBER, s, l->pos);
    return lex_check_term(l);
}

/* '.' starts a field (.Name), a number (.5) or is dot itself. */
static int lex_dot(lexer *l)
{
    size_t s = l->pos;
    char n = l->pos + 1 < l->len ? l->src[l->pos + 1] : 0;
    if (isdigit((unsigned char)n)) return lex_number(l);
    l->pos++;
    if (is_alnum_ch(n)) {
        while (l->pos < l->len && is_alnum_ch(l->src[l->pos])) l->pos++;
        lex_emit(l, T_FIELD, s, l->pos);
        return lex_check_term(l);
    }
    lex_emit(l, T_DOT, s, l->pos);
    return 0;
}

static int lex_variable(lexer *l)
{
    size_t s = l->pos++;
    while (l->pos < l->len && is_alnum_ch(l->src[l->pos])) l->pos++;
    lex_emit(l, T_VARIABLE, s, l->pos);
    return lex_check_term(l);
}

static int lex_punct(lexer *l, char c)
{
    size_t s = l->pos++;
    switch (c) {
    case '|':
        lex_emit(l, T_PIPE, s, l->pos);
        return 0;
    case ',':
        lex_emit(l, T_COMMA, s, l->pos);
        return 0;
    case '=':
        lex_emit(l, T_ASSIGN, s, l->pos);
        return 0;
    case '(':
        l->parens++;
        lex_emit(l, T_LPAREN, s, l->pos);
        return 0;
    case ')':
        l->parens--;
        lex_emit(l, T_RPAREN, s, l->pos);
        return 0;
    case ':':
        if (l->pos < l->len && l->src[l->pos] == '=') {
            l->pos++;
            lex_emit(l, T_DECLARE, s, l->pos);
            return 0;
        }
        return lex_fail(l, "expected :=");
    default:
        break;
    }
    l->pos = s;
    char b[32];
    lex_char_fmt(c, b, sizeof b);
    return lex_fail(l, "bad character %s", b);
}

/* Lexes inside {{ }} until the right delimiter; *trim is set for " -}}". */
static int lex_action(lexer *l, bool *trim)
{
    for (;;) {
        if (l->pos >= l->len) return lex_fail(l, "unclosed action");
        char c = l->src[l->pos];
        if (!strncmp(l->src + l->pos, "}}", 2)) {
            if (l->parens > 0) return lex_fail(l, "unclosed left paren");
            lex_emit(l, T_RIGHT, l->pos, l->pos + 2);
            l->pos += 2;
            *trim = false;
            return 0;
        }
        int rc;
        if (is_space_ch(c)) {
            size_t s = l->pos;
            while (l->pos < l->len && is_space_ch(l->src[l->pos])) l->pos++;
            if (at_right_trim(l, l->pos)) {
                if (l->parens > 0) return lex_fail(l, "unclosed left paren");
                lex_emit(l, T_RIGHT, l->pos, l->pos + 3);
                l->pos += 3;
                *trim = true;
                return 0;
            }
            lex_emit(l, T_SPACE, s, l->pos);
            rc = 0;
        } else if (c == '"' || c == '`' || c == '\'') {
            rc = lex_quote(l, c);
        } else if (c == '$') {
            rc = lex_variable(l);
        } else if (c == '.') {
            rc = lex_dot(l);
        } else if (isdigit((unsigned char)c) || c == '+' || c == '-') {
            rc = lex_number(l);
        } else if (is_alnum_ch(c)) {
            rc = lex_word(l);
        } else {
            rc = lex_punct(l, c);
        }
        if (rc < 0) return rc;
    }
}

/* Skips a comment action (slash-star ... star-slash), honouring trim markers. */
static int lex_comment(lexer *l, bool *trim)
{
    const char *end = strstr(l->src + l->pos + 2, "*/");
    if (!end) return lex_fail(l, "unclosed comment");
    l->pos = (size_t)(end - l->src) + 2;
    *trim = false;
    if (!strncmp(l->src + l->pos, " -}}", 4)) {
        *trim = true;
        l->pos += 4;
    } else if (!strncmp(l->src + l->pos, "}}", 2)) {
        l->pos += 2;
    } else {
        return lex_fail(l, "comment ends before closing delimiter");
    }
    return 0;
}

static size_t skip_space(const char *s, size_t p, size_t len)
{
    while (p < len && is_space_ch(s[p])) p++;
    return p;
}

static int lex_all(lexer *l)
{
    bool trim_next = false;
    while (l->pos < l->len) {
        if (trim_next) l->pos = skip_space(l->src, l->pos, l->len);
        trim_next = false;
        const char *open = strstr(l->src + l->pos, "{{");
        size_t end = open ? (size_t)(open - l->src) : l->len;
        size_t text_end = end;
        bool ltrim = open && !strncmp(open + 2, "-", 1) && is_space_ch(open[3]);
        if (ltrim)
            while (text_end > l->pos && is_space_ch(l->src[text_end - 1])) text_end--;
        if (text_end > l->pos) lex_emit(l, T_TEXT, l->pos, text_end);
        if (!open) break;
        l->pos = end + (ltrim ? 4 : 2);
        if (ltrim) l->pos = skip_space(l->src, l->pos, l->len);
        if (!strncmp(l->src + l->pos, "/*", 2)) {
            if (lex_comment(l, &trim_next) < 0) return -1;
            continue;
        }
        lex_emit(l, T_LEFT, end, end + 2);
        l->parens = 0;
        if (lex_action(l, &trim_next) < 0) return -1;
    }
    lex_emit(l, T_EOF, l->len, l->len);
    return 0;
}

/* ------------------------------------------------------------------ */
/* parse tree                                                          */
/* ------------------------------------------------------------------ */

enum node_type {
    N_LIST,
    N_TEXT,
    N_ACTION,
    N_IF,
    N_RANGE,
    N_WITH,
    N_BREAK,
    N_CONTINUE,
    N_END,
    N_ELSE,
    N_FIELD,
    N_VAR,
    N_DOT,
    N_STRING,
    N_NUMBER,
    N_BOOL,
    N_NIL,
    N_IDENT,
    N_PIPE,
    N_CHAIN
};

typedef struct node node;
typedef struct pipe_t pipe_t;

typedef struct cmd_t {
    int pos;
    node **args;
    size_t nargs;
} cmd_t;

struct pipe_t {
    int pos;
    char **decl; /* declared variable names */
    size_t ndecl;
    bool assign; /* '=' rather than ':=' */
    cmd_t **cmds;
    size_t ncmds;
};

struct node {
    int type;
    int pos;
    char *text;     /* TEXT/STRING/IDENT/NUMBER literal, VAR name */
    size_t textlen; /* for TEXT and STRING (may hold NULs) */
    char **fields;  /* FIELD/VAR/CHAIN field chain */
    size_t nfields;
    json_t *num;  /* NUMBER value */
    bool bval;    /* BOOL */
    pipe_t *pipe; /* ACTION, IF, RANGE, WITH, PIPE */
    node *inner;  /* CHAIN base */
    node **items; /* LIST members; IF/RANGE/WITH: items[0] body, items[1] else */
    size_t nitems;
};

struct tmpl {
    char *name;
    char *src;
    node *root;
};

typedef struct parser {
    const char *name;
    const char *src;
    token *toks;
    size_t ntoks, i;
    char **vars;
    size_t nvars;
    int range_depth;
    char *err;
} parser;

static node *node_new(int type, int pos)
{
    node *n = xcalloc(1, sizeof *n);
    n->type = type;
    n->pos = pos;
    return n;
}

static void pipe_free(pipe_t *p);
static void node_free(node *n)
{
    if (!n) return;
    free(n->text);
    for (size_t i = 0; i < n->nfields; i++) free(n->fields[i]);
    free(n->fields);
    json_decref(n->num);
    pipe_free(n->pipe);
    node_free(n->inner);
    for (size_t i = 0; i < n->nitems; i++) node_free(n->items[i]);
    free(n->items);
    free(n);
}

static void pipe_free(pipe_t *p)
{
    if (!p) return;
    for (size_t i = 0; i < p->ndecl; i++) free(p->decl[i]);
    free(p->decl);
    for (size_t i = 0; i < p->ncmds; i++) {
        for (size_t j = 0; j < p->cmds[i]->nargs; j++) node_free(p->cmds[i]->args[j]);
        free(p->cmds[i]->args);
        free(p->cmds[i]);
    }
    free(p->cmds);
    free(p);
}

static void node_add(node *list, node *n)
{
    list->items = xrealloc(list->items, (list->nitems + 1) * sizeof *list->items);
    list->items[list->nitems++] = n;
}

static void add_field(char ***f, size_t *n, const char *name)
{
    *f = xrealloc(*f, (*n + 1) * sizeof **f);
    (*f)[(*n)++] = xstrdup(name);
}

static int perr(parser *p, int pos, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int perr(parser *p, int pos, const char *fmt, ...)
{
    if (p->err) return -1;
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    p->err = xasprintf("template: %s:%d: %s", p->name, line_of(p->src, pos), msg);
    return -1;
}

static token *peek(parser *p)
{
    return &p->toks[p->i];
}
static token *next_tok(parser *p)
{
    token *t = &p->toks[p->i];
    if (t->type != T_EOF) p->i++;
    return t;
}
static token *next_nonspace(parser *p)
{
    token *t;
    do t = next_tok(p);
    while (t->type == T_SPACE);
    return t;
}
static token *peek_nonspace(parser *p)
{
    size_t save = p->i;
    token *t = next_nonspace(p);
    p->i = save;
    return t;
}

/* Go describes tokens in errors as "<end>", quoted text, or "EOF". */
static const char *tok_desc(const token *t, char *buf, size_t n)
{
    switch (t->type) {
    case T_EOF:
        return "EOF";
    case T_RIGHT:
        return "}}";
    case T_IF:
    case T_ELSE:
    case T_END:
    case T_RANGE:
    case T_WITH:
    case T_DEFINE:
    case T_TEMPLATE:
    case T_BLOCK:
    case T_BREAK:
    case T_CONTINUE:
        snprintf(buf, n, "<%s>", t->val);
        return buf;
    default:
        snprintf(buf, n, "%s%s%s", "\"", t->val, "\"");
        return buf;
    }
}

static bool var_known(parser *p, const char *name)
{
    for (size_t i = p->nvars; i-- > 0;)
        if (!strcmp(p->vars[i], name)) return true;
    return false;
}
static void var_push(parser *p, const char *name)
{
    p->vars = xrealloc(p->vars, (p->nvars + 1) * sizeof *p->vars);
    p->vars[p->nvars++] = xstrdup(name);
}
static void vars_pop(parser *p, size_t to)
{
    while (p->nvars > to) free(p->vars[--p->nvars]);
}

static const char *const builtin_names[] = {
    "and",   "or",   "not",   "len",   "index", "slice", "print",    "printf",   "println", "eq",
    "ne",    "lt",   "le",    "gt",    "ge",    "html",  "js",       "urlquery", "call",    "json",
    "split", "join", "title", "lower", "upper", "pad",   "truncate", NULL};

static bool func_known(const char *name)
{
    for (const char *const *b = builtin_names; *b; b++)
        if (!strcmp(*b, name)) return true;
    return false;
}

static pipe_t *parse_pipeline(parser *p, const char *context, int end);

/* Unquotes a Go string, raw string or char literal into n->text. */
static int unquote(parser *p, token *t, sbuf *out)
{
    if (t->type == T_RAWSTRING) {
        sbuf_add(out, t->val + 1, t->len - 2);
        return 0;
    }
    for (size_t i = 1; i + 1 < t->len; i++) {
        char c = t->val[i];
        if (c != '\\') {
            sbuf_add(out, &c, 1);
            continue;
        }
        char e = t->val[++i];
        static const char from[] = "abfnrtv\\'\"", to[] = "\a\b\f\n\r\t\v\\'\"";
        const char *f = strchr(from, e);
        if (e && f) {
            sbuf_add(out, &to[f - from], 1);
        } else if (e == 'x' || e == 'u' || e == 'U' || (e >= '0' && e <= '7')) {
            int digits = e == 'x' ? 2 : e == 'u' ? 4 : e == 'U' ? 8 : 3;
            size_t start = e >= '0' && e <= '7' ? i : i + 1;
            char hex[9] = {0};
            if (start + (size_t)digits > t->len - 1) return perr(p, t->pos, "invalid syntax");
            memcpy(hex, t->val + start, (size_t)digits);
            unsigned long cp = strtoul(hex, NULL, e >= '0' && e <= '7' ? 8 : 16);
            i = start + (size_t)digits - 1;
            if (e == 'x' || (e >= '0' && e <= '7')) {
                char b = (char)cp;
                sbuf_add(out, &b, 1);
            } else {
                char u[4];
                int k = 0;
                if (cp < 0x80)
                    u[k++] = (char)cp;
                else if (cp < 0x800)
                    u[k++] = (char)(0xC0 | (cp >> 6)), u[k++] = (char)(0x80 | (cp & 0x3F));
                else if (cp < 0x10000)
                    u[k++] = (char)(0xE0 | (cp >> 12)), u[k++] = (char)(0x80 | ((cp >> 6) & 0x3F)),
                    u[k++] = (char)(0x80 | (cp & 0x3F));
                else
                    u[k++] = (char)(0xF0 | (cp >> 18)), u[k++] = (char)(0x80 | ((cp >> 12) & 0x3F)),
                    u[k++] = (char)(0x80 | ((cp >> 6) & 0x3F)), u[k++] = (char)(0x80 | (cp & 0x3F));
                sbuf_add(out, u, (size_t)k);
            }
        } else {
            return perr(p, t->pos, "invalid syntax");
        }
    }
    return 0;
}

/* Decodes the UTF-8 sequence at s into a code point (for char literals). */
static long utf8_decode(const unsigned char *s, size_t n)
{
    if (n == 0) return -1;
    if (s[0] < 0x80) return s[0];
    int len = s[0] >= 0xF0 ? 4 : s[0] >= 0xE0 ? 3 : 2;
    if ((size_t)len > n) return -1;
    long cp = s[0] & (0x3F >> (len - 1));
    for (int i = 1; i < len; i++) cp = (cp << 6) | (s[i] & 0x3F);
    return cp;
}

static json_t *parse_number(const token *t)
{
    const char *s = t->val;
    if (t->type == T_CHAR) {
        sbuf b = {0};
        parser dummy = {0};
        dummy.src = "";
        if (unquote(&dummy, (token *)t, &b) < 0) {
            free(dummy.err);
            sbuf_free(&b);
            return NULL;
        }
        long cp = utf8_decode((unsigned char *)b.data, b.len);
        sbuf_free(&b);
        return cp < 0 ? NULL : json_integer(cp);
    }
    char clean[128];
    size_t k = 0;
    for (const char *c = s; *c && k + 1 < sizeof clean; c++)
        if (*c != '_') clean[k++] = *c;
    clean[k] = 0;
    char *end;
    errno = 0;
    bool hex = strstr(clean, "0x") || strstr(clean, "0X");
    if (hex || !strpbrk(clean, ".eEpP")) {
        long long v = strtoll(clean, &end, 0);
        if (!*end && errno == 0) return json_integer(v);
        if (!hex) return NULL;
    }
    double d = strtod(clean, &end);
    if (*end || errno) return NULL;
    return json_real(d);
}

/* term: a literal, dot, variable, field, function name or (pipeline). */
static node *parse_term(parser *p)
{
    token *t = next_nonspace(p);
    node *n = NULL;
    switch (t->type) {
    case T_IDENT:
        if (!func_known(t->val)) {
            perr(p, t->pos, "function %c%s%c not defined", '"', t->val, '"');
            return NULL;
        }
        n = node_new(N_IDENT, t->pos);
        n->text = xstrdup(t->val);
        return n;
    case T_DOT:
        return node_new(N_DOT, t->pos);
    case T_NIL:
        return node_new(N_NIL, t->pos);
    case T_VARIABLE:
        if (!var_known(p, t->val)) {
            perr(p, t->pos, "undefined variable %c%s%c", '"', t->val, '"');
            return NULL;
        }
        n = node_new(N_VAR, t->pos);
        n->text = xstrdup(t->val);
        return n;
    case T_FIELD:
        n = node_new(N_FIELD, t->pos);
        add_field(&n->fields, &n->nfields, t->val + 1);
        return n;
    case T_BOOL:
        n = node_new(N_BOOL, t->pos);
        n->bval = !strcmp(t->val, "true");
        return n;
    case T_NUMBER:
    case T_CHAR:
        n = node_new(N_NUMBER, t->pos);
        n->text = xstrdup(t->val);
        n->num = parse_number(t);
        if (!n->num) {
            perr(p, t->pos, "illegal number syntax: %c%s%c", '"', t->val, '"');
            node_free(n);
            return NULL;
        }
        return n;
    case T_LPAREN:
        n = node_new(N_PIPE, t->pos);
        n->pipe = parse_pipeline(p, "parenthesized pipeline", T_RPAREN);
        if (!n->pipe) {
            node_free(n);
            return NULL;
        }
        return n;
    case T_STRING:
    case T_RAWSTRING: {
        sbuf b = {0};
        if (unquote(p, t, &b) < 0) {
            sbuf_free(&b);
            return NULL;
        }
        n = node_new(N_STRING, t->pos);
        n->textlen = b.len;
        n->text = sbuf_steal(&b);
        return n;
    }
    default:
        p->i = (size_t)(t - p->toks);
        return NULL;
    }
}

/* operand: a term possibly followed by .Field.Chain. */
static node *parse_operand(parser *p)
{
    node *n = parse_term(p);
    if (!n || peek(p)->type != T_FIELD) return n;
    int chain_pos = peek(p)->pos;
    char **f = NULL;
    size_t nf = 0;
    while (peek(p)->type == T_FIELD) add_field(&f, &nf, next_tok(p)->val + 1);
    if (n->type == N_FIELD || n->type == N_VAR) {
        for (size_t i = 0; i < nf; i++) {
            add_field(&n->fields, &n->nfields, f[i]);
            free(f[i]);
        }
        free(f);
        n->pos = chain_pos;
        return n;
    }
    if (n->type == N_BOOL || n->type == N_STRING || n->type == N_NUMBER || n->type == N_NIL ||
        n->type == N_DOT) {
        for (size_t i = 0; i < nf; i++) free(f[i]);
        free(f);
        perr(p, chain_pos, "unexpected . after term %c%s%c", '"', n->text ? n->text : ".", '"');
        node_free(n);
        return NULL;
    }
    node *c = node_new(N_CHAIN, chain_pos);
    c->inner = n;
    c->fields = f;
    c->nfields = nf;
    return c;
}

static cmd_t *parse_command(parser *p)
{
    cmd_t *c = xcalloc(1, sizeof *c);
    c->pos = peek_nonspace(p)->pos;
    for (;;) {
        node *op = parse_operand(p);
        if (p->err) goto fail;
        if (op) {
            c->args = xrealloc(c->args, (c->nargs + 1) * sizeof *c->args);
            c->args[c->nargs++] = op;
        }
        token *t = next_tok(p);
        if (t->type == T_SPACE) continue;
        if (t->type == T_RIGHT || t->type == T_RPAREN) {
            p->i--;
        } else if (t->type != T_PIPE) {
            char b[256];
            perr(p, t->pos, "unexpected %s in operand", tok_desc(t, b, sizeof b));
            goto fail;
        }
        break;
    }
    if (c->nargs == 0) {
        perr(p, c->pos, "empty command");
        goto fail;
    }
    return c;
fail:
    for (size_t j = 0; j < c->nargs; j++) node_free(c->args[j]);
    free(c->args);
    free(c);
    return NULL;
}

/* Optional "$x :=", "$x =", or "$i, $e :=" (range) at the pipeline start. */
static void parse_decl(parser *p, pipe_t *pp, const char *context)
{
    size_t save = p->i;
    token *v = next_nonspace(p);
    if (v->type != T_VARIABLE) {
        p->i = save;
        return;
    }
    token *op = next_nonspace(p);
    if (op->type == T_DECLARE || op->type == T_ASSIGN) {
        add_field(&pp->decl, &pp->ndecl, v->val);
        pp->assign = op->type == T_ASSIGN;
        if (!pp->assign) var_push(p, v->val);
        return;
    }
    if (op->type == T_COMMA && !strcmp(context, "range")) {
        token *v2 = next_nonspace(p);
        token *op2 = next_nonspace(p);
        if (v2->type == T_VARIABLE && (op2->type == T_DECLARE || op2->type == T_ASSIGN)) {
            add_field(&pp->decl, &pp->ndecl, v->val);
            add_field(&pp->decl, &pp->ndecl, v2->val);
            pp->assign = op2->type == T_ASSIGN;
            if (!pp->assign) var_push(p, v->val), var_push(p, v2->val);
            return;
        }
        perr(p, v->pos, "range can only initialize variables");
        return;
    }
    p->i = save;
}

static bool is_literal_node(const node *n)
{
    return n->type == N_BOOL || n->type == N_DOT || n->type == N_NIL || n->type == N_NUMBER ||
           n->type == N_STRING;
}

static pipe_t *parse_pipeline(parser *p, const char *context, int end)
{
    pipe_t *pp = xcalloc(1, sizeof *pp);
    pp->pos = peek_nonspace(p)->pos;
    parse_decl(p, pp, context);
    while (!p->err) {
        token *t = next_nonspace(p);
        if (t->type == end) {
            if (pp->ncmds == 0) {
                perr(p, t->pos, "missing value for %s", context);
                break;
            }
            for (size_t i = 1; i < pp->ncmds; i++)
                if (is_literal_node(pp->cmds[i]->args[0]))
                    perr(p, t->pos, "non executable command in pipeline stage %zu", i + 1);
            if (p->err) break;
            return pp;
        }
        switch (t->type) {
        case T_BOOL:
        case T_CHAR:
        case T_DOT:
        case T_FIELD:
        case T_IDENT:
        case T_NUMBER:
        case T_NIL:
        case T_RAWSTRING:
        case T_STRING:
        case T_VARIABLE:
        case T_LPAREN: {
            p->i = (size_t)(t - p->toks);
            cmd_t *c = parse_command(p);
            if (!c) break;
            pp->cmds = xrealloc(pp->cmds, (pp->ncmds + 1) * sizeof *pp->cmds);
            pp->cmds[pp->ncmds++] = c;
            break;
        }
        case T_EOF:
            perr(p, t->pos, end == T_RPAREN ? "unclosed left paren" : "unclosed action");
            break;
        default: {
            char b[256];
            perr(p, t->pos, "unexpected %s in %s", tok_desc(t, b, sizeof b),
                 t->type == T_RPAREN ? "command" : context);
        }
        }
    }
    pipe_free(pp);
    return NULL;
}

static node *parse_text_or_action(parser *p);

/* Parses nodes until {{end}} or {{else}}; *stop receives that node. */
static node *parse_item_list(parser *p, node **stop)
{
    node *list = node_new(N_LIST, peek(p)->pos);
    for (;;) {
        if (peek_nonspace(p)->type == T_EOF) {
            perr(p, peek(p)->pos, "unexpected EOF");
            break;
        }
        node *n = parse_text_or_action(p);
        if (!n) break;
        if (n->type == N_END || n->type == N_ELSE) {
            *stop = n;
            return list;
        }
        node_add(list, n);
    }
    node_free(list);
    return NULL;
}

static node *parse_control(parser *p, int type, const char *context);

/* After the pipeline of if/range/with: body, optional else, end. */
static int parse_control_body(parser *p, node *n, const char *context)
{
    node *stop = NULL;
    node *body = parse_item_list(p, &stop);
    if (!body) return -1;
    node_add(n, body);
    if (stop->type == N_ELSE) {
        int epos = stop->pos;
        node_free(stop);
        token *t = peek(p);
        if ((!strcmp(context, "if") && t->type == T_IF) ||
            (!strcmp(context, "with") && t->type == T_WITH)) {
            next_tok(p);
            node *elist = node_new(N_LIST, epos);
            node_add(n, elist);
            node *inner = parse_control(p, t->type == T_IF ? N_IF : N_WITH, context);
            if (!inner) return -1;
            node_add(elist, inner);
            return 0;
        }
        stop = NULL;
        node *elist = parse_item_list(p, &stop);
        if (!elist) return -1;
        node_add(n, elist);
        if (stop->type != N_END) {
            node_free(stop);
            return perr(p, epos, "expected end; found {{else}}");
        }
    }
    node_free(stop);
    return 0;
}

static node *parse_control(parser *p, int type, const char *context)
{
    size_t nvars = p->nvars;
    node *n = node_new(type, peek(p)->pos);
    n->pipe = parse_pipeline(p, context, T_RIGHT);
    if (n->pipe) {
        if (type == N_RANGE) p->range_depth++;
        int rc = parse_control_body(p, n, context);
        if (type == N_RANGE) p->range_depth--;
        if (rc == 0) {
            vars_pop(p, nvars);
            return n;
        }
    }
    vars_pop(p, nvars);
    node_free(n);
    return NULL;
}

static node *expect_right(parser *p, node *n, const char *context)
{
    token *t = next_nonspace(p);
    if (t->type == T_RIGHT) return n;
    char b[256];
    perr(p, t->pos, "unexpected %s in %s", tok_desc(t, b, sizeof b), context);
    node_free(n);
    return NULL;
}

static node *parse_action(parser *p)
{
    token *t = next_nonspace(p);
    switch (t->type) {
    case T_IF:
        return parse_control(p, N_IF, "if");
    case T_RANGE:
        return parse_control(p, N_RANGE, "range");
    case T_WITH:
        return parse_control(p, N_WITH, "with");
    case T_END:
        return expect_right(p, node_new(N_END, t->pos), "end");
    case T_ELSE:
        if (peek_nonspace(p)->type == T_IF || peek_nonspace(p)->type == T_WITH) {
            while (peek(p)->type == T_SPACE) next_tok(p);
            return node_new(N_ELSE, t->pos);
        }
        return expect_right(p, node_new(N_ELSE, t->pos), "else");
    case T_BREAK:
    case T_CONTINUE:
        if (p->range_depth == 0) {
            perr(p, t->pos, "{{%s}} outside {{range}}", t->val);
            return NULL;
        }
        return expect_right(p, node_new(t->type == T_BREAK ? N_BREAK : N_CONTINUE, t->pos), t->val);
    case T_DEFINE:
    case T_TEMPLATE:
    case T_BLOCK:
        perr(p, t->pos, "{{%s}} is not supported", t->val);
        return NULL;
    default:
        break;
    }
    p->i = (size_t)(t - p->toks);
    node *n = node_new(N_ACTION, t->pos);
    n->pipe = parse_pipeline(p, "command", T_RIGHT);
    if (!n->pipe) {
        node_free(n);
        return NULL;
    }
    return n;
}

static node *parse_text_or_action(parser *p)
{
    token *t = next_nonspace(p);
    if (t->type == T_TEXT) {
        node *n = node_new(N_TEXT, t->pos);
        n->text = xstrndup(t->val, t->len);
        n->textlen = t->len;
        return n;
    }
    if (t->type == T_LEFT) return parse_action(p);
    char b[256];
    perr(p, t->pos, "unexpected %s in input", tok_desc(t, b, sizeof b));
    return NULL;
}

static node *parse_root(parser *p)
{
    node *root = node_new(N_LIST, 0);
    while (peek(p)->type != T_EOF) {
        node *n = parse_text_or_action(p);
        if (!n) break;
        if (n->type == N_END || n->type == N_ELSE) {
            perr(p, n->pos, "unexpected {{%s}}", n->type == N_END ? "end" : "else");
            node_free(n);
            break;
        }
        node_add(root, n);
    }
    if (p->err) {
        node_free(root);
        return NULL;
    }
    return root;
}

tmpl *tmpl_parse(const char *src, char **err)
{
    return tmpl_parse_named("", src, err);
}

tmpl *tmpl_parse_named(const char *name, const char *src, char **err)
{
    lexer l = {.name = name, .src = src, .len = strlen(src)};
    int rc = lex_all(&l);
    tmpl *t = NULL;
    if (rc == 0) {
        parser p = {.name = name, .src = src, .toks = l.toks, .ntoks = l.ntoks};
        var_push(&p, "$");
        node *root = parse_root(&p);
        vars_pop(&p, 0);
        free(p.vars);
        if (root) {
            t = xcalloc(1, sizeof *t);
            t->src = xstrdup(src);
            t->name = xstrdup(name);
            t->root = root;
        } else if (err) {
            *err = p.err;
            p.err = NULL;
        }
        free(p.err);
    } else if (err) {
        *err = l.err;
        l.err = NULL;
    }
    free(l.err);
    for (size_t i = 0; i < l.ntoks; i++) free(l.toks[i].val);
    free(l.toks);
    return t;
}

void tmpl_free(tmpl *t)
{
    if (!t) return;
    node_free(t->root);
    free(t->src);
    free(t->name);
    free(t);
}

/* ------------------------------------------------------------------ */
/* value printing: Go's fmt %v and encoding/json                       */
/* ------------------------------------------------------------------ */

/* Shortest digits that round-trip, in the style given ('e' or 'f' rules). */
static void fmt_float(sbuf *out, double d, bool json_style)
{
    if (isnan(d) || isinf(d)) {
        sbuf_adds(out, isnan(d) ? "NaN" : d > 0 ? "+Inf" : "-Inf");
        return;
    }
    char buf[64];
    int prec;
    for (prec = 1; prec < 17; prec++) {
        snprintf(buf, sizeof buf, "%.*e", prec - 1, d);
        if (strtod(buf, NULL) == d) break;
    }
    snprintf(buf, sizeof buf, "%.*e", prec - 1, d);
    int exp = atoi(strchr(buf, 'e') + 1);
    double a = d < 0 ? -d : d;
    bool use_exp = json_style ? (a != 0 && (a < 1e-6 || a >= 1e21)) : (exp < -4 || exp >= 6);
    if (use_exp) {
        /* Go: mantissa without trailing zeros, exponent at least 2 digits
         * for %v, and no zero padding for JSON (1e-7). */
        char *e = strchr(buf, 'e');
        sbuf_add(out, buf, (size_t)(e - buf));
        int x = atoi(e + 1);
        if (json_style)
            sbuf_printf(out, "e%c%d", x < 0 ? '-' : '+', abs(x));
        else
            sbuf_printf(out, "e%c%02d", x < 0 ? '-' : '+', abs(x));
        return;
    }
    int decimals = prec - 1 - exp;
    snprintf(buf, sizeof buf, "%.*f", decimals > 0 ? decimals : 0, d);
    sbuf_adds(out, buf);
}

static void print_number(sbuf *out, const json_t *v)
{
    if (json_is_integer(v))
        sbuf_printf(out, "%lld", (long long)json_integer_value(v));
    else
        fmt_float(out, json_real_value(v), false);
}

static void json_string_enc(sbuf *out, const char *s, size_t n)
{
    sbuf_adds(out, "\"");
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\')
            sbuf_printf(out, "\\%c", c);
        else if (c == '\n')
            sbuf_adds(out, "\\n");
        else if (c == '\r')
            sbuf_adds(out, "\\r");
        else if (c == '\t')
            sbuf_adds(out, "\\t");
        else if (c < 0x20)
            sbuf_printf(out, "\\u%04x", c);
        else if (c == 0xE2 && i + 2 < n && (unsigned char)s[i + 1] == 0x80 &&
                 ((unsigned char)s[i + 2] == 0xA8 || (unsigned char)s[i + 2] == 0xA9)) {
            sbuf_printf(out, "\\u202%c", (unsigned char)s[i + 2] == 0xA8 ? '8' : '9');
            i += 2;
        } else
            sbuf_add(out, &s[i], 1);
    }
    sbuf_adds(out, "\"");
}

void tmpl_json(sbuf *out, const json_t *v)
{
    size_t i;
    const char *k;
    json_t *x;
    switch (json_typeof(v)) {
    case JSON_OBJECT:
        sbuf_adds(out, "{");
        i = 0;
        json_object_foreach((json_t *)v, k, x)
        {
            if (i++) sbuf_adds(out, ",");
            json_string_enc(out, k, strlen(k));
            sbuf_adds(out, ":");
            tmpl_json(out, x);
        }
        sbuf_adds(out, "}");
        break;
    case JSON_ARRAY:
        sbuf_adds(out, "[");
        json_array_foreach(v, i, x)
        {
            if (i) sbuf_adds(out, ",");
            tmpl_json(out, x);
        }
        sbuf_adds(out, "]");
        break;
    case JSON_STRING:
        json_string_enc(out, json_string_value(v), json_string_length(v));
        break;
    case JSON_INTEGER:
        sbuf_printf(out, "%lld", (long long)json_integer_value(v));
        break;
    case JSON_REAL:
        fmt_float(out, json_real_value(v), true);
        break;
    case JSON_TRUE:
        sbuf_adds(out, "true");
        break;
    case JSON_FALSE:
        sbuf_adds(out, "false");
        break;
    default:
        sbuf_adds(out, "null");
        break;
    }
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Object keys, sorted as Go's fmt and range sort map keys. Caller frees. */
static const char **sorted_keys(const json_t *o, size_t *n)
{
    *n = json_object_size(o);
    const char **keys = xcalloc(*n + 1, sizeof *keys);
    size_t i = 0;
    const char *k;
    json_t *x;
    json_object_foreach((json_t *)o, k, x) keys[i++] = k;
    qsort(keys, *n, sizeof *keys, cmp_str);
    return keys;
}

static const json_t *hint_field(const json_t *hint, const char *key)
{
    return json_is_object(hint) ? json_object_get(hint, key) : NULL;
}
static const json_t *hint_elem(const json_t *hint)
{
    return json_is_array(hint) ? json_array_get(hint, 0) : NULL;
}
static bool hint_is(const json_t *hint, const char *kind)
{
    return json_is_string(hint) && !strcmp(json_string_value(hint), kind);
}

/* Go's printing of a nil value of the hinted type; NULL when unknown. */
static const char *hint_nil(const json_t *hint)
{
    if (json_is_array(hint) || hint_is(hint, "slice")) return "[]";
    if (hint_is(hint, "map") || hint_is(hint, "mapstr")) return "map[]";
    if (hint_is(hint, "str")) return "";
    return NULL;
}

static void print_nested(sbuf *out, const json_t *v, const json_t *hint)
{
    size_t i, n;
    json_t *x;
    const char *nil;
    switch (json_typeof(v)) {
    case JSON_ARRAY:
        sbuf_adds(out, "[");
        json_array_foreach(v, i, x)
        {
            if (i) sbuf_adds(out, " ");
            print_nested(out, x, hint_elem(hint));
        }
        sbuf_adds(out, "]");
        break;
    case JSON_OBJECT:
        if (json_is_object(hint)) {
            const char *k;
            sbuf_adds(out, "{");
            i = 0;
            json_object_foreach((json_t *)v, k, x)
            {
                if (i++) sbuf_adds(out, " ");
                print_nested(out, x, hint_field(hint, k));
            }
            sbuf_adds(out, "}");
            break;
        }
        const char **keys = sorted_keys(v, &n);
        sbuf_adds(out, "map[");
        for (i = 0; i < n; i++) {
            if (i) sbuf_adds(out, " ");
            sbuf_printf(out, "%s:", keys[i]);
            print_nested(out, json_object_get(v, keys[i]), NULL);
        }
        sbuf_adds(out, "]");
        free(keys);
        break;
    case JSON_STRING:
        sbuf_add(out, json_string_value(v), json_string_length(v));
        break;
    case JSON_INTEGER:
    case JSON_REAL:
        print_number(out, v);
        break;
    case JSON_TRUE:
        sbuf_adds(out, "true");
        break;
    case JSON_FALSE:
        sbuf_adds(out, "false");
        break;
    default:
        nil = hint_nil(hint);
        sbuf_adds(out, nil ? nil : "<nil>");
        break;
    }
}

void tmpl_print_value(sbuf *out, const json_t *v)
{
    print_nested(out, v, NULL);
}

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
