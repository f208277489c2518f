"""Every exception class, raised in the situation that produces it."""
import copy
import errno
import os
import pickle
import shutil
import struct
import subprocess
import textwrap

import pytest

import libtopic
from conftest import child_env, run_python


def test_hierarchy():
    for cls in (libtopic.EndOfLog, libtopic.Gone, libtopic.Corrupt, libtopic.Locked,
                libtopic.TooBig, libtopic.BufferTooSmall, libtopic.Failed,
                libtopic.ReadOnly, libtopic.UnsupportedVersion, libtopic.ClosedError,
                libtopic.TopicOSError):
        assert issubclass(cls, libtopic.TopicError)
    assert issubclass(libtopic.TopicOSError, OSError)
    assert issubclass(libtopic.TopicFileNotFoundError, FileNotFoundError)
    assert issubclass(libtopic.TopicFileExistsError, FileExistsError)
    assert issubclass(libtopic.TopicNotADirectoryError, NotADirectoryError)
    assert issubclass(libtopic.TopicPermissionError, PermissionError)
    assert issubclass(libtopic.TopicTimeoutError, TimeoutError)
    assert issubclass(libtopic.InvalidArgument, ValueError)
    assert issubclass(libtopic.ClosedError, ValueError)


def every_exception():
    """One instance of every exception class of the binding, as the binding
    makes it, with a context, and for the OSError ones with and without a
    filename."""
    errors = libtopic.errors
    made = [errors.error(code, "call(%d)" % code) for code in errors._CODE_CLASSES]
    made += [errors.error(-e, "call(%d)" % e) for e in errors._ERRNO_CLASSES]
    made += [errors.error(-errno.ENOENT, "open", filename="/no/such/topic"),
             errors.error(-errno.EIO, "sync"),
             errors.error(-errno.EIO, "open", filename=b"/bytes/path"),
             errors.error(-5000, "odd"),             # no errno, no TOPIC_* code
             libtopic.TopicError(),
             libtopic.ClosedError(None, "the topic '/t' is closed")]
    small = errors.error(libtopic.ETOOSMALL, "read_into(0, 1-byte buffer): needs 9 bytes")
    small.needed = 9
    made.append(small)
    noted = errors.error(libtopic.END, "read(3)")
    noted.add_note("while replaying")
    made.append(noted)
    return made


ATTRIBUTES = ("code", "message", "context", "needed", "args", "errno", "strerror",
              "filename", "__notes__")


@pytest.mark.parametrize("how", ["pickle", "pickle0", "copy", "deepcopy"])
def test_every_exception_survives_pickle_and_copy(how):
    """They used to fail with "TypeError: code must be an int, not str"
    (their args held only the message, which __init__ took for the code),
    so multiprocessing could not pass one back; an OSError one lost its
    filename.  Now each comes back as the same class, saying the same."""
    made = every_exception()
    classes = {v for v in vars(libtopic).values()
               if isinstance(v, type) and issubclass(v, libtopic.TopicError)}
    assert {type(e) for e in made} == classes        # a new class is covered too
    redo = {"pickle": lambda e: pickle.loads(pickle.dumps(e)),
            "pickle0": lambda e: pickle.loads(pickle.dumps(e, protocol=0)),
            "copy": copy.copy, "deepcopy": copy.deepcopy}[how]
    for e in made:
        again = redo(e)
        assert type(again) is type(e) and again is not e
        assert str(again) == str(e) and repr(again) == repr(e)
        for name in ATTRIBUTES:
            assert getattr(again, name, "-") == getattr(e, name, "-"), (e, name)


def test_end_of_log(topic):
    topic.append(b"x")
    with pytest.raises(libtopic.EndOfLog) as ei:
        topic.read(1)
    e = ei.value
    assert e.code == libtopic.END
    assert e.message == libtopic.strerror(libtopic.END)
    assert str(e) == "read(1): " + e.message


def test_gone(topic):
    for i in range(5):
        topic.append(b"%d" % i)
    topic.delete_before(3)
    with pytest.raises(libtopic.Gone) as ei:
        topic.read(2)
    assert ei.value.code == libtopic.EGONE and "deleted" in str(ei.value)
    with pytest.raises(libtopic.Gone):
        topic.cursor(0)
    with pytest.raises(libtopic.Gone):
        topic.records(1)
    assert topic.read(3) == b"3"


