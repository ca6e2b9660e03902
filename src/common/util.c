/* util.c: errors, memory, strings, files, digests, time, human formats and
 * logging shared by berthd, berth and the tests. See util.h. */
#include "util.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- errors ---- */
int berr_set(berr *e, int status, const char *fmt, ...)
{
    if (!e) return -1;
    va_list ap;
    va_start(ap, fmt);
    e->status = status;
    vsnprintf(e->msg, sizeof e->msg, fmt, ap);
    va_end(ap);
    return -1;
}

int berr_errno(berr *e, int status, const char *fmt, ...)
{
    int saved = errno;
    if (!e) return -1;
    va_list ap;
    va_start(ap, fmt);
    e->status = status;
    int n = vsnprintf(e->msg, sizeof e->msg, fmt, ap);
    va_end(ap);
    if (n >= 0 && (size_t)n < sizeof e->msg)
        snprintf(e->msg + n, sizeof e->msg - n, ": %s", strerror(saved));
    errno = saved;
    return -1;
}

/* ---- memory / strings ---- */
static void oom(void)
{
    fputs("out of memory\n", stderr);
    abort();
}
void *xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p) oom();
    return p;
}
void *xcalloc(size_t n, size_t m)
{
    void *p = calloc(n ? n : 1, m ? m : 1);
    if (!p) oom();
    return p;
}
void *xrealloc(void *p, size_t n)
{
    p = realloc(p, n ? n : 1);
    if (!p) oom();
    return p;
}
char *xstrdup(const char *s)
{
    char *p = strdup(s ? s : "");
    if (!p) oom();
    return p;
}
char *xstrndup(const char *s, size_t n)
{
    char *p = strndup(s, n);
    if (!p) oom();
    return p;
}
char *xasprintf(const char *fmt, ...)
{
    va_list ap;
    char *p;
    va_start(ap, fmt);
    if (vasprintf(&p, fmt, ap) < 0) oom();
    va_end(ap);
    return p;
}
bool str_starts(const char *s, const char *prefix)
{
    return strncmp(s, prefix, strlen(prefix)) == 0;
}
bool str_ends(const char *s, const char *suffix)
{
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && memcmp(s + a - b, suffix, b) == 0;
}

void sbuf_add(sbuf *b, const void *p, size_t n)
{
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n + 1) cap *= 2;
        b->data = xrealloc(b->data, cap);
        b->cap = cap;
    }
    if (n) memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = 0;
}
void sbuf_adds(sbuf *b, const char *s)
{
    sbuf_add(b, s, strlen(s));
}
void sbuf_printf(sbuf *b, const char *fmt, ...)
{
    va_list ap;
    char *p;
    va_start(ap, fmt);
    int n = vasprintf(&p, fmt, ap);
    va_end(ap);
    if (n < 0) oom();
    sbuf_add(b, p, (size_t)n);
    free(p);
}
void sbuf_free(sbuf *b)
{
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}
char *sbuf_steal(sbuf *b)
{
    if (!b->data) sbuf_add(b, "", 0);
    char *p = b->data;
    b->data = NULL;
    b->len = b->cap = 0;
    return p;
}

/* ---- base64 (standard alphabet, RFC 4648) ---- */

static const char b64_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

char *base64_encode(const void *data, size_t n)
{
    const unsigned char *p = data;
    char *out = xmalloc(4 * ((n + 2) / 3) + 1), *o = out;
    for (; n >= 3; p += 3, n -= 3) {
        uint32_t v = (uint32_t)p[0] << 16 | (uint32_t)p[1] << 8 | p[2];
        *o++ = b64_alphabet[v >> 18];
        *o++ = b64_alphabet[(v >> 12) & 63];
        *o++ = b64_alphabet[(v >> 6) & 63];
        *o++ = b64_alphabet[v & 63];
    }
    if (n) {
        uint32_t v = (uint32_t)p[0] << 16 | (n > 1 ? (uint32_t)p[1] << 8 : 0);
        *o++ = b64_alphabet[v >> 18];
        *o++ = b64_alphabet[(v >> 12) & 63];
        *o++ = n > 1 ? b64_alphabet[(v >> 6) & 63] : '=';
        *o++ = '=';
    }
    *o = 0;
    return out;
}

