/*
 * One topic handle shared by four appending threads and four reading
 * threads (two with cursors, two with topic_read), with segments small
 * enough to roll constantly: meant to run under ThreadSanitizer and
 * AddressSanitizer (make check-tsan, make check-asan) as well as plainly.
 *
 * Every value names its thread and sequence number and carries a checksum
 * of itself, so a reader can tell a torn or misplaced value from a good one
 * without knowing which thread got which offset.  Readers check that they
 * see a prefix of the log in offset order with no gaps, and that each
 * thread's records appear in the order the thread appended them.
 *
 * The workload runs under the default policy, again with every segment
 * given a spare made ahead by the flusher (segment.c), and under
 * flush.messages=1.  Another test checks group commit's promise under
 * flush.messages=1: no thread's append returns before an fdatasync that
 * covers its record.  The last one holds the append lock itself (lock.c)
 * to its promise: one holder at a time, and no taker left asleep.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>
#include <cmocka.h>

#include "topic.h"
#include "internal.h"   /* struct topic_lock */
#include "os.h"
#include "faults.h"   /* tf_spares */
#include "testutil.h"

enum { WRITERS = 4, READERS = 4, PER_WRITER = 3000 };

struct value {
    uint32_t thread, seq;
    uint64_t fill[3];
    uint64_t sum;
};

struct shared {
    topic *t;
    atomic_int writers_done;
    atomic_int failures;
};

static uint64_t mix(uint64_t x)
{
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    return x;
}

static void make_value(struct value *v, uint32_t thread, uint32_t seq)
{
    v->thread = thread;
    v->seq = seq;
    for (int i = 0; i < 3; i++)
        v->fill[i] = mix(((uint64_t)thread << 32 | seq) + (uint64_t)i);
    v->sum = mix(v->fill[0] ^ v->fill[1] ^ v->fill[2] ^ v->thread ^ ((uint64_t)v->seq << 7));
}

static int value_ok(const void *p, size_t len)
{
    struct value v, want;
    if (len != sizeof v)
        return 0;
    memcpy(&v, p, sizeof v);
    if (v.thread >= WRITERS)
        return 0;
    make_value(&want, v.thread, v.seq);
    return memcmp(&v, &want, sizeof v) == 0;
}

static void note_failure(struct shared *sh)
{
    atomic_fetch_add(&sh->failures, 1);
}

static void *writer_main(void *arg)
{
    struct shared *sh = ((void **)arg)[0];
    uint32_t id = (uint32_t)(uintptr_t)((void **)arg)[1];
    for (uint32_t seq = 0; seq < PER_WRITER;) {
        if (seq % 7 == 3 && seq + 4 <= PER_WRITER) {
            /* Every so often a batch of four. */
            struct value v[4];
            topic_record r[4];
            for (int i = 0; i < 4; i++) {
                make_value(&v[i], id, seq + (uint32_t)i);
                r[i] = (topic_record){ 0, 0, NULL, 0, &v[i], sizeof v[i] };
            }
            if (topic_append_batch(sh->t, r, 4, NULL) != 0)
                note_failure(sh);
            seq += 4;
        } else {
            struct value v;
            make_value(&v, id, seq);
            if (topic_append(sh->t, &v, sizeof v, NULL) != 0)
                note_failure(sh);
            seq++;
        }
    }
    atomic_fetch_add(&sh->writers_done, 1);
    return NULL;
}

/* Reads with a cursor to the end, again and again, until the writers are
 * done and it has seen everything. */
static void *cursor_main(void *arg)
{
    struct shared *sh = arg;
    topic_cursor *c;
    if (topic_cursor_open(sh->t, 0, &c) != 0) {
        note_failure(sh);
        return NULL;
    }
    uint64_t expect = 0;
    int64_t last_seq[WRITERS];
    for (int i = 0; i < WRITERS; i++)
        last_seq[i] = -1;
    for (;;) {
        topic_record rec;
        int rc = topic_cursor_next(c, &rec);
        if (rc == TOPIC_END) {
            if (atomic_load(&sh->writers_done) == WRITERS &&
                expect == topic_end_offset(sh->t))
                break;
            continue;
        }
        if (rc != 0 || rec.offset != expect || !value_ok(rec.value, rec.value_len)) {
            note_failure(sh);
            break;
        }
        struct value v;
        memcpy(&v, rec.value, sizeof v);
        if ((int64_t)v.seq <= last_seq[v.thread]) {   /* a thread's order kept */
            note_failure(sh);
            break;
        }
        last_seq[v.thread] = v.seq;
        expect++;
    }
    if (expect != (uint64_t)WRITERS * PER_WRITER)
        note_failure(sh);
    topic_cursor_close(c);
    return NULL;
}

