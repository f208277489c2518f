/*
 * Internal declarations shared by the files of lib/.  Nothing here is part of
 * the public API; every external symbol is named topic__* and hidden by
 * -fvisibility=hidden.
 */
#ifndef TOPIC_INTERNAL_H
#define TOPIC_INTERNAL_H

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "topic.h"
#include "os.h"
#include "format.h"
#include "config.h"

/*
 * The hosts libtopic runs on: Linux, 64-bit, little-endian (x86-64, arm64).
 * An active segment reserves 2 GiB of address space (TOPIC__MAP_ACTIVE), so
 * a 32-bit process could not roll even one segment; it is refused here
 * rather than built to fail with ENOMEM at its first roll.  topic.state
 * and group files are little-endian structs (state.c, offsets.c).
 */
_Static_assert(sizeof(void *) == 8 && sizeof(size_t) == 8 && sizeof(off_t) == 8,
               "libtopic needs a 64-bit host: segments are mapped whole");

/* Forward the first failure: the zstd habit, instead of an `if (rc) goto` ladder. */
#define TRY(expr)                  \
    do {                           \
        int try_rc_ = (expr);      \
        if (try_rc_ < 0)           \
            return try_rc_;        \
    } while (0)

/* ------------------------------------------------------------------------ */
/* Indexes (index.c)                                                          */

/*
 * One sparse index of a segment: the offset index (.index, 8-byte entries) or
 * the time index (.timeindex, 16-byte entries).  The entries live in a shared
 * mapping of the file: the active segment's file is preallocated and filled
 * as batches are appended, a sealed segment's file holds exactly its entries.
 * When a file is missing or fails validation the entries are rebuilt from the
 * log into anonymous memory instead (see segment.c).
 */
struct index {
    int fd;                   /* -1 when the entries are in anonymous memory */
    uint8_t *map;             /* entries; NULL when there are none */
    size_t map_len;
    uint32_t cap;             /* entries the mapping can hold */
    size_t reserved;          /* bytes of the file allocated (writable ones) */
    _Atomic uint32_t n;       /* entries published to readers */
    size_t entry_size;        /* TOPIC__IDX_ENTRY or TOPIC__TIDX_ENTRY */
};

#define TOPIC__IDX_ENTRY  8   /* u32 relative offset, u32 file position */
#define TOPIC__TIDX_ENTRY 16  /* i64 max timestamp before, u32 rel, u32 pos */

struct idx_entry {
    uint32_t rel;             /* offset - segment base */
    uint32_t pos;             /* file position of the batch holding it */
    int64_t  max_ts_before;   /* time index only: max timestamp before pos */
};

void topic__index_put(struct index *ix, const struct idx_entry *e);
/* Entry i (below ix->n), decoded. */
void topic__index_entry(const struct index *ix, uint32_t i, struct idx_entry *e);
/* Last entry whose rel <= rel (offset index); false if none. */
bool topic__index_find_rel(const struct index *ix, uint32_t rel, struct idx_entry *e);
/* Last entry whose max_ts_before < ts (time index); false if none.  *prev
 * gets the entry before it, or the segment's start (0, 0, INT64_MIN). */
bool topic__index_find_time(const struct index *ix, int64_t ts, struct idx_entry *e,
                            struct idx_entry *prev);
/* The last entry, and the one before it (or the segment's start); false
 * when there is none.  topic__tidx_entry_wrong() (recover.c) checks such a
 * pair against the log. */
bool topic__index_last(const struct index *ix, struct idx_entry *e, struct idx_entry *prev);
/* Checks that entries grow strictly and stay inside the segment. */
bool topic__index_valid(const struct index *ix, uint64_t nrecords, size_t data_len);
/* How many entries, from the first, pass those checks. */
uint32_t topic__index_valid_prefix(const struct index *ix, uint64_t nrecords, size_t data_len);
int  topic__index_map(struct index *ix, int dirfd, const char *name, uint32_t cap, bool writable);
int  topic__index_anon(struct index *ix, uint32_t cap);
void topic__index_trim(struct index *ix);
int  topic__index_seal(struct index *ix);
/* Closes the file of an index that will not change any more; its mapping
 * stays. */
void topic__index_close_fd(struct index *ix);
void topic__index_unmap(struct index *ix);

/* ------------------------------------------------------------------------ */
/* Segments (segment.c)                                                       */

/* Address space mapped for a segment that may still grow: segment.bytes at
 * its largest (1 GiB) plus the largest batch, which an empty segment takes
 * whatever segment.bytes says.  Only what is written is ever allocated. */
#define TOPIC__MAP_ACTIVE ((size_t)1 << 31)

