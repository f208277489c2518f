/*
 * SPDX-License-Identifier: BSD-2-Clause
 */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"

int test_failed;

static char notes[64][256];
static int nnotes;

void note(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char line[256];
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    fprintf(stderr, "  note: %s\n", line);
    if (nnotes < 64)
        memcpy(notes[nnotes++], line, sizeof line);
}

void print_notes(void)
{
    if (nnotes == 0)
        return;
    printf("measurements:\n");
    for (int i = 0; i < nnotes; i++)
        printf("  %s\n", notes[i]);
}

double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

void sleep_ms(int ms)
{
    struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000 };
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
}

uint64_t mix64(uint64_t x)
{
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

static uint64_t rnd_state;

uint64_t rnd(void)
{
    if (rnd_state == 0) {
        const char *s = getenv("TEST_SEED");
        rnd_state = s ? strtoull(s, NULL, 10) : (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 20);
        fprintf(stderr, "TEST_SEED=%" PRIu64 "\n", rnd_state);
    }
    return mix64(rnd_state++);
}

/* ---- scratch directories ---- */

static char scratch_root[256];

const char *scratch(const char *name)
{
    static char path[512];
    if (scratch_root[0] == '\0') {
        const char *tmp = getenv("TMPDIR");
        snprintf(scratch_root, sizeof scratch_root, "%s/libtopic-kafka-test.XXXXXX",
                 tmp ? tmp : "/tmp");
        if (mkdtemp(scratch_root) == NULL) {
            perror("mkdtemp");
            exit(1);
        }
    }
    snprintf(path, sizeof path, "%s/%s", scratch_root, name);
    return path;
}

static int rm_one(const char *p, const struct stat *st, int flag, struct FTW *f)
{
    (void)st;
    (void)flag;
    (void)f;
    return remove(p);
}

void scratch_cleanup(void)
{
    if (scratch_root[0] && getenv("TEST_KEEP") == NULL)
        nftw(scratch_root, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

/* ---- the mock cluster ---- */

int mock_start(struct mock *m, int brokers)
{
    char err[256];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_conf_set(conf, "log_level", "2", err, sizeof err);
    m->rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err);
    if (m->rk == NULL)
        return -1;
    m->mc = rd_kafka_mock_cluster_new(m->rk, brokers);
    if (m->mc == NULL)
        return -1;
    snprintf(m->bootstraps, sizeof m->bootstraps, "%s", rd_kafka_mock_cluster_bootstraps(m->mc));
    return 0;
}

void mock_stop(struct mock *m)
{
    if (m->mc)
        rd_kafka_mock_cluster_destroy(m->mc);
    if (m->rk)
        rd_kafka_destroy(m->rk);
    m->mc = NULL;
    m->rk = NULL;
}

rd_kafka_t *kafka_client(const char *bootstraps, rd_kafka_type_t type, const char *const *props)
{
    char err[256];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_conf_set(conf, "bootstrap.servers", bootstraps, err, sizeof err);
    rd_kafka_conf_set(conf, "log_level", "2", err, sizeof err);
    if (type == RD_KAFKA_CONSUMER) {
        rd_kafka_conf_set(conf, "group.id", "test-reader", err, sizeof err);
        rd_kafka_conf_set(conf, "enable.auto.commit", "false", err, sizeof err);
        rd_kafka_conf_set(conf, "enable.partition.eof", "true", err, sizeof err);
    }
    for (size_t i = 0; props && props[i]; i++) {
        char name[128];
        const char *eq = strchr(props[i], '=');
        snprintf(name, sizeof name, "%.*s", (int)(eq - props[i]), props[i]);
        if (rd_kafka_conf_set(conf, name, eq + 1, err, sizeof err) != RD_KAFKA_CONF_OK)
            fprintf(stderr, "kafka_client: %s\n", err);
    }
    rd_kafka_t *rk = rd_kafka_new(type, conf, err, sizeof err);
    if (rk == NULL)
        fprintf(stderr, "kafka_client: %s\n", err);
    else if (type == RD_KAFKA_CONSUMER)
        rd_kafka_poll_set_consumer(rk);
    return rk;
}

/* ---- generated records ---- */

void gen_record(uint64_t offset, struct gen *g)
{
    uint64_t h = mix64(offset * 0x9e3779b97f4a7c15ull + 12345);
    g->key_class = (unsigned)(h % (GEN_KEYS + 1));
    g->keyed = g->key_class != GEN_KEYS;
    g->key[0] = '\0';
    g->key_len = 0;
    if (g->keyed && g->key_class > 0)
        g->key_len = (size_t)snprintf(g->key, sizeof g->key, "key-%02u", g->key_class);
    int n = snprintf(g->value, sizeof g->value, "%020" PRIu64 ":", offset);
    for (size_t i = (size_t)n; i < sizeof g->value; i++)
        g->value[i] = (char)('a' + mix64(h + i) % 26);
    g->timestamp = 1700000000000 + (int64_t)offset * 3 + (int64_t)(h >> 60);
}

int gen_append(topic *t, uint64_t from, uint64_t to)
{
    enum { B = 256 };
    struct gen g[B];
    topic_record r[B];
    while (from < to) {
        size_t n = to - from < B ? (size_t)(to - from) : B;
        for (size_t i = 0; i < n; i++) {
            gen_record(from + i, &g[i]);
            r[i] = (topic_record){ .timestamp = g[i].timestamp,
                                   .key = g[i].keyed ? g[i].key : NULL,
                                   .key_len = g[i].key_len,
                                   .value = g[i].value,
                                   .value_len = sizeof g[i].value };
        }
        uint64_t first;
        int rc = topic_append_batch(t, r, n, &first);
        if (rc < 0)
            return rc;
        if (first != from)
            return -EIO;
        from += n;
    }
    return 0;
}

/* ---- reading Kafka back ---- */

static char *dup_bytes(const void *p, size_t n)
{
    if (p == NULL)
        return NULL;
    char *d = malloc(n + 1);
    memcpy(d, p, n);
    d[n] = '\0';
    return d;
}

int kafka_watermarks(rd_kafka_t *rk, const char *ktopic, int npart, int64_t *hi)
{
    for (int p = 0; p < npart; p++) {
        int64_t lo;
        rd_kafka_resp_err_t err = RD_KAFKA_RESP_ERR__TIMED_OUT;
        for (int tries = 0; tries < 10 && err; tries++)
            err = rd_kafka_query_watermark_offsets(rk, ktopic, p, &lo, &hi[p], 5000);
        if (err) {
            fprintf(stderr, "watermarks of %s[%d]: %s\n", ktopic, p, rd_kafka_err2str(err));
            return -1;
        }
        if (lo != 0) {
            /* librdkafka's mock keeps 5 MiB per partition and drops the rest */
            fprintf(stderr, "%s[%d] starts at offset %" PRId64 ": the mock cluster dropped "
                    "old records; the test wrote too much\n", ktopic, p, lo);
            return -1;
        }
    }
    return 0;
}

int kafka_read_all(const char *bootstraps, const char *ktopic, int npart, int only,
                   struct kmsgs *out)
{
    memset(out, 0, sizeof *out);
    rd_kafka_t *rk = kafka_client(bootstraps, RD_KAFKA_CONSUMER, NULL);
    if (rk == NULL)
        return -1;
    int64_t hi[64];
    if (kafka_watermarks(rk, ktopic, npart, hi) < 0) {
        rd_kafka_destroy(rk);
        return -1;
    }
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(npart);
    int want = 0;
    for (int p = 0; p < npart; p++)
        if ((only < 0 || p == only) && hi[p] > 0) {
            rd_kafka_topic_partition_list_add(l, ktopic, p)->offset = RD_KAFKA_OFFSET_BEGINNING;
            want++;
        }
    rd_kafka_assign(rk, l);
    rd_kafka_topic_partition_list_destroy(l);
    int done = 0, rc = 0;
    double deadline = now_s() + 120;
    bool finished[64] = { false };
    while (done < want) {
        if (now_s() > deadline) {
            fprintf(stderr, "kafka_read_all: timed out\n");
            rc = -1;
            break;
        }
        rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 100);
        if (m == NULL)
            continue;
        if (m->err == RD_KAFKA_RESP_ERR_NO_ERROR && !finished[m->partition]) {
            if (out->n == out->cap) {
                out->cap = out->cap ? out->cap * 2 : 1024;
                out->v = realloc(out->v, out->cap * sizeof *out->v);
            }
            rd_kafka_timestamp_type_t type;
            out->v[out->n++] = (struct kmsg){
                .partition = m->partition,
                .offset = m->offset,
                .timestamp = rd_kafka_message_timestamp(m, &type),
                .key = dup_bytes(m->key, m->key_len),
                .key_len = m->key_len,
                .value = dup_bytes(m->payload, m->len),
                .value_len = m->len,
            };
            if (m->offset + 1 >= hi[m->partition]) {
                finished[m->partition] = true;
                done++;
            }
        } else if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF && m->err) {
            fprintf(stderr, "kafka_read_all: %s\n", rd_kafka_message_errstr(m));
        }
        rd_kafka_message_destroy(m);
    }
    rd_kafka_consumer_close(rk);
    rd_kafka_destroy(rk);
    return rc;
}

