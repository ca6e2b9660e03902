/* ocispec.c: a container's Docker config (Config + HostConfig) and its
 * image's config become an OCI runtime spec (config.json), as dockerd does
 * for runc: process, user, environment, mounts, namespaces, capabilities,
 * seccomp, masked paths, cgroup resources, rlimits and sysctls. */
#include "daemon/ocispec.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <pthread.h>
#include <seccomp.h>
#include <stdlib.h>
#include <string.h>

#include "common/jsonutil.h"
#include "runtime/runtime.h"

static char *init_path;

void ocispec_set_init(const char *path)
{
    free(init_path);
    init_path = xstrdup(path);
}

/* Docker's default capability set: CapEff 00000000a80425fb. */
static const char *const default_caps[] = {"CAP_CHOWN",
                                           "CAP_DAC_OVERRIDE",
                                           "CAP_FSETID",
                                           "CAP_FOWNER",
                                           "CAP_MKNOD",
                                           "CAP_NET_RAW",
                                           "CAP_SETGID",
                                           "CAP_SETUID",
                                           "CAP_SETFCAP",
                                           "CAP_SETPCAP",
                                           "CAP_NET_BIND_SERVICE",
                                           "CAP_SYS_CHROOT",
                                           "CAP_KILL",
                                           "CAP_AUDIT_WRITE",
                                           NULL};

static const char *const masked_paths[] = {"/proc/asound",
                                           "/proc/acpi",
                                           "/proc/kcore",
                                           "/proc/keys",
                                           "/proc/latency_stats",
                                           "/proc/timer_list",
                                           "/proc/timer_stats",
                                           "/proc/sched_debug",
                                           "/proc/scsi",
                                           "/sys/firmware",
                                           NULL};

static const char *const readonly_paths[] = {
    "/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger", NULL};

static json_t *str_array(const char *const *v)
{
    json_t *a = json_array();
    for (; *v; v++) json_array_append_new(a, json_string(*v));
    return a;
}

/* ---- capabilities ---- */

static uint64_t cap_bits(const json_t *list, int *bad, const char **badname)
{
    uint64_t bits = 0;
    size_t i;
    json_t *v;
    json_array_foreach(list, i, v)
    {
        const char *n = json_string_value(v);
        if (!n) continue;
        if (!strcasecmp(n, "ALL")) return ~0ULL;
        int cap = rt_cap_from_name(n);
        if (cap < 0) {
            *bad = 1;
            *badname = n;
            return 0;
        }
        bits |= 1ULL << cap;
    }
    return bits;
}

static json_t *caps_json(uint64_t bits)
{
    json_t *a = json_array();
    for (int i = 0; i < 64; i++)
        if (bits & (1ULL << i)) {
            const char *n = rt_cap_name(i);
            if (n) json_array_append_new(a, json_string(n));
        }
    return a;
}

static uint64_t held_caps;
static void read_held_caps(void)
{
    held_caps = rt_caps_held();
}

uint64_t ocispec_caps_held(void)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, read_held_caps);
    return held_caps;
}

static int capabilities(const json_t *hc, json_t *proc, uint64_t *out, berr *e)
{
    uint64_t held = ocispec_caps_held(), bits = 0;
    if (json_is_true(json_object_get(hc, "Privileged"))) {
        bits = held;
    } else {
        for (const char *const *c = default_caps; *c; c++) bits |= 1ULL << rt_cap_from_name(*c);
        int bad = 0;
        const char *badname = NULL;
        uint64_t add = cap_bits(json_object_get(hc, "CapAdd"), &bad, &badname);
        if (!bad) {
            /* Docker: drops apply to the defaults, then adds win (so
             * --cap-drop ALL --cap-add X leaves exactly X) */
            uint64_t drop = cap_bits(json_object_get(hc, "CapDrop"), &bad, &badname);
            bits = (bits & ~drop) | add;
        }
        if (bad) return berr_set(e, 400, "invalid capability: %s", badname);
        bits &= held;
    }
    json_t *cj = json_object();
    json_object_set_new(cj, "bounding", caps_json(bits));
    json_object_set_new(cj, "effective", caps_json(bits));
    json_object_set_new(cj, "permitted", caps_json(bits));
    json_object_set_new(cj, "inheritable", caps_json(0));
    json_object_set_new(proc, "capabilities", cj);
    *out = bits;
    return 0;
}

uint64_t ocispec_default_caps(void)
{
    uint64_t bits = 0;
    for (const char *const *c = default_caps; *c; c++) bits |= 1ULL << rt_cap_from_name(*c);
    return bits & ocispec_caps_held();
}

/* ---- seccomp: Berth's default allow-list ----
 * Every syscall the kernel knows is allowed except those that reach outside
 * the container (modules, clocks, reboot, keyrings, mounts, namespaces,
 * tracing, swap, accounting, BPF, NUMA policy); some of those are allowed
 * again when the matching capability is granted. clone may not create
 * namespaces without CAP_SYS_ADMIN; clone3 answers ENOSYS so libcs fall back
 * to clone, whose flags can be checked. */

struct gated {
    const char *name;
    int cap; /* -1: never */
};

#define C_SYS_ADMIN 21
#define C_SYS_PTRACE 19
#define C_SYS_MODULE 16
#define C_SYS_TIME 25
#define C_SYS_BOOT 22
#define C_SYS_PACCT 20
#define C_SYS_RAWIO 17
#define C_SYS_NICE 23
#define C_SYS_TTY 26
#define C_SYSLOG 34

