"""recipes/ablate.py end to end on a tiny random model: three arms, one seed, one step, one document per task."""

from __future__ import annotations

import json

from tests.conftest import TINY_MODULES, run_python, tiny_recipe_yaml


def test_ablation_trains_evaluates_and_aggregates_each_arm(tiny_model_dir, cot_data_dir, tmp_path):
    recipe = tiny_recipe_yaml(
        tmp_path / "recipe.yaml",
        tiny_model_dir("llama"),
        cot_data_dir,
        tmp_path / "unused",
        cognitive_modules=TINY_MODULES,
    )
    command = ["recipes/ablate.py", "--config", str(recipe), "--arms", "base,lora,lora+working_memory", "--seeds", "1"]
    command += [
        "--steps",
        "1",
        "--suite",
        "cognitive",
        "--limit",
        "1",
        "--eval_args",
        "--max_gen_toks 8 --batch_size 1",
        "--train_args",
        "--response_style column --arithmetic_drills 0.5",
    ]
    command += ["--runs", str(tmp_path / "runs"), "--out", str(tmp_path / "out")]
    result = run_python(command, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads((tmp_path / "out" / "results.json").read_text())["summary"]
    assert list(summary) == ["base", "lora", "lora+working_memory"]
    assert all(summary[arm]["cognitive"]["mean"] is not None for arm in summary)
    # each trained arm carries exactly its modules
    assert not (tmp_path / "runs" / "lora-seed0" / "cognitive_adapter.safetensors").exists()
    meta = json.loads((tmp_path / "runs" / "lora+working_memory-seed0" / "cognitive_config.json").read_text())
    enabled = {name for name, section in meta["cognitive_modules"].items() if section["enabled"]}
    assert enabled == {"working_memory"}
    for arm in ("lora", "lora+working_memory"):  # --train_args reach every run
        config = (tmp_path / "runs" / f"{arm}-seed0" / "run_config.yaml").read_text()
        assert "response_style: column" in config and "arithmetic_drills: 0.5" in config
    assert (tmp_path / "out" / "ablation.png").read_bytes()[:4] == b"\x89PNG"
    assert "| lora+working_memory | 1 |" in (tmp_path / "out" / "table.md").read_text()
    # a second call reuses every finished run and evaluation
    again = run_python(command, timeout=900)
    assert again.returncode == 0 and "recipes/sft.py" not in again.stdout and "recipes/evaluate.py" not in again.stdout
