/* seccomp.c: the spec's linux.seccomp (runc's form) compiled into a classic
 * BPF program, by Berth's generator (bpfgen.c) or, for what it does not
 * handle, by libseccomp; cached by a hash of the profile: in memory for the
 * process, and as a file in the cache directory (rt_set_cache_dir) so the
 * next process (the next shim, the next `berth-runtime run`) loads the bytes
 * instead of compiling again. The container process loads the program with
 * seccomp(2) right before its execve. */
#include <errno.h>
#include <fcntl.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <seccomp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "bpfgen.h"

typedef struct cache_ent {
    char key[DIGEST_LEN + 1];
    rt_bpf bpf;
    struct cache_ent *next;
} cache_ent;
static cache_ent *cache;
static char *cache_dir;

void rt_set_cache_dir(const char *dir)
{
    free(cache_dir);
    cache_dir = dir ? xstrdup(dir) : NULL;
}

/* ---- spec names -> libseccomp values ---- */
int rt_seccomp_parse_action(const char *name, const json_t *errno_ret, int dflt_errno,
                            uint32_t *out, berr *e)
{
    int ret = json_is_integer(errno_ret) ? (int)json_integer_value(errno_ret) : dflt_errno;
    if (!name) return berr_set(e, 400, "seccomp: missing action");
    if (!strcmp(name, "SCMP_ACT_ALLOW"))
        *out = SCMP_ACT_ALLOW;
    else if (!strcmp(name, "SCMP_ACT_ERRNO"))
        *out = SCMP_ACT_ERRNO((uint32_t)ret);
    else if (!strcmp(name, "SCMP_ACT_KILL") || !strcmp(name, "SCMP_ACT_KILL_THREAD"))
        *out = SCMP_ACT_KILL;
    else if (!strcmp(name, "SCMP_ACT_KILL_PROCESS"))
        *out = SCMP_ACT_KILL_PROCESS;
    else if (!strcmp(name, "SCMP_ACT_TRAP"))
        *out = SCMP_ACT_TRAP;
    else if (!strcmp(name, "SCMP_ACT_TRACE"))
        *out = SCMP_ACT_TRACE((uint32_t)ret);
    else if (!strcmp(name, "SCMP_ACT_LOG"))
        *out = SCMP_ACT_LOG;
    else
        return berr_set(e, 400, "seccomp: unsupported action %s", name);
    return 0;
}

static int parse_op(const char *name, enum scmp_compare *out)
{
    static const struct {
        const char *n;
        enum scmp_compare op;
    } ops[] = {{"SCMP_CMP_NE", SCMP_CMP_NE},
               {"SCMP_CMP_LT", SCMP_CMP_LT},
               {"SCMP_CMP_LE", SCMP_CMP_LE},
               {"SCMP_CMP_EQ", SCMP_CMP_EQ},
               {"SCMP_CMP_GE", SCMP_CMP_GE},
               {"SCMP_CMP_GT", SCMP_CMP_GT},
               {"SCMP_CMP_MASKED_EQ", SCMP_CMP_MASKED_EQ}};
    for (size_t i = 0; name && i < sizeof ops / sizeof *ops; i++)
        if (!strcmp(name, ops[i].n)) {
            *out = ops[i].op;
            return 0;
        }
    return -1;
}

int rt_seccomp_parse_flags(const json_t *arr, unsigned int *out, berr *e)
{
    size_t i;
    json_t *v;
    *out = 0;
    json_array_foreach(arr, i, v)
    {
        const char *f = json_string_value(v);
        if (!f) continue;
        if (!strcmp(f, "SECCOMP_FILTER_FLAG_LOG"))
            *out |= SECCOMP_FILTER_FLAG_LOG;
        else if (!strcmp(f, "SECCOMP_FILTER_FLAG_SPEC_ALLOW"))
            *out |= SECCOMP_FILTER_FLAG_SPEC_ALLOW;
        else if (!strcmp(f, "SECCOMP_FILTER_FLAG_TSYNC"))
            *out |= SECCOMP_FILTER_FLAG_TSYNC;
        else
            return berr_set(e, 400, "seccomp: unsupported flag %s", f);
    }
    return 0;
}

