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

recipes/evaluate.py builds on it (docs/evaluation.md): `evaluation_arms` reads its model flags into arms (a
model and its training seeds), `compare_samples` gives an arm's difference from the reference as scored and worked
(answers stated first counted wrong) with a verdict per entry, and `evaluation_paired` / `paired_report` compare every
arm with the reference per suite from the samples the evaluation wrote, beside each arm's output shares
(cognitive/evaluation/outputs.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cognitive.data.answers import answers_first
from cognitive.errors import UserError, read_jsonl


def read_samples(folder: Path, tasks=None) -> dict[str, dict[str, dict]]:
    """{task: {document id: its row}} from a model's samples folder (`harness.write_samples`: one <task>.jsonl each,
    a row per document with its id, output and metrics); `tasks`: only these."""
    files = sorted(p for p in Path(folder).glob("*.jsonl") if tasks is None or p.stem in tasks)
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
    before any working (`answers.answers_first`), as wrong: on a zebra puzzle or a string rewrite such an answer is
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


# ------------------------------------------------------------------------------------------ arms of an evaluation
@dataclass
class Arm:
    """One model of a paired evaluation: its label and one ModelSpec per training seed (evaluated apart, averaged
    per document). `kind`: base, adapter, release or modules (the flag it came from); `paths`: what each seed was
    loaded from (the base's name, the run or release directories)."""

    label: str
    kind: str
    specs: list
    paths: list[str]


FLAGS = {"base": "--base", "adapter": "--adapter", "release": "--release", "modules": "--modules_run"}


def parse_arm(kind: str, value: str, trust_remote_code: bool = False) -> Arm:
    """An arm from a recipes/evaluate.py value `[NAME=]PATH[,PATH...]` (kind: a key of FLAGS): one path per
    training seed of one model. Unnamed, it is labelled as its one model is (`adapter:<run name>`), or
    `<kind>:<name>+<name>...` for several; each seed of several is labelled `<arm>-s<k>`. A value that is an
    existing path is one path, whatever it holds."""
    from cognitive.evaluation.harness import ModelSpec

    name, paths = None, [value]
    if not Path(value).exists():
        head, sep, tail = value.partition("=")
        if sep and "/" not in head:
            name, value = head, tail
        paths = [p for p in value.split(",") if p]
    if not paths or name == "" or (kind == "base" and len(paths) > 1):
        what = "NAME" if kind == "base" else "[NAME=]PATH[,PATH...] (one path per training seed)"
        raise UserError(f"{FLAGS[kind]} {value!r}: expected {what}")

    def spec(path: str, label: str | None) -> ModelSpec:
        if kind == "base":
            return ModelSpec.base(path, label=label or "base")
        if kind == "release":
            return ModelSpec.release(path, label=label, trust_remote_code=trust_remote_code)
        return {"adapter": ModelSpec.adapter, "modules": ModelSpec.modules}[kind](path, label)

    if len(paths) == 1:
        specs = [spec(paths[0], name)]
        label = specs[0].label
    else:
        label = name or f"{kind}:" + "+".join(Path(p).name for p in paths)
        specs = [spec(p, f"{label}-s{k}") for k, p in enumerate(paths)]
    return Arm(label, kind, specs, [s.cognitive_run or s.peft or s.pretrained for s in specs])


def task_types(tasks) -> dict[str, list[str]]:
    """{task type: the given tasks of that type} for tasks of any suite (`harness.suite_types`); a task of no
    suite is a type of its own."""
    from cognitive.evaluation.harness import SUITES, suite_types

    type_of = {t: name for suite in SUITES.values() for name, ts in suite_types(suite).items() for t in ts}
    out: dict[str, list[str]] = {}
    for task in sorted(tasks):
        out.setdefault(type_of.get(task, task), []).append(task)
    return out


def evaluation_arms(flags, compare_to: str | None = None) -> tuple[list[Arm], str]:
    """recipes/evaluate.py's arms, in the order base, adapters, releases, modules runs, and the label of the one the
    others are compared with (compare_to, else the first). `flags`: its parsed arguments (base, adapter, release,
    modules_run, trust_remote_code). No model, two of one label or an unknown compare_to: a UserError."""
    arms = [parse_arm("base", flags.base)] if flags.base else []
    arms += [parse_arm("adapter", v) for v in flags.adapter]
    arms += [parse_arm("release", v, flags.trust_remote_code) for v in flags.release]
    arms += [parse_arm("modules", v) for v in flags.modules_run]
    if not arms:
        raise UserError("give at least one model (--base, --adapter, --release or --modules_run)")
    labels = [a.label for a in arms] + [s.label for a in arms if len(a.specs) > 1 for s in a.specs]
    if len(set(labels)) < len(labels):
        raise UserError(f"two models share a label: {labels} (name an arm: --adapter NAME=DIR[,DIR...])")
    reference = compare_to or arms[0].label
    if reference not in [a.label for a in arms]:
        raise UserError(
            f"--compare_to {reference!r}: not a model of this evaluation ({', '.join(a.label for a in arms)})"
        )
    return arms, reference


def average_seeds(models: list[dict[str, dict[str, float]]]) -> dict[str, dict[str, float]]:
    """{task: {document id: the mean over the seeds}}; every seed must hold the first one's documents."""
    for k, model in enumerate(models[1:], 1):
        if {t: set(d) for t, d in model.items()} != {t: set(d) for t, d in models[0].items()}:
            raise UserError(f"seed {k} answered other documents than seed 0")
    return {task: {i: float(np.mean([m[task][i] for m in models])) for i in docs} for task, docs in models[0].items()}


def compare_samples(
    arm: list[dict],
    reference: list[dict],
    types: dict[str, list[str]],
    resamples: int = 4000,
    level: float = 0.95,
    seed: int = 0,
) -> dict:
    """{"scored": ..., "worked": ...}: `paired_difference` of an arm's seeds against a reference's (seeds averaged
    per document), on read_samples dicts, as scored and with answers stated first counted wrong; every entry carries
    its `verdict`. Both must hold the same tasks and documents (a one-line UserError otherwise)."""
    tasks = {t for tasks in types.values() for t in tasks}
    for k, samples in enumerate(arm):
        mine, theirs = set(samples) & tasks, set(reference[0]) & tasks
        if mine != theirs:
            extra = sorted(mine ^ theirs)[0]
            raise UserError(f"{extra}: in the samples of one model and not of the other (seed {k})")
    out = {}
    for how, worked in (("scored", False), ("worked", True)):
        base = average_seeds([scores_of(s, worked) for s in reference])
        result = paired_difference([scores_of(s, worked) for s in arm], base, types, resamples, level, seed)
        for entry in [result["headline"], *result["types"].values(), *result["tasks"].values()]:
            entry["verdict"] = verdict(entry)
        out[how] = result
    return out


def paired_report(
    samples_dirs: dict[str, Path],
    suite_types_of: dict[str, dict[str, list[str]]],
    arms: list[Arm],
    reference: str,
    resamples: int = 4000,
    level: float = 0.95,
) -> dict:
    """Every arm but `reference` against it, per suite, and every arm's output shares (`outputs.output_shares`).
    `samples_dirs`: {suite: the folder holding <model label>/<task>.jsonl}; `suite_types_of`: {suite: {type: its
    tasks}}. Models not asked the same documents: a UserError naming both."""
    from cognitive.evaluation.harness import samples_folder
    from cognitive.evaluation.outputs import output_shares

    def samples(arm: Arm, suite: str) -> list[dict]:
        tasks = {t for ts in suite_types_of[suite].values() for t in ts}
        return [read_samples(samples_dirs[suite] / samples_folder(s.label), tasks) for s in arm.specs]

    found = {(a.label, suite): samples(a, suite) for a in arms for suite in samples_dirs}
    comparisons, shares = {}, {}
    for arm in arms:
        shares[arm.label] = {
            suite: output_shares([row for s in found[arm.label, suite] for rows in s.values() for row in rows.values()])
            for suite in samples_dirs
        }
        if arm.label == reference:
            continue
        comparisons[arm.label] = {}
        for suite, types in suite_types_of.items():
            try:
                comparisons[arm.label][suite] = compare_samples(
                    found[arm.label, suite], found[reference, suite], types, resamples, level
                )
            except UserError as e:
                raise UserError(
                    f"{arm.label} and {reference} were not asked the same documents ({suite}: {e})"
                ) from None
    return {
        "reference": reference,
        "level": level,
        "resamples": resamples,
        "arms": {a.label: {"kind": a.kind, "paths": a.paths, "seeds": [s.label for s in a.specs]} for a in arms},
        "comparisons": comparisons,
        "shares": shares,
    }


def evaluation_paired(samples_dir: Path, suites: list[str] | None, arms: list[Arm], reference: str) -> dict | None:
    """`paired_report` over what recipes/evaluate.py wrote in `samples_dir`: per suite (<suite>/<model>/<task>.jsonl)
    or, for named tasks (suites=None), one part "tasks" (<model>/<task>.jsonl) of the project's own tasks. The
    standard suite is left out: stock lm-eval tasks log no per-document `score` (None when nothing is left)."""
    from cognitive.evaluation.harness import SUITES, own_task_names, samples_folder, suite_types

    samples_dir = Path(samples_dir)
    if suites is not None:
        suites = [s for s in suites if not SUITES[s].needs_hub]
        dirs = {s: samples_dir / s for s in suites}
        types = {s: suite_types(SUITES[s]) for s in suites}
    else:
        first = next(a for a in arms if a.label == reference).specs[0]
        found = {p.stem for p in (samples_dir / samples_folder(first.label)).glob("*.jsonl")}
        dirs, types = {"tasks": samples_dir}, {"tasks": task_types(found & own_task_names())}
    types = {part: t for part, t in types.items() if t}
    return paired_report({p: dirs[p] for p in types}, types, arms, reference) if types else None
