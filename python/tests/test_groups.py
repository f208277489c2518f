"""Consumer positions, delete_before, lz4 compression."""
import os

import pytest

import libtopic


def logs(path):
    return sorted(f for f in os.listdir(path) if f.endswith(".log"))


def test_commit_committed_groups(path, topic):
    assert topic.groups() == []
    assert topic.committed("never") is None          # never committed: None
    for i in range(10):
        topic.append(b"%d" % i)
    topic.commit("billing", 3)
    topic.commit("audit", 7)
    topic.commit("billing", 5)                       # the newest value wins
    assert topic.committed("billing") == 5
    assert topic.committed("audit") == 7
    assert topic.groups() == ["audit", "billing"]    # sorted
    topic.commit("big", (1 << 64) - 1)               # any u64, not only offsets
    assert topic.committed("big") == (1 << 64) - 1
    topic.close()
    with libtopic.Topic(path, readonly=True) as ro:  # durable, shared across handles
        assert ro.committed("billing") == 5
        ro.commit("reader-1", 9)
        ro.sync()
    with libtopic.Topic(path) as t:
        assert t.committed("reader-1") == 9
        assert t.groups() == ["audit", "big", "billing", "reader-1"]


def test_groups_list_grows_past_the_first_buffer(topic):
    names = ["group-%03d-%s" % (i, "x" * 40) for i in range(40)]   # > 256 bytes
    for i, name in enumerate(names):
        topic.commit(name, i)
    assert topic.groups() == sorted(names)


def test_delete_before(path):
    conf = {"segment.bytes": "4K"}
    with libtopic.Topic(path, create=True, config=conf) as t:
        for i in range(100):
            t.append(b"%03d" % i + b"." * 200)
        before = logs(path)
        assert len(before) > 3
        t.delete_before(50)
        assert t.start_offset == 50
        assert t.end_offset == 100
        with pytest.raises(libtopic.Gone):
            t.read(49)
        assert t.read(50).startswith(b"050")
        assert len(logs(path)) < len(before)          # whole segments went
        t.delete_before(10)                           # below the start: nothing
        assert t.start_offset == 50
        t.delete_before(100)                          # everything: allowed
        assert t.start_offset == 100
        assert list(t.records()) == []
        assert t.append(b"next") == 100
    with libtopic.Topic(path) as t:                   # durable
        assert (t.start_offset, t.end_offset) == (100, 101)


def test_lz4_compresses_batches(tmp_path):
    values = [b"event %05d: " % i + b"the same words again and again " * 8
              for i in range(2000)]
    sizes = {}
    for kind in ("none", "lz4"):
        path = tmp_path / kind
        with libtopic.Topic(path, create=True, config={"compression.type": kind}) as t:
            for i in range(0, len(values), 100):
                t.append_batch([(b"key", v) for v in values[i:i + 100]])
            assert t.read(1234) == values[1234]
        assert "compression.type=%s" % kind in (path / "topic.conf").read_text() \
            or kind == "none"
        sizes[kind] = sum(os.path.getsize(path / f) for f in logs(path))
        with libtopic.Topic(path, readonly=True) as t:
            assert [r.value for r in t.records()] == values
            assert t.read(1999) == values[1999]
    assert sizes["lz4"] * 3 < sizes["none"], sizes
