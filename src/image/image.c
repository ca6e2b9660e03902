/* image.c: what the API asks of stored images: resolve, list (with
 * docker's filters and "<none>:<none>" entries), inspect, history, tag,
 * remove (docker's untag-vs-delete rules and conflict messages), prune,
 * df, count and the layer dirs for the container runtime. Results are
 * jansson values shaped as the Engine API v1.41 returns them. */
#include <fnmatch.h>
#include <string.h>

#include "internal.h"

#define ZERO_TIME "0001-01-01T00:00:00Z"

int image_resolve(store *s, const char *name, char id_out[DIGEST_LEN + 1], berr *e)
{
    pthread_rwlock_rdlock(&s->lock);
    image *img;
    int rc = st_resolve(s, name, &img, e);
    if (rc == 0) memcpy(id_out, img->id, DIGEST_LEN + 1);
    pthread_rwlock_unlock(&s->lock);
    return rc;
}

int image_count(store *s)
{
    pthread_rwlock_rdlock(&s->lock);
    int n = (int)s->nimgs;
    pthread_rwlock_unlock(&s->lock);
    return n;
}

static int64_t image_size(const image *img)
{
    int64_t n = 0;
    for (size_t i = 0; i < img->nlayers; i++) n += img->layers[i]->size;
    return n;
}

static void fmt_time(int64_t ns, char *out, size_t n)
{
    if (ns <= 0)
        snprintf(out, n, ZERO_TIME);
    else
        fmt_rfc3339nano(ns, out, n);
}

/* ---- list ---- */
typedef struct list_filter {
    const json_t *f;
    bool dangling_only, has_dangling, all;
    const image *before, *since;
} list_filter;

/* Go's path.Match reports ErrBadPattern where fnmatch just fails. */
static bool pattern_valid(const char *p)
{
    for (; *p; p++) {
        if (*p == '\\') {
            if (!*++p) return false;
            continue;
        }
        if (*p != '[') continue;
        p++;
        if (*p == '^' || *p == '!') p++;
        if (*p == ']') p++;
        while (*p && *p != ']') p += (*p == '\\' && p[1]) ? 2 : 1;
        if (!*p) return false;
    }
    return true;
}

static bool ref_matches(const json_t *patterns, const refent *re, berr *e, bool *bad)
{
    size_t i;
    json_t *p;
    json_array_foreach(patterns, i, p)
    {
        const char *pat = json_string_value(p);
        int r = pattern_valid(pat) ? fnmatch(pat, re->key, FNM_PATHNAME) : -1;
        if (r == 0 || fnmatch(pat, re->repo, FNM_PATHNAME) == 0) return true;
        if (r != FNM_NOMATCH) {
            *bad = true;
            berr_set(e, 400, "syntax error in pattern");
            return false;
        }
    }
    return false;
}

static json_t *summary_new(const store *s, const image *img)
{
    int64_t size = image_size(img);
    return json_pack("{s:i, s:I, s:s, s:O, s:s, s:n, s:n, s:i, s:I, s:I}", "Containers", -1,
                     "Created", (json_int_t)(img->created_ns / 1000000000LL), "Id", img->id,
                     "Labels", img->labels ? img->labels : json_null(), "ParentId", img->parent,
                     "RepoDigests", "RepoTags", "SharedSize", -1, "Size", (json_int_t)size,
                     "VirtualSize", (json_int_t)size);
}

static void append_to(json_t *obj, const char *key, const char *v)
{
    json_t *a = json_object_get(obj, key);
    if (!json_is_array(a)) json_object_set_new(obj, key, a = json_array());
    json_array_append_new(a, json_string(v));
}

