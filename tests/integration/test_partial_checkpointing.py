"""Checkpointing every n-th decoder layer (`gradient_checkpointing_kwargs: {every_n_layers: n}`, transformers' own
option, demo_cpu.yaml's memory setting): the recipe reaches it, the layers it names are recomputed and the others
are not, the memory estimate follows, and one training step gives what the step without checkpointing gives."""

from __future__ import annotations

import pytest
import torch

from tests.conftest import tiny_recipe

MODULES = {  # every module on, tiny sizes
    "working_memory": {"memory_size": 8, "update_frequency": 1, "num_heads": 2, "memory_dim": 16},
    "reasoning_heads": {"num_reasoning_heads": 2, "reasoning_dim": 8},
    "state_tracking": {"num_states": 4, "state_dim": 8},
    "planning_module": {"planning_horizon": 2, "action_space_size": 4},
}
SETTINGS = {
    "none": {"gradient_checkpointing": "false"},
    "every_2": {"gradient_checkpointing": "true", "gradient_checkpointing_kwargs": '{"every_n_layers": 2}'},
    "all": {"gradient_checkpointing": "true", "gradient_checkpointing_kwargs": '{"every_n_layers": 1}'},
}


def one_step(model_dir, data_dir, output_dir, modules, settings: dict):
    """The trained weights after one step, which decoder layers were checkpointed, and the recipe's memory setup."""
    from transformers.modeling_layers import GradientCheckpointingLayer

    from cognitive.model.memory import setup_from_args
    from cognitive.train.args import parse_sft_args
    from cognitive.train.sft_config import resolve_sft
    from cognitive.train.sft_data import load_sft_datasets
    from cognitive.train.trainer import build_trainer, load_model_and_tokenizer

    argv = tiny_recipe(model_dir, data_dir, output_dir, dtype="float32", bf16="false", max_steps=1, **settings)
    script_args, training_args, model_args = parse_sft_args(argv)
    script_args.cognitive_modules = modules
    resolved = resolve_sft(script_args, training_args, model_args)
    train, _ = load_sft_datasets(resolved)
    torch.manual_seed(0)  # the same module and LoRA initialisation for every setting
    model, tokenizer = load_model_and_tokenizer(model_args, training_args, resolved.modules)
    trainer = build_trainer(model, tokenizer, training_args, model_args, train, None, resolved.aux_labels)
    trainer.train()
    layers = [m for m in trainer.model.modules() if isinstance(m, GradientCheckpointingLayer)]
    trained = {n: p.detach().clone() for n, p in trainer.model.named_parameters() if p.requires_grad}
    return trained, [bool(layer.gradient_checkpointing) for layer in layers], setup_from_args(training_args, model_args)


@pytest.mark.parametrize("modules", [None, MODULES], ids=["lora", "lora+modules"])
def test_every_nth_layer_checkpointed_trains_like_no_checkpointing(tiny_model_dir, cot_data_dir, tmp_path, modules):
    runs = {
        name: one_step(tiny_model_dir("llama"), cot_data_dir, tmp_path / name, modules, settings)
        for name, settings in SETTINGS.items()
    }
    (none, none_flags, none_setup), (every, every_flags, every_setup) = runs["none"], runs["every_2"]
    assert none_flags == [False, False] and every_flags == [True, False] and runs["all"][1] == [True, True]
    assert (none_setup.gradient_checkpointing, every_setup.checkpoint_every) == (False, 2)
    assert none.keys() == every.keys() and any("lora_" in n for n in none)
    if modules:
        assert any("cognitive" in n or "memory" in n for n in none)
    for name, weight in none.items():
        assert torch.allclose(weight, every[name], atol=1e-6, rtol=1e-5), name


def test_the_estimate_falls_as_more_layers_are_recomputed():
    from cognitive.model.memory import Setup, estimate, shape_for

    shape = shape_for("embedded:smollm2-135m-instruct")
    for device in ("cpu", "cuda"):
        setup = dict(micro_batch=4, seq_len=1024, quant="bf16", device=device)
        none = estimate(shape, Setup(gradient_checkpointing=False, **setup)).total
        every = [estimate(shape, Setup(checkpoint_every=n, **setup)).total for n in (1, 2, 3, 4, 30)]
        assert every == sorted(every) and every[-1] < none, (device, every, none)  # every_n 30: one layer of 30
        assert len(set(every)) == len(every)
