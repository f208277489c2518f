/*
 * Fault injection and the power-loss model: see faults.h.
 *
 * The power-loss model, precisely.  For every file it keeps the content the
 * file had at its last successful fsync/fdatasync (read back through
 * /proc/self/fd at that moment, so bytes stored through a shared mapping
 * count), or nothing if it was never synced; for every directory the names
 * it held at its last successful fsync (files are tracked by inode, so a name
 * that was replaced or removed after that fsync still shows its old file).
 * A capture records, for every durable name, the durable content D and the
 * current content C of its file (C unknown once the file is gone).
 *
 * pl_materialize() writes D, then, unless variant is 0, picks per file one
 * of these ways in which a power loss may have left the newer bytes:
 *   durable   nothing newer;
 *   prefix    the newer bytes up to a random point, and a random file size
 *             between the durable and the current one;
 *   zeros     the current size, the newer bytes not written (zeros);
 *   garbage   like prefix, plus a random run of random bytes inside the range
 *             the newer bytes were being written to;
 *   sectors   each 512-byte sector of newer bytes written or not, at random.
 * Newer bytes at positions that held durable non-zero data (in-place
 * rewrites, such as the header of topic.state) are never torn inside a
 * 512-byte sector: such a sector holds its durable or its current content,
 * as a disk that writes sectors atomically leaves it.  Everything past the
 * last durable non-zero byte of a sector (never-written, preallocated or
 * beyond-EOF space) is "tail" and may get any of the above.
 *
 * SPDX-License-Identifier: BSD-2-Clause
 */
#include "faults.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include "internal.h"   /* topic__spare_min */
#include "os.h"
#include "testutil.h"

static const char *const kind_names[TF_NKINDS] = {
    [TF_OPENAT] = "openat",       [TF_CLOSE] = "close",         [TF_PREAD] = "pread",
    [TF_PWRITE] = "pwrite",       [TF_FSYNC] = "fsync",         [TF_FDATASYNC] = "fdatasync",
    [TF_FALLOCATE] = "fallocate", [TF_FTRUNCATE] = "ftruncate", [TF_RENAMEAT] = "renameat",
    [TF_UNLINKAT] = "unlinkat",   [TF_MMAP] = "mmap",           [TF_MUNMAP] = "munmap",
    [TF_MADVISE] = "madvise",     [TF_FLOCK] = "flock",         [TF_FSTAT] = "fstat",
    [TF_MKDIR] = "mkdir",         [TF_ALLOC] = "alloc",         [TF_READDIR] = "readdir",
};

const char *tf_kind_name(int kind)
{
    return kind >= 0 && kind < TF_NKINDS ? kind_names[kind] : "?";
}

static const struct topic_os *const real = &topic__os_default;

static _Atomic long counts[TF_NKINDS];
static _Atomic int arm_kind = -1;
static _Atomic long arm_nth;
static _Atomic int arm_err;
static _Atomic bool arm_persistent;
static _Atomic long fired;
static _Atomic bool fired_nonexempt;
static _Atomic bool fast_sync_on;

static pthread_mutex_t fault_lock = PTHREAD_MUTEX_INITIALIZER;
static char first_desc[256], first_nonexempt_desc[256];

/* The last path component each descriptor was opened with, for messages. */
#define FD_NAMES 4096
static char fd_names[FD_NAMES][64];
static bool fd_readonly[FD_NAMES];   /* a regular file opened O_RDONLY */

/* Only calls on a name ending with this count towards the armed N. */
static char arm_suffix[64];

static const char *base_name(const char *path)
{
    const char *s = strrchr(path, '/');
    return s && s[1] ? s + 1 : path;
}

static bool readonly_file(int flags)
{
    return (flags & O_ACCMODE) == O_RDONLY && !(flags & O_DIRECTORY);
}

static void name_fd(int fd, const char *path, int flags)
{
    if (fd < 0 || fd >= FD_NAMES)
        return;
    pthread_mutex_lock(&fault_lock);
    snprintf(fd_names[fd], sizeof fd_names[fd], "%s", base_name(path));
    fd_readonly[fd] = readonly_file(flags);
    pthread_mutex_unlock(&fault_lock);
}

/* The name a call is about, for messages and the suffix filter. */
/* Set by w_mmap around its inject(): the mapping asked for is read-only. */
static _Thread_local bool mmap_readonly;

static void call_name(char *buf, size_t cap, int kind, int fd, const char *path, bool *readonly)
{
    *readonly = false;
    if (path != NULL) {
        snprintf(buf, cap, "%s", base_name(path));
    } else if (fd >= 0 && fd < FD_NAMES) {
        pthread_mutex_lock(&fault_lock);
        snprintf(buf, cap, "%s", fd_names[fd]);
        *readonly = fd_readonly[fd];
        pthread_mutex_unlock(&fault_lock);
    } else {
        snprintf(buf, cap, "%s", kind == TF_MMAP ? "anonymous" : "-");
    }
}

static bool ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && strcmp(s + n - k, suffix) == 0;
}

