/* cgroup.c: a container's cgroup across every hierarchy of the host: host
 * mode detection (v1, hybrid, v2), cgroupsPath resolution (absolute, relative
 * to the runtime's own cgroup, or systemd's slice:prefix:name), creation,
 * entering a pid, the cgroup mount inside the container, freeze/thaw,
 * stats, OOM count, and removal. Limits per version are in cgroup_v1.c and
 * cgroup_v2.c. On hybrid hosts (v1 controllers + an empty v2 mount at
 * /sys/fs/cgroup/unified) the limits go to v1 and the process also joins the
 * same path in the v2 tree, as runc's cgroupfs driver does. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/magic.h>
#include <linux/mount.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"

rt_cgroup *rt_child_cgroup;

/* ---- host hierarchies, discovered once per process ---- */
typedef struct hier {
    char *name; /* controllers as in /proc/self/cgroup; "" for v2 */
    char *mnt;  /* mount point */
    char *root; /* mountinfo root of that mount */
    char *own;  /* this process's cgroup in it */
} hier;
static hier hiers[RT_CG_MAX];
static int nhiers = -1;
static rt_cgroup_mode host_mode;

static char *mountinfo_field(char *line, int n)
{
    char *save = NULL, *tok = strtok_r(line, " ", &save);
    for (int i = 0; tok && i < n; i++) tok = strtok_r(NULL, " ", &save);
    return tok;
}

/* Whether a mount at `mnt` is hidden by a mount listed after it (mountinfo
 * lists mounts in the order they were made) on the same path or on a parent:
 * e.g. the unified hierarchy at /sys/fs/cgroup/unified of a hybrid host once
 * a cgroup2 is mounted on /sys/fs/cgroup in a mount namespace. */
static bool covered(const char *later, const char *mnt)
{
    char line[4096];
    size_t ml = strlen(mnt);
    for (const char *l = later; l && *l;) {
        const char *nl = strchr(l, '\n');
        size_t len = nl ? (size_t)(nl - l) + 1 : strlen(l);
        snprintf(line, sizeof line, "%.*s", (int)(len < sizeof line ? len : sizeof line - 1), l);
        l += len;
        char *m = mountinfo_field(line, 4);
        if (!m) continue;
        size_t pl = strlen(m);
        if (!strcmp(m, "/") || (pl <= ml && !strncmp(mnt, m, pl) && (!mnt[pl] || mnt[pl] == '/')))
            return true;
    }
    return false;
}

/* Finds the mount of a hierarchy: for v1 the superblock options hold its
 * controllers. A mount that a later one covers is not reachable: skipped. */
static bool find_mount(const char *mountinfo, const char *name, char **mnt, char **root)
{
    char line[4096];
    for (const char *l = mountinfo; l && *l;) {
        const char *nl = strchr(l, '\n');
        size_t len = nl ? (size_t)(nl - l) + 1 : strlen(l);
        snprintf(line, sizeof line, "%.*s", (int)(len < sizeof line ? len : sizeof line - 1), l);
        l += len;
        char *dash = strstr(line, " - ");
        if (!dash) continue;
        char fstype[32], super[1024];
        if (sscanf(dash + 3, "%31s %*s %1023s", fstype, super) != 2) continue;
        bool v2 = !strcmp(fstype, "cgroup2");
        if (!v2 && strcmp(fstype, "cgroup")) continue;
        if (v2 != !*name) continue;
        if (!v2) { /* every controller of name must be an option */
            char opts[1100], want[256];
            snprintf(opts, sizeof opts, ",%s,", super);
            snprintf(want, sizeof want, "%s", name);
            bool all = true;
            for (char *s = NULL, *c = strtok_r(want, ",", &s); c; c = strtok_r(NULL, ",", &s)) {
                char needle[300];
                snprintf(needle, sizeof needle, ",%s,", c);
                if (!strstr(opts, needle)) all = false;
            }
            if (!all) continue;
        }
        *dash = 0;
        char copy[4096];
        snprintf(copy, sizeof copy, "%s", line);
        char *m = mountinfo_field(copy, 4);
        if (!m || covered(l, m)) continue;
        *mnt = xstrdup(m);
        snprintf(copy, sizeof copy, "%s", line);
        char *r = mountinfo_field(copy, 3);
        *root = xstrdup(r ? r : "/");
        return true;
    }
    return false;
}

