/* main.c: berthd's entry point: flags and daemon.json, the data-root lock,
 * pidfile, listening sockets, the HTTP servers, and clean shutdown on
 * SIGTERM/SIGINT. Flag names follow dockerd's. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <malloc.h>
#include <stddef.h>
#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <linux/magic.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/un.h>
#include <unistd.h>

#include "common/jsonutil.h"
#include "common/libarchive.h"
#include "daemon/api.h"
#include "daemon/containers.h"
#include "daemon/lifecycle.h"
#include "daemon/ocispec.h"
#include "runtime/runtime.h"
#include "shim/shim.h"
#include "daemon/events.h"
#include "daemon/netns.h"

daemon_ctx D;

#define MAX_HOSTS 8

struct opts {
    const char *hosts[MAX_HOSTS];
    int nhosts;
    const char *data_root, *exec_root, *pidfile, *log_level, *config_file, *storage_driver;
    const char *group;
    bool debug;
};

static void usage(FILE *f)
{
    fputs("Usage: berthd [OPTIONS]\n\n"
          "A self-sufficient runtime for containers, serving the Docker Engine API.\n\n"
          "Options:\n"
          "      --config-file string     Daemon configuration file (default "
          "\"/etc/berth/daemon.json\")\n"
          "      --data-root string       Root directory of persistent state (default "
          "\"/var/lib/berth\")\n"
          "  -D, --debug                  Enable debug mode\n"
          "      --exec-root string       Root directory for execution state files (default "
          "\"/run/berth\")\n"
          "  -G, --group string           Group for the unix socket (default \"berth\")\n"
          "  -H, --host list              Daemon socket(s) to connect to (default "
          "unix:///run/berth.sock)\n"
          "  -l, --log-level string       Set the logging level (\"debug\"|\"info\"|\"warn\"|"
          "\"error\") (default \"info\")\n"
          "  -p, --pidfile string         Path to use for daemon PID file (default "
          "\"/run/berth.pid\")\n"
          "  -s, --storage-driver string  Storage driver to use (default \"overlay2\")\n"
          "  -v, --version                Print version information and quit\n",
          f);
}

static int set_log_level(const char *l)
{
    if (!strcmp(l, "debug"))
        log_level = LOG_DEBUG_;
    else if (!strcmp(l, "info"))
        log_level = LOG_INFO_;
    else if (!strcmp(l, "warn"))
        log_level = LOG_WARN_;
    else if (!strcmp(l, "error") || !strcmp(l, "fatal"))
        log_level = LOG_ERR_;
    else
        return -1;
    return 0;
}

/* daemon.json: values apply where no flag was given. */
static int load_config(struct opts *o, json_t **keep)
{
    const char *path = o->config_file ? o->config_file : "/etc/berth/daemon.json";
    json_error_t je;
    json_t *j = json_load_file(path, 0, &je);
    if (!j) {
        if (!o->config_file && access(path, F_OK) < 0) return 0;
        fprintf(stderr, "berthd: unable to configure the daemon with file %s: %s\n", path, je.text);
        return -1;
    }
    *keep = j;
    static const struct {
        const char *key;
        int off;
    } flagged[] = {{"data-root", offsetof(struct opts, data_root)},
                   {"exec-root", offsetof(struct opts, exec_root)},
                   {"pidfile", offsetof(struct opts, pidfile)},
                   {"log-level", offsetof(struct opts, log_level)},
                   {"storage-driver", offsetof(struct opts, storage_driver)},
                   {"group", offsetof(struct opts, group)}};
    sbuf conflicts = {0};
    for (size_t i = 0; i < sizeof flagged / sizeof *flagged; i++) {
        const char *flag = *(const char **)((char *)o + flagged[i].off);
        if (flag && jstr(j, flagged[i].key))
            sbuf_printf(&conflicts, "%s%s: (from flag: %s, from file: %s)",
                        conflicts.len ? ", " : "", flagged[i].key, flag, jstr(j, flagged[i].key));
    }
    if (o->nhosts && json_object_get(j, "hosts"))
        sbuf_printf(&conflicts, "%shosts: (from flag and from file)", conflicts.len ? ", " : "");
    if (conflicts.len) {
        fprintf(stderr,
                "berthd: unable to configure the daemon with file %s: the following "
                "directives are specified both as a flag and in the configuration file: %s\n",
                path, conflicts.data);
        sbuf_free(&conflicts);
        return -1;
    }
    const char *v;
    if (!o->data_root && (v = jstr(j, "data-root"))) o->data_root = v;
    if (!o->exec_root && (v = jstr(j, "exec-root"))) o->exec_root = v;
    if (!o->pidfile && (v = jstr(j, "pidfile"))) o->pidfile = v;
    if (!o->log_level && (v = jstr(j, "log-level"))) o->log_level = v;
    if (!o->storage_driver && (v = jstr(j, "storage-driver"))) o->storage_driver = v;
    if (!o->group && (v = jstr(j, "group"))) o->group = v;
    if (json_is_true(json_object_get(j, "debug"))) o->debug = true;
    json_t *hosts = json_object_get(j, "hosts");
    if (o->nhosts == 0 && json_is_array(hosts)) {
        size_t i;
        json_t *h;
        json_array_foreach(hosts, i, h) if (json_is_string(h) && o->nhosts < MAX_HOSTS)
            o->hosts[o->nhosts++] = json_string_value(h);
    }
    return 0;
}

