"""Arithmetic drills: worksheets of single steps as prompt-completion pairs, for practice beside the reasoning data.

A worksheet asks n numbered steps (sums and differences of numbers up to 999, products of a number up to 99 and one
digit) and answers each in one of DRILL_FORMS:

    direct    "3. 654 - 327 = 327"
    column    "3. 654 - 327: 14 - 7 = 7, 4 - 2 = 2, 6 - 3 = 3; 654 - 327 = 327" (the school method, one digit at a
              time, as the column response style writes it: cognitive.data.response.column_steps)

Training mixes them into the records with the recipe setting `arithmetic_drills` (cognitive.train.sft_data);
experiments/arithmetic_ceiling/bench_arithmetic.py trains on them alone and asks held-out ones (a study).
"""

from __future__ import annotations

import random

from cognitive.data.response import column_steps

OPERATORS = {"+": lambda a, b: a + b, "-": lambda a, b: a - b, "×": lambda a, b: a * b}
DRILL_FORMS = ("direct", "column")
WORKSHEET_REQUEST = "Work these out:"


def column_working(a: int, operator: str, b: int) -> str:
    """A sum or difference worked one column at a time, right to left, then the whole step: "654 - 327: 14 - 7 = 7,
    4 - 2 = 2, 6 - 3 = 3; 654 - 327 = 327". A product (one factor below 10 in the drills) is written as one step."""
    whole = f"{a} {operator} {b} = {OPERATORS[operator](a, b)}"
    if operator not in "+-":
        return whole
    return f"{a} {operator} {b}: {', '.join(column_steps(a, operator, b))}; {whole}"


def draw_steps(rng: random.Random, n: int) -> list[tuple[int, str, int]]:
    """n (a, operator, b) drill steps; a difference is never negative."""
    steps = []
    for _ in range(n):
        operator = rng.choice(tuple(OPERATORS))
        a, b = (
            (rng.randint(2, 99), rng.randint(2, 9)) if operator == "×" else (rng.randint(10, 999), rng.randint(1, 999))
        )
        if operator == "-" and b > a:
            a, b = b, a
        steps.append((a, operator, b))
    return steps


def worksheet_pair(steps: list[tuple[int, str, int]], form: str) -> dict:
    """The conversational prompt-completion pair that asks `steps` and answers them in `form`."""
    if form not in DRILL_FORMS:
        raise ValueError(f"unknown drill form {form!r} (known: {', '.join(DRILL_FORMS)})")
    question = "\n".join(f"{i}. {a} {op} {b}" for i, (a, op, b) in enumerate(steps, 1))
    answer = "\n".join(
        f"{i}. " + (column_working(a, op, b) if form == "column" else f"{a} {op} {b} = {OPERATORS[op](a, b)}")
        for i, (a, op, b) in enumerate(steps, 1)
    )
    return {
        "prompt": [{"role": "user", "content": f"{WORKSHEET_REQUEST}\n{question}"}],
        "completion": [{"role": "assistant", "content": answer}],
    }


def drill_rows(count: int, steps_per_sheet: int, form: str, seed: int = 0) -> list[dict]:
    """`count` worksheets of `steps_per_sheet` steps as prompt-completion pairs, deterministic in `seed`."""
    rng = random.Random(f"drills|{form}|{seed}")
    return [worksheet_pair(draw_steps(rng, steps_per_sheet), form) for _ in range(count)]
