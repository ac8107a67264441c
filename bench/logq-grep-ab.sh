#!/usr/bin/env bash
# A/B timing of two logq binaries' grep on the same cached file, runs interleaved so that a
# busy machine slows both alike; prints min and median wall seconds per case.
#
#   OLD=/tmp/logq-old NEW=target/release/logq F=access.log bench/logq-grep-ab.sh
#
# F defaults to /tmp/bench.log (make one with bench/gen_apache_log.py /tmp/bench.log 256000000 1).
# Not part of the test suite; results in docs/benchmarks.md.
set -euo pipefail
F=${F:-/tmp/bench.log}; RUNS=${RUNS:-9}
OLD=${OLD:-/tmp/logq-old}; NEW=${NEW:-/tmp/logq-new}
run() { local s e; s=$(date +%s.%N); "$@" > /dev/null; e=$(date +%s.%N); echo "$e - $s" | bc; }
stats() { sort -n | awk '{a[NR]=$1} END {printf "min %.3f  median %.3f", a[1], a[int((NR+1)/2)]}'; }
case_() {
  local name=$1; shift
  : > /tmp/b.old; : > /tmp/b.new
  for i in $(seq "$RUNS"); do
    run "$OLD" "$@" "$F" >> /tmp/b.old
    run "$NEW" "$@" "$F" >> /tmp/b.new
  done
  printf '%-40s old: %s   new: %s\n' "$name" "$(stats < /tmp/b.old)" "$(stats < /tmp/b.new)"
}
cat "$F" > /dev/null
case_ "grep -c 'POST /login'" grep -c 'POST /login'
case_ "grep -c -E 'GET /[a-z]+ HTTP'" grep -c -E 'GET /[a-z]+ HTTP'
case_ "grep -c -i 'post /login'" grep -c -i 'post /login'
case_ "grep -c -w 'POST'" grep -c -w POST
case_ "grep -o -E '\" [45][0-9][0-9] '" grep -o -E '" [45][0-9][0-9] '
