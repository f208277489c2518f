/*
 * libtopic: an embeddable, durable, append-only log of records.
 *
 * A topic is a directory holding an ordered log of records split into segment
 * files.  Every record gets a dense 64-bit offset (0, 1, 2, ...) that never
 * changes.  The writer process appends; any number of threads, and readers in
 * other processes, read by offset or by timestamp.
 *
 * Conventions, which hold for every function below unless its comment says
 * otherwise:
 *  - An int result is 0 on success and negative on failure: a negative errno
 *    (-EINVAL, -ENOMEM, -EIO, -ENOSPC, ...) for operating-system conditions and
 *    bad arguments, or one of the TOPIC_E* codes below.  topic_strerror() turns
 *    any of them into a message.  An exhausted disk quota is -ENOSPC too.
 *  - Passing NULL where a handle or an output pointer is required returns
 *    -EINVAL; it never crashes.
 *  - The library never keeps a pointer the caller passed in after the call
 *    returns, and every pointer it hands out says how long it stays valid.
 *
 * SPDX-License-Identifier: BSD-2-Clause
 */
#ifndef TOPIC_H
#define TOPIC_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define TOPIC_VERSION_MAJOR 0
#define TOPIC_VERSION_MINOR 1
#define TOPIC_VERSION_PATCH 0
#define TOPIC_VERSION_NUMBER \
    (TOPIC_VERSION_MAJOR * 10000 + TOPIC_VERSION_MINOR * 100 + TOPIC_VERSION_PATCH)

#ifndef TOPIC_API
#  if defined(__GNUC__) && __GNUC__ >= 4
#    define TOPIC_API __attribute__((visibility("default")))
#  else
#    define TOPIC_API
#  endif
#endif

/* ------------------------------------------------------------------------ */
/* Handles and records                                                       */

typedef struct topic        topic;         /* one open topic: an ordered, append-only log */
typedef struct topic_config topic_config;  /* settings, Kafka-style "name" = "value" pairs */
typedef struct topic_cursor topic_cursor;  /* a reading position; one per reading thread */

/*
 * One record.  On append the caller owns every byte the pointers name and the
 * library copies them before returning.  When the library fills a record
 * (topic_cursor_next) the pointers point into memory the cursor owns, valid
 * until the next call on that cursor or its close.
 */
typedef struct topic_record {
    uint64_t    offset;      /* assigned by the log: 0, 1, 2, ... with no gaps */
    int64_t     timestamp;   /* milliseconds since the Unix epoch; 0 on append = now */
    const void *key;         /* optional; NULL with key_len 0 when absent; */
    size_t      key_len;     /* non-NULL with key_len 0 is an empty key, read
                                back as such (as Kafka keeps a null key and an
                                empty one apart) */
    const void *value;
    size_t      value_len;
} topic_record;

/* ------------------------------------------------------------------------ */
/* Return values                                                             */

/*
 * Library error codes: negative, and below -30000 so that they never collide
 * with a negative errno.  TOPIC_ERRNO_MAP generates the codes and their
 * messages from one list.
 */
#define TOPIC_ERRNO_MAP(X)                                                          \
    X(END,      -30801, "no record at this offset yet (offset >= end offset)")     \
    X(EGONE,    -30802, "offset is below the start offset: those records were deleted") \
    X(ECORRUPT, -30803, "a checksum or format check failed: the data is corrupt")  \
    X(ELOCKED,  -30804, "another handle or process has the topic open for writing") \
    X(ETOOBIG,  -30805, "record or batch exceeds max.message.bytes")               \
    X(ETOOSMALL,-30806, "the buffer is too small; *len says how much is needed")  \
    X(EFAILED,  -30807, "an earlier write or sync failed (close and reopen the topic), " \
                        "or this is a forked child's copy of a writer handle "     \
                        "(open the child's own, read-only to read or wait)")       \
    X(ERDONLY,  -30808, "the topic was opened read-only")                          \
    X(EVERSION, -30809, "the topic was written by a newer, incompatible format version")

