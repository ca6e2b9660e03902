/* api_stats.c: what reads or changes a running container's cgroup:
 * GET /containers/{id}/stats (stream and one-shot, Docker's JSON shape),
 * GET /containers/{id}/top (ps filtered to the container's processes) and
 * POST /containers/{id}/update (live limits, persisted in HostConfig). */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/jsonutil.h"
#include "daemon/api.h"
#include "daemon/containers.h"
#include "daemon/lifecycle.h"
#include "daemon/ocispec.h"
#include "runtime/runtime.h"

static rt_container *load_rt(const char *id, berr *e)
{
    char *root = xasprintf("%s/runtime", D.exec_root);
    rt_container *rc = NULL;
    int r = rt_container_load(root, id, &rc, e);
    free(root);
    return r == 0 ? rc : NULL;
}

/* Total host CPU time in ns from /proc/stat, as dockerd reports it. */
static uint64_t system_cpu_ns(void)
{
    char *data = NULL;
    if (read_file("/proc/stat", &data, NULL) < 0) return 0;
    uint64_t total = 0;
    if (str_starts(data, "cpu ")) {
        char *p = data + 4;
        for (int i = 0; i < 8; i++) total += strtoull(p, &p, 10);
    }
    free(data);
    return total * (1000000000ULL / (uint64_t)sysconf(_SC_CLK_TCK));
}

static json_t *cpu_json(const rt_stats *s, uint64_t sys)
{
    json_t *per = json_array();
    for (int i = 0; i < s->ncpus; i++)
        json_array_append_new(per, json_integer((json_int_t)s->percpu_ns[i]));
    return json_pack(
        "{s:{s:I,s:o,s:I,s:I},s:I,s:i,s:{s:I,s:I,s:I}}", "cpu_usage", "total_usage",
        (json_int_t)s->cpu_total_ns, "percpu_usage", per, "usage_in_kernelmode",
        (json_int_t)s->cpu_system_ns, "usage_in_usermode", (json_int_t)s->cpu_user_ns,
        "system_cpu_usage", (json_int_t)sys, "online_cpus", (int)sysconf(_SC_NPROCESSORS_ONLN),
        "throttling_data", "periods", (json_int_t)s->cpu_periods, "throttled_periods",
        (json_int_t)s->cpu_throttled_periods, "throttled_time", (json_int_t)s->cpu_throttled_ns);
}

static json_t *blkio_json(const rt_stats *s)
{
    json_t *b = json_pack("[{s:i,s:i,s:s,s:I},{s:i,s:i,s:s,s:I}]", "major", 0, "minor", 0, "op",
                          "read", "value", (json_int_t)s->blk_read_bytes, "major", 0, "minor", 0,
                          "op", "write", "value", (json_int_t)s->blk_write_bytes);
    return json_pack("{s:o,s:n,s:n,s:n,s:n,s:n,s:n,s:n}", "io_service_bytes_recursive", b,
                     "io_serviced_recursive", "io_queue_recursive", "io_service_time_recursive",
                     "io_wait_time_recursive", "io_merged_recursive", "io_time_recursive",
                     "sectors_recursive");
}

/* One stats sample; pre is the previous cpu_stats (stolen) or NULL. */
static json_t *sample(const char *id, const char *name, json_t *pre, json_t **cpu_out)
{
    berr e;
    rt_stats s;
    memset(&s, 0, sizeof s);
    rt_container *rc = load_rt(id, &e);
    bool ok =
        rc && rt_container_cgroup(rc) && rt_cgroup_stats(rt_container_cgroup(rc), &s, &e) == 0;
    if (rc) rt_container_free(rc);
    char ts[64];
    fmt_rfc3339nano(ok ? now_ns() : 0, ts, sizeof ts);
    if (!ok) snprintf(ts, sizeof ts, "0001-01-01T00:00:00Z");
    json_t *cpu = ok ? cpu_json(&s, system_cpu_ns())
                     : json_pack("{s:{s:i},s:{s:i,s:i,s:i}}", "cpu_usage", "total_usage", 0,
                                 "throttling_data", "periods", 0, "throttled_periods", 0,
                                 "throttled_time", 0);
    json_t *mem = json_object();
    if (ok) {
        json_object_set_new(mem, "usage", json_integer((json_int_t)s.mem_usage));
        json_object_set_new(mem, "max_usage", json_integer((json_int_t)s.mem_max_usage));
        json_object_set_new(mem, "stats", s.mem_stat ? s.mem_stat : json_object());
        json_object_set_new(mem, "failcnt", json_integer((json_int_t)s.mem_failcnt));
        /* "no limit" shows as the machine's memory, as dockerd reports it */
        uint64_t total = (uint64_t)sysconf(_SC_PHYS_PAGES) * (uint64_t)sysconf(_SC_PAGESIZE);
        uint64_t lim = s.mem_limit && s.mem_limit < total ? s.mem_limit : total;
        json_object_set_new(mem, "limit", json_integer((json_int_t)lim));
    } else if (s.mem_stat) {
        json_decref(s.mem_stat);
    }
    json_t *pids = json_pack("{s:I}", "current", (json_int_t)s.pids_current);
    if (s.pids_limit) json_object_set_new(pids, "limit", json_integer((json_int_t)s.pids_limit));
    json_t *j = json_pack("{s:s,s:s,s:o,s:o,s:i,s:{},s:o,s:o,s:o,s:s,s:s}", "read", ts, "preread",
                          "0001-01-01T00:00:00Z", "pids_stats", pids, "blkio_stats",
                          ok ? blkio_json(&s) : json_object(), "num_procs", 0, "storage_stats",
                          "cpu_stats", cpu, "precpu_stats",
                          pre ? json_incref(pre)
                              : json_pack("{s:{s:i},s:{s:i,s:i,s:i}}", "cpu_usage", "total_usage",
                                          0, "throttling_data", "periods", 0, "throttled_periods",
                                          0, "throttled_time", 0),
                          "memory_stats", mem, "name", name, "id", id);
    *cpu_out = json_incref(cpu);
    return j;
}

