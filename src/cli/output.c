/* output.c: how the berth CLI prints, the way the docker CLI does.
 *
 * Holds Go's text/tabwriter algorithm (column blocks, minwidth, padding),
 * docker's formatter (table/json/custom --format with header rows), Go's
 * json.Indent, human-readable sizes and times as go-units prints them,
 * the JSON message stream printer used by load/import, and prompts. */
#include <ctype.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli/cli.h"

void errorf(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

const char *go_strerror(int e)
{
    static char buf[256];
    snprintf(buf, sizeof buf, "%s", strerror(e));
    if (buf[0] && buf[1] && !isupper((unsigned char)buf[1]))
        buf[0] = (char)tolower((unsigned char)buf[0]);
    return buf;
}

/* ---- tabwriter ---- */

typedef struct tw_cell {
    const char *p;
    size_t len;
    int width;
} tw_cell;

typedef struct tw_line {
    tw_cell *cells;
    size_t n;
} tw_line;

typedef struct tabw {
    FILE *out;
    tw_line *lines;
    size_t nlines;
    int *widths;
    size_t nwidths;
    int minwidth, padding;
} tabw;

static int utf8_width(const char *p, size_t len)
{
    int w = 0;
    for (size_t i = 0; i < len; i++)
        if (((unsigned char)p[i] & 0xC0) != 0x80) w++;
    return w;
}

static void tw_split(tabw *t, const char *text, size_t len)
{
    const char *end = text + len, *p = text;
    for (;;) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *le = nl ? nl : end;
        tw_line line = {0};
        const char *c = p;
        for (;;) {
            const char *tab = memchr(c, '\t', (size_t)(le - c));
            const char *ce = tab ? tab : le;
            line.cells = xrealloc(line.cells, (line.n + 1) * sizeof *line.cells);
            line.cells[line.n++] = (tw_cell){c, (size_t)(ce - c), utf8_width(c, (size_t)(ce - c))};
            if (!tab) break;
            c = tab + 1;
        }
        t->lines = xrealloc(t->lines, (t->nlines + 1) * sizeof *t->lines);
        t->lines[t->nlines++] = line;
        if (!nl) break;
        p = nl + 1;
    }
}

static void tw_write_lines(tabw *t, size_t line0, size_t line1)
{
    for (size_t i = line0; i < line1; i++) {
        tw_line *l = &t->lines[i];
        for (size_t j = 0; j < l->n; j++) {
            tw_cell *c = &l->cells[j];
            fwrite(c->p, 1, c->len, t->out);
            if (j < t->nwidths)
                for (int k = c->width; k < t->widths[j]; k++) fputc(' ', t->out);
        }
        if (i + 1 < t->nlines) fputc('\n', t->out);
    }
}

/* Go's tabwriter.format: recursive column blocks. */
static size_t tw_format(tabw *t, size_t line0, size_t line1)
{
    size_t column = t->nwidths;
    for (size_t this = line0; this < line1; this ++) {
        if (column + 1 >= t->lines[this].n) continue;
        tw_write_lines(t, line0, this);
        line0 = this;
        int width = t->minwidth;
        for (; this < line1; this ++) {
            tw_line *l = &t->lines[this];
            if (column + 1 >= l->n) break;
            int w = l->cells[column].width + t->padding;
            if (w > width) width = w;
        }
        t->widths = xrealloc(t->widths, (t->nwidths + 1) * sizeof *t->widths);
        t->widths[t->nwidths++] = width;
        tw_format(t, line0, this);
        t->nwidths--;
        line0 = this;
    }
    tw_write_lines(t, line0, line1);
    return line1;
}

void tabwrite(FILE *out, const char *text, size_t len, int minwidth, int tabwidth, int padding)
{
    (void)tabwidth;
    tabw t = {.out = out, .minwidth = minwidth, .padding = padding};
    tw_split(&t, text, len);
    tw_format(&t, 0, t.nlines);
    for (size_t i = 0; i < t.nlines; i++) free(t.lines[i].cells);
    free(t.lines);
    free(t.widths);
}

/* ---- formatter ---- */

char *replace_all(const char *s, const char *from, const char *to)
{
    sbuf b = {0};
    size_t fl = strlen(from);
    const char *p;
    while ((p = strstr(s, from))) {
        sbuf_add(&b, s, (size_t)(p - s));
        sbuf_adds(&b, to);
        s = p + fl;
    }
    sbuf_adds(&b, s);
    return sbuf_steal(&b);
}

