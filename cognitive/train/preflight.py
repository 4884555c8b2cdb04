"""The checks of a training recipe that need no model: run by its resolution (cognitive.train.sft_config.resolve_sft,
cognitive.rl.grpo_config.resolve_grpo) before anything loads, so a bad run fails in seconds.

    check_run_arguments(script_args)                                          # what every recipe's arguments have
    modules = cognitive_modules(script_args)                                   # the cognitive_modules block parsed
    memory = check_training(script_args, training_args, model_args, modules)   # a UserError, or the estimate

The LoRA rank, the sequence length, the DeepSpeed config against the recipe, GPU-only settings on a machine without
a GPU, and the memory estimate (cognitive/model/memory.py) against the card, with the settings that would fit.
The estimate of a recipe alone, for any card, or of a CPU recipe's peak RSS: recipes/preflight.py.
"""

from __future__ import annotations

import dataclasses
import importlib.util
from dataclasses import dataclass
from pathlib import Path

from cognitive.atomic import check_replaceable, partial_path
from cognitive.errors import UserError
from cognitive.model import memory as hardware
from cognitive.model.base import EMULATED_BF16_SLOWDOWN
from cognitive.model.base import cpu_has_fast_bf16 as hardware_has_fast_bf16
from cognitive.train.args import RunArguments

DETAILS = "(details: python recipes/preflight.py --config <recipe>)"


@dataclass(frozen=True)
class MemoryCheck:
    """A recipe's memory estimate against a card (or the host's RAM)."""

    shape: hardware.Shape
    setup: hardware.Setup
    estimate: hardware.Estimate
    card: str  # the card's name, or "host RAM"
    capacity: int | None  # bytes; None: nothing to check against

    @property
    def fits(self) -> bool:
        return self.capacity is None or self.estimate.total <= self.capacity


def check_run_arguments(script_args: RunArguments) -> None:
    """The checks of what every training recipe's script arguments have (SFT and GRPO)."""
    trim = script_args.cpu_heap_trim_mb
    if type(trim) is not int or trim < 0:  # a bool is no number of MiB
        raise UserError(f"cpu_heap_trim_mb: {trim!r}; a number of MiB, or 0 (off)")


def cognitive_modules(script_args: RunArguments):
    """The recipe's cognitive_modules block parsed (a CognitiveModulesConfig; an unknown key or a bad value is a
    one-line UserError), or None when it is absent or every module is off."""
    from cognitive.model.inject import config_from_dict

    if script_args.cognitive_modules is None:
        return None
    modules = config_from_dict(script_args.cognitive_modules)
    return modules if modules.any_enabled else None


def run_dirs(training_args) -> tuple[Path, Path]:
    """(output_dir, its .partial): where the run ends up and where it trains; the current directory, or one that
    holds it, is refused (cognitive.atomic.check_replaceable says so)."""
    final = Path(training_args.output_dir)
    here = Path.cwd().resolve()
    if final.resolve() == here or final.resolve() in here.parents:
        check_replaceable(final, "run", overwrite=True)  # raises: the current directory
    return final, partial_path(final)


def check_training(script_args, training_args, model_args, modules=None) -> MemoryCheck | None:
    """Every check of a recipe's training settings that needs no model; returns its memory estimate (None when the
    base's shape is unknown offline, or nothing to check it against), after refusing one that does not fit."""
    import torch

    if model_args.use_peft and (model_args.lora_r is None or model_args.lora_r < 1):
        raise UserError(f"lora_r: {model_args.lora_r} is not a LoRA rank; use a positive integer (e.g. 16)")
    max_length = getattr(training_args, "max_length", getattr(training_args, "max_completion_length", None))
    if max_length is not None and max_length < 1:
        key = "max_length" if hasattr(training_args, "max_length") else "max_completion_length"
        raise UserError(f"{key}: {max_length} tokens leaves nothing to train on; use e.g. 1024")
    ds = hardware._deepspeed_config(training_args.deepspeed)
    if ds and training_args.use_cpu:  # under the deepspeed launcher a CPU recipe gets CPU_UNDER_DEEPSPEED (args.py)
        raise UserError(
            f"{training_args.deepspeed}: use_cpu: true trains without DeepSpeed (transformers ignores the config "
            "then); launch with deepspeed (it trains a CPU recipe under ZeRO) or leave --ds out"
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
        print(
            "note: this CPU has no native bf16 matmuls (AMX / AVX512-BF16): bf16 runs "
            f"~{EMULATED_BF16_SLOWDOWN}x slower than fp32 here"
        )
    check = memory_check(script_args, training_args, model_args, modules, on_cpu=on_cpu, gpu=script_args.gpu)
    if check is None or check.capacity is None:
        return check
    est, setup, gib = check.estimate, check.setup, hardware.GIB
    where = f"estimated peak memory {est.total / gib:.1f} GiB exceeds the {check.card}'s {check.capacity / gib:.1f} GiB"
    if not check.fits and setup.generation_batch:
        raise UserError(
            f"{where}: lower generation_batch_size ({setup.generation_batch}), max_completion_length "
            f"({setup.completion_len}) or per_device_train_batch_size {DETAILS}"
        )
    if not check.fits:
        effective = training_args.per_device_train_batch_size * training_args.gradient_accumulation_steps
        rec = hardware.recommend(check.shape, setup, check.capacity, effective)
        advice = (
            f"set per_device_train_batch_size {rec['per_device_train_batch_size']}, gradient_accumulation_steps "
            f"{rec['gradient_accumulation_steps']}, max_length {rec['max_length']}"
            if rec["fits"]
            else "use a smaller base, load_in_4bit true, or a DeepSpeed offload config"
        )
        if on_cpu and not training_args.gradient_checkpointing:
            advice = "set gradient_checkpointing true (less than half the peak on a CPU), or " + advice
        raise UserError(f"{where}: {advice} {DETAILS}")
    print(
        f"memory preflight: estimated peak {est.total / gib:.1f} GiB of {check.capacity / gib:.1f} GiB ({check.card})"
    )
    return check


def memory_check(
    script_args, training_args, model_args, modules=None, *, on_cpu: bool, gpu: str | None = None, gib=None
) -> MemoryCheck | None:
    """The recipe's memory estimate on a CPU (peak RSS, against the host's RAM) or a GPU (`gpu`, a card name; default
    the GPU present), against `gib` GiB when given; None when the base's shape cannot be read (an unknown hub id
    without hub access)."""
    import torch

    try:
        shape = hardware.shape_for(model_args.model_name_or_path)
    except OSError as e:
        print(f"memory preflight skipped: no config for {model_args.model_name_or_path} ({str(e).splitlines()[0]})")
        return None
    prompt_len = getattr(script_args, "max_prompt_tokens", None)
    setup = hardware.setup_from_args(training_args, model_args, hardware.module_params(shape, modules), prompt_len)
    if on_cpu:
        setup = dataclasses.replace(setup, device="cpu")
        card, capacity = "host RAM", host_memory_bytes()
    elif gpu:
        card, capacity = gpu, hardware.card_bytes(gpu)
    else:
        props = torch.cuda.get_device_properties(torch.cuda.current_device())
        card, capacity = props.name, props.total_memory
    if gib:
        capacity = int(gib * hardware.GIB)
    return MemoryCheck(shape, setup, hardware.estimate(shape, setup), card, capacity)


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
