/* copts.h: container options shared by run, create and update (copts.c).
 *
 * copts_flags builds the flag table pointing into a copts; after parsing,
 * copts_build makes the JSON body of POST /containers/create. Size, CPU
 * and duration flags are stored already converted (decimal strings). */
#ifndef BERTH_CLI_COPTS_H
#define BERTH_CLI_COPTS_H

#include "cli/cli.h"

typedef struct copts {
    strv attach, volumes, tmpfs, env, env_file, labels, label_file, cap_add, cap_drop, group_add,
        security_opt, log_opt, ulimits, sysctls, dns, dns_search, dns_opt, add_host, devices,
        expose, publish, volumes_from, links, storage_opt, cgroup_rules, aliases;
    char *entrypoint, *hostname, *domainname, *user, *workdir, *restart, *memory, *memory_swap,
        *memory_reservation, *kernel_memory, *cpus, *cpuset_cpus, *cpuset_mems, *network,
        *stop_signal, *shm_size, *health_cmd, *health_interval, *health_timeout,
        *health_start_period, *health_retries, *stop_timeout, *ipc, *pid, *uts, *userns, *cgroupns,
        *cgroup_parent, *log_driver, *runtime, *isolation, *mac_address, *ip, *ip6, *volume_driver,
        *cidfile, *blkio_weight;
    long long cpu_shares, cpu_period, cpu_quota, cpu_rt_period, cpu_rt_runtime, pids_limit,
        oom_score_adj, swappiness;
    bool interactive, tty, rm, privileged, read_only, oom_kill_disable, no_healthcheck, publish_all,
        init;
    bool init_set, entrypoint_set, pids_set;
    /* run/create only */
    char *name, *platform, *pull, *detach_keys;
    bool detach, sig_proxy, quiet, no_trust;
} copts;

/* Flag table for run (run = true) or create; free() the result. */
flag *copts_flags(copts *o, bool run);
/* Flag table of `update` (resources and --restart) into o. */
flag *copts_update_flags(copts *o, bool *changed);
void copts_init(copts *o);
void copts_free(copts *o);
/* Builds the create body for image + args; NULL with *err (malloc'd,
 * docker's words) when the options are inconsistent. */
json_t *copts_build(copts *o, const char *image, int argc, char **argv, char **err);
/* HostConfig resource members (for create and update). */
void copts_resources(const copts *o, json_t *hc);
/* opts.ParseRestartPolicy: {"Name":..,"MaximumRetryCount":..} or NULL + *err. */
json_t *restart_policy(const char *s, char **err);

int64_t ram_in_bytes(const char *s, char **why);
int64_t go_duration(const char *s, char **why);
char *conv_size(const char *v, char **why);
char *conv_swap(const char *v, char **why);
char *conv_cpus(const char *v, char **why);
char *conv_duration(const char *v, char **why);
char *conv_ulimit(const char *v, char **why);
char *conv_sysctl(const char *v, char **why);
char *conv_attach(const char *v, char **why);
char *conv_env(const char *v, char **why);
char *conv_ip(const char *v, char **why);
char *conv_extra_host(const char *v, char **why);
char *conv_uint16(const char *v, char **why);
char *conv_int(const char *v, char **why);
/* opts.ReadKVEnvStrings: env files then -e values; -1 + *err on a bad file. */
int read_env(const strv *files, const strv *env, json_t *out, char **err);

#endif
