/*
 * Durability under failing system calls and power loss, through the
 * library's system-call table (lib/os.h, tests/helpers/faults.h):
 *
 *  1. SQLite-style fault loops: a fixed workload runs with the Nth call of
 *     one kind failing (EIO or ENOSPC, once or from the Nth on) for N = 1,
 *     2, ... until the workload no longer reaches an Nth call; the same for
 *     allocations (NULL).  After each run: the failure surfaced as an error
 *     of some API call (unless it is one the library is designed to absorb,
 *     see note_fired() in faults.c), no descriptor, mapping or (under ASan)
 *     memory leaked, the topic reopens with every acknowledged record and
 *     nothing else (no power loss), and a simulated power loss right after
 *     the workload keeps every record a successful topic_sync or
 *     topic_close covered;
 *  2. "fsyncgate": a failed fdatasync is sticky, reads keep working, a
 *     reopened handle writes again;
 *  3. short writes and EINTR lose and damage nothing;
 *  4. a full disk when the next segment is created fails that append with
 *     -ENOSPC, loses nothing and is not sticky; a spare segment the flusher
 *     cannot make, or a roll cannot rename, is no error at all;
 *  5. power loss at every crash point (around every sync, after every step
 *     of a roll) of workloads under flush.messages=1, under explicit
 *     topic_sync calls, and with every roll taking a spare segment.
 *
 * The library makes spares only for segments of 64 MiB and more; these
 * tests lower that limit (topic__spare_min) in the children that want them.
 *
 * Every run that injects faults runs in a child process (a crash or a hang
 * is that run's failure, and the other runs go on).  fsync/fdatasync only
 * check their descriptor (the power-loss model decides what they made
 * durable), and topics live in /dev/shm when it is usable: thousands of
 * runs take seconds.  TOPIC_FAULT_ITERATIONS=N (default 1) multiplies the
 * random variants: power-loss images per crash point, short-write rounds.
 * TOPIC_FAULT_FILTER=pattern runs only the matching tests;
 * TOPIC_FAULT_KEEP=dir keeps the first power-loss image that fails a check;
 * TOPIC_FAULT_TMPDIR=dir puts the topics elsewhere.
 *
 * Record schema: the record of the workload's ith append attempt (id i)
 * has value rec_fill(i) of length rec_len(i); the model remembers the id at
 * every acknowledged offset.
 *
 * SPDX-License-Identifier: BSD-2-Clause
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
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
#include <sys/stat.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "topic.h"
#include "faults.h"
#include "testutil.h"
#include "topic_asserts.h"

#define SEED     0x5eed1e55ull
#define MAXREC   1024
#define VALMAX   6000
#define NONE     UINT64_MAX
#define G_NAME   "grp"
#define G_BASE   1000000u
#define G_STEP   7u
#define NTH_MAX  5000
#define MAX_PRINTED 25

/* ------------------------------------------------------------------------ */
/* Fixture, failure collection, isolation                                    */

/*
 * Every run that injects faults runs in a child process, so that a crash or
 * a hang (a library bug) is reported as a failure of that run and the other
 * runs still go ahead.  What the parent needs to know lives in a shared page.
 */
typedef struct shared {
    int nfail;                /* failures recorded (by any process) */
    int fired;                /* fault-loop child: its fault fired */
    long runs, fired_runs, images, points;
    long recovery_runs, recovery_points, recovery_images;
    long spare_renames;       /* power-loss child: crash points after a spare's rename */
    uint64_t records;
    char scenario[512];       /* what the current child is doing */
} shared;

static shared *sh;
static char *tmp, *tdir, *idir;
static int cur_kind = -1;   /* the kind being failed, for what may break reads */

#define scenario (sh->scenario)

static unsigned iterations(void)
{
    const char *s = getenv("TOPIC_FAULT_ITERATIONS");
    if (s && *s) {
        unsigned long n = strtoul(s, NULL, 10);
        if (n > 0 && n < 100000)
            return (unsigned)n;
    }
    return 1;
}

/* Records a failure (printed, the first MAX_PRINTED of a test); the test
 * goes on so that one run reports every distinct problem. */
static void failf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void failf(const char *fmt, ...)
{
    if (sh->nfail++ < MAX_PRINTED) {
        va_list ap;
        va_start(ap, fmt);
        fprintf(stderr, "  FAIL: ");
        vfprintf(stderr, fmt, ap);
        fputc('\n', stderr);
        va_end(ap);
    }
}

#define REQUIRE(cond, ...)          \
    do {                            \
        if (!(cond)) {              \
            failf(__VA_ARGS__);     \
            return;                 \
        }                           \
    } while (0)

static void end_test(const char *name)
{
    if (sh->nfail > 0)
        fail_msg("%s: %d failure(s)%s", name, sh->nfail,
                 sh->nfail > MAX_PRINTED ? " (the first ones are printed above)"
                                         : " (printed above)");
}

/* Present in sanitizer builds only. */
int __lsan_do_recoverable_leak_check(void) __attribute__((weak));

/* Runs fn(arg) in a child process; a crash, a sanitizer report, a leak or a
 * hang (after timeout_s) is a failure. */
static void isolated(void (*fn)(void *), void *arg, int timeout_s)
{
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) {
        failf("fork: %s", strerror(errno));
        return;
    }
    if (pid == 0) {
        /* cmocka's handlers would resume the test runner in the child. */
        static const int sigs[] = { SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT, SIGSYS, SIGALRM };
        for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++)
            signal(sigs[i], SIG_DFL);
        alarm(0);
        fn(arg);
        if (__lsan_do_recoverable_leak_check != NULL && __lsan_do_recoverable_leak_check() != 0)
            failf("[%s] memory leaked: see the LeakSanitizer report above", scenario);
        fflush(NULL);
        _exit(0);
    }
    int rc = tu_wait_child(pid, timeout_s * 1000);
    if (rc == -1000 - SIGKILL)
        failf("[%s] hung: killed after %d s", scenario, timeout_s);
    else if (rc <= -1000)
        failf("[%s] crashed with signal %d (%s)", scenario, -1000 - rc, strsignal(-1000 - rc));
    else if (rc != 0)
        failf("[%s] exited with status %d (a sanitizer report above?)", scenario, rc);
}

static void on_alarm(int sig)
{
    (void)sig;
    static const char msg[] = "\ntest_faults: timed out (hang?) in: ";
    ssize_t r = write(2, msg, sizeof msg - 1);
    r = write(2, scenario, strnlen(scenario, sizeof scenario));
    r = write(2, "\n", 1);
    (void)r;
    _exit(70);
}

static int fx_setup(void **state)
{
    (void)state;
    tmp = tf_mkdtemp("faults");
    if (tmp == NULL)
        return -1;
    tdir = tu_path(tmp, "t");
    idir = tu_path(tmp, "img");
    memset(sh, 0, sizeof *sh);
    cur_kind = -1;
    snprintf(scenario, sizeof scenario, "setup");
    signal(SIGALRM, on_alarm);
    alarm(300 * iterations());
    tf_install(true);
    return 0;
}

static int fx_teardown(void **state)
{
    (void)state;
    alarm(0);
    tf_uninstall();
    tu_rmrf(tmp);
    free(tmp);
    free(tdir);
    free(idir);
    tmp = tdir = idir = NULL;
    return 0;
}

static double now_s(void)
{
    return (double)tu_mono_us() / 1e6;
}

/* A configuration from name, value, ..., NULL (aborts on a refused one: the
 * settings are the test's own). */
static topic_config *make_conf(const char *const *kv)
{
    topic_config *c = topic_config_new();
    if (c == NULL)
        abort();
    for (; kv && kv[0]; kv += 2)
        if (topic_config_set(c, kv[0], kv[1]) != 0) {
            fprintf(stderr, "config %s=%s: %s\n", kv[0], kv[1], topic_config_error(c));
            abort();
        }
    return c;
}

/* ------------------------------------------------------------------------ */
/* Records and the model of what was acknowledged                            */

static size_t rec_len(uint32_t id)
{
    static const size_t sizes[] = { 37, 0, 300, 1, 120, 701, 64, 1500, 9, 250, 480, 17, 900, 3 };
    if (id % 50 == 0 || id % 50 == 27)
        return 5000;   /* bigger than segment.bytes: a segment of its own */
    return sizes[id % (sizeof sizes / sizeof sizes[0])];
}

/* Odd ids compress well (lz4 batches), even ids do not. */
static void rec_fill(uint32_t id, unsigned char *buf, size_t len)
{
    if (id & 1) {
        static const char pat[] = "libtopic-faults:";
        for (size_t k = 0; k < len; k++)
            buf[k] = (unsigned char)(pat[k % 16] + (unsigned char)id);
    } else {
        tu_fill(id, SEED, buf, len);
    }
    for (size_t k = 0; k < 4 && k < len; k++)
        buf[k] = (unsigned char)(id >> (8 * k));
}

static bool rec_ok(uint32_t id, const void *p, size_t len)
{
    unsigned char want[VALMAX];
    size_t n = rec_len(id);
    if (len != n)
        return false;
    rec_fill(id, want, n);
    return memcmp(want, p, n) == 0;
}

