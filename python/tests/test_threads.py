"""Several Python threads on one Topic: ctypes releases the GIL, so the
library really runs them concurrently."""
import random
import threading

import libtopic

WRITERS = 4
PER_WRITER = 500
TOTAL = WRITERS * PER_WRITER


def run_threads(targets, timeout=20):
    errors = []

    def wrap(fn):
        def run():
            try:
                fn()
            except BaseException as e:   # reported by the test, not lost
                errors.append(e)
        return run

    threads = [threading.Thread(target=wrap(fn)) for fn in targets]
    for th in threads:
        th.start()
    for th in threads:
        th.join(timeout)
    assert not any(th.is_alive() for th in threads), "a thread hung"
    assert errors == [], errors


def test_appending_and_reading_threads(topic):
    offsets = {}
    followed = {}

    def writer(w):
        def run():
            for i in range(PER_WRITER):
                if i % 50 == 0:
                    off = topic.append_batch([(b"w%d" % w, b"%d:%d" % (w, i))])
                else:
                    off = topic.append(b"%d:%d" % (w, i))
                offsets[(w, i)] = off
        return run

    def follower(name):
        def run():
            got = followed[name] = []
            for rec in topic.records(follow=True):
                got.append((rec.offset, rec.value))
                if len(got) == TOTAL:
                    break
        return run

    def random_reader():
        rng = random.Random(1)
        reads = 0
        while reads < 2000:
            end = topic.end_offset
            if end == 0:
                topic.wait(0)
                continue
            off = rng.randrange(end)
            w, i = topic.read(off).split(b":")
            assert w.isdigit() and i.isdigit()
            reads += 1

    run_threads([writer(w) for w in range(WRITERS)] +
                [follower("a"), follower("b"), random_reader])

    # Dense, unique offsets; each writer's records in its own order.
    assert sorted(offsets.values()) == list(range(TOTAL))
    for w in range(WRITERS):
        mine = [offsets[(w, i)] for i in range(PER_WRITER)]
        assert mine == sorted(mine)
    for off, (w, i) in ((v, k) for k, v in offsets.items()):
        assert topic.read(off) == b"%d:%d" % (w, i)
    for name in ("a", "b"):
        got = followed[name]
        assert [o for o, _ in got] == list(range(TOTAL))
        assert all(topic.read(o) == v for o, v in got[::97])


def test_threads_with_their_own_cursors_and_commits(topic):
    for i in range(300):
        topic.append(b"%d" % i)

    def consumer(g):
        def run():
            with topic.cursor() as c:
                n = 0
                for rec in c:
                    assert rec.value == b"%d" % rec.offset
                    n += 1
                    if n % 50 == 0:
                        topic.commit("g%d" % g, rec.offset + 1)
                assert n == 300
        return run

    run_threads([consumer(g) for g in range(4)])
    assert topic.groups() == ["g0", "g1", "g2", "g3"]
    assert all(topic.committed("g%d" % g) == 300 for g in range(4))


def test_one_cursor_shared_by_threads_is_serialised(topic):
    for i in range(2000):
        topic.append(b"%d" % i)
    seen = []
    lock = threading.Lock()
    with topic.cursor() as c:
        def take():
            while True:
                rec = c.next()
                if rec is None:
                    return
                assert rec.value == b"%d" % rec.offset
                with lock:
                    seen.append(rec.offset)

        run_threads([take] * 4)
    assert sorted(seen) == list(range(2000))        # each record exactly once


def test_close_waits_for_calls_in_progress(path):
    t = libtopic.Topic(path, create=True)
    stop = threading.Event()
    counts = []

    def hammer():
        n = 0
        try:
            while not stop.is_set():
                t.append(b"x")
                t.read(0)
                n += 1
        except libtopic.ClosedError:
            pass
        counts.append(n)

    threads = [threading.Thread(target=hammer) for _ in range(3)]
    for th in threads:
        th.start()
    while t.end_offset < 300:
        pass
    t.close()                   # must not free the handle under a running call
    stop.set()
    for th in threads:
        th.join(5)
    assert len(counts) == 3 and sum(counts) > 0
    with libtopic.Topic(path) as t2:
        assert t2.end_offset >= 300