/* Random reads below the end offset it has seen: every one must succeed. */
static void *reader_main(void *arg)
{
    struct shared *sh = arg;
    uint64_t x = 0x9e3779b97f4a7c15ULL ^ (uintptr_t)&x;
    char buf[sizeof(struct value)];
    while (atomic_load(&sh->writers_done) < WRITERS) {
        uint64_t end = topic_end_offset(sh->t);
        if (end == 0)
            continue;
        x = mix(x + 1);
        size_t len;
        int rc = topic_read(sh->t, x % end, buf, sizeof buf, &len);
        if (rc != 0 || !value_ok(buf, len)) {
            note_failure(sh);
            break;
        }
    }
    return NULL;
}

static void run(const char *flush_messages)
{
    char *dir = tu_mkdtemp("threads");
    topic_config *cfg = topic_config_new();
    assert_int_equal(topic_config_set(cfg, "segment.bytes", "8K"), 0);
    assert_int_equal(topic_config_set(cfg, "index.interval.bytes", "256"), 0);
    assert_int_equal(topic_config_set(cfg, "flush.messages", flush_messages), 0);
    struct shared sh = { 0 };
    assert_int_equal(topic_open(dir, TOPIC_CREATE, cfg, &sh.t), 0);
    pthread_t w[WRITERS], r[READERS];
    void *args[WRITERS][2];
    for (int i = 0; i < READERS; i++)
        assert_int_equal(pthread_create(&r[i], NULL, i < 2 ? cursor_main : reader_main, &sh), 0);
    for (int i = 0; i < WRITERS; i++) {
        args[i][0] = &sh;
        args[i][1] = (void *)(uintptr_t)i;
        assert_int_equal(pthread_create(&w[i], NULL, writer_main, args[i]), 0);
    }
    for (int i = 0; i < WRITERS; i++)
        pthread_join(w[i], NULL);
    for (int i = 0; i < READERS; i++)
        pthread_join(r[i], NULL);
    assert_int_equal(atomic_load(&sh.failures), 0);
    assert_int_equal(topic_end_offset(sh.t), (uint64_t)WRITERS * PER_WRITER);
    assert_int_equal(topic_close(sh.t), 0);

    /* And all of it is there after reopening. */
    topic *t;
    assert_int_equal(topic_open(dir, TOPIC_RDONLY, NULL, &t), 0);
    assert_int_equal(topic_end_offset(t), (uint64_t)WRITERS * PER_WRITER);
    char buf[sizeof(struct value)];
    for (uint64_t o = 0; o < (uint64_t)WRITERS * PER_WRITER; o++) {
        size_t len;
        assert_int_equal(topic_read(t, o, buf, sizeof buf, &len), 0);
        assert_true(value_ok(buf, len));
    }
    assert_int_equal(topic_close(t), 0);
    topic_config_free(cfg);
    tu_rmrf(dir);
    free(dir);
}

static void test_shared_handle_default_policy(void **state)
{
    (void)state;
    run("0");
}

/* With every segment given a spare made ahead by the flusher (the library
 * does so only from 64 MiB): the flusher makes the next segment's files
 * while four threads append and four read, and the roll renames them. */
static void test_shared_handle_spares(void **state)
{
    (void)state;
    tf_spares(true);   /* spares_off undoes it */
    run("0");
}

static int spares_off(void **state)
{
    (void)state;
    tf_spares(false);
    return 0;
}

/* Durable appends from four threads: group commit under contention. */
static void test_shared_handle_durable(void **state)
{
    (void)state;
    run("1");
}

/*
 * Under flush.messages=1 a thread's append returns only once an fdatasync
 * that began after its record was written has completed, however the
 * threads are grouped.  The library's fdatasync goes through a wrapper that
 * notes the end offset when each sync begins (every record below it is in
 * the page cache by then) and, when the sync succeeds, raises the durable
 * mark to it.  Each thread checks, as its append returns, that its record
 * is below the mark.  One large segment, so that every sync is of the file
 * holding the records.
 */
enum { GC_THREADS = 4, GC_PER_THREAD = 1500 };

static topic *_Atomic gc_topic;   /* the wrapper is installed before the open */
static _Atomic uint64_t gc_durable;
static atomic_long gc_syncs;
static int (*gc_real_fdatasync)(int);

