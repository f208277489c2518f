/*
 * Queue semantics through the public API (include/topic.h):
 *
 *  1. topic_wait(): immediate success, timeouts, wake-ups by other threads
 *     and other processes, bad arguments, and the documented consume loop;
 *  2. consumer positions: topic_commit / topic_committed / topic_groups,
 *     group names, read-only committers in other processes, durability
 *     across close, SIGKILL and damaged group files;
 *  3. keeping the log in bounds: topic_delete_before(), readers of deleted
 *     segments, retention.bytes and retention.ms;
 *  4. compression.type=lz4: exact round trips, time seeks, reopening, size,
 *     and damaged compressed batches;
 *  5. a producer process and two consumer processes (fork + exec of this
 *     binary) passing TOPIC_QUEUE_RECORDS records (default 1,000,000) while
 *     the consumers (and, in a second test, the producer) are killed with
 *     SIGKILL and restarted.
 *
 * The binary re-executes itself for test 5: "--child-producer DIR REPORT N
 * RATE" and "--child-consumer DIR GROUP REPORT N" are handled in main()
 * before cmocka runs.  The producer is paced so that a run takes about 2.5 s
 * whatever N is: the consumers then tail it, and the kills land at random
 * points spread over the run.  TOPIC_QUEUE_FILTER=pattern runs only the
 * matching tests.
 *
 * Record schema of the simple tests: the record at offset o has no key and
 * the value tu_fill(o, SEED) of length tu_value_len(o, SEED, MAXV), so any
 * record can be checked from its offset alone.
 *
 * SPDX-License-Identifier: BSD-2-Clause
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <malloc.h>
#include <pthread.h>
#include <sched.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <xxhash.h>

#include "topic.h"
#include "faults.h"   /* tf_spares */
#include "testutil.h"
#include "topic_asserts.h"

#define SEED 0x5eed0042ull
#define MAXV 100            /* largest value of the simple schema */
#define BAD_BYTES 1         /* check result: a record with the wrong bytes */

/* ------------------------------------------------------------------------ */
/* Watchdog: a hung test ends the binary with a message instead of hanging.  */

static const char *volatile g_test = "?";

static void on_alarm(int sig)
{
    (void)sig;
    static const char m[] = "\nwatchdog: test hung: ";
    ssize_t w = write(2, m, sizeof m - 1);
    w = write(2, (const char *)g_test, strlen((const char *)g_test));
    w = write(2, "\n", 1);
    (void)w;
    _exit(124);
}

#define WATCHDOG(secs)                                                         \
    do {                                                                       \
        g_test = __func__;                                                     \
        signal(SIGALRM, on_alarm);                                             \
        alarm(secs);                                                           \
    } while (0)

/* ------------------------------------------------------------------------ */
/* Fixture: a fresh temporary root per test; topics live in <root>/t...      */

typedef struct fx {
    char *root;
    char *dir;   /* <root>/t: made by topic_open(TOPIC_CREATE) */
    char *dir2;  /* <root>/u, for a second topic */
} fx;

/*
 * Handles the test has open.  A failing assertion leaves the test at once;
 * the teardown closes what it left open, so that no writer's background
 * thread outlives its test.
 */
#define MAX_TRACKED 16
static topic *g_open[MAX_TRACKED];

static void track(topic *t)
{
    for (int i = 0; i < MAX_TRACKED; i++)
        if (g_open[i] == NULL) {
            g_open[i] = t;
            return;
        }
}

/* topic_close() of a handle opened by open_ok(). */
static int close_t(topic *t)
{
    for (int i = 0; i < MAX_TRACKED; i++)
        if (g_open[i] == t)
            g_open[i] = NULL;
    return topic_close(t);
}

static int fx_setup(void **state)
{
    fx *f = calloc(1, sizeof *f);
    if (!f)
        return -1;
    f->root = tu_mkdtemp("queue");
    if (!f->root) {
        free(f);
        return -1;
    }
    f->dir = tu_path(f->root, "t");
    f->dir2 = tu_path(f->root, "u");
    *state = f;
    return 0;
}

static int fx_teardown(void **state)
{
    fx *f = *state;
    alarm(0);
    tf_spares(false);
    for (int i = 0; i < MAX_TRACKED; i++)
        if (g_open[i] != NULL) {
            topic_close(g_open[i]);
            g_open[i] = NULL;
        }
    if (f) {
        tu_rmrf(f->root);
        free(f->root);
        free(f->dir);
        free(f->dir2);
        free(f);
    }
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Opening                                                                   */

static topic *open_ok(const char *dir, int flags, const topic_config *conf)
{
    topic *t = NULL;
    int rc = topic_open(dir, flags, conf, &t);
    if (rc != 0)
        fail_msg("topic_open(%s, %#x) = %d (%s)", dir, flags, rc, topic_strerror(rc));
    assert_non_null(t);
    track(t);
    return t;
}

/* Builds a configuration from NULL-terminated name, value pairs. */
static topic_config *vconf(const char *name, va_list ap)
{
    topic_config *c = topic_config_new();
    assert_non_null(c);
    for (const char *n = name; n; n = va_arg(ap, const char *)) {
        const char *v = va_arg(ap, const char *);
        int rc = topic_config_set(c, n, v);
        if (rc != 0)
            fail_msg("topic_config_set(%s, %s) = %d (%s): %s", n, v, rc, topic_strerror(rc),
                     topic_config_error(c));
    }
    return c;
}

/* Opens (creating) a topic with the given settings (NULL-terminated pairs). */
static topic *create_with(const char *dir, const char *name, ...)
{
    va_list ap;
    va_start(ap, name);
    topic_config *c = vconf(name, ap);
    va_end(ap);
    topic *t = open_ok(dir, TOPIC_CREATE, c);
    topic_config_free(c);
    return t;
}

/* Opens an existing topic with the given settings (NULL-terminated pairs). */
static topic *reopen_with(const char *dir, int flags, const char *name, ...)
{
    va_list ap;
    va_start(ap, name);
    topic_config *c = vconf(name, ap);
    va_end(ap);
    topic *t = open_ok(dir, flags, c);
    topic_config_free(c);
    return t;
}

/* ------------------------------------------------------------------------ */
/* The simple record schema                                                  */

static size_t val_len(uint64_t off)
{
    return tu_value_len(off, SEED, MAXV);
}

/* Appends n single records in the simple schema. */
static void append_simple(topic *t, uint64_t n)
{
    unsigned char buf[MAXV];
    for (uint64_t i = 0; i < n; i++) {
        uint64_t off = topic_end_offset(t), got = UINT64_MAX;
        size_t len = val_len(off);
        tu_fill(off, SEED, buf, len);
        assert_ok(topic_append(t, buf, len, &got));
        assert_u64(got, off);
    }
}

/* Non-asserting (usable in children and threads): topic_read() of `off`
 * and a check of its bytes.  Returns topic_read's code, or BAD_BYTES. */
static int read_simple(topic *t, uint64_t off)
{
    unsigned char buf[MAXV + 1];
    size_t len = SIZE_MAX;
    int rc = topic_read(t, off, buf, sizeof buf, &len);
    if (rc != 0)
        return rc;
    return len == val_len(off) && tu_check_fill(off, SEED, buf, len) ? 0 : BAD_BYTES;
}

/* Non-asserting: whether a record from a cursor is exactly record `off`. */
static bool rec_simple_ok(const topic_record *r, uint64_t off)
{
    return r->offset == off && r->key == NULL && r->key_len == 0 &&
           r->value_len == val_len(off) &&
           (r->value_len == 0 || (r->value != NULL && tu_check_fill(off, SEED, r->value, r->value_len)));
}

/* Fails the test unless rc, what read_simple(t, off) returned, is success. */
static void assert_read_rc(int rc, uint64_t off)
{
    if (rc == BAD_BYTES)
        fail_msg("topic_read(%" PRIu64 ") returned the wrong bytes", off);
    if (rc != 0)
        fail_msg("topic_read(%" PRIu64 ") = %d (%s)", off, rc, topic_strerror(rc));
}

static void assert_read_simple(topic *t, uint64_t off)
{
    assert_read_rc(read_simple(t, off), off);
}

/* ------------------------------------------------------------------------ */
/* Files                                                                     */

/* Sum of the sizes of the segment files (.log). */
static uint64_t log_bytes(const char *dir)
{
    uint64_t *bases = NULL, sum = 0;
    int n = tu_list_segments(dir, &bases);
    assert_true(n >= 0);
    for (int i = 0; i < n; i++) {
        char *p = tu_segment_path(dir, bases[i], "log");
        long long s = tu_file_size(p);
        if (s > 0)
            sum += (uint64_t)s;
        free(p);
    }
    free(bases);
    return sum;
}

/* Sum of the sizes of the segment files but the newest (the active one,
 * whose file a writer may allocate ahead of its data). */
static uint64_t sealed_log_bytes(const char *dir)
{
    uint64_t *bases = NULL, sum = 0;
    int n = tu_list_segments(dir, &bases);
    assert_true(n >= 0);
    for (int i = 0; i + 1 < n; i++) {
        char *p = tu_segment_path(dir, bases[i], "log");
        long long s = tu_file_size(p);
        if (s > 0)
            sum += (uint64_t)s;
        free(p);
    }
    free(bases);
    return sum;
}

/* Reads or writes len bytes at `at` of the file `name` in dir, in place (the
 * same inode, as damage or a killed process would leave it). */
static void file_bytes(const char *dir, const char *name, off_t at, void *data, size_t len,
                       bool write)
{
    char *path = tu_path(dir, name);
    int fd = open(path, write ? O_WRONLY : O_RDONLY);
    assert_true(fd >= 0);
    ssize_t n = write ? pwrite(fd, data, len, at) : pread(fd, data, len, at);
    assert_int_equal(n, (ssize_t)len);
    close(fd);
    free(path);
}

static int list_segments(const char *dir, uint64_t **bases)
{
    int n = tu_list_segments(dir, bases);
    assert_true(n >= 0);
    return n;
}

/* ------------------------------------------------------------------------ */
/* Child processes                                                           */

static void *shm_new(size_t n)
{
    void *p = mmap(NULL, n, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    assert_true(p != MAP_FAILED);
    memset(p, 0, n);
    return p;
}

/* Forks a child running fn(arg); its exit status is fn's result.  cmocka's
 * handlers are undone so that a crash in the child is a crash. */
static pid_t spawn(int (*fn)(void *), void *arg)
{
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        alarm(0);
        signal(SIGSEGV, SIG_DFL);
        signal(SIGBUS, SIG_DFL);
        signal(SIGILL, SIG_DFL);
        signal(SIGFPE, SIG_DFL);
        signal(SIGABRT, SIG_DFL);
        signal(SIGALRM, SIG_DFL);
        _exit(fn(arg) & 0xff);
    }
    return pid;
}

static void kill_wait(pid_t pid)
{
    kill(pid, SIGKILL);
    int st;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
        ;
}

static void wait_flag(_Atomic int *flag, int want, int timeout_ms)
{
    uint64_t deadline = tu_mono_us() + (uint64_t)timeout_ms * 1000u;
    while (atomic_load(flag) != want) {
        if (tu_mono_us() > deadline)
            fail_msg("timed out waiting for a child");
        tu_sleep_us(100);
    }
}

/* ======================================================================== */
/* 1. topic_wait                                                             */
/* ======================================================================== */

static void test_wait_existing_zero_and_bad_args(void **state)
{
    fx *f = *state;
    WATCHDOG(20);
    topic *t = create_with(f->dir, NULL);

    uint64_t t0 = tu_mono_us();
    assert_rc(topic_wait(t, 0, 0), -ETIMEDOUT);   /* empty topic */
    assert_true(tu_mono_us() - t0 < 20000);

    append_simple(t, 3);
    t0 = tu_mono_us();
    assert_ok(topic_wait(t, 0, -1));
    assert_ok(topic_wait(t, 2, -1));
    assert_ok(topic_wait(t, 2, 0));
    assert_ok(topic_wait(t, 1, 100000));
    uint64_t el = tu_mono_us() - t0;
    if (el > 20000)
        fail_msg("waiting for existing records took %" PRIu64 " us", el);

    /* Timeout 0 does not sleep. */
    t0 = tu_mono_us();
    for (int i = 0; i < 100; i++)
        assert_rc(topic_wait(t, 3, 0), -ETIMEDOUT);
    assert_rc(topic_wait(t, UINT64_MAX, 0), -ETIMEDOUT);
    el = tu_mono_us() - t0;
    if (el > 50000)
        fail_msg("100 waits with timeout 0 took %" PRIu64 " us", el);

    /* Bad arguments. */
    assert_rc(topic_wait(NULL, 0, 0), -EINVAL);
    assert_rc(topic_wait(NULL, 0, -1), -EINVAL);
    assert_rc(topic_wait(NULL, 0, 10), -EINVAL);
    assert_rc(topic_wait(t, 0, -2), -EINVAL);
    assert_rc(topic_wait(t, 5, -2), -EINVAL);
    assert_rc(topic_wait(t, 0, INT_MIN), -EINVAL);

    /* A read-only handle of the same process. */
    topic *r = open_ok(f->dir, TOPIC_RDONLY, NULL);
    assert_ok(topic_wait(r, 2, -1));
    assert_rc(topic_wait(r, 3, 0), -ETIMEDOUT);
    assert_rc(topic_wait(r, 0, -2), -EINVAL);
    append_simple(t, 1);
    assert_ok(topic_wait(r, 3, 0));
    assert_rc(topic_wait(r, 4, 0), -ETIMEDOUT);
    assert_ok(close_t(r));
    assert_ok(close_t(t));
}

/* A thread that appends `n` records `gap_ms` apart. */
struct slow_appender {
    topic *t;
    int n, gap_ms;
    int rc;
};

static void *slow_append_main(void *arg)
{
    struct slow_appender *a = arg;
    unsigned char buf[MAXV];
    for (int i = 0; i < a->n && a->rc == 0; i++) {
        tu_sleep_us((uint64_t)a->gap_ms * 1000u);
        uint64_t off = topic_end_offset(a->t);
        size_t len = val_len(off);
        tu_fill(off, SEED, buf, len);
        a->rc = topic_append(a->t, buf, len, NULL);
    }
    return NULL;
}

/* Waits and checks that -ETIMEDOUT came after about `ms`: never early (the
 * library counts whole milliseconds, so up to 1 ms of rounding is allowed),
 * and not absurdly late. */
static void expect_timeout(topic *t, uint64_t off, int ms)
{
    uint64_t t0 = tu_mono_us();
    int rc = topic_wait(t, off, ms);
    uint64_t el = tu_mono_us() - t0;
    if (rc != -ETIMEDOUT)
        fail_msg("topic_wait(%" PRIu64 ", %d) = %d (%s), expected -ETIMEDOUT", off, ms, rc,
                 topic_strerror(rc));
    if (el + 1000 < (uint64_t)ms * 1000u)
        fail_msg("topic_wait(%d ms) timed out after only %" PRIu64 " us", ms, el);
    if (el > (uint64_t)ms * 1000u + 700000u)
        fail_msg("topic_wait(%d ms) timed out after %" PRIu64 " us", ms, el);
}

static void test_wait_timeout(void **state)
{
    fx *f = *state;
    WATCHDOG(20);
    topic *t = create_with(f->dir, NULL);
    expect_timeout(t, 0, 1);
    expect_timeout(t, 0, 50);
    expect_timeout(t, 0, 300);
    append_simple(t, 5);
    expect_timeout(t, 5, 120);
    expect_timeout(t, 1000, 60);

    topic *r = open_ok(f->dir, TOPIC_RDONLY, NULL);
    expect_timeout(r, 5, 200);

    /* Appends that wake the sleeper without reaching its offset must not
     * end the wait early nor make it return 0. */
    struct slow_appender a = { t, 5, 40, 0 };
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, slow_append_main, &a), 0);
    expect_timeout(t, 5 + 10, 400);
    pthread_join(th, NULL);
    assert_ok(a.rc);
    assert_u64(topic_end_offset(t), 10);

    a = (struct slow_appender){ t, 4, 40, 0 };
    assert_int_equal(pthread_create(&th, NULL, slow_append_main, &a), 0);
    expect_timeout(r, 10 + 10, 300);
    pthread_join(th, NULL);
    assert_ok(a.rc);

    assert_ok(close_t(r));
    assert_ok(close_t(t));
}

struct waiter {
    topic *t;
    uint64_t off;
    int timeout;
    _Atomic int done;
    int rc;
    uint64_t woke_us;
};

static void *waiter_main(void *arg)
{
    struct waiter *w = arg;
    w->rc = topic_wait(w->t, w->off, w->timeout);
    w->woke_us = tu_mono_us();
    atomic_store(&w->done, 1);
    return NULL;
}

/* Starts waiters, checks that none returns before the appends, appends
 * `count` records as one batch and checks that each waiter for an offset
 * below the new end woke within a short time. */
static void wake_case(topic *writer, struct waiter *w, int nw, size_t count, int sleep_ms)
{
    pthread_t th[8];
    for (int i = 0; i < nw; i++) {
        atomic_store(&w[i].done, 0);
        assert_int_equal(pthread_create(&th[i], NULL, waiter_main, &w[i]), 0);
    }
    tu_sleep_us((uint64_t)sleep_ms * 1000u);
    for (int i = 0; i < nw; i++)
        if (atomic_load(&w[i].done))
            fail_msg("waiter %d for offset %" PRIu64 " returned %d before any append", i,
                     w[i].off, w[i].rc);
    uint64_t first = topic_end_offset(writer);
    topic_record recs[8];
    unsigned char vals[8][MAXV];
    for (size_t k = 0; k < count; k++) {
        size_t len = val_len(first + k);
        tu_fill(first + k, SEED, vals[k], len);
        recs[k] = (topic_record){ 0, 0, NULL, 0, vals[k], len };
    }
    uint64_t t_app = tu_mono_us();
    assert_ok(topic_append_batch(writer, recs, count, NULL));
    for (int i = 0; i < nw; i++) {
        pthread_join(th[i], NULL);
        assert_ok(w[i].rc);
        uint64_t lat = w[i].woke_us > t_app ? w[i].woke_us - t_app : 0;
        if (lat > 200000)
            fail_msg("waiter %d woke %" PRIu64 " us after the append", i, lat);
    }
}

static void test_wait_wakes_threads(void **state)
{
    fx *f = *state;
    WATCHDOG(30);
    topic *t = create_with(f->dir, NULL);
    append_simple(t, 2);
    topic *r = open_ok(f->dir, TOPIC_RDONLY, NULL);

    /* One waiter with a timeout, on the writer's handle. */
    struct waiter w[4] = { { .t = t, .off = 2, .timeout = 10000 } };
    wake_case(t, w, 1, 1, 100);

    /* -1 waits until the append arrives, however long. */
    w[0] = (struct waiter){ .t = t, .off = 3, .timeout = -1 };
    wake_case(t, w, 1, 1, 400);

    /* Waiters on a read-only handle of the same process. */
    w[0] = (struct waiter){ .t = r, .off = 4, .timeout = -1 };
    w[1] = (struct waiter){ .t = r, .off = 4, .timeout = 10000 };
    wake_case(t, w, 2, 1, 100);

    /* Several waiters for several offsets, all made to exist by one batch. */
    for (int i = 0; i < 4; i++)
        w[i] = (struct waiter){ .t = i % 2 ? r : t, .off = 5 + (uint64_t)i, .timeout = -1 };
    wake_case(t, w, 4, 4, 100);

    /* A waiter for end + 1 is not woken for good by one record. */
    struct waiter w2 = { .t = r, .off = topic_end_offset(t) + 1, .timeout = -1 };
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, waiter_main, &w2), 0);
    tu_sleep_us(50000);
    append_simple(t, 1);
    tu_sleep_us(150000);
    if (atomic_load(&w2.done))
        fail_msg("topic_wait(end + 1) returned %d after only one append", w2.rc);
    uint64_t t_app = tu_mono_us();
    append_simple(t, 1);
    pthread_join(th, NULL);
    assert_ok(w2.rc);
    assert_true(w2.woke_us - t_app < 200000);

    assert_ok(close_t(r));
    assert_ok(close_t(t));
}

/* A read-only waiter in another process. */
struct xwait {
    const char *dir;
    uint64_t off;
    size_t len;          /* length of the awaited record's value */
    int timeout;
    _Atomic int ready;
    _Atomic int done;
    int rc;
    int read_rc;
    uint64_t woke_us;
};

static int child_wait(void *arg)
{
    struct xwait *x = arg;
    topic *r = NULL;
    int rc = topic_open(x->dir, TOPIC_RDONLY, NULL, &r);
    if (rc != 0)
        return 10;
    atomic_store(&x->ready, 1);
    x->rc = topic_wait(r, x->off, x->timeout);
    x->woke_us = tu_mono_us();
    unsigned char *buf = malloc(x->len + 1);
    size_t len = 0;
    x->read_rc = buf ? topic_read(r, x->off, buf, x->len + 1, &len) : -ENOMEM;
    if (x->read_rc == 0 && (len != x->len || !tu_check_fill(x->off, SEED, buf, len)))
        x->read_rc = BAD_BYTES;
    free(buf);
    atomic_store(&x->done, 1);
    return topic_close(r) == 0 ? 0 : 11;
}

static void test_wait_wakes_other_process(void **state)
{
    fx *f = *state;
    WATCHDOG(30);
    /* Small segments: the awaited record is appended to a new segment,
     * which the reader must find by itself. */
    topic *t = create_with(f->dir, "segment.bytes", "4096", NULL);
    unsigned char big[3000];
    tu_fill(0, SEED, big, sizeof big);
    assert_ok(topic_append(t, big, sizeof big, NULL));

    for (int round = 0; round < 2; round++) {
        uint64_t off = topic_end_offset(t);
        struct xwait *x = shm_new(2 * sizeof *x);
        x[0] = (struct xwait){ .dir = f->dir, .off = off, .len = 2000, .timeout = 20000 };
        x[1] = (struct xwait){ .dir = f->dir, .off = off, .len = 2000, .timeout = -1 };
        pid_t p0 = spawn(child_wait, &x[0]), p1 = spawn(child_wait, &x[1]);
        wait_flag(&x[0].ready, 1, 10000);
        wait_flag(&x[1].ready, 1, 10000);
        tu_sleep_us(200000);
        if (atomic_load(&x[0].done) || atomic_load(&x[1].done)) {
            kill_wait(p0);
            kill_wait(p1);
            fail_msg("a waiter in another process returned before the append");
        }
        unsigned char v[2000];
        tu_fill(off, SEED, v, sizeof v);
        uint64_t t_app = tu_mono_us();
        assert_ok(topic_append(t, v, sizeof v, NULL));
        int s0 = tu_wait_child(p0, 15000), s1 = tu_wait_child(p1, 15000);
        for (int i = 0; i < 2; i++) {
            int s = i ? s1 : s0;
            if (s != 0)
                fail_msg("round %d: waiter %d exited with %d (rc %d)", round, i, s, x[i].rc);
            assert_ok(x[i].rc);
            assert_ok(x[i].read_rc);
            uint64_t lat = x[i].woke_us > t_app ? x[i].woke_us - t_app : 0;
            if (lat > 300000)
                fail_msg("round %d: waiter %d in another process woke %" PRIu64
                         " us after the append", round, i, lat);
        }
        munmap(x, 2 * sizeof *x);
    }
    assert_ok(close_t(t));
}

/* The count of registered waiters in topic.wait: the low 20 bits of its
 * second word (doc/FORMAT.md). */
static uint32_t waiters_in(const char *dir)
{
    uint32_t words[2] = { 0, 0 };
    file_bytes(dir, "topic.wait", 0, words, sizeof words, false);
    return words[1] & ((1u << 20) - 1);
}

struct live_waiter {
    topic *r;
    uint64_t off;
    int rc;
};

static void *live_waiter_main(void *arg)
{
    struct live_waiter *l = arg;
    l->rc = topic_wait(l->r, l->off, 20000);
    return NULL;
}

/* A reader killed inside topic_wait() stays counted as a waiter.  That
 * used to last for good: every append, by every later writer, then made a
 * futex call, where topic_wait(3) promises a writer with nobody waiting
 * one memory load.  The writer now notices that its wakes wake nobody and
 * starts the count afresh, and waiters still alive are woken as before. */
