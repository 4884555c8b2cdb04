"""Practice problems (cognitive/data/practice.py): third-party problems the transfer suite does not hold, each answer
reached by our own solver, scored 1 by reasoning-gym and written with true steps."""

from __future__ import annotations

import copy

import pytest

from cognitive import tasks
from cognitive.data import practice
from cognitive.evaluation import transfer
from cognitive.evaluation.scoring import step_metrics

NAMES = [t.name for t in tasks.practice_tasks()]


def test_practice_tasks_are_never_transfer_tasks_and_each_has_a_solver():
    transfer_names = {t.name for t in tasks.transfer_tasks()}
    assert NAMES and not set(NAMES) & transfer_names
    assert set(NAMES) == set(practice.SOLVERS)
    assert practice.PRACTICE_SEED != transfer.TRANSFER_SEED
    assert transfer.TRANSFER_REQUEST not in practice.PRACTICE_REQUESTS


@pytest.mark.parametrize("column", [False, True])
def test_every_row_is_a_problem_reasoning_gym_scores_our_answer_to_as_right(column):
    rows = practice.practice_rows(40, column=column, seed=3)
    assert len(rows) == 40 and rows == practice.practice_rows(40, column=column, seed=3)  # deterministic
    questions = {name: {e["question"].rstrip(): e for e in practice.dataset(name, 2 * 8 + 20, 3)} for name in NAMES}
    seen, worked = set(), 0
    for i, row in enumerate(rows):
        name = NAMES[i % len(NAMES)]  # the tasks in turn
        prompt, answer = row["prompt"][0]["content"], row["completion"][0]["content"]
        question = next(q for q in questions[name] if prompt.startswith(q))
        assert prompt[len(question) :].strip() in practice.PRACTICE_REQUESTS
        entry = questions[name][question]
        final = answer.splitlines()[-1].removeprefix("Final Answer: ")
        assert answer.splitlines()[-1].startswith("Final Answer: ")
        assert practice.dataset(name, 36, 3).score_answer(final, entry) == 1.0
        assert step_metrics(answer) in ({}, {"step_accuracy": 1.0})
        seen.add(name)
        worked += any("; " in line and " = " in line.split(": ", 1)[-1] for line in answer.splitlines())
    assert seen == set(NAMES)
    assert (worked > 0) == column  # column working ("72 + 66: 2 + 6 = 8, 7 + 6 = 13; 72 + 66 = 138") only in column


def test_an_answer_reasoning_gym_does_not_accept_leaves_the_problem_out():
    problems = practice.dataset("leg_counting", 4, 0)
    entry = copy.deepcopy(problems[0])
    assert practice.practice_answer("leg_counting", entry, problems) is not None
    entry["answer"] = str(int(entry["answer"]) + 1)  # reasoning-gym's answer now differs from the legs counted
    assert practice.practice_answer("leg_counting", entry, problems) is None


@pytest.mark.parametrize(
    "premises, conclusion, follows",
    [
        (["All dogs are mammals", "All mammals are animals"], "All dogs are animals", True),
        (["All dolphins are tigers", "Some tigers are humans"], "Some dolphins are humans", False),  # undistributed
        (["No cats are birds", "Some pets are cats"], "Some pets are not birds", True),
        (["Some students are elephants", "No elephants are grandparents"], "No grandparents are elephants", True),
        (["All dogs are mammals", "All mammals are animals"], "Some dogs are animals", False),  # dogs may not exist
    ],
)
def test_syllogisms_are_checked_on_every_venn_model(premises, conclusion, follows):
    assert practice.syllogism_follows(premises, conclusion) is follows


def test_products_are_worked_one_digit_of_the_second_factor_at_a_time():
    lines, answer = practice.solve_products({"metadata": {"expression": "60 * 93"}})
    assert lines == ["60 × 3 = 180", "60 × 9 = 540", "540 × 10 = 5400", "180 + 5400 = 5580"] and answer == "5580"
    assert practice.solve_products({"metadata": {"expression": "7 * 8"}}) == (["7 × 8 = 56"], "56")
