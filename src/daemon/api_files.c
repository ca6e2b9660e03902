/* api_files.c: a container's filesystem through the API: changes (docker
 * diff, from the overlay upper dir against the image layers), export (a
 * tar of the merged root), archive GET/HEAD/PUT (docker cp out and in,
 * with the X-Docker-Container-Path-Stat header) and POST /commit (the
 * image side is image_commit_container in src/image/commit.c).
 *
 * Safety: the container's files are hostile. Paths given by the client are
 * resolved with openat2(RESOLVE_IN_ROOT) against the mounted root; trees
 * are walked through directory fds with O_NOFOLLOW, never through path
 * strings a running container could swap for a symlink; extraction goes
 * through tarx_extract into the resolved directory fd. Work on the root
 * happens between lc_rootfs_acquire and lc_rootfs_release, in the thread
 * that acquired it (streams re-acquire in their own thread). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/openat2.h>
#include <search.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "common/jsonutil.h"
#include "common/libarchive.h"
#include "daemon/api.h"
#include "daemon/containers.h"
#include "daemon/lifecycle.h"
#include "image/tarx.h"

#define BUFSZ (128 * 1024)

static container *get_ctr(req *r, const char *ref)
{
    berr e;
    container *c = ctr_get(ref, &e);
    if (!c) resp_berr(r, &e);
    return c;
}

/* ---- paths inside the root ---- */

/* openat2 with RESOLVE_IN_ROOT: symlinks resolve as if root were "/". */
static int open_in(int rootfd, const char *rel, int flags)
{
    struct open_how how = {.flags = (unsigned)flags | O_CLOEXEC,
                           .resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS};
    for (int i = 0; i < 64; i++) {
        long fd = syscall(SYS_openat2, rootfd, *rel ? rel : ".", &how, sizeof how);
        if (fd >= 0 || errno != EAGAIN) return (int)fd;
    }
    return -1;
}

/* path.Clean("/" + p) without the leading "/" ("" for the root). */
static char *clean_rel(const char *p)
{
    sbuf b = {0};
    _cleanup_free_ char *copy = xstrdup(p);
    char *save = NULL;
    for (char *t = strtok_r(copy, "/", &save); t; t = strtok_r(NULL, "/", &save)) {
        if (!strcmp(t, ".")) continue;
        if (!strcmp(t, "..")) {
            char *slash = b.data ? strrchr(b.data, '/') : NULL;
            b.len = slash ? (size_t)(slash - b.data) : 0;
            if (b.data) b.data[b.len] = 0;
            continue;
        }
        sbuf_printf(&b, "%s%s", b.len ? "/" : "", t);
    }
    sbuf_add(&b, "", 0);
    return sbuf_steal(&b);
}

static char *fd_path(int fd)
{
    char proc[64], buf[PATH_MAX];
    snprintf(proc, sizeof proc, "/proc/self/fd/%d", fd);
    ssize_t n = readlink(proc, buf, sizeof buf - 1);
    if (n < 0) return NULL;
    buf[n] = 0;
    return xstrdup(buf);
}

/* The path of fd relative to the root ("" for the root itself). */
static char *rel_of(int rootfd, int fd)
{
    _cleanup_free_ char *root = fd_path(rootfd), *p = fd_path(fd);
    size_t rl = root ? strlen(root) : 0;
    if (!root || !p || strncmp(p, root, rl) || (p[rl] && p[rl] != '/')) return NULL;
    return xstrdup(p[rl] ? p + rl + 1 : "");
}

/* A path as docker's ResolvePath sees it: the parent directory resolved
 * (symlinks followed inside the root), the last component not followed
 * unless the path ends in "/" or "/.". */
typedef struct rpath {
    int dirfd;  /* O_PATH fd of the parent directory */
    char *base; /* the entry in it; "." for the root */
    char *name; /* docker's stat name: Base(absPath) */
} rpath;

static void rpath_free(rpath *p)
{
    if (p->dirfd >= 0) close(p->dirfd);
    free(p->base);
    free(p->name);
}

static void split_rel(const char *rel, char **dir, char **base)
{
    const char *slash = strrchr(rel, '/');
    *dir = slash ? xstrndup(rel, (size_t)(slash - rel)) : xstrdup("");
    *base = xstrdup(slash ? slash + 1 : rel);
}

