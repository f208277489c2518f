/*
 * bench/compare/peer_topic.c: libtopic, as its README shows it.
 *
 * Unsynced rows: topic_open(dir, TOPIC_CREATE, NULL), the default config
 * (flush.messages=0, flush.ms=1000).  Durable rows: flush.messages=1, so
 * topic_append returns once its record is on stable storage.  The key is
 * the offset topic_append hands out.
 *
 * SPDX-License-Identifier: BSD-2-Clause
 */
#include <stdlib.h>

#include "topic.h"
#include "compare.h"

struct th {
    topic *t;
    topic_record recs[BATCH_N];
};

#define TCHECK(what, call)                                                    \
    do {                                                                      \
        int rc_ = (call);                                                     \
        if (rc_ != 0)                                                         \
            die("libtopic: %s: %s (%d)", what, topic_strerror(rc_), rc_);     \
    } while (0)

static const char *t_version(void)
{
    return topic_version();
}

static const char *t_settings(enum peer_mode mode)
{
    return mode == MODE_FAST
        ? "topic_open(TOPIC_CREATE) with the default config (flush.messages=0, flush.ms=1000, "
          "segment.bytes=1G, no compression); topic_append per record, topic_append_batch "
          "per batch; cursor scan; topic_read"
        : "flush.messages=1: every append on stable storage before it returns; "
          "durable4 shares one topic* (appends are serialised inside, group commit)";
}

static void *t_open(const char *dir, enum peer_mode mode, bool create)
{
    struct th *h = calloc(1, sizeof *h);
    if (!h)
        die("out of memory");
    topic_config *conf = NULL;
    if (mode == MODE_DURABLE) {
        conf = topic_config_new();
        if (!conf)
            die("out of memory");
        if (topic_config_set(conf, "flush.messages", "1") != 0)
            die("libtopic: flush.messages: %s", topic_config_error(conf));
    }
    TCHECK("topic_open", topic_open(dir, create ? TOPIC_CREATE : 0, conf, &h->t));
    topic_config_free(conf);
    return h;
}

static void t_close(void *p)
{
    struct th *h = p;
    TCHECK("topic_close", topic_close(h->t));
    free(h);
}

static uint64_t t_append(void *p, const void *value, size_t len)
{
    struct th *h = p;
    uint64_t off;
    TCHECK("topic_append", topic_append(h->t, value, len, &off));
    return off;
}

static uint64_t t_append_batch(void *p, const void *const *values, size_t len, size_t n)
{
    struct th *h = p;
    for (size_t i = 0; i < n; i++) {
        h->recs[i].offset = 0;
        h->recs[i].timestamp = 0;
        h->recs[i].key = NULL;
        h->recs[i].key_len = 0;
        h->recs[i].value = values[i];
        h->recs[i].value_len = len;
    }
    uint64_t first;
    TCHECK("topic_append_batch", topic_append_batch(h->t, h->recs, n, &first));
    return first;
}

static uint64_t t_end(void *p)
{
    struct th *h = p;
    return topic_end_offset(h->t);
}

static size_t t_get(void *p, uint64_t key, void *buf, size_t cap)
{
    struct th *h = p;
    size_t len = 0;
    int rc = topic_read(h->t, key, buf, cap, &len);
    if (rc == TOPIC_END)
        return NOT_FOUND;
    TCHECK("topic_read", rc);
    return len;
}

static uint64_t t_scan(void *p, size_t len)
{
    struct th *h = p;
    topic_cursor *c;
    TCHECK("topic_cursor_open", topic_cursor_open(h->t, topic_start_offset(h->t), &c));
    uint64_t i = 0;
    topic_record rec;
    int rc;
    while ((rc = topic_cursor_next(c, &rec)) == 0) {
        check_value("libtopic", i, rec.offset, rec.value, rec.value_len, len);
        i++;
    }
    if (rc != TOPIC_END)
        die("libtopic: topic_cursor_next: %s (%d)", topic_strerror(rc), rc);
    topic_cursor_close(c);
    return i;
}

const struct peer_ops peer_topic = {
    .name = "libtopic",
    .id = "topic",
    .version = t_version,
    .settings = t_settings,
    .open = t_open,
    .close = t_close,
    .append = t_append,
    .append_batch = t_append_batch,
    .end = t_end,
    .get = t_get,
    .scan = t_scan,
};
