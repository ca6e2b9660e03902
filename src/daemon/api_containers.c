/* api_containers.c: the /containers endpoints: create, list, inspect,
 * lifecycle (start, stop, restart, kill, pause, wait, delete), rename,
 * logs, attach, resize and prune. The work is in containers.c (records)
 * and lifecycle.c (processes); this file maps HTTP to them. */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/jsonutil.h"
#include "daemon/api.h"
#include "daemon/containers.h"
#include "daemon/events.h"
#include "daemon/lifecycle.h"
#include "daemon/logs.h"
#include "daemon/ocispec.h"
#include "image/ref.h"
#include "shim/shim.h"

#define ZERO_TIME "0001-01-01T00:00:00Z"

static container *get_ctr(req *r)
{
    berr e;
    container *c = ctr_get(req_param(r, 0), &e);
    if (!c) resp_berr(r, &e);
    return c;
}

/* ---- create ---- */

static json_t *arr_or_null(json_t *v)
{
    return json_is_array(v) && json_array_size(v) ? v : NULL;
}

/* Env merge: the container's entries replace the image's with the same key. */
static json_t *merge_env(const json_t *img, const json_t *mine)
{
    json_t *out = json_array();
    size_t i, k;
    json_t *v, *w;
    json_array_foreach(img, i, v)
    {
        const char *s = json_string_value(v);
        if (!s) continue;
        size_t kl = strcspn(s, "=");
        bool overridden = false;
        json_array_foreach(mine, k, w)
        {
            const char *t = json_string_value(w);
            if (t && strcspn(t, "=") == kl && !strncmp(s, t, kl)) overridden = true;
        }
        if (!overridden) json_array_append(out, v);
    }
    json_array_foreach(mine, i, v) if (json_is_string(v)) json_array_append(out, v);
    return out;
}

static void merge_obj(json_t *cfg, const json_t *icfg, const char *key)
{
    json_t *m = json_object();
    json_object_update(m, json_object_get(icfg, key));
    json_object_update(m, json_object_get(cfg, key));
    json_object_set_new(cfg, key, json_object_size(m) ? m : json_null());
    if (!json_object_size(m)) json_decref(m), json_object_set_new(cfg, key, json_null());
}

static void merge_str(json_t *cfg, const json_t *icfg, const char *key)
{
    const char *v = jstr(cfg, key);
    if ((!v || !*v) && jstr(icfg, key)) json_object_set(cfg, key, json_object_get(icfg, key));
}

/* Applies the image's config under the container's, as dockerd's merge. */
static void merge_image_config(json_t *cfg, const json_t *icfg)
{
    json_object_set_new(cfg, "Env",
                        merge_env(json_object_get(icfg, "Env"), json_object_get(cfg, "Env")));
    bool own_ep = json_is_array(json_object_get(cfg, "Entrypoint"));
    if (!own_ep) {
        json_object_set(cfg, "Entrypoint",
                        json_object_get(icfg, "Entrypoint") ? json_object_get(icfg, "Entrypoint")
                                                            : json_null());
        if (!arr_or_null(json_object_get(cfg, "Cmd")) && json_object_get(icfg, "Cmd"))
            json_object_set(cfg, "Cmd", json_object_get(icfg, "Cmd"));
    } else {
        json_t *ep = json_object_get(cfg, "Entrypoint");
        if (json_array_size(ep) == 1 &&
            !strcmp(json_string_value(json_array_get(ep, 0)) ?: "x", ""))
            json_object_set_new(cfg, "Entrypoint", json_null());
    }
    merge_str(cfg, icfg, "WorkingDir");
    merge_str(cfg, icfg, "User");
    merge_str(cfg, icfg, "StopSignal");
    merge_obj(cfg, icfg, "Labels");
    merge_obj(cfg, icfg, "ExposedPorts");
    merge_obj(cfg, icfg, "Volumes");
    if (!json_object_get(cfg, "Healthcheck") && json_object_get(icfg, "Healthcheck"))
        json_object_set(cfg, "Healthcheck", json_object_get(icfg, "Healthcheck"));
    if (!json_object_get(cfg, "Labels") || json_is_null(json_object_get(cfg, "Labels")))
        json_object_set_new(cfg, "Labels", json_object());
}

