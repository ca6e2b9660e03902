/* cmd_container.c: container lifecycle and management commands that need
 * no stream: stop, kill, restart, pause, unpause, wait, rm, rename,
 * update, top, diff, export, commit, port and container prune.
 *
 * Commands over several containers act on each in turn, print the name
 * as given for each success, then print the errors joined (docker's
 * parallelOperation output) and exit 1 if any failed. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/jsonutil.h"
#include "cli/copts.h"

static const flag FLAG_END = {NULL};

/* method path(name) + query; NULL on success, else the error text.
 * out receives the JSON body when non-NULL. */
static char *call(client *c, const char *method, const char *fmt, const char *name,
                  const char *query, bool wrap404, json_t **out)
{
    char *e = url_escape(name);
    sbuf path = {0};
    sbuf_printf(&path, fmt, e);
    if (query && *query) sbuf_printf(&path, "%c%s", strchr(path.data, '?') ? '&' : '?', query);
    req rq = {.method = method, .path = path.data, .body_fd = -1};
    resp r;
    char *err = NULL;
    if (client_do(c, &rq, &r) < 0)
        err = xstrdup("");
    else if (r.status == 404 && wrap404)
        err = xasprintf("Error: No such container: %s", name);
    else if (r.status >= 400) {
        char *m = resp_error_message(&r);
        err = xasprintf("Error response from daemon: %s", m);
        free(m);
    } else if (out) {
        json_error_t je;
        *out = json_fast_loadb(r.body.data ? r.body.data : "", r.body.len, 0, &je);
    }
    resp_free(&r);
    sbuf_free(&path);
    free(e);
    return err;
}

/* Prints the collected errors (one per line); returns the exit code. */
static int flush_errors(sbuf *errs)
{
    int rc = errs->len ? 1 : 0;
    if (errs->len) errorf("%s", errs->data);
    sbuf_free(errs);
    return rc;
}

static void add_error(sbuf *errs, char *err)
{
    if (*err) sbuf_printf(errs, "%s%s", errs->len ? "\n" : "", err);
    free(err);
}

/* The same POST on each container; prints each name that succeeded. */
static int each(client *c, int n, char **names, const char *fmt, const char *query)
{
    sbuf errs = {0};
    int failed = 0;
    for (int i = 0; i < n; i++) {
        char *err = call(c, "POST", fmt, names[i], query, false, NULL);
        if (err) {
            failed++;
            add_error(&errs, err);
        } else
            printf("%s\n", names[i]);
        fflush(stdout);
    }
    int rc = flush_errors(&errs);
    return failed ? 1 : rc;
}

/* ---- stop, restart, kill, pause, unpause ---- */

static int stop_like(client *c, const cmd_def *def, int argc, char **argv, const char *action)
{
    long long t = 10;
    bool t_set = false;
    char *sig = NULL;
    flag flags[] = {
        {"signal", 's', FLAG_STRING, &sig, "Signal to send to the container"},
        {"time", 't', FLAG_INT, &t, "Seconds to wait for stop before killing it", "10", NULL, NULL,
         &t_set},
        FLAG_END,
    };
    char **pos = NULL;
    int rc, n = parse_cmd(def, flags, argc, argv, &pos, &rc);
    if (n >= 0) {
        sbuf q = {0};
        if (t_set) sbuf_printf(&q, "?t=%lld", t);
        if (sig && *sig) query_add(&q, "signal", sig);
        const char *qs = q.len ? q.data + 1 : NULL;
        char *fmt = xasprintf("/containers/%%s/%s", action);
        rc = each(c, n, pos, fmt, qs);
        free(fmt);
        sbuf_free(&q);
    }
    free(pos);
    free(sig);
    return rc;
}

int run_stop(client *c, const cmd_def *def, int argc, char **argv)
{
    return stop_like(c, def, argc, argv, "stop");
}

int run_restart(client *c, const cmd_def *def, int argc, char **argv)
{
    return stop_like(c, def, argc, argv, "restart");
}

int run_kill(client *c, const cmd_def *def, int argc, char **argv)
{
    char *sig = NULL;
    flag flags[] = {
        {"signal", 's', FLAG_STRING, &sig, "Signal to send to the container", "\"KILL\""},
        FLAG_END,
    };
    char **pos = NULL;
    int rc, n = parse_cmd(def, flags, argc, argv, &pos, &rc);
    if (n >= 0) {
        sbuf q = {0};
        query_add(&q, "signal", sig ? sig : "KILL");
        rc = each(c, n, pos, "/containers/%s/kill", q.data + 1);
        sbuf_free(&q);
    }
    free(pos);
    free(sig);
    return rc;
}

