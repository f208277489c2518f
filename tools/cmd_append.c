/*
 * topic append: records from standard input, one per line, or a whole file
 * as one record.
 *
 * Lines are appended in batches of whatever one read() brought in (so that a
 * fast producer gets large batches and an interactive one has every line
 * appended as soon as it is typed), each batch kept within
 * max.message.bytes, the limit on the keys and values of one batch.
 *
 * SPDX-License-Identifier: BSD-2-Clause
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"

static const char append_usage[] =
    "usage: topic append DIR [--key KEY] [--verbose]            < lines\n"
    "       topic append DIR [--key KEY] [--verbose] --file FILE\n"
    "\n"
    "Appends one record per line of standard input (without the newline; a\n"
    "last line without one counts too), or the whole of FILE as one record\n"
    "(\"-\" for standard input).  Lines are appended in batches, each of which\n"
    "is atomic; the records are durable once the command returns.\n"
    "\n"
    "  -k, --key KEY    give every record this key\n"
    "  -f, --file FILE  append the contents of FILE as a single record\n"
    "  -v, --verbose    print the offset of every record appended, one a line\n"
    "  -h, --help       show this help\n";

/* Records per batch at most, whatever their size. */
#define BATCH_RECORDS 65536
/* Bytes a batch aims at, at most: large batches are cheap to append, but a
 * batch larger than segment.bytes makes a segment of its own, so batches
 * stay below an eighth of a segment. */
#define BATCH_TARGET ((uint64_t)1 << 20)
/* What a record adds to a batch besides its key and value, about: three
 * varints (timestamp delta, key and value lengths). */
#define RECORD_OVERHEAD 12
/* Bytes asked of each read(). */
#define READ_CHUNK (1u << 20)

struct appender {
    topic *t;
    const uint8_t *key;
    size_t key_len;
    uint64_t max;             /* max.message.bytes */
    uint64_t target;          /* bytes of a batch, about, at most */
    bool verbose;
    uint64_t lines;           /* lines seen so far */
    uint64_t appended;
    topic_record *recs;
    size_t n;                 /* records waiting in recs */
    uint64_t bytes;           /* their keys and values */
    uint64_t est;             /* their size in a batch, about */
    uint64_t first_line;      /* line number of recs[0] */
};

static int append_records(struct appender *a, topic_record *recs, size_t n, uint64_t line)
{
    uint64_t first;
    int rc = topic_append_batch(a->t, recs, n, &first);
    if (rc == TOPIC_ETOOBIG && n > 1) {
        /* The settings changed under us, or our sum is off: halve. */
        size_t h = n / 2;
        rc = append_records(a, recs, h, line);
        return rc ? rc : append_records(a, recs + h, n - h, line + h);
    }
    if (rc < 0) {
        if (n == 1)
            return report(rc, "append: line %" PRIu64, line);
        return report(rc, "append: lines %" PRIu64 "-%" PRIu64, line, line + n - 1);
    }
    a->appended += n;
    if (a->verbose)
        for (size_t i = 0; i < n; i++)
            printf("%" PRIu64 "\n", first + i);
    return 0;
}

static int flush_pending(struct appender *a)
{
    if (a->n == 0)
        return 0;
    int rc = append_records(a, a->recs, a->n, a->first_line);
    a->n = 0;
    a->bytes = 0;
    a->est = 0;
    return rc;
}

static int add_line(struct appender *a, const uint8_t *p, size_t len)
{
    a->lines++;
    uint64_t size = a->key_len + (uint64_t)len;
    if (size > a->max) {
        /* The lines before it stay appended, as topic(1) promises, even
         * those that came in the same read and wait in the batch. */
        int rc = flush_pending(a);
        if (rc != 0)
            return rc;
        return report(TOPIC_ETOOBIG, "append: line %" PRIu64 " (%" PRIu64 " bytes with its key; "
                      "max.message.bytes is %" PRIu64 ")", a->lines, size, a->max);
    }
    if (a->n == BATCH_RECORDS || a->bytes + size > a->max ||
        (a->n > 0 && a->est + size + RECORD_OVERHEAD > a->target)) {
        int rc = flush_pending(a);
        if (rc != 0)
            return rc;
    }
    if (a->n == 0)
        a->first_line = a->lines;
    topic_record *r = &a->recs[a->n++];
    memset(r, 0, sizeof *r);
    r->key = a->key;
    r->key_len = a->key_len;
    r->value = p;
    r->value_len = len;
    a->bytes += size;
    a->est += size + RECORD_OVERHEAD;
    return 0;
}

