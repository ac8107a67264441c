#!/usr/bin/env bash
# Fan-out benchmark: one producer at RATE lines/s, N websocket clients, tailgate vs frontail.
#
#   bench/fanout.sh
#
# Rounds (each with a fresh server and fresh clients):
#   tailgate-file    the generator appends to a file; tailgate follows it (--file)
#   tailgate-scribe  the generator's lines go through `ship` into tailgate --scribe-listen
#                    (the no-file-hop path scribed's network store uses)
#   frontail         frontail 4.9.2 (npm) tails the same kind of file (tail -F), socket.io
# Clients: tailgate/examples/fanout_bench.rs (Rust, tokio-tungstenite) for tailgate;
# bench/fanout_frontail_client.js (node, socket.io-client 2.x) for frontail — frontail speaks
# socket.io, so the clients cannot be the same program. Both count lines received after a
# warm-up and measure latency from the write time stamped into each line to its arrival.
#
# Environment:
#   FANOUT_RATE      lines/s written (default 50000)
#   FANOUT_CLIENTS   websocket clients (default 500)
#   FANOUT_SECONDS   measured seconds (default 20), after FANOUT_WARMUP (default 5)
#   BENCH_ONLY       subset of "tailgate-file tailgate-scribe frontail" (default: all)
#   SHIP_ARGS        extra flags for ship (tailgate-scribe; it gets --batch-lines RATE/100)
#   BENCH_REV, BENCH_NO_BUILD, BENCH_QUIET_WAIT   as in bench/ingest.sh
#
# Server CPU is utime+stime of the server process (frontail: node plus its `tail` child)
# over the measured seconds, in % of one CPU; RSS is VmHWM at the end. The clients run on the
# same 2-vCPU machine and compete with the server for CPU: see docs/benchmarks.md.
# Not part of the test suite.

set -euo pipefail

BENCH_TAG=fanout
QUIET_WAIT=${BENCH_QUIET_WAIT:-60}
# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
RATE=${FANOUT_RATE:-50000}
CLIENTS=${FANOUT_CLIENTS:-500}
SECONDS_=${FANOUT_SECONDS:-20}
WARMUP=${FANOUT_WARMUP:-5}
ONLY=${BENCH_ONLY:-"tailgate-file tailgate-scribe frontail"}
RUN=$WORK/fanout
FRONTAIL_DIR=$WORK/frontail

bench_build    # scripts/build-release: scribed, ship, tailgate and the fanout_bench client
TAILGATE=$BIN/tailgate
CLIENT=$BIN/examples/fanout_bench
[[ -x $TAILGATE && -x $CLIENT ]] || die "tailgate binaries missing in $BIN"

if [[ $ONLY == *frontail* && ! -x $FRONTAIL_DIR/node_modules/.bin/frontail ]]; then
    log "installing frontail 4.9.2 and socket.io-client 2.3.1 into $FRONTAIL_DIR"
    mkdir -p "$FRONTAIL_DIR"
    (cd "$FRONTAIL_DIR" && npm install --no-audit --no-fund frontail@4.9.2 socket.io-client@2.3.1 >&2)
fi
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"

wait_listen() { for _ in $(seq 100); do port_listening "$1" && return 0; sleep 0.1; done; die "nothing on port $1"; }
tree_ticks() { # CPU ticks of PID and its direct children
    local t; t=$(proc_cpu_ticks "$1")
    for c in $(cat "/proc/$1/task/"*/children 2>/dev/null); do t=$(( t + $(proc_cpu_ticks "$c" 2>/dev/null || echo 0) )); done
    echo "$t"
}
tree_hwm() { local m; m=$(proc_hwm_kb "$1"); for c in $(cat "/proc/$1/task/"*/children 2>/dev/null); do m=$(( m + $(proc_hwm_kb "$c" 2>/dev/null || echo 0) )); done; echo "$m"; }

RESULTS=()
# measure NAME SERVER_PID CLIENT_CMD... : runs the clients and the generator, records a row.
measure() {
    local name=$1 spid=$2; shift 2
    local out=$RUN/$name.json
    "$@" >"$out" &
    local cpid=$!; PIDS+=("$cpid")
    sleep 2  # connections up before lines flow
    start_producer &
    local gpid=$!; PIDS+=("$gpid")
    sleep "$WARMUP"
    local t0 t1 busy
    t0=$(tree_ticks "$spid")
    sleep "$SECONDS_"
    t1=$(tree_ticks "$spid")
    local rss; rss=$(tree_hwm "$spid")
    wait "$cpid" || die "$name clients failed"; forget "$cpid"
    wait "$gpid" 2>/dev/null || true; forget "$gpid"
    local cpu=$(( 100 * (t1 - t0) / CLK_TCK / SECONDS_ ))
    log "$name: $(cat "$out") server cpu ${cpu}% rss ${rss} KiB"
    RESULTS+=("$name $cpu $rss $(python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(d["lines_per_sec"], d["p50_ms"], d["p99_ms"], d["dropped"], d["min_client_lines"], d["max_client_lines"])' "$out")")
}