static void test_wait_killed_waiter_is_forgotten(void **state)
{
    fx *f = *state;
    WATCHDOG(60);
    topic *t = create_with(f->dir, NULL);
    append_simple(t, 1);
    struct xwait *x = shm_new(sizeof *x);
    *x = (struct xwait){ .dir = f->dir, .off = 1000000, .len = 1, .timeout = -1 };
    pid_t p = spawn(child_wait, x);
    wait_flag(&x->ready, 1, 10000);
    for (int i = 0; i < 1000 && waiters_in(f->dir) == 0; i++)
        tu_sleep_us(10000);
    assert_int_equal(waiters_in(f->dir), 1);
    kill_wait(p);   /* SIGKILL, in topic_wait */
    munmap(x, sizeof *x);
    assert_int_equal(waiters_in(f->dir), 1);

    append_simple(t, 200);
    assert_int_equal(waiters_in(f->dir), 0);

    /* A waiter that is alive across such a fresh start is still woken. */
    topic *r = open_ok(f->dir, TOPIC_RDONLY, NULL);
    struct live_waiter l = { r, topic_end_offset(t) + 300, -1 };
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, live_waiter_main, &l), 0);
    for (int i = 0; i < 1000 && waiters_in(f->dir) == 0; i++)
        tu_sleep_us(1000);
    uint64_t t0 = tu_mono_us();
    append_simple(t, 301);
    assert_int_equal(pthread_join(th, NULL), 0);
    assert_ok(l.rc);
    if (tu_mono_us() - t0 > 900000)
        fail_msg("the live waiter took %" PRIu64 " us to wake", tu_mono_us() - t0);
    assert_int_equal(waiters_in(f->dir), 0);
    assert_ok(close_t(r));
    assert_ok(close_t(t));
}

/* The documented consume loop, in reader threads, against a writer thread. */
#define LOOP_RECORDS 20000

struct loop_reader {
    topic *t;
    uint64_t consumed;
    int errors;
    char msg[200];
};

static void *loop_writer_main(void *arg)
{
    topic *t = arg;
    tu_rng rng;
    tu_rng_seed(&rng, 77);
    unsigned char vals[40][MAXV];
    topic_record recs[40];
    uint64_t end = topic_end_offset(t);
    while (end < LOOP_RECORDS) {
        size_t k = 1 + (size_t)tu_rng_below(&rng, 40);
        if (k > LOOP_RECORDS - end)
            k = (size_t)(LOOP_RECORDS - end);
        for (size_t i = 0; i < k; i++) {
            size_t len = val_len(end + i);
            tu_fill(end + i, SEED, vals[i], len);
            recs[i] = (topic_record){ 0, 0, NULL, 0, vals[i], len };
        }
        uint64_t first = 0;
        bool single = k == 1 || tu_rng_below(&rng, 3) == 0;
        int rc = single ? topic_append(t, recs[0].value, recs[0].value_len, &first)
                        : topic_append_batch(t, recs, k, &first);
        if (rc != 0 || first != end)
            return (void *)1;
        end += single ? 1 : k;
        if (topic_end_offset(t) != end)
            return (void *)2;
        if (tu_rng_below(&rng, 50) == 0)
            tu_sleep_us(1000 + tu_rng_below(&rng, 2000));   /* let the readers catch up */
    }
    return NULL;
}

static void *loop_reader_main(void *arg)
{
    struct loop_reader *lr = arg;
    topic *t = lr->t;
    topic_cursor *c = NULL;
    int rc = topic_cursor_open(t, 0, &c);
    if (rc != 0) {
        lr->errors++;
        snprintf(lr->msg, sizeof lr->msg, "cursor_open: %s", topic_strerror(rc));
        return NULL;
    }
    topic_record rec;
    /* Exactly the loop of topic.h. */
    while ((rc = topic_cursor_next(c, &rec)) == 0 || rc == TOPIC_END)
        if (rc == TOPIC_END)
            topic_wait(t, topic_cursor_offset(c), -1);
        else {
            if (!rec_simple_ok(&rec, lr->consumed)) {
                if (lr->errors++ == 0)
                    snprintf(lr->msg, sizeof lr->msg, "record %" PRIu64 " wrong (got offset %" PRIu64
                             ", %zu bytes)", lr->consumed, rec.offset, rec.value_len);
                break;
            }
            if (++lr->consumed == LOOP_RECORDS)
                break;
        }
    if (rc != 0 && lr->errors++ == 0)
        snprintf(lr->msg, sizeof lr->msg, "cursor_next at %" PRIu64 ": %d (%s)", lr->consumed, rc,
                 topic_strerror(rc));
    topic_cursor_close(c);
    return NULL;
}

static void test_wait_consume_loop(void **state)
{
    fx *f = *state;
    WATCHDOG(40);
    topic *t = create_with(f->dir, "segment.bytes", "65536", NULL);
    topic *r = open_ok(f->dir, TOPIC_RDONLY, NULL);
    struct loop_reader lr[3] = { { .t = t }, { .t = r }, { .t = t } };
    pthread_t rt[3], wt;
    for (int i = 0; i < 3; i++)
        assert_int_equal(pthread_create(&rt[i], NULL, loop_reader_main, &lr[i]), 0);
    tu_sleep_us(20000);   /* the readers start at the end of an empty log */
    assert_int_equal(pthread_create(&wt, NULL, loop_writer_main, t), 0);
    void *wrc;
    pthread_join(wt, &wrc);
    assert_null(wrc);
    for (int i = 0; i < 3; i++) {
        pthread_join(rt[i], NULL);
        if (lr[i].errors)
            fail_msg("reader %d: %s", i, lr[i].msg);
        assert_u64(lr[i].consumed, LOOP_RECORDS);
    }
    assert_u64(topic_end_offset(t), LOOP_RECORDS);
    assert_u64(topic_end_offset(r), LOOP_RECORDS);
    assert_ok(close_t(r));
    assert_ok(close_t(t));
}

/* ======================================================================== */
/* 2. Consumer positions                                                     */
/* ======================================================================== */

static void expect_committed(topic *t, const char *group, uint64_t want)
{
    uint64_t got = 0xdeadbeefull;
    int rc = topic_committed(t, group, &got);
    if (rc != 0)
        fail_msg("topic_committed(%s) = %d (%s), expected %" PRIu64, group, rc,
                 topic_strerror(rc), want);
    if (got != want)
        fail_msg("topic_committed(%s) = %" PRIu64 ", expected %" PRIu64, group, got, want);
}

struct committer {
    topic *t;
    int id;
    int rc;
};

static void *committer_main(void *arg)
{
    struct committer *c = arg;
    for (uint64_t i = 1; i <= 2000 && c->rc == 0; i++)
        c->rc = topic_commit(c->t, "shared", (uint64_t)c->id * 1000000u + i);
    return NULL;
}

static void test_commit_round_trip(void **state)
{
    fx *f = *state;
    WATCHDOG(30);
    topic *t = create_with(f->dir, NULL);
    uint64_t o = 12345;
    assert_rc(topic_committed(t, "g", &o), -ENOENT);
    assert_u64(o, 12345);   /* untouched */

    assert_ok(topic_commit(t, "g", 0));
    expect_committed(t, "g", 0);
    assert_ok(topic_commit(t, "g", 42));
    expect_committed(t, "g", 42);
    assert_ok(topic_commit(t, "g", UINT64_MAX));
    expect_committed(t, "g", UINT64_MAX);
    assert_ok(topic_commit(t, "g", 5));      /* a position may go back */
    expect_committed(t, "g", 5);
    for (uint64_t i = 0; i < 1000; i++)
        assert_ok(topic_commit(t, "g", i * 7919));
    expect_committed(t, "g", 999 * 7919);
    assert_rc(topic_committed(t, "h", &o), -ENOENT);

    /* Many groups, each its own value. */
    char name[32];
    for (int i = 0; i < 40; i++) {
        snprintf(name, sizeof name, "group-%02d", i);
        assert_ok(topic_commit(t, name, (uint64_t)i * 1000003u));
    }
    for (int i = 0; i < 40; i++) {
        snprintf(name, sizeof name, "group-%02d", i);
        expect_committed(t, name, (uint64_t)i * 1000003u);
    }

    /* Bad arguments. */
    assert_rc(topic_commit(NULL, "g", 1), -EINVAL);
    assert_rc(topic_committed(NULL, "g", &o), -EINVAL);
    assert_rc(topic_committed(t, "g", NULL), -EINVAL);

    /* Threads committing to one group through one handle: the result is
     * the last value of one of them. */
    struct committer cm[4];
    pthread_t th[4];
    for (int i = 0; i < 4; i++) {
        cm[i] = (struct committer){ t, i + 1, 0 };
        assert_int_equal(pthread_create(&th[i], NULL, committer_main, &cm[i]), 0);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        assert_ok(cm[i].rc);
    }
    assert_ok(topic_committed(t, "shared", &o));
    if (!(o % 1000000u == 2000 && o / 1000000u >= 1 && o / 1000000u <= 4))
        fail_msg("after concurrent commits the position is %" PRIu64, o);

    /* A read-only handle of the same process sees them and commits too. */
    topic *r = open_ok(f->dir, TOPIC_RDONLY, NULL);
    expect_committed(r, "g", 999 * 7919);
    assert_ok(topic_commit(r, "g", 77));
    expect_committed(r, "g", 77);
    expect_committed(t, "g", 77);
    assert_ok(topic_commit(t, "g", 78));
    expect_committed(r, "g", 78);
    assert_ok(close_t(r));
    assert_ok(close_t(t));
}

static const char group_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-";

static int cmp_cstr(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static void test_group_names(void **state)
{
    fx *f = *state;
    WATCHDOG(30);
    topic *t = create_with(f->dir, NULL);
    topic *r = open_ok(f->dir, TOPIC_RDONLY, NULL);
    char n128[129], n129[130];
    for (int i = 0; i < 129; i++)
        n129[i] = group_alphabet[i % (int)(sizeof group_alphabet - 1)];
    n129[129] = '\0';
    memcpy(n128, n129, 128);
    n128[128] = '\0';

    const char *bad[] = { "", n129, "../x", ".hidden", "a/b", "a b", " a", "a ", ".", "..",
                          "/abs", "a\\b", "a\nb", "a\tb", "a:b", "a*b", "\xc3\xa9t\xc3\xa9",
                          "a\x7f", "x/../y", "..x", "~x", "a+b" };
    uint64_t o = 9;
    assert_rc(topic_commit(t, NULL, 1), -EINVAL);
    assert_rc(topic_committed(t, NULL, &o), -EINVAL);
    assert_rc(topic_commit(r, NULL, 1), -EINVAL);
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int rc = topic_commit(t, bad[i], 1);
        if (rc != -EINVAL)
            fail_msg("topic_commit(\"%s\") = %d (%s), expected -EINVAL", bad[i], rc,
                     topic_strerror(rc));
        rc = topic_commit(r, bad[i], 1);
        if (rc != -EINVAL)
            fail_msg("read-only topic_commit(\"%s\") = %d, expected -EINVAL", bad[i], rc);
        rc = topic_committed(t, bad[i], &o);
        if (rc != -EINVAL)
            fail_msg("topic_committed(\"%s\") = %d (%s), expected -EINVAL", bad[i], rc,
                     topic_strerror(rc));
    }
    size_t len = 99;
    assert_ok(topic_groups(t, NULL, 0, &len));
    assert_int_equal(len, 0);
    char *x1 = tu_path(f->dir, "x"), *x2 = tu_path(f->root, "x"), *x3 = tu_path(f->dir, "y");
    assert_false(tu_exists(x1));
    assert_false(tu_exists(x2));
    assert_false(tu_exists(x3));
    free(x1);
    free(x2);
    free(x3);

    const char *good[] = { n128, "a", "Z", "0", "-", "_", "a.b", "x..y", "-lead", "_lead",
                           "trail.", "trail-", "MiXeD_09.-", "consumer-group.v2_final" };
    size_t ng = sizeof good / sizeof good[0];
    for (size_t i = 0; i < ng; i++) {
        int rc = topic_commit(i % 2 ? r : t, good[i], 1000 + i);
        if (rc != 0)
            fail_msg("topic_commit(\"%s\") = %d (%s)", good[i], rc, topic_strerror(rc));
    }
    for (size_t i = 0; i < ng; i++) {
        expect_committed(t, good[i], 1000 + i);
        expect_committed(r, good[i], 1000 + i);
    }
    /* The 128-character name is a file of its own, with exactly that name. */
    char *groups = tu_path(f->dir, "groups");
    char *p = tu_path(groups, n128);
    assert_true(tu_exists(p));
    free(p);
    free(groups);

    /* The listing holds exactly the good names, sorted. */
    const char *sorted[sizeof good / sizeof good[0]];
    memcpy(sorted, good, sizeof sorted);
    qsort(sorted, ng, sizeof sorted[0], cmp_cstr);
    size_t want = 0;
    for (size_t i = 0; i < ng; i++)
        want += strlen(sorted[i]) + 1;
    char *buf = malloc(want);
    assert_non_null(buf);
    assert_ok(topic_groups(r, buf, want, &len));
    assert_int_equal(len, want);
    size_t at = 0;
    for (size_t i = 0; i < ng; i++) {
        assert_string_equal(buf + at, sorted[i]);
        at += strlen(sorted[i]) + 1;
    }
    free(buf);
    assert_ok(close_t(r));
    assert_ok(close_t(t));
}

static void test_groups_listing(void **state)
{
    fx *f = *state;
    WATCHDOG(30);
    topic *t = create_with(f->dir, NULL);
    char buf[256];
    size_t len = 77;
    assert_ok(topic_groups(t, NULL, 0, &len));
    assert_int_equal(len, 0);
    len = 77;
    assert_ok(topic_groups(t, buf, sizeof buf, &len));
    assert_int_equal(len, 0);
    assert_rc(topic_groups(NULL, buf, sizeof buf, &len), -EINVAL);
    assert_rc(topic_groups(t, buf, sizeof buf, NULL), -EINVAL);
    assert_rc(topic_groups(t, NULL, 10, &len), -EINVAL);

    const char *order[] = { "beta", "alpha", "gamma-1", "Zed", "alpha.2", "_u", "9lives" };
    for (size_t i = 0; i < sizeof order / sizeof order[0]; i++)
        assert_ok(topic_commit(t, order[i], i));
    assert_ok(topic_commit(t, "beta", 99));   /* again: listed once */
    static const char expect[] = "9lives\0Zed\0_u\0alpha\0alpha.2\0beta\0gamma-1";
    size_t want = sizeof expect;   /* includes the last NUL */

    len = 0;
    assert_rc(topic_groups(t, NULL, 0, &len), TOPIC_ETOOSMALL);
    assert_int_equal(len, want);
    len = 0;
    assert_rc(topic_groups(t, buf, want - 1, &len), TOPIC_ETOOSMALL);
    assert_int_equal(len, want);
    len = 0;
    assert_rc(topic_groups(t, buf, 1, &len), TOPIC_ETOOSMALL);
    assert_int_equal(len, want);

    memset(buf, 0xAA, sizeof buf);
    assert_ok(topic_groups(t, buf, want, &len));
    assert_int_equal(len, want);
    assert_memory_equal(buf, expect, want);
    memset(buf, 0xAA, sizeof buf);
    assert_ok(topic_groups(t, buf, sizeof buf, &len));
    assert_int_equal(len, want);
    assert_memory_equal(buf, expect, want);
    for (size_t i = want; i < sizeof buf; i++)
        if ((unsigned char)buf[i] != 0xAA)
            fail_msg("topic_groups wrote byte %zu, past the %zu it reported", i, want);

    /* A directory someone made in groups/ is not a group. */
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/groups/stray", f->dir);
    assert_int_equal(mkdir(path, 0755), 0);
    assert_ok(topic_groups(t, buf, sizeof buf, &len));
    assert_int_equal(len, want);
    assert_memory_equal(buf, expect, want);

    /* The same through a read-only handle, and after reopening. */
    topic *r = open_ok(f->dir, TOPIC_RDONLY, NULL);
    assert_ok(topic_groups(r, buf, sizeof buf, &len));
    assert_int_equal(len, want);
    assert_memory_equal(buf, expect, want);
    assert_ok(close_t(r));
    assert_ok(close_t(t));
    t = open_ok(f->dir, 0, NULL);
    assert_ok(topic_groups(t, buf, sizeof buf, &len));
    assert_int_equal(len, want);
    assert_memory_equal(buf, expect, want);
    expect_committed(t, "beta", 99);
    expect_committed(t, "9lives", 6);
    assert_ok(close_t(t));
}

/* Children of the cross-process commit test: check, then commit. */
struct xcommit {
    const char *dir;
    const char *check_group;
    uint64_t check_value;
    const char *commit_group;
    uint64_t commit_value;
};

static int child_commit(void *arg)
{
    struct xcommit *x = arg;
    topic *r = NULL;
    if (topic_open(x->dir, TOPIC_RDONLY, NULL, &r) != 0)
        return 10;
    int ret = 0;
    if (x->check_group) {
        uint64_t o = 0;
        int rc = topic_committed(r, x->check_group, &o);
        if (rc != 0)
            ret = 11;
        else if (o != x->check_value)
            ret = 12;
    }
    if (ret == 0 && x->commit_group && topic_commit(r, x->commit_group, x->commit_value) != 0)
        ret = 13;
    if (topic_close(r) != 0 && ret == 0)
        ret = 14;
    return ret;
}

static void run_xcommit(const char *dir, const char *cg, uint64_t cv, const char *mg, uint64_t mv)
{
    struct xcommit x = { dir, cg, cv, mg, mv };
    int rc = tu_run_child(child_commit, &x, 20000);
    if (rc != 0)
        fail_msg("read-only child (check %s == %" PRIu64 ", commit %s = %" PRIu64 ") exited %d"
                 " (11: committed failed, 12: wrong value, 13: commit failed)",
                 cg ? cg : "-", cv, mg ? mg : "-", mv, rc);
}

static void test_commit_other_process(void **state)
{
    fx *f = *state;
    WATCHDOG(40);
    topic *t = create_with(f->dir, NULL);
    append_simple(t, 10);
    assert_ok(topic_commit(t, "fromwriter", 7));
    /* A read-only consumer process reads the writer's commit and commits. */
    run_xcommit(f->dir, "fromwriter", 7, "fromreader", 1234);
    expect_committed(t, "fromreader", 1234);
    /* The writer has "both" open (mapped) when the reader commits it. */
    assert_ok(topic_commit(t, "both", 2));
    run_xcommit(f->dir, "both", 2, "both", 3);
    expect_committed(t, "both", 3);
    assert_ok(topic_commit(t, "both", 4));
    run_xcommit(f->dir, "both", 4, NULL, 0);
    /* Ping-pong: the reader process checks the writer's value and
     * commits the next; the writer checks that and commits the next. */
    for (uint64_t v = 4; v < 14; v += 2) {
        run_xcommit(f->dir, "both", v, "both", v + 1);
        expect_committed(t, "both", v + 1);
        assert_ok(topic_commit(t, "both", v + 2));
    }
    expect_committed(t, "both", 14);
    run_xcommit(f->dir, "both", 14, "both", 15);
    expect_committed(t, "both", 15);
    size_t len = 0;
    char buf[128];
    assert_ok(topic_groups(t, buf, sizeof buf, &len));
    static const char expect[] = "both\0fromreader\0fromwriter";
    assert_int_equal(len, sizeof expect);
    assert_memory_equal(buf, expect, sizeof expect);
    assert_ok(close_t(t));

    /* No writer at all: a read-only process commits, the next writer sees it. */
    run_xcommit(f->dir, "both", 15, "late", 99);
    t = open_ok(f->dir, 0, NULL);
    expect_committed(t, "late", 99);
    expect_committed(t, "both", 15);
    assert_ok(close_t(t));
}

static void test_commit_survives_reopen(void **state)
{
    fx *f = *state;
    WATCHDOG(30);
    topic *t = create_with(f->dir, NULL);
    append_simple(t, 5);
    assert_ok(topic_commit(t, "a", 1));
    assert_ok(topic_commit(t, "a", 3));
    assert_ok(topic_commit(t, "b", UINT64_MAX - 1));
    assert_ok(close_t(t));

    t = open_ok(f->dir, 0, NULL);
    expect_committed(t, "a", 3);
    expect_committed(t, "b", UINT64_MAX - 1);
    assert_ok(topic_commit(t, "a", 4));
    assert_ok(topic_sync(t));
    assert_ok(close_t(t));

    topic *r = open_ok(f->dir, TOPIC_RDONLY, NULL);
    expect_committed(r, "a", 4);
    assert_ok(topic_commit(r, "c", 5));
    assert_rc(topic_sync(r), TOPIC_ERDONLY);   /* after syncing its positions */
    assert_ok(close_t(r));

    for (int i = 0; i < 3; i++) {
        t = open_ok(f->dir, i == 1 ? TOPIC_RDONLY : 0, NULL);
        expect_committed(t, "a", 4);
        expect_committed(t, "b", UINT64_MAX - 1);
        expect_committed(t, "c", 5);
        assert_ok(close_t(t));
    }
}

/* A committing child killed with SIGKILL at random moments. */
struct kcommit {
    const char *dir;
    const char *group;
    int rdonly;
    int durable;               /* flush.messages=1 */
    _Atomic uint64_t acked;    /* the last value whose commit returned */
    _Atomic int started;
};

static int child_commit_loop(void *arg)
{
    struct kcommit *k = arg;
    topic_config *c = topic_config_new();
    if (c == NULL || (k->durable && topic_config_set(c, "flush.messages", "1") != 0))
        return 20;
    topic *t = NULL;
    int rc = topic_open(k->dir, k->rdonly ? TOPIC_RDONLY : 0, c, &t);
    topic_config_free(c);
    if (rc != 0)
        return 21;
    uint64_t v = 0;
    rc = topic_committed(t, k->group, &v);
    if (rc != 0 && rc != -ENOENT)
        return 22;
    if (rc == 0 && v < atomic_load(&k->acked))
        return 23;   /* the parent checks this too */
    atomic_store(&k->started, 1);
    for (;;) {
        v++;
        if (topic_commit(t, k->group, v) != 0)
            return 24;
        atomic_store(&k->acked, v);
    }
}

static void test_commit_kill9(void **state)
{
    fx *f = *state;
    WATCHDOG(60);
    topic *t = create_with(f->dir, NULL);
    append_simple(t, 3);
    assert_ok(close_t(t));
    struct kcommit *k = shm_new(sizeof *k);
    tu_rng rng;
    tu_rng_seed(&rng, 4242);
    int iterations = 40;
    uint64_t prev = 0;
    for (int it = 0; it < iterations; it++) {
        k->dir = f->dir;
        k->group = "crashy";
        k->rdonly = it % 2;
        k->durable = it % 4 == 3;
        atomic_store(&k->started, 0);
        pid_t pid = spawn(child_commit_loop, k);
        /* Early iterations sometimes kill before the first commit (while
         * the group file is being made). */
        if (it >= 2)
            wait_flag(&k->started, 1, 20000);
        tu_sleep_us(tu_rng_below(&rng, it < 2 ? 3000 : 20000));
        kill(pid, SIGKILL);
        int st = 0;
        while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
            ;
        if (!(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL))
            fail_msg("iteration %d: the committing child exited by itself (status %d)", it,
                     WIFEXITED(st) ? WEXITSTATUS(st) : -1);
        uint64_t acked = atomic_load(&k->acked);
        /* A fresh handle reads the file, not a mapping shared with the child. */
        topic *r = open_ok(f->dir, TOPIC_RDONLY, NULL);
        uint64_t got = 0;
        int rc = topic_committed(r, "crashy", &got);
        assert_ok(close_t(r));
        if (rc == -ENOENT && acked == 0)
            continue;
        if (rc != 0)
            fail_msg("iteration %d: topic_committed = %d (%s) after a kill; acked %" PRIu64, it,
                     rc, topic_strerror(rc), acked);
        /* The child commits acked + 1 before it says so: either may be there. */
        if (got != acked && got != acked + 1)
            fail_msg("iteration %d: committed %" PRIu64 " after SIGKILL, but the child had "
                     "acknowledged %" PRIu64, it, got, acked);
        if (got < prev)
            fail_msg("iteration %d: committed went back from %" PRIu64 " to %" PRIu64, it, prev, got);
        prev = got;
        atomic_store(&k->acked, got);   /* the next child continues from there */
    }
    if (prev < 100)
        fail_msg("only %" PRIu64 " commits in %d iterations", prev, iterations);
    /* The writer opens normally after all that. */
    t = open_ok(f->dir, 0, NULL);
    expect_committed(t, "crashy", prev);
    assert_u64(topic_end_offset(t), 3);
    assert_ok(close_t(t));
    munmap(k, sizeof *k);
}

