/*
 * Listing a topic's segment files: "<20-digit base offset>.log", as the
 * README's table of files names them; and opening the files of a topic
 * directory that the tool reads itself, never blocking on a FIFO put there.
 *
 * SPDX-License-Identifier: BSD-2-Clause
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"

static bool segment_name(const char *name, uint64_t *base)
{
    if (strlen(name) != 24 || strcmp(name + 20, ".log") != 0)
        return false;
    char digits[21];
    memcpy(digits, name, 20);
    digits[20] = '\0';
    return parse_u64(digits, base);
}

static int cmp_seg(const void *a, const void *b)
{
    uint64_t x = ((const struct seg_file *)a)->base, y = ((const struct seg_file *)b)->base;
    return x < y ? -1 : x > y;
}

/* The next entry of d in *de: 1, 0 at the end of the directory, or -errno.
 * readdir() tells a failure from the end only by errno, and a listing cut
 * short must not pass for the whole topic. */
static int next_entry(DIR *d, struct dirent **de)
{
    errno = 0;
    *de = readdir(d);
    return *de != NULL ? 1 : errno ? -errno : 0;
}

int seg_list(const char *dir, struct seg_file **out, size_t *n)
{
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0)
        return -errno;
    DIR *d = fdopendir(dfd);
    if (d == NULL) {
        int e = -errno;
        close(dfd);
        return e;
    }
    struct seg_file *v = NULL;
    size_t count = 0, cap = 0;
    int rc;
    struct dirent *de;
    while ((rc = next_entry(d, &de)) > 0) {
        uint64_t base;
        if (!segment_name(de->d_name, &base))
            continue;
        struct stat st;
        if (fstatat(dfd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
            if (errno == ENOENT)
                continue;   /* deleted meanwhile */
            rc = -errno;
            break;
        }
        if (count == cap) {
            cap = cap ? cap * 2 : 16;
            struct seg_file *nv = realloc(v, cap * sizeof *v);
            if (nv == NULL) {
                rc = -ENOMEM;
                break;
            }
            v = nv;
        }
        v[count].base = base;
        memcpy(v[count].name, de->d_name, 25);   /* 24 characters and the NUL */
        v[count].not_regular = file_not_regular(st.st_mode);
        v[count].size = v[count].not_regular ? 0 : (uint64_t)st.st_size;
        count++;
    }
    closedir(d);
    if (rc < 0) {
        free(v);
        return rc;
    }
    if (count > 1)
        qsort(v, count, sizeof *v, cmp_seg);
    *out = v;
    *n = count;
    return 0;
}

size_t seg_report_irregular(const char *cmd, const char *dir, const struct seg_file *segs,
                            size_t n)
{
    size_t count = 0;
    for (size_t i = 0; i < n; i++)
        if (segs[i].not_regular != NULL) {
            complain(TOOL_NOTFOUND, "%s: %s/%s: not a regular file but %s", cmd, dir,
                     segs[i].name, segs[i].not_regular);
            count++;
        }
    return count;
}

void seg_report_irregular_at(const char *cmd, const char *dir, uint64_t offset)
{
    struct seg_file *segs;
    size_t n, k = SIZE_MAX;
    if (seg_list(dir, &segs, &n) < 0)
        return;
    for (size_t i = 0; i < n; i++)
        if (segs[i].base <= offset)
            k = i;
    if (k != SIZE_MAX)
        seg_report_irregular(cmd, dir, &segs[k], 1);
    free(segs);
}

/* The name of a file the library opens in a topic directory. */
static bool topic_file_name(const char *name)
{
    static const char *const fixed[] = { "topic.conf", "topic.state", "topic.wait" };
    for (size_t i = 0; i < sizeof fixed / sizeof fixed[0]; i++)
        if (strcmp(name, fixed[i]) == 0)
            return true;
    size_t n = strlen(name);
    if (n < 21 || strspn(name, "0123456789") != 20)
        return false;
    return strcmp(name + 20, ".log") == 0 || strcmp(name + 20, ".index") == 0 ||
           strcmp(name + 20, ".timeindex") == 0;
}

long each_irregular_file(const char *dir,
                         void (*fn)(void *arg, const char *name, const char *kind), void *arg)
{
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0)
        return -errno;
    DIR *d = fdopendir(dfd);
    if (d == NULL) {
        int e = -errno;
        close(dfd);
        return e;
    }
    long count = 0;
    int more;
    struct dirent *de;
    while ((more = next_entry(d, &de)) > 0) {
        struct stat st;
        const char *kind;
        if (!topic_file_name(de->d_name) ||
            fstatat(dfd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0 ||
            (kind = file_not_regular(st.st_mode)) == NULL)
            continue;
        fn(arg, de->d_name, kind);
        count++;
    }
    closedir(d);
    return more < 0 ? more : count;
}

struct complaint {
    const char *cmd, *dir;
};

static void complain_irregular(void *arg, const char *name, const char *kind)
{
    const struct complaint *c = arg;
    complain(TOOL_NOTFOUND, "%s%s%s/%s: not a regular file but %s", c->cmd ? c->cmd : "",
             c->cmd ? ": " : "", c->dir, name, kind);
}

long report_irregular_files(const char *cmd, const char *dir)
{
    struct complaint c = { cmd, dir };
    return each_irregular_file(dir, complain_irregular, &c);
}

const char *file_not_regular(mode_t mode)
{
    if (S_ISREG(mode))
        return NULL;
    if (S_ISFIFO(mode))
        return "a FIFO";
    if (S_ISDIR(mode))
        return "a directory";
    if (S_ISLNK(mode))
        return "a symbolic link";
    if (S_ISSOCK(mode))
        return "a socket";
    if (S_ISCHR(mode))
        return "a character device";
    if (S_ISBLK(mode))
        return "a block device";
    return "a file of an unknown type";
}

int topic_file_open(const char *dir, const char *name, struct stat *st,
                    const char **not_regular)
{
    char path[4096];
    *not_regular = NULL;
    if ((size_t)snprintf(path, sizeof path, "%s/%s", dir, name) >= sizeof path)
        return -ENAMETOOLONG;
    /* O_NONBLOCK: opening a FIFO for reading would wait for a writer; it
     * changes nothing for a regular file, the only kind read from here. */
    int fd;
    do
        fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOFOLLOW);
    while (fd < 0 && errno == EINTR);
    if (fd < 0) {
        int e = -errno;
        /* ELOOP is what O_NOFOLLOW gives for a symbolic link, ENXIO what
         * opening a socket gives: name what is there instead. */
        if (lstat(path, st) == 0 && !S_ISREG(st->st_mode) &&
            (*not_regular = file_not_regular(st->st_mode)) != NULL)
            return TOPIC_ECORRUPT;
        return e;
    }
    if (fstat(fd, st) < 0) {
        int e = -errno;
        close(fd);
        return e;
    }
    *not_regular = file_not_regular(st->st_mode);
    if (*not_regular != NULL) {
        close(fd);
        return TOPIC_ECORRUPT;
    }
    return fd;
}

uint64_t seg_aux_size(const char *dir, const struct seg_file *s, const char *ext)
{
    char path[4096];
    struct stat st;
    snprintf(path, sizeof path, "%s/%020" PRIu64 "%s", dir, s->base, ext);
    return stat(path, &st) == 0 ? (uint64_t)st.st_size : 0;
}
