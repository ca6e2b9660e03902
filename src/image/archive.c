/* archive.c: docker save / docker load.
 *
 * Load reads the outer tar (any compression) with libarchive, streaming each
 * regular file to a temp file under tmp/load-XXXXXX while hashing it (paths
 * that climb out are refused; symlinks and hardlinks between entries are
 * kept as aliases, never created on disk). Then it plans the images from
 * manifest.json (docker save, legacy <v1>/layer.tar or blobs/sha256 layout)
 * or index.json (OCI image layout, nested indexes, compressed layers),
 * prepares every layer (the uncompressed digest must equal the config's
 * diff_id) and commits all images at once; configs are stored byte for
 * byte, so IDs stay what docker computed. Any failure leaves nothing behind.
 *
 * Save writes, streaming with libarchive to the output fd, both formats at
 * once: blobs/sha256/<...> (layer tars by diff ID, configs, OCI manifests)
 * with index.json and oci-layout, plus docker's manifest.json, repositories,
 * <id-hex>.json and <v1-id>/{VERSION,json,layer.tar -> ../blobs/...}. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/jsonutil.h"
#include "common/libarchive.h"
#include "internal.h"
#include "tarx.h"

#define MAX_JSON (16 << 20)
#define MT_OCI_MANIFEST "application/vnd.oci.image.manifest.v1+json"
#define MT_OCI_INDEX "application/vnd.oci.image.index.v1+json"
#define MT_DOCKER_MANIFEST "application/vnd.docker.distribution.manifest.v2+json"
#define MT_DOCKER_LIST "application/vnd.docker.distribution.manifest.list.v2+json"

/* ================= load: the outer archive ================= */
typedef struct entry {
    char *path; /* normalized, relative to the archive root */
    char *file; /* extracted regular file, or NULL */
    char *link; /* normalized target of a symlink/hardlink, or NULL */
    char digest[DIGEST_LEN + 1];
} entry;

typedef struct outer {
    char *dir;
    entry *ents;
    size_t n, cap;
    unsigned long seq;
} outer;

/* Joins base and p into a normalized relative path; -1 when it climbs out. */
static int norm_path(const char *base, const char *p, char *out, size_t n)
{
    char *stack[256];
    size_t depth = 0;
    _cleanup_free_ char *buf = p[0] == '/' ? xstrdup(p) : xasprintf("%s/%s", base, p);
    char *save = NULL;
    for (char *t = strtok_r(buf, "/", &save); t; t = strtok_r(NULL, "/", &save)) {
        if (!strcmp(t, ".")) continue;
        if (!strcmp(t, "..")) {
            if (!depth) return -1;
            depth--;
            continue;
        }
        if (depth == 256) return -1;
        stack[depth++] = t;
    }
    size_t len = 0;
    out[0] = 0;
    for (size_t i = 0; i < depth; i++) {
        int w = snprintf(out + len, n - len, "%s%s", i ? "/" : "", stack[i]);
        if (w < 0 || (size_t)w >= n - len) return -1;
        len += (size_t)w;
    }
    return 0;
}

static void outer_free(outer *o, op *ops)
{
    for (size_t i = 0; i < o->n; i++) {
        free(o->ents[i].path);
        free(o->ents[i].file);
        free(o->ents[i].link);
    }
    free(o->ents);
    if (o->dir) op_trash(ops, o->dir);
    *o = (outer){0};
}

static entry *outer_add(outer *o, const char *path)
{
    for (size_t i = 0; i < o->n; i++)
        if (!strcmp(o->ents[i].path, path)) { /* a later entry replaces an earlier one */
            free(o->ents[i].file);
            free(o->ents[i].link);
            o->ents[i] = (entry){o->ents[i].path, NULL, NULL, ""};
            return &o->ents[i];
        }
    if (o->n == o->cap) {
        o->cap = o->cap ? 2 * o->cap : 32;
        o->ents = xrealloc(o->ents, o->cap * sizeof *o->ents);
    }
    o->ents[o->n] = (entry){xstrdup(path), NULL, NULL, ""};
    return &o->ents[o->n++];
}

static int copy_entry_data(struct archive *a, entry *en, outer *o, berr *e)
{
    en->file = xasprintf("%s/%lu", o->dir, o->seq++);
    _cleanup_close_ int fd = open(en->file, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) return berr_errno(e, 500, "creating %s", en->file);
    sha256_ctx *h = sha256_new();
    enum { BUFSZ = 1 << 16 }; /* on the heap: a __thread buffer is in every thread's TLS */
    _cleanup_free_ char *buf = xmalloc(BUFSZ);
    for (;;) {
        la_ssize_t n = archive_read_data(a, buf, BUFSZ);
        if (n == 0) break;
        if (n < 0) {
            sha256_final(h, en->digest);
            return berr_set(e, 400, "invalid tar archive: %s", archive_error_string(a));
        }
        sha256_update(h, buf, (size_t)n);
        if (write_all(fd, buf, (size_t)n) < 0) {
            sha256_final(h, en->digest);
            return berr_errno(e, 500, "writing %s", en->file);
        }
    }
    sha256_final(h, en->digest);
    return 0;
}

