#!/usr/bin/env bash
# tests/scripts/cpu-guest.sh: the embedded case end to end. cpud is the
# service of a QEMU guest (../shared/vm, the kernel's 9p client), and cpu
# runs here through a forwarded port: the remote command runs in the guest
# with this machine's files mounted over its /bin, /lib, /usr, /etc, /home.
#
# The test's cwd is a fresh folder under /home (the default namespace
# binds /home), removed afterwards. CPU, CPUD: the binaries (default
# target/release/{cpu,cpud}). One PASS/FAIL line per case; exit 1 on any.
set -euo pipefail
# shellcheck source=ssh/lib.sh
. "$(dirname "$0")/ssh/lib.sh"

cpu_bins
ssh_init cpu-guest
# cpu learns host keys into ~/.ssh/known_hosts: it gets a home of its
# own (CPU_HOME), so the test leaves the real one alone. Only cpu: the VM
# harness keeps its cache under the real HOME.
CPU_HOME=$W/home
mkdir -p "$CPU_HOME"
guest_image >/dev/null
HOMEDIR=$(mktemp -d /home/cpu-rs-guest.XXXXXX)
GLOG=$W/guest.log
stop_guest() {
	"$VM_DIR/run-guest.sh" -S -l "$GLOG" >/dev/null 2>&1 || true
	rm -rf "$HOMEDIR"
}
CLEANUP_HOOKS+=(stop_guest)

HP=$(free_port)
cp "$W/host_ed25519" "$W/hk"
timeout 150 "$VM_DIR/run-guest.sh" -b -l "$GLOG" -p "$HP:17010" -T 900 \
	-a "$CPUD" -a "$W/hk:/etc/cpud/hk" -a "$W/authorized_keys:/etc/cpud/pk" \
	-r 'cpud: listening on' -- cpud -hk /etc/cpud/hk -pk /etc/cpud/pk >/dev/null ||
	{ fail "guest: cpud did not start"; tail -n 30 "$GLOG" >&2; exit 1; }
say "guest cpud on 127.0.0.1:$HP"

cpu_cmd() { # cpu_cmd [CPU_FLAGS...] -- CMD...
	local flags=()
	while [ "$1" != -- ]; do flags+=("$1"); shift; done
	shift
	(cd "$HOMEDIR" && HOME=$CPU_HOME timeout -k 5 "${CPU_TMO:-120}" "$CPU" -key "$W/client_ed25519" -sp "$HP" "${flags[@]}" 127.0.0.1 "$@")
}

out=$(cpu_cmd -- sh -c 'pwd; uname -n; echo data > out.txt') || true
[ "$out" = "$HOMEDIR"$'\n'"guest" ] && [ "$(cat "$HOMEDIR/out.txt" 2>/dev/null)" = data ] &&
	pass "remote runs in the guest, in our cwd, and writes here" || fail "cwd/write: got '$out'"

cpu_cmd -- dd if=/dev/urandom of=rom.img bs=1M count=8 2>/dev/null || true
[ "$(stat -c %s "$HOMEDIR/rom.img" 2>/dev/null)" = 8388608 ] &&
	pass "flashrom-like: rom.img lands in the local cwd" || fail "rom.img: $(ls -l "$HOMEDIR" | tr '\n' ' ')"

