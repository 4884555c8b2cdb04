"""Synthetic task generators, one module per task type, and their independent checkers.

    from cognitive.generators import generate_example, check_example, TRAIN_SEEDS, EVAL_SEEDS
    ex = generate_example("chain_of_thought", "basic", seed=7)      # deterministic in its arguments
    assert ex.verified and check_example(ex) == []

Each module has `DOMAINS`, `generate(rng, difficulty, domain) -> dict of example fields` (the solver's
answer, the structured problem in `problem_spec`) and `check(example, strict) -> list[str]`, which
re-solves `problem_spec` on its own code path and re-reads the text. An example is marked verified
only when its checker finds nothing. Records without `problem_spec` (hand-written, teacher data) are
checked as far as their text allows and otherwise reported 'unverifiable: ...'.

Seeds: training data is drawn only from TRAIN_SEEDS, evaluation documents only from EVAL_SEEDS.
"""

from __future__ import annotations

import random

from cognitive.errors import UserError
from cognitive.generators import (
    chain_of_thought,
    memory_recall,
    planning,
    problem_solving,
    state_transition,
)
from cognitive.schema import CognitiveTrainingExample, DifficultyLevel, ReasoningType

TRAIN_SEEDS = range(0, 2**40)
EVAL_SEEDS = range(2**40, 2**41)

GENERATORS = {
    ReasoningType.CHAIN_OF_THOUGHT: chain_of_thought,
    ReasoningType.PLANNING: planning,
    ReasoningType.STATE_TRANSITION: state_transition,
    ReasoningType.PROBLEM_SOLVING: problem_solving,
    ReasoningType.MEMORY_RECALL: memory_recall,
}
# Every task type supports every domain, so task and domain mixes can be set independently.
DOMAINS = ("shopping", "cooking", "physics", "finance")
GENERATOR_PREFIX = "cognitive-slm/"
_SHORT = {"chain_of_thought": "cot", "planning": "plan", "state_transition": "state",
          "problem_solving": "logic", "memory_recall": "memory"}


def _task(task_type) -> ReasoningType:
    try:
        return ReasoningType(task_type)
    except ValueError:
        raise UserError(f"unknown task type '{task_type}' (known: {', '.join(t.value for t in ReasoningType)})") from None


def _difficulty(difficulty) -> DifficultyLevel:
    try:
        return DifficultyLevel(difficulty)
    except ValueError:
        raise UserError(f"unknown difficulty '{difficulty}' (known: {', '.join(d.value for d in DifficultyLevel)})") from None


def generate_example(task_type: ReasoningType | str, difficulty: DifficultyLevel | str, seed: int,
                     domain: str | None = None) -> CognitiveTrainingExample:
    """One example, deterministic in (task_type, difficulty, seed, domain); domain=None draws one from
    the seed. verified=True and quality_score set only if the independent checker passes."""
    from cognitive.quality import quality_score

    task, level = _task(task_type), _difficulty(difficulty)
    if domain is None:
        domain = random.Random(f"{task.value}|{level.value}|{seed}").choice(DOMAINS)
    elif domain not in DOMAINS:
        raise UserError(f"unknown domain '{domain}' (known: {', '.join(DOMAINS)})")
    rng = random.Random(f"{task.value}|{level.value}|{domain}|{seed}")
    fields = GENERATORS[task].generate(rng, level.value, domain)
    example = CognitiveTrainingExample(
        id=f"{_SHORT[task.value]}-{level.value}-{domain}-{seed}",
        task_type=task,
        difficulty=level,
        generated_by=f"{GENERATOR_PREFIX}{task.value}@1",
        **fields,
    )
    problems = check_example(example)
    example.verified = not problems
    example.quality_score = quality_score(example, problems)
    return example


def check_example(example: CognitiveTrainingExample) -> list[str]:
    """Problems the independent checker finds (empty list: verified). Never raises on bad content: a
    malformed problem_spec is reported as a problem."""
    strict = example.generated_by.startswith(GENERATOR_PREFIX)
    try:
        return GENERATORS[example.task_type].check(example, strict=strict)
    except Exception as e:  # a broken spec or text the checker cannot digest is a finding, not a crash
        return [f"checker could not process the example: {type(e).__name__}: {e}"]


def is_unverifiable(problems: list[str]) -> bool:
    """True when the only findings are 'unverifiable: ...' (nothing wrong was found)."""
    return bool(problems) and all(p.startswith("unverifiable") for p in problems)