static int outer_entry(struct archive *a, struct archive_entry *ae, outer *o, berr *e)
{
    const char *name = archive_entry_pathname(ae);
    char path[PATH_MAX], target[PATH_MAX];
    if (!name || norm_path("", name, path, sizeof path) < 0)
        return berr_set(e, 400, "invalid archive: entry \"%s\" points outside the archive",
                        name ? name : "");
    const char *hl = archive_entry_hardlink(ae);
    mode_t type = archive_entry_filetype(ae);
    if (hl || type == AE_IFLNK) {
        const char *t = hl ? hl : archive_entry_symlink(ae);
        _cleanup_free_ char *base = xstrdup(path);
        char *slash = strrchr(base, '/');
        if (slash)
            *slash = 0;
        else
            base[0] = 0;
        if (!t || norm_path(hl ? "" : base, t, target, sizeof target) < 0)
            return berr_set(e, 400, "invalid archive: link \"%s\" points outside the archive",
                            name);
        outer_add(o, path)->link = xstrdup(target);
        return 0;
    }
    if (type != AE_IFREG || !path[0]) return 0;
    return copy_entry_data(a, outer_add(o, path), o, e);
}

static int outer_read(store *s, int fd, outer *o, berr *e)
{
    if (la_need(e) < 0) return -1;
    if (!(o->dir = st_mkdtemp(s, "load", e))) return -1;
    struct archive *a = archive_read_new();
    archive_read_support_filter_all(a);
    archive_read_support_format_tar(a);
    int rc = 0;
    if (archive_read_open_fd(a, fd, 1 << 16) != ARCHIVE_OK)
        rc = berr_set(e, 400, "invalid tar archive: %s", archive_error_string(a));
    struct archive_entry *ae;
    while (rc == 0) {
        int r = archive_read_next_header(a, &ae);
        if (r == ARCHIVE_EOF) break;
        if (r < ARCHIVE_WARN)
            rc = berr_set(e, 400, "invalid tar archive: %s", archive_error_string(a));
        else
            rc = outer_entry(a, ae, o, e);
    }
    archive_read_free(a);
    return rc;
}

/* The regular-file entry for path, following links inside the archive. */
static entry *outer_find(const outer *o, const char *path)
{
    char cur[PATH_MAX];
    if (norm_path("", path, cur, sizeof cur) < 0) return NULL;
    for (int hop = 0; hop < 16; hop++) {
        entry *en = NULL;
        for (size_t i = 0; i < o->n && !en; i++)
            if (!strcmp(o->ents[i].path, cur)) en = &o->ents[i];
        if (!en || en->file) return en;
        snprintf(cur, sizeof cur, "%s", en->link);
    }
    return NULL;
}

static json_t *outer_json(const outer *o, const char *path, char **raw, size_t *rawlen, berr *e)
{
    entry *en = outer_find(o, path);
    if (!en) {
        berr_set(e, 400, "invalid archive: %s not found", path);
        return NULL;
    }
    struct stat st;
    char *data = NULL;
    size_t len = 0;
    if (stat(en->file, &st) < 0 || st.st_size > MAX_JSON || read_file(en->file, &data, &len) < 0) {
        berr_set(e, 400, "invalid archive: cannot read %s", path);
        return NULL;
    }
    json_error_t je;
    json_t *j = json_fast_loadb(data, len, 0, &je);
    if (!j) berr_set(e, 400, "invalid archive: %s: %s", path, je.text);
    if (raw && j) {
        *raw = data;
        *rawlen = len;
    } else {
        free(data);
    }
    return j;
}

/* ================= load: planning ================= */
typedef struct load_img {
    char id[DIGEST_LEN + 1], parent[DIGEST_LEN + 1];
    char *config;
    size_t config_len;
    json_t *diff_ids, *tags; /* tags: familiar "name:tag" strings */
    entry **files;
    size_t *pl; /* indexes into plan.pls, one per layer */
    size_t n;
} load_img;

typedef struct plan {
    load_img *imgs;
    size_t n;
    pending_layer *pls;
    size_t npls;
} plan;

static void plan_free(store *s, plan *p, op *o)
{
    if (p->npls) {
        pthread_rwlock_wrlock(&s->lock);
        for (size_t i = 0; i < p->npls; i++) layer_release(s, &p->pls[i], o);
        pthread_rwlock_unlock(&s->lock);
    }
    for (size_t i = 0; i < p->n; i++) {
        free(p->imgs[i].config);
        json_decref(p->imgs[i].diff_ids);
        json_decref(p->imgs[i].tags);
        free(p->imgs[i].files);
        free(p->imgs[i].pl);
    }
    free(p->imgs);
    free(p->pls);
}

static int check_os(const json_t *cfg, berr *e)
{
    const char *os = jstr(cfg, "os");
    if (os && *os && strcmp(os, "linux"))
        return berr_set(e, 400, "cannot load %s image on linux", os);
    return 0;
}

/* Adds an image (taking config) unless the same ID is planned already. */
static int plan_add(plan *p, char *config, size_t len, entry **files, size_t nfiles, berr *e)
{
    char id[DIGEST_LEN + 1];
    sha256_buf(config, len, id);
    for (size_t i = 0; i < p->n; i++)
        if (!strcmp(p->imgs[i].id, id)) {
            free(config);
            return (int)i;
        }
    _cleanup_json_ json_t *cfg = json_fast_loadb(config, len, 0, NULL);
    json_t *ids = cfg ? config_diff_ids(cfg, e) : NULL;
    if (!cfg) berr_set(e, 400, "invalid image config %s", id);
    if (!ids || check_os(cfg, e) < 0) {
        json_decref(ids);
        free(config);
        return -1;
    }
    if (json_array_size(ids) != nfiles) {
        json_decref(ids);
        free(config);
        return berr_set(e, 400, "invalid manifest, layers length mismatch: expected %zu, got %zu",
                        nfiles, json_array_size(ids));
    }
    p->imgs = xrealloc(p->imgs, (p->n + 1) * sizeof *p->imgs);
    load_img *li = &p->imgs[p->n];
    *li = (load_img){
        .config = config, .config_len = len, .diff_ids = ids, .tags = json_array(), .n = nfiles};
    memcpy(li->id, id, sizeof id);
    li->files = xcalloc(nfiles + 1, sizeof *li->files);
    memcpy(li->files, files, nfiles * sizeof *files);
    li->pl = xcalloc(nfiles + 1, sizeof *li->pl);
    return (int)p->n++;
}

