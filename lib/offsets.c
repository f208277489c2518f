/*
 * Consumer groups' committed positions.
 *
 * Each group has a file "groups/<name>" of one page, mapped shared:
 *
 *   offset size field
 *   0      4    magic 0x4f475054 ("TPGO")
 *   4      4    version (1)
 *   8      32   slot A: u64 sequence, u64 offset, i64 time (ms), u64 checksum
 *   40     32   slot B
 *
 * The checksum is XXH3-64 of the slot's first 24 bytes.  A commit writes the
 * slot that does not hold the newest valid value, with the next sequence
 * number, checksum last.  After any crash at least one slot is whole: the
 * position reads back as the old value or the new one, never a mixture,
 * because a torn slot fails its checksum and the other slot still holds the
 * previous value.  A commit is a copy into the page cache (it survives the
 * process at once); it reaches the disk under the topic's flush settings,
 * topic_sync() and topic_close().
 *
 * Groups are files beside the log rather than records in it, so that a
 * consumer process with a TOPIC_RDONLY handle can commit its own position
 * while the one writer keeps the log to itself.
 */
#include <dirent.h>
#include <sched.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <xxhash.h>

#include "internal.h"

#define GROUP_MAGIC   0x4f475054u
#define GROUP_VERSION 1u
#define GROUP_FILE    4096

_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "group files are little-endian structs");
#define GROUP_NAME_MAX 128

struct slot {
    uint64_t seq, offset;
    int64_t time_ms;
    uint64_t sum;
};

struct group_file {
    uint32_t magic, version;
    struct slot slot[2];
};

struct group {
    char name[GROUP_NAME_MAX + 1];
    int fd;
    struct group_file *map;
    bool dirty;               /* committed since its last sync */
    bool readonly;            /* mapped for lookups only */
    int64_t synced_ms;
    uint64_t used;            /* t->group_tick at its last use */
};

/*
 * A handle keeps the groups it uses open (a descriptor and a mapping
 * each), but no more than this many: a server that looked up thousands of
 * groups through one handle used to keep thousands of descriptors, until
 * opening anything else failed with EMFILE.  Past it, the least recently
 * used group is synced if it must be, and closed.
 */
#define GROUPS_KEPT 64

static bool valid_name(const char *name)
{
    size_t n = name ? strlen(name) : 0;
    if (n == 0 || n > GROUP_NAME_MAX || name[0] == '.')
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = name[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-'))
            return false;
    }
    return true;
}

static uint64_t slot_sum(const struct slot *s)
{
    struct slot copy = *s;
    return XXH3_64bits(&copy, offsetof(struct slot, sum));
}

static void load_slots(const struct group_file *f, struct slot out[2])
{
    const uint64_t *w = (const uint64_t *)(const void *)f->slot;
    uint64_t *o = (uint64_t *)(void *)out;
    for (size_t i = 0; i < sizeof(struct slot) * 2 / sizeof(uint64_t); i++)
        o[i] = __atomic_load_n(&w[i], __ATOMIC_SEQ_CST);   /* see write_slot */
}

static bool slot_whole(const struct slot *s)
{
    return s->seq != 0 && s->sum == slot_sum(s);
}

/* The newest whole slot of a copy of both: its index with a copy in *out,
 * or -ENOENT when neither is whole. */
static int newest_of(const struct slot b[2], struct slot *out)
{
    bool va = slot_whole(&b[0]), vb = slot_whole(&b[1]);
    if (!va && !vb)
        return -ENOENT;
    int i = va && vb ? (b[0].seq >= b[1].seq ? 0 : 1) : va ? 0 : 1;
    *out = b[i];
    return i;
}

