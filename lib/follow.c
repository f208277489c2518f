/*
 * Readers following a writer in another process (or another handle of this
 * one).  The writer publishes, in the live area of topic.state (a shared
 * mapping), where its log ends: the active segment's base and length and the
 * end offset, under a sequence lock so that a reader never mixes the values
 * of two appends.  A TOPIC_RDONLY handle looks at them whenever a reader
 * reaches its end offset, and walks the new batches itself, building its own
 * index of them in memory.
 *
 * A reader never touches a byte the writer has not finished: it reads only
 * below the published length of the active segment, and only the batches
 * below the next segment's base in a segment that was rolled away from.
 * Those bytes stay in the file for as long as the segment exists, which is
 * what makes it safe to map files that the writer later cuts to their data.
 * The published values are a hint, never trusted as data: the walk stops at
 * the first header that does not continue the offsets, and every batch is
 * verified against its checksum before a record of it is handed out.
 */
#include <fcntl.h>
#include <string.h>
#include <time.h>
#include <sys/mman.h>
#include <unistd.h>

#include "internal.h"

#define FOLLOW_MAP TOPIC__MAP_ACTIVE   /* as the writer maps it */

/* A follower's walks verify every batch: published lengths vouch for a live
 * writer's bytes, not for a file that has been damaged since, nor for a
 * dead writer's torn tail. */
#define FOLLOW_SCAN (TOPIC__SCAN_VERIFY | TOPIC__SCAN_INDEX)

struct live {
    uint32_t seq;                 /* odd while the writer updates the rest */
    uint32_t reserved;
    uint64_t active_base, active_len, end, start;
    uint8_t boot[16];             /* the boot the writer ran in; zeros if unknown */
};

static struct live *live_area(topic *t)
{
    return (struct live *)(void *)((uint8_t *)topic__state_page(t) + 64);
}

/* Bytes 128-151: which files the live area describes, for the next writer
 * of the same boot (topic__live_last); written under the same sequence
 * lock.  Zeros where unknown, and in files of releases before them. */
struct live_files {
    uint64_t dir[2];              /* the topic directory's device and inode */
    uint64_t log_ino;             /* the active segment's .log inode */
};

static struct live_files *live_files(topic *t)
{
    return (struct live_files *)(void *)((uint8_t *)topic__state_page(t) + 128);
}

/* Bytes 152-167: the active segment's open batch (append.c), under the same
 * sequence lock: one more than its position (0: none), and the chain value
 * of its records below the published length. */
struct live_open {
    uint64_t pos1;
    uint64_t chain;
};

static struct live_open *live_open(topic *t)
{
    return (struct live_open *)(void *)((uint8_t *)topic__state_page(t) + 152);
}

/* What a reader learns from the live area (live_read). */
struct live_view {
    uint64_t base, len, end, start;
    uint64_t open_pos1, chain;    /* the open batch (append.c) */
    bool this_boot;               /* the writer published it since this boot */
};

static uint8_t g_boot[16];
static bool g_boot_known;
static pthread_once_t g_boot_once = PTHREAD_ONCE_INIT;

static void read_boot_id(void)
{
    char text[64] = "";
    /* Plain calls: not a file of the topic's, nor one whose failure matters
     * (readers then trust nothing more than they would without it). */
    int fd = open("/proc/sys/kernel/random/boot_id", O_RDONLY | O_CLOEXEC);
    ssize_t n = fd >= 0 ? read(fd, text, sizeof text - 1) : -1;
    if (fd >= 0)
        close(fd);
    unsigned digits = 0;
    for (ssize_t i = 0; i < n && digits < 32; i++) {
        char c = text[i];
        int v = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
        if (v < 0)
            continue;   /* the dashes and the newline */
        g_boot[digits / 2] = (uint8_t)(digits % 2 ? g_boot[digits / 2] << 4 | v : v);
        digits++;
    }
    g_boot_known = digits == 32;
}

/* This boot's id (/proc/sys/kernel/random/boot_id, 16 bytes); false where
 * there is none.  Read once per process: it does not change. */
static bool boot_id(uint8_t out[16])
{
    pthread_once(&g_boot_once, read_boot_id);
    if (!g_boot_known)
        return false;
    memcpy(out, g_boot, sizeof g_boot);
    return true;
}

/* The writer's side of the sequence lock: live_begin makes seq odd (even
 * first: a writer killed between the two stores leaves it odd, and readers
 * must not wait for that writer for ever), live_end makes it even again. */
static uint32_t live_begin(struct live *l)
{
    uint32_t seq = __atomic_load_n(&l->seq, __ATOMIC_RELAXED) & ~1u;
    __atomic_store_n(&l->seq, seq + 1, __ATOMIC_RELAXED);
    __atomic_thread_fence(__ATOMIC_RELEASE);
    return seq;
}

static void live_end(struct live *l, uint32_t seq)
{
    __atomic_store_n(&l->seq, seq + 2, __ATOMIC_RELEASE);
}

