/* libarchive.h: libarchive, loaded on first use.
 *
 * Linking libarchive would make every process that uses tars map its whole
 * dependency tree (libxml2, ICU, libstdc++, libm, the compressors): about
 * 2 MB resident in an idle berthd and 5 ms per CLI run, though only tar
 * import, export, save, load, cp and commit need it. So no binary links
 * it: code that uses tars includes this header instead of <archive.h>
 * (whose declarations and constants it still uses), calls la_need() or
 * la_load() before the first archive_* call of an operation, and the
 * archive_* calls below go through a table that dlopen(LA_SONAME) fills
 * (under a mutex: safe from any thread). berthd unloads it again when no
 * request holds it (la_release_thread). A failed load is an error naming
 * the library, never a crash.
 *
 * Every function used is listed in LA_FUNCS and has a call macro below.
 * A function with a macro but no LA_FUNCS entry fails to compile; one
 * called without a macro is an undefined reference when berthd or berth
 * links (only the unit tests link libarchive itself, for their fixtures). */
#ifndef BERTH_LIBARCHIVE_H
#define BERTH_LIBARCHIVE_H

#include <archive.h>
#include <archive_entry.h>

#include "common/util.h"

/* libarchive 3.x */
#define LA_SONAME "libarchive.so.13"

#define LA_FUNCS(X)                                                                                \
    X(archive_entry_atime)                                                                         \
    X(archive_entry_atime_is_set)                                                                  \
    X(archive_entry_atime_nsec)                                                                    \
    X(archive_entry_filetype)                                                                      \
    X(archive_entry_free)                                                                          \
    X(archive_entry_gid)                                                                           \
    X(archive_entry_hardlink)                                                                      \
    X(archive_entry_hardlink_utf8)                                                                 \
    X(archive_entry_mtime)                                                                         \
    X(archive_entry_mtime_nsec)                                                                    \
    X(archive_entry_new)                                                                           \
    X(archive_entry_pathname)                                                                      \
    X(archive_entry_pathname_utf8)                                                                 \
    X(archive_entry_perm)                                                                          \
    X(archive_entry_rdev)                                                                          \
    X(archive_entry_set_filetype)                                                                  \
    X(archive_entry_set_gid)                                                                       \
    X(archive_entry_set_hardlink)                                                                  \
    X(archive_entry_set_mode)                                                                      \
    X(archive_entry_set_mtime)                                                                     \
    X(archive_entry_set_pathname)                                                                  \
    X(archive_entry_set_perm)                                                                      \
    X(archive_entry_set_rdev)                                                                      \
    X(archive_entry_set_size)                                                                      \
    X(archive_entry_set_symlink)                                                                   \
    X(archive_entry_set_uid)                                                                       \
    X(archive_entry_size)                                                                          \
    X(archive_entry_symlink)                                                                       \
    X(archive_entry_symlink_utf8)                                                                  \
    X(archive_entry_uid)                                                                           \
    X(archive_entry_xattr_add_entry)                                                               \
    X(archive_entry_xattr_next)                                                                    \
    X(archive_entry_xattr_reset)                                                                   \
    X(archive_error_string)                                                                        \
    X(archive_filter_bytes)                                                                        \
    X(archive_filter_code)                                                                         \
    X(archive_read_data)                                                                           \
    X(archive_read_data_block)                                                                     \
    X(archive_read_disk_descend)                                                                   \
    X(archive_read_disk_new)                                                                       \
    X(archive_read_disk_open)                                                                      \
    X(archive_read_disk_set_standard_lookup)                                                       \
    X(archive_read_disk_set_symlink_physical)                                                      \
    X(archive_read_free)                                                                           \
    X(archive_read_new)                                                                            \
    X(archive_read_next_header)                                                                    \
    X(archive_read_next_header2)                                                                   \
    X(archive_read_open)                                                                           \
    X(archive_read_open_fd)                                                                        \
    X(archive_read_support_filter_all)                                                             \
    X(archive_read_support_filter_bzip2)                                                           \
    X(archive_read_support_filter_compress)                                                        \
    X(archive_read_support_filter_gzip)                                                            \
    X(archive_read_support_filter_lz4)                                                             \
    X(archive_read_support_filter_lzma)                                                            \
    X(archive_read_support_filter_xz)                                                              \
    X(archive_read_support_filter_zstd)                                                            \
    X(archive_read_support_format_empty)                                                           \
    X(archive_read_support_format_raw)                                                             \
    X(archive_read_support_format_tar)                                                             \
    X(archive_set_error)                                                                           \
    X(archive_write_close)                                                                         \
    X(archive_write_data)                                                                          \
    X(archive_write_data_block)                                                                    \
    X(archive_write_disk_new)                                                                      \
    X(archive_write_disk_set_options)                                                              \
    X(archive_write_finish_entry)                                                                  \
    X(archive_write_free)                                                                          \
    X(archive_write_header)                                                                        \
    X(archive_write_new)                                                                           \
    X(archive_write_open_fd)                                                                       \
    X(archive_write_set_bytes_in_last_block)                                                       \
    X(archive_write_set_format_pax_restricted)