/* One /images/json entry for img, or NULL when the filters drop it. */
static json_t *list_entry(store *s, const image *img, const list_filter *lf, berr *e, bool *bad)
{
    if (lf->before && img->created_ns >= lf->before->created_ns) return NULL;
    if (lf->since && img->created_ns <= lf->since->created_ns) return NULL;
    if (filters_get(lf->f, "label") && !filters_match_labels(lf->f, "label", img->labels))
        return NULL;
    json_t *refpats = filters_get(lf->f, "reference");
    json_t *out = summary_new(s, img);
    refent **refs;
    size_t n = st_refs_of(s, img->id, &refs);
    bool tagged = false, any = false;
    for (size_t i = 0; i < n && !*bad; i++) {
        if (refpats && !ref_matches(refpats, refs[i], e, bad)) continue;
        append_to(out, refs[i]->canonical ? "RepoDigests" : "RepoTags", refs[i]->key);
        tagged |= !refs[i]->canonical;
        any = true;
    }
    free(refs);
    bool keep = true;
    if (*bad)
        keep = false;
    else if (!any) {
        keep = (lf->all || !st_has_children(s, img)) && !(lf->has_dangling && !lf->dangling_only) &&
               !refpats;
        json_object_set_new(out, "RepoDigests", json_pack("[s]", "<none>@<none>"));
        json_object_set_new(out, "RepoTags", json_pack("[s]", "<none>:<none>"));
    } else if (lf->dangling_only && tagged) {
        keep = false;
    }
    if (!keep) json_decref(out);
    return keep ? out : NULL;
}

static int parse_dangling(const json_t *f, bool *has, bool *only, bool prune, berr *e)
{
    json_t *d = filters_get(f, "dangling");
    *has = d != NULL;
    if (!d) return 0;
    const char *v = json_string_value(json_array_get(d, 0));
    bool t = !strcmp(v, "true") || (prune && !strcmp(v, "1"));
    bool fl = !strcmp(v, "false") || (prune && !strcmp(v, "0"));
    if (json_array_size(d) != 1 || (!t && !fl))
        return berr_set(e, 400, "Invalid filter 'dangling=[%s]'", v);
    *only = t;
    return 0;
}

static int resolve_filter_image(store *s, const json_t *f, const char *key, const image **out,
                                berr *e)
{
    json_t *v = filters_get(f, key);
    size_t i;
    json_t *x;
    json_array_foreach(v, i, x)
    {
        image *img;
        if (st_resolve(s, json_string_value(x), &img, e) < 0) return -1;
        *out = img;
    }
    return 0;
}

typedef struct list_item {
    int64_t created_ns;
    json_t *j;
} list_item;

static int cmp_created_desc(const void *a, const void *b)
{
    int64_t x = ((const list_item *)a)->created_ns, y = ((const list_item *)b)->created_ns;
    return x < y ? 1 : x > y ? -1 : 0;
}

/* Newest first, as docker sorts (here to the nanosecond). */
static json_t *sorted_array(list_item *items, size_t n)
{
    qsort(items, n, sizeof *items, cmp_created_desc);
    json_t *arr = json_array();
    for (size_t i = 0; i < n; i++) json_array_append_new(arr, items[i].j);
    free(items);
    return arr;
}

static json_t *list_locked(store *s, const json_t *filters, bool all, berr *e)
{
    static const char *const keys[] = {"dangling", "label", "before", "since", "reference", NULL};
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)filters, k, v)
    {
        bool ok = false;
        for (const char *const *a = keys; *a; a++) ok |= !strcmp(*a, k);
        if (!ok) {
            berr_set(e, 400, "invalid filter '%s'", k);
            return NULL;
        }
    }
    list_filter lf = {.f = filters, .all = all};
    if (parse_dangling(filters, &lf.has_dangling, &lf.dangling_only, false, e) < 0 ||
        resolve_filter_image(s, filters, "before", &lf.before, e) < 0 ||
        resolve_filter_image(s, filters, "since", &lf.since, e) < 0)
        return NULL;
    list_item *items = xcalloc(s->nimgs + 1, sizeof *items);
    size_t n = 0;
    bool bad = false;
    for (size_t i = 0; i < s->nimgs && !bad; i++) {
        if (lf.dangling_only && st_has_children(s, s->imgs[i])) continue;
        json_t *it = list_entry(s, s->imgs[i], &lf, e, &bad);
        if (it) items[n++] = (list_item){s->imgs[i]->created_ns, it};
    }
    if (bad) {
        while (n) json_decref(items[--n].j);
        free(items);
        return NULL;
    }
    return sorted_array(items, n);
}

json_t *image_list(store *s, const json_t *filters, bool all, berr *e)
{
    _cleanup_json_ json_t *empty = json_object();
    pthread_rwlock_rdlock(&s->lock);
    json_t *out = list_locked(s, filters ? filters : empty, all, e);
    pthread_rwlock_unlock(&s->lock);
    return out;
}

