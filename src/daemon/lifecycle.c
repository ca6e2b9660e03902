/* lifecycle.c: starting, stopping, killing, removing and restarting
 * containers, and following them while they run.
 *
 * Start: mount the overlay root (image layers + the container's upper dir),
 * write hostname/hosts/resolv.conf, build the OCI spec, launch a berth-shim
 * (which creates and starts the container), record the state. A waiter
 * thread per running container blocks in shim_wait; on exit it records the
 * exit code, unmounts the root, applies the restart policy and --rm.
 * After a daemon restart, lc_restore reattaches to shims that still run and
 * records the exits that happened meanwhile. */
#include "daemon/lifecycle.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <malloc.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <linux/mount.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "common/jsonutil.h"
#include "daemon/api.h"
#include "daemon/events.h"
#include "daemon/netns.h"
#include "daemon/ocispec.h"
#include "daemon/warm.h"
#include "runtime/runtime.h"
#include "shim/shim.h"

static char *shim_path;

void lc_init(const char *shim)
{
    shim_path = xstrdup(shim);
}

void lc_event(container *c, const char *action, json_t *extra)
{
    ctr_lock();
    const char *name = jstr(c->j, "Name");
    const json_t *cfg = json_object_get(c->j, "Config");
    json_t *attrs = json_pack("{s:s,s:s}", "image", jstr(cfg, "Image") ? jstr(cfg, "Image") : "",
                              "name", name ? name + 1 : "");
    const char *k;
    json_t *v;
    json_object_foreach(json_object_get(cfg, "Labels"), k, v) json_object_set(attrs, k, v);
    ctr_unlock();
    if (extra) json_object_update(attrs, extra), json_decref(extra);
    events_publish("container", action, c->id, attrs);
}

/* ---- root filesystem ---- */

static char *rootfs_path(const char *id)
{
    char *d = ctr_exec_dir(id);
    char *p = xasprintf("%s/rootfs", d);
    free(d);
    return p;
}

/* ---- the init layer ----
 * The files berthd binds into a root (/etc/hostname, /etc/hosts,
 * /etc/resolv.conf) need mount points there. Docker makes a layer of them
 * for each container; Berth makes one per image top layer, at the first
 * start of a container of it, under <data-root>/init/<chain id>, shared by
 * all of them (below each one's upper layer): no start makes a file in its
 * root for them, and diff and commit never see them. Its /etc has the
 * image's mode and owner. An image whose /etc or one of those files is a
 * link (only the mounted root can tell) has none: its containers' roots get
 * the mount points made in them, as before. */
