/* cmd_stats.c: `berth stats` (container stats).
 *
 * One thread per container reads GET /containers/{id}/stats (a stream of
 * JSON samples, or one sample with --no-stream) and keeps the latest
 * figures computed as docker 20.10 does: CPU % from the cpu_stats and
 * precpu_stats totals against system_cpu_usage times the online CPUs,
 * memory as usage minus inactive file pages, network and block I/O
 * summed over interfaces and devices. The main thread redraws the table
 * (clear screen, home, table) every 500 ms until interrupted, or prints
 * it once with --no-stream. Without names it shows the running
 * containers (-a: all), following new ones as they appear. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli/cli.h"

typedef struct centry {
    char *container; /* as given, or the short ID */
    char *id, *name;
    double cpu, mem, limit, memperc, rx, tx, rd, wr;
    long long pids;
    bool valid, done, seen;
    char *error;
    sbuf pending;
    pthread_t thread;
} centry;

typedef struct stats_state {
    client *c;
    bool stream;
    pthread_mutex_t mu;
    centry **v;
    size_t n;
} stats_state;

typedef struct feed_ctx {
    stats_state *st;
    centry *e;
} feed_ctx;

static double jnum(const json_t *o, const char *path)
{
    char *p = xstrdup(path), *save = NULL;
    const json_t *v = o;
    for (char *k = strtok_r(p, ".", &save); k && v; k = strtok_r(NULL, ".", &save))
        v = json_object_get(v, k);
    free(p);
    return json_is_number(v) ? json_number_value(v) : 0;
}

static double mem_no_cache(const json_t *s)
{
    const json_t *mem = json_object_get(s, "memory_stats");
    const json_t *st = json_object_get(mem, "stats");
    double usage = jnum(mem, "usage");
    json_t *v = json_object_get(st, "total_inactive_file");
    if (v && json_number_value(v) < usage) return usage - json_number_value(v);
    v = json_object_get(st, "inactive_file");
    if (v && json_number_value(v) < usage) return usage - json_number_value(v);
    return usage;
}

static double cpu_percent(const json_t *s)
{
    double cpu =
        jnum(s, "cpu_stats.cpu_usage.total_usage") - jnum(s, "precpu_stats.cpu_usage.total_usage");
    double sys = jnum(s, "cpu_stats.system_cpu_usage") - jnum(s, "precpu_stats.system_cpu_usage");
    double online = jnum(s, "cpu_stats.online_cpus");
    if (online == 0)
        online = (double)json_array_size(json_object_get(
            json_object_get(json_object_get(s, "cpu_stats"), "cpu_usage"), "percpu_usage"));
    return sys > 0 && cpu > 0 ? cpu / sys * online * 100.0 : 0;
}

static void io_sums(const json_t *s, centry *e)
{
    const char *k;
    json_t *n;
    e->rx = e->tx = e->rd = e->wr = 0;
    json_object_foreach(json_object_get(s, "networks"), k, n)
    {
        e->rx += jnum(n, "rx_bytes");
        e->tx += jnum(n, "tx_bytes");
    }
    size_t i;
    json_t *b;
    json_array_foreach(
        json_object_get(json_object_get(s, "blkio_stats"), "io_service_bytes_recursive"), i, b)
    {
        const char *op = jstr(b, "op");
        if (op && !strcasecmp(op, "read")) e->rd += jnum(b, "value");
        if (op && !strcasecmp(op, "write")) e->wr += jnum(b, "value");
    }
}

static void on_sample(void *ctx, json_t *s)
{
    feed_ctx *f = ctx;
    centry *e = f->e;
    pthread_mutex_lock(&f->st->mu);
    e->cpu = cpu_percent(s);
    e->mem = mem_no_cache(s);
    e->limit = jnum(s, "memory_stats.limit");
    e->memperc = e->limit != 0 ? e->mem / e->limit * 100.0 : 0;
    io_sums(s, e);
    e->pids = (long long)jnum(s, "pids_stats.current");
    if (jstr(s, "name")) free(e->name), e->name = xstrdup(jstr(s, "name"));
    if (jstr(s, "id")) free(e->id), e->id = xstrdup(jstr(s, "id"));
    e->valid = e->seen = true;
    pthread_mutex_unlock(&f->st->mu);
}

