"""recipes/generate_data.py end to end: output layout, determinism, mix, decontamination, bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from cognitive.atomic import written_as
from cognitive.data import filters as quality
from cognitive.data.build import build_dataset
from cognitive.data.generators import generate_example
from cognitive.data.schema import DatasetConfiguration, iter_jsonl, write_jsonl
from tests.conftest import run_python

ROOT = Path(__file__).resolve().parents[2]
RECIPE = "recipes/generate_data.py"


def _write_config(tmp_path: Path, **changes) -> Path:
    raw = yaml.safe_load((ROOT / "data/configs/demo.yaml").read_text())
    raw.update({"target_size": 120, "tokenizer": "whitespace"})  # decontaminated against the project's eval/data
    raw.update(changes)
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


@pytest.mark.slow
def test_recipe_writes_the_documented_layout_and_refuses_to_overwrite(tmp_path):
    import datasets

    cfg, out = _write_config(tmp_path), tmp_path / "out"
    r = run_python([RECIPE, "--config", str(cfg), "--out", str(out), "--num_proc", "2"])
    assert r.returncode == 0, r.stderr[-2000:]
    summary = json.loads(r.stdout.strip().splitlines()[-1])
    assert summary["kept"] == 120
    for name in (
        "train.jsonl",
        "validation.jsonl",
        "test.jsonl",
        "report.json",
        "stats.json",
        "token_lengths.png",
        "steps.png",
    ):
        assert (out / name).exists(), name
    rows = {s: list(iter_jsonl(out / f"{s}.jsonl")) for s in ("train", "validation", "test")}
    assert sum(map(len, rows.values())) == 120 and all(ex.verified for rs in rows.values() for ex in rs)
    dd = datasets.load_from_disk(str(out / "dataset"))
    assert {s: len(dd[s]) for s in dd} == {s: len(v) for s, v in rows.items()}
    assert dd["train"][0]["messages"][2]["role"] == "assistant" and json.loads(dd["train"][0]["problem_spec"])["answer"]
    report = json.loads((out / "report.json").read_text())
    assert set(report["stages"]) == {"schema", "verification", "length", "decontamination", "exact_dedup", "near_dedup"}
    assert report["stages"]["near_dedup"]["kept"] == 120 and "approximate" in report["tokenizer"]
    assert not (tmp_path / "out.partial").exists()

    again = run_python([RECIPE, "--config", str(cfg), "--out", str(out)])
    assert (
        again.returncode == 2
        and again.stderr.strip().splitlines()[-1].startswith("error:")
        and "--overwrite" in again.stderr
    )
    (out / "stale.txt").write_text("from the previous build")
    assert run_python([RECIPE, "--config", str(cfg), "--out", str(out), "--overwrite"]).returncode == 0
    assert not (out / "stale.txt").exists() and written_as(out) == "dataset"  # a dataset of ours: replaced whole


def test_same_config_gives_byte_identical_output_whatever_num_proc(tmp_path):
    config = DatasetConfiguration.from_yaml(_write_config(tmp_path))
    config = DatasetConfiguration.model_validate(
        {**config.model_dump(), "task_distribution": {"chain_of_thought": 0.5, "state_transition": 0.5}}
    )
    build_dataset(config, tmp_path / "a", num_proc=1, progress=False)
    build_dataset(config, tmp_path / "b", num_proc=2, progress=False)
    for name in ("train.jsonl", "validation.jsonl", "test.jsonl"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()


def test_mix_of_10k_examples_is_within_two_points_of_the_config(tmp_path):
    config = DatasetConfiguration.from_yaml(ROOT / "data/configs/default.yaml")
    config = config.model_copy(update={"target_size": 10_000, "tokenizer": "whitespace"})
    report = build_dataset(config, tmp_path / "mix", num_proc=2, progress=False)
    assert report["kept"] >= 9_900
    stats = json.loads((tmp_path / "mix" / "stats.json").read_text())
    for key, shares in (
        ("task_type", config.task_distribution),
        ("difficulty", config.difficulty_distribution),
        ("domain", config.domain_distribution),
    ):
        for name, share in shares.items():
            got = stats[key].get(getattr(name, "value", name), 0) / stats["total"]
            assert abs(got - share) <= 0.02, (key, name, got, share)
    assert all(v["sentence_variants"] >= 20 for v in stats["distinct_templates"].values())


def test_eval_records_are_removed_from_training_data(tmp_path):
    cfg = _write_config(tmp_path, target_size=40)
    config = DatasetConfiguration.from_yaml(cfg)
    first = build_dataset(config, tmp_path / "first", progress=False)
    assert first["stages"]["decontamination"]["dropped"] == 0
    leaked = list(iter_jsonl(tmp_path / "first" / "train.jsonl"))[:3]
    evals = tmp_path / "evals"
    write_jsonl([ex.model_copy(update={"id": f"eval-{i}"}) for i, ex in enumerate(leaked)], evals / "cognitive_x.jsonl")
    second = build_dataset(config, tmp_path / "second", eval_dir=str(evals), progress=False)
    assert second["stages"]["decontamination"]["dropped"] == 3 and second["kept"] == 40
    kept = {
        quality.normalized_hash(ex)
        for s in ("train", "validation", "test")
        for ex in iter_jsonl(tmp_path / "second" / f"{s}.jsonl")
    }
    assert not kept & quality.load_eval_hashes(evals)


def test_curated_input_is_filtered_dedup_and_flagged(tmp_path):
    good = generate_example("memory_recall", "advanced", 3)
    words = good.context.split()
    words[5] = "quietly"
    near = good.model_copy(update={"id": "near-copy", "context": " ".join(words)})
    guide = list(iter_jsonl(ROOT / "data/examples/memory_logic_001.json"))
    wrong = good.model_copy(
        update={"id": "wrong", "final_answer": "Nobody knows.", "context": good.context + " The end."}
    )
    curated = tmp_path / "curated.jsonl"
    write_jsonl([good, near, *guide, wrong], curated)
    cfg = _write_config(tmp_path, target_size=20, synthetic_ratio=0.5, curated_files=[str(curated)])
    report = build_dataset(DatasetConfiguration.from_yaml(cfg), tmp_path / "out", progress=False)
    stages = report["stages"]
    assert report["curated_read"] == 4 and report["curated_kept"] == 1 and report["kept"] == 20
    assert stages["near_dedup"]["dropped"] >= 1 and stages["verification"]["dropped"] >= 2
    reasons = " ".join(stages["verification"]["reasons"])
    assert "memory_recall: unverifiable" in reasons and "final answer" in reasons


@pytest.mark.parametrize(
    "changes, needle",
    [
        ({"task_distribution": {"chain_of_thought": 0.7}}, "task_distribution"),
        ({"difficulty_distribution": {"legendary": 1.0}}, "difficulty_distribution.legendary"),
        ({"domain_distribution": {"astrology": 1.0}}, "domain_distribution.astrology': unknown domain"),
        ({"seed": 2**40 - 5}, "outside the training seeds"),
    ],
)
def test_bad_configs_exit_non_zero_with_one_line(tmp_path, changes, needle):
    cfg = _write_config(tmp_path, **changes)
    r = run_python([RECIPE, "--config", str(cfg), "--out", str(tmp_path / "o")])
    assert r.returncode == 2 and not (tmp_path / "o").exists()
    last = r.stderr.strip().splitlines()[-1]
    assert last.startswith("error:") and needle in last and str(cfg) in last, r.stderr[-1500:]


def test_malformed_curated_line_names_file_and_line(tmp_path):
    curated = tmp_path / "bad.jsonl"
    write_jsonl([generate_example("planning", "basic", 1)], curated)
    curated.write_text(curated.read_text() + '{"id": "x", "task_type": "planning"\n')
    cfg = _write_config(tmp_path)
    r = run_python([RECIPE, "--config", str(cfg), "--out", str(tmp_path / "o"), "--curated", str(curated)])
    assert r.returncode == 2
    assert f"{curated}:2: not valid JSON" in r.stderr.strip().splitlines()[-1]


def test_large_splits_are_sharded(tmp_path):
    import datasets

    cfg = _write_config(tmp_path, shard_size=50)
    report = build_dataset(DatasetConfiguration.from_yaml(cfg), tmp_path / "out", num_proc=2, progress=False)
    n_train = report["splits"]["train"]
    shards = sorted(p.name for p in (tmp_path / "out").glob("train*.jsonl"))
    k = -(-n_train // 50)
    assert shards == [f"train-{i:05d}-of-{k:05d}.jsonl" for i in range(k)] and k >= 2
    assert sum(len(list(iter_jsonl(tmp_path / "out" / s))) for s in shards) == n_train
    assert len(datasets.load_from_disk(str(tmp_path / "out" / "dataset"))["train"]) == n_train


def test_decontamination_finds_the_eval_snapshots_from_any_directory(tmp_path):
    """Run from another working directory, the default eval_dir is still the project's eval/data (it used to resolve
    against the working directory and skip decontamination silently); --no_decontaminate skips it on purpose and
    says so."""
    cfg = _write_config(tmp_path, target_size=12)
    r = run_python(
        [str(ROOT / RECIPE), "--config", str(cfg), "--out", str(tmp_path / "o"), "--no_progress"], cwd=tmp_path
    )
    assert r.returncode == 0, r.stderr[-2000:]
    report = json.loads((tmp_path / "o" / "report.json").read_text())
    assert report["eval_records_hashed"] == 3000 and report["eval_dir"] == str(ROOT / "eval" / "data")
    skipped = build_dataset(DatasetConfiguration.from_yaml(cfg), tmp_path / "o2", decontaminate=False, progress=False)
    assert skipped["eval_dir"] == "skipped (--no_decontaminate)" and skipped["eval_records_hashed"] == 0


def test_a_max_tokens_that_excludes_a_task_type_is_a_one_line_error(tmp_path):
    """Planning records are all over 400 words: the build names the task type and the limit, and writes nothing."""
    cfg = _write_config(
        tmp_path, target_size=40, max_tokens=400, task_distribution={"chain_of_thought": 0.5, "planning": 0.5}
    )
    out = tmp_path / "out"
    result = run_python([RECIPE, "--config", str(cfg), "--out", str(out)])
    assert result.returncode == 2 and not out.exists() and not (tmp_path / "out.partial").exists()
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("error: task type planning: every example was dropped (over 400 tokens x")
    assert last.endswith("raise max_tokens (now 400) or remove it from task_distribution")


def test_a_max_tokens_that_excludes_a_difficulty_names_it(tmp_path):
    from cognitive.errors import UserError

    cfg = _write_config(tmp_path, target_size=40, max_tokens=210, difficulty_distribution={"basic": 0.5, "expert": 0.5})
    with pytest.raises(UserError, match=r"^chain_of_thought/expert: every example was dropped \(over 210 tokens"):
        build_dataset(DatasetConfiguration.from_yaml(cfg), tmp_path / "out", progress=False)
    assert not (tmp_path / "out").exists()


def test_a_shortfall_after_the_refills_is_an_error_not_a_smaller_dataset(tmp_path):
    """Expert arithmetic records run 221..444 words: with one attempt per slot and a 300-word limit some slots stay
    empty, and the build says how many and why instead of writing fewer records; refills fill them at 350."""
    from cognitive.errors import UserError

    cfg = _write_config(tmp_path, target_size=40, max_tokens=300, max_attempts=1, difficulty_distribution={"expert": 1})
    with pytest.raises(
        UserError, match=r"^\d+ of 40 slots still empty after 1 attempts \(most: chain_of_thought/expert"
    ):
        build_dataset(DatasetConfiguration.from_yaml(cfg), tmp_path / "out", progress=False)
    refilled = _write_config(tmp_path, target_size=40, max_tokens=350, difficulty_distribution={"expert": 1})
    assert build_dataset(DatasetConfiguration.from_yaml(refilled), tmp_path / "ok", progress=False)["kept"] == 40
