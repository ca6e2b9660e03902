/* copts.c: the container options shared by `run` and `create` (and the
 * resource flags of `update`), as docker's cli/command/container/opts.go.
 *
 * Owns the flag table, the value checks that pflag runs while parsing
 * (sizes as go-units RAMInBytes, --cpus as a rational number, Go
 * durations, ulimits, sysctls, attach streams, env, add-host, dns), and
 * copts_build, which turns the parsed flags into the JSON body of
 * POST /containers/create (Config + HostConfig + NetworkingConfig) or
 * returns the error docker reports before any request. */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/copts.h"

/* ---- value checks (pflag Value.Set) ---- */

/* go-units RAMInBytes: ^(\d+(\.\d+)*) ?([kKmMgGtTpP])?[iI]?[bB]?$ */
int64_t ram_in_bytes(const char *s, char **why)
{
    const char *p = s;
    if (!isdigit((unsigned char)*p)) goto bad;
    while (isdigit((unsigned char)*p)) p++;
    while (*p == '.' && isdigit((unsigned char)p[1])) {
        p++;
        while (isdigit((unsigned char)*p)) p++;
    }
    size_t numlen = (size_t)(p - s);
    if (*p == ' ') p++;
    static const char units[] = "kmgtp";
    const char *u = *p ? strchr(units, tolower((unsigned char)*p)) : NULL;
    int shift = 0;
    if (u) {
        shift = 10 * (int)(u - units + 1);
        p++;
    }
    if (*p == 'i' || *p == 'I') p++;
    if (*p == 'b' || *p == 'B') p++;
    if (*p) goto bad;
    char *num = xstrndup(s, numlen), *end;
    double v = strtod(num, &end);
    bool ok = !*end;
    free(num);
    if (!ok) {
        *why = xasprintf("strconv.ParseFloat: parsing \"%.*s\": invalid syntax", (int)numlen, s);
        return -1;
    }
    return (int64_t)(v * (double)(1LL << shift));
bad:
    *why = xasprintf("invalid size: '%s'", s);
    return -1;
}

char *conv_size(const char *v, char **why)
{
    int64_t n = ram_in_bytes(v, why);
    return n < 0 ? NULL : xasprintf("%lld", (long long)n);
}

char *conv_swap(const char *v, char **why)
{
    return !strcmp(v, "-1") ? xstrdup("-1") : conv_size(v, why);
}

/* opts.ParseCPUs: a big.Rat times 1e9 that must be an integer. */
char *conv_cpus(const char *v, char **why)
{
    const char *p = v;
    bool neg = *p == '-';
    if (*p == '-' || *p == '+') p++;
    long long ip = 0, frac = 0;
    int fd = 0;
    bool digits = false, precise = true;
    for (; isdigit((unsigned char)*p); p++, digits = true) ip = ip * 10 + (*p - '0');
    if (*p == '.')
        for (p++; isdigit((unsigned char)*p); p++, digits = true) {
            if (fd < 9)
                frac = frac * 10 + (*p - '0'), fd++;
            else if (*p != '0')
                precise = false;
        }
    if (!digits || *p) {
        *why = xasprintf("failed to parse %s as a rational number", v);
        return NULL;
    }
    if (!precise) {
        *why = xstrdup("value is too precise");
        return NULL;
    }
    while (fd++ < 9) frac *= 10;
    return xasprintf("%lld", (neg ? -1 : 1) * (ip * 1000000000LL + frac));
}

/* Go's time.ParseDuration, in nanoseconds. */
int64_t go_duration(const char *s, char **why)
{
    static const struct {
        const char *u;
        double ns;
    } units[] = {{"ns", 1},  {"us", 1e3}, {"\xc2\xb5s", 1e3}, {"\xce\xbcs", 1e3}, {"ms", 1e6},
                 {"s", 1e9}, {"m", 60e9}, {"h", 3600e9},      {NULL, 0}};
    const char *p = s;
    bool neg = *p == '-';
    if (*p == '-' || *p == '+') p++;
    if (!strcmp(p, "0")) return 0;
    if (!*p) goto invalid;
    double total = 0;
    while (*p) {
        if (!isdigit((unsigned char)*p) && !(*p == '.' && isdigit((unsigned char)p[1])))
            goto invalid;
        char *end;
        double v = strtod(p, &end);
        p = end;
        size_t ul = 0;
        while (p[ul] && p[ul] != '.' && !isdigit((unsigned char)p[ul])) ul++;
        if (!ul) {
            *why = xasprintf("time: missing unit in duration \"%s\"", s);
            return -1;
        }
        int k = 0;
        while (units[k].u && (strlen(units[k].u) != ul || strncmp(units[k].u, p, ul))) k++;
        if (!units[k].u) {
            *why = xasprintf("time: unknown unit \"%.*s\" in duration \"%s\"", (int)ul, p, s);
            return -1;
        }
        total += v * units[k].ns;
        p += ul;
    }
    return (int64_t)(neg ? -total : total);
invalid:
    *why = xasprintf("time: invalid duration \"%s\"", s);
    return -1;
}

char *conv_duration(const char *v, char **why)
{
    *why = NULL;
    int64_t ns = go_duration(v, why);
    if (*why) return NULL;
    return xasprintf("%lld", (long long)ns);
}

static bool ulimit_name_ok(const char *n, size_t len)
{
    static const char *names[] = {"as",      "core",     "cpu",        "data",   "fsize", "locks",
                                  "memlock", "msgqueue", "nice",       "nofile", "nproc", "rss",
                                  "rtprio",  "rttime",   "sigpending", "stack",  NULL};
    for (int i = 0; names[i]; i++)
        if (strlen(names[i]) == len && !strncmp(names[i], n, len)) return true;
    return false;
}

static bool parse_i64(const char *s, size_t n, long long *out, char **why)
{
    char *t = xstrndup(s, n), *end;
    errno = 0;
    *out = strtoll(t, &end, 10);
    bool ok = *t && !*end && errno == 0;
    if (!ok) *why = xasprintf("strconv.ParseInt: parsing \"%s\": invalid syntax", t);
    free(t);
    return ok;
}

