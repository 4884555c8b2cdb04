"""Releases end to end: two tiny trained runs (with cognitive modules and without) -> recipes/merge.py -> the release
loaded in a fresh Python that cannot import this project, lm_eval on it, `transformers serve` answering a chat
completion, recipes/chat.py; then bad input (one-line error, exit 2, nothing overwritten) and the push guard.

Tolerances: the merge check fails above cognitive.release.merge.MERGE_TOLERANCE (1e-3, fp32); measured ~3e-7 here.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import torch
import yaml

from cognitive.atomic import publish_dir, staging_dir, written_as
from tests.conftest import ROOT, TINY_MODULES, run_lm_eval, tiny_recipe

MODULES = TINY_MODULES
EVAL_RESULTS = {  # recipes/evaluate.py's results.json, as the model card's default source
    "settings": {"tasks": "cognitive", "limit": 3},
    "models": {"release:modules": {"scores": {"cognitive_reasoning": {"score": 0.25, "exact_match": 0.25}}}},
}


def merge(argv: list[str]) -> tuple[int, str, str]:
    """recipes/merge.py in this process: (exit code, stdout, stderr)."""
    import recipes.merge

    out, err = io.StringIO(), io.StringIO()
    code = 0
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            recipes.merge.main(argv)
        except SystemExit as e:
            code = e.code
    return code, out.getvalue(), err.getvalue()


def refuse_pickle(*args, **kwargs):
    raise AssertionError("torch.load called: a release must read weights as safetensors only")


@pytest.fixture(scope="module")
def runs(tmp_path_factory, tiny_model_dir, cot_data_dir) -> dict[str, Path]:
    """Two finished 2-step runs of the tiny Llama: 'plain' (LoRA) and 'modules' (LoRA + every cognitive module)."""
    import recipes.sft as sft
    from cognitive.train.args import parse_sft_args

    root = tmp_path_factory.mktemp("project")
    made = {}
    for name, modules in (("plain", None), ("modules", MODULES)):
        script_args, training_args, model_args = parse_sft_args(
            tiny_recipe(tiny_model_dir("llama"), cot_data_dir, root / "runs" / name)
        )
        script_args.cognitive_modules = modules
        sft.main(script_args, training_args, model_args)
        made[name] = root / "runs" / name
    results = root / "results" / "modules" / "results.json"  # the default place: results/<run name>/
    results.parent.mkdir(parents=True)
    results.write_text(json.dumps(EVAL_RESULTS))
    return made


@pytest.fixture(scope="module")
def releases(runs) -> dict[str, tuple[Path, dict, str]]:
    """{name: (release dir, merge report, merge stdout)}, merged with torch.load poisoned."""
    made = {}
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(torch, "load", refuse_pickle)
        for name, run in runs.items():
            out = run.parent.parent / "release" / name
            stale = staging_dir(out, kind="release")  # what a merge killed mid-save (kill -9) leaves
            (stale / "model.safetensors").write_bytes(b"half")
            code, stdout, stderr = merge(["--run", str(run), "--out", str(out)])
            assert code == 0, stderr[-3000:]
            assert sorted(p.name for p in out.parent.iterdir() if p.name.startswith((name, f".{name}"))) == [name]
            made[name] = (out, json.loads(stdout[stdout.index("{") :]), stdout)
    return made


def test_merge_writes_a_plain_and_a_modules_release(releases):
    from safetensors import safe_open

    for _name, (out, report, stdout) in releases.items():
        assert "merge check: max |logit(release)" in stdout and report["max_abs_logit_diff"] <= 1e-3
        files = {p.name for p in out.iterdir()}
        assert {"config.json", "model.safetensors", "README.md", "tokenizer.json"} <= files
        assert not [f for f in files if f.endswith((".bin", ".pt", ".pth")) or f.startswith("adapter")]
    plain, modules = releases["plain"][0], releases["modules"][0]
    assert json.loads((plain / "config.json").read_text())["model_type"] == "llama"
    assert "auto_map" not in json.loads((plain / "config.json").read_text())
    assert not list(plain.glob("*.py")), "a release without modules ships no code"

    config = json.loads((modules / "config.json").read_text())
    assert config["model_type"] == "cognitive_llama" and config["architectures"] == ["CognitiveForCausalLM"]
    assert config["auto_map"]["AutoModelForCausalLM"] == "modeling_cognitive.CognitiveForCausalLM"
    assert config["cognitive_modules"]["state_tracking"]["num_states"] == 4
    assert {p.name for p in modules.glob("*.py")} == {
        "configuration_cognitive.py",
        "modeling_cognitive.py",
        "cognitive_modules.py",
    }
    with safe_open(modules / "model.safetensors", "pt") as f:  # trained gates: the modules change the logits
        gates = [f.get_tensor(k) for k in f.keys() if ".cognitive." in k and k.endswith(".gate")]
    assert len(gates) == 4 and all(g.abs().item() > 1e-4 for g in gates)  # one gate per module


def test_model_card_describes_the_release(releases):
    card = (releases["modules"][0] / "README.md").read_text()
    for expected in (
        "library_name: transformers",
        "## Training data",
        "train 20",
        "| `learning_rate` | `0.01` |",
        "| cognitive module: reasoning_heads |",
        "results.json",
        "| cognitive_reasoning | score | 0.250 |",
        "trust_remote_code=True",
        "## Intended use and limits",
        "transformers serve",
    ):
        assert expected in card, expected
    plain_card = (releases["plain"][0] / "README.md").read_text()
    assert "trust_remote_code" not in plain_card and "No evaluation results were found" in plain_card


def test_every_module_off_gives_a_plain_release(runs, tmp_path):
    from safetensors.torch import save_file

    run = copy_run(runs["modules"], tmp_path / "all-off")
    saved = json.loads((run / "cognitive_config.json").read_text())
    for module in saved["cognitive_modules"].values():
        module["enabled"] = False
    (run / "cognitive_config.json").write_text(json.dumps(saved))
    save_file({}, run / "cognitive_adapter.safetensors")
    code, _stdout, stderr = merge(["--run", str(run), "--out", str(tmp_path / "release")])
    assert code == 0, stderr[-3000:]
    config = json.loads((tmp_path / "release" / "config.json").read_text())
    assert config["model_type"] == "llama" and "auto_map" not in config
    assert not list((tmp_path / "release").glob("*.py"))


FRESH_PYTHON = r"""
import importlib.util, json, sys
root, poison, batch_file, out_file = sys.argv[1:5]
releases = json.loads(sys.argv[5])
sys.path[:] = [p for p in sys.path if p not in (root, "", ".")]  # the venv (root/.venv) stays
sys.path.insert(0, poison)  # `import cognitive` now raises: the release must not need this project
assert importlib.util.find_spec("cognitive").origin.startswith(poison)
import torch
from safetensors.torch import load_file, save_file
from transformers import AutoModelForCausalLM

