#!/bin/bash
# bench-ssh.sh: SSH throughput and latency of our server and client against
# OpenSSH 9.2 (system ssh/sshd), on 127.0.0.1, the baseline measured in the
# same run.
#
# Four pairs, client -> server:
#   openssh->openssh   /usr/bin/ssh -> /usr/sbin/sshd      (the baseline)
#   openssh->ours      /usr/bin/ssh -> $OUR_SSHD
#   ours->openssh      $OUR_SSH     -> /usr/sbin/sshd
#   ours->ours         $OUR_SSH     -> $OUR_SSHD
# each with chacha20-poly1305@openssh.com and aes256-gcm@openssh.com:
#   up     head -c N /dev/zero | ssh host 'cat >/dev/null'     (MiB/s)
#   down   ssh host 'head -c N /dev/zero' >/dev/null           (MiB/s)
#   true   ssh host true, median of BENCH_SSH_LATENCY_RUNS runs (ms)
# Throughput rounds interleave the pairs (round 1: every pair, round 2: ...)
# so load from elsewhere hits them alike; the median of the rounds is shown.
# Pairs whose binary is unset or missing print SKIP. The binaries' contract
# is in the header of tests/scripts/ssh/interop.sh; the harness can be tried
# with the OpenSSH stand-ins in tests/scripts/ssh/standins/.
#
# Fairness: every pair uses the same key exchange (BENCH_SSH_KEX, default
# curve25519-sha256: sntrup761 alone costs OpenSSH 9.2 ~70 ms of CPU). Our
# server runs commands with /bin/sh; OpenSSH's sshd runs the user's login
# shell, so the OpenSSH server pairs log in as a user whose shell is /bin/sh
# (BENCH_SSH_USER; by default the user cpu-rs-bench is created for the run
# and removed after it, when running as root).
#
# Environment:
#   OUR_SSHD, OUR_SSH           our server / client
#   BENCH_SSH_BYTES=1G          bytes per transfer (numfmt --from=iec)
#   BENCH_SSH_REPEAT=3          throughput rounds
#   BENCH_SSH_LATENCY_RUNS=20   runs of `ssh host true` per pair and cipher
#   BENCH_SSH_KEX=curve25519-sha256   ("" = each side's default)
#   BENCH_SSH_USER              login for the OpenSSH server
#   KEEP=1                      keep the work folder
set -euo pipefail
. "$(dirname "$0")/../scripts/ssh/lib.sh"

BYTES=$(numfmt --from=iec "${BENCH_SSH_BYTES:-1G}")
MIB=$(awk -v b="$BYTES" 'BEGIN { printf "%.0f", b / 1048576 }')
REPEAT=${BENCH_SSH_REPEAT:-3}
LAT_RUNS=${BENCH_SSH_LATENCY_RUNS:-20}
KEX=${BENCH_SSH_KEX-curve25519-sha256}
CIPHERS="chacha20-poly1305@openssh.com aes256-gcm@openssh.com"
export SSH_TMO=900
short() { case $1 in chacha20*) echo chacha20 ;; aes256-gcm*) echo aes256gcm ;; *) echo "${1%%@*}" ;; esac; }

HAVE_SSHD=0 HAVE_SSH=0
[ -n "${OUR_SSHD:-}" ] && OUR_SSHD=$(abs_bin "$OUR_SSHD") && bin_ok "$OUR_SSHD" && HAVE_SSHD=1
[ -n "${OUR_SSH:-}" ] && OUR_SSH=$(abs_bin "$OUR_SSH") && bin_ok "$OUR_SSH" && HAVE_SSH=1

if [ ! -x "$SYS_SSHD" ] || [ ! -x "$SYS_SSH" ]; then
	apt_ensure openssh-server openssh-client || { say "cannot install OpenSSH"; exit 1; }
fi
ssh_init bench-ssh

