/* containers.c: the container table: records, names, persistence; see
 * containers.h. */
#include "daemon/containers.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/jsonutil.h"
#include "daemon/ocispec.h"
#include "daemon/warm.h"
#include "runtime/runtime.h"

pthread_mutex_t ctr_mutex = PTHREAD_MUTEX_INITIALIZER;
static container **tab;
static size_t ntab, captab;
static char *data_root, *exec_root;

void ctr_lock(void)
{
    pthread_mutex_lock(&ctr_mutex);
}
void ctr_unlock(void)
{
    pthread_mutex_unlock(&ctr_mutex);
}

char *ctr_dir(const char *id)
{
    return xasprintf("%s/containers/%s", data_root, id);
}
char *ctr_exec_dir(const char *id)
{
    return xasprintf("%s/containers/%s", exec_root, id);
}

static container *ctr_new(const char *id, json_t *j)
{
    container *c = xcalloc(1, sizeof *c);
    snprintf(c->id, sizeof c->id, "%s", id);
    c->j = j;
    c->pa_fd = -1;
    c->warm_fd = -1;
    c->premade = CTR_PREMADE_NONE;
    pthread_mutex_init(&c->op, NULL);
    pthread_mutex_init(&c->save_mu, NULL);
    pthread_cond_init(&c->changed, NULL);
    return c;
}

static void tab_add(container *c)
{
    if (ntab == captab) {
        captab = captab ? captab * 2 : 16;
        tab = xrealloc(tab, captab * sizeof *tab);
    }
    tab[ntab++] = c;
    c->refs++;
}

/* ---- container directories made ahead ----
 * A new directory costs this disk's file system hundreds of microseconds
 * (a block for it, looked for among many groups), and a container has three
 * (its own, the overlay's upper and work). A thread at idle priority keeps
 * DIR_POOL of them ready under containers/.pool/; create takes one with a
 * rename, or makes its own when none is there. */
#define DIR_POOL 2
static pthread_mutex_t pool_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t pool_cond = PTHREAD_COND_INITIALIZER;
static char *pool_ready[DIR_POOL];
static ctr_premade pool_premade[DIR_POOL];
static int npool;
static bool pool_running, pool_stopping;
static pthread_t pool_thread;

/* The device rules most containers get, for the premade directories. */
static pthread_once_t devs_once = PTHREAD_ONCE_INIT;
static json_t *devs_json, *dev_mounts;
static rt_resources *devs_res;

static void devs_init(void)
{
    dev_mounts = ocispec_default_dev_mounts();
    devs_json = ocispec_default_devices();
    json_t *r = json_pack("{s:O}", "devices", devs_json);
    berr e;
    if (rt_resources_load(r, &devs_res, &e) < 0) devs_res = NULL;
    json_decref(r);
}

void ctr_premake(const char *name, ctr_premade *pm)
{
    *pm = CTR_PREMADE_NONE;
    pthread_once(&devs_once, devs_init);
    pm->dev_tree = dev_mounts ? rt_dev_tree_make(dev_mounts) : -1;
    int r = rt_cgroup_premake(CTR_CGROUP_PARENT, name, devs_res);
    if (r < 0) return;
    snprintf(pm->name, sizeof pm->name, "%s", name);
    pm->devices = r == 1;
    pm->tree = rt_cgroup_premake_tree(CTR_CGROUP_PARENT, name);
}

bool ctr_premade_devices_fit(const ctr_premade *pm, const json_t *devices)
{
    pthread_once(&devs_once, devs_init);
    return pm->name[0] && pm->devices && devices && json_equal(devices, devs_json);
}

bool ctr_dev_tree_fits(const json_t *spec)
{
    pthread_once(&devs_once, devs_init);
    const json_t *linux = json_object_get(spec, "linux");
    json_t *mine = ocispec_dev_mounts(json_object_get(spec, "mounts"));
    bool fits = mine && dev_mounts && json_equal(mine, dev_mounts) &&
                !json_array_size(json_object_get(linux, "devices"));
    json_decref(mine);
    return fits;
}

void ctr_premade_drop(ctr_premade *pm)
{
    if (pm->tree >= 0) close(pm->tree); /* first: it holds binds of the directories */
    if (pm->dev_tree >= 0) close(pm->dev_tree);
    if (pm->name[0]) rt_cgroup_premade_remove(CTR_CGROUP_PARENT, pm->name);
    *pm = CTR_PREMADE_NONE;
}

