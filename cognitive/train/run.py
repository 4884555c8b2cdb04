"""The run directory of a training recipe: where it trains, resumes and ends up.

Run directory layout (`output_dir`, e.g. runs/demo):

    runs/demo.lock         held while a run trains into runs/demo (a second run on it is refused)
    runs/demo.partial/     while training (checkpoints live here; a rerun resumes from them)
    runs/demo/             after a clean finish (renamed atomically from .partial)
        .cognitive-slm.json  the marker: a run this project wrote (--overwrite replaces only such a dir, atomic.py)
        adapter_model.safetensors, adapter_config.json   the PEFT LoRA adapter (lm_eval `peft=runs/demo`)
        tokenizer files, chat_template.jinja
        run_config.yaml    the resolved config (script, training and model arguments): re-runnable with --config
        log_history.json   the trainer log (loss, learning rate, ... per logging step)
        training_curves.png
        reward_curves.png  GRPO runs: reward per reward function, completion length and KL over the steps
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

import yaml
from transformers import TrainerCallback

from cognitive import PROJECT_ROOT
from cognitive.atomic import (
    PARTIAL_SUFFIX,
    partial_path,
    publish_dir,
    remove_output,
    write_marker,
    write_text,
    written_as,
)
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
RUN_INFO = "run_info.json"
CHECKPOINT_MARKER = "checkpoint_complete.json"
# settings a rerun may change and still resume: they do not touch what the checkpoints hold
RESUMABLE_CHANGES = {
    "overwrite",
    "resume_from_checkpoint",
    "gpu",
    "report_to",
    "logging_steps",
    "disable_tqdm",
    "run_name",
    "cpu_heap_trim_mb",  # returns freed memory, computes the same numbers (tests/integration/test_heap_trim_recipe.py)
}


def data_sha256(data_files) -> str:
    digest = hashlib.sha256()
    for path in sorted(data_files):
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def write_run_info(run_dir: Path, script_args, data_files, data_sha: str | None = None) -> dict:
    """Package versions, data hash (of the data files, or `data_sha` for data made in memory: GRPO's generated
    prompts), git commit and hardware of a run: run_info.json in the run dir."""
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
    commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, cwd=PROJECT_ROOT)
    info = {
        "versions": versions,
        "data": {
            "path": getattr(script_args, "dataset_path", None),
            "files": [str(p) for p in sorted(data_files)],
            "sha256": data_sha or data_sha256(data_files),
        },
        "git_commit": commit.stdout.strip() or None,
        "hardware": {
            "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
            "platform": platform.platform(),
        },
    }
    write_text(run_dir / RUN_INFO, json.dumps(info, indent=1))
    return info


# ----------------------------------------------------------------------------------------- run directory
def start_run(
    script_args, training_args, model_args, data_files, is_main: bool = True, data_sha: str | None = None
) -> tuple[Path, str | None]:
    """Point training at `<output_dir>.partial`; returns (the final run dir, the checkpoint to resume from or None).
    The data is `data_files`, or for data made in memory (GRPO's generated prompts) the digest `data_sha`.

    The main process locks the run (a second run on the same output_dir is refused) and either starts afresh
    (--overwrite, or a .partial with nothing to resume) or checks that the .partial's run is this one: the same
    resolved config (up to RESUMABLE_CHANGES) and the same data (sha256); a difference is a one-line UserError
    naming it. It writes run_config.yaml and run_info.json before training starts.

    Also makes wandb (when `report_to` includes it) log offline into the run dir unless WANDB_MODE is set:
    no account needed; `wandb sync runs/<name>/wandb/offline-run-*` uploads later."""
    from accelerate import PartialState

    final = Path(training_args.output_dir)
    partial = partial_path(final)
    if is_main:
        if os.path.lexists(partial) and written_as(partial) != "run":
            remove_output(partial, "run")  # an empty dir goes; one this project did not write is refused, untouched
        lock_run(final)
        try:
            prepare_partial(partial, script_args, training_args, model_args, final, data_files, data_sha)
        except BaseException:
            unlock_run(final)  # a refused resume leaves no lock file behind
            raise
    PartialState().wait_for_everyone()
    training_args.output_dir = str(partial)
    os.environ.setdefault("WANDB_MODE", "offline")
    os.environ.setdefault("WANDB_DIR", str(partial))
    resume = training_args.resume_from_checkpoint or resume_checkpoint(partial, is_main=False)
    return final, resume


def prepare_partial(partial: Path, script_args, training_args, model_args, final: Path, data_files, data_sha) -> None:
    """Start afresh (--overwrite, or nothing to resume: the old .partial is removed) or check that the .partial's run
    is this one; then mark it as a run and write run_config.yaml and run_info.json."""
    config = resolved_config(script_args, training_args, model_args, final)
    if script_args.overwrite:
        remove_output(partial, "run")
    elif partial.exists():
        if resume_checkpoint(partial) is None:
            remove_output(partial, "run")  # nothing to resume: start afresh
        else:
            check_same_run(partial, config, data_sha or data_sha256(data_files))
    partial.mkdir(parents=True, exist_ok=True)
    write_marker(partial, "run")  # published with the run: --overwrite may replace it later
    write_text(partial / RUN_CONFIG, yaml.safe_dump(config, sort_keys=False))
    write_run_info(partial, script_args, data_files, data_sha)


def check_same_run(partial: Path, config: dict, data_sha: str) -> None:
    """A rerun resumes the .partial's checkpoint only when it is the same run: same config, same data."""
    saved_config = yaml.safe_load((partial / RUN_CONFIG).read_text()) if (partial / RUN_CONFIG).exists() else None
    saved_info = json.loads((partial / RUN_INFO).read_text()) if (partial / RUN_INFO).exists() else None
    hint = f"pass --overwrite true to start {partial.name.removesuffix(PARTIAL_SUFFIX)} afresh"
    if saved_config is None or saved_info is None:
        raise UserError(f"{partial} holds checkpoints but no {RUN_CONFIG} / {RUN_INFO} to compare with; {hint}")
    now = yaml.safe_load(yaml.safe_dump(config, sort_keys=False))  # as it reads back from the file
    changed = sorted(
        k for k in set(now) | set(saved_config) if k not in RESUMABLE_CHANGES and now.get(k) != saved_config.get(k)
    )
    if changed:
        what = ", ".join(f"{k}: {saved_config.get(k)!r} -> {now.get(k)!r}" for k in changed[:4])
        more = f" (+{len(changed) - 4} more)" if len(changed) > 4 else ""
        raise UserError(f"{partial} is a run with other settings ({what}{more}); resuming it would mix them; {hint}")
    if saved_info.get("data", {}).get("sha256") != data_sha:
        raise UserError(
            f"{partial} was trained on other data (sha256 {saved_info.get('data', {}).get('sha256')}, "
            f"now {data_sha}); resuming it would mix them; {hint}"
        )


_LOCKS: dict[Path, object] = {}  # open lock files, held for the life of the process
LOCK_TEXT = "cognitive-slm run lock: held while a run trains into "


def lock_run(final: Path) -> None:
    """Take `<output_dir>.lock` (an flock held until the process ends); a second run on it is a UserError. The file
    says what it is; one this project did not write (another program's, a user's file of that name) is refused and
    left alone. A lock file left by a killed run (an empty one, or one with LOCK_TEXT) is taken over."""
    import fcntl

    path = final.with_name(final.name + ".lock")
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.is_symlink() or (path.exists() and not path.is_file()):
        raise UserError(f"{path} is in the way of the run's lock file and not one; move it away")
    if path.exists() and path.stat().st_size and not _read_start(path).startswith(LOCK_TEXT):
        raise UserError(f"{path} exists and is no lock file of this project; refusing to use it: move it away")
    handle = open(path, "a")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        handle.close()
        raise UserError(
            f"another run is training into {final} (it holds {path}); wait for it or choose another --output_dir"
        ) from None
    handle.truncate(0)
    handle.write(f"{LOCK_TEXT}{final} (pid {os.getpid()})\n")
    handle.flush()
    _LOCKS[final] = handle


def _read_start(path: Path) -> str:
    with open(path, "rb") as f:
        return f.read(len(LOCK_TEXT)).decode("utf-8", "replace")


def unlock_run(final: Path) -> None:
    """Release and remove the lock file: ours (lock_run wrote it)."""
    handle = _LOCKS.pop(Path(final), None)
    if handle is not None:
        Path(handle.name).unlink(missing_ok=True)
        handle.close()


# ----------------------------------------------------------------------------------------- checkpoints
class CheckpointMarker(TrainerCallback):
    """Writes CHECKPOINT_MARKER into each checkpoint after the Trainer has saved all of it (on_save runs last):
    a checkpoint without it was cut off mid-save."""

    def on_save(self, args, state, control, **kwargs):
        if state.is_world_process_zero:
            checkpoint = Path(args.output_dir) / f"checkpoint-{state.global_step}"
            if checkpoint.is_dir():
                write_text(checkpoint / CHECKPOINT_MARKER, json.dumps({"global_step": state.global_step}) + "\n")
        return control


def checkpoint_problem(path: Path) -> str | None:
    """Why a checkpoint cannot be resumed from (None: it can): cut off mid-save, a state that does not parse,
    weights that do not open."""
    if not (path / CHECKPOINT_MARKER).exists():
        return "cut off before it was complete"
    try:
        json.loads((path / "trainer_state.json").read_text())
    except (OSError, ValueError):
        return "its trainer_state.json does not parse"
    from safetensors import safe_open

    for weights in sorted(path.rglob("*.safetensors")):
        try:
            with safe_open(str(weights), "pt") as f:
                f.keys()
        except Exception:  # a truncated or corrupt file: safetensors raises its own error types
            return f"{weights.relative_to(path)} does not open"
    return None


def resume_checkpoint(run_dir: str | Path, is_main: bool = True) -> str | None:
    """The newest checkpoint in `run_dir` that can be resumed from, or None. Newer ones that cannot (cut off by a
    SIGKILL, corrupted) are reported and, by the main process, deleted: together with the `.partial` run dir this
    makes checkpoints all-or-nothing."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        return None
    numbered = [p for p in run_dir.glob("checkpoint-*") if p.name.removeprefix("checkpoint-").isdigit()]
    for path in sorted(numbered, key=lambda p: int(p.name.removeprefix("checkpoint-")), reverse=True):
        problem = checkpoint_problem(path)
        if problem is None:
            return str(path)
        if is_main:
            print(
                f"warning: {path.name} cannot be resumed from ({problem}); removed, trying the one before it",
                file=sys.stderr,
            )
            shutil.rmtree(path)
    return None


def resolved_config(script_args, training_args, model_args, final_dir: Path) -> dict:
    """All three argument groups as one flat mapping that `--config` accepts again."""
    config = {}
    config.update(dataclasses.asdict(script_args))
    config.update(dataclasses.asdict(model_args))
    training = training_args.to_dict()
    training["output_dir"] = str(final_dir)
    config.update({k: v for k, v in training.items() if not k.startswith("_")})
    return config


def train_and_finish(trainer, resume, script_args, training_args, model_args, final_dir: Path, evaluate=False):
    """A recipe's last part: train (resuming from `resume` when given), evaluate when asked, finish the run dir
    (finish_run) and say where it is. Returns the final run dir."""
    if resume:
        print(f"Resuming from {resume}")
    trainer.train(resume_from_checkpoint=resume)
    if evaluate:
        trainer.evaluate()
    final_dir = finish_run(trainer, script_args, training_args, model_args, final_dir)
    if trainer.accelerator.is_main_process:
        print(f"Run saved to {final_dir}")
    return final_dir


def finish_run(trainer, script_args, training_args, model_args, final_dir: Path) -> Path:
    """Save adapter, config, log and plots into the partial dir, then rename it to the final run dir."""
    from cognitive.plots import plot_reward_curves, plot_training_curves

    partial = Path(training_args.output_dir)
    trainer.save_model(str(partial))
    if trainer.accelerator.is_main_process:
        config = resolved_config(script_args, training_args, model_args, final_dir)
        write_text(partial / RUN_CONFIG, yaml.safe_dump(config, sort_keys=False))
        history = trainer.state.log_history
        write_text(partial / "log_history.json", json.dumps(history, indent=1))
        plot_training_curves(history, partial / "training_curves.png")
        plot_reward_curves(history, partial / "reward_curves.png")  # GRPO runs: reward per function, length, KL
        publish_dir(partial, final_dir)  # replaces a finished run only with --overwrite (preflight refuses otherwise)
        unlock_run(final_dir)
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
