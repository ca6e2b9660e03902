/* test_image.c: the image engine end to end on temp stores: import (plain,
 * gzip, changes), list filters, inspect, history, tag/untag/remove conflict
 * rules, prune, save -> load into a second store with identical IDs, OCI
 * layout loads, hostile and garbage inputs (400, nothing left behind),
 * reopen/crash recovery. Tarballs are built in the test from a copy of
 * /bin/busybox (tar(1)) or with libarchive for hostile entries.
 *
 * Interop hook: with BERTH_TEST_DOCKER_SAVE=<archive from docker save> and
 * BERTH_TEST_DOCKER_ID=<its image ID>, test_docker_interop loads it, checks
 * the ID and writes `berth save` output to BERTH_TEST_SAVE_OUT. */
#include <archive.h>
#include <archive_entry.h>
#include <dirent.h>
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/jsonutil.h"
#include "image/image.h"

static char g_work[256];   /* temp dir for tarballs */
static char g_tar[300];    /* rootfs tar */
static char g_tar_gz[300]; /* same, gzip */
static char g_tar2[300];   /* another rootfs (different content) */
static json_t *g_events;   /* [[action, id, attrs], ...] */

static void on_event(const char *action, const char *id, json_t *attrs)
{
    json_array_append_new(g_events, json_pack("[s, s, O]", action, id, attrs));
}

