/* logs.h: reading json-file container logs; see logs.c. */
#ifndef BERTH_LOGS_H
#define BERTH_LOGS_H

#include <sys/types.h>

#include "common/util.h"

typedef struct logs_opts {
    bool out, err, timestamps, tty;
    int64_t since, until; /* ns; 0 = unset */
    long tail;            /* -1 = all */
} logs_opts;

/* Receives formatted output; non-zero stops (client gone). */
typedef int (*logs_sink)(void *arg, const void *p, size_t n);

/* Writes the existing log (rotated files first); *end_off is where the
 * current file ended, for logs_follow. */
int logs_write(const char *path, const logs_opts *o, logs_sink sink, void *arg, off_t *end_off);
/* Writes what was appended since *off (restarts at 0 after a rotation). */
int logs_follow(const char *path, off_t *off, const logs_opts *o, logs_sink sink, void *arg);
/* Docker's multiplexed frame header + payload. */
int logs_frame(sbuf *out, int stream, const void *p, size_t n);

#endif
