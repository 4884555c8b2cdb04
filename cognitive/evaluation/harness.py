"""Run the eval/tasks suite through lm-evaluation-harness's Python API, on one model or several.

    scores = evaluate(base_dir, peft="runs/demo", tasks=["cognitive_reasoning"], limit=60)

is the same evaluation as the command

    lm_eval --model hf --model_args pretrained=<base_dir>,peft=runs/demo --tasks cognitive_reasoning \
        --include_path eval/tasks --apply_chat_template --limit 60

The models a comparison can hold (`ModelSpec`):
    base        ModelSpec.base("embedded:smollm2-135m-instruct" | hub id | model dir)
    adapter     ModelSpec.adapter("runs/x"): a finished run (LoRA adapter; run_config.yaml names its base)
    release     ModelSpec.release("release/x"): a merged release (its code runs when it is ours, or when opted in)
    modules     ModelSpec.modules("runs/x"): the run's base with its cognitive modules loaded
                (cognitive.model.inject.load_cognitive_adapter) and its LoRA adapter when present. lm_eval's CLI
                cannot load modules, so this one runs through an lm_eval HFLM wrapping the loaded model.

The in-training check is FAST_CHECK (`evaluate(base, peft=run, **FAST_CHECK)`, `recipes/evaluate.py --fast`):
two basic documents of each task whose trained-format answers are short (`fast_check` in cognitive/tasks.py: all
but planning, whose answers alone run to ~1k tokens), generated as one batch of at most 640 tokens (1.2 x the
longest basic reference):
    lm_eval ... --tasks cognitive_reasoning,cognitive_state,cognitive_logic,cognitive_memory --limit 2 \
        --metadata '{"difficulty": "basic"}' --gen_kwargs max_gen_toks=640
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

from cognitive.data.schema import DifficultyLevel
from cognitive.errors import UserError
from cognitive.evaluation.snapshots import TASKS_DIR, parse_difficulties
from cognitive.model.inject import COGNITIVE_WEIGHTS
from cognitive.model.remote_code import trust_release_code
from cognitive.tasks import TASK_TYPES, eval_tasks
from cognitive.train.run import read_run

SUITE = ["cognitive"]  # the group of every task type's task (eval/tasks/cognitive/cognitive.yaml)
FAST_CHECK = {
    "tasks": [t.eval_task for t in TASK_TYPES if t.fast_check],
    "limit": 2,
    "metadata": {"difficulty": "basic"},
    "gen_kwargs": {"max_gen_toks": 640},  # one setting for all tasks: lm-eval then batches them together
}
SKIP_METRICS = {"alias", "name", "sample_len"}


@dataclass
class ModelSpec:
    """One model of a comparison: what `pretrained` / `peft` lm_eval gets, or a run whose modules to load."""

    label: str
    pretrained: str  # hub id, model dir or embedded:... (resolved before lm_eval sees it)
    peft: str | None = None
    cognitive_run: str | None = None  # run dir with cognitive_adapter.safetensors
    trust_remote_code: bool = False

    @classmethod
    def base(cls, name: str, label: str = "base") -> ModelSpec:
        return cls(label, name)

    @classmethod
    def adapter(cls, run_dir: str, label: str | None = None) -> ModelSpec:
        run = read_run(run_dir)
        if not run.has_adapter:
            raise UserError(f"{run_dir} has no adapter_config.json: not a finished training run with a LoRA adapter")
        return cls(label or f"adapter:{run.run_dir.name}", run.base, peft=str(run.run_dir))

    @classmethod
    def release(cls, release_dir: str, label: str | None = None, trust_remote_code: bool = False) -> ModelSpec:
        """A merged release; its shipped code runs only when it is this checkout's or trust_remote_code is set."""
        path = Path(release_dir)
        if not (path / "config.json").exists():
            raise UserError(f"{path} has no config.json: not a model directory")
        return cls(
            label or f"release:{path.name}", str(path), trust_remote_code=trust_release_code(path, trust_remote_code)
        )

    @classmethod
    def modules(cls, run_dir: str, label: str | None = None) -> ModelSpec:
        run = read_run(run_dir)
        if not run.has_modules:
            raise UserError(f"{run_dir} has no {COGNITIVE_WEIGHTS}: not a run with cognitive modules")
        peft = str(run.run_dir) if run.has_adapter else None
        return cls(label or f"modules:{run.run_dir.name}", run.base, peft=peft, cognitive_run=str(run.run_dir))


def _tasks_dir_arg() -> str:
    cwd = Path.cwd()
    return str(TASKS_DIR.relative_to(cwd)) if TASKS_DIR.is_relative_to(cwd) else str(TASKS_DIR)