/* The table: one pointer per function, named like it. Valid once
 * la_load() has returned 0. */
struct la_api {
#define LA_MEMBER(f) __typeof__(&f) f;
    LA_FUNCS(LA_MEMBER)
#undef LA_MEMBER
};
extern struct la_api la_api;

/* Loads libarchive on the first call (any thread; later calls only check).
 * 0, or -1 when it cannot be loaded; la_error() says why. */
int la_load(void);
/* Why the load failed, naming the library ("" when it did not). */
const char *la_error(void);
/* la_load(), or -1 with a 500 in e naming the library. */
int la_need(berr *e);
/* The calling thread is done with libarchive for now (berthd: after each
 * request). With la_unload_when_idle(true), the last holder unloads it;
 * the next la_need loads it again. Only threads that called la_need may
 * call archive_* functions, until they call this. */
void la_release_thread(void);
void la_unload_when_idle(bool on);

/* From here on, archive_* calls go through the table. Function-like
 * macros: only calls are redirected, so the declarations stay usable. */
#define archive_entry_atime(...) la_api.archive_entry_atime(__VA_ARGS__)
#define archive_entry_atime_is_set(...) la_api.archive_entry_atime_is_set(__VA_ARGS__)
#define archive_entry_atime_nsec(...) la_api.archive_entry_atime_nsec(__VA_ARGS__)
#define archive_entry_filetype(...) la_api.archive_entry_filetype(__VA_ARGS__)
#define archive_entry_free(...) la_api.archive_entry_free(__VA_ARGS__)
#define archive_entry_gid(...) la_api.archive_entry_gid(__VA_ARGS__)
#define archive_entry_hardlink(...) la_api.archive_entry_hardlink(__VA_ARGS__)
#define archive_entry_hardlink_utf8(...) la_api.archive_entry_hardlink_utf8(__VA_ARGS__)
#define archive_entry_mtime(...) la_api.archive_entry_mtime(__VA_ARGS__)
#define archive_entry_mtime_nsec(...) la_api.archive_entry_mtime_nsec(__VA_ARGS__)
#define archive_entry_new(...) la_api.archive_entry_new(__VA_ARGS__)
#define archive_entry_pathname(...) la_api.archive_entry_pathname(__VA_ARGS__)
#define archive_entry_pathname_utf8(...) la_api.archive_entry_pathname_utf8(__VA_ARGS__)
#define archive_entry_perm(...) la_api.archive_entry_perm(__VA_ARGS__)
#define archive_entry_rdev(...) la_api.archive_entry_rdev(__VA_ARGS__)
#define archive_entry_set_filetype(...) la_api.archive_entry_set_filetype(__VA_ARGS__)
#define archive_entry_set_gid(...) la_api.archive_entry_set_gid(__VA_ARGS__)
#define archive_entry_set_hardlink(...) la_api.archive_entry_set_hardlink(__VA_ARGS__)
#define archive_entry_set_mode(...) la_api.archive_entry_set_mode(__VA_ARGS__)
#define archive_entry_set_mtime(...) la_api.archive_entry_set_mtime(__VA_ARGS__)
#define archive_entry_set_pathname(...) la_api.archive_entry_set_pathname(__VA_ARGS__)
#define archive_entry_set_perm(...) la_api.archive_entry_set_perm(__VA_ARGS__)
#define archive_entry_set_rdev(...) la_api.archive_entry_set_rdev(__VA_ARGS__)
#define archive_entry_set_size(...) la_api.archive_entry_set_size(__VA_ARGS__)
#define archive_entry_set_symlink(...) la_api.archive_entry_set_symlink(__VA_ARGS__)
#define archive_entry_set_uid(...) la_api.archive_entry_set_uid(__VA_ARGS__)
#define archive_entry_size(...) la_api.archive_entry_size(__VA_ARGS__)
#define archive_entry_symlink(...) la_api.archive_entry_symlink(__VA_ARGS__)
#define archive_entry_symlink_utf8(...) la_api.archive_entry_symlink_utf8(__VA_ARGS__)
#define archive_entry_uid(...) la_api.archive_entry_uid(__VA_ARGS__)
#define archive_entry_xattr_add_entry(...) la_api.archive_entry_xattr_add_entry(__VA_ARGS__)
#define archive_entry_xattr_next(...) la_api.archive_entry_xattr_next(__VA_ARGS__)
#define archive_entry_xattr_reset(...) la_api.archive_entry_xattr_reset(__VA_ARGS__)
#define archive_error_string(...) la_api.archive_error_string(__VA_ARGS__)
#define archive_filter_bytes(...) la_api.archive_filter_bytes(__VA_ARGS__)
#define archive_filter_code(...) la_api.archive_filter_code(__VA_ARGS__)
#define archive_read_data(...) la_api.archive_read_data(__VA_ARGS__)
#define archive_read_data_block(...) la_api.archive_read_data_block(__VA_ARGS__)
#define archive_read_disk_descend(...) la_api.archive_read_disk_descend(__VA_ARGS__)
#define archive_read_disk_new(...) la_api.archive_read_disk_new(__VA_ARGS__)
#define archive_read_disk_open(...) la_api.archive_read_disk_open(__VA_ARGS__)
#define archive_read_disk_set_standard_lookup(...)                                                 \
    la_api.archive_read_disk_set_standard_lookup(__VA_ARGS__)
