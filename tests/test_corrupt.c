/*
 * Corruption tests: flip every bit of a segment, cut the active segment at
 * every length, damage or delete the indexes and the topic's own files, and
 * check that the library never returns a wrong record: every read gives the
 * original bytes or an error (TOPIC_ECORRUPT, or TOPIC_END when damage was
 * treated as a torn tail), and that it never crashes.
 *
 * Only the public on-disk layout is used: segment files %020llu.log with
 * .index and .timeindex beside them, topic.conf and topic.state; after
 * topic_close() every segment file is exactly its data length.
 *
 * SPDX-License-Identifier: BSD-2-Clause
 */
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "topic.h"
#include "testutil.h"
#include "topic_asserts.h"

/* ------------------------------------------------------------------------ */
/* Context for messages, and for the teardown when a test dies of a signal  */

static char phase[256];
#define PHASE(...) snprintf(phase, sizeof phase, __VA_ARGS__)

/*
 * Soft failures: inside guarded() a failed check is counted, the first few
 * are printed, and the iteration is abandoned (longjmp) so that one run lists
 * every damaged position that goes wrong instead of only the first.
 * Outside guarded() a failed check fails the test at once.
 */
static jmp_buf iter_env;
static int iter_active;
static topic *live_t;          /* a handle to close if an iteration is abandoned */
static topic_cursor *live_c;   /* likewise */
static unsigned long soft_failures;
static char first_failure[512];

#define MAX_PRINTED_FAILURES 15

static void check_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void check_fail(const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (!iter_active)
        fail_msg("%s", msg);
    if (soft_failures++ == 0)
        snprintf(first_failure, sizeof first_failure, "%s", msg);
    if (soft_failures <= MAX_PRINTED_FAILURES)
        print_message("FAIL: %s\n", msg);
    longjmp(iter_env, 1);
}

/* Runs body(arg) so that a failed check abandons only this iteration.
 * Returns 0, or -1 if the iteration failed. */
static int guarded(void (*body)(void *), void *arg)
{
    if (setjmp(iter_env)) {
        iter_active = 0;
        if (live_c)
            topic_cursor_close(live_c);
        if (live_t)
            topic_close(live_t);
        live_c = NULL;
        live_t = NULL;
        return -1;
    }
    iter_active = 1;
    body(arg);
    iter_active = 0;
    return 0;
}

static void soft_reset(void)
{
    soft_failures = 0;
    first_failure[0] = 0;
}

/* Fails the test if any guarded iteration failed. */
static void soft_check(const char *what, unsigned long iterations)
{
    if (soft_failures)
        fail_msg("%s: %lu of %lu iterations failed (first %d printed above); first: %s", what,
                 soft_failures, iterations, MAX_PRINTED_FAILURES, first_failure);
}

typedef struct fx {
    char *root;
    char *dir;   /* the topic under test: <root>/t */
} fx;

static int fx_setup(void **state)
{
    fx *f = calloc(1, sizeof *f);
    if (!f)
        return -1;
    f->root = tu_mkdtemp("corrupt");
    if (!f->root) {
        free(f);
        return -1;
    }
    f->dir = tu_path(f->root, "t");
    *state = f;
    phase[0] = 0;
    return 0;
}

static int fx_teardown(void **state)
{
    fx *f = *state;
    if (phase[0])
        print_message("test stopped during: %s\n", phase);
    phase[0] = 0;
    if (f) {
        if (getenv("TOPIC_TEST_KEEP"))
            print_message("kept %s\n", f->root);
        else
            tu_rmrf(f->root);
        free(f->root);
        free(f->dir);
        free(f);
    }
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Expected contents                                                         */

typedef struct rec {
    int has_key;
    size_t klen;
    unsigned char key[24];
    size_t vlen;
    unsigned char *val;
    int64_t ts;    /* read back from the pristine topic */
    int batch;     /* which append call wrote it */
} rec;

typedef struct expect {
    rec *r;
    size_t n, cap;
    int nbatches;
} expect;

static void expect_free(expect *e)
{
    for (size_t i = 0; i < e->n; i++)
        free(e->r[i].val);
    free(e->r);
    memset(e, 0, sizeof *e);
}

static rec *expect_push(expect *e)
{
    if (e->n == e->cap) {
        e->cap = e->cap ? e->cap * 2 : 64;
        e->r = realloc(e->r, e->cap * sizeof *e->r);
        assert_non_null(e->r);
    }
    rec *r = &e->r[e->n++];
    memset(r, 0, sizeof *r);
    return r;
}

/*
 * Appends one batch of k records (k == 1 and !as_batch: topic_append) with
 * values of vmin..vmax bytes; keys when `keys`; explicit timestamps from
 * ts0 (0 = now).
 */
static void add_batch(topic *t, expect *e, tu_rng *rng, size_t k, int as_batch, int keys,
                      int64_t ts0, size_t vmin, size_t vmax)
{
    int b = e->nbatches++;
    size_t first = e->n;
    for (size_t i = 0; i < k; i++) {
        rec *r = expect_push(e);
        r->batch = b;
        r->vlen = vmin + (size_t)tu_rng_below(rng, vmax - vmin + 1);
        r->val = malloc(r->vlen ? r->vlen : 1);
        assert_non_null(r->val);
        tu_fill(e->n * 7919u + (uint64_t)b, 0xabcdef, r->val, r->vlen);
        if (keys && as_batch) {
            r->has_key = 1;
            r->klen = 1 + (size_t)tu_rng_below(rng, sizeof r->key);
            tu_fill(e->n, 0x6b6579, r->key, r->klen);
        }
        r->ts = ts0 ? ts0 + (int64_t)i : 0;
    }
    uint64_t off = UINT64_MAX;
    if (!as_batch) {
        assert_int_equal(k, 1);
        rec *r = &e->r[first];
        assert_ok(topic_append(t, r->val, r->vlen, &off));
    } else {
        topic_record *recs = calloc(k, sizeof *recs);
        assert_non_null(recs);
        for (size_t i = 0; i < k; i++) {
            rec *r = &e->r[first + i];
            recs[i].key = r->has_key ? r->key : NULL;
            recs[i].key_len = r->has_key ? r->klen : 0;
            recs[i].value = r->vlen ? r->val : NULL;
            recs[i].value_len = r->vlen;
            recs[i].timestamp = r->ts;
        }
        assert_ok(topic_append_batch(t, recs, k, &off));
        free(recs);
    }
    assert_u64(off, first);
}

/* Reads the timestamps of the pristine topic into the expectation (records
 * appended with timestamp 0 got "now"), checking everything else. */
static void capture_ts(topic *t, expect *e)
{
    topic_cursor *c;
    assert_ok(topic_cursor_open(t, 0, &c));
    for (size_t i = 0; i < e->n; i++) {
        topic_record r;
        assert_ok(topic_cursor_next(c, &r));
        assert_u64(r.offset, i);
        assert_int_equal(r.value_len, e->r[i].vlen);
        if (r.value_len)
            assert_memory_equal(r.value, e->r[i].val, r.value_len);
        if (e->r[i].ts)
            assert_int_equal(r.timestamp, e->r[i].ts);
        e->r[i].ts = r.timestamp;
    }
    topic_cursor_close(c);
}

/* Whether a record a cursor returned is exactly the expected one. */
static int rec_matches(const rec *x, const topic_record *r)
{
    if (r->value_len != x->vlen || r->timestamp != x->ts)
        return 0;
    if (x->vlen && (!r->value || memcmp(r->value, x->val, x->vlen) != 0))
        return 0;
    if (x->has_key)
        return r->key_len == x->klen && r->key && memcmp(r->key, x->key, x->klen) == 0;
    return r->key_len == 0;
}

/* ------------------------------------------------------------------------ */
/* Snapshots of a directory's files                                          */

typedef struct snapfile {
    char *name;
    unsigned char *data;
    size_t len;
} snapfile;

typedef struct snap {
    snapfile *f;
    size_t n;
} snap;

static void snap_take(const char *dir, snap *s)
{
    memset(s, 0, sizeof *s);
    DIR *d = opendir(dir);
    assert_non_null(d);
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (de->d_name[0] == '.')
            continue;
        char *p = tu_path(dir, de->d_name);
        struct stat st;
        if (stat(p, &st) == 0 && S_ISREG(st.st_mode)) {
            s->f = realloc(s->f, (s->n + 1) * sizeof *s->f);
            snapfile *sf = &s->f[s->n++];
            sf->name = strdup(de->d_name);
            assert_ok(tu_read_file(p, &sf->data, &sf->len));
        }
        free(p);
    }
    closedir(d);
}

