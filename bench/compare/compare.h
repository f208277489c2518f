/*
 * bench/compare/compare.h: what the driver (compare.c) and the peers
 * (peer_*.c: libtopic, SQLite, LMDB, RocksDB, LevelDB) share.
 *
 * Every peer stores records under dense 64-bit keys 0, 1, 2, ... that the
 * peer hands out itself (libtopic's offsets; an INTEGER PRIMARY KEY in
 * SQLite; big-endian 8-byte keys in the key-value stores), and implements the
 * operations of struct peer_ops.  A peer dies (through die()) on any error,
 * so that a failing library cannot produce a number.
 *
 * SPDX-License-Identifier: BSD-2-Clause
 */
#ifndef COMPARE_H
#define COMPARE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* Values are cut from a pseudo-random pattern of PAT_SIZE bytes. */
#define PAT_SIZE   (512u * 1024)
#define MAX_VALUE  16384u                 /* the largest record in the sweep */
#define BATCH_N    1000                   /* records per batched call */
#define NOT_FOUND  SIZE_MAX               /* peer_ops.get: no such key */

/* How a store is opened. */
enum peer_mode {
    MODE_FAST,      /* each write acknowledged without waiting for stable storage */
    MODE_DURABLE,   /* each write on stable storage before it is acknowledged */
};

struct peer_ops {
    const char *name;           /* "libtopic", "SQLite", ... */
    const char *id;             /* short name for --peers and file names */
    const char *(*version)(void);
    const char *(*settings)(enum peer_mode mode);  /* one line for results.md */

    /*
     * Opens (create: creates) the store in directory dir, which exists and
     * is empty when create is set.  The peer finds the next key to hand out
     * (the number of records stored) before it returns: that is part of the
     * timed reopen.
     */
    void *(*open)(const char *dir, enum peer_mode mode, bool create);
    /* Makes everything written durable and closes: a clean shutdown. */
    void (*close)(void *h);
    /*
     * Appends one record as one acknowledged write (a transaction of its
     * own) and returns its key.  Called by several threads at once on a
     * store opened with MODE_DURABLE.
     */
    uint64_t (*append)(void *h, const void *value, size_t len);
    /* Appends n records of len bytes as one write; returns the first key. */
    uint64_t (*append_batch)(void *h, const void *const *values, size_t len, size_t n);
    /* The next key to be handed out, as found by open and kept by appends. */
    uint64_t (*end)(void *h);
    /* Copies the value of key into buf and returns its length, or NOT_FOUND. */
    size_t (*get)(void *h, uint64_t key, void *buf, size_t cap);
    /*
     * Reads every record in key order, checking each one with check_value()
     * (key i must hold the value value_of(i) of len bytes); returns the count.
     */
    uint64_t (*scan)(void *h, size_t len);
};

extern unsigned char *g_pat;

void die(const char *fmt, ...) __attribute__((noreturn, format(printf, 1, 2)));

/* Where the value of record k starts in g_pat: spread so that values share nothing. */
static inline size_t value_pos(uint64_t k)
{
    return (size_t)(((k + 1) * 0x9E3779B97F4A7C15ull) >> 40) % (PAT_SIZE - MAX_VALUE);
}

static inline const unsigned char *value_of(uint64_t k)
{
    return g_pat + value_pos(k);
}

/* Dies unless record `got` is record `want` holding value_of(want) of len bytes. */
static inline void check_value(const char *who, uint64_t want, uint64_t got,
                               const void *v, size_t vlen, size_t len)
{
    if (got != want || vlen != len || memcmp(v, value_of(want), len) != 0)
        die("%s: scan: record %llu: got key %llu, %zu bytes%s (want %zu bytes)", who,
            (unsigned long long)want, (unsigned long long)got, vlen,
            got == want && vlen == len ? " that differ" : "", len);
}

static inline void put_be64(unsigned char *p, uint64_t v)
{
    for (int i = 7; i >= 0; i--) {
        p[i] = (unsigned char)v;
        v >>= 8;
    }
}

static inline uint64_t get_be64(const void *q)
{
    const unsigned char *p = q;
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = v << 8 | p[i];
    return v;
}

char *path_join(const char *a, const char *b);

extern const struct peer_ops peer_topic;
#ifdef HAVE_SQLITE
extern const struct peer_ops peer_sqlite;
#endif
#ifdef HAVE_LMDB
extern const struct peer_ops peer_lmdb;
#endif
#ifdef HAVE_ROCKSDB
extern const struct peer_ops peer_rocksdb;
#endif
#ifdef HAVE_LEVELDB
extern const struct peer_ops peer_leveldb;
#endif

#endif
