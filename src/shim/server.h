/* server.h: the berth-shim process's state, shared by shim_main.c (startup,
 * detaching, starting the container, exit), server.c (the single-threaded
 * poll loop: stdio, clients, reaping) and requests.c (what each request on
 * shim.sock does).
 *
 * A "target" is a process whose stdio the shim holds: the container's init,
 * or an exec'd process. A "client" is one connection on shim.sock (or the
 * attach socket handed over at launch). Objects are never freed while the
 * poll results that may point at them are being handled: they are marked
 * dead and swept at the end of the iteration. */
#ifndef BERTH_SHIM_SERVER_H
#define BERTH_SHIM_SERVER_H

#include <poll.h>

#include "internal.h"
#include "runtime/runtime.h"

#define SHIM_READ_CHUNK 16384              /* one read from a process's stdout/stderr */
#define SHIM_CLIENT_MAX_QUEUE (256 * 1024) /* a client further behind than this is dropped */
#define SHIM_STDIN_MAX_QUEUE (64 * 1024)   /* stdin not yet taken by the process */
#define SHIM_REQUEST_TIMEOUT_MS 30000      /* to send a complete request line */
#define SHIM_CLOSE_TIMEOUT_MS 2000         /* to flush attached clients after the exit */

/* pending bytes for a non-blocking fd */
typedef struct outq {
    char *buf;
    size_t off, len, cap;
} outq;
void outq_add(outq *q, const void *p, size_t n);
size_t outq_pending(const outq *q);
/* Writes what it can: 0 (maybe partial), -1 the fd is broken. */
int outq_flush(outq *q, int fd);
void outq_free(outq *q);

typedef struct target {
    struct target *next;
    char *exec_id; /* NULL: the container's init */
    pid_t pid;
    bool tty;
    int in_fd;     /* stdin pipe (write end), or the pty master; -1: none */
    int out_fd[2]; /* stdout, stderr read ends; tty: out_fd[0] is the master (== in_fd) */
    outq in_q;     /* stdin bytes not yet written */
    bool in_close; /* close stdin once in_q is written */
    bool reaped, dead;
    int status; /* wait status */
} target;

enum client_state { CL_REQUEST, CL_STREAM, CL_WAIT, CL_EXEC_WAIT, CL_CLOSING };

typedef struct client {
    struct client *next;
    int fd;
    enum client_state state;
    target *t;     /* CL_STREAM: the process attached to */
    char *exec_id; /* CL_EXEC_WAIT */
    bool want_in, want_out, want_err;
    bool raw;    /* tty: raw bytes, else Docker frames */
    bool in_eof; /* the client has finished sending */
    bool dead;
    sbuf req; /* CL_REQUEST: the request line so far */
    outq out;
    int64_t deadline; /* monotonic ms, 0: none */
} client;

typedef struct shim {
    /* options (argv) */
    const char *id, *bundle, *state_dir, *runtime_root, *log_path;
    int64_t log_max_size;
    int log_max_file;
    bool open_stdin, stdin_once;
    int ready_fd, attach_fd, go_fd;
    int cgroup_tree_fd; /* berthd's rt_cgroup_premake_tree, for the create (-1: none) */
    int dev_tree_fd;    /* berthd's rt_dev_tree_make, for the create (-1: none) */
    bool trim_pending;  /* malloc_trim once the loop is idle (shim_loop) */
    bool attach_in, attach_out, attach_err;
    /* state */
    int sig_fd, listen_fd;
    int mntns_fd; /* the container's mount namespace, held so that its teardown
                   * (every mount's) waits for cleanup(), off the exit's report */
    rt_container *c;
    target *ctr;     /* the container's init (also in targets) */
    target *targets; /* init and execs */
    client *clients;
    shim_log log;
    bool finished; /* the container exited (waiters answered, then exit.json written) */
    int exit_code;
    bool oom_killed;
    char finished_at[64]; /* RFC 3339 */
    int64_t close_deadline;
    /* poll set, rebuilt each iteration */
    struct pollfd *pfd;
    void **pobj;
    int *pkind;
    size_t pcap, pn;
} shim;

int64_t shim_now_ms(void); /* monotonic */
void set_nonblock(int fd);

/* server.c */
void shim_loop(shim *sh);
client *client_new(shim *sh, int fd, enum client_state st);
void client_reply(client *cl, json_t *reply); /* steals reply; then closes */
void client_reply_err(client *cl, const berr *e);
void client_finish(client *cl); /* close once the queued output is written */
void client_attach(shim *sh, client *cl, target *t, bool in, bool out, bool err);
target *target_new(shim *sh, const char *exec_id, pid_t pid, bool tty);
target *target_find_exec(shim *sh, const char *exec_id);
void target_stdin(shim *sh, target *t, const char *p, size_t n);
void target_close_stdin(target *t);

/* requests.c */
void shim_request(shim *sh, client *cl, const char *line, size_t n);
void shim_exec_finished(shim *sh, target *t, int exit_code);
int shim_exit_code(int status);

/* shim_main.c */
void shim_container_finished(shim *sh);

/* zygote.c */
void zygote_set_title_area(int argc, char **argv);
int zygote_main(int sock, int (*run)(int argc, char **argv));

/* {"ok":true,"exit_code":N,"oom_killed":B,"finished_at":T}: a wait's answer */
json_t *shim_exit_reply(shim *sh);

#endif
