/* requests.c: what the shim does for each request on shim.sock:
 *   {"op":"state"}                                  pid, running, tty, exit
 *   {"op":"kill","signal":n,"all":b}
 *   {"op":"resize","height":h,"width":w[,"exec_id":id]}
 *   {"op":"wait"}                 answered when the container has exited
 *   {"op":"attach","stdin":b,"stdout":b,"stderr":b} then the stream
 *   {"op":"exec","exec_id":id,"process":{OCI process},"stdin":b} then the stream
 *   {"op":"exec-wait","exec_id":id}  answered when that exec has exited
 * and the bookkeeping when an exec'd process exits (its exit record). */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/jsonutil.h"
#include "server.h"

int shim_exit_code(int status)
{
    if (WIFEXITED(status)) return WEXITSTATUS(status);
    if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
    return 255;
}

static void reply_ok(client *cl)
{
    client_reply(cl, json_pack("{s:b}", "ok", 1));
}

json_t *shim_exit_reply(shim *sh)
{
    return json_pack("{s:b,s:i,s:b,s:s}", "ok", 1, "exit_code", sh->exit_code, "oom_killed",
                     sh->oom_killed, "finished_at", sh->finished_at);
}

static bool not_running(shim *sh, client *cl)
{
    if (!sh->finished) return false;
    berr e;
    berr_set(&e, 409, "container %s is not running", sh->id);
    client_reply_err(cl, &e);
    return true;
}

static void req_state(shim *sh, client *cl, json_t *req)
{
    json_t *r = json_pack("{s:b,s:i,s:b,s:b}", "ok", 1, "pid", (int)(sh->ctr ? sh->ctr->pid : 0),
                          "running", !sh->finished, "tty", sh->ctr && sh->ctr->tty);
    if (sh->finished) {
        json_object_set_new(r, "exit_code", json_integer(sh->exit_code));
        json_object_set_new(r, "oom_killed", json_boolean(sh->oom_killed));
    }
    client_reply(cl, r);
}

static void req_kill(shim *sh, client *cl, json_t *req)
{
    berr e = {0};
    json_int_t sig = json_integer_value(json_object_get(req, "signal"));
    if (sig <= 0 || sig >= NSIG) {
        berr_set(&e, 400, "invalid signal %lld", (long long)sig);
        return client_reply_err(cl, &e);
    }
    if (not_running(sh, cl)) return;
    if (rt_kill(sh->c, (int)sig, json_is_true(json_object_get(req, "all")), &e) < 0)
        return client_reply_err(cl, &e);
    reply_ok(cl);
}

static void req_resize(shim *sh, client *cl, json_t *req)
{
    berr e = {0};
    const char *xid = jstr(req, "exec_id");
    target *t = xid ? target_find_exec(sh, xid) : sh->ctr;
    json_int_t h = json_integer_value(json_object_get(req, "height"));
    json_int_t w = json_integer_value(json_object_get(req, "width"));
    if (h <= 0 || w <= 0 || h > 65535 || w > 65535)
        berr_set(&e, 400, "invalid tty size %lldx%lld", h, w);
    else if (!t)
        berr_set(&e, 404, "no such exec: %s", xid);
    else if (!t->tty)
        berr_set(&e, 409, "%s has no tty", xid ? "the exec" : "the container");
    else if (t->out_fd[0] < 0)
        berr_set(&e, 409, "%s is not running", xid ? "the exec" : "the container");
    if (e.status) return client_reply_err(cl, &e);
    struct winsize ws = {.ws_row = (unsigned short)h, .ws_col = (unsigned short)w};
    if (ioctl(t->out_fd[0], TIOCSWINSZ, &ws) < 0) {
        berr_errno(&e, 500, "resize tty");
        return client_reply_err(cl, &e);
    }
    reply_ok(cl);
}

static void req_wait(shim *sh, client *cl, json_t *req)
{
    if (sh->finished) return client_reply(cl, shim_exit_reply(sh));
    cl->state = CL_WAIT;
}

static void req_attach(shim *sh, client *cl, json_t *req)
{
    if (not_running(sh, cl)) return;
    client_attach(sh, cl, sh->ctr, json_is_true(json_object_get(req, "stdin")),
                  json_is_true(json_object_get(req, "stdout")),
                  json_is_true(json_object_get(req, "stderr")));
}

/* ---- exec ---- */
static int read_exec_exit(shim *sh, const char *id, int *code)
{
    char *path = proto_exec_exit_path(sh->state_dir, id), *data = NULL;
    int r = read_file(path, &data, NULL);
    free(path);
    if (r < 0) return -1;
    json_t *j = json_fast_loadb(data, strlen(data), 0, NULL);
    free(data);
    if (!j) return -1;
    *code = (int)json_integer_value(json_object_get(j, "ExitCode"));
    json_decref(j);
    return 0;
}

static void req_exec_wait(shim *sh, client *cl, json_t *req)
{
    berr e = {0};
    const char *id = jstr(req, "exec_id");
    int code;
    if (!proto_exec_id_valid(id))
        berr_set(&e, 400, "invalid exec id");
    else if (target_find_exec(sh, id)) {
        cl->state = CL_EXEC_WAIT;
        cl->exec_id = xstrdup(id);
        return;
    } else if (read_exec_exit(sh, id, &code) == 0) {
        return client_reply(cl, json_pack("{s:b,s:i}", "ok", 1, "exit_code", code));
    } else {
        berr_set(&e, 404, "no such exec: %s", id);
    }
    client_reply_err(cl, &e);
}

