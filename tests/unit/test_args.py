"""The config mechanism: every shipped recipe parses; unknown keys and bad YAML are one-line errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from cognitive.errors import UserError
from cognitive.train.args import parse_sft_args

ROOT = Path(__file__).resolve().parents[2]
RECIPES = sorted((ROOT / "recipes/configs").glob("*.yaml"))
DS_CONFIGS = sorted((ROOT / "ds_configs").glob("*.json"))
NO_GPU = ["--bf16", "false", "--tf32", "false"]  # GPU recipes are parsed here as they would be on a GPU otherwise


@pytest.mark.parametrize("recipe", RECIPES, ids=lambda p: p.name)
def test_every_recipe_builds_its_arguments(recipe, tmp_path):
    from cognitive.rl.grpo_config import resolve_grpo
    from cognitive.train.args import GRPOScriptArguments, parser_for
    from cognitive.train.sft_config import resolve_sft

    script_args, training_args, model_args = parser_for(recipe)(
        ["--config", str(recipe), *NO_GPU, "--output_dir", str(tmp_path / "run")]
    )
    assert model_args.model_name_or_path
    assert training_args.learning_rate > 0 and training_args.output_dir == str(tmp_path / "run")
    if isinstance(script_args, GRPOScriptArguments):  # a GRPO recipe: rewards, weights and its data config resolve
        resolved = resolve_grpo(script_args, training_args, model_args, estimate_only=True)
        assert len(resolved.rewards) == len(training_args.reward_weights) == len(script_args.reward_funcs)
        assert training_args.generation_batch_size % training_args.num_generations == 0
        assert resolved.data_config.target_size > 0
    elif script_args.cognitive_modules is not None:
        script_args.dataset_path = str(ROOT / "data/examples/cot_math_001.json")  # generated data may not exist
        assert resolve_sft(script_args, training_args, model_args, estimate_only=True).modules.any_enabled


@pytest.mark.parametrize("ds_config", DS_CONFIGS, ids=lambda p: p.name)
def test_every_deepspeed_config_builds_training_arguments(ds_config, tmp_path):
    from cognitive.train.preflight import check_deepspeed_matches

    _, training_args, model_args = parse_sft_args(
        ["--config", str(ROOT / "recipes/configs/cognitive_1.5b.yaml"), *NO_GPU, "--ds", str(ds_config)]
    )
    ds = training_args.hf_deepspeed_config.config
    assert ds["zero_optimization"]["offload_optimizer"]["device"] == "cpu"
    assert ds["train_micro_batch_size_per_gpu"] == training_args.per_device_train_batch_size  # "auto" filled
    assert ds["gradient_accumulation_steps"] == training_args.gradient_accumulation_steps
    check_deepspeed_matches(ds, training_args, model_args)  # the recipe and the JSON agree


def test_a_cpu_recipe_with_deepspeed_needs_the_launcher():
    """Without the deepspeed launcher a use_cpu recipe would train without DeepSpeed, ignoring --ds: one line (the
    launcher's command trains it under ZeRO: tests/integration/test_deepspeed.py)."""
    from cognitive.train.preflight import check_training

    script_args, training_args, model_args = parse_sft_args(
        ["--config", str(ROOT / "recipes/configs/demo_cpu.yaml"), "--ds", "ds_configs/zero2_3090ti.json"]
    )
    assert training_args.use_cpu
    with pytest.raises(UserError, match=r"use_cpu: true trains without DeepSpeed .* launch with deepspeed"):
        check_training(script_args, training_args, model_args)


def test_cli_overrides_yaml():
    _, training_args, model_args = parse_sft_args(
        ["--config", str(ROOT / "recipes/configs/demo_cpu.yaml"), "--max_steps", "7", "--lora_r", "4"]
    )
    assert training_args.max_steps == 7 and model_args.lora_r == 4


def test_ds_is_an_alias_of_deepspeed(tmp_path):
    ds = tmp_path / "ds.json"
    ds.write_text('{"train_micro_batch_size_per_gpu": "auto", "zero_optimization": {"stage": 2}}')
    for argv in (["--ds", str(ds)], [f"--ds={ds}"]):
        _, training_args, _ = parse_sft_args(["--config", str(ROOT / "recipes/configs/demo_cpu.yaml"), *argv])
        assert training_args.deepspeed == str(ds)


@pytest.mark.parametrize(
    "yaml_text, message",
    [
        ("learning_rate: 0.1\nlerning_rate: 0.2\n", "unknown key(s) lerning_rate"),
        ("learning_rate: [0.1\n", "not valid YAML"),
        ("- a list\n", "must be a YAML mapping"),
    ],
)
def test_bad_yaml_is_a_user_error(tmp_path, yaml_text, message):
    path = tmp_path / "r.yaml"
    path.write_text(yaml_text)
    with pytest.raises(UserError, match=message.replace("(", r"\(").replace(")", r"\)")) as err:
        parse_sft_args(["--config", str(path)])
    assert str(path) in str(err.value) and "\n" not in str(err.value)


def test_unknown_cli_option():
    with pytest.raises(UserError, match="unknown command-line option"):
        parse_sft_args(["--config", str(ROOT / "recipes/configs/demo_cpu.yaml"), "--no_such_flag", "1"])


def test_grpo_refuses_checkpointing_every_nth_layer():
    """TRL's GRPOTrainer would hand every_n_layers to torch.utils.checkpoint after its first generation."""
    from cognitive.train.args import parse_grpo_args

    recipe = ["--config", str(ROOT / "recipes/configs/grpo_135m_cpu.yaml")]
    with pytest.raises(UserError, match="every_n_layers is for SFT recipes"):
        parse_grpo_args([*recipe, "--gradient_checkpointing_kwargs", '{"every_n_layers": 2}'])
    assert parse_grpo_args([*recipe, "--gradient_checkpointing_kwargs", '{"every_n_layers": 1}'])


def resolve(argv: list[str]):
    """The SFT recipe's arguments checked and resolved (cognitive/train/sft_config.py), without its data."""
    from cognitive.train.sft_config import resolve_sft

    return resolve_sft(*parse_sft_args(argv), estimate_only=True)


def test_cpu_heap_trim_is_a_size_or_off():
    recipe = str(ROOT / "recipes/configs/demo_cpu.yaml")
    assert resolve(["--config", recipe, "--cpu_heap_trim_mb", "256"]).script.cpu_heap_trim_mb == 256
    assert resolve(["--config", recipe, "--cpu_heap_trim_mb", "0"]).script.cpu_heap_trim_mb == 0
    for value in ("-1", "-5"):
        with pytest.raises(UserError, match=f"cpu_heap_trim_mb: {value}; a number of MiB, or 0"):
            resolve(["--config", recipe, "--cpu_heap_trim_mb", value])


def test_cpu_heap_trim_in_a_yaml(tmp_path):
    """null (what run_config.yaml held when unset meant off) is off; a YAML boolean is a one-line error."""
    text = (ROOT / "recipes/configs/demo_cpu.yaml").read_text()
    assert "cpu_heap_trim_mb: 512\n" in text
    for value, expected in (("null", 0), ("1024", 1024), ("true", None)):
        config = tmp_path / f"trim_{value}.yaml"
        config.write_text(text.replace("cpu_heap_trim_mb: 512\n", f"cpu_heap_trim_mb: {value}\n"))
        if expected is None:
            with pytest.raises(UserError, match="cpu_heap_trim_mb: True; a number of MiB, or 0"):
                resolve(["--config", str(config)])
        else:
            assert resolve(["--config", str(config)]).script.cpu_heap_trim_mb == expected


# keys the demo recipe may set differently from the ablation's recipe (it is that recipe's best arm: LoRA only)
# gradient_checkpointing_kwargs: every 2nd layer for LoRA only (under 4 GB at 4 x 1024), every layer with the modules
# (their activations double it): experiments/cpu_speed/README.md; the same numbers either way
DEMO_DIFFERS_IN = {"cognitive_modules", "output_dir", "max_steps", "save_steps", "gradient_checkpointing_kwargs"}


def test_the_demo_recipe_is_the_ablation_recipe_without_modules():
    import yaml

    demo = yaml.safe_load((ROOT / "recipes/configs/demo_cpu.yaml").read_text())
    ablation = yaml.safe_load((ROOT / "recipes/configs/cognitive_135m_cpu.yaml").read_text())
    differ = {k for k in demo.keys() | ablation.keys() if demo.get(k) != ablation.get(k)}
    assert differ <= DEMO_DIFFERS_IN, sorted(differ - DEMO_DIFFERS_IN)
    assert "cognitive_modules" not in demo


def test_cognitive_modules_override_from_the_command_line():
    """A dict-valued recipe key takes JSON on the command line (as TrainingArguments' dict options do)."""
    recipe = "recipes/configs/cognitive_135m_cpu.yaml"
    script_args, _, _ = parse_sft_args(["--config", recipe])
    assert script_args.cognitive_modules["reasoning_heads"]["reasoning_dim"] == 64  # the YAML mapping
    script_args, _, _ = parse_sft_args(
        ["--config", recipe, "--cognitive_modules", '{"working_memory": {"enabled": false}}']
    )
    assert script_args.cognitive_modules == {"working_memory": {"enabled": False}}
    with pytest.raises(UserError, match="--cognitive_modules: not valid JSON"):
        parse_sft_args(["--config", recipe, "--cognitive_modules", "{working_memory: off}"])
    with pytest.raises(UserError, match="--cognitive_modules: expected a JSON object"):
        parse_sft_args(["--config", recipe, "--cognitive_modules", "[1, 2]"])


def test_style_settings_from_yaml_and_cli(tmp_path):
    """prompt_styles: a YAML mapping, or on the command line JSON or one style's name; checked when resolved."""
    recipe = str(ROOT / "recipes/configs/demo_cpu.yaml")
    data = ["--dataset_path", str(ROOT / "data/examples/cot_math_001.json")]
    run = resolve(["--config", recipe, *data])
    assert run.script.prompt_styles is None and run.script.response_style == "concise"  # the recipe's
    assert run.prompt_styles == {"guide": 1.0, "user": 1.0, "question": 1.0}
    argv = ["--config", recipe, *data, "--prompt_styles", '{"user": 3, "guide": 1}', "--response_style", "guide"]
    run = resolve(argv)
    assert run.prompt_styles == {"user": 3.0, "guide": 1.0}
    assert run.script.response_style == "guide"
    assert resolve(["--config", recipe, *data, "--prompt_styles", "question"]).prompt_styles == {"question": 1.0}
    with pytest.raises(UserError, match="prompt_styles: unknown style 'chat'"):
        resolve(["--config", recipe, *data, "--prompt_styles", '{"chat": 1}'])
    with pytest.raises(UserError, match="--prompt_styles: not valid JSON"):
        parse_sft_args(["--config", recipe, *data, "--prompt_styles", '{"user": }'])


@pytest.mark.parametrize("value", ["-0.1", "1", "1.5"])
def test_arithmetic_drills_is_a_share_below_one(value):
    recipe = str(ROOT / "recipes/configs/demo_cpu.yaml")
    with pytest.raises(UserError, match=f"arithmetic_drills: {float(value)!r}; a share of the training rows"):
        resolve(["--config", recipe, "--arithmetic_drills", value])
    assert resolve(["--config", recipe, "--arithmetic_drills", "0.2"]).script.arithmetic_drills == 0.2


@pytest.mark.parametrize("value", ["-0.1", "1"])
def test_practice_problems_is_a_share_below_one_and_leaves_room_for_the_records(value):
    recipe = str(ROOT / "recipes/configs/demo_cpu.yaml")
    with pytest.raises(UserError, match=f"practice_problems: {float(value)!r}; a share of the training rows"):
        resolve(["--config", recipe, "--practice_problems", value])
    with pytest.raises(UserError, match=r"arithmetic_drills \+ practice_problems: 0.5 \+ 0.5; together"):
        resolve(["--config", recipe, "--practice_problems", "0.5", "--arithmetic_drills", "0.5"])
    script = resolve(["--config", recipe, "--practice_problems", "0.3", "--arithmetic_drills", "0.2"]).script
    assert (script.practice_problems, script.arithmetic_drills) == (0.3, 0.2)


@pytest.mark.parametrize(
    "fast_bf16, extra, bf16, dtype",
    [
        (True, [], True, "bfloat16"),  # AMX / AVX512-BF16: the recipe as written
        (False, [], False, "float32"),  # emulated bf16: fp32, said in one line
        (False, ["--cpu_precision", "recipe"], True, "bfloat16"),  # the user keeps the recipe's bf16
        (False, ["--bf16", "false"], False, "bfloat16"),  # no autocast asked for: nothing to change
    ],
)
def test_cpu_precision_follows_the_cpu(monkeypatch, capsys, fast_bf16, extra, bf16, dtype):
    monkeypatch.setattr("cognitive.model.base.cpu_has_fast_bf16", lambda: fast_bf16)
    recipe = str(ROOT / "recipes/configs/demo_cpu.yaml")
    _, training_args, model_args = parse_sft_args(["--config", recipe, *extra])
    assert (training_args.bf16, model_args.dtype) == (bf16, dtype)
    said = "no native bf16 matmuls" in capsys.readouterr().out
    assert said == (not fast_bf16 and not extra)


def test_cpu_precision_is_auto_or_recipe():
    recipe = str(ROOT / "recipes/configs/demo_cpu.yaml")
    with pytest.raises(UserError, match="cpu_precision: expected one of auto, recipe"):
        parse_sft_args(["--config", recipe, "--cpu_precision", "fp16"])
