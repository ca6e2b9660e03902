/* ocispec.h: Docker container config -> OCI runtime spec; see ocispec.c. */
#ifndef BERTH_OCISPEC_H
#define BERTH_OCISPEC_H

#include <jansson.h>
#include <stdint.h>
#include <sys/types.h>

#include "common/util.h"

/* ctr: the container's inspect JSON (Path, Args, Config, HostConfig).
 * rootfs: the root; files_dir holds hostname, hosts, resolv.conf. user:
 * process.user when already resolved (ocispec_user_layers; taken), else
 * NULL and it is read from the root, which must then be mounted. */
json_t *ocispec_build(const json_t *ctr, const char *rootfs, const char *files_dir,
                      const char *cgroup_path, json_t *user, berr *e);
/* Where the host's berth-init is (bind-mounted for --init). */
void ocispec_set_init(const char *path);
/* linux.resources from a HostConfig (also used for docker update). */
json_t *ocispec_resources(const json_t *hc, bool privileged);
/* As dockerd: each limit of a HostConfig whose cgroup controller the host
 * lacks (a v2 host that does not give it, a v1 one without its hierarchy) is
 * dropped from hc; returns the warnings (dockerd's texts), or NULL with e
 * for what dockerd refuses (NanoCpus without the cpu controller). */
json_t *ocispec_discard_unsupported(json_t *hc, berr *e);
/* HostConfig.Devices and DeviceCgroupRules as dockerd takes them (types,
 * CgroupPermissions of r, w, m, each rule's syntax): 400 when not. Whether
 * the devices exist is for the start (ocispec_build). */
int ocispec_check_devices(const json_t *hc, berr *e);
/* The daemon's capability bounding set (read once: it never changes). */
uint64_t ocispec_caps_held(void);
/* Docker's default capability set, as far as the daemon holds it. */
uint64_t ocispec_default_caps(void);
/* A Docker-format seccomp profile (archMap, includes/excludes by caps and
 * arch) in the runtime spec's form, as dockerd converts it for a container
 * with capabilities `caps` on x86-64. 400 when it has no defaultAction. */
json_t *ocispec_seccomp_from_docker(const json_t *profile, uint64_t caps, berr *e);
/* Berth's default seccomp allow-list (spec form) for a capability set: a
 * shared object, read-only (json_decref it when done). */
json_t *ocispec_default_seccomp(uint64_t caps);
/* json_dumps(spec, JSON_COMPACT), the same text; the default profile's part
 * written from its text, dumped once (the most of a spec's strings). */
char *ocispec_dumps(json_t *spec);
/* The linux.resources.devices a container gets without --privileged,
 * --device or --device-cgroup-rule (a new array). */
json_t *ocispec_default_devices(void);
/* The entries of mounts (a spec's mounts[]) for /dev, /dev/pts and /dev/shm,
 * in that order (a new array, borrowing them), or NULL unless each is
 * there once; for a container without options (ShmSize...): ..._default_. */
json_t *ocispec_dev_mounts(const json_t *mounts);
json_t *ocispec_default_dev_mounts(void);
/* Resolves "user[:group]" against the rootfs's /etc/passwd and /etc/group
 * (read inside the root, never following links out of it) into the spec's
 * {"uid","gid","additionalGids"}; group_add: extra groups (names or ids). */
json_t *ocispec_user(const char *rootfs, const char *user, const json_t *group_add, berr *e);
/* The same from the image's layer dirs (bottom first), before the root is
 * mounted; *undecided (and NULL) when only the mounted root can tell. */
json_t *ocispec_user_layers(char *const *layers, int n, const char *user, const json_t *group_add,
                            bool *undecided, berr *e);
/* An entry of the image's root from its layer dirs (bottom first), without
 * mounting them: 1 there (*st; *content read for a regular file when given),
 * 0 absent, -1 undecided (a link on the way: only the mounted root can tell). */
struct stat;
int ocispec_layers_lookup(char *const *dirs, int n, const char *path, struct stat *st,
                          char **content);
/* The gid of a host group (name, or a number as dockerd accepts) from the
 * host's /etc/group, read directly: no NSS. 0, or -1 when not found. */
int userdb_host_gid(const char *group, gid_t *gid);

#endif
