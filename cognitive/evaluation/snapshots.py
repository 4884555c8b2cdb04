"""Evaluation documents for the lm-evaluation-harness tasks in eval/tasks.

Each cognitive_* task reads a fixed JSONL snapshot, eval/data/<task>.jsonl, of records in the training schema,
generated from `EVAL_SEEDS` (disjoint from every training seed) by the same generators and checkers as the
training data: DOCS_PER_DIFFICULTY verified records of each of SNAPSHOT_DIFFICULTIES, interleaved (basic,
intermediate, advanced, basic, ...) so that `--limit N` is a mixed prefix, and without two records of the
same normalised problem text. Its plain variant, <task>_plain, asks the same documents as a person would: the
problem's own text, its question, and one of the type's `plain_requests` (cognitive/tasks.py), no system prompt.
The transfer tasks' snapshots come from reasoning-gym (cognitive/evaluation/transfer.py). Everything is rebuilt with

    python recipes/snapshots.py --all          # or --task cognitive_reasoning

which writes every task YAML (each type's task, its plain variant, the transfer tasks) from the registry with the
sha256 of its snapshot (cognitive/evaluation/pinning.py), bumping `metadata.version` when the documents or the YAML
changed. A task refuses to load a snapshot whose sha256 differs, and the tests check the same. The data pipeline
decontaminates training sets against every eval/data/*.jsonl by normalised-text hash
(cognitive.data.filters.load_eval_hashes).

The snapshots are the test split: report on them, never choose settings on them. Settings (a recipe's defaults,
GRPO's completion length, ...) are chosen on the validation split, `--metadata '{"split": "validation"}'`
(`recipes/evaluate.py --split validation`): the same tasks, prompts and scorers on documents built when loaded, in
the snapshots' layout, from VALIDATION_SEEDS (disjoint from the training, RL and eval seeds), none with the normalised
problem text of a document of the task's snapshot.
"""

from __future__ import annotations

import hashlib
import json
import random
import sys
from pathlib import Path

from cognitive import tasks
from cognitive.data.generators import EVAL_SEEDS, VALIDATION_SEEDS, generate_example
from cognitive.data.response import bare_question
from cognitive.data.schema import CognitiveTrainingExample, DifficultyLevel, iter_jsonl, write_jsonl
from cognitive.errors import UserError
from cognitive.evaluation.pinning import (
    DATA_DIR,
    EVAL_SPLITS,
    GENERATED,
    STANDARD_DIR,
    TASKS_DIR,
    check_pinned,
    file_sha256,
    write_generated_yaml,
)
from cognitive.evaluation.transfer import write_transfer_snapshot

# The difficulties a snapshot holds (expert problems are left out: beyond the models this project trains).
SNAPSHOT_DIFFICULTIES = (DifficultyLevel.BASIC, DifficultyLevel.INTERMEDIATE, DifficultyLevel.ADVANCED)
DOCS_PER_DIFFICULTY = 200


def eval_seed(task: str, difficulty: DifficultyLevel, index: int, seeds: range = EVAL_SEEDS) -> int:
    """A seed in `seeds` (EVAL_SEEDS: the snapshots), distinct per (task, difficulty, index)."""

    key = f"{task}/{difficulty.value}/{index}".encode()
    offset = int.from_bytes(hashlib.sha256(key).digest()[:8], "big") % len(seeds)
    return seeds[offset]


def build_snapshot(
    task: str,
    per_difficulty: int = DOCS_PER_DIFFICULTY,
    difficulties=SNAPSHOT_DIFFICULTIES,
    seeds: range = EVAL_SEEDS,
    exclude: frozenset[str] = frozenset(),
) -> list[CognitiveTrainingExample]:
    """Verified records from `seeds`, `per_difficulty` of each difficulty, interleaved; a record whose normalised
    problem text repeats an earlier one or is in `exclude`, or that fails its checker, is skipped (the next index is
    tried)."""
    from cognitive.data.filters import normalized_hash

    task_type = tasks.get(task).name
    seen: set[str] = set(exclude)

    def fresh(difficulty):
        index = 0
        while True:
            example = generate_example(task_type, difficulty, eval_seed(task, difficulty, index, seeds))
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
    return file_sha256(snapshot_path(task))


def to_doc(example: CognitiveTrainingExample) -> dict:
    """One lm-eval document: the prompt as the model is trained to see it, the plain prompt, and what scoring
    needs."""
    spec = example.problem_spec or {}
    return {
        "id": example.id,
        "task": tasks.get(example.task_type).eval_task,
        "difficulty": example.difficulty.value,
        "system_prompt": example.system_prompt(),
        "user_prompt": example.user_prompt(),
        "plain_prompt": plain_prompt(example),
        "reference": example.final_answer,
        "answer": json.dumps(spec.get("answer")),
        "problem_spec": json.dumps(spec),
    }


