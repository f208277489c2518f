/*
 * Durability: topic_sync(), the flush.messages policy and the flusher thread
 * that carries out flush.ms.
 *
 * Sealed segments were synced when they were sealed, so making the log
 * durable up to the end offset means one fdatasync of the active segment.
 * The sync runs outside the append lock, so appends go on while the disk
 * works.  A failed sync is sticky: the records it covered are never
 * acknowledged as durable, and the handle refuses writes until reopened,
 * because a retried fsync can report success for pages the kernel already
 * dropped ("fsyncgate").
 */
#include <time.h>

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

static void *flusher_main(void *arg)
{
    topic *t = arg;
    int64_t period = t->cfg.v[TOPIC_K_FLUSH_MS];
    pthread_mutex_lock(&t->append_lock);
    while (!t->stopping) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        ts.tv_sec += (time_t)(period / 1000);
        ts.tv_nsec += (long)(period % 1000) * 1000000L;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&t->flush_cond, &t->append_lock, &ts);
        if (t->stopping)
            break;
        if (t->synced_end < atomic_load(&t->end) && t->failed == 0) {
            pthread_mutex_unlock(&t->append_lock);
            topic__sync(t);
            pthread_mutex_lock(&t->append_lock);
        }
    }
    pthread_mutex_unlock(&t->append_lock);
    return NULL;
}

int topic__flusher_start(topic *t)
{
    if (t->cfg.v[TOPIC_K_FLUSH_MS] <= 0)
        return 0;
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_destroy(&t->flush_cond);
    pthread_cond_init(&t->flush_cond, &attr);
    pthread_condattr_destroy(&attr);
    int rc = pthread_create(&t->flusher, NULL, flusher_main, t);
    if (rc != 0)
        return -rc;
    t->flusher_running = true;
    return 0;
}

void topic__flusher_stop(topic *t)
{
    if (!t->flusher_running)
        return;
    pthread_mutex_lock(&t->append_lock);
    t->stopping = true;
    pthread_cond_signal(&t->flush_cond);
    pthread_mutex_unlock(&t->append_lock);
    pthread_join(t->flusher, NULL);
    t->flusher_running = false;
}