static int gc_fdatasync(int fd)
{
    uint64_t end = topic_end_offset(gc_topic);
    int rc = gc_real_fdatasync(fd);
    if (rc == 0) {
        uint64_t d = atomic_load(&gc_durable);
        while (end > d && !atomic_compare_exchange_weak(&gc_durable, &d, end))
            ;
        atomic_fetch_add(&gc_syncs, 1);
    }
    return rc;
}

static void *gc_writer(void *arg)
{
    struct shared *sh = arg;
    struct value v;
    for (uint32_t i = 0; i < GC_PER_THREAD; i++) {
        make_value(&v, 0, i);
        uint64_t off;
        if (topic_append(sh->t, &v, sizeof v, &off) != 0 ||
            off >= atomic_load(&gc_durable)) {
            note_failure(sh);
            break;
        }
    }
    return NULL;
}

static void test_group_commit_acks_only_synced(void **state)
{
    (void)state;
    char *dir = tu_mkdtemp("gcommit");
    topic_config *cfg = topic_config_new();
    assert_int_equal(topic_config_set(cfg, "flush.messages", "1"), 0);
    struct shared sh = { 0 };
    atomic_store(&gc_topic, NULL);
    atomic_store(&gc_durable, 0);
    atomic_store(&gc_syncs, 0);
    /* Swapped while no thread of the library runs. */
    gc_real_fdatasync = topic__os.fdatasync;
    topic__os.fdatasync = gc_fdatasync;
    assert_int_equal(topic_open(dir, TOPIC_CREATE, cfg, &sh.t), 0);
    atomic_store(&gc_topic, sh.t);
    pthread_t w[GC_THREADS];
    for (int i = 0; i < GC_THREADS; i++)
        assert_int_equal(pthread_create(&w[i], NULL, gc_writer, &sh), 0);
    for (int i = 0; i < GC_THREADS; i++)
        pthread_join(w[i], NULL);
    assert_int_equal(atomic_load(&sh.failures), 0);
    assert_int_equal(topic_end_offset(sh.t), (uint64_t)GC_THREADS * GC_PER_THREAD);
    print_message("group commit: %d appends, %ld fdatasyncs\n", GC_THREADS * GC_PER_THREAD,
                  atomic_load(&gc_syncs));
    assert_int_equal(topic_close(sh.t), 0);
    topic__os.fdatasync = gc_real_fdatasync;
    topic_config_free(cfg);
    tu_rmrf(dir);
    free(dir);
}

/*
 * Threads that open the same new topic with TOPIC_CREATE at the same moment,
 * as instances of a service do for a tenant's first record: exactly one
 * gets the writer, the others TOPIC_ELOCKED, and the winner's topic works.
 * An opener that had not taken the lock yet used to remove the winner's
 * topic.conf.tmp while checking whether the directory was a topic; the
 * winner's open then failed with -ENOENT and removed the directory, and
 * nobody had the topic (tester A, a few races in a thousand on tmpfs, where
 * syncs cost nothing and the window is widest).  On tmpfs when there is one.
 */
enum { RACERS = 4, RACES = 400 };

struct race {
    const char *dir;
    pthread_barrier_t *go;
    int rc;
    topic *t;
};

static void *racer_main(void *arg)
{
    struct race *r = arg;
    pthread_barrier_wait(r->go);
    r->t = NULL;
    r->rc = topic_open(r->dir, TOPIC_CREATE, NULL, &r->t);
    return NULL;
}

static void test_racing_creators(void **state)
{
    (void)state;
    char tmpl[] = "/dev/shm/libtopic-race-XXXXXX";
    char *base = mkdtemp(tmpl) ? strdup(tmpl) : tu_mkdtemp("race");
    assert_non_null(base);
    int lost = 0;
    for (int round = 0; round < RACES; round++) {
        char name[32];
        snprintf(name, sizeof name, "t%d", round);
        char *dir = tu_path(base, name);
        pthread_barrier_t go;
        pthread_barrier_init(&go, NULL, RACERS);
        struct race r[RACERS];
        pthread_t th[RACERS];
        for (int i = 0; i < RACERS; i++) {
            r[i] = (struct race){ .dir = dir, .go = &go };
            assert_int_equal(pthread_create(&th[i], NULL, racer_main, &r[i]), 0);
        }
        int winners = 0;
        topic *w = NULL;
        for (int i = 0; i < RACERS; i++) {
            pthread_join(th[i], NULL);
            if (r[i].rc == 0) {
                winners++;
                w = r[i].t;
            } else if (r[i].rc != TOPIC_ELOCKED) {
                fail_msg("race %d: topic_open = %d (%s)", round, r[i].rc,
                         topic_strerror(r[i].rc));
            }
        }
        pthread_barrier_destroy(&go);
        if (winners != 1) {
            lost++;
            fprintf(stderr, "race %d: %d writers\n", round, winners);
        }
        if (w != NULL) {
            uint64_t off = 1;
            assert_int_equal(topic_append(w, "x", 1, &off), 0);
            assert_int_equal(off, 0);
            for (int i = 0; i < RACERS; i++)
                if (r[i].rc == 0)
                    assert_int_equal(topic_close(r[i].t), 0);
            topic *t = NULL;
            assert_int_equal(topic_open(dir, 0, NULL, &t), 0);
            assert_int_equal(topic_end_offset(t), 1);
            assert_int_equal(topic_close(t), 0);
        }
        tu_rmrf(dir);
        free(dir);
    }
    tu_rmrf(base);
    free(base);
    assert_int_equal(lost, 0);
}

