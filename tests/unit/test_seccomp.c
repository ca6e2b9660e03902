/* test_seccomp.c: Berth's seccomp generator (src/runtime/bpfgen.c) against
 * libseccomp. Both programs run in a small classic-BPF interpreter on the
 * same inputs (every syscall number 0..1023 of x86_64, i386, x32 and an
 * unknown arch, the numbers around -1 and libseccomp's pseudo numbers;
 * arguments around every constant of the profile) and must decide the same.
 * Then our program is loaded with seccomp(2) in a child. And the cache key. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/personality.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "daemon/ocispec.h"
#include "runtime/bpfgen.h"

#define DOCKER_PROFILE                                                                             \
    "/tmp/moby/usr/share/gocode/src/github.com/docker/docker/profiles/seccomp/default.json"

/* ---- a classic BPF interpreter for seccomp programs ---- */

typedef struct vm_result {
    uint32_t ret;
    bool read_args; /* loaded from args[] (or ip): the decision may depend on them */
    unsigned steps; /* instructions run */
} vm_result;

static vm_result vm_run(const struct sock_filter *f, size_t n, const struct seccomp_data *d)
{
    uint32_t a = 0, x = 0, mem[BPF_MEMWORDS] = {0};
    vm_result r = {0, false, 0};
    const unsigned char *data = (const unsigned char *)d;
    for (size_t pc = 0; pc < n; pc++) {
        const struct sock_filter *i = &f[pc];
        uint32_t k = i->k, src = BPF_SRC(i->code) == BPF_X ? x : k;
        r.steps++;
        switch (BPF_CLASS(i->code)) {
        case BPF_LD:
            if (i->code == (BPF_LD | BPF_W | BPF_ABS)) {
                assert_true(k % 4 == 0 && k + 4 <= sizeof *d);
                if (k >= offsetof(struct seccomp_data, instruction_pointer)) r.read_args = true;
                memcpy(&a, data + k, 4);
            } else if (i->code == (BPF_LD | BPF_W | BPF_LEN)) {
                a = sizeof *d;
            } else if (i->code == (BPF_LD | BPF_IMM)) {
                a = k;
            } else if (i->code == (BPF_LD | BPF_MEM)) {
                assert_true(k < BPF_MEMWORDS);
                a = mem[k];
            } else {
                fail_msg("pc %zu: unsupported load %#x", pc, i->code);
            }
            break;
        case BPF_LDX:
            if (i->code == (BPF_LDX | BPF_W | BPF_IMM))
                x = k;
            else if (i->code == (BPF_LDX | BPF_W | BPF_LEN))
                x = sizeof *d;
            else if (i->code == (BPF_LDX | BPF_MEM) && k < BPF_MEMWORDS)
                x = mem[k];
            else
                fail_msg("pc %zu: unsupported ldx %#x", pc, i->code);
            break;
        case BPF_ST:
            assert_true(k < BPF_MEMWORDS);
            mem[k] = a;
            break;
        case BPF_STX:
            assert_true(k < BPF_MEMWORDS);
            mem[k] = x;
            break;
        case BPF_ALU:
            switch (BPF_OP(i->code)) {
            case BPF_ADD:
                a += src;
                break;
            case BPF_SUB:
                a -= src;
                break;
            case BPF_MUL:
                a *= src;
                break;
            case BPF_DIV:
                assert_true(src != 0);
                a /= src;
                break;
            case BPF_MOD:
                assert_true(src != 0);
                a %= src;
                break;
            case BPF_AND:
                a &= src;
                break;
            case BPF_OR:
                a |= src;
                break;
            case BPF_XOR:
                a ^= src;
                break;
            case BPF_LSH:
                a = src < 32 ? a << src : 0;
                break;
            case BPF_RSH:
                a = src < 32 ? a >> src : 0;
                break;
            case BPF_NEG:
                a = -a;
                break;
            default:
                fail_msg("pc %zu: unsupported alu %#x", pc, i->code);
            }
            break;
        case BPF_JMP: {
            bool t;
            if (BPF_OP(i->code) == BPF_JA) {
                assert_true(pc + 1 + k < n);
                pc += k;
                break;
            }
            switch (BPF_OP(i->code)) {
            case BPF_JEQ:
                t = a == src;
                break;
            case BPF_JGT:
                t = a > src;
                break;
            case BPF_JGE:
                t = a >= src;
                break;
            case BPF_JSET:
                t = (a & src) != 0;
                break;
            default:
                fail_msg("pc %zu: unsupported jump %#x", pc, i->code);
                return r;
            }
            pc += t ? i->jt : i->jf;
            assert_true(pc + 1 < n);
            break;
        }
        case BPF_RET:
            r.ret = BPF_RVAL(i->code) == BPF_A ? a : k;
            return r;
        case BPF_MISC:
            if (BPF_MISCOP(i->code) == BPF_TAX)
                x = a;
            else
                a = x;
            break;
        }
    }
    fail_msg("ran off the end of the program");
    return r;
}

/* ---- comparing two programs ---- */

typedef struct vals {
    uint64_t v[4096];
    size_t n;
} vals;

static void vals_add(vals *s, uint64_t v)
{
    for (size_t i = 0; i < s->n; i++)
        if (s->v[i] == v) return;
    if (s->n < sizeof s->v / sizeof *s->v) s->v[s->n++] = v;
}

static void vals_around(vals *s, uint64_t c)
{
    static const uint64_t hi1 = 1ULL << 32;
    const uint64_t d[] = {c,
                          c - 1,
                          c + 1,
                          c | hi1,
                          c ^ hi1,
                          c + hi1,
                          c - hi1,
                          c & 0xffffffffULL,
                          c | 0xffffffff00000000ULL,
                          c & 0xffffffff00000000ULL,
                          ~c,
                          (c & 0xffffffffULL) - 1,
                          (c & 0xffffffffULL) + 1,
                          c << 32,
                          c >> 32};
    for (size_t i = 0; i < sizeof d / sizeof *d; i++) vals_add(s, d[i]);
    for (int b = 0; b < 64; b++)
        if (c & (1ULL << b)) vals_add(s, c & ~(1ULL << b)); /* one bit of a mask off */
}

