#!/usr/bin/env bash
# Create/refresh the Python virtualenv used by the end-to-end test suite.
# Idempotent: re-running with an unchanged requirements file only re-runs
# `pip check`.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"
REQ="$ROOT/tests/python/requirements.txt"
STAMP="$VENV/.basalt-requirements.sha256"
PYTHON="${PYTHON:-python3}"

if [[ ! -f "$REQ" ]]; then
    echo "python-setup: missing $REQ" >&2
    exit 1
fi

if [[ ! -x "$VENV/bin/python" ]] || ! "$VENV/bin/python" -c 'import sys' >/dev/null 2>&1; then
    echo "python-setup: creating $VENV with $("$PYTHON" --version 2>&1)"
    rm -rf "$VENV"
    "$PYTHON" -m venv "$VENV"
fi

want="$(sha256sum "$REQ" | cut -d' ' -f1)"
have="$(cat "$STAMP" 2>/dev/null || true)"

if [[ "$want" != "$have" ]]; then
    echo "python-setup: installing pinned requirements"
    "$VENV/bin/python" -m pip install --quiet --upgrade pip
    "$VENV/bin/python" -m pip install --quiet -r "$REQ"
    echo "$want" > "$STAMP"
else
    echo "python-setup: requirements up to date"
fi

"$VENV/bin/python" -m pip check

# The console tests drive Debian's headless Chromium through its chromedriver.
if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then
    if [[ "$(id -u)" == 0 ]] && command -v apt-get >/dev/null; then
        echo "python-setup: installing chromium and chromium-driver"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null
    else
        echo "python-setup: chromium and chromium-driver are missing (the console tests will fail)" >&2
    fi
fi
