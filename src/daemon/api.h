/* api.h: the daemon's shared state and the Engine API handlers.
 *
 * api.c holds the route table; each api_<resource>.c file implements the
 * handlers of one resource. Handlers run on HTTP connection threads. */
#ifndef BERTH_API_H
#define BERTH_API_H

#include "daemon/http.h"
#include "image/image.h"

typedef struct daemon_ctx {
    store *images;
    char *data_root;
    char *exec_root;
    char *hosts; /* listening addresses, comma-separated (for /info) */
    char *storage_driver;
    int64_t started_ns;
    char id[65]; /* daemon ID, persisted under the data root */
} daemon_ctx;

extern daemon_ctx D;
extern const route api_routes[];

void h_unsupported(req *r);
void h_swarm_unsupported(req *r);
/* system */
void h_ping(req *r);
void h_version(req *r);
void h_info(req *r);
void h_events(req *r);
void h_system_df(req *r);
/* images */
void h_images_list(req *r);
void h_image_inspect(req *r);
void h_image_history(req *r);
void h_image_tag(req *r);
void h_image_delete(req *r);
void h_image_create(req *r);
void h_images_get(req *r);
void h_image_get(req *r);
void h_images_load(req *r);
void h_images_prune(req *r);

/* containers */
void h_container_create(req *r);
void h_containers_list(req *r);
void h_container_inspect(req *r);
void h_container_start(req *r);
void h_container_stop(req *r);
void h_container_restart(req *r);
void h_container_kill(req *r);
void h_container_pause(req *r);
void h_container_unpause(req *r);
void h_container_delete(req *r);
void h_container_rename(req *r);
void h_container_wait(req *r);
void h_container_logs(req *r);
void h_container_attach(req *r);
void h_container_resize(req *r);
void h_containers_prune(req *r);
void h_container_stats(req *r);
void h_container_top(req *r);
void h_container_update(req *r);
void h_container_changes(req *r);
void h_container_export(req *r);
void h_container_archive_get(req *r);
void h_container_archive_put(req *r);
void h_commit(req *r);
void h_exec_create(req *r);
void h_exec_start(req *r);
void h_exec_inspect(req *r);
void h_exec_resize(req *r);
json_t *containers_df(void);
/* copies between a hijacked client socket and a container stream */
void api_splice(int client, int ctr_fd);

#endif
