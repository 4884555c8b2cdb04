#!/usr/bin/env bash
# The test suite on a fresh machine: set up .venv if needed, lint (ruff check + ruff format --check), then pytest
# on TEST_WORKERS processes (default 2; pytest-xdist, each test file on one worker, so a file's fixtures are built
# once; TEST_WORKERS=0 runs in this process). Options pass through: bash tests/run.sh -x -k merge.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash recipes/setup.sh
.venv/bin/ruff check .
.venv/bin/ruff format --check .
workers=${TEST_WORKERS:-2}
if [ "$workers" = 0 ]; then exec .venv/bin/python -m pytest "$@"; fi
exec .venv/bin/python -m pytest -n "$workers" --dist loadfile "$@"