/* A segment's file is allocated ahead of its data in steps of this size
 * (segment.c); a new one gets at most one step before its first batch. */
#define TOPIC__RESERVE_STEP ((size_t)16 << 20)

/* Batches that consecutive topic_append() calls share are sealed before
 * they would pass this many bytes, header included (append.c).  A read
 * verifies the whole batch its record is in, so larger ones make random
 * reads slower; smaller ones make appends and scans pay more headers and
 * checksums. */
#define TOPIC__OPEN_MAX ((size_t)1024)

struct segment {
    uint64_t base;                /* offset of its first record */
    int fd;                       /* the .log file, -1 until loaded */
    uint8_t *map;                 /* mapping of the .log file */
    _Atomic size_t map_len;       /* bytes mapped (TOPIC__MAP_ACTIVE when active); sealing
                                   * shrinks it while readers look */
    size_t capacity;              /* writer: roll once a batch would pass this */
    _Atomic size_t len;           /* bytes of whole batches, published to readers */
    _Atomic size_t open_pos;      /* writer: where its open batch starts (records up to
                                   * len), TOPIC__NO_OPEN when it has none (append.c) */
    _Atomic size_t bad_open;      /* an open batch whose records are not to be used
                                   * (follow.c), TOPIC__NO_OPEN if none */
    _Atomic uint64_t end;         /* one past its last offset; known when sealed */
    _Atomic int64_t max_ts;       /* largest timestamp in it; INT64_MIN if unknown/empty */
    int64_t born_ms;              /* writer: when its age for segment.ms began, on the
                                   * monotonic clock (topic__mono_ms) */
    size_t last_index_pos;        /* file position of the last index entry */
    struct index idx, tidx;
    bool writable;                /* the writer's active segment */
    bool may_open;                /* made or opened for appends by this handle: may hold
                                   * its open batch (set before readers see it, kept) */
    uint64_t file_id[2];          /* writer: the .log's device and inode (topic__publish) */
    _Atomic size_t reserved;      /* writer: bytes of the file allocated (<= map_len);
                                   * grows under topic.reserve_lock */
    bool reserve_shut;            /* under reserve_lock: rolled away from, grows no more */
    _Atomic bool reserve_small;   /* set under reserve_lock: a step found the disk short,
                                   * and only what appends write is reserved */
    _Atomic size_t dropped;       /* writer: page tables dropped below this (sync.c) */
    struct segment *next_unsealed; /* see topic.unsealed */
    bool follow;                  /* a reader's view of a segment that may grow */
    uint64_t walked_end;          /* follow: one past the last offset walked */
    _Atomic int tidx_state;       /* time index: 0 unchecked, 1 valid, 2 damaged */
    _Atomic bool loaded;          /* mapped and indexed (lazy for sealed ones) */
    _Atomic bool missing;         /* sealed: its intact batches end before its end offset */
    _Atomic bool settled;         /* follow: rolled away from and walked to its end */
    pthread_mutex_t load_lock;
    _Atomic int refs;             /* the list's, the sealer's, cursors', readers' in flight */
    bool listed;                  /* in t->segs (under its lock): the list holds a ref */
};

#define TOPIC__NO_OPEN SIZE_MAX

/* File name of a segment's part: "<20-digit base><ext>". */
void topic__segment_name(char *buf, size_t cap, uint64_t base, const char *ext);
struct segment *topic__segment_new(uint64_t base);
/* Deletes a segment's three files; a missing one is not an error.  Returns
 * the first other failure, having tried all three. */
int  topic__segment_unlink(topic *t, uint64_t base);
/* Creates a fresh, empty, preallocated active segment. */
int  topic__segment_create(topic *t, uint64_t base, size_t capacity, struct segment **out);
/* The spare segment (segment.c): creates its files under temporary names,
 * with `reserve` bytes of space and the directory synced, unmapped; on
 * failure removes them again. */
int  topic__spare_create(topic *t, size_t capacity, size_t reserve, struct segment **out);
/* Renames the spare's files to segment `base`'s and maps it: from then on
 * it is an active segment like one topic__segment_create() made, whose
 * names need a sync of the directory (sync.c).  On failure the
 * caller frees s, removes what is left with topic__spare_unlink(), and
 * creates the segment the usual way. */
int  topic__spare_adopt(topic *t, struct segment *s, uint64_t base);
/* Removes the spare's files, best effort. */
void topic__spare_unlink(topic *t);
/* True for the name of one of the spare's files. */
bool topic__spare_name(const char *name);
/* Notes whether a sealed segment's batches, which a walk found to end at
 * offset `walked`, fall short of its end offset (the next segment's base):
 * records are missing, and nothing is known of their timestamps. */
