/*
 * Finding a record: binary search for the segment, binary search of its
 * sparse index, then a walk of at most one index interval of batch headers,
 * and a checksum verification of the batch that holds the record.
 */
#include <string.h>

#include "internal.h"

/* The most a read asks the memory for ahead of its walk of headers. */
#define PREFETCH_MAX ((size_t)4096)

/* Walks headers from `pos` (where offset `expect` starts) to the batch
 * holding `offset`.  Every header must continue the offsets densely. */
static int walk_to(const struct segment *s, size_t pos, uint64_t expect, size_t limit,
                   uint64_t offset, struct batch_ref *ref)
{
    if (s->map == NULL)
        return TOPIC_ECORRUPT;   /* an empty file where records must be */
    for (;;) {
        int rc = topic__header_parse(s->map + pos, limit - pos, &ref->h);
        if (rc == TOPIC_EVERSION)
            return rc;
        /* Running out of bytes below an offset that must exist is damage
         * too: a sealed segment cut short, or a zeroed range. */
        if (rc < 0 || ref->h.base_offset != expect)
            return TOPIC_ECORRUPT;
        if (offset - expect < ref->h.count) {
            ref->pos = pos;
            return 0;
        }
        pos += ref->h.length;
        expect += ref->h.count;
    }
}

static int locate_in(topic *t, struct segment *s, uint64_t offset, struct batch_ref *ref);

/* Where a walk to `offset` in s starts: the index entry at or before it
 * (position and first offset), or the segment's start. */
static void index_start(const struct segment *s, uint64_t offset, size_t limit, size_t *pos,
                        uint64_t *expect)
{
    struct idx_entry e;
    *pos = 0;
    *expect = s->base;
    if (offset - s->base <= UINT32_MAX &&
        topic__index_find_rel(&s->idx, (uint32_t)(offset - s->base), &e) && e.pos < limit) {
        *pos = e.pos;
        *expect = s->base + e.rel;
    }
}

/* The walk from there.  A damaged index entry must not make good records
 * unreadable: the segment is then walked from its start, slower but
 * sure. */
static int walk_from(const struct segment *s, size_t pos, uint64_t expect, size_t limit,
                     uint64_t offset, struct batch_ref *ref)
{
    int rc = walk_to(s, pos, expect, limit, offset, ref);
    if (rc == TOPIC_ECORRUPT && pos != 0)
        rc = walk_to(s, 0, s->base, limit, offset, ref);
    return rc;
}

int topic__segment_batch_at(const struct segment *s, uint64_t offset, size_t limit, size_t *pos,
                            uint64_t *base)
{
    struct batch_ref ref;
    size_t from;
    uint64_t expect;
    index_start(s, offset, limit, &from, &expect);
    TRY(walk_from(s, from, expect, limit, offset, &ref));
    *pos = ref.pos;
    *base = ref.h.base_offset;
    return 0;
}

int topic__locate(topic *t, uint64_t offset, struct batch_ref *ref)
{
    uint64_t end = atomic_load_explicit(&t->end, memory_order_acquire);
    if (offset >= end) {
        topic__refresh(t);   /* a reader learns of a writer's new records */
        if (offset >= atomic_load_explicit(&t->end, memory_order_acquire)) {
            /* A reader that could not follow may have an end offset below
             * the writer's start: what lies below the start is gone,
             * whatever else went wrong. */
            int err = atomic_load_explicit(&t->follow_err, memory_order_acquire);
            if (err < 0 && offset < topic_start_offset(t))
                return TOPIC_EGONE;
            return err < 0 ? err : TOPIC_END;
        }
    }
    if ((t->flags & TOPIC_RDONLY) && topic__live_start(t) > atomic_load(&t->start))
        topic__refresh(t);   /* the writer deleted records since */
    if (offset < atomic_load_explicit(&t->start, memory_order_acquire))
        return TOPIC_EGONE;
    struct segment *s = topic__segment_get(t, offset);
    if (s == NULL)
        return TOPIC_EGONE;
    int rc = locate_in(t, s, offset, ref);
    if (rc < 0)
        topic__segment_put(s);
    /* A segment whose file is gone was deleted by the writer's retention. */
    if (rc == -ENOENT)
        rc = TOPIC_EGONE;
    return rc;
}

/* As topic__locate, in segment s; on success ref->seg holds s. */
static int locate_in(topic *t, struct segment *s, uint64_t offset, struct batch_ref *ref)
{
    TRY(topic__segment_load(t, s));
    size_t limit = atomic_load_explicit(&s->len, memory_order_acquire);
    size_t mapped = atomic_load_explicit(&s->map_len, memory_order_relaxed);
    if (limit > mapped)
        limit = mapped;
    /* The index search below waits for memory, and so does the walk after
     * it.  Where records are alike, a record's place in its segment is about
     * its share of the segment's bytes: ask for that page now, so that the
     * two waits overlap.  Only a hint: nothing below trusts it. */
    uint64_t send = atomic_load_explicit(&s->end, memory_order_relaxed);
    uint64_t tend = atomic_load_explicit(&t->end, memory_order_relaxed);
    if (send <= s->base || send > tend)
        send = tend;   /* the active segment's end, or a reader's unknown one */
    if (send > offset && limit > 0) {
        size_t g = (size_t)((double)(offset - s->base) / (double)(send - s->base) *
                            (double)limit);
        if (g >= limit)
            g = limit - 1;
        __builtin_prefetch(s->map + g);
        size_t half = (size_t)t->cfg.v[TOPIC_K_INDEX_INTERVAL] / 2;
        if (g > half)
            __builtin_prefetch(s->map + g - half);
    }
    size_t pos;
    uint64_t expect;
    index_start(s, offset, limit, &pos, &expect);
    /* The record lies within about one index interval of pos.  Ask for
     * those cache lines at once, so that the walk below waits for memory
     * once rather than once per header; no more than PREFETCH_MAX bytes of
     * them, or a large index.interval.bytes cost every read a loop over
     * its whole interval (4.4 us per MiB, scale tester F3). */
    size_t interval = (size_t)t->cfg.v[TOPIC_K_INDEX_INTERVAL];
    size_t ahead = pos + (interval < PREFETCH_MAX ? interval : PREFETCH_MAX) + TOPIC__HEADER_SIZE;
    for (size_t q = pos; q < ahead && q < limit; q += 64)
        __builtin_prefetch(s->map + q);
    ref->seg = s;
    TRY(walk_from(s, pos, expect, limit, offset, ref));
    return topic__batch_verify(s->map + ref->pos, &ref->h) ? 0 : TOPIC_ECORRUPT;
}

TOPIC_API int topic_read(topic *t, uint64_t offset, void *buf, size_t cap, size_t *len)
{
    if (t == NULL || len == NULL || (buf == NULL && cap > 0))
        return -EINVAL;
    struct batch_ref ref;
    TRY(topic__locate(t, offset, &ref));
    struct zbuf z = { 0 };
    const uint8_t *pos, *bend;
    struct record_view r = { 0 };
    int rc = topic__batch_records(ref.seg->map + ref.pos, &ref.h, &z, &pos, &bend);
    for (uint64_t i = ref.h.base_offset; i <= offset && rc == 0; i++)
        rc = topic__record_decode(&pos, bend, ref.h.first_ts, &r);
    if (rc == 0) {
        *len = r.value_len;
        if (r.value_len > cap)
            rc = TOPIC_ETOOSMALL;
        else if (r.value_len)
            memcpy(buf, r.value, r.value_len);
    }
    topic__zbuf_free(&z);
    topic__segment_put(ref.seg);
    return rc;
}
