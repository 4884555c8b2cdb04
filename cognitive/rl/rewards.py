"""Verifiable rewards for reinforcement learning (recipes/grpo.py), from the registry's scorers and the checkers.

Each reward is a TRL reward function: GRPOTrainer calls it with the batch's `completions` and the prompt dataset's
columns as keyword lists (here `task_type` and `problem_spec`, the generator's problem as a JSON string) and it
returns one float per completion, or None where it does not apply (TRL adds up the weighted rewards skipping those).

    correctness     the task type's scorer (cognitive/tasks.py) on the final answer, with the registry's partial
                    credit (TaskType.credit: a valid plan 0.5, the shortest 1; a logic grid by its share of cells)
    format          1 when the completion has a final-answer line ("Final Answer: ...", "\\boxed{}", "####", ...)
                    and the scorer reads an answer from it, else 0
    work_then_answer  (opt-in) `format` in our solutions' order: 1 only when at least one line of working comes
                    before the final-answer line and the answer is stated once (scoring.works_then_answers); the
                    answer-first completions GRPO taught the 135M ("Final Answer: 13" on the first line, then more
                    "Final Answer:" lines) earn 0. Not in the default mix: on the 135M it ended the answer-first
                    habit but gained half as much on memory and state (experiments/grpo_cpu/, tenth)
    step_validity   the work, not the answer: the share of the "a op b = c" steps written that hold (0 for arithmetic
                    written with no checkable step); for planning, the share of the tasks the plan places with
                    their duration after their dependencies (cognitive.data.generators.planning.task_violations);
                    None for an entity or grid answer without arithmetic (nothing to check)
    state_steps     (opt-in) the work of state tracking: the share of the state lines that match the replay after
                    each operation (state_step_validity: a loop of repeated lines counts against it, 0 without a
                    state line); None for the other task types. Not in the default mix: on the 135M it did not
                    raise state tracking (experiments/grpo_cpu/, fifth)
    no_loop         (opt-in) 1 for a completion without a repeated-line loop, 0 for one with
                    (cognitive.evaluation.outputs.repeated_loop: the same 1-8 lines, or the same 8-200 characters,
                    three times in a row; "Final Answer: 13" stated three times is one), whatever it answers: the
                    loops of the SFT start ("Bob: apple | Bob: apple | ...") cost the group's advantage

The recipe names them (`reward_funcs: [correctness, format, step_validity]`, REWARDS) and weights them with
GRPOConfig's `reward_weights`. They are importable for TRL's own CLI too:

    trl grpo --reward_funcs cognitive.rl.rewards.correctness_reward cognitive.rl.rewards.format_reward ...

(with a dataset that has `task_type` and `problem_spec` columns: cognitive.rl.prompts writes one).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable

from cognitive import tasks
from cognitive.data import arith
from cognitive.data.generators.planning import task_violations
from cognitive.data.generators.state_transition import replay_states
from cognitive.data.response import PLANNING_HEADER
from cognitive.errors import UserError
from cognitive.evaluation.outputs import repeated_loop
from cognitive.evaluation.scoring import (
    answer_region,
    final_answer_text,
    parse_plan,
    score_output,
    works_then_answers,
)


def completion_text(completion) -> str:
    """The text of a completion: a string (standard data) or a list of messages (conversational data)."""
    if isinstance(completion, str):
        return completion
    if isinstance(completion, list):
        return "".join(m.get("content") or "" for m in completion if isinstance(m, dict))
    return ""


def _spec(problem_spec) -> dict:
    return json.loads(problem_spec) if isinstance(problem_spec, str) else problem_spec


# ------------------------------------------------------------------------------------------------ the rewards
def correctness_reward(completions, task_type, problem_spec, **kwargs) -> list[float]:
    """The task's scorer on each completion, weighted by the registry's partial credit (TaskType.credit)."""
    rewards = []
    for completion, name, spec in zip(completions, task_type, problem_spec, strict=True):
        task = tasks.get(name)
        metrics = score_output(task, completion_text(completion), _spec(spec))
        rewards.append(sum(weight * metrics[metric] for metric, weight in task.credit().items()))
    return rewards


def _answered(text: str, name: str, spec) -> bool:
    """A final-answer line the task's scorer reads an answer from."""
    _, marked = final_answer_text(text)
    return marked and score_output(tasks.get(name), text, _spec(spec))["answered"] > 0


def format_reward(completions, task_type, problem_spec, **kwargs) -> list[float]:
    """1 for a final-answer line the task's scorer reads an answer from, else 0."""
    return [
        float(_answered(completion_text(completion), name, spec))
        for completion, name, spec in zip(completions, task_type, problem_spec, strict=True)
    ]


def work_then_answer_reward(completions, task_type, problem_spec, **kwargs) -> list[float]:
    """`format`, paid only for working first and the final answer once after it (scoring.works_then_answers)."""
    rewards = []
    for completion, name, spec in zip(completions, task_type, problem_spec, strict=True):
        text = completion_text(completion)
        rewards.append(float(works_then_answers(text) and _answered(text, name, spec)))
    return rewards


def no_loop_reward(completions, **kwargs) -> list[float]:
    """1 for a completion without a repeated-line loop (outputs.repeated_loop), 0 for one with; every task type."""
    return [0.0 if repeated_loop(completion_text(completion)) else 1.0 for completion in completions]