/* stdio for an exec: fds[0..2] the process's ends, mine[0..2] ours; -1 none. */
static int exec_pipes(bool tty, bool want_in, int fds[3], int mine[3], berr *e)
{
    for (int i = 0; i < 3; i++) fds[i] = mine[i] = -1;
    if (tty) return 0; /* the runtime gives the process a pty */
    for (int i = 0; i < 3; i++) {
        int p[2];
        if (i == 0 && !want_in) {
            if ((fds[0] = open("/dev/null", O_RDONLY | O_CLOEXEC)) < 0)
                return berr_errno(e, 500, "open /dev/null");
            continue;
        }
        if (pipe2(p, O_CLOEXEC) < 0) return berr_errno(e, 500, "pipe");
        fds[i] = i == 0 ? p[0] : p[1];
        mine[i] = i == 0 ? p[1] : p[0];
        set_nonblock(mine[i]);
    }
    return 0;
}

static void close3(int fds[3])
{
    for (int i = 0; i < 3; i++)
        if (fds[i] >= 0) close(fds[i]), fds[i] = -1;
}

/* The spec is read again for each exec (its seccomp profile), so that the
 * shim does not keep it in memory while the container runs. */
static int run_exec(shim *sh, const json_t *process, bool tty, const rt_io *io, pid_t *pid,
                    int *console, berr *e)
{
    rt_process *p = NULL;
    rt_spec *spec = NULL;
    int r = -1;
    if (rt_process_load(process, &p, e) == 0 && rt_spec_load_bundle(sh->bundle, &spec, e) == 0)
        r = rt_exec(sh->c, spec, p, io, pid, tty ? console : NULL, e);
    rt_spec_free(spec);
    rt_process_free(p);
    return r;
}

static void req_exec(shim *sh, client *cl, json_t *req)
{
    berr e = {0};
    const char *id = jstr(req, "exec_id");
    const json_t *process = json_object_get(req, "process");
    bool want_in = json_is_true(json_object_get(req, "stdin"));
    bool tty = json_is_true(json_object_get(process, "terminal"));
    if (not_running(sh, cl)) return;
    if (!proto_exec_id_valid(id))
        berr_set(&e, 400, "invalid exec id");
    else if (!json_is_object(process))
        berr_set(&e, 400, "exec: no process");
    else if (target_find_exec(sh, id))
        berr_set(&e, 409, "exec %s is already running", id);
    if (e.status) return client_reply_err(cl, &e);
    int fds[3], mine[3], console = -1;
    pid_t pid = -1;
    rt_io io = {{-1, -1, -1}, -1};
    int r = exec_pipes(tty, want_in, fds, mine, &e);
    memcpy(io.fd, fds, sizeof fds);
    if (r == 0) r = run_exec(sh, process, tty, &io, &pid, &console, &e);
    close3(fds);
    if (r < 0) {
        close3(mine);
        return client_reply_err(cl, &e);
    }
    target *t = target_new(sh, id, pid, tty);
    if (tty) {
        set_nonblock(console);
        t->out_fd[0] = console;
        t->in_fd = want_in ? console : -1;
    } else {
        t->in_fd = mine[0], t->out_fd[0] = mine[1], t->out_fd[1] = mine[2];
    }
    client_attach(sh, cl, t, want_in, true, true);
}

/* The exec'd process exited and its output is drained: record the exit
 * code (for shim_exec_wait, also after the shim is gone), answer its
 * waiters, end its streams. */
void shim_exec_finished(shim *sh, target *t, int exit_code)
{
    char *path = proto_exec_exit_path(sh->state_dir, t->exec_id);
    char data[64];
    int n = snprintf(data, sizeof data, "{\"ExitCode\":%d}", exit_code);
    if (write_file_replace(path, data, (size_t)n, 0600) < 0)
        log_warn("shim: write %s: %s", path, strerror(errno));
    free(path);
    for (client *cl = sh->clients; cl; cl = cl->next) {
        if (cl->dead) continue;
        if (cl->state == CL_EXEC_WAIT && !strcmp(cl->exec_id, t->exec_id))
            client_reply(cl, json_pack("{s:b,s:i}", "ok", 1, "exit_code", exit_code));
        else if (cl->state == CL_STREAM && cl->t == t)
            client_finish(cl); /* all output is queued: close once it is sent */
    }
}

/* ---- dispatch ---- */
void shim_request(shim *sh, client *cl, const char *line, size_t n)
{
    static const struct {
        const char *op;
        void (*fn)(shim *, client *, json_t *);
    } ops[] = {{"state", req_state},        {"kill", req_kill},     {"resize", req_resize},
               {"wait", req_wait},          {"attach", req_attach}, {"exec", req_exec},
               {"exec-wait", req_exec_wait}};
    berr e = {0};
    cl->deadline = 0;
    json_t *req = json_parse_body(line, n, &e);
    const char *op = req ? jstr(req, "op") : NULL;
    if (!req) return client_reply_err(cl, &e);
    for (size_t i = 0; i < sizeof ops / sizeof ops[0]; i++)
        if (op && !strcmp(op, ops[i].op)) {
            ops[i].fn(sh, cl, req);
            json_decref(req);
            return;
        }
    berr_set(&e, 400, "unknown shim request %s", op ? op : "(none)");
    json_decref(req);
    client_reply_err(cl, &e);
}
