#!/usr/bin/env bash
# tests/demo-cpu.sh: the main job on one machine. Builds cpu and cpud,
# makes keys under target/demo/, starts cpud on 127.0.0.1 in a private
# mount namespace, and runs a remote command through cpu that writes
# cpu-demo.txt into the current directory (served back over 9P; on a
# kernel without 9p, through FUSE). Needs root (namespaces, mounts).
# Everything it starts is stopped on exit.
set -euo pipefail
REPO=$(cd "$(dirname "$0")/.." && pwd)
cd "$REPO"
command -v ssh-keygen >/dev/null ||
	DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends openssh-client
cargo build --release -p cpu-bins --bin cpu --bin cpud
TGT=${CARGO_TARGET_DIR:-$REPO/target}
D=$TGT/demo
mkdir -p "$D"
[ -f "$D/host" ] || ssh-keygen -q -t ed25519 -N '' -C cpu-demo-host -f "$D/host"
[ -f "$D/user" ] || ssh-keygen -q -t ed25519 -N '' -C cpu-demo-user -f "$D/user"
cp "$D/user.pub" "$D/authorized_keys"
CPUD_STATE_DIR=$D unshare --mount --propagation private \
	"$TGT/release/cpud" -sp 0 -addr 127.0.0.1 -hk "$D/host" -pk "$D/authorized_keys" 2>"$D/cpud.log" &
CPUD_PID=$!
trap 'kill "$CPUD_PID" 2>/dev/null; wait "$CPUD_PID" 2>/dev/null || true' EXIT
port=''
for _ in $(seq 1 100); do
	port=$(sed -n 's/.*listening on 127\.0\.0\.1:\([0-9]*\).*/\1/p' "$D/cpud.log")
	[ -n "$port" ] && break
	kill -0 "$CPUD_PID" 2>/dev/null || { cat "$D/cpud.log"; exit 1; }
	sleep 0.1
done
[ -n "$port" ] || { echo "cpud did not start"; cat "$D/cpud.log"; exit 1; }
echo "cpud listening on 127.0.0.1:$port"
# The current directory is added to the namespace so that the remote
# command starts in it.
"$TGT/release/cpu" -key "$D/user" -hostkeycheck=false -sp "$port" \
	-namespace "/lib:/lib64:/usr:/bin:/etc:/home:$PWD" 127.0.0.1 \
	sh -c 'echo "written by the remote command on $(uname -n), in $(pwd)" > cpu-demo.txt'
echo "cpu-demo.txt, here:"
cat cpu-demo.txt
