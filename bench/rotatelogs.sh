#!/usr/bin/env bash
# Capture benchmark: a byte stream through `ship rotatelogs` vs Apache's `rotatelogs`
# (Debian apache2-utils), both rotating by size into local files.
#
#   bench/rotatelogs.sh
#
# Environment:
#   BENCH_BYTES        bytes per run (default 1000000000 = 1 GB)
#   BENCH_RUNS         rounds; each round measures every tool on every input once (default 3);
#                      the summary uses the median wall time
#   BENCH_INPUTS       space-separated subset of "yes apache" (default both):
#                        yes    - `yes` of one 120-byte line, cut to BENCH_BYTES with head -c
#                        apache - bench/gen_apache_log.py's combined log (cached in bench/work/),
#                                 piped with cat
#   BENCH_ROTATE       size spec both tools get (default 100M)
#   BENCH_QUIET_WAIT   seconds to wait for an idle machine before each measurement (default 60)
#   BENCH_TIMEOUT      seconds any single measurement may take (default 600)
#   BENCH_REV          build and measure this git revision from a clean export (see lib.sh)
#   BENCH_NO_BUILD=1   skip `cargo build`
#
# Tools: "apache" = /usr/bin/rotatelogs; "ship" = ship-rotatelogs with its defaults (which
# fsync each file closed by a rotation, on a background thread, and the last one before
# exiting); "ship-nofsync" = ship-rotatelogs --no-fsync, which does what rotatelogs does. Wall time runs from the start of the pipeline to the exit of
# the rotating tool (all bytes written, to the page cache; ship's fsyncs are included). Right
# after, a `sync` is timed ("sync s"): "to disk" throughput counts wall + sync, the time until
# the data is on the device, which is what ship's default (fsync) waits for anyway. CPU and
# peak RSS of the rotating tool are from /usr/bin/time. Loss check: the output files concatenated in name order must equal the input
# byte for byte (cmp), and their total size must equal the input's.
# Not part of the test suite. Results and method: docs/benchmarks.md.

set -euo pipefail

BENCH_TAG=rotatelogs
QUIET_WAIT=${BENCH_QUIET_WAIT:-60}
# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
BYTES=${BENCH_BYTES:-1000000000}
RUNS=${BENCH_RUNS:-3}
INPUTS=${BENCH_INPUTS:-"yes apache"}
ROTATE=${BENCH_ROTATE:-100M}
TIMEOUT=${BENCH_TIMEOUT:-600}
YES_LINE='127.0.0.1 - - [23/Nov/2026:08:00:00 +0000] "GET /index.html HTTP/1.1" 200 5120 "-" "bench/1.0 (yes-style input)"'

bench_build
SHIP_RL=$BIN/ship-rotatelogs
[[ -x $SHIP_RL ]] || die "$SHIP_RL missing"

need_pkgs=()
[[ -x /usr/bin/rotatelogs ]] || need_pkgs+=(apache2-utils)
[[ -x /usr/bin/time ]] || need_pkgs+=(time)
if (( ${#need_pkgs[@]} )); then
    SUDO=
    (( EUID == 0 )) || SUDO=sudo
    log "installing ${need_pkgs[*]}"
    if ! $SUDO apt-get install -y "${need_pkgs[@]}" >&2; then
        $SUDO apt-get update >&2
        $SUDO apt-get install -y "${need_pkgs[@]}" >&2
    fi
fi
APACHE_RL=/usr/bin/rotatelogs

if [[ " $INPUTS " == *" apache "* ]]; then
    bench_input "$BYTES"
fi

RUN=$WORK/rotatelogs-run
rm -rf "$RUN"
mkdir -p "$RUN"
RESULTS=$RUN/results.tsv
printf 'tool\tinput\tround\twall_ns\tsync_ns\tuser_s\tsys_s\tmaxrss_kb\tfiles\tout_bytes\tbusy_pct\tok\tnote\n' >"$RESULTS"
FAILED=0
record() { local IFS=$'\t'; echo "$*" >>"$RESULTS"; }

# produce INPUT_KIND: writes the input stream to stdout.
produce() {
    case $1 in
        yes) yes "$YES_LINE" | head -c "$BYTES" ;;
        apache) cat "$INPUT" ;;
    esac
}

input_bytes() {
    case $1 in
        yes) echo "$BYTES" ;;
        apache) echo "$IN_BYTES" ;;
    esac
}

