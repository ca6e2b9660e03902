/* client.c: the berth CLI's HTTP client for the Docker Engine API.
 *
 * Resolves the daemon address (unix:///path, /path, tcp://host:port),
 * negotiates the API version once per process (the daemon's API-Version
 * header wins when lower than ours; see client_do), sends requests through
 * http.c over one kept-alive connection (a second concurrent request, as
 * `stats` makes from its threads, opens another), streams request bodies
 * from a file descriptor and response bodies to a callback, and turns
 * error responses into docker's "Error response from daemon: ..."
 * messages. */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/jsonutil.h"
#include "cli/cli.h"
#include "cli/http.h"

static int parse_tcp(client *c, const char *rest)
{
    if (!*rest) return -1;
    char *hostport = xstrdup(rest);
    char *slash = strchr(hostport, '/');
    if (slash) *slash = 0;
    const char *colon = strrchr(hostport, ':');
    if (colon == hostport)
        c->base = xasprintf("http://localhost%s", colon);
    else if (!colon)
        c->base = xasprintf("http://%s:2375", hostport);
    else
        c->base = xasprintf("http://%s", hostport);
    free(hostport);
    return 0;
}

int client_init(client *c, const char *host)
{
    memset(c, 0, sizeof *c);
    if (!host || !*host) host = DEFAULT_HOST;
    c->host = xstrdup(host);
    snprintf(c->api, sizeof c->api, "%s", BERTH_API_VERSION);
    int rc = 0;
    if (str_starts(host, "unix://")) {
        c->sock = xstrdup(host + 7);
        c->base = xstrdup("http://localhost");
        rc = *c->sock ? 0 : -1;
    } else if (host[0] == '/') {
        c->sock = xstrdup(host);
        c->base = xstrdup("http://localhost");
    } else if (str_starts(host, "tcp://")) {
        rc = parse_tcp(c, host + 6);
    } else if (str_starts(host, "http://")) {
        rc = parse_tcp(c, host + 7);
    } else {
        rc = -1;
    }
    if (rc < 0) errorf("unable to parse daemon host `%s`", host);
    return rc;
}

void client_free(client *c)
{
    free(c->host);
    free(c->sock);
    free(c->base);
    json_decref(c->ping);
    while (c->nspare) close(c->spare[--c->nspare]);
    if (c->idle) {
        hconn_close(c->idle);
        free(c->idle);
        c->idle = NULL;
    }
}

void resp_free(resp *r)
{
    sbuf_free(&r->body);
    free(r->content_type);
    r->content_type = NULL;
}

char *url_escape(const char *s)
{
    sbuf b = {0};
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
            strchr("-_.~", *p))
            sbuf_add(&b, p, 1);
        else
            sbuf_printf(&b, "%%%02X", *p);
    }
    return sbuf_steal(&b);
}

void query_add(sbuf *path, const char *key, const char *value)
{
    char *e = url_escape(value);
    sbuf_printf(path, "%c%s=%s", path->data && strchr(path->data, '?') ? '&' : '?', key, e);
    free(e);
}

/* ---- one exchange ---- */

static pthread_mutex_t idle_mu = PTHREAD_MUTEX_INITIALIZER; /* c->idle (stats uses threads) */

void client_conn_error(client *c, const char *detail)
{
    if (!c->daemon_seen || !detail)
        errorf("Cannot connect to the Berth daemon at %s. Is the daemon running?", c->host);
    else
        errorf("error during connect: %s", detail);
}

/* Reports a failure on an open connection. */
static void io_error(client *c, const hconn *h, int e)
{
    client_conn_error(c, h->eof ? "EOF" : go_strerror(e));
}

/* The kept-alive connection when it is still open, else a new one (NULL
 * after "Cannot connect ..."). */
static hconn *conn_take(client *c, bool *reused)
{
    pthread_mutex_lock(&idle_mu);
    hconn *h = c->idle;
    c->idle = NULL;
    pthread_mutex_unlock(&idle_mu);
    if (h && !hconn_idle_ok(h)) {
        hconn_close(h);
        free(h);
        h = NULL;
    }
    *reused = h != NULL;
    if (h) {
        hconn_reset(h);
        return h;
    }
    h = xcalloc(1, sizeof *h);
    if (hconn_open(c, h) == 0) return h;
    free(h);
    return NULL;
}

/* Keeps h for the next request when it can carry one, else closes it. */
static void conn_put(client *c, hconn *h)
{
    if (hconn_reusable(h)) {
        pthread_mutex_lock(&idle_mu);
        if (!c->idle) c->idle = h, h = NULL;
        pthread_mutex_unlock(&idle_mu);
    }
    if (h) {
        hconn_close(h);
        free(h);
    }
}

/* Writes the request: 0, -1 when the connection failed, -2 when reading
 * rq->body_fd failed. */
static int send_request(client *c, hconn *h, const req *rq, const char *target)
{
    bool fd_body = rq->body_fd >= 0;
    hhead hd = {.method = rq->method,
                .target = target,
                .ctype = rq->content_type,
                .body = rq->body,
                .body_len = rq->body ? rq->body_len : 0,
                .length = !fd_body && (rq->body || !strcmp(rq->method, "POST")),
                .chunked = fd_body};
    if (hconn_send(c, h, &hd) < 0) return -1;
    return fd_body ? hconn_send_fd(h, rq->body_fd) : 0;
}

/* Sends the request and reads the response head into *out; when a
 * kept-alive connection turns out closed before answering, once more on a
 * new one. 0, or -1 after an error message. */
