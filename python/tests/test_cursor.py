"""Cursors, records(), following, zero-copy views, seek_time, wait."""
import decimal
import fractions
import gc
import pickle
import subprocess
import sys
import textwrap
import threading
import time

import pytest

import libtopic
from conftest import run_python


def fill(topic, n, prefix=b"v"):
    for i in range(n):
        topic.append(prefix + b"%d" % i)


def test_cursor_next_seek_offset(topic):
    fill(topic, 10)
    with topic.cursor() as c:
        assert c.offset == 0
        r = c.next()
        assert isinstance(r, libtopic.Record)
        assert (r.offset, r.key, r.value) == (0, None, b"v0")
        assert c.offset == 1
        c.seek(7)
        assert [r.value for r in c] == [b"v7", b"v8", b"v9"]   # iteration ends at the end
        assert c.next() is None                                # and next() says so
        assert c.offset == 10
        topic.append(b"v10")
        assert c.next().value == b"v10"                        # then goes on
        c.seek(0)
        assert c.next().offset == 0
        with pytest.raises(ValueError):
            c.seek(-1)
    assert c.closed
    c.close()                                                  # idempotent
    with pytest.raises(libtopic.ClosedError):
        c.next()
    with pytest.raises(libtopic.ClosedError):
        c.seek(0)
    with pytest.raises(libtopic.ClosedError):
        c.offset


def test_cursor_at_or_past_the_end(topic):
    fill(topic, 2)
    c = topic.cursor(5)               # may be past the end: waits there
    assert c.next() is None
    assert c.wait(timeout=0.05) is False
    fill(topic, 4)
    assert c.wait(timeout=0) is True
    assert c.next().offset == 5
    c.close()


def test_seek_time(topic):
    topic.append_batch([(None, b"a", 1000), (None, b"b", 2000), (None, b"c", 3000)])
    topic.append(b"d", timestamp=2500)            # out of order is fine
    topic.append(b"e", timestamp=4000)
    with topic.cursor() as c:
        c.seek_time(1500)
        assert c.offset == 1
        assert c.next().value == b"b"
        c.seek_time(2600)
        assert c.next().value == b"c"
        c.seek_time(0)
        assert c.offset == 0
        c.seek_time(10 ** 12)                     # after everything: the end offset
        assert c.offset == topic.end_offset
        assert c.next() is None
        with pytest.raises(TypeError):
            c.seek_time("noon")


def test_records_start_and_end(topic):
    fill(topic, 5)
    assert [r.offset for r in topic.records(3)] == [3, 4]
    assert list(topic.records(5)) == []
    assert [r.value for r in topic.records()][:2] == [b"v0", b"v1"]
    topic.delete_before(2)
    assert [r.offset for r in topic.records()] == [2, 3, 4]   # None: the start offset


def test_records_are_copies(topic):
    fill(topic, 3)
    recs = list(topic.records())
    assert all(type(r.value) is bytes for r in recs)
    topic.close()
    assert [r.value for r in recs] == [b"v0", b"v1", b"v2"]   # outlive the topic


def test_follow_in_a_thread(topic):
    got = []
    done = threading.Event()

    def consume():
        for rec in topic.records(follow=True):
            got.append(rec.value)
            if len(got) == 20:
                break
        done.set()

    th = threading.Thread(target=consume)
    th.start()
    for i in range(20):
        topic.append(b"m%d" % i)
        if i % 5 == 0:
            time.sleep(0.01)
    assert done.wait(10)
    th.join(5)
    assert got == [b"m%d" % i for i in range(20)]


def test_close_ends_a_follower_in_another_thread(path):
    t = libtopic.Topic(path, create=True)
    errors = []

    def follow():
        try:
            for _ in t.records(follow=True):
                pass
        except libtopic.ClosedError as e:
            errors.append(e)

    th = threading.Thread(target=follow)
    th.start()
    time.sleep(0.15)
    start = time.monotonic()
    t.close()
    th.join(5)
    assert not th.is_alive()
    assert len(errors) == 1
    assert time.monotonic() - start < 2


def follow_in_a_thread(target):
    """Runs target() in a daemon thread; returns (thread, list it appends
    the outcome to: "ended", or the exception it raised)."""
    outcome = []

    def run():
        try:
            target()
            outcome.append("ended")
        except BaseException as e:
            outcome.append(e)

    th = threading.Thread(target=run, daemon=True)
    th.start()
    return th, outcome


