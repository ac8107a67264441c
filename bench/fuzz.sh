#!/usr/bin/env bash
# Runs every cargo-fuzz target of fuzz/ for a fixed time and prints one table row per target.
#
#   bench/fuzz.sh [SECONDS_PER_TARGET]        (default 60)
#
# Targets are whatever `cargo fuzz list` names (the [[bin]]s of fuzz/Cargo.toml), so a new
# target is picked up without editing this script. Each runs single-process, one after the
# other, starting from its grown corpus (fuzz/corpus/<target>, kept between runs) plus its
# read-only seeds (fuzz/seeds/<target>, when present), under AddressSanitizer (cargo-fuzz's
# default) with a 10 s per-input timeout: an input that takes longer is a finding.
#
# Table columns: executions, exec/s and rss_mb (peak RSS) from libFuzzer's final stats; cov
# (coverage edges) and corpus (inputs/bytes libFuzzer kept) from its last progress line;
# files = inputs in fuzz/corpus/<target> afterwards (cumulative across runs, superseded
# inputs included); new = files this run added;
# findings = files libFuzzer wrote to fuzz/artifacts/<target>/ during this run (crash-,
# timeout-, oom-, leak-), listed after the table. A target stops at its first finding; the
# others still run. Full libFuzzer output: bench/work/fuzz/<target>.log.
#
# Only stable Rust may be installed: RUSTC_BOOTSTRAP=1 lets stable accept the -Z flags
# cargo-fuzz passes (harmless on nightly). cargo-fuzz is installed if missing.
#
# Environment:
#   FUZZ_ONLY          space-separated subset of targets (default: all)
#   FUZZ_TARGET_DIR    cargo target directory for the fuzz build (default: fuzz/target)
#   FUZZ_RSS_LIMIT_MB  libFuzzer -rss_limit_mb (default 2048)
#
# Writes nothing outside fuzz/corpus, fuzz/artifacts and bench/work/fuzz; the numbers go into
# docs by hand. Exit status: 0 when no target found anything, 1 when one did, 2 on errors.
# Not part of the test suite.

set -euo pipefail

BENCH_TAG=fuzz
# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

SECS=${1:-60}
[[ $SECS =~ ^[1-9][0-9]*$ ]] || die "usage: bench/fuzz.sh [SECONDS_PER_TARGET] (got ${1:-})"
FUZZ=$ROOT/fuzz
OUT=$WORK/fuzz
mkdir -p "$OUT"
export RUSTC_BOOTSTRAP=1
# cargo-fuzz looks for the binaries under --target-dir; an inherited CARGO_TARGET_DIR
# would send the build elsewhere.
unset CARGO_TARGET_DIR
TARGET_DIR=${FUZZ_TARGET_DIR:-$FUZZ/target}
RSS_LIMIT=${FUZZ_RSS_LIMIT_MB:-2048}

if ! command -v cargo-fuzz >/dev/null 2>&1; then
    log "installing cargo-fuzz"
    cargo install cargo-fuzz --locked
fi

