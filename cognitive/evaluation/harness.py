"""Run the eval/tasks suite through lm-evaluation-harness's Python API, on one model or several.

    scores = evaluate(base_dir, peft="runs/demo", tasks=["cognitive_reasoning"], limit=60)

is the same evaluation as the command

    lm_eval --model hf --model_args pretrained=<base_dir>,peft=runs/demo --tasks cognitive_reasoning \
        --include_path eval/tasks --apply_chat_template --limit 60

(it runs lm_eval's HF model with a KV cache appended in place and finished rows dropped from a generating batch,
`cognitive-hf` in cognitive/evaluation/lm.py: the answers of `--model hf` but for bf16 rounding, 1 in 310, faster).

The models a comparison can hold (`ModelSpec`):
    base        ModelSpec.base("embedded:smollm2-135m-instruct" | hub id | model dir)
    adapter     ModelSpec.adapter("runs/x"): a finished run (LoRA adapter; run_config.yaml names its base)
    release     ModelSpec.release("release/x"): a merged release (its code runs when it is ours, or when opted in)
    modules     ModelSpec.modules("runs/x"): the run's base with its cognitive modules loaded
                (cognitive.model.inject.load_cognitive_adapter) and its LoRA adapter when present. lm_eval's CLI
                cannot load modules, so this one runs through an lm_eval HFLM wrapping the loaded model.

The in-training check is FAST_CHECK (`evaluate(base, peft=run, **FAST_CHECK)`, `recipes/evaluate.py --fast`):
two basic documents of each own task whose trained-format answers are short (`fast_check` in cognitive/tasks.py: all
but planning, whose answers alone run to ~1k tokens) and of each type's first transfer task, generated with one
max_gen_toks of 640 (1.2 x the longest basic reference), so lm-eval batches them together (60 s for the 135M on 2
CPU cores).

The suites (`SUITES`, `evaluate_suites`, `recipes/evaluate.py --suite`): cognitive (the own tasks), plain (the same
documents asked plainly), transfer (reasoning-gym) and standard (stock benchmarks, needs the Hub), each with
CPU-sized default document counts, a headline (the mean over task types), per type scores with standard errors and
the step accuracy of the reasoning answers.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

from cognitive.data.schema import DifficultyLevel
from cognitive.errors import UserError
from cognitive.evaluation.pinning import STANDARD_DIR, TASKS_DIR
from cognitive.evaluation.snapshots import doc_metadata, parse_difficulties, parse_split
from cognitive.model.base import inference_device_and_dtype
from cognitive.model.inject import COGNITIVE_WEIGHTS
from cognitive.model.remote_code import trust_release_code
from cognitive.tasks import TASK_TYPES, eval_tasks, plain_tasks, transfer_tasks
from cognitive.train.run import read_run

SUITE = ["cognitive"]  # the group of every task type's task (eval/tasks/cognitive/cognitive.yaml)


@dataclass(frozen=True)
class Suite:
    """A group of tasks a user runs by name (`recipes/evaluate.py --suite <name>`), with CPU-sized defaults: `limit`
    documents per task and `max_gen_toks` (None: each task's own). `--limit all` runs whole snapshots."""

    name: str
    group: str  # the lm-eval group
    what: str
    limit: int | None
    max_gen_toks: int | None = None
    needs_hub: bool = False  # its datasets come from the Hugging Face Hub
    generated: bool = False  # its documents come from our generators: --difficulty applies
    validation: bool = False  # it has a validation split (--split validation)


SUITES = {
    s.name: s
    for s in (
        Suite(
            "cognitive",
            "cognitive",
            "our generators' problems, our system prompt and answer format",
            limit=6,
            generated=True,
            validation=True,
        ),
        Suite(
            "plain",
            "cognitive_plain",
            "the same problems asked as a person would, any answer form",
            limit=12,
            max_gen_toks=768,
            generated=True,
            validation=True,
        ),
        Suite(
            "transfer",
            "cognitive_transfer",
            "third-party problems (reasoning-gym), their scorers",
            limit=20,
            validation=True,
        ),
        Suite(
            "standard",
            "cognitive_standard",
            "stock lm-eval benchmarks of the same skills (needs the Hub)",
            limit=None,
            needs_hub=True,
        ),
    )
}
OFFLINE_SUITES = ("cognitive", "plain", "transfer")  # what `recipes/evaluate.py` runs by default
FAST_CHECK = {  # the in-training check: two basic documents of the short-answer own tasks, one transfer slice
    "tasks": [t.eval_task for t in TASK_TYPES if t.fast_check] + [t.transfer[0].eval_task for t in TASK_TYPES],
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


def samples_folder(label: str) -> str:
    """The folder of a model's samples under an evaluation's samples dir (its label, ':' made '_')."""
    return label.replace(":", "_")


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


def _modules_lm(spec: ModelSpec, batch_size: int, device: str, dtype: str):
    """An lm_eval HFLM around the base with the run's cognitive modules (and LoRA adapter) loaded."""
    import torch

    from cognitive.evaluation.lm import BufferedHFLM
    from cognitive.model.base import load_base, load_tokenizer
    from cognitive.model.inject import load_cognitive_adapter

    model = load_base(spec.pretrained, dtype=getattr(torch, dtype))
    load_cognitive_adapter(model, spec.cognitive_run)  # the modules are built in fp32: cast with the base below
    if spec.peft:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, spec.peft)
    model.to(device=device, dtype=getattr(torch, dtype)).eval()
    return BufferedHFLM(pretrained=model, tokenizer=load_tokenizer(spec.pretrained), batch_size=batch_size)


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

    from cognitive.evaluation.lm import MODEL_NAME
    from cognitive.model.base import resolve_base

    # an unknown difficulty or split: a UserError before any work
    parse_difficulties((metadata or {}).get("difficulty"))
    parse_split((metadata or {}).get("split"))
    device, dtype = inference_device_and_dtype()
    if spec.cognitive_run:
        model, model_args = _modules_lm(spec, batch_size, device, dtype), None
    else:
        model = MODEL_NAME  # lm_eval's "hf", an in-place KV cache, finished rows dropped (cognitive/evaluation/lm.py)
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
            include_path=[str(TASKS_DIR), str(STANDARD_DIR)],
            include_defaults=not set(tasks) <= own_task_names(),
            metadata=metadata,
        ),
        batch_size=batch_size,
        device=device,
        limit=limit,
        apply_chat_template=apply_chat_template,
        gen_kwargs=gen_kwargs,
        log_samples=log_samples,
    )


