#!/bin/sh
# packaging/dist.sh: static cpu and cpud for every board architecture,
# into dist/<arch>/ with SHA256SUMS, and a table of their sizes. The
# folders have Docker's (and Go's) architecture names, so that
# packaging/Dockerfile can pick them by TARGETARCH: amd64, arm64, arm
# (armv7, hard float), riscv64.
#
#   packaging/dist.sh [ARCH...]   (default: amd64 arm64 arm riscv64)
#
# Each architecture is built the first way that works:
#   stable     the musl target's standard library from rustup, linked
#              by rust-lld (.cargo/config.toml): no C toolchain at all.
#   build-std  when rustup has no musl standard library for the target
#              (on these machines: armv7 and riscv64 answer 404): nightly
#              Rust builds std itself (-Zbuild-std, with the release
#              profile: size-optimised, LTO), linked by rust-lld against
#              Debian's musl-dev for the architecture, which
#              packaging/musl-sysroot.sh downloads and unpacks (no C
#              compiler either). Installs the nightly toolchain (minimal,
#              with rust-src) when it is missing. DIST_NIGHTLY picks
#              another one (e.g. nightly-2026-05-20).
#   glibc      last resort: the glibc target linked statically by
#              Debian's cross gcc (gcc-arm-linux-gnueabihf
#              libc6-dev-armhf-cross, or the riscv64 ones). Larger: over
#              the 1.5 MB cpud budget on armv7 and riscv64.
#              Also taken when the stable cpud is over the budget (std's
#              panic and backtrace code is most of the difference: amd64
#              from stable is about 1.5 MB).
# DIST_BUILD_STD=1 skips the stable way (every arch through build-std).
# A cpud over the budget (1,500,000 bytes) is marked OVER in the table,
# and the exit status is then 1.
set -eu
REPO=$(cd "$(dirname "$0")/.." && pwd)
cd "$REPO"
BUDGET=1500000
NIGHTLY=${DIST_NIGHTLY:-nightly}
[ $# -gt 0 ] || set -- amd64 arm64 arm riscv64
triple() {
	case $1 in
	amd64) echo x86_64-unknown-linux-musl ;;
	arm64) echo aarch64-unknown-linux-musl ;;
	arm) echo armv7-unknown-linux-musleabihf ;;
	riscv64) echo riscv64gc-unknown-linux-musl ;;
	*) return 1 ;;
	esac
}
deb_arch() {
	case $1 in
	arm) echo armhf ;;
	*) echo "$1" ;;
	esac
}
gnu_triple() {
	case $1 in
	arm) echo armv7-unknown-linux-gnueabihf ;;
	riscv64) echo riscv64gc-unknown-linux-gnu ;;
	esac
}
gnu_cc() {
	case $1 in
	arm) echo arm-linux-gnueabihf-gcc ;;
	riscv64) echo riscv64-linux-gnu-gcc ;;
	esac
}
have_target() { rustup target list --installed | grep -qx "$1" || rustup target add "$1" >/dev/null 2>&1; }
have_nightly_src() {
	if ! rustup run "$NIGHTLY" rustc --version >/dev/null 2>&1; then
		echo "dist.sh: installing the $NIGHTLY toolchain (minimal, rust-src)" >&2
		rustup toolchain install "$NIGHTLY" --profile minimal -c rust-src >/dev/null 2>&1 || return 1
	fi
	rustup component list --toolchain "$NIGHTLY" --installed 2>/dev/null | grep -q '^rust-src' ||
		rustup component add rust-src --toolchain "$NIGHTLY" >/dev/null 2>&1
}
env_name() { echo "CARGO_TARGET_$(echo "$1" | tr 'a-z-' 'A-Z_')_$2"; }