static void discover(void)
{
    if (nhiers >= 0) return;
    nhiers = 0;
    struct statfs sf;
    if (statfs("/sys/fs/cgroup", &sf) == 0 && sf.f_type == CGROUP2_SUPER_MAGIC)
        host_mode = RT_CG_V2;
    _cleanup_fclose_ FILE *f = fopen("/proc/self/cgroup", "re");
    char line[4096];
    bool v1 = false, v2 = false;
    /* mountinfo read once, not once per hierarchy */
    _cleanup_free_ char *mountinfo = NULL;
    size_t milen = 0;
    if (read_file("/proc/self/mountinfo", &mountinfo, &milen) < 0) mountinfo = NULL;
    while (f && fgets(line, sizeof line, f) && nhiers < RT_CG_MAX) {
        line[strcspn(line, "\n")] = 0;
        char *c1 = strchr(line, ':'), *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
        if (!c2) continue;
        *c2 = 0;
        hier *h = &hiers[nhiers];
        if (!find_mount(mountinfo, c1 + 1, &h->mnt, &h->root)) continue;
        h->name = xstrdup(c1 + 1);
        h->own = xstrdup(c2 + 1);
        if (*h->name)
            v1 = true;
        else
            v2 = true;
        nhiers++;
    }
    if (host_mode != RT_CG_V2) host_mode = v1 && v2 ? RT_CG_HYBRID : RT_CG_V1;
}

void rt_prime(void)
{
    discover();
    rt_cap_last();
}

rt_cgroup_mode rt_cgroup_host_mode(void)
{
    discover();
    return host_mode;
}

/* The cgroup (path within the hierarchy) for cgroupsPath. */
static char *resolve_path(const hier *h, const char *cgpath, const char *id)
{
    if (!cgpath || !*cgpath) cgpath = id;
    if (cgpath[0] == '/') return xstrdup(cgpath);
    const char *c1 = strchr(cgpath, ':'), *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
    if (c2) /* systemd form slice:prefix:name */
        return xasprintf("/%.*s/%.*s-%s.scope", (int)(c1 - cgpath), cgpath, (int)(c2 - c1 - 1),
                         c1 + 1, c2 + 1);
    return xasprintf("%s/%s", strcmp(h->own, "/") ? h->own : "", cgpath);
}

/* Directory of cgroup `cg` (path within the hierarchy) under the mount. */
static char *fs_path(const hier *h, const char *cg)
{
    size_t rl = strlen(h->root);
    if (strcmp(h->root, "/") && !strncmp(cg, h->root, rl)) cg += rl;
    return xasprintf("%s%s", h->mnt, cg);
}

static bool want_hier(const hier *h)
{
    if (host_mode == RT_CG_V2) return !*h->name;
    return true; /* v1 and hybrid: every hierarchy, the v2 one included */
}

/* As runc does, the device rules get the standard nodes (and mknod of
 * anything) allowed after the spec's own. A linux.devices entry gets only
 * what the spec's rules allow it (docker's --device PATH:PATH:r is read
 * only). r's rules with those (free r->devrules after); r unchanged when it
 * has none. */
static void with_std_rules(rt_resources *r)
{
    static const rt_devrule std[] = {
        {true, 'c', -1, -1, "m"}, {true, 'b', -1, -1, "m"},    {true, 'c', 1, 3, "rwm"},
        {true, 'c', 1, 5, "rwm"}, {true, 'c', 1, 7, "rwm"},    {true, 'c', 1, 8, "rwm"},
        {true, 'c', 1, 9, "rwm"}, {true, 'c', 5, 0, "rwm"},    {true, 'c', 5, 1, "rwm"},
        {true, 'c', 5, 2, "rwm"}, {true, 'c', 136, -1, "rwm"},
    };
    if (!r->ndevrules) return;
    size_t nstd = sizeof std / sizeof *std;
    rt_devrule *d = xcalloc(r->ndevrules + nstd, sizeof *d);
    memcpy(d, r->devrules, r->ndevrules * sizeof *d);
    memcpy(d + r->ndevrules, std, sizeof std);
    r->devrules = d;
    r->ndevrules += nstd;
}

/* The limits of the spec; its device rules only when not applied ahead. */
static int apply_initial(rt_cgroup *cg, const rt_spec *s, bool devices_ready, berr *e)
{
    rt_resources r = *s->res;
    if (devices_ready) r.ndevrules = 0, r.devrules = NULL;
    if (!r.ndevrules) return rt_cgroup_update(cg, &r, e);
    with_std_rules(&r);
    int rc = rt_cgroup_update(cg, &r, e);
    free(r.devrules);
    return rc;
}

static const char *mnt_of(const char *name)
{
    for (int i = 0; i < nhiers; i++)
        if (!strcmp(hiers[i].name, name)) return hiers[i].mnt;
    return "";
}

static int make_dir(rt_cgdir *d, berr *e)
{
    /* the parent (the /berth cgroup) is there but for the first container */
    if (mkdir(d->path, 0755) < 0 && errno != EEXIST && mkdir_p(d->path, 0755) < 0)
        return berr_errno(e, 500, "create cgroup %s", d->path);
    if (host_mode == RT_CG_V2)
        rt_cgv2_enable(mnt_of(d->name), d->path);
    else if (strstr(d->name, "cpuset") && rt_cgv1_cpuset_init(mnt_of(d->name), d->path) < 0)
        return berr_errno(e, 500, "initialise cpuset of %s", d->path);
    return 0;
}