def damage_first_record(path):
    with libtopic.Topic(path, create=True) as t:
        t.append(b"A" * 100)
        t.sync()                # seals the batch consecutive appends share
        t.append(b"B" * 100)
    seg = path / ("0" * 20 + ".log")
    data = bytearray(seg.read_bytes())
    data[data.index(b"A" * 100) + 50] ^= 0xFF      # one damaged byte in record 0
    seg.write_bytes(bytes(data))


def test_corrupt(path):
    damage_first_record(path)
    with libtopic.Topic(path) as t:           # a clean close: nothing is scanned
        with pytest.raises(libtopic.Corrupt) as ei:
            t.read(0)
        assert ei.value.code == libtopic.ECORRUPT
        assert t.read(1) == b"B" * 100      # the next batch is whole
        with t.cursor(0) as c:
            with pytest.raises(libtopic.Corrupt):
                c.next()
            assert c.offset == 0             # stays on the damaged record
            c.seek(1)
            assert c.next().value == b"B" * 100
        with pytest.raises(libtopic.Corrupt):
            list(t.records())


def test_corrupt_seen_by_a_reader(path):
    # After a clean close a reader trusts the recorded end, as a writer does,
    # and reports damage below it instead of ending the log there.
    damage_first_record(path)
    with libtopic.Topic(path, readonly=True) as t:
        with pytest.raises(libtopic.Corrupt):
            t.read(0)


def test_locked(path, topic):
    with pytest.raises(libtopic.Locked) as ei:
        libtopic.Topic(path)
    assert ei.value.code == libtopic.ELOCKED
    assert str(path) in str(ei.value)
    with libtopic.Topic(path, readonly=True):   # readers are welcome
        pass


def test_too_big(path):
    with libtopic.Topic(path, create=True, config={"max.message.bytes": "1K"}) as t:
        t.append(b"x" * 1024)
        with pytest.raises(libtopic.TooBig) as ei:
            t.append(b"x" * 1025)
        assert ei.value.code == libtopic.ETOOBIG
        with pytest.raises(libtopic.TooBig):
            t.append(b"x" * 1000, key=b"k" * 100)          # key plus value
        with pytest.raises(libtopic.TooBig):
            t.append_batch([b"x" * 600, b"y" * 600])       # sum of the batch
        assert t.end_offset == 1                           # no offset consumed


def test_read_only(path, topic):
    topic.append(b"x")
    with libtopic.Topic(path, readonly=True) as ro:
        with pytest.raises(libtopic.ReadOnly) as ei:
            ro.append(b"y")
        assert ei.value.code == libtopic.ERDONLY
        with pytest.raises(libtopic.ReadOnly):
            ro.append_batch([b"y"])
        with pytest.raises(libtopic.ReadOnly):
            ro.delete_before(1)
        ro.commit("reader", 1)                  # positions are allowed
        assert ro.committed("reader") == 1


def test_unsupported_version(path):
    with libtopic.Topic(path, create=True) as t:
        t.append(b"x")
    state = path / "topic.state"
    data = bytearray(state.read_bytes())
    data[4:8] = struct.pack("<I", 99)          # a state file from a newer release
    state.write_bytes(bytes(data))
    with pytest.raises(libtopic.UnsupportedVersion) as ei:
        libtopic.Topic(path)
    assert ei.value.code == libtopic.EVERSION
    with pytest.raises(libtopic.UnsupportedVersion):
        libtopic.Topic(path, readonly=True)


def test_os_errors_carry_errno(tmp_path):
    missing = tmp_path / "missing"
    with pytest.raises(FileNotFoundError) as ei:
        libtopic.Topic(missing)
    e = ei.value
    assert isinstance(e, libtopic.TopicOSError)
    assert e.errno == errno.ENOENT and e.code == -errno.ENOENT
    assert e.filename == str(missing)
    assert "No such file or directory" in str(e)
    with pytest.raises(FileNotFoundError):
        libtopic.Topic(missing, readonly=True)

    afile = tmp_path / "afile"
    afile.write_text("not a topic")
    with pytest.raises(NotADirectoryError) as ei:
        libtopic.Topic(afile, create=True)
    assert ei.value.errno == errno.ENOTDIR

    (tmp_path / "t").mkdir()
    with pytest.raises(FileExistsError) as ei:
        libtopic.Topic(tmp_path / "t", create=True, exclusive=True)
    assert ei.value.errno == errno.EEXIST