typedef struct model {
    uint64_t n;          /* acknowledged records: offsets [0, n) */
    uint64_t must;       /* [0, must) must survive a power loss */
    uint64_t reg;        /* offsets that may exist: acked plus in flight */
    uint32_t id[MAXREC];
    uint32_t bfirst[MAXREC];   /* first offset of the batch holding it */
    uint32_t next_id;
    uint64_t g_ok;       /* value of the last commit that returned 0 */
    uint64_t g_durable;  /* the last value known to survive a power loss */
    uint64_t g_max;      /* largest value ever passed to topic_commit */
    unsigned commits;
    bool fm1;            /* flush.messages=1: what returned is durable */
    int api_errors;
    char first_error[200];
} model;

static model M;

static void model_init(model *m, bool fm1)
{
    memset(m, 0, sizeof *m);
    m->g_ok = m->g_durable = m->g_max = NONE;
    m->fm1 = fm1;
}

static void marks(const model *m)
{
    uint64_t mk[PL_MARKS] = { m->must, m->reg, m->g_durable, m->g_max };
    pl_set_marks(mk);
}

static void note(model *m, const char *what, int rc)
{
    if (rc >= 0)
        return;
    if (m->api_errors++ == 0)
        snprintf(m->first_error, sizeof m->first_error, "%s = %d (%s)", what, rc,
                 topic_strerror(rc));
}

/* Whether a read may fail because the fault being injected is in the read
 * path itself (a sealed segment is mapped on first use). */
static bool reads_may_fail(void)
{
    return tf_fired() > 0 && (cur_kind == TF_OPENAT || cur_kind == TF_FSTAT ||
                              cur_kind == TF_MMAP || cur_kind == TF_ALLOC);
}

/* Appends the record with id `id` (a new one when id is NONE32). */
#define NONE32 UINT32_MAX
static int w_append_id(model *m, topic *t, uint32_t id)
{
    if (id == NONE32)
        id = m->next_id++;
    size_t len = rec_len(id);
    unsigned char buf[VALMAX];
    rec_fill(id, buf, len);
    if (m->n >= MAXREC)
        abort();   /* the workloads are far smaller */
    m->id[m->n] = id;
    m->bfirst[m->n] = (uint32_t)m->n;
    m->reg = m->n + 1;
    marks(m);
    uint64_t before = topic_end_offset(t), off = NONE;
    int rc = topic_append(t, buf, len, &off);
    note(m, "topic_append", rc);
    if (rc == 0) {
        if (off != m->n)
            failf("[%s] topic_append gave offset %" PRIu64 ", expected %" PRIu64, scenario, off,
                  m->n);
        m->n++;
        if (m->fm1)
            m->must = m->n;
    } else {
        m->reg = m->n;
        uint64_t after = topic_end_offset(t);
        if (after != before)
            failf("[%s] a failed topic_append (%d) moved the end offset %" PRIu64 " -> %" PRIu64,
                  scenario, rc, before, after);
    }
    marks(m);
    return rc;
}

static int w_append(model *m, topic *t)
{
    return w_append_id(m, t, NONE32);
}

static int w_batch(model *m, topic *t, size_t k)
{
    static unsigned char bufs[8][VALMAX];
    topic_record recs[8];
    memset(recs, 0, sizeof recs);
    if (m->n + k > MAXREC || k > 8)
        abort();
    for (size_t i = 0; i < k; i++) {
        uint32_t id = m->next_id++;
        recs[i].value = bufs[i];
        recs[i].value_len = rec_len(id);
        rec_fill(id, bufs[i], recs[i].value_len);
        m->id[m->n + i] = id;
        m->bfirst[m->n + i] = (uint32_t)m->n;
    }
    m->reg = m->n + k;
    marks(m);
    uint64_t before = topic_end_offset(t), first = NONE;
    int rc = topic_append_batch(t, recs, k, &first);
    note(m, "topic_append_batch", rc);
    if (rc == 0) {
        if (first != m->n)
            failf("[%s] topic_append_batch gave offset %" PRIu64 ", expected %" PRIu64, scenario,
                  first, m->n);
        m->n += k;
        if (m->fm1)
            m->must = m->n;
    } else {
        m->reg = m->n;
        uint64_t after = topic_end_offset(t);
        if (after != before)
            failf("[%s] a failed topic_append_batch (%d) moved the end offset %" PRIu64
                  " -> %" PRIu64, scenario, rc, before, after);
    }
    marks(m);
    return rc;
}

static int w_sync(model *m, topic *t)
{
    int rc = topic_sync(t);
    note(m, "topic_sync", rc);
    if (rc == 0) {
        m->must = m->n;
        if (m->g_ok != NONE)
            m->g_durable = m->g_ok;
    }
    marks(m);
    return rc;
}

static int w_close(model *m, topic *t)
{
    int rc = topic_close(t);
    note(m, "topic_close", rc);
    if (rc == 0) {
        m->must = m->n;
        if (m->g_ok != NONE)
            m->g_durable = m->g_ok;
    }
    marks(m);
    return rc;
}

static int w_commit(model *m, topic *t)
{
    uint64_t v = G_BASE + (uint64_t)G_STEP * ++m->commits;
    m->g_max = v;
    marks(m);
    int rc = topic_commit(t, G_NAME, v);
    note(m, "topic_commit", rc);
    if (rc == 0) {
        m->g_ok = v;
        if (m->fm1)
            m->g_durable = v;
    }
    marks(m);
    return rc;
}

/* Reads an acknowledged record back in the middle of the workload. */
static void w_read(model *m, topic *t, uint64_t off)
{
    if (off >= m->n)
        return;
    unsigned char buf[VALMAX];
    size_t len = 0;
    int rc = topic_read(t, off, buf, sizeof buf, &len);
    note(m, "topic_read", rc);
    if (rc == 0) {
        if (!rec_ok(m->id[off], buf, len))
            failf("[%s] topic_read(%" PRIu64 ") returned wrong bytes (len %zu, expected %zu)",
                  scenario, off, len, rec_len(m->id[off]));
    } else if (!reads_may_fail()) {
        failf("[%s] topic_read(%" PRIu64 ") of an acknowledged record = %d (%s)", scenario, off,
              rc, topic_strerror(rc));
    }
}

/* ------------------------------------------------------------------------ */
/* Checking a topic directory against the model                              */

typedef struct vexp {
    uint64_t must;       /* records [0, must) must be there */
    uint64_t maxend;     /* no offset at or past this may exist */
    bool exact;          /* the end offset must be maxend */
    bool g_live;         /* no power loss: the group reads back g_ok exactly */
    uint64_t g_ok, g_durable, g_max;
} vexp;

static bool group_value_ok(uint64_t v, uint64_t g_max)
{
    return g_max != NONE && v >= G_BASE + G_STEP && v <= g_max && (v - G_BASE) % G_STEP == 0;
}

/* Opens dir (a crash copy or the topic itself, with no fault armed) and
 * checks it; then checks that appends and commits continue.  Failures are
 * recorded with `what` in the message. */