static void note_fired(int kind, long n, int fd, const char *path, int oflags)
{
    char name[80];
    bool readonly;
    call_name(name, sizeof name, kind, fd, path, &readonly);
    if (kind == TF_OPENAT)
        readonly = readonly_file(oflags);
    if (kind == TF_MMAP && mmap_readonly)
        readonly = true;
    char thread[32] = "";
    pthread_getname_np(pthread_self(), thread, sizeof thread);
    /*
     * Failures the library is designed to absorb, exempt from "must
     * surface as an API error" (the checks after the run still verify that
     * nothing went wrong because of them):
     *  - anything on topic.wait: without it waiters only poll;
     *  - an index file's fallocate: the entry is left out, lookups walk;
     *  - the page-preparing thread: the append that needs the space
     *    reserves it again;
     *  - a read-only mapping, even of a file opened for writing: the
     *    writer's fresh mapping of a segment it has just sealed (it keeps
     *    the old mapping when that fails);
     *  - read-only access to a regular file: a sealed segment that cannot
     *    be mapped is an error of the read that needs it (which then
     *    surfaces), a missing index is rebuilt, a clean-shutdown probe that
     *    fails means a full scan;
     *  - unlinkat: the library checks the removals that matter and leaves
     *    the others (files it no longer needs) for later.
     */
    bool exempt = strstr(name, "topic.wait") != NULL || kind == TF_UNLINKAT ||
                  (kind == TF_FALLOCATE && (ends_with(name, ".index") ||
                                            ends_with(name, ".timeindex"))) ||
                  strcmp(thread, "topic-prep") == 0 || readonly;
    char desc[256];
    snprintf(desc, sizeof desc, "%s #%ld (%s%s, thread %s)", tf_kind_name(kind), n, name,
             readonly ? ", read-only" : "", thread);
    pthread_mutex_lock(&fault_lock);
    if (atomic_fetch_add(&fired, 1) == 0)
        snprintf(first_desc, sizeof first_desc, "%s", desc);
    if (!exempt && !atomic_exchange(&fired_nonexempt, true))
        snprintf(first_nonexempt_desc, sizeof first_nonexempt_desc, "%s", desc);
    pthread_mutex_unlock(&fault_lock);
}

/* Calls that passed the suffix filter (tf_arm_suffix). */
static _Atomic long filtered_count;

/* Counts a call; returns the errno to fail it with, or 0.  oflags: the
 * flags of an openat. */
static int inject_flags(int kind, int fd, const char *path, int oflags)
{
    long n = atomic_fetch_add(&counts[kind], 1) + 1;
    if (atomic_load_explicit(&arm_kind, memory_order_acquire) != kind)
        return 0;
    pthread_mutex_lock(&fault_lock);
    char suffix[sizeof arm_suffix];
    memcpy(suffix, arm_suffix, sizeof suffix);
    pthread_mutex_unlock(&fault_lock);
    if (suffix[0] != '\0') {
        char name[80];
        bool ro;
        call_name(name, sizeof name, kind, fd, path, &ro);
        if (!ends_with(name, suffix))
            return 0;
        n = atomic_fetch_add(&filtered_count, 1) + 1;
    }
    long nth = atomic_load(&arm_nth);
    if (n != nth && !(n > nth && atomic_load(&arm_persistent)))
        return 0;
    note_fired(kind, n, fd, path, oflags);
    return atomic_load(&arm_err);
}

static int inject(int kind, int fd, const char *path)
{
    return inject_flags(kind, fd, path, 0);
}

/* ------------------------------------------------------------------------ */
/* Short transfers and EINTR                                                 */

static _Atomic uint64_t sio_seed, sio_ctr;
static _Atomic unsigned sio_eintr_pct, sio_short_pct, sio_retry_pct;
static _Atomic long sio_shorts, sio_eintrs;

static uint64_t sio_rand(void)
{
    return tu_mix64(atomic_load(&sio_seed) ^ (atomic_fetch_add(&sio_ctr, 1) * 0x9e3779b97f4a7c15ull));
}

/* For pread/pwrite: 1 to fail with EINTR, else maybe shortens *n. */
static int sio_transfer(size_t *n)
{
    unsigned pe = atomic_load(&sio_eintr_pct), ps = atomic_load(&sio_short_pct);
    if (pe == 0 && ps == 0)
        return 0;
    uint64_t r = sio_rand();
    if (r % 100 < pe) {
        atomic_fetch_add(&sio_eintrs, 1);
        return 1;
    }
    if (*n > 1 && (r >> 8) % 100 < ps) {
        *n = 1 + (size_t)((r >> 16) % (*n - 1));
        atomic_fetch_add(&sio_shorts, 1);
    }
    return 0;
}

/* For the calls the library retries on EINTR. */
static int sio_retry_eintr(void)
{
    unsigned p = atomic_load(&sio_retry_pct);
    if (p == 0 || sio_rand() % 100 >= p)
        return 0;
    atomic_fetch_add(&sio_eintrs, 1);
    return 1;
}

void tf_short_io(uint64_t seed, unsigned eintr_pct, unsigned short_pct, unsigned retry_eintr_pct)
{
    atomic_store(&sio_seed, seed);
    atomic_store(&sio_ctr, 0);
    atomic_store(&sio_shorts, 0);
    atomic_store(&sio_eintrs, 0);
    atomic_store(&sio_eintr_pct, eintr_pct);
    atomic_store(&sio_short_pct, short_pct);
    atomic_store(&sio_retry_pct, retry_eintr_pct);
}

long tf_short_count(void) { return atomic_load(&sio_shorts); }
long tf_eintr_count(void) { return atomic_load(&sio_eintrs); }

/* ------------------------------------------------------------------------ */
/* Power-loss model: state                                                   */

struct blob {
    int refs;
    size_t len;
    unsigned char *data;
};

