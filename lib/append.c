/*
 * The append path: check the records, roll the segment when the batch does
 * not fit or the segment is too old, encode the batch straight into the
 * mapped segment, index it, publish the new end offset, apply flush.messages.
 */
#include <string.h>

#include "internal.h"

/* Checks the caller's records; fills the batch's timestamps and size, in
 * the same pass: a pass of its own for the size cost a batch of 1000 x
 * 100 B 5 more instructions per record, 145 instead of 140 (callgrind). */
static int check_records(const topic *t, const topic_record *recs, size_t n, int64_t now,
                         int64_t *first_ts, int64_t *max_ts, size_t *size)
{
    uint64_t max = (uint64_t)t->cfg.v[TOPIC_K_MAX_MESSAGE], total = 0;
    if (n > UINT32_MAX)
        return TOPIC_ETOOBIG;
    int64_t first = topic__rec_ts(&recs[0], now), top = INT64_MIN;
    size_t bytes = TOPIC__HEADER_SIZE;
    for (size_t i = 0; i < n; i++) {
        const topic_record *r = &recs[i];
        if ((r->key == NULL && r->key_len) || (r->value == NULL && r->value_len))
            return -EINVAL;
        if (r->key_len > max || r->value_len > max - r->key_len)
            return TOPIC_ETOOBIG;
        total += r->key_len + r->value_len;
        if (total > max)
            return TOPIC_ETOOBIG;
        int64_t ts = topic__rec_ts(r, now);
        if (ts > top)
            top = ts;
        bytes += topic__record_size(r, ts, first);
    }
    *first_ts = first;
    *max_ts = top;
    *size = bytes;
    return bytes > TOPIC__MAX_BATCH ? TOPIC_ETOOBIG : 0;
}

/* The next segment: the spare the flusher made ahead (segment.c), renamed,
 * when there is one; else one made here.  The spare was made with this
 * handle's segment.bytes, which does not change while it is open. */
static int next_segment(topic *t, uint64_t base, size_t capacity, struct segment **out)
{
    struct segment *sp = t->spare;
    if (sp != NULL) {
        t->spare = NULL;
        /* Counted before the renames: after a failed one, the new names
         * made so far are the fresh segment's to replace. */
        atomic_fetch_add(&t->dir_gen, 1);
        if (topic__spare_adopt(t, sp, base) == 0) {
            *out = sp;
            return 0;
        }
        topic__segment_free(sp);
        topic__spare_unlink(t);
    }
    return topic__segment_create(t, base, capacity, out);
}

/*
 * Starts the next segment; the flusher seals the old one in the background,
 * so that an append never waits for a segment's worth of data to reach the
 * disk.  Failing to create the next segment (a full disk) is not sticky:
 * nothing was lost and the next append tries again.
 *
 * From the first try on, nothing more goes into the old segment.  A try
 * that fails may leave the new segment's files behind (when removing them
 * fails too), and a record appended to the old segment would then give it
 * offsets at and past their base: two segments claiming the same records,
 * which the next open reports as damage.  The next try creates the files
 * afresh at the same base instead.
 */
