"""What an evaluation writes: results.json, table.md and its plots (recipes/evaluate.py, the ablation, the demo).

table = write_report(out_dir, settings, suite_results=evaluate_suites(...))   # or tasks_results=compare(...)
"""

from __future__ import annotations

import json
from pathlib import Path

from cognitive.evaluation.harness import headline_scores, score_table, suite_headlines, suites_table
from cognitive.plots import plot_score_comparison, plot_suites
from cognitive.tasks import TASK_TYPES


def write_report(
    out: Path, settings: dict, suite_results: dict | None = None, tasks_results: dict | None = None
) -> str:
    """Write results.json, table.md and the plots (suites.png, or scores.png for named tasks); returns the table."""
    out = Path(out)
    if suite_results is not None:
        parts = [suites_table(suite_results)]
        for suite in dict.fromkeys(s for r in suite_results.values() for s in r):
            scores = {label: r[suite]["scores"] for label, r in suite_results.items() if suite in r}
            parts.append(f"### {suite}: every task\n\n{score_table(scores)}")
        table = "\n\n".join(parts)
        plot_suites(suite_results, out / "suites.png", [t.name for t in TASK_TYPES])
        payload = {"settings": settings, "suites": suite_results, "headlines": suite_headlines(suite_results)}
    else:
        scores = {label: r["scores"] for label, r in tasks_results.items()}
        table = score_table(scores)
        limit = settings.get("limit") or "all"
        plot_score_comparison(headline_scores(scores), out / "scores.png", title=f"score per task ({limit} documents)")
        payload = {"settings": settings, "models": tasks_results}
    (out / "results.json").write_text(json.dumps(payload, indent=1) + "\n")
    (out / "table.md").write_text(table + "\n")
    return table
