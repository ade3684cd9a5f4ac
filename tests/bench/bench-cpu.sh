#!/bin/bash
# bench-cpu.sh: cpu against ssh on 127.0.0.1, both measured in this run.
#
#   true   `cpu host true` vs `ssh host true` (a throwaway OpenSSH sshd,
#          which runs the command through the user's login shell):
#          median of BENCH_CPU_RUNS runs, ms. cpu's includes the 9P mount
#          and the namespace (on this kernel, through FUSE).
#   cat    a BENCH_CPU_CAT-byte local file read by the remote through
#          /tmp/cpu (`cpu host cat f`) vs `ssh host cat f` (sshd reads the
#          same file from disk): MiB/s, median of 3.
#   tar    `tar cf - tree` of BENCH_CPU_FILES small local files, through
#          /tmp/cpu vs ssh: seconds, median of 3.
# Ratios: cpu / ssh (throughput: > 1 is faster; times: < 1 is faster).
# CPU, CPUD: the binaries (default target/release/{cpu,cpud}). Runs as root
# (namespaces); the files live in a fresh folder under /home, removed after.
set -euo pipefail
. "$(dirname "$0")/../scripts/ssh/lib.sh"

cpu_bins
RUNS=${BENCH_CPU_RUNS:-20}
CAT_BYTES=$(numfmt --from=iec "${BENCH_CPU_CAT:-256M}")
FILES=${BENCH_CPU_FILES:-10000}
ssh_init bench-cpu
HD=$(mktemp -d /home/cpu-rs-bench.XXXXXX)
drop_hd() { rm -rf "$HD"; }
CLEANUP_HOOKS+=(drop_hd)

start_openssh_sshd bench-osshd || exit 1
SSHD_PORT=$SPORT
start_cpud cpud || exit 1
CPUD_PORT=$CPORT

run_cpu() { (cd "$HD" && timeout -k 5 900 "$CPU" -hostkeycheck=false -key "$W/client_ed25519" -sp "$CPUD_PORT" 127.0.0.1 "$@"); }
run_ssh() { (cd "$HD" && SSH_TMO=900 ossh "$SSHD_PORT" -- "cd $HD && $*"); }

say "latency: $RUNS runs each"
cpu_true=$(for _ in $(seq "$RUNS"); do secs_of run_cpu true; done | median)
ssh_true=$(for _ in $(seq "$RUNS"); do secs_of run_ssh true; done | median)

head -c "$CAT_BYTES" /dev/urandom >"$HD/big.bin"
say "cat: $((CAT_BYTES / 1048576)) MiB, 3 rounds"
cpu_cat=$(for _ in 1 2 3; do secs_of run_cpu cat big.bin; done | median)
ssh_cat=$(for _ in 1 2 3; do secs_of run_ssh cat big.bin; done | median)
rm -f "$HD/big.bin"

mkdir -p "$HD/tree"
for d in $(seq 0 99); do
	mkdir -p "$HD/tree/d$d"
	for f in $(seq 0 $((FILES / 100 - 1))); do echo "file $d/$f" >"$HD/tree/d$d/f$f"; done
done
say "tar: $FILES files, 3 rounds"
cpu_tar=$(for _ in 1 2 3; do secs_of run_cpu tar cf - tree; done | median)
ssh_tar=$(for _ in 1 2 3; do secs_of run_ssh tar cf - tree; done | median)

awk -v ct="$cpu_true" -v st="$ssh_true" -v cc="$cpu_cat" -v sc="$ssh_cat" -v mib="$((CAT_BYTES / 1048576))" \
	-v cx="$cpu_tar" -v sx="$ssh_tar" -v files="$FILES" 'BEGIN {
	printf "cpu vs ssh on 127.0.0.1 (medians)\n"
	printf "%-28s %12s %12s %8s\n", "measure", "cpu", "ssh", "cpu/ssh"
	printf "%-28s %12.1f %12.1f %8.2f\n", "true (ms)", ct * 1000, st * 1000, ct / st
	printf "%-28s %12.1f %12.1f %8.2f\n", "cat " mib " MiB (MiB/s)", mib / cc, mib / sc, (mib / cc) / (mib / sc)
	printf "%-28s %12.2f %12.2f %8.2f\n", "tar " files " files (s)", cx, sx, cx / sx
}'
