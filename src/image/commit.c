/* commit.c: `docker commit` on the image side. Packs a container's overlay
 * upper dir (overlayfs whiteouts become OCI .wh. entries) into a layer on
 * top of the container's image, builds the child image config as docker's
 * image.NewChildImage does (the parent's rootfs and history plus one entry,
 * "container", "container_config", "author"), applies the --change
 * instructions (a Dockerfile subset) and docker's config merge, stores the
 * image through the same internal steps as import (layer_prepare,
 * layer_commit, image_commit) and tags it. */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"
#include "tarx.h"

/* The digest of a tar with no entries (docker's layer.EmptyLayer). */
#define EMPTY_LAYER "sha256:5f70bf18a086007016e948b04aed3b82103a36bea41755b6cddfaf10ace3c6ef"

/* ---- container configs in Go's container.Config shape ---- */

static void put(json_t *out, const json_t *src, const char *key, json_t *dflt, bool omitempty)
{
    json_t *v = json_object_get(src, key);
    bool empty = !v || json_is_null(v) || json_is_false(v) ||
                 (json_is_string(v) && !*json_string_value(v)) ||
                 (json_is_object(v) && !json_object_size(v)) ||
                 (json_is_array(v) && !json_array_size(v)) ||
                 (json_is_integer(v) && !json_integer_value(v));
    if (omitempty && empty) {
        json_decref(dflt);
        return;
    }
    if (v && !json_is_null(v)) {
        json_decref(dflt);
        dflt = json_deep_copy(v);
    }
    json_object_set_new(out, key, dflt);
}

/* A copy of src with Go's field order and omitempty rules. */
static json_t *go_config(const json_t *src)
{
    static const char *strs[] = {"Hostname", "Domainname", "User"};
    json_t *j = json_object();
    for (size_t i = 0; i < 3; i++) put(j, src, strs[i], json_string(""), false);
    put(j, src, "AttachStdin", json_false(), false);
    put(j, src, "AttachStdout", json_false(), false);
    put(j, src, "AttachStderr", json_false(), false);
    put(j, src, "ExposedPorts", NULL, true);
    put(j, src, "Tty", json_false(), false);
    put(j, src, "OpenStdin", json_false(), false);
    put(j, src, "StdinOnce", json_false(), false);
    put(j, src, "Env", json_null(), false);
    put(j, src, "Cmd", json_null(), false);
    put(j, src, "Healthcheck", NULL, true);
    put(j, src, "ArgsEscaped", NULL, true);
    put(j, src, "Image", json_string(""), false);
    put(j, src, "Volumes", json_null(), false);
    put(j, src, "WorkingDir", json_string(""), false);
    put(j, src, "Entrypoint", json_null(), false);
    put(j, src, "NetworkDisabled", NULL, true);
    put(j, src, "MacAddress", NULL, true);
    put(j, src, "OnBuild", json_null(), false);
    put(j, src, "Labels", json_null(), false);
    put(j, src, "StopSignal", NULL, true);
    put(j, src, "StopTimeout", NULL, true);
    put(j, src, "Shell", NULL, true);
    return j;
}

/* ---- --change instructions (CMD, ENTRYPOINT, ENV, LABEL, EXPOSE, USER,
 * WORKDIR, VOLUME, STOPSIGNAL, ONBUILD), applied to an existing config ---- */

static const char *env_get(const json_t *cfg, const char *name, size_t n)
{
    size_t i;
    json_t *v;
    json_array_foreach(json_object_get(cfg, "Env"), i, v)
    {
        const char *s = json_string_value(v);
        if (s && !strncmp(s, name, n) && s[n] == '=') return s + n + 1;
    }
    return "";
}

/* $VAR / ${VAR} from the config's Env; returns the input after it. */
static const char *expand(const json_t *cfg, const char *p, sbuf *out)
{
    bool brace = p[1] == '{';
    const char *start = p + 1 + brace, *q = start;
    while (isalnum((unsigned char)*q) || *q == '_') q++;
    if (q == start || (brace && *q != '}')) {
        sbuf_add(out, "$", 1);
        return p + 1;
    }
    sbuf_adds(out, env_get(cfg, start, (size_t)(q - start)));
    return q + brace;
}

