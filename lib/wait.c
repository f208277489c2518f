/*
 * topic_wait(): sleeping until a record exists, across processes.
 *
 * "topic.wait" is one shared page holding two words: `wake`, a futex that the
 * writer bumps after an append when anybody sleeps, and `waiters`, how many
 * sleep.  A waiter registers, looks at the end offset once more (so that an
 * append between its first look and its sleep is never missed: the writer
 * publishes the end offset before it reads `waiters`, the waiter registers
 * before it reads the end offset, and both orders are sequentially
 * consistent), then sleeps on `wake` with the value it read before looking.
 * An idle writer pays one load per append; a reader pays nothing until it
 * waits.
 *
 * A waiter killed while registered (SIGKILL inside topic_wait) would leave
 * `waiters` above zero for good, and every later append, by every later
 * writer, would make a futex call that wakes nobody.  So `waiters` holds an
 * epoch in its high bits and the count in its low ones.  A waiter leaves
 * only the epoch it registered in.  When a writer's wakes have woken nobody
 * for WAKE_MISSES appends in a row, it starts a new epoch with a count of
 * zero and wakes every sleeper: live waiters look at the end offset again
 * and register in the new epoch, and the dead ones' registrations are gone.
 * A live waiter only ever sleeps WAIT_SLICE_MS at a time, so even one that
 * a wake-up missed looks again soon.
 *
 * The file is kept apart from topic.state so that readers write to nothing
 * the log depends on; one that may not write it (a read-only file system,
 * another user's topic) polls every millisecond instead.
 */
#include <fcntl.h>
#include <limits.h>
#include <linux/futex.h>
#include <sys/mman.h>
#include <time.h>

#include "internal.h"

#define WAKE_MISSES  64

#define WAIT_FILE 4096

int topic__wait_open(topic *t)
{
    int fd = topic__openat(t->dirfd, "topic.wait", O_RDWR | O_CREAT, TOPIC__FILE_MODE);
    int rc = fd < 0 ? fd : 0;
    /* The page must exist before it is touched through the mapping: a
     * fault on a hole allocates it (on tmpfs, even to read), and on a full
     * file system that is SIGBUS.  Allocating extends a short file with
     * zeros and never changes the words that other processes may be using,
     * as writing zeros over them would (os.c writes zeros only past the
     * end, where fallocate() is missing). */
    if (rc == 0)
        rc = topic__fallocate_range(fd, 0, WAIT_FILE);
    void *p = NULL;
    if (rc == 0)
        rc = topic__mmap(WAIT_FILE, PROT_READ | PROT_WRITE, fd, &p);
    topic__close(fd);
    /* Not being able to share the page only costs waiters some latency. */
    t->wait = rc == 0 ? p : NULL;
    return 0;
}

void topic__wait_close(topic *t)
{
    topic__munmap(t->wait, WAIT_FILE);
    t->wait = NULL;
}

/* Bumps `wake` and wakes every sleeper; returns how many woke. */
static long wake_all(struct wait_page *w)
{
    __atomic_fetch_add(&w->wake, 1, __ATOMIC_SEQ_CST);
    return topic__futex(&w->wake, FUTEX_WAKE, INT_MAX, NULL, 0);
}

void topic__wait_wake(topic *t, uint32_t cur)
{
    struct wait_page *w = t->wait;
    if (wake_all(w) != 0) {
        t->wake_misses = 0;
        return;
    }
    /* Nobody was asleep: waiters between registering and sleeping, or
     * registrations of waiters that died (see the top of this file). */
    if (++t->wake_misses < WAKE_MISSES)
        return;
    t->wake_misses = 0;
    uint32_t fresh = (cur & ~WAITERS_MASK) + (1u << WAITERS_BITS);   /* count 0 */
    if (__atomic_compare_exchange_n(&w->waiters, &cur, fresh, false, __ATOMIC_SEQ_CST,
                                    __ATOMIC_RELAXED))
        wake_all(w);
}

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* A record at `offset` exists, or existed and was deleted (a reader's end
 * offset may lag behind the writer's start when it could not follow). */
static bool arrived(topic *t, uint64_t offset)
{
    return offset < topic_end_offset(t) || offset < topic_start_offset(t);
}

/* The longest a waiter sleeps before it looks again.  A wake-up cannot
 * reach it when topic.wait was removed and made anew (another page), or a
 * writer died between publishing and waking: it then costs this, not ever. */
#define WAIT_SLICE_MS 1000

/* Sleeps until woken, or for at most `ms` (-1: no limit). */
static void sleep_once(topic *t, uint64_t offset, int64_t ms)
{
    struct wait_page *w = t->wait;
    if (ms < 0 || ms > WAIT_SLICE_MS)
        ms = WAIT_SLICE_MS;
    struct timespec ts = { (time_t)(ms / 1000), (long)(ms % 1000) * 1000000L };
    if (w == NULL) {
        struct timespec poll = { 0, 1000000L };   /* 1 ms */
        nanosleep(ms < 1 ? &ts : &poll, NULL);
        return;
    }
    uint32_t seen = __atomic_load_n(&w->wake, __ATOMIC_SEQ_CST);
    uint32_t epoch = __atomic_fetch_add(&w->waiters, 1, __ATOMIC_SEQ_CST) & ~WAITERS_MASK;
    if (!arrived(t, offset))
        topic__futex(&w->wake, FUTEX_WAIT, seen, &ts, 0);
    /* Leave the count of the epoch registered in, unless a writer has
     * started a new one since (and counted this waiter out already). */
    uint32_t cur = __atomic_load_n(&w->waiters, __ATOMIC_RELAXED);
    while ((cur & ~WAITERS_MASK) == epoch && (cur & WAITERS_MASK) != 0 &&
           !__atomic_compare_exchange_n(&w->waiters, &cur, cur - 1, true, __ATOMIC_SEQ_CST,
                                        __ATOMIC_RELAXED))
        ;
}

TOPIC_API int topic_wait(topic *t, uint64_t offset, int timeout_ms)
{
    if (t == NULL || timeout_ms < -1)
        return -EINVAL;
    int64_t deadline = timeout_ms >= 0 ? mono_ms() + timeout_ms : INT64_MAX;
    for (;;) {
        if (arrived(t, offset))
            return 0;
        /* A forked child's copy of a writer handle (see topic__forked)
         * learns nothing of the parent's appends: its end offset is the
         * one it had at the fork, and it would sleep for ever. */
        if (!(t->flags & TOPIC_RDONLY) && topic__forked(t))
            return TOPIC_EFAILED;
        /* A reader that cannot take in the writer's new segments would
         * sleep through the records it waits for. */
        int err = atomic_load_explicit(&t->follow_err, memory_order_acquire);
        if (err < 0)
            return err;
        int64_t left = timeout_ms >= 0 ? deadline - mono_ms() : -1;
        if (timeout_ms >= 0 && left <= 0)
            return -ETIMEDOUT;
        sleep_once(t, offset, left);
    }
}
