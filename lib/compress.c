/*
 * lz4 for batches (compression.type=lz4).  A compressed batch's payload is
 * the u32 length of its records followed by one lz4 block of them; the
 * checksum covers the stored (compressed) bytes, so damage is caught before
 * the decompressor ever sees it, and the decompressor is the bounds-checked
 * LZ4_decompress_safe, which never writes past the length the batch claims.
 */
#include <lz4.h>
#include <string.h>

#include "internal.h"

size_t topic__lz4_bound(size_t n)
{
    return 4 + (size_t)LZ4_compressBound((int)n);
}

size_t topic__lz4_state_size(void)
{
    return (size_t)LZ4_sizeofState();
}

/* The compressor's state (about 16 KiB) is the caller's, on the heap:
 * LZ4_compress_default() keeps it on the stack, and an appending thread
 * with a small stack (16-20 KiB, as some event loops and green-thread
 * runtimes give) crashed there. */
size_t topic__lz4_pack(void *state, const uint8_t *src, size_t n, uint8_t *dst, size_t cap)
{
    if (n > (size_t)LZ4_MAX_INPUT_SIZE || cap < 4)
        return 0;
    int c = LZ4_compress_fast_extState(state, (const char *)src, (char *)dst + 4, (int)n,
                                       (int)(cap - 4), 1);
    if (c <= 0 || 4 + (size_t)c >= n)
        return 0;   /* stored raw: compression did not pay */
    topic__store32(dst, (uint32_t)n);
    return 4 + (size_t)c;
}

void topic__zbuf_free(struct zbuf *z)
{
    topic__free(z->p);
    z->p = NULL;
    z->cap = 0;
}

int topic__batch_unpack(const uint8_t *p, const struct batch_header *h, struct zbuf *z,
                        const uint8_t **begin, const uint8_t **end)
{
    const uint8_t *payload = p + TOPIC__HEADER_SIZE;
    size_t n = h->length - TOPIC__HEADER_SIZE;
    if (n < 4)
        return TOPIC_ECORRUPT;
    uint32_t raw = topic__load32(payload);
    if (raw > TOPIC__MAX_BATCH || raw < 3 * (size_t)h->count)
        return TOPIC_ECORRUPT;
    if (z->cap < raw) {
        uint8_t *q = topic__realloc(z->p, raw);
        if (q == NULL)
            return -ENOMEM;
        z->p = q;
        z->cap = raw;
    }
    int got = LZ4_decompress_safe((const char *)payload + 4, (char *)z->p, (int)(n - 4), (int)raw);
    if (got < 0 || (uint32_t)got != raw)
        return TOPIC_ECORRUPT;
    *begin = z->p;
    *end = z->p + raw;
    return 0;
}
