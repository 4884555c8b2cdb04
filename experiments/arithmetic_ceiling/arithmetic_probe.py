"""Which arithmetic steps can a model compute? The ceiling under step accuracy.

Step accuracy (cognitive.evaluation.scoring.step_metrics) is the share of the "a op b = c" steps a model writes that
hold. This module says where the false ones come from, in two readings over the same classes of step (the operation
and the digits of its operands, `step_class`: "- 3d2d" is a three-digit number minus a two-digit one):

    probe_items(per_class, seed)     single steps asked in a step's context: the chat template's assistant turn is
                                     begun with "<label>: a op b = " and the model writes the next number (greedy);
                                     what it can compute, apart from choosing what to compute
    split_items(per_class, seed)     the same for the pieces a multi-digit step splits into, one place value at a
                                     time (63 - 27 as 63 - 20, 43 - 3, 40 - 4): are smaller steps computable?
    step_breakdown(outputs)          the steps a model wrote in its answers (an evaluation's samples), true and false,
                                     by class: what it does compute

    items = probe_items(40, seed=0)
    scores = probe_scores(items, complete)      # complete(prompts) -> continuations; {class: share right}

and whether practice moves that ceiling: `worksheet(rng, n, form)` is a drill of n steps (cognitive.data.drills) as
a prompt-completion pair, answered directly ("654 - 327 = 327") or with column working, one digit at a time, right
to left, carries and borrows written out ("654 - 327: 14 - 7 = 7, 4 - 2 = 2, 6 - 3 = 3; 654 - 327 = 327"; every
clause an "a op b = c" step the checkers' reader checks); `worksheet_scores` reads a model's answers to held-out
worksheets.

bench_arithmetic.py (this folder) runs all three for a base and its runs. This is study code (experiments/
arithmetic_ceiling/README.md), not part of the library: nothing a user runs to train or evaluate calls it.
"""

from __future__ import annotations

import random
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

from cognitive.data import arith
from cognitive.data.drills import OPERATORS, draw_steps, worksheet_pair

# (operator, digits of the first operand, digits of the second): the steps our generators write, basic to advanced
PROBE_CLASSES = (
    ("+", 1, 1),
    ("+", 2, 1),
    ("+", 2, 2),
    ("+", 3, 2),
    ("-", 1, 1),
    ("-", 2, 1),
    ("-", 2, 2),
    ("-", 3, 2),
    ("×", 1, 1),
    ("×", 2, 1),
    ("×", 3, 1),
)
LABELS = ("Total", "Money left", "Balance", "Flour left", "Distance", "Result")
REQUEST = "Work it out one step at a time."  # the user turn before the step
# the operators of a chain's expression (cognitive.data.arith writes × as *) as the classes name them
_OPERATORS_WRITTEN = {"+": "+", "-": "-", "*": "×", "/": "÷"}
_NUMBER = r"(\d{1,3}(?:,\d{3})+|\d+)"  # 8991 or 8,991
_FIRST_NUMBER = re.compile(r"\s*(?:\$\s*)?" + _NUMBER)


def class_name(operator: str, digits_a: int, digits_b: int) -> str:
    """ "× 2d1d": the operator, then the operands' digits (3 for three or more), the larger first."""
    longer, shorter = sorted((min(digits_a, 3), min(digits_b, 3)), reverse=True)
    return f"{operator} {longer}d{shorter}d"


@dataclass(frozen=True)
class ProbeItem:
    step_class: str
    a: int
    operator: str
    b: int
    label: str

    @property
    def answer(self) -> int:
        return OPERATORS[self.operator](self.a, self.b)

    @property
    def prefix(self) -> str:
        """What the assistant turn begins with; the model writes the result next."""
        return f"{self.label}: {self.a} {self.operator} {self.b} = "

    def right(self, continuation: str) -> bool:
        """The first number the model writes is the result."""
        found = _FIRST_NUMBER.match(continuation)
        return bool(found) and arith.read_number(found.group(1).replace(",", "")) == self.answer


def worksheet(rng: random.Random, n: int, form: str) -> tuple[list[ProbeItem], dict]:
    """n drill steps (cognitive.data.drills) as items, and the prompt-completion pair that asks and answers them in
    `form` (DRILL_FORMS)."""
    steps = draw_steps(rng, n)
    pair = worksheet_pair(steps, form)
    return [ProbeItem(class_name(op, len(str(a)), len(str(b))), a, op, b, "") for a, op, b in steps], pair


_NUMBERED_LINE = re.compile(r"^[ \t]*(\d+)\.\s(.*)$", re.MULTILINE)
_RESULT = re.compile(r"=\s*(?:\$\s*)?" + _NUMBER)


def worksheet_scores(items: list[ProbeItem], reply: str) -> dict[str, tuple[int, int]]:
    """{operator: (right, asked)} of a reply to a worksheet: the last "= c" on the line numbered "i." is the answer
    to item i (the first such line; other lines, a preamble or a wrapped answer, are not read); an item with no
    numbered line is wrong."""
    answers = {}
    for number, line in _NUMBERED_LINE.findall(reply):
        results = _RESULT.findall(line)
        if results:
            answers.setdefault(arith.read_number(number), arith.read_number(results[-1].replace(",", "")))
    right, asked = Counter(), Counter()
    for i, item in enumerate(items, 1):
        asked[item.operator] += 1
        right[item.operator] += answers.get(i) == item.answer
    return {op: (right[op], asked[op]) for op in asked}


def _operand(rng: random.Random, digits: int) -> int:
    return rng.randint(2 if digits == 1 else 10 ** (digits - 1), 10**digits - 1)