void topic__publish_boot(topic *t)
{
    struct live *l = live_area(t);
    struct live_files *f = live_files(t);
    uint8_t id[16] = { 0 };
    (void)boot_id(id);
    uint32_t seq = live_begin(l);
    for (int i = 0; i < 16; i++)
        __atomic_store_n(&l->boot[i], id[i], __ATOMIC_RELAXED);
    __atomic_store_n(&f->dir[0], t->dir_id[0], __ATOMIC_RELAXED);
    __atomic_store_n(&f->dir[1], t->dir_id[1], __ATOMIC_RELAXED);
    live_end(l, seq);
}

/*
 * Readers take the fields under the sequence lock, but the next writer after
 * a crash reads them without it (topic__live_last), and a writer killed in
 * here left a prefix of these stores done.  So the open batch's position and
 * chain go before the length and end offset that cover its records, and the
 * length is a release store: a length that covers a new open batch comes
 * with its position.  Stored the other way round, a writer killed between
 * them left a length over an open batch that the published position did not
 * name; nothing vouched for its records, and the next writer reported its
 * last record TOPIC_ECORRUPT where it should have dropped it as a torn tail
 * (the crash test found it, under ThreadSanitizer).
 */
void topic__publish(topic *t)
{
    struct live *l = live_area(t);
    uint32_t seq = live_begin(l);
    __atomic_store_n(&l->active_base, t->active->base, __ATOMIC_RELAXED);
    size_t open = atomic_load_explicit(&t->active->open_pos, memory_order_relaxed);
    struct live_open *o = live_open(t);
    __atomic_store_n(&o->pos1, open == TOPIC__NO_OPEN ? 0 : (uint64_t)open + 1, __ATOMIC_RELAXED);
    __atomic_store_n(&o->chain, t->open.chain, __ATOMIC_RELAXED);
    __atomic_store_n(&l->active_len, atomic_load_explicit(&t->active->len, memory_order_relaxed),
                     __ATOMIC_RELEASE);
    __atomic_store_n(&l->end, atomic_load_explicit(&t->end, memory_order_relaxed), __ATOMIC_RELAXED);
    __atomic_store_n(&l->start, atomic_load_explicit(&t->start, memory_order_relaxed),
                     __ATOMIC_RELAXED);
    __atomic_store_n(&live_files(t)->log_ino, t->active->file_id[1], __ATOMIC_RELAXED);
    live_end(l, seq);
}

/* The start offset a reader must hold to: the larger of the one the writer
 * published and the one it stored in the record (bytes 48-55 of the page).
 * Each is a true start offset on its own, written in one 8-byte store, so
 * neither needs the sequence lock.  A writer stores the record's first,
 * before it syncs it, publishes it or deletes a file, and a writer opening
 * after a crash removes the files below it before its first publication:
 * from the record alone a reader learns of deletions in both of those
 * windows, in which it used to report the records of removed files
 * TOPIC_ECORRUPT. */
uint64_t topic__live_start(topic *t)
{
    uint64_t live = __atomic_load_n(&live_area(t)->start, __ATOMIC_ACQUIRE);
    uint64_t stored = topic__state_start(topic__state_page(t));
    return live > stored ? live : stored;
}

/* topic__live_start(t) <= t->start, known without it: the stored start is
 * at most its raw value, whatever its check says. */
bool topic__live_start_unmoved(topic *t)
{
    uint64_t start = atomic_load_explicit(&t->start, memory_order_acquire);
    return __atomic_load_n(&live_area(t)->start, __ATOMIC_ACQUIRE) <= start &&
           __atomic_load_n(&topic__state_page(t)->start_offset, __ATOMIC_ACQUIRE) <= start;
}

static bool live_read(topic *t, struct live_view *v);

/*
 * A listing of the directory made while a writer creates segments may miss
 * one created after the listing began yet show a later one: readdir() order
 * is the file system's (a hash on ext4), and whether it returns a file added
 * during the scan is unspecified.  A reader that took such a listing at its
 * word would give the segment before the gap the offsets of the one it
 * missed, and report its records TOPIC_ECORRUPT for as long as it lives.
 * Every segment up to the active one the writer published had been created
 * before it was published, so a listing begun after reading that value holds
 * all of them: the reader keeps only those, and learns of later ones at its
 * next look.  Returns how many of the n (ascending) bases to keep.
 */
size_t topic__follow_trim(const uint64_t *bases, size_t n, uint64_t published)
{
    size_t keep = n;
    while (keep > 0 && bases[keep - 1] > published)
        keep--;
    /* Without the published segment in the listing, the published value
     * is not this directory's present (a writer that died long ago, files
     * restored from elsewhere): keep everything, as without a writer. */
    return keep > 0 && bases[keep - 1] == published ? keep : n;
}

uint64_t topic__follow_published_base(topic *t)
{
    struct live_view v;
    return live_read(t, &v) ? v.base : UINT64_MAX;
}