static const struct gated denied[] = {{"acct", C_SYS_PACCT},
                                      {"add_key", -1},
                                      {"bpf", C_SYS_ADMIN},
                                      {"clock_adjtime", C_SYS_TIME},
                                      {"clock_settime", C_SYS_TIME},
                                      {"settimeofday", C_SYS_TIME},
                                      {"stime", C_SYS_TIME},
                                      {"adjtimex", C_SYS_TIME},
                                      {"create_module", -1},
                                      {"delete_module", C_SYS_MODULE},
                                      {"finit_module", C_SYS_MODULE},
                                      {"init_module", C_SYS_MODULE},
                                      {"get_kernel_syms", -1},
                                      {"query_module", -1},
                                      {"get_mempolicy", C_SYS_NICE},
                                      {"mbind", C_SYS_NICE},
                                      {"set_mempolicy", C_SYS_NICE},
                                      {"move_pages", C_SYS_NICE},
                                      {"ioperm", C_SYS_RAWIO},
                                      {"iopl", C_SYS_RAWIO},
                                      {"kcmp", C_SYS_PTRACE},
                                      {"ptrace", C_SYS_PTRACE},
                                      {"process_vm_readv", C_SYS_PTRACE},
                                      {"process_vm_writev", C_SYS_PTRACE},
                                      {"kexec_file_load", C_SYS_BOOT},
                                      {"kexec_load", C_SYS_BOOT},
                                      {"reboot", C_SYS_BOOT},
                                      {"keyctl", -1},
                                      {"request_key", -1},
                                      {"lookup_dcookie", C_SYS_ADMIN},
                                      {"mount", C_SYS_ADMIN},
                                      {"umount", C_SYS_ADMIN},
                                      {"umount2", C_SYS_ADMIN},
                                      {"pivot_root", C_SYS_ADMIN},
                                      {"move_mount", C_SYS_ADMIN},
                                      {"open_tree", C_SYS_ADMIN},
                                      {"fsopen", C_SYS_ADMIN},
                                      {"fsconfig", C_SYS_ADMIN},
                                      {"fsmount", C_SYS_ADMIN},
                                      {"fspick", C_SYS_ADMIN},
                                      {"mount_setattr", C_SYS_ADMIN},
                                      {"name_to_handle_at", C_SYS_ADMIN},
                                      {"open_by_handle_at", -1},
                                      {"nfsservctl", -1},
                                      {"perf_event_open", C_SYS_ADMIN},
                                      {"quotactl", C_SYS_ADMIN},
                                      {"setns", C_SYS_ADMIN},
                                      {"unshare", C_SYS_ADMIN},
                                      {"swapon", C_SYS_ADMIN},
                                      {"swapoff", C_SYS_ADMIN},
                                      {"sysfs", -1},
                                      {"_sysctl", -1},
                                      {"syslog", C_SYSLOG},
                                      {"uselib", -1},
                                      {"userfaultfd", -1},
                                      {"ustat", -1},
                                      {"vm86", -1},
                                      {"vm86old", -1},
                                      {"vhangup", C_SYS_TTY},
                                      {"fanotify_init", C_SYS_ADMIN},
                                      {"clone", -2},
                                      {"clone3", -2},
                                      {"personality", -2},
                                      {NULL, 0}};

static const struct gated *find_denied(const char *name)
{
    for (const struct gated *g = denied; g->name; g++)
        if (!strcmp(g->name, name)) return g;
    return NULL;
}

static json_t *seccomp_rule(json_t *names, const char *action)
{
    return json_pack("{s:o,s:s}", "names", names, "action", action);
}

static json_t *default_seccomp(uint64_t caps)
{
    json_t *allow = json_array();
    for (int nr = 0; nr < 1024; nr++) {
        char *name = seccomp_syscall_resolve_num_arch(SCMP_ARCH_NATIVE, nr);
        if (!name) continue;
        const struct gated *g = find_denied(name);
        if (!g || (g->cap >= 0 && (caps & (1ULL << g->cap))))
            json_array_append_new(allow, json_string(name));
        free(name);
    }
    json_t *rules = json_array();
    json_array_append_new(rules, seccomp_rule(allow, "SCMP_ACT_ALLOW"));
    if (caps & (1ULL << C_SYS_ADMIN)) {
        json_array_append_new(rules, seccomp_rule(json_pack("[s]", "clone"), "SCMP_ACT_ALLOW"));
    } else {
        /* 0x7E020000: CLONE_NEWNS|NEWCGROUP|NEWUTS|NEWIPC|NEWUSER|NEWPID|NEWNET */
        json_t *r = seccomp_rule(json_pack("[s]", "clone"), "SCMP_ACT_ALLOW");
        json_object_set_new(r, "args",
                            json_pack("[{s:i,s:I,s:i,s:s}]", "index", 0, "value",
                                      (json_int_t)0x7E020000, "valueTwo", 0, "op",
                                      "SCMP_CMP_MASKED_EQ"));
        json_array_append_new(rules, r);
    }
    json_t *c3 = seccomp_rule(json_pack("[s]", "clone3"), "SCMP_ACT_ERRNO");
    json_object_set_new(c3, "errnoRet", json_integer(ENOSYS));
    json_array_append_new(rules, c3);
    static const json_int_t personas[] = {0x0, 0x8, 0x20000, 0x20008, 0xffffffff};
    for (size_t i = 0; i < sizeof personas / sizeof *personas; i++) {
        json_t *r = seccomp_rule(json_pack("[s]", "personality"), "SCMP_ACT_ALLOW");
        json_object_set_new(
            r, "args",
            json_pack("[{s:i,s:I,s:s}]", "index", 0, "value", personas[i], "op", "SCMP_CMP_EQ"));
        json_array_append_new(rules, r);
    }
    return json_pack("{s:s,s:i,s:[s,s,s],s:o}", "defaultAction", "SCMP_ACT_ERRNO",
                     "defaultErrnoRet", EPERM, "architectures", "SCMP_ARCH_X86_64", "SCMP_ARCH_X86",
                     "SCMP_ARCH_X32", "syscalls", rules);
}

/* Docker-format profile file (--security-opt seccomp=FILE) to spec form:
 * the keys are the same except "architectures"/"archMap"; keep what the
 * runtime understands. */
