/*
 * Whole-topic tests through the public API (include/topic.h): lifecycle and
 * flags, appending and reading back, batches, segment rotation, settings,
 * errors and bad arguments, cursors and time seeks, read-only handles, the
 * writer lock and concurrent readers.
 *
 * SPDX-License-Identifier: BSD-2-Clause
 */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "topic.h"
#include "testutil.h"
#include "topic_asserts.h"

/* ------------------------------------------------------------------------ */
/* Fixture: a fresh temporary root per test; topics live in <root>/t...      */

typedef struct fx {
    char *root;
    char *dir; /* <root>/t: not created; topic_open(TOPIC_CREATE) makes it */
} fx;

static int fx_setup(void **state)
{
    fx *f = calloc(1, sizeof *f);
    if (!f)
        return -1;
    f->root = tu_mkdtemp("api");
    if (!f->root) {
        free(f);
        return -1;
    }
    f->dir = tu_path(f->root, "t");
    *state = f;
    return 0;
}

static int fx_teardown(void **state)
{
    fx *f = *state;
    if (f) {
        tu_rmrf(f->root);
        free(f->root);
        free(f->dir);
        free(f);
    }
    return 0;
}

/* Builds a configuration from NULL-terminated name, value pairs. */
static topic_config *conf_of(const char *name, ...)
{
    topic_config *c = topic_config_new();
    assert_non_null(c);
    va_list ap;
    va_start(ap, name);
    for (const char *n = name; n; n = va_arg(ap, const char *)) {
        const char *v = va_arg(ap, const char *);
        int rc = topic_config_set(c, n, v);
        if (rc != 0)
            fail_msg("topic_config_set(%s, %s) = %d (%s): %s", n, v, rc,
                     topic_strerror(rc), topic_config_error(c));
    }
    va_end(ap);
    return c;
}

static topic *open_ok(const char *dir, int flags, const topic_config *conf)
{
    topic *t = NULL;
    int rc = topic_open(dir, flags, conf, &t);
    if (rc != 0)
        fail_msg("topic_open(%s, %#x) = %d (%s)", dir, flags, rc, topic_strerror(rc));
    assert_non_null(t);
    return t;
}

/* Opens (creating) a topic with the given settings (NULL-terminated pairs). */
static topic *create_with(const char *dir, const char *name, ...)
{
    topic_config *c = topic_config_new();
    assert_non_null(c);
    va_list ap;
    va_start(ap, name);
    for (const char *n = name; n; n = va_arg(ap, const char *)) {
        const char *v = va_arg(ap, const char *);
        int rc = topic_config_set(c, n, v);
        if (rc != 0)
            fail_msg("topic_config_set(%s, %s) = %d (%s)", n, v, rc, topic_strerror(rc));
    }
    va_end(ap);
    topic *t = open_ok(dir, TOPIC_CREATE, c);
    topic_config_free(c);
    return t;
}

/* ------------------------------------------------------------------------ */
/* A model of what was appended: contents derive from the offset and a seed; */
/* the model remembers per offset whether it has a key and its timestamp.   */

#define TS_NOW (-1) /* appended with timestamp 0: "now" */

typedef struct model {
    uint64_t seed;
    size_t maxlen;  /* largest value */
    uint64_t n;     /* records appended = expected end offset */
    uint64_t cap;
    unsigned char *has_key;
    int64_t *ts;    /* TS_NOW or the explicit timestamp */
    int64_t t_lo;   /* wall clock bounds of "now" appends */
    int64_t t_hi;
} model;

static void model_init(model *m, uint64_t seed, size_t maxlen)
{
    memset(m, 0, sizeof *m);
    m->seed = seed;
    m->maxlen = maxlen;
    m->t_lo = tu_now_ms() - 1000;
}

static void model_free(model *m)
{
    free(m->has_key);
    free(m->ts);
    memset(m, 0, sizeof *m);
}

static void model_grow(model *m, uint64_t need)
{
    if (need <= m->cap)
        return;
    uint64_t cap = m->cap ? m->cap : 256;
    while (cap < need)
        cap *= 2;
    m->has_key = realloc(m->has_key, cap);
    m->ts = realloc(m->ts, cap * sizeof *m->ts);
    assert_non_null(m->has_key);
    assert_non_null(m->ts);
    m->cap = cap;
}

static size_t key_len_of(uint64_t off, uint64_t seed)
{
    return 1 + (size_t)(tu_mix64(off ^ seed ^ 0x4b4559ull) % 24);
}

static void key_fill(uint64_t off, uint64_t seed, void *buf, size_t len)
{
    tu_fill(off, seed ^ 0x6b65796b6579ull, buf, len);
}

static int key_check(uint64_t off, uint64_t seed, const void *buf, size_t len)
{
    return tu_check_fill(off, seed ^ 0x6b65796b6579ull, buf, len);
}

/* Appends one record with topic_append and checks its offset. */
static void model_append(model *m, topic *t)
{
    uint64_t off = m->n;
    size_t len = tu_value_len(off, m->seed, m->maxlen);
    unsigned char *buf = malloc(len ? len : 1);
    assert_non_null(buf);
    tu_fill(off, m->seed, buf, len);
    uint64_t got = UINT64_MAX;
    assert_ok(topic_append(t, len ? buf : NULL, len, &got));
    assert_u64(got, off);
    free(buf);
    model_grow(m, off + 1);
    m->has_key[off] = 0;
    m->ts[off] = TS_NOW;
    m->n++;
    m->t_hi = tu_now_ms() + 1000;
}

/*
 * Appends k records as one batch.  with_keys: every record gets a key;
 * ts: NULL = timestamps "now", else explicit timestamps ts[0..k).
 */
static void model_append_batch(model *m, topic *t, size_t k, int with_keys, const int64_t *ts)
{
    topic_record *recs = calloc(k ? k : 1, sizeof *recs);
    unsigned char **bufs = calloc(k ? k : 1, sizeof *bufs);
    unsigned char **keys = calloc(k ? k : 1, sizeof *keys);
    assert_non_null(recs);
    for (size_t i = 0; i < k; i++) {
        uint64_t off = m->n + i;
        size_t len = tu_value_len(off, m->seed, m->maxlen);
        bufs[i] = malloc(len ? len : 1);
        tu_fill(off, m->seed, bufs[i], len);
        recs[i].offset = 0xdeadbeefull + i; /* ignored by the library */
        recs[i].timestamp = ts ? ts[i] : 0;
        recs[i].value = len ? bufs[i] : NULL;
        recs[i].value_len = len;
        if (with_keys) {
            size_t kl = key_len_of(off, m->seed);
            keys[i] = malloc(kl);
            key_fill(off, m->seed, keys[i], kl);
            recs[i].key = keys[i];
            recs[i].key_len = kl;
        }
    }
    uint64_t first = UINT64_MAX;
    assert_ok(topic_append_batch(t, recs, k, &first));
    if (k > 0)
        assert_u64(first, m->n);
    model_grow(m, m->n + k + 1);
    for (size_t i = 0; i < k; i++) {
        m->has_key[m->n + i] = (unsigned char)(with_keys != 0);
        m->ts[m->n + i] = ts ? ts[i] : TS_NOW;
        free(bufs[i]);
        free(keys[i]);
    }
    m->n += k;
    m->t_hi = tu_now_ms() + 1000;
    free(recs);
    free(bufs);
    free(keys);
}

/* Checks one record filled by a cursor against the model. */
static void model_check_rec(const model *m, uint64_t off, const topic_record *r)
{
    if (r->offset != off)
        fail_msg("cursor gave offset %llu, expected %llu", (unsigned long long)r->offset,
                 (unsigned long long)off);
    size_t len = tu_value_len(off, m->seed, m->maxlen);
    if (r->value_len != len)
        fail_msg("offset %llu: value_len %zu, expected %zu", (unsigned long long)off,
                 r->value_len, len);
    if (len && (!r->value || !tu_check_fill(off, m->seed, r->value, len)))
        fail_msg("offset %llu: value bytes differ", (unsigned long long)off);
    if (m->has_key[off]) {
        size_t kl = key_len_of(off, m->seed);
        if (r->key_len != kl || !r->key || !key_check(off, m->seed, r->key, kl))
            fail_msg("offset %llu: key differs (len %zu, expected %zu)",
                     (unsigned long long)off, r->key_len, kl);
    } else {
        if (r->key_len != 0 || r->key != NULL)
            fail_msg("offset %llu: appended without a key but cursor gave key %p len %zu",
                     (unsigned long long)off, r->key, r->key_len);
    }
    if (m->ts[off] == TS_NOW) {
        if (r->timestamp < m->t_lo || r->timestamp > m->t_hi)
            fail_msg("offset %llu: 'now' timestamp %lld outside [%lld, %lld]",
                     (unsigned long long)off, (long long)r->timestamp, (long long)m->t_lo,
                     (long long)m->t_hi);
    } else if (r->timestamp != m->ts[off]) {
        fail_msg("offset %llu: timestamp %lld, expected %lld", (unsigned long long)off,
                 (long long)r->timestamp, (long long)m->ts[off]);
    }
}

/* Reads [from, to) with topic_read and with a cursor and checks everything,
 * then checks that reading at the end gives TOPIC_END. */
static void model_verify(const model *m, topic *t, uint64_t from, uint64_t to)
{
    size_t cap = m->maxlen + 1;
    unsigned char *buf = malloc(cap);
    assert_non_null(buf);
    for (uint64_t off = from; off < to; off++) {
        size_t len = SIZE_MAX;
        int rc = topic_read(t, off, buf, cap, &len);
        if (rc != 0)
            fail_msg("topic_read(%llu) = %d (%s)", (unsigned long long)off, rc,
                     topic_strerror(rc));
        size_t exp = tu_value_len(off, m->seed, m->maxlen);
        if (len != exp)
            fail_msg("topic_read(%llu): len %zu, expected %zu", (unsigned long long)off, len, exp);
        if (!tu_check_fill(off, m->seed, buf, len))
            fail_msg("topic_read(%llu): bytes differ", (unsigned long long)off);
    }
    topic_cursor *c = NULL;
    assert_ok(topic_cursor_open(t, from, &c));
    for (uint64_t off = from; off < to; off++) {
        topic_record r;
        memset(&r, 0, sizeof r);
        assert_u64(topic_cursor_offset(c), off);
        int rc = topic_cursor_next(c, &r);
        if (rc != 0)
            fail_msg("topic_cursor_next at %llu = %d (%s)", (unsigned long long)off, rc,
                     topic_strerror(rc));
        model_check_rec(m, off, &r);
    }
    if (to == m->n) {
        topic_record r;
        assert_rc(topic_cursor_next(c, &r), TOPIC_END);
        assert_u64(topic_cursor_offset(c), m->n);
        size_t len = 0;
        assert_rc(topic_read(t, m->n, buf, cap, &len), TOPIC_END);
    }
    topic_cursor_close(c);
    free(buf);
}

/* Parses a size as the library may print it: digits with an optional K/M/G. */
static int parse_size(const char *s, uint64_t *out)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || end == s)
        return -1;
    if (*end == 'K' || *end == 'k')
        v <<= 10, end++;
    else if (*end == 'M' || *end == 'm')
        v <<= 20, end++;
    else if (*end == 'G' || *end == 'g')
        v <<= 30, end++;
    if (*end)
        return -1;
    *out = v;
    return 0;
}

static uint64_t conf_get_num(const topic_config *c, const char *name)
{
    char buf[64];
    memset(buf, 0, sizeof buf);
    int rc = topic_config_get(c, name, buf, sizeof buf);
    if (rc != 0)
        fail_msg("topic_config_get(%s) = %d (%s)", name, rc, topic_strerror(rc));
    uint64_t v = 0;
    if (parse_size(buf, &v) != 0)
        fail_msg("topic_config_get(%s) gave \"%s\", not a number", name, buf);
    return v;
}

/* ------------------------------------------------------------------------ */
/* Version and messages                                                      */

static void test_version(void **state)
{
    (void)state;
    char want[64];
    snprintf(want, sizeof want, "%d.%d.%d", TOPIC_VERSION_MAJOR, TOPIC_VERSION_MINOR,
             TOPIC_VERSION_PATCH);
    assert_non_null(topic_version());
    assert_string_equal(topic_version(), want);
    assert_int_equal(topic_version_number(), TOPIC_VERSION_NUMBER);
    assert_int_equal(TOPIC_VERSION_NUMBER,
                     TOPIC_VERSION_MAJOR * 10000 + TOPIC_VERSION_MINOR * 100 + TOPIC_VERSION_PATCH);
}

