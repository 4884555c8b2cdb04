"""Synthetic task generators, one module per task type (named in cognitive.tasks), with independent checkers.

    from cognitive.data.generators import generate_example, TRAIN_SEEDS, EVAL_SEEDS
    ex = generate_example("chain_of_thought", "basic", seed=7)      # deterministic in its arguments
    assert ex.verified

Each generator module has `generate(rng, difficulty, domain) -> dict of example fields` (the solver's answer,
the structured problem in `problem_spec`) and `check(example, strict) -> list[str]`, which re-solves
`problem_spec` on its own code path and re-reads the text (cognitive.data.verify runs it). An example is marked
verified only when its checker finds nothing.

Seeds: training data is drawn only from TRAIN_SEEDS, evaluation documents only from EVAL_SEEDS, the prompts of
reinforcement learning (recipes/grpo.py) only from RL_SEEDS, and the validation documents that settings are chosen
on (`recipes/evaluate.py --split validation`, so that nobody tunes on the eval snapshots) only from
VALIDATION_SEEDS: four disjoint ranges.
"""

from __future__ import annotations

import random

from cognitive import tasks
from cognitive.data.schema import CognitiveTrainingExample, DifficultyLevel
from cognitive.data.verify import GENERATOR_PREFIX, verify
from cognitive.errors import UserError

TRAIN_SEEDS = range(0, 2**40)
EVAL_SEEDS = range(2**40, 2**41)
RL_SEEDS = range(2**41, 2**42)
VALIDATION_SEEDS = range(2**42, 2**43)


def _difficulty(difficulty) -> DifficultyLevel:
    try:
        return DifficultyLevel(difficulty)
    except ValueError:
        known = ", ".join(d.value for d in DifficultyLevel)
        raise UserError(f"unknown difficulty '{difficulty}' (known: {known})") from None


def generate_checked(
    task_type, difficulty, seed: int, domain: str | None = None
) -> tuple[CognitiveTrainingExample, list[str]]:
    """One example and its checker's findings, deterministic in (task_type, difficulty, seed, domain);
    domain=None draws one from the seed. verified and quality_score are set from the findings."""
    task, level = tasks.get(task_type), _difficulty(difficulty)
    if domain is None:
        domain = random.Random(f"{task.name}|{level.value}|{seed}").choice(tasks.DOMAINS)
    elif domain not in tasks.DOMAINS:
        raise UserError(f"unknown domain '{domain}' (known: {', '.join(tasks.DOMAINS)})")
    rng = random.Random(f"{task.name}|{level.value}|{domain}|{seed}")
    fields = task.generator_module().generate(rng, level.value, domain)
    example = CognitiveTrainingExample(
        id=f"{task.short}-{level.value}-{domain}-{seed}",
        task_type=task.name,
        difficulty=level,
        generated_by=f"{GENERATOR_PREFIX}{task.name}@1",
        **fields,
    )
    return example, verify(example)


def generate_example(task_type, difficulty, seed: int, domain: str | None = None) -> CognitiveTrainingExample:
    """One example (see generate_checked); verified=True only if the independent checker passes."""
    return generate_checked(task_type, difficulty, seed, domain)[0]
