/* Helpers for the fuzz targets that build topic directories. */
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fuzz.h"

static void empty_dir(const char *dir)
{
    DIR *d = opendir(dir);
    if (d == NULL)
        return;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
        struct stat st;
        if (lstat(path, &st) == 0 && S_ISDIR(st.st_mode)) {
            empty_dir(path);
            rmdir(path);
        } else {
            unlink(path);
        }
    }
    closedir(d);
}

static char scratch[64];

/* The scratch directory goes when the process exits: the replay drivers of
 * `make check` and libFuzzer's timed runs both end with exit().  A run that
 * crashes leaves the last input's topic behind, which helps. */
static void remove_scratch(void)
{
    empty_dir(scratch);
    rmdir(scratch);
}

const char *fuzz_scratch(void)
{
    if (scratch[0] == '\0') {
        /* tmpfs where there is one: the targets sync a lot, and the disk is
         * not what is being tested. */
        snprintf(scratch, sizeof scratch, "%s/libtopic-fuzz-%d",
                 access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp", (int)getpid());
        mkdir(scratch, 0755);
        atexit(remove_scratch);
    }
    empty_dir(scratch);
    return scratch;
}

void fuzz_write(const char *dir, const char *name, const void *data, size_t size)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0)
        abort();
    if (size > 0 && write(fd, data, size) != (ssize_t)size)
        abort();
    close(fd);
}