SHIP_BATCH=$(( RATE / 100 > 0 ? RATE / 100 : 1 ))
# The generator runs a little longer than the clients measure.
GEN_SECONDS=$(( 2 + WARMUP + SECONDS_ + 2 ))

for round in $ONLY; do
    rm -rf "$RUN"; mkdir -p "$RUN"
    busy=$(wait_quiet)
    log "round $round (machine ${busy}% busy before)"
    port=$(python3 "$BENCH/free_port.py")
    case $round in
    tailgate-file)
        : >"$RUN/bench.log"
        "$TAILGATE" --listen "127.0.0.1:$port" --file "$RUN/bench.log=bench" --max-clients 2000 \
            --poll-interval 20ms >"$RUN/tailgate.out" 2>"$RUN/tailgate.err" &
        spid=$!; PIDS+=("$spid"); wait_listen "$port"
        start_producer() { exec "$CLIENT" gen "$RATE" "$GEN_SECONDS" "$RUN/bench.log"; }
        measure "$round" "$spid" "$CLIENT" clients "ws://127.0.0.1:$port/ws" "$CLIENTS" bench "$SECONDS_" "$(( WARMUP + 2 ))"
        stop_pid "$spid" tailgate || true
        ;;
    tailgate-scribe)
        sport=$(python3 "$BENCH/free_port.py")
        "$TAILGATE" --listen "127.0.0.1:$port" --scribe-listen "127.0.0.1:$sport" --max-clients 2000 \
            >"$RUN/tailgate.out" 2>"$RUN/tailgate.err" &
        spid=$!; PIDS+=("$spid"); wait_listen "$port"; wait_listen "$sport"
        # ship sends a partial batch only after --linger without input, so a steady stream
        # waits for a full batch: cap batches at 10 ms of lines, else latency is ship's.
        start_producer() { "$CLIENT" gen "$RATE" "$GEN_SECONDS" | "$SHIP" --to "127.0.0.1:$sport" --batch-lines "$SHIP_BATCH" ${SHIP_ARGS:-} bench; }
        measure "$round" "$spid" "$CLIENT" clients "ws://127.0.0.1:$port/ws" "$CLIENTS" bench "$SECONDS_" "$(( WARMUP + 2 ))"
        stop_pid "$spid" tailgate || true
        ;;
    frontail)
        : >"$RUN/bench.log"
        ns=$(printf '%s' "$RUN/bench.log" | md5sum | cut -d' ' -f1)
        "$FRONTAIL_DIR/node_modules/.bin/frontail" --host 127.0.0.1 --port "$port" --disable-usage-stats \
            -n 1 "$RUN/bench.log" >"$RUN/frontail.out" 2>&1 &
        spid=$!; PIDS+=("$spid"); wait_listen "$port"
        start_producer() { exec "$CLIENT" gen "$RATE" "$GEN_SECONDS" "$RUN/bench.log"; }
        measure "$round" "$spid" env NODE_PATH="$FRONTAIL_DIR/node_modules" node "$BENCH/fanout_frontail_client.js" \
            "http://127.0.0.1:$port" "$ns" "$CLIENTS" "$SECONDS_" "$(( WARMUP + 2 ))"
        stop_pid "$spid" frontail || true
        ;;
    *) die "unknown round $round" ;;
    esac
done

echo
echo "fan-out: $RATE lines/s written, $CLIENTS clients, ${SECONDS_} s measured after ${WARMUP} s warm-up"
echo "revision: $REV_DESC"
machine_lines
echo
printf '%-16s %14s %8s %8s %12s %10s %10s %10s %9s\n' round "delivered/s" "p50 ms" "p99 ms" "dropped" "min/client" "max/client" "server%" "RSS MiB"
ideal=$(( RATE * CLIENTS ))
for r in "${RESULTS[@]}"; do
    # shellcheck disable=SC2086
    set -- $r
    printf '%-16s %14.0f %8s %8s %12s %10s %10s %10s %9d\n' "$1" "$4" "$5" "$6" "$7" "$8" "$9" "$2" $(( $3 / 1024 ))
done
echo "(ideal delivery: $ideal lines/s = $RATE x $CLIENTS)"
