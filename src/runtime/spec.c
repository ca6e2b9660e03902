/* spec.c: OCI runtime-spec config.json -> rt_spec. All parsing and
 * validation happens here, in the caller, before any clone: the container
 * process only reads plain C structures. */
#include <errno.h>
#include <limits.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <unistd.h>

#include "common/jsonutil.h"
#include "internal.h"

/* ---- small helpers ---- */
void rt_strv_free(char **v)
{
    if (!v) return;
    for (char **p = v; *p; p++) free(*p);
    free(v);
}

char **rt_strv_from_json(const json_t *arr, berr *e, const char *what)
{
    if (arr && !json_is_array(arr)) {
        berr_set(e, 400, "%s must be an array of strings", what);
        return NULL;
    }
    size_t n = arr ? json_array_size(arr) : 0;
    char **v = xcalloc(n + 1, sizeof *v);
    for (size_t i = 0; i < n; i++) {
        const char *s = json_string_value(json_array_get(arr, i));
        if (!s) {
            rt_strv_free(v);
            berr_set(e, 400, "%s[%zu] must be a string", what, i);
            return NULL;
        }
        v[i] = xstrdup(s);
    }
    return v;
}

static char *jdup(const json_t *o, const char *key)
{
    const char *s = jstr(o, key);
    return s ? xstrdup(s) : NULL;
}

static int64_t jint(const json_t *o, const char *key, int64_t dflt)
{
    json_t *v = json_object_get(o, key);
    return json_is_integer(v) ? json_integer_value(v) : dflt;
}

/* ---- process ---- */
static int parse_rlimits(const json_t *arr, rt_process *p, berr *e)
{
    size_t n = json_array_size(arr), i;
    json_t *r;
    p->rlimits = xcalloc(n ? n : 1, sizeof *p->rlimits);
    json_array_foreach(arr, i, r)
    {
        const char *type = jstr(r, "type");
        int res = type ? rt_rlimit_from_name(type) : -1;
        if (res < 0) return berr_set(e, 400, "unknown rlimit type %s", type ? type : "(none)");
        rt_rlimit *l = &p->rlimits[p->nrlimits++];
        l->resource = res;
        l->soft = (uint64_t)json_integer_value(json_object_get(r, "soft"));
        l->hard = (uint64_t)json_integer_value(json_object_get(r, "hard"));
        if (l->soft > l->hard)
            return berr_set(e, 400, "rlimit %s: soft limit %llu above hard limit %llu", type,
                            (unsigned long long)l->soft, (unsigned long long)l->hard);
    }
    return 0;
}

static int parse_user(const json_t *u, rt_process *p, berr *e)
{
    p->uid = (uid_t)jint(u, "uid", 0);
    p->gid = (gid_t)jint(u, "gid", 0);
    json_t *um = json_object_get(u, "umask");
    if (json_is_integer(um)) {
        p->has_umask = true;
        p->umask = (mode_t)json_integer_value(um) & 0777;
    }
    json_t *g = json_object_get(u, "additionalGids"), *v;
    size_t i;
    p->gids = xcalloc(json_array_size(g) + 1, sizeof *p->gids);
    json_array_foreach(g, i, v)
    {
        if (!json_is_integer(v))
            return berr_set(e, 400, "process.user.additionalGids: not a number");
        p->gids[p->ngids++] = (gid_t)json_integer_value(v);
    }
    return 0;
}

