/* cli.c: berth-runtime, an OCI runtime command line (runc's commands and
 * flags) over the runtime library: create, start, run, state, kill, delete,
 * exec, pause, resume, list, ps, update. Global flags: --root, --log,
 * --log-format text|json, --debug; --systemd-cgroup is accepted and ignored.
 * Errors go to stderr (and to --log) as runc writes them; exit status 1. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include "common/jsonutil.h"
#include "internal.h"

static const char *root = "/run/berth-runtime";
static const char *log_path;
static bool log_json;

static int fail(const berr *e)
{
    char ts[64];
    fmt_rfc3339nano(now_ns(), ts, sizeof ts);
    fprintf(stderr, "time=\"%s\" level=error msg=\"%s\"\n", ts, e->msg);
    FILE *f = log_path ? fopen(log_path, "ae") : NULL;
    if (f && log_json) {
        json_t *j = json_pack("{s:s,s:s,s:s}", "level", "error", "msg", e->msg, "time", ts);
        char *s = json_fast_dumps(j, JSON_COMPACT);
        fprintf(f, "%s\n", s);
        free(s);
        json_decref(j);
    } else if (f) {
        fprintf(f, "time=\"%s\" level=error msg=\"%s\"\n", ts, e->msg);
    }
    if (f) fclose(f);
    return 1;
}

static int usage_error(const char *fmt, const char *arg)
{
    berr e;
    berr_set(&e, 400, fmt, arg ? arg : "");
    return fail(&e);
}

/* ---- signals ---- */
static int parse_signal(const char *s)
{
    static const struct {
        const char *n;
        int v;
    } sigs[] = {{"HUP", SIGHUP},   {"INT", SIGINT},     {"QUIT", SIGQUIT}, {"KILL", SIGKILL},
                {"TERM", SIGTERM}, {"USR1", SIGUSR1},   {"USR2", SIGUSR2}, {"STOP", SIGSTOP},
                {"CONT", SIGCONT}, {"ABRT", SIGABRT},   {"ALRM", SIGALRM}, {"PIPE", SIGPIPE},
                {"CHLD", SIGCHLD}, {"WINCH", SIGWINCH}, {"TSTP", SIGTSTP}};
    if (!s) return SIGTERM;
    char *end;
    long v = strtol(s, &end, 10);
    if (!*end && v > 0 && v < NSIG) return (int)v;
    if (!strncasecmp(s, "SIG", 3)) s += 3;
    for (size_t i = 0; i < sizeof sigs / sizeof *sigs; i++)
        if (!strcasecmp(s, sigs[i].n)) return sigs[i].v;
    return -1;
}

static volatile pid_t forward_to;
static void forward(int sig)
{
    if (forward_to > 0) kill(forward_to, sig);
}

static void forward_signals(pid_t pid)
{
    forward_to = pid;
    static const int sigs[] = {SIGHUP, SIGINT, SIGQUIT, SIGTERM, SIGUSR1, SIGUSR2, SIGWINCH};
    struct sigaction sa = {.sa_handler = forward, .sa_flags = SA_RESTART};
    for (size_t i = 0; i < sizeof sigs / sizeof *sigs; i++) sigaction(sigs[i], &sa, NULL);
}

