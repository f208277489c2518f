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
        import faulthandler, signal, sys, libtopic
        # Should it ever hang, its stacks go to stderr for the report.
        faulthandler.dump_traceback_later(8, exit=False)
        # Ctrl-C as at a terminal, even when the tests run as a background
        # job of a shell, whose children inherit SIGINT ignored (and Python
        # then installs no handler of its own).
        signal.signal(signal.SIGINT, signal.default_int_handler)
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
    assert time.monotonic() - sent < 3, (out, err)
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


# close() in a signal handler while the main thread waits: close() used to
# wait for the interrupted call to return, which it never could, being
# further down the same stack.  Now the close completes as that call returns.
# "iterator" closes the records() iterator instead, which used to leave the
# follower asleep for good.
SIGNAL_CLOSE = textwrap.dedent("""
    import signal, sys, libtopic
    path, mode = sys.argv[1], sys.argv[2]
    t = libtopic.Topic(path, create=True)
    t.append(b"kept")
    it = t.records(1, follow=True)

    def on_alarm(signum, frame):
        if mode == "iterator":
            it.close()
        else:
            t.close()
        print("handler returned", flush=True)

    signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, 0.3)
    try:
        if mode == "wait":
            t.wait(1)
        else:
            for rec in it:
                pass
        print("ended", flush=True)
    except libtopic.ClosedError:
        print("ClosedError", flush=True)
    print("closed" if t.closed else "open", flush=True)
    t.close()
    with libtopic.Topic(path) as t:       # the writer lock was released
        print(t.read(0).decode(), flush=True)
""")


@pytest.mark.parametrize("mode, outcome, state", [
    ("wait", "ClosedError", "closed"),
    ("follow", "ClosedError", "closed"),
    ("iterator", "ended", "open"),
])
def test_close_from_a_signal_handler_during_a_wait(path, mode, outcome, state):
    start = time.monotonic()
    try:
        r = run_python(SIGNAL_CLOSE, path, mode, timeout=8)
    except subprocess.TimeoutExpired:
        pytest.fail("close() in a signal handler hung")
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == ["handler returned", outcome, state, "kept"]
    assert time.monotonic() - start < 5


# fork() while another thread is inside wait(): the child's copy of the
# binding's bookkeeping counted that call, which no thread of the child will
# ever end, and close() in the child waited for it forever.
FORK_CLOSE = textwrap.dedent("""
    import os, sys, threading, time, libtopic
    t = libtopic.Topic(sys.argv[1], create=True)
    woke = []
    waiter = threading.Thread(target=lambda: woke.append(t.wait(0, timeout=10)))
    waiter.start()
    time.sleep(0.3)                        # the waiter is inside wait() now
    pid = os.fork()
    if pid == 0:
        try:
            t.close()
            os._exit(0 if t.closed else 1)
        except BaseException:
            os._exit(2)
    deadline = time.monotonic() + 5
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            print("child exit", os.WEXITSTATUS(status) if os.WIFEXITED(status)
                  else "signal %d" % os.WTERMSIG(status), flush=True)
            break
        if time.monotonic() > deadline:
            os.kill(pid, 9)
            os.waitpid(pid, 0)
            print("child hung", flush=True)
            break
        time.sleep(0.02)
    t.append(b"after the fork")            # the parent's topic is untouched
    waiter.join(5)
    print(woke, t.read(0).decode(), flush=True)
    t.close()
""")


def test_close_in_a_forked_child_while_a_thread_waits(path):
    r = run_python(FORK_CLOSE, path, timeout=15)
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == ["child exit 0", "[True] after the fork"]


# A forked child's copy of a writer topic refuses to write with Failed, as
# topic_open(3) says; its message used to say only that "an earlier write or
# sync failed", which nothing had, and sent the reader looking for an I/O
# error (outside tester).  It names the fork now.
FORK_WRITE = textwrap.dedent("""
    import os, sys, libtopic
    t = libtopic.Topic(sys.argv[1], create=True)
    t.append(b"parent")
    pid = os.fork()
    if pid == 0:
        try:
            t.append(b"child")
            os._exit(1)
        except libtopic.Failed as e:
            os._exit(0 if "fork" in str(e) else 2)
        except BaseException:
            os._exit(3)
    _, status = os.waitpid(pid, 0)
    print("child exit", os.WEXITSTATUS(status), flush=True)
    print(t.append(b"parent again"), flush=True)
    t.close()
""")


def test_forked_child_write_names_the_fork(path):
    r = run_python(FORK_WRITE, path, timeout=15)
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == ["child exit 0", "1"]