/* Resolves the container's directory in every hierarchy. Only the v2 one is
 * made now (clone3 CLONE_INTO_CGROUP needs it); rt_cgroup_setup makes the
 * others and applies the limits, before the clone: in the shim that is
 * while berthd mounts the root, off the start's path. */
int rt_cgroup_plan(const rt_spec *s, const char *id, rt_cgroup **out, berr *e)
{
    discover();
    *out = NULL;
    if (!nhiers) return berr_set(e, 500, "no cgroup hierarchy is mounted");
    rt_cgroup *cg = xcalloc(1, sizeof *cg);
    cg->mode = host_mode;
    for (int i = 0; i < nhiers; i++) {
        if (!want_hier(&hiers[i])) continue;
        _cleanup_free_ char *rel = resolve_path(&hiers[i], s->cgroups_path, id);
        rt_cgdir *d = &cg->dirs[cg->n++];
        d->name = xstrdup(hiers[i].name);
        d->path = fs_path(&hiers[i], rel);
        if (!*d->name && make_dir(d, e) < 0) {
            rt_cgroup_free(cg);
            return -1;
        }
    }
    *out = cg;
    return 0;
}

/* ---- directories made ahead ----
 * Ten v1 directories cost a start ~0.8 ms of mkdir here. berthd makes them
 * ahead, at idle priority, as <parent>/.pool-<name> in every v1 hierarchy
 * (a v2 directory cannot be renamed; it is made at the start), and renames
 * them into place while the shim reads the spec, whose annotation
 * org.berth.cgroup-made then says so. They never held a process, so they
 * carry no counts. The device rules a container gets unless it has its own
 * (--device, --privileged) are written in ahead too (~0.2 ms): the
 * annotation org.berth.cgroup-devices-made says the spec's rules are the
 * ones the premade directories got. */
#define MADE_ANNOTATION "org.berth.cgroup-made"
#define DEVICES_ANNOTATION "org.berth.cgroup-devices-made"

static char *premade_path(const hier *h, const char *parent, const char *name)
{
    _cleanup_free_ char *rel = xasprintf("%s/.pool-%s", parent, name);
    return fs_path(h, rel);
}

int rt_cgroup_premake(const char *parent, const char *name, const rt_resources *devices)
{
    discover();
    if (host_mode == RT_CG_V2 || !name || !*name || strchr(name, '/')) return -1;
    int made = 0, rules = 0;
    for (int i = 0; i < nhiers; i++) {
        if (!*hiers[i].name) continue;
        rt_cgdir d = {hiers[i].name, premade_path(&hiers[i], parent, name)};
        berr e;
        bool ok = make_dir(&d, &e) == 0;
        made += ok;
        if (ok && devices && devices->ndevrules && !strcmp(d.name, "devices")) {
            rt_resources r = *devices;
            with_std_rules(&r);
            rules = rt_cgv1_set_devices(d.path, &r, &e) == 0;
            free(r.devrules);
        }
        free(d.path);
    }
    return !made ? -1 : rules;
}

/* The name of a hierarchy's directory under the container's /sys/fs/cgroup
 * ("unified" for the v2 one, "systemd" for name=systemd). */
static void hier_sub(const char *name, char *sub, size_t size)
{
    snprintf(sub, size, "%s", !*name ? "unified" : str_starts(name, "name=") ? name + 5 : name);
}

/* cpu,cpuacct: a symlink per controller, to the directory of the pair */
static int link_pair(int dfd, const char *name, const char *sub)
{
    if (!strchr(sub, ',')) return 0;
    char buf[256];
    snprintf(buf, sizeof buf, "%s", sub);
    for (char *s = NULL, *c = strtok_r(buf, ",", &s); c; c = strtok_r(NULL, ",", &s))
        if (symlinkat(name, dfd, c) < 0 && errno != EEXIST) return -1;
    return 0;
}

/* A detached bind of dir (open_tree) with the cgroup mount's flags. */
static int cg_bind(const char *dir, bool ro)
{
    struct mount_attr a = {.attr_set = MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC |
                                       (ro ? MOUNT_ATTR_RDONLY : 0)};
    int fd = (int)syscall(SYS_open_tree, AT_FDCWD, dir, OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC);
    if (fd >= 0 && syscall(SYS_mount_setattr, fd, "", AT_EMPTY_PATH, &a, sizeof a) < 0)
        close(fd), fd = -1;
    return fd;
}

/* The superblock and the mount t made read-only, once its directories are in. */
static int seal_tmpfs(int t)
{
    int fs = (int)syscall(SYS_fspick, t, "", FSPICK_EMPTY_PATH | FSPICK_CLOEXEC);
    struct mount_attr a = {.attr_set = MOUNT_ATTR_RDONLY};
    int r = fs >= 0 && syscall(SYS_fsconfig, fs, FSCONFIG_SET_FLAG, "ro", NULL, 0) == 0 &&
                    syscall(SYS_fsconfig, fs, FSCONFIG_CMD_RECONFIGURE, NULL, NULL, 0) == 0 &&
                    syscall(SYS_mount_setattr, t, "", AT_EMPTY_PATH, &a, sizeof a) == 0
                ? 0
                : -1;
    if (fs >= 0) close(fs);
    return r;
}

