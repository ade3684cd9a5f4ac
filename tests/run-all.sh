#!/bin/bash
# tests/run-all.sh: THE test command of cpu-rs (.ci/run calls it).
#
# On a fresh Debian 12 machine (root, or sudo) it installs what it needs,
# idempotently: apt packages (diod, qemu-system-x86, busybox-static, cpio,
# kmod, xz-utils, gcc, libc6-dev, libacl1-dev, ...), rustfmt and clippy, and
# `cargo install --locked pjdfstest fsx` into ~/.cache/cpu-rs/cargo (only if
# missing); the QEMU guest image is built/cached in ~/.cache/vm-harness by
# ../shared/vm/build-image.sh. Then it runs:
#   fmt        cargo fmt --all -- --check
#   clippy     cargo clippy --workspace --all-targets -- -D warnings
#   test       cargo test --workspace
#   build      cargo build --release -p cpu-bins --bin cpu9p --bin cpud --bin cpu --bin decpu
#              --bin decpud, and (step
#              build-ssh) cargo build --release -p runtime-std --examples
#              (ssh_server, ssh_client) unless CPU_RS_SSH_INTEROP=0
#   clients    tests/scripts/diod-clients.sh   (diodls/diodcat, host side)
#   workload   tests/scripts/guest-workload.sh (Linux 9p client in QEMU)
#   fstests    tests/scripts/fs-suites.sh      (pjdfstest + fsx in QEMU; against
#              diod too only with FSTESTS_DIOD=1)
#   diff       tests/scripts/differential.sh   (diod vs ours, same workload)
#   ssh-interop tests/scripts/ssh/interop.sh   (our SSH server/client against
#              OpenSSH 9.2 and 10, paramiko, asyncssh, ssh-audit). On by
#              default; CPU_RS_SSH_INTEROP=0 turns it off, together with its
#              setup (interop.sh --setup: openssh-server, a Python venv in
#              ~/.cache/cpu-rs/venv, the OpenSSH 10 chroot in
#              ~/.cache/openssh10; about 2 minutes on a fresh machine) and
#              build-ssh. Uses OUR_SSHD (default target/release/examples/
#              ssh_server) and OUR_SSH (default .../ssh_client).
#   (ssh-interop-smol: the same run with runtime-smol's ssh_server_smol and
#              ssh_client_smol, part of the ssh-interop step)
#   cpud       tests/scripts/cpud-openssh.sh  (OpenSSH ssh, scp, sftp -> our
#              cpud: the login shell for plain sessions, a cpu session's
#              splitting, statuses, pty, stdin, env, refused key, teardown,
#              scp/sftp, host key kept); needs the ssh setup, so
#              CPU_RS_SSH_INTEROP=0 skips it
#   ssh-clients tests/scripts/ssh-clients.sh  (Dropbear's dbclient, PuTTY's plink,
#              libssh and libssh2 -> our cpud: ciphers, user key types, echo,
#              exit 7, 20 MiB of stdin, a pty; our example client -> Dropbear's
#              server); needs the ssh setup, so CPU_RS_SSH_INTEROP=0 skips it
#   cpud-auth  tests/scripts/cpud-auth.sh     (OpenSSH ssh -> our cpud: authorized_keys
#              options, login log lines with fingerprints, timestamps, syslog
#              to a socket, -h and -version); needs the ssh setup
#   cpud-flood tests/scripts/cpud-flood.sh    (2,000 idle connections held while OpenSSH
#              ssh and cpu log in: fd/thread caps, evictions, the grace and
#              identification deadlines, EMFILE at accept; sshd's figures beside);
#              ssh setup, ~40-50 s
#   cpu-local  tests/scripts/cpu-local.sh     (cpu -> cpud on loopback without 9P:
#              ssh_config alias, statuses, arguments, stdin, exit codes of
#              each failure, the remote's 9p mount failure on this kernel)
#   cpu-config tests/scripts/cpu-config.sh    (cpu -> cpud on loopback: glob Include,
#              Match, StrictHostKeyChecking, ServerAliveInterval against a
#              stopped cpud; ConnectTimeout and SIGINT against a silent listener)
#   cpu-cwd    tests/scripts/cpu-cwd.sh       (cpu -> cpud on loopback, FUSE path: the
#              command starts in the client's cwd under /home, /tmp, /tmp
#              itself, /, through a symlink; files land locally; -9p=false)
#   cpu-messages tests/scripts/cpu-messages.sh (cpu/cpud's one-line messages and exit
#              codes: public/old PEM/P-384/too-open keys, sshd and dropbear
#              refused as not cpud, disconnect reasons, cpu -d's keys)
#   dnssd      tests/scripts/dnssd.sh         (decpu -> decpud with DNS-SD across two
#              network namespaces it makes and removes: requirements, sorts,
#              the least-loaded default, tenants, avahi-browse, withdrawal)
#   cpu-guest  tests/scripts/cpu-guest.sh     (cpud as a QEMU guest's service,
#              cpu from here: the kernel 9p path, cwd, files both ways,
#              statuses, stdin, -namespace remote=local, SIGINT, wrong key;
#              then cpu and cpud over vsock inside a guest)
#   cpu-many   tests/scripts/cpu-many.sh      (200 simultaneous cpu sessions against one
#              cpud, each reading its own file through /tmp/cpu by sha256;
#              nothing left behind)
#   packaging  tests/scripts/packaging.sh     (install.sh, the systemd unit verified,
#              the sysvinit and buildroot scripts started and stopped in
#              private namespaces, the procd script's start_service)
#   cpu-arm64  tests/scripts/cpu-arm64.sh     (a static aarch64 cpud, built here
#              with rust-lld, as an arm64 guest's service; cpu maps an arm64
#              Debian tree over /bin, /lib, /usr; the 1.5 MB size budget)
#   cpu-init   tests/scripts/cpu-init.sh      (the static cpud as a QEMU guest's
#              literal /init: PID 1, mounts, modules, ip=, a session, power off)
#   boards     tests/scripts/boards.sh        (packaging/dist.sh for amd64, arm64,
#              armv7, riscv64: the 1.5 MB cpud budget per arch, static ELF of
#              the right machine, the binaries start under qemu-user)
#
# Env:
#   SERVER=ours|diod  server under test (default: ours when the workspace has
#                     the cpu9p binary, else diod). With ours, every 9P suite
#                     also runs against diod as the differential reference.
#   STEPS="..."       run only these steps (names above; default all)
#   VM_DIR            VM harness (default ../shared/vm beside the checkout)
#   KEEP=1            keep work folders and logs
# Exit status: 0 when every step passed. Logs: $LOGS (printed at the end).
set -uo pipefail
REPO=$(cd "$(dirname "$0")/.." && pwd)
cd "$REPO" || exit 1
# The shared folder travels beside the checkout (../shared), in CI too.
export VM_DIR=${VM_DIR:-$(cd "$REPO/../shared/vm" 2>/dev/null && pwd || echo /work/shared/vm)}
CACHE=${XDG_CACHE_HOME:-$HOME/.cache}/cpu-rs
export TOOLS_BIN=$CACHE/cargo/bin
STEPS=${STEPS:-fmt clippy test build clients workload fstests diff ssh-interop cpud cpud-auth cpud-flood ssh-clients cpu-local cpu-config cpu-cwd cpu-messages cpu-many dnssd packaging cpu-guest cpu-arm64 cpu-init boards}
START=$(date +%s)
LOGS=$(mktemp -d /tmp/cpu-rs-run-all.XXXXXX)
chmod 755 "$LOGS"
RESULTS=$LOGS/results
SUMMARY=() FAILED=0