void topic__segment_note_missing(struct segment *s, uint64_t walked);
/* Checks time-index entry e against the entry before it, p, and the log
 * between them (recover.c); true when they prove e wrong. */
bool topic__tidx_entry_wrong(const struct segment *s, const struct idx_entry *e,
                             const struct idx_entry *p, size_t limit);
/* Maps a sealed segment on first use and validates (or rebuilds) its index. */
int  topic__segment_load(topic *t, struct segment *s);
/* Undoes a load of s, which nobody may be reading (seglist.c). */
void topic__segment_unload(struct segment *s);
/* What a clean close recorded of its active segment: every byte below
 * `len` was synced, and the records there end at offset `end`.  Or what a
 * writer killed in this boot had written (topic__live_last): the same, and
 * when `cut`, the file was cut short in place at `len` since, and only the
 * bytes below `len` were whole when it died. */
struct seg_record {
    size_t len;
    uint64_t end;
    bool cut;
    uint64_t open_pos1;   /* the killed writer's open batch: its position + 1, or 0 */
    uint64_t chain;       /* and the chain value of its records below len */
};
/* Opens the last segment for appending, scanning it when `scan` is set (see
 * segment.c).  Returns 0, a negative error, or TOPIC__LOST when the segment
 * no longer holds what `vouched` says it did.  Sealing a killed writer's
 * open batch may correct `vouched` by a record (seal_dead_open). */
#define TOPIC__LOST 1
int  topic__segment_open_active(topic *t, struct segment *s, bool scan,
                                struct seg_record *vouched);
/* Unmaps the pages of s's mapping past its first `len` bytes, in place:
 * readers' pointers into the data stay valid. */
void topic__segment_unmap_tail(struct segment *s, size_t len);
/* Writer, under append_lock: makes sure the first `upto` bytes of the active
 * segment's file are allocated on disk, reserving ahead in steps.  Inline
 * for the appends' common case: the space is there already (most often the
 * page preparer's doing), an atomic load. */
int  topic__segment_reserve_more(topic *t, struct segment *s, size_t upto);
static inline int topic__segment_reserve(topic *t, struct segment *s, size_t upto)
{
    if (upto <= atomic_load_explicit(&s->reserved, memory_order_acquire))
        return 0;
    return topic__segment_reserve_more(t, s, upto);
}
/* The page preparer: reserves the file up to `upto` (in steps, as above)
 * unless s was rolled away from, and returns how much of it is allocated;
 * a failure only means less is (the append that needs it reports it). */
size_t topic__segment_reserve_ahead(topic *t, struct segment *s, size_t upto);
/* A roll: stops s's reservation growing and returns its final size. */
size_t topic__segment_reserve_shut(topic *t, struct segment *s);
/* Writer: drops this process's page tables for the whole pages of the
 * mapping below `upto` (already written) when at least `min` bytes have
 * accumulated, so that syncing them needs no per-page TLB shootdown. */
void topic__segment_drop_written(struct segment *s, size_t upto, size_t min);
/* How far a reservation that must reach `upto` goes (a whole step). */
size_t topic__reserve_target(const struct segment *s, size_t reserved, size_t upto);
/* True when the time index can be trusted for seeking (checked once). */
bool topic__segment_tidx_ok(struct segment *s);
int  topic__segment_linked(topic *t, struct segment *s);
int  topic__segment_seal(topic *t, struct segment *s);
void topic__segment_free(struct segment *s);
/* Walks batches from the last index entry (recover.c). */
#define TOPIC__SCAN_VERIFY 1   /* check every checksum and record */
#define TOPIC__SCAN_INDEX  2   /* add index entries for the batches walked */
int  topic__segment_scan(topic *t, struct segment *s, size_t limit, int how,
                         size_t *len, uint64_t *end);
/* Adds index entries for a batch about to be published at pos. */
void topic__segment_index_batch(topic *t, struct segment *s, size_t pos,
                                const struct batch_header *h);
/* The same, when the segment's largest timestamp before the batch was
 * max_ts (an open batch raises it as its records come: append.c). */
void topic__segment_index_batch_after(topic *t, struct segment *s, size_t pos,
                                      const struct batch_header *h, int64_t max_ts);

/* ------------------------------------------------------------------------ */
/* The topic handle (topic.c)                                                 */

