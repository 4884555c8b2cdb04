"""Auxiliary losses in the SFT recipe: 2 steps of a tiny llama with every aux weight 1.0 on chain_of_thought +
planning data. The labels reach the batch, aux_loss is logged, and the heads that only the aux losses can
train (the step predictor, the state tracker's transition network, the planning head) get gradient and change."""

from __future__ import annotations

import math

import pytest
import torch

from tests.conftest import tiny_recipe

MODULES = {
    "working_memory": {"memory_size": 8, "update_frequency": 2, "num_heads": 2, "memory_dim": 16},
    "reasoning_heads": {"num_reasoning_heads": 2, "reasoning_dim": 16, "aux_loss_weight": 1.0},
    "state_tracking": {"num_states": 4, "state_dim": 16, "aux_loss_weight": 1.0},
    "planning_module": {"planning_horizon": 3, "action_space_size": 16, "aux_loss_weight": 1.0},
}
# trained by the aux losses alone: at init every gate is 0, so nothing else reaches these weights (the state
# tracker's initial_logits too, but its gradient fades along a ~1000-token sequence: not asserted)
AUX_ONLY = (
    "step_predictor.weight",
    "state.state_in.weight",
    "state.state_transition.weight",
    "planning.plan_head.weight",
)
# behind a zero gate: no gradient at init, with or without aux losses
BEHIND_GATE = ("state.state_out.weight", "planning.plan_out.weight", "reasoning.reasoning_out.weight")


@pytest.fixture(scope="module")
def mixed_data_dir(tmp_path_factory):
    from cognitive.data.generators import generate_example
    from cognitive.data.schema import write_jsonl

    out = tmp_path_factory.mktemp("mixed-data")
    # a planning seed whose ~980 tokens fit max_length 1024 whole (transitions included)
    examples = [generate_example("chain_of_thought", "basic", 0), generate_example("planning", "basic", 8)]
    write_jsonl(examples, out / "train.jsonl")
    return out


def _trainer(model_dir, data_dir, output_dir, **overrides):
    from cognitive.train.args import parse_sft_args
    from cognitive.train.sft_config import resolve_sft
    from cognitive.train.sft_data import load_sft_datasets
    from cognitive.train.trainer import build_trainer, load_model_and_tokenizer

    # batches of 1: 2 steps see both examples (one epoch) at half the tokens of a padded batch of 2; aux labels need
    # padded batches (the CPU recipes' padding_free: true is refused with them)
    overrides = {"padding_free": "false", **overrides}
    argv = tiny_recipe(model_dir, data_dir, output_dir, max_length=1024, per_device_train_batch_size=1, **overrides)
    script_args, training_args, model_args = parse_sft_args(argv)
    script_args.cognitive_modules = MODULES
    resolved = resolve_sft(script_args, training_args, model_args)
    train, evaluation = load_sft_datasets(resolved)
    model, tokenizer = load_model_and_tokenizer(model_args, training_args, resolved.modules)
    return build_trainer(model, tokenizer, training_args, model_args, train, evaluation, resolved.aux_labels)


def _grads(trainer, batch) -> dict[str, torch.Tensor | None]:
    trainer.model.zero_grad(set_to_none=True)
    trainer.compute_loss(trainer.model, dict(batch)).backward()
    return {name: p.grad for name, p in trainer.model.named_parameters() if "cognitive" in name}


def _find(grads: dict, suffix: str) -> list[str]:
    names = [name for name in grads if name.endswith(suffix)]
    assert names, suffix
    return names


def test_aux_losses_train_the_heads_only_they_reach(tiny_model_dir, mixed_data_dir, tmp_path):
    trainer = _trainer(tiny_model_dir("llama"), mixed_data_dir, tmp_path / "run")
    rows = trainer.train_dataset
    assert {"step_labels", "state_labels", "action_cursor", "plan_actions"} <= set(rows.column_names)
    assert len(rows) == 2 and all(len(row["input_ids"]) < 1024 for row in rows)  # nothing truncated
    assert sorted(bool(row["plan_actions"]) for row in rows) == [False, True]  # cot has no plan
    padded = trainer.data_collator([rows[0], rows[1]])
    T = padded["input_ids"].shape[1]
    assert padded["step_labels"].shape == padded["state_labels"].shape == (2, T)
    assert padded["action_labels"].shape == (2, T, 3)
    for key in ("step_labels", "state_labels", "action_labels"):  # padding carries no label
        assert (padded[key][padded["attention_mask"] == 0] == -100).all(), key

    # the planning example carries all three kinds of labels
    batch = trainer.data_collator([next(row for row in rows if row["plan_actions"])])
    for key in ("step_labels", "state_labels", "action_labels"):
        assert (batch[key] != -100).any(), key

    trainer.model.train()
    with_aux = _grads(trainer, batch)
    lm_only = _grads(trainer, {k: v for k, v in batch.items() if not k.endswith("_labels") or k == "labels"})
    for suffix in AUX_ONLY:
        for name in _find(with_aux, suffix):
            assert with_aux[name] is not None and with_aux[name].abs().sum() > 0, name
            assert lm_only[name] is None or lm_only[name].abs().sum() == 0, name
    for suffix in BEHIND_GATE:
        for name in _find(with_aux, suffix):
            assert with_aux[name] is None or with_aux[name].abs().sum() == 0, name
    trainer.model.zero_grad(set_to_none=True)

    before = {name: p.detach().clone() for name, p in trainer.model.named_parameters() if "cognitive" in name}
    trainer.train()
    aux_losses = [entry["aux_loss"] for entry in trainer.state.log_history if "aux_loss" in entry]
    assert len(aux_losses) == 2 and all(math.isfinite(x) and x > 0 for x in aux_losses), trainer.state.log_history
    after = dict(trainer.model.named_parameters())
    for suffix in AUX_ONLY:
        for name in _find(before, suffix):
            assert not torch.equal(before[name], after[name].detach()), f"{name} did not change"


def test_packing_with_aux_losses_is_refused_before_training(tiny_model_dir, mixed_data_dir, tmp_path):
    from cognitive.errors import UserError

    with pytest.raises(UserError, match="need padded batches: set packing: false"):
        _trainer(tiny_model_dir("llama"), mixed_data_dir, tmp_path / "run", packing=True)


def test_arithmetic_drills_mix_in_with_no_aux_labels(tiny_model_dir, mixed_data_dir, tmp_path):
    """arithmetic_drills 0.5 beside 2 records: 2 worksheets join the rows, carrying no step, state or action label
    (they have none), and a batch of a worksheet and a record trains with a finite loss."""
    trainer = _trainer(tiny_model_dir("llama"), mixed_data_dir, tmp_path / "run", arithmetic_drills=0.5)
    rows = trainer.train_dataset
    texts = [trainer.processing_class.decode(row["input_ids"]) for row in rows]
    drills = [i for i, text in enumerate(texts) if "Work these out:" in text]
    assert len(rows) == 4 and len(drills) == 2
    for i in range(4):
        labelled = any(v != -100 for v in rows[i]["step_labels"])
        assert labelled == (i not in drills) and (not rows[i]["plan_actions"] or i not in drills)
    batch = trainer.data_collator([rows[drills[0]], rows[next(i for i in range(4) if i not in drills)]])
    assert math.isfinite(trainer.compute_loss(trainer.model, dict(batch)).item())