int formatter_init(formatter *f, const char *format, const char *sname)
{
    memset(f, 0, sizeof *f);
    f->sname = sname;
    const char *src = format;
    if (str_starts(format, "table")) {
        f->table = true;
        src = format + 5;
    } else if (!strcmp(format, "json")) {
        src = "{{json .}}";
    }
    while (*src == ' ') src++;
    char *trimmed = xstrdup(src);
    size_t n = strlen(trimmed);
    while (n && trimmed[n - 1] == ' ') trimmed[--n] = 0;
    char *a = replace_all(trimmed, "\\t", "\t");
    f->format = replace_all(a, "\\n", "\n");
    free(a);
    free(trimmed);
    char *err = NULL;
    f->t = tmpl_parse(f->format, &err);
    if (!f->t) {
        errorf("template parsing error: %s", err);
        free(err);
        formatter_free(f);
        return -1;
    }
    return 0;
}

int formatter_row(formatter *f, const json_t *row, const json_t *json_self)
{
    char *err = NULL;
    tmpl_opts o = {.struct_name = f->sname, .json_self = json_self, .hints = f->hints};
    if (tmpl_exec(f->t, row, &o, &f->buf, &err) < 0) {
        errorf("template parsing error: %s", err);
        free(err);
        return -1;
    }
    sbuf_adds(&f->buf, "\n");
    f->rows++;
    return 0;
}

void formatter_flush(formatter *f, const json_t *header)
{
    if (f->table) {
        sbuf all = {0};
        tmpl_opts o = {.header = true};
        char *err = NULL;
        if (tmpl_exec(f->t, header, &o, &all, &err) < 0) free(err);
        sbuf_adds(&all, "\n");
        if (f->buf.len) sbuf_add(&all, f->buf.data, f->buf.len);
        tabwrite(stdout, all.data, all.len, 10, 1, 3);
        sbuf_free(&all);
    } else if (f->buf.len) {
        fwrite(f->buf.data, 1, f->buf.len, stdout);
    }
    formatter_free(f);
}

void formatter_free(formatter *f)
{
    tmpl_free(f->t);
    f->t = NULL;
    free(f->format);
    f->format = NULL;
    sbuf_free(&f->buf);
}

/* ---- human values ---- */

void short_id(const char *id, char *out, size_t n)
{
    if (!id) id = "";
    const char *colon = strchr(id, ':');
    if (colon) id = colon + 1;
    snprintf(out, n, "%.12s", id);
}

void size_human(double bytes, int prec, char *out, size_t n)
{
    static const char *units[] = {"B", "kB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB"};
    int i = 0;
    while (bytes >= 1000.0 && i < 8) {
        bytes /= 1000.0;
        i++;
    }
    snprintf(out, n, "%.*g%s", prec, bytes, units[i]);
}

