/* http.c: berthd's HTTP/1.1 server: connections, routing, bodies and
 * responses. The wire format (heads, targets, queries, chunked bodies) is
 * in http_parse.c.
 *
 * One accept thread per listening socket and one detached thread per
 * connection, which serves its requests one after the other (keep-alive):
 * read the head, match the route, read the body into its sink (memory,
 * a temp file, or nowhere), run the handler, write the response. Streams
 * and hijacked connections run their function in the connection thread
 * too, writing straight to the socket.
 *
 * Each connection has one buffer: the head is parsed in place at its start
 * and stays there (header and query pointers point into it) while the rest
 * of the buffer takes the body. Reads may take in bytes past the request
 * (a pipelined next request): they stay in the buffer for the next round.
 * For a hijack with "Upgrade: tcp" such bytes are the client's first stdin
 * bytes: when there are any, the hijack function gets one end of a
 * socketpair and a relay thread feeds it those bytes and then copies
 * between the pair and the client socket (rare: clients wait for the 101
 * before they send); otherwise it gets the client socket itself.
 *
 * Timeouts: a started request head must be complete within 60 s; idle
 * kept-alive connections, bodies, streams and hijacked connections have
 * none. http_stop shuts every connection's socket down, which ends what
 * waits on it, and waits up to 5 s for the connection threads. */
#include "http.h"

#include <errno.h>
#include <stdint.h>
#include <sys/mman.h>
#include <malloc.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "common/jsonutil.h"
#include "common/libarchive.h"
#include "daemon/http_parse.h"

#define MAX_MEM_BODY (32u << 20)
#define CONN_BUF (HP_HEAD_MAX + (32u << 10)) /* a full head leaves 32 KiB for body reads */
#define HEAD_TIMEOUT_MS 60000
#define STOP_WAIT_MS 5000
#define CONN_STACK (1u << 20)
#define RELAY_STACK (256u << 10)
#define RELAY_BUF (64u << 10)

/* Shutdown: streams see their client as gone, hijacked sockets are shut
 * down, so every connection thread ends. */
static atomic_int shutting_down;
static pthread_mutex_t hj_mu = PTHREAD_MUTEX_INITIALIZER;
static int hj_socks[1024];
static int n_hj;

static void hj_track(int fd, bool add)
{
    pthread_mutex_lock(&hj_mu);
    if (add && n_hj < 1024) hj_socks[n_hj++] = fd;
    for (int i = 0; !add && i < n_hj; i++)
        if (hj_socks[i] == fd) hj_socks[i] = hj_socks[--n_hj];
    pthread_mutex_unlock(&hj_mu);
}

/* Live connections of all servers: conn_mu guards every server's list and
 * count; conn_cv is signalled when a connection ends. Global so that a
 * connection thread never touches its server after it has unlinked. */
static pthread_mutex_t conn_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t conn_cv;
static pthread_once_t conn_cv_once = PTHREAD_ONCE_INIT;

typedef struct http_conn http_conn;

struct http_server {
    int lfd;
    int stop[2]; /* a pipe: written to stop the accept thread */
    pthread_t accept_thread;
    const route *routes;
    char *tmpdir;
    http_conn *conns; /* with conn_mu */
    int nconns;
};

enum resp_kind { RESP_BYTES, RESP_STREAM, RESP_HIJACK };

struct http_resp {
    enum resp_kind kind;
    sbuf hdr;  /* "Name: value\r\n" lines: Content-Type and resp_header()'s */
    sbuf body; /* RESP_BYTES */
    stream_fn sfn;
    hijack_fn hfn;
    void *arg;
    void (*free_arg)(void *);
};

struct qarg {
    const char *key, *val;
};

struct http_conn {
    http_server *s;
    int fd;
    http_conn *prev, *next; /* in s->conns, with conn_mu */
    char *buf;              /* CONN_BUF bytes; unread input is buf[off..len) */
    size_t off, len;
    hp_head head;
    struct qarg *q; /* the query's arguments, decoded in place in buf */
    size_t nq, qcap;
    int minor;       /* HTTP/1.<minor> */
    bool keep_alive; /* serve another request after this one */
    bool gone;       /* a write failed: the client went away */
    bool linger;     /* closing with input unread: drain it a little first */
    char root[2];    /* "/": the path of "/v1.41" */
    req r;
    struct http_resp resp;
    sbuf out; /* the response head being built */
};

/* ---- socket output ---- */

/* Writes all of iov (modified). -1 when the client went away. */
static int send_iov(int fd, struct iovec *iov, int n)
{
    while (n > 0) {
        struct msghdr m = {.msg_iov = iov, .msg_iovlen = (size_t)n};
        ssize_t w = sendmsg(fd, &m, MSG_NOSIGNAL);
        if (w < 0) {
            if (errno == EINTR) continue;
            return -1;
        }
        while (n > 0 && (size_t)w >= iov->iov_len) {
            w -= (ssize_t)iov->iov_len;
            iov++, n--;
        }
        if (n > 0) {
            iov->iov_base = (char *)iov->iov_base + w;
            iov->iov_len -= (size_t)w;
        }
    }
    return 0;
}

static int send_buf(int fd, const void *p, size_t len)
{
    struct iovec iov = {(void *)p, len};
    return send_iov(fd, &iov, 1);
}

/* ---- routing ---- */

typedef struct seg {
    const char *p;
    size_t n;
} seg;

