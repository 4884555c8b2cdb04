"""Inject the cognitive modules into a loaded HF causal LM, train them beside LoRA, save and load them.

Typical use in a recipe (the modules first, then PEFT, then mark the modules trainable):

    cfg = config_from_dict(recipe["cognitive_modules"])           # UserError on an unknown key
    model = load_base(...)                                          # optionally 4-bit
    inject_cognitive_modules(model, cfg)                            # UserError if it does not fit the base
    print(format_parameter_counts(cognitive_parameter_counts(model)))
    lora = LoraConfig(target_modules=lora_target_modules(model), ...)   # base linears only, never the modules'
    model = get_peft_model(model, lora)                             # freezes everything but LoRA ...
    mark_cognitive_trainable(model)                                 # ... so unfreeze the modules afterwards
    ...
    with capture_aux_outputs(model) as aux:                         # inside compute_loss, if aux weights > 0
        out = model(**batch)
    save_cognitive_adapter(model, output_dir)                       # beside the PEFT adapter
    load_cognitive_adapter(model, output_dir)                       # on resume / for evaluation

The modules themselves live in cognitive/model/modules.py (torch + transformers only, shipped with releases).
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from cognitive.errors import UserError
from cognitive.model.modules import (
    BLOCK_ATTR,
    MODULE_NAMES,
    CognitiveAuxOutputs,
    CognitiveModulesConfig,
    attach_cognitive_modules,
    capture_aux_outputs,
    cognitive_aux_loss,
    cognitive_blocks,
    decoder_layers,
    detach_cognitive_modules,
    unwrap_model,
)
from cognitive.model.packed_attention import PACKED_SDPA

__all__ = [
    "COGNITIVE_CONFIG",
    "COGNITIVE_WEIGHTS",
    "LORA_EXCLUDE_MODULES",
    "SUPPORTED_ARCHITECTURES",
    "CognitiveAuxOutputs",
    "CognitiveModulesConfig",
    "capture_aux_outputs",
    "cognitive_aux_loss",
    "cognitive_parameter_counts",
    "config_from_dict",
    "format_parameter_counts",
    "inject_cognitive_modules",
    "load_cognitive_adapter",
    "lora_target_modules",
    "mark_cognitive_trainable",
    "remove_cognitive_modules",
    "save_cognitive_adapter",
]

# model_type of the bases whose decoder layers are tested with the modules (tests/unit/test_modules*.py)
SUPPORTED_ARCHITECTURES = ("llama", "qwen2", "mistral", "phi3", "gemma2")
SUPPORTED_ATTENTION = ("sdpa", "eager", "flash_attention_2", "flash_attention_3", PACKED_SDPA)
COGNITIVE_WEIGHTS = "cognitive_adapter.safetensors"
COGNITIVE_CONFIG = "cognitive_config.json"
# For PEFT's `exclude_modules` (a regex matched against full module names) when `target_modules="all-linear"`.
LORA_EXCLUDE_MODULES = rf".*\.{BLOCK_ATTR}\..*"
_BASE_IDENTITY = ("model_type", "hidden_size", "num_hidden_layers", "vocab_size")


def config_from_dict(d: dict | None) -> CognitiveModulesConfig:
    """The recipe's `cognitive_modules` block -> config; an unknown key or bad value is a one-line UserError."""
    return CognitiveModulesConfig.from_dict(d)


def inject_cognitive_modules(model: nn.Module, cfg: CognitiveModulesConfig | dict | None) -> CognitiveModulesConfig:
    """Wrap the decoder layers of `model` (a loaded HF causal LM, possibly 4-bit) with the modules, in place.

    Checks the architecture and that the config fits the base before anything is built. Modules are created
    in float32 on the layers' devices (training precision; autocast or `model.to(dtype)` change it). All
    modules off: nothing is added (the model stays exactly the base). Returns the config.
    """
    if not isinstance(cfg, CognitiveModulesConfig):
        cfg = config_from_dict(cfg)
    base = unwrap_model(model)
    check_supported(base)
    num_layers = len(decoder_layers(base))
    cfg.validate(num_layers)
    if getattr(base, "cognitive_config", None) is not None:
        raise UserError("cognitive modules are already injected into this model")
    attach_cognitive_modules(base, cfg)
    base.cognitive_config = cfg  # what save_cognitive_adapter writes; a plain attribute, not a parameter
    return cfg


