#!/usr/bin/env bash
# Line coverage of the kernel code the oracle runs (gcov), merged over the translation
# units that inline it: rseq_entry.h is compiled into both wrap_rseq.c and wrap_common.c.
# Usage: kernel-oracle/coverage.sh   (builds with SLICESIM_ORACLE_GCOV=1, runs the tests)
set -euo pipefail
cd "$(dirname "$0")/.."
out_dirs() { ls -d target/debug/build/kernel-oracle-*/out 2>/dev/null; }
for d in $(out_dirs); do rm -f "$d"/*.gcda; done
SLICESIM_ORACLE_GCOV=1 cargo test -q -p kernel-oracle >/dev/null
out=""
for d in $(out_dirs); do
    if compgen -G "$d/*wrap_rseq.gcda" >/dev/null; then out=$d; fi
done
[ -n "$out" ] || { echo "no coverage data: is the kernel source fetched?" >&2; exit 1; }
work=$(mktemp -d)
(cd "$work" && gcov -l -p -o "$OLDPWD/$out" "$OLDPWD/$out"/*wrap_rseq.gcda "$OLDPWD/$out"/*wrap_common.gcda >/dev/null 2>&1)
awk -F: '
    FNR == 1 { src = "" }
    $2 + 0 == 0 && $3 == "Source" { src = $4; sub(/.*\/out\/real\//, "", src); next }
    src == "" { next }
    { c = $1; gsub(/ /, "", c); if (c == "-") next
      k = src SUBSEP ($2 + 0); exe[k] = 1
      if (c !~ /^(#####|=====)/) hit[k] = 1 }
    END {
        for (k in exe) { split(k, p, SUBSEP); n[p[1]]++; if (k in hit) h[p[1]]++ }
        for (s in n) if (s ~ /(kernel\/rseq\.c|rseq_entry\.h|entry\/common\.c|linux\/rseq\.h)$/)
            printf "%-24s %4d of %4d lines (%.1f%%)\n", s, h[s], n[s], 100 * h[s] / n[s]
    }' "$work"/*.gcov | sort
rm -rf "$work"
