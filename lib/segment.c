/*
 * One segment: a .log file of batches with its .index and .timeindex.
 *
 * The writer's active segment is preallocated to its capacity (so a full disk
 * shows up as -ENOSPC when the segment is created, never as SIGBUS later) and
 * mapped shared: an append is a copy into the page cache, which a crash of
 * the process cannot take back.  Sealing cuts the files to their used length
 * and syncs them.  Sealed segments are mapped read-only on first use.
 */
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "internal.h"

void topic__segment_name(char *buf, size_t cap, uint64_t base, const char *ext)
{
    snprintf(buf, cap, "%020" PRIu64 "%s", base, ext);
}

/* The index files go first, the log last: a writer killed in between
 * leaves a .log, which the next writer's open finds and removes if it lies
 * below the start offset.  With the log first, the kill left index files
 * that no open ever looked at again (outside tester Q: 51 of them after
 * 300 kills under retention). */
static const char *const part_ext[3] = { ".index", ".timeindex", ".log" };

int topic__segment_unlink(topic *t, uint64_t base)
{
    int first = 0;
    for (int k = 0; k < 3; k++) {
        char name[64];
        topic__segment_name(name, sizeof name, base, part_ext[k]);
        int rc = topic__unlinkat(t->dirfd, name);
        if (rc < 0 && rc != -ENOENT && first == 0)
            first = rc;
    }
    return first;
}

struct segment *topic__segment_new(uint64_t base)
{
    struct segment *s = topic__calloc(1, sizeof *s);
    if (s == NULL)
        return NULL;
    s->base = base;
    s->fd = -1;
    s->idx.fd = s->tidx.fd = -1;
    s->idx.entry_size = TOPIC__IDX_ENTRY;
    s->tidx.entry_size = TOPIC__TIDX_ENTRY;
    atomic_init(&s->len, 0);
    atomic_init(&s->open_pos, TOPIC__NO_OPEN);
    atomic_init(&s->bad_open, TOPIC__NO_OPEN);
    atomic_init(&s->end, UINT64_MAX);   /* unknown until walked or sealed */
    atomic_init(&s->max_ts, INT64_MIN);
    pthread_mutex_init(&s->load_lock, NULL);
    return s;
}

void topic__segment_free(struct segment *s)
{
    if (s == NULL)
        return;
    topic__munmap(s->map, s->map_len);
    topic__close(s->fd);
    topic__index_unmap(&s->idx);
    topic__index_unmap(&s->tidx);
    pthread_mutex_destroy(&s->load_lock);
    topic__free(s);
}

/* Index entries a segment of `capacity` bytes can need at most. */
static uint32_t index_cap(const topic *t, size_t capacity)
{
    size_t step = (size_t)t->cfg.v[TOPIC_K_INDEX_INTERVAL];
    if (step < TOPIC__MIN_BATCH)
        step = TOPIC__MIN_BATCH;
    return (uint32_t)(capacity / step + 2);
}

void topic__segment_index_batch(topic *t, struct segment *s, size_t pos,
                                const struct batch_header *h)
{
    topic__segment_index_batch_after(t, s, pos, h,
                                     atomic_load_explicit(&s->max_ts, memory_order_relaxed));
}

void topic__segment_index_batch_after(topic *t, struct segment *s, size_t pos,
                                      const struct batch_header *h, int64_t max_ts)
{
    if (pos > 0 && pos - s->last_index_pos >= (size_t)t->cfg.v[TOPIC_K_INDEX_INTERVAL]) {
        struct idx_entry e = { (uint32_t)(h->base_offset - s->base), (uint32_t)pos, max_ts };
        topic__index_put(&s->idx, &e);
        topic__index_put(&s->tidx, &e);
        s->last_index_pos = pos;
    }
    if (h->max_ts > atomic_load_explicit(&s->max_ts, memory_order_relaxed))
        atomic_store_explicit(&s->max_ts, h->max_ts, memory_order_relaxed);
}

/* Maps both index files, named idx_name and tidx_name, writable, replacing
 * them when `fresh`.  Entries may be added as soon as this returns (the
 * files grow as they are). */
static int map_indexes_named(topic *t, struct segment *s, uint32_t cap, bool fresh,
                             const char *const name[2])
{
    struct index *ix[2] = { &s->idx, &s->tidx };
    for (int i = 0; i < 2; i++) {
        if (fresh) {
            /* A directory in the index's place is not removed: the open
             * fails as for any file of the topic that is not a regular
             * one.  A symbolic link, like a FIFO, is replaced. */
            int rc = topic__unlinkat(t->dirfd, name[i]);
            if (rc < 0 && rc != -ENOENT)
                return rc == -EISDIR ? TOPIC_ECORRUPT : rc;
        }
        TRY(topic__index_map(ix[i], t->dirfd, name[i], cap, true));
    }
    return 0;
}

