/* http.h: the wire-level HTTP/1.1 calls of the berth CLI (http.c), shared
 * by client.c (API requests over a kept-alive connection) and stream.c
 * (hijacked attach/exec streams). The connection type hconn and the calls
 * the command files use (hconn_request, hconn_head, hconn_body ...) are
 * declared in cli.h. */
#ifndef BERTH_CLI_HTTP_H
#define BERTH_CLI_HTTP_H

#include "cli/cli.h"

/* One request head, optionally with an in-memory body sent along. */
typedef struct hhead {
    const char *method;
    const char *target; /* "/v1.41/containers/json" */
    const char *ctype;  /* Content-Type, or NULL */
    const char *body;   /* sent right after the head, or NULL */
    size_t body_len;
    bool length;  /* send Content-Length: body_len */
    bool chunked; /* Transfer-Encoding: chunked; the body follows with hconn_send_fd */
    bool upgrade; /* Connection: Upgrade, Upgrade: tcp */
} hhead;

/* Writes a request head (and its in-memory body); -1 with errno set. */
int hconn_send(client *c, hconn *h, const hhead *hd);
/* Streams fd to EOF as a chunked body; -1 when writing to the daemon
 * failed, -2 when reading fd failed (errno set either way). */
int hconn_send_fd(hconn *h, int fd);
/* Writes n bytes, reading whatever the peer sends meanwhile into h->in. */
int hconn_write(hconn *h, const void *p, size_t n);
/* Reads the response body: to fn as bytes arrive. 0 at its end, 1 when fn
 * returned false, -1 on EOF (h->eof) or error (errno). */
int hconn_body_stream(hconn *h, chunk_fn fn, void *ctx);
/* True when the whole response was read and the connection can carry
 * another request. */
bool hconn_reusable(const hconn *h);
/* True when an idle kept-alive connection still looks open (no EOF). */
bool hconn_idle_ok(const hconn *h);
/* Forgets the last response (keeps unread bytes) before the next request. */
void hconn_reset(hconn *h);

#endif
