"""The GRPO side of training (recipes/grpo.py): where the policy starts and TRL's GRPOTrainer (the recipe's
arguments are checked and resolved in cognitive/rl/grpo_config.py).

    run = resolve_grpo(script_args, training_args, model_args)   # cognitive/rl/grpo_config.py: no model loaded
    model, tokenizer = load_policy(run)
    trainer = build_grpo_trainer(run, model, tokenizer, prompts)

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

import time

from trl import GRPOTrainer

from cognitive.errors import UserError
from cognitive.model.inject import load_cognitive_adapter, mark_cognitive_trainable
from cognitive.model.modules import unwrap_model
from cognitive.train.run import check_adapter_base, load_run_tokenizer, run_callbacks
from cognitive.train.trainer import CognitiveModulesMixin, attach_heap_trimmer, load_model_and_tokenizer, lora_config


def load_policy(run):
    """The model GRPO trains and its tokenizer, for a resolved run (cognitive.rl.grpo_config.GRPORun): the bare base
    (+ fresh modules when the recipe adds them), or the init_from run's base + modules + LoRA adapter (a trainable
    PeftModel)."""
    model, tokenizer = load_model_and_tokenizer(run.model, run.training, run.modules)
    init_run = run.init_run
    if init_run is None:
        return model, tokenizer
    from peft import PeftModel

    check_adapter_base(init_run)
    tokenizer = load_run_tokenizer(init_run)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    if init_run.has_modules:
        load_cognitive_adapter(model, init_run.run_dir)
    try:
        model = PeftModel.from_pretrained(model, str(init_run.run_dir), is_trainable=True)
    except (RuntimeError, ValueError, KeyError) as e:
        raise UserError(
            f"init_from: the adapter in {init_run.run_dir} does not fit: {str(e).splitlines()[0]}"
        ) from None
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


def build_grpo_trainer(run, model, tokenizer, train_dataset):
    """TRL's GRPOTrainer on the prompts with the run's rewards; a fresh LoRA adapter (ModelConfig) for the bare base,
    the init_from run's adapter otherwise; CognitiveGRPOTrainer when the model has cognitive modules. On a CPU, the
    recipe's cpu_heap_trim_mb as in SFT (cognitive.train.trainer.attach_heap_trimmer)."""
    kwargs = dict(
        model=model,
        reward_funcs=run.rewards,
        args=run.training,
        train_dataset=train_dataset,
        processing_class=tokenizer,
        peft_config=None if run.init_run is not None else lora_config(run.model, model),
    )
    if getattr(unwrap_model(model), "cognitive_config", None) is None:
        trainer = TimedGRPOTrainer(**kwargs)
    else:
        trainer = CognitiveGRPOTrainer(**kwargs)
    for callback in run_callbacks():  # each checkpoint marked complete, last; a resume's new frequencies (run.py)
        trainer.add_callback(callback)
    attach_heap_trimmer(trainer, run.training, run.script.cpu_heap_trim_mb)
    return trainer
