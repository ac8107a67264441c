#!/usr/bin/env bash
# Relay benchmark: ship -> central scribed, vs ship -> leaf scribed (buffer store over a
# network store) -> central scribed, and the leaf's spool: ingest into it with the central
# down, then replay of the whole backlog once the central is up.
#
#   bench/relay.sh
#
# Phases, each round (all on loopback, same input file):
#   direct   ship < input -> central (default file store). Wall = ship's run (it exits once
#            every batch was acknowledged, i.e. written by the central).
#   relayed  ship < input -> leaf -> central. The leaf has one block: category "default",
#            type "buffer", primary type "network" (remote = the central). Wall = from ship's
#            start until the central's category files hold as many bytes as the input.
#   spool    the leaf's primary points at a free port where nothing listens: ship < input ->
#            leaf -> spool (every batch appended and fsynced before it is acknowledged).
#            Wall = ship's run.
#   replay   then a central is started on that port; wall = from its start until the leaf's
#            /status shows the buffer store "streaming" with spool_bytes 0 and the central
#            holds all the input bytes. Meanwhile the leaf's VmRSS is sampled every
#            RELAY_SAMPLE_MS, and its VmHWM is reset (/proc/PID/clear_refs) just before, so
#            the reported peak is the replay's own.
#
# Environment:
#   BENCH_BYTES        input size in bytes (default 1000000000 = 1 GB); generated once per size
#                      and cached under bench/work/ (git-ignored), shared with ingest.sh
#   BENCH_RUNS         rounds (default 3); the summary uses the median wall time of each phase
#   BENCH_ONLY         subset of "direct relayed replay" (default: all; "replay" includes the
#                      spool ingest it replays)
#   SHIP_ARGS          extra flags for ship
#   SCRIBED_ARGS       extra flags for every scribed (leaf and central)
#   BENCH_QUIET_WAIT   seconds to wait, before each measurement, for the machine to be idle
#                      (other CPU load < 15%); 0 disables the wait (default 120)
#   BENCH_TIMEOUT      seconds any single measurement may take (default 600)
#   BENCH_REV          build and measure this git revision (e.g. HEAD) from a clean export under
#                      bench/work/ instead of the working tree
#   BENCH_NO_BUILD=1   skip `cargo build` (use the binaries already built)
#   RELAY_RETRY_INTERVAL      the buffer store's retry_interval (default "200ms")
#   RELAY_REPLAY_BATCH_BYTES  the buffer store's replay_batch_bytes (default: scribed's, 1M)
#   RELAY_SAMPLE_MS    RSS / status sampling period during replay (default 100)
#   RELAY_RSS_LIMIT_MB the leaf's peak RSS during replay must stay below this (default 256);
#                      replay memory is meant to be bounded whatever the spool size
#   RELAY_BASE_SCRIBED a scribed binary of another revision (e.g. built with BENCH_REV=<rev>
#                      and CARGO_TARGET_DIR=<dir> scripts/build-release, then copied aside):
#                      every round then runs the leaf's phases (relayed, spool, replay) twice,
#                      first with this binary as the leaf ("base"), then with this tree's
#                      ("now"); ship and the central are this tree's in both, so only the leaf
#                      differs. The summary adds a base-vs-now table. direct runs once a round.
#   RELAY_PERF_DIR     record the leaf with `perf record -F 499 -g` during the relayed and
#                      replay phases, into DIR/leaf-PHASE-VARIANT-ROUND.data (perf's own cost
#                      then shows in the figures: profile in separate runs)
#
# max_spool_bytes is set to twice the input plus 64 MiB, so the whole input fits in the spool
# with its per-record and per-entry overhead.
#
# CPU of ship from /usr/bin/time; of the leaf and the central from /proc/PID/stat (user and
# system separately, counted over the measured part only); peak RSS from /proc/PID/status.
#
# Exits 1 when a correctness check fails: the central's files, concatenated in suffix order,
# must be byte-identical to the input after every phase that ends at the central (a difference
# is reported with byte and line counts, so duplicates show as extra lines); the leaf must end
# drained; the replay's peak RSS must stay under RELAY_RSS_LIMIT_MB. Exits 2 on setup errors.
# Not part of the test suite. Results and method: docs/benchmarks.md ("Relay").