enum {
#define TOPIC__ERRDEF(name, code, msg) TOPIC_##name = (code),
    TOPIC_ERRNO_MAP(TOPIC__ERRDEF)
#undef TOPIC__ERRDEF
    TOPIC_LAST_ERRCODE = TOPIC_EVERSION
};

/*
 * Returns a static, human-readable message for 0, for every TOPIC_* code and
 * for every negative errno.  Never returns NULL.  Thread-safe.
 */
TOPIC_API const char *topic_strerror(int err);

/* Returns the library's version as "MAJOR.MINOR.PATCH", a static string. */
TOPIC_API const char *topic_version(void);

/* Returns TOPIC_VERSION_NUMBER of the library actually linked at run time. */
TOPIC_API int topic_version_number(void);

/* ------------------------------------------------------------------------ */
/* Configuration                                                             */

/*
 * Settings are Kafka-style names with string values:
 *
 *   segment.bytes         size at which the active segment is rolled
 *                         (default 1G; 4096 .. 1G)
 *   segment.ms            age in ms at which the active segment is rolled,
 *                         counted from the creation of its file (from the
 *                         reopening where the file system keeps no birth
 *                         time), on the monotonic clock: wall-clock steps
 *                         do not move it (default 604800000, 7 days;
 *                         0 = never by age)
 *   index.interval.bytes  log bytes between two sparse index entries
 *                         (default 1024; 1 .. 16M)
 *   max.message.bytes     largest record (key plus value), and largest sum of
 *                         keys and values in one batch (default 1M; 1 .. 256M)
 *   flush.messages        sync after this many appended records (default 0 =
 *                         leave it to flush.ms; 1 = every append is durable
 *                         before it returns)
 *   flush.ms              sync appended records at most this many ms after
 *                         they were appended (default 1000; 0 = never by time)
 *   retention.bytes       delete the oldest segments while the log would
 *                         still hold at least this many bytes without them
 *                         (default -1 = no limit); never the active segment
 *   retention.ms          delete a segment once every record in it is older
 *                         than this many ms (default -1 = keep forever)
 *   compression.type      "none" (default) or "lz4": each batch of 256 bytes
 *                         or more (one record or many) is compressed when
 *                         that makes it smaller
 *
 * Sizes take plain bytes or a K, M or G suffix (powers of 1024).  Times are
 * plain milliseconds.  Settings given when a topic is created persist in its
 * directory (file "topic.conf"); settings given when a writer reopens an
 * existing topic override the stored ones and are persisted too.
 */

/* Returns a new configuration holding no settings (all defaults), or NULL
 * when memory is exhausted.  Free it with topic_config_free(). */
TOPIC_API topic_config *topic_config_new(void);

/*
 * Sets `name` to `value`.  Returns 0, or -EINVAL for a NULL argument, an
 * unknown name or a value that does not parse or is out of range.  The reason
 * a person can act on is available from topic_config_error() until the next
 * call on `c`.  The strings are copied.
 */
TOPIC_API int topic_config_set(topic_config *c, const char *name, const char *value);

/*
 * Copies the value of setting `name` as a string into buf (at most cap bytes
 * including the terminating NUL).  Unset settings report their default.
 * No value is longer than 31 bytes, so a buffer of 32 always holds it.
 * Returns 0, -EINVAL for a NULL c or name, a NULL buf with a cap above 0, or
 * an unknown name, and TOPIC_ETOOSMALL when the value does not fit (buf may
 * be NULL with cap 0, to ask whether `name` is a setting).
 */
TOPIC_API int topic_config_get(const topic_config *c, const char *name, char *buf, size_t cap);

/* The message explaining the last refused topic_config_set() on c, or "" if
 * none.  Valid until the next call on c. */
TOPIC_API const char *topic_config_error(const topic_config *c);

/* Frees c.  NULL is accepted and ignored. */
TOPIC_API void topic_config_free(topic_config *c);

/* ------------------------------------------------------------------------ */
/* Lifecycle                                                                 */

#define TOPIC_CREATE  0x1  /* create the topic directory if missing */
#define TOPIC_EXCL    0x2  /* with TOPIC_CREATE: -EEXIST if it already exists */
#define TOPIC_RDONLY  0x4  /* never writes the log, takes no writer lock */

