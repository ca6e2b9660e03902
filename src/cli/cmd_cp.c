/* cmd_cp.c: `berth cp` (container cp), both ways.
 *
 * container:path -> host: stats the source (HEAD /containers/{id}/archive,
 * X-Docker-Container-Path-Stat), fetches the tar (GET .../archive), and
 * extracts it with libarchive following docker's CopyTo rules: into an
 * existing directory as is, otherwise into the destination's parent with
 * the top entry renamed to the destination's base name. "-" writes the
 * tar itself to stdout.
 * host -> container:path: stats the destination, tars the source (its
 * base name, or the new name when the destination does not exist or is a
 * file) and PUTs it into the directory docker's PrepareArchiveCopy picks;
 * "-" sends a tar read from stdin into an existing directory. */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/jsonutil.h"
#include "cli/cli.h"
#include "common/libarchive.h"

#define GO_MODE_DIR (1u << 31)
#define GO_MODE_SYMLINK (1u << 27)

/* libarchive is loaded on first use (common/libarchive.h): the other
 * commands never map it or its dependency tree. */
static int need_libarchive(void)
{
    if (la_load() == 0) return 0;
    errorf("cannot load libarchive: %s", la_error());
    return -1;
}

typedef struct cpinfo {
    char *path;
    bool exists, is_dir, is_link;
    char *link_target;
    char *rebase; /* new name for the top entry, or NULL */
} cpinfo;

static void cpinfo_free(cpinfo *i)
{
    free(i->path);
    free(i->link_target);
    free(i->rebase);
}

/* archive.SplitPathDirEntry: "a/b/" -> ("a", "b"); "a/." keeps ".". */
static void split_dir_entry(const char *path, char **dir, char **base)
{
    size_t n = strlen(path);
    bool cur = (n >= 2 && !strcmp(path + n - 2, "/.")) || !strcmp(path, ".");
    char *p = xstrdup(path);
    while (n > 1 && p[n - 1] == '/') p[--n] = 0;
    while (n > 2 && !strcmp(p + n - 2, "/.")) {
        p[n -= 2] = 0;
        while (n > 1 && p[n - 1] == '/') p[--n] = 0;
    }
    if (cur && strcmp(p, ".")) {
        *dir = p;
        *base = xstrdup(".");
        return;
    }
    char *slash = strrchr(p, '/');
    if (!slash) {
        *dir = xstrdup(".");
        *base = p;
    } else {
        *base = xstrdup(slash + 1);
        *dir = slash == p ? xstrdup("/") : xstrndup(p, (size_t)(slash - p));
        free(p);
    }
}

static bool ends_with_sep(const char *p)
{
    size_t n = strlen(p);
    return n && p[n - 1] == '/';
}

static bool ends_with_dot(const char *p)
{
    size_t n = strlen(p);
    return !strcmp(p, ".") || (n >= 2 && !strcmp(p + n - 2, "/."));
}

/* resolveLocalPath: absolute, keeping a trailing "/" or "/.". */
static char *local_abs(const char *p)
{
    char cwd[PATH_MAX];
    char *abs = p[0] == '/' || !getcwd(cwd, sizeof cwd) ? xstrdup(p) : xasprintf("%s/%s", cwd, p);
    return abs;
}

/* HEAD /containers/{id}/archive?path=; 1 found, 0 missing, -1 error. */
static int stat_container_path(client *c, const char *ctr, const char *path, cpinfo *out)
{
    char *e = url_escape(ctr);
    sbuf p = {0};
    sbuf_printf(&p, "/containers/%s/archive", e);
    query_add(&p, "path", path);
    hconn h = {.fd = -1};
    int rc = hconn_request(c, &h, "HEAD", p.data, NULL, NULL, false);
    if (rc == 0) rc = hconn_head(&h, -1);
    sbuf_free(&p);
    free(e);
    if (rc < 0) return hconn_close(&h), -1;
    rc = h.status == 200 ? 1 : 0;
    const char *hdr = h.in.data ? strcasestr(h.in.data, "\nX-Docker-Container-Path-Stat:") : NULL;
    if (rc == 1 && hdr) {
        hdr += 30;
        while (*hdr == ' ') hdr++;
        size_t n = strcspn(hdr, "\r\n");
        unsigned char *dec = xcalloc(n + 4, 1);
        int dn = base64_decode(hdr, n, dec);
        json_error_t je;
        json_t *j =
            dn > 0 ? json_fast_loadb((char *)dec, strnlen((char *)dec, (size_t)dn), 0, &je) : NULL;
        unsigned long long mode =
            (unsigned long long)json_integer_value(json_object_get(j, "mode"));
        out->exists = true;
        out->is_dir = (mode & GO_MODE_DIR) != 0;
        out->is_link = (mode & GO_MODE_SYMLINK) != 0;
        if (jstr(j, "linkTarget")) out->link_target = xstrdup(jstr(j, "linkTarget"));
        json_decref(j);
        free(dec);
    }
    hconn_close(&h);
    return rc;
}