set -euo pipefail

BENCH_TAG=relay
QUIET_WAIT=${BENCH_QUIET_WAIT:-120}
# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
BYTES=${BENCH_BYTES:-1000000000}
RUNS=${BENCH_RUNS:-3}
ONLY=${BENCH_ONLY:-"direct relayed replay"}
TIMEOUT=${BENCH_TIMEOUT:-600}
RETRY_INTERVAL=${RELAY_RETRY_INTERVAL:-200ms}
REPLAY_BATCH_BYTES=${RELAY_REPLAY_BATCH_BYTES:-}
SAMPLE_MS=${RELAY_SAMPLE_MS:-100}
RSS_LIMIT_MB=${RELAY_RSS_LIMIT_MB:-256}
CATEGORY=bench

for phase in $ONLY; do
    [[ $phase == direct || $phase == relayed || $phase == replay ]] \
        || die "BENCH_ONLY: unknown phase '$phase' (direct, relayed, replay)"
done

# ---------------------------------------------------------------------------------------------
bench_build
if [[ ! -x /usr/bin/time ]]; then
    SUDO=
    (( EUID == 0 )) || SUDO=sudo
    log "installing time"
    $SUDO apt-get install -y time >&2 || { $SUDO apt-get update >&2 && $SUDO apt-get install -y time >&2; }
fi
command -v python3 >/dev/null || die "python3 is needed"
command -v curl >/dev/null || die "curl is needed"
bench_input "$BYTES"
MAX_SPOOL=$(( IN_BYTES * 2 + 64 * 1024 * 1024 ))

RUN=$WORK/relay-run
rm -rf "$RUN"
mkdir -p "$RUN"
RESULTS=$RUN/results.tsv
printf 'variant\tphase\tround\twall_ns\tship_user_s\tship_sys_s\tship_maxrss_kb\tleaf_user_ticks\tleaf_sys_ticks\tleaf_hwm_kb\tcentral_user_ticks\tcentral_sys_ticks\tcentral_hwm_kb\tbusy_pct\tall_busy_ticks\tharness_s\tok\tnote\textra\n' >"$RESULTS"
FAILED=0

# The leaf's binary and its label ("now", or "base" with RELAY_BASE_SCRIBED).
VARIANT=now
LEAF_SCRIBED=
VARIANTS=now
if [[ -n ${RELAY_BASE_SCRIBED:-} ]]; then
    [[ -x $RELAY_BASE_SCRIBED ]] || die "RELAY_BASE_SCRIBED: $RELAY_BASE_SCRIBED is not an executable"
    VARIANTS="base now"
fi

# perf_start PHASE ROUND PID / perf_stop: the optional leaf profile (RELAY_PERF_DIR).
PERF_PID=
perf_start() {
    [[ -n ${RELAY_PERF_DIR:-} ]] || return 0
    mkdir -p "$RELAY_PERF_DIR"
    perf record -F 499 -g -p "$3" -o "$RELAY_PERF_DIR/leaf-$1-$VARIANT-$2.data" 2>>"$RUN/perf.log" &
    PERF_PID=$!
    PIDS+=("$PERF_PID")
    sleep 0.5    # perf attaches before the measured part starts
}
perf_stop() {
    [[ -n $PERF_PID ]] || return 0
    kill -INT "$PERF_PID" 2>/dev/null || true
    wait "$PERF_PID" 2>/dev/null || true
    forget "$PERF_PID"
    PERF_PID=
}

record() { local IFS=$'\t'; echo "$VARIANT	$*" >>"$RESULTS"; }

# all_busy_ticks: CPU ticks all CPUs spent busy so far (/proc/stat: everything but idle and
# iowait). Over a measurement, minus what ship, the leaf and the central used, it shows how much
# else ran meanwhile (other people's work, but also kernel writeback of our own files).
all_busy_ticks() {
    local a
    read -r -a a < <(head -1 /proc/stat)
    echo $(( a[1] + a[2] + a[3] + a[6] + a[7] + a[8] ))
}

