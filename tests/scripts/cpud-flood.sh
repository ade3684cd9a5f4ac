#!/usr/bin/env bash
# tests/scripts/cpud-flood.sh: connections that never log in must not harm
# cpud (issue 17 point 1). A flood of FLOOD_N (default 2000) idle TCP
# connections from tests/py/flood.py is held open while OpenSSH's ssh and
# our `cpu -9p=false` log in; cpud stays up, its fd and thread counts stay
# under FD_CAP / THREAD_CAP (the -maxStartups cap of 100 holds; the peak
# is sampled every 50 connections), it logs
# the evictions, and logins work at once after the flood. Then the
# deadlines with -loginGraceTime 3s: a banner-only connection and an idle
# one are cut between 3 s and 3 s plus the reaper's tick, and logged. Then
# a cpud whose fd limit is cut to 64 under a flood of 300: it had raised
# its soft limit to the hard one, logs EMFILE at accept (not once per
# failure), stays up and lets ssh in once the flood is gone.
# sshd's figures for the same flood are printed beside ours (not judged).
# cpud runs in a private mount namespace on 127.0.0.1.
#
# CPU, CPUD: the binaries (default target/release/{cpu,cpud}). One
# PASS/FAIL line per case; exit 1 on any FAIL.
set -euo pipefail
# shellcheck source=ssh/lib.sh
. "$(dirname "$0")/ssh/lib.sh"

cpu_bins
ssh_init cpud-flood
unset SSH_AUTH_SOCK SSH_ASKPASS SSH_ASKPASS_REQUIRE
FLOOD_N=${FLOOD_N:-2000}
GRACE=3
# The bound cpud keeps: 100 startups (-maxStartups' full) plus at most as
# many cut and still going (the accept loop waits for them), 3 fds each
# (socket, reader, closer) and 4 threads each on runtime-std (1 fd, no
# thread on smol), plus 30 for the listener, logs and the reaper. Without
# the caps the same flood took cpud to 6,000 fds and 8,000 threads.
FD_CAP=${FD_CAP:-630}
THREAD_CAP=${THREAD_CAP:-830}
mkdir -p "$W/home"

start_cpud flood -hk "$W/host_ed25519" -log stderr -loginGraceTime "${GRACE}s" || exit 1

login_ok() { SSH_TMO=20 ossh "$CPORT" -- echo in 2>>"$W/ssh.err"; }
cpu_ok() {
	HOME=$W/home timeout -k 5 20 "$CPU" -9p=false -key "$W/client_ed25519" -sp "$CPORT" \
		127.0.0.1 echo cpu-in 2>>"$W/cpu.err"
}

# flood LABEL PORT PID [COUNT]: starts the flooder (stdin a FIFO held by
# fd 7), waits until it holds its connections. FLOOD_PID is set.
FLOOD_PID=''
flood() {
	local label=$1 port=$2 pid=$3 count=${4:-$FLOOD_N}
	rm -f "$W/$label.fifo"
	mkfifo "$W/$label.fifo"
	timeout -k 5 90 "$HOST_PY" "$PY_DIR/flood.py" "$port" "$count" "$pid" 60 \
		<"$W/$label.fifo" >"$W/$label.out" 2>"$W/$label.err" &
	FLOOD_PID=$!
	track "$FLOOD_PID"
	exec 7>"$W/$label.fifo"
	wait_line "$W/$label.out" '^holding' "$FLOOD_PID" 60 >/dev/null
}
end_flood() {
	exec 7>&-
	wait "$FLOOD_PID" 2>/dev/null || true
}

# --- the flood against cpud --------------------------------------------------
t0=$(now)
if flood cpud "$CPORT" "$CPID"; then
	pass "flooder holds $(sed -n 's/^opened //p' "$W/cpud.out") connections ($(secs "$t0" "$(now)") s)"
else
	fail "flooder did not get to hold its connections: $(cat "$W/cpud.err")"
fi
out=$(login_ok) && [ "$out" = in ] && pass "OpenSSH ssh logs in during the flood" ||
	fail "ssh during the flood: '$out' $(tail -n 3 "$W/ssh.err")"
out=$(cpu_ok) && [ "$out" = cpu-in ] && pass "cpu -9p=false logs in during the flood" ||
	fail "cpu during the flood: '$out' $(tail -n 3 "$W/cpu.err")"
fds=$(find "/proc/$CPID/fd" -mindepth 1 2>/dev/null | wc -l)
threads=$(awk '/^Threads:/ {print $2}' "/proc/$CPID/status" 2>/dev/null || echo -1)
end_flood
alive "$CPID" && pass "cpud is up after the flood" || fail "cpud died: $(tail -n 5 "$W/flood.err")"
read -r _ _ pfds _ pthreads < <(grep '^final peak' "$W/cpud.out" | sed 's/^final //') || true
say "cpud during the flood: peak fds ${pfds:-?} threads ${pthreads:-?}; while held: fds $fds threads $threads"
if [ -n "${pfds:-}" ] && [ "$pfds" -gt 0 ] && [ "$pfds" -le "$FD_CAP" ] && [ "$pthreads" -le "$THREAD_CAP" ]; then
	pass "fds (peak $pfds <= $FD_CAP) and threads (peak $pthreads <= $THREAD_CAP) bounded"
