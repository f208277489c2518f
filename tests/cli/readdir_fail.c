/*
 * An LD_PRELOAD shim for test_cli.sh: the Nth call of readdir() in the
 * process (FAIL_READDIR_AT=N) fails with EIO, and the file named by
 * FAIL_READDIR_MARK is created to say that it did.  With
 * FAIL_READDIR_STICKY=1 every later call fails too, as on a directory that
 * went bad; otherwise every other call is passed on.  readdir() tells a
 * failure from the end of a directory only by errno, which is how a listing
 * cut short can pass for a whole one.
 *
 * With UNLINK_AFTER_LISTING=PATH, the first listing that reaches the end of
 * its directory removes PATH just before it says so, as retention removing
 * a segment right after a tool listed the topic would.
 *
 * SPDX-License-Identifier: BSD-2-Clause
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

struct dirent *readdir(DIR *d);

static long calls;
static int unlinked;

struct dirent *readdir(DIR *d)
{
    static struct dirent *(*real)(DIR *);
    if (real == NULL)
        real = (struct dirent * (*)(DIR *)) dlsym(RTLD_NEXT, "readdir");
    const char *at = getenv("FAIL_READDIR_AT");
    const char *sticky = getenv("FAIL_READDIR_STICKY");
    if (at != NULL && (++calls == atol(at) ||
                       (sticky != NULL && sticky[0] == '1' && calls > atol(at)))) {
        const char *mark = getenv("FAIL_READDIR_MARK");
        if (mark != NULL) {
            int fd = open(mark, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
            if (fd >= 0)
                close(fd);
        }
        errno = EIO;
        return NULL;
    }
    const char *victim = getenv("UNLINK_AFTER_LISTING");
    int saved = errno;
    errno = 0;
    struct dirent *e = real(d);
    if (e == NULL && errno == 0 && victim != NULL && !unlinked) {
        unlinked = 1;
        unlink(victim);
        errno = 0;
        return NULL;
    }
    if (e != NULL || errno == 0)
        errno = saved;
    return e;
}
