/*
 * A small test harness for the Kafka bridge: checks, a mock cluster, a
 * deterministic record generator, and reading a whole Kafka topic back.
 *
 * SPDX-License-Identifier: BSD-2-Clause
 */
#ifndef KAFKA_TEST_HARNESS_H
#define KAFKA_TEST_HARNESS_H

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#include "topic_kafka.h"

/* ---- checks ---- */

extern int test_failed;     /* set by a failing CHECK in the current test */

#define CHECK(cond, ...)                                                           \
    do {                                                                           \
        if (!(cond)) {                                                             \
            test_failed = 1;                                                       \
            fprintf(stderr, "  FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond);     \
            fprintf(stderr, __VA_ARGS__);                                          \
            fputc('\n', stderr);                                                   \
        }                                                                          \
    } while (0)

/* As CHECK, but leaves the test function (which returns void).  `cond` is
 * evaluated once: it is often the call under test. */
#define REQUIRE(cond, ...)                                                         \
    do {                                                                           \
        bool ok_ = (cond);                                                         \
        if (!ok_) {                                                                \
            test_failed = 1;                                                       \
            fprintf(stderr, "  FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond);     \
            fprintf(stderr, __VA_ARGS__);                                          \
            fputc('\n', stderr);                                                   \
            return;                                                                \
        }                                                                          \
    } while (0)

#define CHECK_RC(expr)                                                             \
    do {                                                                           \
        int rc_ = (expr);                                                          \
        CHECK(rc_ == 0, "%s", topic_kafka_strerror(rc_));                          \
    } while (0)

#define REQUIRE_RC(expr)                                                           \
    do {                                                                           \
        int rc_ = (expr);                                                          \
        REQUIRE(rc_ == 0, "%s", topic_kafka_strerror(rc_));                        \
    } while (0)

/* Lines that end up in the final report (throughput, duplicates). */
void note(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void print_notes(void);

double now_s(void);
void sleep_ms(int ms);
uint64_t mix64(uint64_t x);
uint64_t rnd(void);                    /* a test-wide PRNG, seeded by TEST_SEED */

/* ---- temporary directories ---- */

/* A fresh directory under the run's scratch directory, e.g. "<tmp>/name". */
const char *scratch(const char *name);
void scratch_cleanup(void);

/* ---- the mock cluster ---- */

struct mock {
    rd_kafka_t *rk;                    /* the handle that owns the cluster */
    rd_kafka_mock_cluster_t *mc;
    char bootstraps[256];
};

int mock_start(struct mock *m, int brokers);
void mock_stop(struct mock *m);

/* A client of the cluster, quiet (log_level 2), extra "k=v" props or NULL. */
rd_kafka_t *kafka_client(const char *bootstraps, rd_kafka_type_t type, const char *const *props);

/* ---- the generated records of the forwarding tests ---- */

/* Key classes: 0 is the empty key (present, 0 bytes), 1 .. 63 are key-01 ..
 * key-63, and GEN_KEYS is "no key" (NULL), which Kafka tells apart from empty. */
#define GEN_KEYS 64

struct gen {
    char key[16];
    size_t key_len;
    bool keyed;                        /* false: no key at all */
    char value[100];
    int64_t timestamp;
    unsigned key_class;                /* 0 .. GEN_KEYS-1, or GEN_KEYS for "no key" */
};

void gen_record(uint64_t offset, struct gen *g);

/* Appends records [from, to) of the generated sequence to t. */
int gen_append(topic *t, uint64_t from, uint64_t to);

/* ---- reading Kafka back ---- */

struct kmsg {
    int32_t partition;
    int64_t offset;
    int64_t timestamp;
    char *key;                         /* NULL: null key */
    size_t key_len;
    char *value;                       /* NULL: null value */
    size_t value_len;
};

struct kmsgs {
    struct kmsg *v;
    size_t n, cap;
};

/*
 * Reads every record of `topic` (partitions 0..npart-1, or only `only` if
 * >= 0) from the beginning to the high watermark, in order within each
 * partition.  Returns 0 or -1.
 */
int kafka_read_all(const char *bootstraps, const char *ktopic, int npart, int only,
                   struct kmsgs *out);
void kmsgs_free(struct kmsgs *k);

/* Per partition: the high watermark, through client rk.  Returns 0 or -1. */
int kafka_watermarks(rd_kafka_t *rk, const char *ktopic, int npart, int64_t *hi);

/*
 * Checks the forwarded copy of generated records [0, n): every one is there,
 * each key's records first appear in offset order, each key sits on one
 * partition, and every copy carries the right key, value and timestamp.
 * Returns the number of duplicates (copies beyond the first), -1 on failure
 * (reported through CHECK).  If `dup_ok` is not NULL, it is called for
 * every duplicate and must return true for it to be acceptable.
 */
long verify_forwarded(const struct kmsgs *k, uint64_t n,
                      bool (*dup_ok)(const struct kmsg *m, uint64_t offset, void *arg),
                      void *arg);

/* ---- child processes ---- */

/* The topic-kafka tool under test ($TOPIC_KAFKA_TOOL, else ./topic-kafka). */
const char *tool_path(void);

/* fork + exec argv with stdout and stderr appended to log; returns the pid. */
pid_t spawn(char *const argv[], const char *log);

/* waitpid; returns the exit status, 128+signal if killed, -1 on error. */
int wait_child(pid_t pid);

#endif