static int parse_args(int argc, char **argv, struct opts *o)
{
    static const struct option lo[] = {{"host", required_argument, 0, 'H'},
                                       {"data-root", required_argument, 0, 'R'},
                                       {"exec-root", required_argument, 0, 'E'},
                                       {"pidfile", required_argument, 0, 'p'},
                                       {"log-level", required_argument, 0, 'l'},
                                       {"debug", no_argument, 0, 'D'},
                                       {"config-file", required_argument, 0, 'C'},
                                       {"storage-driver", required_argument, 0, 's'},
                                       {"group", required_argument, 0, 'G'},
                                       {"version", no_argument, 0, 'v'},
                                       {"help", no_argument, 0, 'h'},
                                       {0, 0, 0, 0}};
    int c;
    while ((c = getopt_long(argc, argv, "H:p:l:Ds:G:vh", lo, NULL)) != -1) {
        switch (c) {
        case 'H':
            if (o->nhosts >= MAX_HOSTS) return fprintf(stderr, "berthd: too many -H\n"), -1;
            o->hosts[o->nhosts++] = optarg;
            break;
        case 'R':
            o->data_root = optarg;
            break;
        case 'E':
            o->exec_root = optarg;
            break;
        case 'p':
            o->pidfile = optarg;
            break;
        case 'l':
            o->log_level = optarg;
            break;
        case 'D':
            o->debug = true;
            break;
        case 'C':
            o->config_file = optarg;
            break;
        case 's':
            o->storage_driver = optarg;
            break;
        case 'G':
            o->group = optarg;
            break;
        case 'v':
            printf("Berth version %s, API %s\n", BERTH_VERSION, BERTH_API_VERSION);
            exit(0);
        case 'h':
            usage(stdout);
            exit(0);
        default:
            usage(stderr);
            return -1;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "berthd: unexpected argument: %s\n", argv[optind]);
        return -1;
    }
    return 0;
}

/* ---- listening sockets ---- */

static int listen_unix(const char *path, const char *group)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    if (strlen(path) >= sizeof sa.sun_path) return errno = ENAMETOOLONG, -1;
    strcpy(sa.sun_path, path);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return -1;
    /* a live daemon answers on it: refuse; a stale socket file is replaced */
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0) {
        close(fd);
        return errno = EADDRINUSE, -1;
    }
    unlink(path);
    char *dir = xstrdup(path);
    char *slash = strrchr(dir, '/');
    if (slash && slash != dir) *slash = 0, mkdir_p(dir, 0755);
    free(dir);
    /* the file is made with the socket's own mode, less the umask (Linux):
     * never open to others before the chmod below. Not a umask change: the
     * umask is the whole process's, and the threads started already (the
     * directory pool) would make their directories with it. */
    int rc = fchmod(fd, 0600) < 0 ? -1 : bind(fd, (struct sockaddr *)&sa, sizeof sa);
    if (rc < 0 || listen(fd, 128) < 0) {
        int s = errno;
        close(fd);
        return errno = s, -1;
    }
    gid_t gid;
    bool found = userdb_host_gid(group ? group : "berth", &gid) == 0;
    if (found && chown(path, 0, gid) < 0)
        log_warn("chown %s: %s", path, strerror(errno));
    else if (!found && group)
        log_warn("group %s not found; socket %s stays root-only", group, path);
    chmod(path, 0660);
    return fd;
}

