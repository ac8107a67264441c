#!/usr/bin/env bash
# The exactly-once torture suite (tests/tests/exactly_once.rs) in its long mode: every scenario
# runs TORTURE_SECS seconds (default 300) in a release build, and the per-scenario lines
#   torture scenario=NAME sent=N delivered=N lost=N duplicated=N reordered=N torn=N window=N ...
# are collected into a summary at the end.
#
#   bench/torture.sh [TEST-NAME-FILTER...]
#
# Environment:
#   TORTURE_SECS           seconds of torture per scenario (default 300)
#   TORTURE_RATE           lines/s per writer, 3 writers per scenario (default 2000)
#   TORTURE_SEED           kill timing seed
#   TORTURE_AT_LEAST_ONCE  1: duplicates are reported but do not fail a scenario
#   TORTURE_THREADS        scenarios run at once (default 1, so they do not disturb each other)
#   CARGO_TARGET_DIR       as for cargo
#
# Output (cargo's and the tests') is tee'd to bench/work/torture-<UTC time>.log. Exits with
# cargo test's status: non-zero when any scenario lost, repeated, reordered or cut a line.
# Needs root (or user namespaces) for the disk-full scenario's tmpfs; otherwise that scenario
# prints why it was skipped. Not part of the test suite.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
WORK=$ROOT/bench/work
mkdir -p "$WORK"
export TORTURE_SECS=${TORTURE_SECS:-300}
LOG=$WORK/torture-$(date -u +%Y%m%dT%H%M%SZ).log

echo "torture: long mode, ${TORTURE_SECS}s per scenario, release build; log: $LOG" >&2
cd "$ROOT"
set +e
cargo test --release -p pipeline-tests --test exactly_once -- \
    --nocapture --test-threads "${TORTURE_THREADS:-1}" "$@" 2>&1 | tee "$LOG"
rc=${PIPESTATUS[0]}
set -e

echo
echo "== torture summary (TORTURE_SECS=$TORTURE_SECS, rate ${TORTURE_RATE:-2000}/s x 3 writers)"
grep -oE 'torture scenario=.*' "$LOG" || echo "(no scenario reported)"
echo "cargo test exit status: $rc"
exit "$rc"
