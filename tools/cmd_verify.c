/*
 * topic verify and topic dump: the two subcommands that read segment files
 * directly, batch by batch (walk.c), rather than through the library.
 *
 * verify checks every batch of every segment: header, checksum, records and
 * the header's timestamps, and that offsets continue densely from batch to
 * batch and from one segment to the next.  It reports each problem by
 * segment file, file position and offset, and goes on to the next intact
 * batch.  dump prints the batches and their records, for looking at the
 * format itself.
 *
 * A writer appending meanwhile can make one pass of verify see what is not
 * damage, so a pass that finds anything is run again and only what both
 * passes found alike is reported (see cmd_verify).  dump shows what it
 * reads once, and is meant for a topic at rest.
 *
 * SPDX-License-Identifier: BSD-2-Clause
 */
#include <errno.h>
#include <limits.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <inttypes.h>
#include <setjmp.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "walk.h"

/*
 * A file cut short under our mapping (a writer sealing it) raises SIGBUS.
 * So does a read the disk fails.  While verify walks a segment (bus_armed),
 * the signal jumps back to verify_segment(), which reports the segment as
 * damage: a second pass confirms it only if the read fails again.
 * Elsewhere (dump, which writes records' bytes straight from the mapping
 * with stdio, where a jump could leave a stream locked) the program says
 * why it stops, and stops.
 */
static sigjmp_buf bus_jump;
static volatile sig_atomic_t bus_armed;

static void on_sigbus(int sig)
{
    static const char msg[] = "topic: a segment file shrank while it was being read "
                              "(is a writer running?)\n";
    (void)sig;
    if (bus_armed) {
        bus_armed = 0;
        siglongjmp(bus_jump, 1);
    }
    ssize_t w = write(STDERR_FILENO, msg, sizeof msg - 1);
    (void)w;
    _exit(TOOL_FAIL);
}

static void catch_sigbus(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_sigbus;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGBUS, &sa, NULL);
}

/* ------------------------------------------------------------------------ */
/* topic verify                                                              */

static const char verify_usage[] =
    "usage: topic verify DIR [--json] [--quiet]\n"
    "\n"
    "Reads every segment file of the topic directly and checks every batch: its\n"
    "header, its checksum, its records, and that offsets continue without a gap\n"
    "or an overlap from batch to batch and from one segment file to the next,\n"
    "and the entries of each segment's index files.  The offsets reported\n"
    "unreadable are those a reader is refused.\n"
    "Each problem is reported with its segment file, file position and offset.\n"
    "Exits 0 when everything is intact, 1 when damage was found.  Shows a\n"
    "progress bar on standard error when that is a terminal.\n"
    "\n"
    "  -j, --json   print one JSON object\n"
    "  -q, --quiet  print only the problems and the summary\n"
    "  -h, --help   show this help\n";

struct damage {
    char file[32];
    size_t pos, len;
    bool has_offset, has_end;
    uint64_t offset, end;     /* offsets [offset, end) are affected */
    bool reached;             /* a reader's probes moved end on from walk_end */
    uint64_t walk_end;
    char what[224];
};

struct verify {
    bool json, quiet;
    FILE *out;                /* the report: stdout, or a buffer (see cmd_verify) */
    struct damage *v;
    size_t n, cap;
    /* The second pass: the first pass's damage, how much of it this pass
     * found too, and what it found that the first did not. */
    const struct damage *confirm;
    size_t nconfirm, matched, matched_upto, dropped;
    uint64_t batches, records;
    unsigned unreadable;      /* files that could not be read, newer batches */
    topic *lib;               /* a reader's handle for the pass, or NULL */
    uint64_t lib_start, lib_end;   /* its start and end offsets when the pass began */
    bool live;                /* a writer has the topic open (writer_live) */
    /* progress on a terminal */
    bool progress;
    uint64_t total_bytes, done_bytes;
    struct timespec shown;
};

static struct damage *add_damage(struct verify *v, const char *file, size_t pos, size_t len)
{
    if (v->n == v->cap) {
        size_t cap = v->cap ? v->cap * 2 : 16;
        struct damage *nv = realloc(v->v, cap * sizeof *nv);
        if (nv == NULL) {
            fputs("topic: verify: out of memory\n", stderr);
            exit(TOOL_FAIL);
        }
        v->v = nv;
        v->cap = cap;
    }
    struct damage *d = &v->v[v->n++];
    memset(d, 0, sizeof *d);
    snprintf(d->file, sizeof d->file, "%s", file);
    d->pos = pos;
    d->len = len;
    return d;
}

static void clear_progress(struct verify *v)
{
    if (v->progress)
        fputs("\r\033[K", stderr);
}

/* Where the walk found the affected offsets to end.  The passes are
 * compared on this: where a reader can read again (probe_segment,
 * reach_from) may move while a writer appends. */
static uint64_t walk_end(const struct damage *d)
{
    return d->reached ? d->walk_end : d->end;
}

static bool same_damage(const struct damage *a, const struct damage *b)
{
    return strcmp(a->file, b->file) == 0 && a->pos == b->pos && a->len == b->len &&
           a->has_offset == b->has_offset && a->offset == b->offset &&
           a->has_end == b->has_end && walk_end(a) == walk_end(b) &&
           strcmp(a->what, b->what) == 0;
}

static void print_damage(struct verify *v, const struct damage *d)
{
    if (v->json)
        return;
    clear_progress(v);
    FILE *f = v->out;
    fprintf(f, "%s: position %zu", d->file, d->pos);
    if (d->has_offset)
        fprintf(f, ", offset %" PRIu64, d->offset);
    fprintf(f, ": %s", d->what);
    if (d->has_offset && d->has_end && d->end > d->offset + 1)
        fprintf(f, "; offsets %" PRIu64 "-%" PRIu64 " unreadable", d->offset, d->end - 1);
    else if (d->has_offset && d->has_end && d->end == d->offset + 1)
        fprintf(f, "; offset %" PRIu64 " unreadable", d->offset);
    else if (d->has_offset && !d->has_end)
        fprintf(f, "; offsets from %" PRIu64 " on unreadable", d->offset);
    fputc('\n', f);
    fflush(f);
}

/* Problems one pass found and the other did not: left out of the report. */
static size_t unconfirmed(const struct verify *v)
{
    return v->confirm != NULL ? v->nconfirm - v->matched + v->dropped : 0;
}

/*
 * Reports d, the entry add_damage() just gave, once its fields are filled
 * in.  On the second pass (see cmd_verify) an entry the first pass did not
 * find the same is dropped instead: it returns false, and the caller counts
 * nothing for it.
 */
static bool show_damage(struct verify *v, const struct damage *d)
{
    if (v->confirm != NULL) {
        /* Both passes walk the topic in the same order, so the match is
         * usually the next entry of the first pass. */
        size_t i = v->matched_upto;
        while (i < v->nconfirm && !same_damage(d, &v->confirm[i]))
            i++;
        if (i == v->nconfirm) {
            v->n--;
            v->dropped++;
            return false;
        }
        v->matched_upto = i + 1;
        v->matched++;
    }
    print_damage(v, d);
    return true;
}

/* Reports d, which is not damage but a part that could not be checked
 * (a failure of this program, or a newer format), as such: it is never
 * dropped, and counts as unreadable. */
static void note_unreadable(struct verify *v, const struct damage *d)
{
    print_damage(v, d);
    v->n--;
    v->unreadable++;
}

