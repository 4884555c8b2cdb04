"""PNG plots of results people look at (matplotlib, headless Agg backend)."""

from __future__ import annotations

from pathlib import Path


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_training_curves(log_history: list[dict], path: str | Path) -> Path | None:
    """Training loss (and eval loss when logged) and learning rate against the step."""
    train = [(e["step"], e["loss"]) for e in log_history if "loss" in e]
    evals = [(e["step"], e["eval_loss"]) for e in log_history if "eval_loss" in e]
    lrs = [(e["step"], e["learning_rate"]) for e in log_history if "learning_rate" in e]
    if not train and not evals:
        return None
    plt = _pyplot()
    fig, (ax_loss, ax_lr) = plt.subplots(1, 2, figsize=(10, 3.5))
    if train:
        ax_loss.plot(*zip(*train), label="train loss")
    if evals:
        ax_loss.plot(*zip(*evals), "o-", label="eval loss")
    ax_loss.set_xlabel("step")
    ax_loss.set_ylabel("loss")
    ax_loss.legend()
    if lrs:
        ax_lr.plot(*zip(*lrs))
    ax_lr.set_xlabel("step")
    ax_lr.set_ylabel("learning rate")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return Path(path)


def plot_reward_curves(log_history: list[dict], path: str | Path) -> Path | None:
    """A GRPO run's log: the mean reward of each reward function (and their weighted sum), the mean completion
    length, and the KL to the reference (when beta > 0) against the step. None (nothing written) for a log
    without rewards (an SFT run)."""
    rewards = sorted({k for e in log_history for k in e if k.startswith("rewards/") and k.endswith("/mean")})
    if not rewards and not any("reward" in e for e in log_history):
        return None

    def series(key):
        return [(e["step"], e[key]) for e in log_history if key in e and e[key] == e[key]]  # NaN: no reward applied

    plt = _pyplot()
    fig, (ax_reward, ax_length, ax_kl) = plt.subplots(1, 3, figsize=(14, 3.5))
    for key in rewards:
        if series(key):
            ax_reward.plot(*zip(*series(key)), label=key.removeprefix("rewards/").removesuffix("/mean"))
    if series("reward"):
        ax_reward.plot(*zip(*series("reward")), "k--", label="weighted total")
    ax_reward.set_xlabel("step")
    ax_reward.set_ylabel("mean reward")
    ax_reward.legend(fontsize=8)
    if series("completions/mean_length"):
        ax_length.plot(*zip(*series("completions/mean_length")))
    ax_length.set_xlabel("step")
    ax_length.set_ylabel("mean completion length (tokens)")
    if series("kl"):
        ax_kl.plot(*zip(*series("kl")))
    else:
        ax_kl.text(0.5, 0.5, "no KL logged (beta 0)", ha="center", va="center", transform=ax_kl.transAxes)
    ax_kl.set_xlabel("step")
    ax_kl.set_ylabel("KL to the reference")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return Path(path)


def plot_score_comparison(scores: dict[str, dict[str, float]], path: str | Path, title: str = "") -> Path:
    """Grouped bars: one group per task, one bar per model. `scores[model][task] = value in [0, 1]`."""
    plt = _pyplot()
    models = list(scores)
    tasks = sorted({t for s in scores.values() for t in s})
    width = 0.8 / max(len(models), 1)
    fig, ax = plt.subplots(figsize=(max(5, 1.4 * len(tasks) * max(len(models), 1) / 2 + 2), 3.5))
    for i, model in enumerate(models):
        xs = [t + i * width for t in range(len(tasks))]
        ax.bar(xs, [scores[model].get(task, 0.0) for task in tasks], width, label=model)
    ax.set_xticks([t + width * (len(models) - 1) / 2 for t in range(len(tasks))], tasks, rotation=15)
    ax.set_ylim(0, 1)
    ax.set_ylabel("score")
    ax.set_title(title)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return Path(path)


