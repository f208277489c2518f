"""Loading libtopic.so and declaring every function of include/topic.h.

The library is looked for, in this order:

1. the file named by the environment variable ``LIBTOPIC_PATH``;
2. ``libtopic.so`` / ``libtopic.so.0`` in this package's directory;
3. the system loader: ``libtopic.so.0`` (the SONAME), then whatever
   ``ctypes.util.find_library("topic")`` finds, then ``libtopic.so``.

If none loads, importing the package raises an ImportError that lists every
path tried, with the loader's reason, and how to fix it.

Every function gets its ``argtypes`` and ``restype``: without them ctypes
passes and returns C ints, which would truncate 64-bit offsets.  Handles are
passed as ``c_void_p``.  Functions are called through a ``CDLL``, so the GIL
is released for the duration of each call.
"""

import ctypes
import ctypes.util
import os
import warnings
from ctypes import (POINTER, Structure, c_char_p, c_int, c_int64, c_size_t,
                    c_uint64, c_void_p)

#: The major version of the C API this binding was written against.  The
#: layout of ``topic_record`` and the meaning of every function are fixed
#: within one major version.
API_MAJOR = 0

_ENV = "LIBTOPIC_PATH"
_HERE = os.path.dirname(os.path.abspath(__file__))


class RecordIn(Structure):
    """``topic_record`` as passed to ``topic_append_batch``.

    The ``key`` and ``value`` fields are ``c_char_p`` so that assigning a
    ``bytes`` object stores a pointer to its buffer *and* keeps the object
    alive for as long as the structure (ctypes records it in ``_objects``).
    ``None`` stores NULL (an absent key); ``b""`` stores a non-NULL pointer
    (an empty key, which the format keeps apart from an absent one).
    """

    _fields_ = [
        ("offset", c_uint64),
        ("timestamp", c_int64),
        ("key", c_char_p),
        ("key_len", c_size_t),
        ("value", c_char_p),
        ("value_len", c_size_t),
    ]


class RecordOut(Structure):
    """``topic_record`` as filled by ``topic_cursor_next``: raw addresses.

    The pointers name memory the cursor owns (the mapped segment, or the
    cursor's decompression buffer) and stay valid until the next call on
    that cursor or its close.
    """

    _fields_ = [
        ("offset", c_uint64),
        ("timestamp", c_int64),
        ("key", c_void_p),
        ("key_len", c_size_t),
        ("value", c_void_p),
        ("value_len", c_size_t),
    ]


# name: (restype, argtypes).  Exactly the functions of include/topic.h.
_PROTOTYPES = {
    "topic_strerror": (c_char_p, [c_int]),
    "topic_version": (c_char_p, []),
    "topic_version_number": (c_int, []),
    "topic_config_new": (c_void_p, []),
    "topic_config_set": (c_int, [c_void_p, c_char_p, c_char_p]),
    "topic_config_get": (c_int, [c_void_p, c_char_p, c_void_p, c_size_t]),
    "topic_config_error": (c_char_p, [c_void_p]),
    "topic_config_free": (None, [c_void_p]),
    "topic_open": (c_int, [c_char_p, c_int, c_void_p, POINTER(c_void_p)]),
    "topic_close": (c_int, [c_void_p]),
    "topic_append": (c_int, [c_void_p, c_char_p, c_size_t, POINTER(c_uint64)]),
    "topic_append_batch": (c_int, [c_void_p, POINTER(RecordIn), c_size_t,
                                   POINTER(c_uint64)]),
    "topic_sync": (c_int, [c_void_p]),
    "topic_read": (c_int, [c_void_p, c_uint64, c_void_p, c_size_t,
                           POINTER(c_size_t)]),
    "topic_cursor_open": (c_int, [c_void_p, c_uint64, POINTER(c_void_p)]),
    "topic_cursor_next": (c_int, [c_void_p, POINTER(RecordOut)]),
    "topic_cursor_seek": (c_int, [c_void_p, c_uint64]),
    "topic_cursor_seek_time": (c_int, [c_void_p, c_int64]),
    "topic_cursor_offset": (c_uint64, [c_void_p]),
    "topic_cursor_close": (None, [c_void_p]),
    "topic_start_offset": (c_uint64, [c_void_p]),
    "topic_end_offset": (c_uint64, [c_void_p]),
    "topic_wait": (c_int, [c_void_p, c_uint64, c_int]),
    "topic_delete_before": (c_int, [c_void_p, c_uint64]),
    "topic_commit": (c_int, [c_void_p, c_char_p, c_uint64]),
    "topic_committed": (c_int, [c_void_p, c_char_p, POINTER(c_uint64)]),
    "topic_groups": (c_int, [c_void_p, c_void_p, c_size_t, POINTER(c_size_t)]),
}