static void test_strerror(void **state)
{
    (void)state;
    static const struct {
        int code;
        const char *msg;
    } codes[] = {
#define X(name, code, msg) { TOPIC_##name, msg },
        TOPIC_ERRNO_MAP(X)
#undef X
    };
    size_t n = sizeof codes / sizeof codes[0];
    assert_int_equal(n, 9);
    assert_int_equal(TOPIC_LAST_ERRCODE, TOPIC_EVERSION);
    for (size_t i = 0; i < n; i++) {
        assert_true(codes[i].code < -30000);
        const char *s = topic_strerror(codes[i].code);
        assert_non_null(s);
        assert_true(strlen(s) > 0);
        /* The header generates codes and messages from one list. */
        assert_string_equal(s, codes[i].msg);
        for (size_t j = 0; j < i; j++) {
            assert_int_not_equal(codes[i].code, codes[j].code);
            if (!strcmp(s, topic_strerror(codes[j].code)))
                fail_msg("codes %d and %d share the message \"%s\"", codes[i].code,
                         codes[j].code, s);
        }
    }
    static const int errs[] = { EINVAL, ENOENT, EEXIST, ENOTDIR, EACCES, ENOMEM,
                                EIO,    ENOSPC, ETIMEDOUT, EAGAIN };
    size_t ne = sizeof errs / sizeof errs[0];
    for (size_t i = 0; i < ne; i++) {
        const char *s = topic_strerror(-errs[i]);
        assert_non_null(s);
        assert_true(strlen(s) > 0);
        for (size_t j = 0; j < n; j++)
            if (!strcmp(s, topic_strerror(codes[j].code)))
                fail_msg("-errno %d has the message of library code %d", errs[i], codes[j].code);
        for (size_t j = 0; j < i; j++)
            if (!strcmp(s, topic_strerror(-errs[j])))
                fail_msg("-%d and -%d share the message \"%s\"", errs[i], errs[j], s);
    }
    /* 0 and values outside every range still give a message. */
    assert_non_null(topic_strerror(0));
    assert_true(strlen(topic_strerror(0)) > 0);
    assert_non_null(topic_strerror(1));
    assert_non_null(topic_strerror(12345));
    assert_non_null(topic_strerror(-30000));
    assert_non_null(topic_strerror(-30800));
    assert_non_null(topic_strerror(-30810));
    assert_non_null(topic_strerror(-29999));
    assert_non_null(topic_strerror(-4096));
    assert_non_null(topic_strerror(INT_MIN));
    assert_non_null(topic_strerror(INT_MAX));
}

/* ------------------------------------------------------------------------ */
/* Configuration                                                             */

static void expect_set(topic_config *c, const char *name, const char *value, int expected)
{
    int rc = topic_config_set(c, name, value);
    if (rc != expected)
        fail_msg("topic_config_set(\"%s\", \"%s\") = %d (%s), expected %d", name,
                 value ? value : "(null)", rc, topic_strerror(rc), expected);
    if (expected != 0) {
        const char *why = topic_config_error(c);
        assert_non_null(why);
        if (why[0] == '\0')
            fail_msg("topic_config_set(\"%s\", \"%s\") refused without a message", name,
                     value ? value : "(null)");
    }
}

static void test_config_defaults_and_get(void **state)
{
    (void)state;
    topic_config *c = topic_config_new();
    assert_non_null(c);
    assert_non_null(topic_config_error(c));
    assert_string_equal(topic_config_error(c), "");

    assert_u64(conf_get_num(c, "segment.bytes"), 1073741824ull);
    assert_u64(conf_get_num(c, "segment.ms"), 604800000ull);
    assert_u64(conf_get_num(c, "index.interval.bytes"), 1024);
    assert_u64(conf_get_num(c, "max.message.bytes"), 1048576);
    assert_u64(conf_get_num(c, "flush.messages"), 0);
    assert_u64(conf_get_num(c, "flush.ms"), 1000);
    char buf[64];
    assert_ok(topic_config_get(c, "compression.type", buf, sizeof buf));
    assert_string_equal(buf, "none");
    assert_ok(topic_config_get(c, "retention.bytes", buf, sizeof buf));
    assert_ok(topic_config_get(c, "retention.ms", buf, sizeof buf));

    /* Values set are reported back. */
    assert_ok(topic_config_set(c, "segment.bytes", "5000"));
    assert_ok(topic_config_get(c, "segment.bytes", buf, sizeof buf));
    assert_string_equal(buf, "5000");
    assert_ok(topic_config_set(c, "segment.bytes", "4K"));
    assert_u64(conf_get_num(c, "segment.bytes"), 4096);
    assert_ok(topic_config_set(c, "max.message.bytes", "2M"));
    assert_u64(conf_get_num(c, "max.message.bytes"), 2u << 20);
    assert_ok(topic_config_set(c, "flush.ms", "250"));
    assert_u64(conf_get_num(c, "flush.ms"), 250);
    assert_ok(topic_config_set(c, "compression.type", "lz4"));
    assert_ok(topic_config_get(c, "compression.type", buf, sizeof buf));
    assert_string_equal(buf, "lz4");

    /* A refused set leaves the old value. */
    assert_ok(topic_config_set(c, "segment.bytes", "8192"));
    expect_set(c, "segment.bytes", "abc", -EINVAL);
    assert_u64(conf_get_num(c, "segment.bytes"), 8192);

    /* Buffer too small; exact fit works. */
    assert_ok(topic_config_set(c, "flush.ms", "123456"));
    memset(buf, 0, sizeof buf);
    assert_rc(topic_config_get(c, "flush.ms", buf, 6), TOPIC_ETOOSMALL);
    assert_ok(topic_config_get(c, "flush.ms", buf, 7));
    assert_string_equal(buf, "123456");
    assert_rc(topic_config_get(c, "compression.type", buf, 1), TOPIC_ETOOSMALL);

    /* Bad arguments. */
    assert_rc(topic_config_get(c, "no.such.setting", buf, sizeof buf), -EINVAL);
    assert_rc(topic_config_get(NULL, "segment.bytes", buf, sizeof buf), -EINVAL);
    assert_rc(topic_config_get(c, NULL, buf, sizeof buf), -EINVAL);
    topic_config_free(c);
    topic_config_free(NULL);
}

static void test_config_set_values(void **state)
{
    (void)state;
    topic_config *c = topic_config_new();
    assert_non_null(c);

    /* segment.bytes: 4096 .. 1G */
    expect_set(c, "segment.bytes", "4096", 0);
    expect_set(c, "segment.bytes", "4K", 0);
    expect_set(c, "segment.bytes", "64M", 0);
    expect_set(c, "segment.bytes", "1G", 0);
    expect_set(c, "segment.bytes", "1073741824", 0);
    expect_set(c, "segment.bytes", "4095", -EINVAL);
    expect_set(c, "segment.bytes", "0", -EINVAL);
    expect_set(c, "segment.bytes", "1073741825", -EINVAL);
    expect_set(c, "segment.bytes", "2G", -EINVAL);
    expect_set(c, "segment.bytes", "abc", -EINVAL);
    expect_set(c, "segment.bytes", "-1", -EINVAL);
    expect_set(c, "segment.bytes", "-4096", -EINVAL);
    expect_set(c, "segment.bytes", "10X", -EINVAL);
    expect_set(c, "segment.bytes", "4096abc", -EINVAL);
    expect_set(c, "segment.bytes", "", -EINVAL);
    expect_set(c, "segment.bytes", "99999999999999999999999999", -EINVAL);
    expect_set(c, "segment.bytes", "18446744073709551616", -EINVAL);

    /* index.interval.bytes: 1 .. 16M */
    expect_set(c, "index.interval.bytes", "1", 0);
    expect_set(c, "index.interval.bytes", "4096", 0);
    expect_set(c, "index.interval.bytes", "16M", 0);
    expect_set(c, "index.interval.bytes", "0", -EINVAL);
    expect_set(c, "index.interval.bytes", "16777217", -EINVAL);
    expect_set(c, "index.interval.bytes", "-1", -EINVAL);
    expect_set(c, "index.interval.bytes", "abc", -EINVAL);

    /* max.message.bytes: 1 .. 256M */
    expect_set(c, "max.message.bytes", "1", 0);
    expect_set(c, "max.message.bytes", "1M", 0);
    expect_set(c, "max.message.bytes", "256M", 0);
    expect_set(c, "max.message.bytes", "0", -EINVAL);
    expect_set(c, "max.message.bytes", "268435457", -EINVAL);
    expect_set(c, "max.message.bytes", "1G", -EINVAL);
    expect_set(c, "max.message.bytes", "10X", -EINVAL);

    /* flush.messages, flush.ms, segment.ms */
    expect_set(c, "flush.messages", "0", 0);
    expect_set(c, "flush.messages", "1", 0);
    expect_set(c, "flush.messages", "1000", 0);
    expect_set(c, "flush.messages", "-1", -EINVAL);
    expect_set(c, "flush.messages", "abc", -EINVAL);
    expect_set(c, "flush.ms", "0", 0);
    expect_set(c, "flush.ms", "1000", 0);
    expect_set(c, "flush.ms", "-1", -EINVAL);
    expect_set(c, "flush.ms", "abc", -EINVAL);
    expect_set(c, "flush.ms", "10X", -EINVAL);
    expect_set(c, "segment.ms", "0", 0);
    expect_set(c, "segment.ms", "604800000", 0);
    expect_set(c, "segment.ms", "-1", -EINVAL);
    expect_set(c, "segment.ms", "1.5", -EINVAL);

    /* retention.*, compression.type */
    expect_set(c, "retention.bytes", "1G", 0);
    expect_set(c, "retention.ms", "86400000", 0);
    expect_set(c, "retention.ms", "abc", -EINVAL);
    expect_set(c, "compression.type", "none", 0);
    expect_set(c, "compression.type", "lz4", 0);
    expect_set(c, "compression.type", "bogus", -EINVAL);
    expect_set(c, "compression.type", "", -EINVAL);

    /* unknown names */
    expect_set(c, "segment.byte", "4096", -EINVAL);
    expect_set(c, "no.such.setting", "1", -EINVAL);
    expect_set(c, "", "1", -EINVAL);

    /* NULL arguments */
    assert_rc(topic_config_set(NULL, "segment.bytes", "4096"), -EINVAL);
    assert_rc(topic_config_set(c, NULL, "4096"), -EINVAL);
    assert_rc(topic_config_set(c, "segment.bytes", NULL), -EINVAL);
    topic_config_free(c);
}

/* ------------------------------------------------------------------------ */
/* Lifecycle                                                                 */

static void test_open_flags(void **state)
{
    fx *f = *state;
    topic *t = (topic *)0x1;

    /* Missing directory without TOPIC_CREATE. */
    assert_rc(topic_open(f->dir, 0, NULL, &t), -ENOENT);
    assert_rc(topic_open(f->dir, TOPIC_RDONLY, NULL, &t), -ENOENT);
    assert_false(tu_exists(f->dir));

    /* TOPIC_CREATE makes it. */
    topic_config *c = conf_of("segment.bytes", "8192", NULL);
    t = open_ok(f->dir, TOPIC_CREATE, c);
    assert_true(tu_exists(f->dir));
    assert_u64(topic_start_offset(t), 0);
    assert_u64(topic_end_offset(t), 0);
    assert_ok(topic_append(t, "x", 1, NULL));
    assert_ok(topic_close(t));

    /* CREATE|EXCL on an existing topic. */
    t = NULL;
    assert_rc(topic_open(f->dir, TOPIC_CREATE | TOPIC_EXCL, c, &t), -EEXIST);

    /* Plain reopen and CREATE on an existing topic both open it. */
    t = open_ok(f->dir, 0, NULL);
    assert_u64(topic_end_offset(t), 1);
    assert_ok(topic_close(t));
    t = open_ok(f->dir, TOPIC_CREATE, NULL);
    assert_u64(topic_end_offset(t), 1);
    assert_ok(topic_close(t));

    /* CREATE|EXCL on a fresh path creates. */
    char *d2 = tu_path(f->root, "t2");
    t = open_ok(d2, TOPIC_CREATE | TOPIC_EXCL, c);
    assert_u64(topic_end_offset(t), 0);
    assert_ok(topic_close(t));

    /* CREATE|EXCL on an existing empty directory. */
    char *d3 = tu_path(f->root, "t3");
    assert_int_equal(mkdir(d3, 0755), 0);
    assert_rc(topic_open(d3, TOPIC_CREATE | TOPIC_EXCL, c, &t), -EEXIST);

    /* A regular file where the directory should be. */
    char *file = tu_path(f->root, "plainfile");
    assert_ok(tu_write_file(file, "hello", 5));
    assert_rc(topic_open(file, 0, NULL, &t), -ENOTDIR);
    assert_rc(topic_open(file, TOPIC_CREATE, c, &t), -ENOTDIR);

    /* Unknown flag bits. */
    assert_rc(topic_open(f->dir, 0x100, NULL, &t), -EINVAL);
    assert_rc(topic_open(f->dir, 0x40000000, NULL, &t), -EINVAL);

    /* NULL arguments. */
    assert_rc(topic_open(NULL, TOPIC_CREATE, c, &t), -EINVAL);
    assert_rc(topic_open(f->dir, 0, NULL, NULL), -EINVAL);

    /* The data survived all of that. */
    t = open_ok(f->dir, 0, NULL);
    char b[4];
    size_t len = 0;
    assert_ok(topic_read(t, 0, b, sizeof b, &len));
    assert_int_equal(len, 1);
    assert_memory_equal(b, "x", 1);
    assert_ok(topic_close(t));

    topic_config_free(c);
    free(d2);
    free(d3);
    free(file);
}

static void test_files_layout(void **state)
{
    fx *f = *state;
    topic *t = create_with(f->dir, "segment.bytes", "8192", NULL);
    for (int i = 0; i < 10; i++)
        assert_ok(topic_append(t, "0123456789", 10, NULL));

    char *log0 = tu_segment_path(f->dir, 0, "log");
    char *idx0 = tu_segment_path(f->dir, 0, "index");
    char *tidx0 = tu_segment_path(f->dir, 0, "timeindex");
    char *conf = tu_path(f->dir, "topic.conf");
    char *st = tu_path(f->dir, "topic.state");

    /* While open the active segment is preallocated to segment.bytes. */
    assert_true(tu_exists(log0));
    assert_true(tu_exists(idx0));
    assert_true(tu_exists(tidx0));
    assert_true(tu_exists(conf));
    assert_int_equal(tu_file_size(log0), 8192);
    assert_ok(topic_close(t));

    /* After close it is cut to its data. */
    long long sz = tu_file_size(log0);
    assert_true(sz >= 100);
    assert_true(sz < 8192);
    assert_true(tu_exists(idx0));
    assert_true(tu_exists(tidx0));
    assert_true(tu_exists(conf));
    assert_true(tu_exists(st));
    assert_int_equal(tu_count_suffix(f->dir, ".log"), 1);

    /* Reopening for writing leaves the file alone (opening stays O(1)); the
     * first append preallocates it again, so that running out of space
     * shows as an error of that append, never as SIGBUS; closing cuts to
     * the data again. */
    t = open_ok(f->dir, 0, NULL);
    long long at_open = tu_file_size(log0);
    assert_int_equal(at_open, sz);
    assert_ok(topic_append(t, "0123456789", 10, NULL));
    long long after_append = tu_file_size(log0);
    if (after_append != 8192)
        fail_msg("reopened active segment is %lld bytes after an append, expected the "
                 "preallocated 8192", after_append);
    assert_ok(topic_close(t));
    long long sz2 = tu_file_size(log0);
    assert_true(sz2 > sz);
    assert_true(sz2 < 8192);
    t = open_ok(f->dir, 0, NULL);
    assert_ok(topic_close(t));
    assert_int_equal(tu_file_size(log0), sz2);

    free(log0);
    free(idx0);
    free(tidx0);
    free(conf);
    free(st);
}

