/*
 * Sparse indexes of one segment.
 *
 *   .index      8-byte entries:  u32 rel (offset - segment base),
 *                                u32 pos (file position of the batch holding it)
 *   .timeindex 16-byte entries:  i64 max_ts_before (largest timestamp of every
 *                                record before pos in this segment, INT64_MIN
 *                                when there is none), u32 rel, u32 pos
 *
 * Entries are written for the batch that starts once at least
 * index.interval.bytes have been appended since the last entry, so both
 * fields grow strictly and no entry ever points at position 0 (the start of
 * the segment is the implicit first entry).  In a preallocated file the used
 * entries are followed by zero entries.  An index is derived data: whatever
 * fails validation is rebuilt from the log.
 *
 * max_ts_before never decreases, which is what lets topic_cursor_seek_time()
 * binary-search it even when record timestamps are not in order: every record
 * before an entry whose max_ts_before < T has a timestamp < T.
 */
#include <fcntl.h>
#include <string.h>
#include <sys/mman.h>

#include "internal.h"

/* Entry i, decoded. */
static inline void entry_at(const struct index *ix, uint32_t i, struct idx_entry *e)
{
    const uint8_t *p = ix->map + (size_t)i * ix->entry_size;
    if (ix->entry_size == TOPIC__TIDX_ENTRY) {
        e->max_ts_before = (int64_t)topic__load64(p);
        p += 8;
    } else {
        e->max_ts_before = INT64_MIN;
    }
    e->rel = topic__load32(p);
    e->pos = topic__load32(p + 4);
}

void topic__index_entry(const struct index *ix, uint32_t i, struct idx_entry *e)
{
    entry_at(ix, i, e);
}

/* Entry i, and the one before it or the segment's start (0, 0, INT64_MIN). */
static void entry_and_prev(const struct index *ix, uint32_t i, struct idx_entry *e,
                           struct idx_entry *prev)
{
    entry_at(ix, i, e);
    if (i > 0)
        entry_at(ix, i - 1, prev);
    else
        *prev = (struct idx_entry){ 0, 0, INT64_MIN };
}

/* Entries' worth of file allocated at a time: 4096 of them at first, and
 * as much as the index already has from then on, up to 1 MiB.  Every call
 * to fallocate() is one an append waits for, and on ext4 each took about
 * 0.15 ms, whatever its size: in steps of 4096 entries, the indexes of a
 * run of small appends took 50 ms of every 0.7 s. */
#define RESERVE_ENTRIES 4096u
#define RESERVE_MAX_STEP ((size_t)1 << 20)

void topic__index_put(struct index *ix, const struct idx_entry *e)
{
    uint32_t n = atomic_load_explicit(&ix->n, memory_order_relaxed);
    if (n >= ix->cap)
        return;   /* a full index only makes lookups walk further */
    size_t need = ((size_t)n + 1) * ix->entry_size;
    if (need > ix->reserved) {
        /* A file-backed index grows in steps; where the disk is full the
         * entry is left out, which costs lookups time, never correctness. */
        size_t step = (size_t)RESERVE_ENTRIES * ix->entry_size;
        if (step < ix->reserved)
            step = ix->reserved < RESERVE_MAX_STEP ? ix->reserved : RESERVE_MAX_STEP;
        size_t want = ix->reserved + step;
        if (want > ix->map_len)
            want = ix->map_len;
        if (topic__fallocate_range(ix->fd, (off_t)ix->reserved, (off_t)(want - ix->reserved)) < 0)
            return;
        ix->reserved = want;
    }
    uint8_t *p = ix->map + (size_t)n * ix->entry_size;
    if (ix->entry_size == TOPIC__TIDX_ENTRY) {
        topic__store64(p, (uint64_t)e->max_ts_before);
        p += 8;
    }
    topic__store32(p, e->rel);
    topic__store32(p + 4, e->pos);
    atomic_store_explicit(&ix->n, n + 1, memory_order_release);
}

/*
 * The last entry for which `before` holds, where `before` is true for a
 * prefix of the entries (both fields only grow); false if it holds for none.
 * *prev gets the entry before that one, or the segment's start.  The count
 * is loaded once: entries the writer adds meanwhile are ignored.
 */
