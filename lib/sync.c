/*
 * Durability: topic_sync(), the sync behind flush.messages and flush.ms, and
 * the sealing of segments that appends have rolled away from.
 *
 * A rolled segment is sealed (cut to its data, synced with its indexes, and
 * recorded in topic.state) by the flusher thread, not by the append that
 * rolled: an append never waits for a gigabyte to reach the disk.  Making the
 * log durable up to the end offset therefore means sealing what is pending,
 * then one fdatasync of the active segment.  Syncs run outside the append
 * lock, so appends go on while the disk works.
 *
 * A failed write or sync is sticky: the records it covered are never
 * acknowledged as durable, and the handle refuses writes until reopened,
 * because a retried fsync can report success for pages the kernel already
 * dropped ("fsyncgate").
 */
#include <fcntl.h>
#include <limits.h>
#include <linux/futex.h>
#include <sched.h>
#include <time.h>

#include "internal.h"

static void fail(topic *t, int rc)
{
    if (t->failed == 0)
        t->failed = rc;
}

int topic__failure(topic *t)
{
    topic__lock(&t->append_lock);
    int rc = t->failed < 0 && t->failed != TOPIC_EFAILED ? t->failed : -EIO;
    topic__unlock(&t->append_lock);
    return rc;
}

int topic__tell_failure(topic *t, int rc)
{
    if (rc >= 0)
        return rc;
    topic__lock(&t->append_lock);
    if (rc == TOPIC_EFAILED && !t->failure_told && t->failed < 0 && t->failed != TOPIC_EFAILED)
        rc = t->failed;
    if (rc == t->failed)
        t->failure_told = true;
    topic__unlock(&t->append_lock);
    return rc;
}

/*
 * Syncs the directory if a roll renamed the spare's files in it since its
 * last sync (segment.c); under seal_lock.  Every roll queues the segment
 * it rolled away from for sealing, and seal_oldest calls this before that
 * seal; topic__sync and close_writer seal every queued segment before they
 * sync the active one.  So no sync, and no seal that makes the next
 * segment the one recovery continues from, comes before the new names are
 * on the disk.
 */
static int dir_sync(topic *t)
{
    uint64_t gen = atomic_load(&t->dir_gen);
    if (t->dir_synced >= gen)
        return 0;
    TRY(topic__fsync(t->dirfd));
    t->dir_synced = gen;
    return 0;
}

/* Seals the oldest segment waiting to be sealed: 1 when it sealed one, 0
 * when none was waiting, or the (sticky) error. */
static int seal_oldest(topic *t)
{
    topic__lock(&t->append_lock);
    struct segment *s = t->unsealed;
    int rc = t->failed ? TOPIC_EFAILED : 0;
    topic__unlock(&t->append_lock);
    if (s == NULL || rc < 0)
        return rc;
    topic__bg_wait_released(t, s);
    /* Nobody writes to s any more and readers stay below its length, so it
     * can be cut and synced without the append lock. */
    /* The name of the segment that follows s first: a power loss must not
     * find s sealed, as the last segment of the topic, with the records
     * after it in a file whose name was lost. */
    rc = dir_sync(t);
    if (rc == 0)
        rc = topic__segment_seal(t, s);
    if (rc == 0)
        rc = topic__state_sealed(t, atomic_load(&s->end));
    topic__lock(&t->append_lock);
    if (rc < 0) {
        fail(t, rc);
    } else {
        t->unsealed = s->next_unsealed;
        t->nunsealed--;
        if (t->unsealed == NULL)
            t->unsealed_tail = &t->unsealed;
    }
    topic__unlock(&t->append_lock);
    if (rc < 0)
        return rc;
    topic__segment_put(s);
    return 1;
}

/*
 * The active segment's file was removed, or replaced by another file, while
 * this handle wrote to it: its records go with the handle.  Their offsets
 * were handed out, and a consumer may have committed a position past them,
 * but the next writer would find its end offset in the files, below them,
 * and hand them out again.  So the end offset is written down the way a
 * roll does it: an empty segment file named by it.  unsealed_from moves up
 * to it too, so that a file put in the removed one's place (an older copy
 * of it) is read as it is, like any sealed segment, rather than cut to its
 * last whole batch and continued.  The lost offsets then read
 * TOPIC_ECORRUPT, or TOPIC_EGONE when no segment is left below them.
 *
 * Called under append_lock by a sync or a close that found the active file
 * unlinked after sealing every earlier segment, with the handle failed, so
 * the end offset can no longer move.  Best effort: the handle's error is
 * what the caller reports, and an existing file of that name (the end
 * offset is the removed segment's own base) is left as it is.
 */
void topic__mark_lost_end(topic *t)
{
    uint64_t end = atomic_load(&t->end);
    char name[64];
    topic__segment_name(name, sizeof name, end, ".log");
    int fd = topic__openat(t->dirfd, name, O_RDWR | O_CREAT | O_EXCL, TOPIC__FILE_MODE);
    if (fd < 0)
        return;
    topic__close(fd);
    if (topic__fsync(t->dirfd) == 0)
        (void)topic__state_sealed(t, end);
}

