#!/usr/bin/env bash
# The test suite on a fresh machine: set up .venv if needed, lint (ruff check + ruff format --check), then pytest
# (options pass through: bash tests/run.sh -x -k merge).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash recipes/setup.sh
.venv/bin/ruff check .
.venv/bin/ruff format --check .
exec .venv/bin/python -m pytest "$@"
