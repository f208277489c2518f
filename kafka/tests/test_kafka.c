/*
 * Tests of the Kafka bridge against librdkafka's mock cluster.
 *
 *   test_kafka [NAME...]     runs every test, or those whose name contains NAME
 *
 * Environment: TOPIC_KAFKA_TOOL (the topic-kafka binary, for the kill
 * tests), TOPIC_KAFKA_FAILPOINT_TOOL (its test build, which sleeps between
 * the steps of storing the import position), TEST_SEED (repeat a run's random choices), TEST_KEEP (keep the
 * scratch directories), KILL_ROUNDS (kills per kill test, default 25).
 * The output closes with "N passed, M failed".
 *
 * SPDX-License-Identifier: BSD-2-Clause
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "internal.h"

#define PRODUCE_API_KEY 0     /* Kafka protocol ApiKey of Produce */

static const char *const quiet_props[] = { "log_level=2", NULL };

static int kill_rounds(void)
{
    const char *s = getenv("KILL_ROUNDS");
    int n = s ? atoi(s) : 25;
    return n > 0 && n <= 60 ? n : 25;
}

static int committed_or(topic *t, const char *group, uint64_t dflt, uint64_t *out)
{
    int rc = topic_committed(t, group, out);
    if (rc == -ENOENT) {
        *out = dflt;
        rc = 0;
    }
    return rc;
}

/* waitpid with a deadline; kills the child and returns -1 when it passes. */
static int wait_child_for(pid_t pid, double seconds)
{
    double end = now_s() + seconds;
    for (;;) {
        int st;
        pid_t r = waitpid(pid, &st, WNOHANG);
        if (r == pid)
            return WIFEXITED(st) ? WEXITSTATUS(st) : WIFSIGNALED(st) ? 128 + WTERMSIG(st) : -1;
        if (r < 0 && errno != EINTR)
            return -1;
        if (now_s() > end) {
            kill(pid, SIGKILL);
            wait_child(pid);
            return -1;
        }
        sleep_ms(20);
    }
}

static void show_log(const char *log)
{
    char cmd[700];
    snprintf(cmd, sizeof cmd, "tail -n 20 '%s' >&2", log);
    if (system(cmd) != 0)
        fprintf(stderr, "  (no log)\n");
}

/* ======================================================================== */
/* API contract                                                              */