missing=''
rows=''
over=0
for arch in "$@"; do
	t=$(triple "$arch") || { echo "dist.sh: unknown arch $arch" >&2; exit 2; }
	how=''
	out=target/$t/release
	if [ "${DIST_BUILD_STD:-0}" != 1 ] && have_target "$t" &&
		cargo build -q --release --target "$t" -p cpu-bins --bin cpu --bin cpud &&
		{ [ "$(stat -c %s "$out/cpud")" -le "$BUDGET" ] ||
			! echo "dist.sh: $arch: the stable cpud is $(stat -c %s "$out/cpud") bytes, over the budget: trying build-std" >&2; }; then
		how=stable
	elif have_nightly_src && S=$(packaging/musl-sysroot.sh "$(deb_arch "$arch")"); then
		echo "dist.sh: $arch: std built by $NIGHTLY (-Zbuild-std), Debian's musl ($(cat "$S/PACKAGE"))" >&2
		# Debian's crt objects and libc.a instead of rustup's
		# self-contained ones, statically (riscv64's musl target is
		# dynamic by default). panic = "immediate-abort": a panic aborts
		# at once, without a message or a backtrace, so no unwinder is
		# linked (Debian's LLVM libunwind is built against glibc's
		# fortified printf), and the panic machinery is gone (with std
		# built for size too: x86_64's cpud is 1.08 MB this way, 1.48 MB
		# from stable). std's unwind crate still names -lunwind: an
		# empty archive.
		# A static-pie target (x86_64) starts from rcrt1.o, which
		# relocates the program itself.
		crt=crt1.o
		rustc "+$NIGHTLY" -Zunstable-options --print target-spec-json --target "$t" |
			grep -q '"static-position-independent-executables": true' && crt=rcrt1.o
		export "$(env_name "$t" LINKER)=rust-lld" \
			"$(env_name "$t" RUSTFLAGS)=-C target-feature=+crt-static -C link-self-contained=no -L native=$S -Zpre-link-arg=$S/$crt -Zpre-link-arg=$S/crti.o -C link-arg=$S/crtn.o"
		cargo "+$NIGHTLY" build -q -Zbuild-std=std,panic_abort -Zpanic-immediate-abort \
			--config 'profile.release.panic="immediate-abort"' --release --target "$t" \
			--target-dir target/build-std -p cpu-bins --bin cpu --bin cpud
		out=target/build-std/$t/release
		how=build-std
	else
		# The glibc target, linked statically by Debian's cross gcc.
		g=$(gnu_triple "$arch") cc=$(gnu_cc "$arch")
		if [ -n "$g" ] && have_target "$g" && command -v "$cc" >/dev/null; then
			t=$g how=glibc out=target/$g/release
			export "$(env_name "$t" LINKER)=$cc" "$(env_name "$t" RUSTFLAGS)=-C target-feature=+crt-static"
			echo "dist.sh: $arch: no musl standard library; static glibc with $cc" >&2
			cargo build -q --release --target "$t" -p cpu-bins --bin cpu --bin cpud
		else
			echo "dist.sh: $arch: no way to build $t here; skipped" >&2
			missing="$missing $arch"
			continue
		fi
	fi
	mkdir -p "dist/$arch"
	cp "$out/cpu" "$out/cpud" "dist/$arch/"
	(cd "dist/$arch" && sha256sum cpu cpud >SHA256SUMS && echo "$t $how" >BUILD)
	s=$(stat -c %s "dist/$arch/cpud")
	mark=''
	[ "$s" -le "$BUDGET" ] || { mark=' OVER' over=1; }
	rows="$rows$(printf '| %-8s | %-32s | %-9s | %9s%s | %9s |' "$arch" "$t" "$how" "$s" "$mark" "$(stat -c %s "dist/$arch/cpu")")
"
done
echo "| arch     | target                           | build     | cpud (B)  | cpu (B)   |"
echo "|----------|----------------------------------|-----------|-----------|-----------|"
printf '%s' "$rows"
[ -z "$missing" ] || echo "not built:$missing"
[ "$over" = 0 ] || { echo "dist.sh: a cpud is over the budget of $BUDGET bytes" >&2; exit 1; }
