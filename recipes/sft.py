"""Supervised fine-tuning (LoRA / QLoRA) of a base model on cognitive records with TRL's SFTTrainer.

Launch (any of these; the recipe YAML sets base, data, LoRA and training options, CLI flags override it):

    deepspeed recipes/sft.py --ds ds_configs/zero2_3090ti.json --config recipes/configs/cognitive_1.5b.yaml
    accelerate launch recipes/sft.py --config recipes/configs/demo_cpu.yaml
    python recipes/sft.py --config recipes/configs/demo_cpu.yaml --max_steps 10 --output_dir runs/try

Without --config the default recipe is recipes/configs/cognitive_1.5b.yaml (Qwen2.5-1.5B-Instruct, QLoRA,
needs a GPU and the model hub). The run ends in `output_dir` (adapter, resolved config, trainer log, curves); while
it trains it lives in `<output_dir>.partial`, and a rerun of the same command resumes from its latest checkpoint.
"""

import cognitive  # noqa: F401  (first: its OpenMP default is read when torch loads)

# isort: split
from accelerate import PartialState
from transformers import set_seed

from cognitive.errors import exit_on_user_error
from cognitive.train.args import parse_sft_args, resolve_arguments, sft_parser
from cognitive.train.preflight import preflight
from cognitive.train.run import start_run, train_and_finish
from cognitive.train.sft_data import load_sft_datasets
from cognitive.train.trainer import build_trainer, load_model_and_tokenizer


def main(script_args, training_args, model_args):
    set_seed(training_args.seed)
    is_main = PartialState().is_main_process
    resolved = resolve_arguments(script_args)  # the cognitive_modules block, aux labels, data files: parsed once
    preflight(script_args, training_args, model_args, resolved.modules)  # DeepSpeed config, GPU-only, memory

    # Data: validated records -> prompt/completion conversations (loss on the completion only).
    train_dataset, eval_dataset = load_sft_datasets(script_args, resolved)

    # Model: the base (4-bit when load_in_4bit) with the cognitive modules (when the recipe enables them).
    model, tokenizer = load_model_and_tokenizer(model_args, training_args, resolved.modules)

    # Run dir: <output_dir>.partial, locked; a rerun resumes only the same run (config and data checked).
    final_dir, resume = start_run(script_args, training_args, model_args, resolved.train_files, is_main)

    # TRL SFTTrainer + LoRA on the base's linear layers (+ the modules, trained fully, saved beside the adapter).
    trainer = build_trainer(
        model,
        tokenizer,
        training_args,
        model_args,
        train_dataset,
        eval_dataset,
        resolved.aux_labels,
        script_args.cpu_heap_trim_mb,
    )
    train_and_finish(trainer, resume, script_args, training_args, model_args, final_dir, eval_dataset is not None)
    return trainer


def build_parser():
    """The recipe's parser (the docs test checks documented flags against it)."""
    return sft_parser()


@exit_on_user_error
def cli(argv: list[str] | None = None):
    main(*parse_sft_args(argv))


if __name__ == "__main__":
    cli()
