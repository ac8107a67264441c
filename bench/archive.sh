#!/usr/bin/env bash
# Object-store archive benchmark: how fast scribed's closed files reach a bucket.
#
#   bench/archive.sh
#
# Starts SeaweedFS (`weed mini`, from scripts/seaweedfs.sh) on loopback ports and a release
# scribed whose file store rotates at ARCHIVE_MAX_SIZE and uploads to it ([store.s3]); ships
# ARCHIVE_BYTES of Apache log (bench/gen_apache_log.py) with `ship`, and measures
#   ingest    ship's start to its exit (every line acknowledged)
#   upload    ship's start until /metrics shows no backlog and every closed byte uploaded
# with scribed's peak RSS (VmHWM) and CPU. ARCHIVE_COMPRESS=true uploads the store's own .gz
# files; false (default) gzips on the way.
#
# Then reading the bucket back, side by side in the same run, each counting the lines that
# hold ARCHIVE_PATTERN (a fixed string):
#   logq      logq grep -F --archive s3://logs/bench --category bench | wc -l  (peak RSS too)
#   download  rclone copy of the prefix (Debian's rclone, installed if missing), then
#             zcat of the objects in key order | grep -F | wc -l
# and the ratio. Both must count the same lines.
#
# Environment: ARCHIVE_BYTES (default 1 GiB), ARCHIVE_MAX_SIZE (64M), ARCHIVE_COMPRESS
# (false), ARCHIVE_PART_SIZE (8M), ARCHIVE_PATTERN (' 404 '); BENCH_NO_BUILD, BENCH_REV as in
# bench/ingest.sh. Not part of the test suite.

set -euo pipefail
BENCH_TAG=archive
QUIET_WAIT=${QUIET_WAIT:-60}
source "$(dirname "$0")/lib.sh"

BYTES=${ARCHIVE_BYTES:-1073741824}
MAX_SIZE=${ARCHIVE_MAX_SIZE:-64M}
COMPRESS=${ARCHIVE_COMPRESS:-false}
PART=${ARCHIVE_PART_SIZE:-8M}
PATTERN=${ARCHIVE_PATTERN:- 404 }

