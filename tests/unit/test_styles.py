"""Prompt and response styles of the training data (cognitive/data/response.py, cognitive/train/sft_data.py): the
guide's layout stays exactly to_training_format(); the others keep the problem, change only the wording and layout."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from cognitive import tasks
from cognitive.data import arith
from cognitive.data.generators import generate_example
from cognitive.data.response import (
    CONCISE_ANSWER_MARKER,
    arithmetic_clauses,
    bare_question,
    column_steps,
    parse_response,
    prompt_messages,
    render_response,
    worked_clause,
)
from cognitive.errors import UserError
from cognitive.evaluation.scoring import step_metrics
from cognitive.model.modules import NUM_STEP_CLASSES
from cognitive.train.sft_data import check_styles, pick_prompt_style, to_prompt_completion

LEVELS = ("basic", "intermediate", "advanced", "expert")


def records(per_cell: int = 3):
    return [
        generate_example(t.name, level, seed) for t in tasks.TASK_TYPES for level in LEVELS for seed in range(per_cell)
    ]


def test_the_guide_style_is_exactly_to_training_format():
    for ex in records(2):
        messages = ex.to_training_format()["messages"]
        pair = to_prompt_completion(ex)  # no styles given: the guide's layout
        assert pair["prompt"] + pair["completion"] == messages
        assert to_prompt_completion(ex, {"guide": 1}, "guide") == pair
        assert prompt_messages(ex, "guide", random.Random(0)) == messages[:2]


def test_user_and_question_styles_keep_the_problem_and_drop_the_system_prompt():
    for ex in records(2):
        question = bare_question(ex)
        for style in ("user", "question"):
            (turn,) = prompt_messages(ex, style, random.Random(ex.id))
            assert turn["role"] == "user" and ex.context in turn["content"] and question in turn["content"]
            assert "Task Type:" not in turn["content"] and "Instruction:" not in turn["content"]
            for constraint in ex.constraints or []:
                assert constraint in turn["content"]
        (turn,) = prompt_messages(ex, "user", random.Random(ex.id))
        phrasings = [r.format(question=question) for r in tasks.get(ex.task_type).train_requests]
        assert any(turn["content"].endswith(p) for p in phrasings)


def test_training_phrasings_never_use_the_plain_suites_wording():
    for task in tasks.TASK_TYPES:
        assert len(task.train_requests) >= 3, task.name
        assert not set(task.train_requests) & set(task.plain_requests), task.name


def test_the_style_mix_follows_its_weights_and_renders_the_same_every_time():
    examples = [generate_example(t.name, "basic", seed) for t in tasks.TASK_TYPES for seed in range(120)]
    mix = check_styles({"guide": 1, "user": 1, "question": 2}, "guide")
    shares = Counter(pick_prompt_style(ex, mix)[0] for ex in examples)
    n = len(examples)  # 600 draws: three standard deviations of a share are < 0.065
    assert abs(shares["guide"] / n - 0.25) < 0.065 and abs(shares["question"] / n - 0.5) < 0.065
    for ex in examples[:50]:
        style, rng = pick_prompt_style(ex, mix)
        pair = to_prompt_completion(ex, mix)
        assert pair == to_prompt_completion(ex, mix)  # picked by the record's id: the same every time
        assert pair["prompt"] == prompt_messages(ex, style, rng)


def test_concise_responses_keep_every_step_and_end_in_one_final_answer_line():
    for ex in records(3):
        text = render_response(ex, "concise")
        lines = text.splitlines()
        assert len(lines) == len(ex.reasoning_steps) + 1
        assert lines[-1] == f"{CONCISE_ANSWER_MARKER} {ex.final_answer}"
        for step in ex.reasoning_steps:  # the arithmetic a step does is written whole
            for clause in arithmetic_clauses(step.reasoning or ""):
                assert clause in text
            if step.memory_update:  # its memory, or the label of a memory that is the arithmetic's result
                assert step.memory_update in text or step.memory_update.split(": ")[0] in text
        parsed = parse_response(text)
        assert parsed["format_ok"] and parsed["final_answer"] == ex.final_answer


def test_concise_responses_are_at_least_40_percent_shorter_per_task_type():
    """In characters, over each task type's records (the token figures: tests/performance/bench_styles.py)."""
    for task in tasks.TASK_TYPES:
        mine = [ex for ex in records(3) if ex.task_type == task.name]
        concise = sum(len(render_response(ex, "concise")) for ex in mine)
        assert concise <= 0.6 * sum(len(render_response(ex)) for ex in mine), task.name


def test_concise_arithmetic_is_true_by_the_step_accuracy_reader():
    """The concise lines of the arithmetic records are read by the eval's step-accuracy reader, and all hold."""
    for seed in range(20):
        ex = generate_example("chain_of_thought", "intermediate", seed)
        assert step_metrics(render_response(ex, "concise")) == {"step_accuracy": 1.0}


def test_column_working_is_the_school_method():
    assert column_steps(654, "-", 327) == ["14 - 7 = 7", "4 - 2 = 2", "6 - 3 = 3"]
    assert column_steps(500, "-", 226) == ["10 - 6 = 4", "9 - 2 = 7", "4 - 2 = 2"]
    assert column_steps(592, "+", 868) == ["2 + 8 = 10", "9 + 6 + 1 = 16", "5 + 8 + 1 = 14"]
    with pytest.raises(ValueError, match="smaller number from the larger"):
        column_steps(5, "-", 12)
    with pytest.raises(ValueError, match="whole numbers"):
        column_steps(6, "×", 7)


