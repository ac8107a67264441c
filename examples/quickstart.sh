#!/usr/bin/env bash
# Quick start: build, run scribed on its embedded defaults (127.0.0.1:1463, ./scribe-data) and
# tailgate on its own (http://127.0.0.1:8080/, following ./scribe-data), ship a sample Apache
# log into the category apache.access, keep a trickle of lines flowing, and print the page's
# URL. Everything stops on Ctrl-C.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/build-release    # the same build as the benchmarks: switching never rebuilds
bin="${CARGO_TARGET_DIR:-target}/release"

pids=()
cleanup() {
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
}
trap cleanup EXIT
trap 'exit 130' INT TERM

wait_port() { # wait (at most 10 s) until 127.0.0.1:$1 accepts connections
  for _ in $(seq 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.1
  done
  echo "nothing listening on 127.0.0.1:$1" >&2
  return 1
}

"$bin/scribed" &
pids+=($!)
wait_port 1463
mkdir -p scribe-data
"$bin/tailgate" --data-dir scribe-data &
pids+=($!)
wait_port 8080
# tailgate tails categories that already exist from their end: let its first poll pass.
sleep 0.5

"$bin/ship" apache.access < examples/apache_access.log
echo
echo "shipped examples/apache_access.log; scribed wrote:"
ls -l scribe-data/apache.access/

# A trickle, so there is something live to watch: the sample again, a line every 0.3 s.
# (ship is the background process, so stopping it ends the trickle too: its writer gets EPIPE.)
trickle() {
  while true; do
    while IFS= read -r line; do printf '%s\n' "$line" || return 0; sleep 0.3; done < examples/apache_access.log
  done
}
"$bin/ship" apache.access < <(trickle) &
pids+=($!)

view='%7B%22panes%22%3A%5B%7B%22c%22%3A%22apache.access%22%7D%5D%7D'
echo
echo "Open http://127.0.0.1:8080/#v=$view"
echo "  (a pane on apache.access; more categories: echo hello | $bin/ship demo)"
echo "Press Ctrl-C to stop scribed and tailgate."
wait "${pids[0]}"