/* The list of segments, oldest first (seglist.c). */
struct seglist {
    pthread_rwlock_t lock;        /* readers look up, the writer adds and drops */
    struct segment **v;
    size_t n, cap;
    /* For topic_cursor_seek_time(): cum[i] is the largest timestamp in
     * v[0..i], known for the first cum_n segments, each of them loaded and
     * sealed.  Dropping segments forgets it all (cum_n = 0). */
    int64_t *cum;
    size_t cum_n;
    _Atomic unsigned unloads;     /* segments unloaded by topic__seglist_unload_idle */
};

/*
 * The writer's append lock (lock.c): taken with one exchange, let go with a
 * plain store, which a pthread_mutex_t cannot do.  All zeros is unlocked.
 */
struct topic_lock {
    _Atomic uint32_t held;        /* 1 while a thread holds it; a futex */
    _Atomic uint32_t sleepers;    /* threads that may sleep on `held` */
    /* Sleeps, and those that ended by the clock rather than a wake-up:
     * for the tests (test_threads.c), which hold the second to be rare. */
    _Atomic uint32_t naps, naps_timed_out;
};

void topic__lock_slow(struct topic_lock *l);
void topic__lock_wake(struct topic_lock *l);

static inline void topic__lock(struct topic_lock *l)
{
    if (atomic_exchange_explicit(&l->held, 1, memory_order_acquire) != 0)
        topic__lock_slow(l);
}

/* The load of `sleepers` may be seen before the store: see lock.c for
 * why that only delays a sleeper, and by how much. */
static inline void topic__unlock(struct topic_lock *l)
{
    atomic_store_explicit(&l->held, 0, memory_order_release);
    if (atomic_load_explicit(&l->sleepers, memory_order_relaxed) != 0)
        topic__lock_wake(l);
}

/* A thread in topic__sync(), on the list t->waiters (sync.c). */
struct sync_waiter {
    uint64_t want;                /* its records end here */
    struct sync_waiter *next;
    _Atomic bool covered;         /* set by the syncer that took it off the list */
};

struct topic {
    char *dir;
    int dirfd;
    uint64_t dir_id[2];           /* writer: the directory's device and inode */
    unsigned fork_gen;            /* topic__fork_gen when opened (see topic__forked) */
    int lockfd;                   /* topic.state, flock()ed by the writer */
    struct topic *next_writer;    /* the process's writer handles (state.c) */
    struct topic *next_handle, *prev_handle; /* all its handles (seglist.c) */
    bool listed_handle;           /* on that list, in the process that opened it */
    int flags;
    struct topic_settings cfg;
    struct seglist segs;
    _Atomic uint64_t end;         /* offset the next append gets */
    _Atomic uint64_t start;       /* first offset still stored */

    struct topic_lock append_lock; /* serialises the whole write path */
    struct segment *active;       /* writer only, under append_lock */
    struct open_batch {           /* the active segment's open batch (append.c) */
        uint64_t base;            /* its first offset */
        int64_t first_ts, max_ts;
        uint32_t count;
        int64_t seg_max_ts;       /* the segment's largest timestamp before it */
        uint64_t chain;           /* topic__chain_step over its records so far */
        /* The batch as the writer wrote it, header's place included: the
         * seal computes the checksum from this copy, so that bytes changed
         * in the file meanwhile (by someone else) fail it. */
        uint8_t copy[TOPIC__OPEN_MAX];
    } open;
    int failed;                   /* sticky write error, under append_lock */
    bool failure_told;            /* a call has returned `failed` itself */
    struct zbuf zraw, zout;       /* lz4: records, then compressed; under append_lock */
    void *lz4_state;              /* lz4: the compressor's state; under append_lock */
    bool marked_dirty;            /* state says "not clean" on disk */
    bool made_dir;                /* topic_open() made the directory (undone if it fails) */
    bool locked;                  /* holds the writer lock (flock of lockfd) */
    uint64_t synced_end;          /* records below it are on stable storage */
    bool syncing;                 /* a thread is syncing for everyone */
    struct sync_waiter *waiters;  /* threads in topic__sync, the syncer included */
    _Atomic int durable_inflight; /* threads in an append that will sync */
    _Atomic uint32_t sync_gen;    /* futex: bumped when a sync ends */
    /* Group commit's gathering (sync.c); last_sync_ns under append_lock. */
    _Atomic int durable_peak;     /* durable appenders seen at once lately */
    int64_t last_sync_ns;         /* how long the last fdatasync took */
    int64_t unsynced_since_ms;    /* when the oldest unsynced record came; 0 if none */
    int64_t commits_since_ms;     /* when the oldest unsynced commit came; 0 if none */

