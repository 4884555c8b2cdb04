"""The GRPO study's plot: the SFT start against GRPO's mean over seeds, per task type, one panel per suite (or per
attempt) (study code; the library's plots are cognitive/plots.py)."""

from __future__ import annotations

import math
from pathlib import Path

from cognitive.plots import _pyplot


def plot_before_after(rows: list[dict], path: str | Path, before: str, after: str, columns: int | None = None) -> Path:
    """Grouped bars per panel x task type: `before` (row["start"]) and `after` (row["mean"], error bar row["spread"]),
    one panel per row["suite"], `columns` panels a line (all on one line by default). bench_grpo.py draws the SFT
    start and GRPO's mean over seeds per suite; experiments/plot_reports.py one panel per attempt."""
    plt = _pyplot()
    suites = list(dict.fromkeys(r["suite"] for r in rows))
    columns = min(columns or len(suites), len(suites))
    lines = math.ceil(len(suites) / columns)
    fig, axes = plt.subplots(lines, columns, figsize=(4.5 * columns, 3.8 * lines), squeeze=False)
    panels = [ax for line in axes for ax in line]
    for ax, suite in zip(panels, suites):
        mine = [r for r in rows if r["suite"] == suite]
        xs = range(len(mine))
        ax.bar([x - 0.2 for x in xs], [r["start"] for r in mine], 0.4, label=before)
        ax.bar(
            [x + 0.2 for x in xs],
            [r["mean"] or 0 for r in mine],
            0.4,
            yerr=[r["spread"] or 0 for r in mine],
            capsize=3,
            label=after,
        )
        ax.set_xticks(list(xs), [r["type"] for r in mine], rotation=30, ha="right", fontsize=8)
        ax.set_title(suite, fontsize=9)
        ax.set_ylim(0, 1)
    for ax in panels[len(suites) :]:
        ax.set_visible(False)
    for line in axes:
        line[0].set_ylabel("score")
    panels[0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return Path(path)
