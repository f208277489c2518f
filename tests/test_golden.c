/*
 * The golden damaged topics of tests/golden/cases (made by
 * tests/golden/make_golden.c) and the exact, documented outcome of opening
 * and reading each, as a writer and as a reader (tests/golden/README.md).
 * Each case is copied to a scratch directory first: a writer's recovery
 * changes the files.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "topic.h"
#include "testutil.h"

/* Outcome of topic_read at offsets [from, to]. */
struct span {
    uint64_t from, to;
    int rc;
};

struct golden {
    const char *name;
    int open_rc;            /* for both a writer and a reader */
    uint64_t end;           /* end offset after opening */
    int nspans;
    struct span spans[3];   /* reads below the end; rc 0 = the original value */
};

static const struct golden cases[] = {
    { "torn-tail", 0, 9, 1, { { 0, 8, 0 } } },
    { "flipped-bit", 0, 120, 3, { { 0, 4, 0 }, { 5, 5, TOPIC_ECORRUPT }, { 6, 119, 0 } } },
    { "zeroed-range", 0, 120, 3, { { 0, 6, 0 }, { 7, 8, TOPIC_ECORRUPT }, { 9, 119, 0 } } },
    { "bad-index", 0, 120, 1, { { 0, 119, 0 } } },
    { "truncated-middle", 0, 120, 3, { { 0, 19, 0 }, { 20, 44, TOPIC_ECORRUPT }, { 45, 119, 0 } } },
    { "wrong-magic", 0, 120, 3, { { 0, 2, 0 }, { 3, 5, TOPIC_ECORRUPT }, { 6, 119, 0 } } },
    { "future-version", TOPIC_EVERSION, 0, 0, { { 0, 0, 0 } } },
    { "damaged-conf", TOPIC_ECORRUPT, 0, 0, { { 0, 0, 0 } } },
};

static char *copy_case(const char *name)
{
    char src[512];
    snprintf(src, sizeof src, "tests/golden/cases/%s", name);
    char *dir = tu_mkdtemp("golden");
    assert_int_equal(tu_copy_dir(src, dir), 0);
    return dir;
}

static void check_reads(topic *t, const struct golden *g)
{
    uint64_t covered = 0;
    for (const struct span *s = g->spans; s < g->spans + g->nspans; s++) {
        assert_int_equal(s->from, covered);   /* the spans cover [0, end) */
        covered = s->to + 1;
        for (uint64_t o = s->from; o <= s->to && o < g->end; o++) {
            char buf[64], want[41];
            size_t len;
            int rc = topic_read(t, o, buf, sizeof buf, &len);
            if (rc != s->rc)
                fail_msg("%s: topic_read(%llu) = %d (%s), documented %d", g->name,
                         (unsigned long long)o, rc, topic_strerror(rc), s->rc);
            snprintf(want, sizeof want, "value %-34d", (int)o);
            if (rc == 0 && (len != 40 || memcmp(buf, want, 40) != 0))
                fail_msg("%s: topic_read(%llu) returned other bytes", g->name,
                         (unsigned long long)o);
        }
    }
    assert_int_equal(covered, g->end);
}

static void check_case(const struct golden *g, int flags)
{
    char *dir = copy_case(g->name);
    topic *t = NULL;
    int rc = topic_open(dir, flags, NULL, &t);
    if (rc != g->open_rc)
        fail_msg("%s: topic_open(%s) = %d (%s), documented %d", g->name,
                 flags ? "TOPIC_RDONLY" : "writer", rc, topic_strerror(rc), g->open_rc);
    if (rc == 0) {
        assert_int_equal(topic_end_offset(t), g->end);
        check_reads(t, g);
        if (!(flags & TOPIC_RDONLY)) {
            /* A recovered topic takes appends at its end offset. */
            uint64_t off;
            assert_int_equal(topic_append(t, "next", 4, &off), 0);
            assert_int_equal(off, g->end);
        }
        assert_int_equal(topic_close(t), 0);
    }
    tu_rmrf(dir);
    free(dir);
}

static void test_golden_writer(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        check_case(&cases[i], 0);
}

static void test_golden_reader(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        check_case(&cases[i], TOPIC_RDONLY);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_golden_writer),
        cmocka_unit_test(test_golden_reader),
    };
    return cmocka_run_group_tests_name("golden", tests, NULL, NULL);
}
