/* log.c: the json-file log the shim writes, byte for byte as Docker's
 * json-file driver does: one JSON object per line,
 *   {"log":"hello\n","stream":"stdout","time":"2024-01-02T03:04:05.123456789Z"}
 * with Go's string escaping (\u003c for <, \ufffd for invalid UTF-8 ...).
 * Output is split on '\n' (the '\n' kept in "log"); a line longer than 16 KiB
 * is logged in 16 KiB pieces, and a partial last line is logged as is at the
 * end of the stream. Rotation: when an entry would make the file exceed
 * max-size, log.(N-2) -> log.(N-1) ... log -> log.1 (N = max-file) and a new
 * log is started; with max-file 1 the log is truncated instead. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "internal.h"

int slog_open(shim_log *l, const char *path, int64_t max_size, int max_file, berr *e)
{
    memset(l, 0, sizeof *l);
    l->fd = -1;
    l->max_size = max_size > 0 ? max_size : 0;
    l->max_file = max_file >= 1 ? max_file : 1;
    if (!path || !*path) return 0;
    l->fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
    if (l->fd < 0) return berr_errno(e, 500, "open log file %s", path);
    struct stat st;
    l->size = fstat(l->fd, &st) == 0 ? st.st_size : 0;
    l->path = xstrdup(path);
    return 0;
}

void slog_close(shim_log *l)
{
    if (l->fd >= 0) {
        slog_flush(l, 1);
        slog_flush(l, 2);
        close(l->fd);
    }
    l->fd = -1;
    free(l->path);
    l->path = NULL;
    sbuf_free(&l->partial[0]);
    sbuf_free(&l->partial[1]);
    sbuf_free(&l->enc);
}

/* ---- Go's encoding of the log bytes (moby jsonlog.ffjsonWriteJSONBytesAsString) ---- */
/* Length of the valid UTF-8 sequence at s (as Go's utf8.DecodeRune), 0 if invalid. */
static size_t utf8_valid(const unsigned char *s, size_t n, unsigned *cp)
{
    unsigned c = s[0];
    size_t len;
    unsigned lo = 0x80, hi = 0xBF;
    if (c < 0xC2) return 0;
    if (c < 0xE0)
        len = 2, *cp = c & 0x1F;
    else if (c < 0xF0)
        len = 3, *cp = c & 0x0F, lo = c == 0xE0 ? 0xA0 : lo, hi = c == 0xED ? 0x9F : hi;
    else if (c < 0xF5)
        len = 4, *cp = c & 0x07, lo = c == 0xF0 ? 0x90 : lo, hi = c == 0xF4 ? 0x8F : hi;
    else
        return 0;
    if (n < len || s[1] < lo || s[1] > hi) return 0;
    for (size_t i = 1; i < len; i++) {
        if (i > 1 && (s[i] < 0x80 || s[i] > 0xBF)) return 0;
        *cp = (*cp << 6) | (s[i] & 0x3F);
    }
    return len;
}

static void encode_string(sbuf *out, const unsigned char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    size_t start = 0, i = 0;
    sbuf_add(out, "\"", 1);
    while (i < n) {
        unsigned char b = s[i];
        char esc[8];
        size_t esclen = 0, adv = 1;
        unsigned cp = 0;
        if (b < 0x80) {
            if (b >= 0x20 && b != '\\' && b != '"' && b != '<' && b != '>' && b != '&') {
                i++;
                continue;
            }
            if (b == '\\' || b == '"')
                esc[0] = '\\', esc[1] = (char)b, esclen = 2;
            else if (b == '\n')
                memcpy(esc, "\\n", 2), esclen = 2;
            else if (b == '\r')
                memcpy(esc, "\\r", 2), esclen = 2;
            else
                memcpy(esc, "\\u00", 4), esc[4] = hex[b >> 4], esc[5] = hex[b & 15], esclen = 6;
        } else if (!(adv = utf8_valid(s + i, n - i, &cp))) {
            memcpy(esc, "\\ufffd", 6), esclen = 6, adv = 1;
        } else if (cp == 0x2028 || cp == 0x2029) {
            memcpy(esc, "\\u202", 5), esc[5] = hex[cp & 15], esclen = 6;
        } else {
            i += adv;
            continue;
        }
        sbuf_add(out, s + start, i - start);
        sbuf_add(out, esc, esclen);
        i += adv;
        start = i;
    }
    sbuf_add(out, s + start, n - start);
    sbuf_add(out, "\"", 1);
}