/* The tmpfs every tree is a clone of: a directory per hierarchy (and the
 * links of a pair), read-only. Mounts on a clone are the clone's own. */
static int tree_template = -1;
static pthread_once_t template_once = PTHREAD_ONCE_INIT;

static void make_template(void)
{
    rt_mount m = {.type = "tmpfs",
                  .source = "tmpfs",
                  .data = "mode=755",
                  .flags = MS_NOSUID | MS_NODEV | MS_NOEXEC};
    int t = rt_detached_fs(&m);
    for (int i = 0; t >= 0 && i < nhiers; i++) {
        if (!want_hier(&hiers[i])) continue;
        char sub[256];
        hier_sub(hiers[i].name, sub, sizeof sub);
        if (mkdirat(t, sub, 0755) < 0 || link_pair(t, hiers[i].name, sub) < 0) close(t), t = -1;
    }
    if (t >= 0 && seal_tmpfs(t) < 0) close(t), t = -1;
    tree_template = t;
}

int rt_cgroup_premake_tree(const char *parent, const char *name)
{
    discover();
    if (host_mode == RT_CG_V2 || !name || !*name || strchr(name, '/')) return -1;
    pthread_once(&template_once, make_template);
    if (tree_template < 0) return -1;
    int t = (int)syscall(SYS_open_tree, tree_template, "",
                         OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_EMPTY_PATH);
    for (int i = 0; t >= 0 && i < nhiers; i++) {
        if (!want_hier(&hiers[i]) || !*hiers[i].name) continue; /* v2: bound at the start */
        char sub[256];
        hier_sub(hiers[i].name, sub, sizeof sub);
        char *p = premade_path(&hiers[i], parent, name);
        int b = (int)syscall(SYS_open_tree, AT_FDCWD, p, OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC);
        free(p);
        bool ok = b >= 0 && syscall(SYS_move_mount, b, "", t, sub, MOVE_MOUNT_F_EMPTY_PATH) == 0;
        if (b >= 0) close(b);
        if (!ok) close(t), t = -1;
    }
    /* the binds get the cgroup mount's flags all at once */
    struct mount_attr a = {.attr_set = MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC |
                                       MOUNT_ATTR_RDONLY};
    if (t >= 0 && syscall(SYS_mount_setattr, t, "", AT_EMPTY_PATH | AT_RECURSIVE, &a, sizeof a) < 0)
        close(t), t = -1;
    return t;
}

int rt_cgroup_premade_place(const char *parent, const char *name, const char *id)
{
    discover();
    if (host_mode == RT_CG_V2 || !name || !*name || strchr(name, '/') || !rt_id_valid(id))
        return -1;
    _cleanup_free_ char *rel = xasprintf("%s/%s", parent, id);
    int missing = 0;
    for (int i = 0; i < nhiers; i++) {
        char *from = *hiers[i].name ? premade_path(&hiers[i], parent, name) : NULL;
        char *to = fs_path(&hiers[i], rel);
        if (from ? rename(from, to) < 0 : mkdir(to, 0755) < 0 && errno != EEXIST) missing++;
        free(from), free(to);
    }
    return missing ? -1 : 0;
}

void rt_cgroup_premade_remove(const char *parent, const char *name)
{
    discover();
    for (int i = 0; i < nhiers && name && *name && !strchr(name, '/'); i++) {
        if (!*hiers[i].name) continue;
        char *p = premade_path(&hiers[i], parent, name);
        rmdir(p);
        free(p);
    }
}

void rt_cgroup_premade_clean(const char *parent)
{
    discover();
    for (int i = 0; i < nhiers; i++) {
        if (!*hiers[i].name) continue;
        char *dir = fs_path(&hiers[i], parent);
        DIR *d = opendir(dir);
        struct dirent *de;
        while (d && (de = readdir(d)))
            if (!strncmp(de->d_name, ".pool-", 6)) {
                char *p = xasprintf("%s/%s", dir, de->d_name);
                rmdir(p);
                free(p);
            }
        if (d) closedir(d);
        free(dir);
    }
}

int rt_cgroup_setup(rt_cgroup *cg, const rt_spec *s, berr *e)
{
    const char *made = jstr(s->annotations, MADE_ANNOTATION);
    const char *devs = jstr(s->annotations, DEVICES_ANNOTATION);
    bool devices_ready = false;
    for (int i = 0; i < cg->n; i++) {
        if (!cg->dirs[i].name[0]) continue;
        char p[4096];
        snprintf(p, sizeof p, "%s/tasks", cg->dirs[i].path);
        int fd = made && !strcmp(made, "true") ? open(p, O_WRONLY | O_CLOEXEC) : -1;
        if (fd < 0) { /* not placed by berthd (rt_cgroup_premade_place) */
            cg->made_v1 = true;
            if (make_dir(&cg->dirs[i], e) < 0) return -1;
            fd = open(p, O_WRONLY | O_CLOEXEC);
        } else if (!strcmp(cg->dirs[i].name, "devices")) {
            devices_ready = devs && !strcmp(devs, "true");
        }
        if (fd >= 0) cg->tasks1[i] = fd + 1; /* else joined by path */
    }
    return apply_initial(cg, s, devices_ready, e);
}

