/* process.c: the container's processes. One clone() creates the init
 * process in its new namespaces (an intermediate process is used only when
 * a pid namespace must be joined by path, as for exec); a SEQPACKET socket
 * pair carries the handshake: the parent puts the child in its cgroup (and
 * writes user-namespace maps), says GO, the child sets everything up and
 * answers READY (with the pty master on a terminal) or ERROR (a berr and an
 * errno). The init then blocks opening <state>/exec.fifo until
 * rt_container_start opens the other end (with start_now the creator
 * opened it before the clone, so it goes straight on); an execve failure is
 * written back through that fifo, success closes it (O_CLOEXEC). When the
 * parent has nothing to do between the clone and READY, the init is cloned
 * in the parent's address space (CLONE_VM | CLONE_VFORK, spawn_vm below)
 * and its setup does not wait for a GO. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <linux/sched.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/mman.h>
#include <sys/single_threaded.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>
#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
#endif

#include "internal.h"

#ifndef CLOSE_RANGE_CLOEXEC
#define CLOSE_RANGE_CLOEXEC (1U << 2)
#endif

/* ---- the sync socket ---- */
int rt_sync_send_fds(int sock, const rt_sync_msg *m, const int *fds, int n)
{
    struct iovec iov = {(void *)m, sizeof *m};
    union {
        char buf[CMSG_SPACE(sizeof(int) * RT_SYNC_MAX_FDS)];
        struct cmsghdr align;
    } u;
    struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};
    if (n > RT_SYNC_MAX_FDS) n = RT_SYNC_MAX_FDS;
    if (n > 0) {
        mh.msg_control = u.buf;
        mh.msg_controllen = CMSG_SPACE(sizeof(int) * (size_t)n);
        struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN(sizeof(int) * (size_t)n);
        memcpy(CMSG_DATA(c), fds, sizeof(int) * (size_t)n);
    }
    ssize_t r;
    while ((r = sendmsg(sock, &mh, MSG_NOSIGNAL)) < 0 && errno == EINTR) {
    }
    return r == (ssize_t)sizeof *m ? 0 : -1;
}

int rt_sync_send(int sock, const rt_sync_msg *m, int fd)
{
    return rt_sync_send_fds(sock, m, &fd, fd >= 0);
}

/* 1: a message; 0: the peer closed; -1: error. Up to max fds in fds[]
 * (*n of them; more are closed). */
int rt_sync_recv_fds(int sock, rt_sync_msg *m, int *fds, int max, int *n, berr *e)
{
    struct iovec iov = {m, sizeof *m};
    union {
        char buf[CMSG_SPACE(sizeof(int) * RT_SYNC_MAX_FDS)];
        struct cmsghdr align;
    } u;
    struct msghdr mh = {
        .msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf, .msg_controllen = sizeof u.buf};
    *n = 0;
    ssize_t r;
    while ((r = recvmsg(sock, &mh, MSG_CMSG_CLOEXEC)) < 0 && errno == EINTR) {
    }
    if (r < 0) return berr_errno(e, 500, "read from the container process");
    if (r == 0) return 0;
    for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c)) {
        if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
        int got = (int)((c->cmsg_len - CMSG_LEN(0)) / sizeof(int));
        for (int i = 0; i < got; i++) {
            int fd;
            memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof fd);
            if (*n < max)
                fds[(*n)++] = fd;
            else
                close(fd);
        }
    }
    if (r != (ssize_t)sizeof *m)
        return berr_set(e, 500, "short message from the container process");
    return 1;
}

int rt_sync_recv(int sock, rt_sync_msg *m, int *fd, berr *e)
{
    int got[1], n = 0;
    int r = rt_sync_recv_fds(sock, m, got, fd ? 1 : 0, &n, e);
    if (fd) *fd = n ? got[0] : -1;
    return r;
}

void rt_child_fail(int sock, const berr *e, int err)
{
    rt_sync_msg m = {.type = RT_MSG_ERROR, .err = err, .status = e->status ? e->status : 500};
    snprintf(m.msg, sizeof m.msg, "%.899s", e->msg);
    rt_sync_send(sock, &m, -1);
    _exit(1);
}

/* ---- finding the command ---- */
static const char *env_path(char **env)
{
    for (char **p = env; p && *p; p++)
        if (!strncmp(*p, "PATH=", 5)) return *p + 5;
    return "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
}