/*
 * The newest whole slot of a group's file: its index (0 or 1) with a copy
 * in *out, or -ENOENT when neither slot is whole.  That is what a power
 * loss during the group's first commits can leave, in any mixture of old
 * and new bytes, so it cannot be told from damage to the slots: both read
 * as a group that has no position.
 *
 * Other handles, threads and processes may be committing to the file at
 * this moment.  A commit rewrites one slot in place, and a fast committer
 * rewrites both in turn while a reader copies them, so a single copy may
 * find both slots half written, or an old value beside a half-written one
 * when a newer one was already committed.  Two copies in a row that agree
 * are a snapshot of one moment: the reader copies until it has one (a
 * sequence number never repeats, so equal copies cannot straddle a commit).
 * Damage that nobody is rewriting agrees with itself at once.  A caller
 * that can do with one copy passes settled = false.
 */
static int read_slot(const struct group_file *f, bool settled, struct slot *out)
{
    struct slot a[2], b[2];
    load_slots(f, b);
    /* The bound: a snapshot that never settles is used as it is. */
    for (int tries = 1; settled && tries < 100000; tries++) {
        load_slots(f, a);
        if (memcmp(a, b, sizeof a) == 0)
            break;
        memcpy(b, a, sizeof b);
        if (tries % 64 == 0)
            sched_yield();   /* let a committer on this CPU finish its slot */
    }
    return newest_of(b, out);
}

/* Writes slot i with its checksum last, so that a reader in another
 * process that finds the checksum of the new value finds the value.
 * That store is sequentially consistent, as load_slots' loads are, so a
 * commit's check after writing (commit_slot) reads the slots only once its
 * own stores are visible to every other committer: read from its own store
 * buffer, a slot could look whole to it while another commit's check saw
 * only that commit's value, and both would leave it torn. */
static void write_slot(struct group_file *f, int i, const struct slot *s)
{
    struct slot *d = &f->slot[i];
    __atomic_store_n(&d->seq, s->seq, __ATOMIC_RELAXED);
    __atomic_store_n(&d->offset, s->offset, __ATOMIC_RELAXED);
    __atomic_store_n(&d->time_ms, s->time_ms, __ATOMIC_RELAXED);
    __atomic_store_n(&d->sum, s->sum, __ATOMIC_SEQ_CST);
}

/*
 * Writes a new position into the slot that does not hold the newest one.
 * One copy of the slots is enough to choose: a commit that races another
 * commit to the group may lose to it either way ("one of their values").
 *
 * What it must not do is leave neither value.  Two handles (two processes,
 * each with its own mapping and lock) that commit at the same moment both
 * choose the same slot and the same sequence number, and when their stores
 * interleave the slot fails its checksum: the group reads back the
 * position before both.  So the commit reads the slots again after writing
 * and is done only when the newest whole slot is at least as new as its
 * own, its own value or the other commit's; otherwise it writes again.
 * The last of two racing commits to finish checks after every store of
 * both, so the position they leave is one of theirs.  Alone, a commit
 * finds its slot as it wrote it, which one more copy of the slots shows.
 */
static int commit_slot(struct group_file *f, uint64_t offset, int64_t now)
{
    for (unsigned tries = 1;; tries++) {
        struct slot last;
        int cur = read_slot(f, false, &last);
        if (cur >= 0 && last.seq == UINT64_MAX)
            return TOPIC_ECORRUPT;   /* no sequence number follows it */
        struct slot s = { .seq = cur < 0 ? 1 : last.seq + 1, .offset = offset, .time_ms = now };
        s.sum = slot_sum(&s);
        int i = cur == 0 ? 1 : 0;
        write_slot(f, i, &s);
        struct slot now_there[2];
        load_slots(f, now_there);
        if (memcmp(&now_there[i], &s, sizeof s) == 0)
            return 0;   /* as written: nobody else's stores are in it */
        if (newest_of(now_there, &last) >= 0 && last.seq >= s.seq)
            return 0;
        if (tries % 64 == 0)
            sched_yield();   /* let the other committer finish its slot */
    }
}

static int group_sync(struct group *g);

static void group_free(struct group *g)
{
    topic__munmap(g->map, GROUP_FILE);
    topic__close(g->fd);
    topic__free(g);
}

