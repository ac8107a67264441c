#!/usr/bin/env bash
# Kafka benchmark: `ship < file` -> scribed -> kafka store -> tansu (loopback, memory engine),
# against the same data through scribed's file store, and against librdkafka producing the
# file directly with the same settings (the raw produce rate; scribed/examples/kafka_produce.rs),
# all in one run; then the memory bound of an outage.
#
#   bench/kafka.sh
#
# Rounds:
#   file     ship --to ADDR bench < FILE -> scribed, default file store
#   kafka    ship --to ADDR bench < FILE -> scribed, kafka store (acks=all, idempotence)
#   raw      kafka_produce BROKER raw.bench < FILE (acks=all, idempotence, same linger/queue)
#   kcat     kcat -P (Debian) with acks=all and idempotence, when kcat is installed and can talk
#            to the broker (Debian's kcat links librdkafka 2.0.2, which cannot parse tansu's
#            ApiVersion v3 answer: the round then reports that and is skipped)
#   outage   ship sends at full rate to a kafka store while the broker is frozen (SIGSTOP) for
#            OUTAGE seconds: scribed's peak RSS (VmHWM) must stay bounded (the producer queue
#            turns into TRY_LATER)
#   archiver a scribed with [[kafka_input]] (assign mode) drains logs.bench, every kafka round's
#            records, into a file store at full rate: time, CPU and peak RSS (its fetch buffers
#            are bounded: max_fetch_queue_bytes)
#   tailgate tailgate --kafka with TAIL_CLIENTS websocket clients (fanout_bench) while a kafka
#            round's ship sends the input again: lines per client, CPU and peak RSS (its fetch
#            queue is bounded: --kafka-fetch-queue)
#
# Environment:
#   BENCH_BYTES    input size (default 200000000); generated once under bench/work/
#   BENCH_RUNS     rounds of file/kafka/raw; the summary uses the median (default 3)
#   KAFKA_COMPRESSION   the kafka store's and raw producer's compression (default none)
#   OUTAGE         seconds the broker is frozen in the outage round (default 30; 0 skips it)
#   TAIL_CLIENTS   websocket clients of the tailgate round (default 4; 0 skips it)
#   TAIL_FETCH_QUEUE   tailgate's --kafka-fetch-queue (default: tailgate's, 1M)
#   BENCH_NO_BUILD=1, BENCH_QUIET_WAIT   as in bench/ingest.sh
# Times are wall-clock from the start of the sender to its exit (ship exits when every batch
# is acknowledged: for the kafka store, after every record's delivery report).
# Not part of the test suite. Results: docs/benchmarks.md.

set -euo pipefail

BENCH_TAG=kafka
QUIET_WAIT=${BENCH_QUIET_WAIT:-60}
# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
BYTES=${BENCH_BYTES:-200000000}
RUNS=${BENCH_RUNS:-3}
COMPRESSION=${KAFKA_COMPRESSION:-none}
OUTAGE=${OUTAGE:-30}
RUN=$WORK/kafka
rm -rf "$RUN"
mkdir -p "$RUN"

bench_build    # scripts/build-release builds kafka_produce with the rest
RAW=$BIN/examples/kafka_produce
[[ -x $RAW ]] || die "missing $RAW"
TAILGATE=$BIN/tailgate
CLIENT=$BIN/examples/fanout_bench
TAIL_CLIENTS=${TAIL_CLIENTS:-4}
bench_input "$BYTES"
TANSU=$("$ROOT/scripts/tansu.sh")

port() { python3 "$BENCH/free_port.py"; }

BROKER=127.0.0.1:$(port)
"$TANSU" broker --listener-url "tcp://$BROKER" --advertised-listener-url "tcp://$BROKER" \
    --storage-engine memory://tansu/ >"$RUN/tansu.log" 2>&1 &
TANSU_PID=$!
PIDS+=("$TANSU_PID")
for _ in $(seq 100); do port_listening "${BROKER##*:}" && break; sleep 0.1; done
for t in logs.bench raw.bench kcat.bench logs.outage logs.tail; do
    "$TANSU" topic create --broker "tcp://$BROKER" --partitions 3 "$t" >/dev/null
done
log "tansu $TANSU_PID on $BROKER; input $IN_LINES lines, $IN_BYTES bytes"

# start_scribed NAME CONFIG: starts scribed with CONFIG (TOML text); sets SPID and SADDR.
start_scribed() {
    local name=$1 config=$2
    SADDR=127.0.0.1:$(port)
    printf '%s\n' "$config" >"$RUN/$name.toml"
    rm -rf "$RUN/$name"
    "$SCRIBED" --listen "$SADDR" --status-listen "127.0.0.1:$(port)" --data-dir "$RUN/$name" \
        --config "$RUN/$name.toml" >"$RUN/$name.log" 2>&1 &
    SPID=$!
    PIDS+=("$SPID")
    for _ in $(seq 100); do port_listening "${SADDR##*:}" && return; sleep 0.1; done
    die "scribed $name did not listen: $(tail -5 "$RUN/$name.log")"
}

