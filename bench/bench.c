/*
 * bench/bench.c: the libtopic benchmark.
 *
 * Measures, in one process, every workload `--runs` times and prints the
 * median, min and max of each, next to baselines (write(), memcpy, read(),
 * pwrite()+fdatasync()) measured on the same machine in the same run, and
 * ratios computed from the medians.  Besides throughput it measures durable
 * appends (flush.messages=1, from 1 and 4 threads), the wake-up latency of
 * topic_wait (same process and other process), lz4 compression and
 * topic_commit.  See bench/README.md for what each row means.
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
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/utsname.h>
#include <sys/wait.h>
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
 * run crosses exactly one roll of the default 1 GiB segment, and the flusher
 * syncs the sealed segment while the appends go on, as a long-running
 * writer's would.  (Runs used to last longer than the default flush.ms, 1 s,
 * as well; faster appends now take 0.2-1.4 s, see bench/README.md.)
 */
#define DEFAULT_RECORDS 12000000ull
#define READ_DIVISOR  6                   /* read topic = records / 6 = 2,000,000 */
#define DEFAULT_RUNS  5
#define MAX_RUNS      1000
/*
 * Durable appends (flush.messages=1): each run appends for DURABLE_SECONDS
 * (in DURABLE_SLICES turns) or DURABLE_MAX appends per thread, whichever
 * comes first, after DURABLE_WARMUP untimed appends.  A run is thus ~1.5 s
 * per workload on any disk: a few hundred to a few thousand fdatasyncs.
 */
#define DURABLE_SECONDS 1.5
#define DURABLE_MAX     20000
#define DURABLE_WARMUP  10
#define DURABLE_THREADS 4
#define DURABLE_SLICES  6                 /* interleaved turns per workload per run */
#define WAKE_SAMPLES    2000              /* wake-up latency samples per run and mode */
#define WAKE_GAP_US     200               /* writer sleeps this long between appends */
#define WAIT_TIMEOUT_MS 10000             /* no sample may take this long: fail */
#define JSON_SLOTS      4093              /* distinct JSON-like values for lz4 */
#define LZ4_PASSES      3                 /* cursor scans per lz4/none topic per run */
#define COMMIT_SECONDS  1.5               /* topic_commit loop per run: crosses flush.ms */

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
    M_REOPEN_MS, M_REOPEN_CLOSE_MS, M_REOPEN_RO_MS,
    /* durable1 and durable4: 5 metrics each, in this order */
    M_D1_OPS, M_D1_P50, M_D1_P99, M_D1_PER_SYNC, M_D1_VS_PW,
    M_PWS_OPS, M_PWS_P50, M_PWS_P99,
    M_D4_OPS, M_D4_P50, M_D4_P99, M_D4_PER_SYNC, M_D4_VS_D1,
    M_WAKE_T_P50, M_WAKE_T_P99,
    M_WAKE_P_P50, M_WAKE_P_P99,
    M_LZ4_MBPS, M_LZ4_BPR, M_LZ4_SCAN,
    M_RAW_MBPS, M_RAW_BPR, M_RAW_SCAN,
    M_COMMIT,
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
    [M_REOPEN_RO_MS] = { "reopen_rdonly_open_ms", NULL, "TOPIC_RDONLY ms", 3 },
    [M_D1_OPS]       = { "durable1_ops_per_s", "durable1: append, 1 thread", "ops/s", 0 },
    [M_D1_P50]       = { "durable1_p50_us", NULL, "p50 us", 1 },
    [M_D1_P99]       = { "durable1_p99_us", NULL, "p99 us", 1 },
    [M_D1_PER_SYNC]  = { "durable1_appends_per_fdatasync", NULL, "appends/fsync", 2 },
    [M_D1_VS_PW]     = { "durable1_vs_pwrite_same_run", NULL, "x pwrite (run)", 3 },
    [M_PWS_OPS]      = { "pwrite_fdatasync_ops_per_s", "pwrite+fdatasync baseline", "ops/s", 0 },
    [M_PWS_P50]      = { "pwrite_fdatasync_p50_us", NULL, "p50 us", 1 },
    [M_PWS_P99]      = { "pwrite_fdatasync_p99_us", NULL, "p99 us", 1 },
    [M_D4_OPS]       = { "durable4_ops_per_s", "durable4: append, 4 threads", "ops/s", 0 },
    [M_D4_P50]       = { "durable4_p50_us", NULL, "p50 us", 1 },
    [M_D4_P99]       = { "durable4_p99_us", NULL, "p99 us", 1 },
    [M_D4_PER_SYNC]  = { "durable4_appends_per_fdatasync", NULL, "appends/fsync", 2 },
    [M_D4_VS_D1]     = { "durable4_vs_durable1_same_run", NULL, "x durable1 (run)", 2 },
    [M_WAKE_T_P50]   = { "wake_thread_p50_us", "wake: same process", "p50 us", 1 },
    [M_WAKE_T_P99]   = { "wake_thread_p99_us", NULL, "p99 us", 1 },
    [M_WAKE_P_P50]   = { "wake_process_p50_us", "wake: other process", "p50 us", 1 },
    [M_WAKE_P_P99]   = { "wake_process_p99_us", NULL, "p99 us", 1 },
    [M_LZ4_MBPS]     = { "lz4_batch_mbps", "batch 1000x100B JSON, lz4", "MB/s (values)", 1 },
    [M_LZ4_BPR]      = { "lz4_bytes_per_record", NULL, "B/record disk", 1 },
    [M_LZ4_SCAN]     = { "lz4_scan_records_per_s", NULL, "scan records/s", 0 },
    [M_RAW_MBPS]     = { "none_batch_mbps", "batch 1000x100B JSON, none", "MB/s (values)", 1 },
    [M_RAW_BPR]      = { "none_bytes_per_record", NULL, "B/record disk", 1 },
    [M_RAW_SCAN]     = { "none_scan_records_per_s", NULL, "scan records/s", 0 },
    [M_COMMIT]       = { "commit_per_s", "topic_commit, one group", "commits/s", 0 },
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
    "batch100", "batch1k", "scan", "random", "reopen",
    "durable1", "durable4", "wake", "lz4", "commit", NULL
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
        "               scanned 6 times per run and read N/6 times at random per run;\n"
        "               the lz4 workload appends N/6 records per topic (durable, wake\n"
        "               and commit do not depend on N)\n"
        "  --dir PATH   scratch directory (default: a fresh mkdtemp under /tmp, removed)\n"
        "  --only NAME  run one workload: write memcpy readscan append100 append1k\n"
        "               batch100 batch1k scan random reopen durable1 durable4 wake\n"
        "               lz4 commit\n"
        "               (durable1 includes the pwrite+fdatasync baseline; durable4\n"
        "               also runs durable1, which its ratio needs)\n"
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