cleanup() {
	local j
	for j in $(jobs -p); do kill -TERM "$j" 2> /dev/null; done
	wait 2> /dev/null
	if [ "$FAILED" = 0 ] && [ "${KEEP:-0}" != 1 ]; then rm -rf "$LOGS"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

say() { if [ -t 1 ]; then printf '\n\033[1m=== %s\033[0m\n' "$*"; else printf '\n=== %s\n' "$*"; fi; }
wanted() { case " $STEPS " in *" $1 "*) return 0 ;; *) return 1 ;; esac; }

# step NAME TIMEOUT CMD...: run with a time-out, log to $LOGS/NAME.log (and the
# terminal), record the result.
step() {
	local name=$1 tmo=$2 t0 rc
	shift 2
	say "$name: $*"
	t0=$(date +%s)
	timeout -k 20 "$tmo" "$@" 2>&1 | tee "$LOGS/$name.log"
	rc=${PIPESTATUS[0]}
	local dt=$(($(date +%s) - t0))
	if [ "$rc" = 0 ]; then
		SUMMARY+=("$(printf '%-22s %-6s %5ss' "$name" PASS "$dt")")
	else
		[ "$rc" = 124 ] && echo "*** $name: timed out after ${tmo}s"
		SUMMARY+=("$(printf '%-22s %-6s %5ss  (exit %s, log %s)' "$name" FAIL "$dt" "$rc" "$LOGS/$name.log")")
		FAILED=$((FAILED + 1))
	fi
	return "$rc"
}

