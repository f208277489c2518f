/*
 * Durability: topic_sync() and the sync behind flush.messages and flush.ms.
 *
 * Sealed segments were synced when they were sealed, so making the log
 * durable up to the end offset means one fdatasync of the active segment.
 * The sync runs outside the append lock, so appends go on while the disk
 * works.  A failed sync is sticky: the records it covered are never
 * acknowledged as durable, and the handle refuses writes until reopened,
 * because a retried fsync can report success for pages the kernel already
 * dropped ("fsyncgate").
 */
#include "internal.h"

int topic__sync(topic *t)
{
    pthread_mutex_lock(&t->append_lock);
    if (t->failed) {
        pthread_mutex_unlock(&t->append_lock);
        return TOPIC_EFAILED;
    }
    uint64_t target = atomic_load(&t->end);
    struct segment *s = t->active;
    if (t->synced_end >= target || !s->writable) {
        pthread_mutex_unlock(&t->append_lock);
        return 0;
    }
    pthread_mutex_unlock(&t->append_lock);

    /* Segments are freed only at close, so s->fd stays open meanwhile. */
    int rc = topic__fdatasync(s->fd);

    pthread_mutex_lock(&t->append_lock);
    if (rc < 0) {
        if (t->failed == 0)
            t->failed = rc;
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
