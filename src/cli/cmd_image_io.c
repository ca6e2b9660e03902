/* cmd_image_io.c: image archives in and out of the daemon: import (a
 * root filesystem tarball from a file, stdin or URL), save (images to a
 * tar archive on stdout or -o FILE) and load (an archive from stdin or -i
 * FILE). Bodies are streamed, never held in memory; the daemon's JSON
 * progress stream is printed as docker prints it. */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli/cli.h"

static const flag FLAG_END = {NULL, 0, 0, NULL, NULL, NULL, NULL};

/* Streams a JSON message body (or raw text) to stdout as docker does. */
typedef struct stream_out {
    jsonmsg m;
    resp *r;
} stream_out;

static bool stream_chunk(void *ctx, const char *data, size_t n)
{
    stream_out *s = ctx;
    const char *ct = s->r->content_type;
    if (ct && str_starts(ct, "application/json")) return jsonmsg_feed(&s->m, data, n);
    fwrite(data, 1, n, stdout);
    return true;
}

/* POSTs body_fd to path and prints the response stream; returns exit code. */
static int post_stream(client *c, const char *path, int body_fd, const char *ctype)
{
    resp r;
    stream_out s = {.m = {.tty = isatty(STDOUT_FILENO)}, .r = &r};
    req rq = {.method = "POST",
              .path = path,
              .body_fd = body_fd,
              .content_type = ctype,
              .on_data = stream_chunk,
              .ctx = &s};
    int rc = client_do(c, &rq, &r) < 0 ? 1 : 0;
    if (rc == 0 && r.status >= 400) {
        print_daemon_error(&r);
        rc = 1;
    } else if (rc == 0 && s.m.error) {
        errorf("%s", s.m.error);
        rc = 1;
    }
    fflush(stdout);
    resp_free(&r);
    sbuf_free(&s.m.pending);
    free(s.m.error);
    return rc;
}

/* ---- import ---- */

static bool is_url(const char *s)
{
    return str_starts(s, "http://") || str_starts(s, "https://");
}

int run_import(client *c, const cmd_def *def, int argc, char **argv)
{
    strv changes = {0};
    char *message = NULL, *platform = NULL;
    flag flags[] = {
        {"change", 'c', FLAG_LIST, &changes, "Apply Dockerfile instruction to the created image",
         NULL, NULL},
        {"message", 'm', FLAG_STRING, &message, "Set commit message for imported image", NULL,
         NULL},
        {"platform", 0, FLAG_STRING, &platform, "Set platform if server is multi-platform capable",
         NULL, NULL},
        FLAG_END,
    };
    char **pos = NULL;
    int rc, n = parse_cmd(def, flags, argc, argv, &pos, &rc);
    int fd = -1;
    sbuf path = {0};
    if (n < 0) goto out;
    const char *src = pos[0], *ref = n > 1 ? pos[1] : "";
    char *name = NULL, *tag = NULL;
    const char *bad = *ref ? ref_check(ref, &name, &tag) : NULL;
    free(name);
    free(tag);
    if (bad) {
        errorf("%s", !strcmp(bad, "digest") ? "invalid reference format" : bad);
        rc = 1;
        goto out;
    }
    if (!strcmp(src, "-"))
        fd = STDIN_FILENO;
    else if (!is_url(src) && (fd = open(src, O_RDONLY | O_CLOEXEC)) < 0) {
        errorf("open %s: %s", src, go_strerror(errno));
        rc = 1;
        goto out;
    }
    sbuf_adds(&path, "/images/create");
    query_add(&path, "fromSrc", is_url(src) ? src : "-");
    query_add(&path, "message", message ? message : "");
    query_add(&path, "repo", ref);
    query_add(&path, "tag", "");
    if (platform && *platform) query_add(&path, "platform", platform);
    for (size_t i = 0; i < changes.n; i++) query_add(&path, "changes", changes.v[i]);
    rc = post_stream(c, path.data, fd, fd >= 0 ? "application/x-tar" : NULL);
out:
    if (fd > STDIN_FILENO) close(fd);
    sbuf_free(&path);
    free(pos);
    strv_free(&changes);
    free(message);
    free(platform);
    return rc;
}