static void test_close_null_and_reopen_cycles(void **state)
{
    fx *f = *state;
    assert_ok(topic_close(NULL));
    model m;
    model_init(&m, 77, 64);
    topic_config *c = conf_of("segment.bytes", "4096", NULL);
    for (int cycle = 0; cycle < 30; cycle++) {
        topic *t = open_ok(f->dir, TOPIC_CREATE, cycle == 0 ? c : NULL);
        assert_u64(topic_end_offset(t), m.n);
        assert_u64(topic_start_offset(t), 0);
        for (int i = 0; i < 5; i++)
            model_append(&m, t);
        if (cycle % 10 == 9)
            model_verify(&m, t, 0, m.n);
        assert_ok(topic_close(t));
    }
    topic *t = open_ok(f->dir, TOPIC_RDONLY, NULL);
    model_verify(&m, t, 0, m.n);
    assert_ok(topic_close(t));
    topic_config_free(c);
    model_free(&m);
}

/* ------------------------------------------------------------------------ */
/* Appending and reading                                                     */

static void test_append_read_basic(void **state)
{
    fx *f = *state;
    topic *t = create_with(f->dir, "segment.bytes", "1M", NULL);
    model m;
    model_init(&m, 1, 300);
    for (int i = 0; i < 200; i++)
        model_append(&m, t);
    assert_u64(topic_end_offset(t), 200);
    assert_u64(topic_start_offset(t), 0);
    model_verify(&m, t, 0, m.n);

    /* offset pointer may be NULL */
    assert_ok(topic_append(t, "abc", 3, NULL));
    assert_u64(topic_end_offset(t), 201);
    char buf[8];
    size_t len = 0;
    assert_ok(topic_read(t, 200, buf, sizeof buf, &len));
    assert_int_equal(len, 3);
    assert_memory_equal(buf, "abc", 3);
    assert_ok(topic_close(t));

    /* Everything reads back after reopen, and appends continue. */
    t = open_ok(f->dir, 0, NULL);
    assert_u64(topic_end_offset(t), 201);
    model_verify(&m, t, 0, 199);
    uint64_t off = 0;
    assert_ok(topic_append(t, "defg", 4, &off));
    assert_u64(off, 201);
    assert_ok(topic_read(t, 201, buf, sizeof buf, &len));
    assert_int_equal(len, 4);
    assert_memory_equal(buf, "defg", 4);
    assert_ok(topic_close(t));
    model_free(&m);
}

static void test_zero_length_values(void **state)
{
    fx *f = *state;
    topic *t = create_with(f->dir, "segment.bytes", "64K", NULL);
    uint64_t off = 99;
    assert_ok(topic_append(t, NULL, 0, &off));
    assert_u64(off, 0);
    assert_ok(topic_append(t, "", 0, &off));
    assert_u64(off, 1);
    assert_ok(topic_append(t, "z", 1, &off));
    assert_u64(off, 2);
    topic_record recs[3];
    memset(recs, 0, sizeof recs);
    recs[0].value = NULL;
    recs[0].value_len = 0;
    recs[1].key = "k";
    recs[1].key_len = 1;
    recs[1].value = NULL;
    recs[1].value_len = 0;
    recs[2].value = "";
    recs[2].value_len = 0;
    assert_ok(topic_append_batch(t, recs, 3, &off));
    assert_u64(off, 3);
    assert_u64(topic_end_offset(t), 6);

    for (int pass = 0; pass < 2; pass++) {
        for (uint64_t o = 0; o < 6; o++) {
            char buf[4] = { 'q', 'q', 'q', 'q' };
            size_t len = 77;
            assert_ok(topic_read(t, o, buf, sizeof buf, &len));
            assert_int_equal(len, o == 2 ? 1 : 0);
            /* Query with buf NULL, cap 0 works for an empty record. */
            if (o != 2) {
                len = 77;
                assert_ok(topic_read(t, o, NULL, 0, &len));
                assert_int_equal(len, 0);
            }
        }
        topic_cursor *c;
        assert_ok(topic_cursor_open(t, 0, &c));
        for (uint64_t o = 0; o < 6; o++) {
            topic_record r;
            assert_ok(topic_cursor_next(c, &r));
            assert_u64(r.offset, o);
            assert_int_equal(r.value_len, o == 2 ? 1 : 0);
            assert_int_equal(r.key_len, o == 4 ? 1 : 0);
            if (o == 4)
                assert_memory_equal(r.key, "k", 1);
        }
        topic_record r;
        assert_rc(topic_cursor_next(c, &r), TOPIC_END);
        topic_cursor_close(c);
        assert_ok(topic_close(t));
        t = open_ok(f->dir, 0, NULL);
    }
    assert_ok(topic_close(t));
}

static void test_batch_keys_timestamps(void **state)
{
    fx *f = *state;
    topic *t = create_with(f->dir, "segment.bytes", "16K", "index.interval.bytes", "100", NULL);
    model m;
    model_init(&m, 2, 200);
    tu_rng rng;
    tu_rng_seed(&rng, 42);
    int64_t ts[16];
    int64_t base = 1700000000000ll;
    for (int b = 0; b < 150; b++) {
        size_t k = 1 + (size_t)tu_rng_below(&rng, 12);
        int mode = (int)tu_rng_below(&rng, 4);
        for (size_t i = 0; i < k; i++)
            ts[i] = base + (int64_t)(m.n + i) * 10 + (int64_t)tu_rng_below(&rng, 5);
        if (mode == 0)
            model_append(&m, t);
        else if (mode == 1)
            model_append_batch(&m, t, k, 1, ts);
        else if (mode == 2)
            model_append_batch(&m, t, k, 0, ts);
        else
            model_append_batch(&m, t, k, 1, NULL);
    }
    assert_u64(topic_end_offset(t), m.n);
    model_verify(&m, t, 0, m.n);
    model_verify(&m, t, m.n / 3, m.n);
    assert_ok(topic_close(t));
    t = open_ok(f->dir, 0, NULL);
    model_verify(&m, t, 0, m.n);
    model_append_batch(&m, t, 5, 1, NULL);
    model_verify(&m, t, m.n - 7, m.n);
    assert_ok(topic_close(t));
    model_free(&m);
}

static void test_batch_edge_cases(void **state)
{
    fx *f = *state;
    topic *t = create_with(f->dir, "segment.bytes", "64K", NULL);
    assert_ok(topic_append(t, "a", 1, NULL));

    /* n == 0 appends nothing. */
    topic_record one;
    memset(&one, 0, sizeof one);
    one.value = "b";
    one.value_len = 1;
    uint64_t first = 0;
    assert_ok(topic_append_batch(t, &one, 0, &first));
    assert_u64(topic_end_offset(t), 1);

    /* first_offset may be NULL. */
    assert_ok(topic_append_batch(t, &one, 1, NULL));
    assert_u64(topic_end_offset(t), 2);

    /* Bad records: nothing is appended. */
    topic_record bad[2];
    memset(bad, 0, sizeof bad);
    bad[0].value = "ok";
    bad[0].value_len = 2;
    bad[1].value = NULL;
    bad[1].value_len = 5;
    assert_rc(topic_append_batch(t, bad, 2, &first), -EINVAL);
    assert_u64(topic_end_offset(t), 2);
    bad[1].value = "ok";
    bad[1].value_len = 2;
    bad[1].key = NULL;
    bad[1].key_len = 3;
    assert_rc(topic_append_batch(t, bad, 2, &first), -EINVAL);
    assert_u64(topic_end_offset(t), 2);
    assert_rc(topic_append_batch(t, NULL, 2, &first), -EINVAL);
    assert_rc(topic_append_batch(NULL, &one, 1, &first), -EINVAL);
    assert_u64(topic_end_offset(t), 2);

    /* A key with key_len 0 reads back as no key bytes. */
    topic_record ek;
    memset(&ek, 0, sizeof ek);
    ek.key = "ignored";
    ek.key_len = 0;
    ek.value = "v";
    ek.value_len = 1;
    assert_ok(topic_append_batch(t, &ek, 1, &first));
    assert_u64(first, 2);

    /* A large batch: 1000 records. */
    topic_record *many = calloc(1000, sizeof *many);
    uint32_t *vals = calloc(1000, sizeof *vals);
    assert_non_null(many);
    for (uint32_t i = 0; i < 1000; i++) {
        vals[i] = i * 2654435761u;
        many[i].value = &vals[i];
        many[i].value_len = sizeof vals[i];
        many[i].timestamp = 1000 + i;
    }
    assert_ok(topic_append_batch(t, many, 1000, &first));
    assert_u64(first, 3);
    assert_u64(topic_end_offset(t), 1003);
    assert_ok(topic_append(t, "after", 5, &first));
    assert_u64(first, 1003);

    topic_cursor *c;
    assert_ok(topic_cursor_open(t, 0, &c));
    topic_record r;
    assert_ok(topic_cursor_next(c, &r));
    assert_int_equal(r.value_len, 1);
    assert_memory_equal(r.value, "a", 1);
    assert_ok(topic_cursor_next(c, &r));
    assert_int_equal(r.value_len, 1);
    assert_memory_equal(r.value, "b", 1);
    assert_ok(topic_cursor_next(c, &r));
    assert_u64(r.offset, 2);
    assert_int_equal(r.key_len, 0);
    assert_memory_equal(r.value, "v", 1);
    for (uint32_t i = 0; i < 1000; i++) {
        assert_ok(topic_cursor_next(c, &r));
        assert_u64(r.offset, 3 + i);
        assert_int_equal(r.timestamp, 1000 + i);
        assert_int_equal(r.value_len, 4);
        assert_memory_equal(r.value, &vals[i], 4);
    }
    assert_ok(topic_cursor_next(c, &r));
    assert_u64(r.offset, 1003);
    assert_memory_equal(r.value, "after", 5);
    assert_rc(topic_cursor_next(c, &r), TOPIC_END);
    topic_cursor_close(c);
    free(many);
    free(vals);
    assert_ok(topic_close(t));
}

static void test_timestamp_now(void **state)
{
    fx *f = *state;
    topic *t = create_with(f->dir, "segment.bytes", "64K", NULL);
    int64_t before = tu_now_ms();
    assert_ok(topic_append(t, "a", 1, NULL));
    topic_record r;
    memset(&r, 0, sizeof r);
    r.value = "b";
    r.value_len = 1;
    r.timestamp = 0;
    assert_ok(topic_append_batch(t, &r, 1, NULL));
    int64_t after = tu_now_ms();
    topic_cursor *c;
    assert_ok(topic_cursor_open(t, 0, &c));
    for (int i = 0; i < 2; i++) {
        assert_ok(topic_cursor_next(c, &r));
        if (r.timestamp < before - 5 || r.timestamp > after + 5)
            fail_msg("record %d: timestamp %lld not in [%lld, %lld]", i, (long long)r.timestamp,
                     (long long)before, (long long)after);
    }
    topic_cursor_close(c);
    assert_ok(topic_close(t));
}

/*
 * The library caches its reading of the clock between appends; a record
 * stamped "now" must still carry the millisecond its append ran in, never
 * one that had already ended when the call began.  Each append is bracketed
 * by readings of the clock and the stored timestamp must lie between them,
 * with no slack, over enough appends to cross thousands of millisecond
 * boundaries.
 */
static void test_timestamp_now_exact(void **state)
{
    fx *f = *state;
    topic *t = create_with(f->dir, "segment.bytes", "64M", NULL);
    enum { N = 100000 };
    int64_t *lo = malloc(N * sizeof *lo), *hi = malloc(N * sizeof *hi);
    assert_non_null(lo);
    assert_non_null(hi);
    for (int i = 0; i < N; i++) {
        lo[i] = tu_now_ms();
        assert_ok(topic_append(t, "x", 1, NULL));
        hi[i] = tu_now_ms();
        for (volatile int spin = 0; spin < (i % 7) * 300; spin++)
            ;
    }
    topic_cursor *c;
    assert_ok(topic_cursor_open(t, 0, &c));
    topic_record r;
    for (int i = 0; i < N; i++) {
        assert_ok(topic_cursor_next(c, &r));
        if (r.timestamp < lo[i] || r.timestamp > hi[i])
            fail_msg("record %d: timestamp %lld not in [%lld, %lld]", i, (long long)r.timestamp,
                     (long long)lo[i], (long long)hi[i]);
    }
    topic_cursor_close(c);
    free(lo);
    free(hi);
    assert_ok(topic_close(t));
}