# The login for OpenSSH's sshd: a /bin/sh user (see the header).
BUSER=${BENCH_SSH_USER:-}
MADE_USER=''
if [ -z "$BUSER" ]; then
	if [ "$(id -u)" = 0 ] && command -v useradd >/dev/null; then
		BUSER=cpu-rs-bench
		if ! id "$BUSER" >/dev/null 2>&1; then
			mkdir -p "$W/home"
			useradd -M -d "$W/home" -s /bin/sh "$BUSER" && usermod -p '*' "$BUSER" ||
				{ say "cannot create user $BUSER"; exit 1; }
			chown "$BUSER" "$W/home"
			MADE_USER=$BUSER
		fi
	else
		BUSER=$ME
		say "note: the OpenSSH server pairs log in as $ME with its login shell $(getent passwd "$ME" | cut -d: -f7)"
	fi
fi
remove_user() { [ -z "$MADE_USER" ] || userdel "$MADE_USER" 2>/dev/null || true; }
CLEANUP_HOOKS+=(remove_user)

PAIRS=()
declare -A PORT_OF
if ! start_openssh_sshd bench-osshd; then
	say "OpenSSH sshd did not start"
	exit 1
fi
PORT_OF[openssh]=$SPORT
if [ $HAVE_SSHD = 1 ]; then
	start_our_sshd bench-ours || { say "our server did not start"; exit 1; }
	PORT_OF[ours]=$SPORT
fi
for p in openssh-\>openssh openssh-\>ours ours-\>openssh ours-\>ours; do
	c=${p%%->*} s=${p##*->}
	if [ "$c" = ours ] && [ $HAVE_SSH = 0 ]; then
		skip "$p: OUR_SSH not set or missing (${OUR_SSH:-unset})"
	elif [ "$s" = ours ] && [ $HAVE_SSHD = 0 ]; then
		skip "$p: OUR_SSHD not set or missing (${OUR_SSHD:-unset})"
	else
		PAIRS+=("$p")
	fi
done

# client PAIR CIPHER -- CMD: one connection of PAIR (our server runs
# commands as the user it runs as, whatever the login name).
client() {
	local p=$1 c=$2 s u
	shift 3
	s=${p##*->}
	u=$BUSER
	[ "$s" = ours ] && u=$ME
	case $p in
	openssh-*) SSH_USER=$u ossh "${PORT_OF[$s]}" -c "$c" ${KEX:+-o KexAlgorithms=$KEX} -- "$@" ;;
	ours-*) SSH_USER=$u oursh "${PORT_OF[$s]}" -c "$c" ${KEX:+-kex $KEX} -- "$@" ;;
	esac
}

RESULTS=$W/results
: >"$RESULTS"
FAILED=0
# record PAIR CIPHER METRIC VALUE
record() { echo "$1 $(short "$2") $3 $4" >>"$RESULTS"; }
mibs() { awk -v b="$BYTES" -v t0="$1" -v t1="$2" 'BEGIN { printf "%.1f", b / 1048576 / (t1 - t0) }'; }

say "pairs: ${PAIRS[*]}; ${MIB} MiB per transfer, $REPEAT rounds; kex ${KEX:-default}; OpenSSH login $BUSER"
# A first connection per pair and cipher checks that it works at all.
declare -A OK
for p in "${PAIRS[@]}"; do
	for c in $CIPHERS; do
		if client "$p" "$c" -- true </dev/null 2>"$W/check.err"; then
			OK[$p $c]=1
		else
			FAILED=1
			fail "$p $(short "$c"): ssh true failed: $(tail -n 2 "$W/check.err" | tr '\n' ' ')"
		fi
	done
done

