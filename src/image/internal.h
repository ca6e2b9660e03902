/* internal.h: private state of the image engine, shared by store.c (the
 * store, its index, blobs, layers, refs), image.c (queries, tag, remove,
 * prune), import.c (docker import), commit.c (docker commit), changes.c
 * (their --change instructions) and archive.c (docker save/load).
 * Nothing outside src/image includes this.
 *
 * Locking: one rwlock per store. Readers (list, inspect...) take it shared;
 * anything that changes the index takes it exclusive. Slow work (decompress,
 * unpack) happens without the lock into temp dirs under tmp/; layers that an
 * unfinished operation relies on are pinned so a concurrent delete keeps them.
 * Events and the removal of trashed dirs happen after the lock is dropped
 * (an `op` collects them). */
#ifndef BERTH_IMAGE_INTERNAL_H
#define BERTH_IMAGE_INTERNAL_H

#include <pthread.h>

#include "common/jsonutil.h"
#include "image.h"
#include "ref.h"

typedef struct layer {
    char chain[DIGEST_LEN + 1];
    char diff[DIGEST_LEN + 1];
    char parent[DIGEST_LEN + 1]; /* chain ID of the layer below, "" at the base */
    int64_t size;                /* bytes in the unpacked diff dir */
    int refs;                    /* images using it */
    int pins;                    /* unfinished imports/loads relying on it */
} layer;

typedef struct image {
    char id[DIGEST_LEN + 1];
    char parent[DIGEST_LEN + 1]; /* docker's parent image link, "" when none */
    int64_t created_ns;          /* the config's "created" */
    int64_t last_tag_ns;         /* 0: never tagged */
    json_t *labels;              /* config.Labels (object) or NULL */
    size_t nlayers;
    layer **layers; /* lowest first; owned by the store's layer table */
} image;

typedef struct refent {
    char *key;  /* familiar string, as stored: "busybox:latest", "a/b@sha256:..." */
    char *full; /* "docker.io/library/busybox:latest" (sort order, like docker) */
    char *repo; /* familiar repository name: "busybox" */
    bool canonical;
    char id[DIGEST_LEN + 1];
} refent;

struct store {
    char *root;
    pthread_rwlock_t lock;
    image **imgs;
    size_t nimgs, capimgs;
    layer **layers;
    size_t nlayers, caplayers;
    refent *refs;
    size_t nrefs, caprefs;
    image_event_fn hook;
    image_usage_fn usage;
    unsigned long seq;
};

/* ---- deferred work: events and trashed paths, run after unlocking ---- */
typedef struct op_event {
    char *action, *id;
    json_t *attrs;
} op_event;
typedef struct op {
    op_event *ev;
    size_t nev;
    char **trash;
    size_t ntrash;
} op;
void op_event_add(op *o, const char *action, const char *id, json_t *attrs);
/* Adds an event with attrs {labels of img..., "name": name}. */
void op_image_event(op *o, const image *img, const char *action, const char *name);
void op_trash(op *o, char *path); /* takes ownership */
void op_finish(store *s, op *o);  /* call without the lock */

