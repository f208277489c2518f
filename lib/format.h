/* The batch format: see the comment at the top of format.c. */
#ifndef TOPIC_FORMAT_H
#define TOPIC_FORMAT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "topic.h"

#define TOPIC__BATCH_MAGIC   0x31425054u  /* "TPB1" on disk: format version 1 */
#define TOPIC__MAGIC_PREFIX  0x00425054u  /* "TPB" with any version byte */
#define TOPIC__OPEN_MAGIC    0x314f5054u  /* "TPO1": a batch a writer is still filling */
/* The one byte in which the two magics differ (byte 2: 'O' or 'B').  A seal
 * stores it last, with a release store, and readers that may meet an open
 * batch load it with an acquire load: one byte, so never torn, and never
 * unaligned (batches start anywhere). */
#define TOPIC__MAGIC_KIND_AT 2
#define TOPIC__KIND_OPEN     0x4fu        /* 'O' */
#define TOPIC__KIND_BATCH    0x42u        /* 'B' */

static inline uint8_t topic__magic_kind(const uint8_t *p)
{
    return __atomic_load_n(p + TOPIC__MAGIC_KIND_AT, __ATOMIC_ACQUIRE);
}

/* Whether p holds an open header ("TPO1") that nobody has sealed since. */
static inline bool topic__is_open(const uint8_t *p)
{
    return topic__magic_kind(p) == TOPIC__KIND_OPEN && p[0] == 0x54 && p[1] == 0x50 &&
           p[3] == 0x31;
}
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
void topic__value_batch_encode(uint8_t *dst, size_t size, uint64_t base_offset,
                               const void *value, size_t len, int64_t ts);
/*
 * The open batch (see format.c): consecutive topic_append() calls share one
 * batch, whose header the writer fills in when it seals it.  Until then the
 * header's place holds an open header: the magic "TPO1", the base offset and
 * the first timestamp, and zeros.
 */
void topic__open_header(uint8_t *dst, uint64_t base_offset, int64_t first_ts);
/* Seals the open batch of `size` bytes and `n` records at dst: fills in
 * its header and checksum, then stores the batch magic (a release store). */
void topic__open_seal_header(uint8_t *dst, size_t size, size_t n, int64_t max_ts);
/* The base offset and first timestamp of the open header at p. */
static inline void topic__open_fields(const uint8_t *p, uint64_t *base_offset, int64_t *first_ts)
{
    *base_offset = topic__load64(p + 16);
    *first_ts = (int64_t)topic__load64(p + 32);
}
/* The chain value of an open batch with no record yet. */
uint64_t topic__chain_start(uint64_t base_offset, int64_t first_ts);
/* The chain value after one more record of `n` bytes at p. */
uint64_t topic__chain_step(uint64_t chain, const uint8_t *p, size_t n);
/* What a chain value vouches for in an open batch (topic__open_vouched):
 * its first `len` bytes, header included, holding `count` records from
 * offset `base` on, whose largest timestamp is max_ts. */
struct open_vouched {
    uint64_t base;
    size_t len;
    uint64_t count;
    int64_t max_ts;
};
/*
 * Walks the records of the open batch at p, whose published length is `at`
 * bytes, and finds where they give `chain`: true with *out when they give
 * it at `at`.  With slack, which readers of a live area a writer died while
 * updating need (follow.c, segment.c), also one record short of `at` or one
 * past it, as far as `end`; without, no byte at or past `at` is read (the
 * writer may be writing there).  False when they give it nowhere there: the
 * records are not what the writer wrote, or not the ones the chain was
 * published for.
 */
bool topic__open_vouched(const uint8_t *p, size_t at, const uint8_t *end, uint64_t chain,
                         bool slack, struct open_vouched *out);
/* A record's timestamp as stored: 0 means `now`. */
static inline int64_t topic__rec_ts(const topic_record *r, int64_t now)
{
    return r->timestamp ? r->timestamp : now;
}
#define TOPIC__MAX_VARINT 10   /* bytes of a LEB128 uint64 */

