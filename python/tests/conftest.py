"""Fixtures for the libtopic binding's tests.

Run from the top of the source tree with `make check-python`, which sets
LIBTOPIC_PATH to the freshly built lib/libtopic.so.  Run directly
(`/usr/bin/python3 -m pytest python/tests`), the tests use ../../lib/libtopic.so
when LIBTOPIC_PATH is not set and it exists.
"""
import os
import pathlib
import subprocess
import sys

import pytest

PYDIR = pathlib.Path(__file__).resolve().parent.parent
SRCDIR = PYDIR.parent
HEADER = SRCDIR / "include" / "topic.h"

if not os.environ.get("LIBTOPIC_PATH") and (SRCDIR / "lib" / "libtopic.so").exists():
    os.environ["LIBTOPIC_PATH"] = str(SRCDIR / "lib" / "libtopic.so")
elif os.sep in os.environ.get("LIBTOPIC_PATH", ""):
    # A relative path (LIBTOPIC_PATH=lib/libtopic.so) is made absolute: the
    # children some tests start run in other directories, where it would
    # name nothing.  A bare name is left to the system loader.
    os.environ["LIBTOPIC_PATH"] = os.path.abspath(os.environ["LIBTOPIC_PATH"])
sys.path.insert(0, str(PYDIR))

import libtopic  # noqa: E402


@pytest.fixture
def path(tmp_path):
    """A directory for a topic that does not exist yet."""
    return tmp_path / "topic"


@pytest.fixture
def topic(path):
    """A new, empty topic opened for writing; closed after the test."""
    t = libtopic.Topic(path, create=True)
    yield t
    t.close()


def child_env(**extra):
    """The environment for a child Python that imports this source tree."""
    env = dict(os.environ)
    env["PYTHONPATH"] = str(PYDIR) + (os.pathsep + env["PYTHONPATH"]
                                      if env.get("PYTHONPATH") else "")
    env.update(extra)
    return env


def run_python(code, *args, env=None, timeout=20, **kw):
    """Runs `code` in a child /usr/bin/python3 (the interpreter running the
    tests); returns the CompletedProcess."""
    return subprocess.run([sys.executable, "-c", code, *map(str, args)],
                          env=env or child_env(), capture_output=True, text=True,
                          timeout=timeout, **kw)