/* go-units ParseUlimit: name=soft[:hard]; stored as given. */
char *conv_ulimit(const char *v, char **why)
{
    const char *eq = strchr(v, '=');
    if (!eq) return *why = xasprintf("invalid ulimit argument: %s", v), NULL;
    if (!ulimit_name_ok(v, (size_t)(eq - v)))
        return *why = xasprintf("invalid ulimit type: %.*s", (int)(eq - v), v), NULL;
    const char *vals = eq + 1, *c = strchr(vals, ':');
    if (c && strchr(c + 1, ':'))
        return *why = xasprintf("too many limit value arguments - %s, can only have up to two, "
                                "`soft[:hard]`",
                                vals),
               NULL;
    long long soft, hard;
    if (c && !parse_i64(c + 1, strlen(c + 1), &hard, why)) return NULL;
    if (!parse_i64(vals, c ? (size_t)(c - vals) : strlen(vals), &soft, why)) return NULL;
    if (!c) hard = soft;
    if (hard != -1 && soft > hard)
        return *why = xasprintf("ulimit soft limit must be less than or equal to hard limit: "
                                "%lld > %lld",
                                soft, hard),
               NULL;
    return xstrdup(v);
}

/* opts.ValidateSysctl: namespaced sysctls only. */
char *conv_sysctl(const char *v, char **why)
{
    static const char *exact[] = {"kernel.msgmax", "kernel.msgmnb",          "kernel.msgmni",
                                  "kernel.sem",    "kernel.shmall",          "kernel.shmmax",
                                  "kernel.shmmni", "kernel.shm_rmid_forced", NULL};
    const char *eq = strchr(v, '=');
    if (eq) {
        size_t kl = (size_t)(eq - v);
        for (int i = 0; exact[i]; i++)
            if (strlen(exact[i]) == kl && !strncmp(exact[i], v, kl)) return xstrdup(v);
        if (str_starts(v, "fs.mqueue.") || str_starts(v, "net.")) return xstrdup(v);
    }
    *why = xasprintf("sysctl '%s' is not whitelisted", v);
    return NULL;
}

char *conv_attach(const char *v, char **why)
{
    char *s = xstrdup(v);
    for (char *p = s; *p; p++) *p = (char)tolower((unsigned char)*p);
    if (!strcmp(s, "stdin") || !strcmp(s, "stdout") || !strcmp(s, "stderr")) return s;
    free(s);
    *why = xstrdup("valid streams are STDIN, STDOUT and STDERR");
    return NULL;
}

/* opts.ValidateEnv: NAME alone takes the value from our environment. */
char *conv_env(const char *v, char **why)
{
    if (v[0] == '=' || !v[0]) {
        *why = xasprintf("invalid environment variable: %s", v);
        return NULL;
    }
    if (strchr(v, '=')) return xstrdup(v);
    const char *e = getenv(v);
    return e ? xasprintf("%s=%s", v, e) : xstrdup(v);
}

char *conv_ip(const char *v, char **why)
{
    unsigned char buf[16];
    char out[64];
    char *t = xstrdup(v);
    char *s = t;
    while (isspace((unsigned char)*s)) s++;
    for (size_t n = strlen(s); n && isspace((unsigned char)s[n - 1]);) s[--n] = 0;
    int fam = strchr(s, ':') ? AF_INET6 : AF_INET;
    char *r = NULL;
    if (inet_pton(fam, s, buf) == 1 && inet_ntop(fam, buf, out, sizeof out)) r = xstrdup(out);
    free(t);
    if (!r) *why = xasprintf("%s is not an ip address", v);
    return r;
}

char *conv_extra_host(const char *v, char **why)
{
    const char *c = strchr(v, ':');
    if (!c || c == v) {
        *why = xasprintf("bad format for add-host: \"%s\"", v);
        return NULL;
    }
    if (!strcmp(c + 1, "host-gateway")) return xstrdup(v);
    char *ip = conv_ip(c + 1, why);
    if (!ip) {
        free(*why);
        *why = xasprintf("invalid IP address in add-host: \"%s\"", c + 1);
        return NULL;
    }
    free(ip);
    return xstrdup(v);
}

char *conv_uint16(const char *v, char **why)
{
    char *end;
    errno = 0;
    unsigned long long n = strtoull(v, &end, 0);
    if (!*v || *end || v[0] == '-') {
        *why = xasprintf("strconv.ParseUint: parsing \"%s\": invalid syntax", v);
        return NULL;
    }
    if (errno || n > 65535) {
        *why = xasprintf("strconv.ParseUint: parsing \"%s\": value out of range", v);
        return NULL;
    }
    return xasprintf("%llu", n);
}

/* pflag IntVar on a plain int (for health-retries, stop-timeout). */
char *conv_int(const char *v, char **why)
{
    char *end;
    errno = 0;
    long long n = strtoll(v, &end, 0);
    if (!*v || *end) {
        *why = xasprintf("strconv.ParseInt: parsing \"%s\": invalid syntax", v);
        return NULL;
    }
    if (errno || n > INT_MAX || n < INT_MIN) {
        *why = xasprintf("strconv.ParseInt: parsing \"%s\": value out of range", v);
        return NULL;
    }
    return xasprintf("%lld", n);
}

/* ---- flag table ---- */

#define FB(n, s, p, u)                                                                             \
    {                                                                                              \
        n, s, FLAG_BOOL, p, u, NULL, NULL, NULL, NULL, false                                       \
    }
#define FS(n, s, p, u)                                                                             \
    {                                                                                              \
        n, s, FLAG_STRING, p, u, NULL, NULL, NULL, NULL, false                                     \
    }
#define FL(n, s, p, u)                                                                             \
    {                                                                                              \
        n, s, FLAG_LIST, p, u, NULL, NULL, NULL, NULL, false                                       \
    }
#define FI(n, s, p, u)                                                                             \
    {                                                                                              \
        n, s, FLAG_INT, p, u, NULL, NULL, NULL, NULL, false                                        \
    }
