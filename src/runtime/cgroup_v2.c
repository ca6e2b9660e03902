/* cgroup_v2.c: limits, stats and freezing on the unified hierarchy (v2
 * hosts): memory.max/swap.max/low, cpu.weight/max, cpuset, pids.max,
 * io.weight, cgroup.freeze, and device rules as an eBPF
 * BPF_PROG_TYPE_CGROUP_DEVICE program (v2 has no devices.allow), built here
 * instruction by instruction the way runc's devicefilter does. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/bpf.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"

/* Enables the controllers we use in every ancestor's subtree_control. */
int rt_cgv2_enable(const char *mnt, const char *path)
{
    char cur[4096];
    size_t ml = strlen(mnt);
    snprintf(cur, sizeof cur, "%s", mnt);
    for (const char *p = path + ml; p && *p;) {
        static const char *const ctrls[] = {"+cpu", "+memory", "+pids", "+io", "+cpuset"};
        for (size_t i = 0; i < sizeof ctrls / sizeof *ctrls; i++)
            rt_cg_write(cur, "cgroup.subtree_control", ctrls[i]);
        const char *next = strchr(p + 1, '/');
        if (!next) break;
        snprintf(cur, sizeof cur, "%.*s", (int)(next - path), path);
        p = next;
    }
    return 0;
}

/* Whether controller c is available to a cgroup whose cgroup.controllers
 * (the ones its parent enables for it) reads ctrls. */
static bool has_ctrl(const char *ctrls, const char *c)
{
    return rt_cg_list_has(ctrls, c, " \n");
}

/* A limit asked for without its controller is refused, naming it (as the v1
 * code does for an unmounted one); "no limit" needs nothing. */
static int missing(const char *d, const char *c, berr *e)
{
    return berr_set(e, 400,
                    "the %s cgroup controller is not available: it is not in "
                    "%s/cgroup.controllers (cgroup v2)",
                    c, d);
}

static int set_memory(const char *d, const char *ctrls, const rt_resources *r, berr *e)
{
    if (!has_ctrl(ctrls, "memory")) {
        if (r->mem_limit > 0 || r->mem_swap > 0 || r->mem_reservation > 0)
            return missing(d, "memory", e);
        return 0;
    }
    if (r->mem_limit != RT_UNSET && r->mem_limit != 0) {
        int w = r->mem_limit > 0 ? rt_cg_writef(d, "memory.max", "%" PRId64, r->mem_limit)
                                 : rt_cg_write(d, "memory.max", "max");
        if (w < 0) return berr_errno(e, 400, "set memory.max");
    }
    if (r->mem_swap != RT_UNSET && r->mem_swap != 0 && rt_cg_exists(d, "memory.swap.max")) {
        int w = 0;
        if (r->mem_swap < 0)
            w = rt_cg_write(d, "memory.swap.max", "max");
        else if (r->mem_limit > 0)
            w = rt_cg_writef(d, "memory.swap.max", "%" PRId64, r->mem_swap - r->mem_limit);
        if (w < 0) return berr_errno(e, 400, "set memory.swap.max");
    }
    if (r->mem_reservation > 0 && rt_cg_writef(d, "memory.low", "%" PRId64, r->mem_reservation) < 0)
        return berr_errno(e, 400, "set memory.low");
    return 0;
}

static int set_cpu(const char *d, const char *ctrls, const rt_resources *r, berr *e)
{
    bool cpu = has_ctrl(ctrls, "cpu");
    if (!cpu && (r->cpu_shares > 0 || r->cpu_quota > 0 || r->cpu_period > 0))
        return missing(d, "cpu", e);
    if (cpu && r->cpu_shares > 0 &&
        rt_cg_writef(d, "cpu.weight", "%" PRId64, 1 + ((r->cpu_shares - 2) * 9999) / 262142) < 0)
        return berr_errno(e, 400, "set cpu.weight");
    if (cpu && (r->cpu_quota != RT_UNSET || r->cpu_period > 0)) {
        int64_t period = r->cpu_period > 0 ? r->cpu_period : 100000;
        int w = r->cpu_quota > 0
                    ? rt_cg_writef(d, "cpu.max", "%" PRId64 " %" PRId64, r->cpu_quota, period)
                    : rt_cg_writef(d, "cpu.max", "max %" PRId64, period);
        if (w < 0) return berr_errno(e, 400, "set cpu.max");
    }
    if (((r->cpus && *r->cpus) || (r->mems && *r->mems)) && !has_ctrl(ctrls, "cpuset"))
        return missing(d, "cpuset", e);
    if (r->cpus && rt_cg_write(d, "cpuset.cpus", r->cpus) < 0)
        return berr_errno(e, 400, "set cpuset.cpus");
    if (r->mems && rt_cg_write(d, "cpuset.mems", r->mems) < 0)
        return berr_errno(e, 400, "set cpuset.mems");
    return 0;
}