/* ---- inspect ---- */
json_t *empty_container_config(void)
{
    return json_pack("{s:s, s:s, s:s, s:b, s:b, s:b, s:b, s:b, s:b, s:n, s:n, s:s, s:n, s:s, s:n,"
                     " s:n, s:n}",
                     "Hostname", "", "Domainname", "", "User", "", "AttachStdin", 0, "AttachStdout",
                     0, "AttachStderr", 0, "Tty", 0, "OpenStdin", 0, "StdinOnce", 0, "Env", "Cmd",
                     "Image", "", "Volumes", "WorkingDir", "", "Entrypoint", "OnBuild", "Labels");
}

static json_t *graph_driver(const store *s, const image *img)
{
    json_t *data = json_object();
    sbuf lower = {0};
    for (size_t i = img->nlayers; i-- > 0;) {
        _cleanup_free_ char *d = layer_dir(s, img->layers[i]->chain);
        if (i == img->nlayers - 1) {
            json_object_set_new(data, "UpperDir", json_sprintf("%s/diff", d));
            continue;
        }
        if (lower.len) sbuf_adds(&lower, ":");
        sbuf_printf(&lower, "%s/diff", d);
    }
    if (lower.len) json_object_set_new(data, "LowerDir", json_string(lower.data));
    sbuf_free(&lower);
    if (!json_object_size(data)) {
        json_decref(data);
        data = json_null();
    }
    return json_pack("{s:o, s:s}", "Data", data, "Name", "overlay2");
}

static json_t *ref_lists(const store *s, const image *img, bool digests)
{
    json_t *a = json_array();
    refent **refs;
    size_t n = st_refs_of(s, img->id, &refs);
    for (size_t i = 0; i < n; i++)
        if (refs[i]->canonical == digests) json_array_append_new(a, json_string(refs[i]->key));
    free(refs);
    return a;
}

static const char *history_comment(const json_t *cfg)
{
    const char *c = jstr(cfg, "comment");
    json_t *h = json_object_get(cfg, "history");
    if ((!c || !*c) && json_array_size(h))
        c = jstr(json_array_get(h, json_array_size(h) - 1), "comment");
    return c ? c : "";
}

static json_t *inspect_json(const store *s, const image *img, const json_t *cfg)
{
    char created[64], tagged[64];
    fmt_time(img->created_ns, created, sizeof created);
    fmt_time(img->last_tag_ns, tagged, sizeof tagged);
    json_t *cc = json_object_get(cfg, "container_config");
    json_t *layers = json_object_get(json_object_get(cfg, "rootfs"), "diff_ids");
    const char *os = jstr(cfg, "os");
    int64_t size = image_size(img);
    json_t *j = json_pack(
        "{s:s, s:o, s:o, s:s, s:s, s:s, s:s, s:o, s:s, s:s, s:O, s:s}", "Id", img->id, "RepoTags",
        ref_lists(s, img, false), "RepoDigests", ref_lists(s, img, true), "Parent", img->parent,
        "Comment", history_comment(cfg), "Created", created, "Container",
        jstr(cfg, "container") ? jstr(cfg, "container") : "", "ContainerConfig",
        json_is_object(cc) ? json_incref(cc) : empty_container_config(), "DockerVersion",
        jstr(cfg, "docker_version") ? jstr(cfg, "docker_version") : "", "Author",
        jstr(cfg, "author") ? jstr(cfg, "author") : "", "Config",
        json_object_get(cfg, "config") ? json_object_get(cfg, "config") : json_null(),
        "Architecture", jstr(cfg, "architecture") ? jstr(cfg, "architecture") : "");
    if (jstr(cfg, "variant") && *jstr(cfg, "variant"))
        json_object_set(j, "Variant", json_object_get(cfg, "variant"));
    json_object_set_new(j, "Os", json_string(os && *os ? os : "linux"));
    if (jstr(cfg, "os.version") && *jstr(cfg, "os.version"))
        json_object_set(j, "OsVersion", json_object_get(cfg, "os.version"));
    json_object_set_new(j, "Size", json_integer(size));
    json_object_set_new(j, "VirtualSize", json_integer(size));
    json_object_set_new(j, "GraphDriver", graph_driver(s, img));
    json_t *rootfs =
        json_pack("{s:s}", "Type", jstr(json_object_get(cfg, "rootfs"), "type") ?: "layers");
    if (json_array_size(layers)) json_object_set(rootfs, "Layers", layers);
    json_object_set_new(j, "RootFS", rootfs);
    json_object_set_new(j, "Metadata", json_pack("{s:s}", "LastTagTime", tagged));
    return j;
}

