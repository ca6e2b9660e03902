/* server.c: the shim's single-threaded event loop. One poll() over the
 * SIGCHLD signalfd, the listening socket, the stdio of the container and of
 * its exec'd processes, and every client connection. Output read from a
 * process goes to the json-file log (the container's only) and to each
 * attached client's queue; a client whose queue grows past
 * SHIM_CLIENT_MAX_QUEUE, or whose socket fails, is dropped, so neither the
 * container nor the log ever waits for a client. Stdin flows the other way
 * with back-pressure: a client is not read while the process has
 * SHIM_STDIN_MAX_QUEUE bytes of its input pending. */
#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/jsonutil.h"
#include "server.h"

enum { K_SIG, K_LISTEN, K_OUT0, K_OUT1, K_IN, K_CLIENT };

static char iobuf[SHIM_READ_CHUNK]; /* one buffer for every read */

int64_t shim_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void set_nonblock(int fd)
{
    int fl = fcntl(fd, F_GETFL);
    if (fl >= 0) fcntl(fd, F_SETFL, fl | O_NONBLOCK);
}

/* ---- output queues ---- */
void outq_add(outq *q, const void *p, size_t n)
{
    if (q->len + n > q->cap && q->off) {
        memmove(q->buf, q->buf + q->off, q->len - q->off);
        q->len -= q->off, q->off = 0;
    }
    if (q->len + n > q->cap) {
        size_t cap = q->cap ? q->cap : 4096;
        while (cap < q->len + n) cap *= 2;
        q->buf = xrealloc(q->buf, cap);
        q->cap = cap;
    }
    memcpy(q->buf + q->len, p, n);
    q->len += n;
}

size_t outq_pending(const outq *q)
{
    return q->len - q->off;
}

int outq_flush(outq *q, int fd)
{
    while (q->off < q->len) {
        ssize_t w = write(fd, q->buf + q->off, q->len - q->off);
        if (w < 0 && errno == EINTR) continue;
        if (w < 0) return errno == EAGAIN ? 0 : -1;
        q->off += (size_t)w;
    }
    q->off = q->len = 0;
    if (q->cap > 65536) outq_free(q); /* do not keep a burst's memory */
    return 0;
}

void outq_free(outq *q)
{
    free(q->buf);
    memset(q, 0, sizeof *q);
}

/* ---- clients ---- */
client *client_new(shim *sh, int fd, enum client_state st)
{
    client *cl = xcalloc(1, sizeof *cl);
    cl->fd = fd;
    cl->state = st;
    if (st == CL_REQUEST) cl->deadline = shim_now_ms() + SHIM_REQUEST_TIMEOUT_MS;
    cl->next = sh->clients;
    sh->clients = cl;
    return cl;
}

static void client_free(client *cl)
{
    /* read what the client sent and we did not take, so that close() does
     * not turn into ECONNRESET for a peer still reading our last output */
    for (int i = 0; i < 16 && read(cl->fd, iobuf, sizeof iobuf) > 0; i++) {
    }
    close(cl->fd);
    sbuf_free(&cl->req);
    outq_free(&cl->out);
    free(cl->exec_id);
    free(cl);
}

static void client_flush(client *cl)
{
    if (cl->dead) return;
    if (outq_flush(&cl->out, cl->fd) < 0)
        cl->dead = true;
    else if (cl->state == CL_CLOSING && !outq_pending(&cl->out))
        cl->dead = true;
}

/* After the last bytes are queued: close once they are written (bounded). */
void client_finish(client *cl)
{
    cl->state = CL_CLOSING;
    cl->t = NULL;
    cl->deadline = shim_now_ms() + SHIM_CLOSE_TIMEOUT_MS;
    client_flush(cl);
}

static void client_send_json(client *cl, json_t *msg)
{
    char *s = json_fast_dumps(msg, JSON_COMPACT);
    json_decref(msg);
    if (!s) {
        cl->dead = true;
        return;
    }
    outq_add(&cl->out, s, strlen(s));
    outq_add(&cl->out, "\n", 1);
    free(s);
    client_flush(cl);
}

void client_reply(client *cl, json_t *reply)
{
    client_send_json(cl, reply);
    client_finish(cl);
}

void client_reply_err(client *cl, const berr *e)
{
    client_reply(cl, json_pack("{s:b,s:i,s:s}", "ok", 0, "status", e->status ? e->status : 500,
                               "message", e->msg));
}

