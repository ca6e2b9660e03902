/* cmd_run.c: the commands that create containers or attach to them: run,
 * create, start and attach (also as `container run|create|start|attach`).
 *
 * `run` follows docker's order: create (pulling when the image is missing,
 * which fails here as there is no registry: "Unable to find image ...
 * locally" then the pull error), attach (hijacked) and a wait request
 * (next-exit, or removed with --rm) before start, then start, resize,
 * pump stdin/stdout until the stream ends, and exit with the wait's status
 * code. Errors before the container runs exit 125, or 126/127 when the
 * start error says the command cannot be invoked or was not found. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/jsonutil.h"
#include "cli/copts.h"

/* docker's reportError: "berth: msg." plus the help hint. */
static void report_error(const char *cmd, const char *msg, bool help)
{
    size_t n = strlen(msg);
    while (n && msg[n - 1] == '.') n--;
    fprintf(stderr, "%s: %.*s.\n", CLI_NAME, (int)n, msg);
    if (help) fprintf(stderr, "See '%s %s --help'.\n", CLI_NAME, cmd);
}

/* runStartContainerErr: the exit code a create/start error implies. */
static int start_err_code(const char *msg)
{
    if (strstr(msg, "executable file not found") || strstr(msg, "no such file or directory") ||
        strstr(msg, "system error: exec"))
        return 127;
    if (strstr(msg, "permission denied")) return 126;
    return 125;
}

static char *daemon_msg(const resp *r)
{
    char *m = resp_error_message(r);
    char *out = xasprintf("Error response from daemon: %s", m);
    free(m);
    return out;
}

/* POST /images/create?fromImage=..; NULL on success, else the error. */
static char *pull_image(client *c, const char *name, const char *tag, const copts *o)
{
    sbuf path = {0};
    sbuf_adds(&path, "/images/create");
    query_add(&path, "fromImage", name);
    query_add(&path, "tag", tag);
    if (o->platform && *o->platform) query_add(&path, "platform", o->platform);
    FILE *devnull = o->quiet ? fopen("/dev/null", "w") : NULL;
    jsonmsg m = {.tty = isatty(STDERR_FILENO), .out = devnull ? devnull : stderr};
    req rq = {
        .method = "POST", .path = path.data, .body_fd = -1, .on_data = jsonmsg_feed, .ctx = &m};
    resp r;
    char *err = NULL;
    if (client_do(c, &rq, &r) < 0)
        err = xstrdup("");
    else if (r.status >= 400)
        err = daemon_msg(&r);
    else if (m.error)
        err = xstrdup(m.error);
    resp_free(&r);
    sbuf_free(&path);
    sbuf_free(&m.pending);
    free(m.error);
    if (devnull) fclose(devnull);
    return err;
}

typedef struct created {
    char *id;
    char *err; /* the error, when id is NULL ("" when already printed) */
    bool pulled;
} created;

/* The connections run_created needs (attach and wait, or wait), connected
 * while the daemon creates the container. */
static int preconnect_n;

static int post_create(client *c, const copts *o, const json_t *body, resp *r)
{
    sbuf path = {0};
    sbuf_adds(&path, "/containers/create");
    if (o->name && *o->name) query_add(&path, "name", o->name);
    if (o->platform && *o->platform) query_add(&path, "platform", o->platform);
    char *b = json_dump_compact(body);
    req rq = {.method = "POST",
              .path = path.data,
              .body = b,
              .body_len = strlen(b),
              .body_fd = -1,
              .content_type = "application/json",
              .sent = preconnect_n ? client_preconnect : NULL,
              .sent_arg = preconnect_n};
    int rc = client_do(c, &rq, r);
    free(b);
    sbuf_free(&path);
    return rc;
}

static int cidfile_open(const char *path, char **err)
{
    if (!path || !*path) return -1;
    if (access(path, F_OK) == 0) {
        *err = xasprintf("Container ID file found, make sure the other container isn't running "
                         "or delete %s",
                         path);
        return -2;
    }
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd < 0) *err = xasprintf("Failed to create the container ID file: %s", go_strerror(errno));
    return fd < 0 ? -2 : fd;
}

