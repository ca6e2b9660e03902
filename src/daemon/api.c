/* api.c: the Engine API route table. Paths are matched after any /vN.NN
 * prefix is removed; {name*} spans several segments (image names have
 * slashes). Unknown paths answer 404 "page not found" as dockerd does. */
#include "daemon/api.h"

/* An Engine API area berthd does not implement yet (see docs/compat.md). */
void h_unsupported(req *r)
{
    resp_error(r, 501, "%s %s is not supported by berthd yet", r->method, r->path);
}

/* Swarm mode is out of scope: answer as dockerd does on a node that is not
 * a swarm member. */
void h_swarm_unsupported(req *r)
{
    resp_error(r, 503, "This node is not a swarm manager. Berth does not support swarm mode.");
}

const route api_routes[] = {
    {"GET", "/_ping", h_ping, BODY_NONE},
    {"GET", "/version", h_version, BODY_NONE},
    {"GET", "/info", h_info, BODY_NONE},
    {"GET", "/events", h_events, BODY_NONE},
    {"GET", "/system/df", h_system_df, BODY_NONE},
    {"GET", "/images/json", h_images_list, BODY_NONE},
    {"POST", "/images/create", h_image_create, BODY_FILE},
    {"POST", "/images/load", h_images_load, BODY_FILE},
    {"POST", "/images/prune", h_images_prune, BODY_NONE},
    {"GET", "/images/get", h_images_get, BODY_NONE},
    {"GET", "/images/{name*}/json", h_image_inspect, BODY_NONE},
    {"GET", "/images/{name*}/history", h_image_history, BODY_NONE},
    {"GET", "/images/{name*}/get", h_image_get, BODY_NONE},
    {"POST", "/images/{name*}/tag", h_image_tag, BODY_NONE},
    {"DELETE", "/images/{name*}", h_image_delete, BODY_NONE},
    {"POST", "/containers/create", h_container_create, BODY_MEM},
    {"GET", "/containers/json", h_containers_list, BODY_NONE},
    {"POST", "/containers/prune", h_containers_prune, BODY_NONE},
    {"GET", "/containers/{id}/json", h_container_inspect, BODY_NONE},
    {"POST", "/containers/{id}/start", h_container_start, BODY_MEM},
    {"POST", "/containers/{id}/stop", h_container_stop, BODY_NONE},
    {"POST", "/containers/{id}/restart", h_container_restart, BODY_NONE},
    {"POST", "/containers/{id}/kill", h_container_kill, BODY_NONE},
    {"POST", "/containers/{id}/pause", h_container_pause, BODY_NONE},
    {"POST", "/containers/{id}/unpause", h_container_unpause, BODY_NONE},
    {"POST", "/containers/{id}/wait", h_container_wait, BODY_NONE},
    {"POST", "/containers/{id}/rename", h_container_rename, BODY_NONE},
    {"GET", "/containers/{id}/logs", h_container_logs, BODY_NONE},
    {"POST", "/containers/{id}/attach", h_container_attach, BODY_NONE},
    {"POST", "/containers/{id}/resize", h_container_resize, BODY_NONE},
    {"DELETE", "/containers/{id}", h_container_delete, BODY_NONE},
    {"GET", "/containers/{id}/stats", h_container_stats, BODY_NONE},
    {"GET", "/containers/{id}/top", h_container_top, BODY_NONE},
    {"POST", "/containers/{id}/update", h_container_update, BODY_MEM},
    {"GET", "/containers/{id}/changes", h_container_changes, BODY_NONE},
    {"GET", "/containers/{id}/export", h_container_export, BODY_NONE},
    {"GET", "/containers/{id}/archive", h_container_archive_get, BODY_NONE},
    {"HEAD", "/containers/{id}/archive", h_container_archive_get, BODY_NONE},
    {"PUT", "/containers/{id}/archive", h_container_archive_put, BODY_FILE},
    {"POST", "/commit", h_commit, BODY_MEM},
    {"POST", "/containers/{id}/exec", h_exec_create, BODY_MEM},
    {"POST", "/exec/{id}/start", h_exec_start, BODY_MEM},
    {"GET", "/exec/{id}/json", h_exec_inspect, BODY_NONE},
    {"POST", "/exec/{id}/resize", h_exec_resize, BODY_NONE},
    /* known Engine API areas that berthd does not serve yet: a clear 501 */
    {"*", "/containers/{rest*}", h_unsupported, BODY_NONE},
    {"*", "/exec/{rest*}", h_unsupported, BODY_NONE},
    {"*", "/build", h_unsupported, BODY_NONE},
    {"*", "/build/{rest*}", h_unsupported, BODY_NONE},
    {"*", "/images/search", h_unsupported, BODY_NONE},
    {"*", "/images/{name*}/push", h_unsupported, BODY_NONE},
    {"*", "/auth", h_unsupported, BODY_NONE},
    {"*", "/distribution/{rest*}", h_unsupported, BODY_NONE},
    {"*", "/volumes", h_unsupported, BODY_NONE},
    {"*", "/volumes/{rest*}", h_unsupported, BODY_NONE},
    {"*", "/networks", h_unsupported, BODY_NONE},
    {"*", "/networks/{rest*}", h_unsupported, BODY_NONE},
    {"*", "/plugins", h_unsupported, BODY_NONE},
    {"*", "/plugins/{rest*}", h_unsupported, BODY_NONE},
    {"*", "/session", h_unsupported, BODY_NONE},
    {"*", "/swarm", h_swarm_unsupported, BODY_NONE},
    {"*", "/swarm/{rest*}", h_swarm_unsupported, BODY_NONE},
    {"*", "/nodes", h_swarm_unsupported, BODY_NONE},
    {"*", "/nodes/{rest*}", h_swarm_unsupported, BODY_NONE},
    {"*", "/services", h_swarm_unsupported, BODY_NONE},
    {"*", "/services/{rest*}", h_swarm_unsupported, BODY_NONE},
    {"*", "/tasks", h_swarm_unsupported, BODY_NONE},
    {"*", "/tasks/{rest*}", h_swarm_unsupported, BODY_NONE},
    {"*", "/secrets", h_swarm_unsupported, BODY_NONE},
    {"*", "/secrets/{rest*}", h_swarm_unsupported, BODY_NONE},
    {"*", "/configs", h_swarm_unsupported, BODY_NONE},
    {"*", "/configs/{rest*}", h_swarm_unsupported, BODY_NONE},
    {NULL, NULL, NULL, BODY_NONE},
};