/* Names what is wrong with topic.conf, when that is why the library refused
 * the topic: a line it refuses, a file over 64 KiB or with a NUL byte, or
 * one that is not a regular file. */
static void conf_damage(struct verify *v, const char *dir)
{
    topic_config *c = NULL;
    unsigned set;
    int line;
    int rc = settings_load(dir, &c, &set, &line);
    if (rc == 0) {
        topic_config_free(c);
        return;
    }
    const char *why = settings_error();
    if (rc != TOPIC_ECORRUPT || why[0] == '\0')
        return;
    struct damage *d = add_damage(v, "topic.conf", 0, 0);
    if (line > 0)
        snprintf(d->what, sizeof d->what, "line %d: %s", line, why);
    else
        snprintf(d->what, sizeof d->what, "%s", why);
    show_damage(v, d);
}

/* Whether a reader is refused offset x as damaged. */
static bool refused(topic *t, uint64_t x)
{
    size_t len;
    return topic_read(t, x, NULL, 0, &len) == TOPIC_ECORRUPT;
}

/*
 * The first offset from x on, below limit, that a reader is not refused
 * (limit if there is none), where x is refused and the offsets refused
 * after it are one run.  A short run is probed offset by offset; a long
 * one (a reader refuses every offset of a segment from the damage on when
 * no index entry leads past it) is measured by doubling steps, then
 * halving.
 */
static uint64_t refused_run_end(struct verify *v, uint64_t x, uint64_t limit)
{
    uint64_t start = x;
    for (int n = 0; n < 64 && x < limit && refused(v->lib, x); n++)
        x++;
    if (x - start == 64 && x < limit) {
        uint64_t lo = x - 1, hi = limit, step = 64;   /* lo refused; hi read, or limit */
        while (lo + step < limit) {
            if (!refused(v->lib, lo + step)) {
                hi = lo + step;
                break;
            }
            lo += step;
            step *= 2;
        }
        while (hi - lo > 1) {
            uint64_t mid = lo + (hi - lo) / 2;
            if (refused(v->lib, mid))
                lo = mid;
            else
                hi = mid;
        }
        x = hi;
    }
    return x;
}

/*
 * d's unreadable offsets, for a problem found between segments or at the
 * end of the last one: those from d->offset on that a reader is refused,
 * up to the first one it reads, or `limit`.  None (d->end == d->offset)
 * when it reads d->offset.
 */
static void reach_from(struct verify *v, struct damage *d, uint64_t limit)
{
    if (v->lib == NULL || !d->has_offset || d->offset < v->lib_start || d->offset >= limit)
        return;
    d->walk_end = d->has_end ? d->end : d->offset;
    d->reached = true;
    d->has_end = true;
    d->end = refused(v->lib, d->offset) ? refused_run_end(v, d->offset, limit) : d->offset;
}

/* ------------------------------------------------------------------------ */
/* What readers are refused in one segment                                  */

/*
 * A reader finds a record by walking batch headers from the segment's
 * index entry before it, and cannot walk past a batch whose header is
 * damaged, or one whose base offset does not continue the offsets; when
 * the walk from an index entry fails, it walks again from the start of the
 * segment.  So which intact records it is refused depends on where the
 * damage is, on which index entries lead past it and on whether those
 * entries are right.  The library does not search for the next batch as
 * the walk here does: a record's value may itself hold a well-formed batch,
 * and a reader must never return that.
 *
 * So that the offsets reported unreadable are those a reader is refused,
 * they are not worked out from the walk but asked of the library, with a
 * handle open for the pass: topic_read() of an offset either gives the
 * record or is refused with TOPIC_ECORRUPT.  A segment's offsets fall into
 * pieces that a reader treats alike: cut at every batch boundary the walk
 * saw (damaged headers' too) and at every index entry, no reader's walk
 * ends differently for two offsets of one piece.  One offset of each piece
 * is probed.  Once a piece of intact records is refused, the walk to it
 * failed, and every piece after it is refused too until an index entry
 * leads past the damage, or until the next thing the walk found wrong:
 * such a run is measured by doubling steps, then halving, so that a
 * segment whose reader has no index entry past its damage costs few
 * probes.
 */
struct span {                 /* the offsets a batch header claims */
    uint64_t from, to;
    size_t pos;
    bool intact;
    bool at_known;            /* the offset the walk expected at pos is known: */
    uint64_t at;
};

struct cut {
    uint64_t at;
    bool special;             /* where the walk found something wrong */
    bool entry;               /* where an index entry is */
};

struct seg_check {
    struct span *spans;
    size_t nspans, capspans;
    struct damage *pend;      /* the segment's problems, reported after the walk */
    size_t npend, cappend;
};

static void *grow(void *p, size_t *cap, size_t need, size_t size)
{
    if (need <= *cap)
        return p;
    size_t c = *cap ? *cap * 2 : 64;
    while (c < need)
        c *= 2;
    void *q = realloc(p, c * size);
    if (q == NULL) {
        fputs("topic: verify: out of memory\n", stderr);
        exit(TOOL_FAIL);
    }
    *cap = c;
    return q;
}

/* A batch the walk found at pos (intact, or with a header that parses),
 * or, from == to, bytes there that are not one. */
static void add_span(struct seg_check *c, const struct walk_item *it, bool intact)
{
    uint64_t from = it->header_ok ? it->h.base_offset : it->expect;
    uint64_t count = it->header_ok ? it->h.count : 0;
    c->spans = grow(c->spans, &c->capspans, c->nspans + 1, sizeof *c->spans);
    c->spans[c->nspans++] = (struct span){ from, from + count, it->pos, intact,
                                           it->expect_known, it->expect };
}

static struct damage *pend_damage(struct seg_check *c, const char *file, size_t pos, size_t len)
{
    c->pend = grow(c->pend, &c->cappend, c->npend + 1, sizeof *c->pend);
    struct damage *d = &c->pend[c->npend++];
    memset(d, 0, sizeof *d);
    snprintf(d->file, sizeof d->file, "%s", file);
    d->pos = pos;
    d->len = len;
    return d;
}

static int cmp_cut(const void *a, const void *b)
{
    const struct cut *x = a, *y = b;
    if (x->at != y->at)
        return x->at < y->at ? -1 : 1;
    return (int)y->special - (int)x->special;   /* a special one first */
}

/* Whether every offset of [from, to) lies in a batch the walk found intact,
 * and in no damaged header's claim. */
static bool intact_piece(const struct seg_check *c, uint64_t from, uint64_t to)
{
    bool in_intact = false;
    for (size_t i = 0; i < c->nspans; i++) {
        const struct span *s = &c->spans[i];
        if (s->from >= to || s->to <= from)
            continue;
        if (!s->intact)
            return false;
        if (s->from <= from && s->to >= to)
            in_intact = true;
    }
    return in_intact;
}

/*
 * Fills in the unreadable offsets of the problems c->pend found in one
 * segment, whose offsets a reader looks for in [lo, hi): each gets the run
 * of refused offsets its offset begins or lies in, or none.  Refused
 * offsets that no problem's range covers get a problem of their own.
 * entry_at[] are the offsets of the segment's index entries; index_bad
 * says one of them is wrong.
 */
