#!/usr/bin/env bash
# Native protocol benchmark: `ship < file` into scribed over Scribe's Thrift vs scribed's native
# protocol, with and without gzip, and the cost of exactly-once (the file store's commit log,
# `idempotent = true`, vs `idempotent = false`), at `fsync = "never"` and `fsync = "batch"`.
#
#   bench/native.sh
#
# Variants (BENCH_ONLY picks a subset, in any order):
#   thrift              ship --protocol thrift            (the file store's commit log is on:
#                                                          Thrift batches are recorded too)
#   native              ship --protocol native
#   native-gzip         ship --protocol native --compress
#   native-noidem       ship --protocol native, file store `idempotent = false`
#   ...-fsync           the same with the file store's `fsync = "batch"`
# Names are `thrift|native`, then optionally `-gzip` (native only), `-noidem`, `-fsync`, in that
# order, so e.g. `thrift-noidem` or `native-gzip-fsync` work as well.
#
# Environment:
#   BENCH_BYTES        input size in bytes (default 1000000000 = 1 GB, the Apache combined log
#                      of bench/ingest.sh, cached under bench/work/)
#   BENCH_RUNS         rounds; each round measures every variant once (default 3). Rounds are
#                      interleaved, and each round starts one variant later than the previous
#                      one, so no variant always runs first; the summary uses medians
#   BENCH_ONLY         space-separated variants (default: thrift native native-gzip
#                      native-noidem and the same four with -fsync)
#   SHIP_ARGS          extra flags for ship, e.g. "--batch-bytes 4M"
#   SCRIBED_ARGS       extra flags for scribed
#   BENCH_QUIET_WAIT   seconds to wait, before each measurement, for the machine to be idle
#                      (other CPU load < 15%); 0 disables the wait (default 120)
#   BENCH_TIMEOUT      seconds any single measurement may take (default 600)
#   BENCH_REV          build and measure this git revision from a clean export (see lib.sh)
#   BENCH_NO_BUILD=1   skip `cargo build` (use the binaries already built)
#
# Each measurement starts a fresh scribed (own data dir and config file, 127.0.0.1 port 0 for
# both the Scribe and the status listener). Wall time runs from the start of ship to its exit:
# ship exits once every batch is acknowledged, i.e. written by the file store (page cache with
# fsync "never", fdatasync'd with fsync "batch"). The `sync` run right afterwards is reported
# separately. scribed CPU is utime+stime from /proc/PID/stat counted from just before ship
# starts; scribed peak RSS is VmHWM; ship CPU and peak RSS come from /usr/bin/time.
#
# Correctness: the category's files `<data>/<cat>/<cat>_N` (not `<cat>_current`, a symlink),
# concatenated in numeric order, must be byte-identical to the input; ship must exit 0 and
# scribed must stop cleanly on SIGTERM; a native variant's scribed must have logged a native
# client and a Thrift variant's none. Otherwise the script exits 1. Not part of the test
# suite. Results: docs/benchmarks.md, "Native protocol".

set -euo pipefail

BENCH_TAG=native
QUIET_WAIT=${BENCH_QUIET_WAIT:-120}
# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
BYTES=${BENCH_BYTES:-1000000000}
RUNS=${BENCH_RUNS:-3}
ONLY=${BENCH_ONLY:-"thrift native native-gzip native-noidem thrift-fsync native-fsync native-gzip-fsync native-noidem-fsync"}
TIMEOUT=${BENCH_TIMEOUT:-600}
CATEGORY=bench