static int simple(client *c, const cmd_def *def, int argc, char **argv, const char *fmt)
{
    flag flags[] = {FLAG_END};
    char **pos = NULL;
    int rc, n = parse_cmd(def, flags, argc, argv, &pos, &rc);
    if (n >= 0) rc = each(c, n, pos, fmt, NULL);
    free(pos);
    return rc;
}

int run_pause(client *c, const cmd_def *def, int argc, char **argv)
{
    return simple(c, def, argc, argv, "/containers/%s/pause");
}

int run_unpause(client *c, const cmd_def *def, int argc, char **argv)
{
    return simple(c, def, argc, argv, "/containers/%s/unpause");
}

/* ---- wait ---- */

int run_wait(client *c, const cmd_def *def, int argc, char **argv)
{
    flag flags[] = {FLAG_END};
    char **pos = NULL;
    int rc, n = parse_cmd(def, flags, argc, argv, &pos, &rc);
    if (n < 0) return rc;
    sbuf errs = {0};
    for (int i = 0; i < n; i++) {
        json_t *res = NULL;
        char *err = call(c, "POST", "/containers/%s/wait", pos[i], NULL, false, &res);
        if (err)
            add_error(&errs, err);
        else
            printf("%lld\n", (long long)json_integer_value(json_object_get(res, "StatusCode")));
        fflush(stdout);
        json_decref(res);
    }
    free(pos);
    return flush_errors(&errs);
}

/* ---- rm ---- */

int run_rm(client *c, const cmd_def *def, int argc, char **argv)
{
    bool force = false, vols = false, link = false;
    flag flags[] = {
        {"force", 'f', FLAG_BOOL, &force,
         "Force the removal of a running container (uses SIGKILL)"},
        {"link", 'l', FLAG_BOOL, &link, "Remove the specified link"},
        {"volumes", 'v', FLAG_BOOL, &vols,
         "Remove anonymous volumes associated with the container"},
        FLAG_END,
    };
    char **pos = NULL;
    int rc, n = parse_cmd(def, flags, argc, argv, &pos, &rc);
    if (n < 0) return rc;
    char q[64];
    snprintf(q, sizeof q, "%s%s%s", vols ? "v=1&" : "", force ? "force=1&" : "",
             link ? "link=1&" : "");
    if (*q) q[strlen(q) - 1] = 0;
    sbuf errs = {0};
    for (int i = 0; i < n; i++) {
        char *name = xstrdup(pos[i] + strspn(pos[i], "/"));
        for (size_t k = strlen(name); k && name[k - 1] == '/';) name[--k] = 0;
        char *err = *name ? call(c, "DELETE", "/containers/%s", name, q, true, NULL)
                          : xstrdup("Container name cannot be empty");
        if (err)
            add_error(&errs, err);
        else
            printf("%s\n", pos[i]);
        fflush(stdout);
        free(name);
    }
    free(pos);
    return flush_errors(&errs);
}

/* ---- rename ---- */

int run_rename(client *c, const cmd_def *def, int argc, char **argv)
{
    flag flags[] = {FLAG_END};
    char **pos = NULL;
    int rc;
    if (parse_cmd(def, flags, argc, argv, &pos, &rc) < 0) return rc;
    char *old = xstrdup(pos[0]), *nw = xstrdup(pos[1]);
    free(pos);
    rc = 0;
    if (!*old || !*nw) {
        errorf("Error: Neither old nor new names may be empty");
        rc = 1;
    } else {
        sbuf q = {0};
        query_add(&q, "name", nw);
        char *err = call(c, "POST", "/containers/%s/rename", old, q.data + 1, false, NULL);
        if (err) {
            if (*err) errorf("%s", err);
            errorf("Error: failed to rename container named %s", old);
            rc = 1;
        }
        free(err);
        sbuf_free(&q);
    }
    free(old);
    free(nw);
    return rc;
}

/* ---- update ---- */