/*
 * Opens the topic in directory `dir` and stores a new handle in *out.
 * `conf` may be NULL (defaults, or the settings stored in the topic); it is
 * not kept and may be freed as soon as this returns.
 *
 * A TOPIC_RDONLY handle never writes the log and follows a writer in any
 * process; it writes only topic.wait (to sleep in topic_wait) and, through
 * topic_commit, the files of its consumer groups.  It takes in the writer's
 * new segments as they appear.  When it cannot (out of file descriptors:
 * -EMFILE, -ENFILE; out of memory or address space: -ENOMEM; or another
 * error opening or mapping the new segment file), its topic_end_offset()
 * stops at the last record it could reach, topic_read() and
 * topic_cursor_next() at or past that offset return the error instead of
 * TOPIC_END, and topic_wait() returns it instead of waiting, until a later
 * call manages to take the segment in (each of them tries again).
 *
 * A writer (no TOPIC_RDONLY) takes an exclusive lock on the directory; if the
 * last writer did not close cleanly, the active segment and any segment it
 * had not finished sealing are scanned, every batch verified, torn tails cut
 * off and indexes rebuilt, so that every record whose append returned is
 * there and the next append continues the dense offsets.  A batch damaged
 * since the last writer was killed is not a torn tail (a process that dies
 * tears nothing) and is kept with the records after it: its records read
 * TOPIC_ECORRUPT, and no offset is handed out twice (topic_open(3)).  After
 * a clean close nothing is scanned.
 *
 * A writer handle runs up to two background threads: "topic-flush" carries
 * out flush.ms, seals the segments appends have rolled away from and applies
 * retention; "topic-prep" maps the pages of the active segment ahead of the
 * appends, so that the page faults of a new page are not paid inside
 * topic_append().  The first append starts them (topic_open() starts
 * "topic-flush" when a retention setting is set, and the first
 * topic_commit() under flush.ms starts it to sync commits), so a handle
 * that only reads runs none.
 *
 * Errors: -EINVAL (bad flags, NULL, an empty dir), -ENOENT (no topic and no TOPIC_CREATE),
 * -EEXIST (TOPIC_CREATE|TOPIC_EXCL and the directory exists), -ENOTDIR,
 * -ELOOP (a file of the topic, such as topic.state, is a symbolic link: no
 * link inside the topic directory is followed, though dir itself may be one),
 * -EACCES, -ENOMEM, -EIO, -ENOSPC, TOPIC_ELOCKED (another writer, in this or
 * any other process), TOPIC_ECORRUPT (a file the topic needs cannot be
 * understood: a damaged topic.conf or state file), TOPIC_EVERSION, -EAGAIN
 * (a writer that needs its background thread at once, for retention, could
 * not start it).
 */
TOPIC_API int topic_open(const char *dir, int flags, const topic_config *conf, topic **out);

/*
 * Durable close: syncs everything appended, records a clean shutdown so that
 * the next open scans nothing, releases the lock and frees t.  Every cursor
 * of t must be closed first.  Returns 0, or the error of the final sync
 * (-EIO and friends), or TOPIC_EFAILED when an earlier write or sync through
 * this writer had failed (the handle is freed in every case); that failure's
 * own error instead if it was the background thread's and no call has
 * returned it yet (see topic_sync).  NULL is accepted and returns 0.
 */
TOPIC_API int topic_close(topic *t);

/* ------------------------------------------------------------------------ */
/* Writing                                                                   */