struct object {               /* one file (inode) */
    ino_t ino;
    bool current;             /* the inode number still names this file */
    struct blob *durable;     /* content at its last sync; NULL: never synced */
    struct blob *live;        /* content at the latest capture that saw it */
    unsigned long live_gen;
    struct object *next;
};

struct dent {
    char *name;
    bool is_dir;
    ino_t ino;
    struct object *obj;       /* regular files */
};

struct listing {              /* a directory's names at its last fsync */
    ino_t dir;
    size_t n;
    struct dent *v;
    struct listing *next;
};

struct cfile {
    char *path;               /* relative to the topic directory */
    bool is_dir;
    struct blob *d, *c;       /* durable (NULL: empty) and current (NULL: as d) */
};

struct capture {
    char why[96];
    uint64_t marks[PL_MARKS];
    bool root;
    size_t n, cap;
    struct cfile *v;
};

static pthread_mutex_t pl_lock = PTHREAD_MUTEX_INITIALIZER;
static _Atomic bool pl_on, pl_auto_on, pl_paused;
static char *pl_root, *pl_parent;
static bool root_durable;
static ino_t root_durable_ino;
static struct object *objects;
static struct listing *listings;
static struct capture *caps;
static size_t ncaps, capcap;
static uint64_t cur_marks[PL_MARKS];
static unsigned long gen;

static bool pl_tracking(void)
{
    return atomic_load(&pl_on) && !atomic_load(&pl_paused);
}

static struct blob *blob_new(unsigned char *data, size_t len)
{
    struct blob *b = malloc(sizeof *b);
    if (b == NULL)
        abort();
    b->refs = 1;
    b->len = len;
    b->data = data;
    return b;
}

static struct blob *blob_ref(struct blob *b)
{
    if (b != NULL)
        b->refs++;
    return b;
}

static void blob_put(struct blob *b)
{
    if (b != NULL && --b->refs == 0) {
        free(b->data);
        free(b);
    }
}

/* Reads everything from fd (at offset 0); NULL on error. */
static struct blob *read_all(int fd)
{
    struct stat st;
    if (fstat(fd, &st) != 0)
        return NULL;
    size_t cap = (size_t)st.st_size + 1, len = 0;
    unsigned char *p = malloc(cap);
    if (p == NULL)
        abort();
    for (;;) {
        if (len == cap) {
            cap *= 2;
            p = realloc(p, cap);
            if (p == NULL)
                abort();
        }
        ssize_t r = pread(fd, p + len, cap - len, (off_t)len);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            free(p);
            return NULL;
        }
        if (r == 0)
            break;
        len += (size_t)r;
    }
    return blob_new(p, len);
}

static struct blob *read_path(const char *path)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return NULL;
    struct blob *b = read_all(fd);
    close(fd);
    return b;
}

static struct object *object_current(ino_t ino)
{
    for (struct object *o = objects; o; o = o->next)
        if (o->ino == ino && o->current)
            return o;
    struct object *o = calloc(1, sizeof *o);
    if (o == NULL)
        abort();
    o->ino = ino;
    o->current = true;
    o->next = objects;
    objects = o;
    return o;
}

/* A new file got inode `ino`: whatever had that number before is gone. */
static struct object *object_new(ino_t ino)
{
    for (struct object *o = objects; o; o = o->next)
        if (o->ino == ino)
            o->current = false;
    return object_current(ino);
}

static char *join(const char *a, const char *b)
{
    size_t n = strlen(a) + strlen(b) + 2;
    char *p = malloc(n);
    if (p == NULL)
        abort();
    snprintf(p, n, "%s%s%s", a, *a && *b ? "/" : "", b);
    return p;
}

static struct listing *listing_of(ino_t dir)
{
    for (struct listing *l = listings; l; l = l->next)
        if (l->dir == dir)
            return l;
    return NULL;
}

static void listing_clear(struct listing *l)
{
    for (size_t i = 0; i < l->n; i++)
        free(l->v[i].name);
    free(l->v);
    l->v = NULL;
    l->n = 0;
}

/* Records the names directory `path` (inode dir) holds now as durable;
 * with `contents`, also the current content of its files (pl_start). */
static void snapshot_listing(const char *path, ino_t dir, bool contents)
{
    DIR *d = opendir(path);
    if (d == NULL)
        return;
    struct listing *l = listing_of(dir);
    if (l == NULL) {
        l = calloc(1, sizeof *l);
        if (l == NULL)
            abort();
        l->dir = dir;
        l->next = listings;
        listings = l;
    }
    listing_clear(l);
    size_t cap = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
            continue;
        struct stat st;
        if (fstatat(dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0)
            continue;
        if (!S_ISREG(st.st_mode) && !S_ISDIR(st.st_mode))
            continue;
        if (l->n == cap) {
            cap = cap ? 2 * cap : 32;
            l->v = realloc(l->v, cap * sizeof *l->v);
            if (l->v == NULL)
                abort();
        }
        struct dent *de = &l->v[l->n++];
        de->name = strdup(e->d_name);
        de->is_dir = S_ISDIR(st.st_mode);
        de->ino = st.st_ino;
        de->obj = NULL;
        if (!de->is_dir) {
            de->obj = object_current(st.st_ino);
            if (contents) {
                char *fp = join(path, e->d_name);
                struct blob *b = read_path(fp);
                free(fp);
                if (b != NULL) {
                    blob_put(de->obj->durable);
                    de->obj->durable = b;
                }
            }
        } else if (contents) {
            char *sub = join(path, e->d_name);
            snapshot_listing(sub, st.st_ino, true);
            free(sub);
        }
    }
    closedir(d);
}

