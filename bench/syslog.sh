#!/usr/bin/env bash
# Syslog ingest benchmark: the same lines forwarded by rsyslog `omfwd` (TCP, RFC 6587 octet
# counting) to scribed's syslog input, and to a second rsyslog (imtcp -> omfile), in one run.
#
#   bench/syslog.sh
#
# Environment:
#   BENCH_BYTES        input size in bytes (default 1000000000 = 1 GB): Apache combined lines
#                      (bench/gen_apache_log.py), each prefixed with an RFC 5424 header
#                      `<13>1 - web nginx - - - `; generated once per size under bench/work/
#   BENCH_RUNS         rounds; each measures both receivers once (default 1)
#   BENCH_QUIET_WAIT   seconds to wait for an idle machine before each measurement (default 60)
#   BENCH_TIMEOUT      seconds one measurement may take (default 900)
#   BENCH_REV, BENCH_NO_BUILD   as in bench/ingest.sh
#   BENCH_SENDERS      which chains to run (default "rsyslog direct"): "rsyslog" as below, and
#                      "direct": send_tcp.py writes the input (LF-framed lines) straight to the
#                      receiver, so the sender costs next to nothing and each receiver runs at
#                      its own ceiling
#
# The chain, for both receivers: send_tcp.py (sendfile of the input) -> rsyslogd "A"
# (imptcp, LF framing) -> omfwd octet-counted, template %rawmsg% -> receiver. The receiver is
# either scribed ([[syslog]] tcp, stored as received, file store) or rsyslogd "B" (imtcp with
# octet counting -> omfile "%rawmsg%\n"). Both write the input's bytes exactly, which is
# checked. Wall time runs from the start of the sender to the last byte in the receiver's
# output; receiver CPU (utime+stime) and peak RSS from /proc. Since rsyslogd A is the same in
# both runs, the wall-time ratio is bounded by A's own rate; the receiver CPU ratio says how
# much work each receiver does per byte. The "direct" chain drops rsyslogd A to measure the
# receivers' own rates. Results: docs/benchmarks.md.

set -euo pipefail

BENCH_TAG=syslog
QUIET_WAIT=${BENCH_QUIET_WAIT:-60}
# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
BYTES=${BENCH_BYTES:-1000000000}
RUNS=${BENCH_RUNS:-1}
SENDERS=${BENCH_SENDERS:-rsyslog direct}
TIMEOUT=${BENCH_TIMEOUT:-900}
CATEGORY=syslog.nginx

bench_build
RSYSLOGD=$(command -v rsyslogd || echo /usr/sbin/rsyslogd)
[[ -x $RSYSLOGD ]] || die "rsyslogd is needed (apt-get install rsyslog)"

bench_input "$BYTES"
SYSLOG_INPUT=$WORK/syslog-$BYTES.log
if [[ ! -s $SYSLOG_INPUT || $SYSLOG_INPUT -ot $INPUT ]]; then
    log "prefixing $INPUT with an RFC 5424 header into $SYSLOG_INPUT"
    sed 's/^/<13>1 - web nginx - - - /' "$INPUT" >"$SYSLOG_INPUT.tmp"
    mv "$SYSLOG_INPUT.tmp" "$SYSLOG_INPUT"
fi
INPUT=$SYSLOG_INPUT
IN_BYTES=$(stat -c %s "$INPUT")
IN_LINES=$(wc -l <"$INPUT" | tr -d ' ')
cat "$INPUT" >/dev/null

RUN=$WORK/syslog-run
rm -rf "$RUN"
mkdir -p "$RUN"
RESULTS=$RUN/results.tsv
printf 'sender\treceiver\tround\twall_ns\tcpu_ticks\thwm_kb\tsender_cpu_ticks\tok\tnote\n' >"$RESULTS"
FAILED=0
record() { local IFS=$'\t'; echo "$*" >>"$RESULTS"; }

