/* store.c: the image store itself. Owns the on-disk layout described in
 * image.h and the in-memory index read at open: blobs (verified, renamed
 * into place), layers (unpacked once per chain ID into a temp dir that is
 * renamed into place, pinned while an operation relies on them, removed when
 * no image uses them), image records, and the reference table
 * (repositories.json). Also name resolution as docker's GetImage does it,
 * crash recovery at open (tmp/ emptied, half-made or unreferenced content
 * removed) and the deferred events/trash of an operation. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "internal.h"
#include "common/jsonutil.h"
#include "tarx.h"

/* ---- deferred work ---- */
void op_event_add(op *o, const char *action, const char *id, json_t *attrs)
{
    o->ev = xrealloc(o->ev, (o->nev + 1) * sizeof *o->ev);
    o->ev[o->nev++] = (op_event){xstrdup(action), xstrdup(id), attrs ? attrs : json_object()};
}

void op_image_event(op *o, const image *img, const char *action, const char *name)
{
    json_t *attrs = json_object();
    if (img && json_is_object(img->labels)) json_object_update(attrs, img->labels);
    if (name) json_object_set_new(attrs, "name", json_string(name));
    op_event_add(o, action, img ? img->id : name, attrs);
}

void op_trash(op *o, char *path)
{
    o->trash = xrealloc(o->trash, (o->ntrash + 1) * sizeof *o->trash);
    o->trash[o->ntrash++] = path;
}

void op_finish(store *s, op *o)
{
    for (size_t i = 0; i < o->ntrash; i++) {
        rm_rf(o->trash[i]);
        free(o->trash[i]);
    }
    for (size_t i = 0; i < o->nev; i++) {
        if (s->hook) s->hook(o->ev[i].action, o->ev[i].id, o->ev[i].attrs);
        json_decref(o->ev[i].attrs);
        free(o->ev[i].action);
        free(o->ev[i].id);
    }
    free(o->trash);
    free(o->ev);
    *o = (op){0};
}

/* ---- paths and small helpers ---- */
char *st_path(const store *s, const char *fmt, ...)
{
    va_list ap;
    char *rel;
    va_start(ap, fmt);
    if (vasprintf(&rel, fmt, ap) < 0) abort();
    va_end(ap);
    char *p = xasprintf("%s/%s", s->root, rel);
    free(rel);
    return p;
}

char *blob_path(const store *s, const char *digest)
{
    return st_path(s, "blobs/sha256/%s", digest + 7);
}

char *layer_dir(const store *s, const char *chain)
{
    return st_path(s, "layers/%s", chain + 7);
}

char *st_mkdtemp(store *s, const char *prefix, berr *e)
{
    char *p = st_path(s, "tmp/%s-XXXXXX", prefix);
    if (!mkdtemp(p)) {
        berr_errno(e, 500, "creating temp dir %s", p);
        free(p);
        return NULL;
    }
    return p;
}

char *store_tmp_path(store *s)
{
    unsigned long n = __atomic_fetch_add(&s->seq, 1, __ATOMIC_RELAXED);
    return st_path(s, "tmp/f-%d-%lu-%llx", (int)getpid(), n, (unsigned long long)now_ns());
}

int syncfs_path(const char *path)
{
    int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return -1;
    int rc = syncfs(fd);
    close(fd);
    return rc;
}

bool is_hex(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f'))) return false;
    return n > 0;
}

void short_id(const char *id, char out[13])
{
    const char *h = str_starts(id, "sha256:") ? id + 7 : id;
    snprintf(out, 13, "%s", h);
}

void chain_id(const char *parent_chain, const char *diff, char out[DIGEST_LEN + 1])
{
    if (!parent_chain || !*parent_chain) {
        snprintf(out, DIGEST_LEN + 1, "%s", diff);
        return;
    }
    char buf[2 * DIGEST_LEN + 2];
    snprintf(buf, sizeof buf, "%s %s", parent_chain, diff);
    sha256_buf(buf, strlen(buf), out);
}