static void verify_dir(const char *dir, const model *m, const vexp *e, const char *what)
{
    static const char *const kv[] = { "segment.bytes", "4096", "flush.ms", "0", NULL };
    topic_config *conf = make_conf(kv);
    topic *t = NULL;
    int rc = topic_open(dir, 0, conf, &t);
    if (rc == -ENOENT && e->must == 0)
        rc = topic_open(dir, TOPIC_CREATE, conf, &t);
    topic_config_free(conf);
    if (rc != 0) {
        failf("%s: topic_open = %d (%s)", what, rc, topic_strerror(rc));
        return;
    }
    uint64_t end = topic_end_offset(t), start = topic_start_offset(t);
    if (start != 0)
        failf("%s: start offset %" PRIu64 ", expected 0", what, start);
    if (end < e->must)
        failf("%s: end offset %" PRIu64 ", but %" PRIu64 " records had to survive", what, end,
              e->must);
    if (end > e->maxend)
        failf("%s: end offset %" PRIu64 ", but only %" PRIu64 " records were ever appended",
              what, end, e->maxend);
    else if (e->exact && end != e->maxend)
        failf("%s: end offset %" PRIu64 ", expected %" PRIu64, what, end, e->maxend);
    else if (end < e->maxend && end > 0 && m->bfirst[end] != end)
        failf("%s: the log ends at %" PRIu64 ", inside the batch starting at %u", what, end,
              m->bfirst[end]);
    uint64_t lim = end < e->maxend ? end : e->maxend;
    unsigned char buf[VALMAX];
    for (uint64_t o = 0; o < lim; o++) {
        size_t len = 0;
        rc = topic_read(t, o, buf, sizeof buf, &len);
        if (rc != 0) {
            failf("%s: topic_read(%" PRIu64 ") = %d (%s), end offset %" PRIu64 " (must %" PRIu64
                  ")", what, o, rc, topic_strerror(rc), end, e->must);
            break;
        }
        if (!rec_ok(m->id[o], buf, len)) {
            failf("%s: topic_read(%" PRIu64 ") returned other bytes (len %zu, expected %zu)",
                  what, o, len, rec_len(m->id[o]));
            break;
        }
    }
    topic_cursor *c = NULL;
    rc = topic_cursor_open(t, 0, &c);
    if (rc != 0) {
        failf("%s: topic_cursor_open = %d (%s)", what, rc, topic_strerror(rc));
    } else {
        uint64_t o = 0;
        topic_record r;
        for (; o < lim; o++) {
            rc = topic_cursor_next(c, &r);
            if (rc != 0 || r.offset != o || r.key_len != 0 ||
                !rec_ok(m->id[o], r.value, r.value_len)) {
                failf("%s: cursor at %" PRIu64 ": rc %d (%s), offset %" PRIu64 ", len %zu", what,
                      o, rc, topic_strerror(rc), r.offset, r.value_len);
                break;
            }
        }
        if (o == lim && lim == end && (rc = topic_cursor_next(c, &r)) != TOPIC_END)
            failf("%s: cursor past the end offset %" PRIu64 " = %d (%s)", what, end, rc,
                  topic_strerror(rc));
        topic_cursor_close(c);
    }
    uint64_t gv = 0;
    rc = topic_committed(t, G_NAME, &gv);
    if (e->g_live) {
        if (e->g_ok == NONE ? rc != -ENOENT : (rc != 0 || gv != e->g_ok))
            failf("%s: topic_committed = %d (%s) value %" PRIu64 ", expected %s%" PRIu64, what, rc,
                  topic_strerror(rc), gv, e->g_ok == NONE ? "-ENOENT " : "",
                  e->g_ok == NONE ? 0 : e->g_ok);
    } else if (rc == 0) {
        if (!group_value_ok(gv, e->g_max) || (e->g_durable != NONE && gv < e->g_durable))
            failf("%s: topic_committed gave %" PRIu64 " (durable %" PRIu64 ", largest %" PRIu64
                  ")", what, gv, e->g_durable, e->g_max);
    } else if (rc != -ENOENT || e->g_durable != NONE) {
        failf("%s: topic_committed = %d (%s), durable value %" PRIu64, what, rc,
              topic_strerror(rc), e->g_durable);
    }
    /* Writing goes on at the end offset. */
    static const char fresh[] = "written after reopening";
    uint64_t off = NONE;
    rc = topic_append(t, fresh, sizeof fresh, &off);
    if (rc != 0 || off != end) {
        failf("%s: topic_append after reopening = %d (%s), offset %" PRIu64 ", expected %" PRIu64,
              what, rc, topic_strerror(rc), off, end);
    } else {
        size_t len = 0;
        rc = topic_read(t, off, buf, sizeof buf, &len);
        if (rc != 0 || len != sizeof fresh || memcmp(buf, fresh, len) != 0)
            failf("%s: reading back the new record = %d (%s)", what, rc, topic_strerror(rc));
    }
    rc = topic_commit(t, G_NAME, 42);
    if (rc != 0 || topic_committed(t, G_NAME, &gv) != 0 || gv != 42)
        failf("%s: topic_commit after reopening = %d (%s)", what, rc, topic_strerror(rc));
    rc = topic_close(t);
    if (rc != 0)
        failf("%s: topic_close = %d (%s)", what, rc, topic_strerror(rc));
}

/* Checks every capture taken by the power-loss model, `variants` ways each.
 * Returns the number of images opened. */
static long verify_captures(const model *m, unsigned variants, uint64_t seed, const char *what)
{
    pl_pause(true);
    long checked = 0;
    size_t nc = pl_ncaptures();
    for (size_t i = 0; i < nc; i++) {
        uint64_t mk[PL_MARKS];
        pl_capture_marks(i, mk);
        for (unsigned v = 0; v < variants; v++) {
            char desc[1400];
            snprintf(desc, sizeof desc, "%.1200s: power loss at crash point %zu/%zu (%s), image %u%s",
                     what, i, nc, pl_capture_why(i), v, v ? " (random tails)" : " (durable only)");
            snprintf(scenario, sizeof scenario, "%.500s", desc);
            int rc = pl_materialize(i, idir, seed, v);
            if (rc != 0) {
                failf("%s: pl_materialize = %d", desc, rc);
                continue;
            }
            if (!pl_capture_has_root(i)) {
                if (mk[0] > 0)
                    failf("%s: the topic directory's own name was not durable, but %" PRIu64
                          " records had to survive", desc, mk[0]);
                break;   /* nothing to open, whatever the variant */
            }
            vexp e = { .must = mk[0], .maxend = mk[1], .g_durable = mk[2], .g_max = mk[3] };
            /* TOPIC_FAULT_KEEP=dir keeps the first failing image there. */
            const char *keep = getenv("TOPIC_FAULT_KEEP");
            int before = sh->nfail;
            bool mine = keep && *keep && !tu_exists(keep);
            if (mine)
                pl_materialize(i, keep, seed, v);
            verify_dir(idir, m, &e, desc);
            if (mine && sh->nfail == before)
                tu_rmrf(keep);
            checked++;
        }
    }
    pl_pause(false);
    return checked;
}

/* ------------------------------------------------------------------------ */
/* 1. Fault loops                                                            */

static const char *const fault_kv[] = { "segment.bytes", "4096", "flush.ms", "0",
                                        "index.interval.bytes", "512", NULL };
static const char *const fault_lz4_kv[] = { "segment.bytes", "4096", "flush.ms", "0",
                                            "index.interval.bytes", "512",
                                            "compression.type", "lz4", NULL };

/*
 * The workload: create; appends of varied sizes (the first and two more are
 * bigger than a segment), a batch, a commit, a sync, a read; close; reopen;
 * more of the same, with a read from a sealed segment of the first handle;
 * sync; close.  About eight segments.  Every call goes on whatever the
 * earlier ones returned, as an application that logs errors would.
 */
static void fault_workload(model *m, const topic_config *conf)
{
    topic *t = NULL;
    int rc = topic_open(tdir, TOPIC_CREATE, conf, &t);
    note(m, "topic_open(TOPIC_CREATE)", rc);
    if (rc == 0) {
        for (int i = 0; i < 14; i++) {
            w_append(m, t);
            if (i == 4)
                w_batch(m, t, 4);
            if (i == 6)
                w_commit(m, t);
            if (i == 8)
                w_sync(m, t);
            if (i == 11)
                w_read(m, t, m->n / 2);
        }
        w_close(m, t);
    }
    t = NULL;
    rc = topic_open(tdir, 0, conf, &t);
    note(m, "topic_open(reopen)", rc);
    if (rc == 0) {
        for (int i = 0; i < 16; i++) {
            w_append(m, t);
            if (i == 2)
                w_read(m, t, 1);
            if (i == 5)
                w_batch(m, t, 3);
            if (i == 9)
                w_sync(m, t);
            if (i == 11)
                w_commit(m, t);
        }
        w_sync(m, t);
        w_close(m, t);
    }
}

static const char *err_name(int err)
{
    return err == EIO ? "EIO" : err == ENOSPC ? "ENOSPC" : err == ENOMEM ? "ENOMEM" : "?";
}

typedef struct fault_run {
    int kind, err;
    bool persistent;
    long nth;
    const topic_config *conf;
} fault_run;

/* One run of a fault loop, in a child process. */
static void fault_run_child(void *arg)
{
    const fault_run *r = arg;
    tu_rmrf(tdir);
    int fds0 = tf_open_fds(), maps0 = tf_file_maps(tmp);
    tf_reset();
    pl_start(tdir);
    model_init(&M, false);
    marks(&M);
    cur_kind = r->kind;
    tf_arm(r->kind, r->nth, r->err, r->persistent);
    fault_workload(&M, r->conf);
    tf_disarm();
    long fired = tf_fired();
    bool exempt = tf_fired_all_exempt();
    char desc[256];
    snprintf(desc, sizeof desc, "%s", tf_fired_desc());
    pl_capture("end of the workload");
    cur_kind = -1;
    sh->fired = fired > 0;
    sh->runs++;
    sh->fired_runs += fired > 0;
    if (fired) {
        if (M.api_errors == 0 && !exempt)
            failf("[%s] %s failed, yet every API call returned success", scenario, desc);
    } else if (M.api_errors != 0) {
        failf("[%s] nothing was made to fail, yet %s", scenario, M.first_error);
    }
    int fds1 = tf_open_fds(), maps1 = tf_file_maps(tmp);
    if (fds1 != fds0)
        failf("[%s] %d file descriptor(s) still open after topic_close (fault: %s; first "
              "error: %s)", scenario, fds1 - fds0, fired ? desc : "none", M.first_error);
    if (maps1 != maps0)
        failf("[%s] %d mapping(s) of topic files left after topic_close (fault: %s)", scenario,
              maps1 - maps0, fired ? desc : "none");
    /* No power loss: everything acknowledged is there, nothing else. */
    pl_pause(true);
    char what[1200];
    snprintf(what, sizeof what, "[%s] reopened after %s (first error: %s)", scenario,
             fired ? desc : "no fault", M.api_errors ? M.first_error : "none");
    vexp live = { .must = M.n, .maxend = M.n, .exact = true, .g_live = true, .g_ok = M.g_ok };
    verify_dir(tdir, &M, &live, what);
    pl_pause(false);
    /* A power loss right after the workload: whatever a successful sync or
     * close covered is there. */
    snprintf(what, sizeof what, "[%s] power loss after %s", scenario, fired ? desc : "no fault");
    sh->images += verify_captures(&M, 1 + iterations(), SEED ^ (uint64_t)r->nth, what);
    pl_stop();
}