int base64_decode(const char *in, size_t n, unsigned char *out)
{
    unsigned acc = 0;
    int bits = 0, len = 0;
    for (size_t i = 0; i < n && in[i] != '='; i++) {
        const char *p = in[i] ? strchr(b64_alphabet, in[i]) : NULL;
        if (!p) return -1;
        acc = acc << 6 | (unsigned)(p - b64_alphabet);
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[len++] = (unsigned char)(acc >> bits);
        }
    }
    return len;
}

/* ---- scheduling ---- */
void thread_background(void)
{
    struct sched_param sp = {0};
    pthread_setschedparam(pthread_self(), SCHED_IDLE, &sp);
}

/* ---- helpers ---- */
char *find_helper(const char *envname, const char *name)
{
    const char *env = getenv(envname);
    if (env && *env) return xstrdup(env);
    char self[4096];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n <= 0) return xasprintf("/usr/local/libexec/berth/%s", name);
    self[n] = 0;
    char *slash = strrchr(self, '/');
    *slash = 0;
    char *p = xasprintf("%s/%s", self, name);
    if (access(p, X_OK) == 0) return p;
    free(p);
    return xasprintf("%s/../libexec/berth/%s", self, name);
}

/* ---- files ---- */
char *real_path(const char *path)
{
    int fd = open(path, O_PATH | O_CLOEXEC);
    if (fd < 0) return NULL;
    char link[32], buf[PATH_MAX];
    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    ssize_t n = readlink(link, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0 || n >= (ssize_t)sizeof buf - 1 || buf[0] != '/') return realpath(path, NULL);
    buf[n] = 0;
    static const char del[] = " (deleted)";
    if ((size_t)n >= sizeof del - 1 && !strcmp(buf + n - (sizeof del - 1), del))
        return realpath(path, NULL);
    return xstrdup(buf);
}

int mkdir_p(const char *path, mode_t mode)
{
    char buf[PATH_MAX];
    if (snprintf(buf, sizeof buf, "%s", path) >= (int)sizeof buf) {
        errno = ENAMETOOLONG;
        return -1;
    }
    if (mkdir(buf, mode) == 0 || errno == EEXIST)
        return 0; /* the parent is there: the usual case */
    if (errno != ENOENT) return -1;
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/') continue;
        *p = 0;
        if (mkdir(buf, mode) < 0 && errno != EEXIST) return -1;
        *p = '/';
    }
    if (mkdir(buf, mode) < 0 && errno != EEXIST) return -1;
    return 0;
}

int rm_rf_at(int dfd, const char *name)
{
    struct stat st;
    if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0) return errno == ENOENT ? 0 : -1;
    if (!S_ISDIR(st.st_mode)) return unlinkat(dfd, name, 0) < 0 && errno != ENOENT ? -1 : 0;
    int fd = openat(dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) return -1;
    DIR *d = fdopendir(fd);
    if (!d) {
        close(fd);
        return -1;
    }
    int rc = 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, "..")) continue;
        if (rm_rf_at(dirfd(d), de->d_name) < 0) rc = -1;
    }
    closedir(d);
    if (unlinkat(dfd, name, AT_REMOVEDIR) < 0 && errno != ENOENT) rc = -1;
    return rc;
}
int rm_rf(const char *path)
{
    return rm_rf_at(AT_FDCWD, path);
}

