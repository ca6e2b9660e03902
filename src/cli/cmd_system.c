/* cmd_system.c: the system command group of the berth CLI: version, info
 * (system info), system df and events (system events), printed as the
 * docker CLI prints them, with --format templates. */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli/cli.h"

/* ---- version ---- */

/* The build time in Go's time.ANSIC layout, as docker prints it. */
static void build_time(char *out, size_t n)
{
    struct tm tm = {0};
    snprintf(out, n, "%s %s", __DATE__, __TIME__);
    if (strptime(out, "%b %d %Y %H:%M:%S", &tm)) {
        tm.tm_isdst = -1;
        mktime(&tm);
        strftime(out, n, "%a %b %e %H:%M:%S %Y", &tm);
    }
}

static json_t *client_version(const client *c)
{
    char built[64];
    build_time(built, sizeof built);
    return json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s}", "Version", BERTH_VERSION,
                     "ApiVersion", c->api, "DefaultAPIVersion", BERTH_API_VERSION, "GitCommit",
                     "dev", "Os", "linux", "Arch", "amd64", "BuildTime", built, "Context",
                     "default");
}

/* RFC3339 build time -> Go's time.ANSIC form, as docker shows it. */
static char *ansic_time(const char *s)
{
    int64_t ns = s ? parse_rfc3339(s) : -1;
    if (ns < 0) return xstrdup(s ? s : "");
    time_t t = (time_t)(ns / 1000000000LL);
    struct tm tm;
    gmtime_r(&t, &tm);
    char buf[64];
    strftime(buf, sizeof buf, "%a %b %e %H:%M:%S %Y", &tm);
    return xstrdup(buf);
}

static void version_client_text(sbuf *b, const json_t *cv)
{
    sbuf_printf(b, "Client:\n Version:\t%s\n API version:\t%s", jstr(cv, "Version"),
                jstr(cv, "ApiVersion"));
    if (strcmp(jstr(cv, "ApiVersion"), jstr(cv, "DefaultAPIVersion")))
        sbuf_printf(b, " (downgraded from %s)", jstr(cv, "DefaultAPIVersion"));
    sbuf_printf(b, "\n Built:\t%s\n OS/Arch:\t%s/%s\n Context:\t%s", jstr(cv, "BuildTime"),
                jstr(cv, "Os"), jstr(cv, "Arch"), jstr(cv, "Context"));
}

static const char *detail(const json_t *comp, const char *key)
{
    const char *v = jstr(json_object_get(comp, "Details"), key);
    return v ? v : "";
}

static void version_component_text(sbuf *b, const json_t *comp)
{
    const char *name = jstr(comp, "Name");
    sbuf_printf(b, "\n %s:", name ? name : "");
    if (name && !strcmp(name, "Engine")) {
        sbuf_printf(b, "\n  Version:\t%s", jstr(comp, "Version") ? jstr(comp, "Version") : "");
        sbuf_printf(b, "\n  API version:\t%s (minimum version %s)", detail(comp, "ApiVersion"),
                    detail(comp, "MinAPIVersion"));
        sbuf_printf(b, "\n  Go version:\t%s\n  Git commit:\t%s", detail(comp, "GoVersion"),
                    detail(comp, "GitCommit"));
        char *built = ansic_time(detail(comp, "BuildTime"));
        sbuf_printf(b, "\n  Built:\t%s\n  OS/Arch:\t%s/%s\n  Experimental:\t%s", built,
                    detail(comp, "Os"), detail(comp, "Arch"), detail(comp, "Experimental"));
        free(built);
        return;
    }
    sbuf_printf(b, "\n  Version:\t%s", jstr(comp, "Version") ? jstr(comp, "Version") : "");
    json_t *d = json_object_get(comp, "Details");
    size_t n = json_object_size(d);
    const char **keys = xcalloc(n + 1, sizeof *keys);
    size_t i = 0;
    const char *k;
    json_t *v;
    json_object_foreach(d, k, v) keys[i++] = k;
    qsort(keys, n, sizeof *keys, (int (*)(const void *, const void *))strcmp);
    for (i = 0; i < n; i++) sbuf_printf(b, "\n  %s:\t%s", keys[i], detail(comp, keys[i]));
    free(keys);
}

/* Docker adds an Engine component when an old daemon sent none. */
static void ensure_engine(json_t *sv)
{
    json_t *comps = json_object_get(sv, "Components");
    size_t i;
    json_t *c;
    json_array_foreach(comps, i,
                       c) if (!strcmp(jstr(c, "Name") ? jstr(c, "Name") : "", "Engine")) return;
    if (!json_is_array(comps)) {
        comps = json_array();
        json_object_set_new(sv, "Components", comps);
    }
    json_t *d =
        json_pack("{s:s?, s:s?, s:s?, s:s?, s:s?, s:s?, s:s?, s:s}", "ApiVersion",
                  jstr(sv, "ApiVersion"), "MinAPIVersion", jstr(sv, "MinAPIVersion"), "GitCommit",
                  jstr(sv, "GitCommit"), "GoVersion", jstr(sv, "GoVersion"), "Os", jstr(sv, "Os"),
                  "Arch", jstr(sv, "Arch"), "BuildTime", jstr(sv, "BuildTime"), "Experimental",
                  json_is_true(json_object_get(sv, "Experimental")) ? "true" : "false");
    json_array_append_new(comps, json_pack("{s:s, s:s?, s:o}", "Name", "Engine", "Version",
                                           jstr(sv, "Version"), "Details", d));
}