#define FC(n, s, t, p, u, tn, cv)                                                                  \
    {                                                                                              \
        n, s, t, p, u, NULL, tn, cv, NULL, false                                                   \
    }

void copts_init(copts *o)
{
    memset(o, 0, sizeof *o);
    o->swappiness = -1;
    o->sig_proxy = true;
    o->no_trust = true;
}

/* Resource flags shared by run/create and update. */
static size_t resource_flags(copts *o, flag *f)
{
    flag res[] = {
        FC("blkio-weight", 0, FLAG_STRING, &o->blkio_weight,
           "Block IO (relative weight), between 10 and 1000, or 0 to disable (default 0)", "uint16",
           conv_uint16),
        FI("cpu-period", 0, &o->cpu_period, "Limit CPU CFS (Completely Fair Scheduler) period"),
        FI("cpu-quota", 0, &o->cpu_quota, "Limit CPU CFS (Completely Fair Scheduler) quota"),
        FI("cpu-rt-period", 0, &o->cpu_rt_period, "Limit CPU real-time period in microseconds"),
        FI("cpu-rt-runtime", 0, &o->cpu_rt_runtime, "Limit CPU real-time runtime in microseconds"),
        FI("cpu-shares", 'c', &o->cpu_shares, "CPU shares (relative weight)"),
        FC("cpus", 0, FLAG_STRING, &o->cpus, "Number of CPUs", "decimal", conv_cpus),
        FS("cpuset-cpus", 0, &o->cpuset_cpus, "CPUs in which to allow execution (0-3, 0,1)"),
        FS("cpuset-mems", 0, &o->cpuset_mems, "MEMs in which to allow execution (0-3, 0,1)"),
        FC("kernel-memory", 0, FLAG_STRING, &o->kernel_memory, "Kernel memory limit", "bytes",
           conv_size),
        FC("memory", 'm', FLAG_STRING, &o->memory, "Memory limit", "bytes", conv_size),
        FC("memory-reservation", 0, FLAG_STRING, &o->memory_reservation, "Memory soft limit",
           "bytes", conv_size),
        FC("memory-swap", 0, FLAG_STRING, &o->memory_swap,
           "Swap limit equal to memory plus swap: '-1' to enable unlimited swap", "bytes",
           conv_swap),
        {"pids-limit", 0, FLAG_INT, &o->pids_limit,
         "Tune container pids limit (set -1 for unlimited)", NULL, NULL, NULL, &o->pids_set, false},
        FS("restart", 0, &o->restart, "Restart policy to apply when a container exits"),
    };
    memcpy(f, res, sizeof res);
    return sizeof res / sizeof res[0];
}