static void probe_segment(struct verify *v, struct seg_check *c, const char *name,
                          uint64_t lo, uint64_t hi, const uint64_t *entry_at, size_t nentries,
                          bool index_bad)
{
    size_t ncuts = 0, capcuts = 0;
    struct cut *cuts = NULL;
#define CUT(x, sp, en)                                                          \
    do {                                                                        \
        uint64_t at_ = (x);                                                     \
        if (at_ >= lo && at_ < hi) {                                            \
            cuts = grow(cuts, &capcuts, ncuts + 1, sizeof *cuts);               \
            cuts[ncuts++] = (struct cut){ at_, (sp), (en) };                    \
        }                                                                       \
    } while (0)
    CUT(lo, false, true);
    for (size_t i = 0; i < c->nspans; i++) {
        CUT(c->spans[i].from, !c->spans[i].intact, false);
        CUT(c->spans[i].to, !c->spans[i].intact, false);
    }
    /* Where the index holds a wrong entry, the library's search of it (an
     * interpolation search, which assumes the entries in order) may pick
     * the right entry for one offset of a batch and a wrong one for the
     * next: every offset is then a piece of its own and probed.  A refused
     * one costs a walk from the start of the segment, so this is done for
     * segments of up to 16384 offsets only; in a longer one, the index is
     * probed as if right, and its wrong entries' own offsets. */
    if (index_bad && hi - lo > 16384)
        index_bad = false;
    for (size_t i = 0; i < nentries; i++)
        CUT(entry_at[i], index_bad, true);
    if (index_bad)
        for (uint64_t x = lo; x < hi; x++)
            CUT(x, true, false);
    for (size_t i = 0; i < c->npend; i++) {
        if (!c->pend[i].has_offset)
            continue;
        CUT(c->pend[i].offset, true, false);
        if (c->pend[i].has_end)
            CUT(c->pend[i].end, true, false);
    }
#undef CUT
    qsort(cuts, ncuts, sizeof *cuts, cmp_cut);
    size_t k = 0;
    for (size_t i = 0; i < ncuts; i++) {
        if (k > 0 && cuts[k - 1].at == cuts[i].at) {
            cuts[k - 1].special |= cuts[i].special;
            cuts[k - 1].entry |= cuts[i].entry;
            continue;
        }
        cuts[k++] = cuts[i];
    }
    ncuts = k;
    /*
     * With a right index, a reader of an offset walks from the entry before
     * it, and is refused only if damage lies between the two: only the
     * pieces from an entry that precedes something the walk found wrong up
     * to the next entry need probing (`probe`), and the runs of refused
     * offsets that go on past them, measured below.  A segment of a
     * million intact batches with one damaged is probed about one index
     * interval's worth.
     */
    bool *probe = malloc((ncuts ? ncuts : 1) * sizeof *probe);
    if (probe == NULL) {
        fputs("topic: verify: out of memory\n", stderr);
        exit(TOOL_FAIL);
    }
    for (size_t i = 0; i < ncuts;) {
        size_t j = i + 1;
        bool any = cuts[i].special;
        while (j < ncuts && !cuts[j].entry)
            any |= cuts[j++].special;
        for (size_t q = i; q < j; q++)
            probe[q] = any || index_bad;
        i = j;
    }
    /* Piece i is [cuts[i].at, cuts[i + 1].at or hi). */
    bool *bad = calloc(ncuts ? ncuts : 1, sizeof *bad);
    if (bad == NULL) {
        fputs("topic: verify: out of memory\n", stderr);
        exit(TOOL_FAIL);
    }
    for (size_t i = 0; i < ncuts;) {
        uint64_t to = i + 1 < ncuts ? cuts[i + 1].at : hi;
        if (!probe[i] || !refused(v->lib, cuts[i].at)) {
            i++;
            continue;
        }
        bad[i] = true;
        if (i + 1 == ncuts || cuts[i + 1].special || !intact_piece(c, cuts[i].at, to)) {
            i++;
            continue;
        }
        /* The walk to these intact records failed: the pieces up to the
         * next special cut are refused up to the first one an index entry
         * lets a reader reach. */
        size_t end = i + 1;
        while (end < ncuts && !cuts[end].special)
            end++;
        size_t l = i, h = end, step = 1;   /* l refused; h read, or the end */
        while (l + step < end) {
            if (!refused(v->lib, cuts[l + step].at)) {
                h = l + step;
                break;
            }
            l += step;
            step *= 2;
        }
        while (h - l > 1) {
            size_t mid = l + (h - l) / 2;
            if (refused(v->lib, cuts[mid].at))
                l = mid;
            else
                h = mid;
        }
        for (size_t j = i; j < h; j++)
            bad[j] = true;
        i = h;
    }
    /* The refused runs, and the problems' ranges in them. */
    size_t npend = c->npend;
    for (size_t i = 0; i < ncuts;) {
        if (!bad[i]) {
            i++;
            continue;
        }
        size_t j = i;
        while (j < ncuts && bad[j])
            j++;
        uint64_t a = cuts[i].at, b = j < ncuts ? cuts[j].at : hi;
        uint64_t covered = b;
        for (size_t p = 0; p < npend; p++) {
            struct damage *d = &c->pend[p];
            if (d->has_offset && d->offset >= a && d->offset < b) {
                if (!d->reached) {
                    d->walk_end = d->has_end ? d->end : d->offset;
                    d->reached = true;
                }
                d->has_end = true;
                d->end = b;
                if (d->offset < covered)
                    covered = d->offset;
            }
        }
        if (covered > a) {
            /* Intact records a reader cannot reach, past no problem of their
             * own: say which, where they are. */
            size_t pos = 0;
            for (size_t s = 0; s < c->nspans; s++)
                if (c->spans[s].from <= a && a < c->spans[s].to) {
                    pos = c->spans[s].pos;
                    break;
                }
            struct damage *d = pend_damage(c, name, pos, 0);
            d->has_offset = d->has_end = true;
            d->offset = a;
            d->end = covered;
            d->reached = true;
            d->walk_end = a;
            snprintf(d->what, sizeof d->what, "records a reader cannot reach: its walk from "
                     "the index entry before them stops at damage reported above");
        }
        i = j;
    }
    /* A problem whose offset a reader is not refused makes none unreadable;
     * nor does one at or past hi, where a reader finds the end of the topic
     * or the next segment, or below lo, where it finds records gone. */
    for (size_t p = 0; p < npend; p++) {
        struct damage *d = &c->pend[p];
        if (d->has_offset && !d->reached) {
            d->walk_end = d->has_end ? d->end : d->offset;
            d->reached = true;
            d->has_end = true;
            d->end = d->offset;
        }
    }
    free(probe);
    free(bad);
    free(cuts);
}

static void update_progress(struct verify *v, uint64_t done)
{
    if (!v->progress)
        return;
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    int64_t ms = (int64_t)(now.tv_sec - v->shown.tv_sec) * 1000 +
                 (now.tv_nsec - v->shown.tv_nsec) / 1000000;
    if (ms < 100 && done < v->total_bytes)
        return;
    v->shown = now;
    unsigned pct = v->total_bytes ? (unsigned)(done * 100 / v->total_bytes) : 100;
    char bar[41];
    unsigned fill = pct * 40 / 100;
    memset(bar, '#', fill);
    memset(bar + fill, '.', 40 - fill);
    bar[40] = '\0';
    fprintf(stderr, "\rverifying [%s] %3u%% %" PRIu64 "/%" PRIu64 " MiB", bar, pct,
            done >> 20, v->total_bytes >> 20);
    fflush(stderr);
}

