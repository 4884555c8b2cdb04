"""recipes/grpo.py end to end on tiny random-init models: two GRPO steps train only LoRA and the cognitive modules,
checkpoints resume to the uninterrupted run's weights, `--init_from` continues a finished SFT run (adapter and
modules) and the GRPO run merges like an SFT run; bad input is a one-line error that leaves nothing behind.

A random-init model never earns the real rewards (every completion scores 0, so every advantage is 0 and nothing
would train), so the training tests swap the registry's `correctness` for a reward that varies with the completion's
length; the real rewards are tested in tests/unit/test_rewards.py. Tolerance of the resume check: 1e-5 (fp32 CPU,
same seeds: generation after the resume samples what the uninterrupted run sampled)."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
from safetensors.torch import load_file

from cognitive.model.inject import COGNITIVE_CONFIG, COGNITIVE_WEIGHTS
from cognitive.rl import rewards
from cognitive.train import heap
from tests.conftest import ROOT, TINY_MODULES, tiny_recipe
from tests.integration.test_bad_input import assert_one_line_error

GRPO_RECIPE = ROOT / "recipes/configs/grpo_135m_cpu.yaml"
TINY_GRPO = {
    "max_steps": 2,
    "per_device_train_batch_size": 4,
    "num_generations": 2,
    "max_completion_length": 12,
    "num_prompts": 8,
    "max_prompt_tokens": 400,
    "learning_rate": 1e-2,
    "logging_steps": 1,
    "save_steps": 2,
    "report_to": "none",
}


def length_reward(completions, **kwargs):
    """A reward with a spread for a random model: longer completions (in characters) score more."""
    return [len(rewards.completion_text(c)) / 100 for c in completions]


@pytest.fixture
def varied_reward(monkeypatch):
    monkeypatch.setitem(rewards.REWARDS, "correctness", length_reward)


def grpo_argv(model_dir, output_dir, **overrides) -> list[str]:
    args = {"model_name_or_path": model_dir, "output_dir": output_dir, **TINY_GRPO, **overrides}
    argv = ["--config", str(GRPO_RECIPE)]
    for key, value in args.items():
        if isinstance(value, list):
            argv += [f"--{key}", *map(str, value)]
            continue
        argv += [
            f"--{key}",
            value if isinstance(value, str) else json.dumps(value) if isinstance(value, dict) else str(value),
        ]
    return argv


def grpo(argv):
    import recipes.grpo
    from cognitive.train.args import parse_grpo_args

    return recipes.grpo.main(*parse_grpo_args(argv))


def sft_run(model_dir, data_dir, output_dir, modules=True):
    import recipes.sft as sft
    from cognitive.train.args import parse_sft_args

    script_args, training_args, model_args = parse_sft_args(tiny_recipe(model_dir, data_dir, output_dir, max_steps=2))
    script_args.cognitive_modules = TINY_MODULES if modules else None
    sft.main(script_args, training_args, model_args)
    return output_dir


def test_two_grpo_steps_train_only_lora_and_the_modules(varied_reward, tiny_model_dir, tmp_path):
    model_dir = tiny_model_dir("qwen2")
    run_dir = tmp_path / "run"
    trainer = grpo(grpo_argv(model_dir, run_dir, cognitive_modules=TINY_MODULES, cpu_heap_trim_mb=1))
    if heap._MALLOC_TRIM is not None:  # the recipe's cpu_heap_trim_mb reaches GRPO's decoder layers too
        assert trainer.heap_trimmer.calls > 0

    base = load_file(model_dir / "model.safetensors")
    lora_b = checked_base = 0
    for name, param in trainer.model.named_parameters():
        if "lora_B" in name:
            lora_b += 1
            assert param.detach().abs().sum() > 0, f"{name} did not change from its zero init"
        elif "lora_" not in name and ".cognitive." not in name:
            key = name.removeprefix("base_model.model.").replace(".base_layer", "")
            if key in base:
                saved = base[key].to(param.dtype)  # the recipe's base is bf16: the saved fp32 weights as it loads them
                torch.testing.assert_close(param.detach().cpu(), saved, rtol=0, atol=0, msg=f"{key} changed")
                checked_base += 1
    assert lora_b >= 7 * 2 and checked_base >= len(base) - 1
    gates = {k: v for k, v in load_file(run_dir / COGNITIVE_WEIGHTS).items() if k.endswith("gate")}
    assert gates and any(v.abs().sum() > 0 for v in gates.values()), "the modules' gates (zero at init) did not train"

    for name in (
        "adapter_model.safetensors",
        COGNITIVE_WEIGHTS,
        COGNITIVE_CONFIG,
        "run_config.yaml",
        "run_info.json",
        "log_history.json",
        "reward_curves.png",
    ):
        assert (run_dir / name).exists(), name
    assert not (tmp_path / "run.partial").exists()
    history = json.loads((run_dir / "log_history.json").read_text())
    logged = [e for e in history if "reward" in e]
    assert [e["step"] for e in logged] == [1, 2]
    assert all("rewards/length_reward/mean" in e and "completions/mean_length" in e for e in logged)
    info = json.loads((run_dir / "run_info.json").read_text())
    assert len(info["data"]["sha256"]) == 64 and info["data"]["files"] == []


def test_resume_continues_to_the_uninterrupted_runs_weights(varied_reward, tiny_model_dir, tmp_path):
    model_dir = tiny_model_dir("llama")
    steps = dict(max_steps=4, save_steps=2, save_total_limit=2, cognitive_modules=TINY_MODULES)
    reference = tmp_path / "reference"
    grpo(grpo_argv(model_dir, reference, **steps))
    at_2, at_4 = (load_file(reference / f"checkpoint-{s}" / "adapter_model.safetensors") for s in (2, 4))
    assert any(not torch.equal(at_2[k], at_4[k]) for k in at_2), "LoRA did not train between the checkpoints"

    resumed = tmp_path / "resumed"
    shutil.copytree(reference / "checkpoint-2", tmp_path / "resumed.partial" / "checkpoint-2")
    for name in ("run_config.yaml", "run_info.json"):  # written when the cut-off run started
        text = (reference / name).read_text().replace(str(reference), str(resumed))
        (tmp_path / "resumed.partial" / name).write_text(text)
    trainer = grpo(grpo_argv(model_dir, resumed, **steps))
    assert trainer.state.global_step == 4
    for weights in ("adapter_model.safetensors", COGNITIVE_WEIGHTS):
        expected, got = load_file(reference / weights), load_file(resumed / weights)
        assert expected.keys() == got.keys()
        for key in expected:
            torch.testing.assert_close(got[key], expected[key], rtol=1e-5, atol=1e-5, msg=f"{weights}: {key}")


def test_init_from_continues_the_sft_run_and_merges(varied_reward, tiny_model_dir, cot_data_dir, tmp_path):
    from cognitive.release.merge import merge_run

    model_dir = tiny_model_dir("llama")
    sft = sft_run(model_dir, cot_data_dir, tmp_path / "sft")
    # learning rate 0: the GRPO run ends exactly where it started, which must be the SFT run's adapter and modules
    still = grpo(grpo_argv(model_dir, tmp_path / "still", init_from=str(sft), learning_rate=0.0, max_steps=1))
    for weights in ("adapter_model.safetensors", COGNITIVE_WEIGHTS):
        expected, got = load_file(sft / weights), load_file(tmp_path / "still" / weights)
        assert expected.keys() == got.keys(), weights
        for key in expected:
            torch.testing.assert_close(got[key], expected[key], rtol=0, atol=0, msg=f"{weights}: {key}")
    assert still.model.peft_config["default"].r == json.loads((sft / "adapter_config.json").read_text())["r"]

    grpo_dir = tmp_path / "grpo"
    grpo(grpo_argv(model_dir, grpo_dir, init_from=str(sft)))
    before, after = load_file(sft / "adapter_model.safetensors"), load_file(grpo_dir / "adapter_model.safetensors")
    assert any(not torch.equal(before[k], after[k]) for k in before), "GRPO did not move the SFT adapter"
    report = merge_run(grpo_dir, tmp_path / "release")
    assert report.cognitive_modules is not None and report.max_abs_logit_diff <= report.tolerance


# What broke the old readers of model output (tests/unit/test_fuzz_readers.py): parentheses nested 2000 deep, a run
# of 5000 minus signs, a 6000-digit number, 500 final-answer lines, a long run of blank space.
ADVERSARIAL = (
    ("(" * 2000 + "1" + ")" * 2000 + " = 1\n" + "-" * 5000 + "7 = 7\n" + "Final Answer: " + "9" * 6000 + "\n")
    + "**Final Answer:** 3\n" * 500
    + " " * 20_000
    + "\n" * 5_000
)


def test_a_step_completes_when_a_completion_is_adversarial(tiny_model_dir, tmp_path, monkeypatch):
    """One completion of each batch replaced by ADVERSARIAL before the rewards see it (as TRL passes it, a
    conversational message): every reward of the registry scores it within its range and the step completes. (The run
    replaces a finished run of this project with --overwrite true on the way.)"""
    import functools

    from cognitive.atomic import publish_dir, staging_dir, written_as

    scored = []

    def injected(reward):
        @functools.wraps(reward)  # TRL logs each reward by its function's name
        def with_adversarial(completions, **kwargs):
            completions = [[{"role": "assistant", "content": ADVERSARIAL}], *completions[1:]]
            values = reward(completions, **kwargs)
            scored.append((reward.__name__, kwargs["task_type"][0], values[0]))
            return values

        return with_adversarial

    for name, reward in list(rewards.REWARDS.items()):
        monkeypatch.setitem(rewards.REWARDS, name, injected(reward))
    names = list(rewards.REWARDS)
    run_dir = tmp_path / "run"
    previous = staging_dir(tmp_path / "previous", kind="run")  # a finished run of ours in the way: --overwrite
    (previous / "stale.txt").write_text("a file of the previous run")
    publish_dir(previous, run_dir)
    argv = grpo_argv(
        tiny_model_dir("llama"), run_dir, max_steps=1, reward_funcs=names, reward_weights=[1.0] * len(names)
    )
    trainer = grpo([*argv, "--overwrite", "true"])
    assert trainer.state.global_step == 1 and (run_dir / "adapter_model.safetensors").exists()
    assert not (run_dir / "stale.txt").exists() and written_as(run_dir) == "run"
    assert {name for name, _, _ in scored} == {reward.__name__ for reward in rewards.REWARDS.values()}
    for name, task_type, value in scored:
        assert value is None or 0.0 <= value <= 1.0, (name, task_type, value)
    logged = json.loads((run_dir / "log_history.json").read_text())[0]
    assert all(f"rewards/{name}/mean" in logged for name, _, _ in scored)


def run_cli(argv, capsys) -> tuple[int, str]:
    import recipes.grpo

    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_info:
        recipes.grpo.cli(argv)
    return exit_info.value.code, capsys.readouterr().err


@pytest.mark.parametrize(
    "overrides, needle",
    [
        ({"reward_funcs": "accuracy"}, "reward_funcs: unknown reward 'accuracy'"),
        ({"reward_weights": "1.0"}, "reward_weights: 1 weight(s) [1.0] for 4 reward_funcs"),
        ({"per_device_train_batch_size": 3}, "generation_batch_size (3) must be divisible by num_generations (2)"),
        ({"init_from": "NOWHERE"}, "init_from: run dir NOWHERE does not exist"),
        ({"beta": 0.04, "cognitive_modules": TINY_MODULES}, "beta: 0.04 needs a frozen reference model"),
    ],
)
def test_bad_input_is_one_line_and_leaves_nothing(overrides, needle, tiny_model_dir, tmp_path, capsys):
    out = tmp_path / "run"
    argv = grpo_argv(tiny_model_dir("llama"), out, **overrides)
    if overrides.get("init_from") == "NOWHERE":
        argv[argv.index("NOWHERE")] = str(tmp_path / "NOWHERE")
        needle = f"init_from: run dir {tmp_path / 'NOWHERE'} does not exist"
    code, stderr = run_cli(argv, capsys)
    assert_one_line_error(code, stderr, needle)
    assert not out.exists() and not (tmp_path / "run.partial").exists()


def test_init_from_an_unfinished_run_or_another_base_is_refused(tiny_model_dir, cot_data_dir, tmp_path, capsys):
    (tmp_path / "sft.partial" / "checkpoint-1").mkdir(parents=True)  # a run still training (or cut off)
    code, stderr = run_cli(grpo_argv(tiny_model_dir("llama"), tmp_path / "a", init_from=str(tmp_path / "sft")), capsys)
    assert_one_line_error(code, stderr, f"init_from: {tmp_path / 'sft'} has not finished")

    sft = sft_run(tiny_model_dir("llama"), cot_data_dir, tmp_path / "llama-sft", modules=False)
    code, stderr = run_cli(grpo_argv(tiny_model_dir("qwen2"), tmp_path / "b", init_from=str(sft)), capsys)
    assert_one_line_error(code, stderr, f"was trained on '{tiny_model_dir('llama')}'")
    for leftover in ("a", "a.partial", "b", "b.partial"):
        assert not (tmp_path / leftover).exists(), leftover