static void plan_tag(load_img *li, const ref *r)
{
    char key[1024];
    ref_strings(r, key, NULL, NULL, sizeof key);
    size_t i;
    json_t *v;
    json_array_foreach(li->tags, i, v) if (!strcmp(json_string_value(v), key)) return;
    json_array_append_new(li->tags, json_string(key));
}

static int docker_item(const outer *o, plan *p, const json_t *it, berr *e)
{
    const char *cpath = jstr(it, "Config");
    json_t *layers = json_object_get(it, "Layers"), *tags = json_object_get(it, "RepoTags");
    if (!cpath || (layers && !json_is_array(layers)))
        return berr_set(e, 400, "invalid archive: malformed manifest.json");
    char *config = NULL;
    size_t len = 0;
    json_t *cj = outer_json(o, cpath, &config, &len, e);
    if (!cj) return -1;
    json_decref(cj);
    size_t n = json_array_size(layers), i;
    entry **files = xcalloc(n + 1, sizeof *files);
    json_t *v;
    json_array_foreach(layers, i, v) if (!(files[i] = outer_find(o, json_string_value(v) ?: "")))
    {
        free(files);
        free(config);
        return berr_set(e, 400, "invalid archive: layer %s not found", json_string_value(v) ?: "?");
    }
    int idx = plan_add(p, config, len, files, n, e);
    free(files);
    if (idx < 0) return -1;
    json_array_foreach(tags, i, v)
    {
        ref r;
        if (!json_is_string(v) || ref_parse(json_string_value(v), &r, NULL) < 0 || !r.tag[0] ||
            r.digest[0])
            return berr_set(e, 400, "invalid tag \"%s\"", json_string_value(v) ?: "?");
        plan_tag(&p->imgs[idx], &r);
    }
    const char *parent = jstr(it, "Parent");
    if (digest_valid(parent)) snprintf(p->imgs[idx].parent, DIGEST_LEN + 1, "%s", parent);
    return 0;
}

static int plan_docker(const outer *o, plan *p, berr *e)
{
    _cleanup_json_ json_t *m = outer_json(o, "manifest.json", NULL, NULL, e);
    if (!m) return -1;
    if (!json_is_array(m))
        return berr_set(e, 400, "invalid archive: manifest.json is not an array");
    size_t i;
    json_t *it;
    json_array_foreach(m, i, it) if (docker_item(o, p, it, e) < 0) return -1;
    for (i = 0; i < p->n; i++) { /* docker keeps parent links only inside the archive */
        bool ok = false;
        for (size_t k = 0; k < p->n; k++) ok |= k != i && !strcmp(p->imgs[k].id, p->imgs[i].parent);
        if (!ok) p->imgs[i].parent[0] = 0;
    }
    return 0;
}

/* ---- OCI image layout ---- */
static entry *oci_blob(const outer *o, const json_t *desc, berr *e)
{
    const char *d = jstr(desc, "digest");
    if (!digest_valid(d)) {
        berr_set(e, 400, "invalid archive: unsupported or malformed digest \"%s\"", d ? d : "");
        return NULL;
    }
    char path[128];
    snprintf(path, sizeof path, "blobs/sha256/%s", d + 7);
    entry *en = outer_find(o, path);
    if (!en)
        berr_set(e, 400, "invalid archive: blob %s not found", d);
    else if (strcmp(en->digest, d)) {
        berr_set(e, 400, "invalid archive: blob %s has digest %s", d, en->digest);
        en = NULL;
    }
    return en;
}

static json_t *oci_json(const outer *o, const json_t *desc, char **raw, size_t *len, berr *e)
{
    entry *en = oci_blob(o, desc, e);
    if (!en) return NULL;
    return outer_json(o, en->path, raw, len, e);
}

static int oci_manifest(const outer *o, plan *p, const json_t *desc, const ref *name, berr *e)
{
    _cleanup_json_ json_t *m = oci_json(o, desc, NULL, NULL, e);
    if (!m) return -1;
    char *config = NULL;
    size_t len = 0;
    json_t *cj = oci_json(o, json_object_get(m, "config"), &config, &len, e);
    if (!cj) return -1;
    json_decref(cj);
    json_t *layers = json_object_get(m, "layers");
    size_t n = json_array_size(layers), i;
    entry **files = xcalloc(n + 1, sizeof *files);
    json_t *v;
    json_array_foreach(layers, i, v) if (!(files[i] = oci_blob(o, v, e)))
    {
        free(files);
        free(config);
        return -1;
    }
    int idx = plan_add(p, config, len, files, n, e);
    free(files);
    if (idx < 0) return -1;
    if (name) plan_tag(&p->imgs[idx], name);
    return 0;
}

static bool is_attestation(const json_t *desc)
{
    json_t *ann = json_object_get(desc, "annotations");
    const char *os = jstr(json_object_get(desc, "platform"), "os");
    return jstr(ann, "vnd.docker.reference.type") || (os && !strcmp(os, "unknown"));
}

/* The manifest of an index for this host (linux/<uname arch>), or the
 * only usable one. */
