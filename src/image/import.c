/* import.c: `docker import` (POST /images/create?fromSrc=-). Reads a rootfs
 * tarball (any compression) into a verified layer blob and an unpacked
 * layer, applies the --change instructions (a small Dockerfile subset:
 * CMD, ENTRYPOINT, ENV, EXPOSE, LABEL, USER, VOLUME, WORKDIR, STOPSIGNAL,
 * ONBUILD, HEALTHCHECK) to an empty container config and writes the image
 * config the way docker does: top-level keys sorted (Image.MarshalJSON),
 * container config keys in Go struct order, Go's HTML-safe escaping. */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
#include <unistd.h>

#include "internal.h"
#include "tarx.h"

/* The container config being built; NULL json members are Go nils. */
typedef struct runcfg {
    char *user, *workdir, *stopsignal;
    json_t *exposed, *env, *cmd, *health, *volumes, *entrypoint, *onbuild, *labels;
    bool cmd_set;
} runcfg;

static void runcfg_free(runcfg *c)
{
    free(c->user);
    free(c->workdir);
    free(c->stopsignal);
    json_t *js[] = {c->exposed, c->env,        c->cmd,     c->health,
                    c->volumes, c->entrypoint, c->onbuild, c->labels};
    for (size_t i = 0; i < sizeof js / sizeof *js; i++) json_decref(js[i]);
}

static json_t *or_null(json_t *j)
{
    return j ? json_incref(j) : json_null();
}

/* Go's container.Config field order and omitempty rules. */
static json_t *runcfg_json(const runcfg *c)
{
    json_t *j =
        json_pack("{s:s, s:s, s:s, s:b, s:b, s:b}", "Hostname", "", "Domainname", "", "User",
                  c->user ? c->user : "", "AttachStdin", 0, "AttachStdout", 0, "AttachStderr", 0);
    if (c->exposed) json_object_set(j, "ExposedPorts", c->exposed);
    json_object_set_new(j, "Tty", json_false());
    json_object_set_new(j, "OpenStdin", json_false());
    json_object_set_new(j, "StdinOnce", json_false());
    json_object_set_new(j, "Env", or_null(c->env));
    json_object_set_new(j, "Cmd", or_null(c->cmd));
    if (c->health) json_object_set(j, "Healthcheck", c->health);
    json_object_set_new(j, "Image", json_string(""));
    json_object_set_new(j, "Volumes", or_null(c->volumes));
    json_object_set_new(j, "WorkingDir", json_string(c->workdir ? c->workdir : ""));
    json_object_set_new(j, "Entrypoint", or_null(c->entrypoint));
    json_object_set_new(j, "OnBuild", or_null(c->onbuild));
    json_object_set_new(j, "Labels", or_null(c->labels));
    if (c->stopsignal) json_object_set_new(j, "StopSignal", json_string(c->stopsignal));
    return j;
}

/* ---- word processing as docker's shell lexer does it (subset) ---- */
static const char *env_lookup(const runcfg *c, const char *name, size_t n)
{
    size_t i;
    json_t *v;
    json_array_foreach(c->env, i, v)
    {
        const char *s = json_string_value(v);
        if (!strncmp(s, name, n) && s[n] == '=') return s + n + 1;
    }
    return "";
}

static const char *expand_var(const runcfg *c, const char *p, sbuf *out)
{
    bool brace = p[1] == '{';
    const char *start = p + 1 + brace, *q = start;
    while (isalnum((unsigned char)*q) || *q == '_') q++;
    if (q == start || (brace && *q != '}')) {
        sbuf_add(out, "$", 1);
        return p + 1;
    }
    sbuf_adds(out, env_lookup(c, start, (size_t)(q - start)));
    return q + brace;
}

/* Processes one word starting at *pp (quotes, escapes, $VAR); stops at
 * unquoted whitespace when split is set. Returns false at end of input. */