/* ---- container -> host ---- */

/* CopyInfoDestinationPath for a host path (symlinks followed). */
static int host_dest_info(const char *path, cpinfo *out, char **err)
{
    struct stat st;
    out->path = xstrdup(path);
    if (stat(path, &st) == 0) {
        out->exists = true;
        out->is_dir = S_ISDIR(st.st_mode);
        return 0;
    }
    char *dir, *base;
    split_dir_entry(path, &dir, &base);
    int rc = 0;
    if (stat(dir, &st) < 0) {
        *err = xasprintf("stat %s: %s", dir, go_strerror(errno));
        rc = -1;
    } else if (!S_ISDIR(st.st_mode)) {
        *err = xstrdup("not a directory");
        rc = -1;
    }
    free(dir);
    free(base);
    return rc;
}

/* PrepareArchiveCopy: where to extract and how to rename the top entry.
 * The directory goes to *dst_dir; the rename to *from and *to (NULL: none). */
static int prepare_copy(const cpinfo *src, const cpinfo *dst, char **dst_dir, char **from,
                        char **to, char **err)
{
    char *sdir, *sbase, *ddir, *dbase;
    split_dir_entry(src->path, &sdir, &sbase);
    split_dir_entry(dst->path, &ddir, &dbase);
    int rc = 0;
    *from = *to = NULL;
    if (dst->exists && dst->is_dir) {
        *dst_dir = xstrdup(dst->path);
    } else if (dst->exists && src->is_dir) {
        *err = xstrdup("cannot copy directory");
        rc = -1;
    } else if (!dst->exists && !src->is_dir &&
               (ends_with_sep(dst->path) || ends_with_dot(dst->path))) {
        *err = xstrdup("no such directory");
        rc = -1;
    } else {
        *dst_dir = xstrdup(ddir);
        *from = xstrdup(sbase);
        *to = xstrdup(dbase);
    }
    if (rc == 0 && !*from && src->rebase) {
        *from = xstrdup(sbase);
        *to = xstrdup(src->rebase);
    }
    free(sdir);
    free(sbase);
    free(ddir);
    free(dbase);
    return rc;
}

/* strings.Replace(name, from, to, 1) */
static char *rebase_name(const char *name, const char *from, const char *to)
{
    const char *p = from && *from ? strstr(name, from) : NULL;
    if (!p) return xstrdup(name);
    return xasprintf("%.*s%s%s", (int)(p - name), name, to, p + strlen(from));
}

static int extract_entries(struct archive *in, const char *dir, const char *from, const char *to,
                           char **err)
{
    struct archive *out = archive_write_disk_new();
    archive_write_disk_set_options(out, ARCHIVE_EXTRACT_TIME | ARCHIVE_EXTRACT_PERM |
                                            ARCHIVE_EXTRACT_SECURE_NODOTDOT |
                                            ARCHIVE_EXTRACT_SECURE_SYMLINKS);
    struct archive_entry *e;
    int rc = 0, r;
    while (rc == 0 && (r = archive_read_next_header(in, &e)) == ARCHIVE_OK) {
        char *n = rebase_name(archive_entry_pathname(e), from, to);
        char *full = xasprintf("%s/%s", dir, n);
        archive_entry_set_pathname(e, full);
        const char *hl = archive_entry_hardlink(e);
        if (hl) {
            char *h = rebase_name(hl, from, to), *hf = xasprintf("%s/%s", dir, h);
            archive_entry_set_hardlink(e, hf);
            free(h);
            free(hf);
        }
        const void *buf;
        size_t len;
        la_int64_t off;
        if (archive_write_header(out, e) >= ARCHIVE_WARN)
            while (archive_read_data_block(in, &buf, &len, &off) == ARCHIVE_OK)
                archive_write_data_block(out, buf, len, off);
        if (archive_write_finish_entry(out) < ARCHIVE_WARN) {
            *err = xstrdup(archive_error_string(out));
            rc = -1;
        }
        free(n);
        free(full);
    }
    if (rc == 0 && r != ARCHIVE_EOF) {
        *err = xstrdup(archive_error_string(in));
        rc = -1;
    }
    archive_write_free(out);
    return rc;
}

