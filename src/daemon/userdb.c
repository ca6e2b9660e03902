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
#include <sys/syscall.h>
#include <unistd.h>

#include "common/jsonutil.h"
#include "daemon/ocispec.h"

static char *read_in_root(const char *rootfs, const char *path)
{
    int root = open(rootfs, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (root < 0) return NULL;
    struct open_how how = {.flags = O_RDONLY | O_CLOEXEC,
                           .resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS};
    int fd = (int)syscall(SYS_openat2, root, path, &how, sizeof how);
    close(root);
    if (fd < 0) return NULL;
    sbuf b = {0};
    char buf[4096];
    ssize_t n;
    while ((n = read(fd, buf, sizeof buf)) > 0 && b.len < (1u << 20)) sbuf_add(&b, buf, (size_t)n);
    close(fd);
    return sbuf_steal(&b);
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

json_t *ocispec_user(const char *rootfs, const char *user, const json_t *group_add, berr *e)
{
    _cleanup_free_ char *passwd = read_in_root(rootfs, "/etc/passwd");
    _cleanup_free_ char *group = read_in_root(rootfs, "/etc/group");
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
