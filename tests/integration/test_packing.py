"""Sample packing in the SFT recipe (`packing: true`, TRL's BFD strategy, which makes the batches padding-free):
several conversations share one row with restarting position_ids and no attention mask, and neither the base's
attention (SDPA with transformers' packed-sequence mask) nor the cognitive modules let them see each other.
Each packed sequence's logits equal those of the sequence run alone (max abs diff <= 1e-4, fp32). On a CPU the packed
rows go through packed_sdpa (cognitive/model/packed_attention.py: SDPA on each sequence apart). `padding_free: true`
without packing (the CPU recipes) concatenates a batch's rows the same way and gives the padded batch's loss."""

from __future__ import annotations

import itertools

import pytest
import torch

from tests.conftest import open_gates, tiny_recipe

MODULES = {  # every module on, tiny sizes, gates opened below (no aux loss: aux labels need padded rows)
    "working_memory": {"memory_size": 8, "update_frequency": 1, "num_heads": 2, "memory_dim": 16},
    "reasoning_heads": {"num_reasoning_heads": 2, "reasoning_dim": 8},
    "state_tracking": {"num_states": 4, "state_dim": 8},
    "planning_module": {"planning_horizon": 2, "action_space_size": 4},
}
TOL = 1e-4


def packed_trainer(model_dir, data_dir, output_dir, modules):
    from cognitive.train.args import parse_sft_args
    from cognitive.train.sft_config import resolve_sft
    from cognitive.train.sft_data import load_sft_datasets
    from cognitive.train.trainer import build_trainer, load_model_and_tokenizer

    argv = tiny_recipe(model_dir, data_dir, output_dir, packing="true", max_length=1024, per_device_train_batch_size=2)
    script_args, training_args, model_args = parse_sft_args(argv)
    script_args.cognitive_modules = modules
    resolved = resolve_sft(script_args, training_args, model_args)
    train, evaluation = load_sft_datasets(resolved)
    model, tokenizer = load_model_and_tokenizer(model_args, training_args, resolved.modules)
    return build_trainer(model, tokenizer, training_args, model_args, train, evaluation, resolved.aux_labels)


@pytest.mark.parametrize("modules", [None, MODULES], ids=["lora", "lora+modules"])
def test_packed_rows_keep_their_sequences_apart(tiny_model_dir, cot_data_dir, tmp_path, modules):
    trainer = packed_trainer(tiny_model_dir("llama"), cot_data_dir, tmp_path / "run", modules)
    batch = next(iter(trainer.get_train_dataloader()))
    assert "attention_mask" not in batch and batch["input_ids"].shape[0] == 1  # padding-free: one flat row
    positions = batch["position_ids"][0]
    starts = (positions == 0).nonzero().flatten().tolist() + [len(positions)]
    assert len(starts) >= 4, "expected several packed conversations in the row"
    model = trainer.model.eval()
    if modules:
        open_gates(model, 0.5)  # so the modules' outputs reach the logits
    inputs = {k: v for k, v in batch.items() if k != "labels"}
    with torch.no_grad():
        packed = model(**inputs).logits[0]
        # control: the same row under a plain causal mask mixes the sequences
        mixed = model(
            input_ids=batch["input_ids"],
            position_ids=batch["position_ids"],
            attention_mask=torch.ones_like(batch["input_ids"]),
        ).logits[0]
        for start, end in itertools.pairwise(starts[1:]):  # every sequence after the first
            alone = model(input_ids=batch["input_ids"][:, start:end]).logits[0]
            assert (packed[start:end] - alone).abs().max().item() <= TOL, (start, end)
            assert (mixed[start:end] - alone).abs().max().item() > 1e-3, "control: no contamination to detect"

    model.train()
    before = {n: p.detach().clone() for n, p in model.named_parameters() if "lora_B" in n}
    result = trainer.train()
    assert torch.isfinite(torch.tensor(result.training_loss))
    assert all(not torch.equal(p, before[n]) for n, p in model.named_parameters() if n in before)


def test_padding_free_batches_give_the_padded_loss(tiny_model_dir, cot_data_dir, tmp_path):
    from cognitive.model.packed_attention import PACKED_SDPA
    from cognitive.train.args import parse_sft_args
    from cognitive.train.sft_config import resolve_sft
    from cognitive.train.sft_data import load_sft_datasets
    from cognitive.train.trainer import build_trainer, load_model_and_tokenizer

    losses, rows = {}, {}
    for padding_free in (False, True):
        argv = tiny_recipe(
            tiny_model_dir("llama"),
            cot_data_dir,
            tmp_path / f"run-{padding_free}",
            padding_free=str(padding_free).lower(),
            dtype="float32",
            bf16="false",
            per_device_train_batch_size=4,
        )
        script_args, training_args, model_args = parse_sft_args(argv)
        resolved = resolve_sft(script_args, training_args, model_args)
        train, _ = load_sft_datasets(resolved)
        model, tokenizer = load_model_and_tokenizer(model_args, training_args)
        assert (model.config._attn_implementation == PACKED_SDPA) == padding_free
        trainer = build_trainer(model, tokenizer, training_args, model_args, train, None)
        batch = next(iter(trainer.get_train_dataloader()))  # the same rows: the sampler is seeded alike
        if padding_free:
            assert batch["input_ids"].shape[0] == 1 and "attention_mask" not in batch
            rows[padding_free] = batch["cu_seq_lens_q"].diff().tolist()
        else:
            rows[padding_free] = batch["attention_mask"].sum(-1).tolist()
            assert len(set(rows[padding_free])) > 1, "expected rows of different lengths (padding to lose)"
        with torch.no_grad():
            losses[padding_free] = trainer.compute_loss(trainer.model.eval(), batch).item()
    assert rows[True] == rows[False]
    assert abs(losses[True] - losses[False]) <= 1e-5 * abs(losses[False]), losses
