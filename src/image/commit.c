/* commit.c: `docker commit` on the image side. Packs a container's overlay
 * upper dir (overlayfs whiteouts become OCI .wh. entries) into a layer on
 * top of the container's image, builds the child image config as docker's
 * image.NewChildImage does (the parent's rootfs and history plus one entry,
 * "container", "container_config", "author"), applies the --change
 * instructions (changes.c) and docker's config merge, stores the
 * image through the same internal steps as import (layer_prepare,
 * layer_commit, image_commit) and tags it. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"
#include "tarx.h"

/* The digest of a tar with no entries (docker's layer.EmptyLayer). */
#define EMPTY_LAYER "sha256:5f70bf18a086007016e948b04aed3b82103a36bea41755b6cddfaf10ace3c6ef"

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
    json_object_set_new(j, "container_config", go_container_config(o->container_config));
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
    json_t *cfg = go_container_config(base);
    if (config_apply_changes(cfg, o->changes, e) < 0) {
        json_decref(cfg);
        return NULL;
    }
    merge_config(cfg, o->container_config);
    json_t *out = go_container_config(cfg);
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