/* ---- compiling ---- */
uint32_t rt_seccomp_arch(const char *a)
{
    char low[32];
    size_t k = 0;
    for (const char *p = str_starts(a, "SCMP_ARCH_") ? a + 10 : a; *p && k < sizeof low - 1; p++)
        low[k++] = (char)(*p >= 'A' && *p <= 'Z' ? *p + 32 : *p);
    low[k] = 0;
    return seccomp_arch_resolve_name(low);
}

static int add_arches(scmp_filter_ctx ctx, const json_t *arr, berr *e)
{
    size_t i;
    json_t *v;
    json_array_foreach(arr, i, v)
    {
        const char *a = json_string_value(v);
        if (!a) continue;
        uint32_t arch = rt_seccomp_arch(a);
        if (!arch) return berr_set(e, 400, "seccomp: unknown architecture %s", a);
        int r = seccomp_arch_add(ctx, arch);
        if (r < 0 && r != -EEXIST)
            return berr_set(e, 400, "seccomp: add architecture %s: %s", a, strerror(-r));
    }
    return 0;
}

int rt_seccomp_parse_args(const json_t *args, struct scmp_arg_cmp *cmp, size_t *n, bool *distinct,
                          berr *e)
{
    size_t i;
    json_t *a;
    unsigned seen = 0;
    *n = 0;
    *distinct = true;
    json_array_foreach(args, i, a)
    {
        if (i >= 6) return berr_set(e, 400, "seccomp: more than 6 argument conditions");
        enum scmp_compare op;
        if (parse_op(jstr(a, "op"), &op) < 0)
            return berr_set(e, 400, "seccomp: bad op %s", jstr(a, "op") ? jstr(a, "op") : "(none)");
        unsigned idx = (unsigned)json_integer_value(json_object_get(a, "index"));
        if (idx > 5) return berr_set(e, 400, "seccomp: argument index %u out of range", idx);
        if (seen & (1U << idx)) *distinct = false;
        seen |= 1U << idx;
        cmp[(*n)++] = (struct scmp_arg_cmp){
            idx, op, (scmp_datum_t)json_integer_value(json_object_get(a, "value")),
            (scmp_datum_t)json_integer_value(json_object_get(a, "valueTwo"))};
    }
    return 0;
}

static int add_rule(scmp_filter_ctx ctx, const json_t *rule, uint32_t dflt, berr *e)
{
    uint32_t act;
    if (rt_seccomp_parse_action(jstr(rule, "action"), json_object_get(rule, "errnoRet"), EPERM,
                                &act, e) < 0)
        return -1;
    if (act == dflt) return 0;
    struct scmp_arg_cmp cmp[6];
    size_t ncmp;
    bool distinct;
    if (rt_seccomp_parse_args(json_object_get(rule, "args"), cmp, &ncmp, &distinct, e) < 0)
        return -1;
    size_t i;
    json_t *nm;
    json_array_foreach(json_object_get(rule, "names"), i, nm)
    {
        const char *name = json_string_value(nm);
        int nr = name ? seccomp_syscall_resolve_name(name) : __NR_SCMP_ERROR;
        if (nr == __NR_SCMP_ERROR) continue; /* unknown here: ignored, as runc does */
        int r = 0;
        if (distinct || ncmp <= 1)
            r = seccomp_rule_add_array(ctx, act, nr, (unsigned)ncmp, cmp);
        else
            for (size_t k = 0; k < ncmp && r >= 0; k++)
                r = seccomp_rule_add_array(ctx, act, nr, 1, &cmp[k]);
        if (r < 0) return berr_set(e, 400, "seccomp: add rule for %s: %s", name, strerror(-r));
    }
    return 0;
}

