"""The run directory of a training recipe: where it trains, resumes and ends up.

Run directory layout (`output_dir`, e.g. runs/demo):

    runs/demo.lock         held while a run trains into runs/demo (a second run on it is refused)
    runs/demo.partial/     while training (checkpoints live here; a rerun resumes from them)
    runs/demo/             after a clean finish (renamed atomically from .partial)
        .cognitive-slm.json  the marker: a run this project wrote (--overwrite replaces only such a dir, atomic.py)
        adapter_model.safetensors, adapter_config.json   the PEFT LoRA adapter (lm_eval `peft=runs/demo`)
        tokenizer files, chat_template.jinja
        run_config.yaml    the resolved config (script, training and model arguments): re-runnable with --config
        run_info.json      versions, the data's sha256, git commit, hardware, the settings changed on resuming
        log_history.json   the trainer log (loss, learning rate, ... per logging step)
        training_curves.png
        reward_curves.png  GRPO runs: reward per reward function, completion length and KL over the steps

A rerun of the same command resumes the .partial; with a larger max_steps it continues a finished run (start_run).
Finished runs are read here too (read_run, read_adapter_run, check_adapter_base, load_run_tokenizer): by GRPO's
init_from, the evaluation, the merge.
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
    check_replaceable,
    publish_dir,
    remove_output,
    write_marker,
    write_text,
    written_as,
)
from cognitive.errors import UserError
from cognitive.model.base import EMBEDDED_PREFIX, load_tokenizer, resolve_base, same_base
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
    "disable_tqdm",
    "run_name",
    "cpu_heap_trim_mb",  # returns freed memory, computes the same numbers (tests/integration/test_heap_trim_recipe.py)
}
# settings a resume (or the continuation of a finished run) may change, recorded in run_info.json with the step they
# apply from: how long it trains, and how often it logs, saves and evaluates (the Trainer recomputes these steps on
# resume: FrequenciesFromArgs)
EXTENDABLE_CHANGES = {
    "max_steps",
    "num_train_epochs",
    "logging_steps",
    "logging_strategy",
    "logging_first_step",
    "save_steps",
    "save_strategy",
    "save_total_limit",
    "eval_steps",
    "eval_strategy",
}


def data_sha256(data_files) -> str:
    digest = hashlib.sha256()
    for path in sorted(data_files):
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def write_run_info(run_dir: Path, data_path, data_files, data_sha: str, changes: list | None = None) -> dict:
    """Package versions, data (path, files, sha256: of the files, or of data made in memory: GRPO's generated
    prompts), git commit and hardware of a run, and the settings changed on resuming it (`changes`: each with the
    step it applied from): run_info.json in the run dir."""
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
        "data": {"path": data_path, "files": [str(p) for p in sorted(data_files)], "sha256": data_sha},
        "git_commit": commit.stdout.strip() or None,
        "hardware": {
            "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
            "platform": platform.platform(),
        },
        "changes": changes or [],
    }
    write_text(run_dir / RUN_INFO, json.dumps(info, indent=1))
    return info


# ----------------------------------------------------------------------------------------- run directory
def start_run(run, data_sha: str, data_files=(), is_main: bool = True) -> str | None:
    """Point training at the run's `.partial` dir; returns the checkpoint to resume from, or None.

    `run` is a recipe's resolved run (cognitive.train.sft_config.SFTRun, cognitive.rl.grpo_config.GRPORun): its
    `config` (run_config.yaml), `final_dir`, `partial_dir` and argument objects. The data is `data_files` with the
    digest `data_sha` (for data made in memory, GRPO's generated prompts, the digest alone).

    The main process locks the run (a second run on the same output_dir is refused) and checks the run dir, the one
    place that does (under the lock): a .partial with a checkpoint resumes when it is the same run (config up to
    RESUMABLE_CHANGES and EXTENDABLE_CHANGES, same data), else a one-line UserError names the difference; a finished
    run at output_dir is replaced only with --overwrite, or continued when the rerun trains it longer (a larger
    max_steps / num_train_epochs) from its last complete checkpoint: copied into the .partial, published over the
    old run at the end. It writes run_config.yaml and run_info.json once, before training starts.

    Also makes wandb (when `report_to` includes it) log offline into the run dir unless WANDB_MODE is set:
    no account needed; `wandb sync runs/<name>/wandb/offline-run-*` uploads later."""
    from accelerate import PartialState

    training = run.training
    final, partial = Path(run.final_dir), Path(run.partial_dir)
    if is_main:
        if os.path.lexists(partial) and written_as(partial) != "run":
            remove_output(partial, "run")  # an empty dir goes; one this project did not write is refused, untouched
        lock_run(final)
        try:
            prepare_partial(run, data_sha, data_files)
        except BaseException:
            unlock_run(final)  # a refused resume leaves no lock file behind
            raise
    PartialState().wait_for_everyone()
    training.output_dir = str(partial)
    os.environ.setdefault("WANDB_MODE", "offline")
    os.environ.setdefault("WANDB_DIR", str(partial))
    return training.resume_from_checkpoint or resume_checkpoint(partial, is_main=False)


def prepare_partial(run, data_sha: str, data_files) -> None:
    """Start afresh (--overwrite, or nothing to resume: the old .partial is removed), resume the .partial's run, or
    continue the finished run (copied into the .partial); then mark the .partial as a run and write run_config.yaml
    and run_info.json."""
    final, partial = Path(run.final_dir), Path(run.partial_dir)
    overwrite = run.script.overwrite
    exists = UserError(
        f"run dir {final} already exists; pass --overwrite true to train it afresh, a larger --max_steps to continue "
        "it, or choose another --output_dir"
    )
    # a finished run of ours may be continued (check_same_run); anything else in the way needs --overwrite, and even
    # then must be a run of ours
    check_replaceable(final, "run", overwrite=overwrite or written_as(final) == "run", exists_error=exists)
    changes = []
    if overwrite:
        remove_output(partial, "run")
    elif partial.exists() and resume_checkpoint(partial) is not None:
        changes = check_same_run(partial, run.config, data_sha)
    else:
        remove_output(partial, "run")  # nothing to resume: start afresh, or continue the finished run
        if final.exists():
            changes = check_same_run(final, run.config, data_sha, finished=True, exists_error=exists)
            shutil.copytree(final, partial, symlinks=True)  # the finished run stays whole until the new one publishes
    partial.mkdir(parents=True, exist_ok=True)
    write_marker(partial, "run")  # published with the run: --overwrite may replace it later
    write_text(partial / RUN_CONFIG, yaml.safe_dump(run.config, sort_keys=False))
    write_run_info(partial, getattr(run.script, "dataset_path", None), data_files, data_sha, changes)


def check_same_run(
    run_dir: Path, config: dict, data_sha: str, finished: bool = False, exists_error: UserError | None = None
) -> list:
    """A rerun resumes a .partial's checkpoint (or continues a finished run's) only when it is the same run: the same
    config up to RESUMABLE_CHANGES and EXTENDABLE_CHANGES, the same data. Returns the changes recorded so far in its
    run_info.json plus this rerun's EXTENDABLE_CHANGES (with the step of the checkpoint they apply from)."""
    saved_config = yaml.safe_load((run_dir / RUN_CONFIG).read_text()) if (run_dir / RUN_CONFIG).exists() else None
    saved_info = json.loads((run_dir / RUN_INFO).read_text()) if (run_dir / RUN_INFO).exists() else None
    name = str(run_dir).removesuffix(PARTIAL_SUFFIX)
    hint = f"pass --overwrite true to start {Path(name).name} afresh"
    if saved_config is None or saved_info is None:
        what = "is a finished run" if finished else "holds checkpoints"
        raise UserError(f"{run_dir} {what} but has no {RUN_CONFIG} / {RUN_INFO} to compare with; {hint}")
    now = yaml.safe_load(yaml.safe_dump(config, sort_keys=False))  # as it reads back from the file
    extended = {
        k: [saved_config.get(k), now.get(k)] for k in sorted(EXTENDABLE_CHANGES) if now.get(k) != saved_config.get(k)
    }
    if finished and not {"max_steps", "num_train_epochs"} & set(extended):
        raise exists_error  # the same run again, or another one: nothing to continue
    keep = RESUMABLE_CHANGES | EXTENDABLE_CHANGES
    changed = sorted(k for k in set(now) | set(saved_config) if k not in keep and now.get(k) != saved_config.get(k))
    if changed:
        what = ", ".join(f"{k}: {saved_config.get(k)!r} -> {now.get(k)!r}" for k in changed[:4])
        more = f" (+{len(changed) - 4} more)" if len(changed) > 4 else ""
        raise UserError(f"{run_dir} is a run with other settings ({what}{more}); resuming it would mix them; {hint}")
    if saved_info.get("data", {}).get("sha256") != data_sha:
        raise UserError(
            f"{run_dir} was trained on other data (sha256 {saved_info.get('data', {}).get('sha256')}, "
            f"now {data_sha}); resuming it would mix them; {hint}"
        )
    checkpoint = resume_checkpoint(run_dir, is_main=not finished)  # a finished run is only read
    if finished and checkpoint is None:
        raise UserError(
            f"run dir {run_dir} is finished and holds no complete checkpoint to continue from (save_strategy steps "
            "keeps one); pass --overwrite true to train it afresh, or choose another --output_dir"
        )
    step = json.loads((Path(checkpoint) / "trainer_state.json").read_text()).get("global_step", 0) if checkpoint else 0
    max_steps = now.get("max_steps") or 0
    if max_steps > 0 and step >= max_steps and "max_steps" in extended:
        raise UserError(
            f"max_steps: {max_steps}, but {run_dir} has trained {step} steps already; give a larger --max_steps"
        )
    changes = list(saved_info.get("changes", []))
    if extended:
        changes.append({"from_step": step, **extended})
        what = ", ".join(f"{k} {a} -> {b}" for k, (a, b) in extended.items())
        print(f"{'Continuing the finished run' if finished else 'Resuming'} {run_dir} from step {step}: {what}")
    return changes


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


