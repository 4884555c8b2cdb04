"""Training with the cognitive modules: LoRA (PEFT) on a frozen base + trainable modules, 4-bit base,
gradient checkpointing, bf16 autocast, auxiliary losses. Tiny random-init models, CPU."""

from __future__ import annotations

import pytest
import torch
from peft import LoraConfig, get_peft_model
from transformers import LlamaConfig, LlamaForCausalLM

from cognitive.model import modules as modules_lib
from cognitive.model.inject import (
    LORA_EXCLUDE_MODULES,
    capture_aux_outputs,
    cognitive_aux_loss,
    cognitive_parameter_counts,
    inject_cognitive_modules,
    lora_target_modules,
    mark_cognitive_trainable,
)
from cognitive.model.modules import BLOCK_ATTR, cognitive_blocks
from tests.conftest import FAMILY_NAMES, open_gates, tiny_family

VOCAB = 96


pytestmark = pytest.mark.usefixtures("one_thread")


def tiny_llama(seed: int = 0, cls=LlamaForCausalLM, config_cls=LlamaConfig, **extra):
    config = config_cls(
        vocab_size=VOCAB,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        **extra,
    )
    config._attn_implementation = "sdpa"
    torch.manual_seed(seed)
    return cls(config)


def lora_model(model, cfg=None, gates: float | None = 0.5):
    inject_cognitive_modules(model, cfg or {})
    if gates is not None:
        open_gates(model, gates)
    targets = lora_target_modules(model)
    model = get_peft_model(model, LoraConfig(r=4, lora_alpha=8, lora_dropout=0.0, target_modules=targets))
    mark_cognitive_trainable(model)
    return model


def batch(seed=3):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(1, VOCAB, (2, 12), generator=g)
    mask = torch.ones_like(ids)
    mask[1, :4] = 0  # left padding in row 1
    labels = ids.masked_fill(mask == 0, -100)
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}


def snapshot(model) -> dict[str, torch.Tensor]:
    return {n: p.detach().clone() for n, p in model.named_parameters()}


def is_module_param(name: str) -> bool:
    return f".{BLOCK_ATTR}." in name


@pytest.mark.parametrize("family, gates", [(f, 0.5) for f in FAMILY_NAMES] + [("llama", None)])
def test_one_step_changes_only_lora_and_modules(family, gates):
    """(5) After one optimizer step: base weights unchanged; every module and LoRA weight that got gradient
    changed, and no other; with gates open every module weight got gradient, at init (gates 0) only the gates
    did; LoRA sits on all base linears and on no module layer."""
    model = lora_model(tiny_family(family, VOCAB), gates=gates)
    names = [n for n, _ in model.named_parameters()]
    lora_names = [n for n in names if "lora_" in n]
    assert lora_names and not any(is_module_param(n) for n in lora_names)
    per_layer = 4 if family == "phi3" else 7  # q k v o gate up down | phi3's fused qkv o gate_up down
    assert len([n for n in lora_names if n.endswith("lora_A.default.weight")]) == 2 * per_layer
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable == {n for n in names if "lora_" in n or is_module_param(n)}

    before = snapshot(model)
    model.train()
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2, weight_decay=0.0)
    model(**batch()).loss.backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    optimizer.step()
    after = snapshot(model)

    for n in names:
        got_grad = n in grads and grads[n].abs().sum().item() > 0
        changed = not torch.equal(before[n], after[n])
        if "lora_" in n or is_module_param(n):
            assert changed == got_grad, n
        else:
            assert not changed, f"base weight {n} changed"
    # every module weight trains from the LM loss alone, except the step predictor (an aux-loss head, see below)
    module_names = [n for n in names if is_module_param(n) and "step_predictor" not in n]
    got_grad = {n for n in module_names if n in grads and grads[n].abs().sum() > 0}
    if gates is None:  # at init the branch outputs are multiplied by tanh(0) = 0: only the gates learn first
        assert got_grad == {n for n in module_names if n.endswith(".gate")}
    else:
        assert got_grad == set(module_names), "a module weight got no gradient"
    # lora_B starts at 0, so at step 0 only lora_B gets gradient (lora_A's gradient is B^T * ... = 0)
    assert all(grads[n].abs().sum() > 0 for n in lora_names if "lora_B" in n)


