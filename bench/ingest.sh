#!/usr/bin/env bash
# Ingest benchmark: `ship < file` into scribed, vs rsyslog (imtcp -> omfile), vs `cp file`;
# each of scribed and rsyslog both plaintext and over TLS, in the same run.
#
#   bench/ingest.sh
#
# Pipelines ("tools"):
#   cp            cp FILE (the floor: what the disk and page cache allow)
#   scribed       ship --to ADDR < FILE -> scribed (plaintext)
#   scribed_tls   ship --tls --tls-ca CA --to ADDR < FILE -> scribed [[listener]] with tls_cert
#                 and tls_key (server authentication, no client certificate: as rsyslog's anon)
#   rsyslog       send_tcp.py (sendfile) -> rsyslogd imtcp -> omfile (plaintext)
#   rsyslog_ossl  send_tcp.py --tls-ca CA (Python's ssl, i.e. OpenSSL, 1 MiB writes) ->
#                 rsyslogd imtcp StreamDriver "ossl" (OpenSSL), Mode 1 (TLS), AuthMode anon
#   rsyslog_gtls  the same with StreamDriver "gtls" (GnuTLS)
# The TLS certificates (an ECDSA P-256 CA and a server certificate for localhost/127.0.0.1)
# are made once with the openssl CLI under bench/work/tls/ (see bench_certs). The TLS driver
# packages (rsyslog-openssl, rsyslog-gnutls) are installed at the installed rsyslog's version.
#
# Environment:
#   BENCH_BYTES        input size in bytes (default 1000000000 = 1 GB); the input is generated
#                      once per size and cached under bench/work/ (git-ignored)
#   BENCH_RUNS         rounds; each round measures cp, scribed and rsyslog once (default 3);
#                      the summary uses the median wall time of each
#   BENCH_ONLY         space-separated subset of
#                      "cp scribed scribed_tls rsyslog rsyslog_ossl rsyslog_gtls" (default: all)
#   SHIP_ARGS          extra flags for ship, e.g. "--batch-bytes 4M" (both scribed cases)
#   SCRIBED_ARGS       extra flags for scribed
#   BENCH_QUIET_WAIT   seconds to wait, before each measurement, for the machine to be idle
#                      (other CPU load < 15%); 0 disables the wait (default 120)
#   BENCH_TIMEOUT      seconds any single measurement may take (default 600)
#   BENCH_REV          build and measure this git revision (e.g. HEAD) from a clean export under
#                      bench/work/ instead of the working tree
#   RSYSLOG_QUEUE_ARGS, RSYSLOG_OMFILE_ARGS
#                      replace the main_queue() and omfile tuning parameters (see
#                      write_rsyslog_conf below for the defaults)
#   BENCH_NO_BUILD=1   skip `cargo build` (use the binaries already built)
#
# Times are wall-clock, from the start of the sender to the last byte being in the output
# file (page cache; no fsync in the timed part). The time a `sync` takes right afterwards is
# reported separately ("sync" column). CPU and peak RSS of the servers come from
# /proc/PID/stat (utime+stime, counted from just before the transfer) and /proc/PID/status
# (VmHWM); of the senders and cp from /usr/bin/time.
#
# Exits non-zero when a correctness check fails: scribed's files must be byte-identical to
# the input, rsyslog's output must have the input's line count, cp's copy must be identical.
# Not part of the test suite. Results and method: docs/benchmarks.md.

set -euo pipefail

BENCH_TAG=ingest
QUIET_WAIT=${BENCH_QUIET_WAIT:-120}
# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
BYTES=${BENCH_BYTES:-1000000000}
RUNS=${BENCH_RUNS:-3}
ONLY=${BENCH_ONLY:-"cp scribed scribed_tls rsyslog rsyslog_ossl rsyslog_gtls"}
TIMEOUT=${BENCH_TIMEOUT:-600}
CATEGORY=bench

# ---------------------------------------------------------------------------------------------
# 1. Build (see bench_build in lib.sh).
bench_build

