"""Does GRPO on the checkers make the embedded 135M better on held-out problems? And what a CPU step costs.

    python experiments/grpo_cpu/bench_grpo.py --init_from runs/ablation/lora-seed0 --steps 26 --seeds 0,1 --limit 10
    python experiments/grpo_cpu/bench_grpo.py --init_from runs/sft-start --grpo_args "--difficulties basic" --out ...
    python experiments/grpo_cpu/bench_grpo.py ... --split validation --suite cognitive,plain    # to choose settings on

Start: a finished CPU SFT run (the best arm of the module ablation, experiments/module_ablation/). For each seed,
recipes/grpo.py (--config, default recipes/configs/grpo_135m_cpu.yaml; --init_from, --seed, --max_steps) runs
under /usr/bin/time -v (peak RSS), then recipes/evaluate.py scores the run's adapter on the suites; the start is
evaluated once the same way (greedy decoding: it has no seed). Held-out means the generators' eval seeds (the
cognitive suite) and the same problems asked plainly (the plain suite); transfer (third-party problems) and step
accuracy are reported beside.

Per suite and task type: the start's score, GRPO's mean ± half the range over the seeds, and "up" when mean - spread
> start, "down" when mean + spread < start. Ten documents a task move a score in steps of 0.1, so `--focus` scores
chosen tasks again on more of their documents (e.g. the trained types' plain tasks on 50 basic problems each,
`--focus cognitive_memory_plain,cognitive_state_plain --focus_limit 50 --focus_difficulty basic`), with the same
verdicts, the step accuracy of those that write arithmetic (`cognitive_reasoning_plain`) and the share of answers
that state the final answer on their first line, before any working; the target (two types up, none down, within
--budget_min of GRPO per seed) may be met on either measurement, with no type down on the other.
Also steps/min, the generation share of the step time (the log's generation_time / step_time), and peak RSS beside
the memory estimate. `--split validation` scores fresh problems instead of the eval snapshots (every offline
suite has them): choose settings there, report on the snapshots. Finished runs and evaluations are
reused (an interrupted benchmark resumes). Writes
<out>/results.json, table.md and grpo.png (start vs GRPO per type).
The ten attempts measured with it: experiments/grpo_cpu/README.md.
"""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
from pathlib import Path

from grpo_plot import plot_before_after

from cognitive import PROJECT_ROOT
from cognitive.data.answers import answers_first
from cognitive.errors import ArgumentParser
from cognitive.evaluation import ablation
from cognitive.evaluation.harness import plus_minus
from cognitive.evaluation.snapshots import EVAL_SPLITS

RECIPE = "recipes/configs/grpo_135m_cpu.yaml"


def run(argv: list[str], log: Path | None = None) -> str:
    print(f"\n$ {' '.join(argv)}", flush=True)
    result = subprocess.run(argv, cwd=PROJECT_ROOT, capture_output=log is not None, text=True)
    if log is not None:
        log.parent.mkdir(parents=True, exist_ok=True)
        log.write_text(result.stdout + result.stderr)
    if result.returncode != 0:
        sys.exit(f"exit {result.returncode}: {' '.join(argv)}" + (f" (log: {log})" if log else ""))
    return (result.stdout + result.stderr) if log is not None else ""


def evaluate(run_dir: Path, out: Path, args) -> dict:
    if not (out / "results.json").exists():
        extra = ["--max_gen_toks", str(args.max_gen_toks), "--split", args.split]
        run([sys.executable, *ablation.eval_command("lora", "", run_dir, out, args.suite, args.limit, extra)])
    report = json.loads((out / "results.json").read_text())
    (by_suite,) = report["suites"].values()
    return by_suite


def evaluate_focus(run_dir: Path, out: Path, args) -> dict[str, dict]:
    """{task: {"score", "step_accuracy"}} of the --focus tasks, on --focus_limit documents of --focus_difficulty
    (step_accuracy None for a task whose answers write no arithmetic)."""
    if not (out / "results.json").exists():
        extra = ["--max_gen_toks", str(args.max_gen_toks), "--split", args.split, "--tasks", args.focus]
        extra += ["--difficulty", args.focus_difficulty] if args.focus_difficulty else []
        run([sys.executable, *ablation.eval_command("lora", "", run_dir, out, "plain", args.focus_limit, extra)])
    report = json.loads((out / "results.json").read_text())
    (model,) = report["models"].values()
    return {
        task: {
            "score": metrics["score"],
            "step_accuracy": metrics.get("step_accuracy"),
            "answer_first": answer_first_share(out, task),
        }
        for task, metrics in model["scores"].items()
    }


def answer_first_share(out: Path, task: str) -> float | None:
    """The share of the task's answers that state the final answer on their first line (answers.answers_first)."""
    outputs = [json.loads(line)["output"] for path in out.glob(f"samples/*/{task}.jsonl") for line in path.open()]
    return sum(map(answers_first, outputs)) / len(outputs) if outputs else None


