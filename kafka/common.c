/*
 * Helpers of the Kafka bridge: error messages, properties, group names.
 *
 * SPDX-License-Identifier: BSD-2-Clause
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "internal.h"

int (*topic_kafka__import_hook)(int point);

TOPIC_KAFKA_API const char *topic_kafka_strerror(int err)
{
    switch (err) {
#define TOPIC_KAFKA__ERRSTR(name, code, msg) case (code): return (msg);
        TOPIC_KAFKA_ERRNO_MAP(TOPIC_KAFKA__ERRSTR)
#undef TOPIC_KAFKA__ERRSTR
    default:
        return topic_strerror(err);
    }
}

#define TK_STR2(x) #x
#define TK_STR(x) TK_STR2(x)

TOPIC_KAFKA_API const char *topic_kafka_version(void)
{
    return TK_STR(TOPIC_KAFKA_VERSION_MAJOR) "." TK_STR(TOPIC_KAFKA_VERSION_MINOR) "."
        TK_STR(TOPIC_KAFKA_VERSION_PATCH);
}

TOPIC_KAFKA_API const char *topic_kafka_rdkafka_version(void)
{
    return rd_kafka_version_str();
}

void tk_msg_init(struct tk_msg *m)
{
    pthread_mutex_init(&m->lock, NULL);
    m->text[0] = '\0';
}

void tk_msg_destroy(struct tk_msg *m)
{
    pthread_mutex_destroy(&m->lock);
}

void tk_msg_vset(struct tk_msg *m, const char *fmt, va_list ap)
{
    char tmp[TK_MSG_MAX];
    vsnprintf(tmp, sizeof tmp, fmt, ap);
    pthread_mutex_lock(&m->lock);
    memcpy(m->text, tmp, sizeof tmp);
    pthread_mutex_unlock(&m->lock);
}

void tk_msg_set(struct tk_msg *m, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    tk_msg_vset(m, fmt, ap);
    va_end(ap);
}

const char *tk_msg_copy(struct tk_msg *m, char *buf, size_t cap)
{
    if (buf == NULL || cap == 0)
        return buf;
    pthread_mutex_lock(&m->lock);
    snprintf(buf, cap, "%s", m->text);
    pthread_mutex_unlock(&m->lock);
    return buf;
}

void tk_errbuf(char *errbuf, size_t errlen, const char *fmt, ...)
{
    if (errbuf == NULL || errlen == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(errbuf, errlen, fmt, ap);
    va_end(ap);
}

int tk_prop_split(const char *prop, struct tk_prop *out, char *errbuf, size_t errlen)
{
    const char *eq = prop ? strchr(prop, '=') : NULL;
    if (eq == NULL || eq == prop) {
        tk_errbuf(errbuf, errlen, "property '%s': expected NAME=VALUE", prop ? prop : "(null)");
        return -EINVAL;
    }
    size_t n = (size_t)(eq - prop);
    if (n >= sizeof out->name) {
        tk_errbuf(errbuf, errlen, "property '%.40s...': name too long", prop);
        return -EINVAL;
    }
    memcpy(out->name, prop, n);
    out->name[n] = '\0';
    out->value = eq + 1;
    return 0;
}

int tk_check_brokers(const rd_kafka_conf_t *conf, char *errbuf, size_t errlen)
{
    char v[1024];
    size_t n = sizeof v;
    rd_kafka_conf_res_t res = rd_kafka_conf_get(conf, "bootstrap.servers", v, &n);
    if (n > sizeof v || (res == RD_KAFKA_CONF_OK && v[strspn(v, " \t,")] != '\0'))
        return 0;   /* (a list too long for v names a broker too) */
    tk_errbuf(errbuf, errlen, "no Kafka broker given: the broker list is empty "
              "(give host:port[,host:port...])");
    return -EINVAL;
}

int tk_conf_set(rd_kafka_conf_t *conf, const char *name, const char *value, char *errbuf,
                size_t errlen)
{
    char why[256];
    if (rd_kafka_conf_set(conf, name, value, why, sizeof why) != RD_KAFKA_CONF_OK) {
        tk_errbuf(errbuf, errlen, "property %s=%s: %s", name, value, why);
        return TOPIC_KAFKA_ECONFIG;
    }
    return 0;
}

int tk_parse_i64(const char *name, const char *value, int64_t lo, int64_t hi, int64_t *out,
                 char *errbuf, size_t errlen)
{
    char *end;
    errno = 0;
    long long v = strtoll(value, &end, 10);
    /* Digits only, with a minus sign where negatives are allowed: strtoll
     * also takes leading white space and a plus sign, which no other
     * setting of the library's accepts. */
    bool digits = value[0] >= '0' && value[0] <= '9';
    if (value[0] == '-' && lo < 0)
        digits = value[1] >= '0' && value[1] <= '9';
    if (!digits || errno != 0 || end == value || *end != '\0' || v < lo || v > hi) {
        tk_errbuf(errbuf, errlen, "property %s=%s: expected an integer from %lld to %lld",
                  name, value, (long long)lo, (long long)hi);
        return -EINVAL;
    }
    *out = v;
    return 0;
}

int tk_parse_bool(const char *name, const char *value, bool *out, char *errbuf, size_t errlen)
{
    if (strcasecmp(value, "true") == 0 || strcmp(value, "1") == 0 ||
        strcasecmp(value, "yes") == 0) {
        *out = true;
        return 0;
    }
    if (strcasecmp(value, "false") == 0 || strcmp(value, "0") == 0 ||
        strcasecmp(value, "no") == 0) {
        *out = false;
        return 0;
    }
    tk_errbuf(errbuf, errlen, "property %s=%s: expected true or false", name, value);
    return -EINVAL;
}

/* FNV-1a, 64 bits: only to tell long names apart. */
static uint64_t fnv1a(const char *s)
{
    uint64_t h = 14695981039346656037ull;
    for (; *s; s++) {
        h ^= (unsigned char)*s;
        h *= 1099511628211ull;
    }
    return h;
}

void tk_group_name(char *out, const char *prefix, const char *name, const char *suffix)
{
    size_t lp = strlen(prefix), ln = strlen(name), ls = strlen(suffix);
    size_t room = TK_GROUP_MAX - lp - ls;   /* callers' prefixes and suffixes are short */
    char mid[TK_GROUP_MAX + 1];
    if (ln <= room) {
        memcpy(mid, name, ln + 1);
    } else {
        /* keep the start, then "-" and 16 hex digits of the hash of it all */
        size_t keep = room - 17;
        memcpy(mid, name, keep);
        snprintf(mid + keep, sizeof mid - keep, "-%016llx", (unsigned long long)fnv1a(name));
    }
    for (char *p = mid; *p; p++) {
        char c = *p;
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-'))
            *p = '_';
    }
    snprintf(out, TK_GROUP_MAX + 1, "%s%s%s", prefix, mid, suffix);
}

int64_t tk_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void tk_log(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
    /* The bridge sets enable.gapless.guarantee on purpose; librdkafka warns
     * on every start that the property is experimental. */
    if (strcmp(fac, "CONFWARN") == 0 && strstr(buf, "enable.gapless.guarantee") != NULL)
        return;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    /* The format of librdkafka's own logger. */
    fprintf(stderr, "%%%d|%lld.%03ld|%s|%s| %s\n", level, (long long)ts.tv_sec,
            ts.tv_nsec / 1000000, fac, rd_kafka_name(rk), buf);
}

const char *tk_kerr(rd_kafka_resp_err_t err)
{
    return rd_kafka_err2str(err);
}