/* The constants of the profile's conditions, and values around them. */
static void collect_vals(const json_t *sc, vals *s)
{
    s->n = 0;
    vals_around(s, 0);
    vals_around(s, ~0ULL);
    for (uint64_t i = 0; i <= 25; i++) vals_add(s, i); /* socketcall / ipc calls */
    size_t i, j;
    json_t *r, *a;
    json_array_foreach(json_object_get(sc, "syscalls"), i, r)
    {
        json_array_foreach(json_object_get(r, "args"), j, a)
        {
            uint64_t v = (uint64_t)json_integer_value(json_object_get(a, "value"));
            uint64_t v2 = (uint64_t)json_integer_value(json_object_get(a, "valueTwo"));
            vals_around(s, v);
            vals_around(s, v2);
            vals_add(s, v2 | ~v);       /* masked: the datum with every bit outside the mask */
            vals_add(s, v & v2);        /* masked: the datum within the mask */
            vals_add(s, v2 ^ (v & -v)); /* masked: the lowest mask bit flipped */
        }
    }
}

static uint64_t rnd_state = 0x9e3779b97f4a7c15ULL;
static uint64_t rnd(void)
{
    rnd_state ^= rnd_state << 13;
    rnd_state ^= rnd_state >> 7;
    rnd_state ^= rnd_state << 17;
    return rnd_state;
}

typedef struct cmp_stats {
    size_t inputs, arg_nrs;
} cmp_stats;

static void cmp_one(const rt_bpf *ours, const rt_bpf *ref, const struct seccomp_data *d,
                    const char *what)
{
    vm_result a = vm_run(ours->filter, ours->len, d), b = vm_run(ref->filter, ref->len, d);
    if (a.ret != b.ret)
        fail_msg("%s: arch %#x nr %d (%#x) args %#llx %#llx %#llx %#llx %#llx %#llx: ours %#x, "
                 "libseccomp %#x",
                 what, d->arch, d->nr, (unsigned)d->nr, (unsigned long long)d->args[0],
                 (unsigned long long)d->args[1], (unsigned long long)d->args[2],
                 (unsigned long long)d->args[3], (unsigned long long)d->args[4],
                 (unsigned long long)d->args[5], a.ret, b.ret);
}

static void cmp_nr(const rt_bpf *ours, const rt_bpf *ref, uint32_t arch, uint32_t nr, const vals *v,
                   const char *what, cmp_stats *st)
{
    struct seccomp_data d = {.nr = (int)nr, .arch = arch, .instruction_pointer = 0x401000};
    vm_result a = vm_run(ours->filter, ours->len, &d), b = vm_run(ref->filter, ref->len, &d);
    cmp_one(ours, ref, &d, what);
    st->inputs++;
    if (!a.read_args && !b.read_args) return; /* decided by arch and nr alone */
    st->arg_nrs++;
    for (int i = 0; i < 6; i++) /* one argument at a time */
        for (size_t k = 0; k < v->n; k++) {
            memset(d.args, 0, sizeof d.args);
            d.args[i] = v->v[k];
            cmp_one(ours, ref, &d, what);
            st->inputs++;
        }
    for (int n = 0; n < 2000; n++) { /* several at once */
        for (int i = 0; i < 6; i++) d.args[i] = (rnd() & 3) ? v->v[rnd() % v->n] : rnd();
        cmp_one(ours, ref, &d, what);
        st->inputs++;
    }
}

static const uint32_t test_arches[] = {AUDIT_ARCH_X86_64, AUDIT_ARCH_I386, AUDIT_ARCH_AARCH64, 0};

/* A child under a filter that may forbid or trap any syscall: signals that
 * kill it, without a core; no exit handlers (ASan's leak check would need
 * ptrace and clone, and hangs under some filters). */
static void child_prepare(void)
{
    signal(SIGSYS, SIG_DFL); /* not cmocka's handlers: no return to the tests */
    signal(SIGSEGV, SIG_DFL);
    signal(SIGILL, SIG_DFL);
    struct rlimit no_core = {0, 0};
    setrlimit(RLIMIT_CORE, &no_core);
}

/* Not "noreturn": ASan would call sigaltstack before it (and spin when the
 * filter forbids it). */
static void child_exit(int status)
{
    syscall(SYS_exit_group, status);
    __builtin_trap(); /* exit_group forbidden: SIGILL */
}

/* The kernel takes the program: loaded in a child (no_new_privs, seccomp(2))
 * that says so in shared memory, as the program may forbid any syscall after
 * it, exit_group too. */
static void kernel_accepts(const rt_bpf *b, const char *what)
{
    volatile int *ok = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    assert_true(ok != MAP_FAILED);
    *ok = 0;
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        child_prepare();
        berr e;
        if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == 0 && rt_seccomp_load(b, &e) == 0) *ok = 1;
        child_exit(0);
    }
    assert_int_equal(waitpid(pid, NULL, 0), pid);
    int loaded = *ok;
    munmap((void *)ok, 4096);
    if (!loaded) fail_msg("%s: the kernel refused it", what);
}

