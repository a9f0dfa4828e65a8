#!/usr/bin/env bash
# Run the Python end-to-end suite against the Basalt binary.
# BASALT_BIN overrides the binary (default: target/release/basalt).
# Extra arguments are passed to pytest.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

# Set by scripts/test, which prepares the venv once before running configurations side by side.
if [ -z "${BASALT_PYTHON_READY:-}" ]; then
    bash "$ROOT/scripts/python-setup.sh"
fi

set +e
"$ROOT/.venv/bin/python" -m pytest "$ROOT/tests/python" -q "$@"
rc=$?
set -e
exit $rc