# 2. Peer and tools.
need_pkgs=()
command -v rsyslogd >/dev/null || need_pkgs+=(rsyslog)
[[ -x /usr/bin/time ]] || need_pkgs+=(time)
command -v openssl >/dev/null || need_pkgs+=(openssl)
# rsyslog's TLS drivers, at exactly the installed rsyslog's version (so installing them never
# upgrades rsyslog itself under someone else's running benchmark).
RSYSLOG_MODDIR=/usr/lib/$(dpkg-architecture -qDEB_HOST_MULTIARCH 2>/dev/null || echo x86_64-linux-gnu)/rsyslog
rsyslog_version=$(dpkg-query -W -f='${Version}' rsyslog 2>/dev/null || true)
pin=${rsyslog_version:+=$rsyslog_version}
[[ " $ONLY " != *" rsyslog_ossl "* || -e $RSYSLOG_MODDIR/lmnsd_ossl.so ]] || need_pkgs+=("rsyslog-openssl$pin")
[[ " $ONLY " != *" rsyslog_gtls "* || -e $RSYSLOG_MODDIR/lmnsd_gtls.so ]] || need_pkgs+=("rsyslog-gnutls$pin")
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

# 3. Input, generated once per size.
bench_input "$BYTES"

# 4. TLS certificates, made once: a CA and a server certificate it signs (ECDSA P-256, the
# usual choice today; the key type only matters for the handshake, not the bulk transfer).
TLS_DIR=$WORK/tls
bench_certs() {
    [[ -s $TLS_DIR/server.pem && -s $TLS_DIR/server.key && -s $TLS_DIR/ca.pem ]] && return
    log "making TLS certificates in $TLS_DIR"
    rm -rf "$TLS_DIR.tmp"; mkdir -p "$TLS_DIR.tmp"
    (
        cd "$TLS_DIR.tmp"
        openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
            -keyout ca.key -out ca.pem -days 3650 -subj "/CN=bench CA" \
            -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign"
        openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
            -keyout server.key -out server.pem -days 3650 -subj "/CN=localhost" \
            -CA ca.pem -CAkey ca.key \
            -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" \
            -addext "basicConstraints=critical,CA:FALSE" -addext "extendedKeyUsage=serverAuth" \
            -addext "keyUsage=critical,digitalSignature"
        openssl verify -CAfile ca.pem server.pem
    ) >"$WORK/tls-certs.log" 2>&1 || die "openssl failed to make the certificates (see $WORK/tls-certs.log)"
    rm -rf "$TLS_DIR"; mv "$TLS_DIR.tmp" "$TLS_DIR"
}
if [[ " $ONLY " == *_tls* || " $ONLY " == *_ossl* || " $ONLY " == *_gtls* ]]; then bench_certs; fi

RUN=$WORK/run
rm -rf "$RUN"
mkdir -p "$RUN"
RESULTS=$RUN/results.tsv
printf 'tool\tround\twall_ns\tsync_ns\tserver_cpu_ticks\tserver_hwm_kb\tclient_user_s\tclient_sys_s\tclient_maxrss_kb\tbusy_pct\tok\tnote\n' >"$RESULTS"
FAILED=0

record() { local IFS=$'\t'; echo "$*" >>"$RESULTS"; }

# ---------------------------------------------------------------------------------------------
bench_cp() {
    local round=$1 dest=$RUN/cp.out t0 t1 busy ok=1 note=""
    rm -f "$dest"; sync
    busy=$(wait_quiet)
    t0=$(now_ns)
    /usr/bin/time -f '%U %S %M' -o "$RUN/cp.time" cp "$INPUT" "$dest"
    t1=$(now_ns)
    local sync_ns; sync_ns=$(time_sync)
    if ! cmp -s "$dest" "$INPUT"; then ok=0; note="copy differs"; FAILED=1; fi
    # shellcheck disable=SC2046
    record cp "$round" $(( t1 - t0 )) "$sync_ns" - - $(read_time "$RUN/cp.time") "$busy" "$ok" "$note"
    rm -f "$dest"
}