def test_peft_all_linear_with_exclude_regex_matches_explicit_targets():
    """The documented alternative (`all-linear` + exclude_modules) puts LoRA on exactly the same layers."""
    a = lora_model(tiny_llama())
    model = tiny_llama()
    inject_cognitive_modules(model, {})
    b = get_peft_model(model, LoraConfig(r=4, target_modules="all-linear", exclude_modules=LORA_EXCLUDE_MODULES))
    lora = lambda m: sorted(n for n, _ in m.named_parameters() if "lora_" in n)  # noqa: E731
    assert lora(a) == lora(b)


@pytest.mark.parametrize("reentrant", [False, True])
def test_gradient_checkpointing_gives_the_same_gradients(reentrant):
    """Gradient checkpointing on (reentrant: what TRL forces for PEFT + ZeRO-3): the same LoRA + module gradients
    as without, aux outputs included. Where a transformers version runs layer hooks inside a reentrant checkpoint
    (5.17), capturing aux outputs is refused with a clear error instead of silently not training them."""
    hooks_inside = modules_lib._HOOKS_INSIDE_LAYER_CHECKPOINT
    capture = not (reentrant and hooks_inside)
    grads = []
    for checkpointing in (False, True):
        model = lora_model(tiny_llama())
        if checkpointing:
            model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": reentrant})
            model.enable_input_require_grads()
            assert all(layer.gradient_checkpointing for layer in model.get_base_model().model.layers)
        model.train()
        if capture:
            with capture_aux_outputs(model) as aux:
                out = model(**batch())
            loss = out.loss + aux.state_logits.mean() + aux.step_logits.mean()  # aux outputs carry gradient too
        else:
            loss = model(**batch()).loss
            if checkpointing:
                with pytest.raises(RuntimeError, match="use_reentrant"), capture_aux_outputs(model):
                    model(**batch())
        loss.backward()
        grads.append({n: p.grad for n, p in model.named_parameters() if p.requires_grad})
    plain, ckpt = grads
    assert plain.keys() == ckpt.keys()
    for n in plain:
        if "step_predictor" in n and not capture:
            continue
        assert plain[n] is not None and ckpt[n] is not None, n
        assert torch.allclose(plain[n], ckpt[n], rtol=1e-4, atol=1e-6), n


def test_bf16_autocast_step():
    """Under bf16 autocast (CPU here, CUDA in real runs) forward+backward works, the loss is close to fp32's
    and every module weight (but the aux-only step predictor) gets a finite, non-zero gradient."""
    model = lora_model(tiny_llama())
    model.train()
    fp32_loss = model(**batch()).loss.item()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        with capture_aux_outputs(model) as aux:
            loss = model(**batch()).loss
    assert aux.state_logits.dtype == torch.float32  # the state recurrence runs in fp32 even under autocast
    assert abs(loss.item() - fp32_loss) < 0.05
    loss.backward()
    for n, p in model.named_parameters():
        if is_module_param(n) and "step_predictor" not in n:
            assert p.grad is not None and torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0, n


