#!/bin/bash
# fs-suites.sh [ours|diod] [all|pjd|fsx]: pjdfstest and fsx on a 9p mount in
# the QEMU guest (tests/guest/fstests.sh), against a host 9P server.
#   pjdfstest (naptime 0.02) runs first on a tmpfs folder in the guest (the
#   baseline), then on the 9p mount. A case that passes on tmpfs but not on
#   the mount is a regression: for "ours" every regression fails the suite
#   unless it is listed, with a reason, in tests/scripts/pjdfstest-allow.txt.
#   For diod (the reference) regressions are only reported.
#   fsx -N $FSX_OPS (10000) runs with mmap on cache=none and cache=loose mounts,
#   and again without mmap if the mmap run fails. cache=loose must pass with
#   mmap; cache=none may need the run without mmap when the mmap one fails
#   with EINVAL (the Linux client has no writable shared mmap without a cache).
# Needs pjdfstest and fsx in $TOOLS_BIN (tests/run-all.sh installs them).
# Env: SERVER, FSX_OPS, GUEST_TIMEOUT (1500), FS_SERVER_ARGS (extra cpu9p flags,
# default -allow-devices), RESULTS_DIR (KIND-pjd.list:
# "name status" per case on the mount, KIND-pjd-tmpfs.list; for comparisons).
# Exit status: number of failed checks.
set -uo pipefail
. "$(dirname "$0")/lib.sh"
KIND=${1:-${SERVER:-ours}}
WHAT=${2:-all}
OPS=${FSX_OPS:-10000}
GT=${GUEST_TIMEOUT:-1500}
ALLOW=$REPO/tests/scripts/pjdfstest-allow.txt

W=$(mkwork fstests) || exit 99
trap 'stop_server; cleanup_work "$W"' EXIT
for t in pjdfstest fsx; do
	[ -x "$TOOLS_BIN/$t" ] || { echo "FAIL no $TOOLS_BIN/$t (cargo install --locked $t)"; exit 1; }
done
IMG=$(guest_image) || { echo "FAIL build-image"; exit 1; }

# Guest configuration: two extra users for pjdfstest's dummy_auth.
cat > "$W/passwd" <<'EOF'
root:x:0:0:root:/root:/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
pjd1:x:1001:1001:pjd1:/nonexistent:/bin/false
pjd2:x:1002:1002:pjd2:/nonexistent:/bin/false
EOF
cat > "$W/group" <<'EOF'
root:x:0:
tty:x:5:
pjd1:x:1001:
pjd2:x:1002:
nogroup:x:65534:
EOF
cat > "$W/pjdfstest.toml" <<'EOF'
[features]
posix_fallocate = {}
rename_ctime = {}
utime_now = {}
utimensat = {}
[settings]
naptime = 0.02
allow_remount = false
[dummy_auth]
entries = [["pjd1", "pjd1"], ["pjd2", "pjd2"]]
EOF
cat > "$W/fsx-nommap.toml" <<'EOF'
[weights]
mapread = 0
mapwrite = 0
invalidate = 0
EOF

E=$W/export
mkdir -p "$E"
# pjdfstest creates block and char devices: cpu9p refuses them (EPERM) unless
# -allow-devices, so the POSIX comparison runs with it.
if [ "$KIND" = ours ]; then read -r -a SARGS <<< "${FS_SERVER_ARGS--allow-devices}"; else SARGS=(); fi
start_server "$KIND" "$E" "$W/server.log" "${SARGS[@]}" || { echo "FAIL server start"; exit 1; }
log=$W/guest.log
t0=$(now)
timeout -k 10 $((GT + 30)) "$VM_DIR/run-guest.sh" -i "$IMG" -m 1024 -T "$GT" -l "$log" \
	-a "$REPO/tests/guest/fstests.sh:/bin/fstests.sh" \
	-a "$TOOLS_BIN/pjdfstest" -a "$TOOLS_BIN/fsx" \
	-a "$W/passwd:/etc/passwd" -a "$W/group:/etc/group" \
	-a "$W/pjdfstest.toml:/etc/pjdfstest.toml" -a "$W/fsx-nommap.toml:/etc/fsx-nommap.toml" \
	-- sh /bin/fstests.sh "$SERVER_PORT" "$SERVER_ANAME" "$OPS" "$WHAT" > /dev/null 2> "$W/run-guest.err"
rc=$?
t1=$(now)
echo "TIME $KIND fs-suites guest run: $(secs "$t0" "$t1") s (exit $rc)"
alive "$SERVER_PID" && pass "server still running after the guest" || fail "server died (log $W/server.log)"
stop_server
tr -d '\r' < "$log" > "$log.txt"
grep -q '^FSTESTS-DONE' "$log.txt" && pass "guest fstests ran to the end" ||
	fail "guest fstests did not finish (exit $rc): $(grep -v '^PJD\|^FSX\|^RESULT\|^TIME' "$log.txt" | tail -n 5 | tr '\n' '|')"