static int map_indexes(topic *t, struct segment *s, uint32_t cap, bool fresh)
{
    char idx[64], tidx[64];
    topic__segment_name(idx, sizeof idx, s->base, part_ext[0]);
    topic__segment_name(tidx, sizeof tidx, s->base, part_ext[1]);
    const char *const name[2] = { idx, tidx };
    return map_indexes_named(t, s, cap, fresh, name);
}

/* Opens the .log file `name` read-write, without mapping it; *size is its
 * size. */
static int open_log(topic *t, struct segment *s, const char *name, size_t capacity, int oflags,
                    size_t *size)
{
    int fd = topic__openat(t->dirfd, name, O_RDWR | oflags, TOPIC__FILE_MODE);
    if (fd < 0)
        return fd;
    s->fd = fd;
    TRY(topic__fsize_id(fd, size, s->file_id));
    s->capacity = capacity > *size ? capacity : *size;
    return 0;
}

/* Maps an opened .log file of `size` bytes: the whole active reservation of
 * address space, or its size, if larger. */
static int map_opened_log(struct segment *s, size_t size)
{
    void *p;
    s->map_len = size > TOPIC__MAP_ACTIVE ? size : TOPIC__MAP_ACTIVE;
    TRY(topic__mmap(s->map_len, PROT_READ | PROT_WRITE, s->fd, &p));
    s->map = p;
    return 0;
}

/* Opens the .log file read-write and maps `capacity` bytes of it (or its
 * size, if larger); the file itself grows by topic__segment_reserve(), from
 * the first append on, so that opening a large topic stays cheap. */
static int map_log(topic *t, struct segment *s, size_t capacity, int oflags, size_t *size)
{
    char name[64];
    topic__segment_name(name, sizeof name, s->base, part_ext[2]);
    TRY(open_log(t, s, name, capacity, oflags, size));
    return map_opened_log(s, *size);
}

/*
 * Space is reserved in steps rather than a whole segment at once: on tmpfs
 * (often /tmp) a reservation is memory, and a gigabyte per topic is not a
 * price to pay up front.  Every byte is reserved before it is written, so a
 * full disk is still an error of the append that meets it, never SIGBUS.
 *
 * A page preparer (background.c) that is well ahead of the appends
 * reserves the space ahead of them, so that a small append seldom waits for
 * fallocate(): that call allocates blocks, and on ext4 it took a fifth of
 * the time of a run of small appends, at times 100 ms in one call while the
 * allocator read its bitmaps from the disk.  Otherwise the appender
 * reserves, as it does when there is no preparer, or when it needs space
 * the preparer has not reserved.  reserve_lock makes the two take turns;
 * a roll shuts the old segment's reservation under it
 * (topic__segment_reserve_shut), so that the size it keeps mapped covers
 * every page the preparer may touch.
 */
size_t topic__reserve_target(const struct segment *s, size_t reserved, size_t upto)
{
    size_t want = reserved + TOPIC__RESERVE_STEP;
    if (want > s->capacity)
        want = s->capacity;   /* no further than the segment will grow */
    return want > upto ? want : upto;
}

/*
 * Under reserve_lock.  A file system with less than a step left still takes
 * what fits in it: the reservation falls back to the pages that [have,
 * upto) lies on.  With steps only, a 40 MiB tmpfs refused 100-byte appends
 * with -ENOSPC while 7.6 MB of it were free.  From the first step that
 * fails on, the segment asks for 64 KiB at a time: a failing 16 MiB
 * fallocate costs the file system as much as the space it finds (tmpfs
 * allocates, then gives back), and filling the last 16 MiB of a tmpfs
 * with a step tried at every page took 8 s.
 */
#define RESERVE_SMALL ((size_t)64 << 10)

static int reserve_locked(struct segment *s, size_t upto)
{
    size_t have = atomic_load_explicit(&s->reserved, memory_order_relaxed);
    if (upto <= have)
        return 0;
    size_t want = topic__reserve_target(s, have, upto);
    if (atomic_load_explicit(&s->reserve_small, memory_order_relaxed)) {
        size_t small = (upto + RESERVE_SMALL - 1) & ~(RESERVE_SMALL - 1);
        if (small < want)
            want = small;
    }
    int rc = topic__fallocate_range(s->fd, (off_t)have, (off_t)(want - have));
    if (rc == -ENOSPC || rc == -EDQUOT) {
        size_t need = (upto + 4095) & ~(size_t)4095;
        if (need < want) {
            atomic_store_explicit(&s->reserve_small, true, memory_order_relaxed);
            rc = topic__fallocate_range(s->fd, (off_t)have, (off_t)(need - have));
            want = need;
        }
    }
    TRY(rc);
    atomic_store_explicit(&s->reserved, want, memory_order_release);
    return 0;
}

int topic__segment_reserve_more(topic *t, struct segment *s, size_t upto)
{
    pthread_mutex_lock(&t->reserve_lock);
    int rc = reserve_locked(s, upto);
    pthread_mutex_unlock(&t->reserve_lock);
    return rc;
}