def test_invalid_argument(topic):
    topic.append(b"x")
    for bad in ("", ".hidden", "has space", "x" * 129, "slash/y", "ünï"):
        with pytest.raises(libtopic.InvalidArgument) as ei:
            topic.commit(bad, 0)
        assert ei.value.errno == errno.EINVAL
    with pytest.raises(ValueError):
        topic.committed("bad name")
    with pytest.raises(TypeError):
        topic.commit(b"bytes-name", 0)
    with pytest.raises(libtopic.InvalidArgument):
        topic.delete_before(5)                   # beyond the end offset
    topic.commit("x" * 128, 1)                   # the longest name is fine
    with pytest.raises(ValueError):
        topic.wait(0, timeout=-1)
    with pytest.raises(ValueError):
        topic.wait(0, timeout=float("nan"))
    assert topic.wait(0, timeout=float("inf"))    # record 0 exists: at once
    with topic.cursor(0) as c:
        with pytest.raises(TypeError):
            c.seek_time(None)                    # None means "now" only to appends


def test_invalid_group_names_say_what_is_wrong(topic):
    """They used to say only "Invalid argument" (or, for a lone surrogate,
    raise the codec's UnicodeEncodeError)."""
    cases = {"": "it is empty", ".hidden": "it starts with '.'",
             "has space": "it contains ' '", "x" * 129: "it is 129 characters long",
             "ünï": "it contains 'ü'", "bad\udcffname": "it contains '\\udcff'",
             "a\0b": "it contains a NUL byte"}
    for name, why in cases.items():
        for call in (lambda: topic.commit(name, 0), lambda: topic.committed(name)):
            with pytest.raises(libtopic.InvalidArgument) as ei:
                call()
            assert ei.value.errno == errno.EINVAL
            assert "invalid group name" in str(ei.value) and why in str(ei.value)
            assert "1 to 128 characters" in str(ei.value)
    assert topic.groups() == []


def test_delete_before_past_the_end_says_so(topic):
    """It used to say only "[Errno 22] delete_before(5): Invalid argument"."""
    for i in range(3):
        topic.append(b"%d" % i)
    with pytest.raises(libtopic.InvalidArgument) as ei:
        topic.delete_before(5)
    e = ei.value
    assert e.errno == errno.EINVAL and e.code == -errno.EINVAL
    assert str(e) == "[Errno 22] delete_before(5): offset 5 is past the end offset 3"
    with pytest.raises(libtopic.InvalidArgument, match="past the end offset 3"):
        topic.delete_before(2 ** 64 - 1)
    topic.delete_before(3)                       # the end offset itself is fine
    assert topic.start_offset == 3


def test_strerror_takes_c_ints_only():
    """strerror(2**40) used to say "success": ctypes kept its low 32 bits."""
    assert libtopic.strerror(12345) == "unknown error code"
    assert libtopic.strerror(-(2 ** 31)) == "unknown error code"
    for bad in (2 ** 40, 2 ** 31, -(2 ** 31) - 1, -(2 ** 40)):
        with pytest.raises(ValueError, match="out of range"):
            libtopic.strerror(bad)
    for bad in ("-2", -2.0, None):
        with pytest.raises(TypeError, match="int"):
            libtopic.strerror(bad)


def test_a_cursor_needs_an_open_topic(path):
    """Cursor(None) used to fail with AttributeError: 'NoneType' object has
    no attribute '_calls'."""
    with pytest.raises(TypeError, match="Topic, not None"):
        libtopic.Cursor(None)
    with pytest.raises(TypeError, match="Topic, not str"):
        libtopic.Cursor(str(path))
    t = libtopic.Topic(path, create=True)
    t.close()
    with pytest.raises(libtopic.ClosedError, match="closed"):
        libtopic.Cursor(t)
    with pytest.raises(libtopic.ClosedError, match="closed"):
        t.cursor()


