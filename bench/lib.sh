# Shared shell functions of the benchmarks (bench/ingest.sh, bench/relay.sh). Sourced, not run.
#
# The sourcing script sets, before `source`:
#   BENCH_TAG    name shown in log lines ("ingest", "relay")
#   QUIET_WAIT   seconds wait_quiet may wait for an idle machine
# and gets ROOT, BENCH, WORK, CLK_TCK, the PIDS cleanup list with its EXIT trap, and the
# functions below. bench_build and bench_input set globals (documented at each).

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BENCH=$ROOT/bench
WORK=$BENCH/work
mkdir -p "$WORK"
CLK_TCK=$(getconf CLK_TCK)

log() { printf '%s [%s] %s\n' "$(date +%T)" "$BENCH_TAG" "$*" >&2; }
die() { log "ERROR: $*"; exit 2; }

# ---------------------------------------------------------------------------------------------
# Process bookkeeping: everything started in the background is recorded and stopped on exit.
PIDS=()
cleanup() {
    local pid
    for pid in "${PIDS[@]}"; do
        if kill -0 "$pid" 2>/dev/null; then
            kill -TERM "$pid" 2>/dev/null || true
        fi
    done
    for pid in "${PIDS[@]}"; do
        for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$pid" 2>/dev/null || true
    done
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# forget PID: drop a process that has been reaped from the cleanup list.
forget() {
    local p keep=()
    for p in "${PIDS[@]}"; do [[ $p == "$1" ]] || keep+=("$p"); done
    PIDS=("${keep[@]}")
}

# stop_pid PID NAME: SIGTERM, wait up to 30 s, then SIGKILL. Returns the exit status.
stop_pid() {
    local pid=$1 name=$2 rc=0
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 300); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$pid" 2>/dev/null; then
        log "$name (pid $pid) did not stop within 30 s; killing it"
        kill -KILL "$pid" 2>/dev/null || true
    fi
    wait "$pid" 2>/dev/null || rc=$?
    forget "$pid"
    return $rc
}

now_ns() { date +%s%N; }