static int append_lines(struct appender *a)
{
    a->recs = malloc(BATCH_RECORDS * sizeof *a->recs);
    size_t cap = READ_CHUNK, len = 0, scanned = 0;
    uint8_t *buf = malloc(cap);
    if (buf == NULL || a->recs == NULL) {
        free(buf);
        return report(-ENOMEM, "append");
    }
    int rc = 0;
    for (;;) {
        if (cap - len < READ_CHUNK / 4) {
            /* One line longer than the buffer: it may still be a record. */
            if (len > a->max) {
                rc = report(TOPIC_ETOOBIG, "append: line %" PRIu64 " (more than %" PRIu64
                            " bytes; max.message.bytes)", a->lines + 1, a->max);
                break;
            }
            uint8_t *nb = realloc(buf, cap * 2);
            if (nb == NULL) {
                rc = report(-ENOMEM, "append");
                break;
            }
            buf = nb;
            cap *= 2;
        }
        ssize_t got = read(STDIN_FILENO, buf + len, cap - len);
        if (got < 0) {
            if (errno == EINTR)
                continue;
            rc = report(-errno, "append: reading standard input");
            break;
        }
        if (got == 0)
            break;
        len += (size_t)got;
        /* Every whole line in the buffer, as one or more batches. */
        size_t start = 0;
        const uint8_t *nl;
        while (rc == 0 && (nl = memchr(buf + scanned, '\n', len - scanned)) != NULL) {
            size_t end = (size_t)(nl - buf);
            rc = add_line(a, buf + start, end - start);
            start = scanned = end + 1;
        }
        if (rc == 0)
            rc = flush_pending(a);
        if (rc != 0)
            break;
        memmove(buf, buf + start, len - start);
        len -= start;
        scanned = len;
    }
    if (rc == 0 && len > 0)
        rc = add_line(a, buf, len);
    if (rc == 0)
        rc = flush_pending(a);
    free(buf);
    free(a->recs);
    return rc;
}

/* Reads all of `path` ("-": standard input), refusing more than max bytes. */
static int read_whole(const char *path, uint64_t max, uint8_t **out, size_t *len)
{
    FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "rb");
    if (f == NULL)
        return report(-errno, "append: %s", path);
    size_t cap = 65536, n = 0;
    uint8_t *buf = malloc(cap);
    int rc = buf ? 0 : report(-ENOMEM, "append");
    while (rc == 0) {
        if (n == cap) {
            if (n > max) {
                rc = report(TOPIC_ETOOBIG, "append: %s (more than %" PRIu64
                            " bytes; max.message.bytes)", path, max);
                break;
            }
            uint8_t *nb = realloc(buf, cap * 2);
            if (nb == NULL) {
                rc = report(-ENOMEM, "append");
                break;
            }
            buf = nb;
            cap *= 2;
        }
        errno = 0;
        size_t got = fread(buf + n, 1, cap - n, f);
        n += got;
        if (got == 0) {
            /* fread() leaves read()'s errno: EISDIR for a directory. */
            if (ferror(f))
                rc = report(errno > 0 ? -errno : -EIO, "append: reading %s", path);
            break;
        }
    }
    if (f != stdin)
        fclose(f);
    if (rc != 0) {
        free(buf);
        return rc;
    }
    *out = buf;
    *len = n;
    return 0;
}

/* max.message.bytes of the topic, and the size batches aim at. */
static void load_limits(const char *dir, uint64_t *max, uint64_t *target)
{
    topic_config *c;
    unsigned set;
    int line;
    char v[64];
    uint64_t segment = (uint64_t)1 << 30;
    *max = 1u << 20;
    if (settings_load(dir, &c, &set, &line) == 0) {
        if (topic_config_get(c, "max.message.bytes", v, sizeof v) != 0 || !parse_u64(v, max))
            *max = 1u << 20;
        if (topic_config_get(c, "segment.bytes", v, sizeof v) != 0 || !parse_u64(v, &segment))
            segment = (uint64_t)1 << 30;
        topic_config_free(c);
    }
    *target = segment / 8 < BATCH_TARGET ? segment / 8 : BATCH_TARGET;
}

int cmd_append(int argc, char **argv)
{
    enum { O_KEY = 1, O_FILE, O_VERBOSE };
    static const struct opt_spec specs[] = {
        { "key", 'k', true, O_KEY },
        { "file", 'f', true, O_FILE },
        { "verbose", 'v', false, O_VERBOSE },
        { NULL, 0, false, 0 },
    };
    struct opt_parser p;
    opt_init(&p, argc, argv, append_usage);
    struct appender a;
    memset(&a, 0, sizeof a);
    const char *dir = NULL, *file = NULL, *arg;
    int id;
    while ((id = opt_next(&p, specs, &arg)) != OPT_DONE) {
        switch (id) {
        case OPT_ERROR:
            return TOOL_USAGE;
        case O_KEY:
            a.key = (const uint8_t *)arg;
            a.key_len = strlen(arg);
            break;
        case O_FILE:
            file = arg;
            break;
        case O_VERBOSE:
            a.verbose = true;
            break;
        default:
            if (dir != NULL)
                return usage_error("append", "unexpected argument '%s'", arg);
            dir = arg;
            break;
        }
    }
    if (dir == NULL)
        return usage_error("append", "missing DIR");
    int rc = open_topic(dir, 0, NULL, &a.t);
    if (rc != 0)
        return rc;
    load_limits(dir, &a.max, &a.target);
    if (file != NULL) {
        uint8_t *data = NULL;
        size_t len = 0;
        rc = read_whole(file, a.max, &data, &len);
        if (rc == 0) {
            topic_record r;
            memset(&r, 0, sizeof r);
            r.key = a.key;
            r.key_len = a.key_len;
            r.value = data;
            r.value_len = len;
            uint64_t off;
            int err = topic_append_batch(a.t, &r, 1, &off);
            if (err < 0)
                rc = report(err, "append: %s", file);
            else if (a.verbose)
                printf("%" PRIu64 "\n", off);
        }
        free(data);
    } else {
        rc = append_lines(&a);
    }
    int crc = close_topic(a.t, dir);
    return rc != 0 ? rc : crc;
}
