/* bpfgen.c: a spec-form seccomp profile compiled into compact classic BPF.
 *
 * Loading a filter costs the kernel time in proportion to its size (checks,
 * conversion to eBPF, JIT) and to its path lengths (it runs the program for
 * every syscall number of every arch to build its allow-cache). libseccomp
 * tests syscall numbers one by one (~1200 instructions for the default
 * profile even as a binary tree); an allow-list is mostly long runs of
 * consecutive numbers with the same action, so this generator decides by
 * ranges:
 *
 *   ld arch; jeq X86_64 -> [x86_64]; jeq I386 -> [x86]; ret KILL
 *   [arch]: ld nr; a balanced tree of jge over the starts of the runs of
 *           equal decision; leaves jump to "ret ACTION" or to the argument
 *           block of one syscall number; the argument blocks; the rets
 *
 * The decisions are libseccomp's (2.5), which the unit test checks input by
 * input against libseccomp's own program:
 * - names resolve on the native arch (unknown: skipped), then through the
 *   native name on each other arch; names of syscalls an arch lacks give
 *   libseccomp's negative pseudo numbers there, which its program never
 *   matches (skipped);
 * - x32 is the x86_64 audit arch with bit 30 set in the number: without x32
 *   in the list, numbers >= bit 30 are a bad arch except -1;
 * - on x86, socket and SysV IPC calls are also matched through socketcall /
 *   ipc with argument 0 = the call's number (replacing any condition on
 *   argument 0), besides the direct syscall when there is one;
 * - arguments are compared as two 32-bit words on x86_64 (high then low),
 *   the low word only on x86 and x32;
 * - a syscall's rules are OR-ed, each an AND of its conditions; the first
 *   rule without conditions decides alone;
 * - MASKED_EQ compares (arg & mask) with (value & mask).
 * What it does not handle is left to libseccomp: other architectures, one
 * syscall with conditional rules of different actions (unless each such
 * pair requires different values of one argument, as socketcall's calls
 * do), a program that does not fit. */
#include <errno.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "bpfgen.h"

#define X32_BIT 0x40000000u
#define X86_SOCKETCALL 102
#define X86_IPC 117
#define OFF_NR ((uint32_t)offsetof(struct seccomp_data, nr))
#define OFF_ARCH ((uint32_t)offsetof(struct seccomp_data, arch))
#define OFF_LO(i) ((uint32_t)(offsetof(struct seccomp_data, args) + 8 * (i)))
#define OFF_HI(i) (OFF_LO(i) + 4)

/* x86's direct syscalls for socketcall's and ipc's call numbers (the
 * kernel's SYS_* and *OP values); 0: only through the multiplexer. */
static const uint16_t x86_socket_direct[21] = {0,   359, 361, 362, 363, 0,   367, 368, 360, 0,  0,
                                               369, 371, 373, 366, 365, 370, 372, 364, 337, 345};
static const uint16_t x86_ipc_direct[25] = {0,   0,   393, 394, 0, 0, 0, 0, 0,   0,   0,   400, 401,
                                            399, 402, 0,   0,   0, 0, 0, 0, 397, 398, 395, 396};
static const bool x86_ipc_valid[25] = {0, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 1, 1,
                                       1, 1, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1};

/* ---- collecting the rules per (audit arch, syscall number) ---- */

enum { T_X86_64, T_I386, T_N }; /* the two audit arches */

typedef struct grule {
    struct scmp_arg_cmp c[6];
    unsigned n;
    bool wide; /* 64-bit arguments (x86_64) */
} grule;

typedef struct gent {
    uint32_t nr, seq, action;
    int rule; /* index in gen.rules; -1: unconditional */
} gent;

typedef struct gleaf {
    bool block; /* v: an argument block's index; else v is an action */
    uint32_t v;
} gleaf;

typedef struct gseg {
    uint32_t start; /* the run covers [start, next start) */
    gleaf leaf;
} gseg;

typedef struct gblock {
    int *rules;        /* in gen.rules */
    uint32_t *actions; /* per rule */
    size_t n;
    int label;
} gblock;

typedef struct gen {
    uint32_t dflt;
    bool x86, x32;
    const char *why;
    gent *ents[T_N];
    size_t nents[T_N], capents[T_N];
    grule *rules;
    size_t nrules, caprules;
    uint32_t seq;
} gen;

