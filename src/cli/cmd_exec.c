/* cmd_exec.c: `berth exec` (container exec).
 *
 * Inspects the container first (so that "No such container" wins), checks
 * the TTY, creates the exec (POST /containers/{id}/exec), then either
 * starts it detached or hijacks POST /exec/{id}/start and pumps the
 * streams (raw mode and window size for -t), and exits with the exec's
 * own exit code from GET /exec/{id}/json. */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/copts.h"

typedef struct exec_opts {
    bool detach, interactive, privileged, tty;
    char *detach_keys, *user, *workdir;
    strv env, env_file;
} exec_opts;

static json_t *exec_config(const exec_opts *o, int argc, char **argv, char **err)
{
    json_t *env = json_array();
    if (read_env(&o->env_file, &o->env, env, err) < 0) {
        json_decref(env);
        return NULL;
    }
    json_t *cmd = json_array();
    for (int i = 0; i < argc; i++) json_array_append_new(cmd, json_string(argv[i]));
    bool attach = !o->detach;
    return json_pack("{s:s, s:b, s:b, s:b, s:b, s:b, s:b, s:s, s:o, s:s, s:o}", "User",
                     o->user ? o->user : "", "Privileged", o->privileged, "Tty", o->tty,
                     "AttachStdin", attach && o->interactive, "AttachStdout", attach,
                     "AttachStderr", attach, "Detach", o->detach, "DetachKeys",
                     o->detach_keys ? o->detach_keys : "", "Env", env, "WorkingDir",
                     o->workdir ? o->workdir : "", "Cmd", cmd);
}

static int exec_exit_code(client *c, const char *id)
{
    char *path = xasprintf("/exec/%s/json", id);
    json_t *j = NULL;
    int rc = client_json(c, "GET", path, NULL, &j) < 0
                 ? 1
                 : (int)json_integer_value(json_object_get(j, "ExitCode"));
    json_decref(j);
    free(path);
    return rc;
}

static int exec_interactive(client *c, const exec_opts *o, const char *id)
{
    char *path = xasprintf("/exec/%s/start", id);
    json_t *b = json_pack("{s:b, s:b}", "Detach", false, "Tty", o->tty);
    char *body = json_dump_compact(b);
    json_decref(b);
    hconn h = {.fd = -1};
    long status;
    char *err = NULL;
    int rc = hijack(c, &h, path, body, &status, &err);
    free(body);
    free(path);
    if (rc < 0) {
        if (err) errorf("Error response from daemon: %s", err);
        free(err);
        return 1;
    }
    char *base = xasprintf("/exec/%s", id);
    if (o->tty && isatty(STDIN_FILENO)) tty_resize(c, base, 0);
    pump_opts po = {.tty = o->tty,
                    .in_fd = o->interactive ? STDIN_FILENO : -1,
                    .output = true,
                    .detach_keys = o->detach_keys,
                    .c = c,
                    .resize_base = o->tty && isatty(STDIN_FILENO) ? base : NULL};
    int p = stream_pump(&h, &po);
    hconn_close(&h);
    free(base);
    if (p == PUMP_DETACHED) {
        errorf("read escape sequence");
        return 1;
    }
    return p == PUMP_ERROR ? 1 : exec_exit_code(c, id);
}

static int exec_main(client *c, const exec_opts *o, const char *name, int argc, char **argv)
{
    json_t *ct = inspect_container(c, name);
    if (!ct) return 1;
    json_decref(ct);
    if (!o->detach && o->interactive && o->tty && !isatty(STDIN_FILENO)) {
        errorf("the input device is not a TTY");
        return 1;
    }
    char *err = NULL;
    json_t *cfg = exec_config(o, argc, argv, &err);
    if (!cfg) {
        errorf("%s", err);
        free(err);
        return 1;
    }
    char *e = url_escape(name);
    char *path = xasprintf("/containers/%s/exec", e);
    json_t *res = NULL;
    int rc = client_json(c, "POST", path, cfg, &res) < 0 ? 1 : 0;
    const char *id = jstr(res, "Id");
    if (rc == 0 && (!id || !*id)) {
        errorf("exec ID empty");
        rc = 1;
    } else if (rc == 0 && o->detach) {
        char *sp = xasprintf("/exec/%s/start", id);
        json_t *b = json_pack("{s:b, s:b}", "Detach", true, "Tty", o->tty);
        rc = client_json(c, "POST", sp, b, NULL) < 0 ? 1 : 0;
        json_decref(b);
        free(sp);
    } else if (rc == 0)
        rc = exec_interactive(c, o, id);
    json_decref(res);
    json_decref(cfg);
    free(path);
    free(e);
    return rc;
}

int run_exec(client *c, const cmd_def *def, int argc, char **argv)
{
    exec_opts o = {0};
    flag flags[] = {
        {"detach", 'd', FLAG_BOOL, &o.detach, "Detached mode: run command in the background"},
        {"detach-keys", 0, FLAG_STRING, &o.detach_keys,
         "Override the key sequence for detaching a container"},
        {"env", 'e', FLAG_LIST, &o.env, "Set environment variables", NULL, "list", conv_env},
        {"env-file", 0, FLAG_LIST, &o.env_file, "Read in a file of environment variables"},
        {"interactive", 'i', FLAG_BOOL, &o.interactive, "Keep STDIN open even if not attached"},
        {"privileged", 0, FLAG_BOOL, &o.privileged, "Give extended privileges to the command"},
        {"tty", 't', FLAG_BOOL, &o.tty, "Allocate a pseudo-TTY"},
        {"user", 'u', FLAG_STRING, &o.user, "Username or UID (format: <name|uid>[:<group|gid>])"},
        {"workdir", 'w', FLAG_STRING, &o.workdir, "Working directory inside the container"},
        {NULL},
    };
    char **pos = NULL;
    int rc, n = parse_cmd(def, flags, argc, argv, &pos, &rc);
    if (n >= 0) rc = exec_main(c, &o, pos[0], n - 1, pos + 1);
    free(pos);
    free(o.detach_keys);
    free(o.user);
    free(o.workdir);
    strv_free(&o.env);
    strv_free(&o.env_file);
    return rc;
}