/* Docker profiles gate rules on the container's capabilities and arch. */
static bool rule_applies(const json_t *r, uint64_t caps)
{
    const json_t *inc = json_object_get(r, "includes"), *exc = json_object_get(r, "excludes");
    size_t i;
    json_t *v;
    json_array_foreach(json_object_get(inc, "caps"), i, v)
    {
        int cap = rt_cap_from_name(json_string_value(v) ? json_string_value(v) : "");
        if (cap < 0 || !(caps & (1ULL << cap))) return false;
    }
    json_array_foreach(json_object_get(exc, "caps"), i, v)
    {
        int cap = rt_cap_from_name(json_string_value(v) ? json_string_value(v) : "");
        if (cap >= 0 && (caps & (1ULL << cap))) return false;
    }
    bool arch_ok = !json_array_size(json_object_get(inc, "arches"));
    json_array_foreach(json_object_get(inc, "arches"), i, v) arch_ok |=
        json_string_value(v) &&
        (!strcmp(json_string_value(v), "amd64") || !strcmp(json_string_value(v), "x86_64"));
    json_array_foreach(json_object_get(exc, "arches"), i,
                       v) if (json_string_value(v) && (!strcmp(json_string_value(v), "amd64") ||
                                                       !strcmp(json_string_value(v), "x86_64")))
        arch_ok = false;
    return arch_ok;
}

json_t *ocispec_seccomp_from_docker(const json_t *p, uint64_t caps, berr *e)
{
    json_t *out = json_object();
    json_object_set(out, "defaultAction", json_object_get(p, "defaultAction"));
    if (json_object_get(p, "defaultErrnoRet"))
        json_object_set(out, "defaultErrnoRet", json_object_get(p, "defaultErrnoRet"));
    json_t *arches = json_object_get(p, "architectures");
    if (!arches) { /* as dockerd: the native arch's entry, with its sub-architectures */
        arches = json_array();
        size_t i;
        json_t *m;
        json_array_foreach(json_object_get(p, "archMap"), i, m)
        {
            if (strcmp(jstr(m, "architecture") ? jstr(m, "architecture") : "", "SCMP_ARCH_X86_64"))
                continue;
            json_array_append(arches, json_object_get(m, "architecture"));
            if (json_is_array(json_object_get(m, "subArchitectures")))
                json_array_extend(arches, json_object_get(m, "subArchitectures"));
        }
        json_object_set_new(out, "architectures", arches);
    } else {
        json_object_set(out, "architectures", arches);
    }
    json_t *rules = json_array();
    size_t i;
    json_t *r;
    json_array_foreach(json_object_get(p, "syscalls"), i, r)
    {
        if (!rule_applies(r, caps)) continue;
        json_t *nr = json_object();
        json_t *names = json_object_get(r, "names");
        if (!names && jstr(r, "name"))
            names = json_pack("[s]", jstr(r, "name"));
        else
            json_incref(names);
        json_object_set_new(nr, "names", names ? names : json_array());
        json_object_set(nr, "action", json_object_get(r, "action"));
        if (json_object_get(r, "args") && !json_is_null(json_object_get(r, "args")))
            json_object_set(nr, "args", json_object_get(r, "args"));
        if (json_object_get(r, "errnoRet"))
            json_object_set(nr, "errnoRet", json_object_get(r, "errnoRet"));
        json_array_append_new(rules, nr);
    }
    json_object_set_new(out, "syscalls", rules);
    if (!json_is_string(json_object_get(out, "defaultAction"))) {
        json_decref(out);
        berr_set(e, 400, "seccomp profile has no defaultAction");
        return NULL;
    }
    return out;
}

static json_t *profile_to_spec(const char *path, uint64_t caps, berr *e)
{
    /* the docker CLI sends the profile's JSON inline; a path names a file on
     * the daemon's host */
    json_error_t je;
    json_t *p =
        path[0] == '{' ? json_fast_loadb(path, strlen(path), 0, &je) : json_load_file(path, 0, &je);
    if (!p) {
        berr_set(e, 400, "decoding seccomp profile failed: %s", je.text);
        return NULL;
    }
    json_t *out = ocispec_seccomp_from_docker(p, caps, e);
    json_decref(p);
    return out;
}

/* ---- security options ---- */

struct secopts {
    bool no_new_privs;
    bool seccomp_unconfined;
    const char *seccomp_file;
};

static int security_opts(const json_t *hc, struct secopts *so, berr *e)
{
    size_t i;
    json_t *v;
    json_array_foreach(json_object_get(hc, "SecurityOpt"), i, v)
    {
        const char *s = json_string_value(v);
        if (!s) continue;
        if (!strcmp(s, "no-new-privileges") || !strcmp(s, "no-new-privileges=true") ||
            !strcmp(s, "no-new-privileges:true"))
            so->no_new_privs = true;
        else if (!strcmp(s, "no-new-privileges=false") || !strcmp(s, "no-new-privileges:false"))
            so->no_new_privs = false;
        else if (!strcmp(s, "seccomp=unconfined") || !strcmp(s, "seccomp:unconfined"))
            so->seccomp_unconfined = true;
        else if (str_starts(s, "seccomp=") || str_starts(s, "seccomp:"))
            so->seccomp_file = s + 8;
        else if (str_starts(s, "apparmor") || str_starts(s, "label"))
            ; /* no AppArmor/SELinux here: accepted and ignored, as dockerd does without them */
        else
            return berr_set(e, 400, "Invalid --security-opt: %s", s);
    }
    return 0;
}

/* ---- mounts ---- */

static json_t *mnt(const char *dst, const char *type, const char *src, const char *opts)
{
    json_t *o = json_array();
    char *copy = xstrdup(opts), *save = NULL;
    for (char *t = strtok_r(copy, ",", &save); t; t = strtok_r(NULL, ",", &save))
        json_array_append_new(o, json_string(t));
    free(copy);
    return json_pack("{s:s,s:s,s:s,s:o}", "destination", dst, "type", type, "source", src,
                     "options", o);
}