static int unsupported(gen *g, const char *why)
{
    if (!g->why) g->why = why;
    return -1;
}

static void add_ent(gen *g, int t, uint32_t nr, uint32_t act, const struct scmp_arg_cmp *c,
                    unsigned n, bool wide)
{
    if (g->nents[t] == g->capents[t]) {
        g->capents[t] = g->capents[t] ? 2 * g->capents[t] : 512;
        g->ents[t] = xrealloc(g->ents[t], g->capents[t] * sizeof(gent));
    }
    int r = -1;
    if (n) {
        if (g->nrules == g->caprules) {
            g->caprules = g->caprules ? 2 * g->caprules : 16;
            g->rules = xrealloc(g->rules, g->caprules * sizeof(grule));
        }
        r = (int)g->nrules++;
        grule *gr = &g->rules[r];
        memcpy(gr->c, c, n * sizeof *c);
        gr->n = n;
        gr->wide = wide;
    }
    g->ents[t][g->nents[t]++] = (gent){nr, g->seq++, act, r};
}

/* x86: a socket or IPC call through its multiplexer, argument 0 = call. */
static void add_muxed(gen *g, uint32_t mux, uint32_t call, uint32_t act,
                      const struct scmp_arg_cmp *c, unsigned n)
{
    struct scmp_arg_cmp m[6];
    unsigned k = 0;
    bool has0 = false;
    for (unsigned i = 0; i < n; i++) {
        m[k] = c[i];
        if (c[i].arg == 0) {
            m[k] = (struct scmp_arg_cmp){0, SCMP_CMP_EQ, call, 0};
            has0 = true;
        }
        k++;
    }
    if (!has0) m[k++] = (struct scmp_arg_cmp){0, SCMP_CMP_EQ, call, 0};
    add_ent(g, T_I386, mux, act, m, k, false);
}

static int add_name(gen *g, const char *name, uint32_t act, const struct scmp_arg_cmp *c,
                    unsigned n)
{
    int nat = seccomp_syscall_resolve_name(name);
    if (nat == __NR_SCMP_ERROR) return 0; /* unknown: ignored, as runc does */
    if (nat >= 0) add_ent(g, T_X86_64, (uint32_t)nat, act, c, n, true);
    if (!g->x86 && !g->x32) return 0;
    char *canon = seccomp_syscall_resolve_num_arch(SCMP_ARCH_X86_64, nat);
    if (!canon) return 0;
    if (g->x32) {
        int nr = seccomp_syscall_resolve_name_arch(SCMP_ARCH_X32, canon);
        if (nr >= 0) add_ent(g, T_X86_64, (uint32_t)nr, act, c, n, false);
    }
    int nr = g->x86 ? seccomp_syscall_resolve_name_arch(SCMP_ARCH_X86, canon) : __NR_SCMP_ERROR;
    free(canon);
    if (nr <= -101 && nr >= -120) {
        uint32_t call = (uint32_t)(-nr - 100), direct = x86_socket_direct[call];
        add_muxed(g, X86_SOCKETCALL, call, act, c, n);
        if (direct) add_ent(g, T_I386, direct, act, c, n, false);
    } else if (nr <= -200 && nr >= -224) {
        uint32_t call = (uint32_t)(-nr - 200), direct = x86_ipc_direct[call];
        if (!x86_ipc_valid[call]) return unsupported(g, "unknown x86 ipc call");
        add_muxed(g, X86_IPC, call, act, c, n);
        if (direct) add_ent(g, T_I386, direct, act, c, n, false);
    } else if (nr <= -100 && nr > -10000) {
        return unsupported(g, "unknown x86 multiplexed call");
    } else if (nr >= 0) {
        add_ent(g, T_I386, (uint32_t)nr, act, c, n, false);
    } /* other pseudo numbers: not on x86, skipped */
    return 0;
}

/* libseccomp refuses the actions the kernel lacks (API level 3: LOG and
 * KILL_PROCESS, in 4.14) */
static bool action_ok(uint32_t act)
{
    return (act != SCMP_ACT_LOG && act != SCMP_ACT_KILL_PROCESS) || seccomp_api_get() >= 3;
}

