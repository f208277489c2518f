/*
 * The forwarder: a local topic, read from a consumer group's position, into
 * a Kafka topic through an idempotent producer.
 *
 * The acknowledgement window.  Records are produced in offset order; their
 * delivery reports come back in order within a Kafka partition but in any
 * order across partitions.  The window holds one bit per record produced and
 * not yet folded into the committed position: `base` is the lowest offset
 * not acknowledged, `next` the next offset to produce, and the bit of offset
 * o (at o mod cap) is set once o is acknowledged.  Each acknowledgement sets
 * its bit, then base moves up over set bits, clearing them.  The group's
 * position is committed at base, so everything below it is in Kafka.  When
 * next - base reaches the window's capacity, reading waits for base to move.
 *
 * A record whose delivery fails for good stops the forwarder: base can never
 * pass it, and producing it again would put it behind later records of its
 * key.  Everything runs in the thread that calls run(): delivery reports and
 * client errors are served by rd_kafka_poll() from the loop below.  Only the
 * counters, read by *_stats() from other threads, are atomic.
 *
 * SPDX-License-Identifier: BSD-2-Clause
 */
#include <errno.h>
#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

#define WINDOW_BITS      (1u << 20)  /* the most records in flight */
#define POLL_EVERY       256         /* records produced between two polls */
#define IDLE_WAIT_MS     100         /* longest sleep: the stop flag's latency */
#define BUSY_WAIT_MS     10          /* sleep while waiting on acknowledgements */

struct topic_kafka_forwarder {
    topic *t;
    topic_cursor *cur;
    char group[TK_GROUP_MAX + 1];
    rd_kafka_t *rk;
    rd_kafka_topic_t *rkt;
    int64_t flush_timeout_ms;
    bool skip_deleted;

    uint64_t base, next;         /* the window, see above */
    uint64_t *bits;
    uint64_t committed;          /* what was last committed (or found committed) */
    bool have_committed;         /* the group has a committed position */
    bool made;                   /* topic_kafka_forwarder_new() succeeded */
    int failure;                 /* sticky: returned by every later run() */

    _Atomic uint64_t st_produced, st_acked, st_failed, st_skipped, st_position,
        st_committed;
    struct tk_msg err;           /* message of `failure` */
    struct tk_msg note;          /* last transient client error */
};

/* ------------------------------------------------------------------------ */
/* The window                                                                */

static bool bit_get(const topic_kafka_forwarder *f, uint64_t o)
{
    uint64_t i = o & (WINDOW_BITS - 1);
    return (f->bits[i / 64] >> (i % 64)) & 1;
}

static void bit_put(topic_kafka_forwarder *f, uint64_t o, bool on)
{
    uint64_t i = o & (WINDOW_BITS - 1), m = (uint64_t)1 << (i % 64);
    if (on)
        f->bits[i / 64] |= m;
    else
        f->bits[i / 64] &= ~m;
}

static void acked(topic_kafka_forwarder *f, uint64_t o)
{
    bit_put(f, o, true);
    while (f->base < f->next && bit_get(f, f->base)) {
        bit_put(f, f->base, false);
        f->base++;
    }
}

static uint64_t in_flight(const topic_kafka_forwarder *f)
{
    return atomic_load(&f->st_produced) - atomic_load(&f->st_acked) -
        atomic_load(&f->st_failed);
}