static bool next_word(const runcfg *c, const char **pp, bool split, sbuf *out)
{
    const char *p = *pp;
    while (split && isspace((unsigned char)*p)) p++;
    if (!*p) return false;
    char quote = 0;
    while (*p && (quote || !split || !isspace((unsigned char)*p))) {
        if (quote != '\'' && *p == '\\' && p[1]) {
            sbuf_add(out, p + 1, 1);
            p += 2;
        } else if (!quote && (*p == '\'' || *p == '"')) {
            quote = *p++;
        } else if (quote && *p == quote) {
            quote = 0;
            p++;
        } else if (quote != '\'' && *p == '$') {
            p = expand_var(c, p, out);
        } else {
            sbuf_add(out, p++, 1);
        }
    }
    if (!out->data) sbuf_add(out, "", 0);
    *pp = p;
    return true;
}

static json_t *words(const runcfg *c, const char *s)
{
    json_t *a = json_array();
    sbuf w = {0};
    while (next_word(c, &s, true, &w)) {
        json_array_append_new(a, json_string(w.data));
        sbuf_free(&w);
    }
    return a;
}

static char *one_word(const runcfg *c, const char *s)
{
    sbuf w = {0};
    while (isspace((unsigned char)*s)) s++;
    next_word(c, &s, false, &w);
    char *r = sbuf_steal(&w);
    for (size_t n = strlen(r); n && isspace((unsigned char)r[n - 1]);) r[--n] = 0;
    return r;
}

/* JSON exec form, or NULL when args is not a JSON array of strings. */
static json_t *exec_form(const char *args)
{
    if (*args != '[') return NULL;
    json_t *a = json_loads(args, JSON_DECODE_ANY, NULL);
    size_t i;
    json_t *v;
    bool ok = json_is_array(a);
    json_array_foreach(a, i, v) ok &= json_is_string(v);
    if (!ok) json_decref(a), a = NULL;
    return a;
}

static json_t *cmd_line(const char *args)
{
    json_t *a = exec_form(args);
    return a ? a : json_pack("[s, s, s]", "/bin/sh", "-c", args);
}

/* ---- instructions ---- */
static int set_kv(runcfg *c, json_t **target, const char *args, bool env, berr *e)
{
    const char *what = env ? "ENV" : "LABEL";
    json_t *pairs = words(c, args);
    size_t n = json_array_size(pairs);
    if (n == 0) {
        json_decref(pairs);
        return berr_set(e, 400, "%s requires at least one argument", what);
    }
    if (!strchr(json_string_value(json_array_get(pairs, 0)), '=')) { /* legacy "K V..." */
        const char *p = args;
        while (isspace((unsigned char)*p)) p++;
        while (*p && !isspace((unsigned char)*p)) p++;
        char *val = one_word(c, p);
        json_t *kv = json_sprintf("%s=%s", json_string_value(json_array_get(pairs, 0)), val);
        free(val);
        json_array_clear(pairs);
        json_array_append_new(pairs, kv);
    }
    size_t i;
    json_t *v;
    json_array_foreach(pairs, i, v)
    {
        const char *s = json_string_value(v), *eq = strchr(s, '=');
        if (!eq || eq == s) {
            json_decref(pairs);
            return berr_set(e, 400, "%s names can not be blank", what);
        }
        if (!env) {
            if (!*target) *target = json_object();
            char *k = xstrndup(s, (size_t)(eq - s));
            json_object_set_new(*target, k, json_string(eq + 1));
            free(k);
            continue;
        }
        if (!*target) *target = json_array();
        size_t k;
        json_t *old;
        bool replaced = false;
        json_array_foreach(*target, k, old) if (!replaced && !strncmp(json_string_value(old), s,
                                                                      (size_t)(eq - s) + 1))
        {
            json_array_set(*target, k, v);
            replaced = true;
        }
        if (!replaced) json_array_append(*target, v);
    }
    json_decref(pairs);
    return 0;
}

static int add_port(runcfg *c, const char *spec, berr *e)
{
    char port[64], proto[16] = "tcp";
    if (sscanf(spec, "%63[^/]/%15s", port, proto) < 1)
        return berr_set(e, 400, "Invalid containerPort: %s", spec);
    if (strcmp(proto, "tcp") && strcmp(proto, "udp") && strcmp(proto, "sctp"))
        return berr_set(e, 400, "Invalid proto: %s", proto);
    char *end;
    long lo = strtol(port, &end, 10), hi = lo;
    if (*end == '-') hi = strtol(end + 1, &end, 10);
    if (*end || !isdigit((unsigned char)port[0]) || lo < 0 || hi > 65535 || hi < lo)
        return berr_set(e, 400, "Invalid containerPort: %s", port);
    if (!c->exposed) c->exposed = json_object();
    for (long p = lo; p <= hi; p++) {
        char key[40];
        snprintf(key, sizeof key, "%ld/%s", p, proto);
        json_object_set_new(c->exposed, key, json_object());
    }
    return 0;
}

