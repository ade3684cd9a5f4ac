#!/bin/bash
# bench-runtimes.sh: cpu and cpud built on runtime-std (blocking threads)
# against the same built on runtime-smol, measured in this run, on
# 127.0.0.1 (the file service through FUSE on a kernel without 9p):
#
#   cat      one session: `cpu host cat f` of a BENCH_RT_CAT-byte local
#            file read by the remote through /tmp/cpu: MiB/s, median of 3.
#   start    BENCH_RT_SESSIONS (200) sessions started at once, each up
#            when its command has created a file through /tmp/cpu:
#            sessions per second until the last is up.
#   rss      cpud's resident memory (VmRSS, KiB): the daemon idle, the
#            daemon with the sessions open, and the daemon together with
#            its session children (each holds a 9P mount).
#
# Ratios: smol / std. Builds both (into target/bench-std, bench-smol). Runs as
# root (namespaces); files in a fresh folder under /home, removed after.
set -euo pipefail
REPO=$(cd "$(dirname "$0")/../.." && pwd)
cd "$REPO"
BINS="--bin cpu --bin cpud"
# BENCH_RT_TARGET (e.g. x86_64-unknown-linux-musl): the static builds a
# board runs, rather than this machine's default target.
T=${BENCH_RT_TARGET:-}
OUT=target/release TARGET=()
[ -n "$T" ] && OUT=target/$T/release TARGET=(--target "$T")
cargo build -q --release "${TARGET[@]}" -p cpu-bins --features runtime-smol $BINS
mkdir -p target/bench-smol target/bench-std
cp "$OUT/cpu" "$OUT/cpud" target/bench-smol/
cargo build -q --release "${TARGET[@]}" -p cpu-bins $BINS
cp "$OUT/cpu" "$OUT/cpud" target/bench-std/
cmp -s target/bench-std/cpud target/bench-smol/cpud && { echo "the two builds are the same binary" >&2; exit 1; }

. "$REPO/tests/scripts/ssh/lib.sh"
N=${BENCH_RT_SESSIONS:-200}
CAT_BYTES=$(numfmt --from=iec "${BENCH_RT_CAT:-256M}")
ssh_init bench-runtimes
HD=$(mktemp -d /home/cpu-rs-bench-rt.XXXXXX)
drop_hd() { rm -rf "$HD"; }
CLEANUP_HOOKS+=(drop_hd)
head -c "$CAT_BYTES" /dev/urandom >"$HD/big.bin"

rss() { awk '/^VmRSS/ { print $2 }' "/proc/$1/status" 2>/dev/null || echo 0; }
run_cpu() { (cd "$HD" && HOME=$W/home exec timeout -k 5 600 "$CPU" -hostkeycheck=false -key "$W/client_ed25519" -sp "$CPORT" 127.0.0.1 "$@"); }

# measure RT: prints "cat_mibs sessions_per_s idle_kib busy_kib total_kib".
measure() {
	local rt=$1 dir i n pids=() t0 t1 up busy total c
	dir=$REPO/target/bench-$rt
	CPU=$dir/cpu CPUD=$dir/cpud
	start_cpud "cpud-$rt" -hk "$W/host_ed25519" -maxStartups $((N + 16)) >&2 || return 1
	idle=$(rss "$CPID")
	local cat_s
	cat_s=$(for _ in 1 2 3; do secs_of run_cpu cat big.bin; done | median)
	rm -f "$HD"/up.* "$W/gate"
	mkfifo "$W/gate"
	# Each session waits on stdin, a fifo whose only writer we hold: it is
	# opened once every cpu is started, so that none of them inherits it
	# (each open for reading waits for it), and closing it ends them all.
	t0=$(now)
	for i in $(seq 1 "$N"); do
		run_cpu sh -c "touch up.$i; read x" <"$W/gate" >/dev/null 2>"$W/err-$rt-$i" &
		pids+=($!)
	done
	exec 9<>"$W/gate"
	n=0
	until [ "$(find "$HD" -maxdepth 1 -name 'up.*' | wc -l)" -ge "$N" ] || [ $n -ge 3000 ]; do
		sleep 0.1
		n=$((n + 1))
	done
	t1=$(now)
	up=$(find "$HD" -maxdepth 1 -name 'up.*' | wc -l)
	busy=$(rss "$CPID")
	total=$busy
	for c in $(pgrep -P "$CPID"); do total=$((total + $(rss "$c"))); done
	exec 9>&-
	for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
	kill "$CPID" 2>/dev/null || true
	wait "$CPID" 2>/dev/null || true
	[ "$up" -ge "$N" ] || { echo "$rt: only $up of $N sessions came up" >&2; return 1; }
	awk -v mib="$((CAT_BYTES / 1048576))" -v c="$cat_s" -v n="$N" -v a="$t0" -v b="$t1" \
		-v i="$idle" -v bu="$busy" -v t="$total" 'BEGIN { printf "%.1f %.1f %d %d %d\n", mib / c, n / (b - a), i, bu, t }'
}

read -r s_cat s_start s_idle s_busy s_total < <(measure std)
read -r m_cat m_start m_idle m_busy m_total < <(measure smol)
awk -v sc="$s_cat" -v ss="$s_start" -v si="$s_idle" -v sb="$s_busy" -v st="$s_total" \
	-v mc="$m_cat" -v ms="$m_start" -v mi="$m_idle" -v mb="$m_busy" -v mt="$m_total" -v n="$N" \
	-v mib="$((CAT_BYTES / 1048576))" 'BEGIN {
	printf "runtime-std vs runtime-smol, cpu and cpud on 127.0.0.1\n"
	printf "%-40s %10s %10s %10s\n", "measure", "std", "smol", "smol/std"
	printf "%-40s %10.1f %10.1f %10.2f\n", "cat " mib " MiB, one session (MiB/s)", sc, mc, mc / sc
	printf "%-40s %10.1f %10.1f %10.2f\n", n " sessions started (sessions/s)", ss, ms, ms / ss
	printf "%-40s %10d %10d %10.2f\n", "cpud daemon idle (KiB)", si, mi, mi / si
	printf "%-40s %10d %10d %10.2f\n", "cpud daemon, " n " sessions (KiB)", sb, mb, mb / sb
	printf "%-40s %10d %10d %10.2f\n", "cpud + session children (KiB)", st, mt, mt / st
}'
