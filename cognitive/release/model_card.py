"""The model card (README.md) of a release: what it is, what it was trained on, how it scores, how to load it.

    write_model_card(release_dir, run, report)      # called by cognitive.release.merge_run

Sources, all optional except the run itself:
    run_config.yaml            base, data path, training and LoRA settings, cognitive_modules
    log_history.json           steps trained, last training / evaluation loss
    run_info.json              package versions, git commit, sha256 of the training data
    <dataset_path>/report.json, stats.json   (recipes/generate_data.py) data size and mix; else the training
                               JSONL files are counted
    eval results               --eval_results FILE, else the newest of results/<run name>/results.json
                               (recipes/evaluate.py --out results/<run name>), results/<run name>/scores.json
                               ({model: {task: {metric: value}}}: cognitive.evaluation.harness.evaluate's scores, as
                               the demo wrote them before it moved to recipes/evaluate.py) and
                               results/<run name>/**/results_*.json (lm_eval --output_path);
                               results/ is the folder beside the run's runs/ folder
"""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

from cognitive.data.response import FINAL_ANSWER_MARKER, PLANNING_HEADER, REASONING_HEADER
from cognitive.errors import UserError
from cognitive.model.remote_code import MODEL_CLASS

TRAINING_HIGHLIGHTS = (
    "max_steps",
    "num_train_epochs",
    "per_device_train_batch_size",
    "gradient_accumulation_steps",
    "learning_rate",
    "lr_scheduler_type",
    "warmup_steps",
    "max_length",
    "packing",
    "loss_type",
    "dtype",
    "bf16",
    "load_in_4bit",
    "gradient_checkpointing",
    "deepspeed",
    "seed",
)
LORA_HIGHLIGHTS = ("lora_r", "lora_alpha", "lora_dropout", "lora_target_modules")


# ------------------------------------------------------------------------------------------------ eval results
def default_results_dir(run_dir: Path) -> Path:
    """results/<run name>: the folder `results` beside the folder that holds the run (runs/<name>)."""
    run_dir = Path(run_dir).resolve()
    return run_dir.parent.parent / "results" / run_dir.name


def find_eval_results(run_dir: Path) -> Path | None:
    """The newest eval results file for the run in its default place, or None."""
    folder = default_results_dir(run_dir)
    if not folder.is_dir():
        return None
    candidates = [folder / "results.json", folder / "scores.json", *folder.rglob("results_*.json")]
    existing = [p for p in candidates if p.is_file()]
    return max(existing, key=lambda p: p.stat().st_mtime) if existing else None


def load_eval_scores(path: Path) -> tuple[dict[str, dict[str, dict[str, float]]], str]:
    """{model: {task: {metric: value}}} and a line on where it came from, from any of the three formats."""
    from cognitive.evaluation.harness import flatten_scores

    try:
        data = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise UserError(f"eval results {path}: not readable JSON ({e})") from None
    if isinstance(data, dict) and isinstance(data.get("suites"), dict):  # recipes/evaluate.py (suites)
        scores = {
            label: {task: metrics for r in suites.values() for task, metrics in (r.get("scores") or {}).items()}
            for label, suites in data["suites"].items()
        }
        suites = ", ".join(dict.fromkeys(s for r in data["suites"].values() for s in r))
        limit = (data.get("settings") or {}).get("limit") or "each suite's default number of"
        return scores, f"recipes/evaluate.py, suites {suites}, {limit} documents per task"
    if isinstance(data, dict) and isinstance(data.get("models"), dict):  # recipes/evaluate.py
        settings = data.get("settings") or {}
        scores = {label: entry.get("scores") or {} for label, entry in data["models"].items()}
        limit = settings.get("limit")
        return scores, f"recipes/evaluate.py, {limit or 'all'} documents per task"
    if isinstance(data, dict) and isinstance(data.get("results"), dict):  # lm_eval --output_path
        config = data.get("config") or {}
        label = data.get("model_name") or config.get("model_args") or "model"
        limit = config.get("limit")
        return {str(label): flatten_scores(data)}, f"lm_eval, limit {f'{limit:g}' if limit else 'none'}"
    if isinstance(data, dict) and data and all(_is_scores(v) for v in data.values()):  # harness.evaluate's scores
        return data, "cognitive.evaluation.harness.evaluate"
    raise UserError(
        f"eval results {path}: not a recipes/evaluate.py, lm_eval or {{model: {{task: {{metric: value}}}}}} results file"
    )


