/* api_exec.c: docker exec: POST /containers/{id}/exec, POST /exec/{id}/start,
 * GET /exec/{id}/json, POST /exec/{id}/resize. Exec records live in
 * memory (as in dockerd); the process runs under the container's shim,
 * which keeps its exit code. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/jsonutil.h"
#include "daemon/api.h"
#include "daemon/containers.h"
#include "daemon/lifecycle.h"
#include "daemon/logs.h"
#include "daemon/ocispec.h"
#include "runtime/runtime.h"
#include "shim/shim.h"

typedef struct exec_rec {
    char id[65];
    char cid[65];
    json_t *cfg; /* the create body */
    bool started, running;
    int exit_code; /* -1 until known */
    int pid;
    struct exec_rec *next;
} exec_rec;

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static exec_rec *execs;

static exec_rec *find_exec(const char *id)
{
    for (exec_rec *x = execs; x; x = x->next)
        if (!strcmp(x->id, id)) return x;
    return NULL;
}

void h_exec_create(req *r)
{
    berr e;
    container *c = ctr_get(req_param(r, 0), &e);
    if (!c) return resp_berr(r, &e);
    json_t *body = req_json(r);
    if (!body) return ctr_put(c);
    ctr_lock();
    bool running = ctr_running(c), paused = !strcmp(ctr_status(c), "paused");
    ctr_unlock();
    json_t *cmd = json_object_get(body, "Cmd");
    if (!running)
        resp_error(r, 409, "Container %s is not running", c->id);
    else if (paused)
        resp_error(r, 409, "Container %s is paused, unpause the container before exec", c->id);
    else if (!json_is_array(cmd) || !json_array_size(cmd))
        resp_error(r, 400, "No exec command specified");
    else {
        exec_rec *x = xcalloc(1, sizeof *x);
        unsigned char rnd[32];
        if (getrandom(rnd, sizeof rnd, 0) != (ssize_t)sizeof rnd) memset(rnd, 7, sizeof rnd);
        for (int i = 0; i < 32; i++) sprintf(x->id + 2 * i, "%02x", rnd[i]);
        snprintf(x->cid, sizeof x->cid, "%s", c->id);
        x->cfg = json_incref(body);
        x->exit_code = -1;
        pthread_mutex_lock(&mu);
        x->next = execs;
        execs = x;
        pthread_mutex_unlock(&mu);
        ctr_lock();
        json_t *ids = json_object_get(c->j, "ExecIDs");
        if (!json_is_array(ids)) json_object_set_new(c->j, "ExecIDs", ids = json_array());
        json_array_append_new(ids, json_string(x->id));
        ctr_unlock();
        char *cmdline = json_fast_dumps(cmd, JSON_COMPACT);
        lc_event(c, "exec_create", json_pack("{s:s,s:s}", "execID", x->id, "execCommand", cmdline));
        free(cmdline);
        resp_json(r, 201, json_pack("{s:s}", "Id", x->id));
    }
    json_decref(body);
    ctr_put(c);
}

/* The container's process spec with the exec's command, env, user, cwd, tty. */
static json_t *exec_process(const exec_rec *x, bool tty, berr *e)
{
    json_t *proc = lc_spec_process(x->cid);
    if (!proc) {
        berr_set(e, 409, "Container %s is not running", x->cid);
        return NULL;
    }
    char *edir = ctr_exec_dir(x->cid), *p;
    json_object_set(proc, "args", json_object_get(x->cfg, "Cmd"));
    json_t *env = json_object_get(proc, "env");
    size_t i;
    json_t *v;
    json_array_foreach(json_object_get(x->cfg, "Env"), i, v) json_array_append(env, v);
    const char *wd = jstr(x->cfg, "WorkingDir"), *user = jstr(x->cfg, "User");
    if (wd && *wd) json_object_set_new(proc, "cwd", json_string(wd));
    json_object_set_new(proc, "terminal", json_boolean(tty));
    if (tty) json_array_append_new(env, json_string("TERM=xterm"));
    if (json_is_true(
            json_object_get(x->cfg, "Privileged"))) { /* every capability the daemon holds */
        json_t *all = json_array();
        uint64_t held = ocispec_caps_held();
        for (int c = 0; c < 64; c++)
            if ((held & (1ULL << c)) && rt_cap_name(c))
                json_array_append_new(all, json_string(rt_cap_name(c)));
        json_object_set_new(proc, "capabilities",
                            json_pack("{s:O,s:O,s:O,s:[]}", "bounding", all, "effective", all,
                                      "permitted", all, "inheritable"));
        json_decref(all);
    }
    if (user && *user) {
        p = xasprintf("%s/rootfs", edir);
        json_t *u = ocispec_user(p, user, NULL, e);
        free(p);
        if (!u) {
            free(edir);
            json_decref(proc);
            return NULL;
        }
        json_object_set_new(proc, "user", u);
    }
    free(edir);
    return proc;
}

