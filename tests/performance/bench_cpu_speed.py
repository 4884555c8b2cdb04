"""How much of the CPU's matmul rate the 135M recipes use: training and generation, old recipe beside new.

    python tests/performance/bench_cpu_speed.py --out runs/bench_cpu_speed          # all of it (~40 min, 2 cores)
    python tests/performance/bench_cpu_speed.py --out /tmp/b --sections train --configs old,new --shapes 4x512 \
        --steps 2                                                                      # a short trial
    python tests/performance/bench_cpu_speed.py --out /tmp/b --sections losses       # the first 20 steps' losses

One run measures, in this order:

    matmul    the machine's bf16 and fp32 matmul rate (TFLOP/s) on a few shapes: the 135M's projections at 4096
              tokens (hidden 576, intermediate 1536, k/v 192), an LM-head tile (vocab 49152) and 4096^3. The
              reference rate for MFU is the best rate of the 135M's projection shapes in either precision: bf16
              on a CPU with native bf16 matmuls (AMX / AVX512-BF16), fp32 on one without (oneDNN emulates bf16
              there, ~5x slower), where the recipes train in fp32 (cpu_precision: auto).
    train     each training configuration (TRAIN_CONFIGS: the recipe's `--<key> <value>` overrides and the
              process environment) in its own process, through tests/performance/bench_train_memory.py's run_one
              (the recipe's trainer on the embedded SmolLM2-135M-Instruct): one warm-up step, then `--steps`
              optimizer steps of 4 x 512 and 4 x 1024-token batches of the CPU mix's records (all five types,
              basic and intermediate, the guide's layout: rows of 200 to 1300 tokens, truncated at the shape's
              length, so batches have padding to lose). Reported: real (non-padding) tokens/s, model FLOP/s, MFU,
              seconds per step, peak RSS, and the modules / LoRA-only step-time ratio.
    generate  greedy generation at batch 1 and 16 (chat prompts of the five task types, 128 new tokens each,
              every row to the end), old (the evaluation harness before issue 42: bf16 weights, dynamic cache,
              OpenMP's default wait policy), new (threads asleep), new+buffered_cache (the KV cache appended in
              place, cognitive/model/kv_cache.py) and new+buffered_cache+packed (the harness now: + linear weights
              packed for oneDNN, cognitive/model/packed_linear.py) and new+buffered_cache+packed+short_spin (the
              harness on an idle machine: waiting threads spin ~0.1-0.3 ms before they sleep), each in its own
              process: generated tokens/s (prefill included).
    attention one decoding step's attention in one layer of the 135M (bf16, batch 16, 9 query heads on 3 KV heads,
              head dim 64) at 400 and 2,000 tokens of context, keys and values as the in-place cache holds them (a
              view of a longer buffer) and copied contiguous: SDPA (what transformers runs), and matmul + fp32
              softmax + matmul (transformers' eager attention) with each matmul alone; ms per layer and GB/s of
              keys and values read. One layer repeated: its keys and values stay in the L3 cache, so these are
              best cases for every form (a real step reads 30 layers' from memory).
    threads   the harness's generation (buffered cache, packed weights) at batch 1 and 16 under three OpenMP
              settings for waiting threads: asleep (PASSIVE), a short spin first (GOMP_SPINCOUNT=30000, cognitive's
              default on an idle machine) and OpenMP's default (~3 ms of spinning), on the quiet machine and again
              with --busy other processes spinning on the cores; each setting's tokens/s over asleep's.
    losses    the first 20 steps' losses of the old recipe (its threads asleep: the same numbers) and the new (same
              rows, same order, 4 x 512), their largest difference against LOSS_TOLERANCE.

FLOPs, counted the standard way (Kaplan et al.; PaLM appendix B): N = the matmul parameters a token passes through
(the 30 decoder layers' 7 projections and the LM head, tied to the embeddings: 134.5M for the 135M; + the cognitive
modules' parameters for the modules recipe), and per real token

    model FLOPs = 6 N + 6 L d n      forward 2 N, backward 4 N (activation and weight gradients); attention 2 x 2 L d
                                     n / 2 forward for a causal row of n tokens (L layers, width d), x 3 with backward

MFU = model FLOP/s / the measured matmul rate (the better of bf16 and fp32). With a frozen base and LoRA the weight
gradients of the frozen weights are never computed, so the work actually done is 4 N (+ LoRA's own ~1%) per token, and
gradient checkpointing recomputes the forward: 6 N with it, 4 N + 2 N x the share of layers recomputed with
every_n_layers. MFU counts neither (the nominal 6 N, as MFU is defined: what the model needs, not what the
implementation does); the table also gives the actual FLOP rate ("HW FLOP/s": 4 N to 6 N, + attention the same way),
so the two readings are side by side.

Other processes stretch wall time: `uptime`'s load average is printed and saved with the figures; compare rows of
one run only.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_train_memory import CPU_MIX_ROWS  # noqa: E402  (tests/performance is not a package)

import cognitive  # noqa: E402
from cognitive.errors import ArgumentParser  # noqa: E402

MODEL = "embedded:smollm2-135m-instruct"
MATMUL_SHAPES = [  # (tokens, in, out)
    (4096, 576, 576),  # q / o projection
    (4096, 576, 192),  # k / v projection (3 KV heads x 64)
    (4096, 576, 1536),  # gate / up
    (4096, 1536, 576),  # down
    (256, 576, 4096),  # one CPU LM-head tile (memory.CPU_LOGIT_TILE)
    (4096, 576, 49152),  # the whole LM head
    (4096, 4096, 4096),
]
PROJECTIONS = MATMUL_SHAPES[:4]  # the reference for MFU: the best rate among these (bf16 or fp32)

# The recipe before this study (recipes/configs/*_cpu.yaml until issue 42) and the one after; the others change one
# setting at a time. "env": the process environment (OMP_WAIT_POLICY unset: GNU OpenMP's default, spinning).
# (cpu_precision: recipe: bf16 autocast on any CPU, as before run 8; the new recipe's is auto)
OLD = {
    "dtype": "float32",
    "bf16": "true",
    "gradient_checkpointing": "true",
    "cpu_heap_trim_mb": "512",
    "cpu_precision": "recipe",
}
NO_CHECKPOINTING = {"dtype": "bfloat16", "bf16": "true", "gradient_checkpointing": "false", "cpu_heap_trim_mb": "512"}
NO_CHECKPOINTING = {**NO_CHECKPOINTING, "padding_free": "true"}  # the new recipe until its memory was cut


def every_n(n: int) -> dict:
    """The new recipe with every n-th decoder layer checkpointed (transformers' every_n_layers)."""
    kwargs = json.dumps({"every_n_layers": n})
    return {**NO_CHECKPOINTING, "gradient_checkpointing": "true", "gradient_checkpointing_kwargs": kwargs}


EVERY_N_LAYERS = 2  # demo_cpu.yaml: under 4 GB at 4 x 1024 full rows
NEW = every_n(EVERY_N_LAYERS)
PASSIVE = {"OMP_WAIT_POLICY": "PASSIVE"}  # no spinning (GNU OpenMP's spin count 0)
SHORT_SPIN = {"OMP_WAIT_POLICY": "PASSIVE", "GOMP_SPINCOUNT": cognitive.SHORT_SPIN}  # its default on an idle machine
STEP1 = {**OLD}  # + OpenMP's waiting threads asleep
STEP2 = {**STEP1, "dtype": "bfloat16"}  # + the bf16 base
STEP3 = {**STEP2, "padding_free": "true"}  # + padding-free rows; then every 2nd layer checkpointed: NEW
TRAIN_CONFIGS = {  # the old recipe, then one change at a time to the new, then the new with one change
    "old": dict(overrides=OLD, env={}),
    "old+passive": dict(overrides=STEP1, env=PASSIVE),
    "old+passive+bf16_base": dict(overrides=STEP2, env=PASSIVE),
    "old+passive+bf16_base+padding_free": dict(overrides=STEP3, env=PASSIVE),
    "new": dict(overrides=NEW, env=PASSIVE),
    "new/no_checkpointing": dict(overrides=NO_CHECKPOINTING, env=PASSIVE),
    "new/every_3": dict(overrides=every_n(3), env=PASSIVE),
    "new/every_4": dict(overrides=every_n(4), env=PASSIVE),
    "new/all_checkpointed": dict(overrides={**NO_CHECKPOINTING, "gradient_checkpointing": "true"}, env=PASSIVE),
    "new/untrimmed": dict(overrides={**NEW, "cpu_heap_trim_mb": "0"}, env=PASSIVE),
    "new/omp_default": dict(overrides=NEW, env={}),
    "new/short_spin": dict(overrides=NEW, env=SHORT_SPIN),  # cognitive's default on an idle machine
    "new/fp32_base": dict(overrides={**NEW, "dtype": "float32"}, env=PASSIVE),
    "new/fp32": dict(overrides={**NEW, "dtype": "float32", "bf16": "false"}, env=PASSIVE),  # no autocast either
    "new/bf16": dict(overrides={**NEW, "cpu_precision": "recipe"}, env=PASSIVE),  # bf16 on a CPU without it too
    "new+compile": dict(overrides={**NEW, "torch_compile": "true"}, env=PASSIVE),
}
HEADLINE = ("old", "new")  # run for LoRA-only and modules at every shape; the others LoRA-only at the last shape
GENERATE_CONFIGS = {  # dtype None: the harness's (bf16 on a CPU with native bf16)
    "old": dict(env={}, cache="dynamic", dtype=None),
    "new": dict(env=PASSIVE, cache="dynamic", dtype=None),
    "new+static_cache": dict(env=PASSIVE, cache="static", dtype=None),
    # keys and values appended in place (cognitive/model/kv_cache.py), the same tokens
    "new+buffered_cache": dict(env=PASSIVE, cache="buffered", dtype=None),
    # the harness now: + linear weights packed for oneDNN once (cognitive/model/packed_linear.py), the same tokens
    "new+buffered_cache+packed": dict(env=PASSIVE, cache="buffered", dtype=None, packed=True),
    # ... on an idle machine, where cognitive lets waiting threads spin ~0.1-0.3 ms before they sleep
    "new+buffered_cache+packed+short_spin": dict(env=SHORT_SPIN, cache="buffered", dtype=None, packed=True),
    # GRPO generates with the training model: its recipe's fp32 base under bf16 autocast before, a bf16 base now
    "grpo_old": dict(env=PASSIVE, cache="dynamic", dtype="float32"),
}
LOSS_STEPS = 20
LOSS_SHAPE = "4x512"
# The new recipe's losses against the old (fp32 base) recipe's, step by step over the first 20 steps of the same rows:
# the largest difference allowed, relative to the old loss (bf16 weights round each weight to 8 bits of mantissa).
LOSS_TOLERANCE = 0.03


# ------------------------------------------------------------------------------------------------ FLOPs
def flop_counts(module_params: int = 0, lengths=(), recomputed: float = 0.0) -> dict:
    """Model (6 N) and actual (4 N frozen base + LoRA, + 2 N for the share of layers recomputed: 6 N with all)
    FLOPs of training on rows of these lengths (see the module docstring)."""
    from cognitive.model.memory import shape_for

    shape = shape_for(MODEL)
    n = shape.linear_params + shape.vocab * shape.hidden + module_params  # projections + LM head (+ modules)
    tokens = sum(lengths)
    attention = sum(6 * shape.layers * shape.hidden * length * length for length in lengths)  # 6 L d n per token
    forward = 2 * n * tokens + attention / 3
    model = 6 * n * tokens + attention
    actual = forward * (2 + recomputed) + 2 * module_params * tokens  # frozen base: no weight grads
    return {"n": n, "tokens": tokens, "model": model, "actual": actual}


# ------------------------------------------------------------------------------------------------ matmul
def matmul_rates(seconds: float = 1.0) -> list[dict]:
    import torch

    rows = []
    for dtype in (torch.bfloat16, torch.float32):
        for m, k, n in MATMUL_SHAPES:
            a, b = torch.randn(m, k, dtype=dtype), torch.randn(k, n, dtype=dtype)
            a @ b  # warm-up (oneDNN primitive creation)
            done, start = 0, time.perf_counter()
            while done < 3 or time.perf_counter() - start < seconds:
                a @ b
                done += 1
            rate = 2 * m * k * n * done / (time.perf_counter() - start)
            rows.append(
                {"dtype": str(dtype).removeprefix("torch."), "shape": [m, k, n], "tflops": round(rate / 1e12, 4)}
            )
            print(f"matmul {rows[-1]['dtype']:>8} {m} x {k} x {n}: {rate / 1e12:.3f} TFLOP/s", flush=True)
    return rows


def reference_rate(rows: list[dict]) -> float:
    """TFLOP/s: the best rate of the 135M's projection shapes, bf16 or fp32 (module docstring, `matmul`)."""
    return max(r["tflops"] for r in rows if tuple(r["shape"]) in PROJECTIONS)


# ------------------------------------------------------------------------------------------------ training
def process_env(settings: dict) -> dict:
    """This process's environment with exactly these OpenMP settings (cognitive's own defaults switched off with
    COGNITIVE_SLM_THREAD_DEFAULTS=0): without OMP_WAIT_POLICY in them, OpenMP's own default."""
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}
    env.update(TOKENIZERS_PARALLELISM="false", COGNITIVE_SLM_THREAD_DEFAULTS="0", **settings)
    return env


