"""Peak GPU memory estimate for a LoRA / QLoRA SFT run, and the settings that fit a card.

    python recipes/preflight.py --config recipes/configs/cognitive_1.5b.yaml --gpu 3090ti  # of a recipe

The estimate adds up what `torch.cuda.max_memory_allocated()` sees during a training step:

    weights       linear layers of the decoder by quantization (nf4 + double quant: 4.125 bits + 8-bit absmax
                  per 64 weights; bf16: 16 bits), embeddings / lm_head / norms in the compute dtype
    trainable     LoRA (fp32 under QLoRA, PEFT's adapter autocast) + cognitive modules: weights and grads
    optimizer     AdamW: fp32 exp_avg + exp_avg_sq (+ an fp32 master copy under DeepSpeed); on the CPU when
                  the DeepSpeed config offloads the optimizer
    activations   with gradient checkpointing: each layer's input (b*s*h) kept, plus one layer's working set
                  recomputed in backward (attention projections + the MLP's 3 intermediate tensors); without
                  it: every layer's working set; checkpointing every n-th layer (every_n_layers): the two mixed
    logits        TRL's fused LM head: one [4096 tokens x 32768 vocab] tile and its gradient, never b*s*V
    deepspeed     ZeRO-2 gradient buckets (reduce + allgather bucket sizes of the DS config)

For GRPO (`Setup.generation_batch > 0`) a step has two phases that never overlap, and the peak is the larger one:
the training forward/backward over prompt + completion (its logits: TRL's GRPO materialises the completion's
[tokens x vocab] logits and their gradient, no fused head) and generation, whose KV cache holds every sequence of
the generation batch at full length (prompt + max_completion_length) plus one layer's prefill working set; and with
a KL penalty (beta > 0) a reference: a second LoRA adapter, or without PEFT a full copy of the weights.

On a CPU (`use_cpu: true`, `Setup.device == "cpu"`) it predicts the process's peak RSS instead: the same weights,
trainable and optimizer bytes (weights in their storage dtype: the CPU recipes keep a bf16 base under bf16 autocast)
plus the Python runtime, and activations scaled by a factor fitted to tests/performance/bench_train_memory.py
(CPU_ACTIVATION_FACTOR: mostly what glibc's allocator keeps mapped of freed blocks; live bytes are well under RSS).

It is a model, not a measurement: tests/performance/gpu_train_bench.py measures real peaks on a GPU,
tests/performance/bench_train_memory.py prints the CPU prediction beside the measured peak RSS, and
tests/unit/test_memory.py checks the parameter and optimizer bytes against a real model on the CPU.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path

from cognitive.errors import UserError
from cognitive.model.base import resolve_base

GIB = 2**30

# Usable memory of common cards (what torch can allocate is a little less than the label).
GPUS_GIB = {
    "3090ti": 24.0,
    "3090": 24.0,
    "4090": 24.0,
    "a10": 24.0,
    "l4": 24.0,
    "4080": 16.0,
    "t4": 16.0,
    "a100-40": 40.0,
    "a100-80": 80.0,
    "a100": 80.0,
    "h100": 80.0,
    "h200": 141.0,
}

# Shapes of the bases the project documents, so the estimator works offline (no hub access needed).
KNOWN_SHAPES = {
    "Qwen/Qwen2.5-1.5B-Instruct": dict(
        vocab=151936, hidden=1536, intermediate=8960, layers=28, heads=12, kv_heads=2, tied=True
    ),
    "Qwen/Qwen2.5-3B-Instruct": dict(
        vocab=151936, hidden=2048, intermediate=11008, layers=36, heads=16, kv_heads=2, tied=True
    ),
    "HuggingFaceTB/SmolLM2-1.7B-Instruct": dict(
        vocab=49152, hidden=2048, intermediate=8192, layers=24, heads=32, kv_heads=32, tied=True
    ),
    "meta-llama/Llama-3.2-1B-Instruct": dict(
        vocab=128256, hidden=2048, intermediate=8192, layers=16, heads=32, kv_heads=8, tied=True
    ),
    "meta-llama/Llama-3.2-3B-Instruct": dict(
        vocab=128256, hidden=3072, intermediate=8192, layers=28, heads=24, kv_heads=8, tied=True
    ),
    "embedded:smollm2-135m-instruct": dict(
        vocab=49152, hidden=576, intermediate=1536, layers=30, heads=9, kv_heads=3, tied=True
    ),
}

LOGIT_TILE = (4096, 32768)  # TRL's fused LM head: tokens x vocab per projection tile (its defaults, sized for GPUs)
# What cognitive.train.trainer sets on a CPU (use_cpu_lm_head_tiles): TRL's tiles folded with torch ops make several
# fp32 copies of a 4096 x 32768 tile, +4 GB peak for the 135M; cache-sized tiles are leaner and faster there.
CPU_LOGIT_TILE = (256, 4096)

# The CPU terms, measured with tests/performance/bench_train_memory.py (2 cores, glibc malloc, torch 2.13):
CPU_RUNTIME_BYTES = int(0.55 * GIB)  # RSS of the process once torch, transformers, TRL and the data are loaded
# A step's peak RSS above everything else, over the live activation bytes of the formula below, fitted to the 135M at
# 4 x 512 and 4 x 1024 (the estimate is within 25% of every measured peak there, tests/unit/test_memory.py). Without
# checkpointing it is what the formula leaves out (autocast keeps fp32 and bf16 copies, autograd saves extras);
# with it, it is mostly glibc's heap: freed blocks it keeps mapped (mallinfo2 counts <= 0.9 GB live at the 4.1 GiB
# untrimmed peak of the modules recipe at 4 x 1024), because checkpointing frees and reallocates every layer's working
# set in forward, recompute and backward. malloc_trim or a fixed mmap threshold return it, at 10-100% more step time.
# GRPO on a CPU (recipes/configs/grpo_135m_cpu.yaml from an SFT run, micro-batch 8, completions of 96 and 192 tokens:
# 6.2 GiB peak RSS over 2 steps, 7.0 over 3 and 8.4 over 30, experiments/grpo_cpu/bench_grpo.py): the same fit for its
# activations. Generation between the steps (a KV cache grown token by token) and TRL's per-sequence log-prob pass
# leave far more of the heap mapped than an SFT step does, and more as a run goes on; this factor is fitted, not
# explained (the estimate is within 5% of the 2-step peak at 96 and the 30-step peak at 192).
CPU_GRPO_ACTIVATION_FACTOR = 15.0
# Bytes per completion token x vocabulary entry of a GRPO step's logits: bf16 logits (2), their fp32 copy scaled by
# the temperature (4), log-softmax and entropy over the vocabulary (4 + 4), and the logits' gradient (2).
GRPO_LOGIT_BYTES = 16
# Keyed by (checkpointing, compute dtype, weights' storage dtype). The CPU recipes since issue 42 (bf16 base, bf16
# autocast, padding-free rows, no checkpointing): fitted to the LoRA-only and modules recipes at 4 x 1024 untrimmed
# (5.36 and 7.02 GiB; the estimate is within 15% of both: the modules' own activations are not in the formula).
# With checkpointing over a bf16 base, the fp32 base's factor (not measured at full rows: 1.57 GiB trimmed on CPU-mix
# rows at 4 x 1024, tests/performance/bench_cpu_speed.py).
CPU_ACTIVATION_FACTOR = {
    ("checkpointing", "bf16", "fp32"): 6.0,
    ("checkpointing", "fp32", "fp32"): 6.0,
    ("no_checkpointing", "bf16", "fp32"): 2.6,
    ("no_checkpointing", "fp32", "fp32"): 2.0,
    ("checkpointing", "bf16", "bf16"): 6.0,
    ("checkpointing", "fp32", "bf16"): 6.0,
    ("no_checkpointing", "bf16", "bf16"): 2.15,
    ("no_checkpointing", "fp32", "bf16"): 2.0,
}


@dataclass(frozen=True)
class Shape:
    vocab: int
    hidden: int
    intermediate: int
    layers: int
    heads: int
    kv_heads: int
    tied: bool = True

    @property
    def head_dim(self) -> int:
        return self.hidden // self.heads

    def linear_shapes(self) -> list[tuple[int, int]]:
        """(in, out) of the 7 linear layers of one decoder layer: q, k, v, o, gate, up, down."""
        h, i, kv = self.hidden, self.intermediate, self.kv_heads * self.head_dim
        return [(h, h), (h, kv), (h, kv), (h, h), (h, i), (h, i), (i, h)]

    @property
    def linear_params(self) -> int:
        return self.layers * sum(a * b for a, b in self.linear_shapes())

    @property
    def other_params(self) -> int:
        """Embeddings (+ untied lm_head) and norms: never quantized."""
        return self.vocab * self.hidden * (1 if self.tied else 2) + (2 * self.layers + 1) * self.hidden

    def lora_params(self, r: int) -> int:
        return self.layers * sum(r * (a + b) for a, b in self.linear_shapes())

    def config_kwargs(self) -> dict:
        """The transformers config keys of this shape (random-init models of real shapes for benchmarks)."""
        return dict(
            vocab_size=self.vocab,
            hidden_size=self.hidden,
            intermediate_size=self.intermediate,
            num_hidden_layers=self.layers,
            num_attention_heads=self.heads,
            num_key_value_heads=self.kv_heads,
            tie_word_embeddings=self.tied,
        )


def shape_from_config(config) -> Shape:
    text = config.get_text_config() if hasattr(config, "get_text_config") else config
    return Shape(
        vocab=text.vocab_size,
        hidden=text.hidden_size,
        intermediate=text.intermediate_size,
        layers=text.num_hidden_layers,
        heads=text.num_attention_heads,
        kv_heads=getattr(text, "num_key_value_heads", None) or text.num_attention_heads,
        tied=bool(getattr(text, "tie_word_embeddings", False)),
    )


def shape_for(base: str) -> Shape:
    if base in KNOWN_SHAPES:
        return Shape(**KNOWN_SHAPES[base])
    from transformers import AutoConfig

    return shape_from_config(AutoConfig.from_pretrained(resolve_base(base)))


def module_params(shape: Shape, cognitive_modules) -> int:
    """Parameters of the cognitive modules a recipe's `cognitive_modules` block adds to a base of this shape
    (0 when absent or all off; {} is the default block, every module on), counted on a Llama of that shape
    built on the meta device: no memory, no init. A block that does not fit the base raises its UserError
    here, as it would at injection."""
    if cognitive_modules is None:
        return 0
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from cognitive.model.inject import cognitive_parameter_counts, inject_cognitive_modules

    config = LlamaConfig(
        vocab_size=shape.vocab,
        hidden_size=shape.hidden,
        intermediate_size=shape.intermediate,
        num_hidden_layers=shape.layers,
        num_attention_heads=shape.heads,
        num_key_value_heads=shape.kv_heads,
        tie_word_embeddings=shape.tied,
    )
    with torch.device("meta"):
        model = LlamaForCausalLM(config)
    inject_cognitive_modules(model, cognitive_modules)
    return cognitive_parameter_counts(model)["total"]


@dataclass
class Setup:
    """The knobs of a run that decide its memory."""

    micro_batch: int = 4
    seq_len: int = 2048
    quant: str = "nf4"  # nf4 | bf16 | fp32
    lora_r: int = 16
    module_params: int = 0
    gradient_checkpointing: bool = True
    checkpoint_every: int = 1  # with checkpointing: every n-th decoder layer recomputed (transformers' every_n_layers)
    offload_optimizer: bool = False
    deepspeed_bucket_elems: int = 0  # reduce + allgather bucket sizes (elements), 0 without DeepSpeed
    compute: str | None = None  # bf16 | fp32 activations; None: fp32 for fp32 weights, else bf16
    device: str = "cuda"  # cuda: peak allocated GPU memory; cpu: the process's peak RSS
    # GRPO (0 for SFT): sequences generated at once on this device, and the completion part of seq_len
    generation_batch: int = 0
    completion_len: int = 0
    reference: str = "none"  # GRPO with beta > 0: "adapter" (a frozen LoRA copy) or "copy" (the whole base again)

    @property
    def compute_bytes(self) -> int:
        return {"bf16": 2, "fp32": 4}[self.compute or ("fp32" if self.quant == "fp32" else "bf16")]


@dataclass
class Estimate:
    weights: int
    trainable: int
    optimizer: int
    activations: int
    logits: int
    deepspeed: int
    runtime: int = 0  # CPU only: the Python process before any tensor of the run
    generation: int = 0  # GRPO only: the generation phase (KV cache + prefill), instead of activations + logits
    reference: int = 0  # GRPO with beta > 0: the reference model's extra weights

    @property
    def total(self) -> int:
        static = self.weights + self.trainable + self.optimizer + self.deepspeed + self.runtime + self.reference
        return static + max(self.activations + self.logits, self.generation)

    def table(self) -> str:
        optional = ("runtime", "generation", "reference")
        rows = [(k, v) for k, v in asdict(self).items() if v or k not in optional] + [("total (peak)", self.total)]
        lines = [f"  {name:<14}{value / GIB:8.2f} GiB" for name, value in rows]
        if self.generation:
            lines.append("  (the peak counts the larger of activations + logits and generation: they never overlap)")
        return "\n".join(lines)


def checkpointed_layers(layers: int, every_n_layers: int = 1) -> int:
    """How many of `layers` decoder layers transformers' every_n_layers checkpoints (layers 0, n, 2n, ...)."""
    return -(-layers // max(1, every_n_layers))


def estimate(shape: Shape, setup: Setup) -> Estimate:
    compute = setup.compute_bytes  # bytes per activation
    storage = 4 if setup.quant == "fp32" else 2  # bytes per unquantized weight (and of the residual stream)
    bits = {"nf4": 4 + 8 / 64 + 32 / (64 * 256), "bf16": 16, "fp32": 32}[setup.quant]
    weights = int(shape.linear_params * bits / 8) + shape.other_params * storage

    trainable_params = shape.lora_params(setup.lora_r) + setup.module_params
    # fp32 adapters: QLoRA's, and PEFT's over a bf16 base (autocast_adapter_dtype; the CPU recipes' bf16 base)
    trainable_bytes = 4 if setup.quant in ("nf4", "fp32", "bf16") else 2
    trainable = 2 * trainable_params * trainable_bytes  # weights + grads
    # AdamW states (2 x fp32), plus DeepSpeed's fp32 master copy; on the host when offloaded.
    optimizer = 0 if setup.offload_optimizer else trainable_params * 4 * (3 if setup.deepspeed_bucket_elems else 2)

    tokens = setup.micro_batch * setup.seq_len
    h, i = shape.hidden, shape.intermediate
    kv = shape.kv_heads * shape.head_dim
    # One layer's working set: q, k, v, attention out, o-proj in (h + 2kv + 2h) + MLP gate, up, act, product (4i)
    # + the two norm outputs and residuals (4h).
    layer_working = tokens * (3 * h + 2 * kv + 4 * i + 4 * h) * compute
    # Checkpointed layers keep only their input, and backward recomputes one at a time; the others keep their whole
    # working set. every_n_layers = n checkpoints layers 0, n, 2n, ...: the last layer's set is freed by the time the
    # highest checkpointed layer is recomputed, so the recompute adds to the peak only when every layer is checkpointed.
    recomputed = checkpointed_layers(shape.layers, setup.checkpoint_every) if setup.gradient_checkpointing else 0
    checkpointed_part = recomputed * tokens * h * storage + (layer_working if recomputed == shape.layers else 0)
    kept_part = (shape.layers - recomputed) * layer_working
    activations = checkpointed_part + kept_part
    tile_tokens, tile_vocab = CPU_LOGIT_TILE if setup.device == "cpu" else LOGIT_TILE
    tile = min(tokens, tile_tokens) * min(shape.vocab, tile_vocab)
    logits = 2 * tile * compute + tokens * h * storage  # a tile and its gradient, + the gathered hidden states
    deepspeed = setup.deepspeed_bucket_elems * compute * 2
    generation = reference = 0
    if setup.generation_batch:
        # GRPO scores the completion with full logits (+ their gradient), not TRL's fused head
        logits = setup.micro_batch * setup.completion_len * shape.vocab * GRPO_LOGIT_BYTES + tokens * h * storage
        prompt_tokens = setup.generation_batch * (setup.seq_len - setup.completion_len)
        kv_cache = setup.generation_batch * setup.seq_len * shape.layers * 2 * kv * compute
        prefill = prompt_tokens * (3 * h + 2 * kv + 4 * i + 4 * h) * compute
        generation = kv_cache + prefill + 2 * setup.generation_batch * shape.vocab * 4  # + fp32 logits to sample
        reference = {"none": 0, "adapter": trainable // 2, "copy": weights}[setup.reference]  # LoRA weights, no grads
    if setup.device != "cpu":
        return Estimate(weights, trainable, optimizer, activations, logits, deepspeed, 0, generation, reference)
    precision = ("bf16" if compute == 2 else "fp32", "bf16" if storage == 2 else "fp32")
    if setup.generation_batch:
        activations = int(activations * CPU_GRPO_ACTIVATION_FACTOR)
    else:  # each part with its own fit: a partly checkpointed run is the two kinds of layer side by side
        activations = int(
            checkpointed_part * CPU_ACTIVATION_FACTOR[("checkpointing", *precision)]
            + kept_part * CPU_ACTIVATION_FACTOR[("no_checkpointing", *precision)]
        )
    return Estimate(
        weights, trainable, optimizer, activations, logits, deepspeed, CPU_RUNTIME_BYTES, generation, reference
    )


def recommend(shape: Shape, setup: Setup, card_bytes: int, effective_batch: int) -> dict:
    """The largest micro-batch (<= the setup's) that fits at its sequence length, with the accumulation that keeps
    the effective batch; if none fits, the longest power-of-two sequence length that fits at micro-batch 1."""
    for mb in (8, 4, 2, 1):
        if mb <= setup.micro_batch and estimate(shape, _replace(setup, micro_batch=mb)).total <= card_bytes:
            return {
                "per_device_train_batch_size": mb,
                "gradient_accumulation_steps": math.ceil(effective_batch / mb),
                "max_length": setup.seq_len,
                "fits": True,
            }
    seq = setup.seq_len
    while seq > 128 and estimate(shape, _replace(setup, micro_batch=1, seq_len=seq)).total > card_bytes:
        seq //= 2
    fits = estimate(shape, _replace(setup, micro_batch=1, seq_len=seq)).total <= card_bytes
    return {
        "per_device_train_batch_size": 1,
        "gradient_accumulation_steps": effective_batch,
        "max_length": seq,
        "fits": fits,
    }


def _replace(setup: Setup, **changes) -> Setup:
    return Setup(**{**asdict(setup), **changes})


def setup_from_args(training_args, model_args, module_params: int = 0, prompt_len: int | None = None) -> Setup:
    """The memory-relevant settings of a parsed recipe (SFTConfig or GRPOConfig + ModelConfig); for GRPO the
    sequence is `prompt_len` (the recipe's max_prompt_tokens) + max_completion_length."""
    ds = _deepspeed_config(training_args.deepspeed)
    zero = ds.get("zero_optimization", {})
    offload = zero.get("offload_optimizer", {}).get("device", "none") not in ("none", None)
    buckets = 0
    if ds:
        buckets = sum(
            int(v) for k, v in zero.items() if k in ("reduce_bucket_size", "allgather_bucket_size") and v != "auto"
        )
    half_weights = model_args.dtype in ("bfloat16", "float16")
    half_compute = bool(training_args.bf16 or training_args.fp16) or half_weights
    if model_args.load_in_4bit:
        quant = "nf4"
    elif model_args.dtype == "float32":
        quant = "fp32"  # fp32 weights, bf16 autocast when bf16 is on (the CPU recipes)
    else:
        quant = "bf16" if half_compute else "fp32"
    sequences = {"seq_len": getattr(training_args, "max_length", None) or 1024}  # SFT: one length
    if hasattr(training_args, "num_generations"):  # a GRPOConfig: prompt + completion, and the generation phase
        completion = training_args.max_completion_length or 256
        sequences = dict(
            seq_len=(prompt_len or 512) + completion,
            completion_len=completion,
            generation_batch=max(1, training_args.generation_batch_size // max(1, training_args.world_size)),
            reference="none" if not training_args.beta else ("adapter" if model_args.use_peft else "copy"),
        )
    return Setup(
        micro_batch=training_args.per_device_train_batch_size,
        quant=quant,
        lora_r=model_args.lora_r if model_args.use_peft else 0,
        module_params=module_params,
        gradient_checkpointing=bool(training_args.gradient_checkpointing),
        checkpoint_every=int((training_args.gradient_checkpointing_kwargs or {}).get("every_n_layers", 1)),
        offload_optimizer=offload,
        deepspeed_bucket_elems=buckets,
        compute="bf16" if half_compute else "fp32",
        device="cpu" if getattr(training_args, "use_cpu", False) else "cuda",
        **sequences,
    )


def _deepspeed_config(ds) -> dict:
    if not ds:
        return {}
    if isinstance(ds, dict):
        return ds
    return json.loads(Path(ds).read_text())


def card_bytes(gpu: str) -> int:
    key = gpu.lower().replace("rtx", "").replace(" ", "").replace("_", "")
    if key not in GPUS_GIB:
        raise UserError(f"unknown GPU '{gpu}'; known: {', '.join(GPUS_GIB)} (or pass --gib)")
    return int(GPUS_GIB[key] * GIB)
