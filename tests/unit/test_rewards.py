"""The GRPO rewards (cognitive/rl/rewards.py) on correct, wrong and malformed completions of every task type,
their partial credit, and the recipe's checks of reward names and weights."""

from __future__ import annotations

import json
import re

import pytest

from cognitive import tasks
from cognitive.data.generators import generate_example
from cognitive.data.generators.planning import plan_violations
from cognitive.data.generators.state_transition import state_steps
from cognitive.data.response import render_response
from cognitive.errors import UserError
from cognitive.rl import rewards
from cognitive.rl.rewards import (
    correctness_reward,
    format_reward,
    no_loop_reward,
    reward_functions,
    state_steps_reward,
    step_validity_reward,
    work_then_answer_reward,
)

TYPES = [t.name for t in tasks.TASK_TYPES]
HAS_STEPS = {"chain_of_thought", "planning"}  # types whose step validity always applies


def score(text, example):
    """(correctness, format, step validity) of one completion, given as TRL passes conversational completions."""
    kwargs = dict(task_type=[example.task_type.value], problem_spec=[json.dumps(example.problem_spec)])
    completion = [[{"role": "assistant", "content": text}]]
    return tuple(f(completion, **kwargs)[0] for f in (correctness_reward, format_reward, step_validity_reward))


def other_answer(task_type: str, example):
    """A record of the same task type whose answer differs from `example`'s."""
    for seed in range(1, 50):
        other = generate_example(task_type, "basic", seed)
        if (
            other.final_answer != example.final_answer
            and other.problem_spec["answer"] != example.problem_spec["answer"]
        ):
            return other
    raise AssertionError("no record with another answer")


@pytest.mark.parametrize("style", ["guide", "concise"])
@pytest.mark.parametrize("task_type", TYPES)
def test_a_correct_completion_earns_every_reward(task_type, style):
    example = generate_example(task_type, "basic", 0)
    correctness, fmt, steps = score(render_response(example, style), example)
    assert correctness == 1.0 and fmt == 1.0
    assert steps == 1.0 if task_type in HAS_STEPS else steps in (1.0, None)


@pytest.mark.parametrize("task_type", TYPES)
def test_a_wrong_answer_loses_correctness(task_type):
    example = generate_example(task_type, "basic", 0)
    wrong = other_answer(task_type, example)
    # the example's own reasoning, with another record's final answer line
    text = render_response(example, "concise").rsplit("Final Answer:", 1)[0] + f"Final Answer: {wrong.final_answer}"
    correctness, fmt, _ = score(text, example)
    assert correctness < 1.0
    if task_type == "chain_of_thought":  # a wrong number is still an answer (entities of another story may not be)
        assert fmt == 1.0


@pytest.mark.parametrize("task_type", TYPES)
@pytest.mark.parametrize("malformed", ["", "I am not sure.", "Final Answer:", "<|im_end|>" * 3])
def test_malformed_completions_earn_nothing(task_type, malformed):
    example = generate_example(task_type, "basic", 0)
    correctness, fmt, steps = score(malformed, example)
    assert correctness == 0.0 and fmt == 0.0
    assert steps in ((0.0,) if task_type in HAS_STEPS else (None,))


@pytest.mark.parametrize("task_type", TYPES)
def test_a_truncated_completion_has_no_final_answer(task_type):
    example = generate_example(task_type, "basic", 0)
    text = render_response(example, "guide")
    truncated = text[: text.rfind("Final Answer")].rstrip("* \n")
    assert score(truncated, example)[1] == 0.0


def test_a_valid_but_slower_plan_earns_half_credit():
    for seed in range(300):  # a problem whose plan in dependency order, one task after another, meets the deadline
        example = generate_example("planning", "basic", seed)
        spec = example.problem_spec
        plan, t = {}, 0
        while len(plan) < len(spec["tasks"]):
            for task in spec["tasks"]:
                if task["name"] not in plan and all(d in plan for d in task["deps"]):
                    plan[task["name"]] = (t, t + task["duration"])
                    t += task["duration"]
        if not plan_violations(plan, spec) and t > spec["answer"]["total"]:
            break
    else:
        raise AssertionError("no problem with a valid serial plan slower than the best")
    text = "Final Answer: Plan: " + "; ".join(f"{name} {s}-{e}" for name, (s, e) in plan.items())
    assert score(text, example)[:2] == (0.5, 1.0)


