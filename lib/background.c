/*
 * The writer's two background threads, for work an append should not wait
 * for.  Neither runs before it has work: the first append (or commit under
 * flush.ms) starts "topic-flush", unless retention is set, which topic_open()
 * starts it for; the first append that wants pages prepared starts
 * "topic-prep".  topic_close() joins both.  Their state lives in the topic
 * under append_lock.
 *
 * "topic-flush" seals the segments appends have rolled away from (see
 * sync.c), makes the next segment's files ahead of the roll once a large
 * active segment is half full (the spare, segment.c), every flush.ms
 * makes the records appended since the last sync durable, so that a power
 * loss loses at most that window, and applies the retention settings
 * after every seal and once a second (and close_writer once more, after
 * sealing what the flusher had not).
 *
 * "topic-prep" (not under flush.messages, see topic__bg_start) prepares
 * pages.  A page of a shared file mapping costs a fault (allocation,
 * zeroing, file-system bookkeeping) the first time it is written, about as
 * much as copying its 4 KiB.  The thread maps the pages of the active
 * segment ahead of the append position with MADV_POPULATE_WRITE, so that
 * on a machine with a spare core an append is a copy into memory that is
 * already there.  It allocates the file's space there first (see
 * topic__segment_reserve_ahead), which appends used to wait for.  How far
 * ahead follows the appends' speed: 4 MiB, doubled up to 64 MiB while
 * appends use up half of it in under 50 ms, and halved again when they
 * take over a second.  A preparer only 4 MiB ahead of an appender writing
 * 1.5 GB/s has under 3 ms in hand, and any pause (the flusher or the
 * kernel's writeback on the other core) let the appender pass it: it took
 * 12-19% of the log's page faults itself, and 3% with 64 MiB.  A slow
 * topic keeps the small distance, because each prepared page is reserved
 * on disk and, if a sync comes first, written as zeros.  When it falls
 * behind, or the kernel lacks MADV_POPULATE_WRITE (before 5.14), appends
 * take the faults (and reserve the space) themselves, and large batches
 * are written with pwrite() (append.c): slower, never wrong.
 * It touches a segment only between topic__bg_prepare() and
 * topic__bg_release(), and the sealer waits for it to let go
 * (topic__bg_wait_released) before shrinking the file: touching a page
 * past the end of a file raises SIGBUS.
 */
#include <errno.h>
#include <sys/mman.h>
#include <time.h>

#include "internal.h"

#define PREPARE_AHEAD_MIN (4u << 20)    /* keep at least this much ready past the end */
#define PREPARE_AHEAD_MAX (64u << 20)   /* and at most this much */
#define PREPARE_FAST_MS   50            /* half of it used this fast: look further */
#define PREPARE_SLOW_MS   1000          /* half of it used this slowly: less far */
#define PREPARE_STEP      (1u << 20)    /* one madvise() call; the lock is free between */
#define PREPARE_LEAP      (4u << 20)    /* how far past an appender that overtook it */
#define PAGE_MASK     ((size_t)4095)

/* Segments this large get a spare made ahead of their roll (internal.h). */
size_t topic__spare_min = (size_t)64 << 20;

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

/* Milliseconds from `now` until `period` has passed since `since`, without
 * adding them: flush.ms may be as large as INT64_MAX. */
static int64_t time_left(int64_t since, int64_t period, int64_t now)
{
    int64_t passed = now > since ? now - since : 0;
    return passed >= period ? 0 : period - passed;
}