/* The path of the directory with inode `ino` under `path` (inode pino). */
static char *find_dir(const char *path, ino_t pino, ino_t ino)
{
    if (pino == ino)
        return strdup(path);
    DIR *d = opendir(path);
    if (d == NULL)
        return NULL;
    char *found = NULL;
    struct dirent *e;
    while (found == NULL && (e = readdir(d)) != NULL) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
            continue;
        struct stat st;
        if (fstatat(dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0 || !S_ISDIR(st.st_mode))
            continue;
        char *sub = join(path, e->d_name);
        found = find_dir(sub, st.st_ino, ino);
        free(sub);
    }
    closedir(d);
    return found;
}

static void dir_synced(ino_t ino)
{
    struct stat rs, ps;
    bool root_exists = stat(pl_root, &rs) == 0 && S_ISDIR(rs.st_mode);
    if (stat(pl_parent, &ps) == 0 && ps.st_ino == ino) {
        root_durable = root_exists;
        if (root_exists)
            root_durable_ino = rs.st_ino;
        return;
    }
    if (!root_exists)
        return;
    char *path = find_dir(pl_root, rs.st_ino, ino);
    if (path != NULL) {
        snapshot_listing(path, ino, false);
        free(path);
    }
}

/* After a successful fsync/fdatasync of fd. */
static void pl_synced(int fd)
{
    if (!pl_tracking())
        return;
    pthread_mutex_lock(&pl_lock);
    struct stat st;
    if (fstat(fd, &st) == 0) {
        if (S_ISDIR(st.st_mode)) {
            dir_synced(st.st_ino);
        } else if (S_ISREG(st.st_mode)) {
            char proc[64];
            snprintf(proc, sizeof proc, "/proc/self/fd/%d", fd);
            struct blob *b = read_path(proc);
            if (b != NULL) {
                struct object *o = object_current(st.st_ino);
                blob_put(o->durable);
                o->durable = b;
            }
        }
    }
    pthread_mutex_unlock(&pl_lock);
}

/* After openat(O_CREAT) returned fd; `created` when the name was new. */
static void pl_opened(int fd, bool created)
{
    pthread_mutex_lock(&pl_lock);
    struct stat st;
    if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode)) {
        if (created)
            object_new(st.st_ino);
        else
            object_current(st.st_ino);
    }
    pthread_mutex_unlock(&pl_lock);
}

/* Reads the current content of every file under path. */
static void live_walk(const char *path)
{
    DIR *d = opendir(path);
    if (d == NULL)
        return;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
            continue;
        struct stat st;
        if (fstatat(dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0)
            continue;
        char *sub = join(path, e->d_name);
        if (S_ISDIR(st.st_mode)) {
            live_walk(sub);
        } else if (S_ISREG(st.st_mode)) {
            struct blob *b = read_path(sub);
            if (b != NULL) {
                struct object *o = object_current(st.st_ino);
                if (o->live && o->live->len == b->len && !memcmp(o->live->data, b->data, b->len)) {
                    blob_put(b);
                } else {
                    blob_put(o->live);
                    o->live = b;
                }
                o->live_gen = gen;
            }
        }
        free(sub);
    }
    closedir(d);
}

static void cap_push(struct capture *c, char *path, bool is_dir, struct blob *d, struct blob *cur)
{
    if (c->n == c->cap) {
        c->cap = c->cap ? 2 * c->cap : 32;
        c->v = realloc(c->v, c->cap * sizeof *c->v);
        if (c->v == NULL)
            abort();
    }
    c->v[c->n++] = (struct cfile){ path, is_dir, d, cur };
}

static void cap_listing(struct capture *c, const char *prefix, ino_t dir, int depth)
{
    struct listing *l = listing_of(dir);
    if (l == NULL || depth > 8)
        return;
    for (size_t i = 0; i < l->n; i++) {
        struct dent *de = &l->v[i];
        char *path = join(prefix, de->name);
        if (de->is_dir) {
            cap_push(c, path, true, NULL, NULL);
            cap_listing(c, path, de->ino, depth + 1);
        } else {
            struct object *o = de->obj;
            cap_push(c, path, false, blob_ref(o->durable),
                     o->live_gen == gen ? blob_ref(o->live) : NULL);
        }
    }
}

static void capture_locked(const char *why)
{
    gen++;
    live_walk(pl_root);
    if (ncaps == capcap) {
        capcap = capcap ? 2 * capcap : 64;
        caps = realloc(caps, capcap * sizeof *caps);
        if (caps == NULL)
            abort();
    }
    struct capture *c = &caps[ncaps++];
    memset(c, 0, sizeof *c);
    snprintf(c->why, sizeof c->why, "%s", why);
    memcpy(c->marks, cur_marks, sizeof c->marks);
    c->root = root_durable;
    if (root_durable)
        cap_listing(c, "", root_durable_ino, 0);
}

/* A crash point: captures when asked to capture at every one. */
static void pl_point(const char *why)
{
    if (!pl_tracking() || !atomic_load(&pl_auto_on))
        return;
    pthread_mutex_lock(&pl_lock);
    capture_locked(why);
    pthread_mutex_unlock(&pl_lock);
}

/* ------------------------------------------------------------------------ */
/* The wrappers                                                              */