def test_4bit_base_one_step(tmp_path):
    """QLoRA: a 4-bit bitsandbytes base (works on CPU) + modules + LoRA: one step changes LoRA and modules,
    not the quantized base weights."""
    from peft import prepare_model_for_kbit_training
    from transformers import AutoModelForCausalLM, BitsAndBytesConfig

    tiny_llama().save_pretrained(tmp_path)
    quant = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_compute_dtype=torch.float32)
    model = AutoModelForCausalLM.from_pretrained(tmp_path, quantization_config=quant)
    # also turns on gradient checkpointing (reentrant, as PEFT's historical default; the modules follow the layer)
    model = prepare_model_for_kbit_training(model, gradient_checkpointing_kwargs={"use_reentrant": True})
    model = lora_model(model)
    counts = cognitive_parameter_counts(model)
    assert counts["base"] == sum(p.numel() for p in tiny_llama().parameters())  # 4-bit weights counted unpacked
    assert type(model.get_base_model().model.layers[0].self_attn.q_proj.base_layer).__name__ == "Linear4bit"

    before = snapshot(model)
    model.train()
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2, weight_decay=0.0)
    model(**batch()).loss.backward()
    optimizer.step()
    after = snapshot(model)
    changed = {n for n in before if not torch.equal(before[n], after[n])}
    assert changed, "nothing trained"
    assert all("lora_" in n or is_module_param(n) for n in changed), sorted(changed)
    assert all(n in changed for n in before if is_module_param(n) and "step_predictor" not in n)


def test_aux_loss_trains_the_heads():
    """Aux weights > 0: the step/state/action losses are finite and reach the step predictor, the state tracker
    and the planning head; weights 0 (the default) add nothing."""
    cfg = {
        "reasoning_heads": {"aux_loss_weight": 0.5},
        "state_tracking": {"aux_loss_weight": 0.5},
        "planning_module": {"aux_loss_weight": 0.5},
    }
    model = lora_model(tiny_llama(), cfg)
    config = model.get_base_model().cognitive_config
    b = batch()
    step_labels = torch.randint(0, 8, (2, 12))
    state_labels = torch.full((2, 12), -100)
    state_labels[:, 5:] = 3
    action_labels = torch.randint(0, 64, (2, 12, 8))
    model.train()
    with capture_aux_outputs(model) as aux:
        out = model(**b)
    aux_loss = cognitive_aux_loss(aux, config, step_labels, state_labels, action_labels)
    assert torch.isfinite(aux_loss) and aux_loss.item() > 0
    (out.loss + aux_loss).backward()
    blocks = cognitive_blocks(model)
    assert blocks[1].reasoning.step_predictor.weight.grad.abs().sum() > 0
    assert blocks[1].state.initial_logits.grad.abs().sum() > 0
    assert blocks[1].planning.plan_head.weight.grad.abs().sum() > 0
    # defaults: weight 0 -> no term; and no labelled position -> no term
    default_model = lora_model(tiny_llama())
    with capture_aux_outputs(default_model) as aux:
        default_model(**b)
    assert (
        cognitive_aux_loss(
            aux, default_model.get_base_model().cognitive_config, step_labels, state_labels, action_labels
        )
        is None
    )
    assert cognitive_aux_loss(aux, config, state_labels=torch.full((2, 12), -100)) is None


def test_aux_outputs_do_not_leak_across_calls():
    """Outside `capture_aux_outputs` nothing is recorded; the context leaves no sink behind."""
    model = lora_model(tiny_llama())
    with capture_aux_outputs(model) as aux:
        model(**batch())
    first = aux.step_logits
    model(**batch(seed=4))  # outside the context
    assert aux.step_logits is first
    assert all(block.aux_sink is None for block in cognitive_blocks(model).values())


def test_aux_capture_through_a_distributed_wrapper():
    """Trainers hand compute_loss the DDP / DeepSpeed engine: `.module` wrappers are looked through."""

    class Engine(torch.nn.Module):  # stands in for DistributedDataParallel / DeepSpeedEngine
        def __init__(self, module):
            super().__init__()
            self.module = module

        def forward(self, **kwargs):
            return self.module(**kwargs)

    engine = Engine(lora_model(tiny_llama()))
    with capture_aux_outputs(engine) as aux:
        engine(**batch())
    assert aux.state_logits.shape == (2, 12, 32)
    assert mark_cognitive_trainable(engine) == cognitive_parameter_counts(engine)["total"]