static int validate_host_config(json_t *hc, berr *e)
{
    static const char *const ints[] = {
        "Memory",    "MemorySwap", "MemoryReservation", "NanoCpus", "CpuShares",   "CpuQuota",
        "CpuPeriod", "PidsLimit",  "BlkioWeight",       "ShmSize",  "OomScoreAdj", NULL};
    for (const char *const *k = ints; *k; k++) {
        json_t *v = json_object_get(hc, *k);
        if (v && !json_is_integer(v) && !json_is_null(v))
            return berr_set(
                e, 400,
                "json: cannot unmarshal %s into Go struct field HostConfig.%s of type int64",
                json_is_string(v) ? "string" : "non-number", *k);
    }
    json_int_t mem = json_integer_value(json_object_get(hc, "Memory"));
    json_int_t swap = json_integer_value(json_object_get(hc, "MemorySwap"));
    if (mem < 0) return berr_set(e, 400, "invalid memory limit: must be positive");
    if (mem > 0 && mem < 6 * 1024 * 1024)
        return berr_set(e, 400, "Minimum memory limit allowed is 6MB");
    if (swap > 0 && mem > 0 && swap < mem)
        return berr_set(e, 400,
                        "Minimum memoryswap limit should be larger than memory limit, see usage");
    if (swap > 0 && mem == 0)
        return berr_set(
            e, 400,
            "You should always set the Memory limit when using Memoryswap limit, see usage");
    if (json_integer_value(json_object_get(hc, "NanoCpus")) < 0)
        return berr_set(e, 400, "Range of CPUs is from 0.01 to the number of CPUs available");
    if (json_integer_value(json_object_get(hc, "CpuShares")) < 0)
        return berr_set(e, 400, "invalid CPU shares: must be positive");
    const json_t *rp = json_object_get(hc, "RestartPolicy");
    const char *pol = jstr(rp, "Name");
    if (pol && *pol && strcmp(pol, "no") && strcmp(pol, "always") &&
        strcmp(pol, "unless-stopped") && strcmp(pol, "on-failure"))
        return berr_set(e, 400, "invalid restart policy '%s'", pol);
    if (pol && json_integer_value(json_object_get(rp, "MaximumRetryCount")) &&
        strcmp(pol, "on-failure"))
        return berr_set(e, 400, "maximum retry count cannot be used with restart policy '%s'", pol);
    if (json_is_true(json_object_get(hc, "AutoRemove")) && pol && *pol && strcmp(pol, "no"))
        return berr_set(e, 400, "can't create 'AutoRemove' container with restart policy");
    if (ocispec_check_devices(hc, e) < 0) return -1;
    const char *nm = jstr(hc, "NetworkMode");
    if (nm && *nm && strcmp(nm, "none") && strcmp(nm, "host") && strcmp(nm, "default"))
        return berr_set(e, 400,
                        "network mode %s is not supported yet: use none or host "
                        "(bridge networking is not implemented)",
                        nm);
    if (!nm || !*nm || !strcmp(nm, "default"))
        json_object_set_new(hc, "NetworkMode", json_string("none"));
    if (mem > 0 && swap == 0)
        json_object_set_new(hc, "MemorySwap", json_integer(2 * mem)); /* dockerd's default */
    if (!json_object_get(hc, "RestartPolicy") || json_is_null(json_object_get(hc, "RestartPolicy")))
        json_object_set_new(hc, "RestartPolicy",
                            json_pack("{s:s,s:i}", "Name", "no", "MaximumRetryCount", 0));
    json_t *lc = json_object_get(hc, "LogConfig");
    const char *lt = jstr(lc, "Type");
    if (lt && *lt && strcmp(lt, "json-file"))
        return berr_set(e, 400, "logging driver %s is not supported (json-file only)", lt);
    if (!lc || !lt || !*lt)
        json_object_set_new(hc, "LogConfig",
                            json_pack("{s:s,s:{}}", "Type", "json-file", "Config"));
    const char *ms = jstr(json_object_get(json_object_get(hc, "LogConfig"), "Config"), "max-size");
    if (ms && parse_size(ms) < 0) return berr_set(e, 400, "invalid max-size: %s", ms);
    return 0;
}

static json_t *initial_state(void)
{
    return json_pack("{s:s,s:b,s:b,s:b,s:b,s:b,s:i,s:i,s:s,s:s,s:s}", "Status", "created",
                     "Running", 0, "Paused", 0, "Restarting", 0, "OOMKilled", 0, "Dead", 0, "Pid",
                     0, "ExitCode", 0, "Error", "", "StartedAt", ZERO_TIME, "FinishedAt",
                     ZERO_TIME);
}

/* Path and Args from Entrypoint + Cmd; 400 when empty. */
static int set_command(json_t *j, const json_t *cfg, berr *e)
{
    json_t *all = json_array();
    if (json_is_array(json_object_get(cfg, "Entrypoint")))
        json_array_extend(all, json_object_get(cfg, "Entrypoint"));
    if (json_is_array(json_object_get(cfg, "Cmd")))
        json_array_extend(all, json_object_get(cfg, "Cmd"));
    if (json_array_size(all) == 0) {
        json_decref(all);
        return berr_set(e, 400, "No command specified");
    }
    json_object_set(j, "Path", json_array_get(all, 0));
    json_array_remove(all, 0);
    json_object_set_new(j, "Args", all);
    return 0;
}

/* An image's Config as inspect shows it, a copy. The last few are kept
 * (parsed from the config blob, ~0.1 ms a create otherwise): an image id
 * names its content, so an entry never goes stale, and a removed image's
 * id no longer resolves to reach here. */
#define CONFIG_CACHE 8
static json_t *image_config(const char *image_id, berr *e)
{
    static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
    static struct {
        char *id;
        json_t *cfg;
    } cache[CONFIG_CACHE];
    static unsigned next;
    json_t *r = NULL;
    pthread_mutex_lock(&mu);
    for (int i = 0; i < CONFIG_CACHE && !r; i++)
        if (cache[i].id && !strcmp(cache[i].id, image_id)) r = json_deep_copy(cache[i].cfg);
    pthread_mutex_unlock(&mu);
    if (r) return r;
    json_t *img = image_inspect(D.images, image_id, e);
    if (!img) return NULL;
    json_t *cfg = json_object_get(img, "Config");
    cfg = json_is_object(cfg) ? json_incref(cfg) : json_object();
    json_decref(img);
    r = json_deep_copy(cfg);
    pthread_mutex_lock(&mu);
    unsigned k = next++ % CONFIG_CACHE;
    free(cache[k].id), json_decref(cache[k].cfg);
    cache[k].id = xstrdup(image_id), cache[k].cfg = cfg;
    pthread_mutex_unlock(&mu);
    return r;
}