int topic__seal_one(topic *t)
{
    pthread_mutex_lock(&t->seal_lock);
    int rc = seal_oldest(t);
    pthread_mutex_unlock(&t->seal_lock);
    return rc;
}

int topic__seal_pending(topic *t)
{
    int rc;
    pthread_mutex_lock(&t->seal_lock);
    while ((rc = seal_oldest(t)) > 0)
        ;
    pthread_mutex_unlock(&t->seal_lock);
    return rc;
}

/* A sync drops the page tables of written pages (topic__segment_drop_written)
 * once this much has accumulated: under flush.messages, where every append
 * syncs a page or two, the call would cost more than it saves. */
#define DROP_MIN ((size_t)1 << 20)

static int64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Threads in topic__sync() whose records the next sync would cover: not
 * those the last sync covered that have yet to leave. */
static int uncovered(const topic *t)
{
    int n = 0;
    for (const struct sync_waiter *w = t->waiters; w != NULL; w = w->next)
        n += w->want > t->synced_end;
    return n;
}

/*
 * Before a sync starts, threads already inside topic_append() under
 * flush.messages get a short while to publish their records, so that the
 * sync covers them too instead of leaving them for the next one: without
 * it, threads settle into groups that take turns (about two appends per
 * sync with four threads).  The syncer waits until every thread inside an
 * append has reached topic__sync(), and as many threads as were seen at
 * once lately are there, but never longer than a quarter of the last
 * fdatasync (between 10 and 200 microseconds): the wait pays for itself
 * only while it is small beside the sync it fills.  It waits by yielding
 * the CPU, which on a machine with fewer cores than appending threads hands
 * it to exactly the threads it waits for; a sleep on a condition variable
 * let most of them miss the sync (2.8 appends per fdatasync with four
 * threads on two cores, against 4.0).  A wait that runs out lowers the
 * count it waits for, so a thread that stopped appending costs one short
 * wait, not one per sync.  Threads the last sync covered and that have yet
 * to leave topic__sync() do not count as there: counting them let syncs
 * start with two of four threads' records (3.0 appends per fdatasync with
 * four threads, against 3.8 without them).
 */
static bool gathered(topic *t)
{
    int inflight = atomic_load(&t->durable_inflight), here = uncovered(t);
    return inflight <= here && here >= atomic_load(&t->durable_peak);
}

static void gather(topic *t)
{
    if (atomic_load(&t->durable_inflight) <= 1 && t->durable_peak <= 1)
        return;   /* one appending thread: nobody to wait for */
    int64_t budget = t->last_sync_ns / 4;
    budget = budget < 10000 ? 10000 : budget > 200000 ? 200000 : budget;
    int64_t deadline = mono_ns() + budget;
    while (!gathered(t)) {
        int64_t now = mono_ns();
        if (now >= deadline) {
            int inflight = atomic_load(&t->durable_inflight);
            int here = uncovered(t);
            atomic_store(&t->durable_peak, inflight > here ? inflight : here);
            break;
        }
        topic__unlock(&t->append_lock);
        sched_yield();
        topic__lock(&t->append_lock);
    }
}

static void leave(topic *t, struct sync_waiter *me)
{
    struct sync_waiter **pp = &t->waiters;
    while (*pp != me)
        pp = &(*pp)->next;
    *pp = me->next;
}

/* Takes every waiter whose records are below `end` off the list and tells
 * it so; each returns without taking append_lock again.  A waiter's node
 * lives on its stack, so it is unlinked before it can see `covered`. */
static void release_covered(topic *t, uint64_t end)
{
    struct sync_waiter **pp = &t->waiters;
    while (*pp != NULL) {
        struct sync_waiter *w = *pp;
        if (w->want <= end) {
            *pp = w->next;
            atomic_store_explicit(&w->covered, true, memory_order_release);
        } else {
            pp = &w->next;
        }
    }
}

/*
 * Waits for the sync under way to end (sync_gen to move on from `seen`).  A
 * waiter first yields the CPU for about as long as a sync takes, and only
 * then sleeps on the futex: a thread that slept is back later than one that
 * kept its CPU, and on a virtual machine waking an idle CPU costs tens of
 * microseconds, which the next sync's gathering then waits for.  With four
 * durable threads on two cores, yielding raised appends per fdatasync from
 * 3.63-3.89 to 3.85-3.91 and the rate from 2.48-2.83 to 2.67-2.92 times one
 * thread's, in alternating runs.  The budget is a quarter more than the last
 * fdatasync plus 20 microseconds, and never more than a millisecond.
 */
static void sync_gen_wait(topic *t, uint32_t seen, int64_t last_sync_ns)
{
    int64_t budget = last_sync_ns + last_sync_ns / 4 + 20000;
    int64_t deadline = mono_ns() + (budget > 1000000 ? 1000000 : budget);
    while (atomic_load_explicit(&t->sync_gen, memory_order_acquire) == seen) {
        if (mono_ns() >= deadline) {
            topic__futex(&t->sync_gen, FUTEX_WAIT_PRIVATE, seen, NULL, 0);
            return;
        }
        sched_yield();
    }
}