static const snapfile *snap_find(const snap *s, const char *name)
{
    for (size_t i = 0; i < s->n; i++)
        if (!strcmp(s->f[i].name, name))
            return &s->f[i];
    return NULL;
}

/* Makes dir hold exactly the snapshot's files. */
static void snap_restore(const char *dir, const snap *s)
{
    DIR *d = opendir(dir);
    assert_non_null(d);
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
            continue;
        if (!snap_find(s, de->d_name)) {
            char *p = tu_path(dir, de->d_name);
            tu_rmrf(p);
            free(p);
        }
    }
    closedir(d);
    for (size_t i = 0; i < s->n; i++) {
        char *p = tu_path(dir, s->f[i].name);
        assert_ok(tu_overwrite_file(p, s->f[i].data, s->f[i].len));
        free(p);
    }
}

static void snap_free(snap *s)
{
    for (size_t i = 0; i < s->n; i++) {
        free(s->f[i].name);
        free(s->f[i].data);
    }
    free(s->f);
    memset(s, 0, sizeof *s);
}

static char *seg_name(uint64_t base, const char *ext)
{
    char *p = malloc(48);
    assert_non_null(p);
    snprintf(p, 48, "%020llu.%s", (unsigned long long)base, ext);
    return p;
}

/* ------------------------------------------------------------------------ */
/* Checking a possibly damaged topic                                         */

enum { RES_OK = 0, RES_CORRUPT = 1, RES_END = 2 };

typedef struct outcome {
    uint64_t end;
    unsigned char *rd;   /* per offset: RES_OK / RES_CORRUPT / RES_END from topic_read */
    unsigned char *cur;  /* the same from the cursor walk */
} outcome;

/*
 * Reads offsets of t with topic_read and with a cursor.  Offsets below
 * `limit` (at most e->n) are compared with the expectation: each read must
 * give the original record or TOPIC_ECORRUPT; TOPIC_END comes exactly when
 * offset >= end offset.  The end offset may not exceed max_end (records that
 * were never written).  Offsets in [limit, end) are not compared.  Fails the
 * test, naming `ctx`, on anything else.
 */
static void check_reads_to(topic *t, const expect *e, uint64_t limit, uint64_t max_end,
                           outcome *o, const char *ctx)
{
    o->end = topic_end_offset(t);
    if (o->end > max_end) {
        /* Say what the phantom records read as, for the diagnosis. */
        unsigned char pb[1024];
        size_t plen = 0;
        int prc = topic_read(t, max_end, pb, sizeof pb, &plen);
        check_fail("%s: end offset %llu but only %llu records were ever written "
                   "(topic_read(%llu) = %d (%s), len %zu)", ctx, (unsigned long long)o->end,
                   (unsigned long long)max_end, (unsigned long long)max_end, prc,
                   topic_strerror(prc), plen);
    }
    /* A fixed buffer: check_fail() may longjmp out of here. */
    unsigned char buf[1024];
    size_t cap = sizeof buf;
    for (size_t i = 0; i < e->n; i++)
        assert_true(e->r[i].vlen + 64 <= cap);
    uint64_t top = (limit > o->end ? limit : o->end) + 1;
    for (uint64_t off = 0; off <= top; off++) {
        size_t len = 0;
        if (off >= limit && off < o->end)
            continue;
        int rc = topic_read(t, off, buf, cap, &len);
        if (off >= o->end) {
            if (rc != TOPIC_END)
                check_fail("%s: topic_read(%llu) at/after end %llu = %d (%s), expected TOPIC_END",
                         ctx, (unsigned long long)off, (unsigned long long)o->end, rc,
                         topic_strerror(rc));
            if (off < e->n)
                o->rd[off] = RES_END;
            continue;
        }
        const rec *x = &e->r[off];
        if (rc == 0) {
            if (len != x->vlen || (len && memcmp(buf, x->val, len) != 0))
                check_fail("%s: topic_read(%llu) returned WRONG DATA: len %zu (expected %zu)%s",
                         ctx, (unsigned long long)off, len, x->vlen,
                         len == x->vlen ? ", bytes differ" : "");
            o->rd[off] = RES_OK;
        } else if (rc == TOPIC_ECORRUPT) {
            o->rd[off] = RES_CORRUPT;
        } else {
            check_fail("%s: topic_read(%llu) below end %llu = %d (%s); expected the record "
                     "or TOPIC_ECORRUPT", ctx, (unsigned long long)off,
                     (unsigned long long)o->end, rc, topic_strerror(rc));
        }
    }

    topic_cursor *c = NULL;
    int rc = topic_cursor_open(t, 0, &c);
    if (rc != 0)
        check_fail("%s: topic_cursor_open(0) = %d (%s)", ctx, rc, topic_strerror(rc));
    live_c = c;
    uint64_t pos = 0;
    uint64_t stop = limit < o->end ? limit : o->end;
    for (;;) {
        topic_record r;
        memset(&r, 0, sizeof r);
        if (pos == stop && stop < o->end)
            break;   /* records past `limit` are not compared */
        rc = topic_cursor_next(c, &r);
        if (rc == TOPIC_END) {
            if (pos != o->end)
                check_fail("%s: cursor gave TOPIC_END at %llu, end offset is %llu", ctx,
                         (unsigned long long)pos, (unsigned long long)o->end);
            break;
        }
        if (pos >= o->end)
            check_fail("%s: cursor at %llu (end %llu) = %d (%s), expected TOPIC_END", ctx,
                     (unsigned long long)pos, (unsigned long long)o->end, rc,
                     topic_strerror(rc));
        if (rc == 0) {
            if (r.offset != pos)
                check_fail("%s: cursor gave offset %llu at position %llu", ctx,
                         (unsigned long long)r.offset, (unsigned long long)pos);
            if (!rec_matches(&e->r[pos], &r))
                check_fail("%s: cursor returned WRONG DATA at offset %llu (value_len %zu, "
                         "expected %zu; key_len %zu, timestamp %lld vs %lld)", ctx,
                         (unsigned long long)pos, r.value_len, e->r[pos].vlen, r.key_len,
                         (long long)r.timestamp, (long long)e->r[pos].ts);
            o->cur[pos] = RES_OK;
            pos++;
        } else if (rc == TOPIC_ECORRUPT) {
            uint64_t at = topic_cursor_offset(c);
            if (at != pos)
                check_fail("%s: after TOPIC_ECORRUPT the cursor is at %llu, not on the damaged "
                         "record %llu", ctx, (unsigned long long)at, (unsigned long long)pos);
            o->cur[pos] = RES_CORRUPT;
            pos++;
            rc = topic_cursor_seek(c, pos);
            if (rc != 0)
                check_fail("%s: seek past damaged record to %llu = %d (%s)", ctx,
                         (unsigned long long)pos, rc, topic_strerror(rc));
        } else {
            check_fail("%s: cursor at %llu = %d (%s)", ctx, (unsigned long long)pos, rc,
                     topic_strerror(rc));
        }
    }
    live_c = NULL;
    topic_cursor_close(c);
}

