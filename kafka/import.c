/*
 * The importer: one Kafka partition appended to a local topic, exactly once.
 *
 * Where the position lives.  A pair (K, L) says "Kafka offset K was the next
 * to import when the local end offset was L".  It is stored in the topic as
 * libtopic consumer-group positions, in two slots so that a crash while one
 * is written leaves the other whole:
 *
 *     <base>.a.kafka = K    <base>.a.local = L
 *     <base>.b.kafka = K    <base>.b.local = L
 *
 * with <base> = "kafka-import.<kafka topic>.<partition>".  One group commit
 * is atomic (libtopic keeps two checksummed copies of it), but two are not,
 * hence the order of a step that imports n records:
 *
 *     1. append the n records                (end offset L -> L + n)
 *     2. commit the free slot's .kafka = K'  (the Kafka offset after them)
 *     3. topic_sync()                        (records and .kafka on disk)
 *     4. commit the free slot's .local = L + n; it becomes the current slot
 *
 * A slot counts once both of its positions exist; the current one is the
 * one with the larger .local, since L only grows.  A slot torn between 2
 * and 4 holds a new .kafka beside the .local of two steps ago, which is
 * smaller than the other slot's, so the other slot stays current.  Step 4
 * comes after the sync, so even after a power loss a slot never claims
 * records the disk lost.
 *
 * Restart.  With the current slot (K, L) and the end offset E >= L, the
 * records L .. E-1 were appended after the slot was stored, and they are
 * the next E - L records of the partition from K on (nothing else appends
 * to the topic while an import runs; the importer checks).  So the importer
 * consumes from K, compares each of the first E - L records with the local
 * record at L, L+1, ... (TOPIC_KAFKA_EMISMATCH on any difference: Kafka
 * compacted them away meanwhile, or someone appended), and appends the rest.
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

#define POLL_MS       100       /* longest wait for records: the stop flag's latency */
#define FETCH_MAX     1000      /* messages taken from the queue at once */
#define START_TRY_MS  2000      /* one attempt to learn a partition's watermarks */

enum start_kind { START_EARLIEST, START_LATEST, START_OFFSET };

struct topic_kafka_importer {
    topic *t;
    rd_kafka_t *rk;
    rd_kafka_queue_t *q;
    char *ktopic;
    int32_t partition;
    char slot_group[2][2][TK_GROUP_MAX + 1];   /* [slot a/b][.kafka/.local] */

    enum start_kind start_kind;
    int64_t start_offset;
    size_t batch_records, batch_bytes;

    bool started;
    int slot;                   /* current slot, -1 if none */
    int64_t kafka_next;         /* next Kafka offset to consume */
    uint64_t local_end;         /* the end offset as this importer left it */
    uint64_t to_skip;           /* records already appended before a restart */
    topic_cursor *check;        /* on the local record the next skipped one must equal */
    int failure;                /* sticky */

    rd_kafka_message_t **pend;  /* fetched, not yet appended */
    topic_record *recs;
    size_t npend, pend_bytes;

    _Atomic uint64_t st_imported, st_skipped;
    _Atomic int64_t st_next, st_hwm;
    struct tk_msg err, note;
};

