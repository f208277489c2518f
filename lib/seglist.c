/*
 * The list of a topic's segments, oldest first.
 *
 * Readers look a segment up under a read lock and leave with a reference, so
 * that retention can drop a segment from the list while a cursor or a
 * topic_read() still uses it: the segment (its mapping, its file descriptor)
 * goes away with its last reference.  On Linux a mapping of a deleted file
 * stays readable, so a reader positioned in a deleted segment finishes the
 * bytes it has, then sees TOPIC_EGONE.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "internal.h"

void topic__seglist_init(topic *t)
{
    pthread_rwlock_init(&t->segs.lock, NULL);
}

void topic__seglist_free(topic *t)
{
    for (size_t i = 0; i < t->segs.n; i++)
        topic__segment_put(t->segs.v[i]);
    topic__free(t->segs.v);
    topic__free(t->segs.cum);
    t->segs.v = NULL;
    t->segs.cum = NULL;
    t->segs.n = t->segs.cap = t->segs.cum_n = 0;
    pthread_rwlock_destroy(&t->segs.lock);
}

void topic__segment_ref(struct segment *s)
{
    atomic_fetch_add_explicit(&s->refs, 1, memory_order_relaxed);
}

void topic__segment_put(struct segment *s)
{
    if (s != NULL && atomic_fetch_sub_explicit(&s->refs, 1, memory_order_acq_rel) == 1)
        topic__segment_free(s);
}

int topic__seglist_push(topic *t, struct segment *s)
{
    struct seglist *l = &t->segs;
    pthread_rwlock_wrlock(&l->lock);
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 16;
        struct segment **v = topic__realloc(l->v, cap * sizeof *v);
        if (v != NULL)
            l->v = v;
        int64_t *cum = v ? topic__realloc(l->cum, cap * sizeof *cum) : NULL;
        if (cum == NULL) {
            pthread_rwlock_unlock(&l->lock);
            return -ENOMEM;
        }
        l->cum = cum;
        l->cap = cap;
    }
    atomic_store(&s->refs, 1);
    s->listed = true;
    l->v[l->n++] = s;
    pthread_rwlock_unlock(&l->lock);
    return 0;
}

/* Index of the last segment whose base is <= offset, or n if none. */
static size_t find(const struct seglist *l, uint64_t offset)
{
    size_t lo = 0, hi = l->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (l->v[mid]->base <= offset)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo ? lo - 1 : l->n;
}

struct segment *topic__segment_get(topic *t, uint64_t offset)
{
    struct seglist *l = &t->segs;
    struct segment *s = NULL;
    pthread_rwlock_rdlock(&l->lock);
    size_t i = find(l, offset);
    if (i < l->n) {
        s = l->v[i];
        topic__segment_ref(s);
    }
    pthread_rwlock_unlock(&l->lock);
    return s;
}

struct segment *topic__segment_next(topic *t, const struct segment *s)
{
    struct seglist *l = &t->segs;
    struct segment *next = NULL;
    pthread_rwlock_rdlock(&l->lock);
    /* The first segment whose base is above s's: s may have left the list. */
    size_t i = find(l, s->base);
    i = i == l->n ? 0 : i + 1;
    if (i < l->n) {
        next = l->v[i];
        topic__segment_ref(next);
    }
    pthread_rwlock_unlock(&l->lock);
    return next;
}

struct segment *topic__seglist_time_start(topic *t, int64_t ts)
{
    struct seglist *l = &t->segs;
    struct segment *s = NULL;
    pthread_rwlock_rdlock(&l->lock);
    /* cum only grows along the list: the first entry >= ts is the first
     * segment holding such a record; none means the search goes on from
     * the first segment not recorded. */
    size_t lo = 0, hi = l->cum_n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (l->cum[mid] < ts)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo < l->n) {
        s = l->v[lo];
        topic__segment_ref(s);
    }
    pthread_rwlock_unlock(&l->lock);
    return s;
}

void topic__seglist_time_note(topic *t, const struct segment *s)
{
    struct seglist *l = &t->segs;
    /* Only a segment that can no longer change, whose every record counts:
     * loaded, not the last one (the writer's active segment, or the one a
     * reader follows), walked to its end if a reader saw it grow, and not
     * short of records (their timestamps are unknown). */
    if (!atomic_load_explicit(&s->loaded, memory_order_acquire) ||
        (s->follow && !atomic_load_explicit(&s->settled, memory_order_acquire)) ||
        atomic_load(&s->missing))
        return;
    pthread_rwlock_wrlock(&l->lock);
    size_t i = l->cum_n;
    if (i + 1 < l->n && l->v[i] == s) {
        int64_t m = atomic_load_explicit(&s->max_ts, memory_order_relaxed);
        l->cum[i] = i > 0 && l->cum[i - 1] > m ? l->cum[i - 1] : m;
        l->cum_n = i + 1;
    }
    pthread_rwlock_unlock(&l->lock);
}

struct segment *topic__seglist_first(topic *t)
{
    pthread_rwlock_rdlock(&t->segs.lock);
    struct segment *s = t->segs.n ? t->segs.v[0] : NULL;
    pthread_rwlock_unlock(&t->segs.lock);
    return s;
}

struct segment *topic__seglist_last(topic *t)
{
    pthread_rwlock_rdlock(&t->segs.lock);
    struct segment *s = t->segs.n ? t->segs.v[t->segs.n - 1] : NULL;
    pthread_rwlock_unlock(&t->segs.lock);
    return s;
}