static void check_reads(topic *t, const expect *e, outcome *o, const char *ctx)
{
    check_reads_to(t, e, e->n, e->n, o, ctx);
}

static const char appended_value[] = "appended after damage";

/* Checks that offset `off` holds the record check_append() wrote. */
static void check_appended(topic *t, uint64_t off, const char *ctx)
{
    char buf[64];
    size_t len = 0;
    int rc = topic_read(t, off, buf, sizeof buf, &len);
    if (rc != 0 || len != sizeof appended_value || memcmp(buf, appended_value, len) != 0)
        check_fail("%s: the record appended at %llu reads back as %d (%s), len %zu", ctx,
                 (unsigned long long)off, rc, topic_strerror(rc), len);
}

/* Appends one record to a recovered writer: it gets the end offset and
 * reads back. */
static void check_append(topic *t, const char *ctx)
{
    uint64_t end = topic_end_offset(t), off = UINT64_MAX;
    int rc = topic_append(t, appended_value, sizeof appended_value, &off);
    if (rc != 0 || off != end)
        check_fail("%s: append = %d (%s) at offset %llu, expected offset %llu", ctx, rc,
                 topic_strerror(rc), (unsigned long long)off, (unsigned long long)end);
    check_appended(t, off, ctx);
}

typedef struct flip_stats {
    unsigned long flips;
    unsigned long open_refused;     /* topic_open said TOPIC_ECORRUPT */
    unsigned long no_effect;        /* every record still read back intact */
    unsigned long corrupt_reported; /* at least one TOPIC_ECORRUPT */
    unsigned long tail_cut;         /* end offset went down */
    unsigned long failed;           /* iterations with a failed check */
} flip_stats;

/*
 * Opens the damaged topic with `flags`; open may succeed or say
 * TOPIC_ECORRUPT (unless must_open).  Checks every read, and for a writer
 * also that an append continues at the end offset.
 */
static void open_and_check(const char *dir, int flags, const expect *e, int must_open,
                           flip_stats *fs, outcome *o, const char *ctx)
{
    topic *t = NULL;
    int rc = topic_open(dir, flags, NULL, &t);
    if (rc == TOPIC_ECORRUPT && !must_open) {
        fs->open_refused++;
        o->end = UINT64_MAX;
        return;
    }
    if (rc != 0)
        check_fail("%s: topic_open(%s) = %d (%s)", ctx, flags & TOPIC_RDONLY ? "RDONLY" : "writer",
                 rc, topic_strerror(rc));
    live_t = t;
    check_reads(t, e, o, ctx);
    if (!(flags & TOPIC_RDONLY))
        check_append(t, ctx);
    live_t = NULL;
    rc = topic_close(t);
    if (rc != 0)
        check_fail("%s: topic_close = %d (%s)", ctx, rc, topic_strerror(rc));
}

static void tally(const expect *e, const outcome *o, flip_stats *fs)
{
    if (o->end == UINT64_MAX)
        return;
    int corrupt = 0, intact = 1;
    for (uint64_t i = 0; i < e->n; i++) {
        if (o->rd[i] == RES_CORRUPT)
            corrupt = 1;
        if (o->rd[i] != RES_OK)
            intact = 0;
    }
    fs->corrupt_reported += (unsigned long)corrupt;
    fs->no_effect += (unsigned long)intact;
    fs->tail_cut += (unsigned long)(o->end < e->n);
}

/* ------------------------------------------------------------------------ */
/* (a) bit flips in the active segment                                       */

static void build_small(const char *dir, expect *e)
{
    topic_config *c = topic_config_new();
    assert_ok(topic_config_set(c, "segment.bytes", "4096"));
    topic *t = NULL;
    assert_ok(topic_open(dir, TOPIC_CREATE, c, &t));
    topic_config_free(c);
    tu_rng rng;
    tu_rng_seed(&rng, 3);
    memset(e, 0, sizeof *e);
    add_batch(t, e, &rng, 1, 0, 0, 0, 90, 90);                    /* offset 0 */
    add_batch(t, e, &rng, 3, 1, 1, 1700000000001ll, 0, 40);       /* offsets 1..3 */
    add_batch(t, e, &rng, 1, 0, 0, 0, 100, 100);                  /* offset 4 */
    capture_ts(t, e);
    assert_ok(topic_close(t));
}

