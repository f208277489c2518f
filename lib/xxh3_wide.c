/*
 * XXH3-64 of long inputs with the widest vector unit this build may use.
 *
 * XXH3 of more than 240 bytes runs on vector registers, and its result is
 * the same whichever unit computes it (the algorithm is frozen; xxhash
 * checks all its implementations against one another).  The build compiles
 * this file alone with -mavx2 on x86-64, so that it holds an AVX2 copy of
 * XXH3, about 2.5 times as fast as the SSE2 copy every x86-64 CPU can run
 * (1 KiB: 30 against 15 GB/s here); format.c calls it only when the CPU
 * says it has AVX2.  Built without -mavx2 (other architectures, or a
 * compiler that lacks it), the file provides the portable copy and says
 * it is not wider.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define XXH_INLINE_ALL
#include <xxhash.h>

#include "format.h"

uint64_t topic__xxh3_wide(const void *p, size_t n, uint64_t seed)
{
    return XXH3_64bits_withSeed(p, n, seed);
}

bool topic__xxh3_wide_usable(void)
{
#if defined(__AVX2__) && (defined(__x86_64__) || defined(__i386__))
    return __builtin_cpu_supports("avx2");
#else
    return false;
#endif
}
