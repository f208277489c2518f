/*
 * The topic handle: opening (lock, settings, the segment list, recovery of
 * the active segment), closing, and the list of segments readers search.
 */
#include <dirent.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"

static int64_t clock_ns(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/*
 * Two clocks.  Timestamps are the wall clock's (CLOCK_REALTIME): they are
 * stored, compared with users' timestamps and with retention.ms.  Durations
 * the writer measures itself (flush.ms, the age of a segment for
 * segment.ms, a group's last sync) are the monotonic clock's, which a step
 * of the wall clock does not move: when NTP set the clock back an hour, a
 * flush.ms measured on the wall clock left an hour of appends unsynced.
 */
#if defined(__x86_64__)
#include <x86intrin.h>
/*
 * Every record without a timestamp of its own costs a reading of the clock,
 * and clock_gettime() takes about a quarter of a small append here.  Each
 * thread keeps its last reading and reuses it while the time-stamp counter
 * says the clock cannot yet have reached the next millisecond, so a
 * timestamp is always the millisecond the call ran in: never one that had
 * already ended when the caller asked.  The reuse stops three quarters of
 * the way to that boundary (and at most 100 microseconds on), which leaves
 * room for error in the counter's rate.  The rate is learnt from two
 * readings at least 10 ms apart; until then, or if the counter or the clock
 * ever runs backwards (another CPU, a clock step), the clock is read every
 * time.  Each reading of the wall clock also reads the monotonic one, so an
 * append gets both for the price of one.
 *
 * The cache is in initial-exec thread-local storage.  The default model in
 * a shared library finds a thread's variable through __tls_get_addr(), a
 * call through the PLT on every append; initial-exec is one load at a
 * fixed distance from the thread pointer.  A library loaded by dlopen()
 * (Python's ctypes does) takes such variables from the few hundred bytes
 * of static TLS that glibc keeps spare for that case (the tunable
 * glibc.rtld.optional_static_tls, 512 bytes by default); these 56 bytes are
 * the library's only use of it.
 */
static _Thread_local __attribute__((tls_model("initial-exec"))) struct {
    uint64_t deadline;      /* reuse clk.ms while the counter is below this */
    uint64_t tsc;           /* the counter at the last reading */
    uint64_t calib_tsc;
    int64_t calib_ns;
    double per_ns;          /* counter ticks per nanosecond; 0 = not yet known */
    int64_t ms;
    int64_t mono_ms;
} clk;

int64_t topic__clock_ms(int64_t *mono_ms)
{
    uint64_t tsc = __rdtsc();
    if (tsc >= clk.tsc && tsc < clk.deadline) {
        *mono_ms = clk.mono_ms;
        return clk.ms;
    }
    int64_t ns = clock_ns(CLOCK_REALTIME);
    clk.mono_ms = clock_ns(CLOCK_MONOTONIC) / 1000000;
    clk.deadline = 0;
    if (clk.calib_ns == 0 || tsc < clk.calib_tsc || ns < clk.calib_ns) {
        clk.calib_tsc = tsc;
        clk.calib_ns = ns;
        clk.per_ns = 0;
    } else if (clk.per_ns == 0 && ns - clk.calib_ns >= 10000000) {
        clk.per_ns = (double)(tsc - clk.calib_tsc) / (double)(ns - clk.calib_ns);
    }
    if (clk.per_ns > 0) {
        int64_t left = 1000000 - ns % 1000000;      /* nanoseconds to the next ms */
        double ticks = (left < 133333 ? (double)left * 0.75 : 100000.0) * clk.per_ns;
        clk.deadline = tsc + (uint64_t)ticks;
    }
    clk.tsc = tsc;
    clk.ms = ns / 1000000;
    *mono_ms = clk.mono_ms;
    return clk.ms;
}
#else
int64_t topic__clock_ms(int64_t *mono_ms)
{
    *mono_ms = clock_ns(CLOCK_MONOTONIC) / 1000000;
    return clock_ns(CLOCK_REALTIME) / 1000000;
}
#endif

int64_t topic__now_ms(void)
{
    int64_t mono;
    return topic__clock_ms(&mono);
}

int64_t topic__mono_ms(void)
{
    int64_t mono;
    topic__clock_ms(&mono);
    return mono;
}

/* ------------------------------------------------------------------------ */
/* Opening                                                                   */

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* True for "<20 digits>.log", storing the digits' value in *base. */
static bool parse_segment_name(const char *name, uint64_t *base)
{
    if (strlen(name) != 24 || strcmp(name + 20, ".log") != 0)
        return false;
    uint64_t v = 0;
    for (int i = 0; i < 20; i++) {
        if (name[i] < '0' || name[i] > '9')
            return false;
        uint64_t d = (uint64_t)(name[i] - '0');
        if (v > (UINT64_MAX - d) / 10)
            return false;
        v = v * 10 + d;
    }
    *base = v;
    return true;
}

/* True for the names of the library's own temporary files, which a writer
 * killed between writing one and renaming it leaves behind:
 * "topic.conf.tmp", "<20 digits>.index.tmp" and "<20 digits>.timeindex.tmp"
 * (see topic__write_file_atomic), and the spare segment's (segment.c).
 * Any other *.tmp is someone else's, in a directory that may have held
 * files before it became a topic. */
static bool own_temp_name(const char *name, size_t len)
{
    static const char conf[] = "topic.conf.tmp", ix[] = ".index.tmp", tix[] = ".timeindex.tmp";
    if (len == sizeof conf - 1)
        return memcmp(name, conf, len) == 0;
    if (topic__spare_name(name))
        return true;
    if (len <= 20)
        return false;
    for (size_t i = 0; i < 20; i++)
        if (name[i] < '0' || name[i] > '9')
            return false;
    const char *ext = name + 20;
    size_t n = len - 20;
    return (n == sizeof ix - 1 && memcmp(ext, ix, n) == 0) ||
           (n == sizeof tix - 1 && memcmp(ext, tix, n) == 0);
}

/* Lists the segment files in ascending base order; removes a writer's
 * leftover temporary files on the way. */
int topic__list_segments(topic *t, uint64_t **out, size_t *count)
{
    int fd = topic__openat(t->dirfd, ".", O_RDONLY | O_DIRECTORY, 0);
    if (fd < 0)
        return fd;
    DIR *d = fdopendir(fd);
    if (d == NULL) {
        topic__close(fd);
        return topic__neg_errno();
    }
    uint64_t *v = NULL;
    size_t n = 0, cap = 0;
    int rc;
    struct dirent *de;
    while ((rc = topic__readdir(d, &de)) > 0) {
        uint64_t base;
        size_t len = strlen(de->d_name);
        /* Only under the writer lock: an opener that has not taken it yet
         * (looks_like_topic) would remove the topic.conf.tmp of the writer
         * that holds it, mid-creation, whose rename then failed. */
        if (t->locked && own_temp_name(de->d_name, len)) {
            topic__os.unlinkat(t->dirfd, de->d_name, 0);
            continue;
        }
        if (!parse_segment_name(de->d_name, &base))
            continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 16;
            uint64_t *nv = topic__realloc(v, cap * sizeof *v);
            if (nv == NULL) {
                rc = -ENOMEM;
                break;
            }
            v = nv;
        }
        v[n++] = base;
    }
    closedir(d);
    if (rc < 0) {
        topic__free(v);
        return rc;
    }
    if (n > 1)
        qsort(v, n, sizeof *v, cmp_u64);
    *out = v;
    *count = n;
    return 0;
}

