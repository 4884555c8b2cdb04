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
# What a checkable expression is at most (longer ones are "not checkable": evaluate returns None). Our steps have a few
# operands of a few digits; the bounds keep the work per segment small whatever a model writes.
MAX_TOKENS = 256
MAX_DEPTH = 32
MAX_DIGITS = 60
_NORMALISE = str.maketrans({"×": "*", "·": "*", "÷": "/", "−": "-", "–": "-", "$": " ", "%": " ", "€": " ", "£": " "})


def number(token: str) -> int | Fraction:
    """Exact value of a numeral: int when it has no decimal point (fast), else a Fraction."""
    return int(token) if "." not in token else Fraction(token)


def read_number(numeral: str) -> int | Fraction | None:
    """The exact value of a numeral a model wrote (digits, an optional sign and decimal part, `number`); None for one
    longer than MAX_DIGITS characters: no answer or step of ours writes one, and Python refuses to parse one of over
    4300 digits (a ValueError) and takes quadratic time below that."""
    return number(numeral) if len(numeral) <= MAX_DIGITS else None


def divide(a, b):
    """Exact division: an int when it divides evenly."""
    if isinstance(a, int) and isinstance(b, int) and b and a % b == 0:
        return a // b
    return Fraction(a) / b


def numbers(text: str) -> list[int | Fraction]:
    """Every number written in a text (integers and decimals; '1,200' is not a number here); a numeral longer
    than MAX_DIGITS characters is none (no step of ours writes one, and reading it could cost more than the text)."""
    return [v for m in _NUMBER.finditer(text) if (v := read_number(m.group())) is not None]


def evaluate(expr: str) -> Fraction | None:
    """Evaluate + - * / and parentheses exactly; None if `expr` is not a well-formed expression, or not one to check:
    more than MAX_TOKENS tokens, parentheses nested deeper than MAX_DEPTH, a numeral longer than MAX_DIGITS characters.

    Model output is read here (rewards, step accuracy), so this never raises and its work is bounded: it reads the
    tokens once, left to right, with explicit stacks (precedence climbing), never recursing. The grammar:
        sum := product (("+" | "-") product)*      product := atom (("*" | "/") atom)*
        atom := "(" sum ")" | "-" atom | numeral
    """
    expr = expr.strip()
    tokens = []
    pos = 0
    while pos < len(expr):
        m = _TOKEN.match(expr, pos)
        if not m or not m.group(1) or len(tokens) >= MAX_TOKENS:
            return None
        tokens.append(m.group(1))
        pos = m.end()
    if not tokens:
        return None
    try:
        return _evaluate(tokens)
    except (ZeroDivisionError, ValueError):
        return None


def _evaluate(tokens: list[str]):
    """The value of a token list by the grammar of `evaluate`; None when it does not parse. Operators wait on a
    stack until one of lower or equal precedence (or a closing parenthesis, or the end) comes."""
    values: list = []
    ops: list[str] = []  # "(", "neg" (unary minus, binds tightest), "+", "-", "*", "/"
    depth = 0
    expect_operand = True
    for tok in tokens:
        if expect_operand:
            if tok == "(":
                depth += 1
                if depth > MAX_DEPTH:
                    return None
                ops.append(tok)
            elif tok == "-":
                ops.append("neg")
            elif tok[0].isdigit():
                if len(tok) > MAX_DIGITS:
                    return None
                values.append(number(tok))
                expect_operand = False
            else:  # ")" or a binary operator where a value must come
                return None
        elif tok == ")":
            while ops and ops[-1] != "(":
                _apply(ops.pop(), values)
            if not ops:
                return None  # a ")" without its "("
            ops.pop()
            depth -= 1
        elif tok in _PRECEDENCE:
            while ops and ops[-1] != "(" and _PRECEDENCE[ops[-1]] >= _PRECEDENCE[tok]:
                _apply(ops.pop(), values)
            ops.append(tok)
            expect_operand = True
        else:  # a value or "(" right after a value
            return None
    if expect_operand:
        return None  # ends with an operator
    while ops:
        op = ops.pop()
        if op == "(":
            return None  # a "(" never closed
        _apply(op, values)
    return values[0]


_PRECEDENCE = {"+": 1, "-": 1, "*": 2, "/": 2, "neg": 3}


def _apply(op: str, values: list) -> None:
    if op == "neg":
        values[-1] = -values[-1]
        return
    rhs = values.pop()
    lhs = values[-1]
    if op == "+":
        values[-1] = lhs + rhs
    elif op == "-":
        values[-1] = lhs - rhs
    elif op == "*":
        values[-1] = lhs * rhs
    else:
        values[-1] = divide(lhs, rhs)


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


def step_share(text: str) -> float | None:
    """The share of the checkable chains ("a op b = c" steps) a text writes that hold; None when it writes none. Step
    accuracy of the evaluation and the step_validity reward read a model's work with it."""
    steps = chains(text if isinstance(text, str) else "")
    return sum(s.ok for s in steps) / len(steps) if steps else None


def fmt(q) -> str:
    if isinstance(q, int):
        return str(q)
    return str(q.numerator) if q.denominator == 1 else f"{float(q):g}"
