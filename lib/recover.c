/*
 * Walking a segment's batches from a known-good point: recovery after a crash
 * (verify every checksum, stop at the first bad byte) and rebuilding lost or
 * damaged indexes.
 */
#include "internal.h"

/*
 * Whether the batches from time-index entry p up to the next entry e prove
 * e wrong: e's max_ts_before is below p's, or an intact batch between them
 * holds a later timestamp than e says or straddles e's position.  A damaged
 * e that says too little, which would make a walk from it skip records,
 * shows this way (one index interval to read).  A damaged batch there stops
 * the check without proving anything: the log is what is damaged, and e
 * was written while the batch was whole.
 */
bool topic__tidx_entry_wrong(const struct segment *s, const struct idx_entry *e,
                             const struct idx_entry *p, size_t limit)
{
    if (p->max_ts_before > e->max_ts_before)
        return true;
    size_t pos = p->pos;
    uint64_t expect = s->base + p->rel;
    while (pos < e->pos && pos < limit) {
        struct batch_header h;
        if (topic__header_parse(s->map + pos, limit - pos, &h) < 0 || h.base_offset != expect ||
            !topic__batch_verify(s->map + pos, &h))
            return false;
        if (h.max_ts > e->max_ts_before || pos + h.length > e->pos)
            return true;
        pos += h.length;
        expect += h.count;
    }
    return false;
}

/*
 * Walks the batches of s from the last index entry (or from position 0 when
 * the indexes are empty) up to `limit` bytes, tracking the largest timestamp
 * and, with TOPIC__SCAN_INDEX, adding index entries for the batches past the
 * last one indexed.  With TOPIC__SCAN_VERIFY each batch's checksum and record
 * structure are checked too.  The walk also stops at the segment's end
 * offset when that is known (the next segment's base).
 * Stops at the zero magic of the preallocated tail or at the first batch that
 * fails a check; *len and *end say where the intact batches end.  Returns 0,
 * or TOPIC_EVERSION for a batch of a newer format, which must not be cut off.
 */
int topic__segment_scan(topic *t, struct segment *s, size_t limit, int how,
                        size_t *len, uint64_t *end)
{
    struct idx_entry e, p;
    size_t pos = 0;
    uint64_t expect = s->base;
    if (limit > s->map_len)
        limit = s->map_len;
    /* New entries go after the last offset-index entry; the largest
     * timestamp is known up to the last time-index entry.  The two are the
     * same entry unless one file lost some (a full disk skips entries), so
     * the walk starts at the time index's, which is never later. */
    if (topic__index_find_rel(&s->idx, UINT32_MAX, &e))
        s->last_index_pos = e.pos;
    if (topic__index_last(&s->tidx, &e, &p) && e.pos <= s->last_index_pos) {
        /* A follower walks its segment again at every refresh: an entry it
         * has walked past was checked, or made by that walk. */
        bool checked = s->follow && s->walked_end > s->base + e.rel;
        if (checked || !topic__tidx_entry_wrong(s, &e, &p, limit)) {
            pos = e.pos;
            expect = s->base + e.rel;
            atomic_store(&s->max_ts, e.max_ts_before);
        } else {
            /* The walk from the start takes the largest timestamp from the
             * batches themselves.  A sealed segment's load and the writer's
             * open rebuild the time index; a follower's searches walk the
             * segment from its start instead. */
            atomic_store(&s->tidx_state, 2);
        }
    }
    uint64_t stop = atomic_load(&s->end);   /* UINT64_MAX while unknown */
    while (pos < limit && expect < stop) {
        struct batch_header h;
        int rc = topic__header_parse(s->map + pos, limit - pos, &h);
        if (rc == TOPIC_EVERSION)
            return rc;
        if (rc < 0 || h.base_offset != expect)
            break;
        if ((how & TOPIC__SCAN_VERIFY) && (!topic__batch_verify(s->map + pos, &h) ||
                       topic__batch_walk(s->map + pos, &h) < 0))
            break;
        if ((how & TOPIC__SCAN_INDEX) && (pos > s->last_index_pos || pos == 0))
            topic__segment_index_batch(t, s, pos, &h);
        else if (h.max_ts > atomic_load(&s->max_ts))
            atomic_store(&s->max_ts, h.max_ts);
        pos += h.length;
        expect += h.count;
    }
    *len = pos;
    *end = expect;
    return 0;
}