static bool write_fd(void *ctx, const char *data, size_t n)
{
    return write_all(*(int *)ctx, data, n) >= 0;
}

/* command.ValidateOutputPath */
static int validate_output(const char *path)
{
    char *dir, *base;
    split_dir_entry(path, &dir, &base);
    struct stat st;
    int rc = 0;
    if (strcmp(dir, ".") && stat(dir, &st) < 0 && errno == ENOENT) {
        errorf("invalid output path: directory \"%s\" does not exist", dir);
        rc = -1;
    }
    free(dir);
    free(base);
    return rc;
}

/* GET .../archive?path= into fd; 0, or -1 after printing the error. */

/* One archive request; docker's messages for a missing container or path
 * and for other errors. 0 or -1. */
static int archive_request(client *c, const req *rq, const char *ctr, const char *path)
{
    resp r;
    int rc = client_do(c, rq, &r);
    if (rc == 0 && r.status == 404) {
        errorf("Error: No such container:path: %s:%s", ctr, path);
        rc = -1;
    } else if (rc == 0 && r.status >= 400) {
        print_daemon_error(&r);
        rc = -1;
    }
    resp_free(&r);
    return rc;
}

static int fetch_archive(client *c, const char *ctr, const char *path, int fd)
{
    char *e = url_escape(ctr);
    sbuf p = {0};
    sbuf_printf(&p, "/containers/%s/archive", e);
    query_add(&p, "path", path);
    req rq = {.method = "GET", .path = p.data, .body_fd = -1, .on_data = write_fd, .ctx = &fd};
    int rc = archive_request(c, &rq, ctr, path);
    sbuf_free(&p);
    free(e);
    return rc;
}

/* Joins a relative symlink target with the link's directory. */
static char *link_abs(const char *link_path, const char *target)
{
    if (target[0] == '/') return xstrdup(target);
    char *dir, *base;
    split_dir_entry(link_path, &dir, &base);
    char *out = xasprintf("%s/%s", dir, target);
    free(dir);
    free(base);
    return out;
}

static int extract_tmp(int fd, const cpinfo *src, const char *dst)
{
    if (need_libarchive() < 0) return -1;
    cpinfo di = {0};
    char *err = NULL, *dir = NULL, *from = NULL, *to = NULL;
    int rc = host_dest_info(dst, &di, &err);
    if (rc == 0) rc = prepare_copy(src, &di, &dir, &from, &to, &err);
    if (rc == 0) {
        lseek(fd, 0, SEEK_SET);
        struct archive *a = archive_read_new();
        archive_read_support_format_tar(a);
        if (archive_read_open_fd(a, fd, 65536) != ARCHIVE_OK) {
            err = xstrdup(archive_error_string(a));
            rc = -1;
        } else
            rc = extract_entries(a, dir, from, to, &err);
        archive_read_free(a);
    }
    if (rc < 0) errorf("%s", err ? err : "copy failed");
    free(err);
    free(dir);
    free(from);
    free(to);
    cpinfo_free(&di);
    return rc;
}

static int copy_from(client *c, const char *ctr, const char *src, const char *dst, bool follow)
{
    char *dabs = strcmp(dst, "-") ? local_abs(dst) : NULL;
    if (dabs && validate_output(dabs) < 0) return free(dabs), 1;
    cpinfo si = {.path = xstrdup(src)};
    int st = stat_container_path(c, ctr, src, &si);
    if (st == 1 && follow && si.is_link && si.link_target) {
        char *target = link_abs(src, si.link_target);
        char *sd, *sb, *td, *tb;
        split_dir_entry(src, &sd, &sb);
        split_dir_entry(target, &td, &tb);
        if (strcmp(sb, tb)) si.rebase = xstrdup(sb);
        free(si.path);
        si.path = target;
        free(si.link_target);
        si.link_target = NULL;
        st = stat_container_path(c, ctr, si.path, &si);
        free(sd), free(sb), free(td), free(tb);
    }
    int rc = 1;
    if (st == 0) errorf("Error: No such container:path: %s:%s", ctr, src);
    if (st == 1 && !dabs) {
        fflush(stdout);
        rc = fetch_archive(c, ctr, si.path, STDOUT_FILENO) < 0 ? 1 : 0;
    } else if (st == 1) {
        FILE *tmp = tmpfile();
        if (tmp && fetch_archive(c, ctr, si.path, fileno(tmp)) == 0)
            rc = extract_tmp(fileno(tmp), &si, dabs) < 0 ? 1 : 0;
        if (tmp) fclose(tmp);
    }
    cpinfo_free(&si);
    free(dabs);
    return rc;
}