# proc_cpu_ticks PID: utime+stime of the whole process, in clock ticks.
proc_cpu_ticks() {
    local line rest
    read -r line <"/proc/$1/stat"
    rest=${line##*) }
    # shellcheck disable=SC2086
    set -- $rest
    echo $(( ${12} + ${13} ))
}

# proc_cpu_split PID: "utime stime" of the whole process, in clock ticks.
proc_cpu_split() {
    local line rest
    read -r line <"/proc/$1/stat"
    rest=${line##*) }
    # shellcheck disable=SC2086
    set -- $rest
    echo "${12} ${13}"
}

# proc_hwm_kb PID: peak resident set size (VmHWM) in KiB.
proc_hwm_kb() { awk '/^VmHWM:/ {print $2}' "/proc/$1/status"; }

# cpu_busy_pct: share of all CPUs busy during one second, as an integer percentage.
cpu_busy_pct() {
    local a b
    read -r -a a < <(head -1 /proc/stat)
    sleep 1
    read -r -a b < <(head -1 /proc/stat)
    local i tot=0 idle
    for i in 1 2 3 4 5 6 7 8; do tot=$(( tot + b[i] - a[i] )); done
    idle=$(( b[4] - a[4] + b[5] - a[5] ))
    (( tot > 0 )) || { echo 0; return; }
    echo $(( 100 * (tot - idle) / tot ))
}

# wait_quiet: wait (bounded) until other load is low, so it does not distort a measurement.
# Echoes the last busy percentage seen.
wait_quiet() {
    local busy deadline=$(( $(date +%s) + QUIET_WAIT ))
    busy=$(cpu_busy_pct)
    while (( busy >= 15 && QUIET_WAIT > 0 && $(date +%s) < deadline )); do
        busy=$(cpu_busy_pct)
    done
    (( busy < 15 )) || log "warning: machine is ${busy}% busy with other work; figures will be noisy"
    echo "$busy"
}

time_sync() { local t0; t0=$(now_ns); sync; echo $(( $(now_ns) - t0 )); }

# read_time FILE: "user sys maxrss_kb" from a /usr/bin/time -f '%U %S %M' output file (its
# last line; earlier lines may be "Command exited with non-zero status").
read_time() { tail -1 "$1" 2>/dev/null | awk 'NF == 3 {print; ok = 1} END {if (!ok) print "0 0 0"}'; }

# port_listening PORT: true once something listens on 127.0.0.1:PORT (from /proc/net/tcp).
port_listening() {
    local hex; hex=$(printf '%04X' "$1")
    awk -v p=":$hex" 'NR > 1 && $2 ~ p"$" && $4 == "0A" {found=1} END {exit !found}' /proc/net/tcp
}

# ---------------------------------------------------------------------------------------------
# bench_build: builds the release binaries, every bench the same way (scripts/build-release:
# one package and feature selection, so switching benches never rebuilds the workspace). With
# BENCH_REV, a clean export of that commit is built under bench/work/, so the figures are for a
# known revision and unaffected by uncommitted edits in the working tree. BENCH_NO_BUILD=1
# skips the build. Sets SRC, BIN, REV_DESC, SCRIBED, SHIP.
bench_build() {
    if [[ -n ${BENCH_REV:-} ]]; then
        REV=$(git -C "$ROOT" rev-parse --verify "${BENCH_REV}^{commit}")
        SRC=$WORK/src-${REV:0:12}
        if [[ ! -f $SRC/Cargo.toml && "${BENCH_NO_BUILD:-}" != 1 ]]; then
            log "exporting $REV to $SRC"
            rm -rf "$WORK"/src-*    # earlier exports; the shared target dir stays for incremental builds
            mkdir -p "$SRC.tmp"
            git -C "$ROOT" archive "$REV" | tar -x -C "$SRC.tmp"
            mv "$SRC.tmp" "$SRC"
        fi
        export CARGO_TARGET_DIR=$WORK/target
        BIN=$WORK/target/release
        REV_DESC="$(git -C "$ROOT" log -1 --format='%h %s' "$REV") (clean export)"
    else
        SRC=$ROOT
        BIN=${CARGO_TARGET_DIR:-$ROOT/target}/release
        REV_DESC="$(git -C "$ROOT" log -1 --format='%h %s') + working tree$(git -C "$ROOT" diff --quiet HEAD -- . ':!bench' 2>/dev/null || echo ' (uncommitted changes)')"
    fi
    if [[ "${BENCH_NO_BUILD:-}" != 1 ]]; then
        log "building release binaries in $SRC"
        "$ROOT/scripts/build-release" "$SRC" >&2
    fi
    SCRIBED=$BIN/scribed
    SHIP=$BIN/ship
    [[ -x $SCRIBED && -x $SHIP ]] || die "release binaries missing in $BIN"
}

# bench_input BYTES: generates the input once per size (cached under bench/work/) and warms the
# page cache with it. Sets INPUT, IN_BYTES, IN_LINES.
bench_input() {
    local bytes=$1 t0
    mkdir -p "$WORK"
    INPUT=$WORK/access-$bytes.log
    if [[ ! -s $INPUT ]]; then
        log "generating $bytes bytes of Apache combined log into $INPUT"
        t0=$(now_ns)
        python3 "$BENCH/gen_apache_log.py" "$INPUT.tmp" "$bytes"
        mv "$INPUT.tmp" "$INPUT"
        log "generated in $(( ($(now_ns) - t0) / 1000000 )) ms"
    fi
    if [[ ! -s $INPUT.lines || $INPUT.lines -ot $INPUT ]]; then
        wc -l <"$INPUT" | tr -d ' ' >"$INPUT.lines"
    fi
    IN_BYTES=$(stat -c %s "$INPUT")
    IN_LINES=$(cat "$INPUT.lines")
    # Warm the page cache so every contender reads the input from memory.
    cat "$INPUT" >/dev/null
}

# machine_lines: the "machine:" and "filesystem:" lines of a summary.
machine_lines() {
    echo "machine: $(nproc) CPUs ($(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo)), $(awk '/MemTotal/ {printf "%.1f GiB RAM", $2/1048576}' /proc/meminfo), kernel $(uname -r)"
    echo "filesystem: $(df -PT "$WORK" | awk 'NR==2 {print $2 " on " $1 " (" $7 ")"}')"
}

# Whether a category's archive files (<data>/<cat>/<cat>_N, concatenated in suffix order,
# numeric: suffixes may exceed 5 digits) are byte-identical to <input>. Sets ARCHIVE_FILES to
# the file names and, when they differ, ARCHIVE_PROBLEM to what differs.
archive_matches() {
    local data=$1 category=$2 input=$3 cmp_out
    ARCHIVE_PROBLEM=
    mapfile -t ARCHIVE_FILES < <(find "$data/$category" -maxdepth 1 -type f \
        -regex ".*/${category}_[0-9]+" -printf '%f\n' 2>/dev/null | sort -t_ -k2,2n)
    if (( ${#ARCHIVE_FILES[@]} == 0 )); then
        ARCHIVE_PROBLEM="no output files"
        return 1
    fi
    if ! cmp_out=$(cd "$data/$category" && cat "${ARCHIVE_FILES[@]}" | cmp - "$input" 2>&1); then
        ARCHIVE_PROBLEM="output (${#ARCHIVE_FILES[@]} files, $(cd "$data/$category" &&
            cat "${ARCHIVE_FILES[@]}" | wc -c) bytes) differs from input: $cmp_out"
        return 1
    fi
}
