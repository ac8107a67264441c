#!/usr/bin/env bash
# Creates (once) the Python virtualenv the Scribe compatibility tests run the real PyPI clients
# from: facebook-scribe (Thrift-0.9-generated `scribe` and `fb303` packages) and thrift.
#
#   scripts/compat-venv.sh          # creates/updates target/compat-venv; prints its python path
#
# Idempotent and quick when the pinned versions are already installed. Safe to run
# concurrently (serialised with flock). Override the location with COMPAT_VENV=DIR.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${COMPAT_VENV:-$ROOT/target/compat-venv}"
PYTHON="${PYTHON:-python3}"
# Pinned: the versions the research brief's known-good bytes were produced with.
REQUIREMENTS=("facebook-scribe==2.0.post1" "thrift==0.25.0")
STAMP="$VENV/.compat-requirements"
WANT="${REQUIREMENTS[*]}"

ready() {
    [[ -x "$VENV/bin/python" && -f "$STAMP" && "$(cat "$STAMP")" == "$WANT" ]] &&
        "$VENV/bin/python" -c 'import scribe.scribe, fb303.FacebookService, thrift' 2>/dev/null
}

if ready; then
    echo "$VENV/bin/python"
    exit 0
fi

mkdir -p "$(dirname "$VENV")"
exec 9>"$VENV.lock"
flock -w 600 9 || { echo "compat-venv: timed out waiting for $VENV.lock" >&2; exit 1; }
# Another process may have finished the job while we waited for the lock.
if ready; then
    echo "$VENV/bin/python"
    exit 0
fi

if [[ ! -x "$VENV/bin/python" ]]; then
    rm -rf "$VENV"
    "$PYTHON" -m venv "$VENV" >&2 || {
        echo "compat-venv: '$PYTHON -m venv' failed (on Debian: apt-get install python3-venv)" >&2
        exit 1
    }
fi
rm -f "$STAMP"
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --no-input \
    "${REQUIREMENTS[@]}" >&2 || {
    echo "compat-venv: pip install ${WANT} into $VENV failed" >&2
    exit 1
}
"$VENV/bin/python" -c 'import scribe.scribe, fb303.FacebookService, thrift' >&2 || {
    echo "compat-venv: installed packages do not import" >&2
    exit 1
}
echo "$WANT" >"$STAMP"
echo "$VENV/bin/python"
