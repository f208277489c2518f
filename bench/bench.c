/*
 * bench/bench.c: the libtopic benchmark.
 *
 * Measures, in one process, every workload `--runs` times and prints the
 * median, min and max of each, next to baselines (write(), memcpy, read())
 * measured on the same machine in the same run, and ratios computed from the
 * medians.  See bench/README.md for what each row means.
 *
 *   ./bench/bench [--runs N] [--records N] [--dir PATH] [--only NAME] [--json]
 *
 * Every libtopic call is checked (the program aborts with topic_strerror() on
 * an error) and every read is checked against what was appended, so that a
 * broken library cannot produce a good number.
 *
 * SPDX-License-Identifier: BSD-2-Clause
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#include "topic.h"

/* ------------------------------------------------------------------------ */
/* Sizes                                                                     */

#define MB            1e6                 /* MB/s means 10^6 bytes per second */
#define CHUNK         (64 * 1024)         /* write()/read() baseline chunk */
#define PAT_SIZE      (128 * 1024)        /* pattern every value is cut from */
#define PAT_SLOTS     4099                /* distinct value start positions */
#define PAT_STRIDE    16
#define SMALL_LEN     100                 /* "100 B" values */
#define LARGE_LEN     1024                /* "1 KiB" values */
#define BATCH_N       1000                /* records per topic_append_batch */
#define MEMCPY_DST    (32u * 1024 * 1024) /* memcpy baseline destination ring */
/*
 * 12M x 100 B: every append workload then writes 1.23-1.81 GB of log, so each
 * run crosses exactly one roll of the default 1 GiB segment and lasts longer
 * than the default flush.ms (1 s), as a long-running writer would.
 */
#define DEFAULT_RECORDS 12000000ull
#define READ_DIVISOR  6                   /* read topic = records / 6 = 2,000,000 */
#define DEFAULT_RUNS  5
#define MAX_RUNS      1000

/* ------------------------------------------------------------------------ */
/* Helpers                                                                   */

static unsigned char *g_pat;          /* PAT_SIZE pseudo-random bytes */
static unsigned char *g_memcpy_dst;   /* global so the copies cannot be elided */
static volatile uint64_t g_sink;      /* keeps touched bytes alive */
static bool g_json;
static FILE *g_out;                   /* the human-readable table */
static char *g_scratch;               /* removed on exit, also by die() */

static void rm_rf(const char *path);

static void die(const char *fmt, ...) __attribute__((noreturn, format(printf, 1, 2)));
static void die(const char *fmt, ...)
{
    va_list ap;
    fflush(stdout);
    fprintf(stderr, "bench: ");
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    if (g_scratch) {
        char *p = g_scratch;
        g_scratch = NULL;
        rm_rf(p);
    }
    exit(1);
}

/* Every libtopic call that returns an int goes through this. */
#define TCHECK(call)                                                          \
    do {                                                                      \
        int tc_rc_ = (call);                                                  \
        if (tc_rc_ != 0)                                                      \
            die("%s:%d: %s failed: %s (%d)", __FILE__, __LINE__, #call,       \
                topic_strerror(tc_rc_), tc_rc_);                              \
    } while (0)

