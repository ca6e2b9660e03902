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
#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli/cli.h"

#define GO_MODE_DIR (1u << 31)
#define GO_MODE_SYMLINK (1u << 27)

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

/* Standard base64 (padding optional); returns the decoded length. */
static int b64_decode(const char *in, size_t n, unsigned char *out)
{
    static const char tbl[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    unsigned acc = 0;
    int bits = 0, len = 0;
    for (size_t i = 0; i < n && in[i] != '='; i++) {
        const char *p = strchr(tbl, in[i]);
        if (!p || !in[i]) return -1;
        acc = acc << 6 | (unsigned)(p - tbl);
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[len++] = (unsigned char)(acc >> bits);
        }
    }
    return len;
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
        int dn = b64_decode(hdr, n, dec);
        json_error_t je;
        json_t *j = dn > 0 ? json_loadb((char *)dec, strnlen((char *)dec, (size_t)dn), 0, &je)
                           : NULL;
        unsigned long long mode = (unsigned long long)json_integer_value(json_object_get(j, "mode"));
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
 * *dst_dir gets the directory; *from/*to the rename (both NULL: none). */
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
    } else if (!dst->exists && !src->is_dir && (ends_with_sep(dst->path) || ends_with_dot(dst->path))) {
        *err = xstrdup("no such directory");
        rc = -1;
    } else {
        *dst_dir = xstrdup(ddir);
        *from = xstrdup(src->rebase ? src->rebase : sbase);
        *to = xstrdup(dbase);
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
        if (archive_write_header(out, e) < ARCHIVE_WARN ||
            archive_read_data_into_fd(in, -1) < ARCHIVE_WARN) {
        }
        const void *buf;
        size_t len;
        la_int64_t off;
        while ((r = archive_read_data_block(in, &buf, &len, &off)) == ARCHIVE_OK)
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
