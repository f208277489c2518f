/*
 * bench/compare/peer_leveldb.c: LevelDB as a log, through its C API.
 *
 * Big-endian 8-byte keys 0, 1, 2, ... (the default bytewise comparator keeps
 * them in order).  Options: the defaults (4 MiB write buffer, 8 MiB block
 * cache, Snappy compression where built in), plus create_if_missing.  The
 * log (LevelDB's WAL) is always on.  Unsynced rows: WriteOptions sync=false
 * (the log is written to the page cache at every Put); durable rows:
 * sync=true (the log is synced before Put returns; concurrent writers are
 * grouped into one log write and one sync by LevelDB's writer queue).  A
 * single append is one leveldb_put; a batch is one leveldb_write of a
 * WriteBatch of 1000 puts.  The close first writes an empty batch with
 * sync=true, which syncs the log, so that a clean close leaves everything on
 * stable storage, as topic_close does.
 *
 * SPDX-License-Identifier: BSD-2-Clause
 */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>

#include <leveldb/c.h>

#include "compare.h"


struct vh {
    leveldb_t *db;
    leveldb_options_t *opts;
    leveldb_writeoptions_t *wo, *wsync;
    leveldb_readoptions_t *ro;
    leveldb_writebatch_t *wb;
    _Atomic uint64_t next;
    enum peer_mode mode;
};

static void rcheck(const char *what, char *err)
{
    if (err)
        die("LevelDB: %s: %s", what, err);
}

static const char *v_version(void)
{
    static char buf[32];
    snprintf(buf, sizeof buf, "%d.%d", leveldb_major_version(), leveldb_minor_version());
    return buf;
}

static const char *v_settings(enum peer_mode mode)
{
    return mode == MODE_FAST
        ? "default options + create_if_missing (4 MiB write buffer, 8 MiB block cache, Snappy); "
          "log on, WriteOptions sync=false; one Put per record, one WriteBatch of 1000 per batch; "
          "scan: iterator; get: leveldb_get; close: an empty write with sync=true first"
        : "the same options, WriteOptions sync=true (log synced before each write returns; "
          "concurrent writers share syncs through the writer queue); durable4: one shared leveldb_t";
}

static void *v_open(const char *dir, enum peer_mode mode, bool create)
{
    struct vh *h = calloc(1, sizeof *h);
    if (!h)
        die("out of memory");
    h->mode = mode;
    h->opts = leveldb_options_create();
    leveldb_options_set_create_if_missing(h->opts, create);
    char *err = NULL;
    h->db = leveldb_open(h->opts, dir, &err);
    rcheck("open", err);
    h->wo = leveldb_writeoptions_create();
    leveldb_writeoptions_set_sync(h->wo, mode == MODE_DURABLE);
    h->wsync = leveldb_writeoptions_create();
    leveldb_writeoptions_set_sync(h->wsync, 1);
    h->ro = leveldb_readoptions_create();
    h->wb = leveldb_writebatch_create();

    leveldb_iterator_t *it = leveldb_create_iterator(h->db, h->ro);
    leveldb_iter_seek_to_last(it);
    uint64_t next = 0;
    if (leveldb_iter_valid(it)) {
        size_t klen;
        const char *k = leveldb_iter_key(it, &klen);
        if (klen != 8)
            die("LevelDB: last key has %zu bytes", klen);
        next = get_be64(k) + 1;
    }
    leveldb_iter_get_error(it, &err);
    rcheck("seek_to_last", err);
    leveldb_iter_destroy(it);
    atomic_store(&h->next, next);
    return h;
}

static void v_close(void *p)
{
    struct vh *h = p;
    char *err = NULL;
    if (h->mode == MODE_FAST) {
        leveldb_writebatch_clear(h->wb);
        leveldb_write(h->db, h->wsync, h->wb, &err);    /* syncs the log */
        rcheck("write(sync)", err);
    }
    leveldb_close(h->db);
    leveldb_writebatch_destroy(h->wb);
    leveldb_readoptions_destroy(h->ro);
    leveldb_writeoptions_destroy(h->wo);
    leveldb_writeoptions_destroy(h->wsync);
    leveldb_options_destroy(h->opts);
    free(h);
}

static uint64_t v_append(void *p, const void *value, size_t len)
{
    struct vh *h = p;
    uint64_t key = atomic_fetch_add(&h->next, 1);
    char kb[8], *err = NULL;
    put_be64((unsigned char *)kb, key);
    leveldb_put(h->db, h->wo, kb, 8, value, len, &err);
    rcheck("put", err);
    return key;
}

static uint64_t v_append_batch(void *p, const void *const *values, size_t len, size_t n)
{
    struct vh *h = p;
    uint64_t first = atomic_fetch_add(&h->next, n);
    char kb[8], *err = NULL;
    leveldb_writebatch_clear(h->wb);
    for (size_t i = 0; i < n; i++) {
        put_be64((unsigned char *)kb, first + i);
        leveldb_writebatch_put(h->wb, kb, 8, values[i], len);
    }
    leveldb_write(h->db, h->wo, h->wb, &err);
    rcheck("write(batch)", err);
    return first;
}

static uint64_t v_end(void *p)
{
    struct vh *h = p;
    return atomic_load(&h->next);
}

static size_t v_get(void *p, uint64_t key, void *buf, size_t cap)
{
    struct vh *h = p;
    char kb[8], *err = NULL;
    put_be64((unsigned char *)kb, key);
    size_t vlen;
    char *v = leveldb_get(h->db, h->ro, kb, 8, &vlen, &err);
    rcheck("get", err);
    if (!v)
        return NOT_FOUND;
    if (vlen > cap)
        die("LevelDB: get %llu: %zu bytes do not fit", (unsigned long long)key, vlen);
    memcpy(buf, v, vlen);
    leveldb_free(v);
    return vlen;
}

static uint64_t v_scan(void *p, size_t len)
{
    struct vh *h = p;
    leveldb_iterator_t *it = leveldb_create_iterator(h->db, h->ro);
    uint64_t i = 0;
    for (leveldb_iter_seek_to_first(it); leveldb_iter_valid(it); leveldb_iter_next(it)) {
        size_t klen, vlen;
        const char *k = leveldb_iter_key(it, &klen);
        const char *v = leveldb_iter_value(it, &vlen);
        check_value("LevelDB", i, klen == 8 ? get_be64(k) : UINT64_MAX, v, vlen, len);
        i++;
    }
    char *err = NULL;
    leveldb_iter_get_error(it, &err);
    rcheck("iterator", err);
    leveldb_iter_destroy(it);
    return i;
}

const struct peer_ops peer_leveldb = {
    .name = "LevelDB",
    .id = "leveldb",
    .version = v_version,
    .settings = v_settings,
    .open = v_open,
    .close = v_close,
    .append = v_append,
    .append_batch = v_append_batch,
    .end = v_end,
    .get = v_get,
    .scan = v_scan,
};