static char *pool_make(ctr_premade *pm)
{
    *pm = CTR_PREMADE_NONE;
    unsigned char r[8];
    if (getrandom(r, sizeof r, 0) != (ssize_t)sizeof r) return NULL;
    char hex[17];
    for (int i = 0; i < 8; i++) sprintf(hex + 2 * i, "%02x", r[i]);
    char *d = xasprintf("%s/containers/.pool/%s", data_root, hex);
    char *u = xasprintf("%s/upper", d), *w = xasprintf("%s/work", d);
    bool ok = mkdir(d, 0710) == 0 && mkdir(u, 0755) == 0 && mkdir(w, 0700) == 0;
    if (!ok) rm_rf(d), free(d), d = NULL;
    free(u), free(w);
    for (int i = 0; d && i < 2; i++) { /* best effort: without them, the files are made */
        char *p = xasprintf("%s/%s", d, i ? CTR_SPARE_LOG : CTR_SPARE_RECORD);
        int fd = open(p, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, i ? 0640 : 0600);
        if (fd >= 0) close(fd);
        free(p);
    }
    /* and its cgroup directories (runtime.h): best effort, a start without
     * them makes its own */
    if (d) ctr_premake(hex, pm);
    return d;
}

static void *pool_main(void *arg)
{
    thread_background();
    pthread_mutex_lock(&pool_mu);
    while (!pool_stopping) {
        if (npool == DIR_POOL) {
            pthread_cond_wait(&pool_cond, &pool_mu);
            continue;
        }
        pthread_mutex_unlock(&pool_mu);
        ctr_premade pm;
        char *d = pool_make(&pm);
        pthread_mutex_lock(&pool_mu);
        if (!d) break; /* creates make their own */
        pool_premade[npool] = pm;
        pool_ready[npool++] = d;
    }
    pthread_mutex_unlock(&pool_mu);
    return arg;
}

/* dir made from the pool: true, with its premade cgroups in *pm; false
 * when it had none (or the rename failed) */
static bool pool_take(const char *dir, ctr_premade *pm)
{
    pthread_mutex_lock(&pool_mu);
    char *d = NULL;
    if (npool) d = pool_ready[--npool], *pm = pool_premade[npool];
    pthread_cond_signal(&pool_cond);
    pthread_mutex_unlock(&pool_mu);
    if (!d) return false;
    bool ok = rename(d, dir) == 0;
    if (!ok) rm_rf(d), ctr_premade_drop(pm);
    free(d);
    return ok;
}

static void pool_start(void)
{
    char *p = xasprintf("%s/containers/.pool", data_root);
    rm_rf(p); /* what an earlier berthd left */
    rt_cgroup_premade_clean(CTR_CGROUP_PARENT);
    warm_init(data_root);
    bool ok = mkdir(p, 0700) == 0;
    free(p);
    pthread_attr_t a;
    pthread_attr_init(&a);
    pthread_attr_setstacksize(&a, 128u << 10);
    pool_running = ok && pthread_create(&pool_thread, &a, pool_main, NULL) == 0;
    pthread_attr_destroy(&a);
}

void ctr_pool_stop(void)
{
    if (!data_root) return;
    pthread_mutex_lock(&pool_mu);
    pool_stopping = true;
    pthread_cond_signal(&pool_cond);
    pthread_mutex_unlock(&pool_mu);
    if (pool_running) pthread_join(pool_thread, NULL);
    pool_running = false;
    warm_stop();
    char *p = xasprintf("%s/containers/.pool", data_root);
    rm_rf(p);
    free(p);
    for (int i = 0; i < npool; i++) ctr_premade_drop(&pool_premade[i]), free(pool_ready[i]);
    npool = 0;
}