static void test_api_errors(void)
{
    topic *t;
    REQUIRE_RC(topic_open(scratch("api"), TOPIC_CREATE, NULL, &t));
    char err[512];
    const char *dead = "127.0.0.1:1";
    topic_kafka_forwarder *f = (topic_kafka_forwarder *)&err;
    topic_kafka_importer *im;
    CHECK(topic_kafka_forwarder_new(NULL, NULL, dead, "k", NULL, err, sizeof err, &f) == -EINVAL,
          "NULL topic");
    CHECK(f == NULL, "*out cleared on failure");
    CHECK(topic_kafka_forwarder_new(t, NULL, dead, "k", NULL, err, sizeof err, NULL) == -EINVAL,
          "NULL out");
    CHECK(topic_kafka_forwarder_new(t, NULL, NULL, "k", NULL, NULL, 0, &f) == -EINVAL,
          "NULL brokers, no errbuf");

    struct { const char *prop; int rc; } cases[] = {
        { "noequals", -EINVAL },
        { "=1", -EINVAL },
        { "no.such.property=1", TOPIC_KAFKA_ECONFIG },
        { "enable.idempotence=false", TOPIC_KAFKA_ECONFIG },
        { "acks=1", TOPIC_KAFKA_ECONFIG },
        { "transactional.id=x", TOPIC_KAFKA_ECONFIG },
        { "libtopic.nope=1", TOPIC_KAFKA_ECONFIG },
        { "libtopic.flush.timeout.ms=-5", -EINVAL },
        { "libtopic.skip.deleted=maybe", -EINVAL },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *props[] = { "log_level=0", cases[i].prop, NULL };
        err[0] = '\0';
        int rc = topic_kafka_forwarder_new(t, NULL, dead, "k", props, err, sizeof err, &f);
        CHECK(rc == cases[i].rc, "%s: got %d (%s), want %d", cases[i].prop, rc, err,
              cases[i].rc);
        CHECK(err[0] != '\0', "%s: no message", cases[i].prop);
        if (rc == 0)
            topic_kafka_forwarder_free(f);
    }
    const char *ok_props[] = { "log_level=0", "acks=all", "enable.idempotence=true",
                               "linger.ms=1", "libtopic.flush.timeout.ms=0", NULL };
    CHECK_RC(topic_kafka_forwarder_new(t, NULL, dead, "k", ok_props, err, sizeof err, &f));
    topic_kafka_forward_stats st;
    CHECK(topic_kafka_forwarder_stats(NULL, &st) == -EINVAL, "stats NULL");
    CHECK(topic_kafka_forwarder_stats(f, NULL) == -EINVAL, "stats NULL out");
    CHECK(topic_kafka_forwarder_stats(f, &st) == 0 && st.position == 0 && st.lag == 0,
          "stats of a new forwarder");
    topic_kafka_forwarder_free(f);
    CHECK(topic_kafka_forwarder_new(t, "bad name!", dead, "k", quiet_props, err, sizeof err,
                                    &f) == -EINVAL, "bad group name");
    /* A group name longer than libtopic's 128 characters is refused, not
     * cut short: two long names sharing their first 128 characters used to
     * become one group, and the second forwarder sent nothing. */
    {
        char g129[130];
        memset(g129, 'g', 129);
        g129[129] = '\0';
        err[0] = '\0';
        CHECK(topic_kafka_forwarder_new(t, g129, dead, "k", quiet_props, err, sizeof err, &f) ==
                  -EINVAL && strstr(err, "129 characters"),
              "a 129-character group: %s", err);
        g129[128] = '\0';
        CHECK_RC(topic_kafka_forwarder_new(t, g129, dead, "k", quiet_props, err, sizeof err, &f));
        topic_kafka_forwarder_free(f);
    }
    err[0] = '\0';
    CHECK(topic_kafka_forwarder_new(t, NULL, dead, "", quiet_props, err, sizeof err, &f) ==
              -EINVAL && strstr(err, "Kafka topic name is empty"),
          "an empty Kafka topic name: %s", err);
    err[0] = '\0';
    CHECK(topic_kafka_importer_new(t, dead, "", 0, quiet_props, err, sizeof err, &im) ==
              -EINVAL && strstr(err, "Kafka topic name is empty"),
          "an empty Kafka topic name to import: %s", err);
    {
        const char *props[] = { "log_level=0", "libtopic.import.start=bogus", NULL };
        err[0] = '\0';
        CHECK(topic_kafka_importer_new(t, dead, "k", 0, props, err, sizeof err, &im) ==
                  -EINVAL && strstr(err, "expected earliest, latest or an offset"),
              "import.start=bogus: %s", err);
        /* strtoll() would take these as 5. */
        static const char *const loose[] = { "libtopic.import.start= 5",
                                             "libtopic.import.start=+5",
                                             "libtopic.import.batch.records= 5" };
        for (size_t i = 0; i < sizeof loose / sizeof loose[0]; i++) {
            const char *p2[] = { "log_level=0", loose[i], NULL };
            err[0] = '\0';
            CHECK(topic_kafka_importer_new(t, dead, "k", 0, p2, err, sizeof err, &im) ==
                      -EINVAL && strstr(err, "expected"),
                  "%s: %s", loose[i], err);
        }
    }
    /* A forwarder that cannot be made leaves no group behind: a Kafka topic
     * name that the client refuses (longer than Kafka allows). */
    {
        static char longname[2000];
        memset(longname, 't', sizeof longname - 1);
        const char *props[] = { "log_level=0", NULL };
        int rc = topic_kafka_forwarder_new(t, NULL, dead, longname, props, err, sizeof err, &f);
        CHECK(rc == TOPIC_KAFKA_ECONFIG, "a 1999-character Kafka topic: got %d (%s)", rc, err);
        char names[4096];
        size_t len = 0;
        CHECK_RC(topic_groups(t, names, sizeof names, &len));
        for (size_t at = 0; at < len; at += strlen(names + at) + 1)
            CHECK(strncmp(names + at, "kafka-forward.ttt", 17) != 0,
                  "a failed forwarder_new left group %s", names + at);
    }
    /* No broker at all is a mistake to report, not an outage to wait out;
     * bootstrap.servers among the properties counts as a broker list. */
    const char *servers[] = { "log_level=0", "bootstrap.servers=127.0.0.1:1", NULL };
    const char *no_servers[] = { "log_level=0", "bootstrap.servers=", NULL };
    const char *empty[] = { "", " , ", "," };
    for (size_t i = 0; i < sizeof empty / sizeof empty[0]; i++) {
        err[0] = '\0';
        CHECK(topic_kafka_forwarder_new(t, NULL, empty[i], "k", quiet_props, err, sizeof err,
                                        &f) == -EINVAL && strstr(err, "no Kafka broker"),
              "forwarder with brokers \"%s\": %s", empty[i], err);
        CHECK(topic_kafka_importer_new(t, empty[i], "k", 0, quiet_props, err, sizeof err,
                                       &im) == -EINVAL && strstr(err, "no Kafka broker"),
              "importer with brokers \"%s\": %s", empty[i], err);
    }
    CHECK(topic_kafka_forwarder_new(t, NULL, dead, "k", no_servers, err, sizeof err, &f) ==
          -EINVAL, "bootstrap.servers= emptied the list");
    CHECK_RC(topic_kafka_forwarder_new(t, NULL, "", "k", servers, err, sizeof err, &f));
    topic_kafka_forwarder_free(f);
    CHECK_RC(topic_kafka_importer_new(t, "", "k", 0, servers, err, sizeof err, &im));
    topic_kafka_importer_free(im);

    CHECK(topic_kafka_importer_new(t, dead, "k", -1, quiet_props, err, sizeof err, &im) == -EINVAL,
          "negative partition");
    {
        /* An importer appends: a read-only handle is refused at once, and
         * nothing (no import position) is stored in the topic. */
        topic *r;
        REQUIRE_RC(topic_open(scratch("api"), TOPIC_RDONLY, NULL, &r));
        size_t before = 0, after = 0;
        topic_groups(r, NULL, 0, &before);   /* the length, TOPIC_ETOOSMALL or 0 */
        int rc = topic_kafka_importer_new(r, dead, "k", 0, quiet_props, err, sizeof err, &im);
        CHECK(rc == TOPIC_ERDONLY && im == NULL, "read-only handle: got %d (%s)", rc, err);
        topic_groups(r, NULL, 0, &after);
        CHECK(after == before, "group names grew from %zu to %zu bytes", before, after);
        topic_close(r);
    }
    const char *imp_bad[][2] = { { "enable.partition.eof=false", NULL },
                                 { "enable.auto.commit=true", NULL },
                                 { "libtopic.import.start=soon", NULL },
                                 { "libtopic.import.batch.records=0", NULL },
                                 { "libtopic.flush.timeout.ms=1", NULL } };
    for (size_t i = 0; i < sizeof imp_bad / sizeof imp_bad[0]; i++) {
        int rc = topic_kafka_importer_new(t, dead, "k", 0, imp_bad[i], err, sizeof err, &im);
        CHECK(rc == -EINVAL || rc == TOPIC_KAFKA_ECONFIG, "%s: got %d", imp_bad[i][0], rc);
    }
    const char *imp_ok[] = { "log_level=0", "libtopic.import.start=42",
                             "libtopic.import.batch.records=10", NULL };
    CHECK_RC(topic_kafka_importer_new(t, dead, "k", 3, imp_ok, err, sizeof err, &im));
    topic_kafka_import_stats ist;
    CHECK(topic_kafka_importer_stats(im, &ist) == 0 && ist.next_offset == -1 &&
          ist.high_watermark == -1 && ist.lag == -1, "stats of a new importer");
    topic_kafka_importer_free(im);

    /* Messages: every bridge code has its own; others fall through. */
    int codes[] = { TOPIC_KAFKA_ECONFIG, TOPIC_KAFKA_EKAFKA, TOPIC_KAFKA_EFATAL,
                    TOPIC_KAFKA_EDELIVERY, TOPIC_KAFKA_EMISMATCH };
    for (size_t i = 0; i < 5; i++) {
        CHECK(codes[i] < -31000 && codes[i] > -31100, "code range");
        CHECK(strcmp(topic_kafka_strerror(codes[i]), topic_strerror(codes[i])) != 0,
              "message of %d", codes[i]);
        for (size_t j = 0; j < i; j++)
            CHECK(strcmp(topic_kafka_strerror(codes[i]), topic_kafka_strerror(codes[j])) != 0,
                  "distinct messages");
    }
    CHECK(strcmp(topic_kafka_strerror(TOPIC_END), topic_strerror(TOPIC_END)) == 0, "fallthrough");
    CHECK(strcmp(topic_kafka_strerror(-ENOENT), topic_strerror(-ENOENT)) == 0, "errno");
    CHECK(strcmp(topic_kafka_version(), "0.1.0") == 0, "version %s", topic_kafka_version());
    CHECK(topic_kafka_forward_run(NULL, 1, NULL) == -EINVAL, "run NULL");
    CHECK(topic_kafka_import_run(NULL, 1, NULL) == -EINVAL, "run NULL");
    topic_kafka_forwarder_free(NULL);
    topic_kafka_importer_free(NULL);

    /* Group names made from any Kafka topic name are valid and short enough. */
    char long_name[250], g[TK_GROUP_MAX + 1], g2[TK_GROUP_MAX + 1];
    memset(long_name, 'x', sizeof long_name - 1);
    long_name[sizeof long_name - 1] = '\0';
    tk_group_name(g, "kafka-import.", long_name, ".2147483647.a.kafka");
    CHECK(strlen(g) <= TK_GROUP_MAX, "length %zu", strlen(g));
    CHECK(topic_commit(t, g, 1) == 0, "group %s refused", g);
    long_name[5] = 'y';
    tk_group_name(g2, "kafka-import.", long_name, ".2147483647.a.kafka");
    CHECK(strcmp(g, g2) != 0, "long names that differ get different groups");
    tk_group_name(g, "kafka-forward.", "a/b c", "");
    CHECK(strcmp(g, "kafka-forward.a_b_c") == 0, "%s", g);
    topic_close(t);
}

/* ======================================================================== */
/* Forwarding                                                                */

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static void test_forward_100k(void)
{
    enum { N = 100000, RUNS = 3 };
    struct mock m;
    REQUIRE(mock_start(&m, 3) == 0, "mock cluster");
    topic *t;
    REQUIRE_RC(topic_open(scratch("fwd100k"), TOPIC_CREATE, NULL, &t));
    REQUIRE_RC(gen_append(t, 0, N));

    /* Three forwarders of their own groups, each to a Kafka topic of its own;
     * the time covers making the forwarder (and its producer) too. */
    char err[512];
    double secs[RUNS];
    for (int i = 0; i < RUNS; i++) {
        char group[32], ktopic[32];
        snprintf(group, sizeof group, "bench-%d", i);
        snprintf(ktopic, sizeof ktopic, "fwd-%d", i);
        rd_kafka_mock_topic_create(m.mc, ktopic, 4, 3);
        topic_kafka_forwarder *f;
        double t0 = now_s();
        REQUIRE_RC(topic_kafka_forwarder_new(t, group, m.bootstraps, ktopic, quiet_props, err,
                                             sizeof err, &f));
        int rc = topic_kafka_forward_run(f, 1, NULL);
        secs[i] = now_s() - t0;
        CHECK(rc == 0, "run: %s: %s", topic_kafka_strerror(rc),
              topic_kafka_forwarder_error(f, err, sizeof err));
        topic_kafka_forward_stats st;
        topic_kafka_forwarder_stats(f, &st);
        CHECK(st.produced == N && st.acked == N && st.failed == 0 && st.in_flight == 0,
              "produced %" PRIu64 " acked %" PRIu64, st.produced, st.acked);
        CHECK(st.committed == N && st.end_offset == N && st.lag == 0, "committed %" PRIu64,
              st.committed);
        topic_kafka_forwarder_free(f);
        uint64_t c = 0;
        CHECK(topic_committed(t, group, &c) == 0 && c == N, "group at %" PRIu64, c);
    }
    qsort(secs, RUNS, sizeof secs[0], cmp_double);
    note("forward: %d records with 100-byte values to the mock cluster (3 brokers, 4 "
         "partitions), %d runs: median %.2f s = %.0f records/s (%.1f MB/s of values); "
         "fastest %.0f, slowest %.0f records/s", N, RUNS, secs[RUNS / 2], N / secs[RUNS / 2],
         N * 100 / secs[RUNS / 2] / 1e6, N / secs[0], N / secs[RUNS - 1]);

    /* A second forwarder of a group finds nothing left to send. */
    topic_kafka_forwarder *f;
    REQUIRE_RC(topic_kafka_forwarder_new(t, "bench-0", m.bootstraps, "fwd-0", quiet_props, err,
                                         sizeof err, &f));
    CHECK_RC(topic_kafka_forward_run(f, 1, NULL));
    topic_kafka_forward_stats st;
    topic_kafka_forwarder_stats(f, &st);
    CHECK(st.produced == 0, "a restarted forwarder sent %" PRIu64 " again", st.produced);
    topic_kafka_forwarder_free(f);

    struct kmsgs k;
    double t0 = now_s();
    REQUIRE(kafka_read_all(m.bootstraps, "fwd-0", 4, -1, &k) == 0, "reading back");
    CHECK(k.n == N, "%zu records in Kafka", k.n);
    long dups = verify_forwarded(&k, N, NULL, NULL);
    CHECK(dups == 0, "%ld duplicates without any crash", dups);
    note("forward: read back %zu records with a plain consumer (assign) in %.2f s: keys, "
         "values, timestamps intact, per-key order kept", k.n, now_s() - t0);
    kmsgs_free(&k);
    topic_close(t);
    mock_stop(&m);
}

