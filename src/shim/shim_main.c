/* shim_main.c: the berth-shim binary. Started by shim_launch (client.c) with
 * its options as argv, it forks once so that the process berthd spawned
 * exits at once (berthd reaps that one; the shim itself is reparented to
 * init and survives any kill of berthd), starts a new session, becomes a
 * child subreaper, creates and starts the container with the runtime
 * library, reports "ok <pid>" or "err <status> <message>" on the ready pipe,
 * then runs the event loop (server.c) until the container has exited:
 * exit.json is written, waiters answered, attached clients flushed, the
 * container deleted (cgroups), and the shim exits.
 *
 *   berth-shim --id ID --bundle DIR --state-dir DIR --runtime-root DIR
 *              [--log PATH [--log-max-size N] [--log-max-file N]]
 *              [--open-stdin] [--stdin-once] [--ready-fd FD]
 *              [--attach-fd FD --attach [i][o][e]] [--go-fd FD] [--cgroup-tree-fd FD]
 *              [--dev-tree-fd FD] [--debug]
 *   berth-shim --sha256 < DATA     (self-test of src/common's SHA-256)
 *   berth-shim --zygote [PADDING]  (fd 3: berthd's socket; see zygote.c) */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "common/jsonutil.h"
#include "server.h"

/* --debug: microseconds since main() per start phase */
static int64_t t_start;
static void phase(const char *what)
{
    trace_mark("shim %s", what);
    if (log_level < LOG_DEBUG_) return;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    int64_t us = (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
    if (!t_start) t_start = us;
    log_debug("shim: +%lldus %s", (long long)(us - t_start), what);
}

static int usage(const char *msg)
{
    fprintf(stderr, "berth-shim: %s\n(berth-shim is started by berthd; see docs/shim.md)\n", msg);
    return 2;
}

static int parse_args(shim *sh, int argc, char **argv)
{
    static const struct option opts[] = {{"id", 1, 0, 'i'},
                                         {"bundle", 1, 0, 'b'},
                                         {"state-dir", 1, 0, 's'},
                                         {"runtime-root", 1, 0, 'r'},
                                         {"log", 1, 0, 'l'},
                                         {"log-max-size", 1, 0, 'S'},
                                         {"log-max-file", 1, 0, 'F'},
                                         {"open-stdin", 0, 0, 'O'},
                                         {"stdin-once", 0, 0, '1'},
                                         {"ready-fd", 1, 0, 'R'},
                                         {"attach-fd", 1, 0, 'A'},
                                         {"attach", 1, 0, 'a'},
                                         {"debug", 0, 0, 'd'},
                                         {"go-fd", 1, 0, 'G'},
                                         {"cgroup-tree-fd", 1, 0, 'T'},
                                         {"dev-tree-fd", 1, 0, 'V'},
                                         {0, 0, 0, 0}};
    const char **str[128] = {['i'] = &sh->id,
                             ['b'] = &sh->bundle,
                             ['s'] = &sh->state_dir,
                             ['r'] = &sh->runtime_root,
                             ['l'] = &sh->log_path};
    int c;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (c > 0 && c < 128 && str[c])
            *str[c] = optarg;
        else if (c == 'S')
            sh->log_max_size = strtoll(optarg, NULL, 10);
        else if (c == 'F')
            sh->log_max_file = atoi(optarg);
        else if (c == 'O')
            sh->open_stdin = true;
        else if (c == '1')
            sh->stdin_once = true;
        else if (c == 'R')
            sh->ready_fd = atoi(optarg);
        else if (c == 'A')
            sh->attach_fd = atoi(optarg);
        else if (c == 'G')
            sh->go_fd = atoi(optarg);
        else if (c == 'T')
            sh->cgroup_tree_fd = atoi(optarg);
        else if (c == 'V')
            sh->dev_tree_fd = atoi(optarg);
        else if (c == 'd')
            log_level = LOG_DEBUG_;
        else if (c == 'a') {
            sh->attach_in = strchr(optarg, 'i'), sh->attach_out = strchr(optarg, 'o');
            sh->attach_err = strchr(optarg, 'e');
        } else
            return usage("unknown option");
    }
    if (!sh->id || !sh->bundle || !sh->state_dir || !sh->runtime_root)
        return usage("--id, --bundle, --state-dir and --runtime-root are required");
    return 0;
}