/* createContainer: create, pulling the image once when it is missing. */
static created create_container(client *c, const copts *o, const json_t *body)
{
    created out = {0};
    const char *image = jstr(body, "Image");
    char *name = NULL, *tag = NULL;
    const char *bad = ref_check(image, &name, &tag);
    if (bad && strcmp(bad, "digest")) {
        out.err = xstrdup(bad);
        return out;
    }
    char *ref = bad ? xstrdup(image) : xasprintf("%s:%s", name, tag ? tag : "latest");
    int cid = cidfile_open(o->cidfile, &out.err);
    const char *pull = o->pull && *o->pull ? o->pull : "missing";
    resp r = {0};
    if (cid == -2) goto done;
    if (!strcmp(pull, "always") && !bad && (out.err = pull_image(c, name, tag ? tag : "latest", o)))
        goto done;
    if (post_create(c, o, body, &r) < 0) {
        out.err = xstrdup("");
        goto done;
    }
    if (r.status == 404 && strcmp(pull, "never") && !bad) {
        fprintf(stderr, "Unable to find image '%s' locally\n", ref);
        if ((out.err = pull_image(c, name, tag ? tag : "latest", o))) goto done;
        resp_free(&r);
        if (post_create(c, o, body, &r) < 0) {
            out.err = xstrdup("");
            goto done;
        }
    }
    if (r.status >= 400) {
        out.err = daemon_msg(&r);
        goto done;
    }
    json_error_t je;
    json_t *j = json_fast_loadb(r.body.data ? r.body.data : "", r.body.len, 0, &je);
    size_t i;
    json_t *w;
    json_array_foreach(json_object_get(j, "Warnings"), i, w)
        fprintf(stderr, "WARNING: %s\n", json_string_value(w));
    out.id = jstr(j, "Id") ? xstrdup(jstr(j, "Id")) : NULL;
    if (!out.id) out.err = xstrdup("Error response from daemon: no container ID in response");
    json_decref(j);
    if (cid >= 0 && out.id) {
        if (write_all(cid, out.id, strlen(out.id)) < 0) {
        }
    }
done:
    if (cid >= 0) close(cid);
    resp_free(&r);
    free(ref);
    free(name);
    free(tag);
    return out;
}

/* ---- shared by run, start and attach ---- */

typedef struct session {
    client *c;
    const char *id;
    bool tty, in, out, err;
    const char *detach_keys;
    bool proxy;
    hconn att, wait;
} session;

static int open_attach(session *s)
{
    char *e = url_escape(s->id);
    sbuf path = {0};
    sbuf_printf(&path, "/containers/%s/attach?stream=1&stdin=%d&stdout=%d&stderr=%d", e, s->in,
                s->out, s->err);
    if (s->detach_keys && *s->detach_keys) query_add(&path, "detachKeys", s->detach_keys);
    long status;
    char *err = NULL;
    int rc = hijack(s->c, &s->att, path.data, NULL, &status, &err);
    if (rc < 0 && err) errorf("Error response from daemon: %s", err);
    free(err);
    sbuf_free(&path);
    free(e);
    return rc;
}

/* Sends the wait request; its head must be read (wait_head) before start,
 * so that it is registered by then. */
static int send_wait(session *s, const char *condition)
{
    char *e = url_escape(s->id);
    char *path = xasprintf("/containers/%s/wait%s%s", e, condition ? "?condition=" : "",
                           condition ? condition : "");
    int rc = hconn_request(s->c, &s->wait, "POST", path, NULL, NULL, false);
    free(path);
    free(e);
    return rc;
}

static int wait_head(session *s)
{
    return s->wait.fd >= 0 && hconn_head(&s->wait, 10000) < 0 ? -1 : 0;
}

static int open_wait(session *s, const char *condition)
{
    int rc = send_wait(s, condition);
    return rc == 0 ? wait_head(s) : rc;
}

/* Reads the wait result: the status code, or 125 after an error. */
static int wait_status(session *s, bool quiet_errors)
{
    if (s->wait.fd < 0) return 125;
    if (s->wait.status >= 400) {
        char *m = hconn_error(&s->wait);
        if (!quiet_errors) errorf("error waiting for container: Error response from daemon: %s", m);
        free(m);
        return 125;
    }
    sbuf b = {0};
    int rc = 125;
    json_error_t je;
    json_t *j =
        hconn_body(&s->wait, &b) == 0 ? json_fast_loadb(b.data ? b.data : "", b.len, 0, &je) : NULL;
    const char *msg = jstr(json_object_get(j, "Error"), "Message");
    if (msg && *msg)
        errorf("Error waiting for container: %s", msg);
    else if (j)
        rc = (int)json_integer_value(json_object_get(j, "StatusCode"));
    else if (!quiet_errors)
        errorf("error waiting for container: unexpected EOF");
    json_decref(j);
    sbuf_free(&b);
    return rc;
}

