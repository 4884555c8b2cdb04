"""Checks that need no model, run before anything is loaded, so a bad run fails in seconds.

    preflight(script_args, training_args, model_args, resolved.modules)

A finished run dir in the way, the DeepSpeed config against the recipe, GPU-only settings on a machine without a
GPU, and the memory estimate (cognitive/model/memory.py) against the card, with the settings that would fit.

The estimate of a recipe alone, for any card, or of a CPU recipe's peak RSS:

    python -m cognitive.train.preflight --config recipes/configs/cognitive_1.5b.yaml --gpu 3090ti
    python -m cognitive.train.preflight --config recipes/configs/cognitive_135m_cpu.yaml --max_length 1024
    python -m cognitive.train.preflight --config recipes/configs/grpo_1.5b.yaml --gpu 3090ti     # GRPO recipes too
"""

from __future__ import annotations

import dataclasses
import importlib.util
from dataclasses import asdict
from pathlib import Path

from cognitive.atomic import check_replaceable
from cognitive.errors import ArgumentParser, UserError, exit_on_user_error
from cognitive.model import memory as hardware
from cognitive.model.base import cpu_has_fast_bf16 as hardware_has_fast_bf16
from cognitive.train.args import cognitive_modules, parser_for


def preflight(script_args, training_args, model_args, modules=None) -> None:
    """Checks that need no model, so a bad run fails in seconds: a finished run dir in the way, the DeepSpeed
    config against the recipe, GPU-only settings on a machine without one, the memory estimate against the card."""
    import torch

    out = training_args.output_dir
    exists = UserError(f"run dir {out} already exists; pass --overwrite true or choose another --output_dir")
    check_replaceable(out, "run", overwrite=script_args.overwrite, exists_error=exists)  # a run of ours, or refused
    if model_args.use_peft and (model_args.lora_r is None or model_args.lora_r < 1):
        raise UserError(f"lora_r: {model_args.lora_r} is not a LoRA rank; use a positive integer (e.g. 16)")
    max_length = getattr(training_args, "max_length", getattr(training_args, "max_completion_length", None))
    if max_length is not None and max_length < 1:
        key = "max_length" if hasattr(training_args, "max_length") else "max_completion_length"
        raise UserError(f"{key}: {max_length} tokens leaves nothing to train on; use e.g. 1024")
    ds = hardware._deepspeed_config(training_args.deepspeed)
    if ds and training_args.use_cpu:
        raise UserError(
            f"{training_args.deepspeed}: use_cpu: true trains without DeepSpeed (transformers ignores the config "
            "then); for ZeRO on a CPU pass --use_cpu false --bf16 false"
        )
    if ds:
        check_deepspeed_matches(ds, training_args, model_args)
    if model_args.attn_implementation == "flash_attention_2":
        if not torch.cuda.is_available():
            raise UserError("attn_implementation: flash_attention_2 needs a GPU; leave it unset (SDPA) on this machine")
        if importlib.util.find_spec("flash_attn") is None:
            raise UserError("attn_implementation: flash_attention_2 needs: pip install flash-attn --no-build-isolation")

    on_cpu = bool(training_args.use_cpu) or (not torch.cuda.is_available() and not script_args.gpu)
    if on_cpu and training_args.bf16 and not hardware_has_fast_bf16():
        print("note: this CPU has no native bf16 matmuls (AMX / AVX512-BF16): bf16 autocast may be slower than fp32")
    if on_cpu:
        card, capacity = "host RAM", host_memory_bytes()
    elif script_args.gpu:
        card, capacity = script_args.gpu, hardware.card_bytes(script_args.gpu)
    else:
        props = torch.cuda.get_device_properties(torch.cuda.current_device())
        card, capacity = props.name, props.total_memory
    if capacity is None:
        return  # nothing to check against
    try:
        shape = hardware.shape_for(model_args.model_name_or_path)
    except OSError as e:  # an unknown hub id without hub access: nothing to estimate from
        print(f"memory preflight skipped: no config for {model_args.model_name_or_path} ({str(e).splitlines()[0]})")
        return
    prompt_len = getattr(script_args, "max_prompt_tokens", None)
    setup = hardware.setup_from_args(training_args, model_args, hardware.module_params(shape, modules), prompt_len)
    if on_cpu:
        setup = dataclasses.replace(setup, device="cpu")
    est = hardware.estimate(shape, setup)
    if est.total > capacity and setup.generation_batch:
        raise UserError(
            f"estimated peak memory {est.total / hardware.GIB:.1f} GiB exceeds the {card}'s "
            f"{capacity / hardware.GIB:.1f} GiB: lower generation_batch_size ({setup.generation_batch}), "
            f"max_completion_length ({setup.completion_len}) or per_device_train_batch_size "
            "(details: python -m cognitive.train.preflight --config <recipe>)"
        )
    if est.total > capacity:
        effective = training_args.per_device_train_batch_size * training_args.gradient_accumulation_steps
        rec = hardware.recommend(shape, setup, capacity, effective)
        advice = (
            f"set per_device_train_batch_size {rec['per_device_train_batch_size']}, gradient_accumulation_steps "
            f"{rec['gradient_accumulation_steps']}, max_length {rec['max_length']}"
            if rec["fits"]
            else "use a smaller base, load_in_4bit true, or a DeepSpeed offload config"
        )
        if on_cpu and not training_args.gradient_checkpointing:
            advice = "set gradient_checkpointing true (less than half the peak on a CPU), or " + advice
        raise UserError(
            f"estimated peak memory {est.total / hardware.GIB:.1f} GiB exceeds the {card}'s "
            f"{capacity / hardware.GIB:.1f} GiB: {advice} "
            "(details: python -m cognitive.train.preflight --config <recipe>)"
        )
    print(
        f"memory preflight: estimated peak {est.total / hardware.GIB:.1f} GiB "
        f"of {capacity / hardware.GIB:.1f} GiB ({card})"
    )


