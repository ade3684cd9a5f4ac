#!/usr/bin/env bash
# tests/scripts/cpu-init.sh: cpud as the literal /init of a QEMU guest
# (the LinuxBoot case). The guest's initramfs is the VM image's with our
# static cpud (x86_64 musl) put over its /init, so the kernel starts cpud
# as PID 1: no shell, no busybox init script runs. The image's kernel has
# its drivers as modules; cpud loads them from /etc/cpud/modules (the
# image's own list) and configures eth0 from the kernel command line's
# ip=, then serves. cpu from here, through QEMU's user network, checks:
#   - PID 1's executable is our cpud (sha256 of /proc/1/exe);
#   - /proc, /sys, /dev and /tmp are mounted in PID 1's namespace;
#   - the drivers cpud loaded are there (virtio_net, 9p);
#   - a session with the 9P namespace: a file lands in our cwd, and the
#     exit status comes back (7);
#   - SIGTERM to PID 1 ends the daemon and powers the guest off (QEMU
#     exits by itself, within a bounded wait).
# CPU: the host's cpu (default target/release/cpu).
set -euo pipefail
# shellcheck source=ssh/lib.sh
. "$(dirname "$0")/ssh/lib.sh"

static_cpud x86_64-unknown-linux-musl
ssh_init cpu-init
CPU_HOME=$W/home
mkdir -p "$CPU_HOME"
guest_image >/dev/null
IMG=${VM_OUT:-${XDG_CACHE_HOME:-$HOME/.cache}/vm-harness}/image
# The image's modules, in dependency order, paths under
# /lib/modules/RELEASE: what its own init script would insmod.
(cd "$W" && cpio -i --quiet --to-stdout etc/vm/modules <"$IMG/initramfs.cpio" >"$W/modules") &&
	grep -q virtio_net "$W/modules" || { fail "no module list in $IMG/initramfs.cpio"; exit 1; }
cp "$W/host_ed25519" "$W/hk"

HOMEDIR=$(mktemp -d /home/cpu-rs-init.XXXXXX)
GLOG=$W/guest.log
GPID=$W/guest.pid
stop_guest() {
	"$VM_DIR/run-guest.sh" -S -l "$GLOG" -P "$GPID" >/dev/null 2>&1 || true
	rm -rf "$HOMEDIR"
}
CLEANUP_HOOKS+=(stop_guest)
HP=$(free_port)
# -a ...:/init replaces the image's init script (the second cpio of the
# boot is unpacked over the first). Words after -- on the kernel command
# line are init's arguments.
timeout 150 "$VM_DIR/run-guest.sh" -b -l "$GLOG" -P "$GPID" -p "$HP:17010" -T 600 \
	-a "$CPUD:/init" -a "$W/modules:/etc/cpud/modules" \
	-a "$W/hk:/etc/cpud/hk" -a "$W/authorized_keys:/etc/cpud/pk" \
	-x "ip=10.0.2.15::10.0.2.2:255.255.255.0::eth0:off -- -d -hk /etc/cpud/hk -pk /etc/cpud/pk" \
	-r 'cpud: listening on' >/dev/null ||
	{ fail "guest: cpud as /init did not start"; tail -n 30 "$GLOG" >&2; exit 1; }
say "guest with cpud as /init, on 127.0.0.1:$HP"

rc=0
out=$(cd "$HOMEDIR" && HOME=$CPU_HOME timeout -k 5 120 "$CPU" -hostkeycheck=false -key "$W/client_ed25519" \
	-sp "$HP" 127.0.0.1 /bin/sh -c '
	echo "exe $(sha256sum /proc/1/exe | cut -d " " -f 1)"
	for m in /proc /sys /dev /tmp; do
		awk -v m="$m" "\$2 == m { print \"mnt\", \$2, \$3 }" /proc/1/mounts | head -n 1
	done
	echo "mods $(cut -d " " -f 1 /proc/modules | sort | tr "\n" " ")"
	echo from-the-init-guest > init.txt
	exit 7') || rc=$?
line() { sed -n "s/^$1 //p" <<<"$out" | head -n 1; }
[ "$(line exe)" = "$(sha_of "$CPUD")" ] && pass "PID 1 is our static cpud (sha256 of /proc/1/exe)" ||
	fail "PID 1: exe '$(line exe)', want $(sha_of "$CPUD"); output: $out"
[ "$(grep '^mnt ' <<<"$out" | tr '\n' ' ')" = "mnt /proc proc mnt /sys sysfs mnt /dev devtmpfs mnt /tmp tmpfs " ] &&
	pass "/proc, /sys, /dev, /tmp mounted by init" || fail "mounts: $(grep '^mnt ' <<<"$out" | tr '\n' ' ')"
case " $(line mods) " in
*" virtio_net "*" 9p "* | *" 9p "*" virtio_net "*) pass "init loaded the drivers of /etc/cpud/modules" ;;
*) fail "modules: '$(line mods)'" ;;
esac
[ "$(cat "$HOMEDIR/init.txt" 2>/dev/null)" = from-the-init-guest ] &&
	pass "a session with the 9P namespace writes into our cwd" || fail "init.txt: $(ls -l "$HOMEDIR")"
[ "$rc" = 7 ] && pass "exit status 7 comes back" || fail "exit status: $rc"
grep -q '^VM-READY' "$GLOG" && fail "the image's init script ran" || pass "the image's own init did not run"

# SIGTERM to PID 1: the daemon and its sessions end, the guest powers off.
qpid=$(cat "$GPID" 2>/dev/null || true)
# (From /: without the 9P namespace the remote cwd must exist there.)
(cd / && HOME=$CPU_HOME timeout -k 5 60 "$CPU" -9p=false -hostkeycheck=false -key "$W/client_ed25519" \
	-sp "$HP" 127.0.0.1 sh -c "kill -TERM 1" >"$W/kill.out" 2>&1) || true
i=0
while [ -n "$qpid" ] && kill -0 "$qpid" 2>/dev/null && [ $i -lt 300 ]; do
	sleep 0.1
	i=$((i + 1))
done
if [ -n "$qpid" ] && ! kill -0 "$qpid" 2>/dev/null && grep -q 'cpud: init: SIGTERM: stopping' "$GLOG"; then
	pass "SIGTERM to PID 1: the daemon stops and the guest powers off"
else
	fail "power off: qemu ${qpid:-?} $(kill -0 "$qpid" 2>/dev/null && echo still running); $(cat "$W/kill.out"); $(tail -n 5 "$GLOG" | tr '\n' '|')"
fi

echo "cpu-init: $PASSES passed, $FAILS failed"
[ "$FAILS" = 0 ]