static int pump_session(session *s)
{
    char *base = xasprintf("/containers/%s", s->id);
    pump_opts po = {.tty = s->tty,
                    .in_fd = s->in ? STDIN_FILENO : -1,
                    .output = s->out || s->err,
                    .detach_keys = s->detach_keys,
                    .c = s->c,
                    .resize_base = s->tty && isatty(STDOUT_FILENO) ? base : NULL,
                    .proxy_id = s->proxy ? s->id : NULL};
    int rc = stream_pump(&s->att, &po);
    free(base);
    return rc;
}

static void session_close(session *s)
{
    hconn_close(&s->att);
    hconn_close(&s->wait);
}

/* POST /containers/{id}/start; NULL or the error text. */
static char *start_one(client *c, const char *id)
{
    char *e = url_escape(id);
    char *path = xasprintf("/containers/%s/start", e);
    req rq = {.method = "POST", .path = path, .body_fd = -1};
    resp r;
    char *err = NULL;
    if (client_do(c, &rq, &r) < 0)
        err = xstrdup("");
    else if (r.status >= 400)
        err = daemon_msg(&r);
    resp_free(&r);
    free(path);
    free(e);
    return err;
}

/* ---- run ---- */

static void set_attach(json_t *body, bool in, bool out, bool err)
{
    json_object_set_new(body, "AttachStdin", json_boolean(in));
    json_object_set_new(body, "AttachStdout", json_boolean(out));
    json_object_set_new(body, "AttachStderr", json_boolean(err));
}

/* Everything after create: attach, wait, start, pump, status. */
static int run_created(session *s, const copts *o)
{
    bool attach = s->in || s->out || s->err;
    /* the wait request travels while the attach is answered: one round trip less */
    if (!o->detach && send_wait(s, o->rm ? "removed" : "next-exit") < 0) hconn_close(&s->wait);
    if (attach && open_attach(s) < 0) return 1;
    if (wait_head(s) < 0) hconn_close(&s->wait);
    char *err = start_one(s->c, s->id);
    if (err) {
        if (*err) report_error("run", err, false);
        if (o->rm) wait_status(s, true);
        int rc = start_err_code(err);
        free(err);
        return rc;
    }
    if (attach && s->tty && isatty(STDOUT_FILENO)) {
        char *base = xasprintf("/containers/%s", s->id);
        tty_resize(s->c, base, 0);
        free(base);
    }
    if (attach) {
        int p = pump_session(s);
        if (p == PUMP_DETACHED) return 0;
        if (p == PUMP_ERROR) return 1;
    }
    if (!s->out && !s->err) return 0;
    return wait_status(s, false);
}

static int run_main(client *c, copts *o, const char *image, int argc, char **argv)
{
    char *err = NULL;
    json_t *body = copts_build(o, image, argc, argv, &err);
    if (!body) {
        report_error("run", err, true);
        free(err);
        return 125;
    }
    session s = {.c = c, .tty = o->tty, .detach_keys = o->detach_keys, .att.fd = -1, .wait.fd = -1};
    s.in = json_is_true(json_object_get(body, "AttachStdin"));
    s.out = json_is_true(json_object_get(body, "AttachStdout"));
    s.err = json_is_true(json_object_get(body, "AttachStderr"));
    int rc = 0;
    if (!o->detach && s.in && s.tty && !isatty(STDIN_FILENO)) {
        errorf("the input device is not a TTY");
        rc = 1;
    } else if (o->detach && o->attach.n) {
        errorf("Conflicting options: -a and -d");
        rc = 1;
    }
    if (rc) return json_decref(body), rc;
    if (o->detach) {
        s.in = s.out = s.err = false;
        set_attach(body, false, false, false);
        json_object_set_new(body, "StdinOnce", json_false());
    }
    s.proxy = o->sig_proxy && !o->tty;
    /* the attach's and the wait's connections are made while it creates */
    preconnect_n = o->detach ? 0 : 1 + (s.in || s.out || s.err);
    created cr = create_container(c, o, body);
    json_decref(body);
    if (!cr.id) {
        if (*cr.err) report_error("run", cr.err, true);
        rc = start_err_code(cr.err);
    } else {
        s.id = cr.id;
        if (!s.out && !s.err) {
            printf("%s\n", cr.id);
            fflush(stdout);
        }
        rc = run_created(&s, o);
    }
    session_close(&s);
    free(cr.id);
    free(cr.err);
    return rc;
}

