/* stream.c: hijacked connections and the local terminal for the berth CLI.
 *
 * Attach and exec-start take over their HTTP connection (the daemon answers
 * "101 UPGRADED" to "Upgrade: tcp" and the socket then carries raw bytes):
 * hijack() sends that request and reads the answer with http.c's wire code
 * on a connection of its own. Also here: Docker's
 * stdout/stderr frame demultiplexer (8-byte headers), the pump that copies
 * stdin to the container and its output to ours, raw mode for the local
 * terminal (restored on exit and on fatal signals), window sizes sent to
 * the daemon at start and on SIGWINCH, signal forwarding (--sig-proxy) and
 * detach key sequences (ctrl-p ctrl-q by default). */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <termios.h>
#include <unistd.h>

#include "cli/cli.h"

/* ---- hijack ---- */

int hijack(client *c, hconn *h, const char *path, const char *json_body, long *status, char **err)
{
    *err = NULL;
    *status = 0;
    if (hconn_request(c, h, "POST", path, json_body ? "application/json" : "text/plain", json_body,
                      true) < 0)
        return -1;
    if (hconn_head(h, -1) < 0) {
        errorf("error during connect: unexpected response from the daemon");
        hconn_close(h);
        return -1;
    }
    *status = h->status;
    if (h->status == 101 || h->status == 200) return 0;
    *err = hconn_error(h);
    hconn_close(h);
    return -1;
}

/* ---- frames ---- */

int demux_feed(demux *d, const char *p, size_t n)
{
    while (n) {
        if (d->left == 0) {
            size_t take = 8 - d->hlen < n ? 8 - d->hlen : n;
            memcpy(d->hdr + d->hlen, p, take);
            d->hlen += take;
            p += take;
            n -= take;
            if (d->hlen < 8) return 0;
            d->hlen = 0;
            d->stream = d->hdr[0];
            d->left = (size_t)d->hdr[4] << 24 | (size_t)d->hdr[5] << 16 | (size_t)d->hdr[6] << 8 |
                      d->hdr[7];
            if (d->stream > 3) {
                errorf("Unrecognized input header: %d", d->stream);
                return -1;
            }
            continue;
        }
        size_t take = d->left < n ? d->left : n;
        if (d->stream == 3)
            sbuf_add(&d->syserr, p, take);
        else if (write_all(d->stream == 2 ? 2 : 1, p, take) < 0)
            return -1;
        d->left -= take;
        p += take;
        n -= take;
        if (d->stream == 3 && d->left == 0) {
            errorf("error from daemon in stream: %.*s", (int)d->syserr.len, d->syserr.data);
            return -1;
        }
    }
    return 0;
}

void demux_free(demux *d)
{
    sbuf_free(&d->syserr);
}

/* ---- detach keys ---- */

int detach_keys_parse(const char *spec, unsigned char *out, size_t max, size_t *n, char **err)
{
    static const char ctrl_extra[] = "[\\]^_";
    *n = 0;
    char *copy = xstrdup(spec), *save = NULL;
    int rc = 0;
    for (char *k = strtok_r(copy, ",", &save); k && rc == 0; k = strtok_r(NULL, ",", &save)) {
        int code = -1;
        if (strlen(k) == 1)
            code = (unsigned char)k[0];
        else if (strlen(k) == 6 && !strncasecmp(k, "ctrl-", 5)) {
            char ch = (char)tolower((unsigned char)k[5]);
            if (ch >= 'a' && ch <= 'z') code = ch - 'a' + 1;
            if (ch == '@') code = 0;
            if (strchr(ctrl_extra, ch) && ch)
                code = 27 + (int)(strchr(ctrl_extra, ch) - ctrl_extra);
        }
        if (code < 0 || *n >= max) {
            *err = xasprintf("Unknown character: '%s'", k);
            rc = -1;
        } else
            out[(*n)++] = (unsigned char)code;
    }
    free(copy);
    return rc;
}

/* ---- terminal and signals ---- */

static struct termios saved_tio;
static int saved_tty_fd = -1;
static int sig_fds[2] = {-1, -1};

void tty_restore(void)
{
    if (saved_tty_fd >= 0) tcsetattr(saved_tty_fd, TCSANOW, &saved_tio);
    saved_tty_fd = -1;
}

