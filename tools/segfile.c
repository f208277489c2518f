/*
 * Listing a topic's segment files: "<20-digit base offset>.log", as the
 * README's table of files names them.
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
    int rc = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        uint64_t base;
        if (!segment_name(de->d_name, &base))
            continue;
        struct stat st;
        if (fstatat(dfd, de->d_name, &st, 0) < 0) {
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
        v[count].size = (uint64_t)st.st_size;
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

uint64_t seg_aux_size(const char *dir, const struct seg_file *s, const char *ext)
{
    char path[4096];
    struct stat st;
    snprintf(path, sizeof path, "%s/%020" PRIu64 "%s", dir, s->base, ext);
    return stat(path, &st) == 0 ? (uint64_t)st.st_size : 0;
}
