"""Everything `recipes/sft.py` does, as functions: load the base, build the trainer, finish the run.

Run directory layout (`output_dir`, e.g. runs/demo):

    runs/demo.partial/     while training (checkpoints live here; a rerun resumes from them)
    runs/demo/             after a clean finish (renamed atomically from .partial)
        adapter_model.safetensors, adapter_config.json   the PEFT LoRA adapter (lm_eval `peft=runs/demo`)
        tokenizer files, chat_template.jinja
        run_config.yaml    the resolved config (script, training and model arguments): re-runnable with --config
        log_history.json   the trainer log (loss, learning rate, ... per logging step)
        training_curves.png
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import os
import shutil
from pathlib import Path

import yaml

from cognitive.base import load_base, load_tokenizer
from cognitive.errors import UserError
from cognitive.outputs import PARTIAL_SUFFIX


def attn_implementation(requested: str | None, packing: bool = False) -> str:
    """flash_attention_2 when installed on a GPU; for packed batches on a GPU without it, flex_attention (keeps
    the packed sequences apart with a block mask, not a dense one); otherwise PyTorch SDPA."""
    import torch

    if requested:
        return requested
    if torch.cuda.is_available():
        if importlib.util.find_spec("flash_attn") is not None:
            return "flash_attention_2"
        if packing:
            return "flex_attention"
    return "sdpa"


def load_model_and_tokenizer(model_args, training_args, script_args=None):
    """The base for training: resolved (hub / local / embedded), optionally 4-bit (QLoRA), with the cognitive
    modules injected when the recipe has a `cognitive_modules` block with a module enabled."""
    import torch
    from accelerate import PartialState
    from transformers.integrations import is_deepspeed_zero3_enabled
    from trl import get_quantization_config

    tokenizer = load_tokenizer(model_args.model_name_or_path)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    dtype = model_args.dtype if model_args.dtype in (None, "auto") else getattr(torch, model_args.dtype)
    quantization_config = get_quantization_config(model_args)
    model = load_base(
        model_args.model_name_or_path,
        revision=model_args.model_revision,
        dtype=dtype,
        attn_implementation=attn_implementation(model_args.attn_implementation, training_args.packing),
        quantization_config=quantization_config,
        # a quantized base must be placed at load time: on this rank's GPU, or the CPU; except under ZeRO-3,
        # which partitions the weights itself while loading and refuses a device_map
        device_map=(
            {"": PartialState().local_process_index if torch.cuda.is_available() else "cpu"}
            if quantization_config is not None and not is_deepspeed_zero3_enabled()
            else None
        ),
        trust_remote_code=training_args.trust_remote_code,
    )
    modules = cognitive_modules_config(script_args)
    if modules is not None:
        from cognitive.inject import cognitive_parameter_counts, format_parameter_counts, inject_cognitive_modules

        inject_cognitive_modules(model, modules)
        print(format_parameter_counts(cognitive_parameter_counts(model)))
    return model, tokenizer


def cognitive_modules_config(script_args):
    """The recipe's cognitive_modules block parsed (unknown keys are a UserError), or None when no module is on."""
    if script_args is None or script_args.cognitive_modules is None:
        return None
    from cognitive.inject import config_from_dict

    config = config_from_dict(script_args.cognitive_modules)
    return config if config.any_enabled else None


def lora_config(model_args, model=None):
    """LoRA from ModelConfig (TRL's get_peft_config); defaults to all linear layers of the base, and with
    cognitive modules injected, to the base's linear layers only (the modules train fully, without LoRA)."""
    from trl import get_peft_config

    if not model_args.use_peft:
        return None
    if model_args.lora_target_modules in (None, "all-linear", ["all-linear"]):
        model_args.lora_target_modules = "all-linear"
        if model is not None and getattr(model, "cognitive_config", None) is not None:
            from cognitive.inject import lora_target_modules

            model_args.lora_target_modules = lora_target_modules(model)
    return get_peft_config(model_args)