/*
 * Checks the entries of the segment's index file (`ext` ".index" or
 * ".timeindex") against the batches the walk found (c->spans): each must
 * name the position of an intact batch and that batch's first offset, and
 * follow the entry before it.  A wrong entry is a problem of its own: it
 * costs a reader nothing while the walk from the start of the segment
 * succeeds, but sends it there, so that damage before it makes the records
 * it indexes unreadable too.  Entries past `walked` (the end of the data
 * the walk saw) are left alone while a writer appends (`live`): they may
 * index a batch appended since.
 */
static void check_index(struct seg_check *c, const struct seg_file *s, const char *ext, uint64_t limit, size_t walked,
                        bool live, const struct index_entry *e, size_t n)
{
    char name[48];
    snprintf(name, sizeof name, "%020" PRIu64 "%s", s->base, ext);
    bool tidx = strcmp(ext, ".timeindex") == 0;
    size_t esize = tidx ? 16 : 8;
    for (size_t i = 0; i < n; i++) {
        char why[160];
        why[0] = '\0';
        /* A writer stores an entry's position last: the last entry of a
         * live segment's file, its position still 0, is being written. */
        if (live && i + 1 == n && e[i].pos == 0)
            continue;
        if (e[i].pos == 0) {
            snprintf(why, sizeof why, "its position is 0, which no entry may name");
        } else if (e[i].pos >= walked) {
            if (live)
                continue;
            snprintf(why, sizeof why, "the position is past the segment's data (%zu bytes)",
                     walked);
        } else {
            /* The walk goes forward: the spans are in position order. */
            const struct span *sp = NULL;
            size_t l = 0, h = c->nspans;
            while (l < h) {
                size_t mid = l + (h - l) / 2;
                if (c->spans[mid].pos < e[i].pos)
                    l = mid + 1;
                else
                    h = mid;
            }
            if (l < c->nspans && c->spans[l].pos == e[i].pos)
                sp = &c->spans[l];
            /* A damaged batch may be indexed right: its first offset is
             * the one the walk expected there. */
            uint64_t first = sp == NULL ? 0 : sp->intact || !sp->at_known ? sp->from : sp->at;
            if (sp == NULL || (!sp->intact && !sp->at_known))
                snprintf(why, sizeof why, "no batch starts at that position");
            else if (first != s->base + e[i].rel)
                snprintf(why, sizeof why, "the batch there starts at offset %" PRIu64, first);
            else if (i > 0 && (e[i].rel <= e[i - 1].rel || e[i].pos <= e[i - 1].pos))
                snprintf(why, sizeof why, "it does not follow the entry before it");
            else if (tidx && i > 0 && e[i].max_ts_before < e[i - 1].max_ts_before)
                snprintf(why, sizeof why, "its max_ts_before is below the entry before it's");
        }
        if (why[0] == '\0')
            continue;
        struct damage *d = pend_damage(c, name, i * esize, esize);
        uint64_t at = s->base + e[i].rel;
        if (!tidx && at < limit && e[i].rel != 0) {
            d->has_offset = true;
            d->offset = at;
        }
        snprintf(d->what, sizeof d->what, "entry %zu (offset %" PRIu64 ", position %" PRIu32
                 ") is wrong: %s", i, at, e[i].pos, why);
    }
}