def test_a_plan_with_one_task_too_short_loses_that_step():
    example = generate_example("planning", "basic", 0)
    plan = example.problem_spec["answer"]["plan"]
    names = list(plan)
    wrong = {n: tuple(plan[n]) for n in names}
    # the last task (nothing depends on it in time order) ends a minute early
    last = max(names, key=lambda n: plan[n][1])
    wrong[last] = (plan[last][0], plan[last][1] - 1)
    text = "Final Answer: Plan: " + "; ".join(f"{n} {s}-{e}" for n, (s, e) in wrong.items())
    correctness, fmt, steps = score(text, example)
    assert correctness == 0.0 and fmt == 1.0
    assert steps == pytest.approx((len(names) - 1) / len(names))


def test_logic_grids_earn_the_share_of_cells_right():
    example = generate_example("problem_solving", "basic", 0)
    spec = example.problem_spec
    people, categories = spec["people"], list(spec["categories"])
    answer = {p: dict(spec["answer"][p]) for p in people}
    first, second = people[0], people[1]
    category = categories[0]
    answer[first][category], answer[second][category] = answer[second][category], answer[first][category]
    text = "Final Answer: " + "; ".join(f"{p}: " + ", ".join(answer[p][c] for c in categories) for p in people)
    cells = len(people) * len(categories)
    assert score(text, example)[0] == pytest.approx((cells - 2) / cells)


def test_false_arithmetic_steps_lower_step_validity_not_correctness():
    example = generate_example("chain_of_thought", "basic", 0)
    text = render_response(example, "concise")
    steps = re.findall(r"= (\d+)", text)
    assert steps, text
    broken = text.replace(f"= {steps[0]}", f"= {int(steps[0]) + 1}", 1)
    correctness, _, validity = score(broken, example)
    assert correctness == 1.0 and 0.0 <= validity < 1.0


def test_arithmetic_answered_without_work_earns_no_step_validity():
    example = generate_example("chain_of_thought", "basic", 0)
    assert score(f"Final Answer: {example.problem_spec['answer']}", example) == (1.0, 1.0, 0.0)


@pytest.mark.parametrize("difficulty", ["basic", "intermediate", "advanced"])
def test_every_state_kind_replays_its_own_steps(difficulty):
    """The records' own steps (people's items, places, a machine's states, a vending machine's credit) are all valid
    in both response styles; the guide layout's transitions do not count as extra lines."""
    kinds = set()
    for seed in range(60):
        example = generate_example("state_transition", difficulty, seed)
        kinds.add(example.problem_spec["kind"])
        for style in ("guide", "concise"):
            assert state_steps(render_response(example, style), example.problem_spec) == 1.0, seed
    assert {"holdings", "locations", "machine"} <= kinds


def state_example(kind: str):
    for seed in range(100):
        example = generate_example("state_transition", "basic", seed)
        if example.problem_spec["kind"] == kind and len(example.reasoning_steps) >= 3:
            return example
    raise AssertionError(f"no basic {kind} problem with three steps")


@pytest.mark.parametrize("kind", ["holdings", "locations", "machine"])
def test_a_wrong_state_line_loses_its_step_not_correctness(kind):
    example = state_example(kind)
    spec = example.problem_spec
    *steps, answer = render_response(example, "concise").split("\n")
    # the second step claims a value no operation left there: another state of the machine, or the first entity
    # given another of the problem's items or places
    if kind == "machine":
        states = sorted({s for rule in spec["rules"] for s in (rule[0], rule[2])})
        line = "state: " + next(s for s in states if not steps[1].endswith(f"state: {s}"))
    else:
        key = next(iter(spec["initial"]))
        true_value = re.search(rf"{re.escape(key)}: ([^,]+)", steps[1]).group(1)
        line = f"{key}: " + next(v for v in sorted(spec["initial"].values()) if v != true_value)
    broken = "\n".join([steps[0], line, *steps[2:], answer])
    assert score(broken, example)[0] == 1.0
    kwargs = dict(task_type=["state_transition"], problem_spec=[json.dumps(spec)])
    (validity,) = state_steps_reward([[{"role": "assistant", "content": broken}]], **kwargs)
    assert validity == pytest.approx((len(steps) - 1) / len(steps))


@pytest.mark.parametrize("task_type", TYPES)
def test_state_steps_applies_to_state_tracking_only(task_type):
    example = generate_example(task_type, "basic", 0)
    kwargs = dict(task_type=[task_type] * 2, problem_spec=[json.dumps(example.problem_spec)] * 2)
    right, malformed = state_steps_reward([render_response(example, "concise"), "I am not sure."], **kwargs)
    assert (right, malformed) == ((1.0, 0.0) if task_type == "state_transition" else (None, None))


def test_a_loop_of_state_lines_counts_against_the_work():
    example = state_example("holdings")
    *steps, answer = render_response(example, "concise").split("\n")
    looped = "\n".join(steps * 3 + [answer])
    assert state_steps(looped, example.problem_spec) == pytest.approx(1 / 3)
    only_first = "\n".join([steps[0], answer])
    assert state_steps(only_first, example.problem_spec) == pytest.approx(1 / len(steps))