int tty_raw(int fd)
{
    struct termios t;
    if (saved_tty_fd >= 0) return 0;
    if (tcgetattr(fd, &t) < 0) return -1;
    saved_tio = t;
    t.c_iflag &= ~(tcflag_t)(IGNBRK | BRKINT | PARMRK | ISTRIP | INLCR | IGNCR | ICRNL | IXON);
    t.c_oflag &= ~(tcflag_t)OPOST;
    t.c_lflag &= ~(tcflag_t)(ECHO | ECHONL | ICANON | ISIG | IEXTEN);
    t.c_cflag &= ~(tcflag_t)(CSIZE | PARENB);
    t.c_cflag |= CS8;
    t.c_cc[VMIN] = 1;
    t.c_cc[VTIME] = 0;
    if (tcsetattr(fd, TCSANOW, &t) < 0) return -1;
    saved_tty_fd = fd;
    static bool registered;
    if (!registered) atexit(tty_restore);
    registered = true;
    return 0;
}

static void on_signal(int s)
{
    int e = errno;
    unsigned char b = (unsigned char)s;
    if (write(sig_fds[1], &b, 1) < 0) {
    }
    errno = e;
}

static const struct {
    int sig;
    const char *name;
} proxied[] = {{SIGHUP, "HUP"},   {SIGINT, "INT"},   {SIGQUIT, "QUIT"},
               {SIGUSR1, "USR1"}, {SIGUSR2, "USR2"}, {SIGALRM, "ALRM"},
               {SIGTERM, "TERM"}, {SIGTSTP, "TSTP"}, {0, NULL}};

static void catch_signal(int s, bool on)
{
    struct sigaction sa = {.sa_handler = on ? on_signal : SIG_DFL, .sa_flags = SA_RESTART};
    sigemptyset(&sa.sa_mask);
    sigaction(s, &sa, NULL);
}

/* Installs the handlers the pump needs; returns the read end of the pipe. */
static int signals_start(const pump_opts *o)
{
    if (sig_fds[0] < 0 && pipe2(sig_fds, O_CLOEXEC | O_NONBLOCK) < 0) return -1;
    for (int i = 0; proxied[i].sig; i++)
        if (o->proxy_id || (saved_tty_fd >= 0 && proxied[i].sig != SIGTSTP))
            catch_signal(proxied[i].sig, true);
    if (o->resize_base) catch_signal(SIGWINCH, true);
    return sig_fds[0];
}

static void signals_stop(const pump_opts *o)
{
    for (int i = 0; proxied[i].sig; i++) catch_signal(proxied[i].sig, false);
    catch_signal(SIGWINCH, false);
}

void tty_resize(client *c, const char *base, int extra)
{
    struct winsize ws;
    if (ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) < 0 || ws.ws_row == 0 || ws.ws_col == 0) return;
    char *path = xasprintf("%s/resize?h=%d&w=%d", base, ws.ws_row + extra, ws.ws_col + extra);
    req rq = {.method = "POST", .path = path, .body_fd = -1};
    resp r;
    if (client_do(c, &rq, &r) == 0 && r.status >= 400) log_debug("resize: %ld", r.status);
    resp_free(&r);
    free(path);
}

static void forward_signal(client *c, const char *id, int s)
{
    const char *name = NULL;
    for (int i = 0; proxied[i].sig; i++)
        if (proxied[i].sig == s) name = proxied[i].name;
    if (!name) return;
    char *e = url_escape(id);
    char *path = xasprintf("/containers/%s/kill?signal=%s", e, name);
    req rq = {.method = "POST", .path = path, .body_fd = -1};
    resp r;
    client_do(c, &rq, &r);
    resp_free(&r);
    free(path);
    free(e);
}

/* Handles pending signals: forwards them, follows the window size, or
 * restores the terminal and dies of a fatal one. */
static void drain_signals(const pump_opts *o)
{
    unsigned char b;
    while (read(sig_fds[0], &b, 1) == 1) {
        if (b == SIGWINCH && o->resize_base)
            tty_resize(o->c, o->resize_base, 0);
        else if (o->proxy_id)
            forward_signal(o->c, o->proxy_id, b);
        else if (b != SIGWINCH) {
            tty_restore();
            catch_signal(b, false);
            raise(b);
        }
    }
}

/* ---- the pump ---- */

typedef struct pump {
    const pump_opts *o;
    hconn *h;
    demux dm;
    sbuf out; /* bytes for the socket */
    size_t out_off;
    bool in_open, wr_shut, detached;
    unsigned char keys[32];
    size_t nkeys, matched;
} pump;