# bench_scribed ROUND [tls]: ship -> scribed, plaintext or (with "tls") over TLS: a
# `[[listener]]` with the bench certificate and `ship --tls --tls-ca CA` (the server name
# checked is 127.0.0.1, on the certificate).
bench_scribed() {
    local round=$1 tls=${2:-} data=$RUN/scribed-data ready=$RUN/scribed.ready t0 t1 busy ok=1 note=""
    local tool=scribed listen=(--listen 127.0.0.1:0) ship_tls=()
    rm -rf "$data" "$ready"; sync
    if [[ $tls == tls ]]; then
        tool=scribed_tls
        local port; port=$(python3 "$BENCH/free_port.py")
        printf '[[listener]]\naddress = "127.0.0.1:%s"\ntls_cert = "%s"\ntls_key = "%s"\n' \
            "$port" "$TLS_DIR/server.pem" "$TLS_DIR/server.key" >"$RUN/scribed-tls.toml"
        # The [[listener]] block is the only address (no --listen), so the ready file names it.
        listen=(--config "$RUN/scribed-tls.toml")
        ship_tls=(--tls --tls-ca "$TLS_DIR/ca.pem")
    fi
    # shellcheck disable=SC2086
    "$SCRIBED" "${listen[@]}" --data-dir "$data" --ready-file "$ready" ${SCRIBED_ARGS:-} \
        2>"$RUN/$tool.log" &
    local spid=$!
    PIDS+=("$spid")
    for _ in $(seq 100); do [[ -s $ready ]] && break; sleep 0.1; done
    [[ -s $ready ]] || die "scribed did not become ready within 10 s (see $RUN/$tool.log)"
    local addr; addr=$(head -1 "$ready")
    busy=$(wait_quiet)
    local cpu0; cpu0=$(proc_cpu_ticks "$spid")
    local ship_rc=0
    t0=$(now_ns)
    # shellcheck disable=SC2086
    timeout "$TIMEOUT" /usr/bin/time -f '%U %S %M' -o "$RUN/ship.time" \
        "$SHIP" --to "$addr" "${ship_tls[@]}" ${SHIP_ARGS:-} "$CATEGORY" <"$INPUT" 2>"$RUN/ship.log" || ship_rc=$?
    t1=$(now_ns)
    local cpu1 hwm sync_ns
    cpu1=$(proc_cpu_ticks "$spid")
    hwm=$(proc_hwm_kb "$spid")
    sync_ns=$(time_sync)
    local stop_rc=0
    stop_pid "$spid" scribed || stop_rc=$?
    if (( ship_rc != 0 )); then
        ok=0; note="ship exited $ship_rc: $(tail -1 "$RUN/ship.log")"
    elif (( stop_rc != 0 )); then
        ok=0; note="scribed exited $stop_rc on SIGTERM"
    fi
    if ! archive_matches "$data" "$CATEGORY" "$INPUT"; then
        ok=0; note="${note:+$note; }$ARCHIVE_PROBLEM"
    fi
    local files=("${ARCHIVE_FILES[@]}")
    (( ok )) || FAILED=1
    # shellcheck disable=SC2046
    record "$tool" "$round" $(( t1 - t0 )) "$sync_ns" $(( cpu1 - cpu0 )) "$hwm" \
        $(read_time "$RUN/ship.time") "$busy" "$ok" "${note:-${#files[@]} file(s)}"
    if (( ok )); then rm -rf "$data"; else log "keeping $data for inspection"; fi
}

bench_scribed_tls() { bench_scribed "$1" tls; }

