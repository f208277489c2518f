/* Unit tests of the batch format (lib/format.c): encoding, decoding and the
 * checks that keep damaged bytes from ever being returned as data. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <xxhash.h>

#include "internal.h"
#include "testutil.h"

#define NOW INT64_C(1764000000000)

static size_t encode(uint8_t *buf, size_t cap, uint64_t base, const topic_record *recs, size_t n)
{
    int64_t first = topic__rec_ts(&recs[0], NOW), max = INT64_MIN;
    for (size_t i = 0; i < n; i++)
        if (topic__rec_ts(&recs[i], NOW) > max)
            max = topic__rec_ts(&recs[i], NOW);
    size_t size = TOPIC__HEADER_SIZE + topic__records_size(recs, n, first, NOW);
    assert_true(size <= cap);
    topic__batch_encode(buf, size, base, recs, n, first, max, NOW);
    return size;
}

static void test_round_trip(void **state)
{
    (void)state;
    uint8_t buf[4096];
    char big[300];
    memset(big, 'v', sizeof big);
    topic_record recs[] = {
        { 0, 0, NULL, 0, "hello", 5 },                        /* ts now, no key */
        { 0, INT64_C(-5), "", 0, "", 0 },                       /* empty key, empty value */
        { 0, INT64_MAX, "k", 1, big, sizeof big },              /* extreme timestamp */
        { 0, INT64_MIN + 1, "key2", 4, NULL, 0 },
    };
    size_t size = encode(buf, sizeof buf, 42, recs, 4);
    struct batch_header h;
    assert_int_equal(topic__header_parse(buf, size, &h), 0);
    assert_int_equal(h.length, size);
    assert_int_equal(h.base_offset, 42);
    assert_int_equal(h.count, 4);
    assert_int_equal(h.first_ts, NOW);
    assert_int_equal(h.max_ts, INT64_MAX);
    assert_true(topic__batch_verify(buf, &h));
    assert_int_equal(topic__batch_walk(buf, &h), 0);

    const uint8_t *p = buf + TOPIC__HEADER_SIZE, *end = buf + size;
    struct record_view r;
    int64_t want_ts[] = { NOW, -5, INT64_MAX, INT64_MIN + 1 };
    for (int i = 0; i < 4; i++) {
        assert_int_equal(topic__record_decode(&p, end, h.first_ts, &r), 0);
        assert_int_equal(r.ts, want_ts[i]);
        assert_int_equal(r.value_len, recs[i].value_len);
        if (r.value_len)
            assert_memory_equal(r.value, recs[i].value, r.value_len);
        if (recs[i].key == NULL) {
            assert_null(r.key);
        } else {
            assert_non_null(r.key);
            assert_int_equal(r.key_len, recs[i].key_len);
            assert_memory_equal(r.key, recs[i].key, r.key_len);
        }
    }
    assert_ptr_equal(p, end);
}

/* topic_append()'s encoder for one keyless record must write exactly the
 * bytes the general encoder writes for the same record, for value lengths
 * on both sides of every varint width. */
static void test_value_batch_same_bytes(void **state)
{
    (void)state;
    static const size_t lens[] = { 0, 1, 100, 127, 128, 16383, 16384, 100000 };
    uint8_t *val = malloc(100000), *a = malloc(100100), *b = malloc(100100);
    assert_non_null(val);
    assert_non_null(a);
    assert_non_null(b);
    for (size_t i = 0; i < 100000; i++)
        val[i] = (uint8_t)(i * 7 + 3);
    for (size_t i = 0; i < sizeof lens / sizeof lens[0]; i++) {
        topic_record r = { 0, 0, NULL, 0, lens[i] ? val : NULL, lens[i] };
        size_t size = encode(a, 100100, 77 + i, &r, 1);
        assert_int_equal(topic__value_batch_size(lens[i]), size);
        memset(b, 0xee, size);
        topic__value_batch_encode(b, size, 77 + i, val, lens[i], NOW);
        assert_memory_equal(a, b, size);
    }
    free(val);
    free(a);
    free(b);
}