static const json_t *pick_platform(const json_t *idx)
{
    static const char *arch =
#if defined(__x86_64__)
        "amd64";
#elif defined(__aarch64__)
        "arm64";
#else
        "";
#endif
    json_t *ms = json_object_get(idx, "manifests"), *v, *only = NULL;
    size_t i, usable = 0;
    json_array_foreach(ms, i, v)
    {
        if (is_attestation(v)) continue;
        json_t *pf = json_object_get(v, "platform");
        const char *os = jstr(pf, "os"), *a = jstr(pf, "architecture");
        if (!pf || ((!os || !strcmp(os, "linux")) && (!a || !strcmp(a, arch)))) return v;
        only = v;
        usable++;
    }
    return usable == 1 ? only : NULL;
}

static int oci_desc(const outer *o, plan *p, const json_t *desc, const ref *name, int depth,
                    berr *e)
{
    const char *mt = jstr(desc, "mediaType");
    if (!mt || !strcmp(mt, MT_OCI_MANIFEST) || !strcmp(mt, MT_DOCKER_MANIFEST))
        return oci_manifest(o, p, desc, name, e);
    if (strcmp(mt, MT_OCI_INDEX) && strcmp(mt, MT_DOCKER_LIST)) return 0;
    if (depth > 4) return berr_set(e, 400, "invalid archive: indexes nested too deeply");
    _cleanup_json_ json_t *idx = oci_json(o, desc, NULL, NULL, e);
    if (!idx) return -1;
    const json_t *m = pick_platform(idx);
    if (!m)
        return berr_set(e, 400, "invalid archive: no image for linux in %s", jstr(desc, "digest"));
    return oci_desc(o, p, m, name, depth + 1, e);
}

/* The image name a top-level descriptor carries, if any. */
static bool oci_name(const json_t *desc, ref *r)
{
    json_t *ann = json_object_get(desc, "annotations");
    const char *n = jstr(ann, "io.containerd.image.name");
    if (!n) {
        n = jstr(ann, "org.opencontainers.image.ref.name");
        if (n && !strchr(n, ':') && !strchr(n, '/')) n = NULL; /* only a tag */
    }
    if (!n || ref_parse(n, r, NULL) < 0 || r->digest[0]) return false;
    if (!r->tag[0]) snprintf(r->tag, sizeof r->tag, "latest");
    return true;
}

static int plan_oci(const outer *o, plan *p, berr *e)
{
    _cleanup_json_ json_t *idx = outer_json(o, "index.json", NULL, NULL, e);
    if (!idx) return -1;
    json_t *ms = json_object_get(idx, "manifests"), *v;
    if (!json_is_array(ms)) return berr_set(e, 400, "invalid archive: index.json has no manifests");
    size_t i;
    json_array_foreach(ms, i, v)
    {
        ref r;
        bool named = oci_name(v, &r);
        if (oci_desc(o, p, v, named ? &r : NULL, 0, e) < 0) return -1;
    }
    return 0;
}