/*
 * The append lock, taken by LOCKERS threads LOCK_ROUNDS times each.  The
 * holder checks that nobody else is inside and bumps a counter that only
 * the lock guards; one round in LOCK_LONG_EVERY it stays 200 us, so that
 * the others spin out and sleep, and the releases must wake them: at most
 * one sleep in 20 may end by the lock's 1 ms clock instead.  A taker's wait
 * longer than LOCK_STUCK_MS would be a sleeper that not even the clock
 * woke.
 */
enum { LOCKERS = 4, LOCK_ROUNDS = 20000, LOCK_LONG_EVERY = 500, LOCK_STUCK_MS = 500 };

struct lock_test {
    struct topic_lock lock;
    int inside;                /* guarded by lock only */
    uint64_t count;            /* guarded by lock only */
    atomic_int overlaps;
    atomic_llong longest_wait_us;
};

static void *locker(void *arg)
{
    struct lock_test *lt = arg;
    for (int i = 0; i < LOCK_ROUNDS; i++) {
        uint64_t t0 = tu_mono_us();
        topic__lock(&lt->lock);
        long long waited = (long long)(tu_mono_us() - t0);
        long long seen = atomic_load(&lt->longest_wait_us);
        while (waited > seen && !atomic_compare_exchange_weak(&lt->longest_wait_us, &seen, waited))
            ;
        if (lt->inside++ != 0)
            atomic_fetch_add(&lt->overlaps, 1);
        lt->count++;
        if (i % LOCK_LONG_EVERY == 0)
            tu_sleep_us(200);
        lt->inside--;
        topic__unlock(&lt->lock);
    }
    return NULL;
}

static void test_append_lock_excludes(void **state)
{
    (void)state;
    struct lock_test lt = { .lock = { 0, 0, 0, 0 } };
    pthread_t th[LOCKERS];
    for (int i = 0; i < LOCKERS; i++)
        assert_int_equal(pthread_create(&th[i], NULL, locker, &lt), 0);
    for (int i = 0; i < LOCKERS; i++)
        assert_int_equal(pthread_join(th[i], NULL), 0);
    assert_int_equal(atomic_load(&lt.overlaps), 0);
    assert_int_equal(lt.count, (uint64_t)LOCKERS * LOCK_ROUNDS);
    assert_int_equal(atomic_load(&lt.lock.held), 0);
    assert_int_equal(atomic_load(&lt.lock.sleepers), 0);
    long long longest = atomic_load(&lt.longest_wait_us);
    unsigned naps = atomic_load(&lt.lock.naps), late = atomic_load(&lt.lock.naps_timed_out);
    print_message("append lock: %d takes by %d threads, %u sleeps, %u of them ended by the "
                  "clock, longest wait %lld us\n", LOCKERS * LOCK_ROUNDS, LOCKERS, naps, late,
                  longest);
    assert_true(longest < LOCK_STUCK_MS * 1000LL);
    /* The long holds make the others sleep; each release wakes one.  A
     * release that woke nobody would leave them all to the clock. */
    assert_true(naps > 0);
    assert_true(late * 20 <= naps);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_shared_handle_default_policy),
        cmocka_unit_test_teardown(test_shared_handle_spares, spares_off),
        cmocka_unit_test(test_shared_handle_durable),
        cmocka_unit_test(test_group_commit_acks_only_synced),
        cmocka_unit_test(test_racing_creators),
        cmocka_unit_test(test_append_lock_excludes),
    };
    return cmocka_run_group_tests_name("threads", tests, NULL, NULL);
}
