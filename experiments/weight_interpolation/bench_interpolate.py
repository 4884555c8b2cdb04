"""Weight-space interpolation (WiSE-FT) of finished runs with their base: does keeping a share alpha of what training
changed keep transfer at or above the base while keeping the true steps? Chosen on validation, reported on test.

    python experiments/weight_interpolation/bench_interpolate.py \
        --runs runs/column_drills300/lora-seed0,runs/column_drills300/lora-seed1 \
        --alphas 0.25,0.5,0.75,1 --work runs/wise --out results/wise

1. Per run (one per training seed, k = its place in --runs) and alpha < 1: interpolate.py (beside this script)
   writes <work>/s<k>-a<alpha> (alpha 1 is the run itself).
2. Validation: per seed one recipes/evaluate.py call (the base beside seed 0) on --val_suites at --val_limit documents
   per task, `--split validation` (fresh generator problems, reasoning-gym's from TRANSFER_VALIDATION_SEED).
3. The rule, fixed before any score was read: one alpha for every seed, the one whose mean over seeds of the mean
   validation headline (over --val_suites) is highest; a tie goes to the larger alpha (more of the training kept).
4. Test: the chosen alpha and the run itself per seed (the base beside seed 0) on the offline suites at --test_limit,
   the eval snapshots; and, on --steps_limit validation problems of cognitive_reasoning and its plain twin, the
   arithmetic steps ("a op b = c") the answers write, pooled, that hold.
Writes <out>/results.json, table.md and interpolation.png (validation headlines against alpha, mean ± half the range
over seeds). Evaluations already on disk are reused (an interrupted benchmark resumes).
The study and its figures: experiments/weight_interpolation/README.md.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from interpolate import choose_alpha, interpolate_run
from interpolation_plot import plot_interpolation

from cognitive import PROJECT_ROOT
from cognitive.data import arith
from cognitive.errors import ArgumentParser, exit_on_user_error
from cognitive.evaluation.ablation import mean_and_spread
from cognitive.evaluation.harness import plus_minus, samples_folder
from cognitive.evaluation.paired import read_samples
from cognitive.train.run import read_run

STEP_TASKS = "cognitive_reasoning,cognitive_reasoning_plain"


def run(argv: list[str]) -> None:
    print(f"\n$ {' '.join(argv)}", flush=True)
    if subprocess.run([sys.executable, *argv], cwd=PROJECT_ROOT).returncode != 0:
        sys.exit(f"failed: {' '.join(argv)}")


def evaluate(models: list[str], out: Path, args, extra: list[str]) -> dict:
    """recipes/evaluate.py on `models` (--adapter run dirs; "base" for the base) -> its results.json."""
    if not (out / "results.json").exists():
        argv = ["recipes/evaluate.py"] + (["--base", args.base] if "base" in models else [])
        argv += [a for m in models if m != "base" for a in ("--adapter", m)]
        run([*argv, *extra, *args.eval_args.split(), "--out", str(out)])
    return json.loads((out / "results.json").read_text())


def label(model: str) -> str:
    return "base" if model == "base" else f"adapter:{Path(model).name}"


def pooled_steps(samples: Path, model: str) -> tuple[int, int]:
    """(true, all) "a op b = c" steps (the checkers' reader) over every answer of `model` in an evaluation's samples
    dir (`recipes/evaluate.py --tasks` writes samples/<model>/<task>.jsonl; a folder with no samples is a one-line
    error: a wrong folder name must not read as a model that writes no steps)."""
    rows = read_samples(samples / samples_folder(label(model)))
    outputs = [row.get("output") for task in rows.values() for row in task.values()]
    steps = [chain for output in outputs for chain in arith.chains(output if isinstance(output, str) else "")]
    return sum(c.ok for c in steps), len(steps)


def build_parser() -> ArgumentParser:
    parser = ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", required=True, help="finished runs, one per training seed, comma-separated")
    parser.add_argument("--alphas", default="0.25,0.5,0.75,1", help="the shares of the change to try")
    parser.add_argument("--val_suites", default="cognitive,transfer")
    parser.add_argument("--val_limit", default="10")
    parser.add_argument("--test_limit", default="6")
    parser.add_argument("--steps_limit", default="50")
    parser.add_argument("--eval_args", default="--max_gen_toks 320", help="for every recipes/evaluate.py call")
    parser.add_argument("--work", type=Path, default=Path("runs/wise"), help="where the interpolated runs go")
    parser.add_argument("--out", type=Path, default=Path("results/wise"))
    return parser


@exit_on_user_error
def main() -> None:
    parser = build_parser()
    args = parser.parse_args()
    runs = args.runs.split(",")
    alphas = sorted(float(a) for a in args.alphas.split(","))
    args.base = read_run(runs[0]).base

    def model(k: int, alpha: float) -> str:
        if alpha == 1.0:
            return runs[k]
        path = args.work / f"s{k}-a{alpha:g}"
        if not path.exists():
            print(f"\ninterpolating {runs[k]} at alpha {alpha:g} -> {path}", flush=True)
            interpolate_run(runs[k], alpha, path)
        return str(path)

    # 2. validation
    val_suites = args.val_suites.split(",")
    val = []  # per seed: {alpha: {suite: summary}}
    for k in range(len(runs)):
        models = (["base"] if k == 0 else []) + [model(k, a) for a in alphas]
        extra = ["--suite", args.val_suites, "--split", "validation", "--limit", args.val_limit]
        found = evaluate(models, args.out / f"val-s{k}", args, extra)["suites"]
        val.append({a: found[label(model(k, a))] for a in alphas})
        if k == 0:
            val_base = found["base"]

    # 3. the rule
    def val_score(by_suite: dict) -> float:
        return sum(by_suite[s]["headline"] or 0.0 for s in val_suites) / len(val_suites)

    chosen = choose_alpha({a: [val_score(v[a]) for v in val] for a in alphas})
    print(f"\nchosen alpha: {chosen:g}", flush=True)

    # 4. test and steps
    test, steps = [], []
    for k in range(len(runs)):
        models = (["base"] if k == 0 else []) + list(dict.fromkeys([model(k, chosen), model(k, 1.0)]))
        test.append(evaluate(models, args.out / f"test-s{k}", args, ["--limit", args.test_limit])["suites"])
        step_models = list(dict.fromkeys([model(k, chosen), model(k, 1.0)]))
        extra = ["--tasks", STEP_TASKS, "--split", "validation", "--limit", args.steps_limit]
        evaluate(step_models, args.out / f"steps-s{k}", args, extra)
        steps.append({m: pooled_steps(args.out / f"steps-s{k}" / "samples", m) for m in step_models})

    # the tables
    lines = ["Validation split (choose here): mean ± half the range over seeds", ""]
    lines += ["| alpha | " + " | ".join(f"{s} | {s} step acc." for s in val_suites) + " | rule score |"]
    lines += ["|---|" + "---:|---:|" * len(val_suites) + "---:|"]
    curves = {s: {} for s in val_suites}
    base_cells = " | ".join(cells([val_base], s) for s in val_suites)
    lines.append(f"| 0 (base) | {base_cells} | {val_score(val_base):.3f} |")
    for a in alphas:
        per_seed = [v[a] for v in val]
        score = mean_and_spread([val_score(v) for v in per_seed])
        mark = " (chosen)" if a == chosen else ""
        row = " | ".join(cells(per_seed, s) for s in val_suites)
        lines.append(f"| {a:g}{mark} | {row} | {plus_minus(*score)} |")
        for s in val_suites:
            curves[s][a] = mean_and_spread([v[s]["headline"] for v in per_seed])
    test_suites = list(test[0]["base"])
    lines += ["", "Test snapshots (report here)", ""]
    lines += ["| model | " + " | ".join(f"{s} | {s} step acc." for s in test_suites) + " |"]
    lines += ["|---|" + "---:|---:|" * len(test_suites)]
    lines.append("| base | " + " | ".join(cells([test[0]["base"]], s) for s in test_suites) + " |")
    for a in dict.fromkeys([chosen, 1.0]):
        per_seed = [t[label(model(k, a))] for k, t in enumerate(test)]
        lines.append(f"| alpha {a:g} | " + " | ".join(cells(per_seed, s) for s in test_suites) + " |")
    types = list(test[0]["base"]["transfer"]["types"])
    lines += ["", "Transfer per task type (test): mean ± half the range over seeds", ""]
    lines += ["| model | " + " | ".join(types) + " |", "|---|" + "---:|" * len(types)]
    lines.append("| base | " + " | ".join(type_cell([test[0]["base"]], t) for t in types) + " |")
    for a in dict.fromkeys([chosen, 1.0]):
        per_seed = [t[label(model(k, a))] for k, t in enumerate(test)]
        lines.append(f"| alpha {a:g} | " + " | ".join(type_cell(per_seed, t) for t in types) + " |")
    lines += ["", f"Arithmetic steps that hold, pooled, {args.steps_limit} validation problems of each of {STEP_TASKS}"]
    lines += [""]
    lines += ["| alpha | " + " | ".join(f"seed {k}" for k in range(len(runs))) + " |", "|---|" + "---:|" * len(runs)]
    for a in dict.fromkeys([chosen, 1.0]):
        counts = [steps[k][model(k, a)] for k in range(len(runs))]
        lines.append(f"| {a:g} | " + " | ".join(f"{t}/{n} ({t / max(n, 1):.2f})" for t, n in counts) + " |")
    table = "\n".join(lines)
    print("\n" + table)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "table.md").write_text(table + "\n")
    base_line = {s: val_base[s]["headline"] for s in val_suites}
    plot_interpolation(curves, base_line, args.out / "interpolation.png", chosen)
    report = {"settings": {k: str(v) for k, v in vars(args).items()}, "chosen_alpha": chosen, "validation": val}
    report |= {"validation_base": val_base, "test": test, "steps": [{m: list(c) for m, c in s.items()} for s in steps]}
    (args.out / "results.json").write_text(json.dumps(report, indent=1))


def cells(per_seed: list[dict], suite: str) -> str:
    """'mean ± spread | step mean ± step spread' of one suite over the seeds' summaries."""
    head = mean_and_spread([s[suite]["headline"] for s in per_seed])
    step = mean_and_spread([s[suite].get("step_accuracy") for s in per_seed])
    if len(per_seed) == 1:
        head, step = (head[0], None), (step[0], None)
    return f"{plus_minus(*head)} | {plus_minus(*step)}"


def type_cell(per_seed: list[dict], task_type: str) -> str:
    """A task type's transfer score, mean ± half the range over the seeds' summaries."""
    mean, spread = mean_and_spread([s["transfer"]["types"][task_type]["score"] for s in per_seed])
    return plus_minus(mean, spread if len(per_seed) > 1 else None)


if __name__ == "__main__":
    main()