struct runner {
    pthread_t thread;
    topic_kafka_forwarder *f;
    volatile sig_atomic_t stop;
    int until_end;
    int rc;
};

static void *run_forwarder(void *arg)
{
    struct runner *r = arg;
    r->rc = topic_kafka_forward_run(r->f, r->until_end, &r->stop);
    return NULL;
}

/* Waits until the forwarder has committed `want`; false after `seconds`. */
static bool wait_committed(topic_kafka_forwarder *f, uint64_t want, double seconds)
{
    double end = now_s() + seconds;
    topic_kafka_forward_stats st;
    while (now_s() < end) {
        topic_kafka_forwarder_stats(f, &st);
        if (st.committed >= want)
            return true;
        sleep_ms(10);
    }
    fprintf(stderr, "  stuck: produced %" PRIu64 " acked %" PRIu64 " failed %" PRIu64
            " in flight %" PRIu64 " position %" PRIu64 " committed %" PRIu64 " end %" PRIu64
            ", want %" PRIu64 "\n", st.produced, st.acked, st.failed, st.in_flight,
            st.position, st.committed, st.end_offset, want);
    return false;
}

static void test_forward_follow(void)
{
    struct mock m;
    REQUIRE(mock_start(&m, 1) == 0, "mock cluster");
    rd_kafka_mock_topic_create(m.mc, "follow", 2, 1);
    topic *t;
    REQUIRE_RC(topic_open(scratch("follow"), TOPIC_CREATE, NULL, &t));
    char err[512];
    struct runner r = { .until_end = 0 };
    REQUIRE_RC(topic_kafka_forwarder_new(t, "fwd-follow", m.bootstraps, "follow", quiet_props,
                                         err, sizeof err, &r.f));
    REQUIRE(pthread_create(&r.thread, NULL, run_forwarder, &r) == 0, "thread");
    uint64_t n = 0;
    double worst = 0;
    for (int burst = 0; burst < 20; burst++) {
        uint64_t size = burst % 5 == 0 ? 1 : 500;
        CHECK_RC(gen_append(t, n, n + size));
        n += size;
        double t0 = now_s();
        CHECK(wait_committed(r.f, n, 20), "burst %d not committed", burst);
        if (now_s() - t0 > worst)
            worst = now_s() - t0;
        sleep_ms(20);
    }
    note("forward, following the tail: 20 bursts, worst append-to-commit latency %.0f ms",
         worst * 1000);
    r.stop = 1;
    REQUIRE(pthread_join(r.thread, NULL) == 0, "join");
    CHECK(r.rc == 0, "run after stop: %s", topic_kafka_strerror(r.rc));
    topic_kafka_forwarder_free(r.f);
    uint64_t c;
    CHECK(topic_committed(t, "fwd-follow", &c) == 0 && c == n, "committed %" PRIu64, c);

    struct kmsgs k;
    REQUIRE(kafka_read_all(m.bootstraps, "follow", 2, -1, &k) == 0, "reading back");
    CHECK(verify_forwarded(&k, n, NULL, NULL) == 0, "duplicates after a clean stop");
    kmsgs_free(&k);
    topic_close(t);
    mock_stop(&m);
}

static void test_forward_faults(void)
{
    enum { CHUNK = 10000 };
    struct mock m;
    REQUIRE(mock_start(&m, 3) == 0, "mock cluster");
    rd_kafka_mock_topic_create(m.mc, "faults", 4, 3);
    /* Broker 1 leads partitions 0 and 1; 2 and 3 lead the others. */
    for (int p = 0; p < 4; p++)
        rd_kafka_mock_partition_set_leader(m.mc, "faults", p, p < 2 ? 1 : 2 + (p & 1));
    topic *t;
    REQUIRE_RC(topic_open(scratch("faults"), TOPIC_CREATE, NULL, &t));
    char err[512];
    /* Short reconnect backoff, so that the test waits less for the broker
     * that comes back. */
    const char *props[] = { "log_level=0", "reconnect.backoff.max.ms=200", NULL };
    struct runner r = { .until_end = 0 };
    REQUIRE_RC(topic_kafka_forwarder_new(t, NULL, m.bootstraps, "faults", props, err, sizeof err,
                                         &r.f));
    REQUIRE(pthread_create(&r.thread, NULL, run_forwarder, &r) == 0, "thread");

    uint64_t n = 0;
    CHECK_RC(gen_append(t, n, n + CHUNK));
    n += CHUNK;
    CHECK(wait_committed(r.f, n, 30), "first chunk");

    /* Retriable errors on produce requests, of several kinds. */
    rd_kafka_mock_push_request_errors(
        m.mc, PRODUCE_API_KEY, 11, RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS,
        RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS, RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT,
        RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION, RD_KAFKA_RESP_ERR_LEADER_NOT_AVAILABLE,
        RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS_AFTER_APPEND, RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT,
        RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS, RD_KAFKA_RESP_ERR_KAFKA_STORAGE_ERROR,
        RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION, RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS);
    for (int i = 0; i < 10; i++) {
        CHECK_RC(gen_append(t, n, n + CHUNK / 10));
        n += CHUNK / 10;
        sleep_ms(20);
    }
    CHECK(wait_committed(r.f, n, 60), "after injected produce errors");

    /* Broker 1 goes down: its partitions stall, the position waits for them. */
    rd_kafka_mock_broker_set_down(m.mc, 1);
    CHECK_RC(gen_append(t, n, n + CHUNK));
    n += CHUNK;
    sleep_ms(1500);
    topic_kafka_forward_stats st;
    topic_kafka_forwarder_stats(r.f, &st);
    CHECK(st.committed < n, "committed %" PRIu64 " of %" PRIu64 " with the leader down",
          st.committed, n);
    CHECK(r.rc == 0, "the forwarder gave up: %s: %s", topic_kafka_strerror(r.rc),
          topic_kafka_forwarder_error(r.f, err, sizeof err));
    uint64_t stalled = st.lag;
    rd_kafka_mock_broker_set_up(m.mc, 1);
    CHECK_RC(gen_append(t, n, n + CHUNK));
    n += CHUNK;
    double t0 = now_s();
    CHECK(wait_committed(r.f, n, 60), "after the broker came back");
    note("forward, faults: 11 injected produce errors retried; broker down 1.5 s with %" PRIu64
         " records waiting, all committed %.1f s after it came back", stalled, now_s() - t0);
    r.stop = 1;
    REQUIRE(pthread_join(r.thread, NULL) == 0, "join");
    CHECK(r.rc == 0, "run: %s", topic_kafka_strerror(r.rc));
    topic_kafka_forwarder_free(r.f);

    struct kmsgs k;
    REQUIRE(kafka_read_all(m.bootstraps, "faults", 4, -1, &k) == 0, "reading back");
    long dups = verify_forwarded(&k, n, NULL, NULL);
    CHECK(dups >= 0, "verification");
    note("forward, faults: %" PRIu64 " records, none lost, %ld duplicates", n, dups);
    kmsgs_free(&k);
    topic_close(t);
    mock_stop(&m);
}

