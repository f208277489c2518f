/*
 * Cursors: sequential reading with one checksum verification per batch, and
 * records handed out zero-copy from the mapped segment.
 */
#include "internal.h"

struct topic_cursor {
    topic *t;
    uint64_t next;             /* offset the next call returns */
    struct batch_ref b;        /* current verified batch; b.seg (referenced) NULL if none */
    const uint8_t *rp;         /* next record inside it */
    const uint8_t *rend;       /* end of its records */
    uint64_t roff;             /* offset of the record at rp */
    size_t ahead;              /* rp + ahead: where to prefetch the next batch (see below) */
    struct zbuf z;             /* its records, when it is compressed */
};

/* Lets go of the current batch (and the reference to its segment). */
static void drop_batch(topic_cursor *c)
{
    topic__segment_put(c->b.seg);
    c->b.seg = NULL;
}

static void cursor_reset(topic_cursor *c, uint64_t offset)
{
    c->next = offset;
    drop_batch(c);
}

TOPIC_API int topic_cursor_open(topic *t, uint64_t offset, topic_cursor **out)
{
    if (out != NULL)
        *out = NULL;
    if (t == NULL || out == NULL)
        return -EINVAL;
    if (offset < topic_start_offset(t))
        return TOPIC_EGONE;
    topic_cursor *c = topic__calloc(1, sizeof *c);
    if (c == NULL)
        return -ENOMEM;
    c->t = t;
    cursor_reset(c, offset);
    *out = c;
    return 0;
}

TOPIC_API void topic_cursor_close(topic_cursor *c)
{
    if (c != NULL) {
        drop_batch(c);
        topic__zbuf_free(&c->z);
    }
    topic__free(c);
}

TOPIC_API int topic_cursor_seek(topic_cursor *c, uint64_t offset)
{
    if (c == NULL)
        return -EINVAL;
    if (offset < topic_start_offset(c->t))
        return TOPIC_EGONE;
    cursor_reset(c, offset);
    return 0;
}

TOPIC_API uint64_t topic_cursor_offset(const topic_cursor *c)
{
    return c ? c->next : 0;
}

/*
 * Decompresses the batch once, if need be, and starts at its first record.
 *
 * A cursor reads a batch twice: its checksum first, then its records.  In a
 * scan of large batches the checksum pass is the one that waits for memory,
 * so while the records of one batch are handed out, each call prefetches the
 * next batch at the same distance from its start (a batch's length on,
 * assuming batches of like size), two cache lines per record.  By the time
 * the cursor gets there the next checksum reads the cache (bench/micro, 1000
 * records of 100 B per batch: 18.0 to 15.8 ns a record).  The prefetch is a
 * hint: it never faults, even past the end of the mapping.  A compressed
 * batch's records are in c->z, not in the map, so it prefetches nothing.
 *
 * Small batches are prefetched at least PREFETCH_MIN ahead.  At one batch's
 * length, the open batches of single appends (up to 1 KiB, about 9 records
 * of 100 B) were prefetched a few records before their checksum read them,
 * too late for memory.  Passes over one topic of 1 M such records, taking
 * turns between distances, ran at 57-64 M records/s at a batch's length,
 * 68-75 M at 2 KiB, 69-77 M at 3 KiB and 66-77 M at 4 KiB (three runs,
 * 2026-11-30).  Large batches keep their own length: for batches of 1000
 * records, twice it was no faster and four times it slower.
 */
#define PREFETCH_MIN ((size_t)3 << 10)

static int enter_batch(topic_cursor *c)
{
    c->roff = c->b.h.base_offset;
    size_t len = c->b.h.length;
    c->ahead = (c->b.h.attributes & TOPIC__ATTR_COMPRESSION_MASK) != TOPIC__COMPRESS_NONE ? 0
               : len > PREFETCH_MIN                                                   ? len
                                                                                      : PREFETCH_MIN;
    return topic__batch_records(c->b.seg->map + c->b.pos, &c->b.h, &c->z, &c->rp, &c->rend);
}

/*
 * Moves to the batch after the current one when it is already published in
 * the same segment: the common case of a sequential scan, without searching.
 * A scan of small records takes this step once per record, so it parses
 * straight into the cursor's batch; when it returns false, the caller
 * finds the batch afresh and nothing of the old one is used.
 */
