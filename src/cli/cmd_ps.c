/* cmd_ps.c: `berth ps` (container ls/list/ps).
 *
 * Lists containers from GET /containers/json and prints them with docker's
 * container formatter: the default table (CONTAINER ID, IMAGE, COMMAND,
 * CREATED, STATUS, PORTS, NAMES, plus SIZE with -s), -q, --no-trunc, and
 * --format templates over docker's fields (.ID .Image .Command .CreatedAt
 * .RunningFor .Ports .State .Status .Size .Names .Labels .Mounts .Networks
 * .LocalVolumes). The command is shortened to 20 columns and quoted the
 * way Go's strconv.Quote does. */
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"

typedef struct ps_opts {
    bool all, quiet, size, latest, no_trunc;
    long long last;
    strv filters;
    char *format;
} ps_opts;

/* formatter.Ellipsis for display width n (runes; wide runes count 1). */
static void ellipsis(const char *s, size_t n, sbuf *out)
{
    size_t runes = 0, cut = 0;
    for (size_t i = 0; s[i]; i++)
        if (((unsigned char)s[i] & 0xC0) != 0x80 && ++runes == n) cut = i;
    if (runes <= n)
        sbuf_adds(out, s);
    else {
        sbuf_add(out, s, cut);
        sbuf_adds(out, "\xe2\x80\xa6");
    }
}

/* strconv.Quote for the UTF-8 text s. */
static void go_quote(const char *s, sbuf *out)
{
    sbuf_adds(out, "\"");
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        unsigned char ch = *p;
        if (ch == '"' || ch == '\\')
            sbuf_printf(out, "\\%c", ch);
        else if (ch == '\n')
            sbuf_adds(out, "\\n");
        else if (ch == '\t')
            sbuf_adds(out, "\\t");
        else if (ch == '\r')
            sbuf_adds(out, "\\r");
        else if (ch == 7 || ch == 8 || ch == 11 || ch == 12)
            sbuf_printf(out, "\\%c", "abtnvf"[ch == 7 ? 0 : ch == 8 ? 1 : ch == 11 ? 4 : 5]);
        else if (ch < 0x20 || ch == 0x7f)
            sbuf_printf(out, "\\x%02x", ch);
        else
            sbuf_add(out, &ch, 1);
    }
    sbuf_adds(out, "\"");
}

static char *command_field(const json_t *ct, bool trunc)
{
    const char *cmd = jstr(ct, "Command") ? jstr(ct, "Command") : "";
    sbuf s = {0}, q = {0};
    if (trunc)
        ellipsis(cmd, 20, &s);
    else
        sbuf_adds(&s, cmd);
    go_quote(s.data ? s.data : "", &q);
    sbuf_free(&s);
    return sbuf_steal(&q);
}

static char *image_field(const json_t *ct, bool trunc)
{
    const char *img = jstr(ct, "Image");
    if (!img || !*img) return xstrdup("<no image>");
    if (!trunc) return xstrdup(img);
    char a[80], b[80];
    short_id(jstr(ct, "ImageID"), a, sizeof a);
    short_id(img, b, sizeof b);
    if (!strcmp(a, b)) return xstrdup(a);
    char *base = xstrndup(img, strcspn(img, "@"));
    char *name = NULL, *tag = NULL;
    char *out = NULL;
    if (!ref_check(base, &name, &tag)) out = tag ? xasprintf("%s:%s", name, tag) : xstrdup(name);
    free(name);
    free(tag);
    free(base);
    return out ? out : xstrdup(img);
}

static char *names_field(const json_t *ct, bool trunc)
{
    sbuf s = {0};
    size_t i;
    json_t *v;
    json_array_foreach(json_object_get(ct, "Names"), i, v)
    {
        const char *n = json_string_value(v);
        if (!n) continue;
        if (*n == '/') n++;
        if (trunc && strchr(n, '/')) continue;
        sbuf_printf(&s, "%s%s", s.len ? "," : "", n);
    }
    return s.data ? sbuf_steal(&s) : xstrdup("");
}

