"""The run directory of a training recipe: where it trains, resumes and ends up.

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
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import yaml

from cognitive import PROJECT_ROOT
from cognitive.atomic import partial_path, publish_dir, write_text
from cognitive.errors import UserError
from cognitive.model.inject import COGNITIVE_CONFIG, COGNITIVE_WEIGHTS

# PEFT's file names (peft.utils.CONFIG_NAME, SAFETENSORS_WEIGHTS_NAME, WEIGHTS_NAME), spelled out so that reading
# a run does not import peft
PEFT_CONFIG, PEFT_WEIGHTS, PEFT_PICKLED_WEIGHTS = (
    "adapter_config.json",
    "adapter_model.safetensors",
    "adapter_model.bin",
)
RUN_CONFIG = "run_config.yaml"


def write_run_info(run_dir: Path, script_args, data_files) -> dict:
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
    commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, cwd=PROJECT_ROOT)
    info = {
        "versions": versions,
        "data": {
            "path": script_args.dataset_path,
            "files": [str(p) for p in sorted(data_files)],
            "sha256": digest.hexdigest(),
        },
        "git_commit": commit.stdout.strip() or None,
        "hardware": {
            "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
            "platform": platform.platform(),
        },
    }
    write_text(run_dir / "run_info.json", json.dumps(info, indent=1))
    return info


# ----------------------------------------------------------------------------------------- run directory
def start_run_dir(training_args, is_main: bool = True) -> Path:
    """Point training at `<output_dir>.partial` (created here); returns the final run dir.

    Also makes wandb (when `report_to` includes it) log offline into the run dir unless WANDB_MODE is set:
    no account needed; `wandb sync runs/<name>/wandb/offline-run-*` uploads later."""
    final = Path(training_args.output_dir)
    partial = partial_path(final)
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
        write_text(partial / RUN_CONFIG, yaml.safe_dump(config, sort_keys=False))
        history = trainer.state.log_history
        write_text(partial / "log_history.json", json.dumps(history, indent=1))
        plot_training_curves(history, partial / "training_curves.png")
        publish_dir(partial, final_dir)  # replaces a finished run only with --overwrite (preflight refuses otherwise)
    trainer.accelerator.wait_for_everyone()
    return final_dir


# ------------------------------------------------------------------------------------------------ a finished run
@dataclass
class FinishedRun:
    run_dir: Path
    base: str  # the base name as the run was configured (hub id, local dir or embedded:...)
    config: dict  # run_config.yaml
    has_adapter: bool  # a PEFT LoRA adapter (adapter_model.safetensors + adapter_config.json)
    has_modules: bool  # cognitive_adapter.safetensors + cognitive_config.json


def read_run(run_dir: str | Path) -> FinishedRun:
    """What a finished run dir holds; a one-line UserError for anything that is not one. A pickled adapter
    (adapter_model.bin) is refused, never read."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise UserError(f"run dir {run_dir} does not exist")
    has_adapter = (run_dir / PEFT_CONFIG).exists()
    if has_adapter and not (run_dir / PEFT_WEIGHTS).exists():
        pickled = (run_dir / PEFT_PICKLED_WEIGHTS).exists()
        raise UserError(
            f"{run_dir} has no {PEFT_WEIGHTS}"
            + (f" (only a pickled {PEFT_PICKLED_WEIGHTS}, which is never loaded)" if pickled else "")
        )
    modules_files = [(run_dir / name).exists() for name in (COGNITIVE_WEIGHTS, COGNITIVE_CONFIG)]
    if any(modules_files) and not all(modules_files):
        raise UserError(f"{run_dir}: cognitive modules need both {COGNITIVE_WEIGHTS} and {COGNITIVE_CONFIG}")
    if not has_adapter and not all(modules_files):
        raise UserError(
            f"{run_dir} has no adapter ({PEFT_CONFIG}) and no cognitive modules; is it a finished training run?"
        )
    config_file = run_dir / RUN_CONFIG
    if not config_file.exists():
        raise UserError(f"{config_file} is missing; cannot tell which base the run was trained on")
    config = yaml.safe_load(config_file.read_text()) or {}
    if not config.get("model_name_or_path"):
        raise UserError(f"{config_file} has no model_name_or_path")
    return FinishedRun(run_dir, config["model_name_or_path"], config, has_adapter, all(modules_files))