/*
 * What became of the .log of the segment at `base`, which the writer
 * published as the file `ino`: TOPIC__LIVE_REPLACED when it is gone or
 * another file is in its place, TOPIC__LIVE_SAME with its size in *size
 * when it is that file, or a negative error.
 */
static int log_fate(topic *t, uint64_t base, uint64_t ino, size_t *size)
{
    char name[64];
    topic__segment_name(name, sizeof name, base, ".log");
    int fd = topic__openat(t->dirfd, name, O_RDONLY, 0);
    if (fd == -ENOENT || fd == -ELOOP || fd == TOPIC_ECORRUPT)
        return TOPIC__LIVE_REPLACED;
    TRY(fd);
    uint64_t id[2] = { 0, 0 };
    int rc = topic__fsize_id(fd, size, id);
    topic__close(fd);
    if (rc == TOPIC_ECORRUPT)   /* not a regular file: another one */
        return TOPIC__LIVE_REPLACED;
    TRY(rc);
    if (ino == 0)   /* written by a release that did not publish it */
        return TOPIC__LIVE_UNKNOWN;
    return id[1] == ino ? TOPIC__LIVE_SAME : TOPIC__LIVE_REPLACED;
}

/*
 * A writer publishes its end offset before an append returns, into a page
 * of the page cache that outlives the writer's process.  So when the last
 * writer of this boot has died, its published end is at or past every
 * offset it handed out, and its active segment's .log held every batch up
 * to the published length when it died: nothing of that can be torn.  The
 * next writer learns here what it may rely on:
 *
 *   - TOPIC__LIVE_REPLACED: the .log was removed or replaced (an older copy
 *     renamed over it) before a sync could notice.  The files end below
 *     offsets the dead writer handed out, and the next writer starts at the
 *     published end instead (recheck tester F3).
 *   - TOPIC__LIVE_SAME: it is the file the writer wrote.  A batch that fails
 *     its checksum below the published length was damaged since, not torn
 *     by the crash, and the records after it stay (accept tester F1 of
 *     snap14; topic__segment_open_active).
 *   - TOPIC__LIVE_CUT: the same file, now shorter than that length.  A file
 *     cut short in place is what a test of a torn tail makes, and is
 *     recovered as one from the cut on, as after any crash; below the cut
 *     a bad batch is damage, as for TOPIC__LIVE_SAME (recover tester F2).
 *
 * Only in the directory the area was written in, not in a copy of it made
 * while the writer ran, and only in the boot it was written in: a loss of
 * power leaves the page of a later boot's writer, or none.  TOPIC__LIVE_
 * UNKNOWN (0) when any of this is unknown.
 *
 * Read without the sequence lock: the writer is dead (the caller holds the
 * lock it held), and one killed inside topic__publish left either the old
 * value or the new one of each field, each at or below what the files held
 * and at or past what it handed out; a new length only with the open
 * batch's new position and chain (see there).
 */
int topic__live_last(topic *t, struct live_last *out)
{
    struct live *l = live_area(t);
    struct live_files *f = live_files(t);
    uint8_t mine[16];
    memset(out, 0, sizeof *out);
    if (!boot_id(mine) || __atomic_load_n(&l->seq, __ATOMIC_ACQUIRE) == 0)
        return 0;
    for (int i = 0; i < 16; i++)
        if (__atomic_load_n(&l->boot[i], __ATOMIC_RELAXED) != mine[i])
            return 0;
    if (t->dir_id[1] == 0 || __atomic_load_n(&f->dir[0], __ATOMIC_RELAXED) != t->dir_id[0] ||
        __atomic_load_n(&f->dir[1], __ATOMIC_RELAXED) != t->dir_id[1])
        return 0;
    out->base = __atomic_load_n(&l->active_base, __ATOMIC_RELAXED);
    out->len = __atomic_load_n(&l->active_len, __ATOMIC_RELAXED);
    out->end = __atomic_load_n(&l->end, __ATOMIC_RELAXED);
    out->open_pos1 = __atomic_load_n(&live_open(t)->pos1, __ATOMIC_RELAXED);
    out->chain = __atomic_load_n(&live_open(t)->chain, __ATOMIC_RELAXED);
    out->same_boot = true;
    size_t size = 0;
    int rc = log_fate(t, out->base, __atomic_load_n(&f->log_ino, __ATOMIC_RELAXED), &size);
    TRY(rc);
    out->fate = rc;
    out->size = size;
    if (rc == TOPIC__LIVE_SAME && size < out->len)
        out->fate = TOPIC__LIVE_CUT;
    return 0;
}

/*
 * A segment the writer has rolled away from no longer grows: the reader
 * lets go of its descriptor and of the address space it reserved past the
 * data (FOLLOW_MAP), keeping the mapping of the data where its readers see
 * it.  Without this a reader following a writer for long kept a descriptor
 * and a reservation per segment, and stalled without a word once it ran
 * out of descriptors.
 */
