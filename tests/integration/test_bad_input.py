"""Every bad input the recipes know: exit 2, one line `error: ...` naming the file, line or key, no traceback, and
nothing left behind (no output dir, no .partial). Bad data files (invalid UTF-8, a line that is not a JSON object,
a record missing fields, a 100 MB line, an empty file) for every reader of records: the data pipeline's --curated,
sft.py's and grpo.py's --dataset_path. And --overwrite never replaces what this project did not write: a directory
of the user's files, a symbolic link to one, the current directory, for every command that writes an output dir.

Each case runs the recipe's entry point in this process (what `python recipes/<name>.py ...` runs, minus the
interpreter start); an exception other than the recipe's own exit would fail the test with its traceback. The
lm_eval CLI, which this project does not own, runs in a subprocess.
"""

from __future__ import annotations

import fcntl
import json
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

from tests.conftest import ROOT, listing, run_lm_eval, tiny_recipe, user_files


@dataclass
class Case:
    recipe: str  # recipes/<recipe>.py
    argv: list[str]
    needle: str  # must be in the error line
    leftovers: list[Path] = field(default_factory=list)  # must not exist afterwards


def data_config(tmp_path: Path, name: str, text: str | None = None, **changes) -> Path:
    config = yaml.safe_load((ROOT / "data/configs/demo.yaml").read_text())
    config.update(target_size=12, tokenizer="whitespace", **changes)
    path = tmp_path / f"{name}.yaml"
    path.write_text(text if text is not None else yaml.safe_dump(config))
    return path


def sft_case(tmp_path, tiny_model_dir, cot_data_dir, needle, data=None, **overrides) -> Case:
    out = tmp_path / "run"
    argv = tiny_recipe(tiny_model_dir("llama"), data or cot_data_dir, out, **overrides)
    return Case("sft", argv, needle, [out, out.with_name("run.partial")])


def fake_partial(tmp_path, tiny_model_dir, cot_data_dir, **changes) -> Case:
    """A .partial with a complete checkpoint of a run whose config or data differ from the rerun's."""
    from cognitive.train.args import parse_sft_args
    from cognitive.train.run import CHECKPOINT_MARKER, RUN_CONFIG, RUN_INFO, resolved_config

    out = tmp_path / "run"
    argv = tiny_recipe(tiny_model_dir("llama"), cot_data_dir, out)
    config = resolved_config(*parse_sft_args(argv), out)
    data_sha = changes.pop("data_sha", None)
    config.update(changes)
    partial = out.with_name("run.partial")
    (partial / "checkpoint-2").mkdir(parents=True)
    (partial / "checkpoint-2" / "trainer_state.json").write_text("{}")
    (partial / "checkpoint-2" / CHECKPOINT_MARKER).write_text("{}")
    (partial / RUN_CONFIG).write_text(yaml.safe_dump(config, sort_keys=False))
    (partial / RUN_INFO).write_text(json.dumps({"data": {"sha256": data_sha or "same"}}))
    if data_sha is None:  # the same data: record its real hash
        from cognitive.train.run import data_sha256

        (partial / RUN_INFO).write_text(json.dumps({"data": {"sha256": data_sha256([cot_data_dir / "train.jsonl"])}}))
    return Case("sft", argv, "", [out])


def remote_code_base(tmp_path) -> Path:
    """A base whose config names its own modeling code (model_type unknown to transformers, auto_map)."""
    base = tmp_path / "custom-base"
    base.mkdir()
    (base / "config.json").write_text(
        json.dumps(
            {
                "model_type": "custom_thing",
                "auto_map": {
                    "AutoConfig": "configuration_custom.CustomConfig",
                    "AutoModelForCausalLM": "modeling_custom.CustomModel",
                },
            }
        )
    )
    (base / "configuration_custom.py").write_text("open(__file__ + '.ran', 'w')\n")
    return base