def train_and_finish(trainer, run, resume, evaluate=False) -> Path:
    """A recipe's last part: train (resuming from `resume` when given), evaluate when asked, finish the run dir
    (finish_run) and say where it is. Returns the final run dir."""
    if resume:
        print(f"Resuming from {resume}")
    trainer.train(resume_from_checkpoint=resume)
    if evaluate:
        trainer.evaluate()
    final_dir = finish_run(trainer, run)
    if trainer.accelerator.is_main_process:
        print(f"Run saved to {final_dir}")
    return final_dir


def finish_run(trainer, run) -> Path:
    """Save adapter, log and plots into the partial dir (run_config.yaml is there since start_run), then rename it
    to the final run dir (replacing a finished run: one --overwrite or a continuation replaces, start_run checked)."""
    from cognitive.plots import plot_reward_curves, plot_training_curves

    partial, final_dir = Path(run.partial_dir), Path(run.final_dir)
    trainer.save_model(str(partial))
    if trainer.accelerator.is_main_process:
        history = trainer.state.log_history
        write_text(partial / "log_history.json", json.dumps(history, indent=1))
        plot_training_curves(history, partial / "training_curves.png")
        plot_reward_curves(history, partial / "reward_curves.png")  # GRPO runs: reward per function, length, KL
        publish_dir(partial, final_dir)
        unlock_run(final_dir)
    trainer.accelerator.wait_for_everyone()
    return final_dir


