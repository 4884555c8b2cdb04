"""Supervised fine-tuning (LoRA / QLoRA) of a base model on cognitive records with TRL's SFTTrainer.

Launch (any of these; the recipe YAML sets base, data, LoRA and training options, CLI flags override it):

    deepspeed recipes/sft.py --ds ds_configs/zero2_3090ti.json --config recipes/configs/cognitive_1.5b.yaml
    accelerate launch recipes/sft.py --config recipes/configs/demo_cpu.yaml
    python recipes/sft.py --config recipes/configs/demo_cpu.yaml --max_steps 10 --output_dir runs/try

The run ends in `output_dir` (adapter, resolved config, trainer log, curves); while it trains it lives in
`<output_dir>.partial`, and a rerun of the same command resumes from its latest checkpoint.
"""

from accelerate import PartialState
from transformers import set_seed
from trl import SFTTrainer

from cognitive.args import parse_sft_args
from cognitive.errors import exit_on_user_error
from cognitive.formatting import find_split_files, load_examples, sft_dataset
from cognitive.training import (
    finish_run,
    last_checkpoint,
    load_model_and_tokenizer,
    lora_config,
    start_run_dir,
)


def main(script_args, training_args, model_args):
    set_seed(training_args.seed)
    final_dir = start_run_dir(training_args, script_args.overwrite, PartialState().is_main_process)

    # Data: validated records -> prompt/completion conversations (loss on the completion only).
    train_dataset = sft_dataset(load_examples(script_args.dataset_path, "train", script_args.max_train_examples))
    eval_path = script_args.eval_dataset_path or script_args.dataset_path
    eval_dataset = None
    if script_args.eval_dataset_path or find_split_files(eval_path, "validation"):
        eval_dataset = sft_dataset(load_examples(eval_path, "validation", script_args.max_eval_examples))

    # Model: the base (4-bit when load_in_4bit) + LoRA on all its linear layers.
    model, tokenizer = load_model_and_tokenizer(model_args, training_args)

    trainer = SFTTrainer(
        model=model,
        args=training_args,
        train_dataset=train_dataset,
        eval_dataset=eval_dataset,
        processing_class=tokenizer,
        peft_config=lora_config(model_args),
    )
    resume = training_args.resume_from_checkpoint or last_checkpoint(training_args.output_dir)
    if resume:
        print(f"Resuming from {resume}")
    trainer.train(resume_from_checkpoint=resume)
    if eval_dataset is not None:
        trainer.evaluate()
    final_dir = finish_run(trainer, script_args, training_args, model_args, final_dir)
    if trainer.accelerator.is_main_process:
        print(f"Run saved to {final_dir}")
    return trainer


@exit_on_user_error
def cli():
    main(*parse_sft_args())


if __name__ == "__main__":
    cli()
