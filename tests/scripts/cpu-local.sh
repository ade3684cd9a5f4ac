#!/usr/bin/env bash
# tests/scripts/cpu-local.sh: our cpu against our cpud on 127.0.0.1 (cpud
# in a private mount namespace). This kernel has no 9p, so the file
# service cases live in cpu-guest.sh; here: ssh_config (Host alias with
# HostName, Port, User, IdentityFile), the command string and exit
# statuses, stdin, the distinct exit codes of each failure, ssh-agent
# keys and passphrase-protected keys (SSH_ASKPASS, and the tty prompt
# through tmux).
#
# CPU, CPUD: the binaries (default target/release/{cpu,cpud}).
set -euo pipefail
# shellcheck source=ssh/lib.sh
. "$(dirname "$0")/ssh/lib.sh"

cpu_bins
ssh_init cpu-local
# The caller's agent and askpass must not take part: each case sets its own.
unset SSH_AUTH_SOCK SSH_ASKPASS SSH_ASKPASS_REQUIRE

start_cpud cpud -hk "$W/host_ed25519" || exit 1

# A home of our own: the alias comes from its ssh_config.
FAKEHOME=$W/home
mkdir -p "$FAKEHOME/.ssh"
cat >"$FAKEHOME/.ssh/config" <<CFG
Host board
	HostName 127.0.0.1
	Port $CPORT
	User cpu-rs-test
	IdentityFile ~/.ssh/board_key
CFG
cp "$W/client_ed25519" "$FAKEHOME/.ssh/board_key"
cpu() { HOME=$FAKEHOME timeout -k 5 60 "$CPU" "$@"; }

out=$(CPU_RS_MARK=seen cpu -9p=false board sh -c 'echo $CPU_RS_MARK@$TMPDIR') && [ "$out" = "seen@/tmp" ] &&
	pass "ssh_config alias (HostName, Port, IdentityFile), env and TMPDIR" || fail "alias: got '$out'"

for code in 0 1 3 255; do
	rc=0
	cpu -9p=false board sh -c "exit $code" || rc=$?
	[ "$rc" = "$code" ] && pass "exit $code" || fail "exit $code: got $rc"
done

out=$(cpu -9p=false board printf '%s|' "a b" "it's" '$HOME') && [ "$out" = "a b|it's|\$HOME|" ] &&
	pass "arguments arrive unchanged" || fail "arguments: got '$out'"

out=$(printf 'one\ntwo\n' | cpu -9p=false board wc -l) && [ "$out" = 2 ] &&
	pass "stdin" || fail "stdin: got '$out'"

rc=0
cpu -9p=false -key "$W/wrong_ed25519" board true 2>"$W/wrong.err" || rc=$?
[ "$rc" = 253 ] && pass "wrong key: 253" || fail "wrong key: got $rc: $(cat "$W/wrong.err")"

rc=0
cpu -9p=false -key "$W/client_ed25519" -sp "$(free_port)" 127.0.0.1 true 2>"$W/conn.err" || rc=$?
[ "$rc" = 254 ] && grep -q "cannot connect" "$W/conn.err" && pass "cannot connect: 254" ||
	fail "cannot connect: got $rc: $(cat "$W/conn.err")"

rc=0
cpu -9p=false board no-such-command-cpu-rs 2>"$W/missing.err" || rc=$?
[ "$rc" = 127 ] && pass "command not found: 127" || fail "command not found: got $rc"

