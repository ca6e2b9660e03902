/* http.h: the Engine API's HTTP layer: berthd's own HTTP/1.1 server
 * (http.c, wire format in http_parse.c).
 *
 * One thread per connection, keep-alive. A request is matched against the
 * route table (api.c) once its headers are in; its body is collected in
 * memory (JSON, capped) or spooled to a temp file (tarballs), then the
 * handler runs and sets exactly one response: JSON, an error, raw bytes, a
 * stream (chunked encoding) or a hijacked connection. Streams and hijack
 * functions run in the connection's thread once the handler returns. */
#ifndef BERTH_HTTP_H
#define BERTH_HTTP_H

#include <jansson.h>
#include <stdbool.h>

#include "common/util.h"

struct http_conn; /* http.c's connection: socket, buffer, parsed head, query */
struct http_resp; /* the response being built */

typedef struct req req;
typedef void (*handler_fn)(req *r);

enum body_mode { BODY_NONE, BODY_MEM, BODY_FILE };

typedef struct route {
    const char *method;  /* "GET", "POST", "DELETE", "HEAD", "PUT" */
    const char *pattern; /* "/images/{name*}/json": {x} one segment, {x*} one or more */
    handler_fn fn;
    enum body_mode body;
} route;

#define REQ_MAX_PARAMS 4

struct req {
    struct http_conn *conn;
    const char *method;
    char *path;    /* without /vN.NN prefix, decoded (points into the connection's buffer) */
    int api_minor; /* 41 for v1.41; the maximum when unversioned */
    char *params[REQ_MAX_PARAMS];
    int nparams;
    const route *route;
    /* body */
    sbuf body;       /* BODY_MEM */
    int body_fd;     /* BODY_FILE: spooled, rewound before the handler runs */
    char *body_path; /* BODY_FILE temp path, unlinked at the end */
    bool body_error; /* too large or spool failure */
    /* response */
    struct http_resp *resp; /* NULL until a resp_* call */
    unsigned status;
};

/* Server setup. tmpdir is where request bodies are spooled. */
typedef struct http_server http_server;
http_server *http_start(int listen_fd, const route *routes, const char *tmpdir, berr *e);
void http_stop(http_server *s);
/* Makes every stream and hijacked connection end (called by http_stop). */
void http_shutdown_begin(void);

/* request accessors */
const char *req_query(req *r, const char *key);
bool req_query_bool(req *r, const char *key, bool dflt); /* "1", "true", "True" */
/* all values of a repeated query key (names=a&names=b); returns a malloc'd
 * NULL-ended array of borrowed strings */
const char **req_query_all(req *r, const char *key, size_t *n);
const char *req_header(req *r, const char *name);
const char *req_param(req *r, int i);
/* Body parsed as JSON; 400 set on the request and NULL when malformed. */
json_t *req_json(req *r);

/* responses (exactly one per request) */
void resp_json(req *r, unsigned status, json_t *j); /* steals j */
void resp_error(req *r, unsigned status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void resp_berr(req *r, const berr *e);
void resp_empty(req *r, unsigned status);
void resp_bytes(req *r, unsigned status, const char *ctype, const void *data, size_t len);
void resp_header(req *r, const char *name, const char *value); /* after a resp_* call */

/* Streaming: once the handler returns, the headers go out and fn runs (in
 * the connection's thread) and writes with stream_write, each call one
 * chunk; the response is chunked (HTTP/1.0: raw, then the connection
 * closes). free_arg (may be NULL) runs after fn, before the last chunk. */
typedef struct stream stream;
typedef void (*stream_fn)(stream *st, void *arg);
void resp_stream(req *r, unsigned status, const char *ctype, stream_fn fn, void *arg,
                 void (*free_arg)(void *));
/* -1 when the client went away or the daemon is shutting down. */
int stream_write(stream *st, const void *p, size_t n);
int stream_json(stream *st, json_t *j); /* writes j + "\n", steals j */
/* True when the client closed its end (polls the socket, no wait), a write
 * failed, or the daemon is shutting down. */
bool stream_client_gone(stream *st);
/* A file descriptor for writers such as libarchive: the write end of a pipe
 * whose bytes a relay thread sends as chunks (made on the first call; -1 if
 * it cannot be). stream_write goes through it too once it exists, so the
 * order is kept; all of it is sent before the last chunk. */
int stream_fd(stream *st);

/* Hijack (attach, exec start): with "Upgrade: tcp" (or h2c) the answer is
 * "101 UPGRADED" and fn gets the client socket (blocking; read and write),
 * or, when the client sent bytes behind its request before the 101, one
 * end of a socketpair that delivers those bytes first and then relays the
 * socket; without Upgrade, a 200 with ctype whose body is whatever fn
 * writes to `sock` until it returns (reads on `sock` see EOF at once). The
 * connection closes after fn. fn runs in the connection's thread;
 * free_arg (may be NULL) after it. */
typedef void (*hijack_fn)(int sock, void *arg);
void resp_hijack(req *r, const char *ctype, hijack_fn fn, void *arg, void (*free_arg)(void *));
bool req_wants_upgrade(req *r);

#endif