static json_t *build_record(json_t *body, const char *image_id, berr *e)
{
    json_t *cfg = json_deep_copy(body);
    json_t *hc = json_object_get(cfg, "HostConfig");
    hc = hc && json_is_object(hc) ? json_incref(hc) : json_object();
    json_object_del(cfg, "HostConfig");
    json_object_del(cfg, "NetworkingConfig");
    json_t *icfg = image_config(image_id, e);
    if (!icfg) {
        json_decref(cfg), json_decref(hc);
        return NULL;
    }
    merge_image_config(cfg, icfg);
    json_decref(icfg);
    const char *sig = jstr(cfg, "StopSignal");
    if (sig && *sig && lc_parse_signal(sig) < 0) {
        json_decref(cfg), json_decref(hc);
        berr_set(e, 400, "Invalid signal: %s", sig);
        return NULL;
    }
    char ts[64];
    fmt_rfc3339nano(now_ns(), ts, sizeof ts);
    json_t *j = json_pack("{s:s,s:s}", "Id", "", "Created", ts);
    if (set_command(j, cfg, e) < 0 || validate_host_config(hc, e) < 0) {
        json_decref(j), json_decref(cfg), json_decref(hc);
        return NULL;
    }
    json_object_set_new(j, "State", initial_state());
    json_object_set_new(j, "Image", json_string(image_id));
    json_object_set_new(j, "ResolvConfPath", json_string(""));
    json_object_set_new(j, "HostnamePath", json_string(""));
    json_object_set_new(j, "HostsPath", json_string(""));
    json_object_set_new(j, "LogPath", json_string(""));
    json_object_set_new(j, "Name", json_string(""));
    json_object_set_new(j, "RestartCount", json_integer(0));
    json_object_set_new(j, "Driver", json_string("overlay2"));
    json_object_set_new(j, "Platform", json_string("linux"));
    json_object_set_new(j, "MountLabel", json_string(""));
    json_object_set_new(j, "ProcessLabel", json_string(""));
    json_object_set_new(j, "AppArmorProfile", json_string(""));
    json_object_set_new(j, "ExecIDs", json_null());
    json_object_set_new(j, "HostConfig", hc);
    json_object_set_new(j, "Mounts", json_array());
    json_object_set_new(j, "Config", cfg);
    return j;
}

static void fill_record(container *c);

void h_container_create(req *r)
{
    json_t *body = req_json(r);
    if (!body) return;
    berr e;
    const char *image = jstr(body, "Image");
    char id[DIGEST_LEN + 1];
    if (!image || !*image) {
        json_decref(body);
        return resp_error(r, 400, "Config.Image is required");
    }
    if (image_resolve(D.images, image, id, &e) < 0) {
        if (e.status == 404) {
            ref rf;
            char full[1024];
            if (ref_parse(image, &rf, NULL) == 0)
                ref_familiar_string(&rf, full, sizeof full);
            else
                snprintf(full, sizeof full, "%s", image);
            resp_error(r, 404, "No such image: %s", full);
        } else {
            resp_berr(r, &e);
        }
        json_decref(body);
        return;
    }
    json_t *j = build_record(body, id, &e);
    json_decref(body);
    if (!j) return resp_berr(r, &e);
    json_t *warnings = ocispec_discard_unsupported(json_object_get(j, "HostConfig"), &e);
    if (!warnings) {
        json_decref(j);
        return resp_berr(r, &e);
    }
    const char *name = req_query(r, "name");
    if (name && *name)
        json_object_set_new(j, "Name", json_string(name));
    else
        json_object_del(j, "Name");
    bool autorm = json_is_true(json_object_get(json_object_get(j, "HostConfig"), "AutoRemove"));
    char *key = autorm ? lc_root_key(id) : NULL; /* a kept root of its layers (warm.h) */
    container *c = ctr_add(j, fill_record, key, &e);
    free(key);
    if (!c) {
        json_decref(j);
        json_decref(warnings);
        return resp_berr(r, &e);
    }
    lc_event(c, "create", NULL);
    resp_json(r, 201, json_pack("{s:s,s:o}", "Id", c->id, "Warnings", warnings));
    ctr_put(c);
}

/* The parts of a new record that need its id (ctr_lock held). */
static void fill_record(container *c)
{
    json_t *cfg = json_object_get(c->j, "Config");
    const char *uh = jstr(cfg, "Hostname");
    const char *nmode = jstr(json_object_get(c->j, "HostConfig"), "NetworkMode");
    char hostbuf[256] = "";
    if ((!uh || !*uh) && nmode && !strcmp(nmode, "host") &&
        gethostname(hostbuf, sizeof hostbuf - 1) == 0) {
        json_object_set_new(cfg, "Hostname",
                            json_string(hostbuf)); /* as dockerd with --network host */
    } else if (!uh || !*uh) {
        char short_id[13];
        snprintf(short_id, sizeof short_id, "%.12s", c->id);
        json_object_set_new(cfg, "Hostname", json_string(short_id));
    }
    /* --rm: in the exec root, a tmpfs, like everything of it that is not
     * its root's upper layer or its log: gone with it, never on a disk */
    bool rm = json_is_true(json_object_get(json_object_get(c->j, "HostConfig"), "AutoRemove"));
    char *dir = rm ? ctr_exec_dir(c->id) : ctr_dir(c->id);
    char *p;
    p = xasprintf("%s/resolv.conf", dir),
    json_object_set_new(c->j, "ResolvConfPath", json_string(p)), free(p);
    p = xasprintf("%s/hostname", dir), json_object_set_new(c->j, "HostnamePath", json_string(p)),
    free(p);
    p = xasprintf("%s/hosts", dir), json_object_set_new(c->j, "HostsPath", json_string(p)), free(p);
    free(dir);
}

