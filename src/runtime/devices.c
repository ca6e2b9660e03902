/* devices.c: /dev inside the container: the standard nodes (null zero full
 * random urandom tty) plus linux.devices, made with mknod (or bound from the
 * host inside a user namespace, where mknod is refused), the fd/stdio/ptmx
 * symlinks, the terminal (a pty of the container's own devpts instance bound
 * on /dev/console), and the parsing of cgroup device rules. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/syscall.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <termios.h>
#include <unistd.h>

#include "internal.h"

static const rt_device default_devices[] = {
    {"/dev/null", 'c', 1, 3, 0666, 0, 0},    {"/dev/zero", 'c', 1, 5, 0666, 0, 0},
    {"/dev/full", 'c', 1, 7, 0666, 0, 0},    {"/dev/random", 'c', 1, 8, 0666, 0, 0},
    {"/dev/urandom", 'c', 1, 9, 0666, 0, 0}, {"/dev/tty", 'c', 5, 0, 0666, 0, 0},
};

bool rt_dev_is_ours(const rt_spec *s)
{
    for (size_t i = 0; i < s->nmounts; i++)
        if (!strcmp(s->mounts[i].dest, "/dev") && s->mounts[i].bind) return false;
    return true;
}

static int bind_host_device(int dfd, const char *base, const rt_device *d, berr *e)
{
    int fd = openat(dfd, base, O_CREAT | O_WRONLY | O_NOFOLLOW | O_CLOEXEC, 0644);
    if (fd < 0) return berr_errno(e, 500, "create %s", d->path);
    close(fd);
    _cleanup_close_ int t = openat(dfd, base, O_PATH | O_NOFOLLOW | O_CLOEXEC);
    char p[32];
    snprintf(p, sizeof p, "/proc/self/fd/%d", t);
    if (t < 0 || mount(d->path, p, NULL, MS_BIND, NULL) < 0)
        return berr_errno(e, 500, "bind %s", d->path);
    return 0;
}

/* d in the directory dfd (its last component); whatever has its name goes */
static int make_node(int dfd, const char *base, const rt_device *d, berr *e)
{
    mode_t type = d->type == 'b' ? S_IFBLK : d->type == 'p' ? S_IFIFO : S_IFCHR;
    dev_t dev = makedev(d->major, d->minor);
    int r = mknodat(dfd, base, type | (d->mode & 07777), dev);
    if (r < 0 && errno == EEXIST && unlinkat(dfd, base, 0) == 0)
        r = mknodat(dfd, base, type | (d->mode & 07777), dev);
    if (r < 0) {
        if (errno == EPERM) return bind_host_device(dfd, base, d, e);
        return berr_errno(e, 500, "mknod %s", d->path);
    }
    if (fchmodat(dfd, base, d->mode & 07777, 0) < 0 ||
        fchownat(dfd, base, d->uid, d->gid, AT_SYMLINK_NOFOLLOW) < 0)
        return berr_errno(e, 500, "set mode/owner of %s", d->path);
    return 0;
}

static int make_device(int rootfd, const rt_device *d, berr *e)
{
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", d->path);
    char *slash = strrchr(dir, '/');
    *slash = 0;
    const char *base = d->path + (slash - dir) + 1;
    if (rt_mkdir_in_root(rootfd, dir, 0755, e) < 0) return -1;
    _cleanup_close_ int dfd = rt_open_in_root(rootfd, dir, O_PATH | O_DIRECTORY, e);
    if (dfd < 0) return -1;
    return make_node(dfd, base, d, e);
}

static bool spec_has_device(const rt_spec *s, const char *path)
{
    for (size_t i = 0; i < s->ndevices; i++)
        if (!strcmp(s->devices[i].path, path)) return true;
    return false;
}

/* The fd/stdio/ptmx/core links in the /dev directory dfd. */
static int dev_symlinks_in(int dfd, berr *e)
{
    static const char *const links[][2] = {
        {"/proc/self/fd", "fd"},       {"/proc/self/fd/0", "stdin"}, {"/proc/self/fd/1", "stdout"},
        {"/proc/self/fd/2", "stderr"}, {"pts/ptmx", "ptmx"},         {"/proc/kcore", "core"},
    };
    for (size_t i = 0; i < sizeof links / sizeof *links; i++) {
        if (!strcmp(links[i][1], "ptmx")) unlinkat(dfd, "ptmx", 0);
        if (symlinkat(links[i][0], dfd, links[i][1]) < 0 && errno != EEXIST)
            return berr_errno(e, 500, "symlink /dev/%s", links[i][1]);
    }
    return 0;
}

static int dev_symlinks(int rootfd, berr *e)
{
    _cleanup_close_ int dfd = rt_open_in_root(rootfd, "/dev", O_PATH | O_DIRECTORY, e);
    if (dfd < 0) return -1;
    return dev_symlinks_in(dfd, e);
}

