"""Topic, Cursor and Record: the Python face of include/topic.h."""

import errno as _errno
import math
import operator
import os
import sys
import threading
import time
import warnings
import weakref
from collections.abc import Mapping
from ctypes import (byref, c_char, c_size_t, c_ubyte, c_uint64, c_void_p,
                    create_string_buffer)
from threading import get_ident as _get_ident
from typing import NamedTuple, Optional, Union

from . import _lib as _L
from .errors import (END, ERDONLY, ETOOSMALL, ClosedError, InvalidArgument,
                     error, strerror)

_lib = _L.lib
_append = _lib.topic_append
_append_batch = _lib.topic_append_batch
_read = _lib.topic_read
_wait = _lib.topic_wait
_cursor_next = _lib.topic_cursor_next

_U64_MAX = (1 << 64) - 1
_I64_MIN = -(1 << 63)
_I64_MAX = (1 << 63) - 1
_ETIMEDOUT = -_errno.ETIMEDOUT
_ENOENT = -_errno.ENOENT
_EINVAL = -_errno.EINVAL

#: How long one topic_wait() call may block.  Waiting forever is done in
#: slices of this length so that Ctrl-C (KeyboardInterrupt) and close() from
#: another thread are noticed within it.
WAIT_SLICE = 0.1

# read() keeps a per-thread buffer for values up to this size; a larger
# value is read into a buffer of its own that is not kept.
_READ_BUF_START = 4096
_READ_BUF_KEEP = 1 << 20

#: The settings the library knows (include/topic.h), in its order.
CONFIG_NAMES = (
    "segment.bytes", "segment.ms", "index.interval.bytes", "max.message.bytes",
    "flush.messages", "flush.ms", "retention.bytes", "retention.ms",
    "compression.type",
)


class Record(NamedTuple):
    """One record of a topic.

    Read from a topic, ``offset`` and ``timestamp`` (ms since the Unix
    epoch) are ints, ``key`` is ``None`` (no key) or bytes, ``value`` is
    bytes (or memoryviews with ``copy=False``).  Given to append_batch(),
    ``offset`` is ignored and ``timestamp`` None (or 0) means now.
    """

    offset: Optional[int] = None
    timestamp: Optional[int] = None
    key: Optional[bytes] = None
    value: Union[bytes, memoryview] = b""


_new_record = tuple.__new__   # Record(...) without the keyword handling

# The whole address space as one array of bytes: _MEM[a:a + n] is the
# quickest way ctypes has to copy n bytes at address a into a new bytes
# object (string_at() is a foreign call, about four times slower).  Only
# ever sliced at addresses the library just handed out.
_MEM = (c_char * sys.maxsize).from_address(0)


# ---------------------------------------------------------------------------
# Argument conversion


def _as_bytes(x, what="value"):
    """bytes for a value or key: bytes as is, str encoded as UTF-8, any other
    bytes-like object copied.  Anything else is a TypeError (in particular an
    int, which bytes() would turn into that many zero bytes)."""
    if type(x) is bytes:
        return x
    if isinstance(x, str):
        return x.encode("utf-8")
    try:
        return memoryview(x).tobytes()
    except TypeError:
        raise TypeError("%s must be bytes, a bytes-like object or str, not %s"
                        % (what, type(x).__name__)) from None


def _offset(x, what="offset"):
    try:
        o = operator.index(x)
    except TypeError:
        raise TypeError("%s must be an int, not %s" % (what, type(x).__name__)) from None
    if not 0 <= o <= _U64_MAX:
        raise ValueError("%s must be between 0 and 2**64-1, not %d" % (what, o))
    return o


def _timestamp(x):
    if x is None:
        return 0
    try:
        ts = operator.index(x)
    except TypeError:
        raise TypeError("timestamp must be an int (milliseconds since the epoch),"
                        " not %s" % type(x).__name__) from None
    if not _I64_MIN <= ts <= _I64_MAX:
        raise ValueError("timestamp %d does not fit in 64 bits" % ts)
    return ts


def _wait_seconds(timeout):
    """wait()'s timeout as a float of seconds, or None to wait as long as
    it takes: for None, for infinity, and for a timeout too large to count
    in milliseconds (beyond about 1e305 seconds, or an int no float holds),
    which used to raise OverflowError even when there was nothing to wait
    for.  Any number float() takes is a timeout (Decimal, Fraction); a
    negative one or NaN is a ValueError."""
    if timeout is None:
        return None
    if isinstance(timeout, (str, bytes, bytearray)):
        raise TypeError("timeout must be a number of seconds or None, not %s"
                        % type(timeout).__name__)
    try:
        seconds = float(timeout)
    except OverflowError:
        seconds = math.inf if timeout > 0 else -math.inf
    except (TypeError, ValueError):
        raise TypeError("timeout must be a number of seconds or None, not %s"
                        % type(timeout).__name__) from None
    if not seconds >= 0:   # NaN too
        raise ValueError("timeout must be >= 0 or None, not %r" % (timeout,))
    if math.isinf(seconds * 1000):
        return None
    return seconds


def _c_string(b, what):
    """b (bytes) as a C string: refused if it holds a NUL byte, where C
    would see the string end and act on a shorter name or path than the
    caller gave, as os.open() refuses it."""
    if b"\0" in b:
        raise ValueError("%s contains a NUL byte: %r" % (what, b))
    return b


_GROUP_RULE = ("a group name is 1 to 128 characters of ASCII letters, digits,"
               " '.', '_' and '-', not starting with '.'")


def _bad_group(name, context=None):
    """The InvalidArgument for a group name the library refused (or that
    cannot even be encoded for it), saying what is wrong with it.  The
    library decides which names are valid; this only explains its -EINVAL,
    so a rule it changes never makes the binding refuse a name it takes."""
    if not name:
        why = "it is empty"
    elif len(name) > 128:
        why = "it is %d characters long" % len(name)
    elif name[0] == ".":
        why = "it starts with '.'"
    elif "\0" in name:
        why = "it contains a NUL byte"
    else:
        bad = [ch for ch in name if not (ch.isascii() and (ch.isalnum() or ch in "._-"))]
        why = "it contains %r" % bad[0] if bad else None
    msg = "invalid group name %r: %s%s" % (name, why + "; " if why else "", _GROUP_RULE)
    return InvalidArgument(_errno.EINVAL, msg, context)