static void follow_settle(struct segment *s)
{
    topic__close(s->fd);
    s->fd = -1;
    topic__segment_unmap_tail(s, atomic_load(&s->len));
    topic__index_trim(&s->idx);
    topic__index_trim(&s->tidx);
    /* Its records and their timestamps are all known now, unless the walk
     * stopped short of its end (damage, or deleted before it was walked):
     * what time searches need to pass over it (seglist.c). */
    topic__segment_note_missing(s, s->walked_end);
    atomic_store_explicit(&s->settled, true, memory_order_release);
}

/* The fields of the live area, as they are now, into v, and the writer's
 * boot id into theirs. */
static void live_load(topic *t, struct live_view *v, uint8_t theirs[16])
{
    struct live *l = live_area(t);
    v->base = __atomic_load_n(&l->active_base, __ATOMIC_RELAXED);
    v->len = __atomic_load_n(&l->active_len, __ATOMIC_RELAXED);
    v->end = __atomic_load_n(&l->end, __ATOMIC_RELAXED);
    v->start = __atomic_load_n(&l->start, __ATOMIC_RELAXED);
    v->open_pos1 = __atomic_load_n(&live_open(t)->pos1, __ATOMIC_RELAXED);
    v->chain = __atomic_load_n(&live_open(t)->chain, __ATOMIC_RELAXED);
    for (int i = 0; i < 16; i++)
        theirs[i] = __atomic_load_n(&l->boot[i], __ATOMIC_RELAXED);
}

/* Reads the writer's published position; false if there is none yet. */
static bool live_read(topic *t, struct live_view *v)
{
    struct live *l = live_area(t);
    uint8_t mine[16], theirs[16];
    bool known = boot_id(mine);
    for (int tries = 0; tries < 1000; tries++) {
        uint32_t s1 = __atomic_load_n(&l->seq, __ATOMIC_ACQUIRE);
        if (s1 & 1)
            continue;
        live_load(t, v, theirs);
        __atomic_thread_fence(__ATOMIC_ACQUIRE);
        if (__atomic_load_n(&l->seq, __ATOMIC_RELAXED) == s1) {
            v->this_boot = known && memcmp(mine, theirs, sizeof mine) == 0;
            return s1 != 0;
        }
    }
    return false;
}

/*
 * After live_read() failed on a sequence that stayed odd: the fields as
 * they are, without the lock.  A writer that died inside topic__publish
 * leaves the sequence odd until the next writer opens, and each field old
 * or new (see there).  The records of its open batch are in no checksum,
 * and a reader that opens then would not see the last ones it had
 * acknowledged, which the next writer keeps: follow_open() takes what the
 * chain vouches for from this view, as that writer will.  A writer that
 * is alive finishes its update in microseconds: the sequence must stay
 * the same odd value for a millisecond, or this is not a dead writer's
 * (and the reader's next look takes the update whole).  One stopped for
 * longer gives a view mixed from its updates, which vouches for records
 * it wrote, or for nothing.  False when the sequence is even, moves, or
 * was never written.  Only a reader's open, after a crash, waits here.
 */
static bool live_read_torn(topic *t, struct live_view *v)
{
    struct live *l = live_area(t);
    uint8_t mine[16], theirs[16];
    uint32_t s1 = __atomic_load_n(&l->seq, __ATOMIC_ACQUIRE);
    if (!(s1 & 1) || !boot_id(mine))
        return false;
    struct timespec ms = { 0, 1000000 };
    nanosleep(&ms, NULL);
    if (__atomic_load_n(&l->seq, __ATOMIC_ACQUIRE) != s1)
        return false;
    live_load(t, v, theirs);
    v->this_boot = memcmp(mine, theirs, sizeof mine) == 0;
    return true;
}

/*
 * After a walk of the active segment that stopped short of what the writer
 * published.  A writer publishes a length only once the batches below it
 * are whole, and in the page cache they stay whole even if the writer is
 * killed, so in this boot a walk stops short only at damage: the reader
 * then takes the writer's length and end offset as its own, and whoever
 * reads an offset at or past the damage is told TOPIC_ECORRUPT by the
 * reading path, which verifies every batch it hands out, instead of seeing
 * the log end there and waiting for ever.  What a writer published before
 * the machine went down is not vouched for: its last appends may never have
 * reached the disk, and the next writer's recovery cuts them off.  The
 * writer allocates the file before it writes, so a published length passes
 * the file's end only when the file was cut since; that is checked too.
 */
/* How far a walk of segment s may read: never past the end of its file,
 * which the writer cuts to its data when it seals the segment. */
static size_t file_limit(const struct segment *s)
{
    size_t size;
    if (s->fd < 0 || topic__fsize(s->fd, &size) < 0)
        return atomic_load(&s->len);   /* no further than walked already */
    return size < s->map_len ? size : s->map_len;
}

/* Unmaps s's reservation past the end of its file (and of what it walked),
 * in place: its readers' pointers stay valid. */
static void release_past_file(struct segment *s)
{
    size_t size, len = atomic_load(&s->len);
    if (s->fd < 0 || topic__fsize(s->fd, &size) < 0)
        return;
    topic__segment_unmap_tail(s, size > len ? size : len);
}

