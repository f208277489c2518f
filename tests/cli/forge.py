"""Appends a hand-made batch to a segment file, for tests/cli/test_cli.sh.

    python3 forge.py SEGMENT_FILE KIND

The batch continues the offsets of the batches already in the file and has a
checksum that holds (XXH3-64, seeded by its first 8 bytes: doc/FORMAT.md,
section 2.1), computed with the system's libxxhash, the library libtopic
itself links.  Its records are what KIND says, most of them records that do
not decode; see KINDS and GAPS below.  Bytes after the file's last batch (the zero
tail of a preallocated segment) are cut off first.  Prints the new batch's
file position and base offset.

    python3 forge.py add32 FILE POSITION DELTA
    python3 forge.py put FILE POSITION HEX
    python3 forge.py in-flight SEGMENT_FILE

damage files in place: add32 adds DELTA to the little-endian u32 at
POSITION (a batch's count at its position + 24, an index entry's position
at its file position + 4); put writes the bytes HEX at POSITION; in-flight
writes, after the file's last batch, what a writer caught in the middle of
an append leaves there: a batch header still all zero bytes, followed by
the first bytes of its records.

SPDX-License-Identifier: BSD-2-Clause
"""
import ctypes
import ctypes.util
import struct
import sys

MAGIC = 0x31425054    # "TPB1"
HEADER = 48
TS = 1700000000000    # first_ts and max_ts of the batch, in ms


def varint(v):
    out = bytearray()
    while v >= 0x80:
        out.append((v & 0x7F) | 0x80)
        v >>= 7
    out.append(v)
    return bytes(out)


def record(value, key=None, delta=0):
    """A record as section 2.3 of doc/FORMAT.md encodes it."""
    k = varint(0) if key is None else varint(len(key) + 1) + key
    return varint(delta) + k + varint(len(value)) + value


# KIND: (count, attributes, payload, max_ts)
KINDS = {
    # An intact batch: shows that the checksum is computed as the library does.
    "intact": (1, 0, record(b"forged"), TS),
    # The value's length varint says 2^40 bytes.
    "value-length": (1, 0, b"\x00\x00" + varint(1 << 40) + b"abc", TS),
    # The key's length points past the end of the batch.
    "key-length": (1, 0, b"\x00" + varint(100 + 1) + b"abcdef", TS),
    # The value's length varint has its continuation bit set up to the end of
    # the batch.
    "unterminated": (1, 0, b"\x00\x00\xff\xff\xff\xff", TS),
    # The value's length varint is not finished after 10 bytes.
    "varint-too-long": (1, 0, b"\x00\x00" + b"\x80" * 11 + b"\x00", TS),
    # Two records counted, one there.
    "count": (2, 0, record(b"only one"), TS),
    # lz4 compression whose block does not decompress.
    "lz4": (1, 1, struct.pack("<I", 32) + b"\xff" * 12, TS),
    # Bytes after the last record the header counts.
    "trailing": (1, 0, record(b"one") + b"\x00\x00\x00", TS),
    # max_ts is not the largest record timestamp.
    "max-ts": (1, 0, record(b"late"), TS + 1),
}
# KIND: an intact batch whose base offset skips this many offsets (negative:
# repeats offsets already in the file).
GAPS = {"offset-gap": 5, "offset-overlap": -1}


def xxh3_64_with_seed():
    names = [ctypes.util.find_library("xxhash"), "libxxhash.so.0", "libxxhash.so",
             "libxxhash.dylib"]
    for name in names:
        if not name:
            continue
        try:
            lib = ctypes.CDLL(name)
            f = lib.XXH3_64bits_withSeed
        except (OSError, AttributeError):
            continue
        f.restype = ctypes.c_uint64
        f.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.c_uint64]
        return f
    sys.exit("forge.py: cannot load XXH3_64bits_withSeed from libxxhash")


def patch():
    cmd, path, at = sys.argv[1], sys.argv[2], int(sys.argv[3])
    with open(path, "r+b") as f:
        if cmd == "add32":
            f.seek(at)
            v, = struct.unpack("<I", f.read(4))
            data = struct.pack("<I", (v + int(sys.argv[4])) & 0xFFFFFFFF)
        else:
            data = bytes.fromhex(sys.argv[4])
        f.seek(at)
        f.write(data)


def in_flight(path):
    data = open(path, "rb").read()
    pos = 0
    while pos + HEADER <= len(data) and struct.unpack_from("<I", data, pos)[0] == MAGIC:
        pos += struct.unpack_from("<I", data, pos + 4)[0]
    with open(path, "r+b") as f:
        f.truncate(pos)
        f.seek(pos)
        f.write(bytes(HEADER) + b"\x07\x00\x05")
    print(pos)


def main():
    if len(sys.argv) == 5 and sys.argv[1] in ("add32", "put"):
        return patch()
    if len(sys.argv) == 3 and sys.argv[1] == "in-flight":
        return in_flight(sys.argv[2])
    if len(sys.argv) != 3 or sys.argv[2] not in list(KINDS) + list(GAPS):
        sys.exit("usage: forge.py SEGMENT_FILE {%s}" % "|".join(list(KINDS) + list(GAPS)))
    path, kind = sys.argv[1], sys.argv[2]
    count, attributes, payload, max_ts = KINDS.get(kind, KINDS["intact"])
    xxh3 = xxh3_64_with_seed()

    data = open(path, "rb").read()
    pos = 0
    base = int(path.rsplit("/", 1)[-1][:20])   # the file's name: its base offset
    while pos + HEADER <= len(data) and struct.unpack_from("<I", data, pos)[0] == MAGIC:
        length, = struct.unpack_from("<I", data, pos + 4)
        b, n = struct.unpack_from("<QI", data, pos + 16)
        base = b + n
        pos += length

    base += GAPS.get(kind, 0)
    length = HEADER + len(payload)
    batch = bytearray(struct.pack("<IIQQIHHqq", MAGIC, length, 0, base, count, attributes, 0,
                                  TS, max_ts) + payload)
    seed, = struct.unpack_from("<Q", batch, 0)
    body = bytes(batch[16:])
    struct.pack_into("<Q", batch, 8, xxh3(body, len(body), seed))
    with open(path, "r+b") as f:
        f.truncate(pos)
        f.seek(pos)
        f.write(batch)
    print(pos, base)


if __name__ == "__main__":
    main()
