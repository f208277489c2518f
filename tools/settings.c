/*
 * The settings in force in a topic: the defaults, with the name=value lines
 * of its topic.conf applied through topic_config_set().  The library has no
 * call that hands a topic's settings back, and topic.conf is the documented,
 * hand-editable place they persist in.
 *
 * SPDX-License-Identifier: BSD-2-Clause
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"

const char *const setting_names[SETTING_COUNT] = {
    "segment.bytes",
    "segment.ms",
    "index.interval.bytes",
    "max.message.bytes",
    "flush.messages",
    "flush.ms",
    "retention.bytes",
    "retention.ms",
    "compression.type",
};

static int setting_index(const char *name)
{
    for (int i = 0; i < SETTING_COUNT; i++)
        if (strcmp(setting_names[i], name) == 0)
            return i;
    return -1;
}

/* Why the last settings_load() refused topic.conf. */
static char last_error[256];

/* The largest topic.conf the library reads (topic-format(5)); a larger one
 * is damage, however good its lines. */
#define CONF_MAX 65536u

/* Reads DIR/topic.conf whole; -ENOENT when it is missing, TOPIC_ECORRUPT
 * with last_error set when it is not a regular file, is larger than
 * CONF_MAX or holds a NUL byte. */
static int read_conf(const char *dir, char **out)
{
    struct stat st;
    const char *not_regular;
    int fd = topic_file_open(dir, "topic.conf", &st, &not_regular);
    if (fd < 0) {
        if (fd == TOPIC_ECORRUPT && not_regular != NULL)
            snprintf(last_error, sizeof last_error, "not a regular file but %s", not_regular);
        return fd;
    }
    FILE *f = fdopen(fd, "rb");
    if (f == NULL) {
        int e = -errno;
        close(fd);
        return e;
    }
    size_t cap = 4096, len = 0;
    char *buf = malloc(cap);
    int rc = buf ? 0 : -ENOMEM;
    while (rc == 0) {
        if (len > CONF_MAX) {
            snprintf(last_error, sizeof last_error,
                     "larger than 64 KiB, the most a settings file may hold");
            rc = TOPIC_ECORRUPT;
            break;
        }
        if (len + 1 >= cap) {
            char *nb = realloc(buf, cap * 2);
            if (nb == NULL) {
                rc = -ENOMEM;
                break;
            }
            buf = nb;
            cap *= 2;
        }
        size_t got = fread(buf + len, 1, cap - 1 - len, f);
        len += got;
        if (got == 0) {
            if (ferror(f))
                rc = -EIO;
            break;
        }
    }
    fclose(f);
    if (rc < 0) {
        free(buf);
        return rc;
    }
    buf[len] = '\0';
    if (strlen(buf) != len) {
        snprintf(last_error, sizeof last_error, "a NUL byte at byte %zu", strlen(buf));
        free(buf);
        return TOPIC_ECORRUPT;
    }
    *out = buf;
    return 0;
}

const char *settings_error(void)
{
    return last_error;
}

int settings_report(int rc, const char *dir, int bad_line)
{
    if (rc == TOPIC_ECORRUPT && bad_line > 0)
        return complain(exit_code_for(rc), "%s/topic.conf: line %d: %s", dir, bad_line,
                        last_error);
    if (rc == TOPIC_ECORRUPT && last_error[0] != '\0')
        return complain(exit_code_for(rc), "%s/topic.conf: %s", dir, last_error);
    return report(rc, "%s/topic.conf", dir);
}

int settings_load(const char *dir, topic_config **out, unsigned *explicit_set, int *bad_line)
{
    topic_config *c = topic_config_new();
    if (c == NULL)
        return -ENOMEM;
    *explicit_set = 0;
    *bad_line = 0;
    last_error[0] = '\0';
    char *text = NULL;
    int rc = read_conf(dir, &text);
    if (rc == -ENOENT) {
        *out = c;
        return 0;
    }
    if (rc < 0) {
        topic_config_free(c);
        return rc;
    }
    int lineno = 0;
    char *next = NULL;
    for (char *line = text; line != NULL && rc == 0; line = next) {
        lineno++;
        char *nl = strchr(line, '\n');
        next = nl ? nl + 1 : NULL;
        if (nl != NULL)
            *nl = '\0';
        size_t n = strlen(line);
        if (n > 0 && line[n - 1] == '\r')
            line[--n] = '\0';
        if (line[0] == '#' || line[0] == '\0')
            continue;
        char *eq = strchr(line, '=');
        if (eq == NULL) {
            rc = TOPIC_ECORRUPT;
            *bad_line = lineno;
            snprintf(last_error, sizeof last_error, "no '=' in the line");
            break;
        }
        *eq = '\0';
        /* As the library reads the file (topic-format(5)): a name is made
         * of a-z, 0-9, '.' and '_', nothing trimmed; a control byte other
         * than a tab is damage. */
        const char *bad = NULL;
        if (line[0] == '\0' || line[strspn(line, "abcdefghijklmnopqrstuvwxyz0123456789._")])
            bad = "the name before '=' may hold only a-z, 0-9, '.' and '_' (no spaces)";
        for (const char *p = eq + 1; bad == NULL && *p; p++)
            if ((unsigned char)*p < 0x20 && *p != '\t')
                bad = "a control character in the value";
        if (bad != NULL) {
            rc = TOPIC_ECORRUPT;
            *bad_line = lineno;
            snprintf(last_error, sizeof last_error, "%s", bad);
            break;
        }
        int i = setting_index(line);
        if (i < 0)
            continue;   /* a newer release's setting, as the library skips it */
        if (topic_config_set(c, line, eq + 1) < 0) {
            rc = TOPIC_ECORRUPT;
            *bad_line = lineno;
            snprintf(last_error, sizeof last_error, "%s", topic_config_error(c));
            break;
        }
        *explicit_set |= 1u << i;
    }
    free(text);
    if (rc < 0) {
        topic_config_free(c);
        return rc;
    }
    *out = c;
    return 0;
}

bool setting_is_number(const char *value)
{
    const char *p = value + (*value == '-');
    if (*p == '\0')
        return false;
    for (; *p; p++)
        if (*p < '0' || *p > '9')
            return false;
    return true;
}