/* One shell-like word (quotes, backslashes, $VAR); false at end of input.
 * Without split the rest of the line is one word. */
static bool word(const json_t *cfg, const char **pp, bool split, sbuf *out)
{
    const char *p = *pp;
    while (isspace((unsigned char)*p)) p++;
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
            p = expand(cfg, p, out);
        } else {
            sbuf_add(out, p++, 1);
        }
    }
    sbuf_add(out, "", 0);
    *pp = p;
    return true;
}

static json_t *words(const json_t *cfg, const char *s)
{
    json_t *a = json_array();
    sbuf w = {0};
    while (word(cfg, &s, true, &w)) {
        json_array_append_new(a, json_string(w.data));
        sbuf_free(&w);
    }
    return a;
}

/* JSON exec form ["a","b"], or NULL. */
static json_t *exec_form(const char *args)
{
    if (*args != '[') return NULL;
    json_t *a = json_loads(args, JSON_DECODE_ANY, NULL);
    size_t i;
    json_t *v;
    bool ok = json_is_array(a);
    json_array_foreach(a, i, v) ok = ok && json_is_string(v);
    if (!ok) json_decref(a), a = NULL;
    return a;
}

/* ENV/LABEL: k=v pairs, or the legacy "K rest of line". */
static int set_pairs(json_t *cfg, const char *args, bool env, berr *e)
{
    _cleanup_json_ json_t *pairs = words(cfg, args);
    if (!json_array_size(pairs))
        return berr_set(e, 400, "%s requires at least one argument", env ? "ENV" : "LABEL");
    const char *first = json_string_value(json_array_get(pairs, 0));
    if (!strchr(first, '=')) {
        const char *rest = args + strspn(args, " \t");
        rest += strcspn(rest, " \t");
        sbuf v = {0};
        word(cfg, &rest, false, &v);
        json_t *kv = json_sprintf("%s=%s", first, v.data ? v.data : "");
        sbuf_free(&v);
        json_array_clear(pairs);
        json_array_append_new(pairs, kv);
    }
    size_t i;
    json_t *p;
    json_array_foreach(pairs, i, p)
    {
        const char *s = json_string_value(p), *eq = strchr(s, '=');
        if (!eq || eq == s)
            return berr_set(e, 400, "%s names can not be blank", env ? "ENV" : "LABEL");
        size_t kl = (size_t)(eq - s);
        const char *key = env ? "Env" : "Labels";
        json_t *t = json_object_get(cfg, key);
        if (!env) {
            if (!json_is_object(t)) json_object_set_new(cfg, key, t = json_object());
            _cleanup_free_ char *k = xstrndup(s, kl);
            json_object_set_new(t, k, json_string(eq + 1));
            continue;
        }
        if (!json_is_array(t)) json_object_set_new(cfg, key, t = json_array());
        size_t k;
        json_t *old;
        bool done = false;
        json_array_foreach(t, k, old) if (!done && !strncmp(json_string_value(old), s, kl + 1))
        {
            json_array_set(t, k, p);
            done = true;
        }
        if (!done) json_array_append(t, p);
    }
    return 0;
}

static int do_expose(json_t *cfg, const char *args, berr *e)
{
    _cleanup_json_ json_t *ports = words(cfg, args);
    if (!json_array_size(ports)) return berr_set(e, 400, "EXPOSE requires at least one argument");
    json_t *m = json_object_get(cfg, "ExposedPorts");
    if (!json_is_object(m)) json_object_set_new(cfg, "ExposedPorts", m = json_object());
    size_t i;
    json_t *v;
    json_array_foreach(ports, i, v)
    {
        const char *s = json_string_value(v);
        char *end;
        long port = strtol(s, &end, 10);
        if (end == s || port < 0 || port > 65535 || (*end && *end != '/'))
            return berr_set(e, 400, "Invalid containerPort: %s", s);
        _cleanup_free_ char *key = *end ? xstrdup(s) : xasprintf("%ld/tcp", port);
        json_object_set_new(m, key, json_object());
    }
    return 0;
}