static void fail(topic_kafka_importer *im, int rc, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void fail(topic_kafka_importer *im, int rc, const char *fmt, ...)
{
    if (im->failure != 0)
        return;
    im->failure = rc;
    va_list ap;
    va_start(ap, fmt);
    tk_msg_vset(&im->err, fmt, ap);
    va_end(ap);
}

static void on_error(rd_kafka_t *rk, int err, const char *reason, void *opaque)
{
    (void)rk;
    (void)err;
    topic_kafka_importer *im = opaque;
    tk_msg_set(&im->note, "%s", reason);
}

/* ------------------------------------------------------------------------ */
/* Making one                                                                */

static int own_property(topic_kafka_importer *im, const struct tk_prop *p, char *errbuf,
                        size_t errlen)
{
    int64_t v;
    int rc;
    if (strcmp(p->name, "libtopic.import.start") == 0) {
        if (strcmp(p->value, "earliest") == 0 || strcmp(p->value, "beginning") == 0) {
            im->start_kind = START_EARLIEST;
        } else if (strcmp(p->value, "latest") == 0 || strcmp(p->value, "end") == 0) {
            im->start_kind = START_LATEST;
        } else {
            if (tk_parse_i64(p->name, p->value, 0, INT64_MAX, &v, NULL, 0) < 0) {
                tk_errbuf(errbuf, errlen, "property %s=%s: expected earliest, latest or an "
                          "offset from 0 to %lld", p->name, p->value, (long long)INT64_MAX);
                return -EINVAL;
            }
            im->start_kind = START_OFFSET;
            im->start_offset = v;
        }
        return 0;
    }
    if (strcmp(p->name, "libtopic.import.batch.records") == 0) {
        rc = tk_parse_i64(p->name, p->value, 1, 1000000, &v, errbuf, errlen);
        im->batch_records = (size_t)v;
        return rc;
    }
    if (strcmp(p->name, "libtopic.import.batch.bytes") == 0) {
        rc = tk_parse_i64(p->name, p->value, 1, 1 << 30, &v, errbuf, errlen);
        im->batch_bytes = (size_t)v;
        return rc;
    }
    tk_errbuf(errbuf, errlen, "unknown property %s (the importer knows libtopic.import.start, "
              "libtopic.import.batch.records and libtopic.import.batch.bytes)", p->name);
    return TOPIC_KAFKA_ECONFIG;
}

static int configure(topic_kafka_importer *im, rd_kafka_conf_t *conf, const char *brokers,
                     const char *const *props, char *errbuf, size_t errlen)
{
    static const char *const defaults[][2] = {
        { "group.id", "libtopic-import" },
        { "auto.offset.reset", "error" },
        { "client.id", "libtopic-import" },
    };
    /* What the importer's loop relies on; set last, after the caller's. */
    static const char *const fixed[][2] = {
        { "enable.auto.commit", "false" },
        { "enable.auto.offset.store", "false" },
        { "enable.partition.eof", "true" },
    };
    const size_t ndef = sizeof defaults / sizeof defaults[0];
    const size_t nfix = sizeof fixed / sizeof fixed[0];
    int rc = tk_conf_set(conf, "bootstrap.servers", brokers, errbuf, errlen);
    for (size_t i = 0; rc == 0 && i < ndef; i++)
        rc = tk_conf_set(conf, defaults[i][0], defaults[i][1], errbuf, errlen);
    for (size_t i = 0; rc == 0 && props && props[i]; i++) {
        struct tk_prop p;
        if ((rc = tk_prop_split(props[i], &p, errbuf, errlen)) < 0)
            break;
        if (strncmp(p.name, "libtopic.", 9) == 0) {
            rc = own_property(im, &p, errbuf, errlen);
            continue;
        }
        for (size_t j = 0; j < nfix; j++)
            if (strcmp(p.name, fixed[j][0]) == 0 && strcmp(p.value, fixed[j][1]) != 0) {
                tk_errbuf(errbuf, errlen, "property %s=%s: the importer needs %s=%s",
                          p.name, p.value, fixed[j][0], fixed[j][1]);
                rc = TOPIC_KAFKA_ECONFIG;
            }
        if (rc == 0)
            rc = tk_conf_set(conf, p.name, p.value, errbuf, errlen);
    }
    for (size_t i = 0; rc == 0 && i < nfix; i++)
        rc = tk_conf_set(conf, fixed[i][0], fixed[i][1], errbuf, errlen);
    return rc;
}

/* Reads both slots and makes the valid one with the larger .local current. */
static int load_slots(topic_kafka_importer *im, uint64_t *local, char *errbuf, size_t errlen)
{
    im->slot = -1;
    uint64_t k[2], l[2];
    bool ok[2];
    for (int s = 0; s < 2; s++) {
        int rk = topic_committed(im->t, im->slot_group[s][0], &k[s]);
        int rl = topic_committed(im->t, im->slot_group[s][1], &l[s]);
        int bad = rk < 0 && rk != -ENOENT ? rk : rl < 0 && rl != -ENOENT ? rl : 0;
        if (bad) {
            tk_errbuf(errbuf, errlen, "reading the import position (%s): %s",
                      im->slot_group[s][0], topic_strerror(bad));
            return bad;
        }
        ok[s] = rk == 0 && rl == 0;
    }
    for (int s = 0; s < 2; s++)
        if (ok[s] && (im->slot < 0 || l[s] > l[im->slot] ||
                      (l[s] == l[im->slot] && k[s] > k[im->slot])))
            im->slot = s;
    if (im->slot >= 0) {
        im->kafka_next = (int64_t)k[im->slot];
        *local = l[im->slot];
        atomic_store(&im->st_next, im->kafka_next);
    }
    return 0;
}

TOPIC_KAFKA_API int topic_kafka_importer_new(topic *t, const char *brokers,
                                             const char *kafka_topic, int32_t partition,
                                             const char *const *props, char *errbuf,
                                             size_t errlen, topic_kafka_importer **out)
{
    if (out)
        *out = NULL;
    if (t == NULL || brokers == NULL || kafka_topic == NULL || out == NULL) {
        tk_errbuf(errbuf, errlen, "topic_kafka_importer_new: a required argument is NULL");
        return -EINVAL;
    }
    if (kafka_topic[0] == '\0' || partition < 0) {
        tk_errbuf(errbuf, errlen, "topic_kafka_importer_new: %s",
                  partition < 0 ? "the partition is negative" : "the Kafka topic name is empty");
        return -EINVAL;
    }
    /* An importer appends: refuse a read-only handle now, before anything
     * is stored in the topic (an empty batch appends nothing, and tells). */
    if (topic_append_batch(t, NULL, 0, NULL) == TOPIC_ERDONLY) {
        tk_errbuf(errbuf, errlen, "topic_kafka_importer_new: the topic was opened read-only "
                  "(TOPIC_RDONLY); an importer needs the writer's handle");
        return TOPIC_ERDONLY;
    }
    topic_kafka_importer *im = calloc(1, sizeof *im);
    if (im == NULL || (im->ktopic = strdup(kafka_topic)) == NULL) {
        free(im);
        tk_errbuf(errbuf, errlen, "out of memory");
        return -ENOMEM;
    }
    im->t = t;
    im->partition = partition;
    im->batch_records = 10000;
    im->batch_bytes = 1 << 20;
    im->slot = -1;
    atomic_store(&im->st_next, -1);
    atomic_store(&im->st_hwm, -1);
    tk_msg_init(&im->err);
    tk_msg_init(&im->note);
    static const char *const suffix[2][2] = { { ".a.kafka", ".a.local" },
                                              { ".b.kafka", ".b.local" } };
    for (int s = 0; s < 2; s++)
        for (int w = 0; w < 2; w++) {
            char tail[40];
            snprintf(tail, sizeof tail, ".%" PRId32 "%s", partition, suffix[s][w]);
            tk_group_name(im->slot_group[s][w], "kafka-import.", kafka_topic, tail);
        }

    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    int rc = configure(im, conf, brokers, props, errbuf, errlen);
    if (rc == 0)
        rc = tk_check_brokers(conf, errbuf, errlen);
    uint64_t local = 0;
    if (rc == 0)
        rc = load_slots(im, &local, errbuf, errlen);
    if (rc == 0) {
        im->local_end = local;
        im->pend = calloc(im->batch_records, sizeof *im->pend);
        im->recs = calloc(im->batch_records, sizeof *im->recs);
        if (im->pend == NULL || im->recs == NULL) {
            tk_errbuf(errbuf, errlen, "out of memory");
            rc = -ENOMEM;
        }
    }
    if (rc == 0) {
        char why[512];
        rd_kafka_conf_set_opaque(conf, im);
        rd_kafka_conf_set_error_cb(conf, on_error);
        im->rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, why, sizeof why);
        if (im->rk == NULL) {
            tk_errbuf(errbuf, errlen, "creating the Kafka consumer: %s", why);
            rc = TOPIC_KAFKA_ECONFIG;
        } else {
            conf = NULL;
            rd_kafka_poll_set_consumer(im->rk);
            im->q = rd_kafka_queue_get_consumer(im->rk);
        }
    }
    if (conf)
        rd_kafka_conf_destroy(conf);
    if (rc < 0) {
        topic_kafka_importer_free(im);
        return rc;
    }
    *out = im;
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Storing the position                                                      */

static int hook(topic_kafka_importer *im, int point)
{
    if (topic_kafka__import_hook && topic_kafka__import_hook(point)) {
        fail(im, -ECANCELED, "stopped by the test hook at point %d", point);
        return -ECANCELED;
    }
    return 0;
}

static int commit(topic_kafka_importer *im, const char *group, uint64_t value)
{
    int rc = topic_commit(im->t, group, value);
    if (rc < 0)
        fail(im, rc, "storing the import position (%s=%" PRIu64 "): %s", group, value,
             topic_strerror(rc));
    return rc;
}

/* Steps 2 to 4 of the comment at the top: store (kafka_next, local_end). */
static int store_position(topic_kafka_importer *im)
{
    int s = im->slot == 0 ? 1 : 0;
    int rc = commit(im, im->slot_group[s][0], (uint64_t)im->kafka_next);
    if (rc == 0)
        rc = hook(im, 2);
    if (rc == 0 && (rc = topic_sync(im->t)) < 0)
        fail(im, rc, "syncing the topic: %s", topic_strerror(rc));
    if (rc == 0)
        rc = hook(im, 3);
    if (rc == 0)
        rc = commit(im, im->slot_group[s][1], im->local_end);
    if (rc == 0)
        rc = hook(im, 4);
    if (rc == 0)
        im->slot = s;
    return rc;
}

/* Appends recs[0..n-1], halving a batch the topic finds too big; adds the
 * records appended to *done, also when a later part fails. */
static int append_split(topic_kafka_importer *im, const topic_record *recs, size_t n,
                        int64_t first_kafka, size_t *done)
{
    int rc = topic_append_batch(im->t, recs, n, NULL);
    if (rc == TOPIC_ETOOBIG && n > 1) {
        size_t h = n / 2;
        rc = append_split(im, recs, h, first_kafka, done);
        if (rc == 0)
            rc = append_split(im, recs + h, n - h, im->pend[(recs - im->recs) + h]->offset,
                              done);
        return rc;
    }
    if (rc == 0)
        *done += n;
    if (rc == TOPIC_ETOOBIG)
        fail(im, rc, "Kafka record %s[%" PRId32 "]@%" PRId64 " (%zu bytes) is larger than "
             "the topic's max.message.bytes", im->ktopic, im->partition, first_kafka,
             recs[0].key_len + recs[0].value_len);
    else if (rc < 0)
        fail(im, rc, "appending to the topic: %s", topic_strerror(rc));
    return rc;
}

static void drop_pending(topic_kafka_importer *im)
{
    for (size_t i = 0; i < im->npend; i++)
        rd_kafka_message_destroy(im->pend[i]);
    im->npend = 0;
    im->pend_bytes = 0;
}

/* Appends what was fetched and stores the position after it. */
static int flush(topic_kafka_importer *im)
{
    if (im->npend == 0)
        return 0;
    uint64_t end = topic_end_offset(im->t);
    if (end != im->local_end) {
        fail(im, TOPIC_KAFKA_EMISMATCH, "the topic's end offset moved from %" PRIu64 " to %"
             PRIu64 " behind the importer's back: nothing else may append to a topic "
             "while an import into it runs", im->local_end, end);
        return im->failure;
    }
    for (size_t i = 0; i < im->npend; i++) {
        const rd_kafka_message_t *m = im->pend[i];
        rd_kafka_timestamp_type_t type;
        int64_t ts = rd_kafka_message_timestamp(m, &type);
        im->recs[i] = (topic_record){
            .timestamp = type != RD_KAFKA_TIMESTAMP_NOT_AVAILABLE && ts > 0 ? ts : 0,
            .key = m->key,   /* NULL for Kafka's null key, as in libtopic */
            .key_len = m->key_len,
            .value = m->len ? m->payload : NULL,
            .value_len = m->len,
        };
    }
    /* Records appended before a part that failed (a record larger than
     * the topic allows) stay in the topic: the position is stored after
     * them as after a whole batch, so that the statistics say where the
     * import stopped and the next start does not take them for records
     * of a crash to check against Kafka. */
    size_t done = 0;
    int rc = append_split(im, im->recs, im->npend, im->pend[0]->offset, &done);
    if (done > 0) {
        im->local_end += done;
        im->kafka_next = im->pend[done - 1]->offset + 1;
        int r = hook(im, 1);
        if (r == 0)
            r = store_position(im);
        if (r == 0) {
            atomic_fetch_add(&im->st_imported, done);
            atomic_store(&im->st_next, im->kafka_next);
        }
        if (rc == 0)
            rc = r;
    }
    drop_pending(im);
    return rc;
}

/* ------------------------------------------------------------------------ */
/* Starting and consuming                                                    */

static bool transient(rd_kafka_resp_err_t err)
{
    switch (err) {
    case RD_KAFKA_RESP_ERR__TRANSPORT:
    case RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN:
    case RD_KAFKA_RESP_ERR__TIMED_OUT:
    case RD_KAFKA_RESP_ERR__RESOLVE:
    case RD_KAFKA_RESP_ERR_LEADER_NOT_AVAILABLE:
    case RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION:
    case RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT:
    case RD_KAFKA_RESP_ERR_BROKER_NOT_AVAILABLE:
    case RD_KAFKA_RESP_ERR_NETWORK_EXCEPTION:
    case RD_KAFKA_RESP_ERR_COORDINATOR_NOT_AVAILABLE:
    case RD_KAFKA_RESP_ERR_NOT_COORDINATOR:
    case RD_KAFKA_RESP_ERR_COORDINATOR_LOAD_IN_PROGRESS:
    case RD_KAFKA_RESP_ERR_FETCH_SESSION_ID_NOT_FOUND:
    case RD_KAFKA_RESP_ERR_INVALID_FETCH_SESSION_EPOCH:
    case RD_KAFKA_RESP_ERR_OFFSET_NOT_AVAILABLE:
    case RD_KAFKA_RESP_ERR_UNKNOWN_LEADER_EPOCH:
    case RD_KAFKA_RESP_ERR_FENCED_LEADER_EPOCH:
        return true;
    default:
        return false;
    }
}

/* Resolves libtopic.import.start into an offset, retrying while the
 * cluster cannot be reached.  Returns 0, 1 if asked to stop, or a failure. */
static int resolve_start(topic_kafka_importer *im, volatile sig_atomic_t *stop, int64_t *out)
{
    if (im->start_kind == START_OFFSET) {
        *out = im->start_offset;
        return 0;
    }
    for (;;) {
        int64_t lo = -1, hi = -1;
        rd_kafka_resp_err_t err = rd_kafka_query_watermark_offsets(
            im->rk, im->ktopic, im->partition, &lo, &hi, START_TRY_MS);
        if (err == RD_KAFKA_RESP_ERR_NO_ERROR) {
            *out = im->start_kind == START_EARLIEST ? lo : hi;
            atomic_store(&im->st_hwm, hi);
            return 0;
        }
        if (!transient(err)) {
            fail(im, TOPIC_KAFKA_EKAFKA, "finding the offsets of %s[%" PRId32 "]: %s",
                 im->ktopic, im->partition, rd_kafka_err2str(err));
            return im->failure;
        }
        tk_msg_set(&im->note, "finding the offsets of %s[%" PRId32 "]: %s", im->ktopic,
                   im->partition, rd_kafka_err2str(err));
        if (stop && *stop)
            return 1;
    }
}

/* First run(): the position, the records to skip, the assignment. */
static int start(topic_kafka_importer *im, volatile sig_atomic_t *stop)
{
    uint64_t end = topic_end_offset(im->t);
    if (im->slot < 0) {
        int64_t k;
        int rc = resolve_start(im, stop, &k);
        if (rc != 0)
            return rc;
        im->kafka_next = k;
        im->local_end = end;
        if ((rc = store_position(im)) < 0)
            return rc;
        atomic_store(&im->st_next, k);
    }
    if (end < im->local_end) {
        fail(im, TOPIC_KAFKA_EMISMATCH, "the topic ends at offset %" PRIu64 " but the import "
             "position says offset %" PRIu64 " was appended: was the topic replaced?", end,
             im->local_end);
        return im->failure;
    }
    im->to_skip = end - im->local_end;
    if (im->to_skip > 0) {
        int rc = topic_cursor_open(im->t, im->local_end, &im->check);
        if (rc == TOPIC_EGONE)
            im->check = NULL;    /* deleted by retention: skipped unchecked */
        else if (rc < 0) {
            fail(im, rc, "opening a cursor at offset %" PRIu64 ": %s", im->local_end,
                 topic_strerror(rc));
            return rc;
        }
        im->local_end = end;
    }
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(l, im->ktopic, im->partition)->offset = im->kafka_next;
    rd_kafka_resp_err_t err = rd_kafka_assign(im->rk, l);
    rd_kafka_topic_partition_list_destroy(l);
    if (err) {
        fail(im, TOPIC_KAFKA_EKAFKA, "assigning %s[%" PRId32 "]: %s", im->ktopic, im->partition,
             rd_kafka_err2str(err));
        return im->failure;
    }
    im->started = true;
    return 0;
}

/* A record the importer appended before a restart: check it and step over. */
static int skip_one(topic_kafka_importer *im, rd_kafka_message_t *m)
{
    topic_record r;
    int rc = im->check ? topic_cursor_next(im->check, &r) : TOPIC_EGONE;
    if (rc == 0) {
        rd_kafka_timestamp_type_t type;
        int64_t ts = rd_kafka_message_timestamp(m, &type);
        /* An empty key and no key are not told apart here: earlier builds
         * imported an empty key as none, and their copies are still good. */
        bool same = r.key_len == m->key_len && r.value_len == m->len &&
            (m->key_len == 0 || memcmp(r.key, m->key, m->key_len) == 0) &&
            (m->len == 0 || memcmp(r.value, m->payload, m->len) == 0) &&
            (type == RD_KAFKA_TIMESTAMP_NOT_AVAILABLE || ts <= 0 || ts == r.timestamp);
        if (!same) {
            fail(im, TOPIC_KAFKA_EMISMATCH, "Kafka record %s[%" PRId32 "]@%" PRId64 " differs "
                 "from local record %" PRIu64 ", which should be its copy: did Kafka compact "
                 "the partition, or did something else append to the topic?", im->ktopic,
                 im->partition, m->offset, r.offset);
            return im->failure;
        }
    } else if (rc != TOPIC_EGONE) {
        fail(im, rc, "reading the local record that Kafka record @%" PRId64 " should equal: %s",
             m->offset, topic_strerror(rc));
        return rc;
    }
    im->kafka_next = m->offset + 1;
    atomic_store(&im->st_next, im->kafka_next);
    atomic_fetch_add(&im->st_skipped, 1);
    if (--im->to_skip == 0) {
        topic_cursor_close(im->check);
        im->check = NULL;
        /* Every record the crash left appended is checked: store the
         * position after them, or each later start would fetch and compare
         * them again, and fail once Kafka's retention has deleted them. */
        return store_position(im);
    }
    return 0;
}

/* Handles an error event of the consumer; returns 1 at the partition's end. */
static int consumer_event(topic_kafka_importer *im, const rd_kafka_message_t *m)
{
    if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
        atomic_store(&im->st_hwm, m->offset);
        if (im->to_skip > 0) {
            fail(im, TOPIC_KAFKA_EMISMATCH, "the topic holds %" PRIu64 " more records than "
                 "%s[%" PRId32 "] has after offset %" PRId64 ": did something else append "
                 "to the topic?", im->to_skip, im->ktopic, im->partition, im->kafka_next);
            return im->failure;
        }
        return 1;
    }
    if (transient(m->err)) {
        tk_msg_set(&im->note, "%s", rd_kafka_message_errstr(m));
        return 0;
    }
    fail(im, TOPIC_KAFKA_EKAFKA, "consuming %s[%" PRId32 "] at offset %" PRId64 ": %s",
         im->ktopic, im->partition, im->kafka_next, rd_kafka_message_errstr(m));
    return im->failure;
}

