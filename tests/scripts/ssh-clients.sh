#!/usr/bin/env bash
# tests/scripts/ssh-clients.sh: the SSH clients found in the field against
# our cpud on 127.0.0.1 (plain SSH, no 9P), and our client against
# Dropbear's server:
#   - Dropbear's dbclient (dropbear-bin), which sends a guessed kex packet
#     (RFC 4253 §7.1): every cipher it shares with us (one it does not is
#     refused), Ed25519, RSA and ECDSA user keys made by dropbearkey and an
#     OpenSSH key converted by dropbearconvert, the host key's fingerprint
#   - PuTTY's plink (putty-tools), batch mode, keys converted by puttygen,
#     the host key given by fingerprint (a wrong one refused)
#   - libssh and libssh2 (PyPI ssh-python, ssh2-python; tests/py/libssh_exec.py)
#   - each: echo, a remote `exit 7`, 20 MiB of stdin (sha256), a pty
#   - our example client (ssh_client, or ssh_client_smol under
#     CPU_RS_RUNTIME=smol) against `dropbear` (echo, exit 7, 20 MiB); root
#     only: Dropbear reads ~/.ssh/authorized_keys, so a private mount
#     namespace binds a home of the test's over the user's own
#
# Remote commands work both under the reference's word splitting and under
# `$SHELL -c`. CPUD: the binary (default target/release/cpud); OUR_SSH (default
# target/release/examples/ssh_client[_smol]). One PASS/FAIL line a case.
set -euo pipefail
# shellcheck source=ssh/lib.sh
. "$(dirname "$0")/ssh/lib.sh"

cpu_bins
ssh_init ssh-clients
unset SSH_AUTH_SOCK

need=0
for c in dbclient dropbear dropbearkey dropbearconvert plink puttygen script; do
	command -v "$c" >/dev/null || { fail "no $c (tests/run-all.sh --setup installs it)"; need=1; }
done
"$VENV/bin/python" -c 'import ssh, ssh2' 2>/dev/null ||
	{ fail "no ssh-python/ssh2-python in $VENV (tests/scripts/ssh/interop.sh --setup)"; need=1; }
[ "$need" = 0 ] || exit 1

# User keys, all authorized before cpud starts: for dbclient Ed25519, RSA
# and ECDSA from dropbearkey, and the OpenSSH Ed25519 key through
# dropbearconvert; for plink OpenSSH's Ed25519, RSA and ECDSA keys through
# puttygen.
for t in ed25519 rsa ecdsa; do
	dropbearkey -t "$t" -f "$W/db_$t" >/dev/null 2>&1
	dropbearkey -y -f "$W/db_$t" | grep -E '^(ssh-|ecdsa-)' >>"$W/authorized_keys"
done
dropbearconvert openssh dropbear "$W/client_ed25519" "$W/db_converted" >/dev/null 2>&1
for t in rsa ecdsa; do
	ssh-keygen -q -t "$t" -N '' -f "$W/client_$t" </dev/null
	cat "$W/client_$t.pub" >>"$W/authorized_keys"
done
for t in ed25519 rsa ecdsa; do
	puttygen "$W/client_$t" -O private -o "$W/client_$t.ppk" >/dev/null 2>&1
done

start_cpud cpud -hk "$W/host_ed25519" || exit 1
HOST_FP=$(ssh-keygen -lf "$W/host_ed25519" | awk '{print $2}')
# The clients' own state (known hosts, PuTTY's cache) stays in $W.
H=$W/home
mkdir -p "$H"
MIB20=$(rand_file in20.bin 20)
WANT20=$(sha_of "$MIB20")
TMO=60

