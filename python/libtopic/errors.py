"""Exceptions: every negative return of the C library becomes one of these.

::

    TopicError                      base; .code (the C code), .message
    ├── EndOfLog                    TOPIC_END       offset >= end offset
    ├── Gone                        TOPIC_EGONE     offset < start offset (deleted)
    ├── Corrupt                     TOPIC_ECORRUPT  a checksum or format check failed
    ├── Locked                      TOPIC_ELOCKED   another writer has the topic open
    ├── TooBig                      TOPIC_ETOOBIG   record/batch > max.message.bytes
    ├── BufferTooSmall              TOPIC_ETOOSMALL read_into(): .needed bytes
    ├── Failed                      TOPIC_EFAILED   an earlier write/sync failed
    ├── ReadOnly                    TOPIC_ERDONLY   write on a readonly=True topic
    ├── UnsupportedVersion          TOPIC_EVERSION  written by a newer format
    ├── ClosedError (+ValueError)   the Topic or Cursor was closed (.code None)
    └── TopicOSError (+OSError)     a negative errno; .errno is set
        ├── TopicFileNotFoundError  (+FileNotFoundError)   ENOENT
        ├── TopicFileExistsError    (+FileExistsError)     EEXIST
        ├── TopicNotADirectoryError (+NotADirectoryError)  ENOTDIR
        ├── TopicPermissionError    (+PermissionError)     EACCES, EPERM
        ├── TopicTimeoutError       (+TimeoutError)        ETIMEDOUT
        └── InvalidArgument         (+ValueError)          EINVAL

Invalid settings are refused with a plain ``ValueError`` carrying the
library's explanation (``topic_config_error``).
"""

import errno as _errno
import operator as _operator
from ctypes import c_int as _c_int, sizeof as _sizeof

from ._lib import lib as _lib

# The library's codes (include/topic.h, TOPIC_ERRNO_MAP).  The test suite
# checks them against the header.
END = -30801
EGONE = -30802
ECORRUPT = -30803
ELOCKED = -30804
ETOOBIG = -30805
ETOOSMALL = -30806
EFAILED = -30807
ERDONLY = -30808
EVERSION = -30809


_INT_BITS = 8 * _sizeof(_c_int)
_INT_MIN = -(1 << (_INT_BITS - 1))
_INT_MAX = (1 << (_INT_BITS - 1)) - 1


def strerror(code):
    """The library's message for a code: 0, a TOPIC_* code or a -errno;
    ``"unknown error code"`` for any other int a C int holds.

    Like offsets and timestamps, ``code`` must be an int (TypeError
    otherwise) in the range of its C type (ValueError otherwise): ctypes
    would silently keep only the low bits of a larger one, and 2**40 would
    read as 0, "success"."""
    try:
        c = _operator.index(code)
    except TypeError:
        raise TypeError("code must be an int, not %s" % type(code).__name__) from None
    if not _INT_MIN <= c <= _INT_MAX:
        raise ValueError("code %d is out of range: error codes are C ints (%d to %d)"
                         % (c, _INT_MIN, _INT_MAX))
    return _lib.topic_strerror(c).decode("utf-8", "replace")


class TopicError(Exception):
    """Base of every libtopic error.

    ``code`` is the negative number the C function returned (None for errors
    raised by the binding itself), ``message`` the library's text for it
    (topic_strerror), ``context`` what was being done, e.g. ``"read(7)"``.
    Every one can be pickled (so multiprocessing passes it on) and copied,
    with all of these and the attributes of its class.
    """

    code = None

    def __init__(self, code=None, message=None, context=None):
        if message is None:
            message = strerror(code) if code is not None else ""
        super().__init__(message)
        self.code = code
        self.message = message
        self.context = context

    def __str__(self):
        if self.context:
            return "%s: %s" % (self.context, self.message)
        return self.message

    def __reduce__(self):
        # Exception's own __reduce__ calls the class with self.args, which
        # hold only the message, and __init__ took that for the code: pickle
        # (multiprocessing) and copy.copy() failed with a TypeError.  The
        # instance's __dict__ (code, message, context, BufferTooSmall's
        # needed, notes) is restored over what __init__ set.
        return type(self), (self.code, self.message, self.context), self.__dict__


class EndOfLog(TopicError):
    """TOPIC_END: no record at this offset yet (offset >= end offset)."""


class Gone(TopicError):
    """TOPIC_EGONE: the offset is below the start offset; deleted."""