/* Opens (a writer) or learns the extent of (a reader) the last segment.
 * A writer's open returns TOPIC__LOST when the segment lost records a clean
 * close had synced, or that the last writer of this boot had written to
 * it before it died (`live`; see topic__segment_open_active). */
static int open_last(topic *t, struct segment *s, const struct live_last *live)
{
    struct state_page snap;
    bool clean = topic__state_clean(t, &snap) && snap.active_base == s->base;
    /* The last clean close's record vouches for the segment's head also
     * when a writer has appended since, if nothing else changed: cut
     * short under that writer, the segment lost records the close had
     * synced (recheck tester F2). */
    bool vouched = clean || (topic__state_clean_but_flag(t, &snap) && snap.active_base == s->base);
    if (clean) {
        char name[64];
        size_t size = 0;
        topic__segment_name(name, sizeof name, s->base, ".log");
        int fd = topic__openat(t->dirfd, name, O_RDONLY, 0);
        if (fd < 0 || topic__fsize(fd, &size) < 0 || size != snap.active_len)
            clean = false;
        topic__close(fd);
    }
    if (t->flags & TOPIC_RDONLY)
        return topic__follow_open_last(t, s);
    struct seg_record rec = { (size_t)snap.active_len, snap.end_offset, false, 0, 0 };
    if (!clean && live->fate == TOPIC__LIVE_SAME && live->base == s->base &&
        (!vouched || live->end >= rec.end)) {
        rec = (struct seg_record){ live->len, live->end, false, live->open_pos1, live->chain };
        vouched = true;
    } else if (!clean && live->fate == TOPIC__LIVE_CUT && live->base == s->base &&
               (!vouched || live->size >= rec.len)) {
        /* Cut short in place, but not below what a clean close synced:
         * a torn tail from the cut on, damage below it (segment.c). */
        rec = (struct seg_record){ live->size, live->end, true, 0, 0 };
        vouched = true;
    }
    return topic__segment_open_active(t, s, !clean, vouched ? &rec : NULL);
}