int rt_process_load(const json_t *j, rt_process **out, berr *e)
{
    if (!json_is_object(j)) return berr_set(e, 400, "process must be an object");
    rt_process *p = xcalloc(1, sizeof *p);
    *out = p;
    if (!(p->args = rt_strv_from_json(json_object_get(j, "args"), e, "process.args"))) goto fail;
    if (!p->args[0]) {
        berr_set(e, 400, "process.args must not be empty");
        goto fail;
    }
    if (!(p->env = rt_strv_from_json(json_object_get(j, "env"), e, "process.env"))) goto fail;
    p->cwd = xstrdup(jstr(j, "cwd") ? jstr(j, "cwd") : "/");
    if (p->cwd[0] != '/') {
        berr_set(e, 400, "process.cwd must be an absolute path: %s", p->cwd);
        goto fail;
    }
    p->terminal = json_is_true(json_object_get(j, "terminal"));
    json_t *cs = json_object_get(j, "consoleSize");
    p->rows = (unsigned short)jint(cs, "height", 0);
    p->cols = (unsigned short)jint(cs, "width", 0);
    p->nnp = json_is_true(json_object_get(j, "noNewPrivileges"));
    json_t *oom = json_object_get(j, "oomScoreAdj");
    if ((p->has_oom = json_is_integer(oom))) p->oom_score_adj = (int)json_integer_value(oom);
    if (parse_user(json_object_get(j, "user"), p, e) < 0) goto fail;
    if (rt_caps_parse(json_object_get(j, "capabilities"), &p->caps, e) < 0) goto fail;
    if (parse_rlimits(json_object_get(j, "rlimits"), p, e) < 0) goto fail;
    if (rt_rlimits_check(p, e) < 0) goto fail;
    return 0;
fail:
    rt_process_free(p);
    *out = NULL;
    return -1;
}

void rt_process_free(rt_process *p)
{
    if (!p) return;
    rt_strv_free(p->args);
    rt_strv_free(p->env);
    free(p->cwd);
    free(p->gids);
    free(p->rlimits);
    free(p);
}

/* ---- mounts ---- */
static const struct {
    const char *name;
    bool clear;
    unsigned long flag;
} mount_opts[] = {
    {"defaults", false, 0},
    {"ro", false, MS_RDONLY},
    {"rw", true, MS_RDONLY},
    {"suid", true, MS_NOSUID},
    {"nosuid", false, MS_NOSUID},
    {"dev", true, MS_NODEV},
    {"nodev", false, MS_NODEV},
    {"exec", true, MS_NOEXEC},
    {"noexec", false, MS_NOEXEC},
    {"sync", false, MS_SYNCHRONOUS},
    {"async", true, MS_SYNCHRONOUS},
    {"dirsync", false, MS_DIRSYNC},
    {"remount", false, MS_REMOUNT},
    {"mand", false, MS_MANDLOCK},
    {"nomand", true, MS_MANDLOCK},
    {"atime", true, MS_NOATIME},
    {"noatime", false, MS_NOATIME},
    {"diratime", true, MS_NODIRATIME},
    {"nodiratime", false, MS_NODIRATIME},
    {"relatime", false, MS_RELATIME},
    {"norelatime", true, MS_RELATIME},
    {"strictatime", false, MS_STRICTATIME},
    {"nostrictatime", true, MS_STRICTATIME},
};

static const struct {
    const char *name;
    unsigned long flag;
} prop_opts[] = {
    {"private", MS_PRIVATE},       {"rprivate", MS_PRIVATE | MS_REC},
    {"shared", MS_SHARED},         {"rshared", MS_SHARED | MS_REC},
    {"slave", MS_SLAVE},           {"rslave", MS_SLAVE | MS_REC},
    {"unbindable", MS_UNBINDABLE}, {"runbindable", MS_UNBINDABLE | MS_REC},
};

static bool parse_prop(const char *o, unsigned long *flag)
{
    for (size_t i = 0; i < sizeof prop_opts / sizeof *prop_opts; i++)
        if (!strcmp(o, prop_opts[i].name)) {
            *flag = prop_opts[i].flag;
            return true;
        }
    return false;
}

static void parse_mount_opt(rt_mount *m, const char *o, sbuf *data)
{
    unsigned long f;
    if (!strcmp(o, "bind") || !strcmp(o, "rbind")) {
        m->bind = true;
        m->flags |= MS_BIND | (o[0] == 'r' ? MS_REC : 0);
        return;
    }
    if (parse_prop(o, &f)) {
        m->propflags |= f;
        return;
    }
    for (size_t i = 0; i < sizeof mount_opts / sizeof *mount_opts; i++)
        if (!strcmp(o, mount_opts[i].name)) {
            if (mount_opts[i].clear)
                m->flags &= ~mount_opts[i].flag;
            else
                m->flags |= mount_opts[i].flag;
            return;
        }
    if (data->len) sbuf_adds(data, ",");
    sbuf_adds(data, o);
}

void rt_mount_free(rt_mount *m)
{
    free(m->dest), free(m->source), free(m->type), free(m->data);
}

