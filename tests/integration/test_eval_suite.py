"""The suite through lm-eval itself: every task YAML validates and builds, lm_eval's own errors for a
missing include path or an unknown task, a tiny random model through the whole `cognitive` group (garbage
scores 0, nothing crashes), and recipes/evaluate.py comparing a base, an adapter, a release and a run
with cognitive modules."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
import yaml

from cognitive.evaluation.pinning import TASKS_DIR
from cognitive.evaluation.snapshots import DOCS_PER_DIFFICULTY, SNAPSHOT_DIFFICULTIES
from cognitive.tasks import TASK_TYPES, plain_tasks, transfer_tasks
from tests.conftest import run_lm_eval, run_python

TASKS = {t.eval_task: t.name for t in TASK_TYPES}  # eval task -> task type

SUITE = ["cognitive", *TASKS]


def test_lm_eval_validate_accepts_every_task():
    result = run_python(["-m", "lm_eval", "validate", "--tasks", ",".join(SUITE), "--include_path", "eval/tasks"])
    assert result.returncode == 0, result.stdout + result.stderr[-2000:]
    assert "All tasks found and valid" in result.stdout


def test_every_task_builds_with_its_documents_prompt_and_generation_settings():
    from lm_eval.tasks import TaskManager

    manager = TaskManager(include_path=str(TASKS_DIR), include_defaults=False)
    expected = {
        *TASKS,
        *plain_tasks(),
        *(t.eval_task for t in transfer_tasks()),
        "cognitive_plain",
        "cognitive_transfer",
    }
    assert manager.match_tasks(["cognitive_*"]) == sorted(expected)  # the documented command: every task of ours
    loaded = manager.load(["cognitive"])
    assert sorted(loaded["group_map"]["cognitive"]) == sorted(TASKS)  # every task tagged cognitive-tasks
    for name, task in loaded["tasks"].items():
        docs = list(task.test_docs())
        assert len(docs) == len(SNAPSHOT_DIFFICULTIES) * DOCS_PER_DIFFICULTY
        doc = docs[0]
        assert task.doc_to_text(doc) == doc["user_prompt"] and doc["user_prompt"].startswith("Context: ")
        assert task.config.description == "system_prompt" and task.config.num_fewshot == 0
        gen = task.config.generation_kwargs
        assert gen["do_sample"] is False and {"<|im_end|>", "<|eot_id|>", "<end_of_turn>"} <= set(gen["until"])
        assert task.config.metadata["snapshot_sha256"] and task.config.metadata["version"] >= 1
        reference = task.process_results(doc, [f"**Final Answer:** {doc['reference']}"])
        assert reference["score"] == 1.0 and reference[f"score_{doc['difficulty']}"] == 1.0
        declared = {m["metric"] for m in task.config.metric_list}
        assert set(reference) <= declared, f"{name}: metrics without an aggregation: {set(reference) - declared}"


def test_difficulty_metadata_reaches_the_loader():
    from lm_eval.tasks import TaskManager

    manager = TaskManager(include_path=str(TASKS_DIR), include_defaults=False, metadata={"difficulty": "advanced"})
    loaded = manager.load(["cognitive_state"])
    docs = list(loaded["tasks"]["cognitive_state"].test_docs())
    assert len(docs) == DOCS_PER_DIFFICULTY and {d["difficulty"] for d in docs} == {"advanced"}


def test_split_metadata_reaches_the_loader():
    from lm_eval.tasks import TaskManager

    from cognitive.data.generators import EVAL_SEEDS, VALIDATION_SEEDS

    for split, seeds in (("validation", VALIDATION_SEEDS), ("test", EVAL_SEEDS)):
        manager = TaskManager(include_path=str(TASKS_DIR), include_defaults=False, metadata={"split": split})
        docs = list(manager.load(["cognitive_state_plain"])["tasks"]["cognitive_state_plain"].test_docs())
        assert len(docs) == len(SNAPSHOT_DIFFICULTIES) * DOCS_PER_DIFFICULTY
        assert all(int(d["id"].rsplit("-", 1)[1]) in seeds for d in docs), split


def test_evaluate_recipe_on_the_validation_split(tiny_model_dir, tmp_path):
    """--split validation: every offline suite scores validation documents (our generators' from VALIDATION_SEEDS,
    reasoning-gym's from TRANSFER_VALIDATION_SEED), and the report says so."""
    import recipes.evaluate as recipe
    from cognitive.atomic import publish_dir, staging_dir, written_as
    from cognitive.data.generators import VALIDATION_SEEDS
    from cognitive.evaluation.transfer import TRANSFER_VALIDATION_SEED

    out = tmp_path / "eval"
    previous = staging_dir(out, kind="evaluation")  # an earlier evaluation of ours in --out: replaced whole
    (previous / "stale.txt").write_text("an earlier result")
    publish_dir(previous, out)
    argv = ["--base", str(tiny_model_dir("llama")), "--suite", "cognitive,plain,transfer", "--split", "validation"]
    recipe.main([*argv, "--limit", "1", "--difficulty", "basic", "--max_gen_toks", "8", "--out", str(out)])
    assert not (out / "stale.txt").exists() and written_as(out) == "evaluation"
    report = json.loads((out / "results.json").read_text())
    assert report["settings"]["split"] == "validation"
    for suite in ("plain", "transfer"):
        assert '"split": "validation"' in report["suites"]["base"][suite]["command"], suite

    def samples(suite):
        files = (out / "samples" / suite).rglob("*.jsonl")
        return [json.loads(line) for f in files for line in f.read_text().splitlines()]

    ours = samples("cognitive") + samples("plain")
    assert len(ours) == 2 * len(TASK_TYPES)
    assert all(int(s["id"].rsplit("-", 1)[1]) in VALIDATION_SEEDS and s["difficulty"] == "basic" for s in ours)
    transfer = samples("transfer")
    assert len(transfer) == len(transfer_tasks())
    assert all(f"-seed{TRANSFER_VALIDATION_SEED}-" in s["id"] for s in transfer)


@pytest.mark.parametrize(
    "tasks, include", [("cognitive_nope", "eval/tasks"), ("cognitive_reasoning", "eval/no_such_dir")]
)
def test_unknown_task_or_missing_include_path_is_lm_evals_own_error(tasks, include, tiny_model_dir):
    result = run_python(
        [
            "-m",
            "lm_eval",
            "run",
            "--model",
            "hf",
            "--model_args",
            f"pretrained={tiny_model_dir('llama')}",
            "--tasks",
            tasks,
            "--include_path",
            include,
            "--limit",
            "1",
        ]
    )
    assert result.returncode != 0
    assert f"Tasks not found: {tasks}" in result.stderr


def test_tiny_random_model_runs_the_whole_group(tiny_model_dir, tmp_path):
    """With the fast check's flags: basic documents only (--metadata), one generation setting for every task
    (--gen_kwargs; lm-eval then batches all tasks together; the tiny model has only 1024 positions)."""
    out = tmp_path / "lm_eval"
    result = run_lm_eval(
        f"pretrained={tiny_model_dir('llama')}",
        "cognitive",
        *("--batch_size", "16", "--metadata", '{"difficulty": "basic"}'),
        limit=2,
        out=out,
        max_gen_toks=48,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    [results_file] = out.rglob("results_*.json")
    results = json.loads(results_file.read_text())
    assert results["groups"]["cognitive"]["score,none"] == 0.0  # random weights: garbage, scored 0
    generation_settings = []
    for task in TASKS:
        metrics = results["results"][task]
        assert metrics["score,none"] == 0.0 and metrics["score_basic,none"] == 0.0
        assert "score_intermediate,none" not in metrics  # --metadata reached the loader: basic documents only
        assert results["n-samples"][task]["effective"] == 2
        [samples_file] = out.rglob(f"samples_{task}_*.jsonl")
        for sample in map(json.loads, samples_file.read_text().splitlines()):
            prompt, gen = sample["arguments"]["gen_args_0"]["arg_0"], sample["arguments"]["gen_args_0"]["arg_1"]
            assert prompt.startswith("<|im_start|>system\nYou are a cognitive AI system") and prompt.endswith(
                "<|im_start|>assistant\n"
            )
            assert "<|im_end|>" in gen["until"] and gen["max_gen_toks"] == 48
            assert sample["doc"]["difficulty"] == "basic" and sample["score"] == 0.0
            generation_settings.append(gen)
    assert all(g == generation_settings[0] for g in generation_settings)  # one batch group for all tasks


# ---------------------------------------------------------------------------------------- the recipe
def _tiny_run(base_dir, run_dir, modules: bool):
    """A run dir as sft.py leaves it: LoRA adapter + run_config.yaml (+ cognitive modules when asked)."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from cognitive.model.inject import inject_cognitive_modules, lora_target_modules, save_cognitive_adapter
    from cognitive.model.modules import cognitive_blocks

    torch.manual_seed(1)
    model = AutoModelForCausalLM.from_pretrained(base_dir, dtype=torch.float32)
    if modules:
        inject_cognitive_modules(model, {})
        for block in cognitive_blocks(model).values():
            for p in block.parameters():  # non-zero gates, so the loaded modules change the model
                torch.nn.init.normal_(p, std=0.05)
    peft_model = get_peft_model(model, LoraConfig(r=4, target_modules=lora_target_modules(model)))
    peft_model.save_pretrained(run_dir)
    if modules:
        save_cognitive_adapter(peft_model, run_dir)
    (run_dir / "run_config.yaml").write_text(yaml.safe_dump({"model_name_or_path": str(base_dir)}))
    return run_dir


def test_modules_run_is_loaded_into_the_evaluated_model(tiny_model_dir, tmp_path):
    from safetensors.torch import load_file

    from cognitive.evaluation.harness import ModelSpec, _modules_lm
    from cognitive.model.modules import cognitive_blocks

    run = _tiny_run(tiny_model_dir("llama"), tmp_path / "run", modules=True)
    lm = _modules_lm(ModelSpec.modules(str(run)), batch_size=1, device="cpu", dtype="float32")
    blocks = cognitive_blocks(lm.model.get_base_model())
    saved = load_file(str(run / "cognitive_adapter.safetensors"))
    assert blocks and all(
        torch.equal(saved[f"layers.{i}.{k}"], v) for i, b in blocks.items() for k, v in b.state_dict().items()
    )
    assert any("lora_" in n for n, _ in lm.model.named_parameters())


def test_evaluate_recipe_compares_four_models(tiny_model_dir, tmp_path, capsys):
    import recipes.evaluate as recipe

    base = tiny_model_dir("llama")
    adapter = _tiny_run(base, tmp_path / "adapter-run", modules=False)
    modules = _tiny_run(base, tmp_path / "modules-run", modules=True)
    release = tmp_path / "release"
    shutil.copytree(base, release)
    out = tmp_path / "eval"
    recipe.main(
        [
            "--base",
            str(base),
            "--adapter",
            str(adapter),
            "--release",
            str(release),
            "--modules_run",
            str(modules),
            "--tasks",
            "cognitive_reasoning,cognitive_memory",
            "--limit",
            "1",
            "--batch_size",
            "1",
            "--max_gen_toks",
            "16",
            "--out",
            str(out),
        ]
    )
    report = json.loads((out / "results.json").read_text())
    labels = ["base", "adapter:adapter-run", "release:release", "modules:modules-run"]
    assert list(report["models"]) == labels
    for label in labels:
        model = report["models"][label]
        assert model["documents"] == 2 and model["wall_s"] > 0
        assert (
            model["scores"]["cognitive_reasoning"]["score"] == 0.0
            and "exact_match" in model["scores"]["cognitive_memory"]
        )
    assert "peft=" in report["models"]["adapter:adapter-run"]["command"]
    paired = report["paired"]  # named tasks: one part, "tasks", every model against the first
    assert list(paired["comparisons"]) == labels[1:] and list(paired["shares"]) == labels
    release = paired["comparisons"]["release:release"]["tasks"]["scored"]  # a copy of the base
    assert release["tasks"].keys() == {"cognitive_reasoning", "cognitive_memory"} and release["headline"]["high"] == 0
    table = (out / "table.md").read_text()
    assert table.splitlines()[0] == "| task | metric | " + " | ".join(labels) + " |"
    assert "| cognitive_memory | score |" in table
    assert (out / "scores.png").read_bytes()[:4] == b"\x89PNG"
    [sample] = map(
        json.loads, (out / "samples" / "modules_modules-run" / "cognitive_memory.jsonl").read_text().splitlines()
    )
    assert sample["difficulty"] == "basic" and sample["score"] == 0.0 and isinstance(sample["output"], str)
    assert "[4/4] modules:modules-run" in capsys.readouterr().out  # progress
    assert not (tmp_path / "eval.partial").exists()  # staged in eval.partial, renamed when complete


def test_evaluate_recipe_refuses_a_non_run(tmp_path):
    result = run_python(["recipes/evaluate.py", "--adapter", str(tmp_path), "--out", str(tmp_path / "x")])
    assert result.returncode == 2 and "no adapter (adapter_config.json)" in result.stderr


def test_every_suite_runs_on_a_tiny_model(tiny_model_dir, tmp_path, monkeypatch, capsys):
    """recipes/evaluate.py --suite all on a tiny random model, one document per task: the offline suites run and
    report a headline and per task type scores; the standard suite needs the Hub, refused in one line here."""
    import recipes.evaluate as recipe

    out = tmp_path / "eval"
    recipe.main(
        [
            "--base",
            str(tiny_model_dir("llama")),
            "--suite",
            "cognitive,plain,transfer",
            "--limit",
            "1",
            "--max_gen_toks",
            "8",
            "--out",
            str(out),
        ]
    )
    report = json.loads((out / "results.json").read_text())
    suites = report["suites"]["base"]
    assert list(suites) == ["cognitive", "plain", "transfer"]
    for name, summary in suites.items():
        assert summary["headline"] == 0.0 and set(summary["types"]) == {t.name for t in TASK_TYPES}, name
        assert summary["limit"] == 1
    assert [suites[s]["documents"] for s in suites] == [len(TASK_TYPES), len(TASK_TYPES), len(transfer_tasks())]
    table = (out / "table.md").read_text()
    assert "| transfer | 1 | 0.000 |" in table and "### plain: every task" in table
    assert (out / "suites.png").read_bytes()[:4] == b"\x89PNG"
    [sample] = map(
        json.loads, (out / "samples" / "plain" / "base" / "cognitive_state_plain.jsonl").read_text().splitlines()
    )
    assert sample["score"] == 0.0

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_info:
        recipe.main(["--base", str(tiny_model_dir("llama")), "--suite", "standard", "--out", str(tmp_path / "s")])
    err = capsys.readouterr().err.strip().splitlines()
    assert exit_info.value.code == 2 and len(err) == 1 and "from the Hugging Face Hub" in err[0]
    assert not (tmp_path / "s").exists() and not (tmp_path / "s.partial").exists()


def test_evaluate_recipe_pairs_every_model_with_the_first(tiny_model_dir, tmp_path, capsys):
    """Two tiny models, one of them an arm of two training seeds: recipes/evaluate.py writes the paired verdict (per
    suite, type and task, as scored and worked) and every model's output shares into table.md, results.json and
    paired.png. A LoRA adapter as initialised (B = 0) is the base itself: it differs by exactly 0 everywhere."""
    import recipes.evaluate as recipe

    base = tiny_model_dir("llama")
    runs = [_tiny_run(base, tmp_path / f"run-seed{k}", modules=False) for k in range(2)]
    out = tmp_path / "eval"
    argv = ["--base", str(base), "--adapter", f"tuned={runs[0]},{runs[1]}", "--suite", "cognitive,plain"]
    recipe.main([*argv, "--limit", "1", "--difficulty", "basic", "--max_gen_toks", "8", "--out", str(out)])
    printed = capsys.readouterr().out
    report = json.loads((out / "results.json").read_text())
    assert list(report["suites"]) == ["base", "tuned-s0", "tuned-s1"]  # every seed evaluated
    paired = report["paired"]
    assert paired["reference"] == "base" == report["settings"]["compare_to"] and paired["level"] == 0.95
    assert paired["arms"]["tuned"] == {
        "kind": "adapter",
        "paths": [str(r) for r in runs],
        "seeds": ["tuned-s0", "tuned-s1"],
    }
    assert list(paired["comparisons"]) == ["tuned"] and list(paired["comparisons"]["tuned"]) == ["cognitive", "plain"]
    for both in paired["comparisons"]["tuned"].values():
        for how in ("scored", "worked"):
            result = both[how]
            assert result["headline"]["documents"] == len(TASK_TYPES) and result["seeds"] == 2
            assert set(result["types"]) == set(TASKS.values())
            for entry in [result["headline"], *result["types"].values(), *result["tasks"].values()]:
                assert (entry["difference"], entry["low"], entry["high"], entry["verdict"]) == (0, 0, 0, "level")
    for arm in ("base", "tuned"):
        for suite in ("cognitive", "plain"):
            shares = paired["shares"][arm][suite]
            assert shares["documents"] == len(TASK_TYPES) * (2 if arm == "tuned" else 1)
            assert all(0 <= shares[k] <= 1 for k in ("answers_first", "token_limit", "loop"))
            if arm == "tuned":  # the same outputs, twice
                assert {**shares, "documents": 5} == paired["shares"]["base"][suite]
    table = (out / "table.md").read_text()
    assert "## Paired with base: is the model better?" in table and "### How the outputs went" in table
    assert (
        "| tuned | cognitive | headline | 5 | +0.000 [+0.000, +0.000] | level | +0.000 [+0.000, +0.000] | level |"
        in table
    )
    assert "| tuned | plain | cognitive_memory_plain | 1 | +0.000" in table
    assert table.strip() in printed
    assert (out / "paired.png").read_bytes()[:4] == b"\x89PNG"
    [row] = map(json.loads, (out / "samples/plain/tuned-s1/cognitive_state_plain.jsonl").read_text().splitlines())
    assert row["max_gen_toks"] == 8 and 0 < row["generated_tokens"] <= 8 + 2
