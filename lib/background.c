/*
 * The writer's one background thread.  It does two things an append should
 * not wait for:
 *
 *  - flush.ms: every flush.ms it makes the records appended since the last
 *    sync durable (topic__sync), so that a power loss loses at most that
 *    window;
 *  - preparing pages: a page of a shared file mapping costs a fault (page
 *    allocation, zeroing, file-system bookkeeping) the first time it is
 *    written, about as much as the copy of its 4 KiB.  The thread maps the
 *    pages of the active segment a few MiB ahead of the append position
 *    with MADV_POPULATE_WRITE, so that on a machine with a spare core an
 *    append is a copy into memory that is already there.  When the thread
 *    falls behind, or the kernel lacks MADV_POPULATE_WRITE (before 5.14),
 *    appends take the faults themselves: slower, never wrong.
 *
 * The thread touches a segment only between topic__bg_prepare() and
 * topic__bg_release(); sealing (which shrinks the file) waits for it to let
 * go, since touching a page past the end of a file raises SIGBUS.
 */
#include <errno.h>
#include <sys/mman.h>
#include <time.h>

#include "internal.h"

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif

#define PREPARE_AHEAD (4u << 20)   /* keep this much ready past the end */
#define PREPARE_STEP  (1u << 20)   /* one madvise() call; the lock is free between */
#define PAGE_MASK     ((size_t)4095)

static void deadline_after(struct timespec *ts, int64_t ms)
{
    clock_gettime(CLOCK_MONOTONIC, ts);
    ts->tv_sec += (time_t)(ms / 1000);
    ts->tv_nsec += (long)(ms % 1000) * 1000000L;
    if (ts->tv_nsec >= 1000000000L) {
        ts->tv_sec++;
        ts->tv_nsec -= 1000000000L;
    }
}

static bool past(const struct timespec *ts)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return now.tv_sec > ts->tv_sec || (now.tv_sec == ts->tv_sec && now.tv_nsec >= ts->tv_nsec);
}

/* Prepares one step of pages; called and returns with append_lock held. */
static void prepare_step(topic *t)
{
    struct segment *s = t->pf_seg;
    size_t from = t->pf_done, n = t->pf_target - from;
    if (n > PREPARE_STEP)
        n = PREPARE_STEP;
    t->bg_busy = true;
    pthread_mutex_unlock(&t->append_lock);
    int rc = topic__os.madvise(s->map + from, n, MADV_POPULATE_WRITE);
    int err = errno;
    pthread_mutex_lock(&t->append_lock);
    t->bg_busy = false;
    pthread_cond_broadcast(&t->bg_idle);
    if (rc < 0 && (err == EINVAL || err == ENOSYS || err == EPERM))
        t->bg_prepare_ok = false;   /* an older kernel: leave it to the faults */
    if (t->pf_seg == s)
        t->pf_done = rc == 0 ? from + n : t->pf_target;
}

static void *bg_main(void *arg)
{
    topic *t = arg;
    pthread_setname_np(pthread_self(), "topic-bg");   /* as top(1) shows it */
    int64_t period = t->cfg.v[TOPIC_K_FLUSH_MS];
    struct timespec next_flush;
    deadline_after(&next_flush, period);
    pthread_mutex_lock(&t->append_lock);
    while (!t->bg_stopping) {
        if (t->pf_seg != NULL && t->pf_done < t->pf_target && t->bg_prepare_ok) {
            prepare_step(t);
            continue;
        }
        if (period > 0 && past(&next_flush)) {
            if (t->synced_end < atomic_load(&t->end) && t->failed == 0) {
                pthread_mutex_unlock(&t->append_lock);
                topic__sync(t);
                pthread_mutex_lock(&t->append_lock);
            }
            deadline_after(&next_flush, period);
            continue;
        }
        if (period > 0)
            pthread_cond_timedwait(&t->bg_cond, &t->append_lock, &next_flush);
        else
            pthread_cond_wait(&t->bg_cond, &t->append_lock);
    }
    pthread_mutex_unlock(&t->append_lock);
    return NULL;
}

void topic__bg_prepare(topic *t, struct segment *s, size_t upto)
{
    if (!t->bg_running || !t->bg_prepare_ok)
        return;
    if (t->pf_seg != s) {
        if (t->pf_seg != NULL || t->bg_busy)
            return;   /* still letting go of the last one */
        t->pf_seg = s;
        t->pf_done = t->pf_target = upto & ~PAGE_MASK;
    }
    if (upto + PREPARE_AHEAD / 2 <= t->pf_target)
        return;
    /* Whole pages only: madvise() refuses a start that is not page-aligned. */
    size_t target = (upto + PREPARE_AHEAD) & ~PAGE_MASK, limit = s->map_len & ~PAGE_MASK;
    t->pf_target = target < limit ? target : limit;
    pthread_cond_signal(&t->bg_cond);
}

void topic__bg_release(topic *t)
{
    t->pf_seg = NULL;
    while (t->bg_busy)
        pthread_cond_wait(&t->bg_idle, &t->append_lock);
}

int topic__bg_start(topic *t)
{
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&t->bg_cond, &attr);
    pthread_condattr_destroy(&attr);
    pthread_cond_init(&t->bg_idle, NULL);
    t->bg_prepare_ok = true;
    int rc = pthread_create(&t->bg, NULL, bg_main, t);
    if (rc != 0) {
        pthread_cond_destroy(&t->bg_cond);
        pthread_cond_destroy(&t->bg_idle);
        return -rc;
    }
    t->bg_running = true;
    return 0;
}

void topic__bg_stop(topic *t)
{
    if (!t->bg_running)
        return;
    pthread_mutex_lock(&t->append_lock);
    t->bg_stopping = true;
    pthread_cond_signal(&t->bg_cond);
    pthread_mutex_unlock(&t->append_lock);
    pthread_join(t->bg, NULL);
    pthread_cond_destroy(&t->bg_cond);
    pthread_cond_destroy(&t->bg_idle);
    t->bg_running = false;
}