/* 0, or -1 with errno (ENOENT, ENOTDIR, ...). */
static int resolve(int rootfd, const char *path, rpath *out)
{
    *out = (rpath){.dirfd = -1};
    size_t pl = strlen(path);
    bool follow = pl && (path[pl - 1] == '/' || str_ends(path, "/."));
    _cleanup_free_ char *rel = clean_rel(path);
    char *dir, *base;
    if (follow && *rel) { /* resolve the whole path, then its canonical parent */
        int fd = open_in(rootfd, rel, O_PATH);
        if (fd < 0) return -1;
        char *canon = rel_of(rootfd, fd);
        close(fd);
        if (!canon) return errno = ENOENT, -1;
        free(rel);
        rel = canon;
    }
    const char *slash = strrchr(rel, '/');
    out->name = xstrdup(str_ends(path, "/.") ? "." : *rel ? (slash ? slash + 1 : rel) : "/");
    if (!*rel) {
        out->dirfd = open_in(rootfd, "", O_PATH | O_DIRECTORY);
        out->base = xstrdup(".");
        return out->dirfd < 0 ? -1 : 0;
    }
    split_rel(rel, &dir, &base);
    out->dirfd = open_in(rootfd, dir, O_PATH | O_DIRECTORY);
    out->base = base;
    free(dir);
    return out->dirfd < 0 ? -1 : 0;
}

/* ---- tar writing through directory fds ---- */

typedef struct tw {
    struct archive *a;
    void *inodes; /* tsearch tree: hardlinks */
    char *buf;
    berr *e;
} tw;

typedef struct ino_ref {
    dev_t dev;
    ino_t ino;
    char *name;
} ino_ref;

static int ino_cmp(const void *a, const void *b)
{
    const ino_ref *x = a, *y = b;
    if (x->dev != y->dev) return x->dev < y->dev ? -1 : 1;
    return x->ino < y->ino ? -1 : x->ino > y->ino;
}

static void ino_free(void *p)
{
    free(((ino_ref *)p)->name);
    free(p);
}

static const char *hardlink_of(tw *w, const struct stat *st, const char *name)
{
    if (!S_ISREG(st->st_mode) || st->st_nlink < 2) return NULL;
    ino_ref key = {st->st_dev, st->st_ino, NULL};
    ino_ref **found = tfind(&key, &w->inodes, ino_cmp);
    if (found) return (*found)->name;
    ino_ref *n = xmalloc(sizeof *n);
    *n = key;
    n->name = xstrdup(name);
    tsearch(n, &w->inodes, ino_cmp);
    return NULL;
}

static void add_xattrs(struct archive_entry *ent, int fd)
{
    char list[4096], val[4096];
    ssize_t n = flistxattr(fd, list, sizeof list);
    for (char *s = list; n > 0 && s < list + n; s += strlen(s) + 1) {
        if (str_starts(s, "system.") || str_starts(s, "trusted.overlay.") ||
            !strcmp(s, "security.selinux"))
            continue;
        ssize_t vn = fgetxattr(fd, s, val, sizeof val);
        if (vn >= 0) archive_entry_xattr_add_entry(ent, s, val, (size_t)vn);
    }
}

static int tw_fail(tw *w, const char *what, const char *name)
{
    return berr_set(w->e, 500, "%s %s: %s", what, name, archive_error_string(w->a));
}

static int tw_data(tw *w, int fd, int64_t size, const char *name)
{
    while (size > 0) {
        ssize_t n = read(fd, w->buf, size < BUFSZ ? (size_t)size : BUFSZ);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) return berr_errno(w->e, 500, "read %s", name);
        if (n == 0) break; /* shrank meanwhile: libarchive pads */
        if (archive_write_data(w->a, w->buf, (size_t)n) < 0) return tw_fail(w, "write", name);
        size -= n;
    }
    return 0;
}

static int tw_dir(tw *w, int dfd, const char *prefix);

/* Fills ent for the entry `base` in dfd; *fd gets an open fd for regular
 * files and directories (for data, xattrs and descent). */
static int tw_fill(tw *w, int dfd, const char *base, const char *name, const struct stat *st,
                   struct archive_entry *ent, int *fd)
{
    bool dir = S_ISDIR(st->st_mode);
    _cleanup_free_ char *tname = dir ? xasprintf("%s/", name) : xstrdup(name);
    archive_entry_set_pathname(ent, tname);
    archive_entry_set_mode(ent, st->st_mode);
    archive_entry_set_uid(ent, st->st_uid);
    archive_entry_set_gid(ent, st->st_gid);
    archive_entry_set_mtime(ent, st->st_mtim.tv_sec, 0);
    const char *link = hardlink_of(w, st, name);
    if (link) archive_entry_set_hardlink(ent, link);
    archive_entry_set_size(ent, S_ISREG(st->st_mode) && !link ? st->st_size : 0);
    if (S_ISCHR(st->st_mode) || S_ISBLK(st->st_mode)) archive_entry_set_rdev(ent, st->st_rdev);
    if (S_ISLNK(st->st_mode)) {
        char target[PATH_MAX];
        ssize_t n = readlinkat(dfd, base, target, sizeof target - 1);
        if (n < 0) return berr_errno(w->e, 500, "readlink %s", name);
        target[n] = 0;
        archive_entry_set_symlink(ent, target);
    }
    if (S_ISREG(st->st_mode) || dir) {
        *fd = openat(dfd, base, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | (dir ? O_DIRECTORY : 0));
        if (*fd < 0) return berr_errno(w->e, 500, "open %s", name);
        add_xattrs(ent, *fd);
    }
    return 0;
}

