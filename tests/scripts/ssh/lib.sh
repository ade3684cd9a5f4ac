# tests/scripts/ssh/lib.sh: shared helpers of the SSH interop tests and the SSH
# benchmark (bash, sourced after `set -euo pipefail`). Builds on
# tests/scripts/lib.sh (say, pass/fail counters, free_port, alive, ...).
#
# Everything listens on 127.0.0.1 only; every wait is a bounded poll on a
# condition (a log line, a port), never a bare sleep; every process started
# here is tracked and killed, and the work folder removed, by ssh_cleanup
# (installed as the EXIT trap by ssh_init).
#
# Environment:
#   OUR_SSHD, OUR_SSH  our server / client (contract: header of interop.sh)
#   CPU_RS_CACHE       cache folder (default ~/.cache/cpu-rs); the Python venv
#                      with paramiko, asyncssh and ssh-audit is CACHE/venv
#   CPU_RS_ARTIFACTS   where ssh-audit reports are saved (default /tmp)
#   OPENSSH10          the OpenSSH 10 peer script (default ../shared/peers/
#                      openssh10.sh beside the checkout, else /work/shared/...)
#   KEEP=1             keep the work folder (it is always kept on failure)

# shellcheck source=../lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"

PY_DIR=$REPO/tests/py
CPU_RS_CACHE=${CPU_RS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/cpu-rs}
VENV=$CPU_RS_CACHE/venv
ARTIFACTS=${CPU_RS_ARTIFACTS:-/tmp}
if [ -z "${OPENSSH10:-}" ]; then
	OPENSSH10=$REPO/../shared/peers/openssh10.sh
	[ -x "$OPENSSH10" ] || OPENSSH10=/work/shared/peers/openssh10.sh
fi
SYS_SSH=/usr/bin/ssh
SYS_SSHD=/usr/sbin/sshd
# The system python (standard library only) for the helpers in tests/py.
HOST_PY=/usr/bin/python3
[ -x "$HOST_PY" ] || HOST_PY=$(command -v python3 || echo python3)
ME=$(id -un)

# Options of every OpenSSH client run: no agent, no known_hosts, no prompts.
# The log level comes after (SSH_LOGLEVEL, default ERROR; OpenSSH keeps the
# first value it is given, so callers set SSH_LOGLEVEL instead of -o LogLevel).
OSSH_OPTS=(-o IdentitiesOnly=yes -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null
	-o BatchMode=yes -o ConnectTimeout=10)

SKIPS=0
skip() { SKIPS=$((SKIPS + 1)); echo "SKIP $*"; }

# Case filter: want NAME is true when no filter was given or NAME contains it.
CASE_FILTER=${CASE_FILTER:-}
want() { [ -z "$CASE_FILTER" ] || [[ $1 == *"$CASE_FILTER"* ]]; }

# bin_ok PATH: an executable file. Relative paths are taken from the repo.
abs_bin() {
	case $1 in /*) echo "$1" ;; */*) echo "$REPO/$1" ;; *) command -v "$1" 2>/dev/null || echo "$REPO/$1" ;; esac
}
bin_ok() { [ -n "$1" ] && [ -f "$1" ] && [ -x "$1" ]; }

# --- setup (idempotent) -------------------------------------------------------

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

# apt_ensure PKG...: install the missing ones (fresh Debian CI runs as root).
apt_ensure() {
	local p missing=''
	for p in "$@"; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || missing="$missing $p"
	done
	[ -n "$missing" ] || return 0
	say "apt-get install:$missing"
	# shellcheck disable=SC2086 # package names are words
	as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q -o DPkg::Lock::Timeout=300 \
		--no-install-recommends $missing >&2 ||
		{ as_root apt-get update -q -o DPkg::Lock::Timeout=300 >&2 &&
			as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q -o DPkg::Lock::Timeout=300 \
				--no-install-recommends $missing >&2; }
}

# venv_ensure: CACHE/venv with paramiko, asyncssh, ssh-audit, and the libssh
# and libssh2 bindings ssh-python and ssh2-python (manylinux wheels that
# carry the C libraries) for ssh-clients.sh; from PyPI, or the wheels in
# /opt/wheels when pip is configured so.
venv_ensure() {
	if [ -x "$VENV/bin/python" ] && [ -x "$VENV/bin/ssh-audit" ] &&
		"$VENV/bin/python" -c 'import paramiko, asyncssh, ssh, ssh2' 2>/dev/null; then
		return 0
	fi
	say "creating $VENV (paramiko, asyncssh, ssh-audit, ssh-python, ssh2-python)"
	mkdir -p "$CPU_RS_CACHE"
	[ -x "$VENV/bin/python" ] || /usr/bin/python3 -m venv "$VENV" >&2 || return 1
	timeout 600 "$VENV/bin/pip" install -q paramiko asyncssh ssh-audit ssh-python ssh2-python >&2
}