def _is_scores(value) -> bool:
    return isinstance(value, dict) and all(
        isinstance(m, dict) and all(isinstance(x, (int, float)) for x in m.values()) for m in value.values()
    )


def eval_section(eval_file: str | None) -> str:
    from cognitive.evaluation.harness import score_table

    if not eval_file:
        return (
            "No evaluation results were found when this release was made. Evaluate it with\n\n"
            "```bash\npython recipes/evaluate.py --release <this dir> --out results/<run name>\n```\n"
        )
    scores, source = load_eval_scores(Path(eval_file))
    return f"From `{eval_file}` ({source}):\n\n{score_table(scores)}\n"


def paired_section(eval_file: str | None, run_dir: str | Path, release_dir: str | Path | None = None) -> str:
    """The release's paired rows against its base (recipes/evaluate.py's "paired": the run, or this release, compared
    document by document with a --base), as scored and worked, and both models' output shares; "" when the file
    holds no such comparison. A "paired" entry the card cannot read is a one-line UserError naming the file."""
    from cognitive.evaluation.report import paired_rows, shares_rows

    data = _read_json(Path(eval_file)) if eval_file else None
    paired = data.get("paired") if isinstance(data, dict) else None
    if paired is None:
        return ""
    try:
        reference = paired["reference"]
        if paired["arms"][reference]["kind"] != "base":
            return ""
        mine = {Path(run_dir).resolve(), *([Path(release_dir).resolve()] if release_dir else [])}
        arms = [
            label
            for label, arm in paired["arms"].items()
            if label in paired["comparisons"] and mine & {Path(p).resolve() for p in arm["paths"]}
        ]
        if not arms:
            return ""
        label = arms[0]
        arm, base = paired["arms"][label], paired["arms"][reference]
        rows = paired_rows({label: paired["comparisons"][label]})
        shares = shares_rows({name: paired["shares"][name] for name in (label, reference)})
        level = float(paired["level"])
    except (KeyError, TypeError, ValueError, AttributeError, IndexError) as e:
        why = f"{type(e).__name__}: {e}"
        raise UserError(f'eval results {eval_file}: its "paired" entry cannot be read ({why})') from None
    seeds = f", {len(arm['paths'])} training seeds averaged per document" if len(arm["paths"]) > 1 else ""
    return f"""
### Paired with its base

From `{eval_file}`: `{label}` (this release's run{seeds}) minus `{reference}` (`{base["paths"][0]}`), document by
document, with a {level:.0%} bootstrap interval over documents; above / below when the interval lies wholly on that
side of zero, else level. Worked: a right answer stated on its first line, before any working, counted wrong.

| model | suite | part | documents | minus {reference} | verdict | worked: minus {reference} | verdict |
|---|---|---|---:|---:|---|---:|---|
{chr(10).join(rows)}

Shares of the outputs: the answer stated first, cut off by the token limit, holding a repeated-line loop.

| model | suite | documents | answers first | hit token limit | repeated-line loop |
|---|---|---:|---:|---:|---:|
{chr(10).join(shares)}
"""


# ------------------------------------------------------------------------------------------------ data
def data_summary(config: dict) -> list[str]:
    """Markdown lines on the training data: size and mix from the data dir's report/stats, else counted."""
    path = config.get("dataset_path")
    if not path:
        return ["- training data: not recorded in run_config.yaml"]
    folder = Path(path)
    lines = [f"- training data: `{path}`"]
    stats = _read_json(folder / "stats.json")
    report = _read_json(folder / "report.json")
    if stats:
        lines.append(f"- examples: {stats.get('total', '?'):,} (splits: {_counts(stats.get('splits', {}))})")
        for key, title in (("task_type", "task types"), ("difficulty", "difficulty"), ("domain", "domains")):
            if stats.get(key):
                lines.append(f"- {title}: {_counts(stats[key])}")
    if report:
        lines.append(
            f"- verification: {report.get('generated', '?')} generated, {report.get('kept', '?')} kept "
            f"(every kept example re-checked by an independent checker; eval documents removed by hash)"
        )
    if not stats and folder.is_dir():
        splits, tasks = _count_jsonl(folder)
        if splits:
            lines.append(f"- examples (counted in the JSONL files): {_counts(splits)}")
        if tasks:
            lines.append(f"- task types (train): {_counts(tasks)}")
    elif not folder.is_dir():
        lines.append("- (the data directory was not found where the release was made; size unknown)")
    return lines