/* ================= load: layers and commit ================= */
/* A verified uncompressed blob file for en (ownership to the caller). */
static char *layer_blob(store *s, const entry *en, const char *diff, size_t i, berr *e)
{
    char *tmp = store_tmp_path(s);
    if (!strcmp(en->digest, diff)) { /* uncompressed: the file itself */
        int fd = link(en->file, tmp) == 0 ? open(tmp, O_RDONLY | O_CLOEXEC) : -1;
        if (fd < 0 || fsync(fd) < 0) {
            berr_errno(e, 500, "linking %s", tmp);
            if (fd >= 0) close(fd);
            unlink(tmp);
            free(tmp);
            return NULL;
        }
        close(fd);
        return tmp;
    }
    char got[DIGEST_LEN + 1] = "";
    int64_t size;
    _cleanup_close_ int in = open(en->file, O_RDONLY | O_CLOEXEC);
    int out = open(tmp, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    int rc = in < 0 || out < 0 ? berr_errno(e, 500, "opening layer %s", en->path)
                               : tarx_decompress(in, out, got, &size, e);
    if (rc == 0 && strcmp(got, diff))
        rc = berr_set(e, 400, "invalid diffID for layer %zu: expected \"%s\", got \"%s\"", i, diff,
                      got);
    if (rc == 0 && fsync(out) < 0) rc = berr_errno(e, 500, "syncing %s", tmp);
    if (out >= 0) close(out);
    if (rc < 0) {
        unlink(tmp);
        free(tmp);
        return NULL;
    }
    return tmp;
}

static long plan_find_chain(const plan *p, const char *chain)
{
    for (size_t i = 0; i < p->npls; i++)
        if (!strcmp(p->pls[i].chain, chain)) return (long)i;
    return -1;
}

static int prepare_image(store *s, plan *p, load_img *li, berr *e)
{
    char parent[DIGEST_LEN + 1] = "";
    for (size_t i = 0; i < li->n; i++) {
        const char *diff = json_string_value(json_array_get(li->diff_ids, i));
        char chain[DIGEST_LEN + 1];
        chain_id(parent, diff, chain);
        long k = plan_find_chain(p, chain);
        if (k < 0) {
            p->pls = xrealloc(p->pls, (p->npls + 1) * sizeof *p->pls);
            pending_layer *pl = &p->pls[k = (long)p->npls++];
            if (!layer_pin(s, parent, diff, pl)) {
                char *blob = layer_blob(s, li->files[i], diff, i, e);
                if (!blob || layer_unpack(s, pl, blob, e) < 0) return -1;
            }
        }
        li->pl[i] = (size_t)k;
        memcpy(parent, chain, sizeof parent);
    }
    return 0;
}

static void add_line(json_t *lines, const char *fmt, const char *a, const char *b)
{
    json_array_append_new(lines, json_sprintf(fmt, a, b));
}

static int commit_one(store *s, plan *p, load_img *li, json_t *lines, op *o, berr *e)
{
    layer **ls = xcalloc(li->n + 1, sizeof *ls);
    for (size_t i = 0; i < li->n; i++) ls[i] = p->pls[li->pl[i]].pinned;
    image *img;
    int rc = image_commit(s, li->config, li->config_len, ls, li->n, li->parent, &img, e);
    free(ls);
    if (rc < 0) return -1;
    size_t i;
    json_t *v;
    json_array_foreach(li->tags, i, v)
    {
        ref r;
        char old[DIGEST_LEN + 1];
        if (ref_parse(json_string_value(v), &r, e) < 0) return -1;
        if (st_ref_set(s, &r, img->id, old) == 1)
            add_line(lines,
                     "The image %s already exists, renaming the old one with ID %s to empty string",
                     json_string_value(v), old);
        add_line(lines, "Loaded image: %s%s", json_string_value(v), "");
    }
    if (!json_array_size(li->tags)) add_line(lines, "Loaded image ID: %s%s", img->id, "");
    op_image_event(o, img, "load", img->id);
    return 0;
}

static int commit_plan(store *s, plan *p, json_t *lines, op *o, berr *e)
{
    int rc = 0;
    pthread_rwlock_wrlock(&s->lock);
    for (size_t i = 0; i < p->npls && rc == 0; i++)
        if (!layer_commit(s, &p->pls[i], e)) rc = -1;
    for (size_t i = 0; i < p->n && rc == 0; i++) rc = commit_one(s, p, &p->imgs[i], lines, o, e);
    if (rc == 0) rc = st_save_refs(s, e);
    pthread_rwlock_unlock(&s->lock);
    return rc;
}

int image_load(store *s, int in_fd, void (*progress)(void *arg, const char *line), void *arg,
               berr *e)
{
    outer o = {0};
    plan p = {0};
    op ops = {0};
    _cleanup_json_ json_t *lines = json_array();
    int rc = outer_read(s, in_fd, &o, e);
    if (rc == 0) {
        if (outer_find(&o, "manifest.json"))
            rc = plan_docker(&o, &p, e);
        else if (outer_find(&o, "index.json"))
            rc = plan_oci(&o, &p, e);
        else
            rc = berr_set(e, 400,
                          "invalid archive: no manifest.json or index.json found (not a docker "
                          "save or OCI layout archive)");
    }
    if (rc == 0 && p.n == 0) rc = berr_set(e, 400, "invalid archive: no images found");
    for (size_t i = 0; rc == 0 && i < p.n; i++) rc = prepare_image(s, &p, &p.imgs[i], e);
    if (rc == 0) rc = commit_plan(s, &p, lines, &ops, e);
    plan_free(s, &p, &ops);
    outer_free(&o, &ops);
    op_finish(s, &ops);
    size_t i;
    json_t *v;
    json_array_foreach(lines, i, v) if (rc == 0 && progress) progress(arg, json_string_value(v));
    return rc;
}

/* ================= save ================= */
typedef struct save_img {
    char id[DIGEST_LEN + 1];
    char *config;
    size_t len;
    json_t *cfg, *tags; /* tags: ref_strings keys "name:tag" */
    layer **layers;
    size_t n;
    char manifest_digest[DIGEST_LEN + 1];
    int64_t manifest_size;
} save_img;

typedef struct save_set {
    save_img *imgs;
    size_t n;
    bool pinned;
} save_set;

static save_img *set_add(store *s, save_set *set, image *img, const char *tag)
{
    save_img *si = NULL;
    for (size_t i = 0; i < set->n && !si; i++)
        if (!strcmp(set->imgs[i].id, img->id)) si = &set->imgs[i];
    if (!si) {
        set->imgs = xrealloc(set->imgs, (set->n + 1) * sizeof *set->imgs);
        si = &set->imgs[set->n++];
        *si = (save_img){.tags = json_array(), .n = img->nlayers};
        memcpy(si->id, img->id, sizeof si->id);
        si->layers = xcalloc(img->nlayers + 1, sizeof *si->layers);
        memcpy(si->layers, img->layers, img->nlayers * sizeof *img->layers);
    }
    size_t i;
    json_t *v;
    bool dup = false;
    json_array_foreach(si->tags, i, v) dup |= tag && !strcmp(json_string_value(v), tag);
    if (tag && !dup) json_array_append_new(si->tags, json_string(tag));
    return si;
}

/* Docker's parseNames for one name. */
static int save_name(store *s, save_set *set, const char *name, berr *e)
{
    image *img;
    const char *hex = str_starts(name, "sha256:") ? name + 7 : name;
    ref r;
    if ((strlen(hex) == 64 && is_hex(hex, 64)) || ref_parse(name, &r, NULL) < 0) {
        if (st_resolve(s, name, &img, e) < 0) return -1;
        return set_add(s, set, img, NULL) ? 0 : -1;
    }
    char repo[1024], key[1024];
    ref_strings(&r, key, NULL, repo, sizeof repo);
    if (!strcmp(repo, "sha256") || (!r.tag[0] && !r.digest[0])) {
        size_t found = 0;
        for (size_t i = 0; !strcmp(repo, "sha256") ? 0 : i < s->nrefs; i++) {
            if (strcmp(s->refs[i].repo, repo) || !(img = st_image(s, s->refs[i].id))) continue;
            set_add(s, set, img, s->refs[i].canonical ? NULL : s->refs[i].key);
            found++;
        }
        if (found) return 0;
        if (st_resolve(s, name, &img, e) < 0) return -1;
        set_add(s, set, img, NULL);
        return 0;
    }
    refent *re = st_ref_get(s, key);
    if (!re || !(img = st_image(s, re->id))) return berr_set(e, 404, "No such image: %s", key);
    set_add(s, set, img, r.digest[0] ? NULL : key);
    return 0;
}

static void set_free(store *s, save_set *set, op *o)
{
    if (set->pinned) {
        pthread_rwlock_wrlock(&s->lock);
        for (size_t i = 0; i < set->n; i++)
            for (size_t k = 0; k < set->imgs[i].n; k++) layer_unpin(s, set->imgs[i].layers[k], o);
        pthread_rwlock_unlock(&s->lock);
    }
    for (size_t i = 0; i < set->n; i++) {
        free(set->imgs[i].config);
        free(set->imgs[i].layers);
        json_decref(set->imgs[i].cfg);
        json_decref(set->imgs[i].tags);
    }
    free(set->imgs);
    *set = (save_set){0};
}

static int collect(store *s, const char *const *names, size_t n, save_set *set, bool pin, berr *e)
{
    int rc = 0;
    if (pin)
        pthread_rwlock_wrlock(&s->lock);
    else
        pthread_rwlock_rdlock(&s->lock);
    if (n == 0) rc = berr_set(e, 400, "no images specified");
    for (size_t i = 0; i < n && rc == 0; i++) rc = save_name(s, set, names[i], e);
    for (size_t i = 0; i < set->n && rc == 0 && pin; i++) {
        save_img *si = &set->imgs[i];
        rc = st_read_config(s, si->id, &si->config, &si->len, e);
        if (rc == 0 && !(si->cfg = json_fast_loadb(si->config, si->len, 0, NULL)))
            rc = berr_set(e, 500, "image config %s is not JSON", si->id);
    }
    if (rc == 0 && pin) {
        for (size_t i = 0; i < set->n; i++)
            for (size_t k = 0; k < set->imgs[i].n; k++) set->imgs[i].layers[k]->pins++;
        set->pinned = true;
    }
    pthread_rwlock_unlock(&s->lock);
    return rc;
}

int image_save_check(store *s, const char *const *names, size_t n, berr *e)
{
    save_set set = {0};
    op o = {0};
    int rc = collect(s, names, n, &set, false, e);
    set_free(s, &set, &o);
    op_finish(s, &o);
    return rc < 0 ? -1 : la_need(e); /* saving needs libarchive: say so before the 200 */
}

/* ---- archive writing ---- */
typedef struct writer {
    struct archive *a;
    json_t *written; /* paths already in the archive */
    berr *e;
} writer;

static int w_header(writer *w, const char *path, mode_t type, mode_t perm, int64_t size,
                    const char *symlink)
{
    if (json_object_get(w->written, path)) return 1;
    json_object_set_new(w->written, path, json_true());
    struct archive_entry *ae = archive_entry_new();
    archive_entry_set_pathname(ae, path);
    archive_entry_set_filetype(ae, type);
    archive_entry_set_perm(ae, perm);
    archive_entry_set_size(ae, size);
    archive_entry_set_mtime(ae, 0, 0);
    if (symlink) archive_entry_set_symlink(ae, symlink);
    int r = archive_write_header(w->a, ae);
    archive_entry_free(ae);
    if (r != ARCHIVE_OK)
        return berr_set(w->e, 500, "writing archive: %s", archive_error_string(w->a));
    return 0;
}

static int w_buf(writer *w, const char *path, const void *data, size_t len)
{
    int r = w_header(w, path, AE_IFREG, 0644, (int64_t)len, NULL);
    if (r != 0) return r < 0 ? -1 : 0;
    if (len && archive_write_data(w->a, data, len) != (la_ssize_t)len)
        return berr_set(w->e, 500, "writing archive: %s", archive_error_string(w->a));
    return 0;
}

static int w_file(writer *w, const char *path, const char *src)
{
    _cleanup_close_ int fd = open(src, O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) < 0) return berr_errno(w->e, 500, "opening %s", src);
    int r = w_header(w, path, AE_IFREG, 0644, st.st_size, NULL);
    if (r != 0) return r < 0 ? -1 : 0;
    enum { BUFSZ = 1 << 16 };
    _cleanup_free_ char *buf = xmalloc(BUFSZ);
    for (off_t left = st.st_size; left > 0;) {
        ssize_t n = read(fd, buf, BUFSZ < (size_t)left ? BUFSZ : (size_t)left);
        if (n <= 0) return berr_errno(w->e, 500, "reading %s", src);
        if (archive_write_data(w->a, buf, (size_t)n) != n)
            return berr_set(w->e, 500, "writing archive: %s", archive_error_string(w->a));
        left -= n;
    }
    return 0;
}