static int add_binds(const json_t *hc, json_t *mounts, berr *e)
{
    size_t i;
    json_t *v;
    json_array_foreach(json_object_get(hc, "Binds"), i, v)
    {
        const char *s = json_string_value(v);
        if (!s) continue;
        char *copy = xstrdup(s);
        char *src = copy, *dst = strchr(copy, ':'), *mode = NULL;
        if (dst) {
            *dst++ = 0;
            mode = strchr(dst, ':');
            if (mode) *mode++ = 0;
        }
        if (!dst || src[0] != '/' || dst[0] != '/') {
            free(copy);
            return berr_set(e, 400,
                            "invalid mount config: %s (named volumes are not supported yet; "
                            "use /host/path:/container/path)",
                            s);
        }
        bool ro = mode && strstr(mode, "ro");
        char *opts = xasprintf("rbind,%s", ro ? "ro" : "rw");
        json_array_append_new(mounts, mnt(dst, "bind", src, opts));
        free(opts);
        free(copy);
    }
    const char *key;
    json_object_foreach(json_object_get(hc, "Tmpfs"), key, v)
    {
        const char *o = json_string_value(v);
        char *opts = xasprintf("nosuid,nodev,noexec%s%s", o && *o ? "," : "", o ? o : "");
        json_array_append_new(mounts, mnt(key, "tmpfs", "tmpfs", opts));
        free(opts);
    }
    return 0;
}

static json_t *std_mounts(const json_t *hc, const char *files_dir, bool privileged)
{
    int64_t shm = json_integer_value(json_object_get(hc, "ShmSize"));
    if (shm <= 0) shm = 64LL << 20;
    char *shmopts = xasprintf("nosuid,noexec,nodev,mode=1777,size=%lld", (long long)shm);
    json_t *m = json_array();
    json_array_append_new(m, mnt("/proc", "proc", "proc", "nosuid,noexec,nodev"));
    json_array_append_new(m,
                          mnt("/dev", "tmpfs", "tmpfs", "nosuid,strictatime,mode=755,size=65536k"));
    json_array_append_new(m, mnt("/dev/pts", "devpts", "devpts",
                                 "nosuid,noexec,newinstance,ptmxmode=0666,mode=0620,gid=5"));
    json_array_append_new(m, mnt("/sys", "sysfs", "sysfs",
                                 privileged ? "nosuid,noexec,nodev,rw" : "nosuid,noexec,nodev,ro"));
    json_array_append_new(
        m, mnt("/sys/fs/cgroup", "cgroup", "cgroup",
               privileged ? "nosuid,noexec,nodev,relatime,rw" : "nosuid,noexec,nodev,relatime,ro"));
    json_array_append_new(m, mnt("/dev/mqueue", "mqueue", "mqueue", "nosuid,noexec,nodev"));
    json_array_append_new(m, mnt("/dev/shm", "tmpfs", "shm", shmopts));
    free(shmopts);
    static const char *files[] = {"resolv.conf", "hostname", "hosts"};
    for (int i = 0; i < 3; i++) {
        char *src = xasprintf("%s/%s", files_dir, files[i]);
        char *dst = xasprintf("/etc/%s", files[i]);
        json_array_append_new(m, mnt(dst, "bind", src, "rbind,rprivate"));
        free(src);
        free(dst);
    }
    return m;
}

static const char *const dev_dests[] = {"/dev", "/dev/pts", "/dev/shm"};

json_t *ocispec_dev_mounts(const json_t *mounts)
{
    json_t *found[3] = {NULL, NULL, NULL}, *m;
    size_t i;
    json_array_foreach(mounts, i, m)
    {
        const char *d = jstr(m, "destination");
        for (int k = 0; d && k < 3; k++)
            if (!strcmp(d, dev_dests[k])) {
                if (found[k]) return NULL; /* twice */
                found[k] = m;
            }
    }
    if (!found[0] || !found[1] || !found[2]) return NULL;
    return json_pack("[OOO]", found[0], found[1], found[2]);
}

json_t *ocispec_default_dev_mounts(void)
{
    json_t *hc = json_object(), *all = std_mounts(hc, "", false);
    json_t *out = ocispec_dev_mounts(all);
    json_decref(all), json_decref(hc);
    return out;
}

/* ---- resources ---- */

static void set_if(json_t *o, const char *k, const json_t *hc, const char *hk)
{
    json_int_t v = json_integer_value(json_object_get(hc, hk));
    if (v) json_object_set_new(o, k, json_integer(v));
}

/* A host device node (st) as a linux.devices entry at path. */
static json_t *device_node(const char *path, const struct stat *st)
{
    return json_pack("{s:s,s:s,s:i,s:i,s:i,s:i,s:i}", "path", path, "type",
                     S_ISCHR(st->st_mode) ? "c" : "b", "major", (int)major(st->st_rdev), "minor",
                     (int)minor(st->st_rdev), "fileMode", (int)(st->st_mode & 07777), "uid",
                     (int)st->st_uid, "gid", (int)st->st_gid);
}

/* Every device node under the host's /dev (as --privileged exposes them),
 * skipping the filesystems the container mounts itself. */
static void host_devices(const char *dir, json_t *out, int depth)
{
    DIR *d = opendir(dir);
    if (!d) return;
    struct dirent *de;
    while ((de = readdir(d))) {
        if (de->d_name[0] == '.') continue;
        char *p = xasprintf("%s/%s", dir, de->d_name);
        struct stat st;
        if (lstat(p, &st) == 0) {
            if (S_ISDIR(st.st_mode) && depth < 3 && strcmp(p, "/dev/pts") &&
                strcmp(p, "/dev/shm") && strcmp(p, "/dev/mqueue") && strcmp(p, "/dev/fd"))
                host_devices(p, out, depth + 1);
            else if ((S_ISCHR(st.st_mode) || S_ISBLK(st.st_mode)) && strcmp(p, "/dev/console") &&
                     strcmp(p, "/dev/ptmx"))
                json_array_append_new(out, device_node(p, &st));
        }
        free(p);
    }
    closedir(d);
}

/* ---- --device and --device-cgroup-rule ---- */

/* A device cgroup rule ("c 1:3 rwm", "b 8:* r", "a *:* rwm") as a
 * linux.resources.devices entry, with dockerd's syntax, limits (its
 * ParseInt of 12 and 20 bits) and messages; NULL with a 400. */
