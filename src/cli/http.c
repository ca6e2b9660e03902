/* http.c: the berth CLI's HTTP/1.1 wire format, the only one in the CLI.
 *
 * Owns connections to the daemon (UNIX socket or TCP), request heads,
 * request bodies (Content-Length, or chunked from a file descriptor, read
 * and sent 64 KiB at a time while any early response bytes are taken in),
 * status lines and response headers, response bodies (Content-Length,
 * chunked or up to EOF) collected in a buffer or passed to a callback as
 * they arrive, and whether a connection may carry another request
 * (keep-alive). client.c sends the API requests through it over one
 * kept-alive connection; stream.c sends the hijacked attach/exec requests
 * and the wait requests of run/start, each on a connection of its own. */
#include <errno.h>
#include <netdb.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/http.h"

/* ---- connections ---- */

static int connect_unix(const char *path)
{
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    if (strlen(path) >= sizeof a.sun_path) {
        errno = ENAMETOOLONG;
        return -1;
    }
    memcpy(a.sun_path, path, strlen(path) + 1);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return -1;
    if (connect(fd, (struct sockaddr *)&a, sizeof a) < 0) {
        int e = errno;
        close(fd);
        errno = e;
        return -1;
    }
    return fd;
}

/* base is "http://host:port" or "http://[v6]:port". */
static int connect_tcp(const char *base)
{
    const char *hp = str_starts(base, "http://") ? base + 7 : base;
    const char *colon = strrchr(hp, ':');
    if (!colon) return -1;
    char *host = xstrndup(hp, (size_t)(colon - hp));
    if (host[0] == '[') {
        memmove(host, host + 1, strlen(host));
        host[strcspn(host, "]")] = 0;
    }
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *res = NULL;
    int fd = -1;
    if (getaddrinfo(host, colon + 1, &hints, &res) == 0) {
        for (struct addrinfo *ai = res; ai && fd < 0; ai = ai->ai_next) {
            fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
            if (fd >= 0 && connect(fd, ai->ai_addr, ai->ai_addrlen) < 0) {
                close(fd);
                fd = -1;
            }
        }
        freeaddrinfo(res);
    }
    free(host);
    return fd;
}

int hconn_open(client *c, hconn *h)
{
    memset(h, 0, sizeof *h);
    h->clen = -1;
    trace_mark("cli connect");
    h->fd = c->nspare ? c->spare[--c->nspare]
            : c->sock ? connect_unix(c->sock)
                      : connect_tcp(c->base);
    if (h->fd < 0) {
        client_conn_error(c, NULL);
        return -1;
    }
    return 0;
}

void client_preconnect(client *c, int n)
{
    while (c->nspare < n && c->nspare < 2) {
        int fd = c->sock ? connect_unix(c->sock) : connect_tcp(c->base);
        if (fd < 0) return; /* the request that needs one reports it */
        c->spare[c->nspare++] = fd;
    }
}

void hconn_close(hconn *h)
{
    if (h->fd >= 0) close(h->fd);
    h->fd = -1;
    sbuf_free(&h->in);
    h->off = 0;
    free(h->content_type);
    h->content_type = NULL;
}

bool hconn_idle_ok(const hconn *h)
{
    struct pollfd p = {.fd = h->fd, .events = POLLIN};
    return h->fd >= 0 && poll(&p, 1, 0) == 0;
}

bool hconn_reusable(const hconn *h)
{
    return h->fd >= 0 && h->done && !h->close && !h->eof && h->status != 101 && h->off == h->in.len;
}

/* Drops the consumed bytes at the front of h->in. */
static void consume(hconn *h, size_t n)
{
    h->off += n;
    if (h->off == h->in.len) {
        h->off = h->in.len = 0;
        if (h->in.data) h->in.data[0] = 0;
    } else if (h->off >= 65536) {
        memmove(h->in.data, h->in.data + h->off, h->in.len - h->off + 1);
        h->in.len -= h->off;
        h->off = 0;
    }
}

void hconn_reset(hconn *h)
{
    consume(h, 0);
    if (h->off) {
        memmove(h->in.data, h->in.data + h->off, h->in.len - h->off + 1);
        h->in.len -= h->off;
        h->off = 0;
    }
    h->status = 0;
    h->clen = -1;
    h->chunked = h->close = h->done = false;
    h->api_version[0] = 0;
    free(h->content_type);
    h->content_type = NULL;
}

/* Reads more bytes into h->in; 1 read, 0 EOF, -1 error or timeout. */
static int hconn_fill(hconn *h, int timeout_ms)
{
    struct pollfd p = {.fd = h->fd, .events = POLLIN};
    int rc;
    do rc = poll(&p, 1, timeout_ms);
    while (rc < 0 && errno == EINTR);
    if (rc == 0) errno = ETIMEDOUT;
    if (rc <= 0) return -1;
    char buf[65536];
    ssize_t n;
    do n = read(h->fd, buf, sizeof buf);
    while (n < 0 && errno == EINTR);
    if (n < 0) return -1;
    if (n == 0) {
        h->eof = true;
        return 0;
    }
    sbuf_add(&h->in, buf, (size_t)n);
    return 1;
}

