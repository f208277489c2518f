/*
 * Finding a record: binary search for the segment, binary search of its
 * sparse index, then a walk of at most one index interval of batch headers,
 * and a checksum verification of the batch that holds the record.
 */
#include <string.h>

#include "internal.h"

/* The most a read asks the memory for ahead of its walk of headers. */
#define PREFETCH_MAX ((size_t)4096)

/*
 * The open batch at p (see append.c), with `avail` bytes published after p
 * and the records below offset `end` published: as a header whose count is
 * those records, and whose length is the published bytes.  False when p
 * holds no open batch.
 *
 * A reader loads the end offset, then the length (acquire loads), then the
 * magic.  The writer writes the open header before it publishes a length
 * past it, and stores the sealed magic only after the length covering the
 * whole batch; a new batch comes after that.  So while the magic still says
 * "open", every published byte after the header is a record of this batch.
 * Those bytes are trusted as they are: in the writer's process they are
 * what it wrote, and a reader in another process publishes a length past
 * the open header only once it has checked the chain (follow.c).  A reader
 * that finds the magic sealed meanwhile reads the batch as any other.
 */
bool topic__open_at(const struct segment *s, size_t pos, size_t avail, uint64_t end,
                    struct batch_header *h)
{
    /* Only the writer's active segment and a reader's view of a writer's
     * segments can hold one: sealing a segment seals its open batch, and
     * an open header left in a sealed one is damage (segment.c). */
    const uint8_t *p = s->map + pos;
    if ((!s->may_open && !s->follow) || avail < TOPIC__HEADER_SIZE ||
        !topic__is_open(p))
        return false;
    topic__open_fields(s->map + pos, &h->base_offset, &h->first_ts);
    h->magic = TOPIC__OPEN_MAGIC;
    h->length = (uint32_t)avail;
    h->checksum = 0;
    h->count = end > h->base_offset && end - h->base_offset < UINT32_MAX
                   ? (uint32_t)(end - h->base_offset) : 0;
    h->attributes = h->reserved = 0;
    h->max_ts = INT64_MAX;   /* unknown: a search by time must look inside */
    /* Damaged after its writer died (follow.c), or bytes no writer of this
     * boot vouches for: not records. */
    if (pos == atomic_load_explicit(&s->bad_open, memory_order_acquire) || avail > TOPIC__MAX_BATCH)
        h->count = 0;
    return true;
}

/* Walks headers from `pos` (where offset `expect` starts) to the batch
 * holding `offset`.  Every header must continue the offsets densely. */
static int walk_to(const struct segment *s, size_t pos, uint64_t expect, size_t limit,
                   uint64_t end, uint64_t offset, struct batch_ref *ref)
{
    if (s->map == NULL)
        return TOPIC_ECORRUPT;   /* an empty file where records must be */
    for (;;) {
        if (topic__open_at(s, pos, limit - pos, end, &ref->h)) {
            if (ref->h.base_offset != expect || offset - expect >= ref->h.count)
                return TOPIC_ECORRUPT;
            ref->pos = pos;
            return 0;
        }
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

static int locate_in(topic *t, struct segment *s, uint64_t offset, uint64_t end,
                     struct batch_ref *ref);

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
                     uint64_t end, uint64_t offset, struct batch_ref *ref)
{
    int rc = walk_to(s, pos, expect, limit, end, offset, ref);
    if (rc == TOPIC_ECORRUPT && pos != 0)
        rc = walk_to(s, 0, s->base, limit, end, offset, ref);
    return rc;
}

int topic__segment_batch_at(const struct segment *s, uint64_t offset, size_t limit, size_t *pos,
                            uint64_t *base)
{
    struct batch_ref ref;
    size_t from;
    uint64_t expect;
    index_start(s, offset, limit, &from, &expect);
    TRY(walk_from(s, from, expect, limit, offset + 1, offset, &ref));
    *pos = ref.pos;
    *base = ref.h.base_offset;
    return 0;
}

int topic__locate(topic *t, uint64_t offset, struct batch_ref *ref)
{
    uint64_t end = atomic_load_explicit(&t->end, memory_order_acquire);
    if (offset >= end) {
        topic__refresh(t);   /* a reader learns of a writer's new records */
        end = atomic_load_explicit(&t->end, memory_order_acquire);
        if (offset >= end) {
            /* A reader that could not follow may have an end offset below
             * the writer's start: what lies below the start is gone,
             * whatever else went wrong. */
            int err = atomic_load_explicit(&t->follow_err, memory_order_acquire);
            if (err < 0 && offset < topic_start_offset(t))
                return TOPIC_EGONE;
            return err < 0 ? err : TOPIC_END;
        }
    }
    if (offset < topic_start_offset(t))   /* where a reader learns of deletions */
        return TOPIC_EGONE;
    struct segment *s = topic__segment_get(t, offset);
    if (s == NULL)
        return TOPIC_EGONE;
    int rc = locate_in(t, s, offset, end, ref);
    if (rc < 0)
        topic__segment_put(s);
    /* A segment whose file is gone was deleted by the writer's retention. */
    if (rc == -ENOENT)
        rc = TOPIC_EGONE;
    return rc;
}

/* As topic__locate, in segment s, where the records below `end` are
 * published; on success ref->seg holds s. */
static int locate_in(topic *t, struct segment *s, uint64_t offset, uint64_t end,
                     struct batch_ref *ref)
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
    int rc = walk_from(s, pos, expect, limit, end, offset, ref);
    /* The open batch was sealed, and more records appended to it, after
     * this reader loaded the length: the sealed header says a length past
     * it.  The length published since covers the batch (topic__open_at);
     * a reader in another process learns it from the writer first. */
    if (rc == TOPIC_ECORRUPT && s->follow)
        topic__refresh(t);
    if (rc == TOPIC_ECORRUPT && atomic_load_explicit(&s->len, memory_order_acquire) != limit) {
        limit = atomic_load_explicit(&s->len, memory_order_acquire);
        if (limit > mapped)
            limit = mapped;
        rc = walk_from(s, pos, expect, limit, end, offset, ref);
    }
    TRY(rc);
    if (ref->h.magic == TOPIC__OPEN_MAGIC)
        return 0;
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