KAFKA_CONF="[[store]]
category = \"default\"
type = \"kafka\"
brokers = [\"$BROKER\"]
compression = \"$COMPRESSION\""
FILE_CONF='[[store]]
category = "default"
type = "file"'

raw_produce() { "$RAW" "$BROKER" raw.bench "$COMPRESSION" <"$INPUT" >"$RUN/raw.out"; }

# timed CMD...: runs CMD, prints its wall seconds.
timed() {
    local t0 t1
    t0=$(now_ns)
    "$@"
    t1=$(now_ns)
    awk -v ns=$(( t1 - t0 )) 'BEGIN {printf "%.3f", ns / 1e9}'
}

median() { tr ' ' '\n' | { grep -v '^$' || true; } | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
mb() { awk -v b="$IN_BYTES" -v s="$1" 'BEGIN {printf "%.1f", b / s / 1e6}'; }
klines() { awk -v l="$IN_LINES" -v s="$1" 'BEGIN {printf "%.0f", l / s / 1e3}'; }
declare -A SECS HWM
for run in $(seq "$RUNS"); do
    for tool in file kafka raw; do
        wait_quiet >/dev/null
        case $tool in
            file | kafka)
                if [[ $tool == file ]]; then conf=$FILE_CONF; else conf=$KAFKA_CONF; fi
                start_scribed "$tool" "$conf"
                s=$(timed "$SHIP" --to "$SADDR" bench <"$INPUT")
                HWM[$tool]+="$(proc_hwm_kb "$SPID") "
                stop_pid "$SPID" "scribed $tool" || true
                ;;
            raw)
                s=$(timed raw_produce)
                ;;
        esac
        SECS[$tool]+="$s "
        log "run $run $tool: ${s}s"
    done
done
if [[ -f $RUN/file/bench/bench_00000 ]] && ! archive_matches "$RUN/file" bench "$INPUT"; then
    die "file store output differs: $ARCHIVE_PROBLEM"
fi

KCAT_NOTE="not installed (Debian: apt-get install kcat)"
if command -v kcat >/dev/null; then
    # kcat may exit 0 after "% ERROR: ... terminating": its error output decides.
    if s=$(timed timeout 120 kcat -P -b "$BROKER" -t kcat.bench -X acks=all \
        -X enable.idempotence=true -X linger.ms=5 -l "$INPUT" 2>"$RUN/kcat.err") &&
        ! grep -q '% ERROR' "$RUN/kcat.err"; then
        KCAT_NOTE="${s}s"
    else
        KCAT_NOTE="failed ($(kcat -V 2>&1 | grep -o 'librdkafka [0-9.]*' || true)): $(grep -m1 '% ERROR' "$RUN/kcat.err" | cut -c1-160)"
    fi
fi

OUT_NOTE="skipped"
if (( OUTAGE > 0 )); then
    start_scribed outage "[[store]]