/* Takes one fetched message.  Returns 0, 1 at the end of the partition, or
 * a failure; the message is kept (pending) or destroyed. */
static int take(topic_kafka_importer *im, rd_kafka_message_t *m)
{
    int rc = 0;
    if (m->err) {
        rc = consumer_event(im, m);
    } else if (m->partition != im->partition || m->offset < im->kafka_next ||
               strcmp(rd_kafka_topic_name(m->rkt), im->ktopic) != 0) {
        rc = 0;     /* not ours, or before the position: a stale fetch */
    } else if (im->to_skip > 0) {
        rc = skip_one(im, m);
    } else {
        im->pend[im->npend++] = m;
        im->pend_bytes += m->key_len + m->len;
        return 0;
    }
    rd_kafka_message_destroy(m);
    return rc;
}

TOPIC_KAFKA_API int topic_kafka_import_run(topic_kafka_importer *im, int until_end,
                                           volatile sig_atomic_t *stop)
{
    if (im == NULL)
        return -EINVAL;
    if (im->failure)
        return im->failure;
    if (!im->started) {
        int rc = start(im, stop);
        if (rc != 0)
            return rc < 0 ? rc : 0;
    }
    rd_kafka_message_t *batch[FETCH_MAX];
    bool at_end = false;
    while (!im->failure) {
        bool stopping = stop && *stop;
        size_t room = im->batch_records - im->npend;
        if (room > FETCH_MAX)
            room = FETCH_MAX;
        ssize_t n = 0;
        if (!stopping && !at_end && room > 0 && im->pend_bytes < im->batch_bytes)
            n = rd_kafka_consume_batch_queue(im->q, im->npend ? 0 : POLL_MS, batch, room);
        if (n < 0) {
            fail(im, TOPIC_KAFKA_EKAFKA, "consuming: %s", rd_kafka_err2str(rd_kafka_last_error()));
            break;
        }
        for (ssize_t i = 0; i < n; i++) {
            int rc = im->failure ? 0 : take(im, batch[i]);
            if (im->failure && rc == 0)
                rd_kafka_message_destroy(batch[i]);     /* the rest after a failure */
            if (rc == 1)
                at_end = true;
        }
        if (im->failure)
            break;
        int64_t lo, hi;
        if (rd_kafka_get_watermark_offsets(im->rk, im->ktopic, im->partition, &lo, &hi) == 0 &&
            hi >= 0)
            atomic_store(&im->st_hwm, hi);
        /* Append when the queue ran dry, the batch is full, or on the way out. */
        if (im->npend > 0 && (n == 0 || at_end || stopping || im->npend >= im->batch_records ||
                              im->pend_bytes >= im->batch_bytes))
            flush(im);
        if (im->npend == 0 && (stopping || (at_end && until_end)))
            break;
        at_end = false;
    }
    return im->failure;
}

