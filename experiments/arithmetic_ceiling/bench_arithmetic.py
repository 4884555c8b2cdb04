"""Which arithmetic steps can the model compute, and which false steps does it write? The ceiling under step accuracy.

    python experiments/arithmetic_ceiling/bench_arithmetic.py                     # the embedded base
    python experiments/arithmetic_ceiling/bench_arithmetic.py --runs runs/demo,runs/sft-start \
        --samples results/demo/samples
    python experiments/arithmetic_ceiling/bench_arithmetic.py --base Qwen/Qwen2.5-1.5B-Instruct --per_class 100
    python experiments/arithmetic_ceiling/bench_arithmetic.py --drill_steps 100 --drill_forms direct,column
                                                                                 # can practice help?

1. The probe (arithmetic_probe.py, beside this script): `--per_class` single steps of each class (operation and operand
   digits, "- 3d2d"), the assistant turn begun with "<label>: a op b = ", greedy: the share where the model writes
   the right result next, for the base and each run's LoRA adapter.
   The same for the pieces a multi-digit step splits into when written one place value at a time (63 - 27 as
   63 - 20, 43 - 3, 40 - 4; arithmetic_probe.SPLIT_PIECES): would smaller steps be computable?
2. With `--samples` (an evaluation's samples directory, recipes/evaluate.py --out X writes X/samples/<model>/): the
   "a op b = c" steps each model wrote in its answers, true / all, by the same classes, and in all counting a step
   repeated within one answer once (a greedy loop writes "98 + 0 = 98" forty times). `--no_probe`: only this.
3. With `--drill_steps N`: can practice move the ceiling? For each of `--drill_forms` (direct answers, or column
   working: arithmetic_probe.worksheet) a LoRA of the base (the CPU recipes' settings: r 16 on all
   linear layers, lr 1e-3 cosine, bf16 autocast, gradient checkpointing) trains N steps of 8 worksheets of 12 steps
   with TRL's SFTTrainer (cognitive.train.trainer.build_trainer), then is probed as above and asked 32 held-out
   worksheets in its own form (the share of answers right per operation).
Prints the tables and writes <out>/arithmetic.md, results.json and probe.png (--out, default results/arithmetic:
pass another --out for each measurement, or a later run overwrites the probe's results there).
The study and its figures: experiments/arithmetic_ceiling/README.md.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from arithmetic_probe import (
    greedy_replies,
    model_continuations,
    probe_items,
    probe_scores,
    split_items,
    step_breakdown,
    worksheet,
    worksheet_scores,
)

from cognitive.atomic import open_atomic
from cognitive.data.drills import DRILL_FORMS
from cognitive.errors import ArgumentParser, UserError, exit_on_user_error
from cognitive.plots import plot_score_comparison
from cognitive.train.run import check_adapter_base, read_adapter_run


def load(base: str, run: str | None):
    import torch

    from cognitive.model.base import load_base, load_tokenizer

    model = load_base(base, dtype=torch.bfloat16)
    if run:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, run)
    return model.eval(), load_tokenizer(base)


WORKSHEET_STEPS = 12  # drill steps per worksheet


def train_drills(base: str, form: str, steps: int, batch: int, out: Path) -> str:
    """A LoRA of `base` trained `steps` steps on worksheets in `form`; returns its directory
    (<out>/drills-<form>-<steps>; one already finished there is reused)."""
    import random

    from datasets import Dataset
    from trl import ModelConfig, SFTConfig

    from cognitive.train.trainer import build_trainer, load_model_and_tokenizer

    settings = {"base": base, "form": form, "steps": steps, "batch": batch}
    if (out / "adapter_config.json").exists():
        trained = json.loads((out / "drills.json").read_text()) if (out / "drills.json").exists() else None
        if trained != settings:
            raise UserError(f"{out} holds drills trained with {trained}, not {settings}: pass another --out")
        print(f"reusing the drills LoRA in {out}")
        return str(out)
    partial = out.with_name(out.name + ".partial")  # renamed when whole: a killed run leaves no adapter to reuse
    shutil.rmtree(partial, ignore_errors=True)
    rng = random.Random(f"drills|{form}")
    rows = [worksheet(rng, WORKSHEET_STEPS, form)[1] for _ in range(steps * batch)]
    model_args = ModelConfig(
        model_name_or_path=base, dtype="float32", use_peft=True, lora_r=16, lora_alpha=32, lora_dropout=0.0
    )
    training_args = SFTConfig(
        output_dir=str(partial),
        max_steps=steps,
        per_device_train_batch_size=batch,
        learning_rate=1e-3,
        lr_scheduler_type="cosine",
        warmup_steps=5,
        max_length=1024,
        loss_type="nll",
        use_cpu=True,
        bf16=True,
        gradient_checkpointing=True,
        logging_steps=10,
        save_strategy="no",
        report_to="none",
        seed=0,
    )
    model, tokenizer = load_model_and_tokenizer(model_args, training_args)
    trainer = build_trainer(
        model, tokenizer, training_args, model_args, Dataset.from_list(rows), None, cpu_heap_trim_mb=512
    )
    trainer.train()
    trainer.save_model(str(partial))
    (partial / "drills.json").write_text(json.dumps(settings))
    shutil.rmtree(out, ignore_errors=True)  # a stale directory without an adapter
    partial.rename(out)
    return str(out)


def held_out_worksheets(model, tokenizer, form: str, count: int = 32) -> dict[str, float]:
    """{operator: the share right} over `count` fresh worksheets asked in `form` (greedy)."""
    import random

    rng = random.Random(f"held-out drills|{form}")
    sheets = [worksheet(rng, WORKSHEET_STEPS, form) for _ in range(count)]
    prompts = [
        tokenizer.apply_chat_template(p["prompt"], add_generation_prompt=True, tokenize=False) for _, p in sheets
    ]
    # the longest reference answer: ~240 tokens direct, ~640 in columns; room for a wordier reply
    replies = greedy_replies(model, tokenizer, prompts, max_new_tokens=900 if form == "column" else 360, batch_size=8)
    right, asked = {}, {}
    for (items, _), reply in zip(sheets, replies, strict=True):
        for op, (r, n) in worksheet_scores(items, reply).items():
            right[op], asked[op] = right.get(op, 0) + r, asked.get(op, 0) + n
    return {op: right[op] / asked[op] for op in sorted(asked)}


def sample_outputs(samples_dir: Path) -> dict[str, list]:
    """{model label: every output in its *.jsonl}: recipes/evaluate.py writes samples/<model>/ for --tasks and
    samples/<suite>/<model>/ for suites; the label is that folder's path under `samples_dir`."""
    if not samples_dir.is_dir():
        raise UserError(f"--samples {samples_dir}: no such directory")
    folders = sorted({f.parent for f in samples_dir.rglob("*.jsonl")})
    if not folders:
        raise UserError(f"--samples {samples_dir}: no *.jsonl in it (recipes/evaluate.py --out X writes X/samples)")
    found = {}
    for folder in folders:
        outputs = []
        for path in sorted(folder.glob("*.jsonl")):
            for number, line in enumerate(path.open(), 1):
                try:
                    outputs.append(json.loads(line)["output"])
                except (ValueError, TypeError, KeyError):
                    raise UserError(
                        f"{path}:{number}: not an evaluation sample (a JSON object with an 'output')"
                    ) from None
        found[str(folder.relative_to(samples_dir))] = outputs
    return found