static int run_template(const char *name, const char *format, const json_t *data, const char *sname)
{
    const char *src = !strcmp(format, "json") ? "{{json .}}" : format;
    char *err = NULL;
    tmpl *t = tmpl_parse_named(name, src, &err);
    if (!t) {
        errorf("template parsing error: %s", err);
        free(err);
        return 64;
    }
    sbuf out = {0};
    tmpl_opts o = {.struct_name = sname};
    int rc = tmpl_exec(t, data, &o, &out, &err);
    fwrite(out.data, 1, out.len, stdout);
    if (strcmp(name, "df")) fputc('\n', stdout);
    sbuf_free(&out);
    tmpl_free(t);
    if (rc < 0) {
        errorf("%s", err);
        free(err);
        return 1;
    }
    return 0;
}

int run_version(client *c, const cmd_def *def, int argc, char **argv)
{
    char *format = NULL;
    flag flags[] = {{"format", 'f', FLAG_STRING, &format,
                     "Format the output using the given Go template", NULL, NULL},
                    {NULL, 0, 0, NULL, NULL, NULL, NULL}};
    char **pos = NULL;
    int rc;
    if (parse_cmd(def, flags, argc, argv, &pos, &rc) < 0) return free(format), rc;
    free(pos);
    json_t *sv = NULL;
    int err = client_json(c, "GET", "/version", NULL, &sv);
    json_t *data = json_pack("{s:o, s:o}", "Client", client_version(c), "Server",
                             sv ? json_incref(sv) : json_null());
    if (sv) ensure_engine(sv);
    if (format && *format) {
        rc = run_template("version", format, data, "system.versionInfo");
    } else {
        sbuf b = {0};
        version_client_text(&b, json_object_get(data, "Client"));
        if (sv) {
            sbuf_adds(&b, "\n\nServer:");
            size_t i;
            json_t *comp;
            json_array_foreach(json_object_get(sv, "Components"), i, comp)
                version_component_text(&b, comp);
        }
        sbuf_adds(&b, "\n");
        tabwrite(stdout, b.data, b.len, 20, 1, 1);
        sbuf_free(&b);
        rc = 0;
    }
    json_decref(sv);
    json_decref(data);
    free(format);
    return err < 0 ? 1 : rc;
}

/* ---- info ---- */

static void println_nonempty(const char *label, const char *v)
{
    if (v && *v) printf("%s %s\n", label, v);
}

static void join_print(const char *label, const json_t *arr)
{
    printf("%s", label);
    size_t i;
    json_t *v;
    json_array_foreach(arr, i, v) printf(" %s", json_string_value(v) ? json_string_value(v) : "");
    if (!json_array_size(arr)) printf(" ");
    printf("\n");
}

static const char *boolstr(const json_t *o, const char *k)
{
    return json_is_true(json_object_get(o, k)) ? "true" : "false";
}

static long long jint(const json_t *o, const char *k)
{
    return (long long)json_integer_value(json_object_get(o, k));
}

static void info_security(const json_t *opts)
{
    if (!json_array_size(opts)) return;
    printf(" Security Options:\n");
    size_t i;
    json_t *v;
    json_array_foreach(opts, i, v)
    {
        const char *s = json_string_value(v);
        if (!s) continue;
        if (!str_starts(s, "name=")) {
            printf("  %s\n", s);
            continue;
        }
        char *copy = xstrdup(s);
        char *save = NULL;
        for (char *kv = strtok_r(copy, ",", &save); kv; kv = strtok_r(NULL, ",", &save)) {
            if (str_starts(kv, "name="))
                printf("  %s\n", kv + 5);
            else if (str_starts(kv, "profile="))
                printf("   Profile: %s\n", kv + 8);
        }
        free(copy);
    }
}

static void info_registries(const json_t *rc)
{
    json_t *idx = json_object_get(rc, "IndexConfigs");
    json_t *cidrs = json_object_get(rc, "InsecureRegistryCIDRs");
    if (json_object_size(idx) || json_array_size(cidrs)) {
        printf(" Insecure Registries:\n");
        const char *k;
        json_t *v;
        json_object_foreach(idx, k, v) if (!json_is_true(json_object_get(v, "Secure")))
            printf("  %s\n", jstr(v, "Name") ? jstr(v, "Name") : k);
        size_t i;
        json_array_foreach(cidrs, i, v) if (json_is_string(v))
            printf("  %s\n", json_string_value(v));
    }
    json_t *mirrors = json_object_get(rc, "Mirrors");
    if (json_array_size(mirrors)) {
        printf(" Registry Mirrors:\n");
        size_t i;
        json_t *v;
        json_array_foreach(mirrors, i, v) printf("  %s\n", json_string_value(v));
    }
}

