#!/bin/bash
# guest-workload.sh [ours|diod] [MODE...]: the Linux kernel 9p client against
# a host 9P server. For each MODE a fresh export is served, a QEMU guest
# (../shared/vm) mounts it over TCP (10.0.2.2 = host 127.0.0.1) and runs
# tests/guest/workload.sh; after the guest exits the host checks the
# guest's RESULT lines against the expected values AND the export tree
# directly (contents, sha256, modes, times, links, inodes).
# Modes: "msize" (msize=1048576, cache=none) and "loose" (msize=1048576,
# cache=loose); default both. `ls` of the 10,000-entry folder (a stat per
# entry, ~35 s under TCG) runs in "loose" only; both modes list it with getdents.
# Env: SERVER (kind, default ours), BIG_MB (64), RESULTS_DIR (where to put
# KIND-MODE.results for tests/scripts/differential.sh), GUEST_TIMEOUT (900).
# Exit status: number of failed checks.
set -uo pipefail
. "$(dirname "$0")/lib.sh"
KIND=${1:-${SERVER:-ours}}
shift $(($# > 0 ? 1 : 0))
MODES=${*:-msize loose}
BIG_MB=${BIG_MB:-64}
GT=${GUEST_TIMEOUT:-900}

W=$(mkwork workload) || exit 99
trap 'stop_server; cleanup_work "$W"' EXIT
IMG=$(guest_image) || { echo "FAIL build-image"; exit 1; }
gcc -static -O2 -o "$W/fsprobe" "$REPO/tests/guest/fsprobe.c" || { echo "FAIL compile fsprobe"; exit 1; }
SECRET_TOKEN="SECRET-$$-$RANDOM$RANDOM"
SECRET=$W/secret.txt
echo "$SECRET_TOKEN" > "$SECRET"

opts_of() {
	case $1 in
	msize) echo msize=1048576 ;;
	loose) echo msize=1048576,cache=loose ;;
	*) echo "$1" ;;  # raw mount options
	esac
}

# Expected values of the guest's RESULT lines.
expected() {
	local b=$((BIG_MB * 1048576)) sh
	sh=$((b - 1234567))
	cat <<EOF
mount ok
statfs ok
read_host_file ok
mkdir_w ok
mkdir_p ok
rmdir ok
rmdir_gone gone
rmdir_nonempty refused
mkdir_exists refused
big_write_rc 0
big_write_size $b
big_write match
big_append match
big_append_size $((b + 1048576))
big_trunc_shrink match
big_trunc_shrink_size $sh
big_trunc_grow match
big_trunc_grow_size $((sh + 3000000))
big_overwrite match/match
big_final match
mmap_read match
mmap_private match
mmap_private_nowrite match
mmap_small match
append_small ok
otrunc_small ok
empty_size 0
rename_same_dir ok
rename_cross_dir ok
rename_old_gone gone
rename_dir_cross ok
rename_dir_content inner
rename_replace ok
rename_replace_content new
rename_dir_over_nonempty refused
symlink ok
readlink d1/c.txt
symlink_follow a
readlink_dangling /nonexistent/target
symlink_is_link yes
hardlink ok
hardlink_nlink 2
hardlink_same_ino yes
hardlink_shared_data h,h2,
hardlink_unlink_nlink 2
chmod_file 640
chmod_dir 711
chmod_exec 755
utime_mtime 981173106
utime_atime 1000000000
utime_both 981173106/981173106
utime_dir 1234567890
size_after_write 5
ftype_dir directory
ftype_file regular file
ftype_link symbolic link
dir10000_count 10000
dir10000_range f00000,f09999
dir10000_ls $([ "$1" = loose ] && echo 10000 || echo skipped)
dir_dotfiles .,..,.hidden,hello.txt,
gen_create 300 g1 g99
gen_unlink 200 g101 g300
unlink_gone refused
enoent 1
enotdir refused
rmdir_file refused
unlink_dir refused
escape_dotdot refused
escape_dotdot_rel refused
escape_ls_dotdot 0
escape_symlink_abs refused
escape_symlink_rel refused
escape_symlink_dir refused
escape_symlink_dir_ls 0
escape_guest_symlink refused
umount ok
EOF
}