int rt_mount_parse(const json_t *j, rt_mount *m, berr *e)
{
    const char *dest = jstr(j, "destination");
    if (!dest || dest[0] != '/')
        return berr_set(e, 400, "mount destination must be an absolute path: %s",
                        dest ? dest : "(none)");
    m->dest = xstrdup(dest);
    m->source = jdup(j, "source");
    m->type = jdup(j, "type");
    sbuf data = {0};
    json_t *o;
    size_t i;
    json_array_foreach(json_object_get(j, "options"), i, o)
    {
        if (json_is_string(o)) parse_mount_opt(m, json_string_value(o), &data);
    }
    if (m->type && !strcmp(m->type, "bind") && !m->bind) {
        m->bind = true;
        m->flags |= MS_BIND;
    }
    m->data = data.len ? sbuf_steal(&data) : NULL;
    sbuf_free(&data);
    if (m->bind && !m->source) return berr_set(e, 400, "bind mount %s has no source", dest);
    return 0;
}

/* ---- namespaces, devices, id maps ---- */
static const struct {
    const char *name;
    int flag;
} ns_names[] = {
    {"pid", CLONE_NEWPID},       {"network", CLONE_NEWNET}, {"mount", CLONE_NEWNS},
    {"ipc", CLONE_NEWIPC},       {"uts", CLONE_NEWUTS},     {"user", CLONE_NEWUSER},
    {"cgroup", CLONE_NEWCGROUP},
};

static int parse_namespaces(const json_t *arr, rt_spec *s, berr *e)
{
    size_t i, k;
    json_t *n;
    json_array_foreach(arr, i, n)
    {
        const char *type = jstr(n, "type");
        int flag = 0;
        for (k = 0; k < sizeof ns_names / sizeof *ns_names; k++)
            if (type && !strcmp(type, ns_names[k].name)) flag = ns_names[k].flag;
        if (!flag) return berr_set(e, 400, "unsupported namespace type %s", type ? type : "(none)");
        if (rt_spec_has_ns(s, flag)) return berr_set(e, 400, "duplicate namespace %s", type);
        const char *path = jstr(n, "path");
        s->ns[s->nns].type = flag;
        s->ns[s->nns++].path = path && *path ? xstrdup(path) : NULL;
    }
    return 0;
}

bool rt_spec_has_ns(const rt_spec *s, int type)
{
    for (size_t i = 0; i < s->nns; i++)
        if (s->ns[i].type == type) return true;
    return false;
}

const char *rt_spec_ns_path(const rt_spec *s, int type)
{
    for (size_t i = 0; i < s->nns; i++)
        if (s->ns[i].type == type) return s->ns[i].path;
    return NULL;
}

static int parse_devices(const json_t *arr, rt_spec *s, berr *e)
{
    size_t i;
    json_t *d;
    s->devices = xcalloc(json_array_size(arr) + 1, sizeof *s->devices);
    json_array_foreach(arr, i, d)
    {
        rt_device *v = &s->devices[s->ndevices++];
        const char *path = jstr(d, "path"), *type = jstr(d, "type");
        if (!path || path[0] != '/' || !type || !strchr("cbup", type[0]) || !type[0])
            return berr_set(
                e, 400, "linux.devices[%zu]: needs an absolute path and a type c, b, u or p", i);
        v->path = xstrdup(path);
        v->type = type[0] == 'u' ? 'c' : type[0];
        v->major = (long)jint(d, "major", 0);
        v->minor = (long)jint(d, "minor", 0);
        v->mode = (mode_t)jint(d, "fileMode", 0666);
        v->uid = (uid_t)jint(d, "uid", 0);
        v->gid = (gid_t)jint(d, "gid", 0);
    }
    return 0;
}

static int parse_idmaps(const json_t *arr, rt_idmap **out, size_t *n)
{
    size_t i;
    json_t *m;
    *out = xcalloc(json_array_size(arr) + 1, sizeof **out);
    json_array_foreach(arr, i, m)
    {
        rt_idmap *v = &(*out)[(*n)++];
        v->inner = (uint32_t)jint(m, "containerID", 0);
        v->outer = (uint32_t)jint(m, "hostID", 0);
        v->size = (uint32_t)jint(m, "size", 0);
    }
    return 0;
}