static void test_forward_refused(void)
{
    enum { N = 3000, BIG = 1700 };
    struct mock m;
    REQUIRE(mock_start(&m, 1) == 0, "mock cluster");
    rd_kafka_mock_topic_create(m.mc, "refused", 2, 1);
    topic *t;
    REQUIRE_RC(topic_open(scratch("refused"), TOPIC_CREATE, NULL, &t));
    REQUIRE_RC(gen_append(t, 0, N));
    char err[512];
    topic_kafka_forwarder *f;

    /* 1. The producer refuses a record at once (larger than message.max.bytes):
     * the position stops right before it. */
    const char *small[] = { "log_level=0", "message.max.bytes=1000", NULL };
    REQUIRE_RC(topic_kafka_forwarder_new(t, "g1", m.bootstraps, "refused", small, err,
                                         sizeof err, &f));
    uint64_t big_at = 0;
    {
        /* A record too large for this producer, at the end. */
        topic *w = t;
        char big[2000];
        memset(big, 'B', sizeof big);
        REQUIRE_RC(topic_append(w, big, sizeof big, &big_at));
    }
    int rc = topic_kafka_forward_run(f, 1, NULL);
    CHECK(rc == TOPIC_KAFKA_EDELIVERY, "got %s", topic_kafka_strerror(rc));
    CHECK(strstr(topic_kafka_forwarder_error(f, err, sizeof err), "offset 3000") != NULL, "%s",
          err);
    CHECK(topic_kafka_forward_run(f, 1, NULL) == rc, "the failure sticks");
    topic_kafka_forwarder_free(f);
    uint64_t c;
    CHECK(topic_committed(t, "g1", &c) == 0 && c == big_at, "committed %" PRIu64 ", big at %"
          PRIu64, c, big_at);

    /* 2. The broker refuses a produce request for good: the idempotent
     * producer fails; nothing past the hole is committed. */
    rd_kafka_mock_push_request_errors(m.mc, PRODUCE_API_KEY, 1,
                                      RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED);
    REQUIRE_RC(topic_kafka_forwarder_new(t, "g2", m.bootstraps, "refused", small, err,
                                         sizeof err, &f));
    rc = topic_kafka_forward_run(f, 1, NULL);
    CHECK(rc == TOPIC_KAFKA_EDELIVERY || rc == TOPIC_KAFKA_EFATAL, "got %s",
          topic_kafka_strerror(rc));
    topic_kafka_forward_stats st;
    topic_kafka_forwarder_stats(f, &st);
    CHECK(st.failed > 0 && st.committed < N && st.in_flight == 0, "failed %" PRIu64
          ", committed %" PRIu64, st.failed, st.committed);
    topic_kafka_forwarder_error(f, err, sizeof err);
    fprintf(stderr, "  refused by the broker: %s (%s)\n", topic_kafka_strerror(rc), err);
    topic_kafka_forwarder_free(f);

    /* 3. A new forwarder of g2 sends everything up to the big record. */
    REQUIRE_RC(topic_kafka_forwarder_new(t, "g2", m.bootstraps, "refused", small, err,
                                         sizeof err, &f));
    rc = topic_kafka_forward_run(f, 1, NULL);
    CHECK(rc == TOPIC_KAFKA_EDELIVERY, "got %s", topic_kafka_strerror(rc));
    topic_kafka_forwarder_free(f);
    CHECK(topic_committed(t, "g2", &c) == 0 && c == big_at, "g2 committed %" PRIu64, c);

    struct kmsgs k;
    REQUIRE(kafka_read_all(m.bootstraps, "refused", 2, -1, &k) == 0, "reading back");
    long dups = verify_forwarded(&k, N, NULL, NULL);
    CHECK(dups >= N, "g1 and g2 both sent everything: %ld copies beyond the first", dups);
    kmsgs_free(&k);
    topic_close(t);
    mock_stop(&m);
}

static void test_forward_deleted(void)
{
    struct mock m;
    REQUIRE(mock_start(&m, 1) == 0, "mock cluster");
    rd_kafka_mock_topic_create(m.mc, "gone", 2, 1);
    topic *t;
    REQUIRE_RC(topic_open(scratch("gone"), TOPIC_CREATE, NULL, &t));
    REQUIRE_RC(gen_append(t, 0, 1000));
    REQUIRE_RC(topic_commit(t, "late", 100));
    REQUIRE_RC(topic_delete_before(t, 500));   /* retention overtook group "late" */
    char err[512];
    topic_kafka_forwarder *f;
    int rc = topic_kafka_forwarder_new(t, "late", m.bootstraps, "gone", quiet_props, err,
                                       sizeof err, &f);
    CHECK(rc == TOPIC_EGONE, "got %s", topic_kafka_strerror(rc));
    CHECK(strstr(err, "libtopic.skip.deleted") != NULL, "%s", err);

    const char *skip[] = { "log_level=2", "libtopic.skip.deleted=true", NULL };
    REQUIRE_RC(topic_kafka_forwarder_new(t, "late", m.bootstraps, "gone", skip, err, sizeof err,
                                         &f));
    CHECK_RC(topic_kafka_forward_run(f, 1, NULL));
    topic_kafka_forward_stats st;
    topic_kafka_forwarder_stats(f, &st);
    CHECK(st.skipped_deleted == 400 && st.acked == 500 && st.committed == 1000,
          "skipped %" PRIu64 " acked %" PRIu64 " committed %" PRIu64, st.skipped_deleted,
          st.acked, st.committed);
    topic_kafka_forwarder_free(f);

    /* A position past the end offset (a power loss took records the group
     * had forwarded): the forwarder notes it, stores the end offset as the
     * position at once, and forwards the records appended from there. */
    REQUIRE_RC(topic_commit(t, "ahead", 1500));
    REQUIRE_RC(topic_kafka_forwarder_new(t, "ahead", m.bootstraps, "gone", quiet_props, err,
                                         sizeof err, &f));
    uint64_t c = 0;
    CHECK(topic_committed(t, "ahead", &c) == 0 && c == 1000, "ahead stored at %" PRIu64, c);
    topic_kafka_forwarder_error(f, err, sizeof err);
    CHECK(strstr(err, "past the end offset 1000") != NULL, "note: %s", err);
    REQUIRE_RC(gen_append(t, 1000, 1010));
    CHECK_RC(topic_kafka_forward_run(f, 1, NULL));
    topic_kafka_forwarder_stats(f, &st);
    CHECK(st.acked == 10 && st.committed == 1010, "acked %" PRIu64 " committed %" PRIu64,
          st.acked, st.committed);
    topic_kafka_forwarder_free(f);

    /* A group that never committed starts at the start offset, nothing lost. */
    REQUIRE_RC(topic_kafka_forwarder_new(t, "new", m.bootstraps, "gone", quiet_props, err,
                                         sizeof err, &f));
    CHECK_RC(topic_kafka_forward_run(f, 1, NULL));
    topic_kafka_forwarder_stats(f, &st);
    CHECK(st.skipped_deleted == 0 && st.acked == 510 && st.committed == 1010,
          "skipped %" PRIu64 " acked %" PRIu64, st.skipped_deleted, st.acked);
    topic_kafka_forwarder_free(f);
    topic_close(t);
    mock_stop(&m);
}

/* A record as large as the topic's default max.message.bytes allows goes
 * through with the forwarder's defaults: librdkafka's own default limit
 * (1000000 bytes) used to stop the forwarder on it. */