static int wait_status(pid_t pid)
{
    int st;
    while (waitpid(pid, &st, 0) < 0)
        if (errno != EINTR) return 255;
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

/* ---- terminal for a foreground run/exec without --console-socket ---- */
static void copy_tty(int master, pid_t pid)
{
    struct termios old, raw;
    bool tty = tcgetattr(0, &old) == 0;
    if (tty) {
        raw = old;
        cfmakeraw(&raw);
        tcsetattr(0, TCSANOW, &raw);
    }
    char buf[8192];
    bool in_open = true;
    for (;;) {
        struct pollfd p[2] = {{master, POLLIN, 0}, {0, in_open ? POLLIN : 0, 0}};
        if (poll(p, 2, 200) < 0 && errno != EINTR) break;
        if (p[0].revents) {
            ssize_t n = read(master, buf, sizeof buf);
            if (n <= 0) break;
            if (write_all(1, buf, (size_t)n) < 0) break;
        }
        if (p[1].revents) {
            ssize_t n = read(0, buf, sizeof buf);
            if (n <= 0)
                in_open = false;
            else
                write_all(master, buf, (size_t)n);
        }
        if (waitpid(pid, NULL, WNOHANG | WNOWAIT) == pid && !(p[0].revents & POLLIN)) break;
    }
    if (tty) tcsetattr(0, TCSANOW, &old);
}

/* ---- create / run ---- */
typedef struct run_flags {
    const char *bundle, *pid_file, *console_socket;
    bool detach, no_pivot;
    int preserve_fds;
} run_flags;

static int connect_console(const char *path, berr *e)
{
    int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    snprintf(a.sun_path, sizeof a.sun_path, "%s", path);
    if (s < 0 || connect(s, (struct sockaddr *)&a, sizeof a) < 0) {
        berr_errno(e, 400, "connect to console socket %s", path);
        if (s >= 0) close(s);
        return -1;
    }
    return s;
}

static int parse_run_flags(int argc, char **argv, run_flags *f, bool run, const char **id)
{
    static const struct option opts[] = {{"bundle", required_argument, 0, 'b'},
                                         {"pid-file", required_argument, 0, 'P'},
                                         {"console-socket", required_argument, 0, 'c'},
                                         {"detach", no_argument, 0, 'd'},
                                         {"no-pivot", no_argument, 0, 'n'},
                                         {"no-new-keyring", no_argument, 0, 'k'},
                                         {"preserve-fds", required_argument, 0, 'f'},
                                         {"keep", no_argument, 0, 'K'},
                                         {0, 0, 0, 0}};
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "+b:d", opts, NULL)) != -1) {
        switch (c) {
        case 'b':
            f->bundle = optarg;
            break;
        case 'P':
            f->pid_file = optarg;
            break;
        case 'c':
            f->console_socket = optarg;
            break;
        case 'd':
            f->detach = true;
            break;
        case 'n':
            f->no_pivot = true;
            break;
        case 'f':
            f->preserve_fds = atoi(optarg);
            break;
        case 'k':
        case 'K':
            break;
        default:
            return -1;
        }
    }
    if (!run && f->detach) return -1;
    if (optind != argc - 1) return -1;
    *id = argv[optind];
    return 0;
}

/* --debug: microsecond timings of each phase of create/run on stderr */
static int64_t t_last;
static void phase(const char *name)
{
    if (log_level < LOG_DEBUG_) return;
    int64_t t = now_ns();
    if (t_last) fprintf(stderr, "berth-runtime: %-8s %7.3f ms\n", name, (double)(t - t_last) / 1e6);
    t_last = t;
}