/*
 * The last segment lost records that a clean close had synced.  It is sealed
 * as it is, ending at the offset the close recorded, and appends go on in a
 * new segment from there (next_base), so that no offset is ever given to two
 * records.  A start offset past the end of the log is handled the same way,
 * with the start offset as next_base.
 * The clean record is then rewritten for the new active segment (by the
 * caller, once the handle knows its offsets).  A crash before that repeats
 * all of this at the next open: the new segment is empty, and goes.
 */
static int seal_lost(topic *t, struct segment *s, uint64_t next_base)
{
    TRY(topic__segment_seal(t, s));
    struct segment *next;
    TRY(topic__segment_create(t, next_base, (size_t)t->cfg.v[TOPIC_K_SEGMENT_BYTES], &next));
    int rc = topic__seglist_push(t, next);
    if (rc < 0)
        topic__segment_free(next);
    return rc;
}

static bool indexes_present(topic *t, uint64_t base)
{
    char name[64];
    topic__segment_name(name, sizeof name, base, ".index");
    if (faccessat(t->dirfd, name, F_OK, 0) != 0)
        return false;
    topic__segment_name(name, sizeof name, base, ".timeindex");
    return faccessat(t->dirfd, name, F_OK, 0) == 0;
}

/*
 * After a crash, a segment that appends had rolled away from but the flusher
 * had not sealed yet may have lost its tail while a later segment kept its
 * head.  Such a segment is verified like the active one, cut after its last
 * whole batch and sealed.  If it now ends before the next segment begins, the
 * later segments are removed so that offsets stay dense (none of their
 * records had been synced: a sync seals every earlier segment first), and it
 * becomes the active segment: returns 1.
 *
 * Not when the record was a clean one older than the segments (`stale`: see
 * drop_unfinished): no crash came between, so the gap is not a torn tail but
 * files from two copies of the topic, and the later ones hold records whose
 * offsets were handed out.  The segment is sealed as it is and ends where
 * the next begins, so that the missing offsets read TOPIC_ECORRUPT, as
 * after any loss of synced records, and none is given out twice.  The same
 * when the segment is the one a clean close's record (its flag cleared by
 * a writer since: `vouched`) names, and it lost records that close synced.
 *
 * And the same when the writer that rolled away from it died in this boot
 * (`same_boot`): it wrote every batch of the segment before it created the
 * next one, and a crash of the process alone loses nothing the page cache
 * holds, so nothing of it can be torn.  A batch that fails its checksum
 * there was damaged since, and the batches after it stay.
 */
static int recover_rolled(topic *t, struct segment *s, const uint64_t *later, size_t nlater,
                          bool stale, struct seg_record *vouched, bool same_boot)
{
    struct seg_record whole = { SIZE_MAX, later[0], false, 0, 0 };
    if (same_boot)
        vouched = &whole;
    int rc = topic__segment_open_active(t, s, true, vouched);
    TRY(rc);
    if (atomic_load(&s->end) == later[0] || stale || rc == TOPIC__LOST) {
        TRY(topic__segment_seal(t, s));
        s->writable = false;
        atomic_store(&s->end, later[0]);
        return 0;
    }
    for (size_t i = nlater; i-- > 0;)
        TRY(topic__segment_unlink(t, later[i]));
    TRY(topic__fsync(t->dirfd));
    return 1;
}

/* Whether the segment at `base` holds a batch, or might: a regular file
 * that is not what a creation that failed leaves (empty, or at most one
 * allocation step of zeros), or one that cannot be read to tell.  Any
 * byte counts, not only a first batch's magic: a file whose first batch
 * was zeroed still holds the others (tester F).  A FIFO, socket, link or
 * directory in its place holds none (and is reported as damage where it
 * is read). */
