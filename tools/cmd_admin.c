/*
 * topic create, topic config, topic recover and topic delete-before: the
 * subcommands that open the topic as its writer to change it.
 *
 * SPDX-License-Identifier: BSD-2-Clause
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <limits.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "cli.h"
#include "walk.h"

/* Applies "NAME=VALUE" to c; returns 0 or a usage exit status. */
static int apply_setting(const char *cmd, topic_config *c, const char *arg)
{
    const char *eq = strchr(arg, '=');
    if (eq == NULL || eq == arg)
        return usage_error(cmd, "'%s': expected NAME=VALUE", arg);
    size_t n = (size_t)(eq - arg);
    char *name = malloc(n + 1);
    if (name == NULL)
        return report(-ENOMEM, "%s", cmd);
    memcpy(name, arg, n);
    name[n] = '\0';
    int rc = topic_config_set(c, name, eq + 1);
    free(name);
    if (rc < 0)
        return complain(TOOL_USAGE, "%s: %s", cmd, topic_config_error(c));
    return 0;
}

/* ------------------------------------------------------------------------ */
/* topic create                                                              */

static const char create_usage[] =
    "usage: topic create DIR [--config NAME=VALUE]...\n"
    "\n"
    "Creates a new topic in directory DIR, which must not exist yet.\n"
    "Settings given with --config persist in DIR/topic.conf.\n"
    "\n"
    "  -c, --config NAME=VALUE  a setting, e.g. segment.bytes=64M (repeatable)\n"
    "  -h, --help               show this help\n"
    "\n"
    "Settings: segment.bytes, segment.ms, index.interval.bytes, max.message.bytes,\n"
    "flush.messages, flush.ms, retention.bytes, retention.ms, compression.type.\n";

int cmd_create(int argc, char **argv)
{
    enum { O_CONFIG = 1 };
    static const struct opt_spec specs[] = {
        { "config", 'c', true, O_CONFIG },
        { NULL, 0, false, 0 },
    };
    struct opt_parser p;
    opt_init(&p, argc, argv, create_usage);
    topic_config *conf = topic_config_new();
    if (conf == NULL)
        return report(-ENOMEM, "create");
    const char *dir = NULL, *arg;
    int id, rc = 0;
    while (rc == 0 && (id = opt_next(&p, specs, &arg)) != OPT_DONE) {
        if (id == OPT_ERROR)
            rc = TOOL_USAGE;
        else if (id == O_CONFIG)
            rc = apply_setting("create", conf, arg);
        else if (dir == NULL)
            dir = arg;
        else
            rc = usage_error("create", "unexpected argument '%s'", arg);
    }
    if (rc == 0 && dir == NULL)
        rc = usage_error("create", "missing DIR");
    topic *t = NULL;
    if (rc == 0)
        rc = open_topic(dir, TOPIC_CREATE | TOPIC_EXCL, conf, &t);
    topic_config_free(conf);
    if (rc == 0)
        rc = close_topic(t, dir);
    return rc;
}

/* ------------------------------------------------------------------------ */
/* topic config                                                              */

static const char config_usage[] =
    "usage: topic config DIR [--json]          show every setting\n"
    "       topic config DIR NAME              show one setting\n"
    "       topic config DIR NAME=VALUE...     change settings\n"
    "\n"
    "Shows the settings in force (from DIR/topic.conf, else the defaults), or\n"
    "changes them: the topic is opened as its writer with the new settings,\n"
    "which persist in topic.conf.  Changing needs the writer's lock: it fails\n"
    "while another process has the topic open for writing.\n"
    "\n"
    "  -j, --json  print every setting as one JSON object\n"
    "  -h, --help  show this help\n";

static int load_settings(const char *dir, topic_config **c, unsigned *set)
{
    int line = 0;
    int rc = settings_load(dir, c, set, &line);
    return rc < 0 ? settings_report(rc, dir, line) : 0;
}