char *json_dump_go(const json_t *j)
{
    char *raw = json_fast_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY | JSON_PRESERVE_ORDER);
    if (!raw) return xstrdup("null");
    sbuf b = {0};
    for (const char *p = raw; *p; p++) {
        if (*p == '<')
            sbuf_adds(&b, "\\u003c");
        else if (*p == '>')
            sbuf_adds(&b, "\\u003e");
        else if (*p == '&')
            sbuf_adds(&b, "\\u0026");
        else if (!strncmp(p, "\xe2\x80\xa8", 3))
            sbuf_adds(&b, "\\u2028"), p += 2;
        else if (!strncmp(p, "\xe2\x80\xa9", 3))
            sbuf_adds(&b, "\\u2029"), p += 2;
        else
            sbuf_add(&b, p, 1);
    }
    free(raw);
    return sbuf_steal(&b);
}

json_t *config_diff_ids(const json_t *config, berr *e)
{
    json_t *rootfs = json_object_get(config, "rootfs");
    if (!json_is_object(config) || !json_is_object(rootfs)) {
        berr_set(e, 400, "invalid image JSON, no RootFS key");
        return NULL;
    }
    json_t *ids = json_object_get(rootfs, "diff_ids");
    if (!ids) return json_array();
    size_t i;
    json_t *v;
    json_array_foreach(ids, i, v) if (!digest_valid(json_string_value(v)))
    {
        berr_set(e, 400, "invalid image JSON: bad diff_id in rootfs");
        return NULL;
    }
    if (!json_is_array(ids)) {
        berr_set(e, 400, "invalid image JSON: rootfs.diff_ids is not an array");
        return NULL;
    }
    return json_incref(ids);
}

/* ---- lookups ---- */
image *st_image(const store *s, const char *id)
{
    for (size_t i = 0; i < s->nimgs; i++)
        if (!strcmp(s->imgs[i]->id, id)) return s->imgs[i];
    return NULL;
}

layer *st_layer(const store *s, const char *chain)
{
    for (size_t i = 0; i < s->nlayers; i++)
        if (!strcmp(s->layers[i]->chain, chain)) return s->layers[i];
    return NULL;
}

bool st_has_children(const store *s, const image *img)
{
    for (size_t i = 0; i < s->nimgs; i++)
        if (!strcmp(s->imgs[i]->parent, img->id)) return true;
    return false;
}

int st_read_config(const store *s, const char *id, char **out, size_t *len, berr *e)
{
    _cleanup_free_ char *p = blob_path(s, id);
    if (read_file(p, out, len) < 0) return berr_errno(e, 500, "reading image config %s", id);
    return 0;
}

json_t *st_load_config(const store *s, const char *id, berr *e)
{
    _cleanup_free_ char *data = NULL;
    size_t len;
    if (st_read_config(s, id, &data, &len, e) < 0) return NULL;
    json_error_t je;
    json_t *j = json_fast_loadb(data, len, 0, &je);
    if (!json_is_object(j)) {
        json_decref(j);
        berr_set(e, 500, "image config %s is not a JSON object", id);
        return NULL;
    }
    return j;
}

/* ---- references ---- */
void ref_strings(const ref *r, char *key, char *full, char *repo, size_t n)
{
    char name[768];
    ref_familiar_name(r, name, sizeof name);
    if (repo) snprintf(repo, n, "%s", name);
    const char *sep = r->digest[0] ? "@" : ":";
    const char *suffix = r->digest[0] ? r->digest : (r->tag[0] ? r->tag : "latest");
    if (key) snprintf(key, n, "%s%s%s", name, sep, suffix);
    if (full) snprintf(full, n, "%s/%s%s%s", r->domain, r->path, sep, suffix);
}

refent *st_ref_get(const store *s, const char *key)
{
    for (size_t i = 0; i < s->nrefs; i++)
        if (!strcmp(s->refs[i].key, key)) return &s->refs[i];
    return NULL;
}

int st_ref_set(store *s, const ref *r, const char *id, char old_id[DIGEST_LEN + 1])
{
    char key[1024], full[1024], repo[1024];
    ref_strings(r, key, full, repo, sizeof key);
    refent *re = st_ref_get(s, key);
    if (re) {
        if (!strcmp(re->id, id)) return 0;
        if (old_id) memcpy(old_id, re->id, DIGEST_LEN + 1);
        memcpy(re->id, id, DIGEST_LEN + 1);
        return 1;
    }
    if (s->nrefs == s->caprefs) {
        s->caprefs = s->caprefs ? 2 * s->caprefs : 16;
        s->refs = xrealloc(s->refs, s->caprefs * sizeof *s->refs);
    }
    re = &s->refs[s->nrefs++];
    *re = (refent){xstrdup(key), xstrdup(full), xstrdup(repo), r->digest[0] != 0, ""};
    memcpy(re->id, id, DIGEST_LEN + 1);
    return 0;
}

