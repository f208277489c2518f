/*
 * topic-kafka(1): forward a libtopic topic to Kafka, or import a Kafka
 * partition into one.
 *
 *   topic-kafka forward DIR --brokers LIST --kafka-topic NAME [--group G]
 *                           [-X PROP=VALUE]... [--until-end] [--quiet] [--interval S]
 *   topic-kafka import DIR --brokers LIST --kafka-topic NAME --partition P
 *                           [-X PROP=VALUE]... [--until-end] [--quiet] [--interval S]
 *
 * Progress goes to stderr once a second.  SIGINT or SIGTERM stops cleanly
 * (a second one stops without waiting for Kafka's acknowledgements).
 * Exit status: 0 done or stopped, 2 usage error, 3 any other failure.
 *
 * SPDX-License-Identifier: BSD-2-Clause
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "topic_kafka.h"

enum { EXIT_OK = 0, EXIT_USAGE = 2, EXIT_FAIL = 3 };

static volatile sig_atomic_t stop_flag;

static void on_signal(int sig)
{
    (void)sig;
    if (stop_flag < 2)
        stop_flag++;
}

static const char usage_text[] =
    "usage: topic-kafka forward DIR --brokers LIST --kafka-topic NAME [--group GROUP]\n"
    "                           [-X PROP=VALUE]... [--until-end] [--quiet] [--interval S]\n"
    "       topic-kafka import DIR --brokers LIST --kafka-topic NAME --partition P\n"
    "                           [-X PROP=VALUE]... [--until-end] [--quiet] [--interval S]\n"
    "       topic-kafka --version\n"
    "\n"
    "forward  produce the records of topic DIR to Kafka topic NAME, from the\n"
    "         position of libtopic consumer group GROUP (default\n"
    "         kafka-forward.NAME), committing it as Kafka acknowledges them\n"
    "import   append the records of partition P of Kafka topic NAME to topic DIR\n"
    "         (created if missing), exactly once across restarts\n"
    "\n"
    "  -b, --brokers LIST      Kafka bootstrap servers, host:port[,host:port...]\n"
    "  -t, --kafka-topic NAME  the Kafka topic\n"
    "  -g, --group GROUP       forward: the libtopic consumer group\n"
    "  -p, --partition P       import: the Kafka partition\n"
    "  -X PROP=VALUE           a librdkafka property, or a libtopic.* one (see\n"
    "                          topic-kafka(1)); may be repeated\n"
    "  -u, --until-end         stop at the end instead of following new records\n"
    "  -q, --quiet             no progress lines\n"
    "  -i, --interval SECONDS  seconds between progress lines (default 1)\n"
    "\n"
    "SIGINT or SIGTERM stops cleanly; a second one stops at once.\n"
    "Exit status: 0 done or stopped, 2 usage error, 3 any other failure.\n";

static int usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static int usage_error(const char *fmt, ...)
{
    va_list ap;
    fputs("topic-kafka: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputs("\n(topic-kafka --help shows the usage)\n", stderr);
    return EXIT_USAGE;
}

struct options {
    const char *cmd;
    const char *dir;
    const char *brokers;
    const char *kafka_topic;
    const char *group;
    long partition;
    const char **props;
    size_t nprops;
    int until_end;
    int quiet;
    double interval;
};

static int parse(int argc, char **argv, struct options *o)
{
    static const struct option longs[] = {
        { "brokers", required_argument, NULL, 'b' },
        { "kafka-topic", required_argument, NULL, 't' },
        { "group", required_argument, NULL, 'g' },
        { "partition", required_argument, NULL, 'p' },
        { "until-end", no_argument, NULL, 'u' },
        { "quiet", no_argument, NULL, 'q' },
        { "interval", required_argument, NULL, 'i' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    o->partition = -1;
    o->interval = 1;
    o->props = calloc((size_t)argc + 1, sizeof *o->props);
    if (o->props == NULL)
        return EXIT_FAIL;
    optind = 1;
    int c;
    char *end;
    while ((c = getopt_long(argc, argv, "b:t:g:p:X:uqi:h", longs, NULL)) != -1) {
        switch (c) {
        case 'b': o->brokers = optarg; break;
        case 't': o->kafka_topic = optarg; break;
        case 'g': o->group = optarg; break;
        case 'u': o->until_end = 1; break;
        case 'q': o->quiet = 1; break;
        case 'X':
            if (strchr(optarg, '=') == NULL || optarg[0] == '=')
                return usage_error("-X %s: expected PROP=VALUE", optarg);
            o->props[o->nprops++] = optarg;
            break;
        case 'p':
            errno = 0;
            o->partition = strtol(optarg, &end, 10);
            if (errno || end == optarg || *end || o->partition < 0 || o->partition > INT32_MAX)
                return usage_error("--partition %s: expected a partition number", optarg);
            break;
        case 'i':
            o->interval = strtod(optarg, &end);
            if (end == optarg || *end || !(o->interval > 0))
                return usage_error("--interval %s: expected a number of seconds", optarg);
            break;
        case 'h':
            fputs(usage_text, stdout);
            exit(EXIT_OK);
        default:
            return EXIT_USAGE;
        }
    }
    if (optind >= argc)
        return usage_error("%s: missing DIR", o->cmd);
    o->dir = argv[optind++];
    if (optind < argc)
        return usage_error("%s: unexpected argument '%s'", o->cmd, argv[optind]);
    if (o->brokers == NULL)
        return usage_error("%s: missing --brokers", o->cmd);
    if (o->kafka_topic == NULL)
        return usage_error("%s: missing --kafka-topic", o->cmd);
    if (strcmp(o->cmd, "import") == 0 && o->partition < 0)
        return usage_error("import: missing --partition");
    if (strcmp(o->cmd, "import") == 0 && o->group)
        return usage_error("import: --group is for forward");
    if (strcmp(o->cmd, "forward") == 0 && o->partition >= 0)
        return usage_error("forward: --partition is for import (the partitioner picks one "
                           "per key)");
    return 0;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* ------------------------------------------------------------------------ */