def lm_eval_command(
    pretrained: str,
    peft: str | None,
    tasks: list[str],
    limit: int | None,
    batch_size: int,
    device: str = "cpu",
    *,
    trust_remote_code: bool = False,
    metadata: dict | None = None,
    gen_kwargs: dict | None = None,
) -> str:
    """The CLI equivalent of `evaluate(...)` (for base, adapter and release models)."""
    model_args = f"pretrained={pretrained}" + (f",peft={peft}" if peft else "")
    model_args += ",trust_remote_code=True" if trust_remote_code else ""
    cmd = (
        f"lm_eval --model hf --model_args {model_args} --tasks {','.join(tasks)} "
        f"--include_path {_tasks_dir_arg()} --apply_chat_template --batch_size {batch_size} --device {device}"
    )
    cmd += f" --limit {limit}" if limit else ""
    cmd += f" --metadata '{json.dumps(metadata)}'" if metadata else ""
    cmd += " --gen_kwargs " + ",".join(f"{k}={v}" for k, v in gen_kwargs.items()) if gen_kwargs else ""
    return cmd


def _device_and_dtype() -> tuple[str, str]:
    import torch

    return ("cuda", "bfloat16") if torch.cuda.is_available() else ("cpu", "float32")


def _modules_lm(spec: ModelSpec, batch_size: int, device: str, dtype: str):
    """An lm_eval HFLM around the base with the run's cognitive modules (and LoRA adapter) loaded."""
    import torch
    from lm_eval.models.huggingface import HFLM

    from cognitive.model.base import load_base, load_tokenizer
    from cognitive.model.inject import load_cognitive_adapter

    model = load_base(spec.pretrained, dtype=getattr(torch, dtype))
    load_cognitive_adapter(model, spec.cognitive_run)
    if spec.peft:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, spec.peft)
    model.to(device).eval()
    return HFLM(pretrained=model, tokenizer=load_tokenizer(spec.pretrained), batch_size=batch_size)


def run_suite(
    spec: ModelSpec,
    tasks: list[str] = SUITE,
    limit: int | None = None,
    batch_size: int = 16,
    apply_chat_template: bool = True,
    metadata: dict | None = None,
    gen_kwargs: dict | None = None,
    log_samples: bool = False,
) -> dict:
    """lm_eval.simple_evaluate on one model; the full lm_eval results dict (with "samples" if log_samples)."""
    import lm_eval
    from lm_eval.tasks import TaskManager

    from cognitive.model.base import resolve_base

    parse_difficulties((metadata or {}).get("difficulty"))  # an unknown difficulty: a UserError before any work
    device, dtype = _device_and_dtype()
    if spec.cognitive_run:
        model, model_args = _modules_lm(spec, batch_size, device, dtype), None
    else:
        model = "hf"
        model_args = {
            "pretrained": resolve_base(spec.pretrained),
            "dtype": dtype,
            "trust_remote_code": spec.trust_remote_code,
        }
        if spec.peft:
            model_args["peft"] = spec.peft
    return lm_eval.simple_evaluate(
        model=model,
        model_args=model_args,
        tasks=list(tasks),
        # lm-eval's own tasks are indexed (~20 s) only when one of them is asked for
        task_manager=TaskManager(
            include_path=str(TASKS_DIR), include_defaults=not set(tasks) <= {*SUITE, *eval_tasks()}, metadata=metadata
        ),
        batch_size=batch_size,
        device=device,
        limit=limit,
        apply_chat_template=apply_chat_template,
        gen_kwargs=gen_kwargs,
        log_samples=log_samples,
    )


def flatten_scores(results: dict) -> dict[str, dict[str, float]]:
    """{task or group: {metric: value}} (metric names without lm_eval's ',none' suffix, no stderrs)."""
    scores: dict[str, dict[str, float]] = {}
    for section in ("groups", "results"):
        for name, metrics in (results.get(section) or {}).items():
            scores.setdefault(name, {}).update(
                {
                    key.split(",")[0]: value
                    for key, value in metrics.items()
                    if isinstance(value, (int, float)) and "stderr" not in key and key.split(",")[0] not in SKIP_METRICS
                }
            )
    return scores