int run_run(client *c, const cmd_def *def, int argc, char **argv)
{
    copts o;
    copts_init(&o);
    flag *flags = copts_flags(&o, true);
    char **pos = NULL;
    int rc, n = parse_cmd(def, flags, argc, argv, &pos, &rc);
    if (n >= 0) rc = run_main(c, &o, pos[0], n - 1, pos + 1);
    free(pos);
    free(flags);
    copts_free(&o);
    return rc;
}

int run_create(client *c, const cmd_def *def, int argc, char **argv)
{
    copts o;
    copts_init(&o);
    flag *flags = copts_flags(&o, false);
    char **pos = NULL;
    int rc, n = parse_cmd(def, flags, argc, argv, &pos, &rc);
    if (n >= 0) {
        char *err = NULL;
        json_t *body = copts_build(&o, pos[0], n - 1, pos + 1, &err);
        if (!body) {
            report_error("create", err, true);
            rc = 125;
        } else {
            created cr = create_container(c, &o, body);
            if (cr.id)
                printf("%s\n", cr.id);
            else if (*cr.err)
                errorf("%s", cr.err);
            rc = cr.id ? 0 : 1;
            free(cr.id);
            free(cr.err);
        }
        free(err);
        json_decref(body);
    }
    free(pos);
    free(flags);
    copts_free(&o);
    return rc;
}

/* ---- start ---- */

/* GET /containers/{id}/json; NULL after printing docker's error. */
json_t *inspect_container(client *c, const char *name)
{
    char *e = url_escape(name);
    char *path = xasprintf("/containers/%s/json", e);
    req rq = {.method = "GET", .path = path, .body_fd = -1};
    resp r;
    json_t *j = NULL;
    if (client_do(c, &rq, &r) == 0) {
        if (r.status == 404)
            errorf("Error: No such container: %s", name);
        else if (r.status >= 400)
            print_daemon_error(&r);
        else {
            json_error_t je;
            j = json_fast_loadb(r.body.data ? r.body.data : "", r.body.len, 0, &je);
        }
    }
    resp_free(&r);
    free(path);
    free(e);
    return j;
}

static bool cfg_bool(const json_t *j, const char *sect, const char *key)
{
    return json_is_true(json_object_get(json_object_get(j, sect), key));
}

/* start -a/-i: attach, wait, start, pump, exit status. */
static int start_attached(client *c, const char *name, bool open_stdin, const char *keys)
{
    json_t *j = inspect_container(c, name);
    if (!j) return 1;
    session s = {.c = c,
                 .id = jstr(j, "Id"),
                 .tty = cfg_bool(j, "Config", "Tty"),
                 .out = true,
                 .err = true,
                 .detach_keys = keys,
                 .att.fd = -1,
                 .wait.fd = -1};
    s.in = open_stdin && cfg_bool(j, "Config", "OpenStdin");
    s.proxy = !s.tty;
    bool rm = cfg_bool(j, "HostConfig", "AutoRemove");
    int rc = 1;
    if (open_attach(&s) == 0) {
        if (open_wait(&s, rm ? "removed" : "next-exit") < 0) hconn_close(&s.wait);
        char *err = start_one(c, s.id);
        if (err) {
            if (*err) errorf("%s", err);
            if (rm) wait_status(&s, true);
            free(err);
        } else {
            if (s.tty && isatty(STDOUT_FILENO)) {
                char *base = xasprintf("/containers/%s", s.id);
                tty_resize(c, base, 0);
                free(base);
            }
            int p = pump_session(&s);
            if (p == PUMP_DETACHED)
                errorf("read escape sequence");
            else if (p == PUMP_EOF)
                rc = wait_status(&s, false);
        }
    }
    session_close(&s);
    json_decref(j);
    return rc;
}

