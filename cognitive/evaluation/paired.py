"""Is a tuned model above or below its base on a suite, beyond the luck of which problems were drawn?

The seed spread an ablation reports (`cognitive.evaluation.ablation`) says how much a score moves between training
seeds on the same documents; it says nothing about the documents themselves. With 6 documents a task, the transfer
suite's 66, the base's 0.100 is 6.6 right answers, and a tuned model's 0.061 is 2.6 fewer: whether that is a drop or
the draw is what this module answers. Both models answered the same documents, so the comparison is paired:

    base = read_scores(Path("evals/base/samples/transfer/base"))
    tuned = [read_scores(p) for p in seed_folders]                  # one per training seed
    result = paired_difference(tuned, base, suite_types(SUITES["transfer"]))
    result["headline"]  # {"difference": -0.04, "low": -0.07, "high": -0.01, "documents": 220}

Per document the difference is the tuned model's score (the mean over its seeds) minus the base's; a task's is the
mean over its documents, a type's the mean over its tasks, the headline the mean over types, as the suite's own
headline (`harness.suite_summary`) is built, so the difference is exactly tuned headline minus base headline. The
interval is a percentile bootstrap that redraws each task's documents with replacement (stratified by task, the seed
averages kept together), 95% by default. It covers the documents, not the training seeds: report the seed spread
beside it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from cognitive.errors import UserError, read_jsonl
from cognitive.evaluation.scoring import answers_first


def read_samples(folder: Path) -> dict[str, dict[str, dict]]:
    """{task: {document id: its row}} from a model's samples folder (`harness.write_samples`: one <task>.jsonl each,
    a row per document with its id, output and metrics)."""
    files = sorted(Path(folder).glob("*.jsonl"))
    if not files:
        raise UserError(f"{folder}: no <task>.jsonl samples")
    samples = {}
    for path in files:
        rows = {}
        for where, row in read_jsonl(path):
            try:
                row["score"] = float(row["score"])
                rows[str(row["id"])] = row
            except (ValueError, KeyError, TypeError) as e:
                raise UserError(f"{where}: not a sample with an id and a score ({e})") from None
        samples[path.stem] = rows
    return samples


def scores_of(samples: dict[str, dict[str, dict]], worked: bool = False) -> dict[str, dict[str, float]]:
    """{task: {document id: score}} of `read_samples`' rows; worked=True counts an answer stated on its first line,
    before any working (`scoring.answers_first`), as wrong: on a zebra puzzle or a string rewrite such an answer is
    a guess, right one time in three or four whatever the model can do."""
    return {
        task: {i: 0.0 if worked and answers_first(row.get("output")) else row["score"] for i, row in rows.items()}
        for task, rows in samples.items()
    }


def read_scores(folder: Path) -> dict[str, dict[str, float]]:
    """{task: {document id: score}} from a model's samples folder (`read_samples`)."""
    return scores_of(read_samples(folder))


def _differences(models: list[dict], base: dict, tasks: list[str]) -> dict[str, np.ndarray]:
    """{task: per document (mean over the models' seeds) - base}, the documents in the base's order."""
    out = {}
    for task in tasks:
        if task not in base:
            raise UserError(f"{task}: the base has no samples of this task")
        ids = sorted(base[task])
        for k, model in enumerate(models):
            if set(model.get(task, {})) != set(ids):
                raise UserError(
                    f"{task}: seed {k} answered other documents than the base "
                    f"({len(model.get(task, {}))} against {len(ids)}; evaluate both with the same --limit and --split)"
                )
        tuned = np.mean([[model[task][i] for i in ids] for model in models], axis=0)
        out[task] = tuned - np.array([base[task][i] for i in ids])
    return out


def _interval(values: np.ndarray, level: float) -> tuple[float, float]:
    tail = 100 * (1 - level) / 2
    low, high = np.percentile(values, [tail, 100 - tail])
    return float(low), float(high)


def paired_difference(
    models: list[dict[str, dict[str, float]]],
    base: dict[str, dict[str, float]],
    types: dict[str, list[str]],
    resamples: int = 4000,
    level: float = 0.95,
    seed: int = 0,
) -> dict:
    """The tuned model's score minus the base's, with a `level` bootstrap interval, for the headline, each type and
    each task. `models`: per training seed {task: {document id: score}} (`read_scores`); `types`: {type: its tasks}
    (`harness.suite_types`); a type with none of its tasks in the base's samples is left out. Every seed must have
    answered exactly the base's documents (a one-line UserError otherwise)."""
    if not models:
        raise UserError("paired_difference: no tuned model")
    types = {name: [t for t in tasks if t in base] for name, tasks in types.items()}
    types = {name: tasks for name, tasks in types.items() if tasks}
    if not types:
        raise UserError("paired_difference: the base's samples hold none of the suite's tasks")
    diffs = _differences(models, base, [t for tasks in types.values() for t in tasks])
    rng = np.random.default_rng(seed)
    # per task: the observed mean difference and `resamples` bootstrap means
    drawn = {}
    for task, d in diffs.items():
        if len(d) == 0:
            raise UserError(f"{task}: no documents")
        drawn[task] = d[rng.integers(0, len(d), size=(resamples, len(d)))].mean(axis=1)

    def entry(observed: float, boot: np.ndarray, documents: int) -> dict:
        low, high = _interval(boot, level)
        return {"difference": float(observed), "low": low, "high": high, "documents": documents}

    tasks_out = {t: entry(d.mean(), drawn[t], len(d)) for t, d in diffs.items()}
    types_out, type_boot = {}, {}
    for name, tasks in types.items():
        type_boot[name] = np.mean([drawn[t] for t in tasks], axis=0)
        observed = float(np.mean([diffs[t].mean() for t in tasks]))
        types_out[name] = entry(observed, type_boot[name], sum(len(diffs[t]) for t in tasks))
    headline_boot = np.mean(list(type_boot.values()), axis=0)
    headline = float(np.mean([v["difference"] for v in types_out.values()]))
    return {
        "headline": entry(headline, headline_boot, sum(len(d) for d in diffs.values())),
        "types": types_out,
        "tasks": tasks_out,
        "level": level,
        "seeds": len(models),
    }


def verdict(entry: dict) -> str:
    """'above', 'below' or 'level': whether the interval lies wholly on one side of zero."""
    if entry["low"] > 0:
        return "above"
    if entry["high"] < 0:
        return "below"
    return "level"
