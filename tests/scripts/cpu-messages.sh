#!/usr/bin/env bash
# tests/scripts/cpu-messages.sh: what cpu and cpud say when something is
# wrong, each in one line with its exit code, against our cpud, the
# machine's OpenSSH sshd and Dropbear's server, all on 127.0.0.1:
#   - a public key as cpu's -key and as cpud's -hk; an old PEM key
#   - a key type this build does not offer (ECDSA P-384)
#   - a private key file others may read: refused as -key, left out with
#     a line as a default key (as ssh), used once it is 0600
#   - a server that is not cpud (sshd, dropbear): refused before any key
#     is offered (sshd's log shows none); -ssh logs in to sshd
#   - a command longer than one SSH request carries: said before connecting
#   - the server's disconnect reason: sshd's "Too many authentication
#     failures" at login, and a DISCONNECT in answer to exec (paramiko
#     from the venv, which sends one there)
#   - cpu -d: the keys offered, in order (key files, and an ssh-agent's by
#     their comment), and the one accepted
#
# CPU, CPUD: the binaries (default target/release/{cpu,cpud}).
set -euo pipefail
# shellcheck source=ssh/lib.sh
. "$(dirname "$0")/ssh/lib.sh"

cpu_bins
ssh_init cpu-messages
unset SSH_AUTH_SOCK SSH_ASKPASS SSH_ASKPASS_REQUIRE

start_cpud cpud -hk "$W/host_ed25519" || exit 1

H=$W/home
mkdir -p "$H/.ssh"
chmod 700 "$H/.ssh"
cpu() { HOME=$H timeout -k 5 60 "$CPU" -9p=false -hostkeycheck=false "$@"; }
# runs NAME RC LINE CMD...: CMD exits RC and says exactly LINE on stderr
# (after cpud's UTC timestamp, when there is one).
runs() {
	local name=$1 want_rc=$2 want=$3 rc=0
	shift 3
	"$@" >"$W/out" 2>"$W/err" </dev/null || rc=$?
	if [ "$rc" = "$want_rc" ] &&
		[ "$(sed -E 's/^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:.]+Z //' "$W/err")" = "$want" ]; then
		pass "$name ($rc)"
	else
		fail "$name: got $rc: $(cat "$W/err")"
	fi
}

# --- keys ----------------------------------------------------------------------
K=$W/client_ed25519
runs "-key with a public key" 2 "cpu: key $K.pub: this is a public key; give the private key ($K)" \
	cpu -key "$K.pub" -sp "$CPORT" 127.0.0.1 true

cp "$W/host_ed25519.pub" "$W/lonely.pub"
runs "cpud -hk with a public key, at start" 1 \
	"cpud: host key $W/host_ed25519.pub: this is a public key; give the private key ($W/host_ed25519)" \
	timeout 10 "$CPUD" -sp 0 -addr 127.0.0.1 -pk "$W/authorized_keys" -hk "$W/host_ed25519.pub"
runs "cpud -hk with a public key alone" 1 \
	"cpud: host key $W/lonely.pub: this is a public key; give the private key file" \
	timeout 10 "$CPUD" -sp 0 -addr 127.0.0.1 -pk "$W/authorized_keys" -hk "$W/lonely.pub"

ssh-keygen -q -t ecdsa -b 256 -m PEM -N '' -f "$W/pem_ecdsa" </dev/null
runs "-key with an old PEM key" 2 \
	"cpu: key $W/pem_ecdsa: a private key in the old PEM format; convert it to OpenSSH's with \`ssh-keygen -p -f $W/pem_ecdsa\`" \
	cpu -key "$W/pem_ecdsa" -sp "$CPORT" 127.0.0.1 true

ssh-keygen -q -t ecdsa -b 384 -N '' -C cpu-rs-test-p384 -f "$W/p384" </dev/null
want_p384="key $W/p384: ECDSA P-384 (ecdsa-sha2-nistp384) keys are not supported by this build; use an Ed25519, RSA or ECDSA P-256 key"
runs "-key with an ECDSA P-384 key" 2 "cpu: $want_p384" cpu -key "$W/p384" -sp "$CPORT" 127.0.0.1 true

cp "$K" "$W/open_key"
chmod 644 "$W/open_key"
runs "-key readable by others" 2 \
	"cpu: key $W/open_key: permissions 0644 are too open (others can read it), so it is ignored, as ssh does; chmod 600 $W/open_key" \
	cpu -key "$W/open_key" -sp "$CPORT" 127.0.0.1 true

# Default keys: an open id_ed25519 is left out with a line; with nothing
# else, there is no key. Once 0600 it is used, quietly.
cp "$K" "$H/.ssh/id_ed25519"
chmod 640 "$H/.ssh/id_ed25519"
runs "a default key readable by others is left out" 2 \
	"cpu: key $H/.ssh/id_ed25519: permissions 0640 are too open (others can read it), so it is ignored, as ssh does; chmod 600 $H/.ssh/id_ed25519
cpu: no key: give -key FILE, create ~/.ssh/id_ed25519, or start ssh-agent" \
	cpu -sp "$CPORT" 127.0.0.1 true