/* ---- host -> container ---- */

static int copy_data(struct archive *disk, struct archive *tar)
{
    const void *buf;
    size_t len;
    la_int64_t off;
    int r;
    while ((r = archive_read_data_block(disk, &buf, &len, &off)) == ARCHIVE_OK)
        if (archive_write_data(tar, buf, len) < 0) return -1;
    return r == ARCHIVE_EOF ? 0 : -1;
}

/* Tars dir/base (names relative to dir, first `from` renamed `to`) into fd. */
static int tar_source(const char *dir, const char *base, const char *from, const char *to, int fd,
                      char **err)
{
    struct archive *disk = archive_read_disk_new(), *tar = archive_write_new();
    archive_read_disk_set_symlink_physical(disk);
    archive_read_disk_set_standard_lookup(disk);
    archive_write_set_format_pax_restricted(tar);
    archive_write_open_fd(tar, fd);
    char *top = xasprintf("%s/%s", dir, base);
    size_t skip = strcmp(dir, "/") ? strlen(dir) + 1 : 1;
    int rc = archive_read_disk_open(disk, top) == ARCHIVE_OK ? 0 : -1;
    struct archive_entry *e = archive_entry_new();
    while (rc == 0) {
        int r = archive_read_next_header2(disk, e);
        if (r == ARCHIVE_EOF) break;
        if (r < ARCHIVE_WARN) {
            rc = -1;
            break;
        }
        archive_read_disk_descend(disk);
        const char *full = archive_entry_pathname(e);
        char *name = rebase_name(strlen(full) >= skip ? full + skip : full, from, to);
        archive_entry_set_pathname(e, name);
        free(name);
        if (archive_write_header(tar, e) < ARCHIVE_WARN ||
            (archive_entry_filetype(e) == AE_IFREG && copy_data(disk, tar) < 0))
            rc = -1;
    }
    if (rc < 0)
        *err = xstrdup(archive_error_string(disk) ? archive_error_string(disk)
                                                  : archive_error_string(tar));
    archive_entry_free(e);
    archive_read_free(disk);
    archive_write_close(tar);
    archive_write_free(tar);
    free(top);
    return rc;
}

/* PUT .../archive?path=dir with the tar in fd. */
static int put_archive(client *c, const char *ctr, const char *dir, int fd, bool uidgid)
{
    char *e = url_escape(ctr);
    sbuf p = {0};
    sbuf_printf(&p, "/containers/%s/archive", e);
    query_add(&p, "path", dir);
    query_add(&p, "noOverwriteDirNonDir", "true");
    if (uidgid) query_add(&p, "copyUIDGID", "true");
    req rq = {.method = "PUT", .path = p.data, .body_fd = fd, .content_type = "application/x-tar"};
    int rc = archive_request(c, &rq, ctr, dir);
    sbuf_free(&p);
    free(e);
    return rc;
}

/* CopyInfoSourcePath: the resolved host source (parent dir symlinks resolved). */
static int host_source_info(const char *path, bool follow, cpinfo *out, char **err)
{
    char *dir, *base, real[PATH_MAX];
    split_dir_entry(path, &dir, &base);
    if (follow && strcmp(base, ".") && !realpath(path, real)) {
        char target[PATH_MAX];
        ssize_t n = readlink(path, target, sizeof target - 1);
        int e = errno;
        if (n > 0) target[n] = 0;
        char *shown = n > 0 ? link_abs(path, target) : xstrdup(path);
        *err = xasprintf("lstat %s: %s", shown, go_strerror(n > 0 ? ENOENT : e));
        free(shown);
        free(dir);
        free(base);
        return -1;
    }
    if (follow && strcmp(base, ".")) {
        out->path = xstrdup(real);
        char *d2, *b2;
        split_dir_entry(real, &d2, &b2);
        if (strcmp(b2, base)) out->rebase = xstrdup(base);
        free(d2), free(b2);
    } else if (realpath(dir, real))
        out->path = !strcmp(real, "/") ? xasprintf("/%s", base) : xasprintf("%s/%s", real, base);
    else
        out->path = xstrdup(path);
    free(dir);
    free(base);
    struct stat st;
    if (lstat(out->path, &st) < 0) {
        *err = xasprintf("lstat %s: %s", out->path, go_strerror(errno));
        return -1;
    }
    out->exists = true;
    out->is_dir = S_ISDIR(st.st_mode);
    return 0;
}