static double now_sec(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static uint64_t splitmix64(uint64_t *s)
{
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* Record i's value starts at g_pat + value_pos(i); it is checked on read. */
static inline size_t value_pos(uint64_t i)
{
    return (size_t)(i % PAT_SLOTS) * PAT_STRIDE;
}

static void *xmalloc(size_t n)
{
    void *p = malloc(n);
    if (!p)
        die("out of memory (%zu bytes)", n);
    return p;
}

static char *path_join(const char *a, const char *b)
{
    size_t n = strlen(a) + strlen(b) + 2;
    char *p = xmalloc(n);
    snprintf(p, n, "%s/%s", a, b);
    return p;
}

static int rm_cb(const char *path, const struct stat *sb, int type, struct FTW *ftw)
{
    (void)sb;
    (void)type;
    (void)ftw;
    if (remove(path) != 0 && errno != ENOENT)
        fprintf(stderr, "bench: warning: cannot remove %s: %s\n", path, strerror(errno));
    return 0;
}

static void rm_rf(const char *path)
{
    nftw(path, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* ------------------------------------------------------------------------ */
/* Metrics: one series of per-run values each                                */

enum {
    M_WRITE_MBPS, M_MEMCPY_MBPS,
    M_RSCAN_MBPS, M_RSCAN_RECS,
    /* the four append workloads, 4 metrics each, in this order */
    M_A100_RECS, M_A100_MBPS, M_A100_OPEN, M_A100_CLOSE,
    M_A1K_RECS, M_A1K_MBPS, M_A1K_OPEN, M_A1K_CLOSE,
    M_B100_RECS, M_B100_MBPS, M_B100_OPEN, M_B100_CLOSE,
    M_B1K_RECS, M_B1K_MBPS, M_B1K_OPEN, M_B1K_CLOSE,
    M_SCAN_RECS, M_SCAN_MBPS,
    M_RAND_READS,
    M_REOPEN_MS, M_REOPEN_CLOSE_MS,
    M_COUNT
};

struct mdef {
    const char *key;      /* JSON name */
    const char *row;      /* workload column; NULL = same as the row above */
    const char *unit;
    int decimals;
};

static const struct mdef mdefs[M_COUNT] = {
    [M_WRITE_MBPS]   = { "write_64k_mbps", "write() 64 KiB, no fsync", "MB/s", 1 },
    [M_MEMCPY_MBPS]  = { "memcpy_mbps", "memcpy 64 KiB chunks", "MB/s", 1 },
    [M_RSCAN_MBPS]   = { "read_scan_mbps", "read() 64 KiB of *.log", "MB/s (log)", 1 },
    [M_RSCAN_RECS]   = { "read_scan_records_per_s", NULL, "records/s", 0 },
    [M_A100_RECS]    = { "append_100b_records_per_s", "topic_append 100 B", "records/s", 0 },
    [M_A100_MBPS]    = { "append_100b_mbps", NULL, "MB/s (values)", 1 },
    [M_A100_OPEN]    = { "append_100b_create_ms", NULL, "create ms", 3 },
    [M_A100_CLOSE]   = { "append_100b_close_ms", NULL, "close ms", 3 },
    [M_A1K_RECS]     = { "append_1k_records_per_s", "topic_append 1 KiB", "records/s", 0 },
    [M_A1K_MBPS]     = { "append_1k_mbps", NULL, "MB/s (values)", 1 },
    [M_A1K_OPEN]     = { "append_1k_create_ms", NULL, "create ms", 3 },
    [M_A1K_CLOSE]    = { "append_1k_close_ms", NULL, "close ms", 3 },
    [M_B100_RECS]    = { "batch_100b_records_per_s", "append_batch 1000 x 100 B", "records/s", 0 },
    [M_B100_MBPS]    = { "batch_100b_mbps", NULL, "MB/s (values)", 1 },
    [M_B100_OPEN]    = { "batch_100b_create_ms", NULL, "create ms", 3 },
    [M_B100_CLOSE]   = { "batch_100b_close_ms", NULL, "close ms", 3 },
    [M_B1K_RECS]     = { "batch_1k_records_per_s", "append_batch 1000 x 1 KiB", "records/s", 0 },
    [M_B1K_MBPS]     = { "batch_1k_mbps", NULL, "MB/s (values)", 1 },
    [M_B1K_OPEN]     = { "batch_1k_create_ms", NULL, "create ms", 3 },
    [M_B1K_CLOSE]    = { "batch_1k_close_ms", NULL, "close ms", 3 },
    [M_SCAN_RECS]    = { "cursor_scan_records_per_s", "cursor scan, 100 B topic", "records/s", 0 },
    [M_SCAN_MBPS]    = { "cursor_scan_mbps", NULL, "MB/s (log)", 1 },
    [M_RAND_READS]   = { "random_read_per_s", "topic_read random 100 B", "reads/s", 0 },
    [M_REOPEN_MS]    = { "reopen_open_ms", "reopen (clean) topic_open", "ms", 3 },
    [M_REOPEN_CLOSE_MS] = { "reopen_close_ms", NULL, "close ms", 3 },
};

static double *g_vals[M_COUNT];
static int g_nvals[M_COUNT];

static void record(int m, double v)
{
    if (!g_vals[m])
        g_vals[m] = xmalloc(sizeof(double) * MAX_RUNS);
    if (g_nvals[m] < MAX_RUNS)
        g_vals[m][g_nvals[m]++] = v;
}

static bool have(int m)
{
    return g_nvals[m] > 0;
}

static double median_of(int m)
{
    int n = g_nvals[m];
    double tmp[MAX_RUNS];
    memcpy(tmp, g_vals[m], sizeof(double) * (size_t)n);
    qsort(tmp, (size_t)n, sizeof(double), cmp_double);
    return n % 2 ? tmp[n / 2] : (tmp[n / 2 - 1] + tmp[n / 2]) / 2;
}

static double min_of(int m)
{
    double v = g_vals[m][0];
    for (int i = 1; i < g_nvals[m]; i++)
        if (g_vals[m][i] < v)
            v = g_vals[m][i];
    return v;
}

static double max_of(int m)
{
    double v = g_vals[m][0];
    for (int i = 1; i < g_nvals[m]; i++)
        if (g_vals[m][i] > v)
            v = g_vals[m][i];
    return v;
}

/* ------------------------------------------------------------------------ */
/* Options                                                                   */

static const char *const workload_names[] = {
    "write", "memcpy", "readscan", "append100", "append1k",
    "batch100", "batch1k", "scan", "random", "reopen", NULL
};

struct opts {
    int runs;
    uint64_t records;     /* 100 B records per append workload */
    const char *dir;
    const char *only;
};

static void usage(FILE *f)
{
    fprintf(f,
        "usage: bench [--runs N] [--records N] [--dir PATH] [--only NAME] [--json]\n"
        "  --runs N     measure every workload N times (default %d); report median, min, max\n"
        "  --records N  100 B records per append workload (default %llu); the 1 KiB\n"
        "               workloads append N/10 records; the read topic holds N/6 records,\n"
        "               scanned 6 times per run and read N/6 times at random per run\n"
        "  --dir PATH   scratch directory (default: a fresh mkdtemp under /tmp, removed)\n"
        "  --only NAME  run one workload: write memcpy readscan append100 append1k\n"
        "               batch100 batch1k scan random reopen\n"
        "  --json       print a JSON object with every median on stdout (table -> stderr)\n",
        DEFAULT_RUNS, (unsigned long long)DEFAULT_RECORDS);
}

static bool selected(const struct opts *o, const char *name)
{
    return !o->only || strcmp(o->only, name) == 0;
}

static const char *opt_value(int argc, char **argv, int *i, const char *name)
{
    size_t n = strlen(name);
    if (strncmp(argv[*i], name, n) == 0 && argv[*i][n] == '=')
        return argv[*i] + n + 1;
    if (strcmp(argv[*i], name) == 0) {
        if (*i + 1 >= argc)
            die("%s needs a value", name);
        return argv[++*i];
    }
    return NULL;
}

static uint64_t parse_u64(const char *s, const char *name)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || end == s || *end || v == 0 || s[0] == '-')
        die("%s: expected a positive integer, got '%s'", name, s);
    return v;
}

static void parse_opts(int argc, char **argv, struct opts *o)
{
    o->runs = DEFAULT_RUNS;
    o->records = DEFAULT_RECORDS;
    o->dir = NULL;
    o->only = NULL;
    for (int i = 1; i < argc; i++) {
        const char *v;
        if ((v = opt_value(argc, argv, &i, "--runs"))) {
            uint64_t r = parse_u64(v, "--runs");
            if (r > MAX_RUNS)
                die("--runs: at most %d", MAX_RUNS);
            o->runs = (int)r;
        } else if ((v = opt_value(argc, argv, &i, "--records"))) {
            o->records = parse_u64(v, "--records");
            if (o->records < 10 || o->records > (1ull << 34))
                die("--records: between 10 and 2^34");
        } else if ((v = opt_value(argc, argv, &i, "--dir"))) {
            o->dir = v;
        } else if ((v = opt_value(argc, argv, &i, "--only"))) {
            bool ok = false;
            for (int k = 0; workload_names[k]; k++)
                ok |= strcmp(v, workload_names[k]) == 0;
            if (!ok)
                die("--only: unknown workload '%s' (see --help)", v);
            o->only = v;
        } else if (strcmp(argv[i], "--json") == 0) {
            g_json = true;
        } else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            usage(stdout);
            exit(0);
        } else {
            usage(stderr);
            die("unknown argument '%s'", argv[i]);
        }
    }
}

/* ------------------------------------------------------------------------ */
/* Baselines                                                                 */

/* write() `total` bytes in 64 KiB chunks to a fresh file; no fsync. */
static double bench_write(const char *path, uint64_t total)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd < 0)
        die("open %s: %s", path, strerror(errno));
    double t0 = now_sec();
    uint64_t done = 0;
    while (done < total) {
        size_t n = total - done < CHUNK ? (size_t)(total - done) : CHUNK;
        ssize_t w = write(fd, g_pat, n);
        if (w <= 0)
            die("write %s: %s", path, w < 0 ? strerror(errno) : "short write");
        done += (uint64_t)w;
    }
    double t1 = now_sec();
    if (close(fd) != 0)
        die("close %s: %s", path, strerror(errno));
    if (unlink(path) != 0)
        die("unlink %s: %s", path, strerror(errno));
    return t1 - t0;
}

