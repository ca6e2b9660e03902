/* mounts.c: the container's root filesystem, built inside its new mount
 * namespace: private propagation, root.path bound on itself, the spec's
 * mounts (bind, tmpfs, proc, sysfs, devpts, mqueue, cgroup...) placed with
 * openat2(RESOLVE_IN_ROOT) so an image's symlinks can never lead a mount out
 * of the root, then pivot_root, root.readonly, read-only paths and masked
 * paths. All with mount(2): no helper program. */
#include <errno.h>
#include <fcntl.h>
#include <linux/mount.h>
#include <linux/openat2.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "internal.h"

/* ---- safe paths inside the root ---- */
int rt_open_in_root(int rootfd, const char *path, int flags, berr *e)
{
    struct open_how how = {.flags = (uint64_t)(flags | O_CLOEXEC),
                           .resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS};
    while (*path == '/') path++;
    int fd = (int)syscall(SYS_openat2, rootfd, *path ? path : ".", &how, sizeof how);
    if (fd < 0 && e) berr_errno(e, 500, "open /%s in the container root", path);
    return fd;
}

/* Creates every missing directory of path (like mkdir -p), each one looked
 * up again from the root so that symlinks resolve inside it. */
int rt_mkdir_in_root(int rootfd, const char *path, mode_t mode, berr *e)
{
    char buf[4096];
    if (snprintf(buf, sizeof buf, "%s", path) >= (int)sizeof buf)
        return berr_set(e, 400, "path too long: %s", path);
    int fd = rt_open_in_root(rootfd, buf, O_PATH | O_DIRECTORY, NULL);
    if (fd >= 0) return close(fd), 0;
    char *last = strrchr(buf, '/');
    if (errno == ENOENT && last && last[1]) { /* usually only the last one is missing */
        *last = 0;
        int dfd = rt_open_in_root(rootfd, buf, O_PATH | O_DIRECTORY, NULL);
        *last = '/';
        int r = dfd < 0 ? -1 : mkdirat(dfd, last + 1, mode);
        if (dfd >= 0) close(dfd);
        if (r == 0) return 0;
    }
    int parent = dup(rootfd);
    char *p = buf;
    while (*p) {
        while (*p == '/') p++;
        char *end = strchrnul(p, '/');
        char save = *end;
        *end = 0;
        if (*p && mkdirat(parent, p, mode) < 0 && errno != EEXIST) {
            berr_errno(e, 500, "mkdir %s", buf);
            close(parent);
            return -1;
        }
        close(parent);
        parent = rt_open_in_root(rootfd, buf, O_PATH | O_DIRECTORY, e);
        if (parent < 0) return -1;
        *end = save;
        p = end;
    }
    close(parent);
    return 0;
}

/* Creates an empty file at path (for a bind mount of a file). */
static int touch_in_root(int rootfd, const char *path, berr *e)
{
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    const char *base = slash ? slash + 1 : dir;
    if (slash) *slash = 0;
    if (rt_mkdir_in_root(rootfd, dir, 0755, e) < 0) return -1;
    _cleanup_close_ int dfd = rt_open_in_root(rootfd, dir, O_PATH | O_DIRECTORY, e);
    if (dfd < 0) return -1;
    int fd = openat(dfd, base, O_CREAT | O_WRONLY | O_NOFOLLOW | O_CLOEXEC, 0644);
    if (fd < 0 && errno != EEXIST && errno != EISDIR && errno != ELOOP)
        return berr_errno(e, 500, "create mount point %s", path);
    if (fd >= 0) close(fd);
    return 0;
}

static const char *fdpath(int fd, char buf[32])
{
    snprintf(buf, 32, "/proc/self/fd/%d", fd);
    return buf;
}

unsigned long rt_statvfs_flags(const char *path)
{
    struct statvfs v;
    if (statvfs(path, &v) < 0) return 0;
    static const struct {
        unsigned long st, ms;
    } map[] = {
        {ST_RDONLY, MS_RDONLY},   {ST_NOSUID, MS_NOSUID},           {ST_NODEV, MS_NODEV},
        {ST_NOEXEC, MS_NOEXEC},   {ST_SYNCHRONOUS, MS_SYNCHRONOUS}, {ST_MANDLOCK, MS_MANDLOCK},
        {ST_NOATIME, MS_NOATIME}, {ST_NODIRATIME, MS_NODIRATIME},   {ST_RELATIME, MS_RELATIME}};
    unsigned long f = 0;
    for (size_t i = 0; i < sizeof map / sizeof *map; i++)
        if (v.f_flag & map[i].st) f |= map[i].ms;
    return f;
}