/* Writes the entry `base` of dfd as `name`, and below it when a dir. */
static int tw_node(tw *w, int dfd, const char *base, const char *name)
{
    struct stat st;
    if (fstatat(dfd, base, &st, AT_SYMLINK_NOFOLLOW) < 0) {
        if (errno == ENOENT) return 0; /* gone meanwhile */
        return berr_errno(w->e, 500, "stat %s", name);
    }
    if (S_ISSOCK(st.st_mode)) return 0;
    struct archive_entry *ent = archive_entry_new();
    _cleanup_close_ int fd = -1;
    int rc = tw_fill(w, dfd, base, name, &st, ent, &fd);
    if (rc == 0 && archive_write_header(w->a, ent) < ARCHIVE_WARN) rc = tw_fail(w, "write", name);
    if (rc == 0 && S_ISREG(st.st_mode) && !archive_entry_hardlink(ent))
        rc = tw_data(w, fd, st.st_size, name);
    archive_entry_free(ent);
    if (rc == 0 && S_ISDIR(st.st_mode)) rc = tw_dir(w, fd, name);
    return rc;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Sorted names in the directory fd (not consumed); NULL on error. */
static char **list_dir(int fd, size_t *n)
{
    int dup = openat(fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    DIR *d = dup >= 0 ? fdopendir(dup) : NULL;
    if (!d) {
        if (dup >= 0) close(dup);
        return NULL;
    }
    char **v = NULL;
    size_t cap = 0;
    *n = 0;
    for (struct dirent *de; (de = readdir(d));) {
        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, "..")) continue;
        if (*n == cap) v = xrealloc(v, (cap = cap ? 2 * cap : 32) * sizeof *v);
        v[(*n)++] = xstrdup(de->d_name);
    }
    closedir(d);
    if (*n) qsort(v, *n, sizeof *v, cmp_str);
    return v ? v : xcalloc(1, sizeof *v);
}

static void free_list(char **v, size_t n)
{
    for (size_t i = 0; i < n; i++) free(v[i]);
    free(v);
}

/* The children of dfd, named prefix/child ("" prefix: child). */
static int tw_dir(tw *w, int dfd, const char *prefix)
{
    size_t n;
    char **names = list_dir(dfd, &n);
    if (!names) return berr_errno(w->e, 500, "read directory %s", *prefix ? prefix : "/");
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0; i++) {
        _cleanup_free_ char *name =
            *prefix ? xasprintf("%s/%s", prefix, names[i]) : xstrdup(names[i]);
        rc = tw_node(w, dfd, names[i], name);
    }
    free_list(names, n);
    return rc;
}

/* A tar on out_fd: the entry base of dfd named top, or (top NULL) the
 * children of the directory dfd. */
static int write_tar(int out_fd, int dfd, const char *base, const char *top, berr *e)
{
    if (la_need(e) < 0) return -1; /* the handlers checked before the 200 */
    tw w = {.a = archive_write_new(), .buf = xmalloc(BUFSZ), .e = e};
    archive_write_set_format_pax_restricted(w.a);
    archive_write_set_bytes_in_last_block(w.a, 1);
    int rc = 0;
    if (archive_write_open_fd(w.a, out_fd) != ARCHIVE_OK) rc = tw_fail(&w, "open", "tar");
    if (rc == 0) rc = top ? tw_node(&w, dfd, base, top) : tw_dir(&w, dfd, "");
    if (archive_write_close(w.a) != ARCHIVE_OK && rc == 0) rc = tw_fail(&w, "close", "tar");
    archive_write_free(w.a);
    tdestroy(w.inodes, ino_free);
    free(w.buf);
    return rc;
}

/* ---- streams: the root is re-acquired in the stream's own thread ---- */

typedef struct tar_job {
    container *c;
    char *path; /* NULL: export the whole root */
} tar_job;

static void tar_job_free(void *p)
{
    tar_job *j = p;
    ctr_put(j->c);
    free(j->path);
    free(j);
}

