#!/usr/bin/env bash
# tests/scripts/packaging.sh: what a board owner installs, tested as far as
# this machine allows:
#   - install.sh into a staging root: binaries, man pages, service files;
#   - the systemd unit: systemd-analyze verify (no warning at all);
#   - the sysvinit script (Debian's start-stop-daemon) and the buildroot
#     script (busybox's): sh -n, then start, status, a cpu login, stop, in
#     a private mount and pid namespace, so nothing can outlive the test;
#   - the OpenWrt procd script: sh -n, and its start_service run against
#     stand-ins of procd's functions, which record the command it sets.
# CPU, CPUD: the binaries (default target/release/{cpu,cpud}).
set -euo pipefail
# shellcheck source=ssh/lib.sh
. "$(dirname "$0")/ssh/lib.sh"

cpu_bins
ssh_init packaging
P=$REPO/packaging

# install.sh, for each service kind.
for s in systemd sysvinit buildroot openwrt; do
	D=$W/stage-$s
	"$P/install.sh" -d "$D" -p /usr -b "$(dirname "$CPUD")" -s "$s" >/dev/null
done
ok=1
for f in usr/bin/cpu usr/sbin/cpud; do [ -x "$W/stage-systemd/$f" ] || ok=0; done
for f in usr/share/man/man1/cpu.1 usr/share/man/man8/cpud.8 etc/systemd/system/cpud.service; do
	[ -s "$W/stage-systemd/$f" ] || ok=0
done
[ "$(stat -c %a "$W/stage-systemd/etc/cpud")" = 700 ] || ok=0
grep -q '^ExecStart=/usr/sbin/cpud ' "$W/stage-systemd/etc/systemd/system/cpud.service" || ok=0
[ -x "$W/stage-sysvinit/etc/init.d/cpud" ] && [ -x "$W/stage-buildroot/etc/init.d/S50cpud" ] &&
	[ -x "$W/stage-openwrt/etc/init.d/cpud" ] || ok=0
[ $ok = 1 ] && pass "install.sh: binaries, man pages, /etc/cpud (0700), each service file" ||
	fail "install.sh: $(cd "$W" && find stage-* | head -40 | tr '\n' ' ')"

# systemd: verify against the installed binary path.
if command -v systemd-analyze >/dev/null; then
	sed "s#^ExecStart=/usr/local/sbin/cpud#ExecStart=$CPUD#" "$P/systemd/cpud.service" >"$W/cpud.service"
	out=$(cd "$W" && systemd-analyze verify --man=no ./cpud.service 2>&1) && [ -z "$out" ] &&
		pass "systemd unit: systemd-analyze verify, no warnings" || fail "systemd-analyze: $out"
else
	skip "no systemd-analyze"
fi

for s in "$P/sysvinit/cpud" "$P/buildroot/S50cpud" "$P/openwrt/cpud" "$P/install.sh"; do
	sh -n "$s" && pass "sh -n $(basename "$(dirname "$s")")/$(basename "$s")" || fail "sh -n $s"
done