@pytest.mark.parametrize(
    "clause, worked",
    [
        ("$129 - $7 = $122", "129 - 7: 9 - 7 = 2, 2 - 0 = 2, 1 - 0 = 1; $129 - $7 = $122"),
        ("end 20 + 45 = 65", "20 + 45: 0 + 5 = 5, 2 + 4 = 6; end 20 + 45 = 65"),
        ("108 g + 21 g = 129 g", "108 + 21: 8 + 1 = 9, 0 + 2 = 2, 1 + 0 = 1; 108 g + 21 g = 129 g"),
        ("3 + 4 = 7", None),  # one digit each: already a step a small model computes
        ("0 + 15 = 15", None),  # adding nothing
        ("9 × $10 = $90", None),  # a product
        ("2.5 + 1.25 = 3.75", None),  # not whole numbers
        ("12 + 30 + 5 = 47", None),  # three operands
        ("12 - 30 = -18", None),  # a negative difference
        ("$30 - $8 = $21", None),  # false: never dressed up as worked
    ],
)
def test_worked_clause_writes_columns_before_a_multi_digit_sum_or_difference(clause, worked):
    assert worked_clause(clause) == (worked or clause)


def test_column_responses_are_the_concise_ones_with_only_true_one_digit_steps_added():
    """The column style adds column working to the concise lines and nothing else: every line of the concise
    response is in its column line, every arithmetic step holds, and every added step is on one-digit numbers (a
    carry's "+ 1" or a borrowed column "14 - 7" aside)."""
    worked = 0
    for ex in records(3):
        concise, column = render_response(ex, "concise"), render_response(ex, "column")
        for short, long in zip(concise.splitlines(), column.splitlines(), strict=True):
            assert short.split(": ")[-1] in long
        assert step_metrics(column) in ({}, {"step_accuracy": 1.0})
        added = len(arith.chains(column)) - len(arith.chains(concise))
        worked += added
        for chain in arith.chains(column):
            if chain.text not in concise:
                assert all(v < 20 for v in chain.operands), chain.text
        assert parse_response(column)["final_answer"] == ex.final_answer
    assert worked > 50  # the mix has multi-digit sums and differences to work


def test_step_labels_of_the_concise_style_cover_its_step_lines():
    """The reasoning heads' step labels (aux_labels.response_spans) land on the concise response's step lines."""
    from cognitive.train.aux_labels import AuxLabelSpec, response_spans

    spec = AuxLabelSpec(steps=True, states=False, actions=False, num_states=4, planning_horizon=4, action_space_size=8)
    for ex in records(1):
        text = render_response(ex, "concise")
        spans = response_spans(ex, spec, "concise")["steps"]
        assert [text[start:end] for start, end, _ in spans] == text.splitlines()[:-1]
        assert [cls for _, _, cls in spans] == [min(i, NUM_STEP_CLASSES - 1) for i in range(len(spans))]


def test_state_and_action_labels_need_the_guide_layout(tmp_path):
    from cognitive.train.args import parse_sft_args
    from cognitive.train.sft_config import resolve_sft

    (tmp_path / "train.jsonl").write_text(generate_example("planning", "basic", 0).model_dump_json() + "\n")
    argv = ["--config", "recipes/configs/demo_cpu.yaml", "--dataset_path", str(tmp_path), "--response_style", "concise"]
    argv += ["--cognitive_modules", '{"planning_module": {"aux_loss_weight": 0.1}}']
    with pytest.raises(UserError, match="response_style: concise has no planning lines"):
        resolve_sft(*parse_sft_args(argv))


@pytest.mark.parametrize(
    "styles, response, message",
    [
        ({"guide": 1, "chatty": 1}, "guide", "prompt_styles: unknown style 'chatty'"),
        ({"guide": -1}, "guide", "prompt_styles.guide: -1 is not a non-negative weight"),
        ({"guide": 0, "user": 0}, "guide", "every weight is 0"),
        ({"guide": "lots"}, "guide", "prompt_styles.guide: 'lots'"),
        ({"guide": 1}, "terse", "response_style: unknown style 'terse'"),
    ],
)
def test_bad_style_settings_are_one_line_errors(styles, response, message):
    with pytest.raises(UserError, match=message):
        check_styles(styles, response)


def test_one_style_by_name():
    assert check_styles("user", "concise") == {"user": 1.0}


@pytest.mark.parametrize("response_style, form_mark", [("column", ": "), ("concise", " = ")])
def test_arithmetic_drills_are_that_share_of_the_rows_in_the_styles_working(response_style, form_mark):
    """with_extra_rows adds worksheets making up the share of the rows, the same ones every time, answered with column
    working in the column style and directly otherwise; every step they write holds."""
    from cognitive.train.sft_data import DRILL_STEPS, sft_dataset, with_extra_rows

    train = sft_dataset(records(1), response_style=response_style)
    mixed = with_extra_rows(train, response_style, drills=0.25)
    drills = [row for row in mixed if row["prompt"][0]["content"].startswith("Work these out:")]
    assert len(mixed) == len(train) + len(drills) and len(drills) == round(len(train) / 3)
    assert [row for row in with_extra_rows(train, response_style, drills=0.25) if row not in train] == drills
    for row in drills:
        answer = row["completion"][0]["content"]
        assert len(answer.splitlines()) == DRILL_STEPS
        assert step_metrics(answer) == {"step_accuracy": 1.0}
        sums = [line for line in answer.splitlines() if " × " not in line]
        assert all(form_mark in line.split(" ", 1)[1].split("=")[0] for line in sums) == (response_style == "column")
