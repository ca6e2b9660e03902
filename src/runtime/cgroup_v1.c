/* cgroup_v1.c: limits, stats and freezing on cgroup v1 hierarchies (v1 and
 * hybrid hosts): memory (+memsw), cpu, cpuset, pids, blkio, devices, freezer.
 * A controller that is not mounted, or a knob the kernel lacks (memsw
 * without swap accounting, blkio.weight without CFQ/BFQ), is skipped when
 * the spec does not ask for it and reported when it does. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"

/* New cpuset cgroups start with empty cpus/mems: copy them down from the
 * nearest ancestor that has them, for every level from the mount down. The
 * leaf's parent then gets cgroup.clone_children, so that the next leaf made
 * under it is born with them (a read of that flag instead of six calls). */
int rt_cgv1_cpuset_init(const char *mnt, const char *path)
{
    size_t ml = strlen(mnt);
    char cur[4096], flag[8];
    snprintf(cur, sizeof cur, "%s", path);
    char *slash = strrchr(cur, '/');
    if (slash && slash > cur + ml) {
        *slash = 0;
        if (rt_cg_read(cur, "cgroup.clone_children", flag, sizeof flag) > 0 && flag[0] == '1')
            return 0;
    }
    for (const char *p = path + ml; p && *p;) {
        const char *next = strchr(p + 1, '/');
        size_t len = next ? (size_t)(next - path) : strlen(path);
        snprintf(cur, sizeof cur, "%.*s", (int)len, path);
        char parent[4096], buf[1024];
        snprintf(parent, sizeof parent, "%s", cur);
        *strrchr(parent, '/') = 0;
        static const char *const files[] = {"cpuset.cpus", "cpuset.mems"};
        for (int i = 0; i < 2; i++) {
            if (rt_cg_read(cur, files[i], buf, sizeof buf) < 0) return -1;
            if (buf[0] && buf[0] != '\n') continue;
            if (rt_cg_read(parent, files[i], buf, sizeof buf) < 0) return -1;
            if (rt_cg_write(cur, files[i], buf) < 0) return -1;
        }
        p = next;
    }
    if (slash && slash > cur + ml) {
        snprintf(cur, sizeof cur, "%.*s", (int)(strrchr(path, '/') - path), path);
        rt_cg_write(cur, "cgroup.clone_children", "1"); /* best effort */
    }
    return 0;
}

static int set_memory(const char *d, const rt_resources *r, berr *e)
{
    if (!d) {
        if (r->mem_limit > 0 || r->mem_swap > 0)
            return berr_set(e, 400, "the memory cgroup controller is not mounted");
        return 0;
    }
    bool memsw = rt_cg_exists(d, "memory.memsw.limit_in_bytes");
    bool want_sw = r->mem_swap != RT_UNSET && r->mem_swap != 0;
    if (want_sw && !memsw && r->mem_swap != r->mem_limit && r->mem_swap != -1)
        log_debug("runtime: no swap accounting (memory.memsw): swap limit ignored");
    bool sw_done = false;
    if (memsw && want_sw) /* raising: memsw must go first; lowering: after */
        sw_done = rt_cg_writef(d, "memory.memsw.limit_in_bytes", "%" PRId64, r->mem_swap) == 0;
    if (r->mem_limit != RT_UNSET && r->mem_limit != 0 &&
        rt_cg_writef(d, "memory.limit_in_bytes", "%" PRId64, r->mem_limit > 0 ? r->mem_limit : -1) <
            0)
        return berr_errno(e, 400, "set memory limit %" PRId64, r->mem_limit);
    if (memsw && want_sw && !sw_done &&
        rt_cg_writef(d, "memory.memsw.limit_in_bytes", "%" PRId64, r->mem_swap) < 0)
        return berr_errno(e, 400, "set memory+swap limit %" PRId64, r->mem_swap);
    if (r->mem_reservation > 0 &&
        rt_cg_writef(d, "memory.soft_limit_in_bytes", "%" PRId64, r->mem_reservation) < 0)
        return berr_errno(e, 400, "set memory reservation");
    if (r->mem_swappiness >= 0 && r->mem_swappiness <= 100 &&
        rt_cg_writef(d, "memory.swappiness", "%" PRId64, r->mem_swappiness) < 0)
        return berr_errno(e, 400, "set memory swappiness");
    if (r->disable_oom_killer && rt_cg_write(d, "memory.oom_control", "1") < 0)
        return berr_errno(e, 400, "disable the OOM killer");
    return 0;
}

