"""The paired comparison of a tuned model with its base (cognitive/evaluation/paired.py): the difference is exactly
tuned headline minus base headline as the suite builds it, seeds are averaged per document, the bootstrap interval
has the width the documents allow, and samples of other documents are refused with one line."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from cognitive.errors import UserError
from cognitive.evaluation.paired import (
    compare_samples,
    evaluation_arms,
    paired_difference,
    paired_report,
    parse_arm,
    read_scores,
    scores_of,
    verdict,
)

TYPES = {"reasoning": ["t_sum", "t_word"], "planning": ["t_plan"]}


def scores(values: dict[str, list[float]]) -> dict[str, dict[str, float]]:
    return {task: {f"{task}-{i}": v for i, v in enumerate(vals)} for task, vals in values.items()}


def headline(values: dict[str, list[float]]) -> float:
    """The suite's headline as harness.suite_summary builds it: mean over types of the mean over their tasks."""
    return float(np.mean([np.mean([np.mean(values[t]) for t in tasks]) for tasks in TYPES.values()]))


def test_identical_models_differ_by_nothing():
    base = scores({"t_sum": [1, 0, 1, 0], "t_word": [0, 0, 1, 1], "t_plan": [1, 1, 0, 0]})
    result = paired_difference([base], base, TYPES, resamples=500)
    for entry in [result["headline"], *result["types"].values(), *result["tasks"].values()]:
        assert (entry["difference"], entry["low"], entry["high"]) == (0.0, 0.0, 0.0)
        assert verdict(entry) == "level"


def test_difference_is_the_headline_difference_and_seeds_are_averaged():
    base_v = {"t_sum": [0, 0, 1, 0], "t_word": [1, 0, 0, 0], "t_plan": [0, 1, 0, 0]}
    seed0 = {"t_sum": [1, 1, 1, 0], "t_word": [1, 0, 0, 0], "t_plan": [0, 0, 0, 0]}
    seed1 = {"t_sum": [1, 0, 1, 1], "t_word": [1, 1, 0, 0], "t_plan": [0, 1, 0, 0]}
    result = paired_difference([scores(seed0), scores(seed1)], scores(base_v), TYPES, resamples=500)
    expected = (headline(seed0) + headline(seed1)) / 2 - headline(base_v)
    assert result["headline"]["difference"] == pytest.approx(expected, abs=1e-12)
    # t_sum: seed means 1, .5, 1, .5 against 0, 0, 1, 0
    assert result["tasks"]["t_sum"]["difference"] == pytest.approx((1 + 0.5 + 0 + 0.5) / 4, abs=1e-12)
    assert result["types"]["planning"]["difference"] == pytest.approx(-0.125, abs=1e-12)
    assert result["headline"]["documents"] == 12 and result["seeds"] == 2
    assert result["headline"]["low"] <= expected <= result["headline"]["high"]


def test_interval_width_matches_the_documents():
    """On one task of 400 documents where the tuned model is right on 60% and the base on 40%, independently, the
    95% interval of the difference is about +-1.96 x the standard error of a paired mean (within 15%), and a clear
    gain is called 'above', the mirror 'below'."""
    rng = np.random.default_rng(1)
    n = 400
    tuned_v, base_v = (rng.random(n) < 0.6).astype(float), (rng.random(n) < 0.4).astype(float)
    types = {"only": ["t"]}
    result = paired_difference([scores({"t": tuned_v})], scores({"t": base_v}), types)["headline"]
    d = tuned_v - base_v
    half = 1.96 * d.std() / np.sqrt(n)
    assert (result["high"] - result["low"]) / 2 == pytest.approx(half, rel=0.15)
    assert verdict(result) == "above"
    mirror = paired_difference([scores({"t": base_v})], scores({"t": tuned_v}), types)["headline"]
    assert verdict(mirror) == "below"
    assert mirror["difference"] == pytest.approx(-result["difference"], abs=1e-12)


def test_other_documents_are_refused_naming_the_task():
    base = scores({"t_sum": [1, 0, 1], "t_word": [0, 0], "t_plan": [1]})
    fewer = scores({"t_sum": [1, 0], "t_word": [0, 0], "t_plan": [1]})
    with pytest.raises(UserError, match=r"^t_sum: seed 0 answered other documents than the base \(2 against 3"):
        paired_difference([fewer], base, TYPES)