/* ---- list ---- */

static char *command_line(const json_t *j)
{
    sbuf b = {0};
    sbuf_adds(&b, jstr(j, "Path") ? jstr(j, "Path") : "");
    size_t i;
    json_t *v;
    json_array_foreach(json_object_get(j, "Args"), i, v)
        sbuf_printf(&b, " %s", json_string_value(v));
    return sbuf_steal(&b);
}

static char *status_text(json_t *st)
{
    const char *s = jstr(st, "Status");
    char d[64];
    int64_t now = now_ns();
    if (!strcmp(s, "running") || !strcmp(s, "paused")) {
        human_duration((now - parse_rfc3339(jstr(st, "StartedAt"))) / 1000000000LL, d, sizeof d);
        const char *h = jstr(json_object_get(st, "Health"), "Status");
        if (!strcmp(s, "paused")) return xasprintf("Up %s (Paused)", d);
        if (h && !strcmp(h, "starting")) return xasprintf("Up %s (health: starting)", d);
        if (h) return xasprintf("Up %s (%s)", d, h);
        return xasprintf("Up %s", d);
    }
    if (!strcmp(s, "restarting")) {
        human_duration((now - parse_rfc3339(jstr(st, "FinishedAt"))) / 1000000000LL, d, sizeof d);
        return xasprintf("Restarting (%lld) %s ago",
                         (long long)json_integer_value(json_object_get(st, "ExitCode")), d);
    }
    if (!strcmp(s, "exited")) {
        human_duration((now - parse_rfc3339(jstr(st, "FinishedAt"))) / 1000000000LL, d, sizeof d);
        return xasprintf("Exited (%lld) %s ago",
                         (long long)json_integer_value(json_object_get(st, "ExitCode")), d);
    }
    if (!strcmp(s, "dead")) return xstrdup("Dead");
    return xstrdup("Created");
}

static json_t *list_entry(container *c, bool size)
{
    json_t *j = c->j, *cfg = json_object_get(j, "Config"), *st = ctr_state(c);
    char *cmd = command_line(j), *status = status_text(st);
    json_t *e = json_pack(
        "{s:s,s:[s],s:s,s:s,s:s,s:I,s:[],s:O,s:s,s:s,s:{s:s},s:{s:{}},s:[]}", "Id", c->id, "Names",
        jstr(j, "Name"), "Image", jstr(cfg, "Image") ? jstr(cfg, "Image") : "", "ImageID",
        jstr(j, "Image"), "Command", cmd, "Created",
        (json_int_t)(parse_rfc3339(jstr(j, "Created")) / 1000000000LL), "Ports", "Labels",
        json_object_get(cfg, "Labels"), "State", jstr(st, "Status"), "Status", status, "HostConfig",
        "NetworkMode", jstr(json_object_get(j, "HostConfig"), "NetworkMode"), "NetworkSettings",
        "Networks", "Mounts");
    free(cmd), free(status);
    if (size) {
        char *dir = ctr_dir(c->id), *up = xasprintf("%s/upper", dir);
        json_object_set_new(e, "SizeRw", json_integer(dir_size(up)));
        json_object_set_new(e, "SizeRootFs", json_integer(dir_size(up)));
        free(dir), free(up);
    }
    return e;
}

/* GET /system/df's Containers: every container with its sizes. */
json_t *containers_df(void)
{
    size_t n;
    container **cs = ctr_all(&n);
    json_t *out = json_array();
    ctr_lock();
    for (size_t i = 0; i < n; i++) json_array_append_new(out, list_entry(cs[i], true));
    ctr_unlock();
    for (size_t i = 0; i < n; i++) ctr_put(cs[i]);
    free(cs);
    return out;
}

static bool match_filters(container *c, const json_t *f)
{
    const json_t *j = c->j, *st = ctr_state(c);
    const char *name = jstr(j, "Name");
    json_t *v;
    size_t i;
    if (!filters_match(f, "status", jstr(st, "Status"))) return false;
    if (filters_get(f, "id")) {
        bool ok = false;
        json_array_foreach(filters_get(f, "id"), i, v) ok |=
            str_starts(c->id, json_string_value(v));
        if (!ok) return false;
    }
    if (filters_get(f, "name")) {
        bool ok = false;
        json_array_foreach(filters_get(f, "name"), i, v) ok |=
            strstr(name, json_string_value(v)) != NULL;
        if (!ok) return false;
    }
    if (!filters_match_labels(f, "label", json_object_get(json_object_get(j, "Config"), "Labels")))
        return false;
    if (filters_get(f, "exited")) {
        char code[16];
        snprintf(code, sizeof code, "%lld",
                 (long long)json_integer_value(json_object_get(st, "ExitCode")));
        if (strcmp(jstr(st, "Status"), "exited") || !filters_match(f, "exited", code)) return false;
    }
    if (filters_get(f, "ancestor")) {
        /* values were resolved to image IDs before ctr_lock (lock order) */
        bool ok = false;
        const char *img = jstr(json_object_get(j, "Config"), "Image");
        json_array_foreach(filters_get(f, "ancestor"), i, v)
        {
            const char *a = json_string_value(v);
            ok |= !strcmp(a, jstr(j, "Image")) || (img && !strcmp(img, a));
        }
        if (!ok) return false;
    }
    return true;
}