/*
 * CPU seconds in user and in kernel mode, of the whole process (every
 * thread: an appender, libtopic's page preparer and flusher) and of the
 * calling thread alone.  The append runs report both: on the VMs this was
 * written on, a slow run is one whose kernel time grew (the pages of a
 * fresh file cost several times more to set up in some runs than in
 * others), not its user time, and the appending thread's own kernel time
 * tells whether it took page faults itself because the preparer fell
 * behind (0.03-0.05 s in fast runs of 100 B appends, 0.3-0.8 s in slow
 * ones, 2026-11-29).
 */
struct cpu_use {
    double user_s, sys_s;             /* the process */
    double thread_user_s, thread_sys_s; /* the calling thread */
};

static double tv_s(struct timeval tv)
{
    return (double)tv.tv_sec + (double)tv.tv_usec / 1e6;
}

static struct cpu_use cpu_now(void)
{
    struct rusage ru, th;
    if (getrusage(RUSAGE_SELF, &ru) != 0 || getrusage(RUSAGE_THREAD, &th) != 0)
        die("getrusage: %s", strerror(errno));
    return (struct cpu_use){ tv_s(ru.ru_utime), tv_s(ru.ru_stime), tv_s(th.ru_utime),
                             tv_s(th.ru_stime) };
}

static struct cpu_use cpu_since(struct cpu_use a)
{
    struct cpu_use b = cpu_now();
    return (struct cpu_use){ b.user_s - a.user_s, b.sys_s - a.sys_s,
                             b.thread_user_s - a.thread_user_s, b.thread_sys_s - a.thread_sys_s };
}

/* write() `total` bytes in 64 KiB chunks to a fresh file; no fsync.  *cpu
 * is the CPU time of the writes. */
static double bench_write(const char *path, uint64_t total, struct cpu_use *cpu)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd < 0)
        die("open %s: %s", path, strerror(errno));
    struct cpu_use c0 = cpu_now();
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
    *cpu = cpu_since(c0);
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
    struct cpu_use cpu;   /* the process's CPU time during the appends */
};

