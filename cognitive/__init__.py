"""cognitive-slm: fine-tuning stack for cognitive small language models.

Subpackages by concern (each module's docstring says what it holds):
    tasks        the registry of task types: every place that lists task types reads it
    data/        the training record, the response format, generators + checkers, filters, the build pipeline
    model/       base loading, the cognitive modules and their injection, remote code, the memory estimate
    train/       recipe arguments, SFT datasets, auxiliary labels, the trainer, preflight and the run directory
    evaluation/  eval snapshots, scoring, the lm-evaluation-harness runner
    release/     merge into a release, model card, chat, serve
    errors, atomic, plots   small shared pieces
"""

import os
from pathlib import Path

__version__ = "0.1.0"

# The checkout this package runs from (installed editable): recipes/, eval/ and data/configs/ live here.
PROJECT_ROOT = Path(__file__).resolve().parent.parent

# GNU OpenMP (PyTorch's CPU threads) spins its waiting threads by default. When other processes share the cores (a
# laptop, CI, a shared machine), the spinning threads take turns with the working ones: measured on 2 cores with 8
# other busy processes, a forward of the 135M ran 10-20x slower than with waiting threads asleep
# (tests/performance/bench_cpu_speed.py, experiments/cpu_speed/README.md). OpenMP reads this once, when torch is
# first imported: importing cognitive before torch (the recipes do) sets it for every run and its child processes.
# An OMP_WAIT_POLICY already set wins; COGNITIVE_SLM_THREAD_DEFAULTS=0 leaves OpenMP's own default.
if os.environ.get("COGNITIVE_SLM_THREAD_DEFAULTS", "1") != "0":
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
