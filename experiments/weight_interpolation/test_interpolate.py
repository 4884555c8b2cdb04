"""Weight-space interpolation of a run with its base (interpolate.py beside this test, the study's tool and CLI):
alpha 0 is the base and 1 the run, logits for logits; in between every LoRA update and every module's gated
contribution is alpha times the run's; what cannot be scaled that way is refused with one line."""

from __future__ import annotations

import json
from pathlib import Path

import interpolate
import pytest
import torch
import yaml
from interpolate import choose_alpha, interpolate_run, scale_gates

from cognitive.errors import UserError
from cognitive.release.merge import load_adapted
from cognitive.train.run import read_run
from tests.conftest import run_python

pytestmark = pytest.mark.usefixtures("one_thread")

MODULES = {
    "working_memory": {"enabled": True, "memory_size": 16, "update_frequency": 4},
    "reasoning_heads": {"enabled": True, "num_reasoning_heads": 2, "reasoning_dim": 32},
    "state_tracking": {"enabled": True, "num_states": 8, "state_dim": 16},
    "planning_module": {"enabled": True, "planning_horizon": 4, "action_space_size": 8},
}
SCRIPT = Path(__file__).with_name("interpolate.py")
TOKENS = torch.tensor([[5, 17, 42, 8, 23, 61, 2, 9], [11, 3, 70, 70, 4, 19, 33, 1]])


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory, tiny_model_dir):
    """A finished run dir as training leaves it: a LoRA adapter with non-zero B, cognitive modules with open gates."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from cognitive.model.inject import inject_cognitive_modules, save_cognitive_adapter
    from cognitive.model.modules import cognitive_blocks

    base_dir = tiny_model_dir("llama")
    run_dir = tmp_path_factory.mktemp("runs") / "trained"
    run_dir.mkdir()
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(base_dir, dtype=torch.float32)
    inject_cognitive_modules(model, MODULES)
    with torch.no_grad():
        for i, block in enumerate(cognitive_blocks(model).values()):
            for name, p in block.named_parameters():
                if name.endswith("gate"):
                    p.fill_(0.4 + 0.3 * i)
    save_cognitive_adapter(model, run_dir)
    lora = LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj", "down_proj"], init_lora_weights=False)
    get_peft_model(model, lora).save_pretrained(run_dir)
    (run_dir / "run_config.yaml").write_text(yaml.safe_dump({"model_name_or_path": str(base_dir)}))
    (run_dir / "run_info.json").write_text(json.dumps({"data_sha256": "abc"}))
    (run_dir / "checkpoint-2").mkdir()  # checkpoints stay behind
    return run_dir


def logits(run_dir) -> torch.Tensor:
    model, _ = load_adapted(read_run(run_dir))
    with torch.no_grad():
        return model(input_ids=TOKENS).logits


def base_logits(base_dir) -> torch.Tensor:
    from transformers import AutoModelForCausalLM

    with torch.no_grad():
        return AutoModelForCausalLM.from_pretrained(base_dir, dtype=torch.float32).eval()(input_ids=TOKENS).logits


def lora_deltas(run_dir) -> dict[str, torch.Tensor]:
    from peft.tuners.lora import LoraLayer

    model, _ = load_adapted(read_run(run_dir))
    return {n: m.get_delta_weight("default") for n, m in model.named_modules() if isinstance(m, LoraLayer)}


def gates(run_dir) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    tensors = load_file(str(run_dir / "cognitive_adapter.safetensors"))
    return {k: v.tanh() for k, v in tensors.items() if k.endswith(".gate")}


def test_alpha_one_is_the_run_and_zero_the_base(trained_run, tiny_model_dir, tmp_path):
    run = logits(trained_run)
    base = base_logits(tiny_model_dir("llama"))
    assert (run - base).abs().max() > 1e-2, "the fixture's run must differ from its base"
    one = interpolate_run(trained_run, 1.0, tmp_path / "one")
    zero = interpolate_run(trained_run, 0.0, tmp_path / "zero")
    assert torch.allclose(logits(one), run, atol=1e-6)
    assert torch.allclose(logits(zero), base, atol=1e-5)


def test_half_scales_every_lora_update_and_every_gated_contribution(trained_run, tmp_path):
    half = interpolate_run(trained_run, 0.5, tmp_path / "half")
    run_deltas, half_deltas = lora_deltas(trained_run), lora_deltas(half)
    assert run_deltas.keys() == half_deltas.keys() and len(run_deltas) == 2 * 3  # 2 layers x 3 targets
    for name, delta in run_deltas.items():
        assert delta.abs().max() > 0, name
        torch.testing.assert_close(half_deltas[name], 0.5 * delta, atol=1e-7, rtol=1e-5)
    run_gates, half_gates = gates(trained_run), gates(half)
    assert len(run_gates) == len(MODULES)  # one gate per module
    for name, value in run_gates.items():
        torch.testing.assert_close(half_gates[name], 0.5 * value, atol=1e-7, rtol=1e-5)
    # the run dir: what it came from recorded, the data hash kept, no checkpoints copied
    info = json.loads((half / "run_info.json").read_text())
    assert info["interpolated"]["alpha"] == 0.5 and info["data_sha256"] == "abc"
    assert not (half / "checkpoint-2").exists() and read_run(half).has_modules


def test_the_recipe_refuses_what_it_cannot_interpolate(trained_run, tmp_path, capsys):
    def refused(argv, message, subprocess=False):  # in this process (a Python start costs ~10 s), the first as a CLI
        if subprocess:
            result = run_python([str(SCRIPT), *map(str, argv)])
            code, stderr = result.returncode, result.stderr
        else:
            with pytest.raises(SystemExit) as exit_:
                interpolate.main(list(map(str, argv)))
            code, stderr = exit_.value.code, capsys.readouterr().err
        assert code == 2, stderr[-2000:]
        assert stderr.strip().splitlines()[-1] == f"error: {message}"

    out = tmp_path / "out"
    refused(
        ["--run", trained_run, "--alpha", "1.5", "--out", out],
        "--alpha 1.5: must be between 0 (the base) and 1 (the run)",
        subprocess=True,
    )
    refused(
        ["--run", trained_run, "--alpha", "0.5", "--out", trained_run],
        f"--out {trained_run} is the run itself; write the interpolated run elsewhere",
    )
    dora = tmp_path / "dora"
    dora.mkdir()
    for path in trained_run.iterdir():
        if path.is_file():
            (dora / path.name).write_bytes(path.read_bytes())
    config = json.loads((dora / "adapter_config.json").read_text())
    (dora / "adapter_config.json").write_text(json.dumps({**config, "use_dora": True}))
    refused(
        ["--run", dora, "--alpha", "0.5", "--out", out],
        f"{dora / 'adapter_config.json'}: use_dora is set: DoRA's magnitude vectors cannot be interpolated by "
        "scaling lora_B",
    )
    assert not out.exists() and not (tmp_path / "out.partial").exists()
    out.mkdir()
    refused(["--run", trained_run, "--alpha", "0.5", "--out", out], f"{out} exists (pass --overwrite to replace it)")
    assert list(out.iterdir()) == []
    (out / "notes.txt").write_text("mine")
    refused(
        ["--run", trained_run, "--alpha", "0.5", "--out", out, "--overwrite"],
        f"{out} was not written by cognitive-slm (it holds notes.txt; no .cognitive-slm.json); refusing to replace it: "
        "choose another path or move it away yourself",
    )
    assert [p.name for p in out.iterdir()] == ["notes.txt"]


def test_overwrite_replaces_an_interpolated_run(trained_run, tmp_path):
    from cognitive.atomic import written_as

    out = interpolate_run(trained_run, 1.0, tmp_path / "wise")
    (out / "stale.txt").write_text("from alpha 1")
    interpolate_run(trained_run, 0.5, out, overwrite=True)
    assert not (out / "stale.txt").exists() and written_as(out) == "run"
    assert json.loads((out / "run_info.json").read_text())["interpolated"]["alpha"] == 0.5


def test_scaling_a_saturated_gate_keeps_it_finite():
    tensors = {"layers.0.working_memory.gate": torch.tensor([30.0]), "layers.0.working_memory.w": torch.ones(2)}
    for alpha in (1.0, 0.99, 0.5):
        scaled = scale_gates(tensors, alpha)
        assert torch.isfinite(scaled["layers.0.working_memory.gate"]).all(), alpha
        torch.testing.assert_close(scaled["layers.0.working_memory.gate"].tanh(), torch.tensor([alpha]))
    with pytest.raises(UserError, match="holds no"):
        scale_gates({"w": torch.ones(1)}, 0.5)


def test_the_rule_takes_the_best_mean_and_the_larger_alpha_on_a_tie():
    assert choose_alpha({0.25: [0.1, 0.3], 0.5: [0.3, 0.2], 1.0: [0.0, 0.4]}) == 0.5
    assert choose_alpha({0.25: [0.2, 0.2], 0.5: [0.1, 0.3], 0.75: [0.0, 0.1]}) == 0.5  # tie: the larger
    assert choose_alpha({1.0: [0.0]}) == 1.0
    with pytest.raises(UserError, match="at least one score"):
        choose_alpha({0.5: []})
