/*
 * topic read: print records from a position, like tail(1) with offsets, and
 * optionally follow new ones and commit a consumer group's position.
 *
 * The topic is opened read-only, so that reading never competes with the
 * writer (and works while one runs in another process).  With --commit the
 * position is committed only after the records before it have been written
 * out (stdout flushed): a crash or a closed pipe may print a record twice on
 * the next run, never skip one.
 *
 * SPDX-License-Identifier: BSD-2-Clause
 */
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"

static const char read_usage[] =
    "usage: topic read DIR [--from OFFSET | --from-time TIME] [--count N] [--follow]\n"
    "                      [--group GROUP [--commit]] [--json | --raw] [--keys]\n"
    "                      [--offsets] [--timestamps]\n"
    "\n"
    "Prints records, one value a line, from the start offset (or from a group's\n"
    "committed position) to the end, or forever with --follow.\n"
    "\n"
    "  -o, --from OFFSET     start at this offset\n"
    "  -t, --from-time TIME  start at the first record whose timestamp is >= TIME:\n"
    "                        milliseconds since the epoch, or ISO-8601 such as\n"
    "                        2026-11-25T10:00:00Z (local time without a zone)\n"
    "  -n, --count N         stop after N records\n"
    "  -F, --follow          at the end, wait for new records instead of stopping\n"
    "  -g, --group GROUP     without --from/--from-time, start at GROUP's committed\n"
    "                        position (the start offset if it has none; a damaged\n"
    "                        one needs --from or --from-time)\n"
    "  -c, --commit          commit GROUP's position after the records printed\n"
    "  -j, --json            one JSON object a record: offset, timestamp, key, value\n"
    "                        (key_base64 / value_base64 for bytes that are not UTF-8)\n"
    "  -r, --raw             print keys and values as they are, unescaped\n"
    "  -k, --keys            print each record's key before its value\n"
    "  -O, --offsets         print each record's offset first\n"
    "  -T, --timestamps      print each record's timestamp (ISO-8601, UTC)\n"
    "  -h, --help            show this help\n"
    "\n"
    "Fields are separated by a tab.  Unless --raw is given, backslashes, control\n"
    "characters, U+2028, U+2029, U+FEFF and bytes that are not UTF-8 are escaped\n"
    "as \\\\, \\n, \\t, \\r and \\xHH, so that every record takes exactly one line.\n";

struct reader {
    bool json, raw, keys, offsets, timestamps;
};

static volatile sig_atomic_t stop_requested;

static void on_signal(int sig)
{
    (void)sig;
    stop_requested = 1;
}

/* A UTC offset in seconds east as ISO 8601 writes it: "+05:30", "-04:00"
 * (with ":SS" for the odd local mean time of the nineteenth century). */
static void format_offset(long off, char *buf, size_t cap)
{
    char sign = off < 0 ? '-' : '+';
    long a = off < 0 ? -off : off;
    int h = (int)(a / 3600 % 100), m = (int)(a / 60 % 60), sec = (int)(a % 60);
    if (sec != 0)
        snprintf(buf, cap, "%c%02d:%02d:%02d", sign, h, m, sec);
    else
        snprintf(buf, cap, "%c%02d:%02d", sign, h, m);
}

static void print_record(const struct reader *r, const topic_record *rec)
{
    FILE *f = stdout;
    if (r->json) {
        fprintf(f, "{\"offset\":%" PRIu64 ",\"timestamp\":%" PRId64 ",", rec->offset,
                rec->timestamp);
        put_json_bytes(f, "key", rec->key, rec->key_len);
        fputc(',', f);
        put_json_bytes(f, "value", rec->value != NULL ? rec->value : "", rec->value_len);
        fputs("}\n", f);
        return;
    }
    if (r->offsets)
        fprintf(f, "%" PRIu64 "\t", rec->offset);
    if (r->timestamps) {
        char ts[40];
        format_time(rec->timestamp, ts, sizeof ts);
        fprintf(f, "%s\t", ts);
    }
    if (r->keys) {
        if (rec->key != NULL) {
            if (r->raw)
                fwrite(rec->key, 1, rec->key_len, f);
            else
                put_escaped(f, rec->key, rec->key_len, SIZE_MAX);
        }
        fputc('\t', f);
    }
    if (r->raw)
        fwrite(rec->value, 1, rec->value_len, f);
    else
        put_escaped(f, rec->value, rec->value_len, SIZE_MAX);
    fputc('\n', f);
}

/* Writes out what was printed, then commits `offset` for the group. */
static int commit(topic *t, const char *group, uint64_t offset, uint64_t *committed)
{
    if (!flush_stdout())
        return stdout_broken() ? TOOL_OK : TOOL_FAIL;
    if (offset == *committed)
        return TOOL_OK;
    int rc = topic_commit(t, group, offset);
    if (rc < 0)
        return report(rc, "read: committing offset %" PRIu64 " for group %s", offset, group);
    *committed = offset;
    return TOOL_OK;
}

