"""Transfer with enough documents to tell a drop from the draw: finished runs against their base on the transfer suite
(reasoning-gym's test snapshots), the difference per document with a bootstrap interval over documents beside the
seed spread (cognitive/evaluation/paired.py).

    python experiments/transfer_paired/bench_transfer.py --limit 20 --out results/transfer20 \
        --arm column_drills300=runs/column_drills300/lora-seed0,runs/column_drills300/lora-seed1 \
        --arm practice300=runs/practice300/lora-seed0,runs/practice300/lora-seed1

Beside the score, how the right answers were written: a right answer stated on the first line, before any working
(`answers.answers_first`), is a guess as far as we can tell (a zebra puzzle's "Final Answer: Arnold" is right one
time in three or four), so the difference is also given with those counted wrong ("worked").

One recipes/evaluate.py call per model (`--suite transfer --limit N`, the base's once, in <out>/evals/<arm>-s<k>
and <out>/evals/base; finished ones are reused, so an interrupted benchmark resumes). Writes <out>/table.md,
results.json and paired.png. The arms' runs must share one base.
The study and its figures: experiments/transfer_paired/README.md.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from cognitive import PROJECT_ROOT
from cognitive.data.answers import answers_first
from cognitive.errors import ArgumentParser
from cognitive.evaluation.ablation import mean_and_spread
from cognitive.evaluation.harness import SUITES, plus_minus, samples_folder, suite_types
from cognitive.evaluation.paired import paired_difference, read_samples, scores_of, verdict
from cognitive.plots import plot_paired
from cognitive.train.run import read_run

SUITE = "transfer"


def evaluate(model: str, out: Path, args) -> tuple[dict, dict]:
    """(the suite summary, {task: {document id: sample row}}) of one model ("base" or a run dir), evaluated once."""
    if not (out / "results.json").exists():
        argv = ["recipes/evaluate.py", *(["--base", args.base] if model == "base" else ["--adapter", model])]
        argv += ["--suite", SUITE, "--limit", str(args.limit), *args.eval_args.split(), "--out", str(out)]
        print(f"\n$ python {' '.join(argv)}", flush=True)
        if subprocess.run([sys.executable, *argv], cwd=PROJECT_ROOT).returncode != 0:
            sys.exit(f"failed: {' '.join(argv)}")
    label = "base" if model == "base" else f"adapter:{Path(model).name}"
    summary = json.loads((out / "results.json").read_text())["suites"][label][SUITE]
    return summary, read_samples(out / "samples" / SUITE / samples_folder(label))


def guesses(samples: list[dict]) -> str:
    """Table cells over a model's seeds: right answers, of them those stated on the first line before any working
    (`answers.answers_first`: a guess as far as we can tell) and those reached after working, the documents, and the
    share of all answers stated first."""
    rows = [row for s in samples for rows in s.values() for row in rows.values()]
    right = [row for row in rows if row["score"] > 0]
    first = sum(answers_first(row["output"]) for row in right)
    answered_first = sum(answers_first(row["output"]) for row in rows) / max(len(rows), 1)
    return f"{len(right)} | {first} | {len(right) - first} | {len(rows)} | {answered_first:.2f}"


def interval(entry: dict) -> str:
    return f"{entry['difference']:+.3f} [{entry['low']:+.3f}, {entry['high']:+.3f}]"


def build_parser() -> ArgumentParser:
    parser = ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arm", action="append", required=True, help="NAME=RUN[,RUN...]: one run per training seed")
    parser.add_argument("--limit", type=int, default=20, help="documents per transfer task")
    parser.add_argument("--eval_args", default="--max_gen_toks 320", help="for every recipes/evaluate.py call")
    parser.add_argument("--resamples", type=int, default=4000)
    parser.add_argument("--out", type=Path, default=Path("results/transfer20"))
    return parser


def main() -> None:
    parser = build_parser()
    args = parser.parse_args()
    arms = {}
    for text in args.arm:
        name, _, runs = text.partition("=")
        if not name or not runs:
            parser.error(f"--arm {text!r}: NAME=RUN[,RUN...]")
        arms[name] = runs.split(",")
    bases = {read_run(r).base for runs in arms.values() for r in runs}
    if len(bases) != 1:
        parser.error(f"the runs have different bases: {sorted(bases)}")
    args.base = bases.pop()

    base_summary, base_samples = evaluate("base", args.out / "evals" / "base", args)
    types = suite_types(SUITES[SUITE])
    summaries, samples, paired, worked = {}, {}, {}, {}
    for name, runs in arms.items():
        found = [evaluate(r, args.out / "evals" / f"{name}-s{k}", args) for k, r in enumerate(runs)]
        summaries[name], samples[name] = [s for s, _ in found], [sa for _, sa in found]
        tuned = [scores_of(sa) for sa in samples[name]]
        paired[name] = paired_difference(tuned, scores_of(base_samples), types, resamples=args.resamples)
        tuned = [scores_of(sa, worked=True) for sa in samples[name]]
        worked[name] = paired_difference(tuned, scores_of(base_samples, worked=True), types, resamples=args.resamples)

    n = paired[next(iter(paired))]["headline"]["documents"]
    type_names = list(base_summary["types"])
    lines = [f"Transfer suite, {args.limit} documents per task ({n} in all), test snapshots. Score: mean ± half"]
    lines += ["the range over seeds; minus base: per document (seeds averaged), 95% bootstrap interval over"]
    lines += ["documents.", ""]
    lines += ["Last two columns: the same, an answer stated on its first line before any working counted wrong.", ""]
    lines += ["| model | seeds | transfer | step acc. | minus base | verdict | minus base, worked | verdict |"]
    lines += ["|---|---:|---:|---:|---:|---|---:|---|"]
    base_step = plus_minus(base_summary["step_accuracy"], None)
    lines.append(f"| base | – | {base_summary['headline']:.3f} | {base_step} | – | – | – | – |")
    for name, per_seed in summaries.items():
        head = mean_and_spread([s["headline"] for s in per_seed])
        step = mean_and_spread([s["step_accuracy"] for s in per_seed])
        if len(per_seed) == 1:
            head, step = (head[0], None), (step[0], None)
        h, w = paired[name]["headline"], worked[name]["headline"]
        cells = f"{plus_minus(*head)} | {plus_minus(*step)} | {interval(h)} | {verdict(h)}"
        cells += f" | {interval(w)} | {verdict(w)}"
        lines.append(f"| {name} | {len(per_seed)} | {cells} |")
    lines += ["", "Per task type, minus base [95% interval over documents]", ""]
    lines += ["| model | " + " | ".join(type_names) + " |", "|---|" + "---:|" * len(type_names)]
    base_types = base_summary["types"]
    lines.append("| base (score) | " + " | ".join(f"{base_types[t]['score']:.3f}" for t in type_names) + " |")
    for name, result in paired.items():
        lines.append(f"| {name} | " + " | ".join(interval(result["types"][t]) for t in type_names) + " |")
    lines += ["", "Tasks with an interval wholly below zero (below the base beyond the draw of documents)", ""]
    for name, result in paired.items():
        below = [f"{t.removeprefix('cognitive_transfer_')} {interval(e)}" for t, e in result["tasks"].items()]
        below = [b for b, e in zip(below, result["tasks"].values()) if verdict(e) == "below"]
        lines.append(f"- {name}: {', '.join(below) or 'none'}")
    lines += ["", "How the answers were written, over the seeds: right answers stated on the first line, before any"]
    lines += ["working (guesses, as far as we can tell), and right answers reached after working", ""]
    lines += ["| model | right | right, answer first | right after working | documents | answers first |"]
    lines += ["|---|---:|---:|---:|---:|---:|"]
    lines.append(f"| base | {guesses([base_samples])} |")
    lines += [f"| {name} | {guesses(found)} |" for name, found in samples.items()]
    table = "\n".join(lines)
    print("\n" + table)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "table.md").write_text(table + "\n")
    plot_paired(paired, args.out / "paired.png")
    report = {"settings": {k: str(v) for k, v in vars(args).items()}, "arms": arms, "base": base_summary}
    report |= {"summaries": summaries, "paired": paired, "paired_worked": worked}
    (args.out / "results.json").write_text(json.dumps(report, indent=1))
    print(f"\nWrote {args.out}/table.md, results.json, paired.png")


if __name__ == "__main__":
    main()