json_t *image_inspect(store *s, const char *name, berr *e)
{
    pthread_rwlock_rdlock(&s->lock);
    image *img;
    json_t *out = NULL;
    if (st_resolve(s, name, &img, e) < 0) {
        if (e && e->status == 404) {
            char m[sizeof e->msg];
            snprintf(m, sizeof m, "%s", e->msg);
            berr_set(e, 404, "no such image: %s: %s", name, m);
        }
    } else {
        _cleanup_json_ json_t *cfg = st_load_config(s, img->id, e);
        if (cfg) out = inspect_json(s, img, cfg);
    }
    pthread_rwlock_unlock(&s->lock);
    return out;
}

/* ---- history ---- */
static json_t *history_items(const image *img, const json_t *cfg, berr *e)
{
    json_t *hist = json_object_get(cfg, "history");
    json_t *out = json_array();
    size_t i, li = 0;
    json_t *h;
    json_array_foreach(hist, i, h)
    {
        int64_t size = 0;
        if (!json_is_true(json_object_get(h, "empty_layer"))) {
            if (li >= img->nlayers) {
                json_decref(out);
                berr_set(e, 500, "too many non-empty layers in History section");
                return NULL;
            }
            size = img->layers[li++]->size;
        }
        const char *c = jstr(h, "created");
        int64_t ns = c ? parse_rfc3339(c) : 0;
        json_array_insert_new(out, 0,
                              json_pack("{s:s, s:I, s:s, s:s, s:I, s:n}", "Comment",
                                        jstr(h, "comment") ?: "", "Created",
                                        (json_int_t)(ns > 0 ? ns / 1000000000LL : -62135596800LL),
                                        "CreatedBy", jstr(h, "created_by") ?: "", "Id", "<missing>",
                                        "Size", (json_int_t)size, "Tags"));
    }
    return out;
}

/* Fills Id and Tags down the parent chain, as docker does. */
static void history_ids(const store *s, const image *img, json_t *items)
{
    size_t i;
    json_t *it;
    json_array_foreach(items, i, it)
    {
        if (!img) break;
        json_object_set_new(it, "Id", json_string(img->id));
        json_t *tags = ref_lists(s, img, false);
        json_object_set_new(it, "Tags", json_array_size(tags) ? tags : json_null());
        if (!json_array_size(tags)) json_decref(tags);
        img = img->parent[0] ? st_image(s, img->parent) : NULL;
    }
}

json_t *image_history(store *s, const char *name, berr *e)
{
    pthread_rwlock_rdlock(&s->lock);
    image *img;
    json_t *out = NULL;
    if (st_resolve(s, name, &img, e) == 0) {
        _cleanup_json_ json_t *cfg = st_load_config(s, img->id, e);
        if (cfg && (out = history_items(img, cfg, e))) history_ids(s, img, out);
    }
    pthread_rwlock_unlock(&s->lock);
    return out;
}

/* ---- tag ---- */
int image_tag(store *s, const char *name, const char *repo, const char *tag, berr *e)
{
    op o = {0};
    ref r;
    pthread_rwlock_wrlock(&s->lock);
    image *img;
    int rc = st_resolve(s, name, &img, e);
    if (rc == 0) rc = parse_tag_target(repo, tag, &r, e);
    if (rc == 0) {
        char key[1024];
        ref_strings(&r, key, NULL, NULL, sizeof key);
        st_ref_set(s, &r, img->id, NULL);
        img->last_tag_ns = now_ns();
        rc = st_write_record(s, img, e);
        if (rc == 0) rc = st_save_refs(s, e);
        if (rc == 0) op_image_event(&o, img, "tag", key);
    }
    pthread_rwlock_unlock(&s->lock);
    op_finish(s, &o);
    return rc;
}

/* ---- remove ---- */
enum { C_CHILD = 1, C_RUNNING = 2, C_REF = 4, C_STOPPED = 8 };
#define C_HARD (C_CHILD | C_RUNNING)
#define C_SOFT (C_REF | C_STOPPED)

typedef struct del_ctx {
    json_t *records;
    int64_t reclaimed;
    op *o;
} del_ctx;

static int usage(const store *s, const image *img, bool running, char cid[65])
{
    cid[0] = 0;
    return s->usage ? s->usage(img->id, running, cid) : 0;
}

/* Docker's checkImageDeleteConflict: 0, or 409 in e (*used set when a
 * container is the reason). */
