"""The main job on the embedded default base, end to end on a CPU: data -> LoRA SFT -> lm_eval -> merge.

    bash recipes/demo.sh            # sets up .venv if needed, then runs this file
    python recipes/demo.py [--steps 60] [--eval-limit 60]

Each stage is the command a user would type (printed before it runs); at the end a base-vs-tuned table
from real lm_eval runs is printed and saved, with a bar chart, to results/demo/.
"""

import json
import subprocess
import sys
import time
from pathlib import Path

from cognitive.atomic import output_dir
from cognitive.errors import ArgumentParser, UserError, exit_on_user_error
from cognitive.evaluation.harness import evaluate, headline_scores, lm_eval_command, score_table
from cognitive.model.base import DEFAULT_EMBEDDED, resolve_base
from cognitive.plots import plot_score_comparison

ROOT = Path(__file__).resolve().parent.parent
TASKS = ["cognitive_reasoning"]
# The demo trains on basic + intermediate problems (data/configs/demo.yaml): evaluate those, with room for
# the trained answer format (2-4 steps: under 250 tokens).
EVAL_OPTIONS = dict(metadata={"difficulty": "basic,intermediate"}, gen_kwargs={"max_gen_toks": 320})


def run(stage: str, args: list[str]) -> None:
    print(f"\n=== {stage}\n$ python {' '.join(args)}", flush=True)
    code = subprocess.run([sys.executable, *args], cwd=ROOT).returncode
    if code != 0:  # the stage printed its own error above
        raise UserError(f"stage {stage} failed (exit {code}): python {' '.join(args)}")


@exit_on_user_error
def main() -> None:
    parser = ArgumentParser(description="End-to-end demo on the embedded base (CPU).")
    parser.add_argument("--steps", type=int, default=None, help="training steps (default: the recipe's)")
    parser.add_argument("--eval-limit", type=int, default=60, help="eval documents per task")
    parser.add_argument("--batch-size", type=int, default=16, help="lm_eval generation batch size")
    args = parser.parse_args()
    started = time.time()
    out = ROOT / "results" / "demo"

    run(
        "1/4 generate verified training data",
        [
            "recipes/generate_data.py",
            "--config",
            "data/configs/demo.yaml",
            "--out",
            "data/synthetic/demo",
            "--overwrite",
        ],
    )
    steps = ["--max_steps", str(args.steps)] if args.steps else []
    run(
        "2/4 LoRA fine-tuning (TRL SFTTrainer)",
        [
            "recipes/sft.py",
            "--config",
            "recipes/configs/demo_cpu.yaml",
            "--output_dir",
            "runs/demo",
            "--overwrite",
            "true",
            *steps,
        ],
    )

    base_dir = resolve_base(DEFAULT_EMBEDDED)
    scores = {}
    for name, peft in (("base", None), ("tuned", "runs/demo")):
        print(
            f"\n=== 3/4 evaluate {name}\n"
            f"$ {lm_eval_command(base_dir, peft, TASKS, args.eval_limit, args.batch_size, **EVAL_OPTIONS)}",
            flush=True,
        )
        scores[name] = evaluate(
            base_dir,
            peft=str(ROOT / peft) if peft else None,
            tasks=TASKS,
            limit=args.eval_limit,
            batch_size=args.batch_size,
            **EVAL_OPTIONS,
        )

    report = score_table(scores)
    with output_dir(out, overwrite=True) as tmp:
        (tmp / "scores.json").write_text(json.dumps(scores, indent=1))
        (tmp / "table.md").write_text(report + "\n")
        plot_score_comparison(
            headline_scores(scores), tmp / "scores.png", title="embedded SmolLM2-135M-Instruct: base vs LoRA-tuned"
        )

    run(
        "4/4 merge the adapter into a release (its model card carries the table)",
        [
            "recipes/merge.py",
            "--run",
            "runs/demo",
            "--out",
            "release/demo",
            "--overwrite",
            "--eval-results",
            "results/demo/scores.json",
        ],
    )
    print(f"\n=== base vs tuned (lm_eval, {args.eval_limit} documents per task)\n{report}")
    print(
        f"\nSaved {out}/scores.json, table.md, scores.png; release in release/demo. "
        f"Wall time: {(time.time() - started) / 60:.1f} min"
    )


if __name__ == "__main__":
    main()
