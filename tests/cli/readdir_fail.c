/*
 * An LD_PRELOAD shim for test_cli.sh: the Nth call of readdir() in the
 * process (FAIL_READDIR_AT=N) fails with EIO, and the file named by
 * FAIL_READDIR_MARK is created to say that it did.  With
 * FAIL_READDIR_STICKY=1 every later call fails too, as on a directory that
 * went bad; otherwise every other call is passed on.  readdir() tells a failure from the end of a directory only
 * by errno, which is how a listing cut short can pass for a whole one.
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
    return real(d);
}
