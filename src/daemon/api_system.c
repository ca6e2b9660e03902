/* api_system.c: /_ping, /version, /info, /events and /system/df. */
#include <stdlib.h>
#include <string.h>
#include <sys/sysinfo.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#include "common/jsonutil.h"
#include "daemon/api.h"
#include "daemon/containers.h"
#include "daemon/events.h"
#include "runtime/runtime.h"

void h_ping(req *r)
{
    resp_bytes(r, 200, "text/plain; charset=utf-8", "OK", 2);
    resp_header(r, "Cache-Control", "no-cache, no-store, must-revalidate");
    resp_header(r, "Pragma", "no-cache");
    resp_header(r, "Builder-Version", "");
}

static const char *go_arch(const char *machine)
{
    if (!strcmp(machine, "x86_64")) return "amd64";
    if (!strcmp(machine, "aarch64")) return "arm64";
    if (!strncmp(machine, "armv7", 5)) return "arm";
    if (!strcmp(machine, "i686") || !strcmp(machine, "i386")) return "386";
    return machine;
}

/* The build time in RFC 3339, as dockerd reports it. */
static void build_time(char *out, size_t n)
{
    struct tm tm = {0};
    char buf[64];
    snprintf(buf, sizeof buf, "%s %s", __DATE__, __TIME__);
    if (!strptime(buf, "%b %d %Y %H:%M:%S", &tm)) {
        snprintf(out, n, "%s", buf);
        return;
    }
    strftime(out, n, "%Y-%m-%dT%H:%M:%S.000000000+00:00", &tm);
}

void h_version(req *r)
{
    struct utsname u;
    uname(&u);
    char built[64];
    build_time(built, sizeof built);
    json_t *details =
        json_pack("{s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:s}", "ApiVersion", BERTH_API_VERSION, "Arch",
                  go_arch(u.machine), "BuildTime", built, "Experimental", "false", "GitCommit", "",
                  "GoVersion", "", "KernelVersion", u.release, "MinAPIVersion",
                  BERTH_MIN_API_VERSION, "Os", "linux");
    json_t *j = json_pack("{s:{s:s},s:[{s:s,s:s,s:o}],s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:s}",
                          "Platform", "Name", "Berth Engine", "Components", "Name", "Engine",
                          "Version", BERTH_VERSION, "Details", details, "Version", BERTH_VERSION,
                          "ApiVersion", BERTH_API_VERSION, "MinAPIVersion", BERTH_MIN_API_VERSION,
                          "GitCommit", "", "GoVersion", "", "Os", "linux", "Arch",
                          go_arch(u.machine), "KernelVersion", u.release, "BuildTime", built);
    resp_json(r, 200, j);
}

