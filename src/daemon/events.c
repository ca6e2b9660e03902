/* events.c: the event bus behind GET /events; see events.h.
 *
 * A ring of the last RING events, protected by one mutex; subscribers wait
 * on a condition variable and read events by sequence number, so a slow
 * client never blocks a publisher (it skips what fell out of the ring).
 * Events are kept as their JSON text, one allocation each (~400 bytes; as
 * jansson objects they were ~2.8 kB in a dozen allocations, which pinned
 * pages all over the heap), and parsed again for the subscribers. */
#include "events.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "common/jsonutil.h"

#define RING 256

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static char *ring[RING];
static uint64_t next_seq; /* sequence number of the next event */

void events_publish(const char *type, const char *action, const char *id, json_t *attrs)
{
    int64_t ns = now_ns();
    if (!attrs) attrs = json_object();
    json_t *ev =
        json_pack("{s:s,s:s,s:s,s:s,s:{s:s,s:o},s:s,s:I,s:I}", "status", action, "id", id, "Type",
                  type, "Action", action, "Actor", "ID", id, "Attributes", attrs, "scope", "local",
                  "time", (json_int_t)(ns / 1000000000LL), "timeNano", (json_int_t)ns);
    const char *from = jstr(json_object_get(json_object_get(ev, "Actor"), "Attributes"), "image");
    if (!strcmp(type, "container") && from) json_object_set_new(ev, "from", json_string(from));
    if (strcmp(type, "container") && strcmp(type, "image")) {
        json_object_del(ev, "status");
        json_object_del(ev, "id");
    }
    char *text = json_fast_dumps(ev, JSON_COMPACT);
    json_decref(ev);
    if (!text) return;
    pthread_mutex_lock(&mu);
    free(ring[next_seq % RING]);
    ring[next_seq % RING] = text;
    next_seq++;
    pthread_cond_broadcast(&cv);
    pthread_mutex_unlock(&mu);
}

/* Does a value name this actor? Full or short ID, or the name attribute with
 * or without its ":latest". */
static bool actor_is(const json_t *ev, const char *v)
{
    const char *id = jstr(json_object_get(ev, "Actor"), "ID");
    const json_t *attrs = json_object_get(json_object_get(ev, "Actor"), "Attributes");
    const char *name = jstr(attrs, "name"), *image = jstr(attrs, "image");
    if (id && (!strcmp(id, v) ||
               (strlen(v) >= 4 && str_starts(id + (str_starts(id, "sha256:") ? 7 : 0), v))))
        return true;
    const char *cands[] = {name, image};
    for (int i = 0; i < 2; i++) {
        if (!cands[i]) continue;
        if (!strcmp(cands[i], v)) return true;
        /* "repo" matches "repo:anytag", as dockerd strips the tag */
        size_t lv = strlen(v);
        const char *slash = strrchr(cands[i], '/');
        const char *colon = strrchr(slash ? slash : cands[i], ':');
        if (!strchr(v + (strrchr(v, '/') ? strrchr(v, '/') - v : 0), ':') && colon &&
            (size_t)(colon - cands[i]) == lv && !strncmp(cands[i], v, lv))
            return true;
    }
    return false;
}

static bool any_value(const json_t *f, const char *key, const json_t *ev)
{
    json_t *vals = filters_get(f, key);
    if (!vals) return true;
    size_t i;
    json_t *v;
    json_array_foreach(vals, i, v) if (actor_is(ev, json_string_value(v))) return true;
    return false;
}

static bool ev_match(const json_t *ev, const json_t *f)
{
    const char *type = jstr(ev, "Type");
    if (!filters_match(f, "type", type)) return false;
    json_t *evf = filters_get(f, "event"), *acf = filters_get(f, "action");
    const char *act = jstr(ev, "Action");
    if ((evf || acf) && !(evf && filters_match(f, "event", act)) &&
        !(acf && filters_match(f, "action", act)))
        return false;
    if (!filters_match(f, "scope", "local")) return false;
    const json_t *attrs = json_object_get(json_object_get(ev, "Actor"), "Attributes");
    if (!filters_match_labels(f, "label", attrs)) return false;
    if (filters_get(f, "image") && (strcmp(type, "image") && strcmp(type, "container")))
        return false;
    if (!any_value(f, "image", ev)) return false;
    if (filters_get(f, "container") && strcmp(type, "container")) return false;
    if (!any_value(f, "container", ev)) return false;
    return true;
}

static int64_t ev_time(const json_t *ev)
{
    return json_integer_value(json_object_get(ev, "timeNano"));
}

/* Copies out the next event at or after *seq, waiting until `deadline_ns`.
 * Returns NULL on timeout. */
static json_t *next_event(uint64_t *seq, int64_t deadline_ns)
{
    for (;;) {
        pthread_mutex_lock(&mu);
        while (*seq >= next_seq) {
            struct timespec ts = {deadline_ns / 1000000000LL, deadline_ns % 1000000000LL};
            if (pthread_cond_timedwait(&cv, &mu, &ts) != 0 && *seq >= next_seq) {
                pthread_mutex_unlock(&mu);
                return NULL;
            }
        }
        if (next_seq - *seq > RING) *seq = next_seq - RING; /* fell behind */
        char *text = xstrdup(ring[*seq % RING]);
        (*seq)++;
        pthread_mutex_unlock(&mu);
        json_t *ev = json_fast_loadb(text, strlen(text), 0, NULL);
        free(text);
        if (ev) return ev; /* (it was dumped by events_publish: it parses) */
    }
}

void events_stream(stream *st, int64_t since, int64_t until, const json_t *filters)
{
    uint64_t seq;
    pthread_mutex_lock(&mu);
    seq = next_seq;
    if (since || until) seq = next_seq > RING ? next_seq - RING : 0;
    uint64_t live_from = next_seq;
    pthread_mutex_unlock(&mu);
    for (;;) {
        int64_t now = now_ns();
        if (until && now > until && seq >= live_from) return;
        int64_t deadline = now + 1000000000LL;
        if (until && until < deadline) deadline = until;
        json_t *ev = next_event(&seq, seq < live_from ? now : deadline);
        if (!ev) {
            if (seq < live_from) seq = live_from; /* replay done */
            if (stream_client_gone(st)) return;
            continue;
        }
        int64_t t = ev_time(ev);
        bool replay = seq <= live_from;
        bool in_window = (!since || t >= since) && (!until || t <= until);
        if ((replay ? (since || until) && in_window : in_window) && ev_match(ev, filters)) {
            if (stream_json(st, ev) < 0) return;
        } else {
            json_decref(ev);
        }
        if (until && t > until && !replay) return;
    }
}
