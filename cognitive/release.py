"""Turn a finished run into a release: the LoRA adapter merged into a full-precision reload of the base.

    merge_run("runs/demo", "release/demo")

Never merges into 4-bit weights: the base is reloaded in float32 whatever the run trained on. The release
is written to a temporary directory, reloaded from disk and checked against the adapter-applied model on a
fixed batch (max abs logit difference, fp32), and only then renamed into place.
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import yaml

from cognitive.base import load_base, load_tokenizer
from cognitive.errors import UserError

MERGE_TOLERANCE = 1e-3  # max abs logit difference, fp32

CHECK_PROMPTS = [
    [{"role": "user", "content": "Sarah has 3 boxes of 12 apples and gives away 8. How many are left?"}],
    [
        {"role": "system", "content": "You are a cognitive AI system capable of reasoning and planning."},
        {"role": "user", "content": "Plan: bake bread (40 min, oven), make salad (10 min). One oven. Total time?"},
    ],
]


class MergeCheckError(Exception):
    """The merged model does not reproduce the adapter model's logits."""


@dataclass
class RunInfo:
    run_dir: Path
    base: str  # the base name as the run was configured (hub id, local dir or embedded:...)
    config: dict


def read_run(run_dir: str | Path) -> RunInfo:
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise UserError(f"run dir {run_dir} does not exist")
    if not (run_dir / "adapter_config.json").exists():
        raise UserError(f"{run_dir} has no adapter (adapter_config.json); is it a finished training run?")
    config_file = run_dir / "run_config.yaml"
    if not config_file.exists():
        raise UserError(f"{config_file} is missing; cannot tell which base the run was trained on")
    config = yaml.safe_load(config_file.read_text())
    return RunInfo(run_dir, config["model_name_or_path"], config)


def check_batch(tokenizer):
    """A fixed, padded batch of chat prompts (left padding, as in generation)."""
    texts = [tokenizer.apply_chat_template(m, tokenize=False, add_generation_prompt=True) for m in CHECK_PROMPTS]
    tokenizer.padding_side = "left"
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False)


def merge_run(run_dir: str | Path, out: str | Path, overwrite: bool = False, tolerance: float = MERGE_TOLERANCE) -> dict:
    """Merge the run's LoRA adapter into its base, save to `out`, verify; returns a report dict."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    run = read_run(run_dir)
    out = Path(out)
    if out.exists() and not overwrite:
        raise UserError(f"output dir {out} already exists; pass --overwrite to replace it")
    tokenizer = load_tokenizer(run.base)
    base = load_base(run.base, dtype=torch.float32)
    try:
        adapted = PeftModel.from_pretrained(base, str(run.run_dir))
    except (RuntimeError, ValueError, KeyError) as e:
        raise UserError(f"adapter in {run.run_dir} does not fit base '{run.base}': {str(e).splitlines()[0]}") from None
    adapted.eval()
    batch = check_batch(tokenizer)
    with torch.no_grad():
        reference_logits = adapted(**batch).logits

    merged = adapted.merge_and_unload()
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=out.name + ".", suffix=".tmp", dir=out.parent))
    try:
        merged.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        reloaded = AutoModelForCausalLM.from_pretrained(tmp, dtype=torch.float32).eval()
        with torch.no_grad():
            logits = reloaded(**batch).logits
        keep = batch["attention_mask"].bool()
        diff = (logits[keep] - reference_logits[keep]).abs().max().item()
        print(f"merge check: max |logit(merged) - logit(base+adapter)| = {diff:.2e} (tolerance {tolerance:g}, fp32)")
        if diff > tolerance:
            raise MergeCheckError(f"merged logits differ from the adapter model's by {diff:.2e} > {tolerance:g}")
        tmp.chmod(0o755)
        if out.exists():
            shutil.rmtree(out)
        tmp.rename(out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return {"run": str(run.run_dir), "base": run.base, "out": str(out), "max_abs_logit_diff": diff, "tolerance": tolerance}