static int w_openat(int dirfd, const char *path, int flags, mode_t mode)
{
    int e = inject_flags(TF_OPENAT, -1, path, flags);
    if (e) {
        errno = e;
        return -1;
    }
    if (sio_retry_eintr()) {
        errno = EINTR;
        return -1;
    }
    bool track = pl_tracking() && (flags & O_CREAT);
    struct stat st;
    bool existed = track && fstatat(dirfd, path, &st, 0) == 0;
    int fd = real->openat(dirfd, path, flags, mode);
    if (fd < 0)
        return -1;
    name_fd(fd, path, flags);
    if (track) {
        pl_opened(fd, !existed);
        pl_point("openat");
    }
    return fd;
}

static int w_close(int fd)
{
    int e = inject(TF_CLOSE, fd, NULL);
    int r = real->close(fd);   /* Linux releases the descriptor even on error */
    if (e) {
        errno = e;
        return -1;
    }
    return r;
}

static ssize_t w_pread(int fd, void *buf, size_t n, off_t off)
{
    int e = inject(TF_PREAD, fd, NULL);
    if (e) {
        errno = e;
        return -1;
    }
    if (sio_transfer(&n)) {
        errno = EINTR;
        return -1;
    }
    return real->pread(fd, buf, n, off);
}

static ssize_t w_pwrite(int fd, const void *buf, size_t n, off_t off)
{
    int e = inject(TF_PWRITE, fd, NULL);
    if (e) {
        errno = e;
        return -1;
    }
    if (sio_transfer(&n)) {
        errno = EINTR;
        return -1;
    }
    return real->pwrite(fd, buf, n, off);
}

static int do_sync(int kind, int fd)
{
    pl_point(kind == TF_FSYNC ? "before fsync" : "before fdatasync");
    int e = inject(kind, fd, NULL), r;
    if (e)
        r = -1;
    else if (atomic_load(&fast_sync_on))
        r = fcntl(fd, F_GETFD) < 0 ? -1 : 0;
    else
        r = kind == TF_FSYNC ? real->fsync(fd) : real->fdatasync(fd);
    int err = e ? e : errno;
    if (r == 0)
        pl_synced(fd);
    pl_point(kind == TF_FSYNC ? (r == 0 ? "after fsync" : "after failed fsync")
                              : (r == 0 ? "after fdatasync" : "after failed fdatasync"));
    errno = err;
    return r;
}

static int w_fsync(int fd) { return do_sync(TF_FSYNC, fd); }
static int w_fdatasync(int fd) { return do_sync(TF_FDATASYNC, fd); }

static int w_fallocate(int fd, int mode, off_t off, off_t len)
{
    int e = inject(TF_FALLOCATE, fd, NULL);
    if (e) {
        errno = e;
        return -1;
    }
    if (sio_retry_eintr()) {
        errno = EINTR;   /* tmpfs's fallocate() does this with a signal pending */
        return -1;
    }
    int r = real->fallocate(fd, mode, off, len);
    int err = errno;
    pl_point("fallocate");
    errno = err;
    return r;
}

static int w_ftruncate(int fd, off_t len)
{
    int e = inject(TF_FTRUNCATE, fd, NULL);
    if (e) {
        errno = e;
        return -1;
    }
    if (sio_retry_eintr()) {
        errno = EINTR;
        return -1;
    }
    int r = real->ftruncate(fd, len);
    int err = errno;
    pl_point("ftruncate");
    errno = err;
    return r;
}

static int w_renameat(int olddirfd, const char *oldpath, int newdirfd, const char *newpath)
{
    int e = inject(TF_RENAMEAT, -1, newpath);
    if (e) {
        errno = e;
        return -1;
    }
    int r = real->renameat(olddirfd, oldpath, newdirfd, newpath);
    int err = errno;
    /* With the names: a test can count the renames of a kind (a spare
     * segment's, say), and a failing image says which one it followed. */
    char why[96];
    snprintf(why, sizeof why, "renameat %s -> %s", oldpath, newpath);
    pl_point(why);
    errno = err;
    return r;
}

static int w_unlinkat(int dirfd, const char *path, int flags)
{
    int e = inject(TF_UNLINKAT, -1, path);
    if (e) {
        errno = e;
        return -1;
    }
    int r = real->unlinkat(dirfd, path, flags);
    int err = errno;
    if (r == 0)
        pl_point("unlinkat");
    errno = err;
    return r;
}

static void *w_mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off)
{
    mmap_readonly = !(prot & PROT_WRITE);
    int e = inject(TF_MMAP, fd, NULL);
    mmap_readonly = false;
    if (e) {
        errno = e;
        return MAP_FAILED;
    }
    void *p = real->mmap(addr, len, prot, flags, fd, off);
    int err = errno;
    if (fd >= 0 && p != MAP_FAILED)
        pl_point("mmap");
    errno = err;
    return p;
}

static int w_munmap(void *addr, size_t len)
{
    atomic_fetch_add(&counts[TF_MUNMAP], 1);
    return real->munmap(addr, len);
}

static int w_madvise(void *addr, size_t len, int advice)
{
    /* Best effort in the library (the preparer): only counted. */
    atomic_fetch_add(&counts[TF_MADVISE], 1);
    return real->madvise(addr, len, advice);
}

static int w_flock(int fd, int op)
{
    /* The release at close is best effort: the descriptor is closed right
     * after, which releases the lock too unless a child that has not yet
     * run its fork handler holds a reference.  Not made to fail. */
    if (op & LOCK_UN)
        return real->flock(fd, op);
    int e = inject(TF_FLOCK, fd, NULL);
    if (e) {
        errno = e;
        return -1;
    }
    if (sio_retry_eintr()) {
        errno = EINTR;
        return -1;
    }
    return real->flock(fd, op);
}