/* DisplayablePorts, without the grouping of consecutive ranges. */
static char *ports_field(const json_t *ct)
{
    sbuf s = {0}, maps = {0};
    size_t i;
    json_t *p;
    json_array_foreach(json_object_get(ct, "Ports"), i, p)
    {
        const char *ip = jstr(p, "IP"), *type = jstr(p, "Type") ? jstr(p, "Type") : "tcp";
        json_int_t priv = json_integer_value(json_object_get(p, "PrivatePort"));
        json_int_t pub = json_integer_value(json_object_get(p, "PublicPort"));
        if (ip && *ip && pub != priv) {
            const char *fmt = strchr(ip, ':') ? "%s[%s]:%lld->%lld/%s" : "%s%s:%lld->%lld/%s";
            sbuf_printf(&maps, fmt, maps.len ? ", " : "", ip, (long long)pub, (long long)priv,
                        type);
        } else if (ip && *ip)
            sbuf_printf(&s, "%s%s:%lld->%lld/%s", s.len ? ", " : "", ip, (long long)priv,
                        (long long)priv, type);
        else
            sbuf_printf(&s, "%s%lld/%s", s.len ? ", " : "", (long long)priv, type);
    }
    if (maps.len) sbuf_printf(&s, "%s%s", s.len ? ", " : "", maps.data);
    sbuf_free(&maps);
    return s.data ? sbuf_steal(&s) : xstrdup("");
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Sorted "k=v" (labels) or "k" (networks) joined with commas. */
static char *joined_keys(const json_t *obj, bool with_values)
{
    size_t n = json_object_size(obj), k = 0;
    char **items = xcalloc(n + 1, sizeof *items);
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)obj, key, v) items[k++] =
        with_values ? xasprintf("%s=%s", key, json_string_value(v) ? json_string_value(v) : "")
                    : xstrdup(key);
    qsort(items, k, sizeof *items, cmp_str);
    sbuf s = {0};
    for (size_t i = 0; i < k; i++) {
        sbuf_printf(&s, "%s%s", i ? "," : "", items[i]);
        free(items[i]);
    }
    free(items);
    return s.data ? sbuf_steal(&s) : xstrdup("");
}

static void mounts_fields(const json_t *ct, bool trunc, json_t *row)
{
    sbuf s = {0};
    int local = 0;
    size_t i;
    json_t *m;
    json_array_foreach(json_object_get(ct, "Mounts"), i, m)
    {
        const char *name =
            jstr(m, "Name") && *jstr(m, "Name") ? jstr(m, "Name") : jstr(m, "Source");
        if (s.len) sbuf_adds(&s, ",");
        if (trunc)
            ellipsis(name ? name : "", 15, &s);
        else
            sbuf_adds(&s, name ? name : "");
        if (jstr(m, "Driver") && !strcmp(jstr(m, "Driver"), "local")) local++;
    }
    char n[16];
    snprintf(n, sizeof n, "%d", local);
    json_object_set_new(row, "LocalVolumes", json_string(n));
    json_object_set_new(row, "Mounts", json_string(s.data ? s.data : ""));
    sbuf_free(&s);
}

static void size_field(const json_t *ct, json_t *row)
{
    char rw[32], root[32], all[80];
    long long srw = json_integer_value(json_object_get(ct, "SizeRw"));
    long long sroot = json_integer_value(json_object_get(ct, "SizeRootFs"));
    size_human((double)srw, 3, rw, sizeof rw);
    size_human((double)sroot, 3, root, sizeof root);
    if (sroot > 0)
        snprintf(all, sizeof all, "%s (virtual %s)", rw, root);
    else
        snprintf(all, sizeof all, "%s", rw);
    json_object_set_new(row, "Size", json_string(all));
}

