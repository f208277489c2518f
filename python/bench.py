"""How fast the Python binding appends and reads 100-byte values.

    LIBTOPIC_PATH=lib/libtopic.so PYTHONPATH=python /usr/bin/python3 python/bench.py [-n COUNT] [--dir DIR]

Prints records per second for: append(), append_batch() of 100 records,
read() by offset in order and at random, iterating records() (copies) and
records(copy=False) (zero-copy views), and Cursor.next().  The topic lives in
a temporary directory (or --dir) with the default settings (flush.ms=1000:
appends are not synced one by one).  Each figure is the best of --runs runs.
"""
import argparse
import os
import random
import shutil
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import libtopic  # noqa: E402

VALUE = bytes(range(100))


def timed(fn, n, runs):
    best = None
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        took = time.perf_counter() - start
        best = took if best is None else min(best, took)
    return n / best


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-n", "--count", type=int, default=200000,
                    help="records per measurement (default 200000)")
    ap.add_argument("--runs", type=int, default=3, help="runs of each (default 3)")
    ap.add_argument("--dir", help="where to make the topic (default: a temporary dir)")
    args = ap.parse_args()
    n, runs = args.count, args.runs
    base = tempfile.mkdtemp(prefix="libtopic-bench-", dir=args.dir)
    try:
        results = []
        path = os.path.join(base, "appends")

        def appends():
            shutil.rmtree(path, ignore_errors=True)
            with libtopic.Topic(path, create=True) as t:
                append = t.append
                for _ in range(n):
                    append(VALUE)

        results.append(("append()", timed(appends, n, runs)))

        def batches():
            shutil.rmtree(path, ignore_errors=True)
            batch = [VALUE] * 100
            with libtopic.Topic(path, create=True) as t:
                for _ in range(n // 100):
                    t.append_batch(batch)

        results.append(("append_batch(100 values)", timed(batches, n // 100 * 100, runs)))

        with libtopic.Topic(path, readonly=True) as t:
            total = t.end_offset
            order = list(range(total))
            shuffled = order[:]
            random.Random(1).shuffle(shuffled)

            def reads(offsets):
                def run():
                    read = t.read
                    for off in offsets:
                        read(off)
                return run

            def iterate(copy):
                def run():
                    for _ in t.records(copy=copy):
                        pass
                return run

            def cursor_next():
                with t.cursor() as c:
                    nxt = c.next
                    while nxt() is not None:
                        pass

            results.append(("read() in order", timed(reads(order), total, runs)))
            results.append(("read() at random", timed(reads(shuffled), total, runs)))
            results.append(("records()", timed(iterate(True), total, runs)))
            results.append(("records(copy=False)", timed(iterate(False), total, runs)))
            results.append(("Cursor.next()", timed(cursor_next, total, runs)))
    finally:
        shutil.rmtree(base, ignore_errors=True)

    print("libtopic %s (%s), Python %s, %d records of %d bytes, best of %d"
          % (libtopic.__version__, libtopic.library_path, sys.version.split()[0],
             n, len(VALUE), runs))
    for name, rate in results:
        print("  %-26s %12s records/s   %6.2f us/record" % (name, "{:,.0f}".format(rate),
                                                            1e6 / rate))


if __name__ == "__main__":
    main()