def train_figures(run_dir: Path, time_log: Path) -> dict:
    history = json.loads((run_dir / "log_history.json").read_text())
    steps = [e for e in history if "step_time" in e]
    final = next(e for e in reversed(history) if "train_runtime" in e)
    share = [e["generation_time"] / e["step_time"] for e in steps if e.get("generation_time") and e["step_time"]]
    text = time_log.read_text() if time_log.exists() else ""
    rss = re.search(r"Maximum resident set size \(kbytes\): (\d+)", text)
    return {
        "steps": final["step"],
        "minutes": final["train_runtime"] / 60,
        "steps_per_min": final["step"] / (final["train_runtime"] / 60),
        "generation_share": sum(share) / len(share) if share else None,
        "peak_rss_gib": int(rss.group(1)) / 2**20 if rss else None,
        "reward_first": steps[0].get("reward") if steps else None,
        "reward_last": steps[-1].get("reward") if steps else None,
    }


def estimate_gib(config: str, overrides: list[str]) -> float:
    from cognitive.model import memory
    from cognitive.train.args import parse_grpo_args

    script_args, training_args, model_args = parse_grpo_args(["--config", config, *overrides])
    shape = memory.shape_for(model_args.model_name_or_path)
    setup = memory.setup_from_args(training_args, model_args, 0, script_args.max_prompt_tokens)
    return memory.estimate(shape, setup).total / memory.GIB


def verdict(base: float, mean: float, spread: float) -> str:
    return "up" if mean - spread > base + 1e-9 else "down" if mean + spread < base - 1e-9 else "="


def row(suite: str, task: str, base: float, values: list, start_step=None, steps: list | None = None) -> dict:
    """One line of the table: the start's score, the tuned seeds' mean and half range, and the verdict."""
    mean, spread = ablation.mean_and_spread(values)
    step_mean, step_spread = ablation.mean_and_spread(steps or [])
    return dict(
        suite=suite,
        type=task,
        start=base,
        mean=mean,
        spread=spread,
        verdict=verdict(base, mean, spread),
        start_step=start_step,
        step_mean=step_mean,
        step_spread=step_spread,
    )


def compare(start: dict, tuned: list[dict]) -> list[dict]:
    rows = []
    for suite, summary in start.items():
        for task_type, cell in summary["types"].items():
            values = [t[suite]["types"].get(task_type, {}).get("score") for t in tuned]
            steps = [t[suite]["types"].get(task_type, {}).get("step_accuracy") for t in tuned]
            rows.append(row(suite, task_type, cell["score"], values, cell.get("step_accuracy"), steps))
    return rows


def compare_focus(start: dict[str, dict], tuned: list[dict[str, dict]], label: str) -> list[dict]:
    rows = []
    for task, base in start.items():
        cells = [t.get(task, {}) for t in tuned]
        values, steps = [c.get("score") for c in cells], [c.get("step_accuracy") for c in cells]
        rows.append(row(label, task, base["score"], values, base["step_accuracy"], steps))
        rows[-1].update(answer_first_start=base["answer_first"], answer_first=[c.get("answer_first") for c in cells])
    return rows


def answer_first_lines(rows: list[dict]) -> str:
    """One line per focus task: how often the answer comes before any working, start and per seed."""
    lines = []
    for r in rows:
        if "answer_first" in r:
            shares = ", ".join("n/a" if v is None else f"{v:.2f}" for v in r["answer_first"])
            start = "n/a" if r["answer_first_start"] is None else f"{r['answer_first_start']:.2f}"
            lines.append(f"{r['type']}: final answer on the first line (before any working) {start} -> {shares}")
    return "\n".join(lines)


def moved(rows: list[dict], way: str) -> list[str]:
    """The task types whose verdict is `way` ("up" or "down"), sorted."""
    return sorted({r["type"] for r in rows if r["verdict"] == way})


def table(rows: list[dict]) -> str:
    lines = [
        "| suite | task type | SFT start | + GRPO (mean ± spread) | | step acc. start | step acc. + GRPO |",
        "|---|---|---:|---:|---|---:|---:|",
    ]
    for r in rows:
        start_step = "–" if r["start_step"] is None else f"{r['start_step']:.3f}"
        lines.append(
            f"| {r['suite']} | {r['type']} | {r['start']:.3f} | {plus_minus(r['mean'], r['spread'])} | "
            f"{r['verdict']} | {start_step} | {plus_minus(r['step_mean'], r['step_spread'])} |"
        )
    return "\n".join(lines)


def describe(f: dict) -> str:
    share = "n/a" if f["generation_share"] is None else f"{100 * f['generation_share']:.0f}%"
    rss = "n/a" if f["peak_rss_gib"] is None else f"{f['peak_rss_gib']:.2f} GiB"
    return (
        f"{f['steps']} steps in {f['minutes']:.1f} min, {f['steps_per_min']:.2f} steps/min, "
        f"generation {share} of the step time, peak RSS {rss}, "
        f"reward {f['reward_first']:.3f} (first step) -> {f['reward_last']:.3f} (last)"
    )


