#!/usr/bin/env bash
# logq benchmark: grep, cut and per-minute aggregation over a combined-format access log,
# plain and as a gzipped rotated category archive, side by side with rg, GNU grep, GNU cut,
# mawk, gawk and `zcat | grep`, in one run on the same cached input.
#
#   bench/logq.sh
#
# Environment:
#   BENCH_BYTES        input size in bytes (default 1000000000 = 1 GB); the input, and its
#                      archive of BENCH_FILES gzipped rotations, are made once per size and
#                      cached under bench/work/ (git-ignored)
#   BENCH_FILES        number of rotated .gz files the archive is cut into (default 16)
#   BENCH_RUNS         rounds; the summary shows each command's median wall and CPU time (default 3)
#   BENCH_ONLY         space-separated subset of the cases (default: all):
#                      grep grep-gz cut-field cut-char count-minute distinct-minute
#   BENCH_QUIET_WAIT   seconds to wait before each case for the machine to be idle (default 30)
#   BENCH_REV          build and measure this git revision from a clean export under bench/work/
#   BENCH_NO_BUILD=1   use the logq binary already built
#
# Every command's output goes through `wc -c` (a pipe, the same for every tool; GNU grep
# would short-cut a direct /dev/null). The output sizes are printed so a reader can see that
# the tools did the same work: identical for grep and cut; for the aggregations the row counts
# match and only the formatting differs. Exits non-zero if logq's grep or cut output differs
# in size from GNU grep's or cut's.
# Not part of the test suite. Results and method: docs/benchmarks.md.

set -euo pipefail

BENCH_TAG=logq
QUIET_WAIT=${BENCH_QUIET_WAIT:-30}
# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
BYTES=${BENCH_BYTES:-1000000000}
FILES=${BENCH_FILES:-16}
RUNS=${BENCH_RUNS:-3}
ONLY=${BENCH_ONLY:-"grep grep-gz cut-field cut-char count-minute distinct-minute"}

# ---------------------------------------------------------------------------------------------
# 1. Build logq (a clean export of BENCH_REV, or the working tree).
bench_build    # scripts/build-release (the same build as every bench)
LOGQ=$BIN/logq
[[ -x $LOGQ ]] || die "no logq binary at $LOGQ"

