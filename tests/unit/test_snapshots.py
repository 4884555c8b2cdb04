"""The eval snapshots: versioned by sha256, sized and interleaved, derived only from EVAL_SEEDS, and
decontaminated against training data by normalised-text hash; the validation split: the same layout from
VALIDATION_SEEDS, sharing no problem with the snapshots."""

from __future__ import annotations

from collections import Counter

import pytest
from lm_eval.tasks._yaml_loader import load_yaml

from cognitive.data.filters import load_eval_hashes, normalized_hash
from cognitive.data.generators import EVAL_SEEDS, RL_SEEDS, TRAIN_SEEDS, VALIDATION_SEEDS, generate_example
from cognitive.data.schema import DifficultyLevel, iter_jsonl
from cognitive.evaluation.pinning import DATA_DIR, TASKS_DIR, SnapshotChanged
from cognitive.evaluation.snapshots import (
    DOCS_PER_DIFFICULTY,
    SNAPSHOT_DIFFICULTIES,
    build_snapshot,
    doc_metadata,
    eval_seed,
    load_task_docs,
    snapshot_path,
    snapshot_sha256,
)
from cognitive.tasks import TASK_TYPES

TASKS = {t.eval_task: t.name for t in TASK_TYPES}  # eval task -> task type

REBUILD = "python recipes/snapshots.py --all (it records each snapshot's sha256 and bumps metadata.version)"


def task_yaml(task: str) -> dict:
    return load_yaml(TASKS_DIR / "cognitive" / f"{task}.yaml", resolve_func=False)


@pytest.fixture(scope="module")
def snapshots():
    return {task: list(iter_jsonl(snapshot_path(task))) for task in TASKS}


@pytest.mark.parametrize("task", list(TASKS))
def test_yaml_records_the_snapshot_sha256_and_a_version(task):
    meta = task_yaml(task)["metadata"]
    assert isinstance(meta["version"], (int, float))
    assert meta["snapshot_sha256"] == snapshot_sha256(task), (
        f"{snapshot_path(task)} changed: bump metadata.version and set snapshot_sha256 in {task}.yaml"
    )


def test_a_changed_snapshot_is_refused_at_load(tmp_path, monkeypatch):
    import cognitive.evaluation.snapshots as evalsets

    recorded = task_yaml("cognitive_logic")["metadata"]
    assert (
        len(load_task_docs("cognitive_logic", **recorded)["test"]) == len(SNAPSHOT_DIFFICULTIES) * DOCS_PER_DIFFICULTY
    )
    changed = tmp_path / "cognitive_logic.jsonl"
    lines = snapshot_path("cognitive_logic").read_text().splitlines(keepends=True)
    changed.write_text("".join(lines[:-1]))  # one document fewer
    monkeypatch.setattr(evalsets, "DATA_DIR", tmp_path)
    with pytest.raises(SnapshotChanged, match=r"bumps metadata\.version"):
        load_task_docs("cognitive_logic", **recorded)


def test_difficulty_filter_from_metadata(capsys):
    meta = task_yaml("cognitive_memory")["metadata"]
    docs = load_task_docs("cognitive_memory", **meta, difficulty="advanced", pretrained="ignored")["test"]
    assert len(docs) == DOCS_PER_DIFFICULTY and set(docs["difficulty"]) == {"advanced"}
    assert (
        len(load_task_docs("cognitive_memory", **meta, difficulty="basic,intermediate")["test"])
        == 2 * DOCS_PER_DIFFICULTY
    )
    with pytest.raises(SystemExit) as exit_info:
        load_task_docs("cognitive_memory", **meta, difficulty="hard")
    assert exit_info.value.code == 2
    assert capsys.readouterr().err == (
        "error: --metadata difficulty 'hard' is not one of basic, intermediate, advanced, expert\n"
    )


def test_the_four_seed_ranges_are_disjoint():
    ranges = [TRAIN_SEEDS, EVAL_SEEDS, RL_SEEDS, VALIDATION_SEEDS]
    for i, a in enumerate(ranges):
        for b in ranges[i + 1 :]:
            assert a.stop <= b.start or b.stop <= a.start, (a, b)