/* The sparse index search (interpolation, then galloping) must find the
 * last entry at or below an offset exactly as a linear scan does, over
 * evenly and unevenly spaced entries; over damaged (unordered) entries it
 * must stay inside the index and answer with an entry at or below. */
static void test_index_find_rel(void **state)
{
    (void)state;
    enum { MAX = 5000 };
    uint8_t *buf = malloc((size_t)MAX * TOPIC__IDX_ENTRY);
    assert_non_null(buf);
    uint64_t rng = 0x9e3779b97f4a7c15u;
    for (int round = 0; round < 300; round++) {
        rng = rng * 6364136223846793005u + 1442695040888963407u;
        uint32_t n = 1 + (uint32_t)(rng >> 33) % MAX, rel = (uint32_t)(rng >> 40) % 50;
        int kind = round % 3;   /* 0 even, 1 uneven, 2 damaged */
        for (uint32_t i = 0; i < n; i++) {
            rng = rng * 6364136223846793005u + 1442695040888963407u;
            uint32_t r = (uint32_t)(rng >> 33);
            if (kind == 0)
                rel += 27;
            else if (kind == 1)
                rel += 1 + (i < n / 3 ? r % 5 : r % 400);
            else
                rel = r % 100000;
            topic__store32(buf + (size_t)i * 8, rel);
            topic__store32(buf + (size_t)i * 8 + 4, 48 * (i + 1));
        }
        struct index ix = { .fd = -1, .map = buf, .map_len = (size_t)n * 8, .cap = n,
                            .entry_size = TOPIC__IDX_ENTRY };
        atomic_store(&ix.n, n);
        for (int q = 0; q < 200; q++) {
            rng = rng * 6364136223846793005u + 1442695040888963407u;
            uint32_t key = (uint32_t)(rng >> 33) % (rel + 100);
            struct idx_entry e;
            bool found = topic__index_find_rel(&ix, key, &e);
            if (kind == 2) {
                if (found)
                    assert_true(e.rel <= key && e.pos % 48 == 0 && e.pos / 48 - 1 < n);
                continue;
            }
            int64_t want = -1;
            for (uint32_t i = 0; i < n; i++)
                if (topic__load32(buf + (size_t)i * 8) <= key)
                    want = i;
            assert_int_equal(found, want >= 0);
            if (found)
                assert_int_equal(e.pos, 48 * (uint32_t)(want + 1));
        }
    }
    free(buf);
}

/*
 * The AVX2 copy of XXH3 (xxh3_wide.c) must give the portable copy's result
 * for every length it is used for, or batches written on one CPU would read
 * as corrupt on another.  The portable result comes from the shared
 * libxxhash, a build independent of ours.  Lengths around the 64-byte
 * stripes and the 1 KiB blocks of XXH3's long-input loop, and misaligned
 * starts.
 */
static void test_wide_hash_same_result(void **state)
{
    (void)state;
    size_t max = 70000;
    uint8_t *buf = malloc(max + 64);
    assert_non_null(buf);
    tu_fill(0, 88172645463325252ull, buf, max + 64);
    size_t n = 241;
    while (n <= max) {
        for (size_t shift = 0; shift < 3; shift++) {
            uint64_t seed = 0x9E3779B97F4A7C15ull * (n + shift);
            assert_int_equal(topic__xxh3_wide(buf + shift, n, seed),
                             XXH3_64bits_withSeed(buf + shift, n, seed));
        }
        n += n < 1100 ? 1 : n < 5000 ? 63 : 4099;
    }
    /* A batch checksum computed either way verifies. */
    size_t len = max + 64 + TOPIC__HEADER_SIZE;
    uint8_t *b = calloc(1, len);
    assert_non_null(b);
    topic_record r = { .value = buf, .value_len = max };
    size_t size = TOPIC__HEADER_SIZE + topic__records_size(&r, 1, 0, 5);
    assert_true(size <= len);
    topic__batch_encode(b, size, 0, &r, 1, 5, 5, 5);
    struct batch_header h;
    assert_int_equal(topic__header_parse(b, size, &h), 0);
    assert_true(topic__batch_verify(b, &h));
    assert_int_equal(h.checksum, XXH3_64bits_withSeed(b + 16, size - 16, topic__load64(b)));
    free(b);
    free(buf);
}

