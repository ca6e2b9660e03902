/* netns.c: network namespaces made ahead of time.
 *
 * Creating a network namespace is the dearest step of a container's clone
 * (~1 ms here, all of it in the kernel). berthd keeps NETNS_POOL of them
 * ready under <exec-root>/netns/, each bind-mounted on a file as
 * `ip netns add` does, with its loopback up (as Docker's --network none
 * has it). A start takes one and puts its path in the spec (an OCI
 * namespace with "path": the runtime joins it with setns); a filler thread
 * makes the next one meanwhile. A start that finds the pool empty waits for
 * the one being made; only when the filler cannot make any does the runtime
 * make the namespace itself. The container's record keeps the path (inspect's
 * NetworkSettings.SandboxKey); the exit releases it (unmount, unlink).
 * At daemon start, entries no running container holds are released. */
#include "daemon/netns.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <pthread.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "common/util.h"

#define NETNS_POOL 2

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cond = PTHREAD_COND_INITIALIZER;
static char *dir;
static char *ready[NETNS_POOL];
static int nready;
static pthread_cond_t taken = PTHREAD_COND_INITIALIZER; /* one is ready, or the filler gave up */
static bool stopping, running, failed;
static pthread_t filler;

static bool ours(const char *path)
{
    size_t l = dir ? strlen(dir) : 0;
    return path && l && !strncmp(path, dir, l) && path[l] == '/' && !strchr(path + l + 1, '/') &&
           path[l + 1];
}

static void release(const char *path)
{
    if (umount2(path, MNT_DETACH) < 0 && errno != EINVAL && errno != ENOENT)
        log_warn("netns: unmount %s: %s", path, strerror(errno));
    if (unlink(path) < 0 && errno != ENOENT)
        log_warn("netns: remove %s: %s", path, strerror(errno));
}

static int lo_up(void)
{
    int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (s < 0) return -1;
    struct ifreq ifr = {0};
    snprintf(ifr.ifr_name, sizeof ifr.ifr_name, "lo");
    int r = ioctl(s, SIOCGIFFLAGS, &ifr);
    if (r == 0 && !(ifr.ifr_flags & IFF_UP)) {
        ifr.ifr_flags |= IFF_UP;
        r = ioctl(s, SIOCSIFFLAGS, &ifr);
    }
    close(s);
    return r;
}

/* A new namespace, in this thread only, mounted on a new file; the thread
 * goes back to host_ns after. NULL on failure (logged once). */
static char *make_one(int host_ns)
{
    unsigned long long rnd;
    if (getrandom(&rnd, sizeof rnd, 0) != (ssize_t)sizeof rnd) rnd = (unsigned long long)now_ns();
    char *path = xasprintf("%s/%016llx", dir, rnd);
    int fd = open(path, O_RDONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0444);
    if (fd < 0) {
        log_warn("netns: create %s: %s", path, strerror(errno));
        free(path);
        return NULL;
    }
    close(fd);
    const char *step = "unshare";
    if (unshare(CLONE_NEWNET) < 0) goto fail;
    step = "loopback up";
    if (lo_up() < 0) goto back;
    step = "bind mount";
    if (mount("/proc/thread-self/ns/net", path, NULL, MS_BIND, NULL) < 0) goto back;
    setns(host_ns, CLONE_NEWNET); /* not to pin the namespace; unshare works from any */
    return path;
back : {
    int err = errno;
    setns(host_ns, CLONE_NEWNET);
    errno = err;
}
fail:
    log_warn("netns: %s for %s: %s", step, path, strerror(errno));
    release(path);
    free(path);
    return NULL;
}

static void *fill_main(void *arg)
{
    /* below the starts it fills for (nice is per thread on Linux), not
     * SCHED_IDLE: a start may wait for it */
    setpriority(PRIO_PROCESS, (id_t)gettid(), 10);
    int host_ns = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
    if (host_ns < 0) return arg;
    pthread_mutex_lock(&mu);
    while (!stopping) {
        if (nready == NETNS_POOL) {
            pthread_cond_wait(&cond, &mu);
            continue;
        }
        pthread_mutex_unlock(&mu);
        char *p = make_one(host_ns);
        pthread_mutex_lock(&mu);
        if (!p) break; /* the runtime makes namespaces itself from now on */
        if (stopping || nready == NETNS_POOL) {
            release(p);
            free(p);
        } else {
            ready[nready++] = p;
            pthread_cond_broadcast(&taken);
        }
    }
    failed = true;
    pthread_cond_broadcast(&taken);
    pthread_mutex_unlock(&mu);
    close(host_ns);
    return arg;
}

int netns_init(const char *exec_root)
{
    dir = xasprintf("%s/netns", exec_root);
    if (mkdir_p(dir, 0700) < 0) {
        log_warn("netns: %s: %s", dir, strerror(errno));
        return -1;
    }
    return 0;
}

void netns_release_stale(const char *const *keep, size_t n)
{
    DIR *d = dir ? opendir(dir) : NULL;
    if (!d) return;
    struct dirent *de;
    while ((de = readdir(d))) {
        if (de->d_name[0] == '.') continue;
        char *p = xasprintf("%s/%s", dir, de->d_name);
        bool held = false;
        for (size_t i = 0; i < n && !held; i++) held = keep[i] && !strcmp(keep[i], p);
        if (!held) release(p);
        free(p);
    }
    closedir(d);
}

void netns_start(void)
{
    if (!dir || running) return;
    pthread_attr_t a;
    pthread_attr_init(&a);
    pthread_attr_setstacksize(&a, 256u << 10); /* a few syscalls deep, plus TLS */
    running = pthread_create(&filler, &a, fill_main, NULL) == 0;
    if (!running) log_warn("netns: no filler thread: the runtime makes network namespaces");
    pthread_attr_destroy(&a);
}

/* With the pool empty (starts faster than the filler), waits for the one
 * being made: a namespace the runtime made itself would have lo down. */
char *netns_take(void)
{
    struct timespec dl;
    clock_gettime(CLOCK_REALTIME, &dl);
    dl.tv_sec += 5;
    pthread_mutex_lock(&mu);
    while (!nready && running && !stopping && !failed)
        if (pthread_cond_timedwait(&taken, &mu, &dl) != 0) break;
    char *p = nready ? ready[--nready] : NULL;
    pthread_cond_signal(&cond);
    pthread_mutex_unlock(&mu);
    return p;
}

void netns_release(const char *path)
{
    if (ours(path)) release(path);
}

void netns_stop(void)
{
    pthread_mutex_lock(&mu);
    stopping = true;
    pthread_cond_signal(&cond);
    pthread_cond_broadcast(&taken);
    pthread_mutex_unlock(&mu);
    if (running) pthread_join(filler, NULL);
    running = false;
    for (int i = 0; i < nready; i++) release(ready[i]), free(ready[i]);
    nready = 0;
}
