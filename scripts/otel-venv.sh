#!/usr/bin/env bash
# Creates (once) the Python virtualenv the OTLP input tests run the real OpenTelemetry Python
# SDK from: opentelemetry-sdk and opentelemetry-exporter-otlp-proto-http, every package pinned
# with hashes (tests/compat/otel-requirements.txt).
#
#   scripts/otel-venv.sh          # creates/updates target/otel-venv; prints its python path
#
# Idempotent and quick when the pinned set is already installed. Safe to run concurrently
# (serialised with flock). Override the location with OTEL_VENV=DIR.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${OTEL_VENV:-$ROOT/target/otel-venv}"
PYTHON="${PYTHON:-python3}"
REQS="$ROOT/tests/compat/otel-requirements.txt"
STAMP="$VENV/.otel-requirements"
WANT="$(sha256sum "$REQS" | cut -d' ' -f1)"
CHECK='import opentelemetry.sdk._logs, opentelemetry.exporter.otlp.proto.http._log_exporter'

ready() {
    [[ -x "$VENV/bin/python" && -f "$STAMP" && "$(cat "$STAMP")" == "$WANT" ]] &&
        "$VENV/bin/python" -c "$CHECK" 2>/dev/null
}

if ready; then
    echo "$VENV/bin/python"
    exit 0
fi
mkdir -p "$(dirname "$VENV")"
exec 9>"$VENV.lock"
flock -w 600 9 || { echo "otel-venv: timed out waiting for $VENV.lock" >&2; exit 1; }
if ready; then
    echo "$VENV/bin/python"
    exit 0
fi
if [[ ! -x "$VENV/bin/python" ]]; then
    rm -rf "$VENV"
    "$PYTHON" -m venv "$VENV" >&2 || {
        echo "otel-venv: '$PYTHON -m venv' failed (on Debian: apt-get install python3-venv)" >&2
        exit 1
    }
fi
rm -f "$STAMP"
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --no-input \
    --require-hashes --only-binary=:all: -r "$REQS" >&2 || {
    echo "otel-venv: pip install -r $REQS into $VENV failed" >&2
    exit 1
}
"$VENV/bin/python" -c "$CHECK" >&2 || {
    echo "otel-venv: installed packages do not import" >&2
    exit 1
}
echo "$WANT" >"$STAMP"
echo "$VENV/bin/python"