static void test_forward_large(void)
{
    struct mock m;
    REQUIRE(mock_start(&m, 1) == 0, "mock cluster");
    rd_kafka_mock_topic_create(m.mc, "large", 1, 1);
    topic *t;
    REQUIRE_RC(topic_open(scratch("large"), TOPIC_CREATE, NULL, &t));
    static char big[1048000];
    memset(big, 'L', sizeof big);
    REQUIRE_RC(topic_append(t, big, sizeof big, NULL));
    REQUIRE_RC(topic_append(t, "after", 5, NULL));
    char err[512];
    topic_kafka_forwarder *f;
    REQUIRE_RC(topic_kafka_forwarder_new(t, "g", m.bootstraps, "large", quiet_props, err,
                                         sizeof err, &f));
    int rc = topic_kafka_forward_run(f, 1, NULL);
    CHECK(rc == 0, "got %s: %s", topic_kafka_strerror(rc),
          topic_kafka_forwarder_error(f, err, sizeof err));
    topic_kafka_forward_stats st;
    topic_kafka_forwarder_stats(f, &st);
    CHECK(st.acked == 2 && st.committed == 2, "acked %" PRIu64 " committed %" PRIu64, st.acked,
          st.committed);
    topic_kafka_forwarder_free(f);
    topic_close(t);
    mock_stop(&m);
}

/* ---- kill -9 of the forwarding tool ---- */

#define KILL_PARTS 4

struct kill_point {
    uint64_t committed;           /* the group's position after the kill */
    int64_t hi[KILL_PARTS];       /* each partition's end after the kill */
};

struct kill_log {
    struct kill_point k[64];
    int n;
};

/*
 * A copy at partition offset o of a partition was written after every kill
 * whose watermark is <= o; the forwarder started after the last of those
 * began at that kill's committed position, so the copy's record is at or
 * above it.  (A copy the killed forwarder still had in flight lands above
 * the watermark too, but was never acknowledged, so it is above the
 * committed position as well.)
 */
static bool copy_after_window(const struct kmsg *m, uint64_t offset, void *arg)
{
    const struct kill_log *log = arg;
    for (int i = log->n - 1; i >= 0; i--)
        if (log->k[i].hi[m->partition] <= m->offset)
            return offset >= log->k[i].committed;
    return false;    /* a copy before any kill */
}

static void test_forward_kill(void)
{
    const int rounds = kill_rounds();
    struct mock m;
    REQUIRE(mock_start(&m, 3) == 0, "mock cluster");
    rd_kafka_mock_topic_create(m.mc, "killed", KILL_PARTS, 3);
    /* A cluster 100 ms away: records are in flight whenever the kill comes. */
    for (int b = 1; b <= 3; b++)
        rd_kafka_mock_broker_set_rtt(m.mc, b, 100);
    const char *dir = strdup(scratch("fwdkill"));
    char log[600];
    snprintf(log, sizeof log, "%s.log", dir);
    topic *t;
    REQUIRE_RC(topic_open(dir, TOPIC_CREATE, NULL, &t));
    rd_kafka_t *client = kafka_client(m.bootstraps, RD_KAFKA_PRODUCER, NULL);
    REQUIRE(client != NULL, "client");

    char *argv[] = { (char *)tool_path(), "forward", (char *)dir, "--brokers", m.bootstraps,
                     "--kafka-topic", "killed", "--group", "g", "-q", "-X", "log_level=0",
                     NULL, NULL };
    static struct kill_log kl;
    kl.n = 0;
    uint64_t appended = 0;
    int behind = 0;
    double t0 = now_s();
    for (int r = 0; r < rounds; r++) {
        if (r % 5 == 0) {   /* now and then a backlog to catch up with */
            CHECK_RC(gen_append(t, appended, appended + 2000));
            appended += 2000;
        }
        pid_t pid = spawn(argv, log);
        REQUIRE(pid > 0, "spawn");
        /* The application appends about 2000 records/s while the forwarder
         * lives, 0 to 1.5 s: the kill comes while the producer starts (about
         * 0.5 s with 100 ms round trips) or while records are in flight.
         * librdkafka's mock keeps 5 MiB per partition: at 4000 records/s
         * and 3000 per backlog, the copies and the resent duplicates came
         * to about 4 MiB per partition on average, and a partition that
         * got more than its share lost its oldest records now and then. */
        double death = now_s() + (double)(rnd() % 1500) / 1000;
        while (now_s() < death) {
            CHECK_RC(gen_append(t, appended, appended + 10));
            appended += 10;
            sleep_ms(5);
        }
        kill(pid, SIGKILL);
        int st = wait_child(pid);
        if (st != 128 + SIGKILL) {
            CHECK(st == 128 + SIGKILL, "round %d: the forwarder exited by itself (%d)", r, st);
            show_log(log);
        }
        struct kill_point *k = &kl.k[kl.n++];
        CHECK_RC(committed_or(t, "g", 0, &k->committed));
        REQUIRE(kafka_watermarks(client, "killed", KILL_PARTS, k->hi) == 0, "watermarks");
        int64_t in_kafka = 0;
        for (int q = 0; q < KILL_PARTS; q++)
            in_kafka += k->hi[q];
        if (k->committed < appended)
            behind++;
        if (getenv("TEST_VERBOSE"))
            fprintf(stderr, "  kill %d: appended %" PRIu64 ", committed %" PRIu64 ", copies in "
                    "Kafka %" PRId64 "\n", r, appended, k->committed, in_kafka);
    }
    char *final_argv[16];
    memcpy(final_argv, argv, sizeof argv);
    final_argv[12] = "--until-end";
    pid_t pid = spawn(final_argv, log);
    int st = wait_child_for(pid, 120);
    CHECK(st == 0, "the last forwarder exited with %d", st);
    if (st != 0)
        show_log(log);
    uint64_t c = 0;
    CHECK(topic_committed(t, "g", &c) == 0 && c == appended, "committed %" PRIu64 " of %"
          PRIu64, c, appended);
    double dt = now_s() - t0;

    struct kmsgs k;
    for (int b = 1; b <= 3; b++)
        rd_kafka_mock_broker_set_rtt(m.mc, b, 0);
    REQUIRE(kafka_read_all(m.bootstraps, "killed", KILL_PARTS, -1, &k) == 0, "reading back");
    long dups = verify_forwarded(&k, appended, copy_after_window, &kl);
    CHECK(dups >= 0, "verification");
    note("forward, kill -9 (brokers 100 ms away, writer appending 2000 records/s): %d kills "
         "(%d with the forwarder behind), %" PRIu64 " records, none lost, per-key order kept, "
         "%ld duplicates (%.0f per kill), all inside the unacknowledged window; %.1f s",
         rounds, behind, appended, dups, (double)dups / rounds, dt);
    kmsgs_free(&k);
    rd_kafka_destroy(client);
    topic_close(t);
    mock_stop(&m);
    free((void *)dir);
}

/* ======================================================================== */
/* Importing                                                                 */

/* Record i of the import tests: keys, empty keys, no keys, empty and null values. */
static void produce_sized(rd_kafka_t *rk, const char *ktopic, int32_t partition, int from,
                          int to, int max_extra)
{
    for (int i = from; i < to; i++) {
        char key[32], value[400];
        int kl = snprintf(key, sizeof key, "k%d", i % 17);
        int vl = snprintf(value, sizeof value, "value %d/%d ", i, partition);
        int extra = (int)(mix64((uint64_t)i) % (uint64_t)max_extra);
        for (int j = 0; j < extra; j++)
            value[vl++] = (char)('A' + (i + j) % 26);
        const void *kp = i % 7 == 0 ? NULL : key;
        if (i % 5 == 0)
            kl = 0;   /* an empty key, which is not the same as none */
        const void *vp = i % 11 == 0 ? NULL : value;
        size_t vlen = i % 11 == 0 ? 0 : i % 13 == 0 ? 0 : (size_t)vl;
        for (;;) {
            rd_kafka_resp_err_t err = rd_kafka_producev(
                rk, RD_KAFKA_V_TOPIC(ktopic), RD_KAFKA_V_PARTITION(partition),
                RD_KAFKA_V_KEY(kp, kp ? (size_t)kl : 0), RD_KAFKA_V_VALUE((void *)vp, vlen),
                RD_KAFKA_V_TIMESTAMP(1600000000000 + i), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                RD_KAFKA_V_END);
            if (err != RD_KAFKA_RESP_ERR__QUEUE_FULL)
                break;
            rd_kafka_poll(rk, 10);
        }
    }
    rd_kafka_flush(rk, 30000);
}