static bool on_stats_data(void *ctx, const char *data, size_t n)
{
    feed_ctx *f = ctx;
    sbuf *p = &f->e->pending;
    sbuf_add(p, data, n);
    size_t used = json_stream_feed(p->data, p->len, on_sample, f);
    memmove(p->data, p->data + used, p->len - used);
    p->len -= used;
    return true;
}

static void *collect(void *arg)
{
    feed_ctx *f = arg;
    char *e = url_escape(f->e->container);
    char *path = xasprintf("/containers/%s/stats?stream=%d", e, f->st->stream ? 1 : 0);
    req rq = {.method = "GET", .path = path, .body_fd = -1, .on_data = on_stats_data, .ctx = f};
    resp r;
    char *err = NULL;
    if (client_do(f->st->c, &rq, &r) < 0)
        err = xstrdup("error during connect");
    else if (r.status >= 400) {
        char *m = resp_error_message(&r);
        err = xasprintf("Error response from daemon: %s", m);
        free(m);
    }
    pthread_mutex_lock(&f->st->mu);
    f->e->error = err;
    f->e->done = f->e->seen = true;
    if (f->st->stream) f->e->valid = false;
    pthread_mutex_unlock(&f->st->mu);
    resp_free(&r);
    free(path);
    free(e);
    free(f);
    return NULL;
}

/* Starts following name unless already followed; the caller holds no lock. */
static void add_entry(stats_state *st, const char *name)
{
    pthread_mutex_lock(&st->mu);
    for (size_t i = 0; i < st->n; i++)
        if (!strcmp(st->v[i]->container, name)) return (void)pthread_mutex_unlock(&st->mu);
    centry *e = xcalloc(1, sizeof *e);
    e->container = xstrdup(name);
    st->v = xrealloc(st->v, (st->n + 1) * sizeof *st->v);
    st->v[st->n++] = e;
    pthread_mutex_unlock(&st->mu);
    feed_ctx *f = xcalloc(1, sizeof *f);
    f->st = st;
    f->e = e;
    pthread_create(&e->thread, NULL, collect, f);
}

/* Lists the containers to show without names; -1 on error. */
static int follow_list(stats_state *st, bool all)
{
    json_t *list = NULL;
    if (client_json(st->c, "GET", all ? "/containers/json?all=1" : "/containers/json", NULL,
                    &list) < 0)
        return -1;
    size_t i;
    json_t *ct;
    json_array_foreach(list, i, ct)
    {
        char id[16];
        short_id(jstr(ct, "Id"), id, sizeof id);
        add_entry(st, id);
    }
    json_decref(list);
    return 0;
}

static json_t *entry_row(const centry *e, bool trunc)
{
    char id[80], cpu[32] = "--", mem[80] = "-- / --", mp[32] = "--", net[80] = "--", blk[80] = "--",
                 pids[32] = "--", a[32], b[32];
    const char *fid = e->id ? e->id : e->container;
    if (trunc)
        short_id(fid, id, sizeof id);
    else
        snprintf(id, sizeof id, "%s", fid);
    if (e->valid) {
        snprintf(cpu, sizeof cpu, "%.2f%%", e->cpu);
        size_bytes(e->mem, a, sizeof a);
        size_bytes(e->limit, b, sizeof b);
        snprintf(mem, sizeof mem, "%s / %s", a, b);
        snprintf(mp, sizeof mp, "%.2f%%", e->memperc);
        size_human(e->rx, 3, a, sizeof a);
        size_human(e->tx, 3, b, sizeof b);
        snprintf(net, sizeof net, "%s / %s", a, b);
        size_human(e->rd, 3, a, sizeof a);
        size_human(e->wr, 3, b, sizeof b);
        snprintf(blk, sizeof blk, "%s / %s", a, b);
        snprintf(pids, sizeof pids, "%lld", e->pids);
    }
    const char *name = e->name && strlen(e->name) > 1 ? e->name + 1 : "--";
    return json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s}", "BlockIO", blk, "CPUPerc",
                     cpu, "Container", e->container, "ID", id, "MemPerc", mp, "MemUsage", mem,
                     "Name", name, "NetIO", net, "PIDs", pids);
}