/* Both compilers on sc; the decisions must be the same everywhere. */
static void compare(const json_t *sc, const char *what, unsigned *our_len, unsigned *ref_len)
{
    rt_bpf ours = {0}, ref = {0};
    berr e = {0};
    const char *why = NULL;
    if (rt_bpfgen(sc, &ours, &why) < 0) {
        char *dump = json_dumps(sc, JSON_COMPACT);
        fail_msg("%s: bpfgen refused (%s): %.400s", what, why, dump);
    }
    if (rt_seccomp_compile_libseccomp(sc, &ref, &e) < 0)
        fail_msg("%s: libseccomp: %s", what, e.msg);
    vals *v = malloc(sizeof *v);
    collect_vals(sc, v);
    cmp_stats st = {0};
    for (size_t ai = 0; ai < sizeof test_arches / sizeof *test_arches; ai++) {
        uint32_t arch = test_arches[ai];
        for (uint32_t nr = 0; nr < 1024; nr++) {
            cmp_nr(&ours, &ref, arch, nr, v, what, &st);
            cmp_nr(&ours, &ref, arch, 0x40000000u + nr, v, what, &st); /* x32 */
        }
        /* -1 (a tracer's skip), libseccomp's pseudo numbers (-100..-224
         * multiplexed calls, -10000.. syscalls an arch lacks), the edges */
        for (uint32_t k = 1; k <= 300; k++) cmp_nr(&ours, &ref, arch, -k, v, what, &st);
        for (uint32_t k = 9990; k <= 10400; k++) cmp_nr(&ours, &ref, arch, -k, v, what, &st);
        const uint32_t edges[] = {0x3fffffff, 0x7fffffff, 0x80000000, 0xbfffffff, 0x40000400,
                                  0x4000ffff, 1024,       4096,       65535,      65536};
        for (size_t k = 0; k < sizeof edges / sizeof *edges; k++)
            cmp_nr(&ours, &ref, arch, edges[k], v, what, &st);
    }
    kernel_accepts(&ours, what);
    if (our_len) *our_len = ours.len;
    if (ref_len) *ref_len = ref.len;
    if (getenv("BPFGEN_VERBOSE"))
        print_message("%s: ours %u insns, libseccomp %u; %zu inputs (%zu numbers with args)\n",
                      what, ours.len, ref.len, st.inputs, st.arg_nrs);
    free(v);
    free(ours.filter);
    free(ref.filter);
}

/* ---- profiles ---- */

static json_t *load_json(const char *s)
{
    json_error_t je;
    json_t *j = json_loads(s, JSON_ALLOW_NUL, &je);
    if (!j) fail_msg("bad test JSON: %s: %s", je.text, s);
    return j;
}

static const char *const arch_lists[] = {
    NULL,
    "[]",
    "[\"SCMP_ARCH_X86_64\"]",
    "[\"SCMP_ARCH_X86_64\",\"SCMP_ARCH_X86\"]",
    "[\"SCMP_ARCH_X86_64\",\"SCMP_ARCH_X32\"]",
    "[\"SCMP_ARCH_X86_64\",\"SCMP_ARCH_X86\",\"SCMP_ARCH_X32\"]",
    "[\"SCMP_ARCH_X86\"]",
    "[\"SCMP_ARCH_X32\",\"SCMP_ARCH_X86\",\"SCMP_ARCH_X86_64\",\"SCMP_ARCH_X86\"]",
};
#define NARCHES (sizeof arch_lists / sizeof *arch_lists)

/* A profile from its default action part and its rules, for every arch list. */
static void compare_all_arches(const char *head, const char *rules, const char *what)
{
    for (size_t a = 0; a < NARCHES; a++) {
        char *s = xasprintf("{%s%s\"architectures\":%s,\"syscalls\":%s}", head, *head ? "," : "",
                            arch_lists[a] ? arch_lists[a] : "null", rules);
        json_t *sc = load_json(s);
        if (!arch_lists[a]) json_object_del(sc, "architectures");
        char *w = xasprintf("%s [%s]", what, arch_lists[a] ? arch_lists[a] : "no list");
        compare(sc, w, NULL, NULL);
        free(w);
        json_decref(sc);
        free(s);
    }
}

/* The instructions run for syscalls 0..459 of x86_64 and i386, the numbers
 * the kernel runs the program for when it builds its allow-cache. */
static void path_lengths(const json_t *sc, double *ours, double *ref)
{
    rt_bpf o = {0}, r = {0};
    berr e = {0};
    assert_int_equal(rt_bpfgen(sc, &o, NULL), 0);
    assert_int_equal(rt_seccomp_compile_libseccomp(sc, &r, &e), 0);
    unsigned long so = 0, sr = 0, n = 0;
    for (int a = 0; a < 2; a++)
        for (uint32_t nr = 0; nr < 460; nr++, n++) {
            struct seccomp_data d = {.nr = (int)nr, .arch = test_arches[a]};
            so += vm_run(o.filter, o.len, &d).steps;
            sr += vm_run(r.filter, r.len, &d).steps;
        }
    *ours = (double)so / (double)n;
    *ref = (double)sr / (double)n;
    free(o.filter);
    free(r.filter);
}

static void test_default_profile(void **st)
{
    /* Berth's default for the default capabilities, for none, for all */
    uint64_t caps[] = {ocispec_default_caps(), 0, ~0ULL, 1ULL << 21};
    for (size_t i = 0; i < sizeof caps / sizeof *caps; i++) {
        json_t *sc = ocispec_default_seccomp(caps[i]);
        unsigned ours, ref;
        char what[64];
        snprintf(what, sizeof what, "default profile caps %#llx", (unsigned long long)caps[i]);
        compare(sc, what, &ours, &ref);
        if (i == 0) {
            double po, pr;
            path_lengths(sc, &po, &pr);
            print_message("default profile: %u instructions, %.1f per syscall (libseccomp: %u, "
                          "%.1f)\n",
                          ours, po, ref, pr);
            assert_true(ours * 3 < ref);
        }
        json_decref(sc);
    }
}

/* Docker's profile format -> spec form, with the daemon's own converter,
 * for a capability set named like the daemon's. */
