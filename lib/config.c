/*
 * Kafka-style settings.  Each setting has a kind that says how its value is
 * parsed, a default and a range; a refused value leaves a message saying what
 * was expected.  A topic's explicit settings persist in "topic.conf" as
 * name=value lines, the format a person would write by hand.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

enum kind { SIZE, MILLIS, COUNT, ENUM };

struct key {
    const char *name;
    enum kind kind;
    int64_t def, min, max;
    const char *const *choices;   /* ENUM only, NULL-terminated */
};

static const char *const compression_choices[] = { "none", "lz4", NULL };

#define KiB (INT64_C(1) << 10)
#define MiB (INT64_C(1) << 20)
#define GiB (INT64_C(1) << 30)

static const struct key keys[TOPIC_K_COUNT] = {
    [TOPIC_K_SEGMENT_BYTES]   = { "segment.bytes", SIZE, GiB, 4 * KiB, GiB, NULL },
    [TOPIC_K_SEGMENT_MS]      = { "segment.ms", MILLIS, INT64_C(604800000), 0, INT64_MAX, NULL },
    [TOPIC_K_RETENTION_BYTES] = { "retention.bytes", SIZE, -1, -1, INT64_MAX, NULL },
    [TOPIC_K_RETENTION_MS]    = { "retention.ms", MILLIS, -1, -1, INT64_MAX, NULL },
    [TOPIC_K_FLUSH_MESSAGES]  = { "flush.messages", COUNT, 0, 0, INT64_MAX, NULL },
    [TOPIC_K_FLUSH_MS]        = { "flush.ms", MILLIS, 1000, 0, INT64_MAX, NULL },
    [TOPIC_K_COMPRESSION]     = { "compression.type", ENUM, 0, 0, 1, compression_choices },
    [TOPIC_K_INDEX_INTERVAL]  = { "index.interval.bytes", SIZE, 1 * KiB, 1, 16 * MiB, NULL },
    [TOPIC_K_MAX_MESSAGE]     = { "max.message.bytes", SIZE, MiB, 1, 256 * MiB, NULL },
};

void topic__settings_default(struct topic_settings *s)
{
    for (int i = 0; i < TOPIC_K_COUNT; i++)
        s->v[i] = keys[i].def;
    s->set = 0;
}

void topic__settings_merge(struct topic_settings *to, const struct topic_settings *from)
{
    for (int i = 0; i < TOPIC_K_COUNT; i++)
        if (from->set & (1u << i)) {
            to->v[i] = from->v[i];
            to->set |= 1u << i;
        }
}

static int find_key(const char *name)
{
    for (int i = 0; i < TOPIC_K_COUNT; i++)
        if (strcmp(keys[i].name, name) == 0)
            return i;
    return -1;
}

/* Parses a whole-string integer with an optional K/M/G suffix for sizes.
 * Returns false with a reason on any trailing junk or overflow. */
static bool parse_number(const struct key *k, const char *value, int64_t *out, const char **why)
{
    char *end;
    const char *expected = k->kind == SIZE ? "expected bytes, optionally with a K, M or G suffix"
                                           : "expected a whole number";
    errno = 0;
    /* A digit, or a minus sign and a digit, first: strtoll() would also
     * skip white space of any kind and take a plus sign. */
    const char *digit = *value == '-' ? value + 1 : value;
    if (*digit < '0' || *digit > '9') {
        *why = expected;
        return false;
    }
    long long v = strtoll(value, &end, 10);
    if (end == value || errno == ERANGE) {
        *why = errno == ERANGE ? "the number is too large" : expected;
        return false;
    }
    int64_t mult = 1;
    if (k->kind == SIZE && *end != '\0') {
        switch (*end) {
        case 'k': case 'K': mult = KiB; break;
        case 'm': case 'M': mult = MiB; break;
        case 'g': case 'G': mult = GiB; break;
        default: break;
        }
        if (mult != 1)
            end++;
    }
    if (*end != '\0') {
        *why = expected;
        return false;
    }
    if (v != 0 && (v > INT64_MAX / mult || v < INT64_MIN / mult)) {
        *why = "the number is too large";
        return false;
    }
    *out = (int64_t)v * mult;
    return true;
}

/*
 * A name or value as an error message shows it: control bytes and bytes
 * outside ASCII as \xNN, at most 48 bytes of it.  A value read from a
 * damaged or hostile topic.conf may hold a terminal's escape sequences
 * (C1's U+009B among them), and messages end up on terminals.
 */
#define SHOWN_CAP 200
static const char *shown(const char *s, char buf[SHOWN_CAP])
{
    size_t o = 0, i = 0;
    for (; s[i] != '\0' && i < 48; i++) {
        unsigned char b = (unsigned char)s[i];
        if (b >= 0x20 && b < 0x7f && b != '\\')
            buf[o++] = (char)b;
        else
            o += (size_t)snprintf(buf + o, SHOWN_CAP - o, "\\x%02x", b);
    }
    if (s[i] != '\0')
        o += (size_t)snprintf(buf + o, SHOWN_CAP - o, "...");
    buf[o] = '\0';
    return buf;
}

