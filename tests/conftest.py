"""Shared fixtures: the embedded tokenizer and tiny random-init models (hidden 64, 2 layers) built here."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("WANDB_MODE", "offline")
# OpenMP's waiting threads sleep without spinning first: the test workers (pytest-xdist, 2 by default) share the
# cores, which is the loaded case (cognitive.thread_defaults would pick the short spin if a worker started while the
# other was idle)
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("GOMP_SPINCOUNT", "0")


def run_python(args: list[str], cwd: Path = ROOT, env: dict | None = None, timeout: int = 600):
    """Run `python <args>` (a recipe) in a subprocess; returns CompletedProcess with text output."""
    import subprocess

    return subprocess.run(
        [sys.executable, *args],
        cwd=cwd,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def run_lm_eval(
    model_args: str,
    tasks: str,
    *options: str,
    limit: int = 1,
    out: Path | None = None,
    max_gen_toks: int | None = None,
    chat: bool = True,
    cwd: Path = ROOT,
    env: dict | None = None,
):
    """The lm-eval CLI as a user runs it on this project's tasks (`lm_eval --model hf --include_path eval/tasks
    --device cpu ...`), in a subprocess: the hf model `model_args`, `--limit`, the chat template unless `chat` is
    False, `--gen_kwargs max_gen_toks=N` when given, `--output_path out --log_samples` when `out` is given, then
    `options` as typed (e.g. "--batch_size", "4")."""
    argv = ["-m", "lm_eval", "--model", "hf", "--model_args", model_args, "--tasks", tasks]
    argv += ["--include_path", "eval/tasks", "--device", "cpu", "--limit", str(limit)]
    argv += ["--apply_chat_template"] if chat else []
    argv += ["--gen_kwargs", f"max_gen_toks={max_gen_toks}"] if max_gen_toks is not None else []
    argv += ["--output_path", str(out), "--log_samples"] if out is not None else []
    return run_python([*argv, *options], cwd=cwd, env=env)


@pytest.fixture(scope="module")
def one_thread():
    """Tiny models run as fast on one thread, which does not fight other processes for the cores."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def embedded_tokenizer():
    from cognitive.model.base import DEFAULT_EMBEDDED, load_tokenizer

    return load_tokenizer(DEFAULT_EMBEDDED)


def tiny_config(family: str, vocab_size: int):
    """A 2-layer, hidden-64 config of `family` (random init; real architecture code)."""
    import transformers

    common = dict(
        vocab_size=vocab_size,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=4096,
        tie_word_embeddings=True,
        bos_token_id=1,
        eos_token_id=2,
        pad_token_id=2,
    )
    configs = {
        "llama": transformers.LlamaConfig,
        "qwen2": transformers.Qwen2Config,
        "mistral": transformers.MistralConfig,
        "phi3": transformers.Phi3Config,
        "gemma2": transformers.Gemma2Config,
    }
    extra = {"gemma2": dict(head_dim=16), "mistral": dict(sliding_window=None)}.get(family, {})
    return configs[family](**common, **extra)


FAMILY_NAMES = ["llama", "qwen2", "mistral", "phi3", "gemma2"]  # the families cognitive.model.inject supports


def tiny_family(family: str, vocab_size: int, seed: int = 0):
    """A random-init model of tiny_config(family) in eval mode (Phi3 and Gemma2 with eager attention)."""
    import torch
    import transformers

    config = tiny_config(family, vocab_size)
    config._attn_implementation = "eager" if family in ("phi3", "gemma2") else "sdpa"
    torch.manual_seed(seed)
    return transformers.AutoModelForCausalLM.from_config(config).eval()


def varied_tiny(family: str, vocab_size: int, seed: int, modules: bool = False, biases: bool = False):
    """tiny_family(family) (every cognitive module on, gates open, if asked) with weights large enough that its greedy
    answers vary: a fresh init repeats one token. Matrices ~ N(0, 0.5) (embeddings N(0, 1)); biases N(0, 0.5) too if
    asked."""
    import torch

    model = tiny_family(family, vocab_size)
    if modules:
        from cognitive.model.inject import inject_cognitive_modules

        inject_cognitive_modules(model, TINY_MODULES)
        open_gates(model, 0.7)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, weight in model.named_parameters():
            if weight.dim() == 2:
                weight.normal_(0, 1.0 if "embed" in name else 0.5, generator=generator)
            elif biases and name.endswith(".bias"):
                weight.normal_(0, 0.5, generator=generator)
    return model


TINY_MODULES = {  # every cognitive module on, at sizes for the tiny hidden-64 models
    "working_memory": {"enabled": True, "memory_size": 8, "update_frequency": 2, "num_heads": 2, "memory_dim": 16},
    "reasoning_heads": {"enabled": True, "num_reasoning_heads": 2, "reasoning_dim": 8},
    "state_tracking": {"enabled": True, "num_states": 4, "state_dim": 8},
    "planning_module": {"enabled": True, "planning_horizon": 2, "action_space_size": 4},
}


def open_gates(model, value: float) -> None:
    """Set every cognitive module's gate (0 at init, which hides the module) to `value`, as after training."""
    import torch

    from cognitive.model.modules import cognitive_blocks

    with torch.no_grad():
        for block in cognitive_blocks(model).values():
            for name, p in block.named_parameters():
                if name.endswith("gate"):
                    p.fill_(value)


def build_tiny_model(family: str, tokenizer, out_dir: Path, seed: int = 0) -> Path:
    """Save a tiny random-init model of `family` with `tokenizer` as a local model directory."""
    import torch
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(tiny_config(family, len(tokenizer)), dtype=torch.float32)
    model.save_pretrained(out_dir, safe_serialization=True)
    tokenizer.save_pretrained(out_dir)
    return out_dir


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory, embedded_tokenizer):
    """Factory: tiny_model_dir('llama') -> a saved tiny model directory (cached per family)."""
    made: dict[str, Path] = {}

    def make(family: str = "llama") -> Path:
        if family not in made:
            made[family] = build_tiny_model(family, embedded_tokenizer, tmp_path_factory.mktemp(f"tiny-{family}"))
        return made[family]

    return make


@pytest.fixture(scope="session")
def cot_data_dir(tmp_path_factory) -> Path:
    """A small generated chain_of_thought data dir (train.jsonl + validation.jsonl)."""
    from cognitive.data.generators import generate_example
    from cognitive.data.schema import write_jsonl

    out = tmp_path_factory.mktemp("cot-data")
    examples = [generate_example("chain_of_thought", "basic", seed) for seed in range(24)]
    write_jsonl(examples[:20], out / "train.jsonl")
    write_jsonl(examples[20:], out / "validation.jsonl")
    return out


TINY_RECIPE_OVERRIDES = {
    "max_steps": 2,
    "per_device_train_batch_size": 2,
    "learning_rate": 1e-2,
    "warmup_steps": 0,
    "max_length": 256,
    "logging_steps": 1,
    "save_steps": 2,
    "max_eval_examples": 2,
    "report_to": "none",
    "response_style": "guide",  # the guide's layout (the aux labels need its planning lines); concise: test_styles
}


def tiny_recipe(model_dir: Path, data_dir: Path, output_dir: Path, **overrides) -> list[str]:
    """CLI args for recipes/sft.py: the demo recipe shrunk to 2 steps of a tiny model on short sequences."""
    args = {"model_name_or_path": model_dir, "dataset_path": data_dir, "output_dir": output_dir}
    args.update(TINY_RECIPE_OVERRIDES)
    args.update(overrides)
    argv = ["--config", str(ROOT / "recipes/configs/demo_cpu.yaml")]
    for key, value in args.items():
        argv += [f"--{key}", str(value)]
    return argv


def tiny_recipe_yaml(path: Path, model_dir: Path, data_dir: Path, output_dir: Path, **overrides) -> Path:
    """The tiny recipe as a YAML file (demo_cpu.yaml + TINY_RECIPE_OVERRIDES + overrides), for literal commands."""
    import yaml

    recipe = yaml.safe_load((ROOT / "recipes/configs/demo_cpu.yaml").read_text())
    recipe.update(model_name_or_path=str(model_dir), dataset_path=str(data_dir), output_dir=str(output_dir))
    recipe.update(TINY_RECIPE_OVERRIDES)
    recipe.update(overrides)
    path.write_text(yaml.safe_dump(recipe))
    return path


def user_files(folder: Path) -> Path:
    """A directory of a user's own files (no marker of this project): what --overwrite must never replace."""
    folder.mkdir(parents=True)
    (folder / "important.txt").write_text("mine")
    (folder / "notes").mkdir()
    (folder / "notes" / "todo.md").write_text("- back up")
    return folder


def listing(folder: Path) -> dict[str, str | None]:
    """Every path under `folder` with its text (None for a directory or a link): what 'left untouched' compares."""
    return {
        str(p.relative_to(folder)): (p.read_text() if p.is_file() and not p.is_symlink() else None)
        for p in sorted(folder.rglob("*"))
    }
