/*
 * The on-disk format of a segment file (.log), byte for byte.  doc/FORMAT.md
 * says the same for readers who are not reading C.
 *
 * A segment file is a sequence of batches, back to back from byte 0, followed
 * by zero bytes up to the preallocated size while the segment is active.  A
 * batch is one call to topic_append() or topic_append_batch(): it is written
 * whole or, after a crash, found torn and cut off whole.  All integers are
 * little-endian.
 *
 *   offset size  field
 *   0      4     magic        0x54 0x50 0x42 0x31 ("TPB1"); the last byte is the
 *                             format version.  Four zero bytes here mean "no
 *                             more batches" (the preallocated tail).
 *   4      4     length       bytes in the whole batch, this header included;
 *                             at least 51, at most 2^30
 *   8      8     checksum     XXH3-64 of bytes [16, length), everything after
 *                             this field, with bytes [0, 8) (magic and length,
 *                             read as a little-endian u64) as the seed: a
 *                             damaged magic or length fails it as well
 *   16     8     base_offset  offset of the first record
 *   24     4     count        records in the batch, at least 1
 *   28     2     attributes   bits 0-2: compression (0 = none, 1 = lz4);
 *                             others zero
 *   30     2     reserved     zero
 *   32     8     first_ts     timestamp of the first record, ms since the epoch
 *   40     8     max_ts       largest timestamp of any record in the batch
 *   48     ...   records      `count` records, back to back, filling the batch;
 *                             or, compressed: u32 length of the records, then
 *                             one LZ4 block of them (lz4's block format)
 *
 * A record:
 *
 *   varint  timestamp delta  zigzag-encoded (timestamp - first_ts)
 *   varint  key length + 1   0 means no key (NULL); 1 an empty key
 *   bytes   key
 *   varint  value length
 *   bytes   value
 *
 * Every later format version keeps bytes [0, 16) as they are here, so that
 * a reader can tell a batch of a newer version (its checksum verifies: the
 * topic is refused with TOPIC_EVERSION) from a damaged one (TOPIC_ECORRUPT).
 *
 * Varints are unsigned LEB128 (7 bits a byte, low bits first, at most 10
 * bytes), as in protobuf and Kafka.  Record i of a batch has offset
 * base_offset + i: offsets are never stored per record.
 *
 * A reader trusts nothing it has not checked: the header is parsed with every
 * field bounded by the bytes that exist, the checksum is verified before any
 * record is handed out, and record decoding is bounded by the batch's end.
 */
#include <string.h>
/* Inlined, so that the hash of a small batch costs no call into the shared
 * library and is specialised for its length. */
#define XXH_INLINE_ALL
#include <xxhash.h>

#include "format.h"

/* Batches of more than this many hashed bytes go through the vector copy
 * of XXH3 in xxh3_wide.c when the CPU has AVX2; XXH3 of up to 240 bytes is
 * scalar code whatever the CPU. */
#define WIDE_MIN 240u

/* The checksum of the batch at p, whose first 8 bytes (magic and length)
 * are `seed`. */
static uint64_t seeded_sum(const uint8_t *p, size_t length, uint64_t seed)
{
    size_t n = length - 16;
    if (n > WIDE_MIN && topic__xxh3_wide_usable())
        return topic__xxh3_wide(p + 16, n, seed);
    return XXH3_64bits_withSeed(p + 16, n, seed);
}

static uint64_t batch_sum(const uint8_t *p, size_t length)
{
    return seeded_sum(p, length, topic__load64(p));
}

size_t topic__records_size(const topic_record *recs, size_t n, int64_t first_ts, int64_t now)
{
    size_t size = 0;
    for (size_t i = 0; i < n; i++)
        size += topic__record_size(&recs[i], topic__rec_ts(&recs[i], now), first_ts);
    return size;
}

void topic__records_encode(uint8_t *p, const topic_record *recs, size_t n, int64_t first_ts,
                           int64_t now)
{
    for (size_t i = 0; i < n; i++) {
        const topic_record *r = &recs[i];
        p = topic__varint_put(p, topic__ts_delta(topic__rec_ts(r, now), first_ts));
        p = topic__varint_put(p, r->key ? (uint64_t)r->key_len + 1 : 0);
        if (r->key && r->key_len) {
            memcpy(p, r->key, r->key_len);
            p += r->key_len;
        }
        p = topic__varint_put(p, r->value_len);
        if (r->value_len) {
            memcpy(p, r->value, r->value_len);
            p += r->value_len;
        }
    }
}

void topic__open_seal_header(uint8_t *dst, size_t size, size_t n, int64_t max_ts)
{
    topic__store32(dst + 4, (uint32_t)size);
    topic__store32(dst + 24, (uint32_t)n);
    topic__store64(dst + 40, (uint64_t)max_ts);
    uint64_t seed = TOPIC__BATCH_MAGIC | (uint64_t)(uint32_t)size << 32;
    topic__store64(dst + 8, seeded_sum(dst, size, seed));
    /* Readers that see the open magic read only the base offset and first
     * timestamp, which stay; one that sees this magic must see the rest. */
    __atomic_store_n(dst + TOPIC__MAGIC_KIND_AT, (uint8_t)TOPIC__KIND_BATCH, __ATOMIC_RELEASE);
}

