/*
 * Fault injection through the library's system-call table (topic__os), and a
 * power-loss model built on the same table.
 *
 * Fault injection (tf_*): tf_install() puts counting wrappers into topic__os.
 * Every call of a kind bumps an atomic counter (the writer's background
 * threads call too); tf_arm() makes the Nth call of one kind fail with a
 * chosen errno, once or from the Nth on.  Short transfers and EINTR can be
 * injected into pread/pwrite (and EINTR into the calls the library retries).
 * With `fast_sync`, fsync/fdatasync only check that the descriptor is valid
 * instead of waiting for the disk: nothing in these tests loses power for
 * real, the power-loss model below decides what a sync made durable.
 *
 * Power-loss model (pl_*): while active, it remembers what each file of one
 * topic directory held at its last successful fsync/fdatasync (data written
 * through a shared mapping included: the file is read back at the sync), and
 * which names each directory held at its last successful fsync (the topic
 * directory's own name: at the fsync of its parent).  A capture, taken on
 * request or automatically at every crash point (around every sync and after
 * every call that creates, extends, cuts, maps, renames or removes a file),
 * remembers both the durable and the current content of every durable name;
 * pl_materialize() turns a capture into a directory as a power loss at that
 * moment could leave it: the durable data, plus for each file some of what
 * was not durable yet (see faults.c for the exact rules).
 *
 * Like testutil, nothing here calls a cmocka assertion.
 *
 * SPDX-License-Identifier: BSD-2-Clause
 */
#ifndef FAULTS_H
#define FAULTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "topic.h"

enum tf_kind {
    TF_OPENAT, TF_CLOSE, TF_PREAD, TF_PWRITE, TF_FSYNC, TF_FDATASYNC, TF_FALLOCATE,
    TF_FTRUNCATE, TF_RENAMEAT, TF_UNLINKAT, TF_MMAP, TF_MUNMAP, TF_MADVISE, TF_FLOCK,
    TF_FSTAT, TF_MKDIR, TF_ALLOC,     /* malloc, calloc and realloc, counted together */
    TF_READDIR,
    TF_NKINDS
};

const char *tf_kind_name(int kind);

/* Installs the wrappers (counts zeroed, nothing armed).  Both this and
 * tf_uninstall() write the whole table, which a writer's background threads
 * read: call them before a writer's first append or after its close. */
void tf_install(bool fast_sync);
/* Restores topic__os_default and stops the power-loss model. */
void tf_uninstall(void);
/* Zeroes the counters, disarms, forgets injected failures. */
void tf_reset(void);
long tf_count(int kind);

/* The nth call (1-based) of `kind` fails with errno `err` (ENOMEM and NULL
 * for TF_ALLOC, MAP_FAILED for TF_MMAP); with `persistent` every later one
 * too.  Replaces any earlier arming. */
void tf_arm(int kind, long nth, int err, bool persistent);
/* The same, counting only the calls on a file whose name ends with
 * `suffix` (the Nth such call fails). */
void tf_arm_suffix(int kind, const char *suffix, long nth, int err, bool persistent);
void tf_disarm(void);
/* How many calls were made to fail since the last tf_reset(). */
long tf_fired(void);
/* True when every call made to fail was one the library is designed to
 * absorb: anything on topic.wait, an index file's fallocate, any call of the
 * page-preparing thread, read-only access to a regular file, unlinkat (see
 * note_fired() in faults.c for why). */
bool tf_fired_all_exempt(void);
/* "fsync #3 (fd 7 = 00000000000000000012.log)": the first non-exempt
 * injected failure, or the first one. */
const char *tf_fired_desc(void);

/*
 * Short transfers and EINTR.  pct values are percentages (0 = never):
 * pread/pwrite fail with EINTR (nothing transferred) eintr_pct of the time,
 * otherwise transfer a random shorter count short_pct of the time;
 * openat/ftruncate/flock/fallocate fail with EINTR retry_eintr_pct of the time.
 * seed makes the sequence reproducible.  All zero turns it off.
 */
void tf_short_io(uint64_t seed, unsigned eintr_pct, unsigned short_pct, unsigned retry_eintr_pct);
/* How many short transfers / EINTR failures were injected. */
long tf_short_count(void);
long tf_eintr_count(void);

/* Every segment a writer opened from now on makes gets a spare made ahead
 * of its roll (true: topic__spare_min = 0), which the library otherwise
 * does only for segments of 64 MiB and more; or the library's limit again
 * (false).  Fixtures' teardowns call it with false, so that a test that an
 * assertion ended early leaves the others the library's limit. */
void tf_spares(bool every_segment);
/* Waits up to timeout_ms while writer t has asked its flusher for a spare
 * that is not made yet (spare_wanted, read under append_lock), so that the
 * next roll takes it however slowly the flusher gets to it (under ASan on a
 * busy machine it took more than 10 ms). */
void tf_await_spare(topic *t, int timeout_ms);

/* Like tu_mkdtemp, but in $TOPIC_FAULT_TMPDIR, else /dev/shm when it is
 * usable (these tests make thousands of small topics: a RAM file system
 * keeps them fast), else /tmp. */
char *tf_mkdtemp(const char *tag);

/* Open file descriptors of this process, and mappings of files whose path
 * starts with `prefix` (for leak checks). */
int tf_open_fds(void);
int tf_file_maps(const char *prefix);

/* ------------------------------------------------------------------------ */
/* Power-loss model                                                          */

#define PL_MARKS 4

/* Starts modelling topic directory `root` (which may not exist yet: its name
 * then becomes durable at an fsync of its parent).  Whatever exists now is
 * taken as durable.  Needs tf_install().  0 or -errno. */
int  pl_start(const char *root);
/* Stops the model and frees every capture. */
void pl_stop(void);
/* Captures at every crash point (on) or only on request (off). */
void pl_auto(bool on);
/* While paused the model ignores every call (used while checking copies). */
void pl_pause(bool paused);
/* Numbers the test wants stored with each capture (what had to be durable
 * at that moment, and so on). */
void pl_set_marks(const uint64_t marks[PL_MARKS]);
/* Takes a capture now.  0 or -errno. */
int  pl_capture(const char *why);
size_t pl_ncaptures(void);
const char *pl_capture_why(size_t i);
void pl_capture_marks(size_t i, uint64_t marks[PL_MARKS]);
/* Whether the topic directory's name was durable in capture i. */
bool pl_capture_has_root(size_t i);
/*
 * Writes capture i as directory dst (removed first; not created when the
 * topic directory was not durable).  variant 0 keeps only durable data;
 * other variants add, per file, a random choice (from seed and variant) of
 * the non-durable changes.  0 or -errno.
 */
int  pl_materialize(size_t i, const char *dst, uint64_t seed, unsigned variant);

#endif /* FAULTS_H */