struct stats_arg {
    container *c;
    bool stream, one_shot;
};

static void stats_free(void *p)
{
    struct stats_arg *a = p;
    ctr_put(a->c);
    free(a);
}

static void stats_run(stream *st, void *p)
{
    struct stats_arg *a = p;
    ctr_lock();
    char *name = xstrdup(jstr(a->c->j, "Name"));
    ctr_unlock();
    json_t *pre = NULL, *cpu = NULL;
    char pre_read[64] = "0001-01-01T00:00:00Z";
    if (!a->stream && !a->one_shot) { /* prime precpu like dockerd: one extra sample */
        json_t *first = sample(a->c->id, name, NULL, &pre);
        snprintf(pre_read, sizeof pre_read, "%s", jstr(first, "read"));
        json_decref(first);
        sleep(1);
    }
    for (int i = 0; i < 1000000; i++) {
        ctr_lock();
        bool running = ctr_running(a->c) && !a->c->removed;
        ctr_unlock();
        json_t *j = sample(a->c->id, name, pre, &cpu);
        json_object_set_new(j, "preread", json_string(pre_read));
        snprintf(pre_read, sizeof pre_read, "%s", jstr(j, "read"));
        json_decref(pre);
        pre = cpu;
        if (stream_json(st, j) < 0 || !a->stream || !running) break;
        for (int k = 0; k < 10; k++) {
            usleep(100000);
            if (stream_client_gone(st)) goto out;
        }
    }
out:
    json_decref(pre);
    free(name);
}

void h_container_stats(req *r)
{
    berr e;
    container *c = ctr_get(req_param(r, 0), &e);
    if (!c) return resp_berr(r, &e);
    struct stats_arg *a = xcalloc(1, sizeof *a);
    a->c = c;
    a->stream = req_query_bool(r, "stream", true);
    a->one_shot = req_query_bool(r, "one-shot", false);
    resp_stream(r, 200, "application/json", stats_run, a, stats_free);
}

/* ---- top ---- */

static bool pid_in(pid_t p, const pid_t *pids, int n)
{
    for (int i = 0; i < n; i++)
        if (pids[i] == p) return true;
    return false;
}

static json_t *split_row(char *line, int ncols)
{
    json_t *row = json_array();
    char *p = line;
    for (int i = 0; i < ncols && *p; i++) {
        while (*p == ' ') p++;
        if (i == ncols - 1) {
            json_array_append_new(row, json_string(p));
            break;
        }
        char *end = p + strcspn(p, " ");
        json_array_append_new(row, json_stringn(p, (size_t)(end - p)));
        p = end;
    }
    return row;
}

static int ps_args_ok(const char *a)
{
    for (; *a; a++)
        if (!((*a >= 'a' && *a <= 'z') || (*a >= 'A' && *a <= 'Z') || (*a >= '0' && *a <= '9') ||
              strchr(" -,=_", *a)))
            return 0;
    return 1;
}

