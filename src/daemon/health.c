/* health.c: Docker health checks. For a running container whose config has
 * a Healthcheck (--health-cmd ...), a thread runs the probe through the
 * container's shim every Interval, bounded by Timeout, and keeps
 * State.Health as dockerd does: Status starting -> healthy/unhealthy after
 * Retries consecutive failures, FailingStreak, and the last 5 results in
 * Log. Each status change is a "health_status: X" event. */
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include "common/jsonutil.h"
#include "daemon/api.h"
#include "daemon/containers.h"
#include "daemon/lifecycle.h"
#include "shim/shim.h"

#define NS 1000000000LL

static int64_t dur(const json_t *hc, const char *key, int64_t dflt)
{
    json_int_t v = json_integer_value(json_object_get(hc, key));
    return v > 0 ? v : dflt;
}

/* The probe's process: the container's own process spec, with its args. */
static json_t *probe_process(const char *cid, const json_t *test)
{
    json_t *proc = lc_spec_process(cid);
    if (!proc) return NULL;
    const char *kind = json_string_value(json_array_get(test, 0));
    json_t *args = json_array();
    if (kind && !strcmp(kind, "CMD-SHELL")) {
        json_array_append_new(args, json_string("/bin/sh"));
        json_array_append_new(args, json_string("-c"));
        json_array_append(args, json_array_get(test, 1));
    } else {
        for (size_t i = 1; i < json_array_size(test); i++)
            json_array_append(args, json_array_get(test, i));
    }
    json_object_set_new(proc, "args", args);
    json_object_set_new(proc, "terminal", json_false());
    return proc;
}

/* Runs one probe: exit code (-1 when it could not run or timed out), output. */
static int probe(const char *cid, const json_t *test, int64_t timeout, sbuf *out)
{
    json_t *proc = probe_process(cid, test);
    if (!proc) return -1;
    char id[65];
    unsigned char rnd[32];
    if (getrandom(rnd, sizeof rnd, 0) != (ssize_t)sizeof rnd) memset(rnd, 3, sizeof rnd);
    for (int i = 0; i < 32; i++) sprintf(id + 2 * i, "%02x", rnd[i]);
    char *edir = ctr_exec_dir(cid);
    berr e;
    pid_t pid;
    int fd = -1, code = -1;
    if (shim_exec(edir, id, proc, false, &pid, &fd, &e) == 0) {
        int64_t deadline = now_ns() + timeout;
        char buf[4096];
        for (;;) { /* frames: 8-byte headers kept out of the output */
            int left = (int)((deadline - now_ns()) / 1000000);
            struct pollfd pf = {.fd = fd, .events = POLLIN};
            if (left <= 0 || poll(&pf, 1, left) <= 0) break;
            ssize_t n = read(fd, buf, sizeof buf);
            if (n <= 0) break;
            for (ssize_t i = 0; i + 8 <= n && out->len < 4096;) {
                uint32_t len = (uint32_t)(unsigned char)buf[i + 4] << 24 |
                               (uint32_t)(unsigned char)buf[i + 5] << 16 |
                               (uint32_t)(unsigned char)buf[i + 6] << 8 | (unsigned char)buf[i + 7];
                size_t take = (size_t)(n - i - 8) < len ? (size_t)(n - i - 8) : len;
                sbuf_add(out, buf + i + 8, take);
                i += 8 + (ssize_t)take;
            }
        }
        close(fd);
        bool running = true;
        int left = (int)((deadline - now_ns()) / 1000000);
        if (shim_exec_wait(edir, id, left > 0 ? left : 0, &code, &running, &e) < 0 || running)
            code = -1;
    } else {
        sbuf_adds(out, e.msg);
    }
    free(edir);
    json_decref(proc);
    return code;
}

