/* tarx.h: tar streams in and out of the store, safely.
 *
 * Untrusted archives never write outside their destination: every parent
 * directory is resolved with openat2(RESOLVE_IN_ROOT) (symlinks are followed
 * as if the destination were /), entries whose names climb out with ".."
 * or whose relative symlink or hardlink targets climb out are rejected with
 * a 400 error naming the entry. Errors come back in a berr. libarchive is
 * loaded on first use (common/libarchive.h): when it cannot be, calls that
 * need it fail with a 500 naming it. */
#ifndef BERTH_TARX_H
#define BERTH_TARX_H

#include "common/util.h"

/* Copies the (maybe gzip/zstd/xz/bzip2 compressed) stream in_fd to out_fd
 * uncompressed, returning the sha256 digest and size of what was written.
 * A stream that is not compressed passes through unchanged. 400 when the
 * compressed data is corrupt or truncated. */
int tarx_decompress(int in_fd, int out_fd, char digest_out[DIGEST_LEN + 1], int64_t *size_out,
                    berr *e);

enum {
    TARX_OVERLAY = 1 << 0,   /* turn OCI whiteouts into overlayfs ones (.wh.x -> char 0:0 x;
                                .wh..wh..opq -> xattr trusted.overlay.opaque=y) */
    TARX_NO_OWNERS = 1 << 1, /* do not chown (tests as non-root) */
};

/* Extracts the tar (maybe compressed) from in_fd into the existing
 * directory dest. Regular files, dirs, symlinks, hardlinks (inside dest),
 * fifos, char/block devices, modes incl. setuid, owners, mtimes and xattrs
 * are kept. Returns 0, or -1 with 400 for a bad or hostile archive, 500 for
 * a local I/O failure. On error the caller removes dest. */
int tarx_extract(int in_fd, const char *dest, unsigned flags, berr *e);

/* Writes an uncompressed tar of the directory src (entries relative to it,
 * sorted by name, directories as "dir/") to out_fd. With TARX_OVERLAY,
 * overlayfs whiteouts in src become OCI ".wh." entries. */
int tarx_pack_dir(const char *src, int out_fd, unsigned flags, berr *e);

/* Is the stream in `head` (first bytes) compressed? Returns "gzip",
 * "zstd", "xz", "bzip2" or NULL. */
const char *tarx_compression(const unsigned char *head, size_t n);

#endif