/* Checks that DIR is a topic the library can open, as a reader. */
static int check_topic(const char *dir)
{
    topic *t;
    int rc = open_topic(dir, TOPIC_RDONLY, NULL, &t);
    if (rc == 0)
        rc = close_topic(t, dir);
    return rc;
}

int cmd_config(int argc, char **argv)
{
    enum { O_JSON = 1 };
    static const struct opt_spec specs[] = {
        { "json", 'j', false, O_JSON },
        { NULL, 0, false, 0 },
    };
    struct opt_parser p;
    opt_init(&p, argc, argv, config_usage);
    const char *dir = NULL, *arg;
    const char **items = calloc((size_t)argc, sizeof *items);
    if (items == NULL)
        return report(-ENOMEM, "config");
    size_t nitems = 0;
    bool json = false;
    int id, rc = 0;
    while (rc == 0 && (id = opt_next(&p, specs, &arg)) != OPT_DONE) {
        if (id == OPT_ERROR)
            rc = TOOL_USAGE;
        else if (id == O_JSON)
            json = true;
        else if (dir == NULL)
            dir = arg;
        else
            items[nitems++] = arg;
    }
    if (rc == 0 && dir == NULL)
        rc = usage_error("config", "missing DIR");
    size_t nset = 0;
    for (size_t i = 0; rc == 0 && i < nitems; i++)
        if (strchr(items[i], '=') != NULL)
            nset++;
    if (rc == 0 && nset > 0 && nset != nitems)
        rc = usage_error("config", "either show one setting or set some, not both");
    if (rc == 0 && nset == 0 && nitems > 1)
        rc = usage_error("config", "show one setting at a time, or none for all");
    if (rc != 0) {
        free(items);
        return rc;
    }

    if (nset > 0) {
        /* Set: every value is checked before the topic is touched. */
        topic_config *c = topic_config_new();
        if (c == NULL)
            rc = report(-ENOMEM, "config");
        for (size_t i = 0; rc == 0 && i < nitems; i++)
            rc = apply_setting("config", c, items[i]);
        topic *t = NULL;
        if (rc == 0)
            rc = check_topic(dir);
        if (rc == 0)
            rc = open_topic(dir, 0, c, &t);
        if (rc == 0)
            rc = close_topic(t, dir);
        topic_config_free(c);
        free(items);
        return rc;
    }

    rc = check_topic(dir);
    topic_config *c = NULL;
    unsigned set = 0;
    if (rc == 0)
        rc = load_settings(dir, &c, &set);
    char value[64];
    if (rc == 0 && nitems == 1) {
        int r = topic_config_get(c, items[0], value, sizeof value);
        if (r == -EINVAL)
            rc = complain(TOOL_USAGE, "config: unknown setting \"%s\"", items[0]);
        else if (r < 0)
            rc = report(r, "config: %s", items[0]);
        else if (json) {
            fputc('{', stdout);
            put_json_cstr(stdout, items[0]);
            fputc(':', stdout);
            if (setting_is_number(value))
                fputs(value, stdout);
            else
                put_json_cstr(stdout, value);
            fputs("}\n", stdout);
        } else {
            printf("%s\n", value);
        }
    } else if (rc == 0) {
        if (json)
            fputc('{', stdout);
        for (int i = 0; i < SETTING_COUNT && rc == 0; i++) {
            int r = topic_config_get(c, setting_names[i], value, sizeof value);
            if (r < 0) {
                rc = report(r, "config: %s", setting_names[i]);
                break;
            }
            if (json) {
                fputs(i ? "," : "", stdout);
                put_json_cstr(stdout, setting_names[i]);
                fputc(':', stdout);
                if (setting_is_number(value))
                    fputs(value, stdout);
                else
                    put_json_cstr(stdout, value);
            } else {
                printf("%s=%s\n", setting_names[i], value);
            }
        }
        if (json && rc == 0)
            fputs("}\n", stdout);
    }
    topic_config_free(c);
    free(items);
    return rc;
}

