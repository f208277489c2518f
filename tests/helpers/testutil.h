/*
 * Helpers shared by the test programs: temporary directories, file surgery
 * (sizes, bit flips, truncation, copies), deterministic pseudo-random data and
 * running a function in a child process with a timeout.
 *
 * Every function here reports failure through its return value and never
 * calls a cmocka assertion, so that it is safe to use in forked children.
 *
 * SPDX-License-Identifier: BSD-2-Clause
 */
#ifndef TESTUTIL_H
#define TESTUTIL_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "topic.h"

/* Creates a fresh directory /tmp/libtopic-<tag>-XXXXXX and returns its path
 * (malloc'd; free it), or NULL. */
char *tu_mkdtemp(const char *tag);

/* Removes path and everything below it.  Returns 0 or -errno. */
int tu_rmrf(const char *path);

/* Formats "<dir>/<name>" into a malloc'd string (never NULL: aborts). */
char *tu_path(const char *dir, const char *name);

/* Formats "<dir>/%020llu.<ext>" into a malloc'd string. */
char *tu_segment_path(const char *dir, uint64_t base, const char *ext);

/* Size of a file in bytes, or -errno. */
long long tu_file_size(const char *path);

/* Whether path exists (any type). */
int tu_exists(const char *path);

/* Flips bit `bit` (0..7) of byte `pos` of the file.  Returns 0 or -errno. */
int tu_flip_bit(const char *path, off_t pos, int bit);

/* Truncates (or extends with zero bytes) the file to len.  0 or -errno. */
int tu_truncate(const char *path, off_t len);

/* Reads a whole file into a malloc'd buffer (*len set).  0 or -errno. */
int tu_read_file(const char *path, unsigned char **data, size_t *len);

/* Replaces a file's content with data[0..len).  0 or -errno. */
int tu_write_file(const char *path, const void *data, size_t len);

/* Makes a file (created if missing) hold exactly data[0..len), writing in
 * place and only when the content differs.  Unlike tu_write_file it never
 * truncates to zero first, which on ext4 forces a write-back at close.
 * 0 or -errno. */
int tu_overwrite_file(const char *path, const void *data, size_t len);

/* Appends data[0..len) to the end of a file.  0 or -errno. */
int tu_append_file(const char *path, const void *data, size_t len);

/* Copies src to dst (dst created or replaced).  0 or -errno. */
int tu_copy_file(const char *src, const char *dst);

/* Copies every regular file of directory src into directory dst (created if
 * missing); files in dst that src lacks are removed first.  0 or -errno. */
int tu_copy_dir(const char *src, const char *dst);

/*
 * Lists the base offsets of the segment files (*.log named by 20 digits) in
 * dir, sorted ascending, into a malloc'd array.  Returns the count or -errno.
 */
int tu_list_segments(const char *dir, uint64_t **bases);

/* Counts the directory entries whose names end with suffix, or -errno. */
int tu_count_suffix(const char *dir, const char *suffix);

/* Milliseconds since the Unix epoch (CLOCK_REALTIME). */
int64_t tu_now_ms(void);

/* Monotonic time in microseconds. */
uint64_t tu_mono_us(void);

/* Sleeps for us microseconds (resumes after signals). */
void tu_sleep_us(uint64_t us);

/* ------------------------------------------------------------------------ */
/* Deterministic pseudo-random data                                          */

/* A splitmix64 step: a good 64-bit mix of x. */
uint64_t tu_mix64(uint64_t x);

/* xorshift-style generator state; seed it with tu_rng_seed. */
typedef struct tu_rng {
    uint64_t s;
} tu_rng;

void     tu_rng_seed(tu_rng *r, uint64_t seed);
uint64_t tu_rng_next(tu_rng *r);
/* Uniform in [0, n) (n > 0). */
uint64_t tu_rng_below(tu_rng *r, uint64_t n);

/*
 * The canonical test value of the record at `offset` under `seed`: its length
 * is tu_value_len(offset, seed, maxlen) (0 .. maxlen) and its bytes are
 * tu_fill(offset, seed, buf, len).
 */
size_t tu_value_len(uint64_t offset, uint64_t seed, size_t maxlen);
void   tu_fill(uint64_t offset, uint64_t seed, void *buf, size_t len);

/* Returns 1 when buf[0..len) equals tu_fill(offset, seed, ., len), else 0. */
int tu_check_fill(uint64_t offset, uint64_t seed, const void *buf, size_t len);

/* topic_append_batch() of n records whose values are `len` bytes each,
 * tu_fill(first + i, seed, ., len) for record i, with no keys and
 * timestamp 0 (now); its result, or -ENOMEM when the values cannot be
 * allocated. */
int tu_append_fill_batch(topic *t, size_t n, size_t len, uint64_t first, uint64_t seed,
                         uint64_t *first_offset);

/* ------------------------------------------------------------------------ */
/* Child processes                                                           */

/*
 * Runs fn(arg) in a forked child whose exit status is fn's return value
 * (0..255).  Waits at most timeout_ms, 30 times that under valgrind (then
 * kills the child with SIGKILL).
 * Returns the child's exit code (>= 0), -1000 - signal when it died of a
 * signal (-1000 - SIGKILL after a timeout), or -errno when fork failed.
 */
int tu_run_child(int (*fn)(void *), void *arg, int timeout_ms);

/* Whether the tests run under valgrind (make check-valgrind sets
 * TOPIC_UNDER_VALGRIND). */
int tu_under_valgrind(void);

/* A time limit of `us` microseconds, there to catch a hang, as it should be
 * in this run: 30 times longer under valgrind (TOPIC_UNDER_VALGRIND). */
uint64_t tu_limit_us(uint64_t us);

/*
 * Ends a forked child with exit status `status` (0..255), without exit
 * handlers, as _exit() does.  Under valgrind it first unmaps the files of
 * the tests' topics (/tmp/libtopic-*) that the child inherited: a writer's
 * mapping of its active segment reaches past the end of the file, and
 * memcheck's leak check at exit would take a SIGBUS on every word of it for
 * many minutes.  It makes only system calls, so it is safe in a child
 * forked from a process with threads; the child must have no threads of
 * its own (a writer it opened itself ends with tu_die()).
 */
void tu_child_exit(int status) __attribute__((noreturn));

/*
 * Ends a child process that plays a writer killed in mid-flight: at once,
 * with exit status `status` (0..255), without exit handlers and with its
 * topics still open.  Under valgrind it execs "/bin/sh -c 'exit N'" instead,
 * which check-valgrind tells valgrind not to trace: memcheck's leak check at
 * exit would scan the writer's mapping of its active segment, which reaches
 * past the end of the file, and take a SIGBUS on every word of it for many
 * minutes.  It calls nothing that takes a lock, so it is safe in a child
 * forked from a process with threads.
 */
void tu_die(int status) __attribute__((noreturn));

/* Waits for pid up to timeout_ms, killing it with SIGKILL afterwards.
 * Returns as tu_run_child. */
int tu_wait_child(pid_t pid, int timeout_ms);

#endif /* TESTUTIL_H */