/* The address of host:port. Numeric addresses (and "" for 0.0.0.0, the
 * first answer getaddrinfo gives for a passive wildcard) are parsed here;
 * only names go through getaddrinfo, whose resolver may load NSS modules. */
static int tcp_addr(const char *host, const char *port, struct sockaddr_storage *ss, socklen_t *len)
{
    char *end;
    unsigned long pn = strtoul(port, &end, 10);
    if (!*port || *end || pn > 65535) return errno = EINVAL, -1;
    struct sockaddr_in *in = (struct sockaddr_in *)ss;
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)ss;
    memset(ss, 0, sizeof *ss);
    if (!*host || inet_pton(AF_INET, host, &in->sin_addr) == 1) {
        in->sin_family = AF_INET;
        in->sin_port = htons((uint16_t)pn);
        *len = sizeof *in;
        return 0;
    }
    if (inet_pton(AF_INET6, host, &in6->sin6_addr) == 1) {
        in6->sin6_family = AF_INET6;
        in6->sin6_port = htons((uint16_t)pn);
        *len = sizeof *in6;
        return 0;
    }
    struct addrinfo hints = {.ai_family = AF_UNSPEC,
                             .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
    struct addrinfo *res = NULL;
    if (getaddrinfo(host, port, &hints, &res) != 0 || !res) return errno = EINVAL, -1;
    memcpy(ss, res->ai_addr, res->ai_addrlen);
    *len = res->ai_addrlen;
    freeaddrinfo(res);
    return 0;
}

static int listen_tcp(const char *hostport)
{
    char *h = xstrdup(hostport);
    char *colon = strrchr(h, ':');
    const char *port = colon ? colon + 1 : "2375";
    if (colon) *colon = 0;
    char *host = h;
    if (*host == '[') host++, host[strlen(host) - 1] = 0;
    struct sockaddr_storage ss;
    socklen_t len;
    int fd = tcp_addr(host, port, &ss, &len) < 0
                 ? -1
                 : socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;
    if (fd >= 0) setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (fd >= 0 && (bind(fd, (struct sockaddr *)&ss, len) < 0 || listen(fd, 128) < 0)) {
        int s = errno;
        close(fd);
        fd = -1;
        errno = s;
    }
    free(h);
    return fd;
}

static int open_listener(const char *host, const char *group)
{
    if (str_starts(host, "unix://")) return listen_unix(host + 7, group);
    if (host[0] == '/') return listen_unix(host, group);
    if (str_starts(host, "tcp://")) {
        log_warn("listening on %s without TLS: anyone who can reach it controls the host", host);
        return listen_tcp(host + 6);
    }
    errno = EINVAL;
    return -1;
}

/* ---- data root ---- */

static int lock_data_root(const char *root)
{
    if (mkdir_p(root, 0711) < 0) return -1;
    char *p = xasprintf("%s/berthd.lock", root);
    int fd = open(p, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    free(p);
    if (fd < 0) return -1;
    if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
        close(fd);
        return errno = EBUSY, -1;
    }
    return fd;
}

static void load_engine_id(void)
{
    char *p = xasprintf("%s/engine-id", D.data_root), *data = NULL;
    if (read_file(p, &data, NULL) == 0 && strlen(data) >= 64) {
        snprintf(D.id, sizeof D.id, "%.64s", data);
    } else {
        char d[DIGEST_LEN + 1];
        char seed[64];
        snprintf(seed, sizeof seed, "%lld-%d", (long long)now_ns(), (int)getpid());
        sha256_buf(seed, strlen(seed), d);
        snprintf(D.id, sizeof D.id, "%s", d + 7);
        write_file_atomic(p, D.id, strlen(D.id), 0600);
    }
    free(data);
    free(p);
}

