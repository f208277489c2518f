/* Shared by the fuzz targets: the libFuzzer entry point, and small helpers. */
#ifndef TOPIC_FUZZ_H
#define TOPIC_FUZZ_H

#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A fresh scratch directory for this process, emptied on every call. */
const char *fuzz_scratch(void);
/* Writes a file of the scratch directory. */
void fuzz_write(const char *dir, const char *name, const void *data, size_t size);

#endif
