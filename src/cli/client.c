/* client.c: the berth CLI's HTTP client for the Docker Engine API.
 *
 * Resolves the daemon address (unix:///path, /path, tcp://host:port),
 * negotiates the API version once per process with /_ping (the daemon's
 * API-Version header wins when lower than ours), sends requests with
 * libcurl, streams request bodies from a file descriptor and response
 * bodies to a callback, and turns error responses into docker's
 * "Error response from daemon: ..." messages. */
#include <curl/curl.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"

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
    curl_global_init(CURL_GLOBAL_DEFAULT);
    return rc;
}

void client_free(client *c)
{
    free(c->host);
    free(c->sock);
    free(c->base);
    json_decref(c->ping);
    curl_global_cleanup();
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

/* ---- one transfer ---- */

typedef struct xfer {
    CURL *h;
    const req *rq;
    resp *r;
    bool stopped;
    char api_version[16];
} xfer;

static size_t on_body(char *data, size_t size, size_t nmemb, void *ud)
{
    xfer *x = ud;
    size_t n = size * nmemb;
    long status = 0;
    curl_easy_getinfo(x->h, CURLINFO_RESPONSE_CODE, &status);
    if (x->rq->on_data && status >= 200 && status < 300) {
        if (!x->rq->on_data(x->rq->ctx, data, n)) {
            x->stopped = true;
            return 0;
        }
        return n;
    }
    sbuf_add(&x->r->body, data, n);
    return n;
}

static char *header_value(const char *line, size_t n, const char *name)
{
    size_t k = strlen(name);
    if (n <= k || strncasecmp(line, name, k) || line[k] != ':') return NULL;
    const char *v = line + k + 1;
    const char *end = line + n;
    while (v < end && (*v == ' ' || *v == '\t')) v++;
    while (end > v && (end[-1] == '\r' || end[-1] == '\n' || end[-1] == ' ')) end--;
    return xstrndup(v, (size_t)(end - v));
}

static size_t on_header(char *data, size_t size, size_t nmemb, void *ud)
{
    xfer *x = ud;
    size_t n = size * nmemb;
    char *v = header_value(data, n, "Content-Type");
    if (v) {
        free(x->r->content_type);
        x->r->content_type = v;
    }
    v = header_value(data, n, "API-Version");
    if (v) {
        snprintf(x->api_version, sizeof x->api_version, "%s", v);
        free(v);
    }
    return n;
}

static size_t on_read(char *buf, size_t size, size_t nmemb, void *ud)
{
    xfer *x = ud;
    for (;;) {
        ssize_t n = read(x->rq->body_fd, buf, size * nmemb);
        if (n >= 0) return (size_t)n;
        if (errno != EINTR) return CURL_READFUNC_ABORT;
    }
}

static bool conn_error(CURLcode rc)
{
    return rc == CURLE_COULDNT_CONNECT || rc == CURLE_COULDNT_RESOLVE_HOST ||
           rc == CURLE_COULDNT_RESOLVE_PROXY || rc == CURLE_UNSUPPORTED_PROTOCOL;
}

void client_conn_error(client *c, const char *detail)
{
    if (!c->daemon_seen || !detail)
        errorf("Cannot connect to the Berth daemon at %s. Is the daemon running?", c->host);
    else
        errorf("error during connect: %s", detail);
}

static void print_conn_error(client *c, CURLcode rc, const char *curl_msg)
{
    if (conn_error(rc) || !c->daemon_seen)
        errorf("Cannot connect to the Berth daemon at %s. Is the daemon running?", c->host);
    else
        errorf("error during connect: %s", curl_msg[0] ? curl_msg : curl_easy_strerror(rc));
}

static struct curl_slist *build_headers(const req *rq)
{
    struct curl_slist *h = NULL;
    char *ua = xasprintf("User-Agent: Berth-Client/%s (linux)", BERTH_VERSION);
    h = curl_slist_append(h, ua);
    free(ua);
    h = curl_slist_append(h, "Expect:");
    if (rq->content_type) {
        char *ct = xasprintf("Content-Type: %s", rq->content_type);
        h = curl_slist_append(h, ct);
        free(ct);
    } else if (!rq->body && !strcmp(rq->method, "POST"))
        h = curl_slist_append(h, "Content-Type:"); /* no form type for empty POSTs */
    if (rq->body_fd >= 0) h = curl_slist_append(h, "Transfer-Encoding: chunked");
    return h;
}

static void setup_body(CURL *h, const req *rq, xfer *x)
{
    if (rq->body_fd >= 0) {
        curl_easy_setopt(h, CURLOPT_POST, 1L);
        curl_easy_setopt(h, CURLOPT_READFUNCTION, on_read);
        curl_easy_setopt(h, CURLOPT_READDATA, x);
    } else if (rq->body || !strcmp(rq->method, "POST")) {
        curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)rq->body_len);
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, rq->body ? rq->body : "");
    }
    if (strcmp(rq->method, "GET") && strcmp(rq->method, "POST"))
        curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, rq->method);
    if (!strcmp(rq->method, "HEAD")) curl_easy_setopt(h, CURLOPT_NOBODY, 1L);
}

static int perform(client *c, const req *rq, resp *r, char *api_out)
{
    memset(r, 0, sizeof *r);
    CURL *h = curl_easy_init();
    if (!h) {
        errorf("cannot initialize HTTP client");
        return -1;
    }
    char *url = rq->unversioned ? xasprintf("%s%s", c->base, rq->path)
                                : xasprintf("%s/v%s%s", c->base, c->api, rq->path);
    xfer x = {.h = h, .rq = rq, .r = r};
    char errbuf[CURL_ERROR_SIZE] = {0};
    struct curl_slist *hdrs = build_headers(rq);
    curl_easy_setopt(h, CURLOPT_URL, url);
    if (c->sock) curl_easy_setopt(h, CURLOPT_UNIX_SOCKET_PATH, c->sock);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &x);
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, &x);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_PROXY, "");
    setup_body(h, rq, &x);
    log_debug("%s %s", rq->method, url);
    CURLcode rc = curl_easy_perform(h);
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &r->status);
    if (r->status > 0) c->daemon_seen = true;
    int ret = 0;
    if (rc != CURLE_OK && !(x.stopped && rc == CURLE_WRITE_ERROR)) {
        if (r->status > 0 && rc == CURLE_PARTIAL_FILE)
            ret = 0;
        else {
            print_conn_error(c, rc, errbuf);
            ret = -1;
        }
    }
    if (api_out) snprintf(api_out, 16, "%s", x.api_version);
    curl_slist_free_all(hdrs);
    curl_easy_cleanup(h);
    free(url);
    return ret;
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

int client_do(client *c, const req *rq, resp *r)
{
    memset(r, 0, sizeof *r);
    if (!rq->unversioned && client_negotiate(c) < 0) return -1;
    return perform(c, rq, r, NULL);
}

char *resp_error_message(const resp *r)
{
    json_error_t je;
    json_t *j = r->body.len ? json_loadb(r->body.data, r->body.len, 0, &je) : NULL;
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
        *out = r.body.len ? json_loadb(r.body.data, r.body.len, JSON_DECODE_ANY, &je) : NULL;
        if (!*out) *out = json_null();
    }
    resp_free(&r);
    return 0;
}