/* ---- save ---- */

static bool write_chunk(void *ctx, const char *data, size_t n)
{
    int *fd = ctx;
    if (write_all(*fd, data, n) < 0) {
        errorf("write: %s", strerror(errno));
        return false;
    }
    return true;
}

/* Opens a temp file beside output (renamed into place on success). */
static int open_temp(const char *output, char **tmp)
{
    char *copy = xstrdup(output);
    const char *dir = dirname(copy);
    struct stat st;
    if (stat(dir, &st) < 0 || !S_ISDIR(st.st_mode)) {
        errorf("failed to save image: invalid output path: directory \"%s\" does not exist", dir);
        free(copy);
        *tmp = NULL;
        return -1;
    }
    *tmp = xasprintf("%s/.berth_temp_XXXXXX", dir);
    free(copy);
    int fd = mkstemp(*tmp);
    if (fd < 0) {
        errorf("failed to save image: %s: %s", output, go_strerror(errno));
        free(*tmp);
        *tmp = NULL;
    }
    return fd;
}

static int save_to(client *c, const char *path, const char *output)
{
    char *tmp = NULL;
    int fd = output ? open_temp(output, &tmp) : STDOUT_FILENO;
    if (fd < 0) return 1;
    req rq = {.method = "GET", .path = path, .body_fd = -1, .on_data = write_chunk, .ctx = &fd};
    resp r;
    int rc = client_do(c, &rq, &r) < 0 ? 1 : 0;
    if (rc == 0 && r.status >= 400) {
        print_daemon_error(&r);
        rc = 1;
    }
    resp_free(&r);
    if (output) {
        if (rc == 0 && (fsync(fd) < 0 || rename(tmp, output) < 0)) {
            errorf("rename %s %s: %s", tmp, output, go_strerror(errno));
            rc = 1;
        }
        close(fd);
        if (rc) unlink(tmp);
        free(tmp);
    }
    return rc;
}

int run_save(client *c, const cmd_def *def, int argc, char **argv)
{
    char *output = NULL;
    flag flags[] = {
        {"output", 'o', FLAG_STRING, &output, "Write to a file, instead of STDOUT", NULL, NULL},
        FLAG_END,
    };
    char **pos = NULL;
    int rc, n = parse_cmd(def, flags, argc, argv, &pos, &rc);
    if (n >= 0) {
        if ((!output || !*output) && isatty(STDOUT_FILENO)) {
            errorf("Cowardly refusing to save to a terminal. Use the -o flag or redirect");
            rc = 1;
        } else {
            sbuf path = {0};
            sbuf_adds(&path, "/images/get");
            for (int i = 0; i < n; i++) query_add(&path, "names", pos[i]);
            rc = save_to(c, path.data, output && *output ? output : NULL);
            sbuf_free(&path);
        }
    }
    free(pos);
    free(output);
    return rc;
}

/* ---- load ---- */

int run_load(client *c, const cmd_def *def, int argc, char **argv)
{
    char *input = NULL;
    bool quiet = false;
    flag flags[] = {
        {"input", 'i', FLAG_STRING, &input, "Read from tar archive file, instead of STDIN", NULL,
         NULL},
        {"quiet", 'q', FLAG_BOOL, &quiet, "Suppress the load output", NULL, NULL},
        FLAG_END,
    };
    char **pos = NULL;
    int rc, fd = STDIN_FILENO;
    if (parse_cmd(def, flags, argc, argv, &pos, &rc) < 0) goto out;
    if (input && *input) {
        fd = open(input, O_RDONLY | O_CLOEXEC);
        if (fd < 0) {
            errorf("open %s: %s", input, go_strerror(errno));
            rc = 1;
            goto out;
        }
    } else if (isatty(STDIN_FILENO)) {
        errorf("requested load from stdin, but stdin is empty");
        rc = 1;
        goto out;
    }
    if (!isatty(STDOUT_FILENO)) quiet = true;
    rc = post_stream(c, quiet ? "/images/load?quiet=1" : "/images/load?quiet=0", fd,
                     "application/x-tar");
out:
    if (fd > STDIN_FILENO) close(fd);
    free(pos);
    free(input);
    return rc;
}
