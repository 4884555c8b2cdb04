"""recipes/sft.py's arguments resolved once: `resolve_sft` turns the parsed (ScriptArguments, SFTConfig, ModelConfig)
into one frozen `SFTRun` holding them and everything derived from them, after every check of them (the one place
that checks them; the run dir is checked against them by cognitive.train.run.start_run). Nothing is loaded.

    script_args, training_args, model_args = parse_sft_args(argv)      # cognitive/train/args.py: YAML + CLI
    run = resolve_sft(script_args, training_args, model_args)          # here: checks, modules, data, config
    train, evaluation = load_sft_datasets(run)                          # cognitive/train/sft_data.py
    model, tokenizer = load_model_and_tokenizer(run.model, run.training, run.modules)
    resume = start_run(run, run.data_sha256, run.train_files)          # cognitive/train/run.py
    trainer = build_trainer(model, tokenizer, run.training, run.model, train, evaluation, run.aux_labels, ...)
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cognitive.errors import UserError
from cognitive.train.args import ScriptArguments
from cognitive.train.aux_labels import AuxLabelSpec
from cognitive.train.preflight import MemoryCheck, check_run_arguments, check_training, cognitive_modules, run_dirs
from cognitive.train.run import data_sha256, resolved_config
from cognitive.train.sft_data import check_styles, find_split_files


@dataclass(frozen=True)
class SFTRun:
    """One SFT run, resolved: the three argument objects and what they resolve to."""

    script: ScriptArguments
    training: Any  # trl.SFTConfig
    model: Any  # trl.ModelConfig
    modules: Any  # the cognitive_modules block parsed (a CognitiveModulesConfig), None when no module is on
    aux_labels: AuxLabelSpec | None  # the auxiliary labels its weighted aux losses need, None when none is
    prompt_styles: dict[str, float]  # {style: weight}, checked
    train_files: tuple[Path, ...]  # the train*.jsonl files of dataset_path
    eval_files: tuple[Path, ...]  # validation records (eval_dataset_path, else validation*.jsonl of dataset_path)
    data_sha256: str  # of train_files, recorded in run_info.json: a resume must train on the same data
    config: dict  # the resolved config: what run_config.yaml holds (re-runnable with --config)
    final_dir: Path  # output_dir: where the finished run ends up
    partial_dir: Path  # <output_dir>.partial: where it trains
    memory: MemoryCheck | None  # the memory estimate against the card (or RAM), None when none could be made


def check_shares(script_args: ScriptArguments) -> None:
    for key in ("arithmetic_drills", "practice_problems"):
        share = getattr(script_args, key)
        if isinstance(share, bool) or not isinstance(share, int | float) or not 0 <= share < 1:
            raise UserError(f"{key}: {share!r}; a share of the training rows, at least 0 and below 1")
    if script_args.arithmetic_drills + script_args.practice_problems >= 1:
        raise UserError(
            f"arithmetic_drills + practice_problems: {script_args.arithmetic_drills} + "
            f"{script_args.practice_problems}; together a share of the training rows below 1 (the records need some)"
        )


def resolve_data(script_args: ScriptArguments) -> tuple[tuple[Path, ...], tuple[Path, ...]]:
    """(train files, eval files) of the recipe's dataset_path / eval_dataset_path."""
    train_files = find_split_files(script_args.dataset_path, "train")
    if not train_files:
        raise UserError(f"dataset '{script_args.dataset_path}' has no train*.jsonl files")
    eval_path = script_args.eval_dataset_path
    if eval_path is None and Path(script_args.dataset_path).is_dir():
        eval_path = script_args.dataset_path
    eval_files = find_split_files(eval_path, "validation") if eval_path is not None else []
    if script_args.eval_dataset_path is not None and not eval_files:
        raise UserError(f"eval dataset '{eval_path}' has no validation*.jsonl files")
    return tuple(train_files), tuple(eval_files)


def resolve_sft(script_args, training_args, model_args, estimate_only: bool = False) -> SFTRun:
    """Check the SFT recipe's arguments (all of them, here) and resolve them; nothing is loaded. `estimate_only`
    (recipes/preflight.py): no data is looked for and a recipe that does not fit is reported, not refused."""
    from transformers.trainer_utils import IntervalStrategy

    check_run_arguments(script_args)
    check_shares(script_args)
    modules = cognitive_modules(script_args)
    prompt_styles = check_styles(script_args.prompt_styles, script_args.response_style)
    aux_labels = AuxLabelSpec.from_config(modules)
    if aux_labels is not None and (aux_labels.states or aux_labels.actions) and script_args.response_style != "guide":
        raise UserError(
            f"response_style: {script_args.response_style} has no planning lines to place state / action labels on; "
            "use response_style guide with the state_tracking or planning_module aux losses"
        )
    if estimate_only:
        train_files, eval_files, sha = (), (), ""
        memory = None
    else:
        train_files, eval_files = resolve_data(script_args)
        sha = data_sha256(train_files)
        memory = check_training(script_args, training_args, model_args, modules)
    if not eval_files and training_args.eval_strategy != IntervalStrategy.NO:
        if not estimate_only:
            print("No validation data: evaluation during training is off (eval_strategy: no).")
        training_args.eval_strategy = IntervalStrategy.NO
    final, partial = run_dirs(training_args)
    config = resolved_config(script_args, training_args, model_args, final)
    return SFTRun(
        script_args,
        training_args,
        model_args,
        modules,
        aux_labels,
        prompt_styles,
        train_files,
        eval_files,
        sha,
        config,
        final,
        partial,
        memory,
    )