/* ---- resources ---- */
int rt_resources_load(const json_t *j, rt_resources **out, berr *e)
{
    rt_resources *r = xcalloc(1, sizeof *r);
    *out = r;
    json_t *mem = json_object_get(j, "memory"), *cpu = json_object_get(j, "cpu");
    r->mem_limit = jint(mem, "limit", RT_UNSET);
    r->mem_reservation = jint(mem, "reservation", RT_UNSET);
    r->mem_swap = jint(mem, "swap", RT_UNSET);
    r->mem_swappiness = jint(mem, "swappiness", RT_UNSET);
    r->disable_oom_killer = json_is_true(json_object_get(mem, "disableOOMKiller"));
    if (r->mem_limit > 0 && r->mem_swap > 0 && r->mem_swap < r->mem_limit) {
        berr_set(e, 400, "memory+swap limit %lld must be at least the memory limit %lld",
                 (long long)r->mem_swap, (long long)r->mem_limit);
        goto fail;
    }
    r->cpu_shares = jint(cpu, "shares", RT_UNSET);
    r->cpu_quota = jint(cpu, "quota", RT_UNSET);
    r->cpu_period = jint(cpu, "period", RT_UNSET);
    r->cpus = jstr(cpu, "cpus") && *jstr(cpu, "cpus") ? jdup(cpu, "cpus") : NULL;
    r->mems = jstr(cpu, "mems") && *jstr(cpu, "mems") ? jdup(cpu, "mems") : NULL;
    r->pids_limit = jint(json_object_get(j, "pids"), "limit", RT_UNSET);
    r->blkio_weight = jint(json_object_get(j, "blockIO"), "weight", RT_UNSET);
    json_t *devs = json_object_get(j, "devices"), *d;
    size_t i;
    r->devrules = xcalloc(json_array_size(devs) + 1, sizeof *r->devrules);
    json_array_foreach(devs, i, d)
    {
        if (rt_devrule_parse(d, &r->devrules[r->ndevrules++], e) < 0) goto fail;
    }
    return 0;
fail:
    rt_resources_free(r);
    *out = NULL;
    return -1;
}

void rt_resources_free(rt_resources *r)
{
    if (!r) return;
    free(r->cpus);
    free(r->mems);
    free(r->devrules);
    free(r);
}

/* ---- the whole spec ---- */
static int parse_root(const json_t *j, const char *bundle, rt_spec *s, berr *e)
{
    json_t *root = json_object_get(j, "root");
    const char *path = jstr(root, "path");
    if (!path || !*path) return berr_set(e, 400, "root.path is required");
    char *joined = path[0] == '/' ? xstrdup(path) : xasprintf("%s/%s", bundle, path);
    s->rootfs = real_path(joined);
    if (!s->rootfs) {
        berr_errno(e, 400, "root.path %s", joined);
        free(joined);
        return -1;
    }
    free(joined);
    s->root_ro = json_is_true(json_object_get(root, "readonly"));
    return 0;
}

static int parse_linux(const json_t *l, rt_spec *s, berr *e)
{
    if (parse_namespaces(json_object_get(l, "namespaces"), s, e) < 0) return -1;
    if (parse_devices(json_object_get(l, "devices"), s, e) < 0) return -1;
    parse_idmaps(json_object_get(l, "uidMappings"), &s->uidmap, &s->nuidmap);
    parse_idmaps(json_object_get(l, "gidMappings"), &s->gidmap, &s->ngidmap);
    if (rt_resources_load(json_object_get(l, "resources"), &s->res, e) < 0) return -1;
    s->cgroups_path = jdup(l, "cgroupsPath");
    if (!(s->masked = rt_strv_from_json(json_object_get(l, "maskedPaths"), e, "linux.maskedPaths")))
        return -1;
    if (!(s->readonly =
              rt_strv_from_json(json_object_get(l, "readonlyPaths"), e, "linux.readonlyPaths")))
        return -1;
    const char *prop = jstr(l, "rootfsPropagation");
    s->rootfs_prop = MS_REC | MS_PRIVATE;
    if (prop && *prop && !parse_prop(prop, &s->rootfs_prop))
        return berr_set(e, 400, "unknown rootfsPropagation %s", prop);
    json_t *sc = json_object_get(l, "seccomp");
    if (json_is_object(sc)) s->seccomp = json_incref(sc);
    json_t *sys = json_object_get(l, "sysctl"), *v;
    const char *k;
    s->sysctl = xcalloc(json_object_size(sys) + 1, sizeof *s->sysctl);
    json_object_foreach(sys, k, v)
    {
        if (!json_is_string(v)) return berr_set(e, 400, "sysctl %s: value must be a string", k);
        if (rt_sysctl_check(s, k, e) < 0) return -1;
        s->sysctl[s->nsysctl].key = xstrdup(k);
        s->sysctl[s->nsysctl++].value = xstrdup(json_string_value(v));
    }
    return 0;
}

