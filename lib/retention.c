/*
 * Keeping the log in bounds: topic_delete_before() and the retention.bytes /
 * retention.ms policies, which the flusher thread applies after every seal
 * and once a second.
 *
 * Deleting moves the start offset first, durably (topic.state is synced
 * before any file goes), and only then removes the segments that hold
 * nothing at or above it, oldest first, whichever thread deletes: a crash
 * in between leaves files below the start offset, which the next writer
 * removes when it opens.
 * Readers of a removed segment keep their references (seglist.c) and see
 * TOPIC_EGONE once they look for an offset below the start.
 */
#include <fcntl.h>
#include <sys/stat.h>

#include "internal.h"

/* Under append_lock: makes `offset` the durable start offset. */
static int move_start(topic *t, uint64_t offset)
{
    if (offset <= atomic_load(&t->start))
        return 0;
    topic__state_store_start(t, offset);
    int rc = topic__fdatasync(t->lockfd);
    if (rc < 0) {
        if (t->failed == 0)
            t->failed = rc;
        return rc;
    }
    atomic_store_explicit(&t->start, offset, memory_order_release);
    topic__publish(t);
    return 0;
}

/*
 * Removes the segments wholly below the start offset (without append_lock).
 * One caller at a time (drop_lock): each takes its segments off the list
 * and then removes their files, and a second caller (topic_delete_before()
 * in another thread, the flusher's retention) would otherwise remove newer
 * segments while the first still removed older ones, leaving a gap between
 * the files that remain.
 */
int topic__drop_gone(topic *t)
{
    pthread_mutex_lock(&t->drop_lock);
    uint64_t start = atomic_load(&t->start);
    int total = 0, n, rc = 0;
    while ((n = topic__seglist_drop_before(t, start, !(t->flags & TOPIC_RDONLY))) > 0)
        total += n;
    if (total > 0 && !(t->flags & TOPIC_RDONLY))
        rc = topic__fsync(t->dirfd);
    pthread_mutex_unlock(&t->drop_lock);
    return rc;
}

TOPIC_API int topic_delete_before(topic *t, uint64_t offset)
{
    if (t == NULL)
        return -EINVAL;
    if (t->flags & TOPIC_RDONLY)
        return TOPIC_ERDONLY;
    if (topic__forked(t))
        return TOPIC_EFAILED;   /* the parent's handle (see topic_close) */
    topic__lock(&t->append_lock);
    int rc = t->failed ? TOPIC_EFAILED : 0;
    if (rc == 0 && offset > atomic_load(&t->end))
        rc = -EINVAL;
    if (rc == 0)
        rc = move_start(t, offset);
    if (rc < 0 && rc == t->failed)
        t->failure_told = true;   /* see topic__tell_failure */
    topic__unlock(&t->append_lock);
    return rc < 0 ? rc : topic__drop_gone(t);
}

/* Bytes of a segment: its data when known, else the size of its file. */
static uint64_t segment_bytes(topic *t, struct segment *s)
{
    if (atomic_load(&s->loaded))
        return atomic_load(&s->len);
    char name[64];
    struct stat st;
    topic__segment_name(name, sizeof name, s->base, ".log");
    return fstatat(t->dirfd, name, &st, 0) == 0 ? (uint64_t)st.st_size : 0;
}

/*
 * The start offset the retention settings ask for: past every old segment
 * that the log could lose and still hold retention.bytes, and past every
 * old segment whose newest record is older than retention.ms.  Never past
 * the active segment's base.
 */
static uint64_t retention_start(topic *t)
{
    int64_t max_bytes = t->cfg.v[TOPIC_K_RETENTION_BYTES];
    int64_t max_ms = t->cfg.v[TOPIC_K_RETENTION_MS];
    uint64_t start = atomic_load(&t->start);
    if (max_bytes < 0 && max_ms < 0)
        return start;
    uint64_t total = 0;
    struct segment *s = topic__segment_get(t, start), *next;   /* the oldest kept */
    for (struct segment *p = s; p != NULL; p = next) {
        total += segment_bytes(t, p);
        next = topic__segment_next(t, p);
        if (p != s)
            topic__segment_put(p);
    }
    int64_t now = topic__now_ms();
    for (; s != NULL; s = next) {
        next = topic__segment_next(t, s);
        bool drop = false;
        if (next != NULL) {   /* never the active (last) segment */
            uint64_t bytes = segment_bytes(t, s);
            if (max_bytes >= 0 && total - bytes >= (uint64_t)max_bytes)
                drop = true;
            if (!drop && max_ms >= 0 && topic__segment_load(t, s) == 0 &&
                atomic_load(&s->max_ts) < now - max_ms)
                drop = true;
            if (drop) {
                total -= bytes;
                if (next->base > start)
                    start = next->base;
            }
        }
        topic__segment_put(s);
        if (!drop) {
            topic__segment_put(next);
            break;
        }
    }
    return start;
}

int topic__apply_retention(topic *t)
{
    uint64_t start = retention_start(t);
    if (start <= atomic_load(&t->start))
        return 0;
    topic__lock(&t->append_lock);
    int rc = move_start(t, start);
    topic__unlock(&t->append_lock);
    return rc < 0 ? rc : topic__drop_gone(t);
}