# The file service. This kernel has no 9p, so cpud mounts our files
# through FUSE; the cwd is a fresh folder under /home, which the default
# namespace binds.
fuse_usable() { [ -c /dev/fuse ] && (exec 3<>/dev/fuse) 2>/dev/null; }
if fuse_usable && ! grep -qw 9p /proc/filesystems; then
	HD=$(mktemp -d /home/cpu-rs-local.XXXXXX)
	drop_hd() { rm -rf "$HD"; }
	CLEANUP_HOOKS+=(drop_hd)
	hcpu() { (cd "$HD" && HOME=$FAKEHOME timeout -k 5 120 "$CPU" "$@"); }
	out=$(hcpu board sh -c 'pwd; echo data > out.txt') || true
	[ "$out" = "$HD" ] && [ "$(cat "$HD/out.txt" 2>/dev/null)" = data ] &&
		pass "FUSE path: remote runs in our cwd and writes here" || fail "FUSE cwd/write: got '$out'"
	grep -q "mounting through FUSE" "$W/cpud.err" || true
	head -c 100M /dev/urandom >"$HD/big.bin"
	want=$(sha_of "$HD/big.bin")
	got=$(hcpu board sha256sum big.bin | cut -d' ' -f1) || true
	[ "$got" = "$want" ] && pass "FUSE path: remote reads a 100 MiB local file (sha256)" ||
		fail "FUSE sha256: $got != $want"
	# A static program: on a merged-/usr host the bind over /bin lands on
	# /usr/bin, so the tree must not need anything from there.
	mkdir -p "$HD/tree/bin"
	cp "$(command -v busybox)" "$HD/tree/bin/busybox"
	out=$(hcpu -namespace "/lib:/lib64:/usr:/etc:/home:/bin=$HD/tree/bin" board \
		/bin/busybox echo hello from the local tree) || true
	[ "$out" = "hello from the local tree" ] && pass "FUSE path: -namespace remote=local over /bin" ||
		fail "FUSE namespace: got '$out'"
	out=$(hcpu -dbg9p board cat out.txt 2>"$W/dbg9p.err") || true
	[ "$out" = data ] && grep -q '^cpu: 9p <- tag [0-9]* Tversion' "$W/dbg9p.err" &&
		grep -q '^cpu: 9p -> tag [0-9]* Rread' "$W/dbg9p.err" &&
		pass "FUSE path: -dbg9p traces the 9P messages" || fail "-dbg9p: got '$out': $(head -c 300 "$W/dbg9p.err")"
	# The session child runs the command as its child here; a signal death
	# still comes back as exit-signal, as with exec.
	rc=0
	hcpu -d board sh -c 'kill -TERM $$' 2>"$W/sig.err" || rc=$?
	[ "$rc" = 143 ] && grep -q 'the command ended: signal TERM$' "$W/sig.err" &&
		pass "FUSE path: a killed command comes back as exit-signal TERM (143)" ||
		fail "FUSE exit-signal: got $rc: $(grep ended "$W/sig.err")"
	# The 9P forward serves only who presents the session's nonce: a
	# connection to it with a wrong one gets no 9P answer, is closed, and
	# cpu logs it.
	rm -f "$HD/started"
	(cd "$HD" && HOME=$FAKEHOME exec timeout -k 5 60 "$CPU" -d board sh -c 'echo up > started; exec sleep 30' \
		>/dev/null 2>"$W/nonce.err") &
	NPID=$!
	n=0
	until [ -s "$HD/started" ] || [ $n -ge 300 ]; do sleep 0.1; n=$((n + 1)); done
	fport=$(sed -n "s/.*9P offered on the server's 127\.0\.0\.1:\([0-9]*\).*/\1/p" "$W/nonce.err")
	got=$(timeout 20 python3 - "$fport" <<'PY'
import socket, struct, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), 5)
s.settimeout(10)
# A wrong nonce, then a Tversion: a served connection would answer it.
s.sendall(b"f" * 32 + struct.pack("<IBHIH", 21, 100, 0xFFFF, 8192, 8) + b"9P2000.L")
try:
    print("closed" if s.recv(64) == b"" else "answered")
except OSError as e:
    print("error", e)
PY
	) || true
	n=0
	until grep -q "wrong nonce was refused" "$W/nonce.err" || [ $n -ge 50 ]; do sleep 0.1; n=$((n + 1)); done
	[ "$got" = closed ] && grep -q "wrong nonce was refused" "$W/nonce.err" &&
		pass "9P forward: a wrong nonce gets no 9P, is closed and logged" ||
		fail "wrong nonce: port '$fport' got '$got': $(grep -v '^cpu: 9p' "$W/nonce.err" | tail -3)"
	kill "$NPID" 2>/dev/null || true
	wait "$NPID" 2>/dev/null || true
	# A client killed in the middle of a 100 MiB read leaves nothing behind.
	rm -f "$HD/started"
	(cd "$HD" && HOME=$FAKEHOME exec "$CPU" board sh -c 'echo up > started; exec cat big.bin big.bin big.bin' >/dev/null) &
	KPID=$!
	n=0
	until [ -s "$HD/started" ] || [ $n -ge 300 ]; do sleep 0.1; n=$((n + 1)); done
	kill -KILL "$KPID" 2>/dev/null || true
	wait "$KPID" 2>/dev/null || true
	n=0
	while pgrep -f 'cat big.bin big.bin' >/dev/null || pgrep -f -- "$CPUD -remote" >/dev/null; do
		[ $n -ge 100 ] && break
		sleep 0.1
		n=$((n + 1))
	done
	if pgrep -f 'cat big.bin big.bin' >/dev/null || pgrep -f -- "$CPUD -remote" >/dev/null; then
		fail "FUSE path: session left behind after the client was killed: $(pgrep -fa -- '-remote|cat big' | head -3)"
	else
		pass "FUSE path: a client killed mid-read leaves no process behind"
	fi
	rm -f "$HD/big.bin"
