"""The GRPO side of training (recipes/grpo.py): where the policy starts, TRL's GRPOTrainer, and its input checks.

    resolved = resolve_grpo(script_args, training_args, model_args)      # no model loaded: fails in seconds
    model, tokenizer = load_policy(model_args, training_args, resolved)
    trainer = build_grpo_trainer(model, tokenizer, training_args, model_args, prompts, resolved)

The policy is either the bare base, which GRPOTrainer wraps with a fresh LoRA adapter (ModelConfig's lora_* keys),
or a finished SFT run (`init_from`): its base, its cognitive modules (cognitive_adapter.safetensors) and its LoRA
adapter, loaded trainable, so GRPO continues exactly the model SFT produced (its LoRA settings come from the run's
adapter_config.json; ModelConfig's lora_* keys do not apply). The cognitive modules are no PEFT adapter: as in SFT
(cognitive.train.trainer.CognitiveModulesMixin) they train fully beside LoRA and are saved in every checkpoint.

Generation runs through transformers' generate (TRL's default), which runs the modules; vLLM cannot, so
`use_vllm: true` is refused with modules and available without them. A KL penalty (`beta > 0`) needs a frozen
reference: with LoRA, TRL computes it with the adapter disabled (a fresh adapter) or with a frozen copy of the
run's adapter ("ref"); the modules have no such copy, so `beta > 0` with modules is refused too.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

from trl import GRPOTrainer

from cognitive.atomic import partial_path
from cognitive.errors import UserError
from cognitive.model.base import same_base
from cognitive.model.inject import load_cognitive_adapter, mark_cognitive_trainable
from cognitive.model.modules import unwrap_model
from cognitive.rl.rewards import reward_functions
from cognitive.train.args import cognitive_modules
from cognitive.train.run import CheckpointMarker, FinishedRun, read_run
from cognitive.train.sft_data import check_styles
from cognitive.train.trainer import CognitiveModulesMixin, attach_heap_trimmer, load_model_and_tokenizer, lora_config


@dataclass(frozen=True)
class ResolvedGRPO:
    """What a GRPO recipe's arguments resolve to, computed once before anything loads."""

    init_run: FinishedRun | None  # the SFT run it continues, None from the bare base
    modules: object | None  # the cognitive_modules config of a bare-base run that adds fresh ones
    rewards: list  # the reward functions, in reward_funcs order
    prompt_styles: dict[str, float]
    data_config: object | None  # the DatasetConfiguration of generated prompts (None with dataset_path)

    @property
    def modules_config(self):
        """The cognitive_modules config the policy will have (fresh, or the init_from run's), None without."""
        if self.init_run is not None and self.init_run.has_modules:
            from cognitive.model.inject import COGNITIVE_CONFIG, config_from_dict

            meta = json.loads((self.init_run.run_dir / COGNITIVE_CONFIG).read_text())
            return config_from_dict(meta.get("cognitive_modules"))
        return self.modules


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


def resolve_grpo(script_args, training_args, model_args) -> ResolvedGRPO:
    """Check the recipe's GRPO-specific inputs (rewards and weights, init_from, modules vs beta / vLLM, styles, the
    data config) and resolve them; nothing is loaded."""
    from cognitive.data.build import load_config

    rewards = reward_functions(script_args.reward_funcs, training_args.reward_weights)
    run = check_init_from(script_args.init_from, model_args) if script_args.init_from else None
    modules = cognitive_modules(script_args)
    if run is not None and script_args.cognitive_modules is not None:
        raise UserError(
            f"cognitive_modules: the modules of a run that continues {run.run_dir} are that run's; drop the block"
        )
    if not model_args.model_name_or_path:
        raise UserError("model_name_or_path: not set (and no init_from run to take the base from)")
    resolved_modules = modules is not None or (run is not None and run.has_modules)
    if resolved_modules and training_args.beta > 0:
        raise UserError(
            f"beta: {training_args.beta} needs a frozen reference model, and the cognitive modules have none (they "
            "train in place); use beta 0 (TRL's default) with modules"
        )
    if resolved_modules and training_args.use_vllm:
        raise UserError("use_vllm: vLLM cannot run the cognitive modules; generate with transformers (use_vllm false)")
    if run is None and not model_args.use_peft:
        raise UserError("use_peft: false would train every base weight; this recipe trains LoRA (use_peft true)")
    if script_args.num_prompts < 1:
        raise UserError(f"num_prompts: {script_args.num_prompts}; generate at least one prompt")
    styles = check_styles(script_args.prompt_styles, "guide")
    mix = prompt_mix(script_args)
    data_config = None if script_args.dataset_path else load_config(script_args.data_config, **mix)
    return ResolvedGRPO(run, modules, rewards, styles, data_config)