static json_t *ps_row(const json_t *ct, bool trunc)
{
    json_t *row = json_object();
    char id[80], created[64], since[64];
    long long cr = json_integer_value(json_object_get(ct, "Created"));
    const char *cid = jstr(ct, "Id") ? jstr(ct, "Id") : "";
    if (trunc)
        short_id(cid, id, sizeof id);
    else
        snprintf(id, sizeof id, "%s", cid);
    go_time_string(cr, created, sizeof created);
    since_human(cr, since, sizeof since);
    char *s = command_field(ct, trunc);
    json_object_set_new(row, "Command", json_string(s));
    free(s);
    json_object_set_new(row, "CreatedAt", json_string(created));
    json_object_set_new(row, "ID", json_string(id));
    s = image_field(ct, trunc);
    json_object_set_new(row, "Image", json_string(s));
    free(s);
    s = joined_keys(json_object_get(ct, "Labels"), true);
    json_object_set_new(row, "Labels", json_string(s));
    free(s);
    mounts_fields(ct, trunc, row);
    s = names_field(ct, trunc);
    json_object_set_new(row, "Names", json_string(s));
    free(s);
    s = joined_keys(json_object_get(json_object_get(ct, "NetworkSettings"), "Networks"), false);
    json_object_set_new(row, "Networks", json_string(s));
    free(s);
    s = ports_field(ct);
    json_object_set_new(row, "Ports", json_string(s));
    free(s);
    json_object_set_new(row, "RunningFor", json_string(since));
    size_field(ct, row);
    json_object_set_new(row, "State", json_string(jstr(ct, "State") ? jstr(ct, "State") : ""));
    json_object_set_new(row, "Status", json_string(jstr(ct, "Status") ? jstr(ct, "Status") : ""));
    return row;
}

/* HeaderContext.Label: the last dotted part, '-' and '_' as spaces. */
static void header_labels(const char *format, json_t *map)
{
    for (const char *p = format; (p = strstr(p, ".Label \""));) {
        p += 8;
        size_t n = strcspn(p, "\"");
        char *key = xstrndup(p, n), *dot = strrchr(key, '.');
        char *h = xstrdup(dot ? dot + 1 : key);
        for (char *q = h; *q; q++)
            if (*q == '-' || *q == '_') *q = ' ';
        json_object_set_new(map, key, json_string(h));
        free(h);
        free(key);
        p += n;
    }
}

static json_t *ps_header(void)
{
    return json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s}", "ID",
                     "CONTAINER ID", "Image", "IMAGE", "Command", "COMMAND", "CreatedAt",
                     "CREATED AT", "RunningFor", "CREATED", "Ports", "PORTS", "State", "STATE",
                     "Status", "STATUS", "Size", "SIZE", "Names", "NAMES", "Labels", "LABELS",
                     "Mounts", "MOUNTS", "Networks", "NETWORKS", "LocalVolumes", "LOCAL VOLUMES");
}

/* The row has no methods: {{.Label "k"}} becomes {{index .LabelMap "k"}}. */
static char *label_calls(const char *format)
{
    return replace_all(format, ".Label \"", "index .LabelMap \"");
}

/* NewContainerFormat */
static char *ps_format(const ps_opts *o, bool size)
{
    const char *src = o->format && *o->format ? o->format : "table";
    if (!strcmp(src, "table")) {
        if (o->quiet) return xstrdup("{{.ID}}");
        return xasprintf("table {{.ID}}\\t{{.Image}}\\t{{.Command}}\\t{{.RunningFor}}\\t"
                         "{{.Status}}\\t{{.Ports}}\\t{{.Names}}%s",
                         size ? "\\t{{.Size}}" : "");
    }
    if (!strcmp(src, "raw")) {
        if (o->quiet) return xstrdup("container_id: {{.ID}}");
        return xasprintf("container_id: {{.ID}}\\nimage: {{.Image}}\\ncommand: {{.Command}}\\n"
                         "created_at: {{.CreatedAt}}\\nstate: {{- pad .State 1 0}}\\nstatus: {{- "
                         "pad .Status 1 0}}\\nnames: {{.Names}}\\nlabels: {{- pad .Labels 1 "
                         "0}}\\nports: {{- pad .Ports 1 0}}\\n%s",
                         size ? "size: {{.Size}}\\n" : "");
    }
    return label_calls(src);
}

static int ps_print(const json_t *list, const ps_opts *o, bool size)
{
    char *fmt = ps_format(o, size);
    formatter f;
    int rc = formatter_init(&f, fmt, "*formatter.ContainerContext");
    free(fmt);
    if (rc < 0) return 1;
    json_t *hints = json_pack("{s:s}", "LabelMap", "mapstr");
    f.hints = hints;
    size_t i;
    json_t *ct;
    json_array_foreach(list, i, ct)
    {
        json_t *row = ps_row(ct, !o->no_trunc), *self = json_copy(row);
        json_t *labels = json_object_get(ct, "Labels");
        json_object_set_new(row, "LabelMap",
                            json_is_object(labels) ? json_deep_copy(labels) : json_object());
        rc = formatter_row(&f, row, self);
        json_decref(self);
        json_decref(row);
        if (rc < 0) {
            formatter_free(&f);
            json_decref(hints);
            return 1;
        }
    }
    json_t *h = ps_header(), *hl = json_object();
    header_labels(o->format ? o->format : "", hl);
    json_object_set_new(h, "LabelMap", hl);
    formatter_flush(&f, h);
    json_decref(h);
    json_decref(hints);
    return 0;
}