static int w_fstat(int fd, struct stat *st)
{
    int e = inject(TF_FSTAT, fd, NULL);
    if (e) {
        errno = e;
        return -1;
    }
    return real->fstat(fd, st);
}

/* statx() counts as fstat(): both ask what a descriptor's file is. */
static int w_statx(int dirfd, const char *path, int flags, unsigned mask, struct statx *st)
{
    int e = inject(TF_FSTAT, dirfd, NULL);
    if (e) {
        errno = e;
        return -1;
    }
    return real->statx(dirfd, path, flags, mask, st);
}

static int w_mkdir(const char *path, mode_t mode)
{
    int e = inject(TF_MKDIR, -1, path);
    if (e) {
        errno = e;
        return -1;
    }
    int r = real->mkdir(path, mode);
    int err = errno;
    if (r == 0)
        pl_point("mkdir");
    errno = err;
    return r;
}

/* Counted with mkdir: both make a directory (the topic's, groups/). */
static int w_mkdirat(int dirfd, const char *path, mode_t mode)
{
    int e = inject(TF_MKDIR, -1, path);
    if (e) {
        errno = e;
        return -1;
    }
    int r = real->mkdirat(dirfd, path, mode);
    int err = errno;
    if (r == 0)
        pl_point("mkdirat");
    errno = err;
    return r;
}

static struct dirent *w_readdir(DIR *d)
{
    int e = inject(TF_READDIR, -1, NULL);
    if (e) {
        errno = e;
        return NULL;
    }
    return real->readdir(d);
}

static void *w_malloc(size_t n)
{
    if (inject(TF_ALLOC, -1, "malloc")) {
        errno = ENOMEM;
        return NULL;
    }
    return real->malloc(n);
}

static void *w_calloc(size_t n, size_t size)
{
    if (inject(TF_ALLOC, -1, "calloc")) {
        errno = ENOMEM;
        return NULL;
    }
    return real->calloc(n, size);
}

static void *w_realloc(void *p, size_t n)
{
    if (inject(TF_ALLOC, -1, "realloc")) {
        errno = ENOMEM;
        return NULL;
    }
    return real->realloc(p, n);
}

void tf_reset(void)
{
    atomic_store(&arm_kind, -1);
    for (int i = 0; i < TF_NKINDS; i++)
        atomic_store(&counts[i], 0);
    pthread_mutex_lock(&fault_lock);
    atomic_store(&fired, 0);
    atomic_store(&fired_nonexempt, false);
    first_desc[0] = first_nonexempt_desc[0] = '\0';
    pthread_mutex_unlock(&fault_lock);
}

void tf_install(bool fast_sync)
{
    tf_reset();
    tf_short_io(0, 0, 0, 0);
    atomic_store(&fast_sync_on, fast_sync);
    struct topic_os os = topic__os_default;
    os.openat = w_openat;
    os.close = w_close;
    os.pread = w_pread;
    os.pwrite = w_pwrite;
    os.fsync = w_fsync;
    os.fdatasync = w_fdatasync;
    os.fallocate = w_fallocate;
    os.ftruncate = w_ftruncate;
    os.renameat = w_renameat;
    os.unlinkat = w_unlinkat;
    os.mmap = w_mmap;
    os.munmap = w_munmap;
    os.madvise = w_madvise;
    os.flock = w_flock;
    os.fstat = w_fstat;
    os.statx = w_statx;
    os.mkdir = w_mkdir;
    os.mkdirat = w_mkdirat;
    os.readdir = w_readdir;
    os.malloc = w_malloc;
    os.calloc = w_calloc;
    os.realloc = w_realloc;
    topic__os = os;
}

void tf_uninstall(void)
{
    pl_stop();
    tf_reset();
    tf_short_io(0, 0, 0, 0);
    topic__os = topic__os_default;
}

long tf_count(int kind)
{
    return kind >= 0 && kind < TF_NKINDS ? atomic_load(&counts[kind]) : 0;
}

void tf_arm_suffix(int kind, const char *suffix, long nth, int err, bool persistent)
{
    atomic_store(&arm_kind, -1);
    pthread_mutex_lock(&fault_lock);
    snprintf(arm_suffix, sizeof arm_suffix, "%s", suffix ? suffix : "");
    pthread_mutex_unlock(&fault_lock);
    atomic_store(&filtered_count, 0);
    atomic_store(&arm_nth, nth);
    atomic_store(&arm_err, err);
    atomic_store(&arm_persistent, persistent);
    atomic_store_explicit(&arm_kind, kind, memory_order_release);
}

void tf_arm(int kind, long nth, int err, bool persistent)
{
    atomic_store(&arm_kind, -1);
    pthread_mutex_lock(&fault_lock);
    arm_suffix[0] = '\0';
    pthread_mutex_unlock(&fault_lock);
    atomic_store(&arm_nth, nth);
    atomic_store(&arm_err, err);
    atomic_store(&arm_persistent, persistent);
    atomic_store_explicit(&arm_kind, kind, memory_order_release);
}

void tf_disarm(void)
{
    atomic_store(&arm_kind, -1);
}

long tf_fired(void)
{
    return atomic_load(&fired);
}

bool tf_fired_all_exempt(void)
{
    return !atomic_load(&fired_nonexempt);
}

