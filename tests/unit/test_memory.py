"""The memory estimator against real bytes (CPU: parameters, quantized weights, LoRA, optimizer states) and
against the GPU peaks measured for DESIGN.md (H200, Qwen2.5-1.5B shape, micro-batch 4 x 2048, 24 GiB cap)."""

from __future__ import annotations

import pytest
import torch

from cognitive.model import memory as hardware
from cognitive.model.memory import GIB, Setup, estimate, shape_from_config
from recipes import preflight

QWEN_1_5B = hardware.shape_for("Qwen/Qwen2.5-1.5B-Instruct")


def _param_bytes(model) -> int:
    return sum(p.numel() * p.element_size() for p in model.parameters())


def test_bf16_weights_are_exact(tiny_model_dir):
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir("llama"), dtype=torch.bfloat16)
    shape = shape_from_config(model.config)
    assert estimate(shape, Setup(quant="bf16", lora_r=0)).weights == _param_bytes(model)


def test_nf4_weights_of_the_embedded_model_within_2_percent():
    from transformers import BitsAndBytesConfig

    from cognitive.model.base import DEFAULT_EMBEDDED, load_base

    quant = BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type="nf4",
        bnb_4bit_use_double_quant=True,
        bnb_4bit_compute_dtype=torch.bfloat16,
        bnb_4bit_quant_storage=torch.uint8,
    )
    model = load_base(DEFAULT_EMBEDDED, quantization_config=quant, dtype=torch.bfloat16, device_map={"": "cpu"})
    real = _param_bytes(model)
    for module in model.modules():
        state = getattr(getattr(module, "weight", None), "quant_state", None)
        if state is not None:  # absmax (8-bit, nested), its own absmax and code tables
            real += sum(
                t.numel() * t.element_size() for t in (state.absmax, state.state2.absmax, state.state2.code, state.code)
            )
    estimated = estimate(hardware.shape_for(DEFAULT_EMBEDDED), Setup(quant="nf4", lora_r=0)).weights
    assert estimated == pytest.approx(real, rel=0.02)


