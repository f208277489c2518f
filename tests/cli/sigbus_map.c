/*
 * An LD_PRELOAD shim for test_cli.sh: a read-only mapping of the file whose
 * name ends with $SIGBUS_LOG gets everything past its first page replaced by
 * a mapping of an empty memfd, so that reading there raises SIGBUS, as when
 * a writer cuts the file short under the mapping or the disk fails a read.
 * The file itself is left alone.  Other mappings are passed on.
 *
 * SPDX-License-Identifier: BSD-2-Clause
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

void *mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off);

void *mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off)
{
    static void *(*real)(void *, size_t, int, int, int, off_t);
    if (real == NULL)
        real = (void *(*)(void *, size_t, int, int, int, off_t))dlsym(RTLD_NEXT, "mmap");
    void *p = real(addr, len, prot, flags, fd, off);
    const char *want = getenv("SIGBUS_LOG");
    if (p == MAP_FAILED || want == NULL || fd < 0 || prot != PROT_READ || len <= 4096)
        return p;
    char link[64], path[4096];
    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    ssize_t n = readlink(link, path, sizeof path - 1);
    if (n <= 0)
        return p;
    path[n] = '\0';
    size_t w = strlen(want);
    if ((size_t)n < w || strcmp(path + n - w, want) != 0)
        return p;
    int mfd = memfd_create("sigbus", MFD_CLOEXEC);
    if (mfd >= 0) {
        real((char *)p + 4096, len - 4096, PROT_READ, MAP_SHARED | MAP_FIXED, mfd, 0);
        close(mfd);
    }
    return p;
}