void client_attach(shim *sh, client *cl, target *t, bool in, bool out, bool err)
{
    cl->state = CL_STREAM;
    cl->deadline = 0;
    cl->t = t;
    cl->want_in = in, cl->want_out = out, cl->want_err = err;
    cl->raw = t->tty;
    json_t *ok = json_pack("{s:b,s:b,s:i}", "ok", 1, "tty", t->tty, "pid", (int)t->pid);
    if (cl->fd != sh->attach_fd)
        client_send_json(cl, ok); /* the launch-time attach has no reply */
    else
        json_decref(ok);
}

/* Queues output for a client; one too far behind is dropped. */
static void client_output(client *cl, int stream, const char *p, size_t n)
{
    if (cl->dead || !(stream == 1 ? cl->want_out : cl->want_err)) return;
    if (!cl->raw) {
        unsigned char hdr[8];
        proto_frame_header(hdr, stream, (uint32_t)n);
        outq_add(&cl->out, hdr, sizeof hdr);
    }
    outq_add(&cl->out, p, n);
    client_flush(cl);
    if (outq_pending(&cl->out) > SHIM_CLIENT_MAX_QUEUE) {
        log_warn("shim: dropping a client that does not keep up with the output");
        cl->dead = true;
    }
}

/* ---- targets ---- */
target *target_new(shim *sh, const char *exec_id, pid_t pid, bool tty)
{
    target *t = xcalloc(1, sizeof *t);
    t->exec_id = exec_id ? xstrdup(exec_id) : NULL;
    t->pid = pid;
    t->tty = tty;
    t->in_fd = t->out_fd[0] = t->out_fd[1] = -1;
    t->next = sh->targets;
    sh->targets = t;
    return t;
}

target *target_find_exec(shim *sh, const char *exec_id)
{
    for (target *t = sh->targets; t; t = t->next)
        if (!t->dead && t->exec_id && !strcmp(t->exec_id, exec_id)) return t;
    return NULL;
}

static void target_free(target *t)
{
    if (t->in_fd >= 0 && t->in_fd != t->out_fd[0]) close(t->in_fd);
    for (int i = 0; i < 2; i++)
        if (t->out_fd[i] >= 0) close(t->out_fd[i]);
    outq_free(&t->in_q);
    free(t->exec_id);
    free(t);
}

static void close_stdin_now(target *t)
{
    if (t->in_fd >= 0 && t->in_fd != t->out_fd[0]) close(t->in_fd);
    t->in_fd = -1;
    outq_free(&t->in_q);
}

void target_close_stdin(target *t)
{
    if (t->tty) return; /* a pty has no separate stdin to close */
    if (outq_pending(&t->in_q))
        t->in_close = true;
    else
        close_stdin_now(t);
}

static void target_flush_stdin(target *t)
{
    if (t->in_fd < 0) return;
    if (outq_flush(&t->in_q, t->in_fd) < 0)
        close_stdin_now(t); /* the process closed its stdin */
    else if (t->in_close && !outq_pending(&t->in_q))
        close_stdin_now(t);
}

void target_stdin(shim *sh, target *t, const char *p, size_t n)
{
    if (t->in_fd < 0 || t->in_close || !n) return; /* no stdin: dropped, as docker does */
    outq_add(&t->in_q, p, n);
    target_flush_stdin(t);
}

static void deliver(shim *sh, target *t, int stream, const char *p, size_t n)
{
    if (t == sh->ctr) slog_data(&sh->log, stream, p, n);
    for (client *cl = sh->clients; cl; cl = cl->next)
        if (cl->state == CL_STREAM && cl->t == t) client_output(cl, stream, p, n);
}

static void close_out(target *t, int idx)
{
    if (t->out_fd[idx] < 0) return;
    if (idx == 0 && t->tty) t->in_fd = -1; /* the same fd */
    close(t->out_fd[idx]);
    t->out_fd[idx] = -1;
}

/* One read; false once the fd is at its end (EOF, or EIO from a pty). */
static bool target_read(shim *sh, target *t, int idx)
{
    ssize_t n = read(t->out_fd[idx], iobuf, sizeof iobuf);
    if (n > 0) {
        deliver(sh, t, idx + 1, iobuf, (size_t)n);
        return true;
    }
    if (n < 0 && errno == EINTR) return true;
    if (n < 0 && errno == EAGAIN) return false;
    close_out(t, idx);
    return false;
}

/* The process is gone: take what is left in its pipes (bounded: a process
 * outside the pid namespace may still hold them), then finish it. */