/*
 * With a sealed segment damaged (seg_end > 0: records [0, seg_end) live in
 * it) and an index entry for every batch (index.interval.bytes=1), the
 * damage is confined to the one batch that holds the flipped byte: its
 * records give TOPIC_ECORRUPT (or, if the flip hit nothing that matters, all
 * read intact), every other record is intact, and topic_read and the cursor
 * agree.
 */
static void check_confined(const expect *e, const outcome *o, uint64_t seg_end, const char *ctx)
{
    int bad_batch = -1;
    for (uint64_t i = 0; i < e->n; i++) {
        if (o->rd[i] != o->cur[i])
            check_fail("%s: offset %llu: topic_read says %s but the cursor says %s", ctx,
                       (unsigned long long)i, o->rd[i] == RES_OK ? "intact" : "corrupt",
                       o->cur[i] == RES_OK ? "intact" : "corrupt");
        if (o->rd[i] == RES_OK)
            continue;
        if (i >= seg_end)
            check_fail("%s: offset %llu in an undamaged segment reads as corrupt", ctx,
                       (unsigned long long)i);
        if (bad_batch >= 0 && e->r[i].batch != bad_batch)
            check_fail("%s: records of batches %d and %d both read as corrupt after one bit "
                       "flip (offset %llu): damage not confined to one batch", ctx, bad_batch,
                       e->r[i].batch, (unsigned long long)i);
        bad_batch = e->r[i].batch;
    }
    if (bad_batch >= 0)
        for (uint64_t i = 0; i < e->n; i++)
            if (e->r[i].batch == bad_batch && o->rd[i] == RES_OK)
                check_fail("%s: batch %d is damaged but its record %llu reads as intact", ctx,
                           bad_batch, (unsigned long long)i);
}

typedef struct flip_ctx {
    const char *dir;
    const expect *e;
    size_t pos;
    int bit;
    int flags;          /* TOPIC_RDONLY or 0 */
    int must_open;
    uint64_t seg_end;   /* sealed variant: records [0, seg_end) in the damaged segment */
    outcome *o;
    flip_stats *fs;
} flip_ctx;

static void flip_body(void *arg)
{
    flip_ctx *x = arg;
    char ctx[128];
    snprintf(ctx, sizeof ctx, "%s segment, log byte %zu bit %d, %s open",
             x->seg_end ? "sealed" : "active", x->pos, x->bit,
             (x->flags & TOPIC_RDONLY) ? "read-only" : "writer");
    PHASE("%s", ctx);
    memset(x->o->rd, 0, x->e->n + 1);
    memset(x->o->cur, 0, x->e->n + 1);
    open_and_check(x->dir, x->flags, x->e, x->must_open, x->fs, x->o, ctx);
    if (x->seg_end) {
        if (x->o->end != x->e->n)
            check_fail("%s: end offset %llu, expected %zu: damage in a sealed segment "
                       "must not cut the log", ctx, (unsigned long long)x->o->end, x->e->n);
        check_confined(x->e, x->o, x->seg_end, ctx);
    }
    tally(x->e, x->o, x->fs);
}

static void print_flip_stats(const char *what, const flip_stats *fs)
{
    print_message("%s: %lu flips, %lu failed, %lu opens refused (TOPIC_ECORRUPT), "
                  "%lu with TOPIC_ECORRUPT reads, %lu cut as a torn tail, %lu without effect\n",
                  what, fs->flips, fs->failed, fs->open_refused, fs->corrupt_reported,
                  fs->tail_cut, fs->no_effect);
}

static void test_flip_every_bit_active_segment(void **state)
{
    fx *f = *state;
    soft_reset();
    expect e;
    build_small(f->dir, &e);
    snap pristine;
    snap_take(f->dir, &pristine);
    char *logname = seg_name(0, "log");
    char *log = tu_path(f->dir, logname);
    const snapfile *lf = snap_find(&pristine, logname);
    assert_non_null(lf);
    assert_int_equal(tu_count_suffix(f->dir, ".log"), 1);
    size_t loglen = lf->len;
    assert_true(loglen > 190 && loglen < 4096);

    outcome o;
    o.rd = calloc(e.n + 1, 1);
    o.cur = calloc(e.n + 1, 1);
    flip_stats fs[2];
    memset(fs, 0, sizeof fs);
    flip_ctx x = { f->dir, &e, 0, 0, 0, 0, 0, &o, NULL };
    for (size_t pos = 0; pos < loglen; pos++) {
        for (int bit = 0; bit < 8; bit++) {
            snap_restore(f->dir, &pristine);
            assert_ok(tu_flip_bit(log, (off_t)pos, bit));
            for (int w = 0; w < 2; w++) {
                /* The read-only open writes nothing, so the writer sees the
                 * same damage. */
                x.pos = pos;
                x.bit = bit;
                x.flags = w ? 0 : TOPIC_RDONLY;
                x.fs = &fs[w];
                fs[w].flips++;
                if (guarded(flip_body, &x) != 0)
                    fs[w].failed++;
            }
        }
    }
    phase[0] = 0;
    char what[96];
    snprintf(what, sizeof what, "active segment (%zu bytes), read-only", loglen);
    print_flip_stats(what, &fs[0]);
    snprintf(what, sizeof what, "active segment (%zu bytes), writer", loglen);
    print_flip_stats(what, &fs[1]);
    free(o.rd);
    free(o.cur);
    free(logname);
    free(log);
    snap_free(&pristine);
    expect_free(&e);
    soft_check("bit flips in the active segment", fs[0].flips + fs[1].flips);
}