static int set_cpu(rt_cgroup *cg, const rt_resources *r, berr *e)
{
    const char *d = rt_cg_dir(cg, "cpu");
    if (r->cpu_shares > 0 || r->cpu_quota != RT_UNSET || r->cpu_period > 0) {
        if (!d) return berr_set(e, 400, "the cpu cgroup controller is not mounted");
        if (r->cpu_shares > 0 && rt_cg_writef(d, "cpu.shares", "%" PRId64, r->cpu_shares) < 0)
            return berr_errno(e, 400, "set cpu shares %" PRId64, r->cpu_shares);
        if (r->cpu_period > 0 &&
            rt_cg_writef(d, "cpu.cfs_period_us", "%" PRId64, r->cpu_period) < 0)
            return berr_errno(e, 400, "set cpu period %" PRId64, r->cpu_period);
        if (r->cpu_quota != RT_UNSET && rt_cg_writef(d, "cpu.cfs_quota_us", "%" PRId64,
                                                     r->cpu_quota > 0 ? r->cpu_quota : -1) < 0)
            return berr_errno(e, 400, "set cpu quota %" PRId64, r->cpu_quota);
    }
    const char *cs = rt_cg_dir(cg, "cpuset");
    if ((r->cpus || r->mems) && !cs)
        return berr_set(e, 400, "the cpuset cgroup controller is not mounted");
    if (r->cpus && rt_cg_write(cs, "cpuset.cpus", r->cpus) < 0)
        return berr_errno(e, 400, "set cpuset.cpus %s", r->cpus);
    if (r->mems && rt_cg_write(cs, "cpuset.mems", r->mems) < 0)
        return berr_errno(e, 400, "set cpuset.mems %s", r->mems);
    return 0;
}

static bool same_rule(const rt_devrule *a, const rt_devrule *b)
{
    return a->allow == b->allow && a->type == b->type && a->major == b->major &&
           a->minor == b->minor && !strcmp(a->access, b->access);
}

/* One rule per write(), to devices.allow or devices.deny opened once each;
 * a rule given again with no other rule between its two places is written
 * once (the spec's list and the device nodes' rules repeat each other). */
int rt_cgv1_set_devices(const char *d, const rt_resources *r, berr *e)
{
    if (!r->ndevrules) return 0;
    if (!d) return berr_set(e, 400, "the devices cgroup controller is not mounted");
    int fd[2] = {-1, -1}, rc = 0; /* deny, allow */
    for (size_t i = 0; i < r->ndevrules && rc == 0; i++) {
        const rt_devrule *x = &r->devrules[i];
        bool again = false;
        for (size_t j = i; j-- > 0 && !again && r->devrules[j].allow == x->allow;)
            again = same_rule(&r->devrules[j], x);
        if (again) continue; /* same effect: only rules of one kind since */
        char rule[64], ma[24] = "*", mi[24] = "*", path[4096];
        if (x->major >= 0) snprintf(ma, sizeof ma, "%ld", x->major);
        if (x->minor >= 0) snprintf(mi, sizeof mi, "%ld", x->minor);
        if (x->type == 'a' && x->major < 0 && x->minor < 0 && !strcmp(x->access, "rwm"))
            snprintf(rule, sizeof rule, "a");
        else
            snprintf(rule, sizeof rule, "%c %s:%s %s", x->type, ma, mi, x->access);
        snprintf(path, sizeof path, "%s/%s", d, x->allow ? "devices.allow" : "devices.deny");
        if ((fd[x->allow] < 0 && (fd[x->allow] = open(path, O_WRONLY | O_CLOEXEC)) < 0) ||
            write(fd[x->allow], rule, strlen(rule)) < 0)
            rc = berr_errno(e, 400, "device rule %s %s", x->allow ? "allow" : "deny", rule);
    }
    for (int i = 0; i < 2; i++)
        if (fd[i] >= 0) close(fd[i]);
    return rc;
}

int rt_cgv1_apply(rt_cgroup *cg, const rt_resources *r, berr *e)
{
    if (set_memory(rt_cg_dir(cg, "memory"), r, e) < 0 || set_cpu(cg, r, e) < 0) return -1;
    const char *p = rt_cg_dir(cg, "pids");
    if (r->pids_limit != RT_UNSET) {
        if (!p) return berr_set(e, 400, "the pids cgroup controller is not mounted");
        if (r->pids_limit > 0 ? rt_cg_writef(p, "pids.max", "%" PRId64, r->pids_limit) < 0
                              : rt_cg_write(p, "pids.max", "max") < 0)
            return berr_errno(e, 400, "set pids limit");
    }
    const char *b = rt_cg_dir(cg, "blkio");
    if (r->blkio_weight > 0) {
        const char *f = b && rt_cg_exists(b, "blkio.weight")       ? "blkio.weight"
                        : b && rt_cg_exists(b, "blkio.bfq.weight") ? "blkio.bfq.weight"
                                                                   : NULL;
        if (!f)
            log_debug("runtime: no blkio weight support in this kernel: ignored");
        else if (rt_cg_writef(b, f, "%" PRId64, r->blkio_weight) < 0)
            return berr_errno(e, 400, "set blkio weight %" PRId64, r->blkio_weight);
    }
    return rt_cgv1_set_devices(rt_cg_dir(cg, "devices"), r, e);
}

