/* events.h: the daemon's event bus (GET /events).
 *
 * Events are kept in a ring of the last 256 (as dockerd does) for
 * since/until replays, and pushed to every live subscriber. */
#ifndef BERTH_EVENTS_H
#define BERTH_EVENTS_H

#include <jansson.h>

#include "daemon/http.h"

/* type: "image", "container", ...; attrs (stolen, may be NULL) become
 * Actor.Attributes. */
void events_publish(const char *type, const char *action, const char *id, json_t *attrs);
/* Writes matching events to st: replayed ones (since/until, ns; 0 = unset),
 * then live ones until `until` passes or the client goes away. */
void events_stream(stream *st, int64_t since, int64_t until, const json_t *filters);

#endif