def load_policy(model_args, training_args, resolved: ResolvedGRPO):
    """The model GRPO trains and its tokenizer: the bare base (+ fresh modules when the recipe adds them), or the
    init_from run's base + modules + LoRA adapter (a trainable PeftModel)."""
    model, tokenizer = load_model_and_tokenizer(model_args, training_args, resolved.modules)
    run = resolved.init_run
    if run is None:
        return model, tokenizer
    from peft import PeftModel

    from cognitive.release.merge import check_adapter_base, load_run_tokenizer

    check_adapter_base(run)
    tokenizer = load_run_tokenizer(run)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    if run.has_modules:
        load_cognitive_adapter(model, run.run_dir)
    try:
        model = PeftModel.from_pretrained(model, str(run.run_dir), is_trainable=True)
    except (RuntimeError, ValueError, KeyError) as e:
        raise UserError(f"init_from: the adapter in {run.run_dir} does not fit: {str(e).splitlines()[0]}") from None
    return model, tokenizer


class TimedGRPOTrainer(GRPOTrainer):
    """GRPOTrainer that also logs `generation_time`: seconds spent generating the completions of a step (TRL's
    `step_time` includes it), so generation_time / step_time is the generation share of the step time."""

    def _generate(self, prompts):
        start = time.perf_counter()
        try:
            return super()._generate(prompts)
        finally:
            mode = "train" if self.model.training else "eval"
            self._metrics[mode]["generation_time"].append(time.perf_counter() - start)


class CognitiveGRPOTrainer(CognitiveModulesMixin, TimedGRPOTrainer):
    """GRPOTrainer for a model with cognitive modules: they train beside LoRA and are saved / resumed as in SFT."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        mark_cognitive_trainable(self.model)
        self.cognitive_config = unwrap_model(self.model).cognitive_config


def build_grpo_trainer(
    model, tokenizer, training_args, model_args, train_dataset, resolved: ResolvedGRPO, cpu_heap_trim_mb=0
):
    """TRL's GRPOTrainer on the prompts with the recipe's rewards; a fresh LoRA adapter (ModelConfig) for the bare
    base, the run's adapter for init_from; CognitiveGRPOTrainer when the model has cognitive modules. On a CPU,
    `cpu_heap_trim_mb` as in SFT (cognitive.train.trainer.attach_heap_trimmer)."""
    kwargs = dict(
        model=model,
        reward_funcs=resolved.rewards,
        args=training_args,
        train_dataset=train_dataset,
        processing_class=tokenizer,
        peft_config=None if resolved.init_run is not None else lora_config(model_args, model),
    )
    if getattr(unwrap_model(model), "cognitive_config", None) is None:
        trainer = TimedGRPOTrainer(**kwargs)
    else:
        trainer = CognitiveGRPOTrainer(**kwargs)
    trainer.add_callback(CheckpointMarker())  # marks each checkpoint complete, last (cognitive/train/run.py)
    attach_heap_trimmer(trainer, training_args, cpu_heap_trim_mb)
    return trainer
