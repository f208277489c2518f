/*
 * Test helpers: see testutil.h.
 *
 * SPDX-License-Identifier: BSD-2-Clause
 */
#include "testutil.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

char *tu_mkdtemp(const char *tag)
{
    char tmpl[256];
    snprintf(tmpl, sizeof tmpl, "/tmp/libtopic-%s-XXXXXX", tag ? tag : "test");
    if (!mkdtemp(tmpl))
        return NULL;
    return strdup(tmpl);
}

int tu_rmrf(const char *path)
{
    struct stat st;
    if (lstat(path, &st) != 0)
        return errno == ENOENT ? 0 : -errno;
    if (S_ISDIR(st.st_mode)) {
        DIR *d = opendir(path);
        if (!d)
            return -errno;
        struct dirent *e;
        int rc = 0;
        while ((e = readdir(d)) != NULL) {
            if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
                continue;
            char *sub = tu_path(path, e->d_name);
            int r = tu_rmrf(sub);
            if (r && !rc)
                rc = r;
            free(sub);
        }
        closedir(d);
        if (rmdir(path) != 0 && !rc)
            rc = -errno;
        return rc;
    }
    return unlink(path) == 0 ? 0 : -errno;
}

char *tu_path(const char *dir, const char *name)
{
    size_t n = strlen(dir) + strlen(name) + 2;
    char *p = malloc(n);
    if (!p)
        abort();
    snprintf(p, n, "%s/%s", dir, name);
    return p;
}

char *tu_segment_path(const char *dir, uint64_t base, const char *ext)
{
    char name[64];
    snprintf(name, sizeof name, "%020llu.%s", (unsigned long long)base, ext);
    return tu_path(dir, name);
}

long long tu_file_size(const char *path)
{
    struct stat st;
    if (stat(path, &st) != 0)
        return -errno;
    return (long long)st.st_size;
}

int tu_exists(const char *path)
{
    struct stat st;
    return lstat(path, &st) == 0;
}

int tu_flip_bit(const char *path, off_t pos, int bit)
{
    int fd = open(path, O_RDWR);
    if (fd < 0)
        return -errno;
    unsigned char b;
    int rc = 0;
    if (pread(fd, &b, 1, pos) != 1) {
        rc = -EIO;
    } else {
        b ^= (unsigned char)(1u << (bit & 7));
        if (pwrite(fd, &b, 1, pos) != 1)
            rc = -EIO;
    }
    close(fd);
    return rc;
}

int tu_truncate(const char *path, off_t len)
{
    return truncate(path, len) == 0 ? 0 : -errno;
}

int tu_read_file(const char *path, unsigned char **data, size_t *len)
{
    int fd = open(path, O_RDONLY);
    if (fd < 0)
        return -errno;
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int e = -errno;
        close(fd);
        return e;
    }
    size_t n = (size_t)st.st_size;
    unsigned char *p = malloc(n ? n : 1);
    if (!p) {
        close(fd);
        return -ENOMEM;
    }
    size_t got = 0;
    while (got < n) {
        ssize_t r = pread(fd, p + got, n - got, (off_t)got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) {
            free(p);
            close(fd);
            return r < 0 ? -errno : -EIO;
        }
        got += (size_t)r;
    }
    close(fd);
    *data = p;
    *len = n;
    return 0;
}

static int write_all(int fd, const void *data, size_t len)
{
    const unsigned char *p = data;
    while (len > 0) {
        ssize_t w = write(fd, p, len);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return w < 0 ? -errno : -EIO;
        p += w;
        len -= (size_t)w;
    }
    return 0;
}

int tu_write_file(const char *path, const void *data, size_t len)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0)
        return -errno;
    int rc = write_all(fd, data, len);
    close(fd);
    return rc;
}

int tu_overwrite_file(const char *path, const void *data, size_t len)
{
    int fd = open(path, O_RDWR | O_CREAT, 0644);
    if (fd < 0)
        return -errno;
    struct stat st;
    int rc = fstat(fd, &st) == 0 ? 0 : -errno;
    if (rc == 0 && (size_t)st.st_size == len && len > 0) {
        /* Skip the write when the content is already right. */
        unsigned char *cur = malloc(len);
        if (cur && pread(fd, cur, len, 0) == (ssize_t)len && memcmp(cur, data, len) == 0) {
            free(cur);
            close(fd);
            return 0;
        }
        free(cur);
    }
    const unsigned char *p = data;
    size_t done = 0;
    while (rc == 0 && done < len) {
        ssize_t w = pwrite(fd, p + done, len - done, (off_t)done);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            rc = w < 0 ? -errno : -EIO;
        else
            done += (size_t)w;
    }
    if (rc == 0 && (size_t)st.st_size != len && ftruncate(fd, (off_t)len) != 0)
        rc = -errno;
    close(fd);
    return rc;
}

int tu_append_file(const char *path, const void *data, size_t len)
{
    int fd = open(path, O_WRONLY | O_APPEND);
    if (fd < 0)
        return -errno;
    int rc = write_all(fd, data, len);
    close(fd);
    return rc;
}

