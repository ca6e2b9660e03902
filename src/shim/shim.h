/* shim.h: berth-shim, one small process per running container, and the
 * client side the daemon uses to talk to it.
 *
 * The shim is started by berthd (shim_launch) and detaches from it (new
 * session, reparented to init), so it outlives a daemon restart or a
 * `kill -9` of berthd. It creates and starts the container in-process with
 * the runtime library (src/runtime/runtime.h), holds the container's stdio
 * (pipes, or a pty master when Tty), writes the json-file log (Docker's
 * format, one JSON object per line: {"log":"...","stream":"stdout",
 * "time":"RFC3339Nano"}, rotated by max-size/max-file), reaps the container,
 * and records its exit in <state_dir>/exit.json atomically:
 *   {"ExitCode": n, "OOMKilled": bool, "FinishedAt": "RFC3339Nano",
 *    "Error": "" }
 * then removes the container's cgroups (rt_delete) and exits. Exit codes
 * follow Docker: the command's own, 128+signal when killed by a signal.
 *
 * It serves a UNIX socket <state_dir>/shim.sock, one request per connection,
 * so the daemon (the same one, or a new one after a restart) can:
 * attach to stdio, exec processes, signal, resize the tty and wait.
 * Errors: statuses as the API's; 503 when no shim serves state_dir.
 * The wire protocol is in src/shim/internal.h and docs/shim.md.
 *
 * Files in state_dir (the daemon creates the directory):
 *   shim.sock   the control socket
 *   shim.pid    the shim's pid (atomically written before it reports ready)
 *   exit.json   written once the container has exited
 *   init.pid    the container's init pid on the host
 *   exec-<id>.exit  {"ExitCode": n} of each exec'd process that exited
 * shim.sock and shim.pid are removed when the shim exits. */
#ifndef BERTH_SHIM_H
#define BERTH_SHIM_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "common/util.h"

typedef struct shim_launch_opts {
    const char *shim_path;    /* the berth-shim binary */
    const char *id;           /* container id (64 hex) */
    const char *bundle;       /* directory holding config.json (OCI spec; root.path merged) */
    const char *state_dir;    /* per-container runtime state dir (exec root) */
    const char *runtime_root; /* the runtime library's state root */
    const char *log_path;     /* json-file log path; NULL: no log */
    int64_t log_max_size;     /* bytes; 0: unlimited */
    int log_max_file;         /* >=1 */
    bool open_stdin;          /* keep a stdin pipe (or the pty) open for attach */
    bool stdin_once;          /* close the container's stdin when the first attach ends */
    int go_fd;       /* -1, or a pipe's read end: the shim sets itself up, then waits for one byte
                      * (EOF: it exits) before it reads the spec (shim_launch_begin) */
    int cgroup_tree; /* 1 + the fd of the container's cgroup tree made ahead
                      * (rt_cgroup_premake_tree), for the runtime; 0: none */
    int dev_tree;    /* 1 + the fd of its /dev made ahead (rt_dev_tree_make); 0: none */
} shim_launch_opts;

/* Starts a shim, which creates and starts the container. Returns once the
 * container's command is running (its pid in *pid) or failed to start: then
 * -1 with e->status 404 (command not found: Docker's exit 127), 403 (not
 * executable: 126), or 500 with the runtime's message. */
int shim_launch(const shim_launch_opts *o, pid_t *pid, berr *e);
/* The zygote (zygote.c): shims are forked from it, not spawned, once it
 * runs; without it (or when it has gone) they are spawned as before. */
int shim_zygote_start(const char *shim_path, berr *e);
void shim_zygote_stop(void);
/* As shim_launch, and attached from before the container starts, so that no
 * output is missed (docker run without -d, docker start -a): *attach_fd
 * gets a socket as shim_attach returns one (same framing, stdin, close). */
int shim_launch_attached(const shim_launch_opts *o, bool want_stdin, bool want_stdout,
                         bool want_stderr, pid_t *pid, int *attach_fd, berr *e);
