#!/bin/sh
# packaging/dist.sh: static cpu and cpud for every board architecture,
# into dist/<arch>/ with SHA256SUMS, and a table of their sizes. The
# folders have Docker's (and Go's) architecture names, so that
# packaging/Dockerfile can pick them by TARGETARCH: amd64, arm64, arm
# (armv7, hard float), riscv64.
#
#   packaging/dist.sh [ARCH...]   (default: amd64 arm64 arm riscv64)
#
# musl targets, linked by rust-lld (.cargo/config.toml): no cross C
# toolchain, as long as the dependency tree stays pure Rust. A target
# whose standard library rustup cannot fetch is reported and skipped.
set -eu
REPO=$(cd "$(dirname "$0")/.." && pwd)
cd "$REPO"
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
have_target() { rustup target list --installed | grep -qx "$1" || rustup target add "$1" >/dev/null 2>&1; }
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
missing=''
rows=''
for arch in "$@"; do
	t=$(triple "$arch") || { echo "dist.sh: unknown arch $arch" >&2; exit 2; }
	libc=musl
	if ! have_target "$t"; then
		# Fallback: the glibc target, linked statically by Debian's cross
		# gcc (apt-get install gcc-arm-linux-gnueabihf
		# libc6-dev-armhf-cross, or the riscv64 ones). Larger than musl.
		g=$(gnu_triple "$arch") cc=$(gnu_cc "$arch")
		if [ -n "$g" ] && have_target "$g" && command -v "$cc" >/dev/null; then
			t=$g libc=glibc
			tu=$(echo "$t" | tr 'a-z-' 'A-Z_')
			export "CARGO_TARGET_${tu}_LINKER=$cc" "CARGO_TARGET_${tu}_RUSTFLAGS=-C target-feature=+crt-static"
			echo "dist.sh: $arch: no musl standard library from rustup; static glibc with $cc" >&2
		else
			echo "dist.sh: $arch: rustup cannot install $t (and no glibc fallback); skipped" >&2
			missing="$missing $arch"
			continue
		fi
	fi
	cargo build -q --release --target "$t" -p cpu-bins --bin cpu --bin cpud
	mkdir -p "dist/$arch"
	cp "target/$t/release/cpu" "target/$t/release/cpud" "dist/$arch/"
	(cd "dist/$arch" && sha256sum cpu cpud >SHA256SUMS)
	rows="$rows$(printf '| %-8s | %-5s | %9s | %9s |' "$arch" "$libc" "$(stat -c %s "dist/$arch/cpud")" "$(stat -c %s "dist/$arch/cpu")")
"
done
echo "| arch     | libc  | cpud (B)  | cpu (B)   |"
echo "|----------|-------|-----------|-----------|"
printf '%s' "$rows"
[ -z "$missing" ] || echo "not built:$missing (no standard library for the target)"
