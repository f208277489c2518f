/*
 * Helpers of topic(1): option parsing, error messages, numbers and times,
 * and the escaping of record bytes as text, JSON and base64.
 *
 * SPDX-License-Identifier: BSD-2-Clause
 */
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"

/* ------------------------------------------------------------------------ */
/* Options                                                                   */

void opt_init(struct opt_parser *p, int argc, char **argv, const char *usage)
{
    p->argc = argc;
    p->argv = argv;
    p->i = 1;
    p->cmd = argv[0];
    p->usage = usage;
    p->only_positional = false;
}

int usage_error(const char *cmd, const char *fmt, ...)
{
    va_list ap;
    fputs("topic: ", stderr);
    if (cmd != NULL)
        fprintf(stderr, "%s: ", cmd);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    if (cmd != NULL)
        fprintf(stderr, "\nTry 'topic %s --help'.\n", cmd);
    else
        fputs("\nTry 'topic --help'.\n", stderr);
    return TOOL_USAGE;
}

static void print_usage(const char *usage)
{
    fputs(usage, stdout);
    fflush(stdout);
    exit(ferror(stdout) ? TOOL_FAIL : TOOL_OK);
}

int opt_next(struct opt_parser *p, const struct opt_spec *specs, const char **arg)
{
    if (p->i >= p->argc)
        return OPT_DONE;
    char *a = p->argv[p->i++];
    *arg = NULL;
    if (p->only_positional || a[0] != '-' || a[1] == '\0') {
        *arg = a;
        return OPT_POSITIONAL;
    }
    if (strcmp(a, "--") == 0) {
        p->only_positional = true;
        return opt_next(p, specs, arg);
    }
    if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0)
        print_usage(p->usage);
    const struct opt_spec *s = NULL;
    const char *inline_arg = NULL;
    if (a[1] == '-') {
        const char *name = a + 2;
        const char *eq = strchr(name, '=');
        size_t len = eq ? (size_t)(eq - name) : strlen(name);
        for (const struct opt_spec *q = specs; q->name != NULL; q++)
            if (strlen(q->name) == len && strncmp(q->name, name, len) == 0)
                s = q;
        if (s == NULL) {
            usage_error(p->cmd, "unknown option '--%.*s'", (int)len, name);
            return OPT_ERROR;
        }
        if (eq != NULL) {
            if (!s->has_arg) {
                usage_error(p->cmd, "option '--%s' takes no value", s->name);
                return OPT_ERROR;
            }
            inline_arg = eq + 1;
        }
    } else {
        for (const struct opt_spec *q = specs; q->name != NULL; q++)
            if (q->shortname != 0 && q->shortname == a[1])
                s = q;
        if (s == NULL || (a[2] != '\0' && !s->has_arg)) {
            usage_error(p->cmd, "unknown option '%s'", a);
            return OPT_ERROR;
        }
        if (a[2] != '\0')
            inline_arg = a + 2;
    }
    if (s->has_arg) {
        if (inline_arg != NULL) {
            *arg = inline_arg;
        } else if (p->i < p->argc) {
            *arg = p->argv[p->i++];
        } else {
            usage_error(p->cmd, "option '--%s' needs a value", s->name);
            return OPT_ERROR;
        }
    }
    return s->id;
}

/* ------------------------------------------------------------------------ */
/* Errors                                                                    */

int exit_code_for(int err)
{
    switch (err) {
    case 0:
        return TOOL_OK;
    case TOPIC_ECORRUPT:
    case TOPIC_END:
    case TOPIC_EGONE:
        return TOOL_NOTFOUND;
    default:
        return TOOL_FAIL;
    }
}