def test_read_scores_and_a_bad_line(tmp_path):
    (tmp_path / "t_sum.jsonl").write_text(
        "\n".join(json.dumps({"id": f"x-{i}", "score": s, "output": "..."}) for i, s in enumerate([1.0, 0.0]))
    )
    assert read_scores(tmp_path) == {"t_sum": {"x-0": 1.0, "x-1": 0.0}}
    (tmp_path / "t_word.jsonl").write_text(json.dumps({"id": "y-0", "score": 1.0}) + "\n{not json}\n")
    with pytest.raises(UserError, match=r"t_word\.jsonl:2: not valid JSON"):
        read_scores(tmp_path)
    with pytest.raises(UserError, match=r"no <task>\.jsonl samples"):
        read_scores(tmp_path / "missing")


def test_worked_counts_an_answer_stated_first_as_wrong():
    """An answer on the first line before any working scores 0 with worked=True, however right; one reached after a
    line of working keeps its score; without worked=True both keep it."""
    samples = {
        "t": {
            "guess": {"id": "guess", "score": 1.0, "output": "Final Answer: Arnold"},
            "worked": {"id": "worked", "score": 1.0, "output": "Arnold is not in house 1.\nFinal Answer: Arnold"},
            "wrong": {"id": "wrong", "score": 0.0, "output": "Final Answer: Bob"},
        }
    }
    assert scores_of(samples) == {"t": {"guess": 1.0, "worked": 1.0, "wrong": 0.0}}
    assert scores_of(samples, worked=True) == {"t": {"guess": 0.0, "worked": 1.0, "wrong": 0.0}}


# ------------------------------------------------------------------------------- the verdict recipes/evaluate.py gives
WORKING = "Alice is not in house 1.\nSo she is in house 2.\nFinal Answer: {}"


def samples(values: dict[str, list[float]], output=lambda task, i, v: WORKING.format(v)) -> dict:
    """read_samples-shaped rows: {task: {id: {"id", "score", "output"}}}."""
    return {
        task: {
            f"{task}-{i}": {"id": f"{task}-{i}", "score": float(v), "output": output(task, i, v)}
            for i, v in enumerate(vs)
        }
        for task, vs in values.items()
    }


def entries(result: dict) -> list[dict]:
    return [result["headline"], *result["types"].values(), *result["tasks"].values()]


def test_identical_models_read_zero_with_a_zero_width_interval_as_scored_and_worked():
    rng = np.random.default_rng(0)
    base = samples({t: (rng.random(30) < 0.4).tolist() for t in ("t_sum", "t_word", "t_plan")})
    result = compare_samples([base], [base], TYPES, resamples=500)
    for how in ("scored", "worked"):
        for entry in entries(result[how]):
            assert (entry["difference"], entry["low"], entry["high"], entry["verdict"]) == (0.0, 0.0, 0.0, "level")


def test_a_model_made_worse_on_one_task_reads_below_there_and_level_elsewhere():
    """The tuned model loses every right answer of t_word and elsewhere differs from the base by chance (a tenth of
    the documents flipped either way)."""
    rng = np.random.default_rng(2)
    base_v = {t: (rng.random(60) < 0.5).astype(float) for t in ("t_sum", "t_word", "t_plan")}
    tuned_v = {t: np.where(rng.random(60) < 0.1, 1 - v, v) for t, v in base_v.items()}
    tuned_v["t_word"] = np.zeros(60)
    result = compare_samples([samples(tuned_v)], [samples(base_v)], TYPES, resamples=2000)["scored"]
    assert result["tasks"]["t_word"]["verdict"] == "below"
    assert result["tasks"]["t_word"]["difference"] == pytest.approx(-base_v["t_word"].mean())
    assert result["tasks"]["t_sum"]["verdict"] == result["tasks"]["t_plan"]["verdict"] == "level"
    assert result["types"]["planning"]["verdict"] == "level"
    assert result["tasks"]["t_sum"]["low"] < 0 < result["tasks"]["t_sum"]["high"]  # not a zero-width interval