static void test_flip_bits_sealed_segment(void **state)
{
    fx *f = *state;
    soft_reset();
    topic_config *c = topic_config_new();
    assert_ok(topic_config_set(c, "segment.bytes", "4096"));
    assert_ok(topic_config_set(c, "index.interval.bytes", "1"));
    topic *t = NULL;
    assert_ok(topic_open(f->dir, TOPIC_CREATE, c, &t));
    topic_config_free(c);
    expect e;
    memset(&e, 0, sizeof e);
    tu_rng rng;
    tu_rng_seed(&rng, 17);
    while (tu_count_suffix(f->dir, ".log") < 3) {
        uint64_t kind = tu_rng_below(&rng, 3);
        if (kind == 0)
            add_batch(t, &e, &rng, 1, 0, 0, 0, 50, 300);
        else
            add_batch(t, &e, &rng, 2 + (size_t)tu_rng_below(&rng, 4), 1, (int)(kind == 1),
                      kind == 1 ? 1700000000000ll + (int64_t)e.n * 5 : 0, 0, 120);
    }
    add_batch(t, &e, &rng, 1, 0, 0, 0, 10, 20);
    capture_ts(t, &e);
    assert_ok(topic_close(t));

    uint64_t *bases;
    int nseg = tu_list_segments(f->dir, &bases);
    assert_true(nseg >= 3);
    uint64_t seg_end = bases[1];   /* records [0, bases[1]) are in segment 0 */
    free(bases);
    assert_true(seg_end > 3);

    snap pristine;
    snap_take(f->dir, &pristine);
    char *logname = seg_name(0, "log");
    char *log = tu_path(f->dir, logname);
    const snapfile *lf = snap_find(&pristine, logname);
    assert_non_null(lf);
    size_t loglen = lf->len;

    outcome o;
    o.rd = calloc(e.n + 1, 1);
    o.cur = calloc(e.n + 1, 1);
    flip_stats fs;
    memset(&fs, 0, sizeof fs);
    flip_ctx x = { f->dir, &e, 0, 0, 0, 1, seg_end, &o, &fs };
    unsigned long iter = 0;
    for (size_t pos = 0; pos < loglen; pos++) {
        /* Every bit of the first and last 64 bytes; one bit (varying) of
         * every other byte. */
        int all = pos < 64 || pos + 64 >= loglen;
        for (int bit = 0; bit < 8; bit++) {
            if (!all && bit != (int)((pos * 3 + 1) % 8))
                continue;
            int writer = (iter++ % 16) == 0;
            assert_ok(tu_flip_bit(log, (off_t)pos, bit));
            x.pos = pos;
            x.bit = bit;
            x.flags = writer ? 0 : TOPIC_RDONLY;
            fs.flips++;
            if (guarded(flip_body, &x) != 0)
                fs.failed++;
            /* A read-only handle changed nothing: flip the bit back. */
            if (writer || fs.failed)
                snap_restore(f->dir, &pristine);
            else
                assert_ok(tu_flip_bit(log, (off_t)pos, bit));
        }
    }
    phase[0] = 0;
    char what[128];
    snprintf(what, sizeof what, "sealed segment (%zu bytes; %d segments, %zu records)", loglen,
             nseg, e.n);
    print_flip_stats(what, &fs);
    free(o.rd);
    free(o.cur);
    free(logname);
    free(log);
    snap_free(&pristine);
    expect_free(&e);
    soft_check("bit flips in a sealed segment", fs.flips);
}

/* ------------------------------------------------------------------------ */
/* (b) the active segment cut at every length                                */

typedef struct trunc_ctx {
    const char *dir;
    const expect *e;
    const snap *pristine;
    const char *log;
    size_t L, full;
    size_t complete;   /* records in whole batches below L */
    int crashed;       /* the writer died (the clean flag is clear), or closed */
    outcome *o;
} trunc_ctx;

/* Makes topic.state what a loss of power during a writer's appends leaves
 * (FORMAT.md 4): the clean flag clear, the record's checksum no longer
 * matching (the writer had sealed a segment, or appended past the clean
 * close's record), and a live area of an earlier boot.  The flag alone
 * would be a writer that died before it sealed anything, whose record
 * vouches for what the close had synced; a live area of this boot, one
 * whose published end vouches for what it handed out. */
static void mark_crashed(const char *dir)
{
    char *st = tu_path(dir, "topic.state");
    unsigned char *data = NULL;
    size_t len = 0;
    assert_ok(tu_read_file(st, &data, &len));
    assert_true(len >= 120 && data[16] == 1);
    memset(data + 16, 0, 4);
    memset(data + 8, 0, 8);
    memset(data + 104, 0xa5, 16);
    assert_ok(tu_write_file(st, data, len));
    free(data);
    free(st);
}

/*
 * The active segment cut to x->L bytes.  After a crash (x->crashed), the cut
 * is a torn tail: the writer recovers exactly the records of whole batches,
 * and appends go on from there.  After a clean close it is damage, for the
 * close had synced every byte: the records of whole batches still read back,
 * the lost ones are TOPIC_ECORRUPT, the end offset stays, and the next
 * append gets it, so that no offset is handed out twice.
 */
static void trunc_body(void *arg)
{
    trunc_ctx *x = arg;
    const expect *e = x->e;
    outcome *o = x->o;
    const char *how = x->crashed ? "after a crash" : "after a clean close";
    char ctx[160];
    snap_restore(x->dir, x->pristine);
    if (x->crashed)
        mark_crashed(x->dir);
    assert_ok(tu_truncate(x->log, (off_t)x->L));

    /* A read-only handle: never wrong data; the records of complete batches
     * intact (it may not know yet where the log now ends). */
    snprintf(ctx, sizeof ctx, "log cut to %zu of %zu bytes %s, read-only open", x->L, x->full,
             how);
    PHASE("%s", ctx);
    topic *t = NULL;
    int rc = topic_open(x->dir, TOPIC_RDONLY, NULL, &t);
    if (rc != 0 && rc != TOPIC_ECORRUPT)
        check_fail("%s = %d (%s)", ctx, rc, topic_strerror(rc));
    if (rc == 0) {
        live_t = t;
        memset(o->rd, 0, e->n + 1);
        check_reads(t, e, o, ctx);
        for (size_t i = 0; i < x->complete && i < o->end; i++)
            if (o->rd[i] != RES_OK)
                check_fail("%s: record %zu of a whole batch does not read back (%s)", ctx, i,
                           o->rd[i] == RES_CORRUPT ? "TOPIC_ECORRUPT" : "TOPIC_END");
        live_t = NULL;
        assert_ok(topic_close(t));
    }

    snprintf(ctx, sizeof ctx, "log cut to %zu of %zu bytes %s, writer open", x->L, x->full, how);
    PHASE("%s", ctx);
    t = NULL;
    rc = topic_open(x->dir, 0, NULL, &t);
    if (rc != 0)
        check_fail("%s = %d (%s)", ctx, rc, topic_strerror(rc));
    live_t = t;
    check_reads(t, e, o, ctx);
    size_t end = x->crashed ? x->complete : e->n;
    if (o->end != end)
        check_fail("%s: end offset %llu, expected %zu (%s)", ctx, (unsigned long long)o->end,
                   end, x->crashed ? "the records of whole batches" : "as the close left it");
    for (size_t i = 0; i < end; i++) {
        int want = i < x->complete ? RES_OK : RES_CORRUPT;
        if (o->rd[i] != want || o->cur[i] != want)
            check_fail("%s: record %zu reads as %d/%d, expected %s", ctx, i, o->rd[i],
                       o->cur[i], want == RES_OK ? "its bytes" : "TOPIC_ECORRUPT");
    }
    check_append(t, ctx);
    live_t = NULL;
    assert_ok(topic_close(t));

    /* And after that clean close, once more. */
    snprintf(ctx, sizeof ctx, "log cut to %zu of %zu bytes %s, reopen after recovery", x->L,
             x->full, how);
    PHASE("%s", ctx);
    t = NULL;
    rc = topic_open(x->dir, TOPIC_RDONLY, NULL, &t);
    if (rc != 0)
        check_fail("%s = %d (%s)", ctx, rc, topic_strerror(rc));
    live_t = t;
    if (topic_end_offset(t) != end + 1)
        check_fail("%s: end offset %llu, expected %zu", ctx,
                   (unsigned long long)topic_end_offset(t), end + 1);
    check_reads_to(t, e, end, end + 1, o, ctx);
    for (size_t i = 0; i < end; i++) {
        int want = i < x->complete ? RES_OK : RES_CORRUPT;
        if (o->rd[i] != want)
            check_fail("%s: record %zu reads as %d, expected %s", ctx, i, o->rd[i],
                       want == RES_OK ? "its bytes" : "TOPIC_ECORRUPT");
    }
    check_appended(t, end, ctx);
    live_t = NULL;
    assert_ok(topic_close(t));
}