/* Verifies one segment; *end gets where its offsets end, when known. */
static void verify_segment(struct verify *v, const char *dir, const struct seg_file *s,
                           const struct seg_file *next, uint64_t done_before, bool *end_known,
                           uint64_t *end)
{
    struct seg_map m;
    /* The index files first: an entry a writer adds meanwhile then names a
     * batch it had appended already, which the walk below sees. */
    struct index_entry *ix = NULL, *tix = NULL;
    size_t nix = 0, ntix = 0;
    char iname[48];
    snprintf(iname, sizeof iname, "%020" PRIu64 ".index", s->base);
    if (index_read(dir, iname, false, &ix, &nix) < 0)
        nix = 0;
    snprintf(iname, sizeof iname, "%020" PRIu64 ".timeindex", s->base);
    if (index_read(dir, iname, true, &tix, &ntix) < 0)
        ntix = 0;
    int rc = seg_map_open(dir, s, &m);
    *end_known = false;
    if (rc == TOPIC_ECORRUPT && m.not_regular != NULL) {
        /* A FIFO or the like where a segment should be: none of its
         * offsets can be read. */
        struct damage *d = add_damage(v, s->name, 0, 0);
        d->has_offset = true;
        d->offset = s->base;
        if (next != NULL && next->base > s->base) {
            d->has_end = true;
            d->end = next->base;
        }
        snprintf(d->what, sizeof d->what, "not a regular file but %s", m.not_regular);
        show_damage(v, d);
        free(ix);
        free(tix);
        return;
    }
    if (rc < 0) {
        struct damage *d = add_damage(v, s->name, 0, 0);
        snprintf(d->what, sizeof d->what, "cannot read the file: %s", topic_strerror(rc));
        if (show_damage(v, d))
            v->unreadable++;
        free(ix);
        free(tix);
        return;
    }
    /* Where this segment's offsets end for a reader: the next segment's
     * base, or the topic's end offset. */
    uint64_t limit = next != NULL ? next->base : v->lib_end;
    /* The last segment of a topic a writer has open: what lies at and
     * after the end offset the library gave when the pass began is an
     * append in flight, or one made since, not damage.  A writer stalled
     * in the middle of an append (waiting for a page of the file, say)
     * can show both passes the same half-written batch there. */
    bool past_end_live = next == NULL && v->lib != NULL && v->live;
    /* Static, not automatic: they keep their values when a SIGBUS jumps
     * back to the sigsetjmp() below. */
    static struct walker w;
    static struct walk_item it;
    static struct zbuf z;
    static uint64_t batches, records, open_records;
    static size_t damaged, tail;
    static struct seg_check c;
    static bool bussed, index_bad;
    z = (struct zbuf){ NULL, 0 };
    batches = records = open_records = 0;
    damaged = tail = 0;
    c.nspans = c.npend = 0;
    bussed = index_bad = false;
    walker_init(&w, &m, s->base);
    if (sigsetjmp(bus_jump, 1) != 0) {
        /* From where the walk had come to: the batches before it passed. */
        struct damage *d = pend_damage(&c, s->name, w.pos, m.size > w.pos ? m.size - w.pos : 0);
        d->has_offset = true;
        d->offset = w.expect_known ? w.expect : s->base;
        if (next != NULL && next->base > d->offset) {
            d->has_end = true;
            d->end = next->base;
        }
        snprintf(d->what, sizeof d->what, "reading the mapped file failed (SIGBUS): cut "
                 "short below its %zu bytes while being read, or a read the disk failed",
                 m.size);
        w.expect_known = false;   /* where its offsets end is not known */
        bussed = true;
        goto walked;
    }
    bus_armed = 1;
    while (walker_next(&w, &it)) {
        update_progress(v, done_before + it.pos + it.len);
        if (it.kind == ITEM_TAIL) {
            tail = it.len;
            continue;
        }
        if (past_end_live && it.expect_known && it.expect >= v->lib_end) {
            /* Not judged: see past_end_live. */
            w.pos = it.pos;
            w.expect = it.expect;
            w.expect_known = true;
            break;
        }
        if (it.kind == ITEM_NEWER) {
            struct damage *d = add_damage(v, s->name, it.pos, it.len);
            snprintf(d->what, sizeof d->what, "a batch of a newer format version "
                     "(this release cannot check it)");
            note_unreadable(v, d);
            continue;
        }
        if (it.kind == ITEM_OPEN && next != NULL) {
            /* A writer seals its open batch before it rolls. */
            struct damage *d = pend_damage(&c, s->name, it.pos, it.len);
            d->has_offset = true;
            d->offset = it.h.base_offset;
            snprintf(d->what, sizeof d->what, "an open batch (%" PRIu32 " records, never "
                     "sealed) in a segment that was rolled away from", it.h.count);
            continue;
        }
        if (it.kind == ITEM_OPEN) {
            /* A writer's last appends, which it seals, or the next writer
             * of this boot seals for it: not damage.  Its records have no
             * checksum to verify yet. */
            open_records += it.h.count;
            records += it.h.count;
            add_span(&c, &it, true);
            continue;
        }
        if (it.kind == ITEM_BATCH) {
            batches++;
            records += it.h.count;
            add_span(&c, &it, true);
            if (it.expect_known && it.h.base_offset != it.expect) {
                struct damage *d = pend_damage(&c, s->name, it.pos, it.len);
                d->has_offset = true;
                if (it.h.base_offset > it.expect) {
                    d->offset = it.expect;
                    d->end = it.h.base_offset;
                    d->has_end = true;
                    snprintf(d->what, sizeof d->what, "offsets missing: the batch starts at "
                             "offset %" PRIu64 ", %" PRIu64 " was expected", it.h.base_offset,
                             it.expect);
                } else {
                    /* A reader reads the offsets below the one expected in
                     * the batch before; its walk fails from there on. */
                    d->offset = it.expect;
                    snprintf(d->what, sizeof d->what, "offsets overlap: the batch starts at "
                             "offset %" PRIu64 ", %" PRIu64 " was expected", it.h.base_offset,
                             it.expect);
                }
            }
            const char *why = batch_check(m.p + it.pos, &it.h, &z);
            if (why != NULL) {
                struct damage *d = pend_damage(&c, s->name, it.pos, it.len);
                d->has_offset = d->has_end = true;
                d->offset = it.h.base_offset;
                d->end = it.h.base_offset + it.h.count;
                snprintf(d->what, sizeof d->what, "the checksum holds but %s", why);
            }
            continue;
        }
        /* ITEM_BAD */
        if (it.header_ok || it.expect_known)
            add_span(&c, &it, false);
        struct damage *d = pend_damage(&c, s->name, it.pos, it.len);
        if (it.expect_known) {
            d->has_offset = true;
            d->offset = it.expect;
        }
        if (it.count_trusted) {
            d->has_end = true;
            d->end = it.h.base_offset + it.h.count;
        } else if (it.next_known) {
            d->has_end = true;
            d->end = it.next_base;
        } else if (it.pos + it.len >= m.size || m.data_end <= it.pos + it.len) {
            /* To the end of the file: the next segment says where it ended. */
            if (next != NULL) {
                d->has_end = true;
                d->end = next->base;
            }
        }
        if (it.header_ok)
            snprintf(d->what, sizeof d->what, "%s (batch of %zu bytes, header says base "
                     "offset %" PRIu64 ", %" PRIu32 " records)", it.problem, it.len,
                     it.h.base_offset, it.h.count);
        else
            snprintf(d->what, sizeof d->what, "%s (%zu bytes skipped)", it.problem, it.len);
        if (d->has_end && d->has_offset && d->end <= d->offset)
            d->has_end = false;
    }
walked:
    bus_armed = 0;
    topic__zbuf_free(&z);
    if (!bussed) {
        size_t walked = w.pos < m.size ? w.pos : m.size;
        if (m.data_end != SIZE_MAX && walked > m.data_end)
            walked = m.data_end;
        size_t before = c.npend;
        check_index(&c, s, ".index", limit, walked, past_end_live, ix, nix);
        index_bad = c.npend > before;
        check_index(&c, s, ".timeindex", limit, walked, past_end_live, tix, ntix);
    }
    if (v->lib != NULL && c.npend > 0 && !bussed) {
        uint64_t lo = s->base > v->lib_start ? s->base : v->lib_start;
        uint64_t *at = malloc((nix ? nix : 1) * sizeof *at);
        if (at == NULL) {
            fputs("topic: verify: out of memory\n", stderr);
            exit(TOOL_FAIL);
        }
        for (size_t i = 0; i < nix; i++)
            at[i] = s->base + ix[i].rel;
        probe_segment(v, &c, s->name, lo, limit > lo ? limit : lo, at, nix, index_bad);
        free(at);
    }
    free(ix);
    free(tix);
    for (size_t i = 0; i < c.npend; i++) {
        struct damage *d = add_damage(v, c.pend[i].file, 0, 0);
        *d = c.pend[i];
        if (show_damage(v, d))
            damaged++;
    }
    if (w.expect_known) {
        *end_known = true;
        *end = w.expect;
    }
    v->batches += batches;
    v->records += records;
    if (!v->json && !v->quiet) {
        clear_progress(v);
        FILE *f = v->out;
        fprintf(f, "%s: %" PRIu64 " batch%s, %" PRIu64 " record%s", s->name, batches,
                batches == 1 ? "" : "es", records, records == 1 ? "" : "s");
        if (open_records > 0)
            fprintf(f, " (%" PRIu64 " in an open batch, not sealed yet)", open_records);
        if (*end_known && *end > s->base)
            fprintf(f, ", offsets %" PRIu64 "-%" PRIu64, s->base, *end - 1);
        fprintf(f, ", %zu bytes", m.size - tail);
        if (tail > 0)
            fprintf(f, " and %zu zero byte%s", tail, tail == 1 ? "" : "s");
        if (damaged > 0)
            fprintf(f, ": %zu problem%s\n", damaged, damaged == 1 ? "" : "s");
        else
            fprintf(f, ": ok\n");
    }
    seg_map_close(&m);
}

/* each_irregular_file()'s callback: a file other than a segment that is
 * not a regular file. */
static void irregular_damage(void *arg, const char *name, const char *kind)
{
    struct verify *v = arg;
    size_t n = strlen(name);
    if (n > 4 && strcmp(name + n - 4, ".log") == 0)
        return;   /* a segment: verify_segment() reports it */
    if (strcmp(name, "topic.conf") == 0)
        return;   /* the library refuses the topic for it: conf_damage() */
    struct damage *d = add_damage(v, name, 0, 0);
    snprintf(d->what, sizeof d->what, "not a regular file but %s", kind);
    show_damage(v, d);
}

static int cmp_range(const void *a, const void *b)
{
    const uint64_t *x = a, *y = b;
    return x[0] < y[0] ? -1 : x[0] > y[0];
}

/* How many offsets the problems make unreadable, each counted once; false
 * when one of them has no known end ("from N on"). */
static bool unreadable_offsets(const struct verify *v, uint64_t *count)
{
    uint64_t (*r)[2] = malloc((v->n ? v->n : 1) * sizeof *r);
    size_t k = 0;
    *count = 0;
    if (r == NULL)
        return false;
    for (size_t i = 0; i < v->n; i++) {
        const struct damage *d = &v->v[i];
        if (!d->has_offset)
            continue;
        if (!d->has_end) {
            free(r);
            return false;
        }
        if (d->end > d->offset) {
            r[k][0] = d->offset;
            r[k][1] = d->end;
            k++;
        }
    }
    qsort(r, k, sizeof *r, cmp_range);
    uint64_t upto = 0;
    for (size_t i = 0; i < k; i++) {
        uint64_t from = r[i][0] > upto ? r[i][0] : upto;
        if (r[i][1] > from)
            *count += r[i][1] - from;
        if (r[i][1] > upto)
            upto = r[i][1];
    }
    free(r);
    return true;
}