/*
 * The writer's open batch (append.c) has no checksum yet.  When the walk of
 * the active segment s stopped at its open header, the reader checks the
 * records below the published length against the chain value published
 * with it, and only then takes them in: the length, the end offset, and
 * their largest timestamp.  Records that do not give the chain were damaged
 * since the writer wrote them (or belong to a later append than the value
 * read): s->bad_open tells the reading path not to use them, and
 * trust_published has whoever reads them told TOPIC_ECORRUPT.  At most one
 * open batch is checked per look, a few hundred bytes.
 *
 * A torn view (live_read_torn: a writer that died inside topic__publish)
 * is taken as the next writer's recovery takes it (segment.c): the records
 * up to where the chain holds, within one record of the published length,
 * are in; nothing else is learnt from it, and a chain that holds nowhere
 * there is no sign of damage.  `size` is how far s may be read
 * (file_limit, taken once by the caller for the walk and this).
 */
static void follow_open(struct segment *s, const struct live_view *v, bool torn, size_t size)
{
    size_t pos = (size_t)(v->open_pos1 - 1), len = atomic_load(&s->len);
    /* After a reboot the next writer cuts an open batch off as a torn
     * tail (the chain vouches for what a process wrote, not for what
     * reached the disk): a reader does not show its records either. */
    if (!v->this_boot || v->open_pos1 == 0 || v->base != s->base || pos != len || v->len <= len ||
        v->len - pos < TOPIC__HEADER_SIZE || v->len - pos > TOPIC__MAX_BATCH ||
        (!torn && s->walked_end >= v->end))
        return;
    const uint8_t *p = s->map + pos;
    /* Cut short since the writer published; or sealed since, and the next
     * walk takes it in. */
    if (v->len > size || !topic__is_open(p))
        return;
    struct open_vouched o;
    bool good = topic__open_vouched(p, (size_t)v->len - pos, s->map + size, v->chain, torn, &o) &&
                o.base == s->walked_end && (torn || o.base + o.count == v->end);
    if (!good) {
        /* Sealed (or moved on) between the walk and now: the next look
         * sees it.  Otherwise the bytes are not what the writer wrote. */
        if (!torn && topic__is_open(p))
            atomic_store_explicit(&s->bad_open, pos, memory_order_release);
        return;
    }
    if (o.max_ts > atomic_load(&s->max_ts))
        atomic_store(&s->max_ts, o.max_ts);
    atomic_store_explicit(&s->len, pos + o.len, memory_order_release);
    s->walked_end = o.base + o.count;
}

/* `size` as for follow_open. */
static void trust_published(struct segment *s, const struct live_view *v, size_t size)
{
    if (!v->this_boot || v->base != s->base || v->len > s->map_len ||
        v->len <= atomic_load(&s->len) || v->end <= s->walked_end)
        return;
    /* A file cut short since the writer published (by hand, after its
     * close): no further than the file, and the records past it read
     * TOPIC_ECORRUPT; touching the mapping past the file is SIGBUS. */
    size_t len = (size_t)v->len;
    if (len > size)
        len = size;
    if (len > atomic_load(&s->len))
        atomic_store_explicit(&s->len, len, memory_order_release);
    s->walked_end = v->end;
    /* The records past the walk's stop are the writer's, unverified: their
     * timestamps are unknown, and a time search that reaches this segment
     * must walk into them (and report the damage) rather than pass it by
     * on the walked records' largest timestamp. */
    atomic_store_explicit(&s->max_ts, INT64_MAX, memory_order_relaxed);
}

static uint32_t follow_index_cap(const topic *t)
{
    size_t step = (size_t)t->cfg.v[TOPIC_K_INDEX_INTERVAL];
    if (step < TOPIC__MIN_BATCH)
        step = TOPIC__MIN_BATCH;
    return (uint32_t)(FOLLOW_MAP / step + 2);
}

/* Maps a segment the writer has not sealed, with indexes of the reader's
 * own.  One that may still grow (`grows`: the writer's active segment) gets
 * the reservation of address space the writer's mapping has; one the
 * writer has rolled away from only its file.  Reserving for those too, a
 * reader that fell behind the flusher's seals took 2 GiB more for each, and
 * one whose address space was limited (RLIMIT_AS) failed with -ENOMEM. */
static int follow_map(topic *t, struct segment *s, size_t *size, bool grows)
{
    char name[64];
    topic__segment_name(name, sizeof name, s->base, ".log");
    int fd = topic__openat(t->dirfd, name, O_RDONLY, 0);
    if (fd == -ELOOP)
        return TOPIC_ECORRUPT;   /* a symbolic link: damage, as in load_sealed */
    if (fd < 0)
        return fd;
    s->fd = fd;
    TRY(topic__fsize(fd, size));
    void *p;
    s->map_len = grows && *size < FOLLOW_MAP ? FOLLOW_MAP : *size;
    if (s->map_len > 0) {
        TRY(topic__mmap(s->map_len, PROT_READ, fd, &p));
        s->map = p;
    }
    TRY(topic__index_anon(&s->idx, follow_index_cap(t)));
    TRY(topic__index_anon(&s->tidx, follow_index_cap(t)));
    atomic_store(&s->tidx_state, 1);
    s->follow = true;
    return 0;
}