# ok_cases NAME RUN: echo, exit 7, 20 MiB of stdin, a pty, where RUN
# [--pty] CMD runs CMD through the client (stdin as given) and its last
# argument is the remote command string.
ok_cases() {
	local name=$1 run=$2 out rc
	out=$($run "echo hello world" </dev/null 2>"$W/$name.echo.err") &&
		[ "$out" = "hello world" ] && pass "$name: echo" ||
		fail "$name: echo: got '$out': $(tail -n 3 "$W/$name.echo.err")"
	rc=0
	$run "sh -c 'exit 7'" </dev/null >/dev/null 2>"$W/$name.exit.err" || rc=$?
	[ "$rc" = 7 ] && pass "$name: exit 7" || fail "$name: exit 7: got $rc: $(tail -n 3 "$W/$name.exit.err")"
	out=$($run sha256sum <"$MIB20" 2>"$W/$name.stdin.err" | cut -d' ' -f1) || true
	[ "$out" = "$WANT20" ] && pass "$name: 20 MiB of stdin" ||
		fail "$name: 20 MiB of stdin: got '$out': $(tail -n 3 "$W/$name.stdin.err")"
	# tty prints the terminal's path and exits 0 only on a terminal. (With
	# script(1), its local terminal echoes the NUL it sends at the end of
	# its stdin as ^@, and CR LF ends lines.)
	out=$($run --pty tty </dev/null 2>"$W/$name.pty.err") || true
	out=${out//$'\r'/}
	grep -Eq '^/dev/pts/[0-9]+$' <<<"${out//^@/}" && pass "$name: pty" ||
		fail "$name: pty: got '$out': $(tail -n 3 "$W/$name.pty.err")"
}

# --- Dropbear's client -------------------------------------------------------
# dbclient KEY [DBCLIENT_ARGS...] [--pty] CMD. -y accepts the host key
# unknown to it (its fingerprint checked below). For a pty dbclient needs
# a terminal of its own: script(1) gives it one.
dbc() {
	local key=$1 pty=0
	shift
	local args=()
	while [ $# -gt 1 ]; do
		if [ "$1" = --pty ]; then pty=1; else args+=("$1"); fi
		shift
	done
	if [ "$pty" = 1 ]; then
		HOME=$H timeout -k 5 "$TMO" script -qec "dbclient -y -t -i $W/$key ${args[*]} -p $CPORT $ME@127.0.0.1 '$1'" /dev/null
	else
		HOME=$H timeout -k 5 "$TMO" dbclient -y -T -i "$W/$key" "${args[@]}" -p "$CPORT" "$ME@127.0.0.1" "$1"
	fi
}
dbc_ed() { dbc db_ed25519 "$@"; }
ok_cases dbclient dbc_ed
grep -q "fingerprint $HOST_FP" "$W/dbclient.echo.err" && pass "dbclient: host key fingerprint $HOST_FP" ||
	fail "dbclient: host key: $(cat "$W/dbclient.echo.err")"
for k in db_rsa db_ecdsa db_converted; do
	out=$(dbc "$k" "echo $k" </dev/null 2>"$W/dbclient.$k.err") && [ "$out" = "$k" ] &&
		pass "dbclient: user key $k ($(dropbearkey -y -f "$W/$k" | grep -Eo '^(ssh-|ecdsa-)[^ ]*'))" ||
		fail "dbclient: user key $k: got '$out': $(tail -n 3 "$W/dbclient.$k.err")"
done
# Every cipher dbclient and we both speak; one we do not, refused (an exit
# status that is not 0, so a script sees it).
OURS="chacha20-poly1305@openssh.com aes256-gcm@openssh.com aes128-gcm@openssh.com"
# (`-c help` exits 1.)
THEIRS=$({ dbclient -c help 2>&1 || true; } | sed -n 's/.*Available ciphers: *//p' | tr ',' ' ')
shared=0 other=''
for c in $THEIRS; do
	case " $OURS " in
	*" $c "*)
		shared=$((shared + 1))
		out=$(dbc_ed -c "$c" "echo $c" </dev/null 2>"$W/dbclient.cipher.err") && [ "$out" = "$c" ] &&
			pass "dbclient: cipher $c" || fail "dbclient: cipher $c: got '$out': $(tail -n 3 "$W/dbclient.cipher.err")"
		;;
	*) other=$c ;;
	esac
done
[ "$shared" -gt 0 ] && pass "dbclient shares $shared cipher(s) with us (it has: $THEIRS)" ||
	fail "dbclient shares no cipher with us (it has: $THEIRS)"
if [ -n "$other" ]; then
	rc=0
	dbc_ed -c "$other" "echo no" </dev/null >/dev/null 2>"$W/dbclient.nocipher.err" || rc=$?
	[ "$rc" != 0 ] && grep -q "No matching algo" "$W/dbclient.nocipher.err" &&
		pass "dbclient: cipher $other refused (exit $rc)" ||
		fail "dbclient: cipher $other: exit $rc: $(tail -n 3 "$W/dbclient.nocipher.err")"
fi

# --- PuTTY's plink -----------------------------------------------------------
# plnk KEY HOSTKEY [--pty] CMD
plnk() {
	local key=$1 hk=$2 pty=()
	shift 2
	[ "$1" = --pty ] && { pty=(-t); shift; }
	HOME=$H timeout -k 5 "$TMO" plink -batch -ssh -noagent "${pty[@]}" -P "$CPORT" -i "$W/$key.ppk" \
		-hostkey "$hk" -l "$ME" 127.0.0.1 "$1"
}
plnk_ed() { plnk client_ed25519 "$HOST_FP" "$@"; }
ok_cases plink plnk_ed
for t in rsa ecdsa; do
	out=$(plnk "client_$t" "$HOST_FP" "echo $t" </dev/null 2>"$W/plink.$t.err") && [ "$out" = "$t" ] &&
		pass "plink: user key $t" || fail "plink: user key $t: got '$out': $(tail -n 3 "$W/plink.$t.err")"
