"""Turn a finished run into a release: LoRA merged into a full-precision reload of the base, cognitive modules
attached, a model card, optionally pushed to the Hugging Face Hub.

    merge_run("runs/demo", "release/demo")

Never merges into 4-bit weights: the base is reloaded in float32 whatever the run trained on. The release is
written to a temporary directory, reloaded from disk the way users load it and checked against the run's
adapter-applied model (base + cognitive modules + LoRA) on a fixed batch (max abs logit difference, fp32); only
then is it renamed into place. A failed check leaves nothing behind.

What a release holds:
    model*.safetensors (+ index when sharded), config.json, generation_config.json, tokenizer files
    README.md                      the model card (cognitive/release/model_card.py)
    with cognitive modules also:   configuration_cognitive.py, modeling_cognitive.py, cognitive_modules.py and
                                   config.json with model_type "cognitive_<base>" + auto_map
                                   (cognitive/model/remote_code.py)
Without modules (or with every module off) it is a plain model of the base architecture: no remote code.

Safety: weights are read and written as safetensors only. The run's adapter must be adapter_model.safetensors
(a pickled adapter_model.bin is refused, never unpickled); the base is loaded with use_safetensors=True;
training_args.bin and checkpoints in the run dir are never read.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from cognitive.atomic import MARKER, check_replaceable, make_shareable, output_dir
from cognitive.errors import UserError
from cognitive.model.base import load_base
from cognitive.model.remote_code import trust_release_code
from cognitive.train.run import FinishedRun, check_adapter_base, load_run_tokenizer, read_adapter_run

MERGE_TOLERANCE = (
    1e-3  # max abs logit difference, fp32; measured 3e-7 (tiny test models), 7e-5 (SmolLM2-135M + modules)
)
MAX_SHARD_SIZE = "2GB"  # safetensors shards: a 1.5B base in fp32 is ~6 GB, written as 4 shards

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
class MergeReport:
    run: str
    base: str
    out: str
    max_abs_logit_diff: float
    tolerance: float
    cognitive_modules: dict | None  # the enabled modules' config, None for a plain release
    remote_code: bool
    parameters: dict = field(default_factory=dict)  # base, lora, cognitive modules (per module + total)
    eval_results: str | None = None  # the file the model card's eval table comes from
    pushed_to: str | None = None


# ------------------------------------------------------------------------------------------------ the run
def check_batch(tokenizer):
    """A fixed, padded batch of chat prompts (left padding, as in generation)."""
    texts = [tokenizer.apply_chat_template(m, tokenize=False, add_generation_prompt=True) for m in CHECK_PROMPTS]
    tokenizer.padding_side = "left"
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False)


def load_adapted(run: FinishedRun):
    """The run as it was trained and evaluated: fp32 base + cognitive modules (if any) + LoRA adapter (PeftModel).
    Returns (model, the modules' config or None)."""
    import torch
    from peft import PeftModel

    check_adapter_base(run)
    base = load_base(run.base, dtype=torch.float32, use_safetensors=True)
    modules = None
    if run.has_modules:
        from cognitive.model.inject import load_cognitive_adapter

        modules = load_cognitive_adapter(base, run.run_dir)  # UserError if saved for another base or config
    try:
        adapted = PeftModel.from_pretrained(base, str(run.run_dir))
    except (RuntimeError, ValueError, KeyError) as e:
        raise UserError(f"adapter in {run.run_dir} does not fit base '{run.base}': {str(e).splitlines()[0]}") from None
    return adapted.eval(), (modules if modules is not None and modules.any_enabled else None)


# ------------------------------------------------------------------------------------------------ saving
def save_release(merged, tokenizer, out: Path, modules) -> None:
    """Weights (safetensors shards), config, tokenizer; with modules, the remote code and its config.json."""
    merged.save_pretrained(out, max_shard_size=MAX_SHARD_SIZE)
    tokenizer.save_pretrained(out)
    if modules is None:
        return
    from cognitive.model.remote_code import remote_code_config, write_remote_code

    base_config = json.loads((out / "config.json").read_text())
    auto_map = write_remote_code(out, base_config["model_type"])
    config = remote_code_config(base_config, modules.to_dict(), auto_map)
    (out / "config.json").write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")


def load_release(release_dir: str | Path, trust_remote_code: bool = False, **kwargs):
    """`AutoModelForCausalLM.from_pretrained` on a release (safetensors only). Its shipped code runs only with
    trust_remote_code=True, which the caller decides (cognitive.model.remote_code.trust_release_code)."""
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(
        release_dir, trust_remote_code=trust_remote_code, use_safetensors=True, **kwargs
    )


def max_logit_diff(model, reference_logits, batch) -> float:
    """Max |logit - reference| over the real (non-padding) positions of the check batch."""
    import torch

    with torch.no_grad():
        logits = model(**batch).logits
    keep = batch["attention_mask"].bool()
    return (logits[keep] - reference_logits[keep]).abs().max().item()


def parameter_counts(merged, lora: int) -> dict:
    """Parameters of the base (without the modules), the LoRA adapter, each cognitive module and their total."""
    from cognitive.model.inject import cognitive_parameter_counts
    from cognitive.model.modules import MODULE_NAMES

    counts = cognitive_parameter_counts(merged)
    return {
        "base": counts["base"],
        "lora": lora,
        "cognitive_modules": {name: counts[name] for name in (*MODULE_NAMES, "total")},
    }


# ------------------------------------------------------------------------------------------------ merge
def merge_run(
    run_dir: str | Path,
    out: str | Path,
    overwrite: bool = False,
    tolerance: float = MERGE_TOLERANCE,
    eval_results: str | Path | None = None,
) -> MergeReport:
    """Merge the run into a release at `out`, verify it, write its model card; returns what was done."""
    import torch

    from cognitive.release.model_card import find_eval_results, load_eval_scores, paired_section, write_model_card

    out = Path(out)
    exists = UserError(f"output dir {out} already exists; pass --overwrite to replace it")
    check_replaceable(out, "release", overwrite=overwrite, exists_error=exists)  # before anything is read or loaded
    run = read_adapter_run(run_dir)
    eval_file = Path(eval_results) if eval_results else find_eval_results(run.run_dir)
    if eval_file is not None:
        if not eval_file.is_file():
            raise UserError(f"--eval_results {eval_file} does not exist")
        load_eval_scores(eval_file)  # a file the model card cannot read fails now, not after the merge
        paired_section(eval_file, run.run_dir, out)
    adapted, modules = load_adapted(run)
    tokenizer = load_run_tokenizer(run)  # shipped with the release
    batch = check_batch(load_run_tokenizer(run))  # a copy: check_batch sets left padding
    with torch.no_grad():
        reference_logits = adapted(**batch).logits

    lora_params = sum(p.numel() for name, p in adapted.named_parameters() if "lora_" in name)
    merged = adapted.merge_and_unload()  # LoRA folded into the fp32 base weights; the modules stay on their layers
    # staged in <out>.partial: checked there, then swapped in whole (a previous release stays until then)
    with output_dir(out, kind="release", overwrite=overwrite, exists_error=exists) as tmp:
        save_release(merged, tokenizer, tmp, modules)
        trust = trust_release_code(tmp, opted_in=False)  # the code just written: ours, or this raises
        reloaded = load_release(tmp, trust_remote_code=trust, dtype=torch.float32).eval()
        diff = max_logit_diff(reloaded, reference_logits, batch)
        what = "base+modules+adapter" if modules is not None else "base+adapter"
        print(f"merge check: max |logit(release) - logit({what})| = {diff:.2e} (tolerance {tolerance:g}, fp32)")
        if diff > tolerance:
            raise MergeCheckError(f"merged logits differ from the adapter model's by {diff:.2e} > {tolerance:g}")
        report = MergeReport(
            run=str(run.run_dir),
            base=run.base,
            out=str(out),
            max_abs_logit_diff=diff,
            tolerance=tolerance,
            cognitive_modules=modules.to_dict() if modules is not None else None,
            remote_code=modules is not None,
            parameters=parameter_counts(merged, lora_params),
            eval_results=str(eval_file) if eval_file else None,
        )
        write_model_card(tmp, run, report)
        make_shareable(tmp)
    return report


# ------------------------------------------------------------------------------------------------ the Hub
def check_can_push(repo_id: str) -> None:
    """Fail before merging when a push cannot work: offline mode, no token, a malformed repo id (one line)."""
    from huggingface_hub import get_token, is_offline_mode
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    try:
        validate_repo_id(repo_id)
    except HFValidationError as e:
        raise UserError(f"--push_to_hub {repo_id!r}: not a valid repo id ({str(e).splitlines()[0]})") from None
    if is_offline_mode() or os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on"):
        raise UserError(
            "--push_to_hub: HF_HUB_OFFLINE is set, so nothing can be uploaded; unset it or leave out --push_to_hub"
        )
    if get_token() is None:
        raise UserError("--push_to_hub: not logged in to the Hugging Face Hub; run `hf auth login` or set HF_TOKEN")


def push_release(release_dir: str | Path, repo_id: str, private: bool = True) -> str:
    """Create the Hub repo (if needed) and upload the release folder; returns the repo URL."""
    from huggingface_hub import HfApi

    api = HfApi()
    try:
        url = api.create_repo(repo_id, private=private, exist_ok=True)
        api.upload_folder(
            repo_id=repo_id,
            folder_path=str(release_dir),
            commit_message="Upload cognitive-slm release",
            ignore_patterns=[MARKER],
        )  # the local marker of what wrote the folder stays local
    except Exception as e:  # network, auth, permission: one line; the local release is complete either way
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise UserError(
            f"--push_to_hub {repo_id}: upload failed ({type(e).__name__}: {first}); "
            f"the release is complete in {release_dir}"
        ) from None
    return str(url)
