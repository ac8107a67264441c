#!/usr/bin/env bash
# Follow benchmark: a followed log file shipped to an aggregator. `ship --follow` -> scribed,
# vs rsyslog imfile -> omfwd (TCP) -> a second rsyslogd (imtcp -> omfile), and vs `ship < file`
# -> scribed (stdin, the rate --follow is measured against), on the same input in the same run,
# in two modes:
#   grow    the followers start on an empty file, which then grows as fast as a writer (dd)
#           can append the input to it;
#   static  the whole input is in the file before the followers start (--from-beginning):
#           how fast a backlog is caught up, unbounded by the writer.
#
#   bench/follow.sh
#
# Environment:
#   BENCH_BYTES        input size in bytes (default 1000000000 = 1 GB); the input is generated
#                      once per size and cached under bench/work/ (git-ignored)
#   BENCH_RUNS         rounds; each round measures every pipeline once (default 3); the summary
#                      uses the median wall time of each
#   BENCH_ONLY         space-separated subset of "ship stdin rsyslog" (default: all three);
#                      stdin runs once per round (the input is its file), next to static
#   BENCH_MODES        space-separated subset of "grow static" (default: both)
#   BENCH_CHUNK        size of each append to the followed file, as dd's bs (default 1M)
#   SHIP_ARGS          extra flags for ship, e.g. "--poll"
#   SCRIBED_ARGS       extra flags for scribed
#   BENCH_QUIET_WAIT   seconds to wait, before each measurement, for the machine to be idle
#                      (other CPU load < 15%); 0 disables the wait (default 120)
#   BENCH_TIMEOUT      seconds any single measurement may take (default 600)
#   BENCH_REV          build and measure this git revision from a clean export (see lib.sh)
#   BENCH_NO_BUILD=1   skip `cargo build` (use the binaries already built)
#
# grow: each round starts the receiver and the follower on an empty file, then appends the
# input to that file with `dd` (BENCH_CHUNK per write) as fast as the page cache takes it. The
# wall time runs from the first append to the last byte being in the receiver's output (page
# cache; no fsync); "append s" is how long the writer took. The followers read the file from
# its beginning whenever they first look at it, so when they start does not matter.
# static: the input is copied to the file and synced (a backlog is on disk, not dirty pages
# the kernel writes back during the measurement), then the wall time runs from starting the
# follower to the last byte in the output. stdin: `ship CATEGORY < input` to its own scribed,
# timed the same way (from its start to the last byte in scribed's files); its CPU and peak
# RSS come from /usr/bin/time, as it exits when done.
# CPU (utime+stime) and peak RSS (VmHWM) of the follower and of the receiver come from /proc,
# counted from the start of the wall time.
#
# Exits non-zero when a correctness check fails: scribed's files must be byte-identical to the
# input; rsyslog's output must have the input's line count. Not part of the test suite.
# Results and method: docs/benchmarks.md.

set -euo pipefail

BENCH_TAG=follow
QUIET_WAIT=${BENCH_QUIET_WAIT:-120}
# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
BYTES=${BENCH_BYTES:-1000000000}
RUNS=${BENCH_RUNS:-3}
ONLY=${BENCH_ONLY:-"ship stdin rsyslog"}
MODES=${BENCH_MODES:-"grow static"}
CHUNK=${BENCH_CHUNK:-1M}
TIMEOUT=${BENCH_TIMEOUT:-600}
CATEGORY=bench

# ---------------------------------------------------------------------------------------------
# 1. Build, peer and tools, input.
bench_build
need_pkgs=()
command -v rsyslogd >/dev/null || need_pkgs+=(rsyslog)
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
command -v python3 >/dev/null || die "python3 is needed"
RSYSLOGD=$(command -v rsyslogd)
bench_input "$BYTES"

RUN=$WORK/follow-run
rm -rf "$RUN"
mkdir -p "$RUN"
RESULTS=$RUN/results.tsv
printf 'mode\ttool\tround\twall_ns\tappend_ns\tfollower_cpu_ticks\tfollower_hwm_kb\treceiver_cpu_ticks\treceiver_hwm_kb\tbusy_pct\tok\tnote\n' >"$RESULTS"
FAILED=0

record() { local IFS=$'\t'; echo "$*" >>"$RESULTS"; }

