#!/usr/bin/env bash
# tests/scripts/cpu-arm64.sh: the cross-architecture board flow. A static
# aarch64 cpud (musl, linked by rust-lld) is the service of an arm64 QEMU
# guest (TCG: correctness only); this machine's x86-64 cpu connects with a
# -namespace that maps an arm64 Debian tree from here over the guest's
# /bin, /lib and /usr. Checks: uname -m is aarch64, the tree's arm64 bash
# runs (the guest itself has only busybox), a file the remote writes lands
# in our cwd, and the static cpud stays within the 1.5 MB budget.
#
# Needs the aarch64-unknown-linux-musl target (rustup target add; SKIP
# when it cannot be had). CPU: the host's cpu (default target/release/cpu).
set -euo pipefail
# shellcheck source=ssh/lib.sh
. "$(dirname "$0")/ssh/lib.sh"

static_cpud aarch64-unknown-linux-musl
ssh_init cpu-arm64

size=$(stat -c %s "$CPUD")
[ "$size" -le 1500000 ] && pass "static aarch64 cpud: $size bytes, within 1.5 MB" ||
	fail "static aarch64 cpud: $size bytes, over 1.5 MB"

ROOT=$("$VM_DIR/arm64-rootfs.sh" 2>"$W/rootfs.err" | tail -n 1) && [ -x "$ROOT/usr/bin/bash" ] ||
	{ fail "arm64 tree: $(tail -n 5 "$W/rootfs.err")"; exit 1; }
"$VM_DIR/build-image.sh" -M arm64 >/dev/null 2>"$W/image.err" ||
	{ fail "arm64 image: $(tail -n 5 "$W/image.err")"; exit 1; }

HOMEDIR=$(mktemp -d /home/cpu-rs-arm64.XXXXXX)
GLOG=$W/guest.log
stop_guest() {
	"$VM_DIR/run-guest.sh" -M arm64 -S -l "$GLOG" >/dev/null 2>&1 || true
	rm -rf "$HOMEDIR"
}
CLEANUP_HOOKS+=(stop_guest)
HP=$(free_port)
timeout 200 "$VM_DIR/run-guest.sh" -M arm64 -b -l "$GLOG" -p "$HP:17010" -T 900 \
	-a "$CPUD" -a "$W/host_ed25519:/etc/cpud/hk" -a "$W/authorized_keys:/etc/cpud/pk" \
	-r 'cpud: listening on' -- cpud -hk /etc/cpud/hk -pk /etc/cpud/pk >/dev/null ||
	{ fail "arm64 guest: cpud did not start"; tail -n 30 "$GLOG" >&2; exit 1; }
say "arm64 guest cpud on 127.0.0.1:$HP"

out=$(cd "$HOMEDIR" && HOME=$W/home timeout -k 5 300 "$CPU" -hostkeycheck=false -key "$W/client_ed25519" -sp "$HP" \
	-namespace "/home:/bin=$ROOT/bin:/lib=$ROOT/lib:/usr=$ROOT/usr" 127.0.0.1 \
	/bin/bash -c 'uname -m; echo "bash $BASH_VERSION machine$(od -An -tx1 -j18 -N2 /proc/$$/exe)"; echo from-the-arm64-board > board.txt') || true
[ "$(sed -n 1p <<<"$out")" = aarch64 ] && pass "uname -m on the board: aarch64" || fail "uname: got '$out'"
case $(sed -n 2p <<<"$out") in
# e_machine 0xb7: EM_AARCH64. The guest has no bash of its own.
"bash 5."*" machine b7 00") pass "the tree's arm64 bash runs on the board" ;;
*) fail "arm64 bash: got '$out'" ;;
esac
[ "$(cat "$HOMEDIR/board.txt" 2>/dev/null)" = from-the-arm64-board ] &&
	pass "a file the board writes lands in our cwd" || fail "board.txt: $(ls -l "$HOMEDIR")"

echo "cpu-arm64: $PASSES passed, $FAILS failed"
[ "$FAILS" = 0 ]