/* Commits at least this often while records stream out. */
#define COMMIT_EVERY 1000
/* topic_wait() in slices this long, to notice a signal. */
#define WAIT_SLICE_MS 200

int cmd_read(int argc, char **argv)
{
    enum { O_FROM = 1, O_FROM_TIME, O_COUNT, O_FOLLOW, O_GROUP, O_COMMIT, O_JSON, O_RAW,
           O_KEYS, O_OFFSETS, O_TIMESTAMPS };
    static const struct opt_spec specs[] = {
        { "from", 'o', true, O_FROM },
        { "from-time", 't', true, O_FROM_TIME },
        { "count", 'n', true, O_COUNT },
        { "follow", 'F', false, O_FOLLOW },
        { "group", 'g', true, O_GROUP },
        { "commit", 'c', false, O_COMMIT },
        { "json", 'j', false, O_JSON },
        { "raw", 'r', false, O_RAW },
        { "keys", 'k', false, O_KEYS },
        { "offsets", 'O', false, O_OFFSETS },
        { "timestamps", 'T', false, O_TIMESTAMPS },
        { NULL, 0, false, 0 },
    };
    struct opt_parser p;
    opt_init(&p, argc, argv, read_usage);
    struct reader r = { false, false, false, false, false };
    const char *dir = NULL, *group = NULL, *arg;
    bool have_from = false, have_time = false, have_count = false, follow = false,
         do_commit = false;
    uint64_t from = 0, count = 0;
    int64_t from_time = 0;
    int id;
    while ((id = opt_next(&p, specs, &arg)) != OPT_DONE) {
        switch (id) {
        case OPT_ERROR:
            return TOOL_USAGE;
        case O_FROM:
            if (!parse_u64(arg, &from))
                return usage_error("read", "--from: '%s' is not an offset", arg);
            have_from = true;
            break;
        case O_FROM_TIME: {
            struct time_gap gap;
            if (!parse_time(arg, &from_time, &gap)) {
                if (gap.skipped) {
                    char before[16], after[16];
                    format_offset(gap.before, before, sizeof before);
                    format_offset(gap.after, after, sizeof after);
                    return usage_error("read", "--from-time: '%s' does not exist in the local "
                                       "time zone: the clocks skip it, moving from UTC%s to "
                                       "UTC%s (give the time with the UTC offset meant, %s "
                                       "or %s)", arg, before, after, before, after);
                }
                if (gap.unknown_zone)
                    return usage_error("read", "--from-time: '%s' is a local time, and TZ='%s' "
                                       "names no time zone known here (give the time with "
                                       "Z or its UTC offset, or set TZ to a zone such as "
                                       "Europe/Berlin)", arg, getenv("TZ"));
                return usage_error("read", "--from-time: '%s' is neither milliseconds nor an "
                                   "ISO-8601 time such as 2026-11-25T10:00:00Z", arg);
            }
            have_time = true;
            break;
        }
        case O_COUNT:
            if (!parse_u64(arg, &count))
                return usage_error("read", "--count: '%s' is not a number", arg);
            have_count = true;
            break;
        case O_FOLLOW: follow = true; break;
        case O_GROUP: group = arg; break;
        case O_COMMIT: do_commit = true; break;
        case O_JSON: r.json = true; break;
        case O_RAW: r.raw = true; break;
        case O_KEYS: r.keys = true; break;
        case O_OFFSETS: r.offsets = true; break;
        case O_TIMESTAMPS: r.timestamps = true; break;
        default:
            if (dir != NULL)
                return usage_error("read", "unexpected argument '%s'", arg);
            dir = arg;
            break;
        }
    }
    if (dir == NULL)
        return usage_error("read", "missing DIR");
    if (have_from && have_time)
        return usage_error("read", "--from and --from-time exclude each other");
    if (do_commit && group == NULL)
        return usage_error("read", "--commit needs --group");
    if (r.json && r.raw)
        return usage_error("read", "--json and --raw exclude each other");

    topic *t;
    int rc = open_topic(dir, TOPIC_RDONLY, NULL, &t);
    if (rc != 0)
        return rc;
    uint64_t start = topic_start_offset(t), end = topic_end_offset(t);
    uint64_t committed = UINT64_MAX;   /* what this run committed last */
    if (group != NULL) {
        uint64_t pos;
        int err = topic_committed(t, group, &pos);
        if (err == -EINVAL) {
            topic_close(t);
            return usage_error("read", "'%s' is not a group name (1 to 128 letters, digits, "
                               "'.', '_' or '-', not starting with '.')", group);
        }
        if (err == 0) {
            committed = pos;
            if (!have_from && !have_time && pos > end) {
                /* Starting there, even to follow, would skip the records
                 * given those offsets later without a word. */
                rc = complain(TOOL_NOTFOUND, "read: group %s: committed offset %" PRIu64
                              " is past the end offset %" PRIu64 " (left by a power loss "
                              "after the commit, or by restoring an older copy of the "
                              "topic); give --from or --from-time to choose where to start",
                              group, pos, end);
            } else if (!have_from && !have_time) {
                from = pos;
                if (from < start) {
                    fprintf(stderr, "topic: read: group %s: committed offset %" PRIu64
                            " was deleted; starting at the start offset %" PRIu64 "\n",
                            group, pos, start);
                    from = start;
                }
                have_from = true;
            }
        } else if (err == TOPIC_ECORRUPT && (have_from || have_time)) {
            /* The caller says where to start; --commit gives the group a
             * new file with its new position. */
            fprintf(stderr, "topic: read: group %s: the committed position is damaged; "
                    "starting where asked\n", group);
        } else if (err == TOPIC_ECORRUPT) {
            rc = complain(TOOL_NOTFOUND, "read: group %s: the committed position is damaged; "
                          "give --from or --from-time to choose where to start", group);
        } else if (err != -ENOENT) {
            rc = report(err, "read: group %s", group);
        }
    }
    if (rc == 0 && !have_from && !have_time)
        from = start;
    if (rc == 0 && !follow && have_from && from > end)
        rc = complain(TOOL_NOTFOUND, "read: offset %" PRIu64 ": %s (the end offset is %" PRIu64
                      ")", from, topic_strerror(TOPIC_END), end);
    topic_cursor *c = NULL;
    if (rc == 0) {
        int err = topic_cursor_open(t, have_time ? start : from, &c);
        if (err == 0 && have_time) {
            err = topic_cursor_seek_time(c, from_time);
            /* The records before the start offset are gone even when a
             * segment still holds them. */
            if (err == 0 && topic_cursor_offset(c) < topic_start_offset(t))
                err = topic_cursor_seek(c, topic_start_offset(t));
        }
        if (err < 0)
            rc = err == TOPIC_EGONE && !have_time
                     ? complain(TOOL_NOTFOUND, "read: offset %" PRIu64 ": %s (the start offset "
                                "is %" PRIu64 ")", from, topic_strerror(err), topic_start_offset(t))
                     : report(err, "read");
    }

    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    if (follow) {
        sigaction(SIGINT, &sa, NULL);
        sigaction(SIGTERM, &sa, NULL);
    }
    uint64_t printed = 0, since_commit = 0;
    while (rc == 0 && (!have_count || printed < count) && !stop_requested) {
        topic_record rec;
        int err = topic_cursor_next(c, &rec);
        if (err == 0) {
            print_record(&r, &rec);
            if (ferror(stdout)) {
                if (errno == EPIPE)
                    break;   /* the reader is gone: stop quietly, commit nothing more */
                rc = report(-errno, "read: writing to standard output");
                break;
            }
            printed++;
            if (do_commit && ++since_commit >= COMMIT_EVERY) {
                rc = commit(t, group, topic_cursor_offset(c), &committed);
                since_commit = 0;
            }
            continue;
        }
        if (err != TOPIC_END) {
            uint64_t at = topic_cursor_offset(c);
            if (err == TOPIC_EGONE)
                rc = complain(TOOL_NOTFOUND, "read: offset %" PRIu64 ": %s (the start offset "
                              "is now %" PRIu64 ")", at, topic_strerror(err),
                              topic_start_offset(t));
            else
                rc = report(err, "read: offset %" PRIu64, at);
            /* A FIFO or the like is damage; a symbolic link, which the
             * library does not follow, fails its open with -ELOOP. */
            if (err == TOPIC_ECORRUPT || err == -ELOOP)
                seg_report_irregular_at("read", dir, at);
            break;
        }
        /* At the end: write out and commit what was printed, then wait. */
        if (do_commit)
            rc = commit(t, group, topic_cursor_offset(c), &committed);
        else if (!flush_stdout())
            rc = stdout_broken() ? TOOL_OK : TOOL_FAIL;
        if (rc != 0 || stdout_broken() || !follow)
            break;
        while (!stop_requested) {
            int w = topic_wait(t, topic_cursor_offset(c), WAIT_SLICE_MS);
            if (w == 0)
                break;
            if (w != -ETIMEDOUT && w != -EINTR) {
                rc = report(w, "read: waiting for offset %" PRIu64, topic_cursor_offset(c));
                break;
            }
        }
    }
    if (rc == 0 && c != NULL && !stdout_broken() && !ferror(stdout)) {
        if (do_commit)
            rc = commit(t, group, topic_cursor_offset(c), &committed);
        else if (!flush_stdout())
            rc = stdout_broken() ? TOOL_OK : TOOL_FAIL;
    }
    topic_cursor_close(c);
    int crc = close_topic(t, dir);
    return rc != 0 ? rc : crc;
}
