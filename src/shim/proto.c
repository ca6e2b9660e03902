/* proto.c: the shim's wire protocol, shared by the berth-shim binary and the
 * daemon-side client (client.c): connecting to shim.sock, one-line JSON
 * requests and replies, Docker's stream frame header, exec ids, and the
 * readiness line the shim sends to shim_launch. See internal.h for the
 * protocol itself. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "common/jsonutil.h"
#include "internal.h"

char *proto_path(const char *state_dir, const char *name)
{
    return xasprintf("%s/%s", state_dir, name);
}

char *proto_exec_exit_path(const char *state_dir, const char *exec_id)
{
    return xasprintf("%s/exec-%s.exit", state_dir, exec_id);
}

bool proto_exec_id_valid(const char *id)
{
    size_t n = id ? strlen(id) : 0;
    if (n == 0 || n > 128 || id[0] == '.') return false;
    return strspn(id, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-") == n;
}

/* Long state dirs do not fit sun_path: go through /proc/self/fd/N. */
int proto_connect(const char *state_dir, berr *e)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    int dfd = -1;
    if ((size_t)snprintf(sa.sun_path, sizeof sa.sun_path, "%s/%s", state_dir, SHIM_SOCK) >=
        sizeof sa.sun_path) {
        dfd = open(state_dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
        if (dfd < 0) return berr_errno(e, 503, "no shim at %s", state_dir);
        snprintf(sa.sun_path, sizeof sa.sun_path, "/proc/self/fd/%d/%s", dfd, SHIM_SOCK);
    }
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int r = fd < 0 ? -1 : connect(fd, (struct sockaddr *)&sa, sizeof sa);
    int saved = errno;
    if (dfd >= 0) close(dfd);
    if (r < 0) {
        if (fd >= 0) close(fd);
        errno = saved;
        return berr_errno(e, 503, "no shim at %s", state_dir);
    }
    return fd;
}

int proto_send(int fd, const json_t *msg, berr *e)
{
    char *s = json_fast_dumps(msg, JSON_COMPACT);
    if (!s) return berr_set(e, 500, "encode shim request");
    size_t n = strlen(s);
    s[n] = '\n'; /* json_dumps' NUL becomes the line end */
    size_t done = 0;
    while (done < n + 1) {
        ssize_t w = send(fd, s + done, n + 1 - done, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR) continue;
        if (w < 0) {
            free(s);
            return berr_errno(e, 500, "send to shim");
        }
        done += (size_t)w;
    }
    free(s);
    return 0;
}

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Waits for input; 1 ready, 0 timeout, -1 error. */
static int wait_in(int fd, int64_t deadline)
{
    for (;;) {
        int left = deadline < 0 ? -1 : (int)(deadline - mono_ms());
        if (deadline >= 0 && left < 0) left = 0;
        struct pollfd p = {fd, POLLIN, 0};
        int r = poll(&p, 1, left);
        if (r < 0 && errno == EINTR) continue;
        return r;
    }
}

/* Peeks, then consumes up to and including '\n' only. */
json_t *proto_recv(int fd, int timeout_ms, bool *timed_out, berr *e)
{
    int64_t deadline = timeout_ms < 0 ? -1 : mono_ms() + timeout_ms;
    char buf[4096];
    sbuf line = {0};
    if (timed_out) *timed_out = false;
    for (;;) {
        int r = wait_in(fd, deadline);
        if (r == 0 && timed_out) *timed_out = true;
        if (r <= 0) {
            sbuf_free(&line);
            return r == 0 ? (berr_set(e, 504, "timed out waiting for the shim"), NULL)
                          : (berr_errno(e, 500, "poll shim socket"), NULL);
        }
        ssize_t n = recv(fd, buf, sizeof buf, MSG_PEEK);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) {
            sbuf_free(&line);
            return n == 0 ? (berr_set(e, 502, "the shim closed the connection"), NULL)
                          : (berr_errno(e, 500, "read from shim"), NULL);
        }
        char *nl = memchr(buf, '\n', (size_t)n);
        size_t take = nl ? (size_t)(nl - buf) + 1 : (size_t)n;
        if (read_all(fd, buf, take) != (ssize_t)take) {
            sbuf_free(&line);
            return berr_errno(e, 500, "read from shim"), NULL;
        }
        sbuf_add(&line, buf, nl ? take - 1 : take);
        if (nl) break;
        if (line.len > SHIM_MAX_LINE) {
            sbuf_free(&line);
            return berr_set(e, 502, "shim reply too long"), NULL;
        }
    }
    json_t *j = json_parse_body(line.data, line.len, e);
    sbuf_free(&line);
    return j;
}

int proto_check(const json_t *reply, berr *e)
{
    if (json_is_true(json_object_get(reply, "ok"))) return 0;
    int status = (int)json_integer_value(json_object_get(reply, "status"));
    const char *msg = jstr(reply, "message");
    return berr_set(e, status ? status : 500, "%s", msg ? msg : "shim error");
}

void proto_frame_header(unsigned char hdr[8], int stream, uint32_t len)
{
    hdr[0] = (unsigned char)stream;
    hdr[1] = hdr[2] = hdr[3] = 0;
    hdr[4] = (unsigned char)(len >> 24);
    hdr[5] = (unsigned char)(len >> 16);
    hdr[6] = (unsigned char)(len >> 8);
    hdr[7] = (unsigned char)len;
}

/* ---- readiness: "ok <pid>\n" or "err <status> <message>\n" ---- */
void proto_ready_ok(int fd, pid_t pid)
{
    char line[64];
    int n = snprintf(line, sizeof line, "ok %d\n", (int)pid);
    (void)write_all(fd, line, (size_t)n); /* the launcher may be gone: nothing to tell */
}

void proto_ready_err(int fd, const berr *e)
{
    char line[sizeof e->msg + 32];
    int n = snprintf(line, sizeof line, "err %d %s\n", e->status ? e->status : 500, e->msg);
    for (char *p = line; p < line + n - 1; p++)
        if (*p == '\n') *p = ' ';
    (void)write_all(fd, line, (size_t)n);
}

/* Reads until EOF (the shim closes its end after the line). */
int proto_ready_read(int fd, int timeout_ms, pid_t *pid, berr *e)
{
    int64_t deadline = mono_ms() + timeout_ms;
    char buf[sizeof e->msg + 32];
    size_t len = 0;
    while (len < sizeof buf - 1) {
        int r = wait_in(fd, deadline);
        if (r == 0)
            return berr_set(e, 500, "timed out waiting for the shim to start the container");
        if (r < 0) return berr_errno(e, 500, "wait for the shim");
        ssize_t n = read(fd, buf + len, sizeof buf - 1 - len);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) return berr_errno(e, 500, "read from the shim");
        if (n == 0) break;
        len += (size_t)n;
        if (memchr(buf, '\n', len)) break;
    }
    buf[len] = 0;
    char *nl = strchr(buf, '\n');
    if (!nl) return berr_set(e, 500, "the shim exited before starting the container");
    *nl = 0;
    int status = 0, off = 0;
    if (sscanf(buf, "ok %d", pid) == 1) return 0;
    if (sscanf(buf, "err %d %n", &status, &off) >= 1 && off > 0)
        return berr_set(e, status, "%s", buf + off);
    return berr_set(e, 500, "unexpected message from the shim: %s", buf);
}