def in_own_process(option: str, payload: dict, settings: dict, what: str) -> dict | None:
    """Run this file with `--<option> <payload JSON>` under these OpenMP settings; its RESULT line, or None (and the
    error printed) when it failed."""
    command = [sys.executable, __file__, f"--{option}", json.dumps(payload)]
    out = subprocess.run(command, capture_output=True, text=True, env=process_env(settings))
    lines = [line for line in out.stdout.splitlines() if line.startswith("RESULT ")]
    if out.returncode or not lines:
        print(f"{what}: failed\n{out.stderr[-3000:]}", flush=True)
        return None
    return json.loads(lines[-1][len("RESULT ") :])


def run_train(name: str, modules: bool, shape: str, steps: int) -> dict | None:
    """One training configuration in its own process (its peak RSS, its environment); None when it failed."""
    spec = TRAIN_CONFIGS[name]
    payload = {"modules": modules, "overrides": spec["overrides"], "shape": shape, "steps": steps}
    result = in_own_process("one-train", payload, spec["env"], f"{name} {shape}")
    if result is None:
        return None
    result.update(config=name, recipe="modules" if modules else "lora")
    result["gradient_checkpointing"] = spec["overrides"].get("gradient_checkpointing") == "true"
    result["recomputed_share"] = recomputed_share(spec["overrides"])
    return result