static bool holds_batches(topic *t, uint64_t base)
{
    char name[64];
    topic__segment_name(name, sizeof name, base, ".log");
    int fd = topic__openat(t->dirfd, name, O_RDONLY, 0);
    if (fd == -ENOENT || fd == -ELOOP || fd == TOPIC_ECORRUPT)
        return false;
    if (fd < 0)
        return true;
    static const uint8_t zeros[4096];
    uint8_t buf[sizeof zeros];   /* 4 KiB: an open may run on a small thread stack */
    size_t size = 0;
    int rc = topic__fsize(fd, &size);
    bool holds = rc == TOPIC_ECORRUPT ? false : rc < 0 || size > TOPIC__RESERVE_STEP;
    for (size_t at = 0; !holds && at < size; at += sizeof buf) {
        size_t n = size - at < sizeof buf ? size - at : sizeof buf;
        holds = topic__pread_all(fd, buf, n, (off_t)at) < 0 || memcmp(buf, zeros, n) != 0;
    }
    topic__close(fd);
    return holds;
}

/*
 * After a clean close the record names the active segment: a segment above
 * it is a creation that failed before the writer ever wrote to it (or a
 * stray file), and holds no record.  A writer deletes it; a reader leaves
 * it be, and ignores it rather than taking its base for the end offset.
 *
 * Unless one of them holds a batch: then the record is older than the
 * segments (a topic.state restored from an earlier backup, or copied before
 * the segments while a writer ran), and trusting it hid every record past
 * it from readers while a writer deleted them (tester C).  Nothing is
 * dropped, and false says that the record is not to be trusted.
 */
static bool drop_unfinished(topic *t, const struct state_page *snap, uint64_t *bases, size_t *n)
{
    size_t keep = *n;
    while (keep > 1 && bases[keep - 1] > snap->active_base && bases[keep - 2] >= snap->active_base)
        keep--;
    for (size_t i = keep; i < *n; i++)
        if (holds_batches(t, bases[i]))
            return false;
    if (!(t->flags & TOPIC_RDONLY))
        for (size_t i = keep; i < *n; i++)
            topic__segment_unlink(t, bases[i]);   /* best effort: they hold nothing */
    *n = keep;
    return true;
}

/*
 * After a clean close, the active segment the record names is not there:
 * removed by hand (every earlier segment was sealed by the close).  Its
 * records are lost, but their offsets were handed out, and must not be
 * again: a writer starts a new, empty segment at the recorded end offset
 * and adds it to the listing, so that the segment before the gap claims the
 * lost offsets, which read TOPIC_ECORRUPT.  Returns whether it did.
 *
 * The same holds when the segment was removed while a writer had it open
 * after a clean open, and that writer did not close cleanly: the record is
 * then the last clean close's with its flag cleared
 * (topic__state_clean_but_flag), and a later segment, if the writer rolled,
 * means the segment is not missing.
 */
static int restart_missing_active(topic *t, const struct state_page *snap, uint64_t **bases,
                                  size_t *n)
{
    if (*n > 0 && (*bases)[*n - 1] >= snap->active_base)
        return 0;
    uint64_t *v = topic__realloc(*bases, (*n + 1) * sizeof *v);
    if (v == NULL)
        return -ENOMEM;
    *bases = v;
    struct segment *s;
    TRY(topic__segment_create(t, snap->end_offset, (size_t)t->cfg.v[TOPIC_K_SEGMENT_BYTES], &s));
    topic__segment_free(s);   /* opened again below, as the last segment */
    v[(*n)++] = snap->end_offset;
    return 1;
}