/* memcpy `total` bytes in 64 KiB chunks into a 32 MiB ring. */
static double bench_memcpy(uint64_t total)
{
    size_t pos = 0;
    double t0 = now_sec();
    uint64_t done = 0;
    while (done < total) {
        size_t n = total - done < CHUNK ? (size_t)(total - done) : CHUNK;
        memcpy(g_memcpy_dst + pos, g_pat, n);
        pos += CHUNK;
        if (pos + CHUNK > MEMCPY_DST)
            pos = 0;
        done += n;
    }
    double t1 = now_sec();
    g_sink += g_memcpy_dst[(size_t)(total % MEMCPY_DST) / 2];
    return t1 - t0;
}

/* The *.log files of a topic, with the bytes that hold data. */
struct logfiles {
    size_t n;
    char **paths;
    uint64_t *data_len;       /* up to and including the last non-zero byte */
    uint64_t file_bytes;      /* sum of st_size */
    uint64_t data_bytes;      /* sum of data_len */
};

/*
 * Segment files are preallocated; whether the library trims the active one
 * at close is its business.  The read() baseline and the scan's MB/s count
 * the bytes up to the last non-zero byte of each file (found once, untimed),
 * so that neither is credited for reading preallocated zeros.
 */
static uint64_t find_data_len(const char *path, uint64_t size)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        die("open %s: %s", path, strerror(errno));
    unsigned char *buf = xmalloc(CHUNK);
    uint64_t end = size, found = 0;
    while (end > 0 && !found) {
        size_t n = end < CHUNK ? (size_t)end : CHUNK;
        uint64_t at = end - n;
        ssize_t r = pread(fd, buf, n, (off_t)at);
        if (r != (ssize_t)n)
            die("pread %s: %s", path, r < 0 ? strerror(errno) : "short read");
        for (size_t k = n; k > 0; k--)
            if (buf[k - 1]) {
                found = at + k;
                break;
            }
        end = at;
    }
    free(buf);
    close(fd);
    return found;
}

