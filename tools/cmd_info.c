/*
 * topic info: offsets, segment files, settings and consumer groups.
 *
 * SPDX-License-Identifier: BSD-2-Clause
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

static const char info_usage[] =
    "usage: topic info DIR [--json]\n"
    "\n"
    "Prints the start and end offsets, the segment files (base offset, the\n"
    "offsets they hold, bytes), the total bytes, the settings in force (those\n"
    "from topic.conf and the defaults) and every consumer group with its\n"
    "committed position and its lag (end offset - committed).\n"
    "\n"
    "The active segment of a topic open for writing is preallocated: its file\n"
    "size is its capacity, not the bytes appended so far.\n"
    "\n"
    "  -j, --json  print one JSON object\n"
    "  -h, --help  show this help\n";

struct group_info {
    const char *name;
    uint64_t committed;
    bool has;
    bool damaged;             /* its file is damaged: the next commit rewrites it */
    int error;                /* its position could not be read (-EACCES, ...) */
};

/* The consumer groups, names pointing into *names. */
static int list_groups(topic *t, char **names, struct group_info **out, size_t *n)
{
    size_t len = 0;
    *names = NULL;
    *out = NULL;
    *n = 0;
    int rc;
    for (;;) {
        rc = topic_groups(t, *names, len, &len);
        if (rc != TOPIC_ETOOSMALL)
            break;
        char *nb = realloc(*names, len);
        if (nb == NULL)
            return -ENOMEM;
        *names = nb;
    }
    if (rc < 0 || len == 0)
        return rc;
    size_t count = 0;
    for (size_t i = 0; i < len; i++)
        count += (*names)[i] == '\0';
    struct group_info *g = calloc(count, sizeof *g);
    if (g == NULL)
        return -ENOMEM;
    const char *p = *names;
    for (size_t i = 0; i < count; i++) {
        g[i].name = p;
        int r = topic_committed(t, p, &g[i].committed);
        if (r == 0)
            g[i].has = true;
        else if (r == TOPIC_ECORRUPT)
            g[i].damaged = true;
        else if (r != -ENOENT)
            g[i].error = r;   /* shown in its place; the rest is still worth seeing */
        p += strlen(p) + 1;
    }
    *out = g;
    *n = count;
    return 0;
}

static uint64_t lag_of(uint64_t end, uint64_t committed)
{
    return committed < end ? end - committed : 0;
}