/* Splits at '/', skipping empty segments. -1 when there are more than max. */
static int split_segs(const char *s, seg *out, int max)
{
    int n = 0;
    for (;;) {
        while (*s == '/') s++;
        if (!*s) return n;
        if (n == max) return -1;
        size_t l = strcspn(s, "/");
        out[n++] = (seg){s, l};
        s += l;
    }
}

static char *join_segs(const seg *ss, int from, int to)
{
    size_t len = 0;
    for (int i = from; i < to; i++) len += ss[i].n + 1;
    char *p = xmalloc(len ? len : 1), *w = p;
    for (int i = from; i < to; i++) {
        if (i > from) *w++ = '/';
        memcpy(w, ss[i].p, ss[i].n);
        w += ss[i].n;
    }
    *w = 0;
    return p;
}

/* Matches the path's segments against pattern; fills r->params. */
static bool route_match(const char *pattern, const seg *ss, int ns, req *r)
{
    seg ps[16];
    int np = split_segs(pattern, ps, 16), j = 0, nparams = 0;
    int from[REQ_MAX_PARAMS], to[REQ_MAX_PARAMS];
    if (np < 0) return false;
    for (int i = 0; i < np; i++) {
        if (ps[i].p[0] == '{') {
            bool star = ps[i].n > 3 && ps[i].p[ps[i].n - 2] == '*';
            int take = star ? ns - j - (np - i - 1) : 1;
            if (take < 1 || j + take > ns || nparams >= REQ_MAX_PARAMS) return false;
            from[nparams] = j;
            to[nparams++] = j += take;
        } else if (j >= ns || ss[j].n != ps[i].n || memcmp(ss[j].p, ps[i].p, ps[i].n)) {
            return false;
        } else {
            j++;
        }
    }
    if (j != ns) return false;
    for (int k = 0; k < nparams; k++) r->params[k] = join_segs(ss, from[k], to[k]);
    r->nparams = nparams;
    return true;
}

/* Strips "/v1.41" style prefixes; returns 0 or sets an error response. */
static int strip_version(http_conn *c, char *url)
{
    req *r = &c->r;
    int major, minor, n = 0;
    r->api_minor = 41;
    if (url[0] == '/' && url[1] == 'v' && sscanf(url, "/v%d.%d%n", &major, &minor, &n) == 2 &&
        (url[n] == '/' || url[n] == 0)) {
        url += n;
        if (major != 1 || minor > 41) {
            resp_error(r, 400,
                       "client version %d.%d is too new. Maximum supported API version is %s",
                       major, minor, BERTH_API_VERSION);
            return -1;
        }
        if (minor < 24) {
            resp_error(r, 400,
                       "client version %d.%d is too old. Minimum supported API version is %s, "
                       "please upgrade your client to a newer version",
                       major, minor, BERTH_MIN_API_VERSION);
            return -1;
        }
        r->api_minor = minor;
    }
    if (!*url) url = c->root;
    size_t l = strlen(url);
    while (l > 1 && url[l - 1] == '/') url[--l] = 0;
    r->path = url;
    return 0;
}

static const route *find_route(http_server *s, req *r)
{
    seg ss[64];
    int ns = split_segs(r->path, ss, 64);
    if (ns < 0) return NULL;
    for (const route *rt = s->routes; rt->pattern; rt++) {
        if (!route_match(rt->pattern, ss, ns, r)) continue;
        if (!strcmp(rt->method, r->method) || !strcmp(rt->method, "*") ||
            (!strcmp(r->method, "HEAD") && !strcmp(rt->method, "GET")))
            return rt;
        for (int k = 0; k < r->nparams; k++) free(r->params[k]), r->params[k] = NULL;
        r->nparams = 0;
    }
    return NULL;
}

/* ---- responses: building ---- */

static void resp_reset(struct http_resp *p)
{
    if (p->kind != RESP_BYTES && p->free_arg) p->free_arg(p->arg);
    p->kind = RESP_BYTES;
    p->sfn = NULL;
    p->hfn = NULL;
    p->arg = NULL;
    p->free_arg = NULL;
    p->hdr.len = 0;
    p->body.len = 0;
}

static void add_hdr(sbuf *b, const char *name, const char *value)
{
    sbuf_adds(b, name);
    sbuf_add(b, ": ", 2);
    sbuf_adds(b, value);
    sbuf_add(b, "\r\n", 2);
}

/* Starts the response of r: replaces any earlier one. */
static struct http_resp *set_resp(req *r, unsigned status, enum resp_kind kind, const char *ctype)
{
    struct http_resp *p = &r->conn->resp;
    resp_reset(p);
    p->kind = kind;
    r->resp = p;
    r->status = status;
    if (ctype) add_hdr(&p->hdr, "Content-Type", ctype);
    return p;
}

void resp_bytes(req *r, unsigned status, const char *ctype, const void *data, size_t len)
{
    struct http_resp *p = set_resp(r, status, RESP_BYTES, ctype);
    sbuf_add(&p->body, data, len);
}

static int dump_cb(const char *buf, size_t size, void *data)
{
    sbuf_add(data, buf, size);
    return 0;
}