static void tar_job_run(stream *st, void *arg)
{
    tar_job *j = arg;
    berr e = {0};
    char *root = NULL;
    if (lc_rootfs_acquire(j->c, &root, &e) < 0) {
        log_warn("tar of container %.12s: %s", j->c->id, e.msg);
        return;
    }
    int rootfd = open(root, O_PATH | O_DIRECTORY | O_CLOEXEC);
    rpath p = {.dirfd = -1};
    int rc = rootfd < 0 ? berr_errno(&e, 500, "open %s", root) : 0;
    if (rc == 0 && !j->path)
        rc = write_tar(stream_fd(st), rootfd, NULL, NULL, &e);
    else if (rc == 0 && resolve(rootfd, j->path, &p) < 0)
        rc = berr_errno(&e, 404, "%s", j->path);
    else if (rc == 0)
        rc = write_tar(stream_fd(st), p.dirfd, p.base, strcmp(p.name, "/") ? p.name : ".", &e);
    if (rc < 0 && !stream_client_gone(st)) log_warn("tar of container %.12s: %s", j->c->id, e.msg);
    rpath_free(&p);
    if (rootfd >= 0) close(rootfd);
    lc_rootfs_release(j->c);
    free(root);
}

static void start_tar(req *r, container *c, const char *path)
{
    tar_job *j = xcalloc(1, sizeof *j);
    j->c = c;
    j->path = path ? xstrdup(path) : NULL;
    resp_stream(r, 200, "application/x-tar", tar_job_run, j, tar_job_free);
}

/* ---- export ---- */

void h_container_export(req *r)
{
    container *c = get_ctr(r, req_param(r, 0));
    if (!c) return;
    berr e;
    char *root = NULL;
    /* report a missing libarchive or a mount failure as a status, not a cut stream */
    if (la_need(&e) < 0 || lc_rootfs_acquire(c, &root, &e) < 0) {
        resp_berr(r, &e);
        ctr_put(c);
        return;
    }
    lc_rootfs_release(c);
    free(root);
    lc_event(c, "export", NULL);
    start_tar(r, c, NULL);
}

/* ---- archive: stat, GET/HEAD (docker cp out), PUT (docker cp in) ---- */

/* Go's os.FileMode bits. */
static json_int_t go_mode(mode_t m)
{
    json_int_t g = m & 0777;
    if (m & S_ISUID) g |= 1LL << 23;
    if (m & S_ISGID) g |= 1LL << 22;
    if (m & S_ISVTX) g |= 1LL << 20;
    switch (m & S_IFMT) {
    case S_IFDIR:
        return g | 1LL << 31;
    case S_IFLNK:
        return g | 1LL << 27;
    case S_IFIFO:
        return g | 1LL << 25;
    case S_IFSOCK:
        return g | 1LL << 24;
    case S_IFBLK:
        return g | 1LL << 26;
    case S_IFCHR:
        return g | 1LL << 26 | 1LL << 21;
    }
    return g;
}

/* Where a symlink points, as a path inside the root (docker's linkTarget). */
static char *link_target(int rootfd, const rpath *p)
{
    _cleanup_close_ int fd = openat(p->dirfd, p->base, O_PATH | O_NOFOLLOW | O_CLOEXEC);
    _cleanup_free_ char *self = fd >= 0 ? rel_of(rootfd, fd) : NULL;
    if (self) {
        _cleanup_close_ int t = open_in(rootfd, self, O_PATH);
        _cleanup_free_ char *rel = t >= 0 ? rel_of(rootfd, t) : NULL;
        if (rel) return xasprintf("/%s", rel);
    }
    char target[PATH_MAX];
    ssize_t n = readlinkat(p->dirfd, p->base, target, sizeof target - 1);
    target[n > 0 ? n : 0] = 0;
    _cleanup_free_ char *dir = self ? xstrdup(self) : xstrdup("");
    char *slash = strrchr(dir, '/');
    if (slash)
        *slash = 0;
    else
        *dir = 0;
    _cleanup_free_ char *joined =
        target[0] == '/' ? xstrdup(target) : xasprintf("%s/%s", dir, target);
    _cleanup_free_ char *clean = clean_rel(joined);
    return xasprintf("/%s", clean);
}

static json_t *stat_json(int rootfd, const rpath *p, const struct stat *st)
{
    char mtime[64];
    fmt_rfc3339nano((int64_t)st->st_mtim.tv_sec * 1000000000LL + st->st_mtim.tv_nsec, mtime,
                    sizeof mtime);
    _cleanup_free_ char *lt = S_ISLNK(st->st_mode) ? link_target(rootfd, p) : xstrdup("");
    return json_pack("{s:s, s:I, s:I, s:s, s:s}", "name", p->name, "size", (json_int_t)st->st_size,
                     "mode", go_mode(st->st_mode), "mtime", mtime, "linkTarget", lt);
}