static void verify_json(const struct verify *v, const char *dir, const struct seg_file *segs,
                        size_t nsegs, bool opened, uint64_t start, uint64_t end)
{
    FILE *f = v->out;
    fputc('{', f);
    put_json_bytes(f, "dir", (const uint8_t *)dir, strlen(dir));
    fprintf(f, ",\"ok\":%s", v->n == 0 && v->unreadable == 0 ? "true" : "false");
    if (opened)
        fprintf(f, ",\"start_offset\":%" PRIu64 ",\"end_offset\":%" PRIu64, start, end);
    fprintf(f, ",\"segments\":%zu,\"batches\":%" PRIu64 ",\"records\":%" PRIu64, nsegs,
            v->batches, v->records);
    fputs(",\"files\":[", f);
    for (size_t i = 0; i < nsegs; i++)
        fprintf(f, "%s{\"file\":\"%s\",\"base_offset\":%" PRIu64 ",\"bytes\":%" PRIu64 "}",
                i ? "," : "", segs[i].name, segs[i].base, segs[i].size);
    fputs("],\"damage\":[", f);
    for (size_t i = 0; i < v->n; i++) {
        const struct damage *d = &v->v[i];
        fprintf(f, "%s{\"file\":", i ? "," : "");
        put_json_cstr(f, d->file);
        fprintf(f, ",\"position\":%zu,\"length\":%zu,", d->pos, d->len);
        if (d->has_offset)
            fprintf(f, "\"offset\":%" PRIu64 ",", d->offset);
        else
            fputs("\"offset\":null,", f);
        if (d->has_end)
            fprintf(f, "\"end_offset\":%" PRIu64 ",", d->end);
        else
            fputs("\"end_offset\":null,", f);
        fputs("\"problem\":", f);
        put_json_cstr(f, d->what);
        fputc('}', f);
    }
    fputs("],\"unreadable\":", f);
    uint64_t count;
    if (unreadable_offsets(v, &count))
        fprintf(f, "%" PRIu64, count);
    else
        fputs("null", f);
    fprintf(f, ",\"unchecked\":%u,\"unconfirmed\":%zu}\n", v->unreadable, unconfirmed(v));
}

/*
 * Whether a writer has the topic open: it holds flock(LOCK_EX) on
 * topic.state for as long as its handle is open (topic-format(5)).  Taking
 * a lock to find out would make a writer opening at that moment fail with
 * TOPIC_ELOCKED, so the kernel's list of locks is read instead.  Where that
 * list cannot be read, the topic counts as at rest: everything is judged.
 */
static bool writer_live(const char *dir)
{
    char path[PATH_MAX];
    struct stat st;
    if (snprintf(path, sizeof path, "%s/topic.state", dir) >= (int)sizeof path ||
        stat(path, &st) != 0)
        return false;
    FILE *f = fopen("/proc/locks", "r");
    if (f == NULL)
        return false;
    char line[256];
    bool found = false;
    while (!found && fgets(line, sizeof line, f) != NULL) {
        char type[16], mode[16];
        unsigned maj, min;
        unsigned long long ino;
        /* "1: FLOCK  ADVISORY  WRITE 1234 fd:01:5678 0 EOF"; a waiter's
         * line has "->" after the number, and does not match. */
        if (sscanf(line, "%*d: %15s %*s %15s %*d %x:%x:%llu", type, mode, &maj, &min, &ino) == 5 &&
            strcmp(type, "FLOCK") == 0 && strcmp(mode, "WRITE") == 0 &&
            maj == major(st.st_dev) && min == minor(st.st_dev) && ino == (unsigned long long)st.st_ino)
            found = true;
    }
    fclose(f);
    return found;
}

/* One pass of verify over dir, its report written to v->out; the exit
 * status, or the failure's, already reported on standard error. */
static int verify_pass(struct verify *v, const char *dir)
{
    struct seg_file *segs = NULL;
    size_t nsegs = 0;
    int rc = seg_list(dir, &segs, &nsegs);
    if (rc < 0)
        return report(rc, "verify: %s", dir);
    /* The library's view, for the start and end offsets, and a check that
     * the files it needs besides the segments (topic.state, topic.conf)
     * can be understood. */
    topic *t = NULL;
    uint64_t start = 0, end = 0;
    int err = topic_open(dir, TOPIC_RDONLY, NULL, &t);
    if (err == -ENOENT && nsegs == 0) {
        free(segs);
        return open_topic(dir, TOPIC_RDONLY, NULL, &t);   /* reports "not a topic" */
    }
    if (err == 0) {
        start = topic_start_offset(t);
        end = topic_end_offset(t);
        v->lib = t;   /* for the probes; closed at the end of the pass */
        v->lib_start = start;
        v->lib_end = end;
        v->live = writer_live(dir);
    } else {
        struct damage *d = add_damage(v, "(topic)", 0, 0);
        snprintf(d->what, sizeof d->what, "the library cannot open the topic: %s",
                 topic_strerror(err));
        if (err == TOPIC_ECORRUPT)
            show_damage(v, d);
        else
            note_unreadable(v, d);
        conf_damage(v, dir);
    }

    /* The other files the library opens (the segments are walked below):
     * a FIFO or the like in place of an index or topic.conf is damage,
     * which the library refuses or must work around. */
    long listed = each_irregular_file(dir, irregular_damage, v);
    if (listed < 0) {
        /* Files it did not see were not checked: not "ok". */
        struct damage *d = add_damage(v, "(topic)", 0, 0);
        snprintf(d->what, sizeof d->what, "listing the directory for files that are not "
                 "regular ones: %s", strerror((int)-listed));
        note_unreadable(v, d);
    }

    catch_sigbus();
    v->progress = isatty(STDERR_FILENO) == 1;
    for (size_t i = 0; i < nsegs; i++)
        v->total_bytes += segs[i].size;
    uint64_t done = 0, last_end = 0;
    bool last_known = false;
    for (size_t i = 0; i < nsegs; i++) {
        bool end_known;
        uint64_t seg_end = 0;
        const struct seg_file *next = i + 1 < nsegs ? &segs[i + 1] : NULL;
        verify_segment(v, dir, &segs[i], next, done, &end_known, &seg_end);
        last_known = end_known;
        last_end = seg_end;
        done += segs[i].size;
        if (next != NULL && end_known && seg_end != next->base) {
            struct damage *d = add_damage(v, next->name, 0, 0);
            d->has_offset = true;
            if (seg_end < next->base) {
                d->offset = seg_end;
                d->end = next->base;
                d->has_end = true;
                snprintf(d->what, sizeof d->what, "offsets missing between segments: %s ends "
                         "at offset %" PRIu64 ", the next begins at %" PRIu64, segs[i].name,
                         seg_end, next->base);
            } else {
                d->offset = next->base;
                d->end = seg_end;
                d->has_end = true;
                snprintf(d->what, sizeof d->what, "segments overlap: %s runs to offset %"
                         PRIu64 ", past the next one's base %" PRIu64, segs[i].name,
                         seg_end, next->base);
            }
            /* The offsets a reader is refused: the first segment's missing
             * ones; none of the overlap, which it reads from the second. */
            reach_from(v, d, i + 2 < nsegs ? segs[i + 2].base : end);
            show_damage(v, d);
        }
    }
    /* Records the library counts (a clean close recorded them) but the
     * last segment no longer holds: cut short or damaged since. */
    if (err == 0 && nsegs > 0 && last_known && last_end < end) {
        struct damage *d = add_damage(v, segs[nsegs - 1].name, segs[nsegs - 1].size, 0);
        d->has_offset = true;
        d->offset = last_end;
        d->end = end;
        d->has_end = true;
        snprintf(d->what, sizeof d->what, "records missing at the end: %s ends at offset %"
                 PRIu64 ", the topic's end offset is %" PRIu64, segs[nsegs - 1].name, last_end,
                 end);
        reach_from(v, d, end);
        show_damage(v, d);
    }
    clear_progress(v);
    if (v->json) {
        verify_json(v, dir, segs, nsegs, err == 0, start, end);
    } else {
        FILE *f = v->out;
        fprintf(f, "%zu segment%s, %" PRIu64 " batch%s, %" PRIu64 " record%s", nsegs,
                nsegs == 1 ? "" : "s", v->batches, v->batches == 1 ? "" : "es", v->records,
                v->records == 1 ? "" : "s");
        if (err == 0)
            fprintf(f, " (library view: start offset %" PRIu64 ", end offset %" PRIu64 ")",
                    start, end);
        if (v->n > 0)
            fprintf(f, ": %zu problem%s found\n", v->n, v->n == 1 ? "" : "s");
        else if (v->unreadable > 0)
            fprintf(f, ": %u part%s could not be checked\n", v->unreadable,
                    v->unreadable == 1 ? "" : "s");
        else
            fprintf(f, ": ok\n");
        size_t left_out = unconfirmed(v);
        if (left_out > 0)
            fprintf(f, "%zu problem%s seen by only one of two passes left out: the "
                    "topic changed while it was read (a writer running?)\n", left_out,
                    left_out == 1 ? "" : "s");
    }
    free(segs);
    topic_close(v->lib);
    v->lib = NULL;
    return v->n > 0 ? TOOL_NOTFOUND : v->unreadable > 0 ? TOOL_FAIL : TOOL_OK;
}

