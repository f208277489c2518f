/*
 * cmocka assertions that name libtopic return codes.  Include after
 * <cmocka.h> and "topic.h".
 *
 * SPDX-License-Identifier: BSD-2-Clause
 */
#ifndef TOPIC_ASSERTS_H
#define TOPIC_ASSERTS_H

#include <stdint.h>

/* Asserts that the int expression `expr` equals `expected`, printing both
 * codes with their topic_strerror() messages when it does not. */
#define assert_rc(expr, expected)                                              \
    do {                                                                       \
        int rc_ = (expr);                                                      \
        int ex_ = (expected);                                                  \
        if (rc_ != ex_)                                                        \
            fail_msg("%s:%d: %s returned %d (%s), expected %d (%s)",           \
                     __FILE__, __LINE__, #expr, rc_, topic_strerror(rc_), ex_, \
                     topic_strerror(ex_));                                     \
    } while (0)

#define assert_ok(expr) assert_rc((expr), 0)

/* Asserts that two uint64_t values are equal, printing both. */
#define assert_u64(actual, expected)                                           \
    do {                                                                       \
        uint64_t a_ = (uint64_t)(actual);                                      \
        uint64_t e_ = (uint64_t)(expected);                                    \
        if (a_ != e_)                                                          \
            fail_msg("%s:%d: %s is %llu, expected %llu", __FILE__, __LINE__,   \
                     #actual, (unsigned long long)a_, (unsigned long long)e_); \
    } while (0)

#endif /* TOPIC_ASSERTS_H */
