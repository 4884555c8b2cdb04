"""The arithmetic probe, the breakdown of written steps and the drills (arithmetic_probe.py beside this test,
cognitive.data.drills): items are
right and deterministic, continuations are read as the model's result, written steps land in the right class, column
working writes only true one-digit steps, and a worksheet reply is scored line by line."""

import pytest
from arithmetic_probe import (
    PROBE_CLASSES,
    SPLIT_PIECES,
    class_name,
    model_continuations,
    probe_items,
    probe_scores,
    split_items,
    step_breakdown,
    worksheet,
    worksheet_scores,
)

from cognitive.data.drills import DRILL_FORMS, OPERATORS, column_working


def test_items_cover_every_class_with_true_answers_and_are_deterministic():
    items = probe_items(5, seed=3)
    assert len(items) == 5 * len(PROBE_CLASSES)
    assert {i.step_class for i in items} == {class_name(*c) for c in PROBE_CLASSES}
    for item in items:
        assert item.answer == eval(f"{item.a} {item.operator.replace('×', '*')} {item.b}")
        assert item.answer >= 0  # a difference is never negative
        digits = sorted((len(str(item.a)), len(str(item.b))), reverse=True)
        assert item.step_class.endswith(f"{digits[0]}d{digits[1]}d")
        assert item.prefix.endswith(f"{item.a} {item.operator} {item.b} = ")
    assert probe_items(5, seed=3) == items
    assert probe_items(5, seed=4) != items


def test_split_pieces_have_their_shape_and_are_deterministic():
    """Each piece is the easy step its name says: a round operand or a round result, two digits at most."""
    items = split_items(20, seed=1)
    assert [i.step_class for i in items[::20]] == list(SPLIT_PIECES)
    shape = {
        "- tens (63 - 20)": lambda i: i.b % 10 == 0 and 0 <= i.answer < 90,
        "- to round (43 - 3)": lambda i: i.answer % 10 == 0 and i.b < 10 and i.a > 20,
        "- from round (40 - 4)": lambda i: i.a % 10 == 0 and i.b < 10 and i.answer > 10,
        "+ tens (47 + 30)": lambda i: i.b % 10 == 0 and i.answer < 100,
        "+ to round (77 + 3)": lambda i: i.answer % 10 == 0 and i.b < 10 and i.answer <= 90,
        "+ from round (80 + 5)": lambda i: i.a % 10 == 0 and 0 < i.b < 10,
        "× tens (20 × 4)": lambda i: i.a % 10 == 0 and i.b < 10 and i.operator == "×",
    }
    assert set(shape) == set(SPLIT_PIECES)
    for item in items:
        assert shape[item.step_class](item), item
        assert item.a < 100 and item.b < 100
    assert split_items(20, seed=1) == items
    assert split_items(20, seed=2) != items


@pytest.mark.parametrize(
    "continuation, right",
    [
        ("450", True),
        (" $450 left", True),
        ("450.\nNext", True),
        ("451", False),
        ("4500", False),
        ("", False),
        ("about 450", False),
    ],
)
def test_continuation_is_read_as_the_first_number(continuation, right):
    item = next(i for i in probe_items(20) if i.step_class == "- 3d2d")
    item = type(item)(item.step_class, 475, "-", 25, item.label)
    assert item.right(continuation) is right


@pytest.mark.parametrize("continuation, right", [("8,991", True), ("8991 cans", True), ("8,99", False), ("8", False)])
def test_a_thousands_separator_is_read(continuation, right):
    item = next(i for i in probe_items(20) if i.step_class == "× 3d1d")
    item = type(item)(item.step_class, 999, "×", 9, item.label)
    assert item.right(continuation) is right


def test_probe_scores_are_the_share_right_per_class():
    items = probe_items(4)

    def half_right(batch):  # right on even positions of each class, wrong on odd
        return [str(i.answer if n % 4 < 2 else i.answer + 1) for n, i in enumerate(batch)]

    scores = probe_scores(items, half_right)
    assert scores == {class_name(*c): 0.5 for c in PROBE_CLASSES}
    assert set(probe_scores(items, lambda batch: [str(i.answer) for i in batch]).values()) == {1.0}


def test_breakdown_of_written_steps():
    outputs = [
        "Money: $475 - $25 = $450; 3 boxes × 12 apples = 36 apples. 7 x 8 = 54",
        "23 × 14 = 23 × 10 + 23 × 4 = 230 + 92 = 322",  # the class of the first segment
        "4 + 5 + 6 = 15",  # three operands
        "Final Answer: 19 - 5 = 13",
        "no arithmetic here",
        None,
    ]
    assert step_breakdown(outputs) == {
        "- 2d1d": (0, 1),
        "- 3d2d": (1, 1),
        "mixed": (1, 1),
        "× 1d1d": (0, 1),
        "× 2d1d": (1, 1),
        "× 2d2d": (1, 1),
    }