static size_t general_flags(copts *o, flag *f)
{
    flag gen[] = {
        FC("add-host", 0, FLAG_LIST, &o->add_host, "Add a custom host-to-IP mapping (host:ip)",
           "list", conv_extra_host),
        FC("attach", 'a', FLAG_LIST, &o->attach, "Attach to STDIN, STDOUT or STDERR", "list",
           conv_attach),
        FL("cap-add", 0, &o->cap_add, "Add Linux capabilities"),
        FL("cap-drop", 0, &o->cap_drop, "Drop Linux capabilities"),
        FS("cgroup-parent", 0, &o->cgroup_parent, "Optional parent cgroup for the container"),
        FS("cgroupns", 0, &o->cgroupns, "Cgroup namespace to use (host|private)"),
        FS("cidfile", 0, &o->cidfile, "Write the container ID to the file"),
        FL("device", 0, &o->devices, "Add a host device to the container"),
        FL("device-cgroup-rule", 0, &o->cgroup_rules,
           "Add a rule to the cgroup allowed devices list"),
        FC("dns", 0, FLAG_LIST, &o->dns, "Set custom DNS servers", "list", conv_ip),
        FL("dns-option", 0, &o->dns_opt, "Set DNS options"),
        FL("dns-search", 0, &o->dns_search, "Set custom DNS search domains"),
        FS("domainname", 0, &o->domainname, "Container NIS domain name"),
        {"entrypoint", 0, FLAG_STRING, &o->entrypoint,
         "Overwrite the default ENTRYPOINT of the image", NULL, NULL, NULL, &o->entrypoint_set,
         false},
        FC("env", 'e', FLAG_LIST, &o->env, "Set environment variables", "list", conv_env),
        FL("env-file", 0, &o->env_file, "Read in a file of environment variables"),
        FL("expose", 0, &o->expose, "Expose a port or a range of ports"),
        FL("group-add", 0, &o->group_add, "Add additional groups to join"),
        FS("health-cmd", 0, &o->health_cmd, "Command to run to check health"),
        FC("health-interval", 0, FLAG_STRING, &o->health_interval,
           "Time between running the check (ms|s|m|h) (default 0s)", "duration", conv_duration),
        FC("health-retries", 0, FLAG_STRING, &o->health_retries,
           "Consecutive failures needed to report unhealthy", "int", conv_int),
        FC("health-start-period", 0, FLAG_STRING, &o->health_start_period,
           "Start period for the container to initialize before starting health-retries "
           "countdown (ms|s|m|h) (default 0s)",
           "duration", conv_duration),
        FC("health-timeout", 0, FLAG_STRING, &o->health_timeout,
           "Maximum time to allow one check to run (ms|s|m|h) (default 0s)", "duration",
           conv_duration),
        FS("hostname", 'h', &o->hostname, "Container host name"),
        {"init", 0, FLAG_BOOL, &o->init,
         "Run an init inside the container that forwards signals and reaps processes", NULL, NULL,
         NULL, &o->init_set, false},
        FB("interactive", 'i', &o->interactive, "Keep STDIN open even if not attached"),
        FS("ip", 0, &o->ip, "IPv4 address (e.g., 172.30.100.104)"),
        FS("ip6", 0, &o->ip6, "IPv6 address (e.g., 2001:db8::33)"),
        FS("ipc", 0, &o->ipc, "IPC mode to use"),
        FS("isolation", 0, &o->isolation, "Container isolation technology"),
        FL("label", 'l', &o->labels, "Set meta data on a container"),
        FL("label-file", 0, &o->label_file, "Read in a line delimited file of labels"),
        FL("link", 0, &o->links, "Add link to another container"),
        FS("log-driver", 0, &o->log_driver, "Logging driver for the container"),
        FL("log-opt", 0, &o->log_opt, "Log driver options"),
        FS("mac-address", 0, &o->mac_address, "Container MAC address (e.g., 92:d0:c6:0a:29:33)"),
        {"memory-swappiness", 0, FLAG_INT, &o->swappiness,
         "Tune container memory swappiness (0 to 100)", "-1", NULL, NULL, NULL, false},
        FS("name", 0, &o->name, "Assign a name to the container"),
        FC("network", 0, FLAG_STRING, &o->network, "Connect a container to a network", "network",
           NULL),
        {"net", 0, FLAG_STRING, &o->network, "Connect a container to a network", NULL, "network",
         NULL, NULL, true},
        FL("network-alias", 0, &o->aliases, "Add network-scoped alias for the container"),
        FB("no-healthcheck", 0, &o->no_healthcheck, "Disable any container-specified HEALTHCHECK"),
        FB("oom-kill-disable", 0, &o->oom_kill_disable, "Disable OOM Killer"),
        FI("oom-score-adj", 0, &o->oom_score_adj, "Tune host's OOM preferences (-1000 to 1000)"),
        FS("pid", 0, &o->pid, "PID namespace to use"),
        FS("platform", 0, &o->platform, "Set platform if server is multi-platform capable"),
        FB("privileged", 0, &o->privileged, "Give extended privileges to this container"),
        FL("publish", 'p', &o->publish, "Publish a container's port(s) to the host"),
        FB("publish-all", 'P', &o->publish_all, "Publish all exposed ports to random ports"),
        {"pull", 0, FLAG_STRING, &o->pull,
         "Pull image before running (\"always\"|\"missing\"|\"never\")", "\"missing\"", NULL, NULL,
         NULL, false},
        FB("read-only", 0, &o->read_only, "Mount the container's root filesystem as read only"),
        FB("rm", 0, &o->rm, "Automatically remove the container when it exits"),
        FS("runtime", 0, &o->runtime, "Runtime to use for this container"),
        FL("security-opt", 0, &o->security_opt, "Security Options"),
        FC("shm-size", 0, FLAG_STRING, &o->shm_size, "Size of /dev/shm", "bytes", conv_size),
        {"stop-signal", 0, FLAG_STRING, &o->stop_signal, "Signal to stop a container",
         "\"SIGTERM\"", NULL, NULL, NULL, false},
        FC("stop-timeout", 0, FLAG_STRING, &o->stop_timeout,
           "Timeout (in seconds) to stop a container", "int", conv_int),
        FL("storage-opt", 0, &o->storage_opt, "Storage driver options for the container"),
        FC("sysctl", 0, FLAG_LIST, &o->sysctls, "Sysctl options", "map", conv_sysctl),
        FL("tmpfs", 0, &o->tmpfs, "Mount a tmpfs directory"),
        FB("tty", 't', &o->tty, "Allocate a pseudo-TTY"),
        FC("ulimit", 0, FLAG_LIST, &o->ulimits, "Ulimit options", "ulimit", conv_ulimit),
        FS("user", 'u', &o->user, "Username or UID (format: <name|uid>[:<group|gid>])"),
        FS("userns", 0, &o->userns, "User namespace to use"),
        FS("uts", 0, &o->uts, "UTS namespace to use"),
        FL("volume", 'v', &o->volumes, "Bind mount a volume"),
        FS("volume-driver", 0, &o->volume_driver, "Optional volume driver for the container"),
        FL("volumes-from", 0, &o->volumes_from, "Mount volumes from the specified container(s)"),
        FS("workdir", 'w', &o->workdir, "Working directory inside the container"),
        {"disable-content-trust", 0, FLAG_BOOL, &o->no_trust, "Skip image verification", "true",
         NULL, NULL, NULL, false},
        FB("quiet", 'q', &o->quiet, "Suppress the pull output"),
    };
    memcpy(f, gen, sizeof gen);
    return sizeof gen / sizeof gen[0];
}

flag *copts_flags(copts *o, bool run)
{
    flag *f = xcalloc(128, sizeof *f);
    size_t n = general_flags(o, f);
    n += resource_flags(o, f + n);
    for (size_t i = 0; i < n; i++)
        if (!strcmp(f[i].name, "restart")) f[i].defval = "\"no\"";
    if (run) {
        flag extra[] = {
            FB("detach", 'd', &o->detach, "Run container in background and print container ID"),
            FS("detach-keys", 0, &o->detach_keys,
               "Override the key sequence for detaching a container"),
            {"sig-proxy", 0, FLAG_BOOL, &o->sig_proxy, "Proxy received signals to the process",
             "true", NULL, NULL, NULL, false},
        };
        memcpy(f + n, extra, sizeof extra);
    }
    return f;
}

flag *copts_update_flags(copts *o, bool *changed)
{
    flag *f = xcalloc(32, sizeof *f);
    size_t n = resource_flags(o, f);
    for (size_t i = 0; i < n; i++) f[i].changed = changed;
    return f;
}

