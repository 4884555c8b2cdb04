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

from pathlib import Path

__version__ = "0.1.0"

# The checkout this package runs from (installed editable): recipes/, eval/ and data/configs/ live here.
PROJECT_ROOT = Path(__file__).resolve().parent.parent