category = \"default\"
type = \"kafka\"
brokers = [\"$BROKER\"]
timeout = \"5s\""
    base=$(proc_hwm_kb "$SPID")
    log "outage: broker frozen for ${OUTAGE}s while ship sends"
    kill -STOP "$TANSU_PID"
    # ship retries on TRY_LATER with backoff; a loop of ships keeps the pressure on.
    end=$(( $(date +%s) + OUTAGE ))
    while (( $(date +%s) < end )); do
        timeout $(( end - $(date +%s) + 1 )) "$SHIP" --to "$SADDR" outage <"$INPUT" \
            >/dev/null 2>&1 || true
    done
    peak=$(proc_hwm_kb "$SPID")
    kill -CONT "$TANSU_PID"
    queue_full=$(grep -c "queue is full" "$RUN/outage.log" || true)
    stop_pid "$SPID" "scribed outage" || true
    OUT_NOTE="peak RSS $(( peak / 1024 )) MiB (idle $(( base / 1024 )) MiB) over a ${OUTAGE}s frozen broker"
fi

# cpu_pct TICKS SECONDS: CPU time over wall time, in % of one CPU.
cpu_pct() { awk -v t="$1" -v hz="$(getconf CLK_TCK)" -v s="$2" 'BEGIN {printf "%.0f", t / hz / s * 100}'; }
# category_bytes DATA CATEGORY: bytes in a category's archive files.
category_bytes() {
    find "$1/$2" -maxdepth 1 -type f -regex ".*/${2}_[0-9]+" -printf '%s\n' 2>/dev/null |
        awk '{s += $1} END {print s + 0}'
}

wait_quiet >/dev/null
want=$(( IN_BYTES * RUNS ))
log "archiver: draining logs.bench ($want bytes) into a file store"
start_scribed archiver "[[kafka_input]]
brokers = [\"$BROKER\"]
mode = \"assign\"
topics = \"logs.bench\"

[[store]]
category = \"default\"
type = \"file\""
t0=$(now_ns)
c0=$(proc_cpu_ticks "$SPID")
deadline=$(( $(date +%s) + 900 ))
while (( $(category_bytes "$RUN/archiver" bench) < want )); do
    (( $(date +%s) < deadline )) || die "archiver: $(category_bytes "$RUN/archiver" bench) of $want bytes after 900 s"
    sleep 0.2
done
secs=$(awk -v ns=$(( $(now_ns) - t0 )) 'BEGIN {printf "%.1f", ns / 1e9}')
cpu=$(cpu_pct $(( $(proc_cpu_ticks "$SPID") - c0 )) "$secs")
hwm=$(proc_hwm_kb "$SPID")
stop_pid "$SPID" "scribed archiver" || true
ARCH_NOTE="$(( RUNS * IN_LINES )) lines in ${secs}s ($(mb "$secs" | awk -v r="$RUNS" '{printf "%.1f", $1 * r}') MB/s), CPU ${cpu}% of one core, peak RSS $(( hwm / 1024 )) MiB"
log "archiver: $ARCH_NOTE"

TAIL_NOTE="skipped"
if (( TAIL_CLIENTS > 0 )); then
    wait_quiet >/dev/null
    tport=$(port)
    "$TAILGATE" --listen "127.0.0.1:$tport" --kafka "$BROKER" --topics logs.tail \
        --kafka-refresh 1s ${TAIL_FETCH_QUEUE:+--kafka-fetch-queue "$TAIL_FETCH_QUEUE"} \
        >"$RUN/tailgate.out" 2>"$RUN/tailgate.err" &
    TPID=$!
    PIDS+=("$TPID")
    for _ in $(seq 100); do port_listening "$tport" && break; sleep 0.1; done
    start_scribed tail "[[store]]
category = \"default\"
type = \"kafka\"
brokers = [\"$BROKER\"]"
    # Clients measure from 3 s after they start (connected, subscribed) for a fixed window
    # long enough for the whole input; their lines carry no send time, so only counts matter.
    k=$(echo "${SECS[kafka]}" | median)
    window=$(( 2 * ${k%.*} + 20 ))
    "$CLIENT" clients "ws://127.0.0.1:$tport/ws" "$TAIL_CLIENTS" tail "$window" 3 \
        >"$RUN/tail-clients.json" 2>"$RUN/tail-clients.err" &
    CPID=$!
    PIDS+=("$CPID")
    sleep 4
    c0=$(proc_cpu_ticks "$TPID")
    t0=$(now_ns)
    "$SHIP" --to "$SADDR" tail <"$INPUT"
    ship_secs=$(awk -v ns=$(( $(now_ns) - t0 )) 'BEGIN {printf "%.1f", ns / 1e9}')
    # Until every client has every line, or the window ends.
    wait "$CPID" || die "tailgate clients failed: $(tail -3 "$RUN/tail-clients.err")"
    forget "$CPID"
    secs=$(awk -v ns=$(( $(now_ns) - t0 )) 'BEGIN {printf "%.1f", ns / 1e9}')
    ticks=$(( $(proc_cpu_ticks "$TPID") - c0 ))
    cpu_s=$(awk -v t="$ticks" -v hz="$(getconf CLK_TCK)" 'BEGIN {printf "%.1f", t / hz}')
    hwm=$(proc_hwm_kb "$TPID")
    stop_pid "$TPID" tailgate || true
    stop_pid "$SPID" "scribed tail" || true
    read -r tl tmin tdrop < <(python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(d["lines"], d["min_client_lines"], d["dropped"])' "$RUN/tail-clients.json")
    TAIL_NOTE="fetch queue ${TAIL_FETCH_QUEUE:-1M}, $TAIL_CLIENTS clients, $tl lines in all (fewest per client $tmin of $IN_LINES, $tdrop dropped by the per-client bound); ship took ${ship_secs}s, the clients' window ${secs}s; tailgate CPU ${cpu_s}s in all, peak RSS $(( hwm / 1024 )) MiB"
    log "tailgate: $TAIL_NOTE"
fi

echo
echo "kafka benchmark: $IN_LINES lines, $IN_BYTES bytes, compression $COMPRESSION, $RUNS runs (median)"
echo "revision: $REV_DESC"
machine_lines
echo "broker: tansu 0.6.0, memory engine, 3 partitions, loopback"
printf '%-8s %9s %9s %11s %s\n' tool seconds MB/s "k lines/s" "scribed peak RSS (KiB)"
for tool in file kafka raw; do
    m=$(echo "${SECS[$tool]}" | median)
    printf '%-8s %9s %9s %11s %s\n' "$tool" "$m" "$(mb "$m")" "$(klines "$m")" "${HWM[$tool]:-}"
done
k=$(echo "${SECS[kafka]}" | median)
r=$(echo "${SECS[raw]}" | median)
echo "kafka store / raw librdkafka produce rate: $(awk -v k="$k" -v r="$r" 'BEGIN {printf "%.0f%%", r / k * 100}')"
echo "kcat: $KCAT_NOTE"
echo "outage: $OUT_NOTE${queue_full:+; 'queue is full' refusals logged: $queue_full}"
echo "archiver (kafka_input -> file store): $ARCH_NOTE"
echo "tailgate --kafka: $TAIL_NOTE"
