#!/usr/bin/env bash
# tests/scripts/cpu-config.sh: cpu's ssh_config as distributions ship it,
# and its time-outs and Ctrl-C while connecting, against our cpud on
# 127.0.0.1 (no 9P) and a listener that accepts and says nothing.
#   - glob Include (~/.ssh/config.d/*) in a home of its own; the
#     machine's own /etc/ssh/ssh_config (Debian's globs its .d folder)
#     read without a word
#   - Match originalhost/host/user/all; Match exec refused in one line,
#     without -d
#   - ConnectTimeout bounds the SSH login against a silent server (255),
#     and the TCP connect to a listener whose accept queue is full (254)
#   - SIGINT while cpu waits for the banner, and in the TCP connect: 130
#     at once
#   - StrictHostKeyChecking yes/no/accept-new with UserKnownHostsFile
#   - ServerAliveInterval/CountMax against a stopped cpud (SIGSTOP): 255
#     within interval*count and a margin
#
# CPU, CPUD: the binaries (default target/release/{cpu,cpud}).
set -euo pipefail
# shellcheck source=ssh/lib.sh
. "$(dirname "$0")/ssh/lib.sh"

cpu_bins
ssh_init cpu-config
unset SSH_AUTH_SOCK SSH_ASKPASS SSH_ASKPASS_REQUIRE

start_cpud cpud -hk "$W/host_ed25519" || exit 1

H=$W/home
mkdir -p "$H/.ssh/config.d"
cp "$W/client_ed25519" "$H/.ssh/board_key"
cpu() { HOME=$H timeout -k 5 60 "$CPU" -9p=false "$@"; }
# Without the host key check, whose "added host key" line would speak.
cpq() { cpu -hostkeycheck=false "$@"; }
# elapsed START: seconds since START (from now), one decimal.
elapsed() { secs "$1" "$(now)"; }
# within SECS ELAPSED: ELAPSED <= SECS.
within() { awk -v a="$2" -v b="$1" 'BEGIN { exit !(a <= b) }'; }