/* Progress: a thread that prints a line every interval                      */

struct progress {
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    int done;
    double interval;
    topic_kafka_forwarder *fwd;
    topic_kafka_importer *imp;
    uint64_t last_count;
    double last_time;
    char last_note[512];
};

/* The count that progress is measured in: acknowledged or imported records. */
static uint64_t progress_line(struct progress *p, int final, double started)
{
    char note[512];
    uint64_t count;
    double t = now_s(), dt = t - (final ? started : p->last_time);
    if (p->fwd) {
        topic_kafka_forward_stats st;
        topic_kafka_forwarder_stats(p->fwd, &st);
        count = st.acked;
        uint64_t d = final ? count : count - p->last_count;
        fprintf(stderr, "topic-kafka forward: %s%" PRIu64 " acked (%.0f records/s), committed "
                "%" PRIu64 ", end %" PRIu64 ", lag %" PRIu64 ", in flight %" PRIu64,
                final ? "done: " : "", count, dt > 0 ? (double)d / dt : 0.0, st.committed,
                st.end_offset, st.lag, st.in_flight);
        if (st.skipped_deleted > 0)   /* libtopic.skip.deleted: records never sent */
            fprintf(stderr, ", skipped %" PRIu64 " deleted before they were forwarded",
                    st.skipped_deleted);
        fputc('\n', stderr);
        topic_kafka_forwarder_error(p->fwd, note, sizeof note);
    } else {
        topic_kafka_import_stats st;
        topic_kafka_importer_stats(p->imp, &st);
        count = st.imported;
        uint64_t d = final ? count : count - p->last_count;
        fprintf(stderr, "topic-kafka import: %s%" PRIu64 " imported (%.0f records/s), %" PRIu64
                " skipped after a restart, next Kafka offset %" PRId64 ", high watermark %"
                PRId64 ", lag %" PRId64 ", local end %" PRIu64 "\n", final ? "done: " : "",
                count, dt > 0 ? (double)d / dt : 0.0, st.skipped, st.next_offset,
                st.high_watermark, st.lag, st.local_end);
        topic_kafka_importer_error(p->imp, note, sizeof note);
    }
    if (!final && note[0] && strcmp(note, p->last_note) != 0)
        fprintf(stderr, "topic-kafka %s: note: %s\n", p->fwd ? "forward" : "import", note);
    memcpy(p->last_note, note, sizeof note);
    p->last_count = count;
    p->last_time = t;
    return count;
}