/* Walks s from where the reader's walk stopped to `limit` bytes (or to its
 * end offset, when known), indexing the new batches; publishes to this
 * handle's readers the length of the whole batches found. */
static int follow_walk(topic *t, struct segment *s, size_t limit)
{
    size_t len;
    uint64_t end;
    int rc = topic__segment_scan(t, s, limit, FOLLOW_SCAN, &len, &end);
    if (rc == 0 && len > atomic_load(&s->len)) {
        atomic_store_explicit(&s->len, len, memory_order_release);
        s->walked_end = end;
    }
    return rc;   /* TOPIC_EVERSION: a batch this release cannot read */
}

int topic__follow_load(topic *t, struct segment *s)
{
    size_t size;
    TRY(follow_map(t, s, &size, false));
    /* s->end is the next segment's base: the walk stops there, and the
     * segment, rolled away from, is settled. */
    int rc = follow_walk(t, s, size);
    if (rc == 0)
        follow_settle(s);
    return rc;
}

/*
 * Starts the reader's own indexes of the active segment s with the entries
 * of the writer's index files, so that opening walks only the batches after
 * the last of them, as the writer's own open does, instead of the whole
 * segment: for 2,000,000 records of 100 B, 39 ms and every page of the
 * segment.  Of each file it takes the entries that could be right
 * (topic__index_valid_prefix: growing, below `limit` bytes and the end
 * offset `end`), as many from both.  walk_from_files checks that the walk
 * from the last one lands exactly on `limit` and `end`; other entries are
 * checked by the lookups that use them.  Returns whether it took any.
 */
static bool prefill_indexes(topic *t, struct segment *s, size_t limit, uint64_t end)
{
    struct index *ix[2] = { &s->idx, &s->tidx };
    const char *ext[2] = { ".index", ".timeindex" };
    uint32_t good[2];
    for (int i = 0; i < 2; i++) {
        char name[64];
        size_t size = 0;
        topic__segment_name(name, sizeof name, s->base, ext[i]);
        int fd = topic__openat(t->dirfd, name, O_RDONLY, 0);
        if (fd < 0)
            return false;   /* a writer that is creating it; walk all */
        int rc = topic__fsize(fd, &size);
        uint32_t n = size / ix[i]->entry_size < ix[i]->cap ? (uint32_t)(size / ix[i]->entry_size)
                                                           : ix[i]->cap;
        size_t bytes = (size_t)n * ix[i]->entry_size;
        if (rc == 0 && bytes > 0) {
            /* One call to populate the pages, rather than a fault per page
             * in the copy (half the time of the open); a hint. */
            (void)topic__os.madvise(ix[i]->map, (bytes + 4095) & ~(size_t)4095,
                                    MADV_POPULATE_WRITE);
            rc = topic__pread_all(fd, ix[i]->map, bytes, 0);
        }
        topic__close(fd);
        if (rc < 0)
            return false;
        atomic_store(&ix[i]->n, n);
        good[i] = topic__index_valid_prefix(ix[i], end - s->base, limit);
    }
    uint32_t n = good[0] < good[1] ? good[0] : good[1];
    atomic_store(&s->idx.n, n);
    atomic_store(&s->tidx.n, n);
    return n > 0;
}

/*
 * Walks the active segment s up to `limit` bytes (topic__segment_scan with
 * `how`), from the writer's index entries (prefill_indexes).  A walk from
 * them that does not land exactly on `limit` and the end offset `end` drops
 * them and walks again from the segment's start.
 */
static int walk_from_files(topic *t, struct segment *s, size_t limit, uint64_t end,
                           size_t open_at, int how, size_t *len, uint64_t *walked_end)
{
    bool quick = prefill_indexes(t, s, limit, end);
    TRY(topic__segment_scan(t, s, limit, how, len, walked_end));
    /* Or on the writer's open batch, which follow_open checks. */
    uint64_t open_base = 0;
    int64_t open_ts;
    bool on_open = open_at != SIZE_MAX && *len == open_at &&
                   open_at + TOPIC__HEADER_SIZE <= limit &&
                   topic__is_open(s->map + open_at);
    if (on_open) {
        topic__open_fields(s->map + open_at, &open_base, &open_ts);
        on_open = *walked_end == open_base;
    }
    if (quick && (*len != limit || *walked_end != end) && !on_open) {
        atomic_store(&s->idx.n, 0);
        atomic_store(&s->tidx.n, 0);
        s->last_index_pos = 0;
        atomic_store(&s->max_ts, INT64_MIN);
        TRY(topic__segment_scan(t, s, limit, how, len, walked_end));
    }
    return 0;
}