static void list_logs(const char *dir, struct logfiles *lf)
{
    DIR *d = opendir(dir);
    if (!d)
        die("opendir %s: %s", dir, strerror(errno));
    size_t cap = 16;
    memset(lf, 0, sizeof(*lf));
    lf->paths = xmalloc(cap * sizeof(char *));
    struct dirent *e;
    while ((e = readdir(d))) {
        size_t l = strlen(e->d_name);
        if (l <= 4 || strcmp(e->d_name + l - 4, ".log") != 0)
            continue;
        if (lf->n == cap) {
            cap *= 2;
            char **np = realloc(lf->paths, cap * sizeof(char *));
            if (!np)
                die("out of memory");
            lf->paths = np;
        }
        lf->paths[lf->n++] = path_join(dir, e->d_name);
    }
    closedir(d);
    if (lf->n == 0)
        die("no *.log segment files in %s: cannot run the read() baseline", dir);
    qsort(lf->paths, lf->n, sizeof(char *), cmp_str);
    lf->data_len = xmalloc(lf->n * sizeof(uint64_t));
    for (size_t i = 0; i < lf->n; i++) {
        struct stat st;
        if (stat(lf->paths[i], &st) != 0)
            die("stat %s: %s", lf->paths[i], strerror(errno));
        lf->file_bytes += (uint64_t)st.st_size;
        lf->data_len[i] = find_data_len(lf->paths[i], (uint64_t)st.st_size);
        lf->data_bytes += lf->data_len[i];
    }
}

/* Number and total st_size of the *.log files in dir (cheap: no reading). */
static void count_logs(const char *dir, size_t *n, uint64_t *bytes)
{
    DIR *d = opendir(dir);
    if (!d)
        die("opendir %s: %s", dir, strerror(errno));
    *n = 0;
    *bytes = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        size_t l = strlen(e->d_name);
        if (l <= 4 || strcmp(e->d_name + l - 4, ".log") != 0)
            continue;
        struct stat st;
        if (fstatat(dirfd(d), e->d_name, &st, 0) != 0)
            die("stat %s/%s: %s", dir, e->d_name, strerror(errno));
        (*n)++;
        *bytes += (uint64_t)st.st_size;
    }
    closedir(d);
}

static void free_logs(struct logfiles *lf)
{
    for (size_t i = 0; i < lf->n; i++)
        free(lf->paths[i]);
    free(lf->paths);
    free(lf->data_len);
}

/* read() every log file's data bytes in 64 KiB chunks, `passes` times. */
static double bench_read_scan(const struct logfiles *lf, unsigned char *buf, int passes)
{
    uint64_t x = 0;
    double t0 = now_sec();
    for (size_t k = 0; k < (size_t)passes * lf->n; k++) {
        size_t i = k % lf->n;
        int fd = open(lf->paths[i], O_RDONLY | O_CLOEXEC);
        if (fd < 0)
            die("open %s: %s", lf->paths[i], strerror(errno));
        uint64_t left = lf->data_len[i];
        while (left > 0) {
            size_t n = left < CHUNK ? (size_t)left : CHUNK;
            ssize_t r = read(fd, buf, n);
            if (r <= 0)
                die("read %s: %s", lf->paths[i], r < 0 ? strerror(errno) : "unexpected EOF");
            x += buf[0];
            left -= (uint64_t)r;
        }
        close(fd);
    }
    double t1 = now_sec();
    g_sink += x;
    return t1 - t0;
}

/* ------------------------------------------------------------------------ */
/* Appends                                                                   */

struct append_result {
    double create_s;  /* topic_open(TOPIC_CREATE|TOPIC_EXCL), untimed part */
    double append_s;  /* the appends: the timed part */
    double close_s;   /* topic_close (durable: syncs), reported apart */
};

/* One topic_append per record on a fresh topic in `dir`. */
static void bench_append(const char *dir, uint64_t n, size_t len, struct append_result *res)
{
    topic *t = NULL;
    double t0 = now_sec();
    TCHECK(topic_open(dir, TOPIC_CREATE | TOPIC_EXCL, NULL, &t));
    double t1 = now_sec();
    for (uint64_t i = 0; i < n; i++) {
        uint64_t off;
        int rc = topic_append(t, g_pat + value_pos(i), len, &off);
        if (rc != 0)
            die("topic_append #%" PRIu64 ": %s (%d)", i, topic_strerror(rc), rc);
        if (off != i)
            die("topic_append #%" PRIu64 " got offset %" PRIu64, i, off);
    }
    double t2 = now_sec();
    if (topic_end_offset(t) != n)
        die("end offset %" PRIu64 " after %" PRIu64 " appends", topic_end_offset(t), n);
    double t3 = now_sec();
    TCHECK(topic_close(t));
    double t4 = now_sec();
    res->create_s = t1 - t0;
    res->append_s = t2 - t1;
    res->close_s = t4 - t3;
}

static topic_record g_recs[BATCH_N];