/* ------------------------------------------------------------------------ */
/* topic recover                                                             */

static const char recover_usage[] =
    "usage: topic recover DIR\n"
    "\n"
    "Opens the topic as its writer, which recovers it if the last writer did not\n"
    "close cleanly (the active segment is verified, a torn tail cut off and the\n"
    "indexes rebuilt), then closes it cleanly.  Prints what changed: the start\n"
    "and end offsets as a reader saw them before and as they are after, and the\n"
    "segment files removed, added or resized.  A damaged batch that the crash\n"
    "did not tear is kept, with the records after it, and reported: the exit\n"
    "status is then 1, as the damage remains.\n"
    "\n"
    "  -h, --help  show this help\n";

/* What one index file of a segment was at a snapshot. */
struct index_file {
    bool present;
    const char *not_regular;   /* NULL, or what it is instead */
    uint64_t size;
    dev_t dev;
    ino_t ino;
    struct timespec mtime;
};

static const char *const index_ext[2] = { ".index", ".timeindex" };

struct snapshot {
    bool opened;
    int err;
    uint64_t start, end;
    struct seg_file *segs;
    size_t nsegs;
    struct index_file (*idx)[2];   /* the indexes of segs[i], or NULL */
    int list_err;   /* 0, or why the segment files could not be listed */
};

/* Lists the segment files into s, and looks at their indexes.  A listing
 * that failed leaves s empty and its error in s->list_err: an empty list
 * must then not be read as "no segments", or the report would show every
 * segment as removed. */
static void snapshot_files(const char *dir, struct snapshot *s)
{
    s->segs = NULL;
    s->nsegs = 0;
    s->idx = NULL;
    s->list_err = seg_list(dir, &s->segs, &s->nsegs);   /* leaves them on failure */
    if (s->list_err != 0 || s->nsegs == 0 || (s->idx = calloc(s->nsegs, sizeof *s->idx)) == NULL)
        return;   /* without them, rebuilt indexes are not reported */
    for (size_t i = 0; i < s->nsegs; i++)
        for (int k = 0; k < 2; k++) {
            char path[PATH_MAX];
            struct stat st;
            struct index_file *f = &s->idx[i][k];
            snprintf(path, sizeof path, "%s/%.20s%s", dir, s->segs[i].name, index_ext[k]);
            if (lstat(path, &st) != 0)
                continue;
            f->present = true;
            f->not_regular = file_not_regular(st.st_mode);
            f->size = (uint64_t)st.st_size;
            f->dev = st.st_dev;
            f->ino = st.st_ino;
            f->mtime = st.st_mtim;
        }
}

static void snapshot_free(struct snapshot *s)
{
    free(s->segs);
    free(s->idx);
}

/* Prints what became of a segment's index files between two snapshots;
 * returns whether anything did. */
static bool report_indexes(const struct seg_file *seg, const struct index_file a[2],
                           const struct index_file b[2])
{
    bool changed = false;
    for (int k = 0; k < 2; k++) {
        const struct index_file *x = &a[k], *y = &b[k];
        bool same = x->present == y->present && x->not_regular == y->not_regular &&
                    (!x->present || (x->size == y->size && x->dev == y->dev && x->ino == y->ino &&
                                     x->mtime.tv_sec == y->mtime.tv_sec &&
                                     x->mtime.tv_nsec == y->mtime.tv_nsec));
        if (same)
            continue;
        changed = true;
        printf("%.20s%s: ", seg->name, index_ext[k]);
        if (!y->present)
            printf("removed\n");
        else if (!x->present)
            printf("rebuilt (it was missing), %" PRIu64 " bytes\n", y->size);
        else if (x->not_regular != NULL)
            printf("rebuilt (it was %s), %" PRIu64 " bytes\n", x->not_regular, y->size);
        else
            printf("rebuilt, %" PRIu64 " -> %" PRIu64 " bytes\n", x->size, y->size);
    }
    return changed;
}

