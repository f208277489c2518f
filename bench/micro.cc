// bench/micro.cc: per-call latencies of libtopic's C API, with google-benchmark.
//
//   make bench-micro                                    # every benchmark, ~1 min
//   make bench-micro MICRO_ARGS=--benchmark_filter=read # only the matching ones
//   ./bench/micro --benchmark_repetitions=5 --benchmark_report_aggregates_only=true
//
// Where bench/bench.c measures long runs beside baselines, this measures the
// cost of one call: the Time column is wall-clock time per iteration (every
// benchmark uses real time, since a durable append spends its time asleep in
// fdatasync), items_per_second is records/s and bytes_per_second counts value
// bytes.  Every append benchmark starts on a fresh topic, so the measured run
// never inherits the log of the estimation runs before it.
//
// Every read checks the length and every byte of the value against what was
// appended at that offset (offset stamped at both ends, a fixed pattern in
// between) and stops the benchmark with SkipWithError on a mismatch, so a
// fast number cannot come from a library that returns the wrong record.
// verify_only times that check alone, to subtract from the read rows, and
// baseline_pwrite_fdatasync times what the disk asks for a durable append.
//
// Environment:
//   TOPIC_BENCH_DIR            parent of the scratch directory (default /tmp);
//                              a fresh micro-XXXXXX directory is made inside
//                              it and removed at exit (also on SIGINT/SIGTERM)
//   TOPIC_BENCH_READ_RECORDS   records of 100 B in the topic that the read
//                              benchmarks use (default 1000000)
//
// SPDX-License-Identifier: BSD-2-Clause

#include <benchmark/benchmark.h>

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statfs.h>
#include <unistd.h>

#include <algorithm>
#include <string>
#include <vector>

#include <topic.h>  // guards itself with extern "C" under C++