/*
 * Appends one record holding `len` bytes of `value` (no key, timestamp now)
 * and stores its offset in *offset when offset is not NULL.  `value` may be
 * NULL only when len is 0.  The record is readable through every handle of
 * this process as soon as the call returns, and survives a crash of the
 * process; when it survives a power loss is set by flush.messages / flush.ms.
 *
 * Errors: -EINVAL, TOPIC_ETOOBIG, TOPIC_ERDONLY, TOPIC_EFAILED (an earlier
 * write or sync failed, or t is a writer handle inherited through fork();
 * nothing was written), -ENOSPC (space for the record could not be
 * allocated; nothing was written), -ENOMEM, -EMFILE (memory, a descriptor or
 * a memory map area for a new segment could not be had; nothing was
 * written), -EAGAIN (the first append through a
 * handle could not start the handle's background thread; nothing was
 * written), -EOVERFLOW (the record's offset would pass the largest offset:
 * the end offset is at most UINT64_MAX, 2^64 - 1, so the last record's
 * offset is at most 2^64 - 2; only a damaged or hand-edited topic.state
 * brings a topic near it; nothing was written), TOPIC_ECORRUPT (the next
 * segment's file name is taken by something that is not a regular file,
 * such as a directory, so the roll cannot create it; nothing was written,
 * and appends fail so until it is removed), -EIO; other negative errno
 * values from the system are passed on, such as -EFBIG (RLIMIT_FSIZE
 * reached, SIGXFSZ ignored) or -EACCES (the process may no longer create
 * the next segment's files), with nothing written.  On error no offset
 * is consumed,
 * with one exception: under flush.messages, when the record was written but
 * the sync that follows failed, the append returns that error (the sync's
 * errno, never TOPIC_EFAILED, even when another thread ran the sync) and the
 * record is readable but was never acknowledged as durable; the handle then
 * refuses writes (TOPIC_EFAILED) until reopened.
 * Thread-safe: appends from several threads are serialised.
 */
TOPIC_API int topic_append(topic *t, const void *value, size_t len, uint64_t *offset);

/*
 * Appends the n records recs[0..n-1] as one unit: after any crash either all
 * of them are there or none is.  Their offset fields are ignored; a timestamp
 * of 0 means now.  The offset of the first is stored in *first_offset when it
 * is not NULL; the others follow densely.  n == 0 appends nothing and
 * returns 0 (TOPIC_ERDONLY on a read-only handle, TOPIC_EFAILED on a writer
 * handle's copy in a child of fork()).  Errors as topic_append();
 * TOPIC_ETOOBIG when one record or the sum of all keys and values exceeds
 * max.message.bytes, or the batch would take more than 1 GiB on disk;
 * -EOVERFLOW when the offset of its last record would be above 2^64 - 2
 * (the end offset after it would not fit in 64 bits).
 */
TOPIC_API int topic_append_batch(topic *t, const topic_record *recs, size_t n,
                                 uint64_t *first_offset);

/*
 * Returns once every record appended so far through this handle, and every
 * position committed through it (topic_commit), is on stable storage.
 * Errors: -EINVAL, -EIO and friends from the sync (after which the handle
 * refuses writes: TOPIC_EFAILED); TOPIC_EFAILED (an earlier write or sync
 * through this handle failed, or t is a writer handle inherited through
 * fork()); TOPIC_ERDONLY on a read-only handle, after syncing the positions
 * it committed; -ENOENT when the topic's directory, or its active segment's
 * file (or that of a segment rolled away from and not sealed yet), was
 * deleted or replaced while the handle was open (records in unlinked files
 * are never durable; the handle then refuses writes, and their offsets are
 * not handed out again: the next writer starts at this handle's end offset,
 * and the lost offsets read TOPIC_ECORRUPT or TOPIC_EGONE).  A failure of the writer's background thread
 * (sealing a full segment, a sync under flush.ms) reaches no call by
 * itself: the first topic_sync or topic_close after it returns its error
 * (-EIO and friends), once, and later calls TOPIC_EFAILED.
 */
TOPIC_API int topic_sync(topic *t);

/* ------------------------------------------------------------------------ */
/* Reading                                                                   */

/*
 * Copies the value of the record at `offset` into buf (capacity cap) and
 * stores its length in *len.  buf may be NULL when cap is 0, to ask for the
 * length.  Errors: TOPIC_END (offset >= end offset), TOPIC_EGONE (offset below
 * the start offset), TOPIC_ETOOSMALL (*len says how much is needed; nothing
 * copied), TOPIC_ECORRUPT (the batch holding the record failed its checksum),
 * TOPIC_EVERSION (the record is in a batch of a newer format version), -EINVAL,
 * and errors opening a segment file (-EMFILE, -ENOMEM, -EACCES).  On a
 * TOPIC_RDONLY handle that cannot take in the writer's new segment (see
 * topic_open), an offset at or past its end offset gives that error
 * (-EMFILE, -ENFILE, -ENOMEM, ...) instead of TOPIC_END.  Cost: O(log n) in
 * the number of segments and index entries, plus a walk of the batch headers
 * in at most one index interval (index.interval.bytes), plus the records
 * before `offset` in its batch (a batch is verified, and under lz4
 * decompressed, whole).
 * Thread-safe.
 */
