#!/usr/bin/env bash
# tests/scripts/dnssd.sh: decpu finds decpud with DNS-SD (mDNS) across two
# network namespaces joined by a veth pair, both made and removed here
# (10.231.0.1/24 and 10.231.0.2/24 exist only inside them; the host's own
# interfaces never see a packet). Three decpuds, each in its own UTS
# namespace with a distinct hostname, so that `hostname` run through decpu
# names the node that was chosen:
#
#   nodea (netns A)  near=gpu cores=2  mem.avail=1000 cpu.pcnt=1
#   nodeb (netns A)           cores=8  mem.avail=3000 cpu.pcnt=2
#   nodec (netns B)  arch=riscv64 cores=16 mem.avail=5000 (-dsInterface)
#
# Cases: arch=* (only it reaches nodec), cores>N and cores<N, a user tag,
# sorts by mem.avail both ways, the default least-loaded choice before,
# during and after a session held open on nodea, an independent browser
# (avahi-browse, with avahi-daemon and its own D-Bus in netns B) seeing the
# TXT record, five rounds of a session then at once a browse (the TXT
# re-announced each time must never be missing), and a node stopped with
# SIGTERM whose record is withdrawn.
#
# DECPU, DECPUD: the binaries (default target/release/{decpu,decpud}).
# Needs root (netns). SKIP (exit 0) when network namespaces cannot be made.
set -euo pipefail
# shellcheck source=ssh/lib.sh
. "$(dirname "$0")/ssh/lib.sh"

DECPU=$(abs_bin "${DECPU:-target/release/decpu}")
DECPUD=$(abs_bin "${DECPUD:-target/release/decpud}")
for b in "$DECPU" "$DECPUD"; do
	bin_ok "$b" || { echo "SKIP: no $b"; exit 0; }
done

# Names unique to this run, so that a parallel or crashed run never
# collides with us (veth names: at most 15 characters).
NSA=cpurs-ds$$-a NSB=cpurs-ds$$-b VA=dsa$$ VB=dsb$$
NETNS_MADE=()
drop_netns() {
	local n
	for n in "${NETNS_MADE[@]}"; do ip netns del "$n" 2>/dev/null; done
	ip link del "$VA" 2>/dev/null || true
}
ssh_init dnssd
CLEANUP_HOOKS+=(drop_netns)
if ! ip netns add "$NSA" 2>/dev/null; then
	echo "SKIP: cannot create a network namespace"
	exit 0