static int do_expose(runcfg *c, const char *args, berr *e)
{
    _cleanup_json_ json_t *ports = words(c, args);
    if (!json_array_size(ports)) return berr_set(e, 400, "EXPOSE requires at least one argument");
    size_t i;
    json_t *v;
    json_array_foreach(ports, i, v) if (add_port(c, json_string_value(v), e) < 0) return -1;
    return 0;
}

static int do_volume(runcfg *c, const char *args, berr *e)
{
    json_t *vols = exec_form(args);
    if (!vols) vols = words(c, args);
    size_t i;
    json_t *v;
    if (!json_array_size(vols)) {
        json_decref(vols);
        return berr_set(e, 400, "VOLUME requires at least one argument");
    }
    if (!c->volumes) c->volumes = json_object();
    json_array_foreach(vols, i, v)
    {
        if (!*json_string_value(v)) {
            json_decref(vols);
            return berr_set(e, 400, "VOLUME specified can not be an empty string");
        }
        json_object_set_new(c->volumes, json_string_value(v), json_object());
    }
    json_decref(vols);
    return 0;
}

/* path.Clean of an absolute path. */
static char *clean_abs(const char *p)
{
    sbuf b = {0};
    char *copy = xstrdup(p), *save = NULL;
    for (char *t = strtok_r(copy, "/", &save); t; t = strtok_r(NULL, "/", &save)) {
        if (!strcmp(t, ".")) continue;
        if (!strcmp(t, "..")) {
            char *slash = b.data ? strrchr(b.data, '/') : NULL;
            if (slash) b.len = (size_t)(slash - b.data), b.data[b.len] = 0;
            continue;
        }
        sbuf_printf(&b, "/%s", t);
    }
    free(copy);
    if (!b.len) sbuf_adds(&b, "/");
    return sbuf_steal(&b);
}

static int do_workdir(runcfg *c, const char *args, berr *e)
{
    _cleanup_free_ char *w = one_word(c, args);
    if (!*w) return berr_set(e, 400, "WORKDIR requires exactly one argument");
    char *joined = w[0] == '/' ? xstrdup(w) : xasprintf("%s/%s", c->workdir ? c->workdir : "/", w);
    free(c->workdir);
    c->workdir = clean_abs(joined);
    free(joined);
    return 0;
}

static bool valid_signal(const char *s)
{
    char *end;
    long n = strtol(s, &end, 10);
    if (*s && !*end) return n > 0 && n < NSIG;
    const char *name = str_starts(s, "SIG") ? s + 3 : s;
    if (str_starts(name, "RTMIN") || str_starts(name, "RTMAX")) return true;
    for (int i = 1; i < NSIG; i++) {
        const char *abbrev = sigabbrev_np(i);
        if (abbrev && !strcmp(abbrev, name)) return true;
    }
    return false;
}

static int do_health(runcfg *c, const char *args, berr *e)
{
    json_decref(c->health);
    c->health = NULL;
    if (!strcasecmp(args, "NONE")) {
        c->health = json_pack("{s:[s]}", "Test", "NONE");
        return 0;
    }
    if (strncasecmp(args, "CMD", 3) || !isspace((unsigned char)args[3]))
        return berr_set(e, 400, "Unknown type \"%s\" in HEALTHCHECK (try CMD)", args);
    const char *rest = args + 4;
    while (isspace((unsigned char)*rest)) rest++;
    json_t *test = exec_form(rest);
    if (test)
        json_array_insert_new(test, 0, json_string("CMD"));
    else
        test = json_pack("[s, s]", "CMD-SHELL", rest);
    c->health = json_pack("{s:o}", "Test", test);
    return 0;
}