else
	skip "FUSE path cases: no /dev/fuse, or this kernel has 9p"
fi

rc=0
cpu -nosuchflag board true 2>"$W/usage.err" || rc=$?
[ "$rc" = 2 ] && grep -q "nosuchflag" "$W/usage.err" && pass "bad flag: 2 and usage" || fail "bad flag: got $rc"
cpu -h >"$W/help.out" && grep -q namespace "$W/help.out" && pass "-h prints usage" || fail "-h"

# Host keys: learned on first use, a changed one refused, the check
# turned off on request.
KH=$FAKEHOME/.ssh/known_hosts
grep -q "^\[127.0.0.1\]:$CPORT ssh-ed25519 " "$KH" 2>/dev/null &&
	pass "host key learned on first use" || fail "known_hosts: $(cat "$KH" 2>&1)"
echo "[127.0.0.1]:$CPORT $(cut -d' ' -f1,2 "$W/wrong_ed25519.pub")" >"$KH"
rc=0
cpu -9p=false board true 2>"$W/changed.err" || rc=$?
[ "$rc" = 252 ] && grep -q "REMOTE HOST IDENTIFICATION HAS CHANGED" "$W/changed.err" &&
	pass "changed host key refused (252)" || fail "changed host key: got $rc: $(cat "$W/changed.err")"
rc=0
cpu -9p=false -hostkeycheck=false board true || rc=$?
[ "$rc" = 0 ] && pass "-hostkeycheck=false" || fail "-hostkeycheck=false: got $rc"
rm -f "$KH"
# -hk pins the server's key (the reference ignores the flag): the right
# public key logs in, another is refused as a host key failure.
out=$(cpu -9p=false -hk "$W/host_ed25519.pub" board echo pinned) && [ "$out" = pinned ] &&
	pass "-hk: the pinned host key" || fail "-hk right key: got '$out'"
rc=0
cpu -9p=false -hk "$W/wrong_ed25519.pub" board true 2>"$W/pin.err" || rc=$?
[ "$rc" = 252 ] && grep -q "Host key verification failed" "$W/pin.err" &&
	pass "-hk: another host key refused (252)" || fail "-hk wrong key: got $rc: $(cat "$W/pin.err")"
# -dump: the debug lines and the 9P trace go to a file, not stderr.
out=$(TMPDIR=$W cpu -9p=false -hostkeycheck=false -dump board echo dumped 2>"$W/dump.err") || true
dumpf=$(sed -n 's/^cpu: debug output and 9P trace in //p' "$W/dump.err")
[ "$out" = dumped ] && [ -s "$dumpf" ] && grep -q '^cpu: exec ' "$dumpf" && [ "$(wc -l <"$W/dump.err")" = 1 ] &&
	pass "-dump: debug output in $(basename "$dumpf")" || fail "-dump: '$out' $(cat "$W/dump.err")"
rc=0
cpu -nfs board true 2>"$W/nfs.err" || rc=$?
[ "$rc" = 2 ] && grep -q "not supported" "$W/nfs.err" && pass "-nfs: refused with one line (2)" || fail "-nfs: $rc $(cat "$W/nfs.err")"

# Keys held by an ssh-agent: tried before the -key file (here the
# refused one), so the login goes through the agent.
if command -v ssh-agent >/dev/null && command -v ssh-add >/dev/null; then
	ssh-agent -D -a "$W/agent.sock" >"$W/agent.out" 2>&1 </dev/null &
	track $!
	if wait_line "$W/agent.out" '^SSH_AUTH_SOCK=' $! 10 >/dev/null &&
		SSH_AUTH_SOCK=$W/agent.sock ssh-add "$W/client_ed25519" 2>/dev/null; then
		out=$(SSH_AUTH_SOCK=$W/agent.sock cpu -9p=false -key "$W/wrong_ed25519" board echo via-agent) &&
			[ "$out" = via-agent ] && pass "ssh-agent key (SSH_AUTH_SOCK) before the -key file" ||
			fail "ssh-agent: got '$out'"
	else
		fail "ssh-agent did not start: $(cat "$W/agent.out")"
	fi
else
	skip "no ssh-agent: agent case"
fi