static int open_segments(topic *t)
{
    uint64_t *bases = NULL;
    size_t n = 0;
    /* A reader reads what a live writer published before it lists the
     * files (see topic__follow_trim). */
    uint64_t published = (t->flags & TOPIC_RDONLY) ? topic__follow_published_base(t) : UINT64_MAX;
    TRY(topic__list_segments(t, &bases, &n));
    size_t listed = n;
    n = topic__follow_trim(bases, n, published);
    struct state_page snap;
    bool clean = topic__state_clean(t, &snap), stale = false;
    if (clean) {
        size_t keep = listed;
        if (drop_unfinished(t, &snap, bases, &keep)) {
            if (keep < n)
                n = keep;
        } else {
            /* Older than the segments: recover as after a crash.  The
             * writer's published position is as old, so a reader lists
             * past it. */
            clean = false;
            stale = true;
            n = listed;
        }
    }
    bool recovering = !(t->flags & TOPIC_RDONLY) && !clean;
    int rc = 0;
    bool lost = false;
    /* What the last writer of this boot handed out and wrote
     * (topic__live_last). */
    struct live_last live = { 0 };
    if (!(t->flags & TOPIC_RDONLY) && (rc = topic__live_last(t, &live)) < 0) {
        topic__free(bases);
        return rc;
    }
    uint64_t floor = live.fate == TOPIC__LIVE_REPLACED ? live.end : 0;
    bool but_flag = !clean && topic__state_clean_but_flag(t, &snap);
    struct seg_record rec = { (size_t)snap.active_len, snap.end_offset, false, 0, 0 };
    if (!(t->flags & TOPIC_RDONLY) && (clean || but_flag)) {
        if (snap.end_offset < floor)
            snap.end_offset = floor;
        rc = restart_missing_active(t, &snap, &bases, &n);
        if (rc < 0) {
            topic__free(bases);
            return rc;
        }
        lost = rc == 1;
        rc = 0;
    }
    uint64_t unsealed_from = t->state->unsealed_from;
    for (size_t i = 0; i < n && rc == 0; i++) {
        struct segment *s = topic__segment_new(bases[i]);
        if (s == NULL) {
            rc = -ENOMEM;
            break;
        }
        if ((rc = topic__seglist_push(t, s)) < 0) {
            topic__segment_free(s);
            break;
        }
        if (i + 1 == n) {
            rc = open_last(t, s, &live);
            if (rc == TOPIC__LOST) {
                lost = true;
                if (atomic_load(&s->end) < floor)
                    atomic_store(&s->end, floor);
                rc = seal_lost(t, s, atomic_load(&s->end));
            }
        } else if (recovering && bases[i] >= unsealed_from) {
            rc = recover_rolled(t, s, bases + i + 1, n - i - 1, stale,
                                but_flag && bases[i] == snap.active_base ? &rec : NULL,
                                live.same_boot);
            if (rc == 1) {
                n = i + 1;
                rc = 0;
            }
        } else {
            atomic_store(&s->end, bases[i + 1]);   /* sealed: ends where the next begins */
            if (!(t->flags & TOPIC_RDONLY) && !indexes_present(t, bases[i]))
                rc = topic__segment_load(t, s);    /* rebuilds and stores them */
        }
    }
    topic__free(bases);
    TRY(rc);
    struct segment *last = topic__seglist_last(t);
    uint64_t start = topic__state_start(t->state);
    if (last != NULL) {
        struct segment *first = topic__seglist_first(t);
        atomic_store(&t->end, last->follow ? last->walked_end : atomic_load(&last->end));
        if (start < first->base)
            start = first->base;
        t->active = last;
        if (recovering)
            TRY(topic__state_sealed(t, last->base));
        /*
         * The last writer of this boot handed out offsets that the files
         * no longer hold: its .log was removed or cut short under it, and
         * it died before a sync could notice.  They stay handed out: the
         * last segment is sealed as it is and claims them (they read
         * TOPIC_ECORRUPT, as records lost from any sealed segment), and
         * appends go on from the published end in a new segment.
         */
        if (floor > atomic_load(&t->end) && !(t->flags & TOPIC_RDONLY)) {
            TRY(seal_lost(t, last, floor));
            atomic_store(&last->end, floor);
            atomic_store(&last->missing, true);
            t->active = last = topic__seglist_last(t);
            atomic_store(&t->end, floor);
            lost = true;
        }
        /*
         * A start offset past the end: topic_delete_before() stored it
         * durably, and a power loss then took the records below it that
         * were not synced yet.  They were deleted either way.  The log goes
         * on from the start offset, in a new segment, so that no record is
         * given an offset below it, where no reader would ever see it.
         */
        if (start > atomic_load(&t->end)) {
            if (!(t->flags & TOPIC_RDONLY)) {
                TRY(seal_lost(t, last, start));
                t->active = topic__seglist_last(t);
                lost = true;
            }
            atomic_store(&t->end, start);
        }
    } else {
        /* No segment file left at all, though the last writer of this
         * boot handed out offsets up to floor (every .log removed under
         * it, recheck tester F1 of snap14): the log starts again there, a
         * new first segment, and the lost offsets lie below its start
         * offset (TOPIC_EGONE).  The record is written once that segment
         * exists, below. */
        if (floor > start && !(t->flags & TOPIC_RDONLY))
            start = floor;
        atomic_store(&t->end, start);
    }
    atomic_store(&t->start, start);
    if (lost && t->active != NULL)
        TRY(topic__state_mark(t, true));
    /* Segments below the start offset that a crash left behind. */
    TRY(topic__drop_gone(t));
    if (t->active == NULL && !(t->flags & TOPIC_RDONLY)) {
        struct segment *s;
        TRY(topic__segment_create(t, start, (size_t)t->cfg.v[TOPIC_K_SEGMENT_BYTES], &s));
        if ((rc = topic__seglist_push(t, s)) < 0) {
            topic__segment_free(s);
            return rc;
        }
        t->active = s;
        if (floor > 0 && start == floor)
            TRY(topic__state_mark(t, true));
    }
    return 0;
}

