"""The weight-interpolation study's plot: validation headlines against the interpolation weight alpha (study code;
the library's plots are cognitive/plots.py)."""

from __future__ import annotations

from pathlib import Path

from cognitive.plots import _pyplot


def plot_interpolation(
    curves: dict[str, dict[float, tuple]],
    base: dict[str, float],
    path: str | Path,
    chosen=None,
    ylabel: str = "headline (validation, mean over seeds)",
):
    """Scores against the interpolation weight alpha (bench_interpolate.py, experiments/plot_reports.py): one line
    per suite, {suite: {alpha: (mean, spread)}}, whiskers = the spread over seeds; each suite's base score is the point
    at alpha 0 (and a dotted line); the chosen alpha a vertical line."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 3.8))
    for i, (suite, points) in enumerate(curves.items()):
        color = f"C{i}"
        alphas = [0.0, *points]
        means = [base.get(suite) or 0.0, *[(m or 0.0) for m, _ in points.values()]]
        spreads = [0.0, *[(s or 0.0) for _, s in points.values()]]
        ax.errorbar(alphas, means, yerr=spreads, capsize=3, marker="o", color=color, label=suite)
        ax.axhline(base.get(suite) or 0.0, color=color, linestyle=":", linewidth=1)
    if chosen is not None:
        ax.axvline(chosen, color="grey", linestyle="--", linewidth=1, label=f"chosen alpha {chosen:g}")
    tops = [(m or 0.0) + (s or 0.0) for points in curves.values() for m, s in points.values()]
    top = max([v or 0.0 for v in base.values()] + tops)
    ax.set_ylim(0, max(0.1, 1.15 * top))
    ax.set_xlabel("alpha (0 = base, 1 = the trained run)")
    ax.set_ylabel(ylabel)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return Path(path)