int topic__follow_open_last(topic *t, struct segment *s)
{
    size_t size;
    struct live_view v;
    struct state_page snap;
    atomic_store(&s->end, UINT64_MAX);
    TRY(follow_map(t, s, &size, true));
    s->walked_end = s->base;
    if (topic__state_clean(t, &snap) && snap.active_base == s->base && snap.active_len == size) {
        /* Closed cleanly: the record says where the log ends, as it does for
         * a writer, and damage in between is reported to whoever reads it
         * (TOPIC_ECORRUPT) instead of ending the log early.  The close cut
         * the index files to their entries and synced them with the log. */
        size_t walked;
        uint64_t walked_end;
        TRY(walk_from_files(t, s, size, snap.end_offset, SIZE_MAX, TOPIC__SCAN_INDEX, &walked,
                            &walked_end));
        atomic_store_explicit(&s->len, size, memory_order_release);
        s->walked_end = snap.end_offset;
        if (walked_end < snap.end_offset)   /* damage: see trust_published */
            atomic_store_explicit(&s->max_ts, INT64_MAX, memory_order_relaxed);
        atomic_store(&s->loaded, true);
        return 0;
    }
    size_t limit = size;
    bool live = live_read(t, &v);
    if (live && v.base == s->base && v.len < limit)
        limit = (size_t)v.len;
    /* A writer of this boot published only whole batches, and its index
     * entries below them were written first (see trust_published).  A
     * writer of an earlier boot may have lost pages anywhere after its last
     * sync, and the next writer's recovery will cut the log at the first
     * hole: the reader must find that hole too, by verifying every batch
     * from the start. */
    if (live && v.this_boot && v.base == s->base) {
        size_t len;
        uint64_t walked_end;
        size_t open_at = v.open_pos1 ? (size_t)(v.open_pos1 - 1) : SIZE_MAX;
        TRY(walk_from_files(t, s, limit, v.end, open_at, FOLLOW_SCAN, &len, &walked_end));
        atomic_store_explicit(&s->len, len, memory_order_release);
        s->walked_end = walked_end;
    } else {
        TRY(follow_walk(t, s, limit));
    }
    if (live) {
        size = file_limit(s);
        follow_open(s, &v, false, size);
        trust_published(s, &v, size);
    } else if (live_read_torn(t, &v)) {
        follow_open(s, &v, true, file_limit(s));
    }
    atomic_store(&s->loaded, true);
    return 0;
}

/* Adds the segments that appeared after `last`, which has been rolled away
 * from, up to the writer's published active segment `published` (see
 * topic__follow_trim); returns the new last one.  `last` is NULL for a
 * reader that has no segment yet: one opened while a writer was creating
 * the topic. */
static int follow_roll(topic *t, struct segment *last, uint64_t published, struct segment **out)
{
    uint64_t *bases;
    size_t n;
    TRY(topic__list_segments(t, &bases, &n));
    n = topic__follow_trim(bases, n, published);
    if (last != NULL && n > 0 && bases[n - 1] > last->base && !(atomic_load(&last->loaded))) {
        int rc = topic__segment_load(t, last);
        if (rc < 0) {
            topic__free(bases);
            return rc;
        }
    }
    size_t i = 0;
    while (last != NULL && i < n && bases[i] <= last->base)
        i++;
    int rc = 0;
    if (i == n) {
        *out = last;    /* listed before the new file was there */
        topic__free(bases);
        return 0;
    }
    /* The newest segment is mapped first: when that fails (out of
     * descriptors or address space, or the file already removed by
     * retention), nothing has changed, and the next refresh starts over
     * from `last`; pushing the segments before it first put them on the
     * list twice when it did. */
    struct segment *newest = topic__segment_new(bases[n - 1]);
    if (newest == NULL) {
        topic__free(bases);
        return -ENOMEM;
    }
    /* last has been rolled away from, so its file grows no more: its
     * reservation of address space past the file goes before the new
     * segment takes one, as the writer's does when it rolls.  Holding both
     * at once, a reader whose address space is limited to less than about
     * 4.1 GiB (RLIMIT_AS) could never take in the new segment. */
    if (last != NULL && last->follow)
        release_past_file(last);
    size_t size;
    atomic_store(&newest->end, UINT64_MAX);
    rc = follow_map(t, newest, &size, true);
    newest->walked_end = newest->base;
    if (rc < 0) {
        topic__segment_free(newest);
        topic__free(bases);
        return rc;
    }
    atomic_store(&newest->loaded, true);
    /* The writer moves the start offset before it deletes a segment, so a
     * start at or past bases[i], read after the listing, means that the
     * segments between last and bases[i] are gone, and every record of
     * last's with them: bases[i] is not where last ends, and a walk towards
     * it would run past the end of last's file. */
    if (last != NULL) {
        atomic_store(&last->end, bases[i]);
        bool gone = topic__live_start(t) >= bases[i];
        if (gone || follow_walk(t, last, file_limit(last)) == 0)
            follow_settle(last);
    }
    struct segment *s = last;
    for (; i + 1 < n && rc == 0; i++) {
        if ((s = topic__segment_new(bases[i])) == NULL) {
            rc = -ENOMEM;
            break;
        }
        atomic_store(&s->end, bases[i + 1]);
        if ((rc = topic__seglist_push(t, s)) < 0)
            topic__segment_free(s);
    }
    if (rc == 0 && (rc = topic__seglist_push(t, newest)) == 0)
        s = newest;
    else
        topic__segment_free(newest);
    topic__free(bases);
    if (rc == 0)
        *out = s;
    return rc;
}