/* The group file's slots, as offsets.c documents them. */
#define GF_SLOT_A 8
#define GF_SLOT_B 40
#define GF_SLOT 32

static void put_le64(unsigned char *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

static uint64_t get_le64(const unsigned char *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}

static uint32_t get_le32(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static void put_le32(unsigned char *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

/* Opens a fresh read-only handle and reads the position of "g": returns
 * the code, the value in *v. */
static int fresh_committed(const char *dir, uint64_t *v)
{
    topic *r = open_ok(dir, TOPIC_RDONLY, NULL);
    int rc = topic_committed(r, "g", v);
    assert_ok(close_t(r));
    return rc;
}

/* Damage must read as an error or as a value that was committed. */
static void expect_old_or_error(const char *dir, const char *what, const uint64_t *ok, int nok,
                                bool must_succeed)
{
    uint64_t v = 0x5555555555555555ull;
    int rc = fresh_committed(dir, &v);
    if (rc < 0) {
        if (must_succeed)
            fail_msg("%s: topic_committed = %d (%s), but an intact slot holds a committed value",
                     what, rc, topic_strerror(rc));
        return;
    }
    assert_int_equal(rc, 0);
    for (int i = 0; i < nok; i++)
        if (v == ok[i])
            return;
    fail_msg("%s: topic_committed returned %" PRIu64 " (%#" PRIx64 "), never committed", what, v, v);
}

struct racing_committer {
    topic *t;
    _Atomic bool stop;
    _Atomic uint64_t done;   /* the last position whose commit returned */
};

static void *commit_racing(void *arg)
{
    struct racing_committer *c = arg;
    for (uint64_t v = 2; !atomic_load(&c->stop); v++) {
        if (topic_commit(c->t, "g", v) != 0)
            break;
        atomic_store(&c->done, v);
    }
    return NULL;
}

/*
 * A position read while another handle commits to the same group: every
 * read gives a position that was committed, never -ENOENT, never an older
 * one than a read before it, and never one newer than the commits begun.
 * A commit rewrites a slot in place, and the reader used to catch both
 * slots half written in turn and report that the group had never committed
 * (hundreds of thousands of times in 3 s for an outside tester), which made
 * topic_delete_before(3)'s example delete a consumer's unread records.
 */
static void test_committed_while_committing(void **state)
{
    fx *f = *state;
    WATCHDOG(60);
    topic *w = create_with(f->dir, NULL);
    assert_ok(topic_commit(w, "g", 1));
    topic *r = open_ok(f->dir, TOPIC_RDONLY, NULL);
    struct racing_committer c = { .t = w, .done = 1 };
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, commit_racing, &c), 0);
    uint64_t last = 1, reads = 0;
    int64_t until = tu_now_ms() + 1500;
    while (tu_now_ms() < until) {
        for (int i = 0; i < 1000; i++, reads++) {
            uint64_t before = atomic_load(&c.done), v = 0;
            int rc = topic_committed(r, "g", &v);
            if (rc != 0)
                fail_msg("read %" PRIu64 ": topic_committed = %d (%s) while commits ran", reads, rc,
                         topic_strerror(rc));
            if (v < last || v < before || v > atomic_load(&c.done) + 1)
                fail_msg("read %" PRIu64 ": position %" PRIu64 " after %" PRIu64
                         ", with commits done up to %" PRIu64 " before the read", reads, v, last,
                         before);
            last = v;
        }
    }
    atomic_store(&c.stop, true);
    assert_int_equal(pthread_join(th, NULL), 0);
    assert_true(atomic_load(&c.done) > 100);   /* the commits did run meanwhile */
    uint64_t v = 0;
    assert_ok(topic_committed(r, "g", &v));
    assert_u64(v, atomic_load(&c.done));
    assert_ok(close_t(r));
    assert_ok(close_t(w));
}

/*
 * Two handles commit to one group at the same moment, round after round:
 * afterwards the position is one of the two values, as it is when one
 * commit follows the other.  Both used to pick the same slot and the same
 * sequence number; when their stores interleaved, the slot failed its
 * checksum and the group read back the round before's position, so both
 * commits, acknowledged, were lost and a consumer went back over records
 * it had done.  Handles in two processes race the same way as the two
 * handles here: each has its own mapping and its own lock.
 */
struct commit_rounds {
    topic *t;
    uint64_t parity;             /* commits 2 * round + parity */
    _Atomic uint64_t *go;        /* the round both may start */
    _Atomic uint64_t *finished;  /* commits done, both threads */
    uint64_t rounds;
    _Atomic int rc;          /* read by the main thread while it waits */
};

static void *commit_in_rounds(void *arg)
{
    struct commit_rounds *c = arg;
    for (uint64_t r = 1; r <= c->rounds; r++) {
        for (unsigned spin = 1; atomic_load(c->go) < r; spin++)
            if (spin % 256 == 0)
                sched_yield();   /* three threads spin on two cores */
        int rc = topic_commit(c->t, "g", 2 * r + c->parity);
        if (rc != 0) {
            atomic_store(&c->rc, rc);
            break;
        }
        atomic_fetch_add(c->finished, 1);
    }
    return NULL;
}

static void test_simultaneous_commits_by_two_handles(void **state)
{
    fx *f = *state;
    WATCHDOG(60);
    topic *w = create_with(f->dir, NULL);
    assert_ok(topic_commit(w, "g", 1));
    topic *other = open_ok(f->dir, TOPIC_RDONLY, NULL);
    topic *rd = open_ok(f->dir, TOPIC_RDONLY, NULL);
    _Atomic uint64_t go = 0, finished = 0;
    const uint64_t rounds = 1000000;
    struct commit_rounds c[2] = {
        { .t = w, .parity = 0, .go = &go, .finished = &finished, .rounds = rounds },
        { .t = other, .parity = 1, .go = &go, .finished = &finished, .rounds = rounds },
    };
    pthread_t th[2];
    for (int i = 0; i < 2; i++)
        assert_int_equal(pthread_create(&th[i], NULL, commit_in_rounds, &c[i]), 0);
    uint64_t r = 1, wrong = 0, first_wrong = 0, seen = 0;
    int64_t until = tu_now_ms() + 4000;   /* the race is a few nanoseconds wide */
    for (; r <= rounds; r++) {
        atomic_store(&go, r);
        while (atomic_load(&finished) < 2 * r && c[0].rc == 0 && c[1].rc == 0)
            sched_yield();
        if (c[0].rc != 0 || c[1].rc != 0)
            break;
        uint64_t v = 0;
        assert_ok(topic_committed(rd, "g", &v));
        if (v != 2 * r && v != 2 * r + 1 && wrong++ == 0)
            first_wrong = r, seen = v;
        /* Four seconds, but never fewer than 1000 rounds: on a machine
         * busy with other work, four seconds ran only a few hundred. */
        if (tu_now_ms() > until && r > 1000)
            break;
    }
    atomic_store(&go, rounds);   /* lets threads stopped early finish */
    for (int i = 0; i < 2; i++)
        assert_int_equal(pthread_join(th[i], NULL), 0);
    assert_ok(c[0].rc);
    assert_ok(c[1].rc);
    if (wrong)
        fail_msg("%" PRIu64 " of %" PRIu64 " rounds of two simultaneous commits left a position"
                 " neither committed; the first: round %" PRIu64 " read %" PRIu64, wrong, r - 1,
                 first_wrong, seen);
    assert_true(r > 1000);   /* enough rounds ran to race */
    assert_ok(close_t(rd));
    assert_ok(close_t(other));
    assert_ok(close_t(w));
}

/* A group file whose header is damaged while a handle has it mapped: that
 * handle must see the damage as a fresh handle does, and its next commit
 * must write the file afresh.  It used to go on reading the old position,
 * and its commits returned 0 into a file every other handle, and it too
 * after a reopen, read as TOPIC_ECORRUPT. */
static void test_group_file_damaged_while_mapped(void **state)
{
    fx *f = *state;
    WATCHDOG(40);
    topic *w = create_with(f->dir, NULL);
    assert_ok(close_t(w));
    for (int rdonly = 0; rdonly < 2; rdonly++) {
        topic *h = open_ok(f->dir, rdonly ? TOPIC_RDONLY : 0, NULL);
        uint64_t pos = 0;
        assert_ok(topic_commit(h, "g", 7));
        assert_ok(topic_committed(h, "g", &pos));
        assert_u64(pos, 7);
        /* Overwrite the magic in place, as damage to the disk would. */
        file_bytes(f->dir, "groups/g", 0, "XXXX", 4, true);
        topic *r = open_ok(f->dir, TOPIC_RDONLY, NULL);
        assert_rc(topic_committed(r, "g", &pos), TOPIC_ECORRUPT);
        assert_rc(topic_committed(h, "g", &pos), TOPIC_ECORRUPT);
        assert_ok(topic_commit(h, "g", 12));
        assert_ok(topic_committed(h, "g", &pos));
        assert_u64(pos, 12);
        assert_ok(topic_committed(r, "g", &pos));
        assert_u64(pos, 12);
        assert_ok(close_t(h));
        assert_ok(close_t(r));
        r = open_ok(f->dir, TOPIC_RDONLY, NULL);
        assert_ok(topic_committed(r, "g", &pos));
        assert_u64(pos, 12);
        assert_ok(close_t(r));
    }
}

/* A forged slot with the largest sequence number and a valid checksum:
 * nothing can follow it, so a commit says TOPIC_ECORRUPT and the position
 * stays readable.  The sequence number used to wrap to 0, which marks an
 * empty slot, and the commit reported success and changed nothing. */
static void test_group_slot_sequence_at_its_largest(void **state)
{
    fx *f = *state;
    topic *t = create_with(f->dir, NULL);
    assert_ok(topic_commit(t, "g", 5));
    assert_ok(close_t(t));
    uint64_t slot[4] = { UINT64_MAX, 9, 0, 0 };
    slot[3] = XXH3_64bits(slot, 24);
    file_bytes(f->dir, "groups/g", 8, slot, sizeof slot, true);
    t = open_ok(f->dir, 0, NULL);
    uint64_t pos = 0;
    assert_ok(topic_committed(t, "g", &pos));
    assert_u64(pos, 9);
    assert_rc(topic_commit(t, "g", 10), TOPIC_ECORRUPT);
    assert_ok(topic_committed(t, "g", &pos));
    assert_u64(pos, 9);
    assert_ok(close_t(t));
}

/* Descriptors this process has open. */
static int open_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    if (d == NULL)
        return -1;
    int n = 0;
    while (readdir(d) != NULL)
        n++;
    closedir(d);
    return n - 3;   /* ".", ".." and the listing's own */
}

/*
 * Many groups through one handle: it keeps a bounded number of them open,
 * and listing them opens none for good.  A handle used to keep a descriptor
 * and a mapping for every group it had looked up, committed to or listed,
 * until the process ran out of descriptors (outside tester R: one
 * topic_groups() over 2000 groups left one descriptor of 1024).  Positions
 * committed through groups it has let go of are all there, synced.
 */
static void test_many_groups_bounded_descriptors(void **state)
{
    fx *f = *state;
    WATCHDOG(60);
    topic *t = create_with(f->dir, NULL);
    int before = open_fds();
    assert_true(before > 0);
    char name[32];
    for (int i = 0; i < 300; i++) {
        snprintf(name, sizeof name, "g%03d", i);
        assert_ok(topic_commit(t, name, (uint64_t)i * 10));
    }
    int after = open_fds();
    if (after - before > 70)
        fail_msg("%d descriptors more after commits to 300 groups", after - before);
    /* Each again, by lookup, and by a new commit. */
    for (int i = 0; i < 300; i++) {
        uint64_t pos = 0;
        snprintf(name, sizeof name, "g%03d", i);
        assert_ok(topic_committed(t, name, &pos));
        assert_u64(pos, (uint64_t)i * 10);
        assert_ok(topic_commit(t, name, (uint64_t)i * 10 + 1));
    }
    assert_true(open_fds() - before <= 70);
    /* A listing from a fresh handle opens none of them for good. */
    topic *r = open_ok(f->dir, TOPIC_RDONLY, NULL);
    int opened = open_fds();
    size_t len = 0;
    char *buf = malloc(300 * 8);
    assert_non_null(buf);
    assert_ok(topic_groups(r, buf, 300 * 8, &len));
    assert_int_equal(len, 300 * 5);
    assert_int_equal(open_fds(), opened);
    assert_string_equal(buf, "g000");
    assert_string_equal(buf + 299 * 5, "g299");
    free(buf);
    assert_ok(close_t(r));
    assert_ok(close_t(t));
    r = open_ok(f->dir, TOPIC_RDONLY, NULL);
    for (int i = 0; i < 300; i++) {
        uint64_t pos = 0;
        snprintf(name, sizeof name, "g%03d", i);
        assert_ok(topic_committed(r, name, &pos));
        assert_u64(pos, (uint64_t)i * 10 + 1);
    }
    assert_ok(close_t(r));
}

/* A group file of a later format version (its header's version above 1):
 * its position is neither read as this version's nor overwritten by a
 * commit, which would lose it for the newer readers; the group is listed.
 * It used to be read, and written, as version 1. */
static void test_group_file_newer_version(void **state)
{
    fx *f = *state;
    topic *t = create_with(f->dir, NULL);
    assert_ok(topic_commit(t, "g", 5));
    assert_ok(close_t(t));
    uint32_t version = 2;
    file_bytes(f->dir, "groups/g", 4, &version, sizeof version, true);
    char *path = tu_path(f->dir, "groups/g");
    unsigned char *before, *after;
    size_t blen, alen;
    assert_ok(tu_read_file(path, &before, &blen));
    for (int rdonly = 0; rdonly < 2; rdonly++) {
        t = open_ok(f->dir, rdonly ? TOPIC_RDONLY : 0, NULL);
        uint64_t pos = 0;
        assert_rc(topic_committed(t, "g", &pos), TOPIC_EVERSION);
        assert_rc(topic_commit(t, "g", 9), TOPIC_EVERSION);
        char names[16];
        size_t len = 0;
        assert_ok(topic_groups(t, names, sizeof names, &len));
        assert_int_equal(len, 2);
        assert_string_equal(names, "g");
        assert_ok(close_t(t));
    }
    assert_ok(tu_read_file(path, &after, &alen));
    assert_int_equal(alen, blen);
    assert_memory_equal(after, before, blen);
    free(before);
    free(after);
    free(path);
}

/*
 * Something that is not a regular file where a group's file would be (a
 * FIFO, a socket, a symbolic link, a directory): not a group.  A lookup
 * finds no position, the listing leaves it out, and a commit puts the
 * group's file in its place (a directory only when it is empty).  Lookups
 * used to give TOPIC_ECORRUPT, -EISDIR, -ENXIO or -ELOOP by kind, and a
 * commit failed the same way every time (outside tester U).
 */
static void test_group_name_taken_by_another_kind_of_file(void **state)
{
    fx *f = *state;
    topic *t = create_with(f->dir, NULL);
    assert_ok(topic_commit(t, "other", 1));
    char *g = tu_path(f->dir, "groups/g");
    for (int kind = 0; kind < 5; kind++) {
        unlink(g);
        rmdir(g);
        if (kind == 0) {
            assert_int_equal(mkfifo(g, 0644), 0);
        } else if (kind == 1) {
            int s = socket(AF_UNIX, SOCK_STREAM, 0);
            struct sockaddr_un a = { .sun_family = AF_UNIX };
            assert_true(s >= 0 && strlen(g) < sizeof a.sun_path);
            strcpy(a.sun_path, g);
            assert_int_equal(bind(s, (struct sockaddr *)&a, sizeof a), 0);
            close(s);
        } else if (kind == 2) {
            assert_int_equal(symlink("other", g), 0);
        } else {
            assert_int_equal(mkdir(g, 0755), 0);
            if (kind == 4) {
                char *inner = tu_path(g, "x");
                assert_ok(tu_write_file(inner, "x", 1));
                free(inner);
            }
        }
        alarm(30);
        uint64_t pos = 0;
        assert_rc(topic_committed(t, "g", &pos), -ENOENT);
        char names[32];
        size_t len = 0;
        assert_ok(topic_groups(t, names, sizeof names, &len));
        assert_int_equal(len, 6);
        assert_string_equal(names, "other");
        if (kind == 4) {   /* a directory with something in it stays */
            assert_rc(topic_commit(t, "g", 7), TOPIC_ECORRUPT);
            char *inner = tu_path(g, "x");
            assert_ok(unlink(inner));
            free(inner);
            assert_ok(rmdir(g));
            alarm(0);
            continue;
        }
        assert_ok(topic_commit(t, "g", 7 + (uint64_t)kind));
        alarm(0);
        assert_ok(topic_committed(t, "g", &pos));
        assert_u64(pos, 7 + (uint64_t)kind);
        assert_ok(topic_committed(t, "other", &pos));
        assert_u64(pos, 1);
        struct stat st;
        assert_int_equal(lstat(g, &st), 0);
        assert_true(S_ISREG(st.st_mode));
        assert_ok(close_t(t));
        t = open_ok(f->dir, 0, NULL);
    }
    free(g);
    assert_ok(close_t(t));
}

static void test_group_file_damage(void **state)
{
    fx *f = *state;
    WATCHDOG(40);
    topic *t = create_with(f->dir, NULL);
    assert_ok(topic_commit(t, "g", 100));
    assert_ok(topic_commit(t, "g", 200));
    assert_ok(close_t(t));
    char *gdir = tu_path(f->dir, "groups");
    char *gpath = tu_path(gdir, "g");
    unsigned char *good = NULL;
    size_t glen = 0;
    assert_ok(tu_read_file(gpath, &good, &glen));
    assert_true(glen >= 72);
    const uint64_t both[2] = { 100, 200 };

    /* Truncations, from nothing to a torn page. */
    const off_t cuts[] = { 0, 1, 4, 8, 12, 30, 40, 48, 64, 71, 72, 100, 2048 };
    for (size_t i = 0; i < sizeof cuts / sizeof cuts[0]; i++) {
        assert_ok(tu_write_file(gpath, good, glen));
        assert_ok(tu_truncate(gpath, cuts[i]));
        char what[64];
        snprintf(what, sizeof what, "group file cut to %lld bytes", (long long)cuts[i]);
        expect_old_or_error(f->dir, what, both, 2, false);
    }

    /* Every byte of either slot flipped: the other slot answers. */
    for (int slot = 0; slot < 2; slot++)
        for (int b = 0; b < GF_SLOT; b++) {
            assert_ok(tu_write_file(gpath, good, glen));
            off_t pos = (slot ? GF_SLOT_B : GF_SLOT_A) + b;
            assert_ok(tu_flip_bit(gpath, pos, b % 8));
            char what[64];
            snprintf(what, sizeof what, "bit %d of byte %lld flipped", b % 8, (long long)pos);
            expect_old_or_error(f->dir, what, both, 2, true);
        }

    /* The newer slot gets a huge sequence number without its checksum. */
    {
        unsigned char *d = malloc(glen);
        assert_non_null(d);
        memcpy(d, good, glen);
        int newer = get_le64(d + GF_SLOT_A) > get_le64(d + GF_SLOT_B) ? GF_SLOT_A : GF_SLOT_B;
        int older = newer == GF_SLOT_A ? GF_SLOT_B : GF_SLOT_A;
        put_le64(d + older, 1000);   /* seq 1000, older slot, bad sum */
        put_le64(d + older + 8, 31337);
        assert_ok(tu_write_file(gpath, d, glen));
        expect_old_or_error(f->dir, "a slot with a bad checksum", &both[1], 1, true);
        free(d);
    }

    /* Random garbage over the slots, over everything, and zeros. */
    tu_rng rng;
    tu_rng_seed(&rng, 99);
    for (int i = 0; i < 50; i++) {
        unsigned char *d = malloc(glen);
        assert_non_null(d);
        memcpy(d, good, glen);
        size_t from = i % 2 ? 0 : GF_SLOT_A, to = i % 4 == 1 ? glen : 72;
        for (size_t j = from; j < to; j++)
            d[j] = (unsigned char)tu_rng_next(&rng);
        assert_ok(tu_write_file(gpath, d, glen));
        expect_old_or_error(f->dir, "garbage over the group file", both, 2, false);
        free(d);
    }
    {
        unsigned char *z = calloc(1, glen);
        assert_non_null(z);
        assert_ok(tu_write_file(gpath, z, glen));
        expect_old_or_error(f->dir, "zeroed group file", both, 2, false);
        free(z);
    }

    /* A crash in the middle of a commit: the next slot (the older one, per
     * the format) written only partly, byte by byte. */
    {
        int newer = get_le64(good + GF_SLOT_A) > get_le64(good + GF_SLOT_B) ? GF_SLOT_A : GF_SLOT_B;
        int older = newer == GF_SLOT_A ? GF_SLOT_B : GF_SLOT_A;
        unsigned char slot[GF_SLOT];
        put_le64(slot, get_le64(good + newer) + 1);
        put_le64(slot + 8, 300);
        put_le64(slot + 16, (uint64_t)tu_now_ms());
        put_le64(slot + 24, XXH3_64bits(slot, 24));
        const uint64_t old_or_new[2] = { 200, 300 };
        for (int k = 0; k <= GF_SLOT; k++) {
            unsigned char *d = malloc(glen);
            assert_non_null(d);
            memcpy(d, good, glen);
            memcpy(d + older, slot, (size_t)k);
            assert_ok(tu_write_file(gpath, d, glen));
            char what[64];
            snprintf(what, sizeof what, "commit torn after %d bytes", k);
            expect_old_or_error(f->dir, what, old_or_new, 2, true);
            uint64_t v = 0;
            assert_ok(fresh_committed(f->dir, &v));
            if (k == GF_SLOT)
                assert_u64(v, 300);   /* whole: the new value */
            free(d);
        }
        /* ... and the whole slot written in another order (checksum first). */
        for (int k = 0; k < GF_SLOT - 8; k++) {
            unsigned char *d = malloc(glen);
            assert_non_null(d);
            memcpy(d, good, glen);
            memcpy(d + older + 24, slot + 24, 8);
            memcpy(d + older, slot, (size_t)k);
            assert_ok(tu_write_file(gpath, d, glen));
            expect_old_or_error(f->dir, "commit torn, checksum written first", old_or_new, 2, true);
            free(d);
        }
    }

    /* Committing again after damage repairs the position. */
    assert_ok(tu_write_file(gpath, good, glen));
    assert_ok(tu_flip_bit(gpath, GF_SLOT_B + 3, 1));
    t = open_ok(f->dir, 0, NULL);
    assert_ok(topic_commit(t, "g", 400));
    expect_committed(t, "g", 400);
    assert_ok(topic_commit(t, "g", 500));
    expect_committed(t, "g", 500);
    assert_ok(close_t(t));
    uint64_t v = 0;
    assert_ok(fresh_committed(f->dir, &v));
    assert_u64(v, 500);
    free(good);
    free(gpath);
    free(gdir);
}

/*
 * A crash during the first commit of a group, while its file is being made
 * (offsets.c: created, allocated to a page, header written, synced).  Each
 * state a crash can leave must read as "never committed" (or an error),
 * and the group must take commits afterwards.
 */
static void test_group_file_first_commit_crash(void **state)
{
    fx *f = *state;
    WATCHDOG(30);
    topic *t = create_with(f->dir, NULL);
    assert_ok(topic_commit(t, "other", 1));   /* makes groups/ */
    assert_ok(close_t(t));
    char *gdir = tu_path(f->dir, "groups");
    char *gpath = tu_path(gdir, "g");
    unsigned char page[4096] = { 0 };
    static const char *const what[3] = {
        "created, nothing written (0 bytes)",
        "allocated, header not yet written (4096 zero bytes)",
        "header written, page not yet allocated (8 bytes)",
    };
    for (int k = 0; k < 3; k++) {
        for (int rdonly = 0; rdonly < 2; rdonly++) {
            if (k == 0)
                assert_ok(tu_write_file(gpath, page, 0));
            else if (k == 1)
                assert_ok(tu_write_file(gpath, page, sizeof page));
            else {
                unsigned char h[8];
                put_le32(h, 0x4f475054u);
                put_le32(h + 4, 1);
                assert_ok(tu_write_file(gpath, h, sizeof h));
            }
            topic *h = open_ok(f->dir, rdonly ? TOPIC_RDONLY : 0, NULL);
            uint64_t v = 0x77;
            int rc = topic_committed(h, "g", &v);
            if (rc == 0)
                fail_msg("group file %s: topic_committed returned %" PRIu64 ", never committed",
                         what[k], v);
            rc = topic_commit(h, "g", 42);
            if (rc != 0) {
                assert_ok(close_t(h));
                free(gpath);
                free(gdir);
                fail_msg("group file %s (a crash during its first commit): topic_commit = %d (%s) "
                         "on a%s handle; the group can never be committed again", what[k], rc,
                         topic_strerror(rc), rdonly ? " read-only" : " writer");
            }
            expect_committed(h, "g", 42);
            assert_ok(close_t(h));
            assert_ok(fresh_committed(f->dir, &v));
            assert_u64(v, 42);
        }
    }
    free(gpath);
    free(gdir);
}