def own_task_names() -> set[str]:
    """Every task and group eval/tasks defines (the stock lm-eval tasks, indexed in ~20 s, are needed otherwise)."""
    return {
        SUITES["cognitive"].group,
        SUITES["plain"].group,
        SUITES["transfer"].group,
        *eval_tasks(),
        *plain_tasks(),
        *(t.eval_task for t in transfer_tasks()),
    }


def flatten_scores(results: dict) -> dict[str, dict[str, float]]:
    """{task or group: {metric: value}}: metric names without lm_eval's ',none' suffix (another filter is kept:
    'exact_match/flexible-extract'), standard errors as '<metric>_stderr'."""
    scores: dict[str, dict[str, float]] = {}
    for section in ("groups", "results"):
        for name, metrics in (results.get(section) or {}).items():
            for key, value in metrics.items():
                metric, _, filtering = key.partition(",")
                if not isinstance(value, (int, float)) or metric in SKIP_METRICS:
                    continue
                stderr = metric.endswith("_stderr")
                metric = metric.removesuffix("_stderr")
                if filtering not in ("", "none"):
                    metric = f"{metric}/{filtering}"
                scores.setdefault(name, {})[f"{metric}_stderr" if stderr else metric] = value
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


def write_samples(results: dict, directory: Path, tokenizer=None) -> None:
    """<directory>/<task>.jsonl: per document its id, difficulty, the model's output and its metrics; with the
    model's tokenizer also the output's length in its tokens (`generated_tokens`) and the limit it was generated
    under (`max_gen_toks`), which tell an output cut off by the limit (`outputs.hit_token_limit`)."""
    directory.mkdir(parents=True, exist_ok=True)
    for task, samples in results.get("samples", {}).items():
        with open(directory / f"{task}.jsonl", "w") as f:
            for s in samples:
                metrics = {m: s[m] for m in s["metrics"]}
                output = s["resps"][0][0]
                row = {"id": s["doc"]["id"], "difficulty": s["doc"].get("difficulty"), "output": output}
                if tokenizer is not None:
                    row["generated_tokens"] = len(tokenizer(output, add_special_tokens=False)["input_ids"])
                    row["max_gen_toks"] = _max_gen_toks(s)
                f.write(json.dumps({**row, **metrics}) + "\n")


