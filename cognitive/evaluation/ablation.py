"""The module ablation: which cognitive modules help, measured against LoRA alone (recipes/ablate.py runs it).

An arm is one way to train the same recipe on the same data with the same steps and seeds:

    base                 the untouched base (not trained; evaluated once, it does not depend on the seed)
    lora                 LoRA only: every cognitive module off
    lora+<module>        LoRA and that one module (working_memory, reasoning_heads, state_tracking, planning_module),
                         at the recipe's widths
    lora+all             LoRA and every module (the recipe's block, all enabled)

Each arm x seed is trained by recipes/sft.py and evaluated by recipes/evaluate.py on the suites; this module turns the
arms into the recipe overrides, reads the results back, and aggregates: per arm and suite the mean headline over the
seeds and its spread (half the range: with two seeds, each seed's distance from the mean), and the same for the step
accuracy. An arm *beats* LoRA-only on a suite when its mean minus its spread is above LoRA-only's mean plus its spread.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import yaml

from cognitive.errors import UserError, load_yaml_mapping
from cognitive.evaluation.harness import plus_minus
from cognitive.model.modules import CognitiveModulesConfig

MODULE_NAMES = tuple(f.name for f in dataclasses.fields(CognitiveModulesConfig))
ARMS = ("base", "lora", *(f"lora+{m}" for m in MODULE_NAMES), "lora+all")


def parse_arms(text: str) -> list[str]:
    """'base,lora,lora+all' -> the arms, in that order; an unknown arm is a one-line UserError naming it."""
    arms = [a.strip() for a in text.split(",") if a.strip()]
    for arm in arms:
        if arm not in ARMS:
            raise UserError(f"--arms: unknown arm '{arm}' (known: {', '.join(ARMS)})")
    if len(set(arms)) < len(arms):
        raise UserError(f"--arms: an arm is named twice in '{text}'")
    if not arms:
        raise UserError("--arms: name at least one arm")
    return arms


def arm_modules(arm: str, recipe_block: dict | None) -> dict:
    """The `cognitive_modules` block that trains `arm` from a recipe's block (None: the recipe has none, so the
    modules' default widths): every module listed, enabled only where the arm says so, at the recipe's widths."""
    if arm == "base":
        raise ValueError("the base arm is not trained")
    recipe_block = recipe_block or {}
    on = set(MODULE_NAMES) if arm == "lora+all" else {arm.removeprefix("lora+")} if arm != "lora" else set()
    return {name: {**(recipe_block.get(name) or {}), "enabled": name in on} for name in MODULE_NAMES}


def run_name(arm: str, seed: int | None) -> str:
    return arm if seed is None else f"{arm}-seed{seed}"


def read_run(results_json: Path) -> dict[str, dict[str, float | None]]:
    """{suite: {"headline", "step_accuracy"}} of one evaluated arm x seed (recipes/evaluate.py's results.json, one
    model in it)."""
    report = json.loads(Path(results_json).read_text())
    suites = report.get("suites") or {}
    if len(suites) != 1:
        raise UserError(f"{results_json}: expected the suite results of one model, found {len(suites)} models")
    (by_suite,) = suites.values()
    return {
        name: {"headline": summary.get("headline"), "step_accuracy": summary.get("step_accuracy")}
        for name, summary in by_suite.items()
    }


def mean_and_spread(values: list[float | None]) -> tuple[float | None, float | None]:
    """(mean, half the range) of the values that exist; (None, None) when none does."""
    present = [v for v in values if v is not None]
    if not present:
        return None, None
    return sum(present) / len(present), (max(present) - min(present)) / 2


def aggregate(runs: dict[str, list[dict]]) -> dict[str, dict[str, dict]]:
    """{arm: [read_run per seed]} -> {arm: {suite: {"mean", "spread", "step_mean", "step_spread", "seeds"}}}."""
    out: dict[str, dict[str, dict]] = {}
    for arm, per_seed in runs.items():
        suites = dict.fromkeys(s for run in per_seed for s in run)
        out[arm] = {}
        for suite in suites:
            mean, spread = mean_and_spread([run.get(suite, {}).get("headline") for run in per_seed])
            step_mean, step_spread = mean_and_spread([run.get(suite, {}).get("step_accuracy") for run in per_seed])
            out[arm][suite] = {
                "mean": mean,
                "spread": spread,
                "step_mean": step_mean,
                "step_spread": step_spread,
                "seeds": len(per_seed),
            }
    return out


def beats(summary: dict, arm: str, reference: str, suite: str) -> bool:
    """Whether `arm` is above `reference` on `suite` beyond both seed spreads."""
    a, r = summary.get(arm, {}).get(suite), summary.get(reference, {}).get(suite)
    if not a or not r or a["mean"] is None or r["mean"] is None:
        return False
    return a["mean"] - a["spread"] > r["mean"] + r["spread"] + 1e-9  # equal within float rounding is not above


def ablation_table(summary: dict) -> str:
    """Markdown: one row per arm, per suite its mean ± spread over seeds and its step accuracy, and whether the arm
    beats LoRA-only there."""
    suites = list(dict.fromkeys(s for by_suite in summary.values() for s in by_suite))
    header = "| arm | seeds | " + " | ".join(f"{s} | {s} step acc." for s in suites) + " | beats lora on |"
    lines = [header, "|---|---:|" + "---:|---:|" * len(suites) + "---|"]
    for arm, by_suite in summary.items():
        cells = []
        for suite in suites:
            r = by_suite.get(suite)
            cells.append(plus_minus(r and r["mean"], r and r["spread"]))
            cells.append(plus_minus(r and r["step_mean"], r and r["step_spread"]))
        seeds = max((r["seeds"] for r in by_suite.values()), default=0)
        won = [s for s in suites if arm != "lora" and beats(summary, arm, "lora", s)]
        lines.append(f"| {arm} | {seeds} | " + " | ".join(cells) + f" | {', '.join(won) or '–'} |")
    return "\n".join(lines)


def verdict(summary: dict, suite: str = "transfer") -> str:
    """What the evidence says about the defaults, in one sentence: the arms that beat LoRA-only on `suite` beyond
    the seed spread, or that none does and which trained arm scored best there."""
    trained = [arm for arm in summary if arm != "base" and summary[arm].get(suite, {}).get("mean") is not None]
    if "lora" not in trained:
        return f"no verdict: the lora arm has no {suite} score"
    winners = [arm for arm in trained if arm != "lora" and beats(summary, arm, "lora", suite)]
    if winners:
        return f"beyond the seed spread on {suite}, these beat LoRA-only: {', '.join(winners)}"
    best = max(trained, key=lambda arm: summary[arm][suite]["mean"])
    return f"no arm beats LoRA-only on {suite} beyond the seed spread; the best mean there is {best}"


# ------------------------------------------------------------------------------------------------ the commands
def train_command(
    recipe: str, arm: str, seed: int, run_dir: Path, recipe_block: dict | None, steps: int | None, extra=()
):
    """recipes/sft.py's argv for one arm x seed: the recipe with the arm's modules, the seed and the output dir, and
    `extra` recipe overrides (the same for every arm)."""
    argv = ["recipes/sft.py", "--config", recipe, "--output_dir", str(run_dir), "--seed", str(seed)]
    argv += ["--cognitive_modules", json.dumps(arm_modules(arm, recipe_block)), *extra]
    return argv + (["--max_steps", str(steps)] if steps else [])


def eval_command(arm: str, base: str, run_dir: Path | None, out: Path, suites: str, limit: str | None, extra=()):
    """recipes/evaluate.py's argv for one arm x seed: the base alone, the LoRA adapter, or the modules run."""
    if arm == "base":
        model = ["--base", base]
    else:
        model = ["--adapter" if arm == "lora" else "--modules_run", str(run_dir)]
    argv = ["recipes/evaluate.py", *model, "--suite", suites, "--out", str(out), *extra]
    return argv + (["--limit", str(limit)] if limit else [])


def check_reusable(run_dir: Path, steps: int | None, extra=()) -> None:
    """A finished run is reused only when its run_config.yaml has the steps and the recipe overrides (`extra`,
    "--key value" pairs) asked for now; otherwise a one-line UserError (train it again under another --runs)."""
    config = load_yaml_mapping(Path(run_dir) / "run_config.yaml", "run config")
    wanted = dict(zip(extra[0::2], extra[1::2])) | ({"--max_steps": str(steps)} if steps else {})
    for flag, value in wanted.items():
        key = flag.removeprefix("--")
        have = config.get(key)
        if str(have) != value and have != yaml.safe_load(value):
            raise UserError(f"{run_dir}: finished with {key}: {have!r}, not {value}; use another --runs for these")


def finished(run_dir: Path) -> bool:
    """A run recipes/sft.py completed (it renames <run>.partial to <run> at the end)."""
    return (Path(run_dir) / "run_config.yaml").exists() and not Path(f"{run_dir}.partial").exists()
