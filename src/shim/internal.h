/* internal.h: what the shim's own files share: the wire protocol helpers
 * (proto.c, used by both the berth-shim binary and the daemon-side client),
 * the json-file log writer (log.c), and the shim process's state (shim_*.c).
 *
 * Wire protocol on <state_dir>/shim.sock, one request per connection:
 *   client -> shim   one JSON object on one line: {"op":"...", ...}\n
 *   shim -> client   one JSON object on one line: {"ok":true, ...}\n or
 *                    {"ok":false,"status":409,"message":"..."}\n
 * and for "attach" and "exec" the connection then carries the stream:
 * output from the shim (Docker's 8-byte frames, or raw bytes with a tty),
 * stdin bytes from the client (shutdown(SHUT_WR) = end of stdin).
 * "wait" and "exec-wait" answer only once the process has exited. */
#ifndef BERTH_SHIM_INTERNAL_H
#define BERTH_SHIM_INTERNAL_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "common/util.h"

#define SHIM_SOCK "shim.sock"
#define SHIM_PID "shim.pid"
#define SHIM_EXIT "exit.json"
#define SHIM_INIT_PID "init.pid"
#define SHIM_MAX_LINE (256 * 1024) /* longest request or reply line */
#define SHIM_MAX_FDS 5 /* a shim's fds from berthd: ready, go, attach, cgroup and /dev trees */

/* ---- proto.c ---- */
/* Connects to <state_dir>/shim.sock (also when the path is longer than
 * sun_path allows). -1 with 503 when no shim listens there. */
int proto_connect(const char *state_dir, berr *e);
/* Sends one JSON line (blocking, MSG_NOSIGNAL). */
int proto_send(int fd, const json_t *msg, berr *e);
/* Reads exactly one line (never past its '\n', so a stream that follows
 * stays in the socket) and parses it. timeout_ms -1: forever. Returns NULL
 * with *timed_out (if non-NULL) set on timeout. */
json_t *proto_recv(int fd, int timeout_ms, bool *timed_out, berr *e);
/* A reply: 0 for {"ok":true}, else -1 with e from status/message. */
int proto_check(const json_t *reply, berr *e);
/* Writes Docker's stream frame header (stream 1 stdout, 2 stderr). */
void proto_frame_header(unsigned char hdr[8], int stream, uint32_t len);
/* Exec ids name files in state_dir: [A-Za-z0-9_.-], 1..128, no leading dot. */
bool proto_exec_id_valid(const char *id);
/* "<state_dir>/<name>" in a malloc'd string. */
char *proto_path(const char *state_dir, const char *name);
/* The exit record file of an exec: "exec-<id>.exit". */
char *proto_exec_exit_path(const char *state_dir, const char *exec_id);
/* The readiness line the shim writes to shim_launch's pipe. */
void proto_ready_ok(int fd, pid_t pid);
void proto_ready_err(int fd, const berr *e);
int proto_ready_read(int fd, int timeout_ms, pid_t *pid, berr *e);

/* ---- log.c: Docker's json-file log ---- */
#define SLOG_PARTIAL_MAX 16384 /* Docker's copier buffer: longer lines are split */
typedef struct shim_log {
    int fd; /* -1: no log */
    char *path;
    int64_t max_size; /* 0: unlimited */
    int max_file;
    int64_t size;
    sbuf partial[2]; /* unterminated line per stream (stdout, stderr) */
    sbuf enc;        /* encoded entries waiting for the write */
    char ts[40];     /* the time of the entries being encoded */
} shim_log;

int slog_open(shim_log *l, const char *path, int64_t max_size, int max_file, berr *e);
/* Logs output of stream 1 (stdout) or 2 (stderr): one entry per line. */
void slog_data(shim_log *l, int stream, const char *p, size_t n);
/* End of a stream: the partial line, as is (no '\n' added). */
void slog_flush(shim_log *l, int stream);
void slog_close(shim_log *l);
/* One entry: {"log":"...","stream":"stdout","time":"..."}\n (Go's escaping). */
void slog_encode(sbuf *out, const char *line, size_t n, const char *stream, int64_t ns);

#endif