/* topic_append_batch of BATCH_N records per call on a fresh topic. */
static void bench_batch(const char *dir, uint64_t n, size_t len, struct append_result *res)
{
    topic *t = NULL;
    double t0 = now_sec();
    TCHECK(topic_open(dir, TOPIC_CREATE | TOPIC_EXCL, NULL, &t));
    double t1 = now_sec();
    for (uint64_t base = 0; base < n; base += BATCH_N) {
        size_t k = n - base < BATCH_N ? (size_t)(n - base) : BATCH_N;
        for (size_t j = 0; j < k; j++) {
            g_recs[j].offset = 0;
            g_recs[j].timestamp = 0;
            g_recs[j].key = NULL;
            g_recs[j].key_len = 0;
            g_recs[j].value = g_pat + value_pos(base + j);
            g_recs[j].value_len = len;
        }
        uint64_t first;
        int rc = topic_append_batch(t, g_recs, k, &first);
        if (rc != 0)
            die("topic_append_batch at %" PRIu64 ": %s (%d)", base, topic_strerror(rc), rc);
        if (first != base)
            die("topic_append_batch at %" PRIu64 " got first offset %" PRIu64, base, first);
    }
    double t2 = now_sec();
    if (topic_end_offset(t) != n)
        die("end offset %" PRIu64 " after %" PRIu64 " batched records",
            topic_end_offset(t), n);
    double t3 = now_sec();
    TCHECK(topic_close(t));
    double t4 = now_sec();
    res->create_s = t1 - t0;
    res->append_s = t2 - t1;
    res->close_s = t4 - t3;
}

/* ------------------------------------------------------------------------ */
/* Reads                                                                     */

static inline void check_value(const unsigned char *v, size_t vlen, uint64_t off,
                               size_t len, const char *what)
{
    const unsigned char *want = g_pat + value_pos(off);
    if (vlen != len || v[0] != want[0] || v[len - 1] != want[len - 1])
        die("%s: record %" PRIu64 " has the wrong value (len %zu, want %zu)",
            what, off, vlen, len);
}

/* Full comparison of a few records, untimed: the timed loops check 2 bytes. */
static void verify_sample(topic *t, uint64_t n, size_t len)
{
    unsigned char buf[LARGE_LEN];
    uint64_t s = 42;
    for (int k = 0; k < 1000; k++) {
        uint64_t off = k == 0 ? 0 : k == 1 ? n - 1 : splitmix64(&s) % n;
        size_t got = 0;
        TCHECK(topic_read(t, off, buf, sizeof(buf), &got));
        if (got != len || memcmp(buf, g_pat + value_pos(off), len) != 0)
            die("topic_read(%" PRIu64 ") returned the wrong value", off);
    }
    size_t need = 0;
    int rc = topic_read(t, n, buf, sizeof(buf), &need);
    if (rc != TOPIC_END)
        die("topic_read(end offset) returned %d (%s), want TOPIC_END", rc, topic_strerror(rc));
}

/* One cursor from 0 to TOPIC_END, touching every value. */
static uint64_t scan_pass(topic *t, uint64_t n, size_t len)
{
    topic_cursor *c = NULL;
    uint64_t i = 0, sum = 0;
    TCHECK(topic_cursor_open(t, 0, &c));
    for (;;) {
        topic_record rec;
        int rc = topic_cursor_next(c, &rec);
        if (rc == TOPIC_END)
            break;
        if (rc != 0)
            die("topic_cursor_next at %" PRIu64 ": %s (%d)", i, topic_strerror(rc), rc);
        if (rec.offset != i)
            die("cursor returned offset %" PRIu64 ", want %" PRIu64, rec.offset, i);
        const unsigned char *v = rec.value;
        check_value(v, rec.value_len, i, len, "cursor scan");
        sum += v[0];
        i++;
    }
    topic_cursor_close(c);
    if (i != n)
        die("cursor scan saw %" PRIu64 " records, %" PRIu64 " were appended", i, n);
    return sum;
}

static double bench_scan(topic *t, uint64_t n, size_t len, int passes)
{
    uint64_t sum = 0;
    double t0 = now_sec();
    for (int p = 0; p < passes; p++)
        sum += scan_pass(t, n, len);
    double t1 = now_sec();
    g_sink += sum;
    return t1 - t0;
}

/* `q` topic_read calls at uniformly random offsets in [0, n). */
static double bench_random(topic *t, uint64_t n, uint64_t q, size_t len, uint64_t seed)
{
    unsigned char buf[256];
    uint64_t s = seed, sum = 0;
    double t0 = now_sec();
    for (uint64_t k = 0; k < q; k++) {
        uint64_t off = splitmix64(&s) % n;
        size_t got = 0;
        int rc = topic_read(t, off, buf, sizeof(buf), &got);
        if (rc != 0)
            die("topic_read(%" PRIu64 "): %s (%d)", off, topic_strerror(rc), rc);
        check_value(buf, got, off, len, "topic_read");
        sum += buf[0];
    }
    double t1 = now_sec();
    g_sink += sum;
    return t1 - t0;
}

/* ------------------------------------------------------------------------ */
/* Output                                                                    */

static void fmt_num(char *buf, size_t cap, double v, int decimals)
{
    if (decimals == 0) {
        /* thousands separators for the big counts */
        char raw[64];
        snprintf(raw, sizeof(raw), "%.0f", v);
        size_t l = strlen(raw), o = 0;
        for (size_t i = 0; i < l && o + 2 < cap; i++) {
            buf[o++] = raw[i];
            size_t rest = l - i - 1;
            if (rest > 0 && rest % 3 == 0 && raw[i] != '-')
                buf[o++] = ',';
        }
        buf[o] = 0;
    } else {
        snprintf(buf, cap, "%.*f", decimals, v);
    }
}