/* N = 1, 2, ... until the workload ends without reaching the Nth call. */
static void fault_loop(int kind, int err, bool persistent, const topic_config *conf,
                       const char *conf_name)
{
    for (long nth = 1; nth <= NTH_MAX; nth++) {
        snprintf(scenario, sizeof scenario, "%s #%ld fails with %s %s (%s)", tf_kind_name(kind),
                 nth, err_name(err), persistent ? "from then on" : "once", conf_name);
        fault_run r = { kind, err, persistent, nth, conf };
        sh->fired = 1;   /* a child that dies goes on to N + 1 */
        isolated(fault_run_child, &r, 60);
        if (!sh->fired)
            return;
    }
    failf("[%s] the workload never ran out of calls", scenario);
}

static void test_fault_kind(void **state)
{
    int kind = *(const int *)*state;
    topic_config *conf = make_conf(fault_kv);
    double t0 = now_s();
    static const int errs[2] = { EIO, ENOSPC };
    for (int e = 0; e < 2; e++)
        for (int p = 0; p < 2; p++)
            fault_loop(kind, errs[e], p == 1, conf, "segment.bytes=4096");
    topic_config_free(conf);
    printf("  %s: %ld runs, %ld with the fault fired, %ld power-loss images, %.1f s\n",
           tf_kind_name(kind), sh->runs, sh->fired_runs, sh->images, now_s() - t0);
    end_test(tf_kind_name(kind));
}

static void test_fault_alloc(void **state)
{
    (void)state;
    double t0 = now_s();
    topic_config *c1 = make_conf(fault_kv), *c2 = make_conf(fault_lz4_kv);
    for (int p = 0; p < 2; p++) {
        fault_loop(TF_ALLOC, ENOMEM, p == 1, c1, "no compression");
        fault_loop(TF_ALLOC, ENOMEM, p == 1, c2, "lz4");
    }
    topic_config_free(c1);
    topic_config_free(c2);
    printf("  alloc: %ld runs, %ld with the fault fired, %ld power-loss images, %.1f s\n",
           sh->runs, sh->fired_runs, sh->images, now_s() - t0);
    end_test("alloc");
}

/* ------------------------------------------------------------------------ */
/* 2. fsyncgate                                                              */

static void check_all(topic *t, const model *m, const char *what)
{
    unsigned char buf[VALMAX];
    for (uint64_t o = 0; o < m->n; o++) {
        size_t len = 0;
        int rc = topic_read(t, o, buf, sizeof buf, &len);
        if (rc != 0 || !rec_ok(m->id[o], buf, len)) {
            failf("%s: topic_read(%" PRIu64 ") = %d (%s), len %zu", what, o, rc,
                  topic_strerror(rc), len);
            return;
        }
    }
    topic_cursor *c = NULL;
    int rc = topic_cursor_open(t, 0, &c);
    REQUIRE(rc == 0, "%s: topic_cursor_open = %d (%s)", what, rc, topic_strerror(rc));
    topic_record r;
    for (uint64_t o = 0; o < m->n; o++) {
        rc = topic_cursor_next(c, &r);
        if (rc != 0 || r.offset != o || !rec_ok(m->id[o], r.value, r.value_len)) {
            failf("%s: cursor at %" PRIu64 " = %d (%s)", what, o, rc, topic_strerror(rc));
            break;
        }
    }
    topic_cursor_close(c);
}

/* After the failure: writes refuse with TOPIC_EFAILED, reads work, close
 * reports an error, a reopened handle has everything and writes again. */
static void after_failed_sync(topic *t, model *m, const topic_config *conf, int fds0,
                              const char *what)
{
    uint64_t end = topic_end_offset(t), off = NONE;
    int rc = topic_append(t, "x", 1, &off);
    if (rc != TOPIC_EFAILED)
        failf("%s: topic_append after the failed sync = %d (%s), expected TOPIC_EFAILED", what,
              rc, topic_strerror(rc));
    topic_record rec = { 0, 0, NULL, 0, "y", 1 };
    rc = topic_append_batch(t, &rec, 1, &off);
    if (rc != TOPIC_EFAILED)
        failf("%s: topic_append_batch after the failed sync = %d (%s), expected TOPIC_EFAILED",
              what, rc, topic_strerror(rc));
    for (int i = 0; i < 2; i++) {
        rc = topic_sync(t);
        if (rc != TOPIC_EFAILED)
            failf("%s: topic_sync #%d after the failed sync = %d (%s), expected TOPIC_EFAILED "
                  "(a retried fsync may report success for lost pages)", what, i + 1, rc,
                  topic_strerror(rc));
    }
    if (topic_end_offset(t) != end)
        failf("%s: refused appends moved the end offset", what);
    check_all(t, m, what);
    if (m->n > 0 && (rc = topic_wait(t, m->n - 1, 0)) != 0)
        failf("%s: topic_wait = %d", what, rc);
    rc = topic_close(t);
    if (rc >= 0)
        failf("%s: topic_close after the failed sync = %d, expected an error: the records "
              "after the last good sync are not known to be durable", what, rc);
    int fds1 = tf_open_fds();
    if (fds1 != fds0)
        failf("%s: %d file descriptor(s) still open after topic_close", what, fds1 - fds0);
    t = NULL;
    rc = topic_open(tdir, 0, conf, &t);
    REQUIRE(rc == 0, "%s: reopen = %d (%s)", what, rc, topic_strerror(rc));
    if (topic_end_offset(t) != m->n)
        failf("%s: reopened with end offset %" PRIu64 ", expected %" PRIu64, what,
              topic_end_offset(t), m->n);
    check_all(t, m, what);
    if (w_append(m, t) != 0)
        failf("%s: topic_append after reopening: %s", what, m->first_error);
    if (w_sync(m, t) != 0)
        failf("%s: topic_sync after reopening: %s", what, m->first_error);
    if ((rc = topic_close(t)) != 0)
        failf("%s: topic_close after reopening = %d", what, rc);
    vexp e = { .must = m->n, .maxend = m->n, .exact = true, .g_live = true, .g_ok = NONE };
    verify_dir(tdir, m, &e, what);
}

static void fsyncgate_sync_child(void *arg)
{
    (void)arg;
    static const char *const kv[] = { "flush.ms", "0", NULL };
    topic_config *conf = make_conf(kv);
    int fds0 = tf_open_fds();
    model_init(&M, false);
    topic *t = NULL;
    int rc = topic_open(tdir, TOPIC_CREATE, conf, &t);
    REQUIRE(rc == 0, "topic_open = %d", rc);
    for (int i = 0; i < 10; i++)
        REQUIRE(w_append(&M, t) == 0, "append: %s", M.first_error);
    REQUIRE(w_sync(&M, t) == 0, "sync: %s", M.first_error);
    for (int i = 0; i < 5; i++)
        REQUIRE(w_append(&M, t) == 0, "append: %s", M.first_error);
    /* The next fdatasync fails once with EIO; every later one succeeds. */
    tf_arm(TF_FDATASYNC, tf_count(TF_FDATASYNC) + 1, EIO, false);
    rc = topic_sync(t);
    if (rc != -EIO)
        failf("fsyncgate: the topic_sync whose fdatasync failed = %d (%s), expected -EIO", rc,
              topic_strerror(rc));
    if (tf_fired() != 1)
        failf("fsyncgate: %ld fdatasync calls failed, expected 1", tf_fired());
    after_failed_sync(t, &M, conf, fds0, "fsyncgate (topic_sync)");
    tf_disarm();
    topic_config_free(conf);
}

static void test_fsyncgate_sync(void **state)
{
    (void)state;
    snprintf(scenario, sizeof scenario, "fsyncgate: topic_sync's fdatasync fails once");
    isolated(fsyncgate_sync_child, NULL, 120);
    end_test("fsyncgate_sync");
}

/* The fdatasync that fails is the flusher's, sealing a rolled segment. */
static void fsyncgate_flusher_child(void *arg)
{
    (void)arg;
    static const char *const kv[] = { "segment.bytes", "4096", "flush.ms", "0", NULL };
    topic_config *conf = make_conf(kv);
    int fds0 = tf_open_fds();
    model_init(&M, false);
    topic *t = NULL;
    int rc = topic_open(tdir, TOPIC_CREATE, conf, &t);
    REQUIRE(rc == 0, "topic_open = %d", rc);
    /* The first append marks the state dirty: one fdatasync.  Then append
     * until a roll gives the flusher a segment to seal. */
    M.next_id = 1;   /* record 0 is bigger than a segment: not needed here */
    REQUIRE(w_append(&M, t) == 0, "append: %s", M.first_error);
    tf_arm(TF_FDATASYNC, tf_count(TF_FDATASYNC) + 1, EIO, false);
    int nseg = 1;
    for (int i = 0; i < 100 && nseg < 2; i++) {
        REQUIRE(w_append(&M, t) == 0, "append: %s", M.first_error);
        uint64_t *bases = NULL;
        nseg = tu_list_segments(tdir, &bases);
        free(bases);
    }
    REQUIRE(nseg == 2, "no roll after 100 appends");
    uint64_t t0 = tu_mono_us();
    while (tf_fired() == 0 && tu_mono_us() - t0 < 10000000u)
        tu_sleep_us(1000);
    REQUIRE(tf_fired() == 1, "the flusher did not seal the rolled segment within 10 s");
    /* No call has returned the flusher's failure: the next sync names it,
     * once; after_failed_sync() checks that later ones say TOPIC_EFAILED. */
    rc = topic_sync(t);
    if (rc != -EIO)
        failf("fsyncgate (flusher): topic_sync after the flusher's failed fdatasync = %d (%s), "
              "expected -EIO, the flusher's own error", rc, topic_strerror(rc));
    after_failed_sync(t, &M, conf, fds0, "fsyncgate (flusher)");
    tf_disarm();
    topic_config_free(conf);
}