def plot_bars(values: dict[str, float], path: str | Path, ylabel: str = "", title: str = "") -> Path:
    """One bar per named value (e.g. tokens/s per benchmark case)."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(max(5, 1.1 * len(values) + 2), 3.5))
    ax.bar(list(values), list(values.values()))
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.tick_params(axis="x", rotation=20)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return Path(path)


def plot_histograms(series: dict[str, list[int]], path: Path, xlabel: str) -> None:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(8, 4))
    everything = [v for values in series.values() for v in values] or [0]
    lo, hi = min(everything), max(everything)
    bins = list(range(lo, hi + 2)) if hi - lo < 40 else 50  # integer bins for small counts (steps)
    for name, values in sorted(series.items()):
        if values:
            ax.hist(values, bins=bins, range=(lo, hi + 1), alpha=0.55, label=f"{name} (n={len(values)})")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("examples")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_suites(results: dict, path: str | Path, type_names: list[str]) -> Path:
    """One panel per suite: a bar per task type (and the headline) per model, with standard-error whiskers.
    `results` is cognitive.evaluation.harness.evaluate_suites' {model: {suite: summary}}."""
    plt = _pyplot()
    models = list(results)
    suites = list(dict.fromkeys(s for r in results.values() for s in r))
    columns = ["headline", *type_names]
    fig, axes = plt.subplots(1, len(suites), figsize=(4.2 * len(suites), 3.6), squeeze=False)
    width = 0.8 / max(len(models), 1)
    for ax, suite in zip(axes[0], suites):
        for i, model in enumerate(models):
            summary = results[model].get(suite, {"types": {}, "headline": None})
            values, errors = [], []
            for col in columns:
                entry = (
                    {"score": summary["headline"], "stderr": summary.get("headline_stderr")}
                    if col == "headline"
                    else summary["types"].get(col, {})
                )
                values.append(entry.get("score") or 0.0)
                errors.append(entry.get("stderr") or 0.0)
            xs = [c + i * width for c in range(len(columns))]
            ax.bar(xs, values, width, yerr=errors, capsize=2, label=model)
        ax.set_xticks(
            [c + width * (len(models) - 1) / 2 for c in range(len(columns))],
            columns,
            rotation=35,
            ha="right",
            fontsize=8,
        )
        ax.set_ylim(0, 1)
        ax.set_title(suite)
    axes[0][0].set_ylabel("score")
    axes[0][-1].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return Path(path)


def plot_ablation(summary: dict, path: str | Path, ylabel: str = "headline (mean over seeds)") -> Path:
    """The module ablation (cognitive.evaluation.ablation.aggregate): grouped bars per suite, one bar per arm (mean
    over seeds), whiskers = the spread over seeds. `summary` is {arm: {suite: {"mean", "spread"}}}, so any columns of
    scores in [0, 1] can stand for the suites (experiments/plot_reports.py adds step accuracy beside them)."""
    plt = _pyplot()
    arms = list(summary)
    suites = list(dict.fromkeys(s for by_suite in summary.values() for s in by_suite))
    width = 0.8 / max(len(arms), 1)
    fig, ax = plt.subplots(figsize=(max(6, 2.2 * len(suites) + 2), 3.8))
    for i, arm in enumerate(arms):
        means = [(summary[arm].get(s) or {}).get("mean") or 0.0 for s in suites]
        spreads = [(summary[arm].get(s) or {}).get("spread") or 0.0 for s in suites]
        ax.bar([k + i * width for k in range(len(suites))], means, width, yerr=spreads, capsize=2, label=arm)
    ax.set_xticks([k + width * (len(arms) - 1) / 2 for k in range(len(suites))], suites)
    ax.set_ylim(0, 1)
    ax.set_ylabel(ylabel)
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return Path(path)


def _paired_axes(ax, results: dict[str, dict], title: str = "") -> None:
    """One forest plot on `ax`: a row per arm, a marker per task type and the headline, whiskers = the interval."""
    arms = list(results)
    names = ["headline", *dict.fromkeys(t for r in results.values() for t in r["types"])]
    height = 0.8 / len(names)
    for j, name in enumerate(names):
        rows, diffs, errors = [], [], [[], []]
        for i, arm in enumerate(arms):
            entry = results[arm]["headline"] if name == "headline" else results[arm]["types"].get(name)
            if entry is None:
                continue
            rows.append(i - 0.4 + (j + 0.5) * height)
            diffs.append(entry["difference"])
            errors[0].append(entry["difference"] - entry["low"])
            errors[1].append(entry["high"] - entry["difference"])
        style = {"color": "black", "marker": "D", "markersize": 6} if name == "headline" else {"marker": "o"}
        ax.errorbar(diffs, rows, xerr=errors, linestyle="none", capsize=2, label=name, **style)
    ax.axvline(0, color="grey", linewidth=1)
    ax.set_yticks(range(len(arms)), arms)
    ax.set_ylim(len(arms) - 0.5, -0.5)
    if title:
        ax.set_title(title, fontsize=9)