static int do_create(int argc, char **argv, bool run)
{
    phase("begin");
    run_flags f = {.bundle = "."};
    const char *id;
    berr e = {0};
    if (parse_run_flags(argc, argv, &f, run, &id) < 0)
        return usage_error(
            "usage: %s [--bundle DIR] [--pid-file F] [--console-socket S] <container-id>", argv[0]);
    rt_spec *s = NULL;
    rt_container *c = NULL;
    int rc = 1, master = -1, sock = -1;
    if (rt_spec_load_bundle(f.bundle, &s, &e) < 0) goto out;
    phase("spec");
    if (s->proc->terminal && f.console_socket && (sock = connect_console(f.console_socket, &e)) < 0)
        goto out;
    if (s->proc->terminal && !f.console_socket && (!run || f.detach)) {
        berr_set(&e, 400, "cannot allocate tty if runc will detach without setting console socket");
        goto out;
    }
    rt_create_opts o = {.root = root,
                        .id = id,
                        .io = RT_IO_INHERIT,
                        .pid_file = f.pid_file,
                        .no_pivot = f.no_pivot,
                        .preserve_fds = f.preserve_fds};
    o.io.console_socket = sock;
    if (rt_container_create(s, &o, &c, &master, &e) < 0) goto out;
    phase("create");
    rc = 0;
    if (!run) goto out;
    if (!f.detach) forward_signals(rt_container_pid(c));
    if (rt_container_start(c, &e) < 0) {
        rt_delete(c, true, NULL);
        rc = 1;
        goto out;
    }
    phase("start");
    if (f.detach) goto out;
    if (master >= 0 && sock < 0) copy_tty(master, rt_container_pid(c));
    rc = wait_status(rt_container_pid(c));
    phase("wait");
    rt_delete(c, true, NULL);
    phase("delete");
out:
    if (master >= 0) close(master);
    if (sock >= 0) close(sock);
    rt_container_free(c);
    rt_spec_free(s);
    return rc ? (e.msg[0] ? fail(&e) : rc) : 0;
}

/* ---- commands on an existing container ---- */
static int load(int argc, char **argv, int first, rt_container **c, berr *e)
{
    if (first >= argc) return berr_set(e, 400, "%s requires a container id", argv[0]);
    return rt_container_load(root, argv[first], c, e);
}

static int do_start(int argc, char **argv)
{
    rt_container *c;
    berr e = {0};
    if (load(argc, argv, 1, &c, &e) < 0) return fail(&e);
    int r = rt_container_start(c, &e);
    rt_container_free(c);
    return r < 0 ? fail(&e) : 0;
}