static int w_json(writer *w, const char *path, const json_t *j, bool newline)
{
    _cleanup_free_ char *s = json_dump_go(j);
    if (newline) {
        char *t = xasprintf("%s\n", s);
        free(s);
        s = t;
    }
    return w_buf(w, path, s, strlen(s));
}

/* ---- docker's legacy per-layer dirs ---- */
static void set_nonempty(json_t *j, const json_t *cfg, const char *key)
{
    json_t *v = json_object_get(cfg, key);
    if (!v || json_is_null(v) || (json_is_string(v) && !*json_string_value(v))) return;
    json_object_set(j, key, v);
}

/* V1Image fields in Go struct order (cfg NULL: an intermediate layer). */
static json_t *v1_image(const json_t *cfg, const char *id, const char *parent, const char *os)
{
    static const char *const tail[] = {"docker_version", "author", "config", "architecture",
                                       "variant"};
    json_t *j = json_object();
    if (id) json_object_set_new(j, "id", json_string(id));
    if (parent) json_object_set_new(j, "parent", json_string(parent));
    if (cfg) set_nonempty(j, cfg, "comment");
    json_t *created = cfg ? json_object_get(cfg, "created") : NULL;
    json_object_set_new(j, "created",
                        created
                            ? json_incref(created)
                            : json_string(cfg ? "0001-01-01T00:00:00Z" : "1970-01-01T00:00:00Z"));
    if (cfg) set_nonempty(j, cfg, "container");
    json_t *cc = cfg ? json_object_get(cfg, "container_config") : NULL;
    json_object_set_new(j, "container_config", cc ? json_incref(cc) : empty_container_config());
    for (size_t i = 0; cfg && i < sizeof tail / sizeof *tail; i++) set_nonempty(j, cfg, tail[i]);
    if (os && *os) json_object_set_new(j, "os", json_string(os));
    return j;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* A copy of j with its top-level keys sorted (nested objects keep their
 * order), as Go marshals a map of raw messages. */
static json_t *sorted_top(const json_t *j)
{
    const char **keys = xcalloc(json_object_size(j) + 1, sizeof *keys);
    size_t n = 0;
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)j, k, v) keys[n++] = k;
    qsort(keys, n, sizeof *keys, cmp_str);
    json_t *out = json_object();
    for (size_t i = 0; i < n; i++) json_object_set(out, keys[i], json_object_get(j, keys[i]));
    free(keys);
    return out;
}