size_t topic__segment_reserve_ahead(topic *t, struct segment *s, size_t upto)
{
    pthread_mutex_lock(&t->reserve_lock);
    /* On a disk short of space, the appends reserve what they write, and
     * each try to reserve ahead of them would cost as much as it found. */
    if (!s->reserve_shut && !atomic_load_explicit(&s->reserve_small, memory_order_relaxed))
        (void)reserve_locked(s, upto);
    size_t have = atomic_load_explicit(&s->reserved, memory_order_relaxed);
    pthread_mutex_unlock(&t->reserve_lock);
    return have;
}

size_t topic__segment_reserve_shut(topic *t, struct segment *s)
{
    pthread_mutex_lock(&t->reserve_lock);
    s->reserve_shut = true;
    size_t have = atomic_load_explicit(&s->reserved, memory_order_relaxed);
    pthread_mutex_unlock(&t->reserve_lock);
    return have;
}

/* A new, empty active segment at `base`, born now, its files in place. */
static void fresh_active(struct segment *s, uint64_t base)
{
    s->base = base;
    s->writable = s->may_open = true;
    atomic_store(&s->end, base);
    s->born_ms = topic__mono_ms();
    atomic_store(&s->tidx_state, 1);
    atomic_store(&s->loaded, true);
}

int topic__segment_create(topic *t, uint64_t base, size_t capacity, struct segment **out)
{
    struct segment *s = topic__segment_new(base);
    if (s == NULL)
        return -ENOMEM;
    size_t size;
    /* The .log file, which is what makes a segment, comes last, so that a
     * creation that fails leaves at worst index files of no segment. */
    int rc = map_indexes(t, s, index_cap(t, capacity), true);
    if (rc == 0)
        rc = map_log(t, s, capacity, O_CREAT | O_TRUNC, &size);
    if (rc == 0)
        rc = topic__segment_reserve(t, s, 1);
    if (rc == 0)
        rc = topic__fsync(t->dirfd);
    if (rc < 0) {
        topic__segment_free(s);
        topic__segment_unlink(t, base);   /* best effort: rc is what matters */
        return rc;
    }
    fresh_active(s, base);
    *out = s;
    return 0;
}

/*
 * The spare: the next segment's three files, made ahead of the roll that
 * needs them.  A roll that creates its segment does so under append_lock,
 * and every append waits for it: three files created, the first step of
 * space allocated and the directory synced.  On ext4 with the sealer's
 * writeback of the segment just rolled away from in the device's queue,
 * that took 100-480 ms in one roll of five in bench runs of 100 B appends
 * (the allocator reading block bitmaps, the directory's sync waiting
 * behind the writeback).  So when the active segment nears its end
 * (background.c), the flusher makes the next segment's files under
 * temporary names, off the append path, and the roll renames them to the
 * segment's base offset: a rename and a mmap() under the lock.
 *
 * The renamed names reach the disk with the directory's next sync, which
 * the sealer (sync.c) makes before anything synced can depend on them.
 * The spare's names end in .tmp, so a writer's open removes those a
 * killed writer left (topic.c), and nothing takes them for a segment.  A
 * segment made from a spare is born when the spare was: its age for
 * segment.ms after a reopen counts from there (reopened_born_ms), which
 * can roll it early, never late.
 */
static const char *const spare_name[3] = { "spare.index.tmp", "spare.timeindex.tmp",
                                           "spare.log.tmp" };

bool topic__spare_name(const char *name)
{
    for (int k = 0; k < 3; k++)
        if (strcmp(name, spare_name[k]) == 0)
            return true;
    return false;
}

void topic__spare_unlink(topic *t)
{
    for (int k = 0; k < 3; k++)
        (void)topic__unlinkat(t->dirfd, spare_name[k]);   /* best effort */
}

int topic__spare_create(topic *t, size_t capacity, size_t reserve, struct segment **out)
{
    struct segment *s = topic__segment_new(0);
    if (s == NULL)
        return -ENOMEM;
    size_t size;
    int rc = map_indexes_named(t, s, index_cap(t, capacity), true, spare_name);
    if (rc == 0)
        rc = open_log(t, s, spare_name[2], capacity, O_CREAT | O_TRUNC, &size);
    /* Not under reserve_lock: nobody else knows of s, and an allocation
     * that waits for the disk must not hold up the active segment's. */
    if (rc == 0)
        rc = reserve_locked(s, reserve < capacity ? reserve : capacity);
    if (rc == 0)
        rc = topic__fsync(t->dirfd);
    if (rc < 0) {
        topic__segment_free(s);
        topic__spare_unlink(t);
        return rc;
    }
    *out = s;
    return 0;
}

int topic__spare_adopt(topic *t, struct segment *s, uint64_t base)
{
    for (int k = 0; k < 3; k++) {
        char name[64];
        topic__segment_name(name, sizeof name, base, part_ext[k]);
        TRY(topic__renameat(t->dirfd, spare_name[k], name));
    }
    size_t size;
    TRY(topic__fsize(s->fd, &size));
    TRY(map_opened_log(s, size));
    fresh_active(s, base);
    return 0;
}