/* ---- a file system made in no mount namespace ---- */
/* MS_* flags as mount attributes; false when one has none. */
static bool mount_attrs(unsigned long f, uint64_t *attr)
{
    static const struct {
        unsigned long ms;
        uint64_t attr;
    } map[] = {{MS_RDONLY, MOUNT_ATTR_RDONLY},
               {MS_NOSUID, MOUNT_ATTR_NOSUID},
               {MS_NODEV, MOUNT_ATTR_NODEV},
               {MS_NOEXEC, MOUNT_ATTR_NOEXEC},
               {MS_STRICTATIME, MOUNT_ATTR_STRICTATIME},
               {MS_NOATIME, MOUNT_ATTR_NOATIME},
               {MS_NODIRATIME, MOUNT_ATTR_NODIRATIME},
               {MS_RELATIME, MOUNT_ATTR_RELATIME},
               {MS_SILENT, 0}};
    *attr = 0;
    for (size_t i = 0; i < sizeof map / sizeof *map; i++)
        if (f & map[i].ms) *attr |= map[i].attr, f &= ~map[i].ms;
    return f == 0;
}

int rt_detached_fs(const rt_mount *m)
{
    uint64_t attr;
    if (m->bind || !m->type || (m->propflags & ~(MS_PRIVATE | MS_REC)) ||
        !mount_attrs(m->flags, &attr))
        return -1;
    int fs = (int)syscall(SYS_fsopen, m->type, FSOPEN_CLOEXEC), t = -1;
    if (fs < 0) return -1;
    bool ok =
        !m->source || syscall(SYS_fsconfig, fs, FSCONFIG_SET_STRING, "source", m->source, 0) == 0;
    char *data = m->data ? xstrdup(m->data) : NULL, *save = NULL;
    for (char *o = data ? strtok_r(data, ",", &save) : NULL; ok && o;
         o = strtok_r(NULL, ",", &save)) {
        char *eq = strchr(o, '=');
        if (eq) *eq = 0;
        ok = syscall(SYS_fsconfig, fs, eq ? FSCONFIG_SET_STRING : FSCONFIG_SET_FLAG, o,
                     eq ? eq + 1 : NULL, 0) == 0;
    }
    free(data);
    if (ok && syscall(SYS_fsconfig, fs, FSCONFIG_CMD_CREATE, NULL, NULL, 0) == 0)
        t = (int)syscall(SYS_fsmount, fs, FSMOUNT_CLOEXEC, (unsigned)attr);
    close(fs);
    return t;
}

/* ---- one mount of mounts[] ---- */
static int mount_target(int rootfd, const rt_mount *m, bool dir, berr *e)
{
    /* usually there already: one lookup */
    int fd = rt_open_in_root(rootfd, m->dest, O_PATH | (dir ? O_DIRECTORY : 0), NULL);
    if (fd >= 0) return fd;
    if (dir ? rt_mkdir_in_root(rootfd, m->dest, 0755, e) < 0
            : touch_in_root(rootfd, m->dest, e) < 0)
        return -1;
    return rt_open_in_root(rootfd, m->dest, O_PATH, e);
}

static int mount_bind(int rootfd, const rt_mount *m, berr *e)
{
    struct stat st;
    if (stat(m->source, &st) < 0) return berr_errno(e, 400, "bind mount source %s", m->source);
    _cleanup_close_ int fd = mount_target(rootfd, m, S_ISDIR(st.st_mode), e);
    if (fd < 0) return -1;
    char p[32];
    if (mount(m->source, fdpath(fd, p), NULL, MS_BIND | (m->flags & MS_REC), NULL) < 0)
        return berr_errno(e, 500, "bind mount %s on %s", m->source, m->dest);
    unsigned long extra = m->flags & ~(MS_BIND | MS_REC | MS_REMOUNT);
    if (!extra) return 0;
    _cleanup_close_ int top = rt_open_in_root(rootfd, m->dest, O_PATH, e);
    if (top < 0) return -1;
    fdpath(top, p);
    if (mount(NULL, p, NULL, MS_BIND | MS_REMOUNT | extra | rt_statvfs_flags(p), NULL) < 0)
        return berr_errno(e, 500, "remount %s with its options", m->dest);
    return 0;
}

