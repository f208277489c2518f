/*
 * A sealed segment with arbitrary .log, .index and .timeindex bytes, read
 * through the public API by a reader and by a writer: lookups by offset and
 * by time, cursors.  The files cannot be trusted, so every path must end in
 * a record or an error, never in a crash or a read outside a mapping.
 *
 * Input: u16 log length, u16 index length, then the log, the index, and
 * the time index (the rest).
 */
#include <string.h>

#include "format.h"
#include "fuzz.h"
#include "internal.h"

static void read_all(topic *t)
{
    uint64_t end = topic_end_offset(t);
    char buf[256];
    size_t len;
    for (uint64_t o = 0; o < end && o < 512; o++)
        topic_read(t, o, buf, sizeof buf, &len);
    topic_cursor *c;
    if (topic_cursor_open(t, 0, &c) == 0) {
        topic_record r;
        for (int i = 0; i < 512; i++) {
            int rc = topic_cursor_next(c, &r);
            if (rc == TOPIC_END)
                break;
            if (rc < 0 && topic_cursor_seek(c, topic_cursor_offset(c) + 1) < 0)
                break;
        }
        int64_t times[] = { INT64_MIN, -1, 0, 1000, 1764000000000, INT64_MAX };
        for (size_t i = 0; i < sizeof times / sizeof times[0]; i++)
            if (topic_cursor_seek_time(c, times[i]) == 0)
                topic_cursor_next(c, &r);
        topic_cursor_close(c);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 4)
        return 0;
    size_t log_len = (size_t)(data[0] | data[1] << 8), idx_len = (size_t)(data[2] | data[3] << 8);
    data += 4, size -= 4;
    if (log_len > size)
        log_len = size;
    if (idx_len > size - log_len)
        idx_len = size - log_len;
    const char *dir = fuzz_scratch();
    fuzz_write(dir, "00000000000000000000.log", data, log_len);
    fuzz_write(dir, "00000000000000000000.index", data + log_len, idx_len);
    fuzz_write(dir, "00000000000000000000.timeindex", data + log_len + idx_len,
               size - log_len - idx_len);
    /* The next segment begins at 100: segment 0 claims offsets 0..99, and
     * topic.state says it was sealed, so its index files are used. */
    fuzz_write(dir, "00000000000000000100.log", "", 0);
    uint8_t state[4096] = { 0 };
    struct state_page st = { .magic = TOPIC__STATE_MAGIC, .version = TOPIC__STATE_VERSION,
                             .unsealed_from = 100 };
    memcpy(state, &st, sizeof st);
    fuzz_write(dir, "topic.state", state, sizeof state);

    topic *t;
    if (topic_open(dir, TOPIC_RDONLY, NULL, &t) == 0) {
        read_all(t);
        topic_close(t);
    }
    if (topic_open(dir, 0, NULL, &t) == 0) {
        read_all(t);
        topic_append(t, "x", 1, NULL);
        topic_close(t);
    }
    return 0;
}