/* j + "\n" into b */
static void dump_json(sbuf *b, json_t *j)
{
    size_t l = b->len;
    size_t flags = JSON_COMPACT | JSON_ENCODE_ANY | JSON_PRESERVE_ORDER;
    if (!j ||
        (json_fast_dump_sbuf(j, flags, b) < 0 && json_dump_callback(j, dump_cb, b, flags) < 0)) {
        b->len = l;
        sbuf_adds(b, "null");
    }
    sbuf_add(b, "\n", 1);
}

void resp_json(req *r, unsigned status, json_t *j)
{
    struct http_resp *p = set_resp(r, status, RESP_BYTES, "application/json");
    dump_json(&p->body, j);
    json_decref(j);
}

void resp_error(req *r, unsigned status, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (status >= 500) log_error("%s %s: %s", r->method, r->path ? r->path : "", msg);
    resp_json(r, status, json_pack("{s:s}", "message", msg));
}

void resp_berr(req *r, const berr *e)
{
    resp_error(r, e->status ? (unsigned)e->status : 500, "%s", e->msg);
}

void resp_empty(req *r, unsigned status)
{
    resp_bytes(r, status, NULL, "", 0);
}

void resp_header(req *r, const char *name, const char *value)
{
    if (!r->resp || strpbrk(name, "\r\n:") || strpbrk(value, "\r\n")) return;
    add_hdr(&r->resp->hdr, name, value);
}

void resp_stream(req *r, unsigned status, const char *ctype, stream_fn fn, void *arg,
                 void (*free_arg)(void *))
{
    struct http_resp *p = set_resp(r, status, RESP_STREAM, ctype);
    p->sfn = fn;
    p->arg = arg;
    p->free_arg = free_arg;
}

bool req_wants_upgrade(req *r)
{
    const char *u = req_header(r, "Upgrade");
    return u && (!strcasecmp(u, "tcp") || !strcasecmp(u, "h2c"));
}

void resp_hijack(req *r, const char *ctype, hijack_fn fn, void *arg, void (*free_arg)(void *))
{
    struct http_resp *p = set_resp(r, req_wants_upgrade(r) ? 101 : 200, RESP_HIJACK, ctype);
    p->hfn = fn;
    p->arg = arg;
    p->free_arg = free_arg;
}

/* ---- responses: writing ---- */

static void http_date(char *out, size_t n)
{
    time_t t = time(NULL);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out, n, "%a, %d %b %Y %H:%M:%S GMT", &tm);
}

/* Status line, standard headers, the response's own headers; the caller
 * adds framing headers and the empty line. */
static sbuf *head_begin(http_conn *c, unsigned status)
{
    sbuf *o = &c->out;
    char line[128];
    o->len = 0;
    snprintf(line, sizeof line, "HTTP/1.1 %u %s\r\n", status, hp_reason(status));
    sbuf_adds(o, line);
    sbuf_adds(o, "Api-Version: " BERTH_API_VERSION "\r\n"
                 "Docker-Experimental: false\r\n"
                 "Ostype: linux\r\n"
                 "Server: Berth/" BERTH_VERSION " (linux)\r\n"
                 "Date: ");
    http_date(line, sizeof line);
    sbuf_adds(o, line);
    sbuf_add(o, "\r\n", 2);
    sbuf_add(o, c->resp.hdr.data, c->resp.hdr.len);
    return o;
}

/* Connection header for a response that keeps the connection (or not). */
static void head_connection(http_conn *c, sbuf *o)
{
    if (!c->keep_alive)
        sbuf_adds(o, "Connection: close\r\n");
    else if (c->minor == 0)
        sbuf_adds(o, "Connection: keep-alive\r\n");
}

static bool is_head(http_conn *c)
{
    return !strcmp(c->r.method, "HEAD");
}

static void send_bytes(http_conn *c)
{
    unsigned st = c->r.status;
    bool nobody = st < 200 || st == 204 || st == 304;
    sbuf *o = head_begin(c, st);
    if (!nobody) {
        char cl[48];
        snprintf(cl, sizeof cl, "Content-Length: %zu\r\n", c->resp.body.len);
        sbuf_adds(o, cl);
    }
    head_connection(c, o);
    sbuf_add(o, "\r\n", 2);
    struct iovec iov[2] = {{o->data, o->len}, {c->resp.body.data, c->resp.body.len}};
    int n = nobody || is_head(c) || !c->resp.body.len ? 1 : 2;
    if (send_iov(c->fd, iov, n) < 0) c->gone = true;
}

/* ---- streams ---- */

struct stream {
    http_conn *c;
    bool chunked;       /* HTTP/1.1: chunked; 1.0: raw, then close */
    atomic_bool failed; /* a write failed */
    int pipe_w, pipe_r; /* stream_fd: the relay thread reads pipe_r */
    pthread_t relay;
};

static int send_chunk(stream *st, const void *p, size_t n)
{
    if (atomic_load(&st->failed)) return -1;
    if (n == 0) return 0; /* an empty chunk would end the body */
    char hdr[24];
    int hl = snprintf(hdr, sizeof hdr, "%zx\r\n", n);
    struct iovec iov[3] = {{hdr, (size_t)hl}, {(void *)p, n}, {"\r\n", 2}};
    int rc = st->chunked ? send_iov(st->c->fd, iov, 3) : send_iov(st->c->fd, iov + 1, 1);
    if (rc < 0) atomic_store(&st->failed, true);
    return rc;
}