void h_container_top(req *r)
{
    berr e;
    container *c = ctr_get(req_param(r, 0), &e);
    if (!c) return resp_berr(r, &e);
    ctr_lock();
    bool running = ctr_running(c);
    ctr_unlock();
    const char *args = req_query(r, "ps_args");
    if (!args || !*args) args = "-ef";
    rt_container *rc = running ? load_rt(c->id, &e) : NULL;
    pid_t pids[4096];
    int n =
        rc && rt_container_cgroup(rc) ? rt_cgroup_pids(rt_container_cgroup(rc), pids, 4096) : -1;
    if (rc) rt_container_free(rc);
    if (!running)
        resp_error(r, 409, "Container %s is not running", c->id);
    else if (n < 0)
        resp_error(r, 500, "cannot list the processes of %s", c->id);
    else if (!ps_args_ok(args))
        resp_error(r, 400, "invalid ps arguments: %s", args);
    else {
        char *cmd = xasprintf("ps %s", args);
        FILE *f = popen(cmd, "r");
        free(cmd);
        char line[8192];
        json_t *titles = NULL, *procs = json_array();
        int pidcol = -1, ncols = 0;
        while (f && fgets(line, sizeof line, f)) {
            line[strcspn(line, "\n")] = 0;
            if (!titles) {
                titles = split_row(line, 64);
                ncols = (int)json_array_size(titles);
                for (int i = 0; i < ncols; i++)
                    if (!strcmp(json_string_value(json_array_get(titles, i)), "PID")) pidcol = i;
                continue;
            }
            json_t *row = split_row(line, ncols);
            const char *pv = json_string_value(json_array_get(row, pidcol < 0 ? 0 : pidcol));
            if (pidcol >= 0 && pv && pid_in(atoi(pv), pids, n))
                json_array_append_new(procs, row);
            else
                json_decref(row);
        }
        int st = f ? pclose(f) : -1;
        if (!titles || pidcol < 0 || st != 0) {
            json_decref(titles);
            json_decref(procs);
            resp_error(r, 500, "ps %s failed or printed no PID column", args);
        } else {
            resp_json(r, 200, json_pack("{s:o,s:o}", "Titles", titles, "Processes", procs));
        }
    }
    ctr_put(c);
}

/* ---- update ---- */

static const char *const updatable[] = {
    "Memory",   "MemorySwap", "MemoryReservation", "CpuShares", "CpuQuota",    "CpuPeriod",
    "NanoCpus", "CpusetCpus", "CpusetMems",        "PidsLimit", "BlkioWeight", "KernelMemory",
    NULL};

void h_container_update(req *r)
{
    berr e;
    container *c = ctr_get(req_param(r, 0), &e);
    if (!c) return resp_berr(r, &e);
    json_t *body = req_json(r);
    if (!body) return ctr_put(c);
    ctr_lock();
    json_t *hc = json_deep_copy(json_object_get(c->j, "HostConfig"));
    bool running = ctr_running(c), priv = json_is_true(json_object_get(hc, "Privileged"));
    ctr_unlock();
    for (const char *const *k = updatable; *k; k++) {
        json_t *v = json_object_get(body, *k);
        if (v && !(json_is_integer(v) && json_integer_value(v) == 0) &&
            !(json_is_string(v) && !*json_string_value(v)))
            json_object_set(hc, *k, v);
    }
    json_t *rp = json_object_get(body, "RestartPolicy");
    if (jstr(rp, "Name") && *jstr(rp, "Name")) json_object_set(hc, "RestartPolicy", rp);
    json_int_t mem = json_integer_value(json_object_get(hc, "Memory"));
    json_int_t swap = json_integer_value(json_object_get(hc, "MemorySwap"));
    int rc = 0;
    json_t *warnings = NULL;
    if (mem > 0 && mem < 6 * 1024 * 1024)
        rc = berr_set(&e, 400, "Minimum memory limit allowed is 6MB");
    else if (mem > 0 && swap > 0 && swap < mem)
        rc = berr_set(&e, 400,
                      "Memory limit should be smaller than already set memoryswap limit, update "
                      "the memoryswap at the same time");
    else if (!(warnings = ocispec_discard_unsupported(hc, &e)))
        rc = -1;
    if (rc == 0 && running) {
        json_t *res = ocispec_resources(hc, priv);
        json_object_del(res, "devices");
        rt_resources *rr = NULL;
        rt_container *rtc = load_rt(c->id, &e);
        rc = !rtc || rt_resources_load(res, &rr, &e) < 0 ||
                     rt_cgroup_update(rt_container_cgroup(rtc), rr, &e) < 0
                 ? -1
                 : 0;
        if (rr) rt_resources_free(rr);
        if (rtc) rt_container_free(rtc);
        json_decref(res);
    }
    if (rc == 0) {
        ctr_lock();
        json_object_set(c->j, "HostConfig", hc);
        ctr_save(c);
        ctr_unlock();
        lc_event(c, "update", NULL);
        resp_json(r, 200, json_pack("{s:O}", "Warnings", warnings));
    } else {
        resp_berr(r, &e);
    }
    json_decref(warnings);
    json_decref(hc);
    json_decref(body);
    ctr_put(c);
}
