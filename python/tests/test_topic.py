"""Opening and closing, appending and reading, offsets, settings, version."""
import collections
import copy
import ctypes
import os
import pickle
import re
import time
import types

import pytest

import libtopic
from conftest import HEADER, PYDIR


def header_text():
    if not HEADER.exists():
        pytest.skip("include/topic.h not found (not run from the source tree)")
    return HEADER.read_text()


# -- version ---------------------------------------------------------------


def test_version_matches_the_library_and_header():
    lib = ctypes.CDLL(os.environ["LIBTOPIC_PATH"])
    lib.topic_version.restype = ctypes.c_char_p
    assert libtopic.__version__ == lib.topic_version().decode()
    text = header_text()
    parts = [re.search(r"#define TOPIC_VERSION_%s\s+(\d+)" % p, text).group(1)
             for p in ("MAJOR", "MINOR", "PATCH")]
    assert libtopic.__version__ == ".".join(parts)
    major, minor, patch = map(int, parts)
    assert libtopic.version_number == major * 10000 + minor * 100 + patch
    assert "LIBTOPIC_PATH" in libtopic.library_path


def test_pyproject_version_is_the_library_version():
    text = (PYDIR / "pyproject.toml").read_text()
    assert re.search(r'^version = "%s"$' % re.escape(libtopic.__version__), text, re.M)


# -- lifecycle --------------------------------------------------------------


def test_create_append_reopen(path):
    with libtopic.Topic(path, create=True) as t:
        assert not t.closed
        assert (t.start_offset, t.end_offset) == (0, 0)
        assert t.append(b"one") == 0
        assert t.append(b"two") == 1
    assert t.closed
    with libtopic.Topic(str(path)) as t:          # str, PathLike and bytes paths
        assert t.end_offset == 2
        assert t.read(1) == b"two"
        assert t.append(b"three") == 2
    with libtopic.Topic(os.fsencode(path), readonly=True) as t:
        assert [r.value for r in t.records()] == [b"one", b"two", b"three"]


def test_close_is_idempotent_and_use_after_close_raises(path):
    t = libtopic.Topic(path, create=True)
    t.append(b"x")
    t.close()
    t.close()
    for call in (lambda: t.append(b"y"), lambda: t.read(0), lambda: t.end_offset,
                 lambda: t.start_offset, lambda: t.sync(), lambda: t.wait(0),
                 lambda: t.commit("g", 0), lambda: t.committed("g"),
                 lambda: t.groups(), lambda: t.delete_before(0),
                 lambda: t.cursor(), lambda: t.records(), lambda: t.append_batch([b"z"])):
        with pytest.raises(libtopic.ClosedError, match="closed"):
            call()
    with pytest.raises(ValueError):       # ClosedError is a ValueError, like files
        t.read(0)
    assert "closed" in repr(t)


def test_exit_closes_on_exception(path):
    with pytest.raises(RuntimeError):
        with libtopic.Topic(path, create=True) as t:
            t.append(b"kept")
            raise RuntimeError("boom")
    assert t.closed
    with libtopic.Topic(path) as t:       # the writer lock was released
        assert t.read(0) == b"kept"


def test_with_on_a_closed_topic(path):
    t = libtopic.Topic(path, create=True)
    t.close()
    with t as same:                       # entering does not raise
        assert same is t
        with pytest.raises(libtopic.ClosedError):
            t.append(b"x")
    assert t.closed                       # and leaving does nothing


def test_unclosed_topic_warns_and_closes(path):
    t = libtopic.Topic(path, create=True)
    t.append(b"x")
    with pytest.warns(ResourceWarning):
        del t
        import gc
        gc.collect()
    with libtopic.Topic(path) as t:       # lock released by the finaliser
        assert t.end_offset == 1


def copy_refused(make, how):
    """The message of the TypeError make() raises.  A copy it makes after
    all is disarmed before the test fails: it shares the original's C handle,
    and collecting both would free it twice and crash the test run."""
    try:
        dup = make()
    except TypeError as e:
        return str(e)
    for obj in (dup, getattr(dup, "_cur", None)):
        if obj is not None:
            obj.__dict__["_ptr"] = None
            obj.__dict__["_cur"] = None
    pytest.fail("%s made a copy" % how)


