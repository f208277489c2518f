#!/bin/sh
# Installs libtopic into a temporary DESTDIR, builds the quick-start example
# against the installed header and `pkg-config --cflags --libs libtopic`,
# shared and static, runs both, checks that the shared library exports
# exactly the symbols in tests/install/symbols.txt, and that `make
# uninstall` leaves nothing behind.  Run from the top of the tree:
#     sh tests/install/test_install.sh
set -u
top=$(pwd)
dest=$(mktemp -d /tmp/libtopic-install-XXXXXX)
work=$(mktemp -d /tmp/libtopic-install-work-XXXXXX)
prefix=/usr/local/libtopic-test
passed=0
failed=0
check() {   # check NAME COMMAND...
    name=$1; shift
    if "$@" >"$work/out" 2>&1; then
        passed=$((passed + 1)); echo "ok: $name"
    else
        failed=$((failed + 1)); echo "FAILED: $name"; sed 's/^/    /' "$work/out"
    fi
}
cleanup() { rm -rf "$dest" "$work"; }
trap cleanup EXIT

check "make install" make -s install DESTDIR="$dest" PREFIX="$prefix"
pc="$dest$prefix/lib/pkgconfig"
export PKG_CONFIG_PATH="$pc"
export PKG_CONFIG_SYSROOT_DIR="$dest"
check "pkg-config knows libtopic" pkg-config --exists libtopic
check "the installed .pc names the prefix" grep -q "^prefix=$prefix\$" "$pc/libtopic.pc"
check "SONAME symlink chain" sh -c "test -L '$dest$prefix/lib/libtopic.so' && test -L '$dest$prefix/lib/libtopic.so.0' && test -f \"\$(readlink -f '$dest$prefix/lib/libtopic.so')\""

cflags=$(pkg-config --cflags libtopic)
libs=$(pkg-config --libs libtopic)
static_libs=$(pkg-config --static --libs libtopic)
check "build against the shared library" \
    sh -c "cc -std=c11 -D_GNU_SOURCE $cflags -o '$work/qs-shared' '$top/examples/quickstart.c' $libs"
check "run it" env LD_LIBRARY_PATH="$dest$prefix/lib" "$work/qs-shared" "$work/t1"
check "it used the installed library" \
    sh -c "LD_LIBRARY_PATH='$dest$prefix/lib' ldd '$work/qs-shared' | grep -q '$dest$prefix/lib/libtopic.so.0'"
check "build against the static library" \
    sh -c "cc -std=c11 -D_GNU_SOURCE $cflags -o '$work/qs-static' '$top/examples/quickstart.c' '$dest$prefix/lib/libtopic.a' $(echo "$static_libs" | sed 's/-ltopic//')"
check "run it" "$work/qs-static" "$work/t2"

nm -D --defined-only "$dest$prefix/lib/libtopic.so" | awk '$2=="T"{print $3}' | sort >"$work/symbols"
check "exported symbols are exactly tests/install/symbols.txt" diff -u "$top/tests/install/symbols.txt" "$work/symbols"

check "make uninstall" make -s uninstall DESTDIR="$dest" PREFIX="$prefix"
check "uninstall leaves no file" sh -c "test -z \"\$(find '$dest' -type f -o -type l)\""

echo "install: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