static void refent_free(refent *re)
{
    free(re->key);
    free(re->full);
    free(re->repo);
}

bool st_ref_del(store *s, const char *key)
{
    refent *re = st_ref_get(s, key);
    if (!re) return false;
    refent_free(re);
    *re = s->refs[--s->nrefs];
    return true;
}

int st_save_refs(store *s, berr *e)
{
    _cleanup_json_ json_t *j = json_object();
    for (size_t i = 0; i < s->nrefs; i++)
        json_object_set_new(j, s->refs[i].key, json_string(s->refs[i].id));
    _cleanup_free_ char *data = json_dumps(j, JSON_INDENT(1) | JSON_SORT_KEYS);
    _cleanup_free_ char *p = st_path(s, "repositories.json");
    if (write_file_atomic(p, data, strlen(data), 0644) < 0)
        return berr_errno(e, 500, "writing %s", p);
    return 0;
}

static int cmp_ref_full(const void *a, const void *b)
{
    return strcmp((*(refent *const *)a)->full, (*(refent *const *)b)->full);
}

size_t st_refs_of(const store *s, const char *id, refent ***out)
{
    size_t n = 0;
    *out = xcalloc(s->nrefs + 1, sizeof **out);
    for (size_t i = 0; i < s->nrefs; i++)
        if (!strcmp(s->refs[i].id, id)) (*out)[n++] = &s->refs[i];
    qsort(*out, n, sizeof **out, cmp_ref_full);
    return n;
}

int parse_tag_target(const char *repo, const char *tag, ref *r, berr *e)
{
    if (!repo || !*repo)
        return berr_set(e, 400, "repository name must have at least one component");
    if (strlen(repo) == 64 && is_hex(repo, 64))
        return berr_set(e, 400,
                        "invalid repository name (%s), cannot specify 64-byte hexadecimal strings",
                        repo);
    if (ref_parse(repo, r, e) < 0) return -1;
    if (tag && *tag) {
        if (!ref_valid_tag(tag)) return berr_set(e, 400, "invalid tag format");
        snprintf(r->tag, sizeof r->tag, "%s", tag);
        r->digest[0] = 0;
    } else if (r->digest[0]) {
        return berr_set(e, 400, "refusing to create a tag with a digest reference");
    }
    if (!r->tag[0]) snprintf(r->tag, sizeof r->tag, "latest");
    char name[768];
    ref_familiar_name(r, name, sizeof name);
    if (!strcmp(name, "sha256"))
        return berr_set(e, 400,
                        "refusing to create an ambiguous tag using digest algorithm as name");
    return 0;
}

/* ---- name resolution ---- */
static image *find_by_prefix(const store *s, const char *hex, size_t n, int *matches)
{
    image *found = NULL;
    *matches = 0;
    for (size_t i = 0; i < s->nimgs; i++)
        if (!strncmp(s->imgs[i]->id + 7, hex, n)) {
            found = s->imgs[i];
            (*matches)++;
        }
    return *matches == 1 ? found : NULL;
}

int st_resolve(store *s, const char *name, image **out, berr *e)
{
    if (!name || !*name) return berr_set(e, 400, "invalid reference format");
    const char *hex = str_starts(name, "sha256:") ? name + 7 : name;
    size_t hl = strlen(hex);
    if (hl == 64 && is_hex(hex, 64)) {
        char id[DIGEST_LEN + 1];
        snprintf(id, sizeof id, "sha256:%s", hex);
        if ((*out = st_image(s, id))) return 0;
        return berr_set(e, 404, "No such image: %s", id);
    }
    ref r;
    if (ref_parse(name, &r, e) < 0) return -1;
    char key[1024];
    ref_strings(&r, key, NULL, NULL, sizeof key);
    refent *re = st_ref_get(s, key);
    if (re && (*out = st_image(s, re->id))) return 0;
    int matches = 0;
    if (is_hex(hex, hl) && (*out = find_by_prefix(s, hex, hl, &matches))) return 0;
    return berr_set(e, 404, "No such image: %s", key);
}