/*
 * A reader builds, in its own memory, the indexes of the segments it
 * follows: about 24 bytes per index entry, 2.3% of a log of 100-byte
 * records, kept until the handle closed (scale tester F1: 23.7 MB after
 * following 1.05 GB, 117 MB at index.interval.bytes=1).  So at each roll,
 * every segment before the one just rolled away from gives back that memory
 * and its mappings, unless a cursor or a read holds it.  The one just
 * rolled away from waits for the next roll, as its last records were found
 * only now, and the reader has yet to read them.  A segment given back is
 * loaded again when it is next read, from the writer's index files once
 * the writer has sealed it, and given back again at a later roll: a cursor
 * that lags behind the writer, or reads the log again from its start, holds
 * the segments it passed through only until then (recheck tester F3 of
 * snap14: a second, lagging cursor kept the whole log mapped).  Each roll
 * looks at every segment, a pointer each: rolls are rare.  Under
 * append_lock.
 */
static void release_behind(topic *t, const struct segment *old)
{
    if (old != NULL)
        (void)topic__seglist_unload_below(t, old->base);
}

void topic__refresh(topic *t)
{
    struct live_view v;
    if (!(t->flags & TOPIC_RDONLY))
        return;
    if (atomic_load_explicit(&t->state_pending, memory_order_acquire)) {
        topic__lock(&t->append_lock);
        if (atomic_load(&t->state_pending) && topic__state_attach(t))
            atomic_store_explicit(&t->state_pending, false, memory_order_release);
        topic__unlock(&t->append_lock);
    }
    /* The writer deleted old records: let go of their segments.  The start
     * offset is taken outside the sequence lock (topic__live_start), as
     * topic__locate() takes it before each lookup: a writer killed inside
     * topic__publish leaves the sequence odd, and live_read() fails, until
     * the next writer opens. */
    uint64_t start = topic__live_start(t);
    if (start > atomic_load_explicit(&t->start, memory_order_acquire)) {
        topic__lock(&t->append_lock);
        if (start > atomic_load(&t->start))
            atomic_store_explicit(&t->start, start, memory_order_release);
        topic__unlock(&t->append_lock);
        topic__drop_gone(t);
    }
    if (!live_read(t, &v))
        return;
    if (v.end <= atomic_load_explicit(&t->end, memory_order_acquire))
        return;
    topic__lock(&t->append_lock);
    struct segment *s = t->active;
    if (v.end > atomic_load(&t->end)) {
        /* A roll that fails (out of descriptors or address space) is tried
         * again by the next refresh; meanwhile the reader's end offset
         * stops short of the writer's, and reads there must say why: a
         * TOPIC_END would have a consumer wait for ever. */
        int rc = 0;
        if (s == NULL || v.base > s->base) {
            /* A segment listed and then removed by the writer's retention
             * before it was opened (-ENOENT) is no failure: list again. */
            struct segment *old = s;
            for (int tries = 0; tries < TOPIC__RECLAIM_TRIES; tries++) {
                unsigned refused = topic__maps_refused(), unloads = topic__seglist_unloads(t);
                rc = follow_roll(t, s, v.base, &s);
                /* Out of address space or map areas: see seglist.c. */
                if (rc != -ENOENT && (rc != -ENOMEM || topic__maps_refused() == refused ||
                                      !topic__seglist_reclaim(t, unloads)))
                    break;
            }
            if (rc == 0)
                t->active = s;
            if (rc == 0 && s != old)
                release_behind(t, old);
        }
        atomic_store_explicit(&t->follow_err, rc, memory_order_release);
        /* Only below the published length: the writer may be copying the
         * batch after it right now.  Nor past the end of the file: a
         * length beyond it was published before the file was cut (or is
         * damage in topic.state), and a walk there read the mapping past
         * the file, SIGBUS (fuzz_recover found it: an empty .log, 2 GiB
         * published). */
        if (s != NULL && s->loaded && v.base == s->base) {
            size_t size = file_limit(s);
            follow_walk(t, s, v.len < size ? (size_t)v.len : size);
            follow_open(s, &v, false, size);
            trust_published(s, &v, size);
        }
        if (s != NULL && s->walked_end > atomic_load(&t->end))
            atomic_store_explicit(&t->end, s->walked_end, memory_order_release);
    }
    topic__unlock(&t->append_lock);
}