static void *flusher_main(void *arg)
{
    topic *t = arg;
    pthread_setname_np(pthread_self(), "topic-flush");   /* as top(1) shows it */
    int64_t period = t->cfg.v[TOPIC_K_FLUSH_MS];
    bool retention = topic__has_retention(t);
    int64_t next_retention = topic__mono_ms() + 1000;
    topic__lock(&t->append_lock);
    while (!t->bg_stopping) {
        int64_t now = topic__mono_ms();
        if (t->unsealed != NULL && t->failed == 0) {
            topic__unlock(&t->append_lock);
            /* Retention after each seal, not after the whole backlog:
             * under appends faster than the disk syncs, the backlog never
             * empties, and the log would grow past retention.bytes by
             * many segments before anything was deleted. */
            if (topic__seal_one(t) > 0 && retention)
                topic__apply_retention(t);
            topic__lock(&t->append_lock);
            continue;
        }
        /* spare_wanted stays set while the spare is made, so that no
         * second request comes for the same names. */
        if (t->spare_wanted && t->spare == NULL && t->failed == 0) {
            size_t cap = (size_t)t->cfg.v[TOPIC_K_SEGMENT_BYTES];
            /* What the first appends to it reserve (topic__bg_prepare). */
            size_t reserve = TOPIC__RESERVE_STEP + t->pf_ahead;
            topic__unlock(&t->append_lock);
            struct segment *sp = NULL;
            /* A spare that cannot be made is no error: the roll makes
             * the segment itself, and reports what fails then.  Asking
             * again at every append until the roll made a full disk try
             * (three files, a failed fallocate, three unlinks) dozens of
             * times per segment. */
            int rc = topic__spare_create(t, cap, reserve, &sp);
            topic__lock(&t->append_lock);
            t->spare = sp;
            t->spare_wanted = false;
            t->spare_refused = rc < 0;
            continue;
        }
        /* flush.ms counts from the oldest record not yet synced. */
        if (period > 0 && t->unsynced_since_ms != 0 && t->failed == 0 &&
            now - t->unsynced_since_ms >= period) {
            topic__unlock(&t->append_lock);
            topic__sync(t);
            topic__groups_sync(t);   /* positions committed through this handle */
            topic__lock(&t->append_lock);
            continue;
        }
        if (period > 0 && t->commits_since_ms != 0 && now - t->commits_since_ms >= period) {
            t->commits_since_ms = 0;
            topic__unlock(&t->append_lock);
            topic__groups_sync(t);
            topic__lock(&t->append_lock);
            continue;
        }
        if (retention && now >= next_retention) {
            topic__unlock(&t->append_lock);
            topic__apply_retention(t);
            topic__lock(&t->append_lock);
            next_retention = topic__mono_ms() + 1000;
            continue;
        }
        /* Sleep until the sooner of those two deadlines, or a signal: an
         * append that leaves the first unsynced record, a roll, close. */
        int64_t wait = -1;
        if (period > 0 && t->unsynced_since_ms != 0 && t->failed == 0)
            wait = time_left(t->unsynced_since_ms, period, now);
        if (period > 0 && t->commits_since_ms != 0 &&
            (wait < 0 || time_left(t->commits_since_ms, period, now) < wait))
            wait = time_left(t->commits_since_ms, period, now);
        if (retention && (wait < 0 || next_retention - now < wait))
            wait = next_retention - now;
        if (wait >= 0) {
            struct timespec ts;
            deadline_after(&ts, wait);
            topic__flush_sleep(t, &ts);
        } else {
            topic__flush_sleep(t, NULL);
        }
    }
    topic__unlock(&t->append_lock);
    return NULL;
}

/*
 * The preparer keeps to its own lock, prep_lock, and never takes append_lock:
 * an appender holds that lock for the whole of a batch, so a preparer that
 * needed it to note each step's progress spent most of its time queued
 * behind the very appends it was meant to run ahead of, and they took the
 * faults themselves.  Lock order: append_lock, then prep_lock.
 *
 * Under prep_lock: pf_seg, pf_target, pf_done, pf_ready_lo and _hi (the
 * pages it has finished, for topic__bg_ready), pf_leap, prep_cur, prep_ok
 * and prep_stopping.  The appender remembers what it last asked for
 * (pf_asked_seg, and pf_next, where it must ask again; under append_lock)
 * so that most appends decide without taking prep_lock at all.
 */

/* Prepares one step of pages; called and returns with prep_lock held. */
static void prepare_step(topic *t)
{
    struct segment *s = t->pf_seg;
    size_t from = t->pf_done;
    /* An appender that has passed the preparer (held up by the disk's
     * block allocator, say) takes the faults of the pages ahead of it
     * anyway, and a preparer that followed it would touch the very pages
     * it was faulting: each waited for the other's page locks (3400 waits
     * of the appender in two runs of batches of 100 B, when the preparer
     * allocated all the space).  The preparer jumps ahead of it instead:
     * 4 MiB, or half its distance when large batches have asked it to
     * (topic__bg_ready). */
    size_t at = atomic_load_explicit(&s->len, memory_order_relaxed);
    size_t leap = t->pf_leap > PREPARE_LEAP ? t->pf_leap : PREPARE_LEAP;
    t->pf_leap = 0;
    size_t past = (at + leap) & ~PAGE_MASK;
    if (from < at && past < t->pf_target)
        from = past;
    size_t target = t->pf_target, n = target - from;
    if (n > PREPARE_STEP)
        n = PREPARE_STEP;
    t->prep_cur = s;
    pthread_mutex_unlock(&t->prep_lock);
    /* The space first: pages past the allocated part of the file would
     * raise SIGBUS.  It stops short where the disk is full, or where a
     * roll has shut the segment's reservation (and kept the pages up to
     * it mapped).  Nobody shrinks s while prep_cur points at it. */
    size_t have = atomic_load_explicit(&s->reserved, memory_order_acquire) & ~PAGE_MASK;
    if (from + n > have)
        have = topic__segment_reserve_ahead(t, s, target) & ~PAGE_MASK;
    bool whole = from + n <= have;
    if (!whole)
        n = have > from ? have - from : 0;
    int rc = n > 0 ? topic__os.madvise(s->map + from, n, MADV_POPULATE_WRITE) : 0;
    int err = rc < 0 ? errno : 0;
    pthread_mutex_lock(&t->prep_lock);
    t->prep_cur = NULL;
    pthread_cond_broadcast(&t->prep_idle);
    if (err == EINVAL || err == ENOSYS || err == EPERM)
        t->prep_ok = false;   /* an older kernel: leave it to the faults */
    /* After a failure, nothing more until the appender asks again: on a
     * full disk, one try per request rather than one per step. */
    if (t->pf_seg == s) {
        t->pf_done = rc == 0 && whole ? from + n : t->pf_target;
        if (rc == 0 && n > 0) {
            if (from != t->pf_ready_hi)   /* a jump: pages below it were not done */
                t->pf_ready_lo = from;
            t->pf_ready_hi = from + n;
        }
    }
}

