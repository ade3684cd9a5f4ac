#!/usr/bin/env bash
# tests/scripts/cpud-openssh.sh: OpenSSH's ssh against our cpud, plain SSH
# (no 9P): exec with the reference's argument splitting, exit statuses, a
# killed command, stdin, environment, a refused key, the host key kept
# across restarts, and a client that vanishes mid-command leaving no
# process behind. cpud runs in a private mount namespace on 127.0.0.1.
#
# CPUD: the binary (default target/release/cpud). One PASS/FAIL line per
# case; exit 1 on any FAIL.
set -euo pipefail
# shellcheck source=ssh/lib.sh
. "$(dirname "$0")/ssh/lib.sh"

cpu_bins
ssh_init cpud-openssh
STATE=$W/state

# host_key PORT: the server's host key line as ssh-keyscan sees it.
host_key() { timeout 20 ssh-keyscan -p "$1" -t ed25519 127.0.0.1 2>/dev/null | awk '{print $2, $3}'; }

start_cpud cpud -d
KEY1=$(host_key "$CPORT")

out=$(ossh "$CPORT" -- echo hello world) && [ "$out" = "hello world" ] &&
	pass "exec echo" || fail "exec echo: got '$out'"

for code in 0 1 3 255; do
	rc=0
	ossh "$CPORT" -- sh -c "'exit $code'" || rc=$?
	[ "$rc" = "$code" ] && pass "exit $code" || fail "exit $code: got $rc"
done

# The reference splits the exec string like a POSIX shell and runs the
# words directly: shell syntax reaches the command as arguments.
out=$(ossh "$CPORT" -- "printf '%s|' 'a b' c\\ d") && [ "$out" = "a b|c d|" ] &&
	pass "argument splitting" || fail "argument splitting: got '$out'"

rc=0
ossh "$CPORT" -- sh -c "'kill -TERM \$\$'" 2>"$W/killed.err" || rc=$?
# OpenSSH reports a remote signal as 255.
[ "$rc" = 255 ] && pass "killed command" || fail "killed command: got $rc"

rc=0
ossh "$CPORT" -- no-such-command-cpu-rs 2>"$W/missing.err" || rc=$?
[ "$rc" = 127 ] && grep -q "no-such-command-cpu-rs" "$W/missing.err" &&
	pass "missing command: 127 and a message" || fail "missing command: got $rc, $(cat "$W/missing.err")"

head -c 3000000 /dev/urandom >"$W/in.bin"
want_sum=$(sha_of "$W/in.bin")
got_sum=$(ossh "$CPORT" -- sha256sum <"$W/in.bin" | cut -d' ' -f1)
[ "$got_sum" = "$want_sum" ] && pass "stdin 3 MB" || fail "stdin: $got_sum != $want_sum"

out=$(ossh "$CPORT" -o SetEnv=CPU_RS_TEST=marker -- sh -c "'echo \$CPU_RS_TEST'") &&
	[ "$out" = marker ] && pass "env" || fail "env: got '$out'"

rc=0
SSH_KEY=$W/wrong_ed25519 ossh "$CPORT" -- true 2>"$W/wrong.err" || rc=$?
[ "$rc" = 255 ] && grep -q "Permission denied" "$W/wrong.err" &&
	pass "wrong key refused" || fail "wrong key: got $rc"

# A client that goes away mid-command: the session's processes die too.
MARK="cpu-rs-teardown-$$"
ossh "$CPORT" -- sh -c "'exec -a $MARK sleep 300'" >/dev/null 2>&1 &
SSH_PID=$!
n=0
until pgrep -f "$MARK" >/dev/null || [ $n -ge 300 ]; do sleep 0.1; n=$((n + 1)); done
if pgrep -f "$MARK" >/dev/null; then
	kill -KILL "$SSH_PID"
	wait "$SSH_PID" 2>/dev/null || true
	n=0
	while pgrep -f "$MARK" >/dev/null && [ $n -lt 100 ]; do sleep 0.1; n=$((n + 1)); done
	pgrep -f "$MARK" >/dev/null && { fail "teardown: $MARK still running"; pkill -KILL -f "$MARK"; } ||
		pass "teardown: nothing left when the client vanishes"
else
	fail "teardown: the command never started"
fi

# The host key made on the first start is kept.
stop_pid "$CPID"
start_cpud cpud2
KEY2=$(host_key "$CPORT")
[ -n "$KEY1" ] && [ "$KEY1" = "$KEY2" ] && pass "host key kept across restarts" ||
	fail "host key: '$KEY1' then '$KEY2'"
[ "$(stat -c %a "$STATE/ssh_host_ed25519_key")" = 600 ] && pass "host key mode 600" ||
	fail "host key mode $(stat -c %a "$STATE/ssh_host_ed25519_key")"

# -accounts: a session runs as the account its SSH user names; an SSH
# user without an account is refused with a message.
if [ "$(id -u)" = 0 ] && command -v useradd >/dev/null; then
	ACCT=cpu-rs-acct$$
	useradd -M -d /nonexistent -s /bin/sh "$ACCT"
	drop_acct() { userdel "$ACCT" >/dev/null 2>&1 || true; }
	CLEANUP_HOOKS+=(drop_acct)
	stop_pid "$CPID"
	start_cpud cpud3 -accounts
	out=$(SSH_USER=$ACCT ossh "$CPORT" -- sh -c "'echo \$(id -un) \$HOME'") || true
	[ "$out" = "$ACCT /nonexistent" ] && pass "-accounts: runs as the SSH user's account" ||
		fail "-accounts: got '$out'"
	rc=0
	SSH_USER=cpu-rs-no-such-user ossh "$CPORT" -- true 2>"$W/noacct.err" || rc=$?
	[ "$rc" != 0 ] && grep -q "no account" "$W/noacct.err" && pass "-accounts: unknown account refused" ||
		fail "-accounts: unknown account: rc $rc, $(cat "$W/noacct.err")"
	drop_acct
else
	skip "-accounts cases need root and useradd"
fi

echo "cpud-openssh: $PASSES passed, $FAILS failed"
[ "$FAILS" = 0 ]