void rt_cgroup_close_tasks(rt_cgroup *cg)
{
    for (int i = 0; cg && i < cg->n; i++)
        if (cg->tasks1[i]) close(cg->tasks1[i] - 1), cg->tasks1[i] = 0;
}

int rt_cgroup_enter(rt_cgroup *cg, pid_t pid, berr *e)
{
    char buf[24];
    snprintf(buf, sizeof buf, "%d", (int)pid);
    for (int i = 0; i < cg->n; i++)
        if (rt_cg_write(cg->dirs[i].path, "cgroup.procs", buf) < 0)
            return berr_errno(e, 500, "add %d to cgroup %s", (int)pid, cg->dirs[i].path);
    return 0;
}

/* The calling (single-threaded) process moves itself into the v1
 * hierarchies: "0" written to `tasks` skips the global threadgroup lock
 * that a write to cgroup.procs takes (an RCU grace period: 5-20 ms). */
int rt_cgroup_enter_self(rt_cgroup *cg, berr *e)
{
    for (int i = 0; i < cg->n; i++) {
        if (!cg->dirs[i].name[0]) continue;
        int r = cg->tasks1[i] ? (int)write(cg->tasks1[i] - 1, "0", 1)
                              : rt_cg_write(cg->dirs[i].path, "tasks", "0");
        if (r < 0) return berr_errno(e, 500, "join cgroup %s", cg->dirs[i].path);
    }
    return 0;
}

int rt_cgroup_update(rt_cgroup *cg, const rt_resources *r, berr *e)
{
    if (!r) return 0;
    return cg->mode == RT_CG_V2 ? rt_cgv2_apply(cg, r, e) : rt_cgv1_apply(cg, r, e);
}

bool rt_cgroup_has_controller(const char *name)
{
    discover();
    for (int i = 0; i < nhiers; i++) {
        const hier *h = &hiers[i];
        char buf[512];
        if (host_mode != RT_CG_V2 && *h->name && rt_cg_list_has(h->name, name, ",")) return true;
        if (host_mode == RT_CG_V2 && !*h->name)
            return rt_cg_read(h->mnt, "cgroup.controllers", buf, sizeof buf) >= 0 &&
                   rt_cg_list_has(buf, name, " \n");
    }
    return false;
}

/* ---- files ---- */
bool rt_cg_list_has(const char *list, const char *word, const char *seps)
{
    size_t l = strlen(word);
    for (const char *p = list; l && (p = strstr(p, word)); p += l)
        if ((p == list || strchr(seps, p[-1])) && (p[l] == 0 || strchr(seps, p[l]))) return true;
    return false;
}

const char *rt_cg_dir(const rt_cgroup *cg, const char *ctrl)
{
    for (int i = 0; i < cg->n; i++) {
        const char *n = cg->dirs[i].name;
        if (cg->mode == RT_CG_V2 || !*ctrl) {
            if (!*n) return cg->dirs[i].path;
            continue;
        }
        if (rt_cg_list_has(n, ctrl, ",")) return cg->dirs[i].path;
    }
    return NULL;
}

int rt_cg_write(const char *dir, const char *file, const char *val)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, file);
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0) return -1;
    ssize_t w = write(fd, val, strlen(val));
    int saved = errno;
    close(fd);
    errno = saved;
    return w < 0 ? -1 : 0;
}

int rt_cg_writef(const char *dir, const char *file, const char *fmt, ...)
{
    char buf[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    return rt_cg_write(dir, file, buf);
}

int rt_cg_read(const char *dir, const char *file, char *buf, size_t n)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, file);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return -1;
    ssize_t r = read_all(fd, buf, n - 1);
    close(fd);
    if (r < 0) return -1;
    buf[r] = 0;
    return (int)r;
}

bool rt_cg_exists(const char *dir, const char *file)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, file);
    return access(path, F_OK) == 0;
}

int64_t rt_cg_read_int(const char *dir, const char *file)
{
    char buf[64];
    if (!dir || rt_cg_read(dir, file, buf, sizeof buf) < 0) return -1;
    if (!strncmp(buf, "max", 3)) return INT64_MAX;
    return strtoll(buf, NULL, 10);
}

int64_t rt_cg_read_key(const char *dir, const char *file, const char *key)
{
    char buf[8192];
    if (!dir || rt_cg_read(dir, file, buf, sizeof buf) < 0) return -1;
    size_t kl = strlen(key);
    for (char *l = buf; l && *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL)
        if (!strncmp(l, key, kl) && l[kl] == ' ') return strtoll(l + kl + 1, NULL, 10);
    return -1;
}