/* ---- image records ---- */
static void image_free(image *img)
{
    if (!img) return;
    json_decref(img->labels);
    free(img->layers);
    free(img);
}

int st_write_record(store *s, const image *img, berr *e)
{
    _cleanup_json_ json_t *j = json_pack("{s:s, s:s, s:I}", "id", img->id, "parent", img->parent,
                                         "last_tag_ns", (json_int_t)img->last_tag_ns);
    json_t *layers = json_array();
    for (size_t i = 0; i < img->nlayers; i++)
        json_array_append_new(layers, json_string(img->layers[i]->chain));
    json_object_set_new(j, "layers", layers);
    _cleanup_free_ char *data = json_fast_dumps(j, JSON_COMPACT);
    _cleanup_free_ char *p = st_path(s, "images/%s.json", img->id + 7);
    if (write_file_atomic(p, data, strlen(data), 0644) < 0)
        return berr_errno(e, 500, "writing %s", p);
    return 0;
}

/* Builds the in-memory image for config bytes; diff_ids_out gets the
 * config's diff IDs (owned by the caller). */
static image *image_from_config(const char *id, const char *cfg, size_t len, json_t **diff_ids_out,
                                berr *e)
{
    json_error_t je;
    _cleanup_json_ json_t *j = json_fast_loadb(cfg, len, 0, &je);
    if (!json_is_object(j)) {
        berr_set(e, 400, "invalid image config: %s", j ? "not an object" : je.text);
        return NULL;
    }
    json_t *ids = config_diff_ids(j, e);
    if (!ids) return NULL;
    image *img = xcalloc(1, sizeof *img);
    snprintf(img->id, sizeof img->id, "%s", id);
    const char *created = jstr(j, "created");
    img->created_ns = created ? parse_rfc3339(created) : 0;
    if (img->created_ns < 0) img->created_ns = 0;
    json_t *labels = json_object_get(json_object_get(j, "config"), "Labels");
    if (json_is_object(labels) && json_object_size(labels)) img->labels = json_incref(labels);
    *diff_ids_out = ids;
    return img;
}

/* Links img to the layers for diff_ids (which must all exist). */
static int image_link_layers(store *s, image *img, const json_t *diff_ids, berr *e)
{
    char chain[DIGEST_LEN + 1] = "";
    size_t n = json_array_size(diff_ids);
    img->layers = xcalloc(n + 1, sizeof *img->layers);
    for (size_t i = 0; i < n; i++) {
        chain_id(chain, json_string_value(json_array_get(diff_ids, i)), chain);
        layer *l = st_layer(s, chain);
        if (!l) return berr_set(e, 500, "layer %s of image %s is missing", chain, img->id);
        img->layers[img->nlayers++] = l;
    }
    for (size_t i = 0; i < img->nlayers; i++) img->layers[i]->refs++;
    return 0;
}

static void add_image(store *s, image *img)
{
    if (s->nimgs == s->capimgs) {
        s->capimgs = s->capimgs ? 2 * s->capimgs : 16;
        s->imgs = xrealloc(s->imgs, s->capimgs * sizeof *s->imgs);
    }
    s->imgs[s->nimgs++] = img;
}

static void add_layer(store *s, layer *l)
{
    if (s->nlayers == s->caplayers) {
        s->caplayers = s->caplayers ? 2 * s->caplayers : 16;
        s->layers = xrealloc(s->layers, s->caplayers * sizeof *s->layers);
    }
    s->layers[s->nlayers++] = l;
}

/* ---- blobs ---- */
static int blob_install(store *s, const char *tmp_file, const char *digest, berr *e)
{
    _cleanup_free_ char *p = blob_path(s, digest);
    if (access(p, F_OK) == 0) {
        unlink(tmp_file);
        return 0;
    }
    if (rename(tmp_file, p) < 0) return berr_errno(e, 500, "storing blob %s", digest);
    _cleanup_free_ char *dir = st_path(s, "blobs/sha256");
    fsync_dir(dir);
    return 0;
}