/* The error of whichever of the two listings failed, reported; 0 if both
 * worked. */
static int listing_failed(const char *cmd, const char *dir, const struct snapshot *before,
                          const struct snapshot *after, const char *what)
{
    int err = before->list_err < 0 ? before->list_err : after->list_err;
    if (err == 0)
        return 0;
    return complain(TOOL_FAIL, "%s: listing %s failed: %s; %s", cmd, dir, strerror(-err), what);
}

static const struct seg_file *find_seg(const struct snapshot *s, uint64_t base)
{
    for (size_t i = 0; i < s->nsegs; i++)
        if (s->segs[i].base == base)
            return &s->segs[i];
    return NULL;
}

/*
 * A directory in the place of an index makes a writer's open fail with
 * TOPIC_ECORRUPT, whose message says that the data is corrupt: the library
 * replaces an index that is a FIFO or a symbolic link, but removes no
 * directory.  Nothing is wrong with the records, so the files are named
 * instead, each index directory with what to do about it.
 */
struct irregular {
    const char *dir;
    long index_dirs;
    bool print;
};

static bool is_index_dir(const char *name, const char *kind)
{
    size_t n = strlen(name);
    return strcmp(kind, "a directory") == 0 &&
           ((n > 6 && strcmp(name + n - 6, ".index") == 0) ||
            (n > 10 && strcmp(name + n - 10, ".timeindex") == 0));
}

static void note_irregular(void *arg, const char *name, const char *kind)
{
    struct irregular *c = arg;
    bool index_dir = is_index_dir(name, kind);
    c->index_dirs += index_dir;
    if (!c->print)
        return;
    if (index_dir)
        complain(TOOL_NOTFOUND, "recover: %s/%s: not a regular file but a directory, which a "
                 "writer does not remove; remove it, and recover rebuilds the index", c->dir,
                 name);
    else
        complain(TOOL_NOTFOUND, "recover: %s/%s: not a regular file but %s", c->dir, name, kind);
}

/* Reports why a writer's open failed with TOPIC_ECORRUPT when an index
 * directory is why; false (nothing printed) otherwise. */
static bool report_index_dirs(const char *dir)
{
    struct irregular c = { dir, 0, false };
    if (each_irregular_file(dir, note_irregular, &c) <= 0 || c.index_dirs == 0)
        return false;
    c.print = true;
    each_irregular_file(dir, note_irregular, &c);
    return true;
}

/*
 * Whether the recovered segment `b` still holds bytes that are not an intact
 * batch: the library keeps a batch damaged after a crash, rather than cut
 * it off with the records after it as if the crash had torn it.  The first
 * such range goes to *pos, with the offset the log expects there (*off,
 * UINT64_MAX when unknown).
 */
static bool kept_damage(const char *dir, const struct seg_file *b, size_t *pos, uint64_t *off)
{
    struct seg_map m;
    if (seg_map_open(dir, b, &m) != 0)
        return false;
    struct walker w;
    struct walk_item it;
    bool bad = false;
    walker_init(&w, &m, b->base);
    while (!bad && walker_next(&w, &it))
        if (it.kind == ITEM_BAD) {
            bad = true;
            *pos = it.pos;
            *off = it.expect_known ? it.expect : UINT64_MAX;
        }
    seg_map_close(&m);
    return bad;
}

