"""Which release code runs without asking: exactly what this checkout ships, reached only through our auto_map."""

from __future__ import annotations

import json
import shutil

import pytest

from cognitive.errors import UserError
from cognitive.model.remote_code import (
    MODELING_FILE,
    foreign_code,
    remote_code_config,
    ships_code,
    trust_release_code,
    write_remote_code,
)


@pytest.fixture
def release(tmp_path):
    """A modules release's code and config (no weights: nothing here loads a model)."""
    out = tmp_path / "release"
    out.mkdir()
    auto_map = write_remote_code(out, "llama")
    config = remote_code_config({"model_type": "llama", "hidden_size": 64}, {"working_memory": {}}, auto_map)
    (out / "config.json").write_text(json.dumps(config))
    (out / "tokenizer_config.json").write_text(json.dumps({"tokenizer_class": "PreTrainedTokenizerFast"}))
    return out


EVIL = "open(__file__ + '.ran', 'w').write('ran')\nclass EvilModel: pass\n"


def plant(release, tmp_path, name, change):
    copy = tmp_path / name
    shutil.copytree(release, copy)
    change(copy)
    return copy


def edit_json(path, **changes):
    data = json.loads(path.read_text())
    data.update(changes)
    path.write_text(json.dumps(data))


def test_our_own_code_is_trusted(release):
    assert ships_code(release) and foreign_code(release) is None
    assert trust_release_code(release, opted_in=False) is True


def test_a_plain_release_runs_no_code(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "llama"}))
    (tmp_path / "helper.py").write_text(EVIL)  # no auto_map names it: transformers never imports it
    assert not ships_code(tmp_path) and trust_release_code(tmp_path, opted_in=False) is False


@pytest.mark.parametrize(
    "name, change, reason",
    [
        # the three shipped files byte-identical, plus evil.py, and config.json's auto_map pointing at it
        (
            "auto-map",
            lambda d: (
                (d / "evil.py").write_text(EVIL),
                edit_json(
                    d / "config.json",
                    auto_map={
                        "AutoConfig": "configuration_cognitive.CognitiveConfig",
                        "AutoModelForCausalLM": "evil.EvilModel",
                    },
                ),
            ),
            "config.json's auto_map",
        ),
        (
            "tokenizer-auto-map",
            lambda d: (
                (d / "evil.py").write_text(EVIL),
                edit_json(d / "tokenizer_config.json", auto_map={"AutoTokenizer": ["evil.EvilTokenizer", None]}),
            ),
            "tokenizer_config.json has an auto_map",
        ),
        ("extra-file", lambda d: (d / "evil.py").write_text(EVIL), "Python files this project does not ship: evil.py"),
        ("nested-file", lambda d: ((d / "sub").mkdir(), (d / "sub" / "x.py").write_text(EVIL)), "sub/x.py"),
        (
            "edited",
            lambda d: (d / MODELING_FILE).write_text((d / MODELING_FILE).read_text() + "\nimport os\n"),
            f"{MODELING_FILE} differs",
        ),
        (
            "hub-auto-map",
            lambda d: edit_json(
                d / "config.json",
                auto_map={
                    "AutoConfig": "someone/repo--configuration_cognitive.CognitiveConfig",
                    "AutoModelForCausalLM": "modeling_cognitive.CognitiveForCausalLM",
                },
            ),
            "config.json's auto_map",
        ),
    ],
)
def test_code_we_did_not_write_needs_the_users_opt_in(release, tmp_path, name, change, reason):
    planted = plant(release, tmp_path, name, change)
    assert reason in foreign_code(planted)
    with pytest.raises(UserError, match="ships code that this checkout did not write") as error:
        trust_release_code(planted, opted_in=False)
    assert "--trust_remote_code" in str(error.value) and "\n" not in str(error.value)
    assert trust_release_code(planted, opted_in=True) is True  # the user read it and opted in
    assert not list(planted.rglob("*.ran"))  # deciding never imports anything