TOPIC_API int topic_read(topic *t, uint64_t offset, void *buf, size_t cap, size_t *len);

/*
 * Opens a cursor on t positioned at `offset` (which may equal or exceed the
 * end offset: the cursor then waits there for new records).  Free it with
 * topic_cursor_close() before closing t.  A cursor is used by one thread at a
 * time; several cursors may read one topic concurrently.
 * Errors: -EINVAL, -ENOMEM, TOPIC_EGONE (offset below the start offset).
 */
TOPIC_API int topic_cursor_open(topic *t, uint64_t offset, topic_cursor **out);

/*
 * Fills *rec with the record at the cursor's position and advances it by one.
 * rec's pointers stay valid until the next call on this cursor or its close.
 * Errors: TOPIC_END at the end of the log (the position is kept: call again
 * once more records exist), TOPIC_ECORRUPT (the cursor stays on the damaged
 * record; seek past it to go on), TOPIC_EVERSION (the record is in a batch
 * of a newer format version; the cursor stays), TOPIC_EGONE, -EINVAL, -ENOMEM,
 * and errors opening a segment file (-EMFILE, -ENOMEM, -EACCES).  On a
 * TOPIC_RDONLY handle that cannot take in the writer's new segment (see
 * topic_open), the error that stops it (-EMFILE, -ENFILE, -ENOMEM, ...)
 * comes instead of TOPIC_END at the handle's end offset; the position is
 * kept, and a later call that takes the segment in returns its records.
 */
TOPIC_API int topic_cursor_next(topic_cursor *c, topic_record *rec);

/* Moves the cursor to `offset`.  Errors: -EINVAL, TOPIC_EGONE. */
TOPIC_API int topic_cursor_seek(topic_cursor *c, uint64_t offset);

/*
 * Moves the cursor to the first record, in offset order, whose timestamp is
 * >= timestamp_ms; to the end offset if there is none.  Correct for
 * timestamps in any order; cost O(log n) plus two index intervals of
 * scanning (the first search on a handle opens, once, each segment it
 * passes).  A search that needs the timestamps of records lost to damage
 * (and that the time index does not settle) returns TOPIC_ECORRUPT; on any
 * error the cursor keeps its position.
 * Errors: -EINVAL, TOPIC_ECORRUPT, TOPIC_EVERSION, errors opening a segment
 * (-ENOMEM, -EMFILE, -EIO).
 */
TOPIC_API int topic_cursor_seek_time(topic_cursor *c, int64_t timestamp_ms);

/* The offset the next topic_cursor_next() will return. */
TOPIC_API uint64_t topic_cursor_offset(const topic_cursor *c);

/* Frees the cursor.  NULL is accepted and ignored. */
TOPIC_API void topic_cursor_close(topic_cursor *c);

/* First offset still stored (0 for a new topic; 0 for NULL). */
TOPIC_API uint64_t topic_start_offset(topic *t);

/* Offset the next append will get: one past the last record (0 for NULL).
 * On a TOPIC_RDONLY handle, includes what a writer has appended since, up to
 * the last record the handle could reach: one that cannot take in the
 * writer's new segment (see topic_open) stops before it. */
TOPIC_API uint64_t topic_end_offset(topic *t);

