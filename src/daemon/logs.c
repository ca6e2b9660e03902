/* logs.c: reads a container's json-file log (as berth-shim writes it, in
 * Docker's format) for GET /containers/{id}/logs and attach?logs=1:
 * rotated files oldest first, stream/since/until/tail filters, follow. */
#include "daemon/logs.h"

#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/jsonutil.h"

/* Frames a payload Docker's way: [stream,0,0,0,len(be32)] + payload. */
int logs_frame(sbuf *out, int stream, const void *p, size_t n)
{
    unsigned char h[8] = {(unsigned char)stream, 0, 0, 0};
    uint32_t be = htonl((uint32_t)n);
    memcpy(h + 4, &be, 4);
    sbuf_add(out, h, 8);
    sbuf_add(out, p, n);
    return 0;
}

/* One log line -> out (framed or raw); returns 1 when emitted. */
static int emit_line(const char *line, const logs_opts *o, sbuf *out)
{
    json_t *j = json_fast_loadb(line, strlen(line), 0, NULL);
    if (!j) return 0;
    const char *log = jstr(j, "log"), *stream = jstr(j, "stream"), *time = jstr(j, "time");
    int sid = stream && !strcmp(stream, "stderr") ? 2 : 1;
    int64_t ts = time ? parse_rfc3339(time) : 0;
    int rc = 0;
    if (log && ((sid == 1 && o->out) || (sid == 2 && o->err)) && (!o->since || ts >= o->since) &&
        (!o->until || ts <= o->until)) {
        sbuf line_out = {0};
        if (o->timestamps) {
            char tb[64];
            fmt_rfc3339nano(ts, tb, sizeof tb);
            sbuf_printf(&line_out, "%s ", tb);
        }
        sbuf_adds(&line_out, log);
        if (o->tty)
            sbuf_add(out, line_out.data, line_out.len);
        else
            logs_frame(out, sid, line_out.data, line_out.len);
        sbuf_free(&line_out);
        rc = 1;
    }
    json_decref(j);
    return rc;
}

/* Reads the lines of one file from *off; returns them (NUL-separated
 * by '\n' kept) and advances *off past the last complete line. */
static char *read_from(const char *path, off_t *off)
{
    FILE *f = fopen(path, "re");
    if (!f) return NULL;
    if (fseeko(f, *off, SEEK_SET) < 0) {
        fclose(f);
        return NULL;
    }
    sbuf b = {0};
    char buf[65536];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, f)) > 0) sbuf_add(&b, buf, n);
    fclose(f);
    if (!b.data) return NULL;
    char *last = strrchr(b.data, '\n');
    if (!last) {
        sbuf_free(&b);
        return NULL;
    }
    last[1] = 0;
    *off += (off_t)(last + 1 - b.data);
    return sbuf_steal(&b);
}

/* Collects the lines of all files (rotated first) into an array. */
static char **all_lines(const char *path, size_t *n, off_t *end_off)
{
    char **lines = NULL;
    size_t cnt = 0, cap = 0;
    for (int i = 32; i >= 0; i--) {
        char *p = i ? xasprintf("%s.%d", path, i) : xstrdup(path);
        off_t off = 0;
        char *data = read_from(p, &off);
        if (i == 0) *end_off = off;
        free(p);
        if (!data) continue;
        char *save = NULL;
        for (char *l = strtok_r(data, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
            if (cnt == cap) cap = cap ? cap * 2 : 256, lines = xrealloc(lines, cap * sizeof *lines);
            lines[cnt++] = xstrdup(l);
        }
        free(data);
    }
    *n = cnt;
    return lines;
}

int logs_write(const char *path, const logs_opts *o, logs_sink sink, void *arg, off_t *end_off)
{
    size_t n = 0;
    off_t end = 0;
    char **lines = path ? all_lines(path, &n, &end) : NULL;
    /* tail counts emitted lines, so filter from the end */
    size_t start = 0;
    if (o->tail >= 0) {
        size_t kept = 0;
        sbuf scratch = {0};
        for (size_t i = n; i > 0 && kept < (size_t)o->tail; i--) {
            scratch.len = 0;
            if (emit_line(lines[i - 1], o, &scratch)) kept++;
            start = i - 1;
        }
        if (kept == 0) start = n;
        sbuf_free(&scratch);
    }
    int rc = 0;
    sbuf out = {0};
    for (size_t i = start; i < n && rc == 0; i++) {
        emit_line(lines[i], o, &out);
        if (out.len > 65536) rc = sink(arg, out.data, out.len), out.len = 0;
    }
    if (rc == 0 && out.len) rc = sink(arg, out.data, out.len);
    sbuf_free(&out);
    for (size_t i = 0; i < n; i++) free(lines[i]);
    free(lines);
    if (end_off) *end_off = end;
    return rc;
}

int logs_follow(const char *path, off_t *off, const logs_opts *o, logs_sink sink, void *arg)
{
    struct stat st;
    if (stat(path, &st) < 0) return 0;
    if (st.st_size < *off) *off = 0; /* rotated: start the new file */
    if (st.st_size == *off) return 0;
    char *data = read_from(path, off);
    if (!data) return 0;
    sbuf out = {0};
    char *save = NULL;
    for (char *l = strtok_r(data, "\n", &save); l; l = strtok_r(NULL, "\n", &save))
        emit_line(l, o, &out);
    free(data);
    int rc = out.len ? sink(arg, out.data, out.len) : 0;
    sbuf_free(&out);
    return rc;
}
