"""Supervised fine-tuning (LoRA / QLoRA) of a base model on cognitive records with TRL's SFTTrainer.

Launch (any of these; the recipe YAML sets base, data, LoRA and training options, CLI flags override it):

    deepspeed recipes/sft.py --ds ds_configs/zero2_3090ti.json --config recipes/configs/cognitive_1.5b.yaml
    accelerate launch recipes/sft.py --config recipes/configs/demo_cpu.yaml
    python recipes/sft.py --config recipes/configs/demo_cpu.yaml --max_steps 10 --output_dir runs/try

Without --config the default recipe is recipes/configs/cognitive_1.5b.yaml (Qwen2.5-1.5B-Instruct, QLoRA,
needs a GPU and the model hub). The run ends in `output_dir` (adapter, resolved config, trainer log, curves); while
it trains it lives in `<output_dir>.partial`, and a rerun of the same command resumes from its latest checkpoint; the
same command with a larger --max_steps continues a finished run (docs/training.md).
"""

import cognitive  # noqa: F401  (first: its OpenMP default is read when torch loads)

# isort: split
from accelerate import PartialState
from transformers import set_seed

from cognitive.errors import exit_on_user_error
from cognitive.train.args import parse_sft_args, sft_parser
from cognitive.train.run import start_run, train_and_finish
from cognitive.train.sft_config import resolve_sft
from cognitive.train.sft_data import load_sft_datasets
from cognitive.train.trainer import build_trainer, load_model_and_tokenizer


def main(script_args, training_args, model_args):
    # Resolve: every check of the arguments (DeepSpeed config, GPU-only settings, memory, ...) and all they imply
    # (modules, aux labels, styles, data files and their sha256, run_config.yaml): cognitive/train/sft_config.py.
    run = resolve_sft(script_args, training_args, model_args)
    set_seed(run.training.seed)

    # Data: validated records -> prompt/completion conversations (loss on the completion only).
    train_dataset, eval_dataset = load_sft_datasets(run)

    # Model: the base (4-bit when load_in_4bit) with the cognitive modules (when the recipe enables them).
    model, tokenizer = load_model_and_tokenizer(run.model, run.training, run.modules)

    # Run dir: <output_dir>.partial, locked; a rerun resumes the same run, or continues a finished one for longer.
    resume = start_run(run, run.data_sha256, run.train_files, PartialState().is_main_process)

    # TRL SFTTrainer + LoRA on the base's linear layers (+ the modules, trained fully, saved beside the adapter).
    trainer = build_trainer(
        model,
        tokenizer,
        run.training,
        run.model,
        train_dataset,
        eval_dataset,
        run.aux_labels,
        run.script.cpu_heap_trim_mb,
    )
    train_and_finish(trainer, run, resume, evaluate=eval_dataset is not None)
    return trainer


def build_parser():
    """The recipe's parser (the docs test checks documented flags against it)."""
    return sft_parser()


@exit_on_user_error
def cli(argv: list[str] | None = None):
    main(*parse_sft_args(argv))


if __name__ == "__main__":
    cli()
