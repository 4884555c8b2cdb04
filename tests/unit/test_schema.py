"""The guide's record format: its examples load unchanged, configs validate, bad input is one clear error."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cognitive.data.response import FINAL_ANSWER_MARKER
from cognitive.data.schema import (
    CognitiveTrainingExample,
    DatasetConfiguration,
    DatasetSplit,
    iter_jsonl,
    parse_example,
    write_jsonl,
)
from cognitive.errors import UserError

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((ROOT / "data/examples").glob("*.json"))
CONFIGS = sorted((ROOT / "data/configs").glob("*.yaml"))


def test_the_three_guide_examples_load():
    assert [p.stem for p in EXAMPLES] == ["cot_math_001", "memory_logic_001", "plan_cooking_001"]
    for path in EXAMPLES:
        (example,) = list(iter_jsonl(path))
        assert example.id == path.stem


def test_cot_math_001_round_trips_unchanged():
    raw = json.loads((ROOT / "data/examples/cot_math_001.json").read_text())
    example = CognitiveTrainingExample.model_validate(raw)
    dumped = json.loads(example.model_dump_json(exclude_none=True))
    assert dumped == raw
    again = CognitiveTrainingExample.model_validate_json(example.model_dump_json())
    assert again == example


def test_training_format_has_the_guides_layout():
    example = next(iter_jsonl(ROOT / "data/examples/plan_cooking_001.json"))
    fmt = example.to_training_format()
    system, user, assistant = fmt["messages"]
    assert [m["role"] for m in fmt["messages"]] == ["system", "user", "assistant"]
    assert "Task Type: planning" in system["content"] and "Difficulty: intermediate" in system["content"]
    assert "Constraints: Oven can only cook one dish at a time;" in system["content"]
    assert user["content"].startswith("Context: You need to prepare") and "\n\nInstruction: " in user["content"]
    body = assistant["content"]
    assert body.index("**Reasoning Process:**") < body.index("**Planning Steps:**") < body.index(FINAL_ANSWER_MARKER)
    assert "State: planning → prep_dessert" in body
    assert fmt["metadata"] == {
        "task_type": "planning",
        "difficulty": "intermediate",
        "domain": "cooking",
        "quality_score": 0.85,
    }


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_every_shipped_data_config_parses(path):
    config = DatasetConfiguration.from_yaml(path)
    assert config.target_size > 0


def _config(tmp_path, **changes) -> Path:
    raw = {
        "target_size": 10,
        "task_distribution": {"chain_of_thought": 1.0},
        "difficulty_distribution": {"basic": 1.0},
        "domain_distribution": {"cooking": 1.0},
    }
    raw.update(changes)
    path = tmp_path / "c.yaml"
    import yaml

    path.write_text(yaml.safe_dump(raw))
    return path


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"task_distribution": {"chain_of_thought": 0.5, "planning": 0.4}}, "task_distribution"),
        ({"difficulty_distribution": {"basic": 1.2}}, "must sum to 1"),
        ({"task_distribution": {"telepathy": 1.0}}, "task_distribution.telepathy"),
        ({"difficulty_distribution": {"impossible": 1.0}}, "difficulty_distribution.impossible"),
        ({"split": {"train_ratio": 0.9, "val_ratio": 0.2, "test_ratio": 0.1}}, "sum to 1"),
        ({"unknown_key": 1}, "unknown_key"),
        ({"length_style": "terse"}, "key 'length_style': Value error, unknown response style 'terse'"),
    ],
)
def test_bad_configs_are_one_line_errors_naming_the_file(tmp_path, changes, message):
    path = _config(tmp_path, **changes)
    with pytest.raises(UserError) as e:
        DatasetConfiguration.from_yaml(path)
    assert str(path) in str(e.value) and message in str(e.value) and "\n" not in str(e.value)


def test_split_defaults_sum_to_one():
    assert DatasetSplit().train_ratio == 0.8


def test_malformed_jsonl_line_names_file_and_line(tmp_path):
    good = next(iter_jsonl(ROOT / "data/examples/cot_math_001.json"))
    path = tmp_path / "x.jsonl"
    write_jsonl([good, good], path)
    lines = path.read_text().splitlines()
    path.write_text("\n".join([lines[0], '{"id": "broken", ', lines[1]]) + "\n")
    with pytest.raises(UserError, match=r"x\.jsonl:2: not valid JSON"):
        list(iter_jsonl(path))
    with pytest.raises(UserError, match=r"<rec>: key 'task_type'"):
        parse_example(lines[0].replace('"chain_of_thought"', '"telepathy"'), "<rec>")


def test_the_jsonl_reader_names_file_and_line_of_every_bad_line(tmp_path, monkeypatch):
    """cognitive.errors.read_jsonl, the one reader of JSONL inputs: line numbers count every line (blank ones too),
    a BOM is allowed, and anything that is not a JSON object per line is one line naming file and line."""
    import cognitive.errors as errors

    good = next(iter_jsonl(ROOT / "data/examples/cot_math_001.json")).model_dump_json(exclude_none=True)
    path = tmp_path / "x.jsonl"
    path.write_bytes(b"\xef\xbb\xbf" + good.encode() + b"\n\n  \n" + good.encode() + b"\n")
    assert [where for where, _ in errors.read_jsonl(path)] == [f"{path}:1", f"{path}:4"]
    assert len(list(iter_jsonl(path))) == 2
    bad_lines = {
        b"\xff\xfe{}": "not valid UTF-8 (byte 0xff at byte 1 of the line)",
        b'"a string"': "a string where a record (a JSON object) belongs",
        b"null": "null where a record (a JSON object) belongs",
        b"3.5": "a number where a record (a JSON object) belongs",
        b"[" * 100_000: "not valid JSON (nested too deeply)",
        b'{"id": 1,}': "not valid JSON (Expecting property name enclosed in double quotes at column 10)",
        b'{"id": "x"}': "key 'task_type': Field required",
    }
    for line, message in bad_lines.items():
        path.write_bytes(b"\n" + line + b"\n")
        with pytest.raises(UserError) as refused:
            list(iter_jsonl(path))
        assert str(refused.value).startswith(f"{path}:2: {message}"), (line[:20], str(refused.value))
    monkeypatch.setattr(errors, "MAX_LINE_BYTES", 2**20)  # a line over it is never read whole
    path.write_bytes(b"\n" + b"x" * (2**20 + 1) + b"\n")
    with pytest.raises(UserError, match=r"x\.jsonl:2: the line is over 1 MiB; no record is that long"):
        list(iter_jsonl(path))
    for missing, message in ((tmp_path / "nope.jsonl", "file not found"), (tmp_path, "a directory, not a JSONL file")):
        with pytest.raises(UserError, match=message):
            list(iter_jsonl(missing))
    path.write_bytes(b"")
    assert list(iter_jsonl(path)) == []  # empty: the caller says whether that is an error