static void test_large_records(void **state)
{
    fx *f = *state;
    topic *t = create_with(f->dir, "segment.bytes", "4M", "index.interval.bytes", "64", NULL);
    static const size_t sizes[] = { 1, 4095, 4096, 4097, 65536, 100000, 1000000, 3 };
    size_t n = sizeof sizes / sizeof sizes[0];
    unsigned char *buf = malloc(1000001), *rd = malloc(1000001);
    assert_non_null(buf);
    assert_non_null(rd);
    for (size_t i = 0; i < n; i++) {
        tu_fill(i, 555, buf, sizes[i]);
        uint64_t off;
        assert_ok(topic_append(t, buf, sizes[i], &off));
        assert_u64(off, i);
    }
    for (int pass = 0; pass < 2; pass++) {
        for (size_t i = 0; i < n; i++) {
            size_t len = 0;
            assert_ok(topic_read(t, i, rd, 1000001, &len));
            assert_int_equal(len, sizes[i]);
            assert_true(tu_check_fill(i, 555, rd, len));
        }
        assert_ok(topic_close(t));
        t = open_ok(f->dir, 0, NULL);
    }
    assert_ok(topic_close(t));
    free(buf);
    free(rd);
}

/* Checks every segment of a closed or open topic: names, sizes, indexes. */
static int check_segments(const char *dir, long long seg_bytes, int open_writer)
{
    uint64_t *bases = NULL;
    int n = tu_list_segments(dir, &bases);
    assert_true(n >= 1);
    assert_u64(bases[0], 0);
    for (int i = 0; i < n; i++) {
        char *log = tu_segment_path(dir, bases[i], "log");
        char *idx = tu_segment_path(dir, bases[i], "index");
        char *tidx = tu_segment_path(dir, bases[i], "timeindex");
        long long sz = tu_file_size(log);
        if (!tu_exists(idx) || !tu_exists(tidx))
            fail_msg("segment %llu lacks its .index or .timeindex", (unsigned long long)bases[i]);
        if (i == n - 1 && open_writer) {
            if (sz != seg_bytes)
                fail_msg("active segment %llu is %lld bytes while open, expected %lld",
                         (unsigned long long)bases[i], sz, seg_bytes);
        } else if (sz <= 0 || sz > seg_bytes) {
            fail_msg("segment %llu is %lld bytes (segment.bytes %lld)",
                     (unsigned long long)bases[i], sz, seg_bytes);
        }
        if (i > 0)
            assert_true(bases[i] > bases[i - 1]);
        free(log);
        free(idx);
        free(tidx);
    }
    free(bases);
    return n;
}

static void test_rotation_many_segments(void **state)
{
    fx *f = *state;
    topic *t = create_with(f->dir, "segment.bytes", "4096", "index.interval.bytes", "512", NULL);
    model m;
    model_init(&m, 3, 200);
    tu_rng rng;
    tu_rng_seed(&rng, 7);
    while (m.n < 3000) {
        if (tu_rng_below(&rng, 3) == 0)
            model_append_batch(&m, t, 1 + (size_t)tu_rng_below(&rng, 6), 1, NULL);
        else
            model_append(&m, t);
    }
    int nseg = check_segments(f->dir, 4096, 1);
    if (nseg <= 20)
        fail_msg("only %d segments after %llu records with segment.bytes=4096", nseg,
                 (unsigned long long)m.n);
    model_verify(&m, t, 0, m.n);
    assert_ok(topic_close(t));
    int nseg_closed = check_segments(f->dir, 4096, 0);
    assert_int_equal(nseg_closed, nseg);

    /* Reopen without a configuration: everything is there, appends continue
     * at the right offset and still roll at 4096 bytes. */
    t = open_ok(f->dir, 0, NULL);
    assert_u64(topic_end_offset(t), m.n);
    assert_u64(topic_start_offset(t), 0);
    model_verify(&m, t, 0, m.n);
    uint64_t before = m.n;
    while (m.n < before + 1500)
        model_append(&m, t);
    int nseg2 = check_segments(f->dir, 4096, 1);
    if (nseg2 < nseg + 15)
        fail_msg("after reopen without conf: %d segments, before %d: segment.bytes not kept",
                 nseg2, nseg);
    model_verify(&m, t, before - 10, m.n);
    assert_ok(topic_close(t));

    t = open_ok(f->dir, TOPIC_RDONLY, NULL);
    assert_u64(topic_end_offset(t), m.n);
    model_verify(&m, t, 0, m.n);
    assert_ok(topic_close(t));
    model_free(&m);
}

/* This process's address space in use now, from /proc/self/status. */
static uint64_t vm_size_bytes(void)
{
    FILE *fp = fopen("/proc/self/status", "r");
    char line[256];
    uint64_t kb = 0;
    while (fp != NULL && fgets(line, sizeof line, fp) != NULL)
        if (sscanf(line, "VmSize: %" SCNu64 " kB", &kb) == 1)
            break;
    if (fp != NULL)
        fclose(fp);
    return kb * 1024;
}

/* Runs body(dir) in a child process whose address space is limited to
 * `limit` bytes, or when that is 0 to what the child uses already plus
 * `above`; the test fails unless body returns 0.  Skipped where the
 * sanitizers' shadow memory or valgrind manage the address space. */
static void with_address_limit(const char *dir, uint64_t limit, uint64_t above,
                               int (*body)(const char *dir))
{
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
    (void)dir, (void)limit, (void)above, (void)body;
    skip();
#else
    if (tu_under_valgrind())
        skip();
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        if (limit == 0 && (limit = vm_size_bytes()) != 0)
            limit += above;
        struct rlimit rl = { limit, limit };
        if (limit == 0 || setrlimit(RLIMIT_AS, &rl) != 0)
            _exit(100);
        _exit(body(dir));
    }
    int st;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    assert_true(WIFEXITED(st));
    if (WEXITSTATUS(st) != 0)
        fail_msg("the child under an address-space limit failed at step %d", WEXITSTATUS(st));
#endif
}

/* Appends `n` records of 1000 bytes to the topic in dir (created with
 * segment.bytes `seg`), syncing every `sync_every` (0: never), then reads
 * every record back; returns the failed step, or 0. */
static int append_and_check(const char *dir, const char *seg, uint64_t first, uint64_t n,
                            int sync_every)
{
    topic_config *c = topic_config_new();
    if (c == NULL || topic_config_set(c, "segment.bytes", seg) != 0)
        return 11;
    topic *t;
    int rc = topic_open(dir, TOPIC_CREATE, c, &t);
    topic_config_free(c);
    if (rc != 0)
        return 12;
    char v[1000], b[1000];
    for (uint64_t o = first; o < first + n; o++) {
        memset(v, 'a' + (int)(o % 26), sizeof v);
        uint64_t off = 0;
        if ((rc = topic_append(t, v, sizeof v, &off)) != 0 || off != o)
            return rc == -ENOMEM ? 13 : 14;
        if (sync_every && o % (uint64_t)sync_every == 0 && topic_sync(t) != 0)
            return 15;   /* seals the rolled segments */
    }
    for (uint64_t o = 0; o < first + n; o++) {
        size_t len = 0;
        if (topic_read(t, o, b, sizeof b, &len) != 0 || len != sizeof b ||
            b[0] != 'a' + (int)(o % 26) || b[999] != b[0])
            return 16;
    }
    return topic_close(t) == 0 ? 0 : 17;
}

/*
 * A writer reserves address space for the active segment's appends; once a
 * segment is sealed, that reservation must go back, or a writer rolling
 * through many small segments runs out of address space.  A child process
 * limits its address space to 16 GiB (a handful of active reservations)
 * and rolls through 40 segments, then reads every record back.
 */
static int rolls_with_syncs(const char *dir)
{
    return append_and_check(dir, "4096", 0, 160, 4);
}

static void test_rolls_release_address_space(void **state)
{
    fx *f = *state;
    with_address_limit(f->dir, 16ull << 30, 0, rolls_with_syncs);
}

/*
 * A roll under an address-space limit just above what one handle needs:
 * the limit is what the process uses now plus 2.4 GiB, room for one
 * active segment's reservation (2 GiB) but not two.  The rolled segment
 * used to keep its whole reservation until the flusher sealed it, so the
 * first roll failed with -ENOMEM (step 13), and so did every roll after a
 * reopen: an outside tester's writer under a 3000 MB limit stopped after
 * 62 appends for good.  A roll now gives back the rolled segment's unused
 * reservation first.
 */
static int rolls_in_two_sessions(const char *dir)
{
    int rc = append_and_check(dir, "64K", 0, 1500, 0);
    return rc != 0 ? rc : append_and_check(dir, "64K", 1500, 1500, 0);
}

static void test_rolls_under_a_tight_address_limit(void **state)
{
    fx *f = *state;
    with_address_limit(f->dir, 0, 2457ull << 20, rolls_in_two_sessions);
}

/*
 * A topic must not hold file descriptors per segment: sealed segments are
 * read through their mappings.  In a child limited to 64 descriptors, a
 * writer reads back a topic of 150 segments (three descriptors per segment
 * ran out at 21) and rolls through 150 more, sealing them (one descriptor
 * per segment it sealed ran out at about 60); then a read-only handle reads
 * all 300.
 */
enum { FEW_FD_NREC = 600, FEW_FD_VLEN = 1000 };

/* The child of test_many_segments_few_descriptors: 0, or which step failed. */
static int few_descriptors_child(void *arg)
{
    const char *dir = arg;
    enum { NREC = FEW_FD_NREC, VLEN = FEW_FD_VLEN };
    struct rlimit rl = { 64, 64 };
    if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
        return 10;
    for (int pass = 0; pass < 2; pass++) {
        topic *h;
        if (topic_open(dir, pass ? TOPIC_RDONLY : 0, NULL, &h) != 0)
            return 11;
        char b[VLEN];
        uint64_t nrec = pass ? 2 * NREC : NREC;
        for (uint64_t o = 0; o < nrec; o++) {
            size_t len = 0;
            if (topic_read(h, o, b, sizeof b, &len) != 0 || len != VLEN ||
                b[0] != 'a' + (int)(o % 26) || b[VLEN - 1] != b[0])
                return 12;
        }
        topic_cursor *c;
        if (topic_cursor_open(h, 0, &c) != 0)
            return 13;
        topic_record r;
        uint64_t n = 0;
        while (topic_cursor_next(c, &r) == 0) {
            if (r.offset != n || r.value_len != VLEN ||
                ((const char *)r.value)[0] != 'a' + (int)(n % 26))
                return 14;
            n++;
        }
        topic_cursor_close(c);
        if (n != nrec)
            return 15;
        /* The writer rolls through 150 more segments, sealing them as it
         * goes: a segment it sealed keeps no descriptor either. */
        for (uint64_t o = NREC; pass == 0 && o < 2 * NREC; o++) {
            memset(b, 'a' + (int)(o % 26), sizeof b);
            if (topic_append(h, b, sizeof b, NULL) != 0 || (o % 8 == 7 && topic_sync(h) != 0))
                return 16;
        }
        if (topic_end_offset(h) != 2 * NREC || topic_close(h) != 0)
            return 17;
    }
    return 0;
}

static void test_many_segments_few_descriptors(void **state)
{
    fx *f = *state;
    if (tu_under_valgrind())
        skip();   /* valgrind refuses a descriptor limit below the ones it keeps */
    topic *t = create_with(f->dir, "segment.bytes", "4096", NULL);
    char v[FEW_FD_VLEN];
    for (uint64_t n = 0; n < FEW_FD_NREC; n++) {
        memset(v, 'a' + (int)(n % 26), sizeof v);
        assert_ok(topic_append(t, v, sizeof v, NULL));
    }
    assert_ok(topic_close(t));
    assert_true(check_segments(f->dir, 4096, 0) >= 150);
    assert_int_equal(tu_run_child(few_descriptors_child, f->dir, 60000), 0);
}

static void test_settings_persist(void **state)
{
    fx *f = *state;
    unsigned char big[3000];
    memset(big, 'B', sizeof big);
    topic *t = create_with(f->dir, "segment.bytes", "4096", "max.message.bytes", "1000", NULL);
    assert_ok(topic_append(t, big, 1000, NULL));
    assert_rc(topic_append(t, big, 1001, NULL), TOPIC_ETOOBIG);
    assert_ok(topic_close(t));

    /* Reopen with no conf: max.message.bytes is still 1000, segments still 4096. */
    t = open_ok(f->dir, 0, NULL);
    assert_rc(topic_append(t, big, 1001, NULL), TOPIC_ETOOBIG);
    int before = tu_count_suffix(f->dir, ".log");
    for (int i = 0; i < 40; i++)
        assert_ok(topic_append(t, big, 900, NULL));
    int after = tu_count_suffix(f->dir, ".log");
    if (after < before + 7)
        fail_msg("40 x 900 bytes made %d -> %d segments; segment.bytes=4096 was not kept",
                 before, after);
    assert_ok(topic_close(t));

    /* A writer's settings override and persist. */
    topic_config *c = conf_of("max.message.bytes", "2000", NULL);
    t = open_ok(f->dir, 0, c);
    uint64_t off;
    assert_ok(topic_append(t, big, 1500, &off));
    assert_u64(off, 41);
    assert_rc(topic_append(t, big, 2001, NULL), TOPIC_ETOOBIG);
    assert_ok(topic_close(t));
    topic_config_free(c);

    t = open_ok(f->dir, 0, NULL);
    assert_ok(topic_append(t, big, 1800, &off));
    assert_u64(off, 42);
    assert_rc(topic_append(t, big, 2001, NULL), TOPIC_ETOOBIG);
    /* and segment.bytes, not overridden, is still 4096 */
    before = tu_count_suffix(f->dir, ".log");
    for (int i = 0; i < 20; i++)
        assert_ok(topic_append(t, big, 900, NULL));
    after = tu_count_suffix(f->dir, ".log");
    assert_true(after >= before + 3);
    assert_ok(topic_close(t));

    /* A read-only open with conf does not need it and does not change it. */
    c = conf_of("max.message.bytes", "100", NULL);
    t = open_ok(f->dir, TOPIC_RDONLY, c);
    assert_u64(topic_end_offset(t), 63);
    assert_ok(topic_close(t));
    topic_config_free(c);
    t = open_ok(f->dir, 0, NULL);
    assert_ok(topic_append(t, big, 1900, &off));
    assert_u64(off, 63);
    assert_ok(topic_close(t));
}