/* The same in two steps, so that the shim's own start (fork, socket, log)
 * overlaps the caller's preparation of the bundle: begin launches it (with
 * o->go_fd it waits for a byte on that pipe before it reads the spec), end
 * reads its ready report; abandon when the launch is given up (close the go
 * pipe's write end too: the shim then exits). */
typedef struct shim_pending {
    int ready, attach;
} shim_pending;
int shim_launch_begin(const shim_launch_opts *o, bool attached, bool want_stdin, bool want_stdout,
                      bool want_stderr, shim_pending *p, berr *e);
int shim_launch_end(shim_pending *p, pid_t *pid, int *attach_fd, berr *e);
void shim_launch_abandon(shim_pending *p);

/* Is a shim serving state_dir? (connects to shim.sock) */
bool shim_alive(const char *state_dir);

/* Reads <state_dir>/exit.json; 0 and fills the fields when present. */
int shim_read_exit(const char *state_dir, int *exit_code, bool *oom_killed, int64_t *finished_ns,
                   char *err, size_t errlen);

/* The shim's view: the init pid and whether it still runs. 503 when no shim. */
int shim_state(const char *state_dir, pid_t *pid, bool *running, berr *e);
/* Waits until the shim process itself has exited (after the exit it still
 * deletes the container's cgroups): 0 when gone, -1 (504) on timeout. */
int shim_wait_gone(const char *state_dir, int timeout_ms, berr *e);

/* Signals the container's init process (all: every process in it). */
int shim_kill(const char *state_dir, int sig, bool all, berr *e);
/* Resizes the container's tty (no-op error 409 if it has none). */
int shim_resize(const char *state_dir, int height, int width, berr *e);

/* Has the shim of state_dir made its socket (it has set itself up)? */
bool shim_listening(const char *state_dir);

/* Blocks until the container has exited (or timeout_ms passes: -1 forever):
 * 0 with its exit code in *exit_code (and, when given, *oom and *finished_ns
 * as exit.json has them), or 0 with *timed_out true on timeout.
 * Works whether the shim is still there or already gone (reads exit.json);
 * -1 when there is neither a shim nor an exit.json. */
int shim_wait(const char *state_dir, int timeout_ms, int *exit_code, bool *oom,
              int64_t *finished_ns, bool *timed_out, berr *e);

/* Attach: returns a connected socket fd on which the shim then sends the
 * container's live output and reads input. Output framing: with tty=false,
 * Docker's multiplexed frames (8-byte header: stream 1/2, 3 zero bytes,
 * big-endian uint32 length, then payload); with a tty, raw bytes. Input
 * written to the fd goes to the container's stdin (if want_stdin and it
 * has one); shutdown(SHUT_WR) on the fd closes the container's stdin when
 * stdin_once. The shim closes the fd after the container exits and all
 * output is sent. `tty` is what the caller expects: the framing always
 * follows the container's own process.terminal. A client that falls more
 * than 256 KiB behind the output is disconnected (the container and its log
 * never wait for a client). 409 once the container has exited. */
int shim_attach(const char *state_dir, bool want_stdin, bool want_stdout, bool want_stderr,
                bool tty, berr *e);

/* Exec: runs `process` (an OCI "process" JSON object: args, env, cwd, user,
 * terminal, capabilities...) in the container. Returns a connected fd framed
 * as for attach (per the process's own terminal flag) once the process is
 * running, its pid in *pid; the exec's exit code is then read with
 * shim_exec_wait(state_dir, exec_id). exec_id names it (64 hex). Errors as
 * for shim_launch. */
int shim_exec(const char *state_dir, const char *exec_id, const json_t *process, bool want_stdin,
              pid_t *pid, int *fd, berr *e);
/* 0 with the exit code, or 0 with *running true when timeout_ms passed
 * first (0: do not wait). Works after the shim is gone (exec-<id>.exit in
 * state_dir); 404 for an exec the shim never ran. */
int shim_exec_wait(const char *state_dir, const char *exec_id, int timeout_ms, int *exit_code,
                   bool *running, berr *e);
int shim_exec_resize(const char *state_dir, const char *exec_id, int height, int width, berr *e);

#endif
