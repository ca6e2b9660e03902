/* template_internal.h: private to the template_*.c files (not part of the
 * public API in template.h). Owns the parse tree shared by the parser and
 * the evaluator, and declares the printing helpers the evaluator reuses. */
#ifndef BERTH_TEMPLATE_INTERNAL_H
#define BERTH_TEMPLATE_INTERNAL_H

#include "template.h"

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

/* ---- template_print.c helpers used by the evaluator ---- */

const json_t *hint_elem(const json_t *hint);
const json_t *hint_field(const json_t *hint, const char *key);
bool hint_is(const json_t *hint, const char *kind);
const char *hint_nil(const json_t *hint);
void json_string_enc(sbuf *out, const char *s, size_t n);
void print_nested(sbuf *out, const json_t *v, const json_t *hint);
const char **sorted_keys(const json_t *o, size_t *n);

#endif
