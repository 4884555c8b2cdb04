"""Token lengths of the training styles: the guide's response layout against the concise one (and the column
style, the concise one with column working), per task type and difficulty, with the SmolLM2 tokenizer (the
embedded model's), and which records fit a token budget.

    python tests/performance/bench_styles.py                    # 50 records per task type and difficulty
    python tests/performance/bench_styles.py --per_cell 200 --budget 512 --png results/styles/lengths.png

For each task type x difficulty: the median tokens of the response in each style, the saving of the concise style
(target: >= 40% per task type), and the share of records whose whole example (the guide's system + user prompt,
the longest prompt style, + the concise response) fits `--budget` tokens (target: basic records of every type fit
512). Records are the generators' own (training seeds), the same ones data/configs/*.yaml builds from.
"""

from __future__ import annotations

import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from cognitive import tasks  # noqa: E402
from cognitive.data.filters import TokenCounter  # noqa: E402
from cognitive.data.generators import TRAIN_SEEDS, generate_example  # noqa: E402
from cognitive.data.response import render_response  # noqa: E402
from cognitive.data.schema import DifficultyLevel  # noqa: E402
from cognitive.errors import ArgumentParser  # noqa: E402


def measure(per_cell: int, budget: int, tokenizer: str) -> list[dict]:
    counter = TokenCounter(tokenizer)
    rows = []
    for task in tasks.TASK_TYPES:
        for level in DifficultyLevel:
            examples = [generate_example(task.name, level.value, TRAIN_SEEDS.start + i) for i in range(per_cell)]
            guide = counter.count_texts([render_response(ex) for ex in examples])
            concise = counter.count_texts([render_response(ex, "concise") for ex in examples])
            column = counter.count_texts([render_response(ex, "column") for ex in examples])
            whole = counter.count_many(examples, "concise")
            rows.append(
                {
                    "task": task.name,
                    "difficulty": level.value,
                    "guide_p50": statistics.median(guide),
                    "concise_p50": statistics.median(concise),
                    "column_p50": statistics.median(column),
                    "saving": 1 - sum(concise) / sum(guide),
                    "whole_concise_p50": statistics.median(whole),
                    "fits": sum(n <= budget for n in whole) / len(whole),
                }
            )
    return rows


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = [f"{r['task']}\n{r['difficulty']}" for r in rows]
    x = range(len(rows))
    fig, ax = plt.subplots(figsize=(max(8, len(rows) * 0.55), 4.5))
    for offset, style in ((-0.27, "guide"), (0.0, "concise"), (0.27, "column")):
        ax.bar([i + offset for i in x], [r[f"{style}_p50"] for r in rows], width=0.27, label=style)
    ax.set_xticks(list(x), labels, rotation=90, fontsize=7)
    ax.set_ylabel("response tokens (median)")
    ax.legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)


def build_parser() -> ArgumentParser:
    parser = ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per_cell", type=int, default=50)
    parser.add_argument("--budget", type=int, default=512)
    parser.add_argument("--tokenizer", default="embedded:smollm2-135m-instruct")
    parser.add_argument("--png", type=Path, default=None)
    return parser


def main() -> None:
    parser = build_parser()
    args = parser.parse_args()
    rows = measure(args.per_cell, args.budget, args.tokenizer)
    print(
        f"| task | difficulty | guide p50 | concise p50 | saving | column p50 | whole example p50 (concise) "
        f"| fit {args.budget} |"
    )
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(
            f"| {r['task']} | {r['difficulty']} | {r['guide_p50']:.0f} | {r['concise_p50']:.0f} | "
            f"{r['saving']:.0%} | {r['column_p50']:.0f} | {r['whole_concise_p50']:.0f} | {r['fits']:.0%} |"
        )
    for task in tasks.TASK_TYPES:
        mine = [r for r in rows if r["task"] == task.name]
        saving = statistics.mean(r["saving"] for r in mine)
        basic = next(r for r in mine if r["difficulty"] == "basic")
        print(
            f"{task.name}: concise saves {saving:.0%} of response tokens (target >= 40%); "
            f"basic records fitting {args.budget} tokens: {basic['fits']:.0%}"
        )
    if args.png:
        plot(rows, args.png)
        print(f"plot: {args.png}")


if __name__ == "__main__":
    main()