static int exchange(client *c, const req *rq, const char *target, hconn **out)
{
    for (int attempt = 0;; attempt++) {
        bool reused;
        hconn *h = *out = conn_take(c, &reused);
        if (!h) return -1;
        int rc = send_request(c, h, rq, target);
        if (rc == -2) {
            errorf("error during connect: %s", go_strerror(errno));
            return -1;
        }
        if (rc == 0 && rq->sent) rq->sent(c, rq->sent_arg);
        if (rc == 0 && hconn_head(h, -1) == 0) return 0;
        int e = errno;
        if (!reused || attempt || rq->body_fd >= 0 || h->in.len) {
            io_error(c, h, e);
            return -1;
        }
        hconn_close(h);
        free(h);
        *out = NULL;
    }
}

/* Reads the body: to rq->on_data on 2xx, else into r->body. */
static int read_body(client *c, hconn *h, const req *rq, resp *r)
{
    r->status = h->status;
    r->content_type = h->content_type ? xstrdup(h->content_type) : NULL;
    bool stream = rq->on_data && h->status >= 200 && h->status < 300;
    int rc = stream ? hconn_body_stream(h, rq->on_data, rq->ctx) : hconn_body(h, &r->body);
    if (rc >= 0 || h->eof) return 0; /* stopped by on_data, or a body cut short */
    io_error(c, h, errno);
    return -1;
}

static int perform(client *c, const req *rq, resp *r, char *api_out)
{
    memset(r, 0, sizeof *r);
    char *target = rq->unversioned ? xstrdup(rq->path) : xasprintf("/v%s%s", c->api, rq->path);
    log_debug("%s %s", rq->method, target);
    hconn *h = NULL;
    int rc = exchange(c, rq, target, &h);
    if (rc == 0) {
        c->daemon_seen = true;
        rc = read_body(c, h, rq, r);
    }
    if (api_out) snprintf(api_out, 16, "%s", h ? h->api_version : "");
    if (h) conn_put(c, h);
    free(target);
    return rc;
}

/* Compares dotted versions: <0, 0, >0. */
static int version_cmp(const char *a, const char *b)
{
    while (*a || *b) {
        long x = strtol(a, (char **)&a, 10), y = strtol(b, (char **)&b, 10);
        if (x != y) return x < y ? -1 : 1;
        if (*a == '.') a++;
        if (*b == '.') b++;
        if (!*a && !*b) break;
        if ((!*a) != (!*b)) return *a ? 1 : -1;
    }
    return 0;
}

int client_negotiate(client *c)
{
    if (c->negotiated) return 0;
    c->negotiated = true;
    const char *env = getenv("DOCKER_API_VERSION");
    if (env && *env) {
        snprintf(c->api, sizeof c->api, "%s", env);
        return 0;
    }
    req rq = {.method = "GET", .path = "/_ping", .body_fd = -1, .unversioned = true};
    resp r;
    char api[16] = {0};
    int rc = perform(c, &rq, &r, api);
    resp_free(&r);
    if (rc < 0) return -1;
    if (api[0] && version_cmp(api, c->api) < 0) snprintf(c->api, sizeof c->api, "%s", api);
    return 0;
}

/* The first versioned request goes with our own version and no /_ping
 * before it (a round trip saved on every command): a daemon older than
 * that refuses it with 400 and its API-Version, and it is sent again with
 * that version. A body streamed from a file descriptor cannot be sent
 * twice: such a request negotiates first. */
int client_do(client *c, const req *rq, resp *r)
{
    memset(r, 0, sizeof *r);
    const char *env = getenv("DOCKER_API_VERSION");
    if (rq->unversioned || c->negotiated || rq->body_fd >= 0 || (env && *env)) {
        if (!rq->unversioned && client_negotiate(c) < 0) return -1;
        return perform(c, rq, r, NULL);
    }
    char api[16] = {0};
    int rc = perform(c, rq, r, api);
    if (rc < 0) return -1;
    c->negotiated = true;
    if (r->status == 400 && api[0] && version_cmp(api, c->api) < 0) {
        snprintf(c->api, sizeof c->api, "%s", api);
        resp_free(r);
        return perform(c, rq, r, NULL);
    }
    return 0;
}

char *resp_error_message(const resp *r)
{
    json_error_t je;
    json_t *j = r->body.len ? json_fast_loadb(r->body.data, r->body.len, 0, &je) : NULL;
    const char *m = jstr(j, "message");
    char *out;
    if (m) {
        out = xstrdup(m);
    } else if (r->body.len) {
        out = xstrndup(r->body.data, r->body.len);
        size_t n = strlen(out);
        while (n && (out[n - 1] == '\n' || out[n - 1] == ' ')) out[--n] = 0;
    } else {
        out = xasprintf("request returned status %ld", r->status);
    }
    json_decref(j);
    return out;
}

void print_daemon_error(const resp *r)
{
    char *m = resp_error_message(r);
    errorf("Error response from daemon: %s", m);
    free(m);
}

int client_json(client *c, const char *method, const char *path, const json_t *body, json_t **out)
{
    char *b = body ? json_dump_compact(body) : NULL;
    req rq = {.method = method,
              .path = path,
              .body = b,
              .body_len = b ? strlen(b) : 0,
              .body_fd = -1,
              .content_type = b ? "application/json" : NULL};
    resp r;
    int rc = client_do(c, &rq, &r);
    free(b);
    if (rc < 0) {
        resp_free(&r);
        return -1;
    }
    if (r.status >= 400) {
        print_daemon_error(&r);
        resp_free(&r);
        return -1;
    }
    if (out) {
        json_error_t je;
        *out = r.body.len ? json_fast_loadb(r.body.data, r.body.len, JSON_DECODE_ANY, &je) : NULL;
        if (!*out) *out = json_null();
    }
    resp_free(&r);
    return 0;
}