# measure TOOL INPUT_KIND ROUND
measure() {
    local tool=$1 kind=$2 round=$3 out=$RUN/out-$1 t0 t1 busy rc=0 ok=1 note=""
    local cmd
    case $tool in
        apache) cmd=("$APACHE_RL" "$out/access" "$ROTATE") ;;
        ship) cmd=("$SHIP_RL" "$out/access" "$ROTATE") ;;
        ship-nofsync) cmd=("$SHIP_RL" --no-fsync "$out/access" "$ROTATE") ;;
    esac
    rm -rf "$out"; mkdir -p "$out"; sync
    busy=$(wait_quiet)
    t0=$(now_ns)
    # The producer's own status is ignored: `yes` dies of SIGPIPE when head is done.
    set +e
    produce "$kind" | timeout "$TIMEOUT" /usr/bin/time -f '%U %S %M' -o "$RUN/$tool.time" \
        "${cmd[@]}" 2>"$RUN/$tool.log"
    rc=${PIPESTATUS[1]}
    set -e
    t1=$(now_ns)
    local sync_ns; sync_ns=$(time_sync)
    local files expect out_bytes
    expect=$(input_bytes "$kind")
    mapfile -t files < <(cd "$out" && ls | sort)
    out_bytes=$(cd "$out" && cat "${files[@]}" | wc -c)
    if (( rc != 0 )); then
        ok=0; note="exit $rc: $(tail -1 "$RUN/$tool.log")"
    elif (( out_bytes != expect )); then
        ok=0; note="$out_bytes bytes out of $expect: $(( expect - out_bytes )) lost"
    elif ! (cd "$out" && cat "${files[@]}") | cmp -s - <(produce "$kind"); then
        ok=0; note="same size, bytes differ"
    fi
    (( ok )) || FAILED=1
    # shellcheck disable=SC2046
    record "$tool" "$kind" "$round" $(( t1 - t0 )) "$sync_ns" $(read_time "$RUN/$tool.time") \
        "${#files[@]}" "$out_bytes" "$busy" "$ok" "$note"
    rm -rf "$out"
}

log "bytes per run: $BYTES; inputs: $INPUTS; rotation: $ROTATE; $RUNS round(s)"
for round in $(seq "$RUNS"); do
    for kind in $INPUTS; do
        for tool in apache ship ship-nofsync; do
            log "round $round: $tool <- $kind"
            measure "$tool" "$kind" "$round"
        done
    done
done

{
    machine_lines
    echo "rotatelogs: $(dpkg-query -W -f '${Package} ${Version}' apache2-utils 2>/dev/null || echo unknown)"
    echo "revision: $REV_DESC"
    echo "rotation: $ROTATE (size); inputs: $INPUTS"
} >"$RUN/machine.txt"
cat "$RUN/machine.txt"
python3 - "$RESULTS" <<'PY' | tee "$RUN/summary.txt"
import csv, statistics, sys

rows = list(csv.DictReader(open(sys.argv[1]), delimiter="\t"))
print("per round:")
print(f"{'tool':13} {'input':7} {'round':>5} {'wall s':>8} {'MB/s':>8} {'sync s':>7} {'files':>5} {'busy%':>5} ok  note")
for r in rows:
    w = int(r["wall_ns"]) / 1e9
    print(f"{r['tool']:13} {r['input']:7} {r['round']:>5} {w:8.3f} {int(r['out_bytes']) / w / 1e6:8.1f} "
          f"{int(r['sync_ns']) / 1e9:7.2f} {r['files']:>5} {r['busy_pct']:>5} {'yes' if r['ok'] == '1' else 'NO':3} {r['note']}")

print("\nsummary (median wall time over rounds; CPU/RSS from the median round):")
hdr = (f"| {'tool':13} | {'input':7} | {'wall s (min-max)':22} | {'MB/s':>7} | {'vs apache':>9} | "
       f"{'+ sync s':>8} | {'MB/s to disk':>12} | {'vs apache':>9} | {'CPU s':>6} | "
       f"{'peak RSS MiB':>12} | {'bytes lost':>10} |")
print(hdr)
print("|" + "|".join("-" * len(c) for c in hdr.split("|")[1:-1]) + "|")
med, disk = {}, {}
for kind in dict.fromkeys(r["input"] for r in rows):
    for tool in ("apache", "ship", "ship-nofsync"):
        rs = [r for r in rows if r["tool"] == tool and r["input"] == kind]
        if not rs:
            continue
        walls = sorted(int(r["wall_ns"]) / 1e9 for r in rs)
        m = statistics.median(walls)
        med[tool, kind] = m
        mr = min(rs, key=lambda r: abs(int(r["wall_ns"]) / 1e9 - m))
        d = statistics.median((int(r["wall_ns"]) + int(r["sync_ns"])) / 1e9 for r in rs)
        disk[tool, kind] = d
        cpu = float(mr["user_s"]) + float(mr["sys_s"])
        rss = int(mr["maxrss_kb"]) / 1024
        size = int(mr["out_bytes"])
        lost = "0" if all(r["ok"] == "1" for r in rs) else "SOME"
        ratio = f"{med['apache', kind] / m:.2f}x" if ("apache", kind) in med else "-"
        dratio = f"{disk['apache', kind] / d:.2f}x" if ("apache", kind) in disk else "-"
        wall = f"{m:.3f} ({walls[0]:.3f}-{walls[-1]:.3f})"
        print(f"| {tool:13} | {kind:7} | {wall:22} | {size / m / 1e6:7.1f} | {ratio:>9} | "
              f"{d - m:8.2f} | {size / d / 1e6:12.1f} | {dratio:>9} | {cpu:6.2f} | "
              f"{rss:12.1f} | {lost:>10} |")
print("(vs apache: throughput ratio, > 1 = faster than rotatelogs; \"+ sync s\" = median wall+sync"
      " minus median wall; \"to disk\" = until a following sync returns)")
PY

if (( FAILED )); then
    log "CORRECTNESS CHECK FAILED (see 'ok' column above)"
    exit 1
fi
log "all correctness checks passed"