/* ---- requests ---- */

/* Waits until the socket takes more bytes; what the peer sends meanwhile
 * (an early response) is read so that neither side blocks the other. */
static int wait_writable(hconn *h)
{
    struct pollfd p = {.fd = h->fd, .events = POLLOUT | (h->eof ? 0 : POLLIN)};
    if (poll(&p, 1, -1) < 0) return errno == EINTR ? 0 : -1;
    if ((p.revents & POLLIN) && !(p.revents & POLLOUT)) return hconn_fill(h, 0) < 0 ? -1 : 0;
    return 0;
}

int hconn_write(hconn *h, const void *buf, size_t n)
{
    const char *p = buf;
    while (n) {
        ssize_t k = send(h->fd, p, n, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (k > 0) {
            p += k;
            n -= (size_t)k;
        } else if (k < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            if (wait_writable(h) < 0) return -1;
        } else if (k == 0 || errno != EINTR) {
            return -1;
        }
    }
    return 0;
}

int hconn_send(client *c, hconn *h, const hhead *hd)
{
    sbuf r = {0};
    sbuf_printf(&r,
                "%s %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: Berth-Client/%s (linux)\r\n"
                "Accept: */*\r\n",
                hd->method, hd->target, c->sock ? "localhost" : c->base + 7, BERTH_VERSION);
    if (hd->upgrade) sbuf_adds(&r, "Connection: Upgrade\r\nUpgrade: tcp\r\n");
    if (hd->ctype) sbuf_printf(&r, "Content-Type: %s\r\n", hd->ctype);
    if (hd->chunked)
        sbuf_adds(&r, "Transfer-Encoding: chunked\r\n");
    else if (hd->length)
        sbuf_printf(&r, "Content-Length: %zu\r\n", hd->body_len);
    sbuf_adds(&r, "\r\n");
    if (hd->body && hd->body_len) sbuf_add(&r, hd->body, hd->body_len);
    h->no_body = !strcmp(hd->method, "HEAD");
    int rc = hconn_write(h, r.data, r.len);
    int e = errno;
    sbuf_free(&r);
    errno = e;
    return rc;
}

int hconn_send_fd(hconn *h, int fd)
{
    enum { MAX = 65536, PRE = 16 };
    char *buf = xmalloc(PRE + MAX + 2);
    int rc = 0;
    for (;;) {
        ssize_t n = read(fd, buf + PRE, MAX);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) {
            rc = -2;
            break;
        }
        if (n == 0) {
            rc = hconn_write(h, "0\r\n\r\n", 5);
            break;
        }
        char hex[PRE];
        int hl = snprintf(hex, sizeof hex, "%zx\r\n", (size_t)n);
        memcpy(buf + PRE - hl, hex, (size_t)hl);
        memcpy(buf + PRE + n, "\r\n", 2);
        if (hconn_write(h, buf + PRE - hl, (size_t)hl + (size_t)n + 2) < 0) {
            rc = -1;
            break;
        }
    }
    int e = errno;
    free(buf);
    errno = e;
    return rc;
}

int hconn_request(client *c, hconn *h, const char *method, const char *path, const char *ctype,
                  const char *body, bool upgrade)
{
    h->fd = -1;
    if (client_negotiate(c) < 0 || hconn_open(c, h) < 0) return -1;
    char *target = xasprintf("/v%s%s", c->api, path);
    hhead hd = {.method = method,
                .target = target,
                .ctype = ctype,
                .body = body,
                .body_len = body ? strlen(body) : 0,
                .length = true,
                .upgrade = upgrade};
    log_debug("%s %s (raw)", method, path);
    int rc = hconn_send(c, h, &hd);
    free(target);
    if (rc < 0) {
        errorf("error during connect: %s", go_strerror(errno));
        hconn_close(h);
    }
    return rc;
}

/* ---- response heads ---- */

static void parse_header_line(hconn *h, const char *l, size_t n)
{
    const char *colon = memchr(l, ':', n);
    if (!colon) return;
    size_t kl = (size_t)(colon - l);
    const char *v = colon + 1;
    while (v < l + n && (*v == ' ' || *v == '\t')) v++;
    size_t vl = (size_t)(l + n - v);
    while (vl && (v[vl - 1] == ' ' || v[vl - 1] == '\t')) vl--;
    char *val = xstrndup(v, vl);
    if (kl == 14 && !strncasecmp(l, "Content-Length", kl))
        h->clen = strtoll(val, NULL, 10);
    else if (kl == 17 && !strncasecmp(l, "Transfer-Encoding", kl))
        h->chunked = strcasestr(val, "chunked") != NULL;
    else if (kl == 10 && !strncasecmp(l, "Connection", kl))
        h->close = h->close || strcasestr(val, "close") != NULL;
    else if (kl == 11 && !strncasecmp(l, "API-Version", kl))
        snprintf(h->api_version, sizeof h->api_version, "%s", val);
    else if (kl == 12 && !strncasecmp(l, "Content-Type", kl)) {
        free(h->content_type);
        h->content_type = val;
        val = NULL;
    }
    free(val);
}