static void test_read_errors(void **state)
{
    fx *f = *state;
    topic *t = create_with(f->dir, "segment.bytes", "64K", NULL);
    unsigned char buf[256];
    size_t len = 12345;

    /* Empty topic. */
    assert_rc(topic_read(t, 0, buf, sizeof buf, &len), TOPIC_END);
    assert_rc(topic_read(t, 1, buf, sizeof buf, &len), TOPIC_END);
    assert_rc(topic_read(t, UINT64_MAX, buf, sizeof buf, &len), TOPIC_END);

    unsigned char val[100];
    tu_fill(0, 9, val, sizeof val);
    assert_ok(topic_append(t, val, sizeof val, NULL));
    assert_ok(topic_append(t, val, 10, NULL));

    /* At and after the end. */
    assert_rc(topic_read(t, 2, buf, sizeof buf, &len), TOPIC_END);
    assert_rc(topic_read(t, 3, buf, sizeof buf, &len), TOPIC_END);
    assert_rc(topic_read(t, UINT64_MAX, buf, sizeof buf, &len), TOPIC_END);

    /* Too small: *len says how much; nothing copied. */
    memset(buf, 0xAA, sizeof buf);
    len = 0;
    assert_rc(topic_read(t, 0, buf, 99, &len), TOPIC_ETOOSMALL);
    assert_int_equal(len, 100);
    for (size_t i = 0; i < sizeof buf; i++)
        if (buf[i] != 0xAA)
            fail_msg("TOPIC_ETOOSMALL but byte %zu of the buffer was written", i);
    len = 0;
    assert_rc(topic_read(t, 0, buf, 1, &len), TOPIC_ETOOSMALL);
    assert_int_equal(len, 100);

    /* Query the length with buf NULL and cap 0. */
    len = 0;
    assert_rc(topic_read(t, 0, NULL, 0, &len), TOPIC_ETOOSMALL);
    assert_int_equal(len, 100);
    len = 0;
    assert_rc(topic_read(t, 1, NULL, 0, &len), TOPIC_ETOOSMALL);
    assert_int_equal(len, 10);

    /* Exact fit. */
    len = 0;
    assert_ok(topic_read(t, 0, buf, 100, &len));
    assert_int_equal(len, 100);
    assert_memory_equal(buf, val, 100);

    /* Bad arguments. */
    assert_rc(topic_read(NULL, 0, buf, sizeof buf, &len), -EINVAL);
    assert_rc(topic_read(t, 0, buf, sizeof buf, NULL), -EINVAL);
    assert_rc(topic_read(t, 0, NULL, 100, &len), -EINVAL);
    assert_ok(topic_close(t));
}

static void test_toobig(void **state)
{
    fx *f = *state;
    topic *t = create_with(f->dir, "segment.bytes", "64K", "max.message.bytes", "1000", NULL);
    unsigned char big[2048];
    tu_fill(1, 1, big, sizeof big);
    uint64_t off = 77;

    assert_ok(topic_append(t, big, 1000, &off));
    assert_u64(off, 0);
    off = 77;
    assert_rc(topic_append(t, big, 1001, &off), TOPIC_ETOOBIG);
    assert_u64(topic_end_offset(t), 1);

    topic_record r[3];
    memset(r, 0, sizeof r);
    r[0].value = big;
    r[0].value_len = 400;
    r[1].value = big + 400;
    r[1].value_len = 400;
    r[2].value = big + 800;
    r[2].value_len = 201; /* sum 1001 */
    assert_rc(topic_append_batch(t, r, 3, &off), TOPIC_ETOOBIG);
    assert_u64(topic_end_offset(t), 1);
    assert_rc(topic_read(t, 1, big + 1500, 10, &(size_t){ 0 }), TOPIC_END);

    /* A batch whose keys push it over. */
    r[2].value_len = 100;
    r[2].key = big + 1200;
    r[2].key_len = 101; /* 400 + 400 + 100 + 101 */
    assert_rc(topic_append_batch(t, r, 3, &off), TOPIC_ETOOBIG);
    assert_u64(topic_end_offset(t), 1);

    /* One record with key + value over. */
    topic_record kv;
    memset(&kv, 0, sizeof kv);
    kv.key = big;
    kv.key_len = 600;
    kv.value = big + 600;
    kv.value_len = 401;
    assert_rc(topic_append_batch(t, &kv, 1, &off), TOPIC_ETOOBIG);
    assert_u64(topic_end_offset(t), 1);

    /* Exactly the limit is fine: batch sum 1000, record key+value 1000. */
    r[2].key_len = 100; /* 400 + 400 + 100 + 100 */
    assert_ok(topic_append_batch(t, r, 3, &off));
    assert_u64(off, 1);
    kv.value_len = 400;
    assert_ok(topic_append_batch(t, &kv, 1, &off));
    assert_u64(off, 4);
    assert_ok(topic_append(t, big, 5, &off));
    assert_u64(off, 5);

    unsigned char rd[2048];
    size_t len;
    assert_ok(topic_read(t, 0, rd, sizeof rd, &len));
    assert_int_equal(len, 1000);
    assert_memory_equal(rd, big, 1000);
    assert_ok(topic_read(t, 3, rd, sizeof rd, &len));
    assert_int_equal(len, 100);
    assert_memory_equal(rd, big + 800, 100);
    assert_ok(topic_read(t, 4, rd, sizeof rd, &len));
    assert_int_equal(len, 400);
    assert_memory_equal(rd, big + 600, 400);
    assert_ok(topic_close(t));

    /* The default limit is 1M. */
    char *d2 = tu_path(f->root, "t2");
    t = create_with(d2, "segment.bytes", "4M", NULL);
    unsigned char *huge = malloc((1u << 20) + 1);
    assert_non_null(huge);
    tu_fill(2, 2, huge, (1u << 20) + 1);
    assert_rc(topic_append(t, huge, (1u << 20) + 1, &off), TOPIC_ETOOBIG);
    assert_u64(topic_end_offset(t), 0);
    assert_ok(topic_append(t, huge, 1u << 20, &off));
    assert_u64(off, 0);
    unsigned char *back = malloc(1u << 20);
    assert_non_null(back);
    assert_ok(topic_read(t, 0, back, 1u << 20, &len));
    assert_int_equal(len, 1u << 20);
    assert_memory_equal(back, huge, 1u << 20);
    assert_ok(topic_close(t));
    free(huge);
    free(back);
    free(d2);
}

static void test_bad_args(void **state)
{
    fx *f = *state;
    topic *t = create_with(f->dir, "segment.bytes", "64K", NULL);
    uint64_t off;
    size_t len;
    char buf[16];
    topic_cursor *c = NULL;
    topic_record r;

    assert_rc(topic_append(NULL, "a", 1, &off), -EINVAL);
    assert_rc(topic_append(t, NULL, 5, &off), -EINVAL);
    assert_u64(topic_end_offset(t), 0);
    assert_ok(topic_append(t, "a", 1, &off));

    assert_rc(topic_sync(NULL), -EINVAL);
    assert_rc(topic_read(NULL, 0, buf, sizeof buf, &len), -EINVAL);
    assert_rc(topic_cursor_open(NULL, 0, &c), -EINVAL);
    assert_rc(topic_cursor_open(t, 0, NULL), -EINVAL);
    assert_ok(topic_cursor_open(t, 0, &c));
    assert_rc(topic_cursor_next(NULL, &r), -EINVAL);
    assert_rc(topic_cursor_next(c, NULL), -EINVAL);
    assert_rc(topic_cursor_seek(NULL, 0), -EINVAL);
    assert_rc(topic_cursor_seek_time(NULL, 0), -EINVAL);
    assert_ok(topic_cursor_next(c, &r));
    assert_u64(r.offset, 0);
    topic_cursor_close(c);
    topic_cursor_close(NULL);

    assert_u64(topic_start_offset(NULL), 0);
    assert_u64(topic_end_offset(NULL), 0);
    assert_u64(topic_end_offset(t), 1);
    assert_ok(topic_close(t));
    assert_ok(topic_close(NULL));
}

/* ------------------------------------------------------------------------ */
/* Cursors                                                                   */

static void test_cursor_next_and_tail(void **state)
{
    fx *f = *state;
    topic *t = create_with(f->dir, "segment.bytes", "4096", "index.interval.bytes", "256", NULL);
    model m;
    model_init(&m, 4, 150);
    for (int i = 0; i < 50; i++)
        model_append(&m, t);

    topic_cursor *c, *c2;
    assert_ok(topic_cursor_open(t, 0, &c));
    assert_ok(topic_cursor_open(t, 25, &c2));
    assert_u64(topic_cursor_offset(c), 0);
    assert_u64(topic_cursor_offset(c2), 25);
    topic_record r;
    for (uint64_t o = 0; o < 50; o++) {
        assert_ok(topic_cursor_next(c, &r));
        model_check_rec(&m, o, &r);
        /* The two cursors are independent. */
        if (o < 25) {
            assert_ok(topic_cursor_next(c2, &r));
            model_check_rec(&m, 25 + o, &r);
        }
    }
    assert_rc(topic_cursor_next(c, &r), TOPIC_END);
    assert_rc(topic_cursor_next(c, &r), TOPIC_END);
    assert_u64(topic_cursor_offset(c), 50);
    assert_rc(topic_cursor_next(c2, &r), TOPIC_END);

    /* The position is kept: new records come next. */
    for (int i = 0; i < 10; i++)
        model_append(&m, t);
    for (uint64_t o = 50; o < 60; o++) {
        assert_ok(topic_cursor_next(c, &r));
        model_check_rec(&m, o, &r);
    }
    assert_rc(topic_cursor_next(c, &r), TOPIC_END);
    topic_cursor_close(c);
    topic_cursor_close(c2);

    /* A cursor at or beyond the end waits there. */
    assert_ok(topic_cursor_open(t, 60, &c));
    assert_ok(topic_cursor_open(t, 65, &c2));
    assert_rc(topic_cursor_next(c, &r), TOPIC_END);
    assert_rc(topic_cursor_next(c2, &r), TOPIC_END);
    assert_u64(topic_cursor_offset(c2), 65);
    for (int i = 0; i < 5; i++)
        model_append(&m, t);
    assert_rc(topic_cursor_next(c2, &r), TOPIC_END);
    model_append(&m, t);
    assert_ok(topic_cursor_next(c2, &r));
    model_check_rec(&m, 65, &r);
    for (uint64_t o = 60; o < 66; o++) {
        assert_ok(topic_cursor_next(c, &r));
        model_check_rec(&m, o, &r);
    }
    topic_cursor_close(c);
    topic_cursor_close(c2);

    /* A cursor follows the log across many segment rolls. */
    assert_ok(topic_cursor_open(t, m.n, &c));
    for (int i = 0; i < 400; i++) {
        uint64_t o = m.n;
        if (i % 3 == 0)
            model_append_batch(&m, t, 3, 1, NULL);
        else
            model_append(&m, t);
        for (; o < m.n; o++) {
            assert_ok(topic_cursor_next(c, &r));
            model_check_rec(&m, o, &r);
        }
        assert_rc(topic_cursor_next(c, &r), TOPIC_END);
    }
    topic_cursor_close(c);
    assert_ok(topic_close(t));
    model_free(&m);
}

static void test_cursor_seek(void **state)
{
    fx *f = *state;
    topic *t = create_with(f->dir, "segment.bytes", "4096", "index.interval.bytes", "300", NULL);
    model m;
    model_init(&m, 5, 120);
    tu_rng rng;
    tu_rng_seed(&rng, 5);
    while (m.n < 1500) {
        if (tu_rng_below(&rng, 2))
            model_append_batch(&m, t, 1 + (size_t)tu_rng_below(&rng, 9), 1, NULL);
        else
            model_append(&m, t);
    }
    topic_cursor *c;
    assert_ok(topic_cursor_open(t, 0, &c));
    topic_record r;
    for (int i = 0; i < 500; i++) {
        uint64_t o = tu_rng_below(&rng, m.n);
        assert_ok(topic_cursor_seek(c, o));
        assert_u64(topic_cursor_offset(c), o);
        int steps = 1 + (int)tu_rng_below(&rng, 4);
        for (int s = 0; s < steps && o + (uint64_t)s < m.n; s++) {
            assert_ok(topic_cursor_next(c, &r));
            model_check_rec(&m, o + (uint64_t)s, &r);
        }
    }
    /* Seek to the end, and beyond it. */
    assert_ok(topic_cursor_seek(c, m.n));
    assert_rc(topic_cursor_next(c, &r), TOPIC_END);
    assert_ok(topic_cursor_seek(c, m.n + 3));
    assert_u64(topic_cursor_offset(c), m.n + 3);
    assert_rc(topic_cursor_next(c, &r), TOPIC_END);
    /* And back to the start. */
    assert_ok(topic_cursor_seek(c, 0));
    assert_ok(topic_cursor_next(c, &r));
    model_check_rec(&m, 0, &r);
    topic_cursor_close(c);
    assert_ok(topic_close(t));
    model_free(&m);
}

/* Expected landing offset of seek_time(T): the first offset whose timestamp
 * is >= T, or n. */
static uint64_t expect_seek(const int64_t *ts, uint64_t n, int64_t T)
{
    for (uint64_t i = 0; i < n; i++)
        if (ts[i] >= T)
            return i;
    return n;
}