const char *tf_fired_desc(void)
{
    return atomic_load(&fired_nonexempt) ? first_nonexempt_desc : first_desc;
}

void tf_spares(bool every_segment)
{
    static size_t limit;
    static bool saved;
    if (!saved) {
        limit = topic__spare_min;
        saved = true;
    }
    topic__spare_min = every_segment ? 0 : limit;
}

void tf_await_spare(topic *t, int timeout_ms)
{
    for (int i = 0; i < timeout_ms * 10; i++) {
        topic__lock(&t->append_lock);
        bool asked = t->spare_wanted;
        topic__unlock(&t->append_lock);
        if (!asked)
            return;
        tu_sleep_us(100);
    }
}

char *tf_mkdtemp(const char *tag)
{
    const char *base = getenv("TOPIC_FAULT_TMPDIR");
    struct stat st;
    if (base == NULL || *base == '\0')
        base = stat("/dev/shm", &st) == 0 && S_ISDIR(st.st_mode) && access("/dev/shm", W_OK) == 0
                   ? "/dev/shm" : "/tmp";
    char tmpl[512];
    snprintf(tmpl, sizeof tmpl, "%s/libtopic-%s-XXXXXX", base, tag);
    if (mkdtemp(tmpl) == NULL)
        return NULL;
    return strdup(tmpl);
}

int tf_open_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    if (d == NULL)
        return -errno;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        if (e->d_name[0] != '.')
            n++;
    closedir(d);
    return n - 1;   /* the directory's own descriptor */
}

int tf_file_maps(const char *prefix)
{
    FILE *f = fopen("/proc/self/maps", "r");
    if (f == NULL)
        return -errno;
    char line[4096];
    int n = 0;
    while (fgets(line, sizeof line, f) != NULL)
        if (strstr(line, prefix) != NULL)
            n++;
    fclose(f);
    return n;
}

/* ------------------------------------------------------------------------ */
/* Power-loss model: API                                                     */

int pl_start(const char *root)
{
    pl_stop();
    pthread_mutex_lock(&pl_lock);
    pl_root = strdup(root);
    pl_parent = strdup(root);
    if (pl_root == NULL || pl_parent == NULL)
        abort();
    char *slash = strrchr(pl_parent, '/');
    if (slash == NULL)
        strcpy(pl_parent, ".");
    else if (slash == pl_parent)
        slash[1] = '\0';
    else
        *slash = '\0';
    struct stat rs;
    root_durable = stat(pl_root, &rs) == 0 && S_ISDIR(rs.st_mode);
    if (root_durable) {
        root_durable_ino = rs.st_ino;
        snapshot_listing(pl_root, rs.st_ino, true);
    }
    memset(cur_marks, 0, sizeof cur_marks);
    gen = 0;
    atomic_store(&pl_paused, false);
    atomic_store(&pl_auto_on, false);
    atomic_store(&pl_on, true);
    pthread_mutex_unlock(&pl_lock);
    return 0;
}

void pl_stop(void)
{
    atomic_store(&pl_on, false);
    atomic_store(&pl_auto_on, false);
    pthread_mutex_lock(&pl_lock);
    for (size_t i = 0; i < ncaps; i++) {
        for (size_t k = 0; k < caps[i].n; k++) {
            free(caps[i].v[k].path);
            blob_put(caps[i].v[k].d);
            blob_put(caps[i].v[k].c);
        }
        free(caps[i].v);
    }
    free(caps);
    caps = NULL;
    ncaps = capcap = 0;
    while (listings) {
        struct listing *l = listings;
        listings = l->next;
        listing_clear(l);
        free(l);
    }
    while (objects) {
        struct object *o = objects;
        objects = o->next;
        blob_put(o->durable);
        blob_put(o->live);
        free(o);
    }
    free(pl_root);
    free(pl_parent);
    pl_root = pl_parent = NULL;
    root_durable = false;
    pthread_mutex_unlock(&pl_lock);
}

void pl_auto(bool on)
{
    atomic_store(&pl_auto_on, on);
}

void pl_pause(bool paused)
{
    atomic_store(&pl_paused, paused);
}

void pl_set_marks(const uint64_t marks[PL_MARKS])
{
    pthread_mutex_lock(&pl_lock);
    memcpy(cur_marks, marks, sizeof cur_marks);
    pthread_mutex_unlock(&pl_lock);
}

int pl_capture(const char *why)
{
    if (!atomic_load(&pl_on))
        return -EINVAL;
    pthread_mutex_lock(&pl_lock);
    capture_locked(why);
    pthread_mutex_unlock(&pl_lock);
    return 0;
}

size_t pl_ncaptures(void)
{
    return ncaps;
}

const char *pl_capture_why(size_t i)
{
    return i < ncaps ? caps[i].why : "";
}

void pl_capture_marks(size_t i, uint64_t marks[PL_MARKS])
{
    if (i < ncaps)
        memcpy(marks, caps[i].marks, sizeof caps[i].marks);
}

bool pl_capture_has_root(size_t i)
{
    return i < ncaps && caps[i].root;
}

enum { M_DURABLE, M_PREFIX, M_ZEROS, M_GARBAGE, M_SECTORS, M_COUNT };
#define SECTOR 512u