def remove_cognitive_modules(model: nn.Module) -> None:
    """Undo `inject_cognitive_modules`."""
    base = unwrap_model(model)
    detach_cognitive_modules(base)
    base.__dict__.pop("cognitive_config", None)


def check_supported(model: nn.Module) -> None:
    model_type = getattr(model.config, "model_type", None)
    if model_type not in SUPPORTED_ARCHITECTURES:
        raise UserError(
            f"cognitive modules: unsupported architecture '{model_type}' ({type(model).__name__}); "
            f"supported: {', '.join(SUPPORTED_ARCHITECTURES)}"
        )
    attn = getattr(model.config, "_attn_implementation", None) or "eager"
    if attn not in SUPPORTED_ATTENTION:
        raise UserError(
            f"cognitive modules: attn_implementation '{attn}' is not supported; "
            f"use one of {', '.join(SUPPORTED_ATTENTION)}"
        )


# --- training helpers ----------------------------------------------------------------------------------------


def cognitive_parameter_counts(model: nn.Module) -> dict[str, int]:
    """Parameters per module (summed over layers; the step predictor counts with the reasoning heads), their
    total, and the base model's parameters (4-bit weights counted unpacked, LoRA weights excluded)."""
    counts = dict.fromkeys(MODULE_NAMES, 0)
    attr_to_name = {
        "memory": "working_memory",
        "reasoning": "reasoning_heads",
        "state": "state_tracking",
        "planning": "planning_module",
    }
    for block in cognitive_blocks(unwrap_model(model)).values():
        for attr, name in attr_to_name.items():
            module = getattr(block, attr)
            if module is not None:
                counts[name] += sum(p.numel() for p in module.parameters())
    counts["total"] = sum(counts[name] for name in MODULE_NAMES)
    module_params = {id(p) for b in cognitive_blocks(unwrap_model(model)).values() for p in b.parameters()}
    base = 0
    for name, p in unwrap_model(model).named_parameters():
        if id(p) in module_params or "lora_" in name:
            continue
        quant_state = getattr(p, "quant_state", None)  # bitsandbytes 4-bit: packed storage, 2 weights a byte
        base += quant_state.shape.numel() if quant_state is not None else p.numel()
    counts["base"] = base
    return counts


def format_parameter_counts(counts: dict[str, int]) -> str:
    """Lines for the recipe's start-up log: each module, the total and its share of the base."""
    base = max(counts["base"], 1)
    lines = [f"  {name:<16} {counts[name]:>13,d}  ({100 * counts[name] / base:.2f}% of base)" for name in MODULE_NAMES]
    lines.append(f"  {'total':<16} {counts['total']:>13,d}  ({100 * counts['total'] / base:.2f}% of base)")
    lines.append(f"  {'base':<16} {counts['base']:>13,d}")
    return "cognitive module parameters:\n" + "\n".join(lines)


def mark_cognitive_trainable(model: nn.Module) -> int:
    """Make every module parameter trainable (call after `get_peft_model`, which freezes them); returns the count."""
    n = 0
    for block in cognitive_blocks(unwrap_model(model)).values():
        for p in block.parameters():
            p.requires_grad_(True)
            n += p.numel()
    return n


def lora_target_modules(model: nn.Module) -> list[str]:
    """Names for PEFT's `target_modules`: every linear layer of the BASE (as `all-linear` would pick them: the
    output embedding excluded), never a layer of the cognitive modules. Works on 4-bit bases (Linear4bit is
    an nn.Linear). Equivalent alternative: target_modules="all-linear", exclude_modules=LORA_EXCLUDE_MODULES.
    """
    base = unwrap_model(model)
    output = base.get_output_embeddings() if hasattr(base, "get_output_embeddings") else None
    module_linears = {
        name.rsplit(".", 1)[-1]
        for block in cognitive_blocks(base).values()
        for name, m in block.named_modules()
        if isinstance(m, nn.Linear)
    }
    base_linears = set()
    for name, m in base.named_modules():
        if isinstance(m, nn.Linear) and m is not output and f".{BLOCK_ATTR}." not in f".{name}.":
            base_linears.add(name.rsplit(".", 1)[-1])
    clash = base_linears & module_linears
    if clash:  # a suffix match would put LoRA on the modules too
        raise UserError(f"LoRA targets: base linear names {sorted(clash)} clash with the cognitive modules' layers")
    return sorted(base_linears)


