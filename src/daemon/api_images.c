/* api_images.c: the /images endpoints, mapping HTTP to the image engine
 * (image/image.h). Request bodies that are tarballs arrive spooled to a
 * temp file (BODY_FILE); save streams its tar through a pipe. */
#include <stdlib.h>
#include <string.h>

#include "common/jsonutil.h"
#include "daemon/api.h"
#include "daemon/lifecycle.h"
#include "image/ref.h"

static json_t *parse_filters(req *r, const char *const *keys)
{
    berr e;
    json_t *f = filters_parse(req_query(r, "filters"), keys, &e);
    if (!f) resp_berr(r, &e);
    return f;
}

void h_images_list(req *r)
{
    static const char *const keys[] = {"before", "dangling", "label", "reference", "since", NULL};
    json_t *f = parse_filters(r, keys);
    if (!f) return;
    /* legacy ?filter=name */
    const char *legacy = req_query(r, "filter");
    if (legacy && *legacy) json_object_set_new(f, "reference", json_pack("[s]", legacy));
    berr e;
    json_t *list = image_list(D.images, f, req_query_bool(r, "all", false), &e);
    json_decref(f);
    if (!list) return resp_berr(r, &e);
    resp_json(r, 200, list);
}

void h_image_inspect(req *r)
{
    berr e;
    json_t *j = image_inspect(D.images, req_param(r, 0), &e);
    if (!j) return resp_berr(r, &e);
    resp_json(r, 200, j);
}

void h_image_history(req *r)
{
    berr e;
    json_t *j = image_history(D.images, req_param(r, 0), &e);
    if (!j) return resp_berr(r, &e);
    resp_json(r, 200, j);
}

void h_image_tag(req *r)
{
    berr e;
    const char *repo = req_query(r, "repo"), *tag = req_query(r, "tag");
    if (!repo || !*repo)
        return resp_error(r, 400, "repository name must have at least one component");
    if (image_tag(D.images, req_param(r, 0), repo, tag && *tag ? tag : NULL, &e) < 0)
        return resp_berr(r, &e);
    resp_empty(r, 201);
}

void h_image_delete(req *r)
{
    berr e;
    json_t *j = image_remove(D.images, req_param(r, 0), req_query_bool(r, "force", false),
                             req_query_bool(r, "noprune", false), &e);
    if (!j) return resp_berr(r, &e);
    lc_init_layers_gc(false); /* those of layers that went with it */
    resp_json(r, 200, j);
}

/* Splits the import target "repo[:tag]" plus an optional separate tag, as
 * dockerd does: a tag parameter overrides one given in repo. */
static int import_target(const char *repo, const char *tag, char *name, size_t n, char *tag_out,
                         size_t tn, berr *e)
{
    name[0] = tag_out[0] = 0;
    if (!repo || !*repo) return 0;
    ref rf;
    if (ref_parse(repo, &rf, e) < 0) return -1;
    if (rf.digest[0]) return berr_set(e, 400, "cannot import digest reference");
    if (tag && *tag && !ref_valid_tag(tag)) return berr_set(e, 400, "invalid tag format");
    ref_familiar_name(&rf, name, n);
    snprintf(tag_out, tn, "%s", tag && *tag ? tag : rf.tag[0] ? rf.tag : "latest");
    return 0;
}

void h_image_create(req *r)
{
    const char *src = req_query(r, "fromSrc"), *from = req_query(r, "fromImage");
    if (from && *from)
        return resp_error(r, 501,
                          "pulling images from a registry is not supported by this "
                          "version of berthd; use import or load");
    if (!src || strcmp(src, "-"))
        return resp_error(r, src ? 501 : 400,
                          src ? "importing from a URL is not supported; send the tarball in the "
                                "request body (fromSrc=-)"
                              : "fromImage or fromSrc is required");
    berr e;
    char name[768], tag[130];
    if (import_target(req_query(r, "repo"), req_query(r, "tag"), name, sizeof name, tag, sizeof tag,
                      &e) < 0)
        return resp_berr(r, &e);
    size_t nchanges;
    const char **changes = req_query_all(r, "changes", &nchanges);
    json_t *ch = json_array();
    for (size_t i = 0; i < nchanges; i++)
        if (*changes[i]) json_array_append_new(ch, json_string(changes[i]));
    free(changes);
    char id[DIGEST_LEN + 1];
    const char *msg = req_query(r, "message");
    int rc = image_import(D.images, r->body_fd, name[0] ? name : NULL, name[0] ? tag : NULL, ch,
                          msg && *msg ? msg : NULL, id, &e);
    json_decref(ch);
    if (rc < 0) return resp_berr(r, &e);
    resp_json(r, 200, json_pack("{s:s}", "status", id));
}