static int do_cmd(runcfg *c, const char *name, const char *args)
{
    json_t *v = cmd_line(args);
    if (!strcmp(name, "cmd")) {
        json_decref(c->cmd);
        c->cmd = v;
        c->cmd_set = true;
        return 0;
    }
    json_decref(c->entrypoint);
    c->entrypoint = v;
    if (!c->cmd_set) {
        json_decref(c->cmd);
        c->cmd = NULL;
    }
    return 0;
}

static int do_simple(runcfg *c, const char *name, const char *args, berr *e)
{
    if (!strcmp(name, "user")) {
        free(c->user);
        c->user = one_word(c, args);
        return 0;
    }
    if (!strcmp(name, "stopsignal")) {
        char *sig = one_word(c, args);
        if (!valid_signal(sig)) {
            berr_set(e, 400, "Invalid signal: %s", sig);
            free(sig);
            return -1;
        }
        free(c->stopsignal);
        c->stopsignal = sig;
        return 0;
    }
    /* onbuild */
    if (!strncasecmp(args, "ONBUILD", 7) && (!args[7] || isspace((unsigned char)args[7])))
        return berr_set(e, 400, "Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed");
    if (!c->onbuild) c->onbuild = json_array();
    json_array_append_new(c->onbuild, json_string(args));
    return 0;
}

static int apply_change(runcfg *c, const char *line, berr *e)
{
    while (isspace((unsigned char)*line)) line++;
    if (!*line || *line == '#') return 0;
    size_t n = strcspn(line, " \t");
    char name[32];
    snprintf(name, sizeof name, "%.*s", (int)(n < 31 ? n : 31), line);
    for (char *p = name; *p; p++) *p = (char)tolower((unsigned char)*p);
    _cleanup_free_ char *args = xstrdup(line + n + strspn(line + n, " \t"));
    for (size_t k = strlen(args); k && isspace((unsigned char)args[k - 1]);) args[--k] = 0;
    if (!strcmp(name, "cmd") || !strcmp(name, "entrypoint")) return do_cmd(c, name, args);
    if (!strcmp(name, "env")) return set_kv(c, &c->env, args, true, e);
    if (!strcmp(name, "label")) return set_kv(c, &c->labels, args, false, e);
    if (!strcmp(name, "expose")) return do_expose(c, args, e);
    if (!strcmp(name, "volume")) return do_volume(c, args, e);
    if (!strcmp(name, "workdir")) return do_workdir(c, args, e);
    if (!strcmp(name, "healthcheck")) return do_health(c, args, e);
    if (!strcmp(name, "user") || !strcmp(name, "stopsignal") || !strcmp(name, "onbuild")) {
        if (!*args) return berr_set(e, 400, "%s requires at least one argument", name);
        return do_simple(c, name, args, e);
    }
    return berr_set(e, 400, "%s is not a valid change command", name);
}

static json_t *build_runcfg(const json_t *changes, berr *e)
{
    runcfg c = {0};
    size_t i;
    json_t *v;
    json_array_foreach(changes, i, v)
    {
        if (!json_is_string(v)) {
            runcfg_free(&c);
            berr_set(e, 400, "invalid change: not a string");
            return NULL;
        }
        _cleanup_free_ char *all = xstrdup(json_string_value(v));
        char *save = NULL;
        for (char *ln = strtok_r(all, "\n", &save); ln; ln = strtok_r(NULL, "\n", &save))
            if (apply_change(&c, ln, e) < 0) {
                runcfg_free(&c);
                return NULL;
            }
    }
    json_t *j = runcfg_json(&c);
    runcfg_free(&c);
    return j;
}

/* ---- the image config ---- */
static const char *go_arch(void)
{
    static __thread struct utsname u;
    if (uname(&u) < 0) return "amd64";
    static const char *map[][2] = {
        {"x86_64", "amd64"},    {"aarch64", "arm64"}, {"i686", "386"},
        {"i386", "386"},        {"armv7l", "arm"},    {"armv6l", "arm"},
        {"ppc64le", "ppc64le"}, {"s390x", "s390x"},   {"riscv64", "riscv64"}};
    for (size_t i = 0; i < sizeof map / sizeof *map; i++)
        if (!strcmp(u.machine, map[i][0])) return map[i][1];
    return u.machine;
}