# scribed_bytes DATA: total size of the category's numbered files.
scribed_bytes() {
    local files=("$1/$CATEGORY/${CATEGORY}"_[0-9]*)
    [[ -e ${files[0]} ]] || { echo 0; return; }
    stat -c %s "${files[@]}" | awk '{t += $1} END {print t + 0}'
}

file_bytes() { stat -c %s "$1" 2>/dev/null || echo 0; }

# measure MODE RECEIVER_PID SIZE_FN SIZE_ARG START_FN: prepares $RUN/in.log for MODE, runs
# START_FN (which starts the follower and sets FPID) and waits until SIZE_FN SIZE_ARG reports
# the whole input. Sets WALL_NS, APPEND_NS, F_CPU, F_HWM, R_CPU, R_HWM, BUSY, and NOTE (empty
# when complete).
measure() {
    local mode=$1 rpid=$2 size_fn=$3 size_arg=$4 start_fn=$5
    local f0=0 r0 t0 size last=-1 stalled_since deadline writer=""
    rm -f "$RUN/in.log"
    if [[ $mode == static ]]; then
        cp "$INPUT" "$RUN/in.log"
        sync
        BUSY=$(wait_quiet)
    else
        : >"$RUN/in.log"
        $start_fn
        BUSY=$(wait_quiet)
        f0=$(proc_cpu_ticks "$FPID")
    fi
    r0=$(proc_cpu_ticks "$rpid")
    t0=$(now_ns)
    if [[ $mode == static ]]; then
        $start_fn
    else
        dd if="$INPUT" of="$RUN/in.log" bs="$CHUNK" oflag=append conv=notrunc status=none &
        writer=$!
        PIDS+=("$writer")
    fi
    NOTE=""
    APPEND_NS=0
    stalled_since=$(date +%s)
    deadline=$(( $(date +%s) + TIMEOUT ))
    while :; do
        if (( APPEND_NS == 0 )) && [[ -n $writer ]] && ! kill -0 "$writer" 2>/dev/null; then
            APPEND_NS=$(( $(now_ns) - t0 ))
        fi
        size=$($size_fn "$size_arg")
        (( size >= IN_BYTES )) && break
        if [[ -z ${SENDER_EXITS:-} ]] && ! kill -0 "$FPID" 2>/dev/null; then NOTE="follower exited"; break; fi
        if (( $(date +%s) >= deadline )); then NOTE="timed out"; break; fi
        if (( size != last )); then
            last=$size; stalled_since=$(date +%s)
        elif [[ -z $writer || $APPEND_NS != 0 ]] && (( $(date +%s) - stalled_since >= 10 )); then
            NOTE="output stopped growing at $size bytes"; break
        fi
        sleep 0.01
    done
    WALL_NS=$(( $(now_ns) - t0 ))
    if [[ -n $writer ]]; then
        wait "$writer" || true
        forget "$writer"
    fi
    R_CPU=$(( $(proc_cpu_ticks "$rpid") - r0 ))
    if [[ -n ${SENDER_EXITS:-} ]]; then
        # The sender exits when done: its CPU and peak RSS are in /usr/bin/time's report.
        wait "$FPID" || NOTE="${NOTE:+$NOTE; }sender exited $?"
        forget "$FPID"
        local user sys
        read -r user sys F_HWM <"$RUN/sender.time"
        F_CPU=$(python3 -c "print(round(($user + $sys) * $CLK_TCK))")
    else
        F_CPU=$(( $(proc_cpu_ticks "$FPID") - f0 ))
        F_HWM=$(proc_hwm_kb "$FPID")
    fi
    R_HWM=$(proc_hwm_kb "$rpid")
}

# ---------------------------------------------------------------------------------------------
start_ship() {
    # shellcheck disable=SC2086
    "$SHIP" --to "$SHIP_TO" --state-dir "$RUN/ship-state" --from-beginning \
        --follow "$RUN/in.log=$CATEGORY" ${SHIP_ARGS:-} 2>"$RUN/ship.log" &
    FPID=$!
    PIDS+=("$FPID")
}

start_stdin() {
    /usr/bin/time -f '%U %S %M' -o "$RUN/sender.time" \
        "$SHIP" --to "$SHIP_TO" "$CATEGORY" <"$INPUT" 2>"$RUN/ship.log" &
    FPID=$!
    PIDS+=("$FPID")
}

