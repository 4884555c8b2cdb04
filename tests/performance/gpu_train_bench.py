"""Training throughput and peak memory: plain TRL against this project's recipe path, measured in one run.

    python tests/performance/gpu_train_bench.py                 # GPU: Qwen2.5-1.5B shape, 24 GiB cap
    python tests/performance/gpu_train_bench.py --shape tiny    # what CI-class CPUs can run (default there)

Every case trains a random-init model of a real shape (no hub needed) with LoRA r16 on all linear layers,
micro-batch 4, for `--steps` steps after `--warmup` steps, in its own subprocess (clean memory statistics),
and reports REAL tokens/s (padding excluded) and peak memory (`torch.cuda.max_memory_allocated`, or the
process RSS on the CPU):

  fixed length (every example `--seq` tokens):
    trl_qlora         plain TRL SFTTrainer, QLoRA nf4 (TRL defaults otherwise)
    ours              recipes/sft.py's path (cognitive.train.run) on the 1.5B recipe without its modules:
                      QLoRA + our attention choice
    ours_modules      + the cognitive modules (the recipe's block: every module on, default sizes)
    ours_zero2        ours + DeepSpeed ZeRO-2 with CPU optimizer offload (ds_configs/zero2_3090ti.json)
  variable lengths (uniform 128..seq, as real SFT data):
    trl_padded        plain TRL defaults: padded batches
    trl_packing       plain TRL packing=True
    ours_packing      packing with attention that keeps sequences apart without a dense mask:
                      flash_attention_2 if installed, else flex_attention (GPU), else SDPA (no modules)
  and (by default on a GPU; --search_longest / --no-search_longest) the longest sequence at micro-batch 1 that
  fits the memory cap, ours with modules, for 1.5B and 3B: doubling from --seq, then bisection to 256 tokens.

Ratios (ours / plain TRL) are printed at the end and saved with the figures to results/bench/ (+ a PNG).
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

from cognitive.errors import ArgumentParser  # noqa: E402
from cognitive.model.memory import shape_for  # noqa: E402

SHAPES = {  # random-init models of the documented bases' shapes (cognitive/model/memory.py), and a tiny one
    "qwen2.5-1.5b": {**shape_for("Qwen/Qwen2.5-1.5B-Instruct").config_kwargs(), "rope_theta": 1e6},
    "qwen2.5-3b": {**shape_for("Qwen/Qwen2.5-3B-Instruct").config_kwargs(), "rope_theta": 1e6},
    "tiny": dict(
        vocab_size=1024,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        tie_word_embeddings=True,
    ),
}
FIXED = ["trl_qlora", "ours", "ours_modules", "ours_zero2"]
VARIABLE = ["trl_padded", "trl_packing", "ours_packing"]
CAP_GIB = 24


# ------------------------------------------------------------------------------------------ one case (child)
def make_model_dir(shape: str, out: Path) -> Path:
    """A random-init Qwen2 model of `shape` with a tiny word-level tokenizer, saved once (bf16)."""
    import torch
    from tokenizers import Tokenizer, models
    from transformers import AutoModelForCausalLM, PreTrainedTokenizerFast, Qwen2Config

    if (out / "config.json").exists():
        return out
    cfg = SHAPES[shape]
    vocab = {f"t{i}": i for i in range(cfg["vocab_size"])}
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=Tokenizer(models.WordLevel(vocab, unk_token="t0")), pad_token="t0", eos_token="t1"
    )
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(Qwen2Config(**cfg, pad_token_id=0, eos_token_id=1), dtype=torch.bfloat16)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


def make_dataset(lengths: list[int], vocab: int, seed: int = 0):
    """Pre-tokenized prompt/completion rows: the first quarter of each sequence is prompt (no loss)."""
    import random

    from datasets import Dataset

    rng = random.Random(seed)
    rows = []
    for n in lengths:
        ids = [rng.randrange(2, vocab) for _ in range(n)]
        rows.append({"input_ids": ids, "completion_mask": [0] * (n // 4) + [1] * (n - n // 4)})
    return Dataset.from_list(rows)


class Meter:
    """Counts real tokens per collated batch and times the steps after warm-up."""

    def __init__(self, collator, warmup: int):
        self.collator, self.warmup, self.batches, self.times = collator, warmup, [], []

    def __call__(self, examples):
        batch = self.collator(examples)
        real = batch["attention_mask"].sum() if "attention_mask" in batch else batch["input_ids"].numel()
        self.batches.append(int(real))
        return batch

    def callback(self):
        import torch
        from transformers import TrainerCallback

        meter = self

        class _Timer(TrainerCallback):
            def on_step_begin(self, args, state, control, **kw):
                if torch.cuda.is_available():
                    torch.cuda.synchronize()
                meter.t0 = time.perf_counter()

            def on_step_end(self, args, state, control, **kw):
                if torch.cuda.is_available():
                    torch.cuda.synchronize()
                meter.times.append(time.perf_counter() - meter.t0)

        return _Timer()

    def result(self, accumulation: int) -> dict:
        timed = self.times[self.warmup :]
        tokens = sum(self.batches[self.warmup * accumulation : (self.warmup + len(timed)) * accumulation])
        return {"real_tokens_per_s": tokens / sum(timed), "step_s": sum(timed) / len(timed)}


def run_case(case: str, args) -> dict:
    import torch
    from peft import LoraConfig
    from trl import SFTConfig, SFTTrainer

    cuda = torch.cuda.is_available()
    if cuda:
        torch.cuda.set_per_process_memory_fraction(CAP_GIB * 2**30 / torch.cuda.get_device_properties(0).total_memory)
    model_dir = Path(args.model_dir)
    vocab = SHAPES[args.shape]["vocab_size"]
    micro, steps = (1 if args.longest else 4), args.warmup + args.steps
    n = micro * steps * 4
    import random

    rng = random.Random(0)
    lengths = (
        [args.seq] * n if case in FIXED or args.longest else [rng.randint(args.seq // 16, args.seq) for _ in range(n)]
    )
    dataset = make_dataset(lengths, vocab)
    common = dict(
        output_dir=str(Path(args.work) / case),
        max_steps=steps,
        per_device_train_batch_size=micro,
        max_length=args.seq,
        logging_steps=10**6,
        save_strategy="no",
        report_to="none",
        bf16=cuda,
        gradient_checkpointing=True,
        dataloader_num_workers=0,
        seed=0,
        shuffle_dataset=False,
    )

    if case.startswith("trl_"):  # plain TRL: its defaults, QLoRA the way TRL documents it
        from transformers import AutoModelForCausalLM, AutoTokenizer, BitsAndBytesConfig

        quant = BitsAndBytesConfig(
            load_in_4bit=True,
            bnb_4bit_quant_type="nf4",
            bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=torch.bfloat16 if cuda else torch.float32,
        )
        model = AutoModelForCausalLM.from_pretrained(
            model_dir,
            quantization_config=quant,
            dtype=torch.bfloat16 if cuda else torch.float32,
            device_map={"": 0 if cuda else "cpu"},
        )
        tokenizer = AutoTokenizer.from_pretrained(model_dir)
        config = SFTConfig(**common, packing=case == "trl_packing")
        trainer = SFTTrainer(
            model=model,
            args=config,
            train_dataset=dataset,
            processing_class=tokenizer,
            peft_config=LoraConfig(r=16, lora_alpha=32, target_modules="all-linear", task_type="CAUSAL_LM"),
        )
    else:  # this project's recipe path
        from cognitive.model.inject import config_from_dict
        from cognitive.train.args import parse_sft_args
        from cognitive.train.trainer import build_trainer, load_model_and_tokenizer

        argv = [
            "--config",
            str(ROOT / "recipes/configs/cognitive_1.5b.yaml"),
            "--model_name_or_path",
            str(model_dir),
            "--bf16",
            str(cuda).lower(),
            "--tf32",
            str(cuda).lower(),
            "--dtype",
            "bfloat16" if cuda else "float32",
            "--bnb_4bit_quant_storage",
            "bfloat16" if cuda else "float32",
            "--report_to",
            "none",
            "--eval_strategy",  # no eval dataset here
            "no",
        ]
        for key, value in common.items():
            argv += [f"--{key}", str(value)]
        if case == "ours_packing":
            argv += ["--packing", "true"]
        if case == "ours_zero2":
            argv += ["--ds", str(ROOT / "ds_configs/zero2_3090ti.json"), "--gradient_accumulation_steps", "1"]
        script_args, training_args, model_args = parse_sft_args(argv)
        training_args.gradient_accumulation_steps = 1
        # the recipe's block (every module on) only in ours_modules
        modules = config_from_dict(script_args.cognitive_modules) if case == "ours_modules" else None
        model, tokenizer = load_model_and_tokenizer(model_args, training_args, modules)
        trainer = build_trainer(model, tokenizer, training_args, model_args, dataset, None)

    meter = Meter(trainer.data_collator, args.warmup)
    trainer.data_collator = meter
    trainer.add_callback(meter.callback())
    trainer.train()
    result = {
        "case": case,
        "seq": args.seq,
        "micro_batch": micro,
        **meter.result(trainer.args.gradient_accumulation_steps),
    }
    if cuda:
        result["peak_gib"] = torch.cuda.max_memory_allocated() / 2**30
    else:
        import resource

        result["peak_gib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # RSS (KiB -> GiB)
    return result


# --------------------------------------------------------------------------------------------- driver (parent)
def spawn(case: str, args, seq: int, shape: str, model_dir: Path, longest: bool = False) -> dict | None:
    env = {
        **os.environ,
        "RANK": "0",
        "LOCAL_RANK": "0",
        "WORLD_SIZE": "1",
        "MASTER_ADDR": "127.0.0.1",
        "MASTER_PORT": str(29500 + os.getpid() % 1000),
    }
    cmd = [
        sys.executable,
        __file__,
        "--run_case",
        case,
        "--shape",
        shape,
        "--seq",
        str(seq),
        "--model_dir",
        str(model_dir),
        "--work",
        args.work,
        "--steps",
        str(args.steps),
        "--warmup",
        str(args.warmup),
    ]
    if longest:
        cmd.append("--longest")
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    if proc.returncode != 0 or not lines:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["?"]
        print(f"  {case:<14} seq {seq:>6}: failed ({tail[0][:160]})", flush=True)
        return None
    result = json.loads(lines[-1][len("RESULT ") :])
    print(
        f"  {case:<14} seq {seq:>6}: {result['real_tokens_per_s']:>10.0f} real tok/s   "
        f"peak {result['peak_gib']:.2f} GiB",
        flush=True,
    )
    return result


def longest_that_fits(args, shape: str, model_dir: Path, step: int = 256) -> int | None:
    """Longest sequence (a multiple of `step`) at which ours_modules trains at micro-batch 1 within the cap:
    double from --seq until a run fails, then bisect between the last fit and the first failure."""

    def fits(seq: int) -> bool:
        return spawn("ours_modules", args, seq, shape, model_dir, longest=True) is not None

    if not fits(args.seq):
        return None
    good, bad = args.seq, args.seq * 2
    while bad <= 131072 and fits(bad):
        good, bad = bad, bad * 2
    while bad - good > step:
        mid = (good + bad) // 2 // step * step
        good, bad = (mid, bad) if fits(mid) else (good, mid)
    return good


def build_parser() -> ArgumentParser:
    parser = ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", choices=sorted(SHAPES))
    parser.add_argument("--seq", type=int)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--cases", nargs="+", default=FIXED + VARIABLE)
    parser.add_argument(
        "--search_longest",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="search the longest sequence that fits (default: on a GPU)",
    )
    parser.add_argument("--longest", action="store_true", help=argparse.SUPPRESS)  # child: micro-batch 1 case
    parser.add_argument("--work", default=str(ROOT / "results" / "bench"))
    parser.add_argument("--model_dir")
    parser.add_argument("--run_case")
    return parser


def main() -> None:
    parser = build_parser()
    args = parser.parse_args()

    import torch

    cuda = torch.cuda.is_available()
    args.shape = args.shape or ("qwen2.5-1.5b" if cuda else "tiny")
    args.seq = args.seq or (2048 if args.shape != "tiny" else 256)
    if args.run_case:
        print("RESULT " + json.dumps(run_case(args.run_case, args)), flush=True)
        return

    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    model_dir = make_model_dir(args.shape, work / f"model-{args.shape}")
    print(
        f"{'GPU ' + torch.cuda.get_device_name(0) if cuda else 'CPU (GPU figures pending)'}; shape {args.shape}; "
        f"micro-batch 4; seq {args.seq}; cap {CAP_GIB} GiB",
        flush=True,
    )
    results = {case: spawn(case, args, args.seq, args.shape, model_dir) for case in args.cases}
    ratios = {}
    for ours, ref in (
        ("ours", "trl_qlora"),
        ("ours_modules", "trl_qlora"),
        ("ours_zero2", "trl_qlora"),
        ("ours_packing", "trl_packing"),
        ("ours_packing", "trl_padded"),
        ("trl_packing", "trl_padded"),
    ):
        if results.get(ours) and results.get(ref):
            ratios[f"{ours}/{ref}"] = results[ours]["real_tokens_per_s"] / results[ref]["real_tokens_per_s"]
            print(f"  {ours + ' / ' + ref:<28} {ratios[f'{ours}/{ref}']:.2f}x real tokens/s", flush=True)
    longest = {}
    if args.search_longest if args.search_longest is not None else cuda:
        for shape in (args.shape,) if args.shape == "tiny" else ("qwen2.5-1.5b", "qwen2.5-3b"):
            shape_dir = make_model_dir(shape, work / f"model-{shape}")
            longest[shape] = longest_that_fits(args, shape, shape_dir)
            print(f"  longest sequence at micro-batch 1 within {CAP_GIB} GiB, {shape}: {longest[shape]}", flush=True)
    summary = {
        "device": torch.cuda.get_device_name(0) if cuda else "cpu",
        "shape": args.shape,
        "results": results,
        "ratios": ratios,
        "longest": longest,
    }
    (work / "gpu_train_bench.json").write_text(json.dumps(summary, indent=1))
    from cognitive.plots import plot_bars

    plot_bars(
        {case: r["real_tokens_per_s"] for case, r in results.items() if r},
        work / "gpu_train_bench.png",
        ylabel="real tokens/s",
        title=f"{summary['device']}, {args.shape}, micro-batch 4",
    )
    print(f"saved {work / 'gpu_train_bench.json'} and .png")


if __name__ == "__main__":
    main()