static int check_exec(const char *path)
{
    struct stat st;
    if (stat(path, &st) < 0) return errno;
    if (S_ISDIR(st.st_mode)) return EACCES;
    if (access(path, X_OK) < 0) return errno;
    return 0;
}

char *rt_find_exec(const rt_process *p, int *err)
{
    const char *a = p->args[0];
    if (strchr(a, '/')) {
        *err = check_exec(a);
        return *err ? NULL : xstrdup(a);
    }
    const char *path = env_path(p->env);
    *err = ENOENT;
    while (*path) {
        size_t n = strcspn(path, ":");
        char cand[4096];
        snprintf(cand, sizeof cand, "%.*s%s%s", (int)n, path, n ? "/" : "", a);
        int r = check_exec(cand);
        if (!r) return xstrdup(cand);
        if (r == EACCES) *err = EACCES;
        path += n + (path[n] == ':');
    }
    return NULL;
}

int rt_exec_errno_berr(berr *e, const char *arg0, int err)
{
    if (err == ENOENT && !strchr(arg0, '/'))
        berr_set(e, 404, "exec: \"%s\": executable file not found in $PATH", arg0);
    else if (err == ENOENT)
        berr_set(e, 404, "exec: \"%s\": stat %s: no such file or directory", arg0, arg0);
    else {
        char msg[128]; /* as Go spells errno texts: lower case */
        snprintf(msg, sizeof msg, "%s", strerror(err));
        msg[0] = (char)(msg[0] >= 'A' && msg[0] <= 'Z' ? msg[0] + 32 : msg[0]);
        berr_set(e, 403, "exec: \"%s\": %s", arg0, msg);
    }
    errno = err;
    return -1;
}

/* ---- shared child steps ---- */
static void reset_signals(void)
{
    sigset_t all;
    sigemptyset(&all);
    sigprocmask(SIG_SETMASK, &all, NULL);
    struct sigaction sa = {.sa_handler = SIG_DFL};
    for (int s = 1; s < NSIG; s++)
        if (s != SIGKILL && s != SIGSTOP) sigaction(s, &sa, NULL);
}

/* stdio: moved high first so that fd[] values within 0..2 cannot clobber each other */
static int setup_stdio(const rt_io *io, berr *e)
{
    int tmp[3] = {-1, -1, -1};
    for (int i = 0; i < 3; i++)
        if (io->fd[i] >= 0 && (tmp[i] = fcntl(io->fd[i], F_DUPFD_CLOEXEC, 10)) < 0)
            return berr_errno(e, 500, "dup stdio");
    for (int i = 0; i < 3; i++)
        if (tmp[i] >= 0 && (dup2(tmp[i], i) < 0 || close(tmp[i]) < 0))
            return berr_errno(e, 500, "dup2 stdio");
    return 0;
}

static int use_tty(int slave, berr *e)
{
    setsid();
    if (ioctl(slave, TIOCSCTTY, 0) < 0) return berr_errno(e, 500, "set the controlling terminal");
    for (int i = 0; i < 3; i++)
        if (dup2(slave, i) < 0) return berr_errno(e, 500, "dup2 pty");
    return 0;
}