static void fail(topic_kafka_forwarder *f, int rc, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void fail(topic_kafka_forwarder *f, int rc, const char *fmt, ...)
{
    if (f->failure != 0)
        return;     /* the first failure is the one to report */
    f->failure = rc;
    va_list ap;
    va_start(ap, fmt);
    tk_msg_vset(&f->err, fmt, ap);
    va_end(ap);
}

/* Commits the group's position at base if it moved. */
static int commit(topic_kafka_forwarder *f)
{
    if (f->have_committed && f->base <= f->committed)
        return 0;
    int rc = topic_commit(f->t, f->group, f->base);
    if (rc < 0) {
        fail(f, rc, "committing position %" PRIu64 " of group %s: %s", f->base, f->group,
             topic_strerror(rc));
        return rc;
    }
    f->committed = f->base;
    f->have_committed = true;
    atomic_store(&f->st_committed, f->base);
    return 0;
}

/* Serves delivery reports for up to timeout_ms, then commits. */
static void poll_commit(topic_kafka_forwarder *f, int timeout_ms)
{
    rd_kafka_poll(f->rk, timeout_ms);
    commit(f);
}

/* ------------------------------------------------------------------------ */
/* Callbacks, run inside rd_kafka_poll()                                     */

static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    (void)rk;
    topic_kafka_forwarder *f = opaque;
    /* The opaque carries the offset's low 32 bits; every record in flight
     * lies in [base, base + WINDOW_BITS), which they determine. */
    uint32_t low = (uint32_t)(uintptr_t)m->_private;
    uint64_t o = f->base + (uint32_t)(low - (uint32_t)f->base);
    if (m->err == RD_KAFKA_RESP_ERR_NO_ERROR) {
        atomic_fetch_add(&f->st_acked, 1);
        acked(f, o);
        return;
    }
    atomic_fetch_add(&f->st_failed, 1);
    if (m->err == RD_KAFKA_RESP_ERR__PURGE_QUEUE || m->err == RD_KAFKA_RESP_ERR__PURGE_INFLIGHT)
        return;     /* dropped on purpose by free(): produced again next time */
    if (m->err == RD_KAFKA_RESP_ERR__FATAL) {
        char why[256];
        rd_kafka_fatal_error(f->rk, why, sizeof why);
        fail(f, TOPIC_KAFKA_EFATAL, "Kafka producer failed: %s", why);
        return;
    }
    fail(f, TOPIC_KAFKA_EDELIVERY, "record at offset %" PRIu64 " not delivered to %s: %s", o,
         rd_kafka_topic_name(m->rkt), rd_kafka_err2str(m->err));
}

static void on_error(rd_kafka_t *rk, int err, const char *reason, void *opaque)
{
    topic_kafka_forwarder *f = opaque;
    if (err == RD_KAFKA_RESP_ERR__FATAL) {
        char why[256];
        rd_kafka_fatal_error(rk, why, sizeof why);
        fail(f, TOPIC_KAFKA_EFATAL, "Kafka producer failed: %s", why);
    } else {
        tk_msg_set(&f->note, "%s", reason);
    }
}

/* ------------------------------------------------------------------------ */
/* Making one                                                                */

