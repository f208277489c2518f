#!/bin/sh
# Tests of the command-line tool topic(1), run as a user would run it.
#
#   sh tests/cli/test_cli.sh PATH_TO_TOPIC_BINARY
#
# Prints one line per check ("ok N - ..." or "not ok N - ..." with the reason
# on the lines after it), then "P passed, F failed"; exits non-zero when a
# check failed.  Needs a POSIX shell, python3 (to parse JSON, and to forge
# batches with the system's libxxhash: forge.py), timeout, mkfifo and the
# usual utilities (cmp, seq, cp, sed, grep, od).
#
# SPDX-License-Identifier: BSD-2-Clause

if [ $# -ne 1 ]; then
	echo "usage: sh $0 PATH_TO_TOPIC_BINARY" >&2
	exit 2
fi
TOPIC=$1
case $TOPIC in
/*) ;;
*) TOPIC=$(pwd)/$TOPIC ;;
esac
if [ ! -x "$TOPIC" ]; then
	echo "$0: $TOPIC is not an executable" >&2
	exit 2
fi
PYTHON=${PYTHON:-python3}
HERE=$(cd "$(dirname "$0")" && pwd)

W=$(mktemp -d "${TMPDIR:-/tmp}/topic-cli.XXXXXX") || exit 2
BG_PID=
cleanup() {
	[ -n "$BG_PID" ] && kill "$BG_PID" 2>/dev/null
	rm -rf "$W"
}
trap cleanup EXIT
trap 'exit 2' INT TERM

pass=0
fail=0

ok() {
	pass=$((pass + 1))
	echo "ok $((pass + fail)) - $1"
}

not_ok() {
	fail=$((fail + 1))
	echo "not ok $((pass + fail)) - $1"
	if [ -n "$2" ]; then
		printf '%s\n' "$2" | sed 's/^/#   /'
	fi
}

# run CMD...: runs the tool with stdout in $W/out, stderr in $W/err and the
# exit status in $st.  With LIMIT set (to "timeout SECONDS"), a tool that
# hangs is killed and gets exit status 124.
LIMIT=
run() {
	$LIMIT "$TOPIC" "$@" >"$W/out" 2>"$W/err"
	st=$?
}

# expect STATUS DESCRIPTION ARGS...: runs the tool, checks its exit status.
expect() {
	want=$1
	desc=$2
	shift 2
	run "$@"
	if [ "$st" -eq "$want" ]; then
		ok "$desc"
	else
		not_ok "$desc" "exit status $st, expected $want; stderr: $(head -c 400 "$W/err")"
	fi
}

# check DESCRIPTION COMMAND...: passes when COMMAND succeeds.
check() {
	desc=$1
	shift
	if "$@" >"$W/check.out" 2>&1; then
		ok "$desc"
	else
		not_ok "$desc" "$(head -c 400 "$W/check.out")"
	fi
}

# json PYTHON-EXPRESSION: exits 0 when every line of $W/out (the output of the
# last run) parses as JSON and the expression, over `docs` (the list of the
# parsed lines), is true.
json() {
	"$PYTHON" -c '
import json, os, sys
text = sys.stdin.buffer.read().decode("utf-8")
docs = [json.loads(line) for line in text.splitlines() if line.strip()]
ok = eval("(" + os.fsencode(sys.argv[1]).decode("utf-8") + "\n)")
if not ok:
    print("expression false for:", text[:300])
sys.exit(0 if ok else 1)
' "$1" <"$W/out"
}

T=$W/t

# --------------------------------------------------------------------------
# Usage

expect 2 "no arguments is a usage error"
expect 2 "an unknown subcommand exits 2" frobnicate "$T"
check "the unknown subcommand is named on stderr" grep -q "frobnicate" "$W/err"
expect 0 "--help exits 0" --help
check "--help lists every subcommand" sh -c "for c in create append read info verify recover delete-before config dump; do grep -q \"^  \$c \" '$W/out' || exit 1; done"
expect 0 "read --help exits 0" read --help
expect 2 "an unknown option exits 2" read "$T" --no-such-option
expect 2 "a missing DIR exits 2" info
expect 2 "a malformed offset exits 2" read "$T" --from 12x

# --------------------------------------------------------------------------
# create, append, read

expect 2 "create with an unknown setting exits 2" create "$T" --config no.such.setting=1
check "...and says why" grep -q 'no.such.setting' "$W/err"
check "...and creates nothing" test ! -e "$T"
expect 2 "create with a bad value exits 2" create "$T" --config segment.bytes=12
check "...with the library's reason" grep -q 'segment.bytes: 12 is out of range' "$W/err"
expect 0 "create" create "$T" --config segment.bytes=64K --config flush.ms=500
expect 3 "create of an existing topic fails" create "$T"
check "...with a message in the documented form" grep -q "^topic: .*: File exists" "$W/err"
expect 3 "reading a directory that is not a topic fails" read "$W"

# Lines with spaces, UTF-8, an empty line and a long line; read back exactly.
{
	echo "first record"
	echo "  leading and trailing spaces  "
	echo ""
	echo "héllo wörld ✓"
	i=0
	line=
	while [ $i -lt 200 ]; do line="${line}0123456789"; i=$((i + 1)); done
	echo "$line"
	echo "last"
} >"$W/lines"
"$TOPIC" append "$T" <"$W/lines" >"$W/out" 2>"$W/err"
st=$?
check "append lines from stdin" test "$st" -eq 0
run read "$T"
check "read prints them back exactly" cmp "$W/lines" "$W/out"

# Many lines in one go (batched appends), numbered from offset 6.
seq 1 20000 >"$W/seq"
expect 0 "append 20000 lines" append "$T" <"$W/seq"
run read "$T" --from 6
check "read --from 6 returns the 20000 lines in order" cmp "$W/seq" "$W/out"
run info "$T" --json
check "the 20000 lines rolled several 64K segments" json 'len(docs[0]["segments"]) > 2 and docs[0]["end_offset"] == 20006'

run read "$T" --from 100 --count 3
printf '95\n96\n97\n' >"$W/want"
check "read --from 100 --count 3" cmp "$W/want" "$W/out"
run read "$T" --from 2 --count 2 --offsets
printf '2\t\n3\théllo wörld ✓\n' >"$W/want"
check "read --offsets prefixes the offset and a tab" cmp "$W/want" "$W/out"
expect 0 "read --from the end offset prints nothing" read "$T" --from 20006
check "...nothing at all" test ! -s "$W/out"
expect 1 "read --from beyond the end offset exits 1" read "$T" --from 20007

# --verbose prints the offsets; a last line without a newline counts.
printf 'a\nb\nno newline' | "$TOPIC" append "$T" --verbose >"$W/out" 2>"$W/err"
printf '20006\n20007\n20008\n' >"$W/want"
check "append --verbose prints each offset; a last line without newline is a record" cmp "$W/want" "$W/out"

# Escaping: tabs, backslashes and bytes that are not UTF-8.
printf 'tab\there back\\slash \377\001 end\n' >"$W/odd"
expect 0 "append a line with a tab, a backslash and non-UTF-8 bytes" append "$T" --key k1 <"$W/odd"
run read "$T" --from 20009 --keys
printf 'k1\ttab\\there back\\\\slash \\xff\\x01 end\n' >"$W/want"
check "read escapes them on one line (with --keys)" cmp "$W/want" "$W/out"
run read "$T" --from 20009 --raw
check "read --raw prints the bytes as they are" cmp "$W/odd" "$W/out"

# A file as one record, binary included.
printf 'line one\nline two\000\377 binary\n' >"$W/blob"
expect 0 "append --file appends a whole file as one record" append "$T" --file "$W/blob" --key blob --verbose
check "...at offset 20010" test "$(cat "$W/out")" = 20010
run read "$T" --from 20010 --json
check "read --json gives the file back as base64, with its key" "$PYTHON" -c '
import base64, json, sys
d = json.loads(open(sys.argv[1]).read())
want = open(sys.argv[2], "rb").read()
sys.exit(0 if base64.b64decode(d["value_base64"]) == want and d["key"] == "blob"
         and d["offset"] == 20010 and "value" not in d else 1)' "$W/out" "$W/blob"

expect 3 "append --file of a directory fails" append "$T" --file "$W"
check "...saying it is a directory" grep -q "Is a directory" "$W/err"

# --json for plain records: every line parses, fields as documented.
run read "$T" --json --count 6
check "read --json: one object per record, each line parses" json '
len(docs) == 6 and [d["offset"] for d in docs] == list(range(6))
and docs[0]["value"] == "first record" and docs[3]["value"] == "héllo wörld ✓"
and all(d["key"] is None and isinstance(d["timestamp"], int) and d["timestamp"] > 0 for d in docs)'
run read "$T" --json --from 20009
check "read --json gives a value that is not UTF-8 as value_base64" json '
docs[0]["key"] == "k1" and "value_base64" in docs[0]
and __import__("base64").b64decode(docs[0]["value_base64"]) == b"tab\there back\\slash \xff\x01 end"'

# --from-time: everything from long ago, nothing from the far future.
run read "$T" --from-time 2000-01-01T00:00:00Z --count 1
check "read --from-time with an ISO-8601 time long ago starts at the first record" test "$(cat "$W/out")" = "first record"
expect 0 "read --from-time in the future prints nothing" read "$T" --from-time 4000000000000
check "...nothing at all" test ! -s "$W/out"
expect 2 "read --from-time with a malformed time exits 2" read "$T" --from-time yesterday
expect 2 "read --from-time with a day the month lacks exits 2" read "$T" --from-time 2026-02-29
run read "$T" --from-time 2024-02-29T00:00:00Z --count 1
check "...while a leap day is a date" test "$st" -eq 0

# --from-time against records with chosen timestamps, which only the library
# can append: through the Python binding, when the caller says where the
# shared library is (make check-cli does).
if [ -n "$LIBTOPIC_PATH" ] && [ -f "$LIBTOPIC_PATH" ] && [ -n "$PYTHONPATH" ]; then
	TT=$W/timed
	# 2026-10-25T00:30:00Z is 02:30 summer time in central Europe, and an
	# hour later 02:30 again, in winter time.
	if "$PYTHON" -c '
import sys, libtopic
t = libtopic.Topic(sys.argv[1], create=True)
b = 1792888200000
t.append_batch([libtopic.Record(timestamp=x, value=v.encode()) for x, v in
                [(1000, "r0"), (1001, "r1"), (b - 1, "r2"), (b, "r3"), (b + 3600000, "r4")]])
t.close()' "$TT" >"$W/py.out" 2>&1; then
		run read "$TT" --from-time 1970-01-01T00:00:01.0005Z --count 1
		check "read --from-time between two milliseconds rounds up" test "$(cat "$W/out")" = "r1"
		run read "$TT" --from-time 1970-01-01T00:00:01.000999Z --count 1
		check "...also by the last digit given" test "$(cat "$W/out")" = "r1"
		run read "$TT" --from-time 1970-01-01T00:00:01.0000Z --count 1
		check "...and keeps an exact millisecond" test "$(cat "$W/out")" = "r0"
		CET='CET-1CEST,M3.5.0,M10.5.0/3'
		TZ=$CET "$TOPIC" read "$TT" --from-time 2026-10-25T02:30 --count 1 >"$W/out" 2>"$W/err"
		check "read --from-time with a local time that occurs twice takes its earlier occurrence" \
			test "$(cat "$W/out")" = "r3"
		TZ=$CET "$TOPIC" read "$TT" --from-time 2026-03-29T02:30 >"$W/out" 2>"$W/err"
		check "read --from-time with a local time that the clocks skip exits 2" test $? -eq 2
		check "...saying that the clocks skip it, not that it is no time" \
			grep -q "does not exist in the local time zone: the clocks skip it" "$W/err"
		TZ=UTC "$TOPIC" read "$TT" --from-time 2026-10-25T00:30 --count 1 >"$W/out" 2>"$W/err"
		check "...while in UTC it is an ordinary time" test "$(cat "$W/out")" = "r3"
		# A zone name with a typo: the C library takes it for UTC, silently.
		TZ=Europe/Berln "$TOPIC" read "$TT" --from-time 2026-10-25T02:30 >"$W/out" 2>"$W/err"
		check "read --from-time with a local time and TZ naming no zone exits 2" test $? -eq 2
		check "...naming TZ" grep -q "TZ='Europe/Berln' names no time zone known here" "$W/err"
		TZ=Europe/Berln "$TOPIC" read "$TT" --from-time 2026-10-25T00:30Z --count 1 \
			>"$W/out" 2>"$W/err"
		check "...while a time in UTC needs no zone" test "$(cat "$W/out")" = "r3"
		# Clock shifts that are not summer time, and the edges of a day, in
		# zones of the system's tzdata (a record per instant that matters).
		TZT=$W/timed-zones
		"$PYTHON" -c '
import sys, libtopic
t = libtopic.Topic(sys.argv[1], create=True)
t.append_batch([libtopic.Record(timestamp=x, value=v.encode()) for x, v in [
    (1324857600000, "a0"),   # 2011-12-26T00:00Z
    (1325239200000, "a1"),   # 2011-12-30T10:00Z, 2011-12-31T00:00+14:00 in Samoa
    (1414272540000, "m0"),   # 2014-10-25T21:29Z
    (1414272600000, "m1"),   # 2014-10-25T21:30Z, the first 01:30 in Moscow
    (1414276200000, "m2"),   # 2014-10-25T22:30Z, the second one
    (1710046799999, "h0"),   # 2024-03-10T04:59:59.999Z
    (1710046800000, "h1"),   # 2024-03-10T05:00Z, 01:00 in Havana after the skip
    (1725767999999, "s0"),   # 2024-09-08T03:59:59.999Z
    (1725768000000, "s1"),   # 2024-09-08T04:00Z, 01:00 in Santiago after the skip
    (1772323199000, "u0"),   # 2026-02-28T23:59:59Z
    (1772323200000, "u1")]]) # 2026-03-01T00:00Z
t.close()' "$TZT" >"$W/py.out" 2>&1 || not_ok "the Python binding appends records in the zones' shifts" "$(cat "$W/py.out")"
		# zread ZONE TIME: reads one record from TIME in the zone ZONE, which
		# must be in the system's tzdata: false, with a message, without it.
		zread() {
			if [ ! -f "/usr/share/zoneinfo/$1" ]; then
				echo "# skip: /usr/share/zoneinfo/$1 is missing (no tzdata?)"
				return 1
			fi
			TZ=$1 "$TOPIC" read "$TZT" --from-time "$2" --count 1 >"$W/out" 2>"$W/err"
			st=$?
		}
		# Samoa moved from UTC-10 to UTC+14 by skipping 2011-12-30.
		if zread Pacific/Apia 2011-12-30T12:00; then
			check "read --from-time with a local time in a day the clocks skip exits 2" \
				test "$st" -eq 2 -a ! -s "$W/out"
			check "...naming the UTC offsets before and after the shift" \
				grep -q "'2011-12-30T12:00' does not exist in the local time zone: the clocks skip it, moving from UTC-10:00 to UTC+14:00 (give the time with the UTC offset meant, -10:00 or +14:00)" "$W/err"
			zread Pacific/Apia 2011-12-30
			check "...also for the day's date alone" test "$st" -eq 2 -a ! -s "$W/out"
			zread Pacific/Apia 2011-12-29T24:00
			check "read --from-time with 24:00 before a skipped day starts where the clocks land" \
				test "$st" -eq 0 -a "$(cat "$W/out")" = "a1"
		fi
		# Moscow repeated 01:00-02:00 on 2014-10-26, going from +04 to +03
		# with no summer time on either side.
		if zread Europe/Moscow 2014-10-26T01:30; then
			check "read --from-time with a local time repeated by a change of standard offset takes its earlier occurrence" \
				test "$st" -eq 0 -a "$(cat "$W/out")" = "m1"
		fi
		if zread America/New_York 2026-03-08T02:30; then
			check "read --from-time with a skipped New York time names -05:00 or -04:00" \
				grep -q "moving from UTC-05:00 to UTC-04:00 (give the time with the UTC offset meant, -05:00 or -04:00)" "$W/err"
			zread America/New_York 2026-02-28T18:59:60
			check "read --from-time with a local 60th second means the second after the 59th" \
				test "$st" -eq 0 -a "$(cat "$W/out")" = "u1"
		fi
		# Havana and Santiago put their clocks forward at midnight.
		if zread America/Havana 2024-03-10; then
			check "read --from-time with a date whose midnight is skipped starts at the day's first instant (Havana)" \
				test "$st" -eq 0 -a "$(cat "$W/out")" = "h1"
			zread America/Havana 2024-03-10T00:30
			check "...while a time of day in the gap is still an error" test "$st" -eq 2
		fi
		if zread America/Santiago 2024-09-08; then
			check "read --from-time with a date whose midnight is skipped starts at the day's first instant (Santiago)" \
				test "$st" -eq 0 -a "$(cat "$W/out")" = "s1"
		fi
		for ts in 2026-02-28T24:00 2026-02-28T23:59:60 2026-02-28T24:00Z 2026-02-28T23:59:60Z; do
			TZ=UTC "$TOPIC" read "$TZT" --from-time "$ts" --count 1 >"$W/out" 2>"$W/err"
			st=$?
			check "read --from-time $ts in UTC is the next midnight" \
				test "$st" -eq 0 -a "$(cat "$W/out")" = "u1"
		done
		# A position past the end offset (a power loss can leave one).
		"$PYTHON" -c '
import sys, libtopic
t = libtopic.Topic(sys.argv[1])
t.commit("ahead", 100)
t.close()' "$TT" >"$W/py.out" 2>&1
		run info "$TT"
		check "info marks a group position past the end offset" \
			grep -q '^  ahead  committed 100  lag 0  (past the end offset)$' "$W/out"
		"$TOPIC" read "$TT" --group ahead >"$W/out" 2>"$W/err"
		check "read --group from a position past the end offset exits 1" test $? -eq 1
		check "...and says so, and how to choose where to start" \
			grep -q 'committed offset 100 is past the end offset .*give --from' "$W/err"
		"$TOPIC" read "$TT" --group ahead --follow >"$W/out" 2>"$W/err"
		check "...also with --follow, which would skip the records given those offsets" \
			test $? -eq 1
		run read "$TT" --group ahead --from 0 --count 1
		check "...while --from chooses where to start" test "$(cat "$W/out")" = "r0"
	else
		not_ok "the Python binding appends records with chosen timestamps" "$(cat "$W/py.out")"
	fi
fi

# A directory listing that fails is never "ok": verify and info list the
# topic's directory several times (the library's open, the segments, the
# files that are not regular ones), and a failure of any one call must not
# pass for the end of the directory.  An LD_PRELOAD shim fails the Nth
# readdir() call of the process and every later one, for each N in turn
# until none fails: verify checks a topic a second time when the first pass
# was not clean, and the failure must reach the pass it reports too.
CC=${CC:-cc}
if "$CC" -shared -fPIC -o "$W/readdir_fail.so" "$HERE/readdir_fail.c" -ldl 2>"$W/cc.err"; then
	RD=$W/readdir-topic
	"$TOPIC" create "$RD" --config segment.bytes=4096 >/dev/null 2>&1
	seq 1 300 | "$TOPIC" append "$RD" >/dev/null 2>&1
	fired=0 silent=
	for cmd in verify info; do
		n=1
		while [ "$n" -le 400 ]; do
			rm -f "$W/rd.mark"
			FAIL_READDIR_AT=$n FAIL_READDIR_STICKY=1 FAIL_READDIR_MARK=$W/rd.mark \
				LD_PRELOAD=$W/readdir_fail.so "$TOPIC" $cmd "$RD" >"$W/out" 2>"$W/err"
			st=$?
			[ -f "$W/rd.mark" ] || break
			fired=$((fired + 1))
			[ "$st" -eq 0 ] && silent="$silent $cmd@$n"
			n=$((n + 1))
		done
	done
	check "a readdir() that fails is reported by verify and info, never ok ($fired runs)" \
		test "$fired" -gt 4 -a -z "$silent"
	[ -z "$silent" ] || echo "#   exit status 0 with the failure at:$silent"

	# A mapped segment that raises SIGBUS (cut short under the mapping, or
	# a read the disk failed) is damage of that segment, reported as such;
	# verify used to stop there with exit status 3 and report nothing.
	if "$CC" -shared -fPIC -o "$W/sigbus_map.so" "$HERE/sigbus_map.c" -ldl 2>"$W/cc.err"; then
		# Segments of about 8 KB: the first raises SIGBUS past its first page.
		SB=$W/sigbus-topic
		"$TOPIC" create "$SB" --config segment.bytes=8192 >/dev/null 2>&1
		for i in 1 2 3 4; do seq 1 800 | "$TOPIC" append "$SB" >/dev/null 2>&1; done
		first=$(ls "$SB" | grep '\.log$' | head -1)
		second=$(ls "$SB" | grep '\.log$' | sed -n 2p)
		SIGBUS_LOG=/$first LD_PRELOAD=$W/sigbus_map.so "$TOPIC" verify "$SB" --quiet \
			>"$W/out" 2>"$W/err"
		st=$?
		check "verify reports a segment that raises SIGBUS as damage (exit 1), not a crash" \
			test "$st" -eq 1
		check "...naming the segment, the failed read and the offsets up to the next segment" \
			grep -q "^$first: position [0-9]*, offset [0-9]*: reading the mapped file failed.*; offsets [0-9]*-$(echo "${second%.log}" | awk '{ print $1 - 1 }') unreadable\$" "$W/out"
		expect 0 "...and the file was left alone" verify "$SB" --quiet
	else
		not_ok "build the mmap shim" "$(head -c 400 "$W/cc.err")"
	fi

	# recover and delete-before list the segment files before and after,
	# to report what changed.  A failed listing used to read as "no
	# segments": recover then said it had removed every segment, and
	# delete-before counted the wrong number of deleted ones, exiting 0.
	# Each run works on a fresh copy, so that every delete-before deletes.
	"$TOPIC" delete-before "$RD" 0 >/dev/null 2>&1   # a clean close, first
	cp -a "$RD" "$W/rd-copy"
	"$TOPIC" delete-before "$W/rd-copy" 150 >"$W/rd-want" 2>&1
	fired=0 silent= lied=
	for cmd in recover delete-before; do
		n=1
		while [ "$n" -le 400 ]; do
			rm -rf "$W/rd-copy" "$W/rd.mark"
			cp -a "$RD" "$W/rd-copy"
			if [ "$cmd" = recover ]; then
				set -- recover "$W/rd-copy"
			else
				set -- delete-before "$W/rd-copy" 150
			fi
			FAIL_READDIR_AT=$n FAIL_READDIR_MARK=$W/rd.mark LD_PRELOAD=$W/readdir_fail.so \
				"$TOPIC" "$@" >"$W/out" 2>"$W/err"
			st=$?
			[ -f "$W/rd.mark" ] || break
			fired=$((fired + 1))
			# recover may succeed when only its look before the repair (a
			# read-only open) failed, if it says so.
			[ "$st" -eq 0 ] && ! grep -q 'before: a reader could not open' "$W/out" &&
				silent="$silent $cmd@$n"
			# Whatever failed, what is printed is true: recovering an intact
			# topic removes nothing, and a count is the real one.
			if grep -q removed "$W/out" ||
				{ grep -q deleted "$W/out" && ! cmp -s "$W/out" "$W/rd-want"; }; then
				lied="$lied $cmd@$n"
			fi
			n=$((n + 1))
		done
	done
	check "a readdir() that fails is reported by recover and delete-before, never ok ($fired runs)" \
		test "$fired" -gt 4 -a -z "$silent" -a -z "$lied"
	[ -z "$silent" ] || echo "#   exit status 0 with the failure at:$silent"
	[ -z "$lied" ] || echo "#   a wrong report with the failure at:$lied"
	rm -rf "$W/rd-copy"

	# Retention may remove the oldest segment between dump's listing and
	# its reading of that file.  dump used to stop there with exit status
	# 3 ("No such file or directory") and show nothing of the rest.
	DD=$W/dump-topic
	"$TOPIC" create "$DD" --config segment.bytes=4096 >/dev/null 2>&1
	for i in 1 2 3; do seq 1 300 | "$TOPIC" append "$DD" >/dev/null 2>&1; done
	oldest=$(ls "$DD" | grep '\.log$' | head -1)
	UNLINK_AFTER_LISTING=$DD/$oldest LD_PRELOAD=$W/readdir_fail.so \
		"$TOPIC" dump "$DD" --headers >"$W/out" 2>"$W/err"
	st=$?
	check "dump skips a segment removed after its listing (exit 0, not 3)" test "$st" -eq 0
	check "...saying so under the segment's name" \
		sh -c "grep -A1 '^$oldest:' '$W/out' | grep -q 'removed since the directory was listed'"
	check "...and shows the segments after it" \
		grep -q "^$(ls "$DD" | grep '\.log$' | tail -1): base offset" "$W/out"
	check "...with the file really gone" test ! -e "$DD/$oldest"
else
	not_ok "building the readdir() shim" "$(cat "$W/cc.err")"
fi

# --follow: a reader waiting at the end gets records appended afterwards.
"$TOPIC" read "$T" --follow --from 20011 --count 2 >"$W/follow" 2>"$W/follow.err" &
BG_PID=$!
sleep 0.3
printf 'followed one\nfollowed two\n' | "$TOPIC" append "$T"
i=0
while kill -0 "$BG_PID" 2>/dev/null && [ $i -lt 100 ]; do
	sleep 0.1
	i=$((i + 1))
done
if kill -0 "$BG_PID" 2>/dev/null; then
	kill "$BG_PID"
	not_ok "read --follow --count 2 sees new records and stops" "still running after 10 s"
else
	wait "$BG_PID"
	printf 'followed one\nfollowed two\n' >"$W/want"
	check "read --follow --count 2 sees new records and stops" cmp "$W/want" "$W/follow"
fi
BG_PID=

# --------------------------------------------------------------------------
# info and config

expect 0 "info" info "$T"
check "info shows the start and end offsets" grep -q '^end offset: *20013$' "$W/out"
check "info shows the settings from topic.conf" grep -q 'segment.bytes=65536$' "$W/out"
run info "$T" --json
check "info --json parses, with offsets, segments, total bytes and config" json '
docs[0]["start_offset"] == 0 and docs[0]["end_offset"] == 20013
and docs[0]["total_bytes"] == sum(s["bytes"] for s in docs[0]["segments"])
and docs[0]["segments"][0]["base_offset"] == 0
and docs[0]["config"]["segment.bytes"] == 65536 and docs[0]["config"]["flush.ms"] == 500
and docs[0]["config"]["compression.type"] == "none"
and sorted(docs[0]["config_explicit"]) == ["flush.ms", "segment.bytes"]'

# A directory name that is not UTF-8 (bytes 0xff 0xfe) must not make the
# JSON invalid: info and verify give it in base64, as read gives such keys.
ODD=$(printf '%s/odd-\377\376' "$W")
"$TOPIC" create "$ODD" >/dev/null 2>&1
echo one | "$TOPIC" append "$ODD" >/dev/null 2>&1
for cmd in info verify; do
	run $cmd "$ODD" --json
	check "$cmd --json of a directory whose name is not UTF-8 parses" json '
__import__("base64").b64decode(docs[0]["dir_base64"]).endswith(b"/odd-\xff\xfe")
and "dir" not in docs[0]'
done
rm -rf "$ODD"

expect 0 "config shows every setting" config "$T"
check "...as name=value lines" grep -q '^max.message.bytes=1048576$' "$W/out"
run config "$T" flush.ms
check "config NAME shows one setting" test "$(cat "$W/out")" = 500
expect 0 "config NAME=VALUE sets it" config "$T" flush.ms=250 index.interval.bytes=4K
run config "$T" flush.ms
check "...and it persists" test "$(cat "$W/out")" = 250
run config "$T" index.interval.bytes
check "...with size suffixes" test "$(cat "$W/out")" = 4096
check "...in topic.conf" grep -q '^flush.ms=250$' "$T/topic.conf"
expect 2 "config with a bad value exits 2" config "$T" flush.ms=soon
check "...and prints the library's reason" grep -q 'flush.ms: "soon"' "$W/err"
run config "$T" flush.ms
check "...and changes nothing" test "$(cat "$W/out")" = 250
expect 2 "config with an unknown setting exits 2" config "$T" no.such.thing
expect 2 "setting an unknown setting exits 2" config "$T" no.such.thing=1
run config "$T" --json
check "config --json parses" json 'docs[0]["flush.ms"] == 250 and len(docs[0]) == 9'

# --------------------------------------------------------------------------
# Consumer groups

expect 0 "read --group --commit" read "$T" --group g1 --commit --count 5
check "...starts at the start offset" test "$(sed -n 1p "$W/out")" = "first record"
run info "$T"
check "info shows the committed position and the lag" grep -q '^  g1  committed 5  lag 20008$' "$W/out"
run read "$T" --group g1 --commit --count 2 --offsets
printf '5\tlast\n6\t1\n' >"$W/want"
check "read --group resumes at the committed position" cmp "$W/want" "$W/out"
run info "$T" --json
check "info --json shows the group's committed position and lag" json '
docs[0]["groups"] == [{"name": "g1", "committed": 7, "lag": 20006}]'
expect 0 "read --group without --commit does not move the position" read "$T" --group g1 --count 3
run info "$T" --json
check "...still 7" json 'docs[0]["groups"][0]["committed"] == 7'
printf 'not a group file\n' >"$T/groups/g2"
run info "$T"
check "info shows a damaged group's file as such" grep -q '^  g2  (position damaged' "$W/out"
run info "$T" --json
check "...and in JSON" json '
docs[0]["groups"][1] == {"name": "g2", "committed": None, "lag": None, "damaged": True}'
expect 1 "read --group with a damaged position and no --from exits 1" read "$T" --group g2
check "...and says to give --from" grep -q 'damaged; give --from or --from-time' "$W/err"
expect 0 "read --group --from --commit replaces the damaged file" \
	read "$T" --group g2 --from 3 --commit --count 1
run info "$T" --json
check "...and the group has a position again" json 'docs[0]["groups"][1]["committed"] == 4'
T3=$W/t3
expect 0 "create with a small max.message.bytes" create "$T3" --config max.message.bytes=4096
"$PYTHON" -c 'import sys; sys.stdout.write("short\n" + "z" * 5000 + "\nafter\n")' >"$W/long.txt"
"$TOPIC" append "$T3" <"$W/long.txt" >"$W/out" 2>"$W/err"
check "a line over max.message.bytes exits 3" test $? -eq 3
run read "$T3"
check "...and the line before it, read in the same read(), stays appended" \
	test "$(cat "$W/out")" = short
# A hand-edited topic.conf the library refuses: the tool names the line.
cp "$T3/topic.conf" "$W/t3.conf"
printf 'segment.bytes = 64M\n' >>"$T3/topic.conf"
expect 1 "read of a topic whose topic.conf has spaces around '=' exits 1" read "$T3"
check "...naming the file, the line and what is wrong" \
	grep -q "t3/topic.conf: line 3: the name before '=' may hold only" "$W/err"
printf 'segment.bytes=banana\n' >"$T3/topic.conf"
expect 1 "info of a topic whose topic.conf has a bad value exits 1" info "$T3"
check "...naming the line and the value" grep -q 'topic.conf: line 1: segment.bytes: "banana"' "$W/err"
expect 1 "verify of that topic exits 1" verify "$T3"
check "...naming the line and the value" \
	grep -q '^topic.conf: position 0: line 1: segment.bytes: "banana"' "$W/out"
# Over 64 KiB, however good its lines, or with a NUL byte: damage that the
# tool names, rather than a bare "corrupt" that sends the user to the segments.
{ printf '#'; head -c 65536 /dev/zero | tr '\0' x; printf '\nsegment.bytes=64K\n'; } >"$T3/topic.conf"
expect 1 "info of a topic whose topic.conf is over 64 KiB exits 1" info "$T3"
check "...naming the file and its size" \
	grep -q 't3/topic.conf: larger than 64 KiB, the most a settings file may hold$' "$W/err"
expect 1 "verify of that topic exits 1" verify "$T3"
check "...and names topic.conf as the damage" \
	grep -q '^topic.conf: position 0: larger than 64 KiB, the most a settings file may hold$' "$W/out"
{ printf '#'; head -c 65534 /dev/zero | tr '\0' x; printf '\n'; } >"$T3/topic.conf"
expect 0 "info of a topic whose topic.conf is exactly 64 KiB exits 0" info "$T3"
printf 'segment.bytes=64K\n\0\n' >"$T3/topic.conf"
expect 1 "info of a topic whose topic.conf holds a NUL byte exits 1" info "$T3"
check "...naming where" grep -q 't3/topic.conf: a NUL byte at byte 18$' "$W/err"
cp "$W/t3.conf" "$T3/topic.conf"
T4=$W/t4
run create "$T4"
echo one | "$TOPIC" append "$T4"
echo two | "$TOPIC" append "$T4"
last=$(ls "$T4"/*.log | tail -n 1)
size=$(wc -c <"$last")
echo three | "$TOPIC" append "$T4"
truncate -s "$size" "$last"     # the last batch gone whole, after a clean close
expect 1 "verify finds records the clean close recorded but the last segment lost" \
	verify "$T4"
check "...and says so" grep -q 'records missing at the end.*ends at offset 2, the topic.s end offset is 3' "$W/out"
expect 1 "dump --segment past the end offset exits 1" dump "$T4" --segment 3
expect 1 "dump --segment with a file name that is not there exits 1" \
	dump "$T4" --segment 00000000000000000007.log
expect 0 "dump --segment of the last record" dump "$T4" --segment 1
expect 2 "--commit without --group exits 2" read "$T" --commit
expect 2 "a bad group name exits 2" read "$T" --group .hidden

# --------------------------------------------------------------------------
# verify and dump

expect 0 "verify on a clean topic exits 0" verify "$T"
check "...and says ok" grep -q ': ok$' "$W/out"
run verify "$T" --json
check "verify --json parses and says ok" json 'docs[0]["ok"] is True and docs[0]["damage"] == [] and docs[0]["records"] == 20013'
expect 0 "dump" dump "$T" --segment 0
check "dump shows batches with their checksums" grep -q 'batch at position 0: base offset 0, count 6, .*checksum [0-9a-f]* ok$' "$W/out"
check "dump shows records" grep -q 'offset 3 .*value \[[0-9]*\] "héllo wörld ✓"' "$W/out"

# A small topic of three batches; damage a byte in the middle batch's
# records, in a copy.
D=$W/d
expect 0 "create a small topic" create "$D"
for i in 1 2 3; do
	printf 'batch%s record a\nbatch%s record b\nbatch%s record c\n' $i $i $i | "$TOPIC" append "$D"
done
run dump "$D" --headers
batch=$(grep 'batch at position [0-9]*: base offset 3,' "$W/out")
pos=$(printf '%s\n' "$batch" | sed 's/.*batch at position \([0-9]*\):.*/\1/')
len=$(printf '%s\n' "$batch" | sed 's/.*, length \([0-9]*\),.*/\1/')
check "dump --headers lists the batch at offset 3" test -n "$pos" -a -n "$len"
cp -R "$D" "$W/damaged"
# The header is 48 bytes (lib/format.c); flip a byte halfway into the records.
"$PYTHON" -c '
import sys
path, at = sys.argv[1], int(sys.argv[2])
data = bytearray(open(path, "rb").read())
data[at] ^= 0x20
open(path, "wb").write(data)
' "$W/damaged/00000000000000000000.log" $((pos + 48 + (len - 48) / 2))
expect 1 "verify on a copy with a flipped byte exits 1" verify "$W/damaged"
check "...and reports the damaged batch by file, position and offset" grep -q "^00000000000000000000.log: position $pos, offset 3: checksum mismatch" "$W/out"
check "...and the offsets it makes unreadable" grep -q 'offsets 3-5 unreadable' "$W/out"
run verify "$W/damaged" --json
check "verify --json reports the damaged offset" json "
docs[0]['ok'] is False and len(docs[0]['damage']) == 1
and docs[0]['damage'][0]['offset'] == 3 and docs[0]['damage'][0]['end_offset'] == 6
and docs[0]['damage'][0]['position'] == $pos
and docs[0]['damage'][0]['file'] == '00000000000000000000.log'"
expect 1 "dump on the damaged copy exits 1" dump "$W/damaged"
check "...and marks the batch" grep -q "batch at position $pos: .* BAD$" "$W/out"
expect 0 "the original still verifies" verify "$D"
# A batch of one record: its line names that one offset too (it used to end
# without saying which offsets could not be read).
D1=$W/d1
"$TOPIC" create "$D1" >/dev/null 2>&1
for i in 0 1 2; do echo "single $i" | "$TOPIC" append "$D1"; done
run dump "$D1" --headers
pos1=$(grep 'batch at position [0-9]*: base offset 1,' "$W/out" | sed 's/.*batch at position \([0-9]*\):.*/\1/')
"$PYTHON" -c '
import sys
path, at = sys.argv[1], int(sys.argv[2])
data = bytearray(open(path, "rb").read())
data[at] ^= 0x20
open(path, "wb").write(data)
' "$D1/00000000000000000000.log" $((pos1 + 50))
expect 1 "verify of a damaged one-record batch exits 1" verify "$D1" --quiet
check "...and names the one offset it makes unreadable" grep -q "position $pos1, offset 1: .*; offset 1 unreadable\$" "$W/out"

# A batch whose header is damaged stops a reader's walk from the index
# entry before it: the intact records after it are refused too, up to the
# next index entry.  verify found them intact by searching for the next
# batch's magic, and used to report only the damaged batch's offsets as
# unreadable.  It now reports what a reader is refused.  golden/wrong-magic
# is documented (tests/golden/README.md) as refusing offsets 3-5.
rm -rf "$W/wm"
cp -R "$HERE/../golden/cases/wrong-magic" "$W/wm"
expect 1 "verify of a batch with a damaged magic exits 1" verify "$W/wm" --quiet
check "...and reports the offsets a reader is refused (3-5), not only the batch's" \
	grep -q ": bad magic: .*; offsets 3-5 unreadable\$" "$W/out"
# Batches of 100 records: more refused offsets than verify probes one by
# one, and without the segment's index, every offset to the segment's end.
WM=$W/wm-long
"$TOPIC" create "$WM" --config segment.bytes=16384 >/dev/null 2>&1
for i in $(seq 1 40); do seq 1 100 | "$TOPIC" append "$WM" >/dev/null 2>&1; done
"$PYTHON" -c '
import struct, sys
path = sys.argv[1]
data = bytearray(open(path, "rb").read())
pos = 0
for _ in range(3):
    pos += struct.unpack_from("<I", data, pos + 4)[0]
data[pos:pos + 4] = b"XXXX"
open(path, "wb").write(data)
' "$WM/00000000000000000000.log"
second=$(ls "$WM" | grep '\.log$' | sed -n 2p)
for variant in index no-index; do
	if [ $variant = no-index ]; then
		rm -f "$WM/00000000000000000000.index" "$WM/00000000000000000000.timeindex"
	fi
	run verify "$WM" --quiet
	range=$(sed -n 's/.*: bad magic: .*; offsets \([0-9]*\)-\([0-9]*\) unreadable$/\1 \2/p' "$W/out")
	set -- $range
	refused_ok=no
	if [ $# -eq 2 ] && [ "$1" -eq 300 ] && [ "$2" -ge 399 ]; then
		"$TOPIC" read "$WM" --from "$2" --count 1 >/dev/null 2>&1
		last=$?
		"$TOPIC" read "$WM" --from $(($2 + 1)) --count 1 >/dev/null 2>&1
		after=$?
		[ $last -eq 1 ] && [ $after -eq 0 ] && refused_ok=yes
		[ $variant = no-index ] && [ $(($2 + 1)) -ne "${second%.log}" ] && refused_ok=no
	fi
	check "verify's unreadable range after a damaged header ends where reads resume ($variant: $range)" \
		test $refused_ok = yes
done

# Batches whose checksum holds but whose records do not decode, forged by
# forge.py (next to this script): dump exits 1 for every kind, as verify does,
# with --headers too.
forge() {
	"$PYTHON" "$HERE/forge.py" "$@"
}
F=$W/forged
expect 0 "create a topic for forged batches" create "$F"
echo first | "$TOPIC" append "$F"
cp -R "$F" "$W/forged.clean"
check "forge.py appends an intact batch" forge "$F/00000000000000000000.log" intact
expect 0 "...which verifies: its checksum is the library's" verify "$F"
expect 0 "...and dumps without damage" dump "$F"
check "...showing its record" grep -q 'offset 1 .*value \[6\] "forged"' "$W/out"
# A fresh copy of the forged topic in $F with a batch of kind $1 appended;
# false (reported) if forge.py could not make it.
forged_copy() {
	rm -rf "$F"
	cp -R "$W/forged.clean" "$F"
	forge "$F/00000000000000000000.log" "$1" >"$W/check.out" 2>&1 && return 0
	not_ok "forge a batch: $1" "$(cat "$W/check.out")"
	return 1
}
for kind in value-length key-length unterminated varint-too-long count lz4 trailing max-ts; do
	forged_copy $kind || continue
	expect 1 "verify of a batch with intact checksum but bad records ($kind) exits 1" verify "$F"
	expect 1 "dump of it exits 1 too ($kind)" dump "$F"
	check "...and marks the batch damaged ($kind)" \
		grep -q '^  DAMAGED: the checksum holds but ' "$W/out"
	expect 1 "dump --headers of it exits 1 ($kind)" dump "$F" --headers
done
# An intact batch that does not continue the offsets of the one before it.
for kind in offset-gap offset-overlap; do
	forged_copy $kind || continue
	expect 1 "verify of an intact batch with the wrong base offset ($kind) exits 1" verify "$F"
	expect 1 "dump of it exits 1 too ($kind)" dump "$F"
	check "...and says which base offset was expected ($kind)" \
		grep -q '^  DAMAGED: offsets [a-z]*: base offset 1 was expected here$' "$W/out"
done

# verify's unreadable ranges are exactly the offsets a reader is refused:
# refused_match DIR compares the ranges of `verify --json` with `topic read`
# of every offset, and checks that the member "unreadable" counts them.
refused_match() {
	"$PYTHON" - "$TOPIC" "$1" <<'PYEOF'
import json, subprocess, sys
topic, d = sys.argv[1], sys.argv[2]
doc = json.loads(subprocess.run([topic, "verify", d, "--json"], capture_output=True,
                                text=True).stdout)
said = set()
for p in doc["damage"]:
    if p["offset"] is not None:
        if p["end_offset"] is None:
            sys.exit("open-ended range: %r" % p)
        said.update(range(p["offset"], p["end_offset"]))
refused = {x for x in range(doc["start_offset"], doc["end_offset"])
           if subprocess.run([topic, "read", d, "--from", str(x), "--count", "1"],
                             capture_output=True).returncode == 1}
if said != refused or doc["unreadable"] != len(refused):
    sys.exit("verify says %s (unreadable %r), readers are refused %s"
             % (sorted(said), doc["unreadable"], sorted(refused)))
PYEOF
}

# A topic of single-record batches of 59 and 60 bytes with an index entry
# every 4 offsets (index.interval.bytes 200), in two segments: offsets 0-67
# and 68-79.  Its damaged copies below are made the same way every time.
IX=$W/ix
"$TOPIC" create "$IX" --config index.interval.bytes=200 --config segment.bytes=4096 >/dev/null 2>&1
for i in $(seq 0 79); do echo "record $i" | "$TOPIC" append "$IX"; done
ix_copy() {
	rm -rf "$W/ixd"
	cp -R "$IX" "$W/ixd"
}
run dump "$IX" --headers
pos67=$(grep 'batch at position [0-9]*: base offset 67,' "$W/out" | sed 's/.*batch at position \([0-9]*\):.*/\1/')
check "the indexed topic is laid out as the checks below expect" \
	test -n "$pos67" -a "$(ls "$IX" | grep -c '\.log$')" -eq 2 -a \
	"$(od -A n -t u4 -j 72 -N 8 "$IX/00000000000000000000.index" | tr -s ' ')" = " 40 2390"

# A batch whose record count is damaged (one more): the walk of a reader
# lands in it for the offset after its records too, and fails at the next
# batch, up to the next index entry (offset 4).  verify used to report
# every offset to the end of the segment.
ix_copy
forge add32 "$W/ixd/00000000000000000000.log" 24 1 >/dev/null
expect 1 "verify of a batch whose count is one too many exits 1" verify "$W/ixd" --quiet
check "...and reports offsets 0-3 unreadable, up to the next index entry" \
	grep -q '^00000000000000000000.log: position 0, offset 0: checksum mismatch (batch of 59 bytes, header says base offset 0, 2 records); offsets 0-3 unreadable$' "$W/out"
check "...and the overlap it makes, from the offset expected there" \
	grep -q '^00000000000000000000.log: position 59, offset 2: offsets overlap: the batch starts at offset 1, 2 was expected; offsets 2-3 unreadable$' "$W/out"
check "...with no range \"from N on\"" sh -c "! grep -q 'from [0-9]* on' '$W/out'"
check "...which are the offsets readers are refused, counted in \"unreadable\"" refused_match "$W/ixd"
# The same at a segment's last batch: the next segment's first offset reads.
ix_copy
forge add32 "$W/ixd/00000000000000000000.log" $((pos67 + 24)) 1 >/dev/null
expect 1 "verify of a segment's last batch with a count one too many exits 1" verify "$W/ixd" --quiet
check "...reports its own offset unreadable" \
	grep -q "^00000000000000000000.log: position $pos67, offset 67: checksum mismatch .*; offset 67 unreadable\$" "$W/out"
check "...and the segments' overlap, without the next segment's offset 68" \
	grep -q '^00000000000000000068.log: position 0, offset 68: segments overlap: 00000000000000000000.log runs to offset 69, past the next one.s base 68$' "$W/out"
check "...which are the offsets readers are refused" refused_match "$W/ixd"

# A damaged batch header (offset 3) and, further on, an index entry whose
# position is off by one byte (entry 9, offset 40): a reader of offsets
# 40-43 finds the entry wrong, walks from the start of the segment instead,
# and cannot get past offset 3.  verify used to report only offset 3, and
# did not look at the index.
ix_copy
forge put "$W/ixd/00000000000000000000.log" 177 58504231 >/dev/null
forge add32 "$W/ixd/00000000000000000000.index" 76 1 >/dev/null
expect 1 "verify of a damaged batch and a wrong index entry after it exits 1" verify "$W/ixd" --quiet
check "...reports the damaged batch's offset" \
	grep -q '^00000000000000000000.log: position 177, offset 3: bad magic: .*; offset 3 unreadable$' "$W/out"
check "...and the index entry, by file and entry, with the offsets it makes unreadable" \
	grep -q '^00000000000000000000.index: position 72, offset 40: entry 9 (offset 40, position 2391) is wrong: no batch starts at that position; offsets 40-43 unreadable$' "$W/out"
check "...which are the offsets readers are refused" refused_match "$W/ixd"
# A wrong entry alone costs a reader nothing, but is damage all the same.
ix_copy
forge put "$W/ixd/00000000000000000000.index" 72 0000000000000000 >/dev/null
expect 1 "verify of a zeroed index entry alone exits 1" verify "$W/ixd" --quiet
check "...names the entry, and no offset unreadable" \
	grep -q '^00000000000000000000.index: position 72: entry 9 (offset 0, position 0) is wrong: its position is 0, which no entry may name$' "$W/out"
check "...as readers read every offset" refused_match "$W/ixd"
run verify "$W/ixd" --json
check "...and --json gives \"unreadable\": 0 and the entry's file" json '
docs[0]["unreadable"] == 0 and docs[0]["unchecked"] == 0
and docs[0]["damage"][0]["file"] == "00000000000000000000.index"
and docs[0]["damage"][0]["offset"] is None'
ix_copy
run verify "$W/ixd" --json
check "verify --json of an intact topic: \"unreadable\": 0, \"unchecked\": 0" json '
docs[0]["ok"] is True and docs[0]["unreadable"] == 0 and docs[0]["unchecked"] == 0'

# A writer caught in the middle of an append in the last segment, at the
# end offset: the batch's header is still zero bytes, its records partly
# copied.  A writer stalled there (waiting for a page of the file) showed
# both passes the same bytes, reported as damage.  While a writer holds the
# topic's lock, what lies at and after the end offset is not judged; at
# rest the same bytes are damage, and damage below the end offset is
# reported while the lock is held.
ix_copy
forge in-flight "$W/ixd/00000000000000000068.log" >/dev/null
# ...and an entry of the time index that the writer has begun to store: its
# max_ts_before is there, its offset and position not yet.
tsize=$(wc -c <"$W/ixd/00000000000000000068.timeindex")
forge put "$W/ixd/00000000000000000068.timeindex" "$tsize" 01000000000000000000000000000000 >/dev/null
"$PYTHON" -c '
import fcntl, sys, time
f = open(sys.argv[1], "r+b")
fcntl.flock(f, fcntl.LOCK_EX)
open(sys.argv[2], "w").close()
time.sleep(60)
' "$W/ixd/topic.state" "$W/locked" &
BG_PID=$!
i=0
while [ ! -f "$W/locked" ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
expect 0 "verify while a writer holds the lock and an append is in flight at the end offset exits 0" \
	verify "$W/ixd" --quiet
forge add32 "$W/ixd/00000000000000000000.log" 24 1 >/dev/null
expect 1 "...while damage below the end offset is still reported" verify "$W/ixd" --quiet
check "...and only that" sh -c "grep -q 'offsets 0-3 unreadable' '$W/out' && ! grep -q 'zero bytes' '$W/out'"
kill "$BG_PID" 2>/dev/null
wait "$BG_PID" 2>/dev/null
BG_PID=
expect 1 "at rest, the same bytes at the end offset are damage" verify "$W/ixd" --quiet
check "...reported as such, with no offset unreadable: readers find the end there" grep -q '^00000000000000000068.log: position 720, offset 80: zero bytes where a batch should start, with data after them (51 bytes skipped)$' "$W/out"
check "...and so is the time index entry" grep -q "^00000000000000000068.timeindex: position $tsize: entry $((tsize / 16)) (offset 68, position 0) is wrong: its position is 0, which no entry may name\$" "$W/out"

# A missing segment in the middle of a topic is a gap in the offsets.
rm -rf "$W/gap"
cp -R "$T" "$W/gap"
second=$(ls "$W/gap" | grep '\.log$' | sed -n 2p)
rm -f "$W/gap/$second"
expect 1 "verify finds a missing segment (a gap in the offsets)" verify "$W/gap" --quiet
check "...and says where" grep -q 'offsets missing between segments' "$W/out"

# A FIFO (named pipe) in a topic directory must not hang the tool: the files
# it reads itself are opened without blocking, as the library opens its own,
# and one that is not a regular file is damage, reported by name.  Under
# `timeout`, so that a regression fails (exit status 124) instead of hanging.
LIMIT="timeout -k 5 20"
P=$W/pipe
expect 0 "create a topic for the FIFO checks" create "$P"
printf 'one\ntwo\nthree\n' | "$TOPIC" append "$P"
cp -R "$P" "$W/pipe.clean"
mkfifo "$P/00000000000000099999.log"
expect 1 "verify with a FIFO named like a segment exits 1, without hanging" verify "$P"
check "...and says the file is not a regular file" \
	grep -q '^00000000000000099999.log: position 0, offset 99999: not a regular file but a FIFO' "$W/out"
run verify "$P" --json
check "verify --json lists it as damage" json '
any(d["file"] == "00000000000000099999.log" and d["offset"] == 99999
    and "not a regular file" in d["problem"] for d in docs[0]["damage"])'
expect 1 "dump with a FIFO named like a segment exits 1, without hanging" dump "$P"
check "...and marks it damaged" grep -q '^  DAMAGED: not a regular file but a FIFO$' "$W/out"
expect 1 "dump --segment of the FIFO exits 1, without hanging" \
	dump "$P" --segment 00000000000000099999.log
expect 1 "info with a FIFO named like a segment exits 1, without hanging" info "$P"
check "...and names the file" \
	grep -q "^topic: info: .*/00000000000000099999.log: not a regular file but a FIFO$" "$W/err"
check "...marked in the list of segments" \
	grep -q '^  00000000000000099999.log  base 99999 .* not a regular file but a FIFO$' "$W/out"
run recover "$P"
check "recover with a FIFO named like a segment finishes" test "$st" -ne 124 -a "$st" -ne 137
check "...and names the FIFO, removed or left in place" \
	grep -q '00000000000000099999.log.*FIFO' "$W/out" "$W/err"

# A FIFO in place of a segment in the middle of a topic.
PM=$W/pipe-middle
expect 0 "create a topic of 4 KiB segments for a FIFO in the middle" \
	create "$PM" --config segment.bytes=4096
for i in 1 2 3 4 5 6 7 8; do seq 1 200 | "$TOPIC" append "$PM" >/dev/null 2>&1; done
mid=$(ls "$PM" | grep '\.log$' | sed -n 2p)
next=$(ls "$PM" | grep '\.log$' | sed -n 3p)
check "...which has at least three segments" test -n "$next"
# The base offsets, without the leading zeros (which would make them octal).
mid_base=$(printf '%s\n' "$mid" | sed 's/^0*\([0-9]\)/\1/; s/\.log$//')
next_base=$(printf '%s\n' "$next" | sed 's/^0*\([0-9]\)/\1/; s/\.log$//')
rm -f "$PM/$mid"
mkfifo "$PM/$mid"
expect 1 "verify with a FIFO in place of a middle segment exits 1, without hanging" verify "$PM"
check "...and names it with the offsets lost" grep -q "^$mid: position 0, offset $mid_base: \
not a regular file but a FIFO; offsets $mid_base-$((next_base - 1)) unreadable\$" "$W/out"
expect 1 "dump with a FIFO in place of a middle segment exits 1, without hanging" dump "$PM"
check "...and marks it damaged" grep -q '^  DAMAGED: not a regular file but a FIFO$' "$W/out"
expect 1 "info with a FIFO in place of a middle segment exits 1, without hanging" info "$PM"
check "...and names it" grep -q "/$mid: not a regular file but a FIFO\$" "$W/err"
expect 1 "read through a FIFO in place of a middle segment exits 1, without hanging" read "$PM"
check "...and names it" grep -q "^topic: read: .*/$mid: not a regular file but a FIFO\$" "$W/err"
expect 1 "recover leaves a FIFO in place of a middle segment as damage: exits 1" recover "$PM"
check "...and names it" grep -q "/$mid: not a regular file but a FIFO\$" "$W/err"

# A symbolic link there instead (a segment moved to another disk): the
# library does not follow it, and reports damage, as for a FIFO (it said
# ELOOP, and read named only that error).
rm -f "$PM/$mid"
ln -s "$W/elsewhere.log" "$PM/$mid"
expect 1 "read through a symbolic link in place of a middle segment exits 1" read "$PM"
check "...and names it" grep -q "^topic: read: .*/$mid: not a regular file but a symbolic link\$" "$W/err"

# A socket there instead: opening one fails (ENXIO) before its type can be
# read from the descriptor, and the tool used to report that error alone.
rm -f "$PM/$mid"
"$PYTHON" -c 'import socket, sys; socket.socket(socket.AF_UNIX).bind(sys.argv[1])' "$PM/$mid"
expect 1 "verify with a socket in place of a middle segment exits 1" verify "$PM"
check "...and names it" grep -q "^$mid: position 0, offset $mid_base: not a regular file but a socket;" "$W/out"
expect 1 "dump with a socket in place of a middle segment exits 1" dump "$PM"
check "...and marks it damaged" grep -q '^  DAMAGED: not a regular file but a socket$' "$W/out"

# A FIFO in place of an index file: derived data, which readers do without.
PI=$W/pipe-index
cp -R "$W/pipe.clean" "$PI"
rm -f "$PI/00000000000000000000.index"
mkfifo "$PI/00000000000000000000.index"
expect 0 "read with a FIFO in place of an index exits 0, without hanging" read "$PI"
printf 'one\ntwo\nthree\n' >"$W/want"
check "...and reads every record" cmp "$W/want" "$W/out"
expect 0 "info with a FIFO in place of an index exits 0, without hanging" info "$PI"
expect 1 "verify with a FIFO in place of an index exits 1, without hanging" verify "$PI"
check "...and names it" \
	grep -q '^00000000000000000000.index: position 0: not a regular file but a FIFO$' "$W/out"
run recover "$PI"
check "recover with a FIFO in place of an index finishes" test "$st" -ne 124 -a "$st" -ne 137
check "...and replaces the index or names the FIFO" sh -c "test $st -eq 0 &&
	test -f '$PI/00000000000000000000.index' ||
	grep -q '/00000000000000000000.index: not a regular file but a FIFO\$' '$W/err'"
check "...saying that it rebuilt it, not that nothing changed" sh -c "test $st -ne 0 ||
	{ grep -q '^00000000000000000000.index: rebuilt (it was a FIFO), [0-9]* bytes\$' '$W/out' &&
	! grep -q 'nothing changed' '$W/out'; }"

# Indexes that are not regular files, of the active segment and of a
# sealed one: what recover, readers and a writer make of each (topic(1),
# recover).
PX=$W/odd-index
"$TOPIC" create "$PX" --config segment.bytes=4096 >/dev/null 2>&1
seq -f 'record %06g, padded to fill a few segments' 1 300 | "$TOPIC" append "$PX" >/dev/null 2>&1
seq -f 'record %06g, padded to fill a few segments' 1 300 >"$W/px.want"
px_active=$(ls "$PX" | grep '\.log$' | tail -1)
px_active=${px_active%.log}
px_sealed=$(ls "$PX" | grep '\.log$' | sed -n 2p)
px_sealed=${px_sealed%.log}
check "the topic for odd indexes has sealed segments" test -n "$px_sealed" -a "$px_sealed" != "$px_active"
cp -R "$PX" "$W/odd-index.clean"
# The active segment's index as a symbolic link to a regular file.
rm -f "$PX/$px_active.index"
echo stray >"$PX/stray"
ln -s stray "$PX/$px_active.index"
expect 0 "recover with a symbolic link as the active segment's index exits 0" recover "$PX"
check "...saying that it rebuilt it" grep -q "^$px_active.index: rebuilt (it was a symbolic link), [0-9]* bytes\$" "$W/out"
check "...and replaces the link with a regular file" \
	sh -c "test -f '$PX/$px_active.index' -a ! -L '$PX/$px_active.index'"
check "...leaving what it led to alone" test "$(cat "$PX/stray")" = stray
expect 0 "...after which verify finds nothing wrong" verify "$PX"
# The active segment's index as a directory.
rm -f "$PX/$px_active.timeindex"
mkdir "$PX/$px_active.timeindex"
expect 0 "read with a directory as the active segment's index exits 0" read "$PX"
check "...and reads every record" cmp "$W/px.want" "$W/out"
expect 1 "recover with a directory as the active segment's index exits 1" recover "$PX"
check "...naming it and saying to remove it" grep -q "^topic: recover: $PX/$px_active.timeindex: not a regular file but a directory, which a writer does not remove; remove it, and recover rebuilds the index\$" "$W/err"
check "...without calling the data corrupt" sh -c "! grep -q corrupt '$W/err'"
check "...leaving the directory" test -d "$PX/$px_active.timeindex"
rmdir "$PX/$px_active.timeindex"
expect 0 "recover once the directory is removed exits 0" recover "$PX"
check "...and rebuilds the index as a regular file" test -f "$PX/$px_active.timeindex"
# A sealed segment's indexes: a FIFO, a directory and a link to a file are
# left to verify; a link that leads nowhere is rebuilt by a writer's open.
rm -f "$PX/$px_sealed.index" "$PX/$px_sealed.timeindex"
mkfifo "$PX/$px_sealed.index"
mkdir "$PX/$px_sealed.timeindex"
expect 0 "recover with a FIFO and a directory as a sealed segment's indexes exits 0" recover "$PX"
check "...and leaves both as they are" test -p "$PX/$px_sealed.index" -a -d "$PX/$px_sealed.timeindex"
expect 1 "...which verify reports (exit 1)" verify "$PX"
check "...naming them" sh -c "grep -q '^$px_sealed.index: position 0: not a regular file but a FIFO\$' '$W/out' &&
	grep -q '^$px_sealed.timeindex: position 0: not a regular file but a directory\$' '$W/out'"
expect 0 "read with a FIFO and a directory as a sealed segment's indexes exits 0" read "$PX"
check "...reads every record" cmp "$W/px.want" "$W/out"
check "...and changes neither" test -p "$PX/$px_sealed.index" -a -d "$PX/$px_sealed.timeindex"
rm -f "$PX/$px_sealed.index"
rmdir "$PX/$px_sealed.timeindex"
cp "$W/odd-index.clean/$px_sealed.timeindex" "$PX/"
ln -s stray "$PX/$px_sealed.index"
expect 0 "recover with a symbolic link to a file as a sealed segment's index exits 0" recover "$PX"
check "...and leaves it as it is" test -L "$PX/$px_sealed.index"
rm -f "$PX/$px_sealed.timeindex"
ln -s nowhere "$PX/$px_sealed.timeindex"
expect 0 "recover with a symbolic link that leads nowhere as a sealed segment's index exits 0" \
	recover "$PX"
check "...and rebuilds both of the segment's indexes as regular files" \
	sh -c "test -f '$PX/$px_sealed.timeindex' -a ! -L '$PX/$px_sealed.timeindex' -a ! -L '$PX/$px_sealed.index'"
rm -f "$PX/$px_sealed.index"
ln -s stray "$PX/$px_sealed.index"
if [ -n "$LIBTOPIC_PATH" ] && [ -f "$LIBTOPIC_PATH" ] && [ -n "$PYTHONPATH" ]; then
	rm -f "$PX/$px_sealed.timeindex"
	mkfifo "$PX/$px_sealed.timeindex"
	"$PYTHON" -c '
import sys, libtopic
t = libtopic.Topic(sys.argv[1])
n = sum(1 for _ in t.records(0))
t.close()
print(n)' "$PX" >"$W/py.out" 2>&1
	check "a writer handle reads a segment whose indexes are a link to a file and a FIFO" \
		test "$(cat "$W/py.out")" = 300
	check "...and replaces both with rebuilt regular files" \
		sh -c "test -f '$PX/$px_sealed.index' -a ! -L '$PX/$px_sealed.index' -a -f '$PX/$px_sealed.timeindex' -a ! -p '$PX/$px_sealed.timeindex'"
	expect 0 "...after which verify finds nothing wrong" verify "$PX"
fi

# A FIFO in place of topic.conf: the library refuses the topic as damaged.
PC=$W/pipe-conf
cp -R "$W/pipe.clean" "$PC"
rm -f "$PC/topic.conf"
mkfifo "$PC/topic.conf"
for cmd in info read config recover; do
	expect 1 "$cmd with a FIFO in place of topic.conf exits 1, without hanging" $cmd "$PC"
	check "...and says why ($cmd)" \
		grep -q '^topic: .*/topic.conf: not a regular file but a FIFO$' "$W/err"
done
expect 1 "verify with a FIFO in place of topic.conf exits 1, without hanging" verify "$PC"
check "...and names it" grep -q '^topic.conf: position 0: not a regular file but a FIFO$' "$W/out"
LIMIT=

# --------------------------------------------------------------------------
# recover

expect 0 "recover on a cleanly closed topic" recover "$D"
check "...changes nothing" grep -q '^nothing changed' "$W/out"
expect 3 "recover on a directory that is not a topic fails" recover "$W/nothing-here"

# A batch damaged after its writer was killed: the crash tore nothing, so
# recover keeps it and the records after it, says so, and exits 1.
PK=$W/killed-damage
expect 0 "create a topic whose every batch is indexed" create "$PK" --config index.interval.bytes=1
mkfifo "$W/kd.in"
"$TOPIC" append "$PK" <"$W/kd.in" >/dev/null 2>&1 &
BG_PID=$!
exec 7>"$W/kd.in"
for i in 1 2 3 4 5 6 7 8 9 10; do
	printf 'batch %s record a\nbatch %s record b\n' "$i" "$i" >&7
	sleep 0.05
done
kd_end=
for _ in $(seq 200); do
	"$TOPIC" info "$PK" --json >"$W/kd.info" 2>/dev/null &&
		kd_end=$("$PYTHON" -c 'import json,sys; print(json.load(sys.stdin)["end_offset"])' <"$W/kd.info")
	[ "$kd_end" = 20 ] && break
	sleep 0.05
done
kill -9 "$BG_PID" 2>/dev/null
wait "$BG_PID" 2>/dev/null
BG_PID=
exec 7>&-
check "the killed appender had appended all 20 records" test "$kd_end" = 20
kd_pos=$("$PYTHON" - "$PK/00000000000000000000.log" <<'PY'
import struct, sys
data = open(sys.argv[1], "rb").read()
pos, starts = 0, []
while pos + 51 <= len(data) and struct.unpack_from("<I", data, pos)[0] != 0:
    starts.append(pos)
    pos += struct.unpack_from("<I", data, pos + 4)[0]
print(starts[len(starts) // 2] + 60 if len(starts) > 2 else -1)
PY
)
check "the segment holds several batches" test "$kd_pos" -gt 0
forge put "$PK/00000000000000000000.log" "$kd_pos" ff
expect 1 "recover after a kill and a damaged batch exits 1: the damage remains" recover "$PK"
check "...says it kept the damaged bytes" grep -q '^00000000000000000000.log: kept damaged bytes at position [0-9]* (offset [0-9]*): the crash did not tear them' "$W/out"
check "...and kept every offset" grep -q '^start offset 0, end offset 20, closed cleanly$' "$W/out"
expect 0 "the last record reads back" read "$PK" --from 19
check "...as it was appended" test "$(cat "$W/out")" = "batch 10 record b"
expect 1 "verify reports the damaged batch" verify "$PK" --quiet

# A writer killed with its last appends in an open batch (FORMAT.md section
# 2.6), which only it, or the next writer, seals: verify counts its records
# and finds nothing wrong, dump shows it, and recover seals it.
if [ -n "$LIBTOPIC_PATH" ] && [ -f "$LIBTOPIC_PATH" ] && [ -n "$PYTHONPATH" ]; then
	PO=$W/killed-open
	"$PYTHON" -c '
import os, sys, libtopic
t = libtopic.Topic(sys.argv[1], create=True)
for i in range(5):
    t.append(b"open record %d" % i)
os._exit(0)' "$PO" >"$W/py.out" 2>&1
	check "a killed Python writer left five records" test -s "$PO/00000000000000000000.log"
	expect 0 "verify with a killed writer's open batch exits 0" verify "$PO"
	check "...and counts its records as open" \
		grep -q '^00000000000000000000.log: 0 batches, 5 records (5 in an open batch, not sealed yet), offsets 0-4' "$W/out"
	expect 0 "dump shows the open batch" dump "$PO"
	check "...as one" grep -q '^  open batch at position 0: base offset 0, 5 records' "$W/out"
	check "...with its records" grep -q 'offset 4 (unverified) .*value \[13\] "open record 4"' "$W/out"
	expect 0 "recover seals it for the dead writer" recover "$PO"
	expect 0 "...after which verify sees one sealed batch" verify "$PO"
	check "...of the five records" grep -q '^00000000000000000000.log: 1 batch, 5 records, offsets 0-4' "$W/out"
fi

# --------------------------------------------------------------------------
# delete-before

expect 0 "delete-before 3" delete-before "$D" 3
check "...says what the start offset became" grep -q 'start offset: 0 -> 3' "$W/out"
expect 1 "read --from below the start offset exits 1" read "$D" --from 1
check "...with the library's message" grep -q 'offset is below the start offset' "$W/err"
run read "$D" --count 1
check "read starts at the new start offset" test "$(cat "$W/out")" = "batch2 record a"
run info "$D" --json
check "info shows the new start offset" json 'docs[0]["start_offset"] == 3 and docs[0]["records"] == 6'
expect 1 "delete-before beyond the end offset exits 1" delete-before "$D" 100
expect 2 "delete-before with a malformed offset exits 2" delete-before "$D" three
expect 0 "delete-before 15000 on the many-segment topic" delete-before "$T" 15000
check "...deletes segments" grep -q 'start offset: 0 -> 15000 ([1-9][0-9]* segments* deleted)' "$W/out"
run info "$T" --json
check "...leaving the segment that holds the new start offset first" json '
docs[0]["start_offset"] == 15000 and docs[0]["segments"][0]["base_offset"] <= 15000
and (len(docs[0]["segments"]) == 1 or docs[0]["segments"][1]["base_offset"] > 15000)'
expect 0 "verify after delete-before" verify "$T" --quiet

# verify while a writer appends, rolls segments of 4 KiB and retention
# removes the oldest: what a single pass catches half done (a last batch, a
# segment rolled between two reads, a file removed after the listing) is
# not damage, and a second pass does not find it again.  A single pass
# reported such damage in about one run in seven here.
L=$W/live
"$TOPIC" create "$L" --config segment.bytes=4096 --config retention.bytes=40000 >/dev/null 2>&1
yes 'a line that a writer appends again and again' | timeout 30 "$TOPIC" append "$L" \
	>/dev/null 2>&1 &
live_pid=$!
i=0
while [ "$i" -lt 50 ] && ! "$TOPIC" info "$L" --json 2>/dev/null | grep -q '"end_offset":[1-9][0-9][0-9][0-9]'; do
	sleep 0.1
	i=$((i + 1))
done
false_alarms= left_out=0
for i in $(seq 1 60); do
	"$TOPIC" verify "$L" --quiet >"$W/out" 2>"$W/err"
	st=$?
	[ "$st" -eq 0 ] || false_alarms="$false_alarms $st:$(head -c 160 "$W/out" "$W/err" | tr '\n' ' ')"
	grep -q 'left out' "$W/out" && left_out=$((left_out + 1))
done
kill "$live_pid" 2>/dev/null
wait "$live_pid" 2>/dev/null
check "verify of a topic under a writer and retention reports no damage (60 runs, $left_out with a left-out note)" \
	test -z "$false_alarms"
[ -z "$false_alarms" ] || echo "#  $false_alarms" | head -c 2000
expect 0 "...and the topic verifies at rest" verify "$L" --quiet

# --------------------------------------------------------------------------
# Separators that some programs take for line ends stay escaped, as topic(1)
# says; printable UTF-8 beyond ASCII does not.

# dump judges a rolled segment whose data was zeroed: offsets are missing.
Z=$W/zeroed
expect 0 "create a topic of 4 KiB segments" create "$Z" --config segment.bytes=4096
for i in 1 2 3 4 5 6 7 8; do seq 1 200 | "$TOPIC" append "$Z" >/dev/null 2>&1; done
ZF=$(ls "$Z" | grep '\.log$' | head -1)
ZN=$(wc -c <"$Z/$ZF")
dd if=/dev/zero of="$Z/$ZF" bs=1 count="$ZN" conv=notrunc 2>/dev/null
run dump "$Z" -s 0
check "dump of a zeroed rolled segment exits 1" test "$st" -eq 1
check "...and names the offsets it lost" grep -q 'DAMAGED: offsets 0-[0-9]* missing: the segment ends before the next one begins' "$W/out"

# info prints what it can when the groups cannot be listed.
G=$W/nogroups
expect 0 "create a topic whose groups/ will be a plain file" create "$G"
printf 'x\n' | "$TOPIC" append "$G" >/dev/null 2>&1
printf 'junk\n' >"$G/groups"
run info "$G"
check "info with groups/ a plain file exits 3" test "$st" -eq 3
check "...still prints the offsets and the segments" grep -q '^end offset: *1$' "$W/out"
check "...and says why the groups are missing" grep -q 'consumer groups: Not a directory' "$W/err"
run info "$G" --json
check "info --json says so in groups_error" json 'docs[0]["end_offset"] == 1 and docs[0]["groups_error"] == "Not a directory"'

E="$W/escapes"
expect 0 "create a topic for the escape checks" create "$E"
printf 'a\342\200\250b\342\200\251c\357\273\277d\302\205e \303\251\n' >"$W/seps"
expect 0 "append U+2028, U+2029, U+FEFF, U+0085 and an accented letter" append "$E" <"$W/seps"
run read "$E"
printf 'a\\xe2\\x80\\xa8b\\xe2\\x80\\xa9c\\xef\\xbb\\xbfd\\xc2\\x85e \303\251\n' >"$W/want"
check "read escapes the separators, the BOM and C1 controls, not the letter" cmp "$W/want" "$W/out"
run read "$E" --json
printf '{"offset":0,"timestamp":TS,"key":null,"value":"a\\u2028b\\u2029c\\ufeffd\\u0085e \303\251"}\n' >"$W/want"
sed 's/"timestamp":[0-9]*/"timestamp":TS/' "$W/out" >"$W/got"
check "read --json escapes them too, so that a record stays on one line" cmp "$W/want" "$W/got"

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
