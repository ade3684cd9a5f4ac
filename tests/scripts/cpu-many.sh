#!/usr/bin/env bash
# tests/scripts/cpu-many.sh: many simultaneous cpu sessions against one
# cpud (on loopback, in a private mount namespace; the file service goes
# through FUSE on a kernel without 9p). Each session reads a different
# local file through /tmp/cpu and prints its sha256, which must match.
# Afterwards nothing may be left: no session child, no command, every
# cpu exited. CPU_MANY (default 200) sessions; CPU, CPUD as elsewhere.
set -euo pipefail
# shellcheck source=ssh/lib.sh
. "$(dirname "$0")/ssh/lib.sh"

cpu_bins
N=${CPU_MANY:-200}
ssh_init cpu-many
# All N log in at once: cpud's cap on connections not yet logged in
# (-maxStartups, sshd's 10:30:100 by default) is raised above N, as an
# operator expecting such bursts would (cpud-flood.sh tests the cap).
start_cpud cpud -hk "$W/host_ed25519" -maxStartups $((N + 16)) || exit 1
HD=$(mktemp -d /home/cpu-rs-many.XXXXXX)
drop_hd() { rm -rf "$HD"; }
CLEANUP_HOOKS+=(drop_hd)
for i in $(seq 1 "$N"); do
	head -c $((64 * 1024 + i * 997)) /dev/urandom >"$HD/f$i"
done
t0=$(now)
pids=()
for i in $(seq 1 "$N"); do
	(cd "$HD" && HOME=$W/home exec timeout -k 5 300 "$CPU" -hostkeycheck=false -key "$W/client_ed25519" \
		-sp "$CPORT" 127.0.0.1 sha256sum "f$i" >"$W/out$i" 2>"$W/err$i") &
	pids+=($!)
done
bad=0
for i in $(seq 1 "$N"); do
	rc=0
	wait "${pids[$((i - 1))]}" || rc=$?
	want=$(sha_of "$HD/f$i")
	got=$(cut -d' ' -f1 "$W/out$i" 2>/dev/null || true)
	if [ "$rc" != 0 ] || [ "$got" != "$want" ]; then
		bad=$((bad + 1))
		[ $bad -le 3 ] && say "session $i: rc $rc, got '$got': $(head -c 300 "$W/err$i")"
	fi
done
t1=$(now)
secs=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }')
[ "$bad" = 0 ] && pass "$N simultaneous sessions, each sha256 right ($secs s)" ||
	fail "$bad of $N sessions failed ($secs s)"
n=0
while pgrep -f -- "$CPUD -remote" >/dev/null && [ $n -lt 100 ]; do sleep 0.1; n=$((n + 1)); done
left=$(pgrep -fa -- "$CPUD -remote|sha256sum f[0-9]" || true)
[ -z "$left" ] && pass "nothing left behind on the cpud side" || fail "left behind: $(head -3 <<<"$left")"
alive "$CPID" && pass "cpud still serves" || fail "cpud died: $(tail -3 "$W/cpud.err")"

echo "cpu-many: $PASSES passed, $FAILS failed"
[ "$FAILS" = 0 ]
