"""cognitive_reasoning: multi-step arithmetic word problems, scored by exact numeric match."""

import json

from cognitive.evalsets import load_docs
from cognitive.scoring import score_numeric


def load_reasoning(**metadata):
    return load_docs("cognitive_reasoning")


def process_results(doc: dict, results: list[str]) -> dict[str, float]:
    return score_numeric(results[0], float(json.loads(doc["answer"])))