for round in $(seq 1 "$REPEAT"); do
	for p in "${PAIRS[@]}"; do
		for c in $CIPHERS; do
			[ -n "${OK[$p $c]:-}" ] || continue
			say "round $round/$REPEAT: $p $(short "$c")"
			t0=$(now)
			rc=0
			head -c "$BYTES" /dev/zero | client "$p" "$c" -- 'cat >/dev/null' 2>"$W/up.err" || rc=$?
			t1=$(now)
			if [ "$rc" = 0 ]; then record "$p" "$c" up "$(mibs "$t0" "$t1")"; else
				FAILED=1
				fail "$p $(short "$c") up: exit $rc: $(tail -n 2 "$W/up.err" | tr '\n' ' ')"
			fi
			t0=$(now)
			rc=0
			client "$p" "$c" -- "head -c $BYTES /dev/zero" </dev/null 2>"$W/down.err" | wc -c >"$W/down.n" || rc=$?
			t1=$(now)
			n=$(tr -d ' ' <"$W/down.n")
			if [ "$rc" = 0 ] && [ "$n" = "$BYTES" ]; then record "$p" "$c" down "$(mibs "$t0" "$t1")"; else
				FAILED=1
				fail "$p $(short "$c") down: exit $rc, $n bytes: $(tail -n 2 "$W/down.err" | tr '\n' ' ')"
			fi
		done
	done
done

say "latency: $LAT_RUNS x ssh true per pair and cipher"
for i in $(seq 1 "$LAT_RUNS"); do
	for p in "${PAIRS[@]}"; do
		for c in $CIPHERS; do
			[ -n "${OK[$p $c]:-}" ] || continue
			t0=$(now)
			if client "$p" "$c" -- true </dev/null 2>"$W/lat.err"; then
				t1=$(now)
				record "$p" "$c" true "$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", (b - a) * 1000 }')"
			else
				FAILED=1
				fail "$p $(short "$c") true: $(tail -n 2 "$W/lat.err" | tr '\n' ' ')"
			fi
		done
	done
done

echo
echo "SSH benchmark: ${MIB} MiB per transfer (median of $REPEAT), ssh true (median of $LAT_RUNS), 127.0.0.1," \
	"kex ${KEX:-default}; baseline openssh->openssh ($("$SYS_SSH" -V 2>&1 | cut -d, -f1)) measured in this run"
echo "ratios against the baseline of the same cipher: up, down = MiB/s / baseline MiB/s (> 1: faster);" \
	"true = ms / baseline ms (< 1: faster)"
awk -v pairs="${PAIRS[*]}" '
	{ k = $1 SUBSEP $2 SUBSEP $3; n[k]++; x[k, n[k]] = $4 + 0 }
	function median(k,   i, j, t, c, a) {
		c = n[k]
		if (c == 0) return ""
		for (i = 1; i <= c; i++) a[i] = x[k, i]
		for (i = 2; i <= c; i++)
			for (j = i; j > 1 && a[j - 1] > a[j]; j--) { t = a[j]; a[j] = a[j - 1]; a[j - 1] = t }
		return c % 2 ? a[(c + 1) / 2] : (a[c / 2] + a[c / 2 + 1]) / 2
	}
	function v(x, f) { return x == "" ? "-" : sprintf(f, x) }
	function r(a, b) { return (a == "" || b == "" || b == 0) ? "-" : sprintf("%.2f", a / b) }
	END {
		printf "%-18s %-10s %10s %10s %9s %8s %8s %8s\n", "pair", "cipher", "up MiB/s", "down MiB/s", "true ms", "up/base", "down/b", "true/b"
		np = split(pairs, ps, " ")
		nc = split("chacha20 aes256gcm", cs, " ")
		for (j = 1; j <= nc; j++) {
			c = cs[j]
			bu = median("openssh->openssh" SUBSEP c SUBSEP "up")
			bd = median("openssh->openssh" SUBSEP c SUBSEP "down")
			bt = median("openssh->openssh" SUBSEP c SUBSEP "true")
			for (i = 1; i <= np; i++) {
				p = ps[i]
				u = median(p SUBSEP c SUBSEP "up"); d = median(p SUBSEP c SUBSEP "down"); t = median(p SUBSEP c SUBSEP "true")
				printf "%-18s %-10s %10s %10s %9s %8s %8s %8s\n", p, c, v(u, "%.1f"), v(d, "%.1f"), v(t, "%.1f"), r(u, bu), r(d, bd), r(t, bt)
			}
		}
	}' "$RESULTS"
[ "$FAILED" = 0 ] || say "some measurements failed: see the FAIL lines above"
exit $FAILED