@pytest.mark.parametrize("task", list(TASKS))
def test_validation_split_is_fresh_problems_in_the_snapshot_layout(task, snapshots):
    """`--metadata '{"split": "validation"}'`: verified documents of the task from VALIDATION_SEEDS, interleaved like
    the snapshot, none with a snapshot document's problem text or id, the same on every load."""
    meta = task_yaml(task)["metadata"]
    docs = load_task_docs(task, **meta, split="validation")["test"]
    assert len(docs) == len(SNAPSHOT_DIFFICULTIES) * DOCS_PER_DIFFICULTY
    assert docs["difficulty"][:6] == [d.value for d in SNAPSHOT_DIFFICULTIES] * 2
    assert all(int(i.rsplit("-", 1)[1]) in VALIDATION_SEEDS for i in docs["id"])
    assert not set(docs["id"]) & {r.id for r in snapshots[task]}
    records = [
        generate_example(TASKS[task], d, int(i.rsplit("-", 1)[1])) for i, d in zip(docs["id"][:30], docs["difficulty"])
    ]
    assert all(r.verified for r in records)
    test_hashes = {normalized_hash(r) for r in snapshots[task]}
    assert not {normalized_hash(r) for r in records} & test_hashes
    assert docs["id"] == load_task_docs(task, **meta, split="validation")["test"]["id"]
    assert docs["id"] != load_task_docs(task, **meta)["test"]["id"]  # the default split is the snapshot


def test_the_builder_skips_excluded_problems(snapshots):
    """What keeps a validation document off the snapshot's problems (no draw collided when measured; this forces
    it): built from the eval seeds themselves, with the snapshot's first documents excluded, it skips exactly them."""
    first = snapshots["cognitive_planning"][:12]
    again = build_snapshot("cognitive_planning", per_difficulty=4, exclude=frozenset(map(normalized_hash, first)))
    assert len(again) == 12 and not {r.id for r in again} & {r.id for r in first}
    assert [r.id for r in again] == [r.id for r in snapshots["cognitive_planning"][12:24]]


def test_validation_split_with_a_difficulty_and_a_bad_split(capsys):
    meta = task_yaml("cognitive_state")["metadata"]
    docs = load_task_docs("cognitive_state", **meta, split="validation", difficulty="basic")["test"]
    assert len(docs) == DOCS_PER_DIFFICULTY and set(docs["difficulty"]) == {"basic"}
    everything = load_task_docs("cognitive_state", **meta, split="validation")["test"]
    assert docs["id"] == [i for i, d in zip(everything["id"], everything["difficulty"]) if d == "basic"]
    assert doc_metadata("basic", "validation") == {"difficulty": "basic", "split": "validation"}
    assert doc_metadata(None, "test") is None and doc_metadata("basic", None) == {"difficulty": "basic"}
    with pytest.raises(SystemExit) as exit_info:
        load_task_docs("cognitive_state", **meta, split="dev")
    assert exit_info.value.code == 2
    assert capsys.readouterr().err == "error: --metadata split 'dev' is not one of test, validation\n"


@pytest.mark.parametrize("task", list(TASKS))
def test_sizes_and_interleaving(task, snapshots):
    records = snapshots[task]
    assert Counter(r.difficulty for r in records) == dict.fromkeys(SNAPSHOT_DIFFICULTIES, DOCS_PER_DIFFICULTY)
    assert [r.difficulty for r in records[:6]] == list(SNAPSHOT_DIFFICULTIES) * 2  # --limit N is a mixed prefix
    assert all(r.verified and r.task_type == TASKS[task] for r in records)


def test_seeds_come_from_eval_seeds_only(snapshots):
    """Every document's seed (the last part of its id) is in EVAL_SEEDS, never in TRAIN_SEEDS, and is one
    that eval_seed() hands out for that task and difficulty."""
    assert EVAL_SEEDS.start >= TRAIN_SEEDS.stop or EVAL_SEEDS.stop <= TRAIN_SEEDS.start  # the ranges are disjoint
    for task, records in snapshots.items():
        handed_out = {d: {eval_seed(task, d, i) for i in range(2 * DOCS_PER_DIFFICULTY)} for d in SNAPSHOT_DIFFICULTIES}
        for r in records:
            seed = int(r.id.rsplit("-", 1)[1])
            assert seed in EVAL_SEEDS and seed not in TRAIN_SEEDS, r.id
            assert seed in handed_out[r.difficulty], r.id


def test_documents_regenerate_from_their_seeds(snapshots):
    """Each document is exactly what the generator (and its checker) make from its eval seed: the snapshot
    is the generators' output, not hand-edited. If the generators change, rebuild the snapshots."""
    for task, records in snapshots.items():
        for r in records[::10]:
            seed, domain = int(r.id.rsplit("-", 1)[1]), r.domain
            again = generate_example(TASKS[task], r.difficulty, seed, domain=domain)
            assert again == r, f"{r.id} no longer regenerates identically: {REBUILD}"


