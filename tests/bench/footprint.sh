#!/bin/bash
# footprint.sh: what cpud and cpu cost a small board, measured in this run.
#
#   size   stripped static binaries (x86_64-unknown-linux-musl), against the
#          budget of 1.5 MB for cpud; the dynamic glibc build beside them.
#   rss    cpud's resident memory (VmRSS): idle after start, and with one
#          cpu session open (the daemon, and the session child with the
#          9P mount, through FUSE on a kernel without 9p).
#   top    the crates that take the most room in cpud (symbol sizes of an
#          unstripped build; "[non-Rust]" is musl's libc and the like).
#
# Builds what it needs; runs as root (namespaces). FOOTPRINT_TOP=N rows.
set -euo pipefail
REPO=$(cd "$(dirname "$0")/../.." && pwd)
cd "$REPO"
T=x86_64-unknown-linux-musl
BUDGET=1500000
rustup target list --installed | grep -qx "$T" || rustup target add "$T"
cargo build -q --release --target "$T" -p cpu-bins --bin cpud --bin cpu
cargo build -q --release -p cpu-bins --bin cpud --bin cpu
size_of() { stat -c %s "$1"; }
printf '%-28s %10s\n' binary bytes
for b in cpud cpu; do
	printf '%-28s %10d\n' "static musl $b" "$(size_of "target/$T/release/$b")"
	printf '%-28s %10d\n' "dynamic glibc $b" "$(size_of "target/release/$b")"
done
s=$(size_of "target/$T/release/cpud")
awk -v s="$s" -v b="$BUDGET" 'BEGIN { printf "static cpud / budget (1.5 MB): %.3f %s\n", s / b, (s <= b ? "within" : "OVER") }'

# Resident memory, with the static binaries.
export CPU=$REPO/target/$T/release/cpu CPUD=$REPO/target/$T/release/cpud
. "$REPO/tests/scripts/ssh/lib.sh"
cpu_bins
ssh_init footprint
HD=$(mktemp -d /home/cpu-rs-footprint.XXXXXX)
drop_hd() { rm -rf "$HD"; }
CLEANUP_HOOKS+=(drop_hd)
start_cpud cpud || exit 1
rss() { awk '/^VmRSS/ { print $2 }' "/proc/$1/status"; }
idle=$(rss "$CPID")
(cd "$HD" && exec timeout -k 5 60 "$CPU" -hostkeycheck=false -key "$W/client_ed25519" -sp "$CPORT" 127.0.0.1 \
	sh -c 'echo up > started; exec sleep 30' >/dev/null) &
SESS=$!
n=0
until [ -s "$HD/started" ] || [ $n -ge 300 ]; do sleep 0.1; n=$((n + 1)); done
child=$(pgrep -P "$CPID" | head -1)
busy=$(rss "$CPID")
child_rss=$(rss "$child")
kill "$SESS" 2>/dev/null || true
wait "$SESS" 2>/dev/null || true
printf '%-40s %8s\n' "cpud resident memory" KiB
printf '%-40s %8d\n' "daemon, idle" "$idle"
printf '%-40s %8d\n' "daemon, one session open" "$busy"
printf '%-40s %8d\n' "session child (9P mount), one session" "$child_rss"

# The biggest contributors, from an unstripped build in its own folder.
CARGO_PROFILE_RELEASE_STRIP=false cargo build -q --release --target "$T" -p cpu-bins --bin cpud \
	--target-dir target/footprint
nm -S --size-sort -C "target/footprint/$T/release/cpud" | python3 -c '
import collections, re, sys
top = int(sys.argv[1])
sizes = collections.Counter()
for line in sys.stdin:
    parts = line.rstrip("\n").split(" ", 3)
    if len(parts) < 4:
        continue
    name = parts[3].lstrip("<_&")
    m = re.match(r"^(?:dyn )?([A-Za-z0-9_]+)::", name)
    sizes[m.group(1) if m else "[non-Rust]"] += int(parts[1], 16)
total = sum(sizes.values())
print("%-20s %9s %6s" % ("crate", "bytes", "share"))
for k, v in sizes.most_common(top):
    print(f"{k:<20} {v:>9} {100 * v / total:>5.1f}%")
' "${FOOTPRINT_TOP:-15}"