def test_lora_over_a_bf16_base_is_fp32(tiny_model_dir):
    """The CPU recipes' bf16 base: PEFT keeps the LoRA weights (and so their gradients and AdamW states) in fp32."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir("llama"), dtype=torch.bfloat16)
    shape = shape_from_config(model.config)
    model = get_peft_model(model, LoraConfig(r=8, target_modules="all-linear"))
    trainable = [p for p in model.parameters() if p.requires_grad]
    assert {p.dtype for p in trainable} == {torch.float32}
    real = 2 * sum(p.numel() * p.element_size() for p in trainable)  # weights + gradients
    assert estimate(shape, Setup(quant="bf16", lora_r=8)).trainable == real


def test_lora_params_and_optimizer_states_are_exact(tiny_model_dir):
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir("llama"), dtype=torch.float32)
    shape = shape_from_config(model.config)
    model = get_peft_model(model, LoraConfig(r=8, target_modules="all-linear"))
    trainable = [p for p in model.parameters() if p.requires_grad]
    assert sum(p.numel() for p in trainable) == shape.lora_params(8)

    optimizer = torch.optim.AdamW(trainable)
    model(torch.tensor([[1, 2, 3, 4]]), labels=torch.tensor([[1, 2, 3, 4]])).loss.backward()
    optimizer.step()
    state_bytes = sum(
        t.numel() * t.element_size() for s in optimizer.state.values() for k, t in s.items() if k != "step"
    )
    assert state_bytes == estimate(shape, Setup(quant="fp32", lora_r=8)).optimizer


@pytest.mark.parametrize(
    "setup, measured_gib",
    [
        (Setup(quant="bf16", lora_r=16), 5.2),  # plain TRL LoRA bf16
        (Setup(quant="nf4", lora_r=16), 2.9),  # plain TRL QLoRA nf4
        (Setup(quant="nf4", lora_r=16, offload_optimizer=True, deepspeed_bucket_elems=400_000_000), 4.7),  # + ZeRO-2
    ],
)
def test_estimate_tracks_the_measured_gpu_peaks(setup, measured_gib):
    """Within 25% of the DESIGN.md anchors (measured with max_memory_allocated on an H200)."""
    assert estimate(QWEN_1_5B, setup).total / GIB == pytest.approx(measured_gib, rel=0.25)


def test_recommend_keeps_the_effective_batch_and_shrinks_until_it_fits():
    setup = Setup(quant="bf16", lora_r=16, micro_batch=8, seq_len=4096, gradient_checkpointing=False)
    card = 24 * GIB
    assert estimate(QWEN_1_5B, setup).total > card
    rec = hardware.recommend(QWEN_1_5B, setup, card, effective_batch=32)
    assert rec["fits"] and rec["per_device_train_batch_size"] * rec["gradient_accumulation_steps"] >= 32
    fitted = Setup(
        **{**setup.__dict__, "micro_batch": rec["per_device_train_batch_size"], "seq_len": rec["max_length"]}
    )
    assert estimate(QWEN_1_5B, fitted).total <= card


def test_more_memory_for_longer_sequences_and_bigger_batches():
    base = estimate(QWEN_1_5B, Setup()).total
    assert estimate(QWEN_1_5B, Setup(seq_len=4096)).total > base
    assert estimate(QWEN_1_5B, Setup(micro_batch=8)).total > base
    assert estimate(QWEN_1_5B, Setup(gradient_checkpointing=False)).total > base


def test_unknown_gpu_is_a_user_error():
    from cognitive.errors import UserError

    with pytest.raises(UserError, match="unknown GPU 'voodoo5'"):
        hardware.card_bytes("voodoo5")
    assert hardware.card_bytes("RTX 3090 Ti") == 24 * GIB


def test_cli_prints_the_estimate_and_a_recommendation(capsys):
    preflight.main(["--config", "recipes/configs/cognitive_1.5b.yaml", "--gpu", "3090ti"])
    out = capsys.readouterr().out
    assert "total (peak)" in out and "fits" in out and "recommended:" in out


@pytest.mark.parametrize("family", ["llama", "qwen2", "gemma2"])
def test_module_params_match_the_injected_modules(family):
    """The estimator's module count (a meta-device Llama of the base's shape) equals the parameters that
    injection really adds to a model of that family; the 1.5B recipe's block adds its ~6% of the base."""
    from cognitive.model.inject import cognitive_parameter_counts, inject_cognitive_modules
    from tests.conftest import tiny_family

    block = {
        "working_memory": {"memory_size": 16, "update_frequency": 1},
        "reasoning_heads": {"reasoning_dim": 16},
        "state_tracking": {"num_states": 4, "state_dim": 8},
        "planning_module": {"action_space_size": 8},
    }
    model = tiny_family(family, 96)
    shape = shape_from_config(model.config)
    inject_cognitive_modules(model, block)
    assert hardware.module_params(shape, block) == cognitive_parameter_counts(model)["total"] > 0
    assert hardware.module_params(shape, None) == 0
    assert hardware.module_params(shape, {name: {"enabled": False} for name in block}) == 0
    assert 0.05 < hardware.module_params(QWEN_1_5B, {}) / (QWEN_1_5B.linear_params + QWEN_1_5B.other_params) < 0.10


def test_cli_counts_the_recipes_modules(capsys):
    """The 1.5B recipe enables every module: its estimate carries their weights, grads and AdamW states."""
    preflight.main(["--config", "recipes/configs/cognitive_1.5b.yaml", "--gpu", "3090ti"])
    with_modules = capsys.readouterr().out
    off = (
        '{"working_memory": {"enabled": false}, "reasoning_heads": {"enabled": false}, '
        '"state_tracking": {"enabled": false}, "planning_module": {"enabled": false}}'
    )
    preflight.main(["--config", "recipes/configs/cognitive_1.5b.yaml", "--gpu", "3090ti", "--cognitive_modules", off])
    without = capsys.readouterr().out

    def trainable_gib(out: str) -> float:
        return float(next(line.split()[1] for line in out.splitlines() if line.strip().startswith("trainable")))

    modules = hardware.module_params(QWEN_1_5B, {})
    assert f"'module_params': {modules}" in with_modules and "'module_params': 0" in without
    # QLoRA: fp32 weights + grads of the modules (8 bytes per parameter) on top of LoRA's
    assert trainable_gib(with_modules) - trainable_gib(without) == pytest.approx(8 * modules / GIB, abs=0.01)