/* The stat of path in c's root; 404 when missing. */
static json_t *path_stat(container *c, const char *ref, const char *path, berr *e)
{
    char *root = NULL;
    if (lc_rootfs_acquire(c, &root, e) < 0) return NULL;
    int rootfd = open(root, O_PATH | O_DIRECTORY | O_CLOEXEC);
    rpath p = {.dirfd = -1};
    struct stat st;
    json_t *j = NULL;
    if (rootfd < 0)
        berr_errno(e, 500, "open %s", root);
    else if (resolve(rootfd, path, &p) < 0 ||
             fstatat(p.dirfd, p.base, &st, AT_SYMLINK_NOFOLLOW) < 0) {
        if (errno == ENOENT || errno == ENOTDIR)
            berr_set(e, 404, "Could not find the file %s in container %s", path, ref);
        else
            berr_errno(e, 500, "stat %s", path);
    } else
        j = stat_json(rootfd, &p, &st);
    rpath_free(&p);
    if (rootfd >= 0) close(rootfd);
    lc_rootfs_release(c);
    free(root);
    return j;
}

static void stat_header(req *r, json_t *j)
{
    _cleanup_free_ char *s = json_dump_compact(j);
    _cleanup_free_ char *b64 = base64_encode(s, strlen(s));
    resp_header(r, "X-Docker-Container-Path-Stat", b64);
}

void h_container_archive_get(req *r)
{
    const char *ref = req_param(r, 0), *path = req_query(r, "path");
    container *c = get_ctr(r, ref);
    if (!c) return;
    if (!path || !*path) {
        resp_error(r, 400, "Path cannot be empty");
        ctr_put(c);
        return;
    }
    berr e;
    _cleanup_json_ json_t *st = path_stat(c, ref, path, &e);
    if (!st) {
        resp_berr(r, &e);
        ctr_put(c);
        return;
    }
    if (!strcmp(r->method, "HEAD")) {
        resp_empty(r, 200);
        stat_header(r, st);
        ctr_put(c);
        return;
    }
    if (la_need(&e) < 0) {
        resp_berr(r, &e);
        ctr_put(c);
        return;
    }
    lc_event(c, "archive-path", NULL);
    start_tar(r, c, path); /* the stream owns the reference now */
    stat_header(r, st);
}

/* noOverwriteDirNonDir: no entry may replace a dir with a non-dir or the
 * reverse. Reads the spooled body once and rewinds it. */
