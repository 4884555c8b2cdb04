"""Forward+backward time of LoRA + cognitive modules vs LoRA only: same base, same batch, one run.

    python tests/performance/bench_modules.py                  # embedded SmolLM2-135M, CPU, batch 4 x 256
    python tests/performance/bench_modules.py --modules '{"reasoning_heads": {"reasoning_dim": 64}}'
    python tests/performance/bench_modules.py --shape qwen2.5-1.5b --device cuda --bf16 \
        --batch 4 --seq 2048 --gradient_checkpointing           # the GPU check (random init, real shape)

The base is the embedded SmolLM2-135M-Instruct when cognitive.model.base can provide it, else a random-init model of
the same shape (vocab 49152, hidden 576, 30 layers, 9 heads, 3 KV heads, tied embeddings). Both variants get
LoRA r16 on all base linears; the modules variant also gets the cognitive modules (default config: the guide's
block) with their gates opened, as after some training. Rounds alternate the order of the two variants; the
figures are medians and minimums over the timed rounds, of wall time and of this process's CPU time (steadier
on a shared machine). Target: ratio <= 1.15 on the 135M model.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from peft import LoraConfig, get_peft_model
from transformers import LlamaConfig, LlamaForCausalLM, Qwen2Config, Qwen2ForCausalLM

from cognitive.errors import ArgumentParser
from cognitive.model.inject import (
    cognitive_parameter_counts,
    format_parameter_counts,
    inject_cognitive_modules,
    lora_target_modules,
    mark_cognitive_trainable,
)
from cognitive.model.memory import shape_for
from cognitive.model.modules import cognitive_blocks

SHAPES = {  # the documented bases' shapes (cognitive/model/memory.py), random init when the embedded model is missing
    "smollm2-135m": (
        LlamaConfig,
        LlamaForCausalLM,
        {**shape_for("embedded:smollm2-135m-instruct").config_kwargs(), "rope_theta": 100000.0},
    ),
    "qwen2.5-1.5b": (
        Qwen2Config,
        Qwen2ForCausalLM,
        {**shape_for("Qwen/Qwen2.5-1.5B-Instruct").config_kwargs(), "rope_theta": 1e6},
    ),
}


def load(shape: str, device: str, dtype: torch.dtype):
    """(model, description): the embedded SmolLM2 if available (for that shape), else random init."""
    if shape == "smollm2-135m":
        try:
            from cognitive.model.base import load_base

            model = load_base("embedded:smollm2-135m-instruct", dtype=dtype, attn_implementation="sdpa")
            return model.to(device), "embedded SmolLM2-135M-Instruct"
        except Exception as e:  # not installed / not converted: same shape, random weights
            print(f"(embedded model unavailable: {str(e).splitlines()[0][:120]}; using random init)")
    config_cls, model_cls, kwargs = SHAPES[shape]
    config = config_cls(**kwargs)
    config._attn_implementation = "sdpa"
    torch.manual_seed(0)
    with torch.device(device):
        model = model_cls(config).to(dtype)
    return model, f"random-init {shape} shape"


def build(args, with_modules: bool):
    dtype = torch.bfloat16 if args.bf16 else torch.float32
    model, what = load(args.shape, args.device, dtype)
    if with_modules:
        inject_cognitive_modules(model, json.loads(args.modules))
        with torch.no_grad():  # as after training: gates open, so nothing is skipped or trivially zero
            for block in cognitive_blocks(model).values():
                for name, p in block.named_parameters():
                    if name.endswith("gate"):
                        p.fill_(0.5)
    if args.gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        model.enable_input_require_grads()
    lora = LoraConfig(r=16, lora_alpha=32, lora_dropout=0.05, target_modules=lora_target_modules(model))
    model = get_peft_model(model, lora)
    mark_cognitive_trainable(model)
    model.train()
    return model, what


def step(model, batch, args) -> tuple[float, float]:
    """One forward+backward: (wall seconds, CPU seconds of this process). On a shared CPU machine the CPU time
    is the steadier measure of work (other processes stretch wall time, not our CPU time), most of all with
    --threads 1."""
    model.zero_grad(set_to_none=True)
    if args.device == "cuda":
        torch.cuda.synchronize()
    start, start_cpu = time.perf_counter(), time.process_time()
    with torch.autocast(args.device, dtype=torch.bfloat16, enabled=args.bf16):
        loss = model(**batch).loss
    loss.backward()
    if args.device == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start, time.process_time() - start_cpu


def build_parser() -> ArgumentParser:
    parser = ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shape", choices=sorted(SHAPES), default="smollm2-135m")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--seq", type=int, default=256)
    parser.add_argument("--rounds", type=int, default=4, help="timed rounds (after one warm-up round)")
    parser.add_argument("--modules", default="{}", help="cognitive_modules block as JSON (default: guide's)")
    parser.add_argument("--bf16", action="store_true", help="bf16 weights + bf16 autocast")
    parser.add_argument("--gradient_checkpointing", action="store_true")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    return parser


def main() -> None:
    parser = build_parser()
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    lora_only, what = build(args, with_modules=False)
    with_modules, _ = build(args, with_modules=True)
    checkpointing = "on" if args.gradient_checkpointing else "off"
    print(
        f"base: {what}; batch {args.batch} x {args.seq} tokens on {args.device}, "
        f"{'bf16' if args.bf16 else 'fp32'}, gradient checkpointing {checkpointing}, "
        f"torch threads {torch.get_num_threads()}"
    )
    print(f"modules config: {args.modules}")
    print(format_parameter_counts(cognitive_parameter_counts(with_modules)))

    g = torch.Generator().manual_seed(0)
    vocab = lora_only.get_base_model().config.vocab_size
    ids = torch.randint(0, vocab, (args.batch, args.seq), generator=g).to(args.device)
    batch = {"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": ids}

    wall = {"lora": [], "lora+modules": []}
    cpu = {"lora": [], "lora+modules": []}
    variants = [("lora", lora_only), ("lora+modules", with_modules)]
    for round_ in range(args.rounds + 1):
        for name, model in variants if round_ % 2 == 0 else variants[::-1]:
            seconds, cpu_seconds = step(model, batch, args)
            if round_ > 0:  # round 0 warms up
                wall[name].append(seconds)
                cpu[name].append(cpu_seconds)
        if round_ > 0:
            print(
                f"round {round_}: wall lora {wall['lora'][-1]:.3f} s, lora+modules {wall['lora+modules'][-1]:.3f} s"
                f" | cpu lora {cpu['lora'][-1]:.3f} s, lora+modules {cpu['lora+modules'][-1]:.3f} s"
            )
    tokens = args.batch * args.seq
    for label, times in (("wall", wall), ("cpu", cpu)):
        for stat in (statistics.median, min):  # min: the round least disturbed by other processes
            lora_s, modules_s = stat(times["lora"]), stat(times["lora+modules"])
            print(
                f"{label:>4} {stat.__name__:>6}: LoRA only {lora_s:.3f} s ({tokens / lora_s:,.0f} tokens/s), "
                f"LoRA + modules {modules_s:.3f} s ({tokens / modules_s:,.0f} tokens/s); "
                f"ratio {modules_s / lora_s:.3f} (target <= 1.15)"
            )
    if args.device == "cuda":
        print(f"peak CUDA memory allocated: {torch.cuda.max_memory_allocated() / 2**30:.2f} GiB (both variants)")


if __name__ == "__main__":
    main()
