#!/bin/bash
# interop.sh: our SSH server and client against independent implementations:
# OpenSSH 9.2 (system ssh/sshd), OpenSSH 10 (shared/peers/openssh10.sh),
# paramiko, asyncssh and ssh-audit. One PASS/FAIL/SKIP line per case, then
# "ssh-interop: N passed, N failed, N skipped"; exit status 1 if any FAIL.
#
#   interop.sh [FILTER]     run the cases whose name contains FILTER (all)
#   interop.sh --setup      only install what the cases need (idempotent)
#   interop.sh --list       print the case names
#
# Contract of our binaries (paths from the environment; a group whose binary
# is unset or missing prints SKIP lines, and with both missing the script
# prints "SKIP: ..." and exits 0):
#   $OUR_SSHD -addr 127.0.0.1:PORT -hostkey FILE -authorized-keys FILE [-pq-only]
#       PORT may be 0; prints "listening on 127.0.0.1:NNNN" on stdout once it
#       accepts; runs exec/shell commands with /bin/sh -c as the current user;
#       pty-req, window-change, env, exit-status/exit-signal, tcpip-forward,
#       direct-tcpip, keepalive@openssh.com; logs to stderr.
#   $OUR_SSH -p PORT -i KEYFILE -l USER [-c CIPHER] [-kex ALG] [-hostkey-alg ALG]
#            [-R 0:127.0.0.1:LPORT] [-rekey-bytes N] [-v] HOST CMD...
#       exit status = the remote one (128+N for signal N), 255 on connection or
#       auth errors; stdin forwarded (EOF too), stdout/stderr apart; -v prints
#       "kex: algorithm: NAME" and "cipher: NAME" on stderr; -R 0:... prints
#       "allocated port N" on stderr; accepts any host key.
# To test this harness without them, use the OpenSSH stand-ins:
#   OUR_SSHD=tests/scripts/ssh/standins/fake-our-sshd \
#   OUR_SSH=tests/scripts/ssh/standins/fake-our-ssh tests/scripts/ssh/interop.sh
#
# Environment: INTEROP_MIB (64) size of the bulk transfers; SSH_SETUP=0 skips
# the automatic setup; CPU_RS_ARTIFACTS (/tmp) gets ssh-audit-*.txt; KEEP=1;
# see also lib.sh. Runs as root (sshd); network on 127.0.0.1 only.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

MIB=${INTEROP_MIB:-64}
BYTES=$((MIB << 20))
CIPHERS="chacha20-poly1305@openssh.com aes256-gcm@openssh.com"
short() { case $1 in chacha20*) echo chacha20 ;; aes256-gcm*) echo aes256gcm ;; *) echo "${1%%@*}" ;; esac; }

CASES_OSSH_OURS="ossh-ours-exit-0 ossh-ours-exit-1 ossh-ours-exit-3 ossh-ours-exit-255 ossh-ours-stdio
 ossh-ours-exit-signal ossh-ours-env ossh-ours-kex-curve25519 ossh-ours-upload-chacha20 ossh-ours-download-chacha20
 ossh-ours-upload-aes256gcm ossh-ours-download-aes256gcm ossh-ours-pty-tty ossh-ours-pty-winch
 ossh-ours-pty-shell ossh-ours-remote-forward ossh-ours-direct-tcpip ossh-ours-keepalive ossh-ours-rekey-upload
 ossh-ours-rekey-download ossh-ours-wrong-key ossh-ours-aes128gcm"
CASES_OURS_OSSHD="ours-osshd-exit-0 ours-osshd-exit-1 ours-osshd-exit-3 ours-osshd-exit-255 ours-osshd-stdio
 ours-osshd-exit-signal ours-osshd-algorithms ours-osshd-upload-chacha20 ours-osshd-download-chacha20 ours-osshd-upload-aes256gcm
 ours-osshd-download-aes256gcm ours-osshd-remote-forward ours-osshd-rekey-upload ours-osshd-rekey-download"
CASES_OURS_OURS="ours-ours-exit-signal"
CASES_O10="o10ssh-ours-mlkem ours-o10sshd-mlkem o10ssh-ours-upload o10ssh-ours-download ours-o10sshd-upload
 ours-o10sshd-download"
CASES_PY="paramiko-ours asyncssh-ours"
CASES_AUDIT="audit-ours-default audit-ours-pq-only"

case ${1:-} in
--setup) ssh_setup; exit ;;
--list) printf '%s\n' $CASES_OSSH_OURS $CASES_OURS_OSSHD $CASES_OURS_OURS $CASES_O10 $CASES_PY $CASES_AUDIT; exit 0 ;;
-h | --help) sed -n '2,33s/^# \{0,1\}//p' "$0"; exit 0 ;;
esac
CASE_FILTER=${1:-}
any_want() { local c; for c in "$@"; do want "$c" && return 0; done; return 1; }