static void info_top(const json_t *in)
{
    printf(" Containers: %lld\n  Running: %lld\n  Paused: %lld\n  Stopped: %lld\n",
           jint(in, "Containers"), jint(in, "ContainersRunning"), jint(in, "ContainersPaused"),
           jint(in, "ContainersStopped"));
    printf(" Images: %lld\n", jint(in, "Images"));
    println_nonempty(" Server Version:", jstr(in, "ServerVersion"));
    println_nonempty(" Storage Driver:", jstr(in, "Driver"));
    size_t i;
    json_t *p;
    json_array_foreach(json_object_get(in, "DriverStatus"), i, p)
        printf("  %s: %s\n", json_string_value(json_array_get(p, 0)),
               json_string_value(json_array_get(p, 1)));
    json_array_foreach(json_object_get(in, "SystemStatus"), i, p)
        printf(" %s: %s\n", json_string_value(json_array_get(p, 0)),
               json_string_value(json_array_get(p, 1)));
    println_nonempty(" Logging Driver:", jstr(in, "LoggingDriver"));
    println_nonempty(" Cgroup Driver:", jstr(in, "CgroupDriver"));
    println_nonempty(" Cgroup Version:", jstr(in, "CgroupVersion"));
    json_t *plugins = json_object_get(in, "Plugins");
    printf(" Plugins:\n");
    join_print("  Volume:", json_object_get(plugins, "Volume"));
    join_print("  Network:", json_object_get(plugins, "Network"));
    if (json_array_size(json_object_get(plugins, "Authorization")))
        join_print("  Authorization:", json_object_get(plugins, "Authorization"));
    join_print("  Log:", json_object_get(plugins, "Log"));
    json_t *swarm = json_object_get(in, "Swarm");
    printf(" Swarm: %s\n", jstr(swarm, "LocalNodeState") ? jstr(swarm, "LocalNodeState") : "");
}

static void info_runtime(const json_t *in)
{
    json_t *rt = json_object_get(in, "Runtimes");
    if (json_object_size(rt)) {
        printf(" Runtimes:");
        const char *k;
        json_t *v;
        json_object_foreach(rt, k, v) printf(" %s", k);
        printf("\n Default Runtime: %s\n",
               jstr(in, "DefaultRuntime") ? jstr(in, "DefaultRuntime") : "");
    }
    const char *os = jstr(in, "OSType");
    if (os && !strcmp(os, "linux")) {
        printf(" Init Binary: %s\n", jstr(in, "InitBinary") ? jstr(in, "InitBinary") : "");
        const char *ids[] = {"ContainerdCommit", "containerd", "RuncCommit", "runc",
                             "InitCommit",       "init"};
        for (int i = 0; i < 6; i += 2) {
            const char *id = jstr(json_object_get(in, ids[i]), "ID");
            printf(" %s version: %s\n", ids[i + 1], id ? id : "");
        }
        info_security(json_object_get(in, "SecurityOptions"));
    }
}

static void info_host(const json_t *in)
{
    println_nonempty(" Kernel Version:", jstr(in, "KernelVersion"));
    println_nonempty(" Operating System:", jstr(in, "OperatingSystem"));
    println_nonempty(" OSType:", jstr(in, "OSType"));
    println_nonempty(" Architecture:", jstr(in, "Architecture"));
    printf(" CPUs: %lld\n", jint(in, "NCPU"));
    char mem[32];
    size_bytes((double)jint(in, "MemTotal"), mem, sizeof mem);
    printf(" Total Memory: %s\n", mem);
    println_nonempty(" Name:", jstr(in, "Name"));
    println_nonempty(" ID:", jstr(in, "ID"));
    printf(" Docker Root Dir: %s\n", jstr(in, "DockerRootDir") ? jstr(in, "DockerRootDir") : "");
    printf(" Debug Mode: %s\n", boolstr(in, "Debug"));
    if (json_is_true(json_object_get(in, "Debug"))) {
        printf("  File Descriptors: %lld\n  Goroutines: %lld\n", jint(in, "NFd"),
               jint(in, "NGoroutines"));
        printf("  System Time: %s\n  EventsListeners: %lld\n",
               jstr(in, "SystemTime") ? jstr(in, "SystemTime") : "", jint(in, "NEventsListener"));
    }
    println_nonempty(" HTTP Proxy:", jstr(in, "HttpProxy"));
    println_nonempty(" HTTPS Proxy:", jstr(in, "HttpsProxy"));
    println_nonempty(" No Proxy:", jstr(in, "NoProxy"));
    json_t *labels = json_object_get(in, "Labels");
    if (json_array_size(labels)) {
        printf(" Labels:\n");
        size_t i;
        json_t *v;
        json_array_foreach(labels, i, v) printf("  %s\n", json_string_value(v));
    }
    printf(" Experimental: %s\n", boolstr(in, "ExperimentalBuild"));
    info_registries(json_object_get(in, "RegistryConfig"));
    printf(" Live Restore Enabled: %s\n", boolstr(in, "LiveRestoreEnabled"));
    println_nonempty(" Product License:", jstr(in, "ProductLicense"));
}

