/* seccomp_load: the time seccomp(2) takes to load a profile's program, as a
 * container's init does right before its execve: libseccomp's program
 * (binary tree) against Berth's generator (src/runtime/bpfgen.c), each
 * loaded in fresh forked children (no_new_privs set), alternating; prints
 * instruction counts and the median and 10th/90th percentiles of the load.
 *
 *   seccomp_load [-n LOADS] [PROFILE.json ...]
 *
 * Without a profile: Berth's default profile for Docker's default
 * capabilities (what `docker run` gets). A profile file is in the runtime
 * spec's form (linux.seccomp), or Docker's format (with "archMap"), taken
 * as dockerd would for Docker's default capabilities on x86_64. */
#include <errno.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "daemon/ocispec.h"
#include "runtime/bpfgen.h"

static int64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* One load in a new child; its duration in ns, or -1. */
static int64_t load_once(const rt_bpf *b)
{
    int fds[2];
    if (pipe(fds) < 0) return -1;
    pid_t pid = fork();
    if (pid < 0) return -1;
    if (pid == 0) {
        close(fds[0]);
        struct sock_fprog prog = {b->len, b->filter};
        int64_t d = -1;
        if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == 0) {
            int64_t t0 = mono_ns();
            if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, b->flags, &prog) == 0)
                d = mono_ns() - t0;
        }
        if (write(fds[1], &d, sizeof d) != sizeof d) _exit(1);
        _exit(0);
    }
    close(fds[1]);
    int64_t d = -1;
    if (read(fds[0], &d, sizeof d) != sizeof d) d = -1;
    close(fds[0]);
    waitpid(pid, NULL, 0);
    return d;
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

/* The cache key (rt_seccomp_key) against what it replaced: json_dumps with
 * sorted keys, then SHA-256 of the string. Medians of 500, in us. */
static void bench_key(const json_t *sc)
{
    enum { N = 500 };
    int64_t t[2][N];
    char key[DIGEST_LEN + 1];
    for (int i = 0; i < N; i++) {
        int64_t t0 = mono_ns();
        rt_seccomp_key(sc, key);
        int64_t t1 = mono_ns();
        char *dump = json_dumps(sc, JSON_COMPACT | JSON_SORT_KEYS);
        sha256_buf(dump, strlen(dump), key);
        free(dump);
        t[0][i] = t1 - t0;
        t[1][i] = mono_ns() - t1;
    }
    qsort(t[0], N, sizeof(int64_t), cmp_i64);
    qsort(t[1], N, sizeof(int64_t), cmp_i64);
    printf("  cache key: %.1f us (json_dumps + sha256: %.1f us)\n", t[0][N / 2] / 1e3,
           t[1][N / 2] / 1e3);
}

static int bench(const char *what, const json_t *sc, int loads)
{
    rt_bpf ref = {0}, ours = {0};
    berr e = {0};
    const char *why = NULL;
    if (rt_seccomp_compile_libseccomp(sc, &ref, &e) < 0) {
        fprintf(stderr, "%s: libseccomp: %s\n", what, e.msg);
        return 1;
    }
    if (rt_bpfgen(sc, &ours, &why) < 0) {
        printf("%s: libseccomp %u instructions; bpfgen leaves it to libseccomp (%s)\n", what,
               ref.len, why);
        free(ref.filter);
        return 0;
    }
    int64_t *by[2] = {calloc(loads, sizeof(int64_t)), calloc(loads, sizeof(int64_t))};
    const rt_bpf *prog[2] = {&ref, &ours};
    for (int w = 0; w < 10; w++) load_once(prog[w & 1]); /* warm up */
    for (int i = 0; i < loads; i++)
        for (int k = 0; k < 2; k++) { /* alternating which goes first */
            int p = (i + k) & 1;
            if ((by[p][i] = load_once(prog[p])) < 0) {
                perror("seccomp load");
                return 1;
            }
        }
    printf("%s (%d loads each):\n", what, loads);
    static const char *const names[] = {"libseccomp", "bpfgen"};
    for (int k = 0; k < 2; k++) {
        qsort(by[k], loads, sizeof(int64_t), cmp_i64);
        printf("  %-10s %5u instructions  load median %4.0f us  (p10 %4.0f, p90 %4.0f)\n", names[k],
               prog[k]->len, by[k][loads / 2] / 1e3, by[k][loads / 10] / 1e3,
               by[k][loads * 9 / 10] / 1e3);
    }
    bench_key(sc);
    for (int k = 0; k < 2; k++) free(by[k]);
    free(ref.filter);
    free(ours.filter);
    return 0;
}

int main(int argc, char **argv)
{
    int loads = 200, opt, r = 0;
    while ((opt = getopt(argc, argv, "n:")) != -1) {
        if (opt == 'n') {
            loads = atoi(optarg);
        } else {
            fprintf(stderr, "usage: %s [-n LOADS] [PROFILE.json ...]\n", argv[0]);
            return 2;
        }
    }
    if (loads < 10) loads = 10;
    if (optind == argc) {
        json_t *sc = ocispec_default_seccomp(ocispec_default_caps());
        r = bench("Berth's default profile", sc, loads);
        json_decref(sc);
    }
    for (int i = optind; i < argc; i++) {
        json_error_t je;
        json_t *p = json_load_file(argv[i], 0, &je);
        if (!p) {
            fprintf(stderr, "%s: %s\n", argv[i], je.text);
            return 1;
        }
        berr e;
        json_t *sc = json_object_get(p, "archMap")
                         ? ocispec_seccomp_from_docker(p, ocispec_default_caps(), &e)
                         : json_incref(p);
        if (!sc) {
            fprintf(stderr, "%s: %s\n", argv[i], e.msg);
            return 1;
        }
        r |= bench(argv[i], sc, loads);
        json_decref(sc);
        json_decref(p);
    }
    return r;
}