/* Forgets the indexes of s so that a walk from position 0 rebuilds them. */
static void reset_indexes(struct segment *s)
{
    topic__index_unmap(&s->idx);
    topic__index_unmap(&s->tidx);
    s->last_index_pos = 0;
    atomic_store(&s->max_ts, INT64_MIN);
}

/*
 * Where the age of a reopened active segment for segment.ms begins: the
 * creation of its file, not the reopening, or a writer restarted more often
 * than segment.ms would never roll by age (and retention.ms, which never
 * deletes the active segment, would delete nothing).  Record timestamps
 * cannot say: they are the callers' and may be anything.  The file's birth
 * time is on the wall clock, so the age it gives is carried over to the
 * monotonic clock once, here; a birth in the future (the clock was set
 * back since) counts as now, and so does a file system that keeps no birth
 * time.
 */
static int64_t reopened_born_ms(int fd)
{
    int64_t mono, now = topic__clock_ms(&mono);
    struct statx sx;
    if (statx(fd, "", AT_EMPTY_PATH, STATX_BTIME, &sx) != 0 || !(sx.stx_mask & STATX_BTIME))
        return mono;
    if (sx.stx_btime.tv_sec < 0 || sx.stx_btime.tv_sec > now / 1000)
        return mono;
    int64_t age = now - ((int64_t)sx.stx_btime.tv_sec * 1000 + sx.stx_btime.tv_nsec / 1000000);
    return age > 0 ? mono - age : mono;   /* before the boot: below zero */
}

/*
 * The verifying walk of a segment that a record vouches for stopped at a bad
 * batch (at *len, offset *end) below the record's end offset `stop`: the
 * batch was damaged after it was written whole.  The walk resumes past it at
 * the first entry of the segment's old offset index (`old`, written by the
 * writer that wrote the batches) that names an intact batch of the offset
 * the entry says, and again past each further bad batch, adding entries for
 * the intact batches found to the new indexes so that readers reach them.
 * The damaged batches' records read TOPIC_ECORRUPT.
 *
 * Only an index entry is trusted to say where a batch starts: a search for
 * the next batch header would take a batch held inside a record's value
 * (a topic that stores another topic's batches) for one of the log's own.
 * Without an entry past the damage, the records after it stay unreadable,
 * and their offsets stay taken.
 */
static void resume_past_damage(topic *t, struct segment *s, const struct index *old,
                               size_t limit, uint64_t stop, size_t *len, uint64_t *end)
{
    uint32_t n = atomic_load(&old->n);
    for (uint32_t i = 0; i < n && *end < stop; i++) {
        struct idx_entry e;
        struct batch_header h;
        topic__index_entry(old, i, &e);
        uint64_t at = s->base + e.rel;
        if (e.pos <= *len || e.pos >= limit || at <= *end || at >= stop ||
            topic__header_parse(s->map + e.pos, limit - e.pos, &h) < 0 || h.base_offset != at ||
            !topic__batch_verify(s->map + e.pos, &h) || topic__batch_walk(s->map + e.pos, &h) < 0)
            continue;
        /* The entry's max_ts_before leaves out the damaged batches'
         * timestamps, which nobody can read: the segment is marked as
         * missing records, and time searches pass over it with that in
         * mind (topic__segment_note_missing). */
        struct idx_entry mark = { e.rel, e.pos, atomic_load(&s->max_ts) };
        topic__index_put(&s->idx, &mark);
        topic__index_put(&s->tidx, &mark);
        s->last_index_pos = e.pos;
        if (topic__segment_scan(t, s, limit, TOPIC__SCAN_VERIFY | TOPIC__SCAN_INDEX, len, end) < 0)
            return;   /* a batch of a newer format: the walk ends there */
    }
}

/*
 * A recovery that a record vouches for begins the segment's indexes afresh,
 * and resumes past a damaged batch by the entries of the offset index as the
 * writer of the batches left it (resume_past_damage).  A recovery killed
 * between the two would leave the next one an index without those entries,
 * and the records after the damage unreachable for good.  So the old index
 * stays under a second name, <base>.index.prev, until the walk is done with
 * it (drop_old_index), and *old maps it.  A .prev already there is from a
 * recovery killed that way, and holds the entries of the writer itself: it
 * is the one kept.  Best effort, not through topic__os: without the link
 * (a file system without hard links) the index is read where it is.
 */
static void keep_old_index(topic *t, struct segment *s, struct index *old)
{
    char name[64], prev[64];
    topic__segment_name(name, sizeof name, s->base, ".index");
    topic__segment_name(prev, sizeof prev, s->base, ".index.prev");
    bool linked = linkat(t->dirfd, name, t->dirfd, prev, 0) == 0 || errno == EEXIST;
    if (topic__index_map(old, t->dirfd, linked ? prev : name, 0, false) < 0)
        *old = (struct index){ .fd = -1, .entry_size = TOPIC__IDX_ENTRY };
}