void kmsgs_free(struct kmsgs *k)
{
    for (size_t i = 0; i < k->n; i++) {
        free(k->v[i].key);
        free(k->v[i].value);
    }
    free(k->v);
    memset(k, 0, sizeof *k);
}

long verify_forwarded(const struct kmsgs *k, uint64_t n,
                      bool (*dup_ok)(const struct kmsg *m, uint64_t offset, void *arg),
                      void *arg)
{
    /* rank[o]: the place of o among the records of its key */
    uint32_t *rank = malloc(n * sizeof *rank), *seen = calloc(n, sizeof *seen);
    uint32_t count[GEN_KEYS + 1] = { 0 }, next[GEN_KEYS + 1] = { 0 };
    int32_t part[GEN_KEYS + 1];
    for (int i = 0; i <= GEN_KEYS; i++)
        part[i] = -1;
    struct gen g;
    for (uint64_t o = 0; o < n; o++) {
        gen_record(o, &g);
        rank[o] = count[g.key_class]++;
    }
    long dups = 0, bad = 0, order = 0, split = 0, rejected = 0;
    for (size_t i = 0; i < k->n; i++) {
        const struct kmsg *m = &k->v[i];
        char *end = NULL;
        uint64_t o = m->value ? strtoull(m->value, &end, 10) : UINT64_MAX;
        if (m->value == NULL || o >= n || *end != ':') {
            if (bad++ < 5)
                fprintf(stderr, "  unexpected Kafka record at [%d]@%" PRId64 "\n", m->partition,
                        m->offset);
            continue;
        }
        gen_record(o, &g);
        bool same = m->value_len == sizeof g.value && memcmp(m->value, g.value, sizeof g.value) == 0 &&
            m->timestamp == g.timestamp &&
            (!g.keyed ? m->key == NULL
                      : m->key && m->key_len == g.key_len && memcmp(m->key, g.key, g.key_len) == 0);
        if (!same && bad++ < 5)
            fprintf(stderr, "  record %" PRIu64 " altered in Kafka at [%d]@%" PRId64 "\n", o,
                    m->partition, m->offset);
        if (part[g.key_class] < 0)
            part[g.key_class] = m->partition;
        else if (part[g.key_class] != m->partition && split++ < 5)
            fprintf(stderr, "  key class %u on partitions %d and %d\n", g.key_class,
                    part[g.key_class], m->partition);
        if (seen[o]++) {
            dups++;
            if (dup_ok && !dup_ok(m, o, arg) && rejected++ < 5)
                fprintf(stderr, "  duplicate of %" PRIu64 " at [%d]@%" PRId64 " outside the "
                        "unacknowledged window\n", o, m->partition, m->offset);
            continue;
        }
        if (rank[o] != next[g.key_class] && order++ < 5)
            fprintf(stderr, "  record %" PRIu64 " (key class %u, #%u) arrived first after #%u\n",
                    o, g.key_class, rank[o], next[g.key_class]);
        next[g.key_class]++;
    }
    long missing = 0;
    for (uint64_t o = 0; o < n; o++)
        if (seen[o] == 0 && missing++ < 5)
            fprintf(stderr, "  record %" PRIu64 " missing from Kafka\n", o);
    free(rank);
    free(seen);
    CHECK(bad == 0, "%ld records altered or unexpected", bad);
    CHECK(missing == 0, "%ld of %" PRIu64 " records missing", missing, n);
    CHECK(order == 0, "%ld records out of order within their key", order);
    CHECK(split == 0, "%ld keys spread over several partitions", split);
    CHECK(rejected == 0, "%ld duplicates outside the unacknowledged window", rejected);
    return bad || missing || order || split || rejected ? -1 : dups;
}

/* ---- child processes ---- */

const char *tool_path(void)
{
    const char *p = getenv("TOPIC_KAFKA_TOOL");
    return p ? p : "./topic-kafka";
}

pid_t spawn(char *const argv[], const char *log)
{
    int fd = open(log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (fd < 0)
        return -1;
    pid_t pid = fork();
    if (pid == 0) {
        /* Only async-signal-safe calls between fork and exec: this process
         * has librdkafka's threads. */
        dup2(fd, 1);
        dup2(fd, 2);
        execv(argv[0], argv);
        _exit(127);
    }
    close(fd);
    return pid;
}

int wait_child(pid_t pid)
{
    int st;
    while (waitpid(pid, &st, 0) < 0)
        if (errno != EINTR)
            return -1;
    if (WIFEXITED(st))
        return WEXITSTATUS(st);
    if (WIFSIGNALED(st))
        return 128 + WTERMSIG(st);
    return -1;
}