def _count_jsonl(folder: Path) -> tuple[dict[str, int], dict[str, int]]:
    """Records per split (<split>*.jsonl, one record a line) and per task type in the training split."""
    splits: Counter = Counter()
    tasks: Counter = Counter()
    for file in sorted(folder.glob("*.jsonl")):
        split = re.split(r"[-.]", file.name)[0]
        with open(file) as f:
            for line in f:
                if line.strip():
                    splits[split] += 1
                    if split == "train":
                        match = re.search(r'"task_type"\s*:\s*"([^"]+)"', line)
                        tasks[match.group(1) if match else "unknown"] += 1
    return dict(splits), dict(tasks)


def _counts(mapping: dict) -> str:
    return ", ".join(f"{k} {v:,}" if isinstance(v, int) else f"{k} {v}" for k, v in mapping.items())


def _read_json(path: Path):
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None


# ------------------------------------------------------------------------------------------------ training
def training_summary(run) -> list[str]:
    config = run.config
    lines = []
    for group in (TRAINING_HIGHLIGHTS, LORA_HIGHLIGHTS):
        lines += [f"| `{key}` | `{config[key]}` |" for key in group if key in config and config[key] is not None]
    history = _read_json(run.run_dir / "log_history.json") or []
    if isinstance(history, dict):
        history = history.get("log_history", [])
    losses = [h for h in history if isinstance(h, dict) and "loss" in h]
    evals = [h for h in history if isinstance(h, dict) and "eval_loss" in h]
    if losses:
        lines.append(f"| last training loss (step {losses[-1].get('step', '?')}) | {float(losses[-1]['loss']):.4f} |")
    if evals:
        lines.append(f"| last eval loss (step {evals[-1].get('step', '?')}) | {float(evals[-1]['eval_loss']):.4f} |")
    return ["| setting | value |", "|---|---|", *lines]


def provenance(run) -> list[str]:
    info = _read_json(run.run_dir / "run_info.json") or {}
    versions = ", ".join(f"{k} {v}" for k, v in (info.get("versions") or {}).items() if v)
    lines = []
    if versions:
        lines.append(f"- trained with: {versions}")
    if info.get("git_commit"):
        lines.append(f"- cognitive-slm commit: `{info['git_commit']}`")
    if (info.get("data") or {}).get("sha256"):
        lines.append(f"- training data sha256: `{info['data']['sha256']}`")
    return lines


# ------------------------------------------------------------------------------------------------ the card
def parameters_table(parameters: dict) -> list[str]:
    base = max(parameters["base"], 1)
    rows = [("base", parameters["base"]), ("LoRA adapter (merged into the base weights)", parameters["lora"])]
    modules = parameters["cognitive_modules"]
    rows += [(f"cognitive module: {name}", n) for name, n in modules.items() if name != "total" and n]
    if modules["total"]:
        rows.append(("cognitive modules, total (extra parameters of this release)", modules["total"]))
    return [
        "| part | parameters | of base |",
        "|---|---:|---:|",
        *[f"| {name} | {n:,} | {100 * n / base:.2f}% |" for name, n in rows],
    ]


