/*
 * Writes the golden damaged topics under tests/golden/cases/.  They are
 * committed; this program is kept so that they can be remade, byte for byte
 * (timestamps are fixed), with `make golden`.  tests/test_golden.c checks
 * the documented outcome of each (tests/golden/README.md).
 *
 * Every case holds records whose value is "value <offset>" padded to 40
 * bytes, appended one per batch, so a batch's position is easy to compute:
 * each batch is 48 + 3 + 40 = 91 bytes... (the program finds positions by
 * parsing rather than trusting that).
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "format.h"
#include "topic.h"

#define TS0 INT64_C(1764000000000)

static void die(const char *what, int rc)
{
    fprintf(stderr, "make_golden: %s: %s\n", what, topic_strerror(rc));
    exit(1);
}

static void make(const char *dir, int nrec, const char *segment_bytes)
{
    char cmd[512];
    snprintf(cmd, sizeof cmd, "rm -rf '%s' && mkdir -p '%s'", dir, dir);
    if (system(cmd) != 0)
        exit(1);
    topic_config *c = topic_config_new();
    topic_config_set(c, "segment.bytes", segment_bytes);
    topic_config_set(c, "index.interval.bytes", "256");
    topic *t;
    int rc = topic_open(dir, TOPIC_CREATE, c, &t);
    if (rc < 0)
        die("open", rc);
    for (int i = 0; i < nrec; i++) {
        char v[41];
        snprintf(v, sizeof v, "value %-34d", i);
        topic_record r = { 0, TS0 + i, NULL, 0, v, 40 };
        if ((rc = topic_append_batch(t, &r, 1, NULL)) < 0)
            die("append", rc);
    }
    if ((rc = topic_close(t)) < 0)
        die("close", rc);
    topic_config_free(c);
    /* topic.wait holds nothing worth keeping. */
    snprintf(cmd, sizeof cmd, "%s/topic.wait", dir);
    unlink(cmd);
    /* The live area names the boot the writer ran in and its files
     * (FORMAT.md 4.2), which the next writer of that boot looks at: none,
     * as from a machine that could not tell, so that a case reads the same
     * in the boot that made it, and its bytes do not depend on the file
     * system it was made on. */
    static const uint8_t unknown[48];   /* bytes 104 to 151 */
    snprintf(cmd, sizeof cmd, "%s/topic.state", dir);
    int fd = open(cmd, O_WRONLY);
    if (fd < 0 || pwrite(fd, unknown, sizeof unknown, 104) != (ssize_t)sizeof unknown)
        exit(1);
    close(fd);
}

static char *path(const char *dir, const char *name)
{
    static char p[512];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    return p;
}

/* Position of the batch holding `offset` in a segment file. */
static long batch_pos(const char *file, uint64_t offset)
{
    FILE *f = fopen(file, "rb");
    uint8_t h[TOPIC__HEADER_SIZE];
    long pos = 0;
    while (f && fseek(f, pos, SEEK_SET) == 0 && fread(h, 1, sizeof h, f) == sizeof h) {
        uint64_t base = topic__load64(h + 16);
        uint32_t count = topic__load32(h + 24), len = topic__load32(h + 4);
        if (offset >= base && offset < base + count) {
            fclose(f);
            return pos;
        }
        pos += len;
    }
    fprintf(stderr, "make_golden: offset %llu not in %s\n", (unsigned long long)offset, file);
    exit(1);
}

static void patch(const char *file, long pos, const void *bytes, size_t n)
{
    int fd = open(file, O_WRONLY);
    if (fd < 0 || pwrite(fd, bytes, n, pos) != (ssize_t)n)
        exit(1);
    close(fd);
}

static void cut(const char *file, long len)
{
    if (truncate(file, len) != 0)
        exit(1);
}

/* Makes the topic look like its writer died during appends: clears the
 * clean flag, and the record's checksum with it.  The flag alone would be
 * a writer that opened the clean topic and died before it sealed anything,
 * whose record vouches for every record the close had synced. */