static int export_bpf(scmp_filter_ctx ctx, rt_bpf *out, berr *e)
{
    _cleanup_close_ int fd = memfd_create("seccomp-bpf", MFD_CLOEXEC);
    if (fd < 0) return berr_errno(e, 500, "memfd_create");
    int r = seccomp_export_bpf(ctx, fd);
    if (r < 0) return berr_set(e, 500, "seccomp: export BPF: %s", strerror(-r));
    off_t len = lseek(fd, 0, SEEK_END);
    if (len <= 0 || len % sizeof(struct sock_filter) || len / sizeof(struct sock_filter) > 65535)
        return berr_set(e, 500, "seccomp: bad BPF size %lld", (long long)len);
    out->filter = xmalloc((size_t)len);
    if (pread(fd, out->filter, (size_t)len, 0) != len) return berr_errno(e, 500, "read BPF");
    out->len = (unsigned short)(len / sizeof(struct sock_filter));
    return 0;
}

int rt_seccomp_compile_libseccomp(const json_t *sc, rt_bpf *out, berr *e)
{
    uint32_t dflt;
    if (rt_seccomp_parse_action(jstr(sc, "defaultAction"), json_object_get(sc, "defaultErrnoRet"),
                                EPERM, &dflt, e) < 0)
        return -1;
    if (jstr(sc, "listenerPath"))
        return berr_set(e, 400, "seccomp: notify listeners are not supported");
    if (rt_seccomp_parse_flags(json_object_get(sc, "flags"), &out->flags, e) < 0) return -1;
    scmp_filter_ctx ctx = seccomp_init(dflt);
    if (!ctx) return berr_set(e, 500, "seccomp_init failed");
    int r = -1;
    seccomp_attr_set(ctx, SCMP_FLTATR_CTL_NNP, 0);
    /* a binary tree of syscall numbers instead of a linear list: the kernel
     * emulates the program for every syscall of every arch when it is loaded
     * (its allow-cache), which costs ~1.5 ms for the default profile as a list */
    seccomp_attr_set(ctx, SCMP_FLTATR_CTL_OPTIMIZE, 2);
    if (add_arches(ctx, json_object_get(sc, "architectures"), e) < 0) goto out;
    size_t i;
    json_t *rule;
    json_array_foreach(json_object_get(sc, "syscalls"), i, rule)
    {
        if (add_rule(ctx, rule, dflt, e) < 0) goto out;
    }
    r = export_bpf(ctx, out, e);
out:
    seccomp_release(ctx);
    return r;
}

/* ---- the cache ---- */
/* The key: SHA-256 of what decides the program (the generators' versions,
 * the native arch) and of a canonical walk of the profile, fed to the hash
 * as it goes (through a small buffer): a type tag per value, lengths before
 * strings and containers, object members sorted by key. Equal JSON values give equal keys whatever
 * their members' order; different ones (even by a NUL inside a string)
 * give different byte streams. */
typedef struct khash {
    sha256_ctx *c;
    size_t n;
    unsigned char buf[2048];
} khash;

static void kh_flush(khash *h)
{
    sha256_update(h->c, h->buf, h->n);
    h->n = 0;
}

static inline void kh_add(khash *h, const void *p, size_t n)
{
    if (h->n + n > sizeof h->buf) {
        kh_flush(h);
        if (n > sizeof h->buf) {
            sha256_update(h->c, p, n);
            return;
        }
    }
    memcpy(h->buf + h->n, p, n);
    h->n += n;
}

/* A type tag and a number (a length, an integer) as LEB128. */
static inline void kh_tag(khash *h, char tag, uint64_t v)
{
    if (h->n + 11 > sizeof h->buf) kh_flush(h);
    unsigned char *b = h->buf + h->n;
    size_t k = 0;
    b[k++] = (unsigned char)tag;
    do {
        b[k++] = (unsigned char)((v & 0x7f) | (v > 0x7f ? 0x80 : 0));
        v >>= 7;
    } while (v);
    h->n += k;
}

typedef struct kmember {
    const char *key;
    size_t len;
    const json_t *v;
} kmember;