static void sync_gen_wake(topic *t)
{
    atomic_fetch_add(&t->sync_gen, 1);
    topic__futex(&t->sync_gen, FUTEX_WAKE_PRIVATE, INT_MAX, NULL, 0);
}

/*
 * Group commit: one thread at a time syncs, on behalf of everyone.  A thread
 * that finds a sync under way waits for it; if that sync covered its
 * records it returns, otherwise it runs the next one, which covers every
 * record appended in the meantime.  Under flush.messages=1 with several
 * appending threads, one fdatasync thus acknowledges many appends.
 *
 * Waiters wait on a futex word, not on a condition variable: the threads a
 * sync covered return without taking append_lock again, instead of queueing
 * for it one after another while the next sync waits for them to append.
 */
int topic__sync(topic *t)
{
    topic__lock(&t->append_lock);
    uint64_t want = atomic_load(&t->end);
    struct sync_waiter me = { want, t->waiters, false };
    t->waiters = &me;
    while (t->syncing && t->synced_end < want && !t->failed) {
        uint32_t gen = atomic_load(&t->sync_gen);
        int64_t last = t->last_sync_ns;
        topic__unlock(&t->append_lock);
        sync_gen_wait(t, gen, last);
        if (atomic_load_explicit(&me.covered, memory_order_acquire))
            return 0;
        topic__lock(&t->append_lock);
    }
    if (atomic_load_explicit(&me.covered, memory_order_relaxed)) {
        topic__unlock(&t->append_lock);   /* covered while it took the lock */
        return 0;
    }
    if (t->failed || t->synced_end >= want) {
        leave(t, &me);
        int rc = t->failed ? TOPIC_EFAILED : 0;
        if (t->synced_end >= atomic_load(&t->end))
            t->unsynced_since_ms = 0;   /* nothing left for the flusher */
        topic__unlock(&t->append_lock);
        return rc;
    }
    t->syncing = true;
    gather(t);
    int64_t started = topic__mono_ms();
    /* What reaches the disk is whole batches: a loss of power must not
     * leave synced records in a batch with no checksum. */
    topic__open_seal(t);
    uint64_t target = atomic_load(&t->end);
    struct segment *s = t->active;
    topic__segment_ref(s);
    topic__unlock(&t->append_lock);

    /* Records below target are in s or in segments rolled away from before
     * it.  If s is rolled away from and sealed meanwhile, the seal synced it
     * and closed its descriptor; seal_lock keeps a seal from doing so while
     * the descriptor is in use here. */
    int rc = topic__seal_pending(t);
    topic__segment_drop_written(s, atomic_load(&s->len), DROP_MIN);
    int64_t sync_start = mono_ns();
    if (rc == 0) {
        /* Synced records in a file or directory someone deleted vanish
         * with the handle: no sync of them succeeds, as SQLite refuses to
         * write a database file that was unlinked.  Without this, a sync
         * after the active segment's file was removed by hand said the
         * records were durable, and the next open gave their offsets out
         * again. */
        pthread_mutex_lock(&t->seal_lock);
        if (s->fd >= 0) {
            rc = topic__fdatasync(s->fd);
            if (rc == 0)
                rc = topic__segment_linked(t, s);
        }
        pthread_mutex_unlock(&t->seal_lock);
        if (rc == 0)
            rc = topic__still_linked(t->dirfd);
    }
    int64_t took = mono_ns() - sync_start;
    topic__segment_put(s);

    topic__lock(&t->append_lock);
    leave(t, &me);
    if (rc < 0) {
        fail(t, rc);   /* the waiters find it when they take the lock */
        if (rc == -ENOENT && s == t->active && t->unsealed == NULL)
            topic__mark_lost_end(t);
    } else if (target > t->synced_end) {
        release_covered(t, target);
        t->synced_end = target;
        /* Records appended during the sync are younger than its start. */
        t->unsynced_since_ms = t->synced_end < atomic_load(&t->end) ? started : 0;
    }
    t->last_sync_ns = took;
    t->syncing = false;
    topic__unlock(&t->append_lock);
    sync_gen_wake(t);
    return rc;
}

TOPIC_API int topic_sync(topic *t)
{
    if (t == NULL)
        return -EINVAL;
    if (!(t->flags & TOPIC_RDONLY) && topic__forked(t))
        return TOPIC_EFAILED;   /* the parent's handle (see topic_close) */
    /* A reader's own writes, its groups' positions, are synced too; the
     * log itself is the writer's to sync. */
    int rc = topic__groups_sync(t);
    if (t->flags & TOPIC_RDONLY)
        return rc < 0 ? rc : TOPIC_ERDONLY;
    int r = topic__tell_failure(t, topic__sync(t));
    return rc < 0 ? rc : r;
}