static int parse_mounts(const json_t *arr, rt_spec *s, berr *e)
{
    size_t i;
    json_t *m;
    s->mounts = xcalloc(json_array_size(arr) + 1, sizeof *s->mounts);
    json_array_foreach(arr, i, m)
    {
        if (rt_mount_parse(m, &s->mounts[s->nmounts++], e) < 0) return -1;
    }
    return 0;
}

static int check_spec(const rt_spec *s, berr *e)
{
    if ((s->hostname || s->domainname) && !rt_spec_has_ns(s, CLONE_NEWUTS))
        return berr_set(e, 400, "unable to set hostname without a private UTS namespace");
    if (!rt_spec_has_ns(s, CLONE_NEWNS)) return berr_set(e, 400, "a mount namespace is required");
    if (rt_spec_has_ns(s, CLONE_NEWUSER) && !rt_spec_ns_path(s, CLONE_NEWUSER) &&
        (!s->nuidmap || !s->ngidmap))
        return berr_set(e, 400, "a new user namespace needs uidMappings and gidMappings");
    return 0;
}

/* ---- a member's span in JSON text, without parsing the rest ---- */
static const char *ws(const char *p, const char *end)
{
    while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')) p++;
    return p;
}

static const char *skip_string(const char *p, const char *end)
{
    for (p++; p < end; p++)
        if (*p == '\\')
            p++;
        else if (*p == '"')
            return p + 1;
    return NULL;
}

static const char *skip_value(const char *p, const char *end, int depth)
{
    p = ws(p, end);
    if (p >= end || depth > 64) return NULL;
    if (*p == '"') return skip_string(p, end);
    if (*p != '{' && *p != '[') { /* a number or a literal */
        while (p < end && !strchr(",}] \t\n\r", *p)) p++;
        return p;
    }
    char close = *p == '{' ? '}' : ']';
    p = ws(p + 1, end);
    if (p < end && *p == close) return p + 1;
    for (;;) {
        if (close == '}') {
            if (p >= end || *p != '"' || !(p = skip_string(p, end))) return NULL;
            p = ws(p, end);
            if (p >= end || *p != ':') return NULL;
            p++;
        }
        if (!(p = skip_value(p, end, depth + 1))) return NULL;
        p = ws(p, end);
        if (p < end && *p == ',') {
            p = ws(p + 1, end);
            continue;
        }
        return p < end && *p == close ? p + 1 : NULL;
    }
}

/* The value of key in the object at *p (then *p is past it): its start
 * and length; -1 when absent or the text is not as expected. A key is
 * compared as written (no escapes in the ones looked for). */
static int find_member(const char *p, const char *end, const char *key, const char **vs, size_t *vl)
{
    p = ws(p, end);
    if (p >= end || *p != '{') return -1;
    p = ws(p + 1, end);
    size_t kl = strlen(key);
    while (p < end && *p == '"') {
        const char *k = p + 1, *ke = skip_string(p, end);
        if (!ke) return -1;
        p = ws(ke, end);
        if (p >= end || *p != ':') return -1;
        const char *v = ws(p + 1, end), *ve = skip_value(v, end, 1);
        if (!ve) return -1;
        if ((size_t)(ke - 1 - k) == kl && !memcmp(k, key, kl)) {
            *vs = v, *vl = (size_t)(ve - v);
            return 0;
        }
        p = ws(ve, end);
        if (p < end && *p == ',') p = ws(p + 1, end);
    }
    return -1;
}