/* The bytes file f may hold after the power loss; *len set. */
static unsigned char *compose(const struct cfile *f, tu_rng *rng, unsigned variant, size_t *len)
{
    size_t ld = f->d ? f->d->len : 0;
    const unsigned char *d = f->d ? f->d->data : NULL;
    size_t lc = f->c ? f->c->len : ld;
    const unsigned char *c = f->c ? f->c->data : d;
    size_t u = ld > lc ? ld : lc;
    unsigned char *out = calloc(1, u + 1);
    if (out == NULL)
        abort();
    if (ld)
        memcpy(out, d, ld);
    *len = ld;
    if (variant == 0 || f->c == NULL)
        return out;
    int mode = (int)tu_rng_below(rng, M_COUNT);
    if (mode == M_DURABLE)
        return out;
    /* Per sector: where the durable non-zero bytes end (below: rewrites,
     * atomic per sector; from there: tail). */
    size_t nsec = (u + SECTOR - 1) / SECTOR;
    size_t *pe = calloc(nsec ? nsec : 1, sizeof *pe);
    if (pe == NULL)
        abort();
    size_t first_t = SIZE_MAX, last_t = 0;
    for (size_t s = 0; s < nsec; s++) {
        size_t s0 = s * SECTOR, s1 = s0 + SECTOR < u ? s0 + SECTOR : u;
        size_t dend = s1 < ld ? s1 : ld;
        pe[s] = s0;
        for (size_t k = s0; k < dend; k++)
            if (d[k])
                pe[s] = k + 1;
        bool rewritten = false;
        for (size_t k = s0; k < pe[s] && k < lc; k++)
            if (c[k] != d[k])
                rewritten = true;
        if (rewritten && tu_rng_below(rng, 2))
            for (size_t k = s0; k < pe[s] && k < lc; k++)
                out[k] = c[k];
        for (size_t k = pe[s]; k < s1 && k < lc; k++) {
            unsigned char old = k < ld ? d[k] : 0;
            if (c[k] != old) {
                if (first_t == SIZE_MAX)
                    first_t = k;
                last_t = k;
            }
        }
    }
    /* The file size. */
    if (lc > ld) {
        if (mode == M_ZEROS)
            *len = lc;
        else if (mode == M_SECTORS)
            *len = tu_rng_below(rng, 2) ? lc : ld;
        else
            *len = ld + (size_t)tu_rng_below(rng, lc - ld + 1);
    } else if (lc < ld && tu_rng_below(rng, 2)) {
        *len = lc;
    }
    if (first_t != SIZE_MAX) {
#define IS_TAIL(k) ((k) >= pe[(k) / SECTOR])
        if (mode == M_PREFIX || mode == M_GARBAGE) {
            size_t cut = first_t + (size_t)tu_rng_below(rng, last_t - first_t + 2);
            for (size_t k = first_t; k < cut; k++)
                if (IS_TAIL(k) && k < lc)
                    out[k] = c[k];
            if (mode == M_GARBAGE) {
                size_t span = last_t - first_t + 1;
                size_t g0 = first_t + (size_t)tu_rng_below(rng, span);
                size_t g1 = g0 + 1 + (size_t)tu_rng_below(rng, 2048);
                if (g1 > last_t + 1)
                    g1 = last_t + 1;
                for (size_t k = g0; k < g1; k++)
                    if (IS_TAIL(k))
                        out[k] = (unsigned char)tu_rng_next(rng);
            }
        } else if (mode == M_SECTORS) {
            for (size_t s = first_t / SECTOR; s <= last_t / SECTOR; s++) {
                if (!tu_rng_below(rng, 2))
                    continue;
                size_t s1 = (s + 1) * SECTOR;
                for (size_t k = s * SECTOR; k < s1 && k < lc; k++)
                    if (IS_TAIL(k))
                        out[k] = c[k];
            }
        }
#undef IS_TAIL
    }
    free(pe);
    return out;
}

static int write_bytes(const char *path, const unsigned char *p, size_t n)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return -errno;
    size_t done = 0;
    int rc = 0;
    while (done < n) {
        ssize_t w = write(fd, p + done, n - done);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            rc = w < 0 ? -errno : -EIO;
            break;
        }
        done += (size_t)w;
    }
    close(fd);
    return rc;
}

int pl_materialize(size_t i, const char *dst, uint64_t seed, unsigned variant)
{
    if (i >= ncaps)
        return -EINVAL;
    int rc = tu_rmrf(dst);
    if (rc < 0)
        return rc;
    const struct capture *c = &caps[i];
    if (!c->root)
        return 0;
    if (mkdir(dst, 0755) != 0)
        return -errno;
    tu_rng rng;
    tu_rng_seed(&rng, tu_mix64(seed ^ ((uint64_t)i << 20) ^ ((uint64_t)variant << 44)));
    for (size_t k = 0; k < c->n && rc == 0; k++) {
        const struct cfile *f = &c->v[k];
        char *path = join(dst, f->path);
        if (f->is_dir) {
            if (mkdir(path, 0755) != 0)
                rc = -errno;
        } else {
            size_t len;
            unsigned char *bytes = compose(f, &rng, variant, &len);
            /* A power loss is a new boot: the live area of topic.state
             * (bytes 104-119, FORMAT.md 4.2) names another one. */
            const char *base = strrchr(f->path, '/');
            base = base == NULL ? f->path : base + 1;
            if (bytes != NULL && strcmp(base, "topic.state") == 0 && len >= 120)
                memset(bytes + 104, 0xa5, 16);
            rc = write_bytes(path, bytes, len);
            free(bytes);
        }
        free(path);
    }
    return rc;
}
