#!/bin/sh
# workload.sh PORT ANAME OPTS SECRET_PATH [BIG_MB [FULL_LS]]: the 9p workload, run
# inside the test guest (busybox sh) by tests/scripts/guest-workload.sh.
# Mounts 10.0.2.2:PORT (the host's 127.0.0.1) with
#   mount -t 9p -o version=9p2000.L,trans=tcp,port=PORT,aname=ANAME,OPTS
# and exercises it. Output lines, parsed on the host:
#   RESULT NAME VALUE   deterministic outcome (compared across servers)
#   SHA NAME HEX        / SUM NAME HEX SIZE   values the host checks against
#                       its own view of the export
#   TIME NAME SECS      timings (informational)
#   INFO ...            anything else worth reading
# The host pre-creates in the export: many/ (10,000 files), ro/hello.txt, and
# esc-abs, esc-rel, esc-dir (symlinks pointing outside the export, at
# SECRET_PATH). Everything the guest writes goes under w/.
PORT=$1 ANAME=$2 OPTS=$3 SECRET=$4 BIG_MB=${5:-64} FULL_LS=${6:-1}
M=/mnt W=/mnt/w
r() { echo "RESULT $1 $2"; }
up() { cut -d' ' -f1 /proc/uptime; }
el() { awk -v a="$1" -v b="$(up)" 'BEGIN { printf "%.2f", b - a }'; }
# dd with 1 MiB reads: busybox sha256sum reads 4 KiB at a time, one RPC each with cache=none.
sha() { dd if="$1" bs=1M 2>/dev/null | sha256sum | cut -d' ' -f1; }
ok() { if "$@" >/dev/null 2>&1; then echo ok; else echo FAIL; fi; }
refused() { if "$@" >/dev/null 2>&1; then echo ALLOWED; else echo refused; fi; }
same() { if [ "$1" = "$2" ] && [ -n "$1" ]; then echo match; else echo "mismatch($1/$2)"; fi; }
drop() { sync; echo 3 > /proc/sys/vm/drop_caches; }
TZ=UTC; export TZ

mkdir -p $M
if ! mount -t 9p -o "version=9p2000.L,trans=tcp,port=$PORT,aname=$ANAME,$OPTS" 10.0.2.2 $M; then
	r mount FAIL
	exit 1
fi
r mount ok
echo "INFO mount: $(grep " $M " /proc/mounts)"
r statfs "$(ok stat -f $M)"
echo "INFO df: $(df -k $M | tail -n 1)"
r read_host_file "$([ "$(cat $M/ro/hello.txt)" = "hello from the host" ] && echo ok || echo FAIL)"

# --- mkdir / rmdir ---------------------------------------------------------
r mkdir_w "$(ok mkdir $W)"
r mkdir_p "$(ok mkdir -p $W/d1/d2/d3)"
r rmdir "$(ok rmdir $W/d1/d2/d3)"
r rmdir_gone "$([ -e $W/d1/d2/d3 ] && echo present || echo gone)"
r rmdir_nonempty "$(refused rmdir $W/d1)"
r mkdir_exists "$(refused mkdir $W/d1)"
mkdir $W/gone && rmdir $W/gone

# --- big file: create, write, append, truncate, overwrite, read back -------
# Every step is applied to a reference copy in tmpfs too. After the first
# write and at the end the whole file is read back (page cache dropped, so
# reads go to the server) and its sha256 compared with the reference's; the
# steps in between compare the regions they touched (md5 of a dd slice).
# Under TCG sha256sum does ~15 MB/s, so full reads are kept to two.
rg() { dd if="$1" bs=65536 iflag=skip_bytes,count_bytes skip="$2" ${3:+count=$3} 2>/dev/null | md5sum | cut -d' ' -f1; }
both() { same "$(rg $W/big.bin "$@")" "$(rg /tmp/ref "$@")"; }
B=$((BIG_MB * 1048576))
t0=$(up)
dd if=/dev/urandom of=/tmp/ref bs=1M count="$BIG_MB" 2>/dev/null
head -c 1048576 /dev/urandom > /tmp/app
REFSHA=$(sha /tmp/ref)
echo "TIME gen_${BIG_MB}MiB $(el "$t0")"
t0=$(up)
dd if=/tmp/ref of=$W/big.bin bs=1M 2>/dev/null; rc=$?
sync
echo "TIME write_${BIG_MB}MiB $(el "$t0")"
r big_write_rc $rc
r big_write_size "$(stat -c %s $W/big.bin)"
drop
t0=$(up)
r big_write "$(same "$(sha $W/big.bin)" "$REFSHA")"
echo "TIME read_sha_${BIG_MB}MiB $(el "$t0")"
cat /tmp/app >> $W/big.bin; cat /tmp/app >> /tmp/ref
drop
r big_append "$(both $((B - 65536)))"
r big_append_size "$(stat -c %s $W/big.bin)"
SH=$((B - 1234567))
truncate -s $SH $W/big.bin; truncate -s $SH /tmp/ref
drop
r big_trunc_shrink "$(both $((SH - 1048576)))"
r big_trunc_shrink_size "$(stat -c %s $W/big.bin)"
GR=$((SH + 3000000))
truncate -s $GR $W/big.bin; truncate -s $GR /tmp/ref
drop
r big_trunc_grow "$(both $((SH - 65536)))"
r big_trunc_grow_size "$(stat -c %s $W/big.bin)"
for f in $W/big.bin /tmp/ref; do
	dd if=/tmp/app of=$f bs=4096 seek=777 count=20 conv=notrunc 2>/dev/null
	dd if=/tmp/app of=$f bs=1 seek=$((SH - 10)) count=100 conv=notrunc 2>/dev/null