static void test_truncate_active_segment(void **state)
{
    fx *f = *state;
    soft_reset();
    topic_config *c = topic_config_new();
    assert_ok(topic_config_set(c, "segment.bytes", "64K"));
    assert_ok(topic_config_set(c, "index.interval.bytes", "128"));
    topic *t = NULL;
    assert_ok(topic_open(f->dir, TOPIC_CREATE, c, &t));
    topic_config_free(c);
    expect e;
    memset(&e, 0, sizeof e);
    tu_rng rng;
    tu_rng_seed(&rng, 23);
    /* Seven batches, then three more, each after a close so that the closed
     * file's size tells where each of the last three starts. */
    for (int b = 0; b < 7; b++) {
        if (b % 2)
            add_batch(t, &e, &rng, 1, 0, 0, 0, 0, 150);
        else
            add_batch(t, &e, &rng, 1 + (size_t)tu_rng_below(&rng, 4), 1, 1, 0, 0, 80);
    }
    char *log = tu_segment_path(f->dir, 0, "log");
    size_t starts[4];      /* starts[i]: file length before batch 7 + i */
    size_t recs_before[4]; /* records before batch 7 + i */
    for (int b = 0; b < 3; b++) {
        assert_ok(topic_close(t));
        starts[b] = (size_t)tu_file_size(log);
        recs_before[b] = e.n;
        t = NULL;
        assert_ok(topic_open(f->dir, 0, NULL, &t));
        if (b == 1)
            add_batch(t, &e, &rng, 1, 0, 0, 0, 60, 60);
        else
            add_batch(t, &e, &rng, 3, 1, b == 0, 1700000000000ll, 5, 40);
    }
    capture_ts(t, &e);
    assert_ok(topic_close(t));
    starts[3] = (size_t)tu_file_size(log);
    recs_before[3] = e.n;
    assert_int_equal(tu_count_suffix(f->dir, ".log"), 1);
    for (int i = 0; i < 3; i++)
        assert_true(starts[i] < starts[i + 1]);

    snap pristine;
    snap_take(f->dir, &pristine);
    outcome o;
    o.rd = calloc(e.n + 1, 1);
    o.cur = calloc(e.n + 1, 1);
    trunc_ctx x = { f->dir, &e, &pristine, log, 0, starts[3], 0, 0, &o };
    unsigned long n = 0, failed = 0;
    for (size_t L = starts[3]; L + 1 > starts[0]; L--) {
        x.L = L;
        x.complete = recs_before[0];
        for (int i = 1; i <= 3; i++)
            if (L >= starts[i])
                x.complete = recs_before[i];
        for (x.crashed = 1; x.crashed >= 0; x.crashed--) {
            n++;
            if (guarded(trunc_body, &x) != 0)
                failed++;
        }
    }
    phase[0] = 0;
    print_message("cut the active segment at %zu lengths (%zu..%zu bytes), after a crash and "
                  "after a clean close: %lu runs, %lu failed\n", starts[3] - starts[0] + 1,
                  starts[0], starts[3], n, failed);
    free(o.rd);
    free(o.cur);
    free(log);
    snap_free(&pristine);
    expect_free(&e);
    soft_check("active segment cut at every length", n);
}

/* Bytes after the data of a closed segment (zeros, as in a preallocated
 * tail, or garbage) are not records. */
typedef struct trail_ctx {
    const char *dir;
    const expect *e;
    const snap *pristine;
    const char *log;
    int mode;
    outcome *o;
} trail_ctx;

static void trail_body(void *arg)
{
    trail_ctx *x = arg;
    unsigned char junk[4096];
    snap_restore(x->dir, x->pristine);
    if (x->mode == 0)
        memset(junk, 0, sizeof junk);
    else if (x->mode == 1)
        tu_fill(99, 99, junk, sizeof junk);
    else
        memset(junk, 0xff, sizeof junk);
    assert_ok(tu_append_file(x->log, junk, x->mode == 0 ? 4096 : 333));
    for (int w = 0; w < 2; w++) {
        char ctx[96];
        snprintf(ctx, sizeof ctx, "%s appended after the data, %s open",
                 x->mode == 0 ? "4096 zero bytes" : x->mode == 1 ? "333 random bytes"
                                                                 : "333 bytes of 0xff",
                 w ? "writer" : "read-only");
        PHASE("%s", ctx);
        topic *t = NULL;
        int rc = topic_open(x->dir, w ? 0 : TOPIC_RDONLY, NULL, &t);
        if (rc != 0)
            check_fail("%s = %d (%s)", ctx, rc, topic_strerror(rc));
        live_t = t;
        check_reads(t, x->e, x->o, ctx);
        if (x->o->end != x->e->n)
            check_fail("%s: end offset %llu, expected %zu", ctx, (unsigned long long)x->o->end,
                       x->e->n);
        for (size_t i = 0; i < x->e->n; i++)
            if (x->o->rd[i] != RES_OK || x->o->cur[i] != RES_OK)
                check_fail("%s: record %zu does not read back", ctx, i);
        if (w)
            check_append(t, ctx);
        live_t = NULL;
        assert_ok(topic_close(t));
    }
}

static void test_trailing_bytes_after_data(void **state)
{
    fx *f = *state;
    soft_reset();
    expect e;
    build_small(f->dir, &e);
    snap pristine;
    snap_take(f->dir, &pristine);
    char *log = tu_segment_path(f->dir, 0, "log");
    outcome o;
    o.rd = calloc(e.n + 1, 1);
    o.cur = calloc(e.n + 1, 1);
    trail_ctx x = { f->dir, &e, &pristine, log, 0, &o };
    for (int mode = 0; mode < 3; mode++) {
        x.mode = mode;
        guarded(trail_body, &x);
    }
    phase[0] = 0;
    free(o.rd);
    free(o.cur);
    free(log);
    snap_free(&pristine);
    expect_free(&e);
    soft_check("bytes after the data", 3);
}

