#!/usr/bin/env python3
"""python_consumer: follows a topic as a consumer group, committing its place.

    LIBTOPIC_PATH=lib/libtopic.so PYTHONPATH=python python3 examples/python_consumer.py DIR [--group NAME]

Opens the topic read-only (so that it runs beside the producer, which holds
the writer lock), starts from the group's committed position (or from the
first record the first time), prints every record and commits the position
after it, then waits for more.  Stop it with Ctrl-C; run it again and it
resumes after the last record it printed.

    --group NAME    the consumer group (default "python-consumer")
    --from-start    ignore the committed position and read from the start
    --no-follow     stop at the end of the log instead of waiting
"""
import argparse
import datetime
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


def show(rec):
    when = datetime.datetime.fromtimestamp(rec.timestamp / 1000, datetime.timezone.utc)
    key = "-" if rec.key is None else rec.key.decode("utf-8", "replace")
    value = rec.value.decode("utf-8", "replace")
    print("%6d  %s  %-10s %s" % (rec.offset, when.strftime("%Y-%m-%d %H:%M:%S.%f")[:-3],
                                 key, value), flush=True)


def main():
    ap = argparse.ArgumentParser(description="Follow a libtopic topic as a consumer group.")
    ap.add_argument("dir", help="the topic's directory")
    ap.add_argument("--group", default="python-consumer", help="consumer group name")
    ap.add_argument("--from-start", action="store_true",
                    help="read from the first record, not the committed position")
    ap.add_argument("--no-follow", action="store_true",
                    help="stop at the end of the log")
    args = ap.parse_args()

    try:
        topic = libtopic.Topic(args.dir, readonly=True)
    except FileNotFoundError:
        sys.exit("python_consumer: no topic at %s yet: start the producer first" % args.dir)
    except (OSError, libtopic.TopicError) as e:
        sys.exit("python_consumer: %s" % e)

    with topic:
        committed = None if args.from_start else topic.committed(args.group)
        start = max(committed or 0, topic.start_offset)   # deleted records are skipped
        print("group %s: from offset %d (end %d)" % (args.group, start, topic.end_offset),
              file=sys.stderr)
        done = start
        try:
            for rec in topic.records(start, follow=not args.no_follow):
                show(rec)
                done = rec.offset + 1
                topic.commit(args.group, done)   # the next offset this group reads
        except KeyboardInterrupt:
            pass
        except libtopic.TopicError as e:
            sys.exit("python_consumer: %s" % e)
        topic.sync()                               # make the position durable
        print("group %s: committed %d" % (args.group, done), file=sys.stderr)


if __name__ == "__main__":
    main()