int ctr_init(const char *droot, const char *eroot, berr *e)
{
    data_root = xstrdup(droot);
    exec_root = xstrdup(eroot);
    char *dir = xasprintf("%s/containers", data_root);
    char *edir = xasprintf("%s/containers", exec_root);
    mkdir_p(edir, 0700);
    free(edir);
    if (mkdir_p(dir, 0710) < 0) {
        free(dir);
        return berr_errno(e, 500, "creating %s/containers", data_root);
    }
    DIR *d = opendir(dir);
    struct dirent *de;
    while (d && (de = readdir(d))) {
        if (strlen(de->d_name) != 64) continue;
        char *p = xasprintf("%s/%s/config.v2.json", dir, de->d_name);
        json_error_t je;
        json_t *j = json_load_file(p, 0, &je);
        if (!j)
            log_warn("container %s: unreadable record %s: %s", de->d_name, p, je.text);
        else
            tab_add(ctr_new(de->d_name, j));
        free(p);
    }
    if (d) closedir(d);
    free(dir);
    pool_start();
    return 0;
}

/* ---- lookup ---- */

static const char *name_of(container *c)
{
    const char *n = jstr(c->j, "Name");
    return n ? n : "";
}

static container *find_locked(const char *ref, berr *e)
{
    if (!ref || !*ref) {
        berr_set(e, 404, "No such container: %s", ref ? ref : "");
        return NULL;
    }
    for (size_t i = 0; i < ntab; i++)
        if (!strcmp(tab[i]->id, ref)) return tab[i];
    for (size_t i = 0; i < ntab; i++) {
        const char *n = name_of(tab[i]);
        if (!strcmp(n, ref) || (n[0] == '/' && !strcmp(n + 1, ref))) return tab[i];
    }
    container *found = NULL;
    size_t l = strlen(ref);
    for (size_t i = 0; i < ntab; i++) {
        if (strncmp(tab[i]->id, ref, l)) continue;
        if (found) {
            berr_set(e, 400, "multiple IDs found with provided prefix: %s", ref);
            return NULL;
        }
        found = tab[i];
    }
    if (!found) berr_set(e, 404, "No such container: %s", ref);
    return found;
}

container *ctr_get(const char *ref, berr *e)
{
    ctr_lock();
    container *c = find_locked(ref, e);
    if (c) c->refs++;
    ctr_unlock();
    return c;
}

void ctr_put(container *c)
{
    if (!c) return;
    ctr_lock();
    bool last = --c->refs == 0;
    ctr_unlock();
    if (!last) return;
    json_decref(c->j);
    if (c->warm_fd >= 0) close(c->warm_fd);
    if (c->premade.tree >= 0) close(c->premade.tree);
    if (c->premade.dev_tree >= 0) close(c->premade.dev_tree);
    free(c->root_key);
    pthread_mutex_destroy(&c->op);
    pthread_mutex_destroy(&c->save_mu);
    pthread_cond_destroy(&c->changed);
    free(c);
}

container **ctr_all(size_t *n)
{
    ctr_lock();
    container **a = xcalloc(ntab + 1, sizeof *a);
    for (size_t i = 0; i < ntab; i++) {
        a[i] = tab[i];
        tab[i]->refs++;
    }
    *n = ntab;
    ctr_unlock();
    return a;
}

static bool name_taken(const char *name, container *except)
{
    for (size_t i = 0; i < ntab; i++)
        if (tab[i] != except && !strcmp(name_of(tab[i]), name)) return true;
    return false;
}

/* Docker's rule: [a-zA-Z0-9][a-zA-Z0-9_.-]+ */
static bool valid_name(const char *n)
{
    if (*n == '/') n++;
    if (strlen(n) < 2) return false;
    if (!((n[0] >= 'a' && n[0] <= 'z') || (n[0] >= 'A' && n[0] <= 'Z') ||
          (n[0] >= '0' && n[0] <= '9')))
        return false;
    for (const char *p = n + 1; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
              *p == '_' || *p == '.' || *p == '-'))
            return false;
    return true;
}

int ctr_rename(container *c, const char *name, berr *e)
{
    if (!valid_name(name))
        return berr_set(e, 400,
                        "Invalid container name (%s), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed",
                        name);
    char *full = xasprintf("/%s", name[0] == '/' ? name + 1 : name);
    ctr_lock();
    if (name_taken(full, c)) {
        ctr_unlock();
        berr_set(e, 409,
                 "Conflict. The container name \"%s\" is already in use by container \"%s\". You "
                 "have to remove (or rename) that container to be able to reuse that name.",
                 full, find_locked(full, NULL)->id);
        free(full);
        return -1;
    }
    json_object_set_new(c->j, "Name", json_string(full));
    ctr_save(c);
    ctr_unlock();
    free(full);
    return 0;
}