static void print_table(void)
{
    fprintf(g_out, "%-28s %-14s %14s %14s %14s\n", "workload", "unit", "median", "min", "max");
    fprintf(g_out, "%-28s %-14s %14s %14s %14s\n", "--------", "----", "------", "---", "---");
    const char *row = "";
    for (int m = 0; m < M_COUNT; m++) {
        if (mdefs[m].row)
            row = mdefs[m].row;
        if (!have(m))
            continue;
        char a[32], b[32], c[32];
        fmt_num(a, sizeof(a), median_of(m), mdefs[m].decimals);
        fmt_num(b, sizeof(b), min_of(m), mdefs[m].decimals);
        fmt_num(c, sizeof(c), max_of(m), mdefs[m].decimals);
        fprintf(g_out, "%-28s %-14s %14s %14s %14s\n", mdefs[m].row ? row : "",
                mdefs[m].unit, a, b, c);
    }
}

struct ratio {
    const char *key;
    const char *label;
    int num, den;     /* metric ids; den < 0: the numerator's median itself */
    int decimals;
};

static const struct ratio ratios[] = {
    { "append_100b_vs_write", "append 100 B   MB/s(values) / write() MB/s", M_A100_MBPS, M_WRITE_MBPS, 3 },
    { "append_1k_vs_write", "append 1 KiB   MB/s(values) / write() MB/s", M_A1K_MBPS, M_WRITE_MBPS, 3 },
    { "batch_100b_vs_write", "batch 1000x100B MB/s(values) / write() MB/s", M_B100_MBPS, M_WRITE_MBPS, 3 },
    { "batch_1k_vs_write", "batch 1000x1KiB MB/s(values) / write() MB/s", M_B1K_MBPS, M_WRITE_MBPS, 3 },
    { "append_100b_vs_memcpy", "append 100 B   MB/s(values) / memcpy MB/s", M_A100_MBPS, M_MEMCPY_MBPS, 4 },
    { "scan_vs_read_scan", "cursor scan MB/s(log) / read() scan MB/s(log)", M_SCAN_MBPS, M_RSCAN_MBPS, 3 },
    { "random_read_per_s", "random topic_read, reads/s", M_RAND_READS, -1, 0 },
    { "reopen_ms", "reopen: topic_open after clean close, ms", M_REOPEN_MS, -1, 3 },
};
#define N_RATIOS (sizeof(ratios) / sizeof(ratios[0]))

static bool ratio_value(const struct ratio *r, double *out)
{
    if (!have(r->num) || (r->den >= 0 && !have(r->den)))
        return false;
    double n = median_of(r->num);
    if (r->den < 0) {
        *out = n;
        return true;
    }
    double d = median_of(r->den);
    if (d <= 0)
        return false;
    *out = n / d;
    return true;
}

static void print_ratios(void)
{
    bool any = false;
    for (size_t i = 0; i < N_RATIOS; i++) {
        double v;
        if (!ratio_value(&ratios[i], &v))
            continue;
        if (!any)
            fprintf(g_out, "\nsummary (from the medians above)\n");
        any = true;
        char buf[32];
        fmt_num(buf, sizeof(buf), v, ratios[i].decimals);
        fprintf(g_out, "  %-48s %14s\n", ratios[i].label, buf);
    }
}

static void json_series(const char *name, double (*fn)(int), bool last)
{
    printf("  \"%s\": {", name);
    bool first = true;
    for (int m = 0; m < M_COUNT; m++) {
        if (!have(m))
            continue;
        printf("%s\n    \"%s\": %.6g", first ? "" : ",", mdefs[m].key, fn(m));
        first = false;
    }
    printf("\n  }%s\n", last ? "" : ",");
}

static void print_json(const struct opts *o, uint64_t n100, uint64_t n1k, uint64_t nread,
                       uint64_t nrand, const struct logfiles *lf)
{
    printf("{\n");
    printf("  \"libtopic_version\": \"%s\",\n", topic_version());
    printf("  \"runs\": %d,\n", o->runs);
    printf("  \"records_100b\": %" PRIu64 ",\n", n100);
    printf("  \"records_1k\": %" PRIu64 ",\n", n1k);
    printf("  \"read_topic_records\": %" PRIu64 ",\n", nread);
    printf("  \"random_reads_per_run\": %" PRIu64 ",\n", nrand);
    printf("  \"scan_passes_per_run\": %d,\n", READ_DIVISOR);
    if (lf && lf->n) {
        printf("  \"read_topic_log_files\": %zu,\n", lf->n);
        printf("  \"read_topic_log_file_bytes\": %" PRIu64 ",\n", lf->file_bytes);
        printf("  \"read_topic_log_data_bytes\": %" PRIu64 ",\n", lf->data_bytes);
    }
    printf("  \"only\": %s%s%s,\n", o->only ? "\"" : "", o->only ? o->only : "null",
           o->only ? "\"" : "");
    json_series("median", median_of, false);
    json_series("min", min_of, false);
    json_series("max", max_of, false);
    printf("  \"ratios\": {");
    bool first = true;
    for (size_t i = 0; i < N_RATIOS; i++) {
        double v;
        if (!ratio_value(&ratios[i], &v))
            continue;
        printf("%s\n    \"%s\": %.6g", first ? "" : ",", ratios[i].key, v);
        first = false;
    }
    printf("\n  }\n}\n");
}