static void info_pretty(const json_t *in)
{
    info_top(in);
    info_runtime(in);
    info_host(in);
    printf("\n");
    fflush(stdout);
    size_t i;
    json_t *w;
    json_array_foreach(json_object_get(in, "Warnings"), i, w) errorf("%s", json_string_value(w));
}

int run_info(client *c, const cmd_def *def, int argc, char **argv)
{
    char *format = NULL;
    flag flags[] = {{"format", 'f', FLAG_STRING, &format,
                     "Format the output using the given Go template", NULL, NULL},
                    {NULL, 0, 0, NULL, NULL, NULL, NULL}};
    char **pos = NULL;
    int rc;
    if (parse_cmd(def, flags, argc, argv, &pos, &rc) < 0) return free(format), rc;
    free(pos);
    if (!format || !*format) {
        printf("Client:\n Version:    %s\n Context:    default\n Debug Mode: %s\n\nServer:\n",
               BERTH_VERSION, log_level >= LOG_DEBUG_ ? "true" : "false");
        fflush(stdout);
    }
    json_t *in = NULL;
    rc = client_json(c, "GET", "/info", NULL, &in) < 0 ? 1 : 0;
    if (format && *format) {
        json_t *data = json_is_object(in) ? json_incref(in) : json_object();
        json_object_set_new(data, "ClientInfo",
                            json_pack("{s:b, s:s, s:s, s:s, s:s, s:s, s:s}", "Debug",
                                      log_level >= LOG_DEBUG_, "Version", BERTH_VERSION,
                                      "DefaultAPIVersion", BERTH_API_VERSION, "Os", "linux", "Arch",
                                      "amd64", "Context", "default", "ApiVersion", c->api));
        int frc = run_template("version", format, data, "system.versionInfo");
        if (frc) rc = frc;
        json_decref(data);
    } else if (in) {
        info_pretty(in);
    } else {
        errorf("errors pretty printing info");
    }
    json_decref(in);
    free(format);
    return rc;
}

/* ---- system df ---- */

static void hsize(int64_t n, char *out, size_t len)
{
    size_human((double)n, 4, out, len);
}

static void reclaim_str(int64_t reclaim, int64_t total, char *out, size_t len)
{
    char s[32];
    hsize(reclaim, s, sizeof s);
    if (total > 0)
        snprintf(out, len, "%s (%lld%%)", s, (long long)(reclaim * 100 / total));
    else
        snprintf(out, len, "%s", s);
}

static json_t *df_row(const char *type, size_t total, int active, int64_t size, const char *reclaim)
{
    char sz[32];
    hsize(size, sz, sizeof sz);
    json_t *r = json_object();
    json_object_set_new(r, "Active", json_sprintf("%d", active));
    json_object_set_new(r, "Reclaimable", json_string(reclaim));
    json_object_set_new(r, "Size", json_string(sz));
    json_object_set_new(r, "TotalCount", json_sprintf("%zu", total));
    json_object_set_new(r, "Type", json_string(type));
    return r;
}

static json_t *df_images_row(const json_t *df)
{
    json_t *imgs = json_object_get(df, "Images");
    int64_t total = jint(df, "LayersSize"), used = 0;
    int active = 0;
    size_t i;
    json_t *im;
    json_array_foreach(imgs, i, im)
    {
        if (jint(im, "Containers") <= 0) continue;
        active++;
        if (jint(im, "Size") != -1 && jint(im, "SharedSize") != -1)
            used += jint(im, "Size") - jint(im, "SharedSize");
    }
    char rec[64];
    reclaim_str(total - used, total, rec, sizeof rec);
    return df_row("Images", json_array_size(imgs), active, total, rec);
}

static bool container_active(const json_t *ct)
{
    const char *st = jstr(ct, "State");
    return st && (strstr(st, "running") || !strcmp(st, "paused") || !strcmp(st, "restarting"));
}

static json_t *df_containers_row(const json_t *df)
{
    json_t *cts = json_object_get(df, "Containers");
    int64_t size = 0, reclaim = 0;
    int active = 0;
    size_t i;
    json_t *ct;
    json_array_foreach(cts, i, ct)
    {
        size += jint(ct, "SizeRw");
        if (container_active(ct))
            active++;
        else
            reclaim += jint(ct, "SizeRw");
    }
    char rec[64];
    reclaim_str(reclaim, size, rec, sizeof rec);
    return df_row("Containers", json_array_size(cts), active, size, rec);
}

