/*
 * libtopic-kafka: the bridge between a libtopic topic and a Kafka cluster.
 *
 * Two directions, each a small handle that one thread drives:
 *
 *  - A forwarder reads a local topic from a consumer group's committed
 *    position and produces every record, with its key, value and timestamp,
 *    to a Kafka topic through an idempotent producer.  It commits the local
 *    position only past records whose delivery Kafka acknowledged.
 *
 *  - An importer appends the records of one partition of a Kafka topic to a
 *    local topic, keeping key, value and timestamp, and resumes after any
 *    crash without losing or repeating a record.
 *
 * It links librdkafka; libtopic itself does not.  Build with
 * `pkg-config --cflags --libs rdkafka` and -ltopic-kafka -ltopic.
 *
 * Conventions, as in topic.h:
 *  - An int result is 0 on success and negative on failure: a negative errno,
 *    a TOPIC_* code from topic.h (the local topic's errors pass through
 *    unchanged), or one of the TOPIC_KAFKA_E* codes below.
 *    topic_kafka_strerror() turns any of them into a message, and every
 *    handle keeps a longer message naming what failed (..._error()).
 *  - Passing NULL where a handle or an output pointer is required returns
 *    -EINVAL; it never crashes.  Free functions accept NULL.
 *  - Strings and arrays passed in are copied before the call returns.
 *  - A handle is driven by one thread at a time; only the *_stats()
 *    functions may be called from other threads while run() runs.
 *
 * Delivery guarantees
 * -------------------
 * Forwarding is at-least-once and keeps the order of the records of each
 * key.  Each record is produced with its key through a partitioner that
 * sends a key to one partition (murmur2, as Kafka's Java producer, by
 * default; records without a key all go to one partition too), by a producer
 * with enable.idempotence=true and acks=all, which keeps order within a
 * partition across retries.  Delivery reports come back in order within a
 * partition but not across partitions; the forwarder commits the local
 * position up to the lowest offset not yet acknowledged, so that every
 * record below the committed position is in Kafka.  After a crash or a
 * restart it produces again from the committed position: the records that
 * were in flight (produced, not yet acknowledged, or acknowledged but not yet
 * committed) may reach Kafka twice.  Each such copy comes after the earlier
 * copy in its partition (the new producer starts once the old one is gone:
 * its process died, or topic_kafka_forwarder_free() closed its connections),
 * so a consumer that drops records it has already seen for a key sees each
 * key's records once and in order.  Nothing else is ever repeated.
 *
 * Importing is exactly-once into the local topic.  The Kafka position is
 * stored in the local topic itself, as libtopic consumer-group positions,
 * in two alternating slots (see topic_kafka_importer_new()), and written only
 * after the records it covers are appended and synced; on restart the
 * importer knows how many records were appended after the last complete slot,
 * skips exactly that many Kafka records (checking that they equal the local
 * ones) and goes on.  A kill -9 at any instant, or a power loss, loses or
 * repeats nothing.
 *
 * SPDX-License-Identifier: BSD-2-Clause
 */
#ifndef TOPIC_KAFKA_H
#define TOPIC_KAFKA_H

#include <signal.h>
#include <stddef.h>
#include <stdint.h>

#include <topic.h>

