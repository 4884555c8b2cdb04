"""The project's launch command under DeepSpeed ZeRO-2 with CPU optimizer offload, on this CPU machine.

DeepSpeed runs on its CPU accelerator with gloo; the first use JIT-compiles cpu_adam (~3 min, cached in
~/.cache/torch_extensions). The literal command runs with a tiny recipe (1 rank, gradient accumulation 2),
then the same recipe on 2 ranks with accumulation 1: the same global batches, so the loss curves match.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest
import yaml
from safetensors.torch import load_file

from tests.conftest import ROOT, tiny_recipe_yaml

DEEPSPEED = shutil.which("deepspeed") or str(Path(sys.executable).parent / "deepspeed")
STEPS = 3


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _deepspeed(args: list[str], tmp_path: Path):
    import os
    import subprocess

    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    port = str(_free_port())  # the launcher's default port may be another job's on this machine
    result = subprocess.run(
        [DEEPSPEED, "--master_port", port, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=900
    )
    assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]
    # DeepSpeed's CPU all-reduce segments (one per rank, 66 MB) are not left in /dev/shm after the run
    # (cognitive.train.args._unlink_own_shm_segment)
    assert not list(Path("/dev/shm").glob(f"deepspeed_allreduce_buffer_{os.getuid()}_*_{port}_*"))
    return result


# The CPU recipes set use_cpu (bf16 autocast on the CPU, a bf16 base, padding-free rows), with which transformers
# trains without DeepSpeed; launched with DeepSpeed on a machine without a GPU they train under ZeRO with use_cpu and
# bf16 (autocast) off, said in one line (cognitive.train.args.CPU_UNDER_DEEPSPEED). The tests below that compare
# losses train in fp32 throughout, on padded rows.
ZERO_ON_CPU = dict(use_cpu=False, bf16=False, gradient_checkpointing=False, dtype="float32")
ZERO_ON_CPU_SFT = dict(ZERO_ON_CPU, padding_free=False)  # GRPOConfig has no padding_free
CPU_LINE = "CPU settings under ZeRO (use_cpu false, bf16 false)"


def _zero_stage(checkpoint: Path) -> tuple[int, str]:
    import torch

    [optim_file] = checkpoint.glob("global_step*/zero_pp_rank_0_*optim_states.pt")
    saved = torch.load(optim_file, weights_only=False)  # our own test artifact (DeepSpeed pickles its state)
    return int(saved["optimizer_state_dict"]["zero_stage"]), saved["ds_config"]["zero_optimization"][
        "offload_optimizer"
    ]["device"]


def test_the_launch_command_trains_the_cpu_recipe_as_typed(cot_data_dir, tmp_path):
    """`deepspeed recipes/sft.py --ds ds_configs/zero2_3090ti.json --config recipes/configs/demo_cpu.yaml` on this
    machine without a GPU: the demo recipe (the embedded 135M on a bf16 base, padding-free rows) trains under ZeRO-2
    with no extra flag; here 2 steps of it on a small data dir, rows cut at 192 tokens (the recipe's 768 cost 90 s more
    and test nothing more), with a checkpoint to look into."""
    run = tmp_path / "run"
    extra = ["--max_steps", "2", "--save_steps", "2", "--max_length", "192"]
    extra += ["--dataset_path", str(cot_data_dir), "--output_dir", str(run)]
    command = ["recipes/sft.py", "--ds", "ds_configs/zero2_3090ti.json", "--config", "recipes/configs/demo_cpu.yaml"]
    result = _deepspeed([*command, *extra], tmp_path)
    assert result.stdout.count(CPU_LINE) == 1, result.stdout[-2000:]
    assert _zero_stage(run / "checkpoint-2") == (2, "cpu")
    config = yaml.safe_load((run / "run_config.yaml").read_text())
    assert (config["use_cpu"], config["bf16"], config["dtype"], config["padding_free"]) == (
        False,
        False,
        "bfloat16",
        True,
    )
    adapter = load_file(run / "adapter_model.safetensors")
    assert all(t.abs().sum() > 0 for k, t in adapter.items() if "lora_B" in k)


def _losses(run_dir: Path) -> list[float]:
    history = json.loads((run_dir / "log_history.json").read_text())
    return [e["loss"] for e in history if "loss" in e]


@pytest.fixture(scope="module")
def one_rank_run(tmp_path_factory, tiny_model_dir, cot_data_dir):
    tmp = tmp_path_factory.mktemp("ds1")
    recipe = tiny_recipe_yaml(
        tmp / "tiny.yaml",
        tiny_model_dir("llama"),
        cot_data_dir,
        tmp / "run",
        max_steps=STEPS,
        save_steps=STEPS,
        gradient_accumulation_steps=2,
        **ZERO_ON_CPU_SFT,
    )
    # The command exactly as the README gives it, with a tiny recipe.
    result = _deepspeed(["recipes/sft.py", "--ds", "ds_configs/zero2_3090ti.json", "--config", str(recipe)], tmp)
    return tmp / "run", recipe, result


def test_literal_command_trains_under_zero2_offload(one_rank_run):
    run_dir, _, _ = one_rank_run
    assert _zero_stage(run_dir / f"checkpoint-{STEPS}") == (2, "cpu")
    adapter = load_file(run_dir / "adapter_model.safetensors")
    assert all(t.abs().sum() > 0 for k, t in adapter.items() if "lora_B" in k)
    config = json.loads((run_dir / "run_info.json").read_text())
    assert config["versions"]["deepspeed"] and len(config["data"]["sha256"]) == 64


def test_two_ranks_match_one_rank_with_double_accumulation(one_rank_run, tmp_path):
    run_dir, recipe, _ = one_rank_run
    _deepspeed(
        [
            "--num_gpus",
            "2",
            "recipes/sft.py",
            "--ds",
            "ds_configs/zero2_3090ti.json",
            "--config",
            str(recipe),
            "--gradient_accumulation_steps",
            "1",
            "--output_dir",
            str(tmp_path / "run2"),
        ],
        tmp_path,
    )
    one, two = _losses(run_dir), _losses(tmp_path / "run2")
    assert len(one) == len(two) == STEPS
    # Same global batch of 4 per step (2 ranks x 2 vs 1 rank x 2 x 2 accumulation): same curve, to fp32 noise.
    assert two == pytest.approx(one, rel=1e-4)
    history = json.loads((tmp_path / "run2" / "log_history.json").read_text())
    assert next(e["epoch"] for e in history if "loss" in e) == pytest.approx(4 / 20)  # 20 train examples


@pytest.mark.parametrize("quantized", [False, True], ids=["lora", "qlora"])
def test_zero3_offload_config_trains(tmp_path, tiny_model_dir, cot_data_dir, quantized):
    """ds_configs/zero3_offload.json (parameters and optimizer on the CPU) trains the tiny recipe 2 steps; with
    QLoRA the 4-bit base loads without a device_map (ZeRO-3 places the weights) and quant storage = dtype."""
    extra = (
        dict(
            load_in_4bit=True,
            use_bnb_nested_quant=True,
            bnb_4bit_quant_type="nf4",
            bnb_4bit_quant_storage="float32",
        )
        if quantized
        else {}
    )
    recipe = tiny_recipe_yaml(
        tmp_path / "tiny.yaml",
        tiny_model_dir("llama"),
        cot_data_dir,
        tmp_path / "run",
        max_steps=2,
        save_steps=2,
        **ZERO_ON_CPU_SFT,
        **extra,
    )
    _deepspeed(["recipes/sft.py", "--ds", "ds_configs/zero3_offload.json", "--config", str(recipe)], tmp_path)
    losses = _losses(tmp_path / "run")
    assert len(losses) == 2 and all(loss == loss and loss > 0 for loss in losses)
    adapter = load_file(tmp_path / "run" / "adapter_model.safetensors")
    lora_b = [t for k, t in adapter.items() if "lora_B" in k]
    assert lora_b and all(t.numel() > 0 and t.abs().sum() > 0 for t in lora_b)  # gathered from the partitions, trained


def test_grpo_launch_command_runs_the_cpu_recipe_under_zero2_offload(tmp_path, tiny_model_dir):
    """`deepspeed recipes/grpo.py --ds ds_configs/zero2_3090ti.json --config recipes/configs/grpo_135m_cpu.yaml` (the
    GRPO launch, the CPU recipe with a tiny model) trains two steps under ZeRO-2 with the optimizer on the CPU, with no
    extra flag, and finishes its run. A random model earns no reward, so its weights need not move here: which weights
    GRPO trains is tested in test_grpo_recipe.py; this is the launch path."""
    from tests.integration.test_grpo_recipe import grpo_argv

    run_dir = tmp_path / "run"
    argv = grpo_argv(tiny_model_dir("llama"), str(run_dir))
    result = _deepspeed(["recipes/grpo.py", "--ds", "ds_configs/zero2_3090ti.json", *argv], tmp_path)
    assert result.stdout.count(CPU_LINE) == 1, result.stdout[-2000:]
    assert _zero_stage(run_dir / "checkpoint-2") == (2, "cpu")
    history = json.loads((run_dir / "log_history.json").read_text())
    assert [e["step"] for e in history if "reward" in e] == [1, 2]
    assert json.loads((run_dir / "run_info.json").read_text())["versions"]["deepspeed"]