static int copy_to_tar(client *c, const char *ctr, const cpinfo *si, const cpinfo *di, bool uidgid)
{
    if (need_libarchive() < 0) return 1;
    char *err = NULL, *dir = NULL, *from = NULL, *to = NULL, *sdir, *sbase;
    split_dir_entry(si->path, &sdir, &sbase);
    int rc = prepare_copy(si, di, &dir, &from, &to, &err);
    FILE *tmp = rc == 0 ? tmpfile() : NULL;
    if (rc == 0 && !tmp) err = xasprintf("%s", go_strerror(errno)), rc = -1;
    if (rc == 0) rc = tar_source(sdir, sbase, from, to, fileno(tmp), &err);
    if (rc < 0) errorf("%s", err ? err : "copy failed");
    if (rc == 0) {
        lseek(fileno(tmp), 0, SEEK_SET);
        rc = put_archive(c, ctr, dir, fileno(tmp), uidgid);
    }
    if (tmp) fclose(tmp);
    free(err), free(dir), free(from), free(to), free(sdir), free(sbase);
    return rc < 0 ? 1 : 0;
}

static int copy_to(client *c, const char *src, const char *ctr, const char *dst, bool follow,
                   bool uidgid)
{
    cpinfo di = {.path = xstrdup(dst)};
    int st = stat_container_path(c, ctr, dst, &di);
    if (st == 1 && di.is_link && di.link_target) {
        char *target = link_abs(dst, di.link_target);
        free(di.path);
        free(di.link_target);
        di = (cpinfo){.path = target};
        st = stat_container_path(c, ctr, target, &di);
    }
    int rc = 1;
    if (st < 0) goto out;
    if (!strcmp(src, "-")) {
        if (!di.is_dir)
            errorf("destination \"%s:%s\" must be a directory", ctr, dst);
        else
            rc = put_archive(c, ctr, di.path, STDIN_FILENO, uidgid) < 0 ? 1 : 0;
        goto out;
    }
    char *abs = local_abs(src), *err = NULL;
    cpinfo si = {0};
    if (host_source_info(abs, follow, &si, &err) < 0)
        errorf("%s", err);
    else
        rc = copy_to_tar(c, ctr, &si, &di, uidgid);
    free(err);
    free(abs);
    cpinfo_free(&si);
out:
    cpinfo_free(&di);
    return rc;
}

/* splitCpArg: "ctr:path", unless the argument is a local path. */
static char *split_arg(const char *arg, const char **path)
{
    const char *colon = strchr(arg, ':');
    *path = arg;
    if (arg[0] == '/' || arg[0] == '.' || !colon) return NULL;
    *path = colon + 1;
    return xstrndup(arg, (size_t)(colon - arg));
}

int run_cp(client *c, const cmd_def *def, int argc, char **argv)
{
    bool archive = false, follow = false;
    flag flags[] = {
        {"archive", 'a', FLAG_BOOL, &archive, "Archive mode (copy all uid/gid information)"},
        {"follow-link", 'L', FLAG_BOOL, &follow, "Always follow symbol link in SRC_PATH"},
        {NULL},
    };
    char **pos = NULL;
    int rc;
    if (parse_cmd(def, flags, argc, argv, &pos, &rc) < 0) return rc;
    const char *sp, *dp;
    char *sc = split_arg(pos[0], &sp), *dc = split_arg(pos[1], &dp);
    rc = 1;
    if (sc && dc)
        errorf("copying between containers is not supported");
    else if (!sc && !dc)
        errorf("must specify at least one container source");
    else if (sc)
        rc = copy_from(c, sc, sp, dp, follow);
    else
        rc = copy_to(c, sp, dc, dp, follow, archive);
    free(sc);
    free(dc);
    free(pos);
    return rc;
}