HAVE_SSHD=0 HAVE_SSH=0
[ -n "${OUR_SSHD:-}" ] && OUR_SSHD=$(abs_bin "$OUR_SSHD") && bin_ok "$OUR_SSHD" && HAVE_SSHD=1
[ -n "${OUR_SSH:-}" ] && OUR_SSH=$(abs_bin "$OUR_SSH") && bin_ok "$OUR_SSH" && HAVE_SSH=1
if [ $HAVE_SSHD = 0 ] && [ $HAVE_SSH = 0 ]; then
	echo "SKIP: neither OUR_SSHD (${OUR_SSHD:-unset}) nor OUR_SSH (${OUR_SSH:-unset}) is an executable file"
	exit 0
fi
[ "${SSH_SETUP:-1}" = 0 ] || ssh_setup >/dev/null
ssh_init ssh-interop
T0=$(now)
say "our server: $([ $HAVE_SSHD = 1 ] && echo "$OUR_SSHD" || echo none); our client: $([ $HAVE_SSH = 1 ] && echo "$OUR_SSH" || echo none); transfers ${MIB} MiB; work $W"

# --- case helpers -----------------------------------------------------------

# signal_case NAME CLIENT PORT: our client, remote 'kill -TERM $$': exit 143.
signal_case() {
	local n=$1 cl=$2 port=$3 rc=0
	want "$n" || return 0
	$cl "$port" -- 'echo ran; kill -TERM $$; echo survived' >"$W/$n.out" 2>"$W/$n.err" </dev/null || rc=$?
	if [ "$rc" = 143 ] && [ "$(cat "$W/$n.out")" = ran ]; then
		pass "$n"
	else
		failx "$n" "exit $rc (want 143 = 128+SIGTERM), stdout '$(head -c 100 "$W/$n.out" | tr '\n' '|')'" "$W/$n.err"
	fi
}

# failx NAME DETAIL [LOGFILE...]: FAIL line, then the end of each log.
failx() {
	local n=$1 d=$2 f
	shift 2
	fail "$n: $d"
	for f in "$@"; do
		[ -s "$f" ] && tail -n 6 "$f" | sed "s|^|    ${f##*/}: |"
	done
	return 0
}

# exit_case NAME CLIENT PORT N: remote "echo ran; exit N".
exit_case() {
	local n=$1 cl=$2 port=$3 want_rc=$4 rc=0
	want "$n" || return 0
	$cl "$port" -- "echo ran; exit $want_rc" >"$W/$n.out" 2>"$W/$n.err" </dev/null || rc=$?
	if [ "$rc" = "$want_rc" ] && [ "$(cat "$W/$n.out")" = ran ]; then
		pass "$n"
	else
		failx "$n" "exit $rc (want $want_rc), stdout '$(head -c 100 "$W/$n.out")'" "$W/$n.err"
	fi
}

# stdio_case NAME CLIENT PORT: stdin in, stdout and stderr kept apart.
stdio_case() {
	local n=$1 cl=$2 port=$3 rc=0
	want "$n" || return 0
	printf 'line1\nline2\n' | $cl "$port" -- 'wc -l; echo to-stderr >&2' >"$W/$n.out" 2>"$W/$n.err" || rc=$?
	if [ "$rc" = 0 ] && [ "$(tr -d ' ' <"$W/$n.out")" = 2 ] && grep -qx to-stderr "$W/$n.err" &&
		! grep -q to-stderr "$W/$n.out"; then
		pass "$n"
	else
		failx "$n" "exit $rc, stdout '$(head -c 100 "$W/$n.out")'" "$W/$n.err"
	fi
}

# upload_case NAME CLIENT PORT [CLIENT_ARGS...]: $BYTES random bytes in,
# remote sha256sum. Sets LAST_ERR to the client's stderr file.
upload_case() {
	local n=$1 cl=$2 port=$3 rc=0 got
	shift 3
	need_rand
	LAST_ERR=$W/$n.err
	$cl "$port" "$@" -- sha256sum <"$RAND" >"$W/$n.out" 2>"$W/$n.err" || rc=$?
	got=$(first_word "$W/$n.out")
	if [ "$rc" = 0 ] && [ "$got" = "$RAND_SHA" ]; then
		return 0
	fi
	UPDOWN_DETAIL="exit $rc, remote sha256 '${got:0:16}...', want '${RAND_SHA:0:16}...'"
	return 1
}