/* The log's spare inode, named as the log (lifecycle.c's log path). */
static void take_spare_log(const char *dir, const char *id)
{
    char *from = xasprintf("%s/" CTR_SPARE_LOG, dir), *to = xasprintf("%s/%s-json.log", dir, id);
    if (rename(from, to) < 0 && errno != ENOENT) unlink(from);
    free(from), free(to);
}

container *ctr_add(json_t *j, void (*fill)(container *c), const char *warm_key, berr *e)
{
    const char *name = jstr(j, "Name");
    if (name && !valid_name(name)) {
        berr_set(e, 400, "Invalid container name (%s), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed",
                 name[0] == '/' ? name + 1 : name);
        return NULL;
    }
    unsigned char rnd[32];
    if (getrandom(rnd, sizeof rnd, 0) != (ssize_t)sizeof rnd) {
        berr_errno(e, 500, "getrandom");
        return NULL;
    }
    char id[65];
    for (int i = 0; i < 32; i++) sprintf(id + 2 * i, "%02x", rnd[i]);
    json_object_set_new(j, "Id", json_string(id));
    ctr_lock();
    char *full = name ? xasprintf("/%s", name[0] == '/' ? name + 1 : name) : NULL;
    while (!full) {
        char *n = ctr_random_name();
        full = xasprintf("/%s", n);
        free(n);
        if (name_taken(full, NULL)) free(full), full = NULL;
    }
    if (name_taken(full, NULL)) {
        container *o = find_locked(full, NULL);
        berr_set(e, 409,
                 "Conflict. The container name \"%s\" is already in use by container \"%s\". You "
                 "have to remove (or rename) that container to be able to reuse that name.",
                 full, o ? o->id : "");
        ctr_unlock();
        free(full);
        return NULL;
    }
    json_object_set_new(j, "Name", json_string(full));
    free(full);
    container *c = ctr_new(id, j);
    if (fill) fill(c);
    char *dir = ctr_dir(id);
    if (warm_key && (c->warm_fd = warm_take(warm_key, dir, &c->premade, &c->upper_st)) >= 0)
        c->root_key = xstrdup(warm_key);
    if ((c->warm_fd < 0 && !pool_take(dir, &c->premade) && mkdir_p(dir, 0710) < 0) ||
        ctr_save(c) < 0) {
        berr_errno(e, 500, "saving container %s", id);
        ctr_unlock();
        rm_rf(dir);
        ctr_premade_drop(&c->premade);
        free(dir);
        c->j = NULL;
        ctr_put(c);
        return NULL;
    }
    take_spare_log(dir, id);
    free(dir);
    tab_add(c);
    c->refs++;
    ctr_unlock();
    return c;
}

void ctr_remove(container *c, void (*before_files)(container *c))
{
    ctr_lock();
    for (size_t i = 0; i < ntab; i++) {
        if (tab[i] != c) continue;
        memmove(tab + i, tab + i + 1, (ntab - i - 1) * sizeof *tab);
        ntab--;
        c->refs--;
        break;
    }
    c->removed = true;
    pthread_cond_broadcast(&c->changed);
    ctr_unlock();
    if (c->warm_fd >= 0) close(c->warm_fd), c->warm_fd = -1; /* never started */
    if (before_files) before_files(c);
    ctr_premade_drop(&c->premade);
    char *dir = ctr_dir(c->id), *edir = ctr_exec_dir(c->id);
    rm_rf(dir);
    rm_rf(edir);
    free(dir);
    free(edir);
}

char *ctr_snapshot(container *c, uint64_t *seq)
{
    *seq = ++c->save_seq;
    return json_fast_dumps(c->j, JSON_COMPACT | JSON_PRESERVE_ORDER);
}