static int add_rule(gen *g, const json_t *rule)
{
    uint32_t act;
    struct scmp_arg_cmp cmp[6];
    size_t ncmp;
    bool distinct;
    if (rt_seccomp_parse_action(jstr(rule, "action"), json_object_get(rule, "errnoRet"), EPERM,
                                &act, NULL) < 0 ||
        rt_seccomp_parse_args(json_object_get(rule, "args"), cmp, &ncmp, &distinct, NULL) < 0)
        return unsupported(g, "invalid rule");
    if (act == g->dflt) return 0;
    if (!action_ok(act)) return unsupported(g, "action needs a newer kernel");
    size_t i;
    json_t *nm;
    json_array_foreach(json_object_get(rule, "names"), i, nm)
    {
        const char *name = json_string_value(nm);
        if (!name) continue;
        if (distinct || ncmp <= 1) {
            if (add_name(g, name, act, cmp, (unsigned)ncmp) < 0) return -1;
        } else {
            for (size_t k = 0; k < ncmp; k++)
                if (add_name(g, name, act, &cmp[k], 1) < 0) return -1;
        }
    }
    return 0;
}

static int arches(gen *g, const json_t *arr)
{
    /* the decisions are those of libseccomp 2.5, checked against it */
    const struct scmp_version *ver = seccomp_version();
    if (ver->major != 2 || ver->minor != 5) return unsupported(g, "libseccomp version");
    if (seccomp_arch_native() != SCMP_ARCH_X86_64) return unsupported(g, "native arch");
    size_t i;
    json_t *v;
    json_array_foreach(arr, i, v)
    {
        const char *a = json_string_value(v);
        if (!a) continue;
        uint32_t arch = rt_seccomp_arch(a);
        if (arch == SCMP_ARCH_X86)
            g->x86 = true;
        else if (arch == SCMP_ARCH_X32)
            g->x32 = true;
        else if (arch != SCMP_ARCH_X86_64)
            return unsupported(g, "architecture");
    }
    return 0;
}

/* ---- the program, with symbolic jump targets ---- */

enum { ACC_NONE = -2, ACC_UNKNOWN = -1 }; /* else: the offset A was loaded from */

typedef struct ginsn {
    uint16_t code;
    uint32_t k;
    int jt, jf; /* labels (jumps only) */
} ginsn;

typedef struct gprog {
    ginsn *v;
    size_t n, cap;
    int *lpos, *lacc; /* per label: instruction index; A on the jumps to it */
    size_t nl, capl;
    int acc; /* A here when reached by falling through */
} gprog;

static int acc_merge(int a, int b)
{
    return a == ACC_NONE ? b : b == ACC_NONE ? a : a == b ? a : ACC_UNKNOWN;
}

static int label(gprog *p)
{
    if (p->nl == p->capl) {
        p->capl = p->capl ? 2 * p->capl : 64;
        p->lpos = xrealloc(p->lpos, p->capl * sizeof(int));
        p->lacc = xrealloc(p->lacc, p->capl * sizeof(int));
    }
    p->lpos[p->nl] = -1;
    p->lacc[p->nl] = ACC_NONE;
    return (int)p->nl++;
}

static void bind(gprog *p, int l)
{
    p->lpos[l] = (int)p->n;
    p->acc = acc_merge(p->acc, p->lacc[l]);
}

static void put(gprog *p, uint16_t code, uint32_t k, int jt, int jf)
{
    if (p->n == p->cap) {
        p->cap = p->cap ? 2 * p->cap : 256;
        p->v = xrealloc(p->v, p->cap * sizeof(ginsn));
    }
    p->v[p->n++] = (ginsn){code, k, jt, jf};
}

static void ld(gprog *p, uint32_t off)
{
    if (p->acc == (int)off) return;
    put(p, BPF_LD | BPF_W | BPF_ABS, off, -1, -1);
    p->acc = (int)off;
}

static void ret(gprog *p, uint32_t k)
{
    put(p, BPF_RET | BPF_K, k, -1, -1);
    p->acc = ACC_NONE;
}

static void ja(gprog *p, int l)
{
    p->lacc[l] = acc_merge(p->lacc[l], p->acc);
    put(p, BPF_JMP | BPF_JA, 0, l, -1);
    p->acc = ACC_NONE;
}

static void jmp(gprog *p, uint16_t op, uint32_t k, int jt, int jf)
{
    p->lacc[jt] = acc_merge(p->lacc[jt], p->acc);
    p->lacc[jf] = acc_merge(p->lacc[jf], p->acc);
    put(p, BPF_JMP | op | BPF_K, k, jt, jf);
    p->acc = ACC_NONE;
}

