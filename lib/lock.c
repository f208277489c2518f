/*
 * The writer's append lock (struct topic_lock, internal.h), and the
 * flusher's sleep under it.
 *
 * Every topic_append() takes the lock and lets it go.  With a
 * pthread_mutex_t (glibc 2.36) that pair cost 57 instructions, two of
 * them locked read-modify-writes; here it is one locked exchange and a
 * plain store.  topic_append() went from 599 to 551 instructions
 * (callgrind), and the appending thread's user time per 100-byte append
 * from a median of 43.8 to 40.3 ns (15 alternating runs of 5 M appends
 * each, 2026-11-30).
 *
 * The price of a plain store is the usual one: x86, like the C memory model,
 * lets the releasing thread's load of `sleepers` go before its store of
 * `held` is seen.  A thread that registered as a sleeper in that window,
 * and then found `held` still set, sleeps while nobody wakes it.  So a
 * sleeper never sleeps longer than NAP_NS at a time: a wake-up lost that
 * way costs it at most that much, and only when no other thread takes and
 * releases the lock meanwhile (whose release wakes it).  The window is the
 * time a store takes to leave the store buffer, and the sleeper must also
 * have made its own system call into the kernel within it, so this is
 * rare: in three runs of test_append_lock_excludes (test_threads.c), whose
 * four threads slept 454-489 times each run, no sleep ended by the clock.
 *
 * Contended takers first spin for SPINS rounds: the lock is mostly held for
 * the tens of nanoseconds of an append, and a sleep and a wake-up cost
 * microseconds.  Holders that keep it longer (a roll makes files, a close
 * seals) leave the others asleep.
 */
#include <errno.h>
#include <linux/futex.h>
#include <time.h>

#include "internal.h"

#define SPINS   64
#define NAP_NS  1000000L   /* 1 ms */

#if defined(__x86_64__) || defined(__i386__)
#define cpu_relax() __builtin_ia32_pause()
#elif defined(__aarch64__)
#define cpu_relax() __asm__ __volatile__("yield" ::: "memory")
#else
#define cpu_relax() ((void)0)
#endif

void topic__lock_slow(struct topic_lock *l)
{
    for (int i = 0; i < SPINS; i++) {
        cpu_relax();
        if (atomic_load_explicit(&l->held, memory_order_relaxed) == 0 &&
            atomic_exchange_explicit(&l->held, 1, memory_order_acquire) == 0)
            return;
    }
    atomic_fetch_add(&l->sleepers, 1);
    while (atomic_exchange_explicit(&l->held, 1, memory_order_acquire) != 0) {
        const struct timespec nap = { 0, NAP_NS };
        atomic_fetch_add_explicit(&l->naps, 1, memory_order_relaxed);
        if (topic__futex(&l->held, FUTEX_WAIT_PRIVATE, 1, &nap, 0) < 0 && errno == ETIMEDOUT)
            atomic_fetch_add_explicit(&l->naps_timed_out, 1, memory_order_relaxed);
    }
    atomic_fetch_sub_explicit(&l->sleepers, 1, memory_order_relaxed);
}

void topic__lock_wake(struct topic_lock *l)
{
    (void)topic__futex(&l->held, FUTEX_WAKE_PRIVATE, 1, NULL, 0);
}

/*
 * The flusher's sleep, in place of a condition variable.  flush_seq counts
 * the signals (topic__flush_signal); the flusher reads it and says it
 * sleeps while it holds the lock, so a signal sent after it let go of the
 * lock finds the count changed before the kernel puts it to sleep (the
 * futex call compares it), or finds it asleep and wakes it.
 */
void topic__flush_sleep(topic *t, const struct timespec *deadline)
{
    uint32_t seen = atomic_load_explicit(&t->flush_seq, memory_order_relaxed);
    t->flusher_asleep = true;
    topic__unlock(&t->append_lock);
    /* An absolute CLOCK_MONOTONIC deadline, or none.  An early return (a
     * signal, EINTR) only makes the flusher look at its work again. */
    (void)topic__futex(&t->flush_seq, FUTEX_WAIT_BITSET_PRIVATE, seen, deadline,
                FUTEX_BITSET_MATCH_ANY);
    topic__lock(&t->append_lock);
    t->flusher_asleep = false;
}

void topic__flush_signal(topic *t)
{
    atomic_store_explicit(&t->flush_seq, atomic_load_explicit(&t->flush_seq, memory_order_relaxed) + 1,
                          memory_order_relaxed);
    if (t->flusher_asleep) {
        t->flusher_asleep = false;   /* one wake-up per sleep is enough */
        (void)topic__futex(&t->flush_seq, FUTEX_WAKE_PRIVATE, 1, NULL, 0);
    }
}
