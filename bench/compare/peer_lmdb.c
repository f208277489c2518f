/*
 * bench/compare/peer_lmdb.c: LMDB as a log.
 *
 * One unnamed database, big-endian 8-byte keys 0, 1, 2, ... put with
 * MDB_APPEND (no page splits in the middle, no search), a map of 64 GiB.
 * Unsynced rows: MDB_WRITEMAP | MDB_NOSYNC | MDB_NOMETASYNC (commits write
 * into the shared map and never sync; the close syncs once).  Without
 * MDB_WRITEMAP each commit pwrite()s its dirty pages, and single-record
 * appends ran 4-7 times slower here (set COMPARE_LMDB_WRITEMAP=0 to measure
 * that variant).  Durable rows: the default
 * flags, so every commit fdatasyncs its data pages and then writes its meta
 * page through a descriptor opened with O_DSYNC.  A single append is one write transaction; a batch is
 * 1000 puts in one transaction.  LMDB lets one write transaction run at a
 * time, so the 4 durable threads take turns on the environment's writer
 * lock; each picks its key inside its transaction.  A get uses a read-only
 * transaction of its own, recycled with mdb_txn_reset/mdb_txn_renew.
 *
 * SPDX-License-Identifier: BSD-2-Clause
 */
#include <stdio.h>
#include <stdlib.h>

#include <lmdb.h>

#include "compare.h"

#define MAP_SIZE (64ull << 30)

struct lh {
    MDB_env *env;
    MDB_dbi dbi;
    MDB_txn *rtxn;          /* reset between gets; owned by the thread that reads */
    uint64_t next;          /* changed only inside a write transaction */
    enum peer_mode mode;
};

#define LCHECK(what, call)                                                    \
    do {                                                                      \
        int rc_ = (call);                                                     \
        if (rc_ != 0)                                                         \
            die("LMDB: %s: %s (%d)", what, mdb_strerror(rc_), rc_);           \
    } while (0)

/* MDB_WRITEMAP for the unsynced rows unless COMPARE_LMDB_WRITEMAP=0. */
static unsigned fast_flags(void)
{
    const char *w = getenv("COMPARE_LMDB_WRITEMAP");
    return MDB_NOSYNC | MDB_NOMETASYNC | (w && *w == '0' ? 0 : MDB_WRITEMAP);
}

static const char *m_version(void)
{
    static char buf[32];
    int maj, min, pat;
    mdb_version(&maj, &min, &pat);
    snprintf(buf, sizeof buf, "%d.%d.%d", maj, min, pat);
    return buf;
}

static const char *m_settings(enum peer_mode mode)
{
    if (mode == MODE_DURABLE)
        return "default flags (each commit fdatasyncs its data pages, then writes the meta page "
               "with O_DSYNC); durable4: "
               "one shared MDB_env, one write transaction at a time";
    return fast_flags() & MDB_WRITEMAP
        ? "MDB_WRITEMAP|MDB_NOSYNC|MDB_NOMETASYNC, map size 64 GiB, MDB_APPEND with big-endian "
          "8-byte keys; one write txn per record, one per batch of 1000; scan: cursor MDB_NEXT; "
          "get: read-only txn per read (reset/renew); close: mdb_env_sync(force) first"
        : "MDB_NOSYNC|MDB_NOMETASYNC, map size 64 GiB, MDB_APPEND with big-endian 8-byte keys; "
          "one write txn per record, one per batch of 1000; scan: cursor MDB_NEXT; get: "
          "read-only txn per read (reset/renew); close: mdb_env_sync(force) first";
}

static void *m_open(const char *dir, enum peer_mode mode, bool create)
{
    struct lh *h = calloc(1, sizeof *h);
    if (!h)
        die("out of memory");
    (void)create;                       /* LMDB creates data.mdb in an existing dir */
    h->mode = mode;
    LCHECK("mdb_env_create", mdb_env_create(&h->env));
    LCHECK("mdb_env_set_mapsize", mdb_env_set_mapsize(h->env, MAP_SIZE));
    unsigned flags = mode == MODE_FAST ? fast_flags() : 0;
    LCHECK("mdb_env_open", mdb_env_open(h->env, dir, flags, 0644));

    MDB_txn *txn;
    LCHECK("mdb_txn_begin", mdb_txn_begin(h->env, NULL, 0, &txn));
    LCHECK("mdb_dbi_open", mdb_dbi_open(txn, NULL, 0, &h->dbi));
    MDB_cursor *cur;
    LCHECK("mdb_cursor_open", mdb_cursor_open(txn, h->dbi, &cur));
    MDB_val k, v;
    int rc = mdb_cursor_get(cur, &k, &v, MDB_LAST);
    if (rc == 0) {
        if (k.mv_size != 8)
            die("LMDB: last key has %zu bytes", k.mv_size);
        h->next = get_be64(k.mv_data) + 1;
    } else if (rc != MDB_NOTFOUND) {
        LCHECK("mdb_cursor_get(MDB_LAST)", rc);
    }
    mdb_cursor_close(cur);
    LCHECK("mdb_txn_commit", mdb_txn_commit(txn));
    return h;
}