# The command starts in the client's cwd wherever it is (the kernel 9p
# path of cpu-cwd.sh): under /tmp (the guest's session /tmp is a private
# tmpfs), /tmp itself, under /home without a /home entry and at the top
# (the guest lacks the folder: its parent is shadowed in the session).
TD=$(mktemp -d /tmp/cpu-rs-guest-cwd.XXXXXX)
TN=cpu-rs-guest-cwd-$$-$RANDOM
drop_td() { rm -rf "$TD" "/tmp/$TN"; }
CLEANUP_HOOKS+=(drop_td)
cwd_cmd() { # cwd_cmd DIR CPU_ARGS...
	local d=$1
	shift
	(cd "$d" && HOME=$CPU_HOME timeout -k 5 60 "$CPU" -key "$W/client_ed25519" -sp "$HP" "$@")
}
rc=0
out=$(cwd_cmd "$TD" 127.0.0.1 sh -c 'echo data > rom.img; pwd') || rc=$?
[ "$rc" = 0 ] && [ "$out" = "$TD" ] && [ "$(cat "$TD/rom.img" 2>/dev/null)" = data ] &&
	pass "cwd under /tmp: the file lands in the local folder" || fail "cwd under /tmp: rc $rc, '$out'"
rc=0
out=$(cwd_cmd /tmp 127.0.0.1 sh -c "echo data > $TN; pwd") || rc=$?
[ "$rc" = 0 ] && [ "$out" = /tmp ] && [ "$(cat "/tmp/$TN" 2>/dev/null)" = data ] &&
	pass "cwd /tmp: the file lands in the local /tmp" || fail "cwd /tmp: rc $rc, '$out'"
rm -f "$HOMEDIR/rom.img"
rc=0
out=$(cwd_cmd "$HOMEDIR" -namespace /lib:/lib64:/usr:/bin:/etc 127.0.0.1 sh -c 'echo data > rom.img; pwd') || rc=$?
[ "$rc" = 0 ] && [ "$out" = "$HOMEDIR" ] && [ "$(cat "$HOMEDIR/rom.img" 2>/dev/null)" = data ] &&
	pass "cwd under /home the guest lacks: the file lands here" || fail "cwd the guest lacks: rc $rc, '$out'"
rm -f "$HOMEDIR/rom.img"
# At the top: the client serves a root of its own (-root $TD), in which
# the cwd is /$TN; the guest has no /$TN.
mkdir -p "$TD/$TN"
rc=0
out=$(cd "$TD/$TN" && PWD=/$TN HOME=$CPU_HOME timeout -k 5 60 "$CPU" -key "$W/client_ed25519" -sp "$HP" \
	-root "$TD" -namespace '' 127.0.0.1 sh -c 'echo data > rom.img; pwd') || rc=$?
[ "$rc" = 0 ] && [ "$out" = "/$TN" ] && [ "$(cat "$TD/$TN/rom.img" 2>/dev/null)" = data ] &&
	pass "cwd at the top the guest lacks: the file lands here" || fail "cwd at the top: rc $rc, '$out'"
drop_td

head -c 32M /dev/urandom >"$HOMEDIR/big.bin"
want=$(sha_of "$HOMEDIR/big.bin")
got=$(cpu_cmd -- sha256sum big.bin | cut -d' ' -f1) || true
[ "$got" = "$want" ] && pass "remote reads a 32 MiB local file (sha256)" || fail "sha256: $got != $want"
rm -f "$HOMEDIR/big.bin"

for code in 0 3 255; do
	rc=0
	cpu_cmd -- sh -c "exit $code" || rc=$?
	[ "$rc" = "$code" ] && pass "exit $code" || fail "exit $code: got $rc"
done
rc=0
cpu_cmd -- sh -c 'kill -TERM $$' || rc=$?
[ "$rc" = 143 ] && pass "killed command: 128+15" || fail "killed: got $rc"

out=$(printf 'line one\nline two\n' | cpu_cmd -- cat) || true
[ "$out" = $'line one\nline two' ] && pass "stdin" || fail "stdin: got '$out'"

# remote=local: a local folder with its own bin/ over the remote /bin.
mkdir -p "$HOMEDIR/tree/bin"
printf '#!/usr/bin/sh\necho hello from the local tree\n' >"$HOMEDIR/tree/bin/hello"
chmod 755 "$HOMEDIR/tree/bin/hello"
out=$(cpu_cmd -namespace "/lib:/lib64:/usr:/etc:/home:/bin=$HOMEDIR/tree/bin" -- /bin/hello) || true
[ "$out" = "hello from the local tree" ] && pass "-namespace remote=local over /bin" || fail "namespace: got '$out'"