int blob_put(store *s, const void *data, size_t len, char digest_out[DIGEST_LEN + 1], berr *e)
{
    sha256_buf(data, len, digest_out);
    _cleanup_free_ char *p = blob_path(s, digest_out);
    if (access(p, F_OK) == 0) return 0;
    _cleanup_free_ char *tmp = store_tmp_path(s);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd < 0) return berr_errno(e, 500, "creating %s", tmp);
    if (write_all(fd, data, len) < 0 || fsync(fd) < 0) {
        berr_errno(e, 500, "writing %s", tmp);
        close(fd);
        unlink(tmp);
        return -1;
    }
    close(fd);
    if (blob_install(s, tmp, digest_out, e) < 0) {
        unlink(tmp);
        return -1;
    }
    return 0;
}

/* ---- layers ---- */
static bool diff_in_use(const store *s, const layer *except, const char *diff)
{
    for (size_t i = 0; i < s->nlayers; i++)
        if (s->layers[i] != except && !strcmp(s->layers[i]->diff, diff)) return true;
    return false;
}

/* Removes l when nothing uses it: out of the table, its dir moved to the
 * trash, its tar blob unlinked when no other layer has the same diff. */
static bool gc_layer(store *s, layer *l, op *o)
{
    if (l->refs > 0 || l->pins > 0) return false;
    for (size_t i = 0; i < s->nlayers; i++)
        if (s->layers[i] == l) {
            s->layers[i] = s->layers[--s->nlayers];
            break;
        }
    _cleanup_free_ char *dir = layer_dir(s, l->chain);
    char *trash = store_tmp_path(s);
    if (rename(dir, trash) == 0)
        op_trash(o, trash);
    else {
        free(trash);
        op_trash(o, xstrdup(dir));
    }
    if (!diff_in_use(s, l, l->diff)) {
        _cleanup_free_ char *bp = blob_path(s, l->diff);
        unlink(bp);
    }
    free(l);
    return true;
}

static int write_layer_meta(const char *dir, const pending_layer *pl, berr *e)
{
    _cleanup_json_ json_t *m =
        json_pack("{s:s, s:s, s:s, s:I}", "chain_id", pl->chain, "diff_id", pl->diff, "parent",
                  pl->parent, "size", (json_int_t)pl->size);
    _cleanup_free_ char *data = json_fast_dumps(m, JSON_COMPACT);
    _cleanup_free_ char *p = xasprintf("%s/meta.json", dir);
    if (write_file_atomic(p, data, strlen(data), 0644) < 0)
        return berr_errno(e, 500, "writing %s", p);
    return 0;
}