static void unclean(const char *dir)
{
    uint32_t zero = 0;
    uint64_t no_sum = 0;
    patch(path(dir, "topic.state"), 16, &zero, sizeof zero);
    patch(path(dir, "topic.state"), 8, &no_sum, sizeof no_sum);
}

int main(void)
{
    const char *root = "tests/golden/cases";
    char dir[256];
    mkdir(root, 0755);

    /* torn-tail: the writer died in the middle of copying offset 9. */
    snprintf(dir, sizeof dir, "%s/torn-tail", root);
    make(dir, 10, "1G");
    cut(path(dir, "00000000000000000000.log"), batch_pos(path(dir, "00000000000000000000.log"), 9) + 50);
    unclean(dir);

    /* flipped-bit: one bit of offset 5's value, in a sealed segment. */
    snprintf(dir, sizeof dir, "%s/flipped-bit", root);
    make(dir, 120, "4096");
    {
        const char *f = path(dir, "00000000000000000000.log");
        long p = batch_pos(f, 5) + TOPIC__HEADER_SIZE + 10;
        FILE *fp = fopen(f, "r+b");
        fseek(fp, p, SEEK_SET);
        int ch = fgetc(fp);
        fseek(fp, p, SEEK_SET);
        fputc(ch ^ 0x10, fp);
        fclose(fp);
    }

    /* zeroed-range: 100 zero bytes from the middle of offset 7's batch. */
    snprintf(dir, sizeof dir, "%s/zeroed-range", root);
    make(dir, 120, "4096");
    {
        static const uint8_t zeros[100];
        const char *f = path(dir, "00000000000000000000.log");
        patch(f, batch_pos(f, 7) + 30, zeros, sizeof zeros);
    }

    /* bad-index: the sealed segment's .index and .timeindex are garbage. */
    snprintf(dir, sizeof dir, "%s/bad-index", root);
    make(dir, 120, "4096");
    {
        uint8_t junk[64];
        for (size_t i = 0; i < sizeof junk; i++)
            junk[i] = (uint8_t)(i * 151 + 7);
        patch(path(dir, "00000000000000000000.index"), 0, junk, sizeof junk);
        patch(path(dir, "00000000000000000000.timeindex"), 0, junk, sizeof junk);
    }

    /* truncated-middle: the first of several segments lost its second half. */
    snprintf(dir, sizeof dir, "%s/truncated-middle", root);
    make(dir, 120, "4096");
    {
        const char *f = path(dir, "00000000000000000000.log");
        cut(f, batch_pos(f, 20));
    }

    /* wrong-magic: offset 3's batch does not start with "TPB1". */
    snprintf(dir, sizeof dir, "%s/wrong-magic", root);
    make(dir, 120, "4096");
    {
        const char *f = path(dir, "00000000000000000000.log");
        patch(f, batch_pos(f, 3), "XXXX", 4);
    }

    /* future-version: the last batch is an intact batch of format version 2. */
    snprintf(dir, sizeof dir, "%s/future-version", root);
    make(dir, 10, "1G");
    {
        const char *f = path(dir, "00000000000000000000.log");
        long p = batch_pos(f, 9);
        uint8_t b[TOPIC__HEADER_SIZE + 43];
        FILE *fp = fopen(f, "r+b");
        fseek(fp, p, SEEK_SET);
        if (fread(b, 1, sizeof b, fp) != sizeof b)
            exit(1);
        b[3] = '2';
        topic__batch_seal(b, sizeof b);
        fseek(fp, p, SEEK_SET);
        fwrite(b, 1, sizeof b, fp);
        fclose(fp);
        unclean(dir);
    }

    /* damaged-conf: topic.conf holds binary garbage. */
    snprintf(dir, sizeof dir, "%s/damaged-conf", root);
    make(dir, 10, "1G");
    patch(path(dir, "topic.conf"), 0, "\x01\x02segment.bytes\x00=zz\n", 19);
    return 0;
}