int stream_write(stream *st, const void *p, size_t n)
{
    if (atomic_load(&shutting_down)) return -1;
    if (st->pipe_w >= 0) /* keep the order of what went through stream_fd */
        return write_all(st->pipe_w, p, n) < 0 ? -1 : 0;
    return send_chunk(st, p, n);
}

int stream_json(stream *st, json_t *j)
{
    sbuf b = {0};
    dump_json(&b, j);
    json_decref(j);
    int rc = stream_write(st, b.data, b.len);
    sbuf_free(&b);
    return rc;
}

bool stream_client_gone(stream *st)
{
    if (atomic_load(&shutting_down) || atomic_load(&st->failed)) return true;
    struct pollfd pf = {.fd = st->c->fd, .events = POLLRDHUP};
    return poll(&pf, 1, 0) > 0 && (pf.revents & (POLLRDHUP | POLLHUP | POLLERR));
}

/* Turns what is written to the pipe into chunks until the write end closes. */
static void *stream_relay(void *p)
{
    stream *st = p;
    char *buf = xmalloc(RELAY_BUF);
    for (;;) {
        ssize_t n = read(st->pipe_r, buf, RELAY_BUF);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0 || send_chunk(st, buf, (size_t)n) < 0) break;
    }
    close(st->pipe_r); /* a writer still at it gets EPIPE */
    free(buf);
    return NULL;
}

/* glibc keeps the stacks of ended threads for new ones, with every page
 * they touched still resident: after a burst of 50 connections that was
 * ~5 MB of an idle daemon. A thread gives back the pages of its stack
 * below its last frame before it ends. */
static void release_stack(void)
{
    pthread_attr_t a;
    void *lo;
    size_t sz;
    if (pthread_getattr_np(pthread_self(), &a) != 0) return;
    int r = pthread_attr_getstack(&a, &lo, &sz);
    pthread_attr_destroy(&a);
    if (r != 0) return;
    uintptr_t start = ((uintptr_t)lo + 4095) & ~(uintptr_t)4095;
    uintptr_t end = ((uintptr_t)__builtin_frame_address(0) - 16384) & ~(uintptr_t)4095;
    if (end > start) madvise((void *)start, end - start, MADV_DONTNEED);
}

struct tramp {
    void *(*fn)(void *);
    void *arg;
};

static void *tramp_main(void *p)
{
    struct tramp t = *(struct tramp *)p;
    free(p);
    void *r = t.fn(t.arg);
    release_stack();
    return r;
}

static bool spawn(pthread_t *t, bool detached, size_t stack, void *(*fn)(void *), void *arg)
{
    pthread_attr_t a;
    pthread_attr_init(&a);
    if (detached) pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
    pthread_attr_setstacksize(&a, stack);
    struct tramp *tp = xmalloc(sizeof *tp);
    tp->fn = fn, tp->arg = arg;
    bool ok = pthread_create(t, &a, tramp_main, tp) == 0;
    if (!ok) free(tp);
    pthread_attr_destroy(&a);
    return ok;
}

int stream_fd(stream *st)
{
    if (st->pipe_w >= 0) return st->pipe_w;
    int p[2];
    if (pipe2(p, O_CLOEXEC) < 0) {
        log_error("stream: pipe: %s", strerror(errno));
        return -1;
    }
    st->pipe_r = p[0];
    if (!spawn(&st->relay, false, RELAY_STACK, stream_relay, st)) {
        log_error("stream: cannot start a thread");
        close(p[0]);
        close(p[1]);
        return -1;
    }
    return st->pipe_w = p[1];
}

static void run_stream(http_conn *c)
{
    struct http_resp *p = &c->resp;
    stream st = {.c = c, .chunked = c->minor >= 1, .pipe_w = -1, .pipe_r = -1};
    if (!st.chunked) c->keep_alive = false; /* the body ends when the connection does */
    sbuf *o = head_begin(c, c->r.status);
    if (st.chunked) sbuf_adds(o, "Transfer-Encoding: chunked\r\n");
    head_connection(c, o);
    sbuf_add(o, "\r\n", 2);
    if (send_buf(c->fd, o->data, o->len) < 0) c->gone = true;
    if (!c->gone && !is_head(c)) {
        p->sfn(&st, p->arg);
        if (st.pipe_w >= 0) {
            close(st.pipe_w); /* the relay sends what is left, then ends */
            pthread_join(st.relay, NULL);
        }
        if (atomic_load(&st.failed)) c->gone = true;
    }
    if (p->free_arg) p->free_arg(p->arg);
    p->free_arg = NULL;
    p->kind = RESP_BYTES;
    if (!c->gone && st.chunked && !is_head(c) && send_buf(c->fd, "0\r\n\r\n", 5) < 0)
        c->gone = true;
}

/* ---- hijacked connections ---- */

/* Copies between the client socket and the hijack function's end of a
 * socketpair, starting with the bytes the server had already read. */
struct hj_relay {
    int client, inner;
    char *early; /* the client's bytes read with the request, then its later ones */
    size_t cap, nearly;
    pthread_t t;
};

struct relay_dir {
    int from, to;
    char *buf;
    size_t cap, off, len;
    bool eof;
};