static bool next_in_segment(topic_cursor *c)
{
    struct batch_ref *b = &c->b;
    /* Not past the segment's end offset (the next segment's base) either:
     * bytes after it in this file are not records of the log, even when
     * they look like the next batch (a damaged or overlapping file), and
     * the next segment holds the real ones. */
    /* An open batch may have grown, or been sealed with more records, since
     * the cursor found it: the general path finds it again. */
    if (b->seg == NULL || b->h.magic == TOPIC__OPEN_MAGIC ||
        c->next != b->h.base_offset + b->h.count ||
        c->next >= atomic_load_explicit(&c->t->end, memory_order_acquire) ||
        c->next >= atomic_load_explicit(&b->seg->end, memory_order_acquire))
        return false;
    const uint8_t *map = b->seg->map;
    size_t pos = b->pos + b->h.length;
    size_t limit = atomic_load_explicit(&b->seg->len, memory_order_acquire);
    if (pos >= limit || limit > atomic_load_explicit(&b->seg->map_len, memory_order_relaxed) ||
        topic__header_parse(map + pos, limit - pos, &b->h) < 0 ||
        b->h.base_offset != c->next || !topic__batch_verify(map + pos, &b->h))
        return false;   /* the general path finds (or reports) it */
    b->pos = pos;
    if (enter_batch(c) < 0) {
        drop_batch(c);
        return false;   /* the general path reports it */
    }
    return true;
}

/* The start offset as topic_start_offset() gives it, without the call on
 * the writer's handle, whose start only its own deletions move, nor on a
 * reader's while the writer has not moved its start past the reader's. */
static inline uint64_t start_offset(topic *t)
{
    if ((t->flags & TOPIC_RDONLY) && !topic__live_start_unmoved(t))
        return topic_start_offset(t);
    return atomic_load_explicit(&t->start, memory_order_acquire);
}

/* Hands out the record just decoded, at offset c->next, and moves on. */
static inline void fill(topic_cursor *c, topic_record *rec, const struct record_view *r)
{
    rec->offset = c->next++;
    rec->timestamp = r->ts;
    rec->key = r->key;
    rec->key_len = r->key_len;
    rec->value = r->value;
    rec->value_len = r->value_len;
}

/* topic_cursor_next() for every case: a record to skip to inside the batch
 * (after a seek), a batch to find, deleted records, damage. */
static __attribute__((noinline)) int next_slow(topic_cursor *c, topic_record *rec)
{
    struct batch_ref *b = &c->b;
    /* Deleted records are gone for cursors too, even those in the middle
     * of a batch they had already verified. */
    if (c->next < start_offset(c->t)) {
        drop_batch(c);
        return TOPIC_EGONE;
    }
    bool in_batch = b->seg != NULL && c->next >= b->h.base_offset &&
                    c->next < b->h.base_offset + b->h.count && c->roff <= c->next;
    if (!in_batch && !next_in_segment(c)) {
        struct batch_ref found;
        int rc = topic__locate(c->t, c->next, &found);
        drop_batch(c);
        if (rc < 0)
            return rc;
        *b = found;
        if ((rc = enter_batch(c)) < 0) {
            drop_batch(c);
            return rc;
        }
    }
    __builtin_prefetch(c->rp + c->ahead);
    __builtin_prefetch(c->rp + c->ahead + 64);
    struct record_view r;
    do {
        if (topic__record_decode(&c->rp, c->rend, b->h.first_ts, &r) < 0) {
            drop_batch(c);
            return TOPIC_ECORRUPT;
        }
    } while (c->roff++ < c->next);
    fill(c, rec, &r);
    return 0;
}

/*
 * Nearly every call of a scan takes the record at rp of the batch it
 * verified before: no search, no checksum, and none of the calls that made
 * the whole function save registers and keep a stack frame at every
 * record.  Kept apart from next_slow, with the short decoder (format.h), a
 * scan of 100-byte single appends costs 155 instructions a record instead
 * of 178, checksums included (callgrind); 171 instead of 270 through a
 * read-only handle, whose start offset is checked without a call while
 * the writer has not moved it (start_offset).  A record the short decoder
 * declines, a deleted one and anything else take the slow path.
 */
TOPIC_API int topic_cursor_next(topic_cursor *c, topic_record *rec)
{
    if (c == NULL || rec == NULL)
        return -EINVAL;
    const struct batch_ref *b = &c->b;
    struct record_view r;
    if (b->seg != NULL && c->roff == c->next && c->next - b->h.base_offset < b->h.count &&
        c->next >= start_offset(c->t) &&
        topic__record_decode_short(&c->rp, c->rend, b->h.first_ts, &r)) {
        __builtin_prefetch(c->rp + c->ahead);
        __builtin_prefetch(c->rp + c->ahead + 64);
        c->roff++;
        fill(c, rec, &r);
        return 0;
    }
    return next_slow(c, rec);
}

/* Walks the batches of s from pos (offset `expect`) to the first record
 * whose timestamp is >= ts. */