/* A topic directory holds topic.state, topic.conf or a segment: any one
 * of them survives damage to the others. */
static int looks_like_topic(topic *t)
{
    uint64_t *bases = NULL;
    size_t n = 0;
    if (faccessat(t->dirfd, "topic.state", F_OK, 0) == 0 ||
        faccessat(t->dirfd, "topic.conf", F_OK, 0) == 0)
        return 1;
    /* A listing that fails says nothing: not "no topic here", which sends
     * the user to create one over the segments it could not see. */
    TRY(topic__list_segments(t, &bases, &n));
    topic__free(bases);
    return n > 0;
}

/* Makes `dir` if asked to; returns 1 when this call created it. */
static int make_dir(const char *dir, int flags)
{
    if (!(flags & TOPIC_CREATE))
        return 0;
    if (topic__os.mkdir(dir, TOPIC__DIR_MODE) == 0) {
        /* Make the new directory's name durable in its parent. */
        char *parent = topic__strdup(dir);
        if (parent == NULL) {
            topic__os.unlinkat(AT_FDCWD, dir, AT_REMOVEDIR);
            return -ENOMEM;
        }
        char *slash = strrchr(parent, '/');
        const char *p = slash == NULL ? "." : slash == parent ? "/" : (*slash = '\0', parent);
        int fd = topic__openat(AT_FDCWD, p, O_RDONLY | O_DIRECTORY, 0);
        int rc = fd == -EACCES ? 0 : fd;   /* a parent we may not read: best effort */
        if (fd >= 0) {
            rc = topic__fsync(fd);
            topic__close(fd);
        }
        topic__free(parent);
        if (rc < 0)
            topic__os.unlinkat(AT_FDCWD, dir, AT_REMOVEDIR);   /* as unmake_dir() */
        return rc < 0 ? rc : 1;
    }
    if (errno != EEXIST)
        return topic__neg_errno();
    return (flags & TOPIC_EXCL) ? -EEXIST : 0;
}

static int open_handle(topic *t, const char *dir, const topic_config *conf)
{
    int made = make_dir(dir, t->flags);
    TRY(made);
    t->made_dir = made == 1;
    t->dirfd = topic__openat(AT_FDCWD, dir, O_RDONLY | O_DIRECTORY, 0);
    TRY(t->dirfd);
    bool writer = !(t->flags & TOPIC_RDONLY);
    int topic_here = made ? 1 : looks_like_topic(t);
    TRY(topic_here);
    if (!topic_here) {
        /* An existing directory that is not yet a topic becomes one only
         * when the caller asked for creation. */
        if (!(t->flags & TOPIC_CREATE))
            return -ENOENT;
        made = 1;
    }
    TRY(topic__state_open(t, writer));
    if (writer) {
        /* Which directory this is, for the live area (follow.c). */
        size_t size;
        int rc = topic__fsize_id(t->dirfd, &size, t->dir_id);
        if (rc < 0 && rc != TOPIC_ECORRUPT)   /* a directory is no regular file */
            return rc;
    }
    TRY(topic__settings_load(&t->cfg, t->dirfd));
    if (conf != NULL)
        topic__settings_merge(&t->cfg, &conf->s);
    if (writer && (made || (conf != NULL && conf->s.set != 0)))
        TRY(topic__settings_store(&t->cfg, t->dirfd));
    TRY(open_segments(t));
    return topic__wait_open(t);
}

_Atomic unsigned topic__fork_gen;
static pthread_once_t g_atfork_once = PTHREAD_ONCE_INIT;

static void forked_child(void)
{
    atomic_fetch_add_explicit(&topic__fork_gen, 1, memory_order_relaxed);
    topic__writers_child();
}

static void watch_forks(void)
{
    pthread_atfork(topic__writers_prepare, topic__writers_parent, forked_child);
    pthread_atfork(topic__handles_prepare, topic__handles_parent, topic__handles_child);
}

static void free_handle(topic *t)
{
    topic__handles_remove(t);
    /* Segments still waiting to be sealed (a seal failed) hold references. */
    for (struct segment *s = t->unsealed, *next; s != NULL; s = next) {
        next = s->next_unsealed;
        topic__segment_put(s);
    }
    t->unsealed = NULL;
    topic__wait_close(t);
    topic__groups_close(t);
    topic__zbuf_free(&t->zraw);
    topic__zbuf_free(&t->zout);
    topic__free(t->lz4_state);
    topic__state_close(t);
    topic__seglist_free(t);
    topic__close(t->dirfd);
    topic__bg_destroy(t);
    topic__free(t->dir);
    topic__free(t);
}