static int cmp_created(const void *a, const void *b)
{
    const char *x = jstr((*(container *const *)a)->j, "Created");
    const char *y = jstr((*(container *const *)b)->j, "Created");
    int64_t tx = parse_rfc3339(x ? x : ""), ty = parse_rfc3339(y ? y : "");
    return tx < ty ? 1 : tx > ty ? -1 : 0;
}

void h_containers_list(req *r)
{
    static const char *const keys[] = {
        "ancestor", "before", "expose",  "exited",  "health", "id",     "isolation", "is-task",
        "label",    "name",   "network", "publish", "since",  "status", "volume",    NULL};
    berr e;
    json_t *f = filters_parse(req_query(r, "filters"), keys, &e);
    if (!f) return resp_berr(r, &e);
    static const char *const states[] = {"created", "restarting", "running", "removing",
                                         "paused",  "exited",     "dead",    NULL};
    size_t k0;
    json_t *sv;
    json_array_foreach(filters_get(f, "status"), k0, sv)
    {
        bool ok = false;
        for (const char *const *st = states; *st; st++) ok |= !strcmp(*st, json_string_value(sv));
        if (!ok) {
            resp_error(r, 400, "Invalid filter 'status=%s'", json_string_value(sv));
            json_decref(f);
            return;
        }
    }
    bool all = req_query_bool(r, "all", false), size = req_query_bool(r, "size", false);
    const char *lim = req_query(r, "limit");
    long limit = lim && *lim ? atol(lim) : -1;
    if (limit > 0) all = true;
    json_t *anc = filters_get(f, "ancestor");
    size_t k, cnt = json_array_size(anc);
    for (k = 0; k < cnt; k++) {
        char id[DIGEST_LEN + 1];
        if (image_resolve(D.images, json_string_value(json_array_get(anc, k)), id, NULL) == 0)
            json_array_append_new(anc, json_string(id));
    }
    size_t n;
    container **cs = ctr_all(&n);
    qsort(cs, n, sizeof *cs, cmp_created);
    json_t *out = json_array();
    ctr_lock();
    for (size_t i = 0; i < n; i++) {
        if (limit > 0 && (long)json_array_size(out) >= limit) break;
        bool running = ctr_running(cs[i]) || !strcmp(ctr_status(cs[i]), "restarting");
        if (!all && !running && !filters_get(f, "status") && !filters_get(f, "exited")) continue;
        if (match_filters(cs[i], f)) json_array_append_new(out, list_entry(cs[i], size));
    }
    ctr_unlock();
    for (size_t i = 0; i < n; i++) ctr_put(cs[i]);
    free(cs);
    json_decref(f);
    resp_json(r, 200, out);
}

/* ---- inspect ---- */

void h_container_inspect(req *r)
{
    container *c = get_ctr(r);
    if (!c) return;
    ctr_lock();
    json_t *j = json_deep_copy(c->j);
    ctr_unlock();
    char *dir = ctr_dir(c->id), *edir = ctr_exec_dir(c->id);
    char **dirs = NULL;
    int n = image_layer_dirs(D.images, jstr(j, "Image"), &dirs, NULL);
    sbuf lower = {0};
    for (int i = n - 1; i >= 0; i--)
        sbuf_printf(&lower, "%s%s", i == n - 1 ? "" : ":", dirs[i]), free(dirs[i]);
    free(dirs);
    json_t *gd = json_pack("{s:{s:s,s:s+,s:s+,s:s+},s:s}", "Data", "LowerDir",
                           lower.data ? lower.data : "", "MergedDir", edir, "/rootfs", "UpperDir",
                           dir, "/upper", "WorkDir", dir, "/work", "Name", "overlay2");
    sbuf_free(&lower);
    json_object_set_new(j, "GraphDriver", gd);
    const char *sk = jstr(json_object_get(j, "NetworkSettings"), "SandboxKey");
    char *sandbox = xstrdup(sk ? sk : "");
    json_object_set_new(j, "NetworkSettings",
                        json_pack("{s:s,s:s,s:b,s:i,s:{},s:s,s:{}}", "Bridge", "", "SandboxID", "",
                                  "HairpinMode", 0, "LinkLocalIPv6PrefixLen", 0, "Ports",
                                  "SandboxKey", sandbox, "Networks"));
    if (req_query_bool(r, "size", false)) {
        char *up = xasprintf("%s/upper", dir);
        json_object_set_new(j, "SizeRw", json_integer(dir_size(up)));
        free(up);
    }
    free(dir), free(edir), free(sandbox);
    resp_json(r, 200, j);
    ctr_put(c);
}

/* ---- lifecycle ---- */

static void lifecycle_result(req *r, int rc, berr *e)
{
    if (rc < 0 && e->status == 404 && strstr(e->msg, "exec")) e->status = 400; /* as dockerd */
    if (rc < 0)
        resp_berr(r, e);
    else
        resp_empty(r, rc == 1 ? 304 : 204);
}

void h_container_start(req *r)
{
    container *c = get_ctr(r);
    if (!c) return;
    berr e;
    lifecycle_result(r, lc_start(c, &e), &e);
    ctr_put(c);
}