void copts_free(copts *o)
{
    strv *lists[] = {&o->attach,       &o->volumes,      &o->tmpfs,        &o->env,
                     &o->env_file,     &o->labels,       &o->label_file,   &o->cap_add,
                     &o->cap_drop,     &o->group_add,    &o->security_opt, &o->log_opt,
                     &o->ulimits,      &o->sysctls,      &o->dns,          &o->dns_search,
                     &o->dns_opt,      &o->add_host,     &o->devices,      &o->expose,
                     &o->publish,      &o->volumes_from, &o->links,        &o->storage_opt,
                     &o->cgroup_rules, &o->aliases};
    for (size_t i = 0; i < sizeof lists / sizeof lists[0]; i++) strv_free(lists[i]);
    char **strs[] = {&o->entrypoint,
                     &o->hostname,
                     &o->domainname,
                     &o->user,
                     &o->workdir,
                     &o->restart,
                     &o->memory,
                     &o->memory_swap,
                     &o->memory_reservation,
                     &o->kernel_memory,
                     &o->cpus,
                     &o->cpuset_cpus,
                     &o->cpuset_mems,
                     &o->network,
                     &o->stop_signal,
                     &o->shm_size,
                     &o->health_cmd,
                     &o->health_interval,
                     &o->health_timeout,
                     &o->health_start_period,
                     &o->health_retries,
                     &o->stop_timeout,
                     &o->ipc,
                     &o->pid,
                     &o->uts,
                     &o->userns,
                     &o->cgroupns,
                     &o->cgroup_parent,
                     &o->log_driver,
                     &o->runtime,
                     &o->isolation,
                     &o->mac_address,
                     &o->ip,
                     &o->ip6,
                     &o->volume_driver,
                     &o->cidfile,
                     &o->blkio_weight,
                     &o->name,
                     &o->platform,
                     &o->pull,
                     &o->detach_keys};
    for (size_t i = 0; i < sizeof strs / sizeof strs[0]; i++) {
        free(*strs[i]);
        *strs[i] = NULL;
    }
}

/* ---- building the create body ---- */

static json_t *str_array(const strv *s)
{
    json_t *a = json_array();
    for (size_t i = 0; i < s->n; i++) json_array_append_new(a, json_string(s->v[i]));
    return a;
}

static json_t *str_array_or_null(const strv *s)
{
    return s->n ? str_array(s) : json_null();
}

static long long num(const char *s)
{
    return s ? strtoll(s, NULL, 10) : 0;
}

/* parseKeyValueFile: one KEY=VALUE per line, # comments; a bare KEY
 * takes our environment's value (env files only) or is dropped. */
static int read_kv_file(const char *path, bool env, json_t *out, char **err)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        *err = xasprintf("open %s: %s", path, go_strerror(errno));
        return -1;
    }
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    int rc = 0;
    while (rc == 0 && (n = getline(&line, &cap, f)) >= 0) {
        while (n && (line[n - 1] == '\n' || line[n - 1] == '\r')) line[--n] = 0;
        char *l = line;
        while (isspace((unsigned char)*l)) l++;
        if (!*l || *l == '#') continue;
        size_t kl = strcspn(l, "=");
        if (strcspn(l, " \t") < kl) {
            *err = xasprintf("poorly formatted environment: variable '%.*s' contains whitespaces",
                             (int)kl, l);
            rc = -1;
        } else if (kl == 0) {
            *err = xasprintf("poorly formatted environment: no variable name on line '%s'", l);
            rc = -1;
        } else if (l[kl]) {
            json_array_append_new(out, json_string(l));
        } else if (env && getenv(l)) {
            char *kv = xasprintf("%s=%s", l, getenv(l));
            json_array_append_new(out, json_string(kv));
            free(kv);
        }
    }
    free(line);
    fclose(f);
    return rc;
}

int read_env(const strv *files, const strv *env, json_t *out, char **err)
{
    for (size_t i = 0; i < files->n; i++)
        if (read_kv_file(files->v[i], true, out, err) < 0) return -1;
    for (size_t i = 0; i < env->n; i++) json_array_append_new(out, json_string(env->v[i]));
    return 0;
}

static json_t *kv_map(const json_t *list)
{
    json_t *m = json_object();
    size_t i;
    json_t *v;
    json_array_foreach(list, i, v)
    {
        const char *s = json_string_value(v);
        const char *eq = strchr(s, '=');
        char *k = eq ? xstrndup(s, (size_t)(eq - s)) : xstrdup(s);
        json_object_set_new(m, k, json_string(eq ? eq + 1 : ""));
        free(k);
    }
    return m;
}

json_t *restart_policy(const char *s, char **err)
{
    if (!s || !*s) return json_pack("{s:s, s:i}", "Name", "", "MaximumRetryCount", 0);
    const char *c = strchr(s, ':');
    if (c && strchr(c + 1, ':')) {
        *err = xstrdup("invalid restart policy format");
        return NULL;
    }
    long long count = 0;
    if (c) {
        char *end;
        count = strtoll(c + 1, &end, 10);
        if (!c[1] || *end) {
            *err = xstrdup("maximum retry count must be an integer");
            return NULL;
        }
    }
    char *name = c ? xstrndup(s, (size_t)(c - s)) : xstrdup(s);
    json_t *p = json_pack("{s:s, s:I}", "Name", name, "MaximumRetryCount", (json_int_t)count);
    free(name);
    return p;
}

static json_t *ulimits_json(const strv *u)
{
    json_t *a = json_array();
    for (size_t i = 0; i < u->n; i++) {
        const char *v = u->v[i], *eq = strchr(v, '=');
        char *name = xstrndup(v, (size_t)(eq - v));
        long long soft = strtoll(eq + 1, NULL, 10), hard = soft;
        const char *c = strchr(eq + 1, ':');
        if (c) hard = strtoll(c + 1, NULL, 10);
        size_t k;
        json_t *e, *dup = NULL;
        json_array_foreach(a, k, e) if (!strcmp(jstr(e, "Name"), name)) dup = e;
        json_t *nu = json_pack("{s:s, s:I, s:I}", "Name", name, "Hard", (json_int_t)hard, "Soft",
                               (json_int_t)soft);
        if (dup)
            json_object_update(dup, nu), json_decref(nu);
        else
            json_array_append_new(a, nu);
        free(name);
    }
    return a;
}