    /* Segments rolled away from and not yet sealed, oldest first, linked
     * through next_unsealed; the flusher seals them (sync.c). */
    struct segment *unsealed, **unsealed_tail;
    int nunsealed;                /* how many; under append_lock */
    pthread_mutex_t seal_lock;    /* one sealer at a time; taken before append_lock */
    pthread_mutex_t drop_lock;    /* one remover of old segments at a time (retention.c);
                                     taken with no other lock held */

    /* The writer's background threads (background.c); under append_lock. */
    pthread_t flusher, preparer;
    bool flusher_running, preparer_running, bg_stopping;
    bool preparer_wanted;         /* start the preparer at the first append */
    _Atomic uint32_t flush_seq;   /* wakes the flusher (topic__flush_signal): a
                                   * segment to seal, or stop; a futex */
    bool flusher_asleep;          /* it sleeps on flush_seq (topic__flush_sleep) */
    const struct segment *pf_asked_seg; /* the segment the appender last asked the
                                         * preparer for */
    size_t pf_next;               /* appends up to here in it need not ask again */
    size_t pf_ahead;              /* how far past the appends it prepares */
    int64_t pf_asked_ms;          /* when it last asked (monotonic) */
    uint64_t pf_asks;             /* how many times it asked, for the tests */
    /* The page preparer's own state, under prep_lock (after append_lock). */
    pthread_mutex_t prep_lock;
    pthread_cond_t prep_cond;     /* wakes the preparer: pages to prepare, or stop */
    pthread_cond_t prep_idle;     /* the preparer has let go of its segment */
    bool prep_ok, prep_stopping;
    const struct segment *prep_cur; /* the segment it is touching right now */
    struct segment *pf_seg;       /* segment whose pages it prepares */
    size_t pf_target, pf_done;    /* prepare up to pf_target; done up to pf_done */
    size_t pf_ready_lo, pf_ready_hi; /* the run of pf_seg's pages it has finished */
    size_t pf_leap;               /* how far past the appends its next step may jump */
    pthread_mutex_t reserve_lock; /* grows a segment's file (segment.c); taken last */
    /* The next segment's files, made ahead by the flusher (segment.c);
     * spare, spare_wanted and spare_refused under append_lock.  A spare the
     * flusher could not make, or that a full disk took back (append.c), is
     * not asked for again until the next roll (spare_refused). */
    struct segment *spare;
    bool spare_wanted, spare_refused;
    /* Rolls that renamed the spare's files (dir_gen, under append_lock),
     * and how many of them the directory's last sync covered (dir_synced,
     * under seal_lock); see sync.c. */
    _Atomic uint64_t dir_gen;
    uint64_t dir_synced;

    /* Mapping of topic.state.  A reader that found the file missing or not
     * yet written (a writer creating the topic) reads an anonymous page
     * instead, keeps state_pending set and attaches to the file at a later
     * refresh (topic__state_attach); the pointer then changes under other
     * threads, so readers load it with topic__state_page(). */
    struct state_page *state;
    struct state_page *state_spare; /* the anonymous page, after an attach */
    _Atomic bool state_pending;
    /* A reader: why its last refresh could not take in the writer's new
     * segments (-EMFILE, -ENOMEM, ...), or 0.  Reads at its end offset
     * report it instead of TOPIC_END, until a refresh succeeds. */
    _Atomic int follow_err;

    struct wait_page *wait;       /* topic.wait, or NULL: poll (wait.c) */
    unsigned wake_misses;         /* appends in a row whose wake woke nobody; append_lock */

    /* Consumer groups this handle has used (offsets.c). */
    pthread_mutex_t group_lock;
    struct group **groups;
    size_t ngroups, cap_groups;
    uint64_t group_tick;          /* stamps each use, for evicting the least recent */
    bool groups_synced;           /* groups/ and its entries made durable */
};

/* ------------------------------------------------------------------------ */
/* The list of segments (seglist.c)                                           */

void topic__seglist_init(topic *t);
/* Frees the list and every segment in it (at close). */
void topic__seglist_free(topic *t);
/* Appends s, which the list then holds a reference to. */
int  topic__seglist_push(topic *t, struct segment *s);
/* The segment holding `offset` (the last one whose base is <= offset), with a
 * reference the caller gives back with topic__segment_put(); NULL if the
 * offset precedes every segment. */
struct segment *topic__segment_get(topic *t, uint64_t offset);
/* The segment after s, referenced, or NULL. */
struct segment *topic__segment_next(topic *t, const struct segment *s);
void topic__segment_ref(struct segment *s);
void topic__segment_put(struct segment *s);
/* The oldest and newest segments (no reference: the writer's own use). */
struct segment *topic__seglist_first(topic *t);
/* Where a search for the first record with a timestamp >= ts can start:
 * the first segment whose prefix maximum says so, or the first segment
 * whose maximum is not known yet.  Returns a reference, or NULL. */