/*
 * The writer's encoding of a record follows, inline for the same reason as
 * the readers' steps below: topic_append() runs it once per record.
 */

/* The bytes of v as a LEB128 varint. */
static inline size_t topic__varint_size(uint64_t v)
{
    size_t n = 1;
    while (v >= 0x80) {
        v >>= 7;
        n++;
    }
    return n;
}

/* Writes v as a LEB128 varint at p; returns the byte after it. */
static inline uint8_t *topic__varint_put(uint8_t *p, uint64_t v)
{
    while (v >= 0x80) {
        *p++ = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    *p++ = (uint8_t)v;
    return p;
}

/* A record's timestamp delta as stored: zigzag coded, so that small
 * negative deltas take one byte.  The subtraction wraps: any two int64
 * timestamps have a delta that round-trips through uint64 arithmetic. */
static inline uint64_t topic__ts_delta(int64_t ts, int64_t first_ts)
{
    int64_t d = (int64_t)((uint64_t)ts - (uint64_t)first_ts);
    return ((uint64_t)d << 1) ^ (uint64_t)(d >> 63);
}

/* The size of the batch that topic_append() writes for one record of len
 * bytes with no key, sealed at once (topic__value_batch_encode). */
static inline size_t topic__value_batch_size(size_t len)
{
    return TOPIC__HEADER_SIZE + 2 + topic__varint_size(len) + len;
}

/* The bytes record r takes in a batch whose first timestamp is first_ts,
 * its own timestamp being ts. */
static inline size_t topic__record_size(const topic_record *r, int64_t ts, int64_t first_ts)
{
    size_t key = r->key ? r->key_len : 0;
    return topic__varint_size(topic__ts_delta(ts, first_ts)) +
           topic__varint_size(r->key ? (uint64_t)key + 1 : 0) + key +
           topic__varint_size(r->value_len) + r->value_len;
}

/* The bytes one record with no key takes in an open batch whose first
 * timestamp is first_ts. */
static inline size_t topic__value_record_size(size_t len, int64_t ts, int64_t first_ts)
{
    return topic__varint_size(topic__ts_delta(ts, first_ts)) + 1 + topic__varint_size(len) + len;
}

/* Encodes that record at dst; returns its end. */
static inline uint8_t *topic__value_record_encode(uint8_t *dst, const void *value, size_t len,
                                                  int64_t ts, int64_t first_ts)
{
    uint8_t *p = topic__varint_put(dst, topic__ts_delta(ts, first_ts));
    *p++ = 0;   /* no key */
    p = topic__varint_put(p, len);
    if (len)
        memcpy(p, value, len);
    return p + len;
}

/*
 * The readers' per-batch and per-record steps follow.  They are inline
 * because a sequential scan of small records runs them once per record, and
 * the calls and their bookkeeping cost as much as the work.
 */

/* A LEB128 varint at *pp, inside [*pp, end); false if it runs past end or
 * past 10 bytes. */
static inline bool topic__varint_get(const uint8_t **pp, const uint8_t *end, uint64_t *out)
{
    const uint8_t *p = *pp;
    if (p < end && *p < 0x80) {   /* most lengths and deltas fit in one byte */
        *out = *p;
        *pp = p + 1;
        return true;
    }
    uint64_t v = 0;
    for (unsigned shift = 0; shift < 7 * TOPIC__MAX_VARINT; shift += 7) {
        if (p >= end)
            return false;
        uint8_t b = *p++;
        v |= (uint64_t)(b & 0x7f) << shift;
        if (b < 0x80) {
            *pp = p;
            *out = v;
            return true;
        }
    }
    return false;
}

/* TOPIC_EVERSION for an intact batch of a newer format version at p, else
 * TOPIC_ECORRUPT (see topic__header_parse). */
int topic__header_newer(const uint8_t *p, size_t avail);

/*
 * Parses the header at p, with `avail` bytes readable.  Returns 0, TOPIC_END
 * when the magic is zero (the preallocated tail: no more batches),
 * TOPIC_EVERSION for an intact batch of a newer format version, or
 * TOPIC_ECORRUPT when the header cannot be a batch that fits in avail bytes.
 * The checksum is not verified here.
 */
static inline int topic__header_parse(const uint8_t *p, size_t avail, struct batch_header *h)
{
    if (avail < 4)
        return avail == 0 ? TOPIC_END : TOPIC_ECORRUPT;
    /* Byte 2 first, by itself: an open batch's writer may be sealing it
     * right now (see topic__magic_kind), and its other fields are read only
     * once this says the batch is sealed. */
    uint8_t kind = topic__magic_kind(p);
    h->magic = (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)kind << 16 | (uint32_t)p[3] << 24;
    if (h->magic == 0)
        return TOPIC_END;
    if (avail < TOPIC__HEADER_SIZE)
        return TOPIC_ECORRUPT;
    if ((h->magic & 0x00ffffffu) == TOPIC__MAGIC_PREFIX && h->magic > TOPIC__BATCH_MAGIC)
        return topic__header_newer(p, avail);
    if (h->magic != TOPIC__BATCH_MAGIC)
        return TOPIC_ECORRUPT;
    h->length = topic__load32(p + 4);
    h->checksum = topic__load64(p + 8);
    h->base_offset = topic__load64(p + 16);
    h->count = topic__load32(p + 24);
    h->attributes = (uint16_t)(p[28] | p[29] << 8);
    h->reserved = (uint16_t)(p[30] | p[31] << 8);
    h->first_ts = (int64_t)topic__load64(p + 32);
    h->max_ts = (int64_t)topic__load64(p + 40);
    unsigned comp = h->attributes & TOPIC__ATTR_COMPRESSION_MASK;
    if (h->length < TOPIC__MIN_BATCH ||
        h->length > TOPIC__MAX_BATCH || h->length > avail || h->count == 0 ||
        (comp == TOPIC__COMPRESS_NONE && h->count > (h->length - TOPIC__HEADER_SIZE) / 3) ||
        comp > TOPIC__COMPRESS_LZ4 || h->attributes != comp || h->reserved != 0)
        return TOPIC_ECORRUPT;
    return 0;
}

bool topic__batch_verify(const uint8_t *p, const struct batch_header *h);
/* Computes and stores the checksum of the batch at p (for tests and tools
 * that build batches by hand). */
void topic__batch_seal(uint8_t *p, size_t length);

/*
 * The usual record, whose timestamp delta and key length take a byte each
 * and whose value length takes one or two: short enough code for a
 * cursor's step to stay a leaf function (cursor.c).  False, with nothing
 * changed, for any other record, which topic__record_decode_general
 * decodes (and so reports damage as such); where it returns true, the
 * record is the one the general decoder gives.
 */
static inline bool topic__record_decode_short(const uint8_t **pos, const uint8_t *end,
                                              int64_t first_ts, struct record_view *r)
{
    const uint8_t *p = *pos;
    size_t avail = (size_t)(end - p);
    if (avail < 3 || ((p[0] | p[1]) & 0x80))
        return false;
    size_t klen = p[1];   /* 0: no key; k + 1: a key of k bytes */
    size_t kbytes = klen ? klen - 1 : 0;
    if (kbytes > avail - 3)   /* room for the key and a byte of value length */
        return false;
    const uint8_t *q = p + 2 + kbytes;
    size_t vlen = q[0];
    q++;
    if (vlen >= 0x80) {
        if (q >= end || *q >= 0x80)
            return false;
        vlen = (vlen & 0x7f) | (size_t)*q << 7;
        q++;
    }
    if (vlen > (size_t)(end - q))
        return false;
    r->key = klen ? p + 2 : NULL;
    r->key_len = kbytes;
    r->value = q;
    r->value_len = vlen;
    r->ts = (int64_t)((uint64_t)first_ts + (((uint64_t)p[0] >> 1) ^ (0 - ((uint64_t)p[0] & 1))));
    *pos = q + vlen;
    return true;
}
/* Any record, or TOPIC_ECORRUPT; *pos is advanced only on success. */
static inline int topic__record_decode_general(const uint8_t **pos, const uint8_t *end,
                                               int64_t first_ts, struct record_view *r)
{
    const uint8_t *p = *pos;
    uint64_t delta, klen, vlen;
    if (!topic__varint_get(&p, end, &delta) || !topic__varint_get(&p, end, &klen))
        return TOPIC_ECORRUPT;
    if (klen > (uint64_t)(end - p) + 1)
        return TOPIC_ECORRUPT;
    r->key = klen ? p : NULL;
    r->key_len = klen ? (size_t)(klen - 1) : 0;
    p += r->key_len;
    if (!topic__varint_get(&p, end, &vlen) || vlen > (uint64_t)(end - p))
        return TOPIC_ECORRUPT;
    r->value = p;
    r->value_len = (size_t)vlen;
    /* The delta is zigzag coded; the sum wraps as the encoder's difference did. */
    r->ts = (int64_t)((uint64_t)first_ts + ((delta >> 1) ^ (0 - (delta & 1))));
    *pos = p + vlen;
    return 0;
}

/* Decodes one record at *pos (advanced past it) inside [payload, end): the
 * short way for the usual record, else the general one.  Always inlined: a
 * cursor over small records decodes one per call, and GCC made it a call
 * of its own, which cost a scan of 100 B records an eighth of its speed (65
 * against 75 M records/s). */
__attribute__((always_inline))
static inline int topic__record_decode(const uint8_t **pos, const uint8_t *end, int64_t first_ts,
                                       struct record_view *r)
{
    if (topic__record_decode_short(pos, end, first_ts, r))
        return 0;
    return topic__record_decode_general(pos, end, first_ts, r);
}
/* topic__batch_records for a compressed batch (compress.c). */
int  topic__batch_unpack(const uint8_t *p, const struct batch_header *h, struct zbuf *z,
                         const uint8_t **begin, const uint8_t **end);

/*
 * Where the records of a verified batch are: in place, or decompressed into
 * z.  Returns 0 or TOPIC_ECORRUPT (a block that does not decompress to the
 * length it claims), -ENOMEM.  Inline for the common case, a batch that is
 * not compressed: a cursor over small records enters a batch per record.
 */
static inline int topic__batch_records(const uint8_t *p, const struct batch_header *h,
                                       struct zbuf *z, const uint8_t **begin,
                                       const uint8_t **end)
{
    if ((h->attributes & TOPIC__ATTR_COMPRESSION_MASK) == TOPIC__COMPRESS_NONE) {
        *begin = p + TOPIC__HEADER_SIZE;
        *end = p + h->length;
        return 0;
    }
    return topic__batch_unpack(p, h, z, begin, end);
}
void topic__zbuf_free(struct zbuf *z);
/* Compresses `n` bytes of records at src into dst (room for `cap` bytes)
 * as the payload of an lz4 batch; returns its size, or 0 when that would
 * not be smaller than n.  `state` is the compressor's working memory,
 * topic__lz4_state_size() bytes aligned as malloc() aligns. */
size_t topic__lz4_pack(void *state, const uint8_t *src, size_t n, uint8_t *dst, size_t cap);
size_t topic__lz4_state_size(void);
size_t topic__lz4_bound(size_t n);
/* Decodes every record of a verified batch to check its structure and count. */
int  topic__batch_walk(const uint8_t *p, const struct batch_header *h);

#endif /* TOPIC_FORMAT_H */