def build_parser() -> ArgumentParser:
    parser = ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=RECIPE, help="the GRPO recipe every seed trains")
    parser.add_argument("--init_from", type=Path, default=Path("runs/ablation/lora-seed0"))
    parser.add_argument("--steps", type=int, default=26)
    parser.add_argument("--seeds", default="0,1")
    parser.add_argument("--suite", default="cognitive,plain,transfer")
    parser.add_argument("--limit", default="10")
    parser.add_argument("--max_gen_toks", type=int, default=320)
    parser.add_argument(
        "--grpo_args",
        default="",
        help='overrides of the GRPO recipe for every seed, e.g. "--difficulties basic --num_generations 8"',
    )
    parser.add_argument("--focus", default="", help="tasks scored again on more documents, comma-separated")
    parser.add_argument("--focus_limit", default="50")
    parser.add_argument("--focus_difficulty", default="basic", help="only these difficulties ('' for all)")
    parser.add_argument("--split", choices=EVAL_SPLITS, default="test", help="recipes/evaluate.py --split")
    parser.add_argument("--budget_min", type=float, default=30.0, help="the target's minutes of GRPO per seed")
    parser.add_argument("--runs", type=Path, default=Path("runs/bench_grpo"))
    parser.add_argument("--out", type=Path, default=Path("results/bench_grpo"))
    return parser


def main() -> None:
    parser = build_parser()
    args = parser.parse_args()
    overrides = shlex.split(args.grpo_args)

    start = evaluate(args.init_from, args.out / "evals" / "start", args)
    focus_start = evaluate_focus(args.init_from, args.out / "focus" / "start", args) if args.focus else {}
    tuned, focused, figures = [], [], {}
    for seed in [int(s) for s in args.seeds.split(",")]:
        run_dir, time_log = args.runs / f"seed{seed}", args.runs / f"seed{seed}.time.log"
        if not ablation.finished(run_dir):
            run(
                [
                    "/usr/bin/time",
                    "-v",
                    sys.executable,
                    "recipes/grpo.py",
                    "--config",
                    args.config,
                    "--init_from",
                    str(args.init_from),
                    "--seed",
                    str(seed),
                    "--max_steps",
                    str(args.steps),
                    "--save_steps",
                    str(args.steps),
                    "--output_dir",
                    str(run_dir),
                    *overrides,
                ],
                log=time_log,
            )
        figures[seed] = train_figures(run_dir, time_log)
        tuned.append(evaluate(run_dir, args.out / "evals" / f"seed{seed}", args))
        if args.focus:
            focused.append(evaluate_focus(run_dir, args.out / "focus" / f"seed{seed}", args))

    rows = compare(start, tuned)
    held_out = [r for r in rows if r["suite"] in ("cognitive", "plain")]
    up, down = moved(held_out, "up"), moved(held_out, "down")
    label = f"focus ({args.focus_difficulty or 'all'}, {args.focus_limit} docs)"
    label += "" if args.split == "test" else f" [{args.split}]"
    focus_rows = compare_focus(focus_start, focused, label) if args.focus else []
    focus_up, focus_down = moved(focus_rows, "up"), moved(focus_rows, "down")
    over = [seed for seed, f in figures.items() if f["minutes"] > args.budget_min]
    few_seeds = len(figures) < 2  # the target is "beyond the spread of two seeds": one seed has no spread
    target = (len(up) >= 2 or len(focus_up) >= 2) and not down and not focus_down and not over and not few_seeds
    summary = (
        f"held-out (cognitive, plain; {args.split} split): up beyond the seed spread on {', '.join(up) or 'no type'}; "
        f"down on {', '.join(down) or 'no type'}"
    )
    if args.focus:
        summary += f"; {label}: up on {', '.join(focus_up) or 'no task'}, down on {', '.join(focus_down) or 'no task'}"
    if over:
        summary += f"; seed(s) {', '.join(map(str, over))} trained past the {args.budget_min:g}-minute budget"
    if few_seeds:
        summary += "; one seed, no spread to be beyond"
    summary += f" -> target {'MET' if target else 'NOT met'}"
    rows += focus_rows
    speed = "; ".join(f"seed {seed}: {describe(f)}" for seed, f in figures.items())
    memory = f"memory estimate of the recipe: {estimate_gib(args.config, overrides):.2f} GiB"
    text = f"{table(rows)}\n\n{summary}\n\n{answer_first_lines(focus_rows)}\n\n{speed}\n{memory}\n"
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "table.md").write_text(text)
    (args.out / "results.json").write_text(
        json.dumps(
            {
                "settings": {k: str(v) for k, v in vars(args).items()},
                "rows": rows,
                "figures": figures,
                "target_met": target,
                "up": up,
                "down": down,
                "focus_up": focus_up,
                "focus_down": focus_down,
            },
            indent=1,
        )
        + "\n"
    )
    plot_before_after(rows, args.out / "grpo.png", "SFT start", "+ GRPO")
    print(f"\n{text}\nWrote {args.out}/results.json, table.md, grpo.png")


if __name__ == "__main__":
    main()
