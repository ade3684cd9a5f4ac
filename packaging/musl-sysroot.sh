#!/bin/sh
# packaging/musl-sysroot.sh DEBARCH [DIR]: musl's static C library and
# start files for DEBARCH (armhf, riscv64, ...), from Debian's musl-dev
# package, for a Rust musl target whose standard library rustup cannot
# fetch (dist.sh then builds std itself, with nightly -Zbuild-std).
#
# The .deb is downloaded and unpacked only: a private apt state (lists,
# cache) under DIR/apt-DEBARCH, Debian 13 (trixie, where riscv64 is an official
# architecture) from deb.debian.org, checked with the host's Debian
# archive keyring. No dpkg --add-architecture, nothing installed, the
# host's apt state untouched. Prints the folder that holds libc.a,
# crt1.o, crti.o, crtn.o (and an empty libunwind.a: with panic =
# "immediate-abort" nothing unwinds, but std's unwind crate names the
# library). DIR defaults to target/musl-sysroot; a second run reuses it.
set -eu
DEB=${1:?usage: musl-sysroot.sh DEBARCH [DIR]}
REPO=$(cd "$(dirname "$0")/.." && pwd)
DIR=${2:-$REPO/target/musl-sysroot}
SUITE=${MUSL_SYSROOT_SUITE:-trixie}
MIRROR=${MUSL_SYSROOT_MIRROR:-http://deb.debian.org/debian}
KEYRING=/usr/share/keyrings/debian-archive-keyring.gpg
OUT=$DIR/$DEB
if [ -s "$OUT/libc.a" ] && [ -s "$OUT/crt1.o" ] && [ -f "$OUT/libunwind.a" ]; then
	echo "$OUT"
	exit 0
fi
[ -r "$KEYRING" ] || { echo "musl-sysroot.sh: no $KEYRING (apt-get install debian-archive-keyring)" >&2; exit 1; }
AD=$DIR/apt-$DEB
mkdir -p "$AD/lists/partial" "$AD/cache/archives/partial" "$AD/deb"
[ -f "$AD/status" ] || : >"$AD/status"
echo "deb [signed-by=$KEYRING] $MIRROR $SUITE main" >"$AD/sources.list"
set -- -q -o "APT::Architecture=$DEB" -o "APT::Architectures=$DEB" \
	-o "Dir::Etc::SourceList=$AD/sources.list" -o "Dir::Etc::SourceParts=$AD/none" \
	-o "Dir::State::Lists=$AD/lists" -o "Dir::Cache=$AD/cache" \
	-o "Dir::State::status=$AD/status" -o "Dir::State::extended_states=$AD/extended_states" \
	-o APT::Sandbox::User=root -o Acquire::IndexTargets::deb::DEP-11::DefaultEnabled=false \
	-o Acquire::IndexTargets::deb::DEP-11-icons::DefaultEnabled=false \
	-o Acquire::IndexTargets::deb::DEP-11-icons-small::DefaultEnabled=false \
	-o Acquire::IndexTargets::deb::Contents-deb::DefaultEnabled=false
# Download, with an update of the private lists first when there are none,
# or again when they are stale (the mirror no longer has their version).
[ -n "$(find "$AD/lists" -maxdepth 1 -name '*_Packages*' 2>/dev/null)" ] || apt-get "$@" update >&2
(cd "$AD/deb" && rm -f ./*.deb && { apt-get "$@" download "musl-dev:$DEB" >&2 ||
	{ apt-get "$@" update >&2 && apt-get "$@" download "musl-dev:$DEB" >&2; }; })
rm -rf "$AD/x"
dpkg-deb -x "$AD"/deb/musl-dev_*.deb "$AD/x"
lib=$(dirname "$(find "$AD/x" -name libc.a | head -n 1)")
[ -s "$lib/crt1.o" ] || { echo "musl-sysroot.sh: no libc.a and crt1.o in musl-dev:$DEB" >&2; exit 1; }
rm -rf "$OUT.new"
mkdir -p "$OUT.new"
cp "$lib"/*.a "$lib"/*.o "$OUT.new/"
# An empty ar archive (no binutils needed).
printf '!<arch>\n' >"$OUT.new/libunwind.a"
basename "$AD"/deb/musl-dev_*.deb >"$OUT.new/PACKAGE"
rm -rf "$OUT"
mv "$OUT.new" "$OUT"
echo "$OUT"