/*
 * A file in groups/ that no commit could have left (text, a page of other
 * bytes, a file of the wrong size) is damage: topic_committed says
 * TOPIC_ECORRUPT and leaves it alone, topic_groups lists the group, and
 * the next topic_commit writes the file afresh, so that its consumer can
 * move on.  Such a file used to read as "never committed" whenever it was
 * short or began with a zero word, and one with another magic kept every
 * later commit failing with TOPIC_ECORRUPT.
 */
static void test_foreign_group_file(void **state)
{
    fx *f = *state;
    topic *t = create_with(f->dir, NULL);
    assert_ok(topic_commit(t, "other", 1));   /* makes groups/ */
    assert_ok(close_t(t));
    char *gdir = tu_path(f->dir, "groups");
    char *gpath = tu_path(gdir, "g");
    unsigned char page[5000];
    memset(page, 0, sizeof page);
    memcpy(page, "junk\n", 5);
    static const struct { const char *what; size_t len; } cases[] = {
        { "five bytes of text", 5 },
        { "a page of text and zeros", 4096 },
        { "a zero word, then text", 4096 },
        { "5000 bytes", 5000 },
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        if (k == 2) {
            memset(page, 0, 4);
            memcpy(page + 100, "junk", 4);
        }
        for (int rdonly = 0; rdonly < 2; rdonly++) {
            assert_ok(tu_write_file(gpath, page, cases[k].len));
            topic *h = open_ok(f->dir, rdonly ? TOPIC_RDONLY : 0, NULL);
            uint64_t v = 0x77;
            int rc = topic_committed(h, "g", &v);
            if (rc != TOPIC_ECORRUPT)
                fail_msg("groups/g holding %s: topic_committed = %d (%s), expected "
                         "TOPIC_ECORRUPT", cases[k].what, rc, topic_strerror(rc));
            unsigned char *now = NULL;
            size_t len = 0;
            assert_ok(tu_read_file(gpath, &now, &len));
            assert_int_equal(len, cases[k].len);
            assert_memory_equal(now, page, len);
            free(now);
            char names[64];
            assert_ok(topic_groups(h, names, sizeof names, &len));
            assert_int_equal(len, sizeof "g" + sizeof "other");
            assert_memory_equal(names, "g\0other", len);
            rc = topic_commit(h, "g", 42 + k);
            if (rc != 0)
                fail_msg("groups/g holding %s: topic_commit = %d (%s): the group can never "
                         "move on", cases[k].what, rc, topic_strerror(rc));
            expect_committed(h, "g", 42 + k);
            assert_ok(close_t(h));
            assert_ok(fresh_committed(f->dir, &v));
            assert_u64(v, 42 + k);
            assert_int_equal(tu_file_size(gpath), 4096);
        }
    }
    free(gpath);
    free(gdir);
}

/* The process's address space in use now, from /proc/self/statm. */
static size_t vm_bytes(void)
{
    FILE *fp = fopen("/proc/self/statm", "r");
    unsigned long pages = 0;
    if (fp == NULL || fscanf(fp, "%lu", &pages) != 1)
        pages = 0;
    if (fp != NULL)
        fclose(fp);
    return (size_t)pages * (size_t)sysconf(_SC_PAGESIZE);
}

/*
 * A read-only handle reserves 2 GiB of address space for the segment it
 * follows.  It used to map the writer's next segment before letting go of
 * the old one's reservation, so a follower whose address space is limited
 * (RLIMIT_AS, `ulimit -v`) to less than about 4.1 GiB read the first
 * segment and then got -ENOMEM for good, even after the writer closed.
 * Every segment it had read also stayed mapped until the handle closed:
 * under a limit of 2.2 GiB it stopped after about 60 MB of log (recheck
 * tester F1).  The follower here has 2 GiB and 128 MiB more than it uses at
 * the start, and follows 160 MB of log in segments of 1 MiB, then reads
 * the whole log again, through the segments it let go of.  Sanitizers
 * reserve terabytes of shadow memory, so this runs only in the plain build.
 */
static void test_follower_with_limited_address_space(void **state)
{
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
    (void)state;
    skip();
#else
    fx *f = *state;
    WATCHDOG(120);
    enum { N = 160000, LEN = 1000 };
    /* No handle is open across the fork: the child would inherit its
     * reservation. */
    topic *t = create_with(f->dir, "segment.bytes", "1048576", NULL);
    assert_ok(topic_append(t, "first", 5, NULL));
    assert_ok(close_t(t));
    int ready[2];
    assert_int_equal(pipe(ready), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        struct rlimit rl;
        rl.rlim_cur = rl.rlim_max = vm_bytes() + ((rlim_t)2 << 30) + ((rlim_t)128 << 20);
        if (setrlimit(RLIMIT_AS, &rl) != 0)
            _exit(2);
        topic *r = NULL;
        topic_cursor *c = NULL;
        if (topic_open(f->dir, TOPIC_RDONLY, NULL, &r) != 0 || topic_cursor_open(r, 0, &c) != 0)
            _exit(3);
        if (write(ready[1], "r", 1) != 1)
            _exit(4);
        uint64_t want = 0;
        for (;;) {
            topic_record rec;
            int rc = topic_cursor_next(c, &rec);
            if (rc == TOPIC_END) {
                rc = topic_wait(r, want, 2000);
                if (rc == -ETIMEDOUT)
                    break;   /* the writer has finished */
                if (rc == 0)
                    continue;
            }
            if (rc != 0 || rec.offset != want ||
                rec.value_len != (want == 0 ? 5 : (size_t)LEN) ||
                (want > 0 && ((const unsigned char *)rec.value)[LEN - 1] != (unsigned char)want)) {
                fprintf(stderr, "follower: offset %" PRIu64 ": %d (%s)\n", want, rc,
                        topic_strerror(rc));
                _exit(5);
            }
            want++;
        }
        topic_cursor_close(c);
        if (want != N + 1)
            _exit(6);
        unsigned char buf[LEN];
        for (uint64_t o = 1; o <= N; o += 997) {
            size_t len = 0;
            int rc = topic_read(r, o, buf, sizeof buf, &len);
            if (rc != 0 || len != LEN || buf[LEN - 1] != (unsigned char)o) {
                fprintf(stderr, "reader: offset %" PRIu64 ": %d (%s)\n", o, rc, topic_strerror(rc));
                _exit(7);
            }
        }
        topic_close(r);
        _exit(0);
    }
    char b;
    assert_int_equal(read(ready[0], &b, 1), 1);
    close(ready[0]);
    close(ready[1]);
    t = open_ok(f->dir, 0, NULL);
    unsigned char v[LEN];
    memset(v, 'f', sizeof v);
    for (uint64_t i = 1; i <= N; i++) {
        v[LEN - 1] = (unsigned char)i;
        assert_ok(topic_append(t, v, sizeof v, NULL));
    }
    print_message("writer: %d records in %d segments\n", N + 1, tu_count_suffix(f->dir, ".log"));
    assert_ok(close_t(t));
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
#endif
}

/* Mappings in this process of .log files under `dir`. */
static int log_maps(const char *dir)
{
    FILE *fp = fopen("/proc/self/maps", "r");
    char line[4096];
    int n = 0;
    while (fp != NULL && fgets(line, sizeof line, fp) != NULL)
        if (strstr(line, dir) != NULL && strstr(line, ".log") != NULL)
            n++;
    if (fp != NULL)
        fclose(fp);
    return n;
}

/*
 * A read-only handle that follows a writer gives back the memory and the
 * mappings of each segment it has followed to its end, once nobody reads
 * it: it kept its own index of each (24 bytes per entry) and its mapping
 * until topic_close, 117 MB after following 5 million records at
 * index.interval.bytes=1 (scale tester F1).  The writer, in a child, fills
 * 40 segments one at a time, and the follower reads each to the end before
 * the next; it then maps a few segments, not 40, and still reads every
 * record, through the writer's index files.
 *
 * A second cursor lags: it reads nothing for eight segments, then catches
 * up.  The segments it loads again on the way are given back at the
 * writer's next rolls too (recheck tester F3 of snap14: they stayed mapped
 * for good, the whole log with a lagging cursor).
 */
static void test_follower_gives_back_settled_segments(void **state)
{
    fx *f = *state;
    WATCHDOG(60);
    enum { SEGS = 40, PER = 20, LEN = 200 };
    topic *t = create_with(f->dir, "segment.bytes", "4096", "index.interval.bytes", "1", NULL);
    assert_ok(close_t(t));
    topic *r = open_ok(f->dir, TOPIC_RDONLY, NULL);
    topic_cursor *c = NULL, *lag = NULL;
    assert_ok(topic_cursor_open(r, 0, &c));
    assert_ok(topic_cursor_open(r, 0, &lag));
    uint64_t lagged = 0;
    int go[2], done[2];
    assert_int_equal(pipe(go), 0);
    assert_int_equal(pipe(done), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        topic *w = NULL;
        unsigned char v[LEN];
        char b;
        if (topic_open(f->dir, 0, NULL, &w) != 0)
            _exit(2);
        for (int s = 0; s < SEGS; s++) {
            for (int i = 0; i < PER; i++) {
                memset(v, 'a' + (s * PER + i) % 26, sizeof v);
                if (topic_append(w, v, sizeof v, NULL) != 0)
                    _exit(3);
            }
            if (write(done[1], "s", 1) != 1 || read(go[0], &b, 1) != 1)
                _exit(4);
        }
        _exit(topic_close(w) == 0 ? 0 : 5);
    }
    uint64_t want = 0;
    for (int s = 0; s < SEGS; s++) {
        char b;
        assert_int_equal(read(done[0], &b, 1), 1);
        topic_record rec;
        int rc;
        while ((rc = topic_cursor_next(c, &rec)) == 0) {
            assert_u64(rec.offset, want);
            assert_int_equal(rec.value_len, LEN);
            assert_int_equal(((const unsigned char *)rec.value)[0], 'a' + want % 26);
            want++;
        }
        assert_rc(rc, TOPIC_END);
        if (s % 8 == 3) {
            while ((rc = topic_cursor_next(lag, &rec)) == 0) {
                assert_u64(rec.offset, lagged);
                assert_int_equal(((const unsigned char *)rec.value)[LEN - 1], 'a' + lagged % 26);
                lagged++;
            }
            assert_rc(rc, TOPIC_END);
            assert_u64(lagged, want);
        }
        assert_int_equal(write(go[1], "g", 1), 1);
    }
    assert_u64(want, SEGS * PER);
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    assert_true(tu_count_suffix(f->dir, ".log") >= SEGS - 1);
    int maps = log_maps(f->dir);
    print_message("follower: %d segment files mapped after following %d\n", maps,
                  tu_count_suffix(f->dir, ".log"));
    assert_true(maps <= 5);   /* and one the lagging cursor holds */
    /* Every record again, through segments loaded anew. */
    unsigned char buf[LEN];
    for (uint64_t o = 0; o < want; o++) {
        size_t len = 0;
        assert_ok(topic_read(r, o, buf, sizeof buf, &len));
        assert_int_equal(len, LEN);
        assert_int_equal(buf[LEN - 1], 'a' + o % 26);
    }
    topic_cursor_close(c);
    topic_cursor_close(lag);
    assert_ok(close_t(r));
    close(go[0]);
    close(go[1]);
    close(done[0]);
    close(done[1]);
}

enum { READS = 60000 };

struct limited_reader {
    topic *t;
    uint64_t n;
    unsigned seed;
    long enomem, bad;
    pthread_barrier_t *start;
};

static void *limited_reader_run(void *arg)
{
    struct limited_reader *r = arg;
    /* Not before every thread exists: the reads fill the address space up
     * to its limit, and a thread created after that had no room for its
     * stack (pthread_create failed in about 1 run in 6). */
    pthread_barrier_wait(r->start);
    uint64_t x = r->seed;
    unsigned char buf[1000];
    for (int i = 0; i < READS; i++) {
        x = x * 6364136223846793005ull + 1442695040888963407ull;
        uint64_t o = (x >> 17) % r->n;
        size_t len = 0;
        int rc = topic_read(r->t, o, buf, sizeof buf, &len);
        if (rc == -ENOMEM)
            r->enomem++;
        else if (rc != 0 || len != sizeof buf || buf[0] != (unsigned char)o ||
                 buf[sizeof buf - 1] != (unsigned char)(o >> 8))
            r->bad++;
    }
    return NULL;
}

/*
 * Threads sharing a handle whose address space runs short: when a mapping
 * is refused, the handle gives back idle segments and tries again.  The
 * first thread to get the list's lock gave back every idle segment; the
 * others then found none left and failed with -ENOMEM, although room had
 * just been made (recheck tester F1: 351 of 400,000 reads with four
 * threads; here about 70 of 240,000).  Four threads read at random from
 * 128 MiB of log in segments of 64 KiB, with 72 MiB of address space to
 * spare; not one read may fail.  Plain build only, as the test above.
 */
static void test_threads_share_limited_address_space(void **state)
{
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
    (void)state;
    skip();
#else
    fx *f = *state;
    WATCHDOG(240);
    enum { N = 128 * 1024, LEN = 1000, THREADS = 4 };
    topic *t = create_with(f->dir, "segment.bytes", "65536", NULL);
    unsigned char v[LEN];
    memset(v, 'x', sizeof v);
    for (uint64_t i = 0; i < N; i++) {
        v[0] = (unsigned char)i;
        v[LEN - 1] = (unsigned char)(i >> 8);
        assert_ok(topic_append(t, v, sizeof v, NULL));
    }
    assert_ok(close_t(t));
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        pthread_attr_t attr;
        pthread_attr_init(&attr);
        pthread_attr_setstacksize(&attr, 256 << 10);
        struct rlimit rl;
        rl.rlim_cur = rl.rlim_max = vm_bytes() + ((rlim_t)2 << 30) + ((rlim_t)72 << 20);
        topic *r = NULL;
        /* One malloc arena: each thread's own would reserve 64 MiB. */
        mallopt(M_ARENA_MAX, 1);
        if (setrlimit(RLIMIT_AS, &rl) != 0)
            _exit(2);
        int rc = topic_open(f->dir, TOPIC_RDONLY, NULL, &r);
        if (rc != 0) {
            fprintf(stderr, "topic_open: %s\n", topic_strerror(rc));
            _exit(3);
        }
        struct limited_reader rd[THREADS];
        pthread_t th[THREADS];
        pthread_barrier_t start;
        if (pthread_barrier_init(&start, NULL, THREADS) != 0)
            _exit(4);
        for (int i = 0; i < THREADS; i++) {
            rd[i] = (struct limited_reader){ .t = r, .n = N, .seed = 7u + (unsigned)i,
                                             .start = &start };
            if (pthread_create(&th[i], &attr, limited_reader_run, &rd[i]) != 0)
                _exit(4);
        }
        long enomem = 0, bad = 0;
        for (int i = 0; i < THREADS; i++) {
            pthread_join(th[i], NULL);
            enomem += rd[i].enomem;
            bad += rd[i].bad;
        }
        topic_close(r);
        fprintf(stderr, "  %d threads, %d reads each: %ld -ENOMEM, %ld wrong\n", THREADS, READS,
                enomem, bad);
        _exit(bad ? 6 : enomem ? 5 : 0);
    }
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
#endif
}

/*
 * Address space is the process's: one handle's idle segments made another
 * handle's topic_open fail with -ENOMEM, though nothing used them (recheck
 * tester F4).  Handle A reads 64 MiB of 64 KiB segments and keeps them
 * mapped; the address space is then limited to 16 MiB less than handle B's
 * open needs (a 2 GiB reservation).  B opens all the same, A's idle
 * segments making room, and then both read everything, each giving back
 * the other's idle segments as they need.  Plain build only, as above.
 */
static void test_handles_make_room_for_each_other(void **state)
{
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
    (void)state;
    skip();
#else
    fx *f = *state;
    WATCHDOG(120);
    enum { N = 64 * 1024, LEN = 1000 };
    char *other = tu_path(f->root, "other");
    topic *t = create_with(f->dir, "segment.bytes", "65536", NULL);
    topic *u = create_with(other, "segment.bytes", "65536", NULL);
    unsigned char v[LEN];
    memset(v, 'y', sizeof v);
    for (uint64_t i = 0; i < N; i++) {
        v[0] = (unsigned char)i;
        v[LEN - 1] = (unsigned char)(i >> 8);
        assert_ok(topic_append(t, v, sizeof v, NULL));
        if (i < 1000)
            assert_ok(topic_append(u, v, sizeof v, NULL));
    }
    assert_ok(close_t(t));
    assert_ok(close_t(u));
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        mallopt(M_ARENA_MAX, 1);
        topic *a = NULL, *b = NULL;
        unsigned char buf[LEN];
        size_t len;
        if (topic_open(f->dir, TOPIC_RDONLY, NULL, &a) != 0)
            _exit(2);
        for (uint64_t o = 0; o < N; o++)
            if (topic_read(a, o, buf, sizeof buf, &len) != 0)
                _exit(3);
        struct rlimit rl;
        rl.rlim_cur = rl.rlim_max = vm_bytes() + ((rlim_t)2 << 30) - ((rlim_t)16 << 20);
        if (setrlimit(RLIMIT_AS, &rl) != 0)
            _exit(4);
        int rc = topic_open(other, TOPIC_RDONLY, NULL, &b);
        if (rc != 0) {
            fprintf(stderr, "second handle: topic_open: %s\n", topic_strerror(rc));
            _exit(5);
        }
        for (int pass = 0; pass < 2; pass++)
            for (uint64_t o = 0; o < N; o++) {
                topic *h = pass == 0 && o < 1000 ? b : a;
                rc = topic_read(h, o, buf, sizeof buf, &len);
                if (rc != 0 || len != LEN || buf[0] != (unsigned char)o ||
                    buf[LEN - 1] != (unsigned char)(o >> 8)) {
                    fprintf(stderr, "%s: offset %" PRIu64 ": %s\n", h == a ? "A" : "B", o,
                            topic_strerror(rc));
                    _exit(6);
                }
            }
        topic_close(b);
        topic_close(a);
        _exit(0);
    }
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    free(other);
#endif
}

/*
 * A read-only process follows a writer that rolls a small segment every few
 * milliseconds.  It must read every record, in order, with no error: a
 * listing of the directory made while the writer created two segments
 * could show the second and miss the first, and the reader then gave the
 * segment before the gap the missing one's offsets and reported their
 * records TOPIC_ECORRUPT for good (an outside test hit it within seconds).
 * It must not keep a descriptor per segment it followed either: it ran
 * out of them after about a thousand rolls and stalled without a word.
 */
static void follower_across_rolls(fx *f, bool spares)
{
    topic *t = create_with(f->dir, "segment.bytes", "8192", NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        topic *r = NULL;
        topic_cursor *c = NULL;
        if (topic_open(f->dir, TOPIC_RDONLY, NULL, &r) != 0 || topic_cursor_open(r, 0, &c) != 0)
            _exit(2);
        int fds0 = open_fds(), most = fds0;
        uint64_t want = 0;
        for (;;) {
            topic_record rec;
            int rc = topic_cursor_next(c, &rec);
            if (rc == TOPIC_END) {
                if (topic_wait(r, want, 2000) == -ETIMEDOUT)
                    break;   /* the writer has finished */
                continue;
            }
            if (rc != 0 || rec.offset != want || rec.value_len != 16 + want % 200 ||
                ((const unsigned char *)rec.value)[0] != (unsigned char)want) {
                fprintf(stderr, "follower: offset %" PRIu64 ": %d (%s)\n", want, rc,
                        topic_strerror(rc));
                _exit(3);
            }
            want++;
            if (want % 1000 == 0 && open_fds() > most)
                most = open_fds();
        }
        fprintf(stderr, "follower: %" PRIu64 " records, %d descriptors at most (%d at the "
                "start)\n", want, most, fds0);
        char *cp = tu_path(f->dir, "follower.count");
        if (tu_write_file(cp, &want, sizeof want) != 0)
            _exit(6);
        _exit(most > fds0 + 8 ? 4 : 0);
    }
    unsigned char v[8][216];
    uint64_t n = 0;
    int64_t until = tu_now_ms() + 1500;
    char *spare = tu_path(f->dir, "spare.log.tmp");
    bool saw_spare = false;
    while (tu_now_ms() < until) {
        if (spares && !saw_spare)
            saw_spare = tu_exists(spare);
        topic_record recs[8];
        memset(recs, 0, sizeof recs);
        for (int k = 0; k < 8; k++, n++) {
            memset(v[k], (unsigned char)n, sizeof v[k]);
            recs[k].value = v[k];
            recs[k].value_len = 16 + n % 200;
        }
        assert_ok(topic_append_batch(t, recs, 8, NULL));
    }
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    print_message("writer: %" PRIu64 " records in %d segments\n", n,
                  tu_count_suffix(f->dir, ".log"));
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    char *cp = tu_path(f->dir, "follower.count");
    unsigned char *data = NULL;
    size_t len = 0;
    assert_ok(tu_read_file(cp, &data, &len));
    uint64_t got;
    assert_int_equal(len, sizeof got);
    memcpy(&got, data, sizeof got);
    assert_u64(got, n);   /* the follower saw every record */
    free(data);
    free(cp);
    assert_ok(close_t(t));
    if (spares)
        assert_true(saw_spare);   /* or the test tests nothing new */
    assert_false(tu_exists(spare));   /* the close removed the one not taken */
    free(spare);
}

static void test_follower_across_many_rolls(void **state)
{
    WATCHDOG(60);
    follower_across_rolls(*state, false);
}

/*
 * The same with every segment given a spare, which the library does only
 * for segments of 64 MiB and more: the follower lists a directory where
 * the flusher makes spare.*.tmp files and the rolls rename them, index
 * files first and the log last.  It must ignore the spares, and a listing
 * taken between the renames must not cost it a segment.
 */
static void test_follower_across_rolls_with_spares(void **state)
{
    WATCHDOG(60);
    tf_spares(true);   /* fx_teardown undoes it */
    follower_across_rolls(*state, true);
}

/* ======================================================================== */
/* 3. Retention                                                              */
/* ======================================================================== */

/* Index of the segment (in bases[0..n)) that holds offset `off`. */
static int seg_of(const uint64_t *bases, int n, uint64_t off)
{
    int i = n - 1;
    while (i > 0 && bases[i] > off)
        i--;
    return i;
}

