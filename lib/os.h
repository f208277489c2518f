/*
 * Every system call and allocation the library makes goes through one table,
 * topic__os, so that tests can make the Nth call fail (EIO, ENOSPC, ENOMEM,
 * short writes) the way SQLite's aSyscall[] allows.  The wrappers below return
 * a negative errno instead of setting errno.
 */
#ifndef TOPIC_OS_H
#define TOPIC_OS_H

#include <dirent.h>
#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <time.h>

/* madvise() advice of Linux 5.14; older kernels refuse it with EINVAL. */
#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif

struct topic_os {
    int     (*openat)(int dirfd, const char *path, int flags, mode_t mode);
    int     (*close)(int fd);
    ssize_t (*pread)(int fd, void *buf, size_t n, off_t off);
    ssize_t (*pwrite)(int fd, const void *buf, size_t n, off_t off);
    int     (*fsync)(int fd);
    int     (*fdatasync)(int fd);
    int     (*fallocate)(int fd, int mode, off_t off, off_t len);
    int     (*ftruncate)(int fd, off_t len);
    int     (*renameat)(int olddirfd, const char *oldpath, int newdirfd, const char *newpath);
    int     (*unlinkat)(int dirfd, const char *path, int flags);
    void   *(*mmap)(void *addr, size_t len, int prot, int flags, int fd, off_t off);
    int     (*munmap)(void *addr, size_t len);
    int     (*madvise)(void *addr, size_t len, int advice);
    int     (*flock)(int fd, int op);
    int     (*fstat)(int fd, struct stat *st);
    int     (*statx)(int dirfd, const char *path, int flags, unsigned mask, struct statx *st);
    int     (*mkdir)(const char *path, mode_t mode);
    int     (*mkdirat)(int dirfd, const char *path, mode_t mode);
    struct dirent *(*readdir)(DIR *d);
    void   *(*malloc)(size_t n);
    void   *(*calloc)(size_t n, size_t size);
    void   *(*realloc)(void *p, size_t n);
    void    (*free)(void *p);
    int     (*thread_create)(pthread_t *th, const pthread_attr_t *attr,
                             void *(*fn)(void *), void *arg);
};

/* The live table.  Tests may replace entries; the library only reads it. */
extern struct topic_os topic__os;
/* The table as the library ships it, to restore after a test. */
extern const struct topic_os topic__os_default;

/*
 * Modes of the files and directories the library creates: everyone may read
 * and write, less the process's umask, as open(2) and mkdir(2) intend.  With
 * the usual umask 022 that is 0644 and 0755; a group that shares a topic
 * (umask 002, a setgid directory) gets files each of its users may write,
 * such as the group files of consumers running as different users.
 */
#define TOPIC__FILE_MODE 0666
#define TOPIC__DIR_MODE  0777

/* -errno of the call that just failed, never 0; an exhausted disk quota
 * (EDQUOT) is -ENOSPC, as the documents promise. */
int   topic__neg_errno(void);
int   topic__openat(int dirfd, const char *path, int flags, mode_t mode);
void  topic__close(int fd);
int   topic__pread_all(int fd, void *buf, size_t n, off_t off);
int   topic__pwrite_all(int fd, const void *buf, size_t n, off_t off);
int   topic__fdatasync(int fd);
int   topic__fsync(int fd);
int   topic__fallocate(int fd, off_t len);
/* The same for bytes [off, off + len), extending the file as needed. */
int   topic__fallocate_range(int fd, off_t off, off_t len);
int   topic__ftruncate(int fd, off_t len);
int   topic__renameat(int dirfd, const char *from, const char *to);
int   topic__unlinkat(int dirfd, const char *path);
int   topic__mmap(size_t len, int prot, int fd, void **out);
/* How many mappings this thread has been refused with ENOMEM: a caller
 * that compares it before and after a step that failed with -ENOMEM knows
 * whether giving back mappings can help (seglist.c), or whether the heap
 * ran out. */
unsigned topic__maps_refused(void);
void  topic__munmap(void *p, size_t len);
int   topic__flock(int fd, int op);
int   topic__fsize(int fd, size_t *size);
/* The same, and the file's identity: its device and inode numbers in
 * id[0] and id[1] (also for a file that is not regular). */
int   topic__fsize_id(int fd, size_t *size, uint64_t *id);
/* The next entry of d in *de: 1, or 0 at the end of the directory, or a
 * negative errno.  readdir() tells an error from the end only by errno, and
 * a listing cut short by one (EIO, or EOVERFLOW for a 64-bit inode number
 * in a build without 64-bit file offsets) must not pass for the whole. */
int   topic__readdir(DIR *d, struct dirent **de);
/* -ENOENT when the file open as fd has no name left (it or its directory
 * was deleted), the error of a failed statx(), else 0.  Cheap enough for
 * every sync: it asks for the link count alone (see os.c). */
int   topic__still_linked(int fd);
size_t topic__page_size(void);
/* Bytes of a mapping that holds `len` bytes of data: whole pages, one at
 * least. */
size_t topic__pages_for(size_t len);
void *topic__malloc(size_t n);
void *topic__calloc(size_t n, size_t size);
void *topic__realloc(void *p, size_t n);
void  topic__free(void *p);
char *topic__strdup(const char *s);
/* futex(2) on the 32-bit word at `word`: the library's sleeps and wake-ups
 * (the append lock, group commit, topic_wait).  Outside the table: there
 * is no failure of it to inject that a caller does not already retry. */
long  topic__futex(void *word, int op, uint32_t val, const struct timespec *timeout,
                   uint32_t bitset);
/* Writes a whole small file durably: temp file, fsync, rename, fsync dir. */
int   topic__write_file_atomic(int dirfd, const char *name, const void *buf, size_t n);
/* Reads a whole small file into a NUL-terminated malloc'd buffer. */
int   topic__read_file(int dirfd, const char *name, char **out, size_t *len, size_t max);

#endif /* TOPIC_OS_H */
