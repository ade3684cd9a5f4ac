#!/usr/bin/env bash
# tests/scripts/cpud-auth.sh: OpenSSH's ssh against our cpud, for what cpud
# decides and tells about logins: the authorized_keys options (command= with
# SSH_ORIGINAL_COMMAND, from= matching and not, no-pty, no-port-forwarding,
# expiry-time, environment= refused and then honoured with
# -permitUserEnvironment, restrict and pty, an unknown option refusing its
# line), the login log lines (accepted with user, address, port, key type and
# the SHA256 fingerprint ssh-keygen shows; refused with the reason), a
# timestamp on every line, syslog records to a socket, -h and -version.
# cpud runs in a private mount namespace on 127.0.0.1.
#
# CPUD: the binary (default target/release/cpud); CPU likewise (for the cpu
# client refused by no-port-forwarding). One PASS/FAIL line per case; exit 1
# on any FAIL.
set -euo pipefail
# shellcheck source=ssh/lib.sh
. "$(dirname "$0")/ssh/lib.sh"

cpu_bins
ssh_init cpud-auth
PUB=$(cat "$W/client_ed25519.pub")
FP=$(ssh-keygen -lf "$W/client_ed25519.pub" | awk '{print $2}')
WRONG_FP=$(ssh-keygen -lf "$W/wrong_ed25519.pub" | awk '{print $2}')
# re TEXT: TEXT as an ERE matching itself (fingerprints have + and /).
re() { sed 's/[][\.*^$+?(){}|]/\\&/g' <<<"$1"; }
FP=$(re "$FP")
WRONG_FP=$(re "$WRONG_FP")
TS='[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z cpud: '

# The forced command: what it was run with, and the client's command.
cat >"$W/forced.sh" <<'EOF'
#!/bin/sh
echo "forced:$SSH_ORIGINAL_COMMAND"
EOF
chmod 755 "$W/forced.sh"

# with_keys LINE...: the authorized_keys file, one line each.
with_keys() { printf '%s\n' "$@" >"$W/authorized_keys"; }

# serve LABEL [CPUD_ARGS...]: a cpud with logs on stderr (whatever the
# machine's /dev/log), stopping the previous one.
serve() {
	[ -z "$CPID" ] || stop_pid "$CPID"
	start_cpud "$@" -log stderr
}

# logged LABEL ERE: cpud's log LABEL.err gets a line matching ERE (bounded).
logged() { wait_line "$W/$1.err" "$2" "$CPID" 10 >/dev/null; }

# --- command= and the login log lines -----------------------------------------
with_keys "command=\"$W/forced.sh\" $PUB"
serve forced
out=$(ossh "$CPORT" -- echo hi there) && [ "$out" = "forced:echo hi there" ] &&
	pass "command=: forced, the client's command in SSH_ORIGINAL_COMMAND" ||
	fail "command=: got '$out'"
if logged forced "accepted publickey for $ME from 127\.0\.0\.1 port [0-9]+: ssh-ed25519 $FP\$"; then
	pass "accepted login logged with user, address, port, key type and the ssh-keygen fingerprint"
else
	fail "accepted login line: $(grep -i accepted "$W/forced.err")"
fi
rc=0
SSH_KEY=$W/wrong_ed25519 ossh "$CPORT" -- true 2>/dev/null || rc=$?
if [ "$rc" = 255 ] &&
	logged forced "refused publickey for $ME from 127\.0\.0\.1 port [0-9]+: ssh-ed25519 $WRONG_FP: key not in the authorized keys"; then
	pass "refused login logged with the key and the reason"
else
	fail "refused login: rc $rc, $(grep -i refused "$W/forced.err")"
fi
bad=$(grep -Ev "^$TS" "$W/forced.err" || true)
[ -z "$bad" ] && [ -s "$W/forced.err" ] && pass "a timestamp on every log line" ||
	fail "lines without a timestamp: $bad"

# --- from= --------------------------------------------------------------------
with_keys "from=\"10.0.0.0/8,127.0.0.2\" $PUB"
serve from-no
rc=0
ossh "$CPORT" -- true 2>/dev/null || rc=$?
[ "$rc" = 255 ] && logged from-no 'refused publickey .*line 1: address not allowed by from=' &&
	pass "from= not matching 127.0.0.1: refused, logged" || fail "from= not matching: rc $rc"
