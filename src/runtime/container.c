/* container.c: the container lifecycle over its state directory
 * <root>/<id>/ (mode 0711: state.json, and exec.fifo while "created"):
 * create, start, load, status, kill, pause/resume, exec and delete. The init
 * pid is stored with its start time so that a recycled pid is never
 * mistaken for the container. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/jsonutil.h"
#include "internal.h"

bool rt_id_valid(const char *id)
{
    if (!id || !*id || strlen(id) > 1024 || id[0] == '.' || id[0] == '-' || id[0] == '_')
        return false;
    for (const char *p = id; *p; p++)
        if (!strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-", *p))
            return false;
    return true;
}

uint64_t rt_proc_starttime(pid_t pid)
{
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return 0;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0) return 0;
    buf[n] = 0;
    char *p = strrchr(buf, ')'); /* comm may hold spaces */
    if (!p || p[1] == 0) return 0;
    char state = p[2];
    if (state == 'Z' || state == 'X') return 0; /* dead */
    for (int field = 3; field <= 22 && p; field++) p = strchr(p + 1, ' ');
    return p ? strtoull(p + 1, NULL, 10) : 0;
}

bool rt_container_alive(const rt_container *c)
{
    return c->pid > 0 && c->starttime && rt_proc_starttime(c->pid) == c->starttime;
}

int rt_pidfd_open(pid_t pid)
{
    return (int)syscall(SYS_pidfd_open, pid, 0);
}

/* ---- state.json ---- */
/* tmp + rename, no fsync: the state root is a runtime directory (/run), which
 * does not survive a reboot anyway, and two fsyncs cost milliseconds. */
static int write_state_file(const char *path, const char *data)
{
    _cleanup_free_ char *tmp = xasprintf("%s.tmp", path);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) return -1;
    size_t n = strlen(data);
    if (write_all(fd, data, n) != (ssize_t)n) {
        close(fd);
        unlink(tmp);
        return -1;
    }
    close(fd);
    return rename(tmp, path);
}

int rt_state_save(rt_container *c, berr *e)
{
    json_t *j = json_pack("{s:s,s:i,s:I,s:s,s:s,s:s,s:s}", "id", c->id, "pid", (int)c->pid,
                          "starttime", (json_int_t)c->starttime, "bundle", c->bundle, "rootfs",
                          c->rootfs, "created", c->created, "owner", c->owner);
    if (c->annotations) json_object_set(j, "annotations", c->annotations);
    if (c->cg) json_object_set_new(j, "cgroup", rt_cgroup_to_json(c->cg));
    char *s = json_fast_dumps(j, JSON_COMPACT);
    json_decref(j);
    _cleanup_free_ char *path = xasprintf("%s/state.json", c->dir);
    int r = write_state_file(path, s);
    free(s);
    return r < 0 ? berr_errno(e, 500, "write %s", path) : 0;
}

static rt_container *container_new(const char *root, const char *id)
{
    rt_container *c = xcalloc(1, sizeof *c);
    c->root = xstrdup(root);
    c->id = xstrdup(id);
    c->dir = xasprintf("%s/%s", root, id);
    c->pidfd = -1;
    c->fifo = -1;
    return c;
}

int rt_container_load(const char *root, const char *id, rt_container **out, berr *e)
{
    *out = NULL;
    if (!rt_id_valid(id)) return berr_set(e, 400, "invalid container id %s", id ? id : "");
    rt_container *c = container_new(root, id);
    _cleanup_free_ char *path = xasprintf("%s/state.json", c->dir);
    json_error_t je;
    json_t *j = json_load_path(path, &je);
    if (!j) {
        rt_container_free(c);
        return berr_set(e, 404, "container \"%s\" does not exist", id);
    }
    c->pid = (pid_t)json_integer_value(json_object_get(j, "pid"));
    c->starttime = (uint64_t)json_integer_value(json_object_get(j, "starttime"));
    c->bundle = xstrdup(jstr(j, "bundle") ? jstr(j, "bundle") : "");
    c->rootfs = xstrdup(jstr(j, "rootfs") ? jstr(j, "rootfs") : "");
    c->created = xstrdup(jstr(j, "created") ? jstr(j, "created") : "");
    c->owner = xstrdup(jstr(j, "owner") ? jstr(j, "owner") : "");
    json_t *a = json_object_get(j, "annotations");
    c->annotations = a ? json_incref(a) : NULL;
    rt_cgroup_from_json(json_object_get(j, "cgroup"), &c->cg);
    json_decref(j);
    if (rt_container_alive(c)) c->pidfd = rt_pidfd_open(c->pid);
    *out = c;
    return 0;
}