# ssh_setup: everything the SSH suites need. OpenSSH 10 is optional (its
# cases SKIP when the chroot cannot be built).
ssh_setup() {
	apt_ensure openssh-server openssh-sftp-server openssh-client putty-tools python3 python3-venv coreutils procps bsdutils tmux || return 1
	as_root mkdir -p /run/sshd
	venv_ensure || return 1
	if [ -x "$OPENSSH10" ]; then
		timeout 900 "$OPENSSH10" setup >/dev/null || say "OpenSSH 10 peer could not be set up: its cases will SKIP"
	else
		say "no $OPENSSH10: OpenSSH 10 cases will SKIP"
	fi
	say "setup ok: $("$SYS_SSH" -V 2>&1); venv $VENV"
}

o10_ready() { [ -x "$OPENSSH10" ] && [ -f "$("$OPENSSH10" root 2>/dev/null)/.openssh10-ready" ]; }

# --- work folder, processes, cleanup -----------------------------------------

W='' TRACKED=() O10_SSHD_PIDS=() CLEANUP_HOOKS=()

# ssh_init NAME: the work folder $W (under /tmp, which the OpenSSH 10 chroot
# also sees), keys in it, and the EXIT trap.
ssh_init() {
	W=$(mkwork "$1") || exit 1
	trap ssh_cleanup EXIT
	trap 'exit 130' INT TERM
	[ -d /run/sshd ] || as_root mkdir -p /run/sshd
	gen_keys "$W"
}

# track PID: killed by ssh_cleanup.
track() { TRACKED+=("$1"); }

# stop_pid PID: TERM, wait up to 5 s, KILL; reaps when it is our child.
stop_pid() {
	local pid=$1 i
	[ -n "$pid" ] || return 0
	kill -TERM "$pid" 2>/dev/null || true
	for i in $(seq 1 50); do
		alive "$pid" || break
		sleep 0.1
	done
	alive "$pid" && kill -KILL "$pid" 2>/dev/null
	wait "$pid" 2>/dev/null || true
	return 0
}

ssh_cleanup() {
	local rc=$? p h
	set +e
	for p in "${O10_SSHD_PIDS[@]}"; do "$OPENSSH10" sshd-stop "$p" >/dev/null 2>&1; done
	for p in "${TRACKED[@]}"; do stop_pid "$p"; done
	for h in "${CLEANUP_HOOKS[@]}"; do $h; done
	if [ -n "$W" ]; then
		if [ "$rc" != 0 ] || [ "$FAILS" -gt 0 ] || [ "${KEEP:-0}" = 1 ]; then
			# logs are kept, bulk data is not
			find "$W" -name '*.bin' -size +1M -delete 2>/dev/null
			say "work folder kept: $W"
		else
			rm -rf "$W"
		fi
	fi
	exit "$rc"
}

# gen_keys DIR: host_ed25519 (server), client_ed25519 (authorized),
# wrong_ed25519 (not authorized), authorized_keys.
gen_keys() {
	local d=$1 k
	for k in host client wrong; do
		ssh-keygen -q -t ed25519 -N '' -C "cpu-rs-test-$k" -f "$d/${k}_ed25519" </dev/null
	done
	cp "$d/client_ed25519.pub" "$d/authorized_keys"
	chmod 644 "$d/authorized_keys"
}

# wait_line FILE ERE PID SECS: poll FILE until a line matches ERE (prints
# that line) or PID dies or SECS pass.
wait_line() {
	local f=$1 re=$2 pid=$3 n=$(($4 * 10)) i line
	for i in $(seq 1 "$n"); do
		line=$(grep -E -m 1 "$re" "$f" 2>/dev/null || true)
		[ -n "$line" ] && { echo "$line"; return 0; }
		[ -z "$pid" ] || alive "$pid" || break
		sleep 0.1
	done
	line=$(grep -E -m 1 "$re" "$f" 2>/dev/null || true)
	[ -n "$line" ] && { echo "$line"; return 0; }
	return 1
}

# --- servers -----------------------------------------------------------------