def test_an_answers_first_model_reads_above_as_scored_and_level_worked():
    """Both models reach the same right answers after working; the tuned one also states 40% more answers on its
    first line, before any working, and gets them right: above as scored, level (exactly 0) worked."""
    rng = np.random.default_rng(3)
    worked = {t: (rng.random(50) < 0.3).astype(float) for t in ("t_sum", "t_word", "t_plan")}
    guessed = {t: (v == 0) & (rng.random(50) < 0.4) for t, v in worked.items()}
    base = samples(worked)

    def tuned_output(task, i, v):
        return "Final Answer: Arnold\nBecause Arnold likes tea." if guessed[task][i] else WORKING.format(v)

    tuned = samples({t: worked[t] + guessed[t] for t in worked}, tuned_output)
    result = compare_samples([tuned], [base], TYPES, resamples=2000)
    assert result["scored"]["headline"]["verdict"] == "above"
    assert all(e["verdict"] == "above" for e in result["scored"]["tasks"].values())
    for entry in entries(result["worked"]):
        assert (entry["difference"], entry["low"], entry["high"], entry["verdict"]) == (0.0, 0.0, 0.0, "level")


def test_seeds_of_both_arms_are_averaged_per_document():
    base0, base1 = samples({"t": [1, 0, 0, 0]}), samples({"t": [1, 1, 0, 0]})
    tuned0, tuned1 = samples({"t": [1, 1, 1, 0]}), samples({"t": [1, 1, 0, 1]})
    result = compare_samples([tuned0, tuned1], [base0, base1], {"only": ["t"]}, resamples=200)["scored"]
    # per document: (1, 1, .5, .5) - (1, .5, 0, 0)
    assert result["headline"]["difference"] == pytest.approx((0 + 0.5 + 0.5 + 0.5) / 4)
    with pytest.raises(UserError, match="seed 1 answered other documents than seed 0"):
        compare_samples([tuned0], [base0, samples({"t": [1, 0, 0]})], {"only": ["t"]})


