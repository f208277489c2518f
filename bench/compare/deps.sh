#!/bin/sh
# bench/compare/deps.sh: installs what the comparison with the other
# libraries needs on Debian 12, as root: the peers' development packages and
# gnuplot (without X) for the plot.  libtopic's own build dependencies come
# from tools/deps.sh.  CI does not run this; `make bench-compare` leaves out
# any peer that is missing.
set -eu
apt-get update
apt-get install -y --no-install-recommends \
    libsqlite3-dev liblmdb-dev librocksdb-dev libleveldb-dev gnuplot-nox pkg-config
