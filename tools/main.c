/*
 * topic(1): look after libtopic topics from the shell.
 *
 *   topic SUBCOMMAND [ARGS]    see `topic --help` and the manual page
 *
 * SPDX-License-Identifier: BSD-2-Clause
 */
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"

struct command {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *summary;
};

/*
 * `topic kafka-forward ...` and `topic kafka-import ...` run the separate
 * topic-kafka program (kafka/), so that this tool, like libtopic, never
 * depends on librdkafka.  It is looked for beside this program, in the
 * source tree's kafka/ next to tools/, then on PATH.
 */
static int run_kafka(const char *sub, int argc, char **argv)
{
    char self[4096], path[4200];
    char **args = calloc((size_t)argc + 2, sizeof *args);
    if (args == NULL)
        return complain(TOOL_FAIL, "out of memory");
    args[0] = (char *)"topic-kafka";
    args[1] = (char *)sub;
    for (int i = 1; i < argc; i++)
        args[i + 1] = argv[i];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n > 0) {
        self[n] = '\0';
        char *slash = strrchr(self, '/');
        if (slash != NULL) {
            *slash = '\0';
            snprintf(path, sizeof path, "%s/topic-kafka", self);
            execv(path, args);
            snprintf(path, sizeof path, "%s/../kafka/topic-kafka", self);
            execv(path, args);
        }
    }
    execvp("topic-kafka", args);
    free(args);
    return complain(TOOL_FAIL, "kafka-%s: topic-kafka not found (build it with `make kafka`, "
                    "which needs librdkafka)", sub);
}

static const struct command commands[] = {
    { "create", cmd_create, "create a new topic" },
    { "append", cmd_append, "append records: one per input line, or a whole file" },
    { "read", cmd_read, "print records, optionally following new ones" },
    { "info", cmd_info, "offsets, segments, settings and consumer groups" },
    { "verify", cmd_verify, "check every batch of every segment file" },
    { "recover", cmd_recover, "open as writer to run crash recovery, report what changed" },
    { "delete-before", cmd_delete_before, "delete the records below an offset" },
    { "config", cmd_config, "show or change the settings" },
    { "dump", cmd_dump, "print the batches and records of segment files" },
    { NULL, NULL, NULL },
};

static void usage(FILE *f)
{
    fputs("usage: topic COMMAND DIR [OPTIONS]\n"
          "       topic COMMAND --help\n"
          "       topic --version\n"
          "\n"
          "Commands:\n", f);
    for (const struct command *c = commands; c->name; c++)
        fprintf(f, "  %-14s %s\n", c->name, c->summary);
    fputs("  kafka-forward  send a topic to a Kafka cluster (runs topic-kafka forward)\n"
          "  kafka-import   bring a Kafka topic into a topic (runs topic-kafka import)\n"
          "\n"
          "Exit status: 0 success; 1 damage found, or the record or offset asked for\n"
          "does not exist; 2 usage error; 3 any other failure.\n"
          "See topic(1).\n", f);
}

int main(int argc, char **argv)
{
    /* A reader that goes away shows up as EPIPE on the next write. */
    signal(SIGPIPE, SIG_IGN);
    if (argc < 2) {
        usage(stderr);
        return TOOL_USAGE;
    }
    const char *name = argv[1];
    if (strcmp(name, "--help") == 0 || strcmp(name, "-h") == 0 || strcmp(name, "help") == 0) {
        if (argc > 2 && strcmp(name, "help") == 0) {
            /* "topic help read" is "topic read --help". */
            char *v[] = { argv[2], (char *)"--help", NULL };
            for (const struct command *c = commands; c->name; c++)
                if (strcmp(c->name, argv[2]) == 0)
                    return c->run(2, v);
            return usage_error(NULL, "unknown command '%s'", argv[2]);
        }
        usage(stdout);
        return fflush(stdout) == 0 ? TOOL_OK : TOOL_FAIL;
    }
    if (strcmp(name, "--version") == 0 || strcmp(name, "-V") == 0 ||
        strcmp(name, "version") == 0) {
        printf("topic (libtopic) %s\n", topic_version());
        return fflush(stdout) == 0 ? TOOL_OK : TOOL_FAIL;
    }
    for (const struct command *c = commands; c->name; c++)
        if (strcmp(c->name, name) == 0) {
            int rc = c->run(argc - 1, argv + 1);
            if ((fflush(stdout) != 0 || ferror(stdout)) && !stdout_broken() && errno != EPIPE &&
                rc == TOOL_OK)
                rc = complain(TOOL_FAIL, "writing to standard output: %s", strerror(errno));
            return rc;
        }
    if (strncmp(name, "kafka-", 6) == 0)
        return run_kafka(name + 6, argc - 1, argv + 1);
    if (name[0] == '-')
        return usage_error(NULL, "unknown option '%s'", name);
    return usage_error(NULL, "unknown command '%s'", name);
}