def share_table(title: str, scores: dict[str, dict[str, float]]) -> list[str]:
    """A markdown table of {model: {class: share}}, one column per model, with the mean over classes."""
    labels = list(scores)
    lines = [f"### {title}", "", "| class | " + " | ".join(labels) + " |", "|---|" + "---:|" * len(labels)]
    for name in next(iter(scores.values())):
        lines.append(f"| {name} | " + " | ".join(f"{scores[m][name]:.2f}" for m in labels) + " |")
    mean = {m: sum(v.values()) / len(v) for m, v in scores.items()}
    return lines + ["| mean | " + " | ".join(f"{mean[m]:.2f}" for m in labels) + " |"]


def markdown(probe: dict, split: dict, written: dict[str, dict], per_class: int, drills: dict, distinct: dict) -> str:
    lines = []
    if probe:
        lines += share_table(f"Single steps computed right ({per_class} per class, greedy)", probe) + [""]
        lines += share_table("The pieces of a step written one place value at a time, computed right", split)
    if drills:
        ops = sorted({op for d in drills.values() for op in d})
        lines += ["", "### Held-out worksheets after the drills: answers right, in the drills' own form", ""]
        lines += ["| run | " + " | ".join(ops) + " |", "|---|" + "---:|" * len(ops)]
        lines += [f"| {name} | " + " | ".join(f"{d.get(op, 0):.2f}" for op in ops) + " |" for name, d in drills.items()]
    if written:
        models = list(written)
        classes = sorted({c for w in written.values() for c in w})
        lines += ["", "### Steps written in the answers: true / all", ""]
        lines += ["| class | " + " | ".join(models) + " |", "|---|" + "---:|" * len(models)]
        for name in classes:
            cells = [f"{written[m][name][0]}/{written[m][name][1]}" if name in written[m] else "–" for m in models]
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
        for row, counts in (("all", written), ("all, a step repeated in one answer once", distinct)):
            totals = [tuple(map(sum, zip(*counts[m].values()))) if counts[m] else (0, 0) for m in models]
            lines.append(f"| {row} | " + " | ".join(f"{t}/{n} ({t / n:.2f})" if n else "–" for t, n in totals) + " |")
    return "\n".join(lines)