/* The process berthd spawned exits now; the shim goes on in a new session,
 * an orphan adopted by init, and reaps everything below it. */
static bool from_zygote; /* forked by the zygote: already away from berthd */

static int detach(berr *e)
{
    if (!from_zygote) {
        pid_t pid = fork();
        if (pid < 0) return berr_errno(e, 500, "shim: fork");
        if (pid > 0) _exit(0);
    }
    setsid();
    if (prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) < 0)
        return berr_errno(e, 500, "shim: set child subreaper");
    return 0;
}

/* SIGCHLD through a signalfd; the rest that could stop the shim ignored.
 * (The runtime resets the mask and dispositions in the container.) */
static int setup_signals(shim *sh, berr *e)
{
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGCHLD);
    sigprocmask(SIG_BLOCK, &set, NULL);
    sh->sig_fd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
    if (sh->sig_fd < 0) return berr_errno(e, 500, "shim: signalfd");
    int ignored[] = {SIGPIPE, SIGHUP, SIGINT, SIGTERM, SIGQUIT, SIGTTIN, SIGTTOU};
    for (size_t i = 0; i < sizeof ignored / sizeof ignored[0]; i++) signal(ignored[i], SIG_IGN);
    return 0;
}

/* <state_dir>/shim.sock; through /proc/self/fd when the path is too long. */
static int listen_sock(shim *sh, berr *e)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    int dfd = -1;
    if ((size_t)snprintf(sa.sun_path, sizeof sa.sun_path, "%s/%s", sh->state_dir, SHIM_SOCK) >=
        sizeof sa.sun_path) {
        if ((dfd = open(sh->state_dir, O_PATH | O_DIRECTORY | O_CLOEXEC)) < 0)
            return berr_errno(e, 500, "shim: open %s", sh->state_dir);
        snprintf(sa.sun_path, sizeof sa.sun_path, "/proc/self/fd/%d/%s", dfd, SHIM_SOCK);
    }
    unlink(sa.sun_path);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    mode_t old = umask(0077);
    int r = fd < 0 ? -1 : bind(fd, (struct sockaddr *)&sa, sizeof sa);
    umask(old);
    if (r == 0) r = listen(fd, 128);
    if (r < 0) berr_errno(e, 500, "shim: listen on %s/%s", sh->state_dir, SHIM_SOCK);
    if (dfd >= 0) close(dfd);
    if (r < 0 && fd >= 0) close(fd);
    sh->listen_fd = r < 0 ? -1 : fd;
    return r;
}

static int write_pid(shim *sh, const char *name, pid_t pid, berr *e)
{
    char buf[32], *path = proto_path(sh->state_dir, name);
    int n = snprintf(buf, sizeof buf, "%d", (int)pid);
    int r = write_file_replace(path, buf, (size_t)n, 0644);
    if (r < 0) berr_errno(e, 500, "shim: write %s", path);
    free(path);
    return r;
}

static int load_spec(shim *sh, rt_spec **spec, bool *tty, berr *e)
{
    char *path = xasprintf("%s/config.json", sh->bundle), *text = NULL;
    size_t len = 0;
    json_error_t je = {.text = ""};
    int r = read_file(path, &text, &len);
    free(path);
    if (r < 0) return berr_errno(e, 400, "shim: %s/config.json", sh->bundle);
    r = rt_spec_load_text(text, len, sh->bundle, spec, &je, e);
    free(text);
    trace_mark("shim spec parsed");
    if (r < 0 && je.text[0])
        return berr_set(e, 400, "shim: %s/config.json: %s", sh->bundle, je.text);
    if (r == 0) *tty = rt_spec_terminal(*spec);
    return r;
}

