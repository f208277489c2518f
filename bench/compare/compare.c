/*
 * bench/compare/compare.c: libtopic against the libraries users would pick
 * instead (SQLite in WAL mode, LMDB, RocksDB, LevelDB), in one process and
 * one run, on the same workloads.
 *
 *   ./compare [--runs N] [--records N] [--dir PATH] [--out DIR]
 *             [--peers LIST] [--only LIST]
 *
 * Every workload runs for every library in each of --runs runs (the order of
 * the libraries rotates from run to run and from slice to slice); the tables
 * show medians.  Every call is checked (a failing library dies with its own
 * error message), every key a store hands out must be the next one, and
 * every value read back is compared in full with what was written, so that
 * no number can come from a store that lost or mangled records.  Scratch
 * stores live in a fresh mkdtemp directory, removed at the end.
 *
 * See README.md beside this file for the settings and what each row means.
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
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#include "topic.h"
#include "compare.h"

/* ------------------------------------------------------------------------ */
/* Sizes                                                                     */

#define SMALL_LEN        100
#define LARGE_LEN        1024
#define DEFAULT_RECORDS  1000000ull     /* 100 B records; the 1 KiB rows use N/10 */
#define DEFAULT_RUNS     3
#define MAX_RUNS         100
#define MAX_PEERS        5
#define SCAN_PASSES      2              /* timed, after one untimed pass */
#define RAND_DIVISOR     2              /* random reads per run: N / 2 */
/* Durable rows: DUR_SLICES turns of DUR_SLICE_S seconds per library and run. */
#define DUR_SLICES       12
#define DUR_SLICE_S      0.125
#define DUR_WARMUP       10             /* untimed appends per store and run */
#define DUR_MAX          40000          /* appends per thread and run, at most */
#define DUR_THREADS      4
#define DUR_LEN          SMALL_LEN
/* The record-size sweep for the plot: unsynced single-record appends. */
static const size_t sweep_sizes[] = { 16, 64, 256, 1024, 4096, 16384 };
#define NSWEEP           (sizeof sweep_sizes / sizeof sweep_sizes[0])
#define SWEEP_DIVISOR    4              /* records per point: at most N/4 ... */
#define SWEEP_BYTES_DIV  4              /* ... and at most N*100/4 value bytes */

/* ------------------------------------------------------------------------ */
/* Helpers                                                                   */

unsigned char *g_pat;
static char *g_scratch;                 /* removed on exit, also by die() */
static _Atomic uint64_t g_syncs;        /* fsync + fdatasync + msync(MS_SYNC) calls */

static void rm_rf(const char *path);

void die(const char *fmt, ...)
{
    va_list ap;
    fflush(stdout);
    fprintf(stderr, "compare: ");
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

/*
 * Every library's syncs land here: the executable's definitions take
 * precedence over libc's for the static libtopic and for the shared
 * libraries alike.  Each counts the call and makes the system call.
 */
int fsync(int fd)
{
    atomic_fetch_add_explicit(&g_syncs, 1, memory_order_relaxed);
    return (int)syscall(SYS_fsync, fd);
}

int fdatasync(int fd)
{
    atomic_fetch_add_explicit(&g_syncs, 1, memory_order_relaxed);
    return (int)syscall(SYS_fdatasync, fd);
}

int msync(void *addr, size_t len, int flags)
{
    if (flags & MS_SYNC)
        atomic_fetch_add_explicit(&g_syncs, 1, memory_order_relaxed);
    return (int)syscall(SYS_msync, addr, len, flags);
}

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

static void *xmalloc(size_t n)
{
    void *p = malloc(n);
    if (!p)
        die("out of memory (%zu bytes)", n);
    return p;
}

char *path_join(const char *a, const char *b)
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
        fprintf(stderr, "compare: warning: cannot remove %s: %s\n", path, strerror(errno));
    return 0;
}