static int query_timeout(req *r)
{
    const char *t = req_query(r, "t");
    return t && *t ? atoi(t) : -1;
}

void h_container_stop(req *r)
{
    container *c = get_ctr(r);
    if (!c) return;
    berr e;
    const char *sig = req_query(r, "signal");
    if (sig && *sig && lc_parse_signal(sig) < 0) {
        ctr_put(c);
        return resp_error(r, 400, "Invalid signal: %s", sig);
    }
    lifecycle_result(r, lc_stop(c, query_timeout(r), sig && *sig ? sig : NULL, &e), &e);
    ctr_put(c);
}

void h_container_restart(req *r)
{
    container *c = get_ctr(r);
    if (!c) return;
    berr e;
    int rc = lc_stop(c, query_timeout(r), NULL, &e);
    if (rc >= 0) rc = lc_start(c, &e);
    if (rc >= 0) lc_event(c, "restart", NULL);
    lifecycle_result(r, rc < 0 ? rc : 0, &e);
    ctr_put(c);
}

void h_container_kill(req *r)
{
    container *c = get_ctr(r);
    if (!c) return;
    const char *s = req_query(r, "signal");
    int sig = s && *s ? lc_parse_signal(s) : SIGKILL;
    berr e;
    if (sig < 0)
        resp_error(r, 400, "Invalid signal: %s", s);
    else
        lifecycle_result(r, lc_kill(c, sig, &e), &e);
    ctr_put(c);
}

void h_container_pause(req *r)
{
    container *c = get_ctr(r);
    if (!c) return;
    berr e;
    lifecycle_result(r, lc_pause(c, true, &e), &e);
    ctr_put(c);
}

void h_container_unpause(req *r)
{
    container *c = get_ctr(r);
    if (!c) return;
    berr e;
    lifecycle_result(r, lc_pause(c, false, &e), &e);
    ctr_put(c);
}

void h_container_delete(req *r)
{
    container *c = get_ctr(r);
    if (!c) return;
    berr e;
    lifecycle_result(
        r, lc_remove(c, req_query_bool(r, "force", false), req_query_bool(r, "v", false), &e), &e);
    ctr_put(c);
}

void h_container_rename(req *r)
{
    container *c = get_ctr(r);
    if (!c) return;
    const char *name = req_query(r, "name");
    berr e;
    ctr_lock();
    char *old = xstrdup(jstr(c->j, "Name"));
    ctr_unlock();
    if (!name || !*name)
        resp_error(r, 400, "Neither old nor new names may be empty");
    else if (ctr_rename(c, name, &e) < 0)
        resp_berr(r, &e);
    else {
        lc_event(c, "rename", json_pack("{s:s}", "oldName", old));
        resp_empty(r, 204);
    }
    free(old);
    ctr_put(c);
}

/* ---- wait ---- */

struct wait_arg {
    container *c;
    int mode; /* 0 not-running, 1 next-exit, 2 removed */
    bool was_running;
    char *started;
    int start_errors;
};

static void wait_free(void *p)
{
    struct wait_arg *a = p;
    ctr_put(a->c);
    free(a->started);
    free(a);
}

static bool wait_done(struct wait_arg *a)
{
    container *c = a->c;
    if (a->mode == 2) return c->removed;
    if (c->removed) return true;
    /* the exit is recorded before the shim's own cleanup ends (c->waiter) */
    bool running = ctr_running(c) || !strcmp(ctr_status(c), "restarting");
    if (a->mode == 0) return !running;
    const char *st = jstr(ctr_state(c), "StartedAt");
    bool restarted = st && a->started && strcmp(st, a->started);
    return !running && (a->was_running || restarted || strcmp(ctr_status(c), "created") ||
                        c->start_errors != a->start_errors);
}

static void wait_run(stream *st, void *p)
{
    struct wait_arg *a = p;
    ctr_lock();
    while (!wait_done(a)) {
        struct timespec dl;
        clock_gettime(CLOCK_REALTIME, &dl);
        dl.tv_sec += 1;
        pthread_cond_timedwait(&a->c->changed, &ctr_mutex, &dl);
        if (stream_client_gone(st)) {
            ctr_unlock();
            return;
        }
    }
    json_int_t code = json_integer_value(json_object_get(ctr_state(a->c), "ExitCode"));
    ctr_unlock();
    /* a start error was already reported by the start request itself */
    stream_json(st, json_pack("{s:I,s:n}", "StatusCode", code, "Error"));
}

void h_container_wait(req *r)
{
    container *c = get_ctr(r);
    if (!c) return;
    const char *cond = req_query(r, "condition");
    struct wait_arg *a = xcalloc(1, sizeof *a);
    a->c = c;
    if (!cond || !*cond || !strcmp(cond, "not-running"))
        a->mode = 0;
    else if (!strcmp(cond, "next-exit"))
        a->mode = 1;
    else if (!strcmp(cond, "removed"))
        a->mode = 2;
    else {
        wait_free(a);
        return resp_error(r, 400, "invalid condition: \"%s\"", cond);
    }
    ctr_lock();
    a->was_running = ctr_running(c);
    a->start_errors = c->start_errors;
    const char *s = jstr(ctr_state(c), "StartedAt");
    a->started = xstrdup(s ? s : "");
    ctr_unlock();
    resp_stream(r, 200, "application/json", wait_run, a, wait_free);
}

