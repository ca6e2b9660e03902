/* util.h: small shared helpers used by every Berth binary.
 *
 * Errors are carried as values (struct berr: an HTTP-like status and a
 * message), never printed deep inside. Files are written atomically
 * (temp file, fsync, rename, fsync of the directory). Digests are sha256
 * in "sha256:<hex>" form. Cleanup attributes free and close on scope exit. */
#ifndef BERTH_UTIL_H
#define BERTH_UTIL_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>
#include <time.h>

/* ---- errors ---- */
typedef struct berr {
    int status; /* 400, 404, 409, 500 ... */
    char msg[1024];
} berr;

/* Sets *e (if non-NULL) and returns -1, so `return berr_set(e, 404, ...)` works. */
int berr_set(berr *e, int status, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Same, appending ": strerror(errno)". */
int berr_errno(berr *e, int status, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* ---- cleanup helpers ---- */
static inline void freep(void *p)
{
    extern void free(void *);
    free(*(void **)p);
}
static inline void closep(int *fd)
{
    extern int close(int);
    if (*fd >= 0) close(*fd);
}
static inline void fclosep(FILE **f)
{
    if (*f) fclose(*f);
}
#define _cleanup_free_ __attribute__((cleanup(freep)))
#define _cleanup_close_ __attribute__((cleanup(closep)))
#define _cleanup_fclose_ __attribute__((cleanup(fclosep)))

/* ---- memory / strings ---- */
void *xmalloc(size_t n);
void *xcalloc(size_t n, size_t m);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);
char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
bool str_starts(const char *s, const char *prefix);
bool str_ends(const char *s, const char *suffix);

/* growable byte buffer */
typedef struct sbuf {
    char *data;
    size_t len, cap;
} sbuf;
void sbuf_add(sbuf *b, const void *p, size_t n);
void sbuf_adds(sbuf *b, const char *s);
void sbuf_printf(sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void sbuf_free(sbuf *b);
char *sbuf_steal(sbuf *b); /* NUL-terminated; buffer reset */

/* ---- base64 (standard alphabet, with padding) ---- */
char *base64_encode(const void *p, size_t n); /* malloc'ed, NUL-terminated */
/* Decodes up to n chars of in (stops at '='; padding optional) into out,
 * which must hold 3 * n / 4 bytes; returns the length, -1 on a bad char. */
int base64_decode(const char *in, size_t n, unsigned char *out);

/* ---- files ---- */
/* The calling thread runs only when a CPU would otherwise idle
 * (SCHED_IDLE): for cleanup nobody waits for, so that it does not slow
 * what comes next. */
void thread_background(void);
/* A helper program: $envname when set, else name beside this program, else
 * in ../libexec/berth from it (an installed layout). */
char *find_helper(const char *envname, const char *name);
/* realpath(path, NULL) in three syscalls (open O_PATH, readlink of its
 * /proc/self/fd link, close) instead of a readlink per component; falls
 * back to realpath where /proc cannot tell. NULL with errno on failure. */
char *real_path(const char *path);
int mkdir_p(const char *path, mode_t mode);
int rm_rf(const char *path); /* 0 also when absent */
/* 1 when the directory holds no names but those of allowed (NULL-terminated;
 * NULL: none, i.e. it is empty), 0 when it holds another, -1+errno when it
 * cannot be read. */
int dir_only(const char *path, const char *const *allowed);
/* rm -rf of name in the directory dfd, never following symlinks. */
int rm_rf_at(int dfd, const char *name);
int read_file(const char *path, char **out, size_t *len); /* NUL-terminated; -1+errno */
/* Atomic replace: tmp in same dir, fsync, rename, fsync dir. -1+errno. */
int write_file_atomic(const char *path, const void *data, size_t len, mode_t mode);
/* The same without fsync: atomic against a crash of the process (kill -9),
 * not against power loss. For state that is cheap to rebuild or that a
 * restarted daemon reconciles anyway (container state, generated files). */
int write_file_replace(const char *path, const void *data, size_t len, mode_t mode);
/* write_file_replace through spare, an existing file (its inode, no new
 * one): truncated, written, renamed onto path. Without spare: as
 * write_file_replace. */
int write_file_from(const char *spare, const char *path, const void *data, size_t len, mode_t mode);
int fsync_dir(const char *dir);
ssize_t write_all(int fd, const void *p, size_t n);
ssize_t read_all(int fd, void *p, size_t n); /* until n or EOF */
int64_t dir_size(const char *path);          /* bytes of regular files, no hardlink dup */

/* ---- digests ---- */
#define DIGEST_LEN 71 /* "sha256:" + 64 hex, no NUL */
typedef struct sha256_ctx sha256_ctx;
sha256_ctx *sha256_new(void);
void sha256_update(sha256_ctx *c, const void *p, size_t n);
void sha256_final(sha256_ctx *c, char out[DIGEST_LEN + 1]); /* frees ctx */
void sha256_buf(const void *p, size_t n, char out[DIGEST_LEN + 1]);
bool digest_valid(const char *d); /* "sha256:" + 64 lowercase hex */

/* ---- time ---- */
int64_t now_ns(void); /* CLOCK_REALTIME */
void trace_hold(void);
extern int trace_hold_fd; /* the fd trace_hold opened, or -1 */
void trace_mark(const char *fmt, ...) __attribute__((format(printf, 1, 2))); /* BERTH_TRACE=FILE */
void fmt_rfc3339nano(int64_t ns, char *out, size_t n); /* 2024-01-02T03:04:05.123456789Z */
int64_t parse_rfc3339(const char *s);                  /* ns since epoch, -1 on error */
/* docker's --since/--until value: unix seconds (with fraction), RFC3339, or a duration like 10m */
int64_t parse_time_arg(const char *s, int64_t now);

/* ---- human formats (as the docker CLI prints them) ---- */
void human_size(int64_t bytes, char *out, size_t n);       /* 1.23MB (SI, 3 sig digits) */
void human_duration(int64_t seconds, char *out, size_t n); /* "About a minute", "2 hours" */
int64_t parse_size(const char *s);                         /* "512m" -> bytes, -1 bad */

/* ---- logging ---- */
enum { LOG_ERR_ = 0, LOG_WARN_ = 1, LOG_INFO_ = 2, LOG_DEBUG_ = 3 };
extern int log_level;
void logmsg(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
#define log_error(...) logmsg(LOG_ERR_, __VA_ARGS__)
#define log_warn(...) logmsg(LOG_WARN_, __VA_ARGS__)
#define log_info(...) logmsg(LOG_INFO_, __VA_ARGS__)
#define log_debug(...) logmsg(LOG_DEBUG_, __VA_ARGS__)

#define BERTH_VERSION "0.1.0"
#define BERTH_API_VERSION "1.41"
#define BERTH_MIN_API_VERSION "1.24"

#endif