static json_t *df_volumes_row(const json_t *df)
{
    json_t *vols = json_object_get(df, "Volumes");
    int64_t size = 0, reclaim = 0;
    int active = 0;
    size_t i;
    json_t *v;
    json_array_foreach(vols, i, v)
    {
        json_t *u = json_object_get(v, "UsageData");
        int64_t s = jint(u, "Size");
        if (s != -1) size += s;
        if (jint(u, "RefCount") > 0)
            active++;
        else if (s != -1)
            reclaim += s;
    }
    char rec[64];
    reclaim_str(reclaim, size, rec, sizeof rec);
    return df_row("Local Volumes", json_array_size(vols), active, size, rec);
}

static json_t *df_cache_row(const json_t *df)
{
    json_t *bc = json_object_get(df, "BuildCache");
    int64_t size = 0, reclaim = 0;
    int active = 0;
    size_t i;
    json_t *b;
    json_array_foreach(bc, i, b)
    {
        bool shared = json_is_true(json_object_get(b, "Shared"));
        bool inuse = json_is_true(json_object_get(b, "InUse"));
        if (inuse) active++;
        if (!shared) size += jint(b, "Size");
        if (!shared && !inuse) reclaim += jint(b, "Size");
    }
    char rec[64];
    reclaim_str(reclaim, 0, rec, sizeof rec);
    return df_row("Build Cache", json_array_size(bc), active, size, rec);
}

static json_t *df_header(void)
{
    return json_pack("{s:s, s:s, s:s, s:s, s:s}", "Type", "TYPE", "TotalCount", "TOTAL", "Active",
                     "ACTIVE", "Size", "SIZE", "Reclaimable", "RECLAIMABLE");
}

static int df_summary(const json_t *df, const char *format)
{
    formatter f;
    const char *fmt =
        format && *format
            ? format
            : "table {{.Type}}\\t{{.TotalCount}}\\t{{.Active}}\\t{{.Size}}\\t{{.Reclaimable}}";
    if (formatter_init(&f, fmt, "*formatter.diskUsageContext") < 0) return 1;
    json_t *rows[4] = {df_images_row(df), df_containers_row(df), df_volumes_row(df),
                       df_cache_row(df)};
    int rc = 0;
    for (int i = 0; i < 4 && rc == 0; i++) rc = formatter_row(&f, rows[i], NULL) < 0 ? 1 : 0;
    for (int i = 0; i < 4; i++) json_decref(rows[i]);
    if (rc) {
        formatter_free(&f);
        return rc;
    }
    json_t *h = df_header();
    formatter_flush(&f, h);
    json_decref(h);
    return 0;
}

/* -v: one table per object kind, as docker's formatter.DiskUsageContext. */
static json_t *df_image_rows(const json_t *df, bool trunc)
{
    json_t *rows = json_array();
    size_t i;
    json_t *im;
    json_array_foreach(json_object_get(df, "Images"), i, im)
    {
        char *repo = xstrdup("<none>"), *tag = xstrdup("<none>");
        const char *first = json_string_value(json_array_get(json_object_get(im, "RepoTags"), 0));
        const char *colon = first ? strrchr(first, ':') : NULL;
        if (first && strcmp(first, "<none>:<none>") && colon && !strchr(colon, '/')) {
            free(repo), free(tag);
            repo = xstrndup(first, (size_t)(colon - first));
            tag = xstrdup(colon + 1);
        }
        json_array_append_new(rows, image_row(im, repo, tag, "", trunc));
        free(repo);
        free(tag);
    }
    return rows;
}

static json_t *df_container_rows(const json_t *df)
{
    json_t *rows = json_array();
    size_t i, j;
    json_t *ct, *m;
    json_array_foreach(json_object_get(df, "Containers"), i, ct)
    {
        char id[16], img[128], since[64], sz[32], cmd[64], vols[16], *names;
        short_id(jstr(ct, "Id"), id, sizeof id);
        const char *image = jstr(ct, "Image") ? jstr(ct, "Image") : "";
        if (str_starts(image, "sha256:"))
            short_id(image, img, sizeof img);
        else
            snprintf(img, sizeof img, "%s", image);
        const char *command = jstr(ct, "Command") ? jstr(ct, "Command") : "";
        if (strlen(command) > 20)
            snprintf(cmd, sizeof cmd, "\"%.19s…\"", command);
        else
            snprintf(cmd, sizeof cmd, "\"%s\"", command);
        int nv = 0;
        json_array_foreach(json_object_get(ct, "Mounts"), j,
                           m) if (jstr(m, "Type") && !strcmp(jstr(m, "Type"), "volume")) nv++;
        snprintf(vols, sizeof vols, "%d", nv);
        size_human((double)jint(ct, "SizeRw"), 3, sz, sizeof sz);
        since_human(jint(ct, "Created"), since, sizeof since);
        const char *n0 = json_string_value(json_array_get(json_object_get(ct, "Names"), 0));
        names = xstrdup(n0 ? (n0[0] == '/' ? n0 + 1 : n0) : "");
        json_array_append_new(rows, json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s}", "ID", id,
                                              "Image", img, "Command", cmd, "LocalVolumes", vols,
                                              "Size", sz, "RunningFor", since, "Status",
                                              jstr(ct, "Status") ? jstr(ct, "Status") : "", "Names",
                                              names));
        free(names);
    }
    return rows;
}

