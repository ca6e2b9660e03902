/* runtime.h: the Berth container runtime as a library (model: libcrun).
 *
 * An OCI runtime-spec config.json (already parsed by jansson) becomes an
 * rt_spec with rt_spec_load. rt_container_create clones ONE process into the
 * new namespaces; that process builds the root filesystem, applies limits,
 * capabilities and seccomp, and then waits, paused before exec, on the
 * container's exec fifo. rt_container_start releases it; the exec result
 * (success, or the errno of a failed execve) comes back to whoever starts it.
 * Every piece of state needed later (pid and its start time, cgroup paths,
 * bundle) is written to <root>/<id>/state.json, so the CLI (one process per
 * command, as runc) and an in-process caller (the daemon's per-container
 * shim) share the same code paths.
 *
 * Errors are values (berr): status 400 bad spec/argument, 404 no such
 * container, 409 wrong state, 500 system failure. A command that cannot be
 * executed is reported with status 404 (not found: the daemon maps it to exit
 * 127) or 403 (permission denied: exit 126); messages read like runc's
 * ("exec: \"foo\": executable file not found in $PATH").
 *
 * Cgroups: v1, v2 and hybrid hosts (v1 controllers plus a v2 mount at
 * /sys/fs/cgroup/unified, handled like runc's cgroupfs driver on v1). */
#ifndef BERTH_RUNTIME_H
#define BERTH_RUNTIME_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "common/util.h"

typedef struct rt_spec rt_spec;           /* a parsed config.json */
typedef struct rt_process rt_process;     /* a parsed "process" object */
typedef struct rt_resources rt_resources; /* a parsed linux.resources object */
typedef struct rt_container rt_container; /* a created container */
typedef struct rt_cgroup rt_cgroup;       /* a container's cgroup (all hierarchies) */

/* ---- spec ---- */
/* Parses an OCI config. `bundle` resolves a relative root.path. The json is
 * borrowed during the call only. Fails (400) on anything malformed or not
 * allowed: a non-namespaced sysctl, an rlimit above the runtime's own hard
 * limit when it lacks CAP_SYS_RESOURCE, a hostname without a UTS namespace. */
int rt_spec_load(const json_t *config, const char *bundle, rt_spec **out, berr *e);
/* The same from config.json's text: a linux.seccomp profile whose exact
 * text was compiled before (rt_set_cache_dir) is not parsed again. */
int rt_spec_load_text(const char *text, size_t len, const char *bundle, rt_spec **out,
                      json_error_t *je, berr *e);
/* Reads and parses <bundle>/config.json. */
int rt_spec_load_bundle(const char *bundle, rt_spec **out, berr *e);
void rt_spec_free(rt_spec *s);
const rt_process *rt_spec_process(const rt_spec *s);
bool rt_spec_terminal(const rt_spec *s); /* process.terminal */

/* A "process" object as in config.json (used for exec). */
int rt_process_load(const json_t *process, rt_process **out, berr *e);
void rt_process_free(rt_process *p);

/* A linux.resources object (used for create and for live update). */
int rt_resources_load(const json_t *resources, rt_resources **out, berr *e);
void rt_resources_free(rt_resources *r);

/* ---- lifecycle ---- */
typedef struct rt_io {
    int fd[3];          /* the process's stdin, stdout, stderr; -1: inherit the caller's */
    int console_socket; /* terminal only: also send the pty master here (runc style), -1 none */
} rt_io;
#define RT_IO_INHERIT                                                                              \
    {                                                                                              \
        {-1, -1, -1}, -1                                                                           \
    }

