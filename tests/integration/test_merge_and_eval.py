"""A tiny trained run -> lm_eval on the cognitive_reasoning task -> merge with the logits equivalence check."""

from __future__ import annotations

import json

import pytest
import torch

from tests.conftest import run_lm_eval, run_python, tiny_recipe


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory, tiny_model_dir, cot_data_dir):
    import recipes.sft as sft
    from cognitive.train.args import parse_sft_args

    run_dir = tmp_path_factory.mktemp("runs") / "tiny"
    sft.main(*parse_sft_args(tiny_recipe(tiny_model_dir("llama"), cot_data_dir, run_dir, max_steps=3)))
    return run_dir


def test_lm_eval_cli_runs_the_task_on_4_documents(tiny_run, tiny_model_dir, tmp_path):
    out = tmp_path / "lm_eval"
    model_args = f"pretrained={tiny_model_dir('llama')},peft={tiny_run}"
    result = run_lm_eval(model_args, "cognitive_*", "--batch_size", "4", limit=4, out=out, max_gen_toks=64)
    assert result.returncode == 0, result.stderr[-3000:]
    [results_file] = out.rglob("results_*.json")
    metrics = json.loads(results_file.read_text())["results"]["cognitive_reasoning"]
    assert 0.0 <= metrics["exact_match,none"] <= 1.0
    [samples_file] = out.rglob("samples_cognitive_reasoning_20*.jsonl")  # not ..._plain_*
    samples = [json.loads(line) for line in samples_file.read_text().splitlines()]
    assert len(samples) == 4
    for s in samples:  # the prompt is the chat-rendered system + user turn of the record
        prompt = s["arguments"]["gen_args_0"]["arg_0"]
        assert prompt.startswith("<|im_start|>system\nYou are a cognitive AI system")
        assert "Context: " in prompt and prompt.endswith("<|im_start|>assistant\n")
        assert s["exact_match"] in (0.0, 1.0)


def test_merge_matches_adapter_and_loads_standalone(tiny_run, tmp_path):
    out = tmp_path / "release"
    result = run_python(["recipes/merge.py", "--run", str(tiny_run), "--out", str(out)])
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout[result.stdout.index("{") :])
    assert report["max_abs_logit_diff"] <= 1e-3
    assert not any(p.name.startswith("adapter") for p in out.iterdir()), "a merged release has no adapter files"

    # The release is an ordinary model: same logits as base + adapter, recomputed independently here.
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from cognitive.release.merge import check_batch

    merged = AutoModelForCausalLM.from_pretrained(out, dtype=torch.float32)
    base = AutoModelForCausalLM.from_pretrained(
        json.loads((tiny_run / "adapter_config.json").read_text())["base_model_name_or_path"], dtype=torch.float32
    )
    adapted = PeftModel.from_pretrained(base, tiny_run)
    batch = check_batch(AutoTokenizer.from_pretrained(out))
    with torch.no_grad():
        diff = (merged(**batch).logits - adapted(**batch).logits)[batch["attention_mask"].bool()].abs().max().item()
    assert diff <= 1e-4


def test_merge_refuses_existing_output_and_bad_run(tiny_run, tmp_path):
    out = tmp_path / "release"
    out.mkdir()
    result = run_python(["recipes/merge.py", "--run", str(tiny_run), "--out", str(out)])
    assert result.returncode == 2 and "already exists" in result.stderr.strip().splitlines()[-1]

    no_adapter = tmp_path / "not-a-run"
    no_adapter.mkdir()
    result = run_python(["recipes/merge.py", "--run", str(no_adapter), "--out", str(tmp_path / "x")])
    assert result.returncode == 2 and "has no adapter" in result.stderr.strip().splitlines()[-1]


def test_merge_check_failure_leaves_nothing(tiny_run, tmp_path):
    out = tmp_path / "release"
    result = run_python(["recipes/merge.py", "--run", str(tiny_run), "--out", str(out), "--tolerance", "-1"])
    assert result.returncode == 1 and "merged logits differ" in result.stderr
    assert not out.exists()
    assert not list(tmp_path.glob("release.*"))