/* One pass over directory dirfd, removing every entry (an empty
 * subdirectory too); whether it removed any. */
static bool remove_entries(int dirfd)
{
    char buf[4096] __attribute__((aligned(8)));
    bool removed = false;
    ssize_t n;
    if (lseek(dirfd, 0, SEEK_SET) < 0)
        return false;
    while ((n = getdents64(dirfd, buf, sizeof buf)) > 0)
        for (ssize_t at = 0; at < n;) {
            const struct dirent64 *de = (const void *)(buf + at);
            at += de->d_reclen;
            if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
                continue;
            if (topic__os.unlinkat(dirfd, de->d_name, 0) == 0 ||
                (errno == EISDIR && topic__os.unlinkat(dirfd, de->d_name, AT_REMOVEDIR) == 0))
                removed = true;
        }
    return removed;
}

/*
 * A creation that failed leaves nothing behind: what the handle wrote into
 * the directory it made goes, then the directory.  Otherwise a retry with
 * TOPIC_EXCL would be told the topic exists.  Its files are removed only
 * under the writer lock: without it, they may be another opener's, which
 * found the new directory and took the lock first.  A lock that failed for
 * another reason (ENOLCK) is tried once more here.  The directory is read
 * with getdents64() into a buffer on the stack, because the failure being
 * cleaned up may be that memory ran out.  Best effort.
 */
static void unmake_dir(topic *t, const char *dir)
{
    bool locked = t->locked;
    if (!locked && t->lockfd >= 0 && !(t->flags & TOPIC_RDONLY) &&
        topic__flock(t->lockfd, LOCK_EX | LOCK_NB) == 0) {
        /* Another opener may have held the lock meanwhile and finished
         * a topic here: then topic.state has its magic, and it stays. */
        uint32_t magic = 0;
        size_t size;
        locked = topic__fsize(t->lockfd, &size) == 0 &&
                 (size < sizeof magic ||
                  (topic__pread_all(t->lockfd, &magic, sizeof magic, 0) == 0 && magic == 0));
    }
    /* Unlinking changes the listing under the reader: read it again from
     * the start until a pass removes nothing. */
    for (int pass = 0; locked && t->dirfd >= 0 && pass < 8; pass++)
        if (!remove_entries(t->dirfd))
            break;
    topic__os.unlinkat(AT_FDCWD, dir, AT_REMOVEDIR);
}

static int open_once(const char *dir, int flags, const topic_config *conf, topic **out);

TOPIC_API int topic_open(const char *dir, int flags, const topic_config *conf, topic **out)
{
    if (out != NULL)
        *out = NULL;
    if (dir == NULL || out == NULL || *dir == '\0' ||
        (flags & ~(TOPIC_CREATE | TOPIC_EXCL | TOPIC_RDONLY)) ||
        ((flags & TOPIC_EXCL) && !(flags & TOPIC_CREATE)) ||
        ((flags & TOPIC_RDONLY) && (flags & TOPIC_CREATE)))
        return -EINVAL;
    pthread_once(&g_atfork_once, watch_forks);
    int rc = 0;
    for (int tries = 0; tries < TOPIC__RECLAIM_TRIES; tries++) {
        unsigned refused = topic__maps_refused();
        rc = open_once(dir, flags, conf, out);
        /* Out of address space or map areas (the active segment's 2 GiB
         * reservation): other handles give back their idle segments. */
        if (rc != -ENOMEM || topic__maps_refused() == refused ||
            topic__handles_unload_idle(NULL) == 0)
            break;
    }
    return rc;
}