static int roll(topic *t, size_t need)
{
    struct segment *old = t->active, *s;
    uint64_t base = atomic_load(&t->end);
    topic__open_seal(t);   /* a sealed segment holds only whole batches */
    (void)need;   /* any batch fits an empty segment */
    /* A reference of the roll's own until the sealer holds one: from the
     * moment the new segment is listed, old is no longer the last, and a
     * reader short of address space would otherwise take it for an idle
     * sealed segment and unload it (seglist.c) before it is sealed. */
    topic__segment_ref(old);
    old->writable = false;
    /* The old segment grows no more: give back its reservation of address
     * space past what is allocated (the preparer touches nothing beyond
     * that) before the new segment takes one.  Otherwise a roll needs two
     * reservations at once, and a process whose address space is limited
     * to less than about 4.1 GiB could not roll at all. */
    size_t keep = atomic_load(&old->len), reserved = topic__segment_reserve_shut(t, old);
    topic__segment_unmap_tail(old, reserved > keep ? reserved : keep);
    int rc;
    for (int tries = 0; tries < TOPIC__RECLAIM_TRIES; tries++) {
        unsigned refused = topic__maps_refused(), unloads = topic__seglist_unloads(t);
        rc = next_segment(t, base, (size_t)t->cfg.v[TOPIC_K_SEGMENT_BYTES], &s);
        /* Out of address space or map areas: see seglist.c. */
        if (rc != -ENOMEM || topic__maps_refused() == refused ||
            !topic__seglist_reclaim(t, unloads))
            break;
    }
    if (rc == 0 && (rc = topic__seglist_push(t, s)) < 0) {
        topic__segment_free(s);
        topic__segment_unlink(t, base);   /* best effort, as above */
    }
    if (rc < 0) {
        topic__segment_put(old);
        return rc;
    }
    topic__bg_release(t);   /* never waits: the roll must not let go of the lock */
    topic__bg_seal_later(t, old);
    topic__segment_put(old);
    t->active = s;
    t->spare_refused = false;   /* the new segment may have one */
    topic__publish(t);
    return 0;
}

static bool needs_roll(const topic *t, const struct segment *s, size_t size, int64_t mono)
{
    size_t len = atomic_load_explicit(&s->len, memory_order_relaxed);
    int64_t age = t->cfg.v[TOPIC_K_SEGMENT_MS];
    /* An empty segment takes any batch, even one larger than segment.bytes:
     * its mapping has room for the largest (see segment.c). */
    return !s->writable || (len > 0 && len + size > s->capacity) ||
           (age > 0 && len > 0 && mono - s->born_ms >= age);
}

/* Segments that may wait for the flusher to seal them before an append
 * that rolls seals them itself. */
#define MAX_UNSEALED 8

/* Batches smaller than this are not worth compressing. */
#define LZ4_WORTH_IT 256

/* The lz4 scratch buffers are kept between appends up to this size; larger
 * ones, which a batch of hundreds of megabytes needs twice over, are given
 * back after the append that needed them rather than held until close. */
#define ZBUF_KEEP ((size_t)4 << 20)

/*
 * Large batches of records where the preparer has not set up the pages yet
 * are written with pwrite() from an encoded copy.  Copied into the mapping,
 * each such page costs the appender a fault in which the kernel zero-fills
 * it (its space is allocated but unwritten), and then the copy over the
 * zeros: two passes over fresh memory, both on the appending thread.
 * pwrite() makes the page with its data in one pass, and the preparer, told
 * that the appends have passed it (topic__bg_ready), jumps half its
 * distance ahead to set up pages for the mapping again.  Where it keeps
 * ahead, batches go through the mapping, the faster way when it works
 * (5-7 GB/s here, against 1.5-3.8 for pwrite()).  The bytes are the same
 * either way: readers see the page cache through the mapping.
 *
 * What it buys is the slow runs.  In 12 interleaved runs each of bench
 * --only batch1k and batch100 on the 2-core VM, batches of 1000 x 1 KiB
 * went 730-7444 MB/s (median 6281) through the mapping alone and 4160-5731
 * (median 5241) this way; 1000 x 100 B went 1633-5268 (median 4441) and
 * 2891-4361 (median 3954).  In bench/compare, whose runs are short and
 * start on a cold preparer, 1 KiB batches went from 0.87-4.94 to 3.5-4.1 M
 * records/s and 100 B batches from 10-39 to 28-30 M.  Jumps of a quarter,
 * an eighth or all of the distance did worse on both workloads.  Below
 * PWRITE_MIN a system call costs more than the faults it saves; above
 * ZBUF_KEEP the copy would need scratch memory of its own, as fresh as the
 * pages.
 */
#define PWRITE_MIN ((size_t)64 << 10)

static void give_back_scratch(topic *t)
{
    if (t->zraw.cap > ZBUF_KEEP)
        topic__zbuf_free(&t->zraw);
    if (t->zout.cap > ZBUF_KEEP)
        topic__zbuf_free(&t->zout);
}

