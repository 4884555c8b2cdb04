"""The demo's last word (recipes/demo.py final_table): recipes/evaluate.py's paired table as results.json holds it,
the split it reports, two sentences on what improved and what did not, and why GRPO is not a stage."""

from __future__ import annotations

import json

from recipes import demo


def entry(difference: float, low: float, high: float, documents: int) -> dict:
    verdict = "above" if low > 0 else "below" if high < 0 else "level"
    return {"difference": difference, "low": low, "high": high, "documents": documents, "verdict": verdict}


def paired_results() -> dict:
    """results.json's "paired" for base against tuned on two suites: as scored the tuned model is above on the
    cognitive suite, worked it is level there; worked it is above on transfer planning and below on transfer
    memory recall."""
    cognitive = {
        "scored": {
            "headline": entry(0.10, 0.02, 0.18, 30),
            "types": {"state_transition": entry(0.33, 0.10, 0.55, 6)},
        },
        "worked": {
            "headline": entry(0.0, -0.05, 0.05, 30),
            "types": {"state_transition": entry(0.0, -0.2, 0.2, 6)},
        },
    }
    transfer = {
        how: {
            "headline": entry(0.01, -0.04, 0.06, 66),
            "types": {"planning": entry(0.25, 0.05, 0.45, 12), "memory_recall": entry(-0.2, -0.35, -0.05, 12)},
        }
        for how in ("scored", "worked")
    }
    share = {"documents": 30, "answers_first": 0.0, "token_limit": 0.2, "loop": 0.3}
    paired = {
        "reference": "base",
        "level": 0.95,
        "comparisons": {"adapter:demo": {"cognitive": cognitive, "transfer": transfer}},
        "shares": {
            "base": {"cognitive": share, "transfer": {**share, "documents": 66}},
            "adapter:demo": {"cognitive": {**share, "answers_first": 0.5}, "transfer": {**share, "documents": 66}},
        },
    }
    return json.loads(json.dumps(paired))  # as read back from results.json


def test_the_final_table_is_the_paired_one_on_the_test_split_in_plain_words():
    text = demo.final_table(paired_results(), eval_limit=6)
    first, *rest = text.splitlines()
    assert "test split" in first and "6 documents per task" in first and demo.SPLIT == "test"
    assert "| model | suite | part | documents | minus base | verdict | worked: minus base | verdict |" in rest
    scored, worked = "+0.100 [+0.020, +0.180] | above", "+0.000 [-0.050, +0.050] | level"
    assert f"| adapter:demo | cognitive | headline | 30 | {scored} | {worked} |" in rest
    assert "| adapter:demo | cognitive | 30 | 0.50 | 0.20 | 0.30 |" in rest  # the shares, the tuned model's
    assert "every task" not in text  # the per-task rows stay in results/demo/table.md
    words = next(line for line in rest if line.startswith("What improved"))
    assert "above base on transfer (planning, +0.25)" in words
    assert "as scored also on cognitive (overall), cognitive (state_transition), but those gains are answers" in words
    assert "What did not: below base on transfer (memory_recall, -0.20)" in words
    assert "answers stated first 0% -> 16%" in words  # 15 of the 96 outputs over both suites
    assert rest[-1] == demo.GRPO_NOTE and "GRPO" in demo.GRPO_NOTE
