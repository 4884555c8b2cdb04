"""recipes/sft.py end to end on tiny random-init models: LoRA trains, the base does not, the run dir is complete."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

from tests.conftest import run_python, tiny_recipe


def _train_in_process(argv):
    import recipes.sft as sft
    from cognitive.train.args import parse_sft_args

    return sft.main(*parse_sft_args(argv))


@pytest.mark.parametrize("family", ["llama", "qwen2"])
def test_two_steps_train_lora_only(family, tiny_model_dir, cot_data_dir, tmp_path):
    model_dir = tiny_model_dir(family)
    run_dir = tmp_path / "run"
    trainer = _train_in_process(tiny_recipe(model_dir, cot_data_dir, run_dir))

    base = load_file(model_dir / "model.safetensors")
    lora_b, checked_base = 0, 0
    for name, param in trainer.model.named_parameters():
        if "lora_B" in name:
            lora_b += 1
            assert param.detach().abs().sum() > 0, f"{name} did not change from its zero init"
        elif "lora_" not in name:
            key = name.removeprefix("base_model.model.").replace(".base_layer", "")
            if key in base:
                saved = base[key].to(param.dtype)  # the recipe's base is bf16: the saved fp32 weights as it loads them
                torch.testing.assert_close(param.detach().cpu(), saved, rtol=0, atol=0, msg=f"{key} changed")
                checked_base += 1
    assert lora_b >= 7 * 2, "LoRA should sit on all 7 linear layers of both decoder layers"
    assert checked_base >= len(base) - 1

    # The finished run dir: adapter, resolved config, trainer log, curves; no .partial left behind.
    for name in (
        "adapter_model.safetensors",
        "adapter_config.json",
        "run_config.yaml",
        "log_history.json",
        "training_curves.png",
    ):
        assert (run_dir / name).exists(), name
    assert not (tmp_path / "run.partial").exists()
    history = json.loads((run_dir / "log_history.json").read_text())
    assert [e["step"] for e in history if "loss" in e] == [1, 2]


def test_loss_only_on_assistant_tokens(tiny_model_dir, cot_data_dir, tmp_path, embedded_tokenizer):
    """The tokens that carry loss decode to exactly the assistant response (+ end of turn), not the prompt."""
    from cognitive.train.sft_data import find_split_files, load_examples

    trainer = _train_in_process(tiny_recipe(tiny_model_dir("llama"), cot_data_dir, tmp_path / "run", max_steps=1))
    row = trainer.train_dataset[0]
    trained = [label for label in row["labels"] if label != -100]  # -100: no loss on this token
    response = load_examples(find_split_files(cot_data_dir, "train"))[0].response()
    assert embedded_tokenizer.decode(trained).strip() == response + "<|im_end|>"
    assert row["labels"][: len(row["input_ids"]) - len(trained)] == [-100] * (len(row["input_ids"]) - len(trained))


def test_unknown_yaml_key_is_one_line_error(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("model_name_or_path: embedded:smollm2-135m-instruct\nlerning_rate: 0.1\n")
    result = run_python(["recipes/sft.py", "--config", str(bad)])
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1] == f"error: {bad}: unknown key(s) lerning_rate"
    assert "Traceback" not in result.stderr


def test_malformed_record_names_file_and_line(tmp_path, tiny_model_dir, cot_data_dir):
    data = tmp_path / "data"
    data.mkdir()
    lines = (cot_data_dir / "train.jsonl").read_text().splitlines()
    lines[2] = lines[2].replace('"final_answer"', '"final_answr"')
    (data / "train.jsonl").write_text("\n".join(lines) + "\n")
    result = run_python(["recipes/sft.py", *tiny_recipe(tiny_model_dir("llama"), data, tmp_path / "run")])
    assert result.returncode == 2
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith(f"error: {data / 'train.jsonl'}:3: key '") and "final_answ" in last
    assert not (tmp_path / "run").exists()


def test_missing_base_is_one_line_error(tmp_path, cot_data_dir):
    result = run_python(["recipes/sft.py", *tiny_recipe(tmp_path / "no-such-model", cot_data_dir, tmp_path / "run")])
    assert result.returncode == 2
    assert (
        result.stderr.strip().splitlines()[-1]
        == f"error: base '{tmp_path / 'no-such-model'}' does not exist (not a local model directory, not a hub id)"
    )


def test_finished_run_dir_is_not_overwritten(tmp_path, tiny_model_dir, cot_data_dir):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "keep.txt").write_text("x")
    result = run_python(["recipes/sft.py", *tiny_recipe(tiny_model_dir("llama"), cot_data_dir, run_dir)])
    assert result.returncode == 2 and "already exists" in result.stderr
    assert (run_dir / "keep.txt").exists()