static int grow(struct zbuf *z, size_t n)
{
    if (z->cap >= n)
        return 0;
    uint8_t *p = topic__realloc(z->p, n);
    if (p == NULL)
        return -ENOMEM;
    z->p = p;
    z->cap = n;
    return 0;
}

/* Encodes the records into t->zraw and compresses them into t->zout;
 * *packed is the payload's size, or 0 to store the batch raw. */
static int compress(topic *t, const topic_record *recs, size_t n, int64_t first_ts, int64_t now,
                    size_t raw, size_t *packed)
{
    TRY(grow(&t->zraw, raw));
    TRY(grow(&t->zout, topic__lz4_bound(raw)));
    if (t->lz4_state == NULL && (t->lz4_state = topic__malloc(topic__lz4_state_size())) == NULL)
        return -ENOMEM;
    topic__records_encode(t->zraw.p, recs, n, first_ts, now);
    *packed = topic__lz4_pack(t->lz4_state, t->zraw.p, raw, t->zout.p, t->zout.cap);
    return 0;
}

/*
 * The open batch.  A batch per topic_append() cost a 48-byte header and an
 * XXH3 pass over every record, half of an append of 100 bytes, and made a
 * scan verify a checksum per record.  So consecutive topic_append() calls
 * share one batch, up to OPEN_MAX bytes.  The first writes an open header
 * ("TPO1", the base offset and the first timestamp) and its record; the next
 * ones write their record after it.  Readers find the records below the
 * published length (read.c), as for any batch.  The writer seals the batch
 * (topic__open_seal) before any other batch, a roll, a sync or a close:
 * it fills in the header and its checksum, and the batch is an ordinary one.
 *
 * An open batch has no checksum yet.  Instead each append folds its record
 * into a chain of XXH3 values (topic__chain_step) and publishes the chain
 * with the length in the live area of topic.state, where a reader in
 * another process verifies the records before it uses them (follow.c), and
 * where the next writer of this boot finds them after a crash and seals
 * them for the dead writer, or reports them damaged (segment.c).
 */

#define OPEN_MAX TOPIC__OPEN_MAX

void topic__open_seal(topic *t)
{
    struct segment *s = t->active;
    size_t pos = s == NULL ? TOPIC__NO_OPEN
                           : atomic_load_explicit(&s->open_pos, memory_order_relaxed);
    if (pos == TOPIC__NO_OPEN)
        return;
    size_t len = atomic_load_explicit(&s->len, memory_order_relaxed);
    struct batch_header h = { .base_offset = t->open.base, .count = t->open.count,
                              .first_ts = t->open.first_ts, .max_ts = t->open.max_ts };
    /* The header is made on the writer's copy, checksum included, and
     * copied into the file: a record changed there since it was written
     * fails the checksum, instead of being sealed in. */
    topic__open_seal_header(t->open.copy, len - pos, h.count, h.max_ts);
    /* Not the base offset and first timestamp, which readers of the open
     * batch may be reading now (their values stay). */
    uint8_t *dst = s->map + pos;
    memcpy(dst + 4, t->open.copy + 4, 12);      /* length, checksum */
    memcpy(dst + 24, t->open.copy + 24, 8);     /* count, attributes, reserved */
    memcpy(dst + 40, t->open.copy + 40, 8);     /* max_ts */
    __atomic_store_n(dst + TOPIC__MAGIC_KIND_AT, (uint8_t)TOPIC__KIND_BATCH, __ATOMIC_RELEASE);
    topic__segment_index_batch_after(t, s, pos, &h, t->open.seg_max_ts);
    atomic_store_explicit(&s->open_pos, TOPIC__NO_OPEN, memory_order_release);
    topic__publish(t);
}

/* The published length, end offset, live area and sleepers' wake-up, after
 * the bytes of a record or batch below `len` were written. */
static void publish_append(topic *t, struct segment *s, size_t len, uint64_t end, int64_t mono)
{
    atomic_store_explicit(&s->len, len, memory_order_release);
    atomic_store_explicit(&s->end, end, memory_order_release);
    atomic_store_explicit(&t->end, end, memory_order_release);
    topic__publish(t);
    topic__wait_notify(t);
    if (t->unsynced_since_ms == 0) {
        t->unsynced_since_ms = mono;
        if (t->cfg.v[TOPIC_K_FLUSH_MS] > 0)
            topic__flush_signal(t);   /* its flush.ms starts now */
    }
}