static int kmember_cmp(const void *a, const void *b)
{
    const kmember *x = a, *y = b;
    int c = memcmp(x->key, y->key, x->len < y->len ? x->len : y->len);
    return c ? c : x->len < y->len ? -1 : x->len > y->len;
}

static void kh_json(khash *h, const json_t *j)
{
    switch (json_typeof(j)) {
    case JSON_OBJECT: {
        size_t n = json_object_size(j), k = 0, len;
        kmember stack[16], *m = n <= 16 ? stack : xmalloc(n * sizeof *m);
        const char *key;
        json_t *v;
        json_object_keylen_foreach((json_t *)j, key, len, v) m[k++] = (kmember){key, len, v};
        qsort(m, k, sizeof *m, kmember_cmp);
        kh_tag(h, 'o', k);
        for (size_t i = 0; i < k; i++) {
            kh_tag(h, 'k', m[i].len);
            kh_add(h, m[i].key, m[i].len);
            kh_json(h, m[i].v);
        }
        if (m != stack) free(m);
        break;
    }
    case JSON_ARRAY: {
        size_t n = json_array_size(j);
        kh_tag(h, 'a', n);
        for (size_t i = 0; i < n; i++) kh_json(h, json_array_get(j, i));
        break;
    }
    case JSON_STRING:
        kh_tag(h, 's', json_string_length(j));
        kh_add(h, json_string_value(j), json_string_length(j));
        break;
    case JSON_INTEGER:
        kh_tag(h, 'i', (uint64_t)json_integer_value(j));
        break;
    case JSON_REAL: {
        double d = json_real_value(j);
        uint64_t u;
        memcpy(&u, &d, sizeof u);
        kh_tag(h, 'r', u);
        break;
    }
    case JSON_TRUE:
        kh_tag(h, 't', 0);
        break;
    case JSON_FALSE:
        kh_tag(h, 'f', 0);
        break;
    default:
        kh_tag(h, 'n', 0);
        break;
    }
}

/* What a compiled program depends on besides the profile. */
static int version_head(char *head, size_t size)
{
    const struct scmp_version *v = seccomp_version();
    return snprintf(head, size, "berth-seccomp v3 bpfgen %d libseccomp %u.%u.%u arch %u",
                    RT_BPFGEN_VERSION, v->major, v->minor, v->micro, seccomp_arch_native());
}

void rt_seccomp_key(const json_t *sc, char key[DIGEST_LEN + 1])
{
    khash kh, *h = &kh;
    h->c = sha256_new();
    h->n = 0;
    char head[128];
    int n = version_head(head, sizeof head);
    kh_tag(h, 'h', (uint64_t)n);
    kh_add(h, head, (size_t)n);
    kh_json(h, sc);
    sha256_update(h->c, h->buf, h->n);
    sha256_final(h->c, key);
}

static bool disk_load(const char *key, rt_bpf *out)
{
    if (!cache_dir) return false;
    _cleanup_free_ char *path = xasprintf("%s/%s.bpf", cache_dir, key + 7);
    char *data = NULL;
    size_t len = 0;
    if (read_file(path, &data, &len) < 0) return false;
    if (len < sizeof(unsigned) + sizeof(struct sock_filter) ||
        (len - sizeof(unsigned)) % sizeof(struct sock_filter)) {
        free(data);
        return false;
    }
    memcpy(&out->flags, data, sizeof(unsigned));
    out->len = (unsigned short)((len - sizeof(unsigned)) / sizeof(struct sock_filter));
    out->filter = xmalloc(len - sizeof(unsigned));
    memcpy(out->filter, data + sizeof(unsigned), len - sizeof(unsigned));
    free(data);
    return true;
}