/* One topic_append per record on a fresh topic in `dir`. */
static void bench_append(const char *dir, uint64_t n, size_t len, struct append_result *res)
{
    topic *t = NULL;
    double t0 = now_sec();
    TCHECK(topic_open(dir, TOPIC_CREATE | TOPIC_EXCL, NULL, &t));
    struct cpu_use c0 = cpu_now();
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
    res->cpu = cpu_since(c0);
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
    struct cpu_use c0 = cpu_now();
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
    res->cpu = cpu_since(c0);
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
/* Durable appends, wake-up latency, lz4, commits                            */

/*
 * fdatasync() and fsync() calls of this process, libtopic's included: the
 * library is linked statically, and a function the executable defines takes
 * the place of libc's for every caller.  This lets the durable rows say how
 * many appends one sync covered (1.00 under flush.messages=1 from one
 * thread: fewer would mean appends acknowledged without a sync of their
 * own; more than 1 with several threads is the group commit at work).
 * Both go straight to the system call, as libc's do.
 */
static uint64_t g_syncs;

int fdatasync(int fd)
{
    __atomic_fetch_add(&g_syncs, 1, __ATOMIC_RELAXED);
    return (int)syscall(SYS_fdatasync, fd);
}

int fsync(int fd)
{
    __atomic_fetch_add(&g_syncs, 1, __ATOMIC_RELAXED);
    return (int)syscall(SYS_fsync, fd);
}

static uint64_t syncs_now(void)
{
    return __atomic_load_n(&g_syncs, __ATOMIC_RELAXED);
}

static size_t g_frame;      /* pwrite baseline bytes per record: libtopic's, measured */
static uint64_t g_nlz4;

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void sleep_us(long us)
{
    struct timespec ts = { us / 1000000, (us % 1000000) * 1000 };
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

/* Nearest-rank percentile q (0 < q <= 1) of n latencies in ns, in us.
 * Sorts ns in place. */
static double pct_us(uint64_t *ns, size_t n, double q, bool sorted)
{
    if (n == 0)
        die("no latency samples");
    if (!sorted)
        qsort(ns, n, sizeof(uint64_t), cmp_u64);
    /* ceil(q * n) without libm (the Makefile links no -lm) */
    size_t rank = (size_t)(q * (double)n);
    if ((double)rank < q * (double)n)
        rank++;
    if (rank < 1)
        rank = 1;
    return (double)ns[rank - 1] / 1e3;
}

struct lat_result {
    uint64_t n;        /* timed operations */
    double ops;        /* n / elapsed */
    double p50, p99;   /* us */
    double per_sync;   /* durable: appends per fdatasync/fsync call */
};

static void lat_summary(uint64_t *ns, uint64_t n, double elapsed, struct lat_result *res)
{
    res->n = n;
    res->ops = (double)n / elapsed;
    res->p50 = pct_us(ns, (size_t)n, 0.50, false);
    res->p99 = pct_us(ns, (size_t)n, 0.99, true);
}

/* Value k of the durable workloads: thread i's j-th append is value
 * i * DURABLE_MAX + j; warm-ups use k >= DURABLE_THREADS * DURABLE_MAX. */
static inline const unsigned char *durable_value(uint64_t k)
{
    return g_pat + value_pos(k);
}

struct dworker {
    topic *t;
    int id;
    uint64_t deadline_ns;
    uint64_t limit;        /* this slice stops at n == limit */
    pthread_barrier_t *go;
    uint64_t *lat;         /* DURABLE_MAX each */
    uint64_t *offs;
    uint64_t n;            /* appends so far, over all slices */
};

/* Appends until the deadline or w->limit, each call timed; at least one. */
static void *durable_worker(void *arg)
{
    struct dworker *w = arg;
    int b = pthread_barrier_wait(w->go);
    if (b != 0 && b != PTHREAD_BARRIER_SERIAL_THREAD)
        die("pthread_barrier_wait: %s", strerror(b));
    for (uint64_t j = w->n, first = w->n; j < w->limit; j++) {
        uint64_t a = now_ns();
        if (j > first && a >= w->deadline_ns)
            break;
        uint64_t off;
        int rc = topic_append(w->t, durable_value((uint64_t)w->id * DURABLE_MAX + j),
                              SMALL_LEN, &off);
        uint64_t z = now_ns();
        if (rc != 0)
            die("durable topic_append (thread %d, #%" PRIu64 "): %s (%d)", w->id, j,
                topic_strerror(rc), rc);
        w->lat[j] = z - a;
        w->offs[j] = off;
        w->n = j + 1;
    }
    return NULL;
}

static topic *open_with(const char *dir, int flags, const char *name, const char *value)
{
    topic_config *c = topic_config_new();
    if (!c)
        die("topic_config_new: out of memory");
    int rc = topic_config_set(c, name, value);
    if (rc != 0)
        die("topic_config_set(%s, %s): %s (%s)", name, value, topic_strerror(rc),
            topic_config_error(c));
    topic *t = NULL;
    TCHECK(topic_open(dir, flags, c, &t));
    topic_config_free(c);
    return t;
}

/*
 * One durable workload: `nthreads` threads appending 100 B values to one
 * fresh topic under flush.messages=1, in slices (durable_slice) interleaved
 * with the other durable workloads of the run.
 */
struct durable {
    const char *dir;
    topic *t;
    int nthreads;
    struct dworker w[DURABLE_THREADS];
    uint64_t *lat, *offs;  /* DURABLE_MAX per thread */
    double elapsed;        /* sum of the slices' wall times */
    uint64_t syncs;        /* fdatasync + fsync calls during the slices */
};

static void durable_open(struct durable *d, const char *dir, int nthreads)
{
    memset(d, 0, sizeof(*d));
    d->dir = dir;
    d->nthreads = nthreads;
    d->t = open_with(dir, TOPIC_CREATE | TOPIC_EXCL, "flush.messages", "1");
    const uint64_t warm_base = (uint64_t)DURABLE_THREADS * DURABLE_MAX;
    for (uint64_t j = 0; j < DURABLE_WARMUP; j++) {
        uint64_t off;
        TCHECK(topic_append(d->t, durable_value(warm_base + j), SMALL_LEN, &off));
        if (off != j)
            die("durable warm-up append #%" PRIu64 " got offset %" PRIu64, j, off);
    }
    d->lat = xmalloc(sizeof(uint64_t) * DURABLE_MAX * (size_t)nthreads);
    d->offs = xmalloc(sizeof(uint64_t) * DURABLE_MAX * (size_t)nthreads);
    for (int k = 0; k < nthreads; k++)
        d->w[k] = (struct dworker){ d->t, k, 0, 0, NULL, d->lat + (size_t)k * DURABLE_MAX,
                                    d->offs + (size_t)k * DURABLE_MAX, 0 };
}

/* The threads append for `seconds` (at most DURABLE_MAX / DURABLE_SLICES
 * appends each); the wall time from their common start to the last one's
 * end is added to d->elapsed. */
static void durable_slice(struct durable *d, double seconds)
{
    pthread_t th[DURABLE_THREADS];
    pthread_barrier_t go;
    int e = pthread_barrier_init(&go, NULL, (unsigned)d->nthreads + 1);
    if (e != 0)
        die("pthread_barrier_init: %s", strerror(e));
    uint64_t deadline = now_ns() + (uint64_t)(seconds * 1e9);
    for (int k = 0; k < d->nthreads; k++) {
        struct dworker *w = &d->w[k];
        w->deadline_ns = deadline;
        w->go = &go;
        w->limit = w->n + DURABLE_MAX / DURABLE_SLICES;
        if (w->limit > DURABLE_MAX)
            w->limit = DURABLE_MAX;
        if ((e = pthread_create(&th[k], NULL, durable_worker, w)) != 0)
            die("pthread_create: %s", strerror(e));
    }
    /* Start and count before the release: a descheduled main thread must
     * not shorten the slice or miss its first syncs. */
    double t0 = now_sec();
    uint64_t s0 = syncs_now();
    e = pthread_barrier_wait(&go);
    if (e != 0 && e != PTHREAD_BARRIER_SERIAL_THREAD)
        die("pthread_barrier_wait: %s", strerror(e));
    for (int k = 0; k < d->nthreads; k++)
        if ((e = pthread_join(th[k], NULL)) != 0)
            die("pthread_join: %s", strerror(e));
    d->elapsed += now_sec() - t0;
    d->syncs += syncs_now() - s0;
    pthread_barrier_destroy(&go);
}

/*
 * Untimed: every offset must have been handed out exactly once, the end
 * offset must count every append, and every record must read back as the
 * value its thread appended.  Then the close, and the result.
 */
static void durable_finish(struct durable *d, struct lat_result *res)
{
    uint64_t total = 0;
    for (int k = 0; k < d->nthreads; k++)
        total += d->w[k].n;
    const uint64_t end = DURABLE_WARMUP + total;
    if (topic_end_offset(d->t) != end)
        die("durable: end offset %" PRIu64 " after %" PRIu64 " appends",
            topic_end_offset(d->t), end);
    unsigned char *seen = calloc((size_t)end, 1);
    if (!seen)
        die("out of memory");
    unsigned char buf[SMALL_LEN];
    for (int k = 0; k < d->nthreads; k++)
        for (uint64_t j = 0; j < d->w[k].n; j++) {
            uint64_t off = d->w[k].offs[j];
            if (off < DURABLE_WARMUP || off >= end || seen[off]++)
                die("durable: offset %" PRIu64 " out of range or handed out twice", off);
            size_t got = 0;
            TCHECK(topic_read(d->t, off, buf, sizeof(buf), &got));
            if (got != SMALL_LEN ||
                memcmp(buf, durable_value((uint64_t)k * DURABLE_MAX + j), SMALL_LEN) != 0)
                die("durable: record %" PRIu64 " does not hold thread %d's value #%" PRIu64,
                    off, k, j);
        }
    free(seen);
    TCHECK(topic_close(d->t));
    d->t = NULL;
    /* Gather the latencies densely. */
    uint64_t at = 0;
    for (int k = 0; k < d->nthreads; k++) {
        memmove(d->lat + at, d->w[k].lat, sizeof(uint64_t) * d->w[k].n);
        at += d->w[k].n;
    }
    lat_summary(d->lat, total, d->elapsed, res);
    /* no sync at all reads as "all appends per one sync": the warning fires */
    res->per_sync = (double)total / (double)(d->syncs ? d->syncs : 1);
    free(d->lat);
    free(d->offs);
}

/* libtopic's log bytes per 100 B append, from 100 appends to a scratch
 * topic (the close cuts the segment to its data).  Untimed. */
static size_t measure_frame(const char *dir)
{
    topic *t = NULL;
    TCHECK(topic_open(dir, TOPIC_CREATE | TOPIC_EXCL, NULL, &t));
    for (uint64_t i = 0; i < 100; i++)
        TCHECK(topic_append(t, g_pat + value_pos(i), SMALL_LEN, NULL));
    TCHECK(topic_close(t));
    size_t nseg;
    uint64_t logb;
    count_logs(dir, &nseg, &logb);
    double bpr = (double)logb / 100;
    if (bpr < SMALL_LEN || bpr > 4096)
        die("%.1f log bytes per 100 B record: implausible", bpr);
    return (size_t)(bpr + 0.5);
}

/*
 * The baseline of durable1: what a log must at least do per durable record.
 * pwrite() of `frame` bytes (libtopic's log bytes per 100 B append) appended
 * sequentially to a file preallocated with fallocate(), then fdatasync().
 * The file is created, preallocated and synced (with its directory), and
 * DURABLE_WARMUP records written, untimed, before the first slice.
 */
struct pwsync {
    char *dir, *path;
    int fd;
    size_t frame;
    uint64_t i;            /* frames written, warm-ups included */
    uint64_t n;            /* timed frames */
    uint64_t *lat;         /* DURABLE_MAX */
    double elapsed;
};

static void pwsync_open(struct pwsync *p, const char *dir, size_t frame)
{
    memset(p, 0, sizeof(*p));
    if (mkdir(dir, 0755) != 0)
        die("mkdir %s: %s", dir, strerror(errno));
    p->path = path_join(dir, "pwrite.bin");
    p->frame = frame;
    p->fd = open(p->path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (p->fd < 0)
        die("open %s: %s", p->path, strerror(errno));
    if (fallocate(p->fd, 0, 0, (off_t)((DURABLE_WARMUP + DURABLE_MAX) * frame)) != 0)
        die("fallocate %s: %s", p->path, strerror(errno));
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0 || fsync(p->fd) != 0 || fsync(dfd) != 0)
        die("fsync %s: %s", p->path, strerror(errno));
    close(dfd);
    p->lat = xmalloc(sizeof(uint64_t) * DURABLE_MAX);
    for (; p->i < DURABLE_WARMUP; p->i++)
        if (pwrite(p->fd, g_pat + value_pos(p->i), frame, (off_t)(p->i * frame)) != (ssize_t)frame ||
            fdatasync(p->fd) != 0)
            die("pwrite/fdatasync %s: %s", p->path, strerror(errno));
}

static void pwsync_slice(struct pwsync *p, double seconds)
{
    uint64_t limit = p->n + DURABLE_MAX / DURABLE_SLICES, first = p->n;
    if (limit > DURABLE_MAX)
        limit = DURABLE_MAX;
    uint64_t deadline = now_ns() + (uint64_t)(seconds * 1e9);
    double t0 = now_sec();
    for (; p->n < limit; p->n++, p->i++) {
        uint64_t a = now_ns();
        if (p->n > first && a >= deadline)
            break;
        ssize_t wr = pwrite(p->fd, g_pat + value_pos(p->i), p->frame, (off_t)(p->i * p->frame));
        if (wr != (ssize_t)p->frame)
            die("pwrite %s: %s", p->path, wr < 0 ? strerror(errno) : "short write");
        if (fdatasync(p->fd) != 0)
            die("fdatasync %s: %s", p->path, strerror(errno));
        p->lat[p->n] = now_ns() - a;
    }
    p->elapsed += now_sec() - t0;
}

/* Untimed: every frame reads back. */
static void pwsync_finish(struct pwsync *p, struct lat_result *res)
{
    unsigned char *back = xmalloc(p->frame);
    for (uint64_t k = 0; k < p->i; k++)
        if (pread(p->fd, back, p->frame, (off_t)(k * p->frame)) != (ssize_t)p->frame ||
            memcmp(back, g_pat + value_pos(k), p->frame) != 0)
            die("pwrite baseline: frame %" PRIu64 " did not read back", k);
    free(back);
    if (close(p->fd) != 0)
        die("close %s: %s", p->path, strerror(errno));
    lat_summary(p->lat, p->n, p->elapsed, res);
    free(p->lat);
    free(p->path);
}

/* Shared by the writer and its reader: a thread, or a forked child through
 * a MAP_SHARED anonymous mapping made before the fork. */
struct wake_shared {
    uint64_t created, ready;      /* process mode: the topic exists; the child is waiting */
    uint64_t early;               /* samples whose record existed before topic_wait */
    uint64_t cpu_ns, wall_ns;     /* the reader's CPU time and wall time: it must sleep */
    uint64_t sent[WAKE_SAMPLES];  /* CLOCK_MONOTONIC ns just before topic_append(i) */
    uint64_t lat[WAKE_SAMPLES];   /* reader's wake time - sent[i] */
};

struct wake_reader_arg {
    topic *t;
    struct wake_shared *w;
};

/* Waits for records 0 .. WAKE_SAMPLES-1 one by one; each one read back. */
static void *wake_reader(void *arg)
{
    struct wake_reader_arg *a = arg;
    struct wake_shared *w = a->w;
    unsigned char buf[SMALL_LEN];
    uint64_t early = 0;
    struct timespec c0, c1;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &c0);
    uint64_t w0 = now_ns();
    for (uint64_t i = 0; i < WAKE_SAMPLES; i++) {
        if (topic_end_offset(a->t) > i)
            early++;
        int rc = topic_wait(a->t, i, WAIT_TIMEOUT_MS);
        uint64_t now = now_ns();
        if (rc != 0)
            die("wake reader: topic_wait(%" PRIu64 "): %s (%d)", i, topic_strerror(rc), rc);
        uint64_t sent = __atomic_load_n(&w->sent[i], __ATOMIC_ACQUIRE);
        if (sent == 0 || sent > now)
            die("wake reader: record %" PRIu64 " arrived before it was sent", i);
        w->lat[i] = now - sent;
        size_t got = 0;
        TCHECK(topic_read(a->t, i, buf, sizeof(buf), &got));
        check_value(buf, got, i, SMALL_LEN, "wake reader");
    }
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &c1);
    w->wall_ns = now_ns() - w0;
    w->cpu_ns = (uint64_t)((c1.tv_sec - c0.tv_sec) * 1000000000ll + (c1.tv_nsec - c0.tv_nsec));
    __atomic_store_n(&w->early, early, __ATOMIC_RELEASE);
    return NULL;
}