int dir_only(const char *path, const char *const *allowed)
{
    DIR *d = opendir(path);
    if (!d) return -1;
    int r = 1;
    struct dirent *de;
    while (r == 1 && (de = readdir(d))) {
        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, "..")) continue;
        r = 0;
        for (const char *const *a = allowed; a && *a && !r; a++) r = !strcmp(de->d_name, *a);
    }
    closedir(d);
    return r;
}

int read_file(const char *path, char **out, size_t *len)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return -1;
    sbuf b = {0};
    char tmp[65536];
    for (;;) {
        ssize_t n = read(fd, tmp, sizeof tmp);
        if (n < 0) {
            if (errno == EINTR) continue;
            int s = errno;
            close(fd);
            sbuf_free(&b);
            errno = s;
            return -1;
        }
        if (n == 0) break;
        sbuf_add(&b, tmp, (size_t)n);
    }
    close(fd);
    if (len) *len = b.len;
    *out = sbuf_steal(&b);
    return 0;
}

int fsync_dir(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return -1;
    int rc = fsync(fd);
    close(fd);
    return rc;
}

ssize_t write_all(int fd, const void *p, size_t n)
{
    const char *c = p;
    size_t done = 0;
    while (done < n) {
        ssize_t w = write(fd, c + done, n - done);
        if (w < 0) {
            if (errno == EINTR) continue;
            return -1;
        }
        done += (size_t)w;
    }
    return (ssize_t)done;
}

ssize_t read_all(int fd, void *p, size_t n)
{
    char *c = p;
    size_t done = 0;
    while (done < n) {
        ssize_t r = read(fd, c + done, n - done);
        if (r < 0) {
            if (errno == EINTR) continue;
            return -1;
        }
        if (r == 0) break;
        done += (size_t)r;
    }
    return (ssize_t)done;
}

static int replace_file(const char *path, const void *data, size_t len, mode_t mode, bool sync);

int write_file_atomic(const char *path, const void *data, size_t len, mode_t mode)
{
    return replace_file(path, data, len, mode, true);
}

int write_file_replace(const char *path, const void *data, size_t len, mode_t mode)
{
    return replace_file(path, data, len, mode, false);
}

int write_file_from(const char *spare, const char *path, const void *data, size_t len, mode_t mode)
{
    int fd = open(spare, O_WRONLY | O_TRUNC | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) return errno == ENOENT ? write_file_replace(path, data, len, mode) : -1;
    int r = fchmod(fd, mode) < 0 || write_all(fd, data, len) < 0 ? -1 : 0;
    int s = errno;
    close(fd);
    if (r == 0 && rename(spare, path) < 0) s = errno, r = -1;
    if (r < 0) unlink(spare), errno = s;
    return r;
}

static int replace_file(const char *path, const void *data, size_t len, mode_t mode, bool sync)
{
    char tmp[PATH_MAX];
    if (snprintf(tmp, sizeof tmp, "%s.tmp.%d.%lx", path, (int)getpid(), (unsigned long)now_ns()) >=
        (int)sizeof tmp) {
        errno = ENAMETOOLONG;
        return -1;
    }
    int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
    if (fd < 0) return -1;
    if (write_all(fd, data, len) < 0 || (sync && fsync(fd) < 0)) {
        int s = errno;
        close(fd);
        unlink(tmp);
        errno = s;
        return -1;
    }
    close(fd);
    if (rename(tmp, path) < 0) {
        int s = errno;
        unlink(tmp);
        errno = s;
        return -1;
    }
    char dir[PATH_MAX];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (sync && slash) {
        if (slash == dir)
            slash[1] = 0;
        else
            *slash = 0;
        fsync_dir(dir);
    }
    return 0;
}

static int64_t dir_size_at(int dfd)
{
    DIR *d = fdopendir(dfd);
    if (!d) {
        close(dfd);
        return 0;
    }
    int64_t total = 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, "..")) continue;
        struct stat st;
        if (fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0) continue;
        if (S_ISDIR(st.st_mode)) {
            int fd = openat(dirfd(d), de->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
            if (fd >= 0) total += dir_size_at(fd);
        } else if (S_ISREG(st.st_mode) || S_ISLNK(st.st_mode)) {
            total += st.st_size;
        }
    }
    closedir(d);
    return total;
}
int64_t dir_size(const char *path)
{
    int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return 0;
    return dir_size_at(fd);
}

