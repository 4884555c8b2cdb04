"""Practice problems: third-party (reasoning-gym) problems beside our records, answered with verified working.

Training only on our generators' problems teaches their wording and layout; asked someone else's question, a small
tuned model forces that layout onto it (experiments/response_styles/, 150 steps). Practice problems are
reasoning-gym problems asked as reasoning-gym asks them, from the datasets each task type lists as `practice` in
cognitive/tasks.py: never one of the transfer suite's datasets (tests/unit/test_practice.py checks that), drawn with
PRACTICE_SEED, not the snapshots' seed. Each is solved here (SOLVERS) and answered in the concise layout:

    leg_counting      "dog: 15 × 4 = 60" per animal, a running sum, "Final Answer: 188"
    products          "60 × 3 = 180", "60 × 9 = 540", "540 × 10 = 5400", "5400 + 180 = 5580" (one digit of the
                      second factor at a time), "Final Answer: 5580"
    letter_counting   the words holding the letter with their counts, their sum, "Final Answer: 4"
    spell_backward    the letters, then the letters backward, "Final Answer: tuobnrut"
    syllogism         "Final Answer: No" (no working): whether the conclusion holds in every Venn-diagram model of
                      the premises

The request after the question is one of PRACTICE_REQUESTS (or none), never the transfer suite's request. Every
answer is verified when it is written: reasoning-gym's own `score_answer` must give our solver's answer 1, and every
arithmetic step of the working must hold (cognitive.data.arith); a problem that fails either is left out. On
syllogisms the two disagree on about 3 problems in 10, all labelled Yes by reasoning-gym: its rules miss the
undistributed middle ("All dolphins are tigers; some tigers are humans" does not make some dolphins humans) and read
"all" with existential import; those are left out. With the column response style, sums and differences are worked
one column at a time (cognitive.data.response.worked_clause), as in the records.

Training mixes them into the records with the recipe setting `practice_problems` (cognitive.train.sft_data).
"""

from __future__ import annotations

import functools
import itertools
import random
import re

from cognitive import tasks
from cognitive.data import arith
from cognitive.data.response import CONCISE_ANSWER_MARKER, worked_clause

PRACTICE_SEED = 7001  # reasoning-gym's seed for practice problems (the transfer snapshots use another)
PRACTICE_REQUESTS = ("", "Show your working.", "Work it out, then give the answer.", "What is the answer?")


@functools.cache
def dataset(name: str, size: int, seed: int):
    """The reasoning-gym dataset of a practice task: `size` problems drawn with PRACTICE_SEED + seed."""
    import reasoning_gym

    task = next((t for t in tasks.practice_tasks() if t.name == name), None)
    if task is None:
        raise KeyError(f"no practice task '{name}' in cognitive/tasks.py")
    return reasoning_gym.create_dataset(name, size=size, seed=PRACTICE_SEED + seed, **task.config)


# ------------------------------------------------------------------------------------------------ solving
# A solver writes the working of a problem and the answer it reaches: (lines, answer). The answer is scored by
# reasoning-gym; a problem whose answer it does not score 1 is left out (see practice_answer).
def running_sum(values: list[int]) -> list[str]:
    """The sum of `values` one addition at a time: [60, 18, 6] -> ["60 + 18 = 78", "78 + 6 = 84"]."""
    lines, total = [], values[0]
    for value in values[1:]:
        lines.append(f"{total} + {value} = {total + value}")
        total += value
    return lines


def solve_leg_counting(entry: dict) -> tuple[list[str], str]:
    from reasoning_gym.arithmetic.leg_counting import ANIMALS

    animals = entry["metadata"]["animals"]
    legs = [count * ANIMALS[animal] for animal, count in animals.items()]
    lines = [f"{animal}: {count} × {ANIMALS[animal]} = {n}" for (animal, count), n in zip(animals.items(), legs)]
    return lines + running_sum(legs), str(sum(legs))


def solve_products(entry: dict) -> tuple[list[str], str]:
    a, b = (int(x) for x in entry["metadata"]["expression"].split("*"))
    if b < 10:
        return [f"{a} × {b} = {a * b}"], str(a * b)
    lines, parts = [], []
    for power, digit in enumerate(int(d) for d in reversed(str(b))):  # one digit of b at a time, ones first
        if digit:
            lines.append(f"{a} × {digit} = {a * digit}")
            if power:
                lines.append(f"{a * digit} × {10**power} = {a * digit * 10**power}")
            parts.append(a * digit * 10**power)
    return lines + running_sum(parts), str(sum(parts))