/* Moves bytes one step; -1 when the relay should end. */
static int relay_step(struct relay_dir *d, short from_ev, short to_ev)
{
    if (d->len && (to_ev & (POLLOUT | POLLERR | POLLHUP))) {
        ssize_t n = send(d->to, d->buf + d->off, d->len, MSG_DONTWAIT | MSG_NOSIGNAL);
        if (n < 0 && errno != EAGAIN && errno != EINTR) return -1;
        if (n > 0) d->off += (size_t)n, d->len -= (size_t)n;
        if (!d->len && d->eof) shutdown(d->to, SHUT_WR);
    }
    if (!d->len && !d->eof && (from_ev & (POLLIN | POLLERR | POLLHUP))) {
        ssize_t n = recv(d->from, d->buf, d->cap, MSG_DONTWAIT);
        if (n < 0 && errno != EAGAIN && errno != EINTR) return -1;
        if (n == 0) {
            d->eof = true;
            shutdown(d->to, SHUT_WR);
        } else if (n > 0) {
            d->off = 0, d->len = (size_t)n;
        }
    }
    return 0;
}

static void *hj_relay_main(void *p)
{
    struct hj_relay *h = p;
    char out[16384];
    struct relay_dir in = {h->client, h->inner, h->early, h->cap, 0, h->nearly, false};
    struct relay_dir back = {h->inner, h->client, out, sizeof out, 0, 0, false};
    for (;;) {
        short cev = (short)((!in.len && !in.eof ? POLLIN : 0) | (back.len ? POLLOUT : 0));
        short iev = (short)((!back.len && !back.eof ? POLLIN : 0) | (in.len ? POLLOUT : 0));
        /* the client is always polled, for its hang-up; the inner end only
         * when something is to be done with it (its hang-up would spin) */
        struct pollfd pf[2] = {{.fd = h->client, .events = cev},
                               {.fd = iev ? h->inner : -1, .events = iev}};
        if (poll(pf, 2, -1) < 0) {
            if (errno == EINTR) continue;
            break;
        }
        if (pf[0].revents & (POLLHUP | POLLERR | POLLNVAL)) break; /* the client is gone */
        if (relay_step(&in, pf[0].revents, pf[1].revents) < 0 ||
            relay_step(&back, pf[1].revents, pf[0].revents) < 0)
            break;
        if (back.eof && !back.len) break; /* the function closed its end: all sent */
    }
    shutdown(h->inner, SHUT_RDWR); /* the function, if still running, sees the end */
    return NULL;
}

static void run_hijack(http_conn *c)
{
    struct http_resp *p = &c->resp;
    bool upgrade = c->r.status == 101;
    c->keep_alive = false;
    c->gone = true; /* the connection closes after a hijack */
    sbuf *o = head_begin(c, c->r.status);
    if (upgrade)
        sbuf_adds(o, "Connection: Upgrade\r\nUpgrade: tcp\r\n\r\n");
    else
        sbuf_adds(o, "Connection: close\r\n\r\n"); /* the body ends when the connection does */
    if (send_buf(c->fd, o->data, o->len) < 0 || is_head(c)) return; /* resp_reset frees arg */
    int sock = c->fd;
    struct hj_relay *h = NULL;
    size_t early = c->len - c->off;
    if (!upgrade) {
        shutdown(sock, SHUT_RD); /* no stdin: reads see EOF at once */
    } else if (early) {
        int sv[2];
        if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) {
            log_error("hijack: socketpair: %s", strerror(errno));
            return;
        }
        h = xcalloc(1, sizeof *h);
        h->client = c->fd;
        h->inner = sv[1];
        h->cap = early > 16384 ? early : 16384;
        h->early = xmalloc(h->cap);
        memcpy(h->early, c->buf + c->off, early);
        h->nearly = early;
        c->off = c->len;
        log_debug("hijack: %zu bytes came with the request: relayed", early);
        if (!spawn(&h->t, false, RELAY_STACK, hj_relay_main, h)) {
            log_error("hijack: cannot start a thread");
            close(sv[0]), close(sv[1]), free(h->early), free(h);
            return;
        }
        sock = sv[0];
    }
    hj_track(c->fd, true);
    if (sock != c->fd) hj_track(sock, true);
    if (atomic_load(&shutting_down)) shutdown(c->fd, SHUT_RDWR);
    p->hfn(sock, p->arg);
    if (sock != c->fd) hj_track(sock, false);
    hj_track(c->fd, false);
    if (h) {
        close(sock); /* the relay reads EOF, sends what is left, ends */
        pthread_join(h->t, NULL);
        close(h->inner);
        free(h->early);
        free(h);
    }
    if (p->free_arg) p->free_arg(p->arg);
    p->free_arg = NULL;
    p->kind = RESP_BYTES;
}

/* ---- requests ---- */

static void add_arg(void *arg, char *key, char *value)
{
    http_conn *c = arg;
    if (c->nq == c->qcap) {
        c->qcap = c->qcap ? c->qcap * 2 : 16;
        c->q = xrealloc(c->q, c->qcap * sizeof *c->q);
    }
    c->q[c->nq++] = (struct qarg){key, value};
}

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Reads into buf[len..cap). Returns the count, 0 at EOF, -1 on error, -2
 * when timeout_ms (>= 0) passed first. */
static ssize_t conn_read(http_conn *c, int timeout_ms)
{
    for (;;) {
        if (timeout_ms >= 0) {
            struct pollfd pf = {.fd = c->fd, .events = POLLIN};
            int n = poll(&pf, 1, timeout_ms);
            if (n == 0) return -2;
            if (n < 0 && errno != EINTR) return -1;
            if (n < 0) continue;
        }
        ssize_t n = recv(c->fd, c->buf + c->len, CONN_BUF - c->len, 0);
        if (n < 0 && errno == EINTR) continue;
        if (n > 0) c->len += (size_t)n;
        return n;
    }
}