# A signal to cpu reaches the remote command.
rm -f "$HOMEDIR/started"
(cd "$HOMEDIR" && HOME=$CPU_HOME exec timeout -k 5 120 "$CPU" -key "$W/client_ed25519" -sp "$HP" 127.0.0.1 \
	sh -c 'echo up > started; exec sleep 100') &
CPID=$!
n=0
until [ -s "$HOMEDIR/started" ] || [ $n -ge 300 ]; do sleep 0.1; n=$((n + 1)); done
if [ -s "$HOMEDIR/started" ]; then
	pkill -INT -P "$CPID" -x cpu || kill -INT "$CPID"
	rc=0
	wait "$CPID" || rc=$?
	[ "$rc" = 130 ] && pass "SIGINT reaches the remote command (exit 130)" || fail "SIGINT: exit $rc"
else
	fail "SIGINT: the remote command never started"
	kill "$CPID" 2>/dev/null || true
fi

rc=0
(cd "$HOMEDIR" && HOME=$CPU_HOME timeout 60 "$CPU" -key "$W/wrong_ed25519" -sp "$HP" 127.0.0.1 true) 2>"$W/wrong.err" || rc=$?
[ "$rc" = 253 ] && pass "wrong key refused (253)" || fail "wrong key: got $rc: $(cat "$W/wrong.err")"

# A container image as the namespace, without Docker: a Debian 13 root
# (the OpenSSH 10 peer's debootstrap tree) entered as a runtime does
# (private mount, pid and uts namespaces, then chroot), with our cpu as
# its entrypoint: no HOME, no USER, no ssh_config, the key by flag only.
# The board (the guest, busybox only) must run the image's binaries.
IMG_ROOT=$("$OPENSSH10" root 2>/dev/null || true)
# The static (musl) cpu, as an image would carry it, when that target is
# available; else the dynamic one (the image's glibc is newer).
SCPU=$CPU
MT=x86_64-unknown-linux-musl
if rustup target list --installed 2>/dev/null | grep -qx "$MT"; then
	if (cd "$REPO" && cargo build -q --release --target "$MT" -p cpu-bins $(runtime_features) --bin cpu) 2>"$W/musl.err"; then
		SCPU=$REPO/target/$MT/release/cpu
	else
		fail "static cpu ($MT) does not build: $(grep -m 3 -A 3 '^error' "$W/musl.err")"
	fi
fi
if [ -n "$IMG_ROOT" ] && [ -f "$IMG_ROOT/etc/debian_version" ]; then
	cat >"$W/image-entry.sh" <<ENTRY
set -e
mount -t tmpfs -o mode=755 tmpfs "$IMG_ROOT/mnt"
cp "$SCPU" "$IMG_ROOT/mnt/cpu"
cp "$W/client_ed25519" "$IMG_ROOT/mnt/key"
chown 4242:4242 "$IMG_ROOT/mnt/key"
mount -t proc proc "$IMG_ROOT/proc"
mount --rbind /dev "$IMG_ROOT/dev"
hostname cpu-image
cd "$IMG_ROOT"
# AS_UID: a user the image's /etc/passwd does not know.
if [ -n "\${AS_UID:-}" ]; then
	exec env -i PATH=/usr/bin:/bin "$(command -v chroot)" "$IMG_ROOT" \
		/usr/bin/setpriv --reuid=\$AS_UID --regid=\$AS_UID --clear-groups /mnt/cpu "\$@"