typedef struct rt_create_opts {
    const char *root;     /* state directory root, e.g. /run/berth-runtime */
    const char *id;       /* container id: [A-Za-z0-9][A-Za-z0-9_.-]* */
    rt_io io;             /* stdio of the container process */
    const char *pid_file; /* optional: pid written here (atomically) */
    bool no_pivot;        /* use MS_MOVE + chroot instead of pivot_root */
    int preserve_fds;     /* fds 3..3+n-1 are passed to the container */
    /* optional: called once the cgroups are made, just before the clone;
     * the shim waits here for berthd to finish the root (-1 aborts) */
    int (*before_clone)(void *arg, berr *e);
    void *before_clone_arg;
    /* optional, with the same arg: called before the cgroup directories are
     * looked up; the shim waits here while berthd renames premade ones */
    int (*before_cgroups)(void *arg, berr *e);
    /* the caller starts it at once: the process does not wait at exec.fifo
     * for rt_container_start (which then saves the state) but execs */
    bool start_now;
    /* 1 + the fd of a tree from rt_cgroup_premake_tree for the premade
     * directories berthd places (0: none); borrowed */
    int cgroup_tree;
    /* 1 + the fd of a /dev from rt_dev_tree_make (0: none), borrowed: used
     * when the spec's annotation org.berth.dev-made is "true" (its /dev,
     * /dev/pts and /dev/shm mounts are the ones the tree was made from) and
     * the spec has no linux.devices */
    int dev_tree;
} rt_create_opts;

/* Clones the container process and waits until it is set up and paused
 * before exec (status "created"). On a terminal spec, *console_fd (if
 * non-NULL) receives the pty master; otherwise -1. */
int rt_container_create(const rt_spec *spec, const rt_create_opts *o, rt_container **out,
                        int *console_fd, berr *e);
/* Releases the paused process and waits for its execve: 0 once it runs the
 * command, -1 with 404/403 (see above) when it cannot be executed. */
int rt_container_start(rt_container *c, berr *e);
/* Loads a container created earlier (possibly by another process). 404 if unknown. */
int rt_container_load(const char *root, const char *id, rt_container **out, berr *e);
void rt_container_free(rt_container *c);

pid_t rt_container_pid(const rt_container *c);
const char *rt_container_id(const rt_container *c);
/* "creating", "created", "running", "paused" or "stopped" (checked live). */
const char *rt_container_status(const rt_container *c);
/* runc's `state` JSON: ociVersion id pid status bundle rootfs created owner [annotations]. */
json_t *rt_container_state_json(const rt_container *c);
rt_cgroup *rt_container_cgroup(rt_container *c); /* borrowed; NULL if none */

/* Signals the init process (all=false) or every process of its cgroup. */
int rt_kill(rt_container *c, int sig, bool all, berr *e);
/* Removes the container: 409 if still running unless force (then SIGKILL
 * everything and wait, bounded). Removes its cgroups and state directory.
 * The mount namespace dies with its last process, so nothing stays mounted. */
int rt_delete(rt_container *c, bool force, berr *e);
int rt_pause(rt_container *c, berr *e);  /* freezer */
int rt_resume(rt_container *c, berr *e); /* thaw */

/* docker exec: a new process in the container's namespaces and cgroup with
 * the same security setup (seccomp, masked paths are already in the mount
 * namespace). `spec` is the container's spec (seccomp profile), `proc` the
 * process to run. Waits for its execve (errors as for start). *pid gets the
 * new process (a child of the caller); *console_fd the pty master if
 * proc->terminal. */
int rt_exec(rt_container *c, const rt_spec *spec, const rt_process *proc, const rt_io *io,
            pid_t *pid, int *console_fd, berr *e);

/* ---- cgroups ---- */
typedef enum { RT_CG_V1 = 1, RT_CG_HYBRID = 2, RT_CG_V2 = 3 } rt_cgroup_mode;
rt_cgroup_mode rt_cgroup_host_mode(void);
/* Whether containers can be limited with controller `name` ("memory",
 * "pids", "cpu", "cpuset"): v1 / hybrid: a hierarchy of it is mounted; v2: it
 * is in the root's cgroup.controllers (rt_cgroup_update refuses a limit
 * whose controller its cgroup lacks). */
bool rt_cgroup_has_controller(const char *name);

typedef struct rt_stats {
    uint64_t mem_usage, mem_max_usage, mem_limit, mem_failcnt, oom_kills;
    json_t *mem_stat; /* memory.stat as {"key": number}; caller decrefs */
    uint64_t cpu_total_ns, cpu_user_ns, cpu_system_ns;
    uint64_t cpu_periods, cpu_throttled_periods, cpu_throttled_ns;
    uint64_t percpu_ns[256];
    int ncpus;                         /* entries in percpu_ns */
    uint64_t pids_current, pids_limit; /* limit 0: none */
    uint64_t blk_read_bytes, blk_write_bytes;
} rt_stats;