static void *progress_main(void *arg)
{
    struct progress *p = arg;
    pthread_mutex_lock(&p->lock);
    while (!p->done) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        double when = (double)ts.tv_sec + ts.tv_nsec / 1e9 + p->interval;
        ts.tv_sec = (time_t)when;
        ts.tv_nsec = (long)((when - (double)ts.tv_sec) * 1e9);
        if (pthread_cond_timedwait(&p->cond, &p->lock, &ts) == ETIMEDOUT && !p->done)
            progress_line(p, 0, 0);
    }
    pthread_mutex_unlock(&p->lock);
    return NULL;
}

static int progress_start(struct progress *p, const struct options *o)
{
    p->interval = o->interval;
    p->last_time = now_s();
    pthread_mutex_init(&p->lock, NULL);
    pthread_cond_init(&p->cond, NULL);
    if (o->quiet)
        return 0;
    return pthread_create(&p->thread, NULL, progress_main, p) == 0 ? 0 : -1;
}

static void progress_stop(struct progress *p, const struct options *o, double started)
{
    if (!o->quiet) {
        pthread_mutex_lock(&p->lock);
        p->done = 1;
        pthread_cond_signal(&p->cond);
        pthread_mutex_unlock(&p->lock);
        pthread_join(p->thread, NULL);
        progress_line(p, 1, started);
    }
    pthread_cond_destroy(&p->cond);
    pthread_mutex_destroy(&p->lock);
}

/* ------------------------------------------------------------------------ */
/* The two commands                                                          */

static int fail_open(const char *dir, int rc)
{
    fprintf(stderr, "topic-kafka: %s: %s\n", dir, topic_strerror(rc));
    return EXIT_FAIL;
}

static int cmd_forward(const struct options *o)
{
    topic *t;
    int rc = topic_open(o->dir, TOPIC_RDONLY, NULL, &t);
    if (rc < 0)
        return fail_open(o->dir, rc);
    char err[1024];
    topic_kafka_forwarder *f;
    rc = topic_kafka_forwarder_new(t, o->group, o->brokers, o->kafka_topic, o->props, err,
                                   sizeof err, &f);
    if (rc < 0) {
        fprintf(stderr, "topic-kafka forward: %s\n", err);
        topic_close(t);
        return rc == -EINVAL || rc == TOPIC_KAFKA_ECONFIG ? EXIT_USAGE : EXIT_FAIL;
    }
    struct progress p = { .fwd = f };
    /* What the forwarder noted when it found its position (a position
     * past the end that it moved), before a short run ends unseen. */
    topic_kafka_forwarder_error(f, p.last_note, sizeof p.last_note);
    if (p.last_note[0])
        fprintf(stderr, "topic-kafka forward: note: %s\n", p.last_note);
    double started = now_s();
    progress_start(&p, o);
    rc = topic_kafka_forward_run(f, o->until_end, &stop_flag);
    progress_stop(&p, o, started);
    if (rc < 0)
        fprintf(stderr, "topic-kafka forward: %s: %s\n", topic_kafka_strerror(rc),
                topic_kafka_forwarder_error(f, err, sizeof err));
    topic_kafka_forwarder_free(f);
    int rc2 = topic_close(t);
    if (rc == 0 && rc2 < 0 && rc2 != TOPIC_ERDONLY)
        fprintf(stderr, "topic-kafka forward: closing %s: %s\n", o->dir, topic_strerror(rc2));
    return rc < 0 ? EXIT_FAIL : EXIT_OK;
}