static char *update_body(const copts *o, char **err)
{
    json_t *b = json_object();
    copts_resources(o, b);
    json_object_set_new(b, "MemorySwappiness", json_null());
    json_object_set_new(b, "OomKillDisable", json_null());
    if (o->pids_set) json_object_set_new(b, "PidsLimit", json_integer(o->pids_limit));
    json_t *rp = restart_policy(o->restart, err);
    char *s = NULL;
    if (rp) {
        json_object_set_new(b, "RestartPolicy", rp);
        s = json_dump_compact(b);
    }
    json_decref(b);
    return s;
}

static char *post_update(client *c, const char *name, const char *body, json_t **res)
{
    char *e = url_escape(name);
    char *path = xasprintf("/containers/%s/update", e);
    req rq = {.method = "POST",
              .path = path,
              .body = body,
              .body_len = strlen(body),
              .body_fd = -1,
              .content_type = "application/json"};
    resp r;
    char *err = NULL;
    if (client_do(c, &rq, &r) < 0)
        err = xstrdup("");
    else if (r.status >= 400) {
        char *m = resp_error_message(&r);
        err = xasprintf("Error response from daemon: %s", m);
        free(m);
    } else {
        json_error_t je;
        *res = json_fast_loadb(r.body.data ? r.body.data : "", r.body.len, 0, &je);
    }
    resp_free(&r);
    free(path);
    free(e);
    return err;
}

static int update_all(client *c, int n, char **names, const char *body)
{
    sbuf errs = {0}, warns = {0};
    for (int i = 0; i < n; i++) {
        json_t *res = NULL;
        char *err = post_update(c, names[i], body, &res);
        if (err)
            add_error(&errs, err);
        else
            printf("%s\n", names[i]);
        size_t k;
        json_t *w;
        json_array_foreach(json_object_get(res, "Warnings"), k, w)
            sbuf_printf(&warns, "%s%s", warns.len ? "\n" : "", json_string_value(w));
        json_decref(res);
    }
    if (warns.len) printf("%s\n", warns.data);
    fflush(stdout);
    sbuf_free(&warns);
    return flush_errors(&errs);
}

int run_update(client *c, const cmd_def *def, int argc, char **argv)
{
    copts o;
    copts_init(&o);
    bool changed = false;
    flag *flags = copts_update_flags(&o, &changed);
    char **pos = NULL;
    int rc, n = parse_cmd(def, flags, argc, argv, &pos, &rc);
    if (n >= 0 && !changed) {
        errorf("you must provide one or more flags when using this command");
        rc = 1;
    } else if (n >= 0) {
        char *err = NULL, *body = update_body(&o, &err);
        if (!body) {
            errorf("%s", err);
            rc = 1;
        } else
            rc = update_all(c, n, pos, body);
        free(err);
        free(body);
    }
    free(pos);
    free(flags);
    copts_free(&o);
    return rc;
}

/* ---- top ---- */

int run_top(client *c, const cmd_def *def, int argc, char **argv)
{
    flag flags[] = {FLAG_END};
    char **pos = NULL;
    int rc, n = parse_cmd(def, flags, argc, argv, &pos, &rc);
    if (n < 0) return rc;
    sbuf q = {0}, args = {0};
    for (int i = 1; i < n; i++) sbuf_printf(&args, "%s%s", i > 1 ? " " : "", pos[i]);
    if (args.len) query_add(&q, "ps_args", args.data);
    json_t *res = NULL;
    char *err =
        call(c, "GET", "/containers/%s/top", pos[0], q.len ? q.data + 1 : NULL, false, &res);
    rc = 0;
    if (err) {
        if (*err) errorf("%s", err);
        free(err);
        rc = 1;
    } else {
        sbuf t = {0};
        size_t i, k;
        json_t *v, *proc;
        json_array_foreach(json_object_get(res, "Titles"), i, v)
            sbuf_printf(&t, "%s%s", i ? "\t" : "", json_string_value(v));
        sbuf_adds(&t, "\n");
        json_array_foreach(json_object_get(res, "Processes"), k, proc)
        {
            json_array_foreach(proc, i, v)
                sbuf_printf(&t, "%s%s", i ? "\t" : "", json_string_value(v));
            sbuf_adds(&t, "\n");
        }
        tabwrite(stdout, t.data, t.len, 20, 1, 3);
        sbuf_free(&t);
    }
    json_decref(res);
    sbuf_free(&q);
    sbuf_free(&args);
    free(pos);
    return rc;
}

/* ---- diff ---- */

