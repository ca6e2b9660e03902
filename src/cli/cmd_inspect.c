/* cmd_inspect.c: `berth inspect` and `berth image inspect`.
 *
 * Fetches each named object's raw JSON; without --format prints them as
 * one JSON array indented like docker (4 spaces, the daemon's key order
 * and escaping kept), with --format runs the template on each object with
 * missing keys as errors (docker's raw-map fallback) and Go type hints so
 * that null slices print [] and null maps map[]. Unknown names print
 * "Error: No such image: x" / "Error: No such object: x"; exit 1.
 * `container inspect` (-f, -s) looks up containers only. */
#include <stdlib.h>
#include <string.h>

#include "common/jsonutil.h"
#include "cli/cli.h"

/* Go types of types.ImageInspect fields that matter when printed. */
#define CONFIG_HINTS                                                                               \
    "{\"ExposedPorts\":\"map\",\"Env\":\"slice\",\"Cmd\":\"slice\",\"Healthcheck\":\"ptr\","       \
    "\"Volumes\":\"map\",\"Entrypoint\":\"slice\",\"OnBuild\":\"slice\",\"Labels\":\"mapstr\","    \
    "\"Shell\":\"slice\"}"
static const char image_hints_src[] =
    "{\"RepoTags\":\"slice\",\"RepoDigests\":\"slice\",\"ContainerConfig\":" CONFIG_HINTS
    ",\"Config\":" CONFIG_HINTS ",\"GraphDriver\":{\"Data\":\"mapstr\",\"Name\":\"str\"},"
    "\"RootFS\":{\"Type\":\"str\",\"Layers\":\"slice\",\"BaseLayer\":\"str\"},"
    "\"Metadata\":{\"LastTagTime\":\"str\"}}";

/* Go types of types.ContainerJSON fields that matter when printed. */
static const char container_hints_src[] =
    "{\"Args\":\"slice\",\"Config\":" CONFIG_HINTS ",\"HostConfig\":{\"Binds\":\"slice\","
    "\"CapAdd\":\"slice\",\"CapDrop\":\"slice\",\"Dns\":\"slice\",\"DnsOptions\":\"slice\","
    "\"DnsSearch\":\"slice\",\"ExtraHosts\":\"slice\",\"GroupAdd\":\"slice\",\"Links\":"
    "\"slice\",\"SecurityOpt\":\"slice\",\"VolumesFrom\":\"slice\",\"Tmpfs\":\"map\","
    "\"Sysctls\":\"map\",\"PortBindings\":\"map\",\"Ulimits\":\"slice\",\"Devices\":"
    "\"slice\",\"DeviceCgroupRules\":\"slice\",\"Mounts\":\"slice\",\"Init\":\"ptr\"},"
    "\"Mounts\":\"slice\",\"NetworkSettings\":{\"Ports\":\"map\",\"Networks\":\"map\"},"
    "\"State\":{\"Health\":\"ptr\"}}";

static json_t *image_hints(void)
{
    json_error_t je;
    return json_fast_loadb(image_hints_src, strlen(image_hints_src), 0, &je);
}

static json_t *container_hints(void)
{
    json_error_t je;
    return json_fast_loadb(container_hints_src, strlen(container_hints_src), 0, &je);
}

typedef struct inspect_opts {
    char *format;
    char *type;
    bool size;
    bool image_only;
} inspect_opts;

/* GETs one object; 1 found (*raw set), 0 not found, -1 other error. */
static int fetch(client *c, const char *kind, const char *name, bool size, sbuf *raw)
{
    char *e = url_escape(name);
    char *path;
    if (!strcmp(kind, "container"))
        path = xasprintf("/containers/%s/json%s", e, size ? "?size=1" : "");
    else if (!strcmp(kind, "image"))
        path = xasprintf("/images/%s/json", e);
    else if (!strcmp(kind, "network"))
        path = xasprintf("/networks/%s", e);
    else
        path = xasprintf("/volumes/%s", e);
    free(e);
    req rq = {.method = "GET", .path = path, .body_fd = -1};
    resp r;
    int rc = client_do(c, &rq, &r);
    free(path);
    if (rc < 0) return -1;
    char *msg = r.status >= 400 ? resp_error_message(&r) : NULL;
    if (r.status == 404 || r.status == 400 ||
        (msg && (strstr(msg, "not supported") || strstr(msg, "invalid reference format"))))
        rc = 0; /* docker's isErrSkippable: try the next kind */
    else if (r.status >= 400) {
        print_daemon_error(&r);
        rc = -1;
    } else {
        *raw = r.body;
        r.body = (sbuf){0};
        rc = 1;
    }
    free(msg);
    resp_free(&r);
    return rc;
}

static const char *const kinds[] = {"container", "image", "network", "volume", NULL};

/* Finds name among the allowed kinds; returns the kind or NULL. */
static const char *lookup(client *c, const inspect_opts *o, const char *name, sbuf *raw, int *err)
{
    for (const char *const *k = kinds; *k; k++) {
        if (o->type && *o->type && strcmp(o->type, *k)) continue;
        if (o->image_only && strcmp(*k, "image")) continue;
        int rc = fetch(c, *k, name, o->size, raw);
        if (rc < 0) {
            *err = 1;
            return NULL;
        }
        if (rc == 1) return *k;
    }
    return NULL;
}

