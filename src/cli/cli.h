/* cli.h: what the files of the berth command-line client share.
 *
 * client.c talks HTTP to the daemon (UNIX socket or TCP) with API version
 * negotiation, over http.c's HTTP/1.1 wire code (http.h); flags.c parses
 * pflag-style options and prints usage; output.c holds docker's table
 * writer, the --format machinery, JSON indentation, human-readable values
 * and the JSON progress stream printer; each cmd_*.c file implements one
 * command group. */
#ifndef BERTH_CLI_H
#define BERTH_CLI_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "cli/template.h"
#include "common/jsonutil.h"
#include "common/util.h"

#define CLI_NAME "berth"
#define DEFAULT_HOST "unix:///run/berth.sock"

/* ---- HTTP client (client.c) ---- */
typedef struct client {
    char *host;   /* as given, e.g. unix:///run/berth.sock */
    char *sock;   /* UNIX socket path, or NULL for TCP */
    char *base;   /* http://host:port or http://localhost */
    char api[16]; /* negotiated API version */
    bool negotiated;
    bool daemon_seen;   /* a response was received at least once */
    json_t *ping;       /* headers of interest from /_ping, if fetched */
    struct hconn *idle; /* kept-alive connection between requests, or NULL */
    int spare[2];       /* connected ahead (client_preconnect), for the next opens */
    int nspare;
} client;

typedef struct resp {
    long status;
    sbuf body;
    char *content_type;
} resp;

/* Body writer for streaming responses; return false to stop. */
typedef bool (*chunk_fn)(void *ctx, const char *data, size_t n);

typedef struct req {
    const char *method;
    const char *path; /* "/images/json?all=1": versioned automatically */
    const char *body; /* in-memory body, or NULL */
    size_t body_len;
    int body_fd; /* stream this fd as the body when >= 0 */
    const char *content_type;
    chunk_fn on_data; /* stream the response body here on 2xx */
    void *ctx;
    bool unversioned;
    /* when set: called once the request is sent, while the daemon works
     * on it (run connects its attach and wait connections there) */
    void (*sent)(client *c, int arg);
    int sent_arg;
} req;

int client_init(client *c, const char *host);
void client_free(client *c);
/* Connects n (at most 2) connections now, for the next requests that open
 * one: run connects its attach and wait while the daemon creates. */
void client_preconnect(client *c, int n);
/* Performs the request. Returns 0 when a response arrived (any status);
 * -1 on a connection failure (message already printed). */
int client_do(client *c, const req *rq, resp *r);
void resp_free(resp *r);
/* Negotiates the API version once per process (GET /_ping). */
int client_negotiate(client *c);
/* Prints docker's "Cannot connect ..." (or "error during connect: detail"). */
void client_conn_error(client *c, const char *detail);
/* Convenience: request + status check. On HTTP >= 400 prints
 * "Error response from daemon: ..." and returns -1. *out gets parsed JSON
 * when out is non-NULL and the body is JSON. */
int client_json(client *c, const char *method, const char *path, const json_t *body, json_t **out);
/* The daemon's message for an error response (malloc'd). */
char *resp_error_message(const resp *r);
/* Prints "Error response from daemon: <msg>" for an error response. */
void print_daemon_error(const resp *r);
/* URL-escapes s into a malloc'd string. */
char *url_escape(const char *s);
/* Appends "&key=escaped(value)" (or "?") to a path being built. */
void query_add(sbuf *path, const char *key, const char *value);

/* ---- flags (flags.c) ---- */
enum flag_type { FLAG_BOOL, FLAG_STRING, FLAG_LIST, FLAG_FILTER, FLAG_INT };

typedef struct strv {
    char **v;
    size_t n;
} strv;
void strv_add(strv *s, const char *v);
void strv_free(strv *s);

/* Checks (and may rewrite) a flag value as pflag's Value.Set does: returns
 * the value to store (malloc'd) or NULL with *why (malloc'd) set. */
typedef char *(*flag_conv)(const char *v, char **why);