cp "$W/p384" "$H/.ssh/id_ecdsa"
chmod 600 "$H/.ssh/id_ed25519" "$H/.ssh/id_ecdsa"
out=$(cpu -sp "$CPORT" 127.0.0.1 echo in 2>"$W/err") || true
[ "$out" = in ] && [ "$(cat "$W/err")" = "cpu: ${want_p384/$W\/p384/$H/.ssh/id_ecdsa}" ] &&
	pass "a default key of a type not offered is left out with a line; the next one logs in" ||
	fail "default keys: got '$out': $(cat "$W/err")"
rm "$H/.ssh/id_ed25519" "$H/.ssh/id_ecdsa"

# --- cpu -d: the keys offered and the one accepted -----------------------------------
fp() { ssh-keygen -l -f "$1" | cut -d' ' -f2; }
cat >"$H/.ssh/config" <<CFG
Host board
	HostName 127.0.0.1
	Port $CPORT
	IdentityFile $W/wrong_ed25519
	IdentityFile $K
CFG
out=$(cpu -d board echo keyed 2>"$W/d.err") || true
got=$(grep -E '^cpu: (offering|the server accepts)' "$W/d.err" || true)
want="cpu: offering key file $W/wrong_ed25519 (ssh-ed25519 $(fp "$W/wrong_ed25519"))
cpu: offering key file $K (ssh-ed25519 $(fp "$K"))
cpu: the server accepts key file $K (ssh-ed25519 $(fp "$K")); signing with ssh-ed25519"
[ "$out" = keyed ] && [ "$got" = "$want" ] &&
	pass "cpu -d: each key offered, in order, and the one accepted" ||
	fail "cpu -d keys: got '$out': $got"
# And how the command ended, in words.
cpu -d board sh -c 'kill -TERM $$' 2>"$W/d2.err" || true
grep -qx "cpu: the command ended: exit status 0" "$W/d.err" &&
	grep -qx "cpu: the command ended: signal TERM" "$W/d2.err" &&
	pass "cpu -d: the command's end in words" ||
	fail "cpu -d end: $(grep ended "$W/d.err" "$W/d2.err")"
rm "$H/.ssh/config"
# Through an ssh-agent holding a P-384 key, then ours: the P-384 key is
# never offered (the agent's keys of types not offered are left out);
# ours is offered and accepted, named by the agent's comment.
ssh-agent -a "$W/agent.sock" -D >/dev/null 2>&1 </dev/null &
track $!
n=0
until [ -S "$W/agent.sock" ] || [ $n -ge 50 ]; do sleep 0.1; n=$((n + 1)); done
if SSH_AUTH_SOCK=$W/agent.sock timeout 10 ssh-add -q "$W/p384" "$K" </dev/null 2>"$W/add.err"; then
	out=$(SSH_AUTH_SOCK=$W/agent.sock cpu -d -sp "$CPORT" 127.0.0.1 echo agent 2>"$W/agent.err") || true
	got=$(grep -E '^cpu: (agent key|offering|the server accepts)' "$W/agent.err" || true)
	want="cpu: offering agent key cpu-rs-test-client (ssh-ed25519 $(fp "$K"))
cpu: the server accepts agent key cpu-rs-test-client (ssh-ed25519 $(fp "$K")); signing with ssh-ed25519"
	[ "$out" = agent ] && [ "$got" = "$want" ] &&
		pass "cpu -d: agent keys by their comment; one of a type not offered is never offered" ||
		fail "cpu -d, agent: got '$out': $got"
else
	fail "ssh-add: $(cat "$W/add.err")"
fi

# --- a command too long for one SSH request ----------------------------------------
# 100,000 arguments: about 790 kB once quoted.
# shellcheck disable=SC2046 # one argument per number
runs "a 100,000-argument command" 2 \
	"cpu: the command is 788915 bytes once quoted, more than one SSH request carries (262016); pass long lists on stdin or in a file" \
	cpu -key "$K" -sp "$CPORT" 127.0.0.1 echo $(seq 1 100000)

# --- servers that are not cpud -------------------------------------------------------
# software PORT: the software version of the server's identification line.
software() {
	timeout 10 bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$1"; head -n 1 <&3' _ "$1" |
		tr -d '\r' | sed -n 's/^SSH-2\.0-\([^ ]*\).*/\1/p'
}
if start_openssh_sshd osshd "MaxAuthTries 1"; then
	rc=0
	cpu -key "$K" -sp "$SPORT" 127.0.0.1 true 2>"$W/err.sshd" || rc=$?
	[ "$rc" = 255 ] && grep -qx "cpu: 127.0.0.1:$SPORT is not running cpud but OpenSSH_[^ ]* (use -ssh for plain ssh)" "$W/err.sshd" &&
		[ "$(wc -l <"$W/err.sshd")" = 1 ] &&
		pass "OpenSSH's sshd: not cpud, in one line (255)" || fail "sshd: got $rc: $(cat "$W/err.sshd")"
	# The server saw the connection end before any login attempt.
	if wait_line "$W/osshd.log" "Disconnected from 127\.0\.0\.1 .*preauth|Connection closed by 127\.0\.0\.1" "$SPID" 10 >/dev/null &&
		! grep -qE 'publickey|Accepted|Failed' "$W/osshd.log"; then
		pass "no key was offered to sshd"
	else
		fail "sshd's log: $(tr '\n' '|' <"$W/osshd.log")"
	fi
	ver=$(software "$SPORT")
	[[ $ver == OpenSSH_* ]] && grep -q "is not running cpud but $ver " "$W/err.sshd" &&
		pass "the message names sshd's software ($ver)" || fail "sshd's software: '$ver': $(cat "$W/err.sshd")"
	out=$(cpu -ssh -key "$K" -sp "$SPORT" 127.0.0.1 echo plain 2>"$W/err") && [ "$out" = plain ] &&
		pass "-ssh logs in to sshd and runs the command" || fail "-ssh to sshd: got '$out': $(cat "$W/err")"
	# Two keys against MaxAuthTries 1: sshd disconnects after the first,
	# and its reason is cpu's one line.
	cat >"$H/.ssh/config" <<CFG