# launch_scribed NAME ARGS...: starts scribed (status endpoint on a free port, logs to
# $RUN/NAME.log, ready file $RUN/NAME.ready) without waiting. Sets SPID.
launch_scribed() {
    local name=$1 bin=$SCRIBED
    shift
    [[ $name == leaf && -n $LEAF_SCRIBED ]] && bin=$LEAF_SCRIBED
    rm -f "$RUN/$name.ready"
    # shellcheck disable=SC2086
    "$bin" --ready-file "$RUN/$name.ready" --status-listen 127.0.0.1:0 "$@" ${SCRIBED_ARGS:-} \
        2>>"$RUN/$name.log" &
    SPID=$!
    PIDS+=("$SPID")
}

# wait_ready NAME PID: waits up to 10 s for the ready file. Sets SADDR (first Scribe address)
# and SSTATUS (status address).
wait_ready() {
    local ready=$RUN/$1.ready
    for _ in $(seq 1000); do
        [[ -s $ready ]] && break
        kill -0 "$2" 2>/dev/null || break
        sleep 0.01
    done
    [[ -s $ready ]] || die "$1 did not become ready within 10 s (see $RUN/$1.log)"
    SADDR=$(head -1 "$ready")
    SSTATUS=$(awk '$1 == "status" {print $2}' "$ready")
}

# start_scribed NAME ARGS...: launch_scribed, then wait_ready. Sets SPID, SADDR, SSTATUS.
start_scribed() {
    launch_scribed "$@"
    wait_ready "$1" "$SPID"
}

