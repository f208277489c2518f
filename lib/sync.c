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
#include "internal.h"

static void fail(topic *t, int rc)
{
    if (t->failed == 0)
        t->failed = rc;
}

int topic__seal_pending(topic *t)
{
    int rc = 0;
    pthread_mutex_lock(&t->seal_lock);
    for (;;) {
        pthread_mutex_lock(&t->append_lock);
        struct segment *s = t->unsealed;
        rc = t->failed ? TOPIC_EFAILED : 0;
        if (s != NULL)
            topic__bg_wait_released(t, s);
        pthread_mutex_unlock(&t->append_lock);
        if (s == NULL || rc < 0)
            break;
        /* Nobody writes to s any more and readers stay below its length,
         * so it can be cut and synced without the append lock. */
        rc = topic__segment_seal(t, s);
        if (rc == 0)
            rc = topic__state_sealed(t, atomic_load(&s->end));
        pthread_mutex_lock(&t->append_lock);
        if (rc < 0) {
            fail(t, rc);
        } else {
            t->unsealed = s->next_unsealed;
            if (t->unsealed == NULL)
                t->unsealed_tail = &t->unsealed;
        }
        pthread_mutex_unlock(&t->append_lock);
        if (rc < 0)
            break;
    }
    pthread_mutex_unlock(&t->seal_lock);
    return rc;
}

int topic__sync(topic *t)
{
    pthread_mutex_lock(&t->append_lock);
    if (t->failed) {
        pthread_mutex_unlock(&t->append_lock);
        return TOPIC_EFAILED;
    }
    uint64_t target = atomic_load(&t->end);
    struct segment *s = t->active;
    bool done = t->synced_end >= target;
    pthread_mutex_unlock(&t->append_lock);
    if (done)
        return 0;

    /* Records below target are in s or in segments rolled away from before
     * it; if s itself is rolled away from meanwhile, its fd still syncs it.
     * Segments are freed only at close, so s->fd stays open. */
    int rc = topic__seal_pending(t);
    if (rc == 0)
        rc = topic__fdatasync(s->fd);

    pthread_mutex_lock(&t->append_lock);
    if (rc < 0) {
        fail(t, rc);
    } else if (target > t->synced_end) {
        t->synced_end = target;
        t->last_sync_ms = topic__now_ms();
    }
    pthread_mutex_unlock(&t->append_lock);
    return rc;
}

TOPIC_API int topic_sync(topic *t)
{
    if (t == NULL)
        return -EINVAL;
    if (t->flags & TOPIC_RDONLY)
        return TOPIC_ERDONLY;
    return topic__sync(t);
}
