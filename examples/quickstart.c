/*
 * quickstart: a first tour of libtopic.
 *
 * Creates a topic in a directory (the first argument, /tmp/libtopic-demo by
 * default), appends a few records one by one and a batch of keyed records as
 * one unit, reads one record back by its offset, then walks the whole log
 * with a cursor and prints every record.  Every call is checked; on failure
 * the program prints what went wrong and exits with status 1.
 *
 * Build and run it from the top of the source tree:
 *
 *     make demo
 *
 * which removes /tmp/libtopic-demo first.  Run it again without removing the
 * directory and the new records continue the offsets where the last run
 * stopped: a topic keeps its records across runs.
 *
 * SPDX-License-Identifier: BSD-2-Clause
 */
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <topic.h>

/*
 * Reports a failed call.  Every int-returning libtopic function returns 0 on
 * success and a negative code on failure; topic_strerror() turns any code,
 * the library's own or a negated errno, into a message.
 */
static void report(const char *what, int rc)
{
    fprintf(stderr, "quickstart: %s: %s\n", what, topic_strerror(rc));
}

/* Formats a timestamp in milliseconds since the epoch as UTC time. */
static void format_time(int64_t ms, char *buf, size_t cap)
{
    time_t secs = (time_t)(ms / 1000);
    struct tm tm;

    if (gmtime_r(&secs, &tm) == NULL ||
        strftime(buf, cap, "%Y-%m-%d %H:%M:%S", &tm) == 0) {
        snprintf(buf, cap, "%" PRId64 " ms", ms);
        return;
    }
    snprintf(buf + strlen(buf), cap - strlen(buf), ".%03d", (int)(ms % 1000));
}

/* Prints bytes that are text in this demo; "-" stands for a missing key. */
static void print_bytes(const void *p, size_t len, int width)
{
    if (p == NULL) {
        printf("%-*s", width, "-");
        return;
    }
    printf("%-*.*s", width, len > INT_MAX ? INT_MAX : (int)len, (const char *)p);
}

/* Appends a few records one at a time: each gets the next offset. */
static int append_singles(topic *t)
{
    static const char *const values[] = {
        "hello, world",
        "a topic is an append-only log",
        "every record gets the next offset",
    };

    for (size_t i = 0; i < sizeof(values) / sizeof(values[0]); i++) {
        uint64_t offset;
        /* No key, timestamp "now".  The library copies the bytes. */
        int rc = topic_append(t, values[i], strlen(values[i]), &offset);
        if (rc != 0) {
            report("topic_append", rc);
            return rc;
        }
        printf("appended offset %" PRIu64 ": \"%s\"\n", offset, values[i]);
    }
    return 0;
}

/*
 * Appends three keyed records as one batch: after any crash either all three
 * are in the topic or none is.  Returns the offset of the first in *first.
 */
static int append_batch(topic *t, uint64_t *first)
{
    static const char *const kv[][2] = {
        { "sensor-1", "temperature=21.5" },
        { "sensor-2", "temperature=19.0" },
        { "sensor-1", "temperature=21.7" },
    };
    topic_record recs[3];

    memset(recs, 0, sizeof(recs));      /* offset is ignored; timestamp 0 = now */
    for (size_t i = 0; i < 3; i++) {
        recs[i].key = kv[i][0];
        recs[i].key_len = strlen(kv[i][0]);
        recs[i].value = kv[i][1];
        recs[i].value_len = strlen(kv[i][1]);
    }

    int rc = topic_append_batch(t, recs, 3, first);
    if (rc != 0) {
        report("topic_append_batch", rc);
        return rc;
    }
    printf("appended a batch of 3 keyed records at offsets %" PRIu64 " to %" PRIu64 "\n",
           *first, *first + 2);
    return 0;
}

/* Reads the value of one record back by its offset with topic_read(). */
static int read_one(topic *t, uint64_t offset)
{
    char buf[256];
    size_t len;

    /* Fails with TOPIC_ETOOSMALL, and sets len, if the value does not fit. */
    int rc = topic_read(t, offset, buf, sizeof(buf), &len);
    if (rc != 0) {
        report("topic_read", rc);
        return rc;
    }
    /* Values are bytes, not strings: print exactly len of them. */
    printf("topic_read(%" PRIu64 ") returned %zu bytes: \"%.*s\"\n",
           offset, len, (int)len, buf);
    return 0;
}

/* Walks the whole log with a cursor, from the start offset to the end. */
static int print_all(topic *t)
{
    topic_cursor *cur;
    topic_record rec;
    char when[64];
    int rc;

    rc = topic_cursor_open(t, topic_start_offset(t), &cur);
    if (rc != 0) {
        report("topic_cursor_open", rc);
        return rc;
    }
    printf("\nall records:\n");
    printf("  %-6s  %-23s  %-8s  %s\n", "offset", "timestamp (UTC)", "key", "value");
    /*
     * rec's key and value point into memory the cursor owns; they stay valid
     * until the next call on the cursor, so print them before moving on.
     */
    while ((rc = topic_cursor_next(cur, &rec)) == 0) {
        format_time(rec.timestamp, when, sizeof(when));
        printf("  %-6" PRIu64 "  %-23s  ", rec.offset, when);
        print_bytes(rec.key, rec.key_len, 8);
        printf("  ");
        print_bytes(rec.value, rec.value_len, 0);
        printf("\n");
    }
    /* TOPIC_END means the cursor reached the end of the log: not an error. */
    if (rc == TOPIC_END)
        rc = 0;
    else
        report("topic_cursor_next", rc);
    topic_cursor_close(cur);    /* every cursor is closed before its topic */
    return rc;
}

int main(int argc, char **argv)
{
    const char *dir = argc > 1 ? argv[1] : "/tmp/libtopic-demo";
    topic *t;
    uint64_t first;
    int rc;

    printf("libtopic %s\n", topic_version());

    /*
     * Open the topic as its writer, creating the directory if it is missing.
     * NULL settings: defaults for a new topic, the stored ones otherwise.
     */
    rc = topic_open(dir, TOPIC_CREATE, NULL, &t);
    if (rc != 0) {
        fprintf(stderr, "quickstart: topic_open %s: %s\n", dir, topic_strerror(rc));
        return EXIT_FAILURE;
    }
    printf("opened topic %s (offsets %" PRIu64 " to %" PRIu64 ")\n\n",
           dir, topic_start_offset(t), topic_end_offset(t));

    rc = append_singles(t);
    if (rc == 0)
        rc = append_batch(t, &first);
    if (rc == 0)
        rc = read_one(t, first + 1);
    if (rc == 0)
        rc = print_all(t);
    if (rc == 0)
        printf("\nstart offset %" PRIu64 ", end offset %" PRIu64 "\n",
               topic_start_offset(t), topic_end_offset(t));

    /*
     * topic_close() syncs every appended record to stable storage, records a
     * clean shutdown and frees the handle, even when it reports an error.
     */
    int close_rc = topic_close(t);
    if (close_rc != 0) {
        report("topic_close", close_rc);
        return EXIT_FAILURE;
    }
    if (rc != 0)
        return EXIT_FAILURE;
    printf("closed %s\n", dir);
    return EXIT_SUCCESS;
}
