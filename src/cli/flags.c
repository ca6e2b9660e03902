/* flags.c: pflag-compatible option parsing and usage text for berth.
 *
 * Long flags (--name, --name=value, --name value), shorthand flags
 * (-a, -aq, -fvalue, -f value, -f=value), boolean values (--flag=false),
 * repeatable list and filter flags, "--" to end options and "-" as a
 * positional argument. Errors use cobra/pflag wording ("unknown flag:
 * --x", "See 'berth images --help'.") and the caller exits 125. Also
 * checks the number of positional arguments as docker's cli/required.go. */
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"

void strv_add(strv *s, const char *v)
{
    s->v = xrealloc(s->v, (s->n + 2) * sizeof *s->v);
    s->v[s->n++] = xstrdup(v);
    s->v[s->n] = NULL;
}

void strv_free(strv *s)
{
    for (size_t i = 0; i < s->n; i++) free(s->v[i]);
    free(s->v);
    s->v = NULL;
    s->n = 0;
}

static void see_help(const cmd_def *def)
{
    if (def && def->path[0])
        errorf("See '%s %s --help'.", CLI_NAME, def->path);
    else
        errorf("See '%s --help'.", CLI_NAME);
}

static const flag *find_long(const flag *flags, const char *name, size_t len)
{
    for (const flag *f = flags; f && f->name; f++)
        if (strlen(f->name) == len && !strncmp(f->name, name, len)) return f;
    return NULL;
}

static const flag *find_short(const flag *flags, char c)
{
    for (const flag *f = flags; f && f->name; f++)
        if (f->shorthand == c) return f;
    return NULL;
}

static char *flag_label(const flag *f)
{
    if (f->shorthand) return xasprintf("-%c, --%s", f->shorthand, f->name);
    return xasprintf("--%s", f->name);
}

static int bad_value(const cmd_def *def, const flag *f, const char *v, const char *why)
{
    char *l = flag_label(f);
    errorf("invalid argument \"%s\" for \"%s\" flag: %s", v, l, why);
    free(l);
    see_help(def);
    return -1;
}

static int parse_bool(const char *v, bool *out)
{
    static const char *t[] = {"1", "t", "T", "true", "TRUE", "True"};
    static const char *f[] = {"0", "f", "F", "false", "FALSE", "False"};
    for (size_t i = 0; i < 6; i++) {
        if (!strcmp(v, t[i])) return *out = true, 0;
        if (!strcmp(v, f[i])) return *out = false, 0;
    }
    return -1;
}

static int set_converted(const cmd_def *def, const flag *f, const char *v)
{
    char *why = NULL;
    char *nv = f->conv(v, &why);
    if (!nv) {
        int rc = bad_value(def, f, v, why ? why : "invalid value");
        free(why);
        return rc;
    }
    if (f->type == FLAG_LIST) {
        strv_add(f->ptr, nv);
        free(nv);
    } else {
        free(*(char **)f->ptr);
        *(char **)f->ptr = nv;
    }
    return 0;
}

static int set_value(const cmd_def *def, const flag *f, const char *v)
{
    if (f->changed) *f->changed = true;
    if (f->conv && (f->type == FLAG_STRING || f->type == FLAG_LIST))
        return set_converted(def, f, v);
    switch (f->type) {
    case FLAG_BOOL: {
        bool b;
        if (parse_bool(v, &b) < 0) {
            char why[256];
            snprintf(why, sizeof why, "strconv.ParseBool: parsing \"%s\": invalid syntax", v);
            return bad_value(def, f, v, why);
        }
        *(bool *)f->ptr = b;
        return 0;
    }
    case FLAG_STRING:
        free(*(char **)f->ptr);
        *(char **)f->ptr = xstrdup(v);
        return 0;
    case FLAG_FILTER:
        if (!strchr(v, '='))
            return bad_value(def, f, v, "bad format of filter (expected name=value)");
        strv_add(f->ptr, v);
        return 0;
    case FLAG_LIST:
        strv_add(f->ptr, v);
        return 0;
    case FLAG_INT: {
        char *end;
        long long n = strtoll(v, &end, 0);
        if (!*v || *end) {
            char why[256];
            snprintf(why, sizeof why, "strconv.ParseInt: parsing \"%s\": invalid syntax", v);
            return bad_value(def, f, v, why);
        }
        *(long long *)f->ptr = n;
        return 0;
    }
    default:
        return -1;
    }
}

