/* cmd_images.c: the image command group of the berth CLI, except the
 * archive transfers (cmd_image_io.c) and inspect (cmd_inspect.c): images
 * (image ls/list), history, tag, rmi (image rm) and image prune. Rows
 * carry docker's formatter field names (.ID .Repository .Tag .Digest
 * .CreatedSince .CreatedAt .Size ...) for --format templates. */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "common/jsonutil.h"
#include "cli/cli.h"

static const flag FLAG_END = {NULL, 0, 0, NULL, NULL, NULL, NULL};

static long long jint(const json_t *o, const char *k)
{
    return (long long)json_integer_value(json_object_get(o, k));
}

/* {"k":{"v":true}} from repeated k=v filter flags (plus an optional extra). */
static char *filters_json(const strv *filters, const char *xk, const char *xv)
{
    json_t *f = json_object();
    for (size_t i = 0; i <= filters->n; i++) {
        const char *kv = i < filters->n ? filters->v[i] : NULL;
        if (!kv && !xk) break;
        char *k = kv ? xstrndup(kv, strcspn(kv, "=")) : xstrdup(xk);
        const char *v = kv ? kv + strlen(k) + 1 : xv;
        json_t *m = json_object_get(f, k);
        if (!m) json_object_set_new(f, k, m = json_object());
        json_object_set_new(m, v, json_true());
        free(k);
    }
    char *s = json_object_size(f) ? json_dump_compact(f) : NULL;
    json_decref(f);
    return s;
}

/* ---- references ---- */

static bool ref_component_ok(const char *s, size_t n)
{
    if (!n || !isalnum((unsigned char)s[0]) || !isalnum((unsigned char)s[n - 1])) return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (islower((unsigned char)c) || isdigit((unsigned char)c)) continue;
        if (c != '.' && c != '_' && c != '-') return false;
        if (c == '.' && (s[i + 1] == '.' || s[i + 1] == '_' || s[i + 1] == '-')) return false;
    }
    return true;
}

static bool ref_tag_ok(const char *t)
{
    size_t n = strlen(t);
    if (!n || n > 128 || !(isalnum((unsigned char)t[0]) || t[0] == '_')) return false;
    for (size_t i = 0; i < n; i++)
        if (!isalnum((unsigned char)t[i]) && !strchr("_.-", t[i])) return false;
    return true;
}

/* Validates a name[:tag] reference as docker's ParseNormalizedNamed does;
 * returns NULL or the error text. On success *name and *tag are set (tag
 * NULL when absent) and *name is the familiar form. */
const char *ref_check(const char *ref, char **name, char **tag)
{
    *name = *tag = NULL;
    if (strchr(ref, '@')) return "digest";
    const char *slash = strrchr(ref, '/');
    const char *colon = strrchr(slash ? slash : ref, ':');
    size_t nlen = colon ? (size_t)(colon - ref) : strlen(ref);
    if (colon && !ref_tag_ok(colon + 1)) return "invalid reference format";
    const char *p = ref, *end = ref + nlen;
    const char *first_end = memchr(p, '/', nlen);
    if (first_end && (memchr(p, '.', (size_t)(first_end - p)) ||
                      memchr(p, ':', (size_t)(first_end - p)) || !strncmp(p, "localhost/", 10)))
        p = first_end + 1; /* registry domain: not checked further */
    for (const char *q = p; q < ref + nlen; q++)
        if (isupper((unsigned char)*q))
            return "invalid reference format: repository name must be lowercase";
    while (p < end) {
        const char *s = memchr(p, '/', (size_t)(end - p));
        size_t n = s ? (size_t)(s - p) : (size_t)(end - p);
        if (!ref_component_ok(p, n)) return "invalid reference format";
        p += n + (s ? 1 : 0);
        if (s && p == end) return "invalid reference format";
    }
    if (!nlen || nlen > 255) return "invalid reference format";
    const char *fam = ref;
    if (str_starts(fam, "docker.io/")) fam += 10;
    if (fam != ref && str_starts(fam, "library/") && !strchr(fam + 8, '/')) fam += 8;
    *name = xstrndup(fam, nlen - (size_t)(fam - ref));
    *tag = colon ? xstrdup(colon + 1) : NULL;
    return NULL;
}

/* ---- images ---- */

typedef struct images_opts {
    bool all, digests, no_trunc, quiet;
    strv filters;
    char *format;
} images_opts;