static int time_walk(topic_cursor *c, struct segment *s, size_t pos, uint64_t expect,
                     size_t limit, uint64_t end, int64_t ts, bool *found)
{
    uint64_t start = topic_start_offset(c->t);
    while (pos < limit) {
        struct batch_header h;
        if (topic__open_at(s, pos, limit - pos, end, &h)) {
            if (h.base_offset != expect || h.count == 0)
                return expect < end ? TOPIC_ECORRUPT : 0;
        } else if (topic__header_parse(s->map + pos, limit - pos, &h) < 0 ||
                   h.base_offset != expect || !topic__batch_verify(s->map + pos, &h)) {
            return TOPIC_ECORRUPT;
        }
        if (h.max_ts >= ts && h.base_offset + h.count > start) {
            const uint8_t *rp, *bend;
            int rc = topic__batch_records(s->map + pos, &h, &c->z, &rp, &bend);
            for (uint32_t i = 0; i < h.count && rc == 0; i++) {
                struct record_view r;
                rc = topic__record_decode(&rp, bend, h.first_ts, &r);
                /* Records below the start offset are deleted, whatever
                 * their bytes say. */
                if (rc == 0 && r.ts >= ts && h.base_offset + i >= start) {
                    cursor_reset(c, h.base_offset + i);
                    *found = true;
                    return 0;
                }
            }
            if (rc < 0)
                return rc;
            if (h.base_offset >= start && h.magic != TOPIC__OPEN_MAGIC)
                return TOPIC_ECORRUPT;  /* max_ts promised a record that is not there */
        }
        pos += h.length;
        expect += h.count;
    }
    return 0;
}

/*
 * Finds, in segment s, the first record whose timestamp is >= ts.  The time
 * index names the last entry e before which every timestamp is < ts; the
 * walk starts there once the batches since the entry before it do not
 * prove e wrong (topic__tidx_entry_wrong).  An index found wrong is not
 * used again, and an entry that does not point at its batch is not used:
 * the segment is walked from its start.
 *
 * Neither walk begins below the batch that holds the start offset: the
 * records before it are deleted, and walking them cost every search for a
 * time before the start offset time in proportion to them (16 ms per
 * million, scale tester F2).
 */
static int seek_time_in(topic_cursor *c, struct segment *s, int64_t ts, bool *found)
{
    struct idx_entry e, p;
    /* The end offset first: the records below it are below the length
     * loaded after it (see topic__open_at). */
    uint64_t end = topic_end_offset(c->t);
    size_t limit = atomic_load_explicit(&s->len, memory_order_acquire);
    uint64_t start = topic_start_offset(c->t), from_off = s->base;
    size_t from = 0;
    if (start >= atomic_load_explicit(&s->end, memory_order_acquire))
        return 0;   /* all of it deleted */
    if (start > s->base && topic__segment_batch_at(s, start, limit, &from, &from_off) < 0) {
        from = 0;   /* damage: the walk from the start reports it */
        from_off = s->base;
    }
    if (topic__segment_tidx_ok(s) && topic__index_find_time(&s->tidx, ts, &e, &p) &&
        e.pos < limit) {
        if (topic__tidx_entry_wrong(s, &e, &p, limit)) {
            atomic_store_explicit(&s->tidx_state, 2, memory_order_release);
        } else {
            int rc = e.pos > from
                         ? time_walk(c, s, e.pos, s->base + e.rel, limit, end, ts, found)
                         : time_walk(c, s, from, from_off, limit, end, ts, found);
            if (rc != TOPIC_ECORRUPT)
                return rc;
        }
    }
    return time_walk(c, s, from, from_off, limit, end, ts, found);
}

/*
 * Segments are searched from the first one that can hold the answer: the
 * list keeps the running maximum of the sealed segments' timestamps, so a
 * search passes over the segments before it in O(log n) (the first search
 * of a handle loads, once, each segment it passes).  A segment that lost
 * records (cut short, or damaged in the middle) holds timestamps nobody
 * knows: a search that reaches it without an answer is TOPIC_ECORRUPT.
 */
TOPIC_API int topic_cursor_seek_time(topic_cursor *c, int64_t timestamp_ms)
{
    if (c == NULL)
        return -EINVAL;
    topic *t = c->t;
    drop_batch(c);   /* c->z is about to be reused */
    uint64_t end = topic_end_offset(t), start = topic_start_offset(t);
    struct segment *s = topic__seglist_time_start(t, timestamp_ms), *next;
    int rc = 0;
    bool found = false;
    for (; s != NULL && s->base < end && rc == 0 && !found; s = next) {
        rc = topic__segment_load(t, s);
        if (rc == 0 && atomic_load_explicit(&s->max_ts, memory_order_relaxed) >= timestamp_ms)
            rc = seek_time_in(c, s, timestamp_ms, &found);
        if (rc == 0 && !found && atomic_load(&s->missing) && atomic_load(&s->end) > start)
            rc = TOPIC_ECORRUPT;
        next = topic__segment_next(t, s);
        /* A reader's writer may delete s meanwhile: its file is gone
         * (-ENOENT), or a follower's walk of it was cut short (missing).
         * Records below the start offset are no answer and no damage, so
         * once the start has passed s the search goes on after it. */
        if ((rc == -ENOENT || rc == TOPIC_ECORRUPT) && next != NULL &&
            next->base <= topic_start_offset(t))
            rc = 0;
        if (rc == 0)
            topic__seglist_time_note(t, s);
        topic__segment_put(s);
    }
    topic__segment_put(s);
    if (rc == 0 && !found)
        cursor_reset(c, end);
    return rc;
}