/* Applies the defaults, then the caller's properties, to conf and f. */
static int configure(topic_kafka_forwarder *f, rd_kafka_conf_t *conf, const char *brokers,
                     const char *const *props, char *errbuf, size_t errlen)
{
    static const char *const defaults[][2] = {
        { "enable.idempotence", "true" },
        { "acks", "all" },
        { "enable.gapless.guarantee", "true" },
        { "partitioner", "murmur2" },
        /* Otherwise records without a key are spread over partitions. */
        { "sticky.partitioning.linger.ms", "0" },
        { "message.timeout.ms", "0" },
        { "client.id", "libtopic-forward" },
        /* librdkafka's 1000000 is below the topic's own default limit,
         * max.message.bytes = 1 MiB: a record the topic took would stop
         * the forwarder before any broker saw it.  The broker's own limit
         * (message.max.bytes, 1048588 by default) still applies. */
        { "message.max.bytes", "1100000" },
    };
    int rc = tk_conf_set(conf, "bootstrap.servers", brokers, errbuf, errlen);
    for (size_t i = 0; rc == 0 && i < sizeof defaults / sizeof defaults[0]; i++)
        rc = tk_conf_set(conf, defaults[i][0], defaults[i][1], errbuf, errlen);
    for (size_t i = 0; rc == 0 && props && props[i]; i++) {
        struct tk_prop p;
        int64_t v;
        if ((rc = tk_prop_split(props[i], &p, errbuf, errlen)) < 0)
            break;
        if (strcmp(p.name, "libtopic.flush.timeout.ms") == 0) {
            rc = tk_parse_i64(p.name, p.value, 0, INT32_MAX, &v, errbuf, errlen);
            f->flush_timeout_ms = v;
        } else if (strcmp(p.name, "libtopic.skip.deleted") == 0) {
            rc = tk_parse_bool(p.name, p.value, &f->skip_deleted, errbuf, errlen);
        } else if (strncmp(p.name, "libtopic.", 9) == 0) {
            tk_errbuf(errbuf, errlen, "unknown property %s (the forwarder knows "
                      "libtopic.flush.timeout.ms and libtopic.skip.deleted)", p.name);
            rc = TOPIC_KAFKA_ECONFIG;
        } else if ((strcmp(p.name, "enable.idempotence") == 0 && strcmp(p.value, "true") != 0) ||
                   ((strcmp(p.name, "acks") == 0 || strcmp(p.name, "request.required.acks") == 0) &&
                    strcmp(p.value, "all") != 0 && strcmp(p.value, "-1") != 0) ||
                   strcmp(p.name, "transactional.id") == 0) {
            tk_errbuf(errbuf, errlen, "property %s=%s: the forwarder keeps "
                      "enable.idempotence=true and acks=all, without transactions, so that "
                      "records keep their order and none is lost", p.name, p.value);
            rc = TOPIC_KAFKA_ECONFIG;
        } else {
            rc = tk_conf_set(conf, p.name, p.value, errbuf, errlen);
        }
    }
    return rc;
}

/* Finds where to start: the group's position, or the start offset. */
static int start_position(topic_kafka_forwarder *f, uint64_t *pos, char *errbuf, size_t errlen)
{
    uint64_t start = topic_start_offset(f->t), c;
    int rc = topic_committed(f->t, f->group, &c);
    if (rc == -ENOENT) {
        *pos = start;
        return 0;
    }
    if (rc < 0) {
        tk_errbuf(errbuf, errlen, "reading the position of group %s: %s", f->group,
                  topic_strerror(rc));
        return rc;
    }
    /* Past the end: a power loss took records the forwarder had sent (the
     * position was synced, they were not), or the position was set by hand.
     * New records will get those offsets, so the forwarder goes on from the
     * end, and stores that position at once: left as it was, it would skip
     * them after a restart.  Kafka keeps the lost records it was sent. */
    uint64_t end = topic_end_offset(f->t);
    if (c > end) {
        rc = topic_commit(f->t, f->group, end);
        if (rc < 0) {
            tk_errbuf(errbuf, errlen, "moving group %s from %" PRIu64 ", past the end offset "
                      "%" PRIu64 ", to the end: %s", f->group, c, end, topic_strerror(rc));
            return rc;
        }
        tk_msg_set(&f->note, "group %s was at %" PRIu64 ", past the end offset %" PRIu64 " of "
                   "the topic (records it had forwarded were lost locally, or it was set by "
                   "hand): going on from %" PRIu64, f->group, c, end, end);
        c = end;
    }
    f->committed = c;
    f->have_committed = true;
    if (c < start && !f->skip_deleted) {
        tk_errbuf(errbuf, errlen, "records %" PRIu64 " to %" PRIu64 " were deleted before "
                  "group %s forwarded them (set libtopic.skip.deleted=true to go on from %"
                  PRIu64 ")", c, start - 1, f->group, start);
        return TOPIC_EGONE;
    }
    if (c < start)
        atomic_store(&f->st_skipped, start - c);
    *pos = c < start ? start : c;
    return 0;
}