static json_t *df_volume_rows(const json_t *df)
{
    json_t *rows = json_array();
    size_t i;
    json_t *v;
    json_array_foreach(json_object_get(df, "Volumes"), i, v)
    {
        json_t *u = json_object_get(v, "UsageData");
        char links[32] = "N/A", sz[32] = "N/A";
        if (jint(u, "RefCount") != -1) snprintf(links, sizeof links, "%lld", jint(u, "RefCount"));
        if (jint(u, "Size") != -1) hsize(jint(u, "Size"), sz, sizeof sz);
        json_array_append_new(rows, json_pack("{s:s, s:s, s:s}", "Name",
                                              jstr(v, "Name") ? jstr(v, "Name") : "", "Links",
                                              links, "Size", sz));
    }
    return rows;
}

static json_t *df_cache_rows(const json_t *df)
{
    json_t *rows = json_array();
    size_t i;
    json_t *b;
    json_array_foreach(json_object_get(df, "BuildCache"), i, b)
    {
        char sz[32], created[64] = "", used[64] = "", count[32], id[16];
        hsize(jint(b, "Size"), sz, sizeof sz);
        int64_t ct = jstr(b, "CreatedAt") ? parse_rfc3339(jstr(b, "CreatedAt")) : -1;
        int64_t lu = jstr(b, "LastUsedAt") ? parse_rfc3339(jstr(b, "LastUsedAt")) : -1;
        if (ct > 0) since_human(ct / 1000000000LL, created, sizeof created);
        if (lu > 0) since_human(lu / 1000000000LL, used, sizeof used);
        snprintf(count, sizeof count, "%lld", jint(b, "UsageCount"));
        snprintf(id, sizeof id, "%.12s", jstr(b, "ID") ? jstr(b, "ID") : "");
        json_array_append_new(
            rows, json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s}", "ID", id, "CacheType",
                            jstr(b, "Type") ? jstr(b, "Type") : "", "Size", sz, "CreatedSince",
                            created, "LastUsedSince", used, "UsageCount", count, "Shared",
                            json_is_true(json_object_get(b, "Shared")) ? "true" : "false"));
    }
    return rows;
}

static void df_table(const char *format, const json_t *rows, const json_t *header)
{
    formatter f;
    if (formatter_init(&f, format, NULL) < 0) return;
    size_t i;
    json_t *r;
    json_array_foreach(rows, i, r) formatter_row(&f, r, NULL);
    formatter_flush(&f, header);
}

static int df_verbose(const json_t *df, const char *format)
{
    bool custom = format && *format;
    json_t *all = json_pack("{s:o, s:o, s:o, s:o}", "Images", df_image_rows(df, !custom),
                            "Containers", df_container_rows(df), "Volumes", df_volume_rows(df),
                            "BuildCache", df_cache_rows(df));
    int rc = 0;
    if (custom) {
        rc = run_template("df", format, all, NULL);
        json_decref(all);
        return rc;
    }
    json_t *h = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s}", "Repository", "REPOSITORY",
                          "Tag", "TAG", "ID", "IMAGE ID", "CreatedSince", "CREATED", "VirtualSize",
                          "SIZE", "SharedSize", "SHARED SIZE", "UniqueSize", "UNIQUE SIZE",
                          "Containers", "CONTAINERS");
    printf("Images space usage:\n\n");
    df_table("table "
             "{{.Repository}}\t{{.Tag}}\t{{.ID}}\t{{.CreatedSince}}\t{{.VirtualSize}}\t{{."
             "SharedSize}}\t{{.UniqueSize}}\t{{.Containers}}",
             json_object_get(all, "Images"), h);
    json_decref(h);
    h = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s}", "ID", "CONTAINER ID", "Image",
                  "IMAGE", "Command", "COMMAND", "LocalVolumes", "LOCAL VOLUMES", "Size", "SIZE",
                  "RunningFor", "CREATED", "Status", "STATUS", "Names", "NAMES");
    printf("\nContainers space usage:\n\n");
    df_table("table "
             "{{.ID}}\t{{.Image}}\t{{.Command}}\t{{.LocalVolumes}}\t{{.Size}}\t{{.RunningFor}}\t{{."
             "Status}}\t{{.Names}}",
             json_object_get(all, "Containers"), h);
    json_decref(h);
    h = json_pack("{s:s, s:s, s:s}", "Name", "VOLUME NAME", "Links", "LINKS", "Size", "SIZE");
    printf("\nLocal Volumes space usage:\n\n");
    df_table("table {{.Name}}\t{{.Links}}\t{{.Size}}", json_object_get(all, "Volumes"), h);
    json_decref(h);
    char total[32];
    json_t *cache = df_cache_row(df);
    snprintf(total, sizeof total, "%s", jstr(cache, "Size"));
    json_decref(cache);
    printf("\nBuild cache usage: %s\n\n", total);
    h = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s}", "ID", "CACHE ID", "CacheType",
                  "CACHE TYPE", "Size", "SIZE", "CreatedSince", "CREATED", "LastUsedSince",
                  "LAST USED", "UsageCount", "USAGE", "Shared", "SHARED");
    df_table("table "
             "{{.ID}}\t{{.CacheType}}\t{{.Size}}\t{{.CreatedSince}}\t{{.LastUsedSince}}\t{{."
             "UsageCount}}\t{{.Shared}}",
             json_object_get(all, "BuildCache"), h);
    json_decref(h);
    json_decref(all);
    return rc;
}