@pytest.fixture(scope="module")
def bad_data(tmp_path_factory, cot_data_dir) -> dict[str, tuple[Path, str]]:
    """{case: (a JSONL file whose first line is a good record, what its error says after 'file:line: ')}: written
    once (one of them is 100 MB)."""
    folder = tmp_path_factory.mktemp("bad-data")
    good = (cot_data_dir / "train.jsonl").read_bytes().splitlines()[0] + b"\n"
    second_lines = {
        "invalid UTF-8": (b'{"id": "caf\xe9"}\n', ":2: not valid UTF-8 (byte 0xe9 at byte 12 of the line)"),
        "not JSON": (b"{not json\n", ":2: not valid JSON (Expecting property name enclosed in double quotes"),
        "a JSON array line": (b"[1, 2]\n", ":2: an array where a record (a JSON object) belongs"),
        "a record missing fields": (b'{"id": "x"}\n', ":2: key 'task_type': Field required"),
        "a 100 MB line": (b'{"id": "' + b"x" * 100 * 2**20 + b'"}\n', ":2: the line is over 16 MiB"),
    }
    files = {}
    for name, (line, message) in second_lines.items():
        path = folder / f"{name.replace(' ', '-')}.jsonl"
        path.write_bytes(good + line)
        files[name] = (path, f"{path}{message}")
    empty = folder / "empty.jsonl"
    empty.write_bytes(b"")
    files["an empty file"] = (empty, f"{empty}: no")
    return files


BAD_DATA = [
    "invalid UTF-8",
    "not JSON",
    "a JSON array line",
    "a record missing fields",
    "a 100 MB line",
    "an empty file",
]


def data_cases(tmp_path: Path, tiny_model_dir, cot_data_dir, bad_data) -> dict[str, Case]:
    """Each bad data file given to each reader of records."""
    from tests.integration.test_grpo_recipe import GRPO_RECIPE, grpo_argv

    out = tmp_path / "out"
    records_recipe = yaml.safe_load(GRPO_RECIPE.read_text())
    for key in ("task_types", "difficulties"):  # a generated mix's keys: records keep their own
        records_recipe.pop(key)
    (tmp_path / "grpo-records.yaml").write_text(yaml.safe_dump(records_recipe))
    found = {}
    for name in BAD_DATA:
        path, needle = bad_data[name]
        config = data_config(tmp_path, "curated", synthetic_ratio=0.5)
        curated = Case("generate_data", ["--config", str(config), "--curated", str(path), "--out", str(out)], needle)
        found[f"data --curated: {name}"] = curated
        found[f"sft --dataset_path: {name}"] = sft_case(tmp_path, tiny_model_dir, cot_data_dir, needle, data=path)
        grpo = grpo_argv(tiny_model_dir("llama"), out, dataset_path=str(path))
        grpo[grpo.index("--config") + 1] = str(tmp_path / "grpo-records.yaml")
        found[f"grpo --dataset_path: {name}"] = Case("grpo", grpo, needle)
    for case in found.values():
        case.leftovers += [out, out.with_name("out.partial"), out.with_name("out.lock")]
    return found


DATA_CASE_IDS = [
    f"{reader}: {name}"
    for reader in ("data --curated", "sft --dataset_path", "grpo --dataset_path")
    for name in BAD_DATA
]


