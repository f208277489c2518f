/*
 * topic.state: the writer lock and the clean-shutdown record.
 *
 * The writer holds flock(LOCK_EX) on this file for as long as its handle is
 * open, so a second writer in any process (or a second writer handle in this
 * one: flock locks belong to open file descriptions) gets TOPIC_ELOCKED.
 *
 *   offset size field
 *   0      4    magic 0x54535054 ("TPST")
 *   4      4    version (1)
 *   8      8    checksum: XXH3-64 of bytes [16, 64)
 *   16     4    clean: 1 after topic_close() synced everything, else 0
 *   20     4    reserved
 *   24     8    base offset of the active (last) segment
 *   32     8    its length in bytes, which is also its file size when clean
 *   40     8    end offset
 *   48     8    start offset
 *   56     8    unsealed_from: every segment whose base is below it was sealed
 *                (cut to its data and synced); only those at or above it
 *                can hold a torn tail after a crash.  Written alone (an
 *                aligned 8-byte store, one sector) after each seal.
 *   64     56   the live area: where the writer's log ends, and the boot it
 *                runs in, for readers in other processes (follow.c)
 *   120    8    start_check: XXH3-64 of the start offset's 8 bytes, seeded
 *                with the magic; 0 in files of releases before it (and
 *                while the start offset has never moved)
 *   128    24   which directory and active .log the live area describes,
 *                for the next writer of the same boot (follow.c)
 *   152    16   the active segment's open batch and the chain value of its
 *                records, for readers and the next writer (follow.c)
 *   168    ...  zero up to 4096 bytes
 *
 * The record is trusted only when the checksum matches, clean is 1 and the
 * active segment's file has exactly the recorded size; anything else means
 * "not clean" and costs a scan of the active segment, never wrong data.
 */
#include <fcntl.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <unistd.h>
#include <xxhash.h>

#include "internal.h"

/* The page is written as a C struct: its layout is the little-endian one
 * documented above only on little-endian hosts, the only ones supported. */
_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__,
               "topic.state and groups/ files are little-endian structs");
_Static_assert(sizeof(struct state_page) == 64, "the clean-shutdown record is 64 bytes");

static uint64_t state_sum(const struct state_page *p)
{
    return XXH3_64bits((const uint8_t *)p + 16, sizeof *p - 16);
}

/*
 * The start offset is stored on its own while the record is not clean (by
 * topic_delete_before() and retention), where the record's checksum does
 * not cover it, and it decides which segment files an open deletes: one
 * flipped bit in it deleted every segment of a topic.  So it has a check of
 * its own at byte 120, stored with it, in the same sector.  A value whose
 * check fails is not used: the start offset is then the first segment's
 * base, which deletes nothing (records deleted from inside that segment
 * can be read again).  Files of releases before the check have 0 there,
 * and their value is used as it is.
 */
#define STATE_START_CHECK 120

static uint64_t start_check(uint64_t start)
{
    uint64_t c = XXH3_64bits_withSeed(&start, sizeof start, TOPIC__STATE_MAGIC);
    return c ? c : 1;   /* 0 means "no check" */
}

static uint64_t *start_check_field(const struct state_page *p)
{
    return (uint64_t *)(void *)((uint8_t *)p + STATE_START_CHECK);
}

uint64_t topic__state_start(const struct state_page *p)
{
    uint64_t start = __atomic_load_n(&p->start_offset, __ATOMIC_ACQUIRE);
    uint64_t check = __atomic_load_n(start_check_field(p), __ATOMIC_ACQUIRE);
    if (check == 0 || check == start_check(start))
        return start;
    /* Read while a writer stored one and not yet the other: the value
     * stored first is the new offset, so read the pair again. */
    start = __atomic_load_n(&p->start_offset, __ATOMIC_ACQUIRE);
    check = __atomic_load_n(start_check_field(p), __ATOMIC_ACQUIRE);
    return check == 0 || check == start_check(start) ? start : 0;
}

void topic__state_store_start(topic *t, uint64_t start)
{
    __atomic_store_n(start_check_field(t->state), 0, __ATOMIC_RELAXED);
    __atomic_store_n(&t->state->start_offset, start, __ATOMIC_RELEASE);
    __atomic_store_n(start_check_field(t->state), start_check(start), __ATOMIC_RELEASE);
}

/* A reader of a topic whose state file is gone or unfinished (the writer
 * makes a new one) reads it as after a crash: nothing is known to be clean,
 * and no writer has published anything.  It looks for the file again at
 * each refresh, until topic__state_attach() finds it written: without
 * that, a reader opened while a writer was creating the topic would never
 * learn of the writer's records. */