static int do_volume(json_t *cfg, const char *args, berr *e)
{
    _cleanup_json_ json_t *vols = exec_form(args);
    if (!vols) vols = words(cfg, args);
    if (!json_array_size(vols)) return berr_set(e, 400, "VOLUME requires at least one argument");
    json_t *m = json_object_get(cfg, "Volumes");
    if (!json_is_object(m)) json_object_set_new(cfg, "Volumes", m = json_object());
    size_t i;
    json_t *v;
    json_array_foreach(vols, i, v)
    {
        if (!*json_string_value(v))
            return berr_set(e, 400, "VOLUME specified can not be an empty string");
        json_object_set_new(m, json_string_value(v), json_object());
    }
    return 0;
}

/* WORKDIR: relative paths join the current one; the result is cleaned. */
static void do_workdir(json_t *cfg, const char *w)
{
    const char *cur = jstr(cfg, "WorkingDir");
    _cleanup_free_ char *joined =
        w[0] == '/' ? xstrdup(w) : xasprintf("%s/%s", cur && *cur ? cur : "/", w);
    sbuf b = {0};
    char *save = NULL;
    for (char *t = strtok_r(joined, "/", &save); t; t = strtok_r(NULL, "/", &save)) {
        if (!strcmp(t, ".")) continue;
        if (!strcmp(t, "..")) {
            char *slash = b.data ? strrchr(b.data, '/') : NULL;
            if (slash) b.len = (size_t)(slash - b.data), b.data[b.len] = 0;
            continue;
        }
        sbuf_printf(&b, "/%s", t);
    }
    if (!b.len) sbuf_adds(&b, "/");
    json_object_set_new(cfg, "WorkingDir", json_string(b.data));
    sbuf_free(&b);
}

static int do_single(json_t *cfg, const char *name, const char *args, berr *e)
{
    const char *p = args;
    sbuf w = {0};
    word(cfg, &p, false, &w);
    _cleanup_free_ char *v = sbuf_steal(&w);
    for (size_t n = strlen(v); n && isspace((unsigned char)v[n - 1]);) v[--n] = 0;
    if (!*v) return berr_set(e, 400, "%s requires exactly one argument", name);
    if (!strcmp(name, "user"))
        json_object_set_new(cfg, "User", json_string(v));
    else if (!strcmp(name, "stopsignal"))
        json_object_set_new(cfg, "StopSignal", json_string(v));
    else
        do_workdir(cfg, v);
    return 0;
}

static int do_cmd(json_t *cfg, bool entrypoint, const char *args, bool *cmd_set)
{
    json_t *v = exec_form(args);
    if (!v) v = json_pack("[s, s, s]", "/bin/sh", "-c", args);
    json_object_set_new(cfg, entrypoint ? "Entrypoint" : "Cmd", v);
    if (!entrypoint)
        *cmd_set = true;
    else if (!*cmd_set)
        json_object_set_new(cfg, "Cmd", json_null());
    return 0;
}

static int do_onbuild(json_t *cfg, const char *args, berr *e)
{
    if (!*args) return berr_set(e, 400, "ONBUILD requires at least one argument");
    json_t *a = json_object_get(cfg, "OnBuild");
    if (!json_is_array(a)) json_object_set_new(cfg, "OnBuild", a = json_array());
    json_array_append_new(a, json_string(args));
    return 0;
}

static int apply_line(json_t *cfg, const char *line, bool *cmd_set, berr *e)
{
    line += strspn(line, " \t\r");
    if (!*line || *line == '#') return 0;
    size_t n = strcspn(line, " \t");
    char name[32];
    snprintf(name, sizeof name, "%.*s", (int)(n < 31 ? n : 31), line);
    for (char *q = name; *q; q++) *q = (char)tolower((unsigned char)*q);
    _cleanup_free_ char *args = xstrdup(line + n + strspn(line + n, " \t"));
    for (size_t k = strlen(args); k && isspace((unsigned char)args[k - 1]);) args[--k] = 0;
    if (!strcmp(name, "cmd") || !strcmp(name, "entrypoint"))
        return do_cmd(cfg, name[0] == 'e', args, cmd_set);
    if (!strcmp(name, "env") || !strcmp(name, "label"))
        return set_pairs(cfg, args, name[0] == 'e', e);
    if (!strcmp(name, "expose")) return do_expose(cfg, args, e);
    if (!strcmp(name, "volume")) return do_volume(cfg, args, e);
    if (!strcmp(name, "onbuild")) return do_onbuild(cfg, args, e);
    if (!strcmp(name, "user") || !strcmp(name, "workdir") || !strcmp(name, "stopsignal"))
        return do_single(cfg, name, args, e);
    return berr_set(e, 400, "%s is not a valid change command", name);
}

