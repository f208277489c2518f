/* Unit tests of settings (lib/config.c): parsing, ranges, messages,
 * persistence in topic.conf. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <unistd.h>
#include <cmocka.h>

#include "internal.h"

static void expect_setting(topic_config *c, const char *name, const char *want)
{
    char buf[64];
    assert_int_equal(topic_config_get(c, name, buf, sizeof buf), 0);
    assert_string_equal(buf, want);
}

static void test_defaults(void **state)
{
    (void)state;
    topic_config *c = topic_config_new();
    assert_non_null(c);
    expect_setting(c, "segment.bytes", "1073741824");
    expect_setting(c, "index.interval.bytes", "1024");
    expect_setting(c, "max.message.bytes", "1048576");
    expect_setting(c, "flush.ms", "1000");
    expect_setting(c, "flush.messages", "0");
    expect_setting(c, "compression.type", "none");
    expect_setting(c, "retention.ms", "-1");
    topic_config_free(c);
    topic_config_free(NULL);
}

static void test_sizes_and_suffixes(void **state)
{
    (void)state;
    topic_config *c = topic_config_new();
    assert_int_equal(topic_config_set(c, "segment.bytes", "64M"), 0);
    expect_setting(c, "segment.bytes", "67108864");
    assert_int_equal(topic_config_set(c, "segment.bytes", "8k"), 0);
    expect_setting(c, "segment.bytes", "8192");
    assert_int_equal(topic_config_set(c, "segment.bytes", "1G"), 0);
    assert_int_equal(topic_config_set(c, "max.message.bytes", "1000"), 0);
    expect_setting(c, "max.message.bytes", "1000");
    assert_int_equal(topic_config_set(c, "compression.type", "lz4"), 0);
    expect_setting(c, "compression.type", "lz4");
    assert_string_equal(topic_config_error(c), "");
    topic_config_free(c);
}

static void test_refusals(void **state)
{
    (void)state;
    topic_config *c = topic_config_new();
    const char *bad[][2] = {
        { "segment.bytes", "abc" },   { "segment.bytes", "10X" },  { "segment.bytes", "-1" },
        { "segment.bytes", "" },      { "segment.bytes", "100" },  { "segment.bytes", "2G" },
        { "segment.bytes", "1 M" },   { "flush.ms", "1k" },        { "flush.ms", "-5" },
        { "flush.messages", "99999999999999999999999" },           { "compression.type", "zstd" },
        { "index.interval.bytes", "0" }, { "max.message.bytes", "0" },
        /* strtoll() takes all of these as numbers. */
        { "segment.bytes", " 1M" },   { "segment.bytes", "\t1M" }, { "segment.bytes", "\n1M" },
        { "segment.bytes", "+1M" },   { "flush.ms", "\t5" },       { "flush.ms", "+5" },
        { "flush.ms", "- 5" },
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        if (topic_config_set(c, bad[i][0], bad[i][1]) != -EINVAL)
            fail_msg("%s=%s was accepted", bad[i][0], bad[i][1]);
        /* The message names the setting, so a person knows what to fix. */
        assert_non_null(strstr(topic_config_error(c), bad[i][0]));
        /* A size says that it takes a suffix, however the value went wrong. */
        if (strstr(bad[i][0], "bytes") != NULL && strcmp(bad[i][1], "0") != 0 &&
            strcmp(bad[i][1], "100") != 0 && strcmp(bad[i][1], "2G") != 0 &&
            strcmp(bad[i][1], "-1") != 0)
            assert_non_null(strstr(topic_config_error(c), "K, M or G"));
    }
    assert_int_equal(topic_config_set(c, "no.such.setting", "1"), -EINVAL);
    assert_non_null(strstr(topic_config_error(c), "unknown"));
    assert_int_equal(topic_config_set(c, NULL, "1"), -EINVAL);
    assert_int_equal(topic_config_set(c, "segment.bytes", NULL), -EINVAL);
    assert_int_equal(topic_config_set(NULL, "segment.bytes", "1"), -EINVAL);
    /* A refused value leaves the old one in force. */
    expect_setting(c, "segment.bytes", "1073741824");
    char small[4];
    assert_int_equal(topic_config_get(c, "segment.bytes", small, sizeof small), TOPIC_ETOOSMALL);
    assert_int_equal(topic_config_get(c, "nope", small, sizeof small), -EINVAL);
    topic_config_free(c);
}

static void test_persistence(void **state)
{
    (void)state;
    char dir[] = "/tmp/libtopic-config-XXXXXX";
    assert_non_null(mkdtemp(dir));
    int dirfd = open(dir, O_RDONLY | O_DIRECTORY);
    assert_true(dirfd >= 0);
    topic_config *c = topic_config_new();
    assert_int_equal(topic_config_set(c, "segment.bytes", "8K"), 0);
    assert_int_equal(topic_config_set(c, "compression.type", "lz4"), 0);
    assert_int_equal(topic__settings_store(&c->s, dirfd), 0);

    struct topic_settings s;
    topic__settings_default(&s);
    assert_int_equal(topic__settings_load(&s, dirfd), 0);
    assert_int_equal(s.v[TOPIC_K_SEGMENT_BYTES], 8192);
    assert_int_equal(s.v[TOPIC_K_COMPRESSION], 1);
    assert_int_equal(s.v[TOPIC_K_FLUSH_MS], 1000);   /* unset: default */
    assert_int_equal(s.set, (1u << TOPIC_K_SEGMENT_BYTES) | (1u << TOPIC_K_COMPRESSION));

    /* A damaged value is reported as corruption; an unknown name (from a
     * newer release) is skipped. */
    char path[256];
    snprintf(path, sizeof path, "%s/topic.conf", dir);
    FILE *f = fopen(path, "w");
    fputs("future.setting=1\nsegment.bytes=banana\n", f);
    fclose(f);
    topic__settings_default(&s);
    assert_int_equal(topic__settings_load(&s, dirfd), TOPIC_ECORRUPT);
    f = fopen(path, "w");
    fputs("future.setting=1\nsegment.bytes=16384\n", f);
    fclose(f);
    topic__settings_default(&s);
    assert_int_equal(topic__settings_load(&s, dirfd), 0);
    assert_int_equal(s.v[TOPIC_K_SEGMENT_BYTES], 16384);
    unlink(path);
    close(dirfd);
    rmdir(dir);
    topic_config_free(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_sizes_and_suffixes),
        cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_persistence),
    };
    return cmocka_run_group_tests_name("config", tests, NULL, NULL);
}
