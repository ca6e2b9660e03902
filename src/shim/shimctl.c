/* shimctl.c: a test driver for berth-shim (built, not installed): each
 * subcommand calls one client function of shim.h and prints the result as
 * one JSON line on stderr; attach and exec pump the stream between the
 * socket and stdin/stdout (stdout gets the raw frames).
 *
 *   shimctl launch SHIM ID BUNDLE STATE ROOT [--log P] [--max-size N] [--max-file N]
 *                  [--open-stdin] [--stdin-once] [--attach ioe]
 *   shimctl attach STATE [ioe]          shimctl kill STATE SIG [all]
 *   shimctl exec STATE EXEC_ID PROCESS_JSON [stdin]
 *   shimctl exec-wait STATE EXEC_ID TIMEOUT_MS
 *   shimctl wait STATE TIMEOUT_MS       shimctl resize STATE H W [EXEC_ID]
 *   shimctl state STATE                 shimctl read-exit STATE
 *   shimctl alive STATE                 shimctl wait-gone STATE TIMEOUT_MS
 * Env SHIMCTL_SHIM_LOG=FILE: the shim's stderr (its log, sanitizer reports). */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "common/jsonutil.h"
#include "shim/shim.h"

static int fail(const berr *e)
{
    json_t *j = json_pack("{s:s,s:i}", "error", e->msg, "status", e->status);
    char *s = json_fast_dumps(j, JSON_COMPACT);
    fprintf(stderr, "%s\n", s);
    free(s);
    json_decref(j);
    return 1;
}

/* stdin -> fd (shutdown at EOF), fd -> stdout, until fd ends. */
static void pump(int fd)
{
    char buf[16384];
    bool in_open = true;
    for (;;) {
        struct pollfd p[2] = {{fd, POLLIN, 0}, {in_open ? 0 : -1, POLLIN, 0}};
        if (poll(p, 2, -1) < 0 && errno != EINTR) return;
        if (p[0].revents) {
            ssize_t n = read(fd, buf, sizeof buf);
            if (n <= 0) return;
            if (write_all(1, buf, (size_t)n) < 0) return;
        }
        if (p[1].revents) {
            ssize_t n = read(0, buf, sizeof buf);
            if (n <= 0) {
                shutdown(fd, SHUT_WR);
                in_open = false;
            } else if (write_all(fd, buf, (size_t)n) < 0) {
                in_open = false;
            }
        }
    }
}

static double ms_since(const struct timespec *a)
{
    struct timespec b;
    clock_gettime(CLOCK_MONOTONIC, &b);
    return (double)(b.tv_sec - a->tv_sec) * 1e3 + (double)(b.tv_nsec - a->tv_nsec) / 1e6;
}

static int cmd_launch(int argc, char **argv)
{
    if (argc < 7) return 2;
    shim_launch_opts o = {argv[2], argv[3], argv[4], argv[5], argv[6], NULL,
                          0,       1,       false,   false,   -1};
    const char *attach = NULL;
    for (int i = 7; i < argc; i++) {
        if (!strcmp(argv[i], "--log") && i + 1 < argc)
            o.log_path = argv[++i];
        else if (!strcmp(argv[i], "--max-size") && i + 1 < argc)
            o.log_max_size = atoll(argv[++i]);
        else if (!strcmp(argv[i], "--max-file") && i + 1 < argc)
            o.log_max_file = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--open-stdin"))
            o.open_stdin = true;
        else if (!strcmp(argv[i], "--stdin-once"))
            o.stdin_once = true;
        else if (!strcmp(argv[i], "--attach") && i + 1 < argc)
            attach = argv[++i];
        else
            return 2;
    }
    berr e = {0};
    pid_t pid;
    int fd = -1;
    /* the shim keeps fd 2 when it is a file: SHIMCTL_SHIM_LOG collects its
     * log and any sanitizer report apart from our own output */
    const char *slog = getenv("SHIMCTL_SHIM_LOG");
    int saved = -1, lfd = slog ? open(slog, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644) : -1;
    if (lfd >= 0) saved = dup(2), dup2(lfd, 2), close(lfd);
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    int r = attach ? shim_launch_attached(&o, strchr(attach, 'i'), strchr(attach, 'o'),
                                          strchr(attach, 'e'), &pid, &fd, &e)
                   : shim_launch(&o, &pid, &e);
    double ms = ms_since(&t0);
    if (saved >= 0) dup2(saved, 2), close(saved);
    if (r < 0) return fail(&e);
    fprintf(stderr, "{\"pid\":%d,\"ms\":%.3f}\n", (int)pid, ms);
    if (fd >= 0) pump(fd), close(fd);
    return 0;
}