struct segment *topic__seglist_time_start(topic *t, int64_t ts);
/* Records the largest timestamp of loaded, sealed segment s, when every
 * segment before it is recorded already. */
void topic__seglist_time_note(topic *t, const struct segment *s);
struct segment *topic__seglist_last(topic *t);
/* Removes the segments that end at or below `start`, never the last one;
 * with `unlink`, deletes their files.  Returns how many went. */
int  topic__seglist_drop_before(topic *t, uint64_t start, bool unlink);
/* Unloads the loaded segments that nobody reads and that no longer change;
 * returns how many (seglist.c). */
int  topic__seglist_unload_idle(topic *t);
/* The same for the segments whose bases lie below `below`. */
int  topic__seglist_unload_below(topic *t, uint64_t below);
/* How many segments topic__seglist_unload_idle has unloaded so far. */
unsigned topic__seglist_unloads(topic *t);
/* After a mapping was refused (-ENOMEM, topic__maps_refused): gives back
 * idle segments, and says whether another try may succeed because this
 * call or another thread gave some back since `since` (the count read
 * before the failed try).  Callers try at most TOPIC__RECLAIM_TRIES times. */
bool topic__seglist_reclaim(topic *t, unsigned since);
/* The process's open handles, whose idle segments topic__seglist_reclaim
 * gives back too.  A child of fork() starts with none. */
void topic__handles_add(topic *t);
void topic__handles_remove(topic *t);
void topic__handles_prepare(void);
void topic__handles_parent(void);
void topic__handles_child(void);
/* Gives back the idle segments of every handle but `self` (which may be
 * NULL); returns how many. */
int  topic__handles_unload_idle(topic *self);
#define TOPIC__RECLAIM_TRIES 32
/* The wall clock in milliseconds since the epoch, for timestamps; the
 * monotonic clock in milliseconds, for durations (topic.c). */
int64_t topic__now_ms(void);
int64_t topic__mono_ms(void);
/* Both at once: returns the wall clock, stores the monotonic one. */
int64_t topic__clock_ms(int64_t *mono_ms);
/* Counts fork()s, in the child (topic.c).  A writer handle belongs to the
 * process that opened it: in a child its threads do not exist and its locks
 * may be held for ever, and its writes would fight the parent's. */
extern _Atomic unsigned topic__fork_gen;
static inline bool topic__forked(const topic *t)
{
    return atomic_load_explicit(&topic__fork_gen, memory_order_relaxed) != t->fork_gen;
}
/* pthread_atfork handlers (state.c): in the child, the descriptors that
 * hold the writer locks of the parent's handles are closed, so that the lock
 * goes when the parent closes the topic or dies, not when its children end. */
void topic__writers_prepare(void);
void topic__writers_parent(void);
void topic__writers_child(void);

/* ------------------------------------------------------------------------ */
/* Durability (sync.c)                                                        */

/* Makes every record appended so far durable; call without append_lock. */
int  topic__sync(topic *t);
/* The error of the failed write or sync that made the handle refuse
 * writes (sticky), never TOPIC_EFAILED.  Call without append_lock. */
int  topic__failure(topic *t);
/* What topic_sync() and topic_close() return for rc, their own result: a
 * TOPIC_EFAILED becomes the failure itself if no call has returned it yet
 * (the background thread's failures reach no caller otherwise), and a
 * return of the failure marks it told.  Call without append_lock. */
int  topic__tell_failure(topic *t, int rc);
/* Seals the segments rolled away from; call without append_lock. */
int  topic__seal_pending(topic *t);
/* Seals the oldest such segment only: 1 if it did, 0 if none waited. */
int  topic__seal_one(topic *t);
void topic__mark_lost_end(topic *t);

/* ------------------------------------------------------------------------ */
/* The writer's background thread (background.c)                              */

/* Locks, conditions and lists of a handle: set up for every handle. */
void topic__bg_init(topic *t);
void topic__bg_destroy(topic *t);
int  topic__bg_start(topic *t);
/* Under append_lock: wakes the flusher to look at its work (lock.c). */
void topic__flush_signal(topic *t);
/* The flusher, under append_lock: lets go of it and sleeps until a signal
 * or the CLOCK_MONOTONIC deadline (NULL: none), then takes it again. */
void topic__flush_sleep(topic *t, const struct timespec *deadline);
/* Starts "topic-flush" if it is not running yet; under append_lock.  Returns
 * 0, or the negative errno of pthread_create (-EAGAIN). */