static json_t *cgroup_rule(const char *rule, berr *e)
{
    static const long max[2] = {2047, 524287};
    if (!rule) rule = ""; /* null, as Go decodes it */
    const char *p = rule;
    char type = *p;
    long num[2] = {-1, -1};
    bool big[2] = {false, false};
    bool ok = type && strchr("abc", type) && *++p == ' ';
    for (int i = 0; i < 2 && ok; i++) {
        if (*++p == '*') {
            p++;
        } else {
            ok = *p >= '0' && *p <= '9';
            for (num[i] = 0; *p >= '0' && *p <= '9'; p++) { /* capped: never overflows */
                big[i] |= num[i] * 10 + (*p - '0') > max[i];
                num[i] = big[i] ? max[i] : num[i] * 10 + (*p - '0');
            }
        }
        ok = ok && *p == (i ? ' ' : ':');
    }
    const char *access = p + 1;
    size_t n = ok ? strlen(access) : 0;
    if (!ok || n < 1 || n > 3 || strspn(access, "rwm") != n) {
        berr_set(e, 400, "invalid device cgroup rule format: '%s'", rule);
        return NULL;
    }
    if (big[0] || big[1]) {
        berr_set(e, 400, "invalid %s value in device cgroup rule format: '%s'",
                 big[0] ? "major" : "minor", rule);
        return NULL;
    }
    char t[2] = {type, 0};
    json_t *r = json_pack("{s:b,s:s,s:s}", "allow", 1, "type", t, "access", access);
    if (num[0] >= 0) json_object_set_new(r, "major", json_integer(num[0]));
    if (num[1] >= 0) json_object_set_new(r, "minor", json_integer(num[1]));
    return r;
}

/* A CgroupPermissions: r, w and m, each at most once (docker's
 * validDeviceMode); empty is the default, rwm. */
static bool device_mode_ok(const char *m)
{
    for (const char *c = m; *c; c++)
        if (!strchr("rwm", *c) || strchr(c + 1, *c)) return false;
    return true;
}

static const char *json_kind(const json_t *v)
{
    return json_is_object(v)    ? "object"
           : json_is_array(v)   ? "array"
           : json_is_string(v)  ? "string"
           : json_is_boolean(v) ? "bool"
                                : "number";
}

int ocispec_check_devices(const json_t *hc, berr *e)
{
    const json_t *devs = json_object_get(hc, "Devices"),
                 *rules = json_object_get(hc, "DeviceCgroupRules");
    if (devs && !json_is_null(devs) && !json_is_array(devs))
        return berr_set(e, 400,
                        "json: cannot unmarshal %s into Go struct field HostConfig.Devices of type "
                        "[]container.DeviceMapping",
                        json_kind(devs));
    if (rules && !json_is_null(rules) && !json_is_array(rules))
        return berr_set(e, 400,
                        "json: cannot unmarshal %s into Go struct field "
                        "HostConfig.DeviceCgroupRules of type []string",
                        json_kind(rules));
    size_t i;
    json_t *v;
    json_array_foreach(devs, i, v)
    {
        static const char *const keys[] = {"PathOnHost", "PathInContainer", "CgroupPermissions"};
        if (json_is_null(v)) continue; /* Go's zero value: fails at the start */
        if (!json_is_object(v))
            return berr_set(e, 400,
                            "json: cannot unmarshal %s into Go struct field HostConfig.Devices of "
                            "type container.DeviceMapping",
                            json_kind(v));
        for (size_t k = 0; k < sizeof keys / sizeof *keys; k++) {
            const json_t *f = json_object_get(v, keys[k]);
            if (f && !json_is_string(f) && !json_is_null(f))
                return berr_set(e, 400,
                                "json: cannot unmarshal %s into Go struct field "
                                "DeviceMapping.HostConfig.Devices.%s of type string",
                                json_kind(f), keys[k]);
        }
        const char *to = jstr(v, "PathInContainer"), *mode = jstr(v, "CgroupPermissions");
        if (to && *to && *to != '/') return berr_set(e, 400, "%s is not an absolute path", to);
        if (mode && !device_mode_ok(mode)) return berr_set(e, 400, "invalid device mode: %s", mode);
    }
    json_array_foreach(rules, i, v)
    {
        if (!json_is_string(v) && !json_is_null(v))
            return berr_set(e, 400,
                            "json: cannot unmarshal %s into Go struct field "
                            "HostConfig.DeviceCgroupRules of type string",
                            json_kind(v));
        json_t *r = cgroup_rule(json_string_value(v), e);
        if (!r) return -1;
        json_decref(r);
    }
    return 0;
}

/* A device node at path `to` in the container, and its allow rule (rules
 * NULL: none, the cgroup allows all). */
static void add_node(const char *to, const struct stat *st, const char *perm, json_t *devs,
                     json_t *rules)
{
    json_array_append_new(devs, device_node(to, st));
    if (rules)
        json_array_append_new(rules, json_pack("{s:b,s:s,s:i,s:i,s:s}", "allow", 1, "type",
                                               S_ISCHR(st->st_mode) ? "c" : "b", "major",
                                               (int)major(st->st_rdev), "minor",
                                               (int)minor(st->st_rdev), "access", perm));
}

static int by_name(const struct dirent **a, const struct dirent **b)
{
    return strcmp((*a)->d_name, (*b)->d_name);
}

/* Every device node under dir, at the same place under `to`: byte order
 * and links not followed, as dockerd's filepath.WalkDir. */
static void dir_devices(const char *dir, const char *to, const char *perm, json_t *devs,
                        json_t *rules)
{
    struct dirent **ents;
    int n = scandir(dir, &ents, NULL, by_name);
    for (int i = 0; i < n; i++) {
        const char *name = ents[i]->d_name;
        struct stat st;
        char *p = xasprintf("%s/%s", dir, name), *q = xasprintf("%s/%s", to, name);
        if (strcmp(name, ".") && strcmp(name, "..") && lstat(p, &st) == 0) {
            if (S_ISDIR(st.st_mode))
                dir_devices(p, q, perm, devs, rules);
            else if (S_ISCHR(st.st_mode) || S_ISBLK(st.st_mode))
                add_node(q, &st, perm, devs, rules);
        }
        free(p), free(q), free(ents[i]);
    }
    if (n >= 0) free(ents);
}

/* One HostConfig.Devices entry: the node at host (links followed), or the
 * nodes under that directory; dockerd's error when that gives none. */