/*
 * Space in the active segment up to `upto`.  On a full disk the spare
 * (segment.c) holds space that only the next segment would use, up to a
 * step and the preparer's distance: it goes, and the reservation is tried
 * again, so that the disk's last megabytes take this segment's appends
 * rather than wait in a file for a roll that a full disk may never allow.
 */
static int reserve(topic *t, struct segment *s, size_t upto)
{
    int rc = topic__segment_reserve(t, s, upto);
    if ((rc == -ENOSPC || rc == -EDQUOT) && t->spare != NULL) {
        topic__bg_drop_spare(t);
        t->spare_refused = true;   /* or the flusher makes it again */
        rc = topic__segment_reserve(t, s, upto);
    }
    return rc;
}

/*
 * topic_append()'s record, into the open batch (joining the one there is,
 * or starting one), under append_lock; *done is false when it does not
 * belong in one (too large), after sealing any that was open.
 */
static int append_open(topic *t, const void *value, size_t vlen, int64_t now, int64_t mono,
                       uint64_t *first, bool *done)
{
    struct segment *s = t->active;
    size_t len = atomic_load_explicit(&s->len, memory_order_relaxed);
    size_t pos = atomic_load_explicit(&s->open_pos, memory_order_relaxed);
    uint64_t base = atomic_load_explicit(&t->end, memory_order_relaxed);
    *done = false;
    if (pos != TOPIC__NO_OPEN) {
        size_t rsize = topic__value_record_size(vlen, now, t->open.first_ts);
        if (len - pos + rsize <= OPEN_MAX && !needs_roll(t, s, rsize, mono) &&
            t->open.count < UINT32_MAX) {
            TRY(reserve(t, s, len + rsize));
            topic__bg_prepare(t, s, len + rsize, mono);
            uint8_t *rec = t->open.copy + (len - pos);
            topic__value_record_encode(rec, value, vlen, now, t->open.first_ts);
            t->open.chain = topic__chain_step(t->open.chain, rec, rsize);
            memcpy(s->map + len, rec, rsize);
            t->open.count++;
            if (now > t->open.max_ts)
                t->open.max_ts = now;
            if (now > atomic_load_explicit(&s->max_ts, memory_order_relaxed))
                atomic_store_explicit(&s->max_ts, now, memory_order_relaxed);
            publish_append(t, s, len + rsize, base + 1, mono);
            if (first != NULL)
                *first = base;
            *done = true;
            return 0;
        }
        topic__open_seal(t);
    }
    size_t rsize = topic__value_record_size(vlen, now, now);
    size_t size = TOPIC__HEADER_SIZE + rsize;
    if (size > OPEN_MAX)
        return 0;   /* a batch of its own, sealed at once */
    if (needs_roll(t, s, size, mono)) {
        TRY(roll(t, size));
        s = t->active;
        len = atomic_load_explicit(&s->len, memory_order_relaxed);
    }
    TRY(reserve(t, s, len + size));
    topic__bg_prepare(t, s, len + size, mono);
    uint8_t *copy = t->open.copy;
    topic__open_header(copy, base, now);
    topic__value_record_encode(copy + TOPIC__HEADER_SIZE, value, vlen, now, now);
    memcpy(s->map + len, copy, size);
    t->open.base = base;
    t->open.first_ts = t->open.max_ts = now;
    t->open.count = 1;
    /* Searches by time see the open batch's records (cursor.c); its index
     * entry, made when it is sealed, says what came before it. */
    t->open.seg_max_ts = atomic_load_explicit(&s->max_ts, memory_order_relaxed);
    if (now > t->open.seg_max_ts)
        atomic_store_explicit(&s->max_ts, now, memory_order_relaxed);
    t->open.chain = topic__chain_step(topic__chain_start(base, now), copy + TOPIC__HEADER_SIZE,
                                      rsize);
    /* Before the length that covers it: see read.c. */
    atomic_store_explicit(&s->open_pos, len, memory_order_release);
    publish_append(t, s, len + size, base + 1, mono);
    if (first != NULL)
        *first = base;
    *done = true;
    return 0;
}