json_t *image_row(const json_t *im, const char *repo, const char *tag, const char *digest,
                  bool trunc)
{
    char id[80], since[64] = "", created[64], size[32], vsize[32], shared[32] = "N/A",
                 uniq[32] = "N/A", ctr[32] = "N/A";
    if (trunc)
        short_id(jstr(im, "Id"), id, sizeof id);
    else
        snprintf(id, sizeof id, "%s", jstr(im, "Id") ? jstr(im, "Id") : "");
    if (jint(im, "Created") != 0) since_human(jint(im, "Created"), since, sizeof since);
    go_time_string(jint(im, "Created"), created, sizeof created);
    size_human((double)jint(im, "Size"), 3, size, sizeof size);
    size_human((double)jint(im, "Size"), 4, vsize, sizeof vsize);
    if (jint(im, "SharedSize") != -1) {
        size_human((double)jint(im, "SharedSize"), 4, shared, sizeof shared);
        if (jint(im, "Size") != -1)
            size_human((double)(jint(im, "Size") - jint(im, "SharedSize")), 4, uniq, sizeof uniq);
    }
    if (jint(im, "Containers") != -1) snprintf(ctr, sizeof ctr, "%lld", jint(im, "Containers"));
    return json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s}", "Containers", ctr,
                     "CreatedAt", created, "CreatedSince", since, "Digest", digest, "ID", id,
                     "Repository", repo, "SharedSize", shared, "Size", size, "Tag", tag,
                     "UniqueSize", uniq, "VirtualSize", vsize);
}

static bool is_dangling(const json_t *im)
{
    json_t *tags = json_object_get(im, "RepoTags"), *digs = json_object_get(im, "RepoDigests");
    if (!json_array_size(tags) && !json_array_size(digs)) return true;
    const char *t0 = json_string_value(json_array_get(tags, 0));
    const char *d0 = json_string_value(json_array_get(digs, 0));
    return json_array_size(tags) == 1 && t0 && !strcmp(t0, "<none>:<none>") &&
           json_array_size(digs) == 1 && d0 && !strcmp(d0, "<none>@<none>");
}

/* Splits "repo:tag" or "repo@digest" at the separator after the last '/'. */
static char *split_ref(const char *s, char sep, const char **rest)
{
    const char *slash = strrchr(s, '/');
    const char *c = strrchr(slash ? slash : s, sep);
    if (!c) return NULL;
    *rest = c + 1;
    return xstrndup(s, (size_t)(c - s));
}

/* The digests of repo (familiar name) among RepoDigests; NULL-ended. */
static void repo_digests(const json_t *im, const char *repo, strv *out)
{
    size_t i;
    json_t *d;
    json_array_foreach(json_object_get(im, "RepoDigests"), i, d)
    {
        const char *dig;
        char *r = json_string_value(d) ? split_ref(json_string_value(d), '@', &dig) : NULL;
        if (r && !strcmp(r, repo)) strv_add(out, dig);
        free(r);
    }
}

static void image_rows(const json_t *im, const images_opts *o, bool need_digest, json_t *rows)
{
    bool trunc = !o->no_trunc;
    if (is_dangling(im)) {
        json_array_append_new(rows, image_row(im, "<none>", "<none>", "<none>", trunc));
        return;
    }
    strv repos = {0};
    size_t i;
    json_t *t;
    json_array_foreach(json_object_get(im, "RepoTags"), i, t)
    {
        const char *tag;
        char *repo = json_string_value(t) ? split_ref(json_string_value(t), ':', &tag) : NULL;
        if (!repo) continue;
        strv digs = {0};
        if (need_digest) repo_digests(im, repo, &digs);
        if (!digs.n) json_array_append_new(rows, image_row(im, repo, tag, "<none>", trunc));
        for (size_t k = 0; k < digs.n; k++)
            json_array_append_new(rows, image_row(im, repo, tag, digs.v[k], trunc));
        strv_add(&repos, repo);
        strv_free(&digs);
        free(repo);
    }
    json_array_foreach(json_object_get(im, "RepoDigests"), i, t)
    {
        const char *dig;
        char *repo = json_string_value(t) ? split_ref(json_string_value(t), '@', &dig) : NULL;
        bool seen = false;
        for (size_t k = 0; repo && k < repos.n; k++) seen |= !strcmp(repos.v[k], repo);
        if (repo && !seen) {
            json_array_append_new(rows,
                                  image_row(im, repo, "<none>", o->digests ? dig : "", trunc));
            if (!o->digests) strv_add(&repos, repo);
        }
        free(repo);
    }
    strv_free(&repos);
}

