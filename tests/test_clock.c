/*
 * Steps of the wall clock.  This program defines clock_gettime() itself, so
 * that the library, linked in statically, reads a CLOCK_REALTIME that the
 * tests can set back or forward while CLOCK_MONOTONIC runs on, as when NTP
 * or an administrator corrects the clock of a running machine.
 *
 * What a user relies on: records appended under flush.ms are synced within
 * flush.ms whatever the wall clock does; commits through a read-only handle
 * likewise; segment.ms rolls by the segment's real age; and a writer that
 * is restarted often still rolls by age.
 *
 * SPDX-License-Identifier: BSD-2-Clause
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <setjmp.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "topic.h"
#include "faults.h"
#include "testutil.h"
#include "topic_asserts.h"

#define HOUR_NS (3600LL * 1000000000LL)

/* Added to every reading of the wall clock. */
static _Atomic long long g_shift_ns;

int clock_gettime(clockid_t id, struct timespec *ts)
{
    if (syscall(SYS_clock_gettime, id, ts) != 0)
        return -1;
    if (id == CLOCK_REALTIME || id == CLOCK_REALTIME_COARSE) {
        long long ns = (long long)ts->tv_sec * 1000000000LL + ts->tv_nsec +
                       atomic_load(&g_shift_ns);
        ts->tv_sec = (time_t)(ns / 1000000000LL);
        ts->tv_nsec = (long)(ns % 1000000000LL);
    }
    return 0;
}