static bool last_before(const struct index *ix, bool (*before)(const struct idx_entry *, int64_t),
                        int64_t key, struct idx_entry *e, struct idx_entry *prev)
{
    uint32_t lo = 0, hi = atomic_load_explicit(&ix->n, memory_order_acquire);
    /* Invariant: `before` holds for [0, lo) and not for [hi, n). */
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        struct idx_entry m;
        entry_at(ix, mid, &m);
        if (before(&m, key))
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo == 0)
        return false;
    entry_and_prev(ix, lo - 1, e, prev);
    return true;
}

static bool earlier_than(const struct idx_entry *m, int64_t ts)
{
    return m->max_ts_before < ts;
}

static uint32_t rel_at(const struct index *ix, uint32_t i)
{
    return topic__load32(ix->map + (size_t)i * ix->entry_size + ix->entry_size - 8);
}

/*
 * The last entry whose relative offset is at most rel.  Offsets are dense
 * and batches of a topic tend to be alike, so the entries' offsets grow
 * almost evenly: the search starts where interpolation puts rel and gallops
 * from there, which touches one or two cache lines of a large index where a
 * plain binary search misses the cache some ten times.  Whatever the
 * entries hold (a damaged file), every probe stays inside [0, n) and the
 * answer is an entry for which the comparison held.
 */
bool topic__index_find_rel(const struct index *ix, uint32_t rel, struct idx_entry *e)
{
    uint32_t n = atomic_load_explicit(&ix->n, memory_order_acquire);
    if (n == 0)
        return false;
    uint32_t first = rel_at(ix, 0), last = rel_at(ix, n - 1);
    if (first > rel)
        return false;
    if (last <= rel) {
        entry_at(ix, n - 1, e);
        return true;
    }
    /* Invariant: entry lo's offset is at most rel, entry hi's is above it. */
    uint32_t lo = 0, hi = n - 1;
    uint32_t g = (uint32_t)((uint64_t)(rel - first) * (n - 1) / (last - first));
    if (g > lo && g < hi) {
        uint32_t step = 1;
        if (rel_at(ix, g) <= rel) {
            lo = g;
            while (step < hi - lo && rel_at(ix, lo + step) <= rel) {
                lo += step;
                step *= 2;
            }
            if (step < hi - lo)
                hi = lo + step;
        } else {
            hi = g;
            while (step < hi - lo && rel_at(ix, hi - step) > rel) {
                hi -= step;
                step *= 2;
            }
            if (step < hi - lo)
                lo = hi - step;
        }
    }
    while (hi - lo > 1) {
        uint32_t mid = lo + (hi - lo) / 2;
        if (rel_at(ix, mid) <= rel)
            lo = mid;
        else
            hi = mid;
    }
    entry_at(ix, lo, e);
    return true;
}

bool topic__index_last(const struct index *ix, struct idx_entry *e, struct idx_entry *prev)
{
    uint32_t n = atomic_load_explicit(&ix->n, memory_order_acquire);
    if (n == 0)
        return false;
    entry_and_prev(ix, n - 1, e, prev);
    return true;
}

bool topic__index_find_time(const struct index *ix, int64_t ts, struct idx_entry *e,
                            struct idx_entry *prev)
{
    return last_before(ix, earlier_than, ts, e, prev);
}

uint32_t topic__index_valid_prefix(const struct index *ix, uint64_t nrecords, size_t data_len)
{
    uint32_t n = atomic_load_explicit(&ix->n, memory_order_relaxed), i;
    struct idx_entry prev = { 0, 0, INT64_MIN }, e;
    for (i = 0; i < n; i++) {
        entry_at(ix, i, &e);
        if (e.rel <= prev.rel || e.pos <= prev.pos || e.pos >= data_len || e.rel >= nrecords ||
            e.max_ts_before < prev.max_ts_before)
            break;
        prev = e;
    }
    return i;
}

bool topic__index_valid(const struct index *ix, uint64_t nrecords, size_t data_len)
{
    return topic__index_valid_prefix(ix, nrecords, data_len) ==
           atomic_load_explicit(&ix->n, memory_order_relaxed);
}

/* Counts the used entries among the first `limit`: they end at the first
 * entry whose position is zero, which no real entry has.  A file cut to its
 * entries (every sealed segment, and the active one after a clean close)
 * is used to its end: one probe says so, where the search would fault in a
 * page of the file at each of its steps. */
