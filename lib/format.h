/* The batch format: see the comment at the top of format.c. */
#ifndef TOPIC_FORMAT_H
#define TOPIC_FORMAT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "topic.h"

#define TOPIC__BATCH_MAGIC   0x31425054u  /* "TPB1" on disk: format version 1 */
#define TOPIC__MAGIC_PREFIX  0x00425054u  /* "TPB" with any version byte */
#define TOPIC__HEADER_SIZE   48u
#define TOPIC__MIN_BATCH     (TOPIC__HEADER_SIZE + 3u)  /* one empty record */
#define TOPIC__MAX_BATCH     (1u << 30)
#define TOPIC__ATTR_COMPRESSION_MASK 0x7u
#define TOPIC__COMPRESS_NONE 0u
#define TOPIC__COMPRESS_LZ4  1u

struct batch_header {
    uint32_t magic;
    uint32_t length;          /* whole batch, header included */
    uint64_t checksum;        /* XXH3-64 of bytes [16, length), seeded by [0, 8) */
    uint64_t base_offset;
    uint32_t count;
    uint16_t attributes;
    uint16_t reserved;
    int64_t  first_ts;
    int64_t  max_ts;
};

/* A record being decoded: pointers into the batch payload. */
struct record_view {
    int64_t ts;
    const uint8_t *key;       /* NULL when absent */
    size_t key_len;
    const uint8_t *value;
    size_t value_len;
};

static inline uint32_t topic__load32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static inline uint64_t topic__load64(const uint8_t *p)
{
    return (uint64_t)topic__load32(p) | (uint64_t)topic__load32(p + 4) << 32;
}

static inline void topic__store32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v, p[1] = (uint8_t)(v >> 8), p[2] = (uint8_t)(v >> 16), p[3] = (uint8_t)(v >> 24);
}

static inline void topic__store64(uint8_t *p, uint64_t v)
{
    topic__store32(p, (uint32_t)v);
    topic__store32(p + 4, (uint32_t)(v >> 32));
}

/* A buffer for decompressed records, grown as needed (compress.c). */
struct zbuf {
    uint8_t *p;
    size_t cap;
};

/* XXH3-64 with AVX2 (xxh3_wide.c), to be called only when
 * topic__xxh3_wide_usable() says this CPU and build can. */
uint64_t topic__xxh3_wide(const void *p, size_t n, uint64_t seed);
bool topic__xxh3_wide_usable(void);

/* Bytes the records take inside a batch payload (no header). */
size_t topic__records_size(const topic_record *recs, size_t n, int64_t first_ts, int64_t now);
/* Encodes the records alone, back to back, at p. */
void topic__records_encode(uint8_t *p, const topic_record *recs, size_t n, int64_t first_ts,
                           int64_t now);
/* Fills in the header of a batch of `size` bytes whose payload is in place,
 * checksum included. */
void topic__header_encode(uint8_t *dst, size_t size, uint64_t base_offset, size_t n,
                          int64_t first_ts, int64_t max_ts, unsigned attributes);
/* Encodes header and records into dst (exactly `size` bytes, as computed by
 * TOPIC__HEADER_SIZE + topic__records_size) and fills in the checksum. */
void topic__batch_encode(uint8_t *dst, size_t size, uint64_t base_offset,
                         const topic_record *recs, size_t n, int64_t first_ts, int64_t max_ts,
                         int64_t now);
/* The same for the common case of one record with no key and the
 * timestamp ts, as topic_append() writes it: the size of that batch, and
 * its encoding. */
size_t topic__value_batch_size(size_t len);
void topic__value_batch_encode(uint8_t *dst, size_t size, uint64_t base_offset,
                               const void *value, size_t len, int64_t ts);
/* A record's timestamp as stored: 0 means `now`. */
static inline int64_t topic__rec_ts(const topic_record *r, int64_t now)
{
    return r->timestamp ? r->timestamp : now;
}
/*
 * Parses the header at p, with `avail` bytes readable.  Returns 0, TOPIC_END
 * when the magic is zero (the preallocated tail: no more batches),
 * TOPIC_EVERSION for an intact batch of a newer format version, or
 * TOPIC_ECORRUPT when the header cannot be a batch that fits in avail bytes.
 * The checksum is not verified here.
 */
int  topic__header_parse(const uint8_t *p, size_t avail, struct batch_header *h);
bool topic__batch_verify(const uint8_t *p, const struct batch_header *h);
/* Computes and stores the checksum of the batch at p (for tests and tools
 * that build batches by hand). */
void topic__batch_seal(uint8_t *p, size_t length);
/* Decodes one record at *pos (advanced past it) inside [payload, end). */
int  topic__record_decode(const uint8_t **pos, const uint8_t *end, int64_t first_ts,
                          struct record_view *r);
/*
 * Where the records of a verified batch are: in place, or decompressed into
 * z.  Returns 0 or TOPIC_ECORRUPT (a block that does not decompress to the
 * length it claims), -ENOMEM.
 */
int  topic__batch_records(const uint8_t *p, const struct batch_header *h, struct zbuf *z,
                          const uint8_t **begin, const uint8_t **end);
void topic__zbuf_free(struct zbuf *z);
/* Compresses `n` bytes of records at src into dst (room for `cap` bytes)
 * as the payload of an lz4 batch; returns its size, or 0 when that would
 * not be smaller than n. */
size_t topic__lz4_pack(const uint8_t *src, size_t n, uint8_t *dst, size_t cap);
size_t topic__lz4_bound(size_t n);
/* Decodes every record of a verified batch to check its structure and count. */
int  topic__batch_walk(const uint8_t *p, const struct batch_header *h);

#endif /* TOPIC_FORMAT_H */