/* Reads a request head to the start of the buffer. Returns its length, 0
 * when the connection ended (or failed) before one came, or -status. */
static long read_head(http_conn *c)
{
    if (c->off) {
        memmove(c->buf, c->buf + c->off, c->len - c->off);
        c->len -= c->off;
        c->off = 0;
    }
    size_t scan = 0;
    int64_t deadline = 0;
    for (;;) {
        size_t skip = 0; /* blank lines before a request are ignored (RFC 9112 2.2) */
        while (skip < c->len && (c->buf[skip] == '\r' || c->buf[skip] == '\n')) skip++;
        if (skip) {
            memmove(c->buf, c->buf + skip, c->len - skip);
            c->len -= skip;
            scan = 0;
        }
        if (c->len) {
            size_t end = hp_head_end(c->buf, c->len, &scan);
            if (end > HP_HEAD_MAX || (!end && c->len >= HP_HEAD_MAX)) return -431;
            if (end) return (long)end;
            if (!deadline) deadline = mono_ms() + HEAD_TIMEOUT_MS;
        }
        int64_t left = deadline ? deadline - mono_ms() : -1;
        if (deadline && left <= 0) return -408;
        ssize_t n = conn_read(c, (int)left);
        if (n == -2) return -408;
        if (n <= 0) return 0;
    }
}

/* Takes body bytes. -1 stops the body (the response is set). */
static int body_take(http_conn *c, const char *p, size_t n)
{
    req *r = &c->r;
    if (r->resp || !r->route || r->route->body == BODY_NONE) return 0; /* discarded */
    if (r->route->body == BODY_FILE) {
        if (write_all(r->body_fd, p, n) < 0) {
            r->body_error = true;
            resp_error(r, 500, "cannot spool request body: %s", strerror(errno));
            return -1;
        }
    } else if (r->body.len + n > MAX_MEM_BODY) {
        r->body_error = true;
        resp_error(r, 413, "request body too large");
        return -1;
    } else {
        sbuf_add(&r->body, p, n);
    }
    return 0;
}

/* Reads the body that starts at buf[off]. Returns 0 when it is all in, 1
 * when body_take stopped it, -1 when the connection ended, 400 when the
 * chunked encoding is malformed. */
static int read_body(http_conn *c, size_t hlen, bool chunked, uint64_t clen)
{
    hp_chunked ch = {0};
    for (;;) {
        size_t avail = c->len - c->off;
        if (!chunked) {
            size_t take = clen < avail ? (size_t)clen : avail;
            if (take && body_take(c, c->buf + c->off, take) < 0) return 1;
            c->off += take;
            clen -= take;
            if (!clen) return 0;
        } else {
            while (c->off < c->len) {
                size_t used;
                const char *data;
                size_t dlen;
                int rc =
                    hp_chunked_feed(&ch, c->buf + c->off, c->len - c->off, &used, &data, &dlen);
                c->off += used;
                if (rc < 0) return 400;
                if (dlen && body_take(c, data, dlen) < 0) return 1;
                if (rc == 1) return 0;
            }
        }
        c->off = c->len = hlen; /* all taken: read the next part behind the head */
        if (conn_read(c, -1) <= 0) return -1;
    }
}

static void req_cleanup(http_conn *c)
{
    req *r = &c->r;
    for (int i = 0; i < r->nparams; i++) free(r->params[i]);
    if (r->body.cap > (64u << 10)) sbuf_free(&r->body);
    if (r->body_fd >= 0) close(r->body_fd);
    if (r->body_path) unlink(r->body_path), free(r->body_path);
    resp_reset(&c->resp);
    sbuf body = r->body;
    memset(r, 0, sizeof *r);
    r->body = body;
    r->body.len = 0;
    r->body_fd = -1;
    r->conn = c;
    c->nq = 0;
}

/* An answer to a request that could not be parsed: the connection closes. */
static void reject(http_conn *c, unsigned status, const char *msg)
{
    req *r = &c->r;
    if (!r->method) r->method = "";
    c->keep_alive = false;
    c->linger = true;
    resp_error(r, status, "%s", msg);
    trace_mark("http -> %u", status);
    send_bytes(c);
}

