/* client.c: the daemon's side of berth-shim (shim.h): launching a shim and
 * waiting for its readiness report, and one short connection to shim.sock
 * per request (wire protocol in internal.h). Every call is bounded in time
 * except the waits whose caller asks for forever. When the shim is gone,
 * the answers come from the files it left in state_dir (exit.json,
 * exec-<id>.exit). */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/jsonutil.h"
#include "internal.h"
#include "shim.h"

#define REPLY_TIMEOUT_MS 10000
#define START_TIMEOUT_MS 60000

extern char **environ;

/* ---- launch ---- */
typedef struct argv_buf {
    const char *v[40];
    int n;
    char num[7][32];
} argv_buf;

/* The shim's fds: the ready pipe on 3, then the go pipe, the attach socket
 * and the cgroup tree, each when there is one, on the next numbers. */
static void build_argv(argv_buf *a, const shim_launch_opts *o, const char *attach, bool go)
{
    int next = 4;
    a->n = 0;
#define ARG(x) (a->v[a->n++] = (x))
    ARG("berth-shim"), ARG("--id"), ARG(o->id), ARG("--bundle"), ARG(o->bundle);
    ARG("--state-dir"), ARG(o->state_dir), ARG("--runtime-root"), ARG(o->runtime_root);
    if (o->log_path) {
        snprintf(a->num[0], sizeof a->num[0], "%lld", (long long)o->log_max_size);
        snprintf(a->num[1], sizeof a->num[1], "%d", o->log_max_file);
        ARG("--log"), ARG(o->log_path), ARG("--log-max-size"), ARG(a->num[0]),
            ARG("--log-max-file"), ARG(a->num[1]);
    }
    if (o->open_stdin) ARG("--open-stdin");
    if (o->stdin_once) ARG("--stdin-once");
    ARG("--ready-fd"), ARG("3");
    if (go) snprintf(a->num[2], sizeof a->num[2], "%d", next++), ARG("--go-fd"), ARG(a->num[2]);
    if (attach)
        snprintf(a->num[3], sizeof a->num[3], "%d", next++), ARG("--attach-fd"), ARG(a->num[3]),
            ARG("--attach"), ARG(attach);
    if (o->cgroup_tree > 0)
        snprintf(a->num[4], sizeof a->num[4], "%d", next++), ARG("--cgroup-tree-fd"),
            ARG(a->num[4]);
    if (o->dev_tree > 0)
        snprintf(a->num[5], sizeof a->num[5], "%d", next++), ARG("--dev-tree-fd"), ARG(a->num[5]);
    if (log_level >= LOG_DEBUG_) ARG("--debug");
    a->v[a->n] = NULL;
#undef ARG
}

/* The shim's stdio: /dev/null, but stderr stays berthd's when that is a
 * file (its log): a pipe would be held open by every shim. */