def how_to_load(remote_code: bool) -> str:
    """Python, serve/chat, lm_eval and recipes/chat.py instructions; the remote-code caveats when modules ship."""
    import transformers

    trust = ", trust_remote_code=True" if remote_code else ""
    text = f"""\
```python
from transformers import AutoModelForCausalLM, AutoTokenizer

model = AutoModelForCausalLM.from_pretrained("<this dir or repo>"{trust})
tokenizer = AutoTokenizer.from_pretrained("<this dir or repo>"{trust})
messages = [{{"role": "user", "content": "Context: Sarah has 3 boxes of 12 apples and gives away 8.\\n\\nInstruction: How many apples are left?"}}]
inputs = tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_tensors="pt", return_dict=True)
print(tokenizer.decode(model.generate(**inputs, max_new_tokens=256)[0][inputs["input_ids"].shape[1]:]))
```

Command line:

```bash
"""
    if remote_code:
        text += f"""\
lm_eval --model hf --model_args pretrained=<this dir>,trust_remote_code=True --tasks 'cognitive_*' \\
    --include_path eval/tasks --apply_chat_template                  # from a cognitive-slm checkout
python recipes/chat.py <this dir> [--json --prompt "..."]           # from a cognitive-slm checkout
python recipes/serve.py <this dir> --port 8000                      # transformers serve; see "Serving" below
transformers chat <this dir> http://localhost:8000                   # chat with that server
```

**Remote code.** The cognitive modules are not part of transformers: this release ships their code
(`modeling_cognitive.py`, `configuration_cognitive.py`, `cognitive_modules.py`; torch + transformers only), which
`trust_remote_code=True` runs. Read it before trusting a copy you did not make. Without the flag, loading stops
with transformers' "contains custom code" error: config.json's `model_type` is `cognitive_<base>`, which
transformers does not know, so the release never silently loads as the plain base without its modules.

**Serving.** `transformers serve` (checked with transformers {transformers.__version__}) does not load remote-code
causal LMs yet: its model manager looks the class named in `architectures[0]` up in the transformers package and
fails with `AttributeError: module transformers has no attribute {MODEL_CLASS}`, with or without
`--trust_remote_code`. `recipes/serve.py` (in a cognitive-slm checkout) runs transformers' own `serve` after
loading this release's class from its shipped code and making it findable; `transformers chat` is a client of
that server. A release merged without cognitive modules is a plain model that `transformers serve` serves.
"""
    else:
        text += """\
transformers serve <this dir> --port 8000             # OpenAI-compatible API: POST /v1/chat/completions
transformers chat <this dir>                          # chat with that server (pip install "transformers[serving]")
lm_eval --model hf --model_args pretrained=<this dir> --tasks 'cognitive_*' \\
    --include_path eval/tasks --apply_chat_template  # from a cognitive-slm checkout
python recipes/chat.py <this dir> [--json --prompt "..."]   # from a cognitive-slm checkout: parsed steps + answer
```

This is a plain model of the base architecture: no remote code, no extra modules.
"""
    return text


def render_model_card(run, report) -> str:
    from cognitive.model.modules import MODULE_NAMES

    remote = report.remote_code
    name = Path(report.out).name
    tags = ["cognitive-slm", "reasoning", "lora-merged"] + (["cognitive-modules", "custom_code"] if remote else [])
    front = ["---", "library_name: transformers", "pipeline_tag: text-generation", "tags:", *[f"- {t}" for t in tags]]
    if _is_hub_id(run.base):
        front.append(f"base_model: {run.base}")
    front.append("---")
    modules_lines = []
    if report.cognitive_modules:
        for module in MODULE_NAMES:
            cfg = report.cognitive_modules[module]
            if cfg.get("enabled"):
                sizes = ", ".join(f"{k}={v}" for k, v in cfg.items() if k != "enabled" and v is not None)
                modules_lines.append(f"- `{module}`: {sizes}")
    body = f"""
# {name}

A cognitive-slm release: **{run.base}** fine-tuned with LoRA on verified synthetic reasoning data
(multi-step reasoning, planning, state tracking, logic, memory recall), the adapter merged into a full-precision
(fp32) copy of the base{" and the trained cognitive modules attached to its decoder layers" if remote else ""}.
Answers follow the trained format: `{REASONING_HEADER}` with numbered steps, optionally `{PLANNING_HEADER}`,
then `{FINAL_ANSWER_MARKER}`.

## Model

- base: `{run.base}`
- architecture: {"the base's, plus cognitive modules (remote code, see below)" if remote else "the base's, unchanged (a plain model)"}
- weights: safetensors, float32
- merge check: max |logit(release) - logit(base{" + modules" if remote else ""} + adapter)| = {report.max_abs_logit_diff:.2e} on a
  fixed batch of 2 chat prompts (tolerance {report.tolerance:g}, fp32)

{chr(10).join(parameters_table(report.parameters))}
"""
    if modules_lines:
        body += "\nCognitive modules (each adds `tanh(gate) * f(h)` to the residual stream of its layer):\n\n"
        body += "\n".join(modules_lines) + "\n"
    body += f"""
## Training data

{chr(10).join(data_summary(run.config))}

## Training

Run `{run.run_dir.name}` (TRL SFTTrainer, LoRA{" + cognitive modules trained fully" if remote else ""}; loss on the
assistant response only).

{chr(10).join(training_summary(run))}

{chr(10).join(provenance(run))}

## Evaluation

{eval_section(report.eval_results)}{paired_section(report.eval_results, run.run_dir, report.out)}
## Intended use and limits

- For research and experiments on structured step-by-step reasoning by small models, on problems like the
  training data: arithmetic word problems, scheduling under constraints, tracking state, logic grids, recall.
- Not for decisions that matter: small models make arithmetic and logic mistakes, state them confidently, and
  can produce reasoning steps that do not support the final answer. Check answers independently.
- Trained on synthetic English data only; no safety tuning beyond the base model's. Scores on the synthetic
  evaluation suite say little about real-world tasks.

## How to load

{how_to_load(remote)}"""
    return "\n".join(front) + "\n" + body