static int check_conflict(store *s, const image *img, int mask, bool *used, berr *e)
{
    char cid[65], sid[13], why[128] = "";
    bool hard = false;
    *used = false;
    short_id(img->id, sid);
    if ((mask & C_CHILD) && st_has_children(s, img)) {
        hard = true;
        snprintf(why, sizeof why, "image has dependent child images");
    } else if ((mask & C_RUNNING) && usage(s, img, true, cid) > 0) {
        hard = *used = true;
        snprintf(why, sizeof why, "image is being used by running container %.12s", cid);
    } else if (mask & C_REF) {
        refent **refs;
        size_t n = st_refs_of(s, img->id, &refs);
        free(refs);
        if (n) snprintf(why, sizeof why, "image is referenced in multiple repositories");
    }
    if (!why[0] && (mask & C_STOPPED) && usage(s, img, false, cid) > 0) {
        *used = true;
        snprintf(why, sizeof why, "image is being used by stopped container %.12s", cid);
    }
    if (!why[0]) return 0;
    return berr_set(e, 409, "conflict: unable to delete %s (%s) - %s", sid,
                    hard ? "cannot be forced" : "must be forced", why);
}

/* isSingleReference: all refs in one repository, at most one tag. */
static bool single_reference(refent **refs, size_t n)
{
    if (n <= 1) return n == 1;
    const refent *single = NULL;
    for (size_t i = 0; i < n; i++) {
        if (refs[i]->canonical) continue;
        if (single) return false;
        single = refs[i];
    }
    if (!single) single = refs[0];
    const char *repo = NULL;
    for (size_t i = 0; i < n; i++) {
        if (!refs[i]->canonical) continue;
        if (repo && strcmp(repo, refs[i]->repo)) return false;
        repo = refs[i]->repo;
    }
    return repo && !strcmp(repo, single->repo);
}

static void untag(store *s, const image *img, const char *key, del_ctx *d)
{
    if (!st_ref_del(s, key)) return;
    json_array_append_new(d->records, json_pack("{s:s}", "Untagged", key));
    op_image_event(d->o, img, "untag", img->id);
}

static void untag_all(store *s, const image *img, del_ctx *d)
{
    refent **refs;
    size_t n = st_refs_of(s, img->id, &refs);
    char **keys = xcalloc(n + 1, sizeof *keys);
    for (size_t i = 0; i < n; i++) keys[i] = xstrdup(refs[i]->key);
    free(refs);
    for (size_t i = 0; i < n; i++) {
        untag(s, img, keys[i], d);
        free(keys[i]);
    }
    free(keys);
}

static bool is_dangling(const store *s, const image *img)
{
    refent **refs;
    size_t n = st_refs_of(s, img->id, &refs);
    free(refs);
    return n == 0 && !st_has_children(s, img);
}

/* Docker's imageDeleteHelper. */
static int delete_helper(store *s, image *img, bool force, bool prune, bool quiet, del_ctx *d,
                         berr *e)
{
    bool used;
    berr ce = {0};
    if (check_conflict(s, img, force ? C_HARD : C_HARD | C_SOFT, &used, &ce) < 0) {
        if (quiet && (!is_dangling(s, img) || used)) return 0;
        *e = ce;
        return -1;
    }
    char parent[DIGEST_LEN + 1];
    memcpy(parent, img->parent, sizeof parent);
    untag_all(s, img, d);
    if (st_save_refs(s, e) < 0) return -1;
    if (st_delete_image(s, img, d->records, &d->reclaimed, d->o, e) < 0) return -1;
    image *p = parent[0] ? st_image(s, parent) : NULL;
    if (!prune || !p) return 0;
    return delete_helper(s, p, false, true, true, d, e);
}

static bool is_id_prefix(const char *id, const char *name)
{
    return str_starts(id, name) || str_starts(id + 7, name);
}

/* After untagging a tag, drops digest refs of the same repository when no
 * tag of that repository remains. */
static void untag_orphan_digests(store *s, const image *img, const char *repo, del_ctx *d)
{
    refent **refs;
    size_t n = st_refs_of(s, img->id, &refs);
    bool tag_left = false;
    for (size_t i = 0; i < n; i++) tag_left |= !refs[i]->canonical && !strcmp(refs[i]->repo, repo);
    char **drop = xcalloc(n + 1, sizeof *drop);
    size_t nd = 0;
    for (size_t i = 0; i < n && !tag_left; i++)
        if (refs[i]->canonical && !strcmp(refs[i]->repo, repo)) drop[nd++] = xstrdup(refs[i]->key);
    free(refs);
    for (size_t i = 0; i < nd; i++) {
        untag(s, img, drop[i], d);
        free(drop[i]);
    }
    free(drop);
}

