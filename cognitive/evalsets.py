"""Evaluation documents for the lm-evaluation-harness tasks in eval/tasks.

Each task reads a fixed JSONL snapshot, eval/data/<task>.jsonl, of records in the training schema,
generated from `EVAL_SEEDS` (disjoint from every training seed) by the same generators and checkers as the
training data. Snapshots are rebuilt with

    python -m cognitive.evalsets --task cognitive_reasoning --per-difficulty 200

and each task YAML records the snapshot's sha256 beside its version, so a changed snapshot without a new
version fails the tests.
"""

from __future__ import annotations

import argparse
import hashlib
import json
from pathlib import Path

from cognitive.schema import CognitiveTrainingExample, DifficultyLevel, ReasoningType, iter_jsonl, write_jsonl

EVAL_DIR = Path(__file__).resolve().parent.parent / "eval"
DATA_DIR = EVAL_DIR / "data"

TASKS = {
    "cognitive_reasoning": ReasoningType.CHAIN_OF_THOUGHT,
    "cognitive_planning": ReasoningType.PLANNING,
    "cognitive_state": ReasoningType.STATE_TRANSITION,
    "cognitive_logic": ReasoningType.PROBLEM_SOLVING,
    "cognitive_memory": ReasoningType.MEMORY_RECALL,
}
DEFAULT_DIFFICULTIES = [DifficultyLevel.BASIC, DifficultyLevel.INTERMEDIATE]


def eval_seed(task: str, difficulty: DifficultyLevel, index: int) -> int:
    """A seed in EVAL_SEEDS, distinct per (task, difficulty, index)."""
    from cognitive.generators import EVAL_SEEDS

    key = f"{task}/{difficulty.value}/{index}".encode()
    offset = int.from_bytes(hashlib.sha256(key).digest()[:8], "big") % len(EVAL_SEEDS)
    return EVAL_SEEDS[offset]


def build_snapshot(task: str, per_difficulty: int, difficulties=DEFAULT_DIFFICULTIES) -> list[CognitiveTrainingExample]:
    """Verified eval records, `per_difficulty` of each difficulty, interleaved (so `--limit N` is a mixed prefix).

    Examples that fail their checker are skipped (the generators only emit verified ones in practice).
    """
    from cognitive.generators import generate_example

    def verified(difficulty):
        index = 0
        while True:
            example = generate_example(TASKS[task], difficulty, eval_seed(task, difficulty, index))
            index += 1
            if example.verified:
                yield example

    streams = [verified(d) for d in difficulties]
    return [next(stream) for _ in range(per_difficulty) for stream in streams]


def snapshot_path(task: str) -> Path:
    return DATA_DIR / f"{task}.jsonl"


def snapshot_sha256(task: str) -> str:
    return hashlib.sha256(snapshot_path(task).read_bytes()).hexdigest()


def to_doc(example: CognitiveTrainingExample) -> dict:
    """One lm-eval document: the prompt as the model is trained to see it, plus what scoring needs."""
    spec = example.problem_spec or {}
    return {
        "id": example.id,
        "difficulty": example.difficulty.value,
        "system_prompt": example.system_prompt(),
        "user_prompt": example.user_prompt(),
        "reference": example.final_answer,
        "answer": json.dumps(spec.get("answer")),
        "problem_spec": json.dumps(spec),
    }


def load_docs(task: str, difficulty: str | None = None):
    """A DatasetDict {'test': docs} for lm-eval's `custom_dataset`."""
    from datasets import Dataset, DatasetDict

    docs = [to_doc(ex) for ex in iter_jsonl(snapshot_path(task))]
    if difficulty is not None:
        docs = [d for d in docs if d["difficulty"] == difficulty]
    return DatasetDict({"test": Dataset.from_list(docs)})


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description="Rebuild an eval snapshot in eval/data/.")
    parser.add_argument("--task", choices=sorted(TASKS), required=True)
    parser.add_argument("--per-difficulty", type=int, default=200)
    parser.add_argument("--difficulties", nargs="+", default=[d.value for d in DEFAULT_DIFFICULTIES])
    args = parser.parse_args(argv)
    records = build_snapshot(args.task, args.per_difficulty, [DifficultyLevel(d) for d in args.difficulties])
    n = write_jsonl(records, snapshot_path(args.task))
    print(f"wrote {n} records to {snapshot_path(args.task)} (sha256 {snapshot_sha256(args.task)})")


if __name__ == "__main__":
    main()