int rt_spec_load_text(const char *text, size_t len, const char *bundle, rt_spec **out,
                      json_error_t *je, berr *e)
{
    const char *lv, *vs = NULL;
    size_t ll, vl = 0;
    const rt_bpf *pre = NULL;
    char *spliced = NULL;
    size_t sl = 0;
    bool have = find_member(text, text + len, "linux", &lv, &ll) == 0 &&
                find_member(lv, lv + ll, "seccomp", &vs, &vl) == 0 && *vs == '{';
    if (have && rt_seccomp_get_text(vs, vl, &pre)) { /* the profile's text as "null" */
        size_t a = (size_t)(vs - text);
        sl = len - vl + 4;
        spliced = xmalloc(sl);
        memcpy(spliced, text, a);
        memcpy(spliced + a, "null", 4);
        memcpy(spliced + a + 4, vs + vl, len - a - vl);
    }
    json_t *j = json_fast_loadb(spliced ? spliced : text, spliced ? sl : len, 0, je);
    free(spliced);
    if (!j) return berr_set(e, 400, "%s", je->text);
    int r = rt_spec_load(j, bundle, out, e);
    json_decref(j);
    if (r < 0) return -1;
    const rt_bpf *b;
    berr ignored;
    if (pre && !(*out)->seccomp)
        (*out)->seccomp_bpf = pre;
    else if (have && (*out)->seccomp && rt_seccomp_get((*out)->seccomp, &b, &ignored) == 0)
        rt_seccomp_note_text(vs, vl, (*out)->seccomp);
    return 0;
}

int rt_spec_load(const json_t *j, const char *bundle, rt_spec **out, berr *e)
{
    *out = NULL;
    if (!json_is_object(j)) return berr_set(e, 400, "config must be a JSON object");
    rt_spec *s = xcalloc(1, sizeof *s);
    char cwd[PATH_MAX];
    if (!bundle) bundle = getcwd(cwd, sizeof cwd) ? cwd : ".";
    s->bundle = real_path(bundle);
    if (!s->bundle) {
        berr_errno(e, 400, "bundle %s", bundle);
        goto fail;
    }
    if (parse_root(j, s->bundle, s, e) < 0) goto fail;
    s->hostname = jstr(j, "hostname") && *jstr(j, "hostname") ? jdup(j, "hostname") : NULL;
    s->domainname = jstr(j, "domainname") && *jstr(j, "domainname") ? jdup(j, "domainname") : NULL;
    json_t *ann = json_object_get(j, "annotations");
    s->annotations = json_is_object(ann) ? json_deep_copy(ann) : NULL;
    if (parse_linux(json_object_get(j, "linux"), s, e) < 0) goto fail;
    if (rt_process_load(json_object_get(j, "process"), &s->proc, e) < 0) goto fail;
    if (parse_mounts(json_object_get(j, "mounts"), s, e) < 0) goto fail;
    if (check_spec(s, e) < 0) goto fail;
    *out = s;
    return 0;
fail:
    rt_spec_free(s);
    return -1;
}

int rt_spec_load_bundle(const char *bundle, rt_spec **out, berr *e)
{
    _cleanup_free_ char *path = xasprintf("%s/config.json", bundle);
    json_error_t je;
    json_t *j = json_load_path(path, &je);
    if (!j) return berr_set(e, 400, "%s: %s (line %d)", path, je.text, je.line);
    int r = rt_spec_load(j, bundle, out, e);
    json_decref(j);
    return r;
}

const rt_process *rt_spec_process(const rt_spec *s)
{
    return s->proc;
}

bool rt_spec_terminal(const rt_spec *s)
{
    return s->proc && s->proc->terminal;
}

void rt_spec_free(rt_spec *s)
{
    if (!s) return;
    json_decref(s->seccomp);
    json_decref(s->annotations);
    free(s->bundle);
    free(s->rootfs);
    free(s->hostname);
    free(s->domainname);
    rt_process_free(s->proc);
    for (size_t i = 0; i < s->nmounts; i++) rt_mount_free(&s->mounts[i]);
    free(s->mounts);
    for (size_t i = 0; i < s->nns; i++) free(s->ns[i].path);
    for (size_t i = 0; i < s->ndevices; i++) free(s->devices[i].path);
    free(s->devices);
    rt_resources_free(s->res);
    free(s->cgroups_path);
    rt_strv_free(s->masked);
    rt_strv_free(s->readonly);
    for (size_t i = 0; i < s->nsysctl; i++) free(s->sysctl[i].key), free(s->sysctl[i].value);
    free(s->sysctl);
    free(s->uidmap);
    free(s->gidmap);
    free(s);
}
