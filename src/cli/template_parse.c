/* template_parse.c: lexer and parser of the Go text/template subset.
 *
 * The lexer turns the source into tokens (text, delimiters and the words
 * inside actions); a recursive-descent parser builds the node tree of
 * template_internal.h as Go's text/template/parse does, with Go's error
 * wording. Owns tmpl_parse, tmpl_parse_named and tmpl_free. */
#include "template_internal.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

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