# download_case NAME CLIENT PORT [CLIENT_ARGS...]: remote head -c $BYTES of
# the same random file out, sha256 here.
download_case() {
	local n=$1 cl=$2 port=$3 rc got
	shift 3
	need_rand
	LAST_ERR=$W/$n.err
	{
		rc=0
		$cl "$port" "$@" -- "head -c $BYTES '${RAND_REMOTE:-$RAND}'" 2>"$W/$n.err" </dev/null || rc=$?
		echo "$rc" >"$W/$n.rc"
	} | sha256sum >"$W/$n.out"
	rc=$(cat "$W/$n.rc")
	got=$(first_word "$W/$n.out")
	if [ "$rc" = 0 ] && [ "$got" = "$RAND_SHA" ]; then
		return 0
	fi
	UPDOWN_DETAIL="exit $rc, sha256 here '${got:0:16}...', want '${RAND_SHA:0:16}...'"
	return 1
}

bulk_cases() { # PREFIX CLIENT PORT: both directions, both ciphers
	local pre=$1 cl=$2 port=$3 c s n t
	for c in $CIPHERS; do
		s=$(short "$c")
		for d in upload download; do
			n=$pre-$d-$s
			want "$n" || continue
			t=$(now)
			if ${d}_case "$n" "$cl" "$port" -c "$c"; then
				pass "$n ($MIB MiB in $(secs "$t" "$(now)") s)"
			else
				failx "$n" "$UPDOWN_DETAIL" "$LAST_ERR"
			fi
		done
	done
}