/* Without a tty: pipes (stdin only with open_stdin, else /dev/null). */
static int make_stdio(shim *sh, bool tty, int fds[3], int mine[3], berr *e)
{
    for (int i = 0; i < 3; i++) fds[i] = mine[i] = -1;
    if (tty) return 0; /* the runtime puts the pty on 0, 1, 2 */
    for (int i = 0; i < 3; i++) {
        int p[2];
        if (i == 0 && !sh->open_stdin) {
            if ((fds[0] = open("/dev/null", O_RDONLY | O_CLOEXEC)) < 0)
                return berr_errno(e, 500, "open /dev/null");
            continue;
        }
        if (pipe2(p, O_CLOEXEC) < 0) return berr_errno(e, 500, "shim: pipe");
        fds[i] = i == 0 ? p[0] : p[1];
        mine[i] = i == 0 ? p[1] : p[0];
        set_nonblock(mine[i]);
    }
    return 0;
}

static void close_fds(int fds[3])
{
    for (int i = 0; i < 3; i++)
        if (fds[i] >= 0) close(fds[i]), fds[i] = -1;
}

/* One byte from berthd on the go pipe: 'g' (the spec is written), 'c' (the
 * premade cgroup directories are in place), then 'r' (the root is mounted,
 * the /etc files are written). EOF: berthd gave the launch up. */
static int await_go(shim *sh, char want, berr *e)
{
    if (sh->go_fd < 0) return 0;
    char b = 0;
    ssize_t n;
    while ((n = read(sh->go_fd, &b, 1)) < 0 && errno == EINTR) {
    }
    if (n != 1 || b != want) {
        close(sh->go_fd), sh->go_fd = -1;
        return berr_set(e, 500, "shim: the launch was given up");
    }
    if (want == 'r') close(sh->go_fd), sh->go_fd = -1;
    phase(want == 'g' ? "go" : want == 'c' ? "cgroups placed" : "root ready");
    return 0;
}

static int await_root(void *arg, berr *e)
{
    return await_go(arg, 'r', e);
}

static int await_cgroups(void *arg, berr *e)
{
    return await_go(arg, 'c', e);
}

static int create_start(shim *sh, rt_spec *spec, bool tty, int fds[3], int *console, berr *e)
{
    rt_create_opts o = {.root = sh->runtime_root,
                        .id = sh->id,
                        .io = {{fds[0], fds[1], fds[2]}, -1},
                        .before_clone = await_root,
                        .before_cgroups = await_cgroups,
                        .before_clone_arg = sh,
                        .start_now = true,
                        .cgroup_tree = sh->cgroup_tree_fd + 1,
                        .dev_tree = sh->dev_tree_fd + 1};
    int r = rt_container_create(spec, &o, &sh->c, console, e);
    if (sh->cgroup_tree_fd >= 0) close(sh->cgroup_tree_fd), sh->cgroup_tree_fd = -1;
    if (sh->dev_tree_fd >= 0) close(sh->dev_tree_fd), sh->dev_tree_fd = -1;
    if (r < 0) return -1;
    phase("created");
    close_fds(fds);
    r = rt_container_start(sh->c, e);
    phase("started");
    return r;
}

/* Creates and starts the container; on success sh->ctr holds its stdio. */
static int start_container(shim *sh, berr *e)
{
    rt_spec *spec = NULL;
    bool tty = false;
    int fds[3] = {-1, -1, -1}, mine[3] = {-1, -1, -1}, console = -1;
    int r = load_spec(sh, &spec, &tty, e);
    phase("spec loaded");
    if (r == 0) r = make_stdio(sh, tty, fds, mine, e);
    if (r == 0) r = create_start(sh, spec, tty, fds, &console, e);
    rt_spec_free(spec);
    close_fds(fds);
    if (r < 0) {
        close_fds(mine);
        if (console >= 0) close(console);
        return -1;
    }
    target *t = sh->ctr = target_new(sh, NULL, rt_container_pid(sh->c), tty);
    char ns[64];
    snprintf(ns, sizeof ns, "/proc/%d/ns/mnt", (int)t->pid);
    sh->mntns_fd = open(ns, O_RDONLY | O_CLOEXEC); /* -1: torn down at the exit, as without it */
    if (tty) {
        set_nonblock(console);
        t->out_fd[0] = console;
        t->in_fd = sh->open_stdin ? console : -1;
    } else {
        t->in_fd = mine[0], t->out_fd[0] = mine[1], t->out_fd[1] = mine[2];
    }
    return 0;
}