/* Parses the head ending at end (its "\r\n\r\n"); -1 when malformed. */
static int parse_head(hconn *h, char *end)
{
    char *d = h->in.data;
    if (strncmp(d, "HTTP/1.", 7) || end - d < 12) return -1;
    h->close = d[7] == '0';
    h->status = strtol(d + 9, NULL, 10);
    char *l = memchr(d, '\n', (size_t)(end - d)) + 1;
    while (l < end) {
        char *e = memmem(l, (size_t)(end + 2 - l), "\r\n", 2);
        parse_header_line(h, l, (size_t)(e - l));
        l = e + 2;
    }
    h->off = (size_t)(end + 4 - d);
    return 0;
}

int hconn_head(hconn *h, int timeout_ms)
{
    for (;;) {
        char *d = h->in.data;
        char *end = d ? memmem(d, h->in.len, "\r\n\r\n", 4) : NULL;
        if (end) {
            if (parse_head(h, end) < 0) {
                errno = EPROTO;
                return -1;
            }
            if (h->status >= 200 || h->status == 101) return 0;
            hconn_reset(h); /* an interim 1xx response: the real one follows */
            continue;
        }
        if (h->in.len > 65536) errno = EPROTO;
        if (h->in.len > 65536 || hconn_fill(h, timeout_ms) <= 0) return -1;
    }
}

/* ---- response bodies ---- */

/* Passes n buffered bytes to fn and consumes them; 1 when fn said stop. */
static int deliver(hconn *h, size_t n, chunk_fn fn, void *ctx)
{
    bool go = !n || fn(ctx, h->in.data + h->off, n);
    consume(h, n);
    return go ? 0 : 1;
}

/* Passes the next left bytes of the stream to fn as they arrive. */
static int body_length(hconn *h, unsigned long long left, chunk_fn fn, void *ctx)
{
    while (left) {
        while (h->off >= h->in.len)
            if (hconn_fill(h, -1) <= 0) return -1;
        size_t n = h->in.len - h->off;
        if (n > left) n = (size_t)left;
        int rc = deliver(h, n, fn, ctx);
        if (rc) return rc;
        left -= n;
    }
    return 0;
}

/* Copies the next line (without its CRLF) into out, truncated to cap. */
static int take_line(hconn *h, char *out, size_t cap)
{
    char *nl;
    while (!h->in.data || !(nl = memchr(h->in.data + h->off, '\n', h->in.len - h->off)))
        if (hconn_fill(h, -1) <= 0) return -1;
    size_t n = (size_t)(nl - (h->in.data + h->off));
    size_t keep = n && nl[-1] == '\r' ? n - 1 : n;
    if (keep >= cap) keep = cap - 1;
    memcpy(out, h->in.data + h->off, keep);
    out[keep] = 0;
    consume(h, n + 1);
    return 0;
}

static int body_chunked(hconn *h, chunk_fn fn, void *ctx)
{
    char line[128];
    for (;;) {
        if (take_line(h, line, sizeof line) < 0) return -1;
        char *end;
        unsigned long long size = strtoull(line, &end, 16);
        if (end == line) {
            errno = EPROTO;
            return -1;
        }
        if (size == 0) break;
        int rc = body_length(h, size, fn, ctx);
        if (rc) return rc;
        if (take_line(h, line, sizeof line) < 0) return -1;
    }
    do { /* trailers up to the blank line */
        if (take_line(h, line, sizeof line) < 0) return -1;
    } while (line[0]);
    return 0;
}

static int body_eof(hconn *h, chunk_fn fn, void *ctx)
{
    for (;;) {
        int rc = deliver(h, h->in.len - h->off, fn, ctx);
        if (rc) return rc;
        int n = hconn_fill(h, -1);
        if (n <= 0) {
            h->close = true;
            return n;
        }
    }
}

int hconn_body_stream(hconn *h, chunk_fn fn, void *ctx)
{
    int rc;
    if (h->no_body || h->status == 204 || h->status == 304 || h->status < 200)
        rc = 0;
    else if (h->chunked)
        rc = body_chunked(h, fn, ctx);
    else if (h->clen >= 0)
        rc = body_length(h, (unsigned long long)h->clen, fn, ctx);
    else
        rc = body_eof(h, fn, ctx);
    h->done = rc == 0;
    return rc;
}

static bool sbuf_sink(void *ctx, const char *data, size_t n)
{
    sbuf_add(ctx, data, n);
    return true;
}

int hconn_body(hconn *h, sbuf *out)
{
    return hconn_body_stream(h, sbuf_sink, out) < 0 ? -1 : 0;
}

char *hconn_error(hconn *h)
{
    resp r = {.status = h->status};
    hconn_body(h, &r.body);
    char *m = resp_error_message(&r);
    sbuf_free(&r.body);
    return m;
}