def cases(tmp_path: Path, tiny_model_dir, cot_data_dir) -> dict[str, Case]:
    out = tmp_path / "out"
    bad_yaml = data_config(tmp_path, "malformed", text="target_size: [12,\ntask_distribution: {}\n")
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "train.jsonl").write_text("")
    not_a_run = tmp_path / "not-a-run"
    not_a_run.mkdir()
    merge_run = tmp_path / "custom-run"
    merge_run.mkdir()
    (merge_run / "adapter_config.json").write_text("{}")
    (merge_run / "adapter_model.safetensors").write_bytes(b"")
    (merge_run / "run_config.yaml").write_text(yaml.safe_dump({"model_name_or_path": str(remote_code_base(tmp_path))}))
    gen = ["--out", str(out)]
    table = {
        # generate_data.py
        "data: malformed YAML": Case("generate_data", ["--config", str(bad_yaml), *gen], f"{bad_yaml}:", [out]),
        "data: config not found": Case(
            "generate_data",
            ["--config", str(tmp_path / "nope.yaml"), *gen],
            f"{tmp_path / 'nope.yaml'}: data config not found",
            [out],
        ),
        "data: no --config": Case("generate_data", gen, "the following arguments are required: --config", [out]),
        "data: unknown key": Case(
            "generate_data",
            ["--config", str(data_config(tmp_path, "unknown-key", targte_size=3)), *gen],
            "key 'targte_size'",
            [out],
        ),
        "data: unknown domain": Case(
            "generate_data",
            ["--config", str(data_config(tmp_path, "domain", domain_distribution={"astrology": 1.0})), *gen],
            "domain_distribution.astrology",
            [out],
        ),
        "data: missing eval dir": Case(
            "generate_data",
            ["--config", str(data_config(tmp_path, "ok")), "--eval_dir", str(tmp_path / "evl"), *gen],
            f"eval_dir {tmp_path / 'evl'} does not exist",
            [out],
        ),
        # sft.py
        "sft: empty train.jsonl": sft_case(
            tmp_path, tiny_model_dir, cot_data_dir, f"{empty / 'train.jsonl'}: no training records", data=empty
        ),
        "sft: lora_r 0": sft_case(tmp_path, tiny_model_dir, cot_data_dir, "lora_r: 0", lora_r=0),
        "sft: max_length 0": sft_case(tmp_path, tiny_model_dir, cot_data_dir, "max_length: 0", max_length=0),
        "sft: lora_r not a number": sft_case(tmp_path, tiny_model_dir, cot_data_dir, "--lora_r", lora_r="abc"),
        "sft: unknown option": sft_case(
            tmp_path, tiny_model_dir, cot_data_dir, "unknown command-line option(s): --lerning_rate", lerning_rate=0.1
        ),
        "sft: missing base": Case(
            "sft",
            tiny_recipe(tmp_path / "no-model", cot_data_dir, out),
            f"base '{tmp_path / 'no-model'}' does not exist",
            [out],
        ),
        "sft: missing dataset": sft_case(
            tmp_path,
            tiny_model_dir,
            cot_data_dir,
            f"dataset '{tmp_path / 'nodata'}' not found",
            data=tmp_path / "nodata",
        ),
        # evaluate.py
        "evaluate: unknown difficulty": Case(
            "evaluate",
            ["--base", str(tiny_model_dir("llama")), "--difficulty", "basic,hard", "--out", str(out)],
            "difficulty 'hard' is not one of basic, intermediate, advanced, expert",
            [out],
        ),
        "evaluate: validation split of the standard suite": Case(
            "evaluate",
            ["--base", str(tiny_model_dir("llama")), "--suite", "standard", "--split", "validation", "--out", str(out)],
            "the standard suite has no validation split (only these have one: cognitive, plain, transfer)",
            [out],
        ),
        "evaluate: not a run": Case(
            "evaluate", ["--adapter", str(not_a_run), "--out", str(out)], f"{not_a_run} has no adapter", [out]
        ),
        # merge.py
        "merge: base with its own code": Case(
            "merge",
            ["--run", str(merge_run), "--out", str(out)],
            "needs its own modeling code (trust_remote_code)",
            [out],
        ),
        "merge: no run": Case(
            "merge",
            ["--run", str(tmp_path / "norun"), "--out", str(out)],
            f"run dir {tmp_path / 'norun'} does not exist",
            [out],
        ),
    }
    return table


CASE_IDS = [
    "data: malformed YAML",
    "data: config not found",
    "data: no --config",
    "data: unknown key",
    "data: unknown domain",
    "data: missing eval dir",
    "sft: empty train.jsonl",
    "sft: lora_r 0",
    "sft: max_length 0",
    "sft: lora_r not a number",
    "sft: unknown option",
    "sft: missing base",
    "sft: missing dataset",
    "evaluate: unknown difficulty",
    "evaluate: validation split of the standard suite",
    "evaluate: not a run",
    "merge: base with its own code",
    "merge: no run",
]


def run_recipe(recipe: str, argv: list[str]) -> int:
    import importlib

    module = importlib.import_module(f"recipes.{recipe}")
    entry = module.cli if recipe in ("sft", "grpo") else module.main
    with pytest.raises(SystemExit) as exit_info:
        entry(argv)
    return exit_info.value.code


def assert_one_line_error(code: int, stderr: str, needle: str) -> None:
    errors = [line for line in stderr.splitlines() if line.startswith("error:")]
    assert code == 2, stderr
    assert len(errors) == 1 and needle in errors[0], stderr
    assert stderr.strip().splitlines()[-1] == errors[0] and "Traceback" not in stderr, stderr