/* ---- load ---- */

static void collect_line(void *arg, const char *line)
{
    json_array_append_new(arg, json_string(line));
}

void h_images_load(req *r)
{
    bool quiet = req_query_bool(r, "quiet", false);
    berr e = {0};
    json_t *lines = json_array();
    int rc = image_load(D.images, r->body_fd, collect_line, lines, &e);
    if (rc < 0 && json_array_size(lines) == 0) {
        json_decref(lines);
        return resp_berr(r, &e);
    }
    sbuf b = {0};
    size_t i;
    json_t *l;
    json_array_foreach(lines, i, l)
    {
        json_t *m = json_pack("{s:s+}", "stream", json_string_value(l), "\n");
        char *s = json_dump_compact(m);
        json_decref(m);
        sbuf_printf(&b, "%s\n", s);
        free(s);
    }
    (void)quiet; /* the stream is the same; the CLI decides what to print */
    if (rc < 0) {
        json_t *err = json_pack("{s:{s:s},s:s}", "errorDetail", "message", e.msg, "error", e.msg);
        char *s = json_dump_compact(err);
        json_decref(err);
        sbuf_printf(&b, "%s\n", s);
        free(s);
    }
    json_decref(lines);
    resp_bytes(r, 200, "application/json", b.data ? b.data : "", b.len);
    sbuf_free(&b);
}

/* ---- save ---- */

struct save_arg {
    char **names;
    size_t n;
};

static void save_free(void *p)
{
    struct save_arg *a = p;
    for (size_t i = 0; i < a->n; i++) free(a->names[i]);
    free(a->names);
    free(a);
}

static void save_run(stream *st, void *p)
{
    struct save_arg *a = p;
    berr e;
    if (image_save(D.images, (const char *const *)a->names, a->n, stream_fd(st), &e) < 0)
        log_error("image save: %s", e.msg); /* the client sees a truncated archive */
}

static void start_save(req *r, struct save_arg *a)
{
    berr e;
    if (a->n == 0) {
        save_free(a);
        return resp_error(r, 400, "no image names given");
    }
    if (image_save_check(D.images, (const char *const *)a->names, a->n, &e) < 0) {
        save_free(a);
        return resp_berr(r, &e);
    }
    resp_stream(r, 200, "application/x-tar", save_run, a, save_free);
}

void h_images_get(req *r)
{
    size_t n;
    const char **names = req_query_all(r, "names", &n);
    struct save_arg *a = xcalloc(1, sizeof *a);
    a->names = xcalloc(n + 1, sizeof *a->names);
    for (size_t i = 0; i < n; i++)
        if (*names[i]) a->names[a->n++] = xstrdup(names[i]);
    free(names);
    start_save(r, a);
}

void h_image_get(req *r)
{
    struct save_arg *a = xcalloc(1, sizeof *a);
    a->names = xcalloc(2, sizeof *a->names);
    a->names[a->n++] = xstrdup(req_param(r, 0));
    start_save(r, a);
}

void h_images_prune(req *r)
{
    static const char *const keys[] = {"dangling", "label", "label!", "until", NULL};
    json_t *f = parse_filters(r, keys);
    if (!f) return;
    berr e;
    json_t *j = image_prune(D.images, f, &e);
    json_decref(f);
    if (!j) return resp_berr(r, &e);
    lc_init_layers_gc(false);
    resp_json(r, 200, j);
}