static void test_delete_before_basic(void **state)
{
    fx *f = *state;
    WATCHDOG(30);
    topic *t = create_with(f->dir, "segment.bytes", "4096", NULL);
    append_simple(t, 1000);
    uint64_t end = topic_end_offset(t);
    uint64_t *bases = NULL;
    int n = list_segments(f->dir, &bases);
    assert_true(n >= 10);
    assert_u64(topic_start_offset(t), 0);

    /* Offset 3 into the sixth segment. */
    uint64_t x = bases[5] + 3;
    assert_true(x < bases[6]);
    assert_ok(topic_delete_before(t, x));
    assert_u64(topic_start_offset(t), x);
    assert_u64(topic_end_offset(t), end);
    assert_rc(read_simple(t, x - 1), TOPIC_EGONE);
    assert_rc(read_simple(t, bases[5]), TOPIC_EGONE);
    assert_rc(read_simple(t, 0), TOPIC_EGONE);
    assert_rc(read_simple(t, bases[2] + 1), TOPIC_EGONE);
    for (uint64_t o = x; o < end; o++)
        assert_read_simple(t, o);
    assert_rc(read_simple(t, end), TOPIC_END);
    topic_cursor *c = NULL;
    assert_rc(topic_cursor_open(t, x - 1, &c), TOPIC_EGONE);
    assert_rc(topic_cursor_open(t, 0, &c), TOPIC_EGONE);
    assert_ok(topic_cursor_open(t, x, &c));
    topic_record rec;
    for (uint64_t o = x; o < end; o++) {
        assert_ok(topic_cursor_next(c, &rec));
        assert_true(rec_simple_ok(&rec, o));
    }
    assert_rc(topic_cursor_next(c, &rec), TOPIC_END);
    assert_rc(topic_cursor_seek(c, x - 1), TOPIC_EGONE);
    assert_ok(topic_cursor_seek(c, x));
    topic_cursor_close(c);

    /* The five segments below went, with their indexes; the sixth stays. */
    uint64_t *after = NULL;
    int m = list_segments(f->dir, &after);
    assert_int_equal(m, n - 5);
    assert_u64(after[0], bases[5]);
    for (int i = 0; i < 5; i++) {
        char *p = tu_segment_path(f->dir, bases[i], "index");
        char *q = tu_segment_path(f->dir, bases[i], "timeindex");
        assert_false(tu_exists(p));
        assert_false(tu_exists(q));
        free(p);
        free(q);
    }
    free(after);

    /* Going back does nothing; beyond the end is refused. */
    assert_ok(topic_delete_before(t, x - 2));
    assert_ok(topic_delete_before(t, 0));
    assert_u64(topic_start_offset(t), x);
    assert_rc(topic_delete_before(t, end + 1), -EINVAL);
    assert_rc(topic_delete_before(t, UINT64_MAX), -EINVAL);
    assert_u64(topic_start_offset(t), x);
    assert_rc(topic_delete_before(NULL, 0), -EINVAL);
    assert_int_equal(tu_count_suffix(f->dir, ".log"), n - 5);

    /* A read-only handle may not delete. */
    topic *r = open_ok(f->dir, TOPIC_RDONLY, NULL);
    assert_u64(topic_start_offset(r), x);
    assert_rc(topic_delete_before(r, x + 1), TOPIC_ERDONLY);
    assert_rc(topic_delete_before(r, 0), TOPIC_ERDONLY);
    assert_u64(topic_start_offset(r), x);
    assert_u64(topic_start_offset(t), x);
    assert_rc(read_simple(r, x - 1), TOPIC_EGONE);
    assert_read_simple(r, x);
    assert_ok(close_t(r));

    /* Everything: only the active segment remains, and appends go on. */
    assert_ok(topic_delete_before(t, end));
    assert_u64(topic_start_offset(t), end);
    assert_int_equal(tu_count_suffix(f->dir, ".log"), 1);
    m = list_segments(f->dir, &after);
    assert_int_equal(m, 1);
    assert_u64(after[0], bases[n - 1]);
    free(after);
    assert_rc(read_simple(t, end - 1), TOPIC_EGONE);
    assert_rc(read_simple(t, end), TOPIC_END);
    append_simple(t, 3);
    for (uint64_t o = end; o < end + 3; o++)
        assert_read_simple(t, o);
    assert_ok(close_t(t));

    /* The start offset survives closing. */
    t = open_ok(f->dir, 0, NULL);
    assert_u64(topic_start_offset(t), end);
    assert_u64(topic_end_offset(t), end + 3);
    assert_rc(read_simple(t, end - 1), TOPIC_EGONE);
    assert_read_simple(t, end);
    assert_ok(close_t(t));
    r = open_ok(f->dir, TOPIC_RDONLY, NULL);
    assert_u64(topic_start_offset(r), end);
    assert_rc(read_simple(r, end - 1), TOPIC_EGONE);
    assert_read_simple(r, end + 2);
    assert_ok(close_t(r));
    free(bases);
}

/* Time seeks after a deletion land on stored records only. */
static void test_delete_before_seek_time(void **state)
{
    fx *f = *state;
    WATCHDOG(30);
    topic *t = create_with(f->dir, "segment.bytes", "4096", NULL);
    /* Timestamps TS0 + offset, one record per batch. */
    const int64_t ts0 = 1600000000000ll;
    unsigned char buf[MAXV];
    for (uint64_t o = 0; o < 600; o++) {
        tu_fill(o, SEED, buf, val_len(o));
        topic_record rec = { 0, ts0 + (int64_t)o, NULL, 0, buf, val_len(o) };
        assert_ok(topic_append_batch(t, &rec, 1, NULL));
    }
    uint64_t *bases = NULL;
    int n = list_segments(f->dir, &bases);
    assert_true(n >= 4);
    uint64_t x = bases[2] + 3;   /* inside a segment that stays */
    uint64_t b2 = bases[2];
    assert_true(x < bases[3]);
    free(bases);
    assert_ok(topic_delete_before(t, x));
    topic_cursor *c = NULL;
    topic_record rec;
    assert_ok(topic_cursor_open(t, x, &c));
    const int64_t targets[] = { 0, ts0, ts0 + (int64_t)b2, ts0 + (int64_t)x - 1 };
    for (size_t i = 0; i < sizeof targets / sizeof targets[0]; i++) {
        assert_ok(topic_cursor_seek_time(c, targets[i]));
        uint64_t got = topic_cursor_offset(c);
        if (got != x)
            topic_cursor_close(c);
        if (got != x)
            fail_msg("after topic_delete_before(%" PRIu64 "), seek_time(%" PRId64 ") went to "
                     "%" PRIu64 ", below the start offset; expected %" PRIu64, x, targets[i],
                     got, x);
        assert_ok(topic_cursor_next(c, &rec));
        assert_true(rec_simple_ok(&rec, x));
    }
    assert_ok(topic_cursor_seek_time(c, ts0 + (int64_t)x + 5));
    assert_u64(topic_cursor_offset(c), x + 5);
    assert_ok(topic_cursor_seek_time(c, ts0 + 600));
    assert_u64(topic_cursor_offset(c), 600);
    topic_cursor_close(c);
    assert_ok(close_t(t));
}

/* A writer that deletes, says so, and keeps appending until killed. */
struct kdelete {
    const char *dir;
    uint64_t seed;
    _Atomic uint64_t returned;   /* 1 + the offset whose delete returned */
    _Atomic int rc;
};

static int child_delete(void *arg)
{
    struct kdelete *k = arg;
    topic *t = NULL;
    if (topic_open(k->dir, 0, NULL, &t) != 0)
        return 30;
    unsigned char buf[MAXV];
    for (int i = 0; i < 200; i++) {
        uint64_t off = topic_end_offset(t);
        tu_fill(off, SEED, buf, val_len(off));
        if (topic_append(t, buf, val_len(off), NULL) != 0)
            return 31;
    }
    tu_rng rng;
    tu_rng_seed(&rng, k->seed);
    uint64_t s = topic_start_offset(t), e = topic_end_offset(t);
    uint64_t x = s + tu_rng_below(&rng, e - s + 1);
    int rc = topic_delete_before(t, x);
    atomic_store(&k->rc, rc);
    atomic_store(&k->returned, x + 1);
    if (rc != 0)
        return 32;
    for (;;) {
        uint64_t off = topic_end_offset(t);
        tu_fill(off, SEED, buf, val_len(off));
        if (topic_append(t, buf, val_len(off), NULL) != 0)
            return 33;
    }
}

static void check_no_segment_below(const char *dir, uint64_t start)
{
    uint64_t *b = NULL;
    int n = list_segments(dir, &b);
    assert_true(n >= 1);
    for (int i = 0; i + 1 < n; i++)
        if (b[i + 1] <= start)
            fail_msg("segment %" PRIu64 " holds only offsets below the start %" PRIu64
                     " and is still there", b[i], start);
    free(b);
}

static void test_delete_before_kill9(void **state)
{
    fx *f = *state;
    WATCHDOG(60);
    topic *t = create_with(f->dir, "segment.bytes", "4096", NULL);
    assert_ok(close_t(t));
    struct kdelete *k = shm_new(sizeof *k);
    for (int it = 0; it < 12; it++) {
        k->dir = f->dir;
        k->seed = 1000 + (uint64_t)it;
        atomic_store(&k->returned, 0);
        atomic_store(&k->rc, 0);
        pid_t pid = spawn(child_delete, k);
        uint64_t deadline = tu_mono_us() + 20000000u;
        while (atomic_load(&k->returned) == 0 && tu_mono_us() < deadline) {
            int st;
            if (waitpid(pid, &st, WNOHANG) == pid)
                fail_msg("iteration %d: the writer child exited early (status %d)", it,
                         WIFEXITED(st) ? WEXITSTATUS(st) : -1000 - WTERMSIG(st));
        }
        kill_wait(pid);   /* right after the call returned */
        assert_true(atomic_load(&k->returned) != 0);
        assert_ok(atomic_load(&k->rc));
        uint64_t x = atomic_load(&k->returned) - 1;

        topic *r = open_ok(f->dir, TOPIC_RDONLY, NULL);
        assert_u64(topic_start_offset(r), x);
        if (x > 0)
            assert_rc(read_simple(r, x - 1), TOPIC_EGONE);
        assert_ok(close_t(r));

        t = open_ok(f->dir, 0, NULL);
        if (topic_start_offset(t) != x)
            fail_msg("iteration %d: start offset %" PRIu64 " after SIGKILL, but "
                     "topic_delete_before(%" PRIu64 ") had returned", it, topic_start_offset(t), x);
        if (x > 0)
            assert_rc(read_simple(t, x - 1), TOPIC_EGONE);
        uint64_t end = topic_end_offset(t);
        assert_true(end >= x);
        for (uint64_t o = x; o < end; o++)
            assert_read_simple(t, o);
        check_no_segment_below(f->dir, x);
        assert_ok(close_t(t));
    }
    munmap(k, sizeof *k);
}

/* Reads on with cursor c from `*next`: each record must be the right one,
 * or the call says TOPIC_EGONE for an offset that is gone, after which the
 * cursor moves to the start offset.  Ends at the end of the log. */
static void drain_right_or_gone(topic *t, topic_cursor *c, uint64_t next, uint64_t end,
                                int *gone_seen)
{
    topic_record rec;
    while (next < end) {
        int rc = topic_cursor_next(c, &rec);
        if (rc == TOPIC_EGONE) {
            uint64_t start = topic_start_offset(t);
            if (next >= start)
                fail_msg("TOPIC_EGONE at offset %" PRIu64 " at or above the start %" PRIu64, next,
                         start);
            (*gone_seen)++;
            assert_ok(topic_cursor_seek(c, start));
            next = start;
            continue;
        }
        if (rc != 0)
            fail_msg("cursor_next at %" PRIu64 " = %d (%s)", next, rc, topic_strerror(rc));
        if (!rec_simple_ok(&rec, next))
            fail_msg("cursor at %" PRIu64 " returned a wrong record (offset %" PRIu64 ")", next,
                     rec.offset);
        next++;
    }
    assert_rc(topic_cursor_next(c, &rec), TOPIC_END);
}

static void test_delete_before_cursors_same_process(void **state)
{
    fx *f = *state;
    WATCHDOG(30);
    topic *t = create_with(f->dir, "segment.bytes", "4096", NULL);
    append_simple(t, 1000);
    uint64_t end = topic_end_offset(t);
    uint64_t *bases = NULL;
    int n = list_segments(f->dir, &bases);
    assert_true(n >= 8);
    topic *r = open_ok(f->dir, TOPIC_RDONLY, NULL);

    /* c1 has read into segment 0, c2 is inside segment 1, c3 has read
     * nothing, c4 (read-only handle) has read into segment 0. */
    topic_cursor *c1, *c2, *c3, *c4;
    topic_record rec;
    assert_ok(topic_cursor_open(t, 0, &c1));
    for (uint64_t o = 0; o < 10; o++) {
        assert_ok(topic_cursor_next(c1, &rec));
        assert_true(rec_simple_ok(&rec, o));
    }
    assert_ok(topic_cursor_open(t, bases[1] + 1, &c2));
    assert_ok(topic_cursor_next(c2, &rec));
    assert_true(rec_simple_ok(&rec, bases[1] + 1));
    assert_ok(topic_cursor_open(t, 3, &c3));
    assert_ok(topic_cursor_open(r, 0, &c4));
    for (uint64_t o = 0; o < 5; o++) {
        assert_ok(topic_cursor_next(c4, &rec));
        assert_true(rec_simple_ok(&rec, o));
    }

    uint64_t x = bases[4];
    assert_ok(topic_delete_before(t, x));
    assert_int_equal(tu_count_suffix(f->dir, ".log"), n - 4);
    int gone = 0;
    drain_right_or_gone(t, c1, 10, end, &gone);
    drain_right_or_gone(t, c2, bases[1] + 2, end, &gone);
    int gone3 = 0;
    drain_right_or_gone(t, c3, 3, end, &gone3);
    assert_int_equal(gone3, 1);   /* nothing held: gone at once */
    assert_u64(topic_end_offset(r), end);
    drain_right_or_gone(r, c4, 5, end, &gone);
    topic_cursor_close(c1);
    topic_cursor_close(c2);
    topic_cursor_close(c3);
    topic_cursor_close(c4);
    assert_ok(close_t(r));
    assert_ok(close_t(t));
    free(bases);
}

/*
 * A deletion inside a batch that cursors are in the middle of: the next
 * call of each returns TOPIC_EGONE, through the writer's handle and a
 * read-only one alike, and a seek to the new start reads on.  Cursors hand
 * out most records without looking up their batch again (cursor.c); the
 * start offset must still be checked at every record, and a read-only
 * handle learns it from the writer's live area.
 */
static void test_delete_before_inside_a_batch(void **state)
{
    fx *f = *state;
    WATCHDOG(30);
    topic *t = create_with(f->dir, NULL);
    append_simple(t, 40);
    topic *r = open_ok(f->dir, TOPIC_RDONLY, NULL);
    topic_cursor *cw, *cr;
    topic_record rec;
    assert_ok(topic_cursor_open(t, 0, &cw));
    assert_ok(topic_cursor_open(r, 0, &cr));
    for (uint64_t o = 0; o < 2; o++) {
        assert_ok(topic_cursor_next(cw, &rec));
        assert_true(rec_simple_ok(&rec, o));
        assert_ok(topic_cursor_next(cr, &rec));
        assert_true(rec_simple_ok(&rec, o));
    }
    /* Both stand at offset 2, inside the first batch; the deletion takes
     * records 2 and 3 from under them, and not the batch. */
    assert_ok(topic_delete_before(t, 4));
    assert_int_equal(topic_cursor_next(cw, &rec), TOPIC_EGONE);
    assert_int_equal(topic_cursor_next(cr, &rec), TOPIC_EGONE);
    assert_u64(topic_start_offset(r), 4);
    for (int i = 0; i < 2; i++) {
        topic_cursor *c = i ? cr : cw;
        assert_ok(topic_cursor_seek(c, 4));
        for (uint64_t o = 4; o < 40; o++) {
            assert_ok(topic_cursor_next(c, &rec));
            assert_true(rec_simple_ok(&rec, o));
        }
        assert_int_equal(topic_cursor_next(c, &rec), TOPIC_END);
    }
    topic_cursor_close(cw);
    topic_cursor_close(cr);
    assert_ok(close_t(r));
    assert_ok(close_t(t));
}

/*
 * The contract of topic_delete_before: "records below it read as
 * TOPIC_EGONE from now on, in every handle and process".  A read-only handle
 * that had already read (mapped) the deleted segment is asked for one.
 */
static void test_delete_before_rdonly_read_is_gone(void **state)
{
    fx *f = *state;
    WATCHDOG(30);
    topic *t = create_with(f->dir, "segment.bytes", "4096", NULL);
    append_simple(t, 500);
    uint64_t *bases = NULL;
    int n = list_segments(f->dir, &bases);
    assert_true(n >= 4);
    topic *r = open_ok(f->dir, TOPIC_RDONLY, NULL);
    uint64_t b1 = bases[1], b2 = bases[2], x = bases[3];
    free(bases);
    assert_read_simple(r, 5);        /* maps segment 0 */
    assert_read_simple(r, b1 + 1);   /* and segment 1 */
    assert_ok(topic_delete_before(t, x));
    int rc = read_simple(r, 5);
    if (rc != TOPIC_EGONE)
        fail_msg("after topic_delete_before(%" PRIu64 ") returned, a read-only handle's "
                 "topic_read(5) = %d (%s), expected TOPIC_EGONE", x, rc,
                 rc == 0 ? "the deleted record" : topic_strerror(rc));
    assert_rc(read_simple(r, b1 + 1), TOPIC_EGONE);
    assert_rc(read_simple(r, b2 + 1), TOPIC_EGONE);   /* never mapped */
    assert_read_simple(r, x);
    assert_ok(close_t(r));
    assert_ok(close_t(t));
}

/* A read-only reader in another process, in the middle of a segment that
 * the writer deletes. */
struct xdelete {
    const char *dir;
    uint64_t end;
    uint64_t x;                /* the start offset the parent sets */
    uint64_t b2;               /* an offset in a segment the child never read */
    _Atomic int phase;
    int gone;                  /* TOPIC_EGONE seen by the cursor */
    int read_unmapped_rc;      /* topic_read in a never-read deleted segment */
    int cursor_open_rc;        /* cursor_open below the start */
    uint64_t start_seen;
    char msg[200];
};

static int child_delete_reader(void *arg)
{
    struct xdelete *x = arg;
    topic *r = NULL;
    if (topic_open(x->dir, TOPIC_RDONLY, NULL, &r) != 0)
        return 40;
    topic_cursor *c = NULL;
    if (topic_cursor_open(r, 0, &c) != 0)
        return 41;
    topic_record rec;
    uint64_t next = 0;
    for (; next < 10; next++)
        if (topic_cursor_next(c, &rec) != 0 || !rec_simple_ok(&rec, next))
            return 42;
    atomic_store(&x->phase, 1);
    while (atomic_load(&x->phase) != 2)
        tu_sleep_us(200);
    x->read_unmapped_rc = read_simple(r, x->b2);
    while (next < x->end) {
        int rc = topic_cursor_next(c, &rec);
        if (rc == TOPIC_EGONE) {
            topic_end_offset(r);   /* learn what the writer did */
            uint64_t s = topic_start_offset(r);
            if (next >= s) {
                snprintf(x->msg, sizeof x->msg, "EGONE at %" PRIu64 " >= start %" PRIu64, next, s);
                return 43;
            }
            x->gone++;
            if (topic_cursor_seek(c, s) != 0)
                return 44;
            next = s;
            continue;
        }
        if (rc != 0) {
            snprintf(x->msg, sizeof x->msg, "cursor_next(%" PRIu64 ") = %d (%s)", next, rc,
                     topic_strerror(rc));
            return 45;
        }
        if (!rec_simple_ok(&rec, next)) {
            snprintf(x->msg, sizeof x->msg, "wrong record at %" PRIu64, next);
            return 46;
        }
        next++;
    }
    topic_end_offset(r);
    x->start_seen = topic_start_offset(r);
    topic_cursor *c2 = NULL;
    x->cursor_open_rc = topic_cursor_open(r, x->x - 1, &c2);
    topic_cursor_close(c2);
    topic_cursor_close(c);
    return topic_close(r) == 0 ? 0 : 47;
}

static void test_delete_before_cursor_other_process(void **state)
{
    fx *f = *state;
    WATCHDOG(30);
    topic *t = create_with(f->dir, "segment.bytes", "4096", NULL);
    append_simple(t, 1000);
    uint64_t *bases = NULL;
    int n = list_segments(f->dir, &bases);
    assert_true(n >= 8);
    struct xdelete *x = shm_new(sizeof *x);
    x->dir = f->dir;
    x->end = topic_end_offset(t);
    x->x = bases[5] + 2;
    x->b2 = bases[2] + 3;
    pid_t pid = spawn(child_delete_reader, x);
    wait_flag(&x->phase, 1, 10000);
    assert_ok(topic_delete_before(t, x->x));
    atomic_store(&x->phase, 2);
    int st = tu_wait_child(pid, 20000);
    if (st != 0)
        fail_msg("reader process exited %d: %s", st, x->msg);
    assert_rc(x->read_unmapped_rc, TOPIC_EGONE);
    assert_rc(x->cursor_open_rc, TOPIC_EGONE);
    assert_u64(x->start_seen, x->x);
    assert_int_equal(x->gone, 1);
    assert_ok(close_t(t));
    munmap(x, sizeof *x);
    free(bases);
}

/* Readers and a deleting writer at once, in one process. */
struct gone_reader {
    topic *t;
    _Atomic int *stop;
    int errors;
    uint64_t records, gone;
    char msg[200];
};

static void *gone_reader_main(void *arg)
{
    struct gone_reader *g = arg;
    tu_rng rng;
    tu_rng_seed(&rng, (uint64_t)(uintptr_t)g);
    while (!atomic_load(g->stop) && g->errors == 0) {
        topic_cursor *c = NULL;
        uint64_t next = topic_start_offset(g->t);
        if (topic_cursor_open(g->t, next, &c) != 0) {
            g->gone++;
            continue;
        }
        for (int i = 0; i < 300 && g->errors == 0; i++) {
            topic_record rec;
            int rc = topic_cursor_next(c, &rec);
            if (rc == TOPIC_END)
                break;
            if (rc == TOPIC_EGONE) {
                uint64_t s = topic_start_offset(g->t);
                if (next >= s) {
                    g->errors++;
                    snprintf(g->msg, sizeof g->msg, "EGONE at %" PRIu64 " >= start %" PRIu64, next, s);
                }
                g->gone++;
                break;
            }
            if (rc != 0 || !rec_simple_ok(&rec, next)) {
                g->errors++;
                snprintf(g->msg, sizeof g->msg, "cursor at %" PRIu64 ": rc %d, offset %" PRIu64,
                         next, rc, rec.offset);
                break;
            }
            next++;
            g->records++;
        }
        topic_cursor_close(c);
        /* Random reads anywhere, deleted or not. */
        for (int i = 0; i < 50; i++) {
            uint64_t e = topic_end_offset(g->t);
            uint64_t o = tu_rng_below(&rng, e);
            int rc = read_simple(g->t, o);
            if (rc == TOPIC_EGONE && o < topic_start_offset(g->t)) {
                g->gone++;
                continue;
            }
            if (rc != 0 && g->errors++ == 0)
                snprintf(g->msg, sizeof g->msg, "topic_read(%" PRIu64 ") = %d (%s), start %" PRIu64,
                         o, rc, topic_strerror(rc), topic_start_offset(g->t));
        }
    }
    return NULL;
}

static void test_delete_before_concurrent_readers(void **state)
{
    fx *f = *state;
    WATCHDOG(30);
    topic *t = create_with(f->dir, "segment.bytes", "4096", NULL);
    append_simple(t, 1500);
    _Atomic int stop = 0;
    struct gone_reader g[3];
    pthread_t th[3];
    for (int i = 0; i < 3; i++) {
        g[i] = (struct gone_reader){ .t = t, .stop = &stop };
        assert_int_equal(pthread_create(&th[i], NULL, gone_reader_main, &g[i]), 0);
    }
    tu_rng rng;
    tu_rng_seed(&rng, 5);
    uint64_t t_end = tu_mono_us() + 1500000u;
    int deletes = 0;
    while (tu_mono_us() < t_end) {
        append_simple(t, 40);
        uint64_t s = topic_start_offset(t), e = topic_end_offset(t);
        if (e - s > 600) {
            assert_ok(topic_delete_before(t, s + tu_rng_below(&rng, (e - s) / 3)));
            deletes++;
        }
        tu_sleep_us(1000);
    }
    atomic_store(&stop, 1);
    for (int i = 0; i < 3; i++) {
        pthread_join(th[i], NULL);
        if (g[i].errors)
            fail_msg("reader %d: %s", i, g[i].msg);
    }
    assert_true(deletes > 5);
    check_no_segment_below(f->dir, topic_start_offset(t));
    assert_ok(close_t(t));
}

/* Reads records [from, end) of a topic under retention.  The flusher
 * applies retention after every seal, so it may move the start offset on
 * while this reads: a record may then read as TOPIC_EGONE, but only once it
 * is below the start offset; every other one must read back. */
static void assert_read_kept(topic *t, uint64_t from, uint64_t end)
{
    for (uint64_t o = from; o < end; o++) {
        /* One read: a second could find the record deleted since. */
        int rc = read_simple(t, o);
        if (rc == TOPIC_EGONE && o < topic_start_offset(t))
            continue;
        assert_read_rc(rc, o);
    }
}

/* Polls up to `ms` for the first .log file to start at the start offset
 * (and at want_start unless UINT64_MAX), with the segments but the active
 * one holding at most max_bytes (unless 0). */