# bench_stdin MODE ROUND: `ship < input` -> scribed, once per round (with the static mode).
bench_stdin() {
    [[ $1 == static || " $MODES " != *" static "* ]] || return 0
    SENDER_EXITS=1 bench_ship static "$2" start_stdin stdin
}

# bench_ship MODE ROUND [START_FN TOOL]: ship --follow (or START_FN) -> scribed.
bench_ship() {
    local mode=$1 round=$2 start=${3:-start_ship} tool=${4:-ship}
    local data=$RUN/scribed-data ready=$RUN/scribed.ready ok=1
    rm -rf "$data" "$ready" "$RUN/ship-state" "$RUN/in.log"
    sync
    # shellcheck disable=SC2086
    "$SCRIBED" --listen 127.0.0.1:0 --status-listen 127.0.0.1:0 --data-dir "$data" --ready-file "$ready" ${SCRIBED_ARGS:-} \
        2>"$RUN/scribed.log" &
    local spid=$!
    PIDS+=("$spid")
    for _ in $(seq 100); do [[ -s $ready ]] && break; sleep 0.1; done
    [[ -s $ready ]] || die "scribed did not become ready within 10 s (see $RUN/scribed.log)"
    SHIP_TO=$(head -1 "$ready")
    measure "$mode" "$spid" scribed_bytes "$data" "$start"
    local fpid=$FPID stats=""
    if [[ -z ${SENDER_EXITS:-} ]] && kill -0 "$fpid" 2>/dev/null; then
        stop_pid "$fpid" ship || { ok=0; NOTE="${NOTE:+$NOTE; }ship exited $? on SIGTERM"; }
        stats=$(grep -o 'ship: stats .*' "$RUN/ship.log" | tail -1 || true)
    fi
    stop_pid "$spid" scribed || true
    if [[ -n $NOTE ]]; then
        ok=0
    else
        local files
        mapfile -t files < <(find "$data/$CATEGORY" -maxdepth 1 -type f -regex ".*/${CATEGORY}_[0-9]+" \
            -printf '%f\n' 2>/dev/null | sort -t_ -k2,2n)
        if ! (cd "$data/$CATEGORY" && cat "${files[@]}" | cmp -s - "$INPUT"); then
            ok=0; NOTE="output differs from the input"
        else
            NOTE="byte-identical; ${stats#ship: }"
        fi
    fi
    (( ok )) || { FAILED=1; log "$tool round $round failed: $NOTE (see $RUN/ship.log)"; }
    record "$mode" "$tool" "$round" "$WALL_NS" "$APPEND_NS" "$F_CPU" "$F_HWM" "$R_CPU" "$R_HWM" "$BUSY" "$ok" "$NOTE"
    if (( ok )); then rm -rf "$data"; fi
}

# rsyslog, both ends. Receiver as in bench/ingest.sh (imtcp -> omfile, the line as received);
# the follower is imfile in inotify mode (its default) forwarding each line with omfwd over
# TCP. Both: maxMessageSize 64k so no line is cut, control characters kept as they are
# (escapeControlCharactersOnReceive off; rsyslog would otherwise write a tab as "#011"), a
# FixedArray main queue of 100k messages dequeued 256 at a time, and a ruleset bound to the
# input so rsyslogd's own messages stay out of the output.
write_rsyslog_confs() {
    local port=$1
    cat >"$RUN/receiver.conf" <<EOF
global(workDirectory="$RUN/rsyslog-recv" maxMessageSize="64k" parser.escapeControlCharactersOnReceive="off")
module(load="imtcp")
main_queue(queue.type="FixedArray" queue.size="100000" queue.dequeueBatchSize="256")
template(name="rawline" type="string" string="%rawmsg%\n")
ruleset(name="bench") {
  action(type="omfile" file="$RUN/rsyslog.out" template="rawline" ioBufferSize="1m" flushOnTXEnd="on")
}
input(type="imtcp" address="127.0.0.1" port="$port" ruleset="bench" supportOctetCountedFraming="off")
EOF
    cat >"$RUN/follower.conf" <<EOF
global(workDirectory="$RUN/rsyslog-follow" maxMessageSize="64k" parser.escapeControlCharactersOnReceive="off")
module(load="imfile" mode="inotify")
main_queue(queue.type="FixedArray" queue.size="100000" queue.dequeueBatchSize="256")
template(name="rawline" type="string" string="%rawmsg%\n")
ruleset(name="fwd") {
  action(type="omfwd" target="127.0.0.1" port="$port" protocol="tcp" template="rawline")
}
input(type="imfile" file="$RUN/in.log" tag="bench" ruleset="fwd")
EOF
}