# service_run NAME SCRIPT [PATH_PREFIX]: start, status, a login, stop, in
# private namespaces. Prints what happened, a word per step.
service_run() {
	local name=$1 script=$2 pathpre=${3:-}
	local log=$W/$name.log pid=$W/$name.pid port
	port=$(free_port)
	cat >"$W/$name-run.sh" <<RUN
set -u
export PATH=$pathpre\$PATH
export DAEMON=$CPUD PIDFILE=$pid LOGFILE=$log CPUD_STATE_DIR=$W/state-$name
export CPUD_ARGS="-sp $port -addr 127.0.0.1 -pk $W/authorized_keys -hk $W/host_ed25519"
sh "$script" start >/dev/null && echo started
# The sysvinit script logs to LOGFILE; busybox's start-stop-daemon has no
# --output, so for it the pid and the port are proof enough.
i=0
until (exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null || [ \$i -ge 100 ]; do sleep 0.1; i=\$((i + 1)); done
[ -s "$pid" ] && kill -0 "\$(cat "$pid")" && echo running
if [ "$name" = sysvinit ]; then sh "$script" status && echo status-ok; fi
out=\$(HOME=$W/home timeout 30 "$CPU" -9p=false -hostkeycheck=false -key "$W/client_ed25519" -sp $port 127.0.0.1 echo served)
[ "\$out" = served ] && echo login-ok
p=\$(cat "$pid")
sh "$script" stop >/dev/null && echo stopped
i=0
while kill -0 "\$p" 2>/dev/null && [ \$i -lt 100 ]; do sleep 0.1; i=\$((i + 1)); done
kill -0 "\$p" 2>/dev/null || echo gone
if [ "$name" = sysvinit ]; then sh "$script" status; [ \$? = 3 ] && echo status-stopped; fi
RUN
	timeout 120 unshare --mount --pid --fork --mount-proc bash "$W/$name-run.sh" 2>"$W/$name-run.err" | tr '\n' ' '
}

# service_fail NAME SCRIPT [PATH_PREFIX]: start with a -pk that does not
# exist, in private namespaces; prints the start's status and output.
service_fail() {
	local name=$1 script=$2 pathpre=${3:-}
	cat >"$W/$name-fail.sh" <<RUN
set -u
export PATH=$pathpre\$PATH
export DAEMON=$CPUD PIDFILE=$W/$name-fail.pid LOGFILE=$W/$name-fail.log CPUD_STATE_DIR=$W/state-$name
export CPUD_ARGS="-sp $(free_port) -addr 127.0.0.1 -pk $W/no-such-keys -hk $W/host_ed25519"
rc=0
sh "$script" start 2>&1 || rc=\$?
echo "rc=\$rc"
RUN
	timeout 60 unshare --mount --pid --fork --mount-proc bash "$W/$name-fail.sh" 2>&1 | tr '\n' ' '
}

if command -v start-stop-daemon >/dev/null; then
	got=$(service_fail sysvinit "$P/sysvinit/cpud")
	[[ $got == *"cpud exited at once: "*"no-such-keys: No such file or directory"*"rc=1 " ]] &&
		pass "sysvinit script: a cpud that exits at once (bad -pk) is reported, with its reason" ||
		fail "sysvinit bad -pk: $got"
	got=$(service_run sysvinit "$P/sysvinit/cpud")
	[ "$got" = "started running status-ok login-ok stopped gone status-stopped " ] &&
		pass "sysvinit script: start, status, a login, stop" || fail "sysvinit: $got $(cat "$W/sysvinit-run.err")"
else
	skip "no start-stop-daemon: sysvinit run"
fi

BB=$(command -v busybox || true)
if [ -n "$BB" ] && "$BB" start-stop-daemon --help >/dev/null 2>&1; then
	mkdir -p "$W/bb"
	ln -sf "$BB" "$W/bb/start-stop-daemon"
	got=$(service_fail buildroot "$P/buildroot/S50cpud" "$W/bb:")
	[[ $got == "Starting cpud: FAIL (cpud exited at once"*"rc=1 " ]] &&
		pass "buildroot script: a cpud that exits at once (bad -pk) says FAIL" ||
		fail "buildroot bad -pk: $got"
	got=$(service_run buildroot "$P/buildroot/S50cpud" "$W/bb:")
	[ "$got" = "started running login-ok stopped gone " ] &&
		pass "buildroot script (busybox start-stop-daemon): start, a login, stop" ||
		fail "buildroot: $got $(cat "$W/buildroot-run.err")"
else
	skip "no busybox start-stop-daemon: buildroot run"
fi

# procd: the script's start_service against recording stand-ins.
got=$(sh -c '
	procd_open_instance() { echo open; }
	procd_set_param() { echo "param $*"; }
	procd_close_instance() { echo close; }
	. "$1"
	start_service' sh "$P/openwrt/cpud" | tr '\n' '|')
want='open|param command /usr/sbin/cpud -pk /etc/cpud/authorized_keys|param env CPUD_STATE_DIR=/etc/cpud|param respawn|param stderr 1|close|'
[ "$got" = "$want" ] && pass "procd script: start_service sets the command, env and respawn" || fail "procd: $got"

echo "packaging: $PASSES passed, $FAILS failed"
[ "$FAILS" = 0 ]