static int do_state(int argc, char **argv)
{
    rt_container *c;
    berr e = {0};
    if (load(argc, argv, 1, &c, &e) < 0) return fail(&e);
    json_t *j = rt_container_state_json(c);
    char *s = json_dumps(j, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    printf("%s\n", s);
    free(s);
    json_decref(j);
    rt_container_free(c);
    return 0;
}

static int do_kill(int argc, char **argv)
{
    bool all = false;
    int i = 1;
    for (; i < argc && argv[i][0] == '-'; i++)
        if (!strcmp(argv[i], "-a") || !strcmp(argv[i], "--all")) all = true;
    rt_container *c;
    berr e = {0};
    int sig = parse_signal(i + 1 < argc ? argv[i + 1] : NULL);
    if (sig < 0) return usage_error("unknown signal %s", argv[i + 1]);
    if (load(argc, argv, i, &c, &e) < 0) return fail(&e);
    int r = rt_kill(c, sig, all, &e);
    rt_container_free(c);
    return r < 0 ? fail(&e) : 0;
}

static int do_delete(int argc, char **argv)
{
    bool force = false;
    int i = 1;
    for (; i < argc && argv[i][0] == '-'; i++)
        if (!strcmp(argv[i], "-f") || !strcmp(argv[i], "--force")) force = true;
    rt_container *c;
    berr e = {0};
    if (load(argc, argv, i, &c, &e) < 0) {
        if (force && e.status == 404) return 0;
        return fail(&e);
    }
    int r = rt_delete(c, force, &e);
    rt_container_free(c);
    return r < 0 ? fail(&e) : 0;
}

static int do_pause(int argc, char **argv, bool pause)
{
    rt_container *c;
    berr e = {0};
    if (load(argc, argv, 1, &c, &e) < 0) return fail(&e);
    int r = pause ? rt_pause(c, &e) : rt_resume(c, &e);
    rt_container_free(c);
    return r < 0 ? fail(&e) : 0;
}

static int do_ps(int argc, char **argv)
{
    rt_container *c;
    berr e = {0};
    if (load(argc, argv, argc > 2 && !strcmp(argv[1], "--format") ? 3 : 1, &c, &e) < 0)
        return fail(&e);
    pid_t pids[4096];
    int n = c->cg ? rt_cgroup_pids(c->cg, pids, 4096) : 0;
    for (int i = 0; i < n; i++) printf("%d\n", (int)pids[i]);
    rt_container_free(c);
    return 0;
}

static int do_list(int argc, char **argv)
{
    bool quiet = argc > 1 && (!strcmp(argv[1], "-q") || !strcmp(argv[1], "--quiet"));
    _cleanup_free_ char *cmd = NULL;
    DIR *d = opendir(root);
    if (!quiet)
        printf("%-12s %-8s %-10s %-40s %-30s %s\n", "ID", "PID", "STATUS", "BUNDLE", "CREATED",
               "OWNER");
    for (struct dirent *de; d && (de = readdir(d));) {
        rt_container *c;
        if (de->d_name[0] == '.' || rt_container_load(root, de->d_name, &c, NULL) < 0) continue;
        const char *st = rt_container_status(c);
        if (quiet)
            printf("%s\n", c->id);
        else
            printf("%-12s %-8d %-10s %-40s %-30s %s\n", c->id,
                   strcmp(st, "stopped") ? (int)c->pid : 0, st, c->bundle, c->created,
                   c->owner[0] ? c->owner : "root");
        rt_container_free(c);
    }
    if (d) closedir(d);
    return 0;
}

/* runc's `events --stats`: one JSON object from the cgroup files */
static int do_events(int argc, char **argv)
{
    int i = 1;
    for (; i < argc && argv[i][0] == '-'; i++) {
    }
    rt_container *c;
    berr e = {0};
    if (load(argc, argv, i, &c, &e) < 0) return fail(&e);
    rt_stats st;
    if (!c->cg || rt_cgroup_stats(c->cg, &st, &e) < 0) {
        rt_container_free(c);
        return e.msg[0] ? fail(&e) : 1;
    }
    json_t *percpu = json_array();
    for (int k = 0; k < st.ncpus; k++)
        json_array_append_new(percpu, json_integer((json_int_t)st.percpu_ns[k]));
    json_t *j = json_pack(
        "{s:s,s:s,s:{s:{s:{s:I,s:o,s:I,s:I},s:{s:I,s:I,s:I}},s:{s:{s:I,s:I,s:I,s:I},s:o,s:I},s:{s:"
        "I,s:I},"
        "s:{s:I,s:I}}}",
        "type", "stats", "id", c->id, "data", "cpu", "usage", "total", (json_int_t)st.cpu_total_ns,
        "percpu", percpu, "kernel", (json_int_t)st.cpu_system_ns, "user",
        (json_int_t)st.cpu_user_ns, "throttling", "periods", (json_int_t)st.cpu_periods,
        "throttledPeriods", (json_int_t)st.cpu_throttled_periods, "throttledTime",
        (json_int_t)st.cpu_throttled_ns, "memory", "usage", "limit", (json_int_t)st.mem_limit,
        "usage", (json_int_t)st.mem_usage, "max", (json_int_t)st.mem_max_usage, "failcnt",
        (json_int_t)st.mem_failcnt, "raw", st.mem_stat, "oom_kill", (json_int_t)st.oom_kills,
        "pids", "current", (json_int_t)st.pids_current, "limit", (json_int_t)st.pids_limit, "blkio",
        "read", (json_int_t)st.blk_read_bytes, "write", (json_int_t)st.blk_write_bytes);
    char *out = json_fast_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER);
    printf("%s\n", out);
    free(out);
    json_decref(j);
    rt_container_free(c);
    return 0;
}

/* ---- exec ---- */
typedef struct exec_flags {
    const char *process, *cwd, *user, *pid_file, *console_socket;
    bool tty, detach, nnp;
    json_t *env, *caps, *gids;
} exec_flags;