/* The end of keep_old_index's care, and of a .prev an earlier recovery
 * left, whether or not this one needed it. */
static void drop_old_index(topic *t, struct segment *s)
{
    char prev[64];
    topic__segment_name(prev, sizeof prev, s->base, ".index.prev");
    topic__os.unlinkat(t->dirfd, prev, 0);
}

/* Where the data of a file that may hold a reserved tail of zeros ends,
 * at or past `from`. */
static size_t data_end(const struct segment *s, size_t from, size_t size)
{
    while (size > from && s->map[size - 1] == 0)
        size--;
    return size;
}

/*
 * Opens the last segment for appending.  After a clean close (`vouched`) its
 * length and end offset are known, and its indexes are trusted when the walk
 * of the batches after their last entry lands exactly there: nothing else is
 * read, so opening costs the same for any size of topic.  Otherwise (`scan`)
 * every batch is verified, the first bad byte and all after it are cut off,
 * and the indexes are rebuilt.
 *
 * Cutting is recovery from a crash: what follows the first bad byte was never
 * known to be whole.  When a record vouches for the segment it is not: a
 * clean close synced every byte its record vouches for, and a writer killed
 * in this boot had written every byte up to the length it published (the
 * page cache outlives its process: topic__live_last).  A segment that no
 * longer holds them all (cut short under a clean close's record, or a batch
 * damaged since) lost acknowledged records, and their offsets must not be
 * handed out again.  Then nothing is cut: the segment keeps its bytes up to
 * the recorded length, the walk resumes past each damaged batch where the
 * old index says the next batch starts (resume_past_damage), the segment is
 * given the recorded end offset, and TOPIC__LOST tells the caller to seal it
 * as it is (readers get TOPIC_ECORRUPT where records are missing, as in any
 * damaged sealed segment) and to append in a new segment from that offset on.
 * A file cut short in place since the writer died (`vouched->cut`) keeps
 * the batches below the cut the same way, but from the cut on it is a torn
 * tail: the segment ends with the last whole batch before it.
 */
static int open_active(topic *t, struct segment *s, bool scan, const struct seg_record *vouched,
                       struct index *old, size_t size, size_t capacity)
{
    size_t len = 0;
    uint64_t end = s->base;
    if (!scan) {
        /* An index that is not a regular file (TOPIC_ECORRUPT; -ELOOP for
         * a symbolic link, which is not followed) is made afresh by the
         * scan below, as a damaged one is. */
        int rc = map_indexes(t, s, index_cap(t, capacity), false);
        if (rc < 0 && rc != TOPIC_ECORRUPT && rc != -ELOOP)
            return rc;
        /* The two get their entries together: one removed (and made
         * afresh, empty, above) while the other was not is rebuilt with
         * it, or the walk below added to the other the entries it held
         * already, and to the new one only the entries after them. */
        scan = rc < 0 || atomic_load(&s->idx.n) != atomic_load(&s->tidx.n) ||
               topic__segment_scan(t, s, vouched->len, TOPIC__SCAN_INDEX, &len, &end) < 0 ||
               len != vouched->len || end != vouched->end ||
               atomic_load(&s->tidx_state) == 2;   /* a damaged time index: rebuild */
        if (scan)
            reset_indexes(s);
    }
    if (scan) {
        if (vouched != NULL)
            keep_old_index(t, s, old);
        TRY(map_indexes(t, s, index_cap(t, capacity), true));
        TRY(topic__segment_scan(t, s, size, TOPIC__SCAN_VERIFY | TOPIC__SCAN_INDEX, &len, &end));
        atomic_store(&s->tidx_state, 1);
        size_t stop = len;
        if (vouched != NULL && end < vouched->end) {
            size_t limit = size < vouched->len ? size : vouched->len;
            resume_past_damage(t, s, old, limit, vouched->end, &len, &end);
        }
        drop_old_index(t, s);
        /* Past damage, and the file was not cut in place, or the walk
         * resumed past damage below the cut. */
        if (vouched != NULL && end < vouched->end && (!vouched->cut || len > stop)) {
            uint64_t last = vouched->end;
            size_t limit = size < vouched->len ? size : vouched->len;
            /* A segment a writer rolled away from in this boot holds
             * whole batches to its end, but its length is not recorded:
             * its data end where the zeros of its reserved tail begin. */
            if (vouched->len == SIZE_MAX)
                limit = data_end(s, len, size);
            /* A file cut in place ends in a torn tail, which goes when the
             * segment is sealed at `len`, the end of the walk past the
             * damage below the cut: from there on, as after any crash,
             * the offsets are given out again. */
            if (vouched->cut) {
                limit = len;
                last = end;
            }
            atomic_store(&s->len, limit);
            atomic_store(&s->end, last);
            atomic_store(&s->missing, true);
            atomic_store(&s->reserved, size);
            atomic_store(&s->loaded, true);
            return TOPIC__LOST;
        }
        /* Cut whatever follows the last whole batch; reserving the file
         * again zeroes the rest, so no stale byte is ever read as a batch. */
        if (len < size) {
            TRY(topic__ftruncate(s->fd, (off_t)len));
            size = len;
        }
        /* A crash leaves the space reserved past the data, which the map
         * took for the segment's size: it rolls at today's segment.bytes. */
        size_t want = (size_t)t->cfg.v[TOPIC_K_SEGMENT_BYTES];
        s->capacity = want > size ? want : size;
    }
    atomic_store(&s->len, len);
    atomic_store(&s->end, end);
    atomic_store(&s->reserved, size);   /* more on the first append */
    s->writable = s->may_open = true;
    s->born_ms = reopened_born_ms(s->fd);
    atomic_store(&s->loaded, true);
    return 0;
}