/* Everything up to the ready report. */
static int startup(shim *sh, berr *e)
{
    if (detach(e) < 0 || setup_signals(sh, e) < 0) return -1;
    /* compiled seccomp programs: the same cache as berth-runtime's (and the
     * daemon's, when it prepares them with this root) */
    char *cache = xasprintf("%s/.cache", sh->runtime_root);
    rt_set_cache_dir(cache);
    free(cache);
    phase("detached");
    char *stale = proto_path(sh->state_dir, SHIM_EXIT); /* from an earlier run in this dir */
    int r = unlink(stale) < 0 && errno != ENOENT ? berr_errno(e, 500, "shim: remove %s", stale) : 0;
    free(stale);
    if (r < 0) return -1;
    if (write_pid(sh, SHIM_PID, getpid(), e) < 0 || listen_sock(sh, e) < 0) return -1;
    phase("listening");
    if (slog_open(&sh->log, sh->log_path, sh->log_max_size, sh->log_max_file, e) < 0) return -1;
    /* berthd writes the spec meanwhile, then mounts the root while the
     * spec is read and the cgroups are made (await_root, before the clone) */
    if (await_go(sh, 'g', e) < 0 || start_container(sh, e) < 0) return -1;
    if (write_pid(sh, SHIM_INIT_PID, sh->ctr->pid, e) < 0) return -1;
    phase("init.pid written");
    if (sh->attach_fd >= 0) {
        set_nonblock(sh->attach_fd);
        client *cl = client_new(sh, sh->attach_fd, CL_STREAM);
        client_attach(sh, cl, sh->ctr, sh->attach_in, sh->attach_out, sh->attach_err);
        sh->attach_fd = -1; /* the fd number is reused by later clients */
    }
    return 0;
}

/* Called from the loop once the init is reaped and its output drained. */
void shim_container_finished(shim *sh)
{
    trace_mark("shim reaped");
    rt_cgroup *cg = rt_container_cgroup(sh->c);
    sh->exit_code = shim_exit_code(sh->ctr->status);
    sh->oom_killed = cg && rt_cgroup_oom_kills(cg) > 0;
    fmt_rfc3339nano(now_ns(), sh->finished_at, sizeof sh->finished_at);
    sh->finished = true;
    sh->close_deadline = shim_now_ms() + SHIM_CLOSE_TIMEOUT_MS;
    /* the waiters first, with everything exit.json holds; the file next (a
     * wait that finds no file asks the shim, which answers at once now) */
    for (client *cl = sh->clients; cl; cl = cl->next) {
        if (cl->dead) continue;
        if (cl->state == CL_WAIT)
            client_reply(cl, shim_exit_reply(sh));
        else if (cl->state == CL_STREAM && cl->t == sh->ctr)
            client_finish(cl);
    }
    json_t *j = json_pack("{s:i,s:b,s:s,s:s}", "ExitCode", sh->exit_code, "OOMKilled",
                          sh->oom_killed, "FinishedAt", sh->finished_at, "Error", "");
    char *s = json_fast_dumps(j, JSON_COMPACT), *path = proto_path(sh->state_dir, SHIM_EXIT);
    if (write_file_replace(path, s, strlen(s), 0644) < 0)
        log_error("shim: write %s: %s", path, strerror(errno));
    free(s), free(path), json_decref(j);
    trace_mark("shim exit written");
    for (target *t = sh->targets; t; t = t->next) /* execs outside a private pid namespace */
        if (t != sh->ctr && !t->reaped) kill(t->pid, SIGKILL);
    log_debug("shim: container %s exited with %d", sh->id, sh->exit_code);
}