struct exec_run {
    char id[65];
    char cid[65];
    json_t *proc;
    bool in;
};

static void exec_run_free(void *p)
{
    struct exec_run *a = p;
    json_decref(a->proc);
    free(a);
}

static void set_exit(const char *id, bool running, int code, int pid)
{
    pthread_mutex_lock(&mu);
    exec_rec *x = find_exec(id);
    if (x) x->running = running, x->exit_code = code, x->pid = pid ? pid : x->pid;
    pthread_mutex_unlock(&mu);
}

/* Runs the exec; output (or the start error) goes to `sock`. */
static void exec_stream(int sock, void *p)
{
    struct exec_run *a = p;
    char *edir = ctr_exec_dir(a->cid);
    berr e;
    pid_t pid = 0;
    int fd = -1;
    if (shim_exec(edir, a->id, a->proc, a->in, &pid, &fd, &e) < 0) {
        set_exit(a->id, false, e.status == 404 ? 127 : 126, 0);
        char *msg = xasprintf("OCI runtime exec failed: %s: unknown\r\n", e.msg);
        if (sock >= 0) {
            sbuf out = {0};
            if (json_is_true(json_object_get(a->proc, "terminal")))
                sbuf_adds(&out, msg);
            else
                logs_frame(&out, 1, msg, strlen(msg)); /* a frame, as the stream is multiplexed */
            write_all(sock, out.data, out.len);
            sbuf_free(&out);
        }
        free(msg);
        free(edir);
        return;
    }
    set_exit(a->id, true, -1, pid);
    if (sock >= 0) {
        api_splice(sock, fd);
    } else {
        char buf[4096]; /* detached: output is discarded, as dockerd does */
        shutdown(fd, SHUT_WR);
        while (read(fd, buf, sizeof buf) > 0) {
        }
    }
    close(fd);
    int code = -1;
    bool running = false;
    if (shim_exec_wait(edir, a->id, 10000, &code, &running, &e) == 0 && !running)
        set_exit(a->id, false, code, 0);
    free(edir);
}

static void exec_detached(void *p)
{
    exec_stream(-1, p);
}

static void *detached_main(void *p)
{
    exec_detached(p);
    exec_run_free(p);
    return NULL;
}

void h_exec_start(req *r)
{
    json_t *body = r->body.len ? req_json(r) : json_object();
    if (!body) return;
    bool detach = json_is_true(json_object_get(body, "Detach"));
    bool tty = json_is_true(json_object_get(body, "Tty"));
    json_decref(body);
    pthread_mutex_lock(&mu);
    exec_rec *x = find_exec(req_param(r, 0));
    bool started = x && x->started;
    if (x) x->started = true;
    pthread_mutex_unlock(&mu);
    if (!x) return resp_error(r, 404, "No such exec instance: %s", req_param(r, 0));
    if (started) return resp_error(r, 409, "Error: Exec command %s has already run", x->id);
    berr e;
    container *c = ctr_get(x->cid, &e);
    if (!c) return resp_berr(r, &e);
    ctr_lock();
    bool running = ctr_running(c);
    ctr_unlock();
    if (!running) {
        ctr_put(c);
        return resp_error(r, 409, "Container %s is not running", x->cid);
    }
    struct exec_run *a = xcalloc(1, sizeof *a);
    memcpy(a->id, x->id, sizeof a->id);
    memcpy(a->cid, x->cid, sizeof a->cid);
    a->in = json_is_true(json_object_get(x->cfg, "AttachStdin"));
    tty = tty || json_is_true(json_object_get(x->cfg, "Tty"));
    a->proc = exec_process(x, tty, &e);
    lc_event(c, "exec_start", json_pack("{s:s}", "execID", x->id));
    ctr_put(c);
    if (!a->proc) {
        exec_run_free(a);
        return resp_berr(r, &e);
    }
    if (detach) {
        pthread_t t;
        pthread_attr_t at;
        pthread_attr_init(&at);
        pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
        if (pthread_create(&t, &at, detached_main, a) != 0) exec_run_free(a);
        pthread_attr_destroy(&at);
        return resp_empty(r, 200);
    }
    resp_hijack(
        r, tty ? "application/vnd.docker.raw-stream" : "application/vnd.docker.multiplexed-stream",
        exec_stream, a, exec_run_free);
}