static int parse_long(const cmd_def *def, const flag *flags, int argc, char **argv, int *i)
{
    const char *arg = argv[*i] + 2;
    const char *eq = strchr(arg, '=');
    size_t len = eq ? (size_t)(eq - arg) : strlen(arg);
    const flag *f = find_long(flags, arg, len);
    if (!f) {
        errorf("unknown flag: --%.*s", (int)len, arg);
        see_help(def);
        return -1;
    }
    if (eq) return set_value(def, f, eq + 1);
    if (f->type == FLAG_BOOL) return set_value(def, f, "true");
    if (*i + 1 >= argc) {
        errorf("flag needs an argument: --%s", f->name);
        see_help(def);
        return -1;
    }
    return set_value(def, f, argv[++*i]);
}

static int parse_shorts(const cmd_def *def, const flag *flags, int argc, char **argv, int *i)
{
    const char *s = argv[*i] + 1;
    for (; *s; s++) {
        const flag *f = find_short(flags, *s);
        if (!f) {
            errorf("unknown shorthand flag: '%c' in -%s", *s, argv[*i] + 1);
            see_help(def);
            return -1;
        }
        if (s[1] == '=') return set_value(def, f, s + 2);
        if (f->type == FLAG_BOOL) {
            if (set_value(def, f, "true") < 0) return -1;
            continue;
        }
        if (s[1]) return set_value(def, f, s + 1);
        if (*i + 1 >= argc) {
            errorf("flag needs an argument: '%c' in -%s", *s, argv[*i] + 1);
            see_help(def);
            return -1;
        }
        return set_value(def, f, argv[++*i]);
    }
    return 0;
}

static bool is_help(const flag *flags, const char *a)
{
    return !strcmp(a, "--help") || (!strcmp(a, "-h") && !find_short(flags, 'h'));
}

int flags_parse(const cmd_def *def, flag *flags, int argc, char **argv, char ***pos)
{
    char **out = xcalloc((size_t)argc + 1, sizeof *out);
    int n = 0;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        int rc = 0;
        if (!strcmp(a, "--")) {
            while (++i < argc) out[n++] = argv[i];
            break;
        }
        if (is_help(flags, a)) {
            free(out);
            print_usage(stdout, def, flags);
            return -2;
        }
        if (str_starts(a, "--"))
            rc = parse_long(def, flags, argc, argv, &i);
        else if (a[0] == '-' && a[1])
            rc = parse_shorts(def, flags, argc, argv, &i);
        else if (def && def->stop_at_arg) {
            while (i < argc) out[n++] = argv[i++];
            break;
        } else
            out[n++] = argv[i];
        if (rc < 0) {
            free(out);
            return -1;
        }
    }
    *pos = out;
    return n;
}

static int cmp_flag(const void *a, const void *b)
{
    return strcmp((*(const flag *const *)a)->name, (*(const flag *const *)b)->name);
}

static char *flag_prefix(const flag *f)
{
    const char *tn = f->typename;
    if (!tn) {
        static const char *names[] = {"", "string", "list", "filter", "int"};
        tn = names[f->type];
    }
    if (f->shorthand)
        return xasprintf("  -%c, --%s%s%s", f->shorthand, f->name, *tn ? " " : "", tn);
    return xasprintf("      --%s%s%s", f->name, *tn ? " " : "", tn);
}

/* pflag's wrapN: splits s at the last blank before i (with slop). */
static size_t wrap_split(const char *s, size_t i, size_t slop, size_t *next)
{
    size_t len = strlen(s);
    *next = len;
    if (i + slop > len) return len;
    size_t w = i;
    while (w > 0 && s[w] != ' ') w--;
    if (w == 0) return len;
    *next = w + 1;
    return w;
}

