/*
 * The batch decoder: header parsing, checksum, decompression and record
 * decoding, on arbitrary bytes.  When the first input byte is odd the
 * checksum is recomputed first, so that the fuzzer gets past it and
 * explores what lies behind (records, lz4 blocks, counts, lengths).
 * The bytes are also walked as an open batch's records.  Whatever the
 * input, nothing may read outside it or crash.
 */
#include <stdlib.h>
#include <string.h>

#include "format.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    int reseal = data[0] & 1;
    size -= 1;
    /* An exact-size copy, so that ASan sees any read past the end. */
    uint8_t *p = malloc(size ? size : 1);
    if (p == NULL)
        return 0;
    memcpy(p, data + 1, size);
    struct batch_header h;
    if (reseal && size >= TOPIC__HEADER_SIZE) {
        uint32_t len = topic__load32(p + 4);
        if (len >= 16 && len <= size)
            topic__batch_seal(p, len);
    }
    size_t pos = 0;
    while (pos < size && topic__header_parse(p + pos, size - pos, &h) == 0) {
        if (topic__batch_verify(p + pos, &h)) {
            struct zbuf z = { 0 };
            const uint8_t *rec, *end;
            if (topic__batch_records(p + pos, &h, &z, &rec, &end) == 0) {
                struct record_view r;
                for (uint32_t i = 0; i < h.count; i++)
                    if (topic__record_decode(&rec, end, h.first_ts, &r) < 0)
                        break;
            }
            topic__batch_walk(p + pos, &h);
            topic__zbuf_free(&z);
        }
        pos += h.length;
    }
    /* The same bytes as an open batch (FORMAT.md section 2.6), whose
     * records recovery and readers walk against a published chain
     * (topic__open_vouched): the published length from bytes 4-7, the
     * chain from bytes 8-15.  Without slack it must read nothing at or
     * past that length, so it gets a copy of exactly that many bytes. */
    if (size >= TOPIC__HEADER_SIZE) {
        size_t at = topic__load32(p + 4) % (size + 1);
        uint64_t chain = topic__load64(p + 8);
        struct open_vouched o;
        uint8_t *q = malloc(at ? at : 1);
        if (q != NULL) {
            memcpy(q, p, at);
            if (topic__open_vouched(q, at, q + at, chain, false, &o) && o.len != at)
                __builtin_trap();
            free(q);
        }
        if (topic__open_vouched(p, at, p + size, chain, true, &o) &&
            (o.len < TOPIC__HEADER_SIZE || o.len > size || o.count == 0))
            __builtin_trap();
    }
    free(p);
    return 0;
}