static int unpack_layer(store *s, pending_layer *pl, berr *e)
{
    if (!(pl->tmp_dir = st_mkdtemp(s, "layer", e))) return -1;
    _cleanup_free_ char *diff = xasprintf("%s/diff", pl->tmp_dir);
    if (mkdir(diff, 0755) < 0) return berr_errno(e, 500, "mkdir %s", diff);
    _cleanup_close_ int fd = open(pl->tmp_blob, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return berr_errno(e, 500, "opening %s", pl->tmp_blob);
    if (tarx_extract(fd, diff, TARX_OVERLAY, e) < 0) return -1;
    pl->size = dir_size(diff);
    if (syncfs_path(pl->tmp_dir) < 0) return berr_errno(e, 500, "syncing %s", pl->tmp_dir);
    return write_layer_meta(pl->tmp_dir, pl, e);
}

bool layer_pin(store *s, const char *parent_chain, const char *diff, pending_layer *pl)
{
    *pl = (pending_layer){0};
    snprintf(pl->diff, sizeof pl->diff, "%s", diff);
    snprintf(pl->parent, sizeof pl->parent, "%s", parent_chain ? parent_chain : "");
    chain_id(pl->parent, diff, pl->chain);
    pthread_rwlock_wrlock(&s->lock);
    layer *l = st_layer(s, pl->chain);
    if (l) {
        l->pins++;
        pl->pinned = l;
    }
    pthread_rwlock_unlock(&s->lock);
    return pl->pinned != NULL;
}

int layer_unpack(store *s, pending_layer *pl, char *blob_file, berr *e)
{
    pl->tmp_blob = blob_file;
    return unpack_layer(s, pl, e);
}

int layer_prepare(store *s, const char *parent_chain, const char *diff, char *blob_file,
                  pending_layer *pl, berr *e)
{
    if (layer_pin(s, parent_chain, diff, pl)) {
        pl->tmp_blob = blob_file;
        return 0;
    }
    return layer_unpack(s, pl, blob_file, e);
}

layer *layer_commit(store *s, pending_layer *pl, berr *e)
{
    if (pl->pinned) return pl->pinned;
    layer *l = st_layer(s, pl->chain);
    if (l) { /* another operation brought the same layer in meanwhile */
        l->pins++;
        return pl->pinned = l;
    }
    if (blob_install(s, pl->tmp_blob, pl->diff, e) < 0) return NULL;
    free(pl->tmp_blob);
    pl->tmp_blob = NULL;
    _cleanup_free_ char *dst = layer_dir(s, pl->chain);
    if (rename(pl->tmp_dir, dst) < 0) {
        berr_errno(e, 500, "moving layer %s into place", pl->chain);
        return NULL;
    }
    _cleanup_free_ char *parent = st_path(s, "layers");
    fsync_dir(parent);
    free(pl->tmp_dir);
    pl->tmp_dir = NULL;
    l = xcalloc(1, sizeof *l);
    memcpy(l->chain, pl->chain, sizeof l->chain);
    memcpy(l->diff, pl->diff, sizeof l->diff);
    memcpy(l->parent, pl->parent, sizeof l->parent);
    l->size = pl->size;
    l->pins = 1;
    add_layer(s, l);
    return pl->pinned = l;
}

void layer_unpin(store *s, layer *l, op *o)
{
    l->pins--;
    gc_layer(s, l, o);
}

void layer_release(store *s, pending_layer *pl, op *o)
{
    if (pl->pinned) {
        pl->pinned->pins--;
        gc_layer(s, pl->pinned, o);
        pl->pinned = NULL;
    }
    if (pl->tmp_dir) op_trash(o, pl->tmp_dir);
    if (pl->tmp_blob) {
        unlink(pl->tmp_blob);
        free(pl->tmp_blob);
    }
    pl->tmp_dir = pl->tmp_blob = NULL;
}

/* ---- images: commit and delete ---- */
static bool layers_match(layer **layers, size_t n, const json_t *diff_ids)
{
    if (json_array_size(diff_ids) != n) return false;
    for (size_t i = 0; i < n; i++)
        if (strcmp(layers[i]->diff, json_string_value(json_array_get(diff_ids, i)))) return false;
    return true;
}

int image_commit(store *s, const char *config, size_t len, layer **layers, size_t n,
                 const char *parent, image **out, berr *e)
{
    char id[DIGEST_LEN + 1];
    sha256_buf(config, len, id);
    if ((*out = st_image(s, id))) return 0;
    _cleanup_json_ json_t *ids = NULL;
    image *img = image_from_config(id, config, len, &ids, e);
    if (!img) return -1;
    if (!layers_match(layers, n, ids)) {
        image_free(img);
        return berr_set(e, 400, "image config %s does not match its layers", id);
    }
    snprintf(img->parent, sizeof img->parent, "%s", parent ? parent : "");
    char got[DIGEST_LEN + 1];
    if (blob_put(s, config, len, got, e) < 0 || image_link_layers(s, img, ids, e) < 0) {
        image_free(img);
        return -1;
    }
    if (st_write_record(s, img, e) < 0) {
        for (size_t i = 0; i < img->nlayers; i++) img->layers[i]->refs--;
        image_free(img);
        return -1;
    }
    add_image(s, img);
    *out = img;
    return 0;
}

int st_delete_image(store *s, image *img, json_t *records, int64_t *reclaimed, op *o, berr *e)
{
    _cleanup_free_ char *rec = st_path(s, "images/%s.json", img->id + 7);
    if (unlink(rec) < 0 && errno != ENOENT) return berr_errno(e, 500, "removing %s", rec);
    _cleanup_free_ char *dir = st_path(s, "images");
    fsync_dir(dir);
    _cleanup_free_ char *cfg = blob_path(s, img->id);
    unlink(cfg);
    for (size_t i = 0; i < s->nimgs; i++)
        if (s->imgs[i] == img) {
            memmove(&s->imgs[i], &s->imgs[i + 1], (s->nimgs - i - 1) * sizeof *s->imgs);
            s->nimgs--;
            break;
        }
    for (size_t i = 0; i < s->nimgs; i++) /* children lose their parent */
        if (!strcmp(s->imgs[i]->parent, img->id)) s->imgs[i]->parent[0] = 0;
    op_image_event(o, NULL, "delete", img->id);
    json_array_append_new(records, json_pack("{s:s}", "Deleted", img->id));
    for (size_t i = img->nlayers; i-- > 0;) {
        layer *l = img->layers[i];
        l->refs--;
        char chain[DIGEST_LEN + 1];
        memcpy(chain, l->chain, sizeof chain);
        int64_t size = l->size;
        if (gc_layer(s, l, o)) {
            json_array_append_new(records, json_pack("{s:s}", "Deleted", chain));
            if (reclaimed) *reclaimed += size;
        }
    }
    image_free(img);
    return 0;
}

/* ---- open: load the index, recover from crashes ---- */
static void clean_dir(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d) return;
    struct dirent *de;
    while ((de = readdir(d))) {
        if (de->d_name[0] == '.' && (!de->d_name[1] || !strcmp(de->d_name, ".."))) continue;
        _cleanup_free_ char *p = xasprintf("%s/%s", dir, de->d_name);
        rm_rf(p);
    }
    closedir(d);
}