int rt_devices_create(const rt_spec *s, int rootfd, berr *e)
{
    _cleanup_close_ int dev = -1; /* the standard nodes are all in /dev: opened once */
    for (size_t i = 0; i < sizeof default_devices / sizeof *default_devices; i++) {
        const rt_device *d = &default_devices[i];
        if (spec_has_device(s, d->path)) continue;
        if (dev < 0 && (rt_mkdir_in_root(rootfd, "/dev", 0755, e) < 0 ||
                        (dev = rt_open_in_root(rootfd, "/dev", O_PATH | O_DIRECTORY, e)) < 0))
            return -1;
        if (make_node(dev, d->path + 5, d, e) < 0) return -1;
    }
    for (size_t i = 0; i < s->ndevices; i++)
        if (make_device(rootfd, &s->devices[i], e) < 0) return -1;
    return dev_symlinks(rootfd, e);
}

/* ---- /dev made ahead (runtime.h rt_dev_tree_make) ---- */
int rt_dev_tree_make(const json_t *mounts)
{
    static const char *const dest[] = {"/dev", "/dev/pts", "/dev/shm"};
    rt_mount m[3] = {{0}};
    berr e;
    int t = -1;
    bool ok = json_array_size(mounts) == 3;
    for (size_t i = 0; ok && i < 3; i++)
        ok = rt_mount_parse(json_array_get(mounts, i), &m[i], &e) == 0 &&
             !strcmp(m[i].dest, dest[i]);
    if (ok) t = rt_detached_fs(&m[0]);
    for (size_t i = 0; t >= 0 && i < sizeof default_devices / sizeof *default_devices; i++)
        if (make_node(t, default_devices[i].path + 5, &default_devices[i], &e) < 0)
            close(t), t = -1;
    if (t >= 0 && dev_symlinks_in(t, &e) < 0) close(t), t = -1;
    for (size_t i = 1; t >= 0 && i < 3; i++) {
        int sub = mkdirat(t, dest[i] + 5, 0755) == 0 ? rt_detached_fs(&m[i]) : -1;
        if (sub < 0 ||
            syscall(SYS_move_mount, sub, "", t, dest[i] + 5, MOVE_MOUNT_F_EMPTY_PATH) < 0)
            close(t), t = -1;
        if (sub >= 0) close(sub);
    }
    for (size_t i = 0; i < 3; i++) rt_mount_free(&m[i]);
    return t;
}

/* ---- terminal ---- */
int rt_pty_open(int rootfd, int *master, int *slave, berr *e)
{
    *master = rt_open_in_root(rootfd, "/dev/pts/ptmx", O_RDWR | O_NOCTTY, NULL);
    if (*master < 0) *master = open("/dev/ptmx", O_RDWR | O_NOCTTY | O_CLOEXEC);
    if (*master < 0) return berr_errno(e, 500, "open a pty master");
    if (unlockpt(*master) < 0) return berr_errno(e, 500, "unlockpt");
    *slave = ioctl(*master, TIOCGPTPEER, O_RDWR | O_NOCTTY | O_CLOEXEC);
    if (*slave < 0) return berr_errno(e, 500, "open the pty slave");
    return 0;
}

int rt_console_setup(int rootfd, int master, int slave, berr *e)
{
    _cleanup_close_ int dfd = rt_open_in_root(rootfd, "/dev", O_PATH | O_DIRECTORY, e);
    if (dfd < 0) return -1;
    int fd = openat(dfd, "console", O_CREAT | O_WRONLY | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd >= 0) close(fd);
    _cleanup_close_ int t = openat(dfd, "console", O_PATH | O_NOFOLLOW | O_CLOEXEC);
    if (t < 0) return berr_errno(e, 500, "create /dev/console");
    char src[32], dst[32];
    snprintf(src, sizeof src, "/proc/self/fd/%d", slave);
    snprintf(dst, sizeof dst, "/proc/self/fd/%d", t);
    if (mount(src, dst, NULL, MS_BIND, NULL) < 0)
        return berr_errno(e, 500, "bind the pty on /dev/console");
    (void)master;
    return 0;
}

/* ---- cgroup device rules ---- */
int rt_devrule_parse(const json_t *j, rt_devrule *r, berr *e)
{
    if (!json_is_object(j)) return berr_set(e, 400, "device rule must be an object");
    r->allow = json_is_true(json_object_get(j, "allow"));
    const char *type = jstr(j, "type"), *access = jstr(j, "access");
    r->type = type && *type ? type[0] : 'a';
    if (!strchr("acb", r->type)) return berr_set(e, 400, "device rule: bad type %s", type);
    json_t *ma = json_object_get(j, "major"), *mi = json_object_get(j, "minor");
    r->major = json_is_integer(ma) ? (long)json_integer_value(ma) : -1;
    r->minor = json_is_integer(mi) ? (long)json_integer_value(mi) : -1;
    snprintf(r->access, sizeof r->access, "%s", access && *access ? access : "rwm");
    if (strspn(r->access, "rwm") != strlen(r->access))
        return berr_set(e, 400, "device rule: bad access %s", access);
    return 0;
}
