#!/usr/bin/env bash
# Run the Python end-to-end suite against the Basalt binary.
# BASALT_BIN overrides the binary (default: target/release/basalt).
# Extra arguments are passed to pytest.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

bash "$ROOT/scripts/python-setup.sh"

set +e
"$ROOT/.venv/bin/python" -m pytest "$ROOT/tests/python" -q "$@"
rc=$?
set -e
exit $rc