static bool hex64(const char *s)
{
    for (int i = 0; i < 64; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f'))) return false;
    return !s[64];
}

static bool is_dir(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

static char *init_layer(char *const *layers, int n)
{
    static const char *const files[] = {"hostname", "hosts", "resolv.conf"};
    size_t l = n > 0 ? strlen(layers[n - 1]) : 0;
    if (l < 70 || strcmp(layers[n - 1] + l - 5, "/diff")) return NULL; /* layers/<chain>/diff */
    char hex[65];
    memcpy(hex, layers[n - 1] + l - 69, 64), hex[64] = 0;
    if (!hex64(hex)) return NULL;
    char *final = xasprintf("%s/init/%s", D.data_root, hex);
    if (is_dir(final)) return final;
    struct stat st;
    int r = ocispec_layers_lookup(layers, n, "etc", &st, NULL);
    bool ok = r == 0 || (r == 1 && S_ISDIR(st.st_mode));
    char *tmp = xasprintf("%s/init/.tmp-%s-%llx", D.data_root, hex, (unsigned long long)now_ns());
    char *etc = xasprintf("%s/etc", tmp);
    mode_t mode = r == 1 ? st.st_mode & 07777 : 0755;
    ok = ok && mkdir_p(tmp, 0755) == 0 && mkdir(etc, mode) == 0 && chmod(etc, mode) == 0 &&
         lchown(etc, r == 1 ? st.st_uid : 0, r == 1 ? st.st_gid : 0) == 0;
    for (size_t i = 0; ok && i < sizeof files / sizeof *files; i++) {
        char *in = xasprintf("etc/%s", files[i]), *p = xasprintf("%s/%s", etc, files[i]);
        int fr = ocispec_layers_lookup(layers, n, in, &st, NULL), fd = -1;
        if (fr < 0 ||
            (fr == 0 && (fd = open(p, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644)) < 0))
            ok = false;
        if (fd >= 0) close(fd);
        free(in), free(p);
    }
    if (ok && rename(tmp, final) < 0 && errno != EEXIST && errno != ENOTEMPTY) ok = false;
    rm_rf(tmp); /* what a lost race or a failure left */
    free(tmp), free(etc);
    if (ok && is_dir(final)) return final;
    free(final);
    return NULL;
}

/* Init layers whose top layer is gone from the store; at daemon start
 * (all) also the half-made ones of a crash. Kept roots of gone layers too. */
void lc_init_layers_gc(bool all)
{
    warm_gc();
    char *dir = xasprintf("%s/init", D.data_root);
    DIR *d = opendir(dir);
    struct dirent *de;
    while (d && (de = readdir(d))) {
        if (de->d_name[0] == '.' && (!all || strncmp(de->d_name, ".tmp-", 5))) continue;
        char *layer = xasprintf("%s/layers/%s", D.data_root, de->d_name);
        if (de->d_name[0] == '.' || !is_dir(layer)) {
            char *p = xasprintf("%s/%s", dir, de->d_name);
            rm_rf(p);
            free(p);
        }
        free(layer);
    }
    if (d) closedir(d);
    free(dir);
}

/* The lowerdir list: the init layer over the image's layers, top first. */
static char *lower_list(char *const *dirs, int n, const char *init)
{
    sbuf lower = {0};
    if (init) sbuf_printf(&lower, "%s:", init);
    for (int i = n - 1; i >= 0; i--) sbuf_printf(&lower, "%s%s", i == n - 1 ? "" : ":", dirs[i]);
    return lower.data;
}

char *lc_root_key(const char *image_id)
{
    char **dirs = NULL;
    berr e;
    int n = image_layer_dirs(D.images, image_id, &dirs, &e);
    if (n <= 0) {
        free(dirs);
        return NULL;
    }
    char *init = init_layer(dirs, n);
    char *key = init ? lower_list(dirs, n, init) : NULL; /* no init layer: files made in the root */
    free(init);
    for (int i = 0; i < n; i++) free(dirs[i]);
    free(dirs);
    return key;
}

/* A --rm root, mounted from its directory: upperdir=upper,workdir=work
 * (warm.h: the mount names no container), with a working directory of this
 * thread's own. */
static int mount_overlay_from(const char *dir, const char *target, const char *opts)
{
    static __thread bool own_fs;
    if (!own_fs && unshare(CLONE_FS) < 0) return -1;
    own_fs = true;
    int cwd = open(".", O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (cwd < 0) return -1;
    int r = chdir(dir);
    if (r == 0) r = mount("overlay", target, "overlay", 0, opts);
    int s = errno;
    if (fchdir(cwd) < 0) log_warn("back to the working directory: %s", strerror(errno));
    close(cwd);
    errno = s;
    return r;
}

/* A --rm container's writable layer is mounted "volatile": it is thrown
 * away at exit, so the sync of the whole upper file system that unmounting
 * an overlay otherwise does (1.5 ms and more here) buys nothing. Overlay
 * refuses to mount over a volatile work dir again until its marker is gone;
 * a --rm container is never kept past a crash, so the marker is removed.
 * Its root may be kept for the next one (warm.h): the layers and the upper
 * dir as it is now are noted. */
static int mount_layers(container *c, char *const *dirs, int n, const char *init, bool scratch,
                        berr *e)
{
    char *dir = ctr_dir(c->id), *target = rootfs_path(c->id);
    char *upper = xasprintf("%s/upper", dir), *work = xasprintf("%s/work", dir);
    char *empty = xasprintf("%s/empty", dir);
    mkdir_p(upper, 0755);
    mkdir_p(work, 0700);
    mkdir_p(target, 0755);
    if (n == 0) mkdir_p(empty, 0755);
    char *lower = n == 0 ? xstrdup(empty) : lower_list(dirs, n, init);
    char *opts = xasprintf("lowerdir=%s,upperdir=%s,workdir=%s", lower, upper, work);
    int rc = 0;
    umount2(target, MNT_DETACH); /* a stale mount from before a crash */
    char *vmark = xasprintf("%s/work/incompat/volatile", work);
    if (rmdir(vmark) == 0 || errno != ENOENT) { /* mounted volatile before */
        char *inc = xasprintf("%s/work/incompat", work);
        rmdir(inc);
        free(inc);
    }
    free(vmark);
    bool kept = false;
    if (scratch) {
        char *vopts = xasprintf("lowerdir=%s,upperdir=upper,workdir=work,volatile", lower);
        kept = mount_overlay_from(dir, target, vopts) == 0;
        free(vopts);
    }
    if (!kept && mount("overlay", target, "overlay", 0, opts) < 0)
        rc = berr_errno(e, 500, "mounting the container root (%zu bytes of options)", strlen(opts));
    free(c->root_key), c->root_key = NULL;
    if (kept && n > 0 && init && stat(upper, &c->upper_st) == 0) c->root_key = xstrdup(lower);
    free(lower);
    free(opts), free(dir), free(target), free(upper), free(work), free(empty);
    return rc;
}

static int mount_rootfs(container *c, const char *image_id, bool scratch, berr *e)
{
    char **dirs = NULL;
    int n = image_layer_dirs(D.images, image_id, &dirs, e);
    if (n < 0) return -1;
    char *init = init_layer(dirs, n);
    int rc = mount_layers(c, dirs, n, init, scratch, e);
    free(init);
    for (int i = 0; i < n; i++) free(dirs[i]);
    free(dirs);
    return rc;
}

/* The network namespace a run holds (netns.c), kept in the record as Docker
 * keeps NetworkSettings.SandboxKey. With c's lock held. */
static void set_sandbox_key(container *c, const char *path)
{
    json_object_set_new(c->j, "NetworkSettings",
                        json_pack("{s:s}", "SandboxKey", path ? path : ""));
}

static void release_sandbox(container *c)
{
    ctr_lock();
    char *p = xstrdup(jstr(json_object_get(c->j, "NetworkSettings"), "SandboxKey")
                          ? jstr(json_object_get(c->j, "NetworkSettings"), "SandboxKey")
                          : "");
    if (*p) set_sandbox_key(c, NULL);
    ctr_unlock();
    if (*p) netns_release(p);
    free(p);
}

/* The cgroup directories made with the container's directory, for its
 * first start (containers.c, runtime.h), taken before the shim is launched
 * (it gets their tree). berthd renames them into place
 * (place_premade_cgroups) while the shim parses the spec, which says they
 * will be there (mark_premade; also whether the /dev made ahead is the
 * one the spec asks for). */
static ctr_premade take_premade_cgroups(container *c)
{
    ctr_lock();
    ctr_premade pm = c->premade;
    c->premade = CTR_PREMADE_NONE;
    ctr_unlock();
    return pm;
}

static void mark_premade(const ctr_premade *pm, bool dev_sent, json_t *spec)
{
    bool dev = dev_sent && ctr_dev_tree_fits(spec);
    if (!pm->name[0] && !dev) return;
    json_t *ann = json_object_get(spec, "annotations");
    if (!json_is_object(ann)) json_object_set_new(spec, "annotations", ann = json_object());
    if (dev) json_object_set_new(ann, "org.berth.dev-made", json_string("true"));
    if (!pm->name[0]) return;
    json_object_set_new(ann, "org.berth.cgroup-made", json_string("true"));
    json_t *devs =
        json_object_get(json_object_get(json_object_get(spec, "linux"), "resources"), "devices");
    if (ctr_premade_devices_fit(pm, devs))
        json_object_set_new(ann, "org.berth.cgroup-devices-made", json_string("true"));
}

/* Before the shim looks them up ('c' on the go pipe); what could not be
 * placed goes (the shim makes those itself, and does not use the tree). */
static void place_premade_cgroups(ctr_premade *pm, const char *id)
{
    if (pm->name[0] && rt_cgroup_premade_place(CTR_CGROUP_PARENT, pm->name, id) < 0)
        rt_cgroup_premade_remove(CTR_CGROUP_PARENT, pm->name);
    pm->name[0] = 0;
}

/* A prepared namespace for the spec's new network namespace, when the pool has one. */
static void use_pooled_netns(container *c, json_t *spec)
{
    json_t *ns = json_object_get(json_object_get(spec, "linux"), "namespaces"), *v;
    size_t i;
    json_array_foreach(ns, i, v)
    {
        if (strcmp(jstr(v, "type") ? jstr(v, "type") : "", "network") || json_object_get(v, "path"))
            continue;
        char *p = netns_take();
        if (!p) return;
        json_object_set_new(v, "path", json_string(p));
        ctr_lock();
        set_sandbox_key(c, p);
        ctr_unlock();
        free(p);
        return;
    }
}

/* The run's network namespace and root mount. */
static void release_root(container *c)
{
    release_sandbox(c);
    lc_unmount(c->id);
}

static bool autoremove(container *c)
{
    ctr_lock();
    bool r = json_is_true(json_object_get(json_object_get(c->j, "HostConfig"), "AutoRemove"));
    ctr_unlock();
    return r;
}

int lc_rootfs_acquire(container *c, char **path, berr *e)
{
    pthread_mutex_lock(&c->op);
    ctr_lock();
    bool running = ctr_running(c);
    char *img = xstrdup(jstr(c->j, "Image"));
    ctr_unlock();
    *path = rootfs_path(c->id);
    int rc = 0;
    if (!running) {
        char *edir = ctr_exec_dir(c->id);
        mkdir_p(edir, 0700);
        free(edir);
        if (c->warm_fd >= 0) close(c->warm_fd), c->warm_fd = -1; /* a copy may write in it */
        rc = mount_rootfs(c, img, false, e);
    }
    free(img);
    if (rc < 0) {
        free(*path);
        *path = NULL;
        pthread_mutex_unlock(&c->op);
    }
    return rc;
}

void lc_rootfs_release(container *c)
{
    ctr_lock();
    bool running = ctr_running(c);
    ctr_unlock();
    if (!running) lc_unmount(c->id);
    pthread_mutex_unlock(&c->op);
}

void lc_unmount(const char *id)
{
    char *target = rootfs_path(id);
    if (umount2(target, MNT_DETACH) < 0 && errno != EINVAL && errno != ENOENT)
        log_warn("unmounting %s: %s", target, strerror(errno));
    free(target);
}

/* resolv.conf: the host's, or what --dns/--dns-search/--dns-option say. */
static char *resolv_conf(const json_t *hc)
{
    const json_t *dns = json_object_get(hc, "Dns"), *search = json_object_get(hc, "DnsSearch"),
                 *opts = json_object_get(hc, "DnsOptions");
    char *host = NULL;
    if (read_file("/etc/resolv.conf", &host, NULL) < 0) host = xstrdup("");
    if (!json_array_size(dns) && !json_array_size(search) && !json_array_size(opts)) return host;
    sbuf b = {0};
    size_t i;
    json_t *v;
    json_array_foreach(search, i, v)
        sbuf_printf(&b, "%s%s", i ? " " : "search ", json_string_value(v));
    if (json_array_size(search)) sbuf_adds(&b, "\n");
    if (json_array_size(dns)) {
        json_array_foreach(dns, i, v) sbuf_printf(&b, "nameserver %s\n", json_string_value(v));
    } else { /* keep the host's nameservers */
        char *save = NULL;
        for (char *l = strtok_r(host, "\n", &save); l; l = strtok_r(NULL, "\n", &save))
            if (str_starts(l, "nameserver")) sbuf_printf(&b, "%s\n", l);
    }
    json_array_foreach(opts, i, v)
        sbuf_printf(&b, "%s%s", i ? " " : "options ", json_string_value(v));
    if (json_array_size(opts)) sbuf_adds(&b, "\n");
    free(host);
    return sbuf_steal(&b);
}

static char *hosts_file(const json_t *hc, const char *hostname, bool host_net)
{
    sbuf b = {0};
    char *data = NULL;
    if (host_net && read_file("/etc/hosts", &data, NULL) == 0) {
        sbuf_adds(&b, data);
        free(data);
    } else {
        sbuf_printf(&b,
                    "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n"
                    "fe00::0\tip6-localnet\nff00::0\tip6-mcastprefix\nff02::1\t"
                    "ip6-allnodes\nff02::2\tip6-allrouters\n127.0.1.1\t%s\n",
                    hostname);
    }
    size_t i;
    json_t *v;
    json_array_foreach(json_object_get(hc, "ExtraHosts"), i, v)
    {
        const char *s = json_string_value(v); /* "name:ip" */
        const char *colon = s ? strchr(s, ':') : NULL;
        if (colon) sbuf_printf(&b, "%s\t%.*s\n", colon + 1, (int)(colon - s), s);
    }
    return sbuf_steal(&b);
}

static int write_etc_files(container *c, const char *dir)
{
    /* made at the first start; later starts keep them (as dockerd, which
     * writes them once and then only edits them for network changes) */
    char *probe = xasprintf("%s/resolv.conf", dir);
    bool have = access(probe, F_OK) == 0;
    free(probe);
    if (have) return 0;
    ctr_lock();
    const char *hn = jstr(json_object_get(c->j, "Config"), "Hostname");
    char *hostname = xstrdup(hn && *hn ? hn : c->id);
    json_t *hc = json_deep_copy(json_object_get(c->j, "HostConfig"));
    ctr_unlock();
    const char *nm = jstr(hc, "NetworkMode");
    bool host_net = nm && !strcmp(nm, "host");
    char *p = xasprintf("%s/hostname", dir);
    char *line = xasprintf("%s\n", hostname);
    int rc = write_file_replace(p, line, strlen(line), 0644);
    free(p), free(line);
    p = xasprintf("%s/hosts", dir);
    char *data = hosts_file(hc, hostname, host_net);
    rc |= write_file_replace(p, data, strlen(data), 0644);
    free(p), free(data);
    p = xasprintf("%s/resolv.conf", dir);
    data = resolv_conf(hc);
    rc |= write_file_replace(p, data, strlen(data), 0644);
    free(data), free(p), free(hostname);
    json_decref(hc);
    return rc;
}

/* Docker's HasBeenManuallyStopped: unless-stopped containers stay down. */
static void mark_stopped_by_user(container *c, bool yes)
{
    c->stopping = yes;
    json_object_set_new(c->j, "HasBeenManuallyStopped", json_boolean(yes));
}

/* ---- start ---- */

static void *waiter_main(void *p);

/* The start's record, when launch left it for the waiter to write: the
 * record as it is now, which is never older than the start (saves are
 * numbered, and only the waiter records the exit). */
static void write_start_snapshot(container *c)
{
    ctr_lock();
    uint64_t seq = 0;
    char *snap = c->start_unsaved ? ctr_snapshot(c, &seq) : NULL;
    c->start_unsaved = false;
    ctr_unlock();
    if (snap) ctr_write_snapshot(c, snap, seq);
}

static void start_waiter(container *c)
{
    ctr_lock();
    if (c->waiter) {
        ctr_unlock();
        return;
    }
    c->waiter = true;
    c->refs++;
    ctr_unlock();
    pthread_t t;
    pthread_attr_t a;
    pthread_attr_init(&a);
    pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
    pthread_attr_setstacksize(&a, 256u << 10);
    if (pthread_create(&t, &a, waiter_main, c) != 0) {
        write_start_snapshot(c);
        ctr_lock();
        c->waiter = false;
        ctr_unlock();
        ctr_put(c);
    }
    pthread_attr_destroy(&a);
}

/* A --rm run's waiter, made while the shim sets the container up (berthd
 * only waits for it then): the thread is created, and waits on the shim's socket,
 * before the start ends, so neither its creation nor its first turn on a
 * CPU is on the start's path, and an exit reaches it on a connection
 * already open. It touches the container only once the start has ended
 * well (go 1); a failed start (go -1) ends it. */
typedef struct exit_info {
    int code;
    bool oom, failed; /* failed: no exit status (e says why) */
    int64_t finished;
    berr e;
} exit_info;

typedef struct early_waiter {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int go; /* 0: the start goes on; 1: it ended well; -1: it failed */
    container *c;
    char *edir;
} early_waiter;

static void *waiter_after(container *c, char *edir, const exit_info *x);

static void wait_shim(const char *edir, int timeout_ms, exit_info *x, bool *to)
{
    *x = (exit_info){0};
    if (shim_wait(edir, timeout_ms, &x->code, &x->oom, &x->finished, to, &x->e) < 0)
        x->failed = true, x->code = 255;
}

/* How the start ended; block_ms: how long to wait for that (-1: until it does). */
static int early_go(early_waiter *w, int block_ms)
{
    struct timespec dl;
    clock_gettime(CLOCK_REALTIME, &dl);
    dl.tv_nsec += (long)block_ms * 1000000;
    if (dl.tv_nsec >= 1000000000) dl.tv_sec++, dl.tv_nsec -= 1000000000;
    pthread_mutex_lock(&w->mu);
    while (block_ms && !w->go)
        if (block_ms < 0)
            pthread_cond_wait(&w->cv, &w->mu);
        else if (pthread_cond_timedwait(&w->cv, &w->mu, &dl) != 0)
            break;
    int go = w->go;
    pthread_mutex_unlock(&w->mu);
    return go;
}

static void *early_main(void *p)
{
    early_waiter *w = p;
    exit_info x = {0};
    bool done = false; /* x is the run's end */
    int go = 0;
    /* while the start goes on, in short waits: the shim may not listen yet
     * (no socket, or made and not yet listening: refused), or may fail */
    while (go == 0) {
        bool to = true;
        if (shim_listening(w->edir)) wait_shim(w->edir, 200, &x, &to);
        done = !to && !x.failed;
        go = early_go(w, done ? -1 : to && shim_listening(w->edir) ? 0 : 1);
    }
    if (go > 0 && !done) wait_shim(w->edir, -1, &x, &(bool){false});
    container *c = w->c;
    char *edir = w->edir;
    pthread_cond_destroy(&w->cv);
    pthread_mutex_destroy(&w->mu);
    free(w);
    if (go < 0) {
        free(edir);
        return NULL;
    }
    return waiter_after(c, edir, &x);
}

static early_waiter *early_waiter_new(const char *edir)
{
    early_waiter *w = xcalloc(1, sizeof *w);
    pthread_mutex_init(&w->mu, NULL);
    pthread_cond_init(&w->cv, NULL);
    w->edir = xstrdup(edir);
    pthread_t t;
    pthread_attr_t a;
    pthread_attr_init(&a);
    pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
    pthread_attr_setstacksize(&a, 256u << 10);
    bool ok = pthread_create(&t, &a, early_main, w) == 0;
    pthread_attr_destroy(&a);
    if (ok) return w;
    pthread_cond_destroy(&w->cv);
    pthread_mutex_destroy(&w->mu);
    free(w->edir);
    free(w);
    return NULL;
}

/* Tells the early waiter how the start ended: it waits for c's exit (run)
 * or ends. */
static void early_waiter_end(early_waiter *w, container *c, bool run)
{
    if (!w) return;
    pthread_mutex_lock(&w->mu);
    w->c = c;
    w->go = run ? 1 : -1;
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
}

/* The waiter of the run just started: the early one when there is one. */
static void start_waiter_from(container *c, early_waiter *w)
{
    if (!w) {
        start_waiter(c);
        return;
    }
    ctr_lock();
    bool had = c->waiter;
    if (!had) c->waiter = true, c->refs++;
    ctr_unlock();
    early_waiter_end(w, c, !had);
}

static int64_t log_opt_size(const json_t *lc)
{
    const char *s = jstr(json_object_get(lc, "Config"), "max-size");
    return s ? parse_size(s) : 0;
}

/* With c's lock held: the state of a running container; returns it. */
static json_t *set_running(container *c, pid_t pid, bool started_now)
{
    json_t *st = ctr_state(c);
    ctr_set_status(c, "running");
    json_object_set_new(st, "Pid", json_integer(pid));
    json_object_set_new(st, "ExitCode", json_integer(0));
    if (started_now) {
        char ts[64];
        fmt_rfc3339nano(now_ns(), ts, sizeof ts);
        json_object_set_new(st, "StartedAt", json_string(ts));
    }
    return st;
}

/* The mount points of the /etc files, made in the mounted root here, off
 * the start's path (the shim is still reading the spec), rather than by
 * the container process: the first file made in /etc copies it up. Inside
 * the root only, never through a link; what exists is left alone. */
static void make_etc_mountpoints(const char *root)
{
    int rfd = open(root, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (rfd < 0) return;
    static const char *const files[] = {"etc/resolv.conf", "etc/hostname", "etc/hosts"};
    for (size_t i = 0; i < 3; i++) {
        struct open_how how = {.flags = O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
                               .mode = 0644,
                               .resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS};
        int fd = (int)syscall(SYS_openat2, rfd, files[i], &how, sizeof how);
        if (fd >= 0) close(fd);
    }
    close(rfd);
}

/* Where the record says its hostname, hosts and resolv.conf are: the
 * container's directory, or its exec directory for --rm (fill_record). */
static char *etc_files_dir(container *c)
{
    ctr_lock();
    const char *hp = jstr(c->j, "HostsPath");
    char *d = hp && strrchr(hp, '/') ? xstrndup(hp, (size_t)(strrchr(hp, '/') - hp)) : NULL;
    ctr_unlock();
    return d && *d ? d : (free(d), ctr_dir(c->id));
}

/* A run's root: the overlay with the init layer, or without one the /etc
 * mount points made in it. */
static int mount_root(container *c, char *const *layers, int n, berr *e)
{
    char *init = init_layer(layers, n);
    int rc = mount_layers(c, layers, n, init, autoremove(c), e);
    trace_mark("start root mounted");
    if (rc == 0 && !init) {
        char *root = rootfs_path(c->id);
        make_etc_mountpoints(root);
        free(root);
    }
    free(init);
    return rc;
}

/* The run's /etc files and its mounted root. */
static int prepare_root(container *c, const char *etcd, char *const *layers, int n, berr *e)
{
    if (write_etc_files(c, etcd) < 0) return berr_errno(e, 500, "writing /etc files");
    return mount_root(c, layers, n, e);
}

/* The root mounted by a thread of its own while the spec is built and
 * written (the mount is the dearest step of berthd's part of a start). */
typedef struct root_job {
    container *c;
    char *const *layers;
    int n, rc;
    bool started;
    berr e;
    pthread_t t;
} root_job;

static void *root_job_main(void *p)
{
    root_job *j = p;
    j->rc = mount_root(j->c, j->layers, j->n, &j->e);
    return NULL;
}

static void root_job_start(root_job *j, container *c, char *const *layers, int n)
{
    *j = (root_job){.c = c, .layers = layers, .n = n, .rc = -1};
    pthread_attr_t a;
    pthread_attr_init(&a);
    pthread_attr_setstacksize(&a, 128u << 10);
    j->started = pthread_create(&j->t, &a, root_job_main, j) == 0;
    pthread_attr_destroy(&a);
    if (!j->started) root_job_main(j); /* no thread: here and now */
}

/* 0 once the root is mounted; -1 with *e when it could not be. */
static int root_job_end(root_job *j, bool *mounted, berr *e)
{
    if (j->started) pthread_join(j->t, NULL), j->started = false;
    if (j->rc == 0) *mounted = true;
    if (j->rc < 0 && e) *e = j->e;
    return j->rc;
}

/* Nothing written in the container's root yet (its first start)? */
static bool upper_empty(const char *dir)
{
    char *p = xasprintf("%s/upper", dir);
    int r = dir_only(p, NULL);
    free(p);
    return r < 0 ? errno == ENOENT : r == 1;
}

static int launch(container *c, bool by_policy, early_waiter **ew, berr *e)
{
    ctr_lock();
    json_t *snap = json_deep_copy(c->j);
    ctr_unlock();
    const char *image_id = jstr(snap, "Image");
    char *edir = ctr_exec_dir(c->id), *dir = ctr_dir(c->id), *root = rootfs_path(c->id);
    char *etcd = etc_files_dir(c);
    char *cg = xasprintf(CTR_CGROUP_PARENT "/%s", c->id);
    char *bundle_cfg = xasprintf("%s/config.json", edir);
    char *logp = xasprintf("%s/%s-json.log", dir, c->id);
    char *rtroot = xasprintf("%s/runtime", D.exec_root);
    json_t *spec = NULL, *user = NULL;
    char **layers = NULL;
    int nlayers = 0;
    bool mounted = false;
    root_job job = {.rc = -1};
    int rc = -1, go[2] = {-1, -1};
    ctr_premade premade = CTR_PREMADE_NONE; /* taken, until placed */
    shim_pending sp = {-1, -1};
    bool launched = false; /* begun, not ended: abandon on failure */
    int64_t t0 = now_ns();
#define PHASE(what)                                                                                \
    trace_mark("start %s", what),                                                                  \
        log_debug("start %.12s: +%lldus %s", c->id, (long long)((now_ns() - t0) / 1000), what)
    rm_rf(edir);
    if (mkdir_p(edir, 0700) < 0) {
        berr_errno(e, 500, "creating %s", edir);
        goto out;
    }
    /* the shim starts first and sets itself up (fork, socket, log) while
     * the bundle is prepared; the go pipe then lets it read the spec */
    const json_t *cfg = json_object_get(snap, "Config");
    const json_t *lcfg = json_object_get(json_object_get(snap, "HostConfig"), "LogConfig");
    const char *mf = jstr(json_object_get(lcfg, "Config"), "max-file");
    if (pipe2(go, O_CLOEXEC) < 0) {
        berr_errno(e, 500, "pipe");
        goto out;
    }
    shim_launch_opts o = {.shim_path = shim_path,
                          .id = c->id,
                          .bundle = edir,
                          .state_dir = edir,
                          .runtime_root = rtroot,
                          .log_path = logp,
                          .log_max_size = log_opt_size(lcfg),
                          .log_max_file = mf ? atoi(mf) : 1,
                          .open_stdin = json_is_true(json_object_get(cfg, "OpenStdin")),
                          /* as dockerd: a tty's stdin is never closed by a client going away */
                          .stdin_once = json_is_true(json_object_get(cfg, "StdinOnce")) &&
                                        !json_is_true(json_object_get(cfg, "Tty")),
                          .go_fd = go[0]};
    if (o.log_max_file < 1) o.log_max_file = 1;
    premade = take_premade_cgroups(c);
    o.cgroup_tree = premade.tree + 1;
    o.dev_tree = premade.dev_tree + 1;
    pid_t pid = 0;
    ctr_lock();
    bool pa = c->pa_waiting && c->pa_fd < 0;
    bool pin = c->pa_in, pout = c->pa_out, perr = c->pa_err;
    ctr_unlock();
    int afd = -1;
    int lr = shim_launch_begin(&o, pa, pin, pout, perr, &sp, e);
    if (premade.tree >= 0) close(premade.tree), premade.tree = -1; /* the shim's now */
    bool dev_sent = lr == 0 && premade.dev_tree >= 0;
    if (premade.dev_tree >= 0) close(premade.dev_tree), premade.dev_tree = -1;
    if (lr < 0) goto out;
    launched = true;
    close(go[0]), go[0] = -1;
    PHASE("shim forked");
    /* The spec goes first when the user can be resolved from the layers:
     * the shim reads it while the root is mounted */
    if ((nlayers = image_layer_dirs(D.images, image_id, &layers, e)) < 0) goto out;
    bool undecided = true;
    if (upper_empty(dir)) {
        user = ocispec_user_layers(layers, nlayers, jstr(cfg, "User"),
                                   json_object_get(json_object_get(snap, "HostConfig"), "GroupAdd"),
                                   &undecided, e);
        if (!user && !undecided) goto out;
    }
    mkdir_p(root, 0755);   /* the runtime resolves root.path when it reads the spec */
    if (c->warm_fd >= 0) { /* a kept --rm root (warm.h): attached, nothing mounted */
        mounted =
            syscall(SYS_move_mount, c->warm_fd, "", AT_FDCWD, root, MOVE_MOUNT_F_EMPTY_PATH) == 0;
        close(c->warm_fd), c->warm_fd = -1;
        if (!mounted) free(c->root_key), c->root_key = NULL;
    }
    bool etc_written = undecided && !mounted;
    if (etc_written && prepare_root(c, etcd, layers, nlayers, e) < 0) goto out;
    mounted = mounted || undecided;
    if (!mounted) root_job_start(&job, c, layers, nlayers);
    spec = ocispec_build(snap, root, etcd, cg, user, e);
    user = NULL;
    if (!spec) goto out_umount;
    use_pooled_netns(c, spec);
    mark_premade(&premade, dev_sent, spec);
    PHASE("spec built");
    char *s = ocispec_dumps(spec);
    int w = s ? write_file_replace(bundle_cfg, s, strlen(s), 0600) : (errno = ENOMEM, -1);
    free(s);
    if (w < 0) {
        berr_errno(e, 500, "writing %s", bundle_cfg);
        goto out_umount;
    }
    PHASE("spec written");
    bool sent = write(go[1], "g", 1) == 1;
    if (sent) place_premade_cgroups(&premade, c->id);
    sent = sent && write(go[1], "c", 1) == 1;
    if (sent && !etc_written) {
        if (write_etc_files(c, etcd) < 0) {
            berr_errno(e, 500, "writing /etc files");
            goto out_umount;
        }
        PHASE("etc files");
    }
    if (sent && !mounted && root_job_end(&job, &mounted, e) < 0) goto out_umount;
    if (sent && write(go[1], "r", 1) != 1) log_debug("start %.12s: the shim left", c->id);
    close(go[1]), go[1] = -1;
    launched = false;
    /* --rm only: others' waiter writes their start's record first thing */
    if (json_is_true(json_object_get(json_object_get(snap, "HostConfig"), "AutoRemove")))
        *ew = early_waiter_new(edir);
    /* a shim that failed before its go has said why on its ready pipe */
    if (shim_launch_end(&sp, &pid, pa ? &afd : NULL, e) < 0) goto out_umount;
    PHASE("shim launched");
    if (pa) {
        ctr_lock();
        c->pa_fd = afd;
        ctr_unlock();
    }
    ctr_lock();
    json_t *st = set_running(c, pid, true);
    json_object_set_new(st, "OOMKilled", json_false());
    json_object_set_new(st, "Error", json_string(""));
    json_object_set_new(st, "FinishedAt", json_string("0001-01-01T00:00:00Z"));
    json_object_set_new(c->j, "LogPath", json_string(logp));
    if (!by_policy) mark_stopped_by_user(c, false);
    /* written by the waiter, off the 204's path; never for --rm, whose
     * record is gone at its end. A berthd killed before that finds the
     * shim alive and adopts the run, or its exit.json and records the run
     * (lc_restore) */
    c->start_unsaved =
        !json_is_true(json_object_get(json_object_get(c->j, "HostConfig"), "AutoRemove"));
    ctr_unlock();
    PHASE("state saved");
    rc = 0;
    goto out;
out_umount:
    root_job_end(&job, &mounted, NULL);
    release_sandbox(c);
    if (go[1] >= 0) close(go[1]), go[1] = -1; /* a shim still waiting for its go exits */
    if (launched) shim_launch_abandon(&sp), launched = false;
    if (mounted) lc_unmount(c->id);
out:
    ctr_premade_drop(&premade); /* taken, never placed */
    if (job.started && root_job_end(&job, &mounted, NULL) == 0) lc_unmount(c->id);
    if (go[0] >= 0) close(go[0]);
    if (go[1] >= 0) close(go[1]);
    if (launched) shim_launch_abandon(&sp);
    for (int i = 0; i < nlayers; i++) free(layers[i]);
    free(layers);
    json_decref(user);
    json_decref(spec);
    json_decref(snap);
    free(edir), free(dir), free(root), free(cg), free(bundle_cfg), free(logp), free(rtroot);
    free(etcd);
    return rc;
}

/* Records a failed start as dockerd does: exit code 127/126/128 and Error. */
static void record_start_error(container *c, const berr *e)
{
    int code = e->status == 404 ? 127 : e->status == 403 ? 126 : 128;
    ctr_lock();
    json_t *st = ctr_state(c);
    ctr_set_status(c, "created");
    if (strcmp(jstr(st, "StartedAt") ? jstr(st, "StartedAt") : "", "0001-01-01T00:00:00Z"))
        ctr_set_status(c, "exited");
    json_object_set_new(st, "ExitCode", json_integer(code));
    json_object_set_new(st, "Error", json_string(e->msg));
    c->start_errors++;
    pthread_cond_broadcast(&c->changed);
    ctr_save(c);
    ctr_unlock();
}

/* With c->op held. A start by the restart policy does not clear a user's
 * stop (HasBeenManuallyStopped). */
static int start_locked(container *c, bool by_policy, berr *e)
{
    ctr_lock();
    /* the previous run's waiter may still be waiting for its shim to finish
     * cleaning up (cgroups): let it, so runs never overlap */
    for (int i = 0; i < 150 && c->waiter && !ctr_running(c) && !c->removed; i++) {
        struct timespec dl;
        clock_gettime(CLOCK_REALTIME, &dl);
        dl.tv_nsec += 100000000;
        if (dl.tv_nsec >= 1000000000) dl.tv_sec++, dl.tv_nsec -= 1000000000;
        pthread_cond_timedwait(&c->changed, &ctr_mutex, &dl);
    }
    bool running = ctr_running(c), removed = c->removed;
    ctr_unlock();
    if (removed) return berr_set(e, 404, "No such container: %s", c->id);
    if (running) return 1; /* 304 */
    early_waiter *ew = NULL;
    int rc = launch(c, by_policy, &ew, e);
    if (rc == 0) {
        start_waiter_from(c, ew);
    } else {
        early_waiter_end(ew, NULL, false);
        record_start_error(c, e);
    }
    return rc;
}

int lc_start(container *c, berr *e)
{
    pthread_mutex_lock(&c->op);
    int rc = start_locked(c, false, e);
    ctr_lock();
    bool removed = c->removed;
    ctr_unlock();
    pthread_mutex_unlock(&c->op);
    if (rc == 0) lc_event(c, "start", NULL);
    if (rc == 0) health_start(c);
    if (rc < 0 && !removed) {
        ctr_lock();
        bool autorm =
            json_is_true(json_object_get(json_object_get(c->j, "HostConfig"), "AutoRemove"));
        ctr_unlock();
        berr re;
        if (autorm) lc_remove(c, true, false, &re); /* as dockerd: --rm also on a failed start */
    }
    return rc;
}

/* ---- exit handling ---- */

static void record_exit(container *c, int code, bool oom, int64_t finished, bool save)
{
    char ts[64];
    fmt_rfc3339nano(finished ? finished : now_ns(), ts, sizeof ts);
    ctr_lock();
    json_t *st = ctr_state(c);
    ctr_set_status(c, "exited");
    json_object_set_new(st, "Pid", json_integer(0));
    json_object_set_new(st, "ExitCode", json_integer(code));
    json_object_set_new(st, "OOMKilled", json_boolean(oom));
    json_object_set_new(st, "FinishedAt", json_string(ts));
    uint64_t seq = 0;
    char *snap = save && !c->removed ? ctr_snapshot(c, &seq) : NULL;
    ctr_unlock();
    if (snap) ctr_write_snapshot(c, snap, seq); /* waiters go on meanwhile */
}

/* Docker's policy decision; *delay_ms is the backoff. */
static bool should_restart(container *c, int code, int64_t ran_ms, int64_t *delay_ms)
{
    ctr_lock();
    const json_t *rp = json_object_get(json_object_get(c->j, "HostConfig"), "RestartPolicy");
    const char *name = jstr(rp, "Name");
    int max = (int)json_integer_value(json_object_get(rp, "MaximumRetryCount"));
    int count = (int)json_integer_value(json_object_get(c->j, "RestartCount"));
    bool stopping = c->stopping, removed = c->removed;
    ctr_unlock();
    if (stopping || removed || !name || !*name || !strcmp(name, "no")) return false;
    bool yes = !strcmp(name, "always") || !strcmp(name, "unless-stopped") ||
               (!strcmp(name, "on-failure") && code != 0 && (max == 0 || count < max));
    if (!yes) return false;
    int64_t d = 100;
    for (int i = 0; i < count && d < 60000; i++) d *= 2;
    if (ran_ms > 10000) d = 100; /* ran long enough: reset the backoff */
    *delay_ms = d > 60000 ? 60000 : d;
    return true;
}

static int64_t started_ms(container *c)
{
    ctr_lock();
    int64_t t =
        parse_rfc3339(jstr(ctr_state(c), "StartedAt") ? jstr(ctr_state(c), "StartedAt") : "");
    ctr_unlock();
    return t > 0 ? (now_ns() - t) / 1000000 : 0;
}

/* Records the exit and releases the root; runs before the waiter flag is
 * cleared, so a following start never races this cleanup. */
static void finish_exit(container *c, int code, bool oom, int64_t finished)
{
    bool autorm = autoremove(c);
    record_exit(c, code, oom, finished, !autorm);
    /* after the waiters woke: an unmount waits for an RCU grace period (ms
     * here); a --rm container's removal does both */
    if (!autorm) release_root(c);
    char buf[16];
    snprintf(buf, sizeof buf, "%d", code);
    lc_event(c, "die", json_pack("{s:s}", "exitCode", buf));
}

static int start_locked(container *c, bool by_policy, berr *e);
static int remove_container(container *c, bool force, bool bg, berr *e);

/* Restart policy and --rm, once the container is fully down. */
static void apply_policy(container *c, int code, int64_t ran)
{
    int64_t delay = 0;
    if (should_restart(c, code, ran, &delay)) {
        ctr_lock();
        ctr_set_status(c, "restarting");
        json_object_set_new(
            c->j, "RestartCount",
            json_integer(json_integer_value(json_object_get(c->j, "RestartCount")) + 1));
        ctr_save(c);
        ctr_unlock();
        struct timespec ts = {delay / 1000, (delay % 1000) * 1000000};
        nanosleep(&ts, NULL);
        berr e;
        pthread_mutex_lock(&c->op);
        ctr_lock();
        bool go = !c->stopping && !c->removed && !strcmp(ctr_status(c), "restarting");
        if (!go && !c->removed && !strcmp(ctr_status(c), "restarting"))
            ctr_set_status(c, "exited"), ctr_save(c);
        ctr_unlock();
        int rc = go ? start_locked(c, true, &e) : 0;
        pthread_mutex_unlock(&c->op);
        if (go && rc == 0)
            lc_event(c, "start", NULL), health_start(c);
        else if (go && rc < 0)
            log_warn("restarting %.12s: %s", c->id, e.msg);
        return;
    }
    ctr_lock();
    bool autorm = json_is_true(json_object_get(json_object_get(c->j, "HostConfig"), "AutoRemove"));
    bool removed = c->removed;
    ctr_unlock();
    if (autorm && !removed) {
        berr e;
        remove_container(c, true, true, &e);
    }
}

static void *waiter_main(void *p)
{
    container *c = p;
    write_start_snapshot(c);
    char *edir = ctr_exec_dir(c->id);
    exit_info x;
    bool to;
    wait_shim(edir, -1, &x, &to);
    return waiter_after(c, edir, &x);
}

/* A run's end, once its shim reported it (or is gone); frees edir. */
static void *waiter_after(container *c, char *edir, const exit_info *x)
{
    if (x->failed) log_warn("waiting for %.12s: %s", c->id, x->e.msg);
    int64_t t0 = now_ns();
#define WPHASE(what)                                                                               \
    trace_mark("exit %s", what),                                                                   \
        log_debug("exit %.12s: +%lldus %s", c->id, (long long)((now_ns() - t0) / 1000), what)
    WPHASE("wait returned");
    int64_t ran = started_ms(c);
    finish_exit(c, x->code, x->oom, x->finished); /* waiters see the exit now */
    WPHASE("exit recorded");
    ctr_lock();
    bool autorm = json_is_true(json_object_get(json_object_get(c->j, "HostConfig"), "AutoRemove"));
    ctr_unlock();
    if (!autorm) shim_wait_gone(edir, 10000, NULL); /* a restart must not race its cgroup cleanup */
    ctr_lock();
    c->waiter = false;
    pthread_cond_broadcast(&c->changed);
    ctr_unlock();
    apply_policy(c, x->code, ran); /* --rm removes here, off the shim's cleanup */
    WPHASE("policy applied");
    if (autorm) shim_wait_gone(edir, 10000, NULL);
    free(edir);
    ctr_put(c);
    malloc_trim(0); /* a run's garbage, once it is over (off every request's path) */
    return NULL;
}

/* ---- stop, kill, remove ---- */

int lc_kill(container *c, int sig, berr *e)
{
    ctr_lock();
    bool running = ctr_running(c);
    if (running && (sig == SIGKILL || sig == SIGTERM)) mark_stopped_by_user(c, true), ctr_save(c);
    ctr_unlock();
    if (!running) return berr_set(e, 409, "Container %s is not running", c->id);
    char *edir = ctr_exec_dir(c->id);
    int rc = shim_kill(edir, sig, false, e);
    free(edir);
    if (rc == 0) {
        char buf[16];
        snprintf(buf, sizeof buf, "%d", sig);
        lc_event(c, "kill", json_pack("{s:s}", "signal", buf));
    }
    return rc;
}

/* Waits until the container is not running (bounded by timeout_ms; -1 forever). */
bool lc_wait_stopped(container *c, int timeout_ms)
{
    struct timespec dl;
    clock_gettime(CLOCK_REALTIME, &dl);
    int64_t ns = (int64_t)dl.tv_sec * 1000000000LL + dl.tv_nsec + (int64_t)timeout_ms * 1000000LL;
    dl.tv_sec = ns / 1000000000LL;
    dl.tv_nsec = ns % 1000000000LL;
    ctr_lock();
    while (ctr_running(c) || c->waiter) {
        if (timeout_ms < 0)
            pthread_cond_wait(&c->changed, &ctr_mutex);
        else if (pthread_cond_timedwait(&c->changed, &ctr_mutex, &dl) != 0)
            break;
    }
    bool stopped = !ctr_running(c) && !c->waiter;
    ctr_unlock();
    return stopped;
}

int lc_stop(container *c, int timeout_s, const char *signame, berr *e)
{
    pthread_mutex_lock(&c->op);
    ctr_lock();
    bool running = ctr_running(c), restarting = !strcmp(ctr_status(c), "restarting");
    const json_t *cfg = json_object_get(c->j, "Config");
    char *sigstr = xstrdup(signame                   ? signame
                           : jstr(cfg, "StopSignal") ? jstr(cfg, "StopSignal")
                                                     : "SIGTERM");
    if (timeout_s < 0 && json_object_get(cfg, "StopTimeout"))
        timeout_s = (int)json_integer_value(json_object_get(cfg, "StopTimeout"));
    mark_stopped_by_user(c, true);
    if (restarting) ctr_set_status(c, "exited"); /* cancels the pending restart */
    ctr_save(c);
    ctr_unlock();
    if (timeout_s < 0) timeout_s = 10;
    int sig = lc_parse_signal(sigstr);
    free(sigstr);
    if (sig <= 0) sig = SIGTERM;
    if (!running) {
        pthread_mutex_unlock(&c->op);
        return restarting ? 0 : 1; /* 304 when it was not running */
    }
    berr ke;
    if (lc_kill(c, sig, &ke) == 0 && lc_wait_stopped(c, timeout_s * 1000)) goto done;
    if (lc_kill(c, SIGKILL, &ke) == 0 && !lc_wait_stopped(c, 30000)) {
        pthread_mutex_unlock(&c->op);
        return berr_set(e, 500, "container %s did not stop after SIGKILL", c->id);
    }
    lc_wait_stopped(c, 30000);
done:
    pthread_mutex_unlock(&c->op);
    lc_event(c, "stop", NULL);
    return 0;
}

/* --rm's removal by the waiter: once the container is gone from the API
 * (wait answered, destroy sent), the unmount and the files' removal run
 * when a CPU would idle, off the next container's start. */
static void release_root_bg(container *c)
{
    lc_event(c, "destroy", NULL);
    thread_background();
    release_sandbox(c);
    char *root = rootfs_path(c->id), *dir = ctr_dir(c->id);
    bool kept = c->root_key && warm_give(c->root_key, root, dir, &c->upper_st);
    free(root), free(dir);
    if (!kept) lc_unmount(c->id);
    /* the exec dir goes next: the shim still writes there (exit.json, its
     * socket and pid file) until it has gone */
    char *edir = ctr_exec_dir(c->id);
    shim_wait_gone(edir, 10000, NULL);
    free(edir);
}

static int remove_container(container *c, bool force, bool bg, berr *e)
{
    ctr_lock();
    bool running = ctr_running(c);
    bool paused = !strcmp(ctr_status(c), "paused");
    ctr_unlock();
    if (running && !force) {
        if (paused)
            return berr_set(e, 409,
                            "You cannot remove a paused container %s. Unpause and then "
                            "stop the container before attempting removal or force remove",
                            c->id);
        return berr_set(e, 409,
                        "You cannot remove a running container %s. Stop the container "
                        "before attempting removal or force remove",
                        c->id);
    }
    if (running) {
        char *edir = ctr_exec_dir(c->id);
        ctr_lock();
        c->stopping = true;
        ctr_unlock();
        if (paused) lc_pause(c, false, NULL);
        shim_kill(edir, SIGKILL, true, NULL);
        free(edir);
        if (!lc_wait_stopped(c, 30000))
            return berr_set(e, 500, "could not kill running container %s, cannot remove", c->id);
    }
    pthread_mutex_lock(&c->op);
    ctr_lock();
    bool gone = c->removed;
    ctr_unlock();
    if (!gone) {
        int64_t t0 = now_ns();
        ctr_remove(c, bg ? release_root_bg : release_root);
        log_debug("rm %.12s: +%lldus removed", c->id, (long long)((now_ns() - t0) / 1000));
    }
    pthread_mutex_unlock(&c->op);
    if (!gone && !bg) lc_event(c, "destroy", NULL);
    return 0;
}

int lc_remove(container *c, bool force, bool volumes, berr *e)
{
    (void)volumes;
    return remove_container(c, force, false, e);
}

int lc_pause(container *c, bool pause, berr *e)
{
    ctr_lock();
    const char *s = ctr_status(c);
    bool running = ctr_running(c), paused = !strcmp(s, "paused");
    ctr_unlock();
    if (!running) return berr_set(e, 409, "Container %s is not running", c->id);
    if (pause && paused) return berr_set(e, 409, "Container %s is already paused", c->id);
    if (!pause && !paused) return berr_set(e, 409, "Container %s is not paused", c->id);
    char *rtroot = xasprintf("%s/runtime", D.exec_root);
    rt_container *rc = NULL;
    int r = rt_container_load(rtroot, c->id, &rc, e);
    free(rtroot);
    if (r == 0) r = pause ? rt_pause(rc, e) : rt_resume(rc, e);
    rt_container_free(rc);
    if (r < 0) return -1;
    ctr_lock();
    ctr_set_status(c, pause ? "paused" : "running");
    ctr_save(c);
    ctr_unlock();
    lc_event(c, pause ? "pause" : "unpause", NULL);
    return 0;
}

/* ---- restore after a daemon restart ---- */

bool lc_any_running(void)
{
    size_t n;
    container **all = ctr_all(&n);
    bool any = false;
    for (size_t i = 0; i < n; i++) {
        char *edir = ctr_exec_dir(all[i]->id);
        any = any || shim_alive(edir);
        free(edir);
        ctr_put(all[i]);
    }
    free(all);
    return any;
}

void lc_netns_release_stale(void)
{
    size_t n;
    container **all = ctr_all(&n);
    const char **keep = xcalloc(n + 1, sizeof *keep);
    char **own = xcalloc(n + 1, sizeof *own);
    size_t k = 0;
    ctr_lock();
    for (size_t i = 0; i < n; i++) {
        const char *sk = jstr(json_object_get(all[i]->j, "NetworkSettings"), "SandboxKey");
        bool running = ctr_running(all[i]) || !strcmp(ctr_status(all[i]), "restarting");
        if (running && sk && *sk) keep[k] = own[k] = xstrdup(sk), k++;
    }
    ctr_unlock();
    netns_release_stale(keep, k);
    for (size_t i = 0; i < k; i++) free(own[i]);
    free(own), free(keep);
    for (size_t i = 0; i < n; i++) ctr_put(all[i]);
    free(all);
}

/* A shim runs for c but its record does not say so: berthd was killed
 * between the start and the waiter's write of it. */
static void adopt_run(container *c, const char *edir)
{
    pid_t pid = 0;
    bool running = false;
    berr e;
    if (shim_state(edir, &pid, &running, &e) < 0 || !running) return;
    ctr_lock();
    json_t *st = ctr_state(c);
    set_running(
        c, pid,
        !strcmp(jstr(st, "StartedAt") ? jstr(st, "StartedAt") : "", "0001-01-01T00:00:00Z"));
    ctr_save(c);
    ctr_unlock();
    log_info("container %.12s: running under its shim, recorded now", c->id);
}

/* A run whose start was never written (--rm never writes it; or berthd
 * was killed before the waiter did) and that ended while berthd was down:
 * the record is "created", or "exited" by an earlier run, next to a newer
 * exit.json. */
static bool ran_unrecorded(container *c, const char *edir)
{
    int64_t fin = 0;
    if (shim_read_exit(edir, NULL, NULL, &fin, NULL, 0) < 0) return false;
    ctr_lock();
    const json_t *st = ctr_state(c);
    bool created = !strcmp(ctr_status(c), "created");
    bool exited = !strcmp(ctr_status(c), "exited");
    int64_t recorded = parse_rfc3339(jstr(st, "FinishedAt") ? jstr(st, "FinishedAt") : "");
    ctr_unlock();
    return created || (exited && fin > recorded);
}

void lc_restore(void)
{
    size_t n;
    container **all = ctr_all(&n);
    for (size_t i = 0; i < n; i++) {
        container *c = all[i];
        ctr_lock();
        bool running = ctr_running(c) || !strcmp(ctr_status(c), "restarting");
        ctr_unlock();
        char *edir = ctr_exec_dir(c->id);
        bool alive = shim_alive(edir);
        if (!running && alive) adopt_run(c, edir); /* killed before its start was written */
        bool ran = false;                          /* and it has exited since */
        if (!running && !alive && ran_unrecorded(c, edir)) running = ran = true;
        if (alive) {
            start_waiter(c); /* still running: follow it again */
            health_start(c);
        } else if (running) {
            int code = 255;
            bool oom = false;
            int64_t fin = 0;
            char err[256] = "";
            shim_read_exit(edir, &code, &oom, &fin, err, sizeof err);
            int64_t ran_ms = ran ? 0 : started_ms(c);
            finish_exit(c, code, oom, fin);
            apply_policy(c, code, ran_ms);
        } else {
            ctr_lock();
            const json_t *rp =
                json_object_get(json_object_get(c->j, "HostConfig"), "RestartPolicy");
            const char *pol = jstr(rp, "Name");
            bool manual = json_is_true(json_object_get(c->j, "HasBeenManuallyStopped"));
            bool started =
                strcmp(jstr(ctr_state(c), "StartedAt") ? jstr(ctr_state(c), "StartedAt") : "0001",
                       "0001-01-01T00:00:00Z");
            bool again = pol && started && !manual &&
                         (!strcmp(pol, "always") || !strcmp(pol, "unless-stopped"));
            ctr_unlock();
            berr e;
            if (again && lc_start(c, &e) < 0) log_warn("restarting %.12s: %s", c->id, e.msg);
        }
        free(edir);
        ctr_put(c);
    }
    free(all);
}

/* The running container's process spec (from its bundle's config.json), for
 * exec and health probes to start from; NULL when it is not running. */
json_t *lc_spec_process(const char *id)
{
    char *edir = ctr_exec_dir(id), *p = xasprintf("%s/config.json", edir);
    json_t *spec = json_load_path(p, NULL);
    free(p), free(edir);
    json_t *proc = spec ? json_deep_copy(json_object_get(spec, "process")) : NULL;
    json_decref(spec);
    return proc;
}

/* ---- signals ---- */

int lc_parse_signal(const char *s)
{
    static const struct {
        const char *n;
        int v;
    } sigs[] = {{"HUP", SIGHUP},       {"INT", SIGINT},   {"QUIT", SIGQUIT},   {"ILL", SIGILL},
                {"TRAP", SIGTRAP},     {"ABRT", SIGABRT}, {"BUS", SIGBUS},     {"FPE", SIGFPE},
                {"KILL", SIGKILL},     {"USR1", SIGUSR1}, {"SEGV", SIGSEGV},   {"USR2", SIGUSR2},
                {"PIPE", SIGPIPE},     {"ALRM", SIGALRM}, {"TERM", SIGTERM},   {"CHLD", SIGCHLD},
                {"CONT", SIGCONT},     {"STOP", SIGSTOP}, {"TSTP", SIGTSTP},   {"TTIN", SIGTTIN},
                {"TTOU", SIGTTOU},     {"URG", SIGURG},   {"XCPU", SIGXCPU},   {"XFSZ", SIGXFSZ},
                {"VTALRM", SIGVTALRM}, {"PROF", SIGPROF}, {"WINCH", SIGWINCH}, {"IO", SIGIO},
                {"PWR", SIGPWR},       {"SYS", SIGSYS}};
    if (!s || !*s) return -1;
    char *end;
    long v = strtol(s, &end, 10);
    if (!*end) return v > 0 && v < 65 ? (int)v : -1;
    if (!strncasecmp(s, "SIG", 3)) s += 3;
    for (size_t i = 0; i < sizeof sigs / sizeof *sigs; i++)
        if (!strcasecmp(s, sigs[i].n)) return sigs[i].v;
    if (!strncasecmp(s, "RTMIN", 5)) {
        long off = s[5] == '+' ? strtol(s + 6, NULL, 10) : 0;
        return SIGRTMIN + (int)off;
    }
    return -1;
}
