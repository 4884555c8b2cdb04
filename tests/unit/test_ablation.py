"""The ablation's arms, their recipe overrides and the aggregation over seeds (cognitive/evaluation/ablation.py)."""

from __future__ import annotations

import json
import re

import pytest

from cognitive.errors import UserError
from cognitive.evaluation import ablation
from cognitive.model.inject import config_from_dict

RECIPE_BLOCK = {"working_memory": {"enabled": True, "memory_size": 512}, "reasoning_heads": {"reasoning_dim": 64}}


def test_every_arm_trains_exactly_its_modules_at_the_recipes_widths():
    for arm in ablation.ARMS[1:]:
        block = ablation.arm_modules(arm, RECIPE_BLOCK)
        parsed = config_from_dict(block)  # a block the recipe accepts
        on = {name for name in ablation.MODULE_NAMES if getattr(parsed, name).enabled}
        expected = set(ablation.MODULE_NAMES) if arm == "lora+all" else set() if arm == "lora" else {arm[5:]}
        assert on == expected, arm
        assert parsed.working_memory.memory_size == 512 and parsed.reasoning_heads.reasoning_dim == 64
    assert not config_from_dict(ablation.arm_modules("lora", None)).any_enabled


def test_arms_are_checked():
    assert ablation.parse_arms("base, lora,lora+all") == ["base", "lora", "lora+all"]
    with pytest.raises(UserError, match=re.escape("unknown arm 'lora+memory'")):
        ablation.parse_arms("lora,lora+memory")
    with pytest.raises(UserError, match="named twice"):
        ablation.parse_arms("lora,lora")


def _run(transfer, steps=None):
    return {
        "transfer": {"headline": transfer, "step_accuracy": steps},
        "plain": {"headline": 0.1, "step_accuracy": None},
    }


def test_mean_and_spread_over_seeds_and_the_verdict():
    summary = ablation.aggregate(
        {
            "base": [_run(0.09)],
            "lora": [_run(0.10, 0.5), _run(0.12, 0.7)],
            "lora+reasoning_heads": [_run(0.20), _run(0.22)],  # clear of lora's spread
            "lora+planning_module": [_run(0.11), _run(0.15)],  # overlaps it
        }
    )
    lora = summary["lora"]["transfer"]
    assert lora["mean"] == pytest.approx(0.11) and lora["spread"] == pytest.approx(0.01)
    assert lora["step_mean"] == pytest.approx(0.6) and lora["step_spread"] == pytest.approx(0.1)
    assert summary["base"]["transfer"]["spread"] == 0 and summary["lora"]["plain"]["step_mean"] is None
    assert ablation.beats(summary, "lora+reasoning_heads", "lora", "transfer")
    assert not ablation.beats(summary, "lora+planning_module", "lora", "transfer")
    touching = ablation.aggregate({"lora": [_run(1 / 30), _run(1 / 30)], "lora+all": [_run(1 / 30), _run(2 / 30)]})
    assert not ablation.beats(touching, "lora+all", "lora", "transfer")  # 0.05 - 0.0167 == 0.0333: not above
    assert ablation.verdict(summary) == "beyond the seed spread on transfer, these beat LoRA-only: lora+reasoning_heads"
    table = ablation.ablation_table(summary)
    assert "| lora+reasoning_heads | 2 | " in table and table.splitlines()[4].endswith("| transfer |")
    no_winner = {k: v for k, v in summary.items() if k != "lora+reasoning_heads"}
    assert "no arm beats LoRA-only on transfer" in ablation.verdict(no_winner)
    assert ablation.verdict(no_winner).endswith("lora+planning_module")


def test_read_run_takes_the_one_model_of_an_evaluation(tmp_path):
    path = tmp_path / "results.json"
    path.write_text(json.dumps({"suites": {"adapter:x": {"transfer": {"headline": 0.3, "step_accuracy": 0.8}}}}))
    assert ablation.read_run(path) == {"transfer": {"headline": 0.3, "step_accuracy": 0.8}}
    path.write_text(json.dumps({"suites": {"a": {}, "b": {}}}))
    with pytest.raises(UserError, match="expected the suite results of one model, found 2"):
        ablation.read_run(path)


def test_a_finished_run_is_reused_only_with_the_settings_asked_for(tmp_path):
    (tmp_path / "run_config.yaml").write_text("max_steps: 150\nresponse_style: column\narithmetic_drills: 0.25\n")
    ablation.check_reusable(tmp_path, 150, ["--response_style", "column", "--arithmetic_drills", "0.25"])
    ablation.check_reusable(tmp_path, None, [])
    with pytest.raises(UserError, match=r"finished with max_steps: 150, not 30; use another --runs"):
        ablation.check_reusable(tmp_path, 30, [])
    with pytest.raises(UserError, match=r"finished with response_style: 'column', not concise"):
        ablation.check_reusable(tmp_path, None, ["--response_style", "concise"])
    with pytest.raises(UserError, match=r"finished with max_length: None, not 1024"):
        ablation.check_reusable(tmp_path, None, ["--max_length", "1024"])


def test_train_command_carries_the_overrides_to_every_arm(tmp_path):
    argv = ablation.train_command("r.yaml", "lora", 1, tmp_path, None, 30, ["--response_style", "column"])
    assert argv[argv.index("--response_style") + 1] == "column" and argv[-2:] == ["--max_steps", "30"]