fi
exec env -i PATH=/usr/bin:/bin "$(command -v chroot)" "$IMG_ROOT" /mnt/cpu "\$@"
ENTRY
	image_cpu() { timeout -k 5 120 unshare --mount --propagation private --pid --uts --fork bash "$W/image-entry.sh" "$@"; }
	want_deb=$(cat "$IMG_ROOT/etc/debian_version")
	out=$(image_cpu -key /mnt/key -hostkeycheck=false -sp "$HP" -namespace /lib:/lib64:/usr:/bin:/etc 127.0.0.1 \
		sh -c 'cat /etc/debian_version; bash -c "echo bash \$BASH_VERSION"' 2>"$W/image.err") || true
	[ "$(sed -n 1p <<<"$out")" = "$want_deb" ] && case $(sed -n 2p <<<"$out") in "bash 5."*) true ;; *) false ;; esac &&
		pass "image as namespace: the board runs the Debian $want_deb image's binaries (cpu $(file -b "$SCPU" | grep -o 'static-pie linked\|statically linked\|dynamically linked'))" ||
		fail "image: got '$out' $(cat "$W/image.err")"
	out=$(AS_UID=4242 image_cpu -key /mnt/key -hostkeycheck=false -sp "$HP" -namespace /lib:/lib64:/usr:/bin:/etc \
		127.0.0.1 cat /etc/debian_version 2>"$W/image-uid.err") || true
	! grep -q 4242 "$IMG_ROOT/etc/passwd" && [ "$out" = "$want_deb" ] &&
		pass "image: a user with no passwd entry (uid 4242) runs cpu" ||
		fail "image uid 4242: got '$out' $(cat "$W/image-uid.err")"
	rc=0
	image_cpu -key /mnt/key -sp "$HP" 127.0.0.1 true 2>"$W/image-nohome.err" || rc=$?
	[ "$rc" = 2 ] && grep -q 'no \$HOME' "$W/image-nohome.err" && [ "$(wc -l <"$W/image-nohome.err")" -le 2 ] &&
		pass "image without HOME: one clear line (2)" || fail "image without HOME: $rc $(cat "$W/image-nohome.err")"
	rc=0
	image_cpu -hostkeycheck=false -sp "$HP" 127.0.0.1 true 2>"$W/image-nokey.err" || rc=$?
	[ "$rc" = 2 ] && grep -q 'no key' "$W/image-nokey.err" &&
		pass "image without keys: one clear line (2)" || fail "image without keys: $rc $(cat "$W/image-nokey.err")"
else
	skip "no Debian 13 root (OpenSSH 10 peer): image case"
fi

# vsock: cpud and cpu both in a second guest, over vsock_loopback (CID 1),
# with the 9P file service of cpu in the guest mounted by the guest kernel.
"$VM_DIR/run-guest.sh" -S -l "$GLOG" >/dev/null 2>&1 || true
cat >"$W/vsock-test.sh" <<'GUEST'
mkdir -p /home/v /tmp/h && cd /home/v || exit 1
cpud -net vsock -sp 17011 -hk /etc/cpud/hk -pk /etc/cpud/pk 2>/tmp/cpud.err &
i=0
until grep -q 'listening on vsock:17011' /tmp/cpud.err; do
	i=$((i + 1)); [ $i -gt 300 ] && { cat /tmp/cpud.err; exit 1; }; sleep 0.1
done
c() { HOME=/tmp/h cpu -key /etc/cpud/key -hostkeycheck=false -net vsock "$@"; }
echo "V1 $(c -sp 17011 1 sh -c 'pwd; echo vsock-data > out.txt' | tr '\n' ' ')"
echo "V2 $(cat /home/v/out.txt)"
# The port in hex, parsed as the reference parses it (base prefixes).
echo "V3 $(c -sp 0x4273 0x1 echo hex-ok)"
c -sp 17011 1 sh -c 'exit 7'; echo "V4 $?"
c -sp 17099 1 true 2>/tmp/nobody.err; echo "V5 $? $(head -c 200 /tmp/nobody.err)"
# cpud as PID 1 of a pid namespace where /proc, /sys and /tmp are not
# mounted: init mounts them, and a session with the file service works.
unshare -m -p -f sh -c 'umount -l /proc; umount -l /sys; umount -l /tmp;
	exec cpud -d -net vsock -sp 17012 -hk /etc/cpud/hk -pk /etc/cpud/pk' 2>/tmp/init.err &
