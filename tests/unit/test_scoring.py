"""Answer extraction and exact numeric scoring: the formats models really produce, and outputs that must
score 0 without crashing."""

import pytest

from cognitive.data.answers import (
    answer_region,
    answers_first,
    extract_final_number,
    final_answer_text,
    score_numeric,
)


@pytest.mark.parametrize(
    "output, number",
    [
        ("**Reasoning Process:**\n1. 3 × 12 = 36\n\n**Final Answer:** Sarah has 23 apples left.", 23),
        ("Final Answer: $1,234.50\nThanks!", 1234.5),
        ("so 7 + 5 = 12\n#### 12", 12),
        ("The answer is -3.", -3),
        ("We get 4, then 9 in total", 9),  # no marker: the last number
        ("**Final Answer:**\n\n 42 apples (from 6 bags)", 42),  # first line after the marker; parentheses dropped
        ("**Final Answer:** 40 L - 7 L - 7 L = 26 L", 26),  # the value after the last '='
        ("Thus $\\boxed{26}$ litres, not 40.", 26),
        ("Working...\nAnswer: 26L", 26),  # 'Answer:' at a line start; a unit glued to the number
        ("**Final answer**: 1,000,000 dollars", 1_000_000),
        ("The final answer is: 0.5", 0.5),
        ("Final Answer: −7 °C", -7),  # unicode minus
    ],
)
def test_extracts_final_number(output, number):
    assert extract_final_number(output) == pytest.approx(number)


@pytest.mark.parametrize("output", ["", "   ", "**Final Answer:** I cannot tell", "no numbers here", None, 42, "∞ ≠ ½"])
def test_empty_or_malformed_scores_zero(output):
    assert score_numeric(output, 23.0)["exact_match"] == 0.0


def test_right_wrong_and_exact():
    assert score_numeric("**Final Answer:** 23 apples", 23.0) == {"exact_match": 1.0, "answered": 1.0}
    assert score_numeric("**Final Answer:** 24 apples", 23.0) == {"exact_match": 0.0, "answered": 1.0}
    assert score_numeric("**Final Answer:** $12.50", 12.5)["exact_match"] == 1.0
    assert score_numeric("**Final Answer:** $12.50", "12.5")["exact_match"] == 1.0  # gold as the spec's string
    assert score_numeric("**Final Answer:** 25.0", "25")["exact_match"] == 1.0
    assert score_numeric("**Final Answer:** 25.0000001", "25")["exact_match"] == 0.0  # exact, no tolerance
    assert score_numeric("**Final Answer:** 2,300", "2300")["exact_match"] == 1.0


def test_truncated_reasoning_scores_zero():
    # cut before the final answer: the last number is an intermediate value
    truncated = "**Reasoning Process:**\n1. Subtract the leak\n   Reasoning: 40 L - 7 L = 33 L\n2. Subtract the gar"
    assert score_numeric(truncated, 26)["exact_match"] == 0.0


def test_marker_preference_and_region():
    # the last "Final Answer" wins over an earlier one and over "The answer is"
    text, marked = final_answer_text("The answer is 3.\nFinal Answer: 4\n...\n**Final Answer:** 5")
    assert marked and text == "5"
    assert final_answer_text("just text") == ("just text", False)
    # without a marker the region is the last paragraph; planning also accepts 'Plan:'
    assert answer_region("step one\n\nstep two\nend") == ("step two\nend", False)
    assert answer_region("thinking\nPlan: a 0-5; b 5-9", plan=True) == ("a 0-5; b 5-9", True)


def test_step_accuracy_is_the_share_of_true_arithmetic_steps():
    from cognitive.evaluation.scoring import step_metrics

    assert step_metrics("3 × 12 = 36\n36 - 13 = 23") == {"step_accuracy": 1.0}
    assert step_metrics("8 trays × 15 rolls = 130 rolls; 130 rolls - 6 trays = 124") == {"step_accuracy": 0.5}
    assert step_metrics("No arithmetic here.") == {} and step_metrics(None) == {}


def test_answers_first_tells_an_answer_before_the_working_from_one_after_it():
    assert answers_first("\n  Final Answer: $19 - $5 = $13.\nFinal Answer: $13 + $5 = $28.")
    assert answers_first("**Final Answer:** 30 km\nbecause 27 + 3 = 30")
    assert answers_first("The answer is 4.")
    assert not answers_first("Budget: $19 + $5 = $24\nFinal Answer: $24")
    assert not answers_first("Speed: 8 km/h, so the answer follows.\nAnswer: 30 km")
    assert not answers_first("")
    assert not answers_first(None)