/* Jump offsets of classic BPF conditional jumps are 8 bits: one too far
 * goes through a "ja" (32 bits) put right after the jump. */
static int assemble(gprog *p, rt_bpf *out)
{
    size_t n = p->n;
    int r = -1;
    uint8_t *tr = xcalloc(n + 1, 1); /* 1: jt via a ja after the insn, 2: jf */
    size_t *pos = xmalloc((n + 1) * sizeof(size_t));
    bool changed = true;
    while (changed) {
        changed = false;
        size_t at = 0;
        for (size_t i = 0; i < n; i++) {
            pos[i] = at;
            at += 1 + (tr[i] & 1) + (tr[i] >> 1);
        }
        pos[n] = at;
        for (size_t i = 0; i < n; i++) {
            const ginsn *x = &p->v[i];
            if (BPF_CLASS(x->code) != BPF_JMP) continue;
            /* forward only: a label bound before its jump is a bug here */
            if (p->lpos[x->jt] <= (int)i || (BPF_OP(x->code) != BPF_JA && p->lpos[x->jf] <= (int)i))
                goto out;
            if (BPF_OP(x->code) == BPF_JA) continue;
            if (!(tr[i] & 1) && pos[p->lpos[x->jt]] - pos[i] - 1 > 255) tr[i] |= 1, changed = true;
            if (!(tr[i] & 2) && pos[p->lpos[x->jf]] - pos[i] - 1 > 255) tr[i] |= 2, changed = true;
        }
    }
    size_t total = pos[n];
    if (total > BPF_MAXINSNS) goto out;
    struct sock_filter *f = xcalloc(total, sizeof *f);
    for (size_t i = 0; i < n; i++) {
        const ginsn *x = &p->v[i];
        size_t at = pos[i], slot = at + 1;
        f[at] = (struct sock_filter){x->code, 0, 0, x->k};
        if (BPF_CLASS(x->code) != BPF_JMP) continue;
        if (BPF_OP(x->code) == BPF_JA) {
            f[at].k = (uint32_t)(pos[p->lpos[x->jt]] - at - 1);
            continue;
        }
        size_t t = pos[p->lpos[x->jt]], e = pos[p->lpos[x->jf]];
        if (tr[i] & 1) {
            f[at].jt = (uint8_t)(slot - at - 1);
            f[slot] = (struct sock_filter){BPF_JMP | BPF_JA, 0, 0, (uint32_t)(t - slot - 1)};
            slot++;
        } else {
            f[at].jt = (uint8_t)(t - at - 1);
        }
        if (tr[i] & 2) {
            f[at].jf = (uint8_t)(slot - at - 1);
            f[slot] = (struct sock_filter){BPF_JMP | BPF_JA, 0, 0, (uint32_t)(e - slot - 1)};
        } else {
            f[at].jf = (uint8_t)(e - at - 1);
        }
    }
    out->filter = f;
    out->len = (unsigned short)total;
    r = 0;
out:
    free(tr);
    free(pos);
    return r;
}

/* ---- one audit arch ---- */

/* "ret" instructions, one per action, and their labels */
typedef struct gpool {
    uint32_t *acts;
    int *actl;
    size_t n;
} gpool;

static void pool_emit(gprog *p, gpool *l)
{
    for (size_t i = 0; i < l->n; i++) {
        bind(p, l->actl[i]);
        ret(p, l->acts[i]);
    }
    free(l->acts);
    free(l->actl);
    *l = (gpool){0};
}

typedef struct gblk {
    gseg *seg;
    size_t nseg;
    uint64_t *wsum; /* wsum[i]: the weight of segments 0..i-1 */
    gblock *blocks;
    size_t nblocks;
    gpool main, *pool; /* the rets at the end of the arch; where leaves go now */
} gblk;

static int cmp_ent(const void *a, const void *b)
{
    const gent *x = a, *y = b;
    if (x->nr != y->nr) return x->nr < y->nr ? -1 : 1;
    return x->seq < y->seq ? -1 : x->seq > y->seq;
}

/* No input matches both rules: both require argument i equal, to
 * different values. */
