/* internal.h: the runtime's internal types and the functions its files share.
 * Everything the container process needs is parsed into plain C structures
 * before the clone, so the child allocates little and parses nothing. */
#ifndef BERTH_RT_INTERNAL_H
#define BERTH_RT_INTERNAL_H

#include <sys/resource.h>

#include "common/jsonutil.h"
#include "runtime.h"

#define RT_OCI_VERSION "1.0.2-dev"
#define RT_MAX_NS 8

typedef struct rt_caps {
    bool set; /* the spec had a capabilities object */
    uint64_t bounding, effective, permitted, inheritable, ambient;
} rt_caps;

typedef struct rt_rlimit {
    int resource;
    uint64_t soft, hard;
} rt_rlimit;

struct rt_process {
    char **args, **env; /* NULL-terminated */
    char *cwd;
    uid_t uid;
    gid_t gid;
    gid_t *gids;
    size_t ngids;
    bool has_umask;
    mode_t umask;
    bool terminal;
    unsigned short rows, cols;
    rt_caps caps;
    rt_rlimit *rlimits;
    size_t nrlimits;
    bool nnp;
    bool has_oom;
    int oom_score_adj;
};

typedef struct rt_mount {
    char *dest, *source, *type, *data;
    unsigned long flags;     /* MS_* without propagation */
    unsigned long propflags; /* MS_PRIVATE/SLAVE/SHARED/UNBINDABLE (|MS_REC) */
    bool bind;
} rt_mount;

/* One entry of mounts[] (zeroed m; rt_mount_free after). */
int rt_mount_parse(const json_t *j, rt_mount *m, berr *e);
void rt_mount_free(rt_mount *m); /* its strings */
/* The file system m asks for, with its options, mounted in no mount
 * namespace (fsopen, fsmount); -1 where that cannot be done the same way. */
int rt_detached_fs(const rt_mount *m);

typedef struct rt_ns {
    int type; /* CLONE_NEW* */
    char *path;
} rt_ns;

typedef struct rt_device {
    char *path;
    char type; /* c b p */
    long major, minor;
    mode_t mode;
    uid_t uid;
    gid_t gid;
} rt_device;

typedef struct rt_devrule {
    bool allow;
    char type;         /* a c b */
    long major, minor; /* -1: any */
    char access[4];
} rt_devrule;

typedef struct rt_idmap {
    uint32_t inner, outer, size;
} rt_idmap;

/* RT_UNSET (or NULL) means "not set" throughout; -1 means unlimited. */
#define RT_UNSET INT64_MIN
struct rt_resources {
    int64_t mem_limit, mem_reservation, mem_swap, mem_swappiness;
    bool disable_oom_killer;
    int64_t cpu_shares, cpu_quota, cpu_period;
    char *cpus, *mems;
    int64_t pids_limit;
    int64_t blkio_weight;
    rt_devrule *devrules;
    size_t ndevrules;
};

typedef struct rt_sysctl {
    char *key, *value;
} rt_sysctl;

struct rt_spec {
    json_t *seccomp;                  /* linux.seccomp (own reference) or NULL */
    const struct rt_bpf *seccomp_bpf; /* or its program, found by its text (rt_spec_load_text) */
    json_t *annotations;
    char *bundle, *rootfs;
    bool root_ro;
    char *hostname, *domainname;
    rt_process *proc;
    rt_mount *mounts;
    size_t nmounts;
    rt_ns ns[RT_MAX_NS];
    size_t nns;
    rt_device *devices;
    size_t ndevices;
    rt_resources *res;
    char *cgroups_path;
    char **masked, **readonly; /* NULL-terminated */
    rt_sysctl *sysctl;
    size_t nsysctl;
    unsigned long rootfs_prop;
    rt_idmap *uidmap, *gidmap;
    size_t nuidmap, ngidmap;
};

/* spec.c */
bool rt_spec_has_ns(const rt_spec *s, int type); /* new or joined */
const char *rt_spec_ns_path(const rt_spec *s, int type);
char **rt_strv_from_json(const json_t *arr, berr *e, const char *what);
void rt_strv_free(char **v);

/* caps.c */
int rt_caps_parse(const json_t *caps, rt_caps *out, berr *e);
int rt_caps_apply_bounding(const rt_caps *c, berr *e);
int rt_caps_apply(const rt_caps *c, berr *e); /* after the uid switch */
int rt_cap_last(void);

