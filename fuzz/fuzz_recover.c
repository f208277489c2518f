/*
 * Recovery of a topic directory whose files come from the input: a reader
 * opens it and reads all of it, as one may before the next writer comes; a
 * writer opens it (verifying, cutting and rebuilding what it must), reads
 * all of it, appends, closes; a reader then opens it again.  Whatever the bytes,
 * opening either fails with an error or yields a topic whose every offset
 * below the end reads as a record or an error.
 *
 * Input: records of [u8 file][u16 length][bytes], where file picks one of
 * topic.state, topic.conf and the three files of segments 0, 40 and 80.
 * When the top bit of any record's first byte is set, the live area of
 * topic.state (FORMAT.md section 4.2) is then made this boot's, this
 * directory's and the named .log's, as a writer killed a moment ago left
 * it: the recovery that trusts what such a writer published is reached.
 * An odd sequence stays odd (a writer killed inside an update of the area),
 * which the first reader reads without the lock.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

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

/* This boot's id as the 16 bytes its hex digits spell; false if unknown. */
static int boot_id(uint8_t out[16])
{
    char text[64];
    FILE *f = fopen("/proc/sys/kernel/random/boot_id", "r");
    if (f == NULL)
        return 0;
    size_t n = fread(text, 1, sizeof text - 1, f), k = 0;
    fclose(f);
    for (size_t i = 0; i < n && k < 32; i++) {
        char c = text[i];
        int v = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
        if (v < 0)
            continue;
        out[k / 2] = (uint8_t)(k % 2 ? out[k / 2] | v : v << 4);
        k++;
    }
    return k == 32;
}

/* Stamps the live area of dir/topic.state with this boot, the directory
 * and the inode of the .log of the active_base it names. */
static void stamp_live(const char *dir)
{
    char path[4096];
    uint8_t page[152], boot[16];
    snprintf(path, sizeof path, "%s/topic.state", dir);
    int fd = open(path, O_RDWR);
    if (fd < 0)
        return;
    struct stat st;
    if (pread(fd, page, sizeof page, 0) == (ssize_t)sizeof page && boot_id(boot) &&
        stat(dir, &st) == 0) {
        uint64_t id[3] = { (uint64_t)st.st_dev, (uint64_t)st.st_ino, 0 }, base, seq = 0;
        memcpy(&base, page + 72, sizeof base);
        memcpy(&seq, page + 64, 4);
        snprintf(path, sizeof path, "%s/%020llu.log", dir, (unsigned long long)base);
        if (stat(path, &st) == 0)
            id[2] = (uint64_t)st.st_ino;
        if (seq == 0)
            seq = 2;   /* an odd one stays: a writer killed inside an update */
        memcpy(page + 64, &seq, 4);
        memcpy(page + 104, boot, sizeof boot);
        memcpy(page + 128, id, sizeof id);
        if (pwrite(fd, page, sizeof page, 0) != (ssize_t)sizeof page)
            abort();
    }
    close(fd);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *dir = fuzz_scratch();
    int stamp = 0;
    while (size >= 3) {
        stamp |= data[0] & 0x80;
        size_t which = (data[0] & 0x7f) % (sizeof names / sizeof names[0]);
        size_t len = (size_t)(data[1] | data[2] << 8);
        data += 3, size -= 3;
        if (len > size)
            len = size;
        fuzz_write(dir, names[which], data, len);
        data += len, size -= len;
    }
    if (stamp)
        stamp_live(dir);
    topic *t;
    /* A reader that opens before the next writer, then that writer. */
    if (topic_open(dir, TOPIC_RDONLY, NULL, &t) == 0) {
        read_all(t);
        topic_close(t);
    }
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