static layer *load_layer(const store *s, const char *hex)
{
    _cleanup_free_ char *p = st_path(s, "layers/%s/meta.json", hex);
    _cleanup_free_ char *data = NULL;
    if (strlen(hex) != 64 || !is_hex(hex, 64) || read_file(p, &data, NULL) < 0) return NULL;
    _cleanup_json_ json_t *m = json_fast_loadb(data, strlen(data), 0, NULL);
    const char *chain = jstr(m, "chain_id"), *diff = jstr(m, "diff_id"), *par = jstr(m, "parent");
    if (!digest_valid(chain) || strcmp(chain + 7, hex) || !digest_valid(diff) || !par) return NULL;
    char want[DIGEST_LEN + 1];
    chain_id(par, diff, want);
    if (strcmp(want, chain)) return NULL;
    layer *l = xcalloc(1, sizeof *l);
    memcpy(l->chain, chain, sizeof l->chain);
    memcpy(l->diff, diff, sizeof l->diff);
    snprintf(l->parent, sizeof l->parent, "%s", par);
    l->size = json_integer_value(json_object_get(m, "size"));
    return l;
}

static void load_layers(store *s)
{
    _cleanup_free_ char *dir = st_path(s, "layers");
    DIR *d = opendir(dir);
    if (!d) return;
    struct dirent *de;
    while ((de = readdir(d))) {
        if (de->d_name[0] == '.') continue;
        layer *l = load_layer(s, de->d_name);
        if (l) {
            add_layer(s, l);
            continue;
        }
        log_warn("image store: removing incomplete layer %s", de->d_name);
        _cleanup_free_ char *p = xasprintf("%s/%s", dir, de->d_name);
        rm_rf(p);
    }
    closedir(d);
}

static image *load_image(store *s, const char *path, berr *e)
{
    _cleanup_free_ char *data = NULL;
    if (read_file(path, &data, NULL) < 0) return NULL;
    _cleanup_json_ json_t *rec = json_fast_loadb(data, strlen(data), 0, NULL);
    const char *id = jstr(rec, "id");
    if (!digest_valid(id)) return NULL;
    _cleanup_free_ char *cfg = NULL;
    size_t len;
    char got[DIGEST_LEN + 1];
    if (st_read_config(s, id, &cfg, &len, e) < 0) return NULL;
    sha256_buf(cfg, len, got);
    if (strcmp(got, id)) return NULL;
    _cleanup_json_ json_t *ids = NULL;
    image *img = image_from_config(id, cfg, len, &ids, e);
    if (!img) return NULL;
    if (image_link_layers(s, img, ids, e) < 0) {
        for (size_t i = 0; i < img->nlayers; i++) img->layers[i]->refs--;
        image_free(img);
        return NULL;
    }
    const char *parent = jstr(rec, "parent");
    snprintf(img->parent, sizeof img->parent, "%s", digest_valid(parent) ? parent : "");
    img->last_tag_ns = json_integer_value(json_object_get(rec, "last_tag_ns"));
    return img;
}