/* Runtime state (bundles, the runtime's state, shim sockets and pid files,
 * fifos) is rewritten at every start and means nothing after a reboot: it
 * belongs on a tmpfs, as /run is on most systems. When the exec root is on
 * a disk file system and empty, berthd mounts a tmpfs on it (a file replaced
 * by rename on ext4 costs ~0.25 ms, on tmpfs ~0.03 ms) and marks it; at a
 * clean shutdown with no container running it unmounts it again. A non-empty
 * exec root (state of running containers) is used as it is. */
#define EXEC_ROOT_MARK ".berthd-tmpfs"

static void exec_root_tmpfs(const char *root)
{
    struct statfs sf;
    if (statfs(root, &sf) == 0 && sf.f_type == TMPFS_MAGIC) return;
    if (dir_only(root, NULL) == 0) {
        log_info("exec root %s is not a tmpfs and holds state: used as it is", root);
        return;
    }
    if (mount("tmpfs", root, "tmpfs", MS_NOSUID | MS_NODEV, "mode=0700") < 0) {
        log_warn("mounting a tmpfs on the exec root %s: %s", root, strerror(errno));
        return;
    }
    char *mark = xasprintf("%s/" EXEC_ROOT_MARK, root);
    if (write_file_replace(mark, "", 0, 0600) < 0) log_warn("%s: %s", mark, strerror(errno));
    free(mark);
}

static void exec_root_release(const char *root)
{
    char *mark = xasprintf("%s/" EXEC_ROOT_MARK, root);
    bool ours = access(mark, F_OK) == 0;
    free(mark);
    if (ours && !lc_any_running() && umount2(root, MNT_DETACH) < 0)
        log_warn("unmounting the exec root %s: %s", root, strerror(errno));
}

/* Compiles the default seccomp program into the runtime's cache, so the
 * first container does not pay for it. */
static void *warm_seccomp(void *arg)
{
    json_t *prof = ocispec_default_seccomp(ocispec_default_caps());
    berr e;
    if (rt_seccomp_prepare(prof, &e) < 0) log_warn("seccomp: %s", e.msg);
    json_decref(prof);
    /* compiling left ~800 kB of freed, touched memory in this thread's own
     * malloc arena, which an idle daemon would keep resident */
    malloc_trim(0);
    return arg;
}

static int image_usage(const char *id, bool running, char cid[65])
{
    return ctr_image_usage(id, running, cid);
}

static void on_image_event(const char *action, const char *id, json_t *attrs)
{
    events_publish("image", action, id, json_incref(attrs));
}