# --- persistence ---------------------------------------------------------------------------------------------


def base_identity(model: nn.Module) -> dict:
    config = unwrap_model(model).config
    text = config.get_text_config()
    return {key: getattr(config if key == "model_type" else text, key) for key in _BASE_IDENTITY}


def save_cognitive_adapter(model: nn.Module, directory: str | Path) -> Path:
    """Write cognitive_adapter.safetensors (module weights) + cognitive_config.json (config + base identity)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    base = unwrap_model(model)
    blocks = cognitive_blocks(base)
    cfg: CognitiveModulesConfig | None = getattr(base, "cognitive_config", None)
    if cfg is None:
        raise UserError("save_cognitive_adapter: this model has no cognitive modules injected")
    tensors = {
        f"layers.{i}.{name}": p.detach().to("cpu").contiguous()
        for i, block in blocks.items()
        for name, p in block.state_dict().items()
    }
    save_file(tensors, str(directory / COGNITIVE_WEIGHTS), metadata={"format": "pt"})
    meta = {"format_version": 1, "cognitive_modules": cfg.to_dict(), "base": base_identity(base)}
    (directory / COGNITIVE_CONFIG).write_text(json.dumps(meta, indent=2) + "\n")
    return directory


def load_cognitive_adapter(model: nn.Module, directory: str | Path) -> CognitiveModulesConfig:
    """Load saved modules into `model`: injects them first if needed; refuses a different base or config."""
    directory = Path(directory)
    config_path, weights_path = directory / COGNITIVE_CONFIG, directory / COGNITIVE_WEIGHTS
    for path in (config_path, weights_path):
        if not path.exists():
            raise UserError(f"cognitive adapter: {path} does not exist")
    meta = json.loads(config_path.read_text())
    saved_cfg = config_from_dict(meta.get("cognitive_modules"))
    base = unwrap_model(model)
    expected, actual = meta.get("base", {}), base_identity(base)
    for key in _BASE_IDENTITY:
        if expected.get(key) != actual[key]:
            raise UserError(
                f"cognitive adapter {directory}: saved for a base with {key}={expected.get(key)!r}, "
                f"but this base has {key}={actual[key]!r}"
            )
    current_cfg = getattr(base, "cognitive_config", None)
    if current_cfg is None:
        inject_cognitive_modules(base, saved_cfg)
    elif current_cfg != saved_cfg:
        raise UserError(
            f"cognitive adapter {directory}: its cognitive_modules config differs from the one injected in this model "
            f"(saved {saved_cfg.to_dict()}, injected {current_cfg.to_dict()})"
        )
    tensors = load_file(str(weights_path))
    blocks = cognitive_blocks(base)
    expected_keys = {f"layers.{i}.{name}" for i, b in blocks.items() for name in b.state_dict()}
    missing, unexpected = expected_keys - tensors.keys(), tensors.keys() - expected_keys
    if missing or unexpected:
        raise UserError(
            f"cognitive adapter {weights_path}: weights do not match the config "
            f"(missing {sorted(missing)[:3]}, unexpected {sorted(unexpected)[:3]})"
        )
    with torch.no_grad():
        for i, block in blocks.items():
            for name, target in block.state_dict(keep_vars=True).items():
                source = tensors[f"layers.{i}.{name}"]
                if source.shape != target.shape:
                    raise UserError(
                        f"cognitive adapter {weights_path}: layers.{i}.{name} has shape {tuple(source.shape)}, "
                        f"expected {tuple(target.shape)}"
                    )
                target.copy_(source.to(device=target.device, dtype=target.dtype))
    return saved_cfg
