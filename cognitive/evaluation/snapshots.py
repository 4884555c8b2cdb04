"""Evaluation documents for the lm-evaluation-harness tasks in eval/tasks.

Each task reads a fixed JSONL snapshot, eval/data/<task>.jsonl, of records in the training schema,
generated from `EVAL_SEEDS` (disjoint from every training seed) by the same generators and checkers as the
training data: DOCS_PER_DIFFICULTY verified records of each of SNAPSHOT_DIFFICULTIES, interleaved (basic,
intermediate, advanced, basic, ...) so that `--limit N` is a mixed prefix, and without two records of the
same normalised problem text. Snapshots are rebuilt with

    python -m cognitive.evaluation.snapshots --task cognitive_reasoning      # or --all

which also records each snapshot's sha256 in its task YAML (`metadata.snapshot_sha256`) and, when the
documents changed, bumps `metadata.version`. The task refuses to load a snapshot whose sha256 differs, and
tests/unit/test_snapshots.py checks the same, so changed documents cannot go out under an old version. The data
pipeline decontaminates training sets against every eval/data/*.jsonl by normalised-text hash
(cognitive.data.filters.load_eval_hashes).
"""

from __future__ import annotations

import hashlib
import json
import re
import sys
from pathlib import Path

from cognitive import PROJECT_ROOT, tasks
from cognitive.data.generators import EVAL_SEEDS, generate_example
from cognitive.data.schema import CognitiveTrainingExample, DifficultyLevel, iter_jsonl, write_jsonl
from cognitive.errors import ArgumentParser, UserError

EVAL_DIR = PROJECT_ROOT / "eval"
DATA_DIR = EVAL_DIR / "data"
TASKS_DIR = EVAL_DIR / "tasks"

# The difficulties a snapshot holds (expert problems are left out: beyond the models this project trains).
SNAPSHOT_DIFFICULTIES = (DifficultyLevel.BASIC, DifficultyLevel.INTERMEDIATE, DifficultyLevel.ADVANCED)
DOCS_PER_DIFFICULTY = 200


class SnapshotChanged(ValueError):
    """The snapshot on disk is not the one the task YAML's metadata names."""


def eval_seed(task: str, difficulty: DifficultyLevel, index: int) -> int:
    """A seed in EVAL_SEEDS, distinct per (task, difficulty, index)."""

    key = f"{task}/{difficulty.value}/{index}".encode()
    offset = int.from_bytes(hashlib.sha256(key).digest()[:8], "big") % len(EVAL_SEEDS)
    return EVAL_SEEDS[offset]


def build_snapshot(
    task: str, per_difficulty: int = DOCS_PER_DIFFICULTY, difficulties=SNAPSHOT_DIFFICULTIES
) -> list[CognitiveTrainingExample]:
    """Verified eval records, `per_difficulty` of each difficulty, interleaved; a record whose normalised
    problem text repeats an earlier one, or that fails its checker, is skipped (the next index is tried)."""
    from cognitive.data.filters import normalized_hash

    task_type = tasks.get(task).name
    seen: set[str] = set()

    def fresh(difficulty):
        index = 0
        while True:
            example = generate_example(task_type, difficulty, eval_seed(task, difficulty, index))
            index += 1
            key = normalized_hash(example)
            if example.verified and key not in seen:
                seen.add(key)
                yield example

    streams = [fresh(DifficultyLevel(d)) for d in difficulties]
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
        "task": tasks.get(example.task_type).eval_task,
        "difficulty": example.difficulty.value,
        "system_prompt": example.system_prompt(),
        "user_prompt": example.user_prompt(),
        "reference": example.final_answer,
        "answer": json.dumps(spec.get("answer")),
        "problem_spec": json.dumps(spec),
    }


def parse_difficulties(difficulty) -> set[str] | None:
    """None (all), or the difficulty names in 'basic', 'basic,advanced' or ['basic', 'advanced']; an unknown name is a
    UserError naming it."""
    if difficulty in (None, "", "all"):
        return None
    names = difficulty.split(",") if isinstance(difficulty, str) else list(difficulty)
    known = [d.value for d in DifficultyLevel]
    unknown = [name.strip() for name in names if name.strip() not in known]
    if unknown:
        raise UserError(f"difficulty '{unknown[0]}' is not one of {', '.join(known)}")
    return {name.strip() for name in names}