bench_build
LOGQ=$BIN/logq
[[ -x $LOGQ ]] || die "release logq missing in $BIN"
need_pkgs=()
command -v rclone >/dev/null || need_pkgs+=(rclone)
[[ -x /usr/bin/time ]] || need_pkgs+=(time)
if (( ${#need_pkgs[@]} )); then
    SUDO=; (( EUID == 0 )) || SUDO=sudo
    log "installing ${need_pkgs[*]}"
    if ! $SUDO apt-get install -y "${need_pkgs[@]}" >&2; then
        $SUDO apt-get update >&2
        $SUDO apt-get install -y "${need_pkgs[@]}" >&2
    fi
fi
bench_input "$BYTES"
WEED=$("$ROOT/scripts/seaweedfs.sh")

RUN=$(mktemp -d "$WORK/archive.XXXXXX")
PIDS+=()
trap 'cleanup; rm -rf "$RUN"' EXIT

port() { python3 "$BENCH/free_port.py"; }
flags=()
for f in master.port master.port.grpc volume.port volume.port.grpc filer.port filer.port.grpc \
    s3.port s3.port.grpc s3.port.iceberg s3.port.lance metricsPort admin.port admin.port.grpc; do
    p=$(port)
    flags+=("-$f=$p")
    [[ $f == s3.port ]] && S3PORT=$p
done
cat >"$RUN/s3.json" <<JSON
{"identities":[{"name":"bench","credentials":[{"accessKey":"AKBENCH","secretKey":"SKBENCH"}],"actions":["Admin","Read","Write","List"]}]}
JSON
mkdir -p "$RUN/weed"
"$WEED" mini -dir="$RUN/weed" -ip=127.0.0.1 -ip.bind=127.0.0.1 -master.telemetry=false \
    -admin.ui=false -webdav=false -s3.autoCreateBucket=false -s3.config="$RUN/s3.json" \
    -bucket=logs "${flags[@]}" >"$RUN/weed.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 300); do
    [[ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$S3PORT/logs")" == 403 ]] && break
    sleep 0.1
done
sleep 1 # the bucket is created just after the S3 port answers

cat >"$RUN/scribed.toml" <<TOML
[[store]]
category = "default"
type = "file"
max_size = "$MAX_SIZE"
compress = $COMPRESS
keep_files = 2
[store.s3]
bucket = "logs"
prefix = "bench"
endpoint = "http://127.0.0.1:$S3PORT"
region = "us-east-1"
path_style = true
aggregator_id = "bench"
part_size = "$PART"
TOML
AWS_ACCESS_KEY_ID=AKBENCH AWS_SECRET_ACCESS_KEY=SKBENCH "$SCRIBED" --listen 127.0.0.1:0 \
    --status-listen 127.0.0.1:0 --data-dir "$RUN/data" --ready-file "$RUN/ready" \
    --config "$RUN/scribed.toml" 2>"$RUN/scribed.log" &
SPID=$!
PIDS+=($SPID)
for _ in $(seq 200); do [[ -s $RUN/ready ]] && break; sleep 0.1; done
ADDR=$(head -1 "$RUN/ready")
STATUS=$(awk '/^status / {print $2}' "$RUN/ready")
metric() { curl -s "http://$STATUS/metrics" | awk -v m="$1" 'index($0, m "{") == 1 {s += $NF} END {print s + 0}'; }

log "shipping $IN_BYTES bytes ($IN_LINES lines), files of $MAX_SIZE, compress=$COMPRESS"
t0=$(now_ns)
cpu0=$(proc_cpu_ticks "$SPID")
"$SHIP" --to "$ADDR" bench <"$INPUT"
t_ingest=$(( $(now_ns) - t0 ))
# Done when nothing closed waits and the uploaded bytes stayed put for 3 checks (a pass
# recounts the backlog every second when idle).
last=-1 same=0 t_last=$(now_ns)
while (( same < 3 )); do
    up=$(metric scribed_uploaded_bytes)
    backlog=$(metric scribed_upload_backlog_files)
    if [[ $backlog == 0 && $up == "$last" && $up != 0 ]]; then
        same=$(( same + 1 ))
    else
        same=0 t_last=$(now_ns)
    fi
    last=$up
    sleep 0.5
done
t_upload=$(( t_last - t0 ))
cpu=$(( $(proc_cpu_ticks "$SPID") - cpu0 ))
files=$(metric scribed_uploaded_files)
closed=$(( IN_BYTES - $(stat -c %s "$RUN/data/bench/$(readlink "$RUN/data/bench/bench_current")") ))
echo "archive: $(git -C "$ROOT" log -1 --format=%h) $REV_DESC"
machine_lines
printf 'ingest: %d MB in %.1f s = %.0f MB/s\n' $(( IN_BYTES >> 20 )) \
    "$(echo "$t_ingest / 1000000000" | bc -l)" "$(echo "$IN_BYTES / 1048576 / ($t_ingest / 1000000000)" | bc -l)"
printf 'to the bucket: %d MB of closed files (%d objects, %d MB gzipped) in %.1f s from the start = %.0f MB/s\n' \
    $(( closed >> 20 )) "$files" $(( up >> 20 )) "$(echo "$t_upload / 1000000000" | bc -l)" \
    "$(echo "$closed / 1048576 / ($t_upload / 1000000000)" | bc -l)"
echo "scribed: peak RSS $(( $(proc_hwm_kb "$SPID") / 1024 )) MB, CPU $(( cpu / CLK_TCK )) s"

# Reading it back: logq straight from the bucket, against download-then-zcat.
export AWS_ACCESS_KEY_ID=AKBENCH AWS_SECRET_ACCESS_KEY=SKBENCH
export AWS_ENDPOINT_URL=http://127.0.0.1:$S3PORT AWS_REGION=us-east-1
log "logq grep --archive over the bucket"
t0=$(now_ns)
n_logq=$( (/usr/bin/time -f %M -o "$RUN/logq.rss" "$LOGQ" grep -h -F -e "$PATTERN" \
    --archive s3://logs/bench --category bench --archive-stats 2>"$RUN/logq.err") | wc -l)
t_logq=$(( $(now_ns) - t0 ))
log "download with rclone, then zcat | grep"
export RCLONE_CONFIG_BENCH_TYPE=s3 RCLONE_CONFIG_BENCH_PROVIDER=Other \
    RCLONE_CONFIG_BENCH_ENDPOINT=$AWS_ENDPOINT_URL RCLONE_CONFIG_BENCH_ACCESS_KEY_ID=AKBENCH \
    RCLONE_CONFIG_BENCH_SECRET_ACCESS_KEY=SKBENCH RCLONE_CONFIG_BENCH_REGION=us-east-1
t0=$(now_ns)
# rclone's AWS SDK cannot take AWS_CA_BUNDLE with its own transport (and needs none here).
env -u AWS_CA_BUNDLE rclone copy bench:logs/bench "$RUN/download"
t_dl=$(( $(now_ns) - t0 ))
n_dl=$(find "$RUN/download" -name '*.gz' -print0 | sort -z | xargs -0 zcat | grep -F -- "$PATTERN" | wc -l)
t_dlgrep=$(( $(now_ns) - t0 ))
[[ $n_logq == "$n_dl" ]] || die "logq counted $n_logq lines, download+zcat+grep $n_dl"
secs() { echo "$1 / 1000000000" | bc -l; }
printf 'read back: %d matching lines (of %d MB in %d objects)\n' "$n_logq" \
    $(( (closed) >> 20 )) "$files"
printf '  logq grep --archive:    %.1f s, peak RSS %d MB (%s)\n' "$(secs $t_logq)" \
    $(( $(cat "$RUN/logq.rss") / 1024 )) "$(grep -o '[0-9]* listings.*' "$RUN/logq.err")"
printf '  rclone copy + zcat|grep: %.1f s (download %.1f s)\n' "$(secs $t_dlgrep)" "$(secs $t_dl)"
printf '  logq is %.1fx as fast\n' "$(echo "$t_dlgrep / $t_logq" | bc -l)"