int cmd_verify(int argc, char **argv)
{
    enum { O_JSON = 1, O_QUIET };
    static const struct opt_spec specs[] = {
        { "json", 'j', false, O_JSON },
        { "quiet", 'q', false, O_QUIET },
        { NULL, 0, false, 0 },
    };
    struct opt_parser p;
    opt_init(&p, argc, argv, verify_usage);
    struct verify v;
    memset(&v, 0, sizeof v);
    const char *dir = NULL, *arg;
    int id;
    while ((id = opt_next(&p, specs, &arg)) != OPT_DONE) {
        if (id == OPT_ERROR)
            return TOOL_USAGE;
        if (id == O_JSON)
            v.json = true;
        else if (id == O_QUIET)
            v.quiet = true;
        else if (dir == NULL)
            dir = arg;
        else
            return usage_error("verify", "unexpected argument '%s'", arg);
    }
    if (dir == NULL)
        return usage_error("verify", "missing DIR");
    /*
     * A writer appending, rolling or deleting segments while verify reads
     * them makes a pass see what was never damage: a last batch half
     * written, a segment that ends before the next begins because the
     * writer rolled between the two reads, a file retention removed after
     * the listing.  So a pass that finds anything is run again, and only
     * what both found alike is reported.  On a topic at rest the two agree
     * on everything; on a live one, damage that is really there is found
     * twice, while a moment caught half done does not repeat.  The first
     * pass is kept in memory, so that nothing of it is printed in vain.
     */
    char *first = NULL;
    size_t first_len = 0;
    FILE *mem = open_memstream(&first, &first_len);
    v.out = mem != NULL ? mem : stdout;   /* out of memory: one pass, reported as it goes */
    int rc = verify_pass(&v, dir);
    if (mem != NULL) {
        fclose(mem);
        if (v.n == 0 && v.unreadable == 0) {
            fwrite(first, 1, first_len, stdout);
        } else {
            struct verify again = { .json = v.json, .quiet = v.quiet, .out = stdout,
                                    .confirm = v.v, .nconfirm = v.n };
            rc = verify_pass(&again, dir);
            free(again.v);
        }
        free(first);
    }
    free(v.v);
    return rc;
}

/* ------------------------------------------------------------------------ */
/* topic dump                                                                */

static const char dump_usage[] =
    "usage: topic dump DIR [--segment BASE] [--headers] [--full]\n"
    "\n"
    "Prints the batches of every segment file (or of one) as stored: file\n"
    "position, base offset, record count, length, attributes, timestamps and\n"
    "whether the checksum holds, then each record's offset, timestamp, key and\n"
    "value.  Damaged bytes are shown as such and the dump goes on at the next\n"
    "intact batch; the records of a batch whose checksum fails are decoded as\n"
    "far as they go and marked unverified.  Exits 1 if it met damage, a batch\n"
    "whose checksum holds but whose records do not decode included.\n"
    "\n"
    "  -s, --segment BASE  only the segment with this base offset (or the one\n"
    "                      holding offset BASE)\n"
    "  -H, --headers       batch headers only, no records\n"
    "  -f, --full          print whole keys and values (default: 64 bytes)\n"
    "  -h, --help          show this help\n";

#define DUMP_BYTES 64

static void dump_records(const uint8_t *p, const struct batch_header *h, struct zbuf *z,
                         bool verified, bool full)
{
    const uint8_t *pos, *end;
    if (topic__batch_records(p, h, z, &pos, &end) < 0) {
        printf("    (the lz4 block does not decompress)\n");
        return;
    }
    size_t max = full ? SIZE_MAX : DUMP_BYTES;
    for (uint32_t i = 0; i < h->count; i++) {
        struct record_view r;
        if (topic__record_decode(&pos, end, h->first_ts, &r) < 0) {
            printf("    record %" PRIu32 ": does not decode\n", i);
            return;
        }
        char ts[40];
        format_time(r.ts, ts, sizeof ts);
        printf("    offset %" PRIu64 "%s  timestamp %" PRId64 " (%s)  key ",
               h->base_offset + i, verified ? "" : " (unverified)", r.ts, ts);
        if (r.key == NULL) {
            fputs("(none)", stdout);
        } else {
            printf("[%zu] \"", r.key_len);
            put_escaped(stdout, r.key, r.key_len, max);
            putchar('"');
        }
        printf("  value [%zu] \"", r.value_len);
        put_escaped(stdout, r.value, r.value_len, max);
        fputs("\"\n", stdout);
    }
    if (pos != end)
        printf("    (%zu bytes after the last record)\n", (size_t)(end - pos));
}

static void dump_header(const struct walk_item *it, bool ok)
{
    const struct batch_header *h = &it->h;
    char first[40], max[40];
    format_time(h->first_ts, first, sizeof first);
    format_time(h->max_ts, max, sizeof max);
    unsigned comp = h->attributes & TOPIC__ATTR_COMPRESSION_MASK;
    printf("  batch at position %zu: base offset %" PRIu64 ", count %" PRIu32 ", length %" PRIu32
           ", attributes 0x%04x (%s), first_ts %" PRId64 " (%s), max_ts %" PRId64
           " (%s), checksum %016" PRIx64 " %s\n",
           it->pos, h->base_offset, h->count, h->length, (unsigned)h->attributes,
           comp == TOPIC__COMPRESS_LZ4 ? "lz4" : comp == TOPIC__COMPRESS_NONE ? "none" : "?",
           h->first_ts, first, h->max_ts, max, h->checksum, ok ? "ok" : "BAD");
    if (it->expect_known && h->base_offset != it->expect) {
        /* In a batch whose checksum fails the base offset may be the
         * damage; in an intact one, offsets are missing or repeated. */
        if (ok)
            printf("  DAMAGED: offsets %s: base offset %" PRIu64 " was expected here\n",
                   h->base_offset > it->expect ? "missing" : "overlap", it->expect);
        else
            printf("  (base offset %" PRIu64 " was expected here)\n", it->expect);
    }
}