/* Serves one request; false when the connection should close. */
static bool serve(http_conn *c)
{
    http_server *s = c->s;
    req *r = &c->r;
    long hl = read_head(c);
    if (hl == 0) return false;
    c->minor = 1;
    if (hl < 0) {
        reject(c, (unsigned)-hl, hl == -431 ? "request header too large" : "request timeout");
        return false;
    }
    size_t hlen = (size_t)hl;
    c->off = hlen;
    int st = hp_parse_head(c->buf, hlen, &c->head);
    if (st) {
        reject(c, (unsigned)st,
               st == 431   ? "too many header fields"
               : st == 505 ? "HTTP version not supported"
                           : "malformed request");
        return false;
    }
    c->minor = c->head.minor;
    const char *ch = hp_get(&c->head, "Connection");
    c->keep_alive = c->minor ? !hp_has_token(ch, "close") : hp_has_token(ch, "keep-alive");
    r->method = c->head.method;
    char *query, *url = hp_split_target(c->head.target, &query);
    size_t ulen = url[0] == '/' ? hp_unescape(url, false) : 0;
    trace_mark("http %s %s", r->method, url);
    if (!ulen || ulen != strlen(url)) {
        reject(c, 400, "malformed request target");
        return false;
    }
    if (query) hp_parse_query(query, add_arg, c);
    bool chunked;
    uint64_t clen;
    if ((st = hp_body_length(&c->head, &chunked, &clen))) {
        reject(c, (unsigned)st,
               st == 501 ? "unsupported transfer encoding" : "malformed request body length");
        return false;
    }
    bool has_body = chunked || clen > 0;
    if (strip_version(c, url) == 0 && !(r->route = find_route(s, r)))
        resp_error(r, 404, "page not found");
    const char *expect = c->minor ? hp_get(&c->head, "Expect") : NULL;
    if (expect && strcasecmp(expect, "100-continue")) {
        resp_error(r, 417, "unsupported expectation: %s", expect);
        c->keep_alive = false, c->linger = true; /* the body is not read */
        has_body = false;
    }
    if (!r->resp && has_body && r->route->body == BODY_MEM && clen > MAX_MEM_BODY) {
        resp_error(r, 413, "request body too large");
        c->keep_alive = false, c->linger = true;
        has_body = false;
    }
    if (!r->resp && r->route->body == BODY_FILE) {
        r->body_path = xasprintf("%s/body-XXXXXX", s->tmpdir);
        r->body_fd = mkostemp(r->body_path, O_CLOEXEC);
        if (r->body_fd < 0) {
            free(r->body_path);
            r->body_path = NULL;
            resp_error(r, 500, "cannot spool request body: %s", strerror(errno));
        }
    }
    if (has_body && expect) {
        if (r->resp) /* answered already: the client need not send the body */
            c->keep_alive = false, c->linger = true, has_body = false;
        else if (send_buf(c->fd, "HTTP/1.1 100 Continue\r\n\r\n", 25) < 0)
            return false;
    }
    if (has_body) {
        int rc = read_body(c, hlen, chunked, clen);
        if (rc < 0) return false; /* the client went away half-way */
        if (rc == 400) resp_error(r, 400, "malformed chunked request body");
        if (rc) c->keep_alive = false, c->linger = true; /* the rest of the body is not read */
    }
    if (!r->resp) {
        if (r->body_fd >= 0) lseek(r->body_fd, 0, SEEK_SET);
        int64_t t0 = now_ns();
        r->route->fn(r);
        if (!r->resp) resp_error(r, 500, "internal error: handler set no response");
        log_debug("%s %s -> %u (%.3f ms)", r->method, url, r->status, (now_ns() - t0) / 1e6);
    }
    trace_mark("http -> %u", r->status);
    switch (c->resp.kind) {
    case RESP_BYTES:
        send_bytes(c);
        break;
    case RESP_STREAM:
        run_stream(c);
        break;
    case RESP_HIJACK:
        run_hijack(c);
        break;
    }
    return c->keep_alive && !c->gone;
}

/* ---- connections ---- */

/* Closing a TCP socket with unread input sends a reset, which can destroy
 * the response before the client reads it: after an early answer, stop
 * sending and read what still comes for a little while. */
static void linger_close(http_conn *c)
{
    shutdown(c->fd, SHUT_WR);
    int64_t deadline = mono_ms() + 2000;
    size_t total = 0;
    for (int64_t left; total < (4u << 20) && (left = deadline - mono_ms()) > 0;) {
        c->off = c->len = 0;
        ssize_t n = conn_read(c, (int)left);
        if (n <= 0) break;
        total += (size_t)n;
    }
}

static void *conn_main(void *p)
{
    http_conn *c = p;
    http_server *s = c->s;
    c->r.conn = c;
    c->r.body_fd = -1;
    c->root[0] = '/';
    bool more;
    do {
        more = serve(c);
        req_cleanup(c);
        la_release_thread(); /* a tar operation's libarchive may go now */
    } while (more && !atomic_load(&shutting_down));
    if (c->linger && !c->gone) linger_close(c);
    pthread_mutex_lock(&conn_mu);
    if (c->prev)
        c->prev->next = c->next;
    else
        s->conns = c->next;
    if (c->next) c->next->prev = c->prev;
    s->nconns--;
    bool idle = s->nconns == 0;
    pthread_cond_broadcast(&conn_cv);
    pthread_mutex_unlock(&conn_mu);
    /* unlinked: http_stop no longer shuts this fd down, so it may close */
    close(c->fd);
    sbuf_free(&c->r.body);
    sbuf_free(&c->resp.hdr);
    sbuf_free(&c->resp.body);
    sbuf_free(&c->out);
    free(c->q);
    free(c->buf);
    free(c);
    if (idle) malloc_trim(0); /* the last connection: what the burst left in the heap */
    return NULL;
}

static void conn_spawn(http_server *s, int fd)
{
    int one = 1; /* TCP: chunks of a stream go out at once (fails harmlessly on UNIX sockets) */
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    http_conn *c = xcalloc(1, sizeof *c);
    c->s = s;
    c->fd = fd;
    c->buf = xmalloc(CONN_BUF);
    pthread_mutex_lock(&conn_mu);
    c->next = s->conns;
    if (s->conns) s->conns->prev = c;
    s->conns = c;
    s->nconns++;
    pthread_mutex_unlock(&conn_mu);
    pthread_t t;
    if (spawn(&t, true, CONN_STACK, conn_main, c)) return;
    log_error("http: cannot start a connection thread");
    pthread_mutex_lock(&conn_mu);
    s->conns = c->next;
    if (c->next) c->next->prev = NULL;
    s->nconns--;
    pthread_mutex_unlock(&conn_mu);
    close(fd);
    free(c->buf);
    free(c);
}

