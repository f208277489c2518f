/*
 * Shared by the forwarder and the importer: property lists, messages, names.
 *
 * SPDX-License-Identifier: BSD-2-Clause
 */
#ifndef TOPIC_KAFKA_INTERNAL_H
#define TOPIC_KAFKA_INTERNAL_H

#include <librdkafka/rdkafka.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>

#include "topic_kafka.h"

#define TK_GROUP_MAX 128      /* libtopic's longest group name */
#define TK_MSG_MAX   512

/*
 * A message that one thread writes and others may copy out: a failure, or
 * the last transient error of the Kafka client.
 */
struct tk_msg {
    pthread_mutex_t lock;
    char text[TK_MSG_MAX];
};

void tk_msg_init(struct tk_msg *m);
void tk_msg_destroy(struct tk_msg *m);
void tk_msg_set(struct tk_msg *m, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void tk_msg_vset(struct tk_msg *m, const char *fmt, va_list ap);
const char *tk_msg_copy(struct tk_msg *m, char *buf, size_t cap);

/* snprintf into errbuf when it is not NULL. */
void tk_errbuf(char *errbuf, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/*
 * One property of a "props" array, split at its first '='.  Names starting
 * with "libtopic." are the bridge's; the rest go to librdkafka.
 */
struct tk_prop {
    char name[128];
    const char *value;        /* points into the caller's string */
};

/* Splits props[i]; -EINVAL (message in errbuf) if it has no '=' or a name
 * too long to be a property. */
int tk_prop_split(const char *prop, struct tk_prop *out, char *errbuf, size_t errlen);

/* -EINVAL, with a message, when conf names no broker at all: librdkafka
 * accepts that and would wait for ever. */
int tk_check_brokers(const rd_kafka_conf_t *conf, char *errbuf, size_t errlen);

/*
 * Sets name=value on conf; TOPIC_KAFKA_ECONFIG with librdkafka's reason in
 * errbuf when refused.
 */
int tk_conf_set(rd_kafka_conf_t *conf, const char *name, const char *value, char *errbuf,
                size_t errlen);

/*
 * Parses a decimal integer in [lo, hi]; -EINVAL with a message naming
 * `name` otherwise.
 */
int tk_parse_i64(const char *name, const char *value, int64_t lo, int64_t hi, int64_t *out,
                 char *errbuf, size_t errlen);

/* Parses "true"/"false" (also 1/0, yes/no). */
int tk_parse_bool(const char *name, const char *value, bool *out, char *errbuf, size_t errlen);

/*
 * Writes "<prefix><name><suffix>" into out (TK_GROUP_MAX + 1 bytes), a valid
 * libtopic group name: characters outside [A-Za-z0-9._-] become '_', and a
 * name too long keeps the start of `name` and appends a hash of all of it.
 */
void tk_group_name(char *out, const char *prefix, const char *name, const char *suffix);

/* Milliseconds of CLOCK_MONOTONIC. */
int64_t tk_now_ms(void);

/* librdkafka's logger, less the warning about a property the bridge sets
 * on purpose. */
void tk_log(const rd_kafka_t *rk, int level, const char *fac, const char *buf);

/* rd_kafka's message for err. */
const char *tk_kerr(rd_kafka_resp_err_t err);

/* Test hook: the importer calls it at each step of storing its position
 * (point 1: appended, 2: .kafka committed, 3: synced, 4: .local committed).
 * A non-zero return makes run() return -ECANCELED at once, writing nothing
 * more, as if the process had died there.  NULL in normal use. */
extern int (*topic_kafka__import_hook)(int point);

#endif