@pytest.mark.parametrize("name", CASE_IDS)
def test_bad_input_is_one_line_and_leaves_nothing(name, tmp_path, tiny_model_dir, cot_data_dir, capsys):
    case = cases(tmp_path, tiny_model_dir, cot_data_dir)[name]
    capsys.readouterr()
    code = run_recipe(case.recipe, case.argv)
    assert_one_line_error(code, capsys.readouterr().err, case.needle)
    for path in case.leftovers:
        assert not path.exists(), f"{path} was left behind"
    assert not list(tmp_path.rglob("*.ran")), "code from an input directory ran"


@pytest.mark.parametrize("name", DATA_CASE_IDS)
def test_a_bad_data_file_is_one_line_naming_file_and_line(
    name, tmp_path, tiny_model_dir, cot_data_dir, bad_data, capsys
):
    case = data_cases(tmp_path, tiny_model_dir, cot_data_dir, bad_data)[name]
    capsys.readouterr()
    code = run_recipe(case.recipe, case.argv)
    assert_one_line_error(code, capsys.readouterr().err, case.needle)
    for path in case.leftovers:
        assert not path.exists(), f"{path} was left behind"


# ---------------------------------------------------------------------------------- --overwrite and the user's files
def fake_run(tmp_path: Path) -> Path:
    """A directory that reads as a finished LoRA run (what merge.py takes)."""
    run = tmp_path / "a-run"
    if not run.exists():
        run.mkdir()
        (run / "adapter_config.json").write_text('{"peft_type": "LORA"}')
        (run / "adapter_model.safetensors").write_bytes(b"")
        (run / "run_config.yaml").write_text(yaml.safe_dump({"model_name_or_path": "embedded:smollm2-135m-instruct"}))
    return run


def writing_argv(recipe: str, out, tmp_path, tiny_model_dir, cot_data_dir) -> list[str]:
    """The command line of each command that writes an output directory, into `out`, with its overwrite flag."""
    from tests.integration.test_grpo_recipe import grpo_argv

    out = str(out)
    return {
        "generate_data": lambda: ["--config", str(data_config(tmp_path, "ok")), "--out", out, "--overwrite"],
        "sft": lambda: tiny_recipe(tiny_model_dir("llama"), cot_data_dir, out, overwrite="true"),
        "grpo": lambda: grpo_argv(
            tiny_model_dir("llama"), out, overwrite="true", data_config=str(ROOT / "data/configs/cpu_mix.yaml")
        ),
        "merge": lambda: ["--run", str(fake_run(tmp_path)), "--out", out, "--overwrite"],
        "evaluate": lambda: ["--base", str(tiny_model_dir("llama")), "--out", out],  # always replaces its own output
    }[recipe]()


WRITERS = ["generate_data", "sft", "grpo", "merge", "evaluate"]  # (the study tool interpolate.py: its own tests)


@pytest.mark.parametrize("target", ["user files", "symlink", "current directory"])
@pytest.mark.parametrize("recipe", WRITERS)
def test_overwrite_refuses_what_this_project_did_not_write(
    recipe, target, tmp_path, tiny_model_dir, cot_data_dir, monkeypatch, capsys
):
    mine = user_files(tmp_path / "mine")
    out, needle = {
        "user files": (mine, f"{mine} was not written by cognitive-slm (it holds important.txt, notes/; no "),
        "symlink": (tmp_path / "link", f"{tmp_path / 'link'} is a symbolic link (to {mine})"),
        "current directory": (Path("."), ". is the current directory (important.txt, notes/)"),
    }[target]
    if target == "symlink":
        out.symlink_to(mine)
    argv = writing_argv(recipe, out, tmp_path, tiny_model_dir, cot_data_dir)
    monkeypatch.chdir(mine if target == "current directory" else tmp_path)
    before = listing(tmp_path)
    capsys.readouterr()
    code = run_recipe(recipe, argv)
    assert_one_line_error(code, capsys.readouterr().err, needle)
    assert listing(tmp_path) == before  # the files, the link, and no .partial / .lock beside them