def close_ends_it_soon(close, th):
    """Calls close() and checks that thread th, asleep in a wait, ends
    within a second of it."""
    start = time.monotonic()
    close()
    th.join(2)
    assert not th.is_alive(), "the waiting thread is still waiting"
    assert time.monotonic() - start < 1


def test_closing_a_follow_iterator_from_another_thread_ends_it(topic):
    """Its close() used to close the cursor but leave the follower asleep in
    wait() until a record arrived, however long that took."""
    it = topic.records(follow=True)
    got = []
    th, outcome = follow_in_a_thread(lambda: got.extend(rec.value for rec in it))
    topic.append(b"one")
    deadline = time.monotonic() + 5
    while not got and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.1)                               # asleep in wait() now
    close_ends_it_soon(it.close, th)
    assert outcome == ["ended"]                   # StopIteration: the loop just ends
    assert got == [b"one"]
    with pytest.raises(StopIteration):
        next(it)


def test_closing_a_cursor_ends_a_wait_on_it_in_another_thread(topic):
    c = topic.cursor()
    th, outcome = follow_in_a_thread(c.wait)
    time.sleep(0.15)                              # asleep in wait() now
    close_ends_it_soon(c.close, th)
    assert len(outcome) == 1 and isinstance(outcome[0], libtopic.ClosedError)
    assert "cursor" in str(outcome[0])


def test_a_cursor_resumes_after_stop_iteration_but_records_does_not(topic):
    topic.append(b"a")
    c = topic.cursor()
    it = topic.records()
    assert [r.value for r in c] == [b"a"]
    assert [r.value for r in it] == [b"a"]
    topic.append(b"b")
    assert [r.value for r in c] == [b"b"]         # the cursor goes on
    assert list(it) == []                         # records() stays stopped
    c.close()


def test_wait(topic):
    start = time.monotonic()
    assert topic.wait(0, timeout=0.25) is False
    elapsed = time.monotonic() - start
    assert 0.24 <= elapsed < 2
    assert topic.wait(0, timeout=0) is False

    def later():
        time.sleep(0.1)
        topic.append(b"x")

    th = threading.Thread(target=later)
    th.start()
    start = time.monotonic()
    assert topic.wait(0) is True                     # None: forever, in slices
    assert time.monotonic() - start < 5
    th.join()
    assert topic.wait(0, timeout=0) is True
    assert topic.wait(0, 0.5) is True


HUGE_TIMEOUTS = [1e306, sys.float_info.max, 10 ** 400]


def test_wait_with_a_timeout_too_large_to_count_waits_forever(topic):
    """These used to raise OverflowError, even for a record that existed."""
    topic.append(b"x")
    with topic.cursor(0) as c:
        for timeout in HUGE_TIMEOUTS:
            assert topic.wait(0, timeout) is True
            assert c.wait(timeout) is True
    for i, timeout in enumerate(HUGE_TIMEOUTS, 1):
        th = threading.Timer(0.15, topic.append, (b"later",))
        th.start()
        start = time.monotonic()
        with topic.cursor(i) as c:
            assert c.wait(timeout) is True            # waits as with None
        assert topic.wait(i, timeout) is True
        assert 0.1 <= time.monotonic() - start < 5
        th.join()
    for bad in (-1e306, -sys.float_info.max, -(10 ** 400)):
        with pytest.raises(ValueError, match=">= 0"):
            topic.wait(0, bad)
    assert topic.wait(9, decimal.Decimal("0.05")) is False   # any real number
    assert topic.wait(9, fractions.Fraction(1, 20)) is False
    with pytest.raises(TypeError, match="number of seconds"):
        topic.wait(0, "1")


# -- zero-copy ------------------------------------------------------------------


def test_zero_copy_values_are_views_released_on_the_next_record(topic):
    topic.append(b"first", key=b"k1")
    topic.append(b"second")
    topic.append(b"")
    it = topic.records(copy=False)
    r0 = next(it)
    assert isinstance(r0.value, memoryview) and isinstance(r0.key, memoryview)
    assert r0.value.readonly and r0.value.format == "B"
    assert bytes(r0.value) == b"first" and bytes(r0.key) == b"k1"
    assert r0.value.tobytes() == b"first"
    with pytest.raises(TypeError):
        r0.value[0] = 0                           # read-only: the log's own memory
    kept = bytes(r0.value)
    r1 = next(it)
    with pytest.raises(ValueError, match="released"):
        bytes(r0.value)                           # invalid now, and says so
    with pytest.raises(ValueError):
        r0.key[0]
    assert kept == b"first"
    assert bytes(r1.value) == b"second" and r1.key is None
    r2 = next(it)
    assert bytes(r2.value) == b""
    with pytest.raises(StopIteration):
        next(it)
    with pytest.raises(ValueError):
        r1.value.tobytes()                        # the end of the iteration too