batch = load_file(batch_file)
result, tensors = {}, {}
for name, path in releases.items():
    if name == "modules":
        try:
            AutoModelForCausalLM.from_pretrained(path)
            result["without_trust"] = "loaded"
        except ValueError as e:
            result["without_trust"] = str(e)
    model = AutoModelForCausalLM.from_pretrained(path, trust_remote_code=name == "modules", dtype=torch.float32)
    result[name] = type(model).__name__
    with torch.no_grad():
        tensors[name + ".logits"] = model(**batch).logits.contiguous()
        tensors[name + ".generated"] = model.generate(**batch, max_new_tokens=6, do_sample=False).contiguous()
result["cognitive_imported"] = any(m == "cognitive" or m.startswith("cognitive.") for m in sys.modules)
save_file(tensors, out_file, metadata={"result": json.dumps(result)})
"""


def test_release_loads_in_a_fresh_python_without_this_project(releases, runs, tmp_path):
    from safetensors import safe_open
    from safetensors.torch import load_file, save_file
    from transformers import AutoTokenizer

    from cognitive.release.merge import MERGE_TOLERANCE, check_batch, load_adapted
    from cognitive.train.run import read_run

    batch = check_batch(AutoTokenizer.from_pretrained(releases["plain"][0]))
    batch = {"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"]}
    save_file(batch, tmp_path / "batch.safetensors")
    poison = tmp_path / "poison"
    (poison / "cognitive").mkdir(parents=True)
    (poison / "cognitive" / "__init__.py").write_text("raise RuntimeError('the release imported cognitive-slm')\n")
    (tmp_path / "fresh.py").write_text(FRESH_PYTHON)
    paths = json.dumps({name: str(out) for name, (out, _, _) in releases.items()})
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(HF_MODULES_CACHE=str(tmp_path / "hf_modules"), HF_HUB_OFFLINE="1")
    result = subprocess.run(
        [sys.executable, "-I", "fresh.py", str(ROOT), str(poison), "batch.safetensors", "out.safetensors", paths],
        cwd=tmp_path,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    with safe_open(tmp_path / "out.safetensors", "pt") as f:
        loaded = json.loads(f.metadata()["result"])
    assert loaded["cognitive_imported"] is False
    assert loaded["plain"] == "LlamaForCausalLM" and loaded["modules"] == "CognitiveForCausalLM"
    assert "trust_remote_code=True" in loaded["without_trust"], "must refuse, not load a plain Llama without modules"

    fresh = load_file(tmp_path / "out.safetensors")
    keep = batch["attention_mask"].bool()
    for name, run in runs.items():
        reference, _ = load_adapted(read_run(run))  # base (+ modules) + adapter, as trained
        with torch.no_grad():
            logits = reference(**batch).logits
            generated = reference.generate(**batch, max_new_tokens=6, do_sample=False)
        diff = (fresh[name + ".logits"][keep] - logits[keep]).abs().max().item()
        assert diff <= MERGE_TOLERANCE, f"{name}: {diff:.2e}"
        assert torch.equal(fresh[name + ".generated"], generated), name  # cached greedy decoding agrees too
    assert_modules_matter(runs["modules"], fresh["modules.logits"], batch)


def assert_modules_matter(run: Path, release_logits, batch):
    """The LoRA adapter alone (modules left out) gives different logits: the release really carries the modules."""
    from peft import PeftModel

    from cognitive.model.base import load_base
    from cognitive.train.run import read_run

    without = PeftModel.from_pretrained(load_base(read_run(run).base, dtype=torch.float32), str(run)).eval()
    with torch.no_grad():
        diff = (without(**batch).logits - release_logits)[batch["attention_mask"].bool()].abs().max().item()
    assert diff > 1e-3


def test_lm_eval_on_the_modules_release(releases, tmp_path):
    out = tmp_path / "lm_eval"
    result = run_lm_eval(
        f"pretrained={releases['modules'][0]},trust_remote_code=True",
        "cognitive_reasoning",
        *("--batch_size", "2"),
        limit=2,
        out=out,
        max_gen_toks=16,
        env={"HF_MODULES_CACHE": str(tmp_path / "hf_modules")},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    [results_file] = out.rglob("results_*.json")
    metrics = json.loads(results_file.read_text())["results"]["cognitive_reasoning"]
    assert 0.0 <= metrics["exact_match,none"] <= 1.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _post(port: int, path: str, body) -> tuple[int, dict]:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}", data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=120) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def _serve_and_ask(command: list[str], release: Path, log_path: Path, then=None) -> None:
    """Start a server (`command` + host/port/device options), send one chat completion, check it, call
    `then(port)` for more checks, stop it."""
    port = free_port()
    log = open(log_path, "w")
    server = subprocess.Popen(
        [*command, "--host", "127.0.0.1", "--port", str(port), "--device", "cpu", "--dtype", "float32"],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        cwd=ROOT,
    )
    try:
        deadline = time.time() + 120
        while True:
            assert server.poll() is None, log_path.read_text()[-3000:]
            assert time.time() < deadline, "the server did not come up in 120 s"
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2)
                break
            except OSError:
                time.sleep(0.5)
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/v1/chat/completions",
            data=json.dumps(
                {
                    "model": str(release),
                    "max_tokens": 8,
                    "stream": False,
                    "messages": [{"role": "user", "content": "How many apples are left?"}],
                }
            ).encode(),
            headers={"Content-Type": "application/json"},
        )
        reply = json.loads(urllib.request.urlopen(request, timeout=120).read())
        assert reply["choices"][0]["message"]["role"] == "assistant"
        assert reply["choices"][0]["message"]["content"] and reply["usage"]["completion_tokens"] >= 1
        if then is not None:
            then(port)
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()
        log.close()
    with socket.socket() as s:  # nothing listens on the port any more (SO_REUSEADDR: closed connections may linger)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", port))
        s.listen()


def test_transformers_serve_answers_a_chat_completion(releases, tmp_path):
    release = releases["plain"][0]
    _serve_and_ask(
        [str(Path(sys.executable).parent / "transformers"), "serve", str(release)], release, tmp_path / "serve.log"
    )


def test_serve_launcher_serves_a_modules_release(releases, tmp_path):
    """recipes/serve.py: transformers' own serve, with the release's shipped class made findable, serving that
    release alone: a client cannot make it load another directory (and run its code), and a malformed chat request
    is a 400 with a message."""
    release = releases["modules"][0]
    planted = plant_foreign_code(release, tmp_path / "planted", "auto_map")

    def refuses_the_rest(port):
        status, body = _post(port, "/load_model", {"model": str(planted)})
        assert status == 403 and "serves only" in body["error"]["message"]
        status, body = _post(
            port, "/v1/chat/completions", {"model": str(planted), "messages": [{"role": "user", "content": "hi"}]}
        )
        assert status == 403
        for bad, message in (
            ({"messages": "hi"}, "'messages' must be a non-empty list"),
            (
                {"messages": [{"role": "user", "content": "hi"}], "max_tokens": -1},
                "'max_tokens' must be a positive integer",
            ),
        ):
            status, body = _post(port, "/v1/chat/completions", bad)
            assert status == 400 and message in body["error"]["message"], body
        assert not list(planted.rglob("*.ran")), "the server imported code from another directory"

    _serve_and_ask(
        [sys.executable, "recipes/serve.py", str(release)], release, tmp_path / "serve.log", then=refuses_the_rest
    )
    assert "serving" in (tmp_path / "serve.log").read_text() and "shipped class" in (tmp_path / "serve.log").read_text()


EVIL = "import pathlib\npathlib.Path(__file__ + '.ran').write_text('ran')\nclass EvilModel: pass\n"


def plant_foreign_code(release: Path, out: Path, how: str) -> Path:
    """A copy of a modules release with the three shipped files byte-identical, plus evil.py (which leaves
    evil.py.ran when imported), reached through config.json's or tokenizer_config.json's auto_map."""
    shutil.copytree(release, out)
    (out / "evil.py").write_text(EVIL)
    name = "config.json" if how == "auto_map" else "tokenizer_config.json"
    data = json.loads((out / name).read_text())
    if how == "auto_map":
        data["auto_map"]["AutoModelForCausalLM"] = "evil.EvilModel"
    else:
        data["auto_map"] = {"AutoTokenizer": ["evil.EvilModel", None]}
    (out / name).write_text(json.dumps(data))
    return out


@pytest.mark.parametrize("how", ["auto_map", "tokenizer_auto_map"])
def test_chat_serve_and_evaluate_refuse_code_they_did_not_write(releases, tmp_path, capsys, how):
    """Byte-identical shipped files plus a foreign module that an auto_map points at: refused by chat, serve and
    evaluate with one line naming --trust_remote_code; nothing imported, no results dir left."""
    import recipes.chat
    import recipes.evaluate
    import recipes.serve

    planted = plant_foreign_code(releases["modules"][0], tmp_path / "planted", how)
    for main, argv in (
        (recipes.chat.main, [str(planted), "--json", "--prompt", "hi"]),
        (recipes.serve.main, [str(planted), "--port", "0"]),
        (recipes.evaluate.main, ["--release", str(planted), "--limit", "1", "--out", str(tmp_path / "eval")]),
    ):
        with pytest.raises(SystemExit) as exit_info:
            main(argv)
        err = capsys.readouterr().err.strip().splitlines()
        assert exit_info.value.code == 2 and len(err) == 1, err
        assert "ships code that this checkout did not write" in err[0] and "--trust_remote_code" in err[0]
    assert not list(planted.rglob("*.ran")), "code from the release ran"
    assert not (tmp_path / "eval").exists() and not (tmp_path / "eval.partial").exists()


@pytest.mark.xfail(
    raises=AttributeError,
    strict=True,
    reason="transformers serve resolves architectures[0] in the transformers package (no remote code); "
    "when this passes, update the model card's Serving note (cognitive/release/model_card.py)",
)
def test_transformers_serve_loads_a_remote_code_release(releases):
    from transformers.cli.serving.model_manager import ModelManager

    manager = ModelManager(
        device="cpu", dtype="float32", trust_remote_code=True, force_model=str(releases["modules"][0])
    )
    assert manager.loaded_models


def test_chat_streams_and_parses_json(releases, monkeypatch, capsys):
    import recipes.chat

    release = str(releases["modules"][0])  # the shipped code is this checkout's: trusted without a flag
    recipes.chat.main([release, "--json", "--prompt", "What is 2+3?", "--prompt", "And 4+4?", "--max_new_tokens", "6"])
    lines = [json.loads(line) for line in capsys.readouterr().out.strip().splitlines()]
    assert [line["prompt"] for line in lines] == ["What is 2+3?", "And 4+4?"]
    for line in lines:
        assert {"steps", "planning_steps", "final_answer", "format_ok", "text"} <= line.keys()
        assert isinstance(line["text"], str) and line["text"]

    monkeypatch.setattr(sys, "stdin", io.StringIO("hello\n/reset\nagain\n/quit\n"))
    recipes.chat.main([release, "--max_new_tokens", "4"])
    out = capsys.readouterr().out
    assert out.count("model> ") == 2 and out.count("reasoning steps") == 2


def test_chat_refuses_remote_code_it_did_not_write(releases, tmp_path, capsys):
    import recipes.chat

    copy = tmp_path / "edited"
    shutil.copytree(releases["modules"][0], copy)
    with open(copy / "modeling_cognitive.py", "a") as f:
        f.write("\nprint('not the code cognitive-slm writes')\n")
    with pytest.raises(SystemExit) as exit_info:
        recipes.chat.main([str(copy), "--json", "--prompt", "hi"])
    assert exit_info.value.code == 2 and "--trust_remote_code" in capsys.readouterr().err


def test_parse_response_reads_the_trained_format():
    from cognitive.data.response import parse_response
    from cognitive.data.schema import CognitiveTrainingExample

    def example(name):
        return CognitiveTrainingExample.model_validate_json((ROOT / "data/examples" / f"{name}.json").read_text())

    cot = parse_response(example("cot_math_001").response())
    assert [s["step"] for s in cot["steps"]] == [1, 2, 3] and cot["final_answer"] == "Sarah has 23 apples left."
    assert cot["steps"][2]["reasoning"] == "Remaining = Initial - Used = 36 - 13 = 23 apples"
    assert cot["steps"][2]["memory"] == "Final count: 23" and cot["format_ok"]
    plan = parse_response(example("plan_cooking_001").response())
    assert len(plan["planning_steps"]) == 4
    assert plan["planning_steps"][0] == {
        "from_state": "planning",
        "to_state": "prep_dessert",
        "action": "Start dessert preparation (requires cooling time)",
        "rationale": "Dessert needs longest total time including cooling",
    }
    free_text = parse_response("1. Add 3 and 4\n2. Check it\n\nThe answer is probably 7.")
    assert free_text["final_answer"] is None and not free_text["format_ok"]
    assert [s["description"] for s in free_text["steps"]] == ["Add 3 and 4", "Check it"]


def test_model_card_reads_the_four_eval_result_formats(tmp_path):
    from cognitive.release.model_card import load_eval_scores

    suites = {  # recipes/evaluate.py --suite ...
        "settings": {"limit": None},
        "suites": {
            "release:modules": {
                "cognitive": {"scores": {"cognitive_reasoning": {"score": 0.5}}},
                "transfer": {"scores": {"cognitive_transfer_chain_sum": {"score": 0.25}}},
            }
        },
    }
    lm_eval = {
        "results": {
            "cognitive_reasoning": {
                "alias": "cognitive_reasoning",
                "exact_match,none": 0.5,
                "exact_match_stderr,none": 0.1,
            }
        },
        "config": {"limit": 2.0},
        "model_name": "release/x",
    }
    api = {  # cognitive.evaluation.harness.evaluate's scores per model
        "base": {"cognitive_reasoning": {"exact_match": 0.1}},
        "tuned": {"cognitive_reasoning": {"exact_match": 0.3}},
    }
    expected = {
        "evaluate": (EVAL_RESULTS, {"release:modules": {"cognitive_reasoning": {"score": 0.25, "exact_match": 0.25}}}),
        "lm_eval": (lm_eval, {"release/x": {"cognitive_reasoning": {"exact_match": 0.5, "exact_match_stderr": 0.1}}}),
        "api": (api, api),
        "suites": (
            suites,
            {
                "release:modules": {
                    "cognitive_reasoning": {"score": 0.5},
                    "cognitive_transfer_chain_sum": {"score": 0.25},
                }
            },
        ),
    }
    for name, (data, scores) in expected.items():
        (tmp_path / f"{name}.json").write_text(json.dumps(data))
        assert load_eval_scores(tmp_path / f"{name}.json")[0] == scores, name


def copy_run(run: Path, to: Path) -> Path:
    shutil.copytree(run, to, ignore=shutil.ignore_patterns("checkpoint-*"))
    return to


def edit_base(run: Path, base: Path, also_adapter: bool = False) -> None:
    config = yaml.safe_load((run / "run_config.yaml").read_text())
    config["model_name_or_path"] = str(base)
    (run / "run_config.yaml").write_text(yaml.safe_dump(config))
    if also_adapter:
        adapter = json.loads((run / "adapter_config.json").read_text())
        adapter["base_model_name_or_path"] = str(base)
        (run / "adapter_config.json").write_text(json.dumps(adapter))


def test_overwrite_replaces_a_release_of_this_project(runs, tmp_path):
    out = tmp_path / "release"
    previous = staging_dir(out, kind="release")
    (previous / "stale.safetensors").write_bytes(b"a shard of the previous release")
    publish_dir(previous, out)
    code, _, stderr = merge(["--run", str(runs["plain"]), "--out", str(out), "--overwrite"])
    assert code == 0, stderr[-2000:]
    assert not (out / "stale.safetensors").exists() and (out / "model.safetensors").exists()
    assert written_as(out) == "release" and not (tmp_path / "release.partial").exists()


def test_bad_input_is_one_line_exit_2_and_overwrites_nothing(runs, tiny_model_dir, tmp_path, monkeypatch):
    import huggingface_hub

    def fails(argv, *words):
        out = Path(argv[argv.index("--out") + 1])
        existed = out.exists()
        code, _, stderr = merge(argv)
        last = stderr.strip().splitlines()[-1]
        assert code == 2 and last.startswith("error: ") and all(w in last for w in words), stderr[-2000:]
        assert out.exists() == existed

    (tmp_path / "empty").mkdir()
    fails(["--run", str(tmp_path / "empty"), "--out", str(tmp_path / "a")], "has no adapter")

    pickled = copy_run(runs["plain"], tmp_path / "pickled")
    (pickled / "adapter_model.safetensors").rename(pickled / "adapter_model.bin")
    fails(["--run", str(pickled), "--out", str(tmp_path / "b")], "adapter_model.safetensors", "never loaded")

    qwen2 = tiny_model_dir("qwen2")  # same shapes as the tiny Llama: PEFT alone would load the adapter into it
    other = copy_run(runs["plain"], tmp_path / "other-base")
    edit_base(other, qwen2)
    fails(["--run", str(other), "--out", str(tmp_path / "c")], "was trained on", "run_config.yaml")
    other_modules = copy_run(runs["modules"], tmp_path / "other-base-modules")
    edit_base(other_modules, qwen2, also_adapter=True)  # names agree now: the modules' own base check refuses
    fails(["--run", str(other_modules), "--out", str(tmp_path / "d")], "model_type='llama'", "model_type='qwen2'")

    not_results = tmp_path / "not-results.json"
    not_results.write_text("[1, 2]")
    fails(
        ["--run", str(runs["plain"]), "--out", str(tmp_path / "g"), "--eval_results", str(not_results)],
        "not a recipes/evaluate.py",
    )

    existing = tmp_path / "existing"
    existing.mkdir()
    (existing / "keep.txt").write_text("mine")
    fails(["--run", str(runs["plain"]), "--out", str(existing)], "already exists", "--overwrite")
    assert [p.name for p in existing.iterdir()] == ["keep.txt"]

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    fails(["--run", str(runs["plain"]), "--out", str(tmp_path / "e"), "--push_to_hub", "me/tiny"], "HF_HUB_OFFLINE")
    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.setattr(huggingface_hub, "is_offline_mode", lambda: False)
    monkeypatch.setattr(huggingface_hub, "get_token", lambda: None)
    fails(["--run", str(runs["plain"]), "--out", str(tmp_path / "f"), "--push_to_hub", "me/tiny"], "hf auth login")


def paired_results(run: Path) -> dict:
    """recipes/evaluate.py's results.json with a paired comparison of `run` (two seeds: it and a copy) with its base,
    built from constructed samples by the library itself."""
    from cognitive.evaluation.outputs import output_shares
    from cognitive.evaluation.paired import compare_samples

    def samples(scores, first=False):
        text = "Final Answer: {}" if first else "12 + 30 = 42\nFinal Answer: {}"
        return {"t": {f"d{i}": {"id": f"d{i}", "score": s, "output": text.format(s)} for i, s in enumerate(scores)}}

    base, tuned = samples([0, 1, 0, 0] * 5), samples([1, 1, 0, 0] * 5, first=True)
    both = compare_samples([tuned, tuned], [base], {"reasoning": ["t"]}, resamples=500)
    rows = lambda s: list(s["t"].values())  # noqa: E731
    return {
        "settings": {"suite": "cognitive", "limit": 20},
        "suites": {"base": {"cognitive": {"scores": {"t": {"score": 0.25}}}}},
        "paired": {
            "reference": "base",
            "level": 0.95,
            "resamples": 500,
            "arms": {
                "base": {"kind": "base", "paths": ["embedded:smollm2-135m-instruct"], "seeds": ["base"]},
                "tuned": {"kind": "adapter", "paths": [str(run), "runs/other-seed"], "seeds": ["tuned-s0", "tuned-s1"]},
            },
            "comparisons": {"tuned": {"cognitive": both}},
            "shares": {
                "base": {"cognitive": output_shares(rows(base))},
                "tuned": {"cognitive": output_shares(rows(tuned))},
            },
        },
    }


def test_model_card_carries_the_paired_rows_against_the_base(runs, tmp_path):
    """merge --eval_results with results that pair the run with its base: the card has the rows (as scored and
    worked) and both models' shares; results without the run have no such section; an unreadable "paired" entry
    is refused in one line before merging."""
    from cognitive.release.model_card import paired_section

    results = tmp_path / "paired.json"
    results.write_text(json.dumps(paired_results(runs["plain"])))
    code, _, stderr = merge(
        ["--run", str(runs["plain"]), "--out", str(tmp_path / "rel"), "--eval_results", str(results)]
    )
    assert code == 0, stderr[-2000:]
    card = (tmp_path / "rel" / "README.md").read_text()
    assert "### Paired with its base" in card and "2 training seeds averaged per document" in card
    assert "| tuned | cognitive | headline | 20 | +0.250 [" in card  # 5 of 20 documents gained
    row = next(line for line in card.splitlines() if line.startswith("| tuned | cognitive | headline |"))
    cells = row.split(" | ")  # worked: every answer of the tuned model is stated first, counted wrong
    assert cells[5] == "above" and cells[6].startswith("-0.250 [") and cells[7] == "below |"
    assert "| tuned | cognitive | 20 | 1.00 | – | 0.00 |" in card and "| base | cognitive | 20 | 0.00 |" in card

    assert paired_section(str(results), runs["modules"]) == ""  # another run
    assert paired_section(None, runs["plain"]) == ""
    bad = paired_results(runs["plain"])
    bad["paired"]["arms"]["tuned"]["paths"] = 3
    results.write_text(json.dumps(bad))
    code, _, stderr = merge(
        ["--run", str(runs["plain"]), "--out", str(tmp_path / "bad"), "--eval_results", str(results)]
    )
    assert code == 2 and stderr.strip().splitlines()[-1].startswith(
        f'error: eval results {results}: its "paired" entry'
    )
    assert not (tmp_path / "bad").exists()
