#!/usr/bin/env bash
# Quick start: build, run scribed on its embedded defaults (127.0.0.1:1463, ./scribe-data),
# ship a sample Apache log into it, show what landed, and leave scribed running until Ctrl-C.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -p scribed -p shipper
bin="${CARGO_TARGET_DIR:-target}/release"

"$bin/scribed" &
scribed_pid=$!
trap 'kill -TERM "$scribed_pid" 2>/dev/null; wait "$scribed_pid" 2>/dev/null' EXIT INT TERM
# Wait (at most 10 s) until it accepts connections.
for _ in $(seq 100); do
  (exec 3<>/dev/tcp/127.0.0.1/1463) 2>/dev/null && break
  sleep 0.1
done

"$bin/ship" apache.access < examples/apache_access.log
echo
echo "shipped examples/apache_access.log; scribed wrote:"
ls -l scribe-data/apache.access/
if cmp -s <(cat scribe-data/apache.access/apache.access_[0-9]*) examples/apache_access.log; then
  echo "(first run: the archive equals the input byte for byte)"
fi
echo
echo "scribed is listening on 127.0.0.1:1463 (pid $scribed_pid). Try, from another terminal:"
echo "  echo hello | $bin/ship demo"
echo "Press Ctrl-C to stop it."
wait "$scribed_pid"