static json_t *docker_to_spec(const json_t *p, const char *const *caps)
{
    uint64_t bits = 0;
    for (const char *const *c = caps; *c; c++) bits |= 1ULL << rt_cap_from_name(*c);
    berr e;
    json_t *sc = ocispec_seccomp_from_docker(p, bits, &e);
    assert_non_null(sc);
    return sc;
}

static void test_docker_profile(void **st)
{
    json_t *p = json_load_file(DOCKER_PROFILE, 0, NULL);
    if (!p) skip();
    static const char *const all_caps[] = {
        "CAP_CHOWN",     "CAP_DAC_OVERRIDE",   "CAP_DAC_READ_SEARCH",
        "CAP_SYS_ADMIN", "CAP_SYS_BOOT",       "CAP_SYS_MODULE",
        "CAP_SYS_PACCT", "CAP_SYS_PTRACE",     "CAP_SYS_RAWIO",
        "CAP_SYS_TIME",  "CAP_SYS_TTY_CONFIG", "CAP_SYS_NICE",
        "CAP_SYSLOG",    "CAP_SYS_CHROOT",     NULL};
    berr e;
    json_t *sc = ocispec_seccomp_from_docker(p, ocispec_default_caps(), &e);
    assert_non_null(sc);
    unsigned ours, ref;
    compare(sc, "docker default profile", &ours, &ref);
    double po, pr;
    path_lengths(sc, &po, &pr);
    print_message("Docker's default profile: %u instructions, %.1f per syscall (libseccomp: %u, "
                  "%.1f)\n",
                  ours, po, ref, pr);
    json_decref(sc);
    sc = docker_to_spec(p, all_caps);
    compare(sc, "docker default profile, all caps", NULL, NULL);
    json_decref(sc);
    json_decref(p);
}

static void test_ops(void **st)
{
    static const char *const ops[] = {"SCMP_CMP_NE",       "SCMP_CMP_LT", "SCMP_CMP_LE",
                                      "SCMP_CMP_EQ",       "SCMP_CMP_GE", "SCMP_CMP_GT",
                                      "SCMP_CMP_MASKED_EQ"};
    static const char *const values[] = {"0",          "1",          "5",  "4294967295",
                                         "4294967296", "4294967301", "-1", "1099511627775",
                                         "2114060288"};
    for (size_t o = 0; o < 7; o++)
        for (size_t v = 0; v < sizeof values / sizeof *values; v++) {
            /* one condition; a second rule with two; a third on socket (x86:
             * through socketcall) */
            char *rules = xasprintf(
                "[{\"names\":[\"read\",\"personality\"],\"action\":\"SCMP_ACT_ALLOW\","
                "\"args\":[{\"index\":0,\"value\":%s,\"valueTwo\":%s,\"op\":\"%s\"}]},"
                "{\"names\":[\"write\"],\"action\":\"SCMP_ACT_ALLOW\",\"args\":["
                "{\"index\":1,\"value\":%s,\"valueTwo\":7,\"op\":\"%s\"},"
                "{\"index\":5,\"value\":3,\"valueTwo\":1,\"op\":\"SCMP_CMP_MASKED_EQ\"}]},"
                "{\"names\":[\"socket\",\"accept\",\"semop\",\"msgsnd\"],"
                "\"action\":\"SCMP_ACT_ERRNO\",\"errnoRet\":13,"
                "\"args\":[{\"index\":%d,\"value\":%s,\"valueTwo\":%s,\"op\":\"%s\"}]}]",
                values[v], values[(v + 3) % 9], ops[o], values[v], ops[o], (int)(v % 3), values[v],
                values[v], ops[o]);
            char what[96];
            snprintf(what, sizeof what, "%s value %s", ops[o], values[v]);
            compare_all_arches("\"defaultAction\":\"SCMP_ACT_KILL_PROCESS\"", rules, what);
            free(rules);
        }
}

