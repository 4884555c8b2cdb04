"""Loader and scorer of every cognitive_* task: thin bindings of cognitive.evaluation.snapshots and .scoring.

lm-eval calls `load_docs(**kwargs)` (the YAML's `custom_dataset`) with the YAML's metadata (version,
snapshot_sha256), anything given with --metadata, the model args and the YAML's `dataset_kwargs` (the task name),
and `process_results(doc, [output])` once per document (each document carries its task's name).
"""

from cognitive.evaluation.scoring import score_document
from cognitive.evaluation.snapshots import load_task_docs


def load_docs(**kwargs):
    return load_task_docs(**kwargs)


def process_results(doc, results):
    return score_document(doc, results[0])