void rt_container_free(rt_container *c)
{
    if (!c) return;
    if (c->pidfd >= 0) close(c->pidfd);
    if (c->fifo >= 0) close(c->fifo);
    free(c->root), free(c->id), free(c->dir), free(c->bundle), free(c->rootfs), free(c->created),
        free(c->owner);
    json_decref(c->annotations);
    rt_cgroup_free(c->cg);
    free(c);
}

pid_t rt_container_pid(const rt_container *c)
{
    return c->pid;
}
const char *rt_container_id(const rt_container *c)
{
    return c->id;
}
rt_cgroup *rt_container_cgroup(rt_container *c)
{
    return c->cg;
}

/* ---- create ---- */
static int send_console(int sock, int master, berr *e)
{
    char name[64] = "/dev/console";
    int n = -1;
    if (ioctl(master, TIOCGPTN, &n) == 0) snprintf(name, sizeof name, "/dev/pts/%d", n);
    struct iovec iov = {name, strlen(name)};
    union {
        char buf[CMSG_SPACE(sizeof(int))];
        struct cmsghdr align;
    } u;
    struct msghdr mh = {
        .msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf, .msg_controllen = sizeof u.buf};
    struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(c), &master, sizeof master);
    if (sendmsg(sock, &mh, MSG_NOSIGNAL) < 0)
        return berr_errno(e, 500, "send the pty to the console socket");
    return 0;
}

static int make_state_dir(const rt_create_opts *o, char **dir, berr *e)
{
    if (!rt_id_valid(o->id))
        return berr_set(e, 400, "invalid container id \"%s\"", o->id ? o->id : "");
    if (mkdir_p(o->root, 0711) < 0) return berr_errno(e, 500, "create state root %s", o->root);
    *dir = xasprintf("%s/%s", o->root, o->id);
    if (mkdir(*dir, 0711) < 0) {
        if (errno == EEXIST)
            return berr_set(e, 409, "container with id \"%s\" already exists", o->id);
        return berr_errno(e, 500, "create %s", *dir);
    }
    chmod(*dir, 0711);
    _cleanup_free_ char *fifo = xasprintf("%s/exec.fifo", *dir);
    if (mkfifo(fifo, 0622) < 0 || chmod(fifo, 0622) < 0)
        return berr_errno(e, 500, "mkfifo %s", fifo);
    return 0;
}

static void fill_container(rt_container *c, const rt_spec *s)
{
    char ts[64];
    fmt_rfc3339nano(now_ns(), ts, sizeof ts);
    c->created = xstrdup(ts);
    c->bundle = xstrdup(s->bundle);
    c->rootfs = xstrdup(s->rootfs);
    c->owner = xstrdup("");
    c->annotations = s->annotations ? json_incref(s->annotations) : NULL;
    c->is_parent = true;
}

int rt_container_create(const rt_spec *s, const rt_create_opts *o, rt_container **out,
                        int *console_fd, berr *e)
{
    *out = NULL;
    if (console_fd) *console_fd = -1;
    _cleanup_free_ char *dir = NULL;
    const rt_bpf *bpf = NULL;
    rt_container *c = NULL;
    rt_cgroup *cg = NULL;
    int master = -1, statefd = -1, fifo = -1;
    pid_t pid = -1;
    trace_mark("rt create");
    if (make_state_dir(o, &dir, e) < 0) {
        if (dir && e->status != 409) rm_rf(dir);
        return -1;
    }
    if (o->start_now) { /* a reader already there: the process's open does not block */
        _cleanup_free_ char *path = xasprintf("%s/exec.fifo", dir);
        if ((fifo = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC)) < 0) {
            berr_errno(e, 500, "open %s", path);
            goto fail;
        }
    }
    trace_mark("rt state dir");
    if (s->seccomp_bpf) bpf = s->seccomp_bpf;
    if ((!bpf && s->seccomp && rt_seccomp_get(s->seccomp, &bpf, e) < 0) ||
        (trace_mark("rt seccomp"), 0) ||
        (o->before_cgroups && o->before_cgroups(o->before_clone_arg, e) < 0) ||
        rt_cgroup_plan(s, o->id, &cg, e) < 0 || (cg && rt_cgroup_setup(cg, s, e) < 0))
        goto fail;
    trace_mark("rt seccomp+cgroups");
    if (o->before_clone && o->before_clone(o->before_clone_arg, e) < 0) goto fail;
    trace_mark("rt root ready");
    if ((statefd = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC)) < 0) {
        berr_errno(e, 500, "open %s", dir);
        goto fail;
    }
    c = container_new(o->root, o->id);
    fill_container(c, s);
    if (rt_spawn_init(s, o, bpf, cg, statefd, &pid, &c->starttime, &c->pidfd, &master, e) < 0)
        goto fail;
    close(statefd), statefd = -1;
    trace_mark("rt spawned");
    c->pid = pid;
    c->cg = cg, cg = NULL;
    c->fifo = fifo, fifo = -1;
    c->state_pending = o->start_now;
    if (!c->state_pending && rt_state_save(c, e) < 0) goto fail;
    if (o->pid_file) {
        char buf[24];
        int n = snprintf(buf, sizeof buf, "%d", (int)pid);
        if (write_file_replace(o->pid_file, buf, (size_t)n, 0644) < 0) {
            berr_errno(e, 500, "write pid file %s", o->pid_file);
            goto fail;
        }
    }
    if (master >= 0 && o->io.console_socket >= 0 &&
        send_console(o->io.console_socket, master, e) < 0)
        goto fail;
    if (console_fd)
        *console_fd = master;
    else if (master >= 0)
        close(master);
    *out = c;
    trace_mark("rt created");
    return 0;