def recomputed_share(overrides: dict) -> float:
    """The share of decoder layers gradient checkpointing recomputes (every_n_layers = n: layers 0, n, 2n, ...)."""
    from cognitive.model.memory import checkpointed_layers, shape_for

    if overrides.get("gradient_checkpointing") != "true":
        return 0.0
    every = json.loads(overrides.get("gradient_checkpointing_kwargs") or "{}").get("every_n_layers", 1)
    layers = shape_for(MODEL).layers
    return checkpointed_layers(layers, every) / layers


def one_train(payload: str) -> None:
    from bench_train_memory import run_one

    spec = json.loads(payload)
    result = run_one(
        "custom",
        spec["shape"],
        spec["steps"],
        False,
        spec={"modules": spec["modules"], "overrides": spec["overrides"]},
        levels=CPU_MIX_ROWS,
    )
    print("RESULT " + json.dumps(result), flush=True)


def train_figures(result: dict, reference_tflops: float) -> dict:
    """tokens/s, FLOP/s and MFU over the timed steps (all but the warm-up)."""
    timed = slice(1, None)
    seconds = sum(result["step_s"][timed])
    lengths_per_step = result.get("row_lengths") or []
    tokens = sum(result["real_tokens"][timed])
    rows = [length for step in lengths_per_step[timed] for length in step]
    counts = flop_counts(result.get("module_params", 0), rows, result.get("recomputed_share", 0.0))
    model_flops = counts["model"] / seconds
    return {
        "tokens_per_s": round(tokens / seconds, 1),
        "s_per_step": round(seconds / max(1, len(result["step_s"][timed])), 2),
        "model_tflops": round(model_flops / 1e12, 4),
        "hw_tflops": round(counts["actual"] / seconds / 1e12, 4),
        "mfu": round(model_flops / 1e12 / reference_tflops, 4),
        "first_step_s": result["step_s"][0] if result["step_s"] else None,
    }