int run_df(client *c, const cmd_def *def, int argc, char **argv)
{
    char *format = NULL;
    bool verbose = false;
    flag flags[] = {
        {"format", 0, FLAG_STRING, &format, "Pretty-print images using a Go template", NULL, NULL},
        {"verbose", 'v', FLAG_BOOL, &verbose, "Show detailed information on space usage", NULL,
         NULL},
        {NULL, 0, 0, NULL, NULL, NULL, NULL}};
    char **pos = NULL;
    int rc;
    if (parse_cmd(def, flags, argc, argv, &pos, &rc) < 0) return free(format), rc;
    free(pos);
    json_t *df = NULL;
    if (client_json(c, "GET", "/system/df", NULL, &df) < 0) {
        free(format);
        return 1;
    }
    rc = verbose ? df_verbose(df, format) : df_summary(df, format);
    json_decref(df);
    free(format);
    return rc;
}

/* ---- events ---- */

static void event_time(const json_t *ev, char *out, size_t n)
{
    int64_t ns = jint(ev, "timeNano");
    if (!ns) ns = jint(ev, "time") * 1000000000LL;
    time_t t = (time_t)(ns / 1000000000LL);
    struct tm tm;
    localtime_r(&t, &tm);
    char base[32];
    strftime(base, sizeof base, "%Y-%m-%dT%H:%M:%S", &tm);
    long off = tm.tm_gmtoff;
    if (off == 0) {
        snprintf(out, n, "%s.%09lldZ", base, (long long)(ns % 1000000000LL));
    } else {
        long a = off < 0 ? -off : off;
        snprintf(out, n, "%s.%09lld%c%02ld:%02ld", base, (long long)(ns % 1000000000LL),
                 off < 0 ? '-' : '+', a / 3600, (a / 60) % 60);
    }
}

static void event_pretty(const json_t *ev)
{
    char ts[64];
    if (jint(ev, "timeNano") || jint(ev, "time")) {
        event_time(ev, ts, sizeof ts);
        printf("%s ", ts);
    }
    json_t *actor = json_object_get(ev, "Actor");
    printf("%s %s %s", jstr(ev, "Type") ? jstr(ev, "Type") : "",
           jstr(ev, "Action") ? jstr(ev, "Action") : "",
           jstr(actor, "ID") ? jstr(actor, "ID") : "");
    json_t *attrs = json_object_get(actor, "Attributes");
    if (json_object_size(attrs)) {
        size_t n = json_object_size(attrs), i = 0;
        const char **keys = xcalloc(n + 1, sizeof *keys);
        const char *k;
        json_t *v;
        json_object_foreach(attrs, k, v) keys[i++] = k;
        qsort(keys, n, sizeof *keys, (int (*)(const void *, const void *))strcmp);
        printf(" (");
        for (i = 0; i < n; i++)
            printf("%s%s=%s", i ? ", " : "", keys[i],
                   jstr(attrs, keys[i]) ? jstr(attrs, keys[i]) : "");
        printf(")");
        free(keys);
    }
    printf("\n");
    fflush(stdout);
}

/* The events.Message Go struct as a template sees it (field names). */
static json_t *event_struct(const json_t *ev)
{
    json_t *actor = json_object_get(ev, "Actor");
    json_t *attrs = json_object_get(actor, "Attributes");
    return json_pack("{s:s, s:s, s:s, s:s, s:s, s:{s:s, s:o}, s:s, s:I, s:I}", "Status",
                     jstr(ev, "status") ? jstr(ev, "status") : "", "ID",
                     jstr(ev, "id") ? jstr(ev, "id") : "", "From",
                     jstr(ev, "from") ? jstr(ev, "from") : "", "Type",
                     jstr(ev, "Type") ? jstr(ev, "Type") : "", "Action",
                     jstr(ev, "Action") ? jstr(ev, "Action") : "", "Actor", "ID",
                     jstr(actor, "ID") ? jstr(actor, "ID") : "", "Attributes",
                     attrs ? json_incref(attrs) : json_object(), "Scope",
                     jstr(ev, "scope") ? jstr(ev, "scope") : "", "Time",
                     (json_int_t)jint(ev, "time"), "TimeNano", (json_int_t)jint(ev, "timeNano"));
}

