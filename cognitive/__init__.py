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

# GNU OpenMP (PyTorch's CPU threads) spins its waiting threads by default (~3 ms before sleeping). When other
# processes share the cores (a laptop, CI, a shared machine), the spinning threads take turns with the working ones:
# measured on 2 cores with 8 other busy processes, a forward of the 135M ran 10-20x slower than with waiting threads
# asleep. Asleep, though, the threads are woken again for each of a generated token's ~1,200 small ops, which on a
# quiet machine costs 1.2-1.3x at batch 16 and 1.6-1.8x at batch 1. So: threads asleep
# (OMP_WAIT_POLICY=PASSIVE), and when no other process is running at start, a short spin first (GOMP_SPINCOUNT=30000,
# ~0.1-0.3 ms), which on a loaded machine costs 0.6-0.9x (tests/performance/bench_cpu_speed.py --sections threads,
# experiments/cpu_speed/README.md). OpenMP reads both once, when torch is first imported: importing cognitive before
# torch (the recipes do) sets them for the run and its child processes. Values already set win;
# COGNITIVE_SLM_THREAD_DEFAULTS=0 leaves OpenMP's own defaults.
SHORT_SPIN = "30000"


def others_running() -> int:
    """Processes running or runnable on this machine right now besides this one (/proc/loadavg's 4th field,
    the fewest of three readings); 0 where it cannot be read."""
    try:
        readings = [int(Path("/proc/loadavg").read_text().split()[3].split("/")[0]) for _ in range(3)]
    except (OSError, ValueError, IndexError):
        return 0
    return max(min(readings) - 1, 0)


def thread_defaults(environ: dict, cores: int, others: int) -> dict:
    """The OpenMP settings cognitive adds to `environ` (returned, not applied): PASSIVE unless a policy is set, and
    the short spin when the policy is PASSIVE, no spin count is set and fewer than half the cores are busy."""
    if environ.get("COGNITIVE_SLM_THREAD_DEFAULTS", "1") == "0":
        return {}
    out = {} if "OMP_WAIT_POLICY" in environ else {"OMP_WAIT_POLICY": "PASSIVE"}
    passive = {**environ, **out}["OMP_WAIT_POLICY"].upper() == "PASSIVE"
    if passive and "GOMP_SPINCOUNT" not in environ and others < max(cores // 2, 1):
        out["GOMP_SPINCOUNT"] = SHORT_SPIN
    return out


_cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
os.environ.update(thread_defaults(os.environ, _cores, others_running()))
