/*
 * Crash tests: a writer runs in a child process and is killed with SIGKILL at
 * a random moment; the parent reopens the topic and checks that every
 * acknowledged record is there byte for byte, offsets are dense, batches are
 * all-or-nothing and appends continue at the end offset.
 *
 * One topic directory is reused across all iterations, so the log keeps
 * growing across kills and segments roll often (segment.bytes = 16384).
 * A second run gives every segment a spare made ahead by the flusher, which
 * the library otherwise does only for segments of 64 MiB and more.
 *
 * TOPIC_CRASH_ITERATIONS=N raises the number of kills (default 200) for a
 * long torture run; TOPIC_CRASH_SEED=S changes the random schedule.
 *
 * Record schema (so that any record can be checked from its offset alone):
 *  - a record appended alone (topic_append) has no key; its value is
 *    tu_fill(offset, SEED) of length tu_value_len(offset, SEED, MAXLEN);
 *  - a record appended in a batch of k starting at offset F has the 16-byte
 *    key [u64 F][u32 k][u32 i] (little-endian, i = its index in the batch),
 *    the same kind of value, and the timestamp TS_BASE + offset.
 *
 * SPDX-License-Identifier: BSD-2-Clause
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdbool.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <xxhash.h>

#include "topic.h"
#include "faults.h"   /* tf_spares */
#include "testutil.h"
#include "topic_asserts.h"

#define SEED 0xc0ffeeull
#define MAXLEN 200
#define TS_BASE 1700000000000ll
#define KEYLEN 16

/* Shared between parent and child: the child publishes what was acked. */
typedef struct shared {
    _Atomic uint64_t acked;       /* end offset after the last append that returned */
    _Atomic int opened;           /* the child has opened the topic */
    _Atomic int child_rc;         /* error the child saw */
    _Atomic uint64_t child_off;   /* where */
} shared;

enum { CHILD_OPEN_FAILED = 20, CHILD_APPEND_FAILED = 21, CHILD_WRONG_OFFSET = 22,
       CHILD_RAN_OUT = 0 };