/* One append every ~WAKE_GAP_US, each stamped just before the call. */
static void wake_writer(topic *t, struct wake_shared *w)
{
    for (uint64_t i = 0; i < WAKE_SAMPLES; i++) {
        sleep_us(WAKE_GAP_US);
        __atomic_store_n(&w->sent[i], now_ns(), __ATOMIC_RELEASE);
        uint64_t off;
        int rc = topic_append(t, g_pat + value_pos(i), SMALL_LEN, &off);
        if (rc != 0)
            die("wake writer: topic_append #%" PRIu64 ": %s (%d)", i, topic_strerror(rc), rc);
        if (off != i)
            die("wake writer: append #%" PRIu64 " got offset %" PRIu64, i, off);
    }
}

/* Waits (polling every 100 us, at most 10 s) for *flag to become non-zero;
 * with child > 0, fails early if the child died. */
static void await_flag(uint64_t *flag, pid_t child, const char *what)
{
    for (int k = 0; k < 100000; k++) {
        if (__atomic_load_n(flag, __ATOMIC_ACQUIRE))
            return;
        if (child > 0) {
            int st;
            if (waitpid(child, &st, WNOHANG) == child)
                die("wake: the reader process exited (status %d) before %s", st, what);
        }
        sleep_us(100);
    }
    die("wake: timed out waiting for %s", what);
}