int rt_cgv2_apply(rt_cgroup *cg, const rt_resources *r, berr *e)
{
    const char *d = rt_cg_dir(cg, "");
    if (!d) return berr_set(e, 500, "no cgroup v2 directory");
    char ctrls[512];
    if (rt_cg_read(d, "cgroup.controllers", ctrls, sizeof ctrls) < 0)
        return berr_errno(e, 500, "read %s/cgroup.controllers", d);
    if (set_memory(d, ctrls, r, e) < 0 || set_cpu(d, ctrls, r, e) < 0) return -1;
    if (r->pids_limit > 0 && !has_ctrl(ctrls, "pids")) return missing(d, "pids", e);
    if (r->pids_limit != RT_UNSET && has_ctrl(ctrls, "pids")) {
        int w = r->pids_limit > 0 ? rt_cg_writef(d, "pids.max", "%" PRId64, r->pids_limit)
                                  : rt_cg_write(d, "pids.max", "max");
        if (w < 0) return berr_errno(e, 400, "set pids.max");
    }
    if (r->blkio_weight > 0) { /* like v1 without CFQ/BFQ: ignored when the kernel cannot */
        int w = rt_cg_exists(d, "io.bfq.weight")
                    ? rt_cg_writef(d, "io.bfq.weight", "%" PRId64, r->blkio_weight)
                : rt_cg_exists(d, "io.weight")
                    ? rt_cg_writef(d, "io.weight", "default %" PRId64,
                                   1 + (r->blkio_weight - 10) * 9999 / 990)
                    : 0;
        if (w < 0) return berr_errno(e, 400, "set io weight");
    }
    return r->ndevrules ? rt_cgv2_devices(d, r->devrules, r->ndevrules, e) : 0;
}

int rt_cgv2_stats(rt_cgroup *cg, rt_stats *st)
{
    const char *d = rt_cg_dir(cg, "");
    if (!d) return -1;
    int64_t v;
#define U(x) ((v = (x)) < 0 ? 0 : (uint64_t)v)
    st->mem_usage = U(rt_cg_read_int(d, "memory.current"));
    st->mem_max_usage = U(rt_cg_read_int(d, "memory.peak"));
    st->mem_limit = U(rt_cg_read_int(d, "memory.max"));
    st->mem_failcnt = U(rt_cg_read_key(d, "memory.events", "max"));
    st->oom_kills = U(rt_cg_read_key(d, "memory.events", "oom_kill"));
    st->mem_stat = rt_cg_read_map(d, "memory.stat");
    st->cpu_total_ns = U(rt_cg_read_key(d, "cpu.stat", "usage_usec")) * 1000;
    st->cpu_user_ns = U(rt_cg_read_key(d, "cpu.stat", "user_usec")) * 1000;
    st->cpu_system_ns = U(rt_cg_read_key(d, "cpu.stat", "system_usec")) * 1000;
    st->cpu_periods = U(rt_cg_read_key(d, "cpu.stat", "nr_periods"));
    st->cpu_throttled_periods = U(rt_cg_read_key(d, "cpu.stat", "nr_throttled"));
    st->cpu_throttled_ns = U(rt_cg_read_key(d, "cpu.stat", "throttled_usec")) * 1000;
    st->pids_current = U(rt_cg_read_int(d, "pids.current"));
    if (!rt_cg_exists(d, "pids.current")) { /* no pids controller: count the processes */
        pid_t pids[4096];
        int n = rt_cgroup_pids(cg, pids, 4096);
        st->pids_current = n > 0 ? (uint64_t)n : 0;
    }
    int64_t pm = rt_cg_read_int(d, "pids.max");
    st->pids_limit = pm == INT64_MAX ? 0 : U(pm);
#undef U
    char buf[16384];
    if (rt_cg_read(d, "io.stat", buf, sizeof buf) > 0)
        for (char *p = buf; (p = strstr(p, "bytes=")); p += 6) {
            uint64_t n = strtoull(p + 6, NULL, 10);
            if (p[-1] == 'r' && p[-2] == ' ') st->blk_read_bytes += n;
            if (p[-1] == 'w' && p[-2] == ' ') st->blk_write_bytes += n;
        }
    return 0;
}