TOPIC_KAFKA_API int topic_kafka_forwarder_new(topic *t, const char *group, const char *brokers,
                                              const char *kafka_topic, const char *const *props,
                                              char *errbuf, size_t errlen,
                                              topic_kafka_forwarder **out)
{
    if (out)
        *out = NULL;
    if (t == NULL || brokers == NULL || kafka_topic == NULL || out == NULL) {
        tk_errbuf(errbuf, errlen, "topic_kafka_forwarder_new: a required argument is NULL");
        return -EINVAL;
    }
    if (kafka_topic[0] == '\0') {
        tk_errbuf(errbuf, errlen, "topic_kafka_forwarder_new: the Kafka topic name is empty");
        return -EINVAL;
    }
    /* A longer name used to be cut to its first 128 characters, so that
     * two groups sharing those became one: the second forwarder took the
     * first one's position and sent nothing to its Kafka topic. */
    if (group != NULL && strlen(group) > TK_GROUP_MAX) {
        tk_errbuf(errbuf, errlen, "group name is %zu characters long: libtopic's group names "
                  "are 1 to %d characters", strlen(group), TK_GROUP_MAX);
        return -EINVAL;
    }
    topic_kafka_forwarder *f = calloc(1, sizeof *f);
    if (f == NULL || (f->bits = calloc(WINDOW_BITS / 64, sizeof *f->bits)) == NULL) {
        free(f);
        tk_errbuf(errbuf, errlen, "out of memory");
        return -ENOMEM;
    }
    f->t = t;
    f->flush_timeout_ms = 10000;
    tk_msg_init(&f->err);
    tk_msg_init(&f->note);
    if (group)
        snprintf(f->group, sizeof f->group, "%s", group);
    else
        tk_group_name(f->group, "kafka-forward.", kafka_topic, "");

    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    int rc = configure(f, conf, brokers, props, errbuf, errlen);
    if (rc == 0)
        rc = tk_check_brokers(conf, errbuf, errlen);
    uint64_t pos = 0;
    if (rc == 0)
        rc = start_position(f, &pos, errbuf, errlen);
    if (rc == 0 && (rc = topic_cursor_open(t, pos, &f->cur)) < 0)
        tk_errbuf(errbuf, errlen, "opening a cursor at offset %" PRIu64 ": %s", pos,
                  topic_strerror(rc));
    if (rc == 0) {
        char why[512];
        rd_kafka_conf_set_opaque(conf, f);
        rd_kafka_conf_set_dr_msg_cb(conf, on_delivery);
        rd_kafka_conf_set_error_cb(conf, on_error);
        rd_kafka_conf_set_log_cb(conf, tk_log);
        f->rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, why, sizeof why);
        if (f->rk == NULL) {
            tk_errbuf(errbuf, errlen, "creating the Kafka producer: %s", why);
            rc = TOPIC_KAFKA_ECONFIG;
        } else {
            conf = NULL;    /* the producer owns it now */
            f->rkt = rd_kafka_topic_new(f->rk, kafka_topic, NULL);
            if (f->rkt == NULL) {
                tk_errbuf(errbuf, errlen, "Kafka topic '%s': %s", kafka_topic,
                          rd_kafka_err2str(rd_kafka_last_error()));
                rc = TOPIC_KAFKA_ECONFIG;
            }
        }
    }
    if (conf)
        rd_kafka_conf_destroy(conf);
    if (rc < 0) {
        topic_kafka_forwarder_free(f);
        return rc;
    }
    f->base = f->next = pos;
    atomic_store(&f->st_position, pos);
    atomic_store(&f->st_committed, f->have_committed ? f->committed : pos);
    f->made = true;
    *out = f;
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Running                                                                   */

static bool stopping(volatile sig_atomic_t *stop)
{
    return stop != NULL && *stop != 0;
}

/*
 * Hands one record to the producer, waiting (serving acknowledgements) while
 * its queue is full.  Returns 0, 1 if asked to stop before the record could
 * be queued (it was not produced), or a failure.
 */