static int cmd_import(const struct options *o)
{
    topic *t;
    int rc = topic_open(o->dir, TOPIC_CREATE, NULL, &t);
    if (rc < 0)
        return fail_open(o->dir, rc);
    char err[1024];
    topic_kafka_importer *im;
    rc = topic_kafka_importer_new(t, o->brokers, o->kafka_topic, (int32_t)o->partition,
                                  o->props, err, sizeof err, &im);
    if (rc < 0) {
        fprintf(stderr, "topic-kafka import: %s\n", err);
        topic_close(t);
        return rc == -EINVAL || rc == TOPIC_KAFKA_ECONFIG ? EXIT_USAGE : EXIT_FAIL;
    }
    struct progress p = { .imp = im };
    double started = now_s();
    progress_start(&p, o);
    rc = topic_kafka_import_run(im, o->until_end, &stop_flag);
    progress_stop(&p, o, started);
    if (rc < 0)
        fprintf(stderr, "topic-kafka import: %s: %s\n", topic_kafka_strerror(rc),
                topic_kafka_importer_error(im, err, sizeof err));
    topic_kafka_importer_free(im);
    int rc2 = topic_close(t);
    if (rc2 < 0) {
        fprintf(stderr, "topic-kafka import: closing %s: %s\n", o->dir, topic_strerror(rc2));
        rc = rc < 0 ? rc : rc2;
    }
    return rc < 0 ? EXIT_FAIL : EXIT_OK;
}

#ifdef TOPIC_KAFKA_FAILPOINTS
/*
 * The test build (tests/topic-kafka-failpoints, never installed) sleeps up
 * to $TOPIC_KAFKA_STEP_DELAY_MS at each step of storing the import position,
 * so that a kill -9 from the tests often lands between an append and the
 * position that covers it.
 */
#include <unistd.h>

#include "internal.h"

static int step_delay(int point)
{
    static int ms = -1;
    if (ms < 0) {
        const char *s = getenv("TOPIC_KAFKA_STEP_DELAY_MS");
        ms = s ? atoi(s) : 0;
        srand((unsigned)getpid());
    }
    if (ms > 0 && point <= 3)
        usleep((useconds_t)(rand() % ms) * 1000);
    return 0;
}
#endif

int main(int argc, char **argv)
{
#ifdef TOPIC_KAFKA_FAILPOINTS
    topic_kafka__import_hook = step_delay;
#endif
    if (argc < 2)
        return usage_error("missing a command: forward or import");
    const char *cmd = argv[1];
    if (strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0 || strcmp(cmd, "help") == 0) {
        fputs(usage_text, stdout);
        return EXIT_OK;
    }
    if (strcmp(cmd, "--version") == 0) {
        printf("topic-kafka %s (libtopic %s, librdkafka %s)\n", topic_kafka_version(),
               topic_version(), topic_kafka_rdkafka_version());
        return EXIT_OK;
    }
    if (strcmp(cmd, "forward") != 0 && strcmp(cmd, "import") != 0)
        return usage_error("unknown command '%s': expected forward or import", cmd);

    struct options o = { .cmd = cmd };
    int rc = parse(argc - 1, argv + 1, &o);
    if (rc != 0) {
        free(o.props);
        return rc;
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    /* Progress goes to stderr, often a pipe: a reader that went away must
     * not kill the forwarder mid-run (exit 141); the write fails instead. */
    signal(SIGPIPE, SIG_IGN);

    rc = strcmp(cmd, "forward") == 0 ? cmd_forward(&o) : cmd_import(&o);
    free(o.props);
    return rc;
}
