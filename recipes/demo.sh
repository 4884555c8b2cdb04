#!/usr/bin/env bash
# The main job on a fresh machine: set up .venv if needed, then run recipes/demo.py (options pass through).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash recipes/setup.sh
exec .venv/bin/python recipes/demo.py "$@"