# The authorized key again, protected by a passphrase.
cp "$W/client_ed25519" "$W/locked_ed25519"
ssh-keygen -q -p -P '' -N 'open sesame' -f "$W/locked_ed25519" >/dev/null
printf '#!/bin/sh\necho "open sesame"\n' >"$W/askpass-good"
printf '#!/bin/sh\necho nope\n' >"$W/askpass-bad"
chmod +x "$W/askpass-good" "$W/askpass-bad"
out=$(SSH_ASKPASS=$W/askpass-good SSH_ASKPASS_REQUIRE=force cpu -9p=false -key "$W/locked_ed25519" board echo unlocked) &&
	[ "$out" = unlocked ] && pass "protected key unlocked through SSH_ASKPASS" || fail "askpass: got '$out'"
rc=0
SSH_ASKPASS=$W/askpass-bad SSH_ASKPASS_REQUIRE=force cpu -9p=false -key "$W/locked_ed25519" board true 2>"$W/pass.err" || rc=$?
[ "$rc" = 253 ] && grep -q "wrong passphrase" "$W/pass.err" && [ "$(wc -l <"$W/pass.err")" = 1 ] &&
	pass "wrong passphrase: one line, 253" || fail "wrong passphrase: got $rc: $(cat "$W/pass.err")"

# -net unix: a second cpud on a Unix socket. SIGTERM to it ends the
# session it serves and removes the socket file.
SOCK=$W/cpud.sock
CPUD_STATE_DIR=$W/state unshare --mount --propagation private \
	"$CPUD" -net unix -sp "$SOCK" -hk "$W/host_ed25519" -pk "$W/authorized_keys" \
	>"$W/unix.out" 2>"$W/unix.err" </dev/null &
UPID=$!
track "$UPID"
if wait_line "$W/unix.err" "listening on unix:" "$UPID" 20 >/dev/null; then
	out=$(cpu -9p=false -net unix -key "$W/client_ed25519" "$SOCK" sh -c 'echo unix-$((1+2))') || true
	[ "$out" = unix-3 ] && pass "-net unix: a command over a Unix socket" || fail "-net unix: got '$out'"
	(HOME=$FAKEHOME exec timeout -k 5 60 "$CPU" -9p=false -net unix -key "$W/client_ed25519" "$SOCK" sleep 1019) &
	SPID=$!
	n=0
	until pgrep -fx 'sleep 1019' >/dev/null || [ $n -ge 150 ]; do sleep 0.1; n=$((n + 1)); done
	kill -TERM "$UPID"
	rc=0
	wait "$SPID" || rc=$?
	n=0
	while alive "$UPID" && [ $n -lt 100 ]; do sleep 0.1; n=$((n + 1)); done
	# cpu ends with 255 (the connection went without a status), or with
	# 137 when the KILL's exit-signal got out before cpud exited.
	if ! alive "$UPID" && ! pgrep -fx 'sleep 1019' >/dev/null && [ ! -e "$SOCK" ] &&
		{ [ "$rc" = 255 ] || [ "$rc" = 137 ]; }; then
		pass "SIGTERM to cpud: its session killed, the socket file removed, cpu told ($rc)"
	else
		fail "SIGTERM to cpud: alive=$(alive "$UPID" && echo y) sleep=$(pgrep -fx 'sleep 1019') sock=$(ls "$SOCK" 2>&1) cpu rc=$rc"
	fi
else
	fail "-net unix: cpud did not listen: $(cat "$W/unix.err")"
fi

# cpud as init: PID 1 of its own pid namespace. Sessions see it as PID 1,
# orphans (a background job killed with its session) are reaped, and
# SIGTERM to it ends the daemon, its sessions and the namespace.
CPUD_STATE_DIR=$W/state unshare --mount --propagation private --pid --fork --kill-child --mount-proc \
	"$CPUD" -sp 0 -addr 127.0.0.1 -pk "$W/authorized_keys" -hk "$W/host_ed25519" \
	>"$W/init.out" 2>"$W/init.err" </dev/null &
IPID=$!
track "$IPID"
if line=$(wait_line "$W/init.err" 'listening on 127\.0\.0\.1:[0-9]+' "$IPID" 20); then
	IPORT=$(sed -n 's/.*listening on 127\.0\.0\.1:\([0-9][0-9]*\).*/\1/p' <<<"$line")
	icpu() { (cd / && cpu -9p=false -hostkeycheck=false -key "$W/client_ed25519" -sp "$IPORT" 127.0.0.1 "$@"); }
	out=$(icpu sh -c 'tr "\0" " " </proc/1/cmdline; (sleep 0.2 &); sleep 1 & echo started') || true
	case $out in
	"$CPUD -sp 0 "*started) pass "cpud as PID 1: sessions run under it" ;;
	*) fail "cpud as PID 1: got '$out'" ;;
	esac
	zombies=$(icpu sh -c 'grep -l "^State:.Z" /proc/[0-9]*/status 2>/dev/null | wc -l') || true
	[ "$zombies" = 0 ] && pass "cpud as PID 1: orphans of ended sessions reaped" || fail "zombies: '$zombies'"
	init_pid=$(pgrep -P "$IPID" | head -1)
	kill -TERM "$init_pid"
	n=0
	while alive "$IPID" && [ $n -lt 100 ]; do sleep 0.1; n=$((n + 1)); done
	! alive "$IPID" && grep -q "init: the daemon ended" "$W/init.err" &&
		pass "cpud as PID 1: SIGTERM stops the daemon and ends the namespace" ||
		fail "PID 1 stop: $(tail -3 "$W/init.err")"