def plot_paired(results: dict[str, dict], path: str | Path) -> Path:
    """Tuned minus base per arm (cognitive.evaluation.paired.paired_difference results, {arm: result}): one row per
    arm and one marker per task type and the headline, whiskers = the bootstrap interval over documents; the zero
    line is the base."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 1.2 + 0.9 * len(results)))
    _paired_axes(ax, results)
    level = next(iter(results.values()))["level"]
    ax.set_xlabel(f"score minus the base's (per document, {level:.0%} bootstrap interval over documents)")
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1, 0.5))
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return Path(path)


def plot_paired_suites(comparisons: dict[str, dict[str, dict]], reference: str, path: str | Path) -> Path:
    """recipes/evaluate.py's paired.png: a panel per suite (rows) as scored and worked (columns), each a forest plot
    of every arm minus `reference` ({arm: {suite: {"scored": result, "worked": result}}},
    cognitive.evaluation.paired.paired_report's comparisons)."""
    plt = _pyplot()
    suites = list(dict.fromkeys(s for per_suite in comparisons.values() for s in per_suite))
    arms = len(comparisons)
    fig, axes = plt.subplots(
        len(suites), 2, figsize=(12, (1.0 + 0.6 * arms) * len(suites) + 0.6), sharex=True, squeeze=False
    )
    level = 0.95
    for row, suite in enumerate(suites):
        for col, how in enumerate(("scored", "worked")):
            results = {arm: c[suite][how] for arm, c in comparisons.items() if suite in c}
            level = next(iter(results.values()))["level"]
            _paired_axes(axes[row][col], results, f"{suite}, {how}")
    for col, how in enumerate(("as scored", "worked (answers stated first counted wrong)")):
        axes[-1][col].set_xlabel(f"minus {reference}, {how}\n(per document, {level:.0%} interval over documents)")
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, fontsize=7, loc="center left", bbox_to_anchor=(1, 0.5))
    fig.tight_layout()
    fig.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(fig)
    return Path(path)


def plot_cpu_speed(summary: dict, path: str | Path) -> Path:
    """tests/performance/bench_cpu_speed.py: training real tokens/s per configuration (MFU above each bar) and
    generation tokens/s at batch 1 and 16, old recipe beside new, then each OpenMP thread setting quiet and loaded."""
    plt = _pyplot()
    fig, (ax_train, ax_gen) = plt.subplots(1, 2, figsize=(14, 4.5), gridspec_kw={"width_ratios": [2.2, 1]})
    train = [r for r in summary.get("train", []) if "tokens_per_s" in r]
    labels = [f"{r['config']}\n{r['recipe']} {r['shape']}" for r in train]
    bars = ax_train.bar(range(len(train)), [r["tokens_per_s"] for r in train], color="tab:blue")
    for bar, r in zip(bars, train):
        ax_train.annotate(f"{100 * r['mfu']:.0f}%", (bar.get_x() + bar.get_width() / 2, bar.get_height()), ha="center")
    ax_train.set_xticks(range(len(train)), labels, rotation=60, ha="right", fontsize=7)
    ax_train.set_ylabel("real tokens/s (MFU above)")
    reference = summary.get("reference_tflops")
    ax_train.set_title(f"training, matmul reference {reference or 0:.3f} TFLOP/s")
    threads = [{"config": f"{t['policy']}, {t['busy']} busy", **t} for t in summary.get("thread_policies", [])]
    generate = summary.get("generate", []) + threads  # the thread settings' rows beside the configurations'
    batches = sorted({b for g in generate for b in g["tokens_per_s"]}, key=int)
    width = 0.8 / max(1, len(generate))
    for i, g in enumerate(generate):
        xs = [j + i * width for j in range(len(batches))]
        ax_gen.bar(xs, [g["tokens_per_s"].get(b, 0) for b in batches], width, label=g["config"])
    ax_gen.set_xticks(
        [j + width * (len(generate) - 1) / 2 for j in range(len(batches))], [f"batch {b}" for b in batches]
    )
    ax_gen.set_ylabel("generated tokens/s")
    ax_gen.set_title("generation")
    if generate:
        ax_gen.legend(fontsize=8)
    fig.suptitle(f"{summary.get('cpu', '')}, load average {summary.get('load_average_start')}", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return Path(path)
