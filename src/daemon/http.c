/* http.c: request routing, bodies and responses over libmicrohttpd.
 *
 * MHD calls on_request several times per request: first with the headers
 * (we match the route and prepare the body sink), then once per body chunk,
 * then once with no data, when the handler runs and queues its response.
 * Streams are a pipe: a detached worker thread writes, MHD reads the other
 * end and sends it chunked. See http.h. */
#include "http.h"

#include <errno.h>
#include <fcntl.h>
#include <microhttpd.h>
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/jsonutil.h"

#define MAX_MEM_BODY (32u << 20)

/* Shutdown: streams see their client as gone, hijacked sockets are shut
 * down, so every connection thread ends and MHD_stop_daemon returns. */
static volatile int shutting_down;
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

struct http_server {
    struct MHD_Daemon *mhd;
    const route *routes;
    char *tmpdir;
};

/* ---- routing ---- */

static int split_path(char *p, char **segs, int max)
{
    int n = 0;
    char *save = NULL;
    for (char *tok = strtok_r(p, "/", &save); tok && n < max; tok = strtok_r(NULL, "/", &save))
        segs[n++] = tok;
    return n;
}

static char *join_segs(char **segs, int from, int to)
{
    sbuf b = {0};
    for (int i = from; i < to; i++) {
        if (i > from) sbuf_adds(&b, "/");
        sbuf_adds(&b, segs[i]);
    }
    return sbuf_steal(&b);
}

/* Matches path against pattern; fills r->params. */
static bool route_match(const char *pattern, const char *path, req *r)
{
    char *pc = xstrdup(pattern), *sc = xstrdup(path);
    char *ps[16], *ss[64];
    int np = split_path(pc, ps, 16), ns = split_path(sc, ss, 64);
    int i = 0, j = 0, nparams = 0;
    char *params[REQ_MAX_PARAMS] = {0};
    bool ok = true;
    for (; i < np && ok; i++) {
        size_t l = strlen(ps[i]);
        if (ps[i][0] == '{' && l > 3 && ps[i][l - 2] == '*') {
            int rest = np - i - 1, take = ns - j - rest;
            if (take < 1 || nparams >= REQ_MAX_PARAMS)
                ok = false;
            else
                params[nparams++] = join_segs(ss, j, j + take), j += take;
        } else if (ps[i][0] == '{') {
            if (j >= ns || nparams >= REQ_MAX_PARAMS)
                ok = false;
            else
                params[nparams++] = xstrdup(ss[j++]);
        } else {
            ok = j < ns && !strcmp(ps[i], ss[j++]);
        }
    }
    ok = ok && j == ns;
    free(pc);
    free(sc);
    if (!ok) {
        for (int k = 0; k < nparams; k++) free(params[k]);
        return false;
    }
    memcpy(r->params, params, sizeof params);
    r->nparams = nparams;
    return true;
}

/* Strips "/v1.41" style prefixes; returns 0 or sets an error response. */
static int strip_version(req *r, const char *url)
{
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
    r->path = xstrdup(*url ? url : "/");
    size_t l = strlen(r->path);
    while (l > 1 && r->path[l - 1] == '/') r->path[--l] = 0;
    return 0;
}

static const route *find_route(http_server *s, req *r)
{
    bool path_known = false;
    for (const route *rt = s->routes; rt->pattern; rt++) {
        if (!route_match(rt->pattern, r->path, r)) continue;
        path_known = true;
        if (!strcmp(rt->method, r->method) || !strcmp(rt->method, "*") ||
            (!strcmp(r->method, "HEAD") && !strcmp(rt->method, "GET")))
            return rt;
        for (int k = 0; k < r->nparams; k++) free(r->params[k]), r->params[k] = NULL;
        r->nparams = 0;
    }
    (void)path_known;
    return NULL;
}

/* ---- request lifecycle ---- */

static void add_std_headers(struct MHD_Response *resp)
{
    MHD_add_response_header(resp, "Api-Version", BERTH_API_VERSION);
    MHD_add_response_header(resp, "Docker-Experimental", "false");
    MHD_add_response_header(resp, "Ostype", "linux");
    MHD_add_response_header(resp, "Server", "Berth/" BERTH_VERSION " (linux)");
}