def test_nul_bytes_in_names_are_refused(tmp_path, topic):
    """C would see a string end at its first NUL and act on a shorter name:
    another directory, group or setting than the caller gave."""
    victim = tmp_path / "victim"
    with pytest.raises(ValueError, match="NUL"):
        libtopic.Topic(str(victim) + "\0suffix", create=True)
    assert not victim.exists()
    topic.append(b"x")
    topic.commit("billing", 0)
    with pytest.raises(libtopic.InvalidArgument, match="NUL"):
        topic.commit("billing\0evil", 1)
    with pytest.raises(libtopic.InvalidArgument, match="NUL"):
        topic.committed("billing\0evil")
    assert topic.committed("billing") == 0
    for bad in ({"segment.bytes": "4096\0garbage"}, {"segment.bytes\0garbage": "4096"}):
        with pytest.raises(ValueError, match="NUL"):
            libtopic.check_config(bad)
        with pytest.raises(ValueError, match="NUL"):
            libtopic.Topic(tmp_path / "other", create=True, config=bad)
    assert not (tmp_path / "other").exists()


def test_closed(path):
    t = libtopic.Topic(path, create=True)
    c = t.cursor()
    t.close()
    with pytest.raises(libtopic.ClosedError):
        t.append(b"x")
    with pytest.raises(libtopic.ClosedError):
        c.next()
    assert c.closed
    c.close()


# -- I/O failures, with a fault-injecting shim -------------------------------

SHIM = r"""
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <stdlib.h>
#include <unistd.h>

/* fdatasync() and fsync() fail with EIO while the file named by
 * $SHIM_FAIL_FILE exists: a disk going bad under a running writer. */
static int failing(void)
{
    const char *p = getenv("SHIM_FAIL_FILE");
    return p != NULL && access(p, F_OK) == 0;
}

int fdatasync(int fd)
{
    static int (*real)(int);
    if (failing()) { errno = EIO; return -1; }
    if (real == NULL) real = (int (*)(int))dlsym(RTLD_NEXT, "fdatasync");
    return real(fd);
}

int fsync(int fd)
{
    static int (*real)(int);
    if (failing()) { errno = EIO; return -1; }
    if (real == NULL) real = (int (*)(int))dlsym(RTLD_NEXT, "fsync");
    return real(fd);
}
"""

FAILING_WRITER = textwrap.dedent("""
    import errno, os, sys, libtopic
    path, flag = sys.argv[1], sys.argv[2]
    t = libtopic.Topic(path, create=True)
    t.append(b"before")
    t.sync()
    open(flag, "w").close()                 # the disk starts failing
    t.append(b"unsynced")
    try:
        t.sync()
    except libtopic.TopicOSError as e:
        assert e.errno == errno.EIO, e
        print("sync:", type(e).__name__, e.errno)
    try:
        t.append(b"refused")
    except libtopic.Failed as e:
        assert e.code == libtopic.EFAILED
        print("append:", type(e).__name__, e)
    os.unlink(flag)                         # the disk is back: still refused
    try:
        t.append(b"refused again")
    except libtopic.Failed:
        print("still failed")
    try:
        t.close()
    except libtopic.TopicError as e:
        print("close:", type(e).__name__)
""")


def test_failed_after_an_io_error(tmp_path):
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        pytest.skip("no C compiler to build the fault-injection shim")
    shim = tmp_path / "shim.so"
    src = tmp_path / "shim.c"
    src.write_text(SHIM)
    subprocess.run([cc, "-shared", "-fPIC", "-o", str(shim), str(src), "-ldl"],
                   check=True, timeout=60)
    flag = tmp_path / "fail-now"
    preload = " ".join(filter(None, [os.environ.get("LD_PRELOAD"), str(shim)]))
    env = child_env(LD_PRELOAD=preload, SHIM_FAIL_FILE=str(flag))
    path = tmp_path / "topic"
    r = run_python(FAILING_WRITER, path, flag, env=env)
    assert r.returncode == 0, r.stderr
    out = r.stdout.splitlines()
    assert out[0] == "sync: TopicOSError 5"
    assert out[1].startswith("append: Failed") and "reopen" in out[1]
    assert out[2] == "still failed"
    assert out[3].startswith("close: ")
    with libtopic.Topic(path) as t:          # reopening clears it
        assert t.read(0) == b"before"
        t.append(b"after")
