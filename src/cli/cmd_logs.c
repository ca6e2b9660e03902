/* cmd_logs.c: `berth logs` (container logs).
 *
 * Inspects the container first (docker's "Error: No such container: x"
 * and the Tty setting), then streams GET /containers/{id}/logs: raw bytes
 * to stdout for a TTY container, otherwise Docker's 8-byte frames split
 * to stdout and stderr. --since/--until take unix times, RFC 3339 dates
 * or durations like 10m; -f follows until the container stops. */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"

typedef struct logs_ctx {
    bool tty;
    demux dm;
    bool failed;
} logs_ctx;

static bool on_logs(void *ctx, const char *data, size_t n)
{
    logs_ctx *l = ctx;
    int rc =
        l->tty ? (write_all(STDOUT_FILENO, data, n) < 0 ? -1 : 0) : demux_feed(&l->dm, data, n);
    if (rc < 0) l->failed = true;
    return rc == 0;
}

typedef struct logs_opts {
    bool follow, timestamps, details;
    char *since, *until, *tail;
} logs_opts;

/* The query string, or NULL after printing a bad --since/--until. */
static char *logs_path(const char *id, const logs_opts *o)
{
    char *e = url_escape(id);
    sbuf p = {0};
    sbuf_printf(&p, "/containers/%s/logs?stdout=1&stderr=1", e);
    free(e);
    const char *vals[2] = {o->since, o->until}, *names[2] = {"since", "until"};
    for (int i = 0; i < 2; i++) {
        if (!vals[i] || !*vals[i]) continue;
        char *ts = time_arg_to_api(vals[i]);
        if (!ts) {
            errorf("invalid value for \"%s\": failed to parse value as time or duration: \"%s\"",
                   names[i], vals[i]);
            sbuf_free(&p);
            return NULL;
        }
        query_add(&p, names[i], ts);
        free(ts);
    }
    if (o->timestamps) sbuf_adds(&p, "&timestamps=1");
    if (o->details) sbuf_adds(&p, "&details=1");
    if (o->follow) sbuf_adds(&p, "&follow=1");
    query_add(&p, "tail", o->tail ? o->tail : "all");
    return sbuf_steal(&p);
}

static int logs_main(client *c, const char *name, const logs_opts *o)
{
    json_t *j = inspect_container(c, name);
    if (!j) return 1;
    logs_ctx l = {.tty = json_is_true(json_object_get(json_object_get(j, "Config"), "Tty"))};
    json_decref(j);
    char *path = logs_path(name, o);
    if (!path) return 1;
    req rq = {.method = "GET", .path = path, .body_fd = -1, .on_data = on_logs, .ctx = &l};
    resp r;
    int rc = 0;
    fflush(stdout);
    if (client_do(c, &rq, &r) < 0)
        rc = 1;
    else if (r.status >= 400) {
        print_daemon_error(&r);
        rc = 1;
    } else if (l.failed)
        rc = 1;
    resp_free(&r);
    demux_free(&l.dm);
    free(path);
    return rc;
}

int run_logs(client *c, const cmd_def *def, int argc, char **argv)
{
    logs_opts o = {0};
    flag flags[] = {
        {"details", 0, FLAG_BOOL, &o.details, "Show extra details provided to logs"},
        {"follow", 'f', FLAG_BOOL, &o.follow, "Follow log output"},
        {"since", 0, FLAG_STRING, &o.since,
         "Show logs since timestamp (e.g. 2013-01-02T13:23:37Z) or relative (e.g. 42m for 42 "
         "minutes)"},
        {"tail", 'n', FLAG_STRING, &o.tail, "Number of lines to show from the end of the logs",
         "\"all\""},
        {"timestamps", 't', FLAG_BOOL, &o.timestamps, "Show timestamps"},
        {"until", 0, FLAG_STRING, &o.until,
         "Show logs before a timestamp (e.g. 2013-01-02T13:23:37Z) or relative (e.g. 42m for 42 "
         "minutes)"},
        {NULL},
    };
    char **pos = NULL;
    int rc;
    if (parse_cmd(def, flags, argc, argv, &pos, &rc) >= 0) rc = logs_main(c, pos[0], &o);
    free(pos);
    free(o.since);
    free(o.until);
    free(o.tail);
    return rc;
}