static char *images_format(const images_opts *o)
{
    const char *src = o->format && *o->format ? o->format : "table";
    if (!strcmp(src, "table")) {
        if (o->quiet) return xstrdup("{{.ID}}");
        if (o->digests)
            return xstrdup("table {{.Repository}}\\t{{.Tag}}\\t{{.Digest}}\\t{{.ID}}\\t{{if "
                           ".CreatedSince }}{{.CreatedSince}}{{else}}N/A{{end}}\\t{{.Size}}");
        return xstrdup("table {{.Repository}}\\t{{.Tag}}\\t{{.ID}}\\t{{if .CreatedSince "
                       "}}{{.CreatedSince}}{{else}}N/A{{end}}\\t{{.Size}}");
    }
    if (str_starts(src, "table") && o->digests && !strstr(src, "{{.Digest}}"))
        return xasprintf("%s\\t{{.Digest}}", src);
    return xstrdup(src);
}

static json_t *image_header(void)
{
    return json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s}", "ID", "IMAGE ID",
                     "Repository", "REPOSITORY", "Tag", "TAG", "Digest", "DIGEST", "CreatedSince",
                     "CREATED", "CreatedAt", "CREATED AT", "Size", "SIZE", "Containers",
                     "CONTAINERS", "VirtualSize", "SIZE", "SharedSize", "SHARED SIZE", "UniqueSize",
                     "UNIQUE SIZE");
}

static int images_print(const json_t *list, const images_opts *o)
{
    char *fmt = images_format(o);
    formatter f;
    int rc = formatter_init(&f, fmt, "*formatter.imageContext");
    bool need_digest = o->digests || strstr(fmt, "{{.Digest}}");
    free(fmt);
    if (rc < 0) return 1;
    json_t *rows = json_array();
    size_t i;
    json_t *im, *row;
    json_array_foreach(list, i, im) image_rows(im, o, need_digest, rows);
    json_array_foreach(rows, i, row) if (rc == 0) rc = formatter_row(&f, row, NULL);
    json_decref(rows);
    if (rc < 0) {
        formatter_free(&f);
        return 1;
    }
    json_t *h = image_header();
    formatter_flush(&f, h);
    json_decref(h);
    return 0;
}

int run_images(client *c, const cmd_def *def, int argc, char **argv)
{
    images_opts o = {0};
    flag flags[] = {
        {"all", 'a', FLAG_BOOL, &o.all, "Show all images (default hides intermediate images)", NULL,
         NULL},
        {"digests", 0, FLAG_BOOL, &o.digests, "Show digests", NULL, NULL},
        {"filter", 'f', FLAG_FILTER, &o.filters, "Filter output based on conditions provided", NULL,
         NULL},
        {"format", 0, FLAG_STRING, &o.format, "Pretty-print images using a Go template", NULL,
         NULL},
        {"no-trunc", 0, FLAG_BOOL, &o.no_trunc, "Don't truncate output", NULL, NULL},
        {"quiet", 'q', FLAG_BOOL, &o.quiet, "Only show image IDs", NULL, NULL},
        FLAG_END,
    };
    char **pos = NULL;
    int rc, n = parse_cmd(def, flags, argc, argv, &pos, &rc);
    if (n >= 0) {
        sbuf path = {0};
        sbuf_adds(&path, "/images/json");
        if (o.all) query_add(&path, "all", "1");
        char *fj = filters_json(&o.filters, n ? "reference" : NULL, n ? pos[0] : NULL);
        if (fj) query_add(&path, "filters", fj);
        free(fj);
        json_t *list = NULL;
        rc = client_json(c, "GET", path.data, NULL, &list) < 0 ? 1 : images_print(list, &o);
        json_decref(list);
        sbuf_free(&path);
    }
    free(pos);
    strv_free(&o.filters);
    free(o.format);
    return rc;
}

/* ---- history ---- */

static void ellipsis(const char *s, size_t max, char *out, size_t n)
{
    size_t runes = 0, cut = 0;
    for (size_t i = 0; s[i]; i++)
        if (((unsigned char)s[i] & 0xC0) != 0x80 && ++runes == max) cut = i;
    if (runes <= max)
        snprintf(out, n, "%s", s);
    else
        snprintf(out, n, "%.*s…", (int)cut, s);
}

