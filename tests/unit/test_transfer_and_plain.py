"""The transfer tasks (reasoning-gym snapshots, their scorers) and the plain variants of the own tasks: pinned
documents, right answers scored 1 and wrong or missing ones 0 through the harness's process_results, and plain
wording that the training data never uses."""

from __future__ import annotations

import importlib.util
import json
import re

import pytest
from lm_eval.tasks._yaml_loader import load_yaml

from cognitive import tasks
from cognitive.data.generators import generate_example
from cognitive.data.response import DEFAULT_SYSTEM_PROMPT
from cognitive.evaluation import pinning, snapshots, transfer
from cognitive.evaluation.pinning import TASKS_DIR, SnapshotChanged
from tests.conftest import ROOT

TRANSFER = tasks.transfer_tasks()


def utils(folder: str):
    """eval/tasks/<folder>/utils.py, as lm-eval imports it."""
    spec = importlib.util.spec_from_file_location(f"utils_{folder}", TASKS_DIR / folder / "utils.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def transfer_docs(task):
    meta = load_yaml(transfer.task_yaml_path(task), resolve_func=False)["metadata"]
    return list(utils("transfer").load_docs(task=task.eval_task, **meta)["test"])


def test_the_registry_covers_every_type_with_transfer_tasks():
    assert len(TRANSFER) >= 8
    assert all(t.transfer for t in tasks.TASK_TYPES)  # every type has at least one
    for task in TRANSFER:
        assert tasks.type_of(task.eval_task).name in [t.name for t in tasks.TASK_TYPES]


@pytest.mark.parametrize("task", TRANSFER, ids=lambda t: t.name)
def test_transfer_snapshot_loads_and_refuses_a_changed_one(task, tmp_path, monkeypatch):
    docs = transfer_docs(task)
    assert len(docs) == transfer.TRANSFER_DOCS and len({d["id"] for d in docs}) == len(docs)
    assert all(d["prompt"].endswith(transfer.TRANSFER_REQUEST) for d in docs)
    meta = load_yaml(transfer.task_yaml_path(task), resolve_func=False)["metadata"]
    changed = tmp_path / "transfer" / f"{task.name}.jsonl"
    changed.parent.mkdir()
    changed.write_text("".join(transfer.snapshot_path(task).read_text().splitlines(keepends=True)[1:]))
    monkeypatch.setattr(transfer, "DATA_DIR", tmp_path)
    with pytest.raises(SnapshotChanged, match="the documents changed"):
        utils("transfer").load_docs(task=task.eval_task, **meta)


@pytest.mark.parametrize("task", TRANSFER, ids=lambda t: t.name)
def test_transfer_validation_split_is_fresh_reasoning_gym_problems(task):
    """--metadata split validation: the task's reasoning-gym problems from TRANSFER_VALIDATION_SEED, none of them a
    test question, the same on every load, asked and scored like the test split (the right answer scores 1)."""
    meta = load_yaml(transfer.task_yaml_path(task), resolve_func=False)["metadata"]
    docs = list(utils("transfer").load_docs(task=task.eval_task, **meta, split="validation")["test"])
    test = transfer_docs(task)
    assert len(docs) >= 0.9 * transfer.TRANSFER_DOCS and len({d["id"] for d in docs}) == len(docs)
    assert not {d["prompt"] for d in docs} & {d["prompt"] for d in test}
    assert not {d["id"] for d in docs} & {d["id"] for d in test}
    assert all(d["prompt"].endswith(transfer.TRANSFER_REQUEST) for d in docs)
    again = utils("transfer").load_docs(task=task.eval_task, **meta, split="validation")["test"]
    assert [d["id"] for d in docs] == again["id"]
    process = utils("transfer").process_results
    for doc in docs[:5]:
        assert process(doc, [f"Working.\n{doc['answer']}"])["score"] == 1.0, (task.name, doc["id"])


def test_transfer_tasks_refuse_another_split(capsys):
    """A split that is neither test nor validation: one line and exit 2, not the test documents in its place."""
    task = TRANSFER[0]
    meta = load_yaml(transfer.task_yaml_path(task), resolve_func=False)["metadata"]
    assert len(utils("transfer").load_docs(task=task.eval_task, **meta, split="test")["test"]) == transfer.TRANSFER_DOCS
    with pytest.raises(SystemExit) as exit_info:
        utils("transfer").load_docs(task=task.eval_task, **meta, split="dev")
    assert exit_info.value.code == 2
    assert capsys.readouterr().err == "error: --metadata split 'dev' is not one of test, validation\n"


@pytest.mark.parametrize("task", TRANSFER, ids=lambda t: t.name)
def test_transfer_snapshot_is_what_reasoning_gym_generates(task):
    """The pinned documents are exactly reasoning-gym's (pinned version, seed, config from the registry)."""
    assert (
        transfer.snapshot_text(transfer.build_transfer_snapshot(task.name)) == transfer.snapshot_path(task).read_text()
    )


@pytest.mark.parametrize("task", TRANSFER, ids=lambda t: t.name)
def test_right_answers_score_one_and_wrong_or_missing_ones_zero(task):
    process = utils("transfer").process_results
    docs = transfer_docs(task)[:5]
    for doc in docs:
        gold = doc["answer"]
        for right in (
            gold,
            f"Let me think about it.\n\n{gold}",
            f"Some steps.\nFinal answer: {gold}",
            f"**{gold}**",
            f"The answer is {gold}",
        ):
            assert process(doc, [right])["score"] == 1.0, (task.name, right)
        other = next(d["answer"] for d in transfer_docs(task) if d["answer"] != gold)
        assert process(doc, [f"I think it is:\n{other}"])["score"] == 0.0, (task.name, other)
        for missing in ("", "   \n", None):
            metrics = process(doc, [missing])
            assert metrics["score"] == 0.0 and metrics["answered"] == 0.0


def test_the_answer_is_read_from_a_free_form_reply():
    assert transfer.extract_answer("We add them.\n4 + 3 = 7") == "7"
    assert transfer.extract_answer("The final answer to the given problem is 12.") == "12"
    assert transfer.extract_answer("**Final Answer:** son.\nThat is all.") == "son"
    assert transfer.extract_answer("Reasoning...\n\n`left up`") == "left up"


# ---------------------------------------------------------------------------------------------- plain
PLAIN = [t.plain_task for t in tasks.TASK_TYPES]


def plain_docs(task_type, n=6):
    meta = load_yaml(snapshots.task_yaml_path(task_type.plain_task), resolve_func=False)["metadata"]
    return list(utils("cognitive").load_docs(task=task_type.eval_task, **meta)["test"])[:n]


@pytest.mark.parametrize("task_type", tasks.TASK_TYPES, ids=lambda t: t.name)
def test_plain_prompts_ask_the_same_problems_without_the_training_scaffold(task_type):
    config = load_yaml(snapshots.task_yaml_path(task_type.plain_task), resolve_func=False)
    assert config["doc_to_text"] == "plain_prompt" and config["description"] == ""
    assert config["tag"] == "cognitive_plain"
    assert f"include: {task_type.eval_task}.yaml" in snapshots.task_yaml_path(task_type.plain_task).read_text()
    for doc in plain_docs(task_type):
        prompt = doc["plain_prompt"]
        assert "Context:" not in prompt and "Instruction:" not in prompt and "Task Type" not in prompt
        assert "Difficulty" not in prompt and "step by step" not in prompt.lower()
        assert json.loads(doc["problem_spec"])  # the same document as the own task


def _words(text: str) -> list[str]:
    return re.findall(r"[a-z']+", text.lower())


def _ngrams(text: str, n: int = 4) -> set[tuple[str, ...]]:
    words = _words(text)
    return {tuple(words[i : i + n]) for i in range(len(words) - n + 1)}


def test_plain_requests_share_no_phrasing_with_the_training_prompts():
    """No four-word run of a plain request (the record's question left out) appears in what training prompts say:
    the system prompt, the Context/Instruction scaffold, and the instructions of many generated records (every
    generator's instruction variants), in every prompt style the renderer knows."""
    from cognitive.data import response

    training = [DEFAULT_SYSTEM_PROMPT, response.user_prompt("{context}", "{instruction}")]
    for task_type in tasks.TASK_TYPES:
        for seed in range(60):
            for level in ("basic", "intermediate", "advanced"):
                example = generate_example(task_type.name, level, seed)
                training.append(example.instruction)
                training.append(example.system_prompt())
                training += [m["content"] for m in example.to_training_format()["messages"][:2]]
    seen = set().union(*(_ngrams(t) for t in training))
    for task_type in tasks.TASK_TYPES:
        for request in task_type.plain_requests:
            shared = _ngrams(request.replace("{question}", " | ")) & seen
            assert not shared, (task_type.name, request, shared)


@pytest.mark.parametrize("task_type", tasks.TASK_TYPES, ids=lambda t: t.name)
def test_plain_answers_score_in_any_reasonable_form(task_type):
    """The reference answer without the trained marker, after some prose, scores 1; another problem's answer 0."""
    process = utils("cognitive").process_results
    docs = plain_docs(task_type, n=12)
    for doc, other in zip(docs, docs[1:] + docs[:1]):
        assert process(doc, [f"Let me work through it.\n\n{doc['reference']}"])["score"] == 1.0, doc["id"]
        if json.loads(other["answer"]) != json.loads(doc["answer"]) and doc["reference"] not in other["reference"]:
            metrics = process(doc, [f"Let me work through it.\n\n{other['reference']}"])
            assert metrics["score"] == 0.0 or task_type.name == "problem_solving", doc["id"]


def test_generated_yamls_are_up_to_date(tmp_path, monkeypatch):
    """Every task YAML (each type's task and plain variant, the transfer tasks) and the standard group are what
    `python recipes/snapshots.py --all` writes from the registry: regenerated into a copy of eval/, no version moves
    and nothing differs."""
    import shutil

    copy = tmp_path / "eval"
    shutil.copytree(ROOT / "eval", copy)
    for module in (pinning, snapshots, transfer):
        monkeypatch.setattr(module, "TASKS_DIR", copy / "tasks", raising=False)
        monkeypatch.setattr(module, "DATA_DIR", copy / "data", raising=False)
        monkeypatch.setattr(module, "STANDARD_DIR", copy / "standard", raising=False)
    for task_type in tasks.TASK_TYPES:
        assert snapshots.write_task_yaml(task_type) is None
        assert snapshots.write_plain_yaml(task_type) is None
    for task in TRANSFER:
        assert transfer.write_transfer_snapshot(task) is None
    snapshots.write_standard_group()
    for path in sorted([*(copy / "tasks").rglob("*.yaml"), *(copy / "standard").rglob("*.yaml")]):
        assert path.read_text() == (ROOT / "eval" / path.relative_to(copy)).read_text(), path
