#!/usr/bin/env bash
# tests/scripts/cpud-openssh.sh: OpenSSH's ssh, scp and sftp against our
# cpud, plain SSH (no 9P): a plain session's command goes to the login
# shell (pipes, globs, variables, exit statuses, a login shell for `shell`,
# the home directory), a cpu session (one that sends CPU_FSTAB) keeps the
# reference's argument splitting, a pty for both, a killed command, stdin,
# environment, a refused key, scp (SFTP and -O) and sftp both ways, PuTTY's
# plink and psftp, an sftp-server that is missing, the host key kept across
# restarts, -accounts, and a client that vanishes mid-command leaving no
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

# A cpu session (the client sent CPU_FSTAB, as u-root/cpu's always does):
# the reference splits the exec string like a POSIX shell and runs the
# words directly, so shell syntax reaches the command as arguments.
CPU_SESSION=(-o SetEnv=CPU_FSTAB=)
out=$(ossh "$CPORT" "${CPU_SESSION[@]}" -- "printf '%s|' 'a b' c\\ d \\\$HOME '*' '|' wc") &&
	[ "$out" = 'a b|c d|$HOME|*|||wc|' ] &&
	pass "cpu session: argument splitting" || fail "cpu session: argument splitting: got '$out'"

# A plain session: the command string goes to the login shell, as sshd.
LOGIN_SHELL=$(getent passwd "$ME" | cut -d: -f7)
LOGIN_SHELL=${LOGIN_SHELL:-/bin/sh}
LOGIN_HOME=$(getent passwd "$ME" | cut -d: -f6)
START_DIR=$LOGIN_HOME
[ -d "$START_DIR" ] || START_DIR=/
rc=0
out=$(ossh "$CPORT" -- 'echo $(id -u); exit 3') || rc=$?
[ "$out" = "$(id -u)" ] && [ "$rc" = 3 ] && pass "shell: \$(id -u) and exit 3" ||
	fail "shell: \$(id -u); exit 3: got '$out', $rc"
rc=0
ossh "$CPORT" -- 'exit 7' || rc=$?
[ "$rc" = 7 ] && pass "shell: exit 7" || fail "shell: exit 7: got $rc"
mkdir -p "$W/glob" && touch "$W/glob/x1" "$W/glob/x2" "$W/glob/y"
out=$(ossh "$CPORT" -- "ls $W/glob/x* | wc -l && printf 'a\\nb\\n' | tr ab AB | paste -sd,") &&
	[ "$out" = "$(printf '2\nA,B')" ] && pass "shell: glob, pipes and &&" ||
	fail "shell: glob, pipes and &&: got '$out'"
out=$(ossh "$CPORT" -- 'V=x; false && echo no; echo "$V:$0:$SHELL:$HOME:$(pwd)"') &&
	[ "$out" = "x:$LOGIN_SHELL:$LOGIN_SHELL:$LOGIN_HOME:$START_DIR" ] &&
	pass "shell: \$VAR, the login shell, its home" || fail "shell: \$VAR, login shell, home: got '$out'"
# `shell` (no command): the login shell, argv[0] "-name", reads stdin.
rc=0
out=$(echo 'echo "$0"; exit 4' | ossh "$CPORT" -T --) || rc=$?
[ "$out" = "-${LOGIN_SHELL##*/}" ] && [ "$rc" = 4 ] && pass "shell request: a login shell" ||
	fail "shell request: got '$out', $rc"
