/* lifecycle.h: container start/stop/kill/remove/pause and exit handling;
 * see lifecycle.c. Return 1 where the API answers 304 (already in the
 * wanted state). */
#ifndef BERTH_LIFECYCLE_H
#define BERTH_LIFECYCLE_H

#include "daemon/containers.h"

void lc_init(const char *shim_path);
int lc_start(container *c, berr *e);
int lc_stop(container *c, int timeout_s, const char *signal, berr *e);
int lc_kill(container *c, int sig, berr *e);
int lc_remove(container *c, bool force, bool volumes, berr *e);
int lc_pause(container *c, bool pause, berr *e);
bool lc_wait_stopped(container *c, int timeout_ms);
void lc_unmount(const char *id);
/* The container's merged root, mounted for the caller's use even when the
 * container is not running (export, cp, changes); lifecycle operations on
 * it wait until lc_rootfs_release. */
int lc_rootfs_acquire(container *c, char **path, berr *e);
void lc_rootfs_release(container *c);
void lc_restore(void);
/* Pooled network namespaces (netns.c) no running container holds are released. */
void lc_netns_release_stale(void);
bool lc_any_running(void); /* a shim of any container still serves */
/* health.c: starts the health-check thread when the config has one. */
void health_start(container *c);
/* The running container's OCI process spec (a copy), or NULL. */
json_t *lc_spec_process(const char *id);
/* "SIGTERM", "TERM", "15" -> 15; -1 if unknown */
int lc_parse_signal(const char *s);
/* Publishes a container event with Docker's attributes (image, name, labels) + extra. */
void lc_event(container *c, const char *action, json_t *extra);

/* Removes the init layers (lifecycle.c) whose image top layer is gone, and
 * drops the kept --rm roots (warm.h) whose layers are gone; all: also
 * half-made init layers (at daemon start only). */
void lc_init_layers_gc(bool all);
/* The layers a --rm root of the image is mounted from (warm.h); NULL: its
 * roots are not kept. */
char *lc_root_key(const char *image_id);

#endif
