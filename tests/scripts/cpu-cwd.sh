#!/usr/bin/env bash
# tests/scripts/cpu-cwd.sh: the command of a cpu session starts in the
# client's own directory, wherever that is (issue 12 point 4). Our cpu
# against our cpud on 127.0.0.1; cpud runs in a private mount namespace
# (the "board") where a tmpfs covers the test's folder under /home, so
# the board has its own, empty directory of that path, as a real board
# would. This kernel has no 9p: cpud mounts the client's files through
# FUSE (the kernel 9p path: the /tmp case in cpu-guest.sh).
#
# Cases: a cwd under /home that the board has (its own) and one it lacks,
# a top-level one it lacks (the client serves a root of its own, -root),
# a cwd under /tmp, /tmp itself, /, a cwd reached through an absolute
# symlink; the namespace entries that already serve the cwd; and a
# session without 9P, which keeps the reference's rule. Each file must
# land in the local directory with exit status 0, and nothing may be left
# on the board.
#
# CPU, CPUD: the binaries (default target/release/{cpu,cpud}).
set -euo pipefail
# shellcheck source=ssh/lib.sh
. "$(dirname "$0")/ssh/lib.sh"

cpu_bins
fuse_usable() { [ -c /dev/fuse ] && (exec 3<>/dev/fuse) 2>/dev/null; }
if ! fuse_usable || grep -qw 9p /proc/filesystems; then
	echo "SKIP: no /dev/fuse, or this kernel has 9p (the guest covers it)"
	exit 0
fi
ssh_init cpu-cwd
HB=$(mktemp -d /home/cpu-rs-cwd.XXXXXX)
TMPNAME=cpu-rs-cwd-$$-$RANDOM
drop_dirs() { rm -rf "$HB" "/tmp/$TMPNAME"; }
CLEANUP_HOOKS+=(drop_dirs)
chmod 755 "$HB"

# The board: its own (empty) $HB, a tmpfs of this namespace only.
CPUD_STATE_DIR=$W/state unshare --mount --propagation private \
	sh -c 'mount -t tmpfs cpu-rs-board "$0" && exec "$@"' "$HB" \
	"$CPUD" -sp 0 -addr 127.0.0.1 -pk "$W/authorized_keys" -hk "$W/host_ed25519" \
	>"$W/cpud.out" 2>"$W/cpud.err" </dev/null &
BPID=$!
track "$BPID"
line=$(wait_line "$W/cpud.err" 'listening on 127\.0\.0\.1:[0-9]+' "$BPID" 20) ||
	{ fail "cpud did not listen: $(cat "$W/cpud.err")"; exit 1; }
PORT=$(sed -n 's/.*listening on 127\.0\.0\.1:\([0-9][0-9]*\).*/\1/p' <<<"$line")
board() { timeout 10 nsenter -t "$BPID" -m "$@"; }

mkdir -p "$W/home"
# Without /home: the binds the session needs to run sh, and nothing
# that serves the test's folders.
NS=/lib:/lib64:/usr:/bin:/etc
# in DIR [CPU_FLAGS...] -- CMD...: cpu from DIR.
in_dir() {
	local dir=$1 flags=()
	shift
	while [ "$1" != -- ]; do flags+=("$1"); shift; done
	shift
	(cd "$dir" && HOME=$W/home timeout -k 5 60 "$CPU" -hostkeycheck=false -key "$W/client_ed25519" \
		-sp "$PORT" "${flags[@]}" 127.0.0.1 "$@")
}
# lands NAME DIR OUT RC WANT_PWD: the session printed WANT_PWD, ended 0,
# and DIR/rom.img holds "data" here.
lands() {
	local name=$1 dir=$2 out=$3 rc=$4 want=$5
	if [ "$rc" = 0 ] && [ "$out" = "$want" ] && [ "$(cat "$dir/rom.img" 2>/dev/null)" = data ]; then
		pass "$name"
	else
		fail "$name: rc $rc, pwd '$out' (want '$want'), rom.img: $(cat "$dir/rom.img" 2>&1)"
	fi
	rm -f "$dir/rom.img"
}
WRITE='echo data > rom.img && pwd'

# The board has this directory, its own: the client's is bound over it.
rc=0
out=$(in_dir "$HB" -namespace "$NS" -- sh -c "$WRITE") || rc=$?
lands "cwd under /home that the board has: bound from the client" "$HB" "$out" "$rc" "$HB"
[ -z "$(board ls -A "$HB")" ] && pass "the board's own $HB untouched" ||
	fail "board's $HB: $(board ls -A "$HB" | tr '\n' ' ')"

# The board lacks it, and its parent is the board's own file system: the
# parent is shadowed in the session by a tmpfs of binds, so nothing is
# written on the board, and the rest of it stays in view.
mkdir -p "$HB/sub/deep"
board sh -c "echo board-$$ > $HB/board-file"
rc=0
out=$(in_dir "$HB/sub/deep" -namespace "$NS" -- sh -c "$WRITE && cat $HB/board-file") || rc=$?
lands "cwd under /home the board lacks: bound over a mount point of the session" "$HB/sub/deep" "$out" "$rc" \
	"$HB/sub/deep"$'\n'"board-$$"
[ "$(board ls -A "$HB")" = board-file ] && pass "no directory left behind on the board" ||
	fail "left on the board: $(board ls -A "$HB" | tr '\n' ' ')"
board rm -f "$HB/board-file"

# A directory too big to shadow (more than 1024 entries): the command
# starts in the client's directory through the mount, with one warning.
board sh -c "cd $HB && seq 1025 | xargs touch"
rc=0
out=$(in_dir "$HB/sub/deep" -namespace "$NS" -- sh -c "$WRITE" 2>"$W/big.err") || rc=$?
lands "cwd under a directory too big to shadow: starts in /tmp/cpu\$PWD" "$HB/sub/deep" "$out" "$rc" \
	"/tmp/cpu$HB/sub/deep"