typedef struct flag {
    const char *name; /* long name */
    char shorthand;   /* 0 when none */
    int type;
    void *ptr; /* bool *, char **, strv *, long long * */
    const char *usage;
    const char *defval;   /* shown as (default ...) in help, or NULL */
    const char *typename; /* help label for the value ("string", "filter" ...) */
    flag_conv conv;       /* optional, for FLAG_STRING and FLAG_LIST */
    bool *changed;        /* optional: set when the flag was given */
    bool hidden;          /* not listed in help */
} flag;

typedef struct cmd_def cmd_def;
typedef int (*cmd_fn)(client *c, const cmd_def *def, int argc, char **argv);

struct cmd_def {
    const char *path;    /* "image ls" */
    const char *args;    /* "[OPTIONS] [REPOSITORY[:TAG]]" */
    const char *desc;    /* one line */
    const char *aliases; /* "docker image ls, ..." form, or NULL */
    cmd_fn run;
    int min_args, max_args; /* max -1: unlimited */
    bool stop_at_arg;       /* flags end at the first positional (run, exec) */
};

/* Parses argv (after the command name) against flags. Returns the number
 * of positional arguments left in *pos (a NULL-terminated array allocated
 * by the caller's argv storage), or: -2 when --help was given (usage was
 * printed), -1 on a bad flag (message printed; exit 125). */
int flags_parse(const cmd_def *def, flag *flags, int argc, char **argv, char ***pos);
void print_usage(FILE *f, const cmd_def *def, const flag *flags);
/* Checks the positional count against def; prints docker's message. */
int check_args(const cmd_def *def, int nargs);
/* Runs flags_parse + check_args; returns -1 with *rc set when the caller
 * should exit with *rc. */
int parse_cmd(const cmd_def *def, flag *flags, int argc, char **argv, char ***pos, int *rc);

/* ---- output helpers (output.c) ---- */
/* Go's text/tabwriter with docker's settings (flags 0, padchar ' '). */
void tabwrite(FILE *out, const char *text, size_t len, int minwidth, int tabwidth, int padding);

/* docker's formatter.Context: "table ..." formats, {{json .}} shorthand,
 * header rows rendered by running the template on header names. */
typedef struct formatter {
    char *format; /* effective template text */
    bool table;
    tmpl *t;
    const char *sname;   /* Go type name for unknown-field errors */
    const json_t *hints; /* optional Go type hints of the rows */
    sbuf buf;
    int rows;
} formatter;
/* Returns 0, or -1 after printing "template parsing error: ..." */
int formatter_init(formatter *f, const char *format, const char *sname);
/* Renders one row (an object of string fields); -1 after printing error. */
int formatter_row(formatter *f, const json_t *row, const json_t *json_self);
/* Writes header (for tables) and rows to stdout; frees f. */
void formatter_flush(formatter *f, const json_t *header);
void formatter_free(formatter *f);

/* "sha256:abc..." -> "abc..." truncated to 12. */
void short_id(const char *id, char *out, size_t n);
/* go-units HumanSizeWithPrecision(size, prec) */
void size_human(double bytes, int prec, char *out, size_t n);
/* go-units BytesSize (binary units: 23.54GiB) */
void size_bytes(double bytes, char *out, size_t n);
/* "<duration> ago" from a unix time */
void since_human(int64_t unix_secs, char *out, size_t n);
/* Go's time.Time.String() in local time: 2024-01-02 03:04:05 +0000 UTC */
void go_time_string(int64_t unix_secs, char *out, size_t n);
/* Go's RFC3339 in local time (seconds), e.g. 2024-01-02T03:04:05Z */
void go_time_rfc3339(int64_t unix_secs, char *out, size_t n);
/* Go's json.Indent(raw, "", "    ") appended to out. */
void json_indent(sbuf *out, const char *raw, size_t len);
/* Splits a byte stream into JSON values; returns consumed bytes. */
typedef void (*json_value_fn)(void *ctx, json_t *v);
size_t json_stream_feed(const char *data, size_t len, json_value_fn fn, void *ctx);

