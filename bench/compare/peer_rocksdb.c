/*
 * bench/compare/peer_rocksdb.c: RocksDB as a log, through its C API.
 *
 * Big-endian 8-byte keys 0, 1, 2, ... (the default bytewise comparator keeps
 * them in order).  Options: the defaults, plus create_if_missing and
 * increase_parallelism(number of CPUs) (background flush and compaction
 * threads).  The WAL is on.  Unsynced rows: WriteOptions sync=false (the WAL
 * is written to the page cache at every Put); durable rows: sync=true (the
 * WAL is fdatasync'ed before Put returns; concurrent writers share a sync
 * through RocksDB's write group).  A single append is one rocksdb_put; a
 * batch is one rocksdb_write of a WriteBatch of 1000 puts.  The close
 * first syncs the WAL (rocksdb_flush_wal(sync=1)), so that a clean close
 * leaves everything on stable storage, as topic_close does.
 *
 * SPDX-License-Identifier: BSD-2-Clause
 */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include <rocksdb/c.h>

#include "compare.h"

#ifndef ROCKSDB_VERSION_STRING
#define ROCKSDB_VERSION_STRING "?"
#endif

struct rh {
    rocksdb_t *db;
    rocksdb_options_t *opts;
    rocksdb_writeoptions_t *wo;
    rocksdb_readoptions_t *ro;
    rocksdb_writebatch_t *wb;
    _Atomic uint64_t next;
    enum peer_mode mode;
};

static void rcheck(const char *what, char *err)
{
    if (err)
        die("RocksDB: %s: %s", what, err);
}

static const char *r_version(void)
{
    return ROCKSDB_VERSION_STRING;
}

static const char *r_settings(enum peer_mode mode)
{
    return mode == MODE_FAST
        ? "default options + create_if_missing + increase_parallelism(nproc); WAL on, "
          "WriteOptions sync=false; one Put per record, one WriteBatch of 1000 per batch; "
          "scan: iterator; get: rocksdb_get; close: rocksdb_flush_wal(sync) first"
        : "the same options, WriteOptions sync=true (WAL fdatasync before each write returns; "
          "concurrent writers share syncs through the write group); durable4: one shared rocksdb_t";
}

static void *r_open(const char *dir, enum peer_mode mode, bool create)
{
    struct rh *h = calloc(1, sizeof *h);
    if (!h)
        die("out of memory");
    h->mode = mode;
    h->opts = rocksdb_options_create();
    rocksdb_options_set_create_if_missing(h->opts, create);
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    rocksdb_options_increase_parallelism(h->opts, ncpu > 0 ? (int)ncpu : 2);
    char *err = NULL;
    h->db = rocksdb_open(h->opts, dir, &err);
    rcheck("open", err);
    h->wo = rocksdb_writeoptions_create();
    rocksdb_writeoptions_set_sync(h->wo, mode == MODE_DURABLE);
    h->ro = rocksdb_readoptions_create();
    h->wb = rocksdb_writebatch_create();

    rocksdb_iterator_t *it = rocksdb_create_iterator(h->db, h->ro);
    rocksdb_iter_seek_to_last(it);
    uint64_t next = 0;
    if (rocksdb_iter_valid(it)) {
        size_t klen;
        const char *k = rocksdb_iter_key(it, &klen);
        if (klen != 8)
            die("RocksDB: last key has %zu bytes", klen);
        next = get_be64(k) + 1;
    }
    rocksdb_iter_get_error(it, &err);
    rcheck("seek_to_last", err);
    rocksdb_iter_destroy(it);
    atomic_store(&h->next, next);
    return h;
}

static void r_close(void *p)
{
    struct rh *h = p;
    char *err = NULL;
    if (h->mode == MODE_FAST) {
        rocksdb_flush_wal(h->db, 1, &err);
        rcheck("flush_wal(sync)", err);
    }
    rocksdb_close(h->db);
    rocksdb_writebatch_destroy(h->wb);
    rocksdb_readoptions_destroy(h->ro);
    rocksdb_writeoptions_destroy(h->wo);
    rocksdb_options_destroy(h->opts);
    free(h);
}

static uint64_t r_append(void *p, const void *value, size_t len)
{
    struct rh *h = p;
    uint64_t key = atomic_fetch_add(&h->next, 1);
    char kb[8], *err = NULL;
    put_be64((unsigned char *)kb, key);
    rocksdb_put(h->db, h->wo, kb, 8, value, len, &err);
    rcheck("put", err);
    return key;
}

static uint64_t r_append_batch(void *p, const void *const *values, size_t len, size_t n)
{
    struct rh *h = p;
    uint64_t first = atomic_fetch_add(&h->next, n);
    char kb[8], *err = NULL;
    rocksdb_writebatch_clear(h->wb);
    for (size_t i = 0; i < n; i++) {
        put_be64((unsigned char *)kb, first + i);
        rocksdb_writebatch_put(h->wb, kb, 8, values[i], len);
    }
    rocksdb_write(h->db, h->wo, h->wb, &err);
    rcheck("write(batch)", err);
    return first;
}

static uint64_t r_end(void *p)
{
    struct rh *h = p;
    return atomic_load(&h->next);
}

static size_t r_get(void *p, uint64_t key, void *buf, size_t cap)
{
    struct rh *h = p;
    char kb[8], *err = NULL;
    put_be64((unsigned char *)kb, key);
    size_t vlen;
    char *v = rocksdb_get(h->db, h->ro, kb, 8, &vlen, &err);
    rcheck("get", err);
    if (!v)
        return NOT_FOUND;
    if (vlen > cap)
        die("RocksDB: get %llu: %zu bytes do not fit", (unsigned long long)key, vlen);
    memcpy(buf, v, vlen);
    rocksdb_free(v);
    return vlen;
}

static uint64_t r_scan(void *p, size_t len)
{
    struct rh *h = p;
    rocksdb_iterator_t *it = rocksdb_create_iterator(h->db, h->ro);
    uint64_t i = 0;
    for (rocksdb_iter_seek_to_first(it); rocksdb_iter_valid(it); rocksdb_iter_next(it)) {
        size_t klen, vlen;
        const char *k = rocksdb_iter_key(it, &klen);
        const char *v = rocksdb_iter_value(it, &vlen);
        check_value("RocksDB", i, klen == 8 ? get_be64(k) : UINT64_MAX, v, vlen, len);
        i++;
    }
    char *err = NULL;
    rocksdb_iter_get_error(it, &err);
    rcheck("iterator", err);
    rocksdb_iter_destroy(it);
    return i;
}

const struct peer_ops peer_rocksdb = {
    .name = "RocksDB",
    .id = "rocksdb",
    .version = r_version,
    .settings = r_settings,
    .open = r_open,
    .close = r_close,
    .append = r_append,
    .append_batch = r_append_batch,
    .end = r_end,
    .get = r_get,
    .scan = r_scan,
};
