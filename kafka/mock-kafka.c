/*
 * mock-kafka: librdkafka's in-process mock Kafka cluster, kept alive as a
 * process of its own so that topic-kafka and other clients can reach it.
 *
 *   mock-kafka [--brokers N] [--topic NAME[:PARTITIONS[:REPLICAS]]]...
 *
 * Prints the bootstrap servers ("127.0.0.1:port,...") on one line of
 * stdout, then serves until SIGINT or SIGTERM.  The cluster speaks the real
 * Kafka protocol on loopback, keeps everything in memory, and auto-creates
 * topics that are not declared (with 4 partitions).  For tests and demos only.
 *
 * SPDX-License-Identifier: BSD-2-Clause
 */
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
    (void)sig;
    stop = 1;
}

static int usage(void)
{
    fputs("usage: mock-kafka [--brokers N] [--topic NAME[:PARTITIONS[:REPLICAS]]]...\n",
          stderr);
    return 2;
}

int main(int argc, char **argv)
{
    int brokers = 3;
    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], "--brokers") == 0 && i + 1 < argc) {
            brokers = atoi(argv[++i]);
            if (brokers < 1)
                return usage();
        } else if (strcmp(argv[i], "--topic") != 0 || i + 1 >= argc) {
            return usage();
        } else {
            i++;
        }

    char err[512];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_conf_set(conf, "log_level", "3", err, sizeof err);
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err);
    if (rk == NULL) {
        fprintf(stderr, "mock-kafka: %s\n", err);
        return 1;
    }
    rd_kafka_mock_cluster_t *mc = rd_kafka_mock_cluster_new(rk, brokers);
    if (mc == NULL) {
        fprintf(stderr, "mock-kafka: could not start the mock cluster\n");
        return 1;
    }
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--topic") != 0)
            continue;
        char name[256];
        int parts = 4, reps = brokers < 3 ? brokers : 3;
        snprintf(name, sizeof name, "%s", argv[++i]);
        char *c = strchr(name, ':');
        if (c) {
            *c++ = '\0';
            parts = atoi(c);
            if ((c = strchr(c, ':')) != NULL)
                reps = atoi(c + 1);
        }
        if (parts < 1 || reps < 1 || reps > brokers ||
            rd_kafka_mock_topic_create(mc, name, parts, reps) != RD_KAFKA_RESP_ERR_NO_ERROR) {
            fprintf(stderr, "mock-kafka: cannot create topic %s\n", argv[i]);
            return 1;
        }
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    printf("%s\n", rd_kafka_mock_cluster_bootstraps(mc));
    fflush(stdout);
    while (!stop)
        pause();
    rd_kafka_mock_cluster_destroy(mc);
    rd_kafka_destroy(rk);
    return 0;
}