static json_t *history_row(const json_t *h, bool human, bool trunc)
{
    char id[80], created[64], since[64] = "", size[32], comment_by[256];
    const char *hid = jstr(h, "Id") ? jstr(h, "Id") : "";
    if (trunc && strcmp(hid, "<missing>"))
        short_id(hid, id, sizeof id);
    else
        snprintf(id, sizeof id, "%s", hid);
    go_time_rfc3339(jint(h, "Created"), created, sizeof created);
    if (!human)
        snprintf(since, sizeof since, "%s", created);
    else if (jint(h, "Created") > 946684800)
        since_human(jint(h, "Created"), since, sizeof since);
    if (human)
        size_human((double)jint(h, "Size"), 3, size, sizeof size);
    else
        snprintf(size, sizeof size, "%lld", jint(h, "Size"));
    char *by = xstrdup(jstr(h, "CreatedBy") ? jstr(h, "CreatedBy") : "");
    for (char *p = by; *p; p++)
        if (*p == '\t') *p = ' ';
    if (trunc) ellipsis(by, 45, comment_by, sizeof comment_by);
    json_t *row =
        json_pack("{s:s, s:s, s:s, s:s, s:s, s:s}", "Comment",
                  jstr(h, "Comment") ? jstr(h, "Comment") : "", "CreatedAt", created, "CreatedBy",
                  trunc ? comment_by : by, "CreatedSince", since, "ID", id, "Size", size);
    free(by);
    return row;
}

static int history_print(const json_t *list, const char *format, bool human, bool trunc, bool quiet)
{
    const char *src = format && *format ? format : "table";
    if (!strcmp(src, "table"))
        src = quiet ? "{{.ID}}"
              : human
                  ? "table {{.ID}}\\t{{.CreatedSince}}\\t{{.CreatedBy}}\\t{{.Size}}\\t{{.Comment}}"
                  : "table {{.ID}}\\t{{.CreatedAt}}\\t{{.CreatedBy}}\\t{{.Size}}\\t{{.Comment}}";
    formatter f;
    if (formatter_init(&f, src, "*image.historyContext") < 0) return 1;
    size_t i;
    json_t *h;
    json_array_foreach(list, i, h)
    {
        json_t *row = history_row(h, human, trunc);
        int rc = formatter_row(&f, row, NULL);
        json_decref(row);
        if (rc < 0) {
            formatter_free(&f);
            return 1;
        }
    }
    json_t *hdr = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s}", "ID", "IMAGE", "CreatedSince",
                            "CREATED", "CreatedAt", "CREATED AT", "CreatedBy", "CREATED BY", "Size",
                            "SIZE", "Comment", "COMMENT");
    formatter_flush(&f, hdr);
    json_decref(hdr);
    return 0;
}

int run_history(client *c, const cmd_def *def, int argc, char **argv)
{
    char *format = NULL;
    bool human = true, no_trunc = false, quiet = false;
    flag flags[] = {
        {"format", 0, FLAG_STRING, &format, "Pretty-print images using a Go template", NULL, NULL},
        {"human", 'H', FLAG_BOOL, &human, "Print sizes and dates in human readable format", "true",
         NULL},
        {"no-trunc", 0, FLAG_BOOL, &no_trunc, "Don't truncate output", NULL, NULL},
        {"quiet", 'q', FLAG_BOOL, &quiet, "Only show image IDs", NULL, NULL},
        FLAG_END,
    };
    char **pos = NULL;
    int rc;
    if (parse_cmd(def, flags, argc, argv, &pos, &rc) >= 0) {
        char *name = url_escape(pos[0]);
        char *path = xasprintf("/images/%s/history", name);
        json_t *list = NULL;
        rc = client_json(c, "GET", path, NULL, &list) < 0
                 ? 1
                 : history_print(list, format, human, !no_trunc, quiet);
        json_decref(list);
        free(path);
        free(name);
    }
    free(pos);
    free(format);
    return rc;
}

/* ---- tag ---- */

int run_tag(client *c, const cmd_def *def, int argc, char **argv)
{
    flag flags[] = {FLAG_END};
    char **pos = NULL;
    int rc;
    if (parse_cmd(def, flags, argc, argv, &pos, &rc) < 0) return rc;
    char *name = NULL, *tag = NULL;
    const char *bad = ref_check(pos[1], &name, &tag);
    if (bad && !strcmp(bad, "digest")) {
        errorf("refusing to create a tag with a digest reference");
        rc = 1;
    } else if (bad) {
        errorf("Error parsing reference: \"%s\" is not a valid repository/tag: %s", pos[1], bad);
        rc = 1;
    } else {
        char *src = url_escape(pos[0]);
        sbuf path = {0};
        sbuf_printf(&path, "/images/%s/tag", src);
        query_add(&path, "repo", name);
        query_add(&path, "tag", tag ? tag : "latest");
        rc = client_json(c, "POST", path.data, NULL, NULL) < 0 ? 1 : 0;
        sbuf_free(&path);
        free(src);
    }
    free(name);
    free(tag);
    free(pos);
    return rc;
}