static char *ps_path(const ps_opts *o, bool size)
{
    sbuf path = {0};
    sbuf_adds(&path, "/containers/json");
    if (o->all) query_add(&path, "all", "1");
    long long limit = o->last;
    if (o->latest && limit == -1) limit = 1;
    if (limit != -1) {
        char n[32];
        snprintf(n, sizeof n, "%lld", limit);
        query_add(&path, "limit", n);
    }
    if (size) query_add(&path, "size", "1");
    if (o->filters.n) {
        json_t *f = json_object();
        for (size_t i = 0; i < o->filters.n; i++) {
            char *k = xstrndup(o->filters.v[i], strcspn(o->filters.v[i], "="));
            json_t *m = json_object_get(f, k);
            if (!m) json_object_set_new(f, k, m = json_object());
            json_object_set_new(m, o->filters.v[i] + strlen(k) + 1, json_true());
            free(k);
        }
        char *fj = json_dump_compact(f);
        query_add(&path, "filters", fj);
        free(fj);
        json_decref(f);
    }
    return sbuf_steal(&path);
}

/* docker's preProcessor: a --format is parsed and run once on an empty
 * row before the request, so that errors show even without containers. */
static int ps_precheck(const char *format)
{
    char *err = NULL, *src = label_calls(format);
    tmpl *t = tmpl_parse(src, &err);
    free(src);
    if (!t) {
        errorf("failed to parse template: %s", err);
        free(err);
        return -1;
    }
    json_t *row = json_object(), *h = ps_header();
    const char *k;
    json_t *v;
    json_object_foreach(h, k, v) json_object_set_new(row, k, json_string(""));
    json_object_set_new(row, "LabelMap", json_object());
    sbuf out = {0};
    tmpl_opts o = {.struct_name = "*formatter.ContainerContext"};
    int rc = tmpl_exec(t, row, &o, &out, &err);
    if (rc < 0) {
        errorf("failed to execute template: %s", err);
        free(err);
    }
    sbuf_free(&out);
    json_decref(row);
    json_decref(h);
    tmpl_free(t);
    return rc;
}

static int ps_main(client *c, const ps_opts *o)
{
    if (o->format && *o->format && ps_precheck(o->format) < 0) return 1;
    bool size =
        o->size || (o->format && (strstr(o->format, ".Size") || strstr(o->format, "json .") ||
                                  !strcmp(o->format, "json")));
    char *path = ps_path(o, size);
    json_t *list = NULL;
    int rc = client_json(c, "GET", path, NULL, &list) < 0 ? 1 : ps_print(list, o, size);
    json_decref(list);
    free(path);
    return rc;
}

int run_ps(client *c, const cmd_def *def, int argc, char **argv)
{
    ps_opts o = {.last = -1};
    flag flags[] = {
        {"all", 'a', FLAG_BOOL, &o.all, "Show all containers (default shows just running)"},
        {"filter", 'f', FLAG_FILTER, &o.filters, "Filter output based on conditions provided"},
        {"format", 0, FLAG_STRING, &o.format, "Pretty-print containers using a Go template"},
        {"last", 'n', FLAG_INT, &o.last, "Show n last created containers (includes all states)",
         "-1"},
        {"latest", 'l', FLAG_BOOL, &o.latest,
         "Show the latest created container (includes all "
         "states)"},
        {"no-trunc", 0, FLAG_BOOL, &o.no_trunc, "Don't truncate output"},
        {"quiet", 'q', FLAG_BOOL, &o.quiet, "Only display container IDs"},
        {"size", 's', FLAG_BOOL, &o.size, "Display total file sizes"},
        {NULL},
    };
    char **pos = NULL;
    int rc;
    if (parse_cmd(def, flags, argc, argv, &pos, &rc) >= 0) rc = ps_main(c, &o);
    free(pos);
    strv_free(&o.filters);
    free(o.format);
    return rc;
}
