"""Cognitive modules through the SFT recipe: every Trainer checkpoint holds the module weights and config beside
the PEFT adapter, and a run resumed from a checkpoint continues from the saved module weights, ending where the
uninterrupted run ends (module weights within 1e-5, final loss rel 1e-5; fp32 CPU, same seed and data order)."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
from safetensors.torch import load_file

from cognitive.model.inject import COGNITIVE_CONFIG, COGNITIVE_WEIGHTS
from tests.conftest import TINY_MODULES, tiny_recipe

MODULES = TINY_MODULES
STEPS = dict(max_steps=4, save_steps=2, save_total_limit=2, learning_rate=3e-3)


def train(model_dir, data_dir, output_dir):
    import recipes.sft as sft
    from cognitive.train.args import parse_sft_args

    script_args, training_args, model_args = parse_sft_args(tiny_recipe(model_dir, data_dir, output_dir, **STEPS))
    script_args.cognitive_modules = MODULES
    return sft.main(script_args, training_args, model_args)


def final_loss(run_dir) -> float:
    history = json.loads((run_dir / "log_history.json").read_text())
    return next(e["loss"] for e in history if "loss" in e and e["step"] == STEPS["max_steps"])


def test_checkpoints_hold_the_modules_and_resume_continues_from_them(tiny_model_dir, cot_data_dir, tmp_path):
    model_dir = tiny_model_dir("qwen2")
    reference = tmp_path / "reference"
    train(model_dir, cot_data_dir, reference)
    for step in (2, 4):
        checkpoint = reference / f"checkpoint-{step}"
        assert (checkpoint / "adapter_model.safetensors").exists()
        assert (checkpoint / COGNITIVE_WEIGHTS).exists() and (checkpoint / COGNITIVE_CONFIG).exists(), checkpoint
        assert json.loads((checkpoint / COGNITIVE_CONFIG).read_text())["base"]["model_type"] == "qwen2"
    at_2, at_4 = (load_file(reference / f"checkpoint-{s}" / COGNITIVE_WEIGHTS) for s in (2, 4))
    assert any(not torch.equal(at_2[k], at_4[k]) for k in at_2), "the modules did not train between checkpoints"
    assert all(torch.equal(at_4[k], v) for k, v in load_file(reference / COGNITIVE_WEIGHTS).items())

    # a run cut off after its step-2 checkpoint: the rerun finds it in <output_dir>.partial and resumes
    resumed = tmp_path / "resumed"
    shutil.copytree(reference / "checkpoint-2", tmp_path / "resumed.partial" / "checkpoint-2")
    for name in ("run_config.yaml", "run_info.json"):  # written when the cut-off run started
        text = (reference / name).read_text().replace(str(reference), str(resumed))
        (tmp_path / "resumed.partial" / name).write_text(text)
    trainer = train(model_dir, cot_data_dir, resumed)
    assert trainer.state.global_step == STEPS["max_steps"]
    expected, got = load_file(reference / COGNITIVE_WEIGHTS), load_file(resumed / COGNITIVE_WEIGHTS)
    assert expected.keys() == got.keys()
    for key in expected:  # had the modules restarted from their init, the gates alone would differ by ~lr
        torch.testing.assert_close(got[key], expected[key], rtol=1e-5, atol=1e-5, msg=key)
    assert final_loss(resumed) == pytest.approx(final_loss(reference), rel=1e-5)