# ------------------------------------------------------------------------------------------------ generation
def generation_prompts(tokenizer, count: int = 16) -> list[str]:
    from cognitive import tasks
    from cognitive.data.generators import generate_example
    from cognitive.train.sft_data import to_prompt_completion

    records = [generate_example(t.name, "basic", seed) for seed in range(count) for t in tasks.TASK_TYPES][:count]
    return [
        tokenizer.apply_chat_template(to_prompt_completion(r)["prompt"], tokenize=False, add_generation_prompt=True)
        for r in records
    ]


def one_generate(payload: str) -> None:
    """Greedy generation in this process: {batch: tokens/s} for the config's cache; the harness's model (bf16 on a
    CPU with native bf16)."""
    import torch

    from cognitive.model.base import inference_device_and_dtype, load_base, load_tokenizer
    from cognitive.model.kv_cache import cache_kwargs
    from cognitive.model.packed_linear import pack_linear_weights

    spec = json.loads(payload)
    tokenizer = load_tokenizer(MODEL)
    tokenizer.padding_side = "left"
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    dtype = spec["dtype"] or inference_device_and_dtype()[1]
    model = load_base(MODEL, dtype=getattr(torch, dtype)).eval()
    if spec.get("packed"):
        pack_linear_weights(model)
    autocast = torch.autocast("cpu", dtype=torch.bfloat16, enabled=dtype == "float32")  # as GRPO's fp32 base ran
    prompts = generation_prompts(tokenizer, max(spec["batches"]))
    result = {"dtype": dtype, "threads": torch.get_num_threads(), "tokens_per_s": {}}
    for batch in spec["batches"]:
        encoded = tokenizer(prompts[:batch], return_tensors="pt", padding=True)
        kwargs = dict(
            max_new_tokens=spec["new_tokens"],
            min_new_tokens=spec["new_tokens"],
            do_sample=False,
            pad_token_id=tokenizer.pad_token_id,
        )
        if spec["cache"] == "static":
            kwargs.update(cache_implementation="static", disable_compile=True)
        fresh_cache = cache_kwargs if spec["cache"] == "buffered" else lambda model: {}  # a new cache per call
        with torch.inference_mode(), autocast:  # warm-up: a few tokens
            model.generate(**encoded, **{**kwargs, "max_new_tokens": 4, "min_new_tokens": 4}, **fresh_cache(model))
        rates = []
        for _ in range(spec["repeats"]):
            start = time.perf_counter()
            with torch.inference_mode(), autocast:
                out = model.generate(**encoded, **kwargs, **fresh_cache(model))
            rates.append((out.shape[1] - encoded.input_ids.shape[1]) * batch / (time.perf_counter() - start))
        result["tokens_per_s"][str(batch)] = round(max(rates), 1)
        print(f"  batch {batch}: {result['tokens_per_s'][str(batch)]} tokens/s", file=sys.stderr, flush=True)
    print("RESULT " + json.dumps(result), flush=True)