static void check_seek_time(topic *t, const model *m, const int64_t *ts, int64_t T)
{
    topic_cursor *c;
    assert_ok(topic_cursor_open(t, m->n / 2, &c));
    int rc = topic_cursor_seek_time(c, T);
    if (rc != 0)
        fail_msg("seek_time(%lld) = %d (%s)", (long long)T, rc, topic_strerror(rc));
    uint64_t want = expect_seek(ts, m->n, T);
    uint64_t got = topic_cursor_offset(c);
    if (got != want)
        fail_msg("seek_time(%lld) landed on %llu, expected %llu", (long long)T,
                 (unsigned long long)got, (unsigned long long)want);
    topic_record r;
    if (want < m->n) {
        assert_ok(topic_cursor_next(c, &r));
        model_check_rec(m, want, &r);
        assert_true(r.timestamp >= T);
    } else {
        assert_rc(topic_cursor_next(c, &r), TOPIC_END);
    }
    topic_cursor_close(c);
}

static void run_seek_time(const char *dir, const char *interval, int monotonic, uint64_t seed)
{
    /* segment.ms=0: the old explicit timestamps must not matter here (see
     * test_segment_ms_old_timestamps). */
    topic_config *c = conf_of("segment.bytes", "4096", "index.interval.bytes", interval,
                              "segment.ms", "0", NULL);
    topic *t = open_ok(dir, TOPIC_CREATE, c);
    topic_config_free(c);
    model m;
    model_init(&m, seed, 100);
    tu_rng rng;
    tu_rng_seed(&rng, seed);
    const int64_t base = 1600000000000ll;
    int64_t tsb[16];
    while (m.n < 2000) {
        size_t k = 1 + (size_t)tu_rng_below(&rng, 8);
        for (size_t i = 0; i < k; i++) {
            uint64_t o = m.n + i;
            if (monotonic)
                tsb[i] = base + (int64_t)o * 10; /* strictly increasing, gaps of 10 */
            else
                tsb[i] = base + (int64_t)tu_rng_below(&rng, 100000);
        }
        model_append_batch(&m, t, k, (int)(k & 1), tsb);
    }
    int64_t *ts = m.ts;
    int64_t lo = INT64_MAX, hi = INT64_MIN;
    for (uint64_t i = 0; i < m.n; i++) {
        lo = ts[i] < lo ? ts[i] : lo;
        hi = ts[i] > hi ? ts[i] : hi;
    }
    for (int pass = 0; pass < 2; pass++) {
        check_seek_time(t, &m, ts, 0);
        check_seek_time(t, &m, ts, lo - 1);
        check_seek_time(t, &m, ts, lo);
        check_seek_time(t, &m, ts, lo + 1);
        check_seek_time(t, &m, ts, hi - 1);
        check_seek_time(t, &m, ts, hi);
        check_seek_time(t, &m, ts, hi + 1);
        check_seek_time(t, &m, ts, INT64_MAX);
        for (int i = 0; i < 60; i++) {
            uint64_t o = tu_rng_below(&rng, m.n);
            check_seek_time(t, &m, ts, ts[o]);
            check_seek_time(t, &m, ts, ts[o] + 1);
            check_seek_time(t, &m, ts, lo + (int64_t)tu_rng_below(&rng, (uint64_t)(hi - lo + 2)));
        }
        /* The same after a reopen (indexes read back from disk). */
        assert_ok(topic_close(t));
        t = open_ok(dir, pass == 0 ? 0 : TOPIC_RDONLY, NULL);
    }
    assert_ok(topic_close(t));
    model_free(&m);
}

static void test_seek_time_monotonic(void **state)
{
    fx *f = *state;
    run_seek_time(f->dir, "4096", 1, 11);
}

static void test_seek_time_monotonic_dense_index(void **state)
{
    fx *f = *state;
    run_seek_time(f->dir, "1", 1, 12);
}

static void test_seek_time_nonmonotonic(void **state)
{
    fx *f = *state;
    run_seek_time(f->dir, "4096", 0, 13);
}

static void test_seek_time_nonmonotonic_dense_index(void **state)
{
    fx *f = *state;
    run_seek_time(f->dir, "1", 0, 14);
}

/*
 * topic_cursor_seek_time() promises O(log n) plus one index interval of
 * scanning.  Timing is noisy, so this compares against topic_cursor_seek()
 * plus one topic_cursor_next() on the same topic (also O(log n) plus one
 * interval) and fails only when seek_time is more than 50 times slower on
 * average and slower than 200 us per call: a linear scan over hundreds of
 * segments, not noise.
 */
static void test_seek_time_cost(void **state)
{
    fx *f = *state;
    topic *t = create_with(f->dir, "segment.bytes", "4096", "segment.ms", "0", NULL);
    enum { N = 10000, Q = 200 };
    topic_record *recs = calloc(100, sizeof *recs);
    unsigned char v[40];
    memset(v, 7, sizeof v);
    for (int b = 0; b < N / 10; b++) {
        for (int i = 0; i < 10; i++) {
            recs[i].timestamp = 1000000 + (int64_t)(b * 10 + i) * 10;
            recs[i].value = v;
            recs[i].value_len = sizeof v;
        }
        assert_ok(topic_append_batch(t, recs, 10, NULL));
    }
    free(recs);
    topic_cursor *c;
    assert_ok(topic_cursor_open(t, 0, &c));
    topic_record r;
    uint64_t t0 = tu_mono_us();
    for (int i = 0; i < Q; i++) {
        uint64_t o = (uint64_t)(i * 7919) % N;
        assert_ok(topic_cursor_seek(c, o));
        assert_ok(topic_cursor_next(c, &r));
    }
    uint64_t t1 = tu_mono_us();
    for (int i = 0; i < Q; i++) {
        uint64_t o = (uint64_t)(i * 7919) % N;
        assert_ok(topic_cursor_seek_time(c, 1000000 + (int64_t)o * 10));
        assert_u64(topic_cursor_offset(c), o);
    }
    uint64_t t2 = tu_mono_us();
    double seek_us = (double)(t1 - t0) / Q, st_us = (double)(t2 - t1) / Q;
    if (st_us > 200.0 && st_us > 50.0 * seek_us)
        fail_msg("seek_time costs %.1f us per call on %d records in ~%d segments; "
                 "seek+next costs %.1f us: seek_time is not O(log n)",
                 st_us, N, tu_count_suffix(f->dir, ".log"), seek_us);
    topic_cursor_close(c);
    assert_ok(topic_close(t));
}

static void test_seek_time_hand_made(void **state)
{
    fx *f = *state;
    topic *t = create_with(f->dir, "segment.bytes", "4096", NULL);
    /* Timestamps out of order; the first in offset order with ts >= T wins. */
    static const int64_t ts[] = { 500, 100, 900, 300, 900, 50, 1000, 700 };
    size_t n = sizeof ts / sizeof ts[0];
    for (size_t i = 0; i < n; i++) {
        topic_record r;
        memset(&r, 0, sizeof r);
        r.timestamp = ts[i];
        r.value = &ts[i];
        r.value_len = sizeof ts[i];
        assert_ok(topic_append_batch(t, &r, 1, NULL));
    }
    static const struct {
        int64_t T;
        uint64_t want;
    } q[] = { { 1, 0 },   { 500, 0 },  { 501, 2 },  { 900, 2 },  { 901, 6 },
              { 1000, 6 }, { 1001, 8 }, { 50, 0 },  { 600, 2 } };
    topic_cursor *c;
    assert_ok(topic_cursor_open(t, 0, &c));
    for (size_t i = 0; i < sizeof q / sizeof q[0]; i++) {
        assert_ok(topic_cursor_seek_time(c, q[i].T));
        if (topic_cursor_offset(c) != q[i].want)
            fail_msg("seek_time(%lld) -> %llu, expected %llu", (long long)q[i].T,
                     (unsigned long long)topic_cursor_offset(c), (unsigned long long)q[i].want);
        topic_record r;
        if (q[i].want < n) {
            assert_ok(topic_cursor_next(c, &r));
            assert_u64(r.offset, q[i].want);
            assert_int_equal(r.timestamp, ts[q[i].want]);
        } else {
            assert_rc(topic_cursor_next(c, &r), TOPIC_END);
        }
    }
    topic_cursor_close(c);

    /* On an empty topic seek_time lands on the end (0). */
    char *d2 = tu_path(f->root, "empty");
    topic *e = create_with(d2, "segment.bytes", "4096", NULL);
    assert_ok(topic_cursor_open(e, 0, &c));
    assert_ok(topic_cursor_seek_time(c, 12345));
    assert_u64(topic_cursor_offset(c), 0);
    topic_record r;
    assert_rc(topic_cursor_next(c, &r), TOPIC_END);
    topic_cursor_close(c);
    assert_ok(topic_close(e));
    free(d2);
    assert_ok(topic_close(t));
}

/* ------------------------------------------------------------------------ */
/* Read-only handles, the writer lock                                        */

/* Reads every regular file of dir (names and contents) into one string of
 * "name:size:checksum;" entries, to see whether anything changed. */
static char *dir_fingerprint(const char *dir)
{
    uint64_t *bases;
    int n = tu_list_segments(dir, &bases);
    assert_true(n > 0);
    size_t cap = 256 + (size_t)n * 3 * 80, used = 0;
    char *s = malloc(cap);
    assert_non_null(s);
    s[0] = 0;
    static const char *exts[] = { "log", "index", "timeindex" };
    for (int i = 0; i < n; i++) {
        for (int e = 0; e < 3; e++) {
            char *p = tu_segment_path(dir, bases[i], exts[e]);
            unsigned char *data = NULL;
            size_t len = 0;
            uint64_t h = 0;
            if (tu_read_file(p, &data, &len) == 0) {
                for (size_t k = 0; k < len; k++)
                    h = tu_mix64(h ^ data[k]);
                free(data);
            }
            used += (size_t)snprintf(s + used, cap - used, "%llu.%s:%zu:%llx;",
                                     (unsigned long long)bases[i], exts[e], len,
                                     (unsigned long long)h);
            free(p);
        }
    }
    free(bases);
    static const char *extra[] = { "topic.conf", "topic.state" };
    for (int e = 0; e < 2; e++) {
        char *p = tu_path(dir, extra[e]);
        unsigned char *data = NULL;
        size_t len = 0;
        uint64_t h = 0;
        if (tu_read_file(p, &data, &len) == 0) {
            for (size_t k = 0; k < len; k++)
                h = tu_mix64(h ^ data[k]);
            free(data);
        }
        used += (size_t)snprintf(s + used, cap - used, "%s:%zu:%llx;", extra[e], len,
                                 (unsigned long long)h);
        free(p);
    }
    return s;
}

static void test_rdonly(void **state)
{
    fx *f = *state;
    topic *w = create_with(f->dir, "segment.bytes", "4096", NULL);
    model m;
    model_init(&m, 6, 200);
    for (int i = 0; i < 300; i++) {
        if (i % 5 == 0)
            model_append_batch(&m, w, 4, 1, NULL);
        else
            model_append(&m, w);
    }
    assert_ok(topic_close(w));
    char *fp1 = dir_fingerprint(f->dir);

    topic *r1 = open_ok(f->dir, TOPIC_RDONLY, NULL);
    topic *r2 = open_ok(f->dir, TOPIC_RDONLY, NULL);
    assert_u64(topic_end_offset(r1), m.n);
    assert_u64(topic_start_offset(r1), 0);
    model_verify(&m, r1, 0, m.n);
    model_verify(&m, r2, m.n / 2, m.n);

    uint64_t off = 5;
    assert_rc(topic_append(r1, "x", 1, &off), TOPIC_ERDONLY);
    topic_record rec;
    memset(&rec, 0, sizeof rec);
    rec.value = "y";
    rec.value_len = 1;
    assert_rc(topic_append_batch(r1, &rec, 1, &off), TOPIC_ERDONLY);
    assert_rc(topic_sync(r1), TOPIC_ERDONLY);
    assert_u64(topic_end_offset(r1), m.n);

    topic_cursor *c;
    assert_ok(topic_cursor_open(r1, 0, &c));
    assert_ok(topic_cursor_seek_time(c, 0));
    assert_u64(topic_cursor_offset(c), 0);
    topic_cursor_close(c);

    assert_ok(topic_close(r1));
    assert_ok(topic_close(r2));

    /* Read-only handles wrote nothing. */
    char *fp2 = dir_fingerprint(f->dir);
    assert_string_equal(fp1, fp2);

    /* A read-only handle takes no writer lock. */
    r1 = open_ok(f->dir, TOPIC_RDONLY, NULL);
    w = open_ok(f->dir, 0, NULL);
    model_append(&m, w);
    model_verify(&m, w, 0, m.n);
    assert_ok(topic_close(w));
    assert_ok(topic_close(r1));

    free(fp1);
    free(fp2);
    model_free(&m);
}

/* Polls until topic_read(t, off) succeeds, for up to ms milliseconds. */
static int wait_readable(topic *t, uint64_t off, int ms)
{
    uint64_t deadline = tu_mono_us() + (uint64_t)ms * 1000u;
    size_t len;
    int rc;
    for (;;) {
        rc = topic_read(t, off, NULL, 0, &len);
        if (rc == 0 || rc == TOPIC_ETOOSMALL)
            return 0;
        if (rc != TOPIC_END || tu_mono_us() > deadline)
            return rc;
        tu_sleep_us(200);
    }
}