static void produce_pattern(rd_kafka_t *rk, const char *ktopic, int32_t partition, int from,
                            int to)
{
    produce_sized(rk, ktopic, partition, from, to, 300);
}

/*
 * The local topic holds exactly Kafka's records of one partition, from
 * local offset `from` on, in order.
 */
static void verify_imported(topic *t, uint64_t from, const struct kmsgs *k)
{
    topic_cursor *c;
    REQUIRE_RC(topic_cursor_open(t, from, &c));
    size_t bad = 0;
    for (size_t i = 0; i < k->n; i++) {
        const struct kmsg *m = &k->v[i];
        topic_record r;
        int rc = topic_cursor_next(c, &r);
        if (rc != 0) {
            CHECK(rc == 0, "local record %zu: %s (Kafka has %zu)", i, topic_strerror(rc), k->n);
            break;
        }
        bool same = (r.key == NULL) == (m->key == NULL) && r.key_len == (m->key ? m->key_len : 0) &&
            (r.key_len == 0 || memcmp(r.key, m->key, r.key_len) == 0) &&
            r.value_len == (m->value ? m->value_len : 0) &&
            (r.value_len == 0 || memcmp(r.value, m->value, r.value_len) == 0) &&
            r.timestamp == m->timestamp;
        if (!same && bad++ < 5)
            fprintf(stderr, "  local %" PRIu64 " differs from Kafka @%" PRId64 "\n", r.offset,
                    m->offset);
    }
    CHECK(bad == 0, "%zu records differ", bad);
    CHECK(topic_end_offset(t) == from + k->n, "local has %" PRIu64 " records, Kafka %zu",
          topic_end_offset(t) - from, k->n);
    topic_cursor_close(c);
}

static void test_import_roundtrip(void)
{
    enum { N = 20000 };
    struct mock m;
    REQUIRE(mock_start(&m, 3) == 0, "mock cluster");
    rd_kafka_mock_topic_create(m.mc, "imp", 3, 3);
    rd_kafka_t *p = kafka_client(m.bootstraps, RD_KAFKA_PRODUCER, NULL);
    REQUIRE(p != NULL, "producer");
    produce_pattern(p, "imp", 1, 0, N);
    produce_pattern(p, "imp", 0, 0, 100);
    produce_pattern(p, "imp", 2, 0, 100);

    topic *t;
    REQUIRE_RC(topic_open(scratch("imp"), TOPIC_CREATE, NULL, &t));
    REQUIRE_RC(topic_append(t, "before", 6, NULL));     /* imports need not start empty */
    char err[512];
    topic_kafka_importer *im;
    REQUIRE_RC(topic_kafka_importer_new(t, m.bootstraps, "imp", 1, quiet_props, err, sizeof err,
                                        &im));
    double t0 = now_s();
    int rc = topic_kafka_import_run(im, 1, NULL);
    double dt = now_s() - t0;
    CHECK(rc == 0, "%s: %s", topic_kafka_strerror(rc), topic_kafka_importer_error(im, err, sizeof err));
    topic_kafka_import_stats st;
    topic_kafka_importer_stats(im, &st);
    CHECK(st.imported == N && st.skipped == 0 && st.next_offset == N && st.high_watermark == N &&
          st.lag == 0 && st.local_end == N + 1, "imported %" PRIu64 " next %" PRId64 " hwm %"
          PRId64, st.imported, st.next_offset, st.high_watermark);
    topic_kafka_importer_free(im);
    note("import: %d records (keys, empty and null keys, empty and null values) in %.2f s: %.0f records/s",
         N, dt, N / dt);

    struct kmsgs k;
    REQUIRE(kafka_read_all(m.bootstraps, "imp", 3, 1, &k) == 0, "reading back");
    REQUIRE(k.n == N, "Kafka has %zu", k.n);
    verify_imported(t, 1, &k);

    /* Again: nothing new, nothing repeated. */
    rc = topic_kafka_import(t, m.bootstraps, "imp", 1, quiet_props, 1, NULL, err, sizeof err);
    CHECK(rc == 0 && topic_end_offset(t) == N + 1, "%s: %s", topic_kafka_strerror(rc), err);

    /* More records, and a stop flag that is already set: nothing happens. */
    produce_pattern(p, "imp", 1, N, N + 500);
    volatile sig_atomic_t stop = 1;
    CHECK_RC(topic_kafka_import(t, m.bootstraps, "imp", 1, quiet_props, 1, &stop, err, sizeof err));
    CHECK(topic_end_offset(t) == N + 1, "imported while stopped");
    CHECK_RC(topic_kafka_import(t, m.bootstraps, "imp", 1, quiet_props, 1, NULL, err, sizeof err));
    kmsgs_free(&k);
    REQUIRE(kafka_read_all(m.bootstraps, "imp", 3, 1, &k) == 0, "reading back");
    verify_imported(t, 1, &k);
    kmsgs_free(&k);

    /* A partition that does not exist is an error, not a wait. */
    rc = topic_kafka_import(t, m.bootstraps, "imp", 7, quiet_props, 1, NULL, err, sizeof err);
    CHECK(rc == TOPIC_KAFKA_EKAFKA, "partition 7: %s", topic_kafka_strerror(rc));
    fprintf(stderr, "  missing partition: %s\n", err);

    /* libtopic.import.start=latest skips what exists. */
    topic *t2;
    REQUIRE_RC(topic_open(scratch("imp-latest"), TOPIC_CREATE, NULL, &t2));
    const char *latest[] = { "log_level=2", "libtopic.import.start=latest", NULL };
    REQUIRE_RC(topic_kafka_importer_new(t2, m.bootstraps, "imp", 0, latest, err, sizeof err, &im));
    CHECK_RC(topic_kafka_import_run(im, 1, NULL));
    CHECK(topic_end_offset(t2) == 0, "imported %" PRIu64, topic_end_offset(t2));
    produce_pattern(p, "imp", 0, 100, 130);
    CHECK_RC(topic_kafka_import_run(im, 1, NULL));
    topic_kafka_importer_free(im);
    REQUIRE(kafka_read_all(m.bootstraps, "imp", 3, 0, &k) == 0, "reading back");
    REQUIRE(k.n == 130, "%zu", k.n);
    struct kmsgs tail = { .v = k.v + 100, .n = 30 };
    verify_imported(t2, 0, &tail);
    kmsgs_free(&k);
    topic_close(t2);

    /* A Kafka record larger than the topic's max.message.bytes: the batch
     * is halved until the records before it are appended, which count as
     * imported, and the error names the record's own Kafka offset. */
    topic *t3;
    topic_config *small = topic_config_new();
    REQUIRE(small != NULL, "topic_config_new");
    REQUIRE_RC(topic_config_set(small, "max.message.bytes", "1000"));
    REQUIRE_RC(topic_open(scratch("imp-big"), TOPIC_CREATE, small, &t3));
    topic_config_free(small);
    rd_kafka_mock_topic_create(m.mc, "imp-big", 1, 1);
    produce_sized(p, "imp-big", 0, 0, 10, 100);
    static char big[5000];
    memset(big, 'b', sizeof big);
    REQUIRE(rd_kafka_producev(p, RD_KAFKA_V_TOPIC("imp-big"), RD_KAFKA_V_PARTITION(0),
                              RD_KAFKA_V_VALUE(big, sizeof big),
                              RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END) == 0,
            "producing the large record");
    produce_sized(p, "imp-big", 0, 11, 16, 100);
    REQUIRE_RC(topic_kafka_importer_new(t3, m.bootstraps, "imp-big", 0, quiet_props, err,
                                        sizeof err, &im));
    rc = topic_kafka_import_run(im, 1, NULL);
    topic_kafka_importer_error(im, err, sizeof err);
    topic_kafka_importer_stats(im, &st);
    CHECK(rc == TOPIC_ETOOBIG && strstr(err, "imp-big[0]@10 (5000 bytes)") != NULL,
          "a record over max.message.bytes: %d, %s", rc, err);
    CHECK(st.imported == 10 && topic_end_offset(t3) == 10 && st.next_offset == 10 &&
          st.lag == 6, "before the large record: imported %" PRIu64 ", end offset %" PRIu64
          ", next Kafka offset %" PRId64 ", lag %" PRId64, st.imported, topic_end_offset(t3),
          st.next_offset, st.lag);
    topic_kafka_importer_free(im);
    /* The next start begins at the large record again, with nothing to
     * check against Kafka: no crash came between. */
    REQUIRE_RC(topic_kafka_importer_new(t3, m.bootstraps, "imp-big", 0, quiet_props, err,
                                        sizeof err, &im));
    rc = topic_kafka_import_run(im, 1, NULL);
    topic_kafka_importer_stats(im, &st);
    CHECK(rc == TOPIC_ETOOBIG && st.imported == 0 && st.skipped == 0 && st.next_offset == 10 &&
          topic_end_offset(t3) == 10, "the second start: %d, imported %" PRIu64 ", skipped %"
          PRIu64 ", next %" PRId64, rc, st.imported, st.skipped, st.next_offset);
    topic_kafka_importer_free(im);
    topic_close(t3);

    rd_kafka_destroy(p);
    topic_close(t);
    mock_stop(&m);
}