done
# A host key that is not the server's: batch mode refuses it.
ssh-keygen -q -t ed25519 -N '' -f "$W/other_host" </dev/null
rc=0
plnk client_ed25519 "$(ssh-keygen -lf "$W/other_host" | awk '{print $2}')" "echo no" \
	</dev/null >"$W/plink.wronghk.out" 2>"$W/plink.wronghk.err" || rc=$?
[ "$rc" != 0 ] && [ ! -s "$W/plink.wronghk.out" ] && pass "plink: another host key refused (exit $rc)" ||
	fail "plink: wrong host key: exit $rc, out '$(cat "$W/plink.wronghk.out")'"

# --- libssh and libssh2 ------------------------------------------------------
lib_run() {
	local lib=$1
	shift
	timeout -k 5 "$TMO" "$VENV/bin/python" "$PY_DIR/libssh_exec.py" "$lib" 127.0.0.1 "$CPORT" "$ME" \
		"$W/client_ed25519" "$@"
}
run_libssh() { lib_run libssh "$@"; }
run_libssh2() { lib_run libssh2 "$@"; }
ok_cases libssh run_libssh
ok_cases libssh2 run_libssh2

# --- our client against Dropbear's server ------------------------------------
if [ "${CPU_RS_RUNTIME:-std}" = smol ]; then
	OUR_SSH=$(abs_bin "${OUR_SSH:-target/release/examples/ssh_client_smol}")
else
	OUR_SSH=$(abs_bin "${OUR_SSH:-target/release/examples/ssh_client}")
fi
if [ "$(id -u)" != 0 ]; then
	skip "our client against dropbear: needs root (a private mount namespace for its authorized_keys)"
elif ! bin_ok "$OUR_SSH"; then
	fail "no $OUR_SSH (cargo build --release -p runtime-std -p runtime-smol --examples)"
else
	DBH=$W/dbhome
	mkdir -p "$DBH/.ssh"
	chmod 700 "$DBH" "$DBH/.ssh"
	cp "$W/client_ed25519.pub" "$DBH/.ssh/authorized_keys"
	chmod 600 "$DBH/.ssh/authorized_keys"
	dropbearkey -t ed25519 -f "$W/dropbear_host" >/dev/null 2>&1
	REAL_HOME=$(getent passwd "$ME" | cut -d: -f6)
	DPID='' DPORT=''
	for try in 1 2 3; do
		port=$(free_port) || break
		unshare --mount --propagation private sh -c 'mount --bind "$1" "$2" && shift 2 && exec "$@"' sh \
			"$DBH" "$REAL_HOME" dropbear -F -E -s -p "127.0.0.1:$port" -r "$W/dropbear_host" -P "$W/dropbear.pid" \
			</dev/null >"$W/dropbear.log" 2>&1 &
		DPID=$!
		track "$DPID"
		n=0
		until port_busy "$port" || ! alive "$DPID" || [ $n -ge 100 ]; do sleep 0.1; n=$((n + 1)); done
		if alive "$DPID" && port_busy "$port"; then DPORT=$port; break; fi
		stop_pid "$DPID"
	done
	if [ -z "$DPORT" ]; then
		fail "dropbear did not start: $(tail -n 5 "$W/dropbear.log")"
	else
		say "dropbear pid $DPID on 127.0.0.1:$DPORT"
		ours() {
			[ "$1" = --pty ] && { echo "(no pty in the example client)"; return 1; }
			timeout -k 5 "$TMO" "$OUR_SSH" -p "$DPORT" -i "$W/client_ed25519" -l "$ME" 127.0.0.1 "$1"
		}
		out=$(ours "echo hello world" </dev/null 2>"$W/ours.echo.err") && [ "$out" = "hello world" ] &&
			pass "${OUR_SSH##*/} -> dropbear: echo" || fail "${OUR_SSH##*/} -> dropbear: echo: got '$out': $(tail -n 3 "$W/ours.echo.err")"
		rc=0
		ours "sh -c 'exit 7'" </dev/null >/dev/null 2>"$W/ours.exit.err" || rc=$?
		[ "$rc" = 7 ] && pass "${OUR_SSH##*/} -> dropbear: exit 7" || fail "${OUR_SSH##*/} -> dropbear: exit 7: got $rc"
		out=$(ours sha256sum <"$MIB20" 2>"$W/ours.stdin.err" | cut -d' ' -f1) || true
		[ "$out" = "$WANT20" ] && pass "${OUR_SSH##*/} -> dropbear: 20 MiB of stdin" ||
			fail "${OUR_SSH##*/} -> dropbear: 20 MiB of stdin: got '$out': $(tail -n 3 "$W/ours.stdin.err")"
		grep -q "Pubkey auth succeeded for '$ME' with ssh-ed25519" "$W/dropbear.log" &&
			pass "dropbear logged our client's key login" || fail "dropbear log: $(tail -n 5 "$W/dropbear.log")"
	fi
fi

echo "ssh-clients: $PASSES passed, $FAILS failed, $SKIPS skipped"
[ "$FAILS" = 0 ]