# Peak RSS (GiB) of the 135M CPU recipes measured by tests/performance/bench_train_memory.py (2 cores, torch 2.13):
# (configuration, batch, length) -> GiB. Measured 2026-12-02 with the fp32 base and padded rows of the recipes then:
# "lora"/"modules": bf16 autocast + gradient checkpointing, no heap trimming (the estimate is the untrimmed peak; the
# CPU recipes' cpu_heap_trim_mb only lowers it). Measured 2026-12-07 (issue 42): "*_recipe", the recipes now (bf16
# base, padding-free rows) without checkpointing, untrimmed; "lora_recipe_every4": the same with every 4th layer
# checkpointed (gradient_checkpointing_kwargs: {every_n_layers: 4}), untrimmed, measured later that day.
MEASURED_CPU_PEAKS = {
    ("lora", 4, 512): 2.07,
    ("lora", 4, 1024): 2.81,
    ("modules", 4, 512): 2.59,
    ("modules", 4, 1024): 4.13,
    ("lora_bf16", 4, 1024): 7.41,
    ("modules_bf16", 4, 1024): 9.07,
    ("lora_fp32", 4, 1024): 11.14,
    ("modules_fp32", 4, 1024): 12.62,
    ("lora_fp32", 4, 512): 6.04,
    ("lora_recipe", 4, 1024): 5.36,
    ("modules_recipe", 4, 1024): 7.02,
    ("lora_recipe_every4", 4, 1024): 4.99,
}


@pytest.mark.parametrize("config, batch, length", list(MEASURED_CPU_PEAKS))
def test_cpu_estimate_tracks_the_measured_peak_rss(config, batch, length):
    """Within 25% of the measured peaks, through the recipe's own settings (setup_from_args of the 135M CPU recipe
    with the configuration's overrides), module parameters counted as the recipe injects them."""
    from cognitive.train.args import parse_sft_args
    from cognitive.train.preflight import cognitive_modules

    # the precision they were measured in, on any CPU (cpu_precision: auto would train in fp32 without native bf16)
    overrides = ["--per_device_train_batch_size", str(batch), "--max_length", str(length), "--cpu_precision", "recipe"]
    if config.endswith("_recipe"):  # measured without checkpointing (the modules recipe checkpoints)
        overrides += ["--gradient_checkpointing", "false"]
    elif "_recipe_every" in config:  # every n-th layer checkpointed
        every = config.rsplit("every", 1)[1]
        overrides += ["--gradient_checkpointing_kwargs", f'{{"every_n_layers": {every}}}']
    else:  # the recipes of then: fp32 base, padded rows
        overrides += [
            "--gradient_checkpointing",
            str("_" not in config).lower(),
            "--bf16",
            str("fp32" not in config).lower(),
            "--dtype",
            "float32",
            "--padding_free",
            "false",
        ]
    script_args, training_args, model_args = parse_sft_args(
        ["--config", "recipes/configs/cognitive_135m_cpu.yaml", *overrides]
    )
    shape = hardware.shape_for(model_args.model_name_or_path)
    modules = cognitive_modules(script_args) if config.startswith("modules") else None
    setup = hardware.setup_from_args(training_args, model_args, hardware.module_params(shape, modules))
    assert setup.device == "cpu" and setup.quant == ("bf16" if "_recipe" in config else "fp32")
    measured = MEASURED_CPU_PEAKS[(config, batch, length)]
    assert estimate(shape, setup).total / GIB == pytest.approx(measured, rel=0.25)