int cmd_info(int argc, char **argv)
{
    enum { O_JSON = 1 };
    static const struct opt_spec specs[] = {
        { "json", 'j', false, O_JSON },
        { NULL, 0, false, 0 },
    };
    struct opt_parser p;
    opt_init(&p, argc, argv, info_usage);
    const char *dir = NULL, *arg;
    bool json = false;
    int id;
    while ((id = opt_next(&p, specs, &arg)) != OPT_DONE) {
        if (id == OPT_ERROR)
            return TOOL_USAGE;
        if (id == O_JSON)
            json = true;
        else if (dir == NULL)
            dir = arg;
        else
            return usage_error("info", "unexpected argument '%s'", arg);
    }
    if (dir == NULL)
        return usage_error("info", "missing DIR");

    topic *t;
    int rc = open_topic(dir, TOPIC_RDONLY, NULL, &t);
    if (rc != 0)
        return rc;
    uint64_t start = topic_start_offset(t), end = topic_end_offset(t);
    struct seg_file *segs = NULL;
    size_t nsegs = 0;
    char *names = NULL;
    struct group_info *groups = NULL;
    size_t ngroups = 0;
    topic_config *conf = NULL;
    unsigned set = 0;
    int bad_line = 0, err;
    /* Groups that cannot be listed (groups/ unreadable, or not a
     * directory) are reported after everything else is printed. */
    int groups_err = 0;
    if ((err = seg_list(dir, &segs, &nsegs)) < 0)
        rc = report(err, "info: listing %s", dir);
    else if ((groups_err = list_groups(t, &names, &groups, &ngroups)) == -ENOMEM)
        rc = report(groups_err, "info: consumer groups");
    else if ((err = settings_load(dir, &conf, &set, &bad_line)) < 0)
        rc = settings_report(err, dir, bad_line);
    if (rc != 0) {
        free(segs);
        free(names);
        free(groups);
        topic_close(t);
        return rc;
    }

    uint64_t total = 0;
    for (size_t i = 0; i < nsegs; i++)
        total += segs[i].size;
    FILE *f = stdout;
    char value[64];
    if (json) {
        fputc('{', f);
        put_json_bytes(f, "dir", (const uint8_t *)dir, strlen(dir));
        fprintf(f, ",\"start_offset\":%" PRIu64 ",\"end_offset\":%" PRIu64
                ",\"records\":%" PRIu64 ",\"segments\":[", start, end, end - start);
        for (size_t i = 0; i < nsegs; i++) {
            uint64_t seg_end = i + 1 < nsegs ? segs[i + 1].base : end;
            fprintf(f, "%s{\"file\":\"%s\",\"base_offset\":%" PRIu64 ",\"end_offset\":%" PRIu64
                    ",\"bytes\":%" PRIu64 "}", i ? "," : "", segs[i].name, segs[i].base,
                    seg_end, segs[i].size);
        }
        fprintf(f, "],\"total_bytes\":%" PRIu64 ",\"config\":{", total);
        for (int i = 0; i < SETTING_COUNT; i++) {
            if (topic_config_get(conf, setting_names[i], value, sizeof value) < 0)
                continue;
            fprintf(f, "%s\"%s\":", i ? "," : "", setting_names[i]);
            if (setting_is_number(value))
                fputs(value, f);
            else
                put_json_cstr(f, value);
        }
        fputs("},\"config_explicit\":[", f);
        bool first = true;
        for (int i = 0; i < SETTING_COUNT; i++)
            if (set & (1u << i)) {
                fprintf(f, "%s\"%s\"", first ? "" : ",", setting_names[i]);
                first = false;
            }
        fputs("],\"groups\":[", f);
        for (size_t i = 0; i < ngroups; i++) {
            fprintf(f, "%s{\"name\":", i ? "," : "");
            put_json_cstr(f, groups[i].name);
            if (groups[i].has)
                fprintf(f, ",\"committed\":%" PRIu64 ",\"lag\":%" PRIu64 "%s}",
                        groups[i].committed, lag_of(end, groups[i].committed),
                        groups[i].committed > end ? ",\"past_end\":true" : "");
            else if (groups[i].error < 0) {
                fputs(",\"committed\":null,\"lag\":null,\"error\":", f);
                put_json_cstr(f, topic_strerror(groups[i].error));
                fputc('}', f);
            } else
                fprintf(f, ",\"committed\":null,\"lag\":null%s}",
                        groups[i].damaged ? ",\"damaged\":true" : "");
        }
        fputc(']', f);
        if (groups_err < 0) {
            fputs(",\"groups_error\":", f);
            put_json_cstr(f, topic_strerror(groups_err));
        }
        fputs("}\n", f);
    } else {
        fprintf(f, "topic:        %s\n", dir);
        fprintf(f, "start offset: %" PRIu64 "\n", start);
        fprintf(f, "end offset:   %" PRIu64 "\n", end);
        fprintf(f, "records:      %" PRIu64 "\n", end - start);
        fprintf(f, "segments:     %zu\n", nsegs);
        for (size_t i = 0; i < nsegs; i++) {
            uint64_t seg_end = i + 1 < nsegs ? segs[i + 1].base : end;
            if (segs[i].not_regular != NULL)
                fprintf(f, "  %s  base %" PRIu64 "  end %" PRIu64 "  not a regular file but %s\n",
                        segs[i].name, segs[i].base, seg_end, segs[i].not_regular);
            else
                fprintf(f, "  %s  base %" PRIu64 "  end %" PRIu64 "  %" PRIu64 " bytes\n",
                        segs[i].name, segs[i].base, seg_end, segs[i].size);
        }
        fprintf(f, "total bytes:  %" PRIu64 "\n", total);
        fputs("config:\n", f);
        for (int i = 0; i < SETTING_COUNT; i++)
            if (topic_config_get(conf, setting_names[i], value, sizeof value) == 0)
                fprintf(f, "  %s=%s%s\n", setting_names[i], value,
                        (set & (1u << i)) ? "" : "  (default)");
        fprintf(f, "groups:       %zu\n", ngroups);
        for (size_t i = 0; i < ngroups; i++) {
            if (groups[i].has)
                fprintf(f, "  %s  committed %" PRIu64 "  lag %" PRIu64 "%s\n", groups[i].name,
                        groups[i].committed, lag_of(end, groups[i].committed),
                        groups[i].committed > end ? "  (past the end offset)" : "");
            else if (groups[i].damaged)
                fprintf(f, "  %s  (position damaged; the next commit replaces it)\n",
                        groups[i].name);
            else if (groups[i].error < 0)
                fprintf(f, "  %s  (position cannot be read: %s)\n", groups[i].name,
                        topic_strerror(groups[i].error));
            else
                fprintf(f, "  %s  (no committed position)\n", groups[i].name);
        }
    }
    topic_config_free(conf);
    /* A segment file that is not a regular file (a FIFO...) is damage: exit
     * status 1, once everything else has been printed. */
    int damage_rc = seg_report_irregular("info", dir, segs, nsegs) > 0 ? TOOL_NOTFOUND : 0;
    free(segs);
    /* A group that could not be read makes the exit status that error's,
     * likewise. */
    int group_rc = 0;
    if (groups_err < 0)
        group_rc = report(groups_err, "info: consumer groups");
    for (size_t i = 0; i < ngroups && group_rc == 0; i++)
        if (groups[i].error < 0)
            group_rc = report(groups[i].error, "info: consumer group %s", groups[i].name);
    free(groups);
    free(names);
    rc = close_topic(t, dir);
    return rc != 0 ? rc : damage_rc != 0 ? damage_rc : group_rc;
}