static void test_fsyncgate_flusher(void **state)
{
    (void)state;
    snprintf(scenario, sizeof scenario, "fsyncgate: the flusher's fdatasync fails once");
    isolated(fsyncgate_flusher_child, NULL, 120);
    end_test("fsyncgate_flusher");
}

/* ------------------------------------------------------------------------ */
/* 3. Short writes and EINTR                                                 */

static bool same_file(const char *a, const char *b)
{
    unsigned char *pa = NULL, *pb = NULL;
    size_t na = 0, nb = 0;
    bool same = tu_read_file(a, &pa, &na) == 0 && tu_read_file(b, &pb, &nb) == 0 && na == nb &&
                memcmp(pa, pb, na) == 0;
    free(pa);
    free(pb);
    return same;
}

static const char *const short_kv[] = { "segment.bytes", "4096", "flush.ms", "0",
                                        "index.interval.bytes", "256", "max.message.bytes",
                                        "64K", NULL };

static void short_round(const topic_config *conf, const char *ref_conf, const char *save,
                        unsigned it)
{
    static const char *const ext[2] = { "index", "timeindex" };
    tu_rmrf(tdir);
    tu_rmrf(save);
    tf_short_io(SEED + it, 25, 60, 25);
    model_init(&M, false);
    topic *t = NULL;
    int rc = topic_open(tdir, TOPIC_CREATE, conf, &t);
    REQUIRE(rc == 0, "[%s] topic_open = %d (%s)", scenario, rc, topic_strerror(rc));
    for (int i = 0; i < 40; i++) {
        if (w_append(&M, t) != 0)
            failf("[%s] append %d: %s", scenario, i, M.first_error);
        if (i % 10 == 3 && w_commit(&M, t) != 0)
            failf("[%s] commit: %s", scenario, M.first_error);
        if (i == 20 && topic_commit(t, "other-group", 5) != 0)
            failf("[%s] commit to a second group failed", scenario);
    }
    if (w_close(&M, t) != 0)
        failf("[%s] close: %s", scenario, M.first_error);
    char *conf_path = tu_path(tdir, "topic.conf");
    if (!same_file(conf_path, ref_conf))
        failf("[%s] topic.conf differs from the one written without short writes", scenario);
    free(conf_path);
    /* The next open rebuilds the indexes of the sealed segments and stores
     * them (pwrite); they must come out as they were. */
    uint64_t *bases = NULL;
    int nseg = tu_list_segments(tdir, &bases);
    if (nseg < 3)
        failf("[%s] only %d segments", scenario, nseg);
    mkdir(save, 0755);
    for (int s = 0; s + 1 < nseg; s++)
        for (int k = 0; k < 2; k++) {
            char *from = tu_segment_path(tdir, bases[s], ext[k]);
            char *to = tu_segment_path(save, bases[s], ext[k]);
            if (tu_copy_file(from, to) != 0 || unlink(from) != 0)
                failf("[%s] moving %s away failed", scenario, from);
            free(from);
            free(to);
        }
    t = NULL;
    rc = topic_open(tdir, 0, NULL, &t);
    if (rc != 0) {
        failf("[%s] reopen = %d (%s)", scenario, rc, topic_strerror(rc));
        free(bases);
        return;
    }
    check_all(t, &M, scenario);
    uint64_t gv = 0;
    if (topic_committed(t, G_NAME, &gv) != 0 || gv != M.g_ok)
        failf("[%s] committed position %" PRIu64 ", expected %" PRIu64, scenario, gv, M.g_ok);
    if (topic_committed(t, "other-group", &gv) != 0 || gv != 5)
        failf("[%s] the second group's position was lost", scenario);
    if ((rc = topic_close(t)) != 0)
        failf("[%s] close = %d", scenario, rc);
    for (int s = 0; s + 1 < nseg; s++)
        for (int k = 0; k < 2; k++) {
            char *a = tu_segment_path(tdir, bases[s], ext[k]);
            char *b = tu_segment_path(save, bases[s], ext[k]);
            if (!same_file(a, b))
                failf("[%s] the rebuilt %s differs from the original", scenario, a);
            free(a);
            free(b);
        }
    free(bases);
    sh->images += tf_short_count();
    sh->points += tf_eintr_count();
    tf_short_io(0, 0, 0, 0);
    vexp e = { .must = M.n, .maxend = M.n, .exact = true, .g_live = true, .g_ok = M.g_ok };
    verify_dir(tdir, &M, &e, scenario);
}

static void short_child(void *arg)
{
    (void)arg;
    topic_config *conf = make_conf(short_kv);
    char *ref = tu_path(tmp, "ref");
    char *save = tu_path(tmp, "save");
    /* The reference: topic.conf as written without short transfers. */
    topic *t = NULL;
    int rc = topic_open(ref, TOPIC_CREATE, conf, &t);
    if (rc == 0)
        rc = topic_close(t);
    char *ref_conf = tu_path(ref, "topic.conf");
    if (rc != 0)
        failf("reference topic: %d", rc);
    unsigned rounds = 4 * iterations();
    for (unsigned it = 0; it < rounds && rc == 0; it++) {
        snprintf(scenario, sizeof scenario, "short writes and EINTR, round %u", it);
        short_round(conf, ref_conf, save, it);
        sh->runs++;
    }
    free(ref_conf);
    free(ref);
    free(save);
    topic_config_free(conf);
}

static void test_short_writes_eintr(void **state)
{
    (void)state;
    snprintf(scenario, sizeof scenario, "short writes and EINTR");
    isolated(short_child, NULL, 120 * (int)iterations());
    printf("  %ld rounds: %ld short transfers, %ld EINTR failures injected\n", sh->runs,
           sh->images, sh->points);
    if (sh->runs > 0 && (sh->images == 0 || sh->points == 0))
        failf("the short-write test injected %ld short transfers and %ld EINTR", sh->images,
              sh->points);
    end_test("short_writes_eintr");
}

/* ------------------------------------------------------------------------ */
/* 4. ENOSPC when the next segment is created                                */

/* With spares: after each append, the workload waits for the spare the
 * writer asked for, so that every roll after the request takes it. */
static bool await_spares;

static void await_spare(topic *t)
{
    if (await_spares)
        tf_await_spare(t, 5000);
}

static const char *const enospc_kv[] = { "segment.bytes", "4096", "flush.ms", "0", NULL };

/* k == 0: the disk is full from the creation of the second segment on
 * (every later fallocate of a .log file fails); k == 1: only the first one
 * fails; k == 2: as 0, with the user's disk quota exhausted (EDQUOT), which
 * the caller gets as -ENOSPC too: it is a full disk for that user.  (Index files get their space entry by entry; an entry that finds
 * none is left out, so their fallocate failing is no error.) */
static void enospc_child(void *arg)
{
    int k = *(const int *)arg;
    topic_config *conf = make_conf(enospc_kv);
    tu_rmrf(tdir);
    tf_reset();
    model_init(&M, false);
    M.next_id = 1;   /* record 0 is bigger than a segment: not for this test */
    topic *t = NULL;
    int rc = topic_open(tdir, TOPIC_CREATE, conf, &t);
    REQUIRE(rc == 0, "[%s] topic_open = %d", scenario, rc);
    tf_arm_suffix(TF_FALLOCATE, ".log", 1, k == 2 ? EDQUOT : ENOSPC, k != 1);
    uint32_t id = 0;
    for (int i = 0; i < 200; i++) {
        id = M.next_id;
        if ((rc = w_append(&M, t)) != 0)
            break;
    }
    REQUIRE(rc == -ENOSPC, "[%s] the append that needed a new segment = %d (%s), expected -ENOSPC",
            scenario, rc, topic_strerror(rc));
    uint64_t end = topic_end_offset(t);
    if (end != M.n || M.n == 0)
        failf("[%s] end offset %" PRIu64 " after -ENOSPC, %" PRIu64 " records acknowledged",
              scenario, end, M.n);
    if (tu_count_suffix(tdir, ".log") != 1)
        failf("[%s] the failed segment left files behind (%d .log files)", scenario,
              tu_count_suffix(tdir, ".log"));
    check_all(t, &M, scenario);
    if (k != 1) {
        /* Not sticky: the same record fails the same way, not with
         * TOPIC_EFAILED; syncs and reads work. */
        rc = w_append_id(&M, t, id);
        if (rc != -ENOSPC)
            failf("[%s] the same append again on the full disk = %d (%s)", scenario, rc,
                  topic_strerror(rc));
        if ((rc = w_sync(&M, t)) != 0)
            failf("[%s] topic_sync on the full disk = %d (%s): a failed roll is not sticky",
                  scenario, rc, topic_strerror(rc));
        check_all(t, &M, scenario);
    }
    tf_disarm();
    rc = w_append_id(&M, t, id);
    if (rc != 0 || M.n != end + 1)
        failf("[%s] the same append once space came back = %d (%s), end %" PRIu64 ", expected %"
              PRIu64, scenario, rc, topic_strerror(rc), M.n, end + 1);
    for (int i = 0; i < 20; i++)
        if (w_append(&M, t) != 0)
            failf("[%s] appends once space came back: %s", scenario, M.first_error);
    check_all(t, &M, scenario);
    if ((rc = w_close(&M, t)) != 0)
        failf("[%s] topic_close = %d (%s)", scenario, rc, topic_strerror(rc));
    vexp e = { .must = M.n, .maxend = M.n, .exact = true, .g_live = true, .g_ok = NONE };
    verify_dir(tdir, &M, &e, scenario);
    topic_config_free(conf);
}