def run_generate(name: str, batches, new_tokens: int, repeats: int, env: dict | None = None) -> dict | None:
    spec = GENERATE_CONFIGS[name]
    payload = {**spec, "batches": batches, "new_tokens": new_tokens, "repeats": repeats}
    result = in_own_process("one-generate", payload, spec["env"] if env is None else env, f"generate {name}")
    return None if result is None else {"config": name, **result}


def attention_cases(context: int, batch: int = 16) -> dict:
    """The `attention` section's cases at one context length: {name: a no-argument function}."""
    import math

    import torch

    kv_heads, groups, dim = 3, 3, 64
    buffers = [torch.randn(batch, kv_heads, context + 256, dim).to(torch.bfloat16) for _ in range(2)]
    views = [b[:, :, :context] for b in buffers]  # what the in-place cache hands attention
    copies = [v.contiguous() for v in views]
    query = torch.randn(batch, kv_heads, groups, dim).to(torch.bfloat16)  # transformers' pack_gqa for one token
    mask = torch.ones(batch, 1, 1, context, dtype=torch.bool)
    mask[0, ..., :50] = False  # a left-padded row
    probs = torch.softmax(torch.randn(batch, kv_heads, groups, context), -1).to(torch.bfloat16)

    def sdpa(k, v):
        return torch.nn.functional.scaled_dot_product_attention(query, k, v, attn_mask=mask)

    def eager(k, v):  # transformers' eager attention: bf16 scores, fp32 softmax
        s = torch.matmul(query, k.transpose(-1, -2)).float().mul_(1 / math.sqrt(dim)).masked_fill_(~mask, -math.inf)
        return torch.matmul(torch.softmax(s, -1).to(v.dtype), v)

    cases = {}
    for layout, (k, v) in (("cache view", views), ("contiguous", copies)):
        cases[f"sdpa, {layout}"] = lambda k=k, v=v: sdpa(k, v)
        cases[f"matmul+softmax+matmul, {layout}"] = lambda k=k, v=v: eager(k, v)
        cases[f"q @ k^T alone, {layout}"] = lambda k=k: torch.matmul(query, k.transpose(-1, -2))
        cases[f"p @ v alone, {layout}"] = lambda v=v: torch.matmul(probs, v)
    return {"kv_bytes": 2 * views[0].numel() * 2, "cases": cases}