static int render(tmpl *t, const sbuf *raw, const char *kind, sbuf *out, sbuf *errs)
{
    json_error_t je;
    json_t *j = json_fast_loadb(raw->data ? raw->data : "", raw->len, JSON_DECODE_ANY, &je);
    json_t *hints = !strcmp(kind, "image")       ? image_hints()
                    : !strcmp(kind, "container") ? container_hints()
                                                 : NULL;
    tmpl_opts o = {.missingkey_error = true, .hints = hints};
    char *err = NULL;
    sbuf one = {0};
    int rc = tmpl_exec(t, j, &o, &one, &err);
    if (rc < 0) {
        sbuf_printf(errs, "template parsing error: %s\n", err);
        free(err);
    } else {
        sbuf_add(out, one.data, one.len);
        sbuf_adds(out, "\n");
    }
    sbuf_free(&one);
    json_decref(hints);
    json_decref(j);
    return rc;
}

static int inspect_run(client *c, const inspect_opts *o, int n, char **names)
{
    tmpl *t = NULL;
    if (o->format && *o->format) {
        char *err = NULL;
        t = tmpl_parse(!strcmp(o->format, "json") ? "{{json .}}" : o->format, &err);
        if (!t) {
            errorf("template parsing error: %s", err);
            free(err);
            return 64;
        }
    }
    sbuf out = {0}, arr = {0}, errs = {0};
    int rc = 0, found = 0;
    for (int i = 0; i < n && rc == 0; i++) {
        sbuf raw = {0};
        int ferr = 0;
        const char *kind = lookup(c, o, names[i], &raw, &ferr);
        if (ferr)
            rc = 1;
        else if (!kind) {
            sbuf_printf(&errs, "Error: No such %s: %s\n",
                        o->image_only         ? "image"
                        : o->type && *o->type ? o->type
                                              : "object",
                        names[i]);
        } else if (t) {
            render(t, &raw, kind, &out, &errs);
        } else {
            sbuf_adds(&arr, found ? "," : "[");
            while (raw.len && (raw.data[raw.len - 1] == '\n' || raw.data[raw.len - 1] == ' '))
                raw.len--;
            sbuf_add(&arr, raw.data, raw.len);
        }
        if (kind) found++;
        sbuf_free(&raw);
    }
    if (!t) {
        if (found) {
            sbuf_adds(&arr, "]");
            json_indent(&out, arr.data, arr.len);
            sbuf_adds(&out, "\n");
        } else {
            sbuf_adds(&out, "[]\n");
        }
    } else if (!out.len) {
        sbuf_adds(&out, "\n");
    }
    fwrite(out.data, 1, out.len, stdout);
    fflush(stdout);
    if (errs.len) {
        fwrite(errs.data, 1, errs.len, stderr);
        rc = 1;
    }
    sbuf_free(&out);
    sbuf_free(&arr);
    sbuf_free(&errs);
    tmpl_free(t);
    return rc;
}

static int inspect_main(client *c, const cmd_def *def, int argc, char **argv, bool image_only,
                        bool container_only)
{
    inspect_opts o = {.image_only = image_only};
    if (container_only) o.type = xstrdup("container");
    flag all[] = {
        {"format", 'f', FLAG_STRING, &o.format, "Format the output using the given Go template",
         NULL, NULL},
        {"size", 's', FLAG_BOOL, &o.size, "Display total file sizes if the type is container", NULL,
         NULL},
        {"type", 0, FLAG_STRING, &o.type, "Return JSON for specified type", NULL, NULL},
        {NULL, 0, 0, NULL, NULL, NULL, NULL},
    };
    flag img[] = {all[0], {NULL, 0, 0, NULL, NULL, NULL, NULL}};
    flag ctr[] = {all[0], all[1], {NULL, 0, 0, NULL, NULL, NULL, NULL}};
    char **pos = NULL;
    int rc, n = parse_cmd(def,
                          image_only       ? img
                          : container_only ? ctr
                                           : all,
                          argc, argv, &pos, &rc);
    if (n >= 0 && o.type && *o.type) {
        bool ok = false;
        for (const char *const *k = kinds; *k; k++) ok |= !strcmp(*k, o.type);
        if (!ok) {
            errorf("\"%s\" is not a valid value for --type", o.type);
            rc = 1;
            n = -1;
        }
    }
    if (n >= 0) rc = inspect_run(c, &o, n, pos);
    free(pos);
    free(o.format);
    free(o.type);
    return rc;
}

int run_inspect(client *c, const cmd_def *def, int argc, char **argv)
{
    return inspect_main(c, def, argc, argv, false, false);
}

int run_image_inspect(client *c, const cmd_def *def, int argc, char **argv)
{
    return inspect_main(c, def, argc, argv, true, false);
}

int run_container_inspect(client *c, const cmd_def *def, int argc, char **argv)
{
    return inspect_main(c, def, argc, argv, false, true);
}