int topic__seglist_drop_before(topic *t, uint64_t start, bool unlink)
{
    struct seglist *l = &t->segs;
    struct segment *gone[64];
    size_t k = 0;
    pthread_rwlock_wrlock(&l->lock);
    /* A segment ends where the next one begins. */
    while (k < sizeof gone / sizeof gone[0] && k + 1 < l->n && l->v[k + 1]->base <= start) {
        gone[k] = l->v[k];
        gone[k]->listed = false;
        k++;
    }
    if (k > 0) {
        memmove(l->v, l->v + k, (l->n - k) * sizeof l->v[0]);
        l->n -= k;
        l->cum_n = 0;   /* the maxima counted the dropped segments */
    }
    pthread_rwlock_unlock(&l->lock);
    for (size_t i = 0; i < k; i++) {
        if (unlink)
            topic__segment_unlink(t, gone[i]->base);
        topic__segment_put(gone[i]);
    }
    return (int)k;
}

/*
 * A handle maps every segment it reads, and a sealed segment stays mapped
 * until the handle closes or retention removes it.  Address space is
 * plentiful on a 64-bit machine, but not under RLIMIT_AS (ulimit -v), and
 * each mapping takes map areas, of which a process has about 65,000
 * (vm.max_map_count): a follower of a writer that kept its log stopped with
 * -ENOMEM for good after about 2 GB of 1 MiB segments under a 4 GiB limit.
 * When a mapping fails with -ENOMEM, this gives back the mappings of every
 * segment that is loaded, no longer changes (sealed, or rolled away from and
 * walked to its end by a follower), is not the last, and is held only by
 * the list: no cursor, reader or sealer holds a reference to it.  They take
 * their references under the list's lock, which this holds for writing, so
 * none can be reading it; the next one to need it loads it again.
 */
int topic__seglist_unload_idle(topic *t)
{
    return topic__seglist_unload_below(t, UINT64_MAX);
}

int topic__seglist_unload_below(topic *t, uint64_t below)
{
    struct seglist *l = &t->segs;
    int n = 0;
    pthread_rwlock_wrlock(&l->lock);
    for (size_t i = 0; i + 1 < l->n && l->v[i]->base < below; i++) {
        struct segment *s = l->v[i];
        if (atomic_load(&s->refs) != 1 || !atomic_load(&s->loaded) || s->writable ||
            (s->follow && !atomic_load(&s->settled)))
            continue;
        topic__segment_unload(s);
        n++;
    }
    atomic_fetch_add(&l->unloads, (unsigned)n);
    pthread_rwlock_unlock(&l->lock);
    return n;
}

unsigned topic__seglist_unloads(topic *t)
{
    return atomic_load(&t->segs.unloads);
}

/*
 * Threads sharing a handle run out of room together: each one's mapping
 * fails, the first to get the list's lock gives back every idle segment,
 * and the others then find none left to give back.  Counting only its own
 * give-back, a thread gave up although room had just been made, and reads
 * and appends failed with -ENOMEM now and then (recheck tester F1: 0.1% of
 * reads with four threads under ulimit -v).  So a retry is worth it when
 * any thread gave something back since the failed attempt began.
 */
bool topic__seglist_reclaim(topic *t, unsigned since)
{
    return topic__seglist_unload_idle(t) > 0 || topic__seglist_unloads(t) != since ||
           topic__handles_unload_idle(t) > 0;
}

/*
 * Address space and map areas are the process's, not a handle's: a handle
 * that had read much kept its idle segments mapped while another handle's
 * topic_open failed with -ENOMEM for want of room, with no segment in use
 * anywhere (recheck tester F4).  So a refused mapping gives back the idle
 * segments of every handle of the process.  A child of fork() does not
 * look at the handles it inherited: their locks may have been held by
 * threads of the parent, which the child does not have.
 *
 * Lock order: this list's lock, then a handle's list lock.  Nothing takes
 * this one while holding a handle's.
 */
static pthread_mutex_t g_handles_lock = PTHREAD_MUTEX_INITIALIZER;
static topic *g_handles;

void topic__handles_add(topic *t)
{
    pthread_mutex_lock(&g_handles_lock);
    t->prev_handle = NULL;
    t->next_handle = g_handles;
    if (g_handles != NULL)
        g_handles->prev_handle = t;
    g_handles = t;
    t->listed_handle = true;
    pthread_mutex_unlock(&g_handles_lock);
}

void topic__handles_remove(topic *t)
{
    if (!t->listed_handle || topic__forked(t))
        return;   /* never listed, or a copy a child of fork() inherited */
    pthread_mutex_lock(&g_handles_lock);
    if (t->prev_handle != NULL)
        t->prev_handle->next_handle = t->next_handle;
    else
        g_handles = t->next_handle;
    if (t->next_handle != NULL)
        t->next_handle->prev_handle = t->prev_handle;
    t->listed_handle = false;
    pthread_mutex_unlock(&g_handles_lock);
}

void topic__handles_prepare(void)
{
    pthread_mutex_lock(&g_handles_lock);
}

void topic__handles_parent(void)
{
    pthread_mutex_unlock(&g_handles_lock);
}

void topic__handles_child(void)
{
    g_handles = NULL;
    pthread_mutex_unlock(&g_handles_lock);
}

int topic__handles_unload_idle(topic *self)
{
    int n = 0;
    pthread_mutex_lock(&g_handles_lock);
    for (topic *h = g_handles; h != NULL; h = h->next_handle)
        if (h != self)
            n += topic__seglist_unload_idle(h);
    pthread_mutex_unlock(&g_handles_lock);
    return n;
}
