/* caps.c: Linux capabilities: names, the spec's five sets, and applying them
 * with capset(2) and prctl(2) (no libcap). Only capabilities the runtime
 * itself holds are ever kept or dropped: a spec asking for one the runtime
 * lacks (CAP_SYS_RESOURCE here) gets every other one, which is what
 * --privileged means. */
#include <errno.h>
#include <linux/capability.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "internal.h"

static const char *const cap_names[] = {
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ",
    "CAP_PERFMON",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
};
#define NCAPS ((int)(sizeof cap_names / sizeof *cap_names))

int rt_cap_from_name(const char *name)
{
    if (!strncasecmp(name, "CAP_", 4)) name += 4;
    for (int i = 0; i < NCAPS; i++)
        if (!strcasecmp(name, cap_names[i] + 4)) return i;
    return -1;
}

const char *rt_cap_name(int cap)
{
    return cap >= 0 && cap < NCAPS ? cap_names[cap] : NULL;
}

int rt_cap_last(void)
{
    static int last = -1;
    if (last < 0) {
        char buf[16] = {0};
        FILE *f = fopen("/proc/sys/kernel/cap_last_cap", "re");
        last = f && fgets(buf, sizeof buf, f) ? atoi(buf) : NCAPS - 1;
        if (f) fclose(f);
        if (last > 63 || last < 0) last = NCAPS - 1;
    }
    return last;
}

uint64_t rt_caps_held(void)
{
    uint64_t held = 0;
    for (int i = 0; i <= rt_cap_last(); i++)
        if (prctl(PR_CAPBSET_READ, i, 0, 0, 0) == 1) held |= 1ULL << i;
    return held;
}

static int parse_set(const json_t *arr, uint64_t *out, berr *e)
{
    size_t i;
    json_t *v;
    *out = 0;
    json_array_foreach(arr, i, v)
    {
        const char *n = json_string_value(v);
        if (!n) return berr_set(e, 400, "capabilities must be strings");
        int c = rt_cap_from_name(n);
        if (c < 0) {
            log_debug("runtime: ignoring unknown capability %s", n); /* runc warns, too */
            continue;
        }
        *out |= 1ULL << c;
    }
    return 0;
}

int rt_caps_parse(const json_t *caps, rt_caps *c, berr *e)
{
    memset(c, 0, sizeof *c);
    if (!json_is_object(caps)) return 0;
    c->set = true;
    if (parse_set(json_object_get(caps, "bounding"), &c->bounding, e) < 0 ||
        parse_set(json_object_get(caps, "effective"), &c->effective, e) < 0 ||
        parse_set(json_object_get(caps, "permitted"), &c->permitted, e) < 0 ||
        parse_set(json_object_get(caps, "inheritable"), &c->inheritable, e) < 0 ||
        parse_set(json_object_get(caps, "ambient"), &c->ambient, e) < 0)
        return -1;
    return 0;
}

/* Drops from the bounding set everything not asked for (needs CAP_SETPCAP,
 * so it runs while still root with full capabilities). */
int rt_caps_apply_bounding(const rt_caps *c, berr *e)
{
    if (!c->set) return 0;
    for (int i = 0; i <= rt_cap_last(); i++) {
        if (c->bounding & (1ULL << i)) continue;
        if (prctl(PR_CAPBSET_READ, i, 0, 0, 0) != 1) continue; /* not ours anyway */
        if (prctl(PR_CAPBSET_DROP, i, 0, 0, 0) < 0)
            return berr_errno(e, 500, "drop capability %s from the bounding set",
                              rt_cap_name(i) ? rt_cap_name(i) : "?");
    }
    return 0;
}

static int capset_sets(uint64_t eff, uint64_t prm, uint64_t inh)
{
    struct __user_cap_header_struct h = {_LINUX_CAPABILITY_VERSION_3, 0};
    struct __user_cap_data_struct d[2] = {
        {(uint32_t)eff, (uint32_t)prm, (uint32_t)inh},
        {(uint32_t)(eff >> 32), (uint32_t)(prm >> 32), (uint32_t)(inh >> 32)},
    };
    return (int)syscall(SYS_capset, &h, d);
}

static uint64_t caps_permitted_now(void)
{
    struct __user_cap_header_struct h = {_LINUX_CAPABILITY_VERSION_3, 0};
    struct __user_cap_data_struct d[2];
    if (syscall(SYS_capget, &h, d) < 0) return 0;
    return (uint64_t)d[0].permitted | (uint64_t)d[1].permitted << 32;
}

/* Sets effective/permitted/inheritable, then raises the ambient set. Runs
 * after the uid switch (made with PR_SET_KEEPCAPS). */
int rt_caps_apply(const rt_caps *c, berr *e)
{
    if (!c->set) return 0;
    uint64_t have = caps_permitted_now();
    uint64_t prm = c->permitted & have, eff = c->effective & prm;
    uint64_t inh = c->inheritable & have;
    if (capset_sets(eff, prm, inh) < 0) return berr_errno(e, 500, "capset");
    for (int i = 0; i <= rt_cap_last(); i++) {
        if (!(c->ambient & (1ULL << i)) || !(prm & inh & (1ULL << i))) continue;
        if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, i, 0, 0) < 0)
            return berr_errno(e, 500, "raise ambient capability %s", rt_cap_name(i));
    }
    return 0;
}
