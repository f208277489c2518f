/*
 * topic(1), the command-line tool of libtopic: declarations shared by the
 * files of tools/.  Every subcommand lives in a cmd_*.c file and is reached
 * through the table in main.c.
 *
 * SPDX-License-Identifier: BSD-2-Clause
 */
#ifndef TOPIC_CLI_H
#define TOPIC_CLI_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/stat.h>

#include "topic.h"

/* Exit statuses, the same for every subcommand (see topic(1)). */
enum {
    TOOL_OK = 0,        /* success */
    TOOL_NOTFOUND = 1,  /* damage found, or the record/offset asked for does not exist */
    TOOL_USAGE = 2,     /* bad command line or setting */
    TOOL_FAIL = 3       /* any other failure */
};

/* ------------------------------------------------------------------------ */
/* Subcommands (cmd_*.c).  argv[0] is the subcommand's name.                 */

int cmd_create(int argc, char **argv);
int cmd_append(int argc, char **argv);
int cmd_read(int argc, char **argv);
int cmd_info(int argc, char **argv);
int cmd_verify(int argc, char **argv);
int cmd_recover(int argc, char **argv);
int cmd_delete_before(int argc, char **argv);
int cmd_config(int argc, char **argv);
int cmd_dump(int argc, char **argv);

/* ------------------------------------------------------------------------ */
/* Command-line options (util.c)                                             */

struct opt_spec {
    const char *name;       /* long name, without the dashes */
    char shortname;         /* 0 when there is none */
    bool has_arg;
    int id;                 /* returned by opt_next(); positive */
};

enum {
    OPT_DONE = -1,          /* no more arguments */
    OPT_POSITIONAL = -2,    /* *arg is a positional argument */
    OPT_ERROR = -3          /* a usage error, already reported */
};

struct opt_parser {
    int argc;
    char **argv;
    int i;                  /* next argument to look at */
    const char *cmd;        /* subcommand, for messages */
    const char *usage;      /* printed by --help */
    bool only_positional;   /* after "--" */
};

void opt_init(struct opt_parser *p, int argc, char **argv, const char *usage);
/* The next option's id with its argument in *arg, or one of OPT_*.  Handles
 * --help and -h itself: prints the usage on stdout and exits 0. */
int opt_next(struct opt_parser *p, const struct opt_spec *specs, const char **arg);

/* Prints "topic: CMD: message" and a hint to stderr; returns TOOL_USAGE. */
int usage_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* ------------------------------------------------------------------------ */
/* Errors (util.c)                                                            */

/* The exit status for a library error code. */
int exit_code_for(int err);
/* Prints "topic: <what>: <topic_strerror(err)>" to stderr; returns the exit
 * status that err calls for. */
