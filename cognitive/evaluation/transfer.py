"""Transfer evaluation: third-party problems (reasoning-gym) asked as their authors ask them, scored by their scorers.

The cognitive_* tasks are built by our generators, prompted with our system prompt and scored on our answer format:
they measure whether a model learned that format. The cognitive_transfer tasks measure whether it reasons better on
problems someone else wrote. Each is a reasoning-gym dataset (cognitive/tasks.py names them, with their sizes, per
task type), generated once with a fixed seed into a snapshot, eval/data/transfer/<name>.jsonl, pinned by sha256 in
its task YAML (eval/tasks/transfer/cognitive_transfer_<name>.yaml, written by `python recipes/snapshots.py
--all`).

The prompt is the dataset's own question plus TRANSFER_REQUEST, with no system prompt. The final answer is read
after a final-answer marker when there is one (cognitive.data.answers.final_answer_text), else from the last
non-empty line; of "a + b = c" the value c is kept; markdown emphasis, quotes and a trailing period are dropped.
reasoning-gym's own `score_answer` scores it:

    score     1 when reasoning-gym scores the answer fully correct, else 0 (the headline)
    rg_score  reasoning-gym's score as it is (some datasets give partial credit, or 0.01 for any well-formed
              answer: a format reward, not a correct answer)
    answered  a non-empty answer could be read
    step_accuracy  the share of the reply's arithmetic steps that hold (when it writes any; see scoring.py)

The validation split (`--metadata '{"split": "validation"}'`, `recipes/evaluate.py --split validation`) is the same
datasets drawn with TRANSFER_VALIDATION_SEED, without a question of the snapshot: fresh third-party problems to choose
settings on (an interpolation weight, a step count) so that the test snapshots are never tuned on. It is generated
when loaded, not pinned: a reasoning-gym release that changes its generators changes it (the test split would fail
its sha256 check instead).
"""

from __future__ import annotations

import functools
import json
import logging
import sys
from pathlib import Path

from cognitive import tasks
from cognitive.atomic import write_text
from cognitive.data.answers import final_answer_text
from cognitive.evaluation.pinning import (
    DATA_DIR,
    EVAL_SPLITS,
    TASKS_DIR,
    check_pinned,
    file_sha256,
    write_generated_yaml,
)
from cognitive.evaluation.scoring import step_metrics

log = logging.getLogger(__name__)

TRANSFER_SEED = 2026  # the snapshots' reasoning-gym seed (disjoint from nothing we generate: other generators)
# The validation split's. reasoning-gym draws item i with seed + i, so the two ranges must not overlap (2027 would
# repeat 99 of chain_sum's 100 test questions); practice problems use other datasets (cognitive/data/practice.py).
TRANSFER_VALIDATION_SEED = 1_000_000
TRANSFER_DOCS = 100  # documents per transfer task in its snapshot
TRANSFER_REQUEST = "Put your final answer on its own line at the end."


def transfer_task(name: str) -> tasks.TransferTask:
    """The registry's transfer task by its eval task name (cognitive_transfer_<name>) or reasoning-gym name."""
    for task in tasks.transfer_tasks():
        if name in (task.name, task.eval_task):
            return task
    raise KeyError(f"no transfer task '{name}' in cognitive/tasks.py")


@functools.cache
def dataset(name: str, size: int = TRANSFER_DOCS, seed: int = TRANSFER_SEED):
    """The reasoning-gym dataset of a transfer task (its generator and its scorer)."""
    import reasoning_gym

    task = transfer_task(name)
    return reasoning_gym.create_dataset(task.name, size=size, seed=seed, **task.config)


# ------------------------------------------------------------------------------------------------ snapshots
def build_transfer_snapshot(name: str, size: int = TRANSFER_DOCS, seed: int = TRANSFER_SEED) -> list[dict]:
    """The snapshot's documents: reasoning-gym's entries with an id (metadata made JSON-safe)."""
    task = transfer_task(name)
    prefix = task.name if seed == TRANSFER_SEED else f"{task.name}-seed{seed}"
    entries = []
    for i, entry in enumerate(dataset(task.name, size, seed)):
        row = {
            "id": f"{prefix}-{i}",
            "question": entry["question"],
            "answer": entry["answer"],
            "metadata": entry.get("metadata", {}),
        }
        entries.append(json.loads(json.dumps(row, default=str)))
    return entries


def snapshot_text(entries: list[dict]) -> str:
    return "".join(json.dumps(e, sort_keys=True, ensure_ascii=False) + "\n" for e in entries)