def evaluate(
    pretrained: str,
    peft: str | None = None,
    tasks: list[str] = ("cognitive_reasoning",),
    limit: int | None = None,
    batch_size: int = 16,
    apply_chat_template: bool = True,
    trust_remote_code: bool = False,
    cognitive_run: str | None = None,
    metadata: dict | None = None,
    gen_kwargs: dict | None = None,
) -> dict[str, dict[str, float]]:
    """{task or group: {metric: value}} from a real lm_eval run of one model. metadata={"difficulty": "basic"}
    keeps one difficulty; gen_kwargs={"max_gen_toks": 320} overrides the tasks' generation settings."""
    spec = ModelSpec("model", pretrained, peft=peft, cognitive_run=cognitive_run, trust_remote_code=trust_remote_code)
    return flatten_scores(run_suite(spec, list(tasks), limit, batch_size, apply_chat_template, metadata, gen_kwargs))


def write_samples(results: dict, directory: Path) -> None:
    """<directory>/<task>.jsonl: per document its id, difficulty, the model's output and its metrics."""
    directory.mkdir(parents=True, exist_ok=True)
    for task, samples in results.get("samples", {}).items():
        with open(directory / f"{task}.jsonl", "w") as f:
            for s in samples:
                metrics = {m: s[m] for m in s["metrics"]}
                row = {
                    "id": s["doc"]["id"],
                    "difficulty": s["doc"]["difficulty"],
                    "output": s["resps"][0][0],
                    **metrics,
                }
                f.write(json.dumps(row) + "\n")


def compare(
    specs: list[ModelSpec],
    tasks: list[str] = SUITE,
    limit: int | None = None,
    batch_size: int = 16,
    metadata: dict | None = None,
    gen_kwargs: dict | None = None,
    samples_dir: Path | None = None,
    log=print,
) -> dict:
    """Evaluate every model in turn; {label: {"scores", "documents", "wall_s", "docs_per_s", "command"}}.
    With samples_dir, each model's outputs go to <samples_dir>/<label>/<task>.jsonl."""
    from cognitive.model.base import resolve_base

    out = {}
    for i, spec in enumerate(specs, 1):
        how = (
            f"base {spec.pretrained} + cognitive modules of {spec.cognitive_run}"
            if spec.cognitive_run
            else lm_eval_command(
                resolve_base(spec.pretrained),
                spec.peft,
                tasks,
                limit,
                batch_size,
                _device_and_dtype()[0],
                trust_remote_code=spec.trust_remote_code,
                metadata=metadata,
                gen_kwargs=gen_kwargs,
            )
        )
        log(f"[{i}/{len(specs)}] {spec.label}: {how}")
        started = time.time()
        results = run_suite(
            spec,
            tasks,
            limit,
            batch_size,
            metadata=metadata,
            gen_kwargs=gen_kwargs,
            log_samples=samples_dir is not None,
        )
        wall = time.time() - started
        if samples_dir is not None:
            write_samples(results, Path(samples_dir) / spec.label.replace(":", "_"))
        documents = sum(n["effective"] for n in results["n-samples"].values())
        out[spec.label] = {
            "scores": flatten_scores(results),
            "documents": documents,
            "wall_s": round(wall, 1),
            "docs_per_s": round(documents / wall, 3),
            "command": how,
        }
        log(f"[{i}/{len(specs)}] {spec.label}: {documents} documents in {wall:.0f} s ({documents / wall:.2f} docs/s)")
    return out


def _metric_order(metric: str) -> tuple:
    """score, the task's own metrics, score_<difficulty> in difficulty order, answered."""
    difficulties = [d.value for d in DifficultyLevel]
    if metric == "score":
        return (0, 0, "")
    if metric.startswith("score_") and metric[6:] in difficulties:
        return (2, difficulties.index(metric[6:]), "")
    return (3, 0, "") if metric == "answered" else (1, 0, metric)


def score_table(scores: dict[str, dict[str, dict[str, float]]]) -> str:
    """Markdown: one row per (task, metric), one column per model; the group first, then the tasks."""
    models = list(scores)
    order = {n: i for i, n in enumerate([*SUITE, *eval_tasks()])}
    names = sorted({n for s in scores.values() for n in s}, key=lambda n: (order.get(n, len(order)), n))
    lines = ["| task | metric | " + " | ".join(models) + " |", "|---|---|" + "---:|" * len(models)]
    for name in names:
        metrics = sorted({m for s in scores.values() for m in s.get(name, {})}, key=_metric_order)
        for metric in metrics:
            values = " | ".join(
                f"{scores[m][name][metric]:.3f}" if metric in scores[m].get(name, {}) else "–" for m in models
            )
            lines.append(f"| {name} | {metric} | {values} |")
    return "\n".join(lines)


def headline_scores(scores: dict[str, dict[str, dict[str, float]]]) -> dict[str, dict[str, float]]:
    """{model: {task or group: score}} for plots."""
    return {
        model: {name: metrics["score"] for name, metrics in s.items() if "score" in metrics}
        for model, s in scores.items()
    }