static int run(struct opts *o)
{
    berr e;
    /* before any thread starts: only sigwait below sees these */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);

    int lockfd = lock_data_root(D.data_root);
    if (lockfd < 0) {
        if (errno == EBUSY)
            fprintf(stderr, "berthd: data root %s is in use by another berthd\n", D.data_root);
        else
            fprintf(stderr, "berthd: data root %s: %s\n", D.data_root, strerror(errno));
        return 1;
    }
    if (mkdir_p(D.exec_root, 0700) < 0) {
        fprintf(stderr, "berthd: exec root %s: %s\n", D.exec_root, strerror(errno));
        return 1;
    }
    exec_root_tmpfs(D.exec_root);
    load_engine_id();
    if (store_open(D.data_root, &D.images, &e) < 0) {
        fprintf(stderr, "berthd: opening the image store: %s\n", e.msg);
        return 1;
    }
    store_set_event_hook(D.images, on_image_event);
    if (ctr_init(D.data_root, D.exec_root, &e) < 0) {
        fprintf(stderr, "berthd: loading containers: %s\n", e.msg);
        return 1;
    }
    store_set_usage_hook(D.images, image_usage);
    if (netns_init(D.exec_root) == 0) lc_netns_release_stale();
    char *shim = find_helper("BERTH_SHIM", "berth-shim");
    lc_init(shim);
    if (!getenv("BERTH_NO_ZYGOTE") && shim_zygote_start(shim, &e) < 0)
        log_warn("%s: shims are spawned directly", e.msg);
    free(shim);
    char *cache = xasprintf("%s/runtime/.cache", D.exec_root);
    mkdir_p(cache, 0700);
    rt_set_cache_dir(cache);
    free(cache);
    pthread_t warm;
    if (pthread_create(&warm, NULL, warm_seccomp, NULL) == 0) pthread_detach(warm);
    char *init = find_helper("BERTH_INIT", "berth-init");
    ocispec_set_init(init);
    free(init);

    char *tmpdir = xasprintf("%s/tmp", D.data_root);
    mkdir_p(tmpdir, 0700);
    http_server *srv[MAX_HOSTS] = {0};
    bool listened[MAX_HOSTS] = {0};
    int rc = 0;
    char pid[32];
    snprintf(pid, sizeof pid, "%d\n", (int)getpid());
    if (write_file_atomic(o->pidfile, pid, strlen(pid), 0644) < 0)
        log_warn("pidfile %s: %s", o->pidfile, strerror(errno));
    for (int i = 0; i < o->nhosts && rc == 0; i++) {
        int fd = open_listener(o->hosts[i], o->group);
        listened[i] = fd >= 0;
        if (fd < 0) {
            fprintf(stderr, "berthd: cannot listen on %s: %s\n", o->hosts[i],
                    errno == EADDRINUSE ? "another daemon is serving it" : strerror(errno));
            rc = 1;
        } else if (!(srv[i] = http_start(fd, api_routes, tmpdir, &e))) {
            fprintf(stderr, "berthd: %s\n", e.msg);
            rc = 1;
        }
    }
    if (rc == 0) {
        netns_start();
        lc_init_layers_gc(true);
        lc_restore();
        log_info("berthd %s serving the Engine API %s on %s (data root %s)", BERTH_VERSION,
                 BERTH_API_VERSION, D.hosts, D.data_root);
        int sig = 0;
        while (sigwait(&set, &sig) == 0 && sig == SIGHUP) log_info("SIGHUP: nothing to reload");
        log_info("signal %d: shutting down", sig);
    }
    unlink(o->pidfile);
    http_shutdown_begin();
    for (int i = 0; i < o->nhosts; i++) http_stop(srv[i]);
    for (int i = 0; i < o->nhosts; i++) {
        const char *h = o->hosts[i];
        if (!listened[i]) continue;
        if (str_starts(h, "unix://"))
            unlink(h + 7);
        else if (h[0] == '/')
            unlink(h);
    }
    shim_zygote_stop();
    netns_stop();
    ctr_pool_stop();
    exec_root_release(D.exec_root);
    store_close(D.images);
    free(tmpdir);
    close(lockfd);
    return rc;
}

int main(int argc, char **argv)
{
    struct opts o = {0};
    json_t *cfg = NULL;
    /* one malloc arena: glibc's per-thread arenas each keep what a burst
     * (an import, the seccomp compile) freed, ~1 MB of idle RSS apiece;
     * berthd's threads wait on I/O, not on malloc */
    mallopt(M_ARENA_MAX, 1);
    la_unload_when_idle(true);
    if (parse_args(argc, argv, &o) < 0 || load_config(&o, &cfg) < 0) return 1;
    if (o.debug)
        log_level = LOG_DEBUG_;
    else if (o.log_level && set_log_level(o.log_level) < 0) {
        fprintf(stderr, "berthd: unknown log level %s\n", o.log_level);
        return 1;
    }
    if (geteuid() != 0) {
        fprintf(stderr, "berthd: must be run as root\n");
        return 1;
    }
    if (o.nhosts == 0) o.hosts[o.nhosts++] = "unix:///run/berth.sock";
    D.data_root = xstrdup(o.data_root ? o.data_root : "/var/lib/berth");
    D.exec_root = xstrdup(o.exec_root ? o.exec_root : "/run/berth");
    D.storage_driver = xstrdup(o.storage_driver ? o.storage_driver : "overlay2");
    if (strcmp(D.storage_driver, "overlay2")) {
        fprintf(stderr, "berthd: storage driver %s is not supported (only overlay2)\n",
                D.storage_driver);
        return 1;
    }
    if (!o.pidfile) o.pidfile = "/run/berth.pid";
    sbuf hs = {0};
    for (int i = 0; i < o.nhosts; i++) sbuf_printf(&hs, "%s%s", i ? "," : "", o.hosts[i]);
    D.hosts = sbuf_steal(&hs);
    D.started_ns = now_ns();
    int rc = run(&o);
    json_decref(cfg);
    free(D.data_root);
    free(D.exec_root);
    free(D.storage_driver);
    free(D.hosts);
    return rc;
}