static void test_combinations(void **st)
{
    /* several rules on one syscall (OR of ANDs), repeated argument indexes
     * (each condition a rule of its own), an unconditional rule beside
     * conditional ones */
    compare_all_arches(
        "\"defaultAction\":\"SCMP_ACT_ERRNO\"",
        "[{\"names\":[\"read\"],\"action\":\"SCMP_ACT_ALLOW\",\"args\":["
        "{\"index\":0,\"value\":1,\"op\":\"SCMP_CMP_EQ\"},{\"index\":1,\"value\":2,\"op\":"
        "\"SCMP_CMP_EQ\"}]},"
        "{\"names\":[\"read\"],\"action\":\"SCMP_ACT_ALLOW\",\"args\":["
        "{\"index\":1,\"value\":3,\"op\":\"SCMP_CMP_GT\"},{\"index\":2,\"value\":4294967296,"
        "\"op\":\"SCMP_CMP_LT\"}]},"
        "{\"names\":[\"write\"],\"action\":\"SCMP_ACT_ALLOW\",\"args\":["
        "{\"index\":0,\"value\":10,\"op\":\"SCMP_CMP_GE\"},{\"index\":0,\"value\":20,\"op\":"
        "\"SCMP_CMP_LE\"},{\"index\":3,\"value\":255,\"valueTwo\":17,\"op\":"
        "\"SCMP_CMP_MASKED_EQ\"}]},"
        "{\"names\":[\"close\"],\"action\":\"SCMP_ACT_ALLOW\",\"args\":["
        "{\"index\":0,\"value\":1,\"op\":\"SCMP_CMP_EQ\"}]},"
        "{\"names\":[\"close\",\"getpid\",\"socket\",\"recv\",\"semop\"],\"action\":"
        "\"SCMP_ACT_ALLOW\"},"
        "{\"names\":[\"socket\",\"bind\",\"recv\",\"shmat\"],\"action\":\"SCMP_ACT_ALLOW\","
        "\"args\":[{\"index\":1,\"value\":1,\"op\":\"SCMP_CMP_NE\"}]},"
        "{\"names\":[\"clone\"],\"action\":\"SCMP_ACT_ALLOW\",\"args\":[{\"index\":0,"
        "\"value\":2114060288,\"op\":\"SCMP_CMP_MASKED_EQ\"}]},"
        "{\"names\":[\"personality\"],\"action\":\"SCMP_ACT_ALLOW\",\"args\":[{\"index\":0,"
        "\"value\":0,\"op\":\"SCMP_CMP_EQ\"}]},"
        "{\"names\":[\"personality\"],\"action\":\"SCMP_ACT_ALLOW\",\"args\":[{\"index\":0,"
        "\"value\":4294967295,\"op\":\"SCMP_CMP_EQ\"}]},"
        /* "arg == v" rules, their high words equal or not */
        "{\"names\":[\"getppid\"],\"action\":\"SCMP_ACT_ALLOW\",\"args\":[{\"index\":2,"
        "\"value\":1,\"op\":\"SCMP_CMP_EQ\"}]},"
        "{\"names\":[\"getppid\"],\"action\":\"SCMP_ACT_ALLOW\",\"args\":[{\"index\":2,"
        "\"value\":4294967297,\"op\":\"SCMP_CMP_EQ\"}]},"
        "{\"names\":[\"getppid\"],\"action\":\"SCMP_ACT_ALLOW\",\"args\":[{\"index\":2,"
        "\"value\":4294967298,\"op\":\"SCMP_CMP_EQ\"}]},"
        "{\"names\":[\"getppid\"],\"action\":\"SCMP_ACT_ALLOW\",\"args\":[{\"index\":3,"
        "\"value\":4294967299,\"op\":\"SCMP_CMP_EQ\"}]},"
        "{\"names\":[\"getppid\"],\"action\":\"SCMP_ACT_ALLOW\",\"args\":[{\"index\":2,"
        "\"value\":5,\"op\":\"SCMP_CMP_EQ\"}]},"
        "{\"names\":[\"getppid\"],\"action\":\"SCMP_ACT_ALLOW\",\"args\":[{\"index\":2,"
        "\"value\":6,\"op\":\"SCMP_CMP_EQ\"}]}]",
        "combinations");
    /* rules of different actions on one syscall: the first rule without
     * conditions wins; rules with conditions that exclude each other (x86:
     * socketcall's calls) each give their own */
    compare_all_arches(
        "\"defaultAction\":\"SCMP_ACT_ALLOW\"",
        "[{\"names\":[\"read\"],\"action\":\"SCMP_ACT_LOG\",\"args\":[{\"index\":0,"
        "\"value\":1,\"op\":\"SCMP_CMP_EQ\"}]},"
        "{\"names\":[\"read\",\"write\"],\"action\":\"SCMP_ACT_ERRNO\",\"errnoRet\":5},"
        "{\"names\":[\"read\",\"write\"],\"action\":\"SCMP_ACT_ERRNO\",\"errnoRet\":6},"
        "{\"names\":[\"write\"],\"action\":\"SCMP_ACT_TRAP\",\"args\":[{\"index\":2,"
        "\"value\":1,\"op\":\"SCMP_CMP_GT\"}]},"
        "{\"names\":[\"socket\",\"connect\"],\"action\":\"SCMP_ACT_ERRNO\",\"errnoRet\":13},"
        "{\"names\":[\"bind\",\"accept\"],\"action\":\"SCMP_ACT_ERRNO\",\"errnoRet\":1,"
        "\"args\":[{\"index\":2,\"value\":16,\"op\":\"SCMP_CMP_LT\"}]},"
        "{\"names\":[\"listen\"],\"action\":\"SCMP_ACT_LOG\",\"args\":[{\"index\":0,"
        "\"value\":3,\"op\":\"SCMP_CMP_EQ\"}]},"
        "{\"names\":[\"semop\",\"msgget\"],\"action\":\"SCMP_ACT_TRAP\"},"
        "{\"names\":[\"shmat\"],\"action\":\"SCMP_ACT_KILL\"},"
        "{\"names\":[\"accept4\",\"socketcall\"],\"action\":\"SCMP_ACT_ERRNO\",\"errnoRet\":"
        "99}]",
        "two actions");
    /* conditional rules of different actions that exclude each other */
    compare_all_arches(
        "\"defaultAction\":\"SCMP_ACT_ERRNO\"",
        "[{\"names\":[\"read\",\"getpid\"],\"action\":\"SCMP_ACT_LOG\",\"args\":[{\"index\":0,"
        "\"value\":1,\"op\":\"SCMP_CMP_EQ\"}]},"
        "{\"names\":[\"read\",\"getpid\"],\"action\":\"SCMP_ACT_ALLOW\",\"args\":[{\"index\":0,"
        "\"value\":8589934595,\"op\":\"SCMP_CMP_EQ\"},{\"index\":1,\"value\":7,\"op\":"
        "\"SCMP_CMP_GT\"}]},"
        "{\"names\":[\"read\"],\"action\":\"SCMP_ACT_TRAP\",\"args\":[{\"index\":2,"
        "\"value\":9,\"op\":\"SCMP_CMP_LE\"},{\"index\":0,\"value\":2,\"op\":"
        "\"SCMP_CMP_EQ\"}]},"
        "{\"names\":[\"read\"],\"action\":\"SCMP_ACT_LOG\",\"args\":[{\"index\":0,"
        "\"value\":1,\"op\":\"SCMP_CMP_EQ\"},{\"index\":3,\"value\":1,\"op\":"
        "\"SCMP_CMP_NE\"}]}]",
        "exclusive actions");
}