def validation_entries(name: str) -> list[dict]:
    """The validation split of a transfer task: its datasets drawn with TRANSFER_VALIDATION_SEED, laid out as the
    snapshot, without a question of the snapshot (whitespace and case aside)."""
    task = transfer_task(name)

    def key(question: str) -> str:  # not filters.normalize_text: it drops punctuation, so "0 - 2" would equal "0 + 2"
        return " ".join(question.lower().split())

    test = {key(json.loads(line)["question"]) for line in snapshot_path(task).read_text().splitlines()}
    drawn = build_transfer_snapshot(task.name, seed=TRANSFER_VALIDATION_SEED)
    return [e for e in drawn if key(e["question"]) not in test]


def load_transfer_docs(task: str, **metadata):
    """The `custom_dataset` of a transfer task (through eval/tasks/transfer/utils.py) as lm-eval documents {id, task,
    prompt, answer, entry}: the test split is its snapshot (sha256 checked against the YAML's metadata), `--metadata
    '{"split": "validation"}'` the validation split (validation_entries); another split ends the run with a one-line
    error, exit 2. A `difficulty` in the metadata is for the cognitive tasks beside it (the in-training check) and is
    ignored."""
    from datasets import Dataset, DatasetDict

    split = metadata.get("split") or "test"
    if split not in EVAL_SPLITS:
        print(f"error: --metadata split '{split}' is not one of {', '.join(EVAL_SPLITS)}", file=sys.stderr)
        raise SystemExit(2)
    transfer = transfer_task(task)
    path = snapshot_path(transfer)
    check_pinned(path, metadata.get("snapshot_sha256"), task_yaml_path(transfer))
    if split == "test":
        lines = path.read_text().splitlines()
    else:
        lines = [json.dumps(e, sort_keys=True, ensure_ascii=False) for e in validation_entries(transfer.name)]
    docs = []
    for line in lines:
        entry = json.loads(line)
        prompt = f"{entry['question'].rstrip()}\n\n{TRANSFER_REQUEST}"
        docs.append(
            {"id": entry["id"], "task": transfer.eval_task, "prompt": prompt, "answer": entry["answer"], "entry": line}
        )
    return DatasetDict({"test": Dataset.from_list(docs)})


# ------------------------------------------------------------------------------------------------ scoring
def extract_answer(output: str | None) -> str:
    """The final answer of a free-form reply: after a final-answer marker, else the last non-empty line."""
    text, marked = final_answer_text(output)
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if not lines:
        return ""
    answer = lines[0] if marked else lines[-1]
    answer = answer.rsplit("=", 1)[-1]  # "3 + 4 = 7": the value
    answer = answer.strip("*_` \t").strip("\"'").strip()
    return answer[:-1].rstrip() if answer.endswith(".") else answer


def score_transfer(doc: dict, output: str | None) -> dict[str, float]:
    """lm-eval process_results of a transfer document (see the module docstring for the metrics)."""
    answer = extract_answer(output)
    entry = json.loads(doc["entry"])
    try:
        rg_score = float(dataset(transfer_task(doc["task"]).name).score_answer(answer or None, entry))
    except Exception:  # a scorer that chokes on a model's text must not lose the run: score the document 0
        log.exception("reasoning-gym scoring of %s failed; scored 0", doc.get("id"))
        rg_score = 0.0
    return {
        "score": float(rg_score >= 1.0),
        "rg_score": rg_score,
        "answered": float(bool(answer)),
        **step_metrics(output),
    }


def snapshot_path(task: tasks.TransferTask) -> Path:
    return DATA_DIR / "transfer" / f"{task.name}.jsonl"


def task_yaml_path(task: tasks.TransferTask) -> Path:
    return TASKS_DIR / "transfer" / f"{task.eval_task}.yaml"


def write_transfer_snapshot(task: tasks.TransferTask) -> str | None:
    """Build the task's snapshot from reasoning-gym and write it with its generated task YAML; 'old -> new' version
    when the documents (or the YAML) changed, else None."""
    from importlib.metadata import version

    path = snapshot_path(task)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text(path, snapshot_text(build_transfer_snapshot(task.name)))
    body = (
        f"# reasoning-gym {version('reasoning-gym')} {task.name}: {TRANSFER_DOCS} documents, seed {TRANSFER_SEED}, "
        f"config {json.dumps(task.config, sort_keys=True)}\n"
        f"include: _template_yaml\ntask: {task.eval_task}\ndataset_kwargs: {{task: {task.eval_task}}}\n"
    )
    return write_generated_yaml(task_yaml_path(task), body, file_sha256(path))