static void *preparer_main(void *arg)
{
    topic *t = arg;
    pthread_setname_np(pthread_self(), "topic-prep");
    pthread_mutex_lock(&t->prep_lock);
    while (!t->prep_stopping) {
        if (t->pf_seg != NULL && t->pf_done < t->pf_target && t->prep_ok)
            prepare_step(t);
        else
            pthread_cond_wait(&t->prep_cond, &t->prep_lock);
    }
    pthread_mutex_unlock(&t->prep_lock);
    return NULL;
}

void topic__bg_prepare_more(topic *t, struct segment *s, size_t upto, int64_t mono_ms)
{
    /* Half full: time for the flusher to make the next segment's files
     * (segment.c).  Small segments are made at the roll, as they always
     * were: they roll often, and each roll's pause is short. */
    size_t half = s->capacity >= topic__spare_min ? s->capacity / 2 : 0;
    if (half > 0 && upto >= half && t->spare == NULL && !t->spare_wanted && !t->spare_refused &&
        t->flusher_running) {
        t->spare_wanted = true;
        topic__flush_signal(t);
    }
    if (!t->preparer_running) {
        /* Started by the first append that asks, not by topic_open(): a
         * handle that never appends (one opened to look, or to delete)
         * costs no thread, and opening and closing it is quicker. */
        if (!t->preparer_wanted)
            return;
        t->preparer_wanted = false;   /* one try: without it, appends fault */
        if (topic__os.thread_create(&t->preparer, NULL, preparer_main, t) != 0)
            return;
        t->preparer_running = true;
    }
    if (s == t->pf_asked_seg) {
        /* Half the distance used since the last request: how fast? */
        int64_t took = mono_ms - t->pf_asked_ms;
        if (took < PREPARE_FAST_MS && t->pf_ahead < PREPARE_AHEAD_MAX)
            t->pf_ahead *= 2;
        else if (took > PREPARE_SLOW_MS && t->pf_ahead > PREPARE_AHEAD_MIN)
            t->pf_ahead /= 2;
    }
    t->pf_asked_ms = mono_ms;
    /* Whole pages only: madvise() refuses a start that is not page-aligned.
     * Pages past the allocated part of the file are not prepared (they
     * would raise SIGBUS if touched), so the space comes first.  A
     * preparer well ahead allocates it itself (prepare_step), off the
     * appends' path; one that is not (appends of large batches outrun it)
     * would only fall further behind, and the appender allocates it here.
     * If that fails, the append that needs the space reports the error. */
    size_t want = (upto + t->pf_ahead) & ~PAGE_MASK, limit = s->capacity & ~PAGE_MASK;
    if (want > limit)
        want = limit;
    t->pf_asks++;
    t->pf_asked_seg = s;
    /* Once the request reaches the end of the segment there is nothing
     * more to ask for in it, except the spare at its half (above).  The
     * appends of its last half distance used to ask again each time, every
     * one taking prep_lock and checking the reservation: the last 32 MiB
     * of every segment at the largest distance, and every append to a
     * segment of under twice the distance. */
    size_t next = want == limit ? SIZE_MAX : want > t->pf_ahead / 2 ? want - t->pf_ahead / 2 : 0;
    if (upto < half && next > half)
        next = half;
    t->pf_next = next;
    pthread_mutex_lock(&t->prep_lock);
    if ((t->pf_seg != s || t->pf_done < upto + t->pf_ahead / 4) &&   /* not well ahead */
        !atomic_load_explicit(&s->reserve_small, memory_order_relaxed)) {   /* disk not short */
        pthread_mutex_unlock(&t->prep_lock);
        (void)topic__segment_reserve(t, s, want);
        pthread_mutex_lock(&t->prep_lock);
    }
    if (t->pf_seg != s) {
        t->pf_seg = s;
        t->pf_done = t->pf_ready_lo = t->pf_ready_hi = upto & ~PAGE_MASK;
        t->pf_leap = 0;
    }
    if (want > t->pf_target)
        t->pf_target = want;
    if (t->pf_done < t->pf_target)
        pthread_cond_signal(&t->prep_cond);
    pthread_mutex_unlock(&t->prep_lock);
}