static bool wait_retention(topic *t, const char *dir, int ms, uint64_t want_start,
                           uint64_t max_bytes)
{
    uint64_t deadline = tu_mono_us() + (uint64_t)ms * 1000u;
    do {
        uint64_t *b = NULL;
        int n = list_segments(dir, &b);
        uint64_t first = n > 0 ? b[0] : UINT64_MAX;
        free(b);
        uint64_t s = topic_start_offset(t);
        if (s == first && (want_start == UINT64_MAX || s == want_start) &&
            (max_bytes == 0 || sealed_log_bytes(dir) <= max_bytes))
            return true;
        tu_sleep_us(20000);
    } while (tu_mono_us() < deadline);
    return false;
}

static void describe_segments(const char *dir, char *out, size_t cap)
{
    uint64_t *b = NULL;
    int n = list_segments(dir, &b);
    snprintf(out, cap, "%d segments, %" PRIu64 " bytes in all but the active one (%" PRIu64
             " with it), first base %" PRIu64, n, sealed_log_bytes(dir), log_bytes(dir),
             n > 0 ? b[0] : 0);
    free(b);
}

#define RB_SEG 4096u
#define RB_KEEP 16384u

static void test_retention_bytes(void **state)
{
    fx *f = *state;
    WATCHDOG(40);
    topic *t = create_with(f->dir, "segment.bytes", "4096", "retention.bytes", "16384", NULL);
    char why[160];
    uint64_t start = 0;
    /* Three phases of appends: the log must be brought back in bounds after
     * each, not only the first time. */
    for (int phase = 0; phase < 3; phase++) {
        for (int round = 0; round < 10; round++) {
            append_simple(t, 100);
            tu_sleep_us(2000);
        }
        /* Bounded: what retention keeps (< retention.bytes + one segment)
         * and one segment the flusher may not have sealed yet. */
        if (!wait_retention(t, f->dir, 5000, UINT64_MAX, RB_KEEP + 2 * RB_SEG)) {
            describe_segments(f->dir, why, sizeof why);
            fail_msg("phase %d: retention.bytes=16384 did not bound the log within 5 s after "
                     "%" PRIu64 " appends: %s; start offset %" PRIu64, phase, topic_end_offset(t),
                     why, topic_start_offset(t));
        }
        assert_true(topic_start_offset(t) > start);
        start = topic_start_offset(t);
    }
    uint64_t end = topic_end_offset(t);
    assert_u64(end, 3000);
    assert_rc(read_simple(t, start - 1), TOPIC_EGONE);
    assert_read_kept(t, start, end);
    assert_ok(close_t(t));
    /* What is left holds at least retention.bytes of data. */
    uint64_t kept = log_bytes(f->dir);
    if (kept < RB_KEEP || kept > RB_KEEP + 2 * RB_SEG)
        fail_msg("after close the segments hold %" PRIu64 " bytes (retention.bytes = %u)", kept,
                 RB_KEEP);
    /* The flusher may have applied retention once more (after the last
     * seal) between the reads above and the close: never less, though. */
    t = open_ok(f->dir, TOPIC_RDONLY, NULL);
    uint64_t reopened = topic_start_offset(t);
    assert_true(reopened >= start && reopened < end);
    assert_read_simple(t, reopened);
    assert_ok(close_t(t));
}

/*
 * A close applies retention to what it seals, as the flusher does after
 * each seal: the closed topic holds retention.bytes and less than one
 * segment more.  A close that stopped the flusher before it caught up used
 * to seal the remaining segments and keep them, up to several segments
 * past the bound until the next writer's open (test_retention_bytes failed
 * in CI on that, 25350 bytes left for 16384).
 */
static void test_retention_bytes_at_close(void **state)
{
    fx *f = *state;
    WATCHDOG(40);
    for (int round = 0; round < 5; round++) {
        topic *t = round == 0 ? create_with(f->dir, "segment.bytes", "4096", "retention.bytes",
                                            "16384", NULL)
                              : open_ok(f->dir, 0, NULL);
        append_simple(t, 400);   /* about 15 segments, closed at once */
        uint64_t end = topic_end_offset(t);
        assert_ok(close_t(t));
        uint64_t kept = log_bytes(f->dir);
        if (kept < RB_KEEP || kept >= RB_KEEP + RB_SEG)
            fail_msg("round %d: after close the segments hold %" PRIu64 " bytes "
                     "(retention.bytes = %u, segments of %u)", round, kept, RB_KEEP, RB_SEG);
        t = open_ok(f->dir, TOPIC_RDONLY, NULL);
        assert_u64(topic_end_offset(t), end);
        assert_read_kept(t, topic_start_offset(t), end);
        assert_ok(close_t(t));
    }
}

/* The total size of the .log files, the active one's included, stays in
 * bounds while the writer is open: the active segment's file holds at most
 * about segment.bytes, as the files of sealed segments do. */
static void test_retention_total_log_files(void **state)
{
    fx *f = *state;
    WATCHDOG(30);
    topic *t = create_with(f->dir, "segment.bytes", "4096", "retention.bytes", "16384", NULL);
    for (int round = 0; round < 10; round++)
        append_simple(t, 100);
    char why[200];
    if (!wait_retention(t, f->dir, 5000, UINT64_MAX, RB_KEEP + 2 * RB_SEG)) {
        describe_segments(f->dir, why, sizeof why);
        fail_msg("retention did not bound the sealed segments within 5 s: %s", why);
    }
    uint64_t *b = NULL;
    int n = list_segments(f->dir, &b);
    char *active = tu_segment_path(f->dir, b[n - 1], "log");
    long long asize = tu_file_size(active);
    free(active);
    free(b);
    uint64_t total = log_bytes(f->dir);
    if (asize > (long long)(2 * RB_SEG) || total > RB_KEEP + 4 * RB_SEG) {
        describe_segments(f->dir, why, sizeof why);
        fail_msg("with segment.bytes=4096 and retention.bytes=16384 the .log files take %" PRIu64
                 " bytes, the active segment's %lld of them: %s", total, asize, why);
    }
    assert_ok(close_t(t));
}

/* retention.bytes given to a writer reopening a topic that had none. */
static void test_retention_bytes_on_reopen(void **state)
{
    fx *f = *state;
    WATCHDOG(40);
    topic *t = create_with(f->dir, "segment.bytes", "4096", NULL);
    append_simple(t, 2000);
    assert_ok(close_t(t));
    uint64_t before = log_bytes(f->dir);
    assert_true(before > 4 * RB_KEEP);
    t = reopen_with(f->dir, 0, "retention.bytes", "16384", NULL);
    char why[160];
    if (!wait_retention(t, f->dir, 5000, UINT64_MAX, RB_KEEP + RB_SEG)) {
        describe_segments(f->dir, why, sizeof why);
        fail_msg("retention.bytes set on reopen did nothing within 5 s: %s", why);
    }
    /* Appending on keeps it bounded. */
    for (int round = 0; round < 10; round++)
        append_simple(t, 100);
    if (!wait_retention(t, f->dir, 5000, UINT64_MAX, RB_KEEP + 2 * RB_SEG)) {
        describe_segments(f->dir, why, sizeof why);
        fail_msg("after 1000 more appends, retention did not bound the log within 5 s: %s "
                 "(start %" PRIu64 ")", why, topic_start_offset(t));
    }
    assert_read_kept(t, topic_start_offset(t), topic_end_offset(t));
    assert_ok(close_t(t));
}

/* Appends n records with explicit timestamp ts, in batches of 4. */
static void append_at(topic *t, uint64_t n, int64_t ts)
{
    unsigned char vals[4][MAXV];
    topic_record recs[4];
    while (n > 0) {
        uint64_t first = topic_end_offset(t);
        size_t k = n < 4 ? (size_t)n : 4;
        for (size_t i = 0; i < k; i++) {
            size_t len = val_len(first + i);
            tu_fill(first + i, SEED, vals[i], len);
            recs[i] = (topic_record){ 0, ts, NULL, 0, vals[i], len };
        }
        assert_ok(topic_append_batch(t, recs, k, NULL));
        n -= k;
    }
}

static void test_retention_ms(void **state)
{
    fx *f = *state;
    WATCHDOG(40);
    int64_t old = tu_now_ms() - 3600 * 1000;
    char why[160];

    /* Old records in several segments, then recent ones. */
    topic *t = create_with(f->dir, "segment.bytes", "4096", "retention.ms", "60000", NULL);
    append_at(t, 400, old);
    uint64_t recent = topic_end_offset(t);
    append_at(t, 100, tu_now_ms());
    uint64_t end = topic_end_offset(t);
    /* The flusher may be deleting old segments already; the one holding
     * the first recent record stays, and so is listed. */
    uint64_t *bases = NULL;
    int n = list_segments(f->dir, &bases);
    uint64_t want = bases[seg_of(bases, n, recent)];
    assert_true(want > 200);   /* several old segments before it */
    free(bases);
    if (!wait_retention(t, f->dir, 5000, want, 0)) {
        describe_segments(f->dir, why, sizeof why);
        fail_msg("retention.ms: expected start %" PRIu64 " (the segment of the first recent "
                 "record %" PRIu64 ") within 5 s; start %" PRIu64 ", %s", want, recent,
                 topic_start_offset(t), why);
    }
    tu_sleep_us(1300000);   /* a further pass of the flusher takes nothing more */
    assert_u64(topic_start_offset(t), want);
    assert_rc(read_simple(t, want - 1), TOPIC_EGONE);
    for (uint64_t o = want; o < end; o++)
        assert_read_simple(t, o);
    assert_ok(close_t(t));

    /* Only old records: everything but the active segment goes, again
     * after more old records arrive. */
    const char *dir2 = f->dir2;
    t = create_with(dir2, "segment.bytes", "4096", "retention.ms", "60000", NULL);
    uint64_t active = 0;
    for (int phase = 0; phase < 2; phase++) {
        append_at(t, 400, old);
        end = topic_end_offset(t);
        n = list_segments(dir2, &bases);
        assert_true(n >= 1);
        assert_true(bases[n - 1] > active + 200);   /* several segments on */
        active = bases[n - 1];
        free(bases);
        if (!wait_retention(t, dir2, 5000, active, 0)) {
            describe_segments(dir2, why, sizeof why);
            fail_msg("phase %d: retention.ms with only old records: expected start %" PRIu64
                     " (the active segment) within 5 s; start %" PRIu64 ", %s", phase, active,
                     topic_start_offset(t), why);
        }
    }
    tu_sleep_us(1300000);
    assert_int_equal(tu_count_suffix(dir2, ".log"), 1);
    assert_u64(topic_start_offset(t), active);
    for (uint64_t o = active; o < end; o++)
        assert_read_simple(t, o);
    append_simple(t, 2);
    assert_read_simple(t, end + 1);
    assert_ok(close_t(t));
    t = open_ok(dir2, 0, NULL);
    assert_u64(topic_start_offset(t), active);
    assert_u64(topic_end_offset(t), end + 2);
    assert_ok(close_t(t));
}

/* ======================================================================== */
/* 4. lz4                                                                    */
/* ======================================================================== */

enum { K_SINGLE, K_TEXT, K_RANDOM, K_BIG };

typedef struct lrec {
    unsigned char *key;        /* NULL: no key */
    size_t klen;
    unsigned char *val;
    size_t vlen;
    int64_t ts;                /* 0: appended as "now" */
    int kind;
} lrec;

typedef struct lmodel {
    lrec *r;
    size_t n, cap;
    int64_t now_lo, now_hi;    /* bounds of the "now" timestamps */
    int64_t ts_base;           /* explicit timestamps start here, after every "now" */
    uint64_t *batch_first;     /* first offsets of the random (raw) batches */
    size_t nbf;
    uint64_t *text_first;      /* first offsets of the text batches */
    size_t ntf;
} lmodel;

static lrec *lm_add(lmodel *m)
{
    if (m->n == m->cap) {
        m->cap = m->cap ? m->cap * 2 : 1024;
        m->r = realloc(m->r, m->cap * sizeof *m->r);
        assert_non_null(m->r);
    }
    lrec *r = &m->r[m->n++];
    memset(r, 0, sizeof *r);
    return r;
}

static void lm_free(lmodel *m)
{
    for (size_t i = 0; i < m->n; i++) {
        free(m->r[i].key);
        free(m->r[i].val);
    }
    free(m->r);
    free(m->batch_first);
    free(m->text_first);
    memset(m, 0, sizeof *m);
}

static unsigned char *dup_bytes(const void *p, size_t n)
{
    unsigned char *d = malloc(n ? n : 1);
    assert_non_null(d);
    if (n)
        memcpy(d, p, n);
    return d;
}

static const char *const actions[] = { "view", "click", "add-to-cart", "checkout", "search" };

/* A log-line-like value: compresses well. */
static size_t text_value(tu_rng *rng, uint64_t off, char *buf, size_t cap)
{
    int len = snprintf(buf, cap,
                       "{\"event\":%" PRIu64 ",\"user\":\"user-%04u\",\"action\":\"%s\","
                       "\"page\":\"/products/category-%02u/item-%05u\",\"referrer\":"
                       "\"https://www.example.com/products/category-%02u/\",\"agent\":"
                       "\"Mozilla/5.0 (X11; Linux x86_64)\"}",
                       off, (unsigned)tu_rng_below(rng, 50), actions[tu_rng_below(rng, 5)],
                       (unsigned)tu_rng_below(rng, 8), (unsigned)tu_rng_below(rng, 100000),
                       (unsigned)tu_rng_below(rng, 8));
    size_t n = (size_t)len;
    size_t pad = (size_t)tu_rng_below(rng, 200);
    while (pad-- > 0 && n + 1 < cap) {
        buf[n] = "padding "[n % 8];
        n++;
    }
    return n;
}

static void lz4_append_round(topic *t, lmodel *m, tu_rng *rng, bool text_only)
{
    int choice = text_only ? 0 : (int)tu_rng_below(rng, 10);
    uint64_t first = topic_end_offset(t);
    assert_u64(first, m->n);
    topic_record recs[64];
    if (choice <= 4) {
        /* A batch of text records, with keys of every kind and explicit,
         * not always increasing, timestamps. */
        size_t k = 2 + (size_t)tu_rng_below(rng, 40);
        m->text_first = realloc(m->text_first, (m->ntf + 1) * sizeof *m->text_first);
        assert_non_null(m->text_first);
        m->text_first[m->ntf++] = first;
        for (size_t i = 0; i < k; i++) {
            char buf[600], key[32];
            lrec *r = lm_add(m);
            size_t vl = text_value(rng, first + i, buf, sizeof buf);
            r->val = dup_bytes(buf, vl);
            r->vlen = vl;
            int kk = (int)tu_rng_below(rng, 4);
            if (kk == 1) {
                r->key = dup_bytes("", 0);   /* present, empty */
            } else if (kk >= 2) {
                int kl = snprintf(key, sizeof key, "user-%04u", (unsigned)tu_rng_below(rng, 50));
                r->key = dup_bytes(key, (size_t)kl);
                r->klen = (size_t)kl;
            }
            r->ts = m->ts_base + (int64_t)(first + i) * 3 + (int64_t)tu_rng_below(rng, 7) - 3;
            r->kind = K_TEXT;
            recs[i] = (topic_record){ 0, r->ts, r->key, r->klen, r->val, r->vlen };
        }
        uint64_t got = UINT64_MAX;
        assert_ok(topic_append_batch(t, recs, k, &got));
        assert_u64(got, first);
    } else if (choice <= 6) {
        /* One record alone, small or large and compressible. */
        char buf[2000];
        size_t vl;
        if (tu_rng_below(rng, 2)) {
            vl = (size_t)tu_rng_below(rng, 30);
            tu_fill(first, SEED, buf, vl);
        } else {
            vl = 300 + (size_t)tu_rng_below(rng, 1500);
            for (size_t i = 0; i < vl; i++)
                buf[i] = "abcabcabd-0123 "[i % 15];
        }
        lrec *r = lm_add(m);
        r->val = dup_bytes(buf, vl);
        r->vlen = vl;
        r->kind = K_SINGLE;
        int64_t lo = tu_now_ms();
        uint64_t got = UINT64_MAX;
        assert_ok(topic_append(t, r->val, vl, &got));
        int64_t hi = tu_now_ms();
        assert_u64(got, first);
        if (m->now_lo == 0 || lo < m->now_lo)
            m->now_lo = lo;
        if (hi > m->now_hi)
            m->now_hi = hi;
    } else if (choice <= 8) {
        /* Random bytes: lz4 does not pay, the batch is stored raw. */
        size_t k = 3 + (size_t)tu_rng_below(rng, 8);
        m->batch_first = realloc(m->batch_first, (m->nbf + 1) * sizeof *m->batch_first);
        assert_non_null(m->batch_first);
        m->batch_first[m->nbf++] = first;
        for (size_t i = 0; i < k; i++) {
            unsigned char buf[300], key[8];
            lrec *r = lm_add(m);
            size_t vl = 60 + (size_t)tu_rng_below(rng, 200);
            for (size_t j = 0; j < vl; j++)
                buf[j] = (unsigned char)tu_rng_next(rng);
            for (size_t j = 0; j < 8; j++)
                key[j] = (unsigned char)tu_rng_next(rng);
            r->val = dup_bytes(buf, vl);
            r->vlen = vl;
            r->key = dup_bytes(key, 8);
            r->klen = 8;
            r->ts = m->ts_base + (int64_t)(first + i) * 3;
            r->kind = K_RANDOM;
            recs[i] = (topic_record){ 0, r->ts, r->key, r->klen, r->val, r->vlen };
        }
        assert_ok(topic_append_batch(t, recs, k, NULL));
    } else {
        /* One large compressible record in a batch of two. */
        size_t vl = 20000 + (size_t)tu_rng_below(rng, 10000);
        unsigned char *buf = malloc(vl);
        assert_non_null(buf);
        for (size_t j = 0; j < vl; j++)
            buf[j] = (unsigned char)("0123456789abcdef"[(j / 7) % 16]);
        for (int i = 0; i < 2; i++) {
            lrec *r = lm_add(m);
            r->val = dup_bytes(buf, i ? 5 : vl);
            r->vlen = i ? 5 : vl;
            r->key = dup_bytes("big", 3);
            r->klen = 3;
            r->ts = m->ts_base + (int64_t)(first + (uint64_t)i) * 3;
            r->kind = K_BIG;
            recs[i] = (topic_record){ 0, r->ts, r->key, r->klen, r->val, r->vlen };
        }
        free(buf);
        assert_ok(topic_append_batch(t, recs, 2, NULL));
    }
}

static void lz4_check_record(const lmodel *m, uint64_t off, const topic_record *rec)
{
    const lrec *e = &m->r[off];
    if (rec->offset != off)
        fail_msg("record %" PRIu64 ": offset %" PRIu64, off, rec->offset);
    if (e->ts != 0 ? rec->timestamp != e->ts
                   : (rec->timestamp < m->now_lo || rec->timestamp > m->now_hi))
        fail_msg("record %" PRIu64 ": timestamp %" PRId64 ", expected %" PRId64
                 " (0: between %" PRId64 " and %" PRId64 ")", off, rec->timestamp, e->ts,
                 m->now_lo, m->now_hi);
    if ((e->key == NULL) != (rec->key == NULL) || rec->key_len != e->klen ||
        (e->klen && memcmp(rec->key, e->key, e->klen) != 0))
        fail_msg("record %" PRIu64 ": key differs (%s, %zu bytes; expected %s, %zu)", off,
                 rec->key ? "present" : "NULL", rec->key_len, e->key ? "present" : "NULL", e->klen);
    if (rec->value_len != e->vlen || (e->vlen && memcmp(rec->value, e->val, e->vlen) != 0))
        fail_msg("record %" PRIu64 " (kind %d): value differs (%zu bytes, expected %zu)", off,
                 e->kind, rec->value_len, e->vlen);
}

/* Every record, by topic_read and by cursors, and time seeks. */
static void lz4_verify(topic *t, const lmodel *m, tu_rng *rng)
{
    assert_u64(topic_end_offset(t), m->n);
    unsigned char *buf = malloc(40000);
    assert_non_null(buf);
    for (uint64_t o = 0; o < m->n; o++) {
        size_t len = SIZE_MAX;
        int rc = topic_read(t, o, buf, 40000, &len);
        if (rc != 0)
            fail_msg("topic_read(%" PRIu64 ") = %d (%s)", o, rc, topic_strerror(rc));
        if (len != m->r[o].vlen || (len && memcmp(buf, m->r[o].val, len) != 0))
            fail_msg("topic_read(%" PRIu64 ") returned the wrong bytes", o);
        if (len > 0 && o % 7 == 0) {
            size_t need = 0;
            assert_rc(topic_read(t, o, buf, len - 1, &need), TOPIC_ETOOSMALL);
            assert_int_equal(need, len);
        }
    }
    free(buf);
    topic_cursor *c = NULL;
    topic_record rec;
    assert_ok(topic_cursor_open(t, 0, &c));
    for (uint64_t o = 0; o < m->n; o++) {
        int rc = topic_cursor_next(c, &rec);
        if (rc != 0)
            fail_msg("cursor_next(%" PRIu64 ") = %d (%s)", o, rc, topic_strerror(rc));
        lz4_check_record(m, o, &rec);
    }
    assert_rc(topic_cursor_next(c, &rec), TOPIC_END);
    /* Positioned anywhere, in the middle of compressed batches too. */
    for (int i = 0; i < 200; i++) {
        uint64_t o = tu_rng_below(rng, m->n);
        assert_ok(topic_cursor_seek(c, o));
        for (uint64_t j = o; j < o + 3 && j < m->n; j++) {
            assert_ok(topic_cursor_next(c, &rec));
            lz4_check_record(m, j, &rec);
        }
    }
    /* Time seeks: the first record in offset order with ts >= target. */
    int64_t max_ts = m->ts_base;
    for (size_t i = 0; i < m->n; i++)
        if (m->r[i].ts > max_ts)
            max_ts = m->r[i].ts;
    for (int i = 0; i < 300; i++) {
        int64_t target;
        if (i == 0)
            target = 0;
        else if (i == 1)
            target = max_ts + 1;
        else if (i == 2)
            target = m->ts_base - 1000;
        else
            target = m->ts_base - 5 + (int64_t)tu_rng_below(rng, (uint64_t)(max_ts - m->ts_base) + 10);
        uint64_t want = m->n;
        for (uint64_t o = 0; o < m->n; o++) {
            /* "now" records lie below ts_base, every target here but 0 above them. */
            int64_t ts = m->r[o].ts ? m->r[o].ts : m->now_lo;
            if (ts >= target) {
                want = o;
                break;
            }
        }
        assert_ok(topic_cursor_seek_time(c, target));
        if (topic_cursor_offset(c) != want)
            fail_msg("seek_time(%" PRId64 ") went to %" PRIu64 ", expected %" PRIu64, target,
                     topic_cursor_offset(c), want);
        if (want < m->n) {
            assert_ok(topic_cursor_next(c, &rec));
            lz4_check_record(m, want, &rec);
        }
    }
    topic_cursor_close(c);
}

/* A batch as the format (lib/format.c) lays it out. */
struct binfo {
    uint64_t seg;              /* base of its segment file */
    size_t pos;                /* position in that file */
    uint32_t length, count;
    uint64_t base;
    uint16_t attr;
};

/* Walks the batches of every segment file of dir. */
static size_t walk_batches(const char *dir, struct binfo **out)
{
    uint64_t *bases = NULL;
    int n = list_segments(dir, &bases);
    struct binfo *v = NULL;
    size_t nv = 0, cap = 0;
    for (int i = 0; i < n; i++) {
        char *p = tu_segment_path(dir, bases[i], "log");
        unsigned char *d = NULL;
        size_t len = 0;
        assert_ok(tu_read_file(p, &d, &len));
        size_t pos = 0;
        while (pos + 48 <= len && get_le32(d + pos) == 0x31425054u) {
            struct binfo b = { bases[i], pos, get_le32(d + pos + 4), get_le32(d + pos + 24),
                               get_le64(d + pos + 16), (uint16_t)(d[pos + 28] | d[pos + 29] << 8) };
            assert_true(b.length >= 51 && pos + b.length <= len);
            if (nv == cap) {
                cap = cap ? cap * 2 : 256;
                v = realloc(v, cap * sizeof *v);
                assert_non_null(v);
            }
            v[nv++] = b;
            pos += b.length;
        }
        free(d);
        free(p);
    }
    free(bases);
    *out = v;
    return nv;
}

