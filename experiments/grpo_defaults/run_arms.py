"""The GRPO defaults study's driver: one SFT start, GRPO arms from it, then recipes/evaluate.py on them all.

    python experiments/grpo_defaults/run_arms.py --seeds 0
    python experiments/grpo_defaults/run_arms.py --seeds 0,1 --arms default,wta_no_loop --split test

Each stage is the recipe command a user would type (printed before it runs), under /usr/bin/time -v (peak RSS,
logged beside the run as <run>.time); a finished stage is reused, an interrupted GRPO run resumes from its last
checkpoint (the recipes do that). The stages:
    the CPU mix (recipes/generate_data.py, when data/synthetic/cpu_mix is missing),
    the SFT start: python recipes/sft.py --config recipes/configs/demo_cpu.yaml --output_dir runs/sft-start,
    per arm and seed: python recipes/grpo.py --config recipes/configs/grpo_135m_cpu.yaml --init_from runs/sft-start
        --output_dir runs/grpo_defaults/<arm>-s<seed> --seed <seed> <the arm's settings>,
    per suite: python recipes/evaluate.py --adapter start=runs/sft-start --adapter <arm>=<its seeds' runs> ...
        --suite <suite> --split <split>: the start first, so every arm is paired with it (as scored and worked,
        with the output shares): results/grpo_defaults/<split>-<suite>/.
`--wait_for FILE` waits before each stage while FILE exists (a machine kept quiet for benchmarks).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from pathlib import Path

from cognitive import PROJECT_ROOT
from cognitive.errors import ArgumentParser
from cognitive.evaluation.report import interval

RECIPE = "recipes/configs/grpo_135m_cpu.yaml"
START = "runs/sft-start"
# The arms: the recipe's settings they set (TrlParser overrides). Each names its rewards, so an arm means the same
# run whatever mix the recipe ships (`default` was the recipe's mix when the study began; wta_no_loop is it now).
OLD_MIX = ["--reward_funcs", "correctness", "format", "step_validity", "--reward_weights", "1.0", "0.2", "0.3"]
ARMS = {
    "default": OLD_MIX,  # beta 0: the recipe's
    "wta": [
        "--reward_funcs",
        "correctness",
        "work_then_answer",
        "step_validity",
        "--reward_weights",
        "1.0",
        "0.2",
        "0.3",
    ],
    "kl": [*OLD_MIX, "--beta", "0.04"],
    "wta_no_loop": [
        "--reward_funcs",
        *("correctness", "work_then_answer", "step_validity", "no_loop"),
        *("--reward_weights", "1.0", "0.2", "0.3", "0.2"),
    ],
}
SUITE_LIMITS = {"plain": None, "transfer": "10"}  # None: the suite's default (plain: 12 a task)
MAX_GEN_TOKS = "320"  # the demo's and experiments/grpo_cpu/'s cap


def build_parser() -> ArgumentParser:
    parser = ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arms", default=",".join(ARMS), help=f"comma-separated, of {', '.join(ARMS)}")
    parser.add_argument("--seeds", default="0", help="comma-separated training seeds per arm")
    parser.add_argument("--split", default="validation", choices=("validation", "test"))
    parser.add_argument("--suites", default="plain,transfer", help="comma-separated suites, one evaluation each")
    parser.add_argument("--no_eval", action="store_true", help="train only")
    parser.add_argument("--runs", default="runs/grpo_defaults")
    parser.add_argument("--out", default="results/grpo_defaults")
    parser.add_argument("--summary", action="store_true", help="only print the decision table, write figures.json")
    parser.add_argument("--wait_for", default=None, help="wait before each stage while this file exists")
    return parser


def summary(out: Path, split: str, suites: list[str]) -> tuple[str, dict]:
    """The decision table (README.md's rule) from the evaluations' results.json: per arm and suite the headline
    difference from the start as scored and worked, the output shares beside the start's, and whether the arm is
    eligible; and the figures for figures.json (headline and task types, the shares)."""
    paired = {
        s: json.loads((PROJECT_ROOT / out / f"{split}-{s}" / "results.json").read_text())["paired"] for s in suites
    }
    reference = next(iter(paired.values()))["reference"]
    arms = list(next(iter(paired.values()))["comparisons"])
    keep = ("difference", "low", "high", "verdict", "documents")
    figures = {"reference": reference, "split": split, "comparisons": {}, "shares": {}}
    rows = [
        "| arm | suite | minus start, as scored | worked | answers first | token limit | loop |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for arm in [reference, *arms]:
        failed = []
        for suite in suites:
            share, start = paired[suite]["shares"][arm][suite], paired[suite]["shares"][reference][suite]
            figures["shares"].setdefault(arm, {})[suite] = share
            cells = ["–", "–"]
            if arm != reference:
                both = paired[suite]["comparisons"][arm][suite]
                figures["comparisons"].setdefault(arm, {})[suite] = {
                    how: {
                        "headline": {k: both[how]["headline"][k] for k in keep},
                        "types": {t: {k: e[k] for k in keep} for t, e in both[how]["types"].items()},
                        "level": both[how]["level"],
                    }
                    for how in ("scored", "worked")
                }
                cells = [
                    f"{interval(both[h]['headline'])} {both[h]['headline']['verdict']}" for h in ("scored", "worked")
                ]
                failed += [f"{suite} worked below"] if both["worked"]["headline"]["verdict"] == "below" else []
                failed += [f"{suite} {k} up" for k in ("answers_first", "loop") if (share[k] or 0) > (start[k] or 0)]
            shares = [
                f"{share[k]:.2f}" if share[k] is not None else "–" for k in ("answers_first", "token_limit", "loop")
            ]
            rows.append(f"| {arm} | {suite} | {' | '.join(cells)} | {' | '.join(shares)} |")
        if arm != reference:
            worked = [figures["comparisons"][arm][s]["worked"]["headline"]["difference"] for s in suites]
            rows.append(
                f"| {arm} | eligible: {'yes' if not failed else 'no (' + ', '.join(failed) + ')'}; "
                f"worked difference averaged over the suites {sum(worked) / len(worked):+.3f} | | | | | |"
            )
    return "\n".join(rows), figures


def finished(run_dir: str | Path) -> bool:
    return (PROJECT_ROOT / run_dir / "adapter_config.json").exists()


def stage(args, name: str, argv: list[str], time_log: Path) -> None:
    while args.wait_for and Path(args.wait_for).exists():
        time.sleep(60)
    print(f"\n=== {name}\n$ python {' '.join(argv)}", flush=True)
    time_log.parent.mkdir(parents=True, exist_ok=True)
    started = time.time()
    code = subprocess.run(["/usr/bin/time", "-v", "-o", str(time_log), sys.executable, *argv], cwd=PROJECT_ROOT)
    rss = re.search(r"Maximum resident set size \(kbytes\): (\d+)", time_log.read_text()) if time_log.exists() else None
    peak = f"{int(rss.group(1)) / 2**20:.2f} GiB" if rss else "?"
    print(f"=== {name}: exit {code.returncode}, {(time.time() - started) / 60:.1f} min, peak RSS {peak}", flush=True)
    if code.returncode != 0:
        sys.exit(code.returncode)


def main(argv=None) -> None:
    args = build_parser().parse_args(argv)
    arms, seeds = args.arms.split(","), [int(s) for s in args.seeds.split(",")]
    if unknown := [a for a in arms if a not in ARMS]:
        sys.exit(f"--arms: unknown arm {unknown[0]!r} (known: {', '.join(ARMS)})")
    runs, out = Path(args.runs), Path(args.out)
    if args.summary:
        table, figures = summary(out, args.split, args.suites.split(","))
        (PROJECT_ROOT / out / f"{args.split}-figures.json").write_text(json.dumps(figures, indent=1) + "\n")
        print(table)
        return
    if not (PROJECT_ROOT / "data/synthetic/cpu_mix").exists():
        gen = ["recipes/generate_data.py", "--config", "data/configs/cpu_mix.yaml", "--out", "data/synthetic/cpu_mix"]
        stage(args, "the CPU mix", gen, runs / "data.time")
    if not finished(START):
        sft = ["recipes/sft.py", "--config", "recipes/configs/demo_cpu.yaml", "--output_dir", START]
        stage(args, "the SFT start", sft, runs / "sft-start.time")
    for arm in arms:
        for seed in seeds:
            run_dir = runs / f"{arm}-s{seed}"
            if finished(run_dir):
                continue
            grpo = ["recipes/grpo.py", "--config", RECIPE, "--init_from", START, "--output_dir", str(run_dir)]
            grpo += ["--seed", str(seed), *ARMS[arm]]
            stage(args, f"GRPO {arm} seed {seed}", grpo, runs / f"{arm}-s{seed}.time")
    if args.no_eval:
        return
    models = ["--adapter", f"start={START}"]
    for arm in arms:
        models += ["--adapter", f"{arm}=" + ",".join(str(runs / f"{arm}-s{seed}") for seed in seeds)]
    for suite in args.suites.split(","):
        target = out / f"{args.split}-{suite}"
        if (PROJECT_ROOT / target / "results.json").exists():
            continue
        limit = ["--limit", SUITE_LIMITS[suite]] if SUITE_LIMITS.get(suite) else []
        evaluate = ["recipes/evaluate.py", *models, "--suite", suite, "--split", args.split, *limit]
        evaluate += ["--max_gen_toks", MAX_GEN_TOKS, "--out", str(target)]
        stage(args, f"evaluate {suite} ({args.split})", evaluate, out / f"{args.split}-{suite}.time")


if __name__ == "__main__":
    main()