def test_topics_cursors_and_iterators_cannot_be_copied(topic):
    """copy.copy() of a Topic or Cursor used to share its C handle: closing
    or collecting either copy freed it under the other, and the interpreter
    crashed on the next call."""
    topic.append(b"v0")
    cursor = topic.cursor()
    it = topic.records()
    hints = {topic: "libtopic.Topic cannot be %s: open the directory again",
             cursor: "libtopic.Cursor cannot be %s: open another one with topic.cursor",
             it: "libtopic records() iterator cannot be %s: call records() again"}
    for obj, hint in hints.items():
        for how, make in (("copied", lambda: copy.copy(obj)),
                          ("copied", lambda: copy.deepcopy(obj)),
                          ("pickled", lambda: pickle.dumps(obj)),
                          ("pickled", lambda: pickle.dumps(obj, protocol=0))):
            assert hint % how in copy_refused(make, how)
    assert cursor.next().value == b"v0"      # all still usable
    assert next(it).value == b"v0"
    assert topic.read(0) == b"v0"
    cursor.close()


def test_create_readonly_and_exclusive_arguments(path):
    with pytest.raises(ValueError, match="exclude"):
        libtopic.Topic(path, create=True, readonly=True)
    with pytest.raises(ValueError, match="create"):
        libtopic.Topic(path, exclusive=True)
    with libtopic.Topic(path, create=True, exclusive=True):
        pass
    with pytest.raises(FileExistsError):
        libtopic.Topic(path, create=True, exclusive=True)


# -- appending and reading ----------------------------------------------------


def test_values_bytes_like_and_str(topic):
    assert topic.append(b"bytes") == 0
    assert topic.append(bytearray(b"bytearray")) == 1
    assert topic.append(memoryview(b"xmemoryview")[1:]) == 2
    assert topic.append("héllo") == 3
    assert topic.append(b"") == 4
    assert topic.read(0) == b"bytes"
    assert topic.read(1) == b"bytearray"
    assert topic.read(2) == b"memoryview"
    assert topic.read(3) == "héllo".encode("utf-8")
    assert topic.read(4) == b""
    with pytest.raises(TypeError, match="bytes"):
        topic.append(5)               # bytes(5) would be five zero bytes
    with pytest.raises(TypeError):
        topic.append(None)


def test_append_with_key_and_timestamp(topic):
    assert topic.append(b"v0") == 0
    assert topic.append(b"v1", key=b"k1") == 1
    assert topic.append("v2", key="k2", timestamp=1234) == 2
    assert topic.append(b"v3", timestamp=5678) == 3
    assert topic.append(b"v4", key=b"") == 4
    recs = list(topic.records())
    assert [r.key for r in recs] == [None, b"k1", b"k2", None, b""]
    assert [r.value for r in recs] == [b"v0", b"v1", b"v2", b"v3", b"v4"]
    assert recs[2].timestamp == 1234 and recs[3].timestamp == 5678
    now = int(time.time() * 1000)
    assert abs(recs[0].timestamp - now) < 60000
    assert [r.offset for r in recs] == [0, 1, 2, 3, 4]
    with pytest.raises(TypeError):
        topic.append(b"x", timestamp="yesterday")
    with pytest.raises(ValueError):
        topic.append(b"x", timestamp=1 << 63)


def test_append_batch_forms(topic):
    first = topic.append_batch([
        b"plain",
        "text",
        (b"k", b"tuple"),
        ("k3", "triple", 42),
        libtopic.Record(value=b"rec", key=b"rk", timestamp=7),
        libtopic.Record(offset=999, value=b"offset ignored"),
    ])
    assert first == 0
    assert topic.append_batch(iter([b"gen1", b"gen2"])) == 6   # any iterable
    assert topic.append_batch([]) == 8                          # nothing; end offset
    assert topic.end_offset == 8
    recs = list(topic.records())
    assert [(r.key, r.value) for r in recs] == [
        (None, b"plain"), (None, b"text"), (b"k", b"tuple"), (b"k3", b"triple"),
        (b"rk", b"rec"), (None, b"offset ignored"), (None, b"gen1"), (None, b"gen2")]
    assert recs[3].timestamp == 42 and recs[4].timestamp == 7
    with pytest.raises(TypeError):
        topic.append_batch([(1, 2, 3, 4)])
    with pytest.raises(TypeError, match="append"):
        topic.append_batch(b"not a list")
    with pytest.raises(TypeError):
        topic.append_batch([object()])
    assert topic.end_offset == 8      # a refused batch appends nothing


def test_append_batch_refuses_a_mapping(topic):
    """append_batch({b"k": b"v"}) used to append the key b"k" as a value,
    dropping the value: iterating a dict gives its keys."""
    for mapping in ({b"k": b"v"}, types.MappingProxyType({b"k": b"v"}),
                    collections.OrderedDict([(b"k", b"v")])):
        with pytest.raises(TypeError, match=r"not a mapping.*\.items\(\)"):
            topic.append_batch(mapping)
    assert topic.end_offset == 0
    assert topic.append_batch({b"k": b"v"}.items()) == 0    # (key, value) pairs
    rec = next(topic.records())
    assert (rec.key, rec.value) == (b"k", b"v")