/* ---- paths ---- */
char *st_path(const store *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
char *blob_path(const store *s, const char *digest);
char *layer_dir(const store *s, const char *chain); /* layers/<hex> */
/* A fresh temp dir tmp/<prefix>-XXXXXX. */
char *st_mkdtemp(store *s, const char *prefix, berr *e);
int syncfs_path(const char *path);

/* ---- lookups (lock held) ---- */
image *st_image(const store *s, const char *id);
layer *st_layer(const store *s, const char *chain);
bool st_has_children(const store *s, const image *img);
/* Docker's GetImage: ID, ID prefix, name[:tag], name@digest. 400/404. */
int st_resolve(store *s, const char *name, image **out, berr *e);
/* Refs pointing at id, sorted as docker sorts them; caller frees the array. */
size_t st_refs_of(const store *s, const char *id, refent ***out);
refent *st_ref_get(const store *s, const char *key);
/* The image config bytes (blob), NUL-terminated. */
int st_read_config(const store *s, const char *id, char **out, size_t *len, berr *e);
json_t *st_load_config(const store *s, const char *id, berr *e);

/* ---- references ---- */
/* Fills key/full/repo strings of a parsed ref (tag defaults to latest; a
 * ref with a digest is keyed by name@digest). */
void ref_strings(const ref *r, char *key, char *full, char *repo, size_t n);
/* Sets key -> id (moving it from another image). 1 when it moved, 0 when
 * new or unchanged (old_id filled when moved). Updates memory only. */
int st_ref_set(store *s, const ref *r, const char *id, char old_id[DIGEST_LEN + 1]);
bool st_ref_del(store *s, const char *key);
int st_save_refs(store *s, berr *e);
/* Validates repo (+ tag) as docker's tag endpoint does; fills r. 400. */
int parse_tag_target(const char *repo, const char *tag, ref *r, berr *e);

/* ---- images ---- */
int st_write_record(store *s, const image *img, berr *e);
/* Removes img (record, config blob, unused layers); layers removed are
 * appended to records as {"Deleted": chain} and their size to *reclaimed. */
int st_delete_image(store *s, image *img, json_t *records, int64_t *reclaimed, op *o, berr *e);

/* ---- building new content ---- */
void chain_id(const char *parent_chain, const char *diff, char out[DIGEST_LEN + 1]);
/* A layer on its way in. Either `pinned` (it already exists) or tmp_dir
 * holds a complete layers/<chain> candidate (diff/ + meta.json). */
typedef struct pending_layer {
    char chain[DIGEST_LEN + 1], diff[DIGEST_LEN + 1], parent[DIGEST_LEN + 1];
    char *tmp_blob; /* verified layer tar to become blobs/<diff>, or NULL */
    char *tmp_dir;
    int64_t size;
    layer *pinned;
} pending_layer;
/* Pins the existing layer or unpacks blob_file (an uncompressed, verified
 * tar; ownership moves to pl) into a temp layer dir. Lock not held. */
int layer_prepare(store *s, const char *parent_chain, const char *diff, char *blob_file,
                  pending_layer *pl, berr *e);
/* The two halves of layer_prepare: layer_pin fills pl and pins the layer
 * when it exists (true); otherwise layer_unpack unpacks blob_file. */
bool layer_pin(store *s, const char *parent_chain, const char *diff, pending_layer *pl);
int layer_unpack(store *s, pending_layer *pl, char *blob_file, berr *e);
/* Lock held: moves the prepared layer into place (or reuses one that
 * appeared meanwhile); the result stays pinned until layer_release. */
layer *layer_commit(store *s, pending_layer *pl, berr *e);
/* Lock held: drops one pin of l (removing it when nothing uses it). */
void layer_unpin(store *s, layer *l, op *o);
/* Lock held: drops the pin and the temps; removes the layer if unused. */
void layer_release(store *s, pending_layer *pl, op *o);
/* Lock held: stores the config blob and the image record for layers
 * (committed, pinned), unless the same image already exists. */
int image_commit(store *s, const char *config, size_t len, layer **layers, size_t n,
                 const char *parent, image **out, berr *e);
/* Writes data to a verified blob; digest_out gets its digest. Lock held. */
int blob_put(store *s, const void *data, size_t len, char digest_out[DIGEST_LEN + 1], berr *e);

/* ---- container configs (changes.c) ---- */
/* Applies a JSON array of Dockerfile instruction strings (CMD, ENTRYPOINT,
 * ENV, LABEL, EXPOSE, USER, WORKDIR, VOLUME, STOPSIGNAL, ONBUILD,
 * HEALTHCHECK; several may share a string, one a line) to a container
 * config object in place. 400 on a bad change; config may then be partly
 * changed. */
int config_apply_changes(json_t *config, const json_t *changes, berr *e);
/* A copy of a container config with Go's container.Config field order
 * and omitempty rules (absent or null members become Go's zero values). */
json_t *go_container_config(const json_t *src);

/* ---- shared helpers ---- */
/* Go's encoding/json output: compact, with <, >, & and U+2028/9 escaped. */
char *json_dump_go(const json_t *j);
/* config["rootfs"]["diff_ids"] validated; 400 on a malformed config. */
json_t *config_diff_ids(const json_t *config, berr *e);
void short_id(const char *id, char out[13]);
/* Go's zero container.Config, serialized as docker does (image.c). */
json_t *empty_container_config(void); /* 12 hex chars */
bool is_hex(const char *s, size_t n);

#endif