static uint64_t u(int64_t v)
{
    return v < 0 ? 0 : (uint64_t)v;
}

static void blkio_bytes(const char *d, rt_stats *st)
{
    char buf[16384];
    if (!d || rt_cg_read(d, "blkio.throttle.io_service_bytes_recursive", buf, sizeof buf) < 0)
        return;
    char *save = NULL;
    for (char *l = strtok_r(buf, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
        char dev[64], op[16];
        unsigned long long v;
        if (sscanf(l, "%63s %15s %llu", dev, op, &v) != 3) continue;
        if (!strcmp(op, "Read")) st->blk_read_bytes += v;
        if (!strcmp(op, "Write")) st->blk_write_bytes += v;
    }
}

int rt_cgv1_stats(rt_cgroup *cg, rt_stats *st)
{
    const char *m = rt_cg_dir(cg, "memory"), *a = rt_cg_dir(cg, "cpuacct"),
               *c = rt_cg_dir(cg, "cpu");
    const char *p = rt_cg_dir(cg, "pids");
    st->mem_usage = u(rt_cg_read_int(m, "memory.usage_in_bytes"));
    st->mem_max_usage = u(rt_cg_read_int(m, "memory.max_usage_in_bytes"));
    st->mem_limit = u(rt_cg_read_int(m, "memory.limit_in_bytes"));
    st->mem_failcnt = u(rt_cg_read_int(m, "memory.failcnt"));
    st->oom_kills = u(rt_cg_read_key(m, "memory.oom_control", "oom_kill"));
    st->mem_stat = rt_cg_read_map(m, "memory.stat");
    st->cpu_total_ns = u(rt_cg_read_int(a, "cpuacct.usage"));
    long hz = sysconf(_SC_CLK_TCK);
    st->cpu_user_ns = u(rt_cg_read_key(a, "cpuacct.stat", "user")) *
                      (1000000000ULL / (uint64_t)(hz > 0 ? hz : 100));
    st->cpu_system_ns = u(rt_cg_read_key(a, "cpuacct.stat", "system")) *
                        (1000000000ULL / (uint64_t)(hz > 0 ? hz : 100));
    char buf[4096];
    if (a && rt_cg_read(a, "cpuacct.usage_percpu", buf, sizeof buf) > 0) {
        char *s = buf, *end;
        while (st->ncpus < 256) {
            unsigned long long v = strtoull(s, &end, 10);
            if (end == s) break;
            st->percpu_ns[st->ncpus++] = v;
            s = end;
        }
    }
    st->cpu_periods = u(rt_cg_read_key(c, "cpu.stat", "nr_periods"));
    st->cpu_throttled_periods = u(rt_cg_read_key(c, "cpu.stat", "nr_throttled"));
    st->cpu_throttled_ns = u(rt_cg_read_key(c, "cpu.stat", "throttled_time"));
    st->pids_current = u(rt_cg_read_int(p, "pids.current"));
    int64_t pm = rt_cg_read_int(p, "pids.max");
    st->pids_limit = pm == INT64_MAX ? 0 : u(pm);
    blkio_bytes(rt_cg_dir(cg, "blkio"), st);
    return m || a || p ? 0 : -1;
}

int rt_cgv1_freeze(rt_cgroup *cg, bool frozen, berr *e)
{
    const char *d = rt_cg_dir(cg, "freezer");
    if (!d) return berr_set(e, 500, "the freezer cgroup controller is not mounted");
    const char *want = frozen ? "FROZEN" : "THAWED";
    for (int i = 0; i < 2000; i++) {
        if (rt_cg_write(d, "freezer.state", want) < 0)
            return berr_errno(e, 500, "write %s/freezer.state", d);
        char buf[32];
        if (rt_cg_read(d, "freezer.state", buf, sizeof buf) < 0)
            return berr_errno(e, 500, "read freezer.state");
        if (!strncmp(buf, want, strlen(want))) return 0;
        nanosleep(&(struct timespec){0, 500000}, NULL);
    }
    return berr_set(e, 500, "cgroup %s did not reach %s", d, want);
}