/* The last steps of both init and exec: identity, capabilities, seccomp. */
static int secure(const rt_process *p, const rt_bpf *bpf, bool userns, berr *e)
{
    if (rt_oom_score_apply(p, e) < 0 || rt_rlimits_apply(p, e) < 0) return -1;
    if (rt_caps_apply_bounding(&p->caps, e) < 0) return -1;
    if (p->nnp && prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
        return berr_errno(e, 500, "no_new_privs");
    trace_mark("child pre-seccomp");
    if (bpf && !p->nnp && rt_seccomp_load(bpf, e) < 0) return -1; /* still has CAP_SYS_ADMIN */
    trace_mark("child seccomp");
    if (rt_user_apply(p, userns, e) < 0 || rt_caps_apply(&p->caps, e) < 0) return -1;
    if (bpf && p->nnp && rt_seccomp_load(bpf, e) < 0) return -1;
    return 0;
}

static int find_and_chdir(const rt_process *p, char **path, berr *e)
{
    if (chdir(p->cwd) < 0)
        return berr_errno(e, 400, "chdir to cwd (\"%s\") set in config.json failed", p->cwd);
    int err;
    if (!(*path = rt_find_exec(p, &err))) return rt_exec_errno_berr(e, p->args[0], err);
    return 0;
}

/* ---- the init process ---- */
/* The container process sets up its root while the parent puts it in its
 * cgroups (made before the clone); it waits for that (GO) only where it
 * needs it: before the cgroup mount, or at the end of the root setup. */
static int child_sock = -1;
static bool child_go, child_userns, child_cgns;
static bool child_no_go; /* spawned in the parent's address space: no GO comes */

int rt_child_await_cgroup(berr *e)
{
    if (child_go || child_sock < 0) return 0;
    if (!child_no_go) {
        rt_sync_msg m;
        int fds[RT_SYNC_MAX_FDS], n = 0;
        if (rt_sync_recv_fds(child_sock, &m, fds, RT_SYNC_MAX_FDS, &n, e) != 1 ||
            m.type != RT_MSG_GO)
            _exit(1);
        rt_child_take_binds(fds, n, m.status); /* the cgroup mount's, when the parent made them */
    }
    child_go = true;
    if (!child_userns && rt_child_cgroup && rt_cgroup_enter_self(rt_child_cgroup, e) < 0) return -1;
    if (child_cgns && unshare(CLONE_NEWCGROUP) < 0)
        return berr_errno(e, 500, "unshare the cgroup namespace");
    return 0;
}

typedef struct init_args {
    const rt_spec *s;
    const rt_create_opts *o;
    const rt_bpf *bpf;
    int sock, statefd;
    int nsfd[RT_MAX_NS];
} init_args;

static int join_namespaces(const rt_spec *s, const int *nsfd, berr *e)
{
    for (int pass = 0; pass < 2; pass++) /* the user namespace first */
        for (size_t i = 0; i < s->nns; i++) {
            if (nsfd[i] < 0 || (pass == 0) != (s->ns[i].type == CLONE_NEWUSER)) continue;
            if (s->ns[i].type == CLONE_NEWPID) continue; /* done by the intermediate */
            if (setns(nsfd[i], s->ns[i].type) < 0)
                return berr_errno(e, 500, "join namespace %s", s->ns[i].path);
        }
    return 0;
}

static int init_setup(init_args *a, int *master, char **path, berr *e)
{
    const rt_spec *s = a->s;
    const rt_process *p = s->proc;
    int slave = -1;
    trace_hold();
    trace_mark("child start");
    if (join_namespaces(s, a->nsfd, e) < 0) return -1;
    setsid();
    if (rt_spec_has_ns(s, CLONE_NEWUSER) && (setresgid(0, 0, 0) < 0 || setresuid(0, 0, 0) < 0))
        return berr_errno(e, 500, "become root in the user namespace");
    if (s->hostname && sethostname(s->hostname, strlen(s->hostname)) < 0)
        return berr_errno(e, 500, "sethostname");
    if (s->domainname && setdomainname(s->domainname, strlen(s->domainname)) < 0)
        return berr_errno(e, 500, "setdomainname");
    if (setup_stdio(&a->o->io, e) < 0) return -1;
    if (rt_rootfs_prepare(s, p, master, &slave, e) < 0) return -1;
    trace_mark("child prepared");
    if (rt_child_await_cgroup(e) < 0) return -1;
    trace_mark("child cgroup");
    if (slave >= 0 && (use_tty(slave, e) < 0 || close(slave) < 0)) return -1;
    if (rt_rootfs_pivot(s, a->o->no_pivot, e) < 0 || rt_sysctl_apply(s, e) < 0) return -1;
    trace_mark("child pivoted");
    if (rt_rootfs_finish(s, e) < 0) return -1;
    trace_mark("child finished");
    return find_and_chdir(p, path, e);
}

static void preserve_fds(int n)
{
    syscall(SYS_close_range, 3U, ~0U, CLOSE_RANGE_CLOEXEC);
    for (int fd = 3; fd < 3 + n; fd++) fcntl(fd, F_SETFD, 0);
}

static void init_main(void *arg)
{
    init_args *a = arg;
    berr e = {0};
    rt_sync_msg m;
    prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
    reset_signals();
    child_sock = a->sock;
    child_userns = rt_spec_has_ns(a->s, CLONE_NEWUSER);
    child_cgns = rt_spec_has_ns(a->s, CLONE_NEWCGROUP) && !rt_spec_ns_path(a->s, CLONE_NEWCGROUP);
    if (child_userns && rt_child_await_cgroup(&e) < 0)
        rt_child_fail(a->sock, &e, errno); /* id maps first */
    int master = -1, err;
    char *path = NULL;
    if (init_setup(a, &master, &path, &e) < 0) rt_child_fail(a->sock, &e, errno);
    const rt_process *p = a->s->proc;
    if (secure(p, a->bpf, rt_spec_has_ns(a->s, CLONE_NEWUSER), &e) < 0)
        rt_child_fail(a->sock, &e, errno);
    trace_mark("child secured");
    preserve_fds(a->o->preserve_fds);
    prctl(PR_SET_PDEATHSIG, 0, 0, 0, 0);
    m = (rt_sync_msg){.type = RT_MSG_READY};
    if (rt_sync_send(a->sock, &m, master) < 0) _exit(1);
    if (master >= 0) close(master);
    close(a->sock);
    /* paused until `start` opens the other end */
    int fifo = openat(a->statefd, "exec.fifo", O_WRONLY | O_CLOEXEC);
    if (fifo < 0) _exit(1);
    close(a->statefd);
    trace_mark("child exec");
    execve(path, p->args, p->env);
    err = errno;
    if (write(fifo, &err, sizeof err) < 0) _exit(127);
    _exit(127);
}

/* ---- spawning ---- */
static pid_t raw_clone(unsigned long flags)
{
    return (pid_t)syscall(SYS_clone, flags | SIGCHLD, NULL, NULL, NULL, NULL);
}

/* With a cgroup v2 directory: clone3(CLONE_INTO_CGROUP), born in it. A
 * migration after the fact (a write to cgroup.procs) waits for an RCU grace
 * period in the kernel: 5-20 ms here. *cgfd becomes -1 if clone3 could not
 * be used, so that the caller knows to move the process itself. */
static pid_t clone_into(unsigned long flags, int *cgfd)
{
    if (*cgfd < 0) return raw_clone(flags);
    struct clone_args a = {
        .flags = flags | CLONE_INTO_CGROUP, .exit_signal = SIGCHLD, .cgroup = (uint64_t)*cgfd};
    pid_t pid = (pid_t)syscall(SYS_clone3, &a, sizeof a);
    if (pid >= 0 || (errno != ENOSYS && errno != E2BIG && errno != EINVAL && errno != EOPNOTSUPP))
        return pid;
    *cgfd = -1;
    return raw_clone(flags);
}

/* Clones `fn` with flags; when pidns >= 0 (a pid namespace to join), via an
 * intermediate that joins it and clones with CLONE_PARENT, so the new process
 * is still our child. The intermediate reports the pid on the child's end
 * of the socket pair (*csock), which the parent then closes. */
static pid_t spawn(unsigned long flags, int pidns, int *cgfd, int psock, int *csock,
                   void (*fn)(void *), void *arg, berr *e)
{
    if (pidns < 0) {
        pid_t pid = clone_into(flags, cgfd);
        if (pid == 0) fn(arg), _exit(1);
        if (pid < 0) berr_errno(e, 500, "clone");
        close(*csock), *csock = -1;
        return pid;
    }
    pid_t mid = raw_clone(0);
    if (mid < 0) return berr_errno(e, 500, "fork");
    if (mid == 0) {
        if (setns(pidns, CLONE_NEWPID) < 0) _exit(2);
        pid_t pid = clone_into(flags | CLONE_PARENT, cgfd);
        if (pid == 0) fn(arg), _exit(1);
        rt_sync_msg m = {.type = RT_MSG_PID, .pid = pid, .err = errno, .status = *cgfd >= 0};
        rt_sync_send(*csock, &m, -1);
        _exit(pid < 0);
    }
    close(*csock), *csock = -1;
    rt_sync_msg m = {0};
    int st, r = rt_sync_recv(psock, &m, NULL, e);
    waitpid(mid, &st, 0);
    if (r != 1 || m.type != RT_MSG_PID || m.pid <= 0) {
        if (r >= 0)
            berr_set(e, 500, "could not create a process in the pid namespace: %s",
                     strerror(m.err));
        return -1;
    }
    if (!m.status) *cgfd = -1;
    return m.pid;
}

/* ---- spawning in the parent's address space ----
 * clone3(CLONE_VM | CLONE_VFORK) on a stack of its own: the shim's page
 * tables are neither copied at the clone nor torn down at the exec (the
 * teardown comes before the exec's close-on-exec, which `start` waits for),
 * and neither side takes copy-on-write faults. The parent sleeps until the
 * child execs or exits, so nothing runs beside the child in the memory they
 * share; the child's setup must then not wait for the parent (no GO): it is
 * used only when nothing is asked of the parent after the clone (no user
 * namespace to map, no pid namespace to join, cgroups the child enters by
 * itself or is born in, start_now so the fifo does not block) and in a
 * process with a single thread. x86-64 only (the trampoline is assembly);
 * elsewhere, and whenever clone3 refuses, the fork-like path is taken. */
#if defined(__x86_64__)
#define HAVE_SPAWN_VM 1
/* raw clone3 that runs fn(arg) on the new stack in the child, then exit(1);
 * returns the syscall's result (-errno on failure) in the parent */
long rt_clone3_run(struct clone_args *a, size_t size, void (*fn)(void *), void *arg);
__asm__(".text\n"
        ".globl rt_clone3_run\n"
        ".hidden rt_clone3_run\n"
        ".type rt_clone3_run,@function\n"
        "rt_clone3_run:\n"
        "\tmov %rdx, %r8\n"
        "\tmov %rcx, %r9\n"
        "\tmov $435, %eax\n" /* SYS_clone3 */
        "\tsyscall\n"
        "\ttest %rax, %rax\n"
        "\tjnz 1f\n"
        "\txor %ebp, %ebp\n"
        "\tmov %r9, %rdi\n"
        "\tcall *%r8\n"
        "\tmov $1, %edi\n"
        "\tmov $60, %eax\n" /* SYS_exit */
        "\tsyscall\n"
        "\thlt\n"
        "1:\tret\n"
        ".size rt_clone3_run, .-rt_clone3_run\n");

#define VM_STACK (512u << 10)

/* The child's pid; -1 with *e on failure; -2 when clone3 cannot do it here
 * (the caller then takes the other path). */
static pid_t spawn_vm(unsigned long flags, int cgfd, void (*fn)(void *), void *arg, berr *e)
{
    void *stk = mmap(NULL, VM_STACK, PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK | MAP_NORESERVE, -1, 0);
    if (stk == MAP_FAILED) return -2;
    mprotect(stk, 4096, PROT_NONE); /* a guard page below it */
    struct clone_args a = {.flags = flags | CLONE_VM | CLONE_VFORK,
                           .exit_signal = SIGCHLD,
                           .stack = (uint64_t)(uintptr_t)stk,
                           .stack_size = VM_STACK};
    if (cgfd >= 0) a.flags |= CLONE_INTO_CGROUP, a.cgroup = (uint64_t)cgfd;
    int saved_trace = trace_hold_fd; /* the child's trace_hold() wrote it */
    long r = rt_clone3_run(&a, sizeof a, fn, arg);
    trace_hold_fd = saved_trace;
#if defined(__SANITIZE_ADDRESS__)
    __asan_unpoison_memory_region(stk, VM_STACK); /* the child's frames never returned */
#endif
    munmap(stk, VM_STACK);
    if (r >= 0) return (pid_t)r;
    if (r == -ENOSYS || r == -E2BIG || r == -EINVAL || r == -EOPNOTSUPP) return -2;
    errno = (int)-r;
    return berr_errno(e, 500, "clone");
}
#endif

static bool vm_spawn_ok(const rt_spec *s, const rt_create_opts *o, int pidns, const rt_cgroup *cg,
                        int cgfd)
{
#ifdef HAVE_SPAWN_VM
    bool v2dir = cg && cg->mode != RT_CG_V1 && rt_cg_dir(cg, "");
    return o->start_now && pidns < 0 && !rt_spec_has_ns(s, CLONE_NEWUSER) &&
           (!v2dir || cgfd >= 0) && __libc_single_threaded;
#else
    (void)s, (void)o, (void)pidns, (void)cg, (void)cgfd;
    return false;
#endif
}

/* The v2 directory of cg (v2 hosts, or the unified part of a hybrid one), opened. */
static int open_v2_dir(const rt_cgroup *cg)
{
    const char *d = cg ? rt_cg_dir(cg, "") : NULL;
    if (!d || (cg->mode == RT_CG_V1)) return -1;
    return open(d, O_PATH | O_DIRECTORY | O_CLOEXEC);
}

/* Puts pid in cg after the fact: the hierarchies the process did not enter
 * by itself (v1: writes "0" to tasks; v2: born there with clone3). */
static int enter_rest(rt_cgroup *cg, pid_t pid, bool self_v1, bool born_v2, berr *e)
{
    if (!cg) return 0;
    char buf[24];
    snprintf(buf, sizeof buf, "%d", (int)pid);
    for (int i = 0; i < cg->n; i++) {
        bool v2 = !cg->dirs[i].name[0];
        if ((v2 && born_v2) || (!v2 && self_v1)) continue;
        if (rt_cg_write(cg->dirs[i].path, "cgroup.procs", buf) < 0)
            return berr_errno(e, 500, "add %d to cgroup %s", (int)pid, cg->dirs[i].path);
    }
    return 0;
}

static int write_idmap(pid_t pid, const char *file, const rt_idmap *m, size_t n, berr *e)
{
    sbuf b = {0};
    for (size_t i = 0; i < n; i++) sbuf_printf(&b, "%u %u %u\n", m[i].inner, m[i].outer, m[i].size);
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/%s", (int)pid, file);
    int fd = open(path, O_WRONLY | O_CLOEXEC), r = -1;
    if (fd >= 0 && write(fd, b.data, b.len) == (ssize_t)b.len) r = 0;
    if (r < 0) berr_errno(e, 500, "write %s", path);
    if (fd >= 0) close(fd);
    sbuf_free(&b);
    return r;
}

static unsigned long clone_flags(const rt_spec *s)
{
    unsigned long f = 0;
    for (size_t i = 0; i < s->nns; i++)
        if (!s->ns[i].path && s->ns[i].type != CLONE_NEWCGROUP) f |= (unsigned long)s->ns[i].type;
    return f;
}

/* Parent side of create: clone, cgroup, GO, wait for READY. */
int rt_spawn_init(const rt_spec *s, const rt_create_opts *o, const rt_bpf *bpf, rt_cgroup *cg,
                  int statefd, pid_t *pid_out, uint64_t *starttime, int *pidfd, int *master,
                  berr *e)
{
    int sv[2], pidns = -1;
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
        return berr_errno(e, 500, "socketpair");
    init_args arg = {s, o, bpf, sv[1], statefd, {0}};
    int r = -1;
    pid_t pid = -1;
    for (size_t i = 0; i < RT_MAX_NS; i++) arg.nsfd[i] = -1;
    for (size_t i = 0; i < s->nns; i++)
        if (s->ns[i].path && (arg.nsfd[i] = open(s->ns[i].path, O_RDONLY | O_CLOEXEC)) < 0) {
            berr_errno(e, 400, "open namespace %s", s->ns[i].path);
            goto out;
        } else if (s->ns[i].path && s->ns[i].type == CLONE_NEWPID)
            pidns = arg.nsfd[i];
    rt_child_cgroup = cg;
    int cgfd = open_v2_dir(cg);
    bool userns = rt_spec_has_ns(s, CLONE_NEWUSER);
    rt_child_take_tree(cg, s, o->cgroup_tree - 1);
    rt_child_take_dev_tree(s, o->dev_tree - 1);
    trace_mark("parent clone");
    rt_sync_msg m = {.type = RT_MSG_GO};
    int binds[RT_CG_MAX], sent[RT_SYNC_MAX_FDS], k = 0;
    pid = -2;
#ifdef HAVE_SPAWN_VM
    if (vm_spawn_ok(s, o, pidns, cg, cgfd)) {
        int n = rt_cgroup_binds(cg, s, binds, &m.status), given[RT_CG_MAX];
        for (int i = 0; cg && i < cg->n; i++)
            if (m.status & (1 << i)) given[k++] = binds[i];
        rt_child_take_binds(given, n, m.status); /* read by the child in our memory */
        child_no_go = true;
        pid = spawn_vm(clone_flags(s), cgfd, init_main, &arg, e);
        child_no_go = child_go = false, child_sock = -1; /* the child set them, in our memory */
        rt_child_take_binds(NULL, 0, 0);
        for (int i = 0; i < k; i++) close(given[i]);
        k = 0, m.status = 0;
        if (pid != -2) close(sv[1]), sv[1] = -1;
    }
#endif
    bool no_go = pid != -2; /* the child already exec'd or failed */
    if (pid == -2) pid = spawn(clone_flags(s), pidns, &cgfd, sv[0], &sv[1], init_main, &arg, e);
    trace_mark("parent cloned");
    rt_cgroup_close_tasks(cg); /* the child has its copies */
    bool born_v2 = cgfd >= 0;
    if (cgfd >= 0) close(cgfd);
    if (pid < 0) goto out;
    if (no_go) goto ready;
    if (rt_spec_has_ns(s, CLONE_NEWUSER) && !rt_spec_ns_path(s, CLONE_NEWUSER) &&
        (write_idmap(pid, "uid_map", s->uidmap, s->nuidmap, e) < 0 ||
         write_idmap(pid, "gid_map", s->gidmap, s->ngidmap, e) < 0))
        goto out;
    if (enter_rest(cg, pid, !userns, born_v2, e) < 0) goto out;
    rt_cgroup_binds(cg, s, binds, &m.status);
    for (int i = 0; cg && i < cg->n; i++) {
        if (!(m.status & (1 << i))) continue;
        if (k < RT_SYNC_MAX_FDS)
            sent[k++] = binds[i];
        else
            close(binds[i]), m.status &= ~(1 << i);
    }
    trace_mark("parent cgroups entered");
    int sr = rt_sync_send_fds(sv[0], &m, sent, k);
    for (int i = 0; i < k; i++) close(sent[i]);
    if (sr < 0) {
        berr_errno(e, 500, "signal the container process");
        goto out;
    }
ready:
    *starttime = rt_proc_starttime(pid); /* while it sets itself up (after, with spawn_vm) */
    *pidfd = rt_pidfd_open(pid);
    int got = rt_sync_recv(sv[0], &m, master, e);
    if (got == 0) berr_set(e, 500, "the container process exited during setup");
    if (got == 1 && m.type == RT_MSG_ERROR) {
        e->status = m.status;
        if (m.status == 404 || (m.status == 403 && m.err))
            rt_exec_errno_berr(e, s->proc->args[0], m.err);
        else
            snprintf(e->msg, sizeof e->msg, "%s", m.msg);
    }
    if (got == 1 && m.type == RT_MSG_READY) r = 0;
out:
    rt_child_cgroup = NULL;
    rt_child_take_tree(NULL, s, -1);
    rt_child_take_dev_tree(s, -1);
    for (size_t i = 0; i < RT_MAX_NS; i++)
        if (arg.nsfd[i] >= 0) close(arg.nsfd[i]);
    close(sv[0]);
    if (sv[1] >= 0) close(sv[1]);
    if (r < 0 && pid > 0) kill(pid, SIGKILL), waitpid(pid, NULL, 0);
    *pid_out = pid;
    return r;
}

/* ---- exec ---- */
typedef struct exec_args {
    const rt_process *p;
    const rt_io *io;
    const rt_bpf *bpf;
    int sock;
    bool userns;
} exec_args;

static int exec_setup(exec_args *a, int *master, berr *e)
{
    const rt_process *p = a->p;
    if (setup_stdio(a->io, e) < 0) return -1;
    if (p->terminal) {
        int slave;
        if (rt_pty_open(AT_FDCWD, master, &slave, e) < 0 || use_tty(slave, e) < 0) return -1;
        if (p->rows || p->cols)
            ioctl(*master, TIOCSWINSZ, &(struct winsize){.ws_row = p->rows, .ws_col = p->cols});
        close(slave);
    }
    return 0;
}

static void exec_main(void *arg)
{
    exec_args *a = arg;
    berr e = {0};
    rt_sync_msg m;
    prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
    reset_signals();
    if (rt_sync_recv(a->sock, &m, NULL, &e) != 1 || m.type != RT_MSG_GO) _exit(1);
    int master = -1;
    _cleanup_free_ char *path = NULL;
    if (exec_setup(a, &master, &e) < 0 || find_and_chdir(a->p, &path, &e) < 0 ||
        secure(a->p, a->bpf, a->userns, &e) < 0)
        rt_child_fail(a->sock, &e, errno);
    m = (rt_sync_msg){.type = RT_MSG_READY};
    if (rt_sync_send(a->sock, &m, master) < 0) _exit(1);
    if (master >= 0) close(master);
    syscall(SYS_close_range, 3U, ~0U, CLOSE_RANGE_CLOEXEC);
    prctl(PR_SET_PDEATHSIG, 0, 0, 0, 0); /* as init: outlives its caller (exec -d) */
    execve(path, a->p->args, a->p->env);
    int err = errno;
    berr x = {403, ""};
    rt_child_fail(a->sock, &x, err);
}

static void exec_trampoline(void *arg)
{
    exec_main(arg);
}

/* Opens the namespaces of pid that differ from ours, user first, mount last. */
static int open_target_ns(pid_t pid, int fds[7], int types[7], int *n, int *pidns)
{
    static const struct {
        const char *name;
        int type;
    } order[] = {{"user", CLONE_NEWUSER}, {"ipc", CLONE_NEWIPC}, {"uts", CLONE_NEWUTS},
                 {"net", CLONE_NEWNET},   {"pid", CLONE_NEWPID}, {"cgroup", CLONE_NEWCGROUP},
                 {"mnt", CLONE_NEWNS}};
    *n = 0;
    *pidns = -1;
    for (size_t i = 0; i < 7; i++) {
        char path[64], self[64];
        struct stat a, b;
        snprintf(path, sizeof path, "/proc/%d/ns/%s", (int)pid, order[i].name);
        snprintf(self, sizeof self, "/proc/self/ns/%s", order[i].name);
        if (stat(path, &a) < 0) return -1;
        if (stat(self, &b) == 0 && a.st_ino == b.st_ino && a.st_dev == b.st_dev) continue;
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0) return -1;
        if (order[i].type == CLONE_NEWPID) *pidns = fd;
        fds[*n] = fd;
        types[(*n)++] = order[i].type;
    }
    return 0;
}