int rt_cgv2_freeze(rt_cgroup *cg, bool frozen, berr *e)
{
    const char *d = rt_cg_dir(cg, "");
    if (!d || rt_cg_write(d, "cgroup.freeze", frozen ? "1" : "0") < 0)
        return berr_errno(e, 500, "write cgroup.freeze");
    for (int i = 0; i < 2000; i++) {
        if (rt_cg_read_key(d, "cgroup.events", "frozen") == (frozen ? 1 : 0)) return 0;
        nanosleep(&(struct timespec){0, 500000}, NULL);
    }
    return berr_set(e, 500, "cgroup %s did not %s", d, frozen ? "freeze" : "thaw");
}

/* ---- device rules as eBPF ---- */
#define INSN(c, d, s, o, i)                                                                        \
    ((struct bpf_insn){.code = (c), .dst_reg = (d), .src_reg = (s), .off = (o), .imm = (i)})

typedef struct prog {
    struct bpf_insn *v;
    size_t n, cap;
} prog;

static void emit(prog *p, struct bpf_insn i)
{
    if (p->n == p->cap) p->v = xrealloc(p->v, (p->cap = p->cap ? p->cap * 2 : 64) * sizeof i);
    p->v[p->n++] = i;
}

/* One rule: if it matches, return allow; else fall through to the next one. */
static void emit_rule(prog *p, const rt_devrule *r)
{
    uint32_t acc = 0;
    for (const char *a = r->access; *a; a++)
        acc |= *a == 'm'   ? BPF_DEVCG_ACC_MKNOD
               : *a == 'r' ? BPF_DEVCG_ACC_READ
                           : BPF_DEVCG_ACC_WRITE;
    bool t = r->type != 'a',
         a = acc != (BPF_DEVCG_ACC_MKNOD | BPF_DEVCG_ACC_READ | BPF_DEVCG_ACC_WRITE);
    bool ma = r->major >= 0, mi = r->minor >= 0;
    int left = t + 3 * a + ma + mi + 2; /* instructions in this block */
    if (t) {
        left--;
        emit(p, INSN(BPF_JMP | BPF_JNE | BPF_K, 2, 0, (short)left,
                     r->type == 'b' ? BPF_DEVCG_DEV_BLOCK : BPF_DEVCG_DEV_CHAR));
    }
    if (a) {
        emit(p, INSN(BPF_ALU | BPF_MOV | BPF_X, 1, 3, 0, 0));
        emit(p, INSN(BPF_ALU | BPF_AND | BPF_K, 1, 0, 0, (int32_t)~acc));
        left -= 3;
        emit(p, INSN(BPF_JMP32 | BPF_JNE | BPF_K, 1, 0, (short)left, 0));
    }
    if (ma) left--, emit(p, INSN(BPF_JMP | BPF_JNE | BPF_K, 4, 0, (short)left, (int32_t)r->major));
    if (mi) left--, emit(p, INSN(BPF_JMP | BPF_JNE | BPF_K, 5, 0, (short)left, (int32_t)r->minor));
    emit(p, INSN(BPF_ALU64 | BPF_MOV | BPF_K, 0, 0, 0, r->allow ? 1 : 0));
    emit(p, INSN(BPF_JMP | BPF_EXIT, 0, 0, 0, 0));
}