# rsyslogd A: imptcp in (LF lines), omfwd out (octet-counted), with a large in-memory queue.
sender_conf() {
    local dir=$1 in_port=$2 to_port=$3
    mkdir -p "$dir/work"
    cat >"$dir/rsyslog.conf" <<EOF
global(workDirectory="$dir/work" maxMessageSize="64k")
module(load="imptcp")
main_queue(queue.type="FixedArray" queue.size="100000" queue.dequeueBatchSize="1024")
template(name="raw" type="string" string="%rawmsg%")
ruleset(name="fwd") {
  action(type="omfwd" target="127.0.0.1" port="$to_port" protocol="tcp" TCP_Framing="octet-counted"
         template="raw" action.resumeRetryCount="-1" action.resumeInterval="1")
}
input(type="imptcp" address="127.0.0.1" port="$in_port" ruleset="fwd")
EOF
}

# rsyslogd B: imtcp in (octet counting on, the default), omfile out, as bench/ingest.sh tunes it.
receiver_conf() {
    local dir=$1 port=$2 out=$3
    mkdir -p "$dir/work"
    cat >"$dir/rsyslog.conf" <<EOF
global(workDirectory="$dir/work" maxMessageSize="64k")
module(load="imtcp")
main_queue(queue.type="FixedArray" queue.size="100000" queue.dequeueBatchSize="256")
template(name="rawline" type="string" string="%rawmsg%\n")
ruleset(name="bench") {
  action(type="omfile" file="$out" template="rawline" ioBufferSize="1m" flushOnTXEnd="on")
}
input(type="imtcp" address="127.0.0.1" port="$port" ruleset="bench")
EOF
}

start_rsyslogd() { # DIR -> pid in RPID
    "$RSYSLOGD" -n -f "$1/rsyslog.conf" -i "$1/rsyslogd.pid" >"$1/rsyslogd.log" 2>&1 &
    RPID=$!
    PIDS+=("$RPID")
}

output_bytes() { # receiver
    if [[ $1 == scribed ]]; then
        find "$RUN/scribed-data/$CATEGORY" -maxdepth 1 -type f -regex ".*/${CATEGORY}_[0-9]+" \
            -printf '%s\n' 2>/dev/null | awk '{s += $1} END {print s + 0}'
    else
        stat -c %s "$RUN/rsyslog-b.out" 2>/dev/null || echo 0
    fi
}

measure() {
    local sender=$1 receiver=$2 round=$3 port in_port rpid spid="" t0 t1 note="" ok=1
    port=$(python3 "$BENCH/free_port.py")
    in_port=$(python3 "$BENCH/free_port.py")
    rm -rf "$RUN/scribed-data" "$RUN/rsyslog-b.out" "$RUN"/rsyslog-[ab]; sync
    if [[ $receiver == scribed ]]; then
        printf '[[syslog]]\nname = "bench"\nlisten = "127.0.0.1:%s"\n' "$port" >"$RUN/scribed.toml"
        "$SCRIBED" --config "$RUN/scribed.toml" --listen 127.0.0.1:0 --status-listen 127.0.0.1:0 \
            --data-dir "$RUN/scribed-data" --ready-file "$RUN/scribed.ready" 2>"$RUN/scribed.log" &
        rpid=$!
        PIDS+=("$rpid")
        for _ in $(seq 100); do [[ -s $RUN/scribed.ready ]] && break; sleep 0.1; done
    else
        receiver_conf "$RUN/rsyslog-b" "$port" "$RUN/rsyslog-b.out"
        start_rsyslogd "$RUN/rsyslog-b"
        rpid=$RPID
    fi
    for _ in $(seq 100); do port_listening "$port" && break; sleep 0.1; done
    port_listening "$port" || die "$receiver did not listen on $port"
    if [[ $sender == rsyslog ]]; then
        sender_conf "$RUN/rsyslog-a" "$in_port" "$port"
        start_rsyslogd "$RUN/rsyslog-a"
        spid=$RPID
        for _ in $(seq 100); do port_listening "$in_port" && break; sleep 0.1; done
    else
        in_port=$port    # send_tcp.py straight to the receiver
    fi
    wait_quiet >/dev/null
    local cpu0 scpu0=0; cpu0=$(proc_cpu_ticks "$rpid")
    [[ -n $spid ]] && scpu0=$(proc_cpu_ticks "$spid")
    t0=$(now_ns)
    timeout "$TIMEOUT" python3 "$BENCH/send_tcp.py" 127.0.0.1 "$in_port" "$INPUT" >/dev/null &
    local feeder=$!
    PIDS+=("$feeder")
    local deadline=$(( $(date +%s) + TIMEOUT ))
    while (( $(output_bytes "$receiver") < IN_BYTES )); do
        if (( $(date +%s) >= deadline )); then note="timed out"; ok=0; break; fi
        sleep 0.05
    done
    t1=$(now_ns)
    local cpu1 scpu1=0 hwm
    cpu1=$(proc_cpu_ticks "$rpid"); hwm=$(proc_hwm_kb "$rpid")
    [[ -n $spid ]] && scpu1=$(proc_cpu_ticks "$spid")
    wait "$feeder" || true
    forget "$feeder"
    [[ -n $spid ]] && { stop_pid "$spid" rsyslogd-a || true; }
    stop_pid "$rpid" "$receiver" || true
    if [[ $receiver == scribed ]]; then
        archive_matches "$RUN/scribed-data" "$CATEGORY" "$INPUT" || { ok=0; note="$ARCHIVE_PROBLEM"; }
    else
        cmp -s "$RUN/rsyslog-b.out" "$INPUT" || { ok=0; note="rsyslog output differs from input"; }
    fi
    (( ok )) || FAILED=1
    record "$sender" "$receiver" "$round" $(( t1 - t0 )) $(( cpu1 - cpu0 )) "$hwm" $(( scpu1 - scpu0 )) "$ok" "${note:-byte-identical}"
}

