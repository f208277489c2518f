"""libtopic: Python binding of libtopic, a durable append-only log in a
directory (Kafka's storage layer as an embeddable library).

    import libtopic

    with libtopic.Topic("/tmp/events", create=True) as t:
        off = t.append(b"hello")            # -> 0, 1, 2, ...
        t.append("text is UTF-8", key="user-1")
        assert t.read(off) == b"hello"
        for rec in t.records():             # Record(offset, timestamp, key, value)
            print(rec.offset, rec.value)

Pure ctypes over libtopic.so: see libtopic._lib for where the library is
looked for (LIBTOPIC_PATH first).  ``__version__`` is the version of the C
library actually loaded (topic_version()).
"""

from . import _lib
from .errors import (ECORRUPT, EFAILED, EGONE, ELOCKED, END, ERDONLY, ETOOBIG,
                     ETOOSMALL, EVERSION, BufferTooSmall, ClosedError, Corrupt,
                     EndOfLog, Failed, Gone, InvalidArgument, Locked, ReadOnly,
                     TooBig, TopicError, TopicFileExistsError,
                     TopicFileNotFoundError, TopicNotADirectoryError,
                     TopicOSError, TopicPermissionError, TopicTimeoutError,
                     UnsupportedVersion, strerror)
from .topic import (CONFIG_NAMES, Cursor, Record, Topic, check_config,
                    default_config)

#: Version of the loaded C library, "MAJOR.MINOR.PATCH" (topic_version()).
__version__ = _lib.version
#: TOPIC_VERSION_NUMBER of the loaded library (topic_version_number()).
version_number = _lib.version_number
#: Where the C library was loaded from, as a label for messages and bug
#: reports rather than a path: the file for a library found in the package's
#: directory, but ``"LIBTOPIC_PATH=<value>"`` for one named by that variable
#: and e.g. ``"libtopic.so.0 (system loader)"`` for one the system loader
#: found.  It is not always something open() or ctypes.CDLL() would take.
library_path = _lib.lib_origin

__all__ = [
    "Topic", "Cursor", "Record", "check_config", "default_config", "CONFIG_NAMES",
    "TopicError", "EndOfLog", "Gone", "Corrupt", "Locked", "TooBig",
    "BufferTooSmall", "Failed", "ReadOnly", "UnsupportedVersion", "ClosedError",
    "TopicOSError", "TopicFileNotFoundError", "TopicFileExistsError",
    "TopicNotADirectoryError", "TopicPermissionError", "TopicTimeoutError",
    "InvalidArgument", "strerror", "version_number", "library_path",
    "END", "EGONE", "ECORRUPT", "ELOCKED", "ETOOBIG", "ETOOSMALL", "EFAILED",
    "ERDONLY", "EVERSION",
]