static void sleep_ms(long ms)
{
    struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

typedef struct {
    char *root, *dir;
} fx;

static int fx_setup(void **state)
{
    fx *f = calloc(1, sizeof *f);
    if (f == NULL)
        return -1;
    /* /tmp rather than /dev/shm: the test of segment.ms across reopens
     * needs a file system that keeps birth times. */
    f->root = tu_mkdtemp("clock");
    if (f->root == NULL) {
        free(f);
        return -1;
    }
    f->dir = tu_path(f->root, "t");
    atomic_store(&g_shift_ns, 0);
    *state = f;
    return 0;
}

static int fx_teardown(void **state)
{
    fx *f = *state;
    tf_uninstall();
    atomic_store(&g_shift_ns, 0);
    tu_rmrf(f->root);
    free(f->root);
    free(f->dir);
    free(f);
    return 0;
}

static topic *open_with(const char *dir, int flags, ...)
{
    va_list ap;
    va_start(ap, flags);
    topic_config *c = topic_config_new();
    assert_non_null(c);
    for (const char *n = va_arg(ap, const char *); n != NULL; n = va_arg(ap, const char *)) {
        const char *v = va_arg(ap, const char *);
        if (topic_config_set(c, n, v) != 0)
            fail_msg("topic_config_set(%s, %s): %s", n, v, topic_config_error(c));
    }
    va_end(ap);
    topic *t = NULL;
    int rc = topic_open(dir, flags, c, &t);
    topic_config_free(c);
    if (rc != 0)
        fail_msg("topic_open(%s): %s", dir, topic_strerror(rc));
    return t;
}

static void append_one(topic *t)
{
    assert_ok(topic_append(t, "v", 1, NULL));
}

/* Waits up to ms for calls of `kind` to pass `than`; returns the count. */
static long wait_count_above(int kind, long than, long ms)
{
    for (long waited = 0; waited < ms && tf_count(kind) <= than; waited += 10)
        sleep_ms(10);
    return tf_count(kind);
}

/* How many .log files the topic directory holds. */
static int segments(const char *dir)
{
    int n = tu_count_suffix(dir, ".log");
    assert_true(n >= 0);
    return n;
}

/*
 * flush.ms after the wall clock was set back an hour: the record appended
 * before the step is synced within flush.ms of its append, and so is one
 * appended after it.  Measured on the wall clock, neither was synced for an
 * hour.
 */
static void test_flush_ms_after_clock_set_back(void **state)
{
    fx *f = *state;
    tf_install(true);
    topic *t = open_with(f->dir, TOPIC_CREATE, "flush.ms", "1000", NULL);
    append_one(t);
    long before = tf_count(TF_FDATASYNC);
    atomic_store(&g_shift_ns, -HOUR_NS);
    assert_true(wait_count_above(TF_FDATASYNC, before, 5000) > before);
    before = tf_count(TF_FDATASYNC);
    append_one(t);
    assert_true(wait_count_above(TF_FDATASYNC, before, 5000) > before);
    /* Set forward an hour: no sync is due before flush.ms has passed. */
    before = tf_count(TF_FDATASYNC);
    append_one(t);
    atomic_store(&g_shift_ns, 0);
    sleep_ms(100);
    assert_int_equal(tf_count(TF_FDATASYNC), before);
    assert_true(wait_count_above(TF_FDATASYNC, before, 5000) > before);
    assert_ok(topic_close(t));
}

/*
 * A position committed through a read-only handle (a consumer process) is
 * synced by a later commit flush.ms after the last sync.  The clock set
 * back an hour used to stop those syncs for that hour.
 */
static void test_rdonly_commit_flush_after_clock_set_back(void **state)
{
    fx *f = *state;
    tf_install(true);   /* before any handle: their threads read the table */
    topic *w = open_with(f->dir, TOPIC_CREATE, "flush.ms", "200", NULL);
    append_one(w);
    topic *r = NULL;
    assert_ok(topic_open(f->dir, TOPIC_RDONLY, NULL, &r));
    assert_ok(topic_commit(r, "g", 1));
    sleep_ms(250);
    long before = tf_count(TF_FDATASYNC);
    assert_ok(topic_commit(r, "g", 1));   /* synced: 250 ms after the first */
    assert_true(tf_count(TF_FDATASYNC) > before);
    atomic_store(&g_shift_ns, -HOUR_NS);
    sleep_ms(250);
    before = tf_count(TF_FDATASYNC);
    assert_ok(topic_commit(r, "g", 1));
    assert_true(tf_count(TF_FDATASYNC) > before);
    topic_close(r);
    assert_ok(topic_close(w));
}

/*
 * segment.ms rolls by the segment's age on the monotonic clock: the wall
 * clock set back an hour does not stop the rolls for that hour, and set
 * forward an hour it does not roll at once.
 */
static void test_segment_ms_ignores_clock_steps(void **state)
{
    fx *f = *state;
    topic *t = open_with(f->dir, TOPIC_CREATE, "segment.ms", "400", NULL);
    append_one(t);
    atomic_store(&g_shift_ns, -HOUR_NS);
    for (int i = 0; i < 12; i++) {
        sleep_ms(50);
        append_one(t);
    }
    assert_true(segments(f->dir) >= 2);   /* 650 ms of appends: one roll */
    assert_ok(topic_close(t));
    assert_ok(tu_rmrf(f->dir));

    atomic_store(&g_shift_ns, -HOUR_NS);
    t = open_with(f->dir, TOPIC_CREATE, "segment.ms", "2000", NULL);
    append_one(t);
    atomic_store(&g_shift_ns, 0);
    append_one(t);
    append_one(t);
    assert_int_equal(segments(f->dir), 1);
    assert_u64(topic_end_offset(t), 3);
    assert_ok(topic_close(t));
}

/*
 * A writer that is closed and opened again more often than segment.ms
 * still rolls: the age of the active segment counts from the creation of
 * its file.  Skipped where the file system keeps no birth time.
 */
static void test_segment_ms_across_reopens(void **state)
{
    fx *f = *state;
    topic *t = open_with(f->dir, TOPIC_CREATE, "segment.ms", "300", NULL);
    append_one(t);
    assert_ok(topic_close(t));
    char *log = tu_segment_path(f->dir, 0, "log");
    struct statx sx;
    bool births = statx(AT_FDCWD, log, 0, STATX_BTIME, &sx) == 0 && (sx.stx_mask & STATX_BTIME);
    free(log);
    if (!births) {
        skip();
        return;
    }
    for (int i = 0; i < 10; i++) {
        sleep_ms(60);
        t = open_with(f->dir, 0, NULL);
        append_one(t);
        assert_ok(topic_close(t));
    }
    assert_true(segments(f->dir) >= 2);   /* 600 ms of reopens: at least one roll */
    t = open_with(f->dir, 0, NULL);
    assert_u64(topic_end_offset(t), 11);
    assert_ok(topic_close(t));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_flush_ms_after_clock_set_back, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_rdonly_commit_flush_after_clock_set_back, fx_setup,
                                        fx_teardown),
        cmocka_unit_test_setup_teardown(test_segment_ms_ignores_clock_steps, fx_setup,
                                        fx_teardown),
        cmocka_unit_test_setup_teardown(test_segment_ms_across_reopens, fx_setup, fx_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