int  topic__bg_flusher(topic *t);
void topic__bg_stop(topic *t);
/* Under append_lock: s was rolled away from; the flusher will seal it. */
void topic__bg_seal_later(topic *t, struct segment *s);
/* Active segments of at least this many bytes get a spare made ahead of
 * their roll (64 MiB).  A variable rather than a constant only so that
 * tests linked with the static library can give small segments spares too,
 * and put the spare through their crash and power-loss runs; set it before
 * a writer opens. */
extern size_t topic__spare_min;
/* Under append_lock (or with the threads stopped): removes the spare, if one
 * is made, giving its space back to the file system. */
void topic__bg_drop_spare(topic *t);
/* Under append_lock: the active segment s is filled up to `upto`; mono_ms
 * is the monotonic clock's reading for this append. */
void topic__bg_prepare_more(topic *t, struct segment *s, size_t upto, int64_t mono_ms);
/* Writer, under append_lock, before writing below `upto`: asks the preparer
 * for more of segment s when the appends have used up half of the distance
 * it was last asked to keep ahead.  Most appends only compare. */
static inline void topic__bg_prepare(topic *t, struct segment *s, size_t upto, int64_t mono_ms)
{
    if (s == t->pf_asked_seg && upto <= t->pf_next)
        return;
    topic__bg_prepare_more(t, s, upto, mono_ms);
}
/* Under append_lock, before writing bytes [from, upto) of s: true when the
 * preparer has set up every page they lie on.  When it has not, the
 * appender is about to make those pages itself (append.c's large batches),
 * and the preparer's next step jumps half its distance past the appends
 * rather than follow them. */
bool topic__bg_ready(topic *t, const struct segment *s, size_t from, size_t upto);
/* Under append_lock: prepare no more of the segment being prepared. */
void topic__bg_release(topic *t);
/* Returns once the preparer is not touching s, which it has been told to
 * let go of (topic__bg_release), so that s may be shrunk. */
void topic__bg_wait_released(topic *t, const struct segment *s);

/* ------------------------------------------------------------------------ */
/* Waiting (wait.c)                                                           */

int  topic__wait_open(topic *t);
void topic__wait_close(topic *t);
/* The shared page of topic.wait (wait.c). */
struct wait_page {
    uint32_t wake;
    uint32_t waiters;             /* epoch << WAITERS_BITS | count */
};
#define WAITERS_BITS 20
#define WAITERS_MASK ((1u << WAITERS_BITS) - 1)

/* Wakes the sleepers that `waiters` (a value of wait_page.waiters) counts. */
void topic__wait_wake(topic *t, uint32_t waiters);

/* Writer, after publishing new records: wakes whoever waits for them.  An
 * append with nobody waiting pays a fence and a load, inline. */
static inline void topic__wait_notify(topic *t)
{
    struct wait_page *w = t->wait;
    if (w == NULL)
        return;
    /* Pairs with the waiter's registration: see the comment at the top of
     * wait.c. */
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
    uint32_t cur = __atomic_load_n(&w->waiters, __ATOMIC_RELAXED);
    if ((cur & WAITERS_MASK) != 0)
        topic__wait_wake(t, cur);
}

/* ------------------------------------------------------------------------ */
/* Consumer groups (offsets.c)                                                */

/* Syncs the groups committed to since their last sync. */
int  topic__groups_sync(topic *t);
void topic__groups_close(topic *t);

/* ------------------------------------------------------------------------ */
/* Retention (retention.c)                                                    */

/* Removes the segments wholly below the start offset; call without locks. */
int  topic__drop_gone(topic *t);
/* Applies retention.bytes and retention.ms; call without locks. */
int  topic__apply_retention(topic *t);
/* Whether either retention setting is on. */
static inline bool topic__has_retention(const topic *t)
{
    return t->cfg.v[TOPIC_K_RETENTION_BYTES] >= 0 || t->cfg.v[TOPIC_K_RETENTION_MS] >= 0;
}

/* ------------------------------------------------------------------------ */
/* Following a writer (follow.c)                                              */

/* Writer, under append_lock: seals the active segment's open batch, if it
 * has one (append.c). */
void topic__open_seal(topic *t);
/* Writer, under append_lock: publishes the end of the log to readers. */
void topic__publish(topic *t);
/* Writer, once at open: records in the live area the boot it runs in. */
void topic__publish_boot(topic *t);
/* Reader: learns about new records, if there are any. */
void topic__refresh(topic *t);
/* The start offset the writer published: the larger of the live area's
 * and topic.state's, whose check costs a hash.  Readers look at every read
 * and every record, so that deleted records are gone for them at once;
 * topic__live_start_unmoved tells most of those looks the answer first. */
