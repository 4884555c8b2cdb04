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
import shutil
from pathlib import Path

import yaml

from cognitive.base import load_base, load_tokenizer
from cognitive.errors import UserError

PARTIAL_SUFFIX = ".partial"


def attn_implementation(requested: str | None) -> str:
    """flash_attention_2 when it is installed and a GPU is present, else PyTorch SDPA."""
    import torch

    if requested:
        return requested
    if torch.cuda.is_available() and importlib.util.find_spec("flash_attn") is not None:
        return "flash_attention_2"
    return "sdpa"


def load_model_and_tokenizer(model_args, training_args):
    """The base for training: resolved (hub / local / embedded), optionally 4-bit (QLoRA)."""
    import torch
    from accelerate import PartialState
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
        attn_implementation=attn_implementation(model_args.attn_implementation),
        quantization_config=quantization_config,
        # a quantized base must be placed at load time: on this rank's GPU, or the CPU
        device_map=(
            {"": PartialState().local_process_index if torch.cuda.is_available() else "cpu"}
            if quantization_config is not None
            else None
        ),
        trust_remote_code=training_args.trust_remote_code,
    )
    return model, tokenizer


def lora_config(model_args):
    """LoRA from ModelConfig (TRL's get_peft_config); defaults to all linear layers of the base."""
    from trl import get_peft_config

    if not model_args.use_peft:
        return None
    if model_args.lora_target_modules is None:
        model_args.lora_target_modules = "all-linear"
    return get_peft_config(model_args)


# ----------------------------------------------------------------------------------------- run directory
def start_run_dir(training_args, overwrite: bool, is_main: bool = True) -> Path:
    """Point training at `<output_dir>.partial`; refuse to clobber a finished run without --overwrite."""
    final = Path(training_args.output_dir)
    if final.exists() and not overwrite:
        raise UserError(f"run dir {final} already exists; pass --overwrite true or choose another --output_dir")
    partial = final.with_name(final.name + PARTIAL_SUFFIX)
    if is_main:
        partial.mkdir(parents=True, exist_ok=True)
    training_args.output_dir = str(partial)
    return final


def last_checkpoint(run_dir: str | Path) -> str | None:
    from transformers.trainer_utils import get_last_checkpoint

    run_dir = Path(run_dir)
    return get_last_checkpoint(str(run_dir)) if run_dir.is_dir() else None


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