# The rsyslog configuration. The defaults that matter here are already right: imtcp has no
# rate limiting unless RateLimit.Interval is set, and a full main queue makes imtcp stop reading
# (flow control: the sender is slowed, nothing is dropped). What is changed:
#  - maxMessageSize 64k (default 8k) so no line could be truncated;
#  - supportOctetCountedFraming off: otherwise imtcp takes a line starting with a digit (every
#    IPv4 client address) for an RFC 6587 octet count and mangles the stream;
#  - a ruleset bound to the input, so rsyslogd's own messages do not reach the output file;
#  - main queue: FixedArray of 100k messages, dequeue batches of 256 (default 32);
#  - omfile: template "%rawmsg%\n" (the line as received), a 1 MiB I/O buffer, flushed at the
#    end of each dequeued batch.
# Trials at 200 MB (3 rounds each, MB/s): batch 256: 168-174, 1024: 154, 4096: 160, 128: 146;
# rsyslog's queue defaults: 133; LinkedList: 154; Direct (no queue, one thread): 87;
# asyncWriting="on" (flushInterval 1 s): 87; ioBufferSize 4m: 147, 256k: 135.
#  - over TLS (driver ossl or gtls): the imtcp module's StreamDriver.Name, StreamDriver.Mode 1
#    (TLS only) and StreamDriver.AuthMode anon (no client certificates, as scribed_tls); the
#    certificate and key as global() defaults, which is how rsyslog's documentation sets them.
write_rsyslog_conf() {
    local conf=$1 port=$2 out=$3 workdir=$4 driver=${5:-}
    local global_tls="" imtcp_tls=""
    if [[ -n $driver ]]; then
        global_tls=" defaultNetstreamDriver=\"$driver\" defaultNetstreamDriverCAFile=\"$TLS_DIR/ca.pem\" defaultNetstreamDriverCertFile=\"$TLS_DIR/server.pem\" defaultNetstreamDriverKeyFile=\"$TLS_DIR/server.key\""
        imtcp_tls=" streamDriver.name=\"$driver\" streamDriver.mode=\"1\" streamDriver.authMode=\"anon\""
    fi
    local queue_args='queue.type="FixedArray" queue.size="100000" queue.dequeueBatchSize="256"'
    local omfile_args='ioBufferSize="1m" flushOnTXEnd="on"'
    queue_args=${RSYSLOG_QUEUE_ARGS:-$queue_args}
    omfile_args=${RSYSLOG_OMFILE_ARGS:-$omfile_args}
    cat >"$conf" <<EOF
global(workDirectory="$workdir" maxMessageSize="64k"$global_tls)
module(load="imtcp"$imtcp_tls)
main_queue($queue_args)
template(name="rawline" type="string" string="%rawmsg%\n")
ruleset(name="bench") {
  action(type="omfile" file="$out" template="rawline" $omfile_args)
}
input(type="imtcp" address="127.0.0.1" port="$port" ruleset="bench" supportOctetCountedFraming="off")
EOF
}

# bench_rsyslog ROUND [DRIVER]: sender -> rsyslogd, plaintext or over TLS with rsyslog's
# DRIVER ("ossl" or "gtls"). The TLS sender is send_tcp.py with Python's ssl module (OpenSSL):
# one connection, 1 MiB writes (OpenSSL cuts them into full 16 KiB records), so like
# sendfile in the plaintext case it costs little next to the server.
bench_rsyslog() {
    local round=$1 driver=${2:-} out=$RUN/rsyslog.out conf=$RUN/rsyslog.conf t0 t1 busy ok=1 note=""
    local workdir=$RUN/rsyslog-work tool=rsyslog sender_tls=()
    if [[ -n $driver ]]; then
        tool=rsyslog_$driver
        sender_tls=(--tls-ca "$TLS_DIR/ca.pem")
    fi
    rm -rf "$out" "$workdir"; mkdir -p "$workdir"; sync
    local port; port=$(python3 "$BENCH/free_port.py")
    write_rsyslog_conf "$conf" "$port" "$out" "$workdir" "$driver"
    "$RSYSLOGD" -n -f "$conf" -i "$RUN/rsyslogd.pid" >"$RUN/rsyslogd.log" 2>&1 &
    local rpid=$!
    PIDS+=("$rpid")
    for _ in $(seq 100); do port_listening "$port" && break; sleep 0.1; done
    port_listening "$port" || die "rsyslogd did not listen on $port within 10 s (see $RUN/rsyslogd.log)"
    busy=$(wait_quiet)
    local cpu0; cpu0=$(proc_cpu_ticks "$rpid")
    t0=$(now_ns)
    timeout "$TIMEOUT" /usr/bin/time -f '%U %S %M' -o "$RUN/sender.time" \
        python3 "$BENCH/send_tcp.py" "${sender_tls[@]}" 127.0.0.1 "$port" "$INPUT" >/dev/null 2>"$RUN/sender.log" &
    local sender=$!
    PIDS+=("$sender")
    # Done when the output holds as many bytes as the input. Give up when it stops growing for
    # 10 s after the sender finished, or after the overall timeout.
    local size=0 last=-1 stalled_since=0 deadline=$(( $(date +%s) + TIMEOUT ))
    while :; do
        size=$(stat -c %s "$out" 2>/dev/null || echo 0)
        (( size >= IN_BYTES )) && break
        if (( $(date +%s) >= deadline )); then note="timed out"; break; fi
        if ! kill -0 "$sender" 2>/dev/null; then
            if (( size != last )); then last=$size; stalled_since=$(date +%s)
            elif (( $(date +%s) - stalled_since >= 10 )); then note="output stopped growing"; break; fi
        fi
        sleep 0.01
    done
    t1=$(now_ns)
    local sender_rc=0
    wait "$sender" || sender_rc=$?
    forget "$sender"
    local cpu1 hwm sync_ns
    cpu1=$(proc_cpu_ticks "$rpid")
    hwm=$(proc_hwm_kb "$rpid")
    sync_ns=$(time_sync)
    stop_pid "$rpid" rsyslogd || true
    local out_lines; out_lines=$(wc -l <"$out" 2>/dev/null || echo 0)
    if (( sender_rc != 0 )); then ok=0; note="${note:+$note; }sender exited $sender_rc"; fi
    if (( out_lines != IN_LINES )); then
        ok=0; note="${note:+$note; }$out_lines lines out of $IN_LINES"
    elif cmp -s "$out" "$INPUT"; then
        note="${note:+$note; }byte-identical"
    else
        note="${note:+$note; }same line count, bytes differ: $(cmp "$out" "$INPUT" 2>&1 | head -1)"
    fi
    (( ok )) || FAILED=1
    if grep -q . "$RUN/rsyslogd.log"; then
        log "rsyslogd said: $(head -3 "$RUN/rsyslogd.log" | tr '\n' ' ')"
    fi
    if grep -q . "$RUN/sender.log"; then
        log "sender said: $(tail -3 "$RUN/sender.log" | tr '\n' ' ')"
    fi
    # shellcheck disable=SC2046
    record "$tool" "$round" $(( t1 - t0 )) "$sync_ns" $(( cpu1 - cpu0 )) "$hwm" \
        $(read_time "$RUN/sender.time") "$busy" "$ok" "$note"
    if (( ok )); then rm -f "$out"; else log "keeping $out for inspection"; fi
}