static int add_device(const char *host, const char *to, const char *perm, json_t *devs,
                      json_t *rules, berr *e)
{
    struct stat st;
    int err = stat(host, &st) < 0 ? errno : 0;
    size_t before = json_array_size(devs);
    if (!err && (S_ISCHR(st.st_mode) || S_ISBLK(st.st_mode)))
        add_node(to, &st, perm, devs, rules);
    else if (!err && S_ISDIR(st.st_mode))
        dir_devices(host, to, perm, devs, rules);
    if (json_array_size(devs) > before) return 0;
    char why[128] = "not a device node";
    if (err) {
        snprintf(why, sizeof why, "%s", strerror(err));
        why[0] = (char)tolower((unsigned char)why[0]); /* Go's wording */
    }
    return berr_set(e, 500,
                    "error gathering device information while adding custom device \"%s\": %s",
                    host, why);
}

/* HostConfig.Devices and DeviceCgroupRules into linux.devices and the
 * cgroup's rules, as dockerd's WithDevices: privileged, only the nodes
 * that /dev does not already have at that path (and no rules: all are
 * allowed). A missing device fails the start, not the create: it may be
 * plugged in between. */
static int custom_devices(const json_t *hc, bool privileged, json_t *devs, json_t *rules, berr *e)
{
    if (ocispec_check_devices(hc, e) < 0) return -1;
    size_t i;
    json_t *v;
    json_array_foreach(json_object_get(hc, "Devices"), i, v)
    {
        const char *host = jstr(v, "PathOnHost"), *to = jstr(v, "PathInContainer");
        const char *perm = jstr(v, "CgroupPermissions");
        if (!host) host = "";
        if (!to || !*to) to = host;
        if (!perm || !*perm) perm = "rwm";
        if (privileged && !strcmp(host, to)) continue;
        if (add_device(host, to, perm, devs, privileged ? NULL : rules, e) < 0) return -1;
    }
    if (privileged) return 0;
    json_array_foreach(json_object_get(hc, "DeviceCgroupRules"), i, v)
    {
        json_t *r = cgroup_rule(json_string_value(v), e);
        if (!r) return -1;
        json_array_append_new(rules, r);
    }
    return 0;
}

json_t *ocispec_resources(const json_t *hc, bool privileged)
{
    json_t *r = json_object();
    json_t *mem = json_object();
    set_if(mem, "limit", hc, "Memory");
    set_if(mem, "swap", hc, "MemorySwap");
    set_if(mem, "reservation", hc, "MemoryReservation");
    if (json_is_true(json_object_get(hc, "OomKillDisable")))
        json_object_set_new(mem, "disableOOMKiller", json_true());
    if (json_object_size(mem)) json_object_set(r, "memory", mem);
    json_decref(mem);
    json_t *cpu = json_object();
    set_if(cpu, "shares", hc, "CpuShares");
    set_if(cpu, "quota", hc, "CpuQuota");
    set_if(cpu, "period", hc, "CpuPeriod");
    json_int_t nano = json_integer_value(json_object_get(hc, "NanoCpus"));
    if (nano > 0) {
        json_object_set_new(cpu, "period", json_integer(100000));
        json_object_set_new(cpu, "quota", json_integer(nano * 100000 / 1000000000));
    }
    const char *cpus = jstr(hc, "CpusetCpus"), *mems = jstr(hc, "CpusetMems");
    if (cpus && *cpus) json_object_set_new(cpu, "cpus", json_string(cpus));
    if (mems && *mems) json_object_set_new(cpu, "mems", json_string(mems));
    if (json_object_size(cpu)) json_object_set(r, "cpu", cpu);
    json_decref(cpu);
    json_int_t pids = json_integer_value(json_object_get(hc, "PidsLimit"));
    if (pids > 0) json_object_set_new(r, "pids", json_pack("{s:I}", "limit", pids));
    json_int_t bw = json_integer_value(json_object_get(hc, "BlkioWeight"));
    if (bw > 0) json_object_set_new(r, "blockIO", json_pack("{s:I}", "weight", bw));
    json_object_set_new(r, "devices",
                        privileged ? json_pack("[{s:b,s:s}]", "allow", 1, "access", "rwm")
                                   : ocispec_default_devices());
    return r;
}

json_t *ocispec_default_devices(void)
{
    json_t *dev = json_array();
    json_array_append_new(dev, json_pack("{s:b,s:s}", "allow", 0, "access", "rwm"));
    static const int nodes[][3] = {{'c', 1, 3},    {'c', 1, 5},   {'c', 1, 7}, {'c', 1, 8},
                                   {'c', 1, 9},    {'c', 5, 0},   {'c', 5, 1}, {'c', 5, 2},
                                   {'c', 136, -1}, {'c', 10, 200}};
    for (size_t i = 0; i < sizeof nodes / sizeof *nodes; i++) {
        json_t *d = json_pack("{s:b,s:s,s:i,s:s}", "allow", 1, "type", "c", "major", nodes[i][1],
                              "access", "rwm");
        if (nodes[i][2] >= 0) json_object_set_new(d, "minor", json_integer(nodes[i][2]));
        json_array_append_new(dev, d);
    }
    return dev;
}

/* Drops field key of hc (to 0, "" or false) when it is set and not
 * supported, adding warning (dockerd's text) once. */
static void discard(json_t *hc, json_t *warnings, const char *key, bool supported,
                    const char *warning)
{
    json_t *v = json_object_get(hc, key);
    bool set = json_is_integer(v)  ? json_integer_value(v) != 0
               : json_is_string(v) ? *json_string_value(v) != 0
                                   : json_is_true(v);
    if (!set || supported) return;
    size_t i;
    json_t *w;
    bool seen = false;
    json_array_foreach(warnings, i, w) seen |= !strcmp(json_string_value(w), warning);
    if (!seen) json_array_append_new(warnings, json_string(warning));
    json_object_set_new(hc, key,
                        json_is_string(v)    ? json_string("")
                        : json_is_boolean(v) ? json_false()
                                             : json_integer(0));
}