def _group(name):
    if not isinstance(name, str):
        raise TypeError("group must be a str, not %s" % type(name).__name__)
    try:
        b = name.encode("utf-8")
    except UnicodeEncodeError:   # a lone surrogate, e.g. from os.fsdecode()
        raise _bad_group(name) from None
    if b"\0" in b:   # C would see a shorter name: refused like any bad character
        raise _bad_group(name)
    return b


def _config_text(name, value):
    if isinstance(value, str):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    raise TypeError("setting %r: value must be a str or an int, not %s"
                    % (name, type(value).__name__))


class _Config:
    """A topic_config built from a mapping; ValueError for a refused setting."""

    def __init__(self, settings):
        self.ptr = _lib.topic_config_new()
        if not self.ptr:
            raise MemoryError("topic_config_new")
        try:
            for name, value in dict(settings).items():
                if not isinstance(name, str):
                    raise TypeError("setting names must be str, not %s"
                                    % type(name).__name__)
                text = _config_text(name, value)
                rc = _lib.topic_config_set(
                    self.ptr, _c_string(name.encode("utf-8"), "setting name"),
                    _c_string(text.encode("utf-8"), "setting %r: value" % name))
                if rc != 0:
                    msg = _lib.topic_config_error(self.ptr).decode("utf-8", "replace")
                    raise ValueError(msg or "%s: %s" % (name, strerror(rc)))
        except BaseException:
            self.free()
            raise

    def get(self, name):
        buf = create_string_buffer(64)
        rc = _lib.topic_config_get(self.ptr, _c_string(name.encode("utf-8"), "setting name"),
                                   buf, len(buf))
        if rc != 0:
            raise error(rc, "config_get(%r)" % name)
        return buf.value.decode("utf-8")

    def free(self):
        if self.ptr:
            _lib.topic_config_free(self.ptr)
            self.ptr = None


def check_config(config):
    """Checks settings as Topic(config=...) would, without opening anything.

    Returns ``{name: value}`` with every value as the library reads it
    (sizes in plain bytes: ``{"segment.bytes": "64M"}`` gives
    ``{"segment.bytes": "67108864"}``).  Raises ValueError with the library's
    explanation for an unknown name or a bad value."""
    c = _Config(config)
    try:
        return {name: c.get(name) for name in dict(config)}
    finally:
        c.free()


def default_config():
    """Every setting the library knows, with its default, as strings."""
    c = _Config({})
    try:
        return {name: c.get(name) for name in CONFIG_NAMES}
    finally:
        c.free()


# ---------------------------------------------------------------------------
# Zero-copy views
#
# A zero-copy key or value is a read-only memoryview of a ctypes array made
# at the address the library handed out.  Every view derived from it (a
# slice, memoryview(view), a buffer exported to numpy) shares one buffer that
# holds that array, so the array is alive exactly as long as some view of the
# memory is.  The array holds the Cursor that read the record, and the Cursor
# holds its Topic: while any view is alive, garbage collection can close
# neither the cursor (which would free an lz4 batch's decompression buffer)
# nor the topic (which would unmap the segments), so a view never reads
# freed memory because something was collected.
#
# The cursor itself keeps only weak references to the array and the view it
# handed out: strong ones would make a cycle through the array's reference
# to the cursor, and an abandoned cursor would then wait for the cyclic
# collector instead of being closed as soon as its last reference went.  The
# weak references are enough for what the cursor does with them when it
# moves on or is closed: release the view it handed out, and notice through
# the array that the memory is still in use (a derived view outlives that
# release, or the view is exported), which makes moving on or closing
# explicitly a BufferError.


def _make_view(owner, addr, n):
    """A read-only memoryview of n bytes at addr that keeps owner alive, and
    the (array, view) weak references the owner keeps to release it."""
    arr = (c_ubyte * n).from_address(addr)
    arr._owner = owner
    view = memoryview(arr).cast("B").toreadonly()
    return view, (weakref.ref(arr), weakref.ref(view))


def _release_views(entries):
    """Releases the zero-copy views of entries.  Returns those whose memory
    is still in use: the view is exported (a C routine holds its buffer,
    e.g. hashlib reading it in another thread with the GIL released), or a
    view derived from it is alive (a slice, memoryview(view), a numpy
    buffer).  Either way the array is alive, which is what is checked."""
    kept = []
    for entry in entries:
        view = entry[1]()
        if view is not None:
            try:
                view.release()
            except BufferError:      # exported: it stays, and so does the array
                pass
            view = None
        if entry[0]() is not None:
            kept.append(entry)
    return kept


_REENTRANT = (
    "a libtopic.Cursor was called from a signal handler or finaliser that"
    " interrupted a call on the same cursor in the same thread; only close()"
    " and offset may be used that way")

_LEAK_MESSAGE = (
    "a zero-copy key or value (copy=False) is still in use through a slice,"
    " memoryview() or an exported buffer of it; it would point at memory the"
    " cursor reuses.  Copy what you keep with bytes(view) before asking for"
    " the next record")

_IN_USE_MESSAGE = (
    "cannot close %s: a zero-copy key or value (copy=False) read through"
    " %s is still in use, exported to a C routine (e.g. hashed in another"
    " thread) or through a slice, memoryview() or buffer derived from it, and"
    " closing would free the memory under it.  It stays open: drop or copy"
    " (bytes(view)) what uses the view, then close it again")


class _Uncopyable:
    """Refuses copy.copy(), copy.deepcopy() and pickling, with a TypeError
    that says what to do instead (_COPY_HINT).

    A shallow copy would share the C handle, and closing or collecting
    either copy would free it under the other: the next call through the
    other crashes the interpreter.  A deep copy or a pickle cannot make a
    second handle either (and could not carry one to another process), so
    they are refused too, rather than failing on some lock or ctypes field
    inside."""

    __slots__ = ()
    _COPY_WHAT = _COPY_HINT = ""

    def _refuse(self, how):
        raise TypeError("a %s cannot be %s: %s" % (self._COPY_WHAT, how, self._COPY_HINT))

    def __copy__(self):
        self._refuse("copied")

    def __deepcopy__(self, memo):
        self._refuse("copied")

    def __reduce_ex__(self, protocol):
        self._refuse("pickled")

    def __reduce__(self):
        self._refuse("pickled")

    def __getstate__(self):
        self._refuse("pickled")