static int open_once(const char *dir, int flags, const topic_config *conf, topic **out)
{
    topic *t = topic__calloc(1, sizeof *t);
    if (t == NULL)
        return -ENOMEM;
    t->flags = flags;
    t->dirfd = t->lockfd = -1;
    t->fork_gen = atomic_load(&topic__fork_gen);
    topic__settings_default(&t->cfg);
    topic__bg_init(t);
    topic__seglist_init(t);
    t->dir = topic__strdup(dir);
    int rc = t->dir ? open_handle(t, dir, conf) : -ENOMEM;
    if (rc == 0 && !(flags & TOPIC_RDONLY))
        rc = topic__bg_start(t);
    if (rc < 0) {
        topic__bg_stop(t);
        if (t->made_dir)
            unmake_dir(t, dir);
        free_handle(t);
        return rc;
    }
    if (!(flags & TOPIC_RDONLY)) {
        /* The position first: a writer killed between the two leaves the
         * recovered position under the last boot's id, which the next
         * writer does not rely on, rather than a position of an earlier
         * boot under this one's (topic__live_last). */
        topic__lock(&t->append_lock);
        topic__publish(t);
        topic__publish_boot(t);
        topic__unlock(&t->append_lock);
    }
    topic__handles_add(t);
    *out = t;
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Closing                                                                   */

/*
 * Whether a close has nothing to make durable: this handle appended nothing
 * (so it never cleared the clean flag), and topic.state already holds the
 * clean record the close would write, for an active file of the recorded
 * size.  The close that wrote that record synced every byte it vouches for;
 * a deletion since (topic_delete_before, retention) changed its start
 * offset, so it is not current any more.  A handle opened to look then
 * closes without four fdatasyncs (about a millisecond here).  Under
 * append_lock, with the threads stopped.
 */
static bool index_exact(const struct index *ix)
{
    return ix->fd < 0 || ix->reserved == (size_t)atomic_load(&ix->n) * ix->entry_size;
}

static bool nothing_to_sync(topic *t)
{
    size_t size = 0;
    /* Not after an open that rebuilt the indexes: their files are
     * allocated ahead, and a close leaves each holding its entries
     * (recheck tester F5: 528 bytes for 16 entries after recover). */
    return !t->marked_dirty && t->failed == 0 && topic__state_current(t) &&
           topic__fsize(t->active->fd, &size) == 0 && size == atomic_load(&t->active->len) &&
           index_exact(&t->active->idx) && index_exact(&t->active->tidx);
}

/* Stops the background threads, seals what they had not, applies retention
 * as the flusher does after its seals, syncs the active segment and cuts it
 * to its data, and records the clean shutdown. */
static int close_writer(topic *t)
{
    topic__bg_stop(t);
    int rc = topic__seal_pending(t);
    /* Without this, the segments the flusher had not caught up with stayed
     * past retention.bytes until the next writer's open.  A failure here
     * is the flusher's kind (sticky, in t->failed), reported below. */
    if (rc == 0 && topic__has_retention(t))
        topic__apply_retention(t);
    topic__lock(&t->append_lock);
    topic__open_seal(t);
    if (rc == 0 && nothing_to_sync(t)) {
        topic__unlock(&t->append_lock);
        return 0;
    }
    if (rc == 0)
        rc = t->failed;
    if (rc == 0) {
        rc = topic__ftruncate(t->active->fd, (off_t)atomic_load(&t->active->len));
        if (rc == 0)
            rc = topic__fdatasync(t->active->fd);
        /* As topic__sync (sync.c) asks. */
        if (rc == 0 && (rc = topic__still_linked(t->active->fd)) == -ENOENT)
            topic__mark_lost_end(t);
        if (rc == 0)
            rc = topic__still_linked(t->dirfd);
        if (rc == 0)
            rc = topic__index_seal(&t->active->idx);
        if (rc == 0)
            rc = topic__index_seal(&t->active->tidx);
    }
    if (rc == 0)
        rc = topic__state_mark(t, true);
    topic__unlock(&t->append_lock);
    return rc;
}

TOPIC_API int topic_close(topic *t)
{
    if (t == NULL)
        return 0;
    /* A writer handle inherited through fork(): its files, threads and
     * locks are the parent's, which goes on using them.  Closing it here
     * would cut the parent's active segment to what this copy knew and
     * wait for threads that do not exist.  The child's copy of the
     * handle's memory is left as it is. */
    if (!(t->flags & TOPIC_RDONLY) && topic__forked(t))
        return 0;
    int rc = topic__groups_sync(t);
    if (!(t->flags & TOPIC_RDONLY) && t->active != NULL) {
        int r = topic__tell_failure(t, close_writer(t));
        if (rc == 0)
            rc = r;
    }
    free_handle(t);
    return rc;
}

TOPIC_API uint64_t topic_start_offset(topic *t)
{
    if (t == NULL)
        return 0;
    if ((t->flags & TOPIC_RDONLY) && !topic__live_start_unmoved(t) &&
        topic__live_start(t) > atomic_load(&t->start))
        topic__refresh(t);   /* the writer deleted records since */
    return atomic_load_explicit(&t->start, memory_order_acquire);
}

TOPIC_API uint64_t topic_end_offset(topic *t)
{
    if (t == NULL)
        return 0;
    topic__refresh(t);
    return atomic_load_explicit(&t->end, memory_order_acquire);
}