static int run(const char *fmt, ...)
{
    char cmd[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    return system(cmd);
}

static int setup_all(void **state)
{
    snprintf(g_work, sizeof g_work, "/tmp/test-image-XXXXXX");
    if (!mkdtemp(g_work)) return -1;
    if (run("mkdir -p %s/root/bin %s/root/etc %s/root2/etc && cp /bin/busybox %s/root/bin/ && "
            "echo hello > %s/root/etc/hello && echo other > %s/root2/etc/other",
            g_work, g_work, g_work, g_work, g_work, g_work))
        return -1;
    snprintf(g_tar, sizeof g_tar, "%s/rootfs.tar", g_work);
    snprintf(g_tar_gz, sizeof g_tar_gz, "%s/rootfs.tar.gz", g_work);
    snprintf(g_tar2, sizeof g_tar2, "%s/rootfs2.tar", g_work);
    if (run("tar -C %s/root -cf %s . && gzip -c %s > %s && tar -C %s/root2 -cf %s .", g_work, g_tar,
            g_tar, g_tar_gz, g_work, g_tar2))
        return -1;
    return 0;
}

static int teardown_all(void **state)
{
    rm_rf(g_work);
    return 0;
}

/* ---- per-test store ---- */
typedef struct fx {
    char root[300];
    store *s;
} fx;

static store *open_store(const char *root)
{
    store *s = NULL;
    berr e = {0};
    assert_int_equal(store_open(root, &s, &e), 0);
    store_set_event_hook(s, on_event);
    return s;
}

static int setup(void **state)
{
    fx *f = xcalloc(1, sizeof *f);
    snprintf(f->root, sizeof f->root, "%s/store-XXXXXX", g_work);
    if (!mkdtemp(f->root)) return -1;
    f->s = open_store(f->root);
    g_events = json_array();
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fx *f = *state;
    store_close(f->s);
    rm_rf(f->root);
    free(f);
    json_decref(g_events);
    g_events = NULL;
    return 0;
}

static int import_file(store *s, const char *path, const char *repo, const char *tag,
                       const char *changes_json, char id[DIGEST_LEN + 1], berr *e)
{
    int fd = open(path, O_RDONLY);
    assert_true(fd >= 0);
    json_t *ch = changes_json ? json_loads(changes_json, 0, NULL) : NULL;
    int rc = image_import(s, fd, repo, tag, ch, NULL, id, e);
    json_decref(ch);
    close(fd);
    return rc;
}

static void import_ok(store *s, const char *path, const char *repo, const char *tag,
                      char id[DIGEST_LEN + 1])
{
    berr e = {0};
    int rc = import_file(s, path, repo, tag, NULL, id, &e);
    if (rc) fail_msg("import: %d %s", e.status, e.msg);
}

static int count_dir(const char *root, const char *sub)
{
    char p[600];
    snprintf(p, sizeof p, "%s/%s", root, sub);
    DIR *d = opendir(p);
    if (!d) return -1;
    int n = 0;
    struct dirent *de;
    while ((de = readdir(d)))
        if (strcmp(de->d_name, ".") && strcmp(de->d_name, "..")) n++;
    closedir(d);
    return n;
}

static void file_digest(const char *path, char out[DIGEST_LEN + 1])
{
    char *data;
    size_t len;
    assert_int_equal(read_file(path, &data, &len), 0);
    sha256_buf(data, len, out);
    free(data);
}

static bool has_event(const char *action, const char *id)
{
    size_t i;
    json_t *v;
    json_array_foreach(g_events, i, v)
    {
        if (!strcmp(json_string_value(json_array_get(v, 0)), action) &&
            (!id || !strcmp(json_string_value(json_array_get(v, 1)), id)))
            return true;
    }
    return false;
}

/* ---- import ---- */
static void test_import_plain(void **state)
{
    fx *f = *state;
    char id[DIGEST_LEN + 1], diff[DIGEST_LEN + 1];
    import_ok(f->s, g_tar, "test/bb", "1", id);
    assert_true(digest_valid(id));
    file_digest(g_tar, diff);

    berr e = {0};
    json_t *j = image_inspect(f->s, "test/bb:1", &e);
    assert_non_null(j);
    assert_string_equal(jstr(j, "Id"), id);
    assert_string_equal(json_string_value(json_array_get(json_object_get(j, "RepoTags"), 0)),
                        "test/bb:1");
    json_t *rootfs = json_object_get(j, "RootFS");
    assert_string_equal(json_string_value(json_array_get(json_object_get(rootfs, "Layers"), 0)),
                        diff);
    assert_string_equal(jstr(j, "Os"), "linux");
    assert_string_equal(jstr(j, "Comment"), "Imported from -");
    struct stat st;
    assert_int_equal(stat("/bin/busybox", &st), 0);
    assert_true(json_integer_value(json_object_get(j, "Size")) >= st.st_size);
    json_t *gd = json_object_get(j, "GraphDriver");
    assert_string_equal(jstr(gd, "Name"), "overlay2");
    const char *upper = jstr(json_object_get(gd, "Data"), "UpperDir");
    assert_non_null(upper);
    char bb[600];
    snprintf(bb, sizeof bb, "%s/bin/busybox", upper);
    assert_int_equal(access(bb, X_OK), 0);
    assert_string_not_equal(jstr(json_object_get(j, "Metadata"), "LastTagTime"),
                            "0001-01-01T00:00:00Z");
    json_decref(j);

    /* the config blob hashes to the ID; the layer tar is kept by diff ID */
    char p[600], got[DIGEST_LEN + 1];
    snprintf(p, sizeof p, "%s/blobs/sha256/%s", f->root, id + 7);
    file_digest(p, got);
    assert_string_equal(got, id);
    snprintf(p, sizeof p, "%s/blobs/sha256/%s", f->root, diff + 7);
    file_digest(p, got);
    assert_string_equal(got, diff);
    assert_int_equal(image_count(f->s), 1);
    assert_true(has_event("import", id));
    assert_true(has_event("tag", id));

    char **dirs = NULL;
    assert_int_equal(image_layer_dirs(f->s, id, &dirs, &e), 1);
    snprintf(p, sizeof p, "%s/layers/%s/diff", f->root, diff + 7);
    assert_string_equal(dirs[0], p);
    free(dirs[0]);
    free(dirs);
}

static void test_import_gzip_shares_layer(void **state)
{
    fx *f = *state;
    char a[DIGEST_LEN + 1], b[DIGEST_LEN + 1];
    import_ok(f->s, g_tar, "plain", NULL, a);
    import_ok(f->s, g_tar_gz, "gz", NULL, b);
    assert_string_not_equal(a, b); /* different created time */
    assert_int_equal(count_dir(f->root, "layers"), 1);
    assert_int_equal(count_dir(f->root, "tmp"), 0);
    berr e = {0};
    char id[DIGEST_LEN + 1];
    assert_int_equal(image_resolve(f->s, "gz:latest", id, &e), 0);
    assert_string_equal(id, b);
}

static void test_import_changes(void **state)
{
    fx *f = *state;
    char id[DIGEST_LEN + 1];
    berr e = {0};
    const char *ch =
        "[\"CMD echo hi && true\", \"ENTRYPOINT [\\\"/bin/sh\\\", \\\"-c\\\"]\","
        "\"ENV A=1 B=\\\"two words\\\"\", \"ENV C $A-x\", \"WORKDIR /app\", \"WORKDIR sub/..\","
        "\"EXPOSE 80 53/udp\", \"LABEL k=v other=\\\"x y\\\"\", \"USER nobody\","
        "\"VOLUME /data\", \"STOPSIGNAL SIGINT\"]";
    assert_int_equal(import_file(f->s, g_tar, "chg", NULL, ch, id, &e), 0);
    json_t *j = image_inspect(f->s, id, &e);
    assert_non_null(j);
    json_t *c = json_object_get(j, "Config");
    char *dump = json_dumps(c, JSON_COMPACT | JSON_PRESERVE_ORDER);
    assert_string_equal(
        dump, "{\"Hostname\":\"\",\"Domainname\":\"\",\"User\":\"nobody\",\"AttachStdin\":false,"
              "\"AttachStdout\":false,\"AttachStderr\":false,\"ExposedPorts\":{\"80/tcp\":{},\"53/"
              "udp\":{}},"
              "\"Tty\":false,\"OpenStdin\":false,\"StdinOnce\":false,"
              "\"Env\":[\"A=1\",\"B=two words\",\"C=1-x\"],\"Cmd\":[\"/bin/sh\",\"-c\",\"echo hi "
              "&& true\"],"
              "\"Image\":\"\",\"Volumes\":{\"/data\":{}},\"WorkingDir\":\"/app\","
              "\"Entrypoint\":[\"/bin/sh\",\"-c\"],\"OnBuild\":null,"
              "\"Labels\":{\"k\":\"v\",\"other\":\"x y\"},\"StopSignal\":\"SIGINT\"}");
    free(dump);
    json_decref(j);

    /* Go's escaping and sorted top-level keys in the stored config */
    char p[600], *cfg;
    snprintf(p, sizeof p, "%s/blobs/sha256/%s", f->root, id + 7);
    assert_int_equal(read_file(p, &cfg, NULL), 0);
    assert_non_null(strstr(cfg, "echo hi \\u0026\\u0026 true"));
    assert_true(str_starts(cfg, "{\"architecture\":"));
    assert_non_null(strstr(cfg, "\"history\":[{\"created\":"));
    free(cfg);

    /* bad changes: 400 and nothing stored */
    int layers = count_dir(f->root, "layers");
    assert_int_equal(import_file(f->s, g_tar2, "bad", NULL, "[\"RUN true\"]", id, &e), -1);
    assert_int_equal(e.status, 400);
    assert_string_equal(e.msg, "run is not a valid change command");
    assert_int_equal(import_file(f->s, g_tar2, "bad", NULL, "[\"EXPOSE abc\"]", id, &e), -1);
    assert_int_equal(e.status, 400);
    assert_int_equal(import_file(f->s, g_tar2, "bad", NULL, "[\"STOPSIGNAL SIGNOPE\"]", id, &e),
                     -1);
    assert_int_equal(e.status, 400);
    assert_int_equal(import_file(f->s, g_tar2, "Bad", NULL, NULL, id, &e), -1);
    assert_int_equal(e.status, 400);
    assert_int_equal(import_file(f->s, g_tar2, "bad", "no good", NULL, id, &e), -1);
    assert_int_equal(e.status, 400);
    assert_int_equal(count_dir(f->root, "layers"), layers);
    assert_int_equal(image_count(f->s), 1);
}

/* ---- hostile input ---- */
static void make_tar(const char *path, const char *const *names, const char *const *bodies,
                     size_t n)
{
    struct archive *a = archive_write_new();
    archive_write_set_format_pax_restricted(a);
    assert_int_equal(archive_write_open_filename(a, path), ARCHIVE_OK);
    for (size_t i = 0; i < n; i++) {
        struct archive_entry *ae = archive_entry_new();
        archive_entry_set_pathname(ae, names[i]);
        archive_entry_set_filetype(ae, AE_IFREG);
        archive_entry_set_perm(ae, 0644);
        archive_entry_set_size(ae, (la_int64_t)strlen(bodies[i]));
        archive_write_header(a, ae);
        archive_write_data(a, bodies[i], strlen(bodies[i]));
        archive_entry_free(ae);
    }
    archive_write_close(a);
    archive_write_free(a);
}

static void assert_clean(const fx *f, int blobs, int layers, int images)
{
    assert_int_equal(count_dir(f->root, "tmp"), 0);
    assert_int_equal(count_dir(f->root, "blobs/sha256"), blobs);
    assert_int_equal(count_dir(f->root, "layers"), layers);
    assert_int_equal(count_dir(f->root, "images"), images);
}

static void test_bad_imports(void **state)
{
    fx *f = *state;
    char id[DIGEST_LEN + 1], p[600];
    berr e = {0};
    snprintf(p, sizeof p, "%s/garbage", g_work);
    assert_int_equal(run("head -c 100000 /dev/urandom > %s", p), 0);
    assert_int_equal(import_file(f->s, p, "x", NULL, NULL, id, &e), -1);
    assert_int_equal(e.status, 400);
    assert_clean(f, 0, 0, 0);

    snprintf(p, sizeof p, "%s/evil.tar", g_work);
    const char *names[] = {"ok", "../evil"}, *bodies[] = {"fine\n", "pwned\n"};
    make_tar(p, names, bodies, 2);
    e = (berr){0};
    assert_int_equal(import_file(f->s, p, "x", NULL, NULL, id, &e), -1);
    assert_int_equal(e.status, 400);
    assert_clean(f, 0, 0, 0);
    char esc[600];
    snprintf(esc, sizeof esc, "%s/tmp/evil", f->root);
    assert_int_not_equal(access(esc, F_OK), 0);

    snprintf(p, sizeof p, "%s/trunc.tar.gz", g_work);
    assert_int_equal(run("head -c 30000 %s > %s", g_tar_gz, p), 0);
    e = (berr){0};
    assert_int_equal(import_file(f->s, p, "x", NULL, NULL, id, &e), -1);
    assert_int_equal(e.status, 400);
    assert_clean(f, 0, 0, 0);
    assert_int_equal(image_count(f->s), 0);
}

static int load_file(store *s, const char *path, json_t *lines, berr *e);

static void test_bad_loads(void **state)
{
    fx *f = *state;
    char id[DIGEST_LEN + 1], p[600];
    import_ok(f->s, g_tar, "keep", NULL, id);
    berr e = {0};
    snprintf(p, sizeof p, "%s/garbage", g_work);
    assert_int_equal(run("head -c 5000 /dev/urandom > %s", p), 0);
    assert_int_equal(load_file(f->s, p, NULL, &e), -1);
    assert_int_equal(e.status, 400);
    assert_clean(f, 2, 1, 1);

    const char *names[] = {"../../x", "manifest.json"}, *bodies[] = {"x", "[]"};
    snprintf(p, sizeof p, "%s/evil-load.tar", g_work);
    make_tar(p, names, bodies, 2);
    e = (berr){0};
    assert_int_equal(load_file(f->s, p, NULL, &e), -1);
    assert_int_equal(e.status, 400);
    assert_clean(f, 2, 1, 1);

    /* a manifest whose layer is not the one its config names */
    char cfg[512], cfgname[100];
    snprintf(cfg, sizeof cfg,
             "{\"architecture\":\"amd64\",\"os\":\"linux\",\"rootfs\":{\"type\":\"layers\","
             "\"diff_ids\":[\"sha256:%064d\"]}}",
             0);
    char cid[DIGEST_LEN + 1];
    sha256_buf(cfg, strlen(cfg), cid);
    snprintf(cfgname, sizeof cfgname, "%s.json", cid + 7);
    char manifest[300];
    snprintf(manifest, sizeof manifest,
             "[{\"Config\":\"%s\",\"RepoTags\":[\"m:1\"],\"Layers\":[\"l/layer.tar\"]}]", cfgname);
    const char *n2[] = {cfgname, "l/layer.tar", "manifest.json"},
               *b2[] = {cfg, "not a tar", manifest};
    snprintf(p, sizeof p, "%s/mismatch.tar", g_work);
    make_tar(p, n2, b2, 3);
    e = (berr){0};
    assert_int_equal(load_file(f->s, p, NULL, &e), -1);
    assert_int_equal(e.status, 400);
    assert_non_null(strstr(e.msg, "invalid diffID"));
    assert_clean(f, 2, 1, 1);

    /* a layer that climbs out of its root */
    char evil[600], ed[DIGEST_LEN + 1];
    snprintf(evil, sizeof evil, "%s/evil-layer.tar", g_work);
    const char *en[] = {"a", "../../escaped"}, *eb[] = {"a\n", "boom\n"};
    make_tar(evil, en, eb, 2);
    file_digest(evil, ed);
    snprintf(cfg, sizeof cfg,
             "{\"architecture\":\"amd64\",\"os\":\"linux\",\"rootfs\":{\"type\":\"layers\","
             "\"diff_ids\":[\"%s\"]}}",
             ed);
    sha256_buf(cfg, strlen(cfg), cid);
    snprintf(cfgname, sizeof cfgname, "%s.json", cid + 7);
    snprintf(manifest, sizeof manifest,
             "[{\"Config\":\"%s\",\"RepoTags\":[\"m:1\"],\"Layers\":[\"l/layer.tar\"]}]", cfgname);
    snprintf(p, sizeof p, "%s/evil-layer-load.tar", g_work);
    char d[700];
    snprintf(d, sizeof d, "%s/evil-dir", g_work);
    assert_int_equal(run("mkdir -p %s/l && cp %s %s/l/layer.tar", d, evil, d), 0);
    char fp[800];
    snprintf(fp, sizeof fp, "%s/%s", d, cfgname);
    assert_int_equal(write_file_atomic(fp, cfg, strlen(cfg), 0644), 0);
    snprintf(fp, sizeof fp, "%s/manifest.json", d);
    assert_int_equal(write_file_atomic(fp, manifest, strlen(manifest), 0644), 0);
    assert_int_equal(run("tar -C %s -cf %s .", d, p), 0);
    e = (berr){0};
    assert_int_equal(load_file(f->s, p, NULL, &e), -1);
    assert_int_equal(e.status, 400);
    assert_clean(f, 2, 1, 1);
    assert_int_equal(image_count(f->s), 1);
}

/* ---- tag / remove ---- */
static void test_tag_and_remove(void **state)
{
    fx *f = *state;
    char id[DIGEST_LEN + 1], sid[13];
    import_ok(f->s, g_tar, "bb", "1", id);
    snprintf(sid, sizeof sid, "%.12s", id + 7);
    berr e = {0};
    assert_int_equal(image_tag(f->s, "bb:1", "other", "2", &e), 0);
    assert_true(has_event("tag", id));

    /* bad tags */
    assert_int_equal(image_tag(f->s, "bb:1", "sha256", "x", &e), -1);
    assert_int_equal(e.status, 400);
    assert_int_equal(image_tag(f->s, "bb:1", "bb", "Bad!", &e), -1);
    assert_int_equal(e.status, 400);
    assert_int_equal(image_tag(f->s, "bb:1", id + 7, NULL, &e), -1);
    assert_int_equal(e.status, 400);
    assert_non_null(strstr(e.msg, "cannot specify 64-byte hexadecimal strings"));
    assert_int_equal(image_tag(f->s, "nope", "x", NULL, &e), -1);
    assert_int_equal(e.status, 404);
    assert_string_equal(e.msg, "No such image: nope:latest");
    assert_int_equal(image_tag(f->s, "NOPE", "x", NULL, &e), -1);
    assert_int_equal(e.status, 400);

    /* by ID with two repositories: conflict */
    assert_null(image_remove(f->s, sid, false, false, &e));
    assert_int_equal(e.status, 409);
    char want[300];
    snprintf(want, sizeof want,
             "conflict: unable to delete %s (must be forced) - image is referenced in multiple "
             "repositories",
             sid);
    assert_string_equal(e.msg, want);

    /* by name: untag only */
    json_t *r = image_remove(f->s, "other:2", false, false, &e);
    assert_non_null(r);
    char *dump = json_dumps(r, JSON_COMPACT);
    assert_string_equal(dump, "[{\"Untagged\":\"other:2\"}]");
    free(dump);
    json_decref(r);
    assert_true(has_event("untag", id));

    /* last name: untag and delete, layers go too */
    r = image_remove(f->s, "bb:1", false, false, &e);
    assert_non_null(r);
    assert_int_equal(json_array_size(r), 3); /* Untagged, Deleted id, Deleted layer */
    assert_string_equal(jstr(json_array_get(r, 1), "Deleted"), id);
    json_decref(r);
    assert_true(has_event("delete", id));
    assert_int_equal(image_count(f->s), 0);
    assert_clean(f, 0, 0, 0);

    assert_null(image_remove(f->s, "bb:1", false, false, &e));
    assert_int_equal(e.status, 404);
    assert_null(image_remove(f->s, "Bad:1", false, false, &e));
    assert_int_equal(e.status, 400);
}

static void test_remove_by_id(void **state)
{
    fx *f = *state;
    char id[DIGEST_LEN + 1], id2[DIGEST_LEN + 1];
    import_ok(f->s, g_tar, "a", "1", id);
    import_ok(f->s, g_tar, "b", "1", id2);
    berr e = {0};
    /* one tag: deleting by ID untags and deletes; the shared layer stays */
    json_t *r = image_remove(f->s, id, false, false, &e);
    assert_non_null(r);
    assert_string_equal(jstr(json_array_get(r, 0), "Untagged"), "a:1");
    assert_string_equal(jstr(json_array_get(r, 1), "Deleted"), id);
    assert_int_equal(json_array_size(r), 2);
    json_decref(r);
    assert_int_equal(count_dir(f->root, "layers"), 1);
    /* two tags in one repo, force by ID deletes */
    assert_int_equal(image_tag(f->s, id2, "b", "2", &e), 0);
    assert_null(image_remove(f->s, id2, false, false, &e));
    assert_int_equal(e.status, 409);
    r = image_remove(f->s, id2, true, false, &e);
    assert_non_null(r);
    assert_int_equal(json_array_size(r), 4);
    json_decref(r);
    assert_clean(f, 0, 0, 0);
}

/* ---- list / history / df ---- */
static json_t *list(store *s, const char *filters, berr *e)
{
    json_t *f = filters_parse(filters, NULL, e);
    assert_non_null(f);
    json_t *l = image_list(s, f, false, e);
    json_decref(f);
    return l;
}

/* lib/first:1, second (labelled, other layer), an untagged one; oldest first */
static void three_images(fx *f, char *a, char *b, char *c)
{
    berr e = {0};
    import_ok(f->s, g_tar, "lib/first", "1", a);
    assert_int_equal(import_file(f->s, g_tar2, "second", NULL, "[\"LABEL color=red\"]", b, &e), 0);
    import_ok(f->s, g_tar, NULL, NULL, c);
}

static void test_list_filters(void **state)
{
    fx *f = *state;
    char a[DIGEST_LEN + 1], b[DIGEST_LEN + 1], c[DIGEST_LEN + 1];
    berr e = {0};
    three_images(f, a, b, c);

    json_t *l = list(f->s, NULL, &e);
    assert_int_equal(json_array_size(l), 3);
    assert_string_equal(jstr(json_array_get(l, 0), "Id"), c); /* newest first */
    json_t *none = json_array_get(l, 0);
    assert_string_equal(json_string_value(json_array_get(json_object_get(none, "RepoTags"), 0)),
                        "<none>:<none>");
    assert_true(json_is_null(json_object_get(json_array_get(l, 2), "RepoDigests")));
    json_decref(l);

    l = list(f->s, "{\"dangling\":[\"true\"]}", &e);
    assert_int_equal(json_array_size(l), 1);
    json_decref(l);
    l = list(f->s, "{\"dangling\":{\"false\":true}}", &e);
    assert_int_equal(json_array_size(l), 2);
    json_decref(l);
    l = list(f->s, "{\"label\":[\"color=red\"]}", &e);
    assert_int_equal(json_array_size(l), 1);
    assert_string_equal(jstr(json_array_get(l, 0), "Id"), b);
    json_decref(l);
    l = list(f->s, "{\"label\":[\"color\"]}", &e);
    assert_int_equal(json_array_size(l), 1);
    json_decref(l);
    l = list(f->s, "{\"reference\":[\"lib/*\"]}", &e);
    assert_int_equal(json_array_size(l), 1);
    assert_string_equal(jstr(json_array_get(l, 0), "Id"), a);
    json_decref(l);
    l = list(f->s, "{\"reference\":[\"second:latest\"]}", &e);
    assert_int_equal(json_array_size(l), 1);
    json_decref(l);
    l = list(f->s, "{\"reference\":[\"sec*\"]}", &e);
    assert_int_equal(json_array_size(l), 1);
    json_decref(l);
    l = list(f->s, "{\"before\":[\"second\"]}", &e);
    assert_int_equal(json_array_size(l), 1);
    assert_string_equal(jstr(json_array_get(l, 0), "Id"), a);
    json_decref(l);
    l = list(f->s, "{\"since\":[\"lib/first:1\"]}", &e);
    assert_int_equal(json_array_size(l), 2);
    json_decref(l);

    assert_null(list(f->s, "{\"before\":[\"nope\"]}", &e));
    assert_int_equal(e.status, 404);
    assert_null(list(f->s, "{\"dangling\":[\"maybe\"]}", &e));
    assert_int_equal(e.status, 400);
    assert_null(list(f->s, "{\"bogus\":[\"x\"]}", &e));
    assert_int_equal(e.status, 400);
    assert_null(list(f->s, "{\"reference\":[\"[\"]}", &e));
    assert_int_equal(e.status, 400);
}

static void test_history_df_inspect(void **state)
{
    fx *f = *state;
    char a[DIGEST_LEN + 1], b[DIGEST_LEN + 1], c[DIGEST_LEN + 1];
    berr e = {0};
    three_images(f, a, b, c);
    json_t *h = image_history(f->s, "second", &e);
    assert_non_null(h);
    assert_int_equal(json_array_size(h), 1);
    assert_string_equal(jstr(json_array_get(h, 0), "Id"), b);
    assert_string_equal(
        json_string_value(json_array_get(json_object_get(json_array_get(h, 0), "Tags"), 0)),
        "second:latest");
    json_decref(h);
    assert_null(image_history(f->s, "nope:1", &e));
    assert_int_equal(e.status, 404);

    int64_t ls = 0;
    json_t *df = image_df(f->s, &ls, &e);
    assert_int_equal(json_array_size(df), 3);
    assert_true(ls > 0);
    json_decref(df);

    json_t *j = image_inspect(f->s, "nope", &e);
    assert_null(j);
    assert_int_equal(e.status, 404);
    assert_null(image_inspect(f->s, "NOPE", &e));
    assert_int_equal(e.status, 400);
    char pre[13];
    snprintf(pre, sizeof pre, "%.12s", b + 7);
    j = image_inspect(f->s, pre, &e);
    assert_non_null(j);
    json_decref(j);
}

static void test_prune(void **state)
{
    fx *f = *state;
    char a[DIGEST_LEN + 1], b[DIGEST_LEN + 1];
    import_ok(f->s, g_tar, "kept", NULL, a);
    import_ok(f->s, g_tar2, NULL, NULL, b);
    berr e = {0};
    json_t *r = image_prune(f->s, NULL, &e);
    assert_non_null(r);
    json_t *del = json_object_get(r, "ImagesDeleted");
    assert_int_equal(json_array_size(del), 2); /* the image and its layer */
    assert_string_equal(jstr(json_array_get(del, 0), "Deleted"), b);
    assert_true(json_integer_value(json_object_get(r, "SpaceReclaimed")) > 0);
    json_decref(r);
    assert_int_equal(image_count(f->s), 1);

    r = image_prune(f->s, NULL, &e);
    assert_true(json_is_null(json_object_get(r, "ImagesDeleted")));
    json_decref(r);

    json_t *flt = filters_parse("{\"dangling\":[\"false\"]}", NULL, &e);
    r = image_prune(f->s, flt, &e);
    json_decref(flt);
    assert_non_null(r);
    assert_int_equal(image_count(f->s), 0);
    json_decref(r);
    assert_clean(f, 0, 0, 0);

    flt = filters_parse("{\"dangling\":[\"x\"]}", NULL, &e);
    assert_null(image_prune(f->s, flt, &e));
    assert_int_equal(e.status, 400);
    json_decref(flt);
}

/* ---- save / load ---- */
static void progress_line(void *arg, const char *line)
{
    if (arg) json_array_append_new(arg, json_string(line));
}

static int load_file(store *s, const char *path, json_t *lines, berr *e)
{
    int fd = open(path, O_RDONLY);
    assert_true(fd >= 0);
    int rc = image_load(s, fd, progress_line, lines, e);
    close(fd);
    return rc;
}

static void save_file(store *s, const char *const *names, size_t n, const char *path)
{
    berr e = {0};
    assert_int_equal(image_save_check(s, names, n, &e), 0);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    assert_true(fd >= 0);
    if (image_save(s, names, n, fd, &e)) fail_msg("save: %s", e.msg);
    close(fd);
}

static void test_save_load(void **state)
{
    fx *f = *state;
    char a[DIGEST_LEN + 1], b[DIGEST_LEN + 1], p[600];
    berr e = {0};
    import_ok(f->s, g_tar, "bb", "1", a);
    assert_int_equal(import_file(f->s, g_tar_gz, "bb", "2", "[\"CMD [\\\"sh\\\"]\"]", b, &e), 0);
    assert_int_equal(image_tag(f->s, "bb:2", "extra", "x", &e), 0);
    snprintf(p, sizeof p, "%s/save.tar", f->root);
    const char *names[] = {"bb", "extra:x"};
    save_file(f->s, names, 2, p);
    assert_true(has_event("save", a));
    assert_int_equal(
        run("tar -tf %s | grep -qx manifest.json && tar -tf %s | grep -qx index.json && "
            "tar -tf %s | grep -qx oci-layout && tar -tf %s | grep -qx repositories && "
            "tar -tf %s | grep -q '/layer.tar$' && tar -tf %s | grep -qx %s.json",
            p, p, p, p, p, p, a + 7),
        0);

    const char *bad[] = {"bb", "nope:1"};
    assert_int_equal(image_save_check(f->s, bad, 2, &e), -1);
    assert_int_equal(e.status, 404);

    char root2[600];
    snprintf(root2, sizeof root2, "%s/second", f->root);
    store *s2 = open_store(root2);
    json_t *lines = json_array();
    if (load_file(s2, p, lines, &e)) fail_msg("load: %s", e.msg);
    assert_int_equal(image_count(s2), 2);
    char got[DIGEST_LEN + 1];
    assert_int_equal(image_resolve(s2, "bb:1", got, &e), 0);
    assert_string_equal(got, a);
    assert_int_equal(image_resolve(s2, "extra:x", got, &e), 0);
    assert_string_equal(got, b);
    assert_true(json_array_size(lines) >= 3);
    json_decref(lines);
    assert_true(has_event("load", b));
    json_t *i1 = image_inspect(f->s, a, &e), *i2 = image_inspect(s2, a, &e);
    assert_int_equal(json_integer_value(json_object_get(i1, "Size")),
                     json_integer_value(json_object_get(i2, "Size")));
    json_decref(i1);
    json_decref(i2);
    assert_int_equal(count_dir(root2, "layers"), 1);

    /* save from the copy and compare blob sets; reload is idempotent */
    char p2[700];
    snprintf(p2, sizeof p2, "%s/save2.tar", f->root);
    save_file(s2, names, 2, p2);
    assert_int_equal(load_file(s2, p2, NULL, &e), 0);
    assert_int_equal(image_count(s2), 2);

    /* loading moves a tag that pointed elsewhere */
    assert_int_equal(image_tag(s2, a, "extra", "x", &e), 0);
    lines = json_array();
    assert_int_equal(load_file(s2, p, lines, &e), 0);
    assert_int_equal(image_resolve(s2, "extra:x", got, &e), 0);
    assert_string_equal(got, b);
    bool moved = false;
    for (size_t i = 0; i < json_array_size(lines); i++)
        moved |= strstr(json_string_value(json_array_get(lines, i)), "already exists") != NULL;
    assert_true(moved);
    json_decref(lines);
    store_close(s2);
    assert_int_equal(count_dir(root2, "tmp"), 0);
}

/* An OCI image layout archive with a gzip layer and a nested index. */
static void test_oci_load(void **state)
{
    fx *f = *state;
    char diff[DIGEST_LEN + 1], gzd[DIGEST_LEN + 1], cfgd[DIGEST_LEN + 1], md[DIGEST_LEN + 1],
        idxd[DIGEST_LEN + 1];
    file_digest(g_tar, diff);
    file_digest(g_tar_gz, gzd);
    char cfg[512];
    snprintf(cfg, sizeof cfg,
             "{\"architecture\":\"amd64\",\"config\":{\"Cmd\":[\"sh\"]},\"created\":"
             "\"2024-01-02T03:04:05Z\",\"os\":\"linux\",\"rootfs\":{\"type\":\"layers\","
             "\"diff_ids\":[\"%s\"]}}",
             diff);
    sha256_buf(cfg, strlen(cfg), cfgd);
    struct stat st;
    assert_int_equal(stat(g_tar_gz, &st), 0);
    char man[1024];
    snprintf(man, sizeof man,
             "{\"schemaVersion\":2,\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\","
             "\"config\":{\"mediaType\":\"application/vnd.oci.image.config.v1+json\",\"digest\":"
             "\"%s\",\"size\":%zu},\"layers\":[{\"mediaType\":\"application/"
             "vnd.oci.image.layer.v1.tar+gzip\",\"digest\":\"%s\",\"size\":%lld}]}",
             cfgd, strlen(cfg), gzd, (long long)st.st_size);
    sha256_buf(man, strlen(man), md);
    char inner[512];
    snprintf(inner, sizeof inner,
             "{\"schemaVersion\":2,\"mediaType\":\"application/vnd.oci.image.index.v1+json\","
             "\"manifests\":[{\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\","
             "\"digest\":\"%s\",\"size\":%zu,\"platform\":{\"architecture\":\"amd64\",\"os\":"
             "\"linux\"}}]}",
             md, strlen(man));
    sha256_buf(inner, strlen(inner), idxd);
    char index[512];
    snprintf(index, sizeof index,
             "{\"schemaVersion\":2,\"manifests\":[{\"mediaType\":\"application/"
             "vnd.oci.image.index.v1+json\",\"digest\":\"%s\",\"size\":%zu,\"annotations\":{"
             "\"org.opencontainers.image.ref.name\":\"docker.io/oci/img:v1\"}}]}",
             idxd, strlen(inner));
    char dir[600];
    snprintf(dir, sizeof dir, "%s/oci", f->root);
    assert_int_equal(
        run("mkdir -p %s/blobs/sha256 && cp %s %s/blobs/sha256/%s", dir, g_tar_gz, dir, gzd + 7),
        0);
    const char *files[][2] = {{"index.json", index},
                              {"oci-layout", "{\"imageLayoutVersion\":\"1.0.0\"}"}};
    for (int i = 0; i < 2; i++) {
        char p[700];
        snprintf(p, sizeof p, "%s/%s", dir, files[i][0]);
        assert_int_equal(write_file_atomic(p, files[i][1], strlen(files[i][1]), 0644), 0);
    }
    const char *blobs[][2] = {{cfgd, cfg}, {md, man}, {idxd, inner}};
    for (int i = 0; i < 3; i++) {
        char p[700];
        snprintf(p, sizeof p, "%s/blobs/sha256/%s", dir, blobs[i][0] + 7);
        assert_int_equal(write_file_atomic(p, blobs[i][1], strlen(blobs[i][1]), 0644), 0);
    }
    char tarp[700];
    snprintf(tarp, sizeof tarp, "%s/oci.tar", f->root);
    assert_int_equal(run("tar -C %s -cf %s .", dir, tarp), 0);
    berr e = {0};
    json_t *lines = json_array();
    if (load_file(f->s, tarp, lines, &e)) fail_msg("oci load: %s", e.msg);
    assert_string_equal(json_string_value(json_array_get(lines, 0)), "Loaded image: oci/img:v1");
    json_decref(lines);
    char got[DIGEST_LEN + 1];
    assert_int_equal(image_resolve(f->s, "oci/img:v1", got, &e), 0);
    assert_string_equal(got, cfgd);
    assert_int_equal(count_dir(f->root, "tmp"), 0);

    /* a corrupted blob is refused */
    char p[700];
    snprintf(p, sizeof p, "%s/blobs/sha256/%s", dir, md + 7);
    assert_int_equal(write_file_atomic(p, "{}", 2, 0644), 0);
    assert_int_equal(run("tar -C %s -cf %s .", dir, tarp), 0);
    assert_int_equal(load_file(f->s, tarp, NULL, &e), -1);
    assert_int_equal(e.status, 400);
    assert_int_equal(count_dir(f->root, "tmp"), 0);
}

/* ---- many threads at once ---- */
typedef struct worker {
    store *s;
    int n;
    int failures;
} worker;

static void *work(void *arg)
{
    worker *w = arg;
    for (int i = 0; i < 4; i++) {
        char repo[32], id[DIGEST_LEN + 1];
        berr e = {0};
        snprintf(repo, sizeof repo, "t%d", w->n);
        int fd = open(i % 2 ? g_tar : g_tar_gz, O_RDONLY);
        if (image_import(w->s, fd, repo, NULL, NULL, NULL, id, &e) < 0) w->failures++;
        close(fd);
        json_t *l = image_list(w->s, NULL, false, &e);
        if (!l) w->failures++;
        json_decref(l);
        json_t *r = image_remove(w->s, id, true, false, &e);
        if (!r && e.status != 404) w->failures++;
        json_decref(r);
    }
    return NULL;
}

static void test_concurrent(void **state)
{
    fx *f = *state;
    pthread_t th[4];
    worker w[4];
    for (int i = 0; i < 4; i++) {
        w[i] = (worker){f->s, i, 0};
        assert_int_equal(pthread_create(&th[i], NULL, work, &w[i]), 0);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(w[i].failures, 0);
    }
    assert_int_equal(image_count(f->s), 0);
    assert_clean(f, 0, 0, 0);
}

/* ---- reopen / crash recovery ---- */
static void test_reopen(void **state)
{
    fx *f = *state;
    char a[DIGEST_LEN + 1], b[DIGEST_LEN + 1];
    import_ok(f->s, g_tar, "re", "1", a);
    import_ok(f->s, g_tar2, NULL, NULL, b);
    store_close(f->s);
    /* leftovers of a crash: a half-made layer, temp files, a stray blob, a
     * record without its config */
    assert_int_equal(run("mkdir -p %s/layers/%064d/diff && touch %s/tmp/junk %s/blobs/sha256/%064d "
                         "%s/repositories.json.tmp.1.2 && echo '{\"id\":\"sha256:%064d\"}' > "
                         "%s/images/%064d.json",
                         f->root, 1, f->root, f->root, 2, f->root, 3, f->root, 3),
                     0);
    f->s = open_store(f->root);
    assert_int_equal(image_count(f->s), 2);
    berr e = {0};
    char got[DIGEST_LEN + 1];
    assert_int_equal(image_resolve(f->s, "re:1", got, &e), 0);
    assert_string_equal(got, a);
    assert_clean(f, 4, 2, 2);
    json_t *r = image_remove(f->s, b, false, false, &e);
    assert_non_null(r);
    json_decref(r);
    assert_clean(f, 2, 1, 1);
}

/* ---- interop with a real docker (opt-in) ---- */
static void test_docker_interop(void **state)
{
    fx *f = *state;
    const char *src = getenv("BERTH_TEST_DOCKER_SAVE"), *want = getenv("BERTH_TEST_DOCKER_ID");
    if (!src || !want) {
        skip();
        return;
    }
    berr e = {0};
    json_t *lines = json_array();
    if (load_file(f->s, src, lines, &e)) fail_msg("load %s: %s", src, e.msg);
    for (size_t i = 0; i < json_array_size(lines); i++)
        print_message("%s\n", json_string_value(json_array_get(lines, i)));
    json_decref(lines);
    char got[DIGEST_LEN + 1];
    assert_int_equal(image_resolve(f->s, want, got, &e), 0);
    assert_string_equal(got, want);
    const char *out = getenv("BERTH_TEST_SAVE_OUT");
    const char *names[] = {getenv("BERTH_TEST_SAVE_NAME") ? getenv("BERTH_TEST_SAVE_NAME") : want};
    if (out) save_file(f->s, names, 1, out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_import_plain, setup, teardown),
        cmocka_unit_test_setup_teardown(test_import_gzip_shares_layer, setup, teardown),
        cmocka_unit_test_setup_teardown(test_import_changes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_imports, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_loads, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tag_and_remove, setup, teardown),
        cmocka_unit_test_setup_teardown(test_remove_by_id, setup, teardown),
        cmocka_unit_test_setup_teardown(test_list_filters, setup, teardown),
        cmocka_unit_test_setup_teardown(test_history_df_inspect, setup, teardown),
        cmocka_unit_test_setup_teardown(test_prune, setup, teardown),
        cmocka_unit_test_setup_teardown(test_save_load, setup, teardown),
        cmocka_unit_test_setup_teardown(test_oci_load, setup, teardown),
        cmocka_unit_test_setup_teardown(test_concurrent, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reopen, setup, teardown),
        cmocka_unit_test_setup_teardown(test_docker_interop, setup, teardown),
    };
    return cmocka_run_group_tests(tests, setup_all, teardown_all);
}