int run_start(client *c, const cmd_def *def, int argc, char **argv)
{
    bool attach = false, interactive = false;
    char *keys = NULL, *cp = NULL, *cpdir = NULL;
    flag flags[] = {
        {"attach", 'a', FLAG_BOOL, &attach, "Attach STDOUT/STDERR and forward signals"},
        {"detach-keys", 0, FLAG_STRING, &keys,
         "Override the key sequence for detaching a container"},
        {"interactive", 'i', FLAG_BOOL, &interactive, "Attach container's STDIN"},
        {"checkpoint", 0, FLAG_STRING, &cp, "Restore from this checkpoint", .hidden = true},
        {"checkpoint-dir", 0, FLAG_STRING, &cpdir, "Use a custom checkpoint storage directory",
         .hidden = true},
        {NULL},
    };
    char **pos = NULL;
    int rc, n = parse_cmd(def, flags, argc, argv, &pos, &rc);
    if (n < 0) goto out;
    rc = 0;
    if ((attach || interactive) && n > 1) {
        errorf("you cannot start and attach multiple containers at once");
        rc = 1;
    } else if (attach || interactive) {
        rc = start_attached(c, pos[0], interactive, keys);
    } else {
        sbuf failed = {0};
        for (int i = 0; i < n; i++) {
            char *err = start_one(c, pos[i]);
            if (err) {
                if (*err) errorf("%s", err);
                sbuf_printf(&failed, "%s%s", failed.len ? ", " : "", pos[i]);
            } else
                printf("%s\n", pos[i]);
            fflush(stdout);
            free(err);
        }
        if (failed.len) errorf("Error: failed to start containers: %s", failed.data);
        rc = failed.len ? 1 : 0;
        sbuf_free(&failed);
    }
out:
    free(pos);
    free(keys);
    free(cp);
    free(cpdir);
    return rc;
}

/* ---- attach ---- */

/* inspectContainerAndCheckState */
static json_t *attachable(client *c, const char *name)
{
    json_t *j = inspect_container(c, name);
    json_t *st = json_object_get(j, "State");
    const char *why = NULL;
    if (!j) return NULL;
    if (!json_is_true(json_object_get(st, "Running")))
        why = "You cannot attach to a stopped container, start it first";
    else if (json_is_true(json_object_get(st, "Paused")))
        why = "You cannot attach to a paused container, unpause it first";
    else if (json_is_true(json_object_get(st, "Restarting")))
        why = "You cannot attach to a restarting container, wait until it is running";
    if (!why) return j;
    errorf("%s", why);
    json_decref(j);
    return NULL;
}

static int attach_main(client *c, const char *name, bool no_stdin, bool proxy, const char *keys)
{
    session s = {.c = c,
                 .out = true,
                 .err = true,
                 .detach_keys = keys,
                 .att.fd = -1,
                 .wait.fd = -1,
                 .id = name};
    if (open_wait(&s, NULL) < 0) hconn_close(&s.wait);
    json_t *j = attachable(c, name);
    if (!j) return session_close(&s), 1;
    s.tty = cfg_bool(j, "Config", "Tty");
    int rc = 1;
    if (!no_stdin && s.tty && !isatty(STDIN_FILENO)) {
        errorf("the input device is not a TTY");
        goto out;
    }
    s.in = !no_stdin && cfg_bool(j, "Config", "OpenStdin");
    s.proxy = proxy && !s.tty;
    if (open_attach(&s) < 0) goto out;
    json_t *again = attachable(c, name);
    if (!again) goto out;
    json_decref(again);
    if (s.tty && isatty(STDOUT_FILENO)) {
        char *base = xasprintf("/containers/%s", name);
        tty_resize(c, base, 1);
        tty_resize(c, base, 0);
        free(base);
    }
    int p = pump_session(&s);
    if (p == PUMP_DETACHED)
        errorf("read escape sequence");
    else if (p == PUMP_EOF)
        rc = wait_status(&s, false);
out:
    session_close(&s);
    json_decref(j);
    return rc;
}

int run_attach(client *c, const cmd_def *def, int argc, char **argv)
{
    bool no_stdin = false, proxy = true;
    char *keys = NULL;
    flag flags[] = {
        {"detach-keys", 0, FLAG_STRING, &keys,
         "Override the key sequence for detaching a container"},
        {"no-stdin", 0, FLAG_BOOL, &no_stdin, "Do not attach STDIN"},
        {"sig-proxy", 0, FLAG_BOOL, &proxy, "Proxy all received signals to the process", "true"},
        {NULL},
    };
    char **pos = NULL;
    int rc;
    if (parse_cmd(def, flags, argc, argv, &pos, &rc) >= 0)
        rc = attach_main(c, pos[0], no_stdin, proxy, keys);
    free(pos);
    free(keys);
    return rc;
}