def test_read_values_larger_than_the_buffer(topic):
    sizes = [0, 1, 4095, 4096, 4097, 100000, (1 << 20) - 100]
    for i, n in enumerate(sizes):
        assert topic.append(bytes([i % 251]) * n) == i
    for i, n in enumerate(reversed(sizes)):       # shrink after growing too
        j = len(sizes) - 1 - i
        assert topic.read(j) == bytes([j % 251]) * sizes[j]


@pytest.mark.parametrize("nested_size", [1500, 10000])
def test_a_read_reentered_in_the_same_thread_keeps_its_value(topic, monkeypatch,
                                                             nested_size):
    """read() keeps one buffer per thread.  A signal handler (or finaliser)
    that read from the topic after read()'s C call returned and before the
    value was copied out used the same buffer, and read() returned the
    handler's record (15244 of 15249 times under a stream of SIGUSR1s).  The
    handler is simulated here, deterministically, by the C call itself."""
    first, nested = b"A" * 1000, b"B" * nested_size
    topic.append(first)
    topic.append(nested)
    real = libtopic.topic._read
    got = []

    def read_then_reenter(h, offset, buf, cap, n):
        rc = real(h, offset, buf, cap, n)
        if offset == 0:
            got.append(topic.read(1))            # what the handler does
        return rc

    monkeypatch.setattr(libtopic.topic, "_read", read_then_reenter)
    assert topic.read(0) == first
    assert got == [nested]
    assert topic.read(0) == first and got[1:] == [nested]
    monkeypatch.undo()
    assert [topic.read(0), topic.read(1)] == [first, nested]


def test_read_into(topic):
    topic.append(b"0123456789")
    buf = bytearray(16)
    assert topic.read_into(0, buf) == 10
    assert bytes(buf[:10]) == b"0123456789"
    small = bytearray(4)
    with pytest.raises(libtopic.BufferTooSmall) as ei:
        topic.read_into(0, small)
    assert ei.value.needed == 10 and ei.value.code == libtopic.ETOOSMALL
    assert small == bytearray(4)
    with pytest.raises(libtopic.BufferTooSmall):
        topic.read_into(0, bytearray())
    with pytest.raises(TypeError):
        topic.read_into(0, b"read-only bytes")
    strided = bytearray(32)
    with pytest.raises(TypeError, match="needs a contiguous buffer"):
        topic.read_into(0, memoryview(strided)[::2])
    assert strided == bytearray(32)


def test_offsets_are_checked(topic):
    topic.append(b"x")
    with pytest.raises(ValueError):
        topic.read(-1)
    with pytest.raises(ValueError):
        topic.read(1 << 64)
    with pytest.raises(TypeError):
        topic.read("0")
    with pytest.raises(TypeError):
        topic.read(0.0)
    assert topic.read(0) == b"x"


def test_large_offsets_are_not_truncated(topic):
    # argtypes matter: an offset above 2**32 must reach the library whole.
    with pytest.raises(libtopic.EndOfLog, match=str(1 << 40)):
        topic.read(1 << 40)
    assert topic.wait((1 << 63) + 5, timeout=0) is False
    with pytest.raises(libtopic.InvalidArgument):
        topic.delete_before(1 << 33)


def test_sync_and_iter(topic):
    for i in range(3):
        topic.append(b"%d" % i)
    topic.sync()
    assert [r.value for r in topic] == [b"0", b"1", b"2"]


def test_readonly_sees_writer_appends(path, topic):
    topic.append(b"a")
    with libtopic.Topic(path, readonly=True) as ro:
        assert ro.readonly and "readonly" in repr(ro)
        assert ro.end_offset == 1
        topic.append(b"b")
        assert ro.end_offset == 2
        assert ro.read(1) == b"b"
        ro.sync()          # syncs its commits; no error on a read-only handle


# -- settings -----------------------------------------------------------------


def test_config_is_applied_and_persisted(path):
    conf = {"segment.bytes": "4K", "max.message.bytes": 1000, "flush.messages": "1"}
    with libtopic.Topic(path, create=True, config=conf) as t:
        with pytest.raises(libtopic.TooBig):
            t.append(b"x" * 1001)
        for i in range(20):
            t.append(b"y" * 500)
    logs = [f for f in os.listdir(path) if f.endswith(".log")]
    assert len(logs) > 1                    # 4K segments rolled
    stored = (path / "topic.conf").read_text()
    assert "max.message.bytes=1000" in stored and "segment.bytes=4096" in stored
    with libtopic.Topic(path) as t:         # stored settings hold on reopen
        with pytest.raises(libtopic.TooBig):
            t.append(b"x" * 1001)