fi
NETNS_MADE+=("$NSA")
ip netns add "$NSB"
NETNS_MADE+=("$NSB")
ip link add "$VA" type veth peer name "$VB"
ip link set "$VA" netns "$NSA"
ip link set "$VB" netns "$NSB"
ip -n "$NSA" addr add 10.231.0.1/24 dev "$VA"
ip -n "$NSB" addr add 10.231.0.2/24 dev "$VB"
for nv in "$NSA:$VA" "$NSB:$VB"; do
	ns=${nv%%:*} dev=${nv#*:}
	ip -n "$ns" link set lo up
	ip -n "$ns" link set dev "$dev" multicast on
	ip -n "$ns" link set "$dev" up
done
say "netns $NSA ($VA 10.231.0.1) <-> $NSB ($VB 10.231.0.2)"

# start_node NAME NETNS PORT DECPUD_ARGS...: decpud in NETNS, in private
# mount and UTS namespaces with hostname NAME. Sets NODE_PID.
declare -A NODE_PID_OF
start_node() {
	local name=$1 ns=$2 port=$3 pid
	shift 3
	# ip netns exec, unshare and sh all exec: $! is decpud's pid.
	ip netns exec "$ns" unshare --mount --propagation private --uts \
		sh -c 'hostname "$0"; exec "$@"' "$name" \
		"$DECPUD" -d -sp "$port" -pk "$W/authorized_keys" -hk "$W/host_ed25519" "$@" \
		>"$W/$name.out" 2>"$W/$name.err" </dev/null &
	pid=$!
	track "$pid"
	NODE_PID_OF[$name]=$pid
	wait_line "$W/$name.err" 'advertising .* on port' "$pid" 20 >/dev/null || {
		cat "$W/$name.err" >&2
		return 1
	}
	say "$name: decpud pid $pid in $ns, port $port"
}

start_node nodea "$NSA" 17011 -dsTxt near=gpu,cores=2,mem.avail=1000,cpu.pcnt=1 || exit 1
start_node nodeb "$NSA" 17012 -dsTxt cores=8,mem.avail=3000,cpu.pcnt=2 || exit 1
start_node nodec "$NSB" 17013 -dsInterface "$VB" -dsTxt arch=riscv64,cores=16,mem.avail=5000 || exit 1

FAKEHOME=$W/home
mkdir -p "$FAKEHOME"
# decpu from netns B: nodea and nodeb across the veth, nodec beside it.
decpu() {
	HOME=$FAKEHOME timeout -k 5 60 ip netns exec "$NSB" \
		"$DECPU" -key "$W/client_ed25519" -hostkeycheck=false -9p=false -dsTimeout 2s "$@"
}

# picks NAME URI: decpu with URI runs `hostname` on NAME.
picks() {
	local want=$1 uri=$2 out rc=0
	out=$(decpu -d "$uri" hostname 2>"$W/decpu.err") || rc=$?
	# Known flake (see the stop note): mdns-sd sometimes resolves a record
	# with no dialable address within the browse. Only that is retried,
	# once, and said; a wrong choice is never retried.
	if [ "$out" != "$want" ] && grep -q "dropped $want-cpud.*no address to dial" "$W/decpu.err"; then
		say "retrying '$uri': $want resolved without an address"
		rc=0
		out=$(decpu -d "$uri" hostname 2>"$W/decpu.err") || rc=$?
	fi
	if [ "$rc" = 0 ] && [ "$out" = "$want" ]; then
		pass "decpu '$uri' picks $want"
	else
		fail "decpu '$uri': wanted $want, got '$out' (rc $rc): $(grep -E 'decpu: (kept|dropped|dnssd)' "$W/decpu.err" | tr '\n' '|')"
	fi
}

# txt_has NAME ERE SECS: poll until a browse shows NAME's record matching
# ERE (the TXT as decpu -d prints it), at most SECS seconds.
txt_has() {
	local name=$1 re=$2 end=$((SECONDS + $3)) log
	while [ $SECONDS -lt $end ]; do
		# No node has that key: decpu only browses (and exits 254).
		log=$(decpu -d 'dnssd:?arch=*&no.such.key=x' true 2>&1 || true)
		grep "resolved $name-cpud\." <<<"$log" | tail -n 1 | grep -Eq "$re" && return 0
	done
	return 1
}

picks nodec 'dnssd:?arch=*&sort=>cores'
picks nodeb 'dnssd:?sort=>cores'
picks nodeb 'dnssd:?cores=>5'
picks nodea 'dnssd:?arch=*&cores=<3'
picks nodea 'dnssd:?near=gpu'
picks nodeb 'dnssd://?near=!gpu&sort=>cores'
picks nodeb 'dnssd:?sort=>mem.avail'
picks nodea 'dnssd:?sort=mem.avail'
picks nodeb 'dnssd://nodeb-cpud._ncpu._tcp.local'
picks nodea .
picks nodea ''

rc=0
decpu 'dnssd:?near=fpga' true 2>"$W/none.err" || rc=$?
[ "$rc" = 254 ] && grep -q 'no suitable service' "$W/none.err" &&
	pass "no match: 254, no suitable service" || fail "no match: rc $rc: $(cat "$W/none.err")"

decpu -d 'dnssd:?cores=>5' true 2>"$W/why.err" || true
grep -q 'dropped nodea-cpud.*cores="2", wanted >=5' "$W/why.err" &&
	grep -q 'dropped nodec-cpud.*arch="riscv64"' "$W/why.err" &&
	grep -q 'kept nodeb-cpud.*(chosen)' "$W/why.err" &&
	pass "-d: each candidate, kept or dropped and why" || fail "-d: $(grep -E 'kept|dropped' "$W/why.err" | tr '\n' '|')"

# The default choice follows the tenants: hold a session open on nodea.
# Not through the decpu function: $! must be decpu itself (ip netns exec
# execs it), so that stopping it ends the session.
HOME=$FAKEHOME ip netns exec "$NSB" "$DECPU" -key "$W/client_ed25519" -hostkeycheck=false -9p=false \
	'dnssd:?near=gpu' sleep 1031 >"$W/hold.out" 2>"$W/hold.err" </dev/null &
HOLD=$!
track "$HOLD"
if txt_has nodea '"tenants": "1"' 30; then
	pass "nodea's TXT says tenants=1 while a session runs"
	picks nodeb .
else
	fail "nodea's tenants never became 1: $(cat "$W/hold.err")"
fi
stop_pid "$HOLD"
if txt_has nodea '"tenants": "0"' 30; then
	pass "tenants back to 0 when the session ends"
	picks nodea .
else
	fail "nodea's tenants never went back to 0"
fi

# Back to back: a session on nodea, then at once a browse with decpu's
# default -dsTimeout (1s). The session's start and end re-announce
# nodea's TXT, after which its answers leave out records for a second or
# two (RFC 6762's once a second): each round must still find nodea, with
# its full TXT, and run on it.
b2b_ok=0
for i in 1 2 3 4 5; do
	HOME=$FAKEHOME timeout -k 5 60 ip netns exec "$NSB" "$DECPU" -d -key "$W/client_ed25519" -hostkeycheck=false \
		-9p=false 'dnssd:?near=gpu' true >/dev/null 2>"$W/b2b-session.err" </dev/null ||
		{ fail "back to back, round $i: the session failed: $(grep -E 'decpu: (resolved|removed|kept|dropped|browsing|dnssd)' "$W/b2b-session.err" | tr '\n' '|')"; continue; }
	rc=0
	out=$(HOME=$FAKEHOME timeout -k 5 60 ip netns exec "$NSB" "$DECPU" -d -key "$W/client_ed25519" \
		-hostkeycheck=false -9p=false 'dnssd:?near=gpu' hostname 2>"$W/b2b.err" </dev/null) || rc=$?
	last=$(grep 'resolved nodea-cpud\.' "$W/b2b.err" | tail -n 1 || true)
	if [ "$rc" = 0 ] && [ "$out" = nodea ] && grep -q '"near": "gpu"' <<<"$last" &&
		grep -q '"tenants": "[0-9]' <<<"$last" && grep -q '"arch": ' <<<"$last"; then
		b2b_ok=$((b2b_ok + 1))
	else
		fail "back to back, round $i: rc $rc, got '$out': $(grep -E 'decpu: (resolved|removed|kept|dropped|browsing|dnssd)' "$W/b2b.err" | tr '\n' '|')"
	fi
done
[ "$b2b_ok" = 5 ] && pass "5 rounds of a session then at once decpu: nodea found with its full TXT each time"

# An independent browser: avahi-daemon with its own D-Bus in netns B (a
# private /run in a mount namespace of its own; never in the root netns).
avahi_pid=''
if command -v avahi-daemon >/dev/null && command -v avahi-browse >/dev/null &&
	command -v dbus-daemon >/dev/null; then
	cat >"$W/side.sh" <<'EOF'
set -e
W=$1 IF=$2
mount -t tmpfs tmpfs /run
mkdir -p /run/dbus /run/avahi-daemon
dbus-daemon --system --fork --print-pid >"$W/dbus.pid"
printf '[server]\nhost-name=cpursavahi\nuse-ipv4=yes\nuse-ipv6=yes\nallow-interfaces=%s\nenable-dbus=yes\n[wide-area]\nenable-wide-area=no\n[publish]\npublish-hinfo=no\npublish-workstation=no\npublish-addresses=no\n' "$IF" >/run/avahi-test.conf
avahi-daemon -f /run/avahi-test.conf -D --no-drop-root --no-chroot
for i in $(seq 1 100); do [ -s /run/avahi-daemon/pid ] && break; sleep 0.1; done
cat /run/avahi-daemon/pid >"$W/avahi.pid"
EOF
	if ip netns exec "$NSB" unshare --mount --propagation private sh "$W/side.sh" "$W" "$VB" 2>"$W/avahi.err"; then
		avahi_pid=$(cat "$W/avahi.pid")
		track "$(cat "$W/dbus.pid")"
		track "$avahi_pid"
	fi
fi
avahi_browse() { timeout 20 nsenter -t "$avahi_pid" -m -n avahi-browse -rpt _ncpu._tcp 2>/dev/null || true; }
# avahi_sees NAME ERE SECS: poll until avahi-browse's resolved line of
# NAME matches (or, with ERE "!", until NAME is gone).
avahi_sees() {
	local name=$1 re=$2 end=$((SECONDS + $3)) lines
	while [ $SECONDS -lt $end ]; do
		lines=$(avahi_browse | grep "^=;$VB;IPv4;$name-cpud;" || true)
		if [ "$re" = '!' ]; then
			[ -z "$lines" ] && return 0
		else
			grep -Eq "$re" <<<"$lines" && return 0
		fi
		sleep 0.5
	done
	return 1
}
if [ -n "$avahi_pid" ]; then
	if avahi_sees nodea ';10\.231\.0\.1;17011;.*"near=gpu"' 20 &&
		avahi_sees nodea '"arch=amd64"' 1 && avahi_sees nodea '"os=linux"' 1 &&
		avahi_sees nodea '"tenants=0"' 1 && avahi_sees nodea '"cores=2"' 1 &&
		avahi_sees nodea '"mem\.total=[0-9]+"' 1 && avahi_sees nodea '"cpu\.pcnt=1"' 1; then
		pass "avahi-browse sees nodea-cpud._ncpu._tcp with its TXT record"
	else
		fail "avahi-browse: $(avahi_browse | tr '\n' '|')"
	fi
	avahi_sees nodec ';10\.231\.0\.2;17013;.*"arch=riscv64"' 20 &&
		pass "avahi-browse sees nodec beside it (-dsInterface)" || fail "avahi-browse nodec: $(avahi_browse | tr '\n' '|')"
	# The other way: a record from an independent publisher (avahi, as
	# the reference's decpud would send it) is found and used by decpu.
	# It names nodec's address and port, with a TXT of its own.
	nsenter -t "$avahi_pid" -m -n avahi-publish -a -R refhost.local 10.231.0.2 >/dev/null 2>&1 &
	PUB1=$!
	track $PUB1
	nsenter -t "$avahi_pid" -m -n avahi-publish -s -H refhost.local refnode _ncpu._tcp 17013 \
		arch=amd64 os=linux cores=64 tenants=0 cpu.pcnt=0.000000 mem.avail=1 mem.total=2 >/dev/null 2>&1 &
	PUB2=$!
	track $PUB2
	end=$((SECONDS + 20))
	until decpu -d 'dnssd:?cores=>60' true 2>&1 | grep -q 'kept refnode\.' || [ $SECONDS -ge $end ]; do sleep 0.5; done
	picks nodec 'dnssd:?cores=>60'
	grep -q 'kept refnode\..*(chosen)' "$W/decpu.err" && pass "decpu chose the record avahi published (refnode)" ||
		fail "refnode: $(grep -E 'kept|dropped|resolved' "$W/decpu.err" | tr '\n' '|')"
	# Withdrawn again (avahi says goodbye), so that it does not count below.
	stop_pid "$PUB2"
	stop_pid "$PUB1"
	end=$((SECONDS + 20))
	while decpu -d 'dnssd:?cores=>60' true 2>&1 | grep -q 'refnode\.' && [ $SECONDS -lt $end ]; do sleep 0.5; done
else
	skip "no avahi-daemon/avahi-browse/dbus-daemon in netns B: $(cat "$W/avahi.err" 2>/dev/null)"
fi

# A node that goes away: its record is withdrawn (goodbye packets), so a
# cache that held it drops it, and decpu no longer chooses it.
stop_pid "${NODE_PID_OF[nodea]}"
grep -q 'withdrew nodea-cpud' "$W/nodea.err" && pass "nodea withdrew its record on SIGTERM" ||
	fail "nodea on SIGTERM: $(tail -n 3 "$W/nodea.err" | tr '\n' '|')"
if [ -n "$avahi_pid" ]; then
	avahi_sees nodea '!' 10 && pass "avahi's cache drops nodea after the withdrawal" ||
		fail "avahi still lists nodea: $(avahi_browse | tr '\n' '|')"
fi
picks nodeb .
decpu -d . true 2>"$W/gone.err" || true
grep -q 'nodea-cpud' "$W/gone.err" && fail "nodea still seen: $(grep nodea "$W/gone.err")" ||
	pass "nodea is no longer among the candidates"

echo "dnssd: $PASSES passed, $FAILS failed"
[ "$FAILS" = 0 ]