static char *import_config(json_t *runconf, const char *msg, const char *diff)
{
    char created[64];
    fmt_rfc3339nano(now_ns(), created, sizeof created);
    json_t *cfg =
        json_pack("{s:s, s:s, s:o, s:o, s:s, s:[{s:s, s:s}], s:s, s:{s:s, s:[s]}}", "architecture",
                  go_arch(), "comment", msg, "config", runconf, "container_config",
                  empty_container_config(), "created", created, "history", "created", created,
                  "comment", msg, "os", "linux", "rootfs", "type", "layers", "diff_ids", diff);
    char *out = json_dump_go(cfg);
    json_decref(cfg);
    return out;
}

/* ---- the layer ---- */
static int read_layer(store *s, int in_fd, char **blob_out, char diff[DIGEST_LEN + 1], berr *e)
{
    char *tmp = store_tmp_path(s);
    int fd = open(tmp, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd < 0) {
        berr_errno(e, 500, "creating %s", tmp);
        free(tmp);
        return -1;
    }
    int64_t size;
    int rc = tarx_decompress(in_fd, fd, diff, &size, e);
    if (rc == 0 && fsync(fd) < 0) rc = berr_errno(e, 500, "syncing %s", tmp);
    close(fd);
    if (rc < 0) {
        unlink(tmp);
        free(tmp);
        return -1;
    }
    *blob_out = tmp;
    return 0;
}

static int import_target(const char *repo, const char *tag, ref *r, bool *has, berr *e)
{
    *has = repo && *repo;
    if (!*has) return 0;
    if (strchr(repo, '@')) {
        if (ref_parse(repo, r, e) < 0) return -1;
        if (r->digest[0]) return berr_set(e, 400, "cannot import digest reference");
    }
    return parse_tag_target(repo, tag, r, e);
}

static int commit_import(store *s, pending_layer *pl, const char *config, const ref *r, bool tag,
                         char id_out[DIGEST_LEN + 1], op *o, berr *e)
{
    pthread_rwlock_wrlock(&s->lock);
    layer *l = layer_commit(s, pl, e);
    image *img = NULL;
    int rc = l ? image_commit(s, config, strlen(config), &l, 1, NULL, &img, e) : -1;
    if (rc == 0 && tag) {
        char key[1024];
        ref_strings(r, key, NULL, NULL, sizeof key);
        st_ref_set(s, r, img->id, NULL);
        img->last_tag_ns = now_ns();
        rc = st_write_record(s, img, e);
        if (rc == 0) rc = st_save_refs(s, e);
        if (rc == 0) op_image_event(o, img, "tag", key);
    }
    if (rc == 0) {
        op_image_event(o, img, "import", img->id);
        memcpy(id_out, img->id, DIGEST_LEN + 1);
    }
    layer_release(s, pl, o);
    pthread_rwlock_unlock(&s->lock);
    return rc;
}

int image_import(store *s, int in_fd, const char *repo, const char *tag, const json_t *changes,
                 const char *message, char id_out[DIGEST_LEN + 1], berr *e)
{
    ref r;
    bool has_tag;
    if (import_target(repo, tag, &r, &has_tag, e) < 0) return -1;
    json_t *runconf = build_runcfg(changes, e);
    if (!runconf) return -1;
    char *blob = NULL, diff[DIGEST_LEN + 1];
    pending_layer pl = {0};
    op o = {0};
    int rc = read_layer(s, in_fd, &blob, diff, e);
    if (rc == 0)
        rc = layer_prepare(s, "", diff, blob, &pl, e);
    else
        pl.tmp_blob = blob;
    if (rc == 0) {
        _cleanup_free_ char *cfg = import_config(
            json_incref(runconf), message && *message ? message : "Imported from -", diff);
        rc = commit_import(s, &pl, cfg, &r, has_tag, id_out, &o, e);
    } else {
        pthread_rwlock_wrlock(&s->lock);
        layer_release(s, &pl, &o);
        pthread_rwlock_unlock(&s->lock);
    }
    json_decref(runconf);
    op_finish(s, &o);
    return rc;
}