def _write(folder, rows: dict) -> None:
    folder.mkdir(parents=True)
    for task, by_id in rows.items():
        (folder / f"{task}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in by_id.values()))


def _run_dir(path, base="embedded:smollm2-135m-instruct"):
    path.mkdir(parents=True)
    for name in ("adapter_config.json", "adapter_model.safetensors"):
        (path / name).write_text("{}")
    (path / "run_config.yaml").write_text(f"model_name_or_path: {base}\n")
    return str(path)


def test_models_not_asked_the_same_documents_are_refused_in_one_line(tmp_path):
    """recipes/evaluate.py's paired step on the samples it wrote: another document, or a task one model lacks, is a
    one-line UserError naming both models."""
    arms = [parse_arm("base", "embedded:smollm2-135m-instruct"), parse_arm("adapter", _run_dir(tmp_path / "runs/x"))]
    base = samples({"t_sum": [1, 0, 1], "t_word": [0, 1], "t_plan": [1]})
    _write(tmp_path / "samples/cognitive/base", base)
    other = samples({"t_sum": [1, 0], "t_word": [0, 1], "t_plan": [1]})
    _write(tmp_path / "samples/cognitive/adapter_x", other)
    types = {"cognitive": TYPES}
    with pytest.raises(UserError) as error:
        paired_report({"cognitive": tmp_path / "samples/cognitive"}, types, arms, "base")
    message = str(error.value)
    assert "\n" not in message and message.startswith("adapter:x and base were not asked the same documents")
    assert "t_sum: seed 0 answered other documents than the base (2 against 3" in message
    (tmp_path / "samples/cognitive/adapter_x/t_plan.jsonl").unlink()
    with pytest.raises(UserError, match=r"not asked the same documents \(cognitive: t_plan: in the samples of one"):
        paired_report({"cognitive": tmp_path / "samples/cognitive"}, types, arms, "base")


def test_arms_from_the_flags(tmp_path):
    from types import SimpleNamespace

    runs = [_run_dir(tmp_path / f"runs/x-seed{k}") for k in range(2)]

    def flags(**kw):
        return SimpleNamespace(
            **{"base": None, "adapter": [], "release": [], "modules_run": [], "trust_remote_code": False, **kw}
        )

    arms, ref = evaluation_arms(
        flags(base="embedded:smollm2-135m-instruct", adapter=[f"x={runs[0]},{runs[1]}", runs[0]])
    )
    assert ref == "base" and [a.label for a in arms] == ["base", "x", "adapter:x-seed0"]
    assert [s.label for s in arms[1].specs] == ["x-s0", "x-s1"] and arms[1].paths == runs
    assert [s.peft for s in arms[1].specs] == runs and arms[1].kind == "adapter"
    unnamed, _ = evaluation_arms(flags(adapter=[",".join(runs)]))
    assert unnamed[0].label == "adapter:x-seed0+x-seed1"
    _, ref = evaluation_arms(
        flags(base="embedded:smollm2-135m-instruct", adapter=[runs[0]]), compare_to="adapter:x-seed0"
    )
    assert ref == "adapter:x-seed0"
    for kw, compare_to, message in [
        ({}, None, "give at least one model"),
        ({"adapter": [runs[0], runs[0]]}, None, "two models share a label"),
        ({"adapter": [runs[0]]}, "base", "--compare_to 'base': not a model of this evaluation (adapter:x-seed0)"),
        ({"adapter": ["=" + runs[0]]}, None, "expected [NAME=]PATH"),
        ({"base": "a,b"}, None, "--base 'a,b': expected NAME"),
    ]:
        with pytest.raises(UserError, match=re.escape(message)):
            evaluation_arms(flags(**kw), compare_to)


# ------------------------------------------------------------------------- the demo's two sentences (report.py)
def test_the_plain_words_name_worked_gains_guesses_losses_and_the_shares():
    """paired_in_words, as the demo prints it under its paired table: a gain that holds worked is named as improved,
    a gain as scored made of answers stated first is named as such, a loss is named below, and the shares of
    answers stated first and of loops are given beside the reference's."""
    from cognitive.evaluation.report import paired_in_words, paired_tables

    rng = np.random.default_rng(4)
    base_v = {t: (rng.random(60) < 0.3).astype(float) for t in ("t_sum", "t_word", "t_plan")}
    better_v = {**base_v, "t_plan": np.ones(60)}  # every plan right, after working
    worse_v = {**base_v, "t_sum": np.zeros(60), "t_word": np.zeros(60)}
    guess = {t: (v == 0) & (rng.random(60) < 0.5) for t, v in base_v.items()}

    def guessing(task, i, v):
        return "Final Answer: Arnold" if guess[task][i] else WORKING.format(v)

    base = samples(base_v)
    arms = {
        "better": compare_samples([samples(better_v)], [base], TYPES, resamples=1000),
        "guesser": compare_samples([samples({t: base_v[t] + guess[t] for t in base_v}, guessing)], [base], TYPES, 1000),
        "worse": compare_samples([samples(worse_v)], [base], TYPES, resamples=1000),
    }
    share = {"documents": 180, "answers_first": 0.0, "token_limit": 0.1, "loop": 0.25}
    paired = {
        "reference": "base",
        "level": 0.95,
        "comparisons": {arm: {"plain": result} for arm, result in arms.items()},
        "shares": {
            "base": {"plain": share},
            "better": {"plain": {**share, "loop": 0.05}},
            "guesser": {"plain": {**share, "answers_first": 0.4}},
            "worse": {"plain": share},
        },
    }
    better, guesser, worse = paired_in_words(paired).splitlines()
    assert better.startswith("What improved: with the answers worked out, better is above base on plain (overall, +")
    assert f"plain (planning, {1 - base_v['t_plan'].mean():+.2f})" in better
    assert "What did not: it is below base nowhere" in better
    assert "repeated-line loops 25% -> 5% (all suites)" in better
    assert guesser.startswith("What improved: nothing beyond the interval")
    assert "as scored also on plain (overall), plain (reasoning), plain (planning), but those gains are answers" in (
        guesser
    )
    assert "answers stated first 0% -> 40%" in guesser
    assert "What did not: below base on plain (overall, -" in worse and "plain (reasoning, -" in worse
    assert "planning" not in worse.split("What did not")[1].split(";")[0]  # planning is level, not below
    table = paired_tables(paired, every_task=False)
    assert "| better | plain | headline |" in table and "every task" not in table
    assert "| guesser | plain | 180 | 0.40 | 0.10 | 0.25 |" in table
    assert "every task" in paired_tables(paired)
