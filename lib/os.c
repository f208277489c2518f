/*
 * The system-call table and its wrappers.  Wrappers retry EINTR and short
 * transfers, and turn failures into negative errno values, so that callers
 * only ever test for `rc < 0`.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "os.h"
#include "topic.h"

static int os_fallocate(int fd, int mode, off_t off, off_t len)
{
    return fallocate(fd, mode, off, len);
}

static int os_openat(int dirfd, const char *path, int flags, mode_t mode)
{
    return openat(dirfd, path, flags, mode);
}

#define OS_DEFAULTS {                                                          \
    .openat = os_openat,    .close = close,         .pread = pread,            \
    .pwrite = pwrite,       .fsync = fsync,         .fdatasync = fdatasync,    \
    .fallocate = os_fallocate, .ftruncate = ftruncate, .renameat = renameat,   \
    .unlinkat = unlinkat,   .mmap = mmap,           .munmap = munmap,          \
    .madvise = madvise,     .flock = flock,         .fstat = fstat,            \
    .statx = statx,                                                            \
    .mkdir = mkdir,         .malloc = malloc,       .calloc = calloc,          \
    .realloc = realloc,     .free = free,           .thread_create = pthread_create, \
    .mkdirat = mkdirat,     .readdir = readdir,                                \
}

const struct topic_os topic__os_default = OS_DEFAULTS;
struct topic_os topic__os = OS_DEFAULTS;

/* The errno of a failed call, never 0: a failure must not read as success.
 * An exhausted disk quota is a full disk to the user who meets it, and the
 * documents promise -ENOSPC for that; callers need not know of EDQUOT. */
int topic__neg_errno(void)
{
    if (errno == EDQUOT)
        return -ENOSPC;
    return errno > 0 ? -errno : -EIO;
}

/*
 * Files inside the topic directory (dirfd is not AT_FDCWD) are opened
 * without following a symbolic link: a link there (put by whoever can
 * write the directory) would make a writer, or even a reader creating
 * topic.wait, write to a file outside the topic.  The directory's own path
 * may be a link.  Nor does anything block: opening a FIFO someone put
 * there in place of a file used to wait for ever for a writer to the pipe.
 * O_NONBLOCK changes nothing for regular files; topic__fsize() then
 * refuses anything that is not one.
 */
int topic__openat(int dirfd, const char *path, int flags, mode_t mode)
{
    int fd;
    if (dirfd != AT_FDCWD)
        flags |= O_NOFOLLOW | O_NONBLOCK;
    do
        fd = topic__os.openat(dirfd, path, flags | O_CLOEXEC, mode);
    while (fd < 0 && errno == EINTR);
    /* A directory opened for writing (EISDIR), a socket (ENXIO): not a
     * file of the topic either, reported as one that is not a regular
     * file is (topic__fsize). */
    if (fd < 0 && dirfd != AT_FDCWD && !(flags & O_DIRECTORY) &&
        (errno == EISDIR || errno == ENXIO))
        return TOPIC_ECORRUPT;
    return fd < 0 ? topic__neg_errno() : fd;
}

void topic__close(int fd)
{
    if (fd >= 0)
        topic__os.close(fd);
}

int topic__pread_all(int fd, void *buf, size_t n, off_t off)
{
    char *p = buf;
    while (n > 0) {
        ssize_t r = topic__os.pread(fd, p, n, off);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            return topic__neg_errno();
        }
        if (r == 0)
            return -EIO;            /* the file is shorter than it must be */
        p += r, n -= (size_t)r, off += r;
    }
    return 0;
}

int topic__pwrite_all(int fd, const void *buf, size_t n, off_t off)
{
    const char *p = buf;
    while (n > 0) {
        ssize_t r = topic__os.pwrite(fd, p, n, off);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            return topic__neg_errno();
        }
        if (r == 0)
            return -ENOSPC;
        p += r, n -= (size_t)r, off += r;
    }
    return 0;
}

int topic__fdatasync(int fd)
{
    return topic__os.fdatasync(fd) < 0 ? topic__neg_errno() : 0;
}