cd "$FUZZ"
mapfile -t ALL < <(cargo fuzz list)
((${#ALL[@]})) || die "cargo fuzz list named no targets"
if [[ -n ${FUZZ_ONLY:-} ]]; then
    read -r -a TARGETS <<<"$FUZZ_ONLY"
    for t in "${TARGETS[@]}"; do
        printf '%s\n' "${ALL[@]}" | grep -qx -- "$t" || die "no fuzz target $t (have: ${ALL[*]})"
    done
else
    TARGETS=("${ALL[@]}")
fi

log "building ${#TARGETS[@]} targets (release, ASan)"
cargo fuzz build --target-dir "$TARGET_DIR" >"$OUT/build.log" 2>&1 \
    || { tail -30 "$OUT/build.log" >&2; die "cargo fuzz build failed (see $OUT/build.log)"; }

# count_files DIR: regular files directly in DIR (0 when it does not exist).
count_files() { find "$1" -maxdepth 1 -type f 2>/dev/null | wc -l; }

# stat_of LOG NAME: the value of libFuzzer's final `stat::NAME:` line, or empty.
stat_of() { awk -v k="stat::$2:" '$1 == k {v = $2} END {print v}' "$1"; }

ROWS=()
FINDINGS=()
for t in "${TARGETS[@]}"; do
    corpus=$FUZZ/corpus/$t
    artifacts=$FUZZ/artifacts/$t
    mkdir -p "$corpus" "$artifacts"
    dirs=("$corpus")
    [[ -d $FUZZ/seeds/$t ]] && dirs+=("$FUZZ/seeds/$t")
    before=$(mktemp)
    ls -1 "$artifacts" >"$before"
    corpus_before=$(count_files "$corpus")
    log "$t: ${SECS}s from $corpus_before corpus inputs$([[ -d $FUZZ/seeds/$t ]] && echo " + $(count_files "$FUZZ/seeds/$t") seeds")"
    rc=0
    cargo fuzz run --target-dir "$TARGET_DIR" "$t" "${dirs[@]}" -- \
        -max_total_time="$SECS" -timeout=10 -rss_limit_mb="$RSS_LIMIT" \
        -print_final_stats=1 >"$OUT/$t.log" 2>&1 || rc=$?
    execs=$(stat_of "$OUT/$t.log" number_of_executed_units)
    # Without final stats (killed hard), the last `#N` progress line still counts executions.
    [[ -n $execs ]] || execs=$(grep -oE '^#[0-9]+' "$OUT/$t.log" | tail -1 | tr -d '#')
    rate=$(stat_of "$OUT/$t.log" average_exec_per_sec)
    rss=$(stat_of "$OUT/$t.log" peak_rss_mb)
    # libFuzzer's last progress line: edges covered and the live corpus it kept.
    last=$(grep -E '^#[0-9]+' "$OUT/$t.log" | tail -1)
    cov=$(sed -nE 's/.* cov: ([0-9]+).*/\1/p' <<<"$last")
    live=$(sed -nE 's/.* corp: ([0-9]+\/[0-9]+[a-zA-Z]*).*/\1/p' <<<"$last")
    corpus_after=$(count_files "$corpus")
    new=$(comm -13 "$before" <(ls -1 "$artifacts") || true)
    rm -f "$before"
    nfind=0
    if [[ -n $new ]]; then
        while read -r f; do
            FINDINGS+=("$t: fuzz/artifacts/$t/$f")
            nfind=$((nfind + 1))
        done <<<"$new"
    elif ((rc != 0)); then
        FINDINGS+=("$t: exited $rc without an artifact; see $OUT/$t.log")
        nfind=1
    fi
    ROWS+=("$(printf '%-24s %12s %8s %6s %12s %7s %6s %7s %8s' "$t" "${execs:-?}" "${rate:-?}" \
        "${cov:-?}" "${live:-?}" "$corpus_after" "$((corpus_after - corpus_before))" \
        "${rss:-?}" "$nfind")")
done

echo
echo "fuzz run: $(date -u '+%Y-%m-%d %H:%M UTC'), ${SECS}s per target, $(git -C "$ROOT" rev-parse --short HEAD)"
echo "machine:  $(nproc) CPUs, $(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo), $(rustc -V), $(cargo fuzz --version)"
echo
printf '%-24s %12s %8s %6s %12s %7s %6s %7s %8s\n' target executions exec/s cov corpus files new rss_mb findings
printf '%s\n' "${ROWS[@]}"
if ((${#FINDINGS[@]})); then
    echo
    echo "findings (replay: cd fuzz && RUSTC_BOOTSTRAP=1 cargo fuzz run TARGET FILE):"
    printf '  %s\n' "${FINDINGS[@]}"
    exit 1
fi