/*
 * A writer killed in this boot left an open batch (append.c): records it
 * acknowledged, in a batch with no checksum yet.  The chain value it
 * published with its length in the live area vouches for their bytes: when
 * the records give the same chain and end where the writer said, the batch
 * is sealed for the dead writer, as it would have sealed it, and the scan
 * that follows finds an ordinary batch.  Otherwise the bytes were damaged
 * since it died (or are not what it wrote): the open header stays, which no
 * walk takes for a batch, and the scan treats it as damage below the
 * published length.
 *
 * A writer killed inside topic__publish left each field of the live area
 * old or new, and a new length only after the new position and chain: the
 * chain may hold one record after the published length (whose bytes the
 * writer wrote before it published anything of it).  One record before it
 * is taken too, as a live area written in the other order would leave it.
 * The batch is then sealed where the chain holds, and *v says so: that last
 * record's append had not returned, and whether it stays is the recovery's
 * choice, as for a batch that was whole when its writer died.  A new open
 * batch whose position and chain were published without its length lies
 * past the published length: a torn tail, cut as any other.
 */
static void seal_dead_open(struct segment *s, size_t size, struct seg_record *v)
{
    if (v == NULL || v->open_pos1 == 0 || v->cut || v->len > size || v->len > s->map_len ||
        v->len < TOPIC__HEADER_SIZE || v->open_pos1 - 1 > v->len - TOPIC__HEADER_SIZE)
        return;
    size_t pos = (size_t)(v->open_pos1 - 1);
    uint8_t *p = s->map + pos;
    size_t limit = size < s->map_len ? size : s->map_len;
    struct open_vouched o;
    if (!topic__is_open(p) || !topic__open_vouched(p, v->len - pos, s->map + limit, v->chain,
                                                   true, &o))
        return;
    topic__open_seal_header(p, o.len, (size_t)o.count, o.max_ts);
    v->len = pos + o.len;
    v->end = o.base + o.count;
}

int topic__segment_open_active(topic *t, struct segment *s, bool scan,
                               struct seg_record *vouched)
{
    size_t size, capacity = (size_t)t->cfg.v[TOPIC_K_SEGMENT_BYTES];
    /* The offset index as it was before this open remade it: where to
     * resume past a damaged batch (resume_past_damage). */
    struct index old = { .fd = -1, .entry_size = TOPIC__IDX_ENTRY };
    TRY(map_log(t, s, capacity, 0, &size));
    capacity = s->capacity;
    if (scan)
        seal_dead_open(s, size, vouched);
    int rc = open_active(t, s, scan, vouched, &old, size, capacity);
    topic__index_unmap(&old);
    return rc;
}

/*
 * Writing back a page that is mapped writable costs the kernel a TLB
 * shootdown: the page is write-protected again so that the next store is
 * noticed, and every CPU running the process must forget the old entry.
 * Under a virtual machine each of those interrupts is an exit to the
 * hypervisor, and a sync of a second's appends (hundreds of thousands of
 * pages) spent most of its time there, stealing the appending thread's CPU.
 * The writer never stores below its append position again, so before a sync
 * its page table entries for the pages there are dropped in one call, with
 * one shootdown for the whole range.  The pages stay in the page cache,
 * dirty, with their data; a reader of this process that touches them again
 * maps them back read-only, which writeback leaves alone.
 */
void topic__segment_drop_written(struct segment *s, size_t upto, size_t min)
{
    size_t page = topic__page_size(), from = atomic_load(&s->dropped);
    upto = upto / page * page;
    if (s->map == NULL || upto <= from || upto - from < min || upto > s->map_len)
        return;
    if (topic__os.madvise(s->map + from, upto - from, MADV_DONTNEED) == 0)
        atomic_store(&s->dropped, upto);
}