/* Appends stdin bytes, holding back a partial detach sequence (tty only). */
static void pump_input(pump *p, const unsigned char *b, size_t n)
{
    if (!p->nkeys) {
        sbuf_add(&p->out, b, n);
        return;
    }
    for (size_t i = 0; i < n && !p->detached; i++) {
        if (b[i] == p->keys[p->matched]) {
            if (++p->matched == p->nkeys) p->detached = true;
            continue;
        }
        sbuf_add(&p->out, p->keys, p->matched);
        p->matched = 0;
        if (b[i] == p->keys[0])
            p->matched = 1;
        else
            sbuf_add(&p->out, &b[i], 1);
    }
}

static int pump_output(pump *p, const char *b, size_t n)
{
    if (p->o->tty) return write_all(STDOUT_FILENO, b, n) < 0 ? -1 : 0;
    return demux_feed(&p->dm, b, n);
}

static int pump_flush(pump *p)
{
    while (p->out_off < p->out.len) {
        ssize_t n = send(p->h->fd, p->out.data + p->out_off, p->out.len - p->out_off, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && errno == EAGAIN) return 0;
        if (n < 0) return -1;
        p->out_off += (size_t)n;
    }
    p->out.len = p->out_off = 0;
    if (!p->in_open && !p->wr_shut) {
        shutdown(p->h->fd, SHUT_WR);
        p->wr_shut = true;
    }
    return 0;
}

static int pump_read_stdin(pump *p)
{
    unsigned char buf[32768];
    ssize_t n = read(p->o->in_fd, buf, sizeof buf);
    if (n < 0 && (errno == EINTR || errno == EAGAIN)) return 0;
    if (n <= 0) {
        p->in_open = false;
        return pump_flush(p);
    }
    pump_input(p, buf, (size_t)n);
    return pump_flush(p);
}

/* One poll round: 1 when the stream ended, -1 on error, 0 to go on. */
static int pump_step(pump *p, int sigfd)
{
    struct pollfd f[3] = {
        {.fd = p->h->fd, .events = POLLIN | (p->out.len > p->out_off ? POLLOUT : 0)},
        {.fd = p->in_open && p->out.len - p->out_off < 65536 ? p->o->in_fd : -1, .events = POLLIN},
        {.fd = sigfd, .events = POLLIN},
    };
    if (poll(f, 3, -1) < 0) return errno == EINTR ? 0 : -1;
    if (f[2].revents) drain_signals(p->o);
    if (f[0].revents & (POLLIN | POLLHUP | POLLERR)) {
        char buf[32768];
        ssize_t n = read(p->h->fd, buf, sizeof buf);
        if (n == 0) return 1;
        if (n < 0 && errno != EAGAIN && errno != EINTR) return -1;
        if (n > 0 && pump_output(p, buf, (size_t)n) < 0) return -1;
    }
    if ((f[0].revents & POLLOUT) && pump_flush(p) < 0) return -1;
    if (f[1].revents && pump_read_stdin(p) < 0) return -1;
    if (!p->in_open && !p->o->output && p->wr_shut) return 1;
    return 0;
}

int stream_pump(hconn *h, const pump_opts *o)
{
    pump p = {.o = o, .h = h, .in_open = o->in_fd >= 0};
    if (o->tty && o->in_fd >= 0) {
        char *err = NULL;
        if (detach_keys_parse(o->detach_keys && *o->detach_keys ? o->detach_keys : "ctrl-p,ctrl-q",
                              p.keys, sizeof p.keys, &p.nkeys, &err) < 0) {
            log_warn("invalid detach escape keys, using default: %s", err);
            free(err);
            detach_keys_parse("ctrl-p,ctrl-q", p.keys, sizeof p.keys, &p.nkeys, &err);
        }
        if (isatty(o->in_fd) && tty_raw(o->in_fd) < 0) {
            errorf("unable to setup input stream: unable to set IO streams as raw terminal: %s",
                   go_strerror(errno));
            return -1;
        }
    }
    int sigfd = signals_start(o);
    fflush(stdout);
    int rc = 0;
    if (h->off < h->in.len) rc = pump_output(&p, h->in.data + h->off, h->in.len - h->off) < 0;
    h->off = h->in.len;
    fcntl(h->fd, F_SETFL, fcntl(h->fd, F_GETFL) | O_NONBLOCK);
    while (rc == 0 && !p.detached) rc = pump_step(&p, sigfd);
    signals_stop(o);
    tty_restore();
    demux_free(&p.dm);
    sbuf_free(&p.out);
    if (p.detached) return PUMP_DETACHED;
    return rc < 0 ? PUMP_ERROR : PUMP_EOF;
}
