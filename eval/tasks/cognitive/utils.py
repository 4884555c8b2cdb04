"""Loaders and scorers of the cognitive_* tasks: thin bindings of cognitive.evalsets and cognitive.scoring.

lm-eval calls `custom_dataset(**metadata)` with the YAML's metadata (version, snapshot_sha256), anything given
with --metadata, and the model args; `process_results(doc, [output])` once per document.
"""

from cognitive.evalsets import load_task_docs
from cognitive.scoring import score_document


def load_reasoning(**metadata):
    return load_task_docs("cognitive_reasoning", **metadata)


def load_planning(**metadata):
    return load_task_docs("cognitive_planning", **metadata)


def load_state(**metadata):
    return load_task_docs("cognitive_state", **metadata)


def load_logic(**metadata):
    return load_task_docs("cognitive_logic", **metadata)


def load_memory(**metadata):
    return load_task_docs("cognitive_memory", **metadata)


def process_reasoning(doc, results):
    return score_document("cognitive_reasoning", doc, results[0])


def process_planning(doc, results):
    return score_document("cognitive_planning", doc, results[0])


def process_state(doc, results):
    return score_document("cognitive_state", doc, results[0])


def process_logic(doc, results):
    return score_document("cognitive_logic", doc, results[0])


def process_memory(doc, results):
    return score_document("cognitive_memory", doc, results[0])