# A pty, for both kinds of session.
rc=0
out=$(ossh "$CPORT" -tt -- 'tty; exit 5' </dev/null) || rc=$?
[[ $out == */dev/pts/* ]] && [ "$rc" = 5 ] && pass "pty: plain session" ||
	fail "pty: plain session: got '$out', $rc"
rc=0
out=$(printf 'echo "zero=$0"; exit 6\n' | ossh "$CPORT" -tt --) || rc=$?
[[ $out == *zero=-"${LOGIN_SHELL##*/}"* ]] && [ "$rc" = 6 ] && pass "pty: an interactive login shell" ||
	fail "pty: interactive login shell: got '$out', $rc"
rc=0
out=$(ossh "$CPORT" -tt "${CPU_SESSION[@]}" -- tty </dev/null) || rc=$?
[[ $out == */dev/pts/* ]] && [ "$rc" = 0 ] && pass "pty: cpu session" ||
	fail "pty: cpu session: got '$out', $rc"
# Our cpu is a cpu client even without 9P: it sends CPU_FSTAB with
# -9p=false and with -ssh, as u-root/cpu does, so its command runs as in
# a cpu session, in the client's directory (a plain one starts at home).
mkdir -p "$W/cpu-home" "$W/cwd"
for flag in -9p=false -ssh; do
	out=$(cd "$W/cwd" && HOME=$W/cpu-home timeout -k 5 60 "$CPU" "$flag" -hostkeycheck=false \
		-key "$W/client_ed25519" -sp "$CPORT" 127.0.0.1 pwd 2>"$W/cpu$flag.err") &&
		[ "$out" = "$W/cwd" ] && pass "cpu $flag: a cpu session" ||
		fail "cpu $flag: got '$out', $(cat "$W/cpu$flag.err")"
done

rc=0
ossh "$CPORT" -- sh -c "'kill -TERM \$\$'" 2>"$W/killed.err" || rc=$?
# OpenSSH reports a remote signal as 255.
[ "$rc" = 255 ] && pass "killed command" || fail "killed command: got $rc"

for kind in plain cpu; do
	opts=()
	[ "$kind" = cpu ] && opts=("${CPU_SESSION[@]}")
	rc=0
	ossh "$CPORT" "${opts[@]}" -- no-such-command-cpu-rs 2>"$W/missing.err" || rc=$?
	[ "$rc" = 127 ] && grep -q "no-such-command-cpu-rs" "$W/missing.err" &&
		pass "missing command ($kind session): 127 and a message" ||
		fail "missing command ($kind session): got $rc, $(cat "$W/missing.err")"
done

head -c 3000000 /dev/urandom >"$W/in.bin"
want_sum=$(sha_of "$W/in.bin")
got_sum=$(ossh "$CPORT" -- sha256sum <"$W/in.bin" | cut -d' ' -f1)
[ "$got_sum" = "$want_sum" ] && pass "stdin 3 MB" || fail "stdin: $got_sum != $want_sum"

out=$(ossh "$CPORT" -o SetEnv=CPU_RS_TEST=marker -- sh -c "'echo \$CPU_RS_TEST'") &&
	[ "$out" = marker ] && pass "env" || fail "env: got '$out'"
# The loader's variables never reach a plain session (its child starts
# as root with -accounts).
out=$(ossh "$CPORT" -o "SetEnv=LD_PRELOAD=/nonexistent-cpu-rs.so CPU_RS_TEST=kept" -- \
	'echo ${LD_PRELOAD-unset} $CPU_RS_TEST' 2>"$W/ld.err") &&
	[ "$out" = "unset kept" ] && ! grep -q nonexistent-cpu-rs "$W/ld.err" && pass "env: LD_* dropped" ||
	fail "env: LD_*: got '$out', $(cat "$W/ld.err")"

rc=0
SSH_KEY=$W/wrong_ed25519 ossh "$CPORT" -- true 2>"$W/wrong.err" || rc=$?
[ "$rc" = 255 ] && grep -q "Permission denied" "$W/wrong.err" &&
	pass "wrong key refused" || fail "wrong key: got $rc"

# tree_of PID: the processes under PID, children first.
tree_of() { local c; for c in $(pgrep -P "$1"); do echo "$c"; tree_of "$c"; done; }

# A client that goes away mid-command: the session's processes die too.
# The remote command writes its own pid: the local ssh, whose command
# line holds the command too, must not be what is watched.
ossh "$CPORT" -- "echo \$\$ >$W/teardown.pid; exec sleep 300" >/dev/null 2>&1 &
SSH_PID=$!
n=0 RPID=''
until { RPID=$(cat "$W/teardown.pid" 2>/dev/null) && alive "$RPID"; } || [ $n -ge 300 ]; do
	sleep 0.1
	n=$((n + 1))
done
if [ -n "$RPID" ] && alive "$RPID"; then
	# The ssh itself, not the subshell and timeout around it.
	for p in $(tree_of "$SSH_PID"); do [ "$(cat "/proc/$p/comm" 2>/dev/null)" = ssh ] && kill -KILL "$p"; done
	wait "$SSH_PID" 2>/dev/null || true
	n=0
	while alive "$RPID" && [ $n -lt 100 ]; do sleep 0.1; n=$((n + 1)); done
	alive "$RPID" && { fail "teardown: pid $RPID still running"; kill -KILL "$RPID"; } ||
		pass "teardown: nothing left when the client vanishes"
else
	fail "teardown: the command never started"
fi

# scp (SFTP, OpenSSH 9's default, and the old protocol with -O) and
# sftp, both ways, through the host's sftp-server.
oscp() { timeout -k 5 "${SSH_TMO:-60}" scp -P "$CPORT" -i "$W/client_ed25519" "${OSSH_OPTS[@]}" -o LogLevel=ERROR "$@"; }
osftp() { timeout -k 5 "${SSH_TMO:-60}" sftp -P "$CPORT" -i "$W/client_ed25519" "${OSSH_OPTS[@]}" -o LogLevel=ERROR "$@"; }
head -c 4000000 /dev/urandom >"$W/up.bin"
up_sum=$(sha_of "$W/up.bin")
for mode in sftp legacy; do
	opt=()
	[ "$mode" = legacy ] && opt=(-O)
	if oscp "${opt[@]}" "$W/up.bin" "$ME@127.0.0.1:$W/scp-$mode.bin" 2>"$W/scp-$mode.err" &&
		oscp "${opt[@]}" "$ME@127.0.0.1:$W/scp-$mode.bin" "$W/scp-$mode-back.bin" 2>>"$W/scp-$mode.err" &&
		[ "$(sha_of "$W/scp-$mode.bin")" = "$up_sum" ] && [ "$(sha_of "$W/scp-$mode-back.bin")" = "$up_sum" ]; then
		pass "scp ${opt[*]:-(SFTP)}: both ways, same sha256"
	else
		fail "scp ${opt[*]:-(SFTP)}: $(cat "$W/scp-$mode.err")"
	fi
done
printf '%s\n' "put $W/up.bin $W/sftp/put.bin" "ls $W/sftp" "get $W/sftp/put.bin $W/sftp-got.bin" >"$W/sftp.batch"
# The subsystem is sftp-server in a session that sent CPU_FSTAB too.
for kind in plain cpu; do
	opts=()
	[ "$kind" = cpu ] && opts=("${CPU_SESSION[@]}")
	rm -rf "$W/sftp" "$W/sftp-got.bin" && mkdir -p "$W/sftp"
	if osftp "${opts[@]}" -b "$W/sftp.batch" "$ME@127.0.0.1" >"$W/sftp.out" 2>&1 &&
		grep -q "^$W/sftp/put.bin" "$W/sftp.out" &&
		[ "$(sha_of "$W/sftp/put.bin")" = "$up_sum" ] && [ "$(sha_of "$W/sftp-got.bin")" = "$up_sum" ]; then
		pass "sftp -b ($kind session): put, ls, get"
	else
		fail "sftp -b ($kind session): $(cat "$W/sftp.out")"
	fi
done

# PuTTY's tools (putty-tools): plink's command goes to the login shell
# too, and psftp uses the sftp subsystem.
if command -v plink >/dev/null && command -v psftp >/dev/null && command -v puttygen >/dev/null; then
	puttygen "$W/client_ed25519" -O private -o "$W/client.ppk" </dev/null >/dev/null 2>&1
	HK_FP=$(ssh-keygen -lf "$STATE/ssh_host_ed25519_key" | awk '{print $2}')
	PUTTY_OPTS=(-batch -P "$CPORT" -i "$W/client.ppk" -hostkey "$HK_FP")
	rc=0
	out=$(timeout -k 5 60 plink "${PUTTY_OPTS[@]}" "$ME@127.0.0.1" 'echo $(id -u); exit 3' </dev/null) || rc=$?
	[ "$out" = "$(id -u)" ] && [ "$rc" = 3 ] && pass "plink: the login shell" ||
		fail "plink: got '$out', $rc"
	rm -rf "$W/sftp" "$W/sftp-got.bin" && mkdir -p "$W/sftp"
	if timeout -k 5 60 psftp "${PUTTY_OPTS[@]}" -b "$W/sftp.batch" "$ME@127.0.0.1" </dev/null >"$W/psftp.out" 2>&1 &&
		[ "$(sha_of "$W/sftp/put.bin")" = "$up_sum" ] && [ "$(sha_of "$W/sftp-got.bin")" = "$up_sum" ]; then
		pass "psftp -b: put, get"
	else
		fail "psftp -b: $(cat "$W/psftp.out")"
	fi
else
	skip "plink/psftp: no putty-tools"
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
	# A plain session: the account's login shell, in / (no home).
	out=$(SSH_USER=$ACCT ossh "$CPORT" -- 'echo "$0 $SHELL $(pwd)"') || true
	[ "$out" = "/bin/sh /bin/sh /" ] && pass "-accounts: the account's login shell" ||
		fail "-accounts: login shell: got '$out'"
	mkdir -p "$W/acct" && chmod 777 "$W/acct"
	if oscp "$W/up.bin" "$ACCT@127.0.0.1:$W/acct/up.bin" 2>"$W/acct-scp.err" &&
		[ "$(stat -c %U "$W/acct/up.bin")" = "$ACCT" ]; then
		pass "-accounts: sftp-server runs as the account"
	else
		fail "-accounts: scp: $(stat -c %U "$W/acct/up.bin" 2>&1) $(cat "$W/acct-scp.err")"
	fi
	# A cpu session's LD_PRELOAD never runs as root in the session child
	# (held by the daemon), and the command, run as the account, has it.
	if command -v gcc >/dev/null; then
		mkdir -p "$W/ld" && chmod 777 "$W/ld"
		printf '%s\n' '#include <stdio.h>' '#include <unistd.h>' \
			'__attribute__((constructor)) static void mark(void) {' \
			'  char p[4096]; snprintf(p, sizeof p, "%s/uid-%d", LD_DIR, (int)getuid());' \
			'  FILE *f = fopen(p, "w"); if (f) fclose(f); }' >"$W/ld/mark.c"
		gcc -shared -fPIC -DLD_DIR="\"$W/ld\"" -o "$W/ld/mark.so" "$W/ld/mark.c"
		chmod 755 "$W/ld/mark.so"
		out=$(SSH_USER=$ACCT ossh "$CPORT" -o "SetEnv=CPU_FSTAB= LD_PRELOAD=$W/ld/mark.so" -- \
			sh -c "'echo \$LD_PRELOAD'" 2>"$W/ld-acct.err") || true
		uid=$(id -u "$ACCT")
		[ "$out" = "$W/ld/mark.so" ] && [ ! -e "$W/ld/uid-0" ] && [ -e "$W/ld/uid-$uid" ] &&
			pass "-accounts: a cpu session's LD_PRELOAD reaches the command as the account, never root" ||
			fail "-accounts: LD_PRELOAD: got '$out', marks: $(ls "$W/ld" | tr '\n' ' ') $(cat "$W/ld-acct.err")"
	else
		skip "-accounts LD_PRELOAD case needs gcc"
	fi
	rc=0
	SSH_USER=cpu-rs-no-such-user ossh "$CPORT" -- true 2>"$W/noacct.err" || rc=$?
	[ "$rc" != 0 ] && grep -q "no account" "$W/noacct.err" && pass "-accounts: unknown account refused" ||
		fail "-accounts: unknown account: rc $rc, $(cat "$W/noacct.err")"
	drop_acct
else
	skip "-accounts cases need root and useradd"
fi

# No sftp-server: the refusal names the missing program, to the user and
# in cpud's log.
NO_SFTP=$W/no-such-dir/sftp-server
stop_pid "$CPID"
start_cpud cpud4 -sftp "$NO_SFTP" -log stderr
rc=0
osftp -b "$W/sftp.batch" "$ME@127.0.0.1" >"$W/nosftp.out" 2>&1 || rc=$?
[ "$rc" != 0 ] && grep -q "$NO_SFTP" "$W/nosftp.out" && grep -q "$NO_SFTP" "$W/cpud4.err" &&
	pass "-sftp missing: sftp says which program, cpud logs it" ||
	fail "-sftp missing: rc $rc, $(cat "$W/nosftp.out")"
rc=0
oscp "$W/up.bin" "$ME@127.0.0.1:$W/nosftp.bin" 2>"$W/noscp.err" || rc=$?
[ "$rc" != 0 ] && grep -q "$NO_SFTP" "$W/noscp.err" && pass "-sftp missing: scp says which program" ||
	fail "-sftp missing: scp rc $rc, $(cat "$W/noscp.err")"

echo "cpud-openssh: $PASSES passed, $FAILS failed"
[ "$FAILS" = 0 ]
