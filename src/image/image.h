/* image.h: the image engine as the daemon sees it.
 *
 * Everything here works on one `store` (a data root). Results meant for the
 * Engine API are returned as jansson values already shaped as the v1.41 API
 * documents them, so the HTTP layer only serializes. Every function is
 * thread-safe (the store holds one lock). Errors come back in a berr with
 * an HTTP status: 400 bad parameter, 404 no such image, 409 conflict, 500.
 *
 * On-disk layout under the data root:
 *   blobs/sha256/<hex>        content store: image configs and uncompressed
 *                             layer tars (addressed by their diff ID); a blob
 *                             is renamed into place only after its digest is
 *                             verified
 *   layers/<chain-hex>/       one unpacked layer per chain ID, shared by all
 *                             images: diff/ (the files, overlay whiteouts),
 *                             meta.json {chain_id, diff_id, parent, size};
 *                             unpacked in tmp/ and renamed into place whole
 *   images/<id-hex>.json      per image metadata: {"id", "parent",
 *                             "last_tag_ns", "layers":[chain...]} (the config
 *                             itself is the blob <id>; created, labels and
 *                             diff IDs are read from it at open)
 *   repositories.json         {"name:tag" or "name@digest": "sha256:<id>"},
 *                             keys in docker's familiar form ("busybox:latest")
 *   tmp/                      temp files and dirs, emptied at open
 * Write order is content first (blobs, layers, config), then the image
 * record, then repositories.json; at open, records whose config or layers
 * are missing are dropped and layers/blobs no image uses are removed, so a
 * kill -9 at any point leaves a consistent store.
 * All state files are written with write_file_atomic. */
#ifndef BERTH_IMAGE_H
#define BERTH_IMAGE_H

#include <jansson.h>

#include "common/util.h"

typedef struct store store;

/* Opens (creating if needed) the store in data_root. */
int store_open(const char *data_root, store **out, berr *e);
void store_close(store *s);
/* A fresh unique path under <data_root>/tmp (caller unlinks). */
char *store_tmp_path(store *s);

/* Event hook: the engine reports image events ("import", "tag", "untag",
 * "delete", "load", "save", "pull", "push") through this; `id` is the image
 * ID or reference as Docker reports it, attrs a JSON object ("name"). May be
 * NULL. Called without the store lock held. */
typedef void (*image_event_fn)(const char *action, const char *id, json_t *attrs);
void store_set_event_hook(store *s, image_event_fn fn);

/* Container usage hook (set by the daemon's container code): returns how
 * many containers created from image `id` are running (running=true) or
 * not running (running=false), and copies the ID of one of them into cid.
 * It is called with the store lock held, so it must not call back into the
 * image API. May be NULL (no containers). Used for rmi/prune conflicts as
 * docker reports them and for df's Containers counts. */
typedef int (*image_usage_fn)(const char *id, bool running, char cid[65]);
void store_set_usage_hook(store *s, image_usage_fn fn);

/* Resolves a name (full or short ID with or without "sha256:", "name",
 * "name:tag", "name@digest") to the image ID. 404 when unknown. */
int image_resolve(store *s, const char *name, char id_out[DIGEST_LEN + 1], berr *e);

/* GET /images/json. filters: already parsed (jsonutil filters_parse), keys
 * reference, dangling, label, before, since. `all` includes intermediates. */
json_t *image_list(store *s, const json_t *filters, bool all, berr *e);
/* GET /images/{name}/json */
json_t *image_inspect(store *s, const char *name, berr *e);
/* GET /images/{name}/history */
json_t *image_history(store *s, const char *name, berr *e);
/* POST /images/{name}/tag?repo=&tag= (tag defaults to "latest"). */
int image_tag(store *s, const char *name, const char *repo, const char *tag, berr *e);
/* DELETE /images/{name}: the JSON array of {"Untagged":ref} / {"Deleted":id}. */
json_t *image_remove(store *s, const char *name, bool force, bool noprune, berr *e);
/* POST /images/prune: {"ImagesDeleted":[...], "SpaceReclaimed":n}. filters
 * dangling (default true), until, label. */
json_t *image_prune(store *s, const json_t *filters, berr *e);
/* GET /system/df "Images" array plus LayersSize. */
json_t *image_df(store *s, int64_t *layers_size, berr *e);
/* Count of images (for /info). */
int image_count(store *s);

/* POST /images/create?fromSrc=- : imports a rootfs tarball (plain, gzip,
 * zstd, xz) read from in_fd. repo/tag may be NULL. changes is an array of
 * Dockerfile instructions (CMD, ENTRYPOINT, ENV, WORKDIR, EXPOSE, LABEL,
 * USER, VOLUME, STOPSIGNAL, ONBUILD). message is the history comment. */
int image_import(store *s, int in_fd, const char *repo, const char *tag, const json_t *changes,
                 const char *message, char id_out[DIGEST_LEN + 1], berr *e);

/* POST /images/load: a `docker save` archive or an OCI image layout
 * archive (tar, maybe compressed) from in_fd. For each image loaded,
 * progress(arg, "Loaded image: name:tag") or "Loaded image ID: sha256:..." */
int image_load(store *s, int in_fd, void (*progress)(void *arg, const char *line), void *arg,
               berr *e);

/* GET /images/get?names=..: writes a docker-save tar (manifest.json,
 * repositories, <id-hex>.json, <layer>/layer.tar, plus OCI index.json,
 * oci-layout, blobs/sha256/...) to out_fd. Names that are bare IDs save
 * without tags. Checks all names before writing anything (404). */
int image_save(store *s, const char *const *names, size_t n, int out_fd, berr *e);
/* Validates names for image_save before the response starts (and that
 * libarchive can be loaded: 500 otherwise). */
int image_save_check(store *s, const char *const *names, size_t n, berr *e);

/* Local filesystem paths of an image's layers, lowest first (for the
 * container runtime: overlay lowerdirs). Returns count or -1. */
int image_layer_dirs(store *s, const char *id, char ***dirs_out, berr *e);

/* POST /commit (commit.c): a new image from a container. upper_dir (the
 * container's overlay upper dir; whiteouts become OCI .wh. entries) is
 * packed as one layer on top of parent_id (none when it has no changes);
 * the image config is docker's child image config: `config` (or, when
 * NULL, container_config) with the `changes` instructions applied, merged
 * with container_config as dockerd does; "container", "container_config",
 * the parent's rootfs and history plus an entry with created_by, author,
 * comment. Tags repo:tag when repo is set ("tag" event). 400 on a bad
 * repo/tag or change, 404 when the parent image is gone. */
typedef struct commit_opts {
    const char *parent_id; /* the container's image ID */
    const char *container_id;
    const json_t *container_config;            /* the container's Config */
    const json_t *config;                      /* the request's Config, or NULL */
    const json_t *changes;                     /* array of Dockerfile lines, or NULL */
    const char *comment, *author, *repo, *tag; /* each may be NULL */
} commit_opts;
int image_commit_container(store *s, const char *upper_dir, const commit_opts *o,
                           char id_out[DIGEST_LEN + 1], berr *e);

#endif