# ---------------------------------------------------------------------------
# Topic


class Topic(_Uncopyable):
    """An open topic: a durable, append-only log of records in a directory.

    ``Topic(path, create=False, readonly=False, config=None, exclusive=False)``

    - ``create``: create the directory (and the topic) if missing.
    - ``exclusive``: with create, fail with FileExistsError if it exists.
    - ``readonly``: never write, take no writer lock; follows a writer in
      another process.  Consumer positions (commit) still work.
    - ``config``: a mapping of Kafka-style settings, e.g.
      ``{"segment.bytes": "64M", "compression.type": "lz4"}``; values are
      str or int.  A bad name or value raises ValueError.  As topic_open(3)
      says: settings given when the topic is created are stored in it
      (topic.conf), and those not given take their defaults; given when a
      writer opens an existing topic, they override the stored ones and are
      stored too; given with ``readonly=True``, they apply to this handle
      only, over the stored ones, and are not stored (for such a handle
      flush.messages and flush.ms govern when the positions it commits
      reach stable storage).  Without config the stored settings apply.

    Only one writer may have a topic open at a time (Locked otherwise), in
    this process or any other.  Use as a context manager, or call close().
    ``with`` on a topic that is already closed does not raise on entry: the
    calls inside raise ClosedError and leaving it does nothing.  A Topic may
    be shared by threads; see the README for the rules.  It cannot be
    copied or pickled (TypeError): open the directory again instead, in
    this process or another.
    """

    _COPY_WHAT = "libtopic.Topic"
    _COPY_HINT = "open the directory again"

    def __init__(self, path, create=False, readonly=False, config=None, *,
                 exclusive=False):
        self._ptr = None
        self._closing = True          # until it is open: close() does nothing
        self._closer = None
        self._deferred = []
        self._deferred_close = None
        self._calls = []
        self._lock = threading.RLock()
        self._idle = threading.Condition(self._lock)
        self._cursors = weakref.WeakSet()
        self._local = threading.local()
        self.path = os.fspath(path)
        self.readonly = bool(readonly)
        if readonly and create:
            raise ValueError("create=True and readonly=True exclude each other:"
                             " a read-only handle never writes")
        if exclusive and not create:
            raise ValueError("exclusive=True needs create=True")
        flags = ((_L.CREATE if create else 0) | (_L.EXCL if exclusive else 0) |
                 (_L.RDONLY if readonly else 0))
        conf = _Config(config) if config else None
        out = c_void_p()
        try:
            rc = _lib.topic_open(_c_string(os.fsencode(self.path), "path"), flags,
                                 conf.ptr if conf else None, byref(out))
        finally:
            if conf:
                conf.free()
        if rc != 0:
            raise error(rc, "open", filename=self.path)
        self._ptr = out.value
        self._closing = False
        _open_topics.add(self)

    # -- lifetime ---------------------------------------------------------

    # Calls in progress are counted in self._calls, a list to which each
    # call appends the ident of its thread before it looks at self._closing
    # (in _enter), and from which it removes it once the C function has
    # returned; close() sets _closing, then waits for the list to empty
    # before it frees the handle.  list.append/remove are atomic, and each
    # side writes before it reads what the other writes, so either the call
    # sees _closing (and backs out) or close() sees the call (and waits for
    # it): a handle is never freed under a running call.  This costs a
    # fraction of what a lock taken twice per call would.  Every call site
    # reads
    #
    #     me = _get_ident()
    #     calls = self._calls
    #     try:
    #         calls.append(me)
    #         h = self._enter()
    #         ... use h ...
    #     finally:
    #         calls.remove(me)
    #         if self._deferred:
    #             self._run_deferred(me)
    #
    # with the append inside the try and the remove a direct call of the C
    # method: an asynchronous exception (Ctrl-C's KeyboardInterrupt) is only
    # raised after a C method returns or when a Python function starts, so
    # it can neither leave an entry behind nor remove one never made.  A
    # Cursor's methods do the same around taking the cursor's lock, so a
    # thread that holds a cursor lock is always counted as in a call.
    #
    # The idents are what let close() tell calls of other threads, which it
    # waits for, from calls of its own thread.  A signal handler (or a
    # finaliser) runs on a thread between two bytecodes, possibly in the
    # middle of a call on this very topic - a wait() in the main thread, say.
    # A close() there can neither wait for that call (it is below it on the
    # same stack, so it never would return) nor free the handle under it.
    # It marks the topic closing and leaves the rest in self._deferred, for
    # the interrupted call to carry out as it returns (_run_deferred);
    # Cursor.close() defers the same way.  After fork() the calls of threads
    # that do not exist in the child are forgotten (_after_fork_in_child).

    def _enter(self):
        """The handle, for a call already counted in self._calls."""
        if self._closing:
            raise ClosedError(None, "the topic %r is closed" % (self.path,))
        return self._ptr

    def close(self):
        """Syncs everything appended and committed, closes every cursor of
        this topic (their zero-copy views are released) and releases the
        writer lock.  Calling it again does nothing.  Calls in progress in
        other threads finish first (a wait() within WAIT_SLICE); later calls
        raise ClosedError.

        If the memory of a zero-copy view (copy=False) of one of its cursors
        is still in use - the view is being read by a C routine that
        released the GIL, e.g. hashed in another thread, or a slice,
        memoryview() or buffer derived from it is alive - it raises
        BufferError instead, as mmap.close() does, and the topic and its
        cursors stay open and usable: drop what uses the view, then close
        again.  (Garbage collection never needs this: a view keeps its
        cursor and topic alive.)  Calls of other threads that started while
        close() waited for the calls in progress have then raised
        ClosedError all the same, as they have when Ctrl-C interrupts that
        wait (KeyboardInterrupt, and the topic stays open too).

        Called from a signal handler (or a finaliser) that interrupted a call
        on this topic in the same thread, typically the main thread blocked
        in wait() or records(follow=True), it returns at once: the topic is
        closing from then on, and the close completes as the interrupted
        call returns (which then raises ClosedError if it needed the topic
        again; an error of the final sync is raised there too, and so is the
        BufferError of a view still in use, the topic then staying open)."""
        self._close(False)

    def _close(self, force):
        """close(); with force (garbage collection, where nothing alive can
        use the memory of a view), views still in use do not stop it."""
        me = _get_ident()
        with self._lock:
            while True:
                if self._ptr is None:
                    return                     # closed, or never opened
                if not self._closing:
                    self._closing = True
                    break
                if self._closer == me:
                    return                     # reentered: the outer close() ends it
                owner = self._deferred_close
                if self._closer is None and (owner is None or owner not in self._calls):
                    # A close left to a call that then returned without
                    # carrying it out (an exception struck in between), or
                    # no close running at all: it is carried out here.
                    self._deferred_close = None
                    self._deferred = [e for e in self._deferred if e[1] is not self]
                    break
                if owner == me:
                    return                     # the call it interrupted ends it
                self._idle.wait(0.1)           # another thread is closing it
            if me in self._calls:
                # Reached from a signal handler or finaliser while this
                # thread is inside a call on the topic (see above).
                self._deferred_close = me
                self._deferred.append((me, self, force))
                return
            self._closer = me
        self._close_now(force)

    def _close_now(self, force):
        """close() proper, in the thread named by self._closer, which is in
        no call on the topic: waits for the calls of other threads to
        return, then frees every cursor and the handle.  Without force,
        raises BufferError instead if a zero-copy view's memory is still
        in use."""
        try:
            delay = 0.0001
            while self._calls:
                time.sleep(delay)
                delay = min(delay * 2, 0.01)
            # No call is in progress now, and every later one sees _closing
            # and makes no view: the views released here stay released, and
            # an array found dead never comes back.  So what is checked here
            # holds when the memory is freed below.  (A list, so that every
            # cursor releases what it can, not only those before the first
            # with a view in use.)
            if not force and not all([c._drop_views() for c in list(self._cursors)]):
                raise BufferError(_IN_USE_MESSAGE % ("the topic %r" % (self.path,),
                                                     "one of its cursors"))
        except BaseException:
            # Interrupted (Ctrl-C) before anything was freed, or a view in
            # use: the topic stays open and usable, and close() may be
            # called again.
            with self._lock:
                self._closing = False
                self._closer = None
                self._idle.notify_all()
            raise
        # From here on the handle is freed whatever happens: an interrupt is
        # held back until it is, then raised.  (It can only be raised once a
        # C call has returned, so `freed` set just before topic_close() says
        # that it ran; cursors' _release() may be retried.)
        deferred = None
        freed = False
        rc = 0
        while not freed:
            try:
                for c in list(self._cursors):
                    c._release()
                freed = True
                rc = _lib.topic_close(self._ptr)
            except BaseException as e:
                if deferred is None:
                    deferred = e
        with self._lock:
            self._ptr = None
            self._closer = None
            self._deferred = []   # the cursors whose close was left pending are freed
            self._idle.notify_all()
        if deferred is not None:
            raise deferred
        if rc != 0:
            raise error(rc, "close", filename=self.path)

    def _run_deferred(self, me):
        """Carries out the closes (of this topic, of its cursors) that a
        signal handler or finaliser asked for while thread ``me`` was inside
        a call on the topic, once it is out of every such call.  A close
        that a zero-copy view still in use prevents is undone (the cursor
        or topic is open again) and its BufferError raised here, from the
        interrupted call, once the others are carried out."""
        calls = self._calls
        in_use = None
        while me not in calls:
            with self._lock:
                mine = [e for e in self._deferred if e[0] == me]
                if not mine:
                    break
                self._deferred = [e for e in self._deferred if e[0] != me]
            try:
                calls.append(me)
                for _, cursor, force in mine:
                    if cursor is not self and not cursor._release(force):
                        cursor._closed = False     # as an explicit close() leaves it
                        in_use = in_use or BufferError(_IN_USE_MESSAGE % (
                            "the cursor", "it"))
            finally:
                calls.remove(me)
            # The topic's own close last, so that a view in use by one of
            # the cursors undoes only that cursor's close, not the others'.
            # Until _closer is set, an exception that struck above leaves
            # the close to the next close() (see close()).
            with self._lock:
                closing = (self._deferred_close == me and
                           any(obj is self for _, obj, _ in mine))
                if closing:
                    self._deferred_close = None
                    self._closer = me
            if closing:
                # Frees the cursors too; raises a BufferError itself.
                self._close_now(any(f for _, obj, f in mine if obj is self))
                break
            # A handler may have deferred more while those were freed.
        if in_use is not None:
            raise in_use

    def _after_fork(self, me):
        """In the child of fork(), where only thread ``me`` (the one that
        called fork()) exists: forgets what the parent's other threads were
        doing, which no thread here will ever finish."""
        self._lock = threading.RLock()
        self._idle = threading.Condition(self._lock)
        # In place: the frames of calls of thread `me`, if fork() was called
        # inside one, hold this very list.
        self._calls[:] = [i for i in self._calls if i == me]
        self._deferred = [e for e in self._deferred if e[0] == me]
        for c in list(self._cursors):
            c._lock = threading.RLock()
            c._busy = False
        if (self._closer not in (None, me) or
                self._deferred_close not in (None, me)):
            # Another thread was closing it, and may have freed part of it:
            # the child's copy is left alone (a writer's topic_close() in a
            # child does not touch the topic anyway), and counts as closed.
            for c in list(self._cursors):
                c._closed = True
                c._ptr = None
            self._ptr = None
            self._closing = True
            self._closer = self._deferred_close = None
            self._deferred = []

    @property
    def closed(self):
        """True once close() has been called."""
        return self._closing

    def __enter__(self):
        # A closed topic is not refused here: the calls in the block raise
        # ClosedError, and __exit__'s close() does nothing.
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        # Forced: no view of its memory is alive, or it would hold the topic.
        try:
            if self._ptr is not None:
                if not self._closing:
                    warnings.warn("unclosed libtopic.Topic %r" % (self.path,),
                                  ResourceWarning, source=self)
                self._close(True)
        except Exception:
            pass

    def __repr__(self):
        state = "closed" if self._closing else (
            "readonly" if self.readonly else "writer")
        return "<libtopic.Topic %r %s>" % (self.path, state)

    # -- writing ------------------------------------------------------------

    def append(self, value, key=None, timestamp=None):
        """Appends one record; returns its offset.

        ``value`` and ``key`` are bytes-like objects or str (encoded as
        UTF-8).  ``key=None`` is no key (``b""`` is an empty key, kept apart
        from none).  ``timestamp`` is milliseconds since the Unix epoch;
        None (or 0) means now.  With a key or a timestamp the record goes
        through topic_append_batch as a batch of one."""
        if key is not None or timestamp is not None:
            return self.append_batch((Record(None, timestamp, key, value),))
        v = value if type(value) is bytes else _as_bytes(value)
        out = c_uint64()
        me = _get_ident()
        calls = self._calls
        try:
            calls.append(me)
            h = self._enter()
            rc = _append(h, v, len(v), byref(out))
        finally:
            calls.remove(me)
            if self._deferred:
                self._run_deferred(me)
        if rc != 0:
            raise error(rc, "append")
        return out.value

    def append_batch(self, records):
        """Appends several records as one unit: after any crash either all of
        them are there or none is.  Returns the offset of the first (the
        others follow densely); an empty batch appends nothing and returns
        the end offset.

        Each item is a value (bytes-like or str), a ``(key, value)`` or
        ``(key, value, timestamp)`` tuple, or a Record (its offset is
        ignored).  A mapping is refused with TypeError (iterating it would
        give its keys alone): pass ``mapping.items()`` for one record per
        key and value."""
        if isinstance(records, (bytes, bytearray, memoryview, str, Record)):
            raise TypeError("append_batch() takes an iterable of records;"
                            " use append() for a single one")
        if isinstance(records, (list, tuple)):
            items = records
        elif isinstance(records, Mapping):
            # Iterating a mapping gives its keys alone, which would be
            # appended as values, silently dropping the values.
            raise TypeError("append_batch() takes an iterable of records, not a"
                            " mapping (%s); for (key, value) records pass its"
                            " .items()" % type(records).__name__)
        else:
            items = list(records)
        n = len(items)
        arr = (_L.RecordIn * n)()
        for i, item in enumerate(items):
            r = arr[i]
            if isinstance(item, Record):
                key, value, ts = item.key, item.value, item.timestamp
            elif isinstance(item, tuple):
                if len(item) == 2:
                    (key, value), ts = item, None
                elif len(item) == 3:
                    key, value, ts = item
                else:
                    raise TypeError("a record tuple is (key, value) or (key, value,"
                                    " timestamp), not %d items" % len(item))
            else:
                key, value, ts = None, item, None
            v = value if type(value) is bytes else _as_bytes(value)
            r.value = v
            r.value_len = len(v)
            if key is not None:
                k = key if type(key) is bytes else _as_bytes(key, "key")
                r.key = k
                r.key_len = len(k)
            if ts is not None:
                r.timestamp = _timestamp(ts)
        out = c_uint64()
        me = _get_ident()
        calls = self._calls
        try:
            calls.append(me)
            h = self._enter()
            rc = _append_batch(h, arr, n, byref(out))
        finally:
            calls.remove(me)
            if self._deferred:
                self._run_deferred(me)
        if rc != 0:
            raise error(rc, "append_batch(%d records)" % n)
        return out.value

    def sync(self):
        """Returns once every record appended and every position committed
        through this handle is on stable storage.  On a readonly topic it
        makes the positions committed through it durable."""
        me = _get_ident()
        calls = self._calls
        try:
            calls.append(me)
            h = self._enter()
            rc = _lib.topic_sync(h)
        finally:
            calls.remove(me)
            if self._deferred:
                self._run_deferred(me)
        if rc == ERDONLY and self.readonly:
            return   # the committed positions were synced; there is no log to sync
        if rc != 0:
            raise error(rc, "sync")

    def delete_before(self, offset):
        """Makes ``offset`` the start offset: records below it are gone
        (Gone) in every handle and process, and segments holding only such
        records are deleted.  An offset at or below the start offset does
        nothing; one beyond the end offset is an InvalidArgument (a
        ValueError) whose message says so and gives the end offset."""
        offset = _offset(offset)
        end = None
        me = _get_ident()
        calls = self._calls
        try:
            calls.append(me)
            h = self._enter()
            rc = _lib.topic_delete_before(h, offset)
            if rc == _EINVAL:
                end = _lib.topic_end_offset(h)
        finally:
            calls.remove(me)
            if self._deferred:
                self._run_deferred(me)
        if rc == _EINVAL and end is not None and offset > end:
            # The library's -EINVAL means this here; its text alone
            # ("Invalid argument") did not say what was wrong.
            raise InvalidArgument(_errno.EINVAL, "offset %d is past the end offset %d"
                                  % (offset, end), "delete_before(%d)" % offset)
        if rc != 0:
            raise error(rc, "delete_before(%d)" % offset)

    # -- reading ------------------------------------------------------------

    @property
    def start_offset(self):
        """The first offset still stored (0 for a new topic)."""
        me = _get_ident()
        calls = self._calls
        try:
            calls.append(me)
            h = self._enter()
            return _lib.topic_start_offset(h)
        finally:
            calls.remove(me)
            if self._deferred:
                self._run_deferred(me)

    @property
    def end_offset(self):
        """The offset the next append will get.  On a readonly topic it
        includes what a writer has appended since."""
        me = _get_ident()
        calls = self._calls
        try:
            calls.append(me)
            h = self._enter()
            return _lib.topic_end_offset(h)
        finally:
            calls.remove(me)
            if self._deferred:
                self._run_deferred(me)

    def read(self, offset):
        """The value of the record at ``offset``, as bytes.

        Raises EndOfLog at or past the end offset, Gone below the start
        offset, Corrupt if the batch holding it fails its checksum."""
        if type(offset) is not int or not 0 <= offset <= _U64_MAX:
            offset = _offset(offset)
        # The thread's buffer is taken out of self._local while it is in
        # use, and put back once the value is copied out of it: a signal
        # handler or finaliser that runs in this thread in between (after
        # the C call, before the copy) and reads too finds none there and
        # makes its own, instead of overwriting this value with its own.
        local = self._local
        buf = getattr(local, "buf", None)
        if buf is None:
            buf = create_string_buffer(_READ_BUF_START)
        else:
            local.buf = None
        keep = buf
        n = c_size_t()
        me = _get_ident()
        calls = self._calls
        try:
            calls.append(me)
            h = self._enter()
            rc = _read(h, offset, buf, len(buf), byref(n))
            while rc == ETOOSMALL:
                # The size it reports; retried, as a record never changes
                # (a deletion in between reports Gone instead).
                buf = create_string_buffer(max(n.value, 1))
                if n.value <= _READ_BUF_KEEP:
                    keep = buf
                rc = _read(h, offset, buf, len(buf), byref(n))
        finally:
            calls.remove(me)
            if self._deferred:
                self._run_deferred(me)
        if rc != 0:
            local.buf = keep
            raise error(rc, "read(%d)" % offset)
        value = buf[:n.value]
        local.buf = keep
        return value

    def read_into(self, offset, buffer):
        """Copies the value at ``offset`` into ``buffer`` (a writable,
        contiguous bytes-like object, e.g. a bytearray) and returns its length.  If it
        does not fit, raises BufferTooSmall with ``.needed`` set and copies
        nothing."""
        offset = _offset(offset)
        mv = memoryview(buffer)
        if mv.readonly:
            raise TypeError("read_into() needs a writable buffer")
        if not mv.c_contiguous:
            mv.release()
            raise TypeError("read_into() needs a contiguous buffer, not a strided view")
        mv = mv.cast("B") if mv.format != "B" or mv.ndim != 1 else mv
        cap = mv.nbytes
        arr = (c_ubyte * cap).from_buffer(mv) if cap else None
        n = c_size_t()
        me = _get_ident()
        calls = self._calls
        try:
            calls.append(me)
            h = self._enter()
            rc = _read(h, offset, arr, cap, byref(n))
        finally:
            calls.remove(me)
            del arr
            mv.release()
            if self._deferred:
                self._run_deferred(me)
        if rc == ETOOSMALL:
            e = error(rc, "read_into(%d, %d-byte buffer): needs %d bytes"
                      % (offset, cap, n.value))
            e.needed = n.value
            raise e
        if rc != 0:
            raise error(rc, "read_into(%d)" % offset)
        return n.value

    def wait(self, offset, timeout=None):
        """Waits until a record at ``offset`` exists.  Returns True once it
        does (at once if it already does), False after ``timeout`` seconds
        (a number; 0 only checks; None, infinity or a timeout too large to
        count in milliseconds, beyond about 1e305 seconds, waits forever).
        Wakes for appends through any handle in any process; interruptible
        by Ctrl-C."""
        return self._wait(_offset(offset), timeout, None)

    def _wait(self, offset, timeout, cursor):
        """wait(); with a cursor, ClosedError within WAIT_SLICE of its close
        (from any thread), as for the topic's."""
        timeout = _wait_seconds(timeout)
        if timeout is not None:
            deadline = time.monotonic() + timeout
        slice_ms = int(WAIT_SLICE * 1000)
        me = _get_ident()
        calls = self._calls
        while True:
            if cursor is not None and cursor._closed:
                self._enter()      # the topic's close, if it was that, is the cause
                raise ClosedError(None, "the cursor is closed")
            if timeout is None:
                ms = slice_ms
            else:
                left = deadline - time.monotonic()
                ms = max(0, min(slice_ms, math.ceil(left * 1000)))
            try:
                calls.append(me)
                h = self._enter()
                rc = _wait(h, offset, ms)
            finally:
                calls.remove(me)
                if self._deferred:
                    self._run_deferred(me)
            if rc == 0:
                return True
            if rc != _ETIMEDOUT:
                raise error(rc, "wait(%d)" % offset)
            if timeout is not None and time.monotonic() >= deadline:
                return False

    def cursor(self, offset=None):
        """A Cursor positioned at ``offset`` (None: the start offset)."""
        return Cursor(self, offset)

    def records(self, start=None, follow=False, copy=True):
        """Iterates over the records from offset ``start`` (None: the start
        offset), yielding Record(offset, timestamp, key, value).

        At the end of the log it stops, or with ``follow=True`` waits for new
        records (forever; Ctrl-C ends it with KeyboardInterrupt, closing the
        topic with ClosedError, and the iterator's close(), from any thread,
        with StopIteration).  Once stopped it stays stopped, unlike a Cursor.

        With ``copy=False`` key and value are read-only memoryviews of the
        library's memory, valid only until the next record is asked for (or
        the iterator or topic is closed): they are released then, and
        BufferError is raised if a slice or other view derived from one is
        still alive.  Use bytes(view) to keep anything.  Garbage collection
        never invalidates them: while one is alive it keeps the iterator's
        cursor and the topic from being collected.

        The cursor is opened at once (Gone if ``start`` was deleted)."""
        return _Records(Cursor(self, start), follow, copy)

    def __iter__(self):
        return self.records()

    # -- consumer positions ---------------------------------------------------

    def commit(self, group, offset):
        """Records ``offset`` (by convention the next offset the group will
        read) as the committed position of consumer ``group``.  Works on
        readonly topics too.  Atomic; durable against a process crash at
        once, against power loss per flush.messages / flush.ms / sync().
        Group names are 1-128 of ``[A-Za-z0-9._-]``, not starting with '.';
        others raise InvalidArgument (a ValueError)."""
        g = _group(group)
        offset = _offset(offset)
        me = _get_ident()
        calls = self._calls
        try:
            calls.append(me)
            h = self._enter()
            rc = _lib.topic_commit(h, g, offset)
        finally:
            calls.remove(me)
            if self._deferred:
                self._run_deferred(me)
        if rc == _EINVAL:
            raise _bad_group(group, "commit(%r, %d)" % (group, offset))
        if rc != 0:
            raise error(rc, "commit(%r, %d)" % (group, offset))

    def committed(self, group):
        """The committed position of ``group``, or None if it never
        committed one."""
        g = _group(group)
        out = c_uint64()
        me = _get_ident()
        calls = self._calls
        try:
            calls.append(me)
            h = self._enter()
            rc = _lib.topic_committed(h, g, byref(out))
        finally:
            calls.remove(me)
            if self._deferred:
                self._run_deferred(me)
        if rc == _ENOENT:
            return None
        if rc == _EINVAL:
            raise _bad_group(group, "committed(%r)" % (group,))
        if rc != 0:
            raise error(rc, "committed(%r)" % (group,))
        return out.value

    def groups(self):
        """The names of the groups that have committed a position, sorted."""
        cap = 256
        n = c_size_t()
        me = _get_ident()
        calls = self._calls
        try:
            calls.append(me)
            h = self._enter()
            while True:
                buf = create_string_buffer(cap)
                rc = _lib.topic_groups(h, buf, cap, byref(n))
                if rc != ETOOSMALL:
                    break
                cap = max(n.value, cap * 2)
        finally:
            calls.remove(me)
            if self._deferred:
                self._run_deferred(me)
        if rc != 0:
            raise error(rc, "groups")
        raw = buf.raw[:n.value]
        return [s.decode("utf-8", "replace") for s in raw.split(b"\0")[:-1]]