/* limits.c: rlimits, sysctl, oom_score_adj, user switch */
int rt_rlimit_from_name(const char *name);
int rt_rlimits_check(const rt_process *p, berr *e);
int rt_rlimits_apply(const rt_process *p, berr *e);
int rt_sysctl_check(const rt_spec *s, const char *key, berr *e);
int rt_sysctl_apply(const rt_spec *s, berr *e);
int rt_oom_score_apply(const rt_process *p, berr *e);
int rt_user_apply(const rt_process *p, bool in_userns, berr *e);

/* seccomp.c */
typedef struct rt_bpf {
    void *filter; /* struct sock_filter[] */
    unsigned short len;
    unsigned int flags; /* SECCOMP_FILTER_FLAG_* */
} rt_bpf;
/* Compiled program for a spec-form profile, from the cache when possible.
 * Owned by the cache: do not free. */
int rt_seccomp_get(const json_t *seccomp, const rt_bpf **out, berr *e);
int rt_seccomp_load(const rt_bpf *b, berr *e);

/* mounts.c: the root filesystem, run in the container process */
/* Before pivot: mounts, devices, the cwd, and (terminal) a pty from the
 * container's devpts bound on /dev/console; master and slave get it or -1. */
int rt_rootfs_prepare(const rt_spec *s, const rt_process *p, int *master, int *slave, berr *e);
int rt_rootfs_pivot(const rt_spec *s, bool no_pivot, berr *e);
int rt_rootfs_finish(const rt_spec *s, berr *e); /* after pivot: ro, masks */
int rt_open_in_root(int rootfd, const char *path, int flags, berr *e);
int rt_mkdir_in_root(int rootfd, const char *path, mode_t mode, berr *e);
unsigned long rt_statvfs_flags(const char *path); /* MS_* flags of the mount */

/* devices.c */
bool rt_dev_is_ours(const rt_spec *s); /* /dev is a tmpfs we populate */
int rt_devices_create(const rt_spec *s, int rootfd, berr *e);
int rt_pty_open(int rootfd, int *master, int *slave, berr *e);
int rt_console_setup(int rootfd, int master, int slave, berr *e);
int rt_devrule_parse(const json_t *j, rt_devrule *out, berr *e);