/* ------------------------------------------------------------------------ */
/* (c) damaged indexes are rebuilt                                           */

static uint64_t expect_seek(const expect *e, int64_t T)
{
    for (size_t i = 0; i < e->n; i++)
        if (e->r[i].ts >= T)
            return i;
    return e->n;
}

static void check_seek_times(topic *t, const expect *e, const char *ctx)
{
    topic_cursor *c;
    assert_ok(topic_cursor_open(t, 0, &c));
    live_c = c;
    tu_rng rng;
    tu_rng_seed(&rng, 5);
    for (int q = 0; q < 40; q++) {
        int64_t T = e->r[tu_rng_below(&rng, e->n)].ts + (q & 1);
        int rc = topic_cursor_seek_time(c, T);
        if (rc != 0)
            check_fail("%s: seek_time(%lld) = %d (%s)", ctx, (long long)T, rc, topic_strerror(rc));
        uint64_t want = expect_seek(e, T);
        if (topic_cursor_offset(c) != want)
            check_fail("%s: seek_time(%lld) -> %llu, expected %llu", ctx, (long long)T,
                       (unsigned long long)topic_cursor_offset(c), (unsigned long long)want);
    }
    live_c = NULL;
    topic_cursor_close(c);
}

enum { IX_DELETE, IX_EMPTY, IX_SHORT, IX_RANDOM, IX_ONES, IX_ZEROS, IX_MODES };
static const char *const ix_mode_name[IX_MODES] = {
    "deleted", "truncated to 0", "truncated to 7 bytes", "overwritten with random bytes",
    "overwritten with 0xff", "overwritten with zeros",
};
static const char *const ix_which_name[4] = {
    "all indexes", "the active segment's indexes", "the sealed segments' indexes",
    "all .timeindex files",
};

static void damage_index(const char *path, const snapfile *orig, int mode, uint64_t salt)
{
    size_t len = orig ? orig->len : 0;
    if (len < 64)
        len = 64;
    unsigned char *junk = malloc(len);
    assert_non_null(junk);
    switch (mode) {
    case IX_DELETE:
        unlink(path);
        break;
    case IX_EMPTY:
        assert_ok(tu_write_file(path, "", 0));
        break;
    case IX_SHORT:
        tu_fill(salt, 1, junk, 7);
        assert_ok(tu_write_file(path, junk, 7));
        break;
    case IX_RANDOM:
        tu_fill(salt, 2, junk, len);
        assert_ok(tu_write_file(path, junk, len));
        break;
    case IX_ONES:
        memset(junk, 0xff, len);
        assert_ok(tu_write_file(path, junk, len));
        break;
    default:
        memset(junk, 0, len);
        assert_ok(tu_write_file(path, junk, len));
        break;
    }
    free(junk);
}

typedef struct ix_ctx {
    const char *dir;
    const expect *e;
    const snap *pristine;
    const uint64_t *bases;
    int nseg;
    int which;   /* 0 all, 1 active only, 2 sealed only, 3 .timeindex only */
    int mode;
    outcome *o;
} ix_ctx;

static void ix_body(void *arg)
{
    ix_ctx *x = arg;
    const expect *e = x->e;
    snap_restore(x->dir, x->pristine);
    for (int s = 0; s < x->nseg; s++) {
        if ((x->which == 1 && s != x->nseg - 1) || (x->which == 2 && s == x->nseg - 1))
            continue;
        for (int k = 0; k < 2; k++) {
            if (x->which == 3 && k == 0)
                continue;
            char *name = seg_name(x->bases[s], k ? "timeindex" : "index");
            char *p = tu_path(x->dir, name);
            damage_index(p, snap_find(x->pristine, name), x->mode,
                         x->bases[s] * 2 + (uint64_t)k);
            free(name);
            free(p);
        }
    }
    for (int pass = 0; pass < 3; pass++) {
        /* 0: read-only before any writer; 1: writer (rebuilds);
         * 2: read-only after the writer's clean close */
        int flags = pass == 1 ? 0 : TOPIC_RDONLY;
        char ctx[160];
        snprintf(ctx, sizeof ctx, "%s %s, %s", ix_which_name[x->which], ix_mode_name[x->mode],
                 pass == 0 ? "read-only open" : pass == 1 ? "writer open"
                                                          : "read-only open after the writer");
        PHASE("%s", ctx);
        topic *t = NULL;
        int rc = topic_open(x->dir, flags, NULL, &t);
        if (rc != 0)
            check_fail("%s = %d (%s)", ctx, rc, topic_strerror(rc));
        live_t = t;
        uint64_t want_end = e->n + (pass == 2 ? 1 : 0);
        if (topic_end_offset(t) != want_end)
            check_fail("%s: end offset %llu, expected %llu", ctx,
                       (unsigned long long)topic_end_offset(t), (unsigned long long)want_end);
        check_reads_to(t, e, e->n, e->n + 1, x->o, ctx);
        if (pass == 2)
            check_appended(t, e->n, ctx);
        for (size_t i = 0; i < e->n; i++)
            if (x->o->rd[i] != RES_OK || x->o->cur[i] != RES_OK)
                check_fail("%s: record %zu does not read back (%s)", ctx, i,
                           x->o->rd[i] == RES_CORRUPT || x->o->cur[i] == RES_CORRUPT
                               ? "TOPIC_ECORRUPT" : "TOPIC_END");
        check_seek_times(t, e, ctx);
        if (pass == 1)
            check_append(t, ctx);
        live_t = NULL;
        assert_ok(topic_close(t));
        if (pass == 1) {
            /* The indexes are back beside every segment. */
            for (int s = 0; s < x->nseg; s++) {
                char *pi = tu_segment_path(x->dir, x->bases[s], "index");
                char *pt = tu_segment_path(x->dir, x->bases[s], "timeindex");
                int ok = tu_exists(pi) && tu_exists(pt);
                free(pi);
                free(pt);
                if (!ok)
                    check_fail("%s: after the writer closed, segment %llu has no .index or "
                               ".timeindex", ctx, (unsigned long long)x->bases[s]);
            }
        }
    }
}