/* Makes room for one more open group, under group_lock. */
static void groups_evict(topic *t)
{
    while (t->ngroups >= GROUPS_KEPT) {
        size_t lru = 0;
        for (size_t i = 1; i < t->ngroups; i++)
            if (t->groups[i]->used < t->groups[lru]->used)
                lru = i;
        /* A position not yet synced is synced before its descriptor goes:
         * a failure keeps it open (over the limit) for a later sync. */
        if (group_sync(t->groups[lru]) < 0)
            return;
        group_free(t->groups[lru]);
        t->groups[lru] = t->groups[--t->ngroups];
    }
}

static int groups_dir(topic *t, bool create)
{
    int fd = topic__openat(t->dirfd, "groups", O_RDONLY | O_DIRECTORY, 0);
    if (fd != -ENOENT || !create)
        return fd;
    if (topic__os.mkdirat(t->dirfd, "groups", TOPIC__DIR_MODE) < 0 && errno != EEXIST)
        return topic__neg_errno();
    TRY(topic__fsync(t->dirfd));
    return topic__openat(t->dirfd, "groups", O_RDONLY | O_DIRECTORY, 0);
}

/*
 * What the first `size` bytes of a group file (at most a page) are: 0 for a
 * group file, -ENOENT for what an unfinished first commit leaves, and
 * TOPIC_ECORRUPT for anything else.  A first commit creates the file,
 * gives it its page, then writes the header (struct group_file with empty
 * slots).  One that did not finish leaves an empty file, a page of zeros,
 * or some of the header without the page: that group never committed.  Any
 * other file that is not one page with the magic is not a group file.
 */
static bool all_zero(const uint8_t *p, size_t n)
{
    return n == 0 || (p[0] == 0 && memcmp(p, p + 1, n - 1) == 0);
}

static int file_kind(const uint8_t *page, size_t size)
{
    struct group_file h = { .magic = GROUP_MAGIC, .version = GROUP_VERSION };
    size_t head = size < sizeof h ? size : sizeof h;
    /* A prefix of the fresh page (the header, then zeros), or all zeros. */
    if (size < GROUP_FILE && memcmp(page, &h, head) == 0 && all_zero(page + head, size - head))
        return -ENOENT;
    if (size == GROUP_FILE && all_zero(page, size))
        return -ENOENT;
    if (size != GROUP_FILE || memcmp(page, &h.magic, 4) != 0)
        return TOPIC_ECORRUPT;
    return 0;
}

/* Opens (and with `create`, makes) the file of group `name`.  Looking a
 * position up needs no write access: where the file may not be written (a
 * read-only copy of a topic), it is mapped read-only, and a later commit
 * opens it again for writing. */