/*
 * Returns 0 as soon as a record at `offset` exists (at once if it already
 * does, or if it was deleted: offset below the start offset), or -ETIMEDOUT after timeout_ms milliseconds (0 = do not wait, -1 =
 * wait forever).  Wakes for appends through this handle, other handles and
 * other processes, and sleeps (no spinning) in between.  The consume loop:
 *
 *     while ((rc = topic_cursor_next(c, &rec)) == 0 || rc == TOPIC_END)
 *         if (rc == TOPIC_END)
 *             topic_wait(t, topic_cursor_offset(c), -1);
 *         else
 *             handle(&rec);
 *
 * Errors: -EINVAL, -ETIMEDOUT, and on a TOPIC_RDONLY handle that cannot take
 * in the writer's new segment (see topic_open), the error that stops it
 * (-EMFILE, -ENFILE, -ENOMEM, ...), returned at once instead of waiting for
 * a record the handle could not reach; each call tries again.
 * TOPIC_EFAILED at once on a writer handle's copy in a child of fork(),
 * which sees the log only as it was at the fork (see topic_open).
 * Thread-safe.
 */
TOPIC_API int topic_wait(topic *t, uint64_t offset, int timeout_ms);

/* ------------------------------------------------------------------------ */
/* Keeping the log in bounds, and consumer positions                         */

/*
 * Makes `offset` the start offset: records below it read as TOPIC_EGONE from
 * now on, in every handle, cursor and process, and every segment except the
 * active one that holds only such records is deleted.  The new start offset
 * is durable when this returns.  offset <= start offset does nothing.
 * Errors: -EINVAL (offset beyond the end offset), TOPIC_ERDONLY,
 * TOPIC_EFAILED (an earlier write or sync failed, or t is a writer handle
 * inherited through fork()), -EIO.  After -EIO (the new start offset was written but
 * its sync failed) the deletion may or may not have reached the disk: this
 * handle keeps the old start offset and refuses further writes
 * (TOPIC_EFAILED), while a handle opened later may see either start offset.
 * No record at or above `offset` is ever lost.
 */
TOPIC_API int topic_delete_before(topic *t, uint64_t offset);

/*
 * Records `offset` (by convention the next offset the group will read) as
 * the committed position of consumer group `group`.  Works on TOPIC_RDONLY
 * handles too: a consumer process commits its own position without being
 * the writer.  Atomic: after any crash the group reads back its old or its
 * new position, never anything else.  Durable at once against a crash of
 * the process; against power loss when flush.messages is 1 (synced before
 * it returns), within flush.ms (by the writer's flusher thread, or by this
 * handle's next commit on a read-only handle), and by topic_sync() and
 * topic_close().
 * Group names are 1 to 128 characters of letters, digits, '.', '_' and '-',
 * not starting with '.'.  A group whose file is damaged (topic_committed()
 * says TOPIC_ECORRUPT) gets a new file.  Errors: -EINVAL (bad name), -EACCES,
 * -EIO, -ENOSPC, -ENOMEM, TOPIC_EFAILED (a writer handle inherited through
 * fork()), TOPIC_ECORRUPT (a damaged file whose newest slot has the largest
 * sequence number, or a directory with files in it where the group's file
 * would be), TOPIC_EVERSION (the group's file has a newer format
 * version; it is left as it is).  Thread-safe; commits to one group from several
 * handles or processes at once leave one of their values.
 */
TOPIC_API int topic_commit(topic *t, const char *group, uint64_t offset);

/* Stores the committed position of `group` in *offset.  Errors: -ENOENT (never
 * committed, or neither of the file's two slots is intact, as a power loss
 * during the first commits can leave), -EINVAL, TOPIC_ECORRUPT (the group's
 * file is not a group file), TOPIC_EVERSION (it has a newer format version),
 * -EACCES, -ENOMEM, -EIO. */
TOPIC_API int topic_committed(topic *t, const char *group, uint64_t *offset);

/*
 * Lists the groups that have committed a position, as their names each
 * followed by a NUL byte, in ascending order, in buf; *len is the bytes
 * needed.  buf may be NULL when cap is 0.  Errors: TOPIC_ETOOSMALL, -EINVAL,
 * -ENOMEM, and errors opening or reading the directory "groups" (-EACCES,
 * -EMFILE).
 */
TOPIC_API int topic_groups(topic *t, char *buf, size_t cap, size_t *len);

#ifdef __cplusplus
}
#endif
#endif /* TOPIC_H */