static void test_rdonly_follows_writer_same_process(void **state)
{
    fx *f = *state;
    topic *w = create_with(f->dir, "segment.bytes", "4096", NULL);
    model m;
    model_init(&m, 8, 200);
    for (int i = 0; i < 10; i++)
        model_append(&m, w);
    topic *r = open_ok(f->dir, TOPIC_RDONLY, NULL);
    assert_u64(topic_end_offset(r), 10);
    model_verify(&m, r, 0, 10);

    /* New records, across many segment rolls, become visible to the reader. */
    for (int i = 0; i < 500; i++)
        model_append(&m, w);
    int rc = wait_readable(r, m.n - 1, 1000);
    if (rc != 0)
        fail_msg("read-only handle does not see offset %llu appended by the writer: %d (%s)",
                 (unsigned long long)(m.n - 1), rc, topic_strerror(rc));
    assert_u64(topic_end_offset(r), m.n);
    model_verify(&m, r, 0, m.n);
    assert_ok(topic_close(w));
    model_verify(&m, r, 0, m.n);
    assert_ok(topic_close(r));
    model_free(&m);
}

/*
 * ThreadSanitizer does not support a child of a multi-threaded process that
 * starts threads of its own (a writer's background thread): such tests are
 * skipped in TSan builds; they test processes, not data races.
 */
#if defined(__SANITIZE_THREAD__)
#define SKIP_UNDER_TSAN() skip()
#else
#define SKIP_UNDER_TSAN() ((void)0)
#endif

/* Child processes' arguments and bodies: they report by exit code only. */
typedef struct child_arg {
    const char *dir;
    int flags;
    uint64_t expect_end;   /* for the reader */
    uint64_t seed;
    size_t maxlen;
    int ready_fd;          /* child writes one byte when ready, or -1 */
    int go_fd;             /* child waits for one byte, or -1 */
} child_arg;

enum { CHILD_OK = 0, CHILD_OPENED = 10, CHILD_OTHER_ERR = 11, CHILD_BAD_DATA = 12,
       CHILD_TIMEOUT = 13, CHILD_CLOSE_ERR = 14 };

static int child_try_writer(void *p)
{
    child_arg *a = p;
    topic *t = NULL;
    int rc = topic_open(a->dir, a->flags, NULL, &t);
    if (rc == TOPIC_ELOCKED)
        return CHILD_OK;
    if (rc == 0) {
        topic_close(t);
        return CHILD_OPENED;
    }
    return CHILD_OTHER_ERR;
}

static int child_open_writer(void *p)
{
    child_arg *a = p;
    topic *t = NULL;
    int rc = topic_open(a->dir, a->flags, NULL, &t);
    if (rc != 0)
        return CHILD_OTHER_ERR;
    rc = topic_append(t, "child", 5, NULL);
    if (rc != 0)
        return CHILD_OTHER_ERR;
    return topic_close(t) == 0 ? CHILD_OK : CHILD_CLOSE_ERR;
}

static int child_hold_writer(void *p)
{
    child_arg *a = p;
    topic *t = NULL;
    char b = 0;
    if (topic_open(a->dir, 0, NULL, &t) != 0)
        b = 1;
    if (write(a->ready_fd, &b, 1) != 1 || b)
        return CHILD_OTHER_ERR;
    if (read(a->go_fd, &b, 1) != 1)
        return CHILD_OTHER_ERR;
    return topic_close(t) == 0 ? CHILD_OK : CHILD_CLOSE_ERR;
}

/* Reads every record the parent wrote, then waits for expect_end records. */
static int child_reader(void *p)
{
    child_arg *a = p;
    topic *t = NULL;
    if (topic_open(a->dir, TOPIC_RDONLY, NULL, &t) != 0)
        return CHILD_OTHER_ERR;
    char b = 0;
    if (a->ready_fd >= 0 && write(a->ready_fd, &b, 1) != 1)
        return CHILD_OTHER_ERR;
    unsigned char *buf = malloc(a->maxlen + 1);
    uint64_t deadline = tu_mono_us() + tu_limit_us(2000000u);
    for (uint64_t off = 0; off < a->expect_end; off++) {
        size_t len;
        int rc;
        while ((rc = topic_read(t, off, buf, a->maxlen + 1, &len)) == TOPIC_END) {
            if (tu_mono_us() > deadline) {
                topic_close(t);
                return CHILD_TIMEOUT;
            }
            tu_sleep_us(200);
        }
        if (rc != 0 || len != tu_value_len(off, a->seed, a->maxlen) ||
            !tu_check_fill(off, a->seed, buf, len)) {
            topic_close(t);
            return CHILD_BAD_DATA;
        }
    }
    free(buf);
    return topic_close(t) == 0 ? CHILD_OK : CHILD_CLOSE_ERR;
}

static void test_rdonly_other_process(void **state)
{
    fx *f = *state;
    SKIP_UNDER_TSAN();
    topic *w = create_with(f->dir, "segment.bytes", "4096", NULL);
    model m;
    model_init(&m, 9, 200);
    for (int i = 0; i < 100; i++)
        model_append(&m, w);

    /* A reader in another process sees what is there ... */
    child_arg a = { f->dir, 0, m.n, m.seed, m.maxlen, -1, -1 };
    assert_int_equal(tu_run_child(child_reader, &a, 10000), CHILD_OK);

    /* ... and follows the writer's new records. */
    int pfd[2];
    assert_int_equal(pipe(pfd), 0);
    a.expect_end = m.n + 600;
    a.ready_fd = pfd[1];
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0)
        tu_child_exit(child_reader(&a));
    char b;
    assert_int_equal(read(pfd[0], &b, 1), 1);
    for (int i = 0; i < 600; i++)
        model_append(&m, w);
    int code = tu_wait_child(pid, 10000);
    if (code != CHILD_OK)
        fail_msg("reader process following the writer exited with %d "
                 "(13 = timed out waiting for new records, 12 = bad data)", code);
    close(pfd[0]);
    close(pfd[1]);
    assert_ok(topic_close(w));
    model_free(&m);
}

static void test_lock_same_process(void **state)
{
    fx *f = *state;
    topic *w = create_with(f->dir, "segment.bytes", "4096", NULL);
    assert_ok(topic_append(w, "a", 1, NULL));
    topic *t2 = NULL;
    assert_rc(topic_open(f->dir, 0, NULL, &t2), TOPIC_ELOCKED);
    assert_rc(topic_open(f->dir, TOPIC_CREATE, NULL, &t2), TOPIC_ELOCKED);
    topic_config *c = conf_of("segment.bytes", "8192", NULL);
    assert_rc(topic_open(f->dir, 0, c, &t2), TOPIC_ELOCKED);
    topic_config_free(c);
    /* A reader may open; opening and closing one keeps the writer's lock. */
    topic *r = open_ok(f->dir, TOPIC_RDONLY, NULL);
    assert_ok(topic_close(r));
    assert_rc(topic_open(f->dir, 0, NULL, &t2), TOPIC_ELOCKED);
    r = open_ok(f->dir, TOPIC_RDONLY, NULL);
    assert_u64(topic_end_offset(r), 1);
    /* The first writer still works. */
    assert_ok(topic_append(w, "b", 1, NULL));
    assert_ok(topic_close(w));
    /* Once it closed, a new writer opens and continues. */
    w = open_ok(f->dir, 0, NULL);
    uint64_t off;
    assert_ok(topic_append(w, "c", 1, &off));
    assert_u64(off, 2);
    assert_rc(topic_open(f->dir, 0, NULL, &t2), TOPIC_ELOCKED);
    assert_ok(topic_close(w));
    assert_ok(topic_close(r));
    w = open_ok(f->dir, 0, NULL);
    assert_u64(topic_end_offset(w), 3);
    assert_ok(topic_close(w));
}

static void test_lock_other_process(void **state)
{
    fx *f = *state;
    SKIP_UNDER_TSAN();
    topic *w = create_with(f->dir, "segment.bytes", "4096", NULL);
    assert_ok(topic_append(w, "a", 1, NULL));

    /* A writer in another process is refused while we hold the lock, also
     * after a read-only handle of this process was opened and closed (with
     * POSIX record locks, closing any descriptor of the lock file would drop
     * the lock). */
    topic *r0 = open_ok(f->dir, TOPIC_RDONLY, NULL);
    assert_ok(topic_close(r0));
    child_arg a = { f->dir, 0, 0, 0, 0, -1, -1 };
    int code = tu_run_child(child_try_writer, &a, 10000);
    if (code != CHILD_OK)
        fail_msg("second writer in a child process: exit %d (10 = it opened for writing, "
                 "11 = error other than TOPIC_ELOCKED)", code);
    a.flags = TOPIC_CREATE;
    assert_int_equal(tu_run_child(child_try_writer, &a, 10000), CHILD_OK);
    assert_ok(topic_close(w));

    /* After we closed, the child can write. */
    a.flags = 0;
    assert_int_equal(tu_run_child(child_open_writer, &a, 10000), CHILD_OK);

    /* The other way round: the child holds the lock, we are refused. */
    int ready[2], go[2];
    assert_int_equal(pipe(ready), 0);
    assert_int_equal(pipe(go), 0);
    a.ready_fd = ready[1];
    a.go_fd = go[0];
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0)
        tu_child_exit(child_hold_writer(&a));
    char b = 1;
    assert_int_equal(read(ready[0], &b, 1), 1);
    assert_int_equal(b, 0);
    topic *t2 = NULL;
    int rc = topic_open(f->dir, 0, NULL, &t2);
    if (rc == 0)
        topic_close(t2);
    assert_rc(rc, TOPIC_ELOCKED);
    topic *r = open_ok(f->dir, TOPIC_RDONLY, NULL);
    assert_u64(topic_end_offset(r), 2);
    assert_ok(topic_close(r));
    assert_int_equal(write(go[1], &b, 1), 1);
    assert_int_equal(tu_wait_child(pid, 10000), CHILD_OK);
    w = open_ok(f->dir, 0, NULL);
    assert_u64(topic_end_offset(w), 2);
    assert_ok(topic_close(w));

    /* A writer killed with SIGKILL releases the lock. */
    fflush(NULL);
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0)
        tu_child_exit(child_hold_writer(&a));
    assert_int_equal(read(ready[0], &b, 1), 1);
    assert_int_equal(b, 0);
    assert_rc(topic_open(f->dir, 0, NULL, &t2), TOPIC_ELOCKED);
    kill(pid, SIGKILL);
    assert_int_equal(tu_wait_child(pid, 10000), -1000 - SIGKILL);
    w = open_ok(f->dir, 0, NULL);
    assert_u64(topic_end_offset(w), 2);
    uint64_t off;
    assert_ok(topic_append(w, "z", 1, &off));
    assert_u64(off, 2);
    assert_ok(topic_close(w));
    close(ready[0]);
    close(ready[1]);
    close(go[0]);
    close(go[1]);
}

/* ------------------------------------------------------------------------ */
/* Threads                                                                   */

#define THR_SEED 1234
#define THR_MAXLEN 300
#define THR_RECORDS 20000

typedef struct thr_shared {
    topic *t;
    atomic_int writer_done;
    atomic_int failures;
    atomic_ullong reads;
    atomic_int reader_seq;
    char first_failure[256];
    pthread_mutex_t mu;
} thr_shared;

static void thr_fail(thr_shared *s, const char *fmt, ...)
{
    pthread_mutex_lock(&s->mu);
    if (atomic_fetch_add(&s->failures, 1) == 0) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(s->first_failure, sizeof s->first_failure, fmt, ap);
        va_end(ap);
    }
    pthread_mutex_unlock(&s->mu);
}

static void *thr_writer(void *p)
{
    thr_shared *s = p;
    tu_rng rng;
    tu_rng_seed(&rng, 99);
    uint64_t next = 0;
    unsigned char bufs[8][THR_MAXLEN];
    topic_record recs[8];
    while (next < THR_RECORDS && atomic_load(&s->failures) == 0) {
        size_t k = tu_rng_below(&rng, 4) == 0 ? 1 + (size_t)tu_rng_below(&rng, 8) : 0;
        if (k > THR_RECORDS - next)
            k = (size_t)(THR_RECORDS - next);
        uint64_t off = UINT64_MAX;
        int rc;
        if (k == 0) {
            size_t len = tu_value_len(next, THR_SEED, THR_MAXLEN);
            tu_fill(next, THR_SEED, bufs[0], len);
            rc = topic_append(s->t, bufs[0], len, &off);
            k = 1;
        } else {
            memset(recs, 0, sizeof recs);
            for (size_t i = 0; i < k; i++) {
                size_t len = tu_value_len(next + i, THR_SEED, THR_MAXLEN);
                tu_fill(next + i, THR_SEED, bufs[i], len);
                recs[i].value = bufs[i];
                recs[i].value_len = len;
            }
            rc = topic_append_batch(s->t, recs, k, &off);
        }
        if (rc != 0 || off != next) {
            thr_fail(s, "writer: append at %llu returned %d, offset %llu",
                     (unsigned long long)next, rc, (unsigned long long)off);
            break;
        }
        next += k;
    }
    atomic_store(&s->writer_done, 1);
    return NULL;
}

static void *thr_reader(void *p)
{
    thr_shared *s = p;
    tu_rng rng;
    tu_rng_seed(&rng, (uint64_t)atomic_fetch_add(&s->reader_seq, 1) * 1000003u);
    unsigned char buf[THR_MAXLEN + 1];
    uint64_t seq = 0, last_end = 0, reads = 0;
    for (;;) {
        int done = atomic_load(&s->writer_done);
        uint64_t end = topic_end_offset(s->t);
        if (end < last_end) {
            thr_fail(s, "end offset went back from %llu to %llu", (unsigned long long)last_end,
                     (unsigned long long)end);
            break;
        }
        last_end = end;
        if (end > 0) {
            uint64_t offs[3] = { end - 1, tu_rng_below(&rng, end), seq < end ? seq : end - 1 };
            for (int i = 0; i < 3; i++) {
                size_t len = 0;
                int rc = topic_read(s->t, offs[i], buf, sizeof buf, &len);
                reads++;
                size_t exp = tu_value_len(offs[i], THR_SEED, THR_MAXLEN);
                if (rc != 0) {
                    thr_fail(s, "topic_read(%llu) below end %llu = %d (%s)",
                             (unsigned long long)offs[i], (unsigned long long)end, rc,
                             topic_strerror(rc));
                    goto out;
                }
                if (len != exp || !tu_check_fill(offs[i], THR_SEED, buf, len)) {
                    thr_fail(s, "topic_read(%llu): wrong value (len %zu, expected %zu)",
                             (unsigned long long)offs[i], len, exp);
                    goto out;
                }
            }
            if (seq < end)
                seq++;
        }
        if (atomic_load(&s->failures))
            break;
        if (done && seq >= topic_end_offset(s->t))
            break;
    }
out:
    atomic_fetch_add(&s->reads, reads);
    return NULL;
}

