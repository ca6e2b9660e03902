/* containers.h: the daemon's container records.
 *
 * A container is its inspect JSON (the shape of GET /containers/{id}/json)
 * plus a little runtime bookkeeping. The JSON is persisted atomically at
 * <data-root>/containers/<id>/config.v2.json after every change, so a
 * `kill -9` of berthd loses nothing; at start the daemon reloads every record
 * and asks each container's shim (or its exit.json) what happened meanwhile.
 *
 * Locking: one mutex (ctr_lock) guards the table and every record's JSON;
 * each container also has an op mutex that serializes its lifecycle
 * operations (start, stop, kill, remove...), which may block for a while. */
#ifndef BERTH_CONTAINERS_H
#define BERTH_CONTAINERS_H

#include <jansson.h>
#include <pthread.h>
#include <sys/stat.h>
#include <sys/types.h>

#include "common/util.h"

/* Cgroup directories made ahead for a container's first start (runtime.h
 * rt_cgroup_premake), named <parent>/.pool-<name>, the tree its
 * /sys/fs/cgroup can be attached from (rt_cgroup_premake_tree), and its /dev
 * (rt_dev_tree_make). */
typedef struct ctr_premade {
    char name[17]; /* "": none */
    int tree;      /* -1: none */
    bool devices;  /* the default device rules are in (ocispec_default_devices) */
    int dev_tree;  /* a /dev made ahead for ocispec_default_dev_mounts (rt_dev_tree_make); -1 */
} ctr_premade;
#define CTR_PREMADE_NONE ((ctr_premade){"", -1, false, -1})
void ctr_premake(const char *name, ctr_premade *pm); /* best effort */
void ctr_premade_drop(ctr_premade *pm);              /* never used: gone */
/* Whether they hold the device rules linux.resources.devices asks for. */
bool ctr_premade_devices_fit(const ctr_premade *pm, const json_t *devices);
/* Whether a /dev made for ocispec_default_dev_mounts is the one spec asks for. */
bool ctr_dev_tree_fits(const json_t *spec);

typedef struct container {
    char id[65];
    json_t *j;              /* inspect JSON; guarded by ctr_lock */
    pthread_mutex_t op;     /* serializes lifecycle operations */
    int refs;               /* guarded by ctr_lock */
    bool removed;           /* set when deleted; guarded by ctr_lock */
    bool waiter;            /* a thread waits for its exit */
    bool stopping;          /* stop/kill requested by the user (no restart) */
    pthread_cond_t changed; /* broadcast on state changes (with ctr_lock) */
    /* an attach that arrived before start (docker run): the next start
     * launches the shim attached and hands the stream over in pa_fd */
    bool pa_waiting, pa_in, pa_out, pa_err;
    int pa_fd;
    int start_errors; /* bumped on each failed start (wakes pending attaches) */
    /* saves: snapshots are numbered under ctr_lock and written in order
     * under save_mu (a stale one is dropped), so a save may be written
     * without holding ctr_lock */
    pthread_mutex_t save_mu;
    uint64_t save_seq;   /* guarded by ctr_lock */
    uint64_t saved_seq;  /* guarded by save_mu */
    bool start_unsaved;  /* a start's record is left for its waiter to write (ctr_lock) */
    ctr_premade premade; /* for its first start */
    /* --rm roots (warm.h), touched under op: a root taken from the warm
     * pool for the first start (detached mount; -1: none), the layers it is
     * mounted from, and its upper dir's stat when the container got it */
    int warm_fd;
    char *root_key;
    struct stat upper_st;
} container;

extern pthread_mutex_t ctr_mutex;
void ctr_lock(void);
void ctr_unlock(void);

/* Loads every record from <data_root>/containers. */
#define CTR_CGROUP_PARENT "/berth" /* containers' cgroups: <parent>/<id> */
/* Empty files a container's directory may hold ahead (the pool's, a kept
 * root's): the inode its record's first write takes (ctr_write_snapshot)
 * and the one its log takes (ctr_add). ext4 allocates an inode in ~0.1 ms
 * here (its search skips the recently deleted ones, which back-to-back runs
 * leave many of): create and the shim's start then allocate none. */
#define CTR_SPARE_RECORD ".spare-record"
#define CTR_SPARE_LOG ".spare-log"
int ctr_init(const char *data_root, const char *exec_root, berr *e);
void ctr_pool_stop(void); /* the directories made ahead (at shutdown) */

/* Finds by full ID, unique ID prefix, or name (with or without "/").
 * Returns a referenced container (ctr_put when done) or NULL with 404. */
container *ctr_get(const char *ref, berr *e);
void ctr_put(container *c);
/* A new record; fails 409 if the name is taken. Returned referenced. */
/* fill (may be NULL) completes the record with what needs its id, with
 * ctr_lock held, before the one write of it. */
/* warm_key (may be NULL): the layers of a --rm root it may take (warm.h). */
container *ctr_add(json_t *j, void (*fill)(container *c), const char *warm_key, berr *e);
/* Drops the record and its files under the data root (not the exec root). */
/* Takes c out of the table and marks it removed (waiters wake), then runs
 * before_files(c) (may be NULL; e.g. unmounting its root) and deletes its
 * directories. */
void ctr_remove(container *c, void (*before_files)(container *c));
/* Persists c->j atomically (call with ctr_lock held). */
int ctr_save(container *c); /* with ctr_lock held: snapshot and write */
/* The same in two steps, to write without ctr_lock: the snapshot with it
 * held, the write (which frees s) after releasing it. */
char *ctr_snapshot(container *c, uint64_t *seq);
int ctr_write_snapshot(container *c, char *s, uint64_t seq);
/* A snapshot array of referenced containers (ctr_put each, free array). */
container **ctr_all(size_t *n);
/* 409 if another container has the name. */
int ctr_rename(container *c, const char *name, berr *e);
/* A fresh "adjective_name" not in use. */
char *ctr_random_name(void);
/* Number of containers using an image ID, for image removal. */
int ctr_count_image(const char *image_id, bool running_only);
/* For the image engine's usage hook: containers of image_id that are
 * (not) running; one of their IDs into cid. Takes ctr_lock. */
int ctr_image_usage(const char *image_id, bool running, char cid[65]);
/* Counts for /info. */
void ctr_counts(int *total, int *running, int *paused, int *stopped);

/* Paths */
char *ctr_dir(const char *id);      /* <data-root>/containers/<id> */
char *ctr_exec_dir(const char *id); /* <exec-root>/containers/<id> */

/* State helpers (ctr_lock held). */
json_t *ctr_state(container *c);
const char *ctr_status(container *c);
bool ctr_running(container *c);
void ctr_set_status(container *c, const char *status);

#endif