static void test_zero_magic_is_end(void **state)
{
    (void)state;
    uint8_t zeros[64] = { 0 };
    struct batch_header h;
    assert_int_equal(topic__header_parse(zeros, sizeof zeros, &h), TOPIC_END);
    assert_int_equal(topic__header_parse(zeros, 0, &h), TOPIC_END);
}

static void test_header_rejects(void **state)
{
    (void)state;
    uint8_t buf[256];
    topic_record r = { 0, 7, NULL, 0, "abcdefgh", 8 };
    size_t size = encode(buf, sizeof buf, 0, &r, 1);
    struct batch_header h;
    /* Fewer bytes than the batch claims: a torn tail. */
    assert_int_equal(topic__header_parse(buf, size - 1, &h), TOPIC_ECORRUPT);
    assert_int_equal(topic__header_parse(buf, 20, &h), TOPIC_ECORRUPT);
    /* An intact batch of a newer format version is refused, not cut off as
     * garbage; a damaged version byte is damage. */
    uint8_t v2[256];
    memcpy(v2, buf, size);
    v2[3] = '2';
    assert_int_equal(topic__header_parse(v2, size, &h), TOPIC_ECORRUPT);
    topic__batch_seal(v2, size);
    assert_int_equal(topic__header_parse(v2, size, &h), TOPIC_EVERSION);
    /* Lengths and counts that cannot be. */
    uint8_t bad[256];
    memcpy(bad, buf, size);
    topic__store32(bad + 4, 10);
    assert_int_equal(topic__header_parse(bad, size, &h), TOPIC_ECORRUPT);
    memcpy(bad, buf, size);
    topic__store32(bad + 24, 0);
    assert_int_equal(topic__header_parse(bad, size, &h), TOPIC_ECORRUPT);
    memcpy(bad, buf, size);
    topic__store32(bad + 24, 1000);
    assert_int_equal(topic__header_parse(bad, size, &h), TOPIC_ECORRUPT);
    memcpy(bad, buf, size);
    bad[28] = 0x80;   /* an attribute this version does not know */
    assert_int_equal(topic__header_parse(bad, size, &h), TOPIC_ECORRUPT);
}

/* Every single-bit flip of a batch is caught by the header checks or the
 * checksum: never returned as a valid batch. */
static void test_every_bit_flip_detected(void **state)
{
    (void)state;
    uint8_t buf[256], copy[256];
    topic_record recs[2] = { { 0, 1000, "k", 1, "first value", 11 },
                             { 0, 1001, NULL, 0, "second", 6 } };
    size_t size = encode(buf, sizeof buf, 7, recs, 2);
    for (size_t bit = 0; bit < size * 8; bit++) {
        memcpy(copy, buf, size);
        copy[bit / 8] ^= (uint8_t)(1u << (bit % 8));
        struct batch_header h;
        int rc = topic__header_parse(copy, size, &h);
        if (rc == 0 && h.base_offset == 7 && topic__batch_verify(copy, &h))
            fail_msg("bit %zu flipped went unnoticed", bit);
    }
}

static void test_decode_bounds(void **state)
{
    (void)state;
    /* A value length running past the end of the batch. */
    uint8_t rec[] = { 0x00, 0x00, 0x7f, 'a', 'b' };
    const uint8_t *p = rec;
    struct record_view r;
    assert_int_equal(topic__record_decode(&p, rec + sizeof rec, 0, &r), TOPIC_ECORRUPT);
    /* A varint that never ends. */
    uint8_t endless[12];
    memset(endless, 0xff, sizeof endless);
    p = endless;
    assert_int_equal(topic__record_decode(&p, endless + sizeof endless, 0, &r), TOPIC_ECORRUPT);
    /* A key length past the end. */
    uint8_t key[] = { 0x00, 0x05, 'a' };
    p = key;
    assert_int_equal(topic__record_decode(&p, key + sizeof key, 0, &r), TOPIC_ECORRUPT);
}

/* Both decoders on bytes [p, end): the short one must give what the general
 * one gives, or decline and leave *pos alone.  Returns whether it took it. */