# payload_server NAME: the local TCP service of the forwarding cases
# (tests/py/tcp_payload_server.py): reads a line into $W/NAME.srvlog, sends
# 1 MiB ($PAYLOAD) and closes. Sets SRV_PID, SRV_PORT.
payload_server() {
	local n=$1 line
	PAYLOAD=$(rand_file fwd.bin 1)
	"$HOST_PY" "$PY_DIR/tcp_payload_server.py" "$PAYLOAD" "$W/$n.srvlog" 120 >"$W/$n.srv" 2>&1 </dev/null &
	SRV_PID=$!
	track "$SRV_PID"
	if ! line=$(wait_line "$W/$n.srv" 'listening on' "$SRV_PID" 10); then
		failx "$n" "local TCP service did not start" "$W/$n.srv"
		return 1
	fi
	SRV_PORT=${line##*:}
}

# forward_case NAME CLIENT PORT: CLIENT -R 0:127.0.0.1:LPORT to a local
# service; the remote command connects to the allocated port (which this
# script reads from the client's stderr and hands over in a file: remote and
# local are the same machine), sends a line and reads 1 MiB back.
forward_case() {
	local n=$1 cl=$2 port=$3 spid lport cpid line rport rc=0 payload
	want "$n" || return 0
	payload_server "$n" || return 0
	spid=$SRV_PID lport=$SRV_PORT payload=$PAYLOAD
	local rp=$W/$n.rport
	# Remote: wait (bounded) for the port file, then bash's /dev/tcp.
	local cmd="i=0; while [ ! -s '$rp' ] && [ \$i -lt 300 ]; do sleep 0.1; i=\$((i+1)); done;"
	cmd+=" p=\$(cat '$rp'); exec bash -c \"exec 3<>/dev/tcp/127.0.0.1/\$p && echo hello-$n >&3 && sha256sum <&3\""
	$cl "$port" -R "0:127.0.0.1:$lport" -- "$cmd" >"$W/$n.out" 2>"$W/$n.err" </dev/null &
	cpid=$!
	if line=$(wait_line "$W/$n.err" '[Aa]llocated port [0-9]+' "$cpid" 30); then
		rport=$(sed -n 's/.*[Aa]llocated port \([0-9][0-9]*\).*/\1/p' <<<"$line")
		echo "$rport" >"$rp.tmp" && mv "$rp.tmp" "$rp"
	else
		echo 0 >"$rp" # lets the remote side give up at once
	fi
	wait "$cpid" || rc=$?
	stop_pid "$spid"
	if [ -z "${rport:-}" ]; then
		failx "$n" "no 'allocated port' line on the client's stderr (exit $rc)" "$W/$n.err"
	elif [ "$rc" = 0 ] && [ "$(first_word "$W/$n.out")" = "$(sha_of "$payload")" ] &&
		grep -qx "hello-$n" "$W/$n.srvlog"; then
		pass "$n (remote port $rport -> 127.0.0.1:$lport)"
	else
		failx "$n" "exit $rc, remote read '$(head -c 20 "$W/$n.out")', local service got '$(head -c 40 "$W/$n.srvlog" 2>/dev/null)'" "$W/$n.err"
	fi
}

# count_in FILE ERE: number of matching lines (0 if none).
count_in() { grep -c -E "$2" "$1" 2>/dev/null || true; }

# --- servers, started when a wanted case needs them -------------------------

OURS_PORT=''
ours_server() { # the default-config server, shared by the groups
	[ -n "$OURS_PORT" ] && return 0
	start_our_sshd ours || return 1
	OURS_PORT=$SPORT
}

# The random data of the bulk cases, made when first needed.
RAND='' RAND_SHA=''
need_rand() {
	[ -n "$RAND" ] && return 0
	RAND=$(rand_file rand.bin "$MIB")
	RAND_SHA=$(sha_of "$RAND")
}

# --- OpenSSH 9.2 ssh -> our sshd ------------------------------------------

group_ossh_ours() {
	# shellcheck disable=SC2086 # word lists
	any_want $CASES_OSSH_OURS || return 0
	if [ $HAVE_SSHD = 0 ]; then
		skip "ossh-ours-*: OUR_SSHD not set or missing"
		return 0
	fi
	if ! ours_server; then
		failx ossh-ours-server "our server did not start" "$W/ours.err"
		return 0
	fi
	local P=$OURS_PORT n rc t
	for rc in 0 1 3 255; do exit_case "ossh-ours-exit-$rc" ossh "$P" "$rc"; done
	stdio_case ossh-ours-stdio ossh "$P"

	n=ossh-ours-exit-signal
	if want $n; then
		# OpenSSH 9.2 prints nothing and exits 255 on exit-signal; with -v it logs
		# the request, which tells it apart from a dropped channel.
		rc=0
		SSH_LOGLEVEL=DEBUG1 ossh "$P" -v -- 'kill -TERM $$' >"$W/$n.out" 2>"$W/$n.err" </dev/null || rc=$?
		if [ "$rc" = 255 ] && grep -q 'rtype exit-signal' "$W/$n.err"; then
			pass "$n"
		else
			failx "$n" "exit $rc (want 255) and 'rtype exit-signal' in ssh -v: $(count_in "$W/$n.err" 'rtype exit-signal')" "$W/$n.err"
		fi
	fi

	n=ossh-ours-env
	if want $n; then
		rc=0
		ossh "$P" -o SetEnv=CPU_RS_TEST=hello-env -- 'echo "v=$CPU_RS_TEST"' >"$W/$n.out" 2>"$W/$n.err" </dev/null || rc=$?
		if [ "$rc" = 0 ] && [ "$(cat "$W/$n.out")" = v=hello-env ]; then pass $n; else
			failx $n "exit $rc, stdout '$(cat "$W/$n.out")'" "$W/$n.err"
		fi
	fi

	n=ossh-ours-kex-curve25519
	if want $n; then
		rc=0
		SSH_LOGLEVEL=DEBUG1 ossh "$P" -v -o KexAlgorithms=curve25519-sha256 -o HostKeyAlgorithms=ssh-ed25519 \
			-- 'echo hi' >"$W/$n.out" 2>"$W/$n.err" </dev/null || rc=$?
		if [ "$rc" = 0 ] && [ "$(cat "$W/$n.out")" = hi ] &&
			grep -q 'kex: algorithm: curve25519-sha256' "$W/$n.err" &&
			grep -q 'kex: host key algorithm: ssh-ed25519' "$W/$n.err"; then
			pass $n
		else
			failx $n "exit $rc, stdout '$(cat "$W/$n.out")', $(grep -m1 'kex: algorithm:' "$W/$n.err" || echo 'no kex line')"
		fi
	fi

	bulk_cases ossh-ours ossh "$P"

	# pty: ssh -tt on a terminal of 24x80 made by pty_winch.py; the remote
	# prints tty and its size, then polls (bounded) until the size is 50x132,
	# which it becomes after pty_winch resizes ssh's terminal (SIGWINCH ->
	# window-change).
	if any_want ossh-ours-pty-tty ossh-ours-pty-winch; then
		n=ossh-ours-pty
		local cmd='tty; echo INIT $(stty size); i=0; while [ $i -lt 150 ]; do s=$(stty size); [ "$s" = "50 132" ] && break; sleep 0.1; i=$((i+1)); done; echo CHANGED $s'
		rc=0
		timeout -k 5 60 "$HOST_PY" "$PY_DIR/pty_winch.py" 24 80 50 132 40 -- \
			"$SYS_SSH" -tt -p "$P" -i "$W/client_ed25519" "${OSSH_OPTS[@]}" -o LogLevel=ERROR \
			"$ME@127.0.0.1" "$cmd" >"$W/$n.out" 2>"$W/$n.err" </dev/null || rc=$?
		if want ossh-ours-pty-tty; then
			if grep -qE '^/dev/pts/[0-9]+$' "$W/$n.out" && grep -qx 'INIT 24 80' "$W/$n.out"; then
				pass "ossh-ours-pty-tty ($(grep -m1 '^/dev/pts/' "$W/$n.out"), 24x80)"
			else
				failx ossh-ours-pty-tty "exit $rc; remote printed: $(head -c 200 "$W/$n.out" | tr '\n' '|')" "$W/$n.err"
			fi
		fi
		if want ossh-ours-pty-winch; then
			if [ "$rc" = 0 ] && grep -qx 'CHANGED 50 132' "$W/$n.out"; then
				pass ossh-ours-pty-winch
			else
				failx ossh-ours-pty-winch "exit $rc; remote printed: $(head -c 200 "$W/$n.out" | tr '\n' '|')" "$W/$n.err"
			fi
		fi
	fi

	n=ossh-ours-pty-shell
	if want $n; then
		# An interactive login shell (shell request, no command) on a pty, with
		# ssh -tt on a real terminal: script(1) makes one, sets it to 30x100
		# and types three lines into it. Typed-ahead input waits in the
		# terminals until the remote shell reads it.
		local sshcmd
		printf -v sshcmd '%q ' "$SYS_SSH" -tt -p "$P" -i "$W/client_ed25519" "${OSSH_OPTS[@]}" -o LogLevel=ERROR "$ME@127.0.0.1"
		rc=0
		printf 'echo $((6*7))\nstty size\nexit 5\n' |
			timeout -k 5 60 script -q -e -c "stty rows 30 cols 100; exec $sshcmd" /dev/null \
				>"$W/$n.out" 2>"$W/$n.err" || rc=$?
		# The terminal shows the typed lines first (echoed before the shell
		# reads them), then each output after a prompt: "# 42". Terminal
		# escapes (bash's bracketed paste mode) are dropped.
		tr -d '\r' <"$W/$n.out" | sed 's/\x1b\[[0-9;?]*[a-zA-Z]//g' >"$W/$n.txt"
		local l42 lsz
		l42=$(grep -cE '(^|[#$>] )42$' "$W/$n.txt" || true)
		lsz=$(grep -cE '(^|[#$>] )30 100$' "$W/$n.txt" || true)
		if [ "$rc" = 5 ] && [ "$l42" -ge 1 ] && [ "$lsz" -ge 1 ]; then
			pass "$n (42, 30x100, exit 5)"
		else
			failx $n "exit $rc (want 5), lines '42' and '30 100': $l42/$lsz; terminal: $(head -c 300 "$W/$n.txt" | tr '\n' '|')" "$W/$n.err"
		fi
	fi

	SSH_LOGLEVEL=INFO forward_case ossh-ours-remote-forward ossh_fwd "$P"

	n=ossh-ours-direct-tcpip
	if want $n && payload_server $n; then
		# ssh -W: a direct-tcpip channel from the server to the local service.
		rc=0
		echo "hello-$n" | ossh "$P" -W "127.0.0.1:$SRV_PORT" -- >"$W/$n.out" 2>"$W/$n.err" || rc=$?
		stop_pid "$SRV_PID"
		if [ "$rc" = 0 ] && [ "$(sha_of "$W/$n.out")" = "$(sha_of "$PAYLOAD")" ] &&
			grep -qx "hello-$n" "$W/$n.srvlog"; then
			pass "$n (ssh -W 127.0.0.1:$SRV_PORT)"
		else
			failx $n "exit $rc, got $(wc -c <"$W/$n.out") bytes, local service got '$(head -c 40 "$W/$n.srvlog" 2>/dev/null)'" "$W/$n.err"
		fi
	fi

	n=ossh-ours-keepalive
	if want $n; then
		# 6 s of silence; without replies to keepalive@openssh.com the client
		# gives up after about 3 s ("Timeout, server not responding", exit 255).
		rc=0
		ossh "$P" -o ServerAliveInterval=1 -o ServerAliveCountMax=2 -- 'sleep 6; echo alive' \
			>"$W/$n.out" 2>"$W/$n.err" </dev/null || rc=$?
		if [ "$rc" = 0 ] && [ "$(cat "$W/$n.out")" = alive ]; then pass $n; else
			failx $n "exit $rc, stdout '$(cat "$W/$n.out")'" "$W/$n.err"
		fi
	fi

	local d k
	for d in upload download; do
		n=ossh-ours-rekey-$d
		want $n || continue
		if SSH_LOGLEVEL=DEBUG1 ${d}_case $n ossh "$P" -v -o RekeyLimit=1M; then
			k=$(count_in "$W/$n.err" 'SSH2_MSG_NEWKEYS received')
			if [ "$k" -ge $((MIB / 4)) ]; then pass "$n ($k key exchanges)"; else
				failx $n "data ok but only $k key exchanges (want >= $((MIB / 4)))"
			fi
		else
			failx $n "$UPDOWN_DETAIL" "$LAST_ERR"
		fi
	done

	n=ossh-ours-wrong-key
	if want $n; then
		rc=0
		SSH_KEY=$W/wrong_ed25519 ossh "$P" -- 'echo should-not-run' >"$W/$n.out" 2>"$W/$n.err" </dev/null || rc=$?
		if [ "$rc" = 255 ] && grep -q 'Permission denied' "$W/$n.err" && [ ! -s "$W/$n.out" ]; then pass $n; else
			failx $n "exit $rc (want 255 and 'Permission denied'), stdout '$(cat "$W/$n.out")'" "$W/$n.err"
		fi
	fi

	n=ossh-ours-aes128gcm
	if want $n; then
		# The one cipher the bulk cases leave out: exec, 1 MiB up, sha256 back.
		local small
		small=$(rand_file small.bin 1)
		rc=0
		SSH_LOGLEVEL=DEBUG1 ossh "$P" -v -o Ciphers=aes128-gcm@openssh.com -- 'echo hi; sha256sum' \
			<"$small" >"$W/$n.out" 2>"$W/$n.err" || rc=$?
		if [ "$rc" = 0 ] && [ "$(sed -n 1p "$W/$n.out")" = hi ] &&
			[ "$(sed -n '2s/ .*//p' "$W/$n.out")" = "$(sha_of "$small")" ] &&
			grep -q 'cipher: aes128-gcm@openssh.com' "$W/$n.err"; then
			pass $n
		else
			failx $n "exit $rc, stdout '$(head -c 100 "$W/$n.out" | tr '\n' '|')', $(grep -m1 'cipher:' "$W/$n.err" || echo 'no cipher line')" "$W/$n.err"
		fi
	fi
}
# OpenSSH client with the remote forward options of the forward case.
ossh_fwd() {
	local port=$1
	shift
	ossh "$port" -o ExitOnForwardFailure=yes "$@"
}

# --- our ssh -> OpenSSH 9.2 sshd ------------------------------------------

group_ours_osshd() {
	# shellcheck disable=SC2086
	any_want $CASES_OURS_OSSHD || return 0
	if [ $HAVE_SSH = 0 ]; then
		skip "ours-osshd-*: OUR_SSH not set or missing"
		return 0
	fi
	if ! start_openssh_sshd osshd; then
		failx ours-osshd-server "OpenSSH sshd did not start" "$W/osshd.log"
		return 0
	fi
	local P=$SPORT rc n d k
	for rc in 0 1 3 255; do exit_case "ours-osshd-exit-$rc" oursh "$P" "$rc"; done
	stdio_case ours-osshd-stdio oursh "$P"
	signal_case ours-osshd-exit-signal oursh "$P"

	n=ours-osshd-algorithms
	if want $n; then
		# -kex, -hostkey-alg, -c and the -v lines of our client.
		rc=0
		oursh "$P" -v -kex curve25519-sha256 -hostkey-alg ssh-ed25519 -c aes256-gcm@openssh.com \
			-- 'echo hi' >"$W/$n.out" 2>"$W/$n.err" </dev/null || rc=$?
		if [ "$rc" = 0 ] && [ "$(cat "$W/$n.out")" = hi ] &&
			tr -d '\r' <"$W/$n.err" | grep -qx 'kex: algorithm: curve25519-sha256' &&
			tr -d '\r' <"$W/$n.err" | grep -qx 'cipher: aes256-gcm@openssh.com'; then
			pass $n
		else
			failx $n "exit $rc, stdout '$(cat "$W/$n.out")', want lines 'kex: algorithm: curve25519-sha256' and 'cipher: aes256-gcm@openssh.com' on stderr" "$W/$n.err"
		fi
	fi
	bulk_cases ours-osshd oursh "$P"
	forward_case ours-osshd-remote-forward oursh "$P"

	# RekeyLimit on the server side: sshd starts the key exchanges.
	any_want ours-osshd-rekey-upload ours-osshd-rekey-download || return 0
	if ! start_openssh_sshd osshd-rekey "RekeyLimit 1M" "LogLevel DEBUG1"; then
		failx ours-osshd-rekey "OpenSSH sshd (RekeyLimit 1M) did not start" "$W/osshd-rekey.log"
		return 0
	fi
	P=$SPORT
	for d in upload download; do
		n=ours-osshd-rekey-$d
		want $n || continue
		local before
		before=$(count_in "$W/osshd-rekey.log" 'SSH2_MSG_NEWKEYS received')
		if ${d}_case $n oursh "$P"; then
			k=$(($(count_in "$W/osshd-rekey.log" 'SSH2_MSG_NEWKEYS received') - before))
			if [ "$k" -ge $((MIB / 4)) ]; then pass "$n ($k key exchanges)"; else
				failx $n "data ok but sshd logged only $k key exchanges (want >= $((MIB / 4)))" "$W/osshd-rekey.log"
			fi
		else
			failx $n "$UPDOWN_DETAIL" "$LAST_ERR" "$W/osshd-rekey.log"
		fi
	done
}

# --- our ssh -> our sshd -----------------------------------------------------

group_ours_ours() {
	# shellcheck disable=SC2086
	any_want $CASES_OURS_OURS || return 0
	if [ $HAVE_SSH = 0 ] || [ $HAVE_SSHD = 0 ]; then
		skip "ours-ours-*: OUR_SSH or OUR_SSHD not set or missing"
		return 0
	fi
	ours_server || { failx ours-ours-server "our server did not start" "$W/ours.err"; return 0; }
	signal_case ours-ours-exit-signal oursh "$OURS_PORT"
}

# --- OpenSSH 10, both directions: mlkem768x25519-sha256, bulk data -----------

# o10_updown NAME CLIENT PORT: the upload or download case NAME (by its
# suffix) with the default algorithms (mlkem768x25519-sha256, chacha20).
o10_updown() {
	local n=$1 cl=$2 port=$3 t
	want "$n" || return 0
	t=$(now)
	if "${n##*-}_case" "$n" "$cl" "$port"; then
		pass "$n ($MIB MiB in $(secs "$t" "$(now)") s)"
	else
		failx "$n" "$UPDOWN_DETAIL" "$LAST_ERR"
	fi
}

# Remote commands of OpenSSH 10's sshd run in its chroot: the download case
# reads a copy of the random data put there (removed by the cleanup).
O10_DATA=''
o10_data_cleanup() { [ -z "$O10_DATA" ] || rm -rf "$O10_DATA"; }
o10_data() {
	local root
	need_rand
	root=$("$OPENSSH10" root) || return 1
	O10_DATA=$root/var/tmp/cpu-rs-interop-$$
	CLEANUP_HOOKS+=(o10_data_cleanup)
	mkdir -p "$O10_DATA" && { ln "$RAND" "$O10_DATA/rand.bin" 2>/dev/null || cp "$RAND" "$O10_DATA/rand.bin"; } &&
		RAND_REMOTE=/var/tmp/cpu-rs-interop-$$/rand.bin
}

group_o10() {
	# shellcheck disable=SC2086
	any_want $CASES_O10 || return 0
	local n rc
	if ! o10_ready; then
		skip "o10*: OpenSSH 10 peer not set up ($OPENSSH10 setup)"
		return 0
	fi
	if any_want o10ssh-ours-mlkem o10ssh-ours-upload o10ssh-ours-download; then
		if [ $HAVE_SSHD = 0 ]; then skip "o10ssh-ours-*: OUR_SSHD not set or missing"
		elif ! ours_server; then failx o10ssh-ours "our server did not start" "$W/ours.err"
		else
			n=o10ssh-ours-mlkem
			if want $n; then
				rc=0
				SSH_LOGLEVEL=DEBUG1 o10ssh "$OURS_PORT" -v -- 'echo hi; exit 5' >"$W/$n.out" 2>"$W/$n.err" </dev/null || rc=$?
				if [ "$rc" = 5 ] && [ "$(cat "$W/$n.out")" = hi ] &&
					grep -q 'kex: algorithm: mlkem768x25519-sha256' "$W/$n.err"; then
					pass $n
				else
					failx $n "exit $rc (want 5), stdout '$(cat "$W/$n.out")', $(grep -m1 'kex: algorithm:' "$W/$n.err" || echo 'no kex line')"
				fi
			fi
			o10_updown o10ssh-ours-upload o10ssh "$OURS_PORT"
			o10_updown o10ssh-ours-download o10ssh "$OURS_PORT"
		fi
	fi
	if any_want ours-o10sshd-mlkem ours-o10sshd-upload ours-o10sshd-download; then
		if [ $HAVE_SSH = 0 ]; then skip "ours-o10sshd-*: OUR_SSH not set or missing"
		elif ! start_o10_sshd o10sshd; then failx ours-o10sshd "OpenSSH 10 sshd did not start" "$W/o10sshd.log"
		else
			local P=$SPORT
			n=ours-o10sshd-mlkem
			if want $n; then
				rc=0
				SSH_USER=root oursh "$P" -v -- 'echo hi; exit 5' >"$W/$n.out" 2>"$W/$n.err" </dev/null || rc=$?
				if [ "$rc" = 5 ] && [ "$(cat "$W/$n.out")" = hi ] &&
					grep -q 'kex: algorithm: mlkem768x25519-sha256' "$W/$n.err"; then
					pass $n
				else
					failx $n "exit $rc (want 5), stdout '$(cat "$W/$n.out")', $(grep -m1 'kex: algorithm:' "$W/$n.err" || echo 'no kex line')" "$W/$n.err"
				fi
			fi
			SSH_USER=root o10_updown ours-o10sshd-upload oursh "$P"
			if want ours-o10sshd-download; then
				if o10_data; then
					SSH_USER=root o10_updown ours-o10sshd-download oursh "$P"
				else
					failx ours-o10sshd-download "could not copy the data into the chroot ($O10_DATA)"
				fi
				RAND_REMOTE=''
			fi
		fi
	fi
}

# --- paramiko and asyncssh -> our sshd ---------------------------------------

group_py() {
	# shellcheck disable=SC2086
	any_want $CASES_PY || return 0
	local tool n rc
	if [ $HAVE_SSHD = 0 ]; then
		skip "paramiko/asyncssh-ours: OUR_SSHD not set or missing"
		return 0
	fi
	if ! venv_ensure >/dev/null 2>&1; then
		skip "paramiko/asyncssh-ours: no venv $VENV (interop.sh --setup)"
		return 0
	fi
	ours_server || { failx py-ours-server "our server did not start" "$W/ours.err"; return 0; }
	for tool in paramiko asyncssh; do
		n=$tool-ours
		want $n || continue
		rc=0
		timeout -k 5 60 "$VENV/bin/python" "$PY_DIR/${tool}_exec.py" 127.0.0.1 "$OURS_PORT" "$ME" \
			"$W/client_ed25519" 'echo hello; echo oops >&2; exit 7' >"$W/$n.out" 2>"$W/$n.err" </dev/null || rc=$?
		if [ "$rc" = 7 ] && [ "$(cat "$W/$n.out")" = hello ] && grep -qx oops "$W/$n.err"; then
			pass "$n ($(grep -o 'server .*' "$W/$n.err" | head -n 1))"
		else
			failx $n "exit $rc (want 7), stdout '$(cat "$W/$n.out")'" "$W/$n.err"
		fi
	done
}

# --- ssh-audit -> our sshd ---------------------------------------------------

group_audit() {
	# shellcheck disable=SC2086
	any_want $CASES_AUDIT || return 0
	local n rc port out bad
	if [ $HAVE_SSHD = 0 ]; then
		skip "audit-ours-*: OUR_SSHD not set or missing"
		return 0
	fi
	if ! venv_ensure >/dev/null 2>&1; then
		skip "audit-ours-*: no ssh-audit in $VENV (interop.sh --setup)"
		return 0
	fi
	mkdir -p "$ARTIFACTS"
	for n in audit-ours-default audit-ours-pq-only; do
		want $n || continue
		if [ $n = audit-ours-default ]; then
			ours_server || { failx $n "our server did not start" "$W/ours.err"; continue; }
			port=$OURS_PORT
		else
			start_our_sshd ours-pq -pq-only || { failx $n "our server (-pq-only) did not start" "$W/ours-pq.err"; continue; }
			port=$SPORT
		fi
		out=$ARTIFACTS/ssh-audit-${n#audit-}.txt
		rc=0
		timeout -k 5 120 "$VENV/bin/ssh-audit" -n -t 10 -p "$port" 127.0.0.1 >"$out" 2>&1 </dev/null || rc=$?
		# 0 good, 2 warnings, 3 failures; 1 = could not connect or parse.
		if [ "$rc" = 1 ] || [ "$rc" -gt 3 ] || ! grep -q '^(kex) ' "$out"; then
			failx $n "ssh-audit exit $rc, no (kex) section (report $out)" "$out"
			continue
		fi
		bad=$(grep -F '[fail]' "$out" || true)
		if [ $n = audit-ours-pq-only ]; then
			bad+=$(grep -E '^\(kex\) .*\[warn\]' "$out" || true)
		else
			# The only warnings allowed: the post-quantum notice on the two
			# classic curve25519 key exchanges (kept for older clients).
			bad+=$(grep -F '[warn]' "$out" | grep -vE '^\(kex\) curve25519-sha256(@libssh\.org)? +-- \[warn\] does not provide protection against post-quantum attacks$' || true)
		fi
		if [ -z "$bad" ]; then
			pass "$n (ssh-audit exit $rc, report $out)"
		else
			fail "$n: report $out has:"
			sed 's/^/    /' <<<"$bad"
		fi
	done
}

group_ossh_ours
group_ours_osshd
group_ours_ours
group_o10
group_py
group_audit

say "done in $(secs "$T0" "$(now)") s"
echo "ssh-interop: $PASSES passed, $FAILS failed, $SKIPS skipped"
[ "$FAILS" = 0 ]