int topic__fsync(int fd)
{
    return topic__os.fsync(fd) < 0 ? topic__neg_errno() : 0;
}

/*
 * Reserves blocks for the first `len` bytes of the file so that running out
 * of disk shows up here, as -ENOSPC, rather than as SIGBUS on a mapped page.
 * File systems without fallocate() get a sparse file instead.
 */
int topic__fallocate(int fd, off_t len)
{
    return topic__fallocate_range(fd, 0, len);
}

/*
 * Where the file system has no fallocate() (ext2, ext3's block-mapped files,
 * some network file systems), the space is allocated by writing zeros past
 * the end of the file.  Extending the file sparsely instead, with
 * ftruncate(), would leave holes that a store through a mapping fills only
 * when it faults, and on a full disk that fault is SIGBUS rather than an
 * error.  Only bytes past the end are written: nobody uses them yet, while
 * bytes below it may be records or another process's words.  The cost is
 * writing the log's bytes twice on those file systems.
 */
static int fill_zeros(int fd, off_t off, off_t end)
{
    static const char zeros[64 << 10];
    struct stat st;
    if (topic__os.fstat(fd, &st) < 0)
        return topic__neg_errno();
    if (off < st.st_size)
        off = st.st_size;
    while (off < end) {
        size_t n = end - off < (off_t)sizeof zeros ? (size_t)(end - off) : sizeof zeros;
        int rc = topic__pwrite_all(fd, zeros, n, off);
        if (rc < 0)
            return rc;
        off += (off_t)n;
    }
    return 0;
}

int topic__fallocate_range(int fd, off_t off, off_t len)
{
    if (len <= 0)
        return 0;
    int r;
    do   /* tmpfs gives up with EINTR when a signal is pending */
        r = topic__os.fallocate(fd, 0, off, len);
    while (r < 0 && errno == EINTR);
    if (r == 0)
        return 0;
    if (errno == EOPNOTSUPP || errno == ENOSYS)
        return fill_zeros(fd, off, off + len);
    return topic__neg_errno();
}

long topic__futex(void *word, int op, uint32_t val, const struct timespec *timeout,
                  uint32_t bitset)
{
    return syscall(SYS_futex, word, op, val, timeout, NULL, bitset);
}

int topic__ftruncate(int fd, off_t len)
{
    int r;
    do
        r = topic__os.ftruncate(fd, len);
    while (r < 0 && errno == EINTR);
    return r < 0 ? topic__neg_errno() : 0;
}

int topic__renameat(int dirfd, const char *from, const char *to)
{
    return topic__os.renameat(dirfd, from, dirfd, to) < 0 ? topic__neg_errno() : 0;
}

int topic__unlinkat(int dirfd, const char *path)
{
    return topic__os.unlinkat(dirfd, path, 0) < 0 ? topic__neg_errno() : 0;
}

/* Mappings this thread was refused for want of address space or map areas;
 * see topic__maps_refused(). */
static __thread unsigned maps_refused;

int topic__mmap(size_t len, int prot, int fd, void **out)
{
    int flags = fd >= 0 ? MAP_SHARED : (MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE);
    void *p = topic__os.mmap(NULL, len, prot, flags, fd, 0);
    if (p == MAP_FAILED) {
        int rc = topic__neg_errno();
        if (rc == -ENOMEM)
            maps_refused++;
        return rc;
    }
    *out = p;
    return 0;
}

unsigned topic__maps_refused(void)
{
    return maps_refused;
}

void topic__munmap(void *p, size_t len)
{
    if (p != NULL && len > 0)
        topic__os.munmap(p, len);
}

int topic__flock(int fd, int op)
{
    int r;
    do
        r = topic__os.flock(fd, op);
    while (r < 0 && errno == EINTR);
    return r < 0 ? topic__neg_errno() : 0;
}

size_t topic__page_size(void)
{
    return (size_t)sysconf(_SC_PAGESIZE);
}

size_t topic__pages_for(size_t len)
{
    size_t page = topic__page_size();
    return len == 0 ? page : (len + page - 1) / page * page;
}

