"""The verification stage: an example's independent checker, and the quality score from its findings.

    problems = verify(example)    # [] = verified; sets example.verified and example.quality_score

The checker is the `check(example, strict)` of the task type's generator module (cognitive.tasks). It re-solves
`problem_spec` on its own code path and re-reads the text; strict (our own generator's records) also ties every
step to the spec, non-strict (teacher and curated data) checks the final answer and every arithmetic written.
Records without `problem_spec` are checked as far as their text allows and otherwise reported 'unverifiable: ...'.

quality_score (0..1), see QUALITY_SCORE_DOC (also copied into every report.json):
    0.0              the checker found an error (wrong answer, wrong step, broken problem_spec)
    0.3              unverifiable: nothing wrong found, but the answer could not be confirmed
                     (no problem_spec, or a text the checker cannot fully read) -- always below the
                     default threshold 0.7; lower the threshold below 0.3 only to keep curated data
                     deliberately
    0.7 + 0.3 * f    verified; f is the share of these form checks passed: every step has a description
                     and a reasoning text; every step records a memory update; the final answer is at
                     most 300 characters; the steps are numbered 1..n
"""

from __future__ import annotations

from cognitive import tasks
from cognitive.data.schema import CognitiveTrainingExample

GENERATOR_PREFIX = "cognitive-slm/"  # generated_by of this project's generators: checked strictly
UNVERIFIABLE_SCORE = 0.3
QUALITY_SCORE_DOC = __doc__.split("(also copied into every report.json):\n")[1].strip()


def check_example(example: CognitiveTrainingExample) -> list[str]:
    """Problems the task's independent checker finds (empty list: verified). Never raises on bad content: a
    malformed problem_spec is reported as a problem."""
    strict = example.generated_by.startswith(GENERATOR_PREFIX)
    try:
        return tasks.get(example.task_type).generator_module().check(example, strict=strict)
    except Exception as e:  # a broken spec or text the checker cannot digest is a finding, not a crash
        return [f"checker could not process the example: {type(e).__name__}: {e}"]


def quality_score(example: CognitiveTrainingExample, problems: list[str]) -> float:
    """The documented score above, from the checker's findings."""
    if any(not p.startswith("unverifiable") for p in problems):
        return 0.0
    if problems:
        return UNVERIFIABLE_SCORE
    steps = example.reasoning_steps
    form = [
        bool(steps) and all(s.description.strip() and s.reasoning.strip() for s in steps),
        bool(steps) and all(s.memory_update.strip() for s in steps),
        len(example.final_answer) <= 300,
        [s.step for s in steps] == list(range(1, len(steps) + 1)),
    ]
    return round(0.7 + 0.3 * sum(form) / len(form), 4)


def verify(example: CognitiveTrainingExample) -> list[str]:
    """Run the checker; sets example.verified and example.quality_score. Returns the findings."""
    problems = check_example(example)
    example.verified = not problems
    example.quality_score = quality_score(example, problems)
    return problems