def test_zero_copy_derived_views_are_refused(topic):
    fill(topic, 3)
    with topic.cursor() as c:
        r = c.next(copy=False)
        part = r.value[1:]                        # a slice shares the memory
        with pytest.raises(BufferError, match="bytes"):
            c.next(copy=False)
        assert c.offset == 1                      # nothing moved
        assert bytes(part) == b"0"
        del part
        r = c.next(copy=False)                    # once it is gone, on we go
        assert bytes(r.value) == b"v1"
        exported = memoryview(r.value)            # memoryview(view) counts too
        with pytest.raises(BufferError):
            c.seek(0)
        del exported
        c.seek(0)
        r = c.next(copy=False)
    with pytest.raises(ValueError):
        bytes(r.value)                            # closing the cursor releases it


def test_records_go_on_after_a_buffer_error(topic):
    """records() used to be a generator, which the BufferError ended: the
    next call said StopIteration and the rest of the log was never seen."""
    fill(topic, 4)
    it = topic.records(copy=False)
    r = next(it)
    part = r.value[1:]
    with pytest.raises(BufferError):
        next(it)
    del part
    assert [bytes(x.value) for x in it] == [b"v1", b"v2", b"v3"]


def test_zero_copy_released_when_the_topic_closes(path):
    t = libtopic.Topic(path, create=True)
    t.append(b"abc")
    it = t.records(copy=False)
    r = next(it)
    t.close()
    with pytest.raises(ValueError):
        bytes(r.value)
    with pytest.raises(libtopic.ClosedError):
        next(it)


@pytest.mark.parametrize("hold", ["slice", "memoryview", "export"])
def test_closing_refuses_while_a_zero_copy_view_is_in_use(path, hold):
    """close() used to release what it could and free the memory whatever
    was still alive: a derived view, or a C routine reading the view itself,
    then read unmapped or freed memory.  Now close() raises BufferError, as
    mmap.close() does, and the cursor, iterator or topic stays open."""
    t = libtopic.Topic(path, create=True)
    fill(t, 3)
    take = {"slice": lambda v: v[1:], "memoryview": memoryview,
            "export": pickle.PickleBuffer}[hold]    # the last holds the view's buffer
    c = t.cursor()
    in_use = take(c.next(copy=False).value)
    with pytest.raises(BufferError, match="cannot close the cursor"):
        c.close()
    assert not c.closed and c.offset == 1
    with pytest.raises(BufferError, match="cannot close the topic"):
        t.close()
    assert not t.closed and not c.closed
    assert bytes(in_use).endswith(b"0")           # the memory is still there
    it = t.records(1, copy=False)
    in_use_too = take(next(it).value)
    t.append(b"v3")                               # the topic is fully usable
    assert t.read(3) == b"v3" and t.end_offset == 4
    del in_use
    assert c.next().value == b"v1"                # and so is the cursor
    with pytest.raises(BufferError, match="cannot close the cursor"):
        it.close()
    with pytest.raises(BufferError, match="cannot close the topic"):
        t.close()
    assert not t.closed
    del in_use_too
    assert bytes(next(it, None).value) == b"v2"   # the iteration goes on
    it.close()
    c.close()
    assert c.closed
    t.close()
    assert t.closed
    with libtopic.Topic(path) as t:               # the writer lock was released
        assert t.end_offset == 4


def test_closing_a_topic_checks_every_cursor_before_freeing_any(topic):
    fill(topic, 2)
    free = topic.cursor()
    r = free.next(copy=False)                     # a view, but nothing derived
    held = topic.cursor()
    part = held.next(copy=False).value[1:]
    with pytest.raises(BufferError):
        topic.close()
    assert not free.closed and not held.closed
    with pytest.raises(ValueError, match="released"):
        bytes(r.value)                            # what it could, it released
    assert free.next().value == b"v1"
    del part
    topic.close()
    assert free.closed and held.closed