int report(int err, const char *fmt, ...)
{
    va_list ap;
    fputs("topic: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, ": %s\n", topic_strerror(err));
    return exit_code_for(err);
}

int complain(int code, const char *fmt, ...)
{
    va_list ap;
    fputs("topic: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    return code;
}

int open_topic(const char *dir, int flags, const topic_config *conf, topic **out)
{
    int rc = topic_open(dir, flags, conf, out);
    return rc == 0 ? 0 : report_open_failure(dir, flags, rc);
}

int report_open_failure(const char *dir, int flags, int rc)
{
    if (rc == -ENOENT && !(flags & TOPIC_CREATE))
        return complain(TOOL_FAIL, "%s: %s (not a topic; 'topic create' makes one)", dir,
                        topic_strerror(rc));
    if (rc == TOPIC_ECORRUPT) {
        /* Most often a hand-edited topic.conf: say which line, and why. */
        topic_config *c;
        unsigned set;
        int line;
        int err = settings_load(dir, &c, &set, &line);
        if (err == 0)
            topic_config_free(c);
        else if (err == TOPIC_ECORRUPT && (line > 0 || settings_error()[0] != '\0'))
            return settings_report(err, dir, line);
    }
    int code = report(rc, "%s", dir);
    if (rc != -ENOENT)
        report_irregular_files(NULL, dir);   /* a FIFO or the like may be why */
    return code;
}

int close_topic(topic *t, const char *dir)
{
    int rc = topic_close(t);
    return rc == 0 ? 0 : report(rc, "closing %s", dir);
}

static bool broken_pipe;

bool stdout_broken(void)
{
    return broken_pipe;
}

bool flush_stdout(void)
{
    if (broken_pipe)
        return false;
    if (fflush(stdout) == 0 && !ferror(stdout))
        return true;
    if (errno == EPIPE) {
        broken_pipe = true;
        return false;
    }
    report(-errno, "writing to standard output");
    return false;
}

/* ------------------------------------------------------------------------ */
/* Numbers and times                                                         */

bool parse_u64(const char *s, uint64_t *out)
{
    uint64_t v = 0;
    if (s == NULL || *s == '\0')
        return false;
    for (const char *p = s; *p; p++) {
        if (*p < '0' || *p > '9')
            return false;
        uint64_t d = (uint64_t)(*p - '0');
        if (v > (UINT64_MAX - d) / 10)
            return false;
        v = v * 10 + d;
    }
    *out = v;
    return true;
}

/* Reads exactly `n` digits at *p. */
static bool digits(const char **p, int n, int *out)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        char c = (*p)[i];
        if (c < '0' || c > '9')
            return false;
        v = v * 10 + (c - '0');
    }
    *p += n;
    *out = v;
    return true;
}

/*
 * Local times (no zone given).  The zone's rules are known only through
 * localtime_r(), which maps an instant to the wall time and the UTC offset
 * then in force; a wall time is converted by trying the offsets that the
 * zone uses near it.  Nothing here relies on tm_isdst: clocks also shift
 * when a zone changes its standard offset (Europe/Moscow in 2014 repeated
 * an hour, Pacific/Apia skipped all of 2011-12-30) while tm_isdst, the
 * only hint mktime() takes, stays as it was.
 */

/* A wall time as seconds, counted as if it were UTC: comparable, and
 * t + offset for the instant t that shows it. */
static bool wall_of(time_t t, int64_t *wall, long *off)
{
    struct tm tm;
    if (localtime_r(&t, &tm) == NULL)
        return false;
    *wall = (int64_t)t + tm.tm_gmtoff;
    if (off != NULL)
        *off = tm.tm_gmtoff;
    return true;
}

/* No zone's offset has been more than 26 hours from UTC (the widest are
 * -12 and +14 hours), so the instants that can show a wall time W lie
 * within this many seconds of W read as UTC. */
#define ZONE_REACH (26 * 3600)

/*
 * The earliest instant whose wall time is `wall` (seconds as if UTC).
 * False when there is none: the clocks skip it.  Every offset in force at
 * some half hour within ZONE_REACH of it is tried; no zone keeps an offset
 * for less than that.
 */
static bool local_instant(int64_t wall, time_t *out)
{
    long offs[8];
    int n = 0;
    bool found = false;
    for (int64_t d = -ZONE_REACH; d <= ZONE_REACH; d += 1800) {
        int64_t w;
        long off;
        if (!wall_of((time_t)(wall + d), &w, &off))
            continue;
        int i = 0;
        while (i < n && offs[i] != off)
            i++;
        if (i < n || n == (int)(sizeof offs / sizeof offs[0]))
            continue;
        offs[n++] = off;
        time_t t = (time_t)(wall - off);
        if (wall_of(t, &w, NULL) && w == wall && (!found || t < *out)) {
            *out = t;
            found = true;
        }
    }
    return found;
}

/* The first instant in [lo, hi] whose wall time is at least `wall`, if the
 * wall time at lo is below it and at hi is not: where the clocks cross it. */
static time_t crossing(time_t lo, time_t hi, int64_t wall)
{
    while (hi - lo > 1) {
        time_t mid = lo + (hi - lo) / 2;
        int64_t w;
        if (wall_of(mid, &w, NULL) && w >= wall)
            hi = mid;
        else
            lo = mid;
    }
    return hi;
}