/* PRETTY_NAME from /etc/os-release */
static char *os_name(void)
{
    char *data = NULL;
    if (read_file("/etc/os-release", &data, NULL) < 0) return xstrdup("Linux");
    char *res = NULL, *save = NULL;
    for (char *line = strtok_r(data, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        if (!str_starts(line, "PRETTY_NAME=")) continue;
        char *v = line + 12;
        if (*v == '"') v++;
        size_t l = strlen(v);
        if (l && v[l - 1] == '"') v[l - 1] = 0;
        res = xstrdup(v);
    }
    free(data);
    return res ? res : xstrdup("Linux");
}

static const char *cgroup_version(void)
{
    return rt_cgroup_host_mode() == RT_CG_V2 ? "2" : "1";
}

static json_t *info_plugins(void)
{
    return json_pack("{s:[],s:[],s:n,s:[]}", "Volume", "Network", "Authorization", "Log");
}

void h_info(req *r)
{
    struct utsname u;
    uname(&u);
    struct sysinfo si;
    sysinfo(&si);
    char host[256] = "";
    gethostname(host, sizeof host - 1);
    char ts[64];
    fmt_rfc3339nano(now_ns(), ts, sizeof ts);
    _cleanup_free_ char *os = os_name();
    json_t *j = json_object();
    json_object_set_new(j, "ID", json_string(D.id));
    int total, running, paused, stopped;
    ctr_counts(&total, &running, &paused, &stopped);
    json_object_set_new(j, "Containers", json_integer(total));
    json_object_set_new(j, "ContainersRunning", json_integer(running));
    json_object_set_new(j, "ContainersPaused", json_integer(paused));
    json_object_set_new(j, "ContainersStopped", json_integer(stopped));
    json_object_set_new(j, "Images", json_integer(image_count(D.images)));
    json_object_set_new(j, "Driver", json_string(D.storage_driver));
    json_object_set_new(j, "DriverStatus", json_pack("[[s,s]]", "Backing Filesystem", "extfs"));
    json_object_set_new(j, "Plugins", info_plugins());
    /* what the host's cgroups can limit; the warnings are dockerd's */
    json_t *warnings = json_array();
    static const struct {
        const char *ctrl, *field, *warning;
    } limits[] = {
        {"memory", "MemoryLimit", "WARNING: No memory limit support"},
        {"memory", "SwapLimit", "WARNING: No swap limit support"},
        {"cpu", "CpuCfsPeriod", "WARNING: No cpu cfs period support"},
        {"cpu", "CpuCfsQuota", "WARNING: No cpu cfs quota support"},
        {"cpu", "CPUShares", "WARNING: No cpu shares support"},
        {"cpuset", "CPUSet", "WARNING: No cpuset support"},
        {"pids", "PidsLimit", "WARNING: No pids limit support"},
    };
    for (size_t i = 0; i < sizeof limits / sizeof *limits; i++) {
        bool has = rt_cgroup_has_controller(limits[i].ctrl);
        json_object_set_new(j, limits[i].field, json_boolean(has));
        if (!has) json_array_append_new(warnings, json_string(limits[i].warning));
    }
    json_object_set_new(j, "IPv4Forwarding", json_true());
    json_object_set_new(j, "Debug", json_boolean(log_level >= LOG_DEBUG_));
    json_object_set_new(j, "NFd", json_integer(0));
    json_object_set_new(j, "OomKillDisable", json_false());
    json_object_set_new(j, "NGoroutines", json_integer(0));
    json_object_set_new(j, "SystemTime", json_string(ts));
    json_object_set_new(j, "LoggingDriver", json_string("json-file"));
    json_object_set_new(j, "CgroupDriver", json_string("cgroupfs"));
    json_object_set_new(j, "CgroupVersion", json_string(cgroup_version()));
    json_object_set_new(j, "KernelVersion", json_string(u.release));
    json_object_set_new(j, "OperatingSystem", json_string(os));
    json_object_set_new(j, "OSType", json_string("linux"));
    json_object_set_new(j, "Architecture", json_string(u.machine));
    json_object_set_new(j, "IndexServerAddress", json_string("https://index.docker.io/v1/"));
    json_object_set_new(j, "RegistryConfig",
                        json_pack("{s:[],s:[],s:{},s:[]}", "AllowNondistributableArtifactsCIDRs",
                                  "InsecureRegistryCIDRs", "IndexConfigs", "Mirrors"));
    json_object_set_new(j, "NCPU", json_integer(sysconf(_SC_NPROCESSORS_ONLN)));
    json_object_set_new(j, "MemTotal", json_integer((json_int_t)si.totalram * si.mem_unit));
    json_object_set_new(j, "DockerRootDir", json_string(D.data_root));
    json_object_set_new(j, "Name", json_string(host));
    json_object_set_new(j, "Labels", json_array());
    json_object_set_new(j, "ExperimentalBuild", json_false());
    json_object_set_new(j, "ServerVersion", json_string(BERTH_VERSION));
    json_object_set_new(j, "Runtimes", json_pack("{s:{s:s}}", "berth", "path", "berth-runtime"));
    json_object_set_new(j, "DefaultRuntime", json_string("berth"));
    json_object_set_new(j, "Swarm",
                        json_pack("{s:s,s:s,s:s,s:b,s:s}", "NodeID", "", "NodeAddr", "",
                                  "LocalNodeState", "inactive", "ControlAvailable", 0, "Error",
                                  ""));
    json_object_set_new(j, "LiveRestoreEnabled", json_true()); /* containers outlive berthd */
    json_object_set_new(j, "Isolation", json_string(""));
    json_object_set_new(j, "SecurityOptions", json_array());
    json_object_set_new(j, "Warnings", warnings);
    resp_json(r, 200, j);
}

/* ---- events ---- */

struct events_arg {
    int64_t since, until;
    json_t *filters;
};

static void events_run(stream *st, void *p)
{
    struct events_arg *a = p;
    events_stream(st, a->since, a->until, a->filters);
}

static void events_free(void *p)
{
    struct events_arg *a = p;
    json_decref(a->filters);
    free(a);
}

void h_events(req *r)
{
    static const char *const keys[] = {"config", "container", "daemon", "event",  "image",
                                       "label",  "network",   "node",   "plugin", "scope",
                                       "secret", "service",   "type",   "volume", NULL};
    berr e;
    json_t *f = filters_parse(req_query(r, "filters"), keys, &e);
    if (!f) return resp_berr(r, &e);
    struct events_arg *a = xcalloc(1, sizeof *a);
    a->filters = f;
    int64_t now = now_ns();
    const char *since = req_query(r, "since"), *until = req_query(r, "until");
    if (since && *since && (a->since = parse_time_arg(since, now)) < 0) {
        events_free(a);
        return resp_error(r, 400, "invalid value for since: %s", since);
    }
    if (until && *until && (a->until = parse_time_arg(until, now)) < 0) {
        events_free(a);
        return resp_error(r, 400, "invalid value for until: %s", until);
    }
    if (a->since && a->until && a->since > a->until) {
        events_free(a);
        return resp_error(r, 400, "since time (%s) cannot be after until time (%s)", since, until);
    }
    resp_stream(r, 200, "application/json", events_run, a, events_free);
}

void h_system_df(req *r)
{
    berr e;
    int64_t layers = 0;
    json_t *imgs = image_df(D.images, &layers, &e);
    if (!imgs) return resp_berr(r, &e);
    json_t *j = json_pack("{s:I,s:o,s:o,s:[],s:[]}", "LayersSize", (json_int_t)layers, "Images",
                          imgs, "Containers", containers_df(), "Volumes", "BuildCache");
    resp_json(r, 200, j);
}
