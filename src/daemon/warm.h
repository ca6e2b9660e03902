/* warm.h: --rm roots kept mounted for the next --rm container of the same
 * layers.
 *
 * A --rm container's root is an overlay of the image's layers (the key: the
 * lowerdir list) over an upper dir that is thrown away at its end. When the
 * container wrote nothing in its root (the upper dir and the overlay's work
 * dir are as they were made, see warm_give), the mounted overlay is kept as
 * a detached mount (an fd, no path, not in mountinfo) with its directory
 * under <data-root>/containers/.warm/<hex>, and the next --rm container of
 * the same layers takes it at create: its start mounts nothing, and neither
 * end makes or removes a directory on disk. The overlay shows "upperdir=upper,
 * workdir=work" (mounted from its directory), so nothing in it names a
 * container. The entries die with berthd (the fds); their directories are
 * removed at the next start. */
#ifndef BERTH_WARM_H
#define BERTH_WARM_H

#include <stdbool.h>
#include <sys/stat.h>

#include "daemon/containers.h"

void warm_init(const char *data_root); /* removes what an earlier berthd left */
void warm_stop(void);                  /* drops every entry (shutdown) */
/* An entry of these layers renamed to dir: the detached mount's fd, its
 * premade cgroups in *pm, the upper dir's stat in st; -1 when there is none. */
int warm_take(const char *key, const char *dir, ctr_premade *pm, struct stat *st);
/* root (mounted) over dir/upper and dir/work, whose upper dir had the stat
 * st when the container got it: true when kept (nothing was written in
 * it): root is unmounted and dir moved away. False: not kept; root may be
 * unmounted already, dir is left for the caller to remove. */
bool warm_give(const char *key, const char *root, const char *dir, const struct stat *st);
/* Drops the entries whose layers are gone (after an image removal). */
void warm_gc(void);

#endif