json_t *rt_cg_read_map(const char *dir, const char *file)
{
    char buf[16384];
    json_t *m = json_object();
    if (!dir || rt_cg_read(dir, file, buf, sizeof buf) < 0) return m;
    char *save = NULL;
    for (char *l = strtok_r(buf, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
        char *sp = strchr(l, ' ');
        if (!sp) continue;
        *sp = 0;
        json_object_set_new(m, l, json_integer(strtoll(sp + 1, NULL, 10)));
    }
    return m;
}

/* ---- processes, freezing, removal ---- */
/* The pids in cgroup.procs of dir and of every cgroup below it (a container
 * may make its own: cgroup namespace and a writable cgroup mount). */
static int pids_under(const char *dir, pid_t *pids, int n, int max, int depth)
{
    char buf[65536];
    if (rt_cg_read(dir, "cgroup.procs", buf, sizeof buf) < 0) return -1;
    for (char *p = buf; *p && n < max;) {
        char *end;
        long v = strtol(p, &end, 10);
        if (end == p) break;
        pids[n++] = (pid_t)v;
        p = end + (*end == '\n');
    }
    DIR *d = depth < 32 ? opendir(dir) : NULL;
    for (struct dirent *de; d && n < max && (de = readdir(d));) {
        if (de->d_type != DT_DIR || de->d_name[0] == '.') continue;
        _cleanup_free_ char *sub = xasprintf("%s/%s", dir, de->d_name);
        int r = pids_under(sub, pids, n, max, depth + 1);
        if (r > n) n = r;
    }
    if (d) closedir(d);
    return n;
}

int rt_cgroup_pids(rt_cgroup *cg, pid_t *pids, int max)
{
    const char *dir = rt_cg_dir(cg, cg->mode == RT_CG_V2 ? "" : "pids");
    if (!dir) dir = cg->n ? cg->dirs[0].path : NULL;
    return dir ? pids_under(dir, pids, 0, max, 0) : -1;
}

/* SIGKILL on v2: cgroup.kill (5.14), which kills the whole subtree at once,
 * a process forking meanwhile included. Others: each process of the cgroup. */
int rt_cgroup_signal(rt_cgroup *cg, int sig)
{
    const char *d = cg->mode == RT_CG_V2 ? rt_cg_dir(cg, "") : NULL;
    if (d && sig == SIGKILL && rt_cg_write(d, "cgroup.kill", "1") == 0) return 0;
    pid_t pids[4096];
    int n = rt_cgroup_pids(cg, pids, 4096);
    for (int i = 0; i < n; i++) kill(pids[i], sig);
    if (sig == SIGKILL) rt_cgroup_freeze(cg, false, NULL); /* frozen tasks die only when thawed */
    return n < 0 ? -1 : 0;
}

int rt_cgroup_freeze(rt_cgroup *cg, bool frozen, berr *e)
{
    return cg->mode == RT_CG_V2 ? rt_cgv2_freeze(cg, frozen, e) : rt_cgv1_freeze(cg, frozen, e);
}

int rt_cgroup_stats(rt_cgroup *cg, rt_stats *st, berr *e)
{
    memset(st, 0, sizeof *st);
    int r = cg->mode == RT_CG_V2 ? rt_cgv2_stats(cg, st) : rt_cgv1_stats(cg, st);
    if (r < 0) return berr_errno(e, 500, "read cgroup stats");
    return 0;
}

int64_t rt_cgroup_oom_kills(rt_cgroup *cg)
{
    if (cg->mode == RT_CG_V2) return rt_cg_read_key(rt_cg_dir(cg, ""), "memory.events", "oom_kill");
    return rt_cg_read_key(rt_cg_dir(cg, "memory"), "memory.oom_control", "oom_kill");
}

static void kill_all(rt_cgroup *cg)
{
    pid_t pids[4096];
    for (int round = 0; round < 200; round++) {
        int n = rt_cgroup_pids(cg, pids, 4096);
        if (n <= 0) return;
        rt_cgroup_signal(cg, SIGKILL);
        nanosleep(&(struct timespec){0, 1000000}, NULL);
    }
}

/* rmdir of a cgroup and of the cgroups below it, deepest first; EBUSY
 * (a process not yet gone) is retried, bounded. The directory is read
 * only when it has cgroups below it (a cgroup's is long to list). True
 * when it is gone. */
static bool remove_tree(const char *path, int depth)
{
    if (rmdir(path) == 0 || errno == ENOENT) return true;
    if (errno != EBUSY && errno != ENOTEMPTY) return false;
    DIR *d = depth < 32 ? opendir(path) : NULL;
    for (struct dirent *de; d && (de = readdir(d));) {
        if (de->d_type != DT_DIR || de->d_name[0] == '.') continue;
        _cleanup_free_ char *sub = xasprintf("%s/%s", path, de->d_name);
        remove_tree(sub, depth + 1);
    }
    if (d) closedir(d);
    int tries = 0, r;
    while ((r = rmdir(path)) < 0 && errno == EBUSY && tries++ < 200)
        nanosleep(&(struct timespec){0, 1000000}, NULL);
    return r == 0 || errno == ENOENT;
}

int rt_cgroup_destroy(rt_cgroup *cg, berr *e)
{
    kill_all(cg);
    int rc = 0;
    for (int i = 0; i < cg->n; i++) {
        const char *p = cg->dirs[i].path;
        if (!remove_tree(p, 0) && rc == 0) rc = berr_errno(e, 500, "remove cgroup %s", p);
    }
    return rc;
}

void rt_cgroup_free(rt_cgroup *cg)
{
    if (!cg) return;
    rt_cgroup_close_tasks(cg);
    for (int i = 0; i < cg->n; i++) free(cg->dirs[i].name), free(cg->dirs[i].path);
    free(cg);
}

json_t *rt_cgroup_to_json(const rt_cgroup *cg)
{
    json_t *d = json_object();
    for (int i = 0; i < cg->n; i++)
        json_object_set_new(d, cg->dirs[i].name, json_string(cg->dirs[i].path));
    return json_pack("{s:i,s:o}", "mode", (int)cg->mode, "dirs", d);
}

int rt_cgroup_from_json(const json_t *j, rt_cgroup **out)
{
    *out = NULL;
    if (!json_is_object(j)) return -1;
    rt_cgroup *cg = xcalloc(1, sizeof *cg);
    cg->mode = (rt_cgroup_mode)json_integer_value(json_object_get(j, "mode"));
    const char *k;
    json_t *v;
    json_object_foreach(json_object_get(j, "dirs"), k, v)
    {
        if (cg->n >= RT_CG_MAX || !json_is_string(v)) continue;
        cg->dirs[cg->n].name = xstrdup(k);
        cg->dirs[cg->n++].path = xstrdup(json_string_value(v));
    }
    *out = cg;
    return 0;
}

/* ---- the cgroup filesystem inside the container (mounts[] type "cgroup") ---- */
static int child_binds[RT_CG_MAX]; /* from rt_cgroup_binds, +1 (0: none) */
static int child_tree;             /* +1: rt_cgroup_premake_tree's, to attach whole */

static const rt_mount *cgroup_mount_of(const rt_spec *s)
{
    for (size_t i = 0; i < s->nmounts; i++)
        if (s->mounts[i].type && !strcmp(s->mounts[i].type, "cgroup")) return &s->mounts[i];
    return NULL;
}

/* A tree from rt_cgroup_premake_tree serves this container: a read-only
 * cgroup mount on a v1 or hybrid host without a user namespace, and every
 * v1 directory was placed by berthd (so the tree's binds are of them). */
static bool tree_serves(const rt_cgroup *cg, const rt_spec *s, int tree)
{
    const rt_mount *m = cgroup_mount_of(s);
    return tree >= 0 && m && (m->flags & MS_RDONLY) && cg && cg->mode != RT_CG_V2 && !cg->made_v1 &&
           !rt_spec_has_ns(s, CLONE_NEWUSER);
}

void rt_child_take_tree(const rt_cgroup *cg, const rt_spec *s, int tree)
{
    child_tree = tree_serves(cg, s, tree) ? tree + 1 : 0;
}

/* The container's cgroup mount on v1 and hybrid hosts, without a user
 * namespace: the parent clones each hierarchy's directory of the container
 * as a detached bind mount with the mount's flags (open_tree, while the
 * container process mounts /proc, /dev and /sys) and sends them with GO;
 * the process only attaches them (move_mount) where it would mount each
 * hierarchy. A bind of the directory shows what a mount in the cgroup
 * namespace shows: the same files, the root "/" in mountinfo and
 * /proc/self/cgroup. fds[i] for cg->dirs[i] (-1: none); the bits of *mask
 * say which are there. Returns how many. */
int rt_cgroup_binds(const rt_cgroup *cg, const rt_spec *s, int *fds, int *mask)
{
    const rt_mount *m = cgroup_mount_of(s);
    *mask = 0;
    if (!m || !cg || cg->mode == RT_CG_V2 || rt_spec_has_ns(s, CLONE_NEWUSER)) return 0;
    bool in_tree = child_tree > 0;
    int n = 0;
    for (int i = 0; i < cg->n; i++) {
        bool bound = in_tree && cg->dirs[i].name[0]; /* in the tree */
        fds[i] = bound ? -1 : cg_bind(cg->dirs[i].path, m->flags & MS_RDONLY);
        if (fds[i] >= 0) *mask |= 1 << i, n++;
    }
    return n;
}

void rt_child_take_binds(const int *fds, int n, int mask)
{
    if (!fds) memset(child_binds, 0, sizeof child_binds), child_tree = 0;
    for (int i = 0, k = 0; i < RT_CG_MAX && k < n; i++)
        if (mask & (1 << i)) child_binds[i] = fds[k++] + 1;
}

/* dfd: the tmpfs just mounted on /sys/fs/cgroup, which nothing but this
 * process has seen: its directories are named through it, not opened. */
static int mount_hier(const rt_cgdir *d, int bind, int dfd, bool in_tree, bool cgns,
                      unsigned long flags, berr *e)
{
    const char *n = d->name;
    char sub[256], opts[300], p[300];
    hier_sub(n, sub, sizeof sub);
    if (!in_tree && mkdirat(dfd, sub, 0755) < 0 && errno != EEXIST)
        return berr_errno(e, 500, "mkdir cgroup %s", sub);
    snprintf(p, sizeof p, "/proc/self/fd/%d/%s", dfd, sub);
    snprintf(opts, sizeof opts, "%s%s", str_starts(n, "name=") ? "none," : "", n);
    if (bind >= 0) { /* attached with its flags (else mounted below) */
        int r = (int)syscall(SYS_move_mount, bind, "", dfd, sub, MOVE_MOUNT_F_EMPTY_PATH);
        close(bind);
        if (r == 0) goto linked;
    }
    int r = !cgns ? mount(d->path, p, NULL, MS_BIND, NULL)
            : !*n ? mount("cgroup2", p, "cgroup2", flags, NULL)
                  : mount("cgroup", p, "cgroup", flags, opts);
    if (r == 0 && !cgns && (flags & MS_RDONLY)) /* the path now leads to the new mount */
        r = mount(NULL, p, NULL, MS_BIND | MS_REMOUNT | flags, NULL);
    if (r < 0) return berr_errno(e, 500, "mount cgroup %s", sub);
linked:
    if (!in_tree && link_pair(dfd, d->name, sub) < 0)
        return berr_errno(e, 500, "symlink cgroup %s", sub);
    return 0;
}

int rt_cgroup_mount(const rt_spec *s, const rt_mount *m, int rootfd, berr *e)
{
    rt_cgroup *cg = rt_child_cgroup;
    if (rt_child_await_cgroup(e) < 0) return -1; /* in it, and in its cgroup namespace */
    if (rt_mkdir_in_root(rootfd, m->dest, 0755, e) < 0) return -1;
    _cleanup_close_ int fd = rt_open_in_root(rootfd, m->dest, O_PATH | O_DIRECTORY, e);
    if (fd < 0) return -1;
    char p[32];
    snprintf(p, sizeof p, "/proc/self/fd/%d", fd);
    unsigned long flags = (m->flags & ~MS_REMOUNT) | MS_NOSUID | MS_NODEV | MS_NOEXEC;
    bool cgns = rt_spec_has_ns(s, CLONE_NEWCGROUP);
    if (!cg) return 0;
    if (cg->mode == RT_CG_V2) {
        if (cgns && mount("cgroup2", p, "cgroup2", flags, NULL) < 0)
            return berr_errno(e, 500, "mount cgroup2 on %s", m->dest);
        if (cgns) return 0;
        /* no cgroup namespace: the container's own directory, bound, then
         * remounted with the flags (ro): a bind ignores them */
        if (mount(cg->dirs[0].path, p, NULL, MS_BIND, NULL) < 0)
            return berr_errno(e, 500, "bind cgroup %s on %s", cg->dirs[0].path, m->dest);
        _cleanup_close_ int top = rt_open_in_root(rootfd, m->dest, O_PATH | O_DIRECTORY, e);
        if (top < 0) return -1;
        snprintf(p, sizeof p, "/proc/self/fd/%d", top);
        if (mount(NULL, p, NULL, MS_BIND | MS_REMOUNT | flags, NULL) < 0)
            return berr_errno(e, 500, "remount cgroup on %s", m->dest);
        return 0;
    }
    /* the tree made ahead (its tmpfs read-only, the v1 binds in), attached
     * whole: what is left is the v2 bind of a hybrid host */
    bool in_tree =
        child_tree > 0 && syscall(SYS_move_mount, child_tree - 1, "", fd, "",
                                  MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH) == 0;
    if (!in_tree && mount("tmpfs", p, "tmpfs", flags & ~MS_RDONLY, "mode=755") < 0)
        return berr_errno(e, 500, "mount tmpfs on %s", m->dest);
    _cleanup_close_ int dfd = rt_open_in_root(rootfd, m->dest, O_PATH | O_DIRECTORY, e);
    if (dfd < 0) return -1;
    for (int i = 0; i < cg->n; i++)
        if ((!in_tree || !cg->dirs[i].name[0]) &&
            mount_hier(&cg->dirs[i], child_binds[i] - 1, dfd, in_tree, cgns, flags, e) < 0)
            return -1;
    snprintf(p, sizeof p, "/proc/self/fd/%d", dfd);
    if (!in_tree && (flags & MS_RDONLY) && mount(NULL, p, NULL, MS_REMOUNT | flags, "mode=755") < 0)
        return berr_errno(e, 500, "remount %s read-only", m->dest);
    return 0;
}
