/* bpfgen.h: the two compilers of a spec-form seccomp profile (linux.seccomp)
 * into classic BPF, and the parsing they share. rt_bpfgen (bpfgen.c) is
 * Berth's own generator: compact programs that decide by ranges of syscall
 * numbers. Whatever it does not handle goes to libseccomp (seccomp.c), so
 * both give the same decision for every input; tests/unit/test_seccomp.c
 * compares them. */
#ifndef BERTH_RT_BPFGEN_H
#define BERTH_RT_BPFGEN_H

#include <seccomp.h>

#include "internal.h"

/* Part of the cache key of compiled programs: bump it whenever the program
 * generated for a profile may change. */
#define RT_BPFGEN_VERSION 1

/* Berth's generator. 0: *out is the program (filter malloc'd). -1: the
 * profile is not one it handles (an architecture, action or case it does
 * not support, an invalid profile, a program too large); *why (if non-NULL)
 * says which, and the caller compiles with libseccomp instead. */
int rt_bpfgen(const json_t *seccomp, rt_bpf *out, const char **why);

/* libseccomp's compile (binary tree), the reference and the fallback. */
int rt_seccomp_compile_libseccomp(const json_t *seccomp, rt_bpf *out, berr *e);
/* "SCMP_ARCH_X86_64" (or "x86_64") -> libseccomp's arch token; 0 if unknown. */
uint32_t rt_seccomp_arch(const char *name);

/* The cache key of a profile's program ("sha256:<hex>"). */
void rt_seccomp_key(const json_t *seccomp, char key[DIGEST_LEN + 1]);

/* seccomp.c: spec names -> libseccomp values */
int rt_seccomp_parse_action(const char *name, const json_t *errno_ret, int dflt_errno,
                            uint32_t *out, berr *e);
/* A rule's "args": at most 6 conditions; distinct: no argument index twice
 * (else each condition is a rule of its own, as runc adds them). */
int rt_seccomp_parse_args(const json_t *args, struct scmp_arg_cmp *cmp, size_t *n, bool *distinct,
                          berr *e);
int rt_seccomp_parse_flags(const json_t *arr, unsigned int *out, berr *e);

#endif
