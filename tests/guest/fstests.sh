#!/bin/sh
# fstests.sh PORT ANAME FSX_OPS [WHAT]: pjdfstest and fsx inside the test guest
# (run by tests/scripts/fs-suites.sh; pjdfstest, fsx, /etc/pjdfstest.toml,
# /etc/fsx-nommap.toml and users pjd1/pjd2 are added to the guest).
#   1. pjdfstest on a tmpfs folder: the baseline       (lines "PJD tmpfs ...")
#   2. pjdfstest on the 9p mount (msize=1048576)       (lines "PJD 9p ...")
#   3. fsx -N FSX_OPS on the 9p mount, mmap included, with cache=none and
#      with cache=loose (without mmap as well if the mmap run fails)
# WHAT: "all" (default), "pjd" or "fsx". Result lines: RESULT NAME VALUE,
# TIME NAME SECS.
PORT=$1 ANAME=$2 OPS=${3:-10000} WHAT=${4:-all}
O="version=9p2000.L,trans=tcp,port=$PORT,aname=$ANAME,msize=1048576"
up() { cut -d' ' -f1 /proc/uptime; }
el() { awk -v a="$1" -v b="$(up)" 'BEGIN { printf "%.1f", b - a }'; }
pjd() { # pjd LABEL DIR
	t0=$(up)
	{ pjdfstest -c /etc/pjdfstest.toml -p "$2" 2>&1; echo "EXIT $?"; } |
		while IFS= read -r l; do echo "$(up) $l"; done > /tmp/pjd.out
	echo "RESULT pjdfstest_exit_$1 $(sed -n 's/^[0-9.]* EXIT //p' /tmp/pjd.out)"
	echo "TIME pjdfstest_$1 $(el "$t0")"
	# One line per case ("name   ok|FAILED|skipped"), then indented reasons;
	# PJDT lines: uptime at which each case's line came out.
	grep -v '^[0-9.]* EXIT ' /tmp/pjd.out | cut -d' ' -f2- | sed "s/^/PJD $1 /"
	awk -v l="$1" '$2 ~ /::/ { print "PJDT", l, $1, $2 }' /tmp/pjd.out
}
fsx_run() { # fsx_run LABEL FILE [CONFIG]
	mkdir -p /tmp/fsx-$1
	t0=$(up)
	fsx -N "$OPS" -S 7 -P /tmp/fsx-$1 ${3:+-f "$3"} "$2" > /tmp/fsx.out 2>&1
	rc=$?
	echo "TIME fsx_$1 $(el "$t0")"
	echo "RESULT fsx_$1 $([ $rc = 0 ] && echo ok || echo "FAIL($rc)")"
	tail -n 25 /tmp/fsx.out | sed "s/^/FSX $1 /"
	return $rc
}

mkdir -p /mnt /tmp/base
if [ "$WHAT" != fsx ]; then
	mount -t tmpfs -o mode=755 tmpfs /tmp/base
	pjd tmpfs /tmp/base
	umount /tmp/base
	mount -t 9p -o "$O" 10.0.2.2 /mnt || { echo "RESULT mount FAIL"; exit 1; }
	mkdir -p /mnt/pjd && chmod 755 /mnt/pjd
	pjd 9p /mnt/pjd
	umount /mnt || echo "RESULT umount FAIL"
fi
if [ "$WHAT" != pjd ]; then
	mount -t 9p -o "$O" 10.0.2.2 /mnt || { echo "RESULT mount FAIL"; exit 1; }
	mkdir -p /mnt/fsx
	fsx_run none-mmap /mnt/fsx/none.file ||
		fsx_run none-nommap /mnt/fsx/none-nommap.file /etc/fsx-nommap.toml
	umount /mnt
	mount -t 9p -o "$O,cache=loose" 10.0.2.2 /mnt || { echo "RESULT mount FAIL"; exit 1; }
	fsx_run loose-mmap /mnt/fsx/loose.file ||
		fsx_run loose-nommap /mnt/fsx/loose-nommap.file /etc/fsx-nommap.toml
	umount /mnt
fi
echo FSTESTS-DONE