def test_breakdown_counts_a_looped_step_once_per_answer_when_distinct():
    outputs = ["Time: 98 + 0 = 98\n" * 40 + "Time: 98 - 4 = 80", "98 + 0 = 98", "12 - 5 = 7; 12 - 5 = 7"]
    assert step_breakdown(outputs) == {"+ 2d1d": (41, 41), "- 2d1d": (2, 3)}
    assert step_breakdown(outputs, distinct=True) == {"+ 2d1d": (2, 2), "- 2d1d": (1, 2)}


def test_model_continuations_generate_greedy_after_the_prefix(embedded_tokenizer, one_thread):
    """A tiny random model: one continuation per item, the same twice (greedy), the tokenizer's padding side kept."""
    import torch

    from tests.conftest import tiny_family

    model = tiny_family("llama", len(embedded_tokenizer))
    items = probe_items(2)[:5]
    side = embedded_tokenizer.padding_side
    with torch.no_grad():
        first = model_continuations(model, embedded_tokenizer, items, batch_size=2, max_new_tokens=3)
    assert len(first) == len(items) and all(isinstance(c, str) for c in first)
    assert not any(item.prefix.strip() in c for item, c in zip(items, first))  # only what was generated
    assert model_continuations(model, embedded_tokenizer, items, batch_size=5, max_new_tokens=3) == first
    assert embedded_tokenizer.padding_side == side


@pytest.mark.parametrize(
    "a, operator, b",
    [
        (654, "-", 327),
        (860, "-", 763),
        (1000, "-", 1),
        (100, "-", 99),
        (5, "-", 5),
        (592, "+", 868),
        (99, "+", 1),
        (7, "+", 8),
        (12, "+", 345),
        (64, "×", 8),
    ],
)
def test_column_working_writes_only_true_one_digit_steps(a, operator, b):
    from cognitive.data import arith

    text = column_working(a, operator, b)
    steps = arith.chains(text)
    assert all(step.ok for step in steps)
    assert steps[-1].result == OPERATORS[operator](a, b) and steps[-1].operands == [a, b]  # the whole step last
    if operator in "+-":
        columns = steps[:-1]
        assert len(columns) == len(str(max(a, b)))  # one step per column of the longer number
        # a column adds or takes one digit (a borrowed column starts from 10..18), a carry adds 1
        assert all(max(c.operands) <= 18 and len(c.operands) <= 3 for c in columns)


def test_a_tokenizer_without_a_pad_token_pads_with_eos_and_is_restored(embedded_tokenizer, one_thread):
    import copy

    from arithmetic_probe import greedy_replies

    from tests.conftest import tiny_family

    tokenizer = copy.deepcopy(embedded_tokenizer)
    tokenizer.pad_token = None
    model = tiny_family("llama", len(tokenizer))
    replies = greedy_replies(
        model, tokenizer, ["1 + 1 =", "a longer prompt: 12 + 30 ="], max_new_tokens=2, batch_size=2
    )
    assert len(replies) == 2
    assert tokenizer.pad_token is None and tokenizer.padding_side == embedded_tokenizer.padding_side


def test_column_working_refuses_a_negative_difference():
    with pytest.raises(ValueError, match="smaller number from the larger"):
        column_working(5, "-", 12)


def test_column_working_is_the_school_method():
    assert column_working(654, "-", 327) == "654 - 327: 14 - 7 = 7, 4 - 2 = 2, 6 - 3 = 3; 654 - 327 = 327"
    assert column_working(592, "+", 868) == "592 + 868: 2 + 8 = 10, 9 + 6 + 1 = 16, 5 + 8 + 1 = 14; 592 + 868 = 1460"


@pytest.mark.parametrize("form", DRILL_FORMS)
def test_worksheet_pairs_and_their_scoring(form):
    import random

    items, pair = worksheet(random.Random(1), 12, form)
    assert len(items) == 12 and {i.operator for i in items} <= set(OPERATORS)
    question, answer = pair["prompt"][0]["content"], pair["completion"][0]["content"]
    assert question.count("\n") == 12 and all(f"{i.a} {i.operator} {i.b}" in question for i in items)
    assert worksheet(random.Random(1), 12, form) == (items, pair)  # deterministic in the rng
    # its own answer scores every item right; one answer changed scores that one wrong; a cut reply the rest wrong
    assert {op: r == n for op, (r, n) in worksheet_scores(items, answer).items()} == dict.fromkeys(
        {i.operator for i in items}, True
    )
    lines = answer.splitlines()
    wrong = lines[0][: lines[0].rindex("=")] + f"= {items[0].answer + 1}"
    scores = worksheet_scores(items, "\n".join([wrong, *lines[1:]]))
    assert sum(n - r for r, n in scores.values()) == 1
    cut = worksheet_scores(items, "\n".join(lines[:3]))
    assert sum(r for r, _ in cut.values()) == 3 and sum(n for _, n in cut.values()) == 12
    # answers are found by their item number: a preamble, full stops and a skipped item move nothing else
    chatty = "Sure, here they are:\n\n" + "\n".join(line + "." for line in lines[1:])
    assert sum(r for r, _ in worksheet_scores(items, chatty).values()) == 11
    with pytest.raises(ValueError, match="unknown drill form"):
        worksheet(random.Random(1), 2, "abacus")