static bool disjoint(const grule *x, const grule *y)
{
    uint64_t m = x->wide ? ~0ULL : 0xffffffffULL;
    for (unsigned i = 0; i < x->n; i++)
        for (unsigned j = 0; j < y->n; j++)
            if (x->c[i].op == SCMP_CMP_EQ && y->c[j].op == SCMP_CMP_EQ &&
                x->c[i].arg == y->c[j].arg && x->wide == y->wide &&
                (x->c[i].datum_a & m) != (y->c[j].datum_a & m))
                return true;
    return false;
}

static void seg_add(gblk *b, uint32_t start, gleaf leaf)
{
    if (b->nseg && b->seg[b->nseg - 1].leaf.block == leaf.block &&
        b->seg[b->nseg - 1].leaf.v == leaf.v)
        return; /* the previous run goes on */
    b->seg[b->nseg++] = (gseg){start, leaf};
}

/* Runs of equal decision over all 2^32 numbers of the arch. */
static int plan(gen *g, int t, gblk *b)
{
    gent *e = g->ents[t];
    size_t n = g->nents[t];
    qsort(e, n, sizeof *e, cmp_ent);
    b->seg = xmalloc((2 * n + 4) * sizeof(gseg));
    b->blocks = xcalloc(n + 1, sizeof(gblock));
    const gleaf dflt = {false, g->dflt}, kill = {false, SCMP_ACT_KILL};
    uint64_t next = 0; /* first number not yet covered */
    bool x32_range = t == T_X86_64 && !g->x32;
    for (size_t i = 0; i < n;) {
        size_t j = i;
        bool uncond = false, wide = false, narrow = false, mixed = false;
        uint32_t act = 0;
        for (; j < n && e[j].nr == e[i].nr; j++) {
            mixed |= e[j].action != e[i].action;
            if (e[j].rule < 0) {
                if (!uncond) act = e[j].action; /* the first one stays */
                uncond = true;
            } else if (g->rules[e[j].rule].wide)
                wide = true;
            else
                narrow = true;
        }
        uint32_t nr = e[i].nr;
        if (x32_range && nr >= X32_BIT) break; /* not reached */
        if (wide && narrow) return unsupported(g, "arguments of two widths");
        for (size_t x = i; mixed && !uncond && x < j; x++)
            for (size_t y = x + 1; y < j; y++)
                if (e[x].action != e[y].action &&
                    !disjoint(&g->rules[e[x].rule], &g->rules[e[y].rule]))
                    return unsupported(g, "overlapping rules of two actions");
        if (nr > next) seg_add(b, (uint32_t)next, dflt);
        gleaf leaf = {false, act};
        if (!uncond) {
            gblock *k = &b->blocks[b->nblocks];
            k->rules = xmalloc((j - i) * sizeof(int));
            k->actions = xmalloc((j - i) * sizeof(uint32_t));
            for (size_t m = i; m < j; m++, k->n++) {
                k->rules[k->n] = e[m].rule;
                k->actions[k->n] = e[m].action;
            }
            leaf = (gleaf){true, (uint32_t)b->nblocks++};
        }
        seg_add(b, nr, leaf);
        next = (uint64_t)nr + 1;
        i = j;
    }
    if (x32_range) {
        if (next < X32_BIT) seg_add(b, (uint32_t)next, dflt);
        seg_add(b, X32_BIT, kill);
        seg_add(b, 0xffffffffu, dflt); /* -1: the tracer's "skip" */
    } else if (next <= 0xffffffffu) {
        seg_add(b, (uint32_t)next, dflt);
    }
    return 0;
}

static int act_label(gprog *p, gblk *b, uint32_t act)
{
    gpool *l = b->pool;
    for (size_t i = 0; i < l->n; i++)
        if (l->acts[i] == act) return l->actl[i];
    l->acts = xrealloc(l->acts, (l->n + 1) * sizeof(uint32_t));
    l->actl = xrealloc(l->actl, (l->n + 1) * sizeof(int));
    l->acts[l->n] = act;
    l->actl[l->n] = label(p);
    return l->actl[l->n++];
}

static int leaf_label(gprog *p, gblk *b, gleaf l)
{
    return l.block ? b->blocks[l.v].label : act_label(p, b, l.v);
}

static bool leaf_eq(gleaf x, gleaf y)
{
    return x.block == y.block && x.v == y.v;
}

static bool seg_single(const gblk *b, size_t i)
{
    return i + 1 < b->nseg ? b->seg[i + 1].start == b->seg[i].start + 1
                           : b->seg[i].start == 0xffffffffu;
}