done
drop
r big_overwrite "$(both $((776 * 4096)) $((22 * 4096)))/$(both $((SH - 4096)) 8192)"
drop
t0=$(up)
REFSHA=$(sha /tmp/ref)
r big_final "$(same "$(sha $W/big.bin)" "$REFSHA")"
echo "TIME final_sha $(el "$t0")"
echo "SHA w/big.bin $REFSHA"
rm -f /tmp/ref

# --- mmap read (8 MiB file) -------------------------------------------------
dd if=/dev/urandom of=/tmp/mm bs=1M count=8 2>/dev/null
head -c 5000 /dev/urandom >> /tmp/mm
cp /tmp/mm $W/mmap.bin
drop
t0=$(up)
a=$(fsprobe mmap $W/mmap.bin) b=$(fsprobe mmap /tmp/mm)
echo "TIME mmap_read_8MiB $(el "$t0")"
r mmap_read "$(same "$a" "$b")"
echo "SUM w/mmap.bin $a"
r mmap_private "$(same "$(fsprobe mmap -p $W/mmap.bin)" "$b")"
drop
r mmap_private_nowrite "$(same "$(sha $W/mmap.bin)" "$(sha /tmp/mm)")"
echo "small mmap file" > $W/small.txt; echo "small mmap file" > /tmp/small
drop
r mmap_small "$(same "$(fsprobe mmap $W/small.txt)" "$(fsprobe mmap /tmp/small)")"
rm -f /tmp/mm /tmp/small /tmp/app

# Small-file semantics: O_APPEND, overwrite with shorter content, O_TRUNC.
printf 'one\n' > $W/s.txt; printf 'two\n' >> $W/s.txt
r append_small "$([ "$(cat $W/s.txt)" = "$(printf 'one\ntwo')" ] && echo ok || echo FAIL)"
printf 'x\n' > $W/s.txt
r otrunc_small "$([ "$(cat $W/s.txt)" = x ] && echo ok || echo FAIL)"
: > $W/empty
r empty_size "$(stat -c %s $W/empty)"

# --- rename ----------------------------------------------------------------
echo a > $W/a.txt
r rename_same_dir "$(ok mv $W/a.txt $W/b.txt)"
r rename_cross_dir "$(ok mv $W/b.txt $W/d1/c.txt)"
r rename_old_gone "$([ -e $W/a.txt ] || [ -e $W/b.txt ] && echo present || echo gone)"
mkdir -p $W/dm/sub && echo inner > $W/dm/sub/inner
r rename_dir_cross "$(ok mv $W/dm $W/d1/dm2)"
r rename_dir_content "$(cat $W/d1/dm2/sub/inner 2>&1)"
echo new > $W/r1; echo old > $W/r2
r rename_replace "$(ok mv -f $W/r1 $W/r2)"
r rename_replace_content "$(cat $W/r2)"
mkdir $W/e1 $W/e2 && echo z > $W/e2/file
r rename_dir_over_nonempty "$(refused mv -T $W/e1 $W/e2)"