static void load_images(store *s)
{
    _cleanup_free_ char *dir = st_path(s, "images");
    DIR *d = opendir(dir);
    if (!d) return;
    struct dirent *de;
    while ((de = readdir(d))) {
        if (de->d_name[0] == '.') continue;
        _cleanup_free_ char *p = xasprintf("%s/%s", dir, de->d_name);
        berr e = {0};
        image *img = str_ends(de->d_name, ".json") ? load_image(s, p, &e) : NULL;
        if (img && !st_image(s, img->id)) {
            add_image(s, img);
            continue;
        }
        if (img) image_free(img);
        log_warn("image store: dropping bad image record %s %s", de->d_name, e.msg);
        unlink(p);
    }
    closedir(d);
    for (size_t i = 0; i < s->nimgs; i++) /* parents must exist */
        if (s->imgs[i]->parent[0] && !st_image(s, s->imgs[i]->parent)) s->imgs[i]->parent[0] = 0;
}

static void load_refs(store *s)
{
    _cleanup_free_ char *p = st_path(s, "repositories.json");
    _cleanup_free_ char *data = NULL;
    if (read_file(p, &data, NULL) < 0) return;
    _cleanup_json_ json_t *j = json_fast_loadb(data, strlen(data), 0, NULL);
    const char *k;
    json_t *v;
    json_object_foreach(j, k, v)
    {
        ref r;
        const char *id = json_string_value(v);
        if (!digest_valid(id) || !st_image(s, id) || ref_parse(k, &r, NULL) < 0) continue;
        st_ref_set(s, &r, id, NULL);
    }
}

/* Removes leftovers: unused layers, unreferenced blobs, temp files of
 * write_file_atomic in the state dirs. */
static void gc_at_open(store *s)
{
    op o = {0};
    for (size_t i = s->nlayers; i-- > 0;) gc_layer(s, s->layers[i], &o);
    op_finish(s, &o);
    _cleanup_free_ char *dir = st_path(s, "blobs/sha256");
    DIR *d = opendir(dir);
    struct dirent *de;
    while (d && (de = readdir(d))) {
        if (de->d_name[0] == '.' && (!de->d_name[1] || !strcmp(de->d_name, ".."))) continue;
        char dg[DIGEST_LEN + 1] = "";
        if (strlen(de->d_name) == 64) snprintf(dg, sizeof dg, "sha256:%.64s", de->d_name);
        if (digest_valid(dg) && (st_image(s, dg) || diff_in_use(s, NULL, dg))) continue;
        _cleanup_free_ char *p = xasprintf("%s/%s", dir, de->d_name);
        unlink(p);
    }
    if (d) closedir(d);
}

static void clean_atomic_leftovers(store *s)
{
    _cleanup_free_ char *root = xstrdup(s->root);
    DIR *d = opendir(root);
    struct dirent *de;
    while (d && (de = readdir(d)))
        if (str_starts(de->d_name, "repositories.json.tmp.")) {
            _cleanup_free_ char *p = xasprintf("%s/%s", root, de->d_name);
            unlink(p);
        }
    if (d) closedir(d);
}

int store_open(const char *data_root, store **out, berr *e)
{
    static const char *dirs[] = {"blobs/sha256", "layers", "images", "tmp"};
    store *s = xcalloc(1, sizeof *s);
    s->root = xstrdup(data_root);
    for (size_t i = 0; i < sizeof dirs / sizeof *dirs; i++) {
        _cleanup_free_ char *p = st_path(s, "%s", dirs[i]);
        if (mkdir_p(p, 0700) < 0) {
            berr_errno(e, 500, "creating %s", p);
            free(s->root);
            free(s);
            return -1;
        }
    }
    pthread_rwlock_init(&s->lock, NULL);
    _cleanup_free_ char *tmp = st_path(s, "tmp");
    clean_dir(tmp);
    clean_atomic_leftovers(s);
    load_layers(s);
    load_images(s);
    load_refs(s);
    gc_at_open(s);
    *out = s;
    return 0;
}

void store_close(store *s)
{
    if (!s) return;
    for (size_t i = 0; i < s->nimgs; i++) image_free(s->imgs[i]);
    for (size_t i = 0; i < s->nlayers; i++) free(s->layers[i]);
    for (size_t i = 0; i < s->nrefs; i++) refent_free(&s->refs[i]);
    free(s->imgs);
    free(s->layers);
    free(s->refs);
    pthread_rwlock_destroy(&s->lock);
    free(s->root);
    free(s);
}

void store_set_event_hook(store *s, image_event_fn fn)
{
    s->hook = fn;
}

void store_set_usage_hook(store *s, image_usage_fn fn)
{
    s->usage = fn;
}