static int hook_point, hook_nth, hook_calls;

static int crash_hook(int point)
{
    return point == hook_point && ++hook_calls == hook_nth;
}

static void test_import_crash_points(void)
{
    enum { N = 1000 };
    struct mock m;
    REQUIRE(mock_start(&m, 1) == 0, "mock cluster");
    rd_kafka_mock_topic_create(m.mc, "cp", 1, 1);
    rd_kafka_t *p = kafka_client(m.bootstraps, RD_KAFKA_PRODUCER, NULL);
    REQUIRE(p != NULL, "producer");
    produce_pattern(p, "cp", 0, 0, N);
    struct kmsgs k;
    REQUIRE(kafka_read_all(m.bootstraps, "cp", 1, 0, &k) == 0, "reading back");
    const char *props[] = { "log_level=2", "libtopic.import.batch.records=97", NULL };
    char err[512];
    int cases = 0;
    for (int point = 1; point <= 4; point++)
        for (int nth = 1; nth <= 3; nth += 2) {
            char name[64];
            snprintf(name, sizeof name, "cp-%d-%d", point, nth);
            topic *t;
            REQUIRE_RC(topic_open(scratch(name), TOPIC_CREATE, NULL, &t));
            hook_point = point;
            hook_nth = nth;
            hook_calls = 0;
            topic_kafka__import_hook = crash_hook;
            int rc = topic_kafka_import(t, m.bootstraps, "cp", 0, props, 1, NULL, err, sizeof err);
            topic_kafka__import_hook = NULL;
            CHECK(rc == -ECANCELED, "point %d #%d: %s", point, nth, topic_kafka_strerror(rc));
            uint64_t at_crash = topic_end_offset(t);
            rc = topic_kafka_import(t, m.bootstraps, "cp", 0, props, 1, NULL, err, sizeof err);
            CHECK(rc == 0, "point %d #%d, restart: %s: %s", point, nth, topic_kafka_strerror(rc),
                  err);
            verify_imported(t, 0, &k);
            if (point < 4 && nth == 3)
                CHECK(at_crash > 0, "point %d #%d: nothing appended before the crash", point, nth);
            topic_close(t);
            cases++;
        }
    /* A crash while storing the position after the last batch: the
     * restart finds those records appended and checks them against Kafka,
     * finding nothing new.  It used to store nothing then, so that every
     * later start fetched and compared the same records again (and failed
     * once Kafka's retention had deleted them). */
    {
        topic *t;
        REQUIRE_RC(topic_open(scratch("cp-last"), TOPIC_CREATE, NULL, &t));
        hook_point = 2;
        hook_nth = 1 + (N + 96) / 97;   /* the first position stored, then one per batch */
        hook_calls = 0;
        topic_kafka__import_hook = crash_hook;
        int rc = topic_kafka_import(t, m.bootstraps, "cp", 0, props, 1, NULL, err, sizeof err);
        topic_kafka__import_hook = NULL;
        CHECK(rc == -ECANCELED, "the last batch: %s", topic_kafka_strerror(rc));
        CHECK(topic_end_offset(t) == N, "the last batch was appended: end %" PRIu64,
              topic_end_offset(t));
        for (int run = 0; run < 2; run++) {
            topic_kafka_importer *im;
            REQUIRE_RC(topic_kafka_importer_new(t, m.bootstraps, "cp", 0, props, err, sizeof err,
                                                &im));
            CHECK_RC(topic_kafka_import_run(im, 1, NULL));
            topic_kafka_import_stats st;
            topic_kafka_importer_stats(im, &st);
            uint64_t want = run == 0 ? N - (uint64_t)(hook_nth - 2) * 97 : 0;
            CHECK(st.skipped == want && st.imported == 0,
                  "start %d after the crash: skipped %" PRIu64 " (want %" PRIu64 "), imported %"
                  PRIu64, run + 1, st.skipped, want, st.imported);
            topic_kafka_importer_free(im);
        }
        verify_imported(t, 0, &k);
        topic_close(t);
    }
    note("import, simulated crashes at each of the 4 steps of storing the position (%d cases):"
         " no record lost or repeated", cases);
    kmsgs_free(&k);
    rd_kafka_destroy(p);
    mock_stop(&m);
}

static void test_import_mismatch(void)
{
    struct mock m;
    REQUIRE(mock_start(&m, 1) == 0, "mock cluster");
    rd_kafka_mock_topic_create(m.mc, "mm", 1, 1);
    rd_kafka_t *p = kafka_client(m.bootstraps, RD_KAFKA_PRODUCER, NULL);
    REQUIRE(p != NULL, "producer");
    produce_pattern(p, "mm", 0, 0, 50);
    topic *t;
    REQUIRE_RC(topic_open(scratch("mm"), TOPIC_CREATE, NULL, &t));
    char err[512];
    REQUIRE_RC(topic_kafka_import(t, m.bootstraps, "mm", 0, quiet_props, 1, NULL, err, sizeof err));
    /* Something else appends: the next import cannot tell it from its own. */
    REQUIRE_RC(topic_append(t, "intruder", 8, NULL));
    int rc = topic_kafka_import(t, m.bootstraps, "mm", 0, quiet_props, 1, NULL, err, sizeof err);
    CHECK(rc == TOPIC_KAFKA_EMISMATCH, "no more Kafka records: %s", topic_kafka_strerror(rc));
    produce_pattern(p, "mm", 0, 50, 60);
    rc = topic_kafka_import(t, m.bootstraps, "mm", 0, quiet_props, 1, NULL, err, sizeof err);
    CHECK(rc == TOPIC_KAFKA_EMISMATCH, "a different Kafka record: %s", topic_kafka_strerror(rc));
    fprintf(stderr, "  mismatch: %s\n", err);
    CHECK(topic_end_offset(t) == 51, "nothing appended after a mismatch");
    rd_kafka_destroy(p);
    topic_close(t);
    mock_stop(&m);
}

struct import_runner {
    pthread_t thread;
    topic_kafka_importer *im;
    volatile sig_atomic_t stop;
    int rc;
};

static void *run_importer(void *arg)
{
    struct import_runner *r = arg;
    r->rc = topic_kafka_import_run(r->im, 0, &r->stop);
    return NULL;
}

static bool wait_local_end(topic *t, uint64_t want, double seconds)
{
    double end = now_s() + seconds;
    while (now_s() < end) {
        if (topic_end_offset(t) >= want)
            return true;
        sleep_ms(10);
    }
    fprintf(stderr, "  local end %" PRIu64 ", want %" PRIu64 "\n", topic_end_offset(t), want);
    return false;
}