def probe_items(per_class: int, seed: int = 0, classes=PROBE_CLASSES) -> list[ProbeItem]:
    """`per_class` steps of each class, deterministic in the seed; a difference is never negative."""
    rng = random.Random(f"arithmetic-probe|{seed}")
    items = []
    for operator, digits_a, digits_b in classes:
        for _ in range(per_class):
            a, b = _operand(rng, digits_a), _operand(rng, digits_b)
            if operator == "-" and b > a:
                a, b = b, a
            items.append(ProbeItem(class_name(operator, digits_a, digits_b), a, operator, b, rng.choice(LABELS)))
    return items


# The pieces a multi-digit step splits into when it is written one place value at a time ("63 - 27": 63 - 20 = 43,
# 43 - 3 = 40, 40 - 4 = 36): would smaller steps be computable? {name: (operator, a, b) drawn from an rng}
SPLIT_PIECES = {
    "- tens (63 - 20)": lambda r: (lambda a: ("-", a, 10 * r.randint(1, a // 10)))(r.randint(21, 99)),
    "- to round (43 - 3)": lambda r: (lambda a: ("-", a, a % 10))(r.choice([n for n in range(21, 100) if n % 10])),
    "- from round (40 - 4)": lambda r: ("-", 10 * r.randint(2, 9), r.randint(1, 9)),
    "+ tens (47 + 30)": lambda r: ("+", r.randint(11, 69), 10 * r.randint(1, 3)),
    "+ to round (77 + 3)": lambda r: (lambda a: ("+", a, 10 - a % 10))(r.choice([n for n in range(11, 90) if n % 10])),
    "+ from round (80 + 5)": lambda r: ("+", 10 * r.randint(2, 9), r.randint(1, 9)),
    "× tens (20 × 4)": lambda r: ("×", 10 * r.randint(1, 9), r.randint(2, 9)),
}


def split_items(per_class: int, seed: int = 0) -> list[ProbeItem]:
    """`per_class` steps of each of SPLIT_PIECES (their step_class is the piece's name), deterministic in the seed."""
    rng = random.Random(f"arithmetic-split|{seed}")
    items = []
    for name, draw in SPLIT_PIECES.items():
        for _ in range(per_class):
            operator, a, b = draw(rng)
            items.append(ProbeItem(name, a, operator, b, rng.choice(LABELS)))
    return items


def probe_scores(items: list[ProbeItem], complete: Callable[[list[ProbeItem]], list[str]]) -> dict[str, float]:
    """{class: the share of its items whose continuation starts with the right result}; `complete` maps items to
    the model's continuations of their prefixes."""
    right, total = Counter(), Counter()
    for item, continuation in zip(items, complete(items), strict=True):
        total[item.step_class] += 1
        right[item.step_class] += item.right(continuation)
    return {name: right[name] / total[name] for name in total}


def step_class(chain: arith.Chain) -> str:
    """The class of a written step: its operator and operand digits ("- 3d2d"); "mixed" for a first segment with
    more than one operator or other than two whole numbers."""
    operators = {_OPERATORS_WRITTEN[c] for c in chain.expression if c in _OPERATORS_WRITTEN}
    operands = chain.operands or []
    if len(operators) != 1 or len(operands) != 2 or any(int(v) != v for v in operands):
        return "mixed"
    a, b = (int(v) for v in operands)
    return class_name(operators.pop(), len(str(a)), len(str(b)))


def step_breakdown(outputs, distinct: bool = False) -> dict[str, tuple[int, int]]:
    """{class: (true steps, steps)} over the "a op b = c" steps (the checkers' reader) of model outputs; `distinct`:
    a step written more than once in one output (a greedy loop's "98 + 0 = 98" forty times) counts once."""
    true, total = Counter(), Counter()
    for output in outputs:
        found = arith.chains(output if isinstance(output, str) else "")
        if distinct:
            found = list({chain.text: chain for chain in found}.values())
        for chain in found:
            name = step_class(chain)
            total[name] += 1
            true[name] += chain.ok
    return {name: (true[name], total[name]) for name in sorted(total)}


def greedy_replies(model, tokenizer, texts: list[str], max_new_tokens: int, batch_size: int) -> list[str]:
    """What the model writes after each of `texts` (already chat-templated), greedy, left-padded in batches; the
    tokenizer's padding side and pad token are restored afterwards (a tokenizer without one pads with eos)."""
    import torch

    side, pad_token = tokenizer.padding_side, tokenizer.pad_token
    tokenizer.padding_side = "left"
    if pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    out = []
    try:
        for start in range(0, len(texts), batch_size):
            batch = tokenizer(
                texts[start : start + batch_size], return_tensors="pt", padding=True, add_special_tokens=False
            )
            with torch.no_grad():
                ids = model.generate(
                    **batch, do_sample=False, max_new_tokens=max_new_tokens, pad_token_id=tokenizer.pad_token_id
                )
            out += tokenizer.batch_decode(ids[:, batch["input_ids"].shape[1] :], skip_special_tokens=True)
    finally:
        tokenizer.padding_side, tokenizer.pad_token = side, pad_token
    return out


def model_continuations(model, tokenizer, items: list[ProbeItem], batch_size: int = 44, max_new_tokens: int = 6):
    """Greedy continuations of each item's prefix after the chat template's user turn (REQUEST) and assistant start."""
    head = tokenizer.apply_chat_template(
        [{"role": "user", "content": REQUEST}], add_generation_prompt=True, tokenize=False
    )
    return greedy_replies(model, tokenizer, [head + item.prefix for item in items], max_new_tokens, batch_size)