class Corrupt(TopicError):
    """TOPIC_ECORRUPT: a checksum or format check failed."""


class Locked(TopicError):
    """TOPIC_ELOCKED: another handle or process has the topic open for
    writing.  Open with ``readonly=True`` to read alongside it."""


class TooBig(TopicError):
    """TOPIC_ETOOBIG: a record or batch exceeds max.message.bytes."""


class BufferTooSmall(TopicError):
    """TOPIC_ETOOSMALL: the buffer given to read_into() is too small;
    ``needed`` is the size the value needs."""

    needed = None


class Failed(TopicError):
    """TOPIC_EFAILED: an earlier write or sync failed, and the handle refuses
    writes until the topic is closed and reopened; or the handle is the copy
    a child process got through os.fork(), which never writes: the child
    opens its own, with readonly=True to read or wait, or as the writer
    once the parent has closed the topic."""


class ReadOnly(TopicError):
    """TOPIC_ERDONLY: a write on a topic opened with readonly=True."""


class UnsupportedVersion(TopicError):
    """TOPIC_EVERSION: written by a newer, incompatible format version."""


class ClosedError(TopicError, ValueError):
    """The Topic or Cursor was closed (like I/O on a closed file, also a
    ValueError)."""


class TopicOSError(TopicError, OSError):
    """A negative errno from the library.  ``errno`` and ``strerror`` are set
    as for any OSError, ``filename`` to the topic's directory where it
    applies; ``code`` is the negative number the library returned."""

    def __init__(self, err, message=None, context=None, filename=None):
        if message is None:
            message = strerror(-err)
        if filename is not None:
            OSError.__init__(self, err, message, filename)
        else:
            OSError.__init__(self, err, message)
        self.code = -err
        self.message = message
        self.context = context

    def __str__(self):
        s = "[Errno %s] " % self.errno
        if self.context:
            s += self.context + ": "
        s += self.message
        if self.filename is not None:
            s += ": %r" % (self.filename,)
        return s

    def __reduce__(self):
        # OSError's __reduce__ would give (errno, strerror, filename) to
        # __init__, which takes the third for the context, so filename was
        # lost; these are this class's own arguments.
        return (type(self), (self.errno, self.message, self.context, self.filename),
                self.__dict__)


class TopicFileNotFoundError(TopicOSError, FileNotFoundError):
    """-ENOENT, e.g. opening a topic that does not exist without create=True."""


class TopicFileExistsError(TopicOSError, FileExistsError):
    """-EEXIST, e.g. create=True, exclusive=True on an existing directory."""


class TopicNotADirectoryError(TopicOSError, NotADirectoryError):
    """-ENOTDIR: the path (or a parent) is not a directory."""


class TopicPermissionError(TopicOSError, PermissionError):
    """-EACCES / -EPERM."""


class TopicTimeoutError(TopicOSError, TimeoutError):
    """-ETIMEDOUT.  (Topic.wait() returns False instead of raising it.)"""


class InvalidArgument(TopicOSError, ValueError):
    """-EINVAL: an argument the library refused, e.g. a bad group name or
    delete_before() past the end offset."""


_CODE_CLASSES = {
    END: EndOfLog,
    EGONE: Gone,
    ECORRUPT: Corrupt,
    ELOCKED: Locked,
    ETOOBIG: TooBig,
    ETOOSMALL: BufferTooSmall,
    EFAILED: Failed,
    ERDONLY: ReadOnly,
    EVERSION: UnsupportedVersion,
}

_ERRNO_CLASSES = {
    _errno.ENOENT: TopicFileNotFoundError,
    _errno.EEXIST: TopicFileExistsError,
    _errno.ENOTDIR: TopicNotADirectoryError,
    _errno.EACCES: TopicPermissionError,
    _errno.EPERM: TopicPermissionError,
    _errno.ETIMEDOUT: TopicTimeoutError,
    _errno.EINVAL: InvalidArgument,
}


def error(code, context=None, filename=None):
    """The exception for a negative return ``code`` of the C library."""
    cls = _CODE_CLASSES.get(code)
    if filename is not None and (cls is not None or not -4096 < code < 0):
        context = "%s %r" % (context, filename) if context else repr(filename)
    if cls is not None:
        return cls(code, strerror(code), context)
    if -4096 < code < 0:
        cls = _ERRNO_CLASSES.get(-code, TopicOSError)
        return cls(-code, strerror(code), context, filename)
    return TopicError(code, strerror(code), context)
