"""GRPO's prompts (cognitive/rl/prompts.py): generated in the data config's mix from the RL seeds (disjoint from
the SFT and eval seeds), never an eval document, deterministic, in the prompt styles; or read from records."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from cognitive.data.build import DEFAULT_EVAL_DIR, load_config, plan_slots
from cognitive.data.filters import load_eval_hashes, normalized_hash
from cognitive.data.generators import EVAL_SEEDS, RL_SEEDS, TRAIN_SEEDS, generate_example
from cognitive.data.schema import CognitiveTrainingExample, write_jsonl
from cognitive.errors import UserError
from cognitive.rl.prompts import generate_prompts, record_prompts, rl_seed, rows_sha256
from cognitive.train.sft_data import DEFAULT_PROMPT_STYLES

CONFIG = "data/configs/cpu_mix.yaml"


@pytest.fixture(scope="module")
def rows():
    return generate_prompts(load_config(CONFIG), 60, DEFAULT_PROMPT_STYLES)


def test_the_rl_seeds_are_disjoint_from_training_and_eval_seeds():
    for other in (TRAIN_SEEDS, EVAL_SEEDS):
        assert RL_SEEDS.start >= other.stop or RL_SEEDS.stop <= other.start
    assert rl_seed(60, 59, 7) in RL_SEEDS
    with pytest.raises(UserError, match="outside the RL seeds"):
        rl_seed(10, 0, 0, offset=len(RL_SEEDS))


def test_prompts_follow_the_config_mix_with_rl_seeds(rows):
    config = load_config(CONFIG)
    expected = Counter((t, d) for t, d, _ in plan_slots(config, 60))
    assert Counter((r["task_type"], r["difficulty"]) for r in rows) == expected
    for row in rows:
        seed = int(row["id"].rsplit("-", 1)[1])
        assert seed in RL_SEEDS, row["id"]
        assert json.loads(row["problem_spec"])  # what the rewards score against
    assert len({r["id"] for r in rows}) == len(rows)


def test_no_prompt_is_an_eval_document_and_none_repeats(rows):
    eval_hashes = load_eval_hashes(DEFAULT_EVAL_DIR)
    assert eval_hashes
    keys = []
    for row in rows:
        _, difficulty, domain, seed = row["id"].split("-")
        example = generate_example(row["task_type"], difficulty, int(seed), domain)
        keys.append(normalized_hash(example))
    assert not set(keys) & eval_hashes
    assert len(set(keys)) == len(keys)


def test_prompts_are_deterministic_and_use_every_prompt_style(rows):
    again = generate_prompts(load_config(CONFIG), 60, DEFAULT_PROMPT_STYLES)
    assert rows_sha256(again) == rows_sha256(rows)
    with_system = sum(r["prompt"][0]["role"] == "system" for r in rows)
    assert 0 < with_system < len(rows)  # the guide style (system prompt) and the user-only styles both appear
    only_guide = generate_prompts(load_config(CONFIG), 10, {"guide": 1.0})
    assert all(r["prompt"][0]["role"] == "system" for r in only_guide)


def test_a_prompt_length_bound_too_tight_is_a_one_line_error():
    with pytest.raises(UserError, match="raise max_prompt_tokens"):
        generate_prompts(load_config(CONFIG), 3, DEFAULT_PROMPT_STYLES, fits=lambda row: False)


def test_prompts_from_records_need_a_problem_spec(tmp_path):
    examples = [generate_example("chain_of_thought", "basic", s) for s in range(3)]
    write_jsonl(examples, tmp_path / "train.jsonl")
    rows = record_prompts(str(tmp_path), DEFAULT_PROMPT_STYLES)
    assert [r["id"] for r in rows] == [e.id for e in examples]
    bare = CognitiveTrainingExample.model_validate({**examples[0].model_dump(mode="json"), "problem_spec": None})
    write_jsonl([examples[1], bare], tmp_path / "bad.jsonl")
    with pytest.raises(UserError, match=rf"bad.jsonl:2: record '{bare.id}' has no problem_spec"):
        record_prompts(str(tmp_path / "bad.jsonl"), DEFAULT_PROMPT_STYLES)


def _grpo_args(*extra):
    from cognitive.train.args import parse_grpo_args

    return parse_grpo_args(["--config", "recipes/configs/grpo_135m_cpu.yaml", "--init_from", "", *extra])


def test_task_types_and_difficulties_restrict_the_generated_prompts():
    from cognitive import tasks
    from cognitive.rl.grpo_config import resolve_grpo

    script_args, training_args, model_args = _grpo_args("--difficulties", "basic")
    shipped = script_args.task_types  # the CPU recipe's own restriction, read from its YAML
    assert shipped and set(shipped) < {t.name for t in tasks.TASK_TYPES}
    script_args.init_from, script_args.task_types = None, None
    config = resolve_grpo(script_args, training_args, model_args).data_config
    assert config.difficulty_distribution == {"basic": 1.0}
    assert config.task_distribution == load_config(CONFIG).task_distribution  # the task mix is the data config's
    rows = generate_prompts(config, 20, DEFAULT_PROMPT_STYLES)
    assert {r["difficulty"] for r in rows} == {"basic"}
    script_args.difficulties = ["basic", "advanced", "basic"]
    config = resolve_grpo(script_args, training_args, model_args).data_config
    assert config.difficulty_distribution == pytest.approx({"basic": 0.5, "advanced": 0.5})
    two = [t.name for t in tasks.TASK_TYPES[-2:]]
    script_args.task_types, script_args.difficulties = two, None
    config = resolve_grpo(script_args, training_args, model_args).data_config
    assert config.task_distribution == pytest.approx(dict.fromkeys(two, 0.5))
    assert config.difficulty_distribution == load_config(CONFIG).difficulty_distribution
    rows = generate_prompts(config, 20, DEFAULT_PROMPT_STYLES)
    assert Counter(r["task_type"] for r in rows) == dict.fromkeys(two, 10)


@pytest.mark.parametrize(
    "key, value, dataset_path, message",
    [
        (
            "difficulties",
            ["basic", "easy"],
            None,
            r"difficulties: \['easy'\]; choose from basic, intermediate, advanced",
        ),
        ("difficulties", [], None, r"difficulties: \[\]; choose from"),
        ("difficulties", ["basic"], "data/synthetic/x", "difficulties: applies to generated prompts"),
        ("task_types", ["planning", "maths"], None, r"task_types: \['maths'\]; choose from chain_of_thought, "),
        ("task_types", ["planning"], "data/synthetic/x", "task_types: applies to generated prompts"),
    ],
)
def test_bad_prompt_mixes_are_one_line_errors(key, value, dataset_path, message):
    from cognitive.rl.grpo_config import resolve_grpo

    script_args, training_args, model_args = _grpo_args()
    script_args.init_from, script_args.dataset_path = None, dataset_path
    script_args.task_types = script_args.difficulties = None  # the shipped recipe's restriction off: one key at a time
    setattr(script_args, key, value)
    with pytest.raises(UserError, match=message):
        resolve_grpo(script_args, training_args, model_args)