bench_rsyslog_ossl() { bench_rsyslog "$1" ossl; }
bench_rsyslog_gtls() { bench_rsyslog "$1" gtls; }

# ---------------------------------------------------------------------------------------------
log "input: $INPUT ($IN_BYTES bytes, $IN_LINES lines); $RUNS round(s) of: $ONLY"
for round in $(seq "$RUNS"); do
    for tool in $ONLY; do
        log "round $round: $tool"
        "bench_$tool" "$round"
    done
done

# ---------------------------------------------------------------------------------------------
# Summary.
{
    machine_lines
    echo "rsyslog: $("$RSYSLOGD" -v | head -1 | sed 's/ *compiled with://; s/  */ /g')"
    echo "revision: $REV_DESC"
    echo "ship args: ${SHIP_ARGS:-(defaults)}; scribed args: ${SCRIBED_ARGS:-(defaults)}"
} >"$RUN/machine.txt"
cat "$RUN/machine.txt"
python3 - "$RESULTS" "$IN_BYTES" "$IN_LINES" "$CLK_TCK" <<'PY' | tee "$RUN/summary.txt"
import csv, statistics, sys

path, in_bytes, in_lines, tck = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
rows = list(csv.DictReader(open(path), delimiter="\t"))
print(f"input: {in_bytes} bytes ({in_bytes / 1e6:.0f} MB), {in_lines} lines\n")

def f(x, fmt):
    return "-" if x is None else format(x, fmt)

print("per round:")
print(f"{'tool':12} {'round':>5} {'wall s':>8} {'MB/s':>8} {'sync s':>7} {'busy%':>5} ok  note")
for r in rows:
    w = int(r["wall_ns"]) / 1e9
    print(f"{r['tool']:12} {r['round']:>5} {w:8.3f} {in_bytes / w / 1e6:8.1f} "
          f"{int(r['sync_ns']) / 1e9:7.2f} {r['busy_pct']:>5} {'yes' if r['ok'] == '1' else 'NO':3} {r['note']}")