bool topic__bg_ready(topic *t, const struct segment *s, size_t from, size_t upto)
{
    if (!t->preparer_running)
        return false;
    pthread_mutex_lock(&t->prep_lock);
    bool ready = t->pf_seg == s && t->pf_ready_lo <= from && upto <= t->pf_ready_hi;
    if (!ready && t->pf_seg == s)
        t->pf_leap = t->pf_ahead / 2;
    pthread_mutex_unlock(&t->prep_lock);
    return ready;
}

void topic__bg_release(topic *t)
{
    if (!t->preparer_running)
        return;
    pthread_mutex_lock(&t->prep_lock);
    t->pf_seg = NULL;
    t->pf_done = t->pf_target = t->pf_ready_lo = t->pf_ready_hi = t->pf_leap = 0;
    pthread_mutex_unlock(&t->prep_lock);
    t->pf_asked_seg = NULL;
}

void topic__bg_wait_released(topic *t, const struct segment *s)
{
    pthread_mutex_lock(&t->prep_lock);
    while (t->prep_cur == s)
        pthread_cond_wait(&t->prep_idle, &t->prep_lock);
    pthread_mutex_unlock(&t->prep_lock);
}

void topic__bg_seal_later(topic *t, struct segment *s)
{
    topic__segment_ref(s);   /* retention may drop it from the list meanwhile */
    s->next_unsealed = NULL;
    *t->unsealed_tail = s;
    t->unsealed_tail = &s->next_unsealed;
    t->nunsealed++;
    topic__flush_signal(t);
}

void topic__bg_init(topic *t)
{
    pthread_cond_init(&t->prep_cond, NULL);
    pthread_cond_init(&t->prep_idle, NULL);
    pthread_mutex_init(&t->prep_lock, NULL);
    pthread_mutex_init(&t->reserve_lock, NULL);
    t->append_lock = (struct topic_lock){ 0, 0, 0, 0 };
    pthread_mutex_init(&t->seal_lock, NULL);
    pthread_mutex_init(&t->drop_lock, NULL);
    pthread_mutex_init(&t->group_lock, NULL);
    t->unsealed_tail = &t->unsealed;
    t->pf_ahead = PREPARE_AHEAD_MIN;
}

int topic__bg_flusher(topic *t)
{
    if (t->flusher_running)
        return 0;
    int rc = topic__os.thread_create(&t->flusher, NULL, flusher_main, t);
    if (rc != 0)
        return -rc;
    t->flusher_running = true;
    return 0;
}

int topic__bg_start(topic *t)
{
    t->prep_ok = true;
    /* Prepared pages are dirty zeros that the next sync writes out, only to
     * be written again with data: where every append is synced
     * (flush.messages), that doubles the writes and the preparer is left
     * out.  Without it appends only run slower: not worth failing for. */
    t->preparer_wanted = t->cfg.v[TOPIC_K_FLUSH_MESSAGES] == 0;
    /* Retention deletes old segments of an idle topic too, so it needs the
     * flusher from the start.  Without it the flusher has nothing to do
     * before the first append or commit, which start it: a handle opened
     * to look or to delete is opened and closed twice as fast without a
     * thread to create and join (about 240 to 120 us here). */
    if (topic__has_retention(t))
        return topic__bg_flusher(t);
    return 0;
}

void topic__bg_stop(topic *t)
{
    topic__lock(&t->append_lock);
    t->bg_stopping = true;
    topic__flush_signal(t);
    topic__unlock(&t->append_lock);
    pthread_mutex_lock(&t->prep_lock);
    t->prep_stopping = true;
    pthread_cond_signal(&t->prep_cond);
    pthread_mutex_unlock(&t->prep_lock);
    if (t->flusher_running)
        pthread_join(t->flusher, NULL);
    if (t->preparer_running)
        pthread_join(t->preparer, NULL);
    t->flusher_running = t->preparer_running = false;
    topic__bg_drop_spare(t);   /* made for a roll that did not come */
}

void topic__bg_drop_spare(topic *t)
{
    if (t->spare == NULL)
        return;
    topic__segment_free(t->spare);
    t->spare = NULL;
    topic__spare_unlink(t);
}

void topic__bg_destroy(topic *t)
{
    pthread_cond_destroy(&t->prep_cond);
    pthread_cond_destroy(&t->prep_idle);
    pthread_mutex_destroy(&t->prep_lock);
    pthread_mutex_destroy(&t->reserve_lock);
    pthread_mutex_destroy(&t->seal_lock);
    pthread_mutex_destroy(&t->drop_lock);
    pthread_mutex_destroy(&t->group_lock);
}