def test_restating_the_start_is_not_a_step():
    example = state_example("holdings")
    *steps, answer = render_response(example, "concise").split("\n")
    start = ", ".join(f"{k}: {v}" for k, v in example.problem_spec["initial"].items())
    text = "\n".join([f"At first: {start}", *steps, answer])
    assert state_steps(text, example.problem_spec) == 1.0
    # answered at once, no work written: nothing to credit
    assert state_steps(answer, example.problem_spec) == 0.0


def test_the_rewards_take_trls_keyword_arguments_and_plain_strings():
    """GRPOTrainer passes prompts, completion_ids, trainer_state and log_* callables besides the columns; TRL's CLI
    resolves `cognitive.rl.rewards.correctness_reward` by its dotted path."""
    import importlib

    example = generate_example("memory_recall", "basic", 0)
    module, name = "cognitive.rl.rewards.correctness_reward".rsplit(".", 1)
    reward = getattr(importlib.import_module(module), name)
    out = reward(
        prompts=["p", "p"],
        completions=[render_response(example, "concise"), "no idea"],
        completion_ids=[[1], [2]],
        task_type=["memory_recall"] * 2,
        problem_spec=[json.dumps(example.problem_spec)] * 2,
        trainer_state=None,
        log_extra=lambda *a: None,
        log_metric=lambda *a: None,
    )
    assert out == [1.0, 0.0]


def test_reward_names_and_weights_are_checked():
    assert reward_functions(["correctness", "format"], [1.0, 0.5]) == [correctness_reward, format_reward]
    with pytest.raises(UserError, match=r"unknown reward 'accuracy'.*known: correctness, format, step_validity"):
        reward_functions(["correctness", "accuracy"])
    with pytest.raises(UserError, match=r"reward_weights: 1 weight\(s\) \[1.0\] for 2 reward_funcs"):
        reward_functions(["correctness", "format"], [1.0])
    with pytest.raises(UserError, match="names a reward twice"):
        reward_functions(["format", "format"])
    assert set(rewards.REWARDS) == {
        "correctness",
        "format",
        "step_validity",
        "state_steps",
        "work_then_answer",
        "no_loop",
    }


@pytest.mark.parametrize("style", ["guide", "concise"])
@pytest.mark.parametrize("task_type", TYPES)
def test_work_then_answer_pays_our_solutions_order(task_type, style):
    example = generate_example(task_type, "basic", 0)
    kwargs = dict(task_type=[example.task_type.value], problem_spec=[json.dumps(example.problem_spec)])
    text = render_response(example, style)
    answer = f"Final Answer: {example.final_answer}"
    work = text.rsplit("Final Answer", 1)[0].rstrip("* \n")
    completions = [
        text,  # working, then the answer once
        answer,  # the answer with no working
        f"{answer}\n{work}",  # the answer first, the working after it
        f"{work}\n{answer}\n{answer}",  # the answer stated again and again
        work,  # working and no answer
    ]
    assert work_then_answer_reward(completions, **{k: v * 5 for k, v in kwargs.items()}) == [1.0, 0.0, 0.0, 0.0, 0.0]
    assert format_reward(completions[:2], **{k: v * 2 for k, v in kwargs.items()}) == [1.0, 1.0]


@pytest.mark.parametrize("task_type", TYPES)
def test_no_loop_costs_a_looping_completion_its_reward(task_type):
    """no_loop pays 1 for our own solution and for a wrong or unanswered completion that does not loop, 0 for the
    SFT start's loops: a repeated state line, a final answer stated three times, a loop inside one line."""
    example = generate_example(task_type, "basic", 0)
    text = render_response(example, "concise")
    answer = f"Final Answer: {example.final_answer}"
    completions = [
        text,  # our solution
        "I do not know.",  # no answer, no loop: not this reward's business
        f"{text}\n{answer}\n{answer}",  # the answer three times (once in the solution)
        "Bob: apple\nBob: apple\nBob: apple\nBob: apple",
        "Bob: apple | Bob: apple | Bob: apple | Bob: apple |",
        [{"role": "assistant", "content": "Bob: apple\n" * 5}],  # conversational completions too
    ]
    n = len(completions)
    kwargs = dict(task_type=[example.task_type.value] * n, problem_spec=[json.dumps(example.problem_spec)] * n)
    assert no_loop_reward(completions, **kwargs) == [1.0, 1.0, 0.0, 0.0, 0.0, 0.0]
    assert reward_functions(["correctness", "no_loop"], [1.0, 0.2])[1] is no_loop_reward