def test_config_of_a_reader_is_not_stored_but_a_writers_is(path):
    """What the Topic docstring says after topic_open(3): a read-only
    handle's settings are its own; a writer's are stored in the topic."""
    with libtopic.Topic(path, create=True, config={"segment.bytes": "8K"}):
        pass
    conf = path / "topic.conf"
    with libtopic.Topic(path, readonly=True, config={"segment.bytes": "16K"}):
        pass
    assert "segment.bytes=8192" in conf.read_text()
    with libtopic.Topic(path, config={"segment.bytes": "16K"}):
        pass
    assert "segment.bytes=16384" in conf.read_text()
    with libtopic.Topic(path):               # no config: the stored settings
        pass
    assert "segment.bytes=16384" in conf.read_text()


def test_bad_config_raises_value_error_with_the_library_message(path):
    with pytest.raises(ValueError, match='unknown setting "segment.byte"'):
        libtopic.Topic(path, create=True, config={"segment.byte": "1M"})
    with pytest.raises(ValueError, match=r"segment.bytes: 1 is out of range"):
        libtopic.Topic(path, create=True, config={"segment.bytes": 1})
    with pytest.raises(ValueError, match="compression.type.*none, lz4"):
        libtopic.Topic(path, create=True, config={"compression.type": "zstd"})
    with pytest.raises(ValueError, match="flush.ms.*whole number"):
        libtopic.Topic(path, create=True, config={"flush.ms": "soon"})
    with pytest.raises(TypeError):
        libtopic.Topic(path, create=True, config={"flush.ms": 1.5})
    assert not path.exists()                # nothing was created


def test_check_config_and_defaults():
    assert libtopic.check_config({"segment.bytes": "64M", "compression.type": "lz4"}) == \
        {"segment.bytes": str(64 << 20), "compression.type": "lz4"}
    with pytest.raises(ValueError, match="unknown setting"):
        libtopic.check_config({"nope": "1"})
    d = libtopic.default_config()
    assert d["segment.bytes"] == str(1 << 30)
    assert d["compression.type"] == "none"
    assert set(d) == set(libtopic.CONFIG_NAMES)


def test_config_names_match_the_header():
    text = header_text()
    block = text[text.index("Settings are Kafka-style"):text.index("Sizes take plain")]
    names = re.findall(r"^ \*   ([a-z.]+)\s", block, re.M)
    assert sorted(names) == sorted(libtopic.CONFIG_NAMES)


def test_error_codes_match_the_header():
    text = header_text()
    codes = dict(re.findall(r"X\((\w+),\s*(-\d+),", text))
    assert codes, "TOPIC_ERRNO_MAP not found"
    for name, value in codes.items():
        assert getattr(libtopic, name) == int(value), name
        assert libtopic.strerror(int(value)) != "unknown error code"
    assert libtopic.strerror(0) == "success"
    assert libtopic.strerror(-2) == "No such file or directory"


def test_every_function_of_the_header_is_declared():
    """argtypes and restype for every function, matching include/topic.h:
    without them ctypes would truncate 64-bit offsets to C ints."""
    from ctypes import c_char_p, c_int, c_int64, c_uint64, c_void_p
    from libtopic import _lib
    text = re.sub(r"/\*.*?\*/", "", header_text(), flags=re.S)
    decls = re.findall(r"TOPIC_API\s+([\w\s\*]+?)\s*\b(topic_\w+)\s*\(([^)]*)\)", text)
    assert len(decls) >= 25
    returns = {"int": c_int, "uint64_t": c_uint64, "const char *": c_char_p,
               "void": None, "topic_config *": c_void_p}
    assert sorted(name for _, name, _ in decls) == sorted(_lib._PROTOTYPES)
    for ret, name, params in decls:
        fn = getattr(_lib.lib, name)
        ret = re.sub(r"\s*\*", " *", ret.strip())
        assert fn.restype is returns[ret], name
        n = 0 if params.strip() == "void" else params.count(",") + 1
        assert fn.argtypes is not None and len(fn.argtypes) == n, name
        for param, argtype in zip(params.split(","), fn.argtypes):
            if "uint64_t" in param and "*" not in param:
                assert argtype is c_uint64, (name, param)
            if "int64_t" in param and "uint64_t" not in param:
                assert argtype is c_int64, (name, param)