# start_our_sshd LABEL [EXTRA_ARGS...]: sets SPID, SPORT. Logs: $W/LABEL.out/.err
SPID='' SPORT=''
start_our_sshd() {
	local label=$1 line
	shift
	SPID='' SPORT=''
	"$OUR_SSHD" -addr 127.0.0.1:0 -hostkey "$W/host_ed25519" -authorized-keys "$W/authorized_keys" "$@" \
		>"$W/$label.out" 2>"$W/$label.err" </dev/null &
	SPID=$!
	track "$SPID"
	if ! line=$(wait_line "$W/$label.out" 'listening on 127\.0\.0\.1:[0-9]+' "$SPID" 20); then
		say "$OUR_SSHD did not print 'listening on' (logs $W/$label.*):"
		tail -n 20 "$W/$label.err" >&2
		stop_pid "$SPID"
		return 1
	fi
	SPORT=$(sed -n 's/.*listening on 127\.0\.0\.1:\([0-9][0-9]*\).*/\1/p' <<<"$line")
	say "$label: $OUR_SSHD pid $SPID on 127.0.0.1:$SPORT"
}

# start_openssh_sshd LABEL [CONFIG_LINE...]: OpenSSH 9.2 sshd (system) on a
# free port with its own config in $W; key login for any local user whose
# key is in $W/authorized_keys. Sets SPID, SPORT. Log: $W/LABEL.log
start_openssh_sshd() {
	local label=$1 try port cfg=$W/$1.sshd_config
	shift
	SPID='' SPORT=''
	[ -x "$SYS_SSHD" ] || { say "no $SYS_SSHD (apt-get install openssh-server)"; return 1; }
	{
		echo "ListenAddress 127.0.0.1"
		echo "HostKey $W/host_ed25519"
		echo "PidFile none"
		echo "AuthorizedKeysFile $W/authorized_keys"
		echo "PermitRootLogin prohibit-password"
		echo "PasswordAuthentication no"
		echo "KbdInteractiveAuthentication no"
		echo "UsePAM no"
		echo "StrictModes no"
		echo "AcceptEnv CPU_RS_*"
		printf '%s\n' "$@"
		echo "LogLevel VERBOSE"
	} >"$cfg"
	"$SYS_SSHD" -t -f "$cfg" || { say "bad sshd config $cfg"; return 1; }
	for try in 1 2 3 4 5; do
		port=$(free_port) || return 1
		"$SYS_SSHD" -D -e -f "$cfg" -p "$port" </dev/null >"$W/$label.log" 2>&1 &
		SPID=$!
		if wait_line "$W/$label.log" "Server listening on 127\.0\.0\.1 port $port" "$SPID" 10 >/dev/null; then
			track "$SPID"
			SPORT=$port
			say "$label: sshd pid $SPID on 127.0.0.1:$SPORT"
			return 0
		fi
		stop_pid "$SPID"
		SPID=''
	done
	say "sshd did not start (log $W/$label.log):"
	tail -n 10 "$W/$label.log" >&2
	return 1
}

# start_o10_sshd LABEL: OpenSSH 10 sshd in its chroot (key login as root).
# Sets SPID, SPORT. Log: $W/LABEL.log
start_o10_sshd() {
	local label=$1 try port pid
	SPID='' SPORT=''
	for try in 1 2 3; do
		port=$(free_port) || return 1
		if pid=$(timeout 60 "$OPENSSH10" sshd-start "$port" "$W/authorized_keys" "$W/$label.log"); then
			O10_SSHD_PIDS+=("$pid")
			SPID=$pid SPORT=$port
			say "$label: OpenSSH 10 sshd pid $SPID on 127.0.0.1:$SPORT"
			return 0
		fi
	done
	return 1
}

# secs_of CMD...: the wall seconds of one run of CMD (its output dropped).
secs_of() {
	local t0 t1
	t0=$(date +%s.%N)
	"$@" >/dev/null
	t1=$(date +%s.%N)
	awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.4f\n", b - a }'
}
# median: of the numbers on stdin, one a line.
median() { sort -g | awk '{ a[NR] = $1 } END { print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }

# CPU_RS_RUNTIME (std or smol): the runtime of the binaries under test.
# Binaries a script builds itself (static, cross) are built with the same
# one: runtime_features gives the cargo flags for it.
runtime_features() {
	case ${CPU_RS_RUNTIME:-std} in
	std) ;;
	smol) echo "--features runtime-smol" ;;
	*) echo "CPU_RS_RUNTIME must be std or smol" >&2; return 1 ;;
	esac
}

