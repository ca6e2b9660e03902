/* http.h: the Engine API's HTTP layer on top of libmicrohttpd.
 *
 * One thread per connection. A request is matched against the route table
 * (api.c) once its headers are in; its body is collected in memory (JSON,
 * capped) or spooled to a temp file (tarballs), then the handler runs and
 * sets exactly one response: JSON, an error, raw bytes, or a stream that a
 * worker thread writes through a pipe (chunked encoding). */
#ifndef BERTH_HTTP_H
#define BERTH_HTTP_H

#include <jansson.h>
#include <stdbool.h>

#include "common/util.h"

struct MHD_Connection;
struct MHD_Response;

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
    struct MHD_Connection *conn;
    const char *method;
    char *path;    /* without /vN.NN prefix, decoded */
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
    struct MHD_Response *resp;
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

/* Streaming: fn runs in its own thread and writes with stream_write; the
 * response is chunked. free_arg (may be NULL) runs after fn. */
typedef struct stream stream;
typedef void (*stream_fn)(stream *st, void *arg);
void resp_stream(req *r, unsigned status, const char *ctype, stream_fn fn, void *arg,
                 void (*free_arg)(void *));
/* -1 when the client went away. */
int stream_write(stream *st, const void *p, size_t n);
int stream_json(stream *st, json_t *j); /* writes j + "\n", steals j */
/* True when the client closed its end (polls the socket, no wait). */
bool stream_client_gone(stream *st);
int stream_fd(stream *st); /* the pipe's write end, for writers such as libarchive */

/* Hijack (attach, exec start): with "Upgrade: tcp" the answer is 101 and fn
 * gets the raw client socket (read and write); without it, a 200 with
 * ctype whose body is whatever fn writes to `sock` until it returns (the
 * connection then closes; reads on `sock` see EOF at once). fn runs in
 * its own thread; free_arg (may be NULL) after it. */
typedef void (*hijack_fn)(int sock, void *arg);
void resp_hijack(req *r, const char *ctype, hijack_fn fn, void *arg, void (*free_arg)(void *));
bool req_wants_upgrade(req *r);

#endif