static req *req_new(http_server *s, struct MHD_Connection *c, const char *method, const char *url)
{
    req *r = xcalloc(1, sizeof *r);
    r->conn = c;
    r->method = method;
    r->body_fd = -1;
    if (strip_version(r, url) < 0) return r;
    r->route = find_route(s, r);
    if (!r->route) {
        resp_error(r, 404, "page not found");
        return r;
    }
    if (r->route->body == BODY_FILE) {
        r->body_path = xasprintf("%s/body-XXXXXX", s->tmpdir);
        r->body_fd = mkostemp(r->body_path, O_CLOEXEC);
        if (r->body_fd < 0) {
            free(r->body_path);
            r->body_path = NULL;
            resp_error(r, 500, "cannot spool request body: %s", strerror(errno));
        }
    }
    return r;
}

static void req_free(req *r)
{
    free(r->path);
    for (int i = 0; i < r->nparams; i++) free(r->params[i]);
    sbuf_free(&r->body);
    if (r->body_fd >= 0) close(r->body_fd);
    if (r->body_path) unlink(r->body_path), free(r->body_path);
    if (r->resp) MHD_destroy_response(r->resp);
    free(r);
}

static void take_body(req *r, const char *data, size_t n)
{
    if (r->resp || r->body_error || !r->route) return; /* discard */
    if (r->route->body == BODY_FILE) {
        if (write_all(r->body_fd, data, n) < 0) {
            r->body_error = true;
            resp_error(r, 500, "cannot spool request body: %s", strerror(errno));
        }
    } else if (r->body.len + n > MAX_MEM_BODY) {
        r->body_error = true;
        resp_error(r, 413, "request body too large");
    } else {
        sbuf_add(&r->body, data, n);
    }
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version, const char *upload,
                                  size_t *upload_size, void **con_cls)
{
    http_server *s = cls;
    req *r = *con_cls;
    if (!r) {
        trace_mark("http %s %s", method, url);
        *con_cls = req_new(s, c, method, url);
        return MHD_YES;
    }
    if (*upload_size) {
        take_body(r, upload, *upload_size);
        *upload_size = 0;
        return MHD_YES;
    }
    if (!r->resp) {
        if (r->body_fd >= 0) lseek(r->body_fd, 0, SEEK_SET);
        int64_t t0 = now_ns();
        r->route->fn(r);
        if (!r->resp) resp_error(r, 500, "internal error: handler set no response");
        log_debug("%s %s -> %u (%.3f ms)", method, url, r->status, (now_ns() - t0) / 1e6);
    }
    add_std_headers(r->resp);
    trace_mark("http -> %u", r->status);
    enum MHD_Result rc = MHD_queue_response(c, r->status, r->resp);
    return rc;
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    if (*con_cls) req_free(*con_cls);
    *con_cls = NULL;
}

static void mhd_log(void *cls, const char *fmt, va_list ap)
{
    char buf[512];
    vsnprintf(buf, sizeof buf, fmt, ap);
    size_t l = strlen(buf);
    while (l && buf[l - 1] == '\n') buf[--l] = 0;
    log_debug("http: %s", buf);
}

http_server *http_start(int listen_fd, const route *routes, const char *tmpdir, berr *e)
{
    http_server *s = xcalloc(1, sizeof *s);
    s->routes = routes;
    s->tmpdir = xstrdup(tmpdir);
    unsigned flags = MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD |
                     MHD_USE_POLL | MHD_USE_ERROR_LOG | MHD_ALLOW_UPGRADE;
    s->mhd = MHD_start_daemon(flags, 0, NULL, NULL, on_request, s, MHD_OPTION_LISTEN_SOCKET,
                              listen_fd, MHD_OPTION_NOTIFY_COMPLETED, on_completed, s,
                              MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)0,
                              MHD_OPTION_THREAD_STACK_SIZE, (size_t)(1u << 20),
                              MHD_OPTION_EXTERNAL_LOGGER, mhd_log, NULL, MHD_OPTION_END);
    if (!s->mhd) {
        free(s->tmpdir);
        free(s);
        berr_set(e, 500, "cannot start the HTTP server");
        return NULL;
    }
    return s;
}

void http_shutdown_begin(void)
{
    shutting_down = 1;
    pthread_mutex_lock(&hj_mu);
    for (int i = 0; i < n_hj; i++) shutdown(hj_socks[i], SHUT_RDWR);
    pthread_mutex_unlock(&hj_mu);
}