static int produce(topic_kafka_forwarder *f, const topic_record *rec, volatile sig_atomic_t *stop)
{
    for (;;) {
        rd_kafka_resp_err_t err = rd_kafka_producev(
            f->rk, RD_KAFKA_V_RKT(f->rkt), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
            /* an empty key stays empty, and no key stays null: Kafka, and
             * its partitioner, tell them apart as libtopic does */
            RD_KAFKA_V_KEY(rec->key, rec->key_len),
            /* a non-NULL pointer keeps an empty value empty, not null */
            RD_KAFKA_V_VALUE(rec->value_len ? (void *)rec->value : (void *)"", rec->value_len),
            RD_KAFKA_V_TIMESTAMP(rec->timestamp),
            RD_KAFKA_V_OPAQUE((void *)(uintptr_t)(uint32_t)rec->offset), RD_KAFKA_V_END);
        if (err == RD_KAFKA_RESP_ERR_NO_ERROR) {
            f->next = rec->offset + 1;
            atomic_fetch_add(&f->st_produced, 1);
            atomic_store(&f->st_position, f->next);
            return 0;
        }
        if (err != RD_KAFKA_RESP_ERR__QUEUE_FULL) {
            char why[256] = "";
            atomic_fetch_add(&f->st_produced, 1);   /* handed over, and refused */
            atomic_fetch_add(&f->st_failed, 1);
            if (err == RD_KAFKA_RESP_ERR__FATAL) {
                rd_kafka_fatal_error(f->rk, why, sizeof why);
                fail(f, TOPIC_KAFKA_EFATAL, "Kafka producer failed: %s", why);
            } else {
                fail(f, TOPIC_KAFKA_EDELIVERY, "record at offset %" PRIu64 " refused by the "
                     "producer: %s", rec->offset, rd_kafka_err2str(err));
            }
            return f->failure;
        }
        if (stopping(stop))
            return 1;
        poll_commit(f, BUSY_WAIT_MS);
        if (f->failure)
            return f->failure;
    }
}

/*
 * The cursor met deleted records (retention overtook the forwarder).  With
 * skip.deleted, waits until nothing is in flight, then jumps the window to
 * the start offset.
 */
static int deleted(topic_kafka_forwarder *f, volatile sig_atomic_t *stop)
{
    uint64_t pos = topic_cursor_offset(f->cur), start = topic_start_offset(f->t);
    if (!f->skip_deleted) {
        fail(f, TOPIC_EGONE, "records from offset %" PRIu64 " to %" PRIu64 " were deleted "
             "before group %s forwarded them (libtopic.skip.deleted=true goes on past them)",
             pos, start - 1, f->group);
        return f->failure;
    }
    while (in_flight(f) > 0 && !f->failure && !stopping(stop))
        poll_commit(f, BUSY_WAIT_MS);
    if (f->failure || in_flight(f) > 0)
        return f->failure;
    int rc = topic_cursor_seek(f->cur, start);
    if (rc < 0) {
        fail(f, rc, "seeking to offset %" PRIu64 ": %s", start, topic_strerror(rc));
        return rc;
    }
    atomic_fetch_add(&f->st_skipped, start - pos);
    f->base = f->next = start;
    atomic_store(&f->st_position, start);
    return commit(f);
}

/* Reads and produces until the end (until_end), a stop, or a failure. */
static void pump(topic_kafka_forwarder *f, int until_end, volatile sig_atomic_t *stop)
{
    unsigned since_poll = 0;
    while (!f->failure && !stopping(stop)) {
        if (f->next - f->base >= WINDOW_BITS) {
            poll_commit(f, BUSY_WAIT_MS);
            continue;
        }
        topic_record rec;
        int rc = topic_cursor_next(f->cur, &rec);
        if (rc == 0) {
            if (produce(f, &rec, stop) != 0) {
                /* not produced: step back so that a later run() reads it again */
                topic_cursor_seek(f->cur, rec.offset);
                break;
            }
            if (++since_poll >= POLL_EVERY) {
                since_poll = 0;
                poll_commit(f, 0);
            }
        } else if (rc == TOPIC_END) {
            poll_commit(f, 0);
            if (until_end)
                return;
            uint64_t pos = topic_cursor_offset(f->cur);
            if (in_flight(f) > 0) {
                poll_commit(f, BUSY_WAIT_MS);
                topic_wait(f->t, pos, 0);
            } else {
                topic_wait(f->t, pos, IDLE_WAIT_MS);
            }
        } else if (rc == TOPIC_EGONE) {
            deleted(f, stop);
        } else {
            fail(f, rc, "reading offset %" PRIu64 ": %s", topic_cursor_offset(f->cur),
                 topic_strerror(rc));
        }
    }
}