#define archive_read_disk_set_symlink_physical(...)                                                \
    la_api.archive_read_disk_set_symlink_physical(__VA_ARGS__)
#define archive_read_free(...) la_api.archive_read_free(__VA_ARGS__)
#define archive_read_new(...) la_api.archive_read_new(__VA_ARGS__)
#define archive_read_next_header(...) la_api.archive_read_next_header(__VA_ARGS__)
#define archive_read_next_header2(...) la_api.archive_read_next_header2(__VA_ARGS__)
#define archive_read_open(...) la_api.archive_read_open(__VA_ARGS__)
#define archive_read_open_fd(...) la_api.archive_read_open_fd(__VA_ARGS__)
#define archive_read_support_filter_all(...) la_api.archive_read_support_filter_all(__VA_ARGS__)
#define archive_read_support_filter_bzip2(...) la_api.archive_read_support_filter_bzip2(__VA_ARGS__)
#define archive_read_support_filter_compress(...)                                                  \
    la_api.archive_read_support_filter_compress(__VA_ARGS__)
#define archive_read_support_filter_gzip(...) la_api.archive_read_support_filter_gzip(__VA_ARGS__)
#define archive_read_support_filter_lz4(...) la_api.archive_read_support_filter_lz4(__VA_ARGS__)
#define archive_read_support_filter_lzma(...) la_api.archive_read_support_filter_lzma(__VA_ARGS__)
#define archive_read_support_filter_xz(...) la_api.archive_read_support_filter_xz(__VA_ARGS__)
#define archive_read_support_filter_zstd(...) la_api.archive_read_support_filter_zstd(__VA_ARGS__)
#define archive_read_support_format_empty(...) la_api.archive_read_support_format_empty(__VA_ARGS__)
#define archive_read_support_format_raw(...) la_api.archive_read_support_format_raw(__VA_ARGS__)
#define archive_read_support_format_tar(...) la_api.archive_read_support_format_tar(__VA_ARGS__)
#define archive_set_error(...) la_api.archive_set_error(__VA_ARGS__)
#define archive_write_close(...) la_api.archive_write_close(__VA_ARGS__)
#define archive_write_data(...) la_api.archive_write_data(__VA_ARGS__)
#define archive_write_data_block(...) la_api.archive_write_data_block(__VA_ARGS__)
#define archive_write_disk_new(...) la_api.archive_write_disk_new(__VA_ARGS__)
#define archive_write_disk_set_options(...) la_api.archive_write_disk_set_options(__VA_ARGS__)
#define archive_write_finish_entry(...) la_api.archive_write_finish_entry(__VA_ARGS__)
#define archive_write_free(...) la_api.archive_write_free(__VA_ARGS__)
#define archive_write_header(...) la_api.archive_write_header(__VA_ARGS__)
#define archive_write_new(...) la_api.archive_write_new(__VA_ARGS__)
#define archive_write_open_fd(...) la_api.archive_write_open_fd(__VA_ARGS__)
#define archive_write_set_bytes_in_last_block(...)                                                 \
    la_api.archive_write_set_bytes_in_last_block(__VA_ARGS__)
#define archive_write_set_format_pax_restricted(...)                                               \
    la_api.archive_write_set_format_pax_restricted(__VA_ARGS__)

#endif