int report(int err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Prints "topic: <message>" to stderr; returns `code`. */
int complain(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Opens a topic, reporting a failure; returns 0 or an exit status. */
int open_topic(const char *dir, int flags, const topic_config *conf, topic **out);
/* What open_topic() prints when topic_open(dir, flags, ...) returned rc
 * (not 0); returns the exit status. */
int report_open_failure(const char *dir, int flags, int rc);
/* Closes a topic, reporting a failure; returns 0 or an exit status. */
int close_topic(topic *t, const char *dir);
/* Flushes stdout; returns false (after reporting it, unless the reader went
 * away: EPIPE) when output could not be written. */
bool flush_stdout(void);
/* True once stdout has failed with EPIPE (the reader of a pipe is gone). */
bool stdout_broken(void);

/* ------------------------------------------------------------------------ */
/* Parsing and formatting (util.c)                                           */

/* Whole-string unsigned decimal numbers. */
bool parse_u64(const char *s, uint64_t *out);
/* Why parse_time() refused a time: with `skipped`, a well-formed local time
 * that the clocks of the local zone skip, and the zone's UTC offsets (in
 * seconds east) just before and just after the gap; with `unknown_zone`, a
 * local time when TZ names no zone this machine knows (the C library takes
 * it for UTC without a word). */
struct time_gap {
    bool skipped, unknown_zone;
    long before, after;
};
/* Milliseconds since the epoch, or an ISO-8601 date and time:
 * 2026-11-25, 2026-11-25T10:00, 2026-11-25T10:00:00.250Z, ...+01:00.
 * Without a zone the time is local time: a repeated wall time means its
 * earlier occurrence, a date alone the first instant of that local day.
 * On failure, *gap tells a well-formed local time that the zone skips from
 * text that is not a time at all. */
bool parse_time(const char *s, int64_t *ms, struct time_gap *gap);
/* "2026-11-25T10:00:00.000Z" (at least 25 bytes of room). */
void format_time(int64_t ms, char *buf, size_t cap);

bool utf8_valid(const uint8_t *p, size_t n);
/* Bytes as text: printable UTF-8 as is, '\\', control characters and
 * invalid bytes escaped (\n \t \r \\ \xHH); at most `max` input bytes
 * (SIZE_MAX: all). */
void put_escaped(FILE *f, const uint8_t *p, size_t n, size_t max);
/* A JSON string literal of valid UTF-8 bytes. */
void put_json_string(FILE *f, const uint8_t *p, size_t n);
void put_json_cstr(FILE *f, const char *s);
void put_base64(FILE *f, const uint8_t *p, size_t n);
/* `"name":"text"` for UTF-8 bytes, `"name_base64":"..."` for other bytes,
 * `"name":null` for NULL. */
void put_json_bytes(FILE *f, const char *name, const uint8_t *p, size_t n);

/* ------------------------------------------------------------------------ */
/* Settings (settings.c)                                                     */

/* The names of every setting this release knows, in display order. */
#define SETTING_COUNT 9
extern const char *const setting_names[SETTING_COUNT];

/*
 * The settings in force in topic DIR: its topic.conf applied over the
 * defaults.  *explicit_set gets bit i set when setting_names[i] is in the
 * file.  Returns 0, or a negative error (TOPIC_ECORRUPT when topic.conf does
 * not parse, *bad_line then saying which line, or is not a regular file).
 */
int settings_load(const char *dir, topic_config **out, unsigned *explicit_set, int *bad_line);
/* Why the last settings_load() that gave TOPIC_ECORRUPT refused topic.conf:
 * the line's problem, or that the file is not a regular file; "" if neither. */
const char *settings_error(void);
/* Reports a failure `rc` of settings_load() for DIR, with the line and the
 * reason when there are; returns the exit status. */
int settings_report(int rc, const char *dir, int bad_line);
/* True when the value prints as a JSON number. */
bool setting_is_number(const char *value);

/* ------------------------------------------------------------------------ */
/* Files of a topic directory, read directly (segfile.c)                     */

/*
 * Opens DIR/NAME, a file of a topic directory, for reading as the library
 * does: without following a symbolic link, and without blocking (opening a
 * FIFO would otherwise wait for a writer for ever).  Returns the descriptor
 * with *st filled in, or a negative error: TOPIC_ECORRUPT, with *not_regular
 * saying what the file is, when it is not a regular file (a FIFO, a
 * directory, a symbolic link...).
 */
int topic_file_open(const char *dir, const char *name, struct stat *st,
                    const char **not_regular);
/* What a file of this mode is when it is not a regular file ("a FIFO", "a
 * directory", ...); NULL for a regular file. */
const char *file_not_regular(mode_t mode);

struct seg_file {
    uint64_t base;            /* from the file name */
    char name[32];            /* "<20 digits>.log" */
    uint64_t size;            /* bytes in the file; 0 when it is not a regular file */
    const char *not_regular;  /* NULL, or what the file is instead (file_not_regular) */
};

/* The .log files of DIR in ascending base order, symbolic links not
 * followed; free *out with free(). */
int seg_list(const char *dir, struct seg_file **out, size_t *n);
/* File sizes of the segments' .index and .timeindex, 0 when missing. */
uint64_t seg_aux_size(const char *dir, const struct seg_file *s, const char *ext);
/* Prints "topic: CMD: DIR/NAME: not a regular file but ..." to stderr for
 * each of the n segment files that is not a regular file; returns how many. */
size_t seg_report_irregular(const char *cmd, const char *dir, const struct seg_file *segs,
                            size_t n);
/* The same for the segment file of DIR that holds `offset`, as it is now. */
void seg_report_irregular_at(const char *cmd, const char *dir, uint64_t offset);
/* Calls fn for every file of DIR that the library opens (segments, indexes,
 * topic.conf, topic.state, topic.wait) and that is not a regular file, with
 * its name and what it is instead; returns how many there were, or a
 * negative errno when DIR could not be listed to the end. */
long each_irregular_file(const char *dir,
                         void (*fn)(void *arg, const char *name, const char *kind), void *arg);
/* The same, reporting each as seg_report_irregular() does; CMD may be NULL.
 * For saying which file may be why the library found the topic damaged. */
long report_irregular_files(const char *cmd, const char *dir);

#endif /* TOPIC_CLI_H */