/*
 * Waits for the records in flight, committing as they are acknowledged:
 * without end while running until the end, at most flush.timeout.ms once
 * stopping or after a failure (not at all once *stop >= 2).  After a
 * failure this still moves the position up to the first record that failed.
 */
static void drain(topic_kafka_forwarder *f, volatile sig_atomic_t *stop)
{
    int64_t deadline = -1;
    while (in_flight(f) > 0) {
        if (stopping(stop) && *stop >= 2)
            break;
        if (stopping(stop) || f->failure) {
            if (deadline < 0)
                deadline = tk_now_ms() + f->flush_timeout_ms;
            if (tk_now_ms() >= deadline)
                break;
        }
        poll_commit(f, BUSY_WAIT_MS);
    }
    poll_commit(f, 0);
}

TOPIC_KAFKA_API int topic_kafka_forward_run(topic_kafka_forwarder *f, int until_end,
                                            volatile sig_atomic_t *stop)
{
    if (f == NULL)
        return -EINVAL;
    if (f->failure)
        return f->failure;
    pump(f, until_end, stop);
    drain(f, stop);
    return f->failure;
}

TOPIC_KAFKA_API int topic_kafka_forwarder_stats(topic_kafka_forwarder *f,
                                              topic_kafka_forward_stats *st)
{
    if (f == NULL || st == NULL)
        return -EINVAL;
    memset(st, 0, sizeof *st);
    st->produced = atomic_load(&f->st_produced);
    st->acked = atomic_load(&f->st_acked);
    st->failed = atomic_load(&f->st_failed);
    st->in_flight = st->produced - st->acked - st->failed;
    st->skipped_deleted = atomic_load(&f->st_skipped);
    st->position = atomic_load(&f->st_position);
    st->committed = atomic_load(&f->st_committed);
    st->end_offset = topic_end_offset(f->t);
    st->lag = st->end_offset > st->committed ? st->end_offset - st->committed : 0;
    return 0;
}

TOPIC_KAFKA_API const char *topic_kafka_forwarder_error(topic_kafka_forwarder *f, char *buf,
                                                        size_t cap)
{
    if (f == NULL) {
        if (buf && cap)
            buf[0] = '\0';
        return buf;
    }
    tk_msg_copy(&f->err, buf, cap);
    if (buf && cap && buf[0] == '\0')
        tk_msg_copy(&f->note, buf, cap);
    return buf;
}

TOPIC_KAFKA_API void topic_kafka_forwarder_free(topic_kafka_forwarder *f)
{
    if (f == NULL)
        return;
    if (f->rk && f->made) {
        /* Serve the acknowledgements that already arrived and commit them,
         * then drop the rest: the next forwarder produces it again.  A
         * forwarder whose creation failed commits nothing: it would make a
         * group that never forwarded a record. */
        rd_kafka_poll(f->rk, 0);
        commit(f);
        rd_kafka_purge(f->rk, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
        rd_kafka_poll(f->rk, 0);
    }
    if (f->rkt)
        rd_kafka_topic_destroy(f->rkt);
    if (f->rk)
        rd_kafka_destroy(f->rk);
    topic_cursor_close(f->cur);
    tk_msg_destroy(&f->err);
    tk_msg_destroy(&f->note);
    free(f->bits);
    free(f);
}