static void test_lz4_round_trip(void **state)
{
    fx *f = *state;
    WATCHDOG(60);
    topic *t = create_with(f->dir, "compression.type", "lz4", "segment.bytes", "65536", NULL);
    lmodel m = { 0 };
    m.ts_base = (tu_now_ms() / 1000 + 86400) * 1000;   /* a day ahead of every "now" */
    tu_rng rng;
    tu_rng_seed(&rng, 2024);
    for (int i = 0; i < 150; i++)
        lz4_append_round(t, &m, &rng, false);
    /* A read-only handle opened half-way follows the rest. */
    topic *r = open_ok(f->dir, TOPIC_RDONLY, NULL);
    for (int i = 0; i < 150; i++)
        lz4_append_round(t, &m, &rng, false);
    lz4_verify(t, &m, &rng);
    lz4_verify(r, &m, &rng);
    assert_ok(close_t(r));
    assert_ok(close_t(t));

    /* The file layout: text batches compressed, random ones raw. */
    struct binfo *b = NULL;
    size_t nb = walk_batches(f->dir, &b);
    size_t lz = 0, raw = 0;
    for (size_t i = 0; i < nb; i++) {
        if ((b[i].attr & 7) == 1)
            lz++;
        else if ((b[i].attr & 7) == 0)
            raw++;
        else
            fail_msg("batch %" PRIu64 " has attributes %#x", b[i].base, b[i].attr);
        for (size_t j = 0; j < m.nbf; j++)
            if (b[i].base == m.batch_first[j] && (b[i].attr & 7) != 0)
                fail_msg("the batch of random records at %" PRIu64 " was stored compressed",
                         b[i].base);
        for (size_t j = 0; j < m.ntf; j++)
            if (b[i].base == m.text_first[j] && (b[i].attr & 7) != 1)
                fail_msg("the batch of %u text records at %" PRIu64 " was stored raw", b[i].count,
                         b[i].base);
    }
    assert_true(lz > 50);
    assert_true(raw > 20);
    free(b);

    /* Reopened: writer, then read-only, then appending more. */
    t = open_ok(f->dir, 0, NULL);
    lz4_verify(t, &m, &rng);
    for (int i = 0; i < 30; i++)
        lz4_append_round(t, &m, &rng, false);
    lz4_verify(t, &m, &rng);
    assert_ok(close_t(t));
    r = open_ok(f->dir, TOPIC_RDONLY, NULL);
    lz4_verify(r, &m, &rng);
    assert_ok(close_t(r));
    lm_free(&m);
}

static void test_lz4_smaller(void **state)
{
    fx *f = *state;
    WATCHDOG(40);
    const char *dn = f->dir, *dl = f->dir2;
    topic *tn = create_with(dn, "compression.type", "none", NULL);
    topic *tl = create_with(dl, "compression.type", "lz4", NULL);
    lmodel mn = { 0 }, ml = { 0 };
    mn.ts_base = ml.ts_base = (tu_now_ms() / 1000 + 86400) * 1000;
    tu_rng r1, r2;
    tu_rng_seed(&r1, 7);
    tu_rng_seed(&r2, 7);
    for (int i = 0; i < 200; i++) {
        lz4_append_round(tn, &mn, &r1, true);
        lz4_append_round(tl, &ml, &r2, true);
    }
    assert_ok(close_t(tn));
    assert_ok(close_t(tl));
    uint64_t bn = log_bytes(dn), bl = log_bytes(dl);
    print_message("lz4: %" PRIu64 " bytes against %" PRIu64 " uncompressed (%.1f%%)\n", bl, bn,
                  100.0 * (double)bl / (double)bn);
    if (!(bl < bn))
        fail_msg("lz4 log is %" PRIu64 " bytes, uncompressed %" PRIu64, bl, bn);
    if (bl * 2 > bn)
        fail_msg("lz4 saved too little on repetitive text: %" PRIu64 " of %" PRIu64, bl, bn);
    tu_rng r3;
    tu_rng_seed(&r3, 8);
    tl = open_ok(dl, TOPIC_RDONLY, NULL);
    lz4_verify(tl, &ml, &r3);
    assert_ok(close_t(tl));
    lm_free(&mn);
    lm_free(&ml);
}

/* Every record of the batch at b reads as TOPIC_ECORRUPT, by topic_read and
 * by cursors; the records around it read right. */
static void expect_batch_corrupt(topic *t, const lmodel *m, const struct binfo *b, const char *what)
{
    unsigned char *buf = malloc(40000);
    assert_non_null(buf);
    size_t len;
    for (uint64_t o = b->base; o < b->base + b->count; o++) {
        int rc = topic_read(t, o, buf, 40000, &len);
        if (rc == 0 && len == m->r[o].vlen && memcmp(buf, m->r[o].val, len) == 0)
            fail_msg("%s: topic_read(%" PRIu64 ") of a damaged batch returned the record", what, o);
        if (rc != TOPIC_ECORRUPT)
            fail_msg("%s: topic_read(%" PRIu64 ") = %d (%s), expected TOPIC_ECORRUPT", what, o,
                     rc, rc == 0 ? "wrong bytes" : topic_strerror(rc));
    }
    topic_cursor *c = NULL;
    topic_record rec;
    uint64_t from = b->base >= 5 ? b->base - 5 : 0;
    assert_ok(topic_cursor_open(t, from, &c));
    for (uint64_t o = from; o < b->base; o++) {
        assert_ok(topic_cursor_next(c, &rec));
        lz4_check_record(m, o, &rec);
    }
    int rc = topic_cursor_next(c, &rec);
    if (rc != TOPIC_ECORRUPT)
        fail_msg("%s: cursor_next at the damaged batch %" PRIu64 " = %d (%s)", what, b->base, rc,
                 topic_strerror(rc));
    assert_u64(topic_cursor_offset(c), b->base);   /* stays on the damaged record */
    assert_rc(topic_cursor_next(c, &rec), TOPIC_ECORRUPT);
    uint64_t after = b->base + b->count;
    if (after < m->n) {
        assert_ok(topic_cursor_seek(c, after));
        assert_ok(topic_cursor_next(c, &rec));
        lz4_check_record(m, after, &rec);
        rc = topic_read(t, after, buf, 40000, &len);
        if (rc != 0)
            fail_msg("%s: the record after the damaged batch: %d (%s)", what, rc, topic_strerror(rc));
    }
    topic_cursor_close(c);
    free(buf);
}

static void reseal(unsigned char *batch, uint32_t length)
{
    put_le64(batch + 8, XXH3_64bits_withSeed(batch + 16, length - 16, get_le64(batch)));
}

static void test_lz4_corrupt(void **state)
{
    fx *f = *state;
    WATCHDOG(60);
    topic *t = create_with(f->dir, "compression.type", "lz4", "segment.bytes", "16384", NULL);
    lmodel m = { 0 };
    m.ts_base = (tu_now_ms() / 1000 + 86400) * 1000;
    tu_rng rng;
    tu_rng_seed(&rng, 31);
    for (int i = 0; i < 60; i++)
        lz4_append_round(t, &m, &rng, true);
    assert_ok(close_t(t));
    struct binfo *b = NULL;
    size_t nb = walk_batches(f->dir, &b);
    uint64_t *bases = NULL;
    int nseg = list_segments(f->dir, &bases);
    assert_true(nseg >= 3);
    uint64_t last = bases[nseg - 1];
    free(bases);
    /* A compressed batch in a sealed segment and one in the last segment,
     * neither the very first nor the very last batch. */
    const struct binfo *pick[2] = { NULL, NULL };
    for (size_t i = 1; i + 1 < nb; i++) {
        if ((b[i].attr & 7) != 1 || b[i].count < 2)
            continue;
        if (b[i].seg != last && pick[0] == NULL && b[i].seg != 0)
            pick[0] = &b[i];
        if (b[i].seg == last && b[i].pos > 0)
            pick[1] = &b[i];
    }
    assert_non_null(pick[0]);
    assert_non_null(pick[1]);

    char *copy = tu_path(f->root, "copy");
    for (int which = 0; which < 2; which++) {
        const struct binfo *bi = pick[which];
        char *seg = NULL;
        /* Damage: a flipped bit in the compressed block, in the header's
         * count, and a raw length that lies (checksum recomputed, so only
         * the decompression can tell). */
        for (int kind = 0; kind < 4; kind++) {
            tu_rmrf(copy);
            assert_ok(tu_copy_dir(f->dir, copy));
            seg = tu_segment_path(copy, bi->seg, "log");
            unsigned char *d = NULL;
            size_t len = 0;
            assert_ok(tu_read_file(seg, &d, &len));
            unsigned char *p = d + bi->pos;
            const char *what = "";
            switch (kind) {
            case 0:
                p[48 + 4 + (bi->length - 52) / 2] ^= 0x10;
                what = "bit flipped in the lz4 block";
                break;
            case 1:
                p[48 + 4 + (bi->length - 52) - 1] ^= 0x01;
                what = "last byte of the lz4 block flipped";
                break;
            case 2:
                put_le32(p + 48, get_le32(p + 48) + 1);
                reseal(p, bi->length);
                what = "raw length one too large, checksum recomputed";
                break;
            case 3:
                put_le32(p + 48, get_le32(p + 48) - 1);
                reseal(p, bi->length);
                what = "raw length one too small, checksum recomputed";
                break;
            }
            assert_ok(tu_overwrite_file(seg, d, len));
            free(d);
            char msg[160];
            snprintf(msg, sizeof msg, "%s segment, %s", which ? "last" : "sealed", what);
            topic *w = open_ok(copy, 0, NULL);
            expect_batch_corrupt(w, &m, bi, msg);
            assert_ok(close_t(w));
            if (which == 0) {
                topic *r = open_ok(copy, TOPIC_RDONLY, NULL);
                expect_batch_corrupt(r, &m, bi, msg);
                assert_ok(close_t(r));
            }
            free(seg);
        }
    }
    free(copy);
    free(b);
    lm_free(&m);
}

/* A read-only handle opening a topic whose last segment has a damaged
 * compressed batch in the middle: the records there are corrupt, not
 * missing, and the end offset is the writer's. */
static void test_lz4_corrupt_rdonly_last_segment(void **state)
{
    fx *f = *state;
    WATCHDOG(30);
    topic *t = create_with(f->dir, "compression.type", "lz4", NULL);
    lmodel m = { 0 };
    m.ts_base = (tu_now_ms() / 1000 + 86400) * 1000;
    tu_rng rng;
    tu_rng_seed(&rng, 32);
    for (int i = 0; i < 20; i++)
        lz4_append_round(t, &m, &rng, true);
    assert_ok(close_t(t));
    struct binfo *b = NULL;
    size_t nb = walk_batches(f->dir, &b);
    const struct binfo *bi = NULL;
    for (size_t i = nb / 2; i + 1 < nb && bi == NULL; i++)
        if ((b[i].attr & 7) == 1 && b[i].count >= 2)
            bi = &b[i];
    assert_non_null(bi);
    char *seg = tu_segment_path(f->dir, bi->seg, "log");
    assert_ok(tu_flip_bit(seg, (off_t)(bi->pos + 48 + 4 + (bi->length - 52) / 2), 3));
    free(seg);
    topic *r = open_ok(f->dir, TOPIC_RDONLY, NULL);
    uint64_t end = topic_end_offset(r), bbase = bi->base;
    size_t total = m.n;
    if (end != total) {
        free(b);
        lm_free(&m);
    }
    if (end != total)
        fail_msg("a read-only handle reports end offset %" PRIu64 " (the writer appended %zu): "
                 "the damaged batch at %" PRIu64 " hides it and everything after it", end, total,
                 bbase);
    expect_batch_corrupt(r, &m, bi, "read-only, last segment");
    assert_ok(close_t(r));
    free(b);
    lm_free(&m);
}

/* The offsets [*lo, *hi) of the sealed batch that holds offset `off`:
 * consecutive appends share batches, and damage to one reaches them all. */
static void batch_span(const char *dir, uint64_t off, uint64_t *lo, uint64_t *hi)
{
    struct binfo *b = NULL;
    size_t nb = walk_batches(dir, &b);
    *lo = *hi = UINT64_MAX;
    for (size_t i = 0; i < nb; i++)
        if (b[i].base <= off && off < b[i].base + b[i].count) {
            *lo = b[i].base;
            *hi = b[i].base + b[i].count;
        }
    free(b);
    assert_true(*lo != UINT64_MAX);
}

/* Flips bit `bit` of the byte `at` bytes into the batch that holds offset
 * `off` (from its end when `at` is negative: -1 is its last byte). */
static void flip_in_batch(const char *dir, uint64_t off, long at, int bit)
{
    struct binfo *b = NULL;
    size_t nb = walk_batches(dir, &b);
    const struct binfo *bi = NULL;
    for (size_t i = 0; i < nb && bi == NULL; i++)
        if (b[i].base <= off && off < b[i].base + b[i].count)
            bi = &b[i];
    assert_non_null(bi);
    char *seg = tu_segment_path(dir, bi->seg, "log");
    off_t pos = (off_t)bi->pos + (at < 0 ? (off_t)bi->length + at : at);
    assert_ok(tu_flip_bit(seg, pos, bit));
    free(seg);
    free(b);
}

/*
 * A writer is live and a read-only handle follows it.  A batch of the active
 * segment is damaged past where the reader has walked.  The writer had
 * published it whole, so the reader gets TOPIC_ECORRUPT there, sees the
 * writer's end offset, reads the records on either side, and does not wait
 * at the damage for ever.  A live area written in another boot is not
 * vouched for (a power loss may have kept it and lost the log's tail), so
 * there the log ends at the damage, as a dead writer's torn tail would.
 */
static void test_corrupt_live_active_rdonly(void **state)
{
    fx *f = *state;
    WATCHDOG(30);
    topic *w = create_with(f->dir, "segment.bytes", "67108864", NULL);
    append_simple(w, 100);
    topic *r = open_ok(f->dir, TOPIC_RDONLY, NULL);
    assert_u64(topic_end_offset(r), 100);
    append_simple(w, 100);   /* 100-199: the reader has not walked them */
    assert_ok(topic_sync(w));   /* which seals the batch appends were sharing */
    /* The batch holding 150, which may hold its neighbours too. */
    uint64_t lo, hi;
    batch_span(f->dir, 150, &lo, &hi);
    assert_true(lo > 110 && hi < 200);
    flip_in_batch(f->dir, 150, -1, 2);   /* its last byte */
    append_simple(w, 50);

    assert_u64(topic_end_offset(r), 250);
    for (uint64_t o = 100; o < lo; o++)
        assert_read_simple(r, o);
    for (uint64_t o = lo; o < hi; o++)
        assert_int_equal(read_simple(r, o), TOPIC_ECORRUPT);
    for (uint64_t o = hi; o < 250; o++)
        assert_read_simple(r, o);   /* its header still leads past it */
    assert_ok(topic_wait(r, 150, 0));
    topic_cursor *c = NULL;
    topic_record rec;
    assert_ok(topic_cursor_open(r, lo - 10, &c));
    for (uint64_t o = lo - 10; o < lo; o++) {
        assert_ok(topic_cursor_next(c, &rec));
        assert_true(rec_simple_ok(&rec, o));
    }
    assert_int_equal(topic_cursor_next(c, &rec), TOPIC_ECORRUPT);
    assert_int_equal(topic_cursor_next(c, &rec), TOPIC_ECORRUPT);   /* not skipped silently */
    assert_ok(topic_cursor_seek(c, hi));
    for (uint64_t o = hi; o < 250; o++) {
        assert_ok(topic_cursor_next(c, &rec));
        assert_true(rec_simple_ok(&rec, o));
    }
    assert_int_equal(topic_cursor_next(c, &rec), TOPIC_END);
    topic_cursor_close(c);
    assert_ok(close_t(r));

    /* The same live area, as if left by a writer before a reboot. */
    char *state_path = tu_path(f->dir, "topic.state");
    unsigned char *state_bytes;
    size_t state_len;
    assert_ok(tu_read_file(state_path, &state_bytes, &state_len));
    assert_true(state_len >= 120);
    memset(state_bytes + 104, 0xa5, 16);   /* the live area's boot id */
    assert_ok(tu_overwrite_file(state_path, state_bytes, state_len));
    free(state_bytes);
    free(state_path);
    r = open_ok(f->dir, TOPIC_RDONLY, NULL);
    assert_u64(topic_end_offset(r), lo);
    assert_int_equal(read_simple(r, lo), TOPIC_END);
    assert_read_simple(r, lo - 1);
    assert_ok(close_t(r));
    assert_ok(close_t(w));
}

/* Flips a bit of the base offset in the header of the batch that holds
 * offset `off`: a walk of headers from the segment's start stops there. */
static void break_header_at(const char *dir, uint64_t off)
{
    flip_in_batch(dir, off, 16, 3);
}

/* Reads every offset below n through both handles: they must agree on
 * each one, and r must read all but at most `bad` of them. */
static void assert_reads_agree(topic *r, topic *w, uint64_t n, uint64_t bad)
{
    uint64_t corrupt = 0;
    for (uint64_t o = 0; o < n; o++) {
        int rr = read_simple(r, o), rw = read_simple(w, o);
        if (rr != rw)
            fail_msg("offset %" PRIu64 ": read-only handle %d, writer %d", o, rr, rw);
        if (rr == 0)
            assert_read_simple(r, o);
        else
            assert_int_equal(rr, TOPIC_ECORRUPT);
        corrupt += rr != 0;
    }
    assert_true(corrupt >= 1 && corrupt <= bad);
}

/*
 * A read-only handle starts its index of the active segment from the
 * writer's index files, as the writer does, both after a clean close and
 * while a writer of this boot runs; it then walks only the batches after
 * their last entry.  So with a header broken in the middle of the segment,
 * it reads what the writer reads: TOPIC_ECORRUPT in that batch's stretch of
 * the index, the records after it byte for byte.  (Walking from the start,
 * it stopped at the broken header and reported every later record
 * TOPIC_ECORRUPT.)  Index files that do not lead to the end are dropped
 * and the segment walked whole, and the handle follows later appends.
 */
/* A writer killed inside its update of the area of topic.state where it
 * publishes its position (doc/FORMAT.md) leaves that area's sequence number
 * odd until the next writer opens, and readers cannot take a consistent
 * view of it.  The start offset is published alone, and only once it is
 * durable, so a reader must still follow it: deleted records read as
 * TOPIC_EGONE and the records above the start read back.  Readers used to
 * keep their old start offset and read deleted records, or report them
 * TOPIC_EGONE at their own start offset. */
static void test_rdonly_start_after_torn_publish(void **state)
{
    fx *f = *state;
    WATCHDOG(60);
    topic *w = create_with(f->dir, "segment.bytes", "4096", NULL);
    append_simple(w, 400);
    topic *r = open_ok(f->dir, TOPIC_RDONLY, NULL);
    assert_u64(topic_end_offset(r), 400);
    for (uint64_t off = 0; off < 400; off++)
        assert_read_simple(r, off);   /* every segment loaded and mapped */
    topic_cursor *c = NULL;
    topic_record rec;
    assert_ok(topic_cursor_open(r, 100, &c));
    assert_ok(topic_cursor_next(c, &rec));
    assert_true(rec_simple_ok(&rec, 100));

    assert_ok(topic_delete_before(w, 200));
    /* Make the sequence odd, as the killed writer would have left it. */
    uint32_t seq = 0;
    file_bytes(f->dir, "topic.state", 64, &seq, sizeof seq, false);
    seq |= 1;
    file_bytes(f->dir, "topic.state", 64, &seq, sizeof seq, true);

    assert_u64(topic_start_offset(r), 200);
    unsigned char buf[MAXV + 1];
    size_t len;
    assert_rc(topic_read(r, 150, buf, sizeof buf, &len), TOPIC_EGONE);
    assert_rc(topic_read(r, 199, buf, sizeof buf, &len), TOPIC_EGONE);
    assert_rc(topic_cursor_next(c, &rec), TOPIC_EGONE);
    assert_ok(topic_cursor_seek(c, topic_start_offset(r)));
    for (uint64_t off = 200; off < 400; off++) {
        assert_ok(topic_cursor_next(c, &rec));
        assert_true(rec_simple_ok(&rec, off));
    }
    assert_read_simple(r, 200);
    topic_cursor_close(c);

    /* The writer's next publish makes the sequence even again, and the
     * reader follows it as before. */
    append_simple(w, 10);
    assert_ok(topic_wait(r, 409, 10000));
    assert_u64(topic_end_offset(r), 410);
    assert_read_simple(r, 409);
    assert_ok(close_t(r));
    assert_ok(close_t(w));
}

/* A writer stores a new start offset in topic.state's record (bytes 48-55)
 * before it syncs it, publishes it to readers and removes files, and a
 * writer that opens after a crash removes the files below it before its
 * first publication.  Readers hold to that stored value too: a writer
 * killed between the store and the publication used to leave them at the
 * old start offset, reading records the next writer deletes at its open,
 * and reporting those of removed files TOPIC_ECORRUPT. */
static void test_rdonly_start_stored_not_published(void **state)
{
    fx *f = *state;
    WATCHDOG(60);
    topic *w = create_with(f->dir, "segment.bytes", "4096", NULL);
    append_simple(w, 400);
    assert_ok(close_t(w));
    topic *r = open_ok(f->dir, TOPIC_RDONLY, NULL);
    for (uint64_t off = 0; off < 400; off += 7)
        assert_read_simple(r, off);
    /* What the killed writer left: the record's start offset, nothing else,
     * killed before it stored the value's check (bytes 120-127), which it
     * clears first. */
    uint64_t start = 200, no_check = 0;
    file_bytes(f->dir, "topic.state", 120, &no_check, sizeof no_check, true);
    file_bytes(f->dir, "topic.state", 48, &start, sizeof start, true);
    assert_u64(topic_start_offset(r), 200);
    unsigned char buf[MAXV + 1];
    size_t len;
    assert_rc(topic_read(r, 150, buf, sizeof buf, &len), TOPIC_EGONE);
    assert_read_simple(r, 200);
    /* The next writer agrees, removes the files below it, and goes on. */
    w = open_ok(f->dir, 0, NULL);
    assert_u64(topic_start_offset(w), 200);
    append_simple(w, 10);
    assert_ok(topic_wait(r, 409, 10000));
    assert_rc(topic_read(r, 150, buf, sizeof buf, &len), TOPIC_EGONE);
    for (uint64_t off = 200; off < 410; off++)
        assert_read_simple(r, off);
    assert_ok(close_t(w));
    assert_ok(close_t(r));
}

/* A reader opened while a writer creates the topic.  Until the writer has
 * written topic.state's header, the directory holds a short or zeroed
 * topic.state and no segment; a read-only open may succeed then, and must
 * follow the records the writer appends afterwards, as topic_open(3)
 * promises.  It used to stay at end offset 0 for good. */
struct creator {
    const char *dir;
    topic *t;
    int rc;
};

static void *create_thread(void *arg)
{
    struct creator *c = arg;
    c->rc = topic_open(c->dir, TOPIC_CREATE, NULL, &c->t);
    return NULL;
}

/* r must come to see every record of w, by waiting, reading and a cursor. */
static void assert_follows(topic *r, topic *w)
{
    uint64_t end = topic_end_offset(w);
    assert_ok(topic_wait(r, end - 1, 10000));
    assert_u64(topic_end_offset(r), end);
    topic_cursor *c = NULL;
    assert_ok(topic_cursor_open(r, 0, &c));
    topic_record rec;
    for (uint64_t off = 0; off < end; off++) {
        assert_ok(topic_cursor_next(c, &rec));
        if (!rec_simple_ok(&rec, off))
            fail_msg("the follower's cursor read the wrong record at %" PRIu64, off);
    }
    assert_rc(topic_cursor_next(c, &rec), TOPIC_END);
    topic_cursor_close(c);
    assert_read_simple(r, end - 1);
}