/*
 * A local time as seconds since the epoch.  A wall time that the clocks
 * repeat means its earlier occurrence, so that "the first record at or
 * after TIME" leaves none of the repeated hour out; one that they skip is
 * refused, with the offsets either side of the gap in *gap.  A date alone
 * means the first instant of that local day, which is not midnight when
 * the clocks skip midnight.  24:00 means the end of the day: the first
 * instant at or after the next midnight, which the clocks may skip, or all
 * of the next day.  A 60th second (a leap second, which the zone's clocks
 * do not show) means the second after the 59th.  Both are read so with a
 * zone given, too.
 */
static bool local_time(const struct tm *want, bool date_only, time_t *out, struct time_gap *gap)
{
    struct tm day = { .tm_year = want->tm_year, .tm_mon = want->tm_mon, .tm_mday = want->tm_mday };
    int64_t day_wall = (int64_t)timegm(&day);
    int leap_second = want->tm_sec == 60;
    int64_t wall = day_wall + want->tm_hour * 3600 + want->tm_min * 60 + want->tm_sec - leap_second;
    if (date_only || want->tm_hour == 24) {
        day_wall += want->tm_hour == 24 ? 86400 : 0;
        if (local_instant(day_wall, out))
            return true;
        /* Midnight is skipped: the day starts where the clocks jump into
         * it, unless they jump over all of it; the day before ends there
         * in any case. */
        time_t t = crossing((time_t)(day_wall - ZONE_REACH), (time_t)(day_wall + ZONE_REACH),
                            day_wall);
        int64_t w;
        if (want->tm_hour == 24 || (wall_of(t, &w, NULL) && w < day_wall + 86400)) {
            *out = t;
            return true;
        }
        wall = day_wall;
    } else if (local_instant(wall, out)) {
        *out += leap_second;
        return true;
    }
    time_t t = crossing((time_t)(wall - ZONE_REACH), (time_t)(wall + ZONE_REACH), wall);
    int64_t w;
    gap->skipped = wall_of(t - 1, &w, &gap->before) && wall_of(t, &w, &gap->after);
    return false;
}

/*
 * Whether TZ, when set, names a zone: a file under TZDIR (or
 * /usr/share/zoneinfo), an absolute path, or a POSIX rule such as
 * EST5EDT or <+0530>-5:30, which needs no file.  glibc takes anything else
 * (a typo: Europe/Berln) for UTC without a word, and a local time would be
 * read hours away from the one meant (recheck tester F7).
 */
static bool tz_known(void)
{
    const char *tz = getenv("TZ");
    if (tz == NULL)
        return true;   /* the system's zone */
    if (*tz == ':')
        tz++;
    if (*tz == '\0')
        return true;   /* UTC, by the rules */
    if (*tz == '/')
        return access(tz, R_OK) == 0;
    /* A POSIX rule: a name of three or more letters, or one in <>, then
     * an offset, which starts with a sign or a digit. */
    const char *p = tz;
    if (*p == '<') {
        p = strchr(p, '>');
        p = p == NULL ? tz : p + 1;
    } else {
        while (isalpha((unsigned char)*p))
            p++;
        if (p - tz < 3)
            p = tz;
    }
    if (p != tz && (isdigit((unsigned char)*p) ||
                    ((*p == '+' || *p == '-') && isdigit((unsigned char)p[1]))))
        return true;
    if (strstr(tz, "..") != NULL)
        return false;
    const char *dir = getenv("TZDIR");
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/%s", dir != NULL && *dir ? dir : "/usr/share/zoneinfo", tz);
    return access(path, R_OK) == 0;
}