/* ------------------------------------------------------------------------ */

static void progress(const char *name, int run, int runs, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void progress(const char *name, int run, int runs, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "  %-10s run %d/%d: ", name, run + 1, runs);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

struct append_workload {
    const char *name;
    int metric;           /* first of its 4 metrics */
    bool batch;
    size_t len;
};

static void run_append_workload(const struct opts *o, const char *scratch,
                                const struct append_workload *w, uint64_t n)
{
    for (int r = 0; r < o->runs; r++) {
        char sub[64];
        snprintf(sub, sizeof(sub), "%s-%d", w->name, r);
        char *dir = path_join(scratch, sub);
        struct append_result res;
        if (w->batch)
            bench_batch(dir, n, w->len, &res);
        else
            bench_append(dir, n, w->len, &res);
        double recs = (double)n / res.append_s;
        double mbps = (double)n * (double)w->len / res.append_s / MB;
        record(w->metric + 0, recs);
        record(w->metric + 1, mbps);
        record(w->metric + 2, res.create_s * 1e3);
        record(w->metric + 3, res.close_s * 1e3);
        size_t nseg;
        uint64_t logb;
        count_logs(dir, &nseg, &logb);
        progress(w->name, r, o->runs, "%.0f records/s, %.1f MB/s, close %.1f ms; "
                 "%zu segment(s), %.1f MB of *.log", recs, mbps, res.close_s * 1e3,
                 nseg, (double)logb / MB);
        rm_rf(dir);
        free(dir);
    }
}

int main(int argc, char **argv)
{
    struct opts o;
    parse_opts(argc, argv, &o);
    g_out = g_json ? stderr : stdout;

    const uint64_t n100 = o.records;              /* 100 B records per append run */
    const uint64_t n1k = o.records / 10;          /* 1 KiB records: about the same bytes */
    const uint64_t nread = o.records / READ_DIVISOR;   /* the read / reopen topic */
    const uint64_t nrand = nread;                 /* topic_read calls per run */
    const int passes = READ_DIVISOR;              /* scans of the read topic per run */
    const uint64_t base_bytes = n100 * SMALL_LEN; /* write()/memcpy baseline volume */

    /* The pattern every value is cut from. */
    g_pat = xmalloc(PAT_SIZE);
    uint64_t s = 0x5eed;
    for (size_t i = 0; i < PAT_SIZE; i += 8) {
        uint64_t x = splitmix64(&s);
        memcpy(g_pat + i, &x, 8);
    }

    /* Scratch directory. */
    char *scratch;
    if (o.dir) {
        if (mkdir(o.dir, 0755) != 0 && errno != EEXIST)
            die("mkdir %s: %s", o.dir, strerror(errno));
        char tmpl[] = "bench-XXXXXX";
        char *t = path_join(o.dir, tmpl);
        if (!mkdtemp(t))
            die("mkdtemp %s: %s", t, strerror(errno));
        scratch = t;
    } else {
        char tmpl[] = "/tmp/libtopic-bench-XXXXXX";
        if (!mkdtemp(tmpl))
            die("mkdtemp %s: %s", tmpl, strerror(errno));
        scratch = strdup(tmpl);
        if (!scratch)
            die("out of memory");
    }
    /* Either way the scratch directory is removed at the end; --dir keeps PATH. */
    g_scratch = scratch;

    struct utsname un;
    uname(&un);
    fprintf(g_out, "libtopic %s benchmark: %d runs, %s %s, %ld CPUs, scratch %s\n",
            topic_version(), o.runs, un.sysname, un.release, sysconf(_SC_NPROCESSORS_ONLN),
            scratch);
    fprintf(g_out, "append workloads: %" PRIu64 " x 100 B and %" PRIu64
            " x 1 KiB values per run, each on a fresh topic (default config);\n"
            "  timed: the appends only (topic_open and the durable topic_close are reported apart)\n"
            "baselines: %" PRIu64 " bytes (= the 100 B value bytes); MB = 10^6 bytes\n",
            n100, n1k, base_bytes);
    fflush(g_out);

    /* ---- baselines that need no topic ---- */
    if (selected(&o, "write")) {
        char *p = path_join(scratch, "write.bin");
        for (int r = 0; r < o.runs; r++) {
            double t = bench_write(p, base_bytes);
            record(M_WRITE_MBPS, (double)base_bytes / t / MB);
            progress("write", r, o.runs, "%.1f MB/s", (double)base_bytes / t / MB);
        }
        free(p);
    }
    if (selected(&o, "memcpy")) {
        g_memcpy_dst = xmalloc(MEMCPY_DST);
        memset(g_memcpy_dst, 1, MEMCPY_DST);   /* fault it in, untimed */
        for (int r = 0; r < o.runs; r++) {
            double t = bench_memcpy(base_bytes);
            record(M_MEMCPY_MBPS, (double)base_bytes / t / MB);
            progress("memcpy", r, o.runs, "%.1f MB/s", (double)base_bytes / t / MB);
        }
        free(g_memcpy_dst);
        g_memcpy_dst = NULL;
    }

    /* ---- appends, each run on a fresh topic ---- */
    static const struct append_workload aw[] = {
        { "append100", M_A100_RECS, false, SMALL_LEN },
        { "append1k", M_A1K_RECS, false, LARGE_LEN },
        { "batch100", M_B100_RECS, true, SMALL_LEN },
        { "batch1k", M_B1K_RECS, true, LARGE_LEN },
    };
    for (size_t i = 0; i < sizeof(aw) / sizeof(aw[0]); i++)
        if (selected(&o, aw[i].name))
            run_append_workload(&o, scratch, &aw[i],
                                aw[i].len == SMALL_LEN ? n100 : n1k);

    /* ---- reads: one topic of 2N x 100 B records, one topic_append each ---- */
    struct logfiles lf;
    memset(&lf, 0, sizeof(lf));
    bool reads = selected(&o, "readscan") || selected(&o, "scan") ||
                 selected(&o, "random") || selected(&o, "reopen");
    if (reads) {
        char *rdir = path_join(scratch, "read-topic");
        struct append_result res;
        fprintf(stderr, "  building the read topic: %" PRIu64 " x 100 B records ...\n", nread);
        bench_append(rdir, nread, SMALL_LEN, &res);
        fprintf(stderr, "  built in %.2f s (appends) + %.1f ms (close)\n",
                res.append_s, res.close_s * 1e3);
        list_logs(rdir, &lf);
        fprintf(g_out, "read topic: %" PRIu64 " x 100 B records in %zu *.log file(s): "
                "%.1f MB on disk (st_size), %.1f MB of data = %.1f bytes/record;\n"
                "  scans: %d passes per run; random reads: %" PRIu64 " per run\n",
                nread, lf.n, (double)lf.file_bytes / MB, (double)lf.data_bytes / MB,
                (double)lf.data_bytes / (double)nread, passes, nrand);
        fflush(g_out);

        if (selected(&o, "readscan")) {
            unsigned char *buf = xmalloc(CHUNK);
            for (int r = 0; r < o.runs; r++) {
                double t = bench_read_scan(&lf, buf, passes) / passes;
                record(M_RSCAN_MBPS, (double)lf.data_bytes / t / MB);
                record(M_RSCAN_RECS, (double)nread / t);
                progress("readscan", r, o.runs, "%.1f MB/s", (double)lf.data_bytes / t / MB);
            }
            free(buf);
        }

        if (selected(&o, "scan") || selected(&o, "random")) {
            topic *t = NULL;
            TCHECK(topic_open(rdir, 0, NULL, &t));
            if (topic_end_offset(t) != nread || topic_start_offset(t) != 0)
                die("read topic reopened with offsets [%" PRIu64 ", %" PRIu64 "), want [0, %"
                    PRIu64 ")", topic_start_offset(t), topic_end_offset(t), nread);
            verify_sample(t, nread, SMALL_LEN);
            if (selected(&o, "scan")) {
                for (int r = 0; r < o.runs; r++) {
                    double el = bench_scan(t, nread, SMALL_LEN, passes) / passes;
                    record(M_SCAN_RECS, (double)nread / el);
                    record(M_SCAN_MBPS, (double)lf.data_bytes / el / MB);
                    progress("scan", r, o.runs, "%.0f records/s, %.1f MB/s",
                             (double)nread / el, (double)lf.data_bytes / el / MB);
                }
            }
            if (selected(&o, "random")) {
                for (int r = 0; r < o.runs; r++) {
                    double el = bench_random(t, nread, nrand, SMALL_LEN, 1000 + (uint64_t)r);
                    record(M_RAND_READS, (double)nrand / el);
                    progress("random", r, o.runs, "%.0f reads/s", (double)nrand / el);
                }
            }
            TCHECK(topic_close(t));
        }

        if (selected(&o, "reopen")) {
            for (int r = 0; r < o.runs; r++) {
                topic *t = NULL;
                double t0 = now_sec();
                TCHECK(topic_open(rdir, 0, NULL, &t));
                double t1 = now_sec();
                if (topic_end_offset(t) != nread)
                    die("reopened topic has end offset %" PRIu64 ", want %" PRIu64,
                        topic_end_offset(t), nread);
                unsigned char buf[SMALL_LEN];
                size_t got = 0;
                TCHECK(topic_read(t, nread - 1, buf, sizeof(buf), &got));
                check_value(buf, got, nread - 1, SMALL_LEN, "reopen");
                double t2 = now_sec();
                TCHECK(topic_close(t));
                double t3 = now_sec();
                record(M_REOPEN_MS, (t1 - t0) * 1e3);
                record(M_REOPEN_CLOSE_MS, (t3 - t2) * 1e3);
                progress("reopen", r, o.runs, "open %.3f ms, close %.3f ms",
                         (t1 - t0) * 1e3, (t3 - t2) * 1e3);
            }
        }
        rm_rf(rdir);
        free(rdir);
    }

    fprintf(g_out, "\n");
    print_table();
    print_ratios();
    fflush(g_out);
    if (g_json)
        print_json(&o, n100, n1k, nread, nrand, reads ? &lf : NULL);
    fflush(stdout);

    free_logs(&lf);
    g_scratch = NULL;
    rm_rf(scratch);
    free(scratch);
    free(g_pat);
    for (int m = 0; m < M_COUNT; m++)
        free(g_vals[m]);
    return 0;
}
