#!/bin/sh
# packaging/install.sh: install cpu, cpud, their man pages and a service
# file. Run from the repository after a build.
#
#   packaging/install.sh [-d DESTDIR] [-p PREFIX] [-b BINDIR] [-s SERVICE]
#     -d DESTDIR  staging root (default /)
#     -p PREFIX   default /usr/local
#     -b BINDIR   where the built cpu and cpud are (default target/release;
#                 a static board build: dist/<arch>)
#     -s SERVICE  systemd (default when systemd runs), sysvinit, buildroot,
#                 openwrt or none
set -eu
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(dirname "$HERE")
DESTDIR='' PREFIX=/usr/local BINDIR=$REPO/target/release SERVICE=''
while getopts d:p:b:s:h opt; do
	case $opt in
	d) DESTDIR=$OPTARG ;;
	p) PREFIX=$OPTARG ;;
	b) BINDIR=$OPTARG ;;
	s) SERVICE=$OPTARG ;;
	*) sed -n '2,12p' "$0"; exit 2 ;;
	esac
done
if [ -z "$SERVICE" ]; then
	if [ -d /run/systemd/system ]; then SERVICE=systemd; else SERVICE=none; fi
fi
for b in cpu cpud; do
	[ -x "$BINDIR/$b" ] || { echo "install.sh: no $BINDIR/$b: build first (cargo build --release -p cpu-bins)" >&2; exit 1; }
done
D=$DESTDIR
install -d "$D$PREFIX/bin" "$D$PREFIX/sbin" "$D$PREFIX/share/man/man1" "$D$PREFIX/share/man/man8"
install -m 755 "$BINDIR/cpu" "$D$PREFIX/bin/cpu"
install -m 755 "$BINDIR/cpud" "$D$PREFIX/sbin/cpud"
install -m 644 "$REPO/man/cpu.1" "$D$PREFIX/share/man/man1/cpu.1"
install -m 644 "$REPO/man/cpud.8" "$D$PREFIX/share/man/man8/cpud.8"
install -d -m 700 "$D/etc/cpud"
# Each service file names cpud at its usual place; it is rewritten to ours.
case $SERVICE in
systemd) src=systemd/cpud.service dst=/etc/systemd/system/cpud.service mode=644 at=/usr/local/sbin/cpud ;;
sysvinit) src=sysvinit/cpud dst=/etc/init.d/cpud mode=755 at=/usr/local/sbin/cpud ;;
buildroot) src=buildroot/S50cpud dst=/etc/init.d/S50cpud mode=755 at=/usr/sbin/cpud ;;
openwrt) src=openwrt/cpud dst=/etc/init.d/cpud mode=755 at=/usr/sbin/cpud ;;
none) src='' ;;
*) echo "install.sh: -s $SERVICE: systemd, sysvinit, buildroot, openwrt or none" >&2; exit 2 ;;
esac
if [ -n "$src" ]; then
	install -d "$D$(dirname "$dst")"
	sed "s#$at#$PREFIX/sbin/cpud#" "$HERE/$src" >"$D$dst"
	chmod "$mode" "$D$dst"
fi
echo "installed cpu, cpud and their man pages under $D$PREFIX (service: $SERVICE)"
echo "next: put the laptop's public keys in $D/etc/cpud/authorized_keys"