int tu_copy_file(const char *src, const char *dst)
{
    unsigned char *data;
    size_t len;
    int rc = tu_read_file(src, &data, &len);
    if (rc)
        return rc;
    rc = tu_write_file(dst, data, len);
    free(data);
    return rc;
}

int tu_copy_dir(const char *src, const char *dst)
{
    if (mkdir(dst, 0755) != 0 && errno != EEXIST)
        return -errno;
    /* Remove what dst holds that src lacks. */
    DIR *d = opendir(dst);
    if (!d)
        return -errno;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
            continue;
        char *s = tu_path(src, e->d_name);
        if (!tu_exists(s)) {
            char *t = tu_path(dst, e->d_name);
            tu_rmrf(t);
            free(t);
        }
        free(s);
    }
    closedir(d);
    d = opendir(src);
    if (!d)
        return -errno;
    int rc = 0;
    while ((e = readdir(d)) != NULL) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
            continue;
        char *s = tu_path(src, e->d_name);
        char *t = tu_path(dst, e->d_name);
        struct stat st;
        if (lstat(s, &st) == 0 && S_ISREG(st.st_mode)) {
            int r = tu_copy_file(s, t);
            if (r && !rc)
                rc = r;
        }
        free(s);
        free(t);
    }
    closedir(d);
    return rc;
}

static int is_segment_log(const char *name, uint64_t *base)
{
    size_t n = strlen(name);
    if (n != 24 || strcmp(name + 20, ".log") != 0)
        return 0;
    uint64_t v = 0;
    for (int i = 0; i < 20; i++) {
        if (name[i] < '0' || name[i] > '9')
            return 0;
        v = v * 10 + (uint64_t)(name[i] - '0');
    }
    *base = v;
    return 1;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

int tu_list_segments(const char *dir, uint64_t **bases)
{
    DIR *d = opendir(dir);
    if (!d)
        return -errno;
    size_t cap = 16, n = 0;
    uint64_t *v = malloc(cap * sizeof *v);
    if (!v) {
        closedir(d);
        return -ENOMEM;
    }
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        uint64_t b;
        if (!is_segment_log(e->d_name, &b))
            continue;
        if (n == cap) {
            cap *= 2;
            uint64_t *nv = realloc(v, cap * sizeof *v);
            if (!nv) {
                free(v);
                closedir(d);
                return -ENOMEM;
            }
            v = nv;
        }
        v[n++] = b;
    }
    closedir(d);
    qsort(v, n, sizeof *v, cmp_u64);
    *bases = v;
    return (int)n;
}

int tu_count_suffix(const char *dir, const char *suffix)
{
    DIR *d = opendir(dir);
    if (!d)
        return -errno;
    size_t sl = strlen(suffix);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        size_t l = strlen(e->d_name);
        if (l >= sl && !strcmp(e->d_name + l - sl, suffix))
            n++;
    }
    closedir(d);
    return n;
}

int64_t tu_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

uint64_t tu_mono_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

