/* userdb.c: resolves a container's user and groups from the image's own
 * /etc/passwd and /etc/group, read inside the container root with
 * openat2(RESOLVE_IN_ROOT) so a hostile image cannot point us at host files.
 * The same parser reads the host's /etc/group for the API socket's group:
 * no getgrnam(), which would load NSS modules (libnss_systemd and what it
 * links) into berthd for good; dockerd reads /etc/group directly too. */
#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "common/jsonutil.h"
#include "daemon/ocispec.h"

static char *read_fd_limited(int fd)
{
    sbuf b = {0};
    char buf[4096];
    ssize_t n;
    while ((n = read(fd, buf, sizeof buf)) > 0 && b.len < (1u << 20)) sbuf_add(&b, buf, (size_t)n);
    return sbuf_steal(&b);
}

static char *read_in_root(const char *rootfs, const char *path)
{
    int root = open(rootfs, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (root < 0) return NULL;
    struct open_how how = {.flags = O_RDONLY | O_CLOEXEC,
                           .resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS};
    int fd = (int)syscall(SYS_openat2, root, path, &how, sizeof how);
    close(root);
    if (fd < 0) return NULL;
    char *s = read_fd_limited(fd);
    close(fd);
    return s;
}

/* An entry of the image as the container's root will show it, looked up in
 * the image's layers (dirs[0] the bottom one) without mounting them, so
 * that a start can do without the mounted root. Whiteouts are overlayfs's:
 * a 0:0 character device, and trusted.overlay.opaque "y" on a directory.
 * 1: there (*st; *content read when it is a regular file and content is
 * given); 0: absent; -1: undecided (a link or something unusual on the way:
 * only the mounted root can tell). */
int ocispec_layers_lookup(char *const *dirs, int n, const char *path, struct stat *st,
                          char **content)
{
    if (content) *content = NULL;
    char *comp[8], buf[256];
    int nc = 0;
    if (snprintf(buf, sizeof buf, "%s", path) >= (int)sizeof buf) return -1;
    for (char *s = NULL, *c = strtok_r(buf, "/", &s); c; c = strtok_r(NULL, "/", &s))
        if (nc == 8)
            return -1;
        else
            comp[nc++] = c;
    if (!nc) return -1;
    for (int i = n - 1; i >= 0; i--) {
        int fd = open(dirs[i], O_RDONLY | O_DIRECTORY | O_CLOEXEC), r = 2; /* 2: go on */
        bool opaque = false;
        if (fd < 0) return -1;
        for (int k = 0; k < nc && r == 2; k++) {
            char x[2];
            if (fstatat(fd, comp[k], st, AT_SYMLINK_NOFOLLOW) < 0) {
                if (errno != ENOENT) r = -1;
                break; /* not in this layer */
            }
            if (S_ISCHR(st->st_mode) && st->st_rdev == 0)
                r = 0; /* whited out */
            else if (S_ISLNK(st->st_mode))
                r = -1;
            else if (k < nc - 1 && S_ISDIR(st->st_mode)) {
                int sub = openat(fd, comp[k], O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
                if (sub < 0)
                    r = -1;
                else if (fgetxattr(sub, "trusted.overlay.opaque", x, sizeof x) == 1 && x[0] == 'y')
                    opaque = true;
                close(fd), fd = sub;
            } else if (k < nc - 1)
                r = 0; /* a file hides the directories below */
            else if (S_ISREG(st->st_mode) && content) {
                int f = openat(fd, comp[k], O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
                r = f < 0 ? -1 : 1;
                if (f >= 0) *content = read_fd_limited(f), close(f);
            } else
                r = 1;
        }
        if (fd >= 0) close(fd);
        if (r != 2) return r;
        if (opaque) return 0; /* this layer's directory hides the ones below */
    }
    return 0;
}

/* 1: decided (*out: the content, or NULL when absent); 0: undecided. */
static int read_in_layers(char *const *dirs, int n, const char *path, char **out)
{
    struct stat st;
    int r = ocispec_layers_lookup(dirs, n, path, &st, out);
    return r == 0 || (r == 1 && S_ISREG(st.st_mode));
}

static bool all_digits(const char *s)
{
    if (!*s) return false;
    for (; *s; s++)
        if (*s < '0' || *s > '9') return false;
    return true;
}

/* Splits a colon-separated line into at most max fields (in place). */
static int fields(char *line, char **f, int max)
{
    int n = 0;
    f[n++] = line;
    for (char *p = line; *p && n < max; p++)
        if (*p == ':') *p = 0, f[n++] = p + 1;
    return n;
}

/* passwd lookup by name or uid; returns 0 when found. */
static int find_passwd(const char *db, const char *who, long *uid, long *gid, char *name, size_t nn)
{
    if (!db) return -1;
    char *copy = xstrdup(db), *save = NULL;
    int rc = -1;
    for (char *line = strtok_r(copy, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        char *f[7];
        if (fields(line, f, 7) < 4) continue;
        if (strcmp(f[0], who) && !(all_digits(who) && !strcmp(f[2], who))) continue;
        *uid = atol(f[2]);
        *gid = atol(f[3]);
        snprintf(name, nn, "%s", f[0]);
        rc = 0;
        break;
    }
    free(copy);
    return rc;
}

static int find_group(const char *db, const char *who, long *gid)
{
    if (!db) return -1;
    char *copy = xstrdup(db), *save = NULL;
    int rc = -1;
    for (char *line = strtok_r(copy, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        char *f[4];
        if (fields(line, f, 4) < 3) continue;
        if (strcmp(f[0], who) && !(all_digits(who) && !strcmp(f[2], who))) continue;
        *gid = atol(f[2]);
        rc = 0;
        break;
    }
    free(copy);
    return rc;
}

/* Groups listing `user` as a member. */
static void member_groups(const char *db, const char *user, json_t *out)
{
    if (!db || !*user) return;
    char *copy = xstrdup(db), *save = NULL;
    for (char *line = strtok_r(copy, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        char *f[4];
        if (fields(line, f, 4) < 4) continue;
        char *s2 = NULL;
        for (char *m = strtok_r(f[3], ",", &s2); m; m = strtok_r(NULL, ",", &s2))
            if (!strcmp(m, user)) json_array_append_new(out, json_integer(atol(f[2])));
    }
    free(copy);
}

int userdb_host_gid(const char *group, gid_t *gid)
{
    _cleanup_free_ char *db = read_in_root("/", "/etc/group");
    long g;
    if (find_group(db, group, &g) == 0)
        *gid = (gid_t)g;
    else if (all_digits(group) && strlen(group) < 10)
        *gid = (gid_t)atol(group);
    else
        return -1;
    return 0;
}

static json_t *resolve_user(const char *passwd, const char *group, const char *user,
                            const json_t *group_add, berr *e);

json_t *ocispec_user(const char *rootfs, const char *user, const json_t *group_add, berr *e)
{
    _cleanup_free_ char *passwd = read_in_root(rootfs, "/etc/passwd");
    _cleanup_free_ char *group = read_in_root(rootfs, "/etc/group");
    return resolve_user(passwd, group, user, group_add, e);
}

json_t *ocispec_user_layers(char *const *layers, int n, const char *user, const json_t *group_add,
                            bool *undecided, berr *e)
{
    _cleanup_free_ char *passwd = NULL;
    _cleanup_free_ char *group = NULL;
    *undecided = !read_in_layers(layers, n, "etc/passwd", &passwd) ||
                 !read_in_layers(layers, n, "etc/group", &group);
    return *undecided ? NULL : resolve_user(passwd, group, user, group_add, e);
}

static json_t *resolve_user(const char *passwd, const char *group, const char *user,
                            const json_t *group_add, berr *e)
{
    _cleanup_free_ char *u = xstrdup(user && *user ? user : "0");
    char *g = strchr(u, ':');
    if (g) *g++ = 0;
    long uid = 0, gid = 0;
    char name[256] = "";
    if (find_passwd(passwd, u, &uid, &gid, name, sizeof name) < 0) {
        if (!all_digits(u)) {
            berr_set(e, 400, "unable to find user %s: no matching entries in passwd file", u);
            return NULL;
        }
        uid = atol(u);
        gid = 0;
    }
    if (g && *g && find_group(group, g, &gid) < 0) {
        if (!all_digits(g)) {
            berr_set(e, 400, "unable to find group %s: no matching entries in group file", g);
            return NULL;
        }
        gid = atol(g);
    }
    json_t *extra = json_array();
    if (!g) member_groups(group, name, extra);
    size_t i;
    json_t *v;
    json_array_foreach(group_add, i, v)
    {
        const char *s = json_string_value(v);
        long x;
        if (!s) continue;
        if (find_group(group, s, &x) < 0) {
            if (!all_digits(s)) {
                json_decref(extra);
                berr_set(e, 400, "Unable to find group %s", s);
                return NULL;
            }
            x = atol(s);
        }
        json_array_append_new(extra, json_integer(x));
    }
    json_t *r = json_pack("{s:I,s:I}", "uid", (json_int_t)uid, "gid", (json_int_t)gid);
    if (json_array_size(extra)) json_object_set(r, "additionalGids", extra);
    json_decref(extra);
    return r;
}
