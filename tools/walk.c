/*
 * Walking a segment file batch by batch, without trusting any of it: the
 * walk goes on past damage, to the next intact batch, so that every damaged
 * batch of a file can be reported rather than only the first.
 *
 * An intact batch is one whose header parses (topic__header_parse) and whose
 * checksum verifies (topic__batch_verify).  After a batch that fails its
 * checksum, its length is believed only when an intact batch, the end of the
 * file or the zero tail of a preallocated file follows it; otherwise the walk
 * searches forward for the magic of the next intact batch.
 *
 * SPDX-License-Identifier: BSD-2-Clause
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "walk.h"

int seg_map_open(const char *dir, const struct seg_file *s, struct seg_map *m)
{
    struct stat st;
    m->p = NULL;
    m->size = 0;
    m->data_end = SIZE_MAX;
    int fd = topic_file_open(dir, s->name, &st, &m->not_regular);
    if (fd < 0)
        return fd;
    if (st.st_size > 0) {
        void *p = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_SHARED, fd, 0);
        if (p == MAP_FAILED) {
            int e = -errno;
            close(fd);
            return e;
        }
        m->p = p;
        m->size = (size_t)st.st_size;
    }
    close(fd);
    return 0;
}

void seg_map_close(struct seg_map *m)
{
    if (m->p != NULL)
        munmap((void *)(uintptr_t)m->p, m->size);
    m->p = NULL;
    m->size = 0;
}

/* One past the last non-zero byte of the file. */
static size_t data_end(struct seg_map *m)
{
    if (m->data_end != SIZE_MAX)
        return m->data_end;
    size_t n = m->size;
    /* Whole words first: a preallocated file is mostly zeros. */
    while (n >= 8 && (n & 7) == 0) {
        uint64_t w;
        memcpy(&w, m->p + n - 8, 8);
        if (w != 0)
            break;
        n -= 8;
    }
    while (n > 0 && m->p[n - 1] == 0)
        n--;
    m->data_end = n;
    return n;
}

static bool intact_at(const struct seg_map *m, size_t q, struct batch_header *h)
{
    return q < m->size && topic__header_parse(m->p + q, m->size - q, h) == 0 &&
           topic__batch_verify(m->p + q, h);
}

/* The first position at or after `from` where an intact batch starts, or the
 * end of the data (zeros or nothing follow) if there is none. */
static size_t resync(struct seg_map *m, size_t from)
{
    static const uint8_t magic[4] = { 0x54, 0x50, 0x42, 0x31 };   /* "TPB1" */
    size_t end = data_end(m);
    size_t q = from;
    while (q < end) {
        const uint8_t *hit = memmem(m->p + q, end - q, magic, sizeof magic);
        if (hit == NULL)
            break;
        q = (size_t)(hit - m->p);
        struct batch_header h;
        if (intact_at(m, q, &h))
            return q;
        q++;
    }
    return end > from ? end : from;
}

void walker_init(struct walker *w, struct seg_map *m, uint64_t base)
{
    w->m = m;
    w->pos = 0;
    w->expect = base;
    w->expect_known = true;
    w->done = false;
}

/* Why the header at pos did not parse, in words. */
static const char *header_problem(const struct seg_map *m, size_t pos)
{
    size_t avail = m->size - pos;
    if (avail < TOPIC__HEADER_SIZE)
        return "the file ends inside a batch header";
    uint32_t magic = topic__load32(m->p + pos);
    uint32_t length = topic__load32(m->p + pos + 4);
    if (magic == 0)
        return "zero bytes where a batch should start, with data after them";
    if (magic != TOPIC__BATCH_MAGIC)
        return (magic & 0x00ffffffu) == TOPIC__MAGIC_PREFIX
                   ? "damaged batch (a newer version's magic, but its checksum fails)"
                   : "bad magic: not the start of a batch";
    if (length > avail && length <= TOPIC__MAX_BATCH)
        return "the batch's length runs past the end of the file (a damaged length, "
               "or the file was cut short)";
    return "damaged batch header (a field is out of range)";
}

/*
 * The open batch of a writer (FORMAT.md section 2.6): the records
 * consecutive appends share until the writer seals them, with no checksum
 * yet.  Only the writer's published length says where they end; this walk
 * takes every record that starts before the last non-zero byte of the
 * file, so it misses trailing records that are all zeros (an empty value
 * with a zero timestamp delta).  What follows them is walked as usual.
 */
static void open_batch(struct walker *w, struct walk_item *it)
{
    struct seg_map *m = w->m;
    size_t pos = it->pos, end = data_end(m);
    struct batch_header *h = &it->h;
    memset(h, 0, sizeof *h);
    h->magic = TOPIC__OPEN_MAGIC;
    topic__open_fields(m->p + pos, &h->base_offset, &h->first_ts);
    h->max_ts = INT64_MIN;
    const uint8_t *rp = m->p + pos + TOPIC__HEADER_SIZE, *lim = m->p + m->size;
    while ((size_t)(rp - m->p) < end && h->count < UINT32_MAX) {
        const uint8_t *q = rp;
        struct record_view r;
        if (topic__record_decode(&q, lim, h->first_ts, &r) < 0)
            break;
        rp = q;
        h->count++;
        if (r.ts > h->max_ts)
            h->max_ts = r.ts;
    }
    it->kind = ITEM_OPEN;
    it->header_ok = true;
    it->len = (size_t)(rp - m->p) - pos;
    h->length = (uint32_t)it->len;
    w->pos = pos + it->len;
    w->expect = h->base_offset + h->count;
    w->expect_known = true;
}