void copts_resources(const copts *o, json_t *hc)
{
    json_t *r = json_pack(
        "{s:I, s:I, s:I, s:s, s:I, s:I, s:I, s:I, s:I, s:s, s:s, s:I, s:I, s:I}", "CpuShares",
        (json_int_t)o->cpu_shares, "Memory", (json_int_t)num(o->memory), "NanoCpus",
        (json_int_t)num(o->cpus), "CgroupParent", o->cgroup_parent ? o->cgroup_parent : "",
        "BlkioWeight", (json_int_t)num(o->blkio_weight), "CpuPeriod", (json_int_t)o->cpu_period,
        "CpuQuota", (json_int_t)o->cpu_quota, "CpuRealtimePeriod", (json_int_t)o->cpu_rt_period,
        "CpuRealtimeRuntime", (json_int_t)o->cpu_rt_runtime, "CpusetCpus",
        o->cpuset_cpus ? o->cpuset_cpus : "", "CpusetMems", o->cpuset_mems ? o->cpuset_mems : "",
        "KernelMemory", (json_int_t)num(o->kernel_memory), "MemoryReservation",
        (json_int_t)num(o->memory_reservation), "MemorySwap", (json_int_t)num(o->memory_swap));
    json_object_update(hc, r);
    json_decref(r);
}

/* parseDevice: host[:container][:permissions]. */
static json_t *device_json(const char *spec, char **err)
{
    char *s = xstrdup(spec), *parts[4] = {0};
    int n = 0;
    for (char *save = NULL, *t = strtok_r(s, ":", &save); t && n < 4;
         t = strtok_r(NULL, ":", &save))
        parts[n++] = t;
    const char *src = parts[0], *dst = NULL, *perm = "rwm";
    if (n == 3) dst = parts[1], perm = parts[2];
    if (n == 2) {
        if (strspn(parts[1], "rwm") == strlen(parts[1]) && parts[1][0] != '/')
            perm = parts[1];
        else
            dst = parts[1];
    }
    json_t *d = NULL;
    if (n < 1 || n > 3)
        *err = xasprintf("invalid device specification: %s", spec);
    else
        d = json_pack("{s:s, s:s, s:s}", "PathOnHost", src, "PathInContainer", dst ? dst : src,
                      "CgroupPermissions", perm);
    free(s);
    return d;
}

/* One -p spec into ExposedPorts / PortBindings (single ports and ranges). */
static int port_spec(const char *spec, json_t *exposed, json_t *bind, char **err)
{
    char *s = xstrdup(spec);
    char *slash = strrchr(s, '/');
    const char *proto = "tcp";
    if (slash) *slash = 0, proto = slash + 1;
    char *cport = strrchr(s, ':'), *hport = NULL, *ip = "";
    if (cport) {
        *cport++ = 0;
        hport = strrchr(s, ':');
        if (hport) {
            *hport++ = 0;
            ip = s;
        } else
            hport = s;
    } else
        cport = s;
    if (*ip == '[') ip++, ip[strcspn(ip, "]")] = 0;
    long lo, hi, hlo = 0, hhi = 0;
    int rc = 0;
    if (sscanf(cport, "%ld-%ld", &lo, &hi) < 2) hi = lo = strtol(cport, NULL, 10);
    if (hport && *hport && sscanf(hport, "%ld-%ld", &hlo, &hhi) < 2) hhi = hlo = atol(hport);
    if (!*cport || lo <= 0 || hi < lo || hi > 65535) {
        *err = xasprintf("Invalid containerPort: %s", cport);
        rc = -1;
    }
    for (long p = lo; rc == 0 && p <= hi; p++) {
        char key[32], hp[16] = "";
        snprintf(key, sizeof key, "%ld/%s", p, proto);
        json_object_set_new(exposed, key, json_object());
        if (!hport) continue;
        if (hlo) snprintf(hp, sizeof hp, "%ld", hhi > hlo ? hlo + (p - lo) : hlo);
        json_t *l = json_object_get(bind, key);
        if (!l) json_object_set_new(bind, key, l = json_array());
        json_array_append_new(l, json_pack("{s:s, s:s}", "HostIp", ip, "HostPort", hp));
    }
    free(s);
    return rc;
}

static int ports_json(const copts *o, json_t **exposed, json_t **bind, char **err)
{
    *exposed = json_object();
    *bind = json_object();
    for (size_t i = 0; i < o->publish.n; i++)
        if (port_spec(o->publish.v[i], *exposed, *bind, err) < 0) return -1;
    for (size_t i = 0; i < o->expose.n; i++) {
        const char *e = o->expose.v[i];
        if (strchr(e, ':')) {
            *err = xasprintf("invalid port format for --expose: %s", e);
            return -1;
        }
        json_t *scratch = json_object();
        int rc = port_spec(e, *exposed, scratch, err);
        json_decref(scratch);
        if (rc < 0) return -1;
    }
    return 0;
}

/* parseSecurityOpts + parseSystemPaths. */
static json_t *security_json(const copts *o, bool *unconfined_paths, char **err)
{
    json_t *a = json_array();
    for (size_t i = 0; i < o->security_opt.n; i++) {
        const char *opt = o->security_opt.v[i];
        size_t kl = strcspn(opt, "=");
        if (!opt[kl] && strcmp(opt, "no-new-privileges")) {
            kl = strcspn(opt, ":");
            if (!opt[kl]) {
                *err = xasprintf("Invalid --security-opt: \"%s\"", opt);
                json_decref(a);
                return NULL;
            }
        }
        if (!strcmp(opt, "systempaths=unconfined")) {
            *unconfined_paths = true;
            continue;
        }
        if (kl == 7 && !strncmp(opt, "seccomp", 7) && strcmp(opt + 8, "unconfined")) {
            json_error_t je;
            json_t *prof = json_load_file(opt + 8, 0, &je);
            if (!prof) {
                bool missing = access(opt + 8, R_OK) < 0;
                *err = missing ? xasprintf("opening seccomp profile (%s) failed: open %s: %s",
                                           opt + 8, opt + 8, go_strerror(errno))
                               : xasprintf("compacting json for seccomp profile (%s) failed: %s",
                                           opt + 8, je.text);
                json_decref(a);
                return NULL;
            }
            char *c = json_dump_compact(prof);
            char *v = xasprintf("seccomp=%s", c);
            json_array_append_new(a, json_string(v));
            free(v);
            free(c);
            json_decref(prof);
            continue;
        }
        json_array_append_new(a, json_string(opt));
    }
    return a;
}