void http_stop(http_server *s)
{
    if (!s) return;
    http_shutdown_begin();
    MHD_stop_daemon(s->mhd);
    free(s->tmpdir);
    free(s);
}

/* ---- accessors ---- */

const char *req_query(req *r, const char *key)
{
    return MHD_lookup_connection_value(r->conn, MHD_GET_ARGUMENT_KIND, key);
}

bool req_query_bool(req *r, const char *key, bool dflt)
{
    const char *v = req_query(r, key);
    if (!v) return dflt;
    if (!*v) return dflt;
    return !strcmp(v, "1") || !strcasecmp(v, "true");
}

struct qall {
    const char *key;
    const char **vals;
    size_t n;
};

static enum MHD_Result collect_arg(void *cls, enum MHD_ValueKind kind, const char *key,
                                   const char *value)
{
    struct qall *q = cls;
    if (value && !strcmp(key, q->key)) {
        q->vals = xrealloc(q->vals, (q->n + 2) * sizeof *q->vals);
        q->vals[q->n++] = value;
        q->vals[q->n] = NULL;
    }
    return MHD_YES;
}

const char **req_query_all(req *r, const char *key, size_t *n)
{
    struct qall q = {key, NULL, 0};
    MHD_get_connection_values(r->conn, MHD_GET_ARGUMENT_KIND, collect_arg, &q);
    if (!q.vals) q.vals = xcalloc(1, sizeof *q.vals);
    *n = q.n;
    return q.vals;
}

const char *req_header(req *r, const char *name)
{
    return MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, name);
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

/* ---- responses ---- */

static void set_resp(req *r, unsigned status, struct MHD_Response *resp)
{
    if (r->resp) MHD_destroy_response(r->resp);
    r->resp = resp;
    r->status = status;
}

void resp_bytes(req *r, unsigned status, const char *ctype, const void *data, size_t len)
{
    struct MHD_Response *resp =
        MHD_create_response_from_buffer(len, (void *)data, MHD_RESPMEM_MUST_COPY);
    if (ctype) MHD_add_response_header(resp, "Content-Type", ctype);
    set_resp(r, status, resp);
}

void resp_json(req *r, unsigned status, json_t *j)
{
    char *s = json_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY | JSON_PRESERVE_ORDER);
    json_decref(j);
    sbuf b = {0};
    sbuf_adds(&b, s ? s : "null");
    sbuf_adds(&b, "\n");
    free(s);
    resp_bytes(r, status, "application/json", b.data, b.len);
    sbuf_free(&b);
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
    if (r->resp) MHD_add_response_header(r->resp, name, value);
}

/* ---- streams ---- */

struct stream {
    int fd;   /* pipe write end */
    int sock; /* dup of the client socket, to notice hang-ups */
    stream_fn fn;
    void *arg;
    void (*free_arg)(void *);
};

static void *stream_main(void *p)
{
    stream *st = p;
    st->fn(st, st->arg);
    if (st->free_arg) st->free_arg(st->arg);
    close(st->fd);
    if (st->sock >= 0) close(st->sock);
    free(st);
    return NULL;
}

void resp_stream(req *r, unsigned status, const char *ctype, stream_fn fn, void *arg,
                 void (*free_arg)(void *))
{
    int p[2];
    if (pipe2(p, O_CLOEXEC) < 0) {
        if (free_arg) free_arg(arg);
        resp_error(r, 500, "pipe: %s", strerror(errno));
        return;
    }
    stream *st = xcalloc(1, sizeof *st);
    st->fd = p[1];
    st->fn = fn;
    st->arg = arg;
    st->free_arg = free_arg;
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(r->conn, MHD_CONNECTION_INFO_CONNECTION_FD);
    st->sock = ci ? fcntl(ci->connect_fd, F_DUPFD_CLOEXEC, 3) : -1;
    struct MHD_Response *resp = MHD_create_response_from_pipe(p[0]);
    if (ctype) MHD_add_response_header(resp, "Content-Type", ctype);
    set_resp(r, status, resp);
    pthread_t t;
    pthread_attr_t a;
    pthread_attr_init(&a);
    pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
    pthread_attr_setstacksize(&a, 1u << 20);
    if (pthread_create(&t, &a, stream_main, st) != 0) {
        close(st->fd);
        if (st->sock >= 0) close(st->sock);
        if (free_arg) free_arg(arg);
        free(st);
    }
    pthread_attr_destroy(&a);
}