int run_diff(client *c, const cmd_def *def, int argc, char **argv)
{
    flag flags[] = {FLAG_END};
    char **pos = NULL;
    int rc;
    if (parse_cmd(def, flags, argc, argv, &pos, &rc) < 0) return rc;
    json_t *res = NULL;
    char *err = call(c, "GET", "/containers/%s/changes", pos[0], NULL, false, &res);
    rc = 0;
    if (err) {
        if (*err) errorf("%s", err);
        free(err);
        rc = 1;
    } else {
        size_t i;
        json_t *ch;
        json_array_foreach(res, i, ch)
        {
            json_int_t k = json_integer_value(json_object_get(ch, "Kind"));
            printf("%s %s\n",
                   k == 0   ? "C"
                   : k == 1 ? "A"
                   : k == 2 ? "D"
                            : "",
                   jstr(ch, "Path") ? jstr(ch, "Path") : "");
        }
    }
    json_decref(res);
    free(pos);
    return rc;
}

/* ---- export ---- */

static bool write_fd(void *ctx, const char *data, size_t n)
{
    return write_all(*(int *)ctx, data, n) >= 0;
}

int run_export(client *c, const cmd_def *def, int argc, char **argv)
{
    char *output = NULL;
    flag flags[] = {{"output", 'o', FLAG_STRING, &output, "Write to a file, instead of STDOUT"},
                    FLAG_END};
    char **pos = NULL;
    int rc;
    if (parse_cmd(def, flags, argc, argv, &pos, &rc) < 0) return rc;
    int fd = STDOUT_FILENO;
    rc = 0;
    if (!output && isatty(STDOUT_FILENO)) {
        errorf("cowardly refusing to save to a terminal. Use the -o flag or redirect");
        rc = 1;
    } else if (output && (fd = open(output, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644)) < 0) {
        errorf("failed to export container: open %s: %s", output, go_strerror(errno));
        rc = 1;
    }
    if (rc == 0) {
        char *e = url_escape(pos[0]);
        char *path = xasprintf("/containers/%s/export", e);
        req rq = {.method = "GET", .path = path, .body_fd = -1, .on_data = write_fd, .ctx = &fd};
        resp r;
        if (client_do(c, &rq, &r) < 0)
            rc = 1;
        else if (r.status >= 400) {
            print_daemon_error(&r);
            rc = 1;
        }
        resp_free(&r);
        free(path);
        free(e);
    }
    if (output && fd >= 0) close(fd);
    free(output);
    free(pos);
    return rc;
}

/* ---- commit ---- */

static char *commit_path(const char *ctr, const char *ref, const char *author, const char *msg,
                         const strv *changes, bool pause, char **err)
{
    char *name = NULL, *tag = NULL;
    if (ref) {
        const char *bad = ref_check(ref, &name, &tag);
        if (bad) {
            *err = xstrdup(!strcmp(bad, "digest") ? "refusing to create a tag with a digest "
                                                    "reference"
                                                  : bad);
            return NULL;
        }
    }
    sbuf p = {0};
    sbuf_adds(&p, "/commit");
    query_add(&p, "container", ctr);
    query_add(&p, "repo", name ? name : "");
    query_add(&p, "tag", name ? (tag ? tag : "latest") : "");
    query_add(&p, "comment", msg ? msg : "");
    query_add(&p, "author", author ? author : "");
    for (size_t i = 0; i < changes->n; i++) query_add(&p, "changes", changes->v[i]);
    if (!pause) query_add(&p, "pause", "0");
    free(name);
    free(tag);
    return sbuf_steal(&p);
}

int run_commit(client *c, const cmd_def *def, int argc, char **argv)
{
    char *author = NULL, *msg = NULL;
    bool pause = true;
    strv changes = {0};
    flag flags[] = {
        {"author", 'a', FLAG_STRING, &author,
         "Author (e.g., \"John Hannibal Smith <hannibal@a-team.com>\")"},
        {"change", 'c', FLAG_LIST, &changes, "Apply Dockerfile instruction to the created image"},
        {"message", 'm', FLAG_STRING, &msg, "Commit message"},
        {"pause", 'p', FLAG_BOOL, &pause, "Pause container during commit", "true"},
        FLAG_END,
    };
    char **pos = NULL;
    int rc, n = parse_cmd(def, flags, argc, argv, &pos, &rc);
    if (n >= 0) {
        char *err = NULL;
        char *path = commit_path(pos[0], n > 1 ? pos[1] : NULL, author, msg, &changes, pause, &err);
        json_t *res = NULL;
        rc = 0;
        if (!path) {
            errorf("%s", err);
            rc = 1;
        } else if (client_json(c, "POST", path, json_null(), &res) < 0)
            rc = 1;
        else
            printf("%s\n", jstr(res, "Id") ? jstr(res, "Id") : "");
        json_decref(res);
        free(path);
        free(err);
    }
    free(pos);
    free(author);
    free(msg);
    strv_free(&changes);
    return rc;
}