namespace {

constexpr size_t kSmall = 100;          // bytes in a small value
constexpr size_t kBatch = 1000;         // records per topic_append_batch call
constexpr size_t kMaxValue = 1024;      // largest value any benchmark appends

std::string g_scratch;                  // the mkdtemp directory, "" when gone
bool g_failed;                          // some benchmark stopped on an error
int g_topic_seq;                        // names of fresh topics inside it

// ---------------------------------------------------------------------------
// Values.  The value of the record at offset `off` with `len` bytes is a fixed
// pattern with `off` stamped in its first 8 bytes and, from 16 bytes up, in its
// last 8 too, so that a record of the wrong offset, a shifted copy or a
// truncated one cannot pass the check.

struct Pattern {
    unsigned char bytes[kMaxValue];
    Pattern()
    {
        for (size_t i = 0; i < kMaxValue; i++)
            bytes[i] = (unsigned char)(i * 131u + 7u);
    }
};
const Pattern g_pattern;

inline void make_value(unsigned char *buf, size_t len, uint64_t off)
{
    memcpy(buf, g_pattern.bytes, len);
    if (len >= 8)
        memcpy(buf, &off, 8);
    if (len >= 16)
        memcpy(buf + len - 8, &off, 8);
}

// Stamps `off` into buf, which already holds make_value(buf, len, x) for some
// x: the cheap way to turn one expected value into the next.
inline void restamp(unsigned char *buf, size_t len, uint64_t off)
{
    if (len >= 8)
        memcpy(buf, &off, 8);
    if (len >= 16)
        memcpy(buf + len - 8, &off, 8);
}

// ---------------------------------------------------------------------------
// Scratch directory and topics.

int rm_cb(const char *path, const struct stat *, int, struct FTW *)
{
    remove(path);
    return 0;
}

void remove_tree(const std::string &path)
{
    if (!path.empty())
        nftw(path.c_str(), rm_cb, 16, FTW_DEPTH | FTW_PHYS);
}

void remove_scratch()
{
    std::string s;
    s.swap(g_scratch);
    remove_tree(s);
}

void on_signal(int sig)
{
    // Not async-signal-safe in theory (nftw may allocate); a second signal
    // kills the process the default way (SA_RESETHAND).
    remove_scratch();
    _exit(128 + sig);
}

std::string fresh_topic_path(const char *what)
{
    return g_scratch + "/" + what + "-" + std::to_string(++g_topic_seq);
}

// Stops the benchmark with `msg`; the program then exits with status 1.
void fail(benchmark::State &state, const std::string &msg)
{
    g_failed = true;
    state.SkipWithError(msg.c_str());
}

// Reports rc through fail() when it is not 0; returns whether it was 0.
bool ok(benchmark::State &state, int rc, const char *call)
{
    if (rc == 0)
        return true;
    fail(state, std::string(call) + ": " + topic_strerror(rc));
    return false;
}

// Opens a fresh topic with the given settings (name/value pairs).
topic *open_fresh(benchmark::State &state, const char *what, std::string *path,
                  const std::vector<std::pair<const char *, const char *>> &settings = {})
{
    *path = fresh_topic_path(what);
    topic_config *conf = nullptr;
    if (!settings.empty()) {
        conf = topic_config_new();
        if (conf == nullptr) {
            fail(state, "topic_config_new: out of memory");
            return nullptr;
        }
        for (const auto &kv : settings) {
            if (topic_config_set(conf, kv.first, kv.second) != 0) {
                fail(state, std::string("topic_config_set: ") + topic_config_error(conf));
                topic_config_free(conf);
                return nullptr;
            }
        }
    }
    topic *t = nullptr;
    int rc = topic_open(path->c_str(), TOPIC_CREATE | TOPIC_EXCL, conf, &t);
    topic_config_free(conf);
    if (!ok(state, rc, "topic_open"))
        return nullptr;
    return t;
}

// Checks one value that a read returned against the record appended at `off`.
// `expect` holds make_value(expect, len, x) for some x and is restamped here.
inline bool value_ok(benchmark::State &state, unsigned char *expect, size_t want_len,
                     uint64_t off, const void *got, size_t got_len)
{
    restamp(expect, want_len, off);
    if (__builtin_expect(got_len == want_len && memcmp(got, expect, want_len) == 0, 1))
        return true;
    char msg[160];
    if (got_len != want_len)
        snprintf(msg, sizeof msg, "record %llu: length %zu, appended %zu",
                 (unsigned long long)off, got_len, want_len);
    else
        snprintf(msg, sizeof msg, "record %llu: its bytes differ from those appended",
                 (unsigned long long)off);
    fail(state, msg);
    return false;
}

// After an append benchmark, outside the timed loop: the topic must hold
// exactly `n` records and the first, middle and last must read back intact.
bool appended_ok(benchmark::State &state, topic *t, uint64_t n, size_t len)
{
    if (topic_end_offset(t) != n) {
        char msg[128];
        snprintf(msg, sizeof msg, "end offset %llu after %llu appended records",
                 (unsigned long long)topic_end_offset(t), (unsigned long long)n);
        fail(state, msg);
        return false;
    }
    unsigned char expect[kMaxValue], got[kMaxValue];
    make_value(expect, len, 0);
    const uint64_t probes[3] = {0, n / 2, n - 1};
    for (uint64_t off : probes) {
        if (n == 0)
            break;
        size_t got_len = 0;
        if (!ok(state, topic_read(t, off, got, sizeof got, &got_len), "topic_read") ||
            !value_ok(state, expect, len, off, got, got_len))
            return false;
    }
    return true;
}

// Closes (syncs) and deletes a scratch topic, outside the timed loop.
void close_and_remove(benchmark::State &state, topic *t, const std::string &path)
{
    int rc = topic_close(t);
    if (rc != 0 && !state.error_occurred())
        ok(state, rc, "topic_close");
    remove_tree(path);
}

// ---------------------------------------------------------------------------
// Appends.

// topic_append of one value of state.range(0) bytes; `settings` configure the
// fresh topic (none: the defaults).
void run_append(benchmark::State &state, const char *what,
                const std::vector<std::pair<const char *, const char *>> &settings)
{
    const size_t len = (size_t)state.range(0);
    std::string path;
    topic *t = open_fresh(state, what, &path, settings);
    if (t == nullptr)
        return;
    unsigned char value[kMaxValue];
    make_value(value, len, 0);
    uint64_t next = 0;
    for (auto _ : state) {
        restamp(value, len, next);
        uint64_t off = UINT64_MAX;
        int rc = topic_append(t, value, len, &off);
        if (__builtin_expect(rc != 0 || off != next, 0)) {
            if (ok(state, rc, "topic_append"))
                fail(state, "topic_append returned offset " + std::to_string(off) +
                                ", expected " + std::to_string(next));
            break;
        }
        next++;
    }
    if (!state.error_occurred())
        appended_ok(state, t, next, len);
    close_and_remove(state, t, path);
    state.SetItemsProcessed((int64_t)next);
    state.SetBytesProcessed((int64_t)(next * len));
}

void BM_Append(benchmark::State &state)
{
    run_append(state, "append", {});
}

// flush.messages=1: every append is durable (fdatasync) before it returns.
void BM_AppendDurable(benchmark::State &state)
{
    run_append(state, "durable", {{"flush.messages", "1"}});
}

// topic_append_batch of kBatch records of 100 B: one iteration is one call.
void BM_AppendBatch(benchmark::State &state)
{
    std::string path;
    topic *t = open_fresh(state, "batch", &path);
    if (t == nullptr)
        return;
    std::vector<unsigned char> values(kBatch * kSmall);
    std::vector<topic_record> recs(kBatch);
    for (size_t i = 0; i < kBatch; i++) {
        make_value(&values[i * kSmall], kSmall, i);
        recs[i] = topic_record{0, 0, nullptr, 0, &values[i * kSmall], kSmall};
    }
    uint64_t next = 0;
    for (auto _ : state) {
        for (size_t i = 0; i < kBatch; i++)
            restamp(&values[i * kSmall], kSmall, next + i);
        uint64_t first = UINT64_MAX;
        int rc = topic_append_batch(t, recs.data(), kBatch, &first);
        if (__builtin_expect(rc != 0 || first != next, 0)) {
            if (ok(state, rc, "topic_append_batch"))
                fail(state, "topic_append_batch returned offset " + std::to_string(first) +
                                ", expected " + std::to_string(next));
            break;
        }
        next += kBatch;
    }
    if (!state.error_occurred())
        appended_ok(state, t, next, kSmall);
    close_and_remove(state, t, path);
    state.SetItemsProcessed((int64_t)next);
    state.SetBytesProcessed((int64_t)(next * kSmall));
    // Seconds per record (shown as e.g. "120n"): the time of one call / kBatch.
    state.counters["per_record"] =
        benchmark::Counter((double)next, benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
}

// The baseline for topic_append_durable: pwrite of state.range(0) bytes (the
// log bytes of one 100 B append: 48 B batch header, 3 B framing, the value) at
// the end of a preallocated, synced file, then fdatasync.  The disk's own cost
// of a durable append, measured in the same run.
void BM_PwriteFdatasync(benchmark::State &state)
{
    const size_t len = (size_t)state.range(0);
    const off_t cap = 256 << 20;
    std::string path = fresh_topic_path("pwrite");
    int fd = open(path.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd < 0 || posix_fallocate(fd, 0, cap) != 0 || fsync(fd) != 0) {
        fail(state, path + ": " + strerror(errno));
        if (fd >= 0)
            close(fd);
        return;
    }
    int dfd = open(g_scratch.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        fsync(dfd);
        close(dfd);
    }
    unsigned char value[kMaxValue];
    make_value(value, len, 0);
    uint64_t n = 0;
    for (auto _ : state) {
        off_t pos = (off_t)(n * len);
        if (pos + (off_t)len > cap)
            pos = 0;    // wrap within the preallocated space
        restamp(value, len, n);
        if (pwrite(fd, value, len, pos) != (ssize_t)len || fdatasync(fd) != 0) {
            fail(state, std::string("pwrite+fdatasync: ") + strerror(errno));
            break;
        }
        n++;
    }
    if (n > 0 && !state.error_occurred()) {
        unsigned char expect[kMaxValue], got[kMaxValue];
        make_value(expect, len, 0);
        uint64_t last = n - 1;
        off_t pos = (off_t)(last * len);
        if (pos + (off_t)len > cap)
            pos = 0;
        ssize_t r = pread(fd, got, len, pos);
        value_ok(state, expect, len, last, got, r < 0 ? 0 : (size_t)r);
    }
    close(fd);
    remove(path.c_str());
    state.SetItemsProcessed((int64_t)n);
    state.SetBytesProcessed((int64_t)(n * len));
}

// ---------------------------------------------------------------------------
// Reads, of prebuilt topics of 100 B records.  How a topic was written matters
// to topic_read: it verifies the checksum of the whole batch that holds the
// record and decodes the records before it in that batch, so a record from a
// batch of 1000 costs far more than one from its own topic_append.  Hence two
// read topics with the same values: one written by topic_append (a batch per
// record, like bench/bench.c's read topic) and one by topic_append_batch of
// kBatch records.

struct ReadTopic {
    explicit ReadTopic(size_t b) : batch(b) {}
    size_t batch;               // records per append call when it was built
    std::string path;
    topic *writer = nullptr;    // the handle that built it, still open
    topic *rdonly = nullptr;    // a TOPIC_RDONLY handle on the same directory
    uint64_t records = 0;
    std::string error;          // why it could not be built, "" if it was
    bool built = false;
};
ReadTopic g_read[2] = {ReadTopic(1), ReadTopic(kBatch)};

uint64_t read_records_wanted()
{
    const char *s = getenv("TOPIC_BENCH_READ_RECORDS");
    if (s == nullptr || *s == '\0')
        return 1000000;
    char *end;
    unsigned long long n = strtoull(s, &end, 10);
    if (*end != '\0' || n == 0) {
        fprintf(stderr, "micro: TOPIC_BENCH_READ_RECORDS=%s is not a positive number\n", s);
        exit(2);
    }
    return n;
}

// The read topic written `batch` records per call (1 or kBatch), built the
// first time a benchmark asks for it, synced, with a read-only handle opened
// beside its writer.  Null, after SkipWithError, if it could not be built.
ReadTopic *read_topic(benchmark::State &state, int64_t batch)
{
    ReadTopic *r = &g_read[batch == 1 ? 0 : 1];
    if (!r->built) {
        r->built = true;
        const uint64_t n = read_records_wanted();
        r->path = fresh_topic_path(r->batch == 1 ? "read-single" : "read-batch");
        int rc = topic_open(r->path.c_str(), TOPIC_CREATE | TOPIC_EXCL, nullptr, &r->writer);
        std::vector<unsigned char> values(r->batch * kSmall);
        std::vector<topic_record> recs(r->batch);
        for (uint64_t done = 0; rc == 0 && done < n;) {
            size_t k = (size_t)std::min<uint64_t>(r->batch, n - done);
            for (size_t i = 0; i < k; i++) {
                make_value(&values[i * kSmall], kSmall, done + i);
                recs[i] = topic_record{0, 0, nullptr, 0, &values[i * kSmall], kSmall};
            }
            if (r->batch == 1)
                rc = topic_append(r->writer, values.data(), kSmall, nullptr);
            else
                rc = topic_append_batch(r->writer, recs.data(), k, nullptr);
            done += k;
        }
        if (rc == 0)
            rc = topic_sync(r->writer);
        if (rc == 0 && topic_end_offset(r->writer) != n)
            r->error = "read topic: end offset " + std::to_string(topic_end_offset(r->writer)) +
                       " after " + std::to_string(n) + " records";
        if (rc == 0 && r->error.empty())
            rc = topic_open(r->path.c_str(), TOPIC_RDONLY, nullptr, &r->rdonly);
        if (rc != 0)
            r->error = std::string("building the read topic: ") + topic_strerror(rc);
        r->records = n;
    }
    if (!r->error.empty()) {
        fail(state, r->error);
        return nullptr;
    }
    return r;
}

void close_read_topics()
{
    for (ReadTopic &r : g_read) {
        if (r.rdonly != nullptr)
            topic_close(r.rdonly);
        if (r.writer != nullptr)
            topic_close(r.writer);
        r.rdonly = r.writer = nullptr;
    }
}

// A small fast generator (xorshift64*) and a multiply-shift into [0, n), so
// that choosing the offset costs a few ns and no division.
struct Rng {
    uint64_t s = 0x9E3779B97F4A7C15ull;
    uint64_t below(uint64_t n)
    {
        s ^= s >> 12;
        s ^= s << 25;
        s ^= s >> 27;
        uint64_t x = s * 0x2545F4914F6CDD1Dull;
        return (uint64_t)(((unsigned __int128)x * n) >> 64);
    }
};

// topic_read of a uniformly random offset.  range(0): records per append call
// that built the topic; range(1): 1 = through the read-only handle.
void BM_ReadRandom(benchmark::State &state)
{
    ReadTopic *r = read_topic(state, state.range(0));
    if (r == nullptr)
        return;
    topic *t = state.range(1) ? r->rdonly : r->writer;
    const uint64_t n = r->records;
    unsigned char expect[kSmall], buf[kMaxValue];
    make_value(expect, kSmall, 0);
    Rng rng;
    int64_t reads = 0;
    for (auto _ : state) {
        uint64_t off = rng.below(n);
        size_t len = 0;
        int rc = topic_read(t, off, buf, sizeof buf, &len);
        if (__builtin_expect(rc != 0, 0)) {
            ok(state, rc, "topic_read");
            break;
        }
        if (!value_ok(state, expect, kSmall, off, buf, len))
            break;
        reads++;
    }
    state.SetItemsProcessed(reads);
    state.SetBytesProcessed(reads * (int64_t)kSmall);
}

// topic_cursor_next from the start, in order; at TOPIC_END the cursor is
// closed and a fresh one opened at the start offset (inside the timed loop:
// once per r->records records).  Arguments as BM_ReadRandom.
void BM_CursorNext(benchmark::State &state)
{
    ReadTopic *r = read_topic(state, state.range(0));
    if (r == nullptr)
        return;
    topic *t = state.range(1) ? r->rdonly : r->writer;
    const uint64_t n = r->records;
    unsigned char expect[kSmall];
    make_value(expect, kSmall, 0);
    topic_cursor *c = nullptr;
    if (!ok(state, topic_cursor_open(t, topic_start_offset(t), &c), "topic_cursor_open"))
        return;
    uint64_t next = 0;
    int64_t records = 0;
    int64_t wraps = 0;
    for (auto _ : state) {
        topic_record rec;
        int rc = topic_cursor_next(c, &rec);
        if (__builtin_expect(rc == TOPIC_END, 0)) {
            if (next != n) {
                fail(state, "TOPIC_END after " + std::to_string(next) + " of " +
                                std::to_string(n) + " records");
                break;
            }
            topic_cursor_close(c);
            c = nullptr;
            if (!ok(state, topic_cursor_open(t, topic_start_offset(t), &c), "topic_cursor_open"))
                break;
            next = 0;
            wraps++;
            rc = topic_cursor_next(c, &rec);
        }
        if (__builtin_expect(rc != 0, 0)) {
            ok(state, rc, "topic_cursor_next");
            break;
        }
        if (__builtin_expect(rec.offset != next || rec.key_len != 0, 0)) {
            fail(state, "topic_cursor_next returned offset " + std::to_string(rec.offset) +
                            " (key_len " + std::to_string(rec.key_len) + "), expected " +
                            std::to_string(next));
            break;
        }
        if (!value_ok(state, expect, kSmall, next, rec.value, rec.value_len))
            break;
        next++;
        records++;
    }
    topic_cursor_close(c);
    state.SetItemsProcessed(records);
    state.SetBytesProcessed(records * (int64_t)kSmall);
    state.counters["wraps"] = (double)wraps;
}

// The check every read above makes, on a value already in memory: the part
// of a read row that is not libtopic.
void BM_VerifyOnly(benchmark::State &state)
{
    unsigned char expect[kSmall], value[kSmall];
    make_value(expect, kSmall, 0);
    make_value(value, kSmall, 0);
    uint64_t off = 0;
    for (auto _ : state) {
        restamp(value, kSmall, off);         // stands in for the library's copy
        benchmark::DoNotOptimize(value);
        benchmark::ClobberMemory();
        if (!value_ok(state, expect, kSmall, off, value, kSmall))
            break;
        off++;
    }
    state.SetItemsProcessed((int64_t)off);
}

// topic_cursor_seek_time to a random timestamp in a topic of state.range(0)
// segments of 4 KiB, 30 records each, whose record at offset o has timestamp
// o + 1: the search must land on offset ts - 1.  The topic is built outside
// the timed loop; a first search loads every segment before the timing.
// The time per search should grow with the log of the segment count.
void BM_SeekTime(benchmark::State &state)
{
    const uint64_t segments = (uint64_t)state.range(0), n = segments * 30;
    std::string path;
    topic *t = open_fresh(state, "seektime", &path, {{"segment.bytes", "4096"}});
    if (t == nullptr)
        return;
    std::vector<unsigned char> value(kSmall);
    make_value(value.data(), kSmall, 0);
    topic_record rec = {};
    rec.value = value.data();
    rec.value_len = kSmall;
    for (uint64_t o = 0; o < n && !state.error_occurred(); o++) {
        rec.timestamp = (int64_t)o + 1;
        ok(state, topic_append_batch(t, &rec, 1, nullptr), "topic_append_batch");
    }
    topic_cursor *c = nullptr;
    if (!state.error_occurred() && ok(state, topic_cursor_open(t, 0, &c), "topic_cursor_open"))
        ok(state, topic_cursor_seek_time(c, (int64_t)n), "topic_cursor_seek_time");
    Rng rng;
    int64_t seeks = 0;
    for (auto _ : state) {
        if (state.error_occurred())
            break;
        int64_t ts = (int64_t)rng.below(n) + 1;
        int rc = topic_cursor_seek_time(c, ts);
        if (__builtin_expect(rc != 0 || topic_cursor_offset(c) != (uint64_t)ts - 1, 0)) {
            if (ok(state, rc, "topic_cursor_seek_time"))
                fail(state, "topic_cursor_seek_time landed on the wrong offset");
            break;
        }
        seeks++;
    }
    topic_cursor_close(c);
    state.SetItemsProcessed(seeks);
    close_and_remove(state, t, path);
}

}  // namespace

// Named after the call they time, so that --benchmark_filter=read selects the
// topic_read rows, =cursor the cursor rows, =append every append row.
BENCHMARK(BM_Append)->Name("topic_append")->ArgName("bytes")->Arg(100)->Arg(1024)->UseRealTime();
BENCHMARK(BM_AppendBatch)->Name("topic_append_batch/1000x100B")->UseRealTime();
// batch: records per append call that wrote the read topic; rdonly: 1 = read
// through the TOPIC_RDONLY handle instead of the writer's.
BENCHMARK(BM_ReadRandom)->Name("topic_read/random")->ArgNames({"batch", "rdonly"})
    ->ArgsProduct({{1}, {0, 1}})->Args({(int64_t)kBatch, 0})->UseRealTime();
BENCHMARK(BM_CursorNext)->Name("topic_cursor_next")->ArgNames({"batch", "rdonly"})
    ->ArgsProduct({{1}, {0, 1}})->Args({(int64_t)kBatch, 0})->UseRealTime();
BENCHMARK(BM_VerifyOnly)->Name("verify_only")->UseRealTime();
BENCHMARK(BM_SeekTime)->Name("topic_cursor_seek_time")->ArgName("segments")->Arg(100)
    ->Arg(4000)->UseRealTime();
// Each call waits for an fdatasync: a second of them is enough for a median,
// and MinTime bounds the run however slow the disk is.
BENCHMARK(BM_AppendDurable)->Name("topic_append_durable")->ArgName("bytes")->Arg(100)
    ->MinTime(1.0)->UseRealTime();
BENCHMARK(BM_PwriteFdatasync)->Name("baseline_pwrite_fdatasync")->ArgName("bytes")->Arg(151)
    ->MinTime(1.0)->UseRealTime();

int main(int argc, char **argv)
{
    benchmark::Initialize(&argc, argv);
    if (benchmark::ReportUnrecognizedArguments(argc, argv))
        return 1;

    const char *parent = getenv("TOPIC_BENCH_DIR");
    if (parent == nullptr || *parent == '\0')
        parent = "/tmp";
    std::string tmpl = std::string(parent) + "/micro-XXXXXX";
    std::vector<char> buf(tmpl.begin(), tmpl.end());
    buf.push_back('\0');
    if (mkdtemp(buf.data()) == nullptr) {
        fprintf(stderr, "micro: mkdtemp %s: %s\n", tmpl.c_str(), strerror(errno));
        return 1;
    }
    g_scratch = buf.data();
    atexit(remove_scratch);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sa.sa_flags = SA_RESETHAND;
    sigaction(SIGINT, &sa, nullptr);
    sigaction(SIGTERM, &sa, nullptr);
    sigaction(SIGHUP, &sa, nullptr);

    struct statfs fs;
    char fstype[32] = "?";
    if (statfs(g_scratch.c_str(), &fs) == 0)
        snprintf(fstype, sizeof fstype, "0x%lx%s", (unsigned long)fs.f_type,
                 fs.f_type == 0x01021994 ? " (tmpfs: syncs cost nothing)" : "");
    benchmark::AddCustomContext("libtopic", topic_version());
    benchmark::AddCustomContext("scratch", g_scratch + " (fs magic " + fstype + ")");
    benchmark::AddCustomContext("read_topic_records", std::to_string(read_records_wanted()));

    benchmark::RunSpecifiedBenchmarks();
    close_read_topics();
    benchmark::Shutdown();
    remove_scratch();
    if (g_failed)
        fprintf(stderr, "micro: a benchmark stopped on an error (ERROR OCCURRED above)\n");
    return g_failed ? 1 : 0;
}