static void rm_rf(const char *path)
{
    nftw(path, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
}

/*
 * Writes back what earlier workloads left dirty in the scratch file system,
 * untimed, so that no library pays for another's writeback.
 */
static void settle(void)
{
    int fd = open(g_scratch, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0 || syncfs(fd) != 0)
        die("syncfs %s: %s", g_scratch, strerror(errno));
    close(fd);
}

/* A fresh, empty directory scratch/NAME-rRUN for one store; settles first. */
static char *fresh_dir(const char *peer, const char *what, int run)
{
    char name[128];
    snprintf(name, sizeof name, "%s-%s-r%d", peer, what, run);
    char *d = path_join(g_scratch, name);
    rm_rf(d);
    if (mkdir(d, 0755) != 0)
        die("mkdir %s: %s", d, strerror(errno));
    settle();
    return d;
}

/* Bytes a store takes on disk: per file, the smaller of its size and its
 * allocated blocks (sparse maps and preallocated tails count what is used). */
static uint64_t disk_bytes(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        die("opendir %s: %s", dir, strerror(errno));
    uint64_t sum = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        struct stat st;
        if (fstatat(dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0)
            die("stat %s/%s: %s", dir, e->d_name, strerror(errno));
        if (S_ISDIR(st.st_mode)) {
            char *sub = path_join(dir, e->d_name);
            sum += disk_bytes(sub);
            free(sub);
        } else if (S_ISREG(st.st_mode)) {
            uint64_t alloc = (uint64_t)st.st_blocks * 512;
            sum += (uint64_t)st.st_size < alloc ? (uint64_t)st.st_size : alloc;
        }
    }
    closedir(d);
    return sum;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static int cmp_float(const void *a, const void *b)
{
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

/* ------------------------------------------------------------------------ */
/* Peers and metrics                                                         */

static const struct peer_ops *const all_peers[] = {
    &peer_topic,
#ifdef HAVE_SQLITE
    &peer_sqlite,
#endif
#ifdef HAVE_LMDB
    &peer_lmdb,
#endif
#ifdef HAVE_ROCKSDB
    &peer_rocksdb,
#endif
#ifdef HAVE_LEVELDB
    &peer_leveldb,
#endif
};
#define NALL ((int)(sizeof all_peers / sizeof all_peers[0]))

static const struct peer_ops *g_peers[MAX_PEERS];
static int g_np;

enum {
    M_APP100, M_APP1K, M_BAT100, M_BAT1K, M_SCAN, M_SCAN_BATCHED, M_RAND,
    M_D1, M_D4, M_REOPEN, M_CLOSE, M_APP100_CLOSED, M_DISK,
    M_D1_P50, M_D1_P99, M_D1_PER_SYNC, M_D4_P50, M_D4_P99, M_D4_PER_SYNC,
    M_SWEEP0,
    M_COUNT = M_SWEEP0 + (int)NSWEEP
};

struct mdef {
    const char *key;      /* results.tsv name */
    const char *row;      /* table row */
    const char *unit;
    int decimals;
    bool lower_better;
};

static const struct mdef mdefs[M_COUNT] = {
    [M_APP100] = { "append_100b", "append 100 B, 1 record per call", "records/s", 0, false },
    [M_APP1K]  = { "append_1k", "append 1 KiB, 1 record per call", "records/s", 0, false },
    [M_BAT100] = { "batch_100b", "append 100 B, batches of 1000", "records/s", 0, false },
    [M_BAT1K]  = { "batch_1k", "append 1 KiB, batches of 1000", "records/s", 0, false },
    [M_SCAN]   = { "scan", "sequential scan of all records", "records/s", 0, false },
    [M_SCAN_BATCHED] = { "scan_batched", "sequential scan, records appended in batches of 1000",
                         "records/s", 0, false },
    [M_RAND]   = { "random_read", "random reads by key/offset", "reads/s", 0, false },
    [M_D1]     = { "durable1", "durable append, 1 thread", "ops/s", 0, false },
    [M_D4]     = { "durable4", "durable append, 4 threads, 1 handle", "ops/s", 0, false },
    [M_REOPEN] = { "reopen_ms", "reopen after clean close", "ms", 2, true },
    [M_CLOSE]  = { "close_ms", "clean close (sync) after the 100 B appends", "ms", 1, true },
    [M_APP100_CLOSED] = { "append_100b_closed", "append 100 B + that close: until all is on disk", "records/s", 0, false },
    [M_DISK]   = { "disk_bytes_per_record", "disk bytes per 100 B record", "bytes", 1, true },
    [M_D1_P50] = { "durable1_p50_us", "durable, 1 thread: p50 latency", "us", 0, true },
    [M_D1_P99] = { "durable1_p99_us", "durable, 1 thread: p99 latency", "us", 0, true },
    [M_D1_PER_SYNC] = { "durable1_appends_per_sync", "durable, 1 thread: appends per sync call", "", 2, false },
    [M_D4_P50] = { "durable4_p50_us", "durable, 4 threads: p50 latency", "us", 0, true },
    [M_D4_P99] = { "durable4_p99_us", "durable, 4 threads: p99 latency", "us", 0, true },
    [M_D4_PER_SYNC] = { "durable4_appends_per_sync", "durable, 4 threads: appends per sync call", "", 2, false },
    [M_SWEEP0 + 0] = { "sweep_16", "append 16 B", "records/s", 0, false },
    [M_SWEEP0 + 1] = { "sweep_64", "append 64 B", "records/s", 0, false },
    [M_SWEEP0 + 2] = { "sweep_256", "append 256 B", "records/s", 0, false },
    [M_SWEEP0 + 3] = { "sweep_1024", "append 1 KiB", "records/s", 0, false },
    [M_SWEEP0 + 4] = { "sweep_4096", "append 4 KiB", "records/s", 0, false },
    [M_SWEEP0 + 5] = { "sweep_16384", "append 16 KiB", "records/s", 0, false },
};

static double g_vals[M_COUNT][MAX_PEERS][MAX_RUNS];
static int g_nvals[M_COUNT][MAX_PEERS];

static void record(int m, int p, double v)
{
    if (g_nvals[m][p] < MAX_RUNS)
        g_vals[m][p][g_nvals[m][p]++] = v;
}

static bool have(int m, int p)
{
    return g_nvals[m][p] > 0;
}

static double median(int m, int p)
{
    int n = g_nvals[m][p];
    double tmp[MAX_RUNS];
    memcpy(tmp, g_vals[m][p], sizeof(double) * (size_t)n);
    qsort(tmp, (size_t)n, sizeof(double), cmp_double);
    return n % 2 ? tmp[n / 2] : (tmp[n / 2 - 1] + tmp[n / 2]) / 2;
}

static double minv(int m, int p)
{
    double v = g_vals[m][p][0];
    for (int i = 1; i < g_nvals[m][p]; i++)
        v = g_vals[m][p][i] < v ? g_vals[m][p][i] : v;
    return v;
}

static double maxv(int m, int p)
{
    double v = g_vals[m][p][0];
    for (int i = 1; i < g_nvals[m][p]; i++)
        v = g_vals[m][p][i] > v ? g_vals[m][p][i] : v;
    return v;
}

/* The peer at position j of run r's order: the order rotates every run. */
static int order(int j, int r)
{
    return (j + r) % g_np;
}

static void progress(const struct peer_ops *p, const char *what, int run, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void progress(const struct peer_ops *p, const char *what, int run, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "  run %d %-9s %-12s ", run + 1, p->name, what);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

/* ------------------------------------------------------------------------ */
/* Options                                                                   */

static const char *const groups[] = { "append", "append1k", "batch", "sweep", "durable", NULL };

struct opts {
    int runs;
    uint64_t records;
    const char *dir;
    const char *out;
    bool only[8];
    bool any_only;
};

static void usage(FILE *f)
{
    fprintf(f,
        "usage: compare [--runs N] [--records N] [--dir PATH] [--out DIR] [--peers LIST] [--only LIST]\n"
        "  --runs N      run every workload N times (default %d); tables show medians\n"
        "  --records N   100 B records per append workload (default %llu); the 1 KiB rows\n"
        "                append N/10; the scan and random reads use the 100 B store\n"
        "                (N/%d random reads per run); the sweep appends at most N/%d records\n"
        "                and N*100/%d value bytes per record size; the durable rows run\n"
        "                for a fixed time (%d x %.3f s per library and run)\n"
        "  --dir PATH    make the scratch directory in PATH (default /tmp); removed at the end\n"
        "  --out DIR     write results.md, results.tsv and sweep.dat into DIR\n"
        "  --peers LIST  comma-separated subset of:",
        DEFAULT_RUNS, (unsigned long long)DEFAULT_RECORDS, RAND_DIVISOR, SWEEP_DIVISOR,
        SWEEP_BYTES_DIV, DUR_SLICES, DUR_SLICE_S);
    for (int i = 0; i < NALL; i++)
        fprintf(f, " %s", all_peers[i]->id);
    fprintf(f, " (libtopic is always in)\n"
        "  --only LIST   comma-separated workloads: append (100 B appends, close, reopen, scan,\n"
        "                random reads), append1k, batch, sweep, durable\n");
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

static bool in_list(const char *list, const char *word)
{
    size_t n = strlen(word);
    for (const char *p = list; *p;) {
        const char *c = strchr(p, ',');
        size_t l = c ? (size_t)(c - p) : strlen(p);
        if (l == n && strncmp(p, word, n) == 0)
            return true;
        p += l + (c != NULL);
    }
    return false;
}

static void parse_opts(int argc, char **argv, struct opts *o)
{
    const char *peers = NULL, *only = NULL;
    o->runs = DEFAULT_RUNS;
    o->records = DEFAULT_RECORDS;
    for (int i = 1; i < argc; i++) {
        const char *v;
        if ((v = opt_value(argc, argv, &i, "--runs"))) {
            uint64_t r = parse_u64(v, "--runs");
            if (r > MAX_RUNS)
                die("--runs: at most %d", MAX_RUNS);
            o->runs = (int)r;
        } else if ((v = opt_value(argc, argv, &i, "--records"))) {
            o->records = parse_u64(v, "--records");
            if (o->records < 1000 || o->records > (1ull << 32))
                die("--records: between 1000 and 2^32");
        } else if ((v = opt_value(argc, argv, &i, "--dir"))) {
            o->dir = v;
        } else if ((v = opt_value(argc, argv, &i, "--out"))) {
            o->out = v;
        } else if ((v = opt_value(argc, argv, &i, "--peers"))) {
            peers = v;
        } else if ((v = opt_value(argc, argv, &i, "--only"))) {
            only = v;
        } else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            usage(stdout);
            exit(0);
        } else {
            usage(stderr);
            die("unknown argument '%s'", argv[i]);
        }
    }
    g_np = 0;
    for (int i = 0; i < NALL; i++)
        if (i == 0 || !peers || in_list(peers, all_peers[i]->id))
            g_peers[g_np++] = all_peers[i];
    if (only) {
        o->any_only = true;
        for (int k = 0; groups[k]; k++)
            o->only[k] = in_list(only, groups[k]);
    }
}

static bool selected(const struct opts *o, const char *group)
{
    if (!o->any_only)
        return true;
    for (int k = 0; groups[k]; k++)
        if (strcmp(groups[k], group) == 0)
            return o->only[k];
    return false;
}

/* ------------------------------------------------------------------------ */
/* Unsynced appends                                                          */

struct append_times {
    double open_s, append_s, close_s;
};

/* One append per record, n records of len bytes, into a fresh store in dir. */
static void run_append(const struct peer_ops *p, const char *dir, uint64_t n, size_t len,
                       struct append_times *t)
{
    double t0 = now_sec();
    void *h = p->open(dir, MODE_FAST, true);
    double t1 = now_sec();
    for (uint64_t i = 0; i < n; i++) {
        uint64_t key = p->append(h, value_of(i), len);
        if (key != i)
            die("%s: append #%" PRIu64 " got key %" PRIu64, p->name, i, key);
    }
    double t2 = now_sec();
    if (p->end(h) != n)
        die("%s: end %" PRIu64 " after %" PRIu64 " appends", p->name, p->end(h), n);
    double t3 = now_sec();
    p->close(h);
    double t4 = now_sec();
    t->open_s = t1 - t0;
    t->append_s = t2 - t1;
    t->close_s = t4 - t3;
}

/* Batches of BATCH_N records; filling the array of values is timed too. */
static void run_batch(const struct peer_ops *p, const char *dir, uint64_t n, size_t len,
                      struct append_times *t)
{
    static const void *vals[BATCH_N];
    double t0 = now_sec();
    void *h = p->open(dir, MODE_FAST, true);
    double t1 = now_sec();
    for (uint64_t base = 0; base < n; base += BATCH_N) {
        size_t k = n - base < BATCH_N ? (size_t)(n - base) : BATCH_N;
        for (size_t j = 0; j < k; j++)
            vals[j] = value_of(base + j);
        uint64_t first = p->append_batch(h, vals, len, k);
        if (first != base)
            die("%s: batch at %" PRIu64 " got first key %" PRIu64, p->name, base, first);
    }
    double t2 = now_sec();
    if (p->end(h) != n)
        die("%s: end %" PRIu64 " after %" PRIu64 " batched records", p->name, p->end(h), n);
    double t3 = now_sec();
    p->close(h);
    double t4 = now_sec();
    t->open_s = t1 - t0;
    t->append_s = t2 - t1;
    t->close_s = t4 - t3;
}

/* Full comparison of a record read with get(), and of a key past the end. */
static void check_get(const struct peer_ops *p, void *h, uint64_t key, const unsigned char *want,
                      size_t len)
{
    unsigned char buf[MAX_VALUE];
    size_t got = p->get(h, key, buf, sizeof buf);
    if (got == NOT_FOUND)
        die("%s: get %" PRIu64 ": not found", p->name, key);
    if (got != len || memcmp(buf, want, len) != 0)
        die("%s: get %" PRIu64 ": %zu bytes, want %zu bytes%s", p->name, key, got, len,
            got == len ? ": they differ" : "");
}

/* Scans the n 100 B records of an open store: one untimed pass, then
 * SCAN_PASSES timed ones; returns records/s. */
static double timed_scan(const struct peer_ops *p, void *h, uint64_t n)
{
    double ts = 0;
    for (int pass = 0; pass <= SCAN_PASSES; pass++) {
        double a = now_sec();
        uint64_t got = p->scan(h, SMALL_LEN);
        double b = now_sec();
        if (got != n)
            die("%s: scan saw %" PRIu64 " records, want %" PRIu64, p->name, got, n);
        if (pass > 0)
            ts += b - a;
    }
    return (double)n * SCAN_PASSES / ts;
}

/*
 * The 100 B workload and everything that reads its store: append N records
 * one per call, close (timed apart: it syncs), measure the space, reopen
 * (timed: until the store knows its end), check, scan, random reads.
 */
static void phase_append100(const struct opts *o, int run)
{
    uint64_t n = o->records;
    char *dirs[MAX_PEERS];
    for (int j = 0; j < g_np; j++) {
        int pi = order(j, run);
        const struct peer_ops *p = g_peers[pi];
        dirs[pi] = fresh_dir(p->id, "a100", run);
        struct append_times t;
        run_append(p, dirs[pi], n, SMALL_LEN, &t);
        double disk = (double)disk_bytes(dirs[pi]) / (double)n;
        record(M_APP100, pi, (double)n / t.append_s);
        record(M_CLOSE, pi, t.close_s * 1e3);
        record(M_APP100_CLOSED, pi, (double)n / (t.append_s + t.close_s));
        record(M_DISK, pi, disk);
        progress(p, "append100", run, "%.0f records/s, open %.1f ms, close %.1f ms, %.1f B/record",
                 (double)n / t.append_s, t.open_s * 1e3, t.close_s * 1e3, disk);
    }
    uint64_t nrand = n / RAND_DIVISOR;
    unsigned char buf[MAX_VALUE];
    for (int j = 0; j < g_np; j++) {
        int pi = order(j, run);
        const struct peer_ops *p = g_peers[pi];
        settle();
        double t0 = now_sec();
        void *h = p->open(dirs[pi], MODE_FAST, false);
        double t1 = now_sec();
        record(M_REOPEN, pi, (t1 - t0) * 1e3);
        if (p->end(h) != n)
            die("%s: reopened with end %" PRIu64 ", want %" PRIu64, p->name, p->end(h), n);
        check_get(p, h, n - 1, value_of(n - 1), SMALL_LEN);
        check_get(p, h, 0, value_of(0), SMALL_LEN);
        if (p->get(h, n, buf, sizeof buf) != NOT_FOUND)
            die("%s: get past the end found a record", p->name);

        double scan = timed_scan(p, h, n);
        record(M_SCAN, pi, scan);

        /* Random reads, every value compared in full. */
        uint64_t seed = 0x5eed0000u + (uint64_t)run;
        double r0 = now_sec();
        for (uint64_t k = 0; k < nrand; k++) {
            uint64_t key = splitmix64(&seed) % n;
            size_t got = p->get(h, key, buf, sizeof buf);
            if (got != SMALL_LEN || memcmp(buf, value_of(key), SMALL_LEN) != 0)
                die("%s: random get %" PRIu64 ": wrong value (%zu bytes)", p->name, key,
                    got == NOT_FOUND ? 0 : got);
        }
        double r1 = now_sec();
        record(M_RAND, pi, (double)nrand / (r1 - r0));
        p->close(h);
        progress(p, "reads", run, "reopen %.2f ms, scan %.0f records/s, random %.0f reads/s",
                 (t1 - t0) * 1e3, scan, (double)nrand / (r1 - r0));
        rm_rf(dirs[pi]);
        free(dirs[pi]);
    }
}

static void phase_append1k(const struct opts *o, int run)
{
    uint64_t n = o->records / 10;
    for (int j = 0; j < g_np; j++) {
        int pi = order(j, run);
        const struct peer_ops *p = g_peers[pi];
        char *d = fresh_dir(p->id, "a1k", run);
        struct append_times t;
        run_append(p, d, n, LARGE_LEN, &t);
        record(M_APP1K, pi, (double)n / t.append_s);
        progress(p, "append1k", run, "%.0f records/s (%.1f MB/s)", (double)n / t.append_s,
                 (double)n * LARGE_LEN / t.append_s / 1e6);
        rm_rf(d);
        free(d);
    }
}

static void phase_batch(const struct opts *o, int run)
{
    for (int sz = 0; sz < 2; sz++) {
        size_t len = sz == 0 ? SMALL_LEN : LARGE_LEN;
        uint64_t n = sz == 0 ? o->records : o->records / 10;
        for (int j = 0; j < g_np; j++) {
            int pi = order(j, run);
            const struct peer_ops *p = g_peers[pi];
            char *d = fresh_dir(p->id, sz == 0 ? "b100" : "b1k", run);
            struct append_times t;
            run_batch(p, d, n, len, &t);
            record(sz == 0 ? M_BAT100 : M_BAT1K, pi, (double)n / t.append_s);
            progress(p, sz == 0 ? "batch100" : "batch1k", run, "%.0f records/s (%.1f MB/s)",
                     (double)n / t.append_s, (double)n * (double)len / t.append_s / 1e6);
            if (sz == 0) {
                /* A store written by producers that batch, as a log's
                 * usually are: libtopic keeps each call's records in one
                 * batch with one checksum; the others store them alike
                 * however they came. */
                settle();
                void *h = p->open(d, MODE_FAST, false);
                double scan = timed_scan(p, h, n);
                record(M_SCAN_BATCHED, pi, scan);
                p->close(h);
                progress(p, "batch100", run, "scan %.0f records/s", scan);
            }
            rm_rf(d);
            free(d);
        }
    }
}

static uint64_t sweep_count(const struct opts *o, size_t len)
{
    uint64_t n = o->records / SWEEP_DIVISOR;
    uint64_t by_bytes = o->records * SMALL_LEN / SWEEP_BYTES_DIV / len;
    n = by_bytes < n ? by_bytes : n;
    return n < 100 ? 100 : n;
}

static void phase_sweep(const struct opts *o, int run)
{
    for (size_t s = 0; s < NSWEEP; s++) {
        size_t len = sweep_sizes[s];
        uint64_t n = sweep_count(o, len);
        for (int j = 0; j < g_np; j++) {
            int pi = order(j + (int)s, run);
            const struct peer_ops *p = g_peers[pi];
            char *d = fresh_dir(p->id, "sweep", run);
            struct append_times t;
            run_append(p, d, n, len, &t);
            record(M_SWEEP0 + (int)s, pi, (double)n / t.append_s);
            progress(p, "sweep", run, "%zu B x %" PRIu64 ": %.0f records/s (%.1f MB/s)", len, n,
                     (double)n / t.append_s, (double)n * (double)len / t.append_s / 1e6);
            rm_rf(d);
            free(d);
        }
    }
}

/* ------------------------------------------------------------------------ */
/* Durable appends                                                           */

/* The value of a durable append: thread tid's seq-th, far from the others. */
static uint64_t dur_vid(int tid, uint64_t seq)
{
    return (1ull << 40) + ((uint64_t)tid << 32) + seq;
}

struct dthread {
    const struct peer_ops *p;
    void *h;
    int tid;
    double slice_s;
    double start, finish;       /* this slice */
    uint64_t n;                 /* appends so far this run (warm-up included) */
    uint64_t *keys;             /* key of each append */
    float *lat_us;              /* latency of each timed append */
    uint64_t nlat;
    pthread_t thr;
};

struct dstore {
    const struct peer_ops *p;
    void *h;
    char *dir;
    int nthreads;
    struct dthread th[DUR_THREADS];
    double time_s;              /* sum of the slices' wall times */
    uint64_t ops;               /* timed appends */
    uint64_t syncs;             /* sync calls during the slices */
};

static void *dur_worker(void *arg)
{
    struct dthread *d = arg;
    d->start = now_sec();
    double deadline = d->start + d->slice_s;
    double t = d->start;
    while (t < deadline && d->n < DUR_MAX) {
        uint64_t key = d->p->append(d->h, value_of(dur_vid(d->tid, d->n)), DUR_LEN);
        double t2 = now_sec();
        d->keys[d->n++] = key;
        d->lat_us[d->nlat++] = (float)((t2 - t) * 1e6);
        t = t2;
    }
    d->finish = t;
    return NULL;
}

static void dur_open(struct dstore *s, const struct peer_ops *p, int nthreads, int run)
{
    memset(s, 0, sizeof *s);
    s->p = p;
    s->nthreads = nthreads;
    s->dir = fresh_dir(p->id, nthreads == 1 ? "d1" : "d4", run);
    s->h = p->open(s->dir, MODE_DURABLE, true);
    for (int i = 0; i < nthreads; i++) {
        struct dthread *d = &s->th[i];
        d->p = p;
        d->h = s->h;
        d->tid = i;
        d->slice_s = DUR_SLICE_S;
        d->keys = xmalloc(sizeof(uint64_t) * DUR_MAX);
        d->lat_us = xmalloc(sizeof(float) * DUR_MAX);
        for (int k = 0; k < DUR_WARMUP && d->n < DUR_MAX; k++) {
            d->keys[d->n] = p->append(s->h, value_of(dur_vid(i, d->n)), DUR_LEN);
            d->n++;
        }
    }
}

static void dur_slice(struct dstore *s)
{
    uint64_t before_ops = 0, after_ops = 0;
    for (int i = 0; i < s->nthreads; i++)
        before_ops += s->th[i].n;
    uint64_t sync0 = atomic_load(&g_syncs);
    for (int i = 0; i < s->nthreads; i++)
        if (pthread_create(&s->th[i].thr, NULL, dur_worker, &s->th[i]) != 0)
            die("pthread_create failed");
    for (int i = 0; i < s->nthreads; i++)
        pthread_join(s->th[i].thr, NULL);
    s->syncs += atomic_load(&g_syncs) - sync0;
    double start = s->th[0].start, finish = s->th[0].finish;
    for (int i = 0; i < s->nthreads; i++) {
        start = s->th[i].start < start ? s->th[i].start : start;
        finish = s->th[i].finish > finish ? s->th[i].finish : finish;
        after_ops += s->th[i].n;
    }
    s->time_s += finish - start;
    s->ops += after_ops - before_ops;
}

/* Checks every append of the run, records the metrics, closes, removes. */
static void dur_finish(struct dstore *s, int pi, int run)
{
    const struct peer_ops *p = s->p;
    uint64_t total = 0, nlat = 0;
    for (int i = 0; i < s->nthreads; i++) {
        total += s->th[i].n;
        nlat += s->th[i].nlat;
    }
    if (p->end(s->h) != total)
        die("%s: durable: end %" PRIu64 " after %" PRIu64 " appends", p->name, p->end(s->h), total);
    unsigned char *seen = calloc(total ? total : 1, 1);
    if (!seen)
        die("out of memory");
    for (int i = 0; i < s->nthreads; i++)
        for (uint64_t k = 0; k < s->th[i].n; k++) {
            uint64_t key = s->th[i].keys[k];
            if (key >= total || seen[key]++)
                die("%s: durable: key %" PRIu64 " handed out twice or out of range", p->name, key);
            check_get(p, s->h, key, value_of(dur_vid(i, k)), DUR_LEN);
        }
    free(seen);

    float *lat = xmalloc(sizeof(float) * (nlat ? nlat : 1));
    uint64_t m = 0;
    for (int i = 0; i < s->nthreads; i++) {
        memcpy(lat + m, s->th[i].lat_us, sizeof(float) * s->th[i].nlat);
        m += s->th[i].nlat;
    }
    qsort(lat, nlat, sizeof(float), cmp_float);
    double p50 = nlat ? lat[(nlat * 50 + 99) / 100 - 1] : 0;
    double p99 = nlat ? lat[(nlat * 99 + 99) / 100 - 1] : 0;
    free(lat);
    double ops = (double)s->ops / s->time_s;
    double per_sync = s->syncs ? (double)s->ops / (double)s->syncs : 0;
    bool one = s->nthreads == 1;
    record(one ? M_D1 : M_D4, pi, ops);
    record(one ? M_D1_P50 : M_D4_P50, pi, p50);
    record(one ? M_D1_P99 : M_D4_P99, pi, p99);
    record(one ? M_D1_PER_SYNC : M_D4_PER_SYNC, pi, per_sync);
    progress(p, one ? "durable1" : "durable4", run,
             "%.0f ops/s, p50 %.0f us, p99 %.0f us, %.2f appends per sync call (%" PRIu64
             " appends, %" PRIu64 " syncs)", ops, p50, p99, per_sync, s->ops, s->syncs);
    if (s->syncs == 0 || per_sync > s->nthreads + 0.01)
        fprintf(stderr, "compare: warning: %s %s: %.2f appends per sync call: some were "
                "acknowledged before any sync could cover them\n",
                p->name, one ? "durable1" : "durable4", per_sync);

    p->close(s->h);
    rm_rf(s->dir);
    free(s->dir);
    for (int i = 0; i < s->nthreads; i++) {
        free(s->th[i].keys);
        free(s->th[i].lat_us);
    }
}

/*
 * All the durable stores of a run are open at once and take turns, a slice
 * each, in an order that rotates: a virtual disk's sync rate drifts over
 * seconds, and each library then samples the same moments.
 */
static void phase_durable(int run)
{
    static struct dstore d1[MAX_PEERS], d4[MAX_PEERS];
    for (int j = 0; j < g_np; j++) {
        int pi = order(j, run);
        dur_open(&d1[pi], g_peers[pi], 1, run);
        dur_open(&d4[pi], g_peers[pi], DUR_THREADS, run);
    }
    for (int sl = 0; sl < DUR_SLICES; sl++)
        for (int j = 0; j < g_np; j++) {
            int pi = order(j + sl, run);
            dur_slice(&d1[pi]);
            dur_slice(&d4[pi]);
        }
    for (int j = 0; j < g_np; j++) {
        int pi = order(j, run);
        dur_finish(&d1[pi], pi, run);
        dur_finish(&d4[pi], pi, run);
    }
}

/* ------------------------------------------------------------------------ */
/* The machine                                                               */

static void cpu_model(char *buf, size_t cap)
{
    snprintf(buf, cap, "unknown CPU");
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (!f)
        return;
    char line[512];
    while (fgets(line, sizeof line, f))
        if (strncmp(line, "model name", 10) == 0) {
            char *c = strchr(line, ':');
            if (c) {
                c++;
                while (*c == ' ' || *c == '\t')
                    c++;
                c[strcspn(c, "\n")] = 0;
                snprintf(buf, cap, "%s", c);
            }
            break;
        }
    fclose(f);
}

/* The file system type and device of the mount holding path. */
static void fs_of(const char *path, char *buf, size_t cap)
{
    char real[4096];
    snprintf(buf, cap, "unknown file system");
    if (!realpath(path, real))
        return;
    FILE *f = fopen("/proc/self/mounts", "r");
    if (!f)
        return;
    char dev[512], mnt[1024], type[64];
    size_t best = 0;
    while (fscanf(f, "%511s %1023s %63s %*[^\n]", dev, mnt, type) == 3) {
        size_t l = strlen(mnt);
        bool under = strncmp(real, mnt, l) == 0 && (real[l] == '/' || real[l] == 0 || l == 1);
        if (under && l >= best) {
            best = l;
            snprintf(buf, cap, "%s (%s on %s)", type, dev, mnt);
        }
    }
    fclose(f);
}

/* The 1-minute load average, as /proc/loadavg gives it. */
static void loadavg(char *buf, size_t cap)
{
    snprintf(buf, cap, "?");
    FILE *f = fopen("/proc/loadavg", "r");
    if (!f)
        return;
    char line[128];
    if (fgets(line, sizeof line, f)) {
        line[strcspn(line, " \n")] = 0;
        snprintf(buf, cap, "%.16s", line);
    }
    fclose(f);
}

static void pkg_version(const char *pkg, char *buf, size_t cap)
{
    char cmd[256];
    snprintf(cmd, sizeof cmd, "dpkg-query -W -f='${Version}' %s 2>/dev/null", pkg);
    buf[0] = 0;
    FILE *f = popen(cmd, "r");
    if (!f)
        return;
    if (!fgets(buf, (int)cap, f))
        buf[0] = 0;
    pclose(f);
    buf[strcspn(buf, "\n")] = 0;
}

static const char *peer_pkg(const struct peer_ops *p)
{
    if (strcmp(p->id, "sqlite") == 0)
        return "libsqlite3-dev";
    if (strcmp(p->id, "lmdb") == 0)
        return "liblmdb-dev";
    if (strcmp(p->id, "rocksdb") == 0)
        return "librocksdb-dev";
    if (strcmp(p->id, "leveldb") == 0)
        return "libleveldb-dev";
    return NULL;
}

/* ------------------------------------------------------------------------ */
/* Output                                                                    */

static void fmt_num(char *buf, size_t cap, double v, int decimals)
{
    if (decimals > 0 || v < 1000) {
        snprintf(buf, cap, "%.*f", decimals > 0 ? decimals : 0, v);
        return;
    }
    /* thousands separators */
    char raw[64];
    snprintf(raw, sizeof raw, "%.0f", v);
    size_t n = strlen(raw), o = 0;
    for (size_t i = 0; i < n && o + 2 < cap; i++) {
        buf[o++] = raw[i];
        if ((n - i - 1) % 3 == 0 && i + 1 < n)
            buf[o++] = ',';
    }
    buf[o] = 0;
}

/* libtopic over the best peer, so that > 1 always means libtopic is ahead. */
static bool ratio_of(int m, double *ratio, int *best)
{
    *best = -1;
    if (!have(m, 0))
        return false;
    for (int p = 1; p < g_np; p++) {
        if (!have(m, p))
            continue;
        double v = median(m, p);
        if (*best < 0 || (mdefs[m].lower_better ? v < median(m, *best) : v > median(m, *best)))
            *best = p;
    }
    if (*best < 0)
        return false;
    double t = median(m, 0), b = median(m, *best);
    *ratio = mdefs[m].lower_better ? (t > 0 ? b / t : 0) : (b > 0 ? t / b : 0);
    return true;
}

static void table(FILE *f, const int *rows, int nrows, bool with_ratio)
{
    fprintf(f, "| workload | unit |");
    for (int p = 0; p < g_np; p++)
        fprintf(f, " %s |", g_peers[p]->name);
    if (with_ratio)
        fprintf(f, " libtopic / best peer |");
    fprintf(f, "\n|---|---|");
    for (int p = 0; p < g_np; p++)
        fprintf(f, "---:|");
    if (with_ratio)
        fprintf(f, "---:|");
    fprintf(f, "\n");
    for (int r = 0; r < nrows; r++) {
        int m = rows[r];
        bool any = false;
        for (int p = 0; p < g_np; p++)
            any |= have(m, p);
        if (!any)
            continue;
        fprintf(f, "| %s | %s%s |", mdefs[m].row, mdefs[m].unit,
                mdefs[m].lower_better && mdefs[m].unit[0] ? ", lower is better" : "");
        /* The best median of the row is in bold (every one that ties). */
        double best_v = 0;
        bool have_best = false;
        for (int p = 0; p < g_np; p++) {
            if (!have(m, p))
                continue;
            double v = median(m, p);
            if (!have_best || (mdefs[m].lower_better ? v < best_v : v > best_v))
                best_v = v;
            have_best = true;
        }
        for (int p = 0; p < g_np; p++) {
            char num[64], best_num[64];
            bool bold = false;
            if (have(m, p)) {
                fmt_num(num, sizeof num, median(m, p), mdefs[m].decimals);
                fmt_num(best_num, sizeof best_num, best_v, mdefs[m].decimals);
                bold = strcmp(num, best_num) == 0;   /* equal as printed */
            } else {
                snprintf(num, sizeof num, "-");
            }
            fprintf(f, " %s%s%s |", bold ? "**" : "", num, bold ? "**" : "");
        }
        if (with_ratio) {
            double ratio;
            int best;
            if (ratio_of(m, &ratio, &best))
                fprintf(f, " %.2f (%s) |", ratio, g_peers[best]->name);
            else
                fprintf(f, " - |");
        }
        fprintf(f, "\n");
    }
}

static char g_load_before[32], g_load_after[32];

static void write_results_md(FILE *f, const struct opts *o, const char *when, double elapsed,
                             const char *scratch_fs)
{
    char model[256];
    struct utsname u;
    cpu_model(model, sizeof model);
    uname(&u);
    fprintf(f, "# libtopic against SQLite, LMDB, RocksDB and LevelDB\n\n");
    fprintf(f, "Written by `bench/compare/compare` (`make bench-compare`); see "
            "[README.md](README.md) for the workloads and settings.\n\n");
    fprintf(f, "- date: %s\n", when);
    fprintf(f, "- machine: %ld CPUs (nproc), %s, %s %s, %.1f GiB RAM\n",
            sysconf(_SC_NPROCESSORS_ONLN), model, u.sysname, u.release,
            (double)sysconf(_SC_PHYS_PAGES) * (double)sysconf(_SC_PAGESIZE) / (1u << 30));
    fprintf(f, "- scratch directory: %s\n", scratch_fs);
    fprintf(f, "- 1-minute load average: %s before the runs, %s after them (other "
            "processes share the machine when it is above 1 or so)\n", g_load_before, g_load_after);
    fprintf(f, "- libraries:");
    for (int p = 0; p < g_np; p++) {
        char pv[128] = "";
        const char *pkg = peer_pkg(g_peers[p]);
        if (pkg)
            pkg_version(pkg, pv, sizeof pv);
        fprintf(f, "%s %s %s", p ? "," : "", g_peers[p]->name, g_peers[p]->version());
        if (pv[0])
            fprintf(f, " (Debian %s %s)", pkg, pv);
        else if (p == 0 && getenv("COMPARE_TOPIC_TREE") && *getenv("COMPARE_TOPIC_TREE"))
            fprintf(f, " (lib/libtopic.a of this tree, git %s)", getenv("COMPARE_TOPIC_TREE"));
        else if (p == 0)
            fprintf(f, " (lib/libtopic.a of this tree)");
    }
    fprintf(f, "\n");
    fprintf(f, "- runs: %d, medians shown; --records %" PRIu64 " (100 B rows: %" PRIu64
            " records, 1 KiB rows: %" PRIu64 ", random reads: %" PRIu64 " per run; durable rows: "
            "%d x %.3f s per library and run)\n",
            o->runs, o->records, o->records, o->records / 10, o->records / RAND_DIVISOR,
            DUR_SLICES, DUR_SLICE_S);
    fprintf(f, "- total time of the measurement: %.0f s\n\n", elapsed);

    static const int main_rows[] = { M_APP100, M_APP1K, M_BAT100, M_BAT1K, M_SCAN,
                                     M_SCAN_BATCHED, M_RAND,
                                     M_D1, M_D4, M_REOPEN, M_CLOSE, M_APP100_CLOSED, M_DISK };
    fprintf(f, "## Medians\n\n");
    fprintf(f, "Records/s count records of the row's size (1 KiB rows: 1,024-byte values); "
            "the last column is libtopic's median over the best peer's (for the rows where "
            "lower is better, the best peer's over libtopic's), so above 1 means libtopic is "
            "ahead, and names that peer.\n\n");
    table(f, main_rows, (int)(sizeof main_rows / sizeof main_rows[0]), true);

    static const int dur_rows[] = { M_D1_P50, M_D1_P99, M_D1_PER_SYNC,
                                    M_D4_P50, M_D4_P99, M_D4_PER_SYNC };
    fprintf(f, "\n## Durable appends in detail\n\n");
    fprintf(f, "Latencies are per call, pooled over all threads (nearest rank). Appends per sync "
            "call counts fsync, fdatasync and msync(MS_SYNC) calls made by the process during "
            "the slices: 1 thread can reach at most 1.00 while syncing every append, 4 threads at "
            "most 4.00 (group commit). LMDB's second sync per commit, the meta page written "
            "through an O_DSYNC descriptor, is not a call and is not counted.\n\n");
    table(f, dur_rows, (int)(sizeof dur_rows / sizeof dur_rows[0]), false);

    int sweep_rows[NSWEEP];
    for (size_t s = 0; s < NSWEEP; s++)
        sweep_rows[s] = M_SWEEP0 + (int)s;
    fprintf(f, "\n## Unsynced single-record appends by record size\n\n");
    fprintf(f, "One record per call, as in the first row; per size at most %" PRIu64
            " records and %" PRIu64 " value bytes. Plotted in "
            "[throughput.png](throughput.png) (records/s and MB/s of values).\n\n",
            o->records / SWEEP_DIVISOR, o->records * SMALL_LEN / SWEEP_BYTES_DIV);
    table(f, sweep_rows, (int)NSWEEP, true);

    fprintf(f, "\n## Settings\n\n");
    for (int p = 0; p < g_np; p++) {
        fprintf(f, "- %s, unsynced rows: %s\n", g_peers[p]->name, g_peers[p]->settings(MODE_FAST));
        fprintf(f, "- %s, durable rows: %s\n", g_peers[p]->name, g_peers[p]->settings(MODE_DURABLE));
    }
}

static void write_tsv(FILE *f)
{
    fprintf(f, "metric\tunit\tlibrary\tmedian\tmin\tmax\truns\n");
    for (int m = 0; m < M_COUNT; m++)
        for (int p = 0; p < g_np; p++)
            if (have(m, p))
                fprintf(f, "%s\t%s\t%s\t%.6g\t%.6g\t%.6g\t%d\n", mdefs[m].key,
                        mdefs[m].unit[0] ? mdefs[m].unit : "ratio", g_peers[p]->id,
                        median(m, p), minv(m, p), maxv(m, p), g_nvals[m][p]);
}

static void write_sweep(FILE *f)
{
    fprintf(f, "# unsynced single-record appends: median records/s by record size (bytes)\n");
    fprintf(f, "size");
    for (int p = 0; p < g_np; p++)
        fprintf(f, "\t%s", g_peers[p]->name);
    fprintf(f, "\n");
    for (size_t s = 0; s < NSWEEP; s++) {
        fprintf(f, "%zu", sweep_sizes[s]);
        for (int p = 0; p < g_np; p++)
            if (have(M_SWEEP0 + (int)s, p))
                fprintf(f, "\t%.1f", median(M_SWEEP0 + (int)s, p));
            else
                fprintf(f, "\tNaN");
        fprintf(f, "\n");
    }
}

static FILE *out_file(const char *dir, const char *name)
{
    char *path = path_join(dir, name);
    FILE *f = fopen(path, "w");
    if (!f)
        die("cannot write %s: %s", path, strerror(errno));
    free(path);
    return f;
}

static void close_out(FILE *f, const char *name)
{
    if (ferror(f) || fclose(f) != 0)
        die("writing %s failed", name);
}

/* ------------------------------------------------------------------------ */

int main(int argc, char **argv)
{
    struct opts o = { 0 };
    parse_opts(argc, argv, &o);
    setvbuf(stdout, NULL, _IOLBF, 0);

    g_pat = xmalloc(PAT_SIZE);
    uint64_t seed = 0xC0FFEEull;
    for (size_t i = 0; i < PAT_SIZE; i += 8) {
        uint64_t r = splitmix64(&seed);
        memcpy(g_pat + i, &r, 8);
    }

    char *tmpl = path_join(o.dir ? o.dir : "/tmp", "compare-XXXXXX");
    if (!mkdtemp(tmpl))
        die("mkdtemp %s: %s", tmpl, strerror(errno));
    g_scratch = tmpl;
    char scratch_fs[1700];
    fs_of(g_scratch, scratch_fs, sizeof scratch_fs);

    time_t wall = time(NULL);
    char when[64];
    strftime(when, sizeof when, "%Y-%m-%d %H:%M %Z", localtime(&wall));

    fprintf(stderr, "compare: %d runs, %" PRIu64 " records; libraries:", o.runs, o.records);
    for (int p = 0; p < g_np; p++)
        fprintf(stderr, " %s %s", g_peers[p]->name, g_peers[p]->version());
    fprintf(stderr, "\ncompare: scratch %s on %s\n", g_scratch, scratch_fs);

    loadavg(g_load_before, sizeof g_load_before);
    double t0 = now_sec();
    for (int run = 0; run < o.runs; run++) {
        if (selected(&o, "append"))
            phase_append100(&o, run);
        if (selected(&o, "append1k"))
            phase_append1k(&o, run);
        if (selected(&o, "batch"))
            phase_batch(&o, run);
        if (selected(&o, "sweep"))
            phase_sweep(&o, run);
        if (selected(&o, "durable"))
            phase_durable(run);
        fprintf(stderr, "compare: run %d of %d done after %.0f s\n", run + 1, o.runs,
                now_sec() - t0);
    }
    double elapsed = now_sec() - t0;
    loadavg(g_load_after, sizeof g_load_after);

    write_results_md(stdout, &o, when, elapsed, scratch_fs);
    if (o.out) {
        FILE *f = out_file(o.out, "results.md");
        write_results_md(f, &o, when, elapsed, scratch_fs);
        close_out(f, "results.md");
        f = out_file(o.out, "results.tsv");
        write_tsv(f);
        close_out(f, "results.tsv");
        f = out_file(o.out, "sweep.dat");
        write_sweep(f);
        close_out(f, "sweep.dat");
    }

    g_scratch = NULL;
    rm_rf(tmpl);
    free(tmpl);
    free(g_pat);
    return 0;
}