def test_the_snapshot_builder_is_deterministic():
    records = build_snapshot("cognitive_reasoning", per_difficulty=4)
    assert records == build_snapshot("cognitive_reasoning", per_difficulty=4)
    assert [r.id for r in records] == [r.id for r in list(iter_jsonl(snapshot_path("cognitive_reasoning")))[:12]], (
        REBUILD
    )


def test_no_duplicate_problems_within_or_across_snapshots(snapshots):
    hashes = [normalized_hash(r) for records in snapshots.values() for r in records]
    assert len(hashes) == len(set(hashes)) == len(TASKS) * len(SNAPSHOT_DIFFICULTIES) * DOCS_PER_DIFFICULTY


def test_decontamination_against_a_training_set_from_train_seeds(snapshots):
    """A training set drawn from TRAIN_SEEDS (every task, difficulty and domain) shares no normalised-text hash
    with the snapshots; the data pipeline's decontamination reads exactly these hashes."""
    eval_hashes = load_eval_hashes(DATA_DIR)
    assert eval_hashes == {normalized_hash(r) for records in snapshots.values() for r in records}
    training = [
        generate_example(kind, d, seed) for kind in TASKS.values() for d in DifficultyLevel for seed in range(150)
    ]
    assert all(int(ex.id.rsplit("-", 1)[1]) in TRAIN_SEEDS for ex in training)
    clashes = [ex.id for ex in training if normalized_hash(ex) in eval_hashes]
    assert not clashes, f"training examples that equal eval documents: {clashes[:5]}"


@pytest.mark.parametrize("task", list(TASKS))
def test_max_gen_toks_fits_the_longest_reference_response(task, snapshots, embedded_tokenizer):
    """A model answering in the trained format is never cut off: max_gen_toks >= 1.2 x the longest reference."""
    config = task_yaml(task)
    longest = max(len(ids) for ids in embedded_tokenizer([r.response() for r in snapshots[task]])["input_ids"])
    assert config["generation_kwargs"]["max_gen_toks"] >= 1.2 * longest, longest
    assert "<|im_end|>" in config["generation_kwargs"]["until"]


def test_fast_check_fits_the_basic_reference_responses(snapshots, embedded_tokenizer):
    """The in-training check's one max_gen_toks leaves 1.2 x room for every basic reference of its tasks."""
    from cognitive.evaluation.harness import FAST_CHECK

    assert FAST_CHECK["metadata"] == {"difficulty": "basic"}
    for task in [t for t in FAST_CHECK["tasks"] if t in snapshots]:  # the own tasks (transfer answers are free-form)
        basic = [r.response() for r in snapshots[task] if r.difficulty == DifficultyLevel.BASIC]
        longest = max(len(ids) for ids in embedded_tokenizer(basic)["input_ids"])
        assert FAST_CHECK["gen_kwargs"]["max_gen_toks"] >= 1.2 * longest, (task, longest)


def test_rebuild_records_the_sha_and_bumps_the_version_only_on_change(tmp_path, monkeypatch):
    """The task YAML written from the registry keeps its version while the snapshot and the entry are unchanged, and
    takes the next major version with the new sha256 when the documents change."""
    import cognitive.evaluation.snapshots as evalsets

    task = TASK_TYPES[2]
    (tmp_path / "cognitive").mkdir()
    copy = tmp_path / "cognitive" / f"{task.eval_task}.yaml"
    copy.write_text(evalsets.task_yaml_path(task.eval_task).read_text())
    (copy.parent / "_template_yaml").write_text(
        (evalsets.task_yaml_path(task.eval_task).parent / "_template_yaml").read_text()
    )
    monkeypatch.setattr(evalsets, "TASKS_DIR", tmp_path)
    assert evalsets.write_task_yaml(task) is None  # unchanged documents: nothing to do
    version = task_yaml(task.eval_task)["metadata"]["version"]
    copy.write_text(copy.read_text().replace(snapshot_sha256(task.eval_task), "0" * 64))
    assert evalsets.write_task_yaml(task) == f"{version} -> {int(version) + 1}.0"
    meta = load_yaml(copy, resolve_func=False)["metadata"]
    assert meta == {"version": int(version) + 1, "snapshot_sha256": snapshot_sha256(task.eval_task)}
