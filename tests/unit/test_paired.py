"""The paired comparison of a tuned model with its base (cognitive/evaluation/paired.py): the difference is exactly
tuned headline minus base headline as the suite builds it, seeds are averaged per document, the bootstrap interval
has the width the documents allow, and samples of other documents are refused with one line."""

from __future__ import annotations

import json

import numpy as np
import pytest

from cognitive.errors import UserError
from cognitive.evaluation.paired import paired_difference, read_scores, scores_of, verdict

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