/* Live limit change (docker update). */
int rt_cgroup_update(rt_cgroup *cg, const rt_resources *r, berr *e);
int rt_cgroup_stats(rt_cgroup *cg, rt_stats *out, berr *e);
int rt_cgroup_freeze(rt_cgroup *cg, bool frozen, berr *e);
/* OOM kills recorded for the cgroup (v1 memory.oom_control oom_kill, v2
 * memory.events oom_kill); >0 means the container was OOM-killed. */
int64_t rt_cgroup_oom_kills(rt_cgroup *cg);
/* Pids of every process in the cgroup and the cgroups below it; returns the
 * count (<= max) or -1. */
int rt_cgroup_pids(rt_cgroup *cg, pid_t *pids, int max);
/* Signals every process of the cgroup (SIGKILL on v2: cgroup.kill). */
int rt_cgroup_signal(rt_cgroup *cg, int sig);

/* ---- host facts the daemon needs ---- */
/* Capabilities the runtime holds in its bounding set (bit n = capability n):
 * what --privileged means. */
uint64_t rt_caps_held(void);
/* Capability number from "CAP_NET_ADMIN" or "NET_ADMIN"; -1 if unknown. */
int rt_cap_from_name(const char *name);
const char *rt_cap_name(int cap);
/* The largest hard limit an rlimit may get here (the runtime's own, unless it
 * has CAP_SYS_RESOURCE: then RLIM_INFINITY). */
uint64_t rt_rlimit_max(int resource);

/* Cgroup directories made ahead (v1 hierarchies): <parent>/.pool-<name>
 * in each. devices (optional): linux.resources with the device rules
 * most containers get, applied to the devices directory. 1 when they
 * were, 0 when only the directories were made, -1 when none was. */
int rt_cgroup_premake(const char *parent, const char *name, const rt_resources *devices);
/* With them, what the container's /sys/fs/cgroup will show (a cgroup mount
 * read-only, as without --privileged): a tmpfs holding a read-only bind of
 * each, in no mount namespace, for rt_create_opts.cgroup_tree. The child
 * attaches it in one step where it would make ten mounts. -1 on a v2 host,
 * or where the kernel cannot mount on a detached tree (before Linux 6.15). */
int rt_cgroup_premake_tree(const char *parent, const char *name);
/* A container's /dev made ahead, in no mount namespace: mounts is a spec's
 * mounts[] entries for /dev, /dev/pts and /dev/shm, in that order; the
 * tmpfs holds the standard nodes and links with the two others mounted in
 * it. The container attaches it in one step where it would make three
 * mounts, six nodes and six links. -1 where it cannot be made (on a kernel
 * before Linux 6.15, which cannot mount on a detached tree). */
int rt_dev_tree_make(const json_t *mounts);
/* Renames them into place for container id (<parent>/<id>), and makes its v2
 * directory; 0 when every one is there. A spec whose annotation
 * org.berth.cgroup-made is "true" has its v1 directories taken as there
 * (a missing one is made); with org.berth.cgroup-devices-made "true" too,
 * its device rules are taken as applied to the devices one when that was
 * placed (the caller made sure they are premake's). */
int rt_cgroup_premade_place(const char *parent, const char *name, const char *id);
void rt_cgroup_premade_remove(const char *parent, const char *name);
void rt_cgroup_premade_clean(const char *parent); /* every .pool-* of parent */
/* Where compiled seccomp programs are cached across processes (NULL: memory
 * only). The CLI uses <root>/.cache. */
void rt_set_cache_dir(const char *dir);
/* Reads the host facts the library caches per process (cgroup hierarchies,
 * the last capability) now, so that processes forked later (the shim
 * zygote's children) find them ready. */
void rt_prime(void);
/* Pre-compiles (and caches) a spec-form linux.seccomp profile, so the first
 * container start does not pay for it. */
int rt_seccomp_prepare(const json_t *seccomp, berr *e);

#endif
