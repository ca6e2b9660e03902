/* warm.c: --rm roots kept mounted (warm.h). */
#include "daemon/warm.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/magic.h>
#include <linux/mount.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/random.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "common/util.h"
#include "daemon/containers.h"
#include "runtime/runtime.h"

/* Back-to-back runs have two or three roots in flight (one running, the
 * last one's being given back); a few images may alternate. */
#define WARM_MAX 6

typedef struct warm_entry {
    char *key;
    char hex[17]; /* its dir's name, and its premade cgroups' */
    ctr_premade pm;
    int fd;
    struct stat st;
} warm_entry;

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static warm_entry tab[WARM_MAX]; /* oldest first */
static int n;
static char *base; /* <data-root>/containers/.warm */

static char *entry_dir(const char *hex)
{
    return xasprintf("%s/%s", base, hex);
}

/* Closes, removes and frees an entry taken out of the table. */
static void drop(warm_entry *w)
{
    close(w->fd);
    char *d = entry_dir(w->hex);
    rm_rf(d);
    free(d);
    ctr_premade_drop(&w->pm);
    free(w->key);
}

void warm_init(const char *data_root)
{
    base = xasprintf("%s/containers/.warm", data_root);
    rm_rf(base);
    mkdir(base, 0700);
}

void warm_stop(void)
{
    if (!base) return;
    pthread_mutex_lock(&mu);
    for (int i = 0; i < n; i++) drop(&tab[i]);
    n = 0;
    pthread_mutex_unlock(&mu);
    rm_rf(base);
}

int warm_take(const char *key, const char *dir, ctr_premade *pm, struct stat *st)
{
    if (!base) return -1;
    pthread_mutex_lock(&mu);
    int i = n - 1;
    while (i >= 0 && strcmp(tab[i].key, key)) i--; /* the newest: its pages are warmest */
    warm_entry w = {0};
    if (i >= 0) {
        w = tab[i];
        memmove(tab + i, tab + i + 1, (size_t)(n - i - 1) * sizeof *tab);
        n--;
    }
    pthread_mutex_unlock(&mu);
    if (i < 0) return -1;
    char *d = entry_dir(w.hex);
    int rc = rename(d, dir);
    free(d);
    if (rc < 0) {
        drop(&w);
        return -1;
    }
    *pm = w.pm;
    *st = w.st;
    free(w.key);
    return w.fd;
}

static bool same_inode_state(const struct stat *a, const struct stat *b)
{
    return a->st_ino == b->st_ino && a->st_dev == b->st_dev && a->st_mode == b->st_mode &&
           a->st_uid == b->st_uid && a->st_gid == b->st_gid && a->st_nlink == b->st_nlink &&
           a->st_mtim.tv_sec == b->st_mtim.tv_sec && a->st_mtim.tv_nsec == b->st_mtim.tv_nsec &&
           a->st_ctim.tv_sec == b->st_ctim.tv_sec && a->st_ctim.tv_nsec == b->st_ctim.tv_nsec;
}

/* Nothing written in the root: the upper dir is empty and unchanged since
 * the container got it (its ctime moves with any entry made or removed, any
 * mode, owner, time or xattr set), and the work dir holds no leftover of a
 * copy-up (only the "volatile" mark, overlay's own). */
static bool pristine(const char *dir, const struct stat *st)
{
    static const char *const mark[] = {"incompat", NULL};
    char *upper = xasprintf("%s/upper", dir), *work = xasprintf("%s/work/work", dir);
    struct stat now;
    bool ok = stat(upper, &now) == 0 && same_inode_state(&now, st) && dir_only(upper, NULL) == 1 &&
              dir_only(work, mark) == 1;
    free(upper), free(work);
    return ok;
}

/* A file of a kept dir, kept as the spare inode `as` (containers.h),
 * emptied: the record and the log; true when it was. */
static bool keep_as_spare(int dfd, const char *name, const char *as)
{
    int fd = openat(dfd, name, O_WRONLY | O_NOFOLLOW | O_CLOEXEC);
    bool ok = fd >= 0 && ftruncate(fd, 0) == 0;
    if (fd >= 0) close(fd);
    return ok && renameat(dfd, name, dfd, as) == 0;
}

