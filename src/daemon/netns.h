/* netns.h: a pool of network namespaces made ahead of time (netns.c). */
#ifndef BERTH_NETNS_H
#define BERTH_NETNS_H

#include <stddef.h>

int netns_init(const char *exec_root); /* the directory; no thread yet */
/* Releases every entry whose path is not in keep (paths running containers hold). */
void netns_release_stale(const char *const *keep, size_t n);
void netns_start(void);               /* the filler thread */
char *netns_take(void);               /* a ready namespace's path (malloc'd), or NULL */
void netns_release(const char *path); /* unmount and remove; ignores paths not in the pool dir */
void netns_stop(void);

#endif