/* ---- rmi ---- */

static void print_deletions(const json_t *items, bool lower)
{
    size_t i;
    json_t *it;
    json_array_foreach(items, i, it)
    {
        if (jstr(it, "Untagged"))
            printf("%s: %s\n", lower ? "untagged" : "Untagged", jstr(it, "Untagged"));
        if (jstr(it, "Deleted"))
            printf("%s: %s\n", lower ? "deleted" : "Deleted", jstr(it, "Deleted"));
    }
}

static int rmi_one(client *c, const char *image, bool force, bool no_prune)
{
    char *name = url_escape(image);
    sbuf path = {0};
    sbuf_printf(&path, "/images/%s", name);
    free(name);
    if (force) query_add(&path, "force", "1");
    if (no_prune) query_add(&path, "noprune", "1");
    req rq = {.method = "DELETE", .path = path.data, .body_fd = -1};
    resp r;
    int rc = client_do(c, &rq, &r);
    if (rc == 0 && r.status == 404) {
        errorf("Error: No such image: %s", image);
        rc = -1;
    } else if (rc == 0 && r.status >= 400) {
        print_daemon_error(&r);
        rc = -1;
    } else if (rc == 0) {
        json_error_t je;
        json_t *items = json_fast_loadb(r.body.data ? r.body.data : "", r.body.len, 0, &je);
        print_deletions(items, false);
        json_decref(items);
    }
    resp_free(&r);
    sbuf_free(&path);
    return rc;
}

int run_rmi(client *c, const cmd_def *def, int argc, char **argv)
{
    bool force = false, no_prune = false;
    flag flags[] = {
        {"force", 'f', FLAG_BOOL, &force, "Force removal of the image", NULL, NULL},
        {"no-prune", 0, FLAG_BOOL, &no_prune, "Do not delete untagged parents", NULL, NULL},
        FLAG_END,
    };
    char **pos = NULL;
    int rc, n = parse_cmd(def, flags, argc, argv, &pos, &rc);
    if (n < 0) return rc;
    rc = 0;
    for (int i = 0; i < n; i++) {
        if (rmi_one(c, pos[i], force, no_prune) < 0) rc = 1;
        fflush(stdout);
    }
    free(pos);
    return rc;
}

/* ---- image prune ---- */

int run_image_prune(client *c, const cmd_def *def, int argc, char **argv)
{
    bool all = false, force = false;
    strv filters = {0};
    flag flags[] = {
        {"all", 'a', FLAG_BOOL, &all, "Remove all unused images, not just dangling ones", NULL,
         NULL},
        {"filter", 0, FLAG_FILTER, &filters, "Provide filter values (e.g. 'until=<timestamp>')",
         NULL, NULL},
        {"force", 'f', FLAG_BOOL, &force, "Do not prompt for confirmation", NULL, NULL},
        FLAG_END,
    };
    char **pos = NULL;
    int rc;
    if (parse_cmd(def, flags, argc, argv, &pos, &rc) < 0) return strv_free(&filters), rc;
    free(pos);
    const char *warning = all ? "WARNING! This will remove all images without at least one "
                                "container associated to them.\nAre you sure you want to continue?"
                              : "WARNING! This will remove all dangling images.\nAre you sure you "
                                "want to continue?";
    json_t *res = NULL;
    rc = 0;
    if (force || prompt_confirm(warning)) {
        char *fj = filters_json(&filters, "dangling", all ? "false" : "true");
        sbuf path = {0};
        sbuf_adds(&path, "/images/prune");
        query_add(&path, "filters", fj);
        free(fj);
        rc = client_json(c, "POST", path.data, NULL, &res) < 0 ? 1 : 0;
        sbuf_free(&path);
    }
    if (rc == 0) {
        json_t *del = json_object_get(res, "ImagesDeleted");
        if (json_array_size(del)) {
            printf("Deleted Images:\n");
            print_deletions(del, true);
            printf("\n");
        }
        char sz[32];
        size_human((double)jint(res, "SpaceReclaimed"), 4, sz, sizeof sz);
        printf("Total reclaimed space: %s\n", sz);
    }
    json_decref(res);
    strv_free(&filters);
    return rc;
}