def run_callbacks() -> list:
    """The callbacks a recipe's trainer needs for its run dir (SFT and GRPO)."""
    return [CheckpointMarker(), FrequenciesFromArgs()]


class FrequenciesFromArgs(TrainerCallback):
    """On a resume the Trainer takes its logging / saving / evaluation steps from the checkpoint's trainer_state.json;
    this puts the rerun's (EXTENDABLE_CHANGES: recorded in run_info.json) in their place."""

    def on_train_begin(self, args, state, control, **kwargs):
        state.compute_steps(args, state.max_steps)
        return control


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


def read_adapter_run(run_dir: str | Path) -> FinishedRun:
    """A finished run with a LoRA adapter (what a release merges); a one-line UserError otherwise."""
    run = read_run(run_dir)
    if not run.has_adapter:
        raise UserError(f"{run.run_dir} has no adapter ({PEFT_CONFIG}); is it a finished training run?")
    return run


def check_adapter_base(run: FinishedRun) -> None:
    """The adapter must have been trained on the base run_config.yaml names (PEFT records it in adapter_config.json).

    A Llama adapter loads without complaint into a Qwen2 of the same shapes, so this compares names: equal after
    resolving (embedded names, local paths) passes; a recorded local base that no longer exists cannot be
    compared and passes with a warning (the module and shape checks still apply)."""
    recorded = json.loads((run.run_dir / PEFT_CONFIG).read_text()).get("base_model_name_or_path")
    if not recorded:
        return
    if same_base(recorded, resolve_base(run.base)):
        return
    if run.base.startswith(EMBEDDED_PREFIX) and Path(recorded).parts[-2:] == (
        "embedded",
        run.base.removeprefix(EMBEDDED_PREFIX),
    ):
        return  # the same embedded base, converted into another cache folder
    if recorded.startswith((".", "/", "~")) and not Path(recorded).expanduser().exists():
        print(
            f"warning: the adapter's recorded base {recorded} no longer exists; merging into '{run.base}' unverified",
            file=sys.stderr,
        )
        return
    raise UserError(
        f"the adapter in {run.run_dir} was trained on '{recorded}' ({PEFT_CONFIG}: base_model_name_or_path) but "
        f"run_config.yaml names '{run.base}'; merge it into the base it was trained on (if '{run.base}' is a copy "
        f"of it, set base_model_name_or_path in {PEFT_CONFIG} to it)"
    )


def load_run_tokenizer(run: FinishedRun):
    """The tokenizer the run trained with (saved in the run dir, chat template included), else the base's."""
    if (run.run_dir / "tokenizer_config.json").exists():
        from transformers import AutoTokenizer

        return AutoTokenizer.from_pretrained(run.run_dir)
    return load_tokenizer(run.base)