def plain_prompt(example: CognitiveTrainingExample) -> str:
    """The problem as a person asks it: its text, then one of the type's plain requests (with the record's own
    question, less any training-style prefix such as "Solve step by step."), picked by the record's id."""
    request = random.Random(f"plain|{example.id}").choice(tasks.get(example.task_type).plain_requests)
    return f"{example.context}\n\n{request.format(question=bare_question(example))}"


def validation_records(task: str, difficulties=SNAPSHOT_DIFFICULTIES) -> list[CognitiveTrainingExample]:
    """The validation split of `task`: laid out as its snapshot, from VALIDATION_SEEDS, without a problem of the
    snapshot (normalised text)."""
    from cognitive.data.filters import normalized_hash

    test = frozenset(normalized_hash(ex) for ex in iter_jsonl(snapshot_path(task)))
    return build_snapshot(task, DOCS_PER_DIFFICULTY, difficulties, VALIDATION_SEEDS, exclude=test)


def parse_split(split) -> str:
    """'test' (None too) or 'validation'; another name is a UserError naming it."""
    split = split or "test"
    if split not in EVAL_SPLITS:
        raise UserError(f"split '{split}' is not one of {', '.join(EVAL_SPLITS)}")
    return split


def doc_metadata(difficulty=None, split=None) -> dict | None:
    """lm-eval's --metadata for the cognitive and plain tasks: the difficulties and the split, when not the
    defaults (all; test)."""
    metadata = {"difficulty": difficulty} if difficulty else {}
    if parse_split(split) != "test":
        metadata["split"] = split
    return metadata or None


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


def load_docs(task: str, difficulty=None, split=None):
    """A DatasetDict {'test': docs} for lm-eval's `custom_dataset`: the snapshot (split test) or the validation
    documents; `difficulty` keeps only those docs."""
    from datasets import Dataset, DatasetDict

    keep = parse_difficulties(difficulty)
    if parse_split(split) == "test":
        records = iter_jsonl(snapshot_path(task))
    else:
        records = validation_records(task, [d for d in SNAPSHOT_DIFFICULTIES if keep is None or d.value in keep])
    docs = [to_doc(ex) for ex in records]
    if keep is not None:
        docs = [d for d in docs if d["difficulty"] in keep]
    return DatasetDict({"test": Dataset.from_list(docs)})


def load_task_docs(task: str, **metadata):
    """The `custom_dataset` of eval/tasks/cognitive/<task>.yaml and of its plain variant (through utils.load_docs,
    which the YAML names with `dataset_kwargs: {task: <task>}`). lm-eval passes the YAML's metadata (version,
    snapshot_sha256) and anything given with `--metadata` (plus the model args) as keyword arguments: the snapshot
    must have the recorded sha256, `--metadata '{"difficulty": "basic"}'` keeps one difficulty (comma-separated
    for several) and `{"split": "validation"}` asks the validation documents (an unknown difficulty or split ends the
    run with a one-line error, exit 2)."""
    check_pinned(snapshot_path(task), metadata.get("snapshot_sha256"), task_yaml_path(task))
    try:
        return load_docs(task, metadata.get("difficulty"), metadata.get("split"))
    except UserError as e:  # lm_eval's CLI would print a traceback: one line and exit 2 instead
        print(f"error: --metadata {e}", file=sys.stderr)
        raise SystemExit(2) from None


def task_yaml_path(task: str) -> Path:
    return TASKS_DIR / "cognitive" / f"{task}.yaml"


# The end-of-turn tokens of the supported bases (see _template_yaml); "\n\nContext:" stops a model that starts a new
# problem when run without the chat template.
STOP = ["<|im_end|>", "<|eot_id|>", "<|endoftext|>", "<end_of_turn>", "<|end|>", "\n\nContext:"]


def task_metrics(task: tasks.TaskType) -> list[str]:
    """The metrics a task type's documents report (score_document): `score`, the scorer's, `answered`,
    `step_accuracy` and `score_<difficulty>` of each snapshot difficulty."""
    return ["score", *task.metrics, "answered", "step_accuracy", *(f"score_{d.value}" for d in SNAPSHOT_DIFFICULTIES)]