with_keys "from=\"*,!127.0.0.1\" $PUB"
serve from-neg
rc=0
ossh "$CPORT" -- true 2>/dev/null || rc=$?
[ "$rc" = 255 ] && pass "from= with a negated match: refused" || fail "from= negated: rc $rc"
with_keys "from=\"10.1.2.3,127.0.0.0/8\" $PUB"
serve from-yes
out=$(ossh "$CPORT" -- echo in) && [ "$out" = in ] &&
	pass "from= matching 127.0.0.1 (CIDR): in" || fail "from= matching: got '$out'"

# --- no-pty, restrict, pty ----------------------------------------------------
with_keys "no-pty $PUB"
serve nopty
rc=0
# OpenSSH ends a session whose explicitly asked pty (-t) is refused.
ossh "$CPORT" -tt -- tty >/dev/null 2>"$W/nopty.ssh" || rc=$?
out=$(ossh "$CPORT" -- tty) || true
[ "$rc" = 255 ] && grep -q 'PTY allocation request failed' "$W/nopty.ssh" && [ "$out" = "not a tty" ] &&
	pass "no-pty: -t refused; without it the command runs" ||
	fail "no-pty: rc $rc, out '$out', $(cat "$W/nopty.ssh")"
with_keys "restrict,pty $PUB"
serve pty
out=$(ossh "$CPORT" -tt -- tty 2>/dev/null) || true
[[ $out == /dev/pts/* ]] && pass "restrict,pty: a terminal" || fail "restrict,pty: got '$out'"

# --- no-port-forwarding -------------------------------------------------------
with_keys "restrict $PUB"
serve nofwd
rc=0
ossh "$CPORT" -o ExitOnForwardFailure=yes -R 0:127.0.0.1:9 -- true 2>"$W/nofwd.ssh" || rc=$?
[ "$rc" = 255 ] && grep -qi 'forwarding failed' "$W/nofwd.ssh" &&
	logged nofwd 'tcpip-forward .* refused: the key has no-port-forwarding' &&
	pass "no-port-forwarding (restrict): -R refused, logged" ||
	fail "no-port-forwarding: rc $rc, $(cat "$W/nofwd.ssh")"
rc=0
timeout 30 "$CPU" -key "$W/client_ed25519" -sp "$CPORT" 127.0.0.1 true 2>"$W/nofwd.cpu" || rc=$?
[ "$rc" = 255 ] && grep -q 'refused to forward a port for 9P' "$W/nofwd.cpu" &&
	pass "no-port-forwarding: a cpu client is told the 9P forward was refused" ||
	fail "no-port-forwarding cpu: rc $rc, $(cat "$W/nofwd.cpu")"

# --- expiry-time --------------------------------------------------------------
with_keys "expiry-time=\"20200101\" $PUB"
serve expired
rc=0
ossh "$CPORT" -- true 2>/dev/null || rc=$?
[ "$rc" = 255 ] && logged expired 'refused publickey .*key expired' &&
	pass "expiry-time in the past: refused, logged" || fail "expiry-time past: rc $rc"
with_keys "expiry-time=\"99991231\" $PUB"
serve unexpired
out=$(ossh "$CPORT" -- echo in) && [ "$out" = in ] &&
	pass "expiry-time in the future: in" || fail "expiry-time future: got '$out'"

# --- environment= -------------------------------------------------------------
with_keys "environment=\"CPU_RS_KEYENV=from-key\" $PUB"
serve env-off
rc=0
ossh "$CPORT" -- true 2>/dev/null || rc=$?
[ "$rc" = 255 ] && logged env-off 'refused publickey .*environment= needs cpud -permitUserEnvironment' &&
	pass "environment= refused by default, logged" || fail "environment= default: rc $rc"
serve env-on -permitUserEnvironment
out=$(ossh "$CPORT" -- sh -c "'echo \$CPU_RS_KEYENV'") && [ "$out" = from-key ] &&
	pass "environment= honoured with -permitUserEnvironment" || fail "environment= on: got '$out'"

# --- an option cpud does not implement ----------------------------------------
with_keys "permitopen=\"127.0.0.1:9\" $PUB"
serve unknown
rc=0
ossh "$CPORT" -- true 2>/dev/null || rc=$?
if [ "$rc" = 255 ] && logged unknown 'authorized_keys:1: option permitopen: not supported by cpud: this key may not log in' &&
	logged unknown 'refused publickey .*line 1: option permitopen: not supported by cpud$'; then
	pass "unknown option: the line refused, the option named at start and at login"
else
	fail "unknown option: rc $rc, $(cat "$W/unknown.err")"
fi

# --- syslog -------------------------------------------------------------------
stop_pid "$CPID"
CPID=''
SOCK=$W/log.sock
"$HOST_PY" -c '
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
with open(sys.argv[2], "ab", buffering=0) as f:
    while True:
        f.write(s.recv(65536) + b"\n")
' "$SOCK" "$W/syslog.txt" &
LPID=$!
track "$LPID"
n=0
until [ -S "$SOCK" ] || [ $n -ge 100 ]; do sleep 0.1; n=$((n + 1)); done
with_keys "$PUB"
# -log auto (the default): stderr is a file, so the lines go to the socket.
start_cpud syslog -logSocket "$SOCK"
out=$(ossh "$CPORT" -- echo in) || true
if wait_line "$W/syslog.txt" "^<38>[A-Z][a-z]{2} [ 0-9][0-9] [0-9:]{8} cpud\[$CPID\]: accepted publickey for $ME from 127\.0\.0\.1 port [0-9]+: ssh-ed25519 $FP\$" "$LPID" 10 >/dev/null &&
	grep -Eq "^<30>.* cpud\[$CPID\]: listening on 127\.0\.0\.1:$CPORT" "$W/syslog.txt" &&
	! grep -q 'accepted publickey' "$W/syslog.err" && [ "$out" = in ]; then
	pass "syslog when stderr is not a terminal: LOG_AUTH login, LOG_DAEMON others, RFC 3164"
else
	fail "syslog: $(cat "$W/syslog.txt" 2>&1 | head -5)"
fi
grep -Eq "^${TS}listening on" "$W/syslog.err" && pass "the listening line stays on stderr with syslog" ||
	fail "no listening line on stderr: $(cat "$W/syslog.err")"
stop_pid "$CPID"
CPID=''
rc=0
timeout 10 "$CPUD" -sp 0 -addr 127.0.0.1 -pk "$W/authorized_keys" -log syslog -logSocket "$W/none.sock" \
	2>"$W/nosock.err" || rc=$?
[ "$rc" = 1 ] && grep -q 'none.sock' "$W/nosock.err" &&
	pass "-log syslog without a socket: one line, exit 1" || fail "-log syslog no socket: rc $rc"

# --- -h and -version ----------------------------------------------------------
for b in "$CPU" "$CPUD"; do
	name=$(basename "$b")
	v=$(timeout 10 "$b" -version) || true
	if [[ $v =~ ^(cpu|cpud)\ [0-9]+\.[0-9]+\.[0-9]+\ \(runtime\ (std|smol)\)$ ]] &&
		{ [ -z "${CPU_RS_RUNTIME:-}" ] || [[ $v == *"runtime $CPU_RS_RUNTIME)" ]]; }; then
		pass "$name -version: $v"
	else
		fail "$name -version: got '$v'"
	fi
done
h=$(timeout 10 "$CPUD" -h) || true
[[ $h == *'(default "17010")'* ]] && [[ $h == *'-version'* ]] && [[ $h == *'-permitUserEnvironment'* ]] &&
	pass "cpud -h: defaults, -version and the new flags" || fail "cpud -h: $h"
h=$(timeout 10 "$CPU" -h 2>&1) || true
# -9p is cpu's default-true flag.
grep -A1 -- '^  -9p$' <<<"$h" | grep -q '(default true)' &&
	pass "cpu -h: -9p shows (default true)" || fail "cpu -h: $h"

# --- a non-root cpud says so once at start ------------------------------------
if [ "$(id -u)" = 0 ] && id nobody >/dev/null 2>&1; then
	mkdir "$W/nobody"
	cp "$W/authorized_keys" "$W/host_ed25519" "$W/nobody/"
	chown -R nobody "$W/nobody"
	setpriv --reuid=nobody --regid="$(id -g nobody)" --clear-groups \
		timeout 20 "$CPUD" -sp 0 -addr 127.0.0.1 -pk "$W/nobody/authorized_keys" -hk "$W/nobody/host_ed25519" \
		-log stderr 2>"$W/nobody.err" &
	NPID=$!
	track "$NPID"
	wait_line "$W/nobody.err" 'listening on' "$NPID" 10 >/dev/null || true
	grep -q 'not running as root: sessions cannot make their mount namespace' "$W/nobody.err" &&
		pass "a non-root cpud says at start that sessions will fail" ||
		fail "non-root cpud: $(cat "$W/nobody.err")"
	stop_pid "$NPID"
else
	skip "non-root cpud: not root or no user nobody"
fi

echo "cpud-auth: $PASSES passed, $FAILS failed"
[ "$FAILS" = 0 ]
