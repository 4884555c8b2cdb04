"""The registry of task types: the one place that lists them. Everything else reads it.

Each task type is one `TaskType` entry below: the record's `task_type` value, the id prefix of generated
records, the generator module (its `generate` and independent `check`), the lm-eval task on its eval snapshot,
the scorer of model outputs with its metrics (the first one is the headline `score`), and whether the
in-training check runs it. Adding a task type is three files: a generator module in cognitive/data/generators/,
an entry here, and a task YAML in eval/tasks/cognitive/ (plus its snapshot, built by
`python -m cognitive.evaluation.snapshots --task <eval task>`).

    from cognitive import tasks
    task = tasks.get("planning")                 # by task_type value, eval task name or short id
    task.generator_module().generate(rng, "basic", "cooking")
    task.score(model_output, problem_spec)      # {"valid": 1.0, "optimal": 0.0, "answered": 1.0}

Generator modules and scorers are named, not imported, here: the data schema builds its `ReasoningType` enum
from this registry, and the generators import the schema, so importing them from this module would be a cycle.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum

from cognitive.errors import UserError

# Every task type is generated in every domain, so task and domain mixes can be set independently.
DOMAINS = ("shopping", "cooking", "physics", "finance")


@dataclass(frozen=True)
class TaskType:
    name: str  # the record's task_type (a ReasoningType value), e.g. "chain_of_thought"
    short: str  # id prefix of generated records: "cot-basic-shopping-7"
    eval_task: str  # the lm-eval task on this type's eval snapshot (eval/tasks/cognitive/<eval_task>.yaml)
    generator: str  # module with generate(rng, difficulty, domain) -> fields and check(example, strict) -> problems
    scorer: str  # "module:function": (model output, problem_spec) -> {metric: value in [0, 1], "answered": ...}
    metrics: tuple[str, ...]  # the scorer's metrics besides "answered"; the first is the headline `score`
    fast_check: bool = True  # in the in-training check (False: trained answers too long for it)

    @property
    def headline(self) -> str:
        return self.metrics[0]

    def generator_module(self):
        return importlib.import_module(self.generator)

    def scorer_function(self) -> Callable[[str | None, dict], dict[str, float]]:
        module, function = self.scorer.split(":")
        return getattr(importlib.import_module(module), function)

    def zero_metrics(self) -> dict[str, float]:
        """What an unscorable output gets: 0 on every metric."""
        return {**dict.fromkeys(self.metrics, 0.0), "answered": 0.0}


_GENERATORS = "cognitive.data.generators"
_SCORING = "cognitive.evaluation.scoring"

TASK_TYPES: tuple[TaskType, ...] = (
    TaskType(
        "chain_of_thought",
        "cot",
        "cognitive_reasoning",
        f"{_GENERATORS}.chain_of_thought",
        f"{_SCORING}:score_reasoning",
        ("exact_match",),
    ),
    TaskType(
        "planning",
        "plan",
        "cognitive_planning",
        f"{_GENERATORS}.planning",
        f"{_SCORING}:score_plan",
        ("valid", "optimal"),
        fast_check=False,
    ),  # trained answers run to ~1k tokens
    TaskType(
        "state_transition",
        "state",
        "cognitive_state",
        f"{_GENERATORS}.state_transition",
        f"{_SCORING}:score_state",
        ("exact_match",),
    ),
    TaskType(
        "problem_solving",
        "logic",
        "cognitive_logic",
        f"{_GENERATORS}.problem_solving",
        f"{_SCORING}:score_logic",
        ("grid_accuracy", "cell_accuracy"),
    ),
    TaskType(
        "memory_recall",
        "memory",
        "cognitive_memory",
        f"{_GENERATORS}.memory_recall",
        f"{_SCORING}:score_memory",
        ("exact_match",),
    ),
)

# The guide's enum of task types (the record's `task_type`), built from the registry: members such as
# ReasoningType.CHAIN_OF_THOUGHT == "chain_of_thought".
ReasoningType = Enum("ReasoningType", {t.name.upper(): t.name for t in TASK_TYPES}, type=str, module=__name__)

_BY_KEY = {key: t for t in TASK_TYPES for key in (t.name, t.short, t.eval_task)}


def get(key: str | Enum) -> TaskType:
    """The task type named by its task_type value (or ReasoningType member), eval task name or short id."""
    task = _BY_KEY.get(getattr(key, "value", key))
    if task is None:
        known = ", ".join(t.name for t in TASK_TYPES)
        raise UserError(f"unknown task type '{getattr(key, 'value', key)}' (known: {known})")
    return task


def eval_tasks() -> list[str]:
    """The lm-eval task of every task type, in registry order (the group `cognitive` runs them all)."""
    return [t.eval_task for t in TASK_TYPES]
