#!/usr/bin/env bash
# Page benchmark: tailgate's page in headless Chromium, PANES panes of 5,000 rows each with
# RATE new lines/s per pane, measured over the DevTools protocol (bench/page.mjs): main-thread
# busy ms per second, the worst frame (longest gap between animation frames) and Chrome's
# long animation frames (>50 ms). Goal: under 100 ms/s and no frame over 50 ms.
#
#   bench/page.sh                    # the page in this tree
#   PAGE_REV=02c373d bench/page.sh   # also the page as of that commit, same server, same stream
#
# Environment: PANES (3), RATE (1000 lines/s per pane), SECONDS (10), TAILGATE_BIN (default:
# a release build of this tree), PAGE_REV (a commit whose tailgate/src/page.html to measure as
# well). Needs tests/browser/setup.sh (Chromium, playwright-core). Prints one JSON line per page.
# Chromium, tailgate and the writer share the machine: see docs/benchmarks.md.
# Not part of the test suite.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
"$ROOT/tests/browser/setup.sh"
if [[ -z ${TAILGATE_BIN:-} ]]; then
    "$ROOT/scripts/build-release" "$ROOT" -q    # the same build as every bench
    TAILGATE_BIN=${CARGO_TARGET_DIR:-$ROOT/target}/release/tailgate
fi
export TAILGATE_BIN PW_DIR=$ROOT/tests/browser
if [[ -n ${PAGE_REV:-} ]]; then
    old=$(mktemp --suffix=.html)
    trap 'rm -f "$old"' EXIT
    git -C "$ROOT" show "$PAGE_REV:tailgate/src/page.html" > "$old"
    PAGE_HTML=$old node "$ROOT/bench/page.mjs" | sed "s/\"page\":\"override\"/\"page\":\"$PAGE_REV\"/"
fi
node "$ROOT/bench/page.mjs"