static void test_rdonly_open_during_creation(void **state)
{
    fx *f = *state;
    WATCHDOG(120);
    /* The two states a creating writer passes through, made by hand: an
     * empty topic.state (just created), then one of its full size that is
     * still zeros (sized, header not yet written). */
    for (int stage = 0; stage < 2; stage++) {
        char *dir = tu_path(f->root, stage ? "sized" : "empty");
        assert_int_equal(mkdir(dir, 0755), 0);
        char *state_path = tu_path(dir, "topic.state");
        int fd = open(state_path, O_RDWR | O_CREAT | O_EXCL, 0644);
        assert_true(fd >= 0);
        if (stage == 1)
            assert_int_equal(ftruncate(fd, 4096), 0);
        close(fd);
        topic *r = open_ok(dir, TOPIC_RDONLY, NULL);
        assert_u64(topic_end_offset(r), 0);
        assert_rc(topic_wait(r, 0, 0), -ETIMEDOUT);
        /* The writer finishes the creation; small segments make it roll
         * while the reader follows. */
        topic *w = reopen_with(dir, 0, "segment.bytes", "8192", NULL);
        append_simple(w, 10);
        assert_follows(r, w);
        append_simple(w, 2000);
        uint64_t *bases = NULL;
        assert_true(list_segments(dir, &bases) > 3);
        free(bases);
        assert_follows(r, w);
        assert_ok(close_t(w));
        append_simple(w = open_ok(dir, 0, NULL), 5);
        assert_follows(r, w);
        assert_ok(close_t(w));
        assert_ok(close_t(r));
        free(state_path);
        free(dir);
    }

    /* The race itself, as a consumer that retries its open meets it: one
     * thread creates the topic while this one opens it read-only as soon
     * as the open stops failing with -ENOENT. */
    for (int i = 0; i < 20; i++) {
        char name[32];
        snprintf(name, sizeof name, "race%d", i);
        char *dir = tu_path(f->root, name);
        struct creator c = { dir, NULL, -1 };
        pthread_t th;
        assert_int_equal(pthread_create(&th, NULL, create_thread, &c), 0);
        topic *r = NULL;
        int rc;
        while ((rc = topic_open(dir, TOPIC_RDONLY, NULL, &r)) == -ENOENT)
            ;
        assert_ok(rc);
        track(r);
        assert_int_equal(pthread_join(th, NULL), 0);
        assert_ok(c.rc);
        track(c.t);
        append_simple(c.t, 10);
        assert_follows(r, c.t);
        assert_ok(close_t(c.t));
        assert_ok(close_t(r));
        free(dir);
    }
}

static void test_rdonly_open_uses_index_files(void **state)
{
    fx *f = *state;
    WATCHDOG(60);
    topic *w = create_with(f->dir, "index.interval.bytes", "1024", NULL);
    append_simple(w, 2000);
    assert_ok(close_t(w));
    break_header_at(f->dir, 500);
    topic *r = open_ok(f->dir, TOPIC_RDONLY, NULL);
    w = open_ok(f->dir, 0, NULL);
    assert_u64(topic_end_offset(r), 2000);
    assert_reads_agree(r, w, 2000, 40);
    append_simple(w, 100);
    assert_u64(topic_end_offset(r), 2100);
    assert_read_simple(r, 2099);
    assert_ok(close_t(r));

    /* The same segment while its writer runs: before the close, a
     * broken header, and appends after it. */
    break_header_at(f->dir, 1500);
    append_simple(w, 100);
    r = open_ok(f->dir, TOPIC_RDONLY, NULL);
    assert_u64(topic_end_offset(r), 2200);
    assert_reads_agree(r, w, 2200, 80);
    assert_ok(close_t(r));
    assert_ok(close_t(w));

    /* A last entry, in both files alike, that points into a batch: the
     * walk from it fails, and the handle walks the whole segment. */
    char *dir2 = tu_path(f->dir, "second");
    w = create_with(dir2, "index.interval.bytes", "1024", NULL);
    append_simple(w, 1999);
    tu_sleep_us(3000);   /* the last record is the newest, after every index entry */
    append_simple(w, 1);
    assert_ok(close_t(w));
    const char *ext[2] = { "index", "timeindex" };
    for (int i = 0; i < 2; i++) {
        char *path = tu_segment_path(dir2, 0, ext[i]);
        unsigned char *data;
        size_t len;
        assert_ok(tu_read_file(path, &data, &len));
        assert_true(len >= 32);
        data[len - 4]++;   /* the last entry's position, low byte */
        assert_ok(tu_overwrite_file(path, data, len));
        free(data);
        free(path);
    }
    r = open_ok(dir2, TOPIC_RDONLY, NULL);
    assert_u64(topic_end_offset(r), 2000);
    for (uint64_t o = 0; o < 2000; o++)
        assert_read_simple(r, o);
    /* The walk of the whole segment also found the newest timestamp. */
    topic_record rec;
    topic_cursor *c = NULL;
    assert_ok(topic_cursor_open(r, 1999, &c));
    assert_ok(topic_cursor_next(c, &rec));
    assert_ok(topic_cursor_seek_time(c, rec.timestamp));
    assert_u64(topic_cursor_offset(c), 1999);
    topic_cursor_close(c);
    assert_ok(close_t(r));
    free(dir2);
}

/* ======================================================================== */
/* 5. A producer and two consumer processes                                  */
/* ======================================================================== */

#define PC_VALUE 20
#define PC_BATCH 100
#define PC_COMMIT 1000
#define PC_MAX_KILLS 16

struct pc_report {
    _Atomic uint64_t pos;        /* the next offset this run will consume */
    _Atomic uint64_t acked;      /* the last position whose commit returned */
    _Atomic uint64_t run_start;  /* where this run started; UINT64_MAX until known */
    _Atomic uint32_t runs;
    _Atomic uint32_t done;
    _Atomic uint64_t waits;      /* topic_wait calls (the consumer had caught up) */
    char msg[256];
};

static void pc_value(uint64_t off, unsigned char v[PC_VALUE])
{
    uint64_t a = tu_mix64(off ^ 0xfeedfacecafebeefull);
    put_le64(v, off);
    put_le64(v + 8, a);
    put_le32(v + 16, (uint32_t)(a >> 13) ^ (uint32_t)off);
}

static struct pc_report *pc_map(const char *path)
{
    int fd = open(path, O_RDWR);
    if (fd < 0)
        return NULL;
    void *p = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    close(fd);
    return p == MAP_FAILED ? NULL : p;
}

static int pc_fail(struct pc_report *rp, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(rp->msg, sizeof rp->msg, fmt, ap);
    va_end(ap);
    return code;
}

/* The producer appends n records in batches of PC_BATCH, at most `rate`
 * records a second (0: as fast as it can). */
static int child_producer(const char *dir, const char *report, uint64_t n, uint64_t rate)
{
    struct pc_report *rp = pc_map(report);
    if (rp == NULL)
        return 50;
    topic *t = NULL;
    int rc = topic_open(dir, 0, NULL, &t);
    if (rc != 0)
        return pc_fail(rp, 51, "producer: open: %s", topic_strerror(rc));
    unsigned char vals[PC_BATCH][PC_VALUE];
    topic_record recs[PC_BATCH];
    /* A restarted producer goes on where the log ends, which must hold
     * every batch its predecessor was told had been appended. */
    uint64_t off = topic_end_offset(t), acked = atomic_load(&rp->pos);
    atomic_fetch_add(&rp->runs, 1);
    if (off < acked)
        return pc_fail(rp, 52, "producer: the log ends at %" PRIu64 " but %" PRIu64
                       " records had been appended", off, acked);
    uint64_t off0 = off, t_start = tu_mono_us();
    while (off < n) {
        if (rate > 0) {
            uint64_t due = (off - off0) * 1000000u / rate, el = tu_mono_us() - t_start;
            if (due > el + 1000)
                tu_sleep_us(due - el);
        }
        size_t k = n - off < PC_BATCH ? (size_t)(n - off) : PC_BATCH;
        for (size_t i = 0; i < k; i++) {
            pc_value(off + i, vals[i]);
            recs[i] = (topic_record){ 0, 0, NULL, 0, vals[i], PC_VALUE };
        }
        uint64_t first = 0;
        rc = topic_append_batch(t, recs, k, &first);
        if (rc != 0 || first != off)
            return pc_fail(rp, 53, "producer: append at %" PRIu64 ": %s", off, topic_strerror(rc));
        off += k;
        atomic_store_explicit(&rp->pos, off, memory_order_relaxed);
    }
    rc = topic_close(t);
    if (rc != 0)
        return pc_fail(rp, 54, "producer: close: %s", topic_strerror(rc));
    atomic_store(&rp->done, 1);
    return 0;
}

static int child_consumer(const char *dir, const char *group, const char *report, uint64_t n)
{
    struct pc_report *rp = pc_map(report);
    if (rp == NULL)
        return 60;
    topic *t = NULL;
    int rc = topic_open(dir, TOPIC_RDONLY, NULL, &t);
    if (rc != 0)
        return pc_fail(rp, 61, "%s: open: %s", group, topic_strerror(rc));
    uint64_t start = 0;
    rc = topic_committed(t, group, &start);
    if (rc == -ENOENT)
        start = 0;
    else if (rc != 0)
        return pc_fail(rp, 62, "%s: committed: %s", group, topic_strerror(rc));
    /* In this order: the parent kills only once pos has moved. */
    atomic_fetch_add(&rp->runs, 1);
    atomic_store(&rp->run_start, start);
    atomic_store(&rp->pos, start);
    if (start > n || (start % PC_COMMIT != 0 && start != n))
        return pc_fail(rp, 63, "%s: committed position %" PRIu64 " was never committed", group,
                       start);
    topic_cursor *c = NULL;
    rc = topic_cursor_open(t, start, &c);
    if (rc != 0)
        return pc_fail(rp, 64, "%s: cursor_open(%" PRIu64 "): %s", group, start, topic_strerror(rc));
    uint64_t expect = start;
    unsigned char want[PC_VALUE];
    topic_record rec;
    while (expect < n) {
        rc = topic_cursor_next(c, &rec);
        if (rc == TOPIC_END) {
            atomic_fetch_add_explicit(&rp->waits, 1, memory_order_relaxed);
            rc = topic_wait(t, expect, 2000);
            if (rc != 0 && rc != -ETIMEDOUT)
                return pc_fail(rp, 65, "%s: wait(%" PRIu64 "): %s", group, expect, topic_strerror(rc));
            continue;
        }
        if (rc != 0)
            return pc_fail(rp, 66, "%s: cursor_next(%" PRIu64 "): %s", group, expect,
                           topic_strerror(rc));
        if (rec.offset != expect)
            return pc_fail(rp, 67, "%s: expected offset %" PRIu64 ", got %" PRIu64 " (run from %"
                           PRIu64 ")", group, expect, rec.offset, start);
        pc_value(expect, want);
        if (rec.value_len != PC_VALUE || memcmp(rec.value, want, PC_VALUE) != 0 ||
            rec.key != NULL || rec.key_len != 0)
            return pc_fail(rp, 68, "%s: record %" PRIu64 " has the wrong contents", group, expect);
        expect++;
        atomic_store_explicit(&rp->pos, expect, memory_order_relaxed);
        if (expect % PC_COMMIT == 0 || expect == n) {
            rc = topic_commit(t, group, expect);
            if (rc != 0)
                return pc_fail(rp, 69, "%s: commit(%" PRIu64 "): %s", group, expect,
                               topic_strerror(rc));
            atomic_store(&rp->acked, expect);
        }
    }
    topic_cursor_close(c);
    rc = topic_close(t);
    if (rc != 0)
        return pc_fail(rp, 70, "%s: close: %s", group, topic_strerror(rc));
    atomic_store(&rp->done, 1);
    return 0;
}

static uint64_t pc_records(void)
{
    const char *e = getenv("TOPIC_QUEUE_RECORDS");
    if (e && *e) {
        char *end;
        unsigned long long v = strtoull(e, &end, 10);
        if (*end == '\0' && v > 0)
            return v;
    }
    return 1000000;
}

struct pc_proc {
    const char *name;          /* group, or "producer" */
    char *report_path;
    struct pc_report *rp;
    pid_t pid;
    bool finished;
    uint64_t kill_at[PC_MAX_KILLS];
    int nkill, next_kill;
    uint64_t pos_at_spawn;     /* pos when the current run was started */
    int kills;
    uint64_t covered;          /* every offset below was consumed by some run */
    uint64_t prev_acked;       /* acked when the last run was killed */
    bool check_start;          /* the new run's start is still to be checked */
};

static struct pc_proc *g_pc;   /* for killing everything on failure */
static int g_npc;

static void pc_kill_all(void)
{
    for (int i = 0; i < g_npc; i++)
        if (g_pc[i].pid > 0) {
            kill_wait(g_pc[i].pid);
            g_pc[i].pid = 0;
        }
}

#define PC_FAIL(...)                                                           \
    do {                                                                       \
        pc_kill_all();                                                         \
        fail_msg(__VA_ARGS__);                                                 \
    } while (0)

static void pc_spawn(struct pc_proc *p, const char *dir, uint64_t n, uint64_t rate)
{
    char nbuf[32], rbuf[32];
    snprintf(nbuf, sizeof nbuf, "%" PRIu64, n);
    snprintf(rbuf, sizeof rbuf, "%" PRIu64, rate);
    char *argv[8];
    int a = 0;
    argv[a++] = (char *)"test_queue";
    if (strcmp(p->name, "producer") == 0) {
        argv[a++] = (char *)"--child-producer";
    } else {
        argv[a++] = (char *)"--child-consumer";
    }
    argv[a++] = (char *)dir;
    if (strcmp(p->name, "producer") != 0)
        argv[a++] = (char *)p->name;
    argv[a++] = p->report_path;
    argv[a++] = nbuf;
    if (strcmp(p->name, "producer") == 0)
        argv[a++] = rbuf;
    argv[a] = NULL;
    atomic_store(&p->rp->run_start, UINT64_MAX);
    p->pos_at_spawn = atomic_load(&p->rp->pos);
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0)
        PC_FAIL("fork: %s", strerror(errno));
    if (pid == 0) {
        execv("/proc/self/exe", argv);
        _exit(127);
    }
    p->pid = pid;
}

static void pc_exited(struct pc_proc *p, int st, bool killed_by_us)
{
    p->pid = 0;
    if (WIFEXITED(st) && WEXITSTATUS(st) == 0 && atomic_load(&p->rp->done)) {
        p->finished = true;
        return;
    }
    if (killed_by_us && WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL)
        return;
    PC_FAIL("%s exited with %s %d: %s", p->name, WIFEXITED(st) ? "status" : "signal",
            WIFEXITED(st) ? WEXITSTATUS(st) : WTERMSIG(st), p->rp->msg);
}

static uint64_t pc_next_commit_point(uint64_t acked, uint64_t n)
{
    uint64_t next = (acked / PC_COMMIT + 1) * PC_COMMIT;
    return next < n ? next : n;
}

/*
 * Runs a producer and two consumers to n records.  Each consumer is killed
 * ckills times at random positions and restarted; the producer pkills times.
 */
static void pc_run(fx *f, uint64_t n, int ckills, int pkills, uint64_t rate)
{
    uint64_t t0 = tu_mono_us();
    topic *t = create_with(f->dir, "segment.bytes", "4194304", NULL);
    assert_ok(close_t(t));

    struct pc_proc procs[3] = { { .name = "producer" }, { .name = "group-a" }, { .name = "group-b" } };
    g_pc = procs;
    g_npc = 3;
    tu_rng rng;
    tu_rng_seed(&rng, 0x9c + (uint64_t)pkills);
    for (int i = 0; i < 3; i++) {
        char name[64];
        snprintf(name, sizeof name, "report-%s", procs[i].name);
        procs[i].report_path = tu_path(f->root, name);
        unsigned char zero[4096] = { 0 };
        assert_ok(tu_write_file(procs[i].report_path, zero, sizeof zero));
        procs[i].rp = pc_map(procs[i].report_path);
        assert_non_null(procs[i].rp);
        /* Kill points spread over the run, at random positions. */
        int k = i == 0 ? pkills : ckills;
        assert_true(k <= PC_MAX_KILLS);
        procs[i].nkill = k;
        for (int j = 0; j < k; j++) {
            uint64_t slot = n / (uint64_t)(k + 1);
            procs[i].kill_at[j] = slot * (uint64_t)j + slot / 2 + tu_rng_below(&rng, slot + 1);
        }
    }
    /* Consumers first: they wait for the producer's records. */
    pc_spawn(&procs[1], f->dir, n, rate);
    pc_spawn(&procs[2], f->dir, n, rate);
    pc_spawn(&procs[0], f->dir, n, rate);
    uint64_t deadline = tu_mono_us() + 100000000u;   /* 100 s */
    while (!(procs[0].finished && procs[1].finished && procs[2].finished)) {
        if (tu_mono_us() > deadline)
            PC_FAIL("not done after 100 s: produced %" PRIu64 ", consumed %" PRIu64 " and %" PRIu64
                    " of %" PRIu64, atomic_load(&procs[0].rp->pos), atomic_load(&procs[1].rp->pos),
                    atomic_load(&procs[2].rp->pos), n);
        for (int i = 0; i < 3; i++) {
            struct pc_proc *p = &procs[i];
            if (p->finished || p->pid == 0)
                continue;
            struct pc_report *rp = p->rp;
            /* A consumer's new run starts at or past the last acknowledged
             * commit, at most one commit point further, never past what
             * was read. */
            uint64_t rs = atomic_load(&rp->run_start);
            if (i > 0 && p->check_start && rs != UINT64_MAX) {
                p->check_start = false;
                uint64_t lo = p->prev_acked, hi = pc_next_commit_point(p->prev_acked, n);
                if (rs != lo && rs != hi)
                    PC_FAIL("%s restarted at %" PRIu64 " after SIGKILL; the last acknowledged "
                            "commit was %" PRIu64, p->name, rs, lo);
                if (rs > p->covered)
                    PC_FAIL("%s restarted at %" PRIu64 " but had consumed only up to %" PRIu64
                            ": records skipped", p->name, rs, p->covered);
            }
            int st;
            pid_t w = waitpid(p->pid, &st, WNOHANG);
            if (w == p->pid) {
                pc_exited(p, st, false);
                if (p->finished && i > 0 && atomic_load(&rp->acked) != n)
                    PC_FAIL("%s finished with its last commit at %" PRIu64, p->name,
                            atomic_load(&rp->acked));
                continue;
            }
            /* Kill points count only once the current run has gone past
             * where the last one was killed. */
            uint64_t pos = atomic_load(&rp->pos);
            if (p->next_kill >= p->nkill || pos < p->kill_at[p->next_kill] || pos <= p->pos_at_spawn)
                continue;
            /* Kill at a random moment near the kill point, then restart. */
            tu_sleep_us(tu_rng_below(&rng, 500));
            kill(p->pid, SIGKILL);
            while (waitpid(p->pid, &st, 0) < 0 && errno == EINTR)
                ;
            p->next_kill++;
            pc_exited(p, st, true);
            if (p->finished)
                continue;
            p->kills++;
            rs = atomic_load(&rp->run_start);
            if (i > 0 && p->check_start && rs != UINT64_MAX) {
                p->check_start = false;
                uint64_t lo = p->prev_acked, hi = pc_next_commit_point(p->prev_acked, n);
                if ((rs != lo && rs != hi) || rs > p->covered)
                    PC_FAIL("%s restarted at %" PRIu64 " after SIGKILL; the last acknowledged "
                            "commit was %" PRIu64 ", consumed up to %" PRIu64, p->name, rs, lo,
                            p->covered);
            }
            uint64_t reached = atomic_load(&rp->pos);
            if (reached > p->covered)
                p->covered = reached;
            p->prev_acked = atomic_load(&rp->acked);
            p->check_start = true;
            pc_spawn(p, f->dir, n, rate);
        }
        tu_sleep_us(100);
    }
    uint64_t el = tu_mono_us() - t0;

    /* Every group consumed everything and says so. */
    topic *r = open_ok(f->dir, TOPIC_RDONLY, NULL);
    assert_u64(topic_end_offset(r), n);
    expect_committed(r, "group-a", n);
    expect_committed(r, "group-b", n);
    size_t len = 0;
    char buf[64];
    assert_ok(topic_groups(r, buf, sizeof buf, &len));
    assert_int_equal(len, sizeof "group-a\0group-b");
    assert_memory_equal(buf, "group-a\0group-b", len);
    assert_ok(close_t(r));
    print_message("producer/consumers: %" PRIu64 " records in %.2f s; producer runs %u "
                  "(%d SIGKILLs); consumer runs %u and %u (%d and %d SIGKILLs, %" PRIu64 " and %"
                  PRIu64 " waits at the end of the log)\n", n, (double)el / 1e6,
                  atomic_load(&procs[0].rp->runs), procs[0].kills, atomic_load(&procs[1].rp->runs),
                  atomic_load(&procs[2].rp->runs), procs[1].kills, procs[2].kills,
                  atomic_load(&procs[1].rp->waits), atomic_load(&procs[2].rp->waits));
    for (int i = 0; i < 3; i++) {
        if (procs[i].nkill > 0 && procs[i].kills < (procs[i].nkill + 1) / 2)
            fail_msg("%s was killed only %d of %d times", procs[i].name, procs[i].kills,
                     procs[i].nkill);
        assert_int_equal(atomic_load(&procs[i].rp->runs), (uint32_t)procs[i].kills + 1);
    }
    for (int i = 0; i < 3; i++) {
        munmap(procs[i].rp, 4096);
        free(procs[i].report_path);
    }
    g_pc = NULL;
    g_npc = 0;
}

static void test_producer_consumers(void **state)
{
    WATCHDOG(120);
    uint64_t n = pc_records();
    pc_run(*state, n, 10, 0, n * 2 / 5);   /* about 2.5 s */
}

/* The same while the writer process is killed and restarted too: readers
 * in other processes follow a writer across its crashes and recoveries. */
static void test_producer_consumers_writer_killed(void **state)
{
    WATCHDOG(120);
    uint64_t n = pc_records() / 2;
    if (n < 10000)
        n = 10000;
    pc_run(*state, n, 6, 5, n / 2);   /* about 2 s */
}

/* ======================================================================== */

int main(int argc, char **argv)
{
    if (argc == 6 && strcmp(argv[1], "--child-producer") == 0)
        return child_producer(argv[2], argv[3], strtoull(argv[4], NULL, 10),
                              strtoull(argv[5], NULL, 10));
    if (argc == 6 && strcmp(argv[1], "--child-consumer") == 0)
        return child_consumer(argv[2], argv[3], argv[4], strtoull(argv[5], NULL, 10));
    if (argc > 1 && strncmp(argv[1], "--child-", 8) == 0) {
        fprintf(stderr, "%s: bad child arguments\n", argv[0]);
        return 2;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_wait_existing_zero_and_bad_args, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_wait_timeout, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_wait_wakes_threads, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_wait_wakes_other_process, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_wait_killed_waiter_is_forgotten, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_wait_consume_loop, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_commit_round_trip, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_group_names, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_groups_listing, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_commit_other_process, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_commit_survives_reopen, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_commit_kill9, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_group_file_damage, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_group_file_damaged_while_mapped, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_committed_while_committing, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_simultaneous_commits_by_two_handles, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_group_slot_sequence_at_its_largest, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_many_groups_bounded_descriptors, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_group_file_newer_version, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_group_name_taken_by_another_kind_of_file, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_group_file_first_commit_crash, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_foreign_group_file, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_follower_across_many_rolls, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_follower_across_rolls_with_spares, fx_setup,
                                        fx_teardown),
        cmocka_unit_test_setup_teardown(test_follower_gives_back_settled_segments, fx_setup,
                                        fx_teardown),
        cmocka_unit_test_setup_teardown(test_handles_make_room_for_each_other, fx_setup,
                                        fx_teardown),
        cmocka_unit_test_setup_teardown(test_threads_share_limited_address_space, fx_setup,
                                        fx_teardown),
        cmocka_unit_test_setup_teardown(test_follower_with_limited_address_space, fx_setup,
                                        fx_teardown),
        cmocka_unit_test_setup_teardown(test_delete_before_basic, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_delete_before_seek_time, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_delete_before_kill9, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_delete_before_cursors_same_process, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_delete_before_inside_a_batch, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_delete_before_rdonly_read_is_gone, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_delete_before_cursor_other_process, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_delete_before_concurrent_readers, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_retention_bytes, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_retention_bytes_on_reopen, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_retention_bytes_at_close, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_retention_total_log_files, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_retention_ms, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_lz4_round_trip, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_lz4_smaller, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_lz4_corrupt, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_lz4_corrupt_rdonly_last_segment, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_corrupt_live_active_rdonly, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_rdonly_open_uses_index_files, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_rdonly_open_during_creation, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_rdonly_start_after_torn_publish, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_rdonly_start_stored_not_published, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_producer_consumers, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_producer_consumers_writer_killed, fx_setup, fx_teardown),
    };
    /* TOPIC_QUEUE_FILTER=pattern runs only the matching tests ('*' and '?'). */
    const char *filter = getenv("TOPIC_QUEUE_FILTER");
    if (filter && *filter)
        cmocka_set_test_filter(filter);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