def solve_letter_counting(entry: dict) -> tuple[list[str], str]:
    letter = entry["metadata"]["target_letter"]
    counts = [(word, word.lower().count(letter)) for word in entry["metadata"]["span"]]
    counts = [(word, n) for word, n in counts if n]
    lines = [f'Words with "{letter}": ' + ", ".join(f"{word} ({n})" for word, n in counts)]
    if len(counts) > 1:
        lines.append(f"{' + '.join(str(n) for _, n in counts)} = {sum(n for _, n in counts)}")
    return lines, str(sum(n for _, n in counts))


def solve_spell_backward(entry: dict) -> tuple[list[str], str]:
    word = entry["metadata"]["word"]
    return [f"Letters: {' '.join(word)}", f"Backward: {' '.join(reversed(word))}"], word[::-1]


_STATEMENT = re.compile(r"^(All|No|Some) (.+?) are (not )?(.+)$")


def _holds(statement: str, model: set[frozenset]) -> bool:
    """Whether a categorical statement holds in a Venn model (the set of non-empty regions, each region the set of
    terms its members belong to)."""
    quantifier, subject, negated, predicate = _STATEMENT.match(statement).groups()
    if quantifier == "All":
        return not any(subject in region and predicate not in region for region in model)
    if quantifier == "No":
        return not any(subject in region and predicate in region for region in model)
    return any(subject in region and (predicate not in region if negated else predicate in region) for region in model)


def syllogism_follows(premises: list[str], conclusion: str) -> bool:
    """Whether the conclusion holds in every Venn model in which the premises hold (no existential import)."""
    terms = sorted({t for s in (*premises, conclusion) for t in _STATEMENT.match(s).group(2, 4)})
    regions = [
        frozenset(t for t, inside in zip(terms, bits) if inside)
        for bits in itertools.product((0, 1), repeat=len(terms))
    ]
    for chosen in itertools.product((False, True), repeat=len(regions)):
        model = {r for r, nonempty in zip(regions, chosen) if nonempty}
        if all(_holds(p, model) for p in premises) and not _holds(conclusion, model):
            return False
    return True


def solve_syllogism(entry: dict) -> tuple[list[str], str]:
    meta = entry["metadata"]
    return [], "Yes" if syllogism_follows([meta["premise1"], meta["premise2"]], meta["conclusion"]) else "No"


SOLVERS = {
    "leg_counting": solve_leg_counting,
    "products": solve_products,
    "letter_counting": solve_letter_counting,
    "spell_backward": solve_spell_backward,
    "syllogism": solve_syllogism,
}  # every practice task in cognitive/tasks.py has one (tests/unit/test_practice.py)


# ------------------------------------------------------------------------------------------------ rows
def practice_answer(name: str, entry: dict, scorer, column: bool = False) -> str | None:
    """The answer to a practice problem: its solver's working (column: sums and differences worked one column at a
    time), then "Final Answer: <the solver's answer>". None when `scorer` (the reasoning-gym dataset the entry came
    from) does not score that answer 1 or a step of the working is false: the problem is not practised on."""
    lines, answer = SOLVERS[name](entry)
    if column:
        lines = [worked_clause(line) for line in lines]
    text = "\n".join([*lines, f"{CONCISE_ANSWER_MARKER} {answer}"])
    if scorer.score_answer(answer, entry) < 1 or not all(step.ok for step in arith.chains(text)):
        return None
    return text


def practice_rows(count: int, column: bool = False, seed: int = 0) -> list[dict]:
    """`count` conversational prompt-completion pairs, the practice tasks in turn (cognitive/tasks.py order), each
    asked with one of PRACTICE_REQUESTS and answered by practice_answer (a problem it leaves out is replaced by the
    task's next one); deterministic in `seed`."""
    if not count:
        return []
    names = [t.name for t in tasks.practice_tasks()]
    rng = random.Random(f"practice|{seed}")
    size = 2 * -(-count // len(names)) + 20  # room for the problems practice_answer leaves out
    answered = {name: _answered(name, dataset(name, size, seed), column) for name in names}
    rows = []
    for i in range(count):
        question, answer = next(answered[names[i % len(names)]])
        request = rng.choice(PRACTICE_REQUESTS)
        rows.append(
            {
                "prompt": [{"role": "user", "content": question + (f"\n\n{request}" if request else "")}],
                "completion": [{"role": "assistant", "content": answer}],
            }
        )
    return rows


def _answered(name: str, problems, column: bool):
    """(question, answer) of each problem of a practice task that practice_answer answers, in order."""
    for entry in problems:
        if (answer := practice_answer(name, entry, problems, column)) is not None:
            yield entry["question"].rstrip(), answer
    raise RuntimeError(f"practice task {name}: fewer problems answered than asked for, of {len(problems)}")