int cmd_recover(int argc, char **argv)
{
    static const struct opt_spec specs[] = { { NULL, 0, false, 0 } };
    struct opt_parser p;
    opt_init(&p, argc, argv, recover_usage);
    const char *dir = NULL, *arg;
    int id;
    while ((id = opt_next(&p, specs, &arg)) != OPT_DONE) {
        if (id == OPT_ERROR)
            return TOOL_USAGE;
        if (dir != NULL)
            return usage_error("recover", "unexpected argument '%s'", arg);
        dir = arg;
    }
    if (dir == NULL)
        return usage_error("recover", "missing DIR");

    /* Before: what a reader makes of the topic, and the files. */
    struct snapshot before = { 0 }, after = { 0 };
    topic *t;
    snapshot_files(dir, &before);
    before.err = topic_open(dir, TOPIC_RDONLY, NULL, &t);
    if (before.err == 0) {
        before.opened = true;
        before.start = topic_start_offset(t);
        before.end = topic_end_offset(t);
        topic_close(t);
    } else if (before.err == -ENOENT) {
        snapshot_free(&before);
        return open_topic(dir, TOPIC_RDONLY, NULL, &t);   /* reports it */
    }

    int rc = topic_open(dir, 0, NULL, &t);
    if (rc == TOPIC_ECORRUPT && report_index_dirs(dir)) {
        snapshot_free(&before);
        return TOOL_NOTFOUND;
    }
    if (rc != 0) {
        snapshot_free(&before);
        return report_open_failure(dir, 0, rc);
    }
    after.opened = true;
    after.start = topic_start_offset(t);
    after.end = topic_end_offset(t);
    rc = close_topic(t, dir);
    snapshot_files(dir, &after);

    bool changed = false, damage_kept = false;
    if (!before.opened) {
        printf("before: a reader could not open the topic: %s\n", topic_strerror(before.err));
        changed = true;
    }
    if (before.opened && before.end != after.end) {
        printf("end offset: %" PRIu64 " -> %" PRIu64, before.end, after.end);
        if (after.end < before.end)
            printf(" (%" PRIu64 " records cut off)", before.end - after.end);
        putchar('\n');
        changed = true;
    }
    if (before.opened && before.start != after.start) {
        printf("start offset: %" PRIu64 " -> %" PRIu64 "\n", before.start, after.start);
        changed = true;
    }
    int lerr = listing_failed("recover", dir, &before, &after,
                              "the segment files it changed are not shown");
    for (size_t i = 0; i < before.nsegs && lerr == 0; i++) {
        const struct seg_file *a = &before.segs[i], *b = find_seg(&after, a->base);
        if (b == NULL) {
            if (a->not_regular != NULL)
                printf("removed %s (%s)\n", a->name, a->not_regular);
            else
                printf("removed %s (%" PRIu64 " bytes)\n", a->name, a->size);
            changed = true;
        } else if (a->not_regular != NULL || b->not_regular != NULL) {
            /* One that is still not a regular file is reported below. */
            if (b->not_regular == NULL) {
                printf("%s: %s -> %" PRIu64 " bytes\n", a->name, a->not_regular, b->size);
                changed = true;
            }
        } else if (b->size != a->size) {
            size_t pos;
            uint64_t off;
            bool damaged = b->size < a->size && kept_damage(dir, b, &pos, &off);
            printf("%s: %" PRIu64 " -> %" PRIu64 " bytes%s\n", a->name, a->size, b->size,
                   damaged               ? " (cut after its last batch)"
                   : b->size < a->size ? " (cut to its intact batches)"
                                       : "");
            if (damaged) {
                damage_kept = true;
                printf("%s: kept damaged bytes at position %zu", a->name, pos);
                if (off != UINT64_MAX)
                    printf(" (offset %" PRIu64 ")", off);
                printf(": the crash did not tear them, so the records after them were kept;"
                       " topic verify shows which offsets are unreadable\n");
            }
            changed = true;
        }
        if (b != NULL && before.idx != NULL && after.idx != NULL &&
            report_indexes(a, before.idx[i], after.idx[b - after.segs]))
            changed = true;
    }
    for (size_t i = 0; i < after.nsegs && lerr == 0; i++)
        if (find_seg(&before, after.segs[i].base) == NULL) {
            if (after.segs[i].not_regular == NULL)
                printf("added %s (%" PRIu64 " bytes)\n", after.segs[i].name,
                       after.segs[i].size);
            else
                printf("added %s (%s)\n", after.segs[i].name, after.segs[i].not_regular);
            changed = true;
        }
    if (!changed && lerr == 0)
        printf("nothing changed: ");
    printf("start offset %" PRIu64 ", end offset %" PRIu64 "%s\n", after.start, after.end,
           rc == 0 ? ", closed cleanly" : "");
    /* Recovery repairs segments, not files of another kind: one left in
     * place (a FIFO...) is damage that remains. */
    if (seg_report_irregular("recover", dir, after.segs, after.nsegs) > 0 && rc == 0)
        rc = TOOL_NOTFOUND;
    if (damage_kept && rc == 0)
        rc = TOOL_NOTFOUND;   /* the damage remains, as above */
    if (lerr != 0 && rc == 0)
        rc = lerr;
    snapshot_free(&before);
    snapshot_free(&after);
    return rc;
}

