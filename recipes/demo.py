"""The main job on the embedded default base, end to end on a CPU: data -> LoRA SFT -> evaluation -> merge.

    bash recipes/demo.sh            # sets up .venv if needed, then runs this file
    python recipes/demo.py [--steps 30] [--eval_limit 6]

Each stage is the command a user would type (printed before it runs): the five-type CPU mix, the CPU recipe of
the ablation's best arm (recipes/configs/demo_cpu.yaml: LoRA only: experiments/module_ablation/), then base and tuned
on the in-distribution and transfer suites of the test split (the eval snapshots), then the merged release, exported
to GGUF (q8_0) with the llama-cli / ollama commands to run it. It ends with recipes/evaluate.py's paired table: tuned
minus base per suite and task type, document by document with 95% intervals, as scored and worked (a right answer
stated before any working counted wrong), the shares of answers stated first and of looping outputs, and two
sentences on what improved and what did not (results/demo/: results.json, table.md, plots).
GRPO is not a stage (GRPO_NOTE says why).
"""

import json
import subprocess
import sys
import time

from cognitive import PROJECT_ROOT
from cognitive.errors import ArgumentParser, UserError, exit_on_user_error
from cognitive.evaluation.report import paired_in_words, paired_tables
from cognitive.model.base import DEFAULT_EMBEDDED

DEMO_SUITES = "cognitive,transfer"  # in-distribution and third-party problems (cognitive.evaluation.harness.SUITES)
MAX_GEN_TOKS = 320  # the ablation's cap: room for a concise answer; the base's long ones are cut there too
SPLIT = "test"  # the demo reports; the recipe's settings were chosen on the validation split
GRPO_NOTE = (
    "No GRPO stage: from this start 40 GRPO steps took 24-52 minutes on 2 cores (the demo would pass 20 minutes), and "
    "the best mix measured is only level with its SFT start once guesses count wrong (experiments/grpo_defaults/)."
)


def run(stage: str, args: list[str]) -> None:
    print(f"\n=== {stage}\n$ python {' '.join(args)}", flush=True)
    code = subprocess.run([sys.executable, *args], cwd=PROJECT_ROOT).returncode
    if code != 0:  # the stage printed its own error above
        raise UserError(f"stage {stage} failed (exit {code}): python {' '.join(args)}")


def final_table(paired: dict, eval_limit: int) -> str:
    """The demo's last word: recipes/evaluate.py's paired table (suites and task types, as scored and worked, and the
    output shares; results.json "paired"), the split it reports, two sentences in plain words and why no GRPO."""
    return (
        f"=== is the tuned model better? Reported on the {SPLIT} split (the eval snapshots; the recipe was chosen on "
        f"the validation split), {eval_limit} documents per task\n\n{paired_tables(paired, every_task=False)}\n\n"
        f"{paired_in_words(paired)}\n{GRPO_NOTE}"
    )


def build_parser() -> ArgumentParser:
    parser = ArgumentParser(description="End-to-end demo on the embedded base (CPU).")
    parser.add_argument("--steps", type=int, default=None, help="training steps (default: the recipe's)")
    parser.add_argument("--eval_limit", type=int, default=6, help="documents per evaluation task")
    parser.add_argument("--batch_size", type=int, default=16, help="generation batch size")
    return parser


@exit_on_user_error
def main(argv=None) -> None:
    args = build_parser().parse_args(argv)
    started = time.time()

    run(
        "1/5 generate verified training data (all five task types)",
        [
            "recipes/generate_data.py",
            "--config",
            "data/configs/cpu_mix.yaml",
            "--out",
            "data/synthetic/cpu_mix",
            "--overwrite",
        ],
    )
    run(
        "2/5 LoRA fine-tuning (TRL SFTTrainer)",
        [
            "recipes/sft.py",
            "--config",
            "recipes/configs/demo_cpu.yaml",
            "--output_dir",
            "runs/demo",
            "--overwrite",
            "true",
            *(["--max_steps", str(args.steps)] if args.steps else []),
        ],
    )
    run(
        "3/5 evaluate base and tuned on the test split: in-distribution (cognitive) and transfer (reasoning-gym)",
        [
            "recipes/evaluate.py",
            "--base",
            DEFAULT_EMBEDDED,
            "--adapter",
            "runs/demo",
            "--suite",
            DEMO_SUITES,
            "--limit",
            str(args.eval_limit),
            "--max_gen_toks",
            str(MAX_GEN_TOKS),
            "--split",
            SPLIT,
            "--batch_size",
            str(args.batch_size),
            "--out",
            "results/demo",
        ],
    )
    run(
        "4/5 merge the adapter into a release (its model card carries every task's scores)",
        [
            "recipes/merge.py",
            "--run",
            "runs/demo",
            "--out",
            "release/demo",
            "--overwrite",
            "--eval_results",
            "results/demo/results.json",
        ],
    )
    run(
        "5/5 export the release to GGUF for llama.cpp / Ollama (llama.cpp's own converter; prints how to run it)",
        ["recipes/export.py", "--release", "release/demo", "--quant", "q8_0", "--overwrite"],
    )
    results = json.loads((PROJECT_ROOT / "results/demo/results.json").read_text())
    print(f"\n{final_table(results['paired'], args.eval_limit)}")
    print(
        "\nSaved results/demo/ (results.json, table.md with every task's metrics and differences, suites.png, "
        f"paired.png); release in release/demo. Wall time: {(time.time() - started) / 60:.1f} min"
    )
    print(
        "Run the release elsewhere: llama-cli -m release/demo/gguf/demo-q8_0.gguf --temp 0; "
        "ollama create demo -f release/demo/gguf/Modelfile && ollama run demo (docs/export.md)"
    )


if __name__ == "__main__":
    main()