static void test_threads_readers_writer(void **state)
{
    fx *f = *state;
    thr_shared s;
    memset(&s, 0, sizeof s);
    pthread_mutex_init(&s.mu, NULL);
    s.t = create_with(f->dir, "segment.bytes", "64K", "index.interval.bytes", "1024", NULL);
    pthread_t w, r[4];
    for (int i = 0; i < 4; i++)
        assert_int_equal(pthread_create(&r[i], NULL, thr_reader, &s), 0);
    assert_int_equal(pthread_create(&w, NULL, thr_writer, &s), 0);
    pthread_join(w, NULL);
    for (int i = 0; i < 4; i++)
        pthread_join(r[i], NULL);
    if (atomic_load(&s.failures))
        fail_msg("%d failures; first: %s", atomic_load(&s.failures), s.first_failure);
    assert_u64(topic_end_offset(s.t), THR_RECORDS);
    /* Everything once more, single-threaded. */
    unsigned char buf[THR_MAXLEN + 1];
    for (uint64_t o = 0; o < topic_end_offset(s.t); o++) {
        size_t len;
        assert_ok(topic_read(s.t, o, buf, sizeof buf, &len));
        assert_int_equal(len, tu_value_len(o, THR_SEED, THR_MAXLEN));
        assert_true(tu_check_fill(o, THR_SEED, buf, len));
    }
    assert_ok(topic_close(s.t));
    pthread_mutex_destroy(&s.mu);
}

typedef struct app_arg {
    topic *t;
    uint32_t id;
    uint32_t count;
    uint64_t *offsets;
    atomic_int *failures;
} app_arg;

static void *thr_appender(void *p)
{
    app_arg *a = p;
    for (uint32_t i = 0; i < a->count; i++) {
        uint32_t v[4] = { a->id, i, a->id * 7919u + i, ~i };
        int rc = topic_append(a->t, v, sizeof v, &a->offsets[i]);
        if (rc != 0) {
            atomic_fetch_add(a->failures, 1);
            break;
        }
    }
    return NULL;
}

static void test_threads_concurrent_appenders(void **state)
{
    fx *f = *state;
    topic *t = create_with(f->dir, "segment.bytes", "16K", NULL);
    enum { NT = 3, PER = 4000 };
    app_arg a[NT];
    pthread_t th[NT];
    atomic_int failures = 0;
    for (uint32_t i = 0; i < NT; i++) {
        a[i].t = t;
        a[i].id = i;
        a[i].count = PER;
        a[i].offsets = calloc(PER, sizeof(uint64_t));
        a[i].failures = &failures;
        assert_int_equal(pthread_create(&th[i], NULL, thr_appender, &a[i]), 0);
    }
    for (int i = 0; i < NT; i++)
        pthread_join(th[i], NULL);
    assert_int_equal(atomic_load(&failures), 0);
    assert_u64(topic_end_offset(t), NT * PER);
    unsigned char *seen = calloc(NT * PER, 1);
    for (uint32_t i = 0; i < NT; i++) {
        for (uint32_t k = 0; k < PER; k++) {
            uint64_t o = a[i].offsets[k];
            assert_true(o < NT * PER);
            assert_int_equal(seen[o], 0);
            seen[o] = 1;
            if (k > 0)
                assert_true(o > a[i].offsets[k - 1]);
            uint32_t v[4];
            size_t len;
            assert_ok(topic_read(t, o, v, sizeof v, &len));
            assert_int_equal(len, sizeof v);
            assert_int_equal(v[0], i);
            assert_int_equal(v[1], k);
            assert_int_equal(v[2], i * 7919u + k);
            assert_int_equal(v[3], ~k);
        }
        free(a[i].offsets);
    }
    free(seen);
    assert_ok(topic_close(t));
}

/* ------------------------------------------------------------------------ */
/* Durability settings                                                       */

static void test_sync_and_flush_settings(void **state)
{
    fx *f = *state;
    topic *t = create_with(f->dir, "segment.bytes", "4096", "flush.messages", "1", NULL);
    assert_ok(topic_sync(t));
    model m;
    model_init(&m, 10, 100);
    for (int i = 0; i < 60; i++)
        model_append(&m, t);
    model_append_batch(&m, t, 5, 1, NULL);
    assert_ok(topic_sync(t));
    assert_ok(topic_close(t));

    topic_config *c = conf_of("flush.messages", "0", "flush.ms", "1", NULL);
    t = open_ok(f->dir, 0, c);
    topic_config_free(c);
    for (int i = 0; i < 60; i++)
        model_append(&m, t);
    tu_sleep_us(20000);
    assert_ok(topic_sync(t));
    model_verify(&m, t, 0, m.n);
    assert_ok(topic_close(t));

    c = conf_of("flush.ms", "0", "segment.ms", "0", NULL);
    t = open_ok(f->dir, 0, c);
    topic_config_free(c);
    for (int i = 0; i < 30; i++)
        model_append(&m, t);
    assert_ok(topic_close(t));
    t = open_ok(f->dir, TOPIC_RDONLY, NULL);
    model_verify(&m, t, 0, m.n);
    assert_ok(topic_close(t));
    model_free(&m);
}

static void test_segment_ms_rolls(void **state)
{
    fx *f = *state;
    /* segment.ms is in ms; a tiny value rolls on the next append after it. */
    topic *t = create_with(f->dir, "segment.bytes", "1M", "segment.ms", "1", NULL);
    model m;
    model_init(&m, 15, 50);
    for (int i = 0; i < 5; i++) {
        model_append(&m, t);
        tu_sleep_us(5000);
    }
    model_append(&m, t);
    int n = tu_count_suffix(f->dir, ".log");
    if (n < 3)
        fail_msg("segment.ms=1 and appends 5 ms apart made only %d segment(s)", n);
    model_verify(&m, t, 0, m.n);
    assert_ok(topic_close(t));
    model_free(&m);
}

/*
 * segment.ms is the age at which the active segment rolls.  Records carrying
 * explicit timestamps from years ago, a few ms apart, must not roll a
 * segment per append: the segment was created just now, and the records'
 * timestamps span far less than segment.ms.
 */
static void test_segment_ms_old_timestamps(void **state)
{
    fx *f = *state;
    topic *t = create_with(f->dir, "segment.bytes", "4096", NULL);
    unsigned char v[60];
    memset(v, 3, sizeof v);
    for (int i = 0; i < 200; i++) {
        topic_record r;
        memset(&r, 0, sizeof r);
        r.timestamp = 1600000000000ll + i * 10; /* September 2020 */
        r.value = v;
        r.value_len = sizeof v;
        assert_ok(topic_append_batch(t, &r, 1, NULL));
    }
    /* 200 x 60 bytes of values is about 3-5 segments of 4096 bytes. */
    int n = tu_count_suffix(f->dir, ".log");
    if (n > 10)
        fail_msg("200 records of 60 bytes with timestamps from 2020 made %d segments of "
                 "segment.bytes=4096 (default segment.ms): a roll per append", n);
    assert_ok(topic_close(t));
}

/*
 * An empty key (non-NULL, key_len 0) is stored as such and read back with a
 * non-NULL pointer, apart from no key (NULL), as Kafka keeps a null key and
 * an empty one apart; with lz4 batches too, and after a reopen.
 */
static void test_empty_key_is_not_no_key(void **state)
{
    fx *f = *state;
    static char big[3000];
    memset(big, 'v', sizeof big);
    for (int lz4 = 0; lz4 < 2; lz4++) {
        tu_rmrf(f->dir);
        topic *t = create_with(f->dir, "compression.type", lz4 ? "lz4" : "none", NULL);
        topic_record recs[3] = {
            { .key = "", .key_len = 0, .value = big, .value_len = sizeof big },
            { .key = NULL, .key_len = 0, .value = big, .value_len = sizeof big },
            { .key = "k", .key_len = 1, .value = big, .value_len = sizeof big },
        };
        uint64_t first = 99;
        assert_ok(topic_append_batch(t, recs, 3, &first));
        assert_u64(first, 0);
        assert_ok(topic_close(t));
        t = open_ok(f->dir, 0, NULL);
        topic_cursor *c = NULL;
        assert_ok(topic_cursor_open(t, 0, &c));
        topic_record r;
        assert_ok(topic_cursor_next(c, &r));
        assert_non_null(r.key);
        assert_int_equal(r.key_len, 0);
        assert_ok(topic_cursor_next(c, &r));
        assert_null(r.key);
        assert_int_equal(r.key_len, 0);
        assert_ok(topic_cursor_next(c, &r));
        assert_non_null(r.key);
        assert_int_equal(r.key_len, 1);
        assert_memory_equal(r.key, "k", 1);
        assert_int_equal(r.value_len, sizeof big);
        assert_rc(topic_cursor_next(c, &r), TOPIC_END);
        topic_cursor_close(c);
        assert_ok(topic_close(t));
    }
}

/* What a thread with a small stack appends to an lz4 topic. */
struct small_stack_job {
    topic *t;
    int rc_batch, rc_single;
};

static void *append_lz4_on_small_stack(void *arg)
{
    struct small_stack_job *j = arg;
    static char value[1000];
    memset(value, 'z', sizeof value);
    topic_record recs[100];
    for (int i = 0; i < 100; i++)
        recs[i] = (topic_record){ .value = value, .value_len = 100 };
    j->rc_batch = topic_append_batch(j->t, recs, 100, NULL);
    j->rc_single = topic_append(j->t, value, sizeof value, NULL);
    return NULL;
}

/*
 * lz4's compressor keeps about 16 KiB of state on the stack unless given
 * its own, and a thread with a 16-20 KiB stack (event loops and green
 * threads give such stacks) crashed in the first compressed append.  The
 * state now lives in the handle.  Sanitizers need far more stack of their
 * own, so this runs only in the plain build.
 */
static void test_lz4_append_on_a_small_stack(void **state)
{
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
    (void)state;
    skip();
#else
    fx *f = *state;
    topic *t = create_with(f->dir, "compression.type", "lz4", NULL);
    assert_ok(topic_append(t, "warm", 4, NULL));   /* the library's threads start here */
    struct small_stack_job j = { t, 1, 1 };
    pthread_attr_t a;
    pthread_t th;
    size_t size = 20 * 1024;
    long min = sysconf(_SC_THREAD_STACK_MIN);
    if (min > 0 && (size_t)min > size)
        size = (size_t)min;
    assert_int_equal(pthread_attr_init(&a), 0);
    assert_int_equal(pthread_attr_setstacksize(&a, size), 0);
    assert_int_equal(pthread_create(&th, &a, append_lz4_on_small_stack, &j), 0);
    assert_int_equal(pthread_join(th, NULL), 0);
    pthread_attr_destroy(&a);
    assert_ok(j.rc_batch);
    assert_ok(j.rc_single);
    assert_u64(topic_end_offset(t), 102);
    assert_ok(topic_close(t));
    t = open_ok(f->dir, TOPIC_RDONLY, NULL);
    char buf[1000];
    size_t len = 0;
    assert_ok(topic_read(t, 50, buf, sizeof buf, &len));
    assert_int_equal(len, 100);
    assert_ok(topic_read(t, 101, buf, sizeof buf, &len));
    assert_int_equal(len, 1000);
    for (size_t i = 0; i < len; i++)
        assert_int_equal(buf[i], 'z');
    assert_ok(topic_close(t));
#endif
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_version),
        cmocka_unit_test(test_strerror),
        cmocka_unit_test(test_config_defaults_and_get),
        cmocka_unit_test(test_config_set_values),
        cmocka_unit_test_setup_teardown(test_open_flags, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_files_layout, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_close_null_and_reopen_cycles, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_append_read_basic, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_zero_length_values, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_batch_keys_timestamps, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_batch_edge_cases, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_timestamp_now, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_timestamp_now_exact, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_many_segments_few_descriptors, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_rolls_release_address_space, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_rolls_under_a_tight_address_limit, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_large_records, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_rotation_many_segments, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_settings_persist, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_read_errors, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_toobig, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_bad_args, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_cursor_next_and_tail, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_cursor_seek, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_seek_time_hand_made, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_seek_time_monotonic, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_seek_time_monotonic_dense_index, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_seek_time_nonmonotonic, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_seek_time_nonmonotonic_dense_index, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_seek_time_cost, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_rdonly, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_rdonly_follows_writer_same_process, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_rdonly_other_process, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_lock_same_process, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_lock_other_process, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_threads_readers_writer, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_threads_concurrent_appenders, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_sync_and_flush_settings, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_segment_ms_rolls, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_segment_ms_old_timestamps, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_empty_key_is_not_no_key, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_lz4_append_on_a_small_stack, fx_setup, fx_teardown),
    };
    /* TOPIC_TEST_FILTER=test_lock* runs only the tests whose names match. */
    if (getenv("TOPIC_TEST_FILTER"))
        cmocka_set_test_filter(getenv("TOPIC_TEST_FILTER"));
    return cmocka_run_group_tests_name("libtopic API", tests, NULL, NULL);
}