int ctr_write_snapshot(container *c, char *s, uint64_t seq)
{
    int rc = 0;
    pthread_mutex_lock(&c->save_mu);
    if (seq > c->saved_seq) { /* a newer snapshot may have been written first */
        char *p = xasprintf("%s/containers/%s/config.v2.json", data_root, c->id);
        char *spare =
            c->saved_seq ? NULL : xasprintf("%s/containers/%s/" CTR_SPARE_RECORD, data_root, c->id);
        rc = !s      ? -1
             : spare ? write_file_from(spare, p, s, strlen(s), 0600)
                     : write_file_replace(p, s, strlen(s), 0600);
        free(spare);
        if (rc < 0)
            log_error("saving %s: %s", p, strerror(errno));
        else
            c->saved_seq = seq;
        free(p);
    }
    pthread_mutex_unlock(&c->save_mu);
    free(s);
    return rc;
}

int ctr_save(container *c)
{
    uint64_t seq;
    char *s = ctr_snapshot(c, &seq);
    return ctr_write_snapshot(c, s, seq);
}

char *ctr_random_name(void)
{
    static const char *left[] = {"brave", "calm",    "eager",  "fancy",  "gentle", "happy",
                                 "jolly", "kind",    "lively", "merry",  "nimble", "proud",
                                 "quiet", "rapid",   "sharp",  "tender", "upbeat", "vivid",
                                 "witty", "zealous", "bold",   "clever", "daring", "frosty"};
    static const char *right[] = {"anchor", "beacon",   "bollard", "buoy",   "capstan", "cutter",
                                  "dinghy", "ferry",    "galley",  "harbor", "hull",    "jetty",
                                  "keel",   "lantern",  "mooring", "oar",    "pier",    "quay",
                                  "rudder", "schooner", "tugboat", "wharf",  "yawl",    "skiff"};
    unsigned r[2];
    if (getrandom(r, sizeof r, 0) != (ssize_t)sizeof r) r[0] = (unsigned)now_ns(), r[1] = r[0] >> 7;
    return xasprintf("%s_%s", left[r[0] % (sizeof left / sizeof *left)],
                     right[r[1] % (sizeof right / sizeof *right)]);
}

/* ---- state ---- */

json_t *ctr_state(container *c)
{
    return json_object_get(c->j, "State");
}

const char *ctr_status(container *c)
{
    const char *s = jstr(ctr_state(c), "Status");
    return s ? s : "created";
}

bool ctr_running(container *c)
{
    return json_is_true(json_object_get(ctr_state(c), "Running"));
}

void ctr_set_status(container *c, const char *status)
{
    json_t *st = ctr_state(c);
    json_object_set_new(st, "Status", json_string(status));
    bool running =
        !strcmp(status, "running") || !strcmp(status, "paused") || !strcmp(status, "restarting");
    json_object_set_new(st, "Running", json_boolean(running && strcmp(status, "restarting")));
    json_object_set_new(st, "Paused", json_boolean(!strcmp(status, "paused")));
    json_object_set_new(st, "Restarting", json_boolean(!strcmp(status, "restarting")));
    json_object_set_new(st, "Dead", json_boolean(!strcmp(status, "dead")));
    if (!strcmp(status, "paused")) json_object_set_new(st, "Running", json_true());
    pthread_cond_broadcast(&c->changed);
}

int ctr_count_image(const char *image_id, bool running_only)
{
    int n = 0;
    ctr_lock();
    for (size_t i = 0; i < ntab; i++) {
        const char *img = jstr(tab[i]->j, "Image");
        if (img && !strcmp(img, image_id) && (!running_only || ctr_running(tab[i]))) n++;
    }
    ctr_unlock();
    return n;
}

int ctr_image_usage(const char *image_id, bool running, char cid[65])
{
    int n = 0;
    ctr_lock();
    for (size_t i = 0; i < ntab; i++) {
        const char *img = jstr(tab[i]->j, "Image");
        if (!img || strcmp(img, image_id) || ctr_running(tab[i]) != running) continue;
        if (n++ == 0 && cid) snprintf(cid, 65, "%s", tab[i]->id);
    }
    ctr_unlock();
    return n;
}

void ctr_counts(int *total, int *running, int *paused, int *stopped)
{
    *total = *running = *paused = *stopped = 0;
    ctr_lock();
    for (size_t i = 0; i < ntab; i++) {
        const char *s = ctr_status(tab[i]);
        (*total)++;
        if (!strcmp(s, "paused"))
            (*paused)++;
        else if (!strcmp(s, "running") || !strcmp(s, "restarting"))
            (*running)++;
        else
            (*stopped)++;
    }
    ctr_unlock();
}