static int parse_exec_flags(int argc, char **argv, exec_flags *f)
{
    static const struct option opts[] = {{"process", required_argument, 0, 'p'},
                                         {"tty", no_argument, 0, 't'},
                                         {"detach", no_argument, 0, 'd'},
                                         {"cwd", required_argument, 0, 'w'},
                                         {"env", required_argument, 0, 'e'},
                                         {"user", required_argument, 0, 'u'},
                                         {"pid-file", required_argument, 0, 'P'},
                                         {"console-socket", required_argument, 0, 'c'},
                                         {"cap", required_argument, 0, 'C'},
                                         {"no-new-privs", no_argument, 0, 'N'},
                                         {"additional-gids", required_argument, 0, 'g'},
                                         {"preserve-fds", required_argument, 0, 'f'},
                                         {0, 0, 0, 0}};
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "+p:tdw:e:u:g:", opts, NULL)) != -1) {
        switch (c) {
        case 'p':
            f->process = optarg;
            break;
        case 't':
            f->tty = true;
            break;
        case 'd':
            f->detach = true;
            break;
        case 'w':
            f->cwd = optarg;
            break;
        case 'e':
            json_array_append_new(f->env, json_string(optarg));
            break;
        case 'u':
            f->user = optarg;
            break;
        case 'P':
            f->pid_file = optarg;
            break;
        case 'c':
            f->console_socket = optarg;
            break;
        case 'C':
            json_array_append_new(f->caps, json_string(optarg));
            break;
        case 'N':
            f->nnp = true;
            break;
        case 'g':
            json_array_append_new(f->gids, json_integer(atoi(optarg)));
            break;
        case 'f':
            break;
        default:
            return -1;
        }
    }
    return optind < argc ? optind : -1;
}

/* runc exec without --process: the container's own process with these changes */
static json_t *exec_process(const char *bundle, exec_flags *f, int argc, char **argv, berr *e)
{
    json_error_t je;
    if (f->process) {
        json_t *p = json_load_file(f->process, 0, &je);
        if (!p) berr_set(e, 400, "%s: %s", f->process, je.text);
        return p;
    }
    _cleanup_free_ char *path = xasprintf("%s/config.json", bundle);
    json_t *cfg = json_load_file(path, 0, &je);
    if (!cfg) {
        berr_set(e, 400, "%s: %s", path, je.text);
        return NULL;
    }
    json_t *p = json_deep_copy(json_object_get(cfg, "process"));
    json_decref(cfg);
    if (!p) p = json_object();
    json_t *args = json_array();
    for (int i = 0; i < argc; i++) json_array_append_new(args, json_string(argv[i]));
    json_object_set_new(p, "args", args);
    json_object_set_new(p, "terminal", json_boolean(f->tty));
    if (f->cwd) json_object_set_new(p, "cwd", json_string(f->cwd));
    json_t *env = json_object_get(p, "env");
    if (!json_is_array(env)) json_object_set_new(p, "env", env = json_array());
    json_array_extend(env, f->env);
    if (f->nnp) json_object_set_new(p, "noNewPrivileges", json_true());
    if (f->user) {
        unsigned uid = 0, gid = 0;
        int n = sscanf(f->user, "%u:%u", &uid, &gid);
        json_object_set_new(p, "user",
                            json_pack("{s:I,s:I,s:O}", "uid", (json_int_t)uid, "gid",
                                      (json_int_t)(n == 2 ? gid : 0), "additionalGids", f->gids));
    }
    json_t *caps = json_object_get(p, "capabilities");
    size_t i;
    json_t *v;
    json_array_foreach(f->caps, i, v)
    {
        const char *sets[] = {"bounding", "effective", "permitted", "inheritable", "ambient"};
        for (int k = 0; k < 5 && json_is_object(caps); k++) {
            json_t *set = json_object_get(caps, sets[k]);
            if (json_is_array(set)) json_array_append(set, v);
        }
    }
    json_object_del(p, "oomScoreAdj");
    return p;
}