/* pflag's wrap(indent, cols, text) for the usage column of help output. */
static void print_wrapped(FILE *o, size_t indent, size_t cols, const char *s)
{
    size_t wrap = cols - indent;
    if (cols < indent + 24) {
        indent = 16;
        wrap = cols > indent ? cols - indent : 0;
        fprintf(o, "\n%16s", "");
    }
    if (wrap < 24) {
        fputs(s, o);
        return;
    }
    wrap -= 5;
    bool first = true;
    while (*s) {
        size_t next, n = wrap_split(s, wrap, 5, &next);
        if (!first) fprintf(o, "\n%*s", (int)indent, "");
        fprintf(o, "%.*s", (int)n, s);
        s += next;
        first = false;
    }
}

static void print_flags(FILE *o, const flag *flags)
{
    size_t n = 0, maxlen = 0;
    for (const flag *f = flags; f && f->name; f++) n++;
    const flag **sorted = xcalloc(n + 1, sizeof *sorted);
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (!flags[i].hidden) sorted[k++] = &flags[i];
    n = k;
    qsort(sorted, n, sizeof *sorted, cmp_flag);
    for (size_t i = 0; i < n; i++) {
        char *p = flag_prefix(sorted[i]);
        if (strlen(p) + 1 > maxlen) maxlen = strlen(p) + 1;
        free(p);
    }
    for (size_t i = 0; i < n; i++) {
        const flag *f = sorted[i];
        char *p = flag_prefix(f);
        char *usage =
            f->defval ? xasprintf("%s (default %s)", f->usage, f->defval) : xstrdup(f->usage);
        fprintf(o, "%s %*s ", p, (int)(maxlen - strlen(p)), "");
        print_wrapped(o, maxlen + 2, 79, usage);
        fputc('\n', o);
        free(usage);
        free(p);
    }
    free(sorted);
}

void print_usage(FILE *o, const cmd_def *def, const flag *flags)
{
    fprintf(o, "\nUsage:  %s %s %s\n\n%s\n", CLI_NAME, def->path, def->args, def->desc);
    if (def->aliases) fprintf(o, "\nAliases:\n  %s\n", def->aliases);
    if (flags && flags->name) {
        fprintf(o, "\nOptions:\n");
        print_flags(o, flags);
    }
}

static void args_error(const cmd_def *def, const char *what)
{
    errorf("\"%s %s\" %s.", CLI_NAME, def->path, what);
    see_help(def);
    errorf("\nUsage:  %s %s %s\n\n%s", CLI_NAME, def->path, def->args, def->desc);
}

int check_args(const cmd_def *def, int nargs)
{
    int min = def->min_args, max = def->max_args;
    if (nargs >= min && (max < 0 || nargs <= max)) return 0;
    char what[128];
    int shown = min == max || max < 0 ? min : max;
    const char *unit = shown == 1 ? "argument" : "arguments";
    if (min == 0 && max == 0)
        snprintf(what, sizeof what, "accepts no arguments");
    else if (min == max)
        snprintf(what, sizeof what, "requires exactly %d %s", min, unit);
    else if (max < 0)
        snprintf(what, sizeof what, "requires at least %d %s", min, unit);
    else if (min == 0)
        snprintf(what, sizeof what, "requires at most %d %s", max, unit);
    else
        snprintf(what, sizeof what, "requires at least %d and at most %d %s", min, max, unit);
    args_error(def, what);
    return -1;
}

int parse_cmd(const cmd_def *def, flag *flags, int argc, char **argv, char ***pos, int *rc)
{
    int n = flags_parse(def, flags, argc, argv, pos);
    if (n == -2) {
        *rc = 0;
        return -1;
    }
    if (n < 0) {
        *rc = 125;
        return -1;
    }
    if (check_args(def, n) < 0) {
        free(*pos);
        *pos = NULL;
        *rc = 1;
        return -1;
    }
    return n;
}