static json_t *health_json(const copts *o, char **err)
{
    bool have = o->health_cmd || o->health_interval || o->health_timeout ||
                o->health_start_period || o->health_retries;
    if (o->no_healthcheck) {
        if (have) {
            *err = xstrdup("--no-healthcheck conflicts with --health-* options");
            return NULL;
        }
        return json_pack("{s:[s]}", "Test", "NONE");
    }
    if (!have) return json_null();
    static const char *what[] = {"--health-interval", "--health-timeout", "--health-retries",
                                 "--health-start-period"};
    long long v[] = {num(o->health_interval), num(o->health_timeout), num(o->health_retries),
                     num(o->health_start_period)};
    for (int i = 0; i < 4; i++)
        if (v[i] < 0) {
            *err = xasprintf("%s cannot be negative", what[i]);
            return NULL;
        }
    json_t *h = json_object();
    if (o->health_cmd)
        json_object_set_new(h, "Test", json_pack("[s, s]", "CMD-SHELL", o->health_cmd));
    json_object_set_new(h, "Interval", json_integer(v[0]));
    json_object_set_new(h, "Timeout", json_integer(v[1]));
    json_object_set_new(h, "StartPeriod", json_integer(v[3]));
    json_object_set_new(h, "Retries", json_integer(v[2]));
    return h;
}

static bool mode_ok(const char *m, const char *const *fixed, bool container_ok)
{
    if (!m || !*m) return true;
    for (int i = 0; fixed[i]; i++)
        if (!strcmp(m, fixed[i])) return true;
    return container_ok && str_starts(m, "container:") && m[10];
}

static int check_modes(const copts *o, char **err)
{
    static const char *host[] = {"host", NULL}, *cg[] = {"host", "private", NULL};
    if (!mode_ok(o->pid, host, true))
        *err = xstrdup("--pid: invalid PID mode");
    else if (!mode_ok(o->uts, host, false))
        *err = xstrdup("--uts: invalid UTS mode");
    else if (!mode_ok(o->userns, host, false))
        *err = xstrdup("--userns: invalid USER mode");
    else if (!mode_ok(o->cgroupns, cg, false))
        *err = xstrdup("--cgroupns: invalid CGROUP mode");
    else
        return 0;
    return -1;
}

/* Config members (container.Config) apart from those set by the caller. */
static json_t *config_json(const copts *o, const char *image, int argc, char **argv)
{
    bool ain = o->interactive, aout = !o->attach.n, aerr = !o->attach.n;
    for (size_t i = 0; i < o->attach.n; i++) {
        ain |= !strcmp(o->attach.v[i], "stdin");
        aout |= !strcmp(o->attach.v[i], "stdout");
        aerr |= !strcmp(o->attach.v[i], "stderr");
    }
    json_t *cfg = json_pack(
        "{s:s, s:s, s:s, s:b, s:b, s:b, s:b, s:b, s:b}", "Hostname", o->hostname ? o->hostname : "",
        "Domainname", o->domainname ? o->domainname : "", "User", o->user ? o->user : "",
        "AttachStdin", ain, "AttachStdout", aout, "AttachStderr", aerr, "Tty", o->tty, "OpenStdin",
        o->interactive, "StdinOnce", o->interactive && ain);
    json_t *cmd = json_array();
    for (int i = 0; i < argc; i++) json_array_append_new(cmd, json_string(argv[i]));
    json_object_set_new(cfg, "Cmd", argc ? cmd : (json_decref(cmd), json_null()));
    json_object_set_new(cfg, "Image", json_string(image));
    json_object_set_new(cfg, "WorkingDir", json_string(o->workdir ? o->workdir : ""));
    if (o->entrypoint_set)
        json_object_set_new(cfg, "Entrypoint",
                            json_pack("[s]", o->entrypoint ? o->entrypoint : ""));
    else
        json_object_set_new(cfg, "Entrypoint", json_null());
    if (o->mac_address) json_object_set_new(cfg, "MacAddress", json_string(o->mac_address));
    if (o->stop_signal) json_object_set_new(cfg, "StopSignal", json_string(o->stop_signal));
    if (o->stop_timeout)
        json_object_set_new(cfg, "StopTimeout", json_integer(num(o->stop_timeout)));
    return cfg;
}

/* Binds (specs with a source) and anonymous Volumes. */
static void volumes_json(const copts *o, json_t *cfg, json_t *hc)
{
    json_t *vols = json_object(), *binds = json_array();
    for (size_t i = 0; i < o->volumes.n; i++) {
        const char *v = o->volumes.v[i];
        if (strchr(v, ':'))
            json_array_append_new(binds, json_string(v));
        else
            json_object_set_new(vols, v, json_object());
    }
    json_object_set_new(cfg, "Volumes", vols);
    json_object_set_new(hc, "Binds",
                        json_array_size(binds) ? binds : (json_decref(binds), json_null()));
    json_t *t = json_object();
    for (size_t i = 0; i < o->tmpfs.n; i++) {
        const char *v = o->tmpfs.v[i], *c = strchr(v, ':');
        char *k = c ? xstrndup(v, (size_t)(c - v)) : xstrdup(v);
        json_object_set_new(t, k, json_string(c ? c + 1 : ""));
        free(k);
    }
    if (json_object_size(t))
        json_object_set_new(hc, "Tmpfs", t);
    else
        json_decref(t);
}

static json_t *log_config(const copts *o, char **err)
{
    if (o->log_driver && !strcmp(o->log_driver, "none") && o->log_opt.n) {
        *err = xasprintf("invalid logging opts for driver %s", o->log_driver);
        return NULL;
    }
    json_t *l = str_array(&o->log_opt);
    json_t *lc =
        json_pack("{s:s, s:o}", "Type", o->log_driver ? o->log_driver : "", "Config", kv_map(l));
    json_decref(l);
    return lc;
}

