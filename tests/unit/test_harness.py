"""The evaluation wrapper's pure parts: model specs from run dirs, the equivalent CLI command, flattening
lm-eval's results, the comparison table."""

import json

import pytest
import yaml

from cognitive.errors import UserError
from cognitive.evaluation.harness import ModelSpec, flatten_scores, headline_scores, lm_eval_command, score_table
from cognitive.tasks import TASK_TYPES


def test_model_specs_from_dirs(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    with pytest.raises(UserError, match=r"no adapter \(adapter_config.json\)"):
        ModelSpec.adapter(str(run))
    (run / "adapter_config.json").write_text("{}")
    with pytest.raises(UserError, match=r"no adapter_model\.safetensors"):
        ModelSpec.adapter(str(run))
    (run / "adapter_model.safetensors").write_bytes(b"")
    with pytest.raises(UserError, match=r"run_config\.yaml is missing"):
        ModelSpec.adapter(str(run))
    (run / "run_config.yaml").write_text(yaml.safe_dump({"model_name_or_path": "embedded:smollm2-135m-instruct"}))
    spec = ModelSpec.adapter(str(run))
    assert (spec.label, spec.pretrained, spec.peft, spec.cognitive_run) == (
        "adapter:run",
        "embedded:smollm2-135m-instruct",
        str(run),
        None,
    )
    with pytest.raises(UserError, match=r"cognitive_adapter\.safetensors"):
        ModelSpec.modules(str(run))
    (run / "cognitive_adapter.safetensors").write_bytes(b"")
    with pytest.raises(UserError, match=r"need both cognitive_adapter\.safetensors and cognitive_config\.json"):
        ModelSpec.modules(str(run))
    (run / "cognitive_config.json").write_text("{}")
    assert ModelSpec.modules(str(run)).cognitive_run == str(run)

    release = tmp_path / "release"
    release.mkdir()
    (release / "config.json").write_text(json.dumps({"model_type": "llama"}))
    assert not ModelSpec.release(str(release)).trust_remote_code  # a plain release runs no code
    (release / "config.json").write_text(json.dumps({"auto_map": {"AutoModelForCausalLM": "modeling.X"}}))
    with pytest.raises(UserError, match="ships code that this checkout did not write"):
        ModelSpec.release(str(release))  # trust is never implied by an auto_map
    assert ModelSpec.release(str(release), trust_remote_code=True).trust_remote_code  # the user opted in


def test_lm_eval_command():
    cmd = lm_eval_command(
        "/m", "runs/x", ["cognitive"], 3, 8, metadata={"difficulty": "basic"}, gen_kwargs={"max_gen_toks": 64}
    )
    assert cmd.startswith("lm_eval --model hf --model_args pretrained=/m,peft=runs/x --tasks cognitive --include_path ")
    assert cmd.endswith('--limit 3 --metadata \'{"difficulty": "basic"}\' --gen_kwargs max_gen_toks=64')


def test_flatten_and_table():
    results = {
        "results": {
            "cognitive_logic": {
                "alias": "x",
                "score,none": 0.5,
                "score_stderr,none": 0.1,
                "cell_accuracy,none": 0.75,
                "score_basic,none": 1.0,
                "answered,none": 1.0,
                "sample_len": 2,
            },
            "gsm8k_cot_zeroshot": {
                "exact_match,flexible-extract": 0.25,
                "exact_match_stderr,flexible-extract": 0.05,
                "exact_match,strict-match": 0.125,
            },
        },
        "groups": {"cognitive": {"score,none": 0.5, "sample_len": 2}},
    }
    scores = flatten_scores(results)
    assert scores == {
        "cognitive": {"score": 0.5},
        "cognitive_logic": {
            "score": 0.5,
            "score_stderr": 0.1,
            "cell_accuracy": 0.75,
            "score_basic": 1.0,
            "answered": 1.0,
        },
        "gsm8k_cot_zeroshot": {
            "exact_match/flexible-extract": 0.25,
            "exact_match/flexible-extract_stderr": 0.05,
            "exact_match/strict-match": 0.125,
        },  # lm-eval's filters kept apart
    }
    del scores["gsm8k_cot_zeroshot"]
    table = score_table({"a": scores, "b": {"cognitive": {"score": 0.25}}}).splitlines()
    assert table[0] == "| task | metric | a | b |"
    assert table[2:] == [
        "| cognitive | score | 0.500 | 0.250 |",
        "| cognitive_logic | score | 0.500 ± 0.100 | – |",
        "| cognitive_logic | cell_accuracy | 0.750 | – |",
        "| cognitive_logic | score_basic | 1.000 | – |",
        "| cognitive_logic | answered | 1.000 | – |",
    ]
    assert headline_scores({"a": scores}) == {"a": {"cognitive": 0.5, "cognitive_logic": 0.5}}


def test_suite_summary_is_the_mean_over_types_with_standard_errors():
    from cognitive.evaluation.harness import SUITES, suite_summary

    scores = {t.eval_task: {"score": s, "score_stderr": 0.1} for t, s in zip(TASK_TYPES, (0.0, 0.2, 0.4, 0.6, 0.8))}
    summary = suite_summary(SUITES["cognitive"], scores)
    assert summary["headline"] == pytest.approx(0.4)
    assert summary["types"]["planning"] == {"score": 0.2, "stderr": 0.1, "step_accuracy": None}
    assert summary["headline_stderr"] == pytest.approx((5 * 0.01) ** 0.5 / 5)
    transfer = {x.eval_task: {"score": 1.0} for x in TASK_TYPES[0].transfer}  # one type's tasks only
    summary = suite_summary(SUITES["transfer"], transfer)
    assert summary["headline"] == 1.0 and list(summary["types"]) == ["chain_of_thought"]
    assert summary["headline_stderr"] is None  # no standard errors (one document): none claimed