static int group_open(topic *t, const char *name, bool create, struct group **out)
{
    for (size_t i = 0; i < t->ngroups; i++)
        if (strcmp(t->groups[i]->name, name) == 0) {
            /* The mapping shows the file as it is now.  A header damaged
             * since it was mapped must be seen as a fresh open sees it
             * (TOPIC_ECORRUPT), and a commit must write the file afresh:
             * a slot written under a broken header is lost to every other
             * handle, and to this one once it is closed. */
            bool intact = __atomic_load_n(&t->groups[i]->map->magic, __ATOMIC_RELAXED) ==
                          GROUP_MAGIC;
            if (intact && (!create || !t->groups[i]->readonly)) {
                t->groups[i]->used = ++t->group_tick;
                *out = t->groups[i];
                return 0;
            }
            /* Damaged, or wanted for a commit while mapped read-only:
             * drop the mapping, open again. */
            group_free(t->groups[i]);
            t->groups[i] = t->groups[--t->ngroups];
            break;
        }
    groups_evict(t);
    int dfd = groups_dir(t, create);
    if (dfd < 0)
        return dfd;
    if (create && !t->groups_synced) {
        /* Once per handle, before its first commit: the names of groups/
         * and of every group file in it are durable, whoever made them and
         * whether or not the fsync that followed their creation worked. */
        int r = topic__fsync(t->dirfd);
        if (r == 0)
            r = topic__fsync(dfd);
        if (r < 0) {
            topic__close(dfd);
            return r;
        }
        t->groups_synced = true;
    }
    int fd = topic__openat(dfd, name, O_RDWR | (create ? O_CREAT : 0), TOPIC__FILE_MODE);
    bool readonly = false;
    if (!create && (fd == -EACCES || fd == -EROFS || fd == -EPERM)) {
        fd = topic__openat(dfd, name, O_RDONLY, 0);
        readonly = true;
    }
    size_t size = 0;
    int rc = fd < 0 ? fd : topic__fsize(fd, &size);
    /* Something that is not a regular file where the group's file would be
     * (a FIFO, a socket, a link, a directory) is not a group, as
     * topic_groups() says by leaving it out: a lookup finds no position,
     * and a commit puts the group's file in its place (only an empty
     * directory can go). */
    if (!create && (rc == TOPIC_ECORRUPT || rc == -ELOOP))
        rc = -ENOENT;
    if (create && (rc == TOPIC_ECORRUPT || rc == -ELOOP)) {
        topic__close(fd);
        if (topic__os.unlinkat(dfd, name, 0) < 0 && errno == EISDIR)
            topic__os.unlinkat(dfd, name, AT_REMOVEDIR);
        fd = topic__openat(dfd, name, O_RDWR | O_CREAT, TOPIC__FILE_MODE);
        rc = fd < 0 ? fd : topic__fsize(fd, &size);
    }
    struct group_file h = { .magic = GROUP_MAGIC, .version = GROUP_VERSION };
    bool unfinished = size == 0, damaged = size > GROUP_FILE;
    if (rc == 0 && size > 0 && !damaged) {
        uint8_t page[GROUP_FILE];
        rc = topic__pread_all(fd, page, size, 0);
        int kind = rc == 0 ? file_kind(page, size) : 0;
        unfinished = kind == -ENOENT;
        damaged = kind == TOPIC_ECORRUPT;
    }
    if (rc == 0 && (unfinished || damaged) && !create)
        rc = unfinished ? -ENOENT : TOPIC_ECORRUPT;
    if (rc == 0 && (unfinished || damaged)) {
        /* New, or made new: a commit states the group's position afresh,
         * and a damaged file must not keep a consumer from moving on.  Its
         * page, header and name reach the disk before it is used. */
        if (size > GROUP_FILE)
            rc = topic__ftruncate(fd, GROUP_FILE);
        if (rc == 0)
            rc = topic__fallocate(fd, GROUP_FILE);
        if (rc == 0)
            rc = topic__pwrite_all(fd, &h, sizeof h, 0);
        if (rc == 0)
            rc = topic__fsync(fd);
        if (rc == 0)
            rc = topic__fsync(dfd);
        if (rc < 0)
            topic__os.unlinkat(dfd, name, 0);   /* the next commit starts afresh */
    }
    topic__close(dfd);
    void *p = NULL;
    if (rc == 0)
        rc = topic__mmap(GROUP_FILE, readonly ? PROT_READ : PROT_READ | PROT_WRITE, fd, &p);
    struct group *g = NULL;
    if (rc == 0 && ((struct group_file *)p)->magic != GROUP_MAGIC)
        rc = TOPIC_ECORRUPT;
    /* A group file of a later format: neither read as this one nor
     * overwritten (its newer readers would lose the position). */
    if (rc == 0 && ((struct group_file *)p)->version > GROUP_VERSION)
        rc = TOPIC_EVERSION;
    if (rc == 0 && (g = topic__calloc(1, sizeof *g)) == NULL)
        rc = -ENOMEM;
    if (rc == 0 && t->ngroups == t->cap_groups) {
        size_t cap = t->cap_groups ? t->cap_groups * 2 : 4;
        struct group **v = topic__realloc(t->groups, cap * sizeof *v);
        if (v == NULL)
            rc = -ENOMEM;
        else
            t->groups = v, t->cap_groups = cap;
    }
    if (rc < 0) {
        topic__free(g);
        topic__munmap(p, GROUP_FILE);
        topic__close(fd);
        return rc;
    }
    strcpy(g->name, name);
    g->readonly = readonly;
    g->fd = fd;
    g->map = p;
    g->synced_ms = topic__mono_ms();
    g->used = ++t->group_tick;
    t->groups[t->ngroups++] = g;
    *out = g;
    return 0;
}