static void test_import_broker_down(void)
{
    struct mock m;
    REQUIRE(mock_start(&m, 3) == 0, "mock cluster");
    rd_kafka_mock_topic_create(m.mc, "down", 1, 3);
    rd_kafka_mock_partition_set_leader(m.mc, "down", 0, 2);
    const char *const fast[] = { "reconnect.backoff.max.ms=200", "log_level=0", NULL };
    rd_kafka_t *p = kafka_client(m.bootstraps, RD_KAFKA_PRODUCER, fast);
    REQUIRE(p != NULL, "producer");
    topic *t;
    REQUIRE_RC(topic_open(scratch("impdown"), TOPIC_CREATE, NULL, &t));
    char err[512];
    struct import_runner r = { .stop = 0 };
    REQUIRE_RC(topic_kafka_importer_new(t, m.bootstraps, "down", 0, fast, err, sizeof err,
                                        &r.im));
    REQUIRE(pthread_create(&r.thread, NULL, run_importer, &r) == 0, "thread");
    produce_sized(p, "down", 0, 0, 3000, 40);
    CHECK(wait_local_end(t, 3000, 30), "before the broker goes down");

    /* The leader goes down for 1.5 s; the importer waits, then goes on. */
    rd_kafka_mock_broker_set_down(m.mc, 2);
    sleep_ms(1500);
    CHECK(r.rc == 0, "the importer gave up: %s: %s", topic_kafka_strerror(r.rc),
          topic_kafka_importer_error(r.im, err, sizeof err));
    rd_kafka_mock_broker_set_up(m.mc, 2);
    produce_sized(p, "down", 0, 3000, 6000, 40);
    CHECK(wait_local_end(t, 6000, 60), "after the broker came back");
    r.stop = 1;
    REQUIRE(pthread_join(r.thread, NULL) == 0, "join");
    CHECK(r.rc == 0, "run: %s", topic_kafka_strerror(r.rc));
    topic_kafka_importer_free(r.im);

    struct kmsgs k;
    REQUIRE(kafka_read_all(m.bootstraps, "down", 1, 0, &k) == 0, "reading back");
    CHECK(k.n == 6000, "Kafka has %zu", k.n);
    verify_imported(t, 0, &k);
    note("import, leader broker down 1.5 s while importing: waited, went on, 6000 records "
         "imported once each");
    kmsgs_free(&k);
    rd_kafka_destroy(p);
    topic_close(t);
    mock_stop(&m);
}

/* The import position stored in t: the current slot's local end offset. */
static uint64_t stored_local_end(topic *t, const char *ktopic, int partition)
{
    uint64_t best = 0;
    for (int s = 0; s < 2; s++) {
        char gk[TK_GROUP_MAX + 1], gl[TK_GROUP_MAX + 1], tail[64];
        uint64_t k, l;
        snprintf(tail, sizeof tail, ".%d.%c.kafka", partition, "ab"[s]);
        tk_group_name(gk, "kafka-import.", ktopic, tail);
        snprintf(tail, sizeof tail, ".%d.%c.local", partition, "ab"[s]);
        tk_group_name(gl, "kafka-import.", ktopic, tail);
        if (topic_committed(t, gk, &k) == 0 && topic_committed(t, gl, &l) == 0 && l > best)
            best = l;
    }
    return best;
}

static void test_import_kill(void)
{
    const int rounds = kill_rounds();
    struct mock m;
    REQUIRE(mock_start(&m, 3) == 0, "mock cluster");
    rd_kafka_mock_topic_create(m.mc, "ik", 2, 3);
    const char *const linger[] = { "linger.ms=1", NULL };
    rd_kafka_t *p = kafka_client(m.bootstraps, RD_KAFKA_PRODUCER, linger);
    REQUIRE(p != NULL, "producer");
    /* Small records: the mock cluster keeps 5 MiB per partition. */
    int produced = 8000;
    produce_sized(p, "ik", 0, 0, produced, 40);
    produce_sized(p, "ik", 1, 0, 500, 40);
    const char *dir = strdup(scratch("impkill"));
    char log[600], batch[64];
    snprintf(log, sizeof log, "%s.log", dir);
    /* The failpoint build sleeps between the steps of storing the position. */
    const char *tool = getenv("TOPIC_KAFKA_FAILPOINT_TOOL");
    setenv("TOPIC_KAFKA_STEP_DELAY_MS", "20", 1);
    char *argv[] = { (char *)(tool ? tool : tool_path()), "import", (char *)dir, "--brokers",
                     m.bootstraps, "--kafka-topic", "ik", "--partition", "0", "-q", "-X",
                     "log_level=0", "-X", batch, NULL, NULL };
    int busy = 0, in_window = 0;
    uint64_t last_end = 0;
    double t0 = now_s();
    for (int r = 0; r < rounds; r++) {
        snprintf(batch, sizeof batch, "libtopic.import.batch.records=%d",
                 1 + (int)(rnd() % 200));
        pid_t pid = spawn(argv, log);
        REQUIRE(pid > 0, "spawn");
        /* Kafka receives about 2000 records/s while the importer lives,
         * 0.2 to 1.7 s: it starts (about 0.5 s), then appends as they come. */
        double death = now_s() + 0.2 + (double)(rnd() % 1500) / 1000;
        while (now_s() < death) {
            produce_sized(p, "ik", 0, produced, produced + 10, 40);
            produced += 10;
            sleep_ms(5);
        }
        kill(pid, SIGKILL);
        int st = wait_child(pid);
        if (st != 128 + SIGKILL) {
            CHECK(st == 128 + SIGKILL, "round %d: the importer exited by itself (%d)", r, st);
            show_log(log);
        }
        topic *t;
        if (topic_open(dir, TOPIC_RDONLY, NULL, &t) == 0) {
            uint64_t end = topic_end_offset(t), stored = stored_local_end(t, "ik", 0);
            if (end > last_end)
                busy++;
            if (end > stored)
                in_window++;   /* appended, position not yet stored: the restart skips */
            if (getenv("TEST_VERBOSE"))
                fprintf(stderr, "  kill %d: Kafka %d, local end %" PRIu64 ", stored position "
                        "at local %" PRIu64 "\n", r, produced, end, stored);
            last_end = end;
            topic_close(t);
        }
    }
    char *final_argv[16];
    memcpy(final_argv, argv, sizeof argv);
    final_argv[14] = "--until-end";
    pid_t pid = spawn(final_argv, log);
    int st = wait_child_for(pid, 120);
    CHECK(st == 0, "the last importer exited with %d", st);
    if (st != 0)
        show_log(log);
    double dt = now_s() - t0;

    struct kmsgs k;
    REQUIRE(kafka_read_all(m.bootstraps, "ik", 2, 0, &k) == 0, "reading back");
    CHECK(k.n == (size_t)produced, "Kafka has %zu of %d", k.n, produced);
    topic *t;
    REQUIRE_RC(topic_open(dir, TOPIC_RDONLY, NULL, &t));
    verify_imported(t, 0, &k);
    note("import, kill -9 (Kafka receiving 2000 records/s, %s): %d kills (%d while importing, %d "
         "between an append and the stored position), %d records, every one imported once, in "
         "order; %.1f s", tool ? "up to 20 ms between storing steps" : "no failpoints",
         rounds, busy, in_window, produced, dt);
    topic_close(t);
    kmsgs_free(&k);
    rd_kafka_destroy(p);
    mock_stop(&m);
    free((void *)dir);
}

/* ======================================================================== */

static const struct test {
    const char *name;
    void (*fn)(void);
} tests[] = {
    { "api_errors", test_api_errors },
    { "forward_100k", test_forward_100k },
    { "forward_follow", test_forward_follow },
    { "forward_faults", test_forward_faults },
    { "forward_refused", test_forward_refused },
    { "forward_deleted", test_forward_deleted },
    { "forward_large", test_forward_large },
    { "forward_kill", test_forward_kill },
    { "import_roundtrip", test_import_roundtrip },
    { "import_crash_points", test_import_crash_points },
    { "import_mismatch", test_import_mismatch },
    { "import_broker_down", test_import_broker_down },
    { "import_kill", test_import_kill },
};

int main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    signal(SIGPIPE, SIG_IGN);
    rnd();
    int passed = 0, failed = 0;
    double t0 = now_s();
    for (size_t i = 0; i < sizeof tests / sizeof tests[0]; i++) {
        bool wanted = argc < 2;
        for (int a = 1; a < argc; a++)
            wanted |= strstr(tests[i].name, argv[a]) != NULL;
        if (!wanted)
            continue;
        printf("== %s\n", tests[i].name);
        test_failed = 0;
        double ts = now_s();
        tests[i].fn();
        printf("%s %s (%.1f s)\n", test_failed ? "FAILED" : "ok", tests[i].name, now_s() - ts);
        if (test_failed)
            failed++;
        else
            passed++;
    }
    scratch_cleanup();
    print_notes();
    printf("total time %.1f s\n", now_s() - t0);
    printf("%d passed, %d failed\n", passed, failed);
    return failed != 0;
}
