/* Settings: parsing, defaults and persistence (config.c). */
#ifndef TOPIC_CONFIG_H
#define TOPIC_CONFIG_H

#include <stdint.h>

enum topic_key {
    TOPIC_K_SEGMENT_BYTES,
    TOPIC_K_SEGMENT_MS,
    TOPIC_K_RETENTION_BYTES,
    TOPIC_K_RETENTION_MS,
    TOPIC_K_FLUSH_MESSAGES,
    TOPIC_K_FLUSH_MS,
    TOPIC_K_COMPRESSION,
    TOPIC_K_INDEX_INTERVAL,
    TOPIC_K_MAX_MESSAGE,
    TOPIC_K_COUNT
};

/* The settings in force: every key has a value, `set` marks the explicit ones. */
struct topic_settings {
    int64_t v[TOPIC_K_COUNT];
    uint32_t set;
};

struct topic_config {
    struct topic_settings s;
    char error[256];
};

void topic__settings_default(struct topic_settings *s);
/* Copies the explicitly set values of `from` over `to`. */
void topic__settings_merge(struct topic_settings *to, const struct topic_settings *from);
/* Loads topic.conf into s; a missing file leaves s alone. */
int  topic__settings_load(struct topic_settings *s, int dirfd);
/* Writes the explicit settings of s to topic.conf, atomically and durably. */
int  topic__settings_store(const struct topic_settings *s, int dirfd);

#endif /* TOPIC_CONFIG_H */