start_imfile() {
    "$RSYSLOGD" -n -f "$RUN/follower.conf" -i "$RUN/follower.pid" >"$RUN/follower.log" 2>&1 &
    FPID=$!
    PIDS+=("$FPID")
}

bench_rsyslog() {
    local mode=$1 round=$2 ok=1
    rm -rf "$RUN/rsyslog.out" "$RUN/rsyslog-recv" "$RUN/rsyslog-follow" "$RUN/in.log"
    mkdir -p "$RUN/rsyslog-recv" "$RUN/rsyslog-follow"
    sync
    local port; port=$(python3 "$BENCH/free_port.py")
    write_rsyslog_confs "$port"
    "$RSYSLOGD" -n -f "$RUN/receiver.conf" -i "$RUN/receiver.pid" >"$RUN/receiver.log" 2>&1 &
    local rpid=$!
    PIDS+=("$rpid")
    for _ in $(seq 100); do port_listening "$port" && break; sleep 0.1; done
    port_listening "$port" || die "rsyslogd did not listen on $port within 10 s (see $RUN/receiver.log)"
    measure "$mode" "$rpid" file_bytes "$RUN/rsyslog.out" start_imfile
    local fpid=$FPID
    stop_pid "$fpid" "rsyslogd (imfile)" || true
    stop_pid "$rpid" "rsyslogd (imtcp)" || true
    local out_lines; out_lines=$(wc -l <"$RUN/rsyslog.out" 2>/dev/null || echo 0)
    if [[ -n $NOTE ]]; then
        ok=0
    elif (( out_lines != IN_LINES )); then
        ok=0; NOTE="$out_lines lines out of $IN_LINES"
    elif cmp -s "$RUN/rsyslog.out" "$INPUT"; then
        NOTE="byte-identical"
    else
        NOTE="same line count, bytes differ"
    fi
    (( ok )) || { FAILED=1; log "rsyslog round $round failed: $NOTE"; }
    for f in follower receiver; do
        if grep -q . "$RUN/$f.log"; then log "rsyslogd ($f) said: $(head -3 "$RUN/$f.log" | tr '\n' ' ')"; fi
    done
    record "$mode" rsyslog "$round" "$WALL_NS" "$APPEND_NS" "$F_CPU" "$F_HWM" "$R_CPU" "$R_HWM" "$BUSY" "$ok" "$NOTE"
    if (( ok )); then rm -f "$RUN/rsyslog.out"; fi
}

# ---------------------------------------------------------------------------------------------
log "input: $INPUT ($IN_BYTES bytes, $IN_LINES lines); modes: $MODES (grow appends $CHUNK writes); $RUNS round(s) of: $ONLY"
for round in $(seq "$RUNS"); do
    for mode in $MODES; do
        for tool in $ONLY; do
            log "round $round: $mode: $tool"
            "bench_$tool" "$mode" "$round"
        done
    done
done
rm -f "$RUN/in.log"

# ---------------------------------------------------------------------------------------------
# Summary.
{
    machine_lines
    echo "rsyslog: $("$RSYSLOGD" -v | head -1 | sed 's/ *compiled with://; s/  */ /g')"
    echo "revision: $REV_DESC"
    echo "ship args: ${SHIP_ARGS:-(defaults)}; scribed args: ${SCRIBED_ARGS:-(defaults)}; append chunk: $CHUNK"
} >"$RUN/machine.txt"
cat "$RUN/machine.txt"
python3 "$BENCH/follow_summary.py" "$RESULTS" "$IN_BYTES" "$IN_LINES" "$CLK_TCK" | tee "$RUN/summary.txt"

if (( FAILED )); then
    log "CORRECTNESS CHECK FAILED (see 'ok' column above; outputs kept under $RUN)"
    exit 1
fi
log "all correctness checks passed"