static int mount_fs(int rootfd, const rt_spec *s, const rt_mount *m, berr *e)
{
    if (m->type && !strcmp(m->type, "cgroup")) return rt_cgroup_mount(s, m, rootfd, e);
    _cleanup_close_ int fd = mount_target(rootfd, m, true, e);
    if (fd < 0) return -1;
    char p[32];
    const char *src = m->source ? m->source : (m->type ? m->type : "none");
    if (mount(src, fdpath(fd, p), m->type, m->flags & ~MS_REMOUNT, m->data) == 0) return 0;
    if (errno == EPERM && m->type && !strcmp(m->type, "sysfs")) { /* not our net ns: bind it */
        if (mount("/sys", p, NULL, MS_BIND | MS_REC, NULL) == 0) {
            _cleanup_close_ int top = rt_open_in_root(rootfd, m->dest, O_PATH, e);
            if (top >= 0 &&
                mount(NULL, fdpath(top, p), NULL,
                      MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC,
                      NULL) == 0)
                return 0;
        }
    }
    return berr_errno(e, 500, "mount %s (%s) on %s", src, m->type ? m->type : "?", m->dest);
}

/* Under a root made rprivate every new mount is private already (its
 * parent and a bind's source are): asking for rprivate again changes nothing. */
static bool prop_is_given(const rt_spec *s, const rt_mount *m)
{
    return s->rootfs_prop == (MS_REC | MS_PRIVATE) && (m->propflags & ~MS_REC) == MS_PRIVATE;
}

/* m's propagation (rshared...) on what is now mounted at its destination */
static int set_propagation(int rootfd, const rt_spec *s, const rt_mount *m, berr *e)
{
    if (!m->propflags || prop_is_given(s, m)) return 0;
    _cleanup_close_ int top = rt_open_in_root(rootfd, m->dest, O_PATH, e);
    char p[32];
    if (top < 0 || mount(NULL, fdpath(top, p), NULL, m->propflags, NULL) < 0)
        return berr_errno(e, 500, "set propagation of %s", m->dest);
    return 0;
}

static int mount_one(int rootfd, const rt_spec *s, const rt_mount *m, berr *e)
{
    int r = m->bind ? mount_bind(rootfd, m, e) : mount_fs(rootfd, s, m, e);
    return r < 0 ? r : set_propagation(rootfd, s, m, e);
}

/* A mount at "/" (an overlay the daemon lets the spec carry) goes on root.path. */
static int mount_root_overlays(const rt_spec *s, berr *e)
{
    for (size_t i = 0; i < s->nmounts; i++) {
        const rt_mount *m = &s->mounts[i];
        if (strcmp(m->dest, "/") || m->bind) continue;
        if (mount(m->source ? m->source : m->type, s->rootfs, m->type, m->flags, m->data) < 0)
            return berr_errno(e, 500, "mount %s on the root %s", m->type ? m->type : "?",
                              s->rootfs);
    }
    return 0;
}

/* A /dev made ahead (rt_dev_tree_make), +1 (0: none): the spec says it is
 * its /dev (annotation org.berth.dev-made) and asks for no other node; not
 * in a user namespace, whose /dev is made of binds of the host's nodes. */
static int child_dev_tree;

void rt_child_take_dev_tree(const rt_spec *s, int tree)
{
    const char *made = jstr(s->annotations, "org.berth.dev-made");
    bool fits = made && !strcmp(made, "true") && !s->ndevices && !rt_spec_has_ns(s, CLONE_NEWUSER);
    child_dev_tree = tree >= 0 && fits ? tree + 1 : 0;
}

/* m (the /dev tmpfs) replaced by the tree: 1 when attached, 0 when not
 * (m is mounted as usual), -1 on failure after it was. */
static int attach_dev_tree(int rootfd, const rt_spec *s, const rt_mount *m, berr *e)
{
    if (child_dev_tree <= 0 || m->bind || strcmp(m->dest, "/dev")) return 0;
    _cleanup_close_ int fd = mount_target(rootfd, m, true, e);
    if (fd < 0 || syscall(SYS_move_mount, child_dev_tree - 1, "", fd, "",
                          MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH) < 0)
        return 0;
    return set_propagation(rootfd, s, m, e) < 0 ? -1 : 1;
}