static void spawn_files(posix_spawn_file_actions_t *fa, const int *fds, int nfds)
{
    struct stat st;
    posix_spawn_file_actions_init(fa);
    posix_spawn_file_actions_addopen(fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addopen(fa, 1, "/dev/null", O_WRONLY, 0);
    if (fstat(2, &st) < 0 || !S_ISREG(st.st_mode))
        posix_spawn_file_actions_addopen(fa, 2, "/dev/null", O_WRONLY, 0);
    for (int i = 0; i < nfds; i++) posix_spawn_file_actions_adddup2(fa, fds[i], 3 + i);
}

/* ---- the zygote (zygote.c) ---- */
static pthread_mutex_t zyg_mu = PTHREAD_MUTEX_INITIALIZER;
static int zyg_sock = -1;
static pid_t zyg_pid = -1;

int shim_zygote_start(const char *shim_path, berr *e)
{
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
        return berr_errno(e, 500, "socketpair");
    /* room for the shims' argv, which each child shows in place of the zygote's */
    static char pad[1536];
    memset(pad, ' ', sizeof pad - 1);
    const char *argv[] = {"berth-shim", "--zygote", pad, NULL};
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t at;
    sigset_t none, all;
    sigemptyset(&none);
    sigfillset(&all);
    int hi = fcntl(sv[1], F_DUPFD_CLOEXEC, 10);
    close(sv[1]);
    spawn_files(&fa, &hi, 1);
    posix_spawnattr_init(&at);
    posix_spawnattr_setsigmask(&at, &none);
    posix_spawnattr_setsigdefault(&at, &all);
    posix_spawnattr_setflags(&at,
                             POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSID);
    pid_t pid;
    int r = posix_spawn(&pid, shim_path, &fa, &at, (char *const *)argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&at);
    close(hi);
    if (r != 0) {
        close(sv[0]);
        errno = r;
        return berr_errno(e, 500, "start %s --zygote", shim_path);
    }
    pthread_mutex_lock(&zyg_mu);
    zyg_sock = sv[0];
    zyg_pid = pid;
    pthread_mutex_unlock(&zyg_mu);
    return 0;
}

/* Called with zyg_mu held. */
static void zygote_drop(void)
{
    if (zyg_sock >= 0) close(zyg_sock);
    zyg_sock = -1;
    if (zyg_pid > 0)
        while (waitpid(zyg_pid, NULL, 0) < 0 && errno == EINTR) {
        }
    zyg_pid = -1;
}

void shim_zygote_stop(void)
{
    pthread_mutex_lock(&zyg_mu);
    zygote_drop();
    pthread_mutex_unlock(&zyg_mu);
}

/* 0: the zygote forks the shim; -1: no zygote (or it is gone). */
static int zygote_spawn(const argv_buf *a, const int *fds, int nfds)
{
    char buf[16384];
    size_t len = 0;
    for (int i = 0; i < a->n; i++) {
        size_t l = strlen(a->v[i]) + 1;
        if (len + l > sizeof buf) return -1;
        memcpy(buf + len, a->v[i], l);
        len += l;
    }
    union {
        char b[CMSG_SPACE(SHIM_MAX_FDS * sizeof(int))];
        struct cmsghdr align;
    } u;
    memset(&u, 0, sizeof u);
    struct iovec iov = {buf, len};
    struct msghdr mh = {.msg_iov = &iov,
                        .msg_iovlen = 1,
                        .msg_control = u.b,
                        .msg_controllen = CMSG_SPACE((size_t)nfds * sizeof(int))};
    struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN((size_t)nfds * sizeof(int));
    memcpy(CMSG_DATA(c), fds, (size_t)nfds * sizeof(int));
    pthread_mutex_lock(&zyg_mu);
    ssize_t r = -1;
    if (zyg_sock >= 0) {
        while ((r = sendmsg(zyg_sock, &mh, MSG_NOSIGNAL)) < 0 && errno == EINTR) {
        }
        if (r != (ssize_t)len) {
            log_warn("shim zygote gone (%s): shims are spawned directly", strerror(errno));
            zygote_drop();
        }
    }
    pthread_mutex_unlock(&zyg_mu);
    return r == (ssize_t)len ? 0 : -1;
}

static int spawn_shim(const shim_launch_opts *o, const char *attach, const int *fds, int nfds,
                      berr *e)
{
    argv_buf a;
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t at;
    sigset_t none, all;
    sigemptyset(&none);
    sigfillset(&all);
    build_argv(&a, o, attach, o->go_fd >= 0);
    if (zygote_spawn(&a, fds, nfds) == 0) return 0;
    spawn_files(&fa, fds, nfds);
    posix_spawnattr_init(&at);
    posix_spawnattr_setsigmask(&at, &none);
    posix_spawnattr_setsigdefault(&at, &all);
    posix_spawnattr_setflags(&at, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
    pid_t pid;
    int r = posix_spawn(&pid, o->shim_path, &fa, &at, (char *const *)a.v, environ);
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&at);
    if (r != 0) {
        errno = r;
        return berr_errno(e, 500, "start %s", o->shim_path);
    }
    /* the shim forks at once and this process exits: reap it here */
    while (waitpid(pid, NULL, 0) < 0 && errno == EINTR) {
    }
    return 0;
}

/* fds moved above 2..4 so the dup2s in the child cannot clobber each other */
static int high_fd(int fd)
{
    int h = fcntl(fd, F_DUPFD_CLOEXEC, 10);
    close(fd);
    return h;
}

int shim_launch_begin(const shim_launch_opts *o, bool attached, bool want_stdin, bool want_stdout,
                      bool want_stderr, shim_pending *p, berr *e)
{
    int rp[2], sv[2] = {-1, -1};
    char attach[4] = "";
    p->ready = p->attach = -1;
    if (!o->shim_path || !o->id || !o->bundle || !o->state_dir || !o->runtime_root)
        return berr_set(e, 400, "shim_launch: missing option");
    if (pipe2(rp, O_CLOEXEC) < 0) return berr_errno(e, 500, "pipe");
    if (attached && socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) {
        close(rp[0]), close(rp[1]);
        return berr_errno(e, 500, "socketpair");
    }
    if (attached)
        snprintf(attach, sizeof attach, "%s%s%s", want_stdin ? "i" : "", want_stdout ? "o" : "",
                 want_stderr ? "e" : "");
    int fds[SHIM_MAX_FDS], nfds = 0;
    fds[nfds++] = rp[1] = high_fd(rp[1]);
    int go = o->go_fd >= 0 ? fcntl(o->go_fd, F_DUPFD_CLOEXEC, 10) : -1;
    if (go >= 0) fds[nfds++] = go;
    if (sv[1] >= 0) fds[nfds++] = sv[1] = high_fd(sv[1]);
    int tree = o->cgroup_tree > 0 ? fcntl(o->cgroup_tree - 1, F_DUPFD_CLOEXEC, 10) : -1;
    if (tree >= 0) fds[nfds++] = tree;
    int dev = o->dev_tree > 0 ? fcntl(o->dev_tree - 1, F_DUPFD_CLOEXEC, 10) : -1;
    if (dev >= 0) fds[nfds++] = dev;
    shim_launch_opts oo = *o;
    oo.cgroup_tree = tree + 1, oo.dev_tree = dev + 1; /* arguments only for the fds passed */
    int r = spawn_shim(&oo, attached ? (attach[0] ? attach : "-") : NULL, fds, nfds, e);
    close(rp[1]);
    if (go >= 0) close(go);
    if (tree >= 0) close(tree);
    if (dev >= 0) close(dev);
    if (sv[1] >= 0) close(sv[1]);
    if (r < 0) {
        close(rp[0]);
        if (sv[0] >= 0) close(sv[0]);
        return -1;
    }
    p->ready = rp[0];
    p->attach = sv[0];
    return 0;
}

int shim_launch_end(shim_pending *p, pid_t *pid, int *attach_fd, berr *e)
{
    *pid = -1;
    if (attach_fd) *attach_fd = -1;
    int r = proto_ready_read(p->ready, START_TIMEOUT_MS, pid, e);
    close(p->ready), p->ready = -1;
    if (r == 0 && attach_fd)
        *attach_fd = p->attach;
    else if (p->attach >= 0)
        close(p->attach);
    p->attach = -1;
    return r;
}

void shim_launch_abandon(shim_pending *p)
{
    /* the shim exits once its go pipe closes: its end of the ready pipe
     * closes with it (bounded wait, so that nothing of it is left) */
    char buf[256];
    int64_t deadline = now_ns() + 5000000000LL;
    while (p->ready >= 0 && now_ns() < deadline) {
        struct pollfd pf = {p->ready, POLLIN, 0};
        if (poll(&pf, 1, 100) < 0 && errno != EINTR) break;
        if (pf.revents && read(p->ready, buf, sizeof buf) <= 0) break;
    }
    if (p->ready >= 0) close(p->ready);
    if (p->attach >= 0) close(p->attach);
    p->ready = p->attach = -1;
}

int shim_launch_attached(const shim_launch_opts *o, bool want_stdin, bool want_stdout,
                         bool want_stderr, pid_t *pid, int *attach_fd, berr *e)
{
    shim_pending p;
    *pid = -1;
    if (attach_fd) *attach_fd = -1;
    if (shim_launch_begin(o, attach_fd != NULL, want_stdin, want_stdout, want_stderr, &p, e) < 0)
        return -1;
    return shim_launch_end(&p, pid, attach_fd, e);
}

int shim_launch(const shim_launch_opts *o, pid_t *pid, berr *e)
{
    return shim_launch_attached(o, false, false, false, pid, NULL, e);
}

/* ---- requests ---- */
/* Connects, sends req (stolen), reads the reply; the connection stays open
 * in *fd when fd is non-NULL (attach, exec), else it is closed. */
static json_t *request(const char *state_dir, json_t *req, int timeout_ms, int *fd, berr *e)
{
    if (fd) *fd = -1;
    int s = proto_connect(state_dir, e);
    json_t *reply = NULL;
    if (s >= 0 && proto_send(s, req, e) == 0) reply = proto_recv(s, timeout_ms, NULL, e);
    json_decref(req);
    if (reply && proto_check(reply, e) < 0) json_decref(reply), reply = NULL;
    if (reply && fd)
        *fd = s;
    else if (s >= 0)
        close(s);
    return reply;
}

static int simple(const char *state_dir, json_t *req, berr *e)
{
    json_t *r = request(state_dir, req, REPLY_TIMEOUT_MS, NULL, e);
    json_decref(r);
    return r ? 0 : -1;
}

bool shim_alive(const char *state_dir)
{
    int fd = proto_connect(state_dir, NULL);
    if (fd < 0) return false;
    close(fd);
    return true;
}

int shim_kill(const char *state_dir, int sig, bool all, berr *e)
{
    return simple(state_dir, json_pack("{s:s,s:i,s:b}", "op", "kill", "signal", sig, "all", all),
                  e);
}

int shim_resize(const char *state_dir, int height, int width, berr *e)
{
    return simple(state_dir,
                  json_pack("{s:s,s:i,s:i}", "op", "resize", "height", height, "width", width), e);
}

int shim_exec_resize(const char *state_dir, const char *exec_id, int height, int width, berr *e)
{
    if (!proto_exec_id_valid(exec_id)) return berr_set(e, 400, "invalid exec id");
    return simple(state_dir,
                  json_pack("{s:s,s:s,s:i,s:i}", "op", "resize", "exec_id", exec_id, "height",
                            height, "width", width),
                  e);
}

int shim_state(const char *state_dir, pid_t *pid, bool *running, berr *e)
{
    json_t *r = request(state_dir, json_pack("{s:s}", "op", "state"), REPLY_TIMEOUT_MS, NULL, e);
    if (!r) return -1;
    if (pid) *pid = (pid_t)json_integer_value(json_object_get(r, "pid"));
    if (running) *running = json_is_true(json_object_get(r, "running"));
    json_decref(r);
    return 0;
}

int shim_attach(const char *state_dir, bool want_stdin, bool want_stdout, bool want_stderr,
                bool tty, berr *e)
{
    int fd;
    json_t *req = json_pack("{s:s,s:b,s:b,s:b,s:b}", "op", "attach", "stdin", want_stdin, "stdout",
                            want_stdout, "stderr", want_stderr, "tty", tty);
    json_t *r = request(state_dir, req, REPLY_TIMEOUT_MS, &fd, e);
    json_decref(r);
    return r ? fd : -1;
}

int shim_exec(const char *state_dir, const char *exec_id, const json_t *process, bool want_stdin,
              pid_t *pid, int *fd, berr *e)
{
    *fd = -1;
    if (!proto_exec_id_valid(exec_id)) return berr_set(e, 400, "invalid exec id");
    json_t *req = json_pack("{s:s,s:s,s:O,s:b}", "op", "exec", "exec_id", exec_id, "process",
                            process, "stdin", want_stdin);
    json_t *r = request(state_dir, req, START_TIMEOUT_MS, fd, e);
    if (!r) return -1;
    *pid = (pid_t)json_integer_value(json_object_get(r, "pid"));
    json_decref(r);
    return 0;
}

/* ---- exits ---- */
static json_t *load_json(const char *path)
{
    char *data = NULL;
    if (read_file(path, &data, NULL) < 0) return NULL;
    json_t *j = json_fast_loadb(data, strlen(data), 0, NULL);
    free(data);
    return j;
}

int shim_read_exit(const char *state_dir, int *exit_code, bool *oom_killed, int64_t *finished_ns,
                   char *err, size_t errlen)
{
    char *path = proto_path(state_dir, SHIM_EXIT);
    json_t *j = load_json(path);
    free(path);
    if (!j) return -1;
    const char *at = jstr(j, "FinishedAt"), *msg = jstr(j, "Error");
    if (exit_code) *exit_code = (int)json_integer_value(json_object_get(j, "ExitCode"));
    if (oom_killed) *oom_killed = json_is_true(json_object_get(j, "OOMKilled"));
    if (finished_ns) *finished_ns = at ? parse_rfc3339(at) : 0;
    if (err && errlen) snprintf(err, errlen, "%s", msg ? msg : "");
    json_decref(j);
    return 0;
}

/* A request answered only when something has exited: *timed_out on timeout;
 * NULL (and no timeout) when the shim went away without answering. */
static json_t *await(const char *state_dir, json_t *req, int timeout_ms, bool *timed_out, berr *e)
{
    *timed_out = false;
    int s = proto_connect(state_dir, e);
    json_t *reply = NULL;
    if (s >= 0 && proto_send(s, req, e) == 0) reply = proto_recv(s, timeout_ms, timed_out, e);
    json_decref(req);
    if (s >= 0) close(s);
    return reply;
}

bool shim_listening(const char *state_dir)
{
    char *p = proto_path(state_dir, SHIM_SOCK);
    bool r = access(p, F_OK) == 0;
    free(p);
    return r;
}

int shim_wait(const char *state_dir, int timeout_ms, int *exit_code, bool *oom,
              int64_t *finished_ns, bool *timed_out, berr *e)
{
    bool to = false;
    if (timed_out) *timed_out = false;
    if (shim_read_exit(state_dir, exit_code, oom, finished_ns, NULL, 0) == 0) return 0;
    json_t *r = await(state_dir, json_pack("{s:s}", "op", "wait"), timeout_ms, &to, e);
    if (to) {
        if (timed_out) *timed_out = true;
        return 0;
    }
    if (r && proto_check(r, e) == 0) {
        *exit_code = (int)json_integer_value(json_object_get(r, "exit_code"));
        if (oom) *oom = json_is_true(json_object_get(r, "oom_killed"));
        const char *at = jstr(r, "finished_at");
        if (finished_ns) *finished_ns = at ? parse_rfc3339(at) : 0;
        json_decref(r);
        return 0;
    }
    json_decref(r);
    /* the shim exited meanwhile: it wrote exit.json before it went */
    if (shim_read_exit(state_dir, exit_code, oom, finished_ns, NULL, 0) == 0) return 0;
    return berr_set(e, 500, "the container's shim is gone and recorded no exit (%s)",
                    e && e->msg[0] ? e->msg : "");
}

static int read_exec_exit(const char *state_dir, const char *exec_id, int *exit_code)
{
    char *path = proto_exec_exit_path(state_dir, exec_id);
    json_t *j = load_json(path);
    free(path);
    if (!j) return -1;
    *exit_code = (int)json_integer_value(json_object_get(j, "ExitCode"));
    json_decref(j);
    return 0;
}

int shim_exec_wait(const char *state_dir, const char *exec_id, int timeout_ms, int *exit_code,
                   bool *running, berr *e)
{
    bool to = false;
    *running = false;
    if (!proto_exec_id_valid(exec_id)) return berr_set(e, 400, "invalid exec id");
    if (read_exec_exit(state_dir, exec_id, exit_code) == 0) return 0;
    json_t *req = json_pack("{s:s,s:s}", "op", "exec-wait", "exec_id", exec_id);
    json_t *r = await(state_dir, req, timeout_ms, &to, e);
    if (to) {
        *running = true;
        return 0;
    }
    int rc = r ? proto_check(r, e) : -1;
    if (rc == 0) *exit_code = (int)json_integer_value(json_object_get(r, "exit_code"));
    json_decref(r);
    if (rc == 0 || read_exec_exit(state_dir, exec_id, exit_code) == 0) return 0;
    return -1;
}

/* ---- the shim process itself ---- */
static bool is_our_shim(pid_t pid, const char *state_dir)
{
    char path[64], *data = NULL;
    size_t len = 0;
    snprintf(path, sizeof path, "/proc/%d/cmdline", (int)pid);
    if (read_file(path, &data, &len) < 0) return false;
    bool ours = false;
    for (size_t i = 0; i < len; i += strlen(data + i) + 1)
        if (!strcmp(data + i, "--state-dir") && i + 12 < len)
            ours = !strcmp(data + i + 12, state_dir);
    free(data);
    return ours;
}

int shim_wait_gone(const char *state_dir, int timeout_ms, berr *e)
{
    char *path = proto_path(state_dir, SHIM_PID), *data = NULL;
    int r = read_file(path, &data, NULL);
    free(path);
    if (r < 0) return 0;
    pid_t pid = (pid_t)atoi(data);
    free(data);
    int pfd = pid > 0 ? (int)syscall(SYS_pidfd_open, pid, 0) : -1;
    if (pfd < 0) return 0; /* already gone */
    if (!is_our_shim(pid, state_dir)) {
        close(pfd);
        return 0;
    }
    struct pollfd p = {pfd, POLLIN, 0};
    while ((r = poll(&p, 1, timeout_ms)) < 0 && errno == EINTR) {
    }
    close(pfd);
    return r > 0 ? 0 : berr_set(e, 504, "the shim for %s is still running", state_dir);
}