uint64_t topic__live_start(topic *t);
/* Whether topic_start_offset(t) of a reader is t->start as it stands:
 * neither the live area nor topic.state holds a start above it.  The
 * cursor's per-record check, without the stored start's hash. */
bool topic__live_start_unmoved(topic *t);
int  topic__follow_open_last(topic *t, struct segment *s);
int  topic__follow_load(topic *t, struct segment *s);
/* The active segment a live writer published, UINT64_MAX if none; read it
 * before listing the segments, and keep the listing's bases up to it
 * (topic__follow_trim: the listing may miss segments created during it). */
uint64_t topic__follow_published_base(topic *t);
size_t topic__follow_trim(const uint64_t *bases, size_t n, uint64_t published);
/* Writer, at open: what the last writer of this boot published about its
 * active segment, when it was this directory's (same_boot), and what became
 * of that segment's .log since (fate: see follow.c). */
enum { TOPIC__LIVE_UNKNOWN, TOPIC__LIVE_SAME, TOPIC__LIVE_REPLACED, TOPIC__LIVE_CUT };
struct live_last {
    bool same_boot;
    int fate;
    uint64_t base, end;
    size_t len, size;   /* published length; the file's size (SAME, CUT) */
    uint64_t open_pos1, chain;   /* its open batch (append.c): position + 1, or 0 */
};
int topic__live_last(topic *t, struct live_last *out);
int  topic__list_segments(topic *t, uint64_t **out, size_t *count);

/* ------------------------------------------------------------------------ */
/* State file (state.c)                                                       */

/*
 * topic.state: one page.  The first 64 bytes are the clean-shutdown snapshot,
 * written and synced by topic_close() and protected by a checksum; a writer
 * clears `clean` (durably) before its first append.
 */
struct state_page {
    uint32_t magic;
    uint32_t version;
    uint64_t checksum;            /* XXH3 of bytes 16..63 */
    uint32_t clean;
    uint32_t reserved0;
    uint64_t active_base;
    uint64_t active_len;
    uint64_t end_offset;
    uint64_t start_offset;
    uint64_t unsealed_from;       /* segments below this base are sealed and synced */
};

#define TOPIC__STATE_MAGIC   0x54535054u   /* "TPST" */
#define TOPIC__STATE_VERSION 1u
#define TOPIC__STATE_SIZE    4096

int  topic__state_open(topic *t, bool create);
bool topic__state_clean(const topic *t, struct state_page *snap);
/* Whether the record is not clean only because a writer cleared the flag
 * after a clean open; snap is then that clean record. */
bool topic__state_clean_but_flag(const topic *t, struct state_page *snap);
int  topic__state_mark(topic *t, bool clean);
/* Whether topic.state already holds the clean-shutdown record that
 * topic__state_mark(t, true) would write now, byte for byte. */
bool topic__state_current(const topic *t);
/* The start offset stored in p, or 0 when its check fails (damage): see
 * state.c.  topic__state_store_start stores one with its check (the
 * caller syncs). */
uint64_t topic__state_start(const struct state_page *p);
void topic__state_store_start(topic *t, uint64_t start);
/* Records, durably, that every segment below base `below` is sealed. */
int  topic__state_sealed(topic *t, uint64_t below);
void topic__state_close(topic *t);
/* A reader's late attach to topic.state (see struct topic); true once done. */
bool topic__state_attach(topic *t);
static inline struct state_page *topic__state_page(const topic *t)
{
    return __atomic_load_n(&t->state, __ATOMIC_ACQUIRE);
}

/* ------------------------------------------------------------------------ */
/* Finding and decoding records (read.c)                                      */

/* A located batch: where it is and what its header says. */
struct batch_ref {
    struct segment *seg;
    size_t pos;
    struct batch_header h;
};

/* Finds the batch holding `offset` and verifies its checksum; on success
 * ref->seg holds a reference the caller gives back (topic__segment_put). */
int topic__locate(topic *t, uint64_t offset, struct batch_ref *ref);
/* Where in loaded segment s, below `limit`, the batch holding `offset`
 * begins, and its first offset: an index search and a walk of at most an
 * interval of headers, no checksum verified. */
/* The open batch at pos in s, as read.c explains. */
bool topic__open_at(const struct segment *s, size_t pos, size_t avail, uint64_t end,
                    struct batch_header *h);
int topic__segment_batch_at(const struct segment *s, uint64_t offset, size_t limit, size_t *pos,
                            uint64_t *base);

#endif /* TOPIC_INTERNAL_H */