def write_task_yaml(task: tasks.TaskType) -> str | None:
    """The task type's lm-eval task, eval/tasks/cognitive/<eval_task>.yaml, from its registry entry: its snapshot's
    documents (pinned by sha256), its scorer's metrics, its token limit. 'old -> new' version when it changed."""
    summary = (task.generator_module().__doc__ or task.name).strip().splitlines()[0]
    metric = "    aggregation: mean\n    higher_is_better: true"
    body = "\n".join(
        [
            f"# {summary}",
            f"# Scorer: {task.generator}.score; score = the headline metric ({task.headline}); score_<difficulty> = "
            "score on",
            "# that difficulty's documents only (lm-eval notes that they count fewer documents: expected).",
            "#   lm_eval --model hf --model_args pretrained=<dir>[,peft=<adapter>] --tasks 'cognitive_*' "
            "--include_path eval/tasks --apply_chat_template",
            "include: _template_yaml",
            f"task: {task.eval_task}",
            "custom_dataset: !function utils.load_docs",
            f"dataset_kwargs: {{task: {task.eval_task}}}",
            "process_results: !function utils.process_results",
            "generation_kwargs:  # see _template_yaml",
            f"  until: {json.dumps(STOP)}",
            "  do_sample: false",
            f"  max_gen_toks: {task.max_gen_toks}",
            "metric_list:",
            *(f"  - metric: {name}\n{metric}" for name in task_metrics(task)),
        ]
    )
    return write_generated_yaml(task_yaml_path(task.eval_task), body, snapshot_sha256(task.eval_task))


def write_plain_yaml(task: tasks.TaskType) -> str | None:
    """The plain variant's YAML: the task's YAML with the plain prompt, no system prompt, its own tag."""
    requests_sha = hashlib.sha256(json.dumps(task.plain_requests).encode()).hexdigest()[:16]
    body = (
        f"# {task.plain_task}: the documents of {task.eval_task} asked as a person would (no system prompt, a plain\n"
        f"# request, any reasonable answer form); requests: {task.name}.plain_requests (sha256 {requests_sha}...)\n"
        f"include: {task.eval_task}.yaml\ntask: {task.plain_task}\ntag: cognitive_plain\n"
        'description: ""\ndoc_to_text: plain_prompt\n'
    )
    return write_generated_yaml(task_yaml_path(task.plain_task), body, snapshot_sha256(task.eval_task))


def write_standard_group() -> None:
    """eval/standard/cognitive_standard.yaml: the registry's stock lm-eval tasks (their datasets come from the Hub).
    It is kept out of eval/tasks so that `--tasks 'cognitive_*' --include_path eval/tasks` stays offline."""
    names = [name for t in tasks.TASK_TYPES for name in t.standard]
    lines = [
        GENERATED,
        "# Stock lm-eval tasks of the same skills as the task types (cognitive/tasks.py: `standard`);",
        "# their datasets come from the Hugging Face Hub.",
        "#   lm_eval --model hf --model_args pretrained=<dir> --tasks cognitive_standard --include_path eval/standard",
        "group: cognitive_standard",
        "task:",
        *(f"  - {name}" for name in names),
        "metadata:",
        "  version: 1.0",
    ]
    path = STANDARD_DIR / "cognitive_standard.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")


def rebuild(
    names: list[str],
    per_difficulty: int = DOCS_PER_DIFFICULTY,
    difficulties=SNAPSHOT_DIFFICULTIES,
    with_transfer: bool = False,
    yaml_only: bool = False,
) -> None:
    """Rebuild the snapshots of the eval tasks `names` (yaml_only: keep them) and write their task YAMLs and plain
    variants from the registry, printing what changed; with_transfer: also the standard group and the transfer
    tasks (recipes/snapshots.py)."""
    for name in names:
        task = tasks.get(name)
        if not yaml_only:
            records = build_snapshot(name, per_difficulty, [DifficultyLevel(d) for d in difficulties])
            n = write_jsonl(records, snapshot_path(name))
            print(f"wrote {n} records to {snapshot_path(name)} (sha256 {snapshot_sha256(name)})")
        bumped = write_task_yaml(task)
        print(f"  {task.eval_task}: {'version ' + bumped if bumped else 'unchanged'}")
        plain = write_plain_yaml(task)
        print(f"  {task.plain_task}: {'version ' + plain if plain else 'unchanged'}")
    if with_transfer:
        write_standard_group()
        for transfer_task in tasks.transfer_tasks():
            bumped = write_transfer_snapshot(transfer_task)
            print(f"{transfer_task.eval_task}: {'version ' + bumped if bumped else 'unchanged'}")