void tu_sleep_us(uint64_t us)
{
    struct timespec ts = { (time_t)(us / 1000000u), (long)(us % 1000000u) * 1000L };
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

uint64_t tu_mix64(uint64_t x)
{
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

void tu_rng_seed(tu_rng *r, uint64_t seed)
{
    r->s = seed;
}

uint64_t tu_rng_next(tu_rng *r)
{
    r->s += 0x9e3779b97f4a7c15ull;
    uint64_t z = r->s;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

uint64_t tu_rng_below(tu_rng *r, uint64_t n)
{
    return n ? tu_rng_next(r) % n : 0;
}

size_t tu_value_len(uint64_t offset, uint64_t seed, size_t maxlen)
{
    uint64_t h = tu_mix64(offset * 0x100000001b3ull ^ seed ^ 0x5a5a5a5a5a5aull);
    /* One record in 16 is empty, to keep zero-length values in every run. */
    if ((h & 15) == 0)
        return 0;
    return (size_t)((h >> 8) % (maxlen + 1));
}

void tu_fill(uint64_t offset, uint64_t seed, void *buf, size_t len)
{
    unsigned char *p = buf;
    uint64_t st = tu_mix64(offset ^ (seed * 0x9e3779b97f4a7c15ull));
    size_t i = 0;
    while (i < len) {
        st = tu_mix64(st);
        for (int k = 0; k < 8 && i < len; k++, i++)
            p[i] = (unsigned char)(st >> (8 * k));
    }
}

int tu_check_fill(uint64_t offset, uint64_t seed, const void *buf, size_t len)
{
    const unsigned char *p = buf;
    uint64_t st = tu_mix64(offset ^ (seed * 0x9e3779b97f4a7c15ull));
    size_t i = 0;
    while (i < len) {
        st = tu_mix64(st);
        for (int k = 0; k < 8 && i < len; k++, i++)
            if (p[i] != (unsigned char)(st >> (8 * k)))
                return 0;
    }
    return 1;
}

int tu_append_fill_batch(topic *t, size_t n, size_t len, uint64_t first, uint64_t seed,
                         uint64_t *first_offset)
{
    topic_record *recs = calloc(n > 0 ? n : 1, sizeof *recs);
    unsigned char *vals = malloc(n * len > 0 ? n * len : 1);
    int rc = -ENOMEM;
    if (recs != NULL && vals != NULL) {
        for (size_t i = 0; i < n; i++) {
            tu_fill(first + i, seed, vals + i * len, len);
            recs[i].value = vals + i * len;
            recs[i].value_len = len;
        }
        rc = topic_append_batch(t, recs, n, first_offset);
    }
    free(recs);
    free(vals);
    return rc;
}

int tu_under_valgrind(void)
{
    return getenv("TOPIC_UNDER_VALGRIND") != NULL;
}

/* Under valgrind code runs some 30 times slower, and more on a busy
 * machine. */
#define VALGRIND_SLOWDOWN 30u

uint64_t tu_limit_us(uint64_t us)
{
    return tu_under_valgrind() ? us * VALGRIND_SLOWDOWN : us;
}

/* The start and end of a line "start-end perms ..." of /proc/self/maps. */
static int maps_range(const char *line, uintptr_t *start, uintptr_t *end)
{
    uintptr_t v[2] = { 0, 0 };
    for (int i = 0; i < 2; i++) {
        int digits = 0;
        for (;; line++, digits++) {
            int d = *line >= '0' && *line <= '9'   ? *line - '0'
                    : *line >= 'a' && *line <= 'f' ? *line - 'a' + 10
                                                   : -1;
            if (d < 0)
                break;
            v[i] = v[i] << 4 | (uintptr_t)d;
        }
        if (digits == 0 || *line++ != (i == 0 ? '-' : ' '))
            return -1;
    }
    *start = v[0];
    *end = v[1];
    return 0;
}

/* Unmaps every mapping of a file whose path holds "/libtopic-", with system
 * calls only.  Rereads the list until a pass finds none, as it may not fit
 * the buffer in one go. */
static void unmap_topic_files(void)
{
    static char buf[1 << 16];
    for (int pass = 0; pass < 64; pass++) {
        int fd = open("/proc/self/maps", O_RDONLY | O_CLOEXEC);
        if (fd < 0)
            return;
        size_t n = 0;
        ssize_t r;
        while (n < sizeof buf - 1 && (r = read(fd, buf + n, sizeof buf - 1 - n)) > 0)
            n += (size_t)r;
        close(fd);
        buf[n] = '\0';
        int found = 0;
        for (char *line = buf, *nl; *line != '\0'; line = nl + 1) {
            nl = strchr(line, '\n');
            if (nl == NULL)
                break;   /* cut off by the buffer: the next pass reads it */
            *nl = '\0';
            uintptr_t start, end;
            if (strstr(line, "/libtopic-") != NULL && maps_range(line, &start, &end) == 0 &&
                munmap((void *)start, end - start) == 0)
                found++;
        }
        if (found == 0)
            return;
    }
}

void tu_child_exit(int status)
{
    if (tu_under_valgrind()) {
        alarm(0);   /* a child's alarm must not end the leak check */
        unmap_topic_files();
    }
    _exit(status & 0xff);
}

void tu_die(int status)
{
    if (tu_under_valgrind()) {
        char arg[] = "exit 255", *p = arg + 5;
        unsigned s = (unsigned)status & 0xffu;
        if (s >= 100)
            *p++ = (char)('0' + s / 100);
        if (s >= 10)
            *p++ = (char)('0' + s / 10 % 10);
        *p++ = (char)('0' + s % 10);
        *p = '\0';
        execl("/bin/sh", "sh", "-c", arg, (char *)NULL);
        /* Without a shell, the leak check is slow but the status is right. */
    }
    _exit(status & 0xff);
}

int tu_wait_child(pid_t pid, int timeout_ms)
{
    uint64_t deadline = tu_mono_us() + tu_limit_us((uint64_t)timeout_ms * 1000u);
    int status;
    for (;;) {
        pid_t r = waitpid(pid, &status, WNOHANG);
        if (r == pid)
            break;
        if (r < 0 && errno != EINTR)
            return -errno;
        if (tu_mono_us() >= deadline) {
            kill(pid, SIGKILL);
            while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
                ;
            return -1000 - SIGKILL;
        }
        tu_sleep_us(500);
    }
    if (WIFEXITED(status))
        return WEXITSTATUS(status);
    if (WIFSIGNALED(status))
        return -1000 - WTERMSIG(status);
    return -1;
}

int tu_run_child(int (*fn)(void *), void *arg, int timeout_ms)
{
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0)
        return -errno;
    if (pid == 0) {
        tu_child_exit(fn(arg));
    }
    return tu_wait_child(pid, timeout_ms);
}

#if defined(__SANITIZE_THREAD__)
/*
 * The tests fork children that open topics (and so start the writer's
 * background thread) from a process that has threads of its own.
 * ThreadSanitizer refuses that by default; the children here only call the
 * library and _exit, so allow it.  TSAN_OPTIONS from the environment still
 * apply on top of this.
 */
const char *__tsan_default_options(void);
const char *__tsan_default_options(void)
{
    return "die_after_fork=0";
}
#endif