static bool parse_iso(const char *s, int64_t *ms, struct time_gap *gap)
{
    struct tm tm;
    memset(&tm, 0, sizeof tm);
    int year, mon, day, hour = 0, min = 0, sec = 0, frac_ms = 0;
    const char *p = s;
    if (!digits(&p, 4, &year) || *p++ != '-' || !digits(&p, 2, &mon) || *p++ != '-' ||
        !digits(&p, 2, &day))
        return false;
    bool date_only = true;
    if (*p == 'T' || *p == 't' || *p == ' ') {
        p++;
        date_only = false;
        if (!digits(&p, 2, &hour) || *p++ != ':' || !digits(&p, 2, &min))
            return false;
        if (*p == ':') {
            p++;
            if (!digits(&p, 2, &sec))
                return false;
            if (*p == '.' || *p == ',') {
                /* Timestamps are whole milliseconds: a time between two is
                 * rounded up, so that "at least TIME" holds for the records
                 * that the rounding lets in. */
                p++;
                int scale = 100, n = 0;
                bool below_ms = false;
                while (*p >= '0' && *p <= '9') {
                    if (scale > 0)
                        frac_ms += (*p - '0') * scale;
                    else if (*p != '0')
                        below_ms = true;
                    scale /= 10;
                    p++;
                    n++;
                }
                if (n == 0)
                    return false;
                frac_ms += below_ms;
            }
        }
    }
    static const int mdays[12] = { 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
    bool leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    if (mon < 1 || mon > 12 || day < 1 || day > mdays[mon - 1] ||
        (mon == 2 && day == 29 && !leap) || min > 59 || sec > 60 ||
        hour > 24 || (hour == 24 && (min > 0 || sec > 0 || frac_ms > 0)))
        return false;   /* no date such as 2026-02-30, which mktime() would move */
    tm.tm_year = year - 1900;
    tm.tm_mon = mon - 1;
    tm.tm_mday = day;
    tm.tm_hour = hour;
    tm.tm_min = min;
    tm.tm_sec = sec;
    time_t t = 0;
    if (*p == '\0') {
        if ((gap->unknown_zone = !tz_known()))
            return false;
        tzset();    /* localtime_r() need not read TZ itself */
        if (!local_time(&tm, date_only, &t, gap))
            return false;
    } else {
        int off = 0;
        if (*p == 'Z' || *p == 'z') {
            p++;
        } else if (*p == '+' || *p == '-') {
            int sign = *p++ == '-' ? -1 : 1, oh, om = 0;
            if (!digits(&p, 2, &oh))
                return false;
            if (*p == ':')
                p++;
            if (*p != '\0' && !digits(&p, 2, &om))
                return false;
            if (oh > 23 || om > 59)
                return false;
            off = sign * (oh * 3600 + om * 60);
        } else {
            return false;
        }
        if (*p != '\0')
            return false;
        t = timegm(&tm) - off;
    }
    *ms = (int64_t)t * 1000 + frac_ms;
    return true;
}

bool parse_time(const char *s, int64_t *ms, struct time_gap *gap)
{
    gap->skipped = false;
    gap->unknown_zone = false;
    if (s == NULL || *s == '\0')
        return false;
    const char *p = s + (*s == '-');
    bool all_digits = *p != '\0';
    for (; *p; p++)
        if (*p < '0' || *p > '9')
            all_digits = false;
    if (all_digits) {
        char *end;
        errno = 0;
        long long v = strtoll(s, &end, 10);
        if (errno != 0 || *end != '\0')
            return false;
        *ms = (int64_t)v;
        return true;
    }
    return parse_iso(s, ms, gap);
}

void format_time(int64_t ms, char *buf, size_t cap)
{
    int64_t sec = ms / 1000, rem = ms % 1000;
    if (rem < 0) {
        rem += 1000;
        sec -= 1;
    }
    time_t t = (time_t)sec;
    struct tm tm;
    if (gmtime_r(&t, &tm) == NULL || tm.tm_year + 1900 > 9999 || tm.tm_year + 1900 < 0) {
        snprintf(buf, cap, "(out of range)");
        return;
    }
    snprintf(buf, cap, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1,
             tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (int)rem);
}

/* ------------------------------------------------------------------------ */
/* Bytes as text                                                             */

/* Length of the valid UTF-8 sequence at p (1 to 4), or 0; its code point
 * in *cp. */
static size_t utf8_seq(const uint8_t *p, size_t n, uint32_t *cp)
{
    uint8_t b = p[0];
    if (b < 0x80) {
        *cp = b;
        return 1;
    }
    size_t len;
    uint32_t v, min;
    if (b >= 0xc2 && b <= 0xdf)
        len = 2, v = b & 0x1fu, min = 0x80;
    else if (b >= 0xe0 && b <= 0xef)
        len = 3, v = b & 0x0fu, min = 0x800;
    else if (b >= 0xf0 && b <= 0xf4)
        len = 4, v = b & 0x07u, min = 0x10000;
    else
        return 0;
    if (n < len)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((p[i] & 0xc0) != 0x80)
            return 0;
        v = v << 6 | (p[i] & 0x3fu);
    }
    if (v < min || v > 0x10ffff || (v >= 0xd800 && v <= 0xdfff))
        return 0;
    *cp = v;
    return len;
}

bool utf8_valid(const uint8_t *p, size_t n)
{
    size_t i = 0;
    while (i < n) {
        uint32_t cp;
        if (p[i] < 0x80) {
            i++;
            continue;
        }
        size_t len = utf8_seq(p + i, n - i, &cp);
        if (len == 0)
            return false;
        i += len;
    }
    return true;
}

/* Whether a code point beyond ASCII may be printed as it is: not a C1
 * control (U+0085 ends a line to some programs, U+009B starts a terminal
 * escape), not U+2028 or U+2029 (line ends to JavaScript and Python's
 * splitlines()), not U+FEFF.  Both the text and the JSON output escape
 * the others, so that a record never spans two lines. */