static void disk_store(const char *key, const rt_bpf *b)
{
    if (!cache_dir || mkdir_p(cache_dir, 0700) < 0) return;
    _cleanup_free_ char *path = xasprintf("%s/%s.bpf", cache_dir, key + 7);
    size_t n = b->len * sizeof(struct sock_filter);
    char *buf = xmalloc(n + sizeof(unsigned));
    memcpy(buf, &b->flags, sizeof(unsigned));
    memcpy(buf + sizeof(unsigned), b->filter, n);
    if (write_file_atomic(path, buf, n + sizeof(unsigned), 0600) < 0)
        log_debug("runtime: cannot cache seccomp program at %s: %s", path, strerror(errno));
    free(buf);
}

int rt_seccomp_get(const json_t *sc, const rt_bpf **out, berr *e)
{
    char key[DIGEST_LEN + 1];
    rt_seccomp_key(sc, key);
    for (cache_ent *c = cache; c; c = c->next)
        if (!strcmp(c->key, key)) {
            *out = &c->bpf;
            return 0;
        }
    cache_ent *c = xcalloc(1, sizeof *c);
    memcpy(c->key, key, sizeof key);
    if (!disk_load(key, &c->bpf)) {
        const char *why;
        if (rt_bpfgen(sc, &c->bpf, &why) < 0) {
            log_debug("runtime: seccomp profile compiled by libseccomp (%s)", why);
            if (rt_seccomp_compile_libseccomp(sc, &c->bpf, e) < 0) {
                free(c->bpf.filter);
                free(c);
                return -1;
            }
        }
        disk_store(key, &c->bpf);
    }
    c->next = cache;
    cache = c;
    *out = &c->bpf;
    return 0;
}

/* ---- by text ----
 * berthd writes the same profile, byte for byte, in the spec of every
 * container with the same capabilities: <cache>/<hash of the text>.key
 * holds the key of the program compiled from it, so that the shim need not
 * parse that part of the spec (most of it) nor hash it canonically. The
 * hash covers the versions the program depends on. */
static void text_path(const char *text, size_t len, char **path)
{
    char head[128], h[DIGEST_LEN + 1];
    int n = version_head(head, sizeof head);
    sha256_ctx *c = sha256_new();
    sha256_update(c, "seccomp text\n", 13);
    sha256_update(c, head, (size_t)n);
    sha256_update(c, "\n", 1);
    sha256_update(c, text, len);
    sha256_final(c, h);
    *path = xasprintf("%s/%s.key", cache_dir, h + 7);
}

int rt_seccomp_get_text(const char *text, size_t len, const rt_bpf **out)
{
    if (!cache_dir) return 0;
    char *path, *key = NULL;
    size_t klen = 0;
    text_path(text, len, &path);
    int r = read_file(path, &key, &klen);
    free(path);
    if (r < 0 || klen != DIGEST_LEN || !digest_valid(key)) {
        free(key);
        return 0;
    }
    for (cache_ent *c = cache; c; c = c->next)
        if (!strcmp(c->key, key)) {
            *out = &c->bpf;
            free(key);
            return 1;
        }
    cache_ent *c = xcalloc(1, sizeof *c);
    memcpy(c->key, key, DIGEST_LEN + 1);
    free(key);
    if (!disk_load(c->key, &c->bpf)) {
        free(c);
        return 0;
    }
    c->next = cache;
    cache = c;
    *out = &c->bpf;
    return 1;
}

void rt_seccomp_note_text(const char *text, size_t len, const json_t *sc)
{
    if (!cache_dir || mkdir_p(cache_dir, 0700) < 0) return;
    char key[DIGEST_LEN + 1], *path;
    rt_seccomp_key(sc, key);
    text_path(text, len, &path);
    if (write_file_atomic(path, key, DIGEST_LEN, 0600) < 0)
        log_debug("runtime: cannot note seccomp profile text at %s: %s", path, strerror(errno));
    free(path);
}

int rt_seccomp_prepare(const json_t *sc, berr *e)
{
    const rt_bpf *b;
    return rt_seccomp_get(sc, &b, e);
}

int rt_seccomp_load(const rt_bpf *b, berr *e)
{
    struct sock_fprog prog = {b->len, b->filter};
    if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, b->flags, &prog) < 0)
        return berr_errno(e, 500, "load seccomp filter");
    return 0;
}
