#!/bin/bash
# differential.sh RESULTS_DIR [KIND_A KIND_B]: compare the result lines the
# suites left in RESULTS_DIR for two servers (default: diod vs ours):
#   KIND-MODE.results   "name value" lines of tests/scripts/guest-workload.sh
#                       (guest RESULT lines, then host:... checks)
#   KIND-pjd.list       "case status" of pjdfstest on the mount (fs-suites.sh)
# Prints a comparison table. A workload difference fails unless listed in
# tests/scripts/differential-allow.txt ("MODE:name  reason", MODE msize or
# loose). pjdfstest differences are listed for information only: diod runs
# with all users squashed to root, and fs-suites.sh gates pjdfstest against
# the tmpfs baseline. Exit status: number of unallowed workload differences
# (99 if there is nothing to compare).
set -uo pipefail
. "$(dirname "$0")/lib.sh"
D=${1:?usage: differential.sh RESULTS_DIR [KIND_A KIND_B]}
A=${2:-diod} B=${3:-ours}
ALLOW=$REPO/tests/scripts/differential-allow.txt
allowed() { grep -v '^#' "$ALLOW" 2>/dev/null | awk -v k="$1" '$1 == k { $1 = ""; sub(/^ /, ""); print "allowed: " $0; f = 1; exit } END { exit !f }'; }

diffs=0 compared=0 same=0 infos=0
table() { # table SUITE FILE_A FILE_B
	local s=$1 fa=$2 fb=$3 name va vb why
	printf '\n%-8s %-46s %-22s %-22s %s\n' SUITE NAME "$A" "$B" VERDICT
	while read -r name; do
		va=$(awk -v n="$name" '$1 == n { $1 = ""; sub(/^ /, ""); print; exit }' "$fa")
		vb=$(awk -v n="$name" '$1 == n { $1 = ""; sub(/^ /, ""); print; exit }' "$fb")
		compared=$((compared + 1))
		if [ "$va" = "$vb" ]; then
			same=$((same + 1))
			[ "${DIFF_VERBOSE:-1}" = 1 ] && printf '%-8s %-46s %-22.22s %-22.22s %s\n' "$s" "$name" "${va:--}" "${vb:--}" same
		elif [ "$s" = pjd ]; then
			printf '%-8s %-46s %-22.22s %-22.22s %s\n' "$s" "$name" "${va:--}" "${vb:--}" "DIFF (information)"
			infos=$((infos + 1))
		elif why=$(allowed "$s:$name"); then
			printf '%-8s %-46s %-22.22s %-22.22s %s\n' "$s" "$name" "${va:--}" "${vb:--}" "DIFF ($why)"
		else
			diffs=$((diffs + 1))
			printf '%-8s %-46s %-22.22s %-22.22s %s\n' "$s" "$name" "${va:--}" "${vb:--}" "DIFF"
			[ ${#va} -gt 22 ] || [ ${#vb} -gt 22 ] && printf '         %s: %s\n         %s: %s\n' "$A" "$va" "$B" "$vb"
		fi
	done < <(cat "$fa" "$fb" | awk '{ print $1 }' | awk '!seen[$0]++')
}

n=0
for fa in "$D/$A"-*.results; do
	[ -f "$fa" ] || continue
	m=${fa##*/$A-}; m=${m%.results}
	fb=$D/$B-$m.results
	[ -f "$fb" ] || { echo "no $fb to compare with $fa"; diffs=$((diffs + 1)); continue; }
	table "$m" "$fa" "$fb"
	n=$((n + 1))
done
if [ -f "$D/$A-pjd.list" ] && [ -f "$D/$B-pjd.list" ]; then
	DIFF_VERBOSE=0 table pjd "$D/$A-pjd.list" "$D/$B-pjd.list"
	echo "(pjdfstest: only differing cases shown)"
	n=$((n + 1))
fi
[ "$n" -gt 0 ] || { echo "differential: nothing to compare in $D"; exit 99; }
echo
echo "differential $A vs $B: $compared compared, $same same, $((compared - same)) different ($infos pjdfstest, for information), $diffs not allowed"
exit "$diffs"
