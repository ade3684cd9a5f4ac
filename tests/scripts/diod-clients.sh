#!/bin/bash
# diod-clients.sh [ours|diod]: host-side userspace-client test of a 9P2000.L
# server. Serves a temporary tree on a loopback port and checks that
#   - diodls and diodls -l list exactly the local tree's names (and sizes),
#   - diodcat -m 65536 of several files (one multi-MiB random) matches sha256,
#   - ".." walks and symlinks pointing outside the export do not reveal a
#     file next to the export (for diod, which is not a confinement boundary,
#     a leak is reported as XFAIL and does not fail the suite).
# Server kind: $1, else $SERVER, else "ours". Exit status: number of failures.
set -uo pipefail
. "$(dirname "$0")/lib.sh"
KIND=${1:-${SERVER:-ours}}
BIG_MB=${BIG_MB:-8}
T=10  # per-client time-out, seconds

W=$(mkwork clients) || exit 99
trap 'stop_server; cleanup_work "$W"' EXIT
E=$W/export
mkdir -p "$E/sub/nested" "$E/emptydir"
echo "hello from the host" > "$E/hello.txt"
: > "$E/empty"
head -c 65535 /dev/urandom > "$E/sub/m-1"
head -c 65536 /dev/urandom > "$E/sub/m"
head -c 65537 /dev/urandom > "$E/sub/m+1"
head -c 1000 /dev/urandom > "$E/sub/nested/small.bin"
dd if=/dev/urandom of="$E/big.bin" bs=1M count="$BIG_MB" status=none
head -c 3333333 /dev/urandom > "$E/odd.bin"
for i in $(seq -w 1 300); do echo "$i" > "$E/sub/f$i"; done
# Escape probes: a secret next to the export, and links pointing at it.
SECRET="SECRET-$$-$RANDOM$RANDOM"
echo "$SECRET" > "$W/secret.txt"
ln -s "$W/secret.txt" "$E/esc-abs"
ln -s ../secret.txt "$E/esc-rel"
ln -s .. "$E/esc-dir"
ln -s ../.. "$E/sub/esc-up2"

start_server "$KIND" "$E" "$W/server.log" || { echo "FAIL server start"; exit 1; }
S=(-s "127.0.0.1:$SERVER_PORT" -a "$SERVER_ANAME")

# 1. Listings: names (and for -l, sizes of regular files).
for d in . sub sub/nested emptydir; do
	want=$(cd "$E/$d" && ls -A | LC_ALL=C sort)
	if [ "$d" = . ]; then got=$(timeout $T diodls "${S[@]}" 2> "$W/err"); rc=$?
	else got=$(timeout $T diodls "${S[@]}" "$d" 2> "$W/err"); rc=$?; fi
	got=$(printf '%s\n' "$got" | sed '/^$/d' | LC_ALL=C sort)
	[ $rc = 0 ] || fail "diodls $d: exit $rc: $(head -c 300 "$W/err")"
	eq "diodls $d names ($(printf '%s\n' "$want" | sed '/^$/d' | wc -l) entries)" "$got" "$want"
	long=$(timeout $T diodls -l "${S[@]}" $([ "$d" = . ] || echo "$d") 2> "$W/err"); rc=$?
	[ $rc = 0 ] || fail "diodls -l $d: exit $rc: $(head -c 300 "$W/err")"
	got=$(printf '%s\n' "$long" | awk 'NF >= 9 { print $NF }' | grep -vx '\.\|\.\.' | LC_ALL=C sort)
	eq "diodls -l $d names" "$got" "$want"
	# size column of regular files
	wants=$(cd "$E/$d" && find . -mindepth 1 -maxdepth 1 -type f -printf '%f %s\n' | LC_ALL=C sort)
	gots=$(printf '%s\n' "$long" | awk 'NF >= 9 && substr($1,1,1) == "-" { print $NF, $5 }' |
		while read -r n s; do [ -f "$E/$d/$n" ] && [ ! -L "$E/$d/$n" ] && echo "$n $s"; done | LC_ALL=C sort)
	eq "diodls -l $d sizes" "$gots" "$wants"
done

# 2. Contents.
for f in hello.txt empty sub/m-1 sub/m sub/m+1 sub/nested/small.bin big.bin odd.bin sub/f150; do
	want=$(sha256sum < "$E/$f" | cut -d' ' -f1)
	got=$(timeout $T diodcat -m 65536 "${S[@]}" "$f" 2> "$W/err" | sha256sum | cut -d' ' -f1)
	rc=${PIPESTATUS[0]}
	[ $rc = 0 ] || fail "diodcat $f: exit $rc: $(head -c 300 "$W/err")"
	eq "diodcat -m 65536 $f sha256 ($(stat -c %s "$E/$f") bytes)" "$got" "$want"
done
t0=$(now)
got=$(timeout 60 diodcat -m 65536 "${S[@]}" big.bin | sha256sum | cut -d' ' -f1)
t1=$(now)
echo "TIME diodcat ${BIG_MB} MiB: $(secs "$t0" "$t1") s"
got=$(timeout $T diodcat -m 8192 "${S[@]}" odd.bin | sha256sum | cut -d' ' -f1)
eq "diodcat -m 8192 odd.bin sha256" "$got" "$(sha256sum < "$E/odd.bin" | cut -d' ' -f1)"

# 3. Errors: a missing file must fail cleanly, the server must survive.
if timeout $T diodcat "${S[@]}" no-such-file > /dev/null 2> "$W/err"; then
	fail "diodcat of a missing file succeeded"
else
	grep -qi 'no such file' "$W/err" && pass "diodcat missing file: ENOENT" ||
		fail "diodcat missing file: unexpected error: $(head -c 300 "$W/err")"
fi

# 4. Escapes: none may reveal the secret.
leaks=''
for p in ../secret.txt sub/../../secret.txt esc-abs esc-rel esc-dir/secret.txt sub/esc-up2/secret.txt \
	sub/nested/../../../secret.txt; do
	out=$(timeout $T diodcat "${S[@]}" "$p" 2>&1)
	if printf '%s' "$out" | grep -q "$SECRET"; then
		leaks="$leaks $p"
		echo "RESULT escape:$p LEAK"
	else
		echo "RESULT escape:$p blocked"
	fi
done
for a in "$SERVER_ANAME/.." "$SERVER_ANAME/../.." ".." "/.."; do
	out=$(timeout $T diodls "${S[@]:0:2}" -a "$a" 2>&1)
	printf '%s\n' "$out" | grep -qx 'secret.txt' && { leaks="$leaks aname:$a"; echo "RESULT escape-aname:$a LEAK"; } ||
		echo "RESULT escape-aname:$a blocked"
done
out=$(timeout $T diodls "${S[@]}" .. 2>&1)
printf '%s\n' "$out" | grep -qx 'secret.txt' && leaks="$leaks ls:.."
if [ -z "$leaks" ]; then
	pass "no escape through '..' or symlinks"
elif [ "$KIND" = diod ]; then
	echo "XFAIL diod reveals files outside the export through:$leaks (diod follows host symlinks and '..'; known, not a confinement boundary)"
else
	fail "escape: the secret outside the export was revealed through:$leaks"
fi

# 5. The server is still healthy after all that.
got=$(timeout $T diodcat "${S[@]}" hello.txt 2>&1)
eq "server alive at the end" "$got" "hello from the host"
alive "$SERVER_PID" && pass "server process still running" || fail "server process died (log $W/server.log)"

echo "diod-clients ($KIND): $PASSES passed, $FAILS failed"
exit "$FAILS"
