#!/usr/bin/env bash
# tests/scripts/boards.sh: the static board builds of packaging/dist.sh,
# every architecture (amd64, arm64, arm = armv7 hard float, riscv64):
#   - dist.sh builds them all (the one documented command) and exits 0,
#     which it does only when every cpud is within the budget;
#   - per arch: SHA256SUMS verifies; cpud is at most 1,500,000 bytes;
#     both binaries are static (no program interpreter, no needed
#     library) ELF files for the right machine (armv7: the hard-float
#     ABI);
#   - each binary starts and prints its usage, natively or under
#     qemu-user (qemu-user-static): libc start-up and argument parsing on
#     the target's instruction set. (A session needs more than qemu-user
#     gives without binfmt_misc: cpud starts its sessions by executing
#     itself. The arm64 one serves real sessions in cpu-arm64.sh.)
#   - the armv7 cpud serves a session in the arm64 QEMU guest (32-bit
#     compat): uname -m, its ELF class and machine, an exit status.
# CPU: the host's cpu for that session (default target/release/cpu).
# DIST_ARCHES picks the architectures (default: all four).
set -euo pipefail
# shellcheck source=ssh/lib.sh
. "$(dirname "$0")/ssh/lib.sh"
cd "$REPO"
BUDGET=1500000
ARCHES=${DIST_ARCHES:-amd64 arm64 arm riscv64}

# shellcheck disable=SC2086 # a list of words
if out=$(timeout 3000 packaging/dist.sh $ARCHES 2>&1); then
	pass "packaging/dist.sh $ARCHES"
else
	fail "packaging/dist.sh: $out"
fi
printf '%s\n' "$out" | grep '^|' || true

machine() {
	case $1 in
	amd64) echo 'Advanced Micro Devices X86-64' ;;
	arm64) echo AArch64 ;;
	arm) echo ARM ;;
	riscv64) echo RISC-V ;;
	esac
}
qemu_for() {
	case $1 in
	amd64) echo x86_64 ;;
	arm64) echo aarch64 ;;
	arm) echo arm ;;
	riscv64) echo riscv64 ;;
	esac
}
host=$(dpkg --print-architecture)
for a in $ARCHES; do
	d=dist/$a
	[ -s "$d/cpud" ] || { fail "$a: no $d/cpud"; continue; }
	(cd "$d" && sha256sum --quiet -c SHA256SUMS) && pass "$a: SHA256SUMS" || fail "$a: SHA256SUMS"
	s=$(stat -c %s "$d/cpud")
	[ "$s" -le "$BUDGET" ] && pass "$a: cpud $s bytes, within 1.5 MB ($(cat "$d/BUILD"))" ||
		fail "$a: cpud $s bytes, over 1.5 MB ($(cat "$d/BUILD"))"
	for b in cpu cpud; do
		h=$(readelf -h "$d/$b") l=$(readelf -lW "$d/$b") dyn=$(readelf -dW "$d/$b" 2>/dev/null || true)
		m=$(sed -n 's/^ *Machine: *//p' <<<"$h")
		ok=1
		[ "$m" = "$(machine "$a")" ] || ok=0
		grep -q 'INTERP' <<<"$l" && ok=0
		grep -q 'NEEDED' <<<"$dyn" && ok=0
		[ "$a" != arm ] || grep -q 'hard-float ABI' <<<"$h" || ok=0
		[ $ok = 1 ] && pass "$a: $b is a static $m executable" ||
			fail "$a: $b: machine '$m' $(grep -E 'INTERP|Flags' <<<"$l$h" | tr -s ' ' | tr '\n' ' ') $(grep NEEDED <<<"$dyn")"
	done
	run=()
	if [ "$a" != "$host" ]; then
		q=qemu-$(qemu_for "$a")-static
		command -v "$q" >/dev/null || apt_ensure qemu-user-static >/dev/null 2>&1 || true
		command -v "$q" >/dev/null || { skip "$a: no $q to start the binaries"; continue; }
		run=("$q")
	fi
	for b in cpu cpud; do
		u=$(timeout 60 "${run[@]}" "$d/$b" -h 2>&1 | head -n 1) || true
		case $u in
		"usage: $b "*) pass "$a: $b starts (${run[*]:-native}): $u" ;;
		*) fail "$a: $b -h: '$u'" ;;
		esac
	done
done

# The armv7 cpud serves a real session on an arm64 board: the arm64 guest
# (Cortex-A57 under TCG, Debian's kernel with 32-bit compat) runs it as
# its service. No 9P namespace (the remote runs the guest's busybox).
if [ -s dist/arm/cpud ] && [[ " $ARCHES " == *" arm "* ]]; then
	ssh_init boards
	CPU=$(abs_bin "${CPU:-target/release/cpu}")
	if ! bin_ok "$CPU"; then
		skip "armv7 in the arm64 guest: no $CPU"
	elif ! "$VM_DIR/build-image.sh" -M arm64 >/dev/null 2>"$W/image.err"; then
		fail "arm64 image: $(tail -n 5 "$W/image.err")"
	else
		GLOG=$W/guest.log
		stop_guest() { "$VM_DIR/run-guest.sh" -M arm64 -S -l "$GLOG" >/dev/null 2>&1 || true; }
		CLEANUP_HOOKS+=(stop_guest)
		HP=$(free_port)
		if timeout 200 "$VM_DIR/run-guest.sh" -M arm64 -b -l "$GLOG" -p "$HP:17010" -T 600 \
			-a "$REPO/dist/arm/cpud:/bin/cpud" -a "$W/host_ed25519:/etc/cpud/hk" -a "$W/authorized_keys:/etc/cpud/pk" \
			-r 'cpud: listening on' -- cpud -hk /etc/cpud/hk -pk /etc/cpud/pk >/dev/null 2>&1; then
			rc=0
			out=$(cd / && HOME=$W timeout -k 5 120 "$CPU" -9p=false -hostkeycheck=false -key "$W/client_ed25519" -sp "$HP" 127.0.0.1 \
				sh -c 'uname -m; echo "cpud $(od -An -tx1 -j4 -N1 /proc/$PPID/exe) $(od -An -tx1 -j18 -N1 /proc/$PPID/exe)"; exit 3' 2>&1) || rc=$?
			# ELF class 01 (32-bit), e_machine 0x28 (ARM): the session's
			# parent is the armv7 cpud.
			[ "$rc" = 3 ] && [ "$(tr -s ' ' <<<"$out" | tr '\n' '|')" = "aarch64|cpud 01 28|" ] &&
				pass "arm: the armv7 cpud serves a session on an arm64 board (exit 3)" ||
				fail "arm: session on the arm64 guest: status $rc, '$out'"
		else
			fail "arm: the armv7 cpud did not start in the arm64 guest: $(tail -n 10 "$GLOG" | tr '\n' '|')"
		fi
	fi
fi

echo "boards: $PASSES passed, $FAILS failed"
[ "$FAILS" = 0 ]