static void test_damaged_indexes(void **state)
{
    fx *f = *state;
    soft_reset();
    topic_config *c = topic_config_new();
    assert_ok(topic_config_set(c, "segment.bytes", "4096"));
    assert_ok(topic_config_set(c, "index.interval.bytes", "100"));
    assert_ok(topic_config_set(c, "segment.ms", "0"));
    topic *t = NULL;
    assert_ok(topic_open(f->dir, TOPIC_CREATE, c, &t));
    topic_config_free(c);
    expect e;
    memset(&e, 0, sizeof e);
    tu_rng rng;
    tu_rng_seed(&rng, 31);
    for (int b = 0; b < 250; b++) {
        /* Timestamps mostly increasing, some out of order. */
        int64_t ts = 1700000000000ll + b * 100 - (int64_t)tu_rng_below(&rng, 350);
        add_batch(t, &e, &rng, 1 + (size_t)tu_rng_below(&rng, 4), 1, b & 1, ts, 0, 90);
    }
    capture_ts(t, &e);
    assert_ok(topic_close(t));
    uint64_t *bases;
    int nseg = tu_list_segments(f->dir, &bases);
    assert_true(nseg >= 5);

    snap pristine;
    snap_take(f->dir, &pristine);
    outcome o;
    o.rd = calloc(e.n + 1, 1);
    o.cur = calloc(e.n + 1, 1);
    ix_ctx x = { f->dir, &e, &pristine, bases, nseg, 0, 0, &o };
    unsigned long n = 0;
    for (int which = 0; which < 4; which++) {
        for (int mode = 0; mode < IX_MODES; mode++) {
            x.which = which;
            x.mode = mode;
            n++;
            guarded(ix_body, &x);
        }
    }
    phase[0] = 0;
    free(bases);
    free(o.rd);
    free(o.cur);
    snap_free(&pristine);
    expect_free(&e);
    soft_check("damaged indexes", n);
}

/* ------------------------------------------------------------------------ */
/* (d) the topic's own files                                                 */

typedef struct own_ctx {
    const char *dir;
    const expect *e;
    const snap *pristine;
    int file;   /* 0: topic.conf, 1: topic.state */
    int mode;
    int writer;
    outcome *o;
} own_ctx;

static const char *const conf_modes[] = { "random bytes", "an unparsable value" };
static const char *const state_modes[] = { "random bytes", "truncated to 0", "deleted",
                                           "one bit flipped", "zeros" };

static void own_body(void *arg)
{
    own_ctx *x = arg;
    unsigned char junk[512];
    tu_fill(7, 7, junk, sizeof junk);
    snap_restore(x->dir, x->pristine);
    char ctx[128];
    if (x->file == 0) {
        char *conf = tu_path(x->dir, "topic.conf");
        if (x->mode == 0)
            assert_ok(tu_write_file(conf, junk, sizeof junk));
        else
            assert_ok(tu_write_file(conf, "segment.bytes=banana\n", 21));
        free(conf);
        snprintf(ctx, sizeof ctx, "topic.conf holding %s, %s open", conf_modes[x->mode],
                 x->writer ? "writer" : "read-only");
        PHASE("%s", ctx);
        /* A topic.conf that cannot be understood: TOPIC_ECORRUPT, not
         * silently the defaults. */
        topic *t = NULL;
        int rc = topic_open(x->dir, x->writer ? 0 : TOPIC_RDONLY, NULL, &t);
        if (rc == 0)
            topic_close(t);
        if (rc != TOPIC_ECORRUPT)
            check_fail("%s = %d (%s), expected TOPIC_ECORRUPT", ctx, rc, topic_strerror(rc));
        return;
    }
    char *st = tu_path(x->dir, "topic.state");
    const snapfile *sf = snap_find(x->pristine, "topic.state");
    assert_non_null(sf);
    if (x->mode == 0) {
        assert_ok(tu_write_file(st, junk, sf->len < sizeof junk ? sf->len : sizeof junk));
    } else if (x->mode == 1) {
        assert_ok(tu_write_file(st, "", 0));
    } else if (x->mode == 2) {
        unlink(st);
    } else if (x->mode == 3) {
        assert_ok(tu_flip_bit(st, (off_t)(sf->len > 9 ? 9 : 0), 3));
    } else {
        unsigned char *z = calloc(1, sf->len + 1);
        assert_ok(tu_write_file(st, z, sf->len));
        free(z);
    }
    free(st);
    snprintf(ctx, sizeof ctx, "topic.state %s, %s open", state_modes[x->mode],
             x->writer ? "writer" : "read-only");
    PHASE("%s", ctx);
    /* The open either refuses with TOPIC_ECORRUPT or treats the shutdown as
     * unclean; never wrong data. */
    topic *t = NULL;
    int rc = topic_open(x->dir, x->writer ? 0 : TOPIC_RDONLY, NULL, &t);
    if (rc == TOPIC_ECORRUPT)
        return;
    if (rc != 0)
        check_fail("%s = %d (%s), expected 0 or TOPIC_ECORRUPT", ctx, rc, topic_strerror(rc));
    live_t = t;
    check_reads(t, x->e, x->o, ctx);
    if (x->o->end != x->e->n)
        check_fail("%s: end offset %llu, expected %zu", ctx, (unsigned long long)x->o->end,
                   x->e->n);
    for (size_t i = 0; i < x->e->n; i++)
        if (x->o->rd[i] != RES_OK)
            check_fail("%s: record %zu does not read back", ctx, i);
    if (x->writer)
        check_append(t, ctx);
    live_t = NULL;
    assert_ok(topic_close(t));
}

static void test_damaged_conf_and_state(void **state)
{
    fx *f = *state;
    soft_reset();
    expect e;
    build_small(f->dir, &e);
    snap pristine;
    snap_take(f->dir, &pristine);
    assert_non_null(snap_find(&pristine, "topic.conf"));
    assert_non_null(snap_find(&pristine, "topic.state"));
    outcome o;
    o.rd = calloc(e.n + 1, 1);
    o.cur = calloc(e.n + 1, 1);
    own_ctx x = { f->dir, &e, &pristine, 0, 0, 0, &o };
    unsigned long n = 0;
    for (int file = 0; file < 2; file++) {
        int modes = file == 0 ? 2 : 5;
        for (int mode = 0; mode < modes; mode++) {
            for (int w = 0; w < 2; w++) {
                x.file = file;
                x.mode = mode;
                x.writer = w;
                n++;
                guarded(own_body, &x);
            }
        }
    }
    phase[0] = 0;
    free(o.rd);
    free(o.cur);
    snap_free(&pristine);
    expect_free(&e);
    soft_check("damaged topic.conf / topic.state", n);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_flip_every_bit_active_segment, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_flip_bits_sealed_segment, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_truncate_active_segment, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_trailing_bytes_after_data, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_damaged_indexes, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_damaged_conf_and_state, fx_setup, fx_teardown),
    };
    return cmocka_run_group_tests_name("libtopic corruption", tests, NULL, NULL);
}
