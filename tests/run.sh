#!/usr/bin/env bash
# The test suite on a fresh machine: set up .venv if needed, then pytest (options pass through).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash recipes/setup.sh
exec .venv/bin/python -m pytest "$@"