static int apply_changes(json_t *cfg, const json_t *changes, berr *e)
{
    bool cmd_set = false;
    size_t i;
    json_t *v;
    json_array_foreach(changes, i, v)
    {
        if (!json_is_string(v)) return berr_set(e, 400, "invalid change: not a string");
        _cleanup_free_ char *all = xstrdup(json_string_value(v));
        char *save = NULL;
        for (char *ln = strtok_r(all, "\n", &save); ln; ln = strtok_r(NULL, "\n", &save))
            if (apply_line(cfg, ln, &cmd_set, e) < 0) return -1;
    }
    return 0;
}

/* ---- docker's merge(userConf, containerConf) ---- */

static bool empty(const json_t *v)
{
    return !v || json_is_null(v) || (json_is_string(v) && !*json_string_value(v)) ||
           (json_is_array(v) && !json_array_size(v)) || (json_is_object(v) && !json_object_size(v));
}

static void fill(json_t *u, const json_t *c, const char *key)
{
    json_t *cv = json_object_get(c, key);
    if (empty(json_object_get(u, key)) && cv) json_object_set_new(u, key, json_deep_copy(cv));
}

/* Object members of c missing in u are added (u's value wins). */
static void union_obj(json_t *u, const json_t *c, const char *key, bool keep_null)
{
    json_t *uo = json_object_get(u, key), *co = json_object_get(c, key);
    if (!json_is_object(uo)) {
        if (!json_is_object(co) && keep_null) return;
        json_object_set_new(u, key, uo = json_object());
    }
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)co, k, v) if (!json_object_get(uo, k)) json_object_set(uo, k, v);
}

static void merge_env(json_t *u, const json_t *c)
{
    json_t *ue = json_object_get(u, "Env");
    if (empty(ue)) return fill(u, c, "Env");
    size_t i, k;
    json_t *v, *w;
    json_array_foreach(json_object_get(c, "Env"), i, v)
    {
        const char *s = json_string_value(v);
        size_t kl = strcspn(s ? s : "", "=");
        bool found = false;
        json_array_foreach(ue, k, w) found = found || (strcspn(json_string_value(w), "=") == kl &&
                                                       !strncmp(json_string_value(w), s, kl));
        if (s && !found) json_array_append(ue, v);
    }
}

static void merge_config(json_t *u, const json_t *c)
{
    fill(u, c, "User");
    if (empty(json_object_get(u, "ExposedPorts")))
        fill(u, c, "ExposedPorts");
    else
        union_obj(u, c, "ExposedPorts", true);
    merge_env(u, c);
    union_obj(u, c, "Labels", false);
    if (empty(json_object_get(u, "Entrypoint"))) {
        fill(u, c, "Cmd");
        if (!json_is_array(json_object_get(u, "Entrypoint"))) fill(u, c, "Entrypoint");
    }
    if (!json_object_get(u, "Healthcheck")) fill(u, c, "Healthcheck");
    fill(u, c, "WorkingDir");
    union_obj(u, c, "Volumes", true);
    fill(u, c, "StopSignal");
}

/* ---- the layer ---- */