static int anon_state(topic *t)
{
    void *p;
    TRY(topic__mmap(TOPIC__STATE_SIZE, PROT_READ | PROT_WRITE, -1, &p));
    t->state = p;
    t->state->magic = TOPIC__STATE_MAGIC;
    t->state->version = TOPIC__STATE_VERSION;
    atomic_store_explicit(&t->state_pending, true, memory_order_release);
    return 0;
}

/* Called by a reader with state_pending set, under append_lock.  Maps the
 * file once a writer has given it its size and its header; until then (or
 * on any error, or a version this library does not read) the reader goes
 * on with its anonymous page and tries again at its next refresh.  The
 * anonymous page stays mapped until close: other threads may still be
 * reading it. */
bool topic__state_attach(topic *t)
{
    int fd = topic__openat(t->dirfd, "topic.state", O_RDONLY, 0);
    if (fd < 0)
        return false;
    size_t size;
    uint32_t head[2] = { 0, 0 };   /* magic, version */
    void *p = NULL;
    if (topic__fsize(fd, &size) < 0 || size < TOPIC__STATE_SIZE ||
        topic__pread_all(fd, head, sizeof head, 0) < 0 || head[0] != TOPIC__STATE_MAGIC ||
        head[1] > TOPIC__STATE_VERSION || topic__mmap(TOPIC__STATE_SIZE, PROT_READ, fd, &p) < 0) {
        topic__close(fd);
        return false;
    }
    t->lockfd = fd;
    t->state_spare = t->state;
    __atomic_store_n(&t->state, (struct state_page *)p, __ATOMIC_RELEASE);
    return true;
}

/*
 * The writer handles of this process, for fork(): an flock() belongs to the
 * open file description, which a child shares, so a child that lived on
 * (a worker, a daemon that never calls exec) kept the parent's topic locked
 * after the parent closed it or died.  The child lets go of its references
 * at once: the descriptor, and the shared mapping of topic.state, which holds
 * the open file description too; a private copy of the page takes the
 * mapping's place.  The child never writes through an inherited handle
 * (topic__forked).
 */
static pthread_mutex_t g_writers_lock = PTHREAD_MUTEX_INITIALIZER;
static topic *g_writers;

void topic__writers_prepare(void)
{
    pthread_mutex_lock(&g_writers_lock);
}

void topic__writers_parent(void)
{
    pthread_mutex_unlock(&g_writers_lock);
}

void topic__writers_child(void)
{
    static uint8_t page[TOPIC__STATE_SIZE];   /* not the stack: the forking thread's may be small */
    for (topic *t = g_writers; t != NULL; t = t->next_writer) {
        if (t->state != NULL) {
            memcpy(page, t->state, sizeof page);
            if (mmap(t->state, sizeof page, PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0) == t->state)
                memcpy(t->state, page, sizeof page);
        }
        (void)close(t->lockfd);   /* the child's copy; the parent keeps its lock */
        t->lockfd = -1;
    }
    g_writers = NULL;
    pthread_mutex_unlock(&g_writers_lock);
}

static void writers_add(topic *t)
{
    pthread_mutex_lock(&g_writers_lock);
    t->next_writer = g_writers;
    g_writers = t;
    pthread_mutex_unlock(&g_writers_lock);
}

static void writers_remove(topic *t)
{
    pthread_mutex_lock(&g_writers_lock);
    for (topic **p = &g_writers; *p != NULL; p = &(*p)->next_writer)
        if (*p == t) {
            *p = t->next_writer;
            break;
        }
    pthread_mutex_unlock(&g_writers_lock);
}

int topic__state_open(topic *t, bool create)
{
    bool writer = !(t->flags & TOPIC_RDONLY);
    int fd = topic__openat(t->dirfd, "topic.state",
                           writer ? O_RDWR | (create ? O_CREAT : 0) : O_RDONLY, TOPIC__FILE_MODE);
    if (fd == -ENOENT && !writer)
        return anon_state(t);
    if (fd < 0)
        return fd;
    t->lockfd = fd;
    if (writer) {
        int rc = topic__flock(fd, LOCK_EX | LOCK_NB);
        if (rc == -EWOULDBLOCK)
            return TOPIC_ELOCKED;
        TRY(rc);
        t->locked = true;
        writers_add(t);
    }
    size_t size;
    uint32_t magic = 0;
    TRY(topic__fsize(fd, &size));
    if (size >= TOPIC__STATE_SIZE)
        TRY(topic__pread_all(fd, &magic, sizeof magic, 0));
    /* Short, or still without its magic: a creation that did not finish
     * (the first writer died or failed in the middle).  It held nothing. */
    if (magic == 0 && size <= TOPIC__STATE_SIZE) {
        if (!writer) {
            topic__close(fd);
            t->lockfd = -1;
            return anon_state(t);
        }
        struct state_page init = { .magic = TOPIC__STATE_MAGIC,
                                   .version = TOPIC__STATE_VERSION };
        /* Allocated, not extended sparsely: its page is stored to through
         * a mapping, where a full disk would be SIGBUS (os.c, fill_zeros). */
        TRY(topic__fallocate_range(fd, 0, TOPIC__STATE_SIZE));
        TRY(topic__pwrite_all(fd, &init, sizeof init, 0));
        TRY(topic__fsync(fd));
        TRY(topic__fsync(t->dirfd));
        size = TOPIC__STATE_SIZE;
    }
    if (size < TOPIC__STATE_SIZE)
        return TOPIC_ECORRUPT;
    void *p;
    TRY(topic__mmap(TOPIC__STATE_SIZE, writer ? PROT_READ | PROT_WRITE : PROT_READ, fd, &p));
    t->state = p;
    if (t->state->magic != TOPIC__STATE_MAGIC)
        return TOPIC_ECORRUPT;
    if (t->state->version > TOPIC__STATE_VERSION)
        return TOPIC_EVERSION;
    return 0;
}