def host_memory_bytes() -> int | None:
    """What this machine's RAM can give a new process: MemAvailable of /proc/meminfo (None where there is none)."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def check_deepspeed_matches(ds: dict, training_args, model_args) -> None:
    """Non-"auto" DeepSpeed values must agree with the recipe (the Trainer fills "auto" ones from it)."""
    pairs = [
        ("train_micro_batch_size_per_gpu", training_args.per_device_train_batch_size, "per_device_train_batch_size"),
        ("gradient_accumulation_steps", training_args.gradient_accumulation_steps, "gradient_accumulation_steps"),
        ("gradient_clipping", training_args.max_grad_norm, "max_grad_norm"),
        ("bf16.enabled", bool(training_args.bf16), "bf16"),
        ("fp16.enabled", bool(training_args.fp16), "fp16"),
    ]
    for ds_key, recipe_value, recipe_key in pairs:
        value = ds
        for part in ds_key.split("."):
            value = value.get(part, "auto") if isinstance(value, dict) else "auto"
        if value != "auto" and value != recipe_value:
            raise UserError(
                f"{training_args.deepspeed}: {ds_key} is {value!r} but the recipe's {recipe_key} is {recipe_value!r}; "
                f'set it to "auto" or make them agree'
            )
    stage = ds.get("zero_optimization", {}).get("stage", 0)
    if stage == 3 and model_args.load_in_4bit and model_args.bnb_4bit_quant_storage != model_args.dtype:
        raise UserError(
            f"{training_args.deepspeed}: ZeRO-3 with a 4-bit base needs bnb_4bit_quant_storage equal to dtype "
            f"(got {model_args.bnb_4bit_quant_storage!r} and {model_args.dtype!r})"
        )


# Flags this parser does not know are the recipe's keys (overrides, as for recipes/sft.py and recipes/grpo.py).
EXTRA_FLAGS = "recipe"


def build_parser() -> ArgumentParser:
    parser = ArgumentParser(
        description="Estimate peak memory of a recipe (GPU memory, or RSS on a CPU) and recommend settings."
    )
    parser.add_argument("--config", required=True, help="recipe YAML (recipes/configs/*.yaml)")
    parser.add_argument("--gpu", default="3090ti", help=f"card: {', '.join(hardware.GPUS_GIB)}")
    parser.add_argument("--gib", type=float, help="card (or RAM) size in GiB (overrides --gpu / this machine's RAM)")
    parser.add_argument("--cpu", action="store_true", help="estimate the peak RSS of a CPU run (use_cpu recipes do)")
    return parser


@exit_on_user_error
def main(argv=None) -> None:
    parser = build_parser()
    args, overrides = parser.parse_known_args(argv)
    # A GPU recipe is parsed as on a GPU machine, minus the GPU-only switches TrainingArguments checks here;
    # a CPU recipe (use_cpu: true) as it is. A GRPO recipe (it names reward_funcs) is parsed as recipes/grpo.py does.
    parse = parser_for(args.config)
    script_args, training_args, model_args = parse(
        ["--config", args.config, "--bf16", "false", "--tf32", "false", *overrides]
    )
    on_cpu = args.cpu or bool(training_args.use_cpu)
    if training_args.use_cpu:
        script_args, training_args, model_args = parse(["--config", args.config, *overrides])
    shape = hardware.shape_for(model_args.model_name_or_path)
    modules = cognitive_modules(script_args)
    prompt_len = getattr(script_args, "max_prompt_tokens", None)
    setup = hardware.setup_from_args(training_args, model_args, hardware.module_params(shape, modules), prompt_len)
    if on_cpu:
        setup = dataclasses.replace(setup, device="cpu")
        capacity, where = int(args.gib * hardware.GIB) if args.gib else host_memory_bytes(), "RAM"
    else:
        capacity, where = (int(args.gib * hardware.GIB) if args.gib else hardware.card_bytes(args.gpu)), "card"
    est = hardware.estimate(shape, setup)
    effective = training_args.per_device_train_batch_size * training_args.gradient_accumulation_steps
    print(
        f"{model_args.model_name_or_path}: {shape.linear_params / 1e9:.2f}B linear + "
        f"{shape.other_params / 1e9:.2f}B other params; {asdict(setup)}"
    )
    print(est.table())
    if capacity:
        print(f"{where}: {capacity / hardware.GIB:.1f} GiB -> {'fits' if est.total <= capacity else 'DOES NOT FIT'}")
        if not setup.generation_batch:  # recommend() sizes SFT batches; a GRPO recipe gets the estimate alone
            print(f"recommended: {hardware.recommend(shape, setup, capacity, effective)}")


if __name__ == "__main__":
    main()