static bool short_agrees(const uint8_t *p, const uint8_t *end, int64_t first_ts)
{
    const uint8_t *ps = p, *pg = p;
    struct record_view rs, rg;
    memset(&rs, 0, sizeof rs);
    memset(&rg, 0, sizeof rg);
    bool took = topic__record_decode_short(&ps, end, first_ts, &rs);
    int rc = topic__record_decode_general(&pg, end, first_ts, &rg);
    if (!took) {
        assert_ptr_equal(ps, p);
        return false;
    }
    assert_int_equal(rc, 0);
    assert_ptr_equal(ps, pg);
    assert_true(rs.ts == rg.ts);
    assert_ptr_equal(rs.key, rg.key);
    assert_int_equal(rs.key_len, rg.key_len);
    assert_ptr_equal(rs.value, rg.value);
    assert_int_equal(rs.value_len, rg.value_len);
    return true;
}

/*
 * The cursor's short decoder (format.h) against the general one: on the
 * records writers make (keys of 0 to 130 bytes, values of 0 to 20000,
 * timestamps before and after the batch's first) cut at every length, and
 * on random bytes.  It must take the usual records whole, and never give
 * anything the general decoder would not.
 */
static void test_short_decode_agrees(void **state)
{
    (void)state;
    static uint8_t buf[32768], val[20000];
    for (size_t i = 0; i < sizeof val; i++)
        val[i] = (uint8_t)(i * 7);
    static const size_t klens[] = { 0, 1, 2, 126, 127, 130 };
    static const size_t vlens[] = { 0, 1, 100, 127, 128, 1024, 16383, 16384, 20000 };
    static const int64_t deltas[] = { 0, 1, -1, 63, -64, 64, -65, 100000 };
    size_t taken = 0;
    for (size_t k = 0; k < sizeof klens / sizeof klens[0]; k++)
        for (size_t v = 0; v < sizeof vlens / sizeof vlens[0]; v++)
            for (size_t d = 0; d < sizeof deltas / sizeof deltas[0]; d++) {
                /* klens[k] == 0 stands for no key at all; 1 for an empty one. */
                topic_record r = { 0, NOW + deltas[d], klens[k] ? val : NULL,
                                   klens[k] ? klens[k] - 1 : 0, val, vlens[v] };
                size_t n = topic__records_size(&r, 1, NOW, NOW);
                assert_true(n <= sizeof buf);
                topic__records_encode(buf, &r, 1, NOW, NOW);
                bool usual = klens[k] < 128 && vlens[v] < 16384 && deltas[d] >= -64 &&
                             deltas[d] < 64;
                /* Whole, and with bytes of the next record after it. */
                assert_true(short_agrees(buf, buf + n, NOW) == usual);
                assert_true(short_agrees(buf, buf + n + 3, NOW) == usual);
                taken += usual;
                /* Cut short anywhere: the general decoder reports damage,
                 * and the short one must decline. */
                size_t step = n > 400 ? n / 97 : 1;
                for (size_t cut = 0; cut < n; cut += step)
                    assert_false(short_agrees(buf, buf + cut, NOW));
            }
    assert_true(taken > 0);
    /* Random bytes, mostly small ones, as a damaged batch holds. */
    tu_rng rng;
    tu_rng_seed(&rng, 12345);
    for (int i = 0; i < 200000; i++) {
        uint8_t b[24];
        size_t len = (size_t)tu_rng_below(&rng, sizeof b);
        for (size_t j = 0; j < len; j++) {
            uint64_t x = tu_rng_next(&rng);
            b[j] = (uint8_t)(x & 1 ? x >> 8 : (x >> 8) % 6);
        }
        short_agrees(b, b + len, NOW);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_value_batch_same_bytes),
        cmocka_unit_test(test_index_find_rel),
        cmocka_unit_test(test_wide_hash_same_result),
        cmocka_unit_test(test_zero_magic_is_end),
        cmocka_unit_test(test_header_rejects),
        cmocka_unit_test(test_every_bit_flip_detected),
        cmocka_unit_test(test_decode_bounds),
        cmocka_unit_test(test_short_decode_agrees),
    };
    return cmocka_run_group_tests_name("format", tests, NULL, NULL);
}