static bool record_whole(const struct state_page *snap)
{
    return snap->checksum == state_sum(snap) && snap->end_offset >= snap->active_base &&
           snap->start_offset <= snap->end_offset;
}

bool topic__state_clean(const topic *t, struct state_page *snap)
{
    memcpy(snap, topic__state_page(t), sizeof *snap);
    return snap->clean == 1 && record_whole(snap);
}

/*
 * A writer's first append after a clean open clears the flag alone (see
 * topic__state_mark), so until it seals a segment or moves the start
 * offset, the page still holds the last clean close's record: the rest of
 * it checks out with the flag set back.  Every offset below that record's
 * end offset was handed out and synced by that close.
 */
bool topic__state_clean_but_flag(const topic *t, struct state_page *snap)
{
    memcpy(snap, topic__state_page(t), sizeof *snap);
    if (snap->clean != 0)
        return false;
    snap->clean = 1;
    return record_whole(snap);
}

/*
 * Writes the clean-shutdown record (clean) or clears it (before the first
 * write after open), and syncs it either way: a "clean" record that outlived
 * newer synced appends would hide them from the next open.
 */
/* The clean-shutdown record a close writes now: at close, with every
 * segment sealed and the threads stopped. */
static void clean_record(const topic *t, struct state_page *snap)
{
    memcpy(snap, t->state, sizeof *snap);
    snap->clean = 1;
    snap->active_base = t->active->base;
    snap->active_len = atomic_load(&t->active->len);
    snap->end_offset = atomic_load(&t->end);
    snap->start_offset = atomic_load(&t->start);
    snap->unsealed_from = t->active->base;
    snap->checksum = state_sum(snap);
}

bool topic__state_current(const topic *t)
{
    struct state_page snap;
    clean_record(t, &snap);
    return memcmp(&snap, t->state, sizeof snap) == 0 &&
           *start_check_field(t->state) == start_check(snap.start_offset);
}

int topic__state_mark(topic *t, bool clean)
{
    struct state_page *p = t->state;
    if (clean) {
        struct state_page snap;
        clean_record(t, &snap);
        memcpy(p, &snap, sizeof snap);
        topic__state_store_start(t, snap.start_offset);   /* its check too */
    } else {
        /* Only the flag: the sealer may be writing unsealed_from. */
        __atomic_store_n(&p->clean, 0, __ATOMIC_RELAXED);
    }
    TRY(topic__fdatasync(t->lockfd));
    t->marked_dirty = !clean;
    return 0;
}

/* Called by the sealer without append_lock.  It writes only its own field
 * and leaves the checksum alone: a writer with a segment to seal has
 * already cleared `clean`, so the checksum means nothing until close. */
int topic__state_sealed(topic *t, uint64_t below)
{
    if (__atomic_load_n(&t->state->unsealed_from, __ATOMIC_RELAXED) >= below)
        return 0;
    __atomic_store_n(&t->state->unsealed_from, below, __ATOMIC_RELAXED);
    return topic__fdatasync(t->lockfd);
}

void topic__state_close(topic *t)
{
    topic__munmap(t->state, TOPIC__STATE_SIZE);
    t->state = NULL;
    topic__munmap(t->state_spare, TOPIC__STATE_SIZE);
    t->state_spare = NULL;
    if (!(t->flags & TOPIC_RDONLY) && t->lockfd >= 0)
        writers_remove(t);
    /* Closing the descriptor would release the lock only with the open
     * file description's last reference, and a child forked a moment ago
     * holds some until its fork handler runs (or for good, if it was made
     * with a raw clone() that runs no handlers): the next writer would be
     * told TOPIC_ELOCKED by a topic nobody has open.  The lock is this
     * handle's to release. */
    if (t->locked && t->lockfd >= 0)
        (void)topic__flock(t->lockfd, LOCK_UN);
    t->locked = false;
    topic__close(t->lockfd);
    t->lockfd = -1;
}