def test_a_deferred_close_with_a_view_in_use_raises_from_the_interrupted_call(
        topic, monkeypatch):
    """A close() reached from a signal handler (or finaliser) in the middle
    of a call on the topic is carried out as that call returns; a view still
    in use then makes that call raise the BufferError and leaves everything
    open.  The handler is simulated here by the C call itself."""
    fill(topic, 2)
    c = topic.cursor()
    part = c.next(copy=False).value[1:]
    real = libtopic.topic._wait
    handler = []

    def wait_then_handler(h, offset, ms):
        rc = real(h, offset, ms)
        if handler:
            handler.pop()()                       # returns at once: deferred
        return rc

    monkeypatch.setattr(libtopic.topic, "_wait", wait_then_handler)
    for closing in (c, topic):
        handler.append(closing.close)
        with pytest.raises(BufferError, match="cannot close the"):
            topic.wait(0)
        assert not handler and not closing.closed
        assert topic.wait(1) and c.offset == 1    # open, and nothing hangs
    handler.append(c.close)
    handler.append(topic.close)                   # both, in one call
    with pytest.raises(BufferError, match="cannot close the"):
        topic.wait(0)
    assert not topic.closed and not c.closed
    assert topic._deferred == [] and topic._deferred_close is None
    assert bytes(part) == b"0"
    del part
    handler.append(topic.close)
    assert topic.wait(0) is True                  # the close is done as it returns
    assert topic.closed and c.closed
    with pytest.raises(libtopic.ClosedError):
        topic.wait(0)


# A thread reads a large zero-copy value with a C routine that releases the
# GIL (hashlib) while the main thread closes the cursor or the topic.  The
# close used to drop the exported view and unmap (or, with lz4, free) the
# memory under the routine, and the process crashed.  In a child, whose exit
# status tells a crash.
CLOSE_WHILE_HASHING = textwrap.dedent("""
    import hashlib, sys, threading, time, libtopic
    path, comp, what = sys.argv[1:]
    t = libtopic.Topic(path, create=True,
                       config={"max.message.bytes": "64M", "compression.type": comp})
    value = bytes(range(256)) * (128 << 10)           # 32 MiB
    t.append(value)
    want = hashlib.sha256(value).hexdigest()
    c = t.cursor()
    r = c.next(copy=False)
    results = []
    started = threading.Event()

    def hasher():
        started.set()
        for _ in range(8):
            try:
                results.append(hashlib.sha256(r.value).hexdigest() == want)
            except ValueError:                        # released: nothing to read
                results.append("released")

    th = threading.Thread(target=hasher)
    th.start()
    started.wait()
    time.sleep(0.01)
    closing = t if what == "topic" else c
    try:
        closing.close()
        print("closed", flush=True)
    except BufferError:
        print("BufferError", closing.closed, flush=True)
    th.join()
    assert all(x is True or x == "released" for x in results), results
    del r
    t.close()
    print("done", c.closed, t.closed, flush=True)
""")


@pytest.mark.parametrize("comp", ["none", "lz4"])
@pytest.mark.parametrize("what", ["topic", "cursor"])
def test_closing_while_a_thread_reads_a_zero_copy_view(path, comp, what):
    r = run_python(CLOSE_WHILE_HASHING, path, comp, what, timeout=60)
    assert r.returncode == 0, "exit status %d: %s" % (r.returncode, r.stderr)
    lines = r.stdout.splitlines()
    assert lines[0] in ("BufferError False", "closed") and lines[1:] == ["done True True"]


# The same from a real signal handler: its close() is deferred to the end of
# the interrupted wait(), or, if the signal arrived between two calls, done
# at once and raised from the handler; either way the wait() raises the
# BufferError, and nothing hangs.
SIGNAL_CLOSE_IN_USE = textwrap.dedent("""
    import signal, sys, libtopic
    path, what = sys.argv[1], sys.argv[2]
    t = libtopic.Topic(path, create=True)
    t.append(b"kept value")
    c = t.cursor()
    part = c.next(copy=False).value[1:]
    signal.signal(signal.SIGALRM, lambda *a: (t if what == "topic" else c).close())
    signal.setitimer(signal.ITIMER_REAL, 0.3)
    try:
        t.wait(1)
        print("waited", flush=True)
    except BufferError:
        print("BufferError", flush=True)
    print("closed" if t.closed or c.closed else "open", c.offset, bytes(part).decode(),
          flush=True)
    del part
    t.close()
    with libtopic.Topic(path) as t:       # the writer lock was released
        print(t.read(0).decode(), flush=True)
""")