def build_trainer(model, tokenizer, script_args, training_args, model_args, train_dataset, eval_dataset):
    """SFTTrainer with LoRA (PEFT); with cognitive modules, the subclass that trains and saves them too (and, when
    an aux loss is weighted, turns the datasets' aux_spans into token labels and batches them: aux_labels.py)."""
    from trl import SFTTrainer

    from cognitive.aux_labels import AuxLabelSpec, check_padded_batches
    from cognitive.cognitive_trainer import CognitiveSFTTrainer

    from transformers.trainer_utils import IntervalStrategy

    if eval_dataset is None and training_args.eval_strategy != IntervalStrategy.NO:
        print("No validation data: evaluation during training is off (eval_strategy: no).")
        training_args.eval_strategy = IntervalStrategy.NO
    has_modules = getattr(model, "cognitive_config", None) is not None
    if has_modules:  # before TRL wraps the model: aux labels cannot follow packed / padding-free rows
        check_padded_batches(AuxLabelSpec.from_config(model.cognitive_config), training_args.packing,
                             training_args.padding_free)
    trainer_class = CognitiveSFTTrainer if has_modules else SFTTrainer
    return trainer_class(
        model=model,
        args=training_args,
        train_dataset=train_dataset,
        eval_dataset=eval_dataset,
        processing_class=tokenizer,
        peft_config=lora_config(model_args, model),
    )


# ------------------------------------------------------------------------------------------------ preflight
def preflight(script_args, training_args, model_args) -> None:
    """Checks that need no model, so a bad run fails in seconds: a finished run dir in the way, the DeepSpeed
    config against the recipe, GPU-only settings on a machine without one, the memory estimate against the card."""
    import torch

    from cognitive import hardware

    if Path(training_args.output_dir).exists() and not script_args.overwrite:
        raise UserError(
            f"run dir {training_args.output_dir} already exists; pass --overwrite true or choose another --output_dir"
        )
    cognitive_modules_config(script_args)  # an unknown cognitive_modules key fails here, before loading
    ds = hardware._deepspeed_config(training_args.deepspeed)
    if ds:
        check_deepspeed_matches(ds, training_args, model_args)
    if model_args.attn_implementation == "flash_attention_2":
        if not torch.cuda.is_available():
            raise UserError("attn_implementation: flash_attention_2 needs a GPU; leave it unset (SDPA) on this machine")
        if importlib.util.find_spec("flash_attn") is None:
            raise UserError("attn_implementation: flash_attention_2 needs: pip install flash-attn --no-build-isolation")

    if script_args.gpu:
        card, capacity = script_args.gpu, hardware.card_bytes(script_args.gpu)
    elif torch.cuda.is_available():
        props = torch.cuda.get_device_properties(torch.cuda.current_device())
        card, capacity = props.name, props.total_memory
    else:
        return  # no card to check against
    try:
        shape = hardware.shape_for(model_args.model_name_or_path)
    except OSError as e:  # an unknown hub id without hub access: nothing to estimate from
        print(f"memory preflight skipped: no config for {model_args.model_name_or_path} ({str(e).splitlines()[0]})")
        return
    modules = hardware.module_params(shape, script_args.cognitive_modules)  # the recipe's cognitive modules
    setup = hardware.setup_from_args(training_args, model_args, modules)
    est = hardware.estimate(shape, setup)
    if est.total > capacity:
        effective = training_args.per_device_train_batch_size * training_args.gradient_accumulation_steps
        rec = hardware.recommend(shape, setup, capacity, effective)
        advice = (
            f"set per_device_train_batch_size {rec['per_device_train_batch_size']}, gradient_accumulation_steps "
            f"{rec['gradient_accumulation_steps']}, max_length {rec['max_length']}"
            if rec["fits"]
            else "use a smaller base, load_in_4bit true, or a DeepSpeed offload config"
        )
        raise UserError(
            f"estimated peak memory {est.total / hardware.GIB:.1f} GiB exceeds the {card}'s "
            f"{capacity / hardware.GIB:.1f} GiB: {advice} (details: python -m cognitive.hardware --config <recipe>)"
        )
    print(f"memory preflight: estimated peak {est.total / hardware.GIB:.1f} GiB of {capacity / hardware.GIB:.1f} GiB ({card})")


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