/* Segments lo..hi as tests of single numbers ("jeq") when all the longer
 * ones have the same leaf (*rest, where the last test goes): the number of
 * tests, 0 if they cannot. */
static size_t chain_cost(const gblk *b, size_t lo, size_t hi, gleaf *rest)
{
    bool have = false;
    for (size_t i = lo; i <= hi; i++) {
        if (seg_single(b, i)) continue;
        if (have && !leaf_eq(*rest, b->seg[i].leaf)) return 0;
        *rest = b->seg[i].leaf;
        have = true;
    }
    if (!have) *rest = b->seg[hi].leaf;
    size_t c = 0;
    for (size_t i = lo; i <= hi; i++) c += !leaf_eq(*rest, b->seg[i].leaf);
    return c;
}

/* The kernel runs the program for every syscall number below its
 * NR_syscalls (~460 on x86_64 and i386) when it builds its allow-cache
 * (seccomp_cache_prepare): the tree is balanced by the count of those
 * numbers that each run holds, so that long runs are decided in fewer
 * steps; the other numbers (x32, the rest) only balance among themselves. */
#define EMULATED 512
static void weigh(gblk *b)
{
    b->wsum = xmalloc((b->nseg + 1) * sizeof(uint64_t));
    b->wsum[0] = 0;
    for (size_t i = 0; i < b->nseg; i++) {
        uint64_t s = b->seg[i].start, e = i + 1 < b->nseg ? b->seg[i + 1].start : 1ULL << 32;
        uint64_t n = s < EMULATED ? (e < EMULATED ? e : EMULATED) - s : 0;
        b->wsum[i + 1] = b->wsum[i] + n * 1024 + 1;
    }
}

/* Segments lo..hi (lo < hi), A = the syscall number: a weight-balanced tree
 * of "jge" whose small subtrees of single exceptions in a run (a syscall
 * denied among allowed ones) are chains of "jeq", as short and no deeper. */
#define CHAIN_MAX 4
#define POOL_SEGS 192
static void tree_in(gprog *p, gblk *b, size_t lo, size_t hi);
static void tree(gprog *p, gblk *b, size_t lo, size_t hi)
{
    /* in a tree too large for 8-bit jumps to the rets at the end, each
     * subtree of up to POOL_SEGS segments has its own rets after it */
    if (b->pool != &b->main || b->nseg <= POOL_SEGS || hi - lo + 1 > POOL_SEGS) {
        tree_in(p, b, lo, hi);
        return;
    }
    gpool local = {0};
    b->pool = &local;
    tree_in(p, b, lo, hi);
    b->pool = &b->main;
    pool_emit(p, &local);
}

static void tree_in(gprog *p, gblk *b, size_t lo, size_t hi)
{
    gleaf rest;
    size_t c = chain_cost(b, lo, hi, &rest);
    if (c && c <= CHAIN_MAX && c < hi - lo + 1) {
        size_t k = 0;
        for (size_t i = lo; i <= hi; i++) {
            if (leaf_eq(rest, b->seg[i].leaf)) continue;
            int next = ++k < c ? label(p) : leaf_label(p, b, rest);
            jmp(p, BPF_JEQ, b->seg[i].start, leaf_label(p, b, b->seg[i].leaf), next);
            if (k < c) bind(p, next);
        }
        return;
    }
    /* the split: segments mid..hi on the "jge" side, the weights of the
     * sides as equal as can be */
    size_t mid = lo + 1;
    uint64_t best = UINT64_MAX;
    for (size_t m = lo + 1; m <= hi; m++) {
        uint64_t left = b->wsum[m] - b->wsum[lo], right = b->wsum[hi + 1] - b->wsum[m];
        uint64_t d = left > right ? left - right : right - left;
        if (d < best) best = d, mid = m;
    }
    int l = mid - 1 == lo ? leaf_label(p, b, b->seg[lo].leaf) : label(p);
    int r = mid == hi ? leaf_label(p, b, b->seg[hi].leaf) : label(p);
    jmp(p, BPF_JGE, b->seg[mid].start, r, l);
    if (mid - 1 > lo) {
        bind(p, l);
        tree(p, b, lo, mid - 1);
    }
    if (hi > mid) {
        bind(p, r);
        tree(p, b, mid, hi);
    }
}