/* Dumps one segment; next is the segment after it, NULL for the last. */
static void dump_segment(const char *dir, const struct seg_file *s, const struct seg_file *next,
                         bool headers, bool full, int *rc)
{
    struct seg_map m;
    int err = seg_map_open(dir, s, &m);
    printf("%s: base offset %" PRIu64 ", %" PRIu64 " bytes\n", s->name, s->base, s->size);
    if (err == TOPIC_ECORRUPT && m.not_regular != NULL) {
        printf("  DAMAGED: not a regular file but %s\n", m.not_regular);
        *rc = TOOL_NOTFOUND;
        return;
    }
    if (err == -ENOENT) {
        /* Retention or delete-before removed it after the listing: on a
         * live topic that is no damage, and the rest is still worth
         * showing.  The library removes segments oldest first, so the
         * dump still shows one unbroken run of the log. */
        printf("  removed since the directory was listed (by retention or delete-before); "
               "skipped\n");
        return;
    }
    if (err < 0) {
        *rc = report(err, "dump: %s", s->name);
        return;
    }
    struct walker w;
    struct walk_item it;
    struct zbuf z = { NULL, 0 };
    walker_init(&w, &m, s->base);
    while (walker_next(&w, &it) && !ferror(stdout)) {
        switch (it.kind) {
        case ITEM_TAIL:
            /* The last segment's space allocated ahead of the appends; a
             * rolled segment has it only until it is sealed. */
            printf("  %zu zero bytes from position %zu to the end (%s)\n", it.len, it.pos,
                   next == NULL ? "preallocated space" : "preallocated space of a segment not "
                   "yet sealed, or zeroed data");
            break;
        case ITEM_NEWER:
            printf("  batch at position %zu: %zu bytes of a newer format version "
                   "(magic %08" PRIx32 ")\n", it.pos, it.len, topic__load32(m.p + it.pos));
            break;
        case ITEM_BATCH: {
            dump_header(&it, true);
            if (it.expect_known && it.h.base_offset != it.expect)
                *rc = TOOL_NOTFOUND;
            /* The checksum only says the bytes are as written: records that
             * do not decode or fill the batch, or a header whose timestamps
             * are not its records', are damage as verify reports it, with
             * --headers too. */
            const char *why = batch_check(m.p + it.pos, &it.h, &z);
            if (why != NULL) {
                printf("  DAMAGED: the checksum holds but %s\n", why);
                *rc = TOOL_NOTFOUND;
            }
            if (!headers)
                dump_records(m.p + it.pos, &it.h, &z, true, full);
            break;
        }
        case ITEM_OPEN:
            printf("  open batch at position %zu: base offset %" PRIu64 ", %" PRIu32
                   " records, %zu bytes, first_ts %" PRId64 ": a writer's last appends, not "
                   "sealed yet (no checksum)\n", it.pos, it.h.base_offset, it.h.count, it.len,
                   it.h.first_ts);
            if (!headers)
                dump_records(m.p + it.pos, &it.h, &z, false, full);
            break;
        case ITEM_BAD:
            if (it.header_ok) {
                dump_header(&it, false);
                printf("  DAMAGED: %s\n", it.problem);
                if (!headers && it.len == it.h.length)
                    dump_records(m.p + it.pos, &it.h, &z, false, full);
            } else {
                printf("  DAMAGED at position %zu: %s; %zu bytes skipped\n", it.pos,
                       it.problem, it.len);
            }
            *rc = TOOL_NOTFOUND;
            break;
        }
    }
    /* A rolled segment must hold every offset up to the next one's base. */
    if (next != NULL && w.expect_known && w.expect < next->base) {
        printf("  DAMAGED: offsets %" PRIu64 "-%" PRIu64 " missing: the segment ends before "
               "the next one begins\n", w.expect, next->base - 1);
        *rc = TOOL_NOTFOUND;
    }
    topic__zbuf_free(&z);
    seg_map_close(&m);
}

int cmd_dump(int argc, char **argv)
{
    enum { O_SEGMENT = 1, O_HEADERS, O_FULL };
    static const struct opt_spec specs[] = {
        { "segment", 's', true, O_SEGMENT },
        { "headers", 'H', false, O_HEADERS },
        { "full", 'f', false, O_FULL },
        { NULL, 0, false, 0 },
    };
    struct opt_parser p;
    opt_init(&p, argc, argv, dump_usage);
    const char *dir = NULL, *arg;
    bool one = false, by_name = false, headers = false, full = false;
    uint64_t base = 0;
    int id;
    while ((id = opt_next(&p, specs, &arg)) != OPT_DONE) {
        switch (id) {
        case OPT_ERROR:
            return TOOL_USAGE;
        case O_SEGMENT: {
            /* A base offset, or a segment's file name. */
            char digits[32];
            size_t n = strlen(arg);
            if (n == 24 && strcmp(arg + 20, ".log") == 0) {
                memcpy(digits, arg, 20);
                digits[20] = '\0';
                arg = digits;
                by_name = true;
            }
            if (!parse_u64(arg, &base))
                return usage_error("dump", "--segment: '%s' is not a base offset", arg);
            one = true;
            break;
        }
        case O_HEADERS: headers = true; break;
        case O_FULL: full = true; break;
        default:
            if (dir != NULL)
                return usage_error("dump", "unexpected argument '%s'", arg);
            dir = arg;
            break;
        }
    }
    if (dir == NULL)
        return usage_error("dump", "missing DIR");
    struct seg_file *segs = NULL;
    size_t nsegs = 0;
    int rc = seg_list(dir, &segs, &nsegs);
    if (rc < 0)
        return report(rc, "dump: %s", dir);
    if (nsegs == 0) {
        free(segs);
        topic *t;
        rc = open_topic(dir, TOPIC_RDONLY, NULL, &t);   /* reports a non-topic */
        if (rc == 0) {
            topic_close(t);
            printf("no segment files\n");
        }
        return rc;
    }
    size_t from = 0, to = nsegs;
    if (one) {
        size_t k = nsegs;
        for (size_t i = 0; i < nsegs; i++)
            if (by_name ? segs[i].base == base : segs[i].base <= base)
                k = i;
        /* The last segment holds the offsets up to the end offset only. */
        topic *t;
        if (k + 1 == nsegs && !by_name && topic_open(dir, TOPIC_RDONLY, NULL, &t) == 0) {
            if (base >= topic_end_offset(t))
                k = nsegs;
            topic_close(t);
        }
        if (k == nsegs) {
            free(segs);
            if (by_name)
                return complain(TOOL_NOTFOUND, "dump: no segment file %020" PRIu64 ".log",
                                base);
            return complain(TOOL_NOTFOUND, "dump: no segment holds offset %" PRIu64, base);
        }
        from = k;
        to = k + 1;
    }
    catch_sigbus();
    rc = 0;
    for (size_t i = from; i < to && !ferror(stdout); i++)
        dump_segment(dir, &segs[i], i + 1 < nsegs ? &segs[i + 1] : NULL, headers, full, &rc);
    free(segs);
    return rc;
}
