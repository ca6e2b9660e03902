/* fuzz_tarx.c: libFuzzer target for layer extraction, the parser of the
 * most hostile input Berth takes (tarballs from import, load and cp). Each
 * input is extracted into a fresh directory under a fresh parent; anything
 * appearing beside that directory is an escape and aborts. */
#include <dirent.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "common/libarchive.h"
#include "image/tarx.h"

static int count_entries(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d) return -1;
    int n = 0;
    struct dirent *de;
    while ((de = readdir(d)))
        if (strcmp(de->d_name, ".") && strcmp(de->d_name, "..")) n++;
    closedir(d);
    return n;
}

/* tarx loads libarchive on first use: were that to fail, every input would
 * just be refused and the run would find nothing, so refuse to start. */
int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    if (la_load() < 0) {
        fprintf(stderr, "fuzz_tarx: %s\n", la_error());
        abort();
    }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char base[] = "/tmp/berth-fuzz-XXXXXX";
    if (!mkdtemp(base)) return 0;
    char dest[64];
    snprintf(dest, sizeof dest, "%s/root", base);
    mkdir_p(dest, 0755);
    int fd = memfd_create("tar", MFD_CLOEXEC);
    if (fd >= 0 && write_all(fd, data, size) == (ssize_t)size) {
        lseek(fd, 0, SEEK_SET);
        berr e;
        tarx_extract(fd, dest, TARX_OVERLAY, &e);
        if (count_entries(base) != 1) abort(); /* something landed beside root */
    }
    if (fd >= 0) close(fd);
    rm_rf(base);
    return 0;
}
