"""Peak memory and step time of the 135M CPU recipes, with a breakdown of where one training step's memory goes.

    python tests/performance/bench_train_memory.py                         # the comparison below, 4 x 512 and 4 x 1024
    python tests/performance/bench_train_memory.py --shapes 4x1024 --configs lora,modules --steps 3
    python tests/performance/bench_train_memory.py --one lora_fp32 --shape 4x1024 --breakdown   # one, in detail

Each configuration runs in its own process (so its peak RSS is its own): the recipe's trainer
(cognitive.train.trainer.build_trainer) on the embedded SmolLM2-135M-Instruct, rows of exactly the shape's length
(records of the five task types, truncated), `--steps` optimizer steps after one warm-up step. Reported: peak RSS
(VmHWM of the process, from the start: model, data, trainer and the steps), seconds per step, and the memory
estimator's CPU prediction (cognitive/model/memory.py, `estimate` of the recipe with use_cpu) beside the measurement.
Configurations (the recipes' `--<key> <value>` overrides):

    lora_fp32       the old CPU recipe: LoRA, fp32, no gradient checkpointing
    modules_fp32    the same with every cognitive module (the 135M recipe's widths)
    lora            LoRA, bf16 autocast, gradient checkpointing, no heap trimming (`cpu_heap_trim_mb: 0`)
    modules         the same with every cognitive module
    lora_trim<N>, modules_trim<N>   the same with `cpu_heap_trim_mb: N` (N = 256, 512, 1024; cognitive/train/heap.py);
                    lora_trim512 and modules_trim512 were the CPU recipes until issue 42 (all of the above: fp32 base,
                    padded rows)
    lora_recipe, modules_recipe   the CPU recipes' settings now (demo_cpu.yaml; cognitive_135m_cpu.yaml without
                    its gradient checkpointing): bf16 base, padding-free rows, no checkpointing, heap trimming at
                    512 MiB (tests/performance/bench_cpu_speed.py); *_recipe_untrimmed: the same untrimmed;
                    *_recipe_trim128, *_recipe_trim256: the same trimming at 128 or 256 MiB;
                    *_recipe_every<N> (N = 2, 3, 4): every N-th decoder layer checkpointed
                    (`gradient_checkpointing_kwargs: {every_n_layers: N}`), *_recipe_every<N>_untrimmed

`--breakdown` also prints, for the warm-up step, the bytes of weights, trainable parameters + gradients + AdamW state,
and the tensors autograd saves for backward, by the module that saved them (attention, MLP, norms, LM head / loss,
each cognitive module), measured with torch.autograd.graph.saved_tensors_hooks.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

from cognitive.errors import ArgumentParser

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

MODULES = {  # the 135M CPU recipe's widths (recipes/configs/cognitive_135m_cpu.yaml)
    "working_memory": {"enabled": True, "memory_size": 512, "update_frequency": 4, "memory_dim": 128},
    "reasoning_heads": {"enabled": True, "num_reasoning_heads": 4, "reasoning_dim": 64},
    "state_tracking": {"enabled": True, "num_states": 32, "state_dim": 128},
    "planning_module": {"enabled": True, "planning_horizon": 8, "action_space_size": 64},
}
CONFIGS = {
    "lora_fp32": dict(modules=False, overrides={"bf16": "false", "gradient_checkpointing": "false"}),
    "modules_fp32": dict(modules=True, overrides={"bf16": "false", "gradient_checkpointing": "false"}),
    "lora_bf16": dict(modules=False, overrides={"bf16": "true", "gradient_checkpointing": "false"}),
    "modules_bf16": dict(modules=True, overrides={"bf16": "true", "gradient_checkpointing": "false"}),
    "lora": dict(modules=False, overrides={"bf16": "true", "gradient_checkpointing": "true"}),
    "modules": dict(modules=True, overrides={"bf16": "true", "gradient_checkpointing": "true"}),
}
for _spec in CONFIGS.values():  # the fp32 base and padded rows of the recipes before issue 42; untrimmed
    _spec["overrides"].update(dtype="float32", padding_free="false", cpu_heap_trim_mb="0")
for _mb in (256, 512, 1024):  # the same with cognitive/train/heap.py's trimmer: malloc_trim past this RSS growth (MiB)
    for _name in ("lora", "modules"):
        CONFIGS[f"{_name}_trim{_mb}"] = dict(
            modules=CONFIGS[_name]["modules"], overrides={**CONFIGS[_name]["overrides"], "cpu_heap_trim_mb": str(_mb)}
        )
# The CPU recipes since issue 42 (tests/performance/bench_cpu_speed.py): bf16 base, padding-free rows, no
# checkpointing, heap trimming at 512 MiB; and the same untrimmed
RECIPE = {"dtype": "bfloat16", "bf16": "true", "padding_free": "true", "gradient_checkpointing": "false"}
for _name, _modules in (("lora", False), ("modules", True)):
    CONFIGS[f"{_name}_recipe"] = dict(modules=_modules, overrides={**RECIPE, "cpu_heap_trim_mb": "512"})
    CONFIGS[f"{_name}_recipe_untrimmed"] = dict(modules=_modules, overrides={**RECIPE, "cpu_heap_trim_mb": "0"})
    for _mb in (128, 256):  # the recipe trimming sooner
        CONFIGS[f"{_name}_recipe_trim{_mb}"] = dict(
            modules=_modules, overrides={**RECIPE, "cpu_heap_trim_mb": str(_mb)}
        )
    for _n in (2, 3, 4):  # every n-th layer checkpointed (transformers' every_n_layers), trimmed and untrimmed
        _every = {
            **RECIPE,
            "gradient_checkpointing": "true",
            "gradient_checkpointing_kwargs": f'{{"every_n_layers": {_n}}}',
        }
        CONFIGS[f"{_name}_recipe_every{_n}"] = dict(modules=_modules, overrides={**_every, "cpu_heap_trim_mb": "512"})
        CONFIGS[f"{_name}_recipe_every{_n}_untrimmed"] = dict(
            modules=_modules, overrides={**_every, "cpu_heap_trim_mb": "0"}
        )
        CONFIGS[f"{_name}_recipe_every{_n}_trim256"] = dict(  # trimming sooner
            modules=_modules, overrides={**_every, "cpu_heap_trim_mb": "256"}
        )
MB = 2**20


def peak_rss() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return 0


FULL_ROWS = ("advanced", "expert")  # difficulties whose guide-style records fill every row once truncated
CPU_MIX_ROWS = ("basic", "intermediate")  # the CPU mix's (data/configs/cpu_mix.yaml): rows of varied lengths


def make_data(directory: Path, rows: int, levels=FULL_ROWS) -> Path:
    """Records of all five task types at these difficulties, in a shuffled order (seeded)."""
    import random

    from cognitive import tasks
    from cognitive.data.generators import generate_example
    from cognitive.data.schema import write_jsonl

    examples = [
        generate_example(t.name, level, seed) for seed in range(rows) for t in tasks.TASK_TYPES for level in levels
    ]
    random.Random(0).shuffle(examples)
    write_jsonl(examples, directory / "train.jsonl")
    return directory


class SavedTensorLedger:
    """Bytes of the tensors autograd saves for backward, by the innermost module that was running."""

    def __init__(self, model):
        self.stack: list[str] = []
        self.bytes: dict[str, int] = defaultdict(int)
        self.seen: set[int] = set()
        for name, module in model.named_modules():
            module.register_forward_pre_hook(lambda m, a, n=name: self._enter(n))
            module.register_forward_hook(lambda m, a, o: self._leave())

    def _enter(self, name: str) -> None:  # hooks return None: anything else would replace the module's output
        self.stack.append(name)

    def _leave(self) -> None:
        if self.stack:
            self.stack.pop()

    def category(self) -> str:
        name = self.stack[-1] if self.stack else ""
        for key, label in (
            (".cognitive.memory", "working_memory"),
            (".cognitive.reasoning", "reasoning_heads"),
            (".cognitive.state", "state_tracking"),
            (".cognitive.planning", "planning_module"),
            ("self_attn", "attention"),
            ("mlp", "mlp"),
            ("norm", "norms"),
            ("embed", "embeddings"),
            ("lora_", "lora"),
        ):
            if key in name:
                return label
        return "lm head, loss, other" if name.count(".") < 4 else "decoder layer glue"

    def pack(self, tensor):
        storage = tensor.untyped_storage()
        if storage.data_ptr() not in self.seen:
            self.seen.add(storage.data_ptr())
            self.bytes[self.category()] += storage.nbytes()
        return tensor


def run_one(config: str, shape: str, steps: int, breakdown: bool, spec: dict | None = None, levels=FULL_ROWS) -> dict:
    """One configuration in this process: build the recipe's trainer, time the steps, measure. `spec` (default
    CONFIGS[config]): {"modules": bool, "overrides": {recipe key: value}}; `levels`: the records' difficulties
    (FULL_ROWS: every row full; CPU_MIX_ROWS: rows of the CPU mix's varied lengths).

    Besides peak RSS and seconds per step: the real (non-padding) tokens and the trained (completion) tokens of
    every step, counted at the model's input, each step's time and loss, and the first (warm-up) step's time."""
    import torch

    from cognitive.model.memory import estimate, setup_from_args, shape_for
    from cognitive.train.args import parse_sft_args
    from cognitive.train.sft_config import resolve_sft
    from cognitive.train.sft_data import load_sft_datasets
    from cognitive.train.trainer import build_trainer, load_model_and_tokenizer

    batch, length = (int(x) for x in shape.split("x"))
    spec = spec or CONFIGS[config]
    with tempfile.TemporaryDirectory() as scratch:
        data = make_data(Path(scratch), rows=max(8, batch * (steps + 2) // len(levels)), levels=levels)
        argv = [
            "--config",
            str(ROOT / "recipes/configs/cognitive_135m_cpu.yaml"),
            "--dataset_path",
            str(data),
            "--output_dir",
            f"{scratch}/run",
            "--max_steps",
            str(steps + 1),
            "--per_device_train_batch_size",
            str(batch),
            "--max_length",
            str(length),
            "--logging_steps",
            "1",
            "--save_strategy",
            "no",
            "--report_to",
            "none",
            "--use_cpu",
            "true",
            "--prompt_styles",  # the guide's layout: the longest records, so that every row is full
            "guide",
            "--response_style",
            "guide",
        ]
        for key, value in spec["overrides"].items():
            argv += [f"--{key}", value]
        script_args, training_args, model_args = parse_sft_args(argv)
        script_args.cognitive_modules = MODULES if spec["modules"] else None
        resolved = resolve_sft(script_args, training_args, model_args)
        train, _ = load_sft_datasets(resolved)
        model, tokenizer = load_model_and_tokenizer(model_args, training_args, resolved.modules)
        trainer = build_trainer(
            model, tokenizer, training_args, model_args, train, None, resolved.aux_labels, script_args.cpu_heap_trim_mb
        )
        times, ledger = [], None
        state = {}

        class Timer:  # a TrainerCallback (duck-typed): the time of every optimizer step
            def __getattr__(self, name):
                return lambda *a, **k: None

            def on_step_begin(self, *a, **k):
                state["t"] = time.perf_counter()

            def on_step_end(self, *a, **k):
                times.append(time.perf_counter() - state["t"])

        trainer.add_callback(Timer())
        tokens = []  # per forward: (real tokens, trained tokens); one forward per optimizer step here

        def count_tokens(module, args, kwargs):
            mask = kwargs.get("attention_mask")
            ids = kwargs["input_ids"]
            bounds = kwargs.get("cu_seq_lens_q")  # padding-free rows: one packed row, no padding
            rows = mask.sum(-1).tolist() if mask is not None else bounds.diff().tolist() if bounds is not None else []
            labels = kwargs.get("labels")
            trained = int((labels[..., 1:] != -100).sum()) if labels is not None else 0
            if torch.is_grad_enabled():
                tokens.append((rows or [ids.numel()], trained))

        hook = trainer.model.register_forward_pre_hook(count_tokens, with_kwargs=True)
        if breakdown:
            ledger = SavedTensorLedger(trainer.model)
            with torch.autograd.graph.saved_tensors_hooks(ledger.pack, lambda t: t):
                trainer.train()
        else:
            trainer.train()
        hook.remove()
        params = {"base": 0, "trainable": 0}
        for p in trainer.model.parameters():
            params["trainable" if p.requires_grad else "base"] += p.numel() * p.element_size()
        optimizer_state = sum(
            t.numel() * t.element_size()
            for s in trainer.optimizer.state.values()
            for t in s.values()
            if torch.is_tensor(t)
        )
        setup = setup_from_args(
            training_args, model_args, module_params=(params["trainable"] // 4 if spec["modules"] else 0)
        )
        predicted = estimate(shape_for("embedded:smollm2-135m-instruct"), setup).total
        result = {
            "config": config,
            "shape": shape,
            "peak_rss_gib": round(peak_rss() / 2**30, 2),
            "s_per_step": round(sorted(times[1:])[len(times[1:]) // 2], 2) if len(times) > 1 else None,
            "estimate_gib": round(predicted / 2**30, 2),
            "weights_mib": round(params["base"] / MB, 1),
            "trainable_mib": round(params["trainable"] / MB, 1),
            "optimizer_state_mib": round(optimizer_state / MB, 1),
            "heap_trims": trainer.heap_trimmer.trims if trainer.heap_trimmer else None,
            "step_s": [round(t, 3) for t in times],
            "real_tokens": [sum(rows) for rows, _ in tokens],
            "row_lengths": [rows for rows, _ in tokens],
            "trained_tokens": [trained for _, trained in tokens],
            "losses": [e["loss"] for e in trainer.state.log_history if "loss" in e],
            "module_params": params["trainable"] // 4 - lora_params(trainer.model) if spec["modules"] else 0,
        }
        if ledger is not None:
            result["saved_for_backward_mib"] = {
                k: round(v / MB, 1) for k, v in sorted(ledger.bytes.items(), key=lambda kv: -kv[1])
            }
        return result


def lora_params(model) -> int:
    return sum(p.numel() for n, p in model.named_parameters() if p.requires_grad and "lora_" in n)


def build_parser() -> ArgumentParser:
    parser = ArgumentParser(description=__doc__.splitlines()[0])
    recipes_now = ("lora_trim512", "modules_trim512")
    parser.add_argument("--configs", default=",".join(c for c in CONFIGS if "_trim" not in c or c in recipes_now))
    parser.add_argument("--shapes", default="4x512,4x1024")
    parser.add_argument("--steps", type=int, default=3, help="timed optimizer steps (after one warm-up)")
    parser.add_argument("--breakdown", action="store_true")
    parser.add_argument("--one", help=argparse.SUPPRESS)  # run one configuration in this process
    parser.add_argument("--shape", help=argparse.SUPPRESS)
    parser.add_argument("--json", default=None)
    return parser


def main() -> None:
    parser = build_parser()
    args = parser.parse_args()
    if args.one:
        print("RESULT " + json.dumps(run_one(args.one, args.shape, args.steps, args.breakdown)), flush=True)
        return
    rows = []
    for shape in args.shapes.split(","):
        for config in args.configs.split(","):
            command = [sys.executable, __file__, "--one", config, "--shape", shape, "--steps", str(args.steps)]
            command += ["--breakdown"] if args.breakdown else []
            out = subprocess.run(
                command, capture_output=True, text=True, env={**os.environ, "TOKENIZERS_PARALLELISM": "false"}
            )
            lines = [line for line in out.stdout.splitlines() if line.startswith("RESULT ")]
            if out.returncode or not lines:
                print(f"{config} {shape}: failed\n{out.stderr[-3000:]}", flush=True)
                continue
            row = json.loads(lines[-1][len("RESULT ") :])
            rows.append(row)
            print(json.dumps(row), flush=True)
    for shape in args.shapes.split(","):
        by = {r["config"]: r for r in rows if r["shape"] == shape}
        for suffix in ["", *sorted({c[c.index("_trim") :] for c in by if "_trim" in c})]:
            lora, modules = by.get(f"lora{suffix}"), by.get(f"modules{suffix}")
            if lora and modules and lora["s_per_step"]:
                peak = modules["peak_rss_gib"]
                print(
                    f"{shape}: modules{suffix} / lora{suffix} step time "
                    f"{modules['s_per_step'] / lora['s_per_step']:.2f}x (target <= 1.3); modules{suffix} peak RSS "
                    f"{peak} GiB = {peak * 2**30 / 1e9:.2f} GB (target <= 4 GB)"
                )
            for untrimmed in ("modules", "lora"):  # what the trimming costs, against the untrimmed runs
                if suffix and modules and by.get(untrimmed, {}).get("s_per_step"):
                    cost = modules["s_per_step"] / by[untrimmed]["s_per_step"]
                    print(
                        f"{shape}: modules{suffix} / {untrimmed} step time {cost:.2f}x, "
                        f"peak {modules['peak_rss_gib']} vs {by[untrimmed]['peak_rss_gib']} GiB"
                    )
        if "lora_fp32" in by and "lora" in by and by["lora"]["s_per_step"]:
            print(
                f"{shape}: lora / lora_fp32 step time "
                f"{by['lora']['s_per_step'] / by['lora_fp32']['s_per_step']:.2f}x, "
                f"peak {by['lora']['peak_rss_gib']} vs {by['lora_fp32']['peak_rss_gib']} GiB"
            )
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1) + "\n")


if __name__ == "__main__":
    main()