int stream_write(stream *st, const void *p, size_t n)
{
    return write_all(st->fd, p, n) < 0 ? -1 : 0;
}

int stream_json(stream *st, json_t *j)
{
    char *s = json_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY | JSON_PRESERVE_ORDER);
    json_decref(j);
    sbuf b = {0};
    sbuf_adds(&b, s ? s : "null");
    sbuf_adds(&b, "\n");
    free(s);
    int rc = stream_write(st, b.data, b.len);
    sbuf_free(&b);
    return rc;
}

bool stream_client_gone(stream *st)
{
    if (shutting_down) return true;
    struct pollfd pf[2] = {{.fd = st->fd, .events = 0}, {.fd = st->sock, .events = POLLRDHUP}};
    if (poll(pf, st->sock >= 0 ? 2 : 1, 0) <= 0) return false;
    if (pf[0].revents & (POLLERR | POLLHUP)) return true;
    return st->sock >= 0 && (pf[1].revents & (POLLRDHUP | POLLHUP | POLLERR));
}

int stream_fd(stream *st)
{
    return st->fd;
}

/* ---- hijacked connections ---- */

struct hijack {
    hijack_fn fn;
    void *arg;
    void (*free_arg)(void *);
    struct MHD_UpgradeResponseHandle *urh;
    int sock;
};

static void *hijack_main(void *p)
{
    struct hijack *h = p;
    int fl = fcntl(h->sock, F_GETFL);
    if (fl >= 0) fcntl(h->sock, F_SETFL, fl & ~O_NONBLOCK);
    hj_track(h->sock, true);
    if (shutting_down) shutdown(h->sock, SHUT_RDWR);
    h->fn(h->sock, h->arg);
    hj_track(h->sock, false);
    if (h->free_arg) h->free_arg(h->arg);
    if (h->urh)
        MHD_upgrade_action(h->urh, MHD_UPGRADE_ACTION_CLOSE);
    else
        close(h->sock);
    free(h);
    return NULL;
}

static void spawn_hijack(struct hijack *h)
{
    pthread_t t;
    pthread_attr_t a;
    pthread_attr_init(&a);
    pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
    pthread_attr_setstacksize(&a, 512u << 10);
    if (pthread_create(&t, &a, hijack_main, h) != 0) {
        if (h->free_arg) h->free_arg(h->arg);
        if (h->urh)
            MHD_upgrade_action(h->urh, MHD_UPGRADE_ACTION_CLOSE);
        else
            close(h->sock);
        free(h);
    }
    pthread_attr_destroy(&a);
}

static void on_upgrade(void *cls, struct MHD_Connection *c, void *con_cls, const char *extra,
                       size_t nextra, MHD_socket sock, struct MHD_UpgradeResponseHandle *urh)
{
    struct hijack *h = cls;
    h->urh = urh;
    h->sock = sock;
    spawn_hijack(h);
}

bool req_wants_upgrade(req *r)
{
    const char *u = req_header(r, "Upgrade");
    return u && (!strcasecmp(u, "tcp") || !strcasecmp(u, "h2c"));
}

void resp_hijack(req *r, const char *ctype, hijack_fn fn, void *arg, void (*free_arg)(void *))
{
    struct hijack *h = xcalloc(1, sizeof *h);
    h->fn = fn;
    h->arg = arg;
    h->free_arg = free_arg;
    if (req_wants_upgrade(r)) {
        struct MHD_Response *resp = MHD_create_response_for_upgrade(on_upgrade, h);
        MHD_add_response_header(resp, "Upgrade", req_header(r, "Upgrade"));
        MHD_add_response_header(resp, "Connection", "Upgrade");
        if (ctype) MHD_add_response_header(resp, "Content-Type", ctype);
        set_resp(r, 101, resp);
        return;
    }
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) {
        if (free_arg) free_arg(arg);
        free(h);
        resp_error(r, 500, "socketpair: %s", strerror(errno));
        return;
    }
    shutdown(sv[0], SHUT_WR); /* the client sends nothing more: fn reads EOF */
    h->sock = sv[1];
    struct MHD_Response *resp = MHD_create_response_from_pipe(sv[0]);
    MHD_set_response_options(resp, MHD_RF_HTTP_1_0_SERVER, MHD_RO_END);
    if (ctype) MHD_add_response_header(resp, "Content-Type", ctype);
    set_resp(r, 200, resp);
    spawn_hijack(h);
}