# static_cpud TARGET: a static cpud for TARGET (a rustup musl target, added
# when missing), built with the runtime under test, as CPUD; CPU is this
# machine's cpu (default target/release/cpu). SKIP (exit 0) when the
# target or cpu cannot be had; FAIL (exit 1) when the build fails.
static_cpud() {
	local t=$1
	if ! rustup target list --installed 2>/dev/null | grep -qx "$t"; then
		timeout 300 rustup target add "$t" >/dev/null 2>&1 || { echo "SKIP: no $t target for rustup"; exit 0; }
	fi
	# shellcheck disable=SC2046 # runtime_features is zero or two words
	(cd "$REPO" && cargo build -q --release --target "$t" -p cpu-bins $(runtime_features) --bin cpud) ||
		{ echo "FAIL: building cpud for $t"; exit 1; }
	CPUD=$REPO/target/$t/release/cpud
	CPU=$(abs_bin "${CPU:-target/release/cpu}")
	bin_ok "$CPU" || { echo "SKIP: no $CPU"; exit 0; }
}

# cpu_bins: CPU and CPUD (default target/release/{cpu,cpud}), absolute;
# without both, print SKIP and exit 0.
cpu_bins() {
	CPU=$(abs_bin "${CPU:-target/release/cpu}")
	CPUD=$(abs_bin "${CPUD:-target/release/cpud}")
	local b
	for b in "$CPU" "$CPUD"; do
		bin_ok "$b" || { echo "SKIP: no $b"; exit 0; }
	done
}

# start_cpud LABEL [CPUD_ARGS...]: our cpud on 127.0.0.1 (a free port) in a
# private mount namespace, with $W's authorized keys and its state (the
# host key it makes) in $W/state. Sets CPID, CPORT. Logs: $W/LABEL.out/.err
CPID='' CPORT=''
start_cpud() {
	local label=$1 line
	shift
	CPUD_STATE_DIR=$W/state unshare --mount --propagation private \
		"$CPUD" -sp 0 -addr 127.0.0.1 -pk "$W/authorized_keys" "$@" \
		>"$W/$label.out" 2>"$W/$label.err" </dev/null &
	CPID=$!
	track "$CPID"
	line=$(wait_line "$W/$label.err" 'listening on 127\.0\.0\.1:[0-9]+' "$CPID" 20) || {
		cat "$W/$label.err" >&2
		return 1
	}
	CPORT=$(sed -n 's/.*listening on 127\.0\.0\.1:\([0-9][0-9]*\).*/\1/p' <<<"$line")
	say "$label: cpud pid $CPID on 127.0.0.1:$CPORT"
}

# --- clients -----------------------------------------------------------------

# ossh PORT [SSH_ARGS...] -- CMD: system OpenSSH client as $ME with the
# authorized key, bounded by ${SSH_TMO:-60} s.
ossh() {
	local port=$1
	shift
	local args=()
	while [ $# -gt 0 ] && [ "$1" != -- ]; do args+=("$1"); shift; done
	shift
	timeout -k 5 "${SSH_TMO:-60}" "$SYS_SSH" -p "$port" -i "${SSH_KEY:-$W/client_ed25519}" "${OSSH_OPTS[@]}" \
		-o LogLevel="${SSH_LOGLEVEL:-ERROR}" "${args[@]}" "${SSH_USER:-$ME}@127.0.0.1" "$@"
}

# o10ssh PORT [SSH_ARGS...] -- CMD: the same with the OpenSSH 10 client.
o10ssh() {
	local port=$1
	shift
	local args=()
	while [ $# -gt 0 ] && [ "$1" != -- ]; do args+=("$1"); shift; done
	shift
	timeout -k 5 "${SSH_TMO:-60}" "$OPENSSH10" ssh -p "$port" -i "${SSH_KEY:-$W/client_ed25519}" "${OSSH_OPTS[@]}" \
		-o LogLevel="${SSH_LOGLEVEL:-ERROR}" "${args[@]}" "${SSH_USER:-$ME}@127.0.0.1" "$@"
}

# oursh PORT [OUR_SSH_ARGS...] -- CMD: our client, bounded likewise.
oursh() {
	local port=$1
	shift
	local args=()
	while [ $# -gt 0 ] && [ "$1" != -- ]; do args+=("$1"); shift; done
	shift
	timeout -k 5 "${SSH_TMO:-60}" "$OUR_SSH" -p "$port" -i "${SSH_KEY:-$W/client_ed25519}" -l "${SSH_USER:-$ME}" \
		"${args[@]}" 127.0.0.1 "$@"
}

# --- data --------------------------------------------------------------------

sha_of() { sha256sum "$1" | cut -d' ' -f1; }
first_word() { sed -n '1s/^\([^ ]*\).*/\1/p' "$1" 2>/dev/null; }

# rand_file NAME MIB: $W/NAME of random data (made once).
rand_file() {
	[ -f "$W/$1" ] || head -c "$(($2 << 20))" /dev/urandom >"$W/$1"
	echo "$W/$1"
}