fail:
    if (fifo >= 0) close(fifo);
    if (statefd >= 0) close(statefd);
    if (master >= 0) close(master);
    if (c && c->pid > 0) kill(c->pid, SIGKILL), waitpid(c->pid, NULL, 0);
    if (c && c->cg) cg = c->cg, c->cg = NULL;
    if (cg) rt_cgroup_destroy(cg, NULL), rt_cgroup_free(cg);
    rt_container_free(c);
    rm_rf(dir);
    return -1;
}

/* ---- start ---- */
static int wait_exec(int fifo, int pidfd, berr *e)
{
    for (int i = 0; i < 300; i++) { /* 30 s */
        struct pollfd p[2] = {{fifo, POLLIN, 0}, {pidfd, POLLIN, 0}};
        int n = poll(p, pidfd >= 0 ? 2 : 1, 100);
        if (n < 0 && errno != EINTR) return berr_errno(e, 500, "poll");
        if (n > 0 && p[0].revents) {
            int err = 0;
            ssize_t r = read(fifo, &err, sizeof err);
            if (r == (ssize_t)sizeof err) return -err;
            if (r == 0 || (r < 0 && errno != EAGAIN)) return 0;
        }
        if (n > 0 && p[1].revents) {
            /* exited: did it exec first? the fifo tells */
            int err = 0;
            ssize_t r = read(fifo, &err, sizeof err);
            if (r == (ssize_t)sizeof err) return -err;
            if (r == 0) return 0;
            return berr_set(e, 500, "the container process exited before it was started");
        }
    }
    return berr_set(e, 500, "timed out waiting for the container process to exec");
}

int rt_container_start(rt_container *c, berr *e)
{
    _cleanup_free_ char *path = xasprintf("%s/exec.fifo", c->dir);
    /* alive before the fifo is opened: opening it releases the process,
     * which may then run and exit before any later check (with start_now
     * it was released at create: the fifo tells whether it exec'd) */
    if (c->fifo < 0 && !rt_container_alive(c))
        return berr_set(e, 409, "cannot start a container that has stopped");
    _cleanup_close_ int fifo =
        c->fifo >= 0 ? c->fifo : open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    c->fifo = -1;
    if (fifo < 0) {
        if (errno == ENOENT)
            return berr_set(e, 409,
                            "cannot start a container that has already been started or stopped");
        return berr_errno(e, 500, "open %s", path);
    }
    int r = wait_exec(fifo, c->pidfd, e);
    unlink(path);
    if (r == 0 && c->state_pending) {
        c->state_pending = false;
        r = rt_state_save(c, e);
    }
    if (r < -1) {
        _cleanup_free_ char *arg0 = NULL;
        rt_spec *s = NULL;
        berr ignore;
        if (rt_spec_load_bundle(c->bundle, &s, &ignore) == 0) arg0 = xstrdup(s->proc->args[0]);
        rt_spec_free(s);
        return rt_exec_errno_berr(e, arg0 ? arg0 : "?", -r);
    }
    return r;
}