TOPIC_KAFKA_API int topic_kafka_importer_stats(topic_kafka_importer *im,
                                             topic_kafka_import_stats *st)
{
    if (im == NULL || st == NULL)
        return -EINVAL;
    memset(st, 0, sizeof *st);
    st->imported = atomic_load(&im->st_imported);
    st->skipped = atomic_load(&im->st_skipped);
    st->next_offset = atomic_load(&im->st_next);
    st->high_watermark = atomic_load(&im->st_hwm);
    st->lag = st->next_offset >= 0 && st->high_watermark >= 0
        ? (st->high_watermark > st->next_offset ? st->high_watermark - st->next_offset : 0)
        : -1;
    st->local_end = topic_end_offset(im->t);
    return 0;
}

TOPIC_KAFKA_API const char *topic_kafka_importer_error(topic_kafka_importer *im, char *buf,
                                                       size_t cap)
{
    if (im == NULL) {
        if (buf && cap)
            buf[0] = '\0';
        return buf;
    }
    tk_msg_copy(&im->err, buf, cap);
    if (buf && cap && buf[0] == '\0')
        tk_msg_copy(&im->note, buf, cap);
    return buf;
}

TOPIC_KAFKA_API void topic_kafka_importer_free(topic_kafka_importer *im)
{
    if (im == NULL)
        return;
    drop_pending(im);
    topic_cursor_close(im->check);
    if (im->q)
        rd_kafka_queue_destroy(im->q);
    if (im->rk) {
        rd_kafka_consumer_close(im->rk);
        rd_kafka_destroy(im->rk);
    }
    tk_msg_destroy(&im->err);
    tk_msg_destroy(&im->note);
    free(im->pend);
    free(im->recs);
    free(im->ktopic);
    free(im);
}

TOPIC_KAFKA_API int topic_kafka_import(topic *t, const char *brokers, const char *kafka_topic,
                                       int32_t partition, const char *const *props,
                                       int until_end, volatile sig_atomic_t *stop,
                                       char *errbuf, size_t errlen)
{
    topic_kafka_importer *im;
    int rc = topic_kafka_importer_new(t, brokers, kafka_topic, partition, props, errbuf,
                                      errlen, &im);
    if (rc < 0)
        return rc;
    rc = topic_kafka_import_run(im, until_end, stop);
    if (rc < 0)
        topic_kafka_importer_error(im, errbuf, errlen);
    topic_kafka_importer_free(im);
    return rc;
}