# ---------------------------------------------------------------------------
# Cursor


class Cursor(_Uncopyable):
    """A reading position in a topic, with keys and timestamps.

    Made by ``topic.cursor(offset)``.  ``next()`` returns the Record at the
    position and advances, or None at the end of the log (call again once
    more records exist).  Iterating a cursor yields records until the end of
    the log; unlike most iterators, a cursor that has raised StopIteration
    can be iterated again, and goes on from where it stopped once more
    records exist.  (The iterator of Topic.records() does not: once it has
    stopped, it stays stopped.)

    A cursor may be used by one thread at a time (calls from several threads
    are serialised); use one cursor per reading thread.  Close it, or use it
    as a context manager; closing the topic closes its cursors.  Closing it
    from another thread ends a wait() on it with ClosedError.  It cannot be
    copied or pickled (TypeError): open another cursor with
    ``topic.cursor(offset)``.
    """

    _COPY_WHAT = "libtopic.Cursor"
    _COPY_HINT = "open another one with topic.cursor(offset)"

    def __init__(self, topic, offset=None):
        self._ptr = None
        self._closed = True           # until it is open: close() does nothing
        self._lock = threading.RLock()
        self._busy = False
        self._views = []
        self._rec = _L.RecordOut()
        if not isinstance(topic, Topic):
            raise TypeError("a Cursor reads a libtopic.Topic, not %s"
                            % ("None" if topic is None else type(topic).__name__))
        self._topic = topic
        out = c_void_p()
        me = _get_ident()
        calls = topic._calls
        try:
            calls.append(me)
            h = topic._enter()
            off = _lib.topic_start_offset(h) if offset is None else _offset(offset)
            rc = _lib.topic_cursor_open(h, off, byref(out))
            if rc == 0:
                self._ptr = out.value
                self._closed = False
                topic._cursors.add(self)   # before the call ends, so that close() finds it
        finally:
            calls.remove(me)
            if topic._deferred:
                topic._run_deferred(me)
        if rc != 0:
            raise error(rc, "cursor(%d)" % off)

    def _check(self):
        if self._closed:
            raise ClosedError(None, "the cursor is closed")

    # Every method counts itself as a call on the topic (see Topic) around
    # taking the cursor's lock, so that a close() reached from a signal
    # handler or finaliser in the thread holding the lock defers to it
    # instead of waiting for the lock forever.  The lock is reentrant so
    # that any other call reached that way does not wait forever either:
    # _busy, set while an operation is under way, makes it a RuntimeError
    # (the cursor's record and views are half made), while between two
    # operations it may go ahead.

    def _next(self, copy):
        """next() for a thread counted in the topic's calls, holding the lock."""
        if self._views:
            self._views = _release_views(self._views)
            if self._views:
                raise BufferError(_LEAK_MESSAGE)
        self._topic._enter()
        self._check()
        r = self._rec
        rc = _cursor_next(self._ptr, r)
        if rc != 0:
            if rc == END:
                return None
            raise error(rc, "cursor next(%d)" % _lib.topic_cursor_offset(self._ptr))
        kl = r.key_len
        vl = r.value_len
        if copy:
            key = None if r.key is None else (_MEM[r.key:r.key + kl] if kl else b"")
            value = _MEM[r.value:r.value + vl] if vl else b""
        else:
            key = None
            if r.key is not None:
                key = memoryview(b"")
                if kl:
                    key, entry = _make_view(self, r.key, kl)
                    self._views.append(entry)
            value = memoryview(b"")
            if vl:
                value, entry = _make_view(self, r.value, vl)
                self._views.append(entry)
        return _new_record(Record, (r.offset, r.timestamp, key, value))

    def next(self, copy=True):
        """The record at the position, advancing by one; None at the end.

        With ``copy=False`` key and value are read-only memoryviews valid
        until the next call on this cursor or its close (then released;
        BufferError if something derived from them is still alive).  A view,
        and anything derived from it, keeps the cursor and its topic from
        being garbage-collected while it is alive, so that it never sees
        their memory freed."""
        return self._busy_call(self._next, copy)

    def _busy_call(self, fn, *args):
        """Runs fn(*args) as a call in progress on the topic (which close()
        waits for, or leaves to finish the close; see Topic._enter), holding
        the cursor's lock and marked busy, so that a signal handler or a
        finaliser that interrupted it on this thread gets RuntimeError
        instead of a deadlock on the lock its own thread holds."""
        t = self._topic
        me = _get_ident()
        calls = t._calls
        try:
            calls.append(me)
            with self._lock:
                if self._busy:
                    raise RuntimeError(_REENTRANT)
                self._busy = True
                try:
                    return fn(*args)
                finally:
                    self._busy = False
        finally:
            calls.remove(me)
            if t._deferred:
                t._run_deferred(me)

    def __iter__(self):
        return self

    def __next__(self):
        rec = self.next()
        if rec is None:
            raise StopIteration
        return rec

    def seek(self, offset):
        """Moves to ``offset`` (Gone if it was deleted)."""
        offset = _offset(offset)
        self._call(_lib.topic_cursor_seek, offset, "seek(%d)" % offset)

    def seek_time(self, timestamp_ms):
        """Moves to the first record, in offset order, whose timestamp is >=
        ``timestamp_ms``; to the end offset if there is none."""
        if timestamp_ms is None:   # _timestamp's "now" is for appends only
            raise TypeError("timestamp_ms must be an int (milliseconds since the epoch),"
                            " not None")
        ts = _timestamp(timestamp_ms)
        self._call(_lib.topic_cursor_seek_time, ts, "seek_time(%d)" % ts)

    def _call(self, fn, arg, what):
        rc = self._busy_call(self._move, fn, arg)
        if rc != 0:
            raise error(rc, what)

    def _move(self, fn, arg):
        # Under _busy_call: the views of the record the cursor leaves go first.
        self._views = _release_views(self._views)
        if self._views:
            raise BufferError(_LEAK_MESSAGE)
        self._topic._enter()
        self._check()
        return fn(self._ptr, arg)

    @property
    def offset(self):
        """The offset the next call of next() returns."""
        t = self._topic
        me = _get_ident()
        calls = t._calls
        try:
            calls.append(me)
            with self._lock:
                # Only reads: it cannot disturb an operation it interrupted.
                t._enter()
                self._check()
                return _lib.topic_cursor_offset(self._ptr)
        finally:
            calls.remove(me)
            if t._deferred:
                t._run_deferred(me)

    def wait(self, timeout=None):
        """Waits until a record exists at the cursor's position: True, or
        False after ``timeout`` seconds (as for Topic.wait(): None, infinity
        or a timeout too large to count in milliseconds waits forever).  Closing the cursor
        (or its topic) from another thread ends the wait with ClosedError
        within WAIT_SLICE."""
        return self._topic._wait(self.offset, timeout, self)

    def _drop_views(self):
        """Releases the zero-copy views it can; False if the memory of one
        is still in use (see _release_views)."""
        with self._lock:
            self._views = _release_views(self._views)
            return not self._views

    def _release(self, force=True):
        """Frees the C cursor and releases every zero-copy view.  Without
        force it does neither, and returns False, if the memory of a view is
        still in use (it releases the views it can)."""
        with self._lock:
            self._views = _release_views(self._views)
            if self._views and not force:
                return False
            self._views = []
            self._closed = True
            ptr, self._ptr = self._ptr, None
            # A cursor the topic's close() did not reach (it never should)
            # is left alone once the topic is freed, rather than touched.
            if ptr is not None and self._topic._ptr is not None:
                _lib.topic_cursor_close(ptr)
        self._topic._cursors.discard(self)
        return True

    def close(self):
        """Closes the cursor; again does nothing.  Safe from any thread: a
        wait() on it in another thread ends with ClosedError.

        If the memory of a zero-copy view (copy=False) it returned is still
        in use - the view is being read by a C routine that released the
        GIL, e.g. hashed in another thread, or a slice, memoryview() or
        buffer derived from it is alive - it raises BufferError instead and
        the cursor stays open and usable: drop what uses the view, then
        close again.  (Garbage collection never needs this: a view keeps
        its cursor alive.)

        Called from a signal handler or finaliser that interrupted a call on
        the topic in the same thread, the cursor counts as closed at once and
        is freed as that call returns (a view still in use then reopens it,
        and the BufferError is raised from that call)."""
        self._close(False)

    def _close(self, force):
        """close(); with force (garbage collection, where nothing alive can
        use the memory of a view), views still in use do not stop it."""
        # On _ptr, not _closed: a close that was interrupted, or left to a
        # call that an exception cut short, is carried out by the next one.
        if self._ptr is None:
            self._closed = True
            return
        t = self._topic
        me = _get_ident()
        if t._closer == me:
            self._closed = True        # the topic's close() in this thread frees it
            return
        calls = t._calls
        if me in calls:
            # This thread is inside a call on the topic, perhaps on this very
            # cursor (holding its lock): see Topic.
            self._closed = True        # ends a wait() on it within WAIT_SLICE
            with t._lock:
                t._deferred.append((me, self, force))
            return
        try:
            calls.append(me)
            if not self._release(force):
                raise BufferError(_IN_USE_MESSAGE % ("the cursor", "it"))
        finally:
            calls.remove(me)
            if t._deferred:
                t._run_deferred(me)

    @property
    def closed(self):
        return self._closed

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        # Forced: no view of its memory is alive, or it would hold the cursor.
        try:
            self._close(True)
        except Exception:
            pass

    def __repr__(self):
        return "<libtopic.Cursor of %r%s>" % (
            self._topic.path, " closed" if self._closed else "")