/* jsonmessage display state: prints docker's progress stream. */
typedef struct jsonmsg {
    sbuf pending;
    bool tty;
    bool on_progress_line; /* the cursor is after a progress line */
    char *error;           /* first error message seen */
    FILE *out;
    void (*on_msg)(struct jsonmsg *m, json_t *msg); /* optional hook */
    void *user;
} jsonmsg;
bool jsonmsg_feed(void *ctx, const char *data, size_t n);
void jsonmsg_print(jsonmsg *m, json_t *msg);

/* s with every `from` replaced by `to` (malloc'd). */
char *replace_all(const char *s, const char *from, const char *to);
/* Reads a yes/no answer after printing the prompt; true for y/Y/yes. */
bool prompt_confirm(const char *message);
/* strerror(e) worded as Go prints it ("no such file or directory"). */
const char *go_strerror(int e);
/* Prints "msg\n" to stderr. */
void errorf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Converts docker's --since/--until values to the API's seconds.nanos form. */
char *time_arg_to_api(const char *s);

/* Validates a name[:tag] image reference like docker's
 * ParseNormalizedNamed: NULL when valid (then *name is the familiar name and
 * *tag the tag or NULL, both malloc'd), "digest" for name@digest, else the
 * error text. (cmd_images.c) */
const char *ref_check(const char *ref, char **name, char **tag);

/* One `images` row (docker's imageContext fields, all strings) for image
 * summary im under repo/tag/digest; trunc shortens the ID. (cmd_images.c) */
json_t *image_row(const json_t *im, const char *repo, const char *tag, const char *digest,
                  bool trunc);

/* ---- connections (http.c), hijacked streams, terminals (stream.c) ---- */
typedef struct hconn {
    int fd;
    sbuf in;    /* bytes received */
    size_t off; /* consumed up to here */
    long status;
    long long clen; /* Content-Length, -1 when absent */
    bool chunked;
    char *content_type;
    char api_version[16]; /* the API-Version header */
    bool close;           /* HTTP/1.0, Connection: close or a body up to EOF */
    bool no_body;         /* the request was HEAD */
    bool done;            /* the response body was read to its end */
    bool eof;             /* the peer closed the connection */
} hconn;
/* Connects and writes one request (versioned path); -1 after an error message. */
int hconn_request(client *c, hconn *h, const char *method, const char *path, const char *ctype,
                  const char *body, bool upgrade);
int hconn_open(client *c, hconn *h);
/* Reads the status line and headers (timeout_ms -1: no limit). */
int hconn_head(hconn *h, int timeout_ms);
/* Reads the whole body (Content-Length, chunked or up to EOF). */
int hconn_body(hconn *h, sbuf *out);
/* The daemon's message of an error response whose head was read. */
char *hconn_error(hconn *h);
void hconn_close(hconn *h);
/* POSTs path with "Upgrade: tcp"; 0 when the stream is ours (101/200).
 * On an HTTP error returns -1 with *status and *err (malloc'd message). */
int hijack(client *c, hconn *h, const char *path, const char *json_body, long *status, char **err);

/* Docker's stdcopy: frames to fds 1 and 2; -1 on a write or stream error. */
typedef struct demux {
    unsigned char hdr[8];
    size_t hlen, left;
    int stream;
    sbuf syserr;
} demux;
int demux_feed(demux *d, const char *p, size_t n);
void demux_free(demux *d);

/* term.ToBytes: "ctrl-p,ctrl-q" -> bytes. */
int detach_keys_parse(const char *spec, unsigned char *out, size_t max, size_t *n, char **err);
int tty_raw(int fd);
void tty_restore(void);
/* POST base/resize with the size of our stdout terminal (+ extra rows
 * and columns: attach first resizes one larger to force a redraw). */
void tty_resize(client *c, const char *base, int extra);