else
	fail "cpud as PID 1 did not listen: $(cat "$W/init.err")"
fi

# An interactive shell with a pty, driven through tmux: a command, Ctrl-C
# into a running one, and the shell's exit status.
if command -v tmux >/dev/null; then
	# The servers' sockets live in the work folder, removed with it.
	export TMUX_TMPDIR=$W
	TM="tmux -L cpu-rs-test-$$"
	stop_tmux() { $TM kill-server >/dev/null 2>&1 || true; }
	CLEANUP_HOOKS+=(stop_tmux)
	$TM new-session -d -x 100 -y 30 \
		"env HOME=$FAKEHOME SHELL=/bin/sh $CPU -9p=false board; echo CPU-EXIT=\$?; sleep 60"
	# screen_has TEXT: poll the pane (bounded) until TEXT shows.
	screen_has() {
		local n=0
		until $TM capture-pane -p | grep -qF -- "$1"; do
			n=$((n + 1))
			[ $n -ge 150 ] && return 1
			sleep 0.1
		done
	}
	$TM send-keys 'echo $((6*7))' Enter
	screen_has 42 && pass "interactive shell through tmux" || fail "interactive: $($TM capture-pane -p | grep -v '^$' | tail -6 | tr '\n' '|')"
	# cpud runs here, so the remote sleep can be seen before Ctrl-C.
	$TM send-keys 'sleep 1017' Enter
	n=0
	until pgrep -fx 'sleep 1017' >/dev/null || [ $n -ge 150 ]; do sleep 0.1; n=$((n + 1)); done
	$TM send-keys C-c
	$TM send-keys 'echo after-$((1+1))-ctrl-c' Enter
	screen_has after-2-ctrl-c && pass "Ctrl-C reaches the remote command" || fail "Ctrl-C: $($TM capture-pane -p | grep -v '^$' | tail -6 | tr '\n' '|')"
	$TM send-keys 'exit 4' Enter
	screen_has CPU-EXIT=4 && pass "shell's exit status comes back" || fail "shell exit: $($TM capture-pane -p | grep -v '^$' | tail -6 | tr '\n' '|')"
	stop_tmux
	# A server of its own: the last one may still be shutting down.
	TM="tmux -L cpu-rs-test-pp-$$"
	# The passphrase asked on the terminal, echo off: a wrong one, then
	# the right one.
	$TM new-session -d -x 150 -y 30 \
		"env -u SSH_AUTH_SOCK -u SSH_ASKPASS HOME=$FAKEHOME $CPU -9p=false -key $W/locked_ed25519 board echo tty-unlocked; echo CPU-EXIT=\$?; sleep 60"
	# capture-pane drops the prompt's trailing space.
	prompt="Enter passphrase for key '$W/locked_ed25519':"
	if screen_has "$prompt"; then
		$TM send-keys 'not it' Enter
		n=0
		until [ "$($TM capture-pane -p | grep -cF -- "$prompt")" -ge 2 ] || [ $n -ge 150 ]; do sleep 0.1; n=$((n + 1)); done
		$TM send-keys 'open sesame' Enter
		screen_has CPU-EXIT= || true
		screen=$($TM capture-pane -p)
		if grep -q tty-unlocked <<<"$screen" && grep -q CPU-EXIT=0 <<<"$screen" &&
			[ "$(grep -cF -- "$prompt" <<<"$screen")" = 2 ] && ! grep -qe 'sesame' -e 'not it' <<<"$screen"; then
			pass "passphrase prompt on the tty, echo off, second attempt"
		else
			fail "tty passphrase: $(grep -v '^$' <<<"$screen" | tail -6 | tr '\n' '|')"
		fi
	else
		fail "no passphrase prompt: $($TM capture-pane -p | grep -v '^$' | tail -6 | tr '\n' '|')"
	fi
	stop_tmux
else
	skip "no tmux: interactive cases"
fi

echo "cpu-local: $PASSES passed, $FAILS failed"
[ "$FAILS" = 0 ]
