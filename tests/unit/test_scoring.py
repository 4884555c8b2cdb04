"""Answer extraction: the formats models really produce, and outputs that must score 0 without crashing."""

import pytest

from cognitive.scoring import extract_final_number, score_numeric


@pytest.mark.parametrize(
    "output, number",
    [
        ("**Reasoning Process:**\n1. 3 × 12 = 36\n\n**Final Answer:** Sarah has 23 apples left.", 23),
        ("Final Answer: $1,234.50\nThanks!", 1234.5),
        ("so 7 + 5 = 12\n#### 12", 12),
        ("The answer is -3.", -3),
        ("We get 4, then 9 in total", 9),  # no marker: the last number
        ("**Final Answer:**\n\n 42 apples (from 6 bags)", 6),  # first line after the marker, its last number
    ],
)
def test_extracts_final_number(output, number):
    assert extract_final_number(output) == pytest.approx(number)


@pytest.mark.parametrize("output", ["", "   ", "**Final Answer:** I cannot tell", "no numbers here", None])
def test_empty_or_malformed_scores_zero(output):
    assert score_numeric(output, 23.0)["exact_match"] == 0.0


def test_right_and_wrong():
    assert score_numeric("**Final Answer:** 23 apples", 23.0) == {"exact_match": 1.0, "answered": 1.0}
    assert score_numeric("**Final Answer:** 24 apples", 23.0) == {"exact_match": 0.0, "answered": 1.0}
    assert score_numeric("**Final Answer:** $12.50", 12.5)["exact_match"] == 1.0