/*
 * Appends one batch, under append_lock.  recs == NULL is topic_append()'s
 * common case, one record with no key stamped now, whose value is `value`
 * (vlen bytes; n is 1): it skips the general checks and encoder, and is never
 * compressed (the caller sends lz4 topics the general way).
 */
static int append_locked(topic *t, const topic_record *recs, size_t n, const void *value,
                         size_t vlen, uint64_t *first)
{
    int64_t mono, now = topic__clock_ms(&mono), first_ts, max_ts;
    size_t size;
    if (t->failed)
        return TOPIC_EFAILED;
    /* The end offset after these records must fit in 64 bits.  Only a
     * start offset near 2^64 (a damaged or edited topic.state) comes here;
     * the offsets used to wrap round to 0, where readers never saw them. */
    if ((uint64_t)n > UINT64_MAX - atomic_load_explicit(&t->end, memory_order_relaxed))
        return -EOVERFLOW;
    /* Before anything is written: an append that cannot have its segment
     * sealed and its flush.ms kept fails whole. */
    if (!t->flusher_running)
        TRY(topic__bg_flusher(t));
    if (recs != NULL) {
        TRY(check_records(t, recs, n, now, &first_ts, &max_ts, &size));
    } else {
        if (vlen > (uint64_t)t->cfg.v[TOPIC_K_MAX_MESSAGE])
            return TOPIC_ETOOBIG;
        size = topic__value_batch_size(vlen);
        if (size > TOPIC__MAX_BATCH)
            return TOPIC_ETOOBIG;
        first_ts = max_ts = now;
    }
    if (!t->marked_dirty) {
        int rc = topic__state_mark(t, false);
        if (rc < 0) {
            t->failed = rc;
            t->failure_told = true;   /* this append returns it */
            return rc;
        }
    }
    if (recs == NULL) {
        bool done;
        TRY(append_open(t, value, vlen, now, mono, first, &done));
        if (done)
            return 0;
    } else {
        topic__open_seal(t);   /* batches stay in the order of their offsets */
    }
    size_t packed = 0;
    if (recs != NULL && t->cfg.v[TOPIC_K_COMPRESSION] == TOPIC__COMPRESS_LZ4 &&
        size >= LZ4_WORTH_IT)
        TRY(compress(t, recs, n, first_ts, now, size - TOPIC__HEADER_SIZE, &packed));
    if (packed)
        size = TOPIC__HEADER_SIZE + packed;
    if (needs_roll(t, t->active, size, mono))
        TRY(roll(t, size));
    struct segment *s = t->active;
    size_t pos = atomic_load_explicit(&s->len, memory_order_relaxed);
    TRY(reserve(t, s, pos + size));
    uint64_t base = atomic_load_explicit(&t->end, memory_order_relaxed);
    topic__bg_prepare(t, s, pos + size, mono);
    if (recs == NULL) {
        topic__value_batch_encode(s->map + pos, size, base, value, vlen, now);
    } else if (packed) {
        memcpy(s->map + pos + TOPIC__HEADER_SIZE, t->zout.p, packed);
        topic__header_encode(s->map + pos, size, base, n, first_ts, max_ts, TOPIC__COMPRESS_LZ4);
    } else if (size < PWRITE_MIN || size > ZBUF_KEEP || topic__bg_ready(t, s, pos, pos + size) ||
               grow(&t->zraw, size) != 0) {
        topic__batch_encode(s->map + pos, size, base, recs, n, first_ts, max_ts, now);
    } else {
        topic__batch_encode(t->zraw.p, size, base, recs, n, first_ts, max_ts, now);
        int rc = topic__pwrite_all(s->fd, t->zraw.p, size, (off_t)pos);
        if (rc < 0) {
            /* A failed write, like a failed sync, is the topic's last: what
             * the file holds there is not known.  Nothing of the batch was
             * published, and this append returns the error. */
            t->failed = rc;
            t->failure_told = true;
            return rc;
        }
    }
    struct batch_header h = { .base_offset = base, .count = (uint32_t)n,
                              .first_ts = first_ts, .max_ts = max_ts };
    topic__segment_index_batch(t, s, pos, &h);
    /* Publish: the bytes above, then the segment length, then the end
     * offset; readers load them in the opposite order. */
    publish_append(t, s, pos + size, base + n, mono);
    if (first != NULL)
        *first = base;
    return 0;
}