void h_exec_inspect(req *r)
{
    pthread_mutex_lock(&mu);
    exec_rec *x = find_exec(req_param(r, 0));
    json_t *j = NULL;
    char id[65] = "", cid[65] = "";
    bool running = false;
    if (x) {
        memcpy(id, x->id, 65);
        memcpy(cid, x->cid, 65);
        running = x->running;
    }
    pthread_mutex_unlock(&mu);
    if (!x) return resp_error(r, 404, "No such exec instance: %s", req_param(r, 0));
    if (running) {
        char *edir = ctr_exec_dir(cid);
        int code = -1;
        bool still = true;
        berr e;
        if (shim_exec_wait(edir, id, 0, &code, &still, &e) == 0 && !still)
            set_exit(id, false, code, 0);
        else if (!shim_alive(edir))
            set_exit(id, false, 137, 0);
        free(edir);
    }
    pthread_mutex_lock(&mu);
    x = find_exec(id);
    json_t *cmd = json_object_get(x->cfg, "Cmd");
    json_t *args = json_deep_copy(cmd);
    json_array_remove(args, 0);
    j = json_pack("{s:b,s:s,s:s,s:o,s:s,s:b,s:b,s:b,s:{s:o,s:s,s:b,s:b,s:s},s:b,s:i}", "CanRemove",
                  0, "ContainerID", x->cid, "DetachKeys", "", "ExitCode",
                  x->exit_code >= 0 ? json_integer(x->exit_code) : json_null(), "ID", x->id,
                  "OpenStderr", json_is_true(json_object_get(x->cfg, "AttachStderr")), "OpenStdin",
                  json_is_true(json_object_get(x->cfg, "AttachStdin")), "OpenStdout",
                  json_is_true(json_object_get(x->cfg, "AttachStdout")), "ProcessConfig",
                  "arguments", args, "entrypoint", json_string_value(json_array_get(cmd, 0)),
                  "privileged", json_is_true(json_object_get(x->cfg, "Privileged")), "tty",
                  json_is_true(json_object_get(x->cfg, "Tty")), "user",
                  jstr(x->cfg, "User") ? jstr(x->cfg, "User") : "", "Running", x->running, "Pid",
                  x->pid);
    pthread_mutex_unlock(&mu);
    resp_json(r, 200, j);
}

void h_exec_resize(req *r)
{
    pthread_mutex_lock(&mu);
    exec_rec *x = find_exec(req_param(r, 0));
    char id[65] = "", cid[65] = "";
    if (x) memcpy(id, x->id, 65), memcpy(cid, x->cid, 65);
    pthread_mutex_unlock(&mu);
    if (!x) return resp_error(r, 404, "No such exec instance: %s", req_param(r, 0));
    const char *h = req_query(r, "h"), *w = req_query(r, "w");
    if (!h || !w) return resp_error(r, 400, "invalid resize parameters");
    char *edir = ctr_exec_dir(cid);
    berr e;
    int rc = shim_exec_resize(edir, id, atoi(h), atoi(w), &e);
    free(edir);
    if (rc < 0) return resp_berr(r, &e);
    resp_empty(r, 201);
}