/*
 * Gives back the address space a sealed segment reserved for appends
 * (TOPIC__MAP_ACTIVE).  Best: map its `len` bytes afresh, read-only, and
 * unmap the whole reservation, so that the next segment's reservation can
 * reuse the hole.  That moves s->map, which is safe only while no reader
 * holds the segment: readers take their reference under the list's lock,
 * so with the write lock held and no references but the list's (while it
 * is listed) and the sealer's, nobody can be looking.  A segment that
 * retention or topic_delete_before() dropped from the list before it was
 * sealed has no list reference any more: a second reference is a cursor's,
 * whose records point into the mapping.  Otherwise the pages past the data are
 * unmapped in place, which keeps the data where readers see it but leaves
 * a hole a little too small for the next reservation.  If either fails, the
 * mapping stays as it was: address space, not data, is at stake.
 */
void topic__segment_unmap_tail(struct segment *s, size_t len)
{
    size_t keep = topic__pages_for(len), mapped = atomic_load(&s->map_len);
    if (s->map != NULL && keep < mapped && topic__os.munmap(s->map + keep, mapped - keep) == 0)
        atomic_store(&s->map_len, keep);
}

static void release_reservation(topic *t, struct segment *s, size_t len)
{
    size_t mapped = atomic_load(&s->map_len);
    if (s->map == NULL || topic__pages_for(len) >= mapped)
        return;
    void *p = NULL;
    if (len > 0 && topic__mmap(len, PROT_READ, s->fd, &p) == 0) {
        uint8_t *old = NULL;
        pthread_rwlock_wrlock(&t->segs.lock);
        if (atomic_load(&s->refs) <= (s->listed ? 2 : 1)) {
            old = s->map;
            s->map = p;
            atomic_store(&s->map_len, len);
        }
        pthread_rwlock_unlock(&t->segs.lock);
        if (old != NULL) {
            topic__munmap(old, mapped);
            return;
        }
        topic__munmap(p, len);
    }
    topic__segment_unmap_tail(s, len);
}

/* A sealed segment is read through its mappings only; keeping its three
 * descriptors open would make a topic of a few thousand segments fail with
 * EMFILE (the crash torture did, at 6,000 segments and a limit of 20,000
 * descriptors). */
static void close_fds(struct segment *s)
{
    topic__close(s->fd);
    s->fd = -1;
    topic__index_close_fd(&s->idx);
    topic__index_close_fd(&s->tidx);
}

/*
 * Whether the file of s, which the caller just synced through s->fd, is
 * still in the topic's directory: -ENOENT when someone removed it (or put
 * another file in its place), so that its records go with the handle.
 * Retention and topic_delete_before() remove segments too, and may do so
 * between a roll and the segment's seal; they take the segment off the
 * list (under its lock) before they remove its file, and such a segment
 * is no loss.
 */
int topic__segment_linked(topic *t, struct segment *s)
{
    int rc = topic__still_linked(s->fd);
    if (rc != -ENOENT)
        return rc;
    pthread_rwlock_rdlock(&t->segs.lock);
    bool listed = s->listed;
    pthread_rwlock_unlock(&t->segs.lock);
    return listed ? rc : 0;
}

int topic__segment_seal(topic *t, struct segment *s)
{
    size_t len = atomic_load(&s->len);
    TRY(topic__ftruncate(s->fd, (off_t)len));
    topic__segment_drop_written(s, len, 0);
    TRY(topic__fdatasync(s->fd));
    /* A segment whose file someone removed after appends rolled away from
     * it is not durable, however its sync went: the first topic_sync() or
     * topic_close() after this seal fails with -ENOENT, as for the active
     * segment's file (sync.c). */
    TRY(topic__segment_linked(t, s));
    TRY(topic__index_seal(&s->idx));
    TRY(topic__index_seal(&s->tidx));
    s->writable = false;
    release_reservation(t, s, len);
    /* A sealed segment never changes again, and its mappings outlive the
     * files' descriptors.  A sync that began while this segment was active
     * checks its descriptor under seal_lock, which the sealer holds (or,
     * at open, no other thread runs yet). */
    close_fds(s);
    return 0;
}

bool topic__segment_tidx_ok(struct segment *s)
{
    int st = atomic_load_explicit(&s->tidx_state, memory_order_acquire);
    if (st == 0) {
        pthread_mutex_lock(&s->load_lock);
        st = atomic_load(&s->tidx_state);
        if (st == 0) {
            uint64_t nrec = atomic_load(&s->end) - s->base;
            st = topic__index_valid(&s->tidx, nrec, atomic_load(&s->len)) ? 1 : 2;
            atomic_store_explicit(&s->tidx_state, st, memory_order_release);
        }
        pthread_mutex_unlock(&s->load_lock);
    }
    return st == 1;
}

/* Writes rebuilt entries back to the index file, for the next open.  Index
 * files are derived data: failing to write one only costs that rebuild
 * again, so errors are not reported. */
static void store_index(topic *t, const struct index *ix, uint64_t base, const char *ext)
{
    char name[64];
    topic__segment_name(name, sizeof name, base, ext);
    topic__write_file_atomic(t->dirfd, name, ix->map, (size_t)atomic_load(&ix->n) * ix->entry_size);
}