static void encode_entry(sbuf *out, const char *line, size_t n, const char *stream, const char *ts)
{
    sbuf_add(out, "{\"log\":", 7);
    encode_string(out, (const unsigned char *)line, n);
    sbuf_add(out, ",\"stream\":\"", 11);
    sbuf_adds(out, stream);
    sbuf_add(out, "\",\"time\":\"", 10);
    sbuf_adds(out, ts);
    sbuf_add(out, "\"}\n", 3);
}

void slog_encode(sbuf *out, const char *line, size_t n, const char *stream, int64_t ns)
{
    char ts[64];
    fmt_rfc3339nano(ns, ts, sizeof ts);
    encode_entry(out, line, n, stream, ts);
}

/* ---- writing and rotation ---- */
static void write_pending(shim_log *l)
{
    if (!l->enc.len) return;
    if (write_all(l->fd, l->enc.data, l->enc.len) == (ssize_t)l->enc.len)
        l->size += (int64_t)l->enc.len;
    else
        log_warn("shim: write log %s: %s", l->path, strerror(errno));
    l->enc.len = 0;
}

static void rotate(shim_log *l)
{
    if (l->max_file > 1) {
        char *from = NULL, *to = xasprintf("%s.%d", l->path, l->max_file - 1);
        unlink(to);
        for (int i = l->max_file - 1; i >= 1; i--) {
            from = i > 1 ? xasprintf("%s.%d", l->path, i - 1) : xstrdup(l->path);
            if (rename(from, to) < 0 && errno != ENOENT)
                log_warn("shim: rotate %s: %s", from, strerror(errno));
            free(to);
            to = from;
        }
        free(to);
    }
    int fd = open(l->path, O_WRONLY | O_APPEND | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
    if (fd < 0) {
        log_warn("shim: reopen log %s: %s", l->path, strerror(errno));
        return; /* keep writing to the old file rather than lose output */
    }
    close(l->fd);
    l->fd = fd;
    l->size = 0;
}

/* Adds one entry, rotating first when it would not fit (an entry alone in
 * an empty file is written whatever its size). */
static void add_entry(shim_log *l, int stream, const char *p, size_t n)
{
    size_t before = l->enc.len;
    encode_entry(&l->enc, p, n, stream == 2 ? "stderr" : "stdout", l->ts);
    size_t entry = l->enc.len - before;
    if (!l->max_size || l->size + (int64_t)l->enc.len <= l->max_size) return;
    if (l->size + (int64_t)before == 0) return;
    l->enc.len = before; /* what was there goes to the old file */
    write_pending(l);
    memmove(l->enc.data, l->enc.data + before, entry);
    l->enc.len = entry;
    rotate(l);
}

/* Entries of SLOG_PARTIAL_MAX from the front of part while more than
 * `keep` bytes remain (Docker splits long lines at 16 KiB). */
static void split_partial(shim_log *l, int stream, sbuf *part, size_t keep)
{
    size_t off = 0;
    while (part->len - off > keep) {
        add_entry(l, stream, part->data + off, SLOG_PARTIAL_MAX);
        off += SLOG_PARTIAL_MAX;
    }
    memmove(part->data, part->data + off, part->len - off);
    part->len -= off;
}

void slog_data(shim_log *l, int stream, const char *p, size_t n)
{
    if (l->fd < 0 || n == 0) return;
    sbuf *part = &l->partial[stream == 2];
    fmt_rfc3339nano(now_ns(), l->ts, sizeof l->ts); /* one time for what one read brought */
    while (n) {
        const char *nl = memchr(p, '\n', n);
        if (!nl) {
            sbuf_add(part, p, n);
            split_partial(l, stream, part, SLOG_PARTIAL_MAX - 1);
            break;
        }
        size_t len = (size_t)(nl - p) + 1;
        if (!part->len && len <= SLOG_PARTIAL_MAX) {
            add_entry(l, stream, p, len); /* a whole line: no copy */
        } else { /* the line ends here: 16 KiB pieces, the last with its newline */
            sbuf_add(part, p, len);
            split_partial(l, stream, part, SLOG_PARTIAL_MAX);
            add_entry(l, stream, part->data, part->len);
            part->len = 0;
        }
        p += len, n -= len;
    }
    write_pending(l);
    if (!part->len && part->cap > 4 * SLOG_PARTIAL_MAX) sbuf_free(part);
}

void slog_flush(shim_log *l, int stream)
{
    sbuf *part = &l->partial[stream == 2];
    if (l->fd < 0 || !part->len) return;
    fmt_rfc3339nano(now_ns(), l->ts, sizeof l->ts);
    add_entry(l, stream, part->data, part->len);
    write_pending(l);
    sbuf_free(part);
}
