/*
 * bench/compare/peer_sqlite.c: SQLite as a log.
 *
 * One rowid table, CREATE TABLE log(id INTEGER PRIMARY KEY, v BLOB NOT NULL),
 * in WAL mode, every statement prepared once.  Unsynced rows use
 * synchronous=NORMAL (in WAL mode: no sync per commit, the WAL is synced at
 * checkpoints); durable rows use synchronous=FULL (the WAL is synced at every
 * commit).  A single append is one INSERT in autocommit mode (its own
 * transaction); a batch is BEGIN, 1000 INSERTs, COMMIT.
 *
 * The key is the rowid, which this handle hands out (0, 1, 2, ...).  The
 * durable 4-thread row shares this one connection between the threads; a
 * mutex around each operation keeps a statement and the next rowid to one
 * thread at a time (SQLite's own connection mutex serialises the calls
 * anyway, commit and sync included).
 *
 * SPDX-License-Identifier: BSD-2-Clause
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

#include <sqlite3.h>

#include "compare.h"

struct sh {
    sqlite3 *db;
    sqlite3_stmt *ins, *get, *begin, *commit;
    pthread_mutex_t mu;
    uint64_t next;
};

static const char *s_version(void)
{
    return sqlite3_libversion();
}

static const char *s_settings(enum peer_mode mode)
{
    return mode == MODE_FAST
        ? "journal_mode=WAL, synchronous=NORMAL, table log(id INTEGER PRIMARY KEY, v BLOB NOT NULL), "
          "prepared statements; one autocommit INSERT per record, BEGIN/1000 INSERTs/COMMIT per batch; "
          "scan: SELECT id, v FROM log ORDER BY id; get: SELECT v FROM log WHERE id=?; "
          "other settings default (page_size 4096, wal_autocheckpoint 1000)"
        : "journal_mode=WAL, synchronous=FULL (WAL synced at every commit); durable4 shares one "
          "connection (serialized mode) between the threads";
}

static void s_exec(struct sh *h, const char *sql)
{
    char *err = NULL;
    if (sqlite3_exec(h->db, sql, NULL, NULL, &err) != SQLITE_OK)
        die("SQLite: %s: %s", sql, err ? err : sqlite3_errmsg(h->db));
}

static sqlite3_stmt *s_prepare(struct sh *h, const char *sql)
{
    sqlite3_stmt *st;
    if (sqlite3_prepare_v3(h->db, sql, -1, SQLITE_PREPARE_PERSISTENT, &st, NULL) != SQLITE_OK)
        die("SQLite: prepare %s: %s", sql, sqlite3_errmsg(h->db));
    return st;
}

static void s_step_done(struct sh *h, sqlite3_stmt *st)
{
    int rc = sqlite3_step(st);
    if (rc != SQLITE_DONE)
        die("SQLite: %s: %s (%d)", sqlite3_sql(st), sqlite3_errmsg(h->db), rc);
    sqlite3_reset(st);
}

static void *s_open(const char *dir, enum peer_mode mode, bool create)
{
    struct sh *h = calloc(1, sizeof *h);
    if (!h)
        die("out of memory");
    pthread_mutex_init(&h->mu, NULL);
    char *path = path_join(dir, "log.db");
    int flags = SQLITE_OPEN_READWRITE | (create ? SQLITE_OPEN_CREATE : 0);
    if (sqlite3_open_v2(path, &h->db, flags, NULL) != SQLITE_OK)
        die("SQLite: open %s: %s", path, h->db ? sqlite3_errmsg(h->db) : "out of memory");
    free(path);
    sqlite3_busy_timeout(h->db, 10000);

    sqlite3_stmt *st = s_prepare(h, "PRAGMA journal_mode=WAL");
    if (sqlite3_step(st) != SQLITE_ROW ||
        strcmp((const char *)sqlite3_column_text(st, 0), "wal") != 0)
        die("SQLite: journal_mode=WAL refused");
    sqlite3_finalize(st);
    s_exec(h, mode == MODE_FAST ? "PRAGMA synchronous=NORMAL" : "PRAGMA synchronous=FULL");
    if (create)
        s_exec(h, "CREATE TABLE log(id INTEGER PRIMARY KEY, v BLOB NOT NULL)");

    h->ins = s_prepare(h, "INSERT INTO log(id, v) VALUES(?1, ?2)");
    h->get = s_prepare(h, "SELECT v FROM log WHERE id = ?1");
    h->begin = s_prepare(h, "BEGIN");
    h->commit = s_prepare(h, "COMMIT");

    /* The next rowid: one past the largest. */
    st = s_prepare(h, "SELECT max(id) FROM log");
    if (sqlite3_step(st) != SQLITE_ROW)
        die("SQLite: SELECT max(id): %s", sqlite3_errmsg(h->db));
    h->next = sqlite3_column_type(st, 0) == SQLITE_NULL ? 0
            : (uint64_t)sqlite3_column_int64(st, 0) + 1;
    sqlite3_finalize(st);
    return h;
}