static void record(container *c, int64_t start, int code, const char *output, int retries,
                   bool in_start_period)
{
    char s1[64], s2[64];
    fmt_rfc3339nano(start, s1, sizeof s1);
    fmt_rfc3339nano(now_ns(), s2, sizeof s2);
    ctr_lock();
    json_t *st = ctr_state(c), *h = json_object_get(st, "Health");
    if (!h)
        json_object_set_new(
            st, "Health",
            h = json_pack("{s:s,s:i,s:[]}", "Status", "starting", "FailingStreak", 0, "Log"));
    json_t *log = json_object_get(h, "Log");
    json_array_append_new(log, json_pack("{s:s,s:s,s:i,s:s}", "Start", s1, "End", s2, "ExitCode",
                                         code, "Output", output));
    while (json_array_size(log) > 5) json_array_remove(log, 0);
    const char *old = jstr(h, "Status");
    char *was = xstrdup(old ? old : "starting");
    int streak = (int)json_integer_value(json_object_get(h, "FailingStreak"));
    if (code == 0) {
        streak = 0;
        json_object_set_new(h, "Status", json_string("healthy"));
    } else if (!in_start_period) {
        streak++;
        if (streak >= retries) json_object_set_new(h, "Status", json_string("unhealthy"));
    }
    json_object_set_new(h, "FailingStreak", json_integer(streak));
    char *now = xstrdup(jstr(h, "Status"));
    ctr_save(c);
    ctr_unlock();
    if (strcmp(was, now)) {
        char *action = xasprintf("health_status: %s", now);
        lc_event(c, action, NULL);
        free(action);
    }
    free(was), free(now);
}

static bool still_running(container *c, const char *started)
{
    ctr_lock();
    const char *s = jstr(ctr_state(c), "StartedAt");
    bool ok = ctr_running(c) && !c->removed && s && !strcmp(s, started);
    ctr_unlock();
    return ok;
}

static void *health_main(void *p)
{
    container *c = p;
    ctr_lock();
    json_t *hc = json_deep_copy(json_object_get(json_object_get(c->j, "Config"), "Healthcheck"));
    char *started = xstrdup(jstr(ctr_state(c), "StartedAt") ? jstr(ctr_state(c), "StartedAt") : "");
    json_object_set_new(
        ctr_state(c), "Health",
        json_pack("{s:s,s:i,s:[]}", "Status", "starting", "FailingStreak", 0, "Log"));
    ctr_unlock();
    int64_t interval = dur(hc, "Interval", 30 * NS), timeout = dur(hc, "Timeout", 30 * NS);
    int64_t start_period = dur(hc, "StartPeriod", 0), t0 = now_ns();
    int retries = (int)dur(hc, "Retries", 3);
    const json_t *test = json_object_get(hc, "Test");
    while (still_running(c, started)) {
        int64_t wake = now_ns() + interval;
        while (now_ns() < wake && still_running(c, started)) usleep(100000);
        if (!still_running(c, started)) break;
        int64_t start = now_ns();
        sbuf out = {0};
        int code = probe(c->id, test, timeout, &out);
        if (!still_running(c, started)) {
            sbuf_free(&out);
            break;
        }
        record(c, start, code < 0 ? -1 : code, out.data ? out.data : "", retries,
               start - t0 < start_period);
        sbuf_free(&out);
    }
    json_decref(hc);
    free(started);
    ctr_put(c);
    return NULL;
}

void health_start(container *c)
{
    ctr_lock();
    const json_t *hc = json_object_get(json_object_get(c->j, "Config"), "Healthcheck");
    const json_t *test = json_object_get(hc, "Test");
    const char *kind = json_string_value(json_array_get(test, 0));
    bool on =
        kind && (!strcmp(kind, "CMD") || !strcmp(kind, "CMD-SHELL")) && json_array_size(test) > 1;
    if (on) c->refs++;
    ctr_unlock();
    if (!on) return;
    pthread_t t;
    pthread_attr_t a;
    pthread_attr_init(&a);
    pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
    pthread_attr_setstacksize(&a, 256u << 10);
    if (pthread_create(&t, &a, health_main, c) != 0) ctr_put(c);
    pthread_attr_destroy(&a);
}
