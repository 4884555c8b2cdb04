"""`cpu_heap_trim_mb` through the SFT recipe: the trimmer checks before every decoder layer of the trained model runs,
in forward and in backward, and training computes exactly what it computes without it (same seed,
fp32 CPU: losses equal to rel 1e-6)."""

from __future__ import annotations

import json

import pytest

from cognitive.train import heap
from tests.conftest import tiny_recipe

pytestmark = pytest.mark.skipif(heap._MALLOC_TRIM is None, reason="the trimmer needs glibc")


def train(model_dir, data_dir, output_dir, **overrides):
    import recipes.sft as sft
    from cognitive.train.args import parse_sft_args

    argv = tiny_recipe(model_dir, data_dir, output_dir, dtype="float32", bf16="false", **overrides)
    trainer = sft.main(*parse_sft_args(argv))
    history = json.loads((output_dir / "log_history.json").read_text())
    return trainer, [e["loss"] for e in history if "loss" in e]


def test_trimmer_runs_in_the_recipe_and_changes_no_number(tiny_model_dir, cot_data_dir, tmp_path):
    model_dir = tiny_model_dir("llama")
    plain, plain_losses = train(model_dir, cot_data_dir, tmp_path / "plain", cpu_heap_trim_mb=0)
    assert plain.heap_trimmer is None  # 0: off (the CPU recipes set 512)
    trimmed, losses = train(model_dir, cot_data_dir, tmp_path / "trimmed", cpu_heap_trim_mb=1)
    trimmer = trimmed.heap_trimmer
    layers, steps = 2, 2
    # each step: every layer's forward and its backward; then the final evaluation's forward
    assert trimmer.calls == layers * steps * 2 + layers, trimmer.calls
    assert trimmer.trims > 0  # a 1 MiB threshold is crossed: the trims below changed nothing
    assert len(losses) == len(plain_losses) == steps
    assert losses == pytest.approx(plain_losses, rel=1e-6)