static void test_enospc_at_roll(void **state)
{
    (void)state;
    static const char *const names[3] = { "the disk stays full", "one fallocate fails",
                                          "the disk quota stays exhausted (EDQUOT)" };
    for (int k = 0; k < 3; k++) {
        snprintf(scenario, sizeof scenario, "ENOSPC when the second segment is created: %s",
                 names[k]);
        isolated(enospc_child, &k, 60);
    }
    end_test("enospc_at_roll");
}

/*
 * Failures while the flusher makes a spare segment, or while the roll
 * renames one (every segment gets a spare here: topic__spare_min = 0).
 * Neither is the appends' error: a spare that cannot be made is not made,
 * and a roll whose spare cannot be renamed makes its segment itself.  Every
 * append succeeds, every record reads back, and no spare file outlives the
 * close.
 */
struct spare_fault {
    const char *what;
    int kind;
    const char *suffix;
    int err;
    bool persistent;
};

static const struct spare_fault spare_faults[] = {
    { "one fallocate of a spare fails (ENOSPC)", TF_FALLOCATE, "spare.log.tmp", ENOSPC, false },
    { "every fallocate of a spare fails (EDQUOT)", TF_FALLOCATE, "spare.log.tmp", EDQUOT, true },
    { "a spare's first rename fails (EIO)", TF_RENAMEAT, ".index", EIO, false },
    { "a spare's second rename fails (EIO)", TF_RENAMEAT, ".timeindex", EIO, false },
    { "a spare's last rename fails (ENOSPC)", TF_RENAMEAT, ".log", ENOSPC, false },
};

static void spare_fault_child(void *arg)
{
    const struct spare_fault *f = arg;
    topic_config *conf = make_conf(enospc_kv);
    tu_rmrf(tdir);
    tf_reset();
    tf_spares(true);   /* this child only */
    await_spares = true;
    model_init(&M, false);
    M.next_id = 1;   /* record 0 is bigger than a segment: not for this test */
    topic *t = NULL;
    int rc = topic_open(tdir, TOPIC_CREATE, conf, &t);
    REQUIRE(rc == 0, "[%s] topic_open = %d", scenario, rc);
    tf_arm_suffix(f->kind, f->suffix, 1, f->err, f->persistent);
    for (int i = 0; i < 120; i++) {
        if ((rc = w_append(&M, t)) != 0)
            failf("[%s] append %d = %d (%s): a spare's failure is not the appends'", scenario,
                  i, rc, topic_strerror(rc));
        await_spare(t);
    }
    if (tf_fired() == 0)
        failf("[%s] the fault never fired: no spare was made or taken", scenario);
    /* A spare that could not be made is not asked for again until the
     * next roll: at most one try per segment. */
    int segments = tu_count_suffix(tdir, ".log");
    if (tf_fired() > segments)
        failf("[%s] %ld failed calls for %d segments: the spare was tried again and again",
              scenario, tf_fired(), segments);
    tf_disarm();
    check_all(t, &M, scenario);
    if ((rc = w_close(&M, t)) != 0)
        failf("[%s] topic_close = %d (%s)", scenario, rc, topic_strerror(rc));
    if (tu_count_suffix(tdir, ".tmp") != 0)
        failf("[%s] %d *.tmp files after the close", scenario, tu_count_suffix(tdir, ".tmp"));
    vexp e = { .must = M.n, .maxend = M.n, .exact = true, .g_live = true, .g_ok = NONE };
    verify_dir(tdir, &M, &e, scenario);
    await_spares = false;
    topic_config_free(conf);
}

static void test_spare_faults(void **state)
{
    (void)state;
    for (size_t k = 0; k < sizeof spare_faults / sizeof spare_faults[0]; k++) {
        snprintf(scenario, sizeof scenario, "spare segments: %s", spare_faults[k].what);
        isolated(spare_fault_child, (void *)&spare_faults[k], 60);
    }
    end_test("spare_faults");
}

/* ------------------------------------------------------------------------ */
/* 4b. Out of map areas or address space                                     */

/*
 * A mapping that fails with ENOMEM makes the handle give back the mappings
 * of the segments nobody is using, and try again (lib/seglist.c).  Here one
 * mmap in every few fails with ENOMEM while four threads read a topic of
 * many small segments (random topic_reads, and cursors from the start) and
 * a writer appends to it, rolling a segment every few appends.  Segments
 * are given back and mapped again all the time: under ThreadSanitizer this
 * is the test of that hand-over.  No read may return wrong bytes, and an
 * error other than -ENOMEM (which a read may get when every loaded segment
 * is in use at that moment) is a failure.
 */
enum { UI_READERS = 4, UI_LEN = 200, UI_FIRST = 3000 };

struct ui_shared {
    topic *t;
    _Atomic bool stop;
    _Atomic long reads, enomem, bad;
};

static void ui_value(uint64_t off, unsigned char *v)
{
    for (int i = 0; i < UI_LEN; i++)
        v[i] = (unsigned char)(off * 31 + (uint64_t)i);
}

static void *ui_reader(void *arg)
{
    struct ui_shared *u = arg;
    unsigned char buf[UI_LEN], want[UI_LEN];
    uint64_t x = (uint64_t)(uintptr_t)&buf;
    for (int round = 0; !atomic_load(&u->stop); round++) {
        if (round % 4 == 0) {
            topic_cursor *c = NULL;
            int rc = topic_cursor_open(u->t, 0, &c);
            for (int i = 0; rc == 0 && i < 500; i++) {
                topic_record r;
                rc = topic_cursor_next(c, &r);
                if (rc == 0) {
                    ui_value(r.offset, want);
                    if (r.value_len != UI_LEN || memcmp(r.value, want, UI_LEN) != 0)
                        atomic_fetch_add(&u->bad, 1);
                    atomic_fetch_add(&u->reads, 1);
                }
            }
            if (rc == -ENOMEM)
                atomic_fetch_add(&u->enomem, 1);
            else if (rc != 0 && rc != TOPIC_END)
                atomic_fetch_add(&u->bad, 1);
            topic_cursor_close(c);
            continue;
        }
        for (int i = 0; i < 200; i++) {
            x = x * 6364136223846793005ull + 1442695040888963407ull;
            uint64_t end = topic_end_offset(u->t);
            uint64_t off = (x >> 17) % end;
            size_t len = 0;
            int rc = topic_read(u->t, off, buf, sizeof buf, &len);
            ui_value(off, want);
            if (rc == -ENOMEM)
                atomic_fetch_add(&u->enomem, 1);
            else if (rc != 0 || len != UI_LEN || memcmp(buf, want, UI_LEN) != 0)
                atomic_fetch_add(&u->bad, 1);
            else
                atomic_fetch_add(&u->reads, 1);
        }
    }
    return NULL;
}

static void unload_idle_child(void *arg)
{
    (void)arg;
    static const char *const kv[] = { "segment.bytes", "4096", NULL };
    topic_config *conf = make_conf(kv);
    tu_rmrf(tdir);
    tf_reset();
    struct ui_shared u = { 0 };
    int rc = topic_open(tdir, TOPIC_CREATE, conf, &u.t);
    REQUIRE(rc == 0, "[%s] topic_open = %d", scenario, rc);
    unsigned char v[UI_LEN];
    uint64_t n = 0;
    for (; n < UI_FIRST; n++) {
        ui_value(n, v);
        REQUIRE(topic_append(u.t, v, sizeof v, NULL) == 0, "[%s] append %" PRIu64, scenario, n);
    }
    pthread_t th[UI_READERS];
    for (int i = 0; i < UI_READERS; i++)
        REQUIRE(pthread_create(&th[i], NULL, ui_reader, &u) == 0, "pthread_create");
    long mmaps0 = tf_count(TF_MMAP), append_enomem = 0;
    double until = now_s() + 1.5;
    while (now_s() < until) {
        /* The next mmap fails, whoever calls it. */
        tf_arm(TF_MMAP, tf_count(TF_MMAP) + 1, ENOMEM, false);
        ui_value(n, v);
        rc = topic_append(u.t, v, sizeof v, NULL);
        if (rc == 0)
            n++;
        else if (rc == -ENOMEM)
            append_enomem++;
        else
            failf("[%s] append %" PRIu64 " = %d (%s)", scenario, n, rc, topic_strerror(rc));
        usleep(100);
    }
    tf_disarm();
    atomic_store(&u.stop, true);
    for (int i = 0; i < UI_READERS; i++)
        pthread_join(th[i], NULL);
    long mmaps = tf_count(TF_MMAP) - mmaps0;
    printf("  %ld reads, %ld ENOMEM, %ld appends (%ld ENOMEM), %ld mmaps, %ld faults fired\n",
           atomic_load(&u.reads), atomic_load(&u.enomem), (long)(n - UI_FIRST), append_enomem,
           mmaps, tf_fired());
    if (atomic_load(&u.bad) != 0)
        failf("[%s] %ld reads returned wrong bytes or an error other than -ENOMEM", scenario,
              atomic_load(&u.bad));
    /* Segments given back were mapped again: far more mmaps than the
     * segments appended meanwhile (two per roll, and three per load). */
    if (append_enomem * 2 > (long)(n - UI_FIRST))
        failf("[%s] %ld appends failed with -ENOMEM, %ld succeeded: a failed roll is not tried "
              "again?", scenario, append_enomem, (long)(n - UI_FIRST));
    if (mmaps < 4 * (long)((n - UI_FIRST) / 15 + 1) + 1000)
        failf("[%s] only %ld mmaps: were segments given back and loaded again?", scenario, mmaps);
    if (atomic_load(&u.reads) < 2 * atomic_load(&u.enomem))
        failf("[%s] %ld reads, %ld of them -ENOMEM: a failed mapping is not tried again?",
              scenario, atomic_load(&u.reads), atomic_load(&u.enomem));
    for (uint64_t o = 0; o < n; o++) {
        size_t len = 0;
        unsigned char buf[UI_LEN];
        rc = topic_read(u.t, o, buf, sizeof buf, &len);
        ui_value(o, v);
        if (rc != 0 || len != UI_LEN || memcmp(buf, v, UI_LEN) != 0) {
            failf("[%s] offset %" PRIu64 " read back = %d (%s)", scenario, o, rc,
                  topic_strerror(rc));
            break;
        }
    }
    rc = topic_close(u.t);
    if (rc != 0)
        failf("[%s] topic_close = %d (%s)", scenario, rc, topic_strerror(rc));
    topic_config_free(conf);
}