/* ---- status ---- */
const char *rt_container_status(const rt_container *c)
{
    if (!c->pid) return "creating";
    if (!rt_container_alive(c)) return "stopped";
    _cleanup_free_ char *fifo = xasprintf("%s/exec.fifo", c->dir);
    if (access(fifo, F_OK) == 0) return "created";
    if (c->cg) {
        const char *d = rt_cg_dir(c->cg, c->cg->mode == RT_CG_V2 ? "" : "freezer");
        char buf[32];
        if (d && c->cg->mode == RT_CG_V2 && rt_cg_read_key(d, "cgroup.events", "frozen") == 1)
            return "paused";
        if (d && c->cg->mode != RT_CG_V2 && rt_cg_read(d, "freezer.state", buf, sizeof buf) > 0 &&
            !strncmp(buf, "FROZEN", 6))
            return "paused";
    }
    return "running";
}

json_t *rt_container_state_json(const rt_container *c)
{
    const char *st = rt_container_status(c);
    json_t *j =
        json_pack("{s:s,s:s,s:i,s:s,s:s,s:s,s:s,s:s}", "ociVersion", RT_OCI_VERSION, "id", c->id,
                  "pid", strcmp(st, "stopped") ? (int)c->pid : 0, "status", st, "bundle", c->bundle,
                  "rootfs", c->rootfs, "created", c->created, "owner", c->owner);
    if (c->annotations && json_object_size(c->annotations))
        json_object_set(j, "annotations", c->annotations);
    return j;
}

/* ---- signals, pause, delete ---- */
int rt_kill(rt_container *c, int sig, bool all, berr *e)
{
    if (!rt_container_alive(c)) return berr_set(e, 409, "container \"%s\" is not running", c->id);
    if (all && c->cg) {
        rt_cgroup_signal(c->cg, sig);
        return 0;
    }
    int r = c->pidfd >= 0 ? (int)syscall(SYS_pidfd_send_signal, c->pidfd, sig, NULL, 0)
                          : kill(c->pid, sig);
    if (r < 0) return berr_errno(e, 500, "signal %d to %d", sig, (int)c->pid);
    return 0;
}

int rt_pause(rt_container *c, berr *e)
{
    if (strcmp(rt_container_status(c), "running"))
        return berr_set(e, 409, "container \"%s\" is not running", c->id);
    if (!c->cg) return berr_set(e, 500, "container has no cgroup");
    return rt_cgroup_freeze(c->cg, true, e);
}

int rt_resume(rt_container *c, berr *e)
{
    if (strcmp(rt_container_status(c), "paused"))
        return berr_set(e, 409, "container \"%s\" is not paused", c->id);
    return rt_cgroup_freeze(c->cg, false, e);
}

static void wait_gone(rt_container *c)
{
    for (int i = 0; i < 1000; i++) { /* 10 s */
        if (c->is_parent && waitpid(c->pid, NULL, WNOHANG) == c->pid) return;
        if (!c->is_parent && !rt_container_alive(c)) return;
        if (c->pidfd >= 0)
            poll(&(struct pollfd){c->pidfd, POLLIN, 0}, 1, 10);
        else
            nanosleep(&(struct timespec){0, 10000000}, NULL);
    }
}

int rt_delete(rt_container *c, bool force, berr *e)
{
    const char *st = rt_container_status(c);
    if (!strcmp(st, "running") || !strcmp(st, "paused")) {
        if (!force)
            return berr_set(e, 409, "cannot delete container %s that is not stopped: %s", c->id,
                            st);
    }
    if (strcmp(st, "stopped")) {
        rt_kill(c, SIGKILL, false, NULL);
        if (c->cg) rt_cgroup_freeze(c->cg, false, NULL);
        wait_gone(c);
    } else if (c->is_parent) {
        waitpid(c->pid, NULL, WNOHANG);
    }
    if (c->cg && rt_cgroup_destroy(c->cg, e) < 0) return -1;
    if (rm_rf(c->dir) < 0) return berr_errno(e, 500, "remove %s", c->dir);
    return 0;
}

/* ---- exec ---- */
int rt_exec(rt_container *c, const rt_spec *spec, const rt_process *proc, const rt_io *io,
            pid_t *pid, int *console_fd, berr *e)
{
    int master = -1;
    *pid = -1;
    if (console_fd) *console_fd = -1;
    if (strcmp(rt_container_status(c), "running"))
        return berr_set(e, 409, "container %s is not running", c->id);
    const rt_bpf *bpf = NULL;
    if (spec && spec->seccomp && rt_seccomp_get(spec->seccomp, &bpf, e) < 0) return -1;
    if (rt_exec_spawn(c->pid, c->cg, proc, bpf, io, pid, &master, e) < 0) return -1;
    if (master >= 0 && io->console_socket >= 0 && send_console(io->console_socket, master, e) < 0) {
        close(master);
        return -1;
    }
    if (console_fd)
        *console_fd = master;
    else if (master >= 0)
        close(master);
    return 0;
}