static void s_close(void *p)
{
    struct sh *h = p;
    sqlite3_finalize(h->ins);
    sqlite3_finalize(h->get);
    sqlite3_finalize(h->begin);
    sqlite3_finalize(h->commit);
    /* The last connection's close checkpoints the WAL into the database and
     * syncs it, then deletes the WAL. */
    int rc = sqlite3_close(h->db);
    if (rc != SQLITE_OK)
        die("SQLite: close: %s", sqlite3_errstr(rc));
    pthread_mutex_destroy(&h->mu);
    free(h);
}

static void s_insert(struct sh *h, uint64_t key, const void *value, size_t len)
{
    if (sqlite3_bind_int64(h->ins, 1, (sqlite3_int64)key) != SQLITE_OK ||
        sqlite3_bind_blob(h->ins, 2, value, (int)len, SQLITE_STATIC) != SQLITE_OK)
        die("SQLite: bind: %s", sqlite3_errmsg(h->db));
    s_step_done(h, h->ins);
}

static uint64_t s_append(void *p, const void *value, size_t len)
{
    struct sh *h = p;
    pthread_mutex_lock(&h->mu);
    uint64_t key = h->next;
    s_insert(h, key, value, len);        /* autocommit: its own transaction */
    h->next = key + 1;
    pthread_mutex_unlock(&h->mu);
    return key;
}

static uint64_t s_append_batch(void *p, const void *const *values, size_t len, size_t n)
{
    struct sh *h = p;
    pthread_mutex_lock(&h->mu);
    uint64_t first = h->next;
    s_step_done(h, h->begin);
    for (size_t i = 0; i < n; i++)
        s_insert(h, first + i, values[i], len);
    s_step_done(h, h->commit);
    h->next = first + n;
    pthread_mutex_unlock(&h->mu);
    return first;
}

static uint64_t s_end(void *p)
{
    struct sh *h = p;
    pthread_mutex_lock(&h->mu);
    uint64_t n = h->next;
    pthread_mutex_unlock(&h->mu);
    return n;
}

static size_t s_get(void *p, uint64_t key, void *buf, size_t cap)
{
    struct sh *h = p;
    size_t len = NOT_FOUND;
    pthread_mutex_lock(&h->mu);
    sqlite3_bind_int64(h->get, 1, (sqlite3_int64)key);
    int rc = sqlite3_step(h->get);
    if (rc == SQLITE_ROW) {
        const void *v = sqlite3_column_blob(h->get, 0);
        len = (size_t)sqlite3_column_bytes(h->get, 0);
        if (len > cap)
            die("SQLite: get %llu: %zu bytes do not fit", (unsigned long long)key, len);
        memcpy(buf, v, len);
    } else if (rc != SQLITE_DONE) {
        die("SQLite: get %llu: %s", (unsigned long long)key, sqlite3_errmsg(h->db));
    }
    sqlite3_reset(h->get);
    pthread_mutex_unlock(&h->mu);
    return len;
}

static uint64_t s_scan(void *p, size_t len)
{
    struct sh *h = p;
    sqlite3_stmt *st = s_prepare(h, "SELECT id, v FROM log ORDER BY id");
    uint64_t i = 0;
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        uint64_t id = (uint64_t)sqlite3_column_int64(st, 0);
        const void *v = sqlite3_column_blob(st, 1);
        size_t vlen = (size_t)sqlite3_column_bytes(st, 1);
        check_value("SQLite", i, id, v, vlen, len);
        i++;
    }
    if (rc != SQLITE_DONE)
        die("SQLite: scan: %s", sqlite3_errmsg(h->db));
    sqlite3_finalize(st);
    return i;
}

const struct peer_ops peer_sqlite = {
    .name = "SQLite",
    .id = "sqlite",
    .version = s_version,
    .settings = s_settings,
    .open = s_open,
    .close = s_close,
    .append = s_append,
    .append_batch = s_append_batch,
    .end = s_end,
    .get = s_get,
    .scan = s_scan,
};
