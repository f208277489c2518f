#!/usr/bin/env python3
"""python_producer: appends lines to a topic, one record per line.

    LIBTOPIC_PATH=lib/libtopic.so PYTHONPATH=python python3 examples/python_producer.py DIR [LINE ...]

With LINE arguments it appends those; otherwise it appends every line read
from standard input (type lines, end with Ctrl-D), printing the offset each
one got.  The topic directory is created if it does not exist.  Run
examples/python_consumer.py DIR alongside it to see the records arrive.

    --key KEY       give every record this key
    --sync          make each record durable (flush.messages=1) before
                    printing its offset
"""
import argparse
import importlib.util
import os
import sys

# Runnable from the source tree without PYTHONPATH / LIBTOPIC_PATH.
_TREE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if importlib.util.find_spec("libtopic") is None:
    sys.path.insert(0, os.path.join(_TREE, "python"))
if not os.environ.get("LIBTOPIC_PATH") and os.path.exists(os.path.join(_TREE, "lib", "libtopic.so")):
    os.environ["LIBTOPIC_PATH"] = os.path.join(_TREE, "lib", "libtopic.so")

import libtopic  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description="Append lines to a libtopic topic.")
    ap.add_argument("dir", help="the topic's directory (created if missing)")
    ap.add_argument("lines", nargs="*", help="lines to append (default: standard input)")
    ap.add_argument("--key", help="a key for every record")
    ap.add_argument("--sync", action="store_true",
                    help="sync every record before printing its offset")
    args = ap.parse_args()

    config = {"flush.messages": "1"} if args.sync else None
    try:
        topic = libtopic.Topic(args.dir, create=True, config=config)
    except libtopic.Locked:
        sys.exit("python_producer: %s is open for writing by another process" % args.dir)
    except (OSError, libtopic.TopicError) as e:
        sys.exit("python_producer: %s" % e)

    lines = args.lines if args.lines else (line.rstrip("\n") for line in sys.stdin)
    with topic:
        try:
            for line in lines:
                offset = topic.append(line, key=args.key)     # str is stored as UTF-8
                print("appended offset %d" % offset, flush=True)
        except KeyboardInterrupt:
            pass
        except libtopic.TopicError as e:
            sys.exit("python_producer: %s" % e)
        print("%s: records %d to %d" % (args.dir, topic.start_offset, topic.end_offset - 1),
              file=sys.stderr)


if __name__ == "__main__":
    main()