/* The item ends at q: notes whether an intact batch follows, moves on. */
static void end_bad(struct walker *w, struct walk_item *it, size_t q)
{
    struct batch_header next;
    it->len = q - it->pos;
    if (intact_at(w->m, q, &next)) {
        it->next_known = true;
        it->next_base = next.base_offset;
    }
    w->pos = q;
}

bool walker_next(struct walker *w, struct walk_item *it)
{
    struct seg_map *m = w->m;
    memset(it, 0, sizeof *it);
    if (w->done || w->pos >= m->size) {
        w->done = true;
        return false;
    }
    size_t pos = w->pos;
    it->pos = pos;
    it->expect = w->expect;
    it->expect_known = w->expect_known;
    struct batch_header h;
    if (data_end(m) > pos && m->size - pos >= TOPIC__HEADER_SIZE &&
        topic__load32(m->p + pos) == TOPIC__OPEN_MAGIC) {
        open_batch(w, it);
        return true;
    }
    int rc = topic__header_parse(m->p + pos, m->size - pos, &h);
    if (data_end(m) <= pos) {
        it->kind = ITEM_TAIL;
        it->len = m->size - pos;
        w->pos = m->size;
        w->done = true;
        return true;
    }
    if (rc == TOPIC_EVERSION) {
        it->kind = ITEM_NEWER;
        it->len = topic__load32(m->p + pos + 4);
        w->pos = pos + it->len;
        w->expect_known = false;
        return true;
    }
    if (rc == 0 && topic__batch_verify(m->p + pos, &h)) {
        it->kind = ITEM_BATCH;
        it->header_ok = true;
        it->h = h;
        it->len = h.length;
        w->pos = pos + h.length;
        w->expect = h.base_offset + h.count;
        w->expect_known = true;
        return true;
    }
    it->kind = ITEM_BAD;
    if (rc == 0) {
        /* The header parses but the checksum fails. */
        it->header_ok = true;
        it->h = h;
        it->problem = "checksum mismatch";
        size_t q = pos + h.length;
        struct batch_header next;
        bool length_believable = q == m->size || data_end(m) <= q || intact_at(m, q, &next);
        if (length_believable) {
            it->count_trusted = w->expect_known && h.base_offset == w->expect;
            end_bad(w, it, q);
            if (it->count_trusted)
                w->expect = h.base_offset + h.count;
            else
                w->expect_known = false;
            return true;
        }
    } else {
        it->problem = header_problem(m, pos);
    }
    end_bad(w, it, resync(m, pos + 1));
    w->expect_known = false;
    return true;
}

int index_read(const char *dir, const char *name, bool timeindex, struct index_entry **out,
               size_t *n)
{
    struct stat st;
    const char *not_regular;
    *out = NULL;
    *n = 0;
    int fd = topic_file_open(dir, name, &st, &not_regular);
    if (fd < 0)
        return fd;
    size_t esize = timeindex ? 16 : 8;
    size_t count = (size_t)st.st_size / esize;
    uint8_t *buf = count ? malloc(count * esize) : NULL;
    struct index_entry *e = count ? malloc(count * sizeof *e) : NULL;
    if (count > 0 && (buf == NULL || e == NULL)) {
        free(buf);
        free(e);
        close(fd);
        return -ENOMEM;
    }
    size_t got = 0;
    while (got < count * esize) {
        ssize_t r = pread(fd, buf + got, count * esize - got, (off_t)got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;   /* cut short meanwhile: what was read is the file */
        got += (size_t)r;
    }
    close(fd);
    count = got / esize;
    for (size_t i = 0; i < count; i++) {
        const uint8_t *q = buf + i * esize;
        if (timeindex) {
            e[i].max_ts_before = (int64_t)topic__load64(q);
            q += 8;
        } else {
            e[i].max_ts_before = 0;
        }
        e[i].rel = topic__load32(q);
        e[i].pos = topic__load32(q + 4);
    }
    free(buf);
    while (count > 0 && e[count - 1].rel == 0 && e[count - 1].pos == 0 &&
           (!timeindex || e[count - 1].max_ts_before == 0))
        count--;
    *out = e;
    *n = count;
    return 0;
}

const char *batch_check(const uint8_t *p, const struct batch_header *h, struct zbuf *z)
{
    const uint8_t *pos, *end;
    int rc = topic__batch_records(p, h, z, &pos, &end);
    if (rc == -ENOMEM)
        return "out of memory decompressing the batch";
    if (rc < 0)
        return "the lz4 block does not decompress to the length it claims";
    int64_t max_ts = INT64_MIN;
    for (uint32_t i = 0; i < h->count; i++) {
        struct record_view r;
        if (topic__record_decode(&pos, end, h->first_ts, &r) < 0)
            return "a record is malformed or runs past the end of the batch";
        if (i == 0 && r.ts != h->first_ts)
            return "the first record's timestamp differs from the header's first_ts";
        if (r.ts > max_ts)
            max_ts = r.ts;
    }
    if (pos != end)
        return "bytes left over after the last record the header counts";
    if (max_ts != h->max_ts)
        return "the header's max_ts is not the largest record timestamp";
    return NULL;
}