typedef struct events_ctx {
    sbuf pending;
    tmpl *t;
    int rc;
} events_ctx;

static void event_value(void *ctx, json_t *ev)
{
    events_ctx *e = ctx;
    if (!e->t) {
        event_pretty(ev);
        return;
    }
    json_t *st = event_struct(ev);
    tmpl_opts o = {.struct_name = "*events.Message", .json_self = ev, .hints = NULL};
    sbuf out = {0};
    char *err = NULL;
    if (tmpl_exec(e->t, st, &o, &out, &err) < 0) {
        errorf("%s", err);
        free(err);
        e->rc = 1;
    }
    sbuf_adds(&out, "\n");
    fwrite(out.data, 1, out.len, stdout);
    fflush(stdout);
    sbuf_free(&out);
    json_decref(st);
}

static bool events_chunk(void *ctx, const char *data, size_t n)
{
    events_ctx *e = ctx;
    sbuf_add(&e->pending, data, n);
    size_t used = json_stream_feed(e->pending.data, e->pending.len, event_value, e);
    memmove(e->pending.data, e->pending.data + used, e->pending.len - used);
    e->pending.len -= used;
    return e->rc == 0;
}

static tmpl *events_template(const char *format, int *rc)
{
    if (!format || !*format) return NULL;
    char *err = NULL;
    tmpl *t = tmpl_parse(!strcmp(format, "json") ? "{{json .}}" : format, &err);
    json_t *blank = json_object();
    json_t *empty = t ? event_struct(blank) : NULL;
    json_decref(blank);
    sbuf sink = {0};
    tmpl_opts o = {.struct_name = "*events.Message"};
    if (t && tmpl_exec(t, empty, &o, &sink, &err) < 0) {
        tmpl_free(t);
        t = NULL;
    }
    sbuf_free(&sink);
    json_decref(empty);
    if (!t) {
        errorf("Error parsing format: %s", err);
        free(err);
        *rc = 64;
    }
    return t;
}

static char *events_path(const char *since, const char *until, const strv *filters, int *rc)
{
    sbuf p = {0};
    sbuf_adds(&p, "/events");
    const char *names[2] = {"since", "until"};
    const char *vals[2] = {since, until};
    for (int i = 0; i < 2; i++) {
        if (!vals[i] || !*vals[i]) continue;
        char *ts = time_arg_to_api(vals[i]);
        if (!ts) {
            errorf("failed to parse value as time or duration: \"%s\"", vals[i]);
            sbuf_free(&p);
            *rc = 1;
            return NULL;
        }
        query_add(&p, names[i], ts);
        free(ts);
    }
    if (filters->n) {
        json_t *f = json_object();
        for (size_t i = 0; i < filters->n; i++) {
            char *k = xstrndup(filters->v[i], strcspn(filters->v[i], "="));
            json_t *m = json_object_get(f, k);
            if (!m) json_object_set_new(f, k, m = json_object());
            json_object_set_new(m, filters->v[i] + strlen(k) + 1, json_true());
            free(k);
        }
        char *s = json_dump_compact(f);
        query_add(&p, "filters", s);
        free(s);
        json_decref(f);
    }
    return sbuf_steal(&p);
}

int run_events(client *c, const cmd_def *def, int argc, char **argv)
{
    char *since = NULL, *until = NULL, *format = NULL;
    strv filters = {0};
    flag flags[] = {
        {"filter", 'f', FLAG_FILTER, &filters, "Filter output based on conditions provided", NULL,
         NULL},
        {"format", 0, FLAG_STRING, &format, "Format the output using the given Go template", NULL,
         NULL},
        {"since", 0, FLAG_STRING, &since, "Show all events created since timestamp", NULL, NULL},
        {"until", 0, FLAG_STRING, &until, "Stream events until this timestamp", NULL, NULL},
        {NULL, 0, 0, NULL, NULL, NULL, NULL}};
    char **pos = NULL;
    int rc = 0;
    events_ctx e = {0};
    char *path = NULL;
    if (parse_cmd(def, flags, argc, argv, &pos, &rc) < 0) goto out;
    e.t = events_template(format, &rc);
    if (rc) goto out;
    path = events_path(since, until, &filters, &rc);
    if (!path) goto out;
    req rq = {.method = "GET", .path = path, .body_fd = -1, .on_data = events_chunk, .ctx = &e};
    resp r;
    if (client_do(c, &rq, &r) < 0)
        rc = 1;
    else if (r.status >= 400) {
        print_daemon_error(&r);
        rc = 1;
    } else
        rc = e.rc;
    resp_free(&r);
out:
    free(pos);
    free(path);
    tmpl_free(e.t);
    sbuf_free(&e.pending);
    free(since);
    free(until);
    free(format);
    strv_free(&filters);
    return rc;
}