class _Records(_Uncopyable):
    """The iterator Topic.records() returns.  Not a generator: a generator
    is finished by the first exception it raises, and a BufferError (a view
    of the last record still alive) must leave the iteration where it was,
    to go on once the view is dropped, as with a Cursor.  Any other
    exception, the end of the log or close() ends it for good and closes
    the cursor.

    Dropping the iterator does not close the cursor itself: the cursor
    closes when its last reference goes, which a zero-copy view of one of
    its records (copy=False) holds for as long as it is alive.  Like its
    cursor, it cannot be copied or pickled."""

    _COPY_WHAT = "libtopic records() iterator"
    _COPY_HINT = "call records() again, with the offset to start from"

    def __init__(self, cur, follow, copy):
        self._cur = cur
        self._follow = follow
        self._copy = copy

    def __iter__(self):
        return self

    def __next__(self):
        cur = self._cur
        if cur is None:
            raise StopIteration
        try:
            while True:
                rec = cur.next(self._copy)
                if rec is not None:
                    return rec
                if not self._follow:
                    break
                cur._topic._wait(cur.offset, None, cur)
        except BufferError:
            raise
        except ClosedError:
            if self._cur is None:
                # close() was called, from another thread or a signal
                # handler: the iteration just ends.
                raise StopIteration from None
            self._end()
            raise
        except BaseException:
            self._end()
            raise
        self._end()
        raise StopIteration

    def _end(self):
        """Ends the iteration for good, at the end of the log or an error.
        A cursor whose views are still in use is not closed (which would
        raise BufferError in place of the end or the error): it is dropped,
        and closes as soon as the last view goes."""
        cur, self._cur = self._cur, None
        if cur is not None:
            try:
                cur.close()
            except BufferError:
                pass

    def close(self):
        """Ends the iteration and closes its cursor; again does nothing.
        From another thread, a next() waiting for records (follow=True)
        returns within WAIT_SLICE by raising StopIteration.  As for
        Cursor.close(), a zero-copy view whose memory is still in use makes
        it raise BufferError, and the iteration stays where it was."""
        cur, self._cur = self._cur, None
        if cur is not None:
            try:
                cur.close()
            except BufferError:
                self._cur = cur
                raise


# Every open Topic, for _after_fork_in_child.
_open_topics = weakref.WeakSet()


def _after_fork_in_child():
    me = _get_ident()
    for t in list(_open_topics):
        t._after_fork(me)


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