/* Packs upper into a temp blob; fills its digest. */
static int pack_layer(store *s, const char *upper, char **blob_out, char diff[DIGEST_LEN + 1],
                      berr *e)
{
    char *tmp = store_tmp_path(s);
    int fd = open(tmp, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd < 0) {
        berr_errno(e, 500, "creating %s", tmp);
        free(tmp);
        return -1;
    }
    int rc = tarx_pack_dir(upper, fd, TARX_OVERLAY, e);
    if (rc == 0 && fsync(fd) < 0) rc = berr_errno(e, 500, "syncing %s", tmp);
    sha256_ctx *h = sha256_new();
    char buf[65536];
    ssize_t n;
    off_t off = 0;
    while (rc == 0 && (n = pread(fd, buf, sizeof buf, off)) != 0) {
        if (n < 0 && errno == EINTR) continue;
        if (n < 0)
            rc = berr_errno(e, 500, "reading %s", tmp);
        else
            sha256_update(h, buf, (size_t)n), off += n;
    }
    sha256_final(h, diff);
    close(fd);
    if (rc < 0) unlink(tmp), free(tmp), tmp = NULL;
    *blob_out = tmp;
    return rc;
}

/* ---- the image config ---- */

static json_t *history_entry(const char *created, const commit_opts *o, bool empty_layer)
{
    json_t *h = json_pack("{s:s}", "created", created);
    if (o->author && *o->author) json_object_set_new(h, "author", json_string(o->author));
    sbuf by = {0};
    size_t i;
    json_t *v;
    json_array_foreach(json_object_get(o->container_config, "Cmd"), i, v)
        sbuf_printf(&by, "%s%s", i ? " " : "", json_string_value(v) ? json_string_value(v) : "");
    if (by.len) json_object_set_new(h, "created_by", json_string(by.data));
    sbuf_free(&by);
    if (o->comment && *o->comment) json_object_set_new(h, "comment", json_string(o->comment));
    if (empty_layer) json_object_set_new(h, "empty_layer", json_true());
    return h;
}

static void copy_key(json_t *dst, const json_t *src, const char *key, const char *dflt)
{
    json_t *v = json_object_get(src, key);
    if (v)
        json_object_set(dst, key, v);
    else if (dflt)
        json_object_set_new(dst, key, json_string(dflt));
}

/* Keys in sorted order, as docker's Image.MarshalJSON writes them. */
static char *child_config(const json_t *parent, json_t *config, const commit_opts *o,
                          const char *diff)
{
    char created[64];
    fmt_rfc3339nano(now_ns(), created, sizeof created);
    bool empty_layer = !strcmp(diff, EMPTY_LAYER);
    json_t *j = json_object();
    copy_key(j, parent, "architecture", "amd64");
    if (o->author && *o->author) json_object_set_new(j, "author", json_string(o->author));
    json_object_set_new(j, "config", config);
    json_object_set_new(j, "container", json_string(o->container_id));
    json_object_set_new(j, "container_config", go_config(o->container_config));
    json_object_set_new(j, "created", json_string(created));
    json_t *hist = json_array();
    json_array_extend(hist, json_object_get(parent, "history"));
    json_array_append_new(hist, history_entry(created, o, empty_layer));
    json_object_set_new(j, "history", hist);
    copy_key(j, parent, "os", "linux");
    copy_key(j, parent, "os.features", NULL);
    copy_key(j, parent, "os.version", NULL);
    json_t *ids = json_array();
    json_array_extend(ids, json_object_get(json_object_get(parent, "rootfs"), "diff_ids"));
    if (!empty_layer) json_array_append_new(ids, json_string(diff));
    json_object_set_new(j, "rootfs", json_pack("{s:s, s:o}", "type", "layers", "diff_ids", ids));
    copy_key(j, parent, "variant", NULL);
    char *out = json_dump_go(j);
    json_decref(j);
    return out;
}

/* The config the image runs with: body config (or the container's),
 * changes applied, then merged with the container's config. */
static json_t *new_run_config(const commit_opts *o, berr *e)
{
    const json_t *base = json_is_object(o->config) ? o->config : o->container_config;
    json_t *cfg = go_config(base);
    if (apply_changes(cfg, o->changes, e) < 0) {
        json_decref(cfg);
        return NULL;
    }
    merge_config(cfg, o->container_config);
    json_t *out = go_config(cfg);
    json_decref(cfg);
    return out;
}

/* ---- storing it ---- */