#ifdef __cplusplus
extern "C" {
#endif

#define TOPIC_KAFKA_VERSION_MAJOR 0
#define TOPIC_KAFKA_VERSION_MINOR 1
#define TOPIC_KAFKA_VERSION_PATCH 0

#ifndef TOPIC_KAFKA_API
#  if defined(__GNUC__) && __GNUC__ >= 4
#    define TOPIC_KAFKA_API __attribute__((visibility("default")))
#  else
#    define TOPIC_KAFKA_API
#  endif
#endif

/* ------------------------------------------------------------------------ */
/* Return values                                                             */

/*
 * The bridge's own codes: negative, in -31001..-31099, clear of errno and of
 * libtopic's TOPIC_* codes.
 */
#define TOPIC_KAFKA_ERRNO_MAP(X)                                                       \
    X(ECONFIG,   -31001, "a Kafka client property was refused")                       \
    X(EKAFKA,    -31002, "the Kafka cluster or client reported an error")             \
    X(EFATAL,    -31003, "the Kafka producer failed for good; make a new forwarder")  \
    X(EDELIVERY, -31004, "Kafka refused a record for good; it was not forwarded")     \
    X(EMISMATCH, -31005, "the local topic does not match its import position")

enum {
#define TOPIC_KAFKA__ERRDEF(name, code, msg) TOPIC_KAFKA_##name = (code),
    TOPIC_KAFKA_ERRNO_MAP(TOPIC_KAFKA__ERRDEF)
#undef TOPIC_KAFKA__ERRDEF
    TOPIC_KAFKA_LAST_ERRCODE = TOPIC_KAFKA_EMISMATCH
};

/*
 * A static message for every TOPIC_KAFKA_* code, and topic_strerror()'s for
 * anything else (0, TOPIC_* codes, negative errno).  Never NULL.  Thread-safe.
 */
TOPIC_KAFKA_API const char *topic_kafka_strerror(int err);

/* The bridge's version, "MAJOR.MINOR.PATCH", and librdkafka's, both static. */
TOPIC_KAFKA_API const char *topic_kafka_version(void);
TOPIC_KAFKA_API const char *topic_kafka_rdkafka_version(void);

/* ------------------------------------------------------------------------ */
/* Properties                                                                */

/*
 * `props` arguments are NULL or a NULL-terminated array of "name=value"
 * strings.  Names are librdkafka configuration properties (see librdkafka's
 * CONFIGURATION.md: "compression.type=lz4", "linger.ms=20",
 * "security.protocol=ssl", ...), applied after the bridge's defaults so that
 * they override them, except for the few settings a guarantee rests on,
 * which are refused with TOPIC_KAFKA_ECONFIG when set to anything else.
 * Names beginning with "libtopic." are the bridge's own; an unknown one, or
 * one for the other side (an importer's given to a forwarder), is refused
 * with TOPIC_KAFKA_ECONFIG, a bad value with -EINVAL:
 *
 *   libtopic.flush.timeout.ms   forwarder: how long run() waits, once asked
 *                               to stop or after a failure, for the
 *                               acknowledgements of records in flight
 *                               (default 10000; 0 = do not wait).
 *                               Unacknowledged records are produced again
 *                               by the next forwarder of the group.
 *   libtopic.skip.deleted       forwarder: "false" (default) makes run()
 *                               fail with TOPIC_EGONE when records the group
 *                               has not forwarded were deleted (retention);
 *                               "true" goes on from the first record left
 *                               and counts the lost ones in skipped_deleted.
 *   libtopic.import.start       importer: where a partition never imported
 *                               into this topic starts: "earliest" (default),
 *                               "latest" or a Kafka offset.
 *   libtopic.import.batch.records
 *                               importer: most records appended and synced
 *                               as one step (default 10000; 1 .. 1000000).
 *   libtopic.import.batch.bytes importer: most key and value bytes in one
 *                               step, in plain digits (default 1048576;
 *                               1 .. 1073741824); a step larger than the
 *                               topic's max.message.bytes is split.
 *
 * Producer defaults (forwarder):  enable.idempotence=true and acks=all
 * (both fixed; transactional.id is refused), enable.gapless.guarantee=true
 * (a batch refused for good stops the producer before a later batch of its
 * partition is written), partitioner=murmur2, sticky.partitioning.linger.ms=0
 * (without it librdkafka spreads records without a key over partitions),
 * message.timeout.ms=0 (retry until delivered: a record that times out would
 * leave a hole that later records of its key could pass),
 * client.id=libtopic-forward, message.max.bytes=1100000 (librdkafka's own
 * 1000000 is below a topic's default max.message.bytes of 1 MiB; the
 * broker's limit still applies).  Keys stay on their partition only while the
 * Kafka topic's partition count stays the same.  enable.gapless.guarantee
 * and message.timeout.ms may be overridden, at a cost: a record that times
 * out then stops run() with TOPIC_KAFKA_EDELIVERY and the position stays on
 * it, so nothing is lost, but an outage longer than the timeout stops the
 * forwarder instead of being waited out; without the gapless guarantee,
 * records after a failed batch may already be in Kafka and are produced
 * again, after it, by the next forwarder of the group.
 *
 * Consumer defaults (importer):  group.id=libtopic-import (the group is
 * never joined and no offset is committed to Kafka; positions live in the
 * local topic), enable.auto.commit=false and enable.auto.offset.store=false
 * and enable.partition.eof=true (fixed), auto.offset.reset=error (the start
 * of the import was deleted by Kafka's retention: fail rather than skip),
 * client.id=libtopic-import.
 */

/* ------------------------------------------------------------------------ */
/* Forwarding: local topic -> Kafka                                          */

typedef struct topic_kafka_forwarder topic_kafka_forwarder;

/*
 * Makes a forwarder that forwards topic `t` to Kafka topic `kafka_topic` of
 * the cluster reached through `brokers` ("host:port,host:port"), as libtopic
 * consumer group `group` (NULL: "kafka-forward.<kafka_topic>", shortened
 * with a hash if too long for a group name).
 *
 * `t` may be a writer or a TOPIC_RDONLY handle: the forwarder only reads the
 * log and commits its group's position, so it can run in a process of its
 * own beside the writer.  The caller keeps `t` and must not close it before
 * topic_kafka_forwarder_free().  Run one forwarder per group at a time.
 *
 * The forwarder starts at the group's committed position, or at the topic's
 * start offset if the group never committed.  It creates the producer
 * (which connects in the background) but sends nothing until run().
 *
 * On failure *out is NULL and, when errbuf is not NULL, a message naming the
 * cause is copied into errbuf (at most errlen bytes with the NUL).
 * Errors: -EINVAL (NULL argument, an empty Kafka topic name or broker list,
 * a bad group name, including one longer than 128 characters, which is
 * refused rather than shortened; a property without '=', a bad libtopic.*
 * value), TOPIC_KAFKA_ECONFIG (librdkafka refused a property, or it would break the
 * guarantees), TOPIC_EGONE (the committed position is below the topic's
 * start offset and libtopic.skip.deleted is false), -ENOMEM, and the errors
 * of topic_committed() and topic_cursor_open().
 */
TOPIC_KAFKA_API int topic_kafka_forwarder_new(topic *t, const char *group, const char *brokers,
                                              const char *kafka_topic, const char *const *props,
                                              char *errbuf, size_t errlen,
                                              topic_kafka_forwarder **out);

/*
 * Forwards records until told to stop, or with `until_end` non-zero, until
 * the end of the topic.
 *
 * Each record from the forwarder's position on is produced to Kafka; as
 * acknowledgements arrive, the group's position is committed up to the first
 * record not yet acknowledged (commits are copies into a shared mapping:
 * several per second cost nothing).  At the end of the log it follows the
 * tail with topic_wait(), also when the writer is another process.  Each
 * record's timestamp becomes its Kafka CreateTime; an empty value is sent as
 * an empty value, not a null one; a record without a key has a null key, and
 * one with an empty key an empty key, which Kafka's partitioner hashes.
 *
 * until_end:  returns 0 once every record below the end offset seen when the
 *   forwarder caught up is acknowledged and committed.
 * stop:  NULL, or a flag (typically set by a signal handler) checked at
 *   least every 100 ms.  Once *stop is non-zero run() stops reading, waits
 *   up to libtopic.flush.timeout.ms for acknowledgements of what is in
 *   flight (not at all once *stop >= 2), commits, and returns 0.  Records
 *   still unacknowledged stay with the producer: a later run() on this handle
 *   delivers them, a new forwarder sends them again.
 *
 * While Kafka is unreachable, or a broker refuses requests for a while,
 * the producer retries without end; run() keeps waiting and the lag grows.
 * Meanwhile the records read but not acknowledged wait in the producer's
 * queue, in memory: up to librdkafka's queue.buffering.max.messages
 * (100000) and queue.buffering.max.kbytes (1 GiB) by default.  Lower them
 * among the properties to bound the memory a long outage takes.
 *
 * Errors (run() commits what was acknowledged before returning any of them):
 *   TOPIC_KAFKA_EDELIVERY  Kafka refused a record for good (too large for
 *                          the broker, no such topic, not authorised, ...):
 *                          the position stays on it; fix the cause and run
 *                          a new forwarder, or skip it by committing past it.
 *   TOPIC_KAFKA_EFATAL     the idempotent producer cannot go on (fenced,
 *                          sequence lost): free the forwarder and make a new
 *                          one, which resumes from the committed position.
 *   TOPIC_EGONE            records not yet forwarded were deleted meanwhile
 *                          by retention (see libtopic.skip.deleted).
 *   TOPIC_ECORRUPT, -EIO, -ENOSPC and friends from the local topic.
 * After an error, run() returns the same error again.
 */
TOPIC_KAFKA_API int topic_kafka_forward_run(topic_kafka_forwarder *f, int until_end,
                                            volatile sig_atomic_t *stop);

/* Progress of a forwarder.  Counters cover the life of the handle. */
typedef struct topic_kafka_forward_stats {
    uint64_t produced;        /* records read from the topic and handed to the producer */
    uint64_t acked;           /* of those, records Kafka acknowledged */
    uint64_t failed;          /* records Kafka refused for good */
    uint64_t in_flight;       /* produced and neither acknowledged nor failed */
    uint64_t skipped_deleted; /* records deleted before they could be read (skip.deleted) */
    uint64_t position;        /* next local offset to read */
    uint64_t committed;       /* the group's position: every record below it is in Kafka */
    uint64_t end_offset;      /* the topic's end offset now */
    uint64_t lag;             /* end_offset - committed: records not yet known in Kafka */
} topic_kafka_forward_stats;

/*
 * Fills *st.  May be called from any thread, also while run() runs.
 * Errors: -EINVAL.
 */
TOPIC_KAFKA_API int topic_kafka_forwarder_stats(topic_kafka_forwarder *f,
                                                topic_kafka_forward_stats *st);

/*
 * A message about the forwarder's last failure, or, if none, its last
 * transient error from the Kafka client (a broker down, a refused
 * connection: retried, reported for information), or "".  The string is
 * copied into buf (capacity cap, always NUL-terminated when cap > 0);
 * returns buf.  May be called from any thread.
 */
TOPIC_KAFKA_API const char *topic_kafka_forwarder_error(topic_kafka_forwarder *f, char *buf,
                                                        size_t cap);

/*
 * Serves the acknowledgements that already arrived and commits them, drops
 * whatever the producer still holds (it will be produced again from the
 * committed position by the next forwarder), closes the producer and frees
 * f.  Does not close the topic.  NULL is accepted.
 */
TOPIC_KAFKA_API void topic_kafka_forwarder_free(topic_kafka_forwarder *f);

/* ------------------------------------------------------------------------ */
/* Importing: one Kafka partition -> local topic                             */

typedef struct topic_kafka_importer topic_kafka_importer;

/*
 * Makes an importer that appends the records of partition `partition` of
 * Kafka topic `kafka_topic` to topic `t`, which must be a writer handle.
 * The caller keeps `t` and must not close it before
 * topic_kafka_importer_free().
 *
 * The import position lives in `t` as four libtopic consumer-group
 * positions, two slots A and B:
 *
 *     kafka-import.<kafka_topic>.<partition>.a.kafka   next Kafka offset
 *     kafka-import.<kafka_topic>.<partition>.a.local   local end offset then
 *     ... and the same with .b.
 *
 * (with <kafka_topic> shortened with a hash if the names would pass 128
 * characters).  After each step the importer appends the step's records,
 * commits the free slot's .kafka, syncs the topic, and commits the slot's
 * .local last.  A slot counts only once both positions exist; of the two,
 * the one with the larger .local is current.  A crash at any instant leaves
 * the previous slot whole, so on restart the importer knows (K, L): Kafka
 * offset K was next when the local end offset was L.  Every record at L or
 * above came from Kafka at K or after, so the importer consumes from K,
 * skips end_offset - L records, comparing each with the local record it
 * stands for (TOPIC_KAFKA_EMISMATCH if they differ), and appends from there.
 *
 * What follows: while an import runs into a topic, nothing else may append
 * to it, since a foreign record would be taken for an imported one (the
 * importer checks the end offset before each step and fails with
 * TOPIC_KAFKA_EMISMATCH if it moved).  Records need not be imported into
 * an empty topic; import only one partition into one topic at a time.
 *
 * Records: key, value and timestamp are kept.  A Kafka record without a key
 * becomes a local record without a key, and one with an empty key a local
 * record with an empty key; a null value (a tombstone) becomes
 * an empty value; headers are dropped; a record without a usable timestamp
 * (or timestamp <= 0) gets the append time.
 *
 * Sends nothing until run().  On failure *out is NULL and errbuf holds a
 * message as for topic_kafka_forwarder_new().  Errors: -EINVAL (NULL
 * argument, an empty broker list, partition < 0, bad libtopic.* value),
 * TOPIC_KAFKA_ECONFIG,
 * -ENOMEM, and the errors of topic_committed().
 */
TOPIC_KAFKA_API int topic_kafka_importer_new(topic *t, const char *brokers,
                                             const char *kafka_topic, int32_t partition,
                                             const char *const *props, char *errbuf,
                                             size_t errlen, topic_kafka_importer **out);

/*
 * Imports records until told to stop, or with `until_end` non-zero, until
 * it has reached the end of the partition (the high watermark Kafka reports
 * when the importer gets there).  `stop` is as for topic_kafka_forward_run():
 * once *stop is non-zero, the records already fetched are appended and the
 * position stored before run() returns 0.
 *
 * The first run() on a partition never imported into `t` resolves
 * libtopic.import.start against the cluster and stores it as the position
 * before appending anything.  Each attempt at that lookup waits up to 2 s
 * for the cluster, and `stop` is checked between attempts: while the
 * cluster cannot be reached, run() returns up to 2 s after *stop is set.
 *
 * Errors:
 *   TOPIC_KAFKA_EKAFKA     the partition or topic does not exist, the
 *                          position was deleted by Kafka's retention
 *                          (auto.offset.reset=error), not authorised, ...
 *   TOPIC_KAFKA_EMISMATCH  the local topic has fewer records than the
 *                          import position says, another writer appended
 *                          to it, or the Kafka records found after a crash
 *                          differ from those appended before it.
 *   TOPIC_ETOOBIG          a Kafka record is larger than the topic's
 *                          max.message.bytes: raise it and run again.
 *   TOPIC_ERDONLY, TOPIC_EFAILED, -EIO, -ENOSPC and friends from the topic.
 * The import position stays consistent with the topic after any error: the
 * next importer resumes correctly.
 */
TOPIC_KAFKA_API int topic_kafka_import_run(topic_kafka_importer *im, int until_end,
                                           volatile sig_atomic_t *stop);

/* Progress of an importer.  Counters cover the life of the handle. */
typedef struct topic_kafka_import_stats {
    uint64_t imported;        /* records appended to the local topic */
    uint64_t skipped;         /* records found already appended after a crash */
    int64_t  next_offset;     /* next Kafka offset to import; -1 before the first run() */
    int64_t  high_watermark;  /* Kafka's end of the partition when last fetched; -1 unknown */
    int64_t  lag;             /* high_watermark - next_offset; -1 unknown */
    uint64_t local_end;       /* the local topic's end offset now */
} topic_kafka_import_stats;

/* Fills *st.  May be called from any thread.  Errors: -EINVAL. */
TOPIC_KAFKA_API int topic_kafka_importer_stats(topic_kafka_importer *im,
                                               topic_kafka_import_stats *st);

/* As topic_kafka_forwarder_error(), for an importer. */
TOPIC_KAFKA_API const char *topic_kafka_importer_error(topic_kafka_importer *im, char *buf,
                                                       size_t cap);

/* Closes the consumer and frees im.  Does not close the topic.  NULL is accepted. */
TOPIC_KAFKA_API void topic_kafka_importer_free(topic_kafka_importer *im);

/*
 * The whole import in one call: topic_kafka_importer_new(), run(), free().
 * Returns what failed first; errbuf (may be NULL) then holds its message.
 */
TOPIC_KAFKA_API int topic_kafka_import(topic *t, const char *brokers, const char *kafka_topic,
                                       int32_t partition, const char *const *props,
                                       int until_end, volatile sig_atomic_t *stop,
                                       char *errbuf, size_t errlen);

#ifdef __cplusplus
}
#endif
#endif /* TOPIC_KAFKA_H */
