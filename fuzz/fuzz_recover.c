/*
 * Recovery of a topic directory whose files come from the input: a writer
 * opens it (verifying, cutting and rebuilding what it must), reads all of
 * it, appends, closes; a reader then opens it again.  Whatever the bytes,
 * opening either fails with an error or yields a topic whose every offset
 * below the end reads as a record or an error.
 *
 * Input: records of [u8 file][u16 length][bytes], where file picks one of
 * topic.state, topic.conf and the three files of segments 0, 40 and 80.
 */
#include <string.h>

#include "fuzz.h"
#include "topic.h"

static const char *const names[] = {
    "topic.state",
    "topic.conf",
    "00000000000000000000.log",
    "00000000000000000000.index",
    "00000000000000000000.timeindex",
    "00000000000000000040.log",
    "00000000000000000040.index",
    "00000000000000000040.timeindex",
    "00000000000000000080.log",
    "00000000000000000080.index",
};

static void read_all(topic *t)
{
    uint64_t end = topic_end_offset(t);
    char buf[256];
    size_t len;
    for (uint64_t o = topic_start_offset(t); o < end && o < 1024; o++)
        topic_read(t, o, buf, sizeof buf, &len);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *dir = fuzz_scratch();
    while (size >= 3) {
        size_t which = data[0] % (sizeof names / sizeof names[0]);
        size_t len = (size_t)(data[1] | data[2] << 8);
        data += 3, size -= 3;
        if (len > size)
            len = size;
        fuzz_write(dir, names[which], data, len);
        data += len, size -= len;
    }
    topic *t;
    if (topic_open(dir, 0, NULL, &t) == 0) {
        read_all(t);
        uint64_t end = topic_end_offset(t), off = 0;
        if (topic_append(t, "after", 5, &off) == 0 && off != end)
            __builtin_trap();   /* offsets must stay dense */
        topic_close(t);
    }
    if (topic_open(dir, TOPIC_RDONLY, NULL, &t) == 0) {
        read_all(t);
        topic_close(t);
    }
    return 0;
}