# GRPO, grpo_135m_cpu.yaml from an SFT run (runs/ablation/lora-seed0), micro-batch 8: peak RSS (GiB) by
# max_completion_length, measured with /usr/bin/time -v around recipes/grpo.py: 96 over 2 steps, 192 over the 30 steps
# of experiments/grpo_cpu/bench_grpo.py (6.96 after 3 steps: the heap keeps growing over a run), 128 over its 40 steps
# (the larger of two seeds, from runs/sft-start). Measured with the recipe's fp32 base of then (dtype: float32).
MEASURED_GRPO_CPU_PEAKS = {96: 6.22, 128: 7.13, 192: 8.36}


@pytest.mark.parametrize("completion", list(MEASURED_GRPO_CPU_PEAKS))
def test_grpo_cpu_estimate_tracks_the_measured_peak_rss(completion):
    """Within 10% of the measured GRPO peaks, through the GRPO recipe's own settings; the generation phase and the
    step are both counted, the peak is the larger one."""
    from cognitive.train.args import parse_grpo_args

    script_args, training_args, model_args = parse_grpo_args(
        ["--config", "recipes/configs/grpo_135m_cpu.yaml", "--max_completion_length", str(completion)]
        + ["--dtype", "float32", "--cpu_precision", "recipe"]  # as measured: bf16 autocast over an fp32 base
    )
    shape = hardware.shape_for(model_args.model_name_or_path)
    setup = hardware.setup_from_args(training_args, model_args, 0, script_args.max_prompt_tokens)
    assert setup.device == "cpu" and setup.generation_batch == 8 and setup.completion_len == completion
    est = estimate(shape, setup)
    assert est.generation > 0 and est.total / GIB == pytest.approx(MEASURED_GRPO_CPU_PEAKS[completion], rel=0.10)


def test_grpo_estimate_counts_generation_and_the_reference():
    """The GPU recipe: a longer completion or a bigger generation batch costs more; a KL penalty adds a reference
    (a LoRA copy with PEFT, the whole base without)."""
    from cognitive.train.args import parse_grpo_args

    _, training_args, model_args = parse_grpo_args(
        ["--config", "recipes/configs/grpo_1.5b.yaml", "--bf16", "false", "--tf32", "false"]
    )
    shape = hardware.shape_for(model_args.model_name_or_path)
    setup = hardware.setup_from_args(training_args, model_args, 0, 1024)
    base = estimate(shape, setup)
    assert base.reference == 0 and base.generation > 0
    longer = estimate(shape, Setup(**{**setup.__dict__, "completion_len": 1536, "seq_len": 2560}))
    assert longer.total > base.total and longer.generation > base.generation
    wider = estimate(shape, Setup(**{**setup.__dict__, "generation_batch": 128}))
    assert wider.generation > base.generation
    adapter = estimate(shape, Setup(**{**setup.__dict__, "reference": "adapter"}))
    copy = estimate(shape, Setup(**{**setup.__dict__, "reference": "copy"}))
    assert 0 < adapter.reference < copy.reference == base.weights


def test_cpu_and_gpu_estimates_differ_where_the_machines_do():
    """The CPU estimate adds the Python runtime and uses the CPU LM-head tile; the GPU estimate of the same
    setup is unchanged by the CPU terms."""
    shape = hardware.shape_for("embedded:smollm2-135m-instruct")
    gpu = estimate(shape, Setup(quant="fp32", compute="bf16", micro_batch=4, seq_len=1024))
    cpu = estimate(shape, Setup(quant="fp32", compute="bf16", micro_batch=4, seq_len=1024, device="cpu"))
    assert gpu.runtime == 0 and cpu.runtime == hardware.CPU_RUNTIME_BYTES
    assert (gpu.weights, gpu.trainable, gpu.optimizer) == (cpu.weights, cpu.trainable, cpu.optimizer)
    assert cpu.logits < gpu.logits  # a 256 x 4096 tile instead of 4096 x 32768


def test_cli_estimates_a_cpu_recipe_against_ram(capsys):
    preflight.main(["--config", "recipes/configs/cognitive_135m_cpu.yaml", "--max_length", "1024", "--gib", "2"])
    out = capsys.readouterr().out
    assert "'device': 'cpu'" in out and "runtime" in out and "RAM: 2.0 GiB -> DOES NOT FIT" in out