/* One condition: on to pass or to fail. */
static void cond(gprog *p, const struct scmp_arg_cmp *c, bool wide, int pass, int fail)
{
    uint32_t a_hi = (uint32_t)(c->datum_a >> 32), a_lo = (uint32_t)c->datum_a;
    uint64_t datum_b = c->op == SCMP_CMP_MASKED_EQ ? c->datum_b & c->datum_a : c->datum_b;
    uint32_t b_hi = (uint32_t)(datum_b >> 32), b_lo = (uint32_t)datum_b;
    uint32_t hi = OFF_HI(c->arg), lo = OFF_LO(c->arg);
    int next = label(p);
    switch (c->op) {
    case SCMP_CMP_EQ:
    case SCMP_CMP_NE: {
        int t = c->op == SCMP_CMP_EQ ? pass : fail, f = c->op == SCMP_CMP_EQ ? fail : pass;
        if (wide) {
            ld(p, hi);
            jmp(p, BPF_JEQ, a_hi, next, f);
            bind(p, next);
        }
        ld(p, lo);
        jmp(p, BPF_JEQ, a_lo, t, f);
        break;
    }
    case SCMP_CMP_GT:
    case SCMP_CMP_GE:
    case SCMP_CMP_LT:
    case SCMP_CMP_LE: {
        /* GT/GE pass on "above"; LT (= not GE) and LE (= not GT) fail */
        bool up = c->op == SCMP_CMP_GT || c->op == SCMP_CMP_GE;
        int above = up ? pass : fail, below = up ? fail : pass;
        uint16_t low_op = c->op == SCMP_CMP_GT || c->op == SCMP_CMP_LE ? BPF_JGT : BPF_JGE;
        if (wide) {
            int eq = label(p);
            ld(p, hi);
            jmp(p, BPF_JGT, a_hi, above, eq);
            bind(p, eq);
            jmp(p, BPF_JEQ, a_hi, next, below);
            bind(p, next);
        }
        ld(p, lo);
        jmp(p, low_op, a_lo, above, below);
        break;
    }
    case SCMP_CMP_MASKED_EQ:
        /* (arg & value) == (valueTwo & value), word by word; a word
         * masked to 0 always matches */
        if (wide && a_hi) {
            ld(p, hi);
            put(p, BPF_ALU | BPF_AND | BPF_K, a_hi, -1, -1);
            p->acc = ACC_UNKNOWN;
            jmp(p, BPF_JEQ, b_hi, next, fail);
            bind(p, next);
        }
        if (a_lo) {
            ld(p, lo);
            put(p, BPF_ALU | BPF_AND | BPF_K, a_lo, -1, -1);
            p->acc = ACC_UNKNOWN;
            jmp(p, BPF_JEQ, b_lo, pass, fail);
        } else {
            ja(p, pass);
        }
        break;
    default:
        break;
    }
}

/* The rules of one syscall number: the first rule whose conditions all
 * hold gives its action (rules of different actions never both hold),
 * else the default. */
static bool single_eq(const grule *r, const grule *like)
{
    return r->n == 1 && r->c[0].op == SCMP_CMP_EQ && r->wide &&
           (!like ||
            (r->c[0].arg == like->c[0].arg && r->c[0].datum_a >> 32 == like->c[0].datum_a >> 32));
}

static void block(gprog *p, gblk *b, gen *g, gblock *k)
{
    int no = act_label(p, b, g->dflt);
    for (size_t r = 0; r < k->n;) {
        const grule *gr = &g->rules[k->rules[r]];
        int yes = act_label(p, b, k->actions[r]);
        /* rules "arg == v" of one action whose values share their high
         * word (personality's): the high word tested once */
        size_t e = r + 1;
        if (single_eq(gr, NULL))
            while (e < k->n && k->actions[e] == k->actions[r] &&
                   single_eq(&g->rules[k->rules[e]], gr))
                e++;
        int fail = e < k->n ? label(p) : no;
        if (e - r > 1) {
            int lo = label(p);
            ld(p, OFF_HI(gr->c[0].arg));
            jmp(p, BPF_JEQ, (uint32_t)(gr->c[0].datum_a >> 32), lo, fail);
            bind(p, lo);
            ld(p, OFF_LO(gr->c[0].arg));
            for (size_t i = r; i < e; i++) {
                int next = i + 1 < e ? label(p) : fail;
                jmp(p, BPF_JEQ, (uint32_t)g->rules[k->rules[i]].c[0].datum_a, yes, next);
                if (next != fail) bind(p, next);
            }
        } else {
            for (unsigned c = 0; c < gr->n; c++) {
                int pass = c + 1 < gr->n ? label(p) : yes;
                cond(p, &gr->c[c], gr->wide, pass, fail);
                if (pass != yes) bind(p, pass);
            }
        }
        if (fail != no) bind(p, fail);
        r = e;
    }
}