void topic__segment_note_missing(struct segment *s, uint64_t walked)
{
    uint64_t end = atomic_load(&s->end);
    atomic_store(&s->missing, end != UINT64_MAX && walked < end);
}

/* Maps a sealed segment's .log and index files and walks the batches after
 * the last index entry (for the largest timestamp).  When an index file is
 * missing, holds no entry for a segment that needs some, or the walk does not
 * end exactly at the end of the file, both indexes are rebuilt in memory by
 * walking the whole segment, and a writer stores them.  A damaged batch stops
 * the walk; readers who reach it are told TOPIC_ECORRUPT. */
static int load_sealed(topic *t, struct segment *s)
{
    /* A reader cannot trust the files of a segment that is not sealed yet:
     * a writer may still be cutting them. */
    if ((t->flags & TOPIC_RDONLY) &&
        s->base >= __atomic_load_n(&topic__state_page(t)->unsealed_from, __ATOMIC_RELAXED))
        return topic__follow_load(t, s);
    char name[64];
    size_t size = 0, len;
    uint64_t end;
    topic__segment_name(name, sizeof name, s->base, ".log");
    int fd = topic__openat(t->dirfd, name, O_RDONLY, 0);
    /* A symbolic link in its place (not followed) is damage, as a FIFO or
     * a directory there is (recheck tester F6: readers got -ELOOP). */
    if (fd == -ELOOP)
        return TOPIC_ECORRUPT;
    if (fd < 0)
        return fd;
    s->fd = fd;
    TRY(topic__fsize(fd, &size));
    if (size > 0) {
        void *p;
        TRY(topic__mmap(size, PROT_READ, fd, &p));
        s->map = p;
        s->map_len = size;
    }
    atomic_store(&s->len, size);
    topic__segment_name(name, sizeof name, s->base, ".index");
    int rc = topic__index_map(&s->idx, t->dirfd, name, 0, false);
    topic__segment_name(name, sizeof name, s->base, ".timeindex");
    if (rc == 0)
        rc = topic__index_map(&s->tidx, t->dirfd, name, 0, false);
    if (rc == 0)
        rc = topic__segment_scan(t, s, size, 0, &len, &end);
    if (rc == TOPIC_EVERSION)
        return rc;
    bool sparse = atomic_load(&s->idx.n) == 0 && size > 4 * (size_t)t->cfg.v[TOPIC_K_INDEX_INTERVAL];
    /* A time index found wrong by the walk is rebuilt, and stored again. */
    if (rc == 0 && len == size && !sparse && atomic_load(&s->tidx_state) != 2) {
        topic__segment_note_missing(s, end);
        close_fds(s);
        return 0;
    }
    reset_indexes(s);
    TRY(topic__index_anon(&s->idx, index_cap(t, size)));
    TRY(topic__index_anon(&s->tidx, index_cap(t, size)));
    atomic_store(&s->tidx_state, 1);
    TRY(topic__segment_scan(t, s, size, TOPIC__SCAN_INDEX, &len, &end));
    topic__segment_note_missing(s, end);
    if (!(t->flags & TOPIC_RDONLY)) {
        store_index(t, &s->idx, s->base, ".index");
        store_index(t, &s->tidx, s->base, ".timeindex");
    }
    close_fds(s);
    return 0;
}

/* Lets go of everything a load took: its mappings, its descriptors and its
 * indexes.  What the segment's place in the log says (base, end, len) is
 * kept. */
static void unload(struct segment *s)
{
    topic__munmap(s->map, s->map_len);
    topic__close(s->fd);
    s->map = NULL;
    s->map_len = 0;
    s->fd = -1;
    reset_indexes(s);
}

void topic__segment_unload(struct segment *s)
{
    atomic_store_explicit(&s->loaded, false, memory_order_relaxed);
    unload(s);
    /* The next load checks the files afresh, as a sealed segment's. */
    atomic_store(&s->tidx_state, 0);
    atomic_store(&s->settled, false);
    s->follow = false;
}

int topic__segment_load(topic *t, struct segment *s)
{
    if (atomic_load_explicit(&s->loaded, memory_order_acquire))
        return 0;
    pthread_mutex_lock(&s->load_lock);
    int rc = 0;
    for (int tries = 0;
         tries < TOPIC__RECLAIM_TRIES && !atomic_load_explicit(&s->loaded, memory_order_acquire);
         tries++) {
        unsigned refused = topic__maps_refused(), unloads = topic__seglist_unloads(t);
        rc = load_sealed(t, s);
        if (rc == 0) {
            atomic_store_explicit(&s->loaded, true, memory_order_release);
            break;
        }
        unload(s);   /* leave nothing half-loaded: the next reader tries again */
        /* Out of address space or map areas: the segments nobody reads at
         * the moment give theirs back, and the load is tried again. */
        if (rc != -ENOMEM || topic__maps_refused() == refused ||
            !topic__seglist_reclaim(t, unloads))
            break;
    }
    pthread_mutex_unlock(&s->load_lock);
    return rc;
}
