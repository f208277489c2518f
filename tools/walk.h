/*
 * Walking the batches of a segment file directly, for topic verify and topic
 * dump only: these two read the on-disk format (lib/format.h) instead of
 * going through the library, so that they can show and judge every byte,
 * damaged ones included.
 *
 * SPDX-License-Identifier: BSD-2-Clause
 */
#ifndef TOPIC_CLI_WALK_H
#define TOPIC_CLI_WALK_H

#include "../lib/format.h"
#include "cli.h"

/* A segment file mapped read-only. */
struct seg_map {
    const uint8_t *p;
    size_t size;
    size_t data_end;          /* one past the last non-zero byte; SIZE_MAX until known */
    const char *not_regular;  /* why seg_map_open() gave TOPIC_ECORRUPT, if it did */
};

/* Maps a segment file; never blocks.  A file that is not a regular file (a
 * FIFO, a symbolic link...) gives TOPIC_ECORRUPT, m->not_regular saying what
 * it is. */
int  seg_map_open(const char *dir, const struct seg_file *s, struct seg_map *m);
void seg_map_close(struct seg_map *m);

enum item_kind {
    ITEM_BATCH,               /* a batch whose checksum verifies */
    ITEM_BAD,                 /* bytes that are not an intact batch */
    ITEM_NEWER,               /* an intact batch of a newer format version */
    ITEM_OPEN,                /* a writer's open batch, not sealed yet (h.count records) */
    ITEM_TAIL                 /* zero bytes to the end of the file */
};

struct walk_item {
    enum item_kind kind;
    size_t pos, len;          /* the bytes this item covers */
    bool header_ok;           /* h holds a header that parsed */
    struct batch_header h;
    bool expect_known;        /* the offset the log expects at pos is known: */
    uint64_t expect;
    /* ITEM_BAD: */
    const char *problem;
    bool count_trusted;       /* the header's base offset is the expected one */
    bool next_known;          /* an intact batch follows at pos + len: */
    uint64_t next_base;       /* its base offset */
};

struct walker {
    struct seg_map *m;
    size_t pos;
    uint64_t expect;
    bool expect_known;
    bool done;
};

void walker_init(struct walker *w, struct seg_map *m, uint64_t base);
/* Fills *it with the next item; false at the end of the file. */
bool walker_next(struct walker *w, struct walk_item *it);

/*
 * The entries of a segment's index file (.index, or .timeindex with its
 * max_ts_before), as stored, for verify to check against the batches.
 * A file of the active segment is allocated ahead: its all-zero entries at
 * the end are not entries, and are left out.  Bytes after the last whole
 * entry are ignored, as the library ignores them.
 */
struct index_entry {
    uint32_t rel, pos;
    int64_t max_ts_before;    /* .timeindex only */
};

/* Reads index file `name` of dir into *out (malloc'd; *n entries).
 * Returns 0, -ENOENT when there is no such file, TOPIC_ECORRUPT when it is
 * not a regular file (reported elsewhere), or another negative errno. */
int index_read(const char *dir, const char *name, bool timeindex, struct index_entry **out,
               size_t *n);

/*
 * Checks the records of the batch at p: they decode, there are h->count of
 * them filling the batch, and the header's timestamps match theirs.
 * Returns NULL when all is well, else what is wrong.
 */
const char *batch_check(const uint8_t *p, const struct batch_header *h, struct zbuf *z);

#endif /* TOPIC_CLI_WALK_H */