/* cgroup.c + cgroup_v1.c + cgroup_v2.c */
#define RT_CG_MAX 20
typedef struct rt_cgdir {
    char *name; /* v1 hierarchy controllers ("memory", "cpu,cpuacct", "name=systemd"); "" = v2 */
    char *path; /* the container's directory in it */
} rt_cgdir;
struct rt_cgroup {
    rt_cgroup_mode mode;
    int n;
    rt_cgdir dirs[RT_CG_MAX];
    /* 1 + the fd of each v1 directory's `tasks`, opened by rt_cgroup_setup
     * before the clone so that the new process only writes to them (0: none) */
    int tasks1[RT_CG_MAX];
    bool made_v1; /* rt_cgroup_setup made a v1 directory itself (not premade) */
};
void rt_cgroup_close_tasks(rt_cgroup *cg);
extern rt_cgroup *rt_child_cgroup; /* the cgroup of the container being created */
const char *rt_cg_dir(const rt_cgroup *cg, const char *ctrl); /* NULL: not mounted */
/* Whether word is an item of list (items separated by any of seps). */
bool rt_cg_list_has(const char *list, const char *word, const char *seps);
int rt_cg_write(const char *dir, const char *file, const char *val);
int rt_cg_writef(const char *dir, const char *file, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
int rt_cg_read(const char *dir, const char *file, char *buf, size_t n);
int64_t rt_cg_read_int(const char *dir, const char *file); /* "max" -> INT64_MAX; -1 error */
int64_t rt_cg_read_key(const char *dir, const char *file, const char *key);
json_t *rt_cg_read_map(const char *dir, const char *file);
bool rt_cg_exists(const char *dir, const char *file);
int rt_cgv1_apply(rt_cgroup *cg, const rt_resources *r, berr *e);
int rt_cgv1_set_devices(const char *dir, const rt_resources *r, berr *e); /* r's rules only */
int rt_cgv1_stats(rt_cgroup *cg, rt_stats *st);
int rt_cgv1_freeze(rt_cgroup *cg, bool frozen, berr *e);
int rt_cgv1_cpuset_init(const char *mountpoint, const char *path);
int rt_cgv2_enable(const char *mnt, const char *path);
int rt_cgv2_apply(rt_cgroup *cg, const rt_resources *r, berr *e);
int rt_cgv2_stats(rt_cgroup *cg, rt_stats *st);
int rt_cgv2_freeze(rt_cgroup *cg, bool frozen, berr *e);
int rt_cgv2_devices(const char *dir, const rt_devrule *rules, size_t n, berr *e);
int rt_cgroup_plan(const rt_spec *s, const char *id, rt_cgroup **out, berr *e);
int rt_cgroup_setup(rt_cgroup *cg, const rt_spec *s, berr *e); /* dirs + limits */
int rt_child_await_cgroup(berr *e); /* in the container process: cgroup ready */
int rt_cgroup_enter(rt_cgroup *cg, pid_t pid, berr *e);
int rt_cgroup_enter_self(rt_cgroup *cg, berr *e); /* v1 hierarchies only */
int rt_cgroup_destroy(rt_cgroup *cg, berr *e);    /* kills leftovers, rmdir */
json_t *rt_cgroup_to_json(const rt_cgroup *cg);
int rt_cgroup_from_json(const json_t *j, rt_cgroup **out);
void rt_cgroup_free(rt_cgroup *cg);
int rt_cgroup_mount(const rt_spec *s, const rt_mount *m, int rootfd, berr *e);
/* seccomp.c: a profile's program by the profile's exact JSON text (1 found);
 * and that text noted for the program compiled from sc */
int rt_seccomp_get_text(const char *text, size_t len, const rt_bpf **out);
void rt_seccomp_note_text(const char *text, size_t len, const json_t *sc);
/* Before the clone: o->cgroup_tree's fd (-1: none) is attached by the child
 * in place of the v1 binds when it serves the container (cgroup.c). */
void rt_child_take_tree(const rt_cgroup *cg, const rt_spec *s, int tree);
/* Before the clone: o->dev_tree's fd (-1: none), attached by the child at
 * /dev when the spec says it may (mounts.c). */
void rt_child_take_dev_tree(const rt_spec *s, int tree);
int rt_cgroup_binds(const rt_cgroup *cg, const rt_spec *s, int *fds, int *mask); /* parent */
void rt_child_take_binds(const int *fds, int n, int mask);                       /* child */

/* process.c */
typedef struct rt_sync_msg {
    int type; /* RT_MSG_* */
    int err;  /* errno */
    int status;
    int pid;
    char msg[900];
} rt_sync_msg;
enum { RT_MSG_GO = 1, RT_MSG_READY, RT_MSG_ERROR, RT_MSG_PID };
#define RT_SYNC_MAX_FDS 16
int rt_sync_send(int sock, const rt_sync_msg *m, int fd); /* fd -1: none */
int rt_sync_recv(int sock, rt_sync_msg *m, int *fd, berr *e);
int rt_sync_send_fds(int sock, const rt_sync_msg *m, const int *fds, int n);
int rt_sync_recv_fds(int sock, rt_sync_msg *m, int *fds, int max, int *n, berr *e);
void rt_child_fail(int sock, const berr *e, int err) __attribute__((noreturn));
char *rt_find_exec(const rt_process *p, int *err);          /* PATH lookup */
int rt_exec_errno_berr(berr *e, const char *arg0, int err); /* 404/403; sets errno */
/* *starttime and *pidfd are read while the child sets itself up */
int rt_spawn_init(const rt_spec *s, const rt_create_opts *o, const rt_bpf *bpf, rt_cgroup *cg,
                  int statefd, pid_t *pid, uint64_t *starttime, int *pidfd, int *master, berr *e);
int rt_pidfd_open(pid_t pid); /* -1 where the kernel has none */
int rt_exec_spawn(pid_t init, rt_cgroup *cg, const rt_process *p, const rt_bpf *bpf,
                  const rt_io *io, pid_t *out, int *master, berr *e);

/* state.c */
struct rt_container {
    char *root, *id, *dir, *bundle, *rootfs, *created, *owner;
    json_t *annotations;
    pid_t pid;
    uint64_t starttime; /* /proc/pid/stat field 22: guards against pid reuse */
    int pidfd;
    int fifo;           /* start_now: exec.fifo's read end, opened before the clone */
    bool state_pending; /* start_now: state.json is written by rt_container_start */
    bool is_parent;     /* this process cloned it: waitpid works */
    rt_cgroup *cg;
};
int rt_state_save(rt_container *c, berr *e);
uint64_t rt_proc_starttime(pid_t pid);
bool rt_container_alive(const rt_container *c);
bool rt_id_valid(const char *id);

#endif