void topic__header_encode(uint8_t *dst, size_t size, uint64_t base_offset, size_t n,
                          int64_t first_ts, int64_t max_ts, unsigned attributes)
{
    topic__store32(dst + 4, (uint32_t)size);
    topic__store64(dst + 16, base_offset);
    topic__store32(dst + 24, (uint32_t)n);
    topic__store32(dst + 28, attributes);   /* and a zero reserved field */
    topic__store64(dst + 32, (uint64_t)first_ts);
    topic__store64(dst + 40, (uint64_t)max_ts);
    /* Readers never look at a batch before the end offset that covers it is
     * published, so the order of these stores does not matter to them. */
    topic__store32(dst, TOPIC__BATCH_MAGIC);
    /* The seed is the 8 bytes just stored, but taken from registers: a
     * 64-bit load of two 32-bit stores still in flight cannot be forwarded
     * from them and waits for both to reach the cache, about a twentieth of
     * a small append. */
    uint64_t seed = TOPIC__BATCH_MAGIC | (uint64_t)(uint32_t)size << 32;
    topic__store64(dst + 8, seeded_sum(dst, size, seed));
}

void topic__batch_encode(uint8_t *dst, size_t size, uint64_t base_offset,
                         const topic_record *recs, size_t n, int64_t first_ts, int64_t max_ts,
                         int64_t now)
{
    topic__records_encode(dst + TOPIC__HEADER_SIZE, recs, n, first_ts, now);
    topic__header_encode(dst, size, base_offset, n, first_ts, max_ts, TOPIC__COMPRESS_NONE);
}

void topic__value_batch_encode(uint8_t *dst, size_t size, uint64_t base_offset,
                               const void *value, size_t len, int64_t ts)
{
    uint8_t *p = dst + TOPIC__HEADER_SIZE;
    *p++ = 0;   /* timestamp delta: the batch's first_ts is the record's */
    *p++ = 0;   /* no key */
    p = topic__varint_put(p, len);
    if (len)
        memcpy(p, value, len);
    topic__header_encode(dst, size, base_offset, 1, ts, ts, TOPIC__COMPRESS_NONE);
}

void topic__open_header(uint8_t *dst, uint64_t base_offset, int64_t first_ts)
{
    memset(dst, 0, TOPIC__HEADER_SIZE);
    topic__store64(dst + 16, base_offset);
    topic__store64(dst + 32, (uint64_t)first_ts);
    topic__store32(dst, TOPIC__OPEN_MAGIC);
}

uint64_t topic__chain_start(uint64_t base_offset, int64_t first_ts)
{
    uint8_t b[16];
    topic__store64(b, base_offset);
    topic__store64(b + 8, (uint64_t)first_ts);
    return XXH3_64bits_withSeed(b, sizeof b, TOPIC__OPEN_MAGIC);
}

uint64_t topic__chain_step(uint64_t chain, const uint8_t *p, size_t n)
{
    return XXH3_64bits_withSeed(p, n, chain);
}

bool topic__open_vouched(const uint8_t *p, size_t at, const uint8_t *end, uint64_t chain,
                         bool slack, struct open_vouched *out)
{
    if (at < TOPIC__HEADER_SIZE || at > TOPIC__MAX_BATCH || (size_t)(end - p) < at)
        return false;
    if (!slack)
        end = p + at;
    else if ((size_t)(end - p) > TOPIC__MAX_BATCH)
        end = p + TOPIC__MAX_BATCH;
    int64_t first_ts, max_ts = INT64_MIN;
    topic__open_fields(p, &out->base, &first_ts);
    uint64_t c = topic__chain_start(out->base, first_ts), count = 0;
    const uint8_t *rp = p + TOPIC__HEADER_SIZE, *atp = p + at;
    /* Boundaries between records, counted from 1 (after the header): n_at
     * is the one at `at` (0 while none is), n_good the last where the
     * chain holds. */
    uint64_t n = 1, n_at = rp == atp ? 1 : 0, n_good = 0;
    while (rp < end && rp <= atp) {   /* every record to `at`, and one more */
        const uint8_t *r0 = rp;
        struct record_view r;
        if (topic__record_decode(&rp, end, first_ts, &r) < 0)
            break;
        c = topic__chain_step(c, r0, (size_t)(rp - r0));
        max_ts = r.ts > max_ts ? r.ts : max_ts;
        count++;
        n++;
        if (rp == atp)
            n_at = n;
        if (c == chain && count <= UINT32_MAX) {
            n_good = n;
            out->len = (size_t)(rp - p);
            out->count = count;
            out->max_ts = max_ts;
        }
    }
    if (n_good == 0 || n_at == 0)
        return false;
    return slack ? n_good + 1 >= n_at && n_good <= n_at + 1 : n_good == n_at;
}

/* A magic of this format family with a higher version: a newer release's
 * batch if its checksum holds, else a damaged one of ours. */
int topic__header_newer(const uint8_t *p, size_t avail)
{
    if (avail < TOPIC__HEADER_SIZE)
        return TOPIC_ECORRUPT;
    uint32_t length = topic__load32(p + 4);
    if (length < 16 || length > avail || batch_sum(p, length) != topic__load64(p + 8))
        return TOPIC_ECORRUPT;
    return TOPIC_EVERSION;
}

void topic__batch_seal(uint8_t *p, size_t length)
{
    topic__store64(p + 8, batch_sum(p, length));
}

bool topic__batch_verify(const uint8_t *p, const struct batch_header *h)
{
    return batch_sum(p, h->length) == h->checksum;
}

int topic__batch_walk(const uint8_t *p, const struct batch_header *h)
{
    struct zbuf z = { 0 };
    const uint8_t *pos, *end;
    int rc = topic__batch_records(p, h, &z, &pos, &end);
    struct record_view r;
    for (uint32_t i = 0; i < h->count && rc == 0; i++)
        rc = topic__record_decode(&pos, end, h->first_ts, &r);
    if (rc == 0 && pos != end)
        rc = TOPIC_ECORRUPT;
    topic__zbuf_free(&z);
    return rc;
}