typedef struct pump_opts {
    bool tty;                /* raw stream (else 8-byte frames) */
    int in_fd;               /* stdin to send, -1 for none */
    bool output;             /* stdout or stderr attached */
    const char *detach_keys; /* tty input only; NULL: ctrl-p,ctrl-q */
    client *c;
    const char *resize_base; /* "/containers/ID" or "/exec/ID": follow SIGWINCH */
    const char *proxy_id;    /* forward signals to this container */
} pump_opts;
enum { PUMP_ERROR = -1, PUMP_EOF = 0, PUMP_DETACHED = 1 };
/* Copies stdin to the stream and the stream to stdout/stderr until the
 * stream ends or the detach keys are typed; the terminal is put in raw
 * mode meanwhile when tty and stdin is one. */
int stream_pump(hconn *h, const pump_opts *o);

/* ---- commands ---- */
extern const cmd_def cmd_defs[]; /* NULL-path terminated, in main.c */
int run_version(client *c, const cmd_def *def, int argc, char **argv);
int run_info(client *c, const cmd_def *def, int argc, char **argv);
int run_df(client *c, const cmd_def *def, int argc, char **argv);
int run_events(client *c, const cmd_def *def, int argc, char **argv);
int run_images(client *c, const cmd_def *def, int argc, char **argv);
int run_history(client *c, const cmd_def *def, int argc, char **argv);
int run_tag(client *c, const cmd_def *def, int argc, char **argv);
int run_rmi(client *c, const cmd_def *def, int argc, char **argv);
int run_image_prune(client *c, const cmd_def *def, int argc, char **argv);
int run_inspect(client *c, const cmd_def *def, int argc, char **argv);
int run_image_inspect(client *c, const cmd_def *def, int argc, char **argv);
int run_import(client *c, const cmd_def *def, int argc, char **argv);
int run_save(client *c, const cmd_def *def, int argc, char **argv);
int run_load(client *c, const cmd_def *def, int argc, char **argv);
/* containers: cmd_run.c, cmd_container.c, cmd_ps.c, cmd_logs.c, cmd_exec.c,
 * cmd_stats.c, cmd_cp.c, cmd_inspect.c */
int run_run(client *c, const cmd_def *def, int argc, char **argv);
int run_create(client *c, const cmd_def *def, int argc, char **argv);
int run_start(client *c, const cmd_def *def, int argc, char **argv);
int run_attach(client *c, const cmd_def *def, int argc, char **argv);
int run_stop(client *c, const cmd_def *def, int argc, char **argv);
int run_kill(client *c, const cmd_def *def, int argc, char **argv);
int run_restart(client *c, const cmd_def *def, int argc, char **argv);
int run_pause(client *c, const cmd_def *def, int argc, char **argv);
int run_unpause(client *c, const cmd_def *def, int argc, char **argv);
int run_wait(client *c, const cmd_def *def, int argc, char **argv);
int run_rm(client *c, const cmd_def *def, int argc, char **argv);
int run_ps(client *c, const cmd_def *def, int argc, char **argv);
int run_logs(client *c, const cmd_def *def, int argc, char **argv);
int run_exec(client *c, const cmd_def *def, int argc, char **argv);
int run_top(client *c, const cmd_def *def, int argc, char **argv);
int run_stats(client *c, const cmd_def *def, int argc, char **argv);
int run_container_inspect(client *c, const cmd_def *def, int argc, char **argv);
int run_rename(client *c, const cmd_def *def, int argc, char **argv);
int run_update(client *c, const cmd_def *def, int argc, char **argv);
int run_cp(client *c, const cmd_def *def, int argc, char **argv);
int run_diff(client *c, const cmd_def *def, int argc, char **argv);
int run_export(client *c, const cmd_def *def, int argc, char **argv);
int run_commit(client *c, const cmd_def *def, int argc, char **argv);
int run_port(client *c, const cmd_def *def, int argc, char **argv);
int run_container_prune(client *c, const cmd_def *def, int argc, char **argv);
/* GET /containers/{name}/json; NULL after printing "Error: No such
 * container: name" or the daemon's error. (cmd_run.c) */
json_t *inspect_container(client *c, const char *name);

#endif