static int stats_print(stats_state *st, const char *format, bool trunc)
{
    formatter f;
    const char *src = format && *format ? format : "table";
    if (!strcmp(src, "table"))
        src = "table {{.ID}}\\t{{.Name}}\\t{{.CPUPerc}}\\t{{.MemUsage}}\\t{{.MemPerc}}\\t"
              "{{.NetIO}}\\t{{.BlockIO}}\\t{{.PIDs}}";
    if (formatter_init(&f, src, "*formatter.statsContext") < 0) return -1;
    int rc = 0;
    pthread_mutex_lock(&st->mu);
    for (size_t i = 0; i < st->n && rc == 0; i++) {
        if (st->v[i]->error && !st->stream) continue;
        json_t *row = entry_row(st->v[i], trunc);
        rc = formatter_row(&f, row, NULL);
        json_decref(row);
    }
    pthread_mutex_unlock(&st->mu);
    if (rc < 0) {
        formatter_free(&f);
        return -1;
    }
    json_t *h = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s}", "BlockIO", "BLOCK I/O",
                          "CPUPerc", "CPU %", "Container", "CONTAINER", "ID", "CONTAINER ID",
                          "MemPerc", "MEM %", "MemUsage", "MEM USAGE / LIMIT", "Name", "NAME",
                          "NetIO", "NET I/O", "PIDs", "PIDS");
    formatter_flush(&f, h);
    json_decref(h);
    fflush(stdout);
    return 0;
}

/* Waits until every container sent a sample or failed; returns the errors. */
static char *wait_first(stats_state *st)
{
    for (;;) {
        bool all = true;
        pthread_mutex_lock(&st->mu);
        for (size_t i = 0; i < st->n; i++) all &= st->v[i]->seen;
        pthread_mutex_unlock(&st->mu);
        if (all) break;
        struct timespec ts = {0, 10000000};
        nanosleep(&ts, NULL);
    }
    sbuf errs = {0};
    for (size_t i = 0; i < st->n; i++)
        if (st->v[i]->error) sbuf_printf(&errs, "%s%s", errs.len ? "\n" : "", st->v[i]->error);
    return errs.len ? sbuf_steal(&errs) : NULL;
}

static void stats_free(stats_state *st)
{
    for (size_t i = 0; i < st->n; i++) {
        centry *e = st->v[i];
        pthread_join(e->thread, NULL);
        free(e->container);
        free(e->id);
        free(e->name);
        free(e->error);
        sbuf_free(&e->pending);
        free(e);
    }
    free(st->v);
    pthread_mutex_destroy(&st->mu);
}

static int stats_main(client *c, int n, char **names, bool all, bool no_stream, bool no_trunc,
                      const char *format)
{
    stats_state st = {.c = c, .stream = !no_stream};
    pthread_mutex_init(&st.mu, NULL);
    if (client_negotiate(c) < 0) return 1;
    int rc = 0;
    if (n == 0 && follow_list(&st, all) < 0) rc = 1;
    for (int i = 0; i < n; i++) add_entry(&st, names[i]);
    char *errs = rc ? NULL : wait_first(&st);
    if (errs && n) {
        errorf("%s", errs);
        rc = 1;
    }
    free(errs);
    while (rc == 0) {
        if (st.stream) printf("\033[2J\033[H");
        if (stats_print(&st, format, !no_trunc) < 0) rc = 1;
        if (no_stream || rc) break;
        struct timespec ts = {0, 500000000};
        nanosleep(&ts, NULL);
        if (n == 0) follow_list(&st, all);
    }
    if (no_stream || rc) stats_free(&st);
    return rc;
}

int run_stats(client *c, const cmd_def *def, int argc, char **argv)
{
    bool all = false, no_stream = false, no_trunc = false;
    char *format = NULL;
    flag flags[] = {
        {"all", 'a', FLAG_BOOL, &all, "Show all containers (default shows just running)"},
        {"format", 0, FLAG_STRING, &format, "Pretty-print images using a Go template"},
        {"no-stream", 0, FLAG_BOOL, &no_stream,
         "Disable streaming stats and only pull the first "
         "result"},
        {"no-trunc", 0, FLAG_BOOL, &no_trunc, "Do not truncate output"},
        {NULL},
    };
    char **pos = NULL;
    int rc, n = parse_cmd(def, flags, argc, argv, &pos, &rc);
    if (n >= 0) rc = stats_main(c, n, pos, all, no_stream, no_trunc, format);
    free(pos);
    free(format);
    return rc;
}
