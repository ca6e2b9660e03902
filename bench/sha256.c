/* bench/sha256.c: sha256-bench FILE: hashes FILE (read in 128 KiB chunks,
 * as the image store does) with each SHA-256 compression function this CPU
 * has, printing the digest and MB/s of each. bench/sha256.sh compares them
 * with `openssl dgst -sha256` and `sha256sum` on the same file. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/sha256.h"

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static int run(const char *name, sha256_blocks_fn *f, const char *path)
{
    static unsigned char buf[128 * 1024];
    int fd = open(path, O_RDONLY);
    if (fd < 0) return perror(path), -1;
    sha256_state s;
    sha256_state_init(&s);
    s.blocks = f;
    double t0 = now();
    ssize_t n;
    while ((n = read(fd, buf, sizeof buf)) > 0) sha256_state_update(&s, buf, (size_t)n);
    unsigned char md[SHA256_SIZE];
    sha256_state_final(&s, md);
    double dt = now() - t0;
    close(fd);
    if (n < 0) return perror(path), -1;
    printf("%-8s ", name);
    for (int i = 0; i < SHA256_SIZE; i++) printf("%02x", md[i]);
    printf("  %.2f s  %.0f MB/s\n", dt, (double)s.bytes / 1e6 / dt);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fputs("usage: sha256-bench FILE\n", stderr);
        return 2;
    }
    if (run("generic", sha256_blocks_generic, argv[1]) < 0) return 1;
    if (sha256_blocks_shani() && run("sha-ni", sha256_blocks_shani(), argv[1]) < 0) return 1;
    return 0;
}