# Flags of topic_open().
CREATE = 0x1
EXCL = 0x2
RDONLY = 0x4


def _candidates():
    """Yields (description, what to give dlopen, whether it must exist as a
    file first) in search order."""
    env = os.environ.get(_ENV)
    if env:
        yield "%s=%s" % (_ENV, env), env, False
    for name in ("libtopic.so", "libtopic.so.0"):
        path = os.path.join(_HERE, name)
        yield path, path, True
    yield "libtopic.so.0 (system loader)", "libtopic.so.0", False
    try:
        found = ctypes.util.find_library("topic")
    except Exception:  # find_library runs tools that may be missing
        found = None
    if not found:
        yield 'ctypes.util.find_library("topic")', None, False
    elif found != "libtopic.so.0":
        yield "%s (ctypes.util.find_library)" % found, found, False
    yield "libtopic.so (system loader)", "libtopic.so", False


def _load():
    tried = []
    env_failed = None
    for desc, target, must_exist in _candidates():
        if target is None:
            tried.append("%s: not found" % desc)
            continue
        if must_exist and not os.path.exists(target):
            tried.append("%s: no such file" % desc)
            continue
        try:
            lib = ctypes.CDLL(target)
        except OSError as e:
            tried.append("%s: %s" % (desc, e))
            if desc.startswith(_ENV + "="):
                env_failed = tried[-1]
            continue
        try:
            lib.topic_version_number
        except AttributeError:
            tried.append("%s: loaded, but it does not export topic_version_number"
                         " (not libtopic?)" % desc)
            continue
        if env_failed is not None:
            warnings.warn("libtopic: %s could not be loaded (%s); using %s instead"
                          % (_ENV, env_failed, desc), RuntimeWarning, stacklevel=3)
        return lib, desc
    raise ImportError(
        "libtopic: the C library libtopic.so could not be loaded.  Tried:\n  "
        + "\n  ".join(tried)
        + "\nTo fix it, build the library (`make` in the libtopic source tree) and"
          " point LIBTOPIC_PATH at it, e.g.\n"
          "  export LIBTOPIC_PATH=/path/to/libtopic/lib/libtopic.so\n"
          "or install it system-wide (`make install`, then `ldconfig`), or copy"
          " libtopic.so into %s." % _HERE)


def _declare(lib):
    for name, (restype, argtypes) in _PROTOTYPES.items():
        try:
            fn = getattr(lib, name)
        except AttributeError:
            raise ImportError("libtopic: the loaded library lacks %s(); it is older"
                              " than this binding expects" % name) from None
        fn.restype = restype
        fn.argtypes = argtypes


# lib_origin is the description of the candidate that loaded (see
# _candidates), shown to users as libtopic.library_path: a path only for
# the files in this package's directory.
lib, lib_origin = _load()
_declare(lib)

version = lib.topic_version().decode("ascii")
version_number = lib.topic_version_number()
if version_number // 10000 != API_MAJOR:
    raise ImportError(
        "libtopic: %s is version %s, but this binding was written for major"
        " version %d of the C API" % (lib_origin, version, API_MAJOR))