int rt_rootfs_prepare(const rt_spec *s, const rt_process *proc, int *master, int *slave, berr *e)
{
    *master = *slave = -1;
    if (mount(NULL, "/", NULL, s->rootfs_prop, NULL) < 0)
        return berr_errno(e, 500, "make / private");
    if (mount_root_overlays(s, e) < 0) return -1;
    if (mount(s->rootfs, s->rootfs, NULL, MS_BIND | MS_REC, NULL) < 0)
        return berr_errno(e, 500, "bind the root %s", s->rootfs);
    _cleanup_close_ int rootfd = open(s->rootfs, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (rootfd < 0) return berr_errno(e, 500, "open root %s", s->rootfs);
    trace_mark("child root bound");
    bool dev_made = false; /* /dev is the tree: its pts and shm, nodes and links are there */
    for (size_t i = 0; i < s->nmounts; i++) {
        const rt_mount *m = &s->mounts[i];
        if (!strcmp(m->dest, "/") ||
            (dev_made && (!strcmp(m->dest, "/dev/pts") || !strcmp(m->dest, "/dev/shm"))))
            continue;
        int attached = dev_made ? 0 : attach_dev_tree(rootfd, s, m, e);
        if (attached < 0 || (!attached && mount_one(rootfd, s, m, e) < 0)) return -1;
        dev_made = dev_made || attached;
        trace_mark("child mount %s", m->dest);
    }
    if (rt_dev_is_ours(s) && !dev_made && rt_devices_create(s, rootfd, e) < 0) return -1;
    trace_mark("child devices");
    if (proc->terminal) {
        if (rt_pty_open(rootfd, master, slave, e) < 0) return -1;
        if (proc->rows || proc->cols) {
            struct winsize ws = {.ws_row = proc->rows, .ws_col = proc->cols};
            ioctl(*master, TIOCSWINSZ, &ws);
        }
        if (rt_console_setup(rootfd, *master, *slave, e) < 0) return -1;
    }
    if (rt_mkdir_in_root(rootfd, proc->cwd, 0755, e) < 0) {
        e->status = 400;
        return -1;
    }
    return 0;
}

/* ---- pivot ---- */
int rt_rootfs_pivot(const rt_spec *s, bool no_pivot, berr *e)
{
    if (no_pivot) {
        if (chdir(s->rootfs) < 0 || mount(s->rootfs, "/", NULL, MS_MOVE, NULL) < 0 ||
            chroot(".") < 0 || chdir("/") < 0)
            return berr_errno(e, 500, "move the root to /");
        return 0;
    }
    _cleanup_close_ int oldroot = open("/", O_DIRECTORY | O_RDONLY | O_CLOEXEC);
    _cleanup_close_ int newroot = open(s->rootfs, O_DIRECTORY | O_RDONLY | O_CLOEXEC);
    if (oldroot < 0 || newroot < 0) return berr_errno(e, 500, "open the roots");
    if (fchdir(newroot) < 0) return berr_errno(e, 500, "chdir %s", s->rootfs);
    if (syscall(SYS_pivot_root, ".", ".") < 0)
        return berr_errno(e, 500, "pivot_root %s", s->rootfs);
    if (fchdir(oldroot) < 0) return berr_errno(e, 500, "fchdir old root");
    /* the old root must not propagate its unmount back to the host (made
     * rprivate with the rest already, unless rootfsPropagation said else) */
    if (s->rootfs_prop != (MS_REC | MS_PRIVATE) &&
        mount(NULL, ".", NULL, MS_SLAVE | MS_REC, NULL) < 0)
        return berr_errno(e, 500, "make old root slave");
    if (umount2(".", MNT_DETACH) < 0) return berr_errno(e, 500, "detach old root");
    if (chdir("/") < 0) return berr_errno(e, 500, "chdir /");
    return 0;
}

/* ---- after pivot ---- */
static int readonly_path(const char *p, berr *e)
{
    if (mount(p, p, NULL, MS_BIND | MS_REC, NULL) < 0) {
        if (errno == ENOENT) return 0;
        return berr_errno(e, 500, "bind %s read-only", p);
    }
    if (mount(NULL, p, NULL, MS_BIND | MS_REMOUNT | MS_RDONLY | MS_REC | rt_statvfs_flags(p),
              NULL) < 0)
        return berr_errno(e, 500, "remount %s read-only", p);
    return 0;
}

static int mask_path(const char *p, berr *e)
{
    struct stat st;
    if (lstat(p, &st) < 0) return 0; /* nothing to hide */
    int r = S_ISDIR(st.st_mode) ? mount("tmpfs", p, "tmpfs", MS_RDONLY, "size=0k")
                                : mount("/dev/null", p, NULL, MS_BIND, NULL);
    if (r < 0 && errno != ENOENT) return berr_errno(e, 500, "mask %s", p);
    return 0;
}

int rt_rootfs_finish(const rt_spec *s, berr *e)
{
    if (s->root_ro &&
        mount(NULL, "/", NULL, MS_BIND | MS_REMOUNT | MS_RDONLY | rt_statvfs_flags("/"), NULL) < 0)
        return berr_errno(e, 500, "remount the root read-only");
    for (char **p = s->readonly; *p; p++)
        if (readonly_path(*p, e) < 0) return -1;
    trace_mark("child ro paths");
    for (char **p = s->masked; *p; p++)
        if (mask_path(*p, e) < 0) return -1;
    return 0;
}