/* ---- logs ---- */

struct logs_arg {
    container *c;
    logs_opts o;
    bool follow;
    char *path;
};

static void logs_free(void *p)
{
    struct logs_arg *a = p;
    ctr_put(a->c);
    free(a->path);
    free(a);
}

static int stream_sink(void *arg, const void *p, size_t n)
{
    return stream_write(arg, p, n);
}

static void logs_run(stream *st, void *p)
{
    struct logs_arg *a = p;
    off_t off = 0;
    if (logs_write(a->path, &a->o, stream_sink, st, &off) < 0 || !a->follow) return;
    for (;;) {
        ctr_lock();
        bool running = ctr_running(a->c) || a->c->waiter || !strcmp(ctr_status(a->c), "restarting");
        bool removed = a->c->removed;
        ctr_unlock();
        if (logs_follow(a->path, &off, &a->o, stream_sink, st) < 0) return;
        if (!running || removed) return;
        if (a->o.until && now_ns() > a->o.until) return;
        if (stream_client_gone(st)) return;
        struct timespec ts = {0, 50 * 1000000};
        nanosleep(&ts, NULL);
    }
}

void h_container_logs(req *r)
{
    container *c = get_ctr(r);
    if (!c) return;
    struct logs_arg *a = xcalloc(1, sizeof *a);
    a->c = c;
    a->o.out = req_query_bool(r, "stdout", false);
    a->o.err = req_query_bool(r, "stderr", false);
    a->o.timestamps = req_query_bool(r, "timestamps", false);
    a->follow = req_query_bool(r, "follow", false);
    a->o.tail = -1;
    const char *tail = req_query(r, "tail"), *since = req_query(r, "since"),
               *until = req_query(r, "until");
    if (tail && *tail && strcmp(tail, "all")) a->o.tail = atol(tail);
    int64_t now = now_ns();
    if (since && *since && strcmp(since, "0")) a->o.since = parse_time_arg(since, now);
    if (until && *until && strcmp(until, "0")) a->o.until = parse_time_arg(until, now);
    ctr_lock();
    a->o.tty = json_is_true(json_object_get(json_object_get(c->j, "Config"), "Tty"));
    a->path = xstrdup(jstr(c->j, "LogPath") ? jstr(c->j, "LogPath") : "");
    ctr_unlock();
    if (!a->o.out && !a->o.err) {
        logs_free(a);
        return resp_error(r, 400, "You must choose at least one stream");
    }
    if (a->o.since < 0 || a->o.until < 0) {
        logs_free(a);
        return resp_error(r, 400, "invalid value for since or until");
    }
    if (!*a->path) {
        char *dir = ctr_dir(c->id);
        free(a->path);
        a->path = xasprintf("%s/%s-json.log", dir, c->id);
        free(dir);
    }
    resp_stream(r, 200, "application/vnd.docker.raw-stream", logs_run, a, logs_free);
}

/* ---- attach ---- */

struct attach_arg {
    container *c;
    bool in, out, err, tty, logs, stream;
    bool registered; /* waits for the next start's stream */
    int start_errors;
};

static void attach_free(void *p)
{
    struct attach_arg *a = p;
    ctr_lock();
    if (a->registered && a->c->pa_waiting) { /* never picked up */
        a->c->pa_waiting = false;
        if (a->c->pa_fd >= 0) close(a->c->pa_fd), a->c->pa_fd = -1;
    }
    ctr_unlock();
    ctr_put(a->c);
    free(a);
}

static int fd_sink(void *arg, const void *p, size_t n)
{
    return write_all(*(int *)arg, p, n) < 0 ? -1 : 0;
}

/* Copies both ways until the container side closes. */
void api_splice(int client, int ctr_fd)
{
    char buf[32768];
    bool client_open = true;
    for (;;) {
        struct pollfd pf[2] = {{.fd = ctr_fd, .events = POLLIN},
                               {.fd = client, .events = client_open ? POLLIN : 0}};
        if (poll(pf, 2, -1) < 0) {
            if (errno == EINTR) continue;
            return;
        }
        if (pf[1].revents & (POLLHUP | POLLERR)) return; /* client gone, or daemon shutdown */
        if (pf[0].revents) {
            ssize_t n = read(ctr_fd, buf, sizeof buf);
            if (n <= 0 || write_all(client, buf, (size_t)n) < 0) return;
        }
        if (client_open && pf[1].revents) {
            ssize_t n = read(client, buf, sizeof buf);
            if (n <= 0) {
                client_open = false;
                shutdown(ctr_fd, SHUT_WR);
            } else if (write_all(ctr_fd, buf, (size_t)n) < 0) {
                client_open = false;
            }
        }
    }
}

static bool sock_gone(int sock)
{
    struct pollfd pf = {.fd = sock, .events = POLLRDHUP};
    return poll(&pf, 1, 0) > 0 && (pf.revents & (POLLHUP | POLLERR));
}

/* An attach before start (docker run, start -a): register, and take over
 * the stream the next start opens for us. Returns the fd or -1. */
/* Registers an attach to a container that is not running (called before
 * the 101 goes out, so a start that follows at once finds it). With ctr_lock. */
static void register_pending(struct attach_arg *a)
{
    container *c = a->c;
    if (ctr_running(c) || c->pa_waiting) return;
    c->pa_waiting = a->registered = true;
    c->pa_in = a->in, c->pa_out = a->out, c->pa_err = a->err;
    a->start_errors = c->start_errors;
}

