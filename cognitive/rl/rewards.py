"""Verifiable rewards for reinforcement learning (recipes/grpo.py), from the registry's scorers and the checkers.

Each reward is a TRL reward function: GRPOTrainer calls it with the batch's `completions` and the prompt dataset's
columns as keyword lists (here `task_type` and `problem_spec`, the generator's problem as a JSON string) and it
returns one float per completion, or None where it does not apply (TRL adds up the weighted rewards skipping those).

    correctness     the task type's scorer (cognitive/tasks.py) on the final answer, with the registry's partial
                    credit (TaskType.credit: a valid plan 0.5, the shortest 1; a logic grid by its share of cells)
    format          (opt-in; the old default) 1 when the completion has a final-answer line ("Final Answer: ...",
                    "\\boxed{}", "####", ...) and the scorer reads an answer from it, else 0. It taught the 135M to
                    state its answer first (experiments/grpo_defaults/: worked below its SFT start on transfer)
    work_then_answer  `format` in our solutions' order: 1 only when at least one line of working comes
                    before the final-answer line and the answer is stated once (answers.works_then_answers); the
                    answer-first completions GRPO taught the 135M ("Final Answer: 13" on the first line, then more
                    "Final Answer:" lines) earn 0
    step_validity   the work, not the answer: the task type's own step check where its generator module has one
                    (its `step_validity` hook: chain_of_thought, the share of the "a op b = c" steps that hold, 0 for
                    arithmetic written with no checkable step; planning, the share of the tasks the plan places
                    with their duration after their dependencies), else the share of the arithmetic steps written
                    that hold, None without one (nothing to check)
    state_steps     (opt-in) the work of state tracking: the task type's `state_steps` hook (state_transition: the
                    share of the state lines that match the replay after each operation; a loop of repeated lines
                    counts against it, 0 without a state line); None for the types without one. Not in the default
                    mix: on the 135M it did not raise state tracking (experiments/grpo_cpu/, fifth)
    no_loop         1 for a completion without a repeated-line loop, 0 for one with
                    (cognitive.evaluation.outputs.repeated_loop: the same 1-8 lines, or the same 8-200 characters,
                    three times in a row; "Final Answer: 13" stated three times is one), whatever it answers: the
                    loops of the SFT start ("Bob: apple | Bob: apple | ...") cost the group's advantage

The recipe names them (`reward_funcs: [correctness, work_then_answer, step_validity, no_loop]`, REWARDS: the mix of
experiments/grpo_defaults/) and weights them with GRPOConfig's `reward_weights`. They are importable for TRL's own
CLI too:

    trl grpo --reward_funcs cognitive.rl.rewards.correctness_reward cognitive.rl.rewards.format_reward ...

(with a dataset that has `task_type` and `problem_spec` columns: cognitive.rl.prompts writes one).
"""

from __future__ import annotations

import json
from collections.abc import Callable

from cognitive import tasks
from cognitive.data import arith
from cognitive.data.answers import final_answer_text, works_then_answers
from cognitive.errors import UserError
from cognitive.evaluation.outputs import repeated_loop
from cognitive.evaluation.scoring import score_output


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
    """`format`, paid only for working first and the final answer once after it (answers.works_then_answers)."""
    rewards = []
    for completion, name, spec in zip(completions, task_type, problem_spec, strict=True):
        text = completion_text(completion)
        rewards.append(float(works_then_answers(text) and _answered(text, name, spec)))
    return rewards


def no_loop_reward(completions, **kwargs) -> list[float]:
    """1 for a completion without a repeated-line loop (outputs.repeated_loop), 0 for one with; every task type."""
    return [0.0 if repeated_loop(completion_text(completion)) else 1.0 for completion in completions]


def step_validity_reward(completions, task_type, problem_spec, **kwargs) -> list[float | None]:
    """The share of valid steps: the task type's own step check (its generator module's `step_validity` hook), else
    the share of the arithmetic steps written that hold; None: none to check."""
    rewards = []
    for completion, name, spec in zip(completions, task_type, problem_spec, strict=True):
        text, own = completion_text(completion), tasks.get(name).hook("step_validity")
        rewards.append(own(text, _spec(spec)) if own else arith.step_share(text))
    return rewards


def state_steps_reward(completions, task_type, problem_spec, **kwargs) -> list[float | None]:
    """The task type's `state_steps` hook (state tracking: the share of state lines that match the replay); None for
    the types without one."""
    rewards = []
    for completion, name, spec in zip(completions, task_type, problem_spec, strict=True):
        own = tasks.get(name).hook("state_steps")
        rewards.append(own(completion_text(completion), _spec(spec)) if own else None)
    return rewards


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
