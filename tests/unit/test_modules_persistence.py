"""Config parsing, validation against the base, persistence and parameter budgets of the cognitive modules."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file
from transformers import GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM, Qwen2Config, Qwen2ForCausalLM

from cognitive.errors import UserError
from cognitive.model.inject import (
    COGNITIVE_CONFIG,
    COGNITIVE_WEIGHTS,
    CognitiveModulesConfig,
    cognitive_parameter_counts,
    config_from_dict,
    format_parameter_counts,
    inject_cognitive_modules,
    load_cognitive_adapter,
    remove_cognitive_modules,
    save_cognitive_adapter,
)
from cognitive.model.memory import shape_for
from cognitive.model.modules import cognitive_blocks
from tests.conftest import FAMILY_NAMES, tiny_family

REPO = Path(__file__).resolve().parents[2]
GUIDE_BLOCK = {
    "working_memory": {"enabled": True, "memory_size": 512, "update_frequency": 4},
    "reasoning_heads": {"enabled": True, "num_reasoning_heads": 4, "reasoning_dim": 256},
    "state_tracking": {"enabled": True, "num_states": 32, "state_dim": 128},
    "planning_module": {"enabled": True, "planning_horizon": 8, "action_space_size": 64},
}
ALL_OFF = {name: {"enabled": False} for name in GUIDE_BLOCK}


pytestmark = pytest.mark.usefixtures("one_thread")


def tiny_llama(seed=0, hidden=64, layers=2):
    config = LlamaConfig(
        vocab_size=96,
        hidden_size=hidden,
        intermediate_size=128,
        num_hidden_layers=layers,
        num_attention_heads=4,
        num_key_value_heads=2,
    )
    torch.manual_seed(seed)
    return LlamaForCausalLM(config).eval()


def open_gates(model, value=0.6):
    with torch.no_grad():
        for block in cognitive_blocks(model).values():
            for name, p in block.named_parameters():
                if name.endswith("gate"):
                    p.fill_(value)
                elif "norm" not in name:
                    p.add_(0.01 * torch.randn_like(p))  # as if trained: not the init values


IDS = torch.tensor([[5, 17, 33, 2, 90, 41, 8, 8, 63, 12], [0, 0, 0, 7, 19, 22, 54, 3, 71, 30]])
MASK = (IDS != 0).long()


def logits(model):
    with torch.no_grad():
        return model(IDS, attention_mask=MASK).logits


# --- config --------------------------------------------------------------------------------------------------


def test_guide_block_parses_to_the_defaults():
    cfg = config_from_dict(GUIDE_BLOCK)
    assert cfg == CognitiveModulesConfig()
    assert cfg.working_memory.memory_size == 512 and cfg.reasoning_heads.reasoning_dim == 256
    assert cfg.state_tracking.num_states == 32 and cfg.planning_module.action_space_size == 64
    assert config_from_dict(cfg.to_dict()) == cfg  # round trip through a plain dict (YAML / JSON)
    assert config_from_dict(None) == cfg and config_from_dict({"working_memory": None}) == cfg


@pytest.mark.parametrize(
    "block, words",
    [
        ({"working_memroy": {}}, ["cognitive_modules.working_memroy", "unknown key", "working_memory"]),
        ({"reasoning_heads": {"num_heads": 4}}, ["cognitive_modules.reasoning_heads.num_heads", "unknown key"]),
        ({"state_tracking": {"num_states": "32"}}, ["cognitive_modules.state_tracking.num_states", "'32'"]),
        ({"planning_module": {"enabled": "yes"}}, ["cognitive_modules.planning_module.enabled", "'yes'"]),
        ({"working_memory": {"layers": [0, "x"]}}, ["cognitive_modules.working_memory.layers"]),
        ({"working_memory": 4}, ["cognitive_modules.working_memory", "mapping"]),
    ],
)
def test_bad_config_is_a_one_line_user_error(block, words):
    with pytest.raises(UserError) as e:
        config_from_dict(block)
    message = str(e.value)
    assert "\n" not in message
    for word in words:
        assert word in message


@pytest.mark.parametrize(
    "block, words",
    [
        ({"working_memory": {"memory_dim": 250, "num_heads": 4}}, ["working_memory.memory_dim", "250", "4"]),
        ({"reasoning_heads": {"layers": [1, 5]}}, ["reasoning_heads.layers", "layer 5", "2 decoder layers"]),
        ({"state_tracking": {"layer": -3}}, ["state_tracking.layer", "-3"]),
        ({"planning_module": {"layer": 2}}, ["planning_module.layer", "layer 2"]),
        ({"working_memory": {"update_frequency": 0}}, ["working_memory.update_frequency", "0"]),
        ({"state_tracking": {"num_states": 1}}, ["state_tracking.num_states", "1"]),
        ({"reasoning_heads": {"reasoning_dim": 0}}, ["reasoning_heads.reasoning_dim"]),
        ({"reasoning_heads": {"layers": [1, -1]}}, ["reasoning_heads.layers", "repeated"]),
        ({"planning_module": {"aux_loss_weight": -1}}, ["planning_module.aux_loss_weight"]),
    ],
)
def test_config_that_does_not_fit_the_base_is_refused_before_anything_is_built(block, words):
    model = tiny_llama()
    with pytest.raises(UserError) as e:
        inject_cognitive_modules(model, block)
    assert "\n" not in str(e.value)
    for word in words:
        assert word in str(e.value)
    assert not cognitive_blocks(model)


def test_unsupported_architecture_is_refused():
    model = GPT2LMHeadModel(GPT2Config(vocab_size=96, n_embd=32, n_layer=2, n_head=2))
    with pytest.raises(UserError) as e:
        inject_cognitive_modules(model, {})
    message = str(e.value)
    assert "unsupported architecture 'gpt2'" in message and "\n" not in message
    for name in ("llama", "qwen2", "mistral", "phi3", "gemma2"):
        assert name in message


def test_explicit_layer_placement():
    model = tiny_llama(layers=4)
    inject_cognitive_modules(
        model,
        {
            "working_memory": {"layers": [1, 3]},
            "reasoning_heads": {"layers": [0]},
            "state_tracking": {"layer": 2},
            "planning_module": {"enabled": False},
        },
    )
    blocks = cognitive_blocks(model)
    assert sorted(blocks) == [0, 1, 2, 3]
    assert blocks[0].reasoning is not None and blocks[0].reasoning.step_predictor is not None
    assert blocks[1].memory is not None and blocks[3].memory is not None and blocks[2].state is not None
    assert all(b.planning is None for b in blocks.values())


# --- all off / removal -----------------------------------------------------------------------------------------


def test_all_modules_off_is_exactly_the_plain_model():
    plain = tiny_llama()
    model = tiny_llama()
    cfg = inject_cognitive_modules(model, ALL_OFF)
    assert not cfg.any_enabled and not cognitive_blocks(model)
    assert sum(p.numel() for p in model.parameters()) == sum(p.numel() for p in plain.parameters())
    assert [n for n, _ in model.named_parameters()] == [n for n, _ in plain.named_parameters()]
    assert all(not layer._forward_hooks for layer in model.model.layers)
    assert torch.equal(logits(model), logits(plain))


def test_remove_restores_the_base():
    plain = tiny_llama()
    model = tiny_llama()
    inject_cognitive_modules(model, {})
    open_gates(model)
    assert not torch.equal(logits(model), logits(plain))
    remove_cognitive_modules(model)
    assert torch.equal(logits(model), logits(plain))
    assert [n for n, _ in model.named_parameters()] == [n for n, _ in plain.named_parameters()]


# --- persistence -----------------------------------------------------------------------------------------------


RELOAD_SCRIPT = textwrap.dedent(
    """
    import sys, torch
    from safetensors.torch import save_file
    from transformers import AutoModelForCausalLM
    from cognitive.model.inject import load_cognitive_adapter
    base_dir, adapter_dir, out, attn = sys.argv[1:5]
    model = AutoModelForCausalLM.from_pretrained(base_dir, attn_implementation=attn).eval()
    load_cognitive_adapter(model, adapter_dir)
    ids = torch.tensor({ids})
    with torch.no_grad():
        logits = model(ids, attention_mask=(ids != 0).long()).logits
    save_file({{"logits": logits.contiguous()}}, out)
    """
).format(ids=IDS.tolist())


@pytest.mark.parametrize("family", FAMILY_NAMES)
def test_save_and_reload_in_a_fresh_process(tmp_path, family):
    """(6) Save, reload in a fresh process onto the plain base: identical logits (max abs diff <= 1e-6)."""
    model = tiny_family(family, 96)
    model.save_pretrained(tmp_path / "base")
    inject_cognitive_modules(model, {"reasoning_heads": {"aux_loss_weight": 0.1}})
    open_gates(model)
    expected = logits(model)
    save_cognitive_adapter(model, tmp_path / "adapter")
    assert sorted(p.name for p in (tmp_path / "adapter").iterdir()) == sorted([COGNITIVE_CONFIG, COGNITIVE_WEIGHTS])
    meta = json.loads((tmp_path / "adapter" / COGNITIVE_CONFIG).read_text())
    assert meta["base"] == {"model_type": family, "hidden_size": 64, "num_hidden_layers": 2, "vocab_size": 96}
    assert meta["cognitive_modules"]["reasoning_heads"]["aux_loss_weight"] == 0.1
    assert len(load_file(tmp_path / "adapter" / COGNITIVE_WEIGHTS)) == sum(
        len(b.state_dict()) for b in cognitive_blocks(model).values()
    )

    script = tmp_path / "reload.py"
    script.write_text(RELOAD_SCRIPT)
    subprocess.run(
        [
            sys.executable,
            str(script),
            str(tmp_path / "base"),
            str(tmp_path / "adapter"),
            str(tmp_path / "logits.safetensors"),
            model.config._attn_implementation,
        ],
        check=True,
        cwd=REPO,
        capture_output=True,
        timeout=300,
    )
    reloaded = load_file(tmp_path / "logits.safetensors")["logits"]
    assert (reloaded - expected).abs().max().item() <= 1e-6
    assert (expected - logits(tiny_family(family, 96))).abs().max().item() > 1e-3  # the modules matter


def test_load_into_an_injected_model_restores_trained_weights(tmp_path):
    """Resume: a freshly injected model (init weights) gets the saved module weights back."""
    model = tiny_llama()
    inject_cognitive_modules(model, {})
    open_gates(model)
    save_cognitive_adapter(model, tmp_path)
    fresh = tiny_llama()
    inject_cognitive_modules(fresh, {})
    assert not torch.equal(logits(fresh), logits(model))
    load_cognitive_adapter(fresh, tmp_path)
    assert torch.equal(logits(fresh), logits(model))


@pytest.mark.parametrize("other, key", [(dict(hidden=32), "hidden_size"), (dict(layers=3), "num_hidden_layers")])
def test_adapter_for_another_base_is_refused(tmp_path, other, key):
    model = tiny_llama()
    inject_cognitive_modules(model, {})
    save_cognitive_adapter(model, tmp_path)
    with pytest.raises(UserError) as e:
        load_cognitive_adapter(tiny_llama(**other), tmp_path)
    assert key in str(e.value) and "\n" not in str(e.value)


def test_adapter_for_another_model_type_or_config_is_refused(tmp_path):
    model = tiny_llama()
    inject_cognitive_modules(model, {})
    save_cognitive_adapter(model, tmp_path)
    qwen = Qwen2ForCausalLM(
        Qwen2Config(
            vocab_size=96,
            hidden_size=64,
            intermediate_size=128,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,
        )
    )
    with pytest.raises(UserError, match="model_type"):
        load_cognitive_adapter(qwen, tmp_path)
    other = tiny_llama()
    inject_cognitive_modules(other, {"state_tracking": {"num_states": 16}})
    with pytest.raises(UserError, match="config differs"):
        load_cognitive_adapter(other, tmp_path)
    # a weights file that does not match its config
    tensors = load_file(tmp_path / COGNITIVE_WEIGHTS)
    tensors.pop(next(iter(tensors)))
    save_file(tensors, tmp_path / COGNITIVE_WEIGHTS)
    with pytest.raises(UserError, match="missing"):
        load_cognitive_adapter(tiny_llama(), tmp_path)


# --- parameter budget and shipping ----------------------------------------------------------------------------------


def test_default_config_on_qwen2_5_1_5b_shape_stays_under_10_percent():
    """The default modules on a Qwen2.5-1.5B-shaped base (built on the meta device: no memory, no init)."""
    config = Qwen2Config(**shape_for("Qwen/Qwen2.5-1.5B-Instruct").config_kwargs())
    with torch.device("meta"):
        model = Qwen2ForCausalLM(config)
    inject_cognitive_modules(model, {})
    counts = cognitive_parameter_counts(model)
    print(format_parameter_counts(counts))
    assert 1.5e9 < counts["base"] < 1.6e9
    assert counts["total"] < 0.10 * counts["base"]
    blocks = cognitive_blocks(model)
    assert sum(b.memory is not None for b in blocks.values()) == 7  # layers 0, 4, ..., 24
    assert sum(b.reasoning is not None for b in blocks.values()) == 14  # layers 14..27


def test_modules_file_imports_only_torch_and_transformers():
    """cognitive/model/modules.py ships alone with releases: outside a guarded try/except it imports only torch,
    transformers and the standard library."""
    tree = ast.parse((REPO / "cognitive" / "model" / "modules.py").read_text())
    guarded = {id(n) for t in ast.walk(tree) if isinstance(t, ast.Try) for n in ast.walk(t)}
    roots = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Import, ast.ImportFrom)) and id(node) not in guarded:
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
            roots |= {n.split(".")[0] for n in names}
    assert roots <= {"torch", "transformers", "__future__"} | set(sys.stdlib_module_names), roots