log "input: $INPUT ($IN_BYTES bytes, $IN_LINES lines); $RUNS round(s)"
for round in $(seq "$RUNS"); do
    for sender in $SENDERS; do
        for receiver in scribed rsyslog; do
            log "round $round: $sender -> $receiver"
            measure "$sender" "$receiver" "$round"
        done
    done
done

machine_lines
echo "rsyslog: $("$RSYSLOGD" -v | head -1 | sed 's/ *compiled with://; s/  */ /g')"
echo "revision: $REV_DESC"
python3 - "$RESULTS" "$IN_BYTES" "$IN_LINES" "$CLK_TCK" <<'PY' | tee "$RUN/summary.txt"
import csv, statistics, sys
path, nbytes, nlines, tck = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
rows = list(csv.DictReader(open(path), delimiter="\t"))
print(f"input: {nbytes} bytes, {nlines} lines")
for sender in ("rsyslog", "direct"):
    srows = [r for r in rows if r["sender"] == sender]
    if not srows:
        continue
    title = ("rsyslogd A (imptcp -> omfwd octet-counted) -> receiver" if sender == "rsyslog"
             else "send_tcp.py (sendfile, LF framing) straight to the receiver")
    print(f"\n{title}\n")
    print("| receiver | wall s | MB/s | lines/s | receiver CPU s | receiver peak RSS MiB | sender rsyslogd CPU s | correct |")
    print("|---|---|---|---|---|---|---|---|")
    med = {}
    for rec in ("scribed", "rsyslog"):
        rs = [r for r in srows if r["receiver"] == rec]
        if not rs:
            continue
        w = statistics.median(int(r["wall_ns"]) / 1e9 for r in rs)
        m = min(rs, key=lambda r: abs(int(r["wall_ns"]) / 1e9 - w))
        cpu = int(m["cpu_ticks"]) / tck
        med[rec] = (w, cpu)
        name = "scribed [[syslog]]" if rec == "scribed" else "rsyslogd imtcp->omfile"
        ok = "yes" if all(r["ok"] == "1" for r in rs) else "NO: " + "; ".join(r["note"] for r in rs)
        scpu = f"{int(m['sender_cpu_ticks']) / tck:.2f}" if sender == "rsyslog" else "-"
        print(f"| {name} | {w:.2f} | {nbytes / w / 1e6:.1f} | {nlines / w:.0f} | {cpu:.2f} | "
              f"{int(m['hwm_kb']) / 1024:.1f} | {scpu} | {ok} |")
    if len(med) == 2:
        (ws, cs), (wr, cr) = med["scribed"], med["rsyslog"]
        bound = " (bounded by the sending rsyslogd)" if sender == "rsyslog" else ""
        print(f"\n{sender}: scribed/rsyslog throughput: {wr / ws:.2f}x (goal 2x){bound}")
        print(f"{sender}: rsyslog/scribed receiver CPU per byte: {cr / cs:.2f}x")
PY
if (( FAILED )); then log "CORRECTNESS CHECK FAILED (outputs kept under $RUN)"; exit 1; fi
log "all correctness checks passed"