static int remove_by_ref(store *s, image *img, const char *name, bool force, bool *done, del_ctx *d,
                         berr *e)
{
    refent **refs;
    size_t n = st_refs_of(s, img->id, &refs);
    bool single = single_reference(refs, n);
    free(refs);
    char cid[65], sid[13];
    if (!force && single && (usage(s, img, true, cid) + usage(s, img, false, cid)) > 0) {
        short_id(img->id, sid);
        return berr_set(e, 409,
                        "conflict: unable to remove repository reference \"%s\" (must force) - "
                        "container %.12s is using its referenced image %s",
                        name, cid, sid);
    }
    ref r;
    if (ref_parse(name, &r, e) < 0) return -1;
    char key[1024], repo[1024];
    ref_strings(&r, key, NULL, repo, sizeof key);
    if (st_ref_del(s, key)) op_image_event(d->o, img, "untag", img->id);
    json_array_append_new(d->records, json_pack("{s:s}", "Untagged", key));
    if (!r.digest[0]) untag_orphan_digests(s, img, repo, d);
    n = st_refs_of(s, img->id, &refs);
    free(refs);
    *done = n > 0;
    return st_save_refs(s, e);
}

/* Docker's ImageDelete, lock held. */
static int delete_locked(store *s, const char *name, bool force, bool prune, del_ctx *d, berr *e)
{
    image *img;
    if (st_resolve(s, name, &img, e) < 0) return -1;
    bool removed_ref = false;
    if (!is_id_prefix(img->id, name)) {
        bool done = false;
        if (remove_by_ref(s, img, name, force, &done, d, e) < 0) return -1;
        if (done) return 0;
        removed_ref = true;
    } else {
        refent **refs;
        size_t n = st_refs_of(s, img->id, &refs);
        bool single = single_reference(refs, n);
        free(refs);
        if (single) {
            bool used;
            int mask = force ? C_HARD : C_HARD | C_STOPPED;
            if (check_conflict(s, img, mask, &used, e) < 0) return -1;
            untag_all(s, img, d);
        }
    }
    return delete_helper(s, img, force, prune, removed_ref, d, e);
}

json_t *image_remove(store *s, const char *name, bool force, bool noprune, berr *e)
{
    op o = {0};
    del_ctx d = {json_array(), 0, &o};
    pthread_rwlock_wrlock(&s->lock);
    int rc = delete_locked(s, name, force, !noprune, &d, e);
    pthread_rwlock_unlock(&s->lock);
    op_finish(s, &o);
    if (rc < 0) {
        json_decref(d.records);
        return NULL;
    }
    return d.records;
}

/* ---- prune ---- */
static bool prune_candidate(store *s, const image *img, const json_t *f, int64_t until)
{
    refent **refs;
    size_t n = st_refs_of(s, img->id, &refs);
    free(refs);
    if (n == 0 && st_has_children(s, img)) return false;
    if (until > 0 && img->created_ns > until) return false;
    if (!filters_match_labels(f, "label", img->labels)) return false;
    if (filters_get(f, "label!") && filters_match_labels(f, "label!", img->labels)) return false;
    return true;
}

static void prune_one(store *s, const char *id, bool dangling_only, del_ctx *d)
{
    image *img = st_image(s, id);
    if (!img) return;
    refent **refs;
    size_t n = st_refs_of(s, id, &refs);
    bool has_tag = false;
    char **names = xcalloc(n + 1, sizeof *names);
    for (size_t i = 0; i < n; i++) {
        has_tag |= !refs[i]->canonical;
        names[i] = xstrdup(refs[i]->key);
    }
    free(refs);
    berr ign;
    if (n == 0) delete_locked(s, id + 7, false, true, d, &ign);
    for (size_t i = 0; i < n; i++) {
        if (!dangling_only || !has_tag) delete_locked(s, names[i], false, true, d, &ign);
        free(names[i]);
    }
    free(names);
}