static int check_overwrite(int body_fd, int dfd, berr *e)
{
    if (la_need(e) < 0) return -1;
    struct archive *a = archive_read_new();
    archive_read_support_filter_all(a);
    archive_read_support_format_tar(a);
    /* a body that is no tar at all is tarx_extract's to report */
    int rc = archive_read_open_fd(a, body_fd, BUFSZ) == ARCHIVE_OK ? 0 : 1;
    struct archive_entry *ent;
    while (rc == 0 && archive_read_next_header(a, &ent) == ARCHIVE_OK) {
        _cleanup_free_ char *rel = clean_rel(archive_entry_pathname(ent));
        char *dir, *base;
        split_rel(rel, &dir, &base);
        int pfd = *rel ? open_in(dfd, dir, O_PATH | O_DIRECTORY) : -1;
        struct stat st;
        bool want_dir = archive_entry_filetype(ent) == AE_IFDIR;
        if (pfd >= 0 && fstatat(pfd, base, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
            S_ISDIR(st.st_mode) != want_dir)
            rc = berr_set(e, 400,
                          want_dir ? "cannot overwrite non-directory \"/%s\" with directory"
                                   : "cannot overwrite directory \"/%s\" with non-directory",
                          rel);
        if (pfd >= 0) close(pfd);
        free(dir), free(base);
    }
    archive_read_free(a);
    if (lseek(body_fd, 0, SEEK_SET) < 0) return berr_errno(e, 500, "rewinding the body");
    return rc < 0 ? -1 : 0;
}

/* Extracts the body into path (a directory) inside the mounted root. */
static int extract_into(req *r, const char *root, const char *ref, const char *path, berr *e)
{
    _cleanup_close_ int rootfd = open(root, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (rootfd < 0) return berr_errno(e, 500, "open %s", root);
    _cleanup_free_ char *rel = clean_rel(path);
    _cleanup_close_ int dfd = open_in(rootfd, rel, O_PATH);
    struct stat st;
    if (dfd < 0 && (errno == ENOENT || errno == ENOTDIR))
        return berr_set(e, 404, "Could not find the file %s in container %s", path, ref);
    if (dfd < 0 || fstat(dfd, &st) < 0) return berr_errno(e, 500, "open %s", path);
    if (!S_ISDIR(st.st_mode)) return berr_set(e, 400, "extraction point is not a directory");
    if (req_query_bool(r, "noOverwriteDirNonDir", false) && check_overwrite(r->body_fd, dfd, e) < 0)
        return -1;
    char dest[64];
    snprintf(dest, sizeof dest, "/proc/self/fd/%d", dfd); /* the resolved dir, race-free */
    return tarx_extract(r->body_fd, dest, 0, e);
}

static bool readonly_rootfs(container *c)
{
    ctr_lock();
    bool ro = json_is_true(json_object_get(json_object_get(c->j, "HostConfig"), "ReadonlyRootfs"));
    ctr_unlock();
    return ro;
}

void h_container_archive_put(req *r)
{
    const char *ref = req_param(r, 0), *path = req_query(r, "path");
    container *c = get_ctr(r, ref);
    if (!c) return;
    berr e;
    char *root = NULL;
    if (!path || !*path)
        resp_error(r, 400, "Path cannot be empty");
    else if (r->body_error || r->body_fd < 0)
        resp_error(r, 400, "could not read the request body");
    else if (readonly_rootfs(c))
        resp_error(r, 403, "container rootfs is marked read-only");
    else if (lc_rootfs_acquire(c, &root, &e) < 0)
        resp_berr(r, &e);
    else {
        int rc = extract_into(r, root, ref, path, &e);
        lc_rootfs_release(c);
        if (rc < 0)
            resp_berr(r, &e);
        else {
            lc_event(c, "extract-to-dir", NULL);
            resp_empty(r, 200);
        }
    }
    free(root);
    ctr_put(c);
}

/* ---- changes (docker diff) ---- */

typedef struct change {
    char *path;
    int kind; /* 0 modified, 1 added, 2 deleted */
} change;

typedef struct dctx {
    int *lower; /* layer dir fds, top first */
    int nlower;
    change *v;
    size_t n, cap;
    berr *e;
} dctx;

static void add_change(dctx *d, const char *rel, int kind)
{
    if (d->n == d->cap) d->v = xrealloc(d->v, (d->cap = d->cap ? 2 * d->cap : 32) * sizeof *d->v);
    d->v[d->n++] = (change){xasprintf("/%s", rel), kind};
}

static bool is_whiteout(const struct stat *st)
{
    return S_ISCHR(st->st_mode) && st->st_rdev == makedev(0, 0);
}

/* Does rel exist in the image? The top-most layer holding it decides (a
 * whiteout there means it was deleted below). */
static bool in_lower(const dctx *d, const char *rel, struct stat *st)
{
    for (int i = 0; i < d->nlower; i++) {
        _cleanup_close_ int fd = open_in(d->lower[i], rel, O_PATH | O_NOFOLLOW);
        if (fd >= 0 && fstatat(fd, "", st, AT_EMPTY_PATH) == 0) return !is_whiteout(st);
    }
    return false;
}

static bool same_dir(const struct stat *a, const struct stat *b)
{
    return S_ISDIR(a->st_mode) && S_ISDIR(b->st_mode) && a->st_size == b->st_size &&
           a->st_mode == b->st_mode && a->st_mtim.tv_sec == b->st_mtim.tv_sec &&
           (a->st_mtim.tv_nsec == b->st_mtim.tv_nsec || !a->st_mtim.tv_nsec || !b->st_mtim.tv_nsec);
}

static bool is_opaque(int fd)
{
    char v[2];
    return fgetxattr(fd, "trusted.overlay.opaque", v, sizeof v) == 1 && v[0] == 'y';
}

/* An opaque upper dir hides the image's entries below it: each one that
 * the upper dir does not have again is a deletion. */
static void opaque_deletions(dctx *d, int ufd, const char *rel)
{
    for (int i = 0; i < d->nlower; i++) {
        _cleanup_close_ int fd = open_in(d->lower[i], rel, O_RDONLY | O_DIRECTORY);
        size_t n = 0;
        char **names = fd >= 0 ? list_dir(fd, &n) : NULL;
        for (size_t k = 0; k < n; k++) {
            struct stat st;
            _cleanup_free_ char *crel = xasprintf("%s/%s", rel, names[k]);
            bool dup = false; /* reported from a higher layer already */
            for (size_t m = 0; m < d->n && !dup; m++) dup = !strcmp(d->v[m].path + 1, crel);
            if (!dup && fstatat(ufd, names[k], &st, AT_SYMLINK_NOFOLLOW) < 0 &&
                in_lower(d, crel, &st))
                add_change(d, crel, 2);
        }
        if (names) free_list(names, n);
        if (fd >= 0 && is_opaque(fd)) break;
    }
}

static int diff_dir(dctx *d, int fd, const char *rel, bool *skipped);

/* Mount points the runtime creates in the upper dir; Docker keeps them in
 * an init layer below the container's, so they are no change. */
static bool init_path(const char *rel)
{
    static const char *const paths[] = {
        "etc/hostname", "etc/hosts", "etc/resolv.conf", "etc/mtab", ".dockerenv", "dev",
        "dev/pts",      "dev/shm",   "dev/console",     "proc",     "sys"};
    for (size_t i = 0; i < sizeof paths / sizeof *paths; i++)
        if (!strcmp(rel, paths[i])) return true;
    return false;
}

/* A directory of the image: changed when something below it changed or
 * its metadata did (mtime only counts when no init path was created). */
static bool dir_changed(const struct stat *st, const struct stat *low, bool children, bool skipped)
{
    if (children || !S_ISDIR(low->st_mode)) return true;
    if (skipped)
        return st->st_mode != low->st_mode || st->st_uid != low->st_uid ||
               st->st_gid != low->st_gid;
    return !same_dir(st, low);
}

/* One upper entry; returns 1 when it or anything below it was recorded;
 * *skipped is set when it is an init path. */
static int diff_entry(dctx *d, int fd, const char *name, const char *rel, bool *skipped)
{
    _cleanup_free_ char *crel = *rel ? xasprintf("%s/%s", rel, name) : xstrdup(name);
    struct stat st, low;
    if (fstatat(fd, name, &st, AT_SYMLINK_NOFOLLOW) < 0) return 0;
    bool in_img = in_lower(d, crel, &low), init = !is_whiteout(&st) && init_path(crel);
    if (init) *skipped = true;
    if (is_whiteout(&st)) {
        add_change(d, crel, 2);
        return 1;
    }
    if (!S_ISDIR(st.st_mode)) {
        if (!init) add_change(d, crel, in_img ? 0 : 1);
        return !init;
    }
    _cleanup_close_ int cfd = openat(fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (cfd < 0) return berr_errno(d->e, 500, "open %s", crel);
    size_t before = d->n;
    bool skipped_below = false;
    if (in_img && is_opaque(cfd)) opaque_deletions(d, cfd, crel);
    if (diff_dir(d, cfd, crel, &skipped_below) < 0) return -1;
    bool children = d->n > before;
    if (!in_img && !init)
        add_change(d, crel, 1);
    else if (in_img && dir_changed(&st, &low, children, skipped_below))
        add_change(d, crel, 0);
    return d->n > before;
}

static int diff_dir(dctx *d, int fd, const char *rel, bool *skipped)
{
    size_t n;
    char **names = list_dir(fd, &n);
    if (!names) return berr_errno(d->e, 500, "read directory /%s", rel);
    int rc = 0;
    for (size_t i = 0; i < n && rc >= 0; i++) rc = diff_entry(d, fd, names[i], rel, skipped);
    free_list(names, n);
    return rc < 0 ? -1 : 0;
}

static int cmp_change(const void *a, const void *b)
{
    return strcmp(((const change *)a)->path, ((const change *)b)->path);
}

/* The changes of c's upper dir as the API's JSON (null when none). */
static json_t *container_changes(container *c, berr *e)
{
    ctr_lock();
    _cleanup_free_ char *img = xstrdup(jstr(c->j, "Image") ? jstr(c->j, "Image") : "");
    ctr_unlock();
    char **dirs = NULL;
    int n = image_layer_dirs(D.images, img, &dirs, e);
    if (n < 0) return NULL;
    dctx d = {.lower = xcalloc((size_t)n + 1, sizeof(int)), .e = e};
    for (int i = n - 1; i >= 0; i--) {
        d.lower[d.nlower] = open(dirs[i], O_PATH | O_DIRECTORY | O_CLOEXEC);
        if (d.lower[d.nlower] >= 0) d.nlower++;
        free(dirs[i]);
    }
    free(dirs);
    _cleanup_free_ char *cdir = ctr_dir(c->id);
    _cleanup_free_ char *upper = xasprintf("%s/upper", cdir);
    _cleanup_close_ int ufd = open(upper, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    bool skipped = false;
    int rc = ufd < 0 ? (errno == ENOENT ? 0 : berr_errno(e, 500, "open %s", upper))
                     : diff_dir(&d, ufd, "", &skipped);
    json_t *out = rc < 0 ? NULL : d.n ? json_array() : json_null();
    if (d.n) qsort(d.v, d.n, sizeof *d.v, cmp_change);
    for (size_t i = 0; i < d.n; i++) {
        if (out)
            json_array_append_new(
                out, json_pack("{s:s, s:i}", "Path", d.v[i].path, "Kind", d.v[i].kind));
        free(d.v[i].path);
    }
    for (int i = 0; i < d.nlower; i++) close(d.lower[i]);
    free(d.lower);
    free(d.v);
    return out;
}

void h_container_changes(req *r)
{
    container *c = get_ctr(r, req_param(r, 0));
    if (!c) return;
    berr e;
    char *root = NULL;
    if (lc_rootfs_acquire(c, &root, &e) < 0) { /* holds the container's op lock */
        resp_berr(r, &e);
    } else {
        json_t *j = container_changes(c, &e);
        lc_rootfs_release(c);
        if (j)
            resp_json(r, 200, j);
        else
            resp_berr(r, &e);
    }
    free(root);
    ctr_put(c);
}

/* ---- commit ---- */

typedef struct commit_req {
    json_t *config; /* the body's Config, or NULL */
    json_t *changes;
    bool pause;
} commit_req;

static int parse_commit(req *r, commit_req *cr, berr *e)
{
    *cr = (commit_req){.changes = json_array()};
    if (r->body.len) {
        json_t *j = json_parse_body(r->body.data, r->body.len, e);
        if (!j) return -1;
        if (!json_is_null(j) && !json_is_object(j)) {
            json_decref(j);
            return berr_set(e, 400, "invalid JSON: the body must be a container config");
        }
        cr->config = json_is_null(j) ? (json_decref(j), NULL) : j;
    }
    size_t n;
    const char **ch = req_query_all(r, "changes", &n);
    for (size_t i = 0; i < n; i++)
        if (*ch[i]) json_array_append_new(cr->changes, json_string(ch[i]));
    free(ch);
    const char *p = req_query(r, "pause");
    cr->pause = !p || !*p ? r->api_minor >= 13 : req_query_bool(r, "pause", false);
    return 0;
}

/* 409 when c is being removed or is dead. Fills the image and config. */
static int commit_snapshot(container *c, char **image, json_t **cfg, berr *e)
{
    ctr_lock();
    const char *status = ctr_status(c);
    int rc = 0;
    if (c->removed)
        rc = berr_set(e, 409, "You cannot commit container %s which is being removed", c->id);
    else if (!strcmp(status, "dead"))
        rc = berr_set(e, 409, "You cannot commit container %s which is Dead", c->id);
    *image = xstrdup(jstr(c->j, "Image") ? jstr(c->j, "Image") : "");
    *cfg = json_deep_copy(json_object_get(c->j, "Config"));
    bool paused = !strcmp(status, "paused"), running = ctr_running(c);
    ctr_unlock();
    return rc < 0 ? rc : running && !paused;
}

static int do_commit(req *r, container *c, const commit_req *cr, char id[DIGEST_LEN + 1], berr *e)
{
    _cleanup_free_ char *image = NULL;
    _cleanup_json_ json_t *cfg = NULL;
    int live = commit_snapshot(c, &image, &cfg, e);
    if (live < 0) return -1;
    bool paused = live && cr->pause && lc_pause(c, true, NULL) == 0;
    _cleanup_free_ char *cdir = ctr_dir(c->id);
    _cleanup_free_ char *upper = xasprintf("%s/upper", cdir);
    commit_opts o = {.parent_id = image,
                     .container_id = c->id,
                     .container_config = cfg,
                     .config = cr->config,
                     .changes = cr->changes,
                     .comment = req_query(r, "comment"),
                     .author = req_query(r, "author"),
                     .repo = req_query(r, "repo"),
                     .tag = req_query(r, "tag")};
    int rc = image_commit_container(D.images, upper, &o, id, e);
    if (paused) lc_pause(c, false, NULL);
    return rc;
}

static void commit_event(container *c, req *r, const char *id)
{
    const char *repo = req_query(r, "repo"), *tag = req_query(r, "tag"),
               *cm = req_query(r, "comment");
    _cleanup_free_ char *ref =
        repo && *repo ? xasprintf("%s:%s", repo, tag && *tag ? tag : "latest") : xstrdup("");
    lc_event(c, "commit",
             json_pack("{s:s, s:s, s:s}", "comment", cm ? cm : "", "imageID", id, "imageRef", ref));
}

void h_commit(req *r)
{
    const char *ref = req_query(r, "container");
    berr e;
    commit_req cr;
    if (parse_commit(r, &cr, &e) < 0) {
        json_decref(cr.changes);
        resp_berr(r, &e);
        return;
    }
    container *c = get_ctr(r, ref ? ref : "");
    char id[DIGEST_LEN + 1], *root = NULL;
    if (c && lc_rootfs_acquire(c, &root, &e) < 0)
        resp_berr(r, &e);
    else if (c) {
        int rc = do_commit(r, c, &cr, id, &e);
        lc_rootfs_release(c);
        if (rc < 0)
            resp_berr(r, &e);
        else {
            commit_event(c, r, id);
            resp_json(r, 201, json_pack("{s:s}", "Id", id));
        }
    }
    free(root);
    if (c) ctr_put(c);
    json_decref(cr.config);
    json_decref(cr.changes);
}