/* Lock held: the parent's layers plus the new one, in a new array. */
static layer **stack_of(const image *parent, layer *top, size_t *n)
{
    layer **ls = xcalloc(parent->nlayers + 2, sizeof *ls);
    memcpy(ls, parent->layers, parent->nlayers * sizeof *ls);
    *n = parent->nlayers;
    if (top) ls[(*n)++] = top;
    return ls;
}

static int tag_image(store *s, image *img, const ref *r, op *o, berr *e)
{
    char key[1024];
    ref_strings(r, key, NULL, NULL, sizeof key);
    st_ref_set(s, r, img->id, NULL);
    img->last_tag_ns = now_ns();
    if (st_write_record(s, img, e) < 0 || st_save_refs(s, e) < 0) return -1;
    op_image_event(o, img, "tag", key);
    return 0;
}

static int store_image(store *s, pending_layer *pl, const char *cfg, const commit_opts *o,
                       const ref *r, bool tag, char id_out[DIGEST_LEN + 1], op *ops, berr *e)
{
    pthread_rwlock_wrlock(&s->lock);
    image *parent = st_image(s, o->parent_id), *img = NULL;
    layer *top = NULL;
    int rc = parent ? 0 : berr_set(e, 404, "No such image: %s", o->parent_id);
    if (rc == 0 && pl->diff[0] && !(top = layer_commit(s, pl, e))) rc = -1;
    if (rc == 0) {
        size_t n;
        layer **ls = stack_of(parent, top, &n);
        rc = image_commit(s, cfg, strlen(cfg), ls, n, parent->id, &img, e);
        free(ls);
    }
    if (rc == 0 && tag) rc = tag_image(s, img, r, ops, e);
    if (rc == 0) memcpy(id_out, img->id, DIGEST_LEN + 1);
    layer_release(s, pl, ops);
    pthread_rwlock_unlock(&s->lock);
    return rc;
}

/* Reads the parent's config and top chain ID. */
static json_t *parent_info(store *s, const char *id, char chain[DIGEST_LEN + 1], berr *e)
{
    pthread_rwlock_rdlock(&s->lock);
    image *p = st_image(s, id);
    json_t *cfg = NULL;
    if (!p)
        berr_set(e, 404, "No such image: %s", id);
    else
        cfg = st_load_config(s, id, e);
    if (cfg)
        snprintf(chain, DIGEST_LEN + 1, "%s", p->nlayers ? p->layers[p->nlayers - 1]->chain : "");
    pthread_rwlock_unlock(&s->lock);
    return cfg;
}

int image_commit_container(store *s, const char *upper_dir, const commit_opts *o,
                           char id_out[DIGEST_LEN + 1], berr *e)
{
    ref r;
    bool tag = o->repo && *o->repo;
    if (tag && parse_tag_target(o->repo, o->tag, &r, e) < 0) return -1;
    _cleanup_json_ json_t *run = new_run_config(o, e);
    if (!run) return -1;
    char chain[DIGEST_LEN + 1], diff[DIGEST_LEN + 1];
    _cleanup_json_ json_t *parent = parent_info(s, o->parent_id, chain, e);
    if (!parent) return -1;
    char *blob = NULL;
    pending_layer pl = {0};
    op ops = {0};
    int rc = pack_layer(s, upper_dir, &blob, diff, e);
    if (rc == 0 && !strcmp(diff, EMPTY_LAYER)) {
        unlink(blob), free(blob), blob = NULL; /* docker adds no layer for no changes */
    } else if (rc == 0) {
        rc = layer_prepare(s, chain, diff, blob, &pl, e);
        if (rc < 0 && !pl.tmp_blob) pl.tmp_blob = blob;
    }
    if (rc == 0) {
        _cleanup_free_ char *cfg = child_config(parent, json_incref(run), o, diff);
        rc = store_image(s, &pl, cfg, o, &r, tag, id_out, &ops, e);
    } else {
        pthread_rwlock_wrlock(&s->lock);
        layer_release(s, &pl, &ops);
        pthread_rwlock_unlock(&s->lock);
    }
    op_finish(s, &ops);
    return rc;
}