def test_a_partial_or_lock_file_this_project_did_not_write_is_left_alone(
    tmp_path, tiny_model_dir, cot_data_dir, capsys
):
    partial = user_files(tmp_path / "run.partial")
    argv = tiny_recipe(tiny_model_dir("llama"), cot_data_dir, tmp_path / "run", overwrite="true")
    before = listing(tmp_path)
    code = run_recipe("sft", argv)
    needle = f"{partial} is in the way and not written by cognitive-slm (important.txt, notes/)"
    assert_one_line_error(code, capsys.readouterr().err, needle)
    assert listing(tmp_path) == before

    (tmp_path / "data.lock").write_text("my notes on the lock-in period\n")
    argv = tiny_recipe(tiny_model_dir("llama"), cot_data_dir, tmp_path / "data")
    code = run_recipe("sft", argv)
    assert_one_line_error(code, capsys.readouterr().err, f"{tmp_path / 'data.lock'} exists and is no lock file of")
    assert (tmp_path / "data.lock").read_text() == "my notes on the lock-in period\n"
    assert not (tmp_path / "data").exists() and not (tmp_path / "data.partial").exists()

    dataset = tmp_path / "dataset"
    user_files(tmp_path / "dataset.partial")
    argv = ["--config", str(data_config(tmp_path, "ok")), "--out", str(dataset)]
    before = listing(tmp_path)
    code = run_recipe("generate_data", argv)
    assert_one_line_error(code, capsys.readouterr().err, "dataset.partial is in the way and not written by")
    assert listing(tmp_path) == before


def test_a_second_run_on_the_same_output_dir_is_refused(tmp_path, tiny_model_dir, cot_data_dir, capsys):
    out = tmp_path / "run"
    with open(tmp_path / "run.lock", "a") as held:  # what a running `recipes/sft.py --output_dir run` holds
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        code = run_recipe("sft", tiny_recipe(tiny_model_dir("llama"), cot_data_dir, out))
    assert_one_line_error(code, capsys.readouterr().err, f"another run is training into {out}")
    assert not out.exists() and not (tmp_path / "run.partial").exists()


@pytest.mark.parametrize(
    "changes, needle",
    [
        ({"learning_rate": 0.5}, "learning_rate: 0.5 -> 0.01"),
        ({"lora_alpha": 64}, "lora_alpha: 64 -> 32"),
        ({"data_sha": "0" * 64}, "was trained on other data (sha256 " + "0" * 64),
    ],
)
def test_resume_refuses_a_run_with_other_settings_or_data(
    changes, needle, tmp_path, tiny_model_dir, cot_data_dir, capsys
):
    case = fake_partial(tmp_path, tiny_model_dir, cot_data_dir, **changes)
    partial_before = sorted(p.name for p in (tmp_path / "run.partial").iterdir())
    code = run_recipe("sft", case.argv)
    stderr = capsys.readouterr().err
    assert_one_line_error(code, stderr, needle)
    assert "pass --overwrite true to start run afresh" in stderr
    assert sorted(p.name for p in (tmp_path / "run.partial").iterdir()) == partial_before  # left as it was
    assert not (tmp_path / "run").exists()


def test_overwrite_starts_afresh_instead_of_resuming_a_stale_partial(tmp_path, tiny_model_dir, cot_data_dir, capsys):
    """--overwrite true: the stale .partial is dropped, and the finished run of this project in the way (a previous
    run, the marker's kind 'run') is replaced whole."""
    from cognitive.atomic import publish_dir, staging_dir, written_as

    case = fake_partial(tmp_path, tiny_model_dir, cot_data_dir, learning_rate=0.5)
    previous = staging_dir(tmp_path / "previous", kind="run")
    (previous / "stale.txt").write_text("a file of the previous run")
    publish_dir(previous, tmp_path / "run")
    import recipes.sft as sft

    sft.cli([*case.argv, "--overwrite", "true"])
    out = capsys.readouterr().out
    assert "Resuming from" not in out
    config = yaml.safe_load((tmp_path / "run" / "run_config.yaml").read_text())
    assert config["learning_rate"] == 0.01 and not (tmp_path / "run.partial").exists()
    assert not (tmp_path / "run" / "stale.txt").exists() and written_as(tmp_path / "run") == "run"
    assert not (tmp_path / "run.lock").exists()


def test_lm_eval_unknown_difficulty_is_one_line(tiny_model_dir):
    model_args = f"pretrained={tiny_model_dir('llama')}"
    result = run_lm_eval(model_args, "cognitive_reasoning", "--metadata", '{"difficulty": "hard"}', chat=False)
    assert_one_line_error(
        result.returncode,
        result.stderr,
        "--metadata difficulty 'hard' is not one of basic, intermediate, advanced, expert",
    )
