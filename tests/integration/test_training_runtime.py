"""QLoRA on a 4-bit base, resume after SIGKILL, preflight refusals, wandb offline: the runtime around SFTTrainer."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest
import torch

from cognitive.train.run import CHECKPOINT_MARKER
from tests.conftest import ROOT, run_python, tiny_recipe


def test_qlora_two_steps_on_a_4bit_base(tiny_model_dir, cot_data_dir, tmp_path):
    import bitsandbytes as bnb

    import recipes.sft as sft
    from cognitive.train.args import parse_sft_args

    trainer = sft.main(
        *parse_sft_args(
            tiny_recipe(
                tiny_model_dir("llama"),
                cot_data_dir,
                tmp_path / "run",
                load_in_4bit="true",
                use_bnb_nested_quant="true",
                bnb_4bit_quant_type="nf4",
            )
        )
    )
    linear4bit = [m for m in trainer.model.modules() if isinstance(m, bnb.nn.Linear4bit)]
    assert len(linear4bit) == 7 * 2, "every linear layer of both decoder layers is NF4"
    assert all(m.weight.quant_state.quant_type == "nf4" and m.weight.quant_state.nested for m in linear4bit)
    lora_b = {n: p for n, p in trainer.model.named_parameters() if "lora_B" in n}
    assert len(lora_b) == 14 and all(p.abs().sum() > 0 for p in lora_b.values())
    assert all(not p.requires_grad for n, p in trainer.model.named_parameters() if "lora_" not in n)


def _losses(run_dir):
    return {e["step"]: e["loss"] for e in json.loads((run_dir / "log_history.json").read_text()) if "loss" in e}


def test_sigkill_mid_training_then_resume_ends_like_an_uninterrupted_run(tiny_model_dir, cot_data_dir, tmp_path):
    steps = dict(max_steps=12, save_steps=3, save_total_limit=2, learning_rate=3e-3)
    model = tiny_model_dir("llama")
    reference = tmp_path / "reference"
    result = run_python(["recipes/sft.py", *tiny_recipe(model, cot_data_dir, reference, **steps)])
    assert result.returncode == 0, result.stderr[-3000:]

    run_dir = tmp_path / "killed"
    partial = tmp_path / "killed.partial"
    command = [sys.executable, "recipes/sft.py", *tiny_recipe(model, cot_data_dir, run_dir, **steps)]
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while not (partial / "checkpoint-6" / CHECKPOINT_MARKER).exists():
        assert process.poll() is None and time.time() < deadline, "run ended before it could be killed"
        time.sleep(0.05)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    assert not run_dir.exists() and partial.exists(), "a killed run leaves only its .partial dir"

    resumed = run_python(["recipes/sft.py", *tiny_recipe(model, cot_data_dir, run_dir, **steps)])
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "Resuming from" in resumed.stdout and "checkpoint-" in resumed.stdout
    expected, got = _losses(reference), _losses(run_dir)
    assert got[12] == pytest.approx(expected[12], rel=1e-5), (got, expected)
    assert not partial.exists()


def test_incomplete_checkpoint_is_never_resumed(tmp_path, capsys):
    from cognitive.train.run import resume_checkpoint

    for step, complete in ((3, True), (6, True), (9, False)):
        (tmp_path / f"checkpoint-{step}").mkdir()
        (tmp_path / f"checkpoint-{step}" / "trainer_state.json").write_text("{}")
        if complete:
            (tmp_path / f"checkpoint-{step}" / CHECKPOINT_MARKER).write_text("{}")
    assert resume_checkpoint(tmp_path) == str(tmp_path / "checkpoint-6")
    assert not (tmp_path / "checkpoint-9").exists()
    assert "checkpoint-9 cannot be resumed from (cut off before it was complete)" in capsys.readouterr().err


def test_a_truncated_latest_checkpoint_falls_back_to_the_previous_one(tiny_model_dir, cot_data_dir, tmp_path):
    """A rerun with the newest checkpoint's trainer_state.json cut short resumes from the one before (warning) and
    finishes like an uninterrupted run; so does one whose adapter weights are cut short."""
    import recipes.sft as sft

    steps = dict(max_steps=4, save_steps=1, save_total_limit=None, learning_rate=3e-3)
    model = tiny_model_dir("llama")
    reference = tmp_path / "reference"
    sft.cli(tiny_recipe(model, cot_data_dir, reference, **steps))
    for damage in ("trainer_state.json", "adapter_model.safetensors"):
        run_dir = tmp_path / f"cut-{damage}"
        shutil.copytree(reference, run_dir.with_name(run_dir.name + ".partial"))  # a run that stopped after step 4
        partial = run_dir.with_name(run_dir.name + ".partial")
        shutil.rmtree(partial / "checkpoint-4")  # as if killed before its last checkpoint...
        (partial / "run_config.yaml").write_text(
            (reference / "run_config.yaml").read_text().replace(str(reference), str(run_dir))
        )
        victim = partial / "checkpoint-3" / damage  # ...and with the newest one it has cut short
        victim.write_bytes(victim.read_bytes()[: len(victim.read_bytes()) // 2])
        result = run_python(["recipes/sft.py", *tiny_recipe(model, cot_data_dir, run_dir, **steps)])
        assert result.returncode == 0, result.stderr[-3000:]
        assert "checkpoint-3 cannot be resumed from" in result.stderr and "Resuming from" in result.stdout
        assert "checkpoint-2" in result.stdout.split("Resuming from")[1].splitlines()[0]
        assert _losses(run_dir)[4] == pytest.approx(_losses(reference)[4], rel=1e-5)


def test_deepspeed_config_contradicting_the_recipe_fails_before_loading(tiny_model_dir, cot_data_dir, tmp_path):
    ds = tmp_path / "ds.json"
    ds.write_text(json.dumps({"train_micro_batch_size_per_gpu": 8, "zero_optimization": {"stage": 2}}))
    result = run_python(
        [
            "recipes/sft.py",
            *tiny_recipe(tiny_model_dir("llama"), cot_data_dir, tmp_path / "run", use_cpu=False, bf16=False),
            "--ds",
            str(ds),
        ]
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1] == (
        f"error: {ds}: train_micro_batch_size_per_gpu is 8 but the recipe's per_device_train_batch_size is 2; "
        'set it to "auto" or make them agree'
    )
    assert "Loading weights" not in result.stderr

    ds.write_text('{"zero_optimization": {"stage": 2,}\n')
    result = run_python(
        [
            "recipes/sft.py",
            *tiny_recipe(tiny_model_dir("llama"), cot_data_dir, tmp_path / "run", use_cpu=False, bf16=False),
            "--ds",
            str(ds),
        ]
    )
    assert result.returncode == 2 and result.stderr.strip().splitlines()[-1].startswith(
        f"error: {ds}:1: not valid JSON"
    )


def test_model_that_cannot_fit_is_refused_with_advice(cot_data_dir, tmp_path):
    """Qwen2.5-1.5B in bf16 without checkpointing at 16 x 4096 tokens does not fit a 3090 Ti: refused before loading."""
    result = run_python(
        [
            "recipes/sft.py",
            "--config",
            str(ROOT / "recipes/configs/cognitive_1.5b.yaml"),
            "--bf16",
            "false",
            "--tf32",
            "false",
            "--load_in_4bit",
            "false",
            "--gradient_checkpointing",
            "false",
            "--per_device_train_batch_size",
            "16",
            "--max_length",
            "4096",
            "--gpu",
            "3090ti",
            "--dataset_path",
            str(cot_data_dir),
            "--output_dir",
            str(tmp_path / "run"),
        ]
    )
    assert result.returncode == 2
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("error: estimated peak memory") and "exceeds the 3090ti's 24.0 GiB" in last
    assert "per_device_train_batch_size" in last or "load_in_4bit" in last
    assert not (tmp_path / "run.partial").exists()


def test_the_default_recipe_on_a_cpu_machine_names_the_offline_recipe():
    result = run_python(["recipes/sft.py"])
    assert result.returncode == 2
    last = result.stderr.strip().splitlines()[-1]
    assert "needs a GPU" in last and "recipes/configs/demo_cpu.yaml" in last


def test_wandb_logs_offline_into_the_run_dir(tiny_model_dir, cot_data_dir, tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("WANDB_")}
    result = subprocess.run(
        [
            sys.executable,
            "recipes/sft.py",
            *tiny_recipe(tiny_model_dir("llama"), cot_data_dir, tmp_path / "run", max_steps=1, report_to="wandb"),
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    runs = list((tmp_path / "run" / "wandb").glob("offline-run-*"))
    assert len(runs) == 1 and any(runs[0].glob("*.wandb"))


def test_a_finished_run_continued_for_longer_ends_like_a_run_of_that_length(tiny_model_dir, cot_data_dir, tmp_path):
    """`recipes/sft.py` with a larger --max_steps on a finished run of N steps trains N more from its last complete
    checkpoint (in the .partial, published over the old run at the end) and ends where an uninterrupted 2N-step run
    ends: the same losses and adapter weights. A constant learning rate: a schedule over max_steps bends with it, as
    in any Trainer. The continuation also saves every 5 steps instead of 3, keeping 2 (applied, and recorded in
    run_info.json); a rerun of the finished command, other settings, and a finished run without a checkpoint are
    one-line errors."""
    from safetensors.torch import load_file

    import recipes.sft as sft
    from cognitive.atomic import written_as
    from cognitive.errors import UserError
    from cognitive.train.args import parse_sft_args

    n = 3
    common = dict(lr_scheduler_type="constant", learning_rate=3e-3, save_steps=n, save_total_limit=1)
    model = tiny_model_dir("llama")
    reference, run = tmp_path / "reference", tmp_path / "run"

    def train(out, **changes):
        return sft.main(*parse_sft_args(tiny_recipe(model, cot_data_dir, out, **{**common, **changes})))

    train(reference, max_steps=2 * n)
    train(run, max_steps=n)
    assert (run / f"checkpoint-{n}").is_dir()
    train(run, max_steps=2 * n, save_steps=5, save_total_limit=2)

    assert written_as(run) == "run" and not (tmp_path / "run.partial").exists()
    assert _losses(run) == pytest.approx(_losses(reference), rel=1e-4) and len(_losses(run)) == 2 * n
    expected, got = load_file(reference / "adapter_model.safetensors"), load_file(run / "adapter_model.safetensors")
    assert expected.keys() == got.keys()
    assert all(torch.allclose(got[k], expected[k], atol=1e-5, rtol=1e-4) for k in expected)
    # the new save_steps applied (the checkpoint's own, 3, would have saved at 6 alone, keeping checkpoint-3)
    assert sorted(p.name for p in run.glob("checkpoint-*")) == ["checkpoint-5", "checkpoint-6"]
    changes = {"from_step": n, "max_steps": [n, 2 * n], "save_steps": [n, 5], "save_total_limit": [1, 2]}
    assert json.loads((run / "run_info.json").read_text())["changes"] == [changes]

    with pytest.raises(UserError, match=f"run dir {run} already exists; pass --overwrite true to train it afresh"):
        train(run, max_steps=2 * n, save_steps=5, save_total_limit=2)
    with pytest.raises(UserError, match=r"is a run with other settings \(learning_rate: 0.003 -> 0.01\)"):
        train(run, max_steps=3 * n, learning_rate=1e-2)
    train(tmp_path / "unsaved", max_steps=n, save_strategy="no")
    with pytest.raises(UserError, match="is finished and holds no complete checkpoint to continue from"):
        train(tmp_path / "unsaved", max_steps=2 * n, save_strategy="no")
    assert not list(tmp_path.glob("*.partial")) and not list(tmp_path.glob("*.lock"))