static int do_exec(int argc, char **argv)
{
    exec_flags f = {.env = json_array(), .caps = json_array(), .gids = json_array()};
    berr e = {0};
    int first = parse_exec_flags(argc, argv, &f), rc = 1, sock = -1, master = -1;
    rt_container *c = NULL;
    rt_spec *s = NULL;
    rt_process *p = NULL;
    json_t *pj = NULL;
    if (first < 0 || (!f.process && first + 1 >= argc)) {
        berr_set(&e, 400, "usage: exec [flags] <container-id> <command> [args...]");
        goto out;
    }
    if (rt_container_load(root, argv[first], &c, &e) < 0) goto out;
    if (rt_spec_load_bundle(c->bundle, &s, &e) < 0) goto out;
    if (!(pj = exec_process(c->bundle, &f, argc - first - 1, argv + first + 1, &e))) goto out;
    if (rt_process_load(pj, &p, &e) < 0) goto out;
    if (p->terminal && f.console_socket && (sock = connect_console(f.console_socket, &e)) < 0)
        goto out;
    if (p->terminal && f.detach && sock < 0) {
        berr_set(&e, 400, "cannot allocate tty if runc will detach without setting console socket");
        goto out;
    }
    rt_io io = RT_IO_INHERIT;
    io.console_socket = sock;
    pid_t pid;
    if (rt_exec(c, s, p, &io, &pid, &master, &e) < 0) goto out;
    if (f.pid_file) {
        char buf[24];
        int n = snprintf(buf, sizeof buf, "%d", (int)pid);
        write_file_atomic(f.pid_file, buf, (size_t)n, 0644);
    }
    rc = 0;
    if (f.detach) goto out;
    forward_signals(pid);
    if (master >= 0 && sock < 0) copy_tty(master, pid);
    rc = wait_status(pid);
out:
    if (master >= 0) close(master);
    if (sock >= 0) close(sock);
    json_decref(pj), json_decref(f.env), json_decref(f.caps), json_decref(f.gids);
    rt_process_free(p);
    rt_spec_free(s);
    rt_container_free(c);
    return e.msg[0] ? fail(&e) : rc;
}

/* ---- update ---- */
static int do_update(int argc, char **argv)
{
    static const struct option opts[] = {{"memory", required_argument, 0, 'm'},
                                         {"memory-swap", required_argument, 0, 's'},
                                         {"cpu-quota", required_argument, 0, 'q'},
                                         {"cpu-period", required_argument, 0, 'p'},
                                         {"cpu-share", required_argument, 0, 'S'},
                                         {"cpuset-cpus", required_argument, 0, 'c'},
                                         {"pids-limit", required_argument, 0, 'P'},
                                         {"resources", required_argument, 0, 'r'},
                                         {0, 0, 0, 0}};
    json_t *mem = json_object(), *cpu = json_object(), *res = NULL;
    int c;
    optind = 1;
    berr e = {0};
    res = json_pack("{s:o,s:o}", "memory", mem, "cpu", cpu);
    while ((c = getopt_long(argc, argv, "+r:", opts, NULL)) != -1) {
        switch (c) {
        case 'm':
            json_object_set_new(mem, "limit", json_integer(parse_size(optarg)));
            break;
        case 's':
            json_object_set_new(mem, "swap", json_integer(parse_size(optarg)));
            break;
        case 'q':
            json_object_set_new(cpu, "quota", json_integer(atoll(optarg)));
            break;
        case 'p':
            json_object_set_new(cpu, "period", json_integer(atoll(optarg)));
            break;
        case 'S':
            json_object_set_new(cpu, "shares", json_integer(atoll(optarg)));
            break;
        case 'c':
            json_object_set_new(cpu, "cpus", json_string(optarg));
            break;
        case 'P':
            json_object_set_new(res, "pids",
                                json_pack("{s:I}", "limit", (json_int_t)atoll(optarg)));
            break;
        case 'r': {
            json_error_t je;
            json_decref(res);
            res = strcmp(optarg, "-") ? json_load_file(optarg, 0, &je) : json_loadf(stdin, 0, &je);
            if (!res) return usage_error("bad resources file %s", optarg);
            break;
        }
        default:
            json_decref(res);
            return usage_error("%s", "usage: update [flags] <container-id>");
        }
    }
    rt_container *ct = NULL;
    rt_resources *r = NULL;
    int rc = 0;
    if (optind >= argc)
        berr_set(&e, 400, "update requires a container id");
    else if (rt_container_load(root, argv[optind], &ct, &e) == 0 &&
             rt_resources_load(res, &r, &e) == 0 && ct->cg)
        rt_cgroup_update(ct->cg, r, &e);
    if (e.msg[0]) rc = fail(&e);
    rt_resources_free(r);
    rt_container_free(ct);
    json_decref(res);
    return rc;
}