static void test_unload_idle_segments(void **state)
{
    (void)state;
    snprintf(scenario, sizeof scenario, "the next mmap fails with ENOMEM, again and again, under readers");
    isolated(unload_idle_child, NULL, 120);
    end_test("unload_idle_segments");
}

/* ------------------------------------------------------------------------ */
/* 4c. Large batches written with pwrite()                                   */

/*
 * A batch of 64 KiB or more whose pages the page preparer has not set up
 * is written with pwrite() rather than through the mapping (lib/append.c).
 * Under flush.messages there is no preparer, so every such batch goes that
 * way; under the default settings, batches go one way or the other as the
 * preparer keeps up or not, across segment rolls.  Every record must read
 * back byte for byte, through the writer and after a reopen.  A pwrite()
 * of the log that fails must fail its append with the error and nothing
 * of it readable, refuse the appends after it (TOPIC_EFAILED: a failed
 * write is sticky), and leave a topic that reopens with every acknowledged
 * record and takes appends again.
 */
enum { PW_RECS = 100, PW_LEN = 1000 };

static int pw_batch(topic *t, uint64_t first, uint64_t seed, uint64_t *got)
{
    return tu_append_fill_batch(t, PW_RECS, PW_LEN, first, seed, got);
}

/* Every record below `end` is PW_LEN bytes of tu_fill(offset, seed). */
static void pw_check(topic *t, uint64_t end, uint64_t seed, const char *when)
{
    unsigned char buf[PW_LEN + 1];
    REQUIRE(topic_end_offset(t) == end, "[%s] %s: end offset %" PRIu64 ", expected %" PRIu64,
            scenario, when, topic_end_offset(t), end);
    for (uint64_t o = 0; o < end; o++) {
        size_t len = 0;
        int rc = topic_read(t, o, buf, sizeof buf, &len);
        REQUIRE(rc == 0 && len == PW_LEN && tu_check_fill(o, seed, buf, len) == 1,
                "[%s] %s: topic_read(%" PRIu64 ") = %d (%s), %zu bytes, %s", scenario, when, o,
                rc, topic_strerror(rc), len, rc == 0 ? "wrong bytes" : "no record");
    }
}

static void pw_child(void *arg)
{
    bool durable = *(const bool *)arg;
    static const char *const kv_durable[] = { "flush.messages", "1", NULL };
    static const char *const kv_rolls[] = { "segment.bytes", "1048576", NULL };
    topic_config *conf = make_conf(durable ? kv_durable : kv_rolls);
    const uint64_t seed = durable ? 11 : 12;
    int batches = durable ? 6 : 60;
    tu_rmrf(tdir);
    tf_reset();
    topic *t = NULL;
    int rc = topic_open(tdir, TOPIC_CREATE, conf, &t);
    REQUIRE(rc == 0, "[%s] topic_open = %d", scenario, rc);
    uint64_t end = 0, got = 0;
    for (int b = 0; b < batches; b++, end += PW_RECS) {
        rc = pw_batch(t, end, seed, &got);
        REQUIRE(rc == 0 && got == end, "[%s] batch %d: topic_append_batch = %d (%s), first %" PRIu64,
                scenario, b, rc, topic_strerror(rc), got);
    }
    pw_check(t, end, seed, "after the batches");
    if (!durable)
        REQUIRE(tu_count_suffix(tdir, ".log") > 2, "[%s] %d segments: the batches did not roll",
                scenario, tu_count_suffix(tdir, ".log"));
    /* The next pwrite() of a log file fails.  Under flush.messages the
     * next batch is certain to take it. */
    if (durable) {
        tf_arm_suffix(TF_PWRITE, ".log", 1, EIO, false);
        rc = pw_batch(t, end, seed, &got);
        REQUIRE(rc == -EIO, "[%s] the batch whose pwrite() failed = %d (%s), expected -EIO",
                scenario, rc, topic_strerror(rc));
        REQUIRE(tf_fired() == 1, "[%s] %ld failures injected", scenario, tf_fired());
        tf_disarm();
        rc = pw_batch(t, end, seed, &got);
        REQUIRE(rc == TOPIC_EFAILED, "[%s] the batch after it = %d (%s), expected TOPIC_EFAILED",
                scenario, rc, topic_strerror(rc));
        pw_check(t, end, seed, "after the failed pwrite()");
        (void)topic_close(t);   /* may report the failure again */
        rc = topic_open(tdir, 0, conf, &t);
        REQUIRE(rc == 0, "[%s] reopen after the failure = %d (%s)", scenario, rc,
                topic_strerror(rc));
        pw_check(t, end, seed, "reopened after the failure");
        rc = pw_batch(t, end, seed, &got);
        REQUIRE(rc == 0 && got == end, "[%s] a batch after the reopen = %d (%s), first %" PRIu64,
                scenario, rc, topic_strerror(rc), got);
        end += PW_RECS;
    }
    rc = topic_close(t);
    REQUIRE(rc == 0, "[%s] topic_close = %d (%s)", scenario, rc, topic_strerror(rc));
    rc = topic_open(tdir, 0, conf, &t);
    REQUIRE(rc == 0, "[%s] reopen = %d (%s)", scenario, rc, topic_strerror(rc));
    pw_check(t, end, seed, "reopened");
    rc = topic_close(t);
    REQUIRE(rc == 0, "[%s] topic_close = %d (%s)", scenario, rc, topic_strerror(rc));
    topic_config_free(conf);
}

static void test_batch_pwrite(void **state)
{
    (void)state;
    static const bool modes[2] = { true, false };
    static const char *const names[2] = {
        "batches of 100 KB under flush.messages=1, then a failed pwrite()",
        "batches of 100 KB with the page preparer, 1 MiB segments" };
    for (int k = 0; k < 2; k++) {
        snprintf(scenario, sizeof scenario, "%s", names[k]);
        isolated(pw_child, (void *)&modes[k], 120);
    }
    end_test("batch_pwrite");
}

/* ------------------------------------------------------------------------ */
/* 5. Power loss                                                             */

static void crash_workload(model *m, const topic_config *conf, int rounds)
{
    tu_rmrf(tdir);
    pl_start(tdir);
    marks(m);
    pl_auto(true);
    topic *t = NULL;
    int rc = topic_open(tdir, TOPIC_CREATE, conf, &t);
    REQUIRE(rc == 0, "topic_open = %d (%s)", rc, topic_strerror(rc));
    for (int r = 0; r < rounds; r++) {
        for (int i = 0; i < 30; i++) {
            rc = i % 7 == 3 ? w_batch(m, t, 2 + (size_t)(i % 3)) : w_append(m, t);
            REQUIRE(rc == 0, "append: %s", m->first_error);
            await_spare(t);
            if (!m->fm1 && i % 10 == 9)
                REQUIRE(w_sync(m, t) == 0, "sync: %s", m->first_error);
            if (i % 13 == 5)
                REQUIRE(w_commit(m, t) == 0, "commit: %s", m->first_error);
        }
        if (r + 1 < rounds) {
            REQUIRE(w_close(m, t) == 0, "close: %s", m->first_error);
            rc = topic_open(tdir, 0, conf, &t);
            REQUIRE(rc == 0, "reopen = %d (%s)", rc, topic_strerror(rc));
        }
    }
    /* The last records are left to the close (and to the power loss before). */
    for (int i = 0; i < 5; i++)
        REQUIRE(w_append(m, t) == 0, "append: %s", m->first_error);
    REQUIRE(w_close(m, t) == 0, "close: %s", m->first_error);
    pl_auto(false);
}

