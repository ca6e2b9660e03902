/* client.c: TEMPORARY placeholder so berthd links while berth-shim is being
 * written; every call fails. Replaced by the real client. */
#include "shim/shim.h"

int shim_launch(const shim_launch_opts *o, pid_t *pid, berr *e)
{
    return berr_set(e, 501, "berth-shim is not built yet");
}
bool shim_alive(const char *state_dir)
{
    return false;
}
int shim_read_exit(const char *state_dir, int *exit_code, bool *oom_killed, int64_t *finished_ns,
                   char *err, size_t errlen)
{
    return -1;
}
int shim_kill(const char *state_dir, int sig, bool all, berr *e)
{
    return berr_set(e, 501, "berth-shim is not built yet");
}
int shim_resize(const char *state_dir, int height, int width, berr *e)
{
    return berr_set(e, 501, "berth-shim is not built yet");
}
int shim_wait(const char *state_dir, int timeout_ms, int *exit_code, bool *timed_out, berr *e)
{
    return berr_set(e, 501, "berth-shim is not built yet");
}
int shim_attach(const char *state_dir, bool want_stdin, bool want_stdout, bool want_stderr,
                bool tty, berr *e)
{
    return berr_set(e, 501, "berth-shim is not built yet");
}
