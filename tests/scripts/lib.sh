# tests/scripts/lib.sh: shared helpers for the 9P integration suites (bash,
# sourced). Servers are named by kind: "ours" (target/release/cpu9p) or
# "diod" (the reference implementation). Everything binds 127.0.0.1 only.
#
# Environment:
#   CPU9P        path of our server binary
#                (default ${CARGO_TARGET_DIR:-REPO/target}/release/cpu9p)
#   VM_DIR       the VM harness (default ../shared/vm beside the checkout)
#   TOOLS_BIN    where pjdfstest and fsx are installed
#                (default ~/.cache/cpu-rs/cargo/bin)
#   KEEP=1       keep the work folders (always kept on failure)

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
VM_DIR=${VM_DIR:-$(cd "$REPO/../shared/vm" 2>/dev/null && pwd || echo /work/shared/vm)}
TOOLS_BIN=${TOOLS_BIN:-${XDG_CACHE_HOME:-$HOME/.cache}/cpu-rs/cargo/bin}
CPU9P=${CPU9P:-${CARGO_TARGET_DIR:-$REPO/target}/release/cpu9p}
export VM_OUT=${VM_OUT:-${XDG_CACHE_HOME:-$HOME/.cache}/vm-harness}

now() { date +%s.%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", b - a }'; }
say() { printf '%s: %s\n' "${0##*/}" "$*" >&2; }
port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
alive() { [ -n "$1" ] && [ -e "/proc/$1" ] && [ "$(cut -d' ' -f3 "/proc/$1/stat" 2>/dev/null)" != Z ]; }

# Check counters: pass NAME / fail NAME [DETAIL]. FAILS counts failures.
FAILS=0 PASSES=0
pass() { PASSES=$((PASSES + 1)); echo "PASS $*"; }
fail() { FAILS=$((FAILS + 1)); echo "FAIL $*"; }
check() { # check NAME CMD...: pass if CMD succeeds
	local n=$1; shift
	if "$@"; then pass "$n"; else fail "$n"; fi
}
eq() { # eq NAME GOT WANT
	if [ "$2" = "$3" ]; then pass "$1"; else fail "$1: got '$2', want '$3'"; fi
}

# A free loopback port (best effort: the server start checks again).
free_port() {
	local p i
	for i in $(seq 1 100); do
		p=$((20000 + (RANDOM * 32768 + RANDOM) % 40000))
		port_busy "$p" || { echo "$p"; return 0; }
	done
	return 1
}

# start_server KIND EXPORT LOGFILE [EXTRA_ARGS...]
# Sets SERVER_PID, SERVER_PORT and SERVER_ANAME (the aname a client passes).
SERVER_PID='' SERVER_PORT='' SERVER_ANAME=''
start_server() {
	local kind=$1 dir=$2 logf=$3 i port
	shift 3
	SERVER_PID='' SERVER_PORT='' SERVER_ANAME=''
	case $kind in
	ours)
		[ -x "$CPU9P" ] || { say "no server binary $CPU9P (cargo build --release -p cpu-bins --bin cpu9p)"; return 1; }
		"$CPU9P" -addr 127.0.0.1:0 -root "$dir" "$@" > "$logf" 2>&1 < /dev/null &
		SERVER_PID=$!
		for i in $(seq 1 200); do  # up to 20 s
			port=$(sed -n 's/.*listening on [^ ]*:\([0-9][0-9]*\).*/\1/p' "$logf" | head -n 1)
			[ -n "$port" ] && break
			alive "$SERVER_PID" || break
			sleep 0.1
		done
		[ -n "$port" ] || { say "cpu9p did not print 'listening on' (log $logf):"; tail -n 20 "$logf" >&2; stop_server; return 1; }
		SERVER_PORT=$port SERVER_ANAME=/
		;;
	diod)
		command -v diod > /dev/null || { say "diod is not installed"; return 1; }
		local try
		for try in 1 2 3 4 5; do
			port=$(free_port) || return 1
			diod -f -n -S -U root -l "127.0.0.1:$port" -e "$dir" -L "$logf" "$@" < /dev/null > "$logf.out" 2>&1 &
			SERVER_PID=$!
			for i in $(seq 1 100); do  # up to 10 s
				port_busy "$port" && break
				alive "$SERVER_PID" || break
				sleep 0.1
			done
			if alive "$SERVER_PID" && port_busy "$port"; then
				SERVER_PORT=$port SERVER_ANAME=$dir
				break
			fi
			stop_server
		done
		[ -n "$SERVER_PORT" ] || { say "diod did not start (log $logf)"; return 1; }
		;;
	*) say "unknown server kind '$kind' (want ours or diod)"; return 1 ;;
	esac
	say "$kind server pid $SERVER_PID on 127.0.0.1:$SERVER_PORT aname '$SERVER_ANAME' export $dir"
}

# stop_server: SIGTERM, wait up to 10 s, then SIGKILL; always reaps.
stop_server() {
	local pid=$SERVER_PID i
	[ -n "$pid" ] || return 0
	kill -TERM "$pid" 2> /dev/null
	for i in $(seq 1 100); do
		alive "$pid" || break
		sleep 0.1
	done
	alive "$pid" && kill -KILL "$pid" 2> /dev/null
	wait "$pid" 2> /dev/null
	SERVER_PID=''
	return 0
}

# The x86-64 guest image (cached by build-image.sh).
guest_image() {
	"$VM_DIR/build-image.sh" 2> /dev/null || "$VM_DIR/build-image.sh"
}

# mkwork NAME: a work folder under /tmp, world-searchable (9p clients attach
# as other users).
mkwork() {
	local w
	w=$(mktemp -d "/tmp/cpu-rs-$1.XXXXXX") || return 1
	chmod 755 "$w"
	echo "$w"
}

# cleanup_work DIR: remove unless KEEP=1 or failures happened.
cleanup_work() {
	[ -n "$1" ] && [ -d "$1" ] || return 0
	if [ "${KEEP:-0}" = 1 ] || [ "$FAILS" -gt 0 ]; then
		say "work folder kept: $1"
	else
		rm -rf "$1"
	fi
}