static int parse_value(const struct key *k, const char *value, int64_t *out, char *err, size_t cap)
{
    const char *why = NULL;
    char b[SHOWN_CAP];
    if (k->kind == ENUM) {
        for (int i = 0; k->choices[i]; i++)
            if (strcmp(k->choices[i], value) == 0) {
                *out = i;
                return 0;
            }
        snprintf(err, cap, "%s: \"%s\" is not one of: none, lz4", k->name, shown(value, b));
        return -EINVAL;
    }
    if (!parse_number(k, value, out, &why)) {
        snprintf(err, cap, "%s: \"%s\": %s", k->name, shown(value, b), why);
        return -EINVAL;
    }
    if (*out < k->min || *out > k->max) {
        if (k->max == INT64_MAX)
            snprintf(err, cap, "%s: %s is out of range (at least %" PRId64 ")", k->name,
                     shown(value, b), k->min);
        else
            snprintf(err, cap, "%s: %s is out of range (%" PRId64 " to %" PRId64 ")", k->name,
                     shown(value, b), k->min, k->max);
        return -EINVAL;
    }
    return 0;
}

static int settings_set(struct topic_settings *s, const char *name, const char *value,
                        char *err, size_t cap)
{
    int i = find_key(name);
    if (i < 0) {
        char b[SHOWN_CAP];
        snprintf(err, cap, "unknown setting \"%s\"", shown(name, b));
        return -EINVAL;
    }
    int64_t v;
    TRY(parse_value(&keys[i], value, &v, err, cap));
    s->v[i] = v;
    s->set |= 1u << i;
    return 0;
}

TOPIC_API topic_config *topic_config_new(void)
{
    topic_config *c = topic__calloc(1, sizeof *c);
    if (c != NULL)
        topic__settings_default(&c->s);
    return c;
}

TOPIC_API int topic_config_set(topic_config *c, const char *name, const char *value)
{
    if (c == NULL)
        return -EINVAL;
    if (name == NULL || value == NULL) {
        snprintf(c->error, sizeof c->error, "setting name and value must not be NULL");
        return -EINVAL;
    }
    c->error[0] = '\0';
    return settings_set(&c->s, name, value, c->error, sizeof c->error);
}

static void format_value(int i, int64_t v, char *buf, size_t cap)
{
    if (keys[i].kind == ENUM)
        snprintf(buf, cap, "%s", keys[i].choices[v]);
    else
        snprintf(buf, cap, "%" PRId64, v);
}

TOPIC_API int topic_config_get(const topic_config *c, const char *name, char *buf, size_t cap)
{
    int i;
    if (c == NULL || name == NULL || (buf == NULL && cap > 0) || (i = find_key(name)) < 0)
        return -EINVAL;
    char tmp[32];
    format_value(i, c->s.v[i], tmp, sizeof tmp);
    if (strlen(tmp) + 1 > cap)
        return TOPIC_ETOOSMALL;
    memcpy(buf, tmp, strlen(tmp) + 1);
    return 0;
}

TOPIC_API const char *topic_config_error(const topic_config *c)
{
    return c != NULL ? c->error : "";
}

TOPIC_API void topic_config_free(topic_config *c)
{
    topic__free(c);
}

/* A setting's name as this or a later release may write it. */
static bool plausible_name(const char *name)
{
    if (*name == '\0')
        return false;
    for (const char *p = name; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '.' || *p == '_'))
            return false;
    return true;
}

int topic__settings_load(struct topic_settings *s, int dirfd)
{
    char *text;
    size_t len;
    int rc = topic__read_file(dirfd, "topic.conf", &text, &len, 64 * 1024);
    if (rc == -ENOENT)
        return 0;
    if (rc == -EFBIG)
        return TOPIC_ECORRUPT;   /* the library writes well under 2 KiB */
    if (rc < 0)
        return rc;
    /* A text file of name=value lines, or damage. */
    for (size_t i = 0; i < len && rc == 0; i++) {
        unsigned char c = (unsigned char)text[i];
        if (c < 0x20 && c != '\n' && c != '\r' && c != '\t')
            rc = TOPIC_ECORRUPT;
    }
    char err[256];
    char *save = NULL;
    for (char *line = strtok_r(text, "\n", &save); line && rc == 0;
         line = strtok_r(NULL, "\n", &save)) {
        size_t n = strlen(line);
        if (n > 0 && line[n - 1] == '\r')
            line[--n] = '\0';
        if (line[0] == '#' || line[0] == '\0')
            continue;
        char *eq = strchr(line, '=');
        if (eq == NULL) {
            rc = TOPIC_ECORRUPT;
            break;
        }
        *eq = '\0';
        if (!plausible_name(line))
            rc = TOPIC_ECORRUPT;
        /* A setting a newer release added is skipped, so that an older
         * release can still read the topic; a bad value of a known one is
         * damage. */
        else if (find_key(line) >= 0 && settings_set(s, line, eq + 1, err, sizeof err) < 0)
            rc = TOPIC_ECORRUPT;
    }
    topic__free(text);
    return rc;
}

int topic__settings_store(const struct topic_settings *s, int dirfd)
{
    char buf[2048];
    size_t n = (size_t)snprintf(buf, sizeof buf, "# libtopic settings; written by libtopic %s\n",
                                topic_version());
    for (int i = 0; i < TOPIC_K_COUNT; i++) {
        if (!(s->set & (1u << i)))
            continue;
        char v[32];
        format_value(i, s->v[i], v, sizeof v);
        n += (size_t)snprintf(buf + n, sizeof buf - n, "%s=%s\n", keys[i].name, v);
    }
    return topic__write_file_atomic(dirfd, "topic.conf", buf, n);
}