static void emit_arch(gprog *p, gen *g, gblk *b, int entry)
{
    bind(p, entry);
    ld(p, OFF_NR);
    for (size_t i = 0; i < b->nblocks; i++) b->blocks[i].label = label(p);
    weigh(b);
    if (b->nseg == 1)
        ja(p, leaf_label(p, b, b->seg[0].leaf));
    else
        tree(p, b, 0, b->nseg - 1);
    for (size_t i = 0; i < b->nblocks; i++) {
        bind(p, b->blocks[i].label);
        block(p, b, g, &b->blocks[i]);
    }
    pool_emit(p, &b->main);
}

static void gblk_free(gblk *b)
{
    for (size_t i = 0; i < b->nblocks; i++) {
        free(b->blocks[i].rules);
        free(b->blocks[i].actions);
    }
    free(b->blocks);
    free(b->seg);
    free(b->wsum);
    free(b->main.acts);
    free(b->main.actl);
}

int rt_bpfgen(const json_t *sc, rt_bpf *out, const char **why)
{
    gen g = {0};
    gprog p = {.acc = ACC_NONE};
    gblk blk[T_N] = {0};
    for (int t = 0; t < T_N; t++) blk[t].pool = &blk[t].main;
    int r = -1;
    memset(out, 0, sizeof *out);
    if (!json_is_object(sc)) {
        unsupported(&g, "not an object");
        goto out;
    }
    if (rt_seccomp_parse_action(jstr(sc, "defaultAction"), json_object_get(sc, "defaultErrnoRet"),
                                EPERM, &g.dflt, NULL) < 0 ||
        rt_seccomp_parse_flags(json_object_get(sc, "flags"), &out->flags, NULL) < 0) {
        unsupported(&g, "invalid profile");
        goto out;
    }
    if (jstr(sc, "listenerPath")) {
        unsupported(&g, "notify listener");
        goto out;
    }
    if (!action_ok(g.dflt)) {
        unsupported(&g, "action needs a newer kernel");
        goto out;
    }
    if (arches(&g, json_object_get(sc, "architectures")) < 0) goto out;
    size_t i;
    json_t *rule;
    json_array_foreach(json_object_get(sc, "syscalls"), i, rule)
    {
        if (add_rule(&g, rule) < 0) goto out;
    }
    for (int t = 0; t < T_N; t++)
        if ((t == T_X86_64 || g.x86) && plan(&g, t, &blk[t]) < 0) goto out;

    int l64 = label(&p), l32 = g.x86 ? label(&p) : -1, bad = label(&p);
    ld(&p, OFF_ARCH);
    if (g.x86) {
        int next = label(&p);
        jmp(&p, BPF_JEQ, AUDIT_ARCH_X86_64, l64, next);
        bind(&p, next);
        jmp(&p, BPF_JEQ, AUDIT_ARCH_I386, l32, bad);
    } else {
        jmp(&p, BPF_JEQ, AUDIT_ARCH_X86_64, l64, bad);
    }
    bind(&p, bad);
    ret(&p, SCMP_ACT_KILL); /* libseccomp's default bad-arch action */
    emit_arch(&p, &g, &blk[T_X86_64], l64);
    if (g.x86) emit_arch(&p, &g, &blk[T_I386], l32);
    if (assemble(&p, out) < 0 ||
        ((struct sock_filter *)out->filter)[out->len - 1].code != (BPF_RET | BPF_K)) {
        free(out->filter);
        out->filter = NULL;
        unsupported(&g, "program too large");
        goto out;
    }
    r = 0;
out:
    if (why) *why = r < 0 ? g.why : NULL;
    for (int t = 0; t < T_N; t++) {
        gblk_free(&blk[t]);
        free(g.ents[t]);
    }
    free(g.rules);
    free(p.v);
    free(p.lpos);
    free(p.lacc);
    return r;
}