Host osshd
	HostName 127.0.0.1
	Port $SPORT
	IdentityFile $W/wrong_ed25519
	IdentityFile $K
CFG
	runs "sshd's disconnect reason at login" 255 \
		"cpu: login failed: the server disconnected: Too many authentication failures" \
		cpu -ssh osshd true
	rm "$H/.ssh/config"
else
	fail "OpenSSH's sshd did not start"
fi

if [ -x /usr/sbin/dropbear ] && command -v dropbearkey >/dev/null; then
	dropbearkey -t ed25519 -f "$W/dropbear_host" >/dev/null 2>&1
	DPORT='' DPID=''
	for try in 1 2 3; do
		port=$(free_port)
		/usr/sbin/dropbear -F -E -s -p "127.0.0.1:$port" -r "$W/dropbear_host" </dev/null >"$W/dropbear.log" 2>&1 &
		DPID=$!
		if wait_line "$W/dropbear.log" 'Not backgrounding' "$DPID" 10 >/dev/null &&
			n=0 && until port_busy "$port" || [ $n -ge 50 ]; do sleep 0.1; n=$((n + 1)); done && port_busy "$port"; then
			track "$DPID"
			DPORT=$port
			break
		fi
		stop_pid "$DPID"
	done
	if [ -n "$DPORT" ]; then
		dver=$(software "$DPORT")
		[[ $dver == dropbear* ]] || fail "dropbear's identification: '$dver'"
		runs "Dropbear: not cpud" 255 "cpu: 127.0.0.1:$DPORT is not running cpud but $dver (use -ssh for plain ssh)" \
			cpu -key "$K" -sp "$DPORT" 127.0.0.1 true
	else
		fail "dropbear did not start: $(cat "$W/dropbear.log")"
	fi
else
	skip "no dropbear (apt-get install dropbear-bin)"
fi

# --- a DISCONNECT in answer to exec ----------------------------------------------
if [ -x "$VENV/bin/python" ] && "$VENV/bin/python" -c 'import paramiko' 2>/dev/null; then
	cat >"$W/bye.py" <<'PY'
# A server that logs anyone in and answers exec with a DISCONNECT.
import socket, sys, threading
import paramiko
from paramiko.common import cMSG_DISCONNECT
from paramiko.message import Message

key = paramiko.Ed25519Key(filename=sys.argv[1])

class Server(paramiko.ServerInterface):
    def get_allowed_auths(self, username):
        return "publickey"
    def check_auth_publickey(self, username, key):
        return paramiko.AUTH_SUCCESSFUL
    def check_channel_request(self, kind, chanid):
        return paramiko.OPEN_SUCCEEDED
    def check_channel_env_request(self, channel, name, value):
        return True
    def check_channel_exec_request(self, channel, command):
        m = Message()
        m.add_byte(cMSG_DISCONNECT)
        m.add_int(11)
        m.add_string("the board is rebooting\x1b[2J")
        m.add_string("")
        channel.get_transport()._send_user_message(m)
        return False

s = socket.socket()
s.bind(("127.0.0.1", 0))
s.listen(4)
print("port", s.getsockname()[1], flush=True)
while True:
    c, _ = s.accept()
    t = paramiko.Transport(c)
    t.add_server_key(key)
    t.start_server(server=Server())
PY
	timeout 60 "$VENV/bin/python" "$W/bye.py" "$W/host_ed25519" >"$W/bye.out" 2>&1 </dev/null &
	BYE=$!
	track "$BYE"
	if BPORT=$(wait_line "$W/bye.out" '^port [0-9]+' "$BYE" 20 | cut -d' ' -f2) && [ -n "$BPORT" ]; then
		runs "a DISCONNECT in answer to exec (terminal controls dropped)" 255 \
			"cpu: exec request: the server disconnected: the board is rebooting [2J" \
			cpu -key "$K" -sp "$BPORT" 127.0.0.1 true
	else
		fail "the paramiko server did not start: $(cat "$W/bye.out")"
	fi
else
	skip "no paramiko in $VENV"
fi

echo "cpu-messages: $PASSES passed, $FAILS failed"
[ "$FAILS" = 0 ]