static bool is_log(const char *name)
{
    size_t n = strlen(name);
    return n > 9 && !strcmp(name + n - 9, "-json.log");
}

/* Clears what dir holds beside upper and work: its record and its log
 * become the next container's spare inodes, the rest goes. */
static bool clear_beside_layers(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    DIR *d = fd < 0 ? NULL : fdopendir(fd);
    if (!d) {
        if (fd >= 0) close(fd);
        return false;
    }
    bool ok = true;
    struct dirent *de;
    while ((de = readdir(d))) {
        const char *nm = de->d_name;
        if (!strcmp(nm, ".") || !strcmp(nm, "..") || !strcmp(nm, "upper") || !strcmp(nm, "work") ||
            !strcmp(nm, CTR_SPARE_RECORD) || !strcmp(nm, CTR_SPARE_LOG))
            continue;
        if (!strcmp(nm, "config.v2.json") && keep_as_spare(dirfd(d), nm, CTR_SPARE_RECORD))
            continue;
        if (is_log(nm) && keep_as_spare(dirfd(d), nm, CTR_SPARE_LOG)) continue;
        if (rm_rf_at(dirfd(d), nm) < 0) ok = false;
    }
    closedir(d);
    return ok;
}

bool warm_give(const char *key, const char *root, const char *dir, const struct stat *st)
{
    if (!base || !pristine(dir, st)) return false;
    int fd = (int)syscall(SYS_open_tree, AT_FDCWD, root, OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC);
    struct statfs sf;
    if (fd < 0) return false;
    if (fstatfs(fd, &sf) < 0 || sf.f_type != OVERLAYFS_SUPER_MAGIC) {
        close(fd);
        return false;
    }
    unsigned char r[8];
    warm_entry w = {.fd = fd, .st = *st, .pm = CTR_PREMADE_NONE};
    if (getrandom(r, sizeof r, 0) != (ssize_t)sizeof r) {
        close(fd);
        return false;
    }
    for (int i = 0; i < 8; i++) sprintf(w.hex + 2 * i, "%02x", r[i]);
    /* from here the root is only the detached copy: a failure drops it */
    if (umount2(root, MNT_DETACH) < 0 && errno != EINVAL) {
        close(fd);
        return false;
    }
    char *d = entry_dir(w.hex), *upper = xasprintf("%s/upper", d);
    bool moved = clear_beside_layers(dir) && rename(dir, d) == 0;
    bool ok = moved && stat(upper, &w.st) == 0;
    if (!ok && moved) rm_rf(d);
    free(upper);
    free(d);
    if (!ok) { /* unmounted all the same: the caller removes what is left */
        close(fd);
        return false;
    }
    ctr_premake(w.hex, &w.pm); /* best effort, as the pool's */
    w.key = xstrdup(key);
    warm_entry old = {.fd = -1};
    pthread_mutex_lock(&mu);
    if (n == WARM_MAX) {
        old = tab[0];
        memmove(tab, tab + 1, (size_t)(n - 1) * sizeof *tab);
        n--;
    }
    tab[n++] = w;
    pthread_mutex_unlock(&mu);
    if (old.fd >= 0) drop(&old);
    return true;
}

/* Every lower dir of the key (a lowerdir list, ':'-separated) still there? */
static bool layers_present(const char *key)
{
    char *k = xstrdup(key), *save = NULL;
    bool ok = true;
    for (char *p = strtok_r(k, ":", &save); p && ok; p = strtok_r(NULL, ":", &save)) {
        struct stat st;
        ok = stat(p, &st) == 0 && S_ISDIR(st.st_mode);
    }
    free(k);
    return ok;
}

void warm_gc(void)
{
    if (!base) return;
    warm_entry gone[WARM_MAX];
    int ng = 0;
    pthread_mutex_lock(&mu);
    for (int i = 0; i < n;) {
        if (layers_present(tab[i].key)) {
            i++;
            continue;
        }
        gone[ng++] = tab[i];
        memmove(tab + i, tab + i + 1, (size_t)(n - i - 1) * sizeof *tab);
        n--;
    }
    pthread_mutex_unlock(&mu);
    for (int i = 0; i < ng; i++) drop(&gone[i]);
}