# 2. Peers.
need=()
command -v rg >/dev/null || need+=(ripgrep)
command -v gawk >/dev/null || need+=(gawk)
command -v mawk >/dev/null || need+=(mawk)
if (( ${#need[@]} )); then
    SUDO=
    (( EUID == 0 )) || SUDO=sudo
    log "installing ${need[*]}"
    $SUDO apt-get install -y -qq "${need[@]}" >&2 || {
        $SUDO apt-get update -qq >&2
        $SUDO apt-get install -y -qq "${need[@]}" >&2
    }
fi

# 3. Input: the plain file, and the same lines as a category archive of gzipped rotations
#    (<data>/access/access_00000.gz ...), compressed two at a time.
bench_input "$BYTES"
DATA=$WORK/logq-data-$BYTES-$FILES
if [[ ! -f $DATA/.done ]]; then
    log "making the archive: $FILES gzipped rotations under $DATA"
    rm -rf "$DATA"
    mkdir -p "$DATA/access"
    split -n "l/$FILES" -d -a 5 "$INPUT" "$DATA/access/access_"
    find "$DATA/access" -name 'access_*' -print0 | xargs -0 -n 1 -P 2 gzip -6
    touch "$DATA/.done"
fi
cat "$DATA"/access/*.gz >/dev/null
GZ_BYTES=$(cat "$DATA"/access/*.gz | wc -c)

RE='"POST [^"]*" 5[0-9][0-9] '
AWK_MIN='{ c[substr($4, 2, 17)]++ } END { for (k in c) print k, c[k] }'
AWK_DISTINCT='{ k = substr($4, 2, 17); if (!((k, $1) in s)) { s[k, $1] = 1; d[k]++ } } END { for (k in d) print k, d[k] }'
export LC_ALL=C

# case NAME: the commands to compare, logq first, one "label<TAB>command" per line.
cmds() {
    case $1 in
    grep)
        printf '%s\t%s\n' \
            logq "$LOGQ grep '$RE' $INPUT" \
            rg "rg --no-filename --no-line-number '$RE' $INPUT" \
            "GNU grep" "grep -E '$RE' $INPUT" ;;
    grep-gz)
        printf '%s\t%s\n' \
            logq "$LOGQ grep -h '$RE' --category access --data-dir $DATA" \
            "zcat | grep" "zcat $DATA/access/*.gz | grep -E '$RE'" \
            "rg -z" "rg -z --no-filename --no-line-number '$RE' $DATA/access/" ;;
    cut-field)
        printf '%s\t%s\n' \
            logq "$LOGQ cut -d ' ' -f 1,7 $INPUT" \
            "GNU cut" "cut -d ' ' -f 1,7 $INPUT" \
            mawk "mawk '{ print \$1, \$7 }' $INPUT" ;;
    cut-char)
        printf '%s\t%s\n' \
            logq "$LOGQ cut -c 1-100 $INPUT" \
            "GNU cut" "cut -c 1-100 $INPUT" ;;
    count-minute)
        printf '%s\t%s\n' \
            logq "$LOGQ count --by minute $INPUT" \
            mawk "mawk '$AWK_MIN' $INPUT" \
            gawk "gawk '$AWK_MIN' $INPUT" ;;
    distinct-minute)
        printf '%s\t%s\n' \
            logq "$LOGQ stats 'count_distinct(ip)' --by minute $INPUT" \
            mawk "mawk '$AWK_DISTINCT' $INPUT" \
            gawk "gawk '$AWK_DISTINCT' $INPUT" ;;
    *) die "unknown case $1" ;;
    esac
}

# run_once CMD: prints "wall_ns cpu_ns output_bytes" (CPU = user + sys of the whole pipeline,
# which on a shared machine is steadier than wall time; wc's share is the same for every tool).
run_once() {
    local t0 wall out tf
    tf=$(mktemp)
    t0=$(now_ns)
    out=$(/usr/bin/time -f '%U %S' -o "$tf" bash -c "set -o pipefail; $1 | wc -c" </dev/null)
    wall=$(( $(now_ns) - t0 ))
    echo "$wall $(tail -1 "$tf" | awk '{ printf "%.0f", ($1 + $2) * 1e9 }') $out"
    rm -f "$tf"
}

median() { sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }

SUMMARY=$WORK/logq-summary.txt
{
    echo "logq benchmark: $REV_DESC"
    machine_lines
    echo "input: $IN_BYTES bytes, $IN_LINES lines (combined format); archive: $FILES .gz files, $GZ_BYTES bytes"
    echo "runs: $RUNS (median wall time); regex: $RE"
    printf '%-16s %-12s %8s %7s %8s %12s %9s %8s\n' case tool "wall s" "MB/s" "cpu s" "out bytes" "vs logq" "cpu vs"
} >"$SUMMARY"

status=0
for c in $ONLY; do
    busy=$(wait_quiet)
    log "case $c (machine ${busy}% busy before it)"
    logq_ns=
    logq_cpu=
    logq_out=
    while IFS=$'\t' read -r label cmd; do
        walls=()
        cpus=()
        out=
        for _ in $(seq "$RUNS"); do
            read -r ns cpu out < <(run_once "$cmd")
            walls+=("$ns")
            cpus+=("$cpu")
        done
        med=$(printf '%s\n' "${walls[@]}" | median)
        cpu=$(printf '%s\n' "${cpus[@]}" | median)
        mbs=$(awk -v b="$IN_BYTES" -v n="$med" 'BEGIN { printf "%.0f", b / (n / 1e9) / 1e6 }')
        if [[ $label == logq ]]; then
            logq_ns=$med
            logq_cpu=$cpu
            logq_out=$out
            ratio="1.00x"
            cratio="1.00x"
        else
            ratio=$(awk -v a="$med" -v b="$logq_ns" 'BEGIN { printf "%.2fx", a / b }')
            cratio=$(awk -v a="$cpu" -v b="$logq_cpu" 'BEGIN { printf "%.2fx", a / b }')
            if [[ $c == grep* || $c == cut* ]] && [[ $label == "GNU "* || $label == "zcat | grep" ]] \
                && [[ $out != "$logq_out" ]]; then
                log "MISMATCH in $c: logq wrote $logq_out bytes, $label $out"
                status=1
            fi
        fi
        printf '%-16s %-12s %8.3f %7s %8.3f %12s %9s %8s\n' "$c" "$label" \
            "$(awk -v n="$med" 'BEGIN { print n / 1e9 }')" "$mbs" \
            "$(awk -v n="$cpu" 'BEGIN { print n / 1e9 }')" "$out" "$ratio" "$cratio" >>"$SUMMARY"
        log "$c / $label: median $(( med / 1000000 )) ms, $out output bytes"
    done < <(cmds "$c")
done
echo "('vs logq' = the tool's wall time / logq's; 'cpu vs' = the same for CPU seconds; above 1 means logq is faster.)" >>"$SUMMARY"
echo "(MB/s of uncompressed input, also for the .gz cases.)" >>"$SUMMARY"
cat "$SUMMARY"
exit $status