def write_run_info(run_dir: Path, script_args, data_files: list[Path]) -> dict:
    """Package versions, data hash, git commit and hardware of a run: run_info.json in the run dir."""
    import hashlib
    import platform
    import subprocess
    from importlib.metadata import PackageNotFoundError, version

    import torch

    versions = {}
    for package in ("torch", "transformers", "trl", "peft", "accelerate", "datasets", "deepspeed", "bitsandbytes"):
        try:
            versions[package] = version(package)
        except PackageNotFoundError:
            versions[package] = None
    digest = hashlib.sha256()
    for path in sorted(data_files):
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
    commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, cwd=Path(__file__).parent)
    info = {
        "versions": versions,
        "data": {"path": script_args.dataset_path, "files": [str(p) for p in sorted(data_files)], "sha256": digest.hexdigest()},
        "git_commit": commit.stdout.strip() or None,
        "hardware": {
            "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
            "platform": platform.platform(),
        },
    }
    _write_text(run_dir / "run_info.json", json.dumps(info, indent=1))
    return info


# ----------------------------------------------------------------------------------------- run directory
def start_run_dir(training_args, is_main: bool = True) -> Path:
    """Point training at `<output_dir>.partial` (created here); returns the final run dir.

    Also makes wandb (when `report_to` includes it) log offline into the run dir unless WANDB_MODE is set:
    no account needed; `wandb sync runs/<name>/wandb/offline-run-*` uploads later."""
    final = Path(training_args.output_dir)
    partial = final.with_name(final.name + PARTIAL_SUFFIX)
    if is_main:
        partial.mkdir(parents=True, exist_ok=True)
    training_args.output_dir = str(partial)
    os.environ.setdefault("WANDB_MODE", "offline")
    os.environ.setdefault("WANDB_DIR", str(partial))
    return final


def resume_checkpoint(run_dir: str | Path, is_main: bool = True) -> str | None:
    """The newest complete checkpoint in `run_dir`, or None.

    The Trainer writes a checkpoint's trainer_state.json last, so a checkpoint directory without it was cut off
    mid-save (e.g. by SIGKILL): it is deleted (by the main process) and never resumed from. Together with the
    `.partial` run dir this makes checkpoints all-or-nothing.
    """
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        return None
    complete = []
    for path in run_dir.glob("checkpoint-*"):
        if not path.name.removeprefix("checkpoint-").isdigit():
            continue
        if (path / "trainer_state.json").exists():
            complete.append(path)
        elif is_main:
            print(f"Removing incomplete checkpoint {path}")
            shutil.rmtree(path)
    return str(max(complete, key=lambda p: int(p.name.removeprefix("checkpoint-")))) if complete else None


def resolved_config(script_args, training_args, model_args, final_dir: Path) -> dict:
    """All three argument groups as one flat mapping that `--config` accepts again."""
    config = {}
    config.update(dataclasses.asdict(script_args))
    config.update(dataclasses.asdict(model_args))
    training = training_args.to_dict()
    training["output_dir"] = str(final_dir)
    config.update({k: v for k, v in training.items() if not k.startswith("_")})
    return config


def finish_run(trainer, script_args, training_args, model_args, final_dir: Path) -> Path:
    """Save adapter, config, log and plots into the partial dir, then rename it to the final run dir."""
    from cognitive.plots import plot_training_curves

    partial = Path(training_args.output_dir)
    trainer.save_model(str(partial))
    if trainer.accelerator.is_main_process:
        config = resolved_config(script_args, training_args, model_args, final_dir)
        _write_text(partial / "run_config.yaml", yaml.safe_dump(config, sort_keys=False))
        history = trainer.state.log_history
        _write_text(partial / "log_history.json", json.dumps(history, indent=1))
        plot_training_curves(history, partial / "training_curves.png")
        if final_dir.exists():  # only reachable with --overwrite
            shutil.rmtree(final_dir)
        partial.rename(final_dir)
    trainer.accelerator.wait_for_everyone()
    return final_dir


def _write_text(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    tmp.replace(path)
