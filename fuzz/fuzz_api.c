/*
 * A random sequence of API operations checked against a model kept in
 * memory: append, batch, read, seek, reopen, delete_before, commit.  Any
 * difference between what the library returns and what the model says is
 * a crash (__builtin_trap), so the fuzzer reports it.
 */
#include <stdlib.h>
#include <errno.h>
#include <string.h>

#include "fuzz.h"
#include "topic.h"

#define MAX_RECORDS 2048
#define MAX_VALUE   300

struct model {
    uint8_t *val[MAX_RECORDS];
    size_t len[MAX_RECORDS];
    uint64_t n, start;
    uint64_t committed;
    int has_commit;
};

#define CHECK(cond) do { if (!(cond)) __builtin_trap(); } while (0)

struct input {
    const uint8_t *p;
    size_t n;
};

static unsigned take(struct input *in)
{
    if (in->n == 0)
        return 0;
    in->n--;
    return *in->p++;
}

static void make_value(struct input *in, uint8_t *buf, size_t *len)
{
    *len = (take(in) | take(in) << 8) % (MAX_VALUE + 1);
    unsigned seed = take(in);
    for (size_t i = 0; i < *len; i++)
        buf[i] = (uint8_t)(seed + (i % 7 == 0 ? i : 0));   /* compressible, varied */
}

static void remember(struct model *m, const uint8_t *v, size_t len)
{
    m->val[m->n] = malloc(len ? len : 1);
    memcpy(m->val[m->n], v, len);
    m->len[m->n] = len;
    m->n++;
}

static void check_read(topic *t, struct model *m, uint64_t o)
{
    uint8_t buf[MAX_VALUE];
    size_t len;
    int rc = topic_read(t, o, buf, sizeof buf, &len);
    if (o >= m->n)
        CHECK(rc == TOPIC_END);
    else if (o < m->start)
        CHECK(rc == TOPIC_EGONE);
    else
        CHECK(rc == 0 && len == m->len[o] && memcmp(buf, m->val[o], len) == 0);
}

static void check_cursor(topic *t, struct model *m, uint64_t o, unsigned steps)
{
    topic_cursor *c;
    int rc = topic_cursor_open(t, o, &c);
    if (o < m->start) {
        CHECK(rc == TOPIC_EGONE);
        return;
    }
    CHECK(rc == 0);
    for (unsigned i = 0; i < steps; i++) {
        topic_record r;
        rc = topic_cursor_next(c, &r);
        if (o + i >= m->n) {
            CHECK(rc == TOPIC_END);
            break;
        }
        CHECK(rc == 0 && r.offset == o + i && r.value_len == m->len[o + i] &&
              memcmp(r.value, m->val[o + i], r.value_len) == 0);
    }
    topic_cursor_close(c);
}

static topic *open_topic(const char *dir, int flags, topic_config *c)
{
    topic *t;
    CHECK(topic_open(dir, flags, c, &t) == 0);
    return t;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct input in = { data, size };
    const char *dir = fuzz_scratch();
    topic_config *c = topic_config_new();
    unsigned setup = take(&in);
    topic_config_set(c, "segment.bytes", setup & 1 ? "4096" : "16K");
    topic_config_set(c, "compression.type", setup & 2 ? "lz4" : "none");
    topic_config_set(c, "index.interval.bytes", setup & 4 ? "1" : "512");
    topic_config_set(c, "flush.ms", "0");
    struct model m = { 0 };
    topic *t = open_topic(dir, TOPIC_CREATE, c);
    uint8_t v[16][MAX_VALUE];
    while (in.n > 0 && m.n + 16 < MAX_RECORDS) {
        unsigned op = take(&in) % 8;
        uint64_t o = m.n ? (take(&in) | take(&in) << 8) % (m.n + 1) : 0;
        switch (op) {
        case 0: {
            size_t len;
            uint64_t off;
            make_value(&in, v[0], &len);
            CHECK(topic_append(t, v[0], len, &off) == 0 && off == m.n);
            remember(&m, v[0], len);
            break;
        }
        case 1: {
            size_t k = 1 + take(&in) % 16, len[16];
            topic_record r[16];
            for (size_t i = 0; i < k; i++) {
                make_value(&in, v[i], &len[i]);
                r[i] = (topic_record){ 0, 0, NULL, 0, v[i], len[i] };
            }
            uint64_t first;
            CHECK(topic_append_batch(t, r, k, &first) == 0 && first == m.n);
            for (size_t i = 0; i < k; i++)
                remember(&m, v[i], len[i]);
            break;
        }
        case 2:
            check_read(t, &m, o);
            break;
        case 3:
            check_cursor(t, &m, o, take(&in) % 40);
            break;
        case 4:
            CHECK(topic_close(t) == 0);
            t = open_topic(dir, 0, NULL);
            CHECK(topic_end_offset(t) == m.n && topic_start_offset(t) == m.start);
            break;
        case 5:
            CHECK(topic_delete_before(t, o) == 0);
            if (o > m.start)
                m.start = o;
            CHECK(topic_start_offset(t) == m.start);
            break;
        case 6: {
            uint64_t got;
            if (m.has_commit)
                CHECK(topic_committed(t, "g", &got) == 0 && got == m.committed);
            else
                CHECK(topic_committed(t, "g", &got) == -ENOENT);
            CHECK(topic_commit(t, "g", o) == 0);
            m.committed = o;
            m.has_commit = 1;
            break;
        }
        case 7: {
            /* A reader in the same process sees what the model says, by
             * offset and through a cursor. */
            topic *r = open_topic(dir, TOPIC_RDONLY, NULL);
            CHECK(topic_end_offset(r) == m.n);
            check_read(r, &m, o);
            check_cursor(r, &m, o, 40);
            topic_close(r);
            break;
        }
        }
    }
    CHECK(topic_close(t) == 0);
    topic_config_free(c);
    for (uint64_t i = 0; i < m.n; i++)
        free(m.val[i]);
    return 0;
}
