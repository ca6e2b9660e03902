/* import.c: `docker import` (POST /images/create?fromSrc=-). Reads a rootfs
 * tarball (any compression) into a verified layer blob and an unpacked
 * layer, applies the --change instructions (changes.c) to an empty
 * container config and writes the image config the way docker does:
 * top-level keys sorted (Image.MarshalJSON), container config keys in Go
 * struct order, Go's HTML-safe escaping. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
#include <unistd.h>

#include "internal.h"
#include "tarx.h"

/* The container config: the changes applied to an empty one, in Go's shape. */
static json_t *build_runcfg(const json_t *changes, berr *e)
{
    _cleanup_json_ json_t *cfg = json_object();
    if (config_apply_changes(cfg, changes, e) < 0) return NULL;
    return go_container_config(cfg);
}

/* ---- the image config ---- */
static const char *go_arch(void)
{
    static __thread struct utsname u;
    if (uname(&u) < 0) return "amd64";
    static const char *map[][2] = {
        {"x86_64", "amd64"},    {"aarch64", "arm64"}, {"i686", "386"},
        {"i386", "386"},        {"armv7l", "arm"},    {"armv6l", "arm"},
        {"ppc64le", "ppc64le"}, {"s390x", "s390x"},   {"riscv64", "riscv64"}};
    for (size_t i = 0; i < sizeof map / sizeof *map; i++)
        if (!strcmp(u.machine, map[i][0])) return map[i][1];
    return u.machine;
}

static char *import_config(json_t *runconf, const char *msg, const char *diff)
{
    char created[64];
    fmt_rfc3339nano(now_ns(), created, sizeof created);
    json_t *cfg =
        json_pack("{s:s, s:s, s:o, s:o, s:s, s:[{s:s, s:s}], s:s, s:{s:s, s:[s]}}", "architecture",
                  go_arch(), "comment", msg, "config", runconf, "container_config",
                  empty_container_config(), "created", created, "history", "created", created,
                  "comment", msg, "os", "linux", "rootfs", "type", "layers", "diff_ids", diff);
    char *out = json_dump_go(cfg);
    json_decref(cfg);
    return out;
}

/* ---- the layer ---- */
static int read_layer(store *s, int in_fd, char **blob_out, char diff[DIGEST_LEN + 1], berr *e)
{
    char *tmp = store_tmp_path(s);
    int fd = open(tmp, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd < 0) {
        berr_errno(e, 500, "creating %s", tmp);
        free(tmp);
        return -1;
    }
    int64_t size;
    int rc = tarx_decompress(in_fd, fd, diff, &size, e);
    if (rc == 0 && fsync(fd) < 0) rc = berr_errno(e, 500, "syncing %s", tmp);
    close(fd);
    if (rc < 0) {
        unlink(tmp);
        free(tmp);
        return -1;
    }
    *blob_out = tmp;
    return 0;
}

static int import_target(const char *repo, const char *tag, ref *r, bool *has, berr *e)
{
    *has = repo && *repo;
    if (!*has) return 0;
    if (strchr(repo, '@')) {
        if (ref_parse(repo, r, e) < 0) return -1;
        if (r->digest[0]) return berr_set(e, 400, "cannot import digest reference");
    }
    return parse_tag_target(repo, tag, r, e);
}

static int commit_import(store *s, pending_layer *pl, const char *config, const ref *r, bool tag,
                         char id_out[DIGEST_LEN + 1], op *o, berr *e)
{
    pthread_rwlock_wrlock(&s->lock);
    layer *l = layer_commit(s, pl, e);
    image *img = NULL;
    int rc = l ? image_commit(s, config, strlen(config), &l, 1, NULL, &img, e) : -1;
    if (rc == 0 && tag) {
        char key[1024];
        ref_strings(r, key, NULL, NULL, sizeof key);
        st_ref_set(s, r, img->id, NULL);
        img->last_tag_ns = now_ns();
        rc = st_write_record(s, img, e);
        if (rc == 0) rc = st_save_refs(s, e);
        if (rc == 0) op_image_event(o, img, "tag", key);
    }
    if (rc == 0) {
        op_image_event(o, img, "import", img->id);
        memcpy(id_out, img->id, DIGEST_LEN + 1);
    }
    layer_release(s, pl, o);
    pthread_rwlock_unlock(&s->lock);
    return rc;
}

int image_import(store *s, int in_fd, const char *repo, const char *tag, const json_t *changes,
                 const char *message, char id_out[DIGEST_LEN + 1], berr *e)
{
    ref r;
    bool has_tag;
    if (import_target(repo, tag, &r, &has_tag, e) < 0) return -1;
    json_t *runconf = build_runcfg(changes, e);
    if (!runconf) return -1;
    char *blob = NULL, diff[DIGEST_LEN + 1];
    pending_layer pl = {0};
    op o = {0};
    int rc = read_layer(s, in_fd, &blob, diff, e);
    if (rc == 0)
        rc = layer_prepare(s, "", diff, blob, &pl, e);
    else
        pl.tmp_blob = blob;
    if (rc == 0) {
        _cleanup_free_ char *cfg = import_config(
            json_incref(runconf), message && *message ? message : "Imported from -", diff);
        rc = commit_import(s, &pl, cfg, &r, has_tag, id_out, &o, e);
    } else {
        pthread_rwlock_wrlock(&s->lock);
        layer_release(s, &pl, &o);
        pthread_rwlock_unlock(&s->lock);
    }
    json_decref(runconf);
    op_finish(s, &o);
    return rc;
}