# write_leaf_conf FILE REMOTE SPOOL_DIR
write_leaf_conf() {
    cat >"$1" <<EOF
[[store]]
category = "default"
type = "buffer"
spool_dir = "$3"
max_spool_bytes = $MAX_SPOOL
retry_interval = "$RETRY_INTERVAL"
${REPLAY_BATCH_BYTES:+replay_batch_bytes = \"$REPLAY_BATCH_BYTES\"}

[store.primary]
type = "network"
remote = ["$2"]
EOF
}

# leaf_status ADDR: "state spool_bytes spooled replayed dropped_corrupt" of the leaf's buffer
# store and overall counters, from /status ("? -1 ..." when it cannot be read).
leaf_status() {
    curl -s --max-time 5 "http://$1/status" | python3 -c '
import json, sys
try:
    b = json.load(sys.stdin)
except ValueError:
    print("? -1 -1 -1 -1"); sys.exit()
s = next((s for s in b["stores"] if s["kind"] == "buffer"), {})
c = b.get("counters", {})
print(s.get("state", "?"), s.get("spool_bytes", -1), c.get("scribe_overall:spooled", 0),
      c.get("scribe_overall:replayed", 0), c.get("scribe_overall:dropped corrupt", 0))'
}

# central_size DATA_DIR: bytes in the category's files.
central_size() {
    find "$1/$CATEGORY" -maxdepth 1 -type f -regex ".*/${CATEGORY}_[0-9]+" -printf '%s\n' 2>/dev/null \
        | awk '{s += $1} END {print s + 0}'
}

# wait_central DATA_DIR DEADLINE_S: polls every 10 ms until the central holds IN_BYTES; gives up
# at DEADLINE_S (epoch seconds) or when the size has not changed for 10 s. Echoes the size.
wait_central() {
    local size last=-1 since
    since=$(date +%s)
    while :; do
        size=$(central_size "$1")
        (( size >= IN_BYTES )) && break
        (( $(date +%s) < $2 )) || break
        if (( size != last )); then last=$size; since=$(date +%s)
        elif (( $(date +%s) - since >= 10 )); then break; fi
        sleep 0.01
    done
    echo "$size"
}

# verify_central DATA_DIR: empty output when the category's files, concatenated in suffix order
# (numeric: suffixes may exceed 5 digits), equal the input; otherwise what differs.
verify_central() {
    local dir=$1/$CATEGORY files
    mapfile -t files < <(find "$dir" -maxdepth 1 -type f -regex ".*/${CATEGORY}_[0-9]+" \
        -printf '%f\n' 2>/dev/null | sort -t_ -k2,2n)
    if (( ${#files[@]} == 0 )); then
        echo "central has no output files"
        return
    fi
    local cmp_out
    if ! cmp_out=$(cd "$dir" && cat "${files[@]}" | cmp - "$INPUT" 2>&1); then
        local bytes lines
        bytes=$(cd "$dir" && cat "${files[@]}" | wc -c)
        lines=$(cd "$dir" && cat "${files[@]}" | wc -l)
        echo "central output (${#files[@]} files, $bytes bytes, $lines lines; input $IN_BYTES bytes, $IN_LINES lines, so $(( lines - IN_LINES )) extra lines) differs: $cmp_out"
    fi
}

# ticks_diff "U1 S1" "U0 S0": "U1-U0 S1-S0"
ticks_diff() {
    local a b
    read -r -a a <<<"$1"
    read -r -a b <<<"$2"
    echo "$(( a[0] - b[0] )) $(( a[1] - b[1] ))"
}

run_ship() {  # run_ship ADDR TIMEFILE LOG: ship < input; returns ship's exit status
    # shellcheck disable=SC2086
    timeout "$TIMEOUT" /usr/bin/time -f '%U %S %M' -o "$2" \
        "$SHIP" --to "$1" ${SHIP_ARGS:-} "$CATEGORY" <"$INPUT" 2>"$3"
}

# keep_failed PHASE ROUND DIR...: moves a failed phase's directories aside for inspection.
keep_failed() {
    local dest=$RUN/failed-$1-$2 d
    shift 2
    mkdir -p "$dest"
    for d in "$@"; do [[ -e $d ]] && mv "$d" "$dest/"; done
    log "keeping $dest for inspection"
}

# ---------------------------------------------------------------------------------------------
bench_direct() {
    local round=$1 data=$RUN/central-data ok=1 note="" busy t0 t1 s0 s1
    rm -rf "$data"; sync
    start_scribed central --listen 127.0.0.1:0 --data-dir "$data"
    local cpid=$SPID caddr=$SADDR
    busy=$(wait_quiet)
    local c0 c1 chwm ship_rc=0
    c0=$(proc_cpu_split "$cpid")
    s0=$(all_busy_ticks)
    t0=$(now_ns)
    run_ship "$caddr" "$RUN/ship.time" "$RUN/ship.log" || ship_rc=$?
    t1=$(now_ns)
    s1=$(all_busy_ticks)
    c1=$(proc_cpu_split "$cpid")
    chwm=$(proc_hwm_kb "$cpid")
    local stop_rc=0
    stop_pid "$cpid" central || stop_rc=$?
    (( ship_rc == 0 )) || { ok=0; note="ship exited $ship_rc: $(tail -1 "$RUN/ship.log")"; }
    (( stop_rc == 0 )) || { ok=0; note="${note:+$note; }central exited $stop_rc on SIGTERM"; }
    local diff; diff=$(verify_central "$data")
    [[ -z $diff ]] || { ok=0; note="${note:+$note; }$diff"; }
    (( ok )) || FAILED=1
    # shellcheck disable=SC2046
    record direct "$round" $(( t1 - t0 )) $(read_time "$RUN/ship.time") - - - \
        $(ticks_diff "$c1" "$c0") "$chwm" "$busy" $(( s1 - s0 )) 0 "$ok" "${note:-byte-identical}" -
    if (( ok )); then rm -rf "$data"; else keep_failed direct "$round" "$data"; fi
}

bench_relayed() {
    local round=$1 data=$RUN/central-data spool=$RUN/spool ok=1 note="" busy t0 t1 tship s0 s1
    rm -rf "$data" "$spool" "$RUN/leaf-data"; sync
    start_scribed central --listen 127.0.0.1:0 --data-dir "$data"
    local cpid=$SPID caddr=$SADDR
    write_leaf_conf "$RUN/leaf.toml" "$caddr" "$spool"
    start_scribed leaf --config "$RUN/leaf.toml" --listen 127.0.0.1:0 --data-dir "$RUN/leaf-data"
    local lpid=$SPID laddr=$SADDR lstatus=$SSTATUS
    busy=$(wait_quiet)
    local c0 c1 l0 l1 chwm lhwm ship_rc=0 size
    perf_start relayed "$round" "$lpid"
    c0=$(proc_cpu_split "$cpid")
    l0=$(proc_cpu_split "$lpid")
    s0=$(all_busy_ticks)
    t0=$(now_ns)
    run_ship "$laddr" "$RUN/ship.time" "$RUN/ship.log" || ship_rc=$?
    tship=$(now_ns)
    size=$(wait_central "$data" $(( $(date +%s) + TIMEOUT )))
    t1=$(now_ns)
    s1=$(all_busy_ticks)
    c1=$(proc_cpu_split "$cpid")
    l1=$(proc_cpu_split "$lpid")
    chwm=$(proc_hwm_kb "$cpid")
    lhwm=$(proc_hwm_kb "$lpid")
    perf_stop
    local st; read -r -a st < <(leaf_status "$lstatus")
    local stop_rc=0
    stop_pid "$lpid" leaf || stop_rc=$?
    stop_pid "$cpid" central || stop_rc=$?
    (( ship_rc == 0 )) || { ok=0; note="ship exited $ship_rc: $(tail -1 "$RUN/ship.log")"; }
    (( stop_rc == 0 )) || { ok=0; note="${note:+$note; }a scribed exited $stop_rc on SIGTERM"; }
    (( size >= IN_BYTES )) || { ok=0; note="${note:+$note; }central reached only $size of $IN_BYTES bytes"; }
    [[ ${st[0]} == streaming && ${st[1]} == 0 ]] \
        || { ok=0; note="${note:+$note; }leaf buffer store ended ${st[0]} with spool_bytes ${st[1]}"; }
    local diff; diff=$(verify_central "$data")
    [[ -z $diff ]] || { ok=0; note="${note:+$note; }$diff"; }
    # Expected: nothing spooled (the central never failed). Not an error, but worth seeing.
    (( ${st[2]} == 0 )) || note="${note:+$note; }${st[2]} messages went through the leaf's spool"
    (( ok )) || FAILED=1
    # shellcheck disable=SC2046
    record relayed "$round" $(( t1 - t0 )) $(read_time "$RUN/ship.time") $(ticks_diff "$l1" "$l0") "$lhwm" \
        $(ticks_diff "$c1" "$c0") "$chwm" "$busy" $(( s1 - s0 )) 0 "$ok" "${note:-byte-identical}" \
        "ship_ns=$(( tship - t0 )),spooled=${st[2]}"
    if (( ok )); then rm -rf "$data" "$spool"; else keep_failed relayed "$round" "$data" "$spool"; fi
}

bench_replay() {
    local round=$1 data=$RUN/central-data spool=$RUN/spool ok=1 note="" busy t0 t1 s0 s1
    rm -rf "$data" "$spool" "$RUN/leaf-data"; sync
    local port; port=$(python3 "$BENCH/free_port.py")
    port_listening "$port" && die "port $port is taken"
    write_leaf_conf "$RUN/leaf.toml" "127.0.0.1:$port" "$spool"
    start_scribed leaf --config "$RUN/leaf.toml" --listen 127.0.0.1:0 --data-dir "$RUN/leaf-data"
    local lpid=$SPID laddr=$SADDR lstatus=$SSTATUS

    # 1. Ingest into the spool (the central is down).
    busy=$(wait_quiet)
    local l0 l1 lhwm ship_rc=0
    l0=$(proc_cpu_split "$lpid")
    s0=$(all_busy_ticks)
    t0=$(now_ns)
    run_ship "$laddr" "$RUN/ship.time" "$RUN/ship.log" || ship_rc=$?
    t1=$(now_ns)
    s1=$(all_busy_ticks)
    l1=$(proc_cpu_split "$lpid")
    lhwm=$(proc_hwm_kb "$lpid")
    local st; read -r -a st < <(leaf_status "$lstatus")
    local spool_bytes=${st[1]} spool_disk
    spool_disk=$(du -sb "$spool" | cut -f1)
    (( ship_rc == 0 )) || { ok=0; note="ship exited $ship_rc: $(tail -1 "$RUN/ship.log")"; }
    (( spool_bytes >= IN_BYTES )) || { ok=0; note="${note:+$note; }spool holds $spool_bytes bytes, less than the input"; }
    (( ok )) || FAILED=1
    # shellcheck disable=SC2046
    record spool "$round" $(( t1 - t0 )) $(read_time "$RUN/ship.time") $(ticks_diff "$l1" "$l0") "$lhwm" \
        - - - "$busy" $(( s1 - s0 )) 0 "$ok" "${note:-state ${st[0]}, ${st[2]} messages spooled}" \
        "spool_bytes=$spool_bytes,spool_disk=$spool_disk,spooled=${st[2]}"
    if (( ! ok )); then
        log "spool ingest failed ($note); skipping the replay of round $round"
        stop_pid "$lpid" leaf || true
        return
    fi

    # 2. Start the central on the leaf's upstream port and time the replay.
    note=""
    sync
    busy=$(wait_quiet)
    local hwm_reset=1
    echo 5 >"/proc/$lpid/clear_refs" 2>/dev/null || hwm_reset=0
    local lrss0; lrss0=$(awk '/^VmRSS:/ {print $2}' "/proc/$lpid/status")
    # The watcher starts first (its imports take a while) and begins on watch.go.
    rm -f "$RUN/watch.ready" "$RUN/watch.go"
    python3 "$BENCH/relay_watch.py" "$lpid" "$lstatus" "$data/$CATEGORY" "$CATEGORY" "$IN_BYTES" \
        "$RUN" "$SAMPLE_MS" "$TIMEOUT" 60 "$RUN/replay-samples-$round.tsv" >"$RUN/watch.out" &
    local wpid=$!
    PIDS+=("$wpid")
    for _ in $(seq 1000); do [[ -e $RUN/watch.ready ]] && break; sleep 0.01; done
    [[ -e $RUN/watch.ready ]] || die "relay_watch.py did not start within 10 s"
    perf_start replay "$round" "$lpid"
    l0=$(proc_cpu_split "$lpid")
    s0=$(all_busy_ticks)
    touch "$RUN/watch.go"
    t0=$(now_ns)
    launch_scribed central --listen "127.0.0.1:$port" --data-dir "$data"
    local cpid=$SPID
    wait "$wpid" || true
    forget "$wpid"
    s1=$(all_busy_ticks)
    wait_ready central "$cpid"
    local tready; tready=$(stat -c %.9Y "$RUN/central.ready" | tr -d .)
    local watch_out; watch_out=$(cat "$RUN/watch.out")
    perf_stop
    l1=$(proc_cpu_split "$lpid")
    lhwm=$(proc_hwm_kb "$lpid")
    local c1 chwm
    c1=$(proc_cpu_split "$cpid")
    chwm=$(proc_hwm_kb "$cpid")
    local -A w
    local kv
    while IFS= read -r kv; do w[${kv%%=*}]=${kv#*=}; done <<<"$watch_out"
    local harness=${w[cpu_s]:-0}
    if [[ ${w[outcome]} == no-go ]]; then die "relay_watch.py never saw watch.go"; fi
    read -r -a st < <(leaf_status "$lstatus")
    local stop_rc=0
    stop_pid "$lpid" leaf || stop_rc=$?
    stop_pid "$cpid" central || stop_rc=$?
    local spool_after; spool_after=$(du -sb "$spool" | cut -f1)
    t1=${w[end_ns]}
    if [[ ${w[outcome]} != done ]]; then
        ok=0
        note="replay did not finish (${w[outcome]}): central has ${w[central_bytes]} of $IN_BYTES bytes, leaf ${w[state]} with spool_bytes ${w[spool_bytes]}"
        t1=$(now_ns)
    fi
    (( stop_rc == 0 )) || { ok=0; note="${note:+$note; }a scribed exited $stop_rc on SIGTERM"; }
    (( ${st[4]} == 0 )) || { ok=0; note="${note:+$note; }${st[4]} spool records dropped as corrupt"; }
    local diff; diff=$(verify_central "$data")
    [[ -z $diff ]] || { ok=0; note="${note:+$note; }$diff"; }
    local first_rel=0 all_rel=0
    (( ${w[first_byte_ns]} == 0 )) || first_rel=$(( ${w[first_byte_ns]} - t0 ))
    (( ${w[all_bytes_ns]} == 0 )) || all_rel=$(( ${w[all_bytes_ns]} - t0 ))
    local peak_kb=${w[rss_peak_kb]}
    (( hwm_reset && lhwm > peak_kb )) && peak_kb=$lhwm
    if (( peak_kb > RSS_LIMIT_MB * 1024 )); then
        ok=0; note="${note:+$note; }leaf peak RSS during replay $(( peak_kb / 1024 )) MiB > limit $RSS_LIMIT_MB MiB"
    fi
    (( ok )) || FAILED=1
    # The central's CPU counts from its start, which is the phase's start.
    # shellcheck disable=SC2046,SC2086
    record replay "$round" $(( t1 - t0 )) - - - $(ticks_diff "$l1" "$l0") "$( (( hwm_reset )) && echo "$lhwm" || echo -)" \
        $c1 "$chwm" "$busy" $(( s1 - s0 )) "$harness" "$ok" \
        "${note:-byte-identical, ${st[3]} messages replayed}" \
        "spool_bytes=$spool_bytes,ready_ns=$(( tready - t0 )),first_byte_ns=$first_rel,all_bytes_ns=$all_rel,rss_before_kb=$lrss0,rss_start_kb=${w[rss_start_kb]},rss_peak_kb=${w[rss_peak_kb]},rss_end_kb=${w[rss_end_kb]},samples=${w[samples]},replayed=${st[3]},spool_disk_after=$spool_after"
    if (( ok )); then rm -rf "$data" "$spool"; else keep_failed replay "$round" "$data" "$spool"; fi
}

# ---------------------------------------------------------------------------------------------
log "input: $INPUT ($IN_BYTES bytes, $IN_LINES lines); $RUNS round(s) of: $ONLY"
for round in $(seq "$RUNS"); do
    for VARIANT in $VARIANTS; do
        LEAF_SCRIBED=
        [[ $VARIANT == base ]] && LEAF_SCRIBED=$RELAY_BASE_SCRIBED
        for phase in $ONLY; do
            # direct has no leaf: once a round is enough.
            [[ $phase == direct && $VARIANT == base ]] && continue
            log "round $round: $phase (leaf: $VARIANT)"
            "bench_$phase" "$round"
        done
    done
done
VARIANT=now

# ---------------------------------------------------------------------------------------------
# Summary.
{
    machine_lines
    echo "revision: $REV_DESC"
    [[ -z ${RELAY_BASE_SCRIBED:-} ]] || echo "base leaf: $RELAY_BASE_SCRIBED ($("$RELAY_BASE_SCRIBED" --version 2>/dev/null || echo '?'))"
    echo "ship args: ${SHIP_ARGS:-(defaults)}; scribed args: ${SCRIBED_ARGS:-(defaults)}"
    echo "leaf: buffer store, retry_interval $RETRY_INTERVAL, replay_batch_bytes ${REPLAY_BATCH_BYTES:-(default 1M)}, max_spool_bytes $MAX_SPOOL"
} >"$RUN/machine.txt"
cat "$RUN/machine.txt"
python3 "$BENCH/relay_summary.py" "$RESULTS" "$IN_BYTES" "$IN_LINES" "$CLK_TCK" "$RSS_LIMIT_MB" | tee "$RUN/summary.txt"

if (( FAILED )); then
    log "CORRECTNESS CHECK FAILED (see 'ok' column above; outputs kept under $RUN)"
    exit 1
fi
log "all correctness checks passed"