else
	fail "fds peak ${pfds:-?} (cap $FD_CAP), threads peak ${pthreads:-?} (cap $THREAD_CAP)"
fi
n=$(grep -c 'evicted before login' "$W/flood.err" || true)
[ "$n" -ge $((FLOOD_N - 200)) ] && pass "evictions logged ($n)" || fail "evictions logged: $n"
t0=$(now)
out=$(login_ok) && [ "$out" = in ] && pass "ssh logs in right after the flood ($(secs "$t0" "$(now)") s)" ||
	fail "ssh after the flood: '$out'"

# --- deadlines: banner-only and idle connections are cut ---------------------
# hold_until_cut BANNER: connects, sends the banner if any, prints the
# seconds until cpud closes the connection (or "open" after GRACE+10 s).
hold_until_cut() {
	timeout -k 5 30 "$HOST_PY" - "$CPORT" "$1" "$((GRACE + 10))" <<'EOF'
import socket, sys, time
port, banner, limit = int(sys.argv[1]), sys.argv[2], float(sys.argv[3])
s = socket.create_connection(("127.0.0.1", port), timeout=5)
t = time.monotonic()
if banner:
    s.sendall(banner.encode() + b"\r\n")
s.settimeout(limit)
try:
    while s.recv(4096):
        pass
    print(f"{time.monotonic() - t:.1f}")
except (socket.timeout, ConnectionResetError):
    print("open" if time.monotonic() - t >= limit else f"{time.monotonic() - t:.1f}")
EOF
}
in_bounds() { awk -v s="$1" -v g="$GRACE" 'BEGIN { exit !(s != "open" && s >= g - 0.2 && s <= g + 2) }'; }
s=$(hold_until_cut SSH-2.0-banner-only)
if in_bounds "$s" && wait_line "$W/flood.err" 'cut before login: login grace time over' "$CPID" 5 >/dev/null; then
	pass "a banner-only connection is cut after the ${GRACE}s grace time (${s} s), logged"
else
	fail "banner-only: cut after '$s' s, log: $(grep 'cut before' "$W/flood.err" | tail -n 1)"
fi
s=$(hold_until_cut '')
if in_bounds "$s" && wait_line "$W/flood.err" 'cut before login: no identification line in time' "$CPID" 5 >/dev/null; then
	pass "an idle connection is cut after its identification deadline (${s} s), logged"
else
	fail "idle: cut after '$s' s, log: $(grep 'cut before' "$W/flood.err" | tail -n 1)"
fi
alive "$CPID" && pass "cpud is still up" || fail "cpud died"

# --- out of fds: accept fails (EMFILE), cpud goes on -------------------------
# The fd limit is cut to 64 under the running cpud (it raised its own to
# the hard limit at start: the hard one is cut too).
stop_pid "$CPID"
ulimit -Sn 1024
start_cpud emfile -hk "$W/host_ed25519" -log stderr || exit 1
lim=$(awk '/^Max open files/ {print $4 ":" $5}' "/proc/$CPID/limits")
hard=${lim#*:}
[ "$hard" != 1024 ] && [ "${lim%%:*}" = "$hard" ] && pass "cpud raised its soft fd limit to the hard one ($lim)" ||
	fail "fd limit soft:hard $lim"
if prlimit --pid "$CPID" --nofile=64:64; then
	flood emfile-flood "$CPORT" "$CPID" 300 || fail "flooder against the fd-starved cpud"
	end_flood
	if wait_line "$W/emfile.err" 'accept: .*(Too many open files|No file descriptors).*retrying' "$CPID" 10 >/dev/null; then
		n=$(grep -c 'accept: ' "$W/emfile.err")
		[ "$n" -le 2 ] && pass "EMFILE at accept is logged, not repeated ($n line(s))" ||
			fail "EMFILE at accept logged $n times"

	else
		fail "no accept failure logged: $(tail -n 3 "$W/emfile.err")"
	fi
	alive "$CPID" && pass "cpud is up after running out of fds" || fail "cpud died out of fds: $(tail -n 3 "$W/emfile.err")"
	out=$(login_ok) && [ "$out" = in ] && pass "ssh logs in once the fds are back" ||
		fail "ssh after the fd starvation: '$out'"
else
	skip "prlimit cannot cut cpud's fd limit"
fi

# --- sshd's figures, for comparison (printed, not judged) --------------------
if start_openssh_sshd sshd 2>/dev/null; then
	if flood sshd "$SPORT" "$SPID"; then
		rc=0
		timeout -k 5 20 "$SYS_SSH" -p "$SPORT" -i "$W/client_ed25519" "${OSSH_OPTS[@]}" -o LogLevel=QUIET \
			"$ME@127.0.0.1" true 2>/dev/null || rc=$?
		[ "$rc" = 0 ] && how="logs in" || how="is refused (rc $rc)"
		end_flood
		say "sshd under the same flood: $(grep '^final peak' "$W/sshd.out" | sed 's/^final //') (listener only); a login during it $how"
	else
		end_flood
	fi
fi

echo "cpud-flood: $PASSES passed, $FAILS failed"
[ "$FAILS" = 0 ]