/* ---- time ---- */
int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

void fmt_rfc3339nano(int64_t ns, char *out, size_t n)
{
    time_t s = (time_t)(ns / 1000000000LL);
    long frac = (long)(ns % 1000000000LL);
    struct tm tm;
    gmtime_r(&s, &tm);
    char base[32];
    strftime(base, sizeof base, "%Y-%m-%dT%H:%M:%S", &tm);
    if (frac == 0) {
        snprintf(out, n, "%sZ", base);
        return;
    }
    char f[16];
    snprintf(f, sizeof f, "%09ld", frac);
    for (int i = 8; i > 0 && f[i] == '0'; i--) f[i] = 0; /* Go trims trailing zeros */
    snprintf(out, n, "%s.%sZ", base, f);
}

int64_t parse_rfc3339(const char *s)
{
    struct tm tm = {0};
    const char *p = strptime(s, "%Y-%m-%dT%H:%M:%S", &tm);
    if (!p) {
        memset(&tm, 0, sizeof tm);
        p = strptime(s, "%Y-%m-%d", &tm);
        if (!p) return -1;
    }
    int64_t frac = 0;
    if (*p == '.') {
        p++;
        int digits = 0;
        while (isdigit((unsigned char)*p)) {
            if (digits < 9) {
                frac = frac * 10 + (*p - '0');
                digits++;
            }
            p++;
        }
        while (digits++ < 9) frac *= 10;
    }
    int64_t off = 0;
    if (*p == 'Z' || *p == 'z') {
        p++;
    } else if (*p == '+' || *p == '-') {
        int sign = *p == '-' ? -1 : 1;
        int hh = 0, mm = 0;
        if (sscanf(p + 1, "%2d:%2d", &hh, &mm) != 2) return -1;
        off = sign * (hh * 3600 + mm * 60);
        p += 6;
    }
    if (*p) return -1;
    time_t t = timegm(&tm);
    if ((int64_t)t - off < 0) return 0; /* before 1970: Go's zero time "0001-01-01T00:00:00Z" */
    return ((int64_t)t - off) * 1000000000LL + frac;
}

int64_t parse_time_arg(const char *s, int64_t now)
{
    if (!s || !*s) return -1;
    /* unix timestamp with optional fraction */
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (!*end && errno == 0 && isdigit((unsigned char)s[0])) return (int64_t)(v * 1e9);
    /* Go duration: 10m, 1h30m, 45s */
    const char *p = s;
    int64_t total = 0;
    bool any = false;
    while (*p) {
        double num = strtod(p, &end);
        if (end == p) break;
        p = end;
        int64_t unit;
        if (!strncmp(p, "ms", 2))
            unit = 1000000LL, p += 2;
        else if (*p == 'h')
            unit = 3600000000000LL, p++;
        else if (*p == 'm')
            unit = 60000000000LL, p++;
        else if (*p == 's')
            unit = 1000000000LL, p++;
        else
            break;
        total += (int64_t)(num * (double)unit);
        any = true;
    }
    if (any && !*p) return now - total;
    return parse_rfc3339(s);
}

/* ---- human formats ---- */
void human_size(int64_t bytes, char *out, size_t n)
{
    static const char *units[] = {"B", "kB", "MB", "GB", "TB", "PB", "EB"};
    double v = (double)bytes;
    int i = 0;
    while (v >= 1000.0 && i < 6) {
        v /= 1000.0;
        i++;
    }
    snprintf(out, n, "%.3g%s", v, units[i]);
}