# RUNTIMES: the runtimes whose builds the cpu/cpud matrix runs (default
# both: std, the default build, and smol, built with --features runtime-smol).
RUNTIMES=${RUNTIMES:-std smol}
runtime_on() { case " $RUNTIMES " in *" $1 "*) return 0 ;; *) return 1 ;; esac; }
ssh_interop_on() { [ "${CPU_RS_SSH_INTEROP:-1}" != 0 ]; }
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

# --- setup (idempotent) -------------------------------------------------------
setup() {
	local pkgs="diod qemu-system-x86 qemu-system-arm debootstrap busybox-static cpio kmod xz-utils zstd gcc libc6-dev libacl1-dev pkg-config ca-certificates avahi-daemon avahi-utils dbus iproute2 util-linux qemu-user-static debian-archive-keyring dropbear-bin putty-tools"
	local missing='' p
	for p in $pkgs; do
		dpkg-query -W -f='${Status}' "$p" 2> /dev/null | grep -q 'ok installed' || missing="$missing $p"
	done
	if [ -n "$missing" ]; then
		echo "apt-get install:$missing"
		as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q -o DPkg::Lock::Timeout=300 \
			--no-install-recommends $missing ||
		{ as_root apt-get update -q -o DPkg::Lock::Timeout=300 &&
		  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q -o DPkg::Lock::Timeout=300 \
			--no-install-recommends $missing; } || return 1
	fi
	command -v cargo > /dev/null || { echo "no cargo: install Rust (https://rustup.rs)"; return 1; }
	if ! cargo fmt --version > /dev/null 2>&1 || ! cargo clippy --version > /dev/null 2>&1; then
		rustup component add rustfmt clippy || return 1
	fi
	# Static board builds (cpu-guest's image case, cpu-arm64); best effort:
	# the steps say SKIP when rustup cannot fetch a target.
	for t in x86_64-unknown-linux-musl aarch64-unknown-linux-musl; do
		rustup target list --installed 2>/dev/null | grep -qx "$t" || rustup target add "$t" || true
	done
	# (boards: packaging/dist.sh fetches what else it needs itself: the
	# armv7 and riscv64 musl targets, or nightly with rust-src and
	# Debian's musl-dev for -Zbuild-std.)
	for p in pjdfstest fsx; do
		[ -x "$TOOLS_BIN/$p" ] && continue
		echo "cargo install --locked $p (into $CACHE/cargo)"
		(cd /tmp && cargo install --locked --root "$CACHE/cargo" "$p") || return 1
	done
	[ -x "$VM_DIR/build-image.sh" ] || { echo "no VM harness in $VM_DIR (set VM_DIR)"; return 1; }
	"$VM_DIR/build-image.sh" > /dev/null || return 1
	if ssh_interop_on; then
		"$REPO/tests/scripts/ssh/interop.sh" --setup || return 1
	fi
	echo "setup ok: $(diod -V 2>&1 | head -n 1 || true); pjdfstest, fsx in $TOOLS_BIN; image $(cat "${VM_OUT:-$HOME/.cache/vm-harness}/image/kernel-version")"
}

has_cpu9p() {
	cargo metadata --no-deps --format-version 1 2> /dev/null |
		grep -q '"kind":\["bin"\][^}]*"name":"cpu9p"\|"name":"cpu9p"[^}]*"kind":\["bin"\]'
}