def attention_rates(contexts=(400, 2000)) -> list[dict]:
    """One decoding step's attention in one layer (module docstring, `attention`): ms and GB/s of K and V."""
    import torch

    rows = []
    for context in contexts:
        setup = attention_cases(context)
        with torch.inference_mode():
            for name, fn in setup["cases"].items():
                fn()
                start, n = time.perf_counter(), 20
                for _ in range(n):
                    fn()
                seconds = (time.perf_counter() - start) / n
                row = {"context": context, "case": name, "ms": round(1e3 * seconds, 3)}
                row["kv_gb_per_s"] = round(setup["kv_bytes"] / seconds / 1e9, 1)
                rows.append(row)
                print(
                    f"attention, {context} tokens, {name}: {row['ms']} ms/layer, {row['kv_gb_per_s']} GB/s", flush=True
                )
    return rows


THREAD_POLICIES = {"passive": PASSIVE, "short_spin": SHORT_SPIN, "openmp_default": {}}


def thread_policies(busy: int, new_tokens: int, repeats: int) -> list[dict]:
    """The harness's generation under each of THREAD_POLICIES, first on this machine as it is, then with `busy`
    other processes spinning on the cores (a shared machine); tokens/s and the ratio to `passive` at the same load."""
    rows = []
    for others in (0, busy):
        competitors = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(others)]
        try:
            for policy, env in THREAD_POLICIES.items():
                result = run_generate("new+buffered_cache+packed", [1, 16], new_tokens, repeats, env=env)
                if result:
                    rows.append({"policy": policy, "busy": others, "tokens_per_s": result["tokens_per_s"]})
        finally:
            for process in competitors:
                process.kill()
                process.wait()
    for row in rows:
        base = next(r for r in rows if r["policy"] == "passive" and r["busy"] == row["busy"])["tokens_per_s"]
        row["over_passive"] = {batch: round(rate / base[batch], 2) for batch, rate in row["tokens_per_s"].items()}
        print(
            f"threads {row['policy']}, {row['busy']} busy processes: {row['tokens_per_s']} tokens/s, "
            f"{row['over_passive']} x passive",
            flush=True,
        )
    return rows