void human_duration(int64_t seconds, char *out, size_t n)
{
    int64_t minutes = seconds / 60;
    int64_t hours = (seconds + 1800) / 3600; /* rounded, as Go's Duration.Round(time.Hour) */
    if (seconds < 1)
        snprintf(out, n, "Less than a second");
    else if (seconds == 1)
        snprintf(out, n, "1 second");
    else if (seconds < 60)
        snprintf(out, n, "%lld seconds", (long long)seconds);
    else if (minutes == 1)
        snprintf(out, n, "About a minute");
    else if (minutes < 60)
        snprintf(out, n, "%lld minutes", (long long)minutes);
    else if (hours == 1)
        snprintf(out, n, "About an hour");
    else if (hours < 48)
        snprintf(out, n, "%lld hours", (long long)hours);
    else if (hours < 24 * 7 * 2)
        snprintf(out, n, "%lld days", (long long)(hours / 24));
    else if (hours < 24 * 30 * 2)
        snprintf(out, n, "%lld weeks", (long long)(hours / 24 / 7));
    else if (hours < 24 * 365 * 2)
        snprintf(out, n, "%lld months", (long long)(hours / 24 / 30));
    else
        snprintf(out, n, "%lld years", (long long)(seconds / 3600 / 24 / 365));
}

int64_t parse_size(const char *s)
{
    if (!s || !isdigit((unsigned char)*s)) return -1;
    char *end;
    double v = strtod(s, &end);
    if (*end == ' ') end++;
    int64_t mult = 1;
    switch (tolower((unsigned char)*end)) {
    case 'k':
        mult = 1LL << 10;
        end++;
        break;
    case 'm':
        mult = 1LL << 20;
        end++;
        break;
    case 'g':
        mult = 1LL << 30;
        end++;
        break;
    case 't':
        mult = 1LL << 40;
        end++;
        break;
    case 'p':
        mult = 1LL << 50;
        end++;
        break;
    default:
        break;
    }
    if (mult > 1 && tolower((unsigned char)*end) == 'i') end++;
    if (tolower((unsigned char)*end) == 'b') end++;
    if (*end) return -1;
    return (int64_t)(v * (double)mult);
}

/* ---- logging ---- */
int log_level = LOG_INFO_;
void logmsg(int level, const char *fmt, ...)
{
    static const char *names[] = {"error", "warning", "info", "debug"};
    if (level > log_level) return;
    char ts[64];
    fmt_rfc3339nano(now_ns(), ts, sizeof ts);
    char msg[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    fprintf(stderr, "time=\"%s\" level=%s msg=\"%s\"\n", ts, names[level], msg);
}

/* ---- tracing (BERTH_TRACE=FILE) ---- */
/* The file is opened for each mark: processes close fds they do not know
 * (the shim, the container's init), and a kept fd could be reused. */
int trace_hold_fd = -1;
void trace_hold(void)
{
    const char *p = getenv("BERTH_TRACE");
    if (p && *p) trace_hold_fd = open(p, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
}

void trace_mark(const char *fmt, ...)
{
    static int on = -1;
    static const char *path;
    if (on < 0) path = getenv("BERTH_TRACE"), on = path && *path;
    if (!on) return;
    int saved = errno;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    char buf[256];
    int n = snprintf(buf, sizeof buf, "%lld.%06ld %d ", (long long)ts.tv_sec, ts.tv_nsec / 1000,
                     (int)getpid());
    va_list ap;
    va_start(ap, fmt);
    n += vsnprintf(buf + n, sizeof buf - (size_t)n - 1, fmt, ap);
    va_end(ap);
    if (n > (int)sizeof buf - 2) n = (int)sizeof buf - 2;
    buf[n++] = '\n';
    int fd = trace_hold_fd >= 0 ? trace_hold_fd
                                : open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (fd >= 0) {
        if (write(fd, buf, (size_t)n) < 0) n = 0;
        if (fd != trace_hold_fd) close(fd);
    }
    errno = saved;
}
