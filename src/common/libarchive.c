/* libarchive.c: the table behind libarchive.h, filled on first use. */
#include "common/libarchive.h"

#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>

struct la_api la_api;

static pthread_once_t la_once = PTHREAD_ONCE_INIT;
static int la_state = -1; /* 0 loaded, -1 failed: set once, under la_once */
static char la_msg[512];

static void la_open(void)
{
    void *h = dlopen(LA_SONAME, RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        const char *why = dlerror();
        snprintf(la_msg, sizeof la_msg, "%s", why ? why : LA_SONAME ": cannot be loaded");
        return;
    }
    struct la_api t;
#define LA_SYM(f)                                                                                  \
    if (!(t.f = (__typeof__(t.f))dlsym(h, #f))) {                                                  \
        snprintf(la_msg, sizeof la_msg, "%s: no symbol %s", LA_SONAME, #f);                        \
        dlclose(h);                                                                                \
        return;                                                                                    \
    }
    LA_FUNCS(LA_SYM)
#undef LA_SYM
    la_api = t; /* never unloaded */
    la_state = 0;
}

int la_load(void)
{
    pthread_once(&la_once, la_open);
    return la_state;
}

const char *la_error(void)
{
    return la_load() < 0 ? la_msg : "";
}

int la_need(berr *e)
{
    if (la_load() == 0) return 0;
    return berr_set(e, 500, "tar archives need libarchive, which cannot be loaded: %s", la_msg);
}