def _is_hub_id(name: str) -> bool:
    return bool(re.fullmatch(r"[\w.-]+/[\w.-]+", name)) and not Path(name).exists()


def write_model_card(out: Path, run, report) -> Path:
    path = Path(out) / "README.md"
    path.write_text(render_model_card(run, report))
    return path


# ------------------------------------------------------------------------------------------------ GGUF export
GGUF_HEADING = "## Run it in llama.cpp / Ollama"


def gguf_section(report) -> str:
    """The model card section recipes/export.py adds: the GGUF files (cognitive.release.export.ExportReport) and the
    exact commands that run them, paths relative to the release dir."""
    folder, name = Path(report.out).name, report.name
    rows = [f"| `{folder}/{f['file']}` | {quant} | {f['bytes'] / 1e6:,.1f} MB |" for quant, f in report.files.items()]
    first = f"{folder}/{report.files[report.quants[0]]['file']}"
    ollama = [
        f"ollama create {name if quant == report.quants[0] else f'{name}:{quant}'} -f {folder}/{modelfile}"
        for quant, modelfile in report.modelfiles.items()
    ]
    text = f"""{GGUF_HEADING}

GGUF files written by llama.cpp's own converter{" and quantizer" if report.quantizer else ""} (`recipes/export.py`;
{report.converter}{f"; {report.quantizer}" if report.quantizer else ""}). They hold the same weights without the
Python stack: llama.cpp, Ollama and LM Studio run them on a laptop CPU.

| file | quant | size |
|---|---|---|
{chr(10).join(rows)}

```bash
llama-cli -m {first} --temp 0          # chat in the terminal (uses the chat template inside the GGUF)
llama-server -m {first} --port 8080    # OpenAI-compatible API: POST /v1/chat/completions
"""
    if ollama:
        text += "\n".join(ollama) + "\n" + f"ollama run {name}\n"
    text += "```\n"
    if ollama:
        text += (
            "\nThe `Modelfile` carries the chat template (as Ollama's Go template), the stop tokens and greedy "
            "decoding (temperature 0, no repeat penalty), as the evaluation decodes. LM Studio: `lms import "
            f"{first}`.\n"
        )
    return text


def with_gguf_section(card: str, report) -> str:
    """The card with its GGUF section added, or replaced when an earlier export wrote one."""
    start = card.find(GGUF_HEADING)
    if start >= 0:
        end = card.find("\n## ", start + len(GGUF_HEADING))
        card = card[:start].rstrip("\n") + ("\n\n" + card[end + 1 :] if end >= 0 else "\n")
    return card.rstrip("\n") + "\n\n" + gguf_section(report)