static void test_actions(void **st)
{
    static const char *const heads[] = {
        "\"defaultAction\":\"SCMP_ACT_ALLOW\"",
        "\"defaultAction\":\"SCMP_ACT_ERRNO\"",
        "\"defaultAction\":\"SCMP_ACT_ERRNO\",\"defaultErrnoRet\":38",
        "\"defaultAction\":\"SCMP_ACT_ERRNO\",\"defaultErrnoRet\":0",
        "\"defaultAction\":\"SCMP_ACT_KILL\"",
        "\"defaultAction\":\"SCMP_ACT_KILL_THREAD\"",
        "\"defaultAction\":\"SCMP_ACT_KILL_PROCESS\"",
        "\"defaultAction\":\"SCMP_ACT_TRAP\"",
        "\"defaultAction\":\"SCMP_ACT_LOG\"",
        "\"defaultAction\":\"SCMP_ACT_TRACE\",\"defaultErrnoRet\":7",
    };
    const char *rules =
        "[{\"names\":[\"mkdir\",\"mkdirat\",\"_llseek\",\"socketcall\",\"nosuchcall\"],"
        "\"action\":\"SCMP_ACT_ERRNO\"},"
        "{\"names\":[\"rmdir\"],\"action\":\"SCMP_ACT_ERRNO\",\"errnoRet\":38},"
        "{\"names\":[\"unlink\"],\"action\":\"SCMP_ACT_ERRNO\",\"errnoRet\":0},"
        "{\"names\":[\"kill\",\"tkill\"],\"action\":\"SCMP_ACT_KILL\"},"
        "{\"names\":[\"tgkill\"],\"action\":\"SCMP_ACT_KILL_THREAD\"},"
        "{\"names\":[\"ptrace\"],\"action\":\"SCMP_ACT_KILL_PROCESS\"},"
        "{\"names\":[\"reboot\"],\"action\":\"SCMP_ACT_TRAP\"},"
        "{\"names\":[\"swapon\"],\"action\":\"SCMP_ACT_TRACE\",\"errnoRet\":3},"
        "{\"names\":[\"swapoff\"],\"action\":\"SCMP_ACT_LOG\"},"
        "{\"names\":[\"read\",\"write\",\"exit\",\"exit_group\",\"getpid\",\"open\",\"openat\","
        "\"close\",\"fstat\",\"mmap\",\"accept4\",\"sendmmsg\",\"msgget\",\"vm86\"],"
        "\"action\":\"SCMP_ACT_ALLOW\"},"
        "{\"names\":[\"personality\"],\"action\":\"SCMP_ACT_ERRNO\",\"errnoRet\":22,"
        "\"args\":[{\"index\":0,\"value\":8,\"op\":\"SCMP_CMP_NE\"}]}]";
    for (size_t h = 0; h < sizeof heads / sizeof *heads; h++)
        compare_all_arches(heads[h], rules, heads[h]);
}

/* Every syscall number in runs of alternating actions, and a large profile:
 * long jumps (over 255 instructions) go through "ja". */
static void test_large(void **st)
{
    json_t *sc = load_json("{\"defaultAction\":\"SCMP_ACT_ERRNO\",\"architectures\":["
                           "\"SCMP_ARCH_X86_64\",\"SCMP_ARCH_X86\",\"SCMP_ARCH_X32\"]}");
    json_t *rules = json_array();
    for (int nr = 0; nr < 460; nr++) {
        char *name = seccomp_syscall_resolve_num_arch(SCMP_ARCH_X86_64, nr);
        if (!name) continue;
        json_t *r = json_pack("{s:[s],s:s,s:i}", "names", name, "action", "SCMP_ACT_ERRNO",
                              "errnoRet", 1 + nr % 7);
        if (nr % 11 == 0)
            json_object_set_new(r, "args",
                                json_pack("[{s:i,s:I,s:s}]", "index", nr % 6, "value",
                                          (json_int_t)nr * 1000003, "op", "SCMP_CMP_GE"));
        json_array_append_new(rules, r);
        free(name);
    }
    json_object_set_new(sc, "syscalls", rules);
    unsigned ours, ref;
    compare(sc, "alternating", &ours, &ref);
    print_message("alternating actions: %u instructions (libseccomp: %u)\n", ours, ref);
    json_decref(sc);
}

/* What the generator leaves to libseccomp; rt_seccomp_get still compiles. */
static void test_fallback(void **st)
{
    static const char *const profiles[] = {
        /* two actions on one syscall */
        "{\"defaultAction\":\"SCMP_ACT_ERRNO\",\"syscalls\":["
        "{\"names\":[\"read\"],\"action\":\"SCMP_ACT_ALLOW\",\"args\":[{\"index\":0,\"value\":1,"
        "\"op\":\"SCMP_CMP_EQ\"}]},"
        "{\"names\":[\"read\"],\"action\":\"SCMP_ACT_LOG\",\"args\":[{\"index\":1,\"value\":1,"
        "\"op\":\"SCMP_CMP_EQ\"}]}]}",
        /* another architecture */
        "{\"defaultAction\":\"SCMP_ACT_ERRNO\",\"architectures\":[\"SCMP_ARCH_AARCH64\"],"
        "\"syscalls\":[{\"names\":[\"read\"],\"action\":\"SCMP_ACT_ALLOW\"}]}",
        /* x86: socket's conditions on argument 0 overlap on socketcall */
        "{\"defaultAction\":\"SCMP_ACT_ALLOW\",\"architectures\":[\"SCMP_ARCH_X86\"],"
        "\"syscalls\":[{\"names\":[\"socket\"],\"action\":\"SCMP_ACT_ERRNO\",\"args\":["
        "{\"index\":1,\"value\":1,\"op\":\"SCMP_CMP_EQ\"}]},"
        "{\"names\":[\"socket\"],\"action\":\"SCMP_ACT_LOG\",\"args\":["
        "{\"index\":2,\"value\":1,\"op\":\"SCMP_CMP_EQ\"}]}]}",
    };
    for (size_t i = 0; i < sizeof profiles / sizeof *profiles; i++) {
        json_t *sc = load_json(profiles[i]);
        rt_bpf b = {0};
        const char *why = NULL;
        assert_int_equal(rt_bpfgen(sc, &b, &why), -1);
        assert_non_null(why);
        assert_null(b.filter);
        const rt_bpf *got;
        berr e = {0};
        assert_int_equal(rt_seccomp_get(sc, &got, &e), 0);
        assert_true(got->len > 0);
        json_decref(sc);
    }
    /* invalid profiles: refused, and libseccomp's compile says why */
    static const char *const bad[] = {
        "{\"defaultAction\":\"SCMP_ACT_NOPE\"}",
        "{\"defaultAction\":\"SCMP_ACT_ERRNO\",\"syscalls\":[{\"names\":[\"read\"],"
        "\"action\":\"SCMP_ACT_ALLOW\",\"args\":[{\"index\":9,\"value\":1,\"op\":"
        "\"SCMP_CMP_EQ\"}]}]}",
        "{\"defaultAction\":\"SCMP_ACT_ERRNO\",\"syscalls\":[{\"names\":[\"read\"],"
        "\"action\":\"SCMP_ACT_ALLOW\",\"args\":[{\"index\":0,\"value\":1,\"op\":\"SCMP_CMP_"
        "XX\"}]}]}",
        "{\"defaultAction\":\"SCMP_ACT_ERRNO\",\"architectures\":[\"SCMP_ARCH_NOPE\"]}",
        "{\"defaultAction\":\"SCMP_ACT_ERRNO\",\"listenerPath\":\"/x\"}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        json_t *sc = load_json(bad[i]);
        rt_bpf b = {0};
        assert_int_equal(rt_bpfgen(sc, &b, NULL), -1);
        const rt_bpf *got;
        berr e = {0};
        assert_int_equal(rt_seccomp_get(sc, &got, &e), -1);
        assert_true(e.msg[0]);
        json_decref(sc);
    }
}