# "run-all.sh --setup": only the installation (run through timeout below).
if [ "${1:-}" = --setup ]; then
	trap - EXIT; rm -rf "$LOGS"
	setup
	exit
fi

step setup 2400 "$0" --setup || echo "setup failed; stopping"
if [ "$FAILED" = 0 ]; then
	if [ -z "${SERVER:-}" ]; then
		if has_cpu9p; then SERVER=ours; else SERVER=diod; fi
	fi
	case $SERVER in
	ours) KINDS="ours diod" ;;
	diod) KINDS=diod ;;
	*) echo "SERVER must be ours or diod"; exit 2 ;;
	esac
	echo "server under test: $SERVER (9P suites run against: $KINDS)"

	wanted fmt && step fmt 300 cargo fmt --all -- --check
	wanted clippy && step clippy 1800 cargo clippy --workspace --all-targets -- -D warnings
	# The smol build's own code (bins/src/rt/smol.rs) is only seen with
	# its feature.
	wanted clippy && runtime_on smol && step clippy-smol 1800 cargo clippy -p cpu-bins --all-targets --features runtime-smol -- -D warnings
	wanted test && step test 1800 cargo test --workspace
	# The commands' own tests (the FUSE bridge's 9P client among them) on
	# the smol build.
	wanted test && runtime_on smol && step test-smol 1800 cargo test -p cpu-bins --features runtime-smol
	TGT=${CARGO_TARGET_DIR:-$REPO/target}
	BINS="--bin cpu9p --bin cpud --bin cpu --bin decpu --bin decpud"
	if [ "$SERVER" = ours ]; then
		export CPU9P=$TGT/release/cpu9p
		# The smol build first, its binaries set aside in $TGT/smol: the
		# default (std) build then leaves its own in $TGT/release.
		if runtime_on smol && { wanted build || [ ! -x "$TGT/smol/cpud" ]; }; then
			step build-smol 1800 sh -c "cargo build --release -p cpu-bins --features runtime-smol $BINS &&
				mkdir -p '$TGT/smol' && for b in cpu9p cpud cpu decpu decpud; do cp '$TGT/release/'\$b '$TGT/smol/'; done" ||
				RUNTIMES=std
		fi
		if wanted build || [ ! -x "$CPU9P" ]; then
			step build 1800 cargo build --release -p cpu-bins $BINS ||
				{ echo "no cpu9p: testing diod only"; KINDS=diod; }
		fi
	fi
	if ssh_interop_on && { wanted build || { wanted ssh-interop &&
		[ ! -x "${CARGO_TARGET_DIR:-$REPO/target}/release/examples/ssh_server" ]; }; }; then
		step build-ssh 1800 cargo build --release -p runtime-std -p runtime-smol --examples
	fi
	for k in $KINDS; do
		wanted clients && step "clients-$k" 300 tests/scripts/diod-clients.sh "$k"
	done
	for k in $KINDS; do
		wanted workload && RESULTS_DIR=$RESULTS step "workload-$k" 1200 tests/scripts/guest-workload.sh "$k"
	done
	# The smol runtime's 9P server, through the same clients and workload.
	if runtime_on smol && [ -x "$TGT/smol/cpu9p" ] && case " $KINDS " in *" ours "*) true ;; *) false ;; esac; then
		wanted clients && CPU9P=$TGT/smol/cpu9p step clients-ours-smol 300 tests/scripts/diod-clients.sh ours
		wanted workload && CPU9P=$TGT/smol/cpu9p RESULTS_DIR=$RESULTS/smol \
			step workload-ours-smol 1200 tests/scripts/guest-workload.sh ours
	fi
	# pjdfstest and fsx against the server under test; against diod as well
	# (a reference only: nothing compares the two) with FSTESTS_DIOD=1.
	for k in $KINDS; do
		[ "$k" = diod ] && [ "$SERVER" != diod ] && [ "${FSTESTS_DIOD:-0}" != 1 ] && continue
		wanted fstests && RESULTS_DIR=$RESULTS step "fstests-$k" 1800 tests/scripts/fs-suites.sh "$k"
	done
	if wanted diff && [ "$KINDS" = "ours diod" ]; then
		step diff-diod-vs-ours 120 tests/scripts/differential.sh "$RESULTS" diod ours
	fi
	if wanted ssh-interop && ssh_interop_on; then
		TGT=${CARGO_TARGET_DIR:-$REPO/target}
		OUR_SSHD=${OUR_SSHD:-$TGT/release/examples/ssh_server}
		OUR_SSH=${OUR_SSH:-$TGT/release/examples/ssh_client}
		OUR_SSHD=$OUR_SSHD OUR_SSH=$OUR_SSH SSH_SETUP=0 \
			step ssh-interop 900 tests/scripts/ssh/interop.sh
		# The same matrix with the smol runtime's server and client.
		OUR_SSHD=$TGT/release/examples/ssh_server_smol OUR_SSH=$TGT/release/examples/ssh_client_smol SSH_SETUP=0 \
			step ssh-interop-smol 900 tests/scripts/ssh/interop.sh
	fi
	# The cpu/cpud end-to-end matrix, once per runtime: the steps of the
	# smol build carry the suffix -smol.
	for rt in $RUNTIMES; do
		sfx=-$rt B=$TGT/$rt
		[ "$rt" = std ] && sfx='' B=$TGT/release
		export CPU_RS_RUNTIME=$rt CPU=$B/cpu CPUD=$B/cpud DECPU=$B/decpu DECPUD=$B/decpud
		if wanted cpud && ssh_interop_on; then
			step "cpud$sfx" 300 tests/scripts/cpud-openssh.sh
		fi
		if wanted ssh-clients && ssh_interop_on; then
			step "ssh-clients$sfx" 300 tests/scripts/ssh-clients.sh
		fi
		if wanted cpud-auth && ssh_interop_on; then
			step "cpud-auth$sfx" 180 tests/scripts/cpud-auth.sh
		fi
		if wanted cpud-flood && ssh_interop_on; then
			step "cpud-flood$sfx" 180 tests/scripts/cpud-flood.sh
		fi
		if wanted cpu-local && ssh_interop_on; then
			step "cpu-local$sfx" 300 tests/scripts/cpu-local.sh
		fi
		if wanted cpu-config && ssh_interop_on; then
			step "cpu-config$sfx" 120 tests/scripts/cpu-config.sh
		fi
		if wanted cpu-cwd && ssh_interop_on; then
			step "cpu-cwd$sfx" 120 tests/scripts/cpu-cwd.sh
		fi
		if wanted cpu-messages && ssh_interop_on; then
			step "cpu-messages$sfx" 120 tests/scripts/cpu-messages.sh
		fi
		if wanted cpu-many; then
			step "cpu-many$sfx" 600 tests/scripts/cpu-many.sh
		fi
		if wanted dnssd && ssh_interop_on; then
			step "dnssd$sfx" 300 tests/scripts/dnssd.sh
		fi
		if wanted cpu-guest; then
			step "cpu-guest$sfx" 900 tests/scripts/cpu-guest.sh
		fi
		if wanted cpu-arm64; then
			step "cpu-arm64$sfx" 900 tests/scripts/cpu-arm64.sh
		fi
		if wanted cpu-init; then
			step "cpu-init$sfx" 600 tests/scripts/cpu-init.sh
		fi
	done
	unset CPU_RS_RUNTIME CPU CPUD DECPU DECPUD
	if wanted packaging; then
		step packaging 300 tests/scripts/packaging.sh
	fi
	if wanted boards; then
		step boards 3600 tests/scripts/boards.sh
	fi
fi

say "summary ($(($(date +%s) - START)) s total, server under test: ${SERVER:-?})"
printf '%s\n' "${SUMMARY[@]}"
for f in "$LOGS"/fstests-*.log; do
	[ -f "$f" ] && grep -h '^PJDFSTEST\|^FSX' "$f"
done
if [ "$FAILED" = 0 ]; then
	echo "ALL PASSED"
else
	echo "$FAILED step(s) FAILED; logs in $LOGS"
fi
[ "$FAILED" = 0 ]
