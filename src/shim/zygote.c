/* zygote.c: `berth-shim --zygote`, the process berthd forks shims from.
 *
 * Starting a shim by posix_spawn costs an exec, the dynamic loader and a
 * second fork to leave berthd (~1.5 ms of every container start). The
 * zygote is one berth-shim, started by berthd at its own start, that waits
 * on a SEQPACKET socket (fd 3). Each message is a shim's argv (NUL-separated
 * strings) with up to three fds (the ready pipe, the go pipe, the attach
 * socket) as SCM_RIGHTS; the zygote forks, and the child becomes that shim:
 * it puts the fds on 3, 4, 5 in that order, as posix_spawn does, shows the shim's argv in place of
 * its own (ps, pgrep -f), and runs shim_run. The shim never was berthd's child, so it needs no
 * second fork, and it outlives berthd as before.
 *
 * The zygote reaps its children (the shims when they end) and exits when
 * berthd closes its end (berthd's exit, or a kill -9 of it: the shims go on,
 * reparented to init). It has no other state: a failed send makes berthd
 * spawn the shim the old way (client.c). It keeps a spare child forked
 * ahead, which reads the next request itself (see below). */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "internal.h"
#include "runtime/runtime.h"
#include "server.h"

#define ZYG_MAX_ARGS 40

/* The zygote's own argv area, rewritten in each child to show its argv. */
static char *title_area;
static size_t title_len;

void zygote_set_title_area(int argc, char **argv)
{
    if (argc < 1) return;
    title_area = argv[0];
    title_len = (size_t)(argv[argc - 1] + strlen(argv[argc - 1]) + 1 - argv[0]);
}

static void set_title(char **args, int n)
{
    if (!title_area || title_len < 2) return;
    memset(title_area, 0, title_len);
    size_t off = 0;
    for (int i = 0; i < n && off + 1 < title_len; i++) {
        size_t l = strlen(args[i]);
        if (off + l + 1 >= title_len) l = title_len - off - 2;
        memcpy(title_area + off, args[i], l);
        off += l + 1; /* the NUL separator is already there */
    }
}

static void child(int sock, int sfd, char *buf, size_t len, int fds[SHIM_MAX_FDS], int nfds,
                  int (*run)(int, char **))
{
    close(sock);
    if (sfd >= 0) close(sfd);
    char *args[ZYG_MAX_ARGS + 1];
    int n = 0;
    for (size_t off = 0; off < len && n < ZYG_MAX_ARGS; off += strlen(buf + off) + 1)
        args[n++] = buf + off;
    args[n] = NULL;
    /* above 3 + SHIM_MAX_FDS first, so that placing one cannot clobber another */
    for (int i = 0; i < nfds; i++)
        if (fds[i] < 3 + SHIM_MAX_FDS) {
            int h = fcntl(fds[i], F_DUPFD, 3 + SHIM_MAX_FDS);
            close(fds[i]);
            fds[i] = h;
        }
    for (int i = 0; i < nfds; i++)
        if (fds[i] < 0 || dup2(fds[i], 3 + i) < 0) _exit(1);
    for (int i = 0; i < nfds; i++) close(fds[i]);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    signal(SIGCHLD, SIG_DFL);
    set_title(args, n);
    _exit(run(n, args) & 0xff);
}

static void reap(int sfd)
{
    struct signalfd_siginfo si;
    while (read(sfd, &si, sizeof si) == (ssize_t)sizeof si) {
    }
    while (waitpid(-1, NULL, WNOHANG) > 0) {
    }
}

/* One request read: 1, with its argv in buf (len bytes) and its fds;
 * 0: nothing (EINTR, or a truncated message: its fds closed); -1: berthd
 * is gone. */
static int recv_request(int sock, char *buf, size_t size, size_t *len, int fds[SHIM_MAX_FDS],
                        int *nfds)
{
    union {
        char b[CMSG_SPACE(SHIM_MAX_FDS * sizeof(int))];
        struct cmsghdr align;
    } u;
    struct iovec iov = {buf, size - 1};
    struct msghdr mh = {
        .msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.b, .msg_controllen = sizeof u.b};
    ssize_t r = recvmsg(sock, &mh, MSG_CMSG_CLOEXEC);
    if (r < 0) return errno == EINTR || errno == EAGAIN ? 0 : -1;
    if (r == 0) return -1;
    *nfds = 0;
    for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c))
        if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
            int k = (int)((c->cmsg_len - CMSG_LEN(0)) / sizeof(int));
            for (int i = 0; i < k; i++) {
                int fd;
                memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof fd);
                if (*nfds < SHIM_MAX_FDS)
                    fds[(*nfds)++] = fd;
                else
                    close(fd);
            }
        }
    buf[r] = 0;
    *len = (size_t)r;
    if (!(mh.msg_flags & (MSG_TRUNC | MSG_CTRUNC))) return 1;
    for (int i = 0; i < *nfds; i++) close(fds[i]); /* berthd sees its ready pipe close */
    return 0;
}