static bool printable_cp(uint32_t cp)
{
    return cp >= 0xa0 && cp != 0x2028 && cp != 0x2029 && cp != 0xfeff;
}

void put_escaped(FILE *f, const uint8_t *p, size_t n, size_t max)
{
    size_t limit = n < max ? n : max;
    size_t i = 0;
    while (i < limit) {
        uint8_t b = p[i];
        if (b >= 0x20 && b < 0x7f && b != '\\') {
            /* Runs of plain ASCII in one call. */
            size_t j = i + 1;
            while (j < limit && p[j] >= 0x20 && p[j] < 0x7f && p[j] != '\\')
                j++;
            fwrite(p + i, 1, j - i, f);
            i = j;
            continue;
        }
        uint32_t cp = 0;
        size_t len = b >= 0x80 ? utf8_seq(p + i, n - i, &cp) : 0;
        if (len > 0 && i + len <= limit && printable_cp(cp)) {
            fwrite(p + i, 1, len, f);
            i += len;
            continue;
        }
        switch (b) {
        case '\\': fputs("\\\\", f); break;
        case '\n': fputs("\\n", f); break;
        case '\t': fputs("\\t", f); break;
        case '\r': fputs("\\r", f); break;
        default:   fprintf(f, "\\x%02x", b); break;
        }
        i++;
    }
    if (limit < n)
        fprintf(f, "...(%zu bytes)", n);
}

/*
 * JSON allows every character but '"', '\\' and C0 controls raw; the code
 * points that printable_cp() refuses are escaped too, as \\uXXXX, so that a
 * record stays on its line of a one-object-a-line stream.  The string is
 * valid UTF-8 (callers send other bytes as base64).
 */
void put_json_string(FILE *f, const uint8_t *p, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    fputc('"', f);
    size_t run = 0;   /* start of the bytes not yet written */
    for (size_t i = 0; i < n; i++) {
        uint8_t b = p[i];
        uint32_t cp;
        size_t len = b >= 0x80 ? utf8_seq(p + i, n - i, &cp) : 0;
        if (len > 0) {
            if (!printable_cp(cp)) {
                fwrite(p + run, 1, i - run, f);
                fprintf(f, "\\u%04x", (unsigned)cp);
                run = i + len;
            }
            i += len - 1;
            continue;
        }
        if (b >= 0x20 && b != '"' && b != '\\' && b != 0x7f)
            continue;
        fwrite(p + run, 1, i - run, f);
        run = i + 1;
        switch (b) {
        case '"':  fputs("\\\"", f); break;
        case '\\': fputs("\\\\", f); break;
        case '\n': fputs("\\n", f); break;
        case '\t': fputs("\\t", f); break;
        case '\r': fputs("\\r", f); break;
        case '\b': fputs("\\b", f); break;
        case '\f': fputs("\\f", f); break;
        default:
            fputs("\\u00", f);
            fputc(hex[b >> 4], f);
            fputc(hex[b & 15], f);
            break;
        }
    }
    fwrite(p + run, 1, n - run, f);
    fputc('"', f);
}

void put_json_cstr(FILE *f, const char *s)
{
    put_json_string(f, (const uint8_t *)s, strlen(s));
}

void put_base64(FILE *f, const uint8_t *p, size_t n)
{
    static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    char out[4];
    size_t i = 0;
    for (; i + 3 <= n; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 | p[i + 2];
        out[0] = tab[v >> 18];
        out[1] = tab[(v >> 12) & 63];
        out[2] = tab[(v >> 6) & 63];
        out[3] = tab[v & 63];
        fwrite(out, 1, 4, f);
    }
    if (i < n) {
        uint32_t v = (uint32_t)p[i] << 16 | (i + 1 < n ? (uint32_t)p[i + 1] << 8 : 0);
        out[0] = tab[v >> 18];
        out[1] = tab[(v >> 12) & 63];
        out[2] = i + 1 < n ? tab[(v >> 6) & 63] : '=';
        out[3] = '=';
        fwrite(out, 1, 4, f);
    }
}

void put_json_bytes(FILE *f, const char *name, const uint8_t *p, size_t n)
{
    if (p == NULL) {
        fprintf(f, "\"%s\":null", name);
    } else if (utf8_valid(p, n)) {
        fprintf(f, "\"%s\":", name);
        put_json_string(f, p, n);
    } else {
        fprintf(f, "\"%s_base64\":\"", name);
        put_base64(f, p, n);
        fputc('"', f);
    }
}