static void build_prog(prog *p, const rt_devrule *rules, size_t n)
{
    emit(p, INSN(BPF_LDX | BPF_MEM | BPF_W, 2, 1, 0, 0));      /* r2 = access_type */
    emit(p, INSN(BPF_ALU | BPF_AND | BPF_K, 2, 0, 0, 0xFFFF)); /* r2 = type */
    emit(p, INSN(BPF_LDX | BPF_MEM | BPF_W, 3, 1, 0, 0));
    emit(p, INSN(BPF_ALU | BPF_RSH | BPF_K, 3, 0, 0, 16)); /* r3 = access */
    emit(p, INSN(BPF_LDX | BPF_MEM | BPF_W, 4, 1, 4, 0));  /* r4 = major */
    emit(p, INSN(BPF_LDX | BPF_MEM | BPF_W, 5, 1, 8, 0));  /* r5 = minor */
    for (size_t i = n; i-- > 0;) {                         /* the last matching rule wins */
        const rt_devrule *r = &rules[i];
        emit_rule(p, r);
        if (r->type == 'a' && r->major < 0 && r->minor < 0 && strlen(r->access) == 3)
            return; /* matches everything: what follows would be unreachable */
    }
    emit(p, INSN(BPF_ALU64 | BPF_MOV | BPF_K, 0, 0, 0, 1)); /* no rule: allowed (cgroup default) */
    emit(p, INSN(BPF_JMP | BPF_EXIT, 0, 0, 0, 0));
}

static void detach_old(int cgfd, int keep_id)
{
    uint32_t ids[64], cnt = 64;
    union bpf_attr q = {0};
    q.query.target_fd = (uint32_t)cgfd;
    q.query.attach_type = BPF_CGROUP_DEVICE;
    q.query.prog_ids = (uint64_t)(uintptr_t)ids;
    q.query.prog_cnt = cnt;
    if (syscall(SYS_bpf, BPF_PROG_QUERY, &q, sizeof q) < 0) return;
    for (uint32_t i = 0; i < q.query.prog_cnt && i < cnt; i++) {
        if ((int)ids[i] == keep_id) continue;
        union bpf_attr g = {.prog_id = ids[i]};
        int fd = (int)syscall(SYS_bpf, BPF_PROG_GET_FD_BY_ID, &g, sizeof g);
        if (fd < 0) continue;
        union bpf_attr d = {0};
        d.target_fd = (uint32_t)cgfd;
        d.attach_bpf_fd = (uint32_t)fd;
        d.attach_type = BPF_CGROUP_DEVICE;
        syscall(SYS_bpf, BPF_PROG_DETACH, &d, sizeof d);
        close(fd);
    }
}

int rt_cgv2_devices(const char *dir, const rt_devrule *rules, size_t n, berr *e)
{
    prog p = {0};
    build_prog(&p, rules, n);
    char log[4096] = "";
    union bpf_attr a = {0};
    a.prog_type = BPF_PROG_TYPE_CGROUP_DEVICE;
    a.insns = (uint64_t)(uintptr_t)p.v;
    a.insn_cnt = (uint32_t)p.n;
    a.license = (uint64_t)(uintptr_t) "Apache";
    /* without a log first: with one, a verifier log longer than the buffer
     * (any program of Docker's size) fails the load with ENOSPC */
    _cleanup_close_ int pfd = (int)syscall(SYS_bpf, BPF_PROG_LOAD, &a, sizeof a);
    if (pfd < 0) { /* again with the log, for the message */
        int err = errno;
        a.log_buf = (uint64_t)(uintptr_t)log;
        a.log_size = sizeof log;
        a.log_level = 1;
        int again = (int)syscall(SYS_bpf, BPF_PROG_LOAD, &a, sizeof a);
        if (again >= 0) close(again);
        errno = err;
    }
    free(p.v);
    if (pfd < 0) return berr_errno(e, 500, "load the device eBPF program (%.200s)", log);
    _cleanup_close_ int cgfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (cgfd < 0) return berr_errno(e, 500, "open %s", dir);
    union bpf_attr at = {0};
    at.target_fd = (uint32_t)cgfd;
    at.attach_bpf_fd = (uint32_t)pfd;
    at.attach_type = BPF_CGROUP_DEVICE;
    at.attach_flags = BPF_F_ALLOW_MULTI;
    if (syscall(SYS_bpf, BPF_PROG_ATTACH, &at, sizeof at) < 0)
        return berr_errno(e, 500, "attach the device program to %s", dir);
    struct bpf_prog_info info = {0};
    union bpf_attr ia = {0};
    ia.info.bpf_fd = (uint32_t)pfd;
    ia.info.info_len = sizeof info;
    ia.info.info = (uint64_t)(uintptr_t)&info;
    if (syscall(SYS_bpf, BPF_OBJ_GET_INFO_BY_FD, &ia, sizeof ia) == 0)
        detach_old(cgfd, (int)info.id);
    return 0;
}