static char req_buf[16384];

/* One request: fork a shim. Returns -1 when berthd is gone. */
static int serve(int sock, int sfd, int (*run)(int, char **))
{
    size_t len = 0;
    int fds[SHIM_MAX_FDS], nfds = 0;
    int r = recv_request(sock, req_buf, sizeof req_buf, &len, fds, &nfds);
    if (r <= 0) return r;
    pid_t pid = fork();
    if (pid == 0) child(sock, sfd, req_buf, len, fds, nfds, run);
    /* a failed fork: the ready pipe closes below, berthd sees EOF */
    for (int i = 0; i < nfds; i++) close(fds[i]);
    return 0;
}

/* ---- the spare ----
 * The zygote keeps one child forked ahead, blocked on berthd's socket: the
 * next request is read by it, so a start does not wait for a fork (a few
 * hundred microseconds here). It tells the zygote it was taken (a byte on
 * its pipe: the zygote forks the next one) and becomes the shim; it dies
 * with the zygote until then (berthd then sees the socket close). */
static pid_t spare_pid;
static int spare_fd = -1; /* the zygote's end of the spare's pipe */

static void spare_main(int sock, int sfd, int taken, int (*run)(int, char **))
{
    close(sfd);
    prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
    if (getppid() == 1) _exit(0); /* the zygote is already gone */
    static char *const title[] = {"berth-shim", "--spare"};
    set_title((char **)title, 2);
    size_t len = 0;
    int fds[SHIM_MAX_FDS], nfds = 0, r;
    while ((r = recv_request(sock, req_buf, sizeof req_buf, &len, fds, &nfds)) == 0) {
    }
    if (r < 0) _exit(0);                 /* berthd is gone */
    prctl(PR_SET_PDEATHSIG, 0, 0, 0, 0); /* a shim outlives the zygote */
    if (write(taken, "t", 1) < 0) {      /* the zygote forks another one either way */
    }
    close(taken);
    child(sock, -1, req_buf, len, fds, nfds, run);
}

static void fork_spare(int sock, int sfd, int (*run)(int, char **))
{
    int p[2];
    if (spare_fd >= 0 || pipe2(p, O_CLOEXEC) < 0) return;
    pid_t pid = fork();
    if (pid == 0) {
        close(p[0]);
        spare_main(sock, sfd, p[1], run);
    }
    close(p[1]);
    if (pid < 0) {
        close(p[0]);
        return;
    }
    spare_pid = pid;
    spare_fd = p[0];
}

int zygote_main(int sock, int (*run)(int, char **))
{
    fcntl(sock, F_SETFD, FD_CLOEXEC);
    syscall(SYS_close_range, (unsigned)sock + 1, ~0U, 0); /* nothing else of berthd's */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGCHLD);
    sigprocmask(SIG_BLOCK, &set, NULL);
    int sfd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
    if (sfd < 0) return 1;
    rt_prime();          /* what every shim would read again (cgroup mounts...) */
    tzset();             /* /etc/localtime, which strftime would read in each */
    json_object_seed(0); /* jansson's hash seed, from /dev/urandom in each */
    int ignored[] = {SIGPIPE, SIGHUP, SIGINT, SIGTERM, SIGQUIT};
    for (size_t i = 0; i < sizeof ignored / sizeof ignored[0]; i++) signal(ignored[i], SIG_IGN);
    fork_spare(sock, sfd, run);
    for (;;) {
        /* with a spare, berthd's socket is its to read: only its end is watched here */
        struct pollfd p[3] = {
            {sock, spare_fd >= 0 ? 0 : POLLIN, 0}, {sfd, POLLIN, 0}, {spare_fd, POLLIN, 0}};
        if (poll(p, spare_fd >= 0 ? 3 : 2, -1) < 0) {
            if (errno == EINTR) continue;
            break;
        }
        if (p[1].revents & POLLNVAL) break;
        if (p[1].revents) reap(sfd);
        if (spare_fd >= 0 && p[2].revents) { /* taken, or dead: the next one */
            close(spare_fd), spare_fd = -1;
            fork_spare(sock, sfd, run);
        }
        if (p[0].revents & POLLIN) {
            if (serve(sock, sfd, run) < 0) break;
        } else if (p[0].revents & (POLLHUP | POLLERR | POLLNVAL)) {
            break;
        }
    }
    if (spare_fd >= 0) kill(spare_pid, SIGKILL);
    reap(sfd);
    return 0;
}
