"""recipes/grpo.py's arguments resolved once: `resolve_grpo` turns the parsed (GRPOScriptArguments, GRPOConfig,
ModelConfig) into one frozen `GRPORun` holding them and everything derived from them (the init_from run, the
rewards, the prompt styles and data config, the modules, the resolved config), after every check of them (the one
place that checks them; the run dir is checked against them by cognitive.train.run.start_run). Nothing is loaded.

    script_args, training_args, model_args = parse_grpo_args(argv)     # cognitive/train/args.py: YAML + CLI
    run = resolve_grpo(script_args, training_args, model_args)         # here
    model, tokenizer = load_policy(run)                                # cognitive/rl/grpo.py
    rows = generate_prompts(run.data_config, ...) / record_prompts(...)  # cognitive/rl/prompts.py
    resume = start_run(run, rows_sha256(rows))                         # cognitive/train/run.py
    trainer = build_grpo_trainer(run, model, tokenizer, prompts)
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cognitive.atomic import partial_path
from cognitive.errors import UserError
from cognitive.model.base import same_base
from cognitive.rl.rewards import reward_functions
from cognitive.train.args import GRPOScriptArguments
from cognitive.train.preflight import MemoryCheck, check_run_arguments, check_training, cognitive_modules, run_dirs
from cognitive.train.run import FinishedRun, read_run, resolved_config
from cognitive.train.sft_data import check_styles


@dataclass(frozen=True)
class GRPORun:
    """One GRPO run, resolved: the three argument objects and what they resolve to."""

    script: GRPOScriptArguments
    training: Any  # trl.GRPOConfig
    model: Any  # trl.ModelConfig (model_name_or_path: the init_from run's base when the recipe leaves it out)
    init_run: FinishedRun | None  # the SFT run it continues, None from the bare base
    modules: Any  # the cognitive_modules config of a bare-base run that adds fresh ones, else None
    modules_config: Any  # the cognitive_modules config the policy will have (fresh, or the init_from run's), or None
    rewards: list  # the reward functions, in reward_funcs order
    prompt_styles: dict[str, float]
    data_config: Any  # the DatasetConfiguration of generated prompts (None with dataset_path)
    config: dict  # the resolved config: what run_config.yaml holds (re-runnable with --config)
    final_dir: Path  # output_dir: where the finished run ends up
    partial_dir: Path  # <output_dir>.partial: where it trains
    memory: MemoryCheck | None  # the memory estimate against the card (or RAM), None when none could be made


def run_modules(run: FinishedRun):
    """The cognitive_modules config saved with a finished run, None when it has none."""
    if not run.has_modules:
        return None
    from cognitive.model.inject import COGNITIVE_CONFIG, config_from_dict

    meta = json.loads((run.run_dir / COGNITIVE_CONFIG).read_text())
    return config_from_dict(meta.get("cognitive_modules"))


def check_init_from(init_from: str, model_args) -> FinishedRun:
    """The finished SFT run to continue; a one-line UserError for a run in progress, anything else that is not a
    finished run, or a run trained on another base than the recipe's model_name_or_path."""
    path = Path(init_from)
    if not path.exists() and partial_path(path).exists():
        raise UserError(
            f"init_from: {path} has not finished (only {partial_path(path)} exists: still training or interrupted); "
            "rerun its SFT command to finish it"
        )
    try:
        run = read_run(path)
    except UserError as e:
        raise UserError(f"init_from: {e}") from None
    if not run.has_adapter:
        raise UserError(f"init_from: {path} has no LoRA adapter (adapter_config.json); GRPO continues an SFT adapter")
    if model_args.model_name_or_path and not same_base(run.base, model_args.model_name_or_path):
        raise UserError(
            f"init_from: {path} was trained on '{run.base}' but this recipe's model_name_or_path is "
            f"'{model_args.model_name_or_path}'; pass --model_name_or_path {run.base}"
        )
    model_args.model_name_or_path = run.base  # a recipe may leave the base to the run
    return run


def prompt_mix(script_args) -> dict:
    """The data-config overrides of the recipe's prompt keys: `task_types` and `difficulties`, each an equal-share
    mix in place of the data config's."""
    from cognitive import tasks
    from cognitive.data.schema import DifficultyLevel

    overrides = {}
    for key, field, names in (
        ("task_types", "task_distribution", [t.name for t in tasks.TASK_TYPES]),
        ("difficulties", "difficulty_distribution", [d.value for d in DifficultyLevel]),
    ):
        value = getattr(script_args, key)
        if value is None:
            continue
        chosen = list(dict.fromkeys(value))
        unknown = [v for v in chosen if v not in names]
        if unknown or not chosen:
            raise UserError(f"{key}: {unknown or chosen}; choose from {', '.join(names)}")
        if script_args.dataset_path:
            raise UserError(f"{key}: applies to generated prompts; records from dataset_path keep their own")
        overrides[field] = dict.fromkeys(chosen, 1 / len(chosen))
    return overrides


def resolve_grpo(script_args, training_args, model_args, estimate_only: bool = False) -> GRPORun:
    """Check the GRPO recipe's arguments (all of them, here: rewards and weights, init_from, modules vs beta / vLLM,
    styles, the prompt mix, the training settings and memory) and resolve them; nothing is loaded. `estimate_only`
    (recipes/preflight.py): a recipe that does not fit is reported, not refused."""
    from cognitive.data.build import load_config

    check_run_arguments(script_args)
    rewards = reward_functions(script_args.reward_funcs, training_args.reward_weights)
    init_run = check_init_from(script_args.init_from, model_args) if script_args.init_from else None
    modules = cognitive_modules(script_args)
    if init_run is not None and script_args.cognitive_modules is not None:
        raise UserError(
            f"cognitive_modules: the modules of a run that continues {init_run.run_dir} are that run's; drop the block"
        )
    if not model_args.model_name_or_path:
        raise UserError("model_name_or_path: not set (and no init_from run to take the base from)")
    modules_config = run_modules(init_run) if init_run is not None else modules
    if modules_config is not None and training_args.beta > 0:
        raise UserError(
            f"beta: {training_args.beta} needs a frozen reference model, and the cognitive modules have none (they "
            "train in place); use beta 0 (TRL's default) with modules"
        )
    if modules_config is not None and training_args.use_vllm:
        raise UserError("use_vllm: vLLM cannot run the cognitive modules; generate with transformers (use_vllm false)")
    if init_run is None and not model_args.use_peft:
        raise UserError("use_peft: false would train every base weight; this recipe trains LoRA (use_peft true)")
    if script_args.num_prompts < 1:
        raise UserError(f"num_prompts: {script_args.num_prompts}; generate at least one prompt")
    styles = check_styles(script_args.prompt_styles, "guide")
    mix = prompt_mix(script_args)
    data_config = None if script_args.dataset_path else load_config(script_args.data_config, **mix)
    memory = None if estimate_only else check_training(script_args, training_args, model_args, modules_config)
    final, partial = run_dirs(training_args)
    config = resolved_config(script_args, training_args, model_args, final)
    return GRPORun(
        script_args,
        training_args,
        model_args,
        init_run,
        modules,
        modules_config,
        rewards,
        styles,
        data_config,
        config,
        final,
        partial,
        memory,
    )