static void m_close(void *p)
{
    struct lh *h = p;
    if (h->rtxn)
        mdb_txn_abort(h->rtxn);
    if (h->mode == MODE_FAST)
        LCHECK("mdb_env_sync", mdb_env_sync(h->env, 1));
    mdb_env_close(h->env);
    free(h);
}

static uint64_t m_append(void *p, const void *value, size_t len)
{
    struct lh *h = p;
    MDB_txn *txn;
    LCHECK("mdb_txn_begin", mdb_txn_begin(h->env, NULL, 0, &txn));
    uint64_t key = h->next;             /* ours: we hold the writer lock */
    unsigned char kb[8];
    put_be64(kb, key);
    MDB_val k = { 8, kb }, v = { len, (void *)value };
    LCHECK("mdb_put", mdb_put(txn, h->dbi, &k, &v, MDB_APPEND));
    h->next = key + 1;
    int rc = mdb_txn_commit(txn);
    if (rc != 0)
        die("LMDB: mdb_txn_commit: %s", mdb_strerror(rc));
    return key;
}

static uint64_t m_append_batch(void *p, const void *const *values, size_t len, size_t n)
{
    struct lh *h = p;
    MDB_txn *txn;
    LCHECK("mdb_txn_begin", mdb_txn_begin(h->env, NULL, 0, &txn));
    uint64_t first = h->next;
    unsigned char kb[8];
    for (size_t i = 0; i < n; i++) {
        put_be64(kb, first + i);
        MDB_val k = { 8, kb }, v = { len, (void *)values[i] };
        LCHECK("mdb_put", mdb_put(txn, h->dbi, &k, &v, MDB_APPEND));
    }
    h->next = first + n;
    LCHECK("mdb_txn_commit", mdb_txn_commit(txn));
    return first;
}

static uint64_t m_end(void *p)
{
    struct lh *h = p;
    return h->next;
}

static size_t m_get(void *p, uint64_t key, void *buf, size_t cap)
{
    struct lh *h = p;
    if (h->rtxn)
        LCHECK("mdb_txn_renew", mdb_txn_renew(h->rtxn));
    else
        LCHECK("mdb_txn_begin(RDONLY)", mdb_txn_begin(h->env, NULL, MDB_RDONLY, &h->rtxn));
    unsigned char kb[8];
    put_be64(kb, key);
    MDB_val k = { 8, kb }, v;
    size_t len = NOT_FOUND;
    int rc = mdb_get(h->rtxn, h->dbi, &k, &v);
    if (rc == 0) {
        if (v.mv_size > cap)
            die("LMDB: get %llu: %zu bytes do not fit", (unsigned long long)key, v.mv_size);
        memcpy(buf, v.mv_data, v.mv_size);
        len = v.mv_size;
    } else if (rc != MDB_NOTFOUND) {
        LCHECK("mdb_get", rc);
    }
    mdb_txn_reset(h->rtxn);
    return len;
}

static uint64_t m_scan(void *p, size_t len)
{
    struct lh *h = p;
    MDB_txn *txn;
    MDB_cursor *cur;
    if (h->rtxn) {                      /* one read transaction per thread at a time */
        mdb_txn_abort(h->rtxn);
        h->rtxn = NULL;
    }
    LCHECK("mdb_txn_begin(RDONLY)", mdb_txn_begin(h->env, NULL, MDB_RDONLY, &txn));
    LCHECK("mdb_cursor_open", mdb_cursor_open(txn, h->dbi, &cur));
    MDB_val k, v;
    uint64_t i = 0;
    int rc;
    for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0;
         rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        check_value("LMDB", i, k.mv_size == 8 ? get_be64(k.mv_data) : UINT64_MAX,
                    v.mv_data, v.mv_size, len);
        i++;
    }
    if (rc != MDB_NOTFOUND)
        LCHECK("mdb_cursor_get", rc);
    mdb_cursor_close(cur);
    mdb_txn_abort(txn);
    return i;
}

const struct peer_ops peer_lmdb = {
    .name = "LMDB",
    .id = "lmdb",
    .version = m_version,
    .settings = m_settings,
    .open = m_open,
    .close = m_close,
    .append = m_append,
    .append_batch = m_append_batch,
    .end = m_end,
    .get = m_get,
    .scan = m_scan,
};