i=0
until grep -q 'listening on vsock:17012' /tmp/init.err; do
	i=$((i + 1)); [ $i -gt 300 ] && { cat /tmp/init.err; break; }; sleep 0.1
done
echo "V6 $(grep -c 'init: mounted' /tmp/init.err) $(c -sp 17012 1 sh -c 'tr "\0" " " </proc/1/cmdline; cat out.txt')"
# A kernel without vsock: every cpud gone, the modules unloaded (polled:
# closed sockets may hold them a moment).
kill $(pidof cpud) 2>/dev/null
i=0
while [ $i -lt 50 ]; do
	for m in vsock_loopback vmw_vsock_virtio_transport vmw_vsock_virtio_transport_common vsock; do
		rmmod $m 2>/dev/null
	done
	grep -q '^vsock ' /proc/modules || break
	i=$((i + 1)); sleep 0.1
done
if grep -q '^vsock ' /proc/modules; then
	echo "V7 modules-busy"
else
	cpud -net vsock -sp 17013 -hk /etc/cpud/hk -pk /etc/cpud/pk 2>/tmp/novsock.err; r1=$?
	c -sp 17011 1 true 2>/tmp/novsock2.err; r2=$?
	echo "V7 $r1 $r2 $(cat /tmp/novsock.err /tmp/novsock2.err | tr '\n' '|')"
fi
GUEST
VLOG=$W/vsock-guest.log
timeout 180 "$VM_DIR/run-guest.sh" -l "$VLOG" -T 170 \
	-a "$CPUD" -a "$CPU" -a "$W/hk:/etc/cpud/hk" -a "$W/authorized_keys:/etc/cpud/pk" \
	-a "$W/client_ed25519:/etc/cpud/key" -a "$W/vsock-test.sh:/vsock-test.sh" \
	-- sh /vsock-test.sh >/dev/null 2>&1 || true
vline() { sed -n "s/^$1 //p" "$VLOG" | tr -d '\r' | head -1; }
[ "$(vline V1)" = "/home/v " ] && [ "$(vline V2)" = vsock-data ] &&
	pass "vsock: cpu and cpud over vsock, the 9P mount and a write round-trip" ||
	fail "vsock: got '$(vline V1)' '$(vline V2)'; $(tail -n 15 "$VLOG" | tr '\n' '|')"
[ "$(vline V3)" = hex-ok ] && pass "vsock: -sp and CID in Go's base-0 syntax" || fail "vsock hex: '$(vline V3)'"
[ "$(vline V4)" = 7 ] && pass "vsock: exit status" || fail "vsock status: '$(vline V4)'"
case $(vline V6) in
"3 cpud -d -net vsock -sp 17012 "*vsock-data) pass "vsock: cpud as PID 1 mounts /proc, /sys, /tmp and serves" ;;
*) fail "PID 1 in the guest: '$(vline V6)'" ;;
esac
case $(vline V7) in
"1 254 "*"cpud: listen on 17013: this kernel has no vsock"*"|cpu: cannot connect to vsock 1:17011: this kernel has no vsock"*)
	pass "no vsock in the kernel: one clear line from cpud (1) and cpu (254)" ;;
*) fail "no vsock: '$(vline V7)'" ;;
esac
case $(vline V5) in
"254 cpu: cannot connect to vsock 1:17099"*) pass "vsock: nobody listening: 254 and one line" ;;
*) fail "vsock refused: '$(vline V5)'" ;;
esac

echo "cpu-guest: $PASSES passed, $FAILS failed"
[ "$FAILS" = 0 ]