/* The wake-up latency, reader thread (process = false) or reader process. */
static void bench_wake(const char *dir, bool process, struct lat_result *res, uint64_t *early,
                       double *cpu_share)
{
    struct wake_shared *w = mmap(NULL, sizeof(*w), PROT_READ | PROT_WRITE,
                                 MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (w == MAP_FAILED)
        die("mmap: %s", strerror(errno));
    memset(w, 0, sizeof(*w));
    topic *t = NULL;
    if (!process) {
        TCHECK(topic_open(dir, TOPIC_CREATE | TOPIC_EXCL, NULL, &t));
        struct wake_reader_arg a = { t, w };
        pthread_t th;
        int e = pthread_create(&th, NULL, wake_reader, &a);
        if (e != 0)
            die("pthread_create: %s", strerror(e));
        wake_writer(t, w);
        if ((e = pthread_join(th, NULL)) != 0)
            die("pthread_join: %s", strerror(e));
    } else {
        /* Fork while this process has no other thread; the writer (and its
         * background thread) start after. */
        fflush(NULL);
        pid_t pid = fork();
        if (pid < 0)
            die("fork: %s", strerror(errno));
        if (pid == 0) {
            g_scratch = NULL;   /* die() in the child leaves the scratch to the parent */
            await_flag(&w->created, 0, "the topic");
            topic *rt = NULL;
            TCHECK(topic_open(dir, TOPIC_RDONLY, NULL, &rt));
            __atomic_store_n(&w->ready, 1, __ATOMIC_RELEASE);
            struct wake_reader_arg a = { rt, w };
            wake_reader(&a);
            TCHECK(topic_close(rt));
            _exit(0);
        }
        TCHECK(topic_open(dir, TOPIC_CREATE | TOPIC_EXCL, NULL, &t));
        __atomic_store_n(&w->created, 1, __ATOMIC_RELEASE);
        await_flag(&w->ready, pid, "the reader opened the topic");
        wake_writer(t, w);
        int st;
        if (waitpid(pid, &st, 0) != pid)
            die("waitpid: %s", strerror(errno));
        if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
            die("wake: the reader process failed (status %d)", st);
    }
    if (topic_end_offset(t) != WAKE_SAMPLES)
        die("wake: end offset %" PRIu64 ", want %d", topic_end_offset(t), WAKE_SAMPLES);
    TCHECK(topic_close(t));
    uint64_t lat[WAKE_SAMPLES];
    memcpy(lat, w->lat, sizeof(lat));
    *early = __atomic_load_n(&w->early, __ATOMIC_ACQUIRE);
    *cpu_share = w->wall_ns ? (double)w->cpu_ns / (double)w->wall_ns : 0;
    munmap(w, sizeof(*w));
    lat_summary(lat, WAKE_SAMPLES, 1.0, res);
}

/* JSON_SLOTS JSON-like 100 B values: the same field names, small varying
 * numbers and a few repeated words, as an application's events look. */
static unsigned char *g_jvals;

static void make_json_values(void)
{
    static const char *const events[] = { "click", "view", "scroll", "buy" };
    static const char *const regions[] = { "eu-west", "us-east", "ap-south" };
    g_jvals = xmalloc((size_t)JSON_SLOTS * SMALL_LEN);
    uint64_t s = 0x15a4;
    for (size_t k = 0; k < JSON_SLOTS; k++) {
        uint64_t r = splitmix64(&s);
        char tmp[SMALL_LEN + 64];
        int n = snprintf(tmp, sizeof(tmp),
                         "{\"id\":%zu,\"uid\":%u,\"event\":\"%s\",\"ms\":%u,"
                         "\"items\":%u,\"ok\":%s,\"region\":\"%s\"",
                         100000 + k, (unsigned)(r % 1000), events[(r >> 10) % 4],
                         (unsigned)((r >> 12) % 500), (unsigned)((r >> 21) % 10),
                         (r >> 25) & 1 ? "true" : "false", regions[(r >> 26) % 3]);
        if (n < 0 || n > SMALL_LEN - 9)
            die("make_json_values: value %zu too long (%d)", k, n);
        /* ,"p":"xxx"} up to exactly SMALL_LEN bytes */
        n += snprintf(tmp + n, sizeof(tmp) - (size_t)n, ",\"p\":\"");
        while (n < SMALL_LEN - 2)
            tmp[n++] = ' ';
        tmp[n++] = '"';
        tmp[n++] = '}';
        memcpy(g_jvals + k * SMALL_LEN, tmp, SMALL_LEN);
    }
}

static inline const unsigned char *json_value(uint64_t i)
{
    return g_jvals + (size_t)(i % JSON_SLOTS) * SMALL_LEN;
}

struct lz4_result {
    double mbps;            /* value bytes per second of topic_append_batch */
    double bytes_per_rec;   /* log bytes after the close / records */
    double scan_recs;       /* cursor scan, records/s per pass */
};

/* n JSON-like records in batches of BATCH_N under compression.type=ctype:
 * the appends timed; then the log size; then LZ4_PASSES cursor scans through
 * a read-only handle, each value compared in full. */
static void bench_lz4(const char *dir, const char *ctype, uint64_t n, struct lz4_result *res)
{
    topic *t = open_with(dir, TOPIC_CREATE | TOPIC_EXCL, "compression.type", ctype);
    double t0 = now_sec();
    for (uint64_t base = 0; base < n; base += BATCH_N) {
        size_t k = n - base < BATCH_N ? (size_t)(n - base) : BATCH_N;
        for (size_t j = 0; j < k; j++)
            g_recs[j] = (topic_record){ 0, 0, NULL, 0, json_value(base + j), SMALL_LEN };
        uint64_t first;
        int rc = topic_append_batch(t, g_recs, k, &first);
        if (rc != 0)
            die("%s: topic_append_batch at %" PRIu64 ": %s (%d)", ctype, base,
                topic_strerror(rc), rc);
        if (first != base)
            die("%s: batch at %" PRIu64 " got first offset %" PRIu64, ctype, base, first);
    }
    double t1 = now_sec();
    if (topic_end_offset(t) != n)
        die("%s: end offset %" PRIu64 " after %" PRIu64 " records", ctype, topic_end_offset(t), n);
    TCHECK(topic_close(t));
    size_t nseg;
    uint64_t logb;
    count_logs(dir, &nseg, &logb);

    TCHECK(topic_open(dir, TOPIC_RDONLY, NULL, &t));
    uint64_t sum = 0;
    double t2 = now_sec();
    for (int p = 0; p < LZ4_PASSES; p++) {
        topic_cursor *c = NULL;
        uint64_t i = 0;
        TCHECK(topic_cursor_open(t, 0, &c));
        for (;;) {
            topic_record rec;
            int rc = topic_cursor_next(c, &rec);
            if (rc == TOPIC_END)
                break;
            if (rc != 0)
                die("%s: topic_cursor_next at %" PRIu64 ": %s (%d)", ctype, i,
                    topic_strerror(rc), rc);
            if (rec.offset != i || rec.value_len != SMALL_LEN ||
                memcmp(rec.value, json_value(i), SMALL_LEN) != 0)
                die("%s: cursor record %" PRIu64 " (offset %" PRIu64 ") has the wrong value",
                    ctype, i, rec.offset);
            sum += ((const unsigned char *)rec.value)[7];
            i++;
        }
        topic_cursor_close(c);
        if (i != n)
            die("%s: cursor scan saw %" PRIu64 " records, %" PRIu64 " were appended", ctype, i, n);
    }
    double t3 = now_sec();
    g_sink += sum;
    TCHECK(topic_close(t));
    res->mbps = (double)n * SMALL_LEN / (t1 - t0) / MB;
    res->bytes_per_rec = (double)logb / (double)n;
    res->scan_recs = (double)n * LZ4_PASSES / (t3 - t2);
}

/*
 * topic_commit on one group of a fresh topic (default config) for
 * COMMIT_SECONDS, so that each run crosses flush.ms (1 s) and includes the
 * group file's periodic fdatasync.  The first commit, which creates the
 * group's file, is untimed.  The position must read back, also through a
 * fresh read-only handle after the close.  *count: the timed commits.
 */
static double bench_commit(const char *dir, uint64_t *count)
{
    topic *t = NULL;
    TCHECK(topic_open(dir, TOPIC_CREATE | TOPIC_EXCL, NULL, &t));
    TCHECK(topic_commit(t, "bench", 0));
    const double t0 = now_sec(), stop = t0 + COMMIT_SECONDS;
    double t1;
    uint64_t i = 1;
    for (;;) {
        for (uint64_t k = 0; k < 4096; k++, i++) {
            int rc = topic_commit(t, "bench", i);
            if (rc != 0)
                die("topic_commit #%" PRIu64 ": %s (%d)", i, topic_strerror(rc), rc);
        }
        if ((t1 = now_sec()) >= stop)
            break;
    }
    const uint64_t n = i - 1;
    uint64_t got = 0;
    TCHECK(topic_committed(t, "bench", &got));
    if (got != n)
        die("topic_committed: %" PRIu64 " after committing 1..%" PRIu64, got, n);
    TCHECK(topic_close(t));
    TCHECK(topic_open(dir, TOPIC_RDONLY, NULL, &t));
    got = 0;
    TCHECK(topic_committed(t, "bench", &got));
    if (got != n)
        die("topic_committed after reopen: %" PRIu64 ", want %" PRIu64, got, n);
    TCHECK(topic_close(t));
    *count = n;
    return (double)n / (t1 - t0);
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
    int target_cmp;   /* +1: the target is value >= target; -1: value < target; 0: none */
    double target;
};

static const struct ratio ratios[] = {
    { "append_100b_vs_write", "append 100 B   MB/s(values) / write() MB/s", M_A100_MBPS, M_WRITE_MBPS, 3, 0, 0 },
    { "append_1k_vs_write", "append 1 KiB   MB/s(values) / write() MB/s", M_A1K_MBPS, M_WRITE_MBPS, 3, 0, 0 },
    { "batch_100b_vs_write", "batch 1000x100B MB/s(values) / write() MB/s", M_B100_MBPS, M_WRITE_MBPS, 3, 0, 0 },
    { "batch_1k_vs_write", "batch 1000x1KiB MB/s(values) / write() MB/s", M_B1K_MBPS, M_WRITE_MBPS, 3, 0, 0 },
    { "append_100b_vs_memcpy", "append 100 B   MB/s(values) / memcpy MB/s", M_A100_MBPS, M_MEMCPY_MBPS, 4, 0, 0 },
    { "scan_vs_read_scan", "cursor scan MB/s(log) / read() scan MB/s(log)", M_SCAN_MBPS, M_RSCAN_MBPS, 3, 0, 0 },
    { "random_read_per_s", "random topic_read, reads/s", M_RAND_READS, -1, 0, 0, 0 },
    { "reopen_ms", "reopen: topic_open after clean close, ms", M_REOPEN_MS, -1, 3, 0, 0 },
    { "reopen_rdonly_ms", "reopen: the same, TOPIC_RDONLY, ms", M_REOPEN_RO_MS, -1, 3, 0, 0 },
    /* median of the per-run ratios: the three run interleaved, so each run's
     * ratio compares the same disk weather */
    { "durable1_vs_pwrite_fdatasync", "durable1 ops/s / pwrite+fdatasync ops/s",
      M_D1_VS_PW, -1, 3, 1, 0.8 },
    { "durable4_vs_durable1", "durable4 ops/s / durable1 ops/s", M_D4_VS_D1, -1, 2, 1, 2.5 },
    { "wake_thread_p50_us", "wake p50 us, same process", M_WAKE_T_P50, -1, 1, -1, 50 },
    { "wake_process_p50_us", "wake p50 us, other process", M_WAKE_P_P50, -1, 1, -1, 100 },
    { "lz4_vs_none_mbps", "lz4 / none: append_batch MB/s(values)", M_LZ4_MBPS, M_RAW_MBPS, 3, 0, 0 },
    { "lz4_vs_none_size", "lz4 / none: bytes per record on disk", M_LZ4_BPR, M_RAW_BPR, 3, 0, 0 },
    { "lz4_vs_none_scan", "lz4 / none: cursor scan records/s", M_LZ4_SCAN, M_RAW_SCAN, 3, 0, 0 },
    { "commit_per_s", "topic_commit/s, one group", M_COMMIT, -1, 0, 1, 100000 },
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

static bool target_met(const struct ratio *r, double v)
{
    return r->target_cmp > 0 ? v >= r->target : r->target_cmp < 0 ? v < r->target : true;
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
        char buf[32], tgt[80] = "";
        fmt_num(buf, sizeof(buf), v, ratios[i].decimals);
        if (ratios[i].target_cmp) {
            char tv[32];
            fmt_num(tv, sizeof(tv), ratios[i].target, ratios[i].target >= 1000 ? 0 : 1);
            snprintf(tgt, sizeof(tgt), "  (target %s %s: %s)",
                     ratios[i].target_cmp > 0 ? ">=" : "<", tv,
                     target_met(&ratios[i], v) ? "met" : "MISSED");
        }
        fprintf(g_out, "  %-48s %14s%s\n", ratios[i].label, buf, tgt);
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
    printf("  \"durable_seconds_per_run\": %g,\n", DURABLE_SECONDS);
    printf("  \"durable_max_appends_per_thread\": %d,\n", DURABLE_MAX);
    printf("  \"durable_threads\": %d,\n", DURABLE_THREADS);
    if (g_frame)
        printf("  \"pwrite_frame_bytes\": %zu,\n", g_frame);
    printf("  \"wake_samples_per_run\": %d,\n", WAKE_SAMPLES);
    printf("  \"wake_gap_us\": %d,\n", WAKE_GAP_US);
    printf("  \"lz4_records_per_run\": %" PRIu64 ",\n", g_nlz4);
    printf("  \"commit_seconds_per_run\": %g,\n", COMMIT_SECONDS);
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
    printf("\n  },\n");
    printf("  \"targets\": {");
    first = true;
    for (size_t i = 0; i < N_RATIOS; i++) {
        double v;
        if (!ratios[i].target_cmp || !ratio_value(&ratios[i], &v))
            continue;
        printf("%s\n    \"%s\": { \"value\": %.6g, \"target\": \"%s %g\", \"met\": %s }",
               first ? "" : ",", ratios[i].key, v, ratios[i].target_cmp > 0 ? ">=" : "<",
               ratios[i].target, target_met(&ratios[i], v) ? "true" : "false");
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

/*
 * durable1, its pwrite+fdatasync baseline and durable4 of one run are all
 * open at once and take turns in DURABLE_SLICES slices each, in an order
 * that rotates, so that the virtual disk's drift (its fsync times can change
 * 2x within seconds) weighs on all three alike.
 */
static void run_durable(const struct opts *o, const char *scratch, bool pw, bool d4)
{
    char *fdir = path_join(scratch, "frame");
    g_frame = measure_frame(fdir);
    rm_rf(fdir);
    free(fdir);
    const double slice = DURABLE_SECONDS / DURABLE_SLICES;
    for (int r = 0; r < o->runs; r++) {
        char sub[64];
        snprintf(sub, sizeof(sub), "durable1-%d", r);
        char *dir1 = path_join(scratch, sub);
        snprintf(sub, sizeof(sub), "pwrite-%d", r);
        char *dirp = path_join(scratch, sub);
        snprintf(sub, sizeof(sub), "durable4-%d", r);
        char *dir4 = path_join(scratch, sub);
        struct durable d1, dd4;
        struct pwsync ps;
        sync();   /* untimed: nothing of earlier workloads left to write back */
        durable_open(&d1, dir1, 1);
        if (pw)
            pwsync_open(&ps, dirp, g_frame);
        if (d4)
            durable_open(&dd4, dir4, DURABLE_THREADS);
        for (int s = 0; s < DURABLE_SLICES; s++)
            for (int k = 0; k < 3; k++) {
                int step = (k + s + r) % 3;
                if (step == 0)
                    durable_slice(&d1, slice);
                else if (step == 1 && pw)
                    pwsync_slice(&ps, slice);
                else if (step == 2 && d4)
                    durable_slice(&dd4, slice);
            }
        struct lat_result r1, rp, r4;
        durable_finish(&d1, &r1);
        record(M_D1_OPS, r1.ops);
        record(M_D1_P50, r1.p50);
        record(M_D1_P99, r1.p99);
        record(M_D1_PER_SYNC, r1.per_sync);
        if (pw) {
            pwsync_finish(&ps, &rp);
            record(M_PWS_OPS, rp.ops);
            record(M_PWS_P50, rp.p50);
            record(M_PWS_P99, rp.p99);
            record(M_D1_VS_PW, r1.ops / rp.ops);
        }
        progress("durable1", r, o->runs, "%.0f ops/s, p50 %.1f us, p99 %.1f us (%" PRIu64
                 " appends, %.2f per fdatasync)", r1.ops, r1.p50, r1.p99, r1.n, r1.per_sync);
        if (r1.per_sync > 1.01)
            fprintf(stderr, "  durable1: WARNING: fewer fdatasync/fsync calls than appends "
                    "under flush.messages=1\n");
        if (pw)
            progress("pwrite", r, o->runs, "%.0f ops/s, p50 %.1f us, p99 %.1f us (%" PRIu64
                     " x %zu B)", rp.ops, rp.p50, rp.p99, rp.n, g_frame);
        if (d4) {
            durable_finish(&dd4, &r4);
            record(M_D4_OPS, r4.ops);
            record(M_D4_P50, r4.p50);
            record(M_D4_P99, r4.p99);
            record(M_D4_PER_SYNC, r4.per_sync);
            record(M_D4_VS_D1, r4.ops / r1.ops);
            progress("durable4", r, o->runs, "%.0f ops/s, p50 %.1f us, p99 %.1f us (%" PRIu64
                     " appends, %d threads, %.2f per fdatasync)", r4.ops, r4.p50, r4.p99,
                     r4.n, DURABLE_THREADS, r4.per_sync);
        }
        rm_rf(dir1);
        rm_rf(dirp);
        rm_rf(dir4);
        free(dir1);
        free(dirp);
        free(dir4);
    }
}

static void run_wake(const struct opts *o, const char *scratch)
{
    for (int r = 0; r < o->runs; r++) {
        for (int k = 0; k < 2; k++) {
            bool process = (k + r) % 2 == 1;
            char sub[64];
            snprintf(sub, sizeof(sub), "wake-%s-%d", process ? "process" : "thread", r);
            char *dir = path_join(scratch, sub);
            struct lat_result res;
            uint64_t early = 0;
            double cpu = 0;
            bench_wake(dir, process, &res, &early, &cpu);
            int m = process ? M_WAKE_P_P50 : M_WAKE_T_P50;
            record(m, res.p50);
            record(m + 1, res.p99);
            progress("wake", r, o->runs, "%s: p50 %.1f us, p99 %.1f us; reader busy %.1f%% of "
                     "its time; %" PRIu64 " of %d records there before topic_wait",
                     process ? "other process" : "same process", res.p50, res.p99, cpu * 100,
                     early, WAKE_SAMPLES);
            if (cpu > 0.5)
                fprintf(stderr, "  wake: WARNING: the reader used the CPU %.0f%% of the time: "
                        "it did not sleep in topic_wait\n", cpu * 100);
            rm_rf(dir);
            free(dir);
        }
    }
}

static void run_lz4(const struct opts *o, const char *scratch)
{
    make_json_values();
    for (int r = 0; r < o->runs; r++) {
        for (int k = 0; k < 2; k++) {
            bool lz4 = (k + r) % 2 == 0;
            char sub[64];
            snprintf(sub, sizeof(sub), "%s-%d", lz4 ? "lz4" : "none", r);
            char *dir = path_join(scratch, sub);
            struct lz4_result res;
            bench_lz4(dir, lz4 ? "lz4" : "none", g_nlz4, &res);
            int m = lz4 ? M_LZ4_MBPS : M_RAW_MBPS;
            record(m, res.mbps);
            record(m + 1, res.bytes_per_rec);
            record(m + 2, res.scan_recs);
            progress("lz4", r, o->runs, "%s: %.1f MB/s, %.1f bytes/record, scan %.0f records/s",
                     lz4 ? "lz4 " : "none", res.mbps, res.bytes_per_rec, res.scan_recs);
            rm_rf(dir);
            free(dir);
        }
    }
    free(g_jvals);
    g_jvals = NULL;
}

static void run_commit(const struct opts *o, const char *scratch)
{
    for (int r = 0; r < o->runs; r++) {
        char sub[64];
        snprintf(sub, sizeof(sub), "commit-%d", r);
        char *dir = path_join(scratch, sub);
        uint64_t n = 0;
        double v = bench_commit(dir, &n);
        record(M_COMMIT, v);
        progress("commit", r, o->runs, "%.0f commits/s (%" PRIu64 " commits)", v, n);
        rm_rf(dir);
        free(dir);
    }
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
                 "%zu segment(s), %.1f MB of *.log; CPU user %.2f s, sys %.2f s "
                 "(appending thread: user %.2f s, sys %.2f s)",
                 recs, mbps, res.close_s * 1e3, nseg, (double)logb / MB,
                 res.cpu.user_s, res.cpu.sys_s, res.cpu.thread_user_s, res.cpu.thread_sys_s);
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
            struct cpu_use cpu;
            double t = bench_write(p, base_bytes, &cpu);
            record(M_WRITE_MBPS, (double)base_bytes / t / MB);
            progress("write", r, o.runs, "%.1f MB/s; CPU user %.2f s, sys %.2f s",
                     (double)base_bytes / t / MB, cpu.user_s, cpu.sys_s);
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
                /* A consumer's open: a read-only handle of the same topic. */
                double t4 = now_sec();
                TCHECK(topic_open(rdir, TOPIC_RDONLY, NULL, &t));
                double t5 = now_sec();
                if (topic_end_offset(t) != nread)
                    die("read-only handle has end offset %" PRIu64 ", want %" PRIu64,
                        topic_end_offset(t), nread);
                TCHECK(topic_read(t, nread - 1, buf, sizeof(buf), &got));
                check_value(buf, got, nread - 1, SMALL_LEN, "reopen read-only");
                TCHECK(topic_close(t));
                record(M_REOPEN_MS, (t1 - t0) * 1e3);
                record(M_REOPEN_CLOSE_MS, (t3 - t2) * 1e3);
                record(M_REOPEN_RO_MS, (t5 - t4) * 1e3);
                progress("reopen", r, o.runs, "open %.3f ms, close %.3f ms, read-only open %.3f ms",
                         (t1 - t0) * 1e3, (t3 - t2) * 1e3, (t5 - t4) * 1e3);
            }
        }
        rm_rf(rdir);
        free(rdir);
    }

    /* ---- durability, wake-ups, compression, commits ---- */
    g_nlz4 = nread;
    bool want_d1 = selected(&o, "durable1") || selected(&o, "durable4");
    if (want_d1) {
        fprintf(g_out, "durable: flush.messages=1, 100 B values; per run and workload %d untimed "
                "appends, then %.1f s (or %d appends\n  per thread) in %d slices "
                "interleaved with the other durable workloads\n",
                DURABLE_WARMUP, DURABLE_SECONDS, DURABLE_MAX, DURABLE_SLICES);
        fflush(g_out);
        run_durable(&o, scratch, selected(&o, "durable1"), selected(&o, "durable4"));
        if (selected(&o, "durable1")) {
            fprintf(g_out, "pwrite+fdatasync baseline: %zu-byte records (libtopic's log bytes per "
                    "100 B append, measured) into a fallocated file\n", g_frame);
            fflush(g_out);
        }
    }
    if (selected(&o, "wake") || selected(&o, "lz4") || selected(&o, "commit")) {
        fprintf(g_out, "wake: %d samples per run and mode, one append every %d us; "
                "lz4: %" PRIu64 " JSON-like 100 B records\n  per topic, %d scans; "
                "commit: %.1f s of topic_commit per run\n",
                WAKE_SAMPLES, WAKE_GAP_US, g_nlz4, LZ4_PASSES, COMMIT_SECONDS);
        fflush(g_out);
    }
    if (selected(&o, "wake"))
        run_wake(&o, scratch);
    if (selected(&o, "lz4"))
        run_lz4(&o, scratch);
    if (selected(&o, "commit"))
        run_commit(&o, scratch);

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
