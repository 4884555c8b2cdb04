"""The module ablation: train each arm on the same recipe, data, steps and seeds, evaluate every run on the suites.

    python recipes/ablate.py --config recipes/configs/cognitive_135m_cpu.yaml --seeds 2
    python recipes/ablate.py --config recipes/configs/cognitive_135m_cpu.yaml --arms base,lora,lora+all \
        --seeds 2 --steps 60 --suite cognitive,plain,transfer --limit 10
    python recipes/ablate.py --config recipes/configs/demo_cpu.yaml --arms lora --train_args "--response_style column"

Arms (cognitive.evaluation.ablation.ARMS; default all): base, lora, lora+<module> for each module, lora+all.
Runs go to <runs>/<arm>-seed<k> (recipes/sft.py), their evaluations to <out>/evals/<arm>-seed<k>
(recipes/evaluate.py); a run or an evaluation that already finished is reused, so an interrupted ablation
resumes where it stopped. Writes <out>/results.json, table.md (mean ± spread over seeds per suite, step accuracy,
which arms beat LoRA-only beyond the spread) and ablation.png.
"""

import json
import subprocess
import sys
from pathlib import Path

from cognitive import PROJECT_ROOT
from cognitive.atomic import claim_dir, open_atomic
from cognitive.errors import ArgumentParser, UserError, exit_on_user_error, load_yaml_mapping
from cognitive.evaluation import ablation
from cognitive.plots import plot_ablation


def run(argv: list[str]) -> None:
    print(f"\n$ python {' '.join(argv)}", flush=True)
    code = subprocess.run([sys.executable, *argv], cwd=PROJECT_ROOT).returncode
    if code != 0:  # the stage printed its own error above
        raise UserError(f"exit {code}: python {' '.join(argv)}")


def build_parser() -> ArgumentParser:
    parser = ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", required=True, help="the recipe every arm trains (recipes/configs/*.yaml)")
    parser.add_argument("--arms", default=",".join(ablation.ARMS))
    parser.add_argument("--seeds", type=int, default=2, help="seeds per trained arm (0, 1, ...)")
    parser.add_argument("--steps", type=int, default=None, help="training steps per run (default: the recipe's)")
    parser.add_argument("--suite", default="cognitive,plain,transfer")
    parser.add_argument("--limit", default=None, help="documents per task (default: each suite's)")
    parser.add_argument(
        "--train_args", default="", help="recipe overrides for every run, e.g. '--response_style column'"
    )
    parser.add_argument("--eval_args", default="", help="more recipes/evaluate.py options, e.g. '--max_gen_toks 256'")
    parser.add_argument("--runs", type=Path, default=Path("runs/ablation"))
    parser.add_argument("--out", type=Path, default=Path("results/ablation"))
    return parser


@exit_on_user_error
def main(argv=None) -> None:
    parser = build_parser()
    args = parser.parse_args(argv)
    arms = ablation.parse_arms(args.arms)
    extra = args.train_args.split()
    if len(extra) % 2 or not all(flag.startswith("--") for flag in extra[0::2]):
        parser.error(f"--train_args: expected '--key value' pairs, got {args.train_args!r}")
    recipe = load_yaml_mapping(args.config, "config file")
    claim_dir(args.out, "evaluation")  # written into (and resumed in), never replaced: ours, new or empty only
    runs = {}
    for arm in arms:
        runs[arm] = []
        for seed in [None] if arm == "base" else range(args.seeds):
            name = ablation.run_name(arm, seed)
            run_dir, eval_dir = args.runs / name, args.out / "evals" / name
            if arm != "base" and ablation.finished(run_dir):
                ablation.check_reusable(run_dir, args.steps, extra)
            elif arm != "base":
                block = recipe.get("cognitive_modules")
                run(ablation.train_command(args.config, arm, seed, run_dir, block, args.steps, extra))  # resumes
            if not (eval_dir / "results.json").exists():
                base = str(recipe.get("model_name_or_path"))
                run(ablation.eval_command(arm, base, run_dir, eval_dir, args.suite, args.limit, args.eval_args.split()))
            runs[arm].append(ablation.read_run(eval_dir / "results.json"))
    summary = ablation.aggregate(runs)
    table, verdict = ablation.ablation_table(summary), ablation.verdict(summary)
    settings = {k: str(v) for k, v in vars(args).items()}
    with open_atomic(args.out / "results.json") as f:
        f.write(json.dumps({"settings": settings, "summary": summary, "verdict": verdict}, indent=1) + "\n")
    with open_atomic(args.out / "table.md") as f:
        f.write(f"{table}\n\n{verdict}\n")
    plot_ablation(summary, args.out / "ablation.png")
    print(f"\n{table}\n\n{verdict}\n\nWrote {args.out}/results.json, table.md, ablation.png")


if __name__ == "__main__":
    main()