static int wait_for_start(struct attach_arg *a, int sock)
{
    container *c = a->c;
    int fd = -1;
    ctr_lock();
    if (!a->registered) {
        ctr_unlock();
        return -1;
    }
    int errs = a->start_errors;
    while (c->pa_fd < 0 && !c->removed && !ctr_running(c) && c->start_errors == errs) {
        struct timespec dl;
        clock_gettime(CLOCK_REALTIME, &dl);
        dl.tv_sec += 1;
        pthread_cond_timedwait(&c->changed, &ctr_mutex, &dl);
        if (sock_gone(sock)) break;
    }
    fd = c->pa_fd;
    c->pa_fd = -1;
    c->pa_waiting = false;
    a->registered = false;
    ctr_unlock();
    return fd;
}

static void attach_run(int sock, void *p)
{
    struct attach_arg *a = p;
    if (a->logs) {
        logs_opts o = {.out = a->out, .err = a->err, .tty = a->tty, .tail = -1};
        ctr_lock();
        char *path = xstrdup(jstr(a->c->j, "LogPath") ? jstr(a->c->j, "LogPath") : "");
        ctr_unlock();
        if (*path) logs_write(path, &o, fd_sink, &sock, NULL);
        free(path);
    }
    if (!a->stream) return;
    int fd = wait_for_start(a, sock);
    char *edir = ctr_exec_dir(a->c->id);
    berr e = {0};
    if (fd < 0) fd = shim_attach(edir, a->in, a->out, a->err, a->tty, &e);
    free(edir);
    if (fd < 0) {
        log_debug("attach %.12s: %s", a->c->id, e.msg);
        return;
    }
    api_splice(sock, fd);
    close(fd);
}

void h_container_attach(req *r)
{
    container *c = get_ctr(r);
    if (!c) return;
    struct attach_arg *a = xcalloc(1, sizeof *a);
    a->c = c;
    a->in = req_query_bool(r, "stdin", false);
    a->out = req_query_bool(r, "stdout", false);
    a->err = req_query_bool(r, "stderr", false);
    a->logs = req_query_bool(r, "logs", false);
    a->stream = req_query_bool(r, "stream", false);
    ctr_lock();
    a->tty = json_is_true(json_object_get(json_object_get(c->j, "Config"), "Tty"));
    bool paused = !strcmp(ctr_status(c), "paused");
    if (a->stream && !paused) register_pending(a);
    ctr_unlock();
    if (paused) {
        attach_free(a);
        return resp_error(r, 409, "You cannot attach to a paused container, unpause it first");
    }
    lc_event(c, "attach", NULL);
    resp_hijack(r,
                a->tty ? "application/vnd.docker.raw-stream" : "application/vnd.docker.raw-stream",
                attach_run, a, attach_free);
}

void h_container_resize(req *r)
{
    container *c = get_ctr(r);
    if (!c) return;
    const char *h = req_query(r, "h"), *w = req_query(r, "w");
    berr e;
    char *edir = ctr_exec_dir(c->id);
    ctr_lock();
    bool running = ctr_running(c);
    ctr_unlock();
    if (!h || !w || atoi(h) < 0 || atoi(w) < 0)
        resp_error(r, 400, "invalid resize parameters");
    else if (!running)
        resp_error(r, 409, "Container %s is not running", c->id);
    else if (shim_resize(edir, atoi(h), atoi(w), &e) < 0)
        resp_berr(r, &e);
    else
        resp_empty(r, 200);
    free(edir);
    ctr_put(c);
}

/* ---- prune ---- */

void h_containers_prune(req *r)
{
    static const char *const keys[] = {"until", "label", "label!", NULL};
    berr e;
    json_t *f = filters_parse(req_query(r, "filters"), keys, &e);
    if (!f) return resp_berr(r, &e);
    size_t n;
    container **cs = ctr_all(&n);
    json_t *deleted = json_array();
    int64_t reclaimed = 0;
    int64_t until = 0;
    json_t *u = filters_get(f, "until");
    if (u) until = parse_time_arg(json_string_value(json_array_get(u, 0)), now_ns());
    for (size_t i = 0; i < n; i++) {
        container *c = cs[i];
        ctr_lock();
        bool running = ctr_running(c) || !strcmp(ctr_status(c), "restarting");
        bool ok = !running &&
                  filters_match_labels(f, "label",
                                       json_object_get(json_object_get(c->j, "Config"), "Labels"));
        if (until > 0 && parse_rfc3339(jstr(c->j, "Created")) > until) ok = false;
        ctr_unlock();
        if (ok) {
            char *dir = ctr_dir(c->id), *up = xasprintf("%s/upper", dir);
            int64_t sz = dir_size(up);
            free(dir), free(up);
            if (lc_remove(c, false, false, &e) == 0) {
                json_array_append_new(deleted, json_string(c->id));
                reclaimed += sz;
            }
        }
        ctr_put(c);
    }
    free(cs);
    json_decref(f);
    char rec[32];
    snprintf(rec, sizeof rec, "%lld", (long long)reclaimed);
    events_publish("container", "prune", "", json_pack("{s:s}", "reclaimed", rec));
    resp_json(r, 200,
              json_pack("{s:o,s:I}", "ContainersDeleted",
                        json_array_size(deleted) ? deleted : (json_decref(deleted), json_null()),
                        "SpaceReclaimed", (json_int_t)reclaimed));
}
