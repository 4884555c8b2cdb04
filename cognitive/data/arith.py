"""Checker-side arithmetic: find the `a op b = c` chains written in a reasoning step and re-evaluate them.

This is the independent path the checkers use to re-check each step's arithmetic from its text. It
does not share code with the generators' renderers. A step such as

    "3 boxes × 12 apples per box = 36 apples"
    "Remaining = Initial - Used = 36 - 13 = 23 apples"
    "23 × 14 = 23 × 10 + 23 × 4 = 230 + 92 = 322"

is split into clauses (at `,` `;` `:` and sentence ends), each clause at `=`; words, units and `$` are
dropped from each segment, and every segment that is then a well-formed expression is evaluated exactly
(fractions). All evaluable segments of one chain must be equal; the chain's value is the last one.
"""

from __future__ import annotations

import re
from fractions import Fraction

_CLAUSE_SPLIT = re.compile(r"[,;:](?=\s)|\.(?=\s|$)|\n")
_LETTER = "A-Za-z\u00c0-\u00d6\u00d8-\u00f6\u00f8-\u024f"  # letters, not × (U+00D7) or ÷ (U+00F7)
_WORD = re.compile(f"[{_LETTER}][{_LETTER}/'’\\-]*")
_TIMES_X = re.compile(r"(?<=\d)\s*x\s*(?=\d)")
_TOKEN = re.compile(r"\s*(\d+(?:\.\d+)?|[-+*/()]|)")
_NUMBER = re.compile(r"(?<![\w.])\d+(?:\.\d+)?")
_NORMALISE = str.maketrans({"×": "*", "·": "*", "÷": "/", "−": "-", "–": "-", "$": " ", "%": " ", "€": " ", "£": " "})


def number(token: str) -> int | Fraction:
    """Exact value of a numeral: int when it has no decimal point (fast), else a Fraction."""
    return int(token) if "." not in token else Fraction(token)


def divide(a, b):
    """Exact division: an int when it divides evenly."""
    if isinstance(a, int) and isinstance(b, int) and b and a % b == 0:
        return a // b
    return Fraction(a) / b


def numbers(text: str) -> list[int | Fraction]:
    """Every number written in a text (integers and decimals; '1,200' is not a number here)."""
    return [number(m.group()) for m in _NUMBER.finditer(text)]


def evaluate(expr: str) -> Fraction | None:
    """Evaluate + - * / and parentheses exactly; None if `expr` is not a well-formed expression."""
    tokens = []
    pos = 0
    expr = expr.strip()
    while pos < len(expr):
        m = _TOKEN.match(expr, pos)
        if not m or not m.group(1):
            return None
        tokens.append(m.group(1))
        pos = m.end()
    if not tokens:
        return None
    try:
        value, rest = _sum(tokens, 0)
    except (IndexError, ZeroDivisionError, ValueError):
        return None
    return value if rest == len(tokens) else None


def _sum(t, i):
    value, i = _product(t, i)
    while i < len(t) and t[i] in "+-":
        op = t[i]
        rhs, i = _product(t, i + 1)
        value = value + rhs if op == "+" else value - rhs
    return value, i


def _product(t, i):
    value, i = _atom(t, i)
    while i < len(t) and t[i] in "*/":
        op = t[i]
        rhs, i = _atom(t, i + 1)
        value = value * rhs if op == "*" else divide(value, rhs)
    return value, i


def _atom(t, i):
    tok = t[i]
    if tok == "(":
        value, i = _sum(t, i + 1)
        if t[i] != ")":
            raise ValueError("unbalanced")
        return value, i + 1
    if tok == "-":
        value, i = _atom(t, i + 1)
        return -value, i
    if tok[0].isdigit():
        return number(tok), i + 1
    raise ValueError(tok)


class Chain:
    """One `... = ... = ...` chain: the evaluable segments' values, the first evaluable segment as an expression
    ("475 - 25": words, units and `$` dropped, × as *) and its operands."""

    __slots__ = ("expression", "operands", "text", "values")

    def __init__(self, values, operands, text, expression=""):
        self.values, self.operands, self.text, self.expression = values, operands, text, expression

    @property
    def ok(self) -> bool:
        return all(v == self.values[0] for v in self.values)

    @property
    def result(self) -> Fraction:
        return self.values[-1]


def chains(text: str) -> list[Chain]:
    """The checkable chains (at least two evaluable segments) in a text."""
    found = []
    for clause in _CLAUSE_SPLIT.split(text):
        if "=" not in clause:
            continue
        values, operands, expression = [], None, ""
        for segment in clause.split("="):
            cleaned = _WORD.sub(" ", _TIMES_X.sub("*", segment).translate(_NORMALISE))
            v = evaluate(cleaned)
            if v is not None:
                values.append(v)
                if operands is None:
                    operands, expression = numbers(cleaned), " ".join(cleaned.split())
        if len(values) >= 2:
            found.append(Chain(values, operands, clause.strip(), expression))
    return found


def fmt(q) -> str:
    if isinstance(q, int):
        return str(q)
    return str(q.numerator) if q.denominator == 1 else f"{float(q):g}"