static void *accept_main(void *p)
{
    http_server *s = p;
    for (;;) {
        struct pollfd pf[2] = {{.fd = s->lfd, .events = POLLIN},
                               {.fd = s->stop[0], .events = POLLIN}};
        if (poll(pf, 2, -1) < 0) {
            if (errno == EINTR) continue;
            log_error("http: poll: %s", strerror(errno));
            break;
        }
        if (pf[1].revents) break;
        if (pf[0].revents & POLLNVAL) break;
        int fd = accept4(s->lfd, NULL, NULL, SOCK_CLOEXEC);
        if (fd >= 0) {
            conn_spawn(s, fd);
        } else if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR &&
                   errno != ECONNABORTED) {
            log_warn("http: accept: %s", strerror(errno)); /* EMFILE, ENOMEM ... */
            struct pollfd st = {.fd = s->stop[0], .events = POLLIN};
            poll(&st, 1, 200); /* wait for descriptors to free up, not spin */
        }
    }
    return NULL;
}

static void conn_cv_init(void)
{
    pthread_condattr_t a;
    pthread_condattr_init(&a);
    pthread_condattr_setclock(&a, CLOCK_MONOTONIC);
    pthread_cond_init(&conn_cv, &a);
    pthread_condattr_destroy(&a);
}

http_server *http_start(int listen_fd, const route *routes, const char *tmpdir, berr *e)
{
    pthread_once(&conn_cv_once, conn_cv_init);
    http_server *s = xcalloc(1, sizeof *s);
    s->lfd = listen_fd;
    s->routes = routes;
    s->tmpdir = xstrdup(tmpdir);
    int fl = fcntl(listen_fd, F_GETFL);
    if (fl < 0 || fcntl(listen_fd, F_SETFL, fl | O_NONBLOCK) < 0 || pipe2(s->stop, O_CLOEXEC) < 0) {
        berr_errno(e, 500, "cannot start the HTTP server");
        free(s->tmpdir);
        free(s);
        return NULL;
    }
    if (!spawn(&s->accept_thread, false, RELAY_STACK, accept_main, s)) {
        berr_set(e, 500, "cannot start the HTTP server: no thread");
        close(s->stop[0]);
        close(s->stop[1]);
        free(s->tmpdir);
        free(s);
        return NULL;
    }
    return s;
}

void http_shutdown_begin(void)
{
    atomic_store(&shutting_down, 1);
    pthread_mutex_lock(&hj_mu);
    for (int i = 0; i < n_hj; i++) shutdown(hj_socks[i], SHUT_RDWR);
    pthread_mutex_unlock(&hj_mu);
}

void http_stop(http_server *s)
{
    if (!s) return;
    http_shutdown_begin();
    if (write(s->stop[1], "x", 1) < 0) log_warn("http: stop: %s", strerror(errno));
    pthread_join(s->accept_thread, NULL);
    close(s->stop[0]);
    close(s->stop[1]);
    close(s->lfd);
    struct timespec dl;
    clock_gettime(CLOCK_MONOTONIC, &dl);
    dl.tv_sec += STOP_WAIT_MS / 1000;
    pthread_mutex_lock(&conn_mu);
    for (http_conn *c = s->conns; c; c = c->next) shutdown(c->fd, SHUT_RDWR);
    while (s->nconns && pthread_cond_timedwait(&conn_cv, &conn_mu, &dl) != ETIMEDOUT) {
    }
    int left = s->nconns;
    pthread_mutex_unlock(&conn_mu);
    if (left) { /* their threads still use s: it stays */
        log_warn("http: %d connection(s) still busy at shutdown", left);
        return;
    }
    free(s->tmpdir);
    free(s);
}

/* ---- accessors ---- */

const char *req_query(req *r, const char *key)
{
    http_conn *c = r->conn;
    for (size_t i = 0; i < c->nq; i++)
        if (!strcmp(c->q[i].key, key)) return c->q[i].val;
    return NULL;
}

bool req_query_bool(req *r, const char *key, bool dflt)
{
    const char *v = req_query(r, key);
    if (!v) return dflt;
    if (!*v) return dflt;
    return !strcmp(v, "1") || !strcasecmp(v, "true");
}

const char **req_query_all(req *r, const char *key, size_t *n)
{
    http_conn *c = r->conn;
    const char **vals = xcalloc(c->nq + 1, sizeof *vals);
    *n = 0;
    for (size_t i = 0; i < c->nq; i++)
        if (!strcmp(c->q[i].key, key)) vals[(*n)++] = c->q[i].val;
    return vals;
}

const char *req_header(req *r, const char *name)
{
    return hp_get(&r->conn->head, name);
}

const char *req_param(req *r, int i)
{
    return i < r->nparams ? r->params[i] : "";
}

json_t *req_json(req *r)
{
    berr e;
    json_t *j = json_parse_body(r->body.data, r->body.len, &e);
    if (!j) resp_berr(r, &e);
    return j;
}