@pytest.mark.parametrize("what", ["topic", "cursor"])
def test_close_from_a_signal_handler_while_a_view_is_in_use(path, what):
    try:
        r = run_python(SIGNAL_CLOSE_IN_USE, path, what, timeout=8)
    except subprocess.TimeoutExpired:
        pytest.fail("close() in a signal handler hung")
    assert r.returncode == 0, "exit status %d: %s" % (r.returncode, r.stderr)
    assert r.stdout.splitlines() == ["BufferError", "open 1 ept value", "kept value"]


def test_zero_copy_with_lz4_batches(path):
    conf = {"compression.type": "lz4"}
    with libtopic.Topic(path, create=True, config=conf) as t:
        values = [(b"record %d " % i) * 40 for i in range(50)]
        t.append_batch([(b"k%d" % i, v) for i, v in enumerate(values)])
        got = [(bytes(r.key), bytes(r.value)) for r in t.records(copy=False)]
        assert got == [(b"k%d" % i, v) for i, v in enumerate(values)]


def test_abandoned_iterators_and_cursors_are_closed(path):
    t = libtopic.Topic(path, create=True)
    fill(t, 3)
    it = t.records()
    next(it)
    c = t.cursor()
    del it, c
    gc.collect()
    assert len(t._cursors) == 0
    t.close()


# A topic that is never closed, read with copy=False; its cursor (or the
# records() iterator) and the topic itself are dropped while a slice of a
# value and a view of a view of a key are kept.  Collecting them used to
# close the topic, which unmaps the segments: touching the views then
# crashed.  Run in a child, whose exit status tells a crash.
KEEP_ALIVE = textwrap.dedent("""
    import gc, sys, libtopic
    path, how = sys.argv[1], sys.argv[2]
    t = libtopic.Topic(path, create=True)
    t.append(b"hello zero-copy world " * 200, key=b"the key")
    if how == "cursor":
        holder = t.cursor()
        r = holder.next(copy=False)
    else:
        holder = t.records(copy=False)
        r = next(holder)
    part = r.value[6:15]
    again = memoryview(memoryview(r.key))[4:]
    del holder, r, t
    gc.collect()
    print(bytes(part).decode(), bytes(again).decode(), flush=True)
    del part, again
    gc.collect()
    with libtopic.Topic(path) as t:   # the writer lock went with the last view
        print(t.end_offset, flush=True)
""")


@pytest.mark.parametrize("how", ["cursor", "records"])
def test_zero_copy_views_keep_a_collected_topic_open(path, how):
    r = run_python(KEEP_ALIVE, path, how)
    assert r.returncode == 0, "exit status %d: %s" % (r.returncode, r.stderr)
    assert r.stdout.split() == ["zero-copy", "key", "1"]


# With lz4 a value lives in its cursor's decompression buffer.  Collecting
# the cursor while slices of its values were alive freed that buffer, and the
# next cursor to decompress a batch was given it: the slices then read that
# batch's bytes.  (In a child: reading freed memory may also crash.)
LZ4_VIEWS = textwrap.dedent("""
    import gc, sys, libtopic
    path, how = sys.argv[1], sys.argv[2]
    first = [b"A%03d" % i * 50 for i in range(20)]
    second = [b"B%03d" % i * 50 for i in range(20)]
    with libtopic.Topic(path, create=True, config={"compression.type": "lz4"}) as t:
        t.append_batch(first)
        t.append_batch(second)
        if how == "cursor":
            holder = t.cursor()
            r = holder.next(copy=False)
        else:
            holder = t.records(copy=False)
            r = next(holder)
        part = r.value[1:]
        whole = memoryview(r.value)
        del holder, r
        gc.collect()
        assert [x.value for x in t.records(20)] == second
        print(bytes(part) == first[0][1:], bytes(whole) == first[0], flush=True)
        del part, whole                # or closing the topic is a BufferError
""")


@pytest.mark.parametrize("how", ["cursor", "records"])
def test_zero_copy_views_of_lz4_records_outlive_a_collected_cursor(path, how):
    r = run_python(LZ4_VIEWS, path, how)
    assert r.returncode == 0, "exit status %d: %s" % (r.returncode, r.stderr)
    assert r.stdout.split() == ["True", "True"]


def test_zero_copy_views_keep_their_cursor_open_until_they_go(topic):
    """What the two tests above rely on, seen from inside: a collected cursor
    stays open exactly as long as a view of one of its records."""
    topic.append(b"value")
    c = topic.cursor()
    part = c.next(copy=False).value[1:]
    del c
    gc.collect()
    assert len(topic._cursors) == 1
    assert bytes(part) == b"alue"
    del part
    gc.collect()
    assert len(topic._cursors) == 0
