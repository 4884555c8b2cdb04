"""Reinforcement learning on the checkers: GRPO (TRL's GRPOTrainer) with verifiable rewards from the task registry.

Launch (any of these; the recipe YAML sets base, prompts, rewards and GRPO options, CLI flags override it):

    deepspeed recipes/grpo.py --ds ds_configs/zero2_3090ti.json --config recipes/configs/grpo_1.5b.yaml
    accelerate launch recipes/grpo.py --config recipes/configs/grpo_135m_cpu.yaml --init_from runs/cognitive-135m
    python recipes/grpo.py --config recipes/configs/grpo_135m_cpu.yaml --max_steps 10 --output_dir runs/try

Without --config the default recipe is recipes/configs/grpo_1.5b.yaml. `--init_from runs/<sft run>` continues a
finished SFT run (its LoRA adapter and cognitive modules); without it GRPO trains a fresh LoRA adapter on the base.
Prompts are generated from the generators (seeds disjoint from SFT and eval data), or read from `--dataset_path`;
rewards are cognitive/rl/rewards.py's, weighted by `reward_weights`. The run dir is an SFT run's (adapter,
modules, run_config.yaml, run_info.json, log_history.json, reward_curves.png; `.partial` while it trains, resumed
by rerunning the command) and recipes/merge.py merges it the same way.
"""

import cognitive  # noqa: F401  (first: its OpenMP default is read when torch loads)

# isort: split
from accelerate import PartialState
from datasets import Dataset
from transformers import set_seed

from cognitive.errors import exit_on_user_error
from cognitive.rl.grpo import build_grpo_trainer, load_policy
from cognitive.rl.grpo_config import resolve_grpo
from cognitive.rl.prompts import generate_prompts, prompt_length_check, record_prompts, rows_sha256
from cognitive.train.args import grpo_parser, parse_grpo_args
from cognitive.train.run import start_run, train_and_finish


def main(script_args, training_args, model_args):
    # Resolve: every check of the arguments (rewards, init_from, modules vs beta / vLLM, DeepSpeed, memory, ...) and
    # all they imply (the init_from run, rewards, prompt mix, run_config.yaml): cognitive/rl/grpo_config.py.
    run = resolve_grpo(script_args, training_args, model_args)
    set_seed(run.training.seed)

    # Model: the base (4-bit when load_in_4bit), or the init_from SFT run: base + cognitive modules + LoRA adapter.
    model, tokenizer = load_policy(run)

    # Prompts: generator problems in the data config's mix (RL seeds, not eval documents), or records.
    script = run.script
    fits = prompt_length_check(tokenizer, script.max_prompt_tokens)
    if script.dataset_path:
        rows = record_prompts(script.dataset_path, run.prompt_styles, script.num_prompts)
    else:
        rows = generate_prompts(run.data_config, script.num_prompts, run.prompt_styles, fits)

    # Run dir: <output_dir>.partial, locked; a rerun resumes the same run (config and prompts checked).
    resume = start_run(run, rows_sha256(rows), (), PartialState().is_main_process)

    # TRL GRPOTrainer: generate num_generations completions per prompt, score them with the rewards, update LoRA
    # (+ the modules) towards the better ones of each group; then the run dir is finished (adapter, log, curves).
    trainer = build_grpo_trainer(run, model, tokenizer, Dataset.from_list(rows))
    train_and_finish(trainer, run, resume)
    return trainer


def build_parser():
    """The recipe's parser (the docs test checks documented flags against it)."""
    return grpo_parser()


@exit_on_user_error
def cli(argv: list[str] | None = None):
    main(*parse_grpo_args(argv))


if __name__ == "__main__":
    cli()