static int group_sync(struct group *g)
{
    if (!g->dirty)
        return 0;
    TRY(topic__fdatasync(g->fd));
    g->dirty = false;
    g->synced_ms = topic__mono_ms();
    return 0;
}

TOPIC_API int topic_commit(topic *t, const char *group, uint64_t offset)
{
    if (t == NULL || !valid_name(group))
        return -EINVAL;
    /* A writer handle inherited through fork(): its group mappings and
     * locks are the parent's (see topic__forked). */
    if (!(t->flags & TOPIC_RDONLY) && topic__forked(t))
        return TOPIC_EFAILED;
    pthread_mutex_lock(&t->group_lock);
    struct group *g;
    int rc = group_open(t, group, true, &g);
    if (rc == 0) {
        int64_t mono, now = topic__clock_ms(&mono);
        rc = commit_slot(g->map, offset, now);
        g->dirty = true;
        int64_t every = t->cfg.v[TOPIC_K_FLUSH_MS];
        /* flush.messages=1: durable before returning; otherwise at most
         * flush.ms late (checked here, so that a consumer process without a
         * flusher thread keeps the promise too). */
        if (t->cfg.v[TOPIC_K_FLUSH_MESSAGES] == 1 ||
            (every > 0 && mono - g->synced_ms >= every))
            rc = group_sync(g);
    }
    bool dirty = rc == 0 && g->dirty;
    pthread_mutex_unlock(&t->group_lock);
    if (dirty && !(t->flags & TOPIC_RDONLY) && t->cfg.v[TOPIC_K_FLUSH_MS] > 0) {
        /* The writer's flusher syncs it within flush.ms even if no other
         * commit or append follows; the first such commit starts it. */
        topic__lock(&t->append_lock);
        int started = 0;
        if (t->commits_since_ms == 0 && (started = topic__bg_flusher(t)) == 0) {
            t->commits_since_ms = topic__mono_ms();
            topic__flush_signal(t);
        }
        topic__unlock(&t->append_lock);
        /* No thread to keep the promise later: keep it now. */
        if (started < 0)
            rc = topic__groups_sync(t);
    }
    return rc;
}