run_mode() {
	local mode=$1 E=$W/export-$1 log=$W/guest-$1.log res=$W/$KIND-$1.results
	local opts t0 t1 rc
	opts=$(opts_of "$mode")
	echo "=== $KIND: guest workload, mount options $opts"
	mkdir -p "$E/many" "$E/ro"
	echo "hello from the host" > "$E/ro/hello.txt"
	echo hidden > "$E/ro/.hidden"
	(cd "$E/many" && seq -f 'f%05g' 0 9999 | xargs touch)
	ln -s "$SECRET" "$E/esc-abs"
	ln -s ../secret.txt "$E/esc-rel"
	ln -s .. "$E/esc-dir"
	start_server "$KIND" "$E" "$W/server-$mode.log" || { fail "$mode: server start"; return; }
	t0=$(now)
	timeout -k 10 $((GT + 30)) "$VM_DIR/run-guest.sh" -i "$IMG" -m 1024 -T "$GT" -l "$log" \
		-a "$REPO/tests/guest/workload.sh:/bin/workload.sh" -a "$W/fsprobe" \
		-- sh /bin/workload.sh "$SERVER_PORT" "$SERVER_ANAME" "$opts" "$SECRET" "$BIG_MB" "$([ "$mode" = loose ] && echo 1 || echo 0)" > /dev/null 2> "$W/run-guest-$mode.err"
	rc=$?
	t1=$(now)
	echo "TIME $KIND $mode guest run: $(secs "$t0" "$t1") s (exit $rc)"
	alive "$SERVER_PID" && pass "$mode: server still running after the guest" || fail "$mode: server died (log $W/server-$mode.log)"
	stop_server
	tr -d '\r' < "$log" > "$log.txt"
	grep -q '^WORKLOAD-DONE' "$log.txt" && [ "$rc" = 0 ] && pass "$mode: guest workload ran to the end" ||
		fail "$mode: guest workload did not finish (exit $rc, log $log.txt): $(grep -v '^RESULT\|^TIME\|^INFO\|^SHA\|^SUM' "$log.txt" | tail -n 5 | tr '\n' '|')"
	grep '^TIME' "$log.txt" | sed "s/^TIME /TIME $KIND $mode guest /"
	grep '^RESULT' "$log.txt" | cut -d' ' -f2- > "$res"

	# 1. The guest's view, against the expected values.
	local name want got
	while read -r name want; do
		got=$(awk -v n="$name" '$1 == n { $1 = ""; sub(/^ /, ""); print; exit }' "$res")
		eq "$mode: guest $name" "$got" "$want"
	done < <(expected "$mode")

	# 2. The host's view of the same tree.
	local w=$E/w hres=()
	# Host checks go into the results as ok/mismatch (their values are random per run).
	h() { hres+=("host:$1 $([ "$2" = "$3" ] && echo ok || echo mismatch)"); eq "$mode: host $1" "$2" "$3"; }
	h big_sha "$(sha256sum < "$w/big.bin" | cut -d' ' -f1)" "$(awk '$2 == "w/big.bin" { print $3 }' <(grep '^SHA' "$log.txt"))"
	h big_size "$(stat -c %s "$w/big.bin")" $((BIG_MB * 1048576 - 1234567 + 3000000))
	h mmapsum "$("$W/fsprobe" mmap "$w/mmap.bin")" "$(awk '$2 == "w/mmap.bin" { print $3, $4 }' <(grep '^SUM' "$log.txt"))"
	h dirs "$(cd "$w" && find d1 -type d | LC_ALL=C sort | tr '\n' ,)" "d1,d1/d2,d1/dm2,d1/dm2/sub,"
	h renamed "$(cat "$w/d1/c.txt" 2>&1),$(cat "$w/d1/dm2/sub/inner" 2>&1),$(cat "$w/r2" 2>&1)" "a,inner,new"
	h rename_sources_gone "$(ls -d "$w/a.txt" "$w/b.txt" "$w/dm" "$w/r1" 2>/dev/null | wc -l)" 0
	h readlink "$(readlink "$w/sl"),$(readlink "$w/dangling")" "d1/c.txt,/nonexistent/target"
	h symlink_type "$(stat -c %F "$w/sl")" "symbolic link"
	h hardlink_same_ino "$([ "$(stat -c %i "$w/h1")" = "$(stat -c %i "$w/h2")" ] && echo yes || echo no)" yes
	h hardlink_nlink "$(stat -c %h "$w/h1")/$(stat -c %h "$w/h2")" 2/2
	h hardlink_data "$(tr '\n' , < "$w/h1")" "h,h2,"
	h modes "$(stat -c %a "$w/m.txt" "$w/md" "$w/x.sh" | tr '\n' ,)" "640,711,755,"
	h mtime_atime_t1 "$(stat -c %Y/%X "$w/t1")" 981173106/1000000000
	h mtime_t2 "$(stat -c %Y "$w/t2")" 981173106
	h mtime_dir "$(stat -c %Y "$w/td")" 1234567890
	h gen_count "$(find "$w/gen" -type f | wc -l)" 200
	h small_files "$(cat "$w/s.txt"),$(stat -c %s "$w/empty"),$(cat "$w/sz")" "x,0,12345"
	h owner "$(stat -c %u:%g "$w/m.txt")" 0:0
	h many_untouched "$(find "$E/many" -type f | wc -l)" 10000
	h up_link "$(readlink "$w/up")" ../../../../../../..
	h secret_not_in_log "$(grep -c "$SECRET_TOKEN" "$log.txt")" 0
	h secret_intact "$(cat "$SECRET")" "$SECRET_TOKEN"
	printf '%s\n' "${hres[@]}" >> "$res"
	grep '^INFO probe' "$log.txt" | sed 's/^/  /'
	[ -n "${RESULTS_DIR:-}" ] && mkdir -p "$RESULTS_DIR" && cp "$res" "$RESULTS_DIR/"
}

for m in $MODES; do run_mode "$m"; done
echo "guest-workload ($KIND: $MODES): $PASSES passed, $FAILS failed"
exit "$FAILS"