# ------------------------------------------------------------------------------------------------ report
def load_average() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def train_table(rows: list[dict]) -> str:
    lines = [
        "| recipe | config | shape | real tokens/s | s/step | model TFLOP/s | MFU | HW TFLOP/s | peak RSS GiB | "
        "first step s |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['recipe']} | {r['config']} | {r['shape']} | {r['tokens_per_s']:.0f} | {r['s_per_step']:.2f} | "
            f"{r['model_tflops']:.3f} | {100 * r['mfu']:.1f}% | {r['hw_tflops']:.3f} | {r['peak_rss_gib']:.2f} | "
            f"{r['first_step_s']:.1f} |"
        )
    return "\n".join(lines)


def plot(summary: dict, path: Path) -> None:
    from cognitive.plots import plot_cpu_speed

    plot_cpu_speed(summary, path)


def build_parser() -> ArgumentParser:
    parser = ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=False, default="runs/bench_cpu_speed", help="results JSON + PNG here")
    parser.add_argument("--sections", default="matmul,train,generate,attention,threads,losses")
    parser.add_argument("--configs", default=",".join(TRAIN_CONFIGS), help="training configurations to run")
    parser.add_argument("--shapes", default="4x512,4x1024")
    parser.add_argument("--recipes", default="lora,modules", help="the headline configs' recipes (LoRA-only, modules)")
    parser.add_argument("--headline", default=",".join(HEADLINE), help="configs run for every recipe and shape")
    parser.add_argument("--modules_shapes", default=None, help="shapes of the modules recipe (default: --shapes)")
    parser.add_argument("--loss_shape", default=LOSS_SHAPE)
    parser.add_argument("--steps", type=int, default=3, help="timed optimizer steps (after one warm-up)")
    parser.add_argument("--generate_configs", default=",".join(GENERATE_CONFIGS))
    parser.add_argument("--new_tokens", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--busy", type=int, default=2, help="threads section: other processes spinning (loaded)")
    parser.add_argument("--one_train", help=argparse.SUPPRESS)
    parser.add_argument("--one_generate", help=argparse.SUPPRESS)
    return parser


def main() -> None:
    parser = build_parser()
    args = parser.parse_args()
    if args.one_train:
        return one_train(args.one_train)
    if args.one_generate:
        return one_generate(args.one_generate)

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    sections = args.sections.split(",")
    summary = {"load_average_start": load_average(), "cpu": cpu_name(), "threads": os.cpu_count()}
    print(f"load average {summary['load_average_start']} on {summary['cpu']}", flush=True)
    summary["matmul"] = matmul_rates() if "matmul" in sections else []
    reference = reference_rate(summary["matmul"]) if summary["matmul"] else None
    summary["reference_tflops"] = reference

    if "train" in sections:
        configs, shapes = args.configs.split(","), args.shapes.split(",")
        recipes, headline = [r == "modules" for r in args.recipes.split(",")], args.headline.split(",")
        modules_shapes = (args.modules_shapes or args.shapes).split(",")
        plan = [
            (c, m, s) for s in shapes for c in configs if c in headline for m in recipes if not m or s in modules_shapes
        ]
        plan += [(c, False, shapes[-1]) for c in configs if c not in headline]
        summary["train"] = []
        for config, modules, shape in plan:
            result = run_train(config, modules, shape, args.steps)
            if result is None:
                continue
            if reference:
                result.update(train_figures(result, reference))
            summary["train"].append(result)
            print(json.dumps({k: v for k, v in result.items() if not isinstance(v, list)}), flush=True)
        if reference:
            print(train_table(summary["train"]), flush=True)
        summary["ratios"] = ratios(summary["train"], headline[0])
        for line in summary["ratios"]["lines"]:
            print(line, flush=True)

    if "generate" in sections:
        summary["generate"] = []
        for name in args.generate_configs.split(","):
            result = run_generate(name, [1, 16], args.new_tokens, args.repeats)
            if result:
                summary["generate"].append(result)
                print(f"generate {name}: {result['tokens_per_s']} tokens/s", flush=True)
        old = next((r["tokens_per_s"] for r in summary["generate"] if r["config"] == "old"), None)
        for r in summary["generate"] if old else []:
            ratio = {batch: round(rate / old[batch], 2) for batch, rate in r["tokens_per_s"].items()}
            r["over_old"] = ratio
            print(f"generate {r['config']} / old: {ratio} (target at batch 16: >= 2x)", flush=True)

    if "attention" in sections:
        summary["attention"] = attention_rates()

    if "threads" in sections:
        summary["thread_policies"] = thread_policies(args.busy, args.new_tokens, args.repeats)

    if "losses" in sections:
        summary["losses"] = losses_check(args.loss_shape)

    summary["load_average_end"] = load_average()
    (out / "results.json").write_text(json.dumps(summary, indent=1) + "\n")
    plot(summary, out / "cpu_speed.png")
    print(f"load average {summary['load_average_end']}; figures in {out}/results.json, plot {out}/cpu_speed.png")


def ratios(rows: list[dict], reference: str = "old") -> dict:
    """Each config / `reference` (old) real tokens/s per recipe and shape, and modules / LoRA-only time per token."""
    by = {(r["config"], r["recipe"], r["shape"]): r for r in rows}
    lines, out = [], {"speedup": {}, "modules_over_lora": {}}
    for (config, recipe, shape), r in sorted(by.items()):
        lora = by.get((config, "lora", shape))
        if recipe == "modules" and lora:
            ratio = r["s_per_step"] / lora["s_per_step"]
            tokens_ratio = lora["tokens_per_s"] / r["tokens_per_s"]
            out["modules_over_lora"][f"{config} {shape}"] = round(tokens_ratio, 3)
            lines.append(
                f"{config} {shape}: modules / LoRA-only time per token {tokens_ratio:.2f}x (s/step {ratio:.2f}x; "
                "target <= 1.15)"
            )
        old = by.get((reference, recipe, shape))
        if config != reference and old and "tokens_per_s" in r:
            speedup = r["tokens_per_s"] / old["tokens_per_s"]
            out["speedup"][f"{config} {recipe} {shape}"] = round(speedup, 2)
            lines.append(f"{config} / {reference}, {recipe} {shape}: {speedup:.2f}x real tokens/s")
    return {**out, "lines": lines}


def losses_check(shape: str = LOSS_SHAPE) -> dict:
    """The first LOSS_STEPS losses of the old and the new LoRA-only recipe on the same rows."""
    out = {}
    for key, name in (("old", "old+passive"), ("new", "new")):  # old+passive: old's numbers, its threads asleep
        result = run_train(name, False, shape, LOSS_STEPS - 1)
        out[key] = result["losses"] if result else None
    if out["old"] and out["new"]:
        worst = max(abs(a - b) / a for a, b in zip(out["old"], out["new"]))
        out["max_relative_difference"] = round(worst, 4)
        out["tolerance"] = LOSS_TOLERANCE
        verdict = "within" if worst <= LOSS_TOLERANCE else "OUTSIDE"
        print(
            f"losses, first {len(out['old'])} steps: largest |new - old| / old = {worst:.4f}, {verdict} the "
            f"tolerance {LOSS_TOLERANCE}",
            flush=True,
        )
    return out


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown"


if __name__ == "__main__":
    main()