json_t *ocispec_discard_unsupported(json_t *hc, berr *e)
{
    bool mem = rt_cgroup_has_controller("memory"), cpu = rt_cgroup_has_controller("cpu");
    bool v2 = rt_cgroup_host_mode() == RT_CG_V2;
    if (json_integer_value(json_object_get(hc, "NanoCpus")) > 0 && !cpu) {
        berr_set(e, 400,
                 "NanoCPUs can not be set, as your kernel does not support CPU CFS scheduler or "
                 "the cgroup is not mounted");
        return NULL;
    }
    json_t *w = json_array();
    if (json_integer_value(json_object_get(hc, "Memory")) > 0 && !mem)
        json_object_set_new(hc, "MemorySwap", json_integer(-1));
    discard(hc, w, "Memory", mem,
            "Your kernel does not support memory limit capabilities or the cgroup is not "
            "mounted. Limitation discarded.");
    discard(hc, w, "MemoryReservation", mem,
            "Your kernel does not support memory soft limit capabilities or the cgroup is not "
            "mounted. Limitation discarded.");
    discard(hc, w, "OomKillDisable", mem && !v2, /* v2 has no such knob */
            "Your kernel does not support OomKillDisable. OomKillDisable discarded.");
    if (json_integer_value(json_object_get(hc, "PidsLimit")) > 0)
        discard(hc, w, "PidsLimit", rt_cgroup_has_controller("pids"),
                "Your kernel does not support PIDs limit capabilities or the cgroup is not "
                "mounted. PIDs limit discarded.");
    if (json_integer_value(json_object_get(hc, "CpuShares")) > 0)
        discard(hc, w, "CpuShares", cpu,
                "Your kernel does not support CPU shares or the cgroup is not mounted. Shares "
                "discarded.");
    static const char cfs[] =
        "Your kernel does not support CPU CFS scheduler. CPU period/quota discarded.";
    discard(hc, w, "CpuPeriod", cpu, cfs);
    discard(hc, w, "CpuQuota", cpu, cfs);
    bool cpuset = rt_cgroup_has_controller("cpuset");
    static const char cs[] =
        "Your kernel does not support cpuset or the cgroup is not mounted. Cpuset discarded.";
    discard(hc, w, "CpusetCpus", cpuset, cs);
    discard(hc, w, "CpusetMems", cpuset, cs);
    return w;
}

static int rlimits(const json_t *hc, json_t *proc, berr *e)
{
    json_t *out = json_array();
    size_t i;
    json_t *u;
    json_array_foreach(json_object_get(hc, "Ulimits"), i, u)
    {
        const char *name = jstr(u, "Name");
        if (!name) continue;
        char up[64];
        snprintf(up, sizeof up, "RLIMIT_%s", name);
        for (char *p = up; *p; p++) *p = (char)(*p >= 'a' && *p <= 'z' ? *p - 32 : *p);
        json_array_append_new(out, json_pack("{s:s,s:O,s:O}", "type", up, "soft",
                                             json_object_get(u, "Soft"), "hard",
                                             json_object_get(u, "Hard")));
    }
    if (json_array_size(out)) json_object_set(proc, "rlimits", out);
    json_decref(out);
    (void)e;
    return 0;
}

/* ---- process ---- */

static json_t *merge_env(const json_t *cfg, const char *hostname, bool tty)
{
    json_t *env = json_array();
    bool has_path = false, has_host = false, has_term = false;
    size_t i;
    json_t *v;
    json_array_foreach(json_object_get(cfg, "Env"), i, v)
    {
        const char *s = json_string_value(v);
        if (!s) continue;
        has_path |= str_starts(s, "PATH=");
        has_host |= str_starts(s, "HOSTNAME=");
        has_term |= str_starts(s, "TERM=");
        json_array_append(env, v);
    }
    if (!has_path)
        json_array_insert_new(
            env, 0,
            json_string("PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"));
    if (!has_host) {
        char *h = xasprintf("HOSTNAME=%s", hostname);
        json_array_insert_new(env, 1, json_string(h));
        free(h);
    }
    if (tty && !has_term) json_array_append_new(env, json_string("TERM=xterm"));
    return env;
}