/* Docker's v1.CreateID: digest of the sorted V1Image + layer_id + parent. */
static void v1_id(const json_t *cfg, const char *chain, const char *parent_v1,
                  char out[DIGEST_LEN + 1])
{
    json_t *j = v1_image(cfg, NULL, NULL, cfg ? jstr(cfg, "os") : NULL);
    json_object_set_new(j, "layer_id", json_string(chain));
    if (parent_v1[0]) json_object_set_new(j, "parent", json_string(parent_v1));
    json_t *sorted = sorted_top(j);
    json_decref(j);
    _cleanup_free_ char *go = json_dump_go(sorted);
    json_decref(sorted);
    sha256_buf(go, strlen(go), out);
}

/* Writes <v1>/ dirs for si; top_v1 gets the top layer's v1 ID hex. */
static int w_legacy(writer *w, const save_img *si, char top_v1[65])
{
    char parent[DIGEST_LEN + 1] = "", v1[DIGEST_LEN + 1];
    const char *os = jstr(si->cfg, "os");
    top_v1[0] = 0;
    for (size_t i = 0; i < si->n; i++) {
        bool top = i + 1 == si->n;
        v1_id(top ? si->cfg : NULL, si->layers[i]->chain, parent, v1);
        char p[128], link[128];
        snprintf(p, sizeof p, "%s/", v1 + 7);
        if (w_header(w, p, AE_IFDIR, 0755, 0, NULL) < 0) return -1;
        snprintf(p, sizeof p, "%s/VERSION", v1 + 7);
        if (w_buf(w, p, "1.0", 3) < 0) return -1;
        _cleanup_json_ json_t *j =
            v1_image(top ? si->cfg : NULL, v1 + 7, parent[0] ? parent + 7 : NULL, os);
        snprintf(p, sizeof p, "%s/json", v1 + 7);
        if (w_json(w, p, j, false) < 0) return -1;
        snprintf(p, sizeof p, "%s/layer.tar", v1 + 7);
        snprintf(link, sizeof link, "../blobs/sha256/%s", si->layers[i]->diff + 7);
        if (w_header(w, p, AE_IFLNK, 0777, 0, link) < 0) return -1;
        memcpy(parent, v1, sizeof parent);
    }
    if (si->n) snprintf(top_v1, 65, "%s", parent + 7);
    return 0;
}

/* ---- OCI blobs ---- */
static json_t *descriptor(const char *mt, const char *digest, int64_t size)
{
    return json_pack("{s:s, s:s, s:I}", "mediaType", mt, "digest", digest, "size",
                     (json_int_t)size);
}

static int w_image_blobs(store *s, writer *w, save_img *si)
{
    json_t *layers = json_array();
    for (size_t i = 0; i < si->n; i++) {
        char p[128];
        snprintf(p, sizeof p, "blobs/sha256/%s", si->layers[i]->diff + 7);
        _cleanup_free_ char *src = blob_path(s, si->layers[i]->diff);
        struct stat st;
        if (stat(src, &st) < 0 || w_file(w, p, src) < 0) {
            json_decref(layers);
            return w->e->status ? -1 : berr_errno(w->e, 500, "layer blob %s", si->layers[i]->diff);
        }
        json_array_append_new(layers, descriptor("application/vnd.oci.image.layer.v1.tar",
                                                 si->layers[i]->diff, st.st_size));
    }
    char p[128];
    snprintf(p, sizeof p, "blobs/sha256/%s", si->id + 7);
    if (w_buf(w, p, si->config, si->len) < 0) {
        json_decref(layers);
        return -1;
    }
    _cleanup_json_ json_t *m = json_pack(
        "{s:i, s:s, s:o, s:o}", "schemaVersion", 2, "mediaType", MT_OCI_MANIFEST, "config",
        descriptor("application/vnd.oci.image.config.v1+json", si->id, (int64_t)si->len), "layers",
        layers);
    _cleanup_free_ char *raw = json_dump_go(m);
    sha256_buf(raw, strlen(raw), si->manifest_digest);
    si->manifest_size = (int64_t)strlen(raw);
    snprintf(p, sizeof p, "blobs/sha256/%s", si->manifest_digest + 7);
    return w_buf(w, p, raw, strlen(raw));
}

