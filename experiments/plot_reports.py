"""Draw each study's figure from the figures its report keeps: experiments/<study>/figures.json -> <study>.png.

    python experiments/plot_reports.py                       # every study
    python experiments/plot_reports.py grpo_cpu --out /tmp   # one, written elsewhere

The runs behind the reports are gone (git-ignored, on the machines that ran them), so each study keeps the figures
its README reports in figures.json, transcribed from its tables; this script draws them with the project's plot
functions (cognitive/plots.py) or, where only that study plots so, with the study's own (grpo_cpu/grpo_plot.py,
weight_interpolation/interpolation_plot.py, loaded from their folders).
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

from cognitive.errors import ArgumentParser
from cognitive.plots import plot_ablation, plot_bars, plot_cpu_speed, plot_paired, plot_paired_suites

HERE = Path(__file__).resolve().parent


def study_module(study: str, name: str):
    """A module from a study's folder (its own plot function), loaded by path: no study folder is on sys.path."""
    spec = importlib.util.spec_from_file_location(f"{study}_{name}", HERE / study / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def table(figures: dict) -> dict:
    """{row: {column: {"mean", "spread"}}} of figures["rows"] for the columns in figures["plot"] (a cell not kept is
    left out; a spread not kept is None)."""
    return {
        row: {c: {"mean": cells[c][0], "spread": cells[c][1]} for c in figures["plot"] if cells.get(c)}
        for row, cells in figures["rows"].items()
    }


def module_ablation(figures: dict, path: Path) -> None:
    plot_ablation(table(figures), path)


def styles(figures: dict, path: Path) -> None:  # response_styles, practice_problems: the scores and step accuracy
    plot_ablation(table(figures), path, ylabel="score / step accuracy (mean over seeds)")


def arithmetic_ceiling(figures: dict, path: Path) -> None:
    probe = {m: {c: {"mean": share, "spread": None} for c, share in by.items()} for m, by in figures["probe"].items()}
    plot_ablation(probe, path, ylabel="single steps computed right (40 a class)")


def weight_interpolation(figures: dict, path: Path) -> None:
    rows = {float(alpha): cells for alpha, cells in figures["rows"].items()}
    curves = {c: {a: tuple(cells[c]) for a, cells in rows.items() if a > 0} for c in figures["plot"]}
    base = {c: rows[0.0][c][0] for c in figures["plot"]}
    plot = study_module("weight_interpolation", "interpolation_plot").plot_interpolation
    plot(curves, base, path, figures["chosen"], ylabel="validation score / step accuracy (mean over seeds)")


def transfer_paired(figures: dict, path: Path) -> None:
    def entry(cell):
        return dict(zip(("difference", "low", "high"), cell))

    results = {
        arm: {
            "headline": entry(cells["minus base"]),
            "types": {"guesses counted wrong": entry(cells["minus base, guesses wrong"])},
            "level": figures["level"],
        }
        for arm, cells in figures["rows"].items()
        if "minus base" in cells
    }
    plot_paired(results, path)


def grpo_cpu(figures: dict, path: Path) -> None:
    rows = [{"suite": f"{a['attempt']}\n{a['measurement']}", **r} for a in figures["attempts"] for r in a["rows"]]
    plot = study_module("grpo_cpu", "grpo_plot").plot_before_after
    plot(rows, path, "SFT start", "+ GRPO (mean over 2 seeds)", columns=5)


def cpu_training_memory(figures: dict, path: Path) -> None:
    shape = figures["plot"]["shape"]
    bars = {label: figures["runs"][run][config][shape][0] for run, config, label in figures["plot"]["bars"]}
    plot_bars(bars, path, ylabel=f"peak RSS at {shape.replace('x', ' x ')} (GiB)", title="CPU training memory, 135M")


def cpu_speed(figures: dict, path: Path) -> None:  # the benchmark's own results.json, as its run wrote it
    plot_cpu_speed(figures, path)
    runs = (
        ("run5", "cpu_speed_suites.png"),
        ("run6", "cpu_speed_suites_run6.png"),
        ("run7", "cpu_speed_suites_run7.png"),
        ("run8", "cpu_speed_suites_run8.png"),
    )
    for run, png in runs:
        suites = figures.get(f"suites_minutes_{run}")  # bench_eval.py's runs of one session, transcribed
        if suites:
            hows = [how for how in suites if how not in ("note", "answers differing", "cpu_seconds")]
            bars = {f"{suite}\n{how}": suites[how][suite] for suite in suites[hows[0]] for how in hows}
            plot_bars(
                bars,
                path.with_name(png),
                "minutes",
                f"the offline suites, 135M, 2 cores ({run.replace('run', 'run ')})",
            )
    threads = figures.get("threads_run7")  # bench_cpu_speed.py --sections threads, its rows as printed
    if threads:
        bars = {
            f"{r['policy']}\n{r['busy']} busy, batch {batch}": rate
            for r in threads["rows"]
            for batch, rate in r["tokens_per_s"].items()
        }
        plot_bars(bars, path.with_name("cpu_speed_threads_run7.png"), "generated tokens/s", threads["title"])
    no_bf16 = figures.get("no_bf16_run8")  # bench_cpu_speed.py's train rows on a CPU without native bf16
    if no_bf16:
        rss = no_bf16["peak_rss_gib"]
        bars = {f"{k}\n{rss[k]} GiB": v for k, v in no_bf16["tokens_per_s"].items()}
        plot_bars(bars, path.with_name("cpu_speed_no_bf16_run8.png"), "real tokens/s", no_bf16["title"])
    checkpointing = figures.get("checkpointing_run5")  # run 5's training, transcribed
    if checkpointing:
        rss = checkpointing["peak_rss_full_rows_gib"]
        bars = {f"{k}\n{rss[k]} GiB full rows" if k in rss else k: v for k, v in checkpointing["tokens_per_s"].items()}
        title = "LoRA recipe, 4 x 1024, run 5 (4 GB = 3.73 GiB)"
        plot_bars(bars, path.with_name("cpu_speed_checkpointing.png"), "real tokens/s", title)


def grpo_defaults(figures: dict, path: Path) -> None:  # recipes/evaluate.py's paired.png, headline and types
    plot_paired_suites(figures["comparisons"], figures["reference"], path)


STUDIES = {
    "module_ablation": module_ablation,
    "arithmetic_ceiling": arithmetic_ceiling,
    "response_styles": styles,
    "practice_problems": styles,
    "weight_interpolation": weight_interpolation,
    "transfer_paired": transfer_paired,
    "grpo_cpu": grpo_cpu,
    "cpu_training_memory": cpu_training_memory,
    "cpu_speed": cpu_speed,
    "grpo_defaults": grpo_defaults,
}


def draw(study: str, out: Path | None = None) -> Path:
    """<out or the study's folder>/<study>.png from experiments/<study>/figures.json."""
    figures = json.loads((HERE / study / "figures.json").read_text())
    path = (out or HERE / study) / f"{study}.png"
    STUDIES[study](figures, path)
    return path


def build_parser() -> ArgumentParser:
    parser = ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("studies", nargs="*", help=f"default: every study ({', '.join(STUDIES)})")
    parser.add_argument("--out", type=Path, default=None, help="write the PNGs here instead of the study folders")
    return parser


def main(argv=None) -> None:
    parser = build_parser()
    args = parser.parse_args(argv)
    if unknown := [s for s in args.studies if s not in STUDIES]:
        parser.error(f"unknown study {', '.join(unknown)} (known: {', '.join(STUDIES)})")
    for study in args.studies or STUDIES:
        path = draw(study, args.out)
        print(f"{path} ({path.stat().st_size / 1024:.0f} KB)")


if __name__ == "__main__":
    main()