json_t *ocispec_build(const json_t *ctr, const char *rootfs, const char *files_dir,
                      const char *cgroup_path, json_t *user, berr *e)
{
    const json_t *cfg = json_object_get(ctr, "Config"), *hc = json_object_get(ctr, "HostConfig");
    bool privileged = json_is_true(json_object_get(hc, "Privileged"));
    bool tty = json_is_true(json_object_get(cfg, "Tty"));
    const char *hostname = jstr(cfg, "Hostname");
    struct secopts so = {0};
    if (security_opts(hc, &so, e) < 0) {
        json_decref(user);
        return NULL;
    }

    json_t *args = json_array();
    bool init = json_is_true(json_object_get(hc, "Init"));
    if (init) {
        json_array_append_new(args, json_string("/sbin/docker-init"));
        json_array_append_new(args, json_string("--"));
    }
    json_array_append_new(args, json_string(jstr(ctr, "Path")));
    json_array_extend(args, json_object_get(ctr, "Args"));
    const char *wd = jstr(cfg, "WorkingDir");
    json_t *proc = json_pack("{s:b,s:o,s:o,s:s,s:b}", "terminal", tty, "args", args, "env",
                             merge_env(cfg, hostname ? hostname : "", tty), "cwd",
                             wd && *wd ? wd : "/", "noNewPrivileges", so.no_new_privs);
    json_t *spec =
        json_pack("{s:s,s:o,s:{s:s,s:b},s:s}", "ociVersion", "1.0.2", "process", proc, "root",
                  "path", rootfs, "readonly", json_is_true(json_object_get(hc, "ReadonlyRootfs")),
                  "hostname", hostname ? hostname : "");
    uint64_t caps = 0;
    berr ue;
    if (!user) user = ocispec_user(rootfs, jstr(cfg, "User"), json_object_get(hc, "GroupAdd"), &ue);
    if (!user || capabilities(hc, proc, &caps, e) < 0 || rlimits(hc, proc, e) < 0) {
        if (!user) *e = ue;
        json_decref(user);
        json_decref(spec);
        return NULL;
    }
    json_object_set_new(proc, "user", user);
    json_int_t oom = json_integer_value(json_object_get(hc, "OomScoreAdj"));
    if (oom) json_object_set_new(proc, "oomScoreAdj", json_integer(oom));

    json_t *mounts = std_mounts(hc, files_dir, privileged);
    if (init)
        json_array_append_new(
            mounts, mnt("/sbin/docker-init", "bind",
                        init_path ? init_path : "/usr/local/libexec/berth/berth-init", "bind,ro"));
    if (add_binds(hc, mounts, e) < 0) {
        json_decref(mounts);
        json_decref(spec);
        return NULL;
    }
    json_object_set_new(spec, "mounts", mounts);

    json_t *linux = json_object();
    json_t *ns = json_pack("[{s:s},{s:s},{s:s},{s:s},{s:s}]", "type", "pid", "type", "ipc", "type",
                           "uts", "type", "mount", "type", "cgroup");
    const char *netmode = jstr(hc, "NetworkMode");
    if (!netmode || strcmp(netmode, "host"))
        json_array_append_new(ns, json_pack("{s:s}", "type", "network"));
    json_object_set_new(linux, "namespaces", ns);
    json_object_set_new(linux, "cgroupsPath", json_string(cgroup_path));
    json_t *res = ocispec_resources(hc, privileged), *devs = json_array();
    json_object_set_new(linux, "resources", res);
    if (privileged) host_devices("/dev", devs, 0);
    if (custom_devices(hc, privileged, devs, json_object_get(res, "devices"), e) < 0) {
        json_decref(devs);
        json_decref(linux);
        json_decref(spec);
        return NULL;
    }
    if (json_array_size(devs))
        json_object_set_new(linux, "devices", devs);
    else
        json_decref(devs);
    if (json_object_size(json_object_get(hc, "Sysctls")))
        json_object_set(linux, "sysctl", json_object_get(hc, "Sysctls"));
    if (!privileged) {
        json_object_set_new(linux, "maskedPaths", str_array(masked_paths));
        json_object_set_new(linux, "readonlyPaths", str_array(readonly_paths));
        if (so.seccomp_file) {
            json_t *sc = profile_to_spec(so.seccomp_file, caps, e);
            if (!sc) {
                json_decref(linux);
                json_decref(spec);
                return NULL;
            }
            json_object_set_new(linux, "seccomp", sc);
        } else if (!so.seccomp_unconfined) {
            json_object_set_new(linux, "seccomp", ocispec_default_seccomp(caps));
        }
    }
    json_object_set_new(spec, "linux", linux);
    return spec;
}

/* The default profile depends only on the capability set: cache the last,
 * shared (~350 strings a copy would build and free for each start). It is
 * read-only for every caller: jansson 2.14's reference counts are atomic
 * and its dumps only read (JANSSON_THREAD_SAFE_REFCOUNT). */
#if !JANSSON_THREAD_SAFE_REFCOUNT
#error "the shared seccomp profile needs jansson's atomic reference counts"
#endif
static pthread_mutex_t seccomp_mu = PTHREAD_MUTEX_INITIALIZER;
static json_t *seccomp_cached;
static char *seccomp_text; /* seccomp_cached's, once a spec was written with it */

json_t *ocispec_default_seccomp(uint64_t caps)
{
    static uint64_t cached_caps;
    pthread_mutex_lock(&seccomp_mu);
    if (!seccomp_cached || cached_caps != caps) {
        json_decref(seccomp_cached);
        free(seccomp_text), seccomp_text = NULL;
        seccomp_cached = default_seccomp(caps);
        cached_caps = caps;
    }
    json_t *r = json_incref(seccomp_cached);
    pthread_mutex_unlock(&seccomp_mu);
    return r;
}

/* The text of sc when it is the cached default profile (dumped once), or NULL. */
static char *seccomp_text_of(const json_t *sc)
{
    pthread_mutex_lock(&seccomp_mu);
    if (sc == seccomp_cached && !seccomp_text) seccomp_text = json_fast_dumps(sc, JSON_COMPACT);
    char *t = sc == seccomp_cached && seccomp_text ? xstrdup(seccomp_text) : NULL;
    pthread_mutex_unlock(&seccomp_mu);
    return t;
}

/* A stand-in for the profile while the rest is dumped: a random name, which
 * no string of a spec can be ("\"berth-seccomp-" and 32 hex digits). */
static char seccomp_mark[64];
static void seccomp_mark_init(void)
{
    unsigned char r[16];
    if (getrandom(r, sizeof r, 0) != (ssize_t)sizeof r)
        for (size_t i = 0; i < sizeof r; i++) r[i] = (unsigned char)(now_ns() >> (i % 8 * 8));
    int n = snprintf(seccomp_mark, sizeof seccomp_mark, "\"berth-seccomp-");
    for (size_t i = 0; i < sizeof r; i++) n += snprintf(seccomp_mark + n, 3, "%02x", r[i]);
}

char *ocispec_dumps(json_t *spec)
{
    json_t *linux = json_object_get(spec, "linux");
    json_t *sc = json_object_get(linux, "seccomp");
    char *text = sc ? seccomp_text_of(sc) : NULL;
    if (!text) return json_fast_dumps(spec, JSON_COMPACT);
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, seccomp_mark_init);
    json_incref(sc);
    json_object_set_new(linux, "seccomp", json_string(seccomp_mark + 1));
    char *s = json_fast_dumps(spec, JSON_COMPACT);
    json_object_set_new(linux, "seccomp", sc);
    size_t ml = strlen(seccomp_mark) + 1; /* both quotes */
    char *at = s ? strstr(s, seccomp_mark) : NULL;
    if (!at || at[ml - 1] != '"') {
        free(s), free(text);
        return json_fast_dumps(spec, JSON_COMPACT);
    }
    size_t sl = strlen(s), tl = strlen(text), head = (size_t)(at - s);
    char *out = xmalloc(sl - ml + tl + 1);
    memcpy(out, s, head);
    memcpy(out + head, text, tl);
    memcpy(out + head + tl, at + ml, sl - head - ml + 1);
    free(s), free(text);
    return out;
}