static int prune_filters(const json_t *f, bool *dangling_only, int64_t *until, berr *e)
{
    static const char *const keys[] = {"dangling", "label", "label!", "until", NULL};
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)f, k, v)
    {
        bool ok = false;
        for (const char *const *a = keys; *a; a++) ok |= !strcmp(*a, k);
        if (!ok) return berr_set(e, 400, "invalid filter '%s'", k);
    }
    bool has;
    *dangling_only = true;
    if (parse_dangling(f, &has, dangling_only, true, e) < 0) return -1;
    json_t *u = filters_get(f, "until");
    *until = 0;
    if (json_array_size(u) > 1) return berr_set(e, 400, "more than one until filter specified");
    if (u && (*until = parse_time_arg(json_string_value(json_array_get(u, 0)), now_ns())) < 0)
        return berr_set(e, 400, "invalid until filter: %s",
                        json_string_value(json_array_get(u, 0)));
    return 0;
}

json_t *image_prune(store *s, const json_t *filters, berr *e)
{
    _cleanup_json_ json_t *empty = json_object();
    const json_t *f = filters ? filters : empty;
    bool dangling_only = true;
    int64_t until = 0;
    if (prune_filters(f, &dangling_only, &until, e) < 0) return NULL;
    op o = {0};
    del_ctx d = {json_array(), 0, &o};
    pthread_rwlock_wrlock(&s->lock);
    char(*ids)[DIGEST_LEN + 1] = xcalloc(s->nimgs + 1, sizeof *ids);
    size_t n = 0;
    for (size_t i = 0; i < s->nimgs; i++) {
        image *img = s->imgs[i];
        if (dangling_only && st_has_children(s, img)) continue;
        if (prune_candidate(s, img, f, until)) memcpy(ids[n++], img->id, DIGEST_LEN + 1);
    }
    for (size_t i = 0; i < n; i++) prune_one(s, ids[i], dangling_only, &d);
    free(ids);
    pthread_rwlock_unlock(&s->lock);
    op_event_add(&o, "prune", "",
                 json_pack("{s:o}", "reclaimed", json_sprintf("%lld", (long long)d.reclaimed)));
    op_finish(s, &o);
    return json_pack("{s:o, s:I}", "ImagesDeleted",
                     json_array_size(d.records) ? d.records : (json_decref(d.records), json_null()),
                     "SpaceReclaimed", (json_int_t)d.reclaimed);
}

/* ---- df ---- */
static int layer_users(const store *s, const layer *l)
{
    int n = 0;
    for (size_t i = 0; i < s->nimgs; i++)
        for (size_t k = 0; k < s->imgs[i]->nlayers; k++)
            if (s->imgs[i]->layers[k] == l) n++;
    return n;
}

json_t *image_df(store *s, int64_t *layers_size, berr *e)
{
    _cleanup_json_ json_t *empty = json_object();
    pthread_rwlock_rdlock(&s->lock);
    json_t *arr = list_locked(s, empty, false, e);
    int64_t total = 0;
    for (size_t i = 0; i < s->nlayers; i++) total += s->layers[i]->size;
    size_t i;
    json_t *it;
    json_array_foreach(arr, i, it)
    {
        image *img = st_image(s, jstr(it, "Id"));
        char cid[65];
        int64_t shared = 0;
        for (size_t k = 0; img && k < img->nlayers; k++)
            if (layer_users(s, img->layers[k]) > 1) shared += img->layers[k]->size;
        int c = img ? usage(s, img, true, cid) + usage(s, img, false, cid) : 0;
        json_object_set_new(it, "Containers", json_integer(c));
        json_object_set_new(it, "SharedSize", json_integer(shared));
    }
    pthread_rwlock_unlock(&s->lock);
    if (layers_size) *layers_size = total;
    return arr;
}

/* ---- layer dirs for the runtime ---- */
int image_layer_dirs(store *s, const char *id, char ***dirs_out, berr *e)
{
    pthread_rwlock_rdlock(&s->lock);
    image *img;
    int n = -1;
    if (st_resolve(s, id, &img, e) == 0) {
        char **dirs = xcalloc(img->nlayers + 1, sizeof *dirs);
        for (size_t i = 0; i < img->nlayers; i++) {
            _cleanup_free_ char *d = layer_dir(s, img->layers[i]->chain);
            dirs[i] = xasprintf("%s/diff", d);
        }
        *dirs_out = dirs;
        n = (int)img->nlayers;
    }
    pthread_rwlock_unlock(&s->lock);
    return n;
}