# --- glob Include ------------------------------------------------------------
# The alias lives in an included file only; a hidden file and a file the
# glob does not name must not count; the files are read in sorted order
# (10-board's Port wins over 20-late's).
cat >"$H/.ssh/config" <<CFG
Include config.d/*.conf
CFG
cat >"$H/.ssh/config.d/10-board.conf" <<CFG
Host board
	HostName 127.0.0.1
	Port $CPORT
	User cpu-rs-test
	IdentityFile ~/.ssh/board_key
CFG
printf 'Host board\n\tPort 1\n' >"$H/.ssh/config.d/20-late.conf"
printf 'Host board\n\tPort 2\n' >"$H/.ssh/config.d/.05-hidden.conf"
printf 'Host board\n\tPort 3\n' >"$H/.ssh/config.d/00-first.conf.bak"
out=$(cpq board echo included 2>"$W/include.err") || true
[ "$out" = included ] && [ ! -s "$W/include.err" ] &&
	pass "glob Include (config.d/*.conf, sorted, no hidden files), quietly" ||
	fail "glob Include: got '$out': $(cat "$W/include.err")"
rm "$H/.ssh/config.d/"*

# --- Match -------------------------------------------------------------------
# HostName from Match originalhost; Port from Match host+user (the user
# from the command line); a Match exec block ignored with one line.
NOPORT=$(free_port)
cat >"$H/.ssh/config" <<CFG
Match exec "false"
	Port 1
Match originalhost m-board
	HostName 127.0.0.1
Match host 127.0.0.1 user tester,other
	Port $CPORT
Match host 127.0.0.1 !user tester,other
	Port $NOPORT
Match all
	IdentityFile ~/.ssh/board_key
CFG
out=$(cpq tester@m-board echo matched 2>"$W/match.err") || true
want="cpu: $H/.ssh/config:1: Match exec is not supported; the block is ignored"
[ "$out" = matched ] && [ "$(cat "$W/match.err")" = "$want" ] &&
	pass "Match originalhost/host/user/all applied; Match exec refused in one line without -d" ||
	fail "Match: got '$out': $(cat "$W/match.err")"
rc=0
cpq nobody@m-board true 2>"$W/match2.err" || rc=$?
[ "$rc" = 254 ] && grep -q "cannot connect to 127.0.0.1:$NOPORT" "$W/match2.err" &&
	pass "Match !user: another user gets the other block's Port" ||
	fail "Match !user: got $rc: $(cat "$W/match2.err")"

# --- a server that accepts and says nothing -----------------------------------
cat >"$W/silent.py" <<'PY'
import socket, sys
s = socket.socket()
s.bind(("127.0.0.1", 0))
s.listen(16)
print("port", s.getsockname()[1], flush=True)
held = []
while True:
    c, _ = s.accept()
    held.append(c)
    print("accepted", len(held), flush=True)
PY
timeout 120 python3 "$W/silent.py" >"$W/silent.out" 2>&1 </dev/null &
SILENT=$!
track "$SILENT"
SPORT=$(wait_line "$W/silent.out" '^port [0-9]+' "$SILENT" 10 | cut -d' ' -f2) || true
if [ -n "$SPORT" ]; then
	cat >"$H/.ssh/config" <<CFG
Host silent
	HostName 127.0.0.1
	Port $SPORT
	IdentityFile ~/.ssh/board_key
	ConnectTimeout 2
Host silent-long
	HostName 127.0.0.1
	Port $SPORT
	IdentityFile ~/.ssh/board_key
CFG
	t0=$(now)
	rc=0
	cpu silent true 2>"$W/silent.err" || rc=$?
	t=$(elapsed "$t0")
	[ "$rc" = 255 ] && within 6 "$t" && grep -q "no SSH login within 2 s (ConnectTimeout)" "$W/silent.err" &&
		[ "$(wc -l <"$W/silent.err")" = 1 ] &&
		pass "ConnectTimeout 2 bounds the login against a silent server (255 in ${t}s)" ||
		fail "ConnectTimeout: got $rc in ${t}s: $(cat "$W/silent.err")"
	# SIGINT once cpu is connected and waits for the banner (30 s
	# default): it ends at once with 130.
	(HOME=$H exec timeout -k 5 60 "$CPU" -9p=false silent-long true 2>"$W/int.err") &
	IPID=$!
	if wait_line "$W/silent.out" '^accepted 2$' "$IPID" 20 >/dev/null; then
		t0=$(now)
		kill -INT "$IPID"
		rc=0
		wait "$IPID" || rc=$?
		t=$(elapsed "$t0")
		[ "$rc" = 130 ] && within 2 "$t" && grep -q "interrupted (SIGINT)" "$W/int.err" &&
			pass "SIGINT while waiting for the banner: 130 in ${t}s" ||
			fail "SIGINT while connecting: got $rc in ${t}s: $(cat "$W/int.err")"
	else
		fail "SIGINT case: cpu did not connect: $(cat "$W/int.err")"
	fi
else
	fail "the silent listener did not start: $(cat "$W/silent.out")"
fi

# --- a listener whose accept queue is full: the TCP connect never ends --------
# Linux drops the SYNs a full accept queue would take; the client keeps
# resending them. The first connect of the helper that goes unanswered
# proves the queue full.
cat >"$W/full.py" <<'PY'
import socket, time
s = socket.socket()
s.bind(("127.0.0.1", 0))
s.listen(0)
held = []
while True:
    c = socket.socket()
    c.settimeout(0.5)
    try:
        c.connect(s.getsockname())
        held.append(c)
    except socket.timeout:
        break
print("port", s.getsockname()[1], flush=True)
time.sleep(100)
PY
timeout 110 python3 "$W/full.py" >"$W/full.out" 2>&1 </dev/null &
FULL=$!
track "$FULL"
FPORT=$(wait_line "$W/full.out" '^port [0-9]+' "$FULL" 20 | cut -d' ' -f2) || true
if [ -n "$FPORT" ]; then
	printf 'Host full
	HostName 127.0.0.1
	Port %s
	IdentityFile ~/.ssh/board_key
	ConnectTimeout 1
' \
		"$FPORT" >"$H/.ssh/config"
	t0=$(now)
	rc=0
	cpu full true 2>"$W/full.err" || rc=$?
	t=$(elapsed "$t0")
	[ "$rc" = 254 ] && within 4 "$t" && grep -q "cannot connect to 127.0.0.1:$FPORT: no answer within 1 s (ConnectTimeout)" "$W/full.err" &&
		pass "ConnectTimeout 1 bounds the TCP connect (254 in ${t}s)" ||
		fail "ConnectTimeout, connect: got $rc in ${t}s: $(cat "$W/full.err")"
	# SIGINT while the connect waits (no ConnectTimeout: 30 s), seen in
	# the kernel's socket table.
	(HOME=$H exec timeout -k 5 60 "$CPU" -9p=false -key "$W/client_ed25519" -sp "$FPORT" 127.0.0.1 true 2>"$W/int-connect.err") &
	IPID=$!
	n=0
	# cpu's own SYN (the filler's last socket is in syn-sent too).
	until ss -Htnp state syn-sent "( dport = :$FPORT )" | grep -q '"cpu"' || [ $n -ge 100 ]; do sleep 0.1; n=$((n + 1)); done
	t0=$(now)
	kill -INT "$IPID"
	rc=0
	wait "$IPID" || rc=$?
	t=$(elapsed "$t0")
	[ "$rc" = 130 ] && within 2 "$t" && grep -q "interrupted (SIGINT)" "$W/int-connect.err" &&
		pass "SIGINT during the TCP connect: 130 in ${t}s" ||
		fail "SIGINT during connect: got $rc in ${t}s (syn-sent seen after $n polls): $(cat "$W/int-connect.err")"
	stop_pid "$FULL"
else
	fail "the full listener did not start: $(cat "$W/full.out")"
fi

# --- StrictHostKeyChecking and UserKnownHostsFile ------------------------------
KH=$W/kh/known
hk_config() {
	cat >"$H/.ssh/config" <<CFG
Host board
	HostName 127.0.0.1
	Port $CPORT
	IdentityFile ~/.ssh/board_key
	StrictHostKeyChecking $1
	UserKnownHostsFile $W/kh/known ~/.ssh/never-read
CFG
}
hk_config yes
rc=0
cpu board true 2>"$W/strict-yes.err" || rc=$?
[ "$rc" = 252 ] && grep -q "StrictHostKeyChecking is yes" "$W/strict-yes.err" && [ ! -e "$KH" ] &&
	pass "StrictHostKeyChecking yes: an unknown host key refused (252), nothing written" ||
	fail "strict yes: got $rc: $(cat "$W/strict-yes.err")"
hk_config accept-new
out=$(cpu board echo learned 2>"$W/strict-new.err") || true
[ "$out" = learned ] && grep -q "^\[127.0.0.1\]:$CPORT ssh-ed25519 " "$KH" &&
	[ ! -e "$H/.ssh/known_hosts" ] && grep -q "added host key" "$W/strict-new.err" &&
	pass "StrictHostKeyChecking accept-new: learned into UserKnownHostsFile" ||
	fail "accept-new: got '$out': $(cat "$W/strict-new.err"; cat "$KH" 2>&1)"
hk_config yes
out=$(cpu board echo known 2>&1) && [ "$out" = known ] &&
	pass "StrictHostKeyChecking yes: the known key passes" || fail "strict yes, known: got '$out'"
echo "[127.0.0.1]:$CPORT $(cut -d' ' -f1,2 "$W/wrong_ed25519.pub")" >"$KH"
rc=0
cpu board true 2>"$W/strict-changed.err" || rc=$?
[ "$rc" = 252 ] && grep -q "HAS CHANGED" "$W/strict-changed.err" &&
	pass "StrictHostKeyChecking yes: a changed key refused (252)" || fail "strict yes, changed: got $rc"
hk_config no
out=$(cpu board echo anyway 2>"$W/strict-no.err") || true
[ "$out" = anyway ] && grep -q "HAS CHANGED" "$W/strict-no.err" && grep -q "connecting anyway" "$W/strict-no.err" &&
	pass "StrictHostKeyChecking no: a changed key warned about, connected" ||
	fail "strict no: got '$out': $(cat "$W/strict-no.err")"

# --- ServerAliveInterval against a stopped cpud -------------------------------
# Last: the stopped daemon is continued, but its session is not reused.
cat >"$H/.ssh/config" <<CFG
Host board
	HostName 127.0.0.1
	Port $CPORT
	IdentityFile ~/.ssh/board_key
	ServerAliveInterval 1
	ServerAliveCountMax 2
CFG
resume_cpud() { kill -CONT "$CPID" 2>/dev/null || true; }
CLEANUP_HOOKS+=(resume_cpud)
(HOME=$H exec timeout -k 5 60 "$CPU" -9p=false -hostkeycheck=false board sh -c 'echo up; exec sleep 50' >"$W/alive.out" 2>"$W/alive.err") &
APID=$!
if wait_line "$W/alive.out" '^up$' "$APID" 20 >/dev/null; then
	kill -STOP "$CPID"
	t0=$(now)
	rc=0
	wait "$APID" || rc=$?
	t=$(elapsed "$t0")
	resume_cpud
	# 2 probes 1 s apart after 1 s of quiet: about 3 s; 2 s of margin.
	[ "$rc" = 255 ] && within 5 "$t" && grep -q "keepalive" "$W/alive.err" &&
		pass "ServerAliveInterval 1, CountMax 2: a stopped cpud detected (255 in ${t}s)" ||
		fail "ServerAlive: got $rc in ${t}s: $(cat "$W/alive.err")"
else
	resume_cpud
	fail "ServerAlive case: the command did not start: $(cat "$W/alive.err")"
fi

echo "cpu-config: $PASSES passed, $FAILS failed"
[ "$FAILS" = 0 ]