grep -q "warning: making the mount point $HB/sub/deep: $HB has 1025 entries" "$W/big.err" &&
	[ "$(board ls -A "$HB" | wc -l)" = 1025 ] && pass "too big to shadow: one warning, nothing left behind" ||
	fail "too big to shadow: $(cat "$W/big.err") / $(board ls -A "$HB" | wc -l) entries"
board sh -c "cd $HB && seq 1025 | xargs rm -f"

# A PWD the client does not have: a warning, then the reference's rule.
rc=0
out=$(cd "$HB" && PWD=/cpu-rs-cwd-nowhere-$$ HOME=$W/home timeout -k 5 60 "$CPU" -hostkeycheck=false \
	-key "$W/client_ed25519" -sp "$PORT" -namespace "$NS" 127.0.0.1 true 2>"$W/nowhere.err") || rc=$?
[ "$rc" = 1 ] && grep -q "cannot be reached through the 9P mount" "$W/nowhere.err" &&
	grep -q "is not in the remote namespace" "$W/nowhere.err" &&
	pass "a PWD the client lacks: a warning, then refused (1)" || fail "PWD the client lacks: rc $rc: $(cat "$W/nowhere.err")"

# A top-level directory the board lacks: / is shadowed, as the session's
# root. The client serves a root of its own (-root), in which the cwd is
# /$TOP/x; the board has no /$TOP.
R=$W/root
TOP=cpu-rs-cwd-top-$$-$RANDOM
mkdir -p "$R/$TOP/x"
rc=0
out=$(cd "$R/$TOP/x" && PWD=/$TOP/x HOME=$W/home timeout -k 5 60 "$CPU" -hostkeycheck=false \
	-key "$W/client_ed25519" -sp "$PORT" -root "$R" -namespace '' 127.0.0.1 \
	sh -c "$WRITE && test -r /proc/self/status && test -d /tmp/cpu/$TOP && echo ok") || rc=$?
lands "cwd at the top the board lacks: / shadowed, the board's tree in view" "$R/$TOP/x" "$out" "$rc" "/$TOP/x"$'\n'ok
board test ! -e "/$TOP" && [ ! -e "/$TOP" ] && pass "nothing made in the board's /" || fail "/$TOP made on the board"

# Under /tmp: the session's /tmp is a private tmpfs; the mount point is
# made there and the client's directory bound over it.
T=$(mktemp -d "$W/cwd.XXXXXX")
mkdir -p "$T/a b"
rc=0
out=$(in_dir "$T/a b" -- sh -c "$WRITE") || rc=$?
lands "cwd under /tmp: bound from the client" "$T/a b" "$out" "$rc" "$T/a b"

# /tmp itself: the client's /tmp over the session's.
rc=0
out=$(in_dir /tmp -- sh -c "echo data > $TMPNAME && pwd") || rc=$?
if [ "$rc" = 0 ] && [ "$out" = /tmp ] && [ "$(cat "/tmp/$TMPNAME" 2>/dev/null)" = data ]; then
	pass "cwd /tmp: the file lands in the local /tmp"
else
	fail "cwd /tmp: rc $rc, pwd '$out', file: $(cat "/tmp/$TMPNAME" 2>&1)"
fi
rm -f "/tmp/$TMPNAME"

# /: a mount over the root is invisible; the command starts in the
# client's root, /tmp/cpu. The marker exists only in the client's $HB.
echo marker-$$ >"$HB/marker"
rc=0
out=$(in_dir / -namespace "$NS" -- sh -c "pwd; cat ${HB#/}/marker") || rc=$?
[ "$rc" = 0 ] && [ "$out" = $'/tmp/cpu\nmarker-'$$ ] && pass "cwd /: starts in the client's root (/tmp/cpu)" ||
	fail "cwd /: rc $rc, got '$out'"

# An absolute symlink in the client's path leads to the client's target,
# not the board's (there, $HB is the board's empty tmpfs).
ln -s "$HB" "$T/link"
rc=0
out=$(in_dir "$T/link" -namespace "$NS" -- sh -c "$WRITE") || rc=$?
lands "cwd through an absolute symlink: the client's target" "$HB" "$out" "$rc" "$T/link"

# The default namespace binds /home: that entry serves the cwd already.
rc=0
out=$(in_dir "$HB" -- sh -c "$WRITE") || rc=$?
lands "cwd served by the default namespace's /home" "$HB" "$out" "$rc" "$HB"
# An entry T=S over the cwd is the user's choice of what T is: the
# command writes into the client's S.
mkdir -p "$T/mapped"
rc=0
out=$(in_dir "$HB" -namespace "$NS:$HB=$T/mapped" -- sh -c "$WRITE") || rc=$?
[ ! -e "$HB/rom.img" ] && lands "cwd served by a T=S entry: the client's S" "$T/mapped" "$out" "$rc" "$HB" ||
	fail "T=S entry: rom.img went to $HB"

# Without 9P nothing is mounted: the reference's rule, a cwd the board
# lacks is refused.
rc=0
in_dir "$HB/sub" -9p=false -- true 2>"$W/no9p.err" || rc=$?
[ "$rc" = 1 ] && grep -q "is not in the remote namespace" "$W/no9p.err" &&
	pass "-9p=false: a cwd the board lacks is refused (1)" || fail "-9p=false: rc $rc: $(cat "$W/no9p.err")"

echo "cpu-cwd: $PASSES passed, $FAILS failed"
[ "$FAILS" = 0 ]
