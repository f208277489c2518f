"""Other processes: a read-only follower, Ctrl-C, and finding the library."""
import os
import pathlib
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import threading
import time

import pytest

import libtopic
from conftest import PYDIR, child_env, run_python

FOLLOWER = textwrap.dedent("""
    import sys, libtopic
    path, want = sys.argv[1], int(sys.argv[2])
    with libtopic.Topic(path, readonly=True) as t:
        start = t.committed("follower") or 0
        print("ready", start, flush=True)
        n = 0
        for rec in t.records(start, follow=True):
            print(rec.offset, rec.key.decode(), rec.value.decode(), flush=True)
            t.commit("follower", rec.offset + 1)
            n += 1
            if n == want:
                break
""")


def start(code, *args):
    """Starts a child Python; its stderr goes to a temporary file."""
    err = tempfile.TemporaryFile(mode="w+")
    p = subprocess.Popen([sys.executable, "-c", code, *map(str, args)], env=child_env(),
                         stdout=subprocess.PIPE, stderr=err, text=True)
    p.err = err
    return p


def finish(p, timeout=15):
    """The rest of the child's stdout and its stderr, once it has exited.
    (Not communicate(): it would skip what readline() had buffered.)"""
    watchdog = threading.Timer(timeout, p.kill)
    watchdog.start()
    try:
        out = p.stdout.read()
        p.wait()
    finally:
        watchdog.cancel()
    p.err.seek(0)
    return out, p.err.read()


def start_follower(path, want):
    p = start(FOLLOWER, path, want)
    line = p.stdout.readline()
    if not line.startswith("ready"):
        p.kill()
        raise AssertionError((line, finish(p)))
    return p, int(line.split()[1])


def test_a_readonly_process_follows_the_writer_and_commits(path, topic):
    topic.append(b"early", key=b"k")
    p, start = start_follower(path, 30)
    assert start == 0
    try:
        for i in range(1, 30):
            topic.append(b"msg-%d" % i, key=b"k")
            if i % 10 == 0:
                time.sleep(0.05)          # the follower sleeps in topic_wait
    finally:
        out, err = finish(p)
    assert p.returncode == 0, err
    lines = out.splitlines()
    assert lines[0] == "0 k early"
    assert lines[1:] == ["%d k msg-%d" % (i, i) for i in range(1, 30)]
    assert topic.committed("follower") == 30

    # Restarted, it resumes from its committed position.
    p, start = start_follower(path, 2)
    try:
        assert start == 30
        topic.append_batch([(b"k", b"after-1"), (b"k", b"after-2")])
    finally:
        out, err = finish(p)
    assert out.splitlines() == ["30 k after-1", "31 k after-2"], err


def test_ctrl_c_interrupts_a_follower(path, topic):
    code = textwrap.dedent("""
        import sys, libtopic
        t = libtopic.Topic(sys.argv[1], readonly=True)
        print("ready", flush=True)
        try:
            for rec in t.records(follow=True):
                pass
        except KeyboardInterrupt:
            print("interrupted", flush=True)
            t.close()
            sys.exit(3)
    """)
    p = start(code, path)
    try:
        assert p.stdout.readline() == "ready\n"
        time.sleep(0.2)                    # well inside topic_wait
        sent = time.monotonic()
        p.send_signal(signal.SIGINT)
    finally:
        out, err = finish(p, 10)
    assert time.monotonic() - sent < 3
    assert p.returncode == 3, err
    assert out == "interrupted\n"


def test_library_not_found_lists_every_path_tried(tmp_path):
    missing = tmp_path / "nowhere" / "libtopic.so"
    env = child_env(LIBTOPIC_PATH=str(missing), LD_LIBRARY_PATH="")
    r = run_python("import libtopic", env=env)
    if r.returncode == 0:
        pytest.skip("libtopic is installed system-wide: nothing to test")
    err = r.stderr
    assert "ImportError" in err
    assert "could not be loaded" in err
    assert "LIBTOPIC_PATH=%s" % missing in err
    assert str(PYDIR / "libtopic" / "libtopic.so") in err
    assert "libtopic.so.0 (system loader)" in err
    assert "libtopic.so (system loader)" in err
    assert "export LIBTOPIC_PATH=" in err and "make" in err   # how to fix it


def test_library_next_to_the_package(tmp_path):
    """A libtopic.so copied into the package directory is found without
    LIBTOPIC_PATH; a broken LIBTOPIC_PATH then warns and falls back to it."""
    pkg = tmp_path / "site" / "libtopic"
    shutil.copytree(PYDIR / "libtopic", pkg,
                    ignore=shutil.ignore_patterns("__pycache__"))
    real = pathlib.Path(os.environ["LIBTOPIC_PATH"]).resolve()
    shutil.copy(real, pkg / "libtopic.so")
    code = "import libtopic; print(libtopic.library_path); print(libtopic.__version__)"
    env = child_env()
    env.pop("LIBTOPIC_PATH")
    env["PYTHONPATH"] = str(tmp_path / "site")
    r = run_python(code, env=env)
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == [str(pkg / "libtopic.so"), libtopic.__version__]

    env["LIBTOPIC_PATH"] = str(tmp_path / "missing.so")
    r = run_python(code, env=env)
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines()[0] == str(pkg / "libtopic.so")
    assert "RuntimeWarning" in r.stderr and "missing.so" in r.stderr


def test_not_libtopic_is_refused(tmp_path):
    env = child_env(LIBTOPIC_PATH="libc.so.6", LD_LIBRARY_PATH="")
    r = run_python("import libtopic; print(libtopic.library_path)", env=env)
    if r.returncode == 0:
        assert "LIBTOPIC_PATH" not in r.stdout     # found elsewhere, not libc
    else:
        assert "does not export topic_version_number" in r.stderr