typedef struct exec_join {
    exec_args a;
    int fds[7], types[7], n;
} exec_join;

/* Joins every namespace but pid (the intermediate did that) then runs exec_main. */
static void exec_join_main(void *arg)
{
    exec_join *j = arg;
    berr ce;
    if (rt_child_cgroup && rt_cgroup_enter_self(rt_child_cgroup, &ce) < 0)
        rt_child_fail(j->a.sock, &ce, errno);
    for (int i = 0; i < j->n; i++)
        if (j->types[i] != CLONE_NEWPID && setns(j->fds[i], j->types[i]) < 0) {
            berr e;
            berr_errno(&e, 500, "join the container's namespaces");
            rt_child_fail(j->a.sock, &e, errno);
        }
    exec_trampoline(&j->a);
}

int rt_exec_spawn(pid_t init, rt_cgroup *cg, const rt_process *p, const rt_bpf *bpf,
                  const rt_io *io, pid_t *out, int *master, berr *e)
{
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
        return berr_errno(e, 500, "socketpair");
    exec_join j = {{p, io, bpf, sv[1], false}, {0}, {0}, 0};
    int pidns = -1, r = -1;
    pid_t pid = -1;
    if (open_target_ns(init, j.fds, j.types, &j.n, &pidns) < 0) {
        berr_errno(e, 409, "open the namespaces of the container (pid %d)", (int)init);
        goto out;
    }
    for (int i = 0; i < j.n; i++) j.a.userns |= j.types[i] == CLONE_NEWUSER;
    /* the pid namespace needs the intermediate; without one, join in the child */
    int cgfd = open_v2_dir(cg);
    rt_child_cgroup = cg;
    pid = spawn(0, pidns, &cgfd, sv[0], &sv[1], exec_join_main, &j, e);
    rt_child_cgroup = NULL;
    bool born_v2 = cgfd >= 0;
    if (cgfd >= 0) close(cgfd);
    if (pid < 0) goto out;
    if (enter_rest(cg, pid, true, born_v2, e) < 0) goto out;
    rt_sync_msg m = {.type = RT_MSG_GO};
    if (rt_sync_send(sv[0], &m, -1) < 0) {
        berr_errno(e, 500, "signal the exec process");
        goto out;
    }
    int got = rt_sync_recv(sv[0], &m, master, e);
    if (got == 1 && m.type == RT_MSG_READY)
        got = rt_sync_recv(sv[0], &m, NULL, e); /* EOF: execve done */
    if (got == 0)
        r = 0;
    else if (got == 1 && m.type == RT_MSG_ERROR) {
        if (m.status == 404 || m.status == 403)
            rt_exec_errno_berr(e, p->args[0], m.err);
        else
            berr_set(e, m.status, "%s", m.msg);
    }
out:
    for (int i = 0; i < j.n; i++) close(j.fds[i]);
    close(sv[0]);
    if (sv[1] >= 0) close(sv[1]);
    if (r < 0 && pid > 0) {
        kill(pid, SIGKILL), waitpid(pid, NULL, 0);
        if (master && *master >= 0) close(*master), *master = -1;
    }
    *out = r < 0 ? -1 : pid;
    return r;
}