# variant_opts NAME: sets V_PROTO (thrift|native), V_GZIP, V_IDEM, V_FSYNC; fails on a bad name.
variant_opts() {
    [[ $1 =~ ^(thrift|native)(-gzip)?(-noidem)?(-fsync)?$ ]] || return 1
    V_PROTO=${BASH_REMATCH[1]}
    V_GZIP=0; [[ -n ${BASH_REMATCH[2]} ]] && V_GZIP=1
    V_IDEM=true; [[ -n ${BASH_REMATCH[3]} ]] && V_IDEM=false
    V_FSYNC=never; [[ -n ${BASH_REMATCH[4]} ]] && V_FSYNC=batch
    # gzip exists only on native connections.
    [[ $V_PROTO == native || $V_GZIP == 0 ]]
}
read -r -a VARIANTS <<<"$ONLY"
(( ${#VARIANTS[@]} )) || die "BENCH_ONLY is empty"
for v in "${VARIANTS[@]}"; do
    variant_opts "$v" || die "unknown variant '$v' (thrift|native, then -gzip (native), -noidem, -fsync)"
done

# ---------------------------------------------------------------------------------------------
bench_build
[[ -x /usr/bin/time ]] || die "/usr/bin/time is needed (apt-get install time)"
command -v python3 >/dev/null || die "python3 is needed"
bench_input "$BYTES"

# Not $WORK/run: that is bench/ingest.sh's, and both may be run from one tree.
RUN=$WORK/native-run
rm -rf "$RUN"
mkdir -p "$RUN"
RESULTS=$RUN/results.tsv
printf 'variant\tround\twall_ns\tsync_ns\tserver_cpu_ticks\tserver_hwm_kb\tclient_user_s\tclient_sys_s\tclient_maxrss_kb\tcommits_bytes\tbusy_pct\tok\tnote\n' >"$RESULTS"
FAILED=0

record() { local IFS=$'\t'; echo "$*" >>"$RESULTS"; }

# write_config FILE DATA: the scribed config of the current variant (V_*): one file store for
# every category, with the variant's fsync and idempotent settings.
write_config() {
    cat >"$1" <<EOF
data_dir = "$2"

[[store]]
category = "default"
type = "file"
fsync = "$V_FSYNC"
idempotent = $V_IDEM
EOF
}

bench_variant() {
    local variant=$1 round=$2 t0 t1 busy ok=1 note=""
    variant_opts "$variant"
    local dir=$RUN/$variant data=$RUN/$variant/data ready=$RUN/$variant/ready
    rm -rf "$dir"; mkdir -p "$dir"; sync
    write_config "$dir/scribed.toml" "$data"
    # scribed::native logs each native connection at debug: the check that the protocol asked
    # for is the one used. Nothing per batch is logged at that level.
    # shellcheck disable=SC2086
    RUST_LOG=info,scribed::native=debug "$SCRIBED" --config "$dir/scribed.toml" \
        --listen 127.0.0.1:0 --status-listen 127.0.0.1:0 --ready-file "$ready" ${SCRIBED_ARGS:-} \
        2>"$dir/scribed.log" &
    local spid=$!
    PIDS+=("$spid")
    for _ in $(seq 100); do [[ -s $ready ]] && break; sleep 0.1; done
    [[ -s $ready ]] || die "scribed did not become ready within 10 s (see $dir/scribed.log)"
    local addr; addr=$(head -1 "$ready")
    local ship_args=(--to "$addr" --protocol "$V_PROTO")
    (( V_GZIP )) && ship_args+=(--compress)
    busy=$(wait_quiet)
    local cpu0; cpu0=$(proc_cpu_ticks "$spid")
    local ship_rc=0
    t0=$(now_ns)
    # shellcheck disable=SC2086
    timeout "$TIMEOUT" /usr/bin/time -f '%U %S %M' -o "$dir/ship.time" \
        "$SHIP" "${ship_args[@]}" ${SHIP_ARGS:-} "$CATEGORY" <"$INPUT" 2>"$dir/ship.log" || ship_rc=$?
    t1=$(now_ns)
    local cpu1 hwm sync_ns
    cpu1=$(proc_cpu_ticks "$spid")
    hwm=$(proc_hwm_kb "$spid")
    sync_ns=$(time_sync)
    local stop_rc=0
    stop_pid "$spid" scribed || stop_rc=$?
    if (( ship_rc != 0 )); then
        ok=0; note="ship exited $ship_rc: $(tail -1 "$dir/ship.log")"
    elif (( stop_rc != 0 )); then
        ok=0; note="scribed exited $stop_rc on SIGTERM"
    fi
    local natives; natives=$(grep -c 'native client' "$dir/scribed.log" || true)
    if [[ $V_PROTO == native ]] && (( natives == 0 )); then
        ok=0; note="${note:+$note; }scribed logged no native client"
    elif [[ $V_PROTO == thrift ]] && (( natives > 0 )); then
        ok=0; note="${note:+$note; }scribed logged a native client on a Thrift run"
    fi
    if ! archive_matches "$data" "$CATEGORY" "$INPUT"; then
        ok=0; note="${note:+$note; }$ARCHIVE_PROBLEM"
    fi
    local files=("${ARCHIVE_FILES[@]}")
    # The commit log's size (0 with idempotent = false, where there is none).
    local commits=0
    [[ -f $data/$CATEGORY/.commits ]] && commits=$(stat -c %s "$data/$CATEGORY/.commits")
    [[ $V_IDEM == true && $commits == 0 ]] && { ok=0; note="${note:+$note; }no commit log"; }
    [[ $V_IDEM == false && $commits != 0 ]] && { ok=0; note="${note:+$note; }a commit log with idempotent = false"; }
    (( ok )) || FAILED=1
    # shellcheck disable=SC2046
    record "$variant" "$round" $(( t1 - t0 )) "$sync_ns" $(( cpu1 - cpu0 )) "$hwm" \
        $(read_time "$dir/ship.time") "$commits" "$busy" "$ok" "${note:-${#files[@]} file(s)}"
    if (( ok )); then rm -rf "$data"; else log "keeping $data for inspection"; fi
}

# ---------------------------------------------------------------------------------------------
log "input: $INPUT ($IN_BYTES bytes, $IN_LINES lines); $RUNS round(s) of: ${VARIANTS[*]}"
n=${#VARIANTS[@]}
for round in $(seq "$RUNS"); do
    for i in $(seq 0 $(( n - 1 ))); do
        variant=${VARIANTS[$(( (i + round - 1) % n ))]}
        log "round $round: $variant"
        bench_variant "$variant" "$round"
    done
done

# ---------------------------------------------------------------------------------------------
# Summary.
{
    machine_lines
    echo "revision: $REV_DESC"
    echo "ship args: ${SHIP_ARGS:-(defaults)}; scribed args: ${SCRIBED_ARGS:-(defaults)}"
} >"$RUN/machine.txt"
cat "$RUN/machine.txt"
python3 - "$RESULTS" "$IN_BYTES" "$IN_LINES" "$CLK_TCK" <<'PY' | tee "$RUN/summary.txt"
import csv, statistics, sys

path, in_bytes, in_lines, tck = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
rows = list(csv.DictReader(open(path), delimiter="\t"))
print(f"input: {in_bytes} bytes ({in_bytes / 1e6:.0f} MB), {in_lines} lines\n")

print("per round:")
print(f"{'variant':20} {'round':>5} {'wall s':>8} {'MB/s':>8} {'sync s':>7} {'busy%':>5} ok  note")
for r in rows:
    w = int(r["wall_ns"]) / 1e9
    print(f"{r['variant']:20} {r['round']:>5} {w:8.3f} {in_bytes / w / 1e6:8.1f} "
          f"{int(r['sync_ns']) / 1e9:7.2f} {r['busy_pct']:>5} {'yes' if r['ok'] == '1' else 'NO':3} {r['note']}")

def med(rs, f):
    return statistics.median(f(r) for r in rs)

summary = {}
for v in dict.fromkeys(r["variant"] for r in rows):
    rs = [r for r in rows if r["variant"] == v]
    walls = sorted(int(r["wall_ns"]) / 1e9 for r in rs)
    summary[v] = dict(
        med=statistics.median(walls), best=walls[0], worst=walls[-1],
        srv_cpu=med(rs, lambda r: int(r["server_cpu_ticks"]) / tck),
        srv_rss=med(rs, lambda r: int(r["server_hwm_kb"]) / 1024),
        cl_cpu=med(rs, lambda r: float(r["client_user_s"]) + float(r["client_sys_s"])),
        cl_rss=med(rs, lambda r: int(r["client_maxrss_kb"]) / 1024),
        commits=med(rs, lambda r: int(r["commits_bytes"]) / 1024),
        sync=med(rs, lambda r: int(r["sync_ns"]) / 1e9),
        busy=med(rs, lambda r: int(r["busy_pct"])),
        ok=all(r["ok"] == "1" for r in rs), n=len(rs))

print("\nsummary (medians over rounds, each column on its own):")
hdr = (f"| {'variant':19} | {'wall s (min-max)':22} | {'MB/s':>6} | {'scribed CPU s':>13} | "
       f"{'ship CPU s':>10} | {'scribed peak RSS MiB':>20} | {'ship peak RSS MiB':>17} | "
       f"{'.commits KiB':>12} | {'+ sync s':>8} | {'busy%':>5} | correct |")
print(hdr)
print("|" + "|".join("-" * len(c) for c in hdr.split("|")[1:-1]) + "|")
for v, s in summary.items():
    wall = f"{s['med']:.3f} ({s['best']:.3f}-{s['worst']:.3f})"
    print(f"| {v:19} | {wall:22} | {in_bytes / s['med'] / 1e6:6.1f} | {s['srv_cpu']:13.2f} | "
          f"{s['cl_cpu']:10.2f} | {s['srv_rss']:20.1f} | {s['cl_rss']:17.1f} | "
          f"{s['commits']:12.0f} | {s['sync']:8.2f} | {s['busy']:5.0f} | {'yes' if s['ok'] else 'NO':7} |")

def wall(v, rnd):
    return next((int(r["wall_ns"]) for r in rows if r["variant"] == v and r["round"] == rnd), None)

def ratio(a, b, what):
    if a in summary and b in summary:
        sa, sb = summary[a], summary[b]
        # Also the median of the same-round ratios: a round's variants run minutes apart, not
        # hours, so these follow the machine's drift less than a ratio of medians does.
        pairs = [(wall(a, rnd), wall(b, rnd)) for rnd in dict.fromkeys(r["round"] for r in rows)]
        per_round = statistics.median(wb / wa for wa, wb in pairs if wa and wb)
        print(f"  {a + ' / ' + b:38} throughput {sb['med'] / sa['med']:5.2f}x (per round {per_round:5.2f}x)   "
              f"scribed CPU {sa['srv_cpu'] / sb['srv_cpu']:5.2f}x   ship CPU {sa['cl_cpu'] / sb['cl_cpu']:5.2f}x   ({what})")

print("\nratios of medians (throughput: >1 is faster; CPU: >1 uses more), and the median of the")
print("same-round throughput ratios:")
for sfx in ("", "-fsync"):
    for v in summary:
        if v != "thrift" + sfx and v.endswith(sfx) and (sfx or not v.endswith("-fsync")):
            ratio(v, "thrift" + sfx, "vs Thrift, same fsync")
for sfx in ("", "-fsync"):
    ratio("native-noidem" + sfx, "native" + sfx, "cost of exactly-once: commit log off vs on")
    ratio("native-gzip" + sfx, "native" + sfx, "cost of gzip")
ratio("native-fsync", "native", "cost of fsync = batch")
PY

if (( FAILED )); then
    log "CORRECTNESS CHECK FAILED (see 'ok' column above; outputs kept under $RUN)"
    exit 1
fi
log "all correctness checks passed"