/* ---- main ---- */
static void usage(void)
{
    fprintf(
        stderr,
        "usage: berth-runtime [--root DIR] [--log FILE] [--log-format text|json] COMMAND\n"
        "commands: create start run state kill delete exec pause resume list ps update events\n");
}

static int global_flags(int argc, char **argv)
{
    static const struct option opts[] = {{"root", required_argument, 0, 'r'},
                                         {"log", required_argument, 0, 'l'},
                                         {"log-format", required_argument, 0, 'f'},
                                         {"debug", no_argument, 0, 'D'},
                                         {"systemd-cgroup", no_argument, 0, 's'},
                                         {"rootless", required_argument, 0, 'R'},
                                         {"criu", required_argument, 0, 'C'},
                                         {"version", no_argument, 0, 'v'},
                                         {"help", no_argument, 0, 'h'},
                                         {0, 0, 0, 0}};
    int c;
    while ((c = getopt_long(argc, argv, "+vh", opts, NULL)) != -1) {
        switch (c) {
        case 'r':
            root = optarg;
            break;
        case 'l':
            log_path = optarg;
            break;
        case 'f':
            log_json = !strcmp(optarg, "json");
            break;
        case 'D':
            log_level = LOG_DEBUG_;
            break;
        case 'v':
            printf("berth-runtime version %s\nspec: %s\n", BERTH_VERSION, RT_OCI_VERSION);
            exit(0);
        case 's':
        case 'R':
        case 'C':
            break;
        default:
            usage();
            exit(c == 'h' ? 0 : 1);
        }
    }
    return optind;
}

int main(int argc, char **argv)
{
    int first = global_flags(argc, argv);
    if (first >= argc) return usage(), 1;
    _cleanup_free_ char *cache = xasprintf("%s/.cache", root);
    rt_set_cache_dir(cache);
    const char *cmd = argv[first];
    argc -= first, argv += first;
    if (!strcmp(cmd, "create")) return do_create(argc, argv, false);
    if (!strcmp(cmd, "run")) return do_create(argc, argv, true);
    if (!strcmp(cmd, "start")) return do_start(argc, argv);
    if (!strcmp(cmd, "state")) return do_state(argc, argv);
    if (!strcmp(cmd, "kill")) return do_kill(argc, argv);
    if (!strcmp(cmd, "delete")) return do_delete(argc, argv);
    if (!strcmp(cmd, "exec")) return do_exec(argc, argv);
    if (!strcmp(cmd, "pause")) return do_pause(argc, argv, true);
    if (!strcmp(cmd, "resume")) return do_pause(argc, argv, false);
    if (!strcmp(cmd, "list") || !strcmp(cmd, "ls")) return do_list(argc, argv);
    if (!strcmp(cmd, "ps")) return do_ps(argc, argv);
    if (!strcmp(cmd, "update")) return do_update(argc, argv);
    if (!strcmp(cmd, "events")) return do_events(argc, argv);
    usage();
    return 1;
}