# --- symlink, readlink, hardlink -------------------------------------------
r symlink "$(ok ln -s d1/c.txt $W/sl)"
r readlink "$(readlink $W/sl)"
r symlink_follow "$(cat $W/sl 2>&1)"
ln -s /nonexistent/target $W/dangling
r readlink_dangling "$(readlink $W/dangling)"
r symlink_is_link "$([ -L $W/sl ] && echo yes || echo no)"
echo h > $W/h1
r hardlink "$(ok ln $W/h1 $W/h2)"
r hardlink_nlink "$(stat -c %h $W/h1)"
r hardlink_same_ino "$([ "$(stat -c %i $W/h1)" = "$(stat -c %i $W/h2)" ] && echo yes || echo no)"
echo h2 >> $W/h2
drop
r hardlink_shared_data "$(cat $W/h1 | tr '\n' ,)"
ln $W/h1 $W/h3 && rm $W/h3
r hardlink_unlink_nlink "$(stat -c %h $W/h1)"

# --- chmod, chown-less attributes, utimes ---------------------------------
echo m > $W/m.txt
chmod 640 $W/m.txt; r chmod_file "$(stat -c %a $W/m.txt)"
mkdir $W/md; chmod 711 $W/md; r chmod_dir "$(stat -c %a $W/md)"
echo x > $W/x.sh; chmod 755 $W/x.sh; r chmod_exec "$(stat -c %a $W/x.sh)"
echo t > $W/t1; echo t > $W/t2
touch -m -d @981173106 $W/t1; touch -a -d @1000000000 $W/t1
r utime_mtime "$(stat -c %Y $W/t1)"
r utime_atime "$(stat -c %X $W/t1)"
touch -d '2001-02-03 04:05:06' $W/t2
r utime_both "$(stat -c %Y/%X $W/t2)"
mkdir $W/td; touch -m -d @1234567890 $W/td
r utime_dir "$(stat -c %Y $W/td)"
r size_after_write "$(printf 12345 > $W/sz; stat -c %s $W/sz)"
r ftype_dir "$(stat -c %F $W/d1)"
r ftype_file "$(stat -c %F $W/m.txt)"
r ftype_link "$(stat -c %F $W/sl)"

# --- directories: 10,000 host-made entries; guest-made entries -------------
# fsprobe readdir lists with getdents only; ls would also stat every entry
# (~3 ms a round trip under TCG).
t0=$(up)
set -- $(fsprobe readdir $M/many)
echo "TIME readdir_10000 $(el "$t0")"
r dir10000_count "$1"
r dir10000_range "$2,$3"
# ls stats every entry: ~35 s for 10,000 under TCG, so only with FULL_LS=1.
if [ "$FULL_LS" = 1 ]; then
	t0=$(up)
	r dir10000_ls "$(ls $M/many | wc -l)"
	echo "TIME ls_10000 $(el "$t0")"
else
	r dir10000_ls skipped
fi
r dir_dotfiles "$(ls -a $M/ro | tr '\n' ,)"
mkdir $W/gen
t0=$(up)
(cd $W/gen && seq 1 300 | sed 's/^/g/' | xargs touch)
r gen_create "$(fsprobe readdir $W/gen)"
(cd $W/gen && seq 1 100 | sed 's/^/g/' | xargs rm)
r gen_unlink "$(fsprobe readdir $W/gen)"
echo "TIME gen_300 $(el "$t0")"
r unlink_gone "$(refused cat $W/gen/g1)"

# --- error cases ----------------------------------------------------------
r enoent "$(cat $M/no/such/file 2>&1 | grep -c 'No such file')"
r enotdir "$(refused ls $M/ro/hello.txt/x)"
r rmdir_file "$(refused rmdir $W/m.txt)"
r unlink_dir "$(refused rm $W/d1)"

# --- escapes: nothing outside the export may show up ------------------------
SB=$(basename "$SECRET")
r escape_dotdot "$(refused cat $M/../../$SECRET)"
r escape_dotdot_rel "$(refused cat $M/../$SB)"
r escape_ls_dotdot "$(ls $M/.. $M/../.. 2>&1 | grep -cx "$SB")"
r escape_symlink_abs "$(refused cat $M/esc-abs)"
r escape_symlink_rel "$(refused cat $M/esc-rel)"
r escape_symlink_dir "$(refused cat $M/esc-dir/$SB)"
r escape_symlink_dir_ls "$(ls $M/esc-dir/ 2>/dev/null | grep -cx "$SB")"
ln -s ../../../../../../.. $W/up
r escape_guest_symlink "$(refused cat $W/up$SECRET)"
# Anything that was printed must not contain the secret; the host checks the log.
for p in $M/esc-abs $M/esc-rel $M/esc-dir/$SB $M/../$SB $W/up$SECRET; do
	echo "INFO probe $p: $(head -c 100 "$p" 2>&1)"
done

cd /
sync
r umount "$(ok umount $M)"
echo "WORKLOAD-DONE"
