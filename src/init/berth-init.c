/* berth-init: the tiny init that `--init` runs as PID 1 of a container.
 *
 * Usage: berth-init -- COMMAND [ARG...]. It starts COMMAND as its child,
 * forwards every catchable signal it receives to that child, reaps every
 * zombie that gets reparented to it, and exits with the child's status
 * (128+N when the child died of signal N). Statically linked, because it
 * runs inside images that may have no libc at all. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

static int exit_status(int st)
{
    if (WIFEXITED(st)) return WEXITSTATUS(st);
    if (WIFSIGNALED(st)) return 128 + WTERMSIG(st);
    return 1;
}

static pid_t spawn(char **argv, const sigset_t *old)
{
    pid_t pid = fork();
    if (pid != 0) return pid;
    sigprocmask(SIG_SETMASK, old, NULL);
    for (int s = 1; s < NSIG; s++) signal(s, SIG_DFL);
    execvp(argv[0], argv);
    fprintf(stderr, "berth-init: exec %s: %s\n", argv[0], strerror(errno));
    _exit(errno == ENOENT ? 127 : 126);
}

int main(int argc, char **argv)
{
    int i = 1;
    if (i < argc && !strcmp(argv[i], "--")) i++;
    if (i >= argc) {
        fputs("usage: berth-init -- COMMAND [ARG...]\n", stderr);
        return 2;
    }
    sigset_t all, old;
    sigfillset(&all);
    sigprocmask(SIG_BLOCK, &all, &old);
    if (getpid() != 1) prctl(PR_SET_CHILD_SUBREAPER, 1);
    pid_t child = spawn(argv + i, &old);
    if (child < 0) {
        perror("berth-init: fork");
        return 1;
    }
    for (;;) {
        siginfo_t si;
        int sig = sigwaitinfo(&all, &si);
        if (sig < 0) continue;
        if (sig != SIGCHLD) {
            kill(child, sig);
            continue;
        }
        int st;
        pid_t p;
        while ((p = waitpid(-1, &st, WNOHANG)) > 0)
            if (p == child) {
                /* reap what is left quickly, then leave with the child's status */
                while (waitpid(-1, NULL, WNOHANG) > 0) {
                }
                return exit_status(st);
            }
    }
}