/* ------------------------------------------------------------------------ */
/* topic delete-before                                                       */

static const char delete_usage[] =
    "usage: topic delete-before DIR OFFSET\n"
    "\n"
    "Makes OFFSET the start offset: the records below it are gone for every\n"
    "reader, and the segment files holding only such records are deleted.\n"
    "Durable when the command returns.  An OFFSET at or below the start offset\n"
    "changes nothing; one beyond the end offset is refused (exit status 1).\n"
    "\n"
    "  -q, --quiet  print nothing on success\n"
    "  -h, --help   show this help\n";

int cmd_delete_before(int argc, char **argv)
{
    enum { O_QUIET = 1 };
    static const struct opt_spec specs[] = {
        { "quiet", 'q', false, O_QUIET },
        { NULL, 0, false, 0 },
    };
    struct opt_parser p;
    opt_init(&p, argc, argv, delete_usage);
    const char *dir = NULL, *off = NULL, *arg;
    bool quiet = false;
    int id;
    while ((id = opt_next(&p, specs, &arg)) != OPT_DONE) {
        if (id == OPT_ERROR)
            return TOOL_USAGE;
        if (id == O_QUIET)
            quiet = true;
        else if (dir == NULL)
            dir = arg;
        else if (off == NULL)
            off = arg;
        else
            return usage_error("delete-before", "unexpected argument '%s'", arg);
    }
    uint64_t offset;
    if (dir == NULL || off == NULL)
        return usage_error("delete-before", "expected DIR and OFFSET");
    if (!parse_u64(off, &offset))
        return usage_error("delete-before", "'%s' is not an offset", off);
    struct snapshot before = { 0 }, after = { 0 };
    topic *t;
    int rc = open_topic(dir, 0, NULL, &t);
    if (rc != 0)
        return rc;
    snapshot_files(dir, &before);
    uint64_t start = topic_start_offset(t), end = topic_end_offset(t);
    int err = topic_delete_before(t, offset);
    if (err == -EINVAL && offset > end)
        rc = complain(TOOL_NOTFOUND, "delete-before %" PRIu64 ": beyond the end offset %" PRIu64,
                      offset, end);
    else if (err < 0)
        rc = report(err, "delete-before %" PRIu64, offset);
    uint64_t new_start = topic_start_offset(t);
    int crc = close_topic(t, dir);
    if (rc == 0)
        rc = crc;
    if (rc == 0 && !quiet) {
        snapshot_files(dir, &after);
        int lerr = listing_failed("delete-before", dir, &before, &after,
                                  "the deleted segment files are not counted");
        size_t gone = before.nsegs > after.nsegs ? before.nsegs - after.nsegs : 0;
        if (new_start == start)
            printf("start offset %" PRIu64 " unchanged\n", start);
        else if (lerr != 0)
            printf("start offset: %" PRIu64 " -> %" PRIu64 "\n", start, new_start);
        else
            printf("start offset: %" PRIu64 " -> %" PRIu64 " (%zu segment%s deleted)\n", start,
                   new_start, gone, gone == 1 ? "" : "s");
        rc = lerr;
    }
    snapshot_free(&before);
    snapshot_free(&after);
    return rc;
}