/* recs == NULL: one record whose value is `value`, vlen bytes long (see
 * append_locked). */
static int append(topic *t, const topic_record *recs, size_t n, const void *value, size_t vlen,
                  uint64_t *first)
{
    if (t->flags & TOPIC_RDONLY)
        return TOPIC_ERDONLY;
    if (topic__forked(t))
        return TOPIC_EFAILED;   /* the parent's handle (see topic_close) */
    bool durable = t->cfg.v[TOPIC_K_FLUSH_MESSAGES] > 0;
    if (durable) {
        /* For group commit (sync.c): how many threads append durably at
         * once.  A thread counted here while others wait for a sync is one
         * the next sync should wait for. */
        int now_in = atomic_fetch_add(&t->durable_inflight, 1) + 1;
        int peak = atomic_load_explicit(&t->durable_peak, memory_order_relaxed);
        while (now_in > peak && !atomic_compare_exchange_weak(&t->durable_peak, &peak, now_in))
            ;
    }
    topic__lock(&t->append_lock);
    int rc = append_locked(t, recs, n, value, vlen, first);
    if (recs != NULL)   /* only these grow the lz4 scratch (compress) */
        give_back_scratch(t);
    bool sync = rc == 0 && t->cfg.v[TOPIC_K_FLUSH_MESSAGES] > 0 &&
                atomic_load(&t->end) - t->synced_end >= (uint64_t)t->cfg.v[TOPIC_K_FLUSH_MESSAGES];
    bool seal = rc == 0 && t->nunsealed > MAX_UNSEALED;
    topic__unlock(&t->append_lock);
    /* Each segment waiting for the flusher holds a reservation of address
     * space (TOPIC__MAP_ACTIVE); an appender that rolls faster than the
     * flusher seals (tiny segments, a slow disk) helps it.  The records
     * are acknowledged already: a failure here is the flusher's to report
     * (sticky), not this append's. */
    if (seal)
        topic__seal_pending(t);
    /* Under flush.messages the append is acknowledged only once durable.
     * A sync refused because another thread's sync failed meanwhile gives
     * that failure's error, not TOPIC_EFAILED: from an append, that code
     * means nothing was written, and these records were. */
    if (sync) {
        rc = topic__sync(t);
        if (rc == TOPIC_EFAILED)
            rc = topic__failure(t);
        rc = topic__tell_failure(t, rc);
    }
    if (durable)
        atomic_fetch_sub(&t->durable_inflight, 1);
    return rc;
}

TOPIC_API int topic_append(topic *t, const void *value, size_t len, uint64_t *offset)
{
    if (t == NULL || (value == NULL && len > 0))
        return -EINVAL;
    if (t->cfg.v[TOPIC_K_COMPRESSION] == TOPIC__COMPRESS_NONE)
        return append(t, NULL, 1, value, len, offset);
    topic_record r = { 0, 0, NULL, 0, value, len };
    return append(t, &r, 1, NULL, 0, offset);
}

TOPIC_API int topic_append_batch(topic *t, const topic_record *recs, size_t n,
                                 uint64_t *first_offset)
{
    if (t == NULL || (recs == NULL && n > 0))
        return -EINVAL;
    if (n == 0) {
        if (t->flags & TOPIC_RDONLY)
            return TOPIC_ERDONLY;
        if (topic__forked(t))
            return TOPIC_EFAILED;   /* refused like every write of the child */
        if (first_offset != NULL)
            *first_offset = topic_end_offset(t);
        return 0;
    }
    return append(t, recs, n, NULL, 0, first_offset);
}
