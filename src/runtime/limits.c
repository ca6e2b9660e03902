/* limits.c: per-process limits and identity: rlimits (checked against the
 * runtime's own hard limits: without CAP_SYS_RESOURCE a hard limit can only
 * go down), namespaced sysctls, oom_score_adj, and the uid/gid switch. */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/capability.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "internal.h"

static const char *const rlimit_names[] = {
    [RLIMIT_CPU] = "RLIMIT_CPU",           [RLIMIT_FSIZE] = "RLIMIT_FSIZE",
    [RLIMIT_DATA] = "RLIMIT_DATA",         [RLIMIT_STACK] = "RLIMIT_STACK",
    [RLIMIT_CORE] = "RLIMIT_CORE",         [RLIMIT_RSS] = "RLIMIT_RSS",
    [RLIMIT_NPROC] = "RLIMIT_NPROC",       [RLIMIT_NOFILE] = "RLIMIT_NOFILE",
    [RLIMIT_MEMLOCK] = "RLIMIT_MEMLOCK",   [RLIMIT_AS] = "RLIMIT_AS",
    [RLIMIT_LOCKS] = "RLIMIT_LOCKS",       [RLIMIT_SIGPENDING] = "RLIMIT_SIGPENDING",
    [RLIMIT_MSGQUEUE] = "RLIMIT_MSGQUEUE", [RLIMIT_NICE] = "RLIMIT_NICE",
    [RLIMIT_RTPRIO] = "RLIMIT_RTPRIO",     [RLIMIT_RTTIME] = "RLIMIT_RTTIME",
};
#define NRLIMITS ((int)(sizeof rlimit_names / sizeof *rlimit_names))

int rt_rlimit_from_name(const char *name)
{
    for (int i = 0; i < NRLIMITS; i++)
        if (rlimit_names[i] && !strcmp(name, rlimit_names[i])) return i;
    return -1;
}

static bool have_effective_cap(int cap)
{
    struct __user_cap_header_struct h = {_LINUX_CAPABILITY_VERSION_3, 0};
    struct __user_cap_data_struct d[2];
    if (syscall(SYS_capget, &h, d) < 0) return false;
    return d[cap / 32].effective & (1U << (cap % 32));
}

uint64_t rt_rlimit_max(int resource)
{
    if (have_effective_cap(CAP_SYS_RESOURCE)) return RLIM_INFINITY;
    struct rlimit r;
    if (getrlimit(resource, &r) < 0) return 0;
    return r.rlim_max;
}

int rt_rlimits_check(const rt_process *p, berr *e)
{
    for (size_t i = 0; i < p->nrlimits; i++) {
        const rt_rlimit *l = &p->rlimits[i];
        uint64_t max = rt_rlimit_max(l->resource);
        if (l->hard > max)
            return berr_set(e, 400,
                            "rlimit %s: hard limit %llu is above the runtime's own hard limit "
                            "%llu (raising it needs CAP_SYS_RESOURCE)",
                            rlimit_names[l->resource], (unsigned long long)l->hard,
                            (unsigned long long)max);
    }
    return 0;
}

int rt_rlimits_apply(const rt_process *p, berr *e)
{
    for (size_t i = 0; i < p->nrlimits; i++) {
        const rt_rlimit *l = &p->rlimits[i];
        struct rlimit r = {l->soft, l->hard};
        if (setrlimit(l->resource, &r) < 0)
            return berr_errno(e, 500, "setrlimit %s %llu:%llu", rlimit_names[l->resource],
                              (unsigned long long)l->soft, (unsigned long long)l->hard);
    }
    return 0;
}

/* ---- sysctl: only what a container's own namespaces isolate ---- */
static bool ns_private(const rt_spec *s, int type)
{
    return rt_spec_has_ns(s, type) && !rt_spec_ns_path(s, type);
}

int rt_sysctl_check(const rt_spec *s, const char *key, berr *e)
{
    static const char *const ipc_keys[] = {
        "kernel.msgmax", "kernel.msgmnb", "kernel.msgmni",          "kernel.sem", "kernel.shmall",
        "kernel.shmmax", "kernel.shmmni", "kernel.shm_rmid_forced", NULL};
    for (int i = 0; ipc_keys[i]; i++)
        if (!strcmp(key, ipc_keys[i])) goto ipc;
    if (str_starts(key, "fs.mqueue.")) goto ipc;
    if (str_starts(key, "net.")) {
        if (ns_private(s, CLONE_NEWNET)) return 0;
        return berr_set(
            e, 400, "sysctl %s is not allowed: the container shares the host's network namespace",
            key);
    }
    if (!strcmp(key, "kernel.domainname")) {
        if (ns_private(s, CLONE_NEWUTS)) return 0;
        return berr_set(e, 400, "sysctl %s is not allowed without a private UTS namespace", key);
    }
    return berr_set(e, 400, "sysctl %s is not namespaced and cannot be set in a container", key);
ipc:
    if (ns_private(s, CLONE_NEWIPC)) return 0;
    return berr_set(e, 400, "sysctl %s is not allowed without a private IPC namespace", key);
}

int rt_sysctl_apply(const rt_spec *s, berr *e)
{
    for (size_t i = 0; i < s->nsysctl; i++) {
        char path[512];
        int n = snprintf(path, sizeof path, "/proc/sys/%s", s->sysctl[i].key);
        if (n < 0 || (size_t)n >= sizeof path) return berr_set(e, 400, "sysctl key too long");
        for (char *p = path + 10; *p; p++)
            if (*p == '.') *p = '/';
        int fd = open(path, O_WRONLY | O_CLOEXEC);
        if (fd < 0) return berr_errno(e, 400, "sysctl %s", s->sysctl[i].key);
        const char *v = s->sysctl[i].value;
        ssize_t w = write(fd, v, strlen(v));
        int saved = errno;
        close(fd);
        errno = saved;
        if (w < 0) return berr_errno(e, 400, "sysctl %s=%s", s->sysctl[i].key, v);
    }
    return 0;
}

int rt_oom_score_apply(const rt_process *p, berr *e)
{
    if (!p->has_oom) return 0;
    char buf[16];
    int n = snprintf(buf, sizeof buf, "%d", p->oom_score_adj);
    int fd = open("/proc/self/oom_score_adj", O_WRONLY | O_CLOEXEC);
    if (fd < 0) return berr_errno(e, 500, "open oom_score_adj");
    ssize_t w = write(fd, buf, (size_t)n);
    int saved = errno;
    close(fd);
    errno = saved;
    if (w < 0)
        return berr_errno(e, 400, "set oom_score_adj to %d%s", p->oom_score_adj,
                          errno == EACCES ? " (lowering it needs CAP_SYS_RESOURCE)" : "");
    return 0;
}

/* setgroups/setresgid/setresuid keeping the permitted capabilities, which
 * rt_caps_apply then trims. */
int rt_user_apply(const rt_process *p, bool in_userns, berr *e)
{
    if (prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0) < 0) return berr_errno(e, 500, "PR_SET_KEEPCAPS");
    if (setgroups(p->ngids, p->gids) < 0 && !(in_userns && errno == EPERM))
        return berr_errno(e, 500, "setgroups");
    if (setresgid(p->gid, p->gid, p->gid) < 0) return berr_errno(e, 500, "setresgid %u", p->gid);
    if (setresuid(p->uid, p->uid, p->uid) < 0) return berr_errno(e, 500, "setresuid %u", p->uid);
    umask(p->has_umask ? p->umask : 022);
    return 0;
}