grep '^TIME' "$log.txt" | sed "s/^TIME /TIME $KIND /"
grep '^RESULT mount' "$log.txt" && fail "mount in the guest"

# pjdfstest: "name status" per case, for tmpfs and the mount.
cases() { # cases LABEL -> "name ok|FAILED|skipped|expected"
	awk -v l="$1" '$1 == "PJD" && $2 == l && NF == 4 && $3 ~ /::/ { print $3, $4 }' "$log.txt" | LC_ALL=C sort
}
if [ "$WHAT" != fsx ]; then
	cases tmpfs > "$W/pjd-tmpfs.list"
	cases 9p > "$W/pjd-9p.list"
	for l in tmpfs 9p; do
		echo "PJDFSTEST $KIND $l: $(grep "^PJD $l Summary:" "$log.txt" | cut -d' ' -f3- || echo 'no summary')" \
			"(counted: $(awk '{ n[$2]++ } END { for (s in n) printf "%s %s ", s, n[s] }' "$W/pjd-$l.list"))"
	done
	[ -s "$W/pjd-tmpfs.list" ] && pass "pjdfstest ran on tmpfs ($(wc -l < "$W/pjd-tmpfs.list") cases)" || fail "pjdfstest on tmpfs: no results"
	[ -s "$W/pjd-9p.list" ] && pass "pjdfstest ran on 9p ($(wc -l < "$W/pjd-9p.list") cases)" || fail "pjdfstest on 9p: no results"
	# Regressions: ok on tmpfs, not ok on the mount.
	join "$W/pjd-tmpfs.list" "$W/pjd-9p.list" | awk '$2 == "ok" && $3 != "ok" { print $1, $3 }' > "$W/regressions"
	sed -n 's/^\([^#[:space:]]*\).*/\1/p' "$ALLOW" 2>/dev/null | sort -u > "$W/allowed"
	nreg=0 nallowed=0
	while read -r name st; do
		why=$(awk -v n="$name" '
			$1 == "PJD" && $2 == "9p" { if (f && $3 !~ /::/) { $1 = $2 = ""; sub(/^ */, ""); print; exit } f = ($3 == n) }' "$log.txt")
		if grep -qxF "$name" "$W/allowed"; then
			nallowed=$((nallowed + 1))
			echo "  pjdfstest regression (allowed): $name $st: $why"
		else
			nreg=$((nreg + 1))
			echo "  pjdfstest regression: $name $st: $why"
		fi
	done < "$W/regressions"
	echo "slowest pjdfstest cases on 9p (s):"
	awk '$1 == "PJDT" && $2 == "9p" { if (p != "") print $3 - p, $4; p = $3 }' "$log.txt" | sort -rn | head -n 8 | sed 's/^/  /'
	echo "PJDFSTEST $KIND regressions (pass on tmpfs, not on 9p): $((nreg + nallowed)) ($nallowed allowed)"
	if [ "$KIND" = diod ]; then
		echo "INFO diod is the reference: its $nreg regression(s) are reported, not failed"
	elif [ "$nreg" = 0 ]; then
		pass "pjdfstest: every case that passes on tmpfs passes on the mount (allow-list: $nallowed)"
	else
		fail "pjdfstest: $nreg case(s) pass on tmpfs but fail on the mount"
	fi
	[ -n "${RESULTS_DIR:-}" ] && mkdir -p "$RESULTS_DIR" &&
		cp "$W/pjd-9p.list" "$RESULTS_DIR/$KIND-pjd.list" && cp "$W/pjd-tmpfs.list" "$RESULTS_DIR/$KIND-pjd-tmpfs.list"
fi

# fsx.
if [ "$WHAT" != pjd ]; then
	for m in none loose; do
		r=$(awk -v n="fsx_$m-mmap" '$1 == "RESULT" && $2 == n { print $3 }' "$log.txt")
		r2=$(awk -v n="fsx_$m-nommap" '$1 == "RESULT" && $2 == n { print $3 }' "$log.txt")
		echo "FSX $KIND cache=$m -N $OPS: with mmap: ${r:-missing}${r2:+, without mmap: $r2}"
		if [ "$r" = ok ]; then
			pass "fsx cache=$m with mmap ($OPS ops)"
		elif [ "$m" = none ] && [ "$r2" = ok ] && grep -q "^FSX none-mmap .*EINVAL" "$log.txt"; then
			# Linux v9fs with cache=none maps files read-only (generic_file_readonly_mmap):
			# a writable MAP_SHARED mapping fails with EINVAL in the client.
			pass "fsx cache=none without mmap ($OPS ops; the client refuses writable shared mmap without a cache: EINVAL)"
		else
			grep "^FSX $m-mmap " "$log.txt" | tail -n 12 | sed 's/^/  /'
			fail "fsx cache=$m with mmap: ${r:-missing}${r2:+ (without mmap: $r2)}"
		fi
	done
fi
echo "fs-suites ($KIND): $PASSES passed, $FAILS failed"
exit "$FAILS"