TOPIC_API int topic_committed(topic *t, const char *group, uint64_t *offset)
{
    if (t == NULL || offset == NULL || !valid_name(group))
        return -EINVAL;
    pthread_mutex_lock(&t->group_lock);
    struct group *g;
    int rc = group_open(t, group, false, &g);
    if (rc == 0) {
        struct slot last;
        int cur = read_slot(g->map, true, &last);
        if (cur < 0)
            rc = cur;
        else
            *offset = last.offset;
    }
    pthread_mutex_unlock(&t->group_lock);
    return rc;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/*
 * Whether topic_groups() lists group `name`, whose file is in the groups
 * directory dfd: it has a position, or its file is damaged (so that it can
 * be found and committed afresh).  The file is read, not kept open: a
 * listing of thousands of groups used to open every one of them through
 * this handle and keep them (and, looking each up among those already
 * open, took time that grew with the square of their number).  It is
 * mapped for the moment, so that read_slot() takes the settled snapshot a
 * lookup takes, and a commit racing the listing does not hide the group.
 */
static bool group_listed(topic *t, int dfd, const char *name)
{
    pthread_mutex_lock(&t->group_lock);
    for (size_t i = 0; i < t->ngroups; i++)
        if (strcmp(t->groups[i]->name, name) == 0) {
            const struct group_file *f = t->groups[i]->map;
            struct slot s;
            bool listed = __atomic_load_n(&f->magic, __ATOMIC_RELAXED) != GROUP_MAGIC ||
                          read_slot(f, true, &s) >= 0;
            pthread_mutex_unlock(&t->group_lock);
            return listed;
        }
    pthread_mutex_unlock(&t->group_lock);
    int fd = topic__openat(dfd, name, O_RDONLY, 0);
    if (fd < 0)   /* unreadable: listed, as its lookup fails; not a file: not a group */
        return fd != -ENOENT && fd != TOPIC_ECORRUPT && fd != -ELOOP;
    size_t size = 0;
    int rc = topic__fsize(fd, &size);
    if (rc == TOPIC_ECORRUPT) {   /* not a regular file (a FIFO): not a group */
        topic__close(fd);
        return false;
    }
    void *p = NULL;
    if (rc == 0 && size > GROUP_FILE)
        rc = TOPIC_ECORRUPT;
    if (rc == 0 && size > 0)
        rc = topic__mmap(GROUP_FILE, PROT_READ, fd, &p);
    topic__close(fd);
    if (rc < 0)
        return true;   /* damaged or unreadable: listed */
    if (size == 0)
        return false;   /* an unfinished first commit: no group */
    /* Only the file's `size` bytes are read (past them the page would
     * fault), and the slots only of a whole page. */
    const struct group_file *f = p;
    int kind = file_kind(p, size);
    struct slot s;
    bool listed = kind == TOPIC_ECORRUPT ||
                  (kind == 0 && (f->version > GROUP_VERSION || read_slot(f, true, &s) >= 0));
    topic__munmap(p, GROUP_FILE);
    return listed;
}

TOPIC_API int topic_groups(topic *t, char *buf, size_t cap, size_t *len)
{
    if (t == NULL || len == NULL || (buf == NULL && cap > 0))
        return -EINVAL;
    *len = 0;
    int dfd = groups_dir(t, false);
    if (dfd == -ENOENT)
        return 0;
    if (dfd < 0)
        return dfd;
    DIR *d = fdopendir(dfd);
    if (d == NULL) {
        topic__close(dfd);
        return topic__neg_errno();
    }
    char **names = NULL;
    size_t n = 0, room = 0, need = 0;
    int rc = 0, more;
    struct dirent *de;
    while (rc == 0 && (more = topic__readdir(d, &de)) != 0) {
        if (more < 0) {
            rc = more;
            break;
        }
        if (!valid_name(de->d_name))
            continue;   /* ".", "..", temporary files */
        if (de->d_type != DT_REG && de->d_type != DT_UNKNOWN)
            continue;   /* a directory or a link someone put there: not a group */
        /* A first commit that never finished leaves no group; a damaged
         * file is listed, so that its group can be found and committed. */
        if (!group_listed(t, dfd, de->d_name))
            continue;
        if (n == room) {
            room = room ? room * 2 : 16;
            char **v = topic__realloc(names, room * sizeof *v);
            if (v == NULL) {
                rc = -ENOMEM;
                break;
            }
            names = v;
        }
        if ((names[n] = topic__strdup(de->d_name)) == NULL)
            rc = -ENOMEM;
        else
            need += strlen(names[n++]) + 1;
    }
    closedir(d);
    if (rc == 0) {
        if (n > 1)   /* names is NULL when there are none */
            qsort(names, n, sizeof *names, cmp_str);
        *len = need;
        if (need > cap) {
            rc = TOPIC_ETOOSMALL;
        } else {
            size_t at = 0;
            for (size_t i = 0; i < n; i++) {
                size_t l = strlen(names[i]) + 1;
                memcpy(buf + at, names[i], l);
                at += l;
            }
        }
    }
    for (size_t i = 0; i < n; i++)
        topic__free(names[i]);
    topic__free(names);
    return rc;
}

int topic__groups_sync(topic *t)
{
    int rc = 0;
    pthread_mutex_lock(&t->group_lock);
    for (size_t i = 0; i < t->ngroups; i++) {
        int r = group_sync(t->groups[i]);
        if (rc == 0)
            rc = r;
    }
    pthread_mutex_unlock(&t->group_lock);
    return rc;
}

void topic__groups_close(topic *t)
{
    for (size_t i = 0; i < t->ngroups; i++)
        group_free(t->groups[i]);
    topic__free(t->groups);
    t->groups = NULL;
    t->ngroups = t->cap_groups = 0;
}
