/* api.c: the Engine API route table. Paths are matched after any /vN.NN
 * prefix is removed; {name*} spans several segments (image names have
 * slashes). Unknown paths answer 404 "page not found" as dockerd does. */
#include "daemon/api.h"

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
    {NULL, NULL, NULL, BODY_NONE},
};