void size_bytes(double bytes, char *out, size_t n)
{
    static const char *units[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB", "ZiB", "YiB"};
    int i = 0;
    while (bytes >= 1024.0 && i < 8) {
        bytes /= 1024.0;
        i++;
    }
    snprintf(out, n, "%.4g%s", bytes, units[i]);
}

void since_human(int64_t unix_secs, char *out, size_t n)
{
    char d[64];
    int64_t secs = (now_ns() / 1000000000LL) - unix_secs;
    human_duration(secs, d, sizeof d);
    snprintf(out, n, "%s ago", d);
}

static void tz_suffix(const struct tm *tm, char *out, size_t n, bool rfc)
{
    long off = tm->tm_gmtoff;
    if (rfc && off == 0) {
        snprintf(out, n, "Z");
        return;
    }
    char sign = off < 0 ? '-' : '+';
    if (off < 0) off = -off;
    int hh = (int)(off / 3600 % 100), mm = (int)(off / 60 % 60);
    snprintf(out, n, rfc ? "%c%02d:%02d" : "%c%02d%02d", sign, hh, mm);
}

void go_time_string(int64_t unix_secs, char *out, size_t n)
{
    time_t t = (time_t)unix_secs;
    struct tm tm;
    localtime_r(&t, &tm);
    char base[32], off[32];
    strftime(base, sizeof base, "%Y-%m-%d %H:%M:%S", &tm);
    tz_suffix(&tm, off, sizeof off, false);
    snprintf(out, n, "%s %s %s", base, off, tm.tm_zone ? tm.tm_zone : "UTC");
}

void go_time_rfc3339(int64_t unix_secs, char *out, size_t n)
{
    time_t t = (time_t)unix_secs;
    struct tm tm;
    localtime_r(&t, &tm);
    char base[32], off[32];
    strftime(base, sizeof base, "%Y-%m-%dT%H:%M:%S", &tm);
    tz_suffix(&tm, off, sizeof off, true);
    snprintf(out, n, "%s%s", base, off);
}

char *time_arg_to_api(const char *s)
{
    bool numeric = *s != 0;
    for (const char *p = s; *p; p++)
        if (!isdigit((unsigned char)*p) && *p != '.') numeric = false;
    if (numeric) return xstrdup(s);
    int64_t ns = parse_time_arg(s, now_ns());
    if (ns < 0) return NULL;
    return xasprintf("%lld.%09lld", (long long)(ns / 1000000000LL), (long long)(ns % 1000000000LL));
}

/* ---- JSON text ---- */

static void indent_nl(sbuf *out, int depth)
{
    sbuf_adds(out, "\n");
    for (int i = 0; i < depth; i++) sbuf_adds(out, "    ");
}

void json_indent(sbuf *out, const char *raw, size_t len)
{
    int depth = 0;
    bool in_str = false, need_indent = false;
    for (size_t i = 0; i < len; i++) {
        char c = raw[i];
        if (in_str) {
            sbuf_add(out, &c, 1);
            if (c == '\\' && i + 1 < len)
                sbuf_add(out, &raw[++i], 1);
            else if (c == '"')
                in_str = false;
            continue;
        }
        if (c == ' ' || c == '\t' || c == '\n' || c == '\r') continue;
        if (need_indent && c != ']' && c != '}') {
            need_indent = false;
            indent_nl(out, ++depth);
        }
        switch (c) {
        case '"':
            in_str = true;
            sbuf_add(out, &c, 1);
            break;
        case '{':
        case '[':
            sbuf_add(out, &c, 1);
            need_indent = true;
            break;
        case ',':
            sbuf_add(out, &c, 1);
            indent_nl(out, depth);
            break;
        case ':':
            sbuf_adds(out, ": ");
            break;
        case '}':
        case ']':
            if (need_indent)
                need_indent = false; /* empty: {} [] */
            else
                indent_nl(out, --depth);
            sbuf_add(out, &c, 1);
            break;
        default:
            sbuf_add(out, &c, 1);
        }
    }
}

size_t json_stream_feed(const char *data, size_t len, json_value_fn fn, void *ctx)
{
    size_t off = 0;
    for (;;) {
        while (off < len && isspace((unsigned char)data[off])) off++;
        if (off >= len) return off;
        json_error_t je;
        json_t *v = json_loadb(data + off, len - off, JSON_DISABLE_EOF_CHECK, &je);
        if (!v) {
            /* A value split across reads: wait for more, unless it can
             * never parse (then skip the line so the stream goes on). */
            const char *nl = memchr(data + off, '\n', len - off);
            if (!nl) return off;
            off = (size_t)(nl - data) + 1;
            continue;
        }
        off += je.position;
        fn(ctx, v);
        json_decref(v);
    }
}

/* ---- jsonmessage stream (docker's pkg/jsonmessage, simplified) ---- */

static bool has_progress(const json_t *msg)
{
    const char *p = jstr(msg, "progress");
    json_t *d = json_object_get(msg, "progressDetail");
    return (p && *p) || (json_is_object(d) && json_object_size(d) > 0);
}

void jsonmsg_print(jsonmsg *m, json_t *msg)
{
    FILE *out = m->out ? m->out : stdout;
    json_t *ed = json_object_get(msg, "errorDetail");
    const char *err = jstr(ed, "message");
    if (!err) err = jstr(msg, "error");
    if (err) {
        if (!m->error) m->error = xstrdup(err);
        return;
    }
    if (m->on_msg) m->on_msg(m, msg);
    bool prog = has_progress(msg);
    if (prog && !m->tty) return;
    const char *id = jstr(msg, "id"), *status = jstr(msg, "status"), *stream = jstr(msg, "stream");
    if (prog)
        fputs("\r\033[2K", out);
    else if (m->on_progress_line)
        fputs("\n", out);
    m->on_progress_line = prog;
    if (id && *id) fprintf(out, "%s: ", id);
    if (prog) {
        fprintf(out, "%s %s\r", status ? status : "",
                jstr(msg, "progress") ? jstr(msg, "progress") : "");
    } else if (stream && *stream) {
        fputs(stream, out);
    } else if (status || id) {
        fprintf(out, "%s\n", status ? status : "");
    }
    fflush(out);
}

static void jsonmsg_value(void *ctx, json_t *v)
{
    jsonmsg_print(ctx, v);
}

bool jsonmsg_feed(void *ctx, const char *data, size_t n)
{
    jsonmsg *m = ctx;
    sbuf_add(&m->pending, data, n);
    size_t used = json_stream_feed(m->pending.data, m->pending.len, jsonmsg_value, m);
    memmove(m->pending.data, m->pending.data + used, m->pending.len - used);
    m->pending.len -= used;
    return true;
}

/* ---- prompts ---- */

bool prompt_confirm(const char *message)
{
    printf("%s [y/N] ", message);
    fflush(stdout);
    char line[64];
    if (!fgets(line, sizeof line, stdin)) return false;
    char *p = line;
    while (isspace((unsigned char)*p)) p++;
    size_t n = strlen(p);
    while (n && isspace((unsigned char)p[n - 1])) p[--n] = 0;
    return !strcasecmp(p, "y") || !strcasecmp(p, "yes");
}