/* The size of a topic's file; TOPIC_ECORRUPT when it is not a regular file
 * (a FIFO, a device or a socket where a file of the topic should be). */
int topic__fsize_id(int fd, size_t *size, uint64_t *id)
{
    struct stat st;
    if (topic__os.fstat(fd, &st) < 0)
        return topic__neg_errno();
    if (id != NULL) {
        id[0] = (uint64_t)st.st_dev;
        id[1] = (uint64_t)st.st_ino;
    }
    if (!S_ISREG(st.st_mode))
        return TOPIC_ECORRUPT;
    *size = (size_t)st.st_size;
    return 0;
}

int topic__fsize(int fd, size_t *size)
{
    return topic__fsize_id(fd, size, NULL);
}

int topic__readdir(DIR *d, struct dirent **de)
{
    errno = 0;
    *de = topic__os.readdir(d);
    if (*de != NULL)
        return 1;
    return errno == 0 ? 0 : topic__neg_errno();
}

/*
 * statx() for the link count alone: on ext4 an fstat() of a file just
 * synced cost a quarter of the throughput of durable appends (pwrite,
 * fdatasync, fstat: about 8,000 a second against 11,500 without), while
 * this costs nothing measurable (12,000).  A kernel or sandbox without
 * statx() gets fstat().
 */
int topic__still_linked(int fd)
{
    struct statx sx;
    int rc = topic__os.statx(fd, "", AT_EMPTY_PATH | AT_STATX_DONT_SYNC, STATX_NLINK, &sx);
    if (rc == 0 && (sx.stx_mask & STATX_NLINK))
        return sx.stx_nlink == 0 ? -ENOENT : 0;
    if (rc < 0 && errno != ENOSYS && errno != EINVAL && errno != EPERM)
        return topic__neg_errno();
    struct stat st;
    if (topic__os.fstat(fd, &st) < 0)
        return topic__neg_errno();
    return st.st_nlink == 0 ? -ENOENT : 0;
}

void *topic__malloc(size_t n) { return topic__os.malloc(n); }
void *topic__calloc(size_t n, size_t size) { return topic__os.calloc(n, size); }
void *topic__realloc(void *p, size_t n) { return topic__os.realloc(p, n); }
void  topic__free(void *p) { if (p != NULL) topic__os.free(p); }

char *topic__strdup(const char *s)
{
    size_t n = strlen(s) + 1;
    char *d = topic__malloc(n);
    if (d != NULL)
        memcpy(d, s, n);
    return d;
}

int topic__write_file_atomic(int dirfd, const char *name, const void *buf, size_t n)
{
    char tmp[256];
    snprintf(tmp, sizeof tmp, "%s.tmp", name);
    int fd = topic__openat(dirfd, tmp, O_WRONLY | O_CREAT | O_TRUNC, TOPIC__FILE_MODE);
    if (fd < 0)
        return fd;
    int rc = topic__pwrite_all(fd, buf, n, 0);
    if (rc == 0)
        rc = topic__fsync(fd);
    topic__close(fd);
    if (rc == 0)
        rc = topic__renameat(dirfd, tmp, name);
    if (rc == 0)
        rc = topic__fsync(dirfd);
    if (rc < 0)
        topic__os.unlinkat(dirfd, tmp, 0);
    return rc;
}

int topic__read_file(int dirfd, const char *name, char **out, size_t *len, size_t max)
{
    int fd = topic__openat(dirfd, name, O_RDONLY, 0);
    if (fd < 0)
        return fd;
    size_t size;
    int rc = topic__fsize(fd, &size);
    if (rc == 0 && size > max)
        rc = -EFBIG;
    char *buf = NULL;
    if (rc == 0 && (buf = topic__malloc(size + 1)) == NULL)
        rc = -ENOMEM;
    if (rc == 0)
        rc = topic__pread_all(fd, buf, size, 0);
    topic__close(fd);
    if (rc < 0) {
        topic__free(buf);
        return rc;
    }
    buf[size] = '\0';
    *out = buf;
    *len = size;
    return 0;
}