def probed(items, model, tokenizer, kept: list) -> dict[str, float]:
    """probe_scores of `items`, keeping each prefix and continuation in `kept` (results.json shows what was read)."""

    def complete(batch):
        out = model_continuations(model, tokenizer, batch)
        kept.extend({"prefix": item.prefix, "continuation": c} for item, c in zip(batch, out, strict=True))
        return out

    return probe_scores(items, complete)


def build_parser() -> ArgumentParser:
    parser = ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", default="embedded:smollm2-135m-instruct")
    parser.add_argument("--runs", default="", help="comma-separated finished run dirs (LoRA adapters of --base)")
    parser.add_argument("--per_class", type=int, default=40)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--samples", type=Path, default=None, help="an evaluation's samples directory")
    parser.add_argument(
        "--drill_steps", type=int, default=0, help="train a LoRA this many steps on worksheets (0: off)"
    )
    parser.add_argument("--drill_forms", default="direct,column", help="the worksheets' answer forms, one LoRA each")
    parser.add_argument("--drill_batch", type=int, default=8)
    parser.add_argument("--no_probe", action="store_true", help="only the --samples breakdown: no model is loaded")
    parser.add_argument("--out", type=Path, default=Path("results/arithmetic"))
    return parser


@exit_on_user_error
def main() -> None:
    parser = build_parser()
    args = parser.parse_args()
    if args.no_probe and not args.samples:
        parser.error("--no_probe reads --samples only: give --samples")
    if args.no_probe and (args.runs or args.drill_steps):
        parser.error("--no_probe loads no model: drop --runs and --drill_steps")
    if args.per_class < 1:
        parser.error("--per_class must be at least 1")
    forms = args.drill_forms.split(",") if args.drill_steps else []
    if unknown := [f for f in forms if f not in DRILL_FORMS]:
        parser.error(f"--drill_forms: unknown {', '.join(unknown)} (known: {', '.join(DRILL_FORMS)})")
    models = {} if args.no_probe else {"base": None}  # {label: adapter dir}
    drill_forms = {}  # {drills label: its form}
    for run in map(read_adapter_run, filter(None, args.runs.split(","))):  # a finished LoRA run, or one line
        check_adapter_base(run)
        if run.has_modules:  # load() attaches the LoRA only: probing without the modules would misreport the run
            raise UserError(f"--runs: {run.run_dir} has cognitive modules; this bench probes LoRA-only runs")
        if run.run_dir.name in models or run.run_dir.name.startswith("drills-"):
            parser.error(f"--runs: {run.run_dir} would be labelled {run.run_dir.name!r}, taken or reserved")
        models[run.run_dir.name] = str(run.run_dir)
    outputs = sample_outputs(args.samples) if args.samples else {}  # read first: a bad path fails before any work
    written = {label: step_breakdown(texts) for label, texts in outputs.items()}
    distinct = {label: step_breakdown(texts, distinct=True) for label, texts in outputs.items()}

    items, pieces = probe_items(args.per_class, args.seed), split_items(args.per_class, args.seed)
    for form in forms:
        label = f"drills-{form}-{args.drill_steps}"
        models[label] = train_drills(args.base, form, args.drill_steps, args.drill_batch, args.out / label)
        drill_forms[label] = form
    probe, split, drills, continuations = {}, {}, {}, {}
    for name, run in models.items():
        model, tokenizer = load(args.base, run)
        continuations[name] = []
        probe[name] = probed(items, model, tokenizer, continuations[name])
        split[name] = probed(pieces, model, tokenizer, continuations[name])
        if name in drill_forms:
            drills[name] = held_out_worksheets(model, tokenizer, drill_forms[name])
        del model
    table = markdown(probe, split, written, args.per_class, drills, distinct)
    print(table)
    args.out.mkdir(parents=True, exist_ok=True)
    with open_atomic(args.out / "arithmetic.md") as f:
        f.write(table + "\n")
    with open_atomic(args.out / "results.json") as f:
        settings = vars(args) | {"out": str(args.out), "samples": str(args.samples)}
        json.dump(
            {
                "settings": settings,
                "probe": probe,
                "split": split,
                "drills": drills,
                "written": written,
                "written_distinct": distinct,
                "continuations": continuations,
            },
            f,
            indent=2,
        )
    if probe:
        plot_score_comparison(probe, args.out / "probe.png", title="single arithmetic steps computed right")
    print(f"wrote {args.out}/arithmetic.md, results.json{', probe.png' if probe else ''}")


if __name__ == "__main__":
    main()