/* ---- port ---- */

static void print_binding(const json_t *b)
{
    const char *ip = jstr(b, "HostIp") ? jstr(b, "HostIp") : "";
    const char *port = jstr(b, "HostPort") ? jstr(b, "HostPort") : "";
    if (strchr(ip, ':'))
        printf("[%s]:%s\n", ip, port);
    else
        printf("%s:%s\n", ip, port);
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static int port_all(const json_t *ports)
{
    const char *keys[256];
    size_t n = 0;
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)ports, k, v) if (n < 256) keys[n++] = k;
    qsort(keys, n, sizeof *keys, cmp_str);
    for (size_t i = 0; i < n; i++) {
        size_t j;
        json_t *b;
        json_array_foreach(json_object_get(ports, keys[i]), j, b)
        {
            printf("%s -> ", keys[i]);
            print_binding(b);
        }
    }
    return 0;
}

int run_port(client *c, const cmd_def *def, int argc, char **argv)
{
    flag flags[] = {FLAG_END};
    char **pos = NULL;
    int rc, n = parse_cmd(def, flags, argc, argv, &pos, &rc);
    if (n < 0) return rc;
    json_t *j = inspect_container(c, pos[0]);
    json_t *ports = json_object_get(json_object_get(j, "NetworkSettings"), "Ports");
    rc = j ? 0 : 1;
    if (j && n == 1)
        rc = port_all(ports);
    else if (j) {
        char *key = strchr(pos[1], '/') ? xstrdup(pos[1]) : xasprintf("%s/tcp", pos[1]);
        json_t *list = json_object_get(ports, key);
        size_t i;
        json_t *b;
        json_array_foreach(list, i, b) print_binding(b);
        if (!json_array_size(list)) {
            errorf("Error: No public port '%s' published for %s", key, pos[0]);
            rc = 1;
        }
        free(key);
    }
    json_decref(j);
    free(pos);
    return rc;
}

/* ---- container prune ---- */

int run_container_prune(client *c, const cmd_def *def, int argc, char **argv)
{
    bool force = false;
    strv filters = {0};
    flag flags[] = {
        {"filter", 0, FLAG_FILTER, &filters, "Provide filter values (e.g. 'until=<timestamp>')"},
        {"force", 'f', FLAG_BOOL, &force, "Do not prompt for confirmation"},
        FLAG_END,
    };
    char **pos = NULL;
    int rc;
    if (parse_cmd(def, flags, argc, argv, &pos, &rc) < 0) return strv_free(&filters), rc;
    free(pos);
    rc = 0;
    if (force || prompt_confirm("WARNING! This will remove all stopped containers.\nAre you sure "
                                "you want to continue?")) {
        json_t *f = json_object();
        for (size_t i = 0; i < filters.n; i++) {
            char *k = xstrndup(filters.v[i], strcspn(filters.v[i], "="));
            json_t *m = json_object_get(f, k);
            if (!m) json_object_set_new(f, k, m = json_object());
            json_object_set_new(m, filters.v[i] + strlen(k) + 1, json_true());
            free(k);
        }
        sbuf path = {0};
        sbuf_adds(&path, "/containers/prune");
        char *fj = json_dump_compact(f);
        if (json_object_size(f)) query_add(&path, "filters", fj);
        free(fj);
        json_decref(f);
        json_t *res = NULL;
        if (client_json(c, "POST", path.data, NULL, &res) < 0)
            rc = 1;
        else {
            json_t *del = json_object_get(res, "ContainersDeleted");
            size_t i;
            json_t *id;
            if (json_array_size(del)) {
                printf("Deleted Containers:\n");
                json_array_foreach(del, i, id) printf("%s\n", json_string_value(id));
                printf("\n");
            }
            char sz[32];
            size_human((double)json_integer_value(json_object_get(res, "SpaceReclaimed")), 4, sz,
                       sizeof sz);
            printf("Total reclaimed space: %s\n", sz);
        }
        json_decref(res);
        sbuf_free(&path);
    }
    strv_free(&filters);
    return rc;
}