/* ---- a spec's profile found by its text (rt_spec_load_text) ---- */
static rt_spec *load_text(const char *text, berr *e)
{
    rt_spec *s = NULL;
    json_error_t je;
    if (rt_spec_load_text(text, strlen(text), "/", &s, &je, e) < 0) return NULL;
    return s;
}

/* ocispec_dumps writes the text json_dumps would, the default profile's
 * part from its cached text, whatever else the spec holds */
static void test_spec_dumps(void **st)
{
    (void)st;
    for (int round = 0; round < 3; round++) {
        json_t *spec =
            json_pack("{s:s,s:{s:[s,s]},s:{s:[{s:s}],s:o,s:[i,s]},s:{s:s}}", "ociVersion", "1.0.2",
                      "process", "args", "echo", "\"berth-seccomp-\"", "linux", "namespaces",
                      "type", "mount", "seccomp", ocispec_default_seccomp(ocispec_default_caps()),
                      "after", 1, "}", "annotations", "seccomp", "x");
        char *want = json_dumps(spec, JSON_COMPACT), *got = ocispec_dumps(spec);
        assert_string_equal(got, want);
        free(got);
        got = json_dumps(spec, JSON_COMPACT); /* the spec is as it was */
        assert_string_equal(got, want);
        free(got), free(want);
        if (round == 2) { /* not the default profile: dumped as it is */
            json_object_set_new(json_object_get(spec, "linux"), "seccomp",
                                json_pack("{s:s}", "defaultAction", "SCMP_ACT_ALLOW"));
            want = json_dumps(spec, JSON_COMPACT), got = ocispec_dumps(spec);
            assert_string_equal(got, want);
            free(got), free(want);
        }
        json_decref(spec);
    }
}

static void test_spec_text(void **st)
{
    char dir[] = "/tmp/berth-test-seccomp-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char *cache = xasprintf("%s/cache", dir);
    rt_set_cache_dir(cache);
    const char *profile = "{\"defaultAction\":\"SCMP_ACT_ALLOW\",\"syscalls\":[{\"names\":"
                          "[\"unshare\"],\"action\":\"SCMP_ACT_ERRNO\"}]}";
    /* "linux" and "seccomp" elsewhere (a string, a nested key) change nothing */
    char *text = xasprintf(
        "{\"ociVersion\":\"1.0.2\",\"annotations\":{\"seccomp\":\"linux\"},\"process\":{"
        "\"args\":[\"true\", \"\\\"linux\"],\"cwd\":\"/\",\"user\":{\"uid\":0,\"gid\":0}},"
        "\"root\":{\"path\":\"%s\"}, \"linux\" : {\"namespaces\":[{\"type\":\"mount\"}],"
        "\"x\":[1,{\"seccomp\":2},\"}\"], \"seccomp\" : %s}}",
        dir, profile);
    berr e = {0};
    rt_spec *a = load_text(text, &e);
    assert_non_null(a);
    assert_non_null(a->seccomp); /* first: parsed, compiled, its text noted */
    assert_null(a->seccomp_bpf);
    rt_spec *b = load_text(text, &e);
    assert_non_null(b);
    assert_null(b->seccomp); /* again: the program by the text, the profile not parsed */
    assert_non_null(b->seccomp_bpf);
    const rt_bpf *want;
    assert_int_equal(rt_seccomp_get(a->seccomp, &want, &e), 0);
    assert_int_equal(b->seccomp_bpf->len, want->len);
    assert_memory_equal(b->seccomp_bpf->filter, want->filter, want->len * sizeof *want->filter);
    assert_string_equal(rt_spec_process(b) ? "ok" : "", "ok");
    rt_spec_free(a), rt_spec_free(b);
    /* another text of the same profile is parsed (then noted too) */
    size_t at = strlen(text) - strlen(profile) - 2; /* where the profile begins */
    char *other = xasprintf("%.*s{ %s", (int)at, text, text + at + 1);
    rt_spec *c = load_text(other, &e);
    assert_non_null(c);
    assert_non_null(c->seccomp);
    rt_spec_free(c);
    /* malformed text: the parser's error */
    assert_null(load_text("{\"linux\":{\"seccomp\":{]}}", &e));
    rt_set_cache_dir(NULL);
    rm_rf(dir);
    free(text), free(other), free(cache);
}

