/* libarchive.c: the table behind libarchive.h, filled on first use. */
#include "common/libarchive.h"

#include <dlfcn.h>
#include <malloc.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

struct la_api la_api;

/* The handle, the users and the table are guarded by la_mu. A thread that
 * called la_need holds the library until la_release_thread; with
 * la_unload_when_idle on (berthd), the last release unloads it, so a daemon
 * that did one import does not keep libarchive's dependency tree (~2.5 MB)
 * resident for good. libstdc++ stays loaded (glibc never unloads it). */
static pthread_mutex_t la_mu = PTHREAD_MUTEX_INITIALIZER;
static void *la_handle;
static int la_users;
static bool la_unloadable;
static __thread bool la_held;
static char la_msg[512];

static int la_open(void)
{
    if (la_handle) return 0;
    void *h = dlopen(LA_SONAME, RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        const char *why = dlerror();
        snprintf(la_msg, sizeof la_msg, "%s", why ? why : LA_SONAME ": cannot be loaded");
        return -1;
    }
    struct la_api t;
#define LA_SYM(f)                                                                                  \
    if (!(t.f = (__typeof__(t.f))dlsym(h, #f))) {                                                  \
        snprintf(la_msg, sizeof la_msg, "%s: no symbol %s", LA_SONAME, #f);                        \
        dlclose(h);                                                                                \
        return -1;                                                                                 \
    }
    LA_FUNCS(LA_SYM)
#undef LA_SYM
    la_api = t;
    la_handle = h;
    return 0;
}

int la_load(void)
{
    pthread_mutex_lock(&la_mu);
    int r = la_open();
    pthread_mutex_unlock(&la_mu);
    return r;
}

const char *la_error(void)
{
    return la_load() < 0 ? la_msg : "";
}

int la_need(berr *e)
{
    pthread_mutex_lock(&la_mu);
    int r = la_open();
    if (r == 0 && !la_held) la_held = true, la_users++;
    pthread_mutex_unlock(&la_mu);
    if (r == 0) return 0;
    return berr_set(e, 500, "tar archives need libarchive, which cannot be loaded: %s", la_msg);
}

void la_release_thread(void)
{
    if (!la_held) return;
    pthread_mutex_lock(&la_mu);
    la_held = false;
    if (--la_users == 0 && la_unloadable && la_handle) {
        dlclose(la_handle);
        la_handle = NULL;
        memset(&la_api, 0, sizeof la_api);
        malloc_trim(0); /* what the operation freed, while it is quiet */
    }
    pthread_mutex_unlock(&la_mu);
}

void la_unload_when_idle(bool on)
{
    pthread_mutex_lock(&la_mu);
    la_unloadable = on;
    pthread_mutex_unlock(&la_mu);
}