static uint32_t count_used(const struct index *ix, uint32_t limit)
{
    struct idx_entry last;
    if (limit == 0)
        return 0;
    entry_at(ix, limit - 1, &last);
    if (last.pos != 0)
        return limit;
    uint32_t lo = 0, hi = limit - 1;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        struct idx_entry e;
        entry_at(ix, mid, &e);
        if (e.pos != 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/*
 * Maps index file `name`.  Writable (the active segment): created if missing
 * and mapped with room for `cap` entries, of which those already in the file
 * count; the file is allocated in steps as entries are added
 * (topic__index_put).  Read-only (a sealed segment): mapped as it is.  Entries are not
 * validated here, which keeps opening O(1): lookups check what they find
 * against the log and fall back to walking it (see read.c).
 */
int topic__index_map(struct index *ix, int dirfd, const char *name, uint32_t cap, bool writable)
{
    int fd = topic__openat(dirfd, name, writable ? O_RDWR | O_CREAT : O_RDONLY, TOPIC__FILE_MODE);
    if (fd < 0)
        return fd;
    /* 0 for a file that has no size (a FIFO in its place): the failure is
     * returned below, and nothing may branch on a value never set. */
    size_t size = 0;
    int rc = topic__fsize(fd, &size);
    uint32_t in_file = (uint32_t)(size / ix->entry_size);
    if (!writable || in_file > cap)
        cap = in_file;
    ix->map = NULL;
    ix->map_len = (size_t)cap * ix->entry_size;
    if (rc == 0 && ix->map_len > 0) {
        void *p;
        rc = topic__mmap(ix->map_len, writable ? PROT_READ | PROT_WRITE : PROT_READ, fd, &p);
        if (rc == 0)
            ix->map = p;
    }
    if (rc < 0) {
        topic__close(fd);
        ix->map_len = 0;
        return rc;
    }
    ix->fd = fd;
    ix->cap = cap;
    ix->reserved = (size_t)in_file * ix->entry_size;
    atomic_store(&ix->n, ix->map ? count_used(ix, in_file) : 0);
    return 0;
}

int topic__index_anon(struct index *ix, uint32_t cap)
{
    void *p = NULL;
    ix->fd = -1;
    ix->map_len = (size_t)(cap ? cap : 1) * ix->entry_size;
    TRY(topic__mmap(ix->map_len, PROT_READ | PROT_WRITE, -1, &p));
    ix->map = p;
    ix->cap = cap;
    ix->reserved = ix->map_len;   /* memory: nothing to allocate on disk */
    atomic_store(&ix->n, 0);
    return 0;
}

/* Gives back the address space of an index in anonymous memory past its
 * used entries, once no more will be added (a reader's index of a segment
 * the writer has rolled away from).  Its room was for a whole active
 * segment's entries, tens of MiB of address space, and a reader that
 * followed a writer through many rolls ran out of it. */
void topic__index_trim(struct index *ix)
{
    size_t keep = topic__pages_for((size_t)atomic_load(&ix->n) * ix->entry_size);
    if (ix->fd >= 0 || ix->map == NULL || keep >= ix->map_len ||
        topic__os.munmap(ix->map + keep, ix->map_len - keep) != 0)
        return;
    ix->map_len = keep;
    ix->cap = (uint32_t)(keep / ix->entry_size);
    ix->reserved = keep;
}

/* Cuts the file to its used entries and syncs it: the index of a sealed
 * segment holds exactly its entries. */
int topic__index_seal(struct index *ix)
{
    if (ix->fd < 0)
        return 0;
    TRY(topic__ftruncate(ix->fd, (off_t)atomic_load(&ix->n) * (off_t)ix->entry_size));
    return topic__fdatasync(ix->fd);
}

void topic__index_close_fd(struct index *ix)
{
    topic__close(ix->fd);
    ix->fd = -1;
}

void topic__index_unmap(struct index *ix)
{
    topic__munmap(ix->map, ix->map_len);
    topic__close(ix->fd);
    ix->map = NULL;
    ix->map_len = 0;
    ix->fd = -1;
    atomic_store(&ix->n, 0);
}