def step_validity_reward(completions, task_type, problem_spec, **kwargs) -> list[float | None]:
    """The share of valid steps: arithmetic steps that hold, or (planning) tasks placed right; None: none to check."""
    rewards = []
    for completion, name, spec in zip(completions, task_type, problem_spec, strict=True):
        text, task = completion_text(completion), tasks.get(name)
        if task.name == "planning":
            rewards.append(plan_step_validity(text, _spec(spec)))
            continue
        steps = arith.chains(text)
        if steps:
            rewards.append(sum(s.ok for s in steps) / len(steps))
        elif task.name == "chain_of_thought":
            rewards.append(0.0)  # an arithmetic problem answered without one checkable step of work
        else:
            rewards.append(None)
    return rewards


def plan_step_validity(text: str, spec: dict) -> float:
    """The share of the problem's tasks that the completion's plan places validly on their own (task_violations)."""
    region, _ = answer_region(text, plan=True)
    names = [t["name"] for t in spec["tasks"]]
    plan, _ = parse_plan(region, names)
    return sum(not task_violations(name, plan, spec) for name in names) / len(names)


# The work of a state-tracking completion ends at its first final-answer line (or the guide layout's planning steps,
# which repeat the changes as transitions); a state line is "<entity>: <value>" pairs, split at "," and ";", the
# value after an arrow where a step shows its arithmetic first ("0 + 50 = 50 → credit: 50").
_WORK_END = re.compile(r"(?im)^[^\w\n]*final answer|" + re.escape(PLANNING_HEADER))  # [^\w\n]: linear on blank lines
_ARROW = re.compile(r"→|->")
_ARTICLE = re.compile(r"^(?:(?:in|at|on|into) )?(?:the |a |an )?")


def _norm(value: str) -> str:
    return _ARTICLE.sub("", value.strip().strip(".*").strip().lower())


def _line_state(line: str, kind: str, entities: set[str], machine_states: set[str]) -> dict[str, str]:
    """The {entity: value} pairs a line writes about the problem's entities (others are ignored)."""
    pairs = {}
    for part in re.split(r"[;,]", _ARROW.split(line)[-1]):
        tokens = part.split(":")
        if len(tokens) < 2:
            continue
        key, value = _norm(re.sub(r"^[^A-Za-z]+", "", tokens[-2])), _norm(tokens[-1])
        if key in entities:
            pairs[key] = value
        elif kind == "machine" and (key == "state" or value in machine_states):
            pairs["state"] = value
        elif kind == "vending" and key == "credit" and (amount := re.search(r"\d+", value)):
            pairs["credit"] = amount.group()
    return pairs


def state_step_validity(text: str, spec: dict) -> float:
    """The share of a state-tracking completion's state lines that match the replay (replay_states): the i-th line
    that names the problem's entities (people, items, the machine's state, the credit) against the state after
    operation i, every entity it names right. Lines beyond the operations (a loop) count against it, missing ones
    leave steps unearned; a first line restating the start is not counted. 0 without a state line."""
    expected = [{k.lower(): _norm(v) for k, v in state.items()} for state in replay_states(spec)]
    kind = spec["kind"]
    entities = {k.lower() for k in spec["initial"]} if kind in ("holdings", "locations") else set()
    machine_states = {_norm(s) for rule in spec.get("rules", []) for s in (rule[0], rule[2])}
    work = _WORK_END.split(text, maxsplit=1)[0]
    lines = [s for s in (_line_state(line, kind, entities, machine_states) for line in work.splitlines()) if s]
    start, after = expected[0], expected[1:]
    if len(lines) == len(after) + 1 and all(start.get(k) == v for k, v in lines[0].items()):
        lines = lines[1:]
    if not lines:
        return 0.0
    valid = sum(all(after[i].get(k) == v for k, v in got.items()) for i, got in enumerate(lines[: len(after)]))
    return valid / max(len(lines), len(after))


def state_steps_reward(completions, task_type, problem_spec, **kwargs) -> list[float | None]:
    """State tracking's share of state lines that match the replay (state_step_validity); None for other types."""
    return [
        state_step_validity(completion_text(completion), _spec(spec)) if name == "state_transition" else None
        for completion, name, spec in zip(completions, task_type, problem_spec, strict=True)
    ]


# The recipe's names for them (ScriptArguments.reward_funcs); TRL logs each as rewards/<function name>/mean.
REWARDS: dict[str, Callable] = {
    "correctness": correctness_reward,
    "format": format_reward,
    "step_validity": step_validity_reward,
    "state_steps": state_steps_reward,
    "work_then_answer": work_then_answer_reward,
    "no_loop": no_loop_reward,
}


def reward_functions(names: list[str], weights: list[float] | None = None) -> list[Callable]:
    """The functions of the recipe's reward names; an unknown name, or a weight list (GRPOConfig.reward_weights) of
    another length, is a one-line UserError."""
    if not names:
        raise UserError(f"reward_funcs: empty; name at least one of {', '.join(REWARDS)}")
    unknown = [n for n in names if n not in REWARDS]
    if unknown:
        raise UserError(f"reward_funcs: unknown reward '{unknown[0]}' (known: {', '.join(REWARDS)})")
    if len(set(names)) != len(names):
        raise UserError(f"reward_funcs: {names} names a reward twice")
    if weights is not None and len(weights) != len(names):
        raise UserError(
            f"reward_weights: {len(weights)} weight(s) {list(weights)} for {len(names)} reward_funcs {list(names)}; "
            "give one weight per reward"
        )
    return [REWARDS[n] for n in names]