/* ---- loading our program ---- */

static int child_checks(const json_t *sc, int which)
{
    rt_bpf b = {0};
    berr e = {0};
    if (rt_bpfgen(sc, &b, NULL) < 0) return 10;
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0) return 11;
    if (rt_seccomp_load(&b, &e) < 0) return 12;
    if (syscall(SYS_getpid) != getpid()) return 13;
    if (which == 0) { /* default ALLOW, mkdir -> EXDEV */
        errno = 0;
        if (syscall(SYS_mkdir, "/nonexistent-berth/x", 0700) != -1 || errno != EXDEV) return 14;
        errno = 0;
        if (syscall(SYS_rmdir, "/nonexistent-berth/x") != -1 || errno != ENOENT) return 15;
    } else { /* Berth's default profile */
        errno = 0;
        if (syscall(SYS_unshare, CLONE_NEWUSER) != -1 || errno != EPERM) return 16;
        errno = 0;
        if (syscall(SYS_clone3, NULL, 0) != -1 || errno != ENOSYS) return 17;
        errno = 0;
        if (syscall(SYS_personality, 0x1234) != -1 || errno != EPERM) return 18;
        if (syscall(SYS_personality, 0xffffffffUL) < 0) return 19;
        errno = 0;
        if (syscall(SYS_reboot, 0, 0, 0, NULL) != -1 || errno != EPERM) return 20;
    }
    return 0;
}

static void test_load(void **st)
{
    json_t *profiles[2] = {
        load_json("{\"defaultAction\":\"SCMP_ACT_ALLOW\",\"architectures\":[\"SCMP_ARCH_X86_64\","
                  "\"SCMP_ARCH_X86\",\"SCMP_ARCH_X32\"],\"syscalls\":[{\"names\":[\"mkdir\"],"
                  "\"action\":\"SCMP_ACT_ERRNO\",\"errnoRet\":18}]}"),
        ocispec_default_seccomp(ocispec_default_caps() & ~(1ULL << 21))};
    for (int i = 0; i < 2; i++) {
        fflush(NULL);
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
            child_prepare();
            child_exit(child_checks(profiles[i], i));
        }
        int status;
        assert_int_equal(waitpid(pid, &status, 0), pid);
        assert_true(WIFEXITED(status));
        assert_int_equal(WEXITSTATUS(status), 0);
        json_decref(profiles[i]);
    }
}

/* ---- the cache key ---- */

static void key_of(const char *s, char key[DIGEST_LEN + 1])
{
    json_t *j = load_json(s);
    rt_seccomp_key(j, key);
    json_decref(j);
}

static void test_key(void **st)
{
    char a[DIGEST_LEN + 1], b[DIGEST_LEN + 1];
    key_of("{\"a\":1,\"b\":[\"x\",{\"c\":null,\"d\":true}]}", a);
    assert_true(digest_valid(a));
    key_of("{\"b\":[\"x\",{\"d\":true,\"c\":null}],\"a\":1}", b);
    assert_string_equal(a, b); /* member order does not matter */
    static const char *const differ[] = {
        "{\"a\":1,\"b\":[\"x\",{\"c\":null,\"d\":false}]}",
        "{\"a\":\"1\",\"b\":[\"x\",{\"c\":null,\"d\":true}]}",
        "{\"a\":1.0,\"b\":[\"x\",{\"c\":null,\"d\":true}]}",
        "{\"a\":1,\"b\":[{\"c\":null,\"d\":true},\"x\"]}",
        "{\"a\":1,\"b\":[\"x\",{\"c\":null,\"d\":true}],\"e\":[]}",
        "{\"a\":1,\"b\":[\"x\",{\"c\":null,\"d\":true},[]]}",
        "{\"a\":1,\"b\":[\"x\\u0000\",{\"c\":null,\"d\":true}]}",
        "{\"a\":1,\"b\":[\"x\",{\"cd\":true}]}",
        "[\"a\",1,\"b\"]",
    };
    for (size_t i = 0; i < sizeof differ / sizeof *differ; i++) {
        key_of(differ[i], b);
        if (!strcmp(a, b)) fail_msg("same key for %s", differ[i]);
    }
    /* a NUL inside a key (the parser refuses them, jansson keeps them) */
    json_t *x = load_json("{\"a\":1}"), *y = json_object();
    json_object_setn_new(y, "a\0b", 3, json_integer(1));
    rt_seccomp_key(x, a);
    rt_seccomp_key(y, b);
    assert_string_not_equal(a, b);
    json_decref(x);
    json_decref(y);
    /* members of many keys (sorted on the heap) */
    x = json_object();
    y = json_object();
    for (int i = 0; i < 40; i++) {
        char k[16];
        snprintf(k, sizeof k, "k%d", i);
        json_object_set_new(x, k, json_integer(i));
        snprintf(k, sizeof k, "k%d", 39 - i);
        json_object_set_new(y, k, json_integer(39 - i));
    }
    rt_seccomp_key(x, a);
    rt_seccomp_key(y, b);
    assert_string_equal(a, b);
    json_decref(x);
    json_decref(y);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_key),
        cmocka_unit_test(test_default_profile),
        cmocka_unit_test(test_docker_profile),
        cmocka_unit_test(test_ops),
        cmocka_unit_test(test_combinations),
        cmocka_unit_test(test_actions),
        cmocka_unit_test(test_large),
        cmocka_unit_test(test_fallback),
        cmocka_unit_test(test_spec_text),
        cmocka_unit_test(test_spec_dumps),
        cmocka_unit_test(test_load),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