summary = {}
for tool in ("scribed", "scribed_tls", "rsyslog", "rsyslog_ossl", "rsyslog_gtls", "cp"):
    rs = [r for r in rows if r["tool"] == tool]
    if not rs:
        continue
    walls = sorted(int(r["wall_ns"]) / 1e9 for r in rs)
    med = statistics.median(walls)
    # CPU/RSS figures of the median round (the round whose wall time is closest to the median).
    mr = min(rs, key=lambda r: abs(int(r["wall_ns"]) / 1e9 - med))
    srv_cpu = None if mr["server_cpu_ticks"] == "-" else int(mr["server_cpu_ticks"]) / tck
    srv_rss = None if mr["server_hwm_kb"] == "-" else int(mr["server_hwm_kb"]) / 1024
    cl_cpu = float(mr["client_user_s"]) + float(mr["client_sys_s"])
    cl_rss = int(mr["client_maxrss_kb"]) / 1024
    summary[tool] = dict(med=med, best=walls[0], worst=walls[-1], srv_cpu=srv_cpu, srv_rss=srv_rss,
                         cl_cpu=cl_cpu, cl_rss=cl_rss,
                         sync=statistics.median(int(r["sync_ns"]) / 1e9 for r in rs),
                         ok=all(r["ok"] == "1" for r in rs), n=len(rs))

names = {"scribed": "ship -> scribed", "scribed_tls": "ship -> scribed, TLS",
         "rsyslog": "sender -> rsyslogd", "rsyslog_ossl": "sender -> rsyslogd, ossl",
         "rsyslog_gtls": "sender -> rsyslogd, gtls", "cp": "cp"}
clients = {"scribed": "ship", "scribed_tls": "ship", "rsyslog": "send_tcp.py",
           "rsyslog_ossl": "send_tcp.py", "rsyslog_gtls": "send_tcp.py", "cp": "cp"}
print("\nsummary (median wall time over rounds; CPU/RSS from the median round):")
hdr = (f"| {'pipeline':25} | {'wall s (min-max)':22} | {'MB/s':>7} | {'lines/s':>10} | "
       f"{'server CPU s':>12} | {'server peak RSS MiB':>19} | {'client CPU s':>12} | "
       f"{'client peak RSS MiB':>19} | {'+ sync s':>8} | correct |")
print(hdr)
print("|" + "|".join("-" * (len(c)) for c in hdr.split("|")[1:-1]) + "|")
for tool, s in summary.items():
    wall = f"{s['med']:.3f} ({s['best']:.3f}-{s['worst']:.3f})"
    print(f"| {names[tool]:25} | {wall:22} | "
          f"{in_bytes / s['med'] / 1e6:7.1f} | {in_lines / s['med']:10.0f} | "
          f"{f(s['srv_cpu'], '12.2f'):>12} | {f(s['srv_rss'], '19.1f'):>19} | "
          f"{s['cl_cpu']:12.2f} | {s['cl_rss']:19.1f} | {s['sync']:8.2f} | "
          f"{'yes' if s['ok'] else 'NO':7} |")
print("(client = " + ", ".join(f"{clients[t]} for {t}" for t in summary) + ")")

def ratio(a, b, target):
    if a in summary and b in summary:
        r = summary[b]["med"] / summary[a]["med"]
        print(f"{a}/{b} throughput: {r:.2f}x  ({r * 100:.0f}%; target {target})")

print()
ratio("scribed", "rsyslog", "> 1.00x")
ratio("scribed", "cp", ">= 0.30x")
ratio("scribed_tls", "scribed", ">= 0.70x")
ratio("scribed_tls", "rsyslog_ossl", "> 1.00x")
ratio("scribed_tls", "rsyslog_gtls", "> 1.00x")
ratio("rsyslog_ossl", "rsyslog", "(rsyslog's own TLS cost)")
ratio("rsyslog_gtls", "rsyslog", "(rsyslog's own TLS cost)")
if summary:
    print("\ncounting the sync that follows as well (time until the data is on the device):")
    for tool, s in summary.items():
        print(f"  {names[tool]:25} {s['med'] + s['sync']:6.3f} s  {in_bytes / (s['med'] + s['sync']) / 1e6:7.1f} MB/s")
    if "scribed" in summary and "cp" in summary:
        a, b = summary["scribed"], summary["cp"]
        print(f"  scribed/cp throughput: {(b['med'] + b['sync']) / (a['med'] + a['sync']):.2f}x")
PY

if (( FAILED )); then
    log "CORRECTNESS CHECK FAILED (see 'ok' column above; outputs kept under $RUN)"
    exit 1
fi
log "all correctness checks passed"