static void index_add(json_t *manifests, const save_img *si)
{
    size_t i;
    json_t *v;
    json_array_foreach(si->tags, i, v)
    {
        ref r;
        char full[1024];
        if (ref_parse(json_string_value(v), &r, NULL) < 0) continue;
        ref_strings(&r, NULL, full, NULL, sizeof full);
        json_t *d = descriptor(MT_OCI_MANIFEST, si->manifest_digest, si->manifest_size);
        json_object_set_new(d, "annotations",
                            json_pack("{s:s, s:s}", "io.containerd.image.name", full,
                                      "org.opencontainers.image.ref.name", r.tag));
        json_array_append_new(manifests, d);
    }
    if (!json_array_size(si->tags))
        json_array_append_new(manifests,
                              descriptor(MT_OCI_MANIFEST, si->manifest_digest, si->manifest_size));
}

/* ---- the whole archive ---- */
static int w_image(store *s, writer *w, save_img *si, json_t *manifest, json_t *repos)
{
    char top_v1[65], p[128];
    if (w_image_blobs(s, w, si) < 0 || w_legacy(w, si, top_v1) < 0) return -1;
    snprintf(p, sizeof p, "%s.json", si->id + 7);
    if (w_buf(w, p, si->config, si->len) < 0) return -1;
    json_t *layers = json_array();
    for (size_t i = 0; i < si->n; i++)
        json_array_append_new(layers, json_sprintf("blobs/sha256/%s", si->layers[i]->diff + 7));
    json_array_append_new(manifest, json_pack("{s:s, s:O, s:o}", "Config", p, "RepoTags",
                                              json_array_size(si->tags) ? si->tags : json_null(),
                                              "Layers", layers));
    size_t i;
    json_t *v;
    json_array_foreach(si->tags, i, v)
    {
        ref r;
        char repo[1024];
        if (!top_v1[0] || ref_parse(json_string_value(v), &r, NULL) < 0) continue;
        ref_strings(&r, NULL, NULL, repo, sizeof repo);
        json_t *rm = json_object_get(repos, repo);
        if (!rm) json_object_set_new(repos, repo, rm = json_object());
        json_object_set_new(rm, r.tag, json_string(top_v1));
    }
    return 0;
}

static int w_all(store *s, writer *w, save_set *set)
{
    _cleanup_json_ json_t *manifest = json_array(), *repos = json_object();
    _cleanup_json_ json_t *index =
        json_pack("{s:i, s:s, s:[]}", "schemaVersion", 2, "mediaType", MT_OCI_INDEX, "manifests");
    if (w_header(w, "blobs/", AE_IFDIR, 0755, 0, NULL) < 0 ||
        w_header(w, "blobs/sha256/", AE_IFDIR, 0755, 0, NULL) < 0)
        return -1;
    for (size_t i = 0; i < set->n; i++) {
        if (w_image(s, w, &set->imgs[i], manifest, repos) < 0) return -1;
        index_add(json_object_get(index, "manifests"), &set->imgs[i]);
    }
    if (w_json(w, "manifest.json", manifest, true) < 0) return -1;
    if (json_object_size(repos)) {
        char *raw = json_dumps(repos, JSON_COMPACT | JSON_SORT_KEYS);
        json_t *sorted = json_loads(raw, JSON_PRESERVE_ORDER, NULL);
        free(raw);
        int rc = w_json(w, "repositories", sorted, true);
        json_decref(sorted);
        if (rc < 0) return -1;
    }
    if (w_json(w, "index.json", index, false) < 0) return -1;
    return w_buf(w, "oci-layout", "{\"imageLayoutVersion\":\"1.0.0\"}", 30);
}

int image_save(store *s, const char *const *names, size_t n, int out_fd, berr *e)
{
    save_set set = {0};
    op o = {0};
    if (la_need(e) < 0) return -1;
    int rc = collect(s, names, n, &set, true, e);
    if (rc == 0) {
        writer w = {archive_write_new(), json_object(), e};
        archive_write_set_format_pax_restricted(w.a);
        if (archive_write_open_fd(w.a, out_fd) != ARCHIVE_OK)
            rc = berr_set(e, 500, "writing archive: %s", archive_error_string(w.a));
        if (rc == 0) rc = w_all(s, &w, &set);
        if (archive_write_close(w.a) != ARCHIVE_OK && rc == 0)
            rc = berr_set(e, 500, "writing archive: %s", archive_error_string(w.a));
        archive_write_free(w.a);
        json_decref(w.written);
    }
    for (size_t i = 0; rc == 0 && i < set.n; i++) {
        json_t *labels = json_object_get(json_object_get(set.imgs[i].cfg, "config"), "Labels");
        json_t *attrs = json_is_object(labels) ? json_deep_copy(labels) : json_object();
        json_object_set_new(attrs, "name", json_string(set.imgs[i].id));
        op_event_add(&o, "save", set.imgs[i].id, attrs);
    }
    set_free(s, &set, &o);
    op_finish(s, &o);
    return rc;
}