/* HostConfig members that are plain copies of flags. */
static json_t *host_config(const copts *o)
{
    json_t *hc = json_pack(
        "{s:s, s:s, s:b, s:s, s:o, s:o, s:o, s:s, s:s, s:I, s:s, s:b, s:b, s:b, s:s, s:s, s:s, "
        "s:I, s:s, s:s}",
        "ContainerIDFile", o->cidfile ? o->cidfile : "", "NetworkMode",
        o->network ? o->network : "default", "AutoRemove", o->rm, "VolumeDriver",
        o->volume_driver ? o->volume_driver : "", "VolumesFrom",
        str_array_or_null(&o->volumes_from), "CapAdd", str_array_or_null(&o->cap_add), "CapDrop",
        str_array_or_null(&o->cap_drop), "CgroupnsMode", o->cgroupns ? o->cgroupns : "", "IpcMode",
        o->ipc ? o->ipc : "", "OomScoreAdj", (json_int_t)o->oom_score_adj, "PidMode",
        o->pid ? o->pid : "", "Privileged", o->privileged, "PublishAllPorts", o->publish_all,
        "ReadonlyRootfs", o->read_only, "UTSMode", o->uts ? o->uts : "", "UsernsMode",
        o->userns ? o->userns : "", "Isolation", o->isolation ? o->isolation : "", "ShmSize",
        (json_int_t)num(o->shm_size), "Runtime", o->runtime ? o->runtime : "", "Cgroup", "");
    json_object_set_new(hc, "Dns", str_array(&o->dns));
    json_object_set_new(hc, "DnsOptions", str_array(&o->dns_opt));
    json_object_set_new(hc, "DnsSearch", str_array(&o->dns_search));
    json_object_set_new(hc, "ExtraHosts", str_array_or_null(&o->add_host));
    json_object_set_new(hc, "GroupAdd", str_array_or_null(&o->group_add));
    json_object_set_new(hc, "Links", str_array_or_null(&o->links));
    json_object_set_new(hc, "DeviceCgroupRules", str_array_or_null(&o->cgroup_rules));
    json_object_set_new(hc, "MemorySwappiness", json_integer(o->swappiness));
    json_object_set_new(hc, "OomKillDisable", json_boolean(o->oom_kill_disable));
    json_object_set_new(hc, "PidsLimit", json_integer(o->pids_limit));
    json_object_set_new(hc, "Ulimits", ulimits_json(&o->ulimits));
    json_t *sys = json_object();
    for (size_t i = 0; i < o->sysctls.n; i++) {
        const char *v = o->sysctls.v[i], *eq = strchr(v, '=');
        char *k = xstrndup(v, (size_t)(eq - v));
        json_object_set_new(sys, k, json_string(eq + 1));
        free(k);
    }
    json_object_set_new(hc, "Sysctls",
                        json_object_size(sys) ? sys : (json_decref(sys), json_null()));
    if (o->init_set) json_object_set_new(hc, "Init", json_boolean(o->init));
    copts_resources(o, hc);
    return hc;
}

/* The parts that can fail, in docker's order of checks. */
static int build_checked(const copts *o, json_t *cfg, json_t *hc, char **err)
{
    if (o->swappiness != -1 && (o->swappiness < 0 || o->swappiness > 100)) {
        *err =
            xasprintf("invalid value: %lld. Valid memory swappiness range is 0-100", o->swappiness);
        return -1;
    }
    json_t *exposed, *bind;
    int rc = ports_json(o, &exposed, &bind, err);
    json_object_set_new(cfg, "ExposedPorts", exposed);
    json_object_set_new(hc, "PortBindings", bind);
    if (rc < 0) return -1;
    json_t *devs = json_array();
    json_object_set_new(hc, "Devices", devs);
    for (size_t i = 0; i < o->devices.n; i++) {
        json_t *d = device_json(o->devices.v[i], err);
        if (!d) return -1;
        json_array_append_new(devs, d);
    }
    json_t *env = json_array();
    json_object_set_new(cfg, "Env", env);
    if (read_env(&o->env_file, &o->env, env, err) < 0) return -1;
    json_t *labels = json_array();
    for (size_t i = 0; i < o->label_file.n; i++)
        if (read_kv_file(o->label_file.v[i], false, labels, err) < 0)
            return json_decref(labels), -1;
    for (size_t i = 0; i < o->labels.n; i++)
        json_array_append_new(labels, json_string(o->labels.v[i]));
    json_object_set_new(cfg, "Labels", kv_map(labels));
    json_decref(labels);
    if (check_modes(o, err) < 0) return -1;
    json_t *rp = restart_policy(o->restart ? o->restart : "no", err);
    if (!rp) return -1;
    json_object_set_new(hc, "RestartPolicy", rp);
    json_t *lc = log_config(o, err);
    if (!lc) return -1;
    json_object_set_new(hc, "LogConfig", lc);
    bool unconfined = false;
    json_t *sec = security_json(o, &unconfined, err);
    if (!sec) return -1;
    json_object_set_new(hc, "SecurityOpt",
                        json_array_size(sec) ? sec : (json_decref(sec), json_null()));
    if (unconfined) {
        json_object_set_new(hc, "MaskedPaths", json_array());
        json_object_set_new(hc, "ReadonlyPaths", json_array());
    }
    json_t *h = health_json(o, err);
    if (!h) return -1;
    json_object_set_new(cfg, "Healthcheck", h);
    const char *rn = jstr(rp, "Name");
    if (o->rm && rn && *rn && strcmp(rn, "no")) {
        *err = xstrdup("Conflicting options: --restart and --rm");
        return -1;
    }
    return 0;
}

json_t *copts_build(copts *o, const char *image, int argc, char **argv, char **err)
{
    *err = NULL;
    json_t *cfg = config_json(o, image, argc, argv);
    json_t *hc = host_config(o);
    volumes_json(o, cfg, hc);
    if (build_checked(o, cfg, hc, err) < 0) {
        json_decref(cfg);
        json_decref(hc);
        return NULL;
    }
    json_object_set_new(cfg, "HostConfig", hc);
    json_object_set_new(cfg, "NetworkingConfig", json_pack("{s:{}}", "EndpointsConfig"));
    return cfg;
}