typedef struct pl_test {
    const char *name;
    const char *const *kv;
    bool fm1;
    bool spares;   /* every segment gets a spare made ahead (topic__spare_min = 0) */
} pl_test;

/* A crash image to recover from (and to lose power in again). */
typedef struct rec_image {
    char *dir;
    uint64_t mk[PL_MARKS];
    char why[160];
} rec_image;

static model M2;

/*
 * Power loss during recovery: opens a crash image (which the model takes as
 * entirely durable: it is what the disk held), which recovers it, appends,
 * syncs, appends and closes, with a capture at every crash point of that;
 * then checks every capture like the others.  What had to survive the first
 * power loss must survive the second; what the sync after recovery returned
 * for must too.
 */
static void recover_again(const rec_image *img, const topic_config *conf, uint64_t seed,
                          long *points, long *images)
{
    pl_start(img->dir);
    model_init(&M2, false);
    M2.must = img->mk[0];
    M2.reg = img->mk[1];
    M2.g_durable = img->mk[2];   /* no commit after recovery: these stay */
    M2.g_max = img->mk[3];
    memcpy(M2.id, M.id, sizeof M2.id);
    memcpy(M2.bfirst, M.bfirst, sizeof M2.bfirst);
    marks(&M2);
    pl_auto(true);
    topic *t = NULL;
    int rc = topic_open(img->dir, 0, conf, &t);
    if (rc == -ENOENT && img->mk[0] == 0) {
        pl_stop();
        return;   /* nothing was there to recover */
    }
    REQUIRE(rc == 0, "%s: topic_open = %d (%s)", img->why, rc, topic_strerror(rc));
    /* Offsets below the recovered end hold the first workload's records;
     * the new ones follow with ids of their own. */
    M2.n = topic_end_offset(t);
    M2.next_id = 100000;
    if (M2.reg < M2.n)
        M2.reg = M2.n;
    for (int i = 0; i < 6; i++) {
        rc = i == 2 ? w_batch(&M2, t, 3) : w_append(&M2, t);
        if (rc != 0)
            failf("%s: append after recovery: %s", img->why, M2.first_error);
        if (i == 3 && w_sync(&M2, t) != 0)
            failf("%s: topic_sync after recovery: %s", img->why, M2.first_error);
    }
    if (w_close(&M2, t) != 0)
        failf("%s: topic_close after recovery: %s", img->why, M2.first_error);
    pl_auto(false);
    *points += (long)pl_ncaptures();
    *images += verify_captures(&M2, 1 + iterations(), seed, img->why);
    pl_stop();
}

static void power_loss_child(void *arg)
{
    const pl_test *p = arg;
    topic_config *conf = make_conf(p->kv);
    uint64_t seed = SEED ^ (p->fm1 ? 1u : 2u) ^ (p->spares ? 4u : 0u);
    if (p->spares)
        tf_spares(true);   /* this child only */
    await_spares = p->spares;
    model_init(&M, p->fm1);
    crash_workload(&M, conf, 3);
    await_spares = false;
    sh->records = M.n;
    sh->points = (long)pl_ncaptures();
    for (size_t i = 0; i < pl_ncaptures(); i++)
        if (strncmp(pl_capture_why(i), "renameat spare.", 15) == 0)
            sh->spare_renames++;
    sh->images = verify_captures(&M, 1 + iterations(), seed, p->name);
    /* Some of the images again, this time losing power while recovering. */
    size_t nrec = 8 * (size_t)iterations();
    rec_image *imgs = calloc(nrec, sizeof *imgs);
    if (imgs == NULL)
        abort();
    size_t nc = pl_ncaptures(), n = 0, step = nc / (nrec / 2) + 1;
    for (size_t i = step / 2; i < nc && n < nrec; i += step)
        for (unsigned v = 0; v < 2 && n < nrec; v++) {
            rec_image *r = &imgs[n];
            char name[32];
            snprintf(name, sizeof name, "rec-%zu", n);
            r->dir = tu_path(tmp, name);
            pl_capture_marks(i, r->mk);
            snprintf(r->why, sizeof r->why, "%s: power loss while recovering from crash point "
                     "%zu (%s), image %u", p->name, i, pl_capture_why(i), v);
            if (!pl_capture_has_root(i) || pl_materialize(i, r->dir, seed, v) != 0) {
                free(r->dir);
                continue;
            }
            n++;
        }
    pl_stop();
    long points = 0, images = 0;
    for (size_t k = 0; k < n; k++) {
        snprintf(scenario, sizeof scenario, "%s", imgs[k].why);
        recover_again(&imgs[k], conf, seed ^ k, &points, &images);
        tu_rmrf(imgs[k].dir);
        free(imgs[k].dir);
    }
    free(imgs);
    sh->recovery_runs = (long)n;
    sh->recovery_points = points;
    sh->recovery_images = images;
    topic_config_free(conf);
}

static void power_loss_test(const pl_test *p)
{
    double t0 = now_s();
    snprintf(scenario, sizeof scenario, "%s: the workload", p->name);
    isolated(power_loss_child, (void *)p, 300 * (int)iterations());
    printf("  %s: %" PRIu64 " records, %ld crash points, %ld images checked; %ld images "
           "recovered with %ld crash points, %ld images checked; %.1f s\n", p->name,
           sh->records, sh->points, sh->images, sh->recovery_runs, sh->recovery_points,
           sh->recovery_images, now_s() - t0);
    if (sh->points < 100)
        failf("%s: only %ld crash points", p->name, sh->points);
    /* The workload waits for each spare it asked for (await_spare), so
     * most rolls take one: 15 of them, 45 renames, in every run here.  A
     * roll in the same append as the request makes its segment itself. */
    if (p->spares) {
        printf("  %s: %ld crash points after the rename of a spare's file\n", p->name,
               sh->spare_renames);
        if (sh->spare_renames < 30)
            failf("%s: only %ld renames of a spare's files", p->name, sh->spare_renames);
    }
    end_test(p->name);
}

static void test_power_loss_flush_messages(void **state)
{
    (void)state;
    static const char *const kv[] = { "segment.bytes", "4096", "flush.messages", "1",
                                      "flush.ms", "0", "index.interval.bytes", "512", NULL };
    static const pl_test p = { "power loss, flush.messages=1", kv, true, false };
    power_loss_test(&p);
}

static void test_power_loss_explicit_sync(void **state)
{
    (void)state;
    static const char *const kv[] = { "segment.bytes", "4096", "compression.type", "lz4", NULL };
    static const pl_test p = { "power loss, default policy and topic_sync", kv, false, false };
    power_loss_test(&p);
}

/*
 * The next segment made ahead by the flusher and renamed at the roll
 * (segment.c), which the library does only for segments of 64 MiB and more:
 * crash points while the flusher makes the spare's three files, between
 * their renames, and before the directory's sync that makes the new names
 * durable.  A power loss must not lose a record a sync covered, nor leave
 * a renamed name that recovery takes for a segment with the wrong records.
 */
static void test_power_loss_spare_segments(void **state)
{
    (void)state;
    static const char *const kv[] = { "segment.bytes", "4096", NULL };
    static const pl_test p = { "power loss, spare segments and topic_sync", kv, false, true };
    power_loss_test(&p);
}

/* ------------------------------------------------------------------------ */

static const int k_openat = TF_OPENAT, k_pwrite = TF_PWRITE, k_fsync = TF_FSYNC,
                 k_fdatasync = TF_FDATASYNC, k_fallocate = TF_FALLOCATE,
                 k_ftruncate = TF_FTRUNCATE, k_renameat = TF_RENAMEAT, k_unlinkat = TF_UNLINKAT,
                 k_mmap = TF_MMAP, k_flock = TF_FLOCK, k_pread = TF_PREAD, k_fstat = TF_FSTAT,
                 k_mkdir = TF_MKDIR, k_readdir = TF_READDIR;

#define FAULT_TEST(k) \
    { "fault_loop_" #k, test_fault_kind, fx_setup, fx_teardown, (void *)&k_##k }

int main(void)
{
    const struct CMUnitTest tests[] = {
        FAULT_TEST(openat),
        FAULT_TEST(pwrite),
        FAULT_TEST(fsync),
        FAULT_TEST(fdatasync),
        FAULT_TEST(fallocate),
        FAULT_TEST(ftruncate),
        FAULT_TEST(renameat),
        FAULT_TEST(unlinkat),
        FAULT_TEST(mmap),
        FAULT_TEST(flock),
        FAULT_TEST(pread),
        FAULT_TEST(fstat),
        FAULT_TEST(mkdir),
        FAULT_TEST(readdir),
        cmocka_unit_test_setup_teardown(test_fault_alloc, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_fsyncgate_sync, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_fsyncgate_flusher, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_short_writes_eintr, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_enospc_at_roll, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_spare_faults, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_unload_idle_segments, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_batch_pwrite, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_power_loss_flush_messages, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_power_loss_explicit_sync, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_power_loss_spare_segments, fx_setup, fx_teardown),
    };
    setvbuf(stdout, NULL, _IOLBF, 0);
    sh = mmap(NULL, sizeof *sh, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (sh == MAP_FAILED)
        return 99;
    /* TOPIC_FAULT_FILTER=pattern runs only the tests whose names match. */
    const char *filter = getenv("TOPIC_FAULT_FILTER");
    if (filter && *filter)
        cmocka_set_test_filter(filter);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
