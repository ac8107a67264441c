#!/usr/bin/env bash
# Installs what the tailgate browser test needs, idempotently: Debian's chromium and
# playwright-core (into tests/browser/node_modules, git-ignored). Fast when both are present.
set -euo pipefail
cd "$(dirname "$0")"
if [[ ! -x /usr/bin/chromium ]]; then
    if [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null; then
        echo "tests/browser/setup.sh: installing chromium" >&2
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
    else
        echo "tests/browser/setup.sh: need /usr/bin/chromium (Debian: sudo apt-get install chromium)" >&2
        exit 1
    fi
fi
if [[ ! -d node_modules/playwright-core ]]; then
    if ! command -v npm >/dev/null; then
        if [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null; then
            apt-get update -qq
            DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm >/dev/null
        else
            echo "tests/browser/setup.sh: need node and npm" >&2
            exit 1
        fi
    fi
    echo "tests/browser/setup.sh: installing playwright-core" >&2
    npm ci --no-audit --no-fund --silent 2>/dev/null || npm install --no-audit --no-fund --silent
fi