def load_docs(task: str, difficulty=None):
    """A DatasetDict {'test': docs} for lm-eval's `custom_dataset`; `difficulty` keeps only those docs."""
    from datasets import Dataset, DatasetDict

    docs = [to_doc(ex) for ex in iter_jsonl(snapshot_path(task))]
    keep = parse_difficulties(difficulty)
    if keep is not None:
        docs = [d for d in docs if d["difficulty"] in keep]
    return DatasetDict({"test": Dataset.from_list(docs)})


def load_task_docs(task: str, **metadata):
    """The `custom_dataset` of eval/tasks/cognitive/<task>.yaml (through utils.load_docs, which the YAML names
    with `dataset_kwargs: {task: <task>}`). lm-eval passes the YAML's metadata (version, snapshot_sha256) and
    anything given with `--metadata` (plus the model args) as keyword arguments: the snapshot must have the
    recorded sha256, and `--metadata '{"difficulty": "basic"}'` keeps one difficulty (comma-separated for
    several; an unknown one ends the run with a one-line error, exit 2)."""
    recorded = metadata.get("snapshot_sha256")
    actual = snapshot_sha256(task)
    if recorded != actual:
        raise SnapshotChanged(
            f"{snapshot_path(task)} has sha256 {actual}, but the {task} task YAML records {recorded}: the documents "
            f"changed. Bump metadata.version and set snapshot_sha256 in eval/tasks/cognitive/{task}.yaml."
        )
    try:
        return load_docs(task, metadata.get("difficulty"))
    except UserError as e:  # lm_eval's CLI would print a traceback: one line and exit 2 instead
        print(f"error: --metadata {e}", file=sys.stderr)
        raise SystemExit(2) from None


def task_yaml_path(task: str) -> Path:
    return TASKS_DIR / "cognitive" / f"{task}.yaml"


def record_snapshot(task: str, yaml_path: Path | None = None) -> str | None:
    """Write the snapshot's sha256 into the task YAML's metadata and, when it changed, bump the major version.
    Returns 'old -> new' version when the documents changed, else None."""
    path = yaml_path or task_yaml_path(task)
    text = path.read_text()
    sha = snapshot_sha256(task)
    recorded = re.search(r"^(\s*snapshot_sha256:\s*)(\S+)", text, re.MULTILINE)
    version = re.search(r"^(\s*version:\s*)([\d.]+)", text, re.MULTILINE)
    if recorded is None or version is None:
        raise ValueError(f"{path}: metadata needs 'version:' and 'snapshot_sha256:' lines")
    if recorded.group(2) == sha:
        return None
    new_version = f"{int(float(version.group(2))) + 1}.0"
    text = text[: recorded.start(2)] + sha + text[recorded.end(2) :]
    text = text[: version.start(2)] + new_version + text[version.end(2) :]
    path.write_text(text)
    return f"{version.group(2)} -> {new_version}"


def main(argv=None) -> None:
    parser = ArgumentParser(
        description="Rebuild eval snapshots in eval/data/ and record them in the task "
        "YAMLs (snapshot_sha256; the version goes up when documents change)."
    )
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("--task", choices=tasks.eval_tasks())
    which.add_argument("--all", action="store_true", help="every task")
    parser.add_argument("--per-difficulty", type=int, default=DOCS_PER_DIFFICULTY)
    parser.add_argument("--difficulties", nargs="+", default=[d.value for d in SNAPSHOT_DIFFICULTIES])
    args = parser.parse_args(argv)
    for task in tasks.eval_tasks() if args.all else [args.task]:
        records = build_snapshot(task, args.per_difficulty, [DifficultyLevel(d) for d in args.difficulties])
        n = write_jsonl(records, snapshot_path(task))
        bumped = record_snapshot(task)
        change = f"documents changed: {task} version {bumped}" if bumped else "documents unchanged"
        print(f"wrote {n} records to {snapshot_path(task)} (sha256 {snapshot_sha256(task)}); {change}")


if __name__ == "__main__":
    main()