static int cmd_exec(int argc, char **argv)
{
    if (argc < 5) return 2;
    json_error_t je;
    json_t *proc = json_fast_loadb(argv[4], strlen(argv[4]), 0, &je);
    if (!proc) return 2;
    berr e = {0};
    pid_t pid;
    int fd;
    int r = shim_exec(argv[2], argv[3], proc, argc > 5 && !strcmp(argv[5], "stdin"), &pid, &fd, &e);
    json_decref(proc);
    if (r < 0) return fail(&e);
    fprintf(stderr, "{\"pid\":%d}\n", (int)pid);
    pump(fd);
    close(fd);
    int code;
    bool running;
    if (shim_exec_wait(argv[2], argv[3], 10000, &code, &running, &e) < 0) return fail(&e);
    fprintf(stderr, "{\"exit_code\":%d,\"running\":%s}\n", code, running ? "true" : "false");
    return 0;
}

static int cmd_simple(int argc, char **argv)
{
    berr e = {0};
    const char *c = argv[1], *st = argv[2];
    int code = 0, r = -1;
    bool b = false;
    if (!strcmp(c, "attach")) {
        const char *f = argc > 3 ? argv[3] : "ioe";
        int fd = shim_attach(st, strchr(f, 'i'), strchr(f, 'o'), strchr(f, 'e'), false, &e);
        if (fd < 0) return fail(&e);
        fprintf(stderr, "{\"attached\":true}\n");
        pump(fd);
        close(fd);
        return 0;
    }
    if (!strcmp(c, "kill") && argc > 3) r = shim_kill(st, atoi(argv[3]), argc > 4, &e);
    if (!strcmp(c, "resize") && argc > 4)
        r = argc > 5 ? shim_exec_resize(st, argv[5], atoi(argv[3]), atoi(argv[4]), &e)
                     : shim_resize(st, atoi(argv[3]), atoi(argv[4]), &e);
    if (!strcmp(c, "wait-gone") && argc > 3) r = shim_wait_gone(st, atoi(argv[3]), &e);
    if (r == 0) return fprintf(stderr, "{\"ok\":true}\n"), 0;
    if (!strcmp(c, "wait") && argc > 3) {
        if (shim_wait(st, atoi(argv[3]), &code, NULL, NULL, &b, &e) < 0) return fail(&e);
        return fprintf(stderr, "{\"exit_code\":%d,\"timed_out\":%s}\n", code, b ? "true" : "false"),
               0;
    }
    if (!strcmp(c, "exec-wait") && argc > 4) {
        if (shim_exec_wait(st, argv[3], atoi(argv[4]), &code, &b, &e) < 0) return fail(&e);
        return fprintf(stderr, "{\"exit_code\":%d,\"running\":%s}\n", code, b ? "true" : "false"),
               0;
    }
    if (!strcmp(c, "state")) {
        pid_t pid = 0;
        if (shim_state(st, &pid, &b, &e) < 0) return fail(&e);
        return fprintf(stderr, "{\"pid\":%d,\"running\":%s}\n", (int)pid, b ? "true" : "false"), 0;
    }
    if (!strcmp(c, "read-exit")) {
        int64_t at = 0;
        char err[256];
        if (shim_read_exit(st, &code, &b, &at, err, sizeof err) < 0)
            return fprintf(stderr, "{\"none\":true}\n"), 1;
        return fprintf(stderr, "{\"exit_code\":%d,\"oom_killed\":%s,\"finished_ns\":%lld}\n", code,
                       b ? "true" : "false", (long long)at),
               0;
    }
    if (!strcmp(c, "alive"))
        return fprintf(stderr, "{\"alive\":%s}\n", shim_alive(st) ? "true" : "false"), 0;
    return r < 0 && e.status ? fail(&e) : 2;
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: shimctl COMMAND STATE_DIR ... (see src/shim/shimctl.c)\n");
        return 2;
    }
    if (!strcmp(argv[1], "launch")) return cmd_launch(argc, argv);
    if (!strcmp(argv[1], "exec")) return cmd_exec(argc, argv);
    return cmd_simple(argc, argv);
}