static void target_reaped(shim *sh, target *t, int status)
{
    t->reaped = true;
    t->status = status;
    for (int idx = 0; idx < 2; idx++) {
        for (int i = 0; i < 64 && t->out_fd[idx] >= 0 && target_read(sh, t, idx); i++) {
        }
        close_out(t, idx);
    }
    if (t == sh->ctr && sh->log.fd >= 0) slog_flush(&sh->log, 1), slog_flush(&sh->log, 2);
    close_stdin_now(t);
    if (t == sh->ctr) {
        shim_container_finished(sh);
    } else {
        shim_exec_finished(sh, t, shim_exit_code(status));
        t->dead = true;
    }
}

static void on_sigchld(shim *sh)
{
    struct signalfd_siginfo si;
    while (read(sh->sig_fd, &si, sizeof si) == (ssize_t)sizeof si) {
    }
    for (;;) {
        int st;
        pid_t pid = waitpid(-1, &st, WNOHANG);
        if (pid <= 0) break;
        for (target *t = sh->targets; t; t = t->next)
            if (!t->dead && !t->reaped && t->pid == pid) {
                target_reaped(sh, t, st);
                break;
            } /* others: orphans reparented to us (subreaper) */
    }
}

/* ---- client input ---- */
static void on_request_bytes(shim *sh, client *cl, const char *p, size_t n)
{
    sbuf_add(&cl->req, p, n);
    char *nl = memchr(cl->req.data, '\n', cl->req.len);
    if (!nl) {
        if (cl->req.len > SHIM_MAX_LINE) cl->dead = true;
        return;
    }
    size_t len = (size_t)(nl - cl->req.data), rest = cl->req.len - len - 1;
    shim_request(sh, cl, cl->req.data, len);
    if (rest && cl->state == CL_STREAM && cl->want_in && cl->t)
        target_stdin(sh, cl->t, nl + 1, rest);
    sbuf_free(&cl->req);
}

static void on_client_eof(shim *sh, client *cl)
{
    cl->in_eof = true;
    if (cl->state == CL_REQUEST) cl->dead = true; /* no complete request */
    if (cl->state == CL_STREAM && cl->want_in && cl->t && (cl->t->exec_id || sh->stdin_once))
        target_close_stdin(cl->t);
}

static void on_client_in(shim *sh, client *cl)
{
    ssize_t n = read(cl->fd, iobuf, sizeof iobuf);
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) return;
    if (n < 0) {
        cl->dead = true;
        return;
    }
    if (n == 0) return on_client_eof(sh, cl);
    if (cl->state == CL_REQUEST)
        on_request_bytes(sh, cl, iobuf, (size_t)n);
    else if (cl->state == CL_STREAM && cl->want_in && cl->t)
        target_stdin(sh, cl->t, iobuf, (size_t)n);
    /* anything else a client sends is ignored */
}

static void on_client(shim *sh, client *cl, short rev)
{
    if (cl->dead) return;
    if (rev & POLLOUT) client_flush(cl);
    if (!cl->dead && !cl->in_eof && (rev & (POLLIN | POLLHUP | POLLERR))) on_client_in(sh, cl);
    if ((rev & (POLLHUP | POLLERR)) && cl->in_eof) cl->dead = true; /* fully closed */
}

static void on_listen(shim *sh)
{
    for (int i = 0; i < 16; i++) {
        int fd = accept4(sh->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) break;
        client_new(sh, fd, CL_REQUEST);
    }
}

/* ---- the poll set ---- */
static void padd(shim *sh, int fd, short ev, int kind, void *obj)
{
    if (sh->pn == sh->pcap) {
        sh->pcap = sh->pcap ? sh->pcap * 2 : 16;
        sh->pfd = xrealloc(sh->pfd, sh->pcap * sizeof *sh->pfd);
        sh->pobj = xrealloc(sh->pobj, sh->pcap * sizeof *sh->pobj);
        sh->pkind = xrealloc(sh->pkind, sh->pcap * sizeof *sh->pkind);
    }
    sh->pfd[sh->pn] = (struct pollfd){fd, ev, 0};
    sh->pobj[sh->pn] = obj;
    sh->pkind[sh->pn++] = kind;
}

static bool client_readable(const client *cl)
{
    if (cl->in_eof || cl->state == CL_CLOSING) return false;
    if (cl->state != CL_STREAM || !cl->want_in || !cl->t) return true;
    return outq_pending(&cl->t->in_q) < SHIM_STDIN_MAX_QUEUE;
}