def _max_gen_toks(sample: dict) -> int | None:
    """The token limit a logged lm-eval sample was generated under: its request's gen_kwargs (a task's own or
    --gen_kwargs; the aliases lm_eval.models.utils.normalize_gen_kwargs reads), else lm-eval's HFLM default (256)."""
    try:
        gen_kwargs = sample["arguments"][0][1]
    except (KeyError, IndexError, TypeError):
        return None
    if not isinstance(gen_kwargs, dict):
        return None
    keys = ("max_gen_toks", "max_new_tokens", "max_tokens", "max_completion_tokens")
    value = next((gen_kwargs[k] for k in keys if gen_kwargs.get(k) is not None), 256)
    return int(value) if isinstance(value, (int, float)) else None


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
                inference_device_and_dtype()[0],
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
            from cognitive.model.base import load_tokenizer

            tokenizer = load_tokenizer(spec.pretrained, trust_remote_code=spec.trust_remote_code)  # as lm_eval's
            write_samples(results, Path(samples_dir) / samples_folder(spec.label), tokenizer)
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
    """Markdown: one row per (task, metric), one column per model (value ± standard error where lm-eval gives
    one); the groups first, then the tasks."""
    models = list(scores)
    order = {n: i for i, n in enumerate([*SUITE, *eval_tasks()])}
    names = sorted({n for s in scores.values() for n in s}, key=lambda n: (order.get(n, len(order)), n))
    lines = ["| task | metric | " + " | ".join(models) + " |", "|---|---|" + "---:|" * len(models)]
    for name in names:
        metrics = {m for s in scores.values() for m in s.get(name, {}) if not m.endswith("_stderr")}
        for metric in sorted(metrics, key=_metric_order):
            cells = []
            for model in models:
                values = scores[model].get(name, {})
                cells.append(plus_minus(values[metric], values.get(f"{metric}_stderr")) if metric in values else "–")
            lines.append(f"| {name} | {metric} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def headline_scores(scores: dict[str, dict[str, dict[str, float]]]) -> dict[str, dict[str, float]]:
    """{model: {task or group: score}} for plots."""
    return {
        model: {name: metrics["score"] for name, metrics in s.items() if "score" in metrics}
        for model, s in scores.items()
    }


# ------------------------------------------------------------------------------------------------ suites
def suite_types(suite: Suite) -> dict[str, list[str]]:
    """{task type: the suite's tasks of that type} (cognitive/tasks.py)."""
    members = {
        "cognitive": lambda t: [t.eval_task],
        "plain": lambda t: [t.plain_task],
        "transfer": lambda t: [x.eval_task for x in t.transfer],
        "standard": lambda t: list(t.standard),
    }[suite.name]
    return {t.name: members(t) for t in TASK_TYPES if members(t)}


def _task_score(metrics: dict[str, float]) -> tuple[float, float | None] | None:
    """(score, its standard error) of one task: its `score`, else a stock task's exact_match (flexible extraction
    when it has one)."""
    for key in ("score", "exact_match/flexible-extract", "exact_match", "acc"):
        if key in metrics:
            return metrics[key], metrics.get(f"{key}_stderr")
    return None


def suite_summary(suite: Suite, scores: dict[str, dict[str, float]]) -> dict:
    """The suite's headline (the mean over task types) and per task type (the mean over its tasks), with the
    standard errors lm-eval reports (a type's is the root mean square of its tasks', divided by their count), and
    the step accuracy of the answers to its reasoning (chain_of_thought) problems."""
    types = {}
    for name, task_names in suite_types(suite).items():
        found = [_task_score(scores[n]) for n in task_names if n in scores and _task_score(scores[n])]
        if found:
            errors = [e for _, e in found if isinstance(e, float)]
            steps = [scores[n]["step_accuracy"] for n in task_names if "step_accuracy" in scores.get(n, {})]
            types[name] = {
                "score": sum(s for s, _ in found) / len(found),
                "stderr": (sum(e * e for e in errors) ** 0.5 / len(found)) if len(errors) == len(found) else None,
                "step_accuracy": sum(steps) / len(steps) if steps else None,
            }
    headline = sum(v["score"] for v in types.values()) / len(types) if types else None
    errors = [v["stderr"] for v in types.values()]
    stderr = (sum(e * e for e in errors) ** 0.5 / len(errors)) if errors and None not in errors else None
    step_accuracy = types.get(TASK_TYPES[0].name, {}).get("step_accuracy")
    return {"headline": headline, "headline_stderr": stderr, "step_accuracy": step_accuracy, "types": types}


def check_hub() -> None:
    """The standard suite downloads its datasets: a one-line UserError when the Hub cannot be reached."""
    import os
    import urllib.request

    why = None
    if os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on"):
        why = "HF_HUB_OFFLINE is set"
    else:
        try:
            urllib.request.urlopen("https://huggingface.co/api/datasets/openai/gsm8k", timeout=10)
        except OSError as e:
            why = f"https://huggingface.co cannot be reached ({type(e).__name__})"
    if why:
        raise UserError(
            f"the standard suite downloads its datasets from the Hugging Face Hub, and {why}; run the "
            "offline suites (--suite cognitive,plain,transfer) or a machine with the Hub"
        )


def evaluate_suites(
    specs: list[ModelSpec],
    suites: list[str],
    limit: int | str | None = None,
    batch_size: int = 16,
    difficulty: str | None = None,
    max_gen_toks: int | None = None,
    samples_dir: Path | None = None,
    log=print,
    split: str | None = None,
) -> dict:
    """Every model on every suite: {model label: {suite: {"headline", "headline_stderr", "types", "scores",
    "documents", "wall_s", "limit", "command"}}}. `limit`: documents per task (None: each suite's default, "all":
    whole snapshots); `max_gen_toks` overrides every task's (None: each suite's default); `difficulty` applies to the
    suites of generated documents, `split` (test or validation) to the suites that have one."""
    chosen = [SUITES[s] for s in suites]
    if parse_split(split) != "test" and (other := [s.name for s in chosen if not s.validation]):
        raise UserError(
            f"the {other[0]} suite has no {split} split (only these have one: "
            f"{', '.join(s.name for s in SUITES.values() if s.validation)})"
        )
    if any(s.needs_hub for s in chosen):
        check_hub()
    out = {spec.label: {} for spec in specs}
    for suite in chosen:
        suite_limit = None if limit == "all" else (limit if limit is not None else suite.limit)
        tokens = max_gen_toks or suite.max_gen_toks
        metadata = doc_metadata(difficulty if suite.generated else None, split) if suite.validation else None
        results = compare(
            specs,
            [suite.group],
            suite_limit,
            batch_size,
            metadata=metadata,
            gen_kwargs={"max_gen_toks": tokens} if tokens else None,
            samples_dir=Path(samples_dir) / suite.name if samples_dir else None,
            log=log,
        )
        for label, result in results.items():
            out[label][suite.name] = {**suite_summary(suite, result["scores"]), **result, "limit": suite_limit}
    return out


def suites_table(results: dict) -> str:
    """Markdown: per model, one row per suite: its headline, the step accuracy of its reasoning answers, and the
    score per task type (± standard error)."""
    type_names = [t.name for t in TASK_TYPES]
    lines = []
    for label, suites in results.items():
        header = "| suite | documents/task | headline | step accuracy | " + " | ".join(type_names) + " |"
        lines += [f"**{label}**", "", header, "|---|---:|---:|---:|" + "---:|" * len(type_names)]
        for name, r in suites.items():
            cells = [
                plus_minus(r["types"].get(t, {}).get("score"), r["types"].get(t, {}).get("stderr")) for t in type_names
            ]
            steps = "–" if r.get("step_accuracy") is None else f"{r['step_accuracy']:.3f}"
            head = plus_minus(r["headline"], r["headline_stderr"])
            lines.append(f"| {name} | {r['limit'] or 'all'} | {head} | {steps} | " + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines).rstrip()


def suite_headlines(results: dict) -> dict[str, dict[str, float]]:
    """{model: {suite: headline}} for plots."""
    return {label: {name: r["headline"] or 0.0 for name, r in suites.items()} for label, suites in results.items()}


def plus_minus(value, stderr) -> str:
    if value is None:
        return "–"
    return f"{value:.3f} ± {stderr:.3f}" if isinstance(stderr, float) else f"{value:.3f}"