static void put_u64(unsigned char *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

static void put_u32(unsigned char *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

static uint64_t get_u64(const unsigned char *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}

static uint32_t get_u32(const unsigned char *p)
{
    uint32_t v = 0;
    for (int i = 3; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}

static unsigned long iterations(void)
{
    const char *s = getenv("TOPIC_CRASH_ITERATIONS");
    if (s && *s) {
        unsigned long n = strtoul(s, NULL, 10);
        if (n > 0)
            return n;
    }
    return 200;
}

static uint64_t base_seed(void)
{
    const char *s = getenv("TOPIC_CRASH_SEED");
    if (s && *s)
        return strtoull(s, NULL, 0);
    return 20240601;
}

static topic_config *crash_conf(void)
{
    topic_config *c = topic_config_new();
    if (!c)
        return NULL;
    if (topic_config_set(c, "segment.bytes", "16384") != 0 ||
        topic_config_set(c, "index.interval.bytes", "512") != 0) {
        topic_config_free(c);
        return NULL;
    }
    return c;
}

/*
 * The writer.  Appends forever (until killed, or a safety limit) following
 * the record schema, and publishes the end offset after every append.
 */
static int crash_child(const char *dir, shared *sh, uint64_t iter_seed, int pass_conf)
{
    topic_config *c = pass_conf ? crash_conf() : NULL;
    topic *t = NULL;
    int rc = topic_open(dir, 0, c, &t);
    topic_config_free(c);
    if (rc != 0) {
        atomic_store(&sh->child_rc, rc);
        return CHILD_OPEN_FAILED;
    }
    atomic_store(&sh->opened, 1);
    uint64_t next = topic_end_offset(t);
    tu_rng rng;
    tu_rng_seed(&rng, iter_seed ^ next);
    unsigned char vals[8][MAXLEN];
    unsigned char keys[8][KEYLEN];
    topic_record recs[8];
    uint64_t deadline = tu_mono_us() + 20u * 1000000u;
    for (unsigned long n = 0;; n++) {
        if ((n & 1023) == 0 && tu_mono_us() > deadline)
            break;
        size_t k = tu_rng_below(&rng, 3) == 0 ? 2 + (size_t)tu_rng_below(&rng, 7) : 1;
        uint64_t got = UINT64_MAX;
        if (k == 1 && tu_rng_below(&rng, 4) != 0) {
            size_t len = tu_value_len(next, SEED, MAXLEN);
            tu_fill(next, SEED, vals[0], len);
            rc = topic_append(t, vals[0], len, &got);
        } else {
            memset(recs, 0, sizeof recs);
            for (size_t i = 0; i < k; i++) {
                uint64_t off = next + i;
                size_t len = tu_value_len(off, SEED, MAXLEN);
                tu_fill(off, SEED, vals[i], len);
                put_u64(keys[i], next);
                put_u32(keys[i] + 8, (uint32_t)k);
                put_u32(keys[i] + 12, (uint32_t)i);
                recs[i].key = keys[i];
                recs[i].key_len = KEYLEN;
                recs[i].value = vals[i];
                recs[i].value_len = len;
                recs[i].timestamp = TS_BASE + (int64_t)off;
            }
            rc = topic_append_batch(t, recs, k, &got);
        }
        if (rc != 0) {
            atomic_store(&sh->child_rc, rc);
            atomic_store(&sh->child_off, next);
            return CHILD_APPEND_FAILED;
        }
        if (got != next) {
            atomic_store(&sh->child_rc, (int)got);
            atomic_store(&sh->child_off, next);
            return CHILD_WRONG_OFFSET;
        }
        next += k;
        atomic_store(&sh->acked, next);
    }
    topic_close(t);
    return CHILD_RAN_OUT;
}

/* ------------------------------------------------------------------------ */
/* Verification                                                              */

typedef struct vstate {
    /* the batch being walked: records [bfirst, bfirst + bk) */
    int in_batch;
    uint64_t bfirst;
    uint32_t bk;
} vstate;

/*
 * Checks records [from, end) of t against the schema with a cursor and with
 * topic_read, failing the test with a precise message.  With check_end, also
 * checks that `end` is the end (TOPIC_END from both).  `what` names the
 * situation for messages.
 */
static void verify_range(topic *t, uint64_t from, uint64_t end, int check_end, const char *what)
{
    topic_cursor *c = NULL;
    int rc = topic_cursor_open(t, from, &c);
    if (rc != 0)
        fail_msg("%s: topic_cursor_open(%llu) = %d (%s)", what, (unsigned long long)from, rc,
                 topic_strerror(rc));
    vstate vs = { 0, 0, 0 };
    unsigned char buf[MAXLEN + 1];
    for (uint64_t off = from; off < end; off++) {
        topic_record r;
        memset(&r, 0, sizeof r);
        rc = topic_cursor_next(c, &r);
        if (rc != 0)
            fail_msg("%s: cursor at offset %llu (end %llu) = %d (%s)", what,
                     (unsigned long long)off, (unsigned long long)end, rc, topic_strerror(rc));
        if (r.offset != off)
            fail_msg("%s: cursor gave offset %llu, expected %llu", what,
                     (unsigned long long)r.offset, (unsigned long long)off);
        size_t len = tu_value_len(off, SEED, MAXLEN);
        if (r.value_len != len || (len && !tu_check_fill(off, SEED, r.value, len)))
            fail_msg("%s: offset %llu: value differs (len %zu, expected %zu)", what,
                     (unsigned long long)off, r.value_len, len);
        if (r.key_len == 0) {
            if (vs.in_batch)
                fail_msg("%s: offset %llu has no key but batch %llu+%u is not complete: "
                         "a batch was cut", what, (unsigned long long)off,
                         (unsigned long long)vs.bfirst, vs.bk);
        } else {
            if (r.key_len != KEYLEN || !r.key)
                fail_msg("%s: offset %llu: key length %zu", what, (unsigned long long)off,
                         r.key_len);
            uint64_t first = get_u64(r.key);
            uint32_t k = get_u32((const unsigned char *)r.key + 8);
            uint32_t i = get_u32((const unsigned char *)r.key + 12);
            if (k < 2 && !(k == 1 && i == 0))
                fail_msg("%s: offset %llu: bad batch size %u", what, (unsigned long long)off, k);
            if (i >= k || first + i != off)
                fail_msg("%s: offset %llu: key says batch %llu index %u of %u", what,
                         (unsigned long long)off, (unsigned long long)first, i, k);
            if (r.timestamp != TS_BASE + (int64_t)off)
                fail_msg("%s: offset %llu: timestamp %lld, expected %lld", what,
                         (unsigned long long)off, (long long)r.timestamp,
                         (long long)(TS_BASE + (int64_t)off));
            if (vs.in_batch) {
                if (first != vs.bfirst || i != off - vs.bfirst)
                    fail_msg("%s: offset %llu belongs to batch %llu but batch %llu+%u "
                             "is not complete: a batch was cut", what,
                             (unsigned long long)off, (unsigned long long)first,
                             (unsigned long long)vs.bfirst, vs.bk);
            } else if (i != 0 && off != from) {
                fail_msg("%s: offset %llu is record %u of batch %llu whose start is missing",
                         what, (unsigned long long)off, i, (unsigned long long)first);
            }
            vs.in_batch = 1;
            vs.bfirst = first;
            vs.bk = k;
            if (i + 1 == k)
                vs.in_batch = 0;
        }
        size_t got = 0;
        rc = topic_read(t, off, buf, sizeof buf, &got);
        if (rc != 0 || got != len || !tu_check_fill(off, SEED, buf, got))
            fail_msg("%s: topic_read(%llu) = %d (%s), len %zu (expected %zu)", what,
                     (unsigned long long)off, rc, topic_strerror(rc), got, len);
    }
    if (vs.in_batch)
        fail_msg("%s: the log ends at %llu inside batch %llu+%u: a batch was cut", what,
                 (unsigned long long)end, (unsigned long long)vs.bfirst, vs.bk);
    if (!check_end) {
        topic_cursor_close(c);
        return;
    }
    topic_record r;
    rc = topic_cursor_next(c, &r);
    if (rc != TOPIC_END)
        fail_msg("%s: cursor at end offset %llu = %d (%s), expected TOPIC_END", what,
                 (unsigned long long)end, rc, topic_strerror(rc));
    size_t got;
    rc = topic_read(t, end, buf, sizeof buf, &got);
    if (rc != TOPIC_END)
        fail_msg("%s: topic_read(end %llu) = %d (%s), expected TOPIC_END", what,
                 (unsigned long long)end, rc, topic_strerror(rc));
    topic_cursor_close(c);
}

/* A new append after recovery gets exactly the end offset. */
static void append_at_end(topic *t, uint64_t end, const char *what)
{
    size_t len = tu_value_len(end, SEED, MAXLEN);
    unsigned char v[MAXLEN];
    tu_fill(end, SEED, v, len);
    uint64_t off = UINT64_MAX;
    int rc = topic_append(t, v, len, &off);
    if (rc != 0 || off != end)
        fail_msg("%s: append after recovery = %d (%s), offset %llu, expected %llu", what, rc,
                 topic_strerror(rc), (unsigned long long)off, (unsigned long long)end);
}

/* Where to start checking: a little before `end`, on a batch start is not
 * needed (verify_range accepts a partial batch at `from`). */
static uint64_t back_off(uint64_t end, uint64_t by)
{
    return end > by ? end - by : 0;
}

/* ------------------------------------------------------------------------ */
/* The kill loop                                                             */

/* What the parent was doing, printed by the teardown if a test dies of a
 * signal (cmocka then reports only the signal). */
static char phase[256];

#define PHASE(...) snprintf(phase, sizeof phase, __VA_ARGS__)

typedef struct crash_stats {
    unsigned long iters;
    unsigned long early_kills;   /* killed before the child opened the topic */
    unsigned long no_ack;        /* opened but nothing acknowledged */
    unsigned long child_exited;  /* ran to its limit (should not happen) */
    uint64_t max_unacked;        /* most records found beyond the acknowledged end */
    uint64_t final_end;
    unsigned long spares_left;   /* kills that left a spare segment's files behind */
} crash_stats;

/* Whether child pid has not exited yet (without reaping it). */
static int alive(pid_t pid)
{
    siginfo_t info;
    memset(&info, 0, sizeof info);
    if (waitid(P_PID, (id_t)pid, &info, WEXITED | WNOHANG | WNOWAIT) != 0)
        return 0;
    return info.si_pid == 0;
}

static int parse_child_status(int status)
{
    if (WIFSIGNALED(status))
        return -1000 - WTERMSIG(status);
    if (WIFEXITED(status))
        return WEXITSTATUS(status);
    return -1;
}

/*
 * Runs `n` kill iterations on topic `dir`.  If rdonly_first, the parent opens
 * the killed topic read-only (no recovery) before the writer does, and checks
 * every acknowledged record through that handle too.
 */
static void crash_loop(const char *dir, unsigned long n, uint64_t seed, int rdonly_first,
                       crash_stats *st)
{
    shared *sh = mmap(NULL, sizeof *sh, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS,
                      -1, 0);
    assert_true(sh != MAP_FAILED);
    tu_rng rng;
    tu_rng_seed(&rng, seed);
    memset(st, 0, sizeof *st);

    /* Create the topic with its settings. */
    topic_config *c = crash_conf();
    assert_non_null(c);
    topic *t = NULL;
    assert_ok(topic_open(dir, TOPIC_CREATE, c, &t));
    topic_config_free(c);
    assert_ok(topic_close(t));

    uint64_t prev_end = 0;
    char what[160];
    for (unsigned long it = 0; it < n; it++) {
        atomic_store(&sh->acked, prev_end);
        atomic_store(&sh->opened, 0);
        atomic_store(&sh->child_rc, 0);
        atomic_store(&sh->child_off, 0);

        /*
         * When to kill.  A quarter of the kills count from the fork, so they
         * land before or during the open and its recovery (some at once);
         * the rest count from the moment the child has opened the topic, so
         * they land among the appends however long the open takes as the
         * log grows.
         */
        uint64_t r = tu_rng_below(&rng, 16);
        int from_open = r >= 4;
        uint64_t delay_us = r == 0    ? 0
                            : r < 4   ? tu_rng_below(&rng, 2000)
                            : r < 13  ? tu_rng_below(&rng, 2500)
                                      : 2500 + tu_rng_below(&rng, 6000);
        int pass_conf = (int)(tu_rng_below(&rng, 3) == 0);
        uint64_t child_seed = tu_rng_next(&rng);

        fflush(NULL);
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0)
            _exit(crash_child(dir, sh, child_seed, pass_conf) & 0xff);
        if (from_open) {
            uint64_t give_up = tu_mono_us() + 5000000u;
            while (!atomic_load(&sh->opened) && tu_mono_us() < give_up && alive(pid))
                tu_sleep_us(20);
        }
        if (delay_us)
            tu_sleep_us(delay_us);
        kill(pid, SIGKILL);
        int status = 0;
        while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
            ;
        int code = parse_child_status(status);
        if (code != -1000 - SIGKILL) {
            if (code == CHILD_RAN_OUT) {
                st->child_exited++;
            } else {
                int crc = atomic_load(&sh->child_rc);
                fail_msg("iteration %lu: writer child exited with %d (20 = open failed, "
                         "21 = append failed, 22 = wrong offset): rc %d (%s) at offset %llu",
                         it, code, crc, topic_strerror(crc),
                         (unsigned long long)atomic_load(&sh->child_off));
            }
        }
        uint64_t acked = atomic_load(&sh->acked);
        char *spare = tu_path(dir, "spare.log.tmp");
        if (tu_exists(spare))
            st->spares_left++;
        free(spare);
        if (!atomic_load(&sh->opened))
            st->early_kills++;
        else if (acked == prev_end)
            st->no_ack++;

        if (rdonly_first) {
            PHASE("iteration %lu: read-only open and reads after kill (acked %llu)", it,
                  (unsigned long long)acked);
            topic *ro = NULL;
            int rc = topic_open(dir, TOPIC_RDONLY, NULL, &ro);
            if (rc != 0)
                fail_msg("iteration %lu: read-only open after a kill = %d (%s)", it, rc,
                         topic_strerror(rc));
            uint64_t rend = topic_end_offset(ro);
            if (rend < acked)
                fail_msg("iteration %lu: read-only handle after a kill has end %llu, "
                         "but %llu were acknowledged", it, (unsigned long long)rend,
                         (unsigned long long)acked);
            snprintf(what, sizeof what, "iteration %lu (read-only, before recovery)", it);
            verify_range(ro, back_off(prev_end, 40), acked, rend == acked, what);
            assert_ok(topic_close(ro));
        }

        PHASE("iteration %lu: writer reopen (recovery) after kill (acked %llu)", it,
              (unsigned long long)acked);
        t = NULL;
        int rc = topic_open(dir, 0, NULL, &t);
        if (rc != 0)
            fail_msg("iteration %lu: reopen after kill = %d (%s); acknowledged end %llu", it,
                     rc, topic_strerror(rc), (unsigned long long)acked);
        uint64_t end = topic_end_offset(t);
        if (end < acked)
            fail_msg("iteration %lu: end offset %llu after reopen, but the child had %llu "
                     "records acknowledged: acknowledged records lost", it,
                     (unsigned long long)end, (unsigned long long)acked);
        if (end < prev_end)
            fail_msg("iteration %lu: end offset %llu < %llu before this iteration", it,
                     (unsigned long long)end, (unsigned long long)prev_end);
        assert_u64(topic_start_offset(t), 0);
        if (end - acked > st->max_unacked)
            st->max_unacked = end - acked;

        PHASE("iteration %lu: reads after recovery (acked %llu, end %llu)", it,
              (unsigned long long)acked, (unsigned long long)end);
        int full = (it % 50 == 49) || it + 1 == n;
        snprintf(what, sizeof what, "iteration %lu (acked %llu, end %llu)", it,
                 (unsigned long long)acked, (unsigned long long)end);
        verify_range(t, full ? 0 : back_off(prev_end, 40), end, 1, what);

        /* A new append gets exactly the end offset. */
        PHASE("iteration %lu: append and close after recovery (end %llu)", it,
              (unsigned long long)end);
        append_at_end(t, end, what);
        verify_range(t, end, end + 1, 1, what);
        rc = topic_close(t);
        if (rc != 0)
            fail_msg("iteration %lu: close = %d (%s)", it, rc, topic_strerror(rc));
        prev_end = end + 1;
        st->iters++;
    }

    /* Everything once more after a clean close, read-only. */
    PHASE("final read-only check");
    t = NULL;
    assert_ok(topic_open(dir, TOPIC_RDONLY, NULL, &t));
    assert_u64(topic_end_offset(t), prev_end);
    verify_range(t, 0, prev_end, 1, "final read-only check");
    assert_ok(topic_close(t));
    st->final_end = prev_end;
    munmap(sh, sizeof *sh);
    phase[0] = 0;
}

static void report(const char *name, const crash_stats *st, const char *dir)
{
    print_message("%s: %lu kills, %lu before open, %lu with nothing acked, %llu records, "
                  "%d segments, at most %llu unacknowledged records kept\n",
                  name, st->iters, st->early_kills, st->no_ack,
                  (unsigned long long)st->final_end, tu_count_suffix(dir, ".log"),
                  (unsigned long long)st->max_unacked);
    if (st->child_exited)
        print_message("%s: %lu children were never killed\n", name, st->child_exited);
    if (st->spares_left)
        print_message("%s: %lu kills left a spare segment behind\n", name, st->spares_left);
}

typedef struct fx {
    char *root;
    char *dir;
} fx;

static int fx_setup(void **state)
{
    fx *f = calloc(1, sizeof *f);
    if (!f)
        return -1;
    f->root = tu_mkdtemp("crash");
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
    tf_spares(false);
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

static void test_crash_kill9(void **state)
{
    fx *f = *state;
    crash_stats st;
    crash_loop(f->dir, iterations(), base_seed(), 0, &st);
    report("kill -9 writer", &st, f->dir);
}

/*
 * The same with every segment given a spare (segment.c), which the library
 * does only for segments of 64 MiB and more: the flusher makes the next
 * segment's files while the writer appends, and the roll renames them.
 * Kills land while the spare is made, while it waits, and (rarely) between
 * its renames; the next writer removes a dead writer's spare.  Half as many
 * kills as the test above.
 */
static void test_crash_kill9_spares(void **state)
{
    fx *f = *state;
    crash_stats st;
    tf_spares(true);   /* forked writers inherit it; fx_teardown undoes it */
    unsigned long n = iterations() / 2 ? iterations() / 2 : 1;
    crash_loop(f->dir, n, base_seed() ^ 0x5a5a, 0, &st);
    report("kill -9 writer, spare segments", &st, f->dir);
    /* A spare exists from soon after half of each segment to its roll:
     * about one kill in ten finds one (9 of 100 here), unless spares are
     * never made. */
    if (n >= 100 && st.spares_left == 0)
        fail_msg("no kill in %lu left a spare segment: are spares made?", n);
}

/*
 * Every record of [from, end) reads back byte for byte, or reads
 * TOPIC_ECORRUPT (counted in *bad): never other bytes, never another error.
 */
static void verify_or_corrupt(topic *t, uint64_t from, uint64_t end, const char *what,
                              uint64_t *bad)
{
    unsigned char buf[MAXLEN + 1];
    for (uint64_t off = from; off < end; off++) {
        size_t got = 0, len = tu_value_len(off, SEED, MAXLEN);
        int rc = topic_read(t, off, buf, sizeof buf, &got);
        if (rc == TOPIC_ECORRUPT) {
            (*bad)++;
            continue;
        }
        if (rc != 0 || got != len || !tu_check_fill(off, SEED, buf, got))
            fail_msg("%s: topic_read(%llu) = %d (%s), len %zu (expected %zu)", what,
                     (unsigned long long)off, rc, topic_strerror(rc), got, len);
    }
}

/* The base offset of the batch of `data` (a segment's bytes) that holds
 * byte `at`, by a walk of the batch headers from the start (FORMAT.md
 * section 2: the length at byte 4, the checksum at byte 8, the base offset
 * at byte 16); UINT64_MAX when the walk cannot get there.  The flips of
 * earlier rounds stay in the file, and one in a batch's length sends the
 * walk astray (or makes the batch seem to hold `at`), so the walk goes
 * only through batches whose checksum holds. */
static uint64_t batch_base_at(const unsigned char *data, size_t size, size_t at)
{
    size_t pos = 0;
    while (pos + 48 <= size) {
        uint32_t magic, len;
        uint64_t base, sum, seed;
        memcpy(&magic, data + pos, 4);
        memcpy(&len, data + pos + 4, 4);
        memcpy(&sum, data + pos + 8, 8);
        memcpy(&seed, data + pos, 8);
        memcpy(&base, data + pos + 16, 8);
        if (magic == 0 || len < 48 || len > size - pos ||
            XXH3_64bits_withSeed(data + pos + 16, len - 16, seed) != sum)
            return UINT64_MAX;
        if (at < pos + len)
            return base;
        pos += len;
    }
    return UINT64_MAX;
}

/*
 * Flips one random bit among the data (not the reserved zeros after it) of
 * the last or the second last segment.  Returns whether it did.  In some
 * rounds (`cut` not NULL) it also cuts the last segment short in place,
 * well past the flip, and stores in *cut the base offset of the batch the
 * cut falls in (UINT64_MAX when not known), or leaves it untouched.
 */
static bool damage_one(const char *dir, tu_rng *rng, uint64_t *cut)
{
    uint64_t *bases = NULL;
    int n = tu_list_segments(dir, &bases);
    if (n <= 0)
        return false;
    int which = n > 1 && tu_rng_below(rng, 3) == 0 ? n - 2 : n - 1;
    char *path = tu_segment_path(dir, bases[which], "log");
    free(bases);
    unsigned char *data = NULL;
    size_t size = 0;
    bool done = false;
    if (tu_read_file(path, &data, &size) == 0) {
        while (size > 0 && data[size - 1] == 0)
            size--;
        /* A cut comes far enough past the flip that the writer's index
         * has an entry between the two (every 512 bytes, batches of up
         * to about 2 KiB). */
        const size_t gap = 5000;
        if (cut != NULL && (which != n - 1 || size <= gap))
            cut = NULL;
        if (size > 0) {
            size_t at = (size_t)tu_rng_below(rng, cut != NULL ? size - gap : size);
            unsigned char b = (unsigned char)(data[at] ^ (1u << tu_rng_below(rng, 8)));
            int fd = open(path, O_WRONLY);   /* in place: the same file */
            done = fd >= 0 && pwrite(fd, &b, 1, (off_t)at) == 1;
            if (done && cut != NULL) {
                size_t to = at + gap + (size_t)tu_rng_below(rng, size - at - gap);
                *cut = batch_base_at(data, size, to);
                if (ftruncate(fd, (off_t)to) != 0)
                    fail_msg("cutting %s at %zu: %s", path, to, strerror(errno));
            }
            if (fd >= 0)
                close(fd);
        }
    }
    free(data);
    free(path);
    return done;
}

/*
 * A writer is killed at a random moment, then one bit of its active segment
 * (or of the one before it) is flipped, and the next writer opens the
 * topic: as if the disk or another program damaged the file between the
 * crash and the restart.  The crash tore nothing, so the damage must not
 * be cut off as a torn tail: the end offset never drops below what was
 * acknowledged (an offset handed out again would), every record reads back
 * or reads TOPIC_ECORRUPT, the records of each damage are a few (its batch
 * and those up to the next index entry), and appends go on at the end.
 * In a third of the rounds the active file is also cut short in place well
 * past the flip: the cut is a torn tail, and the topic must end exactly at
 * the batch it falls in, keeping the records between the flip and the cut.
 */
static void test_crash_then_damage(void **state)
{
    fx *f = *state;
    shared *sh = mmap(NULL, sizeof *sh, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS,
                      -1, 0);
    assert_true(sh != MAP_FAILED);
    tu_rng rng;
    tu_rng_seed(&rng, base_seed() + 2);
    topic_config *c = crash_conf();
    assert_non_null(c);
    topic *t = NULL;
    assert_ok(topic_open(f->dir, TOPIC_CREATE, c, &t));
    topic_config_free(c);
    assert_ok(topic_close(t));
    unsigned long n = iterations() / 4;
    if (n < 50)
        n = 50;
    uint64_t prev_end = 0, damaged = 0, cuts = 0;
    char what[160];
    for (unsigned long it = 0; it < n; it++) {
        atomic_store(&sh->acked, prev_end);
        atomic_store(&sh->opened, 0);
        uint64_t child_seed = tu_rng_next(&rng);
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0)
            _exit(crash_child(f->dir, sh, child_seed, 0) & 0xff);
        uint64_t give_up = tu_mono_us() + 5000000u;
        while (!atomic_load(&sh->opened) && tu_mono_us() < give_up && alive(pid))
            tu_sleep_us(20);
        tu_sleep_us(tu_rng_below(&rng, 3000));
        kill(pid, SIGKILL);
        int status = 0;
        while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
            ;
        uint64_t acked = atomic_load(&sh->acked);
        const uint64_t not_cut = UINT64_MAX - 1;
        uint64_t cut = not_cut;
        damaged += damage_one(f->dir, &rng, tu_rng_below(&rng, 3) == 0 ? &cut : NULL);
        cuts += cut != not_cut;

        PHASE("iteration %lu: writer reopen after a kill and a flipped bit (acked %llu)", it,
              (unsigned long long)acked);
        int rc = topic_open(f->dir, 0, NULL, &t);
        if (rc != 0)
            fail_msg("iteration %lu: reopen after kill and damage = %d (%s)", it, rc,
                     topic_strerror(rc));
        uint64_t end = topic_end_offset(t);
        if (end < acked && cut == not_cut)
            fail_msg("iteration %lu: end offset %llu after reopen, but %llu records were "
                     "acknowledged: the damage was cut off as a torn tail", it,
                     (unsigned long long)end, (unsigned long long)acked);
        /* A cut in place is a torn tail from the batch it falls in, and
         * only from there: the records between the flip and the cut stay
         * (recover tester F2).  Unless it cut into what the last clean
         * close synced (here: below prev_end), a loss of synced records
         * whose offsets stay taken, up to the close's end. */
        uint64_t want = cut != not_cut && cut != UINT64_MAX && cut < prev_end ? prev_end : cut;
        if (cut != not_cut && cut != UINT64_MAX && end != want)
            fail_msg("iteration %lu: end offset %llu after a flip and a cut in the batch of "
                     "offset %llu, want %llu", it, (unsigned long long)end,
                     (unsigned long long)cut, (unsigned long long)want);
        snprintf(what, sizeof what, "iteration %lu (acked %llu, end %llu)", it,
                 (unsigned long long)acked, (unsigned long long)end);
        uint64_t bad = 0;
        verify_or_corrupt(t, back_off(prev_end, 400), end, what, &bad);
        append_at_end(t, end, what);
        assert_ok(topic_close(t));
        prev_end = end + 1;
    }
    PHASE("final read-only check");
    assert_ok(topic_open(f->dir, TOPIC_RDONLY, NULL, &t));
    assert_u64(topic_end_offset(t), prev_end);
    uint64_t final_bad = 0;
    verify_or_corrupt(t, 0, prev_end, "final read-only check", &final_bad);
    assert_ok(topic_close(t));
    /* A flipped bit costs its batch and the records up to the next index
     * entry (512 bytes: a few records) at most; a flip in the zeros of a
     * torn tail or in a record the crash never acknowledged costs none. */
    if (final_bad > damaged * 30)
        fail_msg("%llu records of %llu read TOPIC_ECORRUPT after %llu flipped bits",
                 (unsigned long long)final_bad, (unsigned long long)prev_end,
                 (unsigned long long)damaged);
    print_message("kill -9 then a flipped bit: %lu kills, %llu bits flipped, %llu files cut "
                  "after the flip, %llu records, %llu of them unreadable\n", n,
                  (unsigned long long)damaged, (unsigned long long)cuts,
                  (unsigned long long)prev_end, (unsigned long long)final_bad);
    munmap(sh, sizeof *sh);
    phase[0] = 0;
}

/* A read-only handle opened on a topic whose writer was just killed (before
 * any writer recovers it) reads every acknowledged record correctly. */
static void test_crash_rdonly_before_recovery(void **state)
{
    fx *f = *state;
    crash_stats st;
    unsigned long n = iterations() / 2;
    crash_loop(f->dir, n < 20 ? 20 : n, base_seed() + 1, 1, &st);
    report("read-only after kill", &st, f->dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_crash_kill9, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_crash_kill9_spares, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_crash_rdonly_before_recovery, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_crash_then_damage, fx_setup, fx_teardown),
    };
    return cmocka_run_group_tests_name("libtopic crash", tests, NULL, NULL);
}