static void cleanup(shim *sh)
{
    berr e = {0};
    thread_background(); /* nobody waits for what is left (cgroups, files) */
    if (sh->mntns_fd >= 0) close(sh->mntns_fd), sh->mntns_fd = -1; /* its mounts go now */
    if (sh->listen_fd >= 0) {
        char *path = proto_path(sh->state_dir, SHIM_SOCK);
        unlink(path);
        free(path);
        close(sh->listen_fd);
    }
    if (sh->c && rt_delete(sh->c, true, &e) < 0)
        log_warn("shim: delete container %s: %s", sh->id, e.msg);
    rt_container_free(sh->c);
    slog_close(&sh->log);
    char *path = proto_path(sh->state_dir, SHIM_PID);
    unlink(path);
    free(path);
    if (sh->sig_fd >= 0) close(sh->sig_fd);
}

/* berth-shim --sha256 < data: the digest src/common computes in this
 * binary (the seccomp cache key), for the tests to compare with a
 * reference. */
static int sha256_stdin(void)
{
    sha256_ctx *c = sha256_new();
    char buf[4096], out[DIGEST_LEN + 1];
    ssize_t n;
    while ((n = read(0, buf, sizeof buf)) > 0) sha256_update(c, buf, (size_t)n);
    sha256_final(c, out);
    printf("%s\n", out);
    return n < 0;
}

static int shim_run(int argc, char **argv)
{
    shim sh = {.ready_fd = -1,
               .attach_fd = -1,
               .go_fd = -1,
               .cgroup_tree_fd = -1,
               .dev_tree_fd = -1,
               .sig_fd = -1,
               .listen_fd = -1,
               .mntns_fd = -1};
    berr e = {0};
    if (parse_args(&sh, argc, argv)) return 2;
    phase("main");
    if (sh.ready_fd >= 0) fcntl(sh.ready_fd, F_SETFD, FD_CLOEXEC);
    if (sh.attach_fd >= 0) fcntl(sh.attach_fd, F_SETFD, FD_CLOEXEC);
    if (sh.go_fd >= 0) fcntl(sh.go_fd, F_SETFD, FD_CLOEXEC);
    if (sh.cgroup_tree_fd >= 0) fcntl(sh.cgroup_tree_fd, F_SETFD, FD_CLOEXEC);
    if (sh.dev_tree_fd >= 0) fcntl(sh.dev_tree_fd, F_SETFD, FD_CLOEXEC);
    int keep = sh.ready_fd > sh.attach_fd ? sh.ready_fd : sh.attach_fd;
    if (sh.go_fd > keep) keep = sh.go_fd;
    if (sh.cgroup_tree_fd > keep) keep = sh.cgroup_tree_fd;
    if (sh.dev_tree_fd > keep) keep = sh.dev_tree_fd;
    syscall(SYS_close_range, (unsigned)(keep < 3 ? 3 : keep + 1), ~0U, 0); /* nothing of berthd's */
    if (startup(&sh, &e) < 0) {
        if (sh.ready_fd >= 0) proto_ready_err(sh.ready_fd, &e);
        log_debug("shim: %s", e.msg);
        if (sh.attach_fd >= 0) close(sh.attach_fd);
        while (sh.targets) {
            target *t = sh.targets;
            sh.targets = t->next;
            free(t->exec_id), free(t);
        }
        cleanup(&sh);
        return 1;
    }
    if (sh.ready_fd >= 0) {
        proto_ready_ok(sh.ready_fd, sh.ctr->pid);
        close(sh.ready_fd);
    }
    sh.trim_pending = true; /* what parsing the spec used goes back once idle */
    shim_loop(&sh);
    cleanup(&sh);
    return 0;
}

/* forked by the zygote (zygote.c) */
static int shim_run_forked(int argc, char **argv)
{
    from_zygote = true;
    optind = 1;
    return shim_run(argc, argv);
}

int main(int argc, char **argv)
{
    if (getenv("BERTH_SHIM_DEBUG")) log_level = LOG_DEBUG_;
    if (argc == 2 && !strcmp(argv[1], "--sha256")) return sha256_stdin();
    if (argc >= 2 && !strcmp(argv[1], "--zygote")) {
        zygote_set_title_area(argc, argv);
        return zygote_main(3, shim_run_forked);
    }
    return shim_run(argc, argv);
}