static void build_poll(shim *sh)
{
    sh->pn = 0;
    padd(sh, sh->sig_fd, POLLIN, K_SIG, NULL);
    if (sh->listen_fd >= 0) padd(sh, sh->listen_fd, POLLIN, K_LISTEN, NULL);
    for (target *t = sh->targets; t; t = t->next) {
        if (t->dead) continue;
        bool in_pending = t->in_fd >= 0 && outq_pending(&t->in_q);
        if (t->out_fd[0] >= 0)
            padd(sh, t->out_fd[0], POLLIN | (t->tty && in_pending ? POLLOUT : 0), K_OUT0, t);
        if (t->out_fd[1] >= 0) padd(sh, t->out_fd[1], POLLIN, K_OUT1, t);
        if (!t->tty && in_pending) padd(sh, t->in_fd, POLLOUT, K_IN, t);
    }
    for (client *cl = sh->clients; cl; cl = cl->next)
        if (!cl->dead)
            padd(sh, cl->fd,
                 (client_readable(cl) ? POLLIN : 0) | (outq_pending(&cl->out) ? POLLOUT : 0),
                 K_CLIENT, cl);
}

static void dispatch(shim *sh, size_t i)
{
    short rev = sh->pfd[i].revents;
    target *t = sh->pobj[i];
    switch (sh->pkind[i]) {
    case K_SIG:
        on_sigchld(sh);
        break;
    case K_LISTEN:
        if (sh->listen_fd >= 0) on_listen(sh);
        break;
    case K_OUT0:
    case K_OUT1: {
        int idx = sh->pkind[i] == K_OUT1;
        if (t->dead || t->out_fd[idx] != sh->pfd[i].fd) break; /* closed meanwhile */
        if ((rev & POLLOUT) && t->tty) target_flush_stdin(t);
        if (rev & (POLLIN | POLLHUP | POLLERR)) target_read(sh, t, idx);
        break;
    }
    case K_IN:
        if (!t->dead && t->in_fd == sh->pfd[i].fd) target_flush_stdin(t);
        break;
    case K_CLIENT:
        on_client(sh, sh->pobj[i], rev);
        break;
    }
}

/* Drops timed-out clients, frees dead objects; the next poll timeout. */
static int sweep(shim *sh)
{
    int64_t now = shim_now_ms(), next = -1;
    for (client **pp = &sh->clients; *pp;) {
        client *cl = *pp;
        if (cl->deadline && now >= cl->deadline) cl->dead = true;
        if (!cl->dead) {
            if (cl->deadline && (next < 0 || cl->deadline < next)) next = cl->deadline;
            pp = &cl->next;
            continue;
        }
        *pp = cl->next;
        client_free(cl);
    }
    for (target **pp = &sh->targets; *pp;) {
        target *t = *pp;
        if (!t->dead || t == sh->ctr) {
            pp = &t->next;
            continue;
        }
        *pp = t->next;
        target_free(t);
    }
    if (sh->finished && (next < 0 || sh->close_deadline < next)) next = sh->close_deadline;
    return next < 0 ? -1 : (int)(next > now ? next - now : 0);
}

/* Runs until the container has exited and every client is served. */
void shim_loop(shim *sh)
{
    int timeout = -1;
    while (!sh->finished || (sh->clients && shim_now_ms() < sh->close_deadline)) {
        build_poll(sh);
        /* the heap is trimmed once nothing happened for 50 ms: a short
         * container's exit is not kept waiting behind it (~40 us) */
        int t = sh->trim_pending && (timeout < 0 || timeout > 50) ? 50 : timeout;
        int n = poll(sh->pfd, sh->pn, t);
        if (n == 0 && sh->trim_pending) malloc_trim(0), sh->trim_pending = false;
        if (n < 0 && errno != EINTR) {
            log_error("shim: poll: %s", strerror(errno));
            break;
        }
        for (size_t i = 0; n > 0 && i < sh->pn; i++)
            if (sh->pfd[i].revents) dispatch(sh, i);
        timeout = sweep(sh);
    }
    while (sh->clients) {
        client *cl = sh->clients;
        sh->clients = cl->next;
        client_free(cl);
    }
    while (sh->targets) {
        target *t = sh->targets;
        sh->targets = t->next;
        target_free(t);
    }
    sh->ctr = NULL;
    free(sh->pfd), free(sh->pobj), free(sh->pkind);
}
