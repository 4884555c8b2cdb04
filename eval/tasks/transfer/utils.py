"""Loader and scorer of every cognitive_transfer_* task: thin bindings of cognitive.evaluation.transfer.

lm-eval calls `load_docs(**kwargs)` with the YAML's metadata (version, snapshot_sha256), anything given with
--metadata, the model args and the YAML's `dataset_kwargs` (the task name); `process_results(doc, [output])` once
per document.
"""

from cognitive.evaluation.transfer import load_transfer_docs, score_transfer


def load_docs(**kwargs):
    return load_transfer_docs(**kwargs)


def process_results(doc, results):
    return score_transfer(doc, results[0])
